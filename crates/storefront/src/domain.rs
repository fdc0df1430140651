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
    /// Parses a shop price as either language writes it: `12`, `12.5`,
    /// `12.50`, `12,50`, `$1,234.50` or `1.234,50 US$`. The last separator
    /// followed by one or two digits is the decimal one; any other groups
    /// thousands (three digits each, one kind of separator). What reads two
    /// ways (`1.234`: a thousand in Spanish, three decimals in English) is
    /// refused.
    pub fn parse_price(raw: &str) -> Result<Cents, &'static str> {
        let raw = raw.trim();
        let raw = raw.strip_suffix("US$").unwrap_or(raw).trim();
        let raw = raw.strip_prefix('$').unwrap_or(raw).trim();
        if raw.is_empty() {
            return Err("invalid-price-empty");
        }
        let (whole, fraction) = split_decimals(raw)?;
        if whole.len() > 7 {
            return Err("invalid-price-max");
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

/// A price's whole part (its digits only) and decimals (`Cents::parse_price`).
fn split_decimals(raw: &str) -> Result<(String, &str), &'static str> {
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, decimal_mark, fraction) = match raw.rfind([',', '.']) {
        Some(at) if raw.len() - at - 1 <= 2 => (&raw[..at], Some(&raw[at..=at]), &raw[at + 1..]),
        Some(at) if raw.len() - at - 1 > 3 || raw[..at].contains(['.', ',']) => {
            // `12.3456`, or a last group that is not one of thousands.
            if raw.len() - at - 1 > 3 {
                return Err("invalid-price-decimals");
            }
            (raw, None, "")
        }
        Some(at) if &raw[at..=at] == "." => return Err("invalid-price-decimals"),
        _ => (raw, None, ""),
    };
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid-price-shape");
    }
    let separators: Vec<char> = whole.chars().filter(|c| matches!(c, ',' | '.')).collect();
    let groups: Vec<&str> = whole.split([',', '.']).collect();
    let one_kind = separators.windows(2).all(|pair| pair[0] == pair[1]);
    let apart_from_the_mark = decimal_mark.is_none_or(|mark| !whole.contains(mark));
    let thousands = groups.len() == 1
        || (one_kind
            && apart_from_the_mark
            && (1..=3).contains(&groups[0].len())
            && groups[1..].iter().all(|g| g.len() == 3));
    if !thousands || !groups.iter().all(|g| digits_only(g)) {
        return Err("invalid-price-shape");
    }
    Ok((groups.concat(), fraction))
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
/// Tag characters (U+E0000 to U+E007F) hide text inside text too.
fn is_hidden_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{E0000}'..='\u{E007F}')
}

/// Whitespace and the characters that show nothing (zero-width spaces and
/// joiners, direction marks, the word joiner and its kin, the byte-order
/// mark, tags): a field of only these shows as blank, so it counts as empty
/// (they are trimmed from both ends).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// [`bounded_text`] on one line: a name, a title or an author, which pages
/// show on one line (a line break or a tab in one is a paste gone wrong).
pub fn one_line_text(
    raw: &str,
    max_chars: usize,
    required: &'static str,
) -> Result<String, Message> {
    let text = bounded_text(raw, max_chars, required)?;
    if text.contains(['\n', '\r', '\t']) {
        return Err("invalid-text-one-line".into());
    }
    Ok(text)
}

/// The name of the shop's own seller (the demo catalog's), which nobody
/// else may take: "Sold by" is where a shopper reads who sells a book.
pub const HOUSE_SELLER_NAME: &str = "Bookstore Classics";

/// A shopper's or seller's name: one line, and not one that reads as the
/// shop's own ([`HOUSE_SELLER_NAME`], or the shop's name) however it is
/// cased, spaced or spelt with look-alike letters.
pub fn person_name(raw: &str) -> Result<String, Message> {
    let name = one_line_text(raw, 100, "invalid-name-empty")?;
    let reserved = [HOUSE_SELLER_NAME, "Bookstore"].map(look_alike_skeleton);
    if reserved.contains(&look_alike_skeleton(&name)) {
        return Err("invalid-name-reserved".into());
    }
    Ok(name)
}

