//! Login limits that count and decide in one step, so a burst of concurrent
//! attempts cannot slip past the limit between a check and an increment.
//!
//! Every attempt is counted before its password is checked: first against the
//! client's address, then, only if the address is still within its budget,
//! against the account. An attacker's address is therefore throttled before
//! the account it targets is, and attempts refused at the address do not eat
//! into the owner's allowance. A successful login clears the account's count
//! and gives its attempt back to the address, so many people behind one
//! address who know their passwords are not held back. An attempt whose
//! password was never checked (the hashing queue was full: a 503) is given
//! back to both, so a flood of strangers' logins cannot use up a real user's
//! attempts by making theirs fail for overload. In the fleet the
//! counters are in Redis (one Lua script, atomic on the server), so every
//! replica shares them; alone, they are in this process behind one lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::app::config::Limits;
use crate::shared::redis::with_redis;

/// What the limiter decided about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead and check the password.
    Allowed,
    /// This client address has used its attempts; retry after this many seconds.
    AddressThrottled(u64),
    /// This account has had too many attempts; retry after this many seconds.
    AccountThrottled(u64),
}

#[derive(Debug)]
pub struct LoginLimiter {
    backend: Backend,
    per_address: u64,
    per_account: u64,
    window: Duration,
}

#[derive(Debug)]
enum Backend {
    Memory(Mutex<Counters>),
    Redis(deadpool_redis::Pool),
}

/// Increments both counters (the account's only if the address passed) and
/// returns {verdict, seconds left}: 0 allowed, 1 address, 2 account.
const ATTEMPT_SCRIPT: &str = r"
local window = tonumber(ARGV[1])
local function hit(key)
  local n = redis.call('INCR', key)
  if n == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, window) end
  return n
end
if hit(KEYS[1]) > tonumber(ARGV[2]) then return {1, redis.call('TTL', KEYS[1])} end
if hit(KEYS[2]) > tonumber(ARGV[3]) then return {2, redis.call('TTL', KEYS[2])} end
return {0, 0}
";

/// Gives the address and the account their attempt back (never below zero).
const GIVE_BACK_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n > 0 then redis.call('DECR', key) end
end
return 0
";

/// Gives the address its attempt back and forgets the account's count.
const SUCCESS_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
redis.call('DEL', KEYS[2])
return 0
";

impl LoginLimiter {
    pub fn in_memory(limits: &Limits) -> Self {
        Self::with_backend(Backend::Memory(Mutex::default()), limits)
    }

    pub fn in_redis(pool: deadpool_redis::Pool, limits: &Limits) -> Self {
        Self::with_backend(Backend::Redis(pool), limits)
    }

    fn with_backend(backend: Backend, limits: &Limits) -> Self {
        LoginLimiter {
            backend,
            per_address: limits.login_per_address,
            per_account: limits.login_per_account,
            window: limits.login_window,
        }
    }

    fn keys(address: &str, account: &str) -> [String; 2] {
        [
            format!("ratelimit:login:addr:{address}"),
            format!("ratelimit:login:account:{account}"),
        ]
    }

