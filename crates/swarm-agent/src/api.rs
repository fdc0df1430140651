//! The agents' API on managers. Workers cannot change swarm state
//! themselves, so at boot and scale-in they ask a manager's agent to label,
//! drain and remove them, and whether they are ready (readiness.rs).
//!
//! Who may ask: every call needs the fleet's bearer secret, and a node may
//! act on itself only: the call must come from the address the swarm knows
//! that node by (docs/decisions.md, "A worker acts on itself only"). Labels
//! are limited to a list of keys, so no worker can pin a service to itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::actions::ActionLog;
use crate::drain::{self, DrainProgress};
use crate::engine::Engine;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::model::NodeView;
use crate::token_store::{Key, TokenStore};

pub struct ApiState {
    pub engine: Engine,
    pub secret: String,
    pub metrics: Metrics,
    pub dry_run: bool,
    /// Label keys a worker may set on itself.
    pub worker_label_keys: Vec<String>,
    /// What this agent did, for the fleet page.
    pub actions: ActionLog,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/nodes/{id}/drain", post(drain_node).get(drain_status))
        .route("/v1/nodes/{id}/labels", post(set_labels))
        .route("/v1/nodes/{id}/remove", post(remove_node))
        .route("/v1/nodes/{id}/ready", get(node_ready))
        .with_state(state)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LabelsRequest {
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    pub message: String,
}

/// API failures: the status tells the client whether retrying can help.
pub enum ApiError {
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    /// Worth retrying soon: e.g. a node that just joined, whose address
    /// the managers have not learnt yet.
    NotYet(String),
    Internal(Error),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match &e {
            Error::Engine {
                source:
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        message,
                    },
                ..
            } => ApiError::NotFound(message.clone()),
            Error::Refused { .. } => ApiError::Conflict(e.to_string()),
            _ => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer secret".to_string(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::NotYet(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(e) => {
                warn!(error = %e, "agent API call failed");
                (StatusCode::BAD_GATEWAY, e.to_string())
            }
        };
        (status, Json(Message { message })).into_response()
    }
}

fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    secret_matches(given, secret)
}

/// Compare in constant time so response timing does not reveal the secret.
/// An empty secret matches nothing: a node without one refuses every call
/// (an empty header would otherwise equal an empty secret).
pub(crate) fn secret_matches(given: &str, secret: &str) -> bool {
    !secret.is_empty()
        && given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub(crate) fn check(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if authorized(headers, &state.secret) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Whether the caller is the node it asks about, as far as the swarm knows.
#[derive(Debug, PartialEq)]
enum Caller {
    ThatNode,
    AnotherNode,
    /// The managers learn a node's address from its first status report, a
    /// moment after the join returns: the join's own label call can come
    /// first and must be told to retry, not refused.
    AddressNotKnownYet,
}

/// A node may act on itself only: the caller's address must be the one the
/// swarm records for that node.
fn caller_of(node: &NodeView, caller: IpAddr) -> Caller {
    match node.addr.parse::<IpAddr>() {
        Ok(a) if a.is_unspecified() => Caller::AddressNotKnownYet,
        Ok(a) if a == caller => Caller::ThatNode,
        Ok(_) => Caller::AnotherNode,
        Err(_) if node.addr.is_empty() => Caller::AddressNotKnownYet,
        Err(_) => Caller::AnotherNode,
    }
}

/// The secret, then the node, then that the caller is that node.
async fn node_of_caller(
    s: &ApiState,
    headers: &HeaderMap,
    caller: SocketAddr,
    id: &str,
) -> Result<NodeView, ApiError> {
    check(s, headers)?;
    let node = NodeView::from(&s.engine.node(id).await?);
    match caller_of(&node, caller.ip()) {
        Caller::ThatNode => Ok(node),
        Caller::AddressNotKnownYet => Err(ApiError::NotYet(format!(
            "the swarm does not know {id}'s address yet (it has just joined); retry in a moment"
        ))),
        Caller::AnotherNode => {
            warn!(node = %id, node_addr = %node.addr, %caller, "agent API: refused a call about another node");
            Err(ApiError::Forbidden(format!(
                "a node may act on itself only: {id} is at {}, the call came from {}",
                node.addr,
                caller.ip()
            )))
        }
    }
}

async fn drain_node(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Message>, ApiError> {
    let node = node_of_caller(&s, &headers, caller, &id).await?;
    if node.is_manager() {
        // A manager drains itself through its own engine (see `leave`).
        return Err(ApiError::Conflict(format!(
            "{id} is a manager; run `swarm-agent leave` on it"
        )));
    }
    let changed = drain::drain(
        &s.engine,
        &id,
        "its agent asked to leave the swarm",
        s.dry_run,
    )
    .await?;
    if changed {
        s.metrics.action("drain");
        s.actions
            .record("drain", &id, "its agent asked to leave the swarm");
    }
    Ok(Json(Message {
        message: if changed {
            format!("{id} draining")
        } else {
            format!("{id} already drained")
        },
    }))
}

async fn drain_status(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<DrainProgress>, ApiError> {
    node_of_caller(&s, &headers, caller, &id).await?;
    Ok(Json(drain::progress(&s.engine, &id).await?))
}

/// Whether a booting worker is ready for its group's launch hook (readiness.rs).
async fn node_ready(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<crate::readiness::Readiness>, ApiError> {
    node_of_caller(&s, &headers, caller, &id).await?;
    Ok(Json(crate::readiness::of_node(&s.engine, &id).await?))
}

/// Keys of `labels` a worker is not allowed to set.
pub fn forbidden_label_keys<'a>(
    labels: &'a BTreeMap<String, String>,
    allowed: &[String],
) -> Vec<&'a str> {
    labels
        .keys()
        .filter(|k| !allowed.iter().any(|a| a == *k))
        .map(String::as_str)
        .collect()
}

async fn set_labels(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<LabelsRequest>,
) -> Result<Json<Message>, ApiError> {
    node_of_caller(&s, &headers, caller, &id).await?;
    let refused = forbidden_label_keys(&req.labels, &s.worker_label_keys);
    if !refused.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "a worker may set only the labels {:?}; refused: {refused:?}",
            s.worker_label_keys
        )));
    }
    let changed = drain::apply_labels(&s.engine, &id, &req.labels, s.dry_run).await?;
    if changed {
        s.metrics.action("label");
        let labels: Vec<String> = req.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.actions.record("label", &id, labels.join(", "));
    }
    Ok(Json(Message {
        message: if changed {
            format!("{id} labelled")
        } else {
            format!("{id} already labelled")
        },
    }))
}

