//! Prometheus metrics, served on `METRICS_ADDR` only (never on the public port).

use std::sync::LazyLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{
    Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, TextEncoder,
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec,
};

use crate::state::AppState;

static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "storefront_http_requests_total",
        "HTTP requests answered, by method, matched route and status code.",
        &["method", "route", "status"]
    )
    .expect("metric registers once")
});

static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "storefront_http_request_duration_seconds",
        "Time from request received to response headers ready, by method and matched route.",
        &["method", "route"],
        vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
        ]
    )
    .expect("metric registers once")
});

static HTTP_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "storefront_http_requests_in_flight",
        "HTTP requests being answered now."
    )
    .expect("metric registers once")
});

static DB_POOL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "storefront_db_pool_connections",
        "Database pool connections by state (idle, in_use, max).",
        &["state"]
    )
    .expect("metric registers once")
});

static REDIS_POOL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "storefront_redis_pool_connections",
        "Redis pool connections by state (idle, in_use, max).",
        &["state"]
    )
    .expect("metric registers once")
});

static ORDERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "storefront_orders_total",
        "Order state changes made by this replica: created, paid, cancelled, expired.",
        &["event"]
    )
    .expect("metric registers once")
});

static SESSION_STORE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "storefront_session_store_errors_total",
        "Session store operations that failed (Redis unreachable or slow)."
    )
    .expect("metric registers once")
});

static PASSWORD_HASHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "storefront_password_hashes_total",
        "Password hashes: computed, shed (queue full, refused at once), abandoned (request gone before its turn).",
        &["outcome"]
    )
    .expect("metric registers once")
});

static LOGINS_THROTTLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "storefront_logins_throttled_total",
        "Login attempts refused before their password was checked, by the limit that refused them.",
        &["limit"]
    )
    .expect("metric registers once")
});

static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "storefront_build_info",
        "Always 1; labels say which version and replica this is.",
        &["version", "replica"]
    )
    .expect("metric registers once")
});

pub fn order_event(event: &str) {
    ORDERS.with_label_values(&[event]).inc();
}

pub fn password_hash(outcome: &str) {
    PASSWORD_HASHES.with_label_values(&[outcome]).inc();
}

pub fn login_throttled(limit: &str) {
    LOGINS_THROTTLED.with_label_values(&[limit]).inc();
}

pub fn session_store_error() {
    SESSION_STORE_ERRORS.inc();
}

pub fn set_build_info(replica: &str) {
    BUILD_INFO
        .with_label_values(&[env!("CARGO_PKG_VERSION"), replica])
        .set(1);
}

/// Decrements the in-flight gauge even if the handler's future is dropped.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        HTTP_IN_FLIGHT.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        HTTP_IN_FLIGHT.dec();
    }
}

/// Middleware: counts and times every request under its route pattern (not its
/// raw path, which would give every book its own series).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let _guard = InFlight::start();
    let started = Instant::now();
    let response = next.run(request).await;
    HTTP_DURATION
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    HTTP_REQUESTS
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(app): State<AppState>) -> Response {
    let pool = &app.db.pool;
    let idle = pool.num_idle() as i64;
    DB_POOL.with_label_values(&["idle"]).set(idle);
    DB_POOL
        .with_label_values(&["in_use"])
        .set(pool.size() as i64 - idle);
    DB_POOL
        .with_label_values(&["max"])
        .set(pool.options().get_max_connections() as i64);
    if let Some(redis) = &app.redis {
        let status = redis.status();
        REDIS_POOL
            .with_label_values(&["idle"])
            .set(status.available as i64);
        REDIS_POOL
            .with_label_values(&["in_use"])
            .set(status.size as i64 - status.available as i64);
        REDIS_POOL
            .with_label_values(&["max"])
            .set(status.max_size as i64);
    }
    LazyLock::force(&HTTP_IN_FLIGHT);
    LazyLock::force(&SESSION_STORE_ERRORS);
    let mut body = Vec::new();
    match TextEncoder::new().encode(&prometheus::gather(), &mut body) {
        Ok(()) => ([("content-type", prometheus::TEXT_FORMAT)], body).into_response(),
        Err(err) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            err.to_string(),
        )
            .into_response(),
    }
}
