//! The public HTTP surface: one module per area, each with its `router()`,
//! merged here under the layers every request passes through.

pub mod admin;
pub mod auth;
pub mod cart;
pub mod catalog;
pub mod csrf;
pub mod ops;
pub mod orders;
pub mod page;
pub mod sell;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::error::{AppError, page_for_status};
use crate::i18n;
use crate::metrics::{Metrics, SessionStoreFailed};
use crate::session_store::Store;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole public application: every area, sessions, and the cross-cutting layers.
pub fn app(state: AppState, sessions: Store) -> Router {
    // Sessions are stored only when a handler writes to one; `session_lifetime`
    // then decides how long it lives (the default here is the short one).
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("bookstore_session")
        .with_secure(state.config.secure_cookies())
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_expiry(Expiry::OnInactivity(page::ANONYMOUS_LIFETIME));
    let served_by = HeaderValue::from_str(&state.config.replica_id)
        .unwrap_or(HeaderValue::from_static("storefront"));

    let pages = Router::new()
        .merge(catalog::router())
        .merge(auth::router())
        .merge(sell::router())
        .merge(cart::router())
        .merge(orders::router())
        .merge(admin::router())
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn(page::session_lifetime))
        .layer(session_layer);

    let routes = Router::new()
        .merge(pages)
        .route("/lang/{code}", get(i18n::switch))
        .merge(ops::router())
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(RequestBodyTimeoutLayer::new(state.config.http.body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            friendly_errors,
        ))
        // Outside the error pages, so that they too are in the shopper's language.
        .layer(axum::middleware::from_fn(i18n::language));
    with_security_headers(routes, state.config.secure_cookies())
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("x-served-by"), served_by))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// The longest any request may take, body and handler included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Every refusal a shopper can meet is the shop's own page with a truthful
/// status, also when it did not come from a handler: axum's extractor
/// rejections (plain text: `?q=a&q=b`, `/book/%FF`), method not allowed and
/// timeouts (empty), and the bare 500 tower-sessions answers when it cannot
/// save a session, which is a store outage and so a 503. Probes keep their
/// plain answers. A request that failed on the session store, either way, is
/// counted here once.
async fn friendly_errors(
    State(metrics): State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let probe = ops::is_probe(request.uri().path());
    let response = next.run(request).await;
    if response.extensions().get::<SessionStoreFailed>().is_some() {
        metrics.session_store_error();
    }
    if probe || !is_bare_error(&response) {
        return response;
    }
    let (parts, _) = response.into_parts();
    let status = if parts.status == StatusCode::INTERNAL_SERVER_ERROR {
        metrics.session_store_error();
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        parts.status
    };
    let mut page = page_for_status(status);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            page.headers_mut().insert(name.clone(), value.clone());
        }
    }
    page
}

/// An error response the shop did not render itself (ours are always HTML).
fn is_bare_error(response: &Response) -> bool {
    let error = response.status().is_client_error() || response.status().is_server_error();
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    error && !html
}

/// Pages need nothing but our own stylesheet and images: no scripts at all.
fn with_security_headers(router: Router<AppState>, https: bool) -> Router<AppState> {
    let csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    let hsts = if https {
        "max-age=31536000"
    } else {
        "max-age=0"
    };
    let set = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    router
        .layer(set("content-security-policy", csp))
        .layer(set("x-content-type-options", "nosniff"))
        .layer(set("x-frame-options", "DENY"))
        .layer(set("referrer-policy", "same-origin"))
        .layer(set("strict-transport-security", hsts))
}
