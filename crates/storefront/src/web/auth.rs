//! Register, log in, log out. URLs and field names are the original's.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_cookies::Cookies;
use tower_sessions::Session;

use super::address;
use super::csrf::AnonymousToken;
use super::device::{attempts_key, known_device, remember_device};
use super::page::{CsrfForm, FieldErrors, Page, SessionUser, flash, log_in, log_out, render_as};
use crate::app::state::AppState;
use crate::domain::{Email, parse_password, person_name};
use crate::edge::client_addr::{self, ClientAddr};
use crate::edge::ratelimit::Verdict;
use crate::error::{AppError, AppResult, set_retry_after};
use crate::i18n::{self, t, t_args};
use crate::password::HashError;
use crate::store::users::{self, InsertUserError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", get(register_page).post(register))
        .route("/login", get(login_page).post(login))
        .route("/logout", get(logout_page).post(logout))
}

#[derive(Template)]
#[template(path = "auth/register.html")]
struct RegisterPage {
    page: Page,
    name: String,
    email: String,
    errors: FieldErrors,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegisterForm {
    name: String,
    email: String,
    password: String,
}

async fn register_page(page: Page, anonymous: AnonymousToken) -> AppResult<Response> {
    show_register(
        page,
        &anonymous,
        RegisterForm::default(),
        FieldErrors::default(),
    )
}

async fn register(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    page: Page,
    session: Session,
    anonymous: AnonymousToken,
    CsrfForm(form): CsrfForm<RegisterForm>,
) -> AppResult<Response> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", person_name(&form.name));
    let email = errors.check("email", Email::parse(&form.email));
    let password = errors.check("password", parse_password(&form.password));
    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        return show_register(page, &anonymous, form, errors);
    };
    let address = client_addr::limit_key(client);
    if let Some(seconds) = app
        .registration_limiter
        .attempt(&address)
        .await
        .map_err(unavailable)?
    {
        app.metrics.registration("throttled");
        errors.add("email", t("register-throttled"));
        let mut response = show_register(page, &anonymous, form, errors)?;
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
        return Ok(response);
    }
    let hash = app.hasher.hash(password).await.map_err(hash_failed)?;
    match create_account(&app, &name, &email, &hash).await {
        Ok(id) => {
            users::set_language(&app.db.pool(), id, i18n::current().code()).await?;
            app.metrics.registration("created");
            flash(&session, "success", t("register-done")).await?;
            if app.config.mail.confirm_addresses {
                app.mailer.wake_sender();
                flash(&session, "info", t("register-confirm-sent")).await?;
            }
            Ok(Redirect::to("/login").into_response())
        }
        Err(InsertUserError::DuplicateEmail) => {
            app.metrics.registration("duplicate");
            errors.add("email", t("register-email-taken"));
            show_register(page, &anonymous, form, errors)
        }
        Err(InsertUserError::Db(err)) => Err(err.into()),
    }
}

/// Writes the account and, when the shop asks for confirmed addresses, the
/// link and mail that confirm it, in one transaction: no account is left
/// without its mail, nor a mail without its account.
async fn create_account(
    app: &AppState,
    name: &str,
    email: &Email,
    hash: &str,
) -> Result<i64, InsertUserError> {
    let pool = &app.db.pool();
    if !app.config.mail.confirm_addresses {
        return users::insert(pool, name, email, hash).await;
    }
    let mut tx = pool.begin().await?;
    let id = users::insert_on(&mut tx, name, email, hash).await?;
    address::mail_a_link(app, &mut tx, id, name, email.as_str()).await?;
    tx.commit().await?;
    Ok(id)
}

/// The register form: empty, or refused (422) with what was typed and why.
fn show_register(
    page: Page,
    anonymous: &AnonymousToken,
    form: RegisterForm,
    errors: FieldErrors,
) -> AppResult<Response> {
    let status = match errors.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::UNPROCESSABLE_ENTITY,
    };
    render_as(
        status,
        &RegisterPage {
            page: page.with_csrf(anonymous),
            name: form.name,
            email: form.email,
            errors,
        },
    )
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    page: Page,
    email: String,
    error: Option<String>,
    /// Where the shopper goes after logging in (a path on this site).
    next: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    email: String,
    password: String,
    next: String,
}

/// `/login?next=/book/12`: the page that sent the shopper to log in.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginQuery {
    next: String,
}

/// Where a login leads: back to the page that asked for it (a path on this
/// site only, never another site), else the catalog.
fn after_login(next: &str) -> &str {
    match i18n::safe_next(next.trim()) {
        "/" if next.trim() != "/" => "/book/catalog",
        path => path,
    }
}

