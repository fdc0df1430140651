//! A per-replica cache of catalog reads that stays correct across replicas:
//! every entry is stamped with the catalog version it was read at, and every
//! change to books or stock bumps that version (in Redis for the fleet, in
//! process when the shop runs alone). A request reads the version (one Redis
//! GET instead of database queries) and uses an entry only if it matches.
//!
//! Hand-written rather than a cache crate: the logic is the version check,
//! and the map around it is a dozen lines.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::session_store::with_redis;

const VERSION_KEY: &str = "catalog:version";
/// A safety net: were a version bump lost (Redis failing right after a
/// commit), no entry outlives this.
const MAX_AGE: Duration = Duration::from_secs(10);
/// Distinct searches kept; past this the map starts afresh.
const MAX_ENTRIES: usize = 2048;

pub enum CatalogVersion {
    Local(AtomicU64),
    Redis(deadpool_redis::Pool),
}

impl CatalogVersion {
    /// The current version, or `None` when it cannot be known (then nothing is cached).
    pub async fn current(&self) -> Option<u64> {
        match self {
            CatalogVersion::Local(n) => Some(n.load(Ordering::Acquire)),
            CatalogVersion::Redis(pool) => {
                let read = with_redis(pool, |mut conn| async move {
                    redis::cmd("GET")
                        .arg(VERSION_KEY)
                        .query_async::<Option<u64>>(&mut conn)
                        .await
                });
                read.await.ok().map(|v| v.unwrap_or(0))
            }
        }
    }

    /// Called after every committed change to books or stock.
    pub async fn bump(&self) {
        match self {
            CatalogVersion::Local(n) => {
                n.fetch_add(1, Ordering::AcqRel);
            }
            CatalogVersion::Redis(pool) => {
                let bumped = with_redis(pool, |mut conn| async move {
                    redis::cmd("INCR")
                        .arg(VERSION_KEY)
                        .query_async::<u64>(&mut conn)
                        .await
                });
                if let Err(err) = bumped.await {
                    tracing::warn!(error = %err, "could not bump the catalog version; caches expire within 10 s");
                }
            }
        }
    }
}

struct Entry<V> {
    version: u64,
    stored: Instant,
    value: Arc<V>,
}

pub struct VersionedCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Hash + Eq + Clone, V> Default for VersionedCache<K, V> {
    fn default() -> Self {
        VersionedCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V> VersionedCache<K, V> {
    pub fn get(&self, key: &K, version: u64) -> Option<Arc<V>> {
        let entries = self.entries.lock().expect("cache lock poisoned");
        entries
            .get(key)
            .filter(|e| e.version == version && e.stored.elapsed() < MAX_AGE)
            .map(|e| e.value.clone())
    }

    pub fn put(&self, key: K, version: u64, value: Arc<V>) {
        let mut entries = self.entries.lock().expect("cache lock poisoned");
        if entries.len() >= MAX_ENTRIES {
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
    }
}
