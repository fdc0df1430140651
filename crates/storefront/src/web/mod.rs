//! The public HTTP surface: one module per area, each with its `router()`,
//! merged here under the layers every request passes through.

pub mod admin;
pub mod auth;
pub mod cart;
pub mod catalog;
pub mod ops;
pub mod orders;
pub mod page;
pub mod sell;

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::error::{AppError, AppResult, error_page};
use crate::session_store::Store;
use crate::state::AppState;

pub fn render<T: Template>(template: &T) -> AppResult<Response> {
    Ok(Html(template.render()?).into_response())
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole public application: every area, sessions, and the cross-cutting layers.
pub fn app(state: AppState, sessions: Store) -> Router {
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("bookstore_session")
        .with_secure(state.config.secure_cookies())
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
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
        .layer(session_layer)
        // Outside the session layer, or it never sees that layer's bare 500.
        .layer(axum::middleware::map_response(friendly_session_failure));

    let routes = Router::new()
        .merge(pages)
        .merge(ops::router())
        .layer(axum::middleware::from_fn(crate::metrics::track));
    with_security_headers(routes, state.config.secure_cookies())
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("x-served-by"), served_by))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(15)))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// tower-sessions answers a bare 500 when it cannot save a session (Redis gone
/// mid-request); shoppers get the same friendly 503 as for any outage instead.
async fn friendly_session_failure(response: Response) -> Response {
    let bare = response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if !bare {
        return response;
    }
    crate::metrics::session_store_error();
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The shop is briefly unavailable. Please try again in a moment.",
        false,
    )
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
