//! The mails themselves, rendered in the current request's language: plain
//! text and HTML from one set of translated lines (templates/mail/).

use askama::Template;

use crate::i18n::{self, t, t_args};

/// A mail ready to be written to the outbox.
#[derive(Debug, Clone)]
pub struct Letter {
    pub recipient: String,
    /// What it is, for logs and the outbox (`password_reset`).
    pub kind: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The lines a password-reset mail says, already translated.
struct ResetLines {
    lang: &'static str,
    greeting: String,
    intro: String,
    action: String,
    link: String,
    expiry: String,
    not_you: String,
}

#[derive(Template)]
#[template(path = "mail/password_reset.txt")]
struct ResetText<'a> {
    lines: &'a ResetLines,
}

#[derive(Template)]
#[template(path = "mail/password_reset.html")]
struct ResetHtml<'a> {
    lines: &'a ResetLines,
}

/// The mail with a password-reset `link`, valid for `minutes`.
pub fn password_reset(recipient: &str, name: &str, link: &str, minutes: u64) -> Letter {
    let lines = ResetLines {
        lang: i18n::current().code(),
        greeting: t_args("mail-greeting", &[("name", name.into())]),
        intro: t("mail-reset-intro"),
        action: t("mail-reset-action"),
        link: link.to_string(),
        expiry: t_args("mail-reset-expiry", &[("minutes", minutes.into())]),
        not_you: t("mail-reset-not-you"),
    };
    Letter {
        recipient: recipient.to_string(),
        kind: "password_reset",
        subject: t("mail-reset-subject"),
        text: ResetText { lines: &lines }
            .render()
            .expect("the reset mail's text renders"),
        html: ResetHtml { lines: &lines }
            .render()
            .expect("the reset mail's HTML renders"),
    }
}
