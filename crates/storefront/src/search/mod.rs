//! The catalog's search, from an index in each replica.
//!
//! The database stays the one source of truth. Each replica builds a tantivy
//! index of the listed books from it at start, then follows the change feed
//! (`catalog_changes`, appended in each book write's own transaction) and
//! applies it, read by id every `SEARCH_POLL_MS`. A search takes its ids
//! from the index and its cards from the database by primary key, so the
//! price and stock shown are always the database's.
//!
//! While the index is building, or when it has not caught up with the feed
//! for longer than `SEARCH_MAX_LAG_MS`, searches go to the database's
//! full-text search as before: slower, never wrong, never an error. A
//! shopper who changed a book (the seller) carries the change's id in their
//! session, and a replica remembers the changes made through it; a search
//! on a replica whose index has not applied the one it needs waits for it a
//! moment (the feed is read at once after a change made here), then answers
//! from the database: a change shows at once to whoever made it, and on the
//! replica that made it.

mod browse;
pub mod feed;
mod index;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tower_sessions::Session;

use crate::app::config::SearchSettings;
use crate::db::{Db, bounded};
use crate::metrics::{Metrics, SearchFigures};
use crate::shared::read_cache::Derived;
use crate::store::books;
use crate::store::catalog::{self, CatalogPage, CatalogQuery, Cursor, MAX_OFFSET, Total};
use crate::store::changes::{self, ChangeId};
use browse::PageRequest;
use feed::Position;
use index::CatalogIndex;

/// Changes read from the feed at a time.
const FEED_BATCH: i64 = 1_000;
/// Books read from the database at a time while building.
const BUILD_BATCH: i64 = 5_000;
/// How long a seller's next search waits for the index to apply their change.
const OWN_CHANGE_WAIT: Duration = Duration::from_millis(500);
/// How old the feed's rows may grow before they are pruned.
const FEED_RETENTION_SECS: i64 = 24 * 3600;
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The session key holding the last catalog change its shopper made.
const OWN_CHANGE_KEY: &str = "catalog_change";

/// Where a replica's searches are answered from, as `/readyz` and the
/// metrics say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchSource {
    Index,
    /// The index is being built (at start, or after a bulk load).
    DatabaseWhileBuilding,
    /// The index has not caught up with the feed for too long.
    DatabaseWhileBehind,
    /// `SEARCH_INDEX=false`.
    DatabaseByConfiguration,
}

impl SearchSource {
    pub fn describe(self) -> &'static str {
        match self {
            SearchSource::Index => "index",
            SearchSource::DatabaseWhileBuilding => "database (index building)",
            SearchSource::DatabaseWhileBehind => "database (index behind)",
            SearchSource::DatabaseByConfiguration => "database (SEARCH_INDEX=false)",
        }
    }
}

pub struct CatalogSearch {
    index: CatalogIndex,
    settings: SearchSettings,
    metrics: Arc<Metrics>,
    built: AtomicBool,
    position: Mutex<Position>,
    /// When the index last held every change the feed showed it.
    caught_up_at: Mutex<Instant>,
    /// Changes the feed holds that the index has not applied.
    behind: AtomicU64,
    /// Bumped after every change that searches can see: what the page cache
    /// keys index-served pages by.
    generation: AtomicU64,
    applied: tokio::sync::watch::Sender<u64>,
    /// The newest change made through this replica: its searches wait for
    /// it, whoever makes them (read-your-writes on one replica).
    made_here: AtomicI64,
    /// Wakes the feed's reader at once after a change made here.
    wake: tokio::sync::Notify,
}

