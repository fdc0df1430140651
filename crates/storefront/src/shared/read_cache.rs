//! A per-replica cache of catalog reads that stays correct across replicas:
//! every entry is stamped with the catalog version it was read at, and every
//! change to books or stock bumps that version (in Redis for the fleet, in
//! process when the shop runs alone). An entry is used only if its version is
//! the current one.
//!
//! In the fleet each replica keeps the current version in memory, pushed to
//! it over Redis pub/sub by whichever replica bumps it, so a cached page costs
//! no round trip at all. While that subscription is down, the version is read
//! from Redis on each request instead, and when Redis cannot answer nothing is
//! served from the cache.
//!
//! Entries are stamped with a number of this replica's own, which changes
//! whenever the counter in Redis is seen to change, whichever way: a Redis that
//! lost its data counts from 0 again, and an entry stamped with the old count
//! must not come back to life when the new count reaches it.
//!
//! Hand-written rather than a cache crate: the logic is the version check,
//! and the map around it is a dozen lines.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::metrics::Metrics;
use crate::shared::redis::{listen, subscribed, subscription_ended, with_redis};

const VERSION_KEY: &str = "catalog:version";
const VERSION_CHANNEL: &str = "catalog:version";
/// A safety net: were a version bump lost (Redis failing right after a
/// commit), no entry outlives this.
const MAX_AGE: Duration = Duration::from_secs(10);
/// How old an entry may be and still be shown while the database cannot be
/// read ("stale if error"): a shopper then sees the catalog as it was a few
/// minutes ago rather than an error page; buying still needs the database.
const MAX_STALE: Duration = Duration::from_secs(600);
/// Distinct searches kept by default; past this the map starts afresh.
pub const DEFAULT_ENTRIES: usize = 2048;

pub enum CatalogVersion {
    Local(AtomicU64),
    Redis(deadpool_redis::Pool, Arc<Pushed>),
}

/// This replica's stamp for the catalog as last seen in Redis; served
/// without a round trip while `live` (the subscription is up).
#[derive(Default)]
pub struct Pushed {
    stamp: AtomicU64,
    /// The Redis counter the stamp stands for; `None` after losing track of it.
    counter: Mutex<Option<u64>>,
    live: AtomicBool,
}

impl Pushed {
    /// The stamp for `counter`, a new one if the counter is not the one last
    /// seen. A read that raced a bump and saw an older value also gets a new
    /// stamp: that costs a few cache misses, never a stale page.
    fn saw(&self, counter: u64) -> u64 {
        let mut last = self.counter.lock().expect("catalog version poisoned");
        if *last != Some(counter) {
            *last = Some(counter);
            self.stamp.fetch_add(1, Ordering::AcqRel);
        }
        self.stamp.load(Ordering::Acquire)
    }

    /// Announcements may have been missed: whatever is read next is new.
    fn lose_track(&self) {
        *self.counter.lock().expect("catalog version poisoned") = None;
    }
}

impl CatalogVersion {
    /// The fleet's version: starts the subscription that keeps it in memory.
    pub fn redis(pool: deadpool_redis::Pool, url: &str, metrics: Arc<Metrics>) -> CatalogVersion {
        let pushed = Arc::new(Pushed::default());
        match redis::Client::open(url) {
            Ok(client) => {
                tokio::spawn(follow_version(
                    client,
                    pool.clone(),
                    pushed.clone(),
                    metrics,
                ));
            }
            Err(err) => {
                tracing::warn!(error = %err, "no catalog version subscription: reading it per request")
            }
        }
        CatalogVersion::Redis(pool, pushed)
    }

    /// The current version, or `None` when it cannot be known (then nothing is cached).
    pub async fn current(&self) -> Option<u64> {
        match self {
            CatalogVersion::Local(n) => Some(n.load(Ordering::Acquire)),
            CatalogVersion::Redis(_, pushed) if pushed.live.load(Ordering::Acquire) => {
                Some(pushed.stamp.load(Ordering::Acquire))
            }
            CatalogVersion::Redis(pool, pushed) => read_version(pool)
                .await
                .ok()
                .map(|counter| pushed.saw(counter)),
        }
    }

    /// Called after every committed change to books or stock.
    pub async fn bump(&self) {
        match self {
            CatalogVersion::Local(n) => {
                n.fetch_add(1, Ordering::AcqRel);
            }
            CatalogVersion::Redis(pool, pushed) => {
                let bumped = with_redis(pool, |mut conn| async move {
                    let (version,): (u64,) = redis::pipe()
                        .atomic()
                        .incr(VERSION_KEY, 1)
                        .publish(VERSION_CHANNEL, "")
                        .ignore()
                        .query_async(&mut conn)
                        .await?;
                    Ok(version)
                });
                match bumped.await {
                    Ok(counter) => {
                        pushed.saw(counter);
                    }
                    Err(err) => tracing::warn!(
                        error = %err,
                        "could not bump the catalog version; caches expire within 10 s"
                    ),
                }
            }
        }
    }
}

/// The version stored in Redis (0 before the first bump).
async fn read_version(pool: &deadpool_redis::Pool) -> anyhow::Result<u64> {
    let stored = with_redis(pool, |mut conn| async move {
        redis::cmd("GET")
            .arg(VERSION_KEY)
            .query_async::<Option<u64>>(&mut conn)
            .await
    });
    Ok(stored.await?.unwrap_or(0))
}

