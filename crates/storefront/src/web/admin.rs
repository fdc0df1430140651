//! Administration: users and orders, newest first, a page at a time and
//! searchable (a shop with thousands of accounts cannot be one table). Admin
//! rights are read from the database on each request.

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::page::{Page, SignedIn, render};
use crate::app::state::AppState;
use crate::error::{AppError, AppResult};
use crate::store::orders::{self, OrderOverview};
use crate::store::users::{self, User};

/// Rows per admin page.
const PAGE_ROWS: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users_page))
        .route("/admin/orders", get(orders_page))
}

async fn require_admin(me: &SignedIn) -> AppResult<()> {
    match users::is_admin(&me.app.db.pool(), me.user.id).await? {
        true => Ok(()),
        false => Err(AppError::Forbidden),
    }
}

/// `?q=` what to look for, `?before=` the last id of the previous page. A
/// `before` that is not a number is the first page (a hand-edited link).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    q: String,
    before: String,
}

impl ListQuery {
    fn search(&self) -> &str {
        self.q.trim()
    }

    fn before(&self) -> Option<i64> {
        self.before.parse().ok().filter(|id| *id > 0)
    }
}

/// The link to the next (older) page, when there is one.
fn older_link(path: &str, search: &str, last_id: Option<i64>, more: bool) -> Option<String> {
    let last_id = last_id.filter(|_| more)?;
    let query = serde_urlencoded::to_string([("q", search), ("before", &last_id.to_string())]);
    Some(format!("{path}?{}", query.unwrap_or_default()))
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    page: Page,
    users: Vec<User>,
    search: String,
    older: Option<String>,
}

async fn users_page(me: SignedIn, Query(query): Query<ListQuery>) -> AppResult<Response> {
    require_admin(&me).await?;
    let search = query.search();
    let found = users::page_for_admin(&me.app.db.pool(), search, query.before(), PAGE_ROWS).await?;
    let older = older_link(
        "/admin/users",
        search,
        found.rows.last().map(|u| u.id),
        found.more,
    );
    render(&UsersPage {
        page: me.page,
        users: found.rows,
        search: search.to_owned(),
        older,
    })
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct OrdersPage {
    page: Page,
    orders: Vec<OrderOverview>,
    search: String,
    older: Option<String>,
}

async fn orders_page(me: SignedIn, Query(query): Query<ListQuery>) -> AppResult<Response> {
    require_admin(&me).await?;
    let search = query.search();
    let found =
        orders::page_for_admin(&me.app.db.pool(), search, query.before(), PAGE_ROWS).await?;
    let older = older_link(
        "/admin/orders",
        search,
        found.rows.last().map(|o| o.id),
        found.more,
    );
    render(&OrdersPage {
        page: me.page,
        orders: found.rows,
        search: search.to_owned(),
        older,
    })
}
