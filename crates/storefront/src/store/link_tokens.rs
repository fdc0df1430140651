//! The tokens of links the shop mails (password reset, address
//! confirmation). The token goes only into the mail; tables keep its
//! SHA-256, so a copy of the database opens no account.

use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use crate::domain::now_epoch;

/// Links are deleted a day after they expire (a used or dead link answers
/// 410 alike whether or not its row is there; the day is for an operator
/// looking into a shopper's complaint).
const KEEP_EXPIRED_SECS: i64 = 24 * 3600;

/// Deletes links of both kinds that expired over a day ago; returns how many went.
pub async fn prune_expired(pool: &AnyPool) -> sqlx::Result<u64> {
    let before = now_epoch() - KEEP_EXPIRED_SECS;
    let mut pruned = 0;
    for table in ["password_resets", "address_verifications"] {
        let result = sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < ?"))
            .bind(before)
            .execute(pool)
            .await?;
        pruned += result.rows_affected();
    }
    Ok(pruned)
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
