//! The message catalogues (Project Fluent, `locales/{en,es}/main.ftl`,
//! compiled in) and the messages pages ask for: plain, with arguments,
//! counted (plurals), memoised per thread where a page asks for hundreds.

use std::borrow::{Borrow, Cow};
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::LazyLock;

use askama::filters::{Escaper as _, Html, MaybeSafe, Safe};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use rustc_hash::FxHashMap;

use super::lang::Lang;

/// The catalogues, by language; `tests::catalogues_are_complete` keeps them
/// complete and free of unused messages.
pub const SOURCES: [(Lang, &str); 2] = [
    (Lang::En, include_str!("../../locales/en/main.ftl")),
    (Lang::Es, include_str!("../../locales/es/main.ftl")),
];

static BUNDLES: LazyLock<Vec<FluentBundle<FluentResource>>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(lang, ftl)| bundle(*lang, ftl))
        .collect()
});

/// Every message that takes no arguments, formatted once: a catalog page asks
/// for a hundred of them, and a lookup here costs a fraction of formatting.
/// Fx, not SipHash: the ids are compiled in, not chosen by clients, and the
/// lookup showed in the logged-in catalog's profile.
static PLAIN: LazyLock<Vec<FxHashMap<String, String>>> = LazyLock::new(|| {
    BUNDLES
        .iter()
        .zip(SOURCES)
        .map(|(bundle, (_, ftl))| plain_messages(bundle, ftl))
        .collect()
});

fn plain_messages(bundle: &FluentBundle<FluentResource>, ftl: &str) -> FxHashMap<String, String> {
    let ids = ftl
        .lines()
        // A message starts at the first column; its further lines are indented.
        .filter(|line| !line.starts_with(char::is_whitespace))
        .filter_map(|line| line.split_once(" = ").map(|(id, _)| id.trim()))
        .filter(|id| !id.is_empty() && !id.starts_with('#'));
    ids.filter_map(|id| {
        let pattern = bundle.get_message(id)?.value()?;
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, None, &mut errors);
        // A message with a placeable reports a missing argument: not plain.
        errors
            .is_empty()
            .then(|| (id.to_string(), text.into_owned()))
    })
    .collect()
}

fn bundle(lang: Lang, ftl: &str) -> FluentBundle<FluentResource> {
    let resource = FluentResource::try_new(ftl.to_string()).unwrap_or_else(|(_, errors)| {
        panic!("{} catalogue does not parse: {errors:?}", lang.code())
    });
    let mut bundle = FluentBundle::new_concurrent(vec![lang.langid()]);
    // Fluent wraps arguments in Unicode isolation marks by default; in HTML
    // they only show up as stray characters in copied text and in tests.
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .unwrap_or_else(|errors| panic!("{} catalogue has duplicates: {errors:?}", lang.code()));
    bundle
}

thread_local! {
    /// Counted messages this thread has already formatted. A catalog page
    /// says "N available" on each of its 100 cards, and a Fluent format with
    /// a plural (rules looked up behind the bundle's lock) cost more than the
    /// rest of the card: the anonymous catalog fell from 29 % to 15 % of the
    /// bench's reference when the shop learned Spanish.
    static COUNTED: RefCell<CountedMemo> = RefCell::default();
}

/// Formatted counted messages by (message, argument name) and then by
/// (language, number). The messages are compiled in, so an entry never goes
/// stale; the memo is emptied when it grows past `LIMIT` numbers, which bounds
/// it whatever counts the pages show.
/// A message id and the name of its one argument.
type MessageAndArgument = (String, String);
/// One message's texts, by language and number.
type FormattedByNumber = FxHashMap<(Lang, i64), Formatted>;

/// A formatted counted message, and whether a page may write it unescaped
/// (decided once, here, rather than by escaping it on every card).
#[derive(Clone)]
struct Formatted {
    text: Rc<str>,
    html_safe: bool,
}

#[derive(Default)]
struct CountedMemo {
    by_message: Vec<(MessageAndArgument, FormattedByNumber)>,
    len: usize,
}

impl CountedMemo {
    const LIMIT: usize = 4096;

