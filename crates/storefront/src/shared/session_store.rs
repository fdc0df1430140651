//! Where sessions live: in this process (the embedded default) or in Redis
//! through deadpool-redis (the fleet), behind one `SessionStore` type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncCommands};
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, ExpiredDeletion, Result};

use crate::metrics::Metrics;
use crate::shared::redis::with_redis;
use crate::shared::session_cache::SessionCache;

/// The session key under which a logged-in shopper is kept (`web::page`).
pub const USER_KEY: &str = "user";

/// The account a session is logged in as, if any.
fn user_of(record: &Record) -> Option<i64> {
    record.data.get(USER_KEY)?.get("id")?.as_i64()
}

#[derive(Debug, Clone)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// Sessions in this process. Unlike tower-sessions' own `MemoryStore`, expired
/// records are reclaimed (`delete_expired`, run every minute by the server),
/// so memory follows the live sessions, not every session ever made.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<HashMap<Id, Record>>>,
}

/// How often the in-memory store drops expired sessions.
pub const MEMORY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl MemoryStore {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Record>> {
        self.records.lock().expect("session map poisoned")
    }

    pub fn len(&self) -> usize {
        self.records().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn end_sessions_of(&self, user_id: i64) -> usize {
        let mut records = self.records();
        let before = records.len();
        records.retain(|_, record| user_of(record) != Some(user_id));
        before - records.len()
    }
}

fn is_live(record: &Record) -> bool {
    record.expiry_date > OffsetDateTime::now_utc()
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let mut records = self.records();
        while records.contains_key(&record.id) {
            record.id = Id::default();
        }
        records.insert(record.id, record.clone());
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.records().insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        Ok(self.records().get(id).filter(|r| is_live(r)).cloned())
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.records().remove(id);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for MemoryStore {
    async fn delete_expired(&self) -> Result<()> {
        self.records().retain(|_, record| is_live(record));
        Ok(())
    }
}

/// Sessions in Redis expire by themselves (`SET … EXAT`). Reads go through
/// this replica's copies (`session_cache.rs`), and every write and delete is
/// announced to the other replicas' copies in the same transaction.
#[derive(Clone)]
pub struct RedisStore {
    pool: deadpool_redis::Pool,
    copies: Arc<SessionCache>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// `url` is the pool's Redis, for the subscription that keeps the copies right.
    pub fn new(pool: deadpool_redis::Pool, url: &str, metrics: Arc<Metrics>) -> Self {
        RedisStore {
            pool,
            copies: SessionCache::follow(url, metrics),
        }
    }

    fn key(id: &Id) -> String {
        format!("session:{id}")
    }

    /// The ids of an account's sessions, so a password reset can end them
    /// all. It lives as long as the longest of them; an id whose session is
    /// gone already costs nothing to delete again.
    fn sessions_of_key(user_id: i64) -> String {
        format!("user-sessions:{user_id}")
    }

    /// Adds `record` to its account's set, in the caller's pipeline.
    fn index(pipe: &mut redis::Pipeline, record: &Record, expire_at: u64) {
        let Some(user_id) = user_of(record) else {
            return;
        };
        let key = Self::sessions_of_key(user_id);
        pipe.sadd(&key, record.id.to_string()).ignore();
        // NX gives a new set its expiry, GT only ever lengthens it.
        pipe.cmd("EXPIREAT")
            .arg(&key)
            .arg(expire_at)
            .arg("NX")
            .ignore();
        pipe.cmd("EXPIREAT")
            .arg(&key)
            .arg(expire_at)
            .arg("GT")
            .ignore();
    }

    async fn end_sessions_of(&self, user_id: i64) -> Result<usize> {
        let key = Self::sessions_of_key(user_id);
        let ids: Vec<String> = with_redis(&self.pool, |mut conn| {
            let key = key.clone();
            async move { conn.smembers(key).await }
        })
        .await
        .map_err(backend_error)?;
        for id in ids.iter().filter_map(|id| id.parse::<Id>().ok()) {
            self.change(&id, None).await?;
        }
        with_redis(&self.pool, |mut conn| async move {
            conn.del::<_, ()>(key).await
        })
        .await
        .map_err(backend_error)?;
        Ok(ids.len())
    }

    /// A new session (`SET NX`, false when the id is taken): nobody can have a copy of it.
    async fn create_new(&self, record: &Record) -> Result<bool> {
        let (key, value, expire_at) = Self::encoded(record)?;
        let written = with_redis(&self.pool, |mut conn| async move {
            let reply: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("EXAT")
                .arg(expire_at)
                .arg("NX")
                .query_async(&mut conn)
                .await?;
            Ok(reply.is_some())
        })
        .await
        .map_err(backend_error)?;
        if written && user_of(record).is_some() {
            let mut pipe = redis::pipe();
            Self::index(&mut pipe, record, expire_at);
            with_redis(&self.pool, |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await
            .map_err(backend_error)?;
        }
        Ok(written)
    }

    /// Writes (or, without a record, deletes) a session and announces it in
    /// one transaction. Redis sends the announcement to every replica before
    /// it answers the transaction, so their copies are gone well before this
    /// shopper's next request can reach them.
    ///
    /// A delete (logout, and the old id at login) also waits until this
    /// replica hears the announcement back, which makes "logged out
    /// everywhere" hold even if another replica were slow to read it. Saves
    /// (cart, flash messages) do not: the wait cost checkout 10–20 % of its
    /// orders per second (scripts/bench, docs/benchmarks.md).
    async fn change(&self, id: &Id, record: Option<&Record>) -> Result<()> {
        let mut change = redis::pipe();
        change.atomic();
        match record {
            Some(record) => {
                let (key, value, expire_at) = Self::encoded(record)?;
                change
                    .cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("EXAT")
                    .arg(expire_at)
                    .ignore();
                Self::index(&mut change, record, expire_at);
            }
            None => {
                change.del(Self::key(id)).ignore();
            }
        }
        let deleting = record.is_none();
        let announcement = self.copies.announcement(id, deleting);
        change
            .publish(SessionCache::CHANNEL, &announcement.message)
            .ignore();
        with_redis(&self.pool, |mut conn| async move {
            change.query_async::<()>(&mut conn).await
        })
        .await
        .map_err(backend_error)?;
        if deleting {
            announcement.heard().await;
        }
        Ok(())
    }

    fn encoded(record: &Record) -> Result<(String, String, u64)> {
        let value = serde_json::to_string(record).map_err(|e| Error::Encode(e.to_string()))?;
        let expire_at = record.expiry_date.unix_timestamp().max(1) as u64;
        Ok((Self::key(&record.id), value, expire_at))
    }
}

/// Not counted here: the request that meets it is counted once, by the
/// error layer (`web::FriendlyErrors`).
fn backend_error(err: anyhow::Error) -> Error {
    Error::Backend(err.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // A fresh id that collides with a live session is drawn again, never overwritten.
        while !self.create_new(record).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.change(&record.id, Some(record)).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        if let Some(copy) = self.copies.get(id) {
            return Ok(Some(copy));
        }
        let ticket = self.copies.ticket();
        let key = Self::key(id);
        let raw: Option<String> =
            with_redis(&self.pool, |mut conn| async move { conn.get(key).await })
                .await
                .map_err(backend_error)?;
        let record: Option<Record> = raw
            .map(|raw| serde_json::from_str(&raw).map_err(|e| Error::Decode(e.to_string())))
            .transpose()?;
        if let Some(record) = &record {
            self.copies.keep(ticket, record);
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.change(id, None).await
    }
}

impl Store {
    /// Logs an account out everywhere (after its password was reset):
    /// deletes every session logged in as `user_id`, on every replica.
    /// Returns how many there were.
    pub async fn end_sessions_of(&self, user_id: i64) -> Result<usize> {
        match self {
            Store::Memory(s) => Ok(s.end_sessions_of(user_id)),
            Store::Redis(s) => s.end_sessions_of(user_id).await,
        }
    }
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> Result<()> {
        match self {
            Store::Memory(s) => s.create(record).await,
            Store::Redis(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        match self {
            Store::Memory(s) => s.save(record).await,
            Store::Redis(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        match self {
            Store::Memory(s) => s.load(id).await,
            Store::Redis(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        match self {
            Store::Memory(s) => s.delete(id).await,
            Store::Redis(s) => s.delete(id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_in: time::Duration) -> Record {
        Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + expires_in,
        }
    }

    #[tokio::test]
    async fn the_memory_store_reclaims_expired_sessions() {
        let store = MemoryStore::default();
        let mut live = record(time::Duration::minutes(5));
        let mut dead = record(time::Duration::seconds(-1));
        store.create(&mut live).await.unwrap();
        store.create(&mut dead).await.unwrap();
        assert!(
            store.load(&dead.id).await.unwrap().is_none(),
            "expired is never served"
        );
        assert_eq!(store.len(), 2);
        store.delete_expired().await.unwrap();
        assert_eq!(store.len(), 1);
        assert!(store.load(&live.id).await.unwrap().is_some());
    }
}