impl CatalogSearch {
    /// Starts building and following the index in the background; `None`
    /// when the index is turned off or cannot be made.
    pub fn start(db: &Db, settings: &SearchSettings, metrics: Arc<Metrics>) -> Option<Arc<Self>> {
        if !settings.index {
            tracing::info!("search: the database's full-text search (SEARCH_INDEX=false)");
            return None;
        }
        let index = match CatalogIndex::new(db.backend) {
            Ok(index) => index,
            Err(err) => {
                tracing::error!(error = %err, "search index cannot be made: searching the database");
                return None;
            }
        };
        let search = Arc::new(CatalogSearch {
            index,
            settings: settings.clone(),
            metrics,
            built: AtomicBool::new(false),
            position: Mutex::new(Position::default()),
            caught_up_at: Mutex::new(Instant::now()),
            behind: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            applied: tokio::sync::watch::channel(0).0,
            made_here: AtomicI64::new(0),
            wake: tokio::sync::Notify::new(),
        });
        tokio::spawn(search.clone().follow(db.clone()));
        Some(search)
    }

    /// Where searches are answered from now.
    pub fn source(&self) -> SearchSource {
        if !self.built.load(Ordering::Acquire) {
            SearchSource::DatabaseWhileBuilding
        } else if self.lag() > self.settings.max_lag {
            SearchSource::DatabaseWhileBehind
        } else {
            SearchSource::Index
        }
    }

    /// Since when the index has not held every change the feed showed.
    fn lag(&self) -> Duration {
        self.caught_up_at
            .lock()
            .expect("search lock poisoned")
            .elapsed()
    }

    /// The generation an answer would come from, when the index may answer
    /// `query` for a shopper whose own last change is `own_change`.
    pub async fn can_answer(
        &self,
        query: &CatalogQuery,
        own_change: Option<ChangeId>,
    ) -> Option<u64> {
        let browsing = is_listing(query);
        if !browsing && catalog::indexed_terms(&query.search).is_empty() {
            return None;
        }
        let deep = (query.page - 1) * query.per_page > MAX_OFFSET;
        if !browsing && deep && query.cursor.is_some() {
            // Past a typed page's reach, a search's keyset links are the
            // database's (the listings walk from any book).
            return None;
        }
        if self.source() != SearchSource::Index {
            self.metrics.catalog_page(browsing, "database");
            return None;
        }
        let needed = own_change
            .unwrap_or(0)
            .max(self.made_here.load(Ordering::Acquire));
        if needed > 0 && !self.wait_for(needed).await {
            self.metrics.catalog_page(browsing, "database");
            return None;
        }
        Some(self.generation())
    }