    /// `message` is an index from `index_of`: messages are only ever added.
    fn get_or_format(
        &mut self,
        lang: Lang,
        message: usize,
        value: i64,
        format: impl FnOnce() -> String,
    ) -> Formatted {
        if let Some(formatted) = self.by_message[message].1.get(&(lang, value)) {
            return formatted.clone();
        }
        if self.len >= Self::LIMIT {
            self.by_message
                .iter_mut()
                .for_each(|(_, texts)| texts.clear());
            self.len = 0;
        }
        let text: Rc<str> = format().into();
        let formatted = Formatted {
            html_safe: escaped_once(&text).0 == *text,
            text,
        };
        self.by_message[message]
            .1
            .insert((lang, value), formatted.clone());
        self.len += 1;
        formatted
    }

    /// A handful of counted messages exist: a scan beats hashing the ids.
    fn index_of(&mut self, id: &str, name: &str) -> usize {
        let known = self
            .by_message
            .iter()
            .position(|((i, n), _)| i == id && n == name);
        known.unwrap_or_else(|| {
            let key = (id.to_string(), name.to_string());
            self.by_message.push((key, FxHashMap::default()));
            self.by_message.len() - 1
        })
    }
}

thread_local! {
    /// `Lang::ts`'s messages, split around their argument on first use.
    static AROUND_TEXT_ARGUMENT: RefCell<Vec<TextArgumentSplit>> = RefCell::default();
}

type TextArgumentSplit = ((Lang, String, String), Option<Around>);
/// The text before and after a message's one argument.
type Around = Rc<(String, String)>;

/// Message `id`'s lines in a catalogue: its first line and the indented ones after.
fn message_source(ftl: &str, id: &str) -> Option<String> {
    let mut lines = ftl.lines().skip_while(|line| {
        line.split_once(" = ")
            .is_none_or(|(name, _)| name.trim() != id)
    });
    let first = lines.next()?;
    let rest = lines.take_while(|line| line.starts_with(char::is_whitespace));
    Some(
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

impl Lang {
    fn bundle(&self) -> &'static FluentBundle<FluentResource> {
        &BUNDLES[*self as usize]
    }

    /// A message without arguments.
    pub fn t(&self, id: &str) -> Cow<'static, str> {
        match PLAIN[*self as usize].get(id) {
            Some(text) => Cow::Borrowed(text.as_str()),
            None => Cow::Owned(self.t_args(id, &[])),
        }
    }

    pub fn t_args(&self, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let bundle = self.bundle();
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            // The catalogue test makes this unreachable; if it happens, the id
            // is more useful to the shopper and the log than an error page.
            tracing::warn!(id, lang = self.code(), "message missing from the catalogue");
            return id.to_string();
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            tracing::warn!(
                id,
                lang = self.code(),
                ?errors,
                "message formatted with errors"
            );
        }
        text.into_owned()
    }

    /// A message with one text argument (templates: a title, a name).
    /// Where the argument only sits in the text, the text around it is taken
    /// from Fluent once per thread and the value put between: a logged-in
    /// catalog page has a hundred of these.
    pub fn ts(&self, id: &str, name: &str, value: &str) -> String {
        match self.around(id, name) {
            Some(around) => format!("{}{value}{}", around.0, around.1),
            None => self.t_args(id, &[(name, FluentValue::from(value))]),
        }
    }

    /// `text_around_argument`, asked once per thread.
    fn around(&self, id: &str, name: &str) -> Option<Around> {
        AROUND_TEXT_ARGUMENT.with_borrow_mut(|memo| {
            let key = (*self, id, name);
            let known = memo
                .iter()
                .find(|(k, _)| (k.0, k.1.as_str(), k.2.as_str()) == key);
            if let Some((_, around)) = known {
                return around.clone();
            }
            let around = self.text_around_argument(id, name).map(Rc::new);
            memo.push(((*self, id.to_string(), name.to_string()), around.clone()));
            around
        })
    }

    /// `ts` for a page that writes the same message around many values (a
    /// catalog card's label): the text around the argument is looked up
    /// once, and each value is written into the page without a `String`.
    pub fn text_argument(&self, id: &'static str, name: &'static str) -> TextArgument {
        let around = self.around(id, name);
        TextArgument {
            lang: *self,
            id,
            name,
            around_html: around
                .map(|around| (escaped_once(&around.0).0, escaped_once(&around.1).0)),
        }
    }

    /// The text before and after `$name` in message `id`, or `None` when the
    /// argument does more than sit in the text (a selector, a second
    /// argument, a missing message): those are formatted by Fluent each time.
    fn text_around_argument(&self, id: &str, name: &str) -> Option<(String, String)> {
        const MARK: &str = "\u{E000}";
        let (_, ftl) = SOURCES[*self as usize];
        if message_source(ftl, id)?.contains("->") {
            return None;
        }
        let bundle = self.bundle();
        let pattern = bundle.get_message(id)?.value()?;
        let mut args = FluentArgs::new();
        args.set(name, FluentValue::from(MARK));
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&args), &mut errors);
        let (before, after) = text.split_once(MARK)?;
        (errors.is_empty() && !after.contains(MARK))
            .then(|| (before.to_string(), after.to_string()))
    }

    /// A message with one number argument (templates: counts, for plurals).
    /// `Borrow`, because templates pass fields by reference.
    pub fn tn(&self, id: &str, name: &str, value: impl Borrow<i64>) -> Rc<str> {
        let value = *value.borrow();
        let message = COUNTED.with_borrow_mut(|memo| memo.index_of(id, name));
        self.counted_text(message, id, name, value).text
    }

    /// Counted message `id` (at `message` in this thread's memo) for `value`,
    /// from the memo or formatted by Fluent into it.
    fn counted_text(&self, message: usize, id: &str, name: &str, value: i64) -> Formatted {
        COUNTED.with_borrow_mut(|memo| {
            memo.get_or_format(*self, message, value, || {
                self.t_args(id, &[(name, FluentValue::from(value))])
            })
        })
    }

    /// `tn` for a page that writes the same counted message many times (a
    /// catalog card's stock): the message is found in the memo once.
    pub fn counted(&self, id: &'static str, name: &'static str) -> Counted {
        let message = COUNTED.with_borrow_mut(|memo| memo.index_of(id, name));
        Counted {
            lang: *self,
            id,
            name,
            message,
            same_thread: PhantomData,
        }
    }
}

