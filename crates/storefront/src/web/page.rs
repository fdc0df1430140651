//! What every page needs from the session: who is logged in, flash messages,
//! the CSRF token; the extractors that guard logged-in pages and forms; and
//! the ids every area reads from its paths.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::rc::Rc;

use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::{Expiry, Session};

pub use super::csrf::CsrfForm;
use super::csrf::{AnonymousToken, CSRF_KEY, new_token, session_of};
use crate::app::state::AppState;
use crate::domain::Cents;
use crate::error::{AppError, AppResult};
use crate::i18n::{self, Counted, Lang, Message, Money, TextArgument};
use crate::shared::session_store::USER_KEY;
use crate::store::catalog::Total;
use fluent_bundle::FluentValue;

const FLASH_KEY: &str = "flash";

/// How long a logged-in session lives without being used.
pub const LOGGED_IN_LIFETIME: time::Duration = time::Duration::days(7);
/// How long a session without a user lives (a flash message after registering):
/// minutes, so sessions nobody logs in to cannot pile up in the store.
pub const ANONYMOUS_LIFETIME: time::Duration = time::Duration::minutes(15);

/// Who is logged in, as remembered by the session (admin rights are re-checked
/// against the database where they matter).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// `success`, `info` or `error`: also the CSS class.
    pub level: String,
    pub text: String,
}

/// The context the base layout renders: navigation, flash messages, CSRF
/// token, and the language with what templates write in it.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub user: Option<SessionUser>,
    pub flashes: Vec<Flash>,
    pub csrf: String,
    pub lang: Lang,
    /// This page's path and query: where the language switch comes back to.
    pub here: String,
    /// The shopper's address waits for confirmation: the cart and unreserved
    /// orders say so and offer the link (set by `address::note_unconfirmed`).
    pub address_unconfirmed: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> AppResult<Page> {
        let session = session_of(parts).await?;
        let user = session.get::<SessionUser>(USER_KEY).await?;
        let csrf = session.get::<String>(CSRF_KEY).await?.unwrap_or_default();
        // Read-once: flash messages are removed as they are shown.
        let flashes = match session.get::<Vec<Flash>>(FLASH_KEY).await? {
            Some(flashes) => {
                session.remove_value(FLASH_KEY).await?;
                flashes
            }
            None => Vec::new(),
        };
        Ok(Page {
            user,
            flashes,
            csrf,
            lang: language_of(parts),
            here: parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            address_unconfirmed: false,
        })
    }
}

impl Page {
    /// Pages with a form for anonymous visitors (login, register) need a token:
    /// the session's when there is one (logged in), else the signed cookie's.
    pub fn with_csrf(mut self, anonymous: &AnonymousToken) -> Page {
        if self.csrf.is_empty() {
            self.csrf = anonymous.issue();
        }
        self
    }

    pub fn user_id(&self) -> Option<i64> {
        self.user.as_ref().map(|u| u.id)
    }

    // What templates write, in the page's language (see `Lang`).
    pub fn t(&self, id: &str) -> Cow<'static, str> {
        self.lang.t(id)
    }

    /// `t`, escaped for HTML once: for a text the page writes many times.
    pub fn t_html(&self, id: &str) -> askama::filters::Safe<String> {
        i18n::escaped_once(&self.t(id))
    }

    pub fn ts(&self, id: &str, name: &str, value: &str) -> String {
        self.lang.ts(id, name, value)
    }

    pub fn tn(&self, id: &str, name: &str, value: impl Borrow<i64>) -> Rc<str> {
        self.lang.tn(id, name, value)
    }

    /// "120 books", or past the counting cap "More than 10000 books": the
    /// message `exact`, or `more` for a total that stopped at the cap.
    pub fn total(&self, exact: &str, more: &str, total: &Total) -> Rc<str> {
        match total {
            Total::Exact(n) => self.tn(exact, "count", n),
            Total::AtLeast(n) => self.tn(more, "count", n),
        }
    }

    /// For a counted message the page writes many times (see `Lang::counted`).
    pub fn counted(&self, id: &'static str, name: &'static str) -> Counted {
        self.lang.counted(id, name)
    }

    pub fn tn2(
        &self,
        id: &str,
        name1: &str,
        value1: impl Borrow<i64>,
        name2: &str,
        value2: impl Borrow<i64>,
    ) -> String {
        let args = [
            (name1, FluentValue::from(*value1.borrow())),
            (name2, FluentValue::from(*value2.borrow())),
        ];
        self.lang.t_args(id, &args)
    }

    /// For a message the page writes around many values (see `Lang::text_argument`).
    pub fn text_argument(&self, id: &'static str, name: &'static str) -> TextArgument {
        self.lang.text_argument(id, name)
    }

    pub fn money(&self, cents: impl Borrow<Cents>) -> Money {
        self.lang.money(cents.borrow().get())
    }

    pub fn date(&self, epoch: impl Borrow<i64>) -> String {
        self.lang.date(epoch)
    }

    /// The language the header's switch offers (the shop speaks two).
    pub fn other_lang(&self) -> Lang {
        match self.lang {
            Lang::En => Lang::Es,
            Lang::Es => Lang::En,
        }
    }

    /// `/lang/es?next=/this/page`: switches, then comes back here.
    pub fn switch_link(&self, to: impl Borrow<Lang>) -> String {
        let next = serde_urlencoded::to_string([("next", self.here.as_str())]).unwrap_or_default();
        format!("/lang/{}?{next}", to.borrow().code())
    }
}