    /// What pages the index answered are cached under (with the catalog
    /// version): bumped whenever searches can see more.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A change made through this replica: its feed is read at once, and
    /// this replica's searches show the change from now on.
    pub fn changed_here(&self, change: ChangeId) {
        self.made_here.fetch_max(change, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Waits (briefly) until the index holds `change`.
    async fn wait_for(&self, change: ChangeId) -> bool {
        let mut applied = self.applied.subscribe();
        let holds = || {
            self.position
                .lock()
                .expect("search lock poisoned")
                .has(change)
        };
        let wait = async {
            while !holds() {
                if applied.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(OWN_CHANGE_WAIT, wait)
            .await
            .unwrap_or(false)
    }

    /// A page of the catalog: ids from the index (or its listings, without
    /// a search), cards from the database by primary key.
    pub async fn page(&self, db: &Db, query: &CatalogQuery) -> sqlx::Result<CatalogPage> {
        if is_listing(query) {
            self.listing_page(db, query).await
        } else {
            self.search_page(db, query).await
        }
    }

    /// A page without a search, from the listings kept beside the index.
    async fn listing_page(&self, db: &Db, query: &CatalogQuery) -> sqlx::Result<CatalogPage> {
        let listing = self.index.browse(PageRequest {
            sort: query.sort,
            cursor: query.cursor,
            offset: query.offset() as usize,
            per_page: query.per_page as usize,
        });
        self.metrics.catalog_page(true, "index");
        let number = match listing.before_anchor {
            None => Some(query.page),
            Some(earlier) => catalog::page_number(earlier, query.per_page, listing.backwards),
        };
        Ok(CatalogPage {
            books: cards_in_order(db, &listing.ids).await?,
            total: Total::of_capped(listing.total as i64),
            has_next: listing.more || listing.backwards,
            number,
            derived: Derived::default(),
        })
    }

    /// A page of search results: ids from the index, cards from the
    /// database. Falls back to the database's search if the index fails.
    async fn search_page(&self, db: &Db, query: &CatalogQuery) -> sqlx::Result<CatalogPage> {
        let terms = catalog::indexed_terms(&query.search);
        let offset = query.offset() as usize;
        let limit = query.per_page as usize + 1;
        // On this thread, not the blocking pool: a search reads a few
        // posting lists and fast fields in memory (under a millisecond at a
        // million books), less than a hop to another thread costs under load.
        let hits = match self.index.search(&terms, query.sort, offset, limit) {
            Ok(hits) => hits,
            Err(err) => {
                tracing::warn!(error = %err, "search index failed: this search goes to the database");
                return catalog::catalog(db, query).await;
            }
        };
        self.metrics.catalog_page(false, "index");
        let has_next = hits.ids.len() > query.per_page as usize;
        let mut ids = hits.ids;
        ids.truncate(query.per_page as usize);
        Ok(CatalogPage {
            books: cards_in_order(db, &ids).await?,
            total: Total::of_capped(hits.matched as i64),
            has_next: has_next || matches!(query.cursor, Some(Cursor::Before(_))),
            number: Some(query.page),
            derived: Derived::default(),
        })
    }

    /// Builds the index, then follows the feed; builds again when the feed
    /// says many books changed at once.
    async fn follow(self: Arc<Self>, db: Db) {
        loop {
            if let Err(err) = self.clone().build(&db).await {
                tracing::warn!(error = %err, "search index build failed: retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            self.tail(&db).await;
        }
    }

    async fn build(self: Arc<Self>, db: &Db) -> anyhow::Result<()> {
        self.built.store(false, Ordering::Release);
        let started = Instant::now();
        // Changes from here on are applied after the build, whether or not
        // the build already read them (applying one twice changes nothing).
        let from = bounded(changes::latest(&db.pool())).await?;
        self.blocking(|index| index.clear()).await?;
        let mut after = 0;
        loop {
            let books = bounded(changes::books_after(&db.pool(), after, BUILD_BATCH)).await?;
            let Some(last) = books.last() else { break };
            after = last.id;
            self.blocking(move |index| index.add(&books)).await?;
        }
        self.blocking(|index| index.commit()).await?;
        *self.position.lock().expect("search lock poisoned") = Position::at(from);
        *self.caught_up_at.lock().expect("search lock poisoned") = Instant::now();
        self.built.store(true, Ordering::Release);
        self.made_visible();
        tracing::info!(
            books = self.index.books(),
            segments = self.index.segments(),
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "search index built"
        );
        Ok(())
    }

    /// Applies the feed every poll; returns when the index must be built again.
    async fn tail(self: &Arc<Self>, db: &Db) {
        let mut failing = false;
        let mut pruned_at = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll) => {}
                _ = self.wake.notified() => {}
            }
            match self.apply_feed(db).await {
                Ok(Applied::Rebuild) => return,
                Ok(Applied::Some) => failing = false,
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "search index cannot read the change feed");
                    }
                    failing = true;
                }
            }
            if pruned_at.elapsed() > PRUNE_EVERY {
                pruned_at = Instant::now();
                if let Err(err) = bounded(changes::prune(&db.pool(), FEED_RETENTION_SECS)).await {
                    tracing::warn!(error = %err, "cannot prune the change feed");
                }
            }
        }
    }