/// Keeps `pushed` current: subscribe, read the version, then follow every
/// announcement; on any failure (the subscription's Redis silent included)
/// mark it stale and start again.
async fn follow_version(
    client: redis::Client,
    pool: deadpool_redis::Pool,
    pushed: Arc<Pushed>,
    metrics: Arc<Metrics>,
) {
    loop {
        match subscribed(&client, VERSION_CHANNEL).await {
            Ok(pubsub) => {
                // Read after subscribing, so no bump falls between the two.
                if let Ok(counter) = read_version(&pool).await {
                    pushed.lose_track();
                    pushed.saw(counter);
                    pushed.live.store(true, Ordering::Release);
                    metrics.subscription_up(VERSION_CHANNEL, true);
                    // Announcements carry no number: each one means "read it again".
                    let end = listen(pubsub, |_| async {
                        match read_version(&pool).await {
                            Ok(counter) => {
                                pushed.saw(counter);
                                true
                            }
                            Err(_) => false,
                        }
                    })
                    .await;
                    subscription_ended(&metrics, VERSION_CHANNEL, end);
                }
            }
            Err(err) => tracing::debug!(error = %err, "catalog version subscription failed"),
        }
        pushed.live.store(false, Ordering::Release);
        pushed.lose_track();
        metrics.subscription_up(VERSION_CHANNEL, false);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a layer above derives from a cached value and keeps with it (the
/// catalog's rendered cards, per language and login state): made on first use,
/// dropped with the value, so it is never older than the value it came from.
/// Typed by the caller; the store that makes the value need not know it.
#[derive(Default)]
pub struct Derived {
    slots: Mutex<HashMap<u8, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

impl Derived {
    /// The value in `slot`, made by `make` the first time (a slot holds one type).
    pub fn get_or_make<T: Send + Sync + 'static, E>(
        &self,
        slot: u8,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let kept = self.slots().get(&slot).cloned();
        if let Some(made) = kept.and_then(|any| any.downcast::<T>().ok()) {
            return Ok(made);
        }
        // Made outside the lock: two requests may both make it, one is kept.
        let made = Arc::new(make()?);
        self.slots().insert(slot, made.clone());
        Ok(made)
    }

    fn slots(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u8, Arc<dyn std::any::Any + Send + Sync>>> {
        self.slots.lock().expect("derived values poisoned")
    }
}

struct Entry<V> {
    version: u64,
    stored: Instant,
    value: Arc<V>,
}

pub struct VersionedCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    /// 0 keeps nothing: every read goes to the database (for measuring it).
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Default for VersionedCache<K, V> {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_ENTRIES)
    }
}

impl<K: Hash + Eq + Clone, V> VersionedCache<K, V> {
    pub fn with_capacity(capacity: usize) -> Self {
        VersionedCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get(&self, key: &K, version: u64) -> Option<Arc<V>> {
        let entries = self.entries.lock().expect("cache lock poisoned");
        entries
            .get(key)
            .filter(|e| e.version == version && e.stored.elapsed() < MAX_AGE)
            .map(|e| e.value.clone())
    }

    /// The entry for `key` whatever its version, up to `MAX_STALE` old: only
    /// for when the database fails.
    pub fn get_stale(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.entries.lock().expect("cache lock poisoned");
        entries
            .get(key)
            .filter(|e| e.stored.elapsed() < MAX_STALE)
            .map(|e| e.value.clone())
    }

    /// The entry for `key` at `version`, or else what `load` reads (kept for
    /// next time when the version is known); when `load` fails, a stale entry.
    pub async fn get_or_load(
        &self,
        version: Option<u64>,
        key: &K,
        load: impl Future<Output = sqlx::Result<V>>,
    ) -> sqlx::Result<Arc<V>> {
        if let Some(hit) = version.and_then(|v| self.get(key, v)) {
            return Ok(hit);
        }
        let value = match load.await {
            Ok(value) => Arc::new(value),
            Err(e) => return stale_if_error(self.get_stale(key), e),
        };
        if let Some(v) = version {
            self.put(key.clone(), v, value.clone());
        }
        Ok(value)
    }

    /// `get_or_load`; when `load` fails and `key` has no stale entry, the
    /// stale entry of `also` (the same page as another source gave it).
    pub async fn get_or_load_or_stale(
        &self,
        version: Option<u64>,
        key: &K,
        also: &K,
        load: impl Future<Output = sqlx::Result<V>>,
    ) -> sqlx::Result<Arc<V>> {
        match self.get_or_load(version, key, load).await {
            Err(error) => stale_if_error(self.get_stale(also), error),
            found => found,
        }
    }

    pub fn put(&self, key: K, version: u64, value: Arc<V>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().expect("cache lock poisoned");
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                version,
                stored: Instant::now(),
                value,
            },
        );
    }
}

/// While the database cannot be read, the last page this replica read
/// (up to 10 minutes old) beats an error page: a database outage then leaves
/// the catalog browsable. Without one, the error goes on (a 503).
fn stale_if_error<T>(stale: Option<Arc<T>>, error: sqlx::Error) -> sqlx::Result<Arc<T>> {
    match stale {
        Some(page) => {
            tracing::warn!(%error, "database unavailable: serving the catalog from the stale cache");
            Ok(page)
        }
        None => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_serve_only_their_version() {
        let version = CatalogVersion::Local(AtomicU64::new(0));
        let cache: VersionedCache<&str, i32> = VersionedCache::default();
        let v0 = version.current().await.unwrap();
        cache.put("page", v0, Arc::new(1));
        assert_eq!(cache.get(&"page", v0).as_deref(), Some(&1));
        version.bump().await;
        let v1 = version.current().await.unwrap();
        assert_ne!(v0, v1);
        assert!(
            cache.get(&"page", v1).is_none(),
            "a bump hides older entries"
        );
        assert_eq!(
            cache.get_stale(&"page").as_deref(),
            Some(&1),
            "but they stay for when the database fails"
        );
        assert!(cache.get_stale(&"other").is_none());
    }
}
