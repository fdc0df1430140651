//! Administration: users and an orders overview. Admin rights are read from
//! the database on each request.

use askama::Template;
use axum::Router;
use axum::response::Response;
use axum::routing::get;

use super::page::{Page, SignedIn, render};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::orders::{self, OrderOverview};
use crate::store::users::{self, User};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users_page))
        .route("/admin/orders", get(orders_page))
}

async fn require_admin(me: &SignedIn) -> AppResult<()> {
    match users::is_admin(&me.app.db.pool, me.user.id).await? {
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

async fn users_page(me: SignedIn) -> AppResult<Response> {
    require_admin(&me).await?;
    let users = users::list_all(&me.app.db.pool).await?;
    render(&UsersPage {
        page: me.page,
        users,
    })
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct OrdersPage {
    page: Page,
    orders: Vec<OrderOverview>,
}

async fn orders_page(me: SignedIn) -> AppResult<Response> {
    require_admin(&me).await?;
    let orders = orders::recent_all(&me.app.db.pool, 200).await?;
    render(&OrdersPage {
        page: me.page,
        orders,
    })
}
