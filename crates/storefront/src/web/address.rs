//! Confirming an account's e-mail address: a link mailed at registration
//! (and again on request, within an hourly limit) leads to a page whose
//! button confirms it. Until then the account browses, fills its cart and
//! pays as anyone, but its unpaid orders hold no copies (`store::orders`),
//! so throwaway accounts cannot hoard the catalog. Off when
//! `ADDRESS_VERIFICATION=off` (the default when the shop sends no mail).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sqlx::AnyConnection;
use tower_sessions::Session;

use super::csrf::AnonymousToken;
use super::page::{CsrfForm, NoPage, Page, SignedIn, flash, render_as};
use crate::app::state::AppState;
use crate::error::{AppError, AppResult};
use crate::i18n::{self, t};
use crate::mail::letters;
use crate::store::link_tokens::{self, LinkKind};
use crate::store::{address_verifications, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/confirm", get(confirm_page).post(confirm))
        .route("/account/confirm/resend", post(send_again))
}

/// Writes a confirmation link for the account and its mail in the caller's
/// transaction (registration's, or a request to send it again).
pub(super) async fn mail_a_link(
    app: &AppState,
    conn: &mut AnyConnection,
    user_id: i64,
    name: &str,
    email: &str,
) -> sqlx::Result<()> {
    let settings = &app.config.mail;
    let token = link_tokens::new_token();
    let link = format!("{}/account/confirm?token={token}", app.mailer.link_origin());
    let hours = settings.confirm_link_ttl.as_secs().div_ceil(3600);
    let letter = letters::confirm_address(email, name, &link, hours);
    link_tokens::create(
        conn,
        LinkKind::AddressConfirmation,
        user_id,
        &token,
        settings.confirm_link_ttl,
    )
    .await?;
    app.mailer.enqueue(conn, &letter).await?;
    Ok(())
}

#[derive(Template)]
#[template(path = "auth/confirm.html")]
struct ConfirmPage {
    page: Page,
    /// `None`: the link does not work (used, expired or mangled).
    token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenForm {
    token: String,
}

async fn confirm_page(
    State(app): State<AppState>,
    page: Page,
    anonymous: AnonymousToken,
    Query(query): Query<TokenForm>,
) -> AppResult<Response> {
    if !link_tokens::is_usable(&app.db.pool(), LinkKind::AddressConfirmation, &query.token).await? {
        return show_unusable(page, &anonymous);
    }
    let page = page.with_csrf(&anonymous);
    render_as(
        StatusCode::OK,
        &ConfirmPage {
            page,
            token: Some(query.token),
        },
    )
}

/// The button, not the link itself, confirms: a mail scanner that opens
/// links confirms nothing.
async fn confirm(
    State(app): State<AppState>,
    page: Page,
    session: Session,
    anonymous: AnonymousToken,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> AppResult<Response> {
    let Some(user_id) = address_verifications::confirm(&app.db.pool(), &form.token).await? else {
        return show_unusable(page, &anonymous);
    };
    app.metrics.address_confirmation("confirmed");
    tracing::info!(user_id, "address confirmed");
    flash(&session, "success", t("confirm-done")).await?;
    let signed_in_here = page.user_id() == Some(user_id);
    let next = if signed_in_here { "/orders" } else { "/login" };
    Ok(Redirect::to(next).into_response())
}

/// Marks `page` when its shopper's address waits for confirmation, so that
/// it says so and offers the link. Read from the database each time: a link
/// used in another browser counts at once.
pub(super) async fn note_unconfirmed(app: &AppState, page: &mut Page) -> AppResult<()> {
    if let Some(user_id) = page.user_id()
        && app.config.mail.confirm_addresses
    {
        page.address_unconfirmed = !users::address_confirmed(&app.db.pool(), user_id).await?;
    }
    Ok(())
}

/// 410 Gone: the link was used, expired, or never existed.
fn show_unusable(page: Page, anonymous: &AnonymousToken) -> AppResult<Response> {
    let page = page.with_csrf(anonymous);
    render_as(StatusCode::GONE, &ConfirmPage { page, token: None })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SendAgainForm {
    /// The page the button was on, where the shopper goes back to.
    next: String,
}

async fn send_again(
    me: SignedIn<NoPage>,
    CsrfForm(form): CsrfForm<SendAgainForm>,
) -> AppResult<Response> {
    let next = match i18n::safe_next(form.next.trim()) {
        "/" => "/orders",
        path => path,
    };
    let (level, message) = send_again_if_allowed(&me).await?;
    flash(&me.session, level, t(message)).await?;
    Ok(Redirect::to(next).into_response())
}

/// Sends a new link unless the address is confirmed already or the
/// account's hourly limit is spent; says which, as a flash message.
async fn send_again_if_allowed(me: &SignedIn<NoPage>) -> AppResult<(&'static str, &'static str)> {
    let app = &me.app;
    let pool = &app.db.pool();
    let user = users::find_by_id(pool, me.user.id)
        .await?
        .ok_or(AppError::LoginRequired)?;
    if user.address_confirmed() || !app.config.mail.confirm_addresses {
        app.metrics.address_confirmation("already_confirmed");
        return Ok(("success", "confirm-already"));
    }
    let limit = app.config.mail.confirm_mails_per_account_hour;
    let mut tx = pool.begin().await?;
    let made = link_tokens::made_in_last_hour(&mut tx, LinkKind::AddressConfirmation, user.id);
    if made.await? >= limit {
        app.metrics.address_confirmation("limited");
        return Ok(("error", "confirm-limited"));
    }
    mail_a_link(app, &mut tx, user.id, &user.name, &user.email).await?;
    tx.commit().await?;
    app.mailer.wake_sender();
    app.metrics.address_confirmation("sent");
    Ok(("success", "confirm-sent"))
}
