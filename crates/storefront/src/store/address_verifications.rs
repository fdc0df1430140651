//! An address-confirmation link used: the account marked confirmed and the
//! link spent in one transaction (`link_tokens` keeps the links).

use sqlx::AnyPool;

use super::link_tokens::{self, LinkKind};
use crate::domain::now_epoch;

/// Marks the account's address confirmed if `token` is a working
/// confirmation link, spending it and the account's other ones. `None`: no
/// such link, used already, or expired.
pub async fn confirm(pool: &AnyPool, token: &str) -> sqlx::Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    let Some(user_id) = link_tokens::spend(&mut tx, LinkKind::AddressConfirmation, token).await?
    else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE users SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL",
    )
    .bind(now_epoch())
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(user_id))
}
