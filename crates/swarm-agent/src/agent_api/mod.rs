//! The agents' API on managers. Workers cannot change swarm state
//! themselves, so at boot and scale-in they ask a manager's agent to label,
//! drain and remove them, and whether they are ready (`node::readiness`).
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

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use self::client::ReplicaCpu;
use crate::cluster::model::NodeView;
use crate::engine::Engine;
use crate::error::Error;
use crate::node::drain::{self, DrainProgress};
use crate::observe::events::{Events, Kind};

pub mod client;
pub mod fleet;

pub struct ApiState {
    pub engine: Engine,
    pub secret: String,
    pub dry_run: bool,
    /// Label keys a worker may set on itself.
    pub worker_label_keys: Vec<String>,
    /// What this agent did, for the fleet page.
    pub events: Events,
}

/// The API's routes, every one behind the fleet's bearer secret: the check
/// is a layer, so no handler can forget it, and it runs before any body or
/// path is read.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/nodes/{id}/drain", post(drain_node).get(drain_status))
        .route("/v1/nodes/{id}/labels", post(set_labels))
        .route("/v1/nodes/{id}/remove", post(remove_node))
        .route("/v1/nodes/{id}/ready", get(node_ready))
        // Read-only, so any holder of the secret may ask (the leader does).
        .route("/v1/replicas/cpu", get(replicas_cpu))
        .route_layer(middleware::from_fn_with_state(state.clone(), bearer_secret))
        .with_state(state)
}

async fn bearer_secret(State(s): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    if authorized(request.headers(), &s.secret) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
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

/// The node, and that the caller is that node (the secret is checked by the
/// router's layer before this).
async fn node_of_caller(s: &ApiState, caller: SocketAddr, id: &str) -> Result<NodeView, ApiError> {
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
) -> Result<Json<Message>, ApiError> {
    let node = node_of_caller(&s, caller, &id).await?;
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
        s.events
            .done(Kind::Drain, &id, "its agent asked to leave the swarm");
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
) -> Result<Json<DrainProgress>, ApiError> {
    node_of_caller(&s, caller, &id).await?;
    Ok(Json(drain::progress(&s.engine, &id).await?))
}

/// Whether a booting worker is ready for its group's launch hook (`node::readiness`).
async fn node_ready(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
) -> Result<Json<crate::node::readiness::Readiness>, ApiError> {
    node_of_caller(&s, caller, &id).await?;
    Ok(Json(crate::node::readiness::of_node(&s.engine, &id).await?))
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
    Json(req): Json<LabelsRequest>,
) -> Result<Json<Message>, ApiError> {
    node_of_caller(&s, caller, &id).await?;
    let refused = forbidden_label_keys(&req.labels, &s.worker_label_keys);
    if !refused.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "a worker may set only the labels {:?}; refused: {refused:?}",
            s.worker_label_keys
        )));
    }
    let changed = drain::apply_labels(&s.engine, &id, &req.labels, s.dry_run).await?;
    if changed {
        let labels: Vec<String> = req.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.events.done(Kind::Label, &id, labels.join(", "));
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
) -> Result<Json<Message>, ApiError> {
    let node = match node_of_caller(&s, caller, &id).await {
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
        s.engine.remove_node(&id, false).await.inspect_err(|e| {
            let next = "its agent asks again, or the reconciler removes it once Down";
            s.events.failed(Kind::Remove, &id, e, next)
        })?;
        s.events.done(
            Kind::Remove,
            &id,
            "it left the swarm and asked to be removed",
        );
    }
    Ok(Json(Message {
        message: format!("{id} removed"),
    }))
}

/// Replica CPU figures for the leader's autoscaler.
async fn replicas_cpu(
    State(s): State<Arc<ApiState>>,
) -> std::result::Result<Json<Vec<ReplicaCpu>>, ApiError> {
    Ok(Json(crate::autoscale::cpu::measure_local(&s.engine).await?))
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
            ..crate::cluster::model::tests::worker("w1")
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
            client::urls_from_managers(&["10.0.0.5:2377".into(), "mgr.internal".into()]),
            vec!["http://10.0.0.5:9466", "http://mgr.internal:9466"]
        );
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;
    use crate::observe::actions::ActionLog;
    use crate::observe::events::Events;
    use crate::observe::metrics::Metrics;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    async fn ask(
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> StatusCode {
        let app = router(Arc::new(ApiState {
            engine: Engine::unreachable(),
            secret: "s3cret".into(),
            dry_run: false,
            worker_label_keys: vec![],
            events: Events::new(Metrics::new(), ActionLog::default()),
        }));
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        app.oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn the_figures_need_the_api_secret() {
        let cpu = |auth| ask(Method::GET, "/v1/replicas/cpu", auth, "");
        assert_eq!(cpu(None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(cpu(Some("Bearer guess")).await, StatusCode::UNAUTHORIZED);
        // Past the secret, the (unreachable) engine is asked: a gateway error.
        assert_eq!(cpu(Some("Bearer s3cret")).await, StatusCode::BAD_GATEWAY);
    }

    /// The secret is checked before anything of the request is read: a
    /// stranger learns nothing from how a body or a path is refused.
    #[tokio::test]
    async fn every_node_route_needs_the_secret_first() {
        for (method, path) in [
            (Method::POST, "/v1/nodes/n1/drain"),
            (Method::GET, "/v1/nodes/n1/drain"),
            (Method::POST, "/v1/nodes/n1/labels"),
            (Method::POST, "/v1/nodes/n1/remove"),
            (Method::GET, "/v1/nodes/n1/ready"),
        ] {
            let status = ask(method.clone(), path, Some("Bearer guess"), "{not json").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
}
