//! The data layer: every SQL statement of the shop lives here, next to the
//! type it fills. Placeholders are `?`, which both SQLite and MySQL accept.

pub mod address_verifications;
pub mod books;
pub mod catalog;
pub mod changes;
pub mod link_tokens;
pub mod orders;
pub mod password_resets;
pub mod providers;
pub mod secrets;
pub mod users;

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::domain::Cents;

/// Runs an INSERT and returns the new row's id. MySQL reports it with the
/// result; sqlx's Any driver drops SQLite's, so there it is asked for on the
/// same connection (MySQL 8 has no `INSERT … RETURNING`).
pub async fn insert_returning_id<'q>(
    conn: &mut AnyConnection,
    insert: Query<'q, Any, AnyArguments<'q>>,
) -> sqlx::Result<i64> {
    let result = insert.execute(&mut *conn).await?;
    match result.last_insert_id() {
        Some(id) => Ok(id),
        None => {
            sqlx::query_scalar("SELECT last_insert_rowid()")
                .fetch_one(&mut *conn)
                .await
        }
    }
}

/// The rows of `select ... WHERE id IN (ids) then`, one placeholder per id;
/// no query at all for no ids.
pub async fn rows_by_ids<T>(
    pool: &sqlx::AnyPool,
    select: &str,
    ids: &[i64],
    then: &str,
) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; ids.len()].join(", ");
    let sql = format!("{select} WHERE id IN ({placeholders}) {then}");
    let mut query = sqlx::query_as(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(pool).await
}

/// True when `err` is a unique-key violation (a duplicate e-mail, a second payment).
/// An amount read from a column the rows' types do not cover (a tuple):
/// checked like every other way into [`Cents`].
pub fn stored_cents(column: &str, cents: i64) -> sqlx::Result<Cents> {
    Cents::try_from(cents).map_err(|err| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(err),
    })
}

/// `text` as a LIKE pattern matching it anywhere, its own `%` and `_` (and
/// the escape character `!`, which SQLite and MySQL read alike) taken literally.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One page of a newest-first list and whether older rows follow.
pub struct AdminPage<T> {
    pub rows: Vec<T>,
    pub more: bool,
}

impl<T> AdminPage<T> {
    /// From `limit + 1` rows fetched: the extra one only says there are more.
    pub fn of(mut rows: Vec<T>, limit: i64) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        AdminPage { rows, more }
    }
}

pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23000" || c == "1062" || c == "2067")
        }
        _ => false,
    }
}
