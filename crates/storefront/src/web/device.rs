//! Device cookies (OWASP's defence against account lockout): a browser that
//! has logged in to an account carries a cookie, signed with the key every
//! replica shares, naming that account and a random device id. A login from
//! it is counted apart from everyone else's attempts on the account, so
//! strangers who spend the account's attempts lock out unknown devices only;
//! and when the password-hashing budget is full it may use a small reserve
//! that unknown devices never touch (`password::Hasher`).

use std::time::Duration;

use tower_cookies::cookie::SameSite;
use tower_cookies::{Cookie, Cookies};

use super::csrf::{is_token_of_len, new_token};
use crate::app::state::AppState;

const DEVICE_COOKIE: &str = "bookstore_device";
/// How long a browser stays known without logging in again.
const REMEMBERED: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The device id this browser's cookie gives for `account` (the e-mail as
/// typed at login, lowercased), if it is a known device of that account.
pub fn known_device(app: &AppState, cookies: &Cookies, account: &str) -> Option<String> {
    let cookie = cookies.signed(&app.csrf_key).get(DEVICE_COOKIE)?;
    let (named, device) = cookie.value().split_once('.')?;
    (named == as_hex(account) && is_token_of_len(device, 32)).then(|| device.to_owned())
}

/// After a correct password: this browser is (still) a known device of
/// `account`; a browser that knew another account now knows this one.
pub fn remember_device(app: &AppState, cookies: &Cookies, account: &str, device: Option<String>) {
    let device = device.unwrap_or_else(|| new_token()[..32].to_owned());
    let cookie = Cookie::build((DEVICE_COOKIE, format!("{}.{device}", as_hex(account))))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(app.config.secure_cookies())
        .max_age(tower_cookies::cookie::time::Duration::seconds(
            REMEMBERED.as_secs() as i64,
        ))
        .build();
    cookies.signed(&app.csrf_key).add(cookie);
}

/// An e-mail address may hold characters a cookie may not (`,`, `;`, `"`).
fn as_hex(account: &str) -> String {
    account.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The key the account's attempts count under: the account's own for an
/// unknown device, one of its own for a known device.
pub fn attempts_key(account: &str, device: Option<&str>) -> String {
    match device {
        Some(device) => format!("{account}:device:{device}"),
        None => account.to_owned(),
    }
}
