//! Operational routes: liveness, readiness and the embedded stylesheet. They
//! sit outside the session layer, so probes never touch the session store.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::state::AppState;
use crate::search::SearchSource;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/static/style.css", get(stylesheet))
}

/// Probes answer in plain text whatever happens, for scripts and load balancers.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Readiness answers within 2 s whatever the dependencies do.
pub const READY_LIMIT: Duration = Duration::from_millis(1500);

async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let ready = tokio::time::timeout(READY_LIMIT, app.is_ready(READY_LIMIT))
        .await
        .unwrap_or(false);
    // The second line says where searches go; readiness does not wait for
    // the index (a replica answers from the database meanwhile).
    let search = match &app.search {
        Some(search) => search.describe(),
        None => format!(
            "search: {}",
            SearchSource::DatabaseByConfiguration.describe()
        ),
    };
    match ready {
        true => (StatusCode::OK, format!("ready\n{search}\n")),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{search}\n"),
        ),
    }
}

const STYLESHEET: &str = include_str!("../../static/style.css");

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}
