//! A password-reset link used: the new password set and the link spent in
//! one transaction (`link_tokens` keeps the links).

use sqlx::AnyPool;

use super::link_tokens::{self, LinkKind};

/// Sets the account's password to `password_hash` if `token` is a working
/// reset link, spending it and the account's other reset links. `None`: no
/// such link, used already, or expired.
pub async fn redeem(pool: &AnyPool, token: &str, password_hash: &str) -> sqlx::Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    let Some(user_id) = link_tokens::spend(&mut tx, LinkKind::PasswordReset, token).await? else {
        return Ok(None);
    };
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(password_hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(user_id))
}
