use super::{AdminPage, contains_pattern};
use sqlx::{AnyConnection, AnyPool};

use crate::domain::{Email, now_epoch};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub is_admin: i64,
    /// When the address was confirmed through a mailed link (`None`: not yet).
    pub email_verified_at: Option<i64>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.is_admin != 0
    }

    pub fn address_confirmed(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("that e-mail address is already registered")]
    DuplicateEmail,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub async fn insert(
    pool: &AnyPool,
    name: &str,
    email: &Email,
    password_hash: &str,
) -> Result<i64, InsertUserError> {
    let mut conn = pool.acquire().await?;
    insert_on(&mut conn, name, email, password_hash).await
}

/// [`insert`] on the caller's connection or transaction (registration
/// writes the account and its confirmation mail together).
pub async fn insert_on(
    conn: &mut AnyConnection,
    name: &str,
    email: &Email,
    password_hash: &str,
) -> Result<i64, InsertUserError> {
    let insert = sqlx::query(
        "INSERT INTO users (name, email, password_hash, is_admin, created_at) VALUES (?, ?, ?, 0, ?)",
    )
    .bind(name)
    .bind(email.as_str())
    .bind(password_hash)
    .bind(now_epoch());
    super::insert_returning_id(conn, insert)
        .await
        .map_err(|err| match super::is_unique_violation(&err) {
            true => InsertUserError::DuplicateEmail,
            false => InsertUserError::Db(err),
        })
}

const USER_COLUMNS: &str =
    "SELECT id, name, email, password_hash, is_admin, email_verified_at FROM users";

pub async fn find_by_email(pool: &AnyPool, email: &Email) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("{USER_COLUMNS} WHERE email = ?"))
        .bind(email.as_str())
        .fetch_optional(pool)
        .await
}

pub async fn find_by_id(pool: &AnyPool, id: i64) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("{USER_COLUMNS} WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Remembers the language the account uses now (at registration and each
/// login), for mail sent to it when it is not the one asking.
pub async fn set_language(pool: &AnyPool, id: i64, lang: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET lang = ? WHERE id = ?")
        .bind(lang)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Whether the account's address is confirmed (read at each checkout, so a
/// link confirmed in another browser counts at once).
pub async fn address_confirmed(pool: &AnyPool, id: i64) -> sqlx::Result<bool> {
    let confirmed: Option<Option<i64>> =
        sqlx::query_scalar("SELECT email_verified_at FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(confirmed.flatten().is_some())
}

/// Admin rights are read from the database on every admin request, so a
/// revocation takes effect at once, whatever the session says.
pub async fn is_admin(pool: &AnyPool, id: i64) -> sqlx::Result<bool> {
    let flag: Option<i64> = sqlx::query_scalar("SELECT is_admin FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(flag.unwrap_or(0) != 0)
}

/// Returns false when no user has that e-mail.
pub async fn grant_admin(pool: &AnyPool, email: &Email) -> sqlx::Result<bool> {
    let result = sqlx::query("UPDATE users SET is_admin = 1 WHERE email = ?")
        .bind(email.as_str())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0 || find_by_email(pool, email).await?.is_some())
}

/// The admin's list, newest first, `limit` at a time below the id `before`:
/// users whose e-mail or name contains `search` (everyone when it is empty).
pub async fn page_for_admin(
    pool: &AnyPool,
    search: &str,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<AdminPage<User>> {
    let pattern = contains_pattern(search);
    let rows = sqlx::query_as(&format!(
        "{USER_COLUMNS} WHERE (email LIKE ? ESCAPE '!' OR name LIKE ? ESCAPE '!') AND id < ? \
         ORDER BY id DESC LIMIT ?"
    ))
    .bind(&pattern)
    .bind(&pattern)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(AdminPage::of(rows, limit))
}
