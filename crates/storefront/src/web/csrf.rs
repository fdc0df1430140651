//! Cross-site request forgery: every form carries a token the attacker's page
//! cannot know, and must come from this site.
//!
//! A logged-in shopper's token lives in the session (created at login). An
//! anonymous visitor (the login and register forms) has no session, and gets
//! none just for looking: the token is a random value in a cookie signed with
//! a key all replicas share (`store::secrets`), so a flood of anonymous page
//! views writes nothing anywhere, and a cookie planted from a sibling domain
//! is refused for want of a signature.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use rand::Rng;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_cookies::cookie::SameSite;
use tower_cookies::{Cookie, Cookies, Key};

use tower_sessions::Session;

use crate::app::state::AppState;
use crate::error::{AppError, AppResult};

const ANONYMOUS_COOKIE: &str = "bookstore_csrf";
/// Where a logged-in shopper's token is kept in the session.
pub const CSRF_KEY: &str = "csrf";

/// The request's session, which the session layer put there.
pub async fn session_of(parts: &mut Parts) -> AppResult<Session> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("session layer missing")))
}
/// The name under which the shared signing key is kept in the database.
pub const KEY_NAME: &str = "csrf-cookie-key";

/// A fresh signing key, as stored: 64 random bytes, hex.
pub fn new_key_hex() -> String {
    let bytes: [u8; 64] = rand::rng().random();
    hex(&bytes)
}

pub fn key_from_hex(stored: &str) -> anyhow::Result<Key> {
    let bytes = (0..stored.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(stored.get(i..i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| anyhow::anyhow!("the stored CSRF key is not hex"))?;
    Key::try_from(bytes.as_slice()).map_err(|e| anyhow::anyhow!("the stored CSRF key: {e}"))
}

pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex(&bytes)
}

/// Whether `key` is `len` lowercase hex digits, as [`new_token`] (or a prefix
/// of one) makes them: forms' keys that are not are ignored.
pub fn is_token_of_len(key: &str, len: usize) -> bool {
    key.len() == len && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The anonymous visitor's token, kept in a signed cookie.
pub struct AnonymousToken {
    cookies: Cookies,
    app: AppState,
}

impl FromRequestParts<AppState> for AnonymousToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> AppResult<Self> {
        let cookies = parts
            .extensions
            .get::<Cookies>()
            .cloned()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("cookie layer missing")))?;
        Ok(AnonymousToken {
            cookies,
            app: app.clone(),
        })
    }
}

impl AnonymousToken {
    /// The token this visitor's cookie carries, if its signature holds.
    pub fn current(&self) -> Option<String> {
        let signed = self.cookies.signed(&self.app.csrf_key);
        signed.get(ANONYMOUS_COOKIE).map(|c| c.value().to_string())
    }

    /// The current token, or a new one set in the cookie.
    pub fn issue(&self) -> String {
        if let Some(token) = self.current() {
            return token;
        }
        let token = new_token();
        let cookie = Cookie::build((ANONYMOUS_COOKIE, token.clone()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.app.config.secure_cookies())
            .build();
        self.cookies.signed(&self.app.csrf_key).add(cookie);
        token
    }
}

/// A urlencoded form that is only accepted with this visitor's CSRF token
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
        let expected = match session.get::<String>(CSRF_KEY).await? {
            Some(token) => Some(token),
            None => AnonymousToken::from_request_parts(&mut parts, state)
                .await?
                .current(),
        };
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(body_error)?;
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

/// A body that stopped arriving (the listener's body timeout) or ran past the limit.
fn body_error(err: axum::Error) -> AppError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(cause) = source {
        if cause.is::<tower_http::timeout::TimeoutError>() {
            return AppError::RequestTimeout;
        }
        source = cause.source();
    }
    AppError::PayloadTooLarge
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

    #[test]
    fn stored_keys_round_trip() {
        let stored = new_key_hex();
        assert_eq!(stored.len(), 128);
        assert!(key_from_hex(&stored).is_ok());
        assert!(key_from_hex("zz").is_err());
        assert!(key_from_hex("00ff").is_err(), "too short for a signing key");
    }
}
