//! Links the shop mails: a password reset, an address confirmation. The
//! token goes only into the mail; each kind's table keeps its SHA-256, so a
//! copy of the database opens no account. A link works once, until it
//! expires, and spending one spends every open link of its kind for the
//! account.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyPool};

use crate::domain::now_epoch;

/// What a link does, and so which table keeps it (both of one shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    PasswordReset,
    AddressConfirmation,
}

impl LinkKind {
    const ALL: [LinkKind; 2] = [LinkKind::PasswordReset, LinkKind::AddressConfirmation];

    fn table(self) -> &'static str {
        match self {
            LinkKind::PasswordReset => "password_resets",
            LinkKind::AddressConfirmation => "address_verifications",
        }
    }
}

/// A fresh token for a link: 32 random bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a table keys a token by.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records a link for `user_id`, in the caller's transaction (the one that
/// writes its mail).
pub async fn create(
    conn: &mut AnyConnection,
    kind: LinkKind,
    user_id: i64,
    token: &str,
    lifetime: Duration,
) -> sqlx::Result<()> {
    let now = now_epoch();
    let table = kind.table();
    sqlx::query(&format!(
        "INSERT INTO {table} (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)"
    ))
    .bind(token_hash(token))
    .bind(user_id)
    .bind(now)
    .bind(now + lifetime.as_secs() as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Links of `kind` made for `user_id` in the last hour (the mail-bombing
/// limits), counted in the caller's transaction after locking the account's
/// row (a no-op update: MySQL's row lock, SQLite's write lock), so requests
/// for one account made at once are counted one after the other and cannot
/// pass the limit together.
pub async fn made_in_last_hour(
    tx: &mut AnyConnection,
    kind: LinkKind,
    user_id: i64,
) -> sqlx::Result<i64> {
    sqlx::query("UPDATE users SET id = id WHERE id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let table = kind.table();
    sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {table} WHERE user_id = ? AND created_at > ?"
    ))
    .bind(user_id)
    .bind(now_epoch() - 3600)
    .fetch_one(&mut *tx)
    .await
}

/// Whether `token` is a link of `kind` that still works (its form is shown only then).
pub async fn is_usable(pool: &AnyPool, kind: LinkKind, token: &str) -> sqlx::Result<bool> {
    let mut conn = pool.acquire().await?;
    Ok(open_link_owner(&mut conn, kind, &token_hash(token))
        .await?
        .is_some())
}

async fn open_link_owner(
    conn: &mut AnyConnection,
    kind: LinkKind,
    hash: &str,
) -> sqlx::Result<Option<i64>> {
    let table = kind.table();
    sqlx::query_scalar(&format!(
        "SELECT user_id FROM {table} WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?"
    ))
    .bind(hash)
    .bind(now_epoch())
    .fetch_optional(conn)
    .await
}

/// Spends the link in the caller's transaction, with every other open link
/// of its kind for the account, and says whose it was. `None`: no such link,
/// used already, or expired; two requests with one link at once let exactly
/// one through (the conditional UPDATE).
pub async fn spend(
    tx: &mut AnyConnection,
    kind: LinkKind,
    token: &str,
) -> sqlx::Result<Option<i64>> {
    let hash = token_hash(token);
    let Some(user_id) = open_link_owner(tx, kind, &hash).await? else {
        return Ok(None);
    };
    let table = kind.table();
    let now = now_epoch();
    let spent = sqlx::query(&format!(
        "UPDATE {table} SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
    ))
    .bind(now)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        return Ok(None);
    }
    sqlx::query(&format!(
        "UPDATE {table} SET used_at = ? WHERE user_id = ? AND used_at IS NULL"
    ))
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    Ok(Some(user_id))
}

/// Links are deleted a day after they expire (a used or dead link answers
/// 410 alike whether or not its row is there; the day is for an operator
/// looking into a shopper's complaint).
const KEEP_EXPIRED_SECS: i64 = 24 * 3600;

/// Deletes links of both kinds that expired over a day ago; returns how many went.
pub async fn prune_expired(pool: &AnyPool) -> sqlx::Result<u64> {
    let before = now_epoch() - KEEP_EXPIRED_SECS;
    let mut pruned = 0;
    for kind in LinkKind::ALL {
        let table = kind.table();
        let result = sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < ?"))
            .bind(before)
            .execute(pool)
            .await?;
        pruned += result.rows_affected();
    }
    Ok(pruned)
}
