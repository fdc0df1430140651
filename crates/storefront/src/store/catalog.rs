//! The catalog listing: which books a page shows, in what order, and how many
//! match. Its cost does not grow with the size of the shop:
//! - a search is a full-text match (MySQL FULLTEXT, SQLite FTS5) ranked by
//!   relevance, never a `LIKE '%…%'` scan;
//! - the pages a link leads to start after (or before) a book of the page the
//!   shopper saw (keyset), read in index order from there, so page 5,000 costs
//!   what page 2 costs; a page number typed by hand is an OFFSET, bounded;
//! - the number of matches is counted up to a cap, past which the page says
//!   "more than".

use sqlx::AnyPool;
use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;
use sqlx::{Any, Arguments};

use super::books::BookCard;
use crate::db::{Backend, Db};
use crate::shared::read_cache::Derived;

/// Matches are counted up to this many; past it the page says "more than".
pub const COUNT_CAP: i64 = 1_000;
/// How deep a typed page number may reach (rows skipped by OFFSET). Links
/// between pages go further, by keyset, at no extra cost.
pub const MAX_OFFSET: i64 = 10_000;
/// Words of a search used; the rest are ignored.
const MAX_WORDS: usize = 8;
/// InnoDB's FULLTEXT index leaves out shorter words (`innodb_ft_min_token_size`);
/// both databases ignore them in a search that has longer ones, so that a
/// search finds the same books on either.
const MIN_WORD_CHARS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sort {
    /// Best match first; only for a search.
    Relevance,
    #[default]
    Title,
    Author,
    PriceLow,
    PriceHigh,
    Newest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ascending,
    Descending,
}

impl Sort {
    /// The orders the menu offers when there is no search.
    pub const BROWSING: &'static [Sort] = &[
        Sort::Title,
        Sort::Author,
        Sort::PriceLow,
        Sort::PriceHigh,
        Sort::Newest,
    ];
    /// The orders the menu offers for a search.
    pub const SEARCHING: &'static [Sort] = &[
        Sort::Relevance,
        Sort::Title,
        Sort::Author,
        Sort::PriceLow,
        Sort::PriceHigh,
        Sort::Newest,
    ];

    /// The order asked for, if it applies: a search is ranked by relevance
    /// unless another order is chosen, a plain listing by title.
    pub fn parse(raw: &str, searching: bool) -> Sort {
        let offered = Self::offered(searching);
        offered
            .iter()
            .copied()
            .find(|s| s.key() == raw)
            .unwrap_or(offered[0])
    }

    pub fn offered(searching: bool) -> &'static [Sort] {
        if searching {
            Self::SEARCHING
        } else {
            Self::BROWSING
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Title => "title",
            Sort::Author => "author",
            Sort::PriceLow => "price",
            Sort::PriceHigh => "price_desc",
            Sort::Newest => "newest",
        }
    }

    /// The catalogue's name for the order, as the sort menu shows it.
    pub fn message_id(&self) -> &'static str {
        match self {
            Sort::Relevance => "sort-relevance",
            Sort::Title => "sort-title",
            Sort::Author => "sort-author",
            Sort::PriceLow => "sort-price-low",
            Sort::PriceHigh => "sort-price-high",
            Sort::Newest => "sort-newest",
        }
    }

    /// The columns that order the listing, each with its direction, ending
    /// with the id so that the order is total (what keyset paging needs). Each
    /// list is an index read forwards or backwards: `books_title` is (title,
    /// id), `books_author` (author, title, id), `books_price` (price_cents,
    /// id). Fixed text per variant: user input never reaches the SQL.
    fn columns(&self) -> &'static [(&'static str, Direction)] {
        use Direction::*;
        match self {
            Sort::Relevance | Sort::Title => &[("books.title", Ascending), ("books.id", Ascending)],
            Sort::Author => &[
                ("books.author", Ascending),
                ("books.title", Ascending),
                ("books.id", Ascending),
            ],
            Sort::PriceLow => &[("books.price_cents", Ascending), ("books.id", Ascending)],
            Sort::PriceHigh => &[("books.price_cents", Descending), ("books.id", Descending)],
            Sort::Newest => &[("books.id", Descending)],
        }
    }
}

