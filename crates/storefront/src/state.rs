//! The one application value every handler reaches through `State<AppState>`.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::db::Db;
use crate::ratelimit::LoginLimiter;
use crate::session_store::with_redis;

pub struct App {
    pub config: Config,
    pub db: Db,
    pub redis: Option<deadpool_redis::Pool>,
    pub login_limiter: LoginLimiter,
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
    pub fn new(config: Config, db: Db, redis: Option<deadpool_redis::Pool>) -> Self {
        let login_limiter = match &redis {
            Some(pool) => LoginLimiter::Redis(pool.clone()),
            None => LoginLimiter::Memory(Default::default()),
        };
        App {
            config,
            db,
            redis,
            login_limiter,
            shutting_down: AtomicBool::new(false),
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
