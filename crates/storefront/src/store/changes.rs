//! The catalog's change feed: one row per write of a book's listed fields,
//! appended in the write's own transaction, read in id order by each
//! replica's search index (`src/search/`). The database stays the one source
//! of truth; the feed only says which books to read again.

use sqlx::{AnyConnection, AnyPool};

use crate::domain::now_epoch;

/// A position in the feed: the id of a `catalog_changes` row.
pub type ChangeId = i64;

/// One row of the feed: this book changed, or (`None`) many books did and
/// indexes rebuild from the books table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Change {
    pub id: ChangeId,
    pub book_id: Option<i64>,
}

/// What the index holds of a book: the fields searched and sorted on.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IndexedBook {
    pub id: i64,
    pub title: String,
    pub author: String,
    pub price_cents: i64,
}

/// Appends a change on the write's own connection (inside its transaction),
/// so that the feed has it exactly when the write is committed.
pub async fn record(conn: &mut AnyConnection, book_id: Option<i64>) -> sqlx::Result<ChangeId> {
    let insert = sqlx::query("INSERT INTO catalog_changes (book_id, changed_at) VALUES (?, ?)")
        .bind(book_id)
        .bind(now_epoch());
    super::insert_returning_id(conn, insert).await
}

/// The newest change, 0 when there is none.
pub async fn latest(pool: &AnyPool) -> sqlx::Result<ChangeId> {
    let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM catalog_changes")
        .fetch_one(pool)
        .await?;
    Ok(latest.unwrap_or(0))
}

/// Up to `limit` changes after `after`, oldest first (a primary-key range).
pub async fn after(pool: &AnyPool, after: ChangeId, limit: i64) -> sqlx::Result<Vec<Change>> {
    sqlx::query_as("SELECT id, book_id FROM catalog_changes WHERE id > ? ORDER BY id LIMIT ?")
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Forgets changes older than `max_age_secs` (an index never reads them:
/// it builds from the books table), but never the newest: it is where the
/// feed stands, and an empty feed would look like one that went back.
pub async fn prune(pool: &AnyPool, max_age_secs: i64) -> sqlx::Result<u64> {
    let newest = latest(pool).await?;
    let result = sqlx::query("DELETE FROM catalog_changes WHERE changed_at < ? AND id < ?")
        .bind(now_epoch() - max_age_secs)
        .bind(newest)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// Books by id, as the index holds them; ids not found are gone.
pub async fn books(pool: &AnyPool, ids: &[i64]) -> sqlx::Result<Vec<IndexedBook>> {
    super::rows_by_ids(
        pool,
        "SELECT id, title, author, price_cents FROM books",
        ids,
        "",
    )
    .await
}

/// The next `limit` books after `after_id` in id order: how an index is
/// built, a primary-key range at a time.
pub async fn books_after(
    pool: &AnyPool,
    after_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<IndexedBook>> {
    sqlx::query_as(
        "SELECT id, title, author, price_cents FROM books WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}
