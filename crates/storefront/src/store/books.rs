use sqlx::AnyPool;

use super::changes::{self, ChangeId};
use crate::domain::{Cents, now_epoch};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Book {
    pub id: i64,
    pub title: String,
    pub author: String,
    pub description: String,
    #[sqlx(try_from = "i64")]
    pub price_cents: Cents,
    pub stock: i64,
    pub seller_id: i64,
    pub seller_name: String,
}

impl Book {
    pub fn price(&self) -> Cents {
        self.price_cents
    }
}

/// What a catalog card shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BookCard {
    pub id: i64,
    pub title: String,
    pub author: String,
    #[sqlx(try_from = "i64")]
    pub price_cents: Cents,
    pub stock: i64,
    /// Whose book it is: a card offers its seller no buy form.
    pub seller_id: i64,
}

impl BookCard {
    pub fn price(&self) -> Cents {
        self.price_cents
    }
}

/// A seller's validated form.
#[derive(Debug, Clone)]
pub struct BookFields {
    pub title: String,
    pub author: String,
    pub description: String,
    pub price: Cents,
    pub stock: i64,
}

const BOOK_COLUMNS: &str = "SELECT b.id, b.title, b.author, b.description, b.price_cents, b.stock, \
     b.seller_id, u.name AS seller_name FROM books b JOIN users u ON u.id = b.seller_id";

pub async fn get(pool: &AnyPool, id: i64) -> sqlx::Result<Option<Book>> {
    sqlx::query_as(&format!("{BOOK_COLUMNS} WHERE b.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_seller(pool: &AnyPool, seller_id: i64) -> sqlx::Result<Vec<Book>> {
    sqlx::query_as(&format!(
        "{BOOK_COLUMNS} WHERE b.seller_id = ? ORDER BY b.id DESC"
    ))
    .bind(seller_id)
    .fetch_all(pool)
    .await
}

/// The cart's books, in one query.
pub async fn cards_by_ids(pool: &AnyPool, ids: &[i64]) -> sqlx::Result<Vec<BookCard>> {
    super::rows_by_ids(
        pool,
        "SELECT id, title, author, price_cents, stock, seller_id FROM books",
        ids,
        "ORDER BY title, id",
    )
    .await
}

/// Lists a book; returns its id and the feed's change for it.
pub async fn insert(
    pool: &AnyPool,
    seller_id: i64,
    fields: &BookFields,
) -> sqlx::Result<(i64, ChangeId)> {
    let insert = sqlx::query(
        "INSERT INTO books (title, author, description, price_cents, stock, seller_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&fields.title)
    .bind(&fields.author)
    .bind(&fields.description)
    .bind(fields.price.get())
    .bind(fields.stock)
    .bind(seller_id)
    .bind(now_epoch());
    let mut tx = pool.begin().await?;
    let id = super::insert_returning_id(&mut tx, insert).await?;
    let change = changes::record(&mut tx, Some(id)).await?;
    tx.commit().await?;
    Ok((id, change))
}

/// Writes the seller's fields; with `stock_seen`, only while the stock is
/// still what the seller's form showed. Ownership is part of the WHERE
/// clause: `None` when no row matched (not the seller's book, gone, or the
/// stock moved), else the feed's change. Rows count when they match, not
/// only when they change (sqlx asks MySQL for found rows).
pub async fn update_owned(
    pool: &AnyPool,
    id: i64,
    seller_id: i64,
    fields: &BookFields,
    stock_seen: Option<i64>,
) -> sqlx::Result<Option<ChangeId>> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query(
        "UPDATE books SET title = ?, author = ?, description = ?, price_cents = ?, stock = ? \
         WHERE id = ? AND seller_id = ? AND (? IS NULL OR stock = ?)",
    )
    .bind(&fields.title)
    .bind(&fields.author)
    .bind(&fields.description)
    .bind(fields.price.get())
    .bind(fields.stock)
    .bind(id)
    .bind(seller_id)
    .bind(stock_seen)
    .bind(stock_seen)
    .execute(&mut *tx)
    .await?;
    if result.rows_affected() == 0 {
        return Ok(None);
    }
    let change = changes::record(&mut tx, Some(id)).await?;
    tx.commit().await?;
    Ok(Some(change))
}

/// Removes the seller's book: `None` when it is not theirs (or gone), else
/// the feed's change.
pub async fn delete_owned(
    pool: &AnyPool,
    id: i64,
    seller_id: i64,
) -> sqlx::Result<Option<ChangeId>> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query("DELETE FROM books WHERE id = ? AND seller_id = ?")
        .bind(id)
        .bind(seller_id)
        .execute(&mut *tx)
        .await?;
    if result.rows_affected() == 0 {
        return Ok(None);
    }
    let change = changes::record(&mut tx, Some(id)).await?;
    tx.commit().await?;
    Ok(Some(change))
}

/// Exact, so a full index scan: for the seeder, not for pages (see `catalog::count_books`).
pub async fn count(pool: &AnyPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM books")
        .fetch_one(pool)
        .await
}

pub async fn any_listed(pool: &AnyPool) -> sqlx::Result<bool> {
    let first: Option<i64> = sqlx::query_scalar("SELECT id FROM books LIMIT 1")
        .fetch_optional(pool)
        .await?;
    Ok(first.is_some())
}

/// Lists many books in one statement (the seeder's bulk load).
pub async fn insert_many(pool: &AnyPool, seller_id: i64, books: &[BookFields]) -> sqlx::Result<()> {
    if books.is_empty() {
        return Ok(());
    }
    let created_at = now_epoch();
    let mut insert = sqlx::QueryBuilder::<sqlx::Any>::new(
        "INSERT INTO books (title, author, description, price_cents, stock, seller_id, created_at) ",
    );
    insert.push_values(books, |mut row, book| {
        row.push_bind(book.title.clone())
            .push_bind(book.author.clone())
            .push_bind(book.description.clone())
            .push_bind(book.price.get())
            .push_bind(book.stock)
            .push_bind(seller_id)
            .push_bind(created_at);
    });
    let mut tx = pool.begin().await?;
    insert.build().execute(&mut *tx).await?;
    // One change for the lot: indexes rebuild rather than read each book.
    changes::record(&mut tx, None).await?;
    tx.commit().await?;
    Ok(())
}