/// A message id and its one number, when it has one: what code below the
/// pages (form parsing) says, before a page puts it into the shopper's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    id: &'static str,
    number: Option<(&'static str, i64)>,
}

impl Message {
    pub fn with_number(id: &'static str, name: &'static str, value: i64) -> Message {
        Message {
            id,
            number: Some((name, value)),
        }
    }

    pub fn render(&self, lang: Lang) -> String {
        match self.number {
            Some((name, value)) => lang.tn(self.id, name, value).to_string(),
            None => lang.t(self.id).into_owned(),
        }
    }
}

impl From<&'static str> for Message {
    fn from(id: &'static str) -> Message {
        Message { id, number: None }
    }
}

/// A message with one text argument, prepared by `Lang::text_argument`: the
/// text around the argument is escaped for HTML once, here, and each value as
/// it is written.
pub struct TextArgument {
    lang: Lang,
    id: &'static str,
    name: &'static str,
    around_html: Option<(String, String)>,
}

impl TextArgument {
    /// The message around `value`, for a page: escaped, and so marked safe
    /// for askama not to escape it again.
    pub fn with<'a>(&'a self, value: &'a str) -> Safe<TextWith<'a>> {
        Safe(TextWith {
            message: self,
            value,
        })
    }
}

/// A counted message, prepared by `Lang::counted`.
pub struct Counted {
    lang: Lang,
    id: &'static str,
    name: &'static str,
    /// Its place in this thread's memo, so the value must stay on this
    /// thread: `Rc` makes it `!Send`, which no await point can cross.
    message: usize,
    same_thread: PhantomData<Rc<()>>,
}

