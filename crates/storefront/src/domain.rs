//! Typed values parsed at the edge: once a form field becomes one of these,
//! nothing below the handlers sees a raw string. A refusal is a message id
//! from the catalogues (`locales/`), put into words in the shopper's language
//! by the page that shows it.

use std::fmt;

use crate::i18n::Message;

/// Money in integer cents; never a float, never negative. The only ways in
/// are [`Cents::parse_price`] (a form) and `TryFrom<i64>` (a stored amount).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(i64);

/// An amount below zero: no price, subtotal or payment in the shop is one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a negative amount of money: {0} cents")]
pub struct NegativeAmount(i64);

impl TryFrom<i64> for Cents {
    type Error = NegativeAmount;

    fn try_from(cents: i64) -> Result<Self, Self::Error> {
        if cents < 0 {
            return Err(NegativeAmount(cents));
        }
        Ok(Cents(cents))
    }
}

/// The dearest book a seller may list: $100,000.00.
const MAX_PRICE_CENTS: i64 = 10_000_000;

impl Cents {
    /// Parses a shop price such as `12`, `12.5` or `12.50`.
    pub fn parse_price(raw: &str) -> Result<Cents, &'static str> {
        let raw = raw.trim().trim_start_matches('$');
        if raw.is_empty() {
            return Err("invalid-price-empty");
        }
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
            return Err("invalid-price-shape");
        }
        if fraction.len() > 2 {
            return Err("invalid-price-decimals");
        }
        if whole.len() > 7 {
            return Err("invalid-price-high");
        }
        let whole: i64 = whole.parse().map_err(|_| "invalid-price-shape")?;
        let fraction: i64 = format!("{fraction:0<2}").parse().unwrap_or(0);
        let cents = whole * 100 + fraction;
        match cents {
            0 => Err("invalid-price-zero"),
            c if c > MAX_PRICE_CENTS => Err("invalid-price-max"),
            c => Ok(Cents(c)),
        }
    }

    pub const ZERO: Cents = Cents(0);

    /// The amount as stored and bound into SQL.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The price of `copies` copies.
    pub fn times(self, copies: Quantity) -> Cents {
        Cents(self.0 * copies.0)
    }

    /// `12.50`: the value a form field is pre-filled with.
    pub fn plain(&self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.plain())
    }
}

impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, other: Cents) -> Cents {
        Cents(self.0 + other.0)
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(amounts: I) -> Cents {
        amounts.fold(Cents::ZERO, |total, amount| total + amount)
    }
}

/// How many copies of one book a shopper takes at once: 1 to
/// [`MAX_QUANTITY`]. The only ways in are [`Quantity::parse`] (a form) and
/// `TryFrom<i64>` (a stored cart or order line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quantity(i64);

pub const MAX_QUANTITY: i64 = 100;

impl Quantity {
    pub fn parse(raw: &str) -> Result<Quantity, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("invalid-quantity-empty");
        }
        let n: i64 = raw.parse().map_err(|_| "invalid-quantity-whole")?;
        Quantity::try_from(n)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// The refusal is a message id, as [`Quantity::parse`]'s.
impl TryFrom<i64> for Quantity {
    type Error = &'static str;

    fn try_from(n: i64) -> Result<Self, Self::Error> {
        match n {
            n if n < 1 => Err("invalid-quantity-low"),
            n if n > MAX_QUANTITY => Err("invalid-quantity-high"),
            n => Ok(Quantity(n)),
        }
    }
}

impl From<Quantity> for i64 {
    fn from(quantity: Quantity) -> i64 {
        quantity.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Copies a seller has on hand.
pub fn parse_stock(raw: &str) -> Result<i64, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("invalid-stock-empty");
    }
    let n: i64 = raw.parse().map_err(|_| "invalid-stock-whole")?;
    match n {
        n if n < 0 => Err("invalid-stock-negative"),
        n if n > 100_000 => Err("invalid-stock-high"),
        n => Ok(n),
    }
}