    /// Reads what the feed holds past the index's position and applies it.
    async fn apply_feed(self: &Arc<Self>, db: &Db) -> anyhow::Result<Applied> {
        let latest = bounded(changes::latest(&db.pool())).await?;
        let (from, highest, gaps) = {
            let mut position = self.position.lock().expect("search lock poisoned");
            position.advance(Instant::now());
            (
                position.read_from(),
                position.highest(),
                position.waiting_for_gaps(),
            )
        };
        if latest < highest {
            // A restored or emptied database: ids this index has passed may
            // be given again, and its books are not the database's.
            tracing::info!(
                latest,
                highest,
                "the change feed went back: building the search index again"
            );
            return Ok(Applied::Rebuild);
        }
        if latest == highest && !gaps {
            self.caught_up(latest);
            return Ok(Applied::Some);
        }
        let read = bounded(changes::after(&db.pool(), from, FEED_BATCH)).await?;
        let fresh: Vec<_> = {
            let position = self.position.lock().expect("search lock poisoned");
            read.iter()
                .filter(|c| position.is_new(c.id))
                .copied()
                .collect()
        };
        if fresh.iter().any(|change| change.book_id.is_none()) {
            tracing::info!("the feed says many books changed: building the search index again");
            return Ok(Applied::Rebuild);
        }
        if !fresh.is_empty() {
            let mut ids: Vec<i64> = fresh.iter().filter_map(|c| c.book_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let books = bounded(changes::books(&db.pool(), &ids)).await?;
            self.blocking(move |index| {
                index.replace(&ids, &books)?;
                index.commit()
            })
            .await?;
            let applied: Vec<ChangeId> = fresh.iter().map(|c| c.id).collect();
            self.position
                .lock()
                .expect("search lock poisoned")
                .applied_ids(&applied, Instant::now());
            self.made_visible();
        }
        if (read.len() as i64) < FEED_BATCH {
            self.caught_up(latest);
        } else {
            self.count_behind(latest);
        }
        Ok(Applied::Some)
    }

    /// Everything the feed showed is applied, `latest` its newest change.
    fn caught_up(&self, latest: ChangeId) {
        self.count_behind(latest);
        *self.caught_up_at.lock().expect("search lock poisoned") = Instant::now();
    }

    /// How many changes the feed holds past what the index applied.
    fn count_behind(&self, latest: ChangeId) {
        let highest = self
            .position
            .lock()
            .expect("search lock poisoned")
            .highest();
        self.behind
            .store(latest.saturating_sub(highest) as u64, Ordering::Release);
    }

    /// Tells the page cache and any waiting seller that searches see more now.
    fn made_visible(&self) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.applied.send_replace(generation);
    }

    /// Where the index stands, for `/metrics`.
    pub fn figures(&self) -> SearchFigures {
        SearchFigures {
            serving: self.source() == SearchSource::Index,
            books: self.index.books(),
            behind_changes: self.behind.load(Ordering::Acquire),
            behind_seconds: self.lag().as_secs_f64(),
        }
    }

    /// What `/readyz` says of search.
    pub fn describe(&self) -> String {
        format!(
            "search: {} ({} books indexed, {} changes behind, caught up {:.1} s ago)",
            self.source().describe(),
            self.index.books(),
            self.behind.load(Ordering::Acquire),
            self.lag().as_secs_f64()
        )
    }

    /// Runs index work on a blocking thread (tantivy is synchronous).
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&CatalogIndex) -> tantivy::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let search = self.clone();
        Ok(tokio::task::spawn_blocking(move || work(&search.index)).await??)
    }
}

enum Applied {
    Some,
    Rebuild,
}

/// Whether `query` lists the catalog without a search.
fn is_listing(query: &CatalogQuery) -> bool {
    query.search.trim().is_empty()
}

/// Cards of `ids` in that order (some may be gone since the index saw them).
async fn cards_in_order(db: &Db, ids: &[i64]) -> sqlx::Result<Vec<books::BookCard>> {
    let mut by_id: HashMap<i64, books::BookCard> = books::cards_by_ids(&db.pool(), ids)
        .await?
        .into_iter()
        .map(|card| (card.id, card))
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Remembers, in the shopper's session, the last catalog change they made,
/// so that their next search, on whatever replica, shows it.
pub async fn remember_own_change(session: &Session, change: ChangeId) {
    if let Err(err) = session.insert(OWN_CHANGE_KEY, change).await {
        tracing::warn!(error = %err, "cannot remember the seller's change in the session");
    }
}

/// The last catalog change this shopper made, if any.
pub async fn own_change(session: &Session) -> Option<ChangeId> {
    session.get(OWN_CHANGE_KEY).await.ok().flatten()
}