/// Where a page starts when a link led to it: just after the last book of the
/// page before, or just before the first book of the page after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cursor {
    After(i64),
    Before(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatalogQuery {
    /// Words matched against titles and authors; empty shows every book.
    pub search: String,
    pub sort: Sort,
    /// 1-based; where the page starts when there is no cursor.
    pub page: i64,
    pub per_page: i64,
    pub cursor: Option<Cursor>,
}

impl CatalogQuery {
    pub fn offset(&self) -> i64 {
        ((self.page - 1) * self.per_page).clamp(0, MAX_OFFSET)
    }
}

/// How many books match: exactly, or at least the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Exact(i64),
    AtLeast(i64),
}

impl Total {
    pub fn of_capped(counted: i64) -> Total {
        if counted > COUNT_CAP {
            Total::AtLeast(COUNT_CAP)
        } else {
            Total::Exact(counted)
        }
    }
}

/// One page of the catalog.
#[derive(Debug)]
pub struct CatalogPage {
    pub books: Vec<BookCard>,
    pub total: Total,
    /// Whether a page follows this one.
    pub has_next: bool,
    /// Which page this is, counted from the books before it: a link's own
    /// page number is only a label a hand can edit. `None` when the books
    /// before it are past the count's cap (a deep page of a big catalog).
    pub number: Option<i64>,
    /// What the web layer makes of this page (its rendered cards), kept with it.
    pub derived: Derived,
}

impl CatalogPage {
    fn empty() -> CatalogPage {
        CatalogPage {
            books: Vec::new(),
            total: Total::Exact(0),
            has_next: false,
            number: Some(1),
            derived: Derived::default(),
        }
    }
}

/// A search as the full-text index understands it: its words, lower-cased,
/// every other character a separator (so `%`, quotes and the indexes' own
/// operators are never more than spaces).
fn words(search: &str) -> Vec<String> {
    search
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .map(str::to_lowercase)
        .collect()
}

/// Words left out of a search that has other words, like words under
/// `MIN_WORD_CHARS`: words in so many titles that requiring one costs a scan
/// of most of the index and narrows nothing ("the", "los"), and the longer
/// words of InnoDB's default stopword list, which an index made without
/// migration 0003's setting (a restored dump) leaves out, so that a search
/// finds the same books either way.
const COMMON_WORDS: &[&str] = &[
    "the", "and", "for", "los", "las", "del", "una", "por", "con", "about", "are", "com", "from",
    "how", "that", "this", "was", "what", "when", "where", "who", "will", "with", "und", "www",
];

/// The words a search requires: those long and rare enough to narrow it.
fn long_words(words: &[String]) -> impl Iterator<Item = &String> {
    words
        .iter()
        .filter(|w| w.chars().count() >= MIN_WORD_CHARS && !COMMON_WORDS.contains(&w.as_str()))
}

/// The words of a search that a word index can look for: those long and
/// rare enough to narrow it. Empty for a search of short or common words
/// alone, which the database answers as a title prefix (through its title
/// index, cheaply).
pub fn indexed_terms(search: &str) -> Vec<String> {
    long_words(&words(search)).cloned().collect()
}

/// The part of the statement that picks the matching books.
struct Filter {
    from: &'static str,
    condition: Option<&'static str>,
    /// The relevance order, for a search.
    rank: Option<&'static str>,
    /// One value per `?` of `condition` and, for the relevance order, of `rank`.
    text: Option<String>,
}

impl Filter {
    /// `None` when the search has no word that could match anything.
    fn of(backend: Backend, search: &str) -> Option<Filter> {
        let every_book = Filter {
            from: "books",
            condition: None,
            rank: None,
            text: None,
        };
        if search.trim().is_empty() {
            return Some(every_book);
        }
        let words = words(search);
        match backend {
            Backend::MySql => Self::mysql(&words),
            Backend::Sqlite => Self::sqlite(&words),
        }
    }

