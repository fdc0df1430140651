//! The one Redis client the shop shares: sessions, rate limits and the read
//! cache all go through this pool and its bounded round trip.

use std::time::Duration;

use deadpool_redis::redis;

use crate::metrics::Metrics;

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

/// How often a subscription asks its Redis whether it is still there.
///
/// A Redis whose host vanished (an instance lost for good, its disk taken to
/// another) sends nothing more: no reset, no close, and a connection that only
/// listens never writes, so the kernel never notices either. A subscriber that
/// only waited for messages would wait for ever while the Redis that replaced
/// it serves the fleet, and its replica would keep copies no announcement can
/// correct. Each beat is a PING on the subscription's own connection.
pub const SUBSCRIPTION_HEARTBEAT: Duration = Duration::from_secs(2);

/// Why [`listen`] returned: the label of the metric that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionEnd {
    /// The connection failed or Redis closed it.
    Closed,
    /// A heartbeat went unanswered for [`REDIS_TIMEOUT`].
    Silent,
    /// The listener gave up (it could not act on a message).
    Listener,
}

impl SubscriptionEnd {
    pub fn label(self) -> &'static str {
        match self {
            SubscriptionEnd::Closed => "closed",
            SubscriptionEnd::Silent => "silent",
            SubscriptionEnd::Listener => "listener",
        }
    }
}

/// Hands every message on `pubsub` to `on_message` until the connection
/// closes, Redis stops answering the heartbeat, or `on_message` returns false.
pub async fn listen<F, Heard>(pubsub: redis::aio::PubSub, mut on_message: F) -> SubscriptionEnd
where
    F: FnMut(redis::Msg) -> Heard,
    Heard: Future<Output = bool>,
{
    use futures::StreamExt;
    let (mut sink, mut messages) = pubsub.split();
    let first_beat = tokio::time::Instant::now() + SUBSCRIPTION_HEARTBEAT;
    let mut heartbeat = tokio::time::interval_at(first_beat, SUBSCRIPTION_HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return SubscriptionEnd::Closed;
                };
                if !on_message(message).await {
                    return SubscriptionEnd::Listener;
                }
            }
            _ = heartbeat.tick() => {
                // Subscribed, Redis answers a PING with a message of its own
                // (["pong", ""]), hence a plain value.
                let pong = tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await;
                match pong {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return SubscriptionEnd::Closed,
                    Err(_) => return SubscriptionEnd::Silent,
                }
            }
        }
    }
}

/// Says on the metrics page, and in the log when it is news, why the
/// subscription to `channel` ended.
pub fn subscription_ended(metrics: &Metrics, channel: &str, end: SubscriptionEnd) {
    metrics.subscription_ended(channel, end.label());
    match end {
        SubscriptionEnd::Silent => tracing::warn!(
            channel,
            "Redis stopped answering this subscription's heartbeat (its host gone?): subscribing again"
        ),
        SubscriptionEnd::Closed | SubscriptionEnd::Listener => {
            tracing::info!(
                channel,
                reason = end.label(),
                "subscription ended: subscribing again"
            )
        }
    }
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
