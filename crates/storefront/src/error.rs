//! One error type for every handler: users see a plain page whose status tells
//! the truth; the log gets the cause.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

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
    #[error("too many attempts")]
    TooManyRequests,
    #[error("service unavailable: {0}")]
    Unavailable(String),
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
        crate::metrics::session_store_error();
        AppError::Unavailable(format!("session store: {err}"))
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
    status: u16,
    title: &'a str,
    message: &'a str,
    show_login: bool,
}

impl AppError {
    fn status_and_text(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here. It may have been removed.",
            ),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "You are not allowed to see or change this.",
            ),
            AppError::LoginRequired => (
                StatusCode::UNAUTHORIZED,
                "Please log in",
                "Log in to continue.",
            ),
            AppError::CrossSite(_) => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form has expired or came from another site. Go back, reload the page and try again.",
            ),
            AppError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request could not be understood.",
            ),
            AppError::Conflict(_) => (
                StatusCode::CONFLICT,
                "Not possible",
                "That is not possible in the current state.",
            ),
            AppError::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many attempts. Wait a few minutes and try again.",
            ),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The shop is briefly unavailable. Please try again in a moment.",
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side. Please try again.",
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::LoginRequired => {
                return axum::response::Redirect::to("/login").into_response();
            }
            AppError::Conflict(message) => {
                return error_page(StatusCode::CONFLICT, "Not possible", message, false);
            }
            _ => {}
        }
        let (status, title, message) = self.status_and_text();
        match &self {
            AppError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            other => tracing::debug!(error = %other, "request refused"),
        }
        error_page(status, title, message, matches!(self, AppError::Forbidden))
    }
}

pub fn error_page(status: StatusCode, title: &str, message: &str, show_login: bool) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
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
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("5"));
    }
    response
}
