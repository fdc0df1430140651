//! How a mail leaves the shop: over SMTP (lettre), or, with no SMTP_URL, into
//! this process's log, so `cargo run` needs no mail server.

use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::outbox::Outgoing;
use crate::app::config::MailSettings;

/// Longer than a healthy server takes. A delivery's timeout is also at most
/// half a sender's lease, so it is over (done or failed) before another
/// sender may take its row.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

fn smtp_timeout(settings: &MailSettings) -> Duration {
    SMTP_TIMEOUT.min(settings.lease / 2)
}

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Log,
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
        let Some(url) = &settings.smtp_url else {
            return Ok(Transport::Log);
        };
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
        Ok(Transport::Smtp(builder.build()))
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
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|err| match err
                .is_permanent()
            {
                true => SendError::Permanent(err.to_string()),
                false => SendError::Transient(err.to_string()),
            }),
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
