//! This replica's copies of the sessions it has read from Redis, so that a
//! logged-in shopper's page costs no round trip. Kept correct across replicas
//! the way the catalog cache is:
//! - every replica that writes or deletes a session announces its id on a
//!   Redis pub/sub channel, in the same transaction as the write, and every
//!   replica drops its copy when it hears the id;
//! - Redis sends an announcement to every subscriber before it answers the
//!   writer, and a replica that deletes a session (logout) answers its shopper
//!   only once it has heard its own announcement back, so a logout on one
//!   replica ends the session on all of them before the next request;
//! - a copy read from Redis is kept only if no announcement arrived while it
//!   was being read (it might predate the write announced);
//! - while this replica's subscription is down it keeps no copies and reads
//!   every session from Redis, and it starts afresh when it subscribes again;
//! - no copy outlives `MAX_AGE`, the bound were an announcement lost.
//!
//! Hand-written, like `read_cache.rs`: the logic is the announcements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::metrics::Metrics;
use crate::shared::redis::{listen, subscribed, subscription_ended};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tower_sessions::session::{Id, Record};

const CHANNEL: &str = "session:changed";
/// The most a copy is trusted without hearing of a change.
const MAX_AGE: Duration = Duration::from_secs(10);
/// Sessions kept; past this the map starts afresh. Copies older than
/// `MAX_AGE` are never served, so this only bounds memory (a few MB): more
/// shoppers than this within 10 s on one replica cost Redis reads, not RAM.
const MAX_ENTRIES: usize = 4_096;
/// How long a writer waits to hear its own announcement (Redis answers in
/// well under a millisecond; this only bounds a failing subscription).
const ECHO_WAIT: Duration = Duration::from_millis(500);

struct Copy {
    record: Record,
    stored: Instant,
}

#[derive(Default)]
pub struct SessionCache {
    copies: Mutex<HashMap<Id, Copy>>,
    /// The subscription is up: copies may be kept and served.
    live: AtomicBool,
    /// Announcements heard, and resubscriptions: a read that saw this number
    /// change is not kept.
    heard: AtomicU64,
    /// Writers waiting to hear their own announcement, by its tag.
    echoes: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

/// Taken before a read from Redis; the copy is kept only if nothing was heard since.
pub struct ReadTicket(u64);

/// A pending announcement: its tag, to put in the message, and how to wait for it.
pub struct Announcement {
    pub message: String,
    echo: Option<oneshot::Receiver<()>>,
}

impl Announcement {
    /// Returns once this replica has heard the announcement back (or gives up
    /// after `ECHO_WAIT`: the write is done either way).
    pub async fn heard(self) {
        if let Some(echo) = self.echo
            && tokio::time::timeout(ECHO_WAIT, echo).await.is_err()
        {
            tracing::warn!("a session change was not heard back within {ECHO_WAIT:?}");
        }
    }
}

impl SessionCache {
    /// Starts following the channel on its own connection.
    pub fn follow(url: &str, metrics: Arc<Metrics>) -> Arc<SessionCache> {
        let cache = Arc::new(SessionCache::default());
        match redis::Client::open(url) {
            Ok(client) => {
                tokio::spawn(follow(client, cache.clone(), metrics));
            }
            Err(err) => {
                tracing::warn!(error = %err, "no session subscription: every session read from Redis")
            }
        }
        cache
    }

    pub const CHANNEL: &'static str = CHANNEL;

    pub fn get(&self, id: &Id) -> Option<Record> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let copies = self.copies.lock().expect("session cache poisoned");
        copies
            .get(id)
            .filter(|c| c.stored.elapsed() < MAX_AGE)
            .filter(|c| c.record.expiry_date > OffsetDateTime::now_utc())
            .map(|c| c.record.clone())
    }

    pub fn ticket(&self) -> ReadTicket {
        ReadTicket(self.heard.load(Ordering::Acquire))
    }

