//! The agent's own HTTP routes on the metrics port: `/metrics`, `/status`
//! (a fresh snapshot), `/healthz`, and `/lb-health` for the load balancer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::cluster::rules::{self};
use crate::cluster::snapshot::{self};
use crate::engine::Engine;
use crate::observe::metrics::Metrics;

pub struct Observe {
    pub engine: Engine,
    pub metrics: Metrics,
    pub leaving: Arc<AtomicBool>,
    pub lb_check: Option<String>,
    pub http: reqwest::Client,
}

pub fn router(state: Arc<Observe>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status_json))
        .route("/healthz", get(|| async { "ok" }))
        .route("/lb-health", get(lb_health))
        .with_state(state)
}

/// The load balancer's health check of this node: 503 from the moment the
/// node starts leaving (so the balancer stops sending before anything here
/// stops), and otherwise whatever --lb-check-url answers (the node's proxy).
/// Never the database: its outage must not take nodes out of the balancer.
async fn lb_health(State(s): State<Arc<Observe>>) -> (StatusCode, &'static str) {
    if s.leaving.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "leaving\n");
    }
    let Some(url) = &s.lb_check else {
        return (StatusCode::OK, "in service\n");
    };
    match s.http.get(url).send().await {
        Ok(r) if r.status().is_success() => (StatusCode::OK, "in service\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "local check failing\n"),
    }
}

async fn metrics(State(s): State<Arc<Observe>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// Fresh snapshot per request: the answer is never older than the call.
async fn status_json(State(s): State<Arc<Observe>>) -> impl IntoResponse {
    match snapshot::snapshot(&s.engine).await {
        Ok(report) => {
            s.metrics.observe(&report);
            let code = if report.health == rules::Health::Down {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            (
                code,
                Json(serde_json::to_value(&report).expect("report serialises")),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "health": "down", "error": e.to_string() })),
        )
            .into_response(),
    }
}
