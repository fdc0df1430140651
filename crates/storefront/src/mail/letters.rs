//! The mails themselves, rendered in the current request's language: plain
//! text and HTML from one set of translated lines (templates/mail/).

use askama::Template;

use crate::i18n::{self, Lang, t, t_args};

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

/// The lines of a mail whose point is one link (a password reset, an
/// address to confirm), already translated.
struct LinkLines {
    lang: &'static str,
    greeting: String,
    intro: String,
    action: String,
    link: String,
    expiry: String,
    not_you: String,
}

#[derive(Template)]
#[template(path = "mail/link.txt")]
struct LinkText<'a> {
    lines: &'a LinkLines,
}

#[derive(Template)]
#[template(path = "mail/link.html")]
struct LinkHtml<'a> {
    lines: &'a LinkLines,
}

impl LinkLines {
    fn into_letter(self, recipient: &str, kind: &'static str, subject: String) -> Letter {
        Letter {
            recipient: recipient.to_string(),
            kind,
            subject,
            text: LinkText { lines: &self }
                .render()
                .expect("a link mail's text renders"),
            html: LinkHtml { lines: &self }
                .render()
                .expect("a link mail's HTML renders"),
        }
    }
}

/// The mail with a password-reset `link`, valid for `minutes`.
pub fn password_reset(recipient: &str, name: &str, link: &str, minutes: u64) -> Letter {
    let lines = LinkLines {
        lang: i18n::current().code(),
        greeting: t_args("mail-greeting", &[("name", name.into())]),
        intro: t("mail-reset-intro"),
        action: t("mail-reset-action"),
        link: link.to_string(),
        expiry: t_args("mail-reset-expiry", &[("minutes", minutes.into())]),
        not_you: t("mail-reset-not-you"),
    };
    lines.into_letter(recipient, "password_reset", t("mail-reset-subject"))
}

/// The mail with the `link` that confirms an account's address, valid for `hours`.
pub fn confirm_address(recipient: &str, name: &str, link: &str, hours: u64) -> Letter {
    let lines = LinkLines {
        lang: i18n::current().code(),
        greeting: t_args("mail-greeting", &[("name", name.into())]),
        intro: t("mail-confirm-intro"),
        action: t("mail-confirm-action"),
        link: link.to_string(),
        expiry: t_args("mail-confirm-expiry", &[("hours", hours.into())]),
        not_you: t("mail-confirm-not-you"),
    };
    lines.into_letter(recipient, "confirm_address", t("mail-confirm-subject"))
}

/// Someone a mail about an order goes to, and the language they use.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub lang: Lang,
}

/// One line of a paid order, with who sold it (`None`: an account that
/// gets no mail, such as the demo catalog's).
#[derive(Debug, Clone)]
pub struct PaidLine {
    pub title: String,
    pub unit_cents: i64,
    pub quantity: i64,
    pub seller: Option<Person>,
}

/// What the receipt and the sale notices of one paid order say.
#[derive(Debug, Clone)]
pub struct PaidOrder {
    pub id: i64,
    pub paid_at: i64,
    pub buyer: Person,
    pub lines: Vec<PaidLine>,
    pub provider: String,
    pub delivery_cents: i64,
    /// Where the order's page is: `{origin}/orders/{id}`.
    pub origin: String,
}

/// An order mail's lines, already translated and priced; both kinds share
/// one text and one HTML template.
struct OrderLines {
    lang: &'static str,
    greeting: String,
    intro: String,
    /// "2 × Title: $20.00".
    items: Vec<String>,
    /// "Delivery (DHL): $50.00", "Total: $70.00".
    summary: Vec<String>,
    action: String,
    link: String,
    closing: String,
}

#[derive(Template)]
#[template(path = "mail/order.txt")]
struct OrderText<'a> {
    lines: &'a OrderLines,
}

#[derive(Template)]
#[template(path = "mail/order.html")]
struct OrderHtml<'a> {
    lines: &'a OrderLines,
}