/// A trimmed, lower-cased e-mail address of a plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("invalid-email-empty");
        }
        if email.len() > 254 {
            return Err("invalid-email-too-long");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("invalid-email-shape");
        };
        let well_formed = !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err("invalid-email-shape");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Trimmed text of bounded length, measured in characters; `required` is
/// the message for an empty field (empty: the field may be left empty).
pub fn bounded_text(
    raw: &str,
    max_chars: usize,
    required: &'static str,
) -> Result<String, Message> {
    // Zero-width characters at the ends are trimmed like spaces: "Dune\u{200B}"
    // shows as "Dune" and should be stored (and found) as "Dune".
    let text = raw.trim_matches(is_invisible);
    if text.chars().any(is_hidden_control) {
        return Err("invalid-text-control".into());
    }
    if text.is_empty() && !required.is_empty() {
        return Err(required.into());
    }
    if text.chars().count() > max_chars {
        return Err(Message::with_number(
            "invalid-text-too-long",
            "max",
            max_chars as i64,
        ));
    }
    Ok(text.to_string())
}

/// Characters nobody types into a name, title or description: control
/// characters other than line breaks and tabs (a NUL, an escape), and the
/// bidirectional overrides that make text display in another order than it
/// is stored (a title that reads differently from what the search finds).
fn is_hidden_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whitespace and the zero-width characters: a field of only these shows as
/// blank, so it counts as empty (they are trimmed from both ends).
fn is_invisible(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

pub fn parse_password(raw: &str) -> Result<String, &'static str> {
    if raw.chars().all(char::is_whitespace) {
        return Err("invalid-password-empty");
    }
    match raw.chars().count() {
        n if n < 8 => Err("invalid-password-short"),
        n if n > 128 => Err("invalid-password-long"),
        _ => Ok(raw.to_string()),
    }
}

/// The original's three payment methods; their labels are also the form values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    CreditCard,
    Paypal,
    BankTransfer,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 3] = [Self::CreditCard, Self::Paypal, Self::BankTransfer];

    /// The stored name, which is also the form's value (never shown: the
    /// shopper reads [`PaymentMethod::message_id`] in their language).
    pub fn as_db(&self) -> &'static str {
        match self {
            Self::CreditCard => "Credit Card",
            Self::Paypal => "Paypal",
            Self::BankTransfer => "Bank Transfer",
        }
    }

    /// What the shopper reads.
    pub fn message_id(&self) -> &'static str {
        match self {
            Self::CreditCard => "method-credit-card",
            Self::Paypal => "method-paypal",
            Self::BankTransfer => "method-bank-transfer",
        }
    }

    pub fn parse(raw: &str) -> Option<PaymentMethod> {
        Self::ALL.into_iter().find(|m| m.as_db() == raw.trim())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub fn as_db(&self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    const ALL: [OrderStatus; 4] = [
        Self::PendingPayment,
        Self::Paid,
        Self::Cancelled,
        Self::Expired,
    ];

    /// The catalogue's name for the status, as shoppers read it.
    pub fn message_id(&self) -> &'static str {
        match self {
            Self::PendingPayment => "status-pending-payment",
            Self::Paid => "status-paid",
            Self::Cancelled => "status-cancelled",
            Self::Expired => "status-expired",
        }
    }
}

/// A stored status the code does not know: a row written by a newer version
/// or by hand. Reading it fails, rather than showing it as something it is not.
#[derive(Debug, thiserror::Error)]
#[error("unknown order status `{0}` in the database")]
pub struct UnknownOrderStatus(String);

/// How rows decode the `status` column (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for OrderStatus {
    type Error = UnknownOrderStatus;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_db() == raw)
            .ok_or(UnknownOrderStatus(raw))
    }
}

