//! The cart lives in the session (so in Redis in the fleet): book ids and
//! quantities only. Prices are read from the database whenever it is shown or
//! checked out.

use askama::Template;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::address;
use super::catalog::{CardFields, over_the_most, refuse_quantity};
use super::csrf::{is_token_of_len, new_token};
use super::orders::explain_order_error;
use super::page::{CsrfForm, Page, SignedIn, flash, parse_id, render, render_as};
use crate::app::state::AppState;
use crate::domain::{Cents, Quantity};
use crate::error::{AppError, AppResult};
use crate::i18n::{t, t_args};
use crate::metrics::OrderEvent;
use crate::store::orders::ShownPrices;
use crate::store::{books, orders};

const CART_KEY: &str = "cart";
/// A new key for each version of the cart; its order carries it, so the same
/// cart checked out twice (a double click) finds its order instead of making
/// a second one (`orders::create`).
const CHECKOUT_KEY: &str = "cart_checkout_key";
/// Distinct books in one cart: bounds the checkout transaction.
const MAX_LINES: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cart", get(show))
        .route("/cart/add", post(add))
        .route("/cart/update", post(update))
        .route("/cart/checkout", post(checkout))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct CartLine {
    book_id: i64,
    /// Checked again when read back from the session store.
    quantity: Quantity,
}

async fn load(session: &Session) -> AppResult<Vec<CartLine>> {
    Ok(session.get(CART_KEY).await?.unwrap_or_default())
}

async fn store(session: &Session, lines: &[CartLine]) -> AppResult<()> {
    if lines.is_empty() {
        session.remove_value(CART_KEY).await?;
        session.remove_value(CHECKOUT_KEY).await?;
    } else {
        session.insert(CART_KEY, lines).await?;
        session.insert(CHECKOUT_KEY, new_token()).await?;
    }
    Ok(())
}

/// The key of the cart as it is now; `None` for an empty cart. A cart stored
/// before keys existed gets one here.
async fn checkout_key(session: &Session, lines: &[CartLine]) -> AppResult<Option<String>> {
    if lines.is_empty() {
        return Ok(None);
    }
    if let Some(key) = session.get::<String>(CHECKOUT_KEY).await? {
        return Ok(Some(key));
    }
    let key = new_token();
    session.insert(CHECKOUT_KEY, &key).await?;
    Ok(Some(key))
}

/// A key as `new_token` makes them (lowercase hex): anything else a form
/// sends is ignored.
fn is_checkout_key(key: &str) -> bool {
    is_token_of_len(key, 64)
}

struct Row {
    book: books::BookCard,
    quantity: Quantity,
}

impl Row {
    fn subtotal(&self) -> Cents {
        self.book.price().times(self.quantity)
    }

    fn short(&self) -> bool {
        self.quantity.get() > self.book.stock
    }
}

#[derive(Template)]
#[template(path = "cart/cart.html")]
struct CartPage {
    page: Page,
    rows: Vec<Row>,
    total: Cents,
    error: Option<String>,
    checkout_key: Option<String>,
    /// The most copies one order may take (`MAX_HELD_PER_TITLE`).
    per_title: i64,
}

impl CartPage {
    /// The prices this page shows, for the checkout form: `id:cents` by commas.
    fn shown_prices(&self) -> String {
        let prices: Vec<String> = self
            .rows
            .iter()
            .map(|row| format!("{}:{}", row.book.id, row.book.price().get()))
            .collect();
        prices.join(",")
    }
}

/// The checkout form's `shown_prices`, as the store checks them; malformed
/// entries are left out (those books are then not checked).
fn parse_shown_prices(raw: &str) -> ShownPrices {
    raw.split(',')
        .filter_map(|entry| {
            let (id, cents) = entry.trim().split_once(':')?;
            let cents = Cents::try_from(cents.parse::<i64>().ok()?).ok()?;
            Some((id.parse().ok()?, cents))
        })
        .collect()
}

async fn cart_page(mut me: SignedIn, error: Option<String>) -> AppResult<CartPage> {
    let lines = load(&me.session).await?;
    if !lines.is_empty() {
        address::note_unconfirmed(&me.app, &mut me.page).await?;
    }
    let ids: Vec<i64> = lines.iter().map(|l| l.book_id).collect();
    let cards = books::cards_by_ids(&me.app.db.pool(), &ids).await?;
    // Books deleted since they were added simply drop out.
    let rows: Vec<Row> = cards
        .into_iter()
        .filter_map(|book| {
            let quantity = lines.iter().find(|l| l.book_id == book.id)?.quantity;
            Some(Row { book, quantity })
        })
        .collect();
    let total = rows.iter().map(Row::subtotal).sum();
    // Read only: a GET does not write the session (a cart stored before keys
    // existed shows no key, and checking it out makes one).
    let checkout_key = me.session.get::<String>(CHECKOUT_KEY).await?;
    Ok(CartPage {
        per_title: me.app.config.limits.held_per_title,
        page: me.page,
        rows,
        total,
        error,
        checkout_key,
    })
}