fn order_letter(recipient: &str, kind: &'static str, subject: String, lines: OrderLines) -> Letter {
    Letter {
        recipient: recipient.to_string(),
        kind,
        subject,
        text: OrderText { lines: &lines }
            .render()
            .expect("an order mail's text renders"),
        html: OrderHtml { lines: &lines }
            .render()
            .expect("an order mail's HTML renders"),
    }
}

fn item_line(lang: Lang, line: &PaidLine) -> String {
    lang.t_args(
        "mail-order-item",
        &[
            ("quantity", line.quantity.into()),
            ("title", line.title.as_str().into()),
            (
                "amount",
                lang.money(line.unit_cents * line.quantity)
                    .to_string()
                    .into(),
            ),
        ],
    )
}

/// The buyer's receipt, in the buyer's language: items, delivery, total.
pub fn receipt(order: &PaidOrder) -> Letter {
    let lang = order.buyer.lang;
    let items_cents: i64 = order.lines.iter().map(|l| l.unit_cents * l.quantity).sum();
    let money = |cents: i64| lang.money(cents).to_string();
    let number = ("number", order.id.into());
    let lines = OrderLines {
        lang: lang.code(),
        greeting: lang.t_args(
            "mail-greeting",
            &[("name", order.buyer.name.as_str().into())],
        ),
        intro: lang.t_args(
            "mail-receipt-intro",
            &[number.clone(), ("date", lang.date(order.paid_at).into())],
        ),
        items: order
            .lines
            .iter()
            .map(|line| item_line(lang, line))
            .collect(),
        summary: vec![
            lang.t_args("mail-order-books", &[("amount", money(items_cents).into())]),
            lang.t_args(
                "mail-order-delivery",
                &[
                    ("provider", order.provider.as_str().into()),
                    ("amount", money(order.delivery_cents).into()),
                ],
            ),
            lang.t_args(
                "mail-order-total",
                &[("amount", money(items_cents + order.delivery_cents).into())],
            ),
        ],
        action: lang.t("mail-receipt-action").into_owned(),
        link: format!("{}/orders/{}", order.origin, order.id),
        closing: lang.t("mail-receipt-closing").into_owned(),
    };
    let subject = lang.t_args("mail-receipt-subject", &[number]);
    order_letter(&order.buyer.email, "receipt", subject, lines)
}

/// One notice per seller of the order, in that seller's language: what sold,
/// to whom, and how it goes.
pub fn sale_notices(order: &PaidOrder) -> Vec<Letter> {
    let mut sellers: Vec<&Person> = order
        .lines
        .iter()
        .filter_map(|l| l.seller.as_ref())
        .collect();
    sellers.sort_by_key(|seller| seller.id);
    sellers.dedup_by_key(|seller| seller.id);
    sellers
        .into_iter()
        .map(|seller| sale_notice(order, seller))
        .collect()
}

fn sale_notice(order: &PaidOrder, seller: &Person) -> Letter {
    let lang = seller.lang;
    let sold: Vec<&PaidLine> = order
        .lines
        .iter()
        .filter(|line| line.seller.as_ref().is_some_and(|s| s.id == seller.id))
        .collect();
    let earned: i64 = sold.iter().map(|l| l.unit_cents * l.quantity).sum();
    let number = ("number", order.id.into());
    let lines = OrderLines {
        lang: lang.code(),
        greeting: lang.t_args("mail-greeting", &[("name", seller.name.as_str().into())]),
        intro: lang.t_args(
            "mail-sale-intro",
            &[number.clone(), ("buyer", order.buyer.name.as_str().into())],
        ),
        items: sold.iter().map(|line| item_line(lang, line)).collect(),
        summary: vec![
            lang.t_args(
                "mail-sale-earned",
                &[("amount", lang.money(earned).to_string().into())],
            ),
            lang.t_args(
                "mail-sale-delivery",
                &[("provider", order.provider.as_str().into())],
            ),
        ],
        action: lang.t("mail-sale-action").into_owned(),
        link: format!("{}/book/my_books", order.origin),
        closing: lang.t("mail-sale-closing").into_owned(),
    };
    let subject = lang.t_args("mail-sale-subject", &[number]);
    order_letter(&seller.email, "sale_notice", subject, lines)
}