/// What a name looks like, for comparing names that should not pass for one
/// another: lower case, no spacing, punctuation or invisible characters,
/// full-width forms as ASCII, and the Cyrillic and Greek letters (and digits)
/// that look like Latin ones folded into them (`I`, `l`, `1` and `|` alike).
fn look_alike_skeleton(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .map(|c| match c {
            'а' | 'α' => 'a',
            'в' | 'β' => 'b',
            'с' | 'ϲ' => 'c',
            'ԁ' => 'd',
            'е' | 'ε' | 'ё' => 'e',
            'ɡ' => 'g',
            'н' | 'һ' => 'h',
            'і' | 'ı' | 'ι' | 'ӏ' | 'l' | '1' | 'ℓ' | 'i' => 'l',
            'ј' => 'j',
            'к' | 'κ' => 'k',
            'м' => 'm',
            'п' => 'n',
            'о' | 'ο' | '0' | 'σ' => 'o',
            'р' | 'ρ' => 'p',
            'ѕ' | '5' => 's',
            'т' | 'τ' => 't',
            'υ' | 'ս' => 'u',
            'ν' => 'v',
            'х' | 'χ' => 'x',
            'у' | 'γ' => 'y',
            c => c,
        })
        .collect()
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
    /// Unpaid, its copies taken from the shelf until it is paid or expires.
    PendingPayment,
    /// Unpaid, its copies still on the shelf: a new buyer's order beyond
    /// what new buyers together may hold (`store::orders::NewBuyerShare`).
    /// Payment takes the copies, if they are still there.
    Unreserved,
    Paid,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub fn as_db(&self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Unreserved => "unreserved",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    const ALL: [OrderStatus; 5] = [
        Self::PendingPayment,
        Self::Unreserved,
        Self::Paid,
        Self::Cancelled,
        Self::Expired,
    ];

    /// The catalogue's name for the status, as shoppers read it.
    pub fn message_id(&self) -> &'static str {
        match self {
            Self::PendingPayment => "status-pending-payment",
            Self::Unreserved => "status-unreserved",
            Self::Paid => "status-paid",
            Self::Cancelled => "status-cancelled",
            Self::Expired => "status-expired",
        }
    }

    /// Waiting for payment, whether or not its copies are held.
    pub fn is_unpaid(&self) -> bool {
        matches!(self, Self::PendingPayment | Self::Unreserved)
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
    fn the_shops_own_names_are_reserved_however_they_are_spelt() {
        for taken in [
            "Bookstore Classics",
            "bookstore classics",
            " BOOKSTORE  CLASSICS ",
            "Bookstore-Classics",
            "B\u{043E}\u{043E}kstore Classics",
            "Bookstore C1assics",
            "Bookstore CIassics",
            "Ｂｏｏｋｓｔｏｒｅ Classics",
            "Book\u{200B}store Classics",
            "Bookstore",
        ] {
            assert_eq!(
                person_name(taken),
                Err("invalid-name-reserved".into()),
                "{taken:?}"
            );
        }
        for free in ["Bookstore Fan", "Classics Reader", "Ana", "Bob Bookstore"] {
            assert!(person_name(free).is_ok(), "{free:?}");
        }
        assert!(person_name("Ana\nMaría").is_err());
        assert_eq!(person_name("\u{200B}"), Err("invalid-name-empty".into()));
    }

    #[test]
    fn prices_parse_to_exact_cents() {
        assert_eq!(Cents::parse_price("12"), Ok(Cents(1200)));
        assert_eq!(Cents::parse_price("12.5"), Ok(Cents(1250)));
        assert_eq!(Cents::parse_price(" 0.09 "), Ok(Cents(9)));
        assert_eq!(Cents::parse_price("$3.99"), Ok(Cents(399)));
        // As Spanish writes it, and with thousands grouped either way.
        assert_eq!(Cents::parse_price("12,50"), Ok(Cents(1250)));
        assert_eq!(Cents::parse_price("12,5 US$"), Ok(Cents(1250)));
        assert_eq!(Cents::parse_price("1.234,50"), Ok(Cents(123_450)));
        assert_eq!(Cents::parse_price("$1,234.50"), Ok(Cents(123_450)));
        assert_eq!(Cents::parse_price("1,234"), Ok(Cents(123_400)));
        assert_eq!(Cents::parse_price("100.000,00"), Ok(Cents(10_000_000)));
        assert_eq!(Cents::parse_price("1.234"), Err("invalid-price-decimals"));
        assert_eq!(Cents::parse_price("99999999"), Err("invalid-price-max"));
        assert_eq!(Cents::parse_price("1000000"), Err("invalid-price-max"));
        for bad in [
            "",
            "abc",
            "-1",
            "0",
            "0.00",
            "1.234",
            "1e3",
            "99999999",
            "1.2.3",
            ".5",
            "1,23,4",
            "1.234.5,6",
            "1,234,56",
            "12,3456",
            "1.234,567",
            "1,234.567.8",
            "1.234.567,5.5",
            ",5",
            "12,,5",
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
        // A direction mark, a tag or a word joiner alone is no text either.
        for blank in [
            "\u{200E}",
            "\u{200F}\u{200B}",
            "\u{E0041}\u{E0042}",
            "\u{2060} ",
        ] {
            assert_eq!(
                bounded_text(blank, 20, "required"),
                Err("required".into()),
                "{blank:?}"
            );
        }
        assert!(
            bounded_text("An\u{E0041}a", 20, "").is_err(),
            "a tag inside"
        );
        assert_eq!(
            one_line_text("Ana\nMaría", 20, "").unwrap_err(),
            "invalid-text-one-line".into()
        );
        assert!(one_line_text("Ana\tMaría", 20, "").is_err());
        assert_eq!(one_line_text("  Ana María ", 20, "").unwrap(), "Ana María");
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
