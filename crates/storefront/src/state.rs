//! The one application value every handler reaches through `State<AppState>`.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tower_cookies::Key;

use crate::config::Config;
use crate::db::Db;
use crate::password::Hasher;
use crate::ratelimit::LoginLimiter;
use crate::read_cache::{CatalogVersion, VersionedCache};
use crate::session_store::with_redis;
use crate::store::books::{self, Book, CatalogPage, CatalogQuery};
use crate::store::orders::HoldPolicy;

pub struct App {
    pub config: Config,
    pub db: Db,
    pub redis: Option<deadpool_redis::Pool>,
    pub login_limiter: LoginLimiter,
    /// This replica's budget for password hashing.
    pub hasher: Hasher,
    /// Signs anonymous visitors' CSRF cookies; the same on every replica.
    pub csrf_key: Key,
    catalog_version: CatalogVersion,
    catalog_pages: VersionedCache<CatalogQuery, CatalogPage>,
    book_pages: VersionedCache<i64, Option<Book>>,
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
        App {
            hasher: Hasher::new(config.limits.hash_queue),
            config,
            db,
            redis,
            login_limiter,
            csrf_key,
            catalog_version,
            catalog_pages: VersionedCache::default(),
            book_pages: VersionedCache::default(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// A catalog page, from this replica's cache when the catalog has not changed since.
    pub async fn catalog_page(&self, query: &CatalogQuery) -> sqlx::Result<Arc<CatalogPage>> {
        let version = self.catalog_version.current().await;
        if let Some(hit) = version.and_then(|v| self.catalog_pages.get(query, v)) {
            return Ok(hit);
        }
        let page = match books::catalog(&self.db.pool, query).await {
            Ok(page) => Arc::new(page),
            Err(e) => return stale_if_error(self.catalog_pages.get_stale(query), e),
        };
        if let Some(v) = version {
            self.catalog_pages.put(query.clone(), v, page.clone());
        }
        Ok(page)
    }

    /// A book as its public page shows it, cached like catalog pages.
    pub async fn book(&self, id: i64) -> sqlx::Result<Arc<Option<Book>>> {
        let version = self.catalog_version.current().await;
        if let Some(hit) = version.and_then(|v| self.book_pages.get(&id, v)) {
            return Ok(hit);
        }
        let book = match books::get(&self.db.pool, id).await {
            Ok(book) => Arc::new(book),
            Err(e) => return stale_if_error(self.book_pages.get_stale(&id), e),
        };
        if let Some(v) = version {
            self.book_pages.put(id, v, book.clone());
        }
        Ok(book)
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

/// While the database cannot be read, the last page this replica rendered
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
