//! The agents' API as a client sees it: workers ask the managers' agents to
//! label, drain and remove them ([`AgentClient`]); the leader asks every
//! node's agent for its replicas' CPU ([`Peers`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::model::NodeView;
use crate::error::Error;
use crate::store::secret::resolve_secret;
use crate::store::token_store::{Key, TokenStore};

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

/// One running replica's CPU use over about one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaCpu {
    pub service_id: String,
    pub task_id: String,
    /// Unix seconds when its container was created (it starts right after).
    pub started: i64,
    /// CPU cores in use (1.0 = one core fully busy).
    pub cores: f64,
}

/// Asks other nodes' agents on their swarm address.
pub struct Peers {
    http: reqwest::Client,
    secret: String,
    port: u16,
}

impl Peers {
    pub fn new(secret: String, port: u16) -> Result<Peers, Error> {
        let http = reqwest::Client::builder()
            // Inside the agent's stats wait (~1 s per container, concurrent) with room.
            .timeout(Duration::from_secs(8))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        Ok(Peers { http, secret, port })
    }

    /// That node's replicas' CPU, from its agent.
    pub async fn replicas_cpu(&self, node: &NodeView) -> Result<Vec<ReplicaCpu>, Error> {
        let url = format!("http://{}:{}/v1/replicas/cpu", node.addr, self.port);
        let failed = |message: String| Error::Api {
            url: url.clone(),
            message,
        };
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.secret)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(failed(resp.status().to_string()));
        }
        resp.json().await.map_err(|e| failed(e.to_string()))
    }
}
