//! Browsing: home, the catalog with search, sorting and pages, a book's page and its cover.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::page::{Page, parse_id, render};
use crate::cover;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::books::{self, Book, CatalogPage as Found, CatalogQuery, Sort};
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/book/catalog", get(catalog))
        .route("/book/{id}", get(book_page))
        .route("/book/{id}/cover.svg", get(cover_svg))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: Page,
    book_count: i64,
}

async fn home(State(app): State<AppState>, page: Page) -> AppResult<Response> {
    let book_count = books::count(&app.db.pool).await?;
    render(&HomePage { page, book_count })
}

pub const DEFAULT_PER_PAGE: i64 = 24;
/// The original showed every book on one page; 100 keeps that possible.
pub const MAX_PER_PAGE: i64 = 100;

#[derive(Deserialize, Default)]
#[serde(default)]
struct CatalogParams {
    q: String,
    sort: String,
    page: String,
    per_page: String,
}

impl CatalogParams {
    /// Query strings are typed by hand, so anything odd falls back to a default instead of failing.
    fn to_query(&self) -> CatalogQuery {
        let number = |raw: &str, default: i64| {
            raw.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .unwrap_or(default)
        };
        CatalogQuery {
            search: self.q.trim().chars().take(100).collect(),
            sort: Sort::parse(&self.sort),
            page: number(&self.page, 1).min(100_000),
            per_page: number(&self.per_page, DEFAULT_PER_PAGE).min(MAX_PER_PAGE),
        }
    }
}

#[derive(Template)]
#[template(path = "catalog/catalog.html")]
struct CatalogPage {
    page: Page,
    found: Arc<Found>,
    query: CatalogQuery,
    pages: i64,
    sorts: [Sort; 5],
}

impl CatalogPage {
    /// The link to another page of the same search.
    fn page_link(&self, page: &i64) -> String {
        let params = [
            ("q", self.query.search.clone()),
            ("sort", self.query.sort.key().to_string()),
            ("per_page", self.query.per_page.to_string()),
            ("page", page.to_string()),
        ];
        format!(
            "/book/catalog?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    }
}

async fn catalog(
    State(app): State<AppState>,
    page: Page,
    Query(params): Query<CatalogParams>,
) -> AppResult<Response> {
    let query = params.to_query();
    let found = app.catalog_page(&query).await?;
    let pages = ((found.total + query.per_page - 1) / query.per_page).max(1);
    render(&CatalogPage {
        page,
        found,
        query,
        pages,
        sorts: Sort::ALL,
    })
}

#[derive(Template)]
#[template(path = "catalog/book.html")]
struct BookPage {
    page: Page,
    book: Book,
    is_seller: bool,
    quantity: String,
    quantity_error: Option<String>,
}

async fn book_page(
    State(app): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = parse_id(&id)?;
    let book = Option::clone(&*app.book(id).await?).ok_or(AppError::NotFound)?;
    let is_seller = page.user_id() == Some(book.seller_id);
    render(&BookPage {
        page,
        book,
        is_seller,
        quantity: "1".into(),
        quantity_error: None,
    })
}

/// The book page again, with the refused quantity and why (buying and adding to the cart).
pub async fn refuse_quantity(
    app: &AppState,
    page: Page,
    book_id: i64,
    quantity: String,
    status: StatusCode,
    error: String,
) -> AppResult<Response> {
    let book = books::get(&app.db.pool, book_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let is_seller = page.user_id() == Some(book.seller_id);
    let body = render(&BookPage {
        page,
        book,
        is_seller,
        quantity,
        quantity_error: Some(error),
    })?;
    Ok((status, body).into_response())
}

async fn cover_svg(State(app): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    let id = parse_id(&id)?;
    let found = app.book(id).await?;
    let book = Option::as_ref(&found).ok_or(AppError::NotFound)?;
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml"),
        // Short: a seller may rename the book.
        (header::CACHE_CONTROL, "public, max-age=300"),
    ];
    Ok((headers, cover::svg(&book.title, &book.author)).into_response())
}
