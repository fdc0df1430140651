//! The connection pool and migrations. One query layer serves SQLite (the
//! embedded default) and MySQL/MariaDB (the fleet) through sqlx's `Any` driver.

mod stalled;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

/// The migrations this build knows. A database that a newer build migrated
/// further (then rolled back: stack.yml's `failure_action: rollback`) holds
/// migrations this one does not; they are let be, so the older replica still
/// starts. That holds because every migration only adds (docs/decisions.md).
fn migrator(backend: Backend) -> Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::MySql => sqlx::migrate!("./migrations/mysql"),
    };
    migrator.set_ignore_missing(true);
    migrator
}

const MIGRATION_LOCK_SECS: u32 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

impl Backend {
    pub fn of_url(url: &str) -> anyhow::Result<Backend> {
        match url.split(':').next() {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("mysql" | "mariadb") => Ok(Backend::MySql),
            _ => anyhow::bail!("DATABASE_URL must start with sqlite:// or mysql://"),
        }
    }
}

/// The shop's database: a pool that is replaced whole when it stalls (the
/// `stalled` module says when and why), so callers ask for [`Db::pool`] at
/// each use instead of keeping one.
#[derive(Debug, Clone)]
pub struct Db {
    slot: Arc<stalled::PoolSlot>,
    pub backend: Backend,
}

impl Db {
    /// Connects, retrying while the database is not up yet (a replica may start
    /// before MySQL does: Swarm ignores `depends_on`), until `wait` has passed.
    pub async fn connect(url: &str, max_connections: u32, wait: Duration) -> anyhow::Result<Db> {
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.replacen("mariadb:", "mysql:", 1),
        };
        let releases = stalled::Releases::new();
        let options = pool_options(backend, max_connections, &releases);
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            match options.clone().connect(&url).await {
                Ok(pool) => {
                    let slot = stalled::PoolSlot::new(pool, options, url, releases);
                    if backend == Backend::MySql {
                        stalled::watch(&slot);
                    }
                    return Ok(Db { slot, backend });
                }
                Err(err) if started.elapsed() + delay < wait && is_transient(&err) => {
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!("cannot connect to the database ({})", redact(&url))
                    });
                }
            }
        }
    }

    /// The pool to use now. Cheap (a shared handle); take it for each use,
    /// as a stalled pool is replaced by a new one.
    pub fn pool(&self) -> AnyPool {
        self.slot.current()
    }

    /// How many times this replica replaced a stalled pool.
    pub fn pools_replaced(&self) -> u64 {
        self.slot.replaced()
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => migrator(Backend::Sqlite)
                .run(&self.pool())
                .await
                .context("database migration failed"),
            Backend::MySql => self.migrate_mysql_exclusively().await,
        }
    }

    /// Replicas starting together must migrate one at a time. sqlx's migrator
    /// asks for `GET_LOCK(name, -1)`, which MariaDB answers with NULL at once
    /// instead of waiting (a test caught two replicas inserting the same rows),
    /// so the lock is taken here, with a finite timeout, on the connection the
    /// migrator then uses.
    async fn migrate_mysql_exclusively(&self) -> anyhow::Result<()> {
        let mut conn = self.pool().acquire().await?;
        let lock = "CONCAT('bookstore_migrations_', DATABASE())";
        let got: Option<i64> =
            sqlx::query_scalar(&format!("SELECT GET_LOCK({lock}, {MIGRATION_LOCK_SECS})"))
                .fetch_one(&mut *conn)
                .await?;
        if got != Some(1) {
            anyhow::bail!("another replica held the migration lock for {MIGRATION_LOCK_SECS} s");
        }
        // `run_direct` is `run` on one connection, without its "Acquire is not general enough" trap.
        let migrated = migrator(Backend::MySql).run_direct(&mut *conn).await;
        let _ = sqlx::query(&format!("SELECT RELEASE_LOCK({lock})"))
            .execute(&mut *conn)
            .await;
        migrated.context("database migration failed")
    }

    /// True when a trivial query answers within `limit`.
    pub async fn is_ready(&self, limit: Duration) -> bool {
        let pool = self.pool();
        let ping = sqlx::query("SELECT 1").execute(&pool);
        matches!(tokio::time::timeout(limit, ping).await, Ok(Ok(_)))
    }
}

fn pool_options(
    backend: Backend,
    max_connections: u32,
    releases: &stalled::Releases,
) -> AnyPoolOptions {
    let options = AnyPoolOptions::new()
        // Pages answer 503 quickly when the database is gone, instead of hanging.
        .acquire_timeout(Duration::from_secs(2))
        .idle_timeout(Duration::from_secs(300));
    match backend {
        Backend::MySql => options
            .max_connections(max_connections)
            .min_connections(1)
            .after_release({
                let releases = releases.clone();
                move |_, _| {
                    releases.record();
                    Box::pin(async { Ok(true) })
                }
            }),
        Backend::Sqlite => options
            .max_connections(max_connections.min(8))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; the busy timeout
                    // makes concurrent writers queue instead of failing.
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            }),
    }
}

/// The longest a background task (the search index's feed, order expiry, the
/// mail sender) waits for one database call before it gives the call up and
/// tries again at its next round. A server whose host vanished never answers,
/// and a task that waited for it would stop that work on this replica until
/// the kernel gave the connection up, some 15 minutes.
pub const BACKGROUND_CALL_LIMIT: Duration = Duration::from_secs(10);

/// A background task's database call, given up after [`BACKGROUND_CALL_LIMIT`].
pub async fn bounded<T>(call: impl Future<Output = sqlx::Result<T>>) -> sqlx::Result<T> {
    match tokio::time::timeout(BACKGROUND_CALL_LIMIT, call).await {
        Ok(result) => result,
        Err(_) => Err(timed_out("the database did not answer within 10 s")),
    }
}

fn timed_out(what: &'static str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

fn is_transient(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
    ) || err.to_string().contains("Can't connect")
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_a_newer_build_migrated_still_starts_this_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/shop.db", dir.path().display());
        let db = Db::connect(&url, 1, Duration::from_secs(5)).await.unwrap();
        db.migrate().await.unwrap();
        // What a newer build leaves behind: a migration this one does not know.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from a newer build', 1, X'00', 0)",
        )
        .execute(&db.pool())
        .await
        .unwrap();
        db.migrate()
            .await
            .expect("a rolled-back replica starts on the newer schema");
    }
}
