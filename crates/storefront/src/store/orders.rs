//! Orders move stock, so every change here is one transaction whose first
//! statement is a conditional write: the database, not the application,
//! decides who gets the last copy, on SQLite and MySQL alike.
//!
//! An unpaid order holds its copies ([`OrderStatus::PendingPayment`]),
//! except a new buyer's order beyond what new buyers together may hold
//! ([`NewBuyerShare`]), and any order of an account whose address is not
//! confirmed when the shop asks for that ([`HoldPolicy::confirmed_only`]):
//! it waits unreserved ([`OrderStatus::Unreserved`]) and payment takes the
//! copies if they are still there (docs/decisions.md, "Holds are earned by
//! paying").

use std::time::Duration;

use sqlx::{Any, AnyPool, Transaction};

use super::{AdminPage, contains_pattern};
use crate::domain::{Cents, OrderStatus, PaymentMethod, Quantity, now_epoch};
use crate::i18n::Lang;
use crate::mail::Mailer;
use crate::mail::letters::{self, PaidLine, PaidOrder, Person};
use crate::password::UNUSABLE_HASH;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("book {0} does not exist")]
    BookNotFound(i64),
    #[error("only {available} left of “{title}”")]
    OutOfStock { title: String, available: i64 },
    #[error("the cart is empty")]
    Empty,
    /// A seller cannot buy their own book (the book page offers them no buy form).
    #[error("“{title}” is the shopper's own book")]
    OwnBook { title: String },
    /// The shopper already holds the most unpaid orders allowed.
    #[error("{open} unpaid orders already (at most {max})")]
    TooManyOpen { open: i64, max: i64 },
    /// The price of a book changed since the shopper saw it (`ShownPrices`).
    #[error("the price of “{title}” changed from {shown} to {now}")]
    PriceChanged {
        title: String,
        shown: Cents,
        now: Cents,
    },
    /// The order would take the shopper past the copies of one title they may hold unpaid.
    #[error("holding {held} of “{title}” already (at most {max})")]
    HoldLimit { title: String, held: i64, max: i64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// How long an unpaid order holds its stock, and how much one shopper may hold
/// at once: without a cap, unpaid orders would let one account buy out a
/// title without paying.
#[derive(Debug, Clone, Copy)]
pub struct HoldPolicy {
    pub ttl: Duration,
    pub max_open_orders: i64,
    pub max_held_per_title: i64,
    pub new_buyers: NewBuyerShare,
    /// Only accounts with a confirmed address hold copies (ADDRESS_VERIFICATION).
    pub confirmed_only: bool,
}

/// What new buyers (shoppers who have never paid for an order) may hold
/// together in unpaid orders, in percent of the shop's copies and of each
/// title's copies (on the shelf and held). A swarm of fresh accounts cannot
/// take more, however many there are; a new buyer's order beyond it is
/// placed unreserved. Copies are counted as they are when the order is made.
#[derive(Debug, Clone, Copy)]
pub struct NewBuyerShare {
    pub shop_percent: i64,
    pub title_percent: i64,
    /// The shop's copies ([`shop_copies`]), as the caller last counted them:
    /// a sum over every book, which at a million books takes a tenth of a
    /// second, so replicas count it every few seconds rather than under the
    /// new buyers' lock (`AppState::hold_policy`).
    pub shop_copies: i64,
}

/// The two statuses of an unpaid order, as SQL binds them (`status IN (?, ?)`).
const UNPAID: [OrderStatus; 2] = [OrderStatus::PendingPayment, OrderStatus::Unreserved];

/// The prices a shopper's page showed, by book id: an order whose price
/// changed since is refused ([`OrderError::PriceChanged`]), so nobody buys
/// at a price they did not see. A book not in it is not checked.
pub type ShownPrices = std::collections::HashMap<i64, Cents>;

/// Places one order for `lines` (book id, quantity): all lines or none.
/// Prices come from the books table, never from the request; `shown` only
/// stops the order when they differ from what the shopper saw.
///
/// `checkout_key` names the cart being checked out (or the buy form sent):
/// when this shopper already has an unpaid order made with it, that order's
/// id comes back and nothing else happens, so a cart checked out twice at
/// once makes one order.
pub async fn create(
    pool: &AnyPool,
    user_id: i64,
    lines: &[(i64, Quantity)],
    policy: HoldPolicy,
    checkout_key: Option<&str>,
    shown: &ShownPrices,
) -> Result<Created, OrderError> {
    if lines.is_empty() {
        return Err(OrderError::Empty);
    }
    // A fixed lock order (by book id) keeps concurrent carts from deadlocking on MySQL.
    let mut lines = lines.to_vec();
    lines.sort_by_key(|(book_id, _)| *book_id);
    // Read before the transaction: a shopper only ever turns from new to
    // proven, and a stale "new" merely counts them in the new buyers' share.
    let new_buyer = !has_paid(pool, user_id).await?;
    // Likewise: an address only ever turns from unconfirmed to confirmed.
    let may_hold = !policy.confirmed_only || super::users::address_confirmed(pool, user_id).await?;

    let mut tx = pool.begin().await?;
    lock_shopper(&mut tx, user_id).await?;
    if new_buyer && may_hold {
        lock_new_buyers_share(&mut tx).await?;
    }
    if let Some(key) = checkout_key
        && let Some(order_id) = unpaid_order_by_key(&mut tx, user_id, key).await?
    {
        return Ok(Created {
            order_id,
            new: false,
            reserved: true,
        });
    }
    check_holds(&mut tx, user_id, &lines, policy).await?;
    let reserved = may_hold
        && (!new_buyer || within_new_buyers_share(&mut tx, &lines, policy.new_buyers).await?);
    let mut priced = Vec::with_capacity(lines.len());
    for (book_id, quantity) in &lines {
        let available = if reserved {
            take_stock(&mut tx, *book_id, quantity.get()).await?
        } else {
            in_stock(&mut tx, *book_id, *quantity).await?
        };
        if !available {
            drop(tx);
            return Err(why_not_available(pool, *book_id).await);
        }
        let (title, unit_cents, seller_id): (String, i64, i64) =
            sqlx::query_as("SELECT title, price_cents, seller_id FROM books WHERE id = ?")
                .bind(book_id)
                .fetch_one(&mut *tx)
                .await?;
        if seller_id == user_id {
            return Err(OrderError::OwnBook { title });
        }
        let unit = super::stored_cents("price_cents", unit_cents)?;
        if let Some(&seen) = shown.get(book_id)
            && seen != unit
        {
            return Err(OrderError::PriceChanged {
                title,
                shown: seen,
                now: unit,
            });
        }
        priced.push((*book_id, title, unit, *quantity));
    }
    let items: Cents = priced
        .iter()
        .map(|(_, _, unit, qty)| unit.times(*qty))
        .sum();
    let now = now_epoch();
    let insert = sqlx::query(
        "INSERT INTO orders (user_id, status, items_cents, delivery_cents, created_at, expires_at, checkout_key) \
         VALUES (?, ?, ?, 0, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(if reserved { OrderStatus::PendingPayment } else { OrderStatus::Unreserved }.as_db())
    .bind(items.get())
    .bind(now)
    .bind(now + policy.ttl.as_secs() as i64)
    .bind(checkout_key);
    let order_id = super::insert_returning_id(&mut tx, insert).await?;
    for (book_id, title, unit, quantity) in priced {
        sqlx::query(
            "INSERT INTO order_lines (order_id, book_id, title, unit_cents, quantity) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(order_id)
        .bind(book_id)
        .bind(title)
        .bind(unit.get())
        .bind(quantity.get())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Created {
        order_id,
        new: true,
        reserved,
    })
}

/// The order a checkout leads to: made now, or made before from the same cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub order_id: i64,
    pub new: bool,
    /// A new order's copies are held (false: a new buyer's order beyond the
    /// new buyers' share, or an unconfirmed account's); not looked up for an
    /// order found by its key.
    pub reserved: bool,
}

/// A shopper who has paid for an order is no longer a new buyer.
pub async fn has_paid(pool: &AnyPool, user_id: i64) -> sqlx::Result<bool> {
    let paid: Option<i64> =
        sqlx::query_scalar("SELECT id FROM orders WHERE user_id = ? AND status = ? LIMIT 1")
            .bind(user_id)
            .bind(OrderStatus::Paid.as_db())
            .fetch_optional(pool)
            .await?;
    Ok(paid.is_some())
}

/// Makes new buyers' orders one after the other (a row lock on
/// `hold_locks`, taken before the transaction reads anything, so MySQL's
/// snapshot includes every order placed under it before), so that two of
/// them cannot pass the new buyers' share together. Other shoppers' orders
/// never take it.
async fn lock_new_buyers_share(tx: &mut Transaction<'_, Any>) -> sqlx::Result<()> {
    sqlx::query("UPDATE hold_locks SET name = name WHERE name = 'new_buyers'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The shop's copies: on the shelf plus held by unpaid orders.
pub async fn shop_copies(pool: &AnyPool) -> sqlx::Result<i64> {
    let on_shelf: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(stock), 0) AS SIGNED) FROM books")
            .fetch_one(pool)
            .await?;
    let held: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(l.quantity), 0) AS SIGNED) FROM order_lines l \
         JOIN orders o ON o.id = l.order_id WHERE o.status = ? AND l.book_id IS NOT NULL",
    )
    .bind(OrderStatus::PendingPayment.as_db())
    .fetch_one(pool)
    .await?;
    Ok(on_shelf + held)
}

