//! The one application value every handler reaches through `State<AppState>`.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tower_cookies::Key;

use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::ratelimit::LoginLimiter;
use crate::read_cache::{CatalogVersion, VersionedCache};
use crate::redis::with_redis;
use crate::store::books::{self, Book};
use crate::store::catalog::{self, CatalogPage, CatalogQuery, Total};
use crate::store::orders::HoldPolicy;

pub struct App {
    pub config: Config,
    pub db: Db,
    /// This replica's figures, served on the metrics port.
    pub metrics: Arc<Metrics>,
    pub redis: Option<deadpool_redis::Pool>,
    pub login_limiter: LoginLimiter,
    /// This replica's budget for password hashing.
    pub hasher: Hasher,
    /// Signs anonymous visitors' CSRF cookies; the same on every replica.
    pub csrf_key: Key,
    catalog_version: CatalogVersion,
    catalog_pages: VersionedCache<CatalogQuery, CatalogPage>,
    book_pages: VersionedCache<i64, Option<Book>>,
    books_listed: VersionedCache<(), Total>,
    shutting_down: AtomicBool,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    pub fn new(config: Config, db: Db, redis: Option<deadpool_redis::Pool>, csrf_key: Key) -> Self {
        let (login_limiter, catalog_version) = match &redis {
            Some(pool) => (
                LoginLimiter::in_redis(pool.clone(), &config.limits),
                CatalogVersion::redis(
                    pool.clone(),
                    config.redis_url.as_deref().unwrap_or_default(),
                ),
            ),
            None => (
                LoginLimiter::in_memory(&config.limits),
                CatalogVersion::Local(Default::default()),
            ),
        };
        let metrics = Metrics::new(&config.replica_id);
        let cache_entries = config.catalog_cache_entries;
        App {
            hasher: Hasher::new(config.limits.hash_queue, metrics.clone()),
            metrics,
            config,
            db,
            redis,
            login_limiter,
            csrf_key,
            catalog_version,
            catalog_pages: VersionedCache::with_capacity(cache_entries),
            book_pages: VersionedCache::with_capacity(cache_entries),
            books_listed: VersionedCache::with_capacity(cache_entries.min(1)),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// A catalog page, from this replica's cache when the catalog has not changed since.
    pub async fn catalog_page(&self, query: &CatalogQuery) -> sqlx::Result<Arc<CatalogPage>> {
        let version = self.catalog_version.current().await;
        self.catalog_pages
            .get_or_load(version, query, catalog::catalog(&self.db, query))
            .await
    }

    /// How many books the shop lists (up to `catalog::COUNT_CAP`), cached like catalog pages.
    pub async fn books_listed(&self) -> sqlx::Result<Total> {
        let version = self.catalog_version.current().await;
        let total = self
            .books_listed
            .get_or_load(version, &(), catalog::count_books(&self.db.pool))
            .await?;
        Ok(*total)
    }

    /// A book as its public page shows it, cached like catalog pages.
    pub async fn book(&self, id: i64) -> sqlx::Result<Arc<Option<Book>>> {
        let version = self.catalog_version.current().await;
        self.book_pages
            .get_or_load(version, &id, books::get(&self.db.pool, id))
            .await
    }

    /// Every committed change to books or stock calls this, on whichever replica made it.
    pub async fn catalog_changed(&self) {
        self.catalog_version.bump().await;
    }

    /// How unpaid orders hold stock, from the configuration.
    pub fn hold_policy(&self) -> HoldPolicy {
        HoldPolicy {
            ttl: self.config.order_ttl,
            max_open_orders: self.config.limits.open_orders,
            max_held_per_title: self.config.limits.held_per_title,
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Ready: not shutting down, and the database and session store answer within `limit`.
    pub async fn is_ready(&self, limit: Duration) -> bool {
        if self.shutting_down.load(Ordering::SeqCst) {
            return false;
        }
        let redis_ok = async {
            match &self.redis {
                None => true,
                Some(pool) => with_redis(pool, |mut conn| async move {
                    deadpool_redis::redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                })
                .await
                .is_ok(),
            }
        };
        let (db_ok, redis_ok) = tokio::join!(self.db.is_ready(limit), redis_ok);
        db_ok && redis_ok
    }
}
