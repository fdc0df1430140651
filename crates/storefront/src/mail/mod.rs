//! Mail to shoppers, sent exactly once by the fleet (docs/architecture.md,
//! "Mail"). A mail is rendered when its event happens (in the shopper's
//! language) and written to the outbox in that event's transaction
//! (`outbox::enqueue`); every replica's sender delivers due rows it has
//! leased (`sender`), over SMTP or into the log (`transport`).

pub mod letters;
pub mod outbox;
pub mod sender;
pub mod transport;

use std::sync::Arc;

use anyhow::Context;
use lettre::message::Mailbox;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::app::config::MailSettings;
use crate::metrics::Metrics;
pub use letters::Letter;

/// Refuses settings the sender could not work with, at start-up rather than
/// at the first mail.
pub fn check_settings(settings: &MailSettings) -> anyhow::Result<()> {
    sender_address(settings)?;
    transport::Transport::from_settings(settings)?;
    Ok(())
}

fn sender_address(settings: &MailSettings) -> anyhow::Result<Mailbox> {
    settings.from.parse().with_context(|| {
        format!(
            "MAIL_FROM `{}` is not an address (`Bookstore <no-reply@shop.example>`)",
            settings.from
        )
    })
}

/// This process's name in the outbox's `lease_owner` (at most 190
/// characters): its replica, cut to 150 (a Swarm task name can be long),
/// and a random id, unique to this process.
fn lease_owner(replica: &str) -> String {
    let replica: String = replica.chars().take(150).collect();
    format!("{replica}/{}", uuid::Uuid::new_v4().simple())
}

/// What handlers hold: where new mail's Message-IDs come from, and the bell
/// that wakes this replica's sender when a mail is written.
#[derive(Clone)]
pub struct Mailer {
    domain: String,
    /// What links in mail start with: PUBLIC_ORIGIN, never a request's Host
    /// header (which anyone can set, and would send a reset link elsewhere).
    link_origin: String,
    wake: Arc<Notify>,
}

impl Mailer {
    pub fn new(settings: &MailSettings, link_origin: String) -> anyhow::Result<Mailer> {
        Ok(Mailer {
            domain: transport::domain_of(&sender_address(settings)?),
            link_origin,
            wake: Arc::new(Notify::new()),
        })
    }

    pub fn link_origin(&self) -> &str {
        &self.link_origin
    }

    /// Writes `letter` in the caller's transaction (see `outbox::enqueue`).
    pub async fn enqueue(
        &self,
        conn: &mut sqlx::AnyConnection,
        letter: &Letter,
    ) -> sqlx::Result<()> {
        outbox::enqueue(conn, letter, &self.domain).await
    }

    /// After the transaction committed: this replica's sender looks now
    /// instead of at its next poll.
    pub fn wake_sender(&self) {
        self.wake.notify_one();
    }

    /// This replica's sender, running until aborted.
    pub fn start_sender(
        &self,
        db: crate::db::Db,
        settings: &MailSettings,
        replica: &str,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<JoinHandle<()>> {
        let transport = transport::Transport::from_settings(settings)?;
        tracing::info!(to = %transport.describe(settings), "mail: this replica sends the outbox's mail");
        let sender = sender::Sender {
            db,
            transport,
            from: sender_address(settings)?,
            owner: lease_owner(replica),
            settings: settings.clone(),
            metrics,
            wake: self.wake.clone(),
            lease: settings.lease,
        };
        Ok(tokio::spawn(sender.run_forever()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_owner_fits_its_column_whatever_the_replica_is_called() {
        let task = "bookstore-e2e_storefront.2.ogsxk6dgnlls6y0cjrvmz3b0q".repeat(10);
        let owner = lease_owner(&task);
        assert!(
            owner.chars().count() <= 190,
            "{} characters",
            owner.chars().count()
        );
        assert_ne!(
            lease_owner("local"),
            lease_owner("local"),
            "unique per process"
        );
    }

    #[test]
    fn a_message_id_fits_its_column_with_the_longest_domain() {
        // 251 characters, each label within DNS's 63.
        let domain = format!("{}.example", vec!["d".repeat(60); 4].join("."));
        let settings = MailSettings {
            from: format!("Bookstore <no-reply@{domain}>"),
            ..MailSettings::default()
        };
        let id = format!(
            "<{}@{}>",
            uuid::Uuid::new_v4(),
            Mailer::new(&settings, String::new()).unwrap().domain
        );
        assert!(id.len() <= 300, "{} characters", id.len());
    }
}