/// The request's language, as `i18n::LanguageLayer` decided it.
pub fn language_of(parts: &Parts) -> Lang {
    parts.extensions.get::<Lang>().copied().unwrap_or_default()
}

pub async fn flash(session: &Session, level: &str, text: impl Into<String>) -> AppResult<()> {
    let mut flashes = session
        .get::<Vec<Flash>>(FLASH_KEY)
        .await?
        .unwrap_or_default();
    flashes.push(Flash {
        level: level.into(),
        text: text.into(),
    });
    session.insert(FLASH_KEY, flashes).await?;
    Ok(())
}

/// Login: a new session id (so a cookie planted before login is worthless),
/// the user, and a fresh CSRF token.
pub async fn log_in(session: &Session, user: SessionUser) -> AppResult<()> {
    // Someone else logging in on this browser gets none of the last user's
    // session: their cart and messages are dropped, not handed over.
    let previous = session.get::<SessionUser>(USER_KEY).await?;
    if previous.is_some_and(|previous| previous.id != user.id) {
        session.clear().await;
    }
    session.cycle_id().await?;
    session.insert(USER_KEY, user).await?;
    session.insert(CSRF_KEY, new_token()).await?;
    Ok(())
}

/// Logout destroys the session in the store, so a copied cookie stops working on every replica.
pub async fn log_out(session: &Session) -> AppResult<()> {
    session.flush().await?;
    Ok(())
}

/// Whatever a handler wrote to the session, it is stored for as long as its
/// holder warrants: days for a logged-in shopper, minutes for anyone else.
/// Runs inside the session layer, after the handler and before the save.
pub async fn session_lifetime(session: Session, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if session.is_modified() {
        let logged_in = matches!(session.get::<SessionUser>(USER_KEY).await, Ok(Some(_)));
        let lifetime = if logged_in {
            LOGGED_IN_LIFETIME
        } else {
            ANONYMOUS_LIFETIME
        };
        session.set_expiry(Some(Expiry::OnInactivity(lifetime)));
    }
    response
}

/// A logged-in user's request: the application, who is logged in, their
/// session and `P`, the page shown. Anonymous visitors are sent to the login
/// page before the page is read, so their flash messages wait for it there.
pub struct SignedIn<P = Page> {
    pub app: AppState,
    pub user: SessionUser,
    pub session: Session,
    pub page: P,
}

/// The page of `SignedIn<NoPage>`: a request that changes something and
/// redirects reads no page, so a flash message waiting to be shown stays for
/// the next page.
pub struct NoPage;

impl<S: Send + Sync> FromRequestParts<S> for NoPage {
    type Rejection = AppError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> AppResult<NoPage> {
        Ok(NoPage)
    }
}

impl<P: FromRequestParts<AppState, Rejection = AppError>> FromRequestParts<AppState>
    for SignedIn<P>
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> AppResult<SignedIn<P>> {
        let session = session_of(parts).await?;
        let Some(user) = session.get::<SessionUser>(USER_KEY).await? else {
            return Err(AppError::LoginRequired);
        };
        let page = P::from_request_parts(parts, app).await?;
        Ok(SignedIn {
            app: app.clone(),
            user,
            session,
            page,
        })
    }
}

/// Messages next to the fields of a form that was refused.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(HashMap<&'static str, String>);

impl FieldErrors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_insert_with(|| message.into());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps the value, or records the refusal under `field`, in the
    /// request's language.
    pub fn check<T, E: Into<Message>>(
        &mut self,
        field: &'static str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        parsed
            .map_err(|e| self.add(field, e.into().render(i18n::current())))
            .ok()
    }
}

/// Ids in paths are positive integers; anything else is a page that does not exist.
pub fn parse_id(raw: &str) -> AppResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(AppError::NotFound)
}

/// A page's HTML response, from its template.
pub fn render<T: askama::Template>(template: &T) -> AppResult<Response> {
    Ok(axum::response::Html(template.render()?).into_response())
}

/// A page shown with another status than 200: a refused form, a failed step.
pub fn render_as<T: askama::Template>(status: StatusCode, template: &T) -> AppResult<Response> {
    Ok((status, render(template)?).into_response())
}

/// A form page's status: 200 as asked for, 422 when it comes back with an error.
pub fn shown_as<E>(error: &Option<E>) -> StatusCode {
    match error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    }
}