impl Counted {
    /// The message for `value`, for a page: marked safe when it has nothing
    /// to escape, so askama does not scan it again.
    pub fn with(&self, value: impl Borrow<i64>) -> MaybeSafe<Rc<str>> {
        let formatted = self
            .lang
            .counted_text(self.message, self.id, self.name, *value.borrow());
        if formatted.html_safe {
            MaybeSafe::Safe(formatted.text)
        } else {
            MaybeSafe::NeedsEscaping(formatted.text)
        }
    }
}

/// A `TextArgument` with its value, written (escaped) when the page is.
pub struct TextWith<'a> {
    message: &'a TextArgument,
    value: &'a str,
}

impl fmt::Display for TextWith<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (message, value) = (self.message, self.value);
        match &message.around_html {
            Some((before, after)) => {
                f.write_str(before)?;
                Html.write_escaped_str(&mut *f, value)?;
                f.write_str(after)
            }
            None => {
                let args = [(message.name, FluentValue::from(value))];
                let text = message.lang.t_args(message.id, &args);
                Html.write_escaped_str(f, &text)
            }
        }
    }
}

/// `text`, escaped for HTML once and marked so that askama writes it as it is:
/// for a text a page writes many times (a catalog card's button).
pub fn escaped_once(text: &str) -> Safe<String> {
    let mut html = String::with_capacity(text.len());
    // Writing into a `String` cannot fail.
    let _ = Html.write_escaped_str(&mut html, text);
    Safe(html)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn counted_messages_are_formatted_once_per_number_and_the_memo_stays_bounded() {
        let mut memo = CountedMemo::default();
        let mut formats = 0;
        let mut ask = |memo: &mut CountedMemo, lang, value| {
            let message = memo.index_of("stock-available", "count");
            memo.get_or_format(lang, message, value, || {
                formats += 1;
                format!("{value} {lang:?}")
            })
            .text
        };
        assert_eq!(&*ask(&mut memo, Lang::Es, 3), "3 Es");
        assert_eq!(&*ask(&mut memo, Lang::Es, 3), "3 Es");
        assert_eq!(&*ask(&mut memo, Lang::En, 3), "3 En");
        // Numbers not asked before: each is formatted once more.
        for value in 4..4 + 2 * CountedMemo::LIMIT as i64 {
            ask(&mut memo, Lang::En, value);
        }
        assert!(memo.len <= CountedMemo::LIMIT);
        assert_eq!(formats, 2 + 2 * CountedMemo::LIMIT);
        // Through the public paths, the memo gives what Fluent gives, for
        // each message however many the thread has met.
        for _ in 0..2 {
            for (id, name) in [("stock-available", "count"), ("home-lead", "count")] {
                let fluent = Lang::Es.t_args(id, &[(name, FluentValue::from(1))]);
                assert_eq!(&*Lang::Es.tn(id, name, 1), fluent);
                assert_eq!(Lang::Es.counted(id, name).with(1).to_string(), fluent);
            }
        }
    }

    #[test]
    fn text_arguments_read_as_fluent_formats_them() {
        for lang in Lang::ALL {
            for (id, name) in [
                ("book-by", "author"),
                ("catalog-matching", "search"),
                ("quantity-of", "title"),
                ("book-sold-by", "seller"),
            ] {
                assert!(
                    lang.text_around_argument(id, name).is_some(),
                    "{id} is split"
                );
                for value in ["Ana", "", "<b>&amp;", "{ $author }", "\u{E000}"] {
                    let fluent = lang.t_args(id, &[(name, FluentValue::from(value))]);
                    assert_eq!(lang.ts(id, name, value), fluent, "{lang:?} {id} {value:?}");
                    // Prepared for a page: the same text, escaped for HTML.
                    let prepared = lang.text_argument(id, name);
                    assert_eq!(
                        prepared.with(value).0.to_string(),
                        escaped_once(&fluent).0,
                        "{lang:?} {id} {value:?}"
                    );
                }
            }
        }
        // A selector on the argument, a second argument or an unknown id: Fluent decides.
        assert_eq!(
            Lang::En.text_around_argument("catalog-count", "count"),
            None
        );
        assert_eq!(
            Lang::En.text_around_argument("pager-position", "page"),
            None
        );
        assert_eq!(Lang::En.text_around_argument("no-such-message", "x"), None);
        let unsplit = Lang::En.text_argument("no-such-message", "x");
        assert_eq!(unsplit.with("<i>").0.to_string(), "no-such-message");
    }

    #[test]
    fn text_escaped_once_is_what_askama_writes() {
        assert_eq!(
            escaped_once(r#"Tom & "Jerry's" <b>"#).0,
            "Tom &#38; &#34;Jerry&#39;s&#34; &#60;b&#62;"
        );
    }

    #[test]
    fn messages_take_arguments_and_plurals() {
        assert_eq!(&*Lang::Es.tn("catalog-count", "count", 1), "1 libro");
        assert_eq!(&*Lang::Es.tn("catalog-count", "count", 3), "3 libros");
        assert_eq!(&*Lang::En.tn("catalog-count", "count", 3), "3 books");
    }

    /// Every catalogue has the same messages, each message is used in `src/`
    /// or `templates/`, and every id the code asks for is in the catalogues.
    #[test]
    fn catalogues_are_complete() {
        let ids: Vec<(Lang, BTreeSet<String>)> = SOURCES
            .iter()
            .map(|(lang, ftl)| (*lang, message_ids(*lang, ftl)))
            .collect();
        let (_, english) = &ids[0];
        for (lang, other) in &ids[1..] {
            let missing: Vec<_> = english.difference(other).collect();
            let extra: Vec<_> = other.difference(english).collect();
            assert!(
                missing.is_empty(),
                "missing from {}: {missing:?}",
                lang.code()
            );
            assert!(extra.is_empty(), "only in {}: {extra:?}", lang.code());
        }
        let (rust, templates) = (source_text("src"), source_text("templates"));
        let unused: Vec<_> = english
            .iter()
            .filter(|id| {
                let quoted = format!("\"{id}\"");
                !rust.contains(&quoted) && !templates.contains(&quoted)
            })
            .collect();
        assert!(unused.is_empty(), "messages no code uses: {unused:?}");
        // Ids asked for: a template's `t("…")` and friends; in Rust, any
        // literal shaped like an id whose first word is one the catalogues use.
        let prefixes: BTreeSet<&str> = english
            .iter()
            .filter_map(|id| id.split('-').next())
            .collect();
        let rust_ids = regex::Regex::new(r#""([a-z]+(?:-[a-z0-9_]+)+)""#).unwrap();
        let template_ids = regex::Regex::new(r#"\.(?:t[sn2]*|text_argument)\("([^"]+)""#).unwrap();
        let asked = rust_ids
            .captures_iter(&rust)
            .map(|c| c.get(1).unwrap().as_str())
            .filter(|id| prefixes.contains(id.split('-').next().unwrap_or_default()))
            .chain(
                template_ids
                    .captures_iter(&templates)
                    .map(|c| c.get(1).unwrap().as_str()),
            );
        let unknown: BTreeSet<&str> = asked.filter(|id| !english.contains(*id)).collect();
        assert!(
            unknown.is_empty(),
            "ids asked for that no catalogue has: {unknown:?}"
        );
    }

    /// Every catalogue parses, and every message in it has a value.
    fn message_ids(lang: Lang, ftl: &str) -> BTreeSet<String> {
        let resource = fluent_syntax::parser::parse(ftl)
            .unwrap_or_else(|(_, errors)| panic!("{} does not parse: {errors:?}", lang.code()));
        resource
            .body
            .iter()
            .filter_map(|entry| match entry {
                fluent_syntax::ast::Entry::Message(m) => {
                    assert!(
                        m.value.is_some(),
                        "{}: {} has no value",
                        lang.code(),
                        m.id.name
                    );
                    Some(m.id.name.to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// The text of every template and every Rust file (their tests left out),
    /// so that an id only a test mentions counts as unused.
    fn source_text(folder: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut text = String::new();
        let mut dirs = vec![root.join(folder)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let content = std::fs::read_to_string(&path).unwrap();
                let code = content.split("#[cfg(test)]").next().unwrap_or_default();
                text.push_str(code);
                text.push('\n');
            }
        }
        text
    }
}
