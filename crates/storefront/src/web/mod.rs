//! The public HTTP surface: one module per area, each with its `router()`,
//! merged here under the layers every request passes through.

pub mod address;
pub mod admin;
pub mod auth;
pub mod cart;
pub mod catalog;
pub mod csrf;
pub mod device;
pub mod ops;
pub mod orders;
pub mod page;
pub mod password;
pub mod sell;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::app::state::AppState;
use crate::edge::after_response::{AfterResponseLayer, Finish, OnResponse};
use crate::error::{AppError, page_for_status};
use crate::i18n;
use crate::metrics::{Metrics, SessionStoreFailed};
use crate::shared::session_store::Store;

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
    let https = state.config.secure_cookies();

    let pages = Router::new()
        .merge(catalog::router())
        .merge(auth::router())
        .merge(password::router())
        .merge(address::router())
        .merge(sell::router())
        .merge(cart::router())
        .merge(orders::router())
        .merge(admin::router())
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn(page::session_lifetime))
        .layer(session_layer);

    let routes = Router::new()
        .merge(pages)
        .route("/lang/{code}", get(switch_language))
        .merge(ops::router())
        .layer(crate::metrics::track(state.metrics.clone()))
        .layer(RequestBodyTimeoutLayer::new(state.config.http.body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(AfterResponseLayer::new(FriendlyErrors(
            state.metrics.clone(),
        )))
        .with_state(state);
    Router::new().fallback_service(edge(routes, served_by, https))
}

/// The layers that need nothing from the route a request matched: its id,
/// its trace span, the headers every response carries, its language.
///
/// They wrap the routed application as one service rather than each being a
/// `Router::layer`: a router layer wraps every route in a boxed service of its
/// own, and a boxed service is cloned, with all the boxes inside it, each
/// time it is called, so the cost of a request grew with the square of the
/// number of layers (docs/benchmarks.md, 2026-12-02).
fn edge(
    routes: Router,
    served_by: HeaderValue,
    https: bool,
) -> impl Service<
    Request<Body>,
    Response: IntoResponse + 'static,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    let [csp, nosniff, no_frames, referrer, hsts, no_store] = security_headers(https);
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // Spans for every request; no line of its own for a 5xx: the error
        // behind it writes one (AppError::log), or one a minute in a flood.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }).on_failure(()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("x-served-by"), served_by))
        .layer(csp)
        .layer(nosniff)
        .layer(no_frames)
        .layer(referrer)
        .layer(hsts)
        .layer(no_store)
        // Outside the error pages, so that they too are in the shopper's language.
        .layer(i18n::LanguageLayer)
        .service(routes)
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
#[derive(Debug, Clone)]
struct FriendlyErrors(Arc<Metrics>);

impl OnResponse for FriendlyErrors {
    type Pending = Befriending;

    fn on_request(&self, request: &Request<Body>) -> Befriending {
        Befriending {
            probe: ops::is_probe(request.uri().path()),
            metrics: Arc::clone(&self.0),
        }
    }
}

struct Befriending {
    probe: bool,
    metrics: Arc<Metrics>,
}

impl Finish for Befriending {
    fn finish(self, response: Response) -> Response {
        let Befriending { probe, metrics } = self;
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
/// No page is kept by a browser or a cache in between: pages carry the
/// shopper's name, orders and form tokens; the stylesheet and covers say
/// otherwise themselves. (Each is set only if a handler did not set it, so
/// their order is free.)
fn security_headers(https: bool) -> [SetResponseHeaderLayer<HeaderValue>; 6] {
    let csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    let hsts = if https {
        "max-age=31536000"
    } else {
        "max-age=0"
    };
    [
        ("content-security-policy", csp),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("strict-transport-security", hsts),
        ("cache-control", "no-store"),
    ]
    .map(|(name, value)| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    })
}

/// `GET /lang/{code}?next=/path`: the header's language switch (`i18n::switch`),
/// its cookie `Secure` where the shop is on https.
async fn switch_language(
    State(app): State<AppState>,
    Path(code): Path<String>,
    Query(query): Query<i18n::SwitchQuery>,
) -> Response {
    i18n::switch(&code, &query, app.config.secure_cookies())
}
