//! Secrets the replicas share through the database, each created once.

use sqlx::AnyPool;

/// The secret called `name`, created from `fresh` if no replica has made it yet.
/// Replicas starting together race on the insert; the primary key lets one win
/// and every replica then reads the winner's value.
pub async fn get_or_create(
    pool: &AnyPool,
    name: &str,
    fresh: impl FnOnce() -> String,
) -> sqlx::Result<String> {
    if let Some(value) = get(pool, name).await? {
        return Ok(value);
    }
    let inserted = sqlx::query("INSERT INTO app_secrets (name, value) VALUES (?, ?)")
        .bind(name)
        .bind(fresh())
        .execute(pool)
        .await;
    match inserted {
        Ok(_) => {}
        Err(err) if super::is_unique_violation(&err) => {}
        Err(err) => return Err(err),
    }
    get(pool, name)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)
}

async fn get(pool: &AnyPool, name: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM app_secrets WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await
}
