//! How a mail leaves the shop: over SMTP (lettre), or, with no SMTP_URL, into
//! this process's log, so `cargo run` needs no mail server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::outbox::Outgoing;
use crate::app::config::MailSettings;

/// Longer than a healthy server takes for one delivery. It is also at most
/// half a sender's lease, which is renewed as each delivery starts, so a
/// delivery is over (done or failed) before another sender may take its row.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

fn smtp_timeout(settings: &MailSettings) -> Duration {
    SMTP_TIMEOUT.min(settings.lease / 2)
}

pub enum Transport {
    Smtp(Box<Smtp>),
    Log,
}

/// lettre's pooled SMTP client, and what it takes to make a fresh one.
/// lettre's own timeout bounds only the TCP connect, so each delivery is
/// bounded here; a delivery cut short leaves its pooled connection waiting
/// for a reply (lettre would hand it out again), so the pool is replaced.
pub struct Smtp {
    client: Mutex<Arc<AsyncSmtpTransport<Tokio1Executor>>>,
    settings: MailSettings,
    timeout: Duration,
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused the mail for good (a 5xx: no such mailbox), or the
    /// mail cannot be built (a malformed recipient).
    #[error("refused for good: {0}")]
    Permanent(String),
    /// Unreachable, timed out, or a 4xx: later may work.
    #[error("{0}")]
    Transient(String),
}

impl Transport {
    pub fn from_settings(settings: &MailSettings) -> anyhow::Result<Transport> {
        if settings.smtp_url.is_none() {
            return Ok(Transport::Log);
        }
        Ok(Transport::Smtp(Box::new(Smtp {
            client: Mutex::new(Arc::new(smtp_client(settings)?)),
            settings: settings.clone(),
            timeout: smtp_timeout(settings),
        })))
    }

    /// Where mail goes, for the start-up log line (never the password).
    pub fn describe(&self, settings: &MailSettings) -> String {
        match (self, &settings.smtp_url) {
            (Transport::Smtp(_), Some(url)) => without_password(url),
            // Right for `cargo run`; in production it would put reset links,
            // each a key to an account, in the logs.
            _ => "the log, not sent (SMTP_URL unset): reset links included".into(),
        }
    }

    pub async fn send(&self, from: &Mailbox, mail: &Outgoing) -> Result<(), SendError> {
        let message = build(from, mail)?;
        match self {
            Transport::Log => {
                tracing::info!(
                    to = %mail.recipient,
                    message_id = %mail.message_id,
                    subject = %mail.subject,
                    "mail (not sent: SMTP_URL unset)\n{}",
                    mail.body_text
                );
                Ok(())
            }
            Transport::Smtp(smtp) => smtp.send(message).await,
        }
    }
}

/// The pooled client `SMTP_URL` and `SMTP_PASSWORD` describe.
fn smtp_client(settings: &MailSettings) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let url = settings.smtp_url.as_deref().unwrap_or_default();
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .with_context(|| format!("SMTP_URL `{}` is not valid", without_password(url)))?
        .timeout(Some(smtp_timeout(settings)));
    if let Some(password) = &settings.smtp_password {
        let user = url::Url::parse(url)
            .map(|u| u.username().to_string())
            .unwrap_or_default();
        anyhow::ensure!(
            !user.is_empty(),
            "SMTP_PASSWORD is set but SMTP_URL names no user (smtp://user@host:587)"
        );
        builder = builder.credentials(Credentials::new(user, password.clone()));
    }
    Ok(builder.build())
}

impl Smtp {
    async fn send(&self, message: Message) -> Result<(), SendError> {
        let client = self.client.lock().expect("the SMTP client lock").clone();
        match tokio::time::timeout(self.timeout, client.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) if err.is_permanent() => Err(SendError::Permanent(err.to_string())),
            Ok(Err(err)) => Err(SendError::Transient(err.to_string())),
            Err(_) => {
                self.replace_client();
                Err(SendError::Transient(format!(
                    "the mail server did not finish within {} s",
                    self.timeout.as_secs_f32()
                )))
            }
        }
    }

    /// A fresh pool; the old one, with the connection cut short in it, is
    /// closed by lettre once nothing uses it.
    fn replace_client(&self) {
        match smtp_client(&self.settings) {
            Ok(fresh) => *self.client.lock().expect("the SMTP client lock") = Arc::new(fresh),
            Err(err) => tracing::error!(error = %err, "mail: could not make a new SMTP client"),
        }
    }
}

fn build(from: &Mailbox, mail: &Outgoing) -> Result<Message, SendError> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|err| SendError::Permanent(format!("recipient {:?}: {err}", mail.recipient)))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&mail.subject)
        .message_id(Some(mail.message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(
            mail.body_text.clone(),
            mail.body_html.clone(),
        ))
        .map_err(|err| SendError::Permanent(format!("cannot build the message: {err}")))
}

/// `smtp://user:secret@host` → `smtp://user:***@host`, for logs and errors.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparsable)".into(),
    }
}

/// `Bookstore <no-reply@shop.example>` → `shop.example`, for Message-IDs.
pub fn domain_of(from: &Mailbox) -> String {
    from.email.domain().to_string()
}
