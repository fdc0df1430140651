//! Browsing: home, the catalog with search, sorting and pages, a book's page and its cover.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;

use super::csrf::new_token;
use super::page::{Page, parse_id, render, render_as};
use crate::app::state::AppState;
use crate::cover;
use crate::error::{AppError, AppResult};
use crate::i18n::t_args;
use crate::store::books::{self, Book};
use crate::store::catalog::{CatalogPage as Found, CatalogQuery, Cursor, Sort, Total};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

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
    listed: Total,
}

async fn home(State(app): State<AppState>, page: Page) -> AppResult<Response> {
    let listed = app.books_listed().await?;
    render(&HomePage { page, listed })
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
    /// Set by the pager's links: the page starts after (or before) this book.
    after: String,
    before: String,
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
        let search: String = self.q.trim().chars().take(100).collect();
        let cursor = match (number(&self.after, 0), number(&self.before, 0)) {
            (0, 0) => None,
            (0, before) => Some(Cursor::Before(before)),
            (after, _) => Some(Cursor::After(after)),
        };
        CatalogQuery {
            sort: Sort::parse(&self.sort, !search.is_empty()),
            search,
            page: number(&self.page, 1).min(MAX_PAGE),
            per_page: number(&self.per_page, DEFAULT_PER_PAGE).min(MAX_PER_PAGE),
            cursor,
        }
    }
}

/// A page number in a link; deeper than a typed page reaches (`MAX_OFFSET`),
/// but bounded so that it stays a plain number.
const MAX_PAGE: i64 = 1_000_000_000;

#[derive(Template)]
#[template(path = "catalog/catalog.html")]
struct CatalogPage {
    page: Page,
    found: Arc<Found>,
    query: CatalogQuery,
    /// Known when every match was counted.
    pages: Option<i64>,
    cards: ShopperCards,
    /// The page's buy form's key (see `orders::BuyForm`), new with each
    /// response; only a signed-in shopper's page has the form.
    buy_key: Option<String>,
    sorts: &'static [Sort],
}

/// A catalog page's cards (see `RenderedCards`).
#[derive(Template)]
#[template(path = "catalog/cards.html")]
struct Cards<'a> {
    page: &'a Page,
    found: &'a Found,
    /// Put before a card's buy form, with its seller's id and a `.`, and
    /// after it: each response leaves out its own shopper's books' forms.
    not_for_seller: &'a str,
    end_not_for_seller: &'a str,
    /// The most copies one order may take (`MAX_HELD_PER_TITLE`): a card's
    /// quantity field allows no more than the book page's does.
    per_title: i64,
}

/// A random key for the buy form of one page (128 bits, lowercase hex; see
/// `orders::BuyForm`).
pub fn new_buy_key() -> String {
    new_token()[..32].to_owned()
}

/// A card's fields in the catalog's one buy form: their names carry the
/// card's book (`quantity-7`, `shown_price-7`), since every card's fields are
/// sent with whichever button was pressed. The book page's form and other
/// clients send them plain (`quantity`), as before.
#[derive(Deserialize, Default)]
#[serde(transparent)]
pub(super) struct CardFields(HashMap<String, String>);

impl CardFields {
    /// The card's own `name-{book_id}` field, when the form has one.
    pub(super) fn take(&mut self, name: &str, book_id: i64) -> Option<String> {
        self.0.remove(&format!("{name}-{book_id}"))
    }
}

/// Stand in, in rendered cards, for where a seller's own responses leave a
/// card's buy controls out: random per process, so no title a seller types
/// can contain them.
static NOT_FOR_SELLER_MARKER: LazyLock<String> =
    LazyLock::new(|| format!("not-for-seller-{:016x}-", rand::random::<u64>()));
static END_NOT_FOR_SELLER_MARKER: LazyLock<String> =
    LazyLock::new(|| format!("end-not-for-seller-{:016x}", rand::random::<u64>()));

/// A piece of the shared cards: their text, or a mark where each response
/// decides what its viewer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// What follows, up to [`Piece::EndNotForSeller`], is a card's buy
    /// controls, which this seller's own responses leave out (the store
    /// refuses the purchase anyway: a card offering it would only lead to an
    /// error).
    NotForSeller(i64),
    EndNotForSeller,
}