    /// Counts one login attempt and decides whether its password may be checked.
    pub async fn attempt(&self, address: &str, account: &str) -> anyhow::Result<Verdict> {
        let [address_key, account_key] = Self::keys(address, account);
        match &self.backend {
            Backend::Memory(counters) => {
                let mut counters = counters.lock().expect("rate-limit counters poisoned");
                Ok(counters.attempt(
                    [
                        (address_key, self.per_address),
                        (account_key, self.per_account),
                    ],
                    self.window,
                    Instant::now(),
                ))
            }
            Backend::Redis(pool) => {
                let window = self.window.as_secs().max(1);
                let (verdict, seconds): (u8, i64) = with_redis(pool, |mut conn| async move {
                    redis::cmd("EVAL")
                        .arg(ATTEMPT_SCRIPT)
                        .arg(2)
                        .arg(address_key)
                        .arg(account_key)
                        .arg(window)
                        .arg(self.per_address)
                        .arg(self.per_account)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
                let seconds = seconds.max(1) as u64;
                Ok(match verdict {
                    0 => Verdict::Allowed,
                    1 => Verdict::AddressThrottled(seconds),
                    _ => Verdict::AccountThrottled(seconds),
                })
            }
        }
    }

    /// After a correct password: the address gets its attempt back, the account starts afresh.
    pub async fn succeeded(&self, address: &str, account: &str) -> anyhow::Result<()> {
        let [address_key, account_key] = Self::keys(address, account);
        match &self.backend {
            Backend::Memory(counters) => {
                let mut counters = counters.lock().expect("rate-limit counters poisoned");
                counters.give_back(&address_key);
                counters.windows.remove(&account_key);
                Ok(())
            }
            Backend::Redis(pool) => {
                eval_on_both(pool, SUCCESS_SCRIPT, address_key, account_key).await
            }
        }
    }

    /// The attempt was refused before its password was checked (overload):
    /// it does not count against the address or the account.
    pub async fn not_checked(&self, address: &str, account: &str) -> anyhow::Result<()> {
        let [address_key, account_key] = Self::keys(address, account);
        match &self.backend {
            Backend::Memory(counters) => {
                let mut counters = counters.lock().expect("rate-limit counters poisoned");
                counters.give_back(&address_key);
                counters.give_back(&account_key);
                Ok(())
            }
            Backend::Redis(pool) => {
                eval_on_both(pool, GIVE_BACK_SCRIPT, address_key, account_key).await
            }
        }
    }
}

/// Requests of one kind per client address in a fixed window. New accounts:
/// one script cannot make thousands of accounts (each a cart that can hold
/// stock) from one place; every well-formed registration counts, a duplicate
/// address too, so the limit also bounds probing which addresses have
/// accounts. Password-reset requests: one place cannot mail-bomb the shop's
/// shoppers.
#[derive(Debug)]
pub struct AddressLimiter {
    backend: Backend,
    /// Names the counters: `ratelimit:{purpose}:addr:{address}`.
    purpose: &'static str,
    per_address: u64,
    window: Duration,
}

/// Counts one request; returns {1, seconds left} beyond the limit.
const COUNT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then return {1, redis.call('TTL', KEYS[1])} end
return {0, 0}
";

impl AddressLimiter {
    /// New accounts (`REGISTER_MAX_PER_ADDRESS` per `REGISTER_WINDOW_SECS`).
    pub fn registrations(redis: Option<deadpool_redis::Pool>, limits: &Limits) -> Self {
        Self::new(
            redis,
            "register",
            limits.register_per_address,
            limits.register_window,
        )
    }

    /// `per_address` requests of `purpose` per `window`, counted in Redis
    /// (shared by every replica) or in this process.
    pub fn new(
        redis: Option<deadpool_redis::Pool>,
        purpose: &'static str,
        per_address: u64,
        window: Duration,
    ) -> Self {
        let backend = match redis {
            Some(pool) => Backend::Redis(pool),
            None => Backend::Memory(Mutex::default()),
        };
        AddressLimiter {
            backend,
            purpose,
            per_address,
            window,
        }
    }

    /// Counts one request from `address`: `Some(seconds until the
    /// window ends)` when the address is past its limit.
    pub async fn attempt(&self, address: &str) -> anyhow::Result<Option<u64>> {
        let key = format!("ratelimit:{}:addr:{address}", self.purpose);
        match &self.backend {
            Backend::Memory(counters) => {
                let mut counters = counters.lock().expect("rate-limit counters poisoned");
                let now = Instant::now();
                counters.sweep(now);
                let (count, left) = counters.hit(key, self.window, now);
                Ok((count > self.per_address).then_some(left))
            }
            Backend::Redis(pool) => {
                let window = self.window.as_secs().max(1);
                let per_address = self.per_address;
                let (over, seconds): (u8, i64) = with_redis(pool, |mut conn| async move {
                    redis::cmd("EVAL")
                        .arg(COUNT_SCRIPT)
                        .arg(1)
                        .arg(key)
                        .arg(window)
                        .arg(per_address)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
                Ok((over == 1).then_some(seconds.max(1) as u64))
            }
        }
    }
}

/// Runs one of the scripts above that takes the address's and the account's
/// keys and answers nothing.
async fn eval_on_both(
    pool: &deadpool_redis::Pool,
    script: &'static str,
    address_key: String,
    account_key: String,
) -> anyhow::Result<()> {
    with_redis(pool, |mut conn| async move {
        redis::cmd("EVAL")
            .arg(script)
            .arg(2)
            .arg(address_key)
            .arg(account_key)
            .query_async::<()>(&mut conn)
            .await
    })
    .await
}

/// Fixed windows per key, in this process. Expired windows are swept at most
/// once a minute, so the map holds only keys seen within the last window.
#[derive(Debug, Default)]
struct Counters {
    windows: HashMap<String, Window>,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Counters {
    /// The in-memory twin of `ATTEMPT_SCRIPT`, run under one lock.
    fn attempt(&mut self, keys: [(String, u64); 2], window: Duration, now: Instant) -> Verdict {
        self.sweep(now);
        let [(address, address_limit), (account, account_limit)] = keys;
        let (count, left) = self.hit(address, window, now);
        if count > address_limit {
            return Verdict::AddressThrottled(left);
        }
        let (count, left) = self.hit(account, window, now);
        if count > account_limit {
            return Verdict::AccountThrottled(left);
        }
        Verdict::Allowed
    }

    fn hit(&mut self, key: String, window: Duration, now: Instant) -> (u64, u64) {
        let entry = self.windows.entry(key).or_insert(Window {
            count: 0,
            ends: now + window,
        });
        if entry.ends <= now {
            *entry = Window {
                count: 0,
                ends: now + window,
            };
        }
        entry.count += 1;
        let left = entry.ends.saturating_duration_since(now).as_secs().max(1);
        (entry.count, left)
    }

    fn give_back(&mut self, key: &str) {
        if let Some(window) = self.windows.get_mut(key) {
            window.count = window.count.saturating_sub(1);
        }
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.duration_since(last) < SWEEP_EVERY)
        {
            return;
        }
        self.windows.retain(|_, w| w.ends > now);
        self.last_sweep = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: u64, per_account: u64) -> Limits {
        Limits {
            login_per_address: per_address,
            login_per_account: per_account,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn the_address_is_throttled_before_the_account() {
        let limiter = LoginLimiter::in_memory(&limits(3, 5));
        for _ in 0..3 {
            assert_eq!(
                limiter.attempt("6.6.6.6", "ana").await.unwrap(),
                Verdict::Allowed
            );
        }
        assert!(matches!(
            limiter.attempt("6.6.6.6", "ana").await.unwrap(),
            Verdict::AddressThrottled(_)
        ));
        // Ana, from her own address, still has 2 of her 5 attempts left.
        assert_eq!(
            limiter.attempt("192.0.2.1", "ana").await.unwrap(),
            Verdict::Allowed
        );
        assert_eq!(
            limiter.attempt("192.0.2.1", "ana").await.unwrap(),
            Verdict::Allowed
        );
        assert!(matches!(
            limiter.attempt("192.0.2.1", "ana").await.unwrap(),
            Verdict::AccountThrottled(_)
        ));
    }

    #[tokio::test]
    async fn attempts_refused_for_overload_do_not_count() {
        let limiter = LoginLimiter::in_memory(&limits(3, 3));
        for _ in 0..10 {
            assert_eq!(
                limiter.attempt("192.0.2.1", "ana").await.unwrap(),
                Verdict::Allowed
            );
            limiter.not_checked("192.0.2.1", "ana").await.unwrap();
        }
        for _ in 0..3 {
            assert_eq!(
                limiter.attempt("192.0.2.1", "ana").await.unwrap(),
                Verdict::Allowed
            );
        }
        assert!(matches!(
            limiter.attempt("192.0.2.1", "ana").await.unwrap(),
            Verdict::AddressThrottled(_)
        ));
    }

    #[tokio::test]
    async fn success_clears_the_account_and_gives_the_address_its_attempt_back() {
        let limiter = LoginLimiter::in_memory(&limits(2, 2));
        limiter.attempt("192.0.2.1", "ana").await.unwrap();
        limiter.attempt("192.0.2.1", "ana").await.unwrap();
        limiter.succeeded("192.0.2.1", "ana").await.unwrap();
        assert_eq!(
            limiter.attempt("192.0.2.1", "ana").await.unwrap(),
            Verdict::Allowed
        );
        assert!(matches!(
            limiter.attempt("192.0.2.1", "bob").await.unwrap(),
            Verdict::AddressThrottled(_)
        ));
    }

    #[test]
    fn windows_end_and_are_swept() {
        let mut counters = Counters::default();
        let start = Instant::now();
        let window = Duration::from_secs(900);
        let keys = || [("a".to_string(), 1), ("x".to_string(), 1)];
        assert_eq!(counters.attempt(keys(), window, start), Verdict::Allowed);
        assert_eq!(
            counters.attempt(keys(), window, start + Duration::from_secs(1)),
            Verdict::AddressThrottled(899)
        );
        let later = start + window + SWEEP_EVERY;
        assert_eq!(counters.attempt(keys(), window, later), Verdict::Allowed);
        counters.attempt(
            [("b".into(), 1), ("y".into(), 1)],
            window,
            later + window + SWEEP_EVERY,
        );
        assert_eq!(counters.windows.len(), 2, "a and x were swept");
    }
}
