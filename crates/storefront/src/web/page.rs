//! What every page needs from the session: who is logged in, flash messages,
//! the CSRF token; and the extractors that guard logged-in pages and forms.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::state::AppState;

const USER_KEY: &str = "user";
const CSRF_KEY: &str = "csrf";
const FLASH_KEY: &str = "flash";

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

/// The context the base layout renders: navigation, flash messages, CSRF token.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub user: Option<SessionUser>,
    pub flashes: Vec<Flash>,
    pub csrf: String,
}

pub async fn session_of(parts: &mut Parts) -> AppResult<Session> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("session layer missing")))
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
        })
    }
}

impl Page {
    /// Pages with a form for anonymous visitors (login, register) need a token
    /// first; logged-in users got theirs at login.
    pub async fn with_csrf(mut self, session: &Session) -> AppResult<Page> {
        self.csrf = ensure_csrf(session).await?;
        Ok(self)
    }

    pub fn user_id(&self) -> Option<i64> {
        self.user.as_ref().map(|u| u.id)
    }
}

async fn ensure_csrf(session: &Session) -> AppResult<String> {
    if let Some(token) = session.get::<String>(CSRF_KEY).await? {
        return Ok(token);
    }
    let token = new_token();
    session.insert(CSRF_KEY, &token).await?;
    Ok(token)
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// A logged-in user; anonymous visitors are sent to the login page.
pub struct CurrentUser(pub SessionUser);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> AppResult<CurrentUser> {
        let session = session_of(parts).await?;
        match session.get::<SessionUser>(USER_KEY).await? {
            Some(user) => Ok(CurrentUser(user)),
            None => Err(AppError::LoginRequired),
        }
    }
}

/// A urlencoded form that is only accepted with this session's CSRF token
/// and from this site. Every state-changing handler takes one.
pub struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct TokenField {
    #[serde(default)]
    csrf_token: String,
}

const MAX_FORM_BYTES: usize = 64 * 1024;

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> AppResult<CsrfForm<T>> {
        let (mut parts, body) = req.into_parts();
        check_same_site(&parts.headers, state.config.public_origin.as_deref())?;
        let session = session_of(&mut parts).await?;
        let expected = session.get::<String>(CSRF_KEY).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| AppError::BadRequest("form too large".into()))?;
        let sent: TokenField = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        match expected {
            Some(expected) if constant_time_eq(expected.as_bytes(), sent.csrf_token.as_bytes()) => {
            }
            _ => return Err(AppError::CrossSite("missing or wrong CSRF token")),
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(CsrfForm)
            .map_err(|e| AppError::BadRequest(e.to_string()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Browsers say where a form came from; refuse anything that is not this site.
fn check_same_site(headers: &HeaderMap, public_origin: Option<&str>) -> AppResult<()> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site == Some("cross-site") {
        return Err(AppError::CrossSite("Sec-Fetch-Site: cross-site"));
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let same = match public_origin {
        Some(public) => origin == public,
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin.split_once("://").map(|(_, rest)| rest) == Some(host)
        }
    };
    if same {
        Ok(())
    } else {
        Err(AppError::CrossSite("Origin is another site"))
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

    /// Keeps the value, or records the message under `field`.
    pub fn check<T, E: ToString>(
        &mut self,
        field: &'static str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        parsed.map_err(|e| self.add(field, e.to_string())).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn same_site_rules() {
        let ok = |h: &[(&'static str, &'static str)], origin| {
            check_same_site(&headers(h), origin).is_ok()
        };
        assert!(
            ok(&[], None),
            "no Origin: old clients and curl rely on the token alone"
        );
        assert!(ok(
            &[("host", "shop:8080"), ("origin", "http://shop:8080")],
            None
        ));
        assert!(!ok(
            &[("host", "shop:8080"), ("origin", "http://evil.example")],
            None
        ));
        assert!(!ok(&[("origin", "null")], None));
        assert!(!ok(&[("sec-fetch-site", "cross-site")], None));
        assert!(ok(
            &[("origin", "https://shop.example.com")],
            Some("https://shop.example.com")
        ));
        assert!(!ok(
            &[("origin", "http://shop.example.com")],
            Some("https://shop.example.com")
        ));
    }
}