/// The cards of a catalog page as HTML, cut around each card's buy controls.
/// Rendered once per cached page, language and login state, then shared by
/// every shopper's request: the cards hold no token or key (those are in the
/// page's one buy form), so a logged-in page's cards differ from the next
/// shopper's only where one of them sells a book on it.
struct RenderedCards(Vec<Piece>);

impl RenderedCards {
    fn of(page: &Page, found: &Found, per_title: i64) -> AppResult<Arc<RenderedCards>> {
        let slot = (page.lang as u8) << 1 | u8::from(page.user.is_some());
        found.derived.get_or_make(slot, || {
            let cards = Cards {
                page,
                found,
                not_for_seller: &NOT_FOR_SELLER_MARKER,
                end_not_for_seller: &END_NOT_FOR_SELLER_MARKER,
                per_title,
            };
            Ok(RenderedCards::cut(&without_indentation(&cards.render()?)))
        })
    }

    /// Cuts the HTML at every marker into text and holes.
    fn cut(mut html: &str) -> RenderedCards {
        let holes: [(&str, Piece); 2] = [
            (&NOT_FOR_SELLER_MARKER, Piece::NotForSeller(0)),
            (&END_NOT_FOR_SELLER_MARKER, Piece::EndNotForSeller),
        ];
        let next_marker = |html: &str| {
            holes
                .iter()
                .filter_map(|(marker, hole)| {
                    html.find(marker).map(|at| (at, marker.len(), hole.clone()))
                })
                .min_by_key(|&(at, ..)| at)
        };
        let mut pieces = Vec::new();
        while let Some((at, len, hole)) = next_marker(html) {
            pieces.push(Piece::Text(html[..at].to_owned()));
            html = &html[at + len..];
            // The seller's id follows its marker, ended by a `.`.
            let hole = match hole {
                Piece::NotForSeller(_) => {
                    let (id, rest) = html.split_once('.').unwrap_or((html, ""));
                    html = rest;
                    Piece::NotForSeller(id.parse().unwrap_or(0))
                }
                hole => hole,
            };
            pieces.push(hole);
        }
        pieces.push(Piece::Text(html.to_owned()));
        RenderedCards(pieces)
    }
}

/// The template's indentation and blank lines are a sixth of a logged-in
/// page's bytes, and bytes are most of what that page costs to send; rendered
/// once per cached page, they are dropped here (the cards hold no `<pre>` or
/// `<textarea>`, where they would matter).
fn without_indentation(html: &str) -> String {
    let mut compact = String::with_capacity(html.len());
    for line in html.lines().map(str::trim_start).filter(|l| !l.is_empty()) {
        compact.push_str(line);
        compact.push('\n');
    }
    compact
}

/// The cards as one shopper sees them: without the buy controls of the
/// shopper's own books.
struct ShopperCards {
    cards: Arc<RenderedCards>,
    viewer: Option<i64>,
}

impl std::fmt::Display for ShopperCards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut leaving_out = false;
        for piece in &self.cards.0 {
            match piece {
                Piece::NotForSeller(seller) => leaving_out = self.viewer == Some(*seller),
                Piece::EndNotForSeller => leaving_out = false,
                Piece::Text(_) if leaving_out => {}
                Piece::Text(text) => f.write_str(text)?,
            }
        }
        Ok(())
    }
}

impl CatalogPage {
    /// "Page 3 of 41", or "Page 3" when the matches were not all counted,
    /// the number being the page's own (`found.number`), whatever the link
    /// said; "Further pages" past the count's cap.
    fn position(&self) -> String {
        match (self.found.number, self.pages) {
            (Some(number), Some(pages)) => {
                self.page
                    .tn2("pager-position", "page", number, "pages", pages)
            }
            (Some(number), None) => self.page.tn("pager-page", "page", number).to_string(),
            (None, _) => self.page.t("pager-far").into_owned(),
        }
    }

    /// This page's number for its links: its own, else the link's.
    fn number(&self) -> i64 {
        self.found.number.unwrap_or(self.query.page)
    }

    /// The page after this one: it starts after this page's last book
    /// (ranked searches have no keyset and go by page number).
    fn next_link(&self) -> String {
        let cursor = match (self.query.sort, self.found.books.last()) {
            (Sort::Relevance, _) | (_, None) => None,
            (_, Some(last)) => Some(("after", last.id)),
        };
        self.page_link(self.number() + 1, cursor)
    }

