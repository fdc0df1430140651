//! "Forgot your password?": a link by mail that works once, for a short
//! while, to a form that sets a new password and logs the account out
//! everywhere. The answer to a request is the same whether or not the
//! address has an account, so the form cannot be used to find out who shops
//! here.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;

use super::auth::{hash_failed, unavailable};
use super::csrf::AnonymousToken;
use super::page::{CsrfForm, FieldErrors, Page, flash, log_out, render_as};
use crate::app::state::AppState;
use crate::domain::{Email, parse_password};
use crate::edge::client_addr::{self, ClientAddr};
use crate::error::AppResult;
use crate::i18n::t;
use crate::mail::letters;
use crate::store::link_tokens::{self, LinkKind};
use crate::store::{password_resets, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/password/forgot", get(forgot_page).post(request_link))
        .route("/password/reset", get(reset_page).post(reset))
}

#[derive(Template)]
#[template(path = "auth/forgot.html")]
struct ForgotPage {
    page: Page,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ForgotForm {
    email: String,
}

async fn forgot_page(page: Page, anonymous: AnonymousToken) -> AppResult<Response> {
    show_forgot(page, &anonymous, String::new(), None, StatusCode::OK)
}

fn show_forgot(
    page: Page,
    anonymous: &AnonymousToken,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> AppResult<Response> {
    render_as(
        status,
        &ForgotPage {
            page: page.with_csrf(anonymous),
            email,
            error,
        },
    )
}

async fn request_link(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    page: Page,
    session: Session,
    anonymous: AnonymousToken,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> AppResult<Response> {
    let mut errors = FieldErrors::default();
    let Some(email) = errors.check("email", Email::parse(&form.email)) else {
        let why = errors.get("email").map(str::to_string);
        return show_forgot(
            page,
            &anonymous,
            form.email,
            why,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let address = client_addr::limit_key(client);
    if let Some(seconds) = app
        .reset_limiter
        .attempt(&address)
        .await
        .map_err(unavailable)?
    {
        app.metrics.password_reset("throttled");
        let why = Some(t("reset-throttled"));
        let mut response = show_forgot(
            page,
            &anonymous,
            form.email,
            why,
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
        return Ok(response);
    }
    let outcome = mail_a_link(&app, &email).await?;
    app.metrics.password_reset(outcome);
    flash(&session, "success", t("reset-sent")).await?;
    Ok(Redirect::to("/login").into_response())
}

/// Writes a link and its mail in one transaction, when the address has an
/// account within its hourly limit; says which happened (for the metrics only).
async fn mail_a_link(app: &AppState, email: &Email) -> AppResult<&'static str> {
    let pool = &app.db.pool();
    let Some(user) = users::find_by_email(pool, email).await? else {
        return Ok("unknown");
    };
    let settings = &app.config.mail;
    let mut tx = pool.begin().await?;
    let made = link_tokens::made_in_last_hour(&mut tx, LinkKind::PasswordReset, user.id);
    if made.await? >= settings.resets_per_account_hour {
        return Ok("account_limited");
    }
    let token = link_tokens::new_token();
    let link = format!("{}/password/reset?token={token}", app.mailer.link_origin());
    let minutes = settings.reset_link_ttl.as_secs().div_ceil(60);
    let letter = letters::password_reset(&user.email, &user.name, &link, minutes);
    link_tokens::create(
        &mut tx,
        LinkKind::PasswordReset,
        user.id,
        &token,
        settings.reset_link_ttl,
    )
    .await?;
    app.mailer.enqueue(&mut tx, &letter).await?;
    tx.commit().await?;
    app.mailer.wake_sender();
    Ok("requested")
}

#[derive(Template)]
#[template(path = "auth/reset.html")]
struct ResetPage {
    page: Page,
    /// `None`: the link does not work (used, expired or mangled).
    token: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetForm {
    token: String,
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetQuery {
    token: String,
}

async fn reset_page(
    State(app): State<AppState>,
    page: Page,
    anonymous: AnonymousToken,
    Query(query): Query<ResetQuery>,
) -> AppResult<Response> {
    if !link_tokens::is_usable(&app.db.pool(), LinkKind::PasswordReset, &query.token).await? {
        return show_unusable(page, &anonymous);
    }
    show_reset(page, &anonymous, query.token, None, StatusCode::OK)
}

async fn reset(
    State(app): State<AppState>,
    page: Page,
    session: Session,
    anonymous: AnonymousToken,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> AppResult<Response> {
    // A dead link is told before the password is judged or hashed.
    if !link_tokens::is_usable(&app.db.pool(), LinkKind::PasswordReset, &form.token).await? {
        return show_unusable(page, &anonymous);
    }
    let mut errors = FieldErrors::default();
    let Some(password) = errors.check("password", parse_password(&form.password)) else {
        let why = errors.get("password").map(str::to_string);
        return show_reset(
            page,
            &anonymous,
            form.token,
            why,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let hash = app.hasher.hash(password).await.map_err(hash_failed)?;
    let Some(user_id) = password_resets::redeem(&app.db.pool(), &form.token, &hash).await? else {
        return show_unusable(page, &anonymous);
    };
    let ended = app
        .sessions
        .end_sessions_of(user_id)
        .await
        .map_err(|err| unavailable(err.into()))?;
    log_out(&session).await?;
    app.metrics.password_reset("completed");
    tracing::info!(
        user_id,
        sessions_ended = ended,
        "password reset: a new password set, the account logged out everywhere"
    );
    flash(&session, "success", t("reset-done")).await?;
    Ok(Redirect::to("/login").into_response())
}

fn show_reset(
    page: Page,
    anonymous: &AnonymousToken,
    token: String,
    error: Option<String>,
    status: StatusCode,
) -> AppResult<Response> {
    let page = page.with_csrf(anonymous);
    render_as(
        status,
        &ResetPage {
            page,
            token: Some(token),
            error,
        },
    )
}

/// 410 Gone: the link was used, expired, or never existed.
fn show_unusable(page: Page, anonymous: &AnonymousToken) -> AppResult<Response> {
    let page = page.with_csrf(anonymous);
    render_as(
        StatusCode::GONE,
        &ResetPage {
            page,
            token: None,
            error: None,
        },
    )
}