async fn show(me: SignedIn) -> AppResult<Response> {
    render(&cart_page(me, None).await?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LineForm {
    book_id: String,
    quantity: String,
    /// A catalog card's `quantity-{id}`.
    #[serde(flatten)]
    card: CardFields,
}

async fn add(me: SignedIn, CsrfForm(mut form): CsrfForm<LineForm>) -> AppResult<Response> {
    let book_id = parse_id(form.book_id.trim())?;
    if let Some(quantity) = form.card.take("quantity", book_id) {
        form.quantity = quantity;
    }
    let book = books::get(&me.app.db.pool(), book_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let refuse = |status, error: String| {
        refuse_quantity(
            &me.app,
            me.page.clone(),
            book_id,
            form.quantity.clone(),
            status,
            error,
        )
    };
    if book.seller_id == me.user.id {
        let title = book.title.clone();
        let (status, message) = explain_order_error(&orders::OrderError::OwnBook { title });
        return refuse(status, message).await;
    }
    let quantity = match Quantity::parse(&form.quantity) {
        Ok(q) => q,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, t(e)).await,
    };
    let mut lines = load(&me.session).await?;
    let in_cart = lines
        .iter()
        .find(|l| l.book_id == book_id)
        .map_or(0, |l| l.quantity.get());
    let wanted = in_cart + quantity.get();
    if let Some(why) = over_the_most(&me.app, &book.title, wanted, book.stock, in_cart) {
        return refuse(StatusCode::CONFLICT, why).await;
    }
    let wanted = match Quantity::try_from(wanted) {
        Ok(wanted) => wanted,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, t(e)).await,
    };
    if let Some(line) = lines.iter_mut().find(|l| l.book_id == book_id) {
        line.quantity = wanted;
    } else if lines.len() >= MAX_LINES {
        return refuse(StatusCode::CONFLICT, t("cart-full")).await;
    } else {
        lines.push(CartLine {
            book_id,
            quantity: wanted,
        });
    }
    store(&me.session, &lines).await?;
    flash(
        &me.session,
        "success",
        t_args("cart-added", &[("title", book.title.as_str().into())]),
    )
    .await?;
    Ok(Redirect::to("/cart").into_response())
}

/// Sets a line's quantity; 0 removes it.
async fn update(me: SignedIn, CsrfForm(form): CsrfForm<LineForm>) -> AppResult<Response> {
    let book_id = parse_id(form.book_id.trim())?;
    let mut lines = load(&me.session).await?;
    if form.quantity.trim() == "0" {
        lines.retain(|l| l.book_id != book_id);
    } else {
        let quantity = match Quantity::parse(&form.quantity) {
            Ok(q) => q,
            Err(e) => {
                let cart = cart_page(me, Some(t(e))).await?;
                return render_as(StatusCode::UNPROCESSABLE_ENTITY, &cart);
            }
        };
        let line = lines
            .iter_mut()
            .find(|l| l.book_id == book_id)
            .ok_or(AppError::NotFound)?;
        let book = books::get(&me.app.db.pool(), book_id).await?;
        let (title, stock) = book.map_or((String::new(), 0), |b| (b.title, b.stock));
        if let Some(why) = over_the_most(&me.app, &title, quantity.get(), stock, 0) {
            let cart = cart_page(me, Some(why)).await?;
            return render_as(StatusCode::CONFLICT, &cart);
        }
        line.quantity = quantity;
    }
    store(&me.session, &lines).await?;
    Ok(Redirect::to("/cart").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CheckoutForm {
    /// The key of the cart the page showed (optional: a client without it
    /// checks out the cart as it is now).
    checkout_key: String,
    /// The prices the page showed (`CartPage::shown_prices`): the order
    /// stops if one changed since.
    shown_prices: String,
}

async fn checkout(me: SignedIn, CsrfForm(form): CsrfForm<CheckoutForm>) -> AppResult<Response> {
    let app = &me.app;
    let mut lines = load(&me.session).await?;
    let key = checkout_key(&me.session, &lines).await?;
    // The page's cart was checked out already (this is the second click,
    // arriving after the first emptied the cart): show that order.
    let shown = form.checkout_key.trim();
    if is_checkout_key(shown)
        && key.as_deref() != Some(shown)
        && let Some(order_id) = orders::by_checkout_key(&app.db.pool(), me.user.id, shown).await?
    {
        return Ok(Redirect::to(&format!("/delivery/{order_id}")).into_response());
    }
    let wanted: Vec<(i64, Quantity)> = lines.iter().map(|l| (l.book_id, l.quantity)).collect();
    let created = orders::create(
        &app.db.pool(),
        me.user.id,
        &wanted,
        app.hold_policy().await?,
        key.as_deref(),
        &parse_shown_prices(&form.shown_prices),
    )
    .await;
    match created {
        Ok(created) => {
            if created.new {
                app.metrics.order_event(OrderEvent::Created);
                if !created.reserved {
                    app.metrics.order_event(OrderEvent::CreatedUnreserved);
                }
                app.catalog_changed().await;
            }
            store(&me.session, &[]).await?;
            Ok(Redirect::to(&format!("/delivery/{}", created.order_id)).into_response())
        }
        Err(orders::OrderError::Db(err)) => Err(err.into()),
        // The cart page no longer lists a deleted book, so the shopper could
        // not take it out: it goes now, and they see what is left.
        Err(orders::OrderError::BookNotFound(_)) => {
            let ids: Vec<i64> = lines.iter().map(|l| l.book_id).collect();
            let for_sale = books::cards_by_ids(&app.db.pool(), &ids).await?;
            lines.retain(|l| for_sale.iter().any(|book| book.id == l.book_id));
            store(&me.session, &lines).await?;
            let cart = cart_page(me, Some(t("cart-book-gone"))).await?;
            render_as(StatusCode::CONFLICT, &cart)
        }
        Err(err) => {
            let (status, message) = explain_order_error(&err);
            render_as(status, &cart_page(me, Some(message)).await?)
        }
    }
}
