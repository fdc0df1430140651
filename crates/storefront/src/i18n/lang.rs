//! The languages the shop speaks, and the one the request being answered
//! is in: a task-local value set by the language layer (`negotiate`), so
//! code with no request at hand still speaks the shopper's language.

use fluent_bundle::FluentValue;
use unic_langid::LanguageIdentifier;

/// The languages the shop speaks; English is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    Es,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Es];

    /// The BCP 47 tag: `<html lang>`, the cookie's value, the switch's link.
    pub fn code(&self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code.trim())
    }

    pub(super) fn langid(&self) -> LanguageIdentifier {
        self.code().parse().expect("a valid language tag")
    }
}

tokio::task_local! {
    pub(super) static CURRENT: Lang;
}

/// The language of the request being answered (English outside of one).
pub fn current() -> Lang {
    CURRENT.try_with(|lang| *lang).unwrap_or_default()
}

/// A message in the current request's language.
pub fn t(id: &str) -> String {
    current().t(id).into_owned()
}

/// A message with arguments, in the current request's language.
pub fn t_args(id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    current().t_args(id, args)
}