async fn remove_node(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Message>, ApiError> {
    let node = match node_of_caller(&s, &headers, caller, &id).await {
        Ok(n) => n,
        Err(e) => match e {
            ApiError::NotFound(_) => {
                return Ok(Json(Message {
                    message: format!("{id} already removed"),
                }));
            }
            other => return Err(other),
        },
    };
    if node.is_manager() || !node.is_down() {
        return Err(ApiError::Conflict(format!(
            "{id} is {} {}; only a worker that has left (Down) is removed",
            node.state,
            if node.is_manager() {
                "manager"
            } else {
                "worker"
            }
        )));
    }
    if s.dry_run {
        info!(node = %id, "dry-run: would remove node: it left the swarm");
    } else {
        s.engine
            .remove_node(&id, false)
            .await
            .inspect_err(|_| s.metrics.failure("remove"))?;
        s.metrics.action("remove");
        s.actions
            .record("remove", &id, "it left the swarm and asked to be removed");
        info!(node = %id, "removed node: it left the swarm and asked to be removed");
    }
    Ok(Json(Message {
        message: format!("{id} removed"),
    }))
}

/// Worker side of the API: tries each manager's agent in turn.
pub struct AgentClient {
    urls: Vec<String>,
    secret: String,
    http: reqwest::Client,
}

/// What a call answered: the status (for conflict/not-found decisions) and body.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: serde_json::Value,
}

