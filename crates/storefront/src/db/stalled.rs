//! A pool whose connections went with the database's host is replaced.
//!
//! When MySQL's host vanishes (an instance lost for good), its connections
//! neither close nor fail: nothing answers and no reset comes. sqlx pings
//! each connection it takes back, with no time limit, so a connection whose
//! query was cut short (the 15 s request timeout), or that was between its
//! answer and that ping at the loss, waits in the ping until the kernel
//! gives it up, some 15 minutes, and the pool counts it as in use. Idle
//! connections are not the trouble: sqlx tests them before handing them
//! out, within the 2 s acquire timeout, and drops them. When every
//! connection is held so, the replica answers 503 and is not ready for
//! those 15 minutes, though the database is back at the same name (its disk
//! on another instance) and a new connection would work.
//!
//! Bounding sqlx's ping would cost a second round trip per query (its own
//! always follows an `after_release` hook): 14 % of a database-bound page's
//! throughput, measured. So the pool is watched instead. Stalled means every
//! connection in use and none given back for [`STALLED_AFTER`]; a pool
//! working at full load gives one back every few milliseconds. A stalled
//! pool is replaced once a new one connects; the old one is closed, so what
//! it still holds is closed, not kept, when the kernel frees it.
//!
//! A server that answers nothing for 5 s without having vanished (a lock
//! every query waits for) looks the same from here. Replacing its pools
//! over and over would open a pool's worth of connections every few seconds
//! until the server refused them all, so a pool is only replaced while no
//! earlier one still holds a connection: at most twice the pool's size.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// No connection given back for this long, with every one in use: stalled.
/// Longer than any query a page makes; shorter than the request timeout, so
/// the replica is serving again before the requests of the loss time out.
pub(super) const STALLED_AFTER: Duration = Duration::from_secs(5);
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The new pool's first connection, tried again at the next check (sqlx's
/// own 2 s acquire timeout usually ends a try first).
const CONNECT_LIMIT: Duration = Duration::from_secs(3);

/// When the pool last took a connection back (sqlx's `after_release` hook,
/// which costs no round trip).
#[derive(Debug, Clone)]
pub(super) struct Releases {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Releases {
    pub(super) fn new() -> Releases {
        Releases {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(super) fn record(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The pool in use, and what it takes to make its replacement.
pub(super) struct PoolSlot {
    current: RwLock<AnyPool>,
    /// The pool it replaced, until every connection it held is freed.
    retired: Mutex<Option<AnyPool>>,
    options: AnyPoolOptions,
    url: String,
    releases: Releases,
    replaced: AtomicU64,
}

/// Without the URL, which holds the password.
impl fmt::Debug for PoolSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolSlot")
            .field("replaced", &self.replaced)
            .finish_non_exhaustive()
    }
}

impl PoolSlot {
    pub(super) fn new(
        pool: AnyPool,
        options: AnyPoolOptions,
        url: String,
        releases: Releases,
    ) -> Arc<PoolSlot> {
        Arc::new(PoolSlot {
            current: RwLock::new(pool),
            retired: Mutex::new(None),
            options,
            url,
            releases,
            replaced: AtomicU64::new(0),
        })
    }

    pub(super) fn current(&self) -> AnyPool {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(super) fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// The pool this one replaced still holds connections.
    fn retired_still_holds(&self) -> bool {
        let mut retired = self
            .retired
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if retired.as_ref().is_some_and(|pool| pool.size() == 0) {
            *retired = None;
        }
        retired.is_some()
    }

    /// Puts a newly connected pool in place of the stalled one, when it may.
    async fn replace(&self, stalled_for: Duration) -> Replacement {
        if self.retired_still_holds() {
            return Replacement::RetiredStillHolds;
        }
        let connect = self.options.clone().connect(&self.url);
        let fresh = match tokio::time::timeout(CONNECT_LIMIT, connect).await {
            Ok(Ok(pool)) => pool,
            Ok(Err(err)) => return Replacement::NoConnection(err.to_string()),
            Err(_) => return Replacement::NoConnection("no answer within 3 s".into()),
        };
        let old = {
            let mut current = self
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(&mut *current, fresh)
        };
        // Closed at once (no new takers); the task closes each connection as
        // it comes back, idle ones included, and ends when none is left.
        let closing = old.clone();
        tokio::spawn(async move { closing.close().await });
        self.replaced.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            held = old.size(),
            stalled_secs = stalled_for.as_secs(),
            "database pool replaced: every connection was held and none came back \
             (its server's host vanished?); the old pool's are closed as the kernel frees them"
        );
        *self
            .retired
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(old);
        Replacement::Done
    }
}

/// What one try to replace a stalled pool came to.
#[derive(Debug)]
enum Replacement {
    Done,
    NoConnection(String),
    RetiredStillHolds,
}

impl Replacement {
    /// Said once per stall and reason, not at every check.
    fn log(&self) {
        match self {
            Replacement::Done => {}
            Replacement::NoConnection(error) => {
                tracing::warn!(%error, "database pool stalled; no new connection yet, trying again at each check");
            }
            Replacement::RetiredStillHolds => tracing::warn!(
                "database pool stalled; not replaced while the pool it replaced still holds connections"
            ),
        }
    }
}

fn saturated(pool: &AnyPool) -> bool {
    pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections()
}

/// Checks the pool every second while the `Db` lives, and replaces it when
/// it stalled.
pub(super) fn watch(slot: &Arc<PoolSlot>) {
    let slot = Arc::downgrade(slot);
    tokio::spawn(async move {
        // The last moment the pool moved: a connection given back, or one free.
        let mut moved = Instant::now();
        let mut last_outcome: Option<Replacement> = None;
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let Some(slot) = slot.upgrade() else {
                return;
            };
            if !saturated(&slot.current()) {
                moved = Instant::now();
                last_outcome = None;
                continue;
            }
            moved = moved.max(slot.releases.last());
            if moved.elapsed() < STALLED_AFTER {
                continue;
            }
            let outcome = slot.replace(moved.elapsed()).await;
            let said = last_outcome.as_ref().map(std::mem::discriminant);
            if said != Some(std::mem::discriminant(&outcome)) {
                outcome.log();
            }
            if matches!(outcome, Replacement::Done) {
                moved = Instant::now();
                last_outcome = None;
            } else {
                last_outcome = Some(outcome);
            }
        }
    });
}