    /// Every word required, each as a prefix (`+pride* +prej*`). Words too
    /// short for the index are left out; a search made of them alone looks for
    /// titles that start with the first one, through the title index.
    fn mysql(words: &[String]) -> Option<Filter> {
        let indexed: Vec<String> = long_words(words).map(|w| format!("+{w}*")).collect();
        if indexed.is_empty() {
            let first = words.first()?;
            return Some(Filter {
                from: "books",
                condition: Some("books.title LIKE ?"),
                rank: None,
                text: Some(format!("{first}%")),
            });
        }
        Some(Filter {
            from: "books",
            condition: Some("MATCH (books.title, books.author) AGAINST (? IN BOOLEAN MODE)"),
            rank: Some("MATCH (books.title, books.author) AGAINST (? IN BOOLEAN MODE) DESC"),
            text: Some(indexed.join(" ")),
        })
    }

    /// Every word required, each as a quoted prefix (`"pride"* "prej"*`);
    /// short words only when there are no others.
    fn sqlite(words: &[String]) -> Option<Filter> {
        let mut terms: Vec<String> = long_words(words).map(|w| format!("\"{w}\"*")).collect();
        if terms.is_empty() {
            terms = words.iter().map(|w| format!("\"{w}\"*")).collect();
        }
        if terms.is_empty() {
            return None;
        }
        Some(Filter {
            from: "books_search JOIN books ON books.id = books_search.rowid",
            condition: Some("books_search MATCH ?"),
            rank: Some("books_search.rank"),
            text: Some(terms.join(" ")),
        })
    }

    fn bind_condition(&self, args: &mut AnyArguments<'_>) {
        if let (Some(_), Some(text)) = (self.condition, &self.text) {
            args.add(text.clone()).expect("a string binds");
        }
    }

    fn bind_rank(&self, args: &mut AnyArguments<'_>) {
        // SQLite's rank column takes no argument of its own.
        if let (Some(rank), Some(text)) = (self.rank, &self.text)
            && rank.contains('?')
        {
            args.add(text.clone()).expect("a string binds");
        }
    }
}

/// The sort values of the book a cursor names.
#[derive(sqlx::FromRow)]
struct Anchor {
    id: i64,
    title: String,
    author: String,
    price_cents: i64,
}

impl Anchor {
    fn bind(&self, column: &str, args: &mut AnyArguments<'_>) {
        let added = match column {
            "books.title" => args.add(self.title.clone()),
            "books.author" => args.add(self.author.clone()),
            "books.price_cents" => args.add(self.price_cents),
            _ => args.add(self.id),
        };
        added.expect("a value binds");
    }
}