async fn login_page(
    page: Page,
    anonymous: AnonymousToken,
    Query(query): Query<LoginQuery>,
) -> AppResult<Response> {
    let next = after_login(&query.next).to_string();
    show_login(page, &anonymous, String::new(), next, StatusCode::OK, None)
}

const LOGIN_FAILED: &str = "login-failed";

/// Every attempt is counted (per address, then per account) before its
/// password is checked, and the password is checked only within the hashing
/// budget; an attempt the budget refuses (503) is given back: see
/// `ratelimit` and `password::Hasher`.
async fn login(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    cookies: Cookies,
    page: Page,
    session: Session,
    anonymous: AnonymousToken,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> AppResult<Response> {
    let refuse = |status: StatusCode, error: &'static str| {
        let email = form.email.clone();
        let next = after_login(&form.next).to_string();
        show_login(page.clone(), &anonymous, email, next, status, Some(error))
    };
    let Ok(email) = Email::parse(&form.email) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, LOGIN_FAILED);
    };
    let address = client_addr::limit_key(client);
    // A known device's attempts count apart from everyone else's on the account.
    let device = known_device(&app, &cookies, email.as_str());
    let account = attempts_key(email.as_str(), device.as_deref());
    let verdict = app
        .login_limiter
        .attempt(&address, &account)
        .await
        .map_err(unavailable)?;
    if let Some(response) = throttled(&app, verdict, refuse) {
        return response;
    }
    let user = users::find_by_email(&app.db.pool(), &email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = match app
        .hasher
        .verify(hash, form.password.clone(), device.is_some())
        .await
    {
        Err(HashError::Busy) => {
            // Refused for overload, not judged: a flood must not spend this
            // user's attempts.
            app.login_limiter
                .not_checked(&address, &account)
                .await
                .map_err(unavailable)?;
            return Err(hash_failed(HashError::Busy));
        }
        verified => verified.map_err(hash_failed)?,
    };
    match (verified, user) {
        (true, Some(user)) => {
            app.login_limiter
                .succeeded(&address, &account)
                .await
                .map_err(unavailable)?;
            remember_device(&app, &cookies, email.as_str(), device);
            users::set_language(&app.db.pool(), user.id, i18n::current().code()).await?;
            let who = SessionUser {
                id: user.id,
                name: user.name.clone(),
                is_admin: user.is_admin(),
            };
            log_in(&session, who).await?;
            let welcome = t_args("login-welcome-back", &[("name", user.name.as_str().into())]);
            flash(&session, "success", welcome).await?;
            Ok(Redirect::to(after_login(&form.next)).into_response())
        }
        _ => refuse(StatusCode::UNAUTHORIZED, LOGIN_FAILED),
    }
}

/// The login page again with a 429 and Retry-After, when a limit refused the attempt.
fn throttled(
    app: &AppState,
    verdict: Verdict,
    refuse: impl Fn(StatusCode, &'static str) -> AppResult<Response>,
) -> Option<AppResult<Response>> {
    let (limit, seconds, message) = match verdict {
        Verdict::Allowed => return None,
        Verdict::AddressThrottled(s) => ("address", s, "login-throttled-address"),
        Verdict::AccountThrottled(s) => ("account", s, "login-throttled-account"),
    };
    app.metrics.login_throttled(limit);
    Some(
        refuse(StatusCode::TOO_MANY_REQUESTS, message).map(|mut response| {
            set_retry_after(&mut response, seconds);
            response
        }),
    )
}

/// The login form: empty, or refused with the address typed and the catalogue id of why.
fn show_login(
    page: Page,
    anonymous: &AnonymousToken,
    email: String,
    next: String,
    status: StatusCode,
    error: Option<&'static str>,
) -> AppResult<Response> {
    let page = page.with_csrf(anonymous);
    render_as(
        status,
        &LoginPage {
            error: error.map(|id| page.t(id).into_owned()),
            page,
            email,
            next,
        },
    )
}

pub(super) fn unavailable(err: anyhow::Error) -> AppError {
    AppError::Unavailable(format!("rate limiter: {err}"))
}

pub(super) fn hash_failed(err: HashError) -> AppError {
    match err {
        HashError::Busy => AppError::Busy("password hashing queue full"),
        HashError::Failed(err) => AppError::Internal(err),
    }
}

#[derive(Template)]
#[template(path = "auth/logout.html")]
struct LogoutPage {
    page: Page,
}

/// `GET /logout` (a bookmark, a typed address): a page with the log-out
/// button, since logging out is a form (CSRF) and a link must not do it.
/// Nobody logged in: the login page.
async fn logout_page(page: Page) -> AppResult<Response> {
    if page.user.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    render_as(StatusCode::OK, &LogoutPage { page })
}

async fn logout(
    session: Session,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> AppResult<Response> {
    log_out(&session).await?;
    Ok(Redirect::to("/login").into_response())
}
