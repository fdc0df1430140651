//! Which language a request gets (the `lang` cookie, else
//! `Accept-Language`, else English), the layer that sets it for the whole
//! request, and the header's language switch.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use futures::future::{FutureExt as _, Map};
use serde::Deserialize;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use unic_langid::LanguageIdentifier;

use super::lang::{CURRENT, Lang};

/// The cookie that remembers an explicit choice. It lives in the browser, not
/// in the session store, so the choice survives a Redis outage.
pub const COOKIE: &str = "lang";
/// A year: the choice is a preference, not a secret.
const COOKIE_MAX_AGE: u32 = 365 * 24 * 3600;

/// The language for a request: an explicit choice (the `lang` cookie) wins;
/// else the first of the browser's languages, by q-value, that the shop
/// speaks; else English. Garbage in any header is ignored, never an error.
pub fn negotiate(headers: &HeaderMap) -> Lang {
    if let Some(chosen) = cookie_choice(headers) {
        return chosen;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    from_accept_language(accept)
}

fn cookie_choice(headers: &HeaderMap) -> Option<Lang> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| Lang::parse(value))
}

fn from_accept_language(accept: &str) -> Lang {
    if accept.trim().is_empty() {
        return Lang::En;
    }
    // q=0 means "not this language" (RFC 9110 §12.4.2); the crate also
    // reads a quality it cannot parse as 0, so such a language is left out too.
    let requested: Vec<LanguageIdentifier> = accept_language::parse_with_quality(accept)
        .iter()
        .filter(|(_, quality)| *quality > 0.0)
        .filter_map(|(tag, _)| tag.parse().ok())
        .collect();
    let available: Vec<LanguageIdentifier> = Lang::ALL.iter().map(Lang::langid).collect();
    let matched = fluent_langneg::negotiate_languages(
        &requested,
        &available,
        None,
        fluent_langneg::NegotiationStrategy::Lookup,
    );
    matched
        .first()
        .and_then(|id| Lang::parse(&id.to_string()))
        .unwrap_or_default()
}

/// The layer that decides each request's language, makes it available to
/// extractors (a request extension) and to everything the request runs (the
/// task-local behind [`current`]), and marks pages as depending on the headers
/// it was decided from (so no shared cache hands a Spanish page to an English
/// browser).
///
/// A tower service, not `axum::middleware::from_fn`: it does nothing async
/// before the services below it, so it passes their future on as it is.
/// `from_fn` clones the whole stack below and boxes it on every request; as
/// the outermost of the shop's layers, that cost the book page a tenth of
/// its throughput (docs/benchmarks.md, 2026-12-02).
#[derive(Debug, Clone, Copy, Default)]
pub struct LanguageLayer;

impl<S> Layer<S> for LanguageLayer {
    type Service = Language<S>;

    fn layer(&self, inner: S) -> Language<S> {
        Language { inner }
    }
}

/// See [`LanguageLayer`].
#[derive(Debug, Clone)]
pub struct Language<S> {
    inner: S,
}

type WithVary<E> = fn(Result<Response, E>) -> Result<Response, E>;

impl<S> Service<Request> for Language<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Map<TaskLocalFuture<Lang, S::Future>, WithVary<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let lang = negotiate(request.headers());
        request.extensions_mut().insert(lang);
        let vary: WithVary<S::Error> = |result| result.map(vary_on_language);
        CURRENT.scope(lang, self.inner.call(request)).map(vary)
    }
}

/// A page says it was chosen by `Accept-Language` and the `lang` cookie.
fn vary_on_language(mut response: Response) -> Response {
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_page {
        response.headers_mut().append(
            header::VARY,
            HeaderValue::from_static("Accept-Language, Cookie"),
        );
    }
    response
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SwitchQuery {
    pub next: String,
}

/// `GET /lang/{code}?next=/path`: the header's language switch. A plain link
/// (the CSP allows no scripts, and a link needs no CSRF token: it only sets a
/// preference), remembered in a cookie, then back to the page it came from.
/// `secure` (the shop is on https) makes the cookie `Secure`, as its others.
pub fn switch(code: &str, query: &SwitchQuery, secure: bool) -> Response {
    let target = safe_next(&query.next);
    let Some(lang) = Lang::parse(code) else {
        return Redirect::to(target).into_response();
    };
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/; Max-Age={COOKIE_MAX_AGE}; SameSite=Lax{secure}",
        lang.code()
    );
    let mut response = Redirect::to(target).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Where the switch may send the shopper back to: a path on this site only
/// (`/book/catalog?q=x`), never another site (`//evil`, `http:`, `/\evil`).
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control());
    if local { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Lang {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(value).unwrap(),
        );
        negotiate(&headers)
    }

    #[test]
    fn accept_language_picks_the_preferred_language_the_shop_speaks() {
        assert_eq!(accept("es-ES,es;q=0.9,en;q=0.8"), Lang::Es);
        assert_eq!(accept("es-MX"), Lang::Es);
        assert_eq!(accept("en-US,en;q=0.9,es;q=0.8"), Lang::En);
        assert_eq!(
            accept("en;q=0.2, es;q=0.9"),
            Lang::Es,
            "by q-value, not order"
        );
        assert_eq!(accept("fr-FR,fr;q=0.9,es;q=0.5"), Lang::Es);
        assert_eq!(accept("de, fr"), Lang::En);
        assert_eq!(accept(";;,,q=x,garbage;q=2, -"), Lang::En);
        assert_eq!(accept(""), Lang::En);
        assert_eq!(negotiate(&HeaderMap::new()), Lang::En);
    }

    #[test]
    fn a_language_refused_with_q_0_is_not_chosen() {
        assert_eq!(accept("es;q=0"), Lang::En);
        assert_eq!(accept("es;q=0.0"), Lang::En);
        assert_eq!(accept("es;Q=0"), Lang::En);
        assert_eq!(accept("en;q=0, es;q=0.5"), Lang::Es);
        assert_eq!(accept("es;q=0, en;q=0.1"), Lang::En);
    }

    #[test]
    fn the_cookie_overrides_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("es"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; lang=en"));
        assert_eq!(negotiate(&headers), Lang::En);
        headers.insert(header::COOKIE, HeaderValue::from_static("lang=xx"));
        assert_eq!(
            negotiate(&headers),
            Lang::Es,
            "an unknown choice is ignored"
        );
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/book/catalog?q=a"), "/book/catalog?q=a");
        for bad in [
            "//evil.example",
            "http://evil",
            "https:evil",
            "/\\evil",
            "evil",
            "",
            "/\nx",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }
}