    fn previous_link(&self) -> String {
        let page = self.number() - 1;
        let cursor = match (self.query.sort, self.found.books.first()) {
            (Sort::Relevance, _) | (_, None) => None,
            _ if page <= 1 => None,
            (_, Some(first)) => Some(("before", first.id)),
        };
        self.page_link(page, cursor)
    }

    fn page_link(&self, page: i64, cursor: Option<(&str, i64)>) -> String {
        page_link(&self.query, page, cursor)
    }
}

/// The link to another page of the same search.
fn page_link(query: &CatalogQuery, page: i64, cursor: Option<(&str, i64)>) -> String {
    let mut params = vec![
        ("q", query.search.clone()),
        ("sort", query.sort.key().to_string()),
        ("per_page", query.per_page.to_string()),
        ("page", page.to_string()),
    ];
    if let Some((name, id)) = cursor {
        params.push((name, id.to_string()));
    }
    format!(
        "/book/catalog?{}",
        serde_urlencoded::to_string(params).unwrap_or_default()
    )
}

async fn catalog(
    State(app): State<AppState>,
    page: Page,
    session: Session,
    Query(params): Query<CatalogParams>,
) -> AppResult<Response> {
    let query = params.to_query();
    let own_change = crate::search::own_change(&session).await;
    let found = app.catalog_page(&query, own_change).await?;
    let pages = match found.total {
        Total::Exact(total) => Some(((total + query.per_page - 1) / query.per_page).max(1)),
        Total::AtLeast(_) => None,
    };
    // A typed page number past the end goes to the last page, rather than
    // showing "Page 999 of 5" over no books.
    let number = found.number.unwrap_or(query.page);
    if let Some(last) = pages.filter(|last| number > *last) {
        return Ok(Redirect::to(&page_link(&query, last, None)).into_response());
    }
    let cards = ShopperCards {
        cards: RenderedCards::of(&page, &found, app.config.limits.held_per_title)?,
        viewer: page.user_id(),
    };
    render(&CatalogPage {
        cards,
        buy_key: page.user.is_some().then(new_buy_key),
        page,
        sorts: Sort::offered(!query.search.is_empty()),
        found,
        query,
        pages,
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
    /// Sent back by the buy form, so that a double click makes one order.
    buy_key: String,
    /// The most copies one order may take (`MAX_HELD_PER_TITLE`), stated by the field.
    per_title: i64,
}

impl BookPage {
    /// What the quantity field allows: the copies left, up to one order's most.
    fn most(&self) -> i64 {
        self.book.stock.min(self.per_title)
    }
}

/// The one rule on how many copies of a title a shopper takes at once,
/// whether to the cart or straight to an order: the copies left, and at most
/// `MAX_HELD_PER_TITLE` (what checkout allows a shopper to hold). `None`
/// when `wanted` fits, else why not, as the shopper reads it.
pub fn over_the_most(
    app: &AppState,
    title: &str,
    wanted: i64,
    stock: i64,
    in_cart: i64,
) -> Option<String> {
    let per_title = app.config.limits.held_per_title;
    if wanted > per_title {
        return Some(t_args(
            "quantity-over-most",
            &[
                ("max", per_title.into()),
                ("title", title.into()),
                ("in_cart", in_cart.into()),
            ],
        ));
    }
    (wanted > stock).then(|| match (stock, in_cart) {
        (0, _) => t_args("order-sold-out", &[("title", title.into())]),
        (stock, 0) => t_args("cart-only-left", &[("count", stock.into())]),
        (stock, in_cart) => t_args(
            "cart-over-stock",
            &[("stock", stock.into()), ("in_cart", in_cart.into())],
        ),
    })
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
        buy_key: new_buy_key(),
        per_title: app.config.limits.held_per_title,
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
    let book = books::get(&app.db.pool(), book_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let is_seller = page.user_id() == Some(book.seller_id);
    render_as(
        status,
        &BookPage {
            page,
            book,
            is_seller,
            quantity,
            quantity_error: Some(error),
            buy_key: new_buy_key(),
            per_title: app.config.limits.held_per_title,
        },
    )
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
