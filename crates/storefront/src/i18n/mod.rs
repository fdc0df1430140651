//! The shop in English and Spanish: which language a request gets, the
//! message catalogues (Project Fluent, `locales/{en,es}/main.ftl`, compiled
//! in), and prices and dates written the way each language writes them.
//!
//! The language is decided once per request by [`negotiate`] (the `lang`
//! cookie, else `Accept-Language`, else English) and is then both a request
//! extension (for the `Page` extractor) and a task-local value, so that code
//! with no request at hand (an `AppError` turning into its page, a form's
//! validation messages) still speaks the shopper's language.
//!
//! One module per concern: `lang` (the languages, the request's own),
//! `messages` (the catalogues and their messages), `format` (prices and
//! dates), `negotiate` (which language a request gets, and the switch).

mod format;
mod lang;
mod messages;
mod negotiate;

pub use format::Money;
pub use lang::{Lang, current, t, t_args};
pub use messages::{Counted, Message, SOURCES, TextArgument, TextWith, escaped_once};
pub use negotiate::{COOKIE, Language, LanguageLayer, SwitchQuery, negotiate, safe_next, switch};