impl AgentClient {
    pub fn new(urls: Vec<String>, secret: String) -> Result<Self, Error> {
        if urls.is_empty() {
            return Err(Error::Config(
                "no agent API URL: give --agent-url or --manager".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        Ok(AgentClient { urls, secret, http })
    }

    /// The first agent that answers decides; agents that cannot be reached
    /// (or are no longer managers) are skipped.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, Error> {
        let mut last = String::new();
        for base in &self.urls {
            let url = format!("{}{path}", base.trim_end_matches('/'));
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.secret);
            if let Some(b) = &body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(resp) if resp.status() == reqwest::StatusCode::UNAUTHORIZED => {
                    return Err(Error::ApiUnauthorized { url });
                }
                Ok(resp) if resp.status().is_server_error() => {
                    let status = resp.status();
                    let why = resp.text().await.unwrap_or_default();
                    last = format!("{url}: {status} {why}");
                }
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
                    return Ok(Answer { status, body });
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(Error::Api {
            url: self.urls.join(","),
            message: format!("no agent answered; last: {last}"),
        })
    }
}

/// Default agent URLs from manager addresses: same host, port 9466.
pub fn urls_from_managers(managers: &[String]) -> Vec<String> {
    managers
        .iter()
        .map(|m| {
            let host = m.rsplit_once(':').map_or(m.as_str(), |(h, _)| h);
            format!("http://{host}:9466")
        })
        .collect()
}

pub fn read_secret(args: &crate::cli::SecretArgs) -> Result<Option<String>, Error> {
    if let Some(path) = &args.api_secret_file {
        let s = std::fs::read_to_string(path).map_err(Error::io(path.display().to_string()))?;
        return Ok(Some(s.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(args.api_secret.clone().filter(|s| !s.is_empty()))
}

/// The API secret from the flags, or else from the token store (where `init`
/// publishes it), so a node's env file needs no secret of its own.
pub async fn resolve_secret(
    args: &crate::cli::SecretArgs,
    store: Option<&TokenStore>,
) -> Result<Option<String>, Error> {
    if let Some(secret) = read_secret(args)? {
        return Ok(Some(secret));
    }
    match store {
        Some(store) => store.get(Key::ApiSecret).await,
        None => Ok(None),
    }
}

/// Manager addresses: the ones given, or else the list the managers publish.
pub async fn managers(given: &[String], store: Option<&TokenStore>) -> Result<Vec<String>, Error> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let Some(store) = store else {
        return Ok(Vec::new());
    };
    Ok(store
        .get(Key::Managers)
        .await?
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// A client for the managers' agents from this node's cluster flags: the
/// token store opened when one is given (a store that cannot be read is an
/// error); None when neither URLs nor a secret can be found.
pub async fn cluster_client(
    cluster: &crate::cli::ClusterArgs,
) -> Result<Option<AgentClient>, Error> {
    let store = match cluster.store.token_store {
        Some(_) => Some(TokenStore::open(&cluster.store).await?),
        None => None,
    };
    discover_client(store.as_ref(), &cluster.secret, &cluster.managers).await
}

/// A client for the managers' agents from what this node was told or can read
/// from the store; None when neither URLs nor a secret can be found.
pub async fn discover_client(
    store: Option<&TokenStore>,
    secret: &crate::cli::SecretArgs,
    given: &crate::cli::ManagersArgs,
) -> Result<Option<AgentClient>, Error> {
    let urls = if given.agent_urls.is_empty() {
        urls_from_managers(&managers(&given.hosts, store).await?)
    } else {
        given.agent_urls.clone()
    };
    match (urls.is_empty(), resolve_secret(secret, store).await?) {
        (false, Some(secret)) => Ok(Some(AgentClient::new(urls, secret)?)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cret2"));
        assert!(!authorized(&h, "s3creT"));
    }

    #[test]
    fn no_secret_refuses_every_call() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, ""));
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert!(!authorized(&h, ""));
    }

    #[test]
    fn a_node_is_known_by_its_swarm_address() {
        let node = NodeView {
            addr: "10.0.0.7".into(),
            ..crate::model::tests::worker("w1")
        };
        let caller = |ip: &str| ip.parse().unwrap();
        assert_eq!(caller_of(&node, caller("10.0.0.7")), Caller::ThatNode);
        assert_eq!(caller_of(&node, caller("10.0.0.8")), Caller::AnotherNode);
        for not_reported in ["", "0.0.0.0"] {
            let joining = NodeView {
                addr: not_reported.into(),
                ..node.clone()
            };
            assert_eq!(
                caller_of(&joining, caller("10.0.0.7")),
                Caller::AddressNotKnownYet
            );
        }
        let garbled = NodeView {
            addr: "not-an-address".into(),
            ..node
        };
        assert_eq!(caller_of(&garbled, caller("10.0.0.7")), Caller::AnotherNode);
    }

    #[test]
    fn workers_set_only_allowed_label_keys() {
        let allowed = vec!["zone".to_string(), "pool".to_string()];
        let mut labels = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        assert!(forbidden_label_keys(&labels, &allowed).is_empty());
        labels.insert("bookstore.mysql".into(), "true".into());
        assert_eq!(
            forbidden_label_keys(&labels, &allowed),
            vec!["bookstore.mysql"]
        );
    }

    #[test]
    fn agent_urls_follow_manager_hosts() {
        assert_eq!(
            urls_from_managers(&["10.0.0.5:2377".into(), "mgr.internal".into()]),
            vec!["http://10.0.0.5:9466", "http://mgr.internal:9466"]
        );
    }
}
