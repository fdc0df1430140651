//! The one application value every handler reaches through `State<AppState>`.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tower_cookies::Key;

use crate::app::config::Config;
use crate::db::Db;
use crate::edge::ratelimit::{AddressLimiter, LoginLimiter};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::search::CatalogSearch;
use crate::shared::read_cache::{CatalogVersion, VersionedCache};
use crate::shared::redis::with_redis;
use crate::shared::session_store::Store;
use crate::store::books::{self, Book};
use crate::store::catalog::{self, CatalogPage, CatalogQuery, Total};
use crate::store::changes::ChangeId;
use crate::store::orders::{self, HoldPolicy, NewBuyerShare};

/// How long a replica reuses its count of the shop's copies (`hold_policy`).
const SHOP_COPIES_FRESH_FOR: Duration = Duration::from_secs(10);

pub struct App {
    pub config: Config,
    pub db: Db,
    /// This replica's figures, served on the metrics port.
    pub metrics: Arc<Metrics>,
    pub redis: Option<deadpool_redis::Pool>,
    pub login_limiter: LoginLimiter,
    pub registration_limiter: AddressLimiter,
    /// Password-reset requests per client address.
    pub reset_limiter: AddressLimiter,
    /// Writes mail to the outbox and wakes this replica's sender.
    pub mailer: Mailer,
    /// Where sessions live: a password reset ends every session of its account.
    pub sessions: Store,
    /// This replica's budget for password hashing.
    pub hasher: Hasher,
    /// Signs anonymous visitors' CSRF cookies; the same on every replica.
    pub csrf_key: Key,
    /// This replica's search index; `None` when turned off (SEARCH_INDEX).
    pub search: Option<Arc<CatalogSearch>>,
    catalog_version: CatalogVersion,
    /// Keyed by the query and the index generation that answered it (0: the
    /// database did): a page found before the index applied a change is not
    /// shown after it.
    catalog_pages: VersionedCache<(CatalogQuery, u64), CatalogPage>,
    book_pages: VersionedCache<i64, Option<Book>>,
    books_listed: VersionedCache<(), Total>,
    /// The shop's copies and when they were counted (`hold_policy`).
    shop_copies: tokio::sync::Mutex<Option<(Instant, i64)>>,
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
    pub fn new(
        config: Config,
        db: Db,
        redis: Option<deadpool_redis::Pool>,
        csrf_key: Key,
        sessions: Store,
        mailer: Mailer,
        metrics: Arc<Metrics>,
    ) -> Self {
        let registration_limiter = AddressLimiter::registrations(redis.clone(), &config.limits);
        let reset_limiter = AddressLimiter::new(
            redis.clone(),
            "password-reset",
            config.mail.resets_per_address_hour,
            Duration::from_secs(60 * 60),
        );
        let (login_limiter, catalog_version) = match &redis {
            Some(pool) => (
                LoginLimiter::in_redis(pool.clone(), &config.limits),
                CatalogVersion::redis(
                    pool.clone(),
                    config.redis_url.as_deref().unwrap_or_default(),
                    metrics.clone(),
                ),
            ),
            None => (
                LoginLimiter::in_memory(&config.limits),
                CatalogVersion::Local(Default::default()),
            ),
        };
        let cache_entries = config.catalog_cache_entries;
        let search = CatalogSearch::start(&db, &config.search, metrics.clone());
        App {
            search,
            hasher: Hasher::new(config.limits.hash_queue, metrics.clone()),
            metrics,
            config,
            db,
            redis,
            login_limiter,
            registration_limiter,
            reset_limiter,
            mailer,
            sessions,
            csrf_key,
            catalog_version,
            catalog_pages: VersionedCache::with_capacity(cache_entries),
            book_pages: VersionedCache::with_capacity(cache_entries),
            books_listed: VersionedCache::with_capacity(cache_entries.min(1)),
            shop_copies: Default::default(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// A catalog page, from this replica's cache when the catalog has not
    /// changed since. Searches come from the index when it can answer (see
    /// crate::search); `own_change` is the last change this shopper made.
    pub async fn catalog_page(
        &self,
        query: &CatalogQuery,
        own_change: Option<ChangeId>,
    ) -> sqlx::Result<Arc<CatalogPage>> {
        let version = self.catalog_version.current().await;
        if let Some(search) = &self.search
            && let Some(generation) = search.can_answer(query, own_change).await
        {
            let key = (query.clone(), generation);
            let load = search.page(&self.db, query);
            return self.catalog_pages.get_or_load(version, &key, load).await;
        }
        let key = (query.clone(), 0);
        let load = catalog::catalog(&self.db, query);
        match &self.search {
            // With the database down the index falls behind too (it cannot
            // read the feed): the page it last gave is served, as the
            // database's own pages are, rather than an error.
            Some(search) => {
                let indexed = (query.clone(), search.generation());
                self.catalog_pages
                    .get_or_load_or_stale(version, &key, &indexed, load)
                    .await
            }
            None => self.catalog_pages.get_or_load(version, &key, load).await,
        }
    }

    /// How many books the shop lists (up to `catalog::COUNT_CAP`), cached like catalog pages.
    pub async fn books_listed(&self) -> sqlx::Result<Total> {
        let version = self.catalog_version.current().await;
        let total = self
            .books_listed
            .get_or_load(version, &(), catalog::count_books(&self.db.pool()))
            .await?;
        Ok(*total)
    }

    /// A book as its public page shows it, cached like catalog pages.
    pub async fn book(&self, id: i64) -> sqlx::Result<Arc<Option<Book>>> {
        let version = self.catalog_version.current().await;
        self.book_pages
            .get_or_load(version, &id, books::get(&self.db.pool(), id))
            .await
    }

    /// A committed change to a book's listed fields (`change` in the feed):
    /// the catalog version moves, and this replica's searches show it.
    pub async fn book_changed(&self, change: ChangeId) {
        if let Some(search) = &self.search {
            search.changed_here(change);
        }
        self.catalog_changed().await;
    }

    /// Every committed change to books or stock calls this, on whichever replica made it.
    pub async fn catalog_changed(&self) {
        self.catalog_version.bump().await;
    }

    /// How unpaid orders hold stock, from the configuration and the shop's
    /// copies (counted again when older than [`SHOP_COPIES_FRESH_FOR`]: the
    /// total changes only with sales and listings, and a sum over every book
    /// is worth sparing each order).
    pub async fn hold_policy(&self) -> sqlx::Result<HoldPolicy> {
        Ok(HoldPolicy {
            ttl: self.config.order_ttl,
            max_open_orders: self.config.limits.open_orders,
            max_held_per_title: self.config.limits.held_per_title,
            new_buyers: NewBuyerShare {
                shop_percent: self.config.limits.new_buyers_shop_percent,
                title_percent: self.config.limits.new_buyers_title_percent,
                shop_copies: self.shop_copies().await?,
            },
            confirmed_only: self.config.mail.confirm_addresses,
        })
    }

    async fn shop_copies(&self) -> sqlx::Result<i64> {
        let mut counted = self.shop_copies.lock().await;
        match *counted {
            Some((at, copies)) if at.elapsed() < SHOP_COPIES_FRESH_FOR => Ok(copies),
            _ => {
                let copies = orders::shop_copies(&self.db.pool()).await?;
                *counted = Some((Instant::now(), copies));
                Ok(copies)
            }
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
