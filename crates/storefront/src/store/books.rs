use sqlx::AnyPool;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sort {
    #[default]
    Title,
    Author,
    PriceLow,
    PriceHigh,
    Newest,
}

impl Sort {
    pub const ALL: [Sort; 5] = [
        Sort::Title,
        Sort::Author,
        Sort::PriceLow,
        Sort::PriceHigh,
        Sort::Newest,
    ];

    pub fn parse(raw: &str) -> Sort {
        Self::ALL
            .into_iter()
            .find(|s| s.key() == raw)
            .unwrap_or_default()
    }

    pub fn key(&self) -> &'static str {
        match self {
            Sort::Title => "title",
            Sort::Author => "author",
            Sort::PriceLow => "price",
            Sort::PriceHigh => "price_desc",
            Sort::Newest => "newest",
        }
    }

    /// The catalogue's name for the order, as the sort menu shows it.
    pub fn message_id(&self) -> &'static str {
        match self {
            Sort::Title => "sort-title",
            Sort::Author => "sort-author",
            Sort::PriceLow => "sort-price-low",
            Sort::PriceHigh => "sort-price-high",
            Sort::Newest => "sort-newest",
        }
    }

    /// A fixed fragment per variant: user input never reaches the SQL text.
    fn order_by(&self) -> &'static str {
        match self {
            Sort::Title => "title, id",
            Sort::Author => "author, title, id",
            Sort::PriceLow => "price_cents, id",
            Sort::PriceHigh => "price_cents DESC, id",
            Sort::Newest => "id DESC",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatalogQuery {
    /// Matched against title and author; empty shows every book.
    pub search: String,
    pub sort: Sort,
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
}

/// `%`, `_` and the escape character itself match literally in a search.
fn like_pattern(search: &str) -> String {
    let escaped = search
        .replace('!', "!!")
        .replace('%', "!%")
        .replace('_', "!_");
    format!("%{escaped}%")
}

/// One page of the catalog and how many books match in all.
#[derive(Debug)]
pub struct CatalogPage {
    pub books: Vec<BookCard>,
    pub total: i64,
}

pub async fn catalog(pool: &AnyPool, query: &CatalogQuery) -> sqlx::Result<CatalogPage> {
    let pattern = like_pattern(&query.search);
    let filter = "WHERE (? = '' OR title LIKE ? ESCAPE '!' OR author LIKE ? ESCAPE '!')";
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM books {filter}"))
        .bind(&query.search)
        .bind(&pattern)
        .bind(&pattern)
        .fetch_one(pool)
        .await?;
    let cards = sqlx::query_as(&format!(
        "SELECT id, title, author, price_cents, stock FROM books {filter} ORDER BY {} LIMIT ? OFFSET ?",
        query.sort.order_by()
    ))
    .bind(&query.search)
    .bind(&pattern)
    .bind(&pattern)
    .bind(query.per_page)
    .bind((query.page - 1) * query.per_page)
    .fetch_all(pool)
    .await?;
    Ok(CatalogPage {
        books: cards,
        total,
    })
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
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; ids.len()].join(", ");
    let sql = format!(
        "SELECT id, title, author, price_cents, stock FROM books WHERE id IN ({placeholders}) ORDER BY title, id"
    );
    let mut query = sqlx::query_as(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(pool).await
}

pub async fn insert(pool: &AnyPool, seller_id: i64, fields: &BookFields) -> sqlx::Result<i64> {
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
    let mut conn = pool.acquire().await?;
    super::insert_returning_id(&mut conn, insert).await
}

/// Ownership is part of the WHERE clause: false when the book is not the seller's (or gone).
pub async fn update_owned(
    pool: &AnyPool,
    id: i64,
    seller_id: i64,
    fields: &BookFields,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE books SET title = ?, author = ?, description = ?, price_cents = ?, stock = ? \
         WHERE id = ? AND seller_id = ?",
    )
    .bind(&fields.title)
    .bind(&fields.author)
    .bind(&fields.description)
    .bind(fields.price.get())
    .bind(fields.stock)
    .bind(id)
    .bind(seller_id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

pub async fn delete_owned(pool: &AnyPool, id: i64, seller_id: i64) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM books WHERE id = ? AND seller_id = ?")
        .bind(id)
        .bind(seller_id)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

pub async fn count(pool: &AnyPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM books")
        .fetch_one(pool)
        .await
}
