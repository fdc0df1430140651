//! Password-reset links. The token goes only into the mail; the database
//! keeps its SHA-256, so reading the table does not let anyone reset a
//! password. A link works once, for a short while, and using it ends every
//! other link of the account.

use std::time::Duration;

use sqlx::{AnyConnection, AnyPool};

pub use super::link_tokens::new_token;
use super::link_tokens::token_hash;
use crate::domain::now_epoch;

/// Records a link for `user_id`, in the caller's transaction (the one that
/// writes its mail).
pub async fn create(
    conn: &mut AnyConnection,
    user_id: i64,
    token: &str,
    lifetime: Duration,
) -> sqlx::Result<()> {
    let now = now_epoch();
    sqlx::query(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(token_hash(token))
    .bind(user_id)
    .bind(now)
    .bind(now + lifetime.as_secs() as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Links made for `user_id` in the last hour (its mail-bombing limit).
pub async fn made_in_last_hour(pool: &AnyPool, user_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM password_resets WHERE user_id = ? AND created_at > ?")
        .bind(user_id)
        .bind(now_epoch() - 3600)
        .fetch_one(pool)
        .await
}

/// Whether `token` is a link that still works (the form is shown only then).
pub async fn is_usable(pool: &AnyPool, token: &str) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT user_id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
    )
    .bind(token_hash(token))
    .bind(now_epoch())
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Uses the link: sets the account's password to `password_hash` and spends
/// this link and every other open link of the account, in one transaction.
/// `None`: no such link, used already, or expired. Two tabs submitting one
/// link at once: the conditional UPDATE lets exactly one through.
pub async fn redeem(pool: &AnyPool, token: &str, password_hash: &str) -> sqlx::Result<Option<i64>> {
    let hash = token_hash(token);
    let now = now_epoch();
    let mut tx = pool.begin().await?;
    let user_id: Option<i64> = sqlx::query_scalar(
        "SELECT user_id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
    )
    .bind(&hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let spent = sqlx::query(
        "UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
    )
    .bind(now)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        return Ok(None);
    }
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(password_hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(user_id))
}