/// The stored name, which is also the badge's CSS class in templates.
impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_db())
    }
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_to_exact_cents() {
        assert_eq!(Cents::parse_price("12"), Ok(Cents(1200)));
        assert_eq!(Cents::parse_price("12.5"), Ok(Cents(1250)));
        assert_eq!(Cents::parse_price(" 0.09 "), Ok(Cents(9)));
        assert_eq!(Cents::parse_price("$3.99"), Ok(Cents(399)));
        for bad in [
            "", "abc", "-1", "0", "0.00", "1.234", "1e3", "99999999", "1.2.3", ".5",
        ] {
            assert!(
                Cents::parse_price(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(Cents(1250).to_string(), "$12.50");
    }

    #[test]
    fn stored_amounts_and_quantities_are_checked_on_the_way_in() {
        assert_eq!(Cents::try_from(0), Ok(Cents::ZERO));
        assert_eq!(Cents::try_from(-1), Err(NegativeAmount(-1)));
        assert_eq!(
            Quantity::try_from(MAX_QUANTITY).map(Quantity::get),
            Ok(MAX_QUANTITY)
        );
        assert!(Quantity::try_from(0).is_err());
        assert!(Quantity::try_from(MAX_QUANTITY + 1).is_err());
        // A cart line read back from the session store is checked the same way.
        assert!(serde_json::from_str::<Quantity>("3").is_ok());
        assert!(serde_json::from_str::<Quantity>("-3").is_err());
        let three = Quantity::try_from(3).unwrap();
        assert_eq!(Cents(250).times(three), Cents(750));
        assert_eq!([Cents(1), Cents(2)].into_iter().sum::<Cents>(), Cents(3));
    }

    #[test]
    fn stored_statuses_round_trip_and_unknown_ones_are_refused() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::try_from(status.to_string()).unwrap(), status);
        }
        for unknown in ["", "Paid", "refunded", "pending"] {
            assert!(
                OrderStatus::try_from(unknown.to_string()).is_err(),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn quantities_are_bounded() {
        assert_eq!(Quantity::parse("3"), Ok(Quantity(3)));
        for bad in ["", "0", "-2", "x", "1.5", "101", "99999999999999999999"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn text_fields_refuse_hidden_characters() {
        let message = |raw: &str| bounded_text(raw, 20, "required").unwrap_err();
        assert_eq!(bounded_text("  Dune \n", 20, "required").unwrap(), "Dune");
        assert_eq!(bounded_text("a\r\nb\tc", 20, "").unwrap(), "a\r\nb\tc");
        for hidden in [
            "Du\0ne",
            "\u{1b}[31mDune",
            "Dune\u{202E}txt.exe",
            "\u{2066}x",
        ] {
            assert_eq!(message(hidden), "invalid-text-control".into(), "{hidden:?}");
        }
        assert_eq!(message("\u{200B}\u{FEFF} "), "required".into());
        assert_eq!(bounded_text("\u{200B}", 20, "").unwrap(), "");
        assert_eq!(
            bounded_text("\u{FEFF}Dune\u{200B}", 20, "").unwrap(),
            "Dune"
        );
        assert_eq!(bounded_text("a\u{200D}b", 20, "").unwrap(), "a\u{200D}b");
        assert_eq!(bounded_text("سلام", 20, "required").unwrap(), "سلام");
    }

    #[test]
    fn passwords_are_not_blank() {
        assert_eq!(parse_password(""), Err("invalid-password-empty"));
        assert_eq!(parse_password("        "), Err("invalid-password-empty"));
        assert_eq!(parse_password("short"), Err("invalid-password-short"));
        assert_eq!(
            parse_password(" correct horse ").as_deref(),
            Ok(" correct horse ")
        );
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "ana@localhost",
            "a b@x.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn payment_methods_match_the_original_form_values() {
        assert_eq!(PaymentMethod::parse("Paypal"), Some(PaymentMethod::Paypal));
        assert_eq!(PaymentMethod::parse("Cash"), None);
    }
}
