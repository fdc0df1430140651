//! The one Redis client the shop shares: sessions, rate limits and the read
//! cache all go through this pool and its bounded round trip.

use std::time::Duration;

use deadpool_redis::redis;

/// Every Redis round trip is bounded, so a stalled Redis turns into a 503, not a hang.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

pub fn redis_pool(url: &str, max_size: usize) -> anyhow::Result<deadpool_redis::Pool> {
    let mut config = deadpool_redis::Config::from_url(url);
    let mut pool = deadpool_redis::PoolConfig::new(max_size);
    pool.timeouts.wait = Some(REDIS_TIMEOUT);
    pool.timeouts.create = Some(REDIS_TIMEOUT);
    pool.timeouts.recycle = Some(REDIS_TIMEOUT);
    config.pool = Some(pool);
    Ok(config.create_pool(Some(deadpool_redis::Runtime::Tokio1))?)
}

/// Runs one Redis command on a pooled connection, within [`REDIS_TIMEOUT`].
pub async fn with_redis<T, F, Fut>(pool: &deadpool_redis::Pool, op: F) -> anyhow::Result<T>
where
    F: FnOnce(deadpool_redis::Connection) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let call = async {
        let conn = pool.get().await?;
        Ok::<T, anyhow::Error>(op(conn).await?)
    };
    tokio::time::timeout(REDIS_TIMEOUT, call)
        .await
        .map_err(|_| anyhow::anyhow!("redis did not answer within {REDIS_TIMEOUT:?}"))?
}

/// A pub/sub connection of its own, subscribed to `channel`, within 5 s (the
/// catalog version and the session copies each follow one).
pub async fn subscribed(
    client: &redis::Client,
    channel: &str,
) -> anyhow::Result<redis::aio::PubSub> {
    let subscribe = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    tokio::time::timeout(Duration::from_secs(5), subscribe)
        .await
        .map_err(|_| anyhow::anyhow!("no subscription to {channel} within 5 s"))?
        .map_err(anyhow::Error::from)
}