/// Copies held by unpaid orders, and of those the ones new buyers hold: of
/// the whole shop, or of one book.
async fn held_and_held_by_new_buyers(
    tx: &mut Transaction<'_, Any>,
    book_id: Option<i64>,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(l.quantity), 0) AS SIGNED), \
                CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM orders p \
                     WHERE p.user_id = o.user_id AND p.status = ?) THEN 0 ELSE l.quantity END), 0) AS SIGNED) \
         FROM order_lines l JOIN orders o ON o.id = l.order_id \
         WHERE o.status = ? AND l.book_id IS NOT NULL AND (? IS NULL OR l.book_id = ?)",

    )
    .bind(OrderStatus::Paid.as_db())
    .bind(OrderStatus::PendingPayment.as_db())
    .bind(book_id)
    .bind(book_id)
    .fetch_one(&mut **tx)
    .await
}

/// One book's copies (on the shelf plus held) and the new buyers' holds of it.
async fn title_copies_and_new_buyers_holds(
    tx: &mut Transaction<'_, Any>,
    book_id: i64,
) -> sqlx::Result<(i64, i64)> {
    let on_shelf: Option<i64> = sqlx::query_scalar("SELECT stock FROM books WHERE id = ?")
        .bind(book_id)
        .fetch_optional(&mut **tx)
        .await?;
    let (held, held_by_new) = held_and_held_by_new_buyers(tx, Some(book_id)).await?;
    Ok((on_shelf.unwrap_or(0) + held, held_by_new))
}

