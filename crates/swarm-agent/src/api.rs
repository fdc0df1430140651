//! The agents' API on managers. Workers cannot change swarm state
//! themselves, so at boot and scale-in they ask a manager's agent to label,
//! drain and remove them. Every call needs the shared bearer secret.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::drain::{self, DrainProgress};
use crate::engine::Engine;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::model::NodeView;

pub struct ApiState {
    pub engine: Engine,
    pub secret: String,
    pub metrics: Metrics,
    pub dry_run: bool,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/nodes/{id}/drain", post(drain_node).get(drain_status))
        .route("/v1/nodes/{id}/labels", post(set_labels))
        .route("/v1/nodes/{id}/remove", post(remove_node))
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
    NotFound(String),
    Conflict(String),
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
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Internal(e) => {
                warn!(error = %e, "agent API call failed");
                (StatusCode::BAD_GATEWAY, e.to_string())
            }
        };
        (status, Json(Message { message })).into_response()
    }
}

/// Compare in constant time so response timing does not reveal the secret.
fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn check(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if authorized(headers, &state.secret) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

async fn drain_node(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Message>, ApiError> {
    check(&s, &headers)?;
    let node = NodeView::from(&s.engine.node(&id).await?);
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
    headers: HeaderMap,
) -> Result<Json<DrainProgress>, ApiError> {
    check(&s, &headers)?;
    Ok(Json(drain::progress(&s.engine, &id).await?))
}

async fn set_labels(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(req): Json<LabelsRequest>,
) -> Result<Json<Message>, ApiError> {
    check(&s, &headers)?;
    let changed = drain::apply_labels(&s.engine, &id, &req.labels, s.dry_run).await?;
    if changed {
        s.metrics.action("label");
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
    headers: HeaderMap,
) -> Result<Json<Message>, ApiError> {
    check(&s, &headers)?;
    let node = match s.engine.node(&id).await {
        Ok(n) => NodeView::from(&n),
        Err(e) => match ApiError::from(e) {
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
                    last = format!("{url}: {}", resp.status());
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
    Ok(args.api_secret.clone())
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
    fn agent_urls_follow_manager_hosts() {
        assert_eq!(
            urls_from_managers(&["10.0.0.5:2377".into(), "mgr.internal".into()]),
            vec!["http://10.0.0.5:9466", "http://mgr.internal:9466"]
        );
    }
}