async fn anchor(pool: &AnyPool, id: i64) -> sqlx::Result<Option<Anchor>> {
    sqlx::query_as("SELECT id, title, author, price_cents FROM books WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// `(a > ?) OR (a = ? AND b > ?) OR …`: the rows past the anchor in this
/// order (before it when `backwards`). Written out rather than as a row value
/// `(a, b) > (?, ?)`, which MariaDB does not read through an index.
fn keyset_condition(
    columns: &[(&str, Direction)],
    backwards: bool,
    anchor: &Anchor,
    args: &mut AnyArguments<'_>,
) -> String {
    let mut alternatives = Vec::new();
    for (i, (column, direction)) in columns.iter().enumerate() {
        let mut parts = Vec::new();
        for (equal, _) in &columns[..i] {
            parts.push(format!("{equal} = ?"));
            anchor.bind(equal, args);
        }
        let later = (*direction == Direction::Ascending) != backwards;
        parts.push(format!("{column} {} ?", if later { ">" } else { "<" }));
        anchor.bind(column, args);
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    format!("({})", alternatives.join(" OR "))
}

fn order_by(columns: &[(&str, Direction)], backwards: bool) -> String {
    columns
        .iter()
        .map(|(column, direction)| {
            let ascending = (*direction == Direction::Ascending) != backwards;
            format!("{column}{}", if ascending { "" } else { " DESC" })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const CARD_COLUMNS: &str =
    "books.id, books.title, books.author, books.price_cents, books.stock, books.seller_id";

/// One page of the catalog (see the module's comment for what bounds its cost).
pub async fn catalog(db: &Db, query: &CatalogQuery) -> sqlx::Result<CatalogPage> {
    let Some(filter) = Filter::of(db.backend, &query.search) else {
        return Ok(CatalogPage::empty());
    };
    let anchor = match (query.sort, query.cursor) {
        (Sort::Relevance, _) | (_, None) => None,
        (_, Some(Cursor::After(id) | Cursor::Before(id))) => anchor(&db.pool(), id).await?,
    };
    let backwards = anchor.is_some() && matches!(query.cursor, Some(Cursor::Before(_)));
    let total = count_capped(&db.pool(), &filter).await?;
    let number = match &anchor {
        None => Some(query.page),
        Some(anchor) => page_number_at(&db.pool(), &filter, query, anchor, backwards).await?,
    };
    let mut books = page_of_cards(&db.pool(), &filter, query, anchor.as_ref(), backwards).await?;
    let more = books.len() as i64 > query.per_page;
    books.truncate(query.per_page as usize);
    if backwards {
        books.reverse();
    }
    Ok(CatalogPage {
        books,
        total,
        // Going back, the page the shopper came from follows.
        has_next: more || backwards,
        number,
        derived: Derived::default(),
    })
}

/// The number of the page a cursor leads to, from the books that come before
/// its anchor (counted no further than the cap, like the total): after the
/// anchor, the page starts past the anchor and those before it; before it,
/// the page ends just before the anchor.
async fn page_number_at(
    pool: &AnyPool,
    filter: &Filter,
    query: &CatalogQuery,
    anchor: &Anchor,
    backwards: bool,
) -> sqlx::Result<Option<i64>> {
    let earlier = count_up_to_cap(pool, filter, Some((query.sort, anchor))).await?;
    Ok(page_number(earlier, query.per_page, backwards))
}

/// The number of a page read from a cursor whose book has `earlier` books
/// before it (counted up to one past the cap), as [`page_number_at`] says.
pub fn page_number(earlier: i64, per_page: i64, backwards: bool) -> Option<i64> {
    if earlier > COUNT_CAP {
        return None;
    }
    // The books shown start at this index (0-based) in the whole order.
    let first = if backwards {
        (earlier - per_page).max(0)
    } else {
        earlier + 1
    };
    Some(first / per_page + 1)
}

/// `per_page + 1` cards, the extra one telling whether more follow.
async fn page_of_cards(
    pool: &AnyPool,
    filter: &Filter,
    query: &CatalogQuery,
    anchor: Option<&Anchor>,
    backwards: bool,
) -> sqlx::Result<Vec<BookCard>> {
    let mut args = AnyArguments::default();
    let mut conditions = Vec::new();
    if let Some(condition) = filter.condition {
        conditions.push(condition.to_string());
        filter.bind_condition(&mut args);
    }
    let columns = query.sort.columns();
    if let Some(anchor) = anchor {
        conditions.push(keyset_condition(columns, backwards, anchor, &mut args));
    }
    let mut order = order_by(columns, backwards);
    if let (Sort::Relevance, Some(rank)) = (query.sort, filter.rank) {
        order = format!("{rank}, {order}");
        filter.bind_rank(&mut args);
    }
    let offset = if anchor.is_some() { 0 } else { query.offset() };
    args.add(query.per_page + 1).expect("an integer binds");
    args.add(offset).expect("an integer binds");
    let sql = format!(
        "SELECT {CARD_COLUMNS} FROM {} {} ORDER BY {order} LIMIT ? OFFSET ?",
        filter.from,
        where_clause(&conditions)
    );
    let cards: QueryAs<'_, Any, BookCard, AnyArguments<'_>> = sqlx::query_as_with(&sql, args);
    cards.fetch_all(pool).await
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// How many books match, counted no further than just past the cap.
async fn count_capped(pool: &AnyPool, filter: &Filter) -> sqlx::Result<Total> {
    Ok(Total::of_capped(count_up_to_cap(pool, filter, None).await?))
}

/// The books that match (and, with `before`, come before its anchor in its
/// order), counted no further than one past [`COUNT_CAP`].
async fn count_up_to_cap(
    pool: &AnyPool,
    filter: &Filter,
    before: Option<(Sort, &Anchor)>,
) -> sqlx::Result<i64> {
    let mut args = AnyArguments::default();
    let mut conditions = Vec::new();
    if let Some(condition) = filter.condition {
        conditions.push(condition.to_string());
        filter.bind_condition(&mut args);
    }
    if let Some((sort, anchor)) = before {
        conditions.push(keyset_condition(sort.columns(), true, anchor, &mut args));
    }
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {} {} LIMIT {}) AS matching",
        filter.from,
        where_clause(&conditions),
        COUNT_CAP + 1
    );
    sqlx::query_scalar_with(&sql, args).fetch_one(pool).await
}

/// How many books the shop lists, up to the cap (the home page says it).
pub async fn count_books(pool: &AnyPool) -> sqlx::Result<Total> {
    let every_book = Filter {
        from: "books",
        condition: None,
        rank: None,
        text: None,
    };
    count_capped(pool, &every_book).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_its_words_and_nothing_else() {
        assert_eq!(words("  Pride & Prejudice "), ["pride", "prejudice"]);
        assert_eq!(
            words("100% \"x\" +a* -b (c) ~d @2"),
            ["100", "x", "a", "b", "c", "d", "2"]
        );
        assert_eq!(words("García Márquez"), ["garcía", "márquez"]);
        assert!(words("%%% '\"*").is_empty());
        assert_eq!(words("a b c d e f g h i j").len(), MAX_WORDS);
    }

    #[test]
    fn mysql_requires_every_indexed_word_as_a_prefix() {
        let filter = Filter::mysql(&words("The Lord of the Rings")).unwrap();
        assert_eq!(
            filter.text.as_deref(),
            Some("+lord* +rings*"),
            "common words left out"
        );
        let common = Filter::mysql(&words("The")).unwrap();
        assert_eq!(
            common.text.as_deref(),
            Some("the%"),
            "alone, a title prefix"
        );
        let short = Filter::mysql(&words("Go on")).unwrap();
        assert_eq!(short.condition, Some("books.title LIKE ?"));
        assert_eq!(short.text.as_deref(), Some("go%"));
        assert!(Filter::mysql(&[]).is_none());
    }

    #[test]
    fn sqlite_quotes_every_word() {
        let filter = Filter::sqlite(&words("moby-dick")).unwrap();
        assert_eq!(filter.text.as_deref(), Some("\"moby\"* \"dick\"*"));
        assert!(Filter::sqlite(&words("***")).is_none());
    }

    #[test]
    fn the_keyset_condition_follows_each_direction() {
        let anchor = Anchor {
            id: 7,
            title: "T".into(),
            author: "A".into(),
            price_cents: 500,
        };
        let mut args = AnyArguments::default();
        let after = keyset_condition(Sort::Author.columns(), false, &anchor, &mut args);
        assert_eq!(
            after,
            "((books.author > ?) OR (books.author = ? AND books.title > ?) OR \
             (books.author = ? AND books.title = ? AND books.id > ?))"
        );
        let before = keyset_condition(Sort::PriceHigh.columns(), true, &anchor, &mut args);
        assert_eq!(
            before,
            "((books.price_cents > ?) OR (books.price_cents = ? AND books.id > ?))"
        );
        assert_eq!(
            order_by(Sort::PriceHigh.columns(), true),
            "books.price_cents, books.id"
        );
    }

    #[test]
    fn relevance_is_offered_only_for_a_search() {
        assert_eq!(Sort::parse("", true), Sort::Relevance);
        assert_eq!(Sort::parse("", false), Sort::Title);
        assert_eq!(Sort::parse("relevance", false), Sort::Title);
        assert_eq!(Sort::parse("price", true), Sort::PriceLow);
        assert_eq!(Sort::parse("drop", true), Sort::Relevance);
    }

    #[test]
    fn deep_typed_pages_are_bounded() {
        let query = CatalogQuery {
            search: String::new(),
            sort: Sort::Title,
            page: 100_000,
            per_page: 100,
            cursor: None,
        };
        assert_eq!(query.offset(), MAX_OFFSET);
    }
}
