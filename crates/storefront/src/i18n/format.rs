//! Prices and dates written the way each language writes them.

use std::borrow::Borrow;
use std::fmt::{self, Write as _};

use askama::filters::HtmlSafe;

use super::lang::Lang;

impl Lang {
    /// A price in the shop's currency (dollars), written the language's way:
    /// `$1,234.50` in English, `1234,50 US$` in Spanish (CLDR's patterns; Spanish
    /// groups thousands only from five digits on). Plain cents, so that
    /// this module needs nothing from `domain` (which needs its `Message`).
    pub fn money(&self, cents: i64) -> Money {
        Money { lang: *self, cents }
    }

    /// A moment (epoch seconds, shown in UTC): `2026-11-28 18:04 UTC` in
    /// English as before, `28/11/2026 18:04 UTC` in Spanish.
    pub fn date(&self, epoch: impl Borrow<i64>) -> String {
        let epoch = *epoch.borrow();
        let english = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
        let spanish = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute] UTC");
        let format = match self {
            Lang::En => english,
            Lang::Es => spanish,
        };
        time::OffsetDateTime::from_unix_timestamp(epoch)
            .ok()
            .and_then(|t| t.format(format).ok())
            .unwrap_or_default()
    }
}

/// A price in the shop's currency, written the language's way (`Lang::money`)
/// straight into the page: a catalog page writes a hundred.
#[derive(Debug, Clone, Copy)]
pub struct Money {
    lang: Lang,
    cents: i64,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.cents < 0 { "-" } else { "" };
        let abs = self.cents.unsigned_abs();
        let (whole, fraction) = (abs / 100, abs % 100);
        match self.lang {
            Lang::En => write!(f, "{sign}$")
                .and_then(|()| write_grouped(f, whole, ',', 4))
                .and_then(|()| write!(f, ".{fraction:02}")),
            Lang::Es => {
                write_grouped(f, whole, '.', 5).and_then(|()| write!(f, ",{fraction:02} US$"))
            }
        }
    }
}

/// A price is digits, separators and a currency sign: nothing to escape
/// (`prices_need_no_escaping` checks it), so askama writes it as it is.
impl HtmlSafe for Money {}

/// `whole` with a separator every three digits, once it has `from` digits.
fn write_grouped(
    f: &mut fmt::Formatter<'_>,
    whole: u64,
    separator: char,
    from: usize,
) -> fmt::Result {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(whole);
    if digits.len() < from {
        return f.write_str(digits);
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            f.write_char(separator)?;
        }
        f.write_char(digit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::*;

    #[test]
    fn prices_need_no_escaping() {
        let cents = [0, 5, -5, 99, 1250, 123_456, 1_234_567, i64::MAX, i64::MIN];
        for (lang, cents) in Lang::ALL.into_iter().flat_map(|l| cents.map(|c| (l, c))) {
            let text = lang.money(cents).to_string();
            assert_eq!(escaped_once(&text).0, text, "{lang:?} {cents}");
        }
    }

    #[test]
    fn money_follows_the_language() {
        assert_eq!(Lang::En.money(1250).to_string(), "$12.50");
        assert_eq!(Lang::Es.money(1250).to_string(), "12,50 US$");
        assert_eq!(Lang::En.money(123_456).to_string(), "$1,234.56");
        assert_eq!(Lang::Es.money(123_456).to_string(), "1234,56 US$");
        assert_eq!(Lang::Es.money(1_234_567).to_string(), "12.345,67 US$");
        assert_eq!(Lang::En.money(10_000_000).to_string(), "$100,000.00");
        assert_eq!(Lang::Es.money(5).to_string(), "0,05 US$");
    }

    #[test]
    fn dates_follow_the_language() {
        let epoch = 1_795_889_040; // 2026-11-28 18:04 UTC
        assert_eq!(Lang::En.date(epoch), "2026-11-28 18:04 UTC");
        assert_eq!(Lang::Es.date(epoch), "28/11/2026 18:04 UTC");
    }
}
