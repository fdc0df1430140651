//! One error type for every handler: users see a plain page whose status tells
//! the truth; the log gets the cause.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::telemetry::Throttled;
use crate::i18n::{self, Lang};
use crate::metrics::SessionStoreFailed;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("login required")]
    LoginRequired,
    #[error("cross-site request refused: {0}")]
    CrossSite(&'static str),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request is valid but the state forbids it; the message is shown to the user.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A limit on this client or account; the value is the seconds until it lifts.
    #[error("too many attempts, retry in {0}s")]
    TooManyRequests(u64),
    /// The client sent its request body too slowly.
    #[error("request body not received in time")]
    RequestTimeout,
    #[error("request body too large")]
    PayloadTooLarge,
    /// This replica is at capacity (password hashing queue full): retry shortly.
    #[error("busy: {0}")]
    Busy(&'static str),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The session store (Redis) failed: a 503 like `Unavailable`, and counted.
    #[error("session store unavailable: {0}")]
    SessionStore(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // The database is unreachable or overloaded: a replica cannot fix that, so say 503.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => AppError::Unavailable(err.to_string()),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(err: tower_sessions::session::Error) -> Self {
        AppError::SessionStore(err.to_string())
    }
}

impl From<askama::Error> for AppError {
    fn from(err: askama::Error) -> Self {
        AppError::Internal(anyhow::anyhow!("template: {err}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    lang: Lang,
    status: i64,
    title: &'a str,
    message: &'a str,
    show_login: bool,
}

impl AppError {
    /// The status, and the catalogue ids of the page's title and text.
    fn status_and_text(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "error-not-found",
                "error-not-found-text",
            ),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                "error-forbidden",
                "error-forbidden-text",
            ),
            AppError::LoginRequired => {
                (StatusCode::UNAUTHORIZED, "error-login", "error-login-text")
            }
            AppError::CrossSite(_) => (
                StatusCode::FORBIDDEN,
                "error-cross-site",
                "error-cross-site-text",
            ),
            AppError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "error-bad-request",
                "error-bad-request-text",
            ),
            AppError::Conflict(_) => (
                StatusCode::CONFLICT,
                "error-conflict",
                "error-conflict-text",
            ),
            AppError::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "error-too-many",
                "error-too-many-text",
            ),
            AppError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "error-timeout",
                "error-timeout-text",
            ),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "error-too-large",
                "error-too-large-text",
            ),
            AppError::Busy(_) | AppError::Unavailable(_) | AppError::SessionStore(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "error-unavailable",
                "error-unavailable-text",
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "error-internal",
                "error-internal-text",
            ),
        }
    }
}

/// The refusals a flood repeats are written once a minute with a count
/// (`telemetry::Throttled`); a real failure (500) is written every time.
static UNAVAILABLE_LOG: Throttled = Throttled::per_minute();
static SESSION_STORE_LOG: Throttled = Throttled::per_minute();
static SHED_LOG: Throttled = Throttled::per_minute();

impl AppError {
    fn log(&self) {
        match self {
            AppError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            AppError::Unavailable(cause) => {
                if let Some(unwritten) = UNAVAILABLE_LOG.admit() {
                    tracing::warn!(%cause, unwritten, "dependency unavailable (more in this minute are counted, not written)");
                }
            }
            AppError::SessionStore(cause) => {
                if let Some(unwritten) = SESSION_STORE_LOG.admit() {
                    tracing::warn!(%cause, unwritten, "session store unavailable (more in this minute are counted, not written)");
                }
            }
            AppError::Busy(what) => {
                if let Some(unwritten) = SHED_LOG.admit() {
                    tracing::warn!(%what, unwritten, "shedding load (more in this minute are counted, not written)");
                }
            }
            other => tracing::debug!(error = %other, "request refused"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let lang = i18n::current();
        match &self {
            AppError::LoginRequired => {
                return axum::response::Redirect::to("/login").into_response();
            }
            // A conflict's message was written (in the request's language) by the handler.
            AppError::Conflict(message) => {
                return error_page(
                    StatusCode::CONFLICT,
                    &lang.t("error-conflict"),
                    message,
                    false,
                );
            }
            _ => {}
        }
        let (status, title, message) = self.status_and_text();
        self.log();
        let show_login = matches!(self, AppError::Forbidden);
        let mut response = error_page(status, &lang.t(title), &lang.t(message), show_login);
        match self {
            AppError::TooManyRequests(seconds) => set_retry_after(&mut response, seconds),
            AppError::Busy(_) => set_retry_after(&mut response, 1),
            AppError::SessionStore(_) => {
                response.extensions_mut().insert(SessionStoreFailed);
            }
            _ => {}
        }
        response
    }
}

pub fn set_retry_after(response: &mut Response, seconds: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
}

/// The shop's page for a refusal that did not come from a handler (axum's
/// extractor rejections, method not allowed, timeouts), by status alone.
pub fn page_for_status(status: StatusCode) -> Response {
    let known = [
        AppError::BadRequest(String::new()),
        AppError::NotFound,
        AppError::Forbidden,
        AppError::TooManyRequests(0),
        AppError::RequestTimeout,
        AppError::PayloadTooLarge,
        AppError::Unavailable(String::new()),
        AppError::Internal(anyhow::anyhow!("")),
    ];
    let found = known
        .iter()
        .map(AppError::status_and_text)
        .find(|(s, _, _)| *s == status);
    let (title, message) = match found {
        Some((_, title, message)) => (title, message),
        None if status == StatusCode::METHOD_NOT_ALLOWED => ("error-method", "error-method-text"),
        None => ("error-other", "error-other-text"),
    };
    let lang = i18n::current();
    error_page(status, &lang.t(title), &lang.t(message), false)
}

/// The error page in the request's language; `title` and `message` are already in it.
pub fn error_page(status: StatusCode, title: &str, message: &str, show_login: bool) -> Response {
    let page = ErrorPage {
        lang: i18n::current(),
        status: i64::from(status.as_u16()),
        title,
        message,
        show_login,
    };
    let mut response = match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => message.to_string().into_response(),
    };
    *response.status_mut() = status;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        set_retry_after(&mut response, 5);
    }
    response
}
