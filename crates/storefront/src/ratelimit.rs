//! Failed-login counting per e-mail address, in a fixed window. Kept in Redis
//! in the fleet, so every replica sees the same count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::session_store::with_redis;

pub const MAX_FAILED_LOGINS: u64 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
pub enum LoginLimiter {
    Memory(Mutex<HashMap<String, (u64, Instant)>>),
    Redis(deadpool_redis::Pool),
}

impl LoginLimiter {
    fn key(email: &str) -> String {
        format!("ratelimit:login:{email}")
    }

    /// True when this address has used up its failed attempts for the window.
    pub async fn is_blocked(&self, email: &str) -> anyhow::Result<bool> {
        Ok(self.failures(email).await? >= MAX_FAILED_LOGINS)
    }

    async fn failures(&self, email: &str) -> anyhow::Result<u64> {
        match self {
            LoginLimiter::Memory(map) => {
                let map = map.lock().expect("rate-limit map poisoned");
                Ok(map
                    .get(email)
                    .filter(|(_, since)| since.elapsed() < WINDOW)
                    .map_or(0, |(n, _)| *n))
            }
            LoginLimiter::Redis(pool) => {
                let key = Self::key(email);
                let n: Option<u64> = with_redis(pool, |mut conn| async move {
                    redis::cmd("GET").arg(key).query_async(&mut conn).await
                })
                .await?;
                Ok(n.unwrap_or(0))
            }
        }
    }

    pub async fn record_failure(&self, email: &str) -> anyhow::Result<()> {
        match self {
            LoginLimiter::Memory(map) => {
                let mut map = map.lock().expect("rate-limit map poisoned");
                let entry = map.entry(email.to_string()).or_insert((0, Instant::now()));
                if entry.1.elapsed() >= WINDOW {
                    *entry = (0, Instant::now());
                }
                entry.0 += 1;
                Ok(())
            }
            LoginLimiter::Redis(pool) => {
                let key = Self::key(email);
                with_redis(pool, |mut conn| async move {
                    // INCR and the window's expiry in one atomic step.
                    redis::pipe()
                        .atomic()
                        .incr(&key, 1)
                        .expire(&key, WINDOW.as_secs() as i64)
                        .arg("NX")
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await
            }
        }
    }

    pub async fn clear(&self, email: &str) -> anyhow::Result<()> {
        match self {
            LoginLimiter::Memory(map) => {
                map.lock().expect("rate-limit map poisoned").remove(email);
                Ok(())
            }
            LoginLimiter::Redis(pool) => {
                let key = Self::key(email);
                with_redis(pool, |mut conn| async move {
                    redis::cmd("DEL")
                        .arg(key)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await
            }
        }
    }
}