    /// Keeps what was read with `ticket`, unless a change was heard meanwhile.
    pub fn keep(&self, ticket: ReadTicket, record: &Record) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut copies = self.copies.lock().expect("session cache poisoned");
        // Checked under the lock that `hear` also takes, so no announcement
        // can slip between the check and the insert.
        if self.heard.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if copies.len() >= MAX_ENTRIES {
            copies.clear();
        }
        copies.insert(
            record.id,
            Copy {
                record: record.clone(),
                stored: Instant::now(),
            },
        );
    }

    /// The message announcing a change to `id`, and, when the writer will
    /// wait (`wait`) and this replica is subscribed, the means to wait until
    /// it hears the message back.
    pub fn announcement(&self, id: &Id, wait: bool) -> Announcement {
        self.forget(id);
        let tag = rand::random::<u64>();
        let echo = (wait && self.live.load(Ordering::Acquire)).then(|| {
            let (heard, echo) = oneshot::channel();
            self.echoes
                .lock()
                .expect("session echoes poisoned")
                .insert(tag, heard);
            echo
        });
        Announcement {
            message: format!("{id} {tag}"),
            echo,
        }
    }

    fn forget(&self, id: &Id) {
        self.copies
            .lock()
            .expect("session cache poisoned")
            .remove(id);
    }

    /// An announcement arrived: drop the copy, and wake its writer if it is ours.
    fn hear(&self, message: &str) {
        let (id, tag) = message.split_once(' ').unwrap_or((message, ""));
        {
            let mut copies = self.copies.lock().expect("session cache poisoned");
            self.heard.fetch_add(1, Ordering::AcqRel);
            match id.parse::<Id>() {
                Ok(id) => {
                    copies.remove(&id);
                }
                // Not ours to read: drop everything rather than guess.
                Err(_) => copies.clear(),
            }
        }
        if let Ok(tag) = tag.parse::<u64>()
            && let Some(writer) = self
                .echoes
                .lock()
                .expect("session echoes poisoned")
                .remove(&tag)
        {
            let _ = writer.send(());
        }
    }

    /// Subscribed (again): whatever happened while not, start afresh.
    fn start_afresh(&self, live: bool) {
        let mut copies = self.copies.lock().expect("session cache poisoned");
        self.heard.fetch_add(1, Ordering::AcqRel);
        copies.clear();
        self.live.store(live, Ordering::Release);
        if !live {
            // Writers waiting for an echo that will not come go on at once.
            self.echoes.lock().expect("session echoes poisoned").clear();
        }
    }
}

/// Subscribe, then apply every announcement; on any failure (the
/// subscription's Redis silent included) stop serving copies and start again.
async fn follow(client: redis::Client, cache: Arc<SessionCache>, metrics: Arc<Metrics>) {
    loop {
        match subscribed(&client, CHANNEL).await {
            Ok(pubsub) => {
                cache.start_afresh(true);
                metrics.subscription_up(CHANNEL, true);
                let end = listen(pubsub, |message| {
                    cache.hear(&message.get_payload::<String>().unwrap_or_default());
                    std::future::ready(true)
                })
                .await;
                subscription_ended(&metrics, CHANNEL, end);
            }
            Err(err) => tracing::debug!(error = %err, "session subscription failed"),
        }
        cache.start_afresh(false);
        metrics.subscription_up(CHANNEL, false);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::minutes(5),
        }
    }

    fn live_cache() -> SessionCache {
        let cache = SessionCache::default();
        cache.start_afresh(true);
        cache
    }

    #[test]
    fn nothing_is_kept_or_served_while_not_subscribed() {
        let cache = SessionCache::default();
        let session = record();
        cache.keep(cache.ticket(), &session);
        assert!(cache.get(&session.id).is_none());
    }

    #[test]
    fn a_copy_is_served_until_its_change_is_heard() {
        let cache = live_cache();
        let session = record();
        cache.keep(cache.ticket(), &session);
        assert_eq!(cache.get(&session.id).map(|r| r.id), Some(session.id));
        cache.hear(&format!("{} 1", session.id));
        assert!(cache.get(&session.id).is_none());
    }

    #[test]
    fn a_read_that_overlapped_a_change_is_not_kept() {
        let cache = live_cache();
        let session = record();
        let ticket = cache.ticket();
        cache.hear(&format!("{} 1", Id::default()));
        cache.keep(ticket, &session);
        assert!(cache.get(&session.id).is_none());
    }

    #[test]
    fn losing_the_subscription_drops_every_copy() {
        let cache = live_cache();
        let session = record();
        cache.keep(cache.ticket(), &session);
        cache.start_afresh(false);
        cache.start_afresh(true);
        assert!(cache.get(&session.id).is_none());
    }

    #[test]
    fn expired_sessions_are_not_served() {
        let cache = live_cache();
        let mut session = record();
        session.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        cache.keep(cache.ticket(), &session);
        assert!(cache.get(&session.id).is_none());
    }

    #[tokio::test]
    async fn a_writer_hears_its_own_announcement() {
        let cache = live_cache();
        let announcement = cache.announcement(&Id::default(), true);
        let message = announcement.message.clone();
        let waiting = tokio::spawn(async move {
            let started = Instant::now();
            announcement.heard().await;
            started.elapsed()
        });
        tokio::task::yield_now().await;
        cache.hear(&message);
        assert!(
            waiting.await.unwrap() < ECHO_WAIT,
            "woken by the echo, not the timeout"
        );
    }
}
