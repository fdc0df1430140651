//! Links that confirm an account's e-mail address. Like password-reset links
//! they are kept as the SHA-256 of their token, work once and expire;
//! confirming spends every open link of the account.

use std::time::Duration;

use sqlx::{AnyConnection, AnyPool};

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
        "INSERT INTO address_verifications (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(token_hash(token))
    .bind(user_id)
    .bind(now)
    .bind(now + lifetime.as_secs() as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Links made for `user_id` in the last hour (the limit on sending again).
pub async fn made_in_last_hour(pool: &AnyPool, user_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM address_verifications WHERE user_id = ? AND created_at > ?",
    )
    .bind(user_id)
    .bind(now_epoch() - 3600)
    .fetch_one(pool)
    .await
}

/// Whether `token` is a link that still works (the confirm button is shown only then).
pub async fn is_usable(pool: &AnyPool, token: &str) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT user_id FROM address_verifications WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
    )
    .bind(token_hash(token))
    .bind(now_epoch())
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Uses the link: marks the account's address confirmed and spends every
/// open link of the account, in one transaction. `None`: no such link, used
/// already, or expired; two clicks at once let exactly one through.
pub async fn confirm(pool: &AnyPool, token: &str) -> sqlx::Result<Option<i64>> {
    let hash = token_hash(token);
    let now = now_epoch();
    let mut tx = pool.begin().await?;
    let user_id: Option<i64> = sqlx::query_scalar(
        "SELECT user_id FROM address_verifications WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
    )
    .bind(&hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let spent = sqlx::query(
        "UPDATE address_verifications SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
    )
    .bind(now)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE users SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE address_verifications SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(user_id))
}