/// Whether a new buyer's `lines` may hold their copies: the new buyers'
/// holds with them stay within [`NewBuyerShare`] of the shop and of each title.
async fn within_new_buyers_share(
    tx: &mut Transaction<'_, Any>,
    lines: &[(i64, Quantity)],
    share: NewBuyerShare,
) -> sqlx::Result<bool> {
    let within = |held: i64, wanted: i64, copies: i64, percent: i64| {
        (held + wanted) * 100 <= copies * percent
    };
    let wanted: i64 = lines.iter().map(|(_, quantity)| quantity.get()).sum();
    let (_, held) = held_and_held_by_new_buyers(tx, None).await?;
    if !within(held, wanted, share.shop_copies, share.shop_percent) {
        return Ok(false);
    }
    for (book_id, quantity) in lines {
        let (copies, held) = title_copies_and_new_buyers_holds(tx, *book_id).await?;
        if !within(held, quantity.get(), copies, share.title_percent) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Locks the shopper's own row (a no-op update: MySQL's row lock, SQLite's
/// write lock) until the transaction ends, so one shopper's concurrent orders
/// are made one after the other: they cannot pass the hold caps together, and
/// a second checkout of a cart sees the first one's order. Other shoppers'
/// orders do not wait for it.
async fn lock_shopper(tx: &mut Transaction<'_, Any>, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET id = id WHERE id = ?")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The shopper's unpaid order made with this key, if any. An order with the
/// key that is no longer unpaid (paid, cancelled, expired) gives the key up,
/// so the same form sent again later (a page restored from the browser's
/// history) makes a new order instead of failing on the unique key.
async fn unpaid_order_by_key(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    key: &str,
) -> sqlx::Result<Option<i64>> {
    let found: Option<(i64, String)> =
        sqlx::query_as("SELECT id, status FROM orders WHERE user_id = ? AND checkout_key = ?")
            .bind(user_id)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
    match found {
        Some((order_id, status)) if UNPAID.iter().any(|unpaid| unpaid.as_db() == status) => {
            Ok(Some(order_id))
        }
        Some((order_id, _)) => {
            sqlx::query("UPDATE orders SET checkout_key = NULL WHERE id = ?")
                .bind(order_id)
                .execute(&mut **tx)
                .await?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// The shopper's order made by checking out the cart with this key, if any.
pub async fn by_checkout_key<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    user_id: i64,
    key: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM orders WHERE user_id = ? AND checkout_key = ?")
        .bind(user_id)
        .bind(key)
        .fetch_optional(executor)
        .await
}

/// Refuses an order that would take the shopper past the hold caps (counted
/// under [`lock_shopper`]). Orders past their expiry time no longer count,
/// whether or not the expiry task has released them yet.
async fn check_holds(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    lines: &[(i64, Quantity)],
    policy: HoldPolicy,
) -> Result<(), OrderError> {
    let now = now_epoch();
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders WHERE user_id = ? AND status IN (?, ?) AND expires_at > ?",
    )
    .bind(user_id)
    .bind(UNPAID[0].as_db())
    .bind(UNPAID[1].as_db())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    if open >= policy.max_open_orders {
        return Err(OrderError::TooManyOpen {
            open,
            max: policy.max_open_orders,
        });
    }
    for (book_id, quantity) in lines {
        let held: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(l.quantity), 0) AS SIGNED) FROM order_lines l \
             JOIN orders o ON o.id = l.order_id \
             WHERE o.user_id = ? AND o.status IN (?, ?) AND o.expires_at > ? AND l.book_id = ?",
        )
        .bind(user_id)
        .bind(UNPAID[0].as_db())
        .bind(UNPAID[1].as_db())
        .bind(now)
        .bind(book_id)
        .fetch_one(&mut **tx)
        .await?;
        if held + quantity.get() > policy.max_held_per_title {
            let title: Option<String> = sqlx::query_scalar("SELECT title FROM books WHERE id = ?")
                .bind(book_id)
                .fetch_optional(&mut **tx)
                .await?;
            let title = title.ok_or(OrderError::BookNotFound(*book_id))?;
            return Err(OrderError::HoldLimit {
                title,
                held,
                max: policy.max_held_per_title,
            });
        }
    }
    Ok(())
}

/// The single atomic statement that can never drive stock below zero.
async fn take_stock(
    tx: &mut Transaction<'_, Any>,
    book_id: i64,
    copies: i64,
) -> sqlx::Result<bool> {
    let result = sqlx::query("UPDATE books SET stock = stock - ? WHERE id = ? AND stock >= ?")
        .bind(copies)
        .bind(book_id)
        .bind(copies)
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Whether `quantity` copies are on the shelf, for an order that does not take them.
async fn in_stock(
    tx: &mut Transaction<'_, Any>,
    book_id: i64,
    quantity: Quantity,
) -> sqlx::Result<bool> {
    let stock: Option<i64> = sqlx::query_scalar("SELECT stock FROM books WHERE id = ?")
        .bind(book_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(stock.is_some_and(|stock| stock >= quantity.get()))
}

async fn why_not_available(pool: &AnyPool, book_id: i64) -> OrderError {
    let found: sqlx::Result<Option<(String, i64)>> =
        sqlx::query_as("SELECT title, stock FROM books WHERE id = ?")
            .bind(book_id)
            .fetch_optional(pool)
            .await;
    match found {
        Ok(Some((title, available))) => OrderError::OutOfStock { title, available },
        Ok(None) => OrderError::BookNotFound(book_id),
        Err(err) => OrderError::Db(err),
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    #[sqlx(try_from = "i64")]
    pub items_cents: Cents,
    pub provider_id: Option<i64>,
    #[sqlx(try_from = "i64")]
    pub delivery_cents: Cents,
    pub created_at: i64,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
}

impl Order {
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    pub fn items(&self) -> Cents {
        self.items_cents
    }

    pub fn delivery(&self) -> Cents {
        self.delivery_cents
    }

    /// What the shopper pays: the books plus delivery, as computed here.
    pub fn total(&self) -> Cents {
        self.items_cents + self.delivery_cents
    }

    pub fn delivered_by(&self, provider_id: &i64) -> bool {
        self.provider_id == Some(*provider_id)
    }

    pub fn is_open(&self) -> bool {
        self.status().is_unpaid() && self.expires_at > now_epoch()
    }

    /// Open, with its copies still on the shelf until it is paid.
    pub fn is_unreserved(&self) -> bool {
        self.status() == OrderStatus::Unreserved && self.is_open()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderLine {
    pub book_id: Option<i64>,
    pub title: String,
    #[sqlx(try_from = "i64")]
    pub unit_cents: Cents,
    #[sqlx(try_from = "i64")]
    pub quantity: Quantity,
}

impl OrderLine {
    pub fn unit(&self) -> Cents {
        self.unit_cents
    }

    pub fn subtotal(&self) -> Cents {
        self.unit_cents.times(self.quantity)
    }
}

const ORDER_COLUMNS: &str = "SELECT id, user_id, status, items_cents, provider_id, delivery_cents, \
     created_at, expires_at, paid_at FROM orders";

/// The buyer's own order; another user's order is simply not found.
pub async fn get_owned(pool: &AnyPool, id: i64, user_id: i64) -> sqlx::Result<Option<Order>> {
    sqlx::query_as(&format!("{ORDER_COLUMNS} WHERE id = ? AND user_id = ?"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

pub async fn lines(pool: &AnyPool, order_id: i64) -> sqlx::Result<Vec<OrderLine>> {
    sqlx::query_as("SELECT book_id, title, unit_cents, quantity FROM order_lines WHERE order_id = ? ORDER BY id")
        .bind(order_id)
        .fetch_all(pool)
        .await
}

pub async fn list_for_user(pool: &AnyPool, user_id: i64) -> sqlx::Result<Vec<Order>> {
    sqlx::query_as(&format!(
        "{ORDER_COLUMNS} WHERE user_id = ? ORDER BY id DESC LIMIT 200"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderOverview {
    pub id: i64,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    #[sqlx(try_from = "i64")]
    pub items_cents: Cents,
    #[sqlx(try_from = "i64")]
    pub delivery_cents: Cents,
    pub created_at: i64,
}

impl OrderOverview {
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    pub fn total(&self) -> Cents {
        self.items_cents + self.delivery_cents
    }
}

/// The admin's list, newest first, `limit` at a time below the id `before`:
/// orders whose buyer's e-mail contains `search`, or whose number it is
/// (`#12` or `12`); every order when it is empty.
pub async fn page_for_admin(
    pool: &AnyPool,
    search: &str,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<AdminPage<OrderOverview>> {
    let number: i64 = search.trim().trim_start_matches('#').parse().unwrap_or(-1);
    let rows = sqlx::query_as(
        "SELECT o.id, u.email, o.status, o.items_cents, o.delivery_cents, o.created_at \
         FROM orders o JOIN users u ON u.id = o.user_id \
         WHERE (u.email LIKE ? ESCAPE '!' OR o.id = ?) AND o.id < ? ORDER BY o.id DESC LIMIT ?",
    )
    .bind(contains_pattern(search))
    .bind(number)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(AdminPage::of(rows, limit))
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("order not found")]
    NotFound,
    #[error("the order is no longer waiting for payment")]
    NotOpen,
    #[error("choose a delivery provider first")]
    NoDelivery,
    #[error("unknown delivery provider")]
    UnknownProvider,
    /// An unreserved order's copies went to someone who paid first.
    #[error("only {available} left of “{title}”")]
    OutOfStock { title: String, available: i64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Sets delivery on the buyer's open order; the cost is read from the providers table.
pub async fn choose_delivery(
    pool: &AnyPool,
    id: i64,
    user_id: i64,
    provider_id: i64,
) -> Result<(), StepError> {
    let cost: Option<i64> =
        sqlx::query_scalar("SELECT cost_cents FROM delivery_providers WHERE id = ?")
            .bind(provider_id)
            .fetch_optional(pool)
            .await?;
    let cost = cost.ok_or(StepError::UnknownProvider)?;
    let result = sqlx::query(
        "UPDATE orders SET provider_id = ?, delivery_cents = ? \
         WHERE id = ? AND user_id = ? AND status IN (?, ?) AND expires_at > ?",
    )
    .bind(provider_id)
    .bind(cost)
    .bind(id)
    .bind(user_id)
    .bind(UNPAID[0].as_db())
    .bind(UNPAID[1].as_db())
    .bind(now_epoch())
    .execute(pool)
    .await?;
    if result.rows_affected() == 1 {
        return Ok(());
    }
    Err(classify_refusal(pool, id, user_id).await)
}

/// Pays the buyer's open order once: the status change is conditional, and the
/// payments table holds at most one row per order. An unreserved order takes
/// its copies now, all or none; without them it is not paid and stays open.
pub async fn pay(
    pool: &AnyPool,
    id: i64,
    user_id: i64,
    method: PaymentMethod,
    mailer: &Mailer,
) -> Result<Payment, StepError> {
    let mut tx = pool.begin().await?;
    let now = now_epoch();
    let mut paid_from = None;
    for unpaid in UNPAID {
        if mark_paid(&mut tx, id, user_id, unpaid, now).await? {
            paid_from = Some(unpaid);
            break;
        }
    }
    let Some(paid_from) = paid_from else {
        drop(tx);
        return Err(classify_refusal(pool, id, user_id).await);
    };
    let took_copies = paid_from == OrderStatus::Unreserved;
    if took_copies {
        take_copies_at_payment(&mut tx, id).await?;
    }
    let total: (i64, i64) =
        sqlx::query_as("SELECT items_cents, delivery_cents FROM orders WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let amount = super::stored_cents("items_cents", total.0)?
        + super::stored_cents("delivery_cents", total.1)?;
    sqlx::query(
        "INSERT INTO payments (order_id, amount_cents, method, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(amount.get())
    .bind(method.as_db())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // The receipt and the sellers' notices commit with the payment, or not at all.
    let paid = paid_order(&mut tx, id, now, mailer.link_origin()).await?;
    mailer.enqueue(&mut tx, &letters::receipt(&paid)).await?;
    for notice in letters::sale_notices(&paid) {
        mailer.enqueue(&mut tx, &notice).await?;
    }
    tx.commit().await?;
    Ok(Payment {
        amount,
        took_copies,
    })
}

/// A person's columns as `person` reads them.
type PersonRow = (
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Someone to mail, or `None`: no such account, or one nobody can log in to
/// (the demo catalog's seller) and so nobody reads mail for.
fn person((id, name, email, lang, hash): PersonRow) -> Option<Person> {
    if hash.as_deref() == Some(UNUSABLE_HASH) {
        return None;
    }
    Some(Person {
        id: id?,
        name: name?,
        email: email?,
        lang: lang.as_deref().and_then(Lang::parse).unwrap_or_default(),
    })
}

/// A line of a paid order and its seller (none when the book was deleted).
#[derive(sqlx::FromRow)]
struct PaidLineRow {
    title: String,
    unit_cents: i64,
    quantity: i64,
    seller_id: Option<i64>,
    seller_name: Option<String>,
    seller_email: Option<String>,
    seller_lang: Option<String>,
    seller_hash: Option<String>,
}

/// What the mail of a paid order says, read in the payment's transaction.
async fn paid_order(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    paid_at: i64,
    origin: &str,
) -> sqlx::Result<PaidOrder> {
    let buyer: PersonRow = sqlx::query_as(
        "SELECT u.id, u.name, u.email, u.lang, u.password_hash \
         FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ?",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    let (provider, delivery_cents): (String, i64) = sqlx::query_as(
        "SELECT p.name, o.delivery_cents FROM orders o \
         JOIN delivery_providers p ON p.id = o.provider_id WHERE o.id = ?",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    let rows: Vec<PaidLineRow> = sqlx::query_as(
        "SELECT l.title, l.unit_cents, l.quantity, s.id AS seller_id, s.name AS seller_name, \
         s.email AS seller_email, s.lang AS seller_lang, s.password_hash AS seller_hash \
         FROM order_lines l LEFT JOIN books b ON b.id = l.book_id \
         LEFT JOIN users s ON s.id = b.seller_id WHERE l.order_id = ? ORDER BY l.id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let lines = rows
        .into_iter()
        .map(|row| PaidLine {
            seller: person((
                row.seller_id,
                row.seller_name,
                row.seller_email,
                row.seller_lang,
                row.seller_hash,
            )),
            title: row.title,
            unit_cents: row.unit_cents,
            quantity: row.quantity,
        })
        .collect();
    Ok(PaidOrder {
        id,
        paid_at,
        buyer: person(buyer).ok_or_else(|| sqlx::Error::RowNotFound)?,
        lines,
        provider,
        delivery_cents,
        origin: origin.to_string(),
    })
}

/// What [`pay`] did: the amount, and whether the order took its copies now
/// (an unreserved order), which changes the catalog's stock.
#[derive(Debug, Clone, Copy)]
pub struct Payment {
    pub amount: Cents,
    pub took_copies: bool,
}

/// The conditional status change of [`pay`], from one unpaid status.
async fn mark_paid(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    user_id: i64,
    from: OrderStatus,
    now: i64,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE orders SET status = ?, paid_at = ? \
         WHERE id = ? AND user_id = ? AND status = ? AND provider_id IS NOT NULL AND expires_at > ?",
    )
    .bind(OrderStatus::Paid.as_db())
    .bind(now)
    .bind(id)
    .bind(user_id)
    .bind(from.as_db())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Takes an unreserved order's copies from the shelf (books in id order, as
/// every transaction here locks them). A line whose copies are gone fails
/// the payment; the caller's transaction is then dropped, undoing it all.
async fn take_copies_at_payment(tx: &mut Transaction<'_, Any>, id: i64) -> Result<(), StepError> {
    let lines: Vec<(Option<i64>, String, i64)> = sqlx::query_as(
        "SELECT book_id, title, quantity FROM order_lines WHERE order_id = ? ORDER BY book_id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    for (book_id, title, quantity) in lines {
        let taken = match book_id {
            Some(book_id) => take_stock(tx, book_id, quantity).await?,
            None => false,
        };
        if !taken {
            let available: Option<i64> = sqlx::query_scalar("SELECT stock FROM books WHERE id = ?")
                .bind(book_id)
                .fetch_optional(&mut **tx)
                .await?;
            return Err(StepError::OutOfStock {
                title,
                available: available.unwrap_or(0),
            });
        }
    }
    Ok(())
}

async fn classify_refusal(pool: &AnyPool, id: i64, user_id: i64) -> StepError {
    match get_owned(pool, id, user_id).await {
        Ok(None) => StepError::NotFound,
        Ok(Some(order)) if order.is_open() && order.provider_id.is_none() => StepError::NoDelivery,
        Ok(Some(_)) => StepError::NotOpen,
        Err(err) => StepError::Db(err),
    }
}

/// Cancels the buyer's unpaid order and returns its stock. False when it was not open.
pub async fn cancel(pool: &AnyPool, id: i64, user_id: i64) -> Result<bool, StepError> {
    Ok(close_and_restock(pool, id, Some(user_id), OrderStatus::Cancelled).await?)
}

/// Expires every unpaid order past its time. Safe to run on every replica at
/// once: each order changes status in exactly one transaction, and only that
/// transaction returns its stock.
pub async fn expire_due(pool: &AnyPool) -> sqlx::Result<u64> {
    let due: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status IN (?, ?) AND expires_at <= ? ORDER BY id LIMIT 500",
    )
    .bind(UNPAID[0].as_db())
    .bind(UNPAID[1].as_db())
    .bind(now_epoch())
    .fetch_all(pool)
    .await?;
    let mut expired = 0;
    for id in due {
        if close_and_restock(pool, id, None, OrderStatus::Expired).await? {
            expired += 1;
        }
    }
    Ok(expired)
}

async fn close_and_restock(
    pool: &AnyPool,
    id: i64,
    user_id: Option<i64>,
    to: OrderStatus,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    // Most unpaid orders hold their copies: that status is tried first. An
    // unreserved order took no copies, so it returns none.
    if !close(&mut tx, id, user_id, OrderStatus::PendingPayment, to).await? {
        let closed = close(&mut tx, id, user_id, OrderStatus::Unreserved, to).await?;
        if closed {
            tx.commit().await?;
        }
        return Ok(closed);
    }
    let lines: Vec<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT book_id, quantity FROM order_lines WHERE order_id = ? ORDER BY book_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    for (book_id, quantity) in lines {
        // A deleted book has nowhere to return its copies to.
        let Some(book_id) = book_id else { continue };
        sqlx::query("UPDATE books SET stock = stock + ? WHERE id = ?")
            .bind(quantity)
            .bind(book_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The conditional status change that closes an unpaid order (`from`) once.
async fn close(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    user_id: Option<i64>,
    from: OrderStatus,
    to: OrderStatus,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE orders SET status = ? WHERE id = ? AND status = ? AND (? IS NULL OR user_id = ?)",
    )
    .bind(to.as_db())
    .bind(id)
    .bind(from.as_db())
    .bind(user_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}
