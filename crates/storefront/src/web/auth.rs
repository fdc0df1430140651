//! Register, log in, log out. URLs and field names are the original's.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::page::{CsrfForm, FieldErrors, Page, SessionUser, flash, log_in, log_out};
use super::render;
use crate::domain::{Email, bounded_text, parse_password};
use crate::error::{AppError, AppResult};
use crate::password;
use crate::state::AppState;
use crate::store::users::{self, InsertUserError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", get(register_page).post(register))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
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

async fn register_page(page: Page, session: Session) -> AppResult<Response> {
    let page = page.with_csrf(&session).await?;
    render(&RegisterPage {
        page,
        name: String::new(),
        email: String::new(),
        errors: FieldErrors::default(),
    })
}

async fn register(
    State(app): State<AppState>,
    page: Page,
    session: Session,
    CsrfForm(form): CsrfForm<RegisterForm>,
) -> AppResult<Response> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", bounded_text(&form.name, 100, "Enter your name."));
    let email = errors.check("email", Email::parse(&form.email));
    let password = errors.check("password", parse_password(&form.password));
    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        return refuse_register(page, &session, form, errors).await;
    };
    let hash = password::hash(password).await?;
    match users::insert(&app.db.pool, &name, &email, &hash).await {
        Ok(_) => {
            flash(
                &session,
                "success",
                "Your account is ready. Log in to start shopping.",
            )
            .await?;
            Ok(Redirect::to("/login").into_response())
        }
        Err(InsertUserError::DuplicateEmail) => {
            errors.add(
                "email",
                "That e-mail address is already registered. Log in instead?",
            );
            refuse_register(page, &session, form, errors).await
        }
        Err(InsertUserError::Db(err)) => Err(err.into()),
    }
}

async fn refuse_register(
    page: Page,
    session: &Session,
    form: RegisterForm,
    errors: FieldErrors,
) -> AppResult<Response> {
    let page = page.with_csrf(session).await?;
    let body = render(&RegisterPage {
        page,
        name: form.name,
        email: form.email,
        errors,
    })?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    page: Page,
    email: String,
    error: Option<&'static str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login_page(page: Page, session: Session) -> AppResult<Response> {
    let page = page.with_csrf(&session).await?;
    render(&LoginPage {
        page,
        email: String::new(),
        error: None,
    })
}

async fn login(
    State(app): State<AppState>,
    page: Page,
    session: Session,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> AppResult<Response> {
    let refuse = |status: StatusCode, error: &'static str| {
        refuse_login(
            page.clone(),
            session.clone(),
            form.email.clone(),
            status,
            error,
        )
    };
    let Ok(email) = Email::parse(&form.email) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Login failed: check your e-mail and password.",
        )
        .await;
    };
    if app
        .login_limiter
        .is_blocked(email.as_str())
        .await
        .map_err(unavailable)?
    {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Wait 15 minutes and try again.",
        )
        .await;
    }
    let user = users::find_by_email(&app.db.pool, &email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    match (password::verify(hash, form.password.clone()).await?, user) {
        (true, Some(user)) => {
            app.login_limiter
                .clear(email.as_str())
                .await
                .map_err(unavailable)?;
            let who = SessionUser {
                id: user.id,
                name: user.name.clone(),
                is_admin: user.is_admin(),
            };
            log_in(&session, who).await?;
            flash(&session, "success", format!("Welcome back, {}.", user.name)).await?;
            Ok(Redirect::to("/book/catalog").into_response())
        }
        _ => {
            app.login_limiter
                .record_failure(email.as_str())
                .await
                .map_err(unavailable)?;
            refuse(
                StatusCode::UNAUTHORIZED,
                "Login failed: check your e-mail and password.",
            )
            .await
        }
    }
}

async fn refuse_login(
    page: Page,
    session: Session,
    email: String,
    status: StatusCode,
    error: &'static str,
) -> AppResult<Response> {
    let page = page.with_csrf(&session).await?;
    let body = render(&LoginPage {
        page,
        email,
        error: Some(error),
    })?;
    Ok((status, body).into_response())
}

fn unavailable(err: anyhow::Error) -> AppError {
    AppError::Unavailable(format!("rate limiter: {err}"))
}

async fn logout(
    session: Session,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> AppResult<Response> {
    log_out(&session).await?;
    Ok(Redirect::to("/login").into_response())
}
