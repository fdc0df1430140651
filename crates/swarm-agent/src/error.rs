//! The one error type of the agent. Messages are written for the operator
//! reading a journal at 3 a.m.: what failed, where, and what to check next.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "Docker engine not reachable at {endpoint} after waiting {waited:?}: {reason} \
         (is dockerd running, and may this user open its socket?)"
    )]
    EngineUnavailable {
        endpoint: String,
        waited: Duration,
        reason: ConnectError,
    },

    #[error("Docker engine call `{call}` failed: {source}")]
    Engine {
        call: &'static str,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("Docker engine call `{call}` failed: {source}")]
    EngineRaw {
        call: &'static str,
        source: RawError,
    },

    #[error(
        "manager {manager} rejected the join token: {message}. The token in the store is \
         wrong or was rotated: run `swarm-agent init` on a manager to republish it"
    )]
    InvalidToken { manager: String, message: String },

    #[error(
        "no swarm manager could be joined within {waited:?} (tried {tried}); last error: {last}"
    )]
    ManagersUnreachable {
        tried: String,
        waited: Duration,
        last: String,
    },

    #[error(
        "this node already belongs to another swarm ({detail}); refusing to join. \
         Run `swarm-agent leave` (or `docker swarm leave`) first if that is intended"
    )]
    OtherSwarm { detail: String },

    #[error("this node's swarm state is `{state}`: {detail}")]
    BadLocalState { state: String, detail: String },

    #[error("this node is not part of a swarm")]
    NotInSwarm,

    #[error("`{command}` must run on a swarm manager; this node is not one")]
    NotManager { command: &'static str },

    #[error("token store {store}: {message}")]
    TokenStore { store: String, message: String },

    #[error("token store {store} has no `{key}`: run `swarm-agent init` on the first manager")]
    TokenMissing { store: String, key: String },

    #[error("EC2 instance metadata at {url}: {message}")]
    Imds { url: String, message: String },

    #[error("agent API {url} refused the bearer secret: the API secret differs from the managers'")]
    ApiUnauthorized { url: String },

    #[error("agent API {url}: {message}")]
    Api { url: String, message: String },

    #[error("gave up after {waited:?} waiting for {what}")]
    Deadline { what: String, waited: Duration },

    #[error(
        "the token store {store} already belongs to {owner}, and this engine is in no swarm: \
         no second swarm is started over it. A manager of that swarm joins it \
         (`swarm-agent join --role manager`, what the managers' user data runs); a swarm of its \
         own needs a prefix of its own; if that swarm is gone for good, delete its entries under \
         the prefix and run init again"
    )]
    FoundedElsewhere { store: String, owner: String },

    #[error("refusing to {action}: {reason}")]
    Refused { action: String, reason: String },

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn engine(call: &'static str) -> impl FnOnce(bollard::errors::Error) -> Error {
        move |source| Error::Engine { call, source }
    }

    pub fn io(path: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Why the engine could not be reached (retried until `--engine-wait`).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported endpoint `{0}` (use unix:// or tcp://)")]
    Unsupported(String),
    #[error(transparent)]
    Engine(#[from] bollard::errors::Error),
}

/// Why a raw engine read failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{at}: {source}")]
    Connect { at: String, source: std::io::Error },
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("{status}: {body}")]
    Status {
        status: hyper::StatusCode,
        body: String,
    },
    #[error("unexpected answer: {0}")]
    Unexpected(#[from] serde_json::Error),
}
