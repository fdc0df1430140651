//! Administration: users and an orders overview. Admin rights are read from
//! the database on each request.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::page::{CurrentUser, Page, render};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::orders::{self, OrderOverview};
use crate::store::users::{self, User};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users_page))
        .route("/admin/orders", get(orders_page))
}

async fn require_admin(app: &AppState, user_id: i64) -> AppResult<()> {
    match users::is_admin(&app.db.pool, user_id).await? {
        true => Ok(()),
        false => Err(AppError::Forbidden),
    }
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    page: Page,
    users: Vec<User>,
}

async fn users_page(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
) -> AppResult<Response> {
    require_admin(&app, user.id).await?;
    let users = users::list_all(&app.db.pool).await?;
    render(&UsersPage { page, users })
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct OrdersPage {
    page: Page,
    orders: Vec<OrderOverview>,
}

async fn orders_page(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
) -> AppResult<Response> {
    require_admin(&app, user.id).await?;
    let orders = orders::recent_all(&app.db.pool, 200).await?;
    render(&OrdersPage { page, orders })
}
