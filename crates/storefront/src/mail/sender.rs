//! The sender: a duty every replica runs (unless MAIL_SENDER=false). It takes
//! due rows from the outbox by lease, delivers them and marks them; a failed
//! delivery is retried with a doubling delay, and given up (dead) after
//! MAIL_MAX_ATTEMPTS tries or at once when the server refuses it for good.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use tokio::sync::Notify;

use super::outbox::{self, Next, Outgoing};
use super::transport::{SendError, Transport};
use crate::app::config::MailSettings;
use crate::db::{Db, bounded};
use crate::metrics::Metrics;
use crate::store::link_tokens;

/// Rows one pass takes; the rest wait for the next pass (or another replica).
const BATCH: i64 = 20;
/// The longest wait between two tries of one mail.
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// How often the outbox's counts are refreshed for the metrics.
const COUNT_EVERY: Duration = Duration::from_secs(15);
/// How often old delivered mail and expired links are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

pub struct Sender {
    pub db: Db,
    pub transport: Transport,
    pub from: Mailbox,
    /// This replica's name in `lease_owner`, unique per process.
    pub owner: String,
    pub settings: MailSettings,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    /// MAIL_LEASE_SECS: longer than a delivery may take (the transport's
    /// timeout is at most half of it), so a row is only taken from a sender
    /// that has stopped trying.
    pub lease: Duration,
}

impl Sender {
    /// Passes until the task is aborted: right away when woken (a mail was
    /// just written on this replica), else every MAIL_POLL_MS.
    pub async fn run_forever(self) {
        let mut counted_at: Option<tokio::time::Instant> = None;
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            // Counted first, so the figures exist from the replica's first moments.
            if counted_at.is_none_or(|at| at.elapsed() >= COUNT_EVERY) {
                self.count().await;
                counted_at = Some(tokio::time::Instant::now());
            }
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                self.prune().await;
                pruned_at = Some(tokio::time::Instant::now());
            }
            let delivered = match self.pass().await {
                Ok(n) => n,
                Err(err) => {
                    tracing::error!(error = %err, "mail: could not read the outbox; trying again at the next pass");
                    0
                }
            };
            if delivered < BATCH as usize {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll) => {}
                }
            }
        }
    }

    /// Takes and delivers one batch; returns how many rows it took.
    pub async fn pass(&self) -> sqlx::Result<usize> {
        let taken = bounded(outbox::claim(
            &self.db.pool(),
            &self.owner,
            self.lease,
            BATCH,
        ))
        .await?;
        for mail in &taken {
            // A batch's later mail starts long after the claim: each delivery
            // starts with a full lease, and is bounded to half of it.
            if !bounded(outbox::renew(
                &self.db.pool(),
                mail.id,
                &self.owner,
                self.lease,
            ))
            .await?
            {
                tracing::warn!(message_id = %mail.message_id,
                    "mail: this sender's lease ran out before the delivery started; left to the sender that holds it");
                continue;
            }
            self.deliver(mail).await?;
        }
        Ok(taken.len())
    }

    async fn deliver(&self, mail: &Outgoing) -> sqlx::Result<()> {
        match self.transport.send(&self.from, mail).await {
            Ok(()) => {
                if bounded(outbox::mark_sent(&self.db.pool(), mail.id, &self.owner)).await? {
                    self.metrics.mail("sent");
                    tracing::info!(kind = %mail.kind, message_id = %mail.message_id, "mail: sent");
                } else {
                    tracing::error!(message_id = %mail.message_id,
                        "mail: sent after this sender's lease ran out; another sender may send it again (same Message-ID)");
                }
            }
            Err(err) => {
                let next = self.after_failure(mail, &err);
                let reason = err.to_string();
                bounded(outbox::mark_failed(
                    &self.db.pool(),
                    mail.id,
                    &self.owner,
                    next,
                    &reason,
                ))
                .await?;
                match next {
                    Next::Dead => {
                        self.metrics.mail("dead");
                        tracing::error!(kind = %mail.kind, message_id = %mail.message_id, error = %err,
                            "mail: given up (dead); an operator can requeue it (docs/operations.md)");
                    }
                    Next::RetryAt(_) => {
                        self.metrics.mail("retry");
                        tracing::warn!(kind = %mail.kind, message_id = %mail.message_id, error = %err,
                            attempt = mail.attempts + 1, "mail: not delivered; tried again later");
                    }
                }
            }
        }
        Ok(())
    }

    fn after_failure(&self, mail: &Outgoing, err: &SendError) -> Next {
        let tries = mail.attempts as u32 + 1;
        if matches!(err, SendError::Permanent(_)) || tries >= self.settings.max_attempts {
            return Next::Dead;
        }
        let delay = backoff(self.settings.retry_base, tries);
        Next::RetryAt(outbox::now_ms() + delay.as_millis() as i64)
    }

    /// Every replica prunes (the deletes are idempotent); a failure waits for the next hour.
    pub async fn prune(&self) {
        let mail = bounded(outbox::prune_sent(&self.db.pool(), self.settings.keep_sent)).await;
        let links = bounded(link_tokens::prune_expired(&self.db.pool())).await;
        match (mail, links) {
            (Ok(mail), Ok(links)) if mail + links > 0 => {
                tracing::info!(mail, links, "mail: pruned delivered mail and expired links");
            }
            (Ok(_), Ok(_)) => {}
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(error = %err, "mail: could not prune the outbox or old links");
            }
        }
    }

    async fn count(&self) {
        match bounded(outbox::counts(&self.db.pool())).await {
            Ok((pending, dead)) => self.metrics.outbox(pending, dead),
            Err(err) => tracing::warn!(error = %err, "mail: could not count the outbox"),
        }
    }
}

/// The delay after the `tries`-th failure: base, 2×base, 4×base… up to an hour.
pub fn backoff(base: Duration, tries: u32) -> Duration {
    let factor = 1u32 << (tries.saturating_sub(1)).min(16);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_an_hour() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 1), Duration::from_secs(5));
        assert_eq!(backoff(base, 2), Duration::from_secs(10));
        assert_eq!(backoff(base, 4), Duration::from_secs(40));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }
}
