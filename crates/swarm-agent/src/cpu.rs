//! CPU use of swarm replicas, measured where they run. Docker's stats API is
//! per engine, so every node's agent measures the task containers of its own
//! engine and serves the figures on the agent API (`GET /v1/replicas/cpu`,
//! behind the API secret); the leader asks each node's agent and measures
//! its own node directly. A node whose agent does not answer is reported as
//! missing: its replicas are missing samples for the decision
//! (docs/decisions.md, "Replica autoscaling").

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::api::{self, ApiError, ApiState};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::NodeView;

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

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/replicas/cpu", get(replicas_cpu))
        .with_state(state)
}

/// Read-only, so any holder of the secret may ask (the leader does).
async fn replicas_cpu(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> std::result::Result<Json<Vec<ReplicaCpu>>, ApiError> {
    api::check(&s, &headers)?;
    Ok(Json(measure_local(&s.engine).await?))
}

/// Every running swarm task container of this engine, measured at once
/// (each stats call waits about a second for its second reading).
pub async fn measure_local(engine: &Engine) -> Result<Vec<ReplicaCpu>> {
    let containers = engine.task_containers().await?;
    let measured = join_all(containers.iter().map(|c| async move {
        let stats = engine.container_stats(&c.id).await;
        (c, stats)
    }))
    .await;
    Ok(measured
        .into_iter()
        .filter_map(|(c, stats)| match stats {
            Ok(s) => cores_in_use(&s).map(|cores| ReplicaCpu {
                service_id: c.service_id.clone(),
                task_id: c.task_id.clone(),
                started: c.created,
                cores,
            }),
            // Stopped between the list and the stats call: nothing to measure.
            Err(e) => {
                debug!(container = %c.id, error = %e, "no stats for a task container");
                None
            }
        })
        .collect())
}

/// Cores used between the two readings of a non-streamed stats answer
/// (`cpu_stats` and `precpu_stats`): the container's share of the host's
/// CPU time, times the host's CPUs. None when a reading is missing (a
/// container that just started has no previous reading).
pub fn cores_in_use(stats: &serde_json::Value) -> Option<f64> {
    let read = |path: &str| stats.pointer(path).and_then(serde_json::Value::as_u64);
    let used = read("/cpu_stats/cpu_usage/total_usage")?
        .checked_sub(read("/precpu_stats/cpu_usage/total_usage")?)?;
    let system = read("/cpu_stats/system_cpu_usage")?
        .checked_sub(read("/precpu_stats/system_cpu_usage").filter(|v| *v > 0)?)?;
    let cpus = read("/cpu_stats/online_cpus").filter(|n| *n > 0)?;
    (system > 0).then(|| used as f64 / system as f64 * cpus as f64)
}

/// What the leader gathered this pass: samples, and the nodes it could not
/// ask (their replicas are missing, not idle).
#[derive(Debug, Default)]
pub struct Gathered {
    pub replicas: Vec<ReplicaCpu>,
    pub missing_nodes: Vec<String>,
}

impl Gathered {
    /// Keeps the replicas the swarm still wants. A task being stopped (a
    /// scale-in's surplus, draining for its grace period) idles, and
    /// counting it would pull the average down and invite another scale-in.
    pub fn keep_wanted(&mut self, wanted_task_ids: &[String]) {
        self.replicas
            .retain(|r| wanted_task_ids.contains(&r.task_id));
    }
}

/// Asks other nodes' agents on their swarm address.
pub struct Peers {
    http: reqwest::Client,
    secret: String,
    port: u16,
}

impl Peers {
    pub fn new(secret: String, port: u16) -> Result<Peers> {
        let http = reqwest::Client::builder()
            // Inside the agent's stats wait (~1 s per container, concurrent) with room.
            .timeout(Duration::from_secs(8))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        Ok(Peers { http, secret, port })
    }

    async fn ask(&self, node: &NodeView) -> std::result::Result<Vec<ReplicaCpu>, String> {
        let url = format!("http://{}:{}/v1/replicas/cpu", node.addr, self.port);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.secret)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: {}", resp.status()));
        }
        resp.json().await.map_err(|e| format!("{url}: {e}"))
    }
}

/// This node through its own engine, every other ready node through its
/// agent. Nodes that are down or drained run no replicas and are not asked.
pub async fn gather(
    engine: &Engine,
    nodes: &[NodeView],
    self_id: &str,
    peers: Option<&Peers>,
) -> Gathered {
    let others: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| n.id != self_id && n.is_ready() && n.availability == "active")
        .collect();
    let local = measure_local(engine);
    let remote = join_all(others.iter().map(|n| async move {
        match peers {
            Some(p) => p.ask(n).await,
            None => Err("no agent API secret to ask it with".to_string()),
        }
    }));
    let (local, remote) = tokio::join!(local, remote);
    let mut out = Gathered::default();
    match local {
        Ok(r) => out.replicas.extend(r),
        Err(e) => {
            debug!(error = %e, "could not measure this node's replicas");
            out.missing_nodes.push(self_id.to_string());
        }
    }
    for (node, answer) in others.iter().zip(remote) {
        match answer {
            Ok(r) => out.replicas.extend(r),
            Err(e) => {
                debug!(node = %node.hostname, error = %e, "no CPU figures from this node's agent");
                out.missing_nodes.push(node.hostname.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ActionLog;
    use crate::metrics::Metrics;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn ask(authorization: Option<&str>) -> StatusCode {
        let app = router(Arc::new(ApiState {
            engine: Engine::unreachable(),
            secret: "s3cret".into(),
            metrics: Metrics::new(),
            dry_run: false,
            worker_label_keys: vec![],
            actions: ActionLog::default(),
        }));
        let mut req = Request::get("/v1/replicas/cpu");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        app.oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn the_figures_need_the_api_secret() {
        assert_eq!(ask(None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(ask(Some("Bearer guess")).await, StatusCode::UNAUTHORIZED);
        // Past the secret, the (unreachable) engine is asked: a gateway error.
        assert_eq!(ask(Some("Bearer s3cret")).await, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn cores_from_two_readings() {
        // 0.5 s of container CPU while 2 CPUs gave 4 s of CPU time (2 s of
        // wall time): a quarter of a core.
        let stats = serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000u64},
                          "system_cpu_usage": 10_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000u64},
                             "system_cpu_usage": 6_000_000_000u64}
        });
        assert_eq!(cores_in_use(&stats), Some(0.25));
    }

    #[test]
    fn no_previous_reading_is_no_figure() {
        let stats = serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 5u64}, "system_cpu_usage": 10u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 0u64}}
        });
        assert_eq!(cores_in_use(&stats), None);
    }
}
