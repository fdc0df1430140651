//! The tantivy index itself: its schema, how a book becomes a document, and
//! how a search becomes a ranked, sorted list of book ids; and beside it the
//! listings without a search (`browse.rs`), written with it. Synchronous:
//! the caller runs writes on a blocking thread.
//!
//! Held in memory (a replica builds it from the database at start). Only
//! what is searched or sorted on is kept; cards are read from the database by
//! primary key, so a price or stock shown is never the index's.

use std::ops::Bound;
use std::sync::Mutex;

use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use tantivy::collector::{Count, SortKeyComputer, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, SimpleTokenizer, TextAnalyzer, TokenStream,
};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, Term, doc};

use super::browse::{BrowseOrders, Listing, PageRequest, SortKeys};
use crate::db::Backend;
use crate::store::catalog::Sort;
use crate::store::changes::IndexedBook;

/// Words are split on anything not alphanumeric, lower-cased and folded to
/// ASCII ("Cien años" is found by "anos"); queries go through the same steps.
const FOLDED: &str = "folded";
/// The writer's memory before it flushes a segment (tantivy's floor is 15 MB).
const WRITER_MEMORY: usize = 50_000_000;
/// An exact word is ranked by BM25, doubled; a longer word it begins
/// counts a constant half (tantivy scores a range of words as one constant).
const EXACT_WORD_BOOST: f32 = 2.0;
const BEGUN_WORD_BOOST: f32 = 0.5;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    words: Field,
    title_key: Field,
    /// The title key's first eight bytes as a number: what ties of
    /// relevance sort by. A string key costs a walk of the term dictionary
    /// for every book of the page (a fifth of a search's time at a million
    /// books); a number costs nothing.
    title_start: Field,
    author_key: Field,
    price: Field,
}

/// Ids in the order asked for, and how many books matched in all.
#[derive(Debug, PartialEq)]
pub struct Hits {
    pub ids: Vec<i64>,
    pub matched: usize,
}

pub struct CatalogIndex {
    /// Sort keys folded as MySQL's collation compares (case and accents
    /// aside); SQLite compares bytes, and so does the index then.
    fold_sort_keys: bool,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// Every book in each order a listing without a search offers.
    orders: BrowseOrders,
}

impl CatalogIndex {
    pub fn new(backend: Backend) -> tantivy::Result<CatalogIndex> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        index.tokenizers().register(FOLDED, folding_analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(CatalogIndex {
            fold_sort_keys: backend == Backend::MySql,
            reader,
            writer: Mutex::new(writer),
            fields,
            orders: BrowseOrders::default(),
        })
    }

    /// Replaces what the index holds of `ids` by `books` (those of them
    /// still listed), visible to searches once committed.
    pub fn replace(&self, ids: &[i64], books: &[IndexedBook]) -> tantivy::Result<()> {
        let writer = self.writer.lock().expect("index writer lock poisoned");
        for id in ids {
            writer.delete_term(Term::from_field_i64(self.fields.id, *id));
        }
        let keyed = self.write(&writer, books)?;
        self.orders.replace(ids, keyed);
        Ok(())
    }

    /// Adds books known not to be in the index (a build).
    pub fn add(&self, books: &[IndexedBook]) -> tantivy::Result<()> {
        let writer = self.writer.lock().expect("index writer lock poisoned");
        let keyed = self.write(&writer, books)?;
        self.orders.replace(&[], keyed);
        Ok(())
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&self) -> tantivy::Result<()> {
        let mut writer = self.writer.lock().expect("index writer lock poisoned");
        self.orders.clear();
        writer.delete_all_documents()?;
        writer.commit()?;
        drop(writer);
        self.reader.reload()
    }

    /// Makes what was written visible to searches, all of it at once.
    pub fn commit(&self) -> tantivy::Result<()> {
        self.writer
            .lock()
            .expect("index writer lock poisoned")
            .commit()?;
        self.reader.reload()
    }

    pub fn books(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// How many segments a search reads (each adds its own lookups).
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// A page of the listing without a search that `request` asks for.
    pub fn browse(&self, request: PageRequest) -> Listing {
        self.orders.page(request)
    }

    /// What `book` sorts by, as the database orders it.
    fn sort_keys(&self, book: &IndexedBook) -> SortKeys {
        SortKeys {
            title: self.sort_key(&book.title).into(),
            author: self.sort_key(&book.author).into(),
            price_cents: book.price_cents,
        }
    }

    /// Adds `books` to the index (visible once committed); returns their
    /// ids and sort keys, for the listings.
    fn write(
        &self,
        writer: &IndexWriter,
        books: &[IndexedBook],
    ) -> tantivy::Result<Vec<(i64, SortKeys)>> {
        let f = self.fields;
        let mut keyed = Vec::with_capacity(books.len());
        for book in books {
            let keys = self.sort_keys(book);
            writer.add_document(doc!(
                f.id => book.id,
                f.words => format!("{} {}", book.title, book.author),
                f.title_key => keys.title.to_string(),
                f.title_start => starting_bytes(&keys.title),
                f.author_key => keys.author.to_string(),
                f.price => book.price_cents,
            ))?;
            keyed.push((book.id, keys));
        }
        Ok(keyed)
    }

    /// The books matching every word (each as typed or as the start of a
    /// longer word), `limit` of them from `offset` in the order `sort`.
    pub fn search(
        &self,
        words: &[String],
        sort: Sort,
        offset: usize,
        limit: usize,
    ) -> tantivy::Result<Hits> {
        let query = self.query(words);
        let top = TopDocs::with_limit(limit.max(1)).and_offset(offset);
        let (title, author) = (
            || (SortByString::for_field("title_key"), Order::Asc),
            || (SortByString::for_field("author_key"), Order::Asc),
        );
        let id = |order| (SortByStaticFastValue::<i64>::for_field("id"), order);
        let price = |order| (SortByStaticFastValue::<i64>::for_field("price"), order);
        match sort {
            // Equally relevant books by title, as far as its first eight
            // bytes tell them apart, then by id.
            Sort::Relevance => self.collect(
                &query,
                top,
                (
                    (SortBySimilarityScore, Order::Desc),
                    (
                        SortByStaticFastValue::<u64>::for_field("title_start"),
                        Order::Asc,
                    ),
                    id(Order::Asc),
                ),
                |(_, _, id)| *id,
            ),
            Sort::Title => self.collect(&query, top, (title(), id(Order::Asc)), |(_, id)| *id),
            Sort::Author => self.collect(
                &query,
                top,
                (author(), title(), id(Order::Asc)),
                |(_, _, id)| *id,
            ),
            Sort::PriceLow => self.collect(
                &query,
                top,
                (price(Order::Asc), id(Order::Asc)),
                |(_, id)| *id,
            ),
            Sort::PriceHigh => self.collect(
                &query,
                top,
                (price(Order::Desc), id(Order::Desc)),
                |(_, id)| *id,
            ),
            Sort::Newest => self.collect(&query, top, id(Order::Desc), |id| *id),
        }
    }

    fn collect<K: Clone + Send + Sync + std::fmt::Debug + 'static>(
        &self,
        query: &dyn Query,
        top: TopDocs,
        order: impl SortKeyComputer<SortKey = K> + Send + 'static,
        id_of: impl Fn(&K) -> Option<i64>,
    ) -> tantivy::Result<Hits> {
        let searcher = self.reader.searcher();
        let (matched, found) = searcher.search(query, &(Count, top.order_by(order)))?;
        let ids = found.iter().filter_map(|(key, _)| id_of(key)).collect();
        Ok(Hits { ids, matched })
    }

    /// Every word required, in the title or the author's name: the word
    /// itself (ranked by BM25) or a longer word it begins.
    fn query(&self, words: &[String]) -> Box<dyn Query> {
        let field = self.fields.words;
        let required = folded_words(words)
            .into_iter()
            .map(|word| {
                let exact = TermQuery::new(
                    Term::from_field_text(field, &word),
                    IndexRecordOption::WithFreqs,
                );
                let mut either: Vec<(Occur, Box<dyn Query>)> = vec![(
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(exact), EXACT_WORD_BOOST)),
                )];
                // The words it begins: the index's terms after it, up to it
                // followed by the last character there is.
                let longer = RangeQuery::new(
                    Bound::Excluded(Term::from_field_text(field, &word)),
                    Bound::Included(Term::from_field_text(
                        field,
                        &format!("{word}{}", char::MAX),
                    )),
                );
                let weaker = BoostQuery::new(Box::new(longer), BEGUN_WORD_BOOST);
                either.push((Occur::Should, Box::new(weaker)));
                (
                    Occur::Must,
                    Box::new(BooleanQuery::new(either)) as Box<dyn Query>,
                )
            })
            .collect();
        Box::new(BooleanQuery::new(required))
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(FOLDED)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: builder.add_i64_field("id", INDEXED | FAST),
        words: builder.add_text_field("words", words),
        title_key: builder.add_text_field("title_key", FAST),
        title_start: builder.add_u64_field("title_start", FAST),
        author_key: builder.add_text_field("author_key", FAST),
        price: builder.add_i64_field("price", FAST),
    };
    (builder.build(), fields)
}

fn folding_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// A key's first eight bytes, big-endian, shorter keys padded with zeros:
/// numbers in the order of the keys (up to ties within those bytes).
fn starting_bytes(key: &str) -> u64 {
    let mut start = [0u8; 8];
    let bytes = &key.as_bytes()[..key.len().min(8)];
    start[..bytes.len()].copy_from_slice(bytes);
    u64::from_be_bytes(start)
}

/// The words of a search as the index holds them (lower-case, folded).
fn folded_words(words: &[String]) -> Vec<String> {
    let mut analyzer = folding_analyzer();
    let mut folded = Vec::new();
    for word in words {
        let mut tokens = analyzer.token_stream(word);
        while let Some(token) = tokens.next() {
            if token.text.chars().all(char::is_alphanumeric) {
                folded.push(token.text.clone());
            }
        }
    }
    folded
}

impl CatalogIndex {
    /// What a title or a name sorts by: as the database orders it.
    fn sort_key(&self, text: &str) -> String {
        if !self.fold_sort_keys {
            return text.to_string();
        }
        let mut analyzer = TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build();
        let mut tokens = analyzer.token_stream(text);
        let mut key = String::new();
        while let Some(token) = tokens.next() {
            key.push_str(&token.text);
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(id: i64, title: &str, author: &str, price_cents: i64) -> IndexedBook {
        IndexedBook {
            id,
            title: title.into(),
            author: author.into(),
            price_cents,
        }
    }

    fn words(search: &str) -> Vec<String> {
        search.split(' ').map(str::to_string).collect()
    }

    fn index_of(books: &[IndexedBook]) -> CatalogIndex {
        let index = CatalogIndex::new(Backend::MySql).unwrap();
        index.add(books).unwrap();
        index.commit().unwrap();
        index
    }

    #[test]
    fn equally_relevant_books_come_by_title_then_id() {
        let index = index_of(&[
            book(1, "Crane River", "Ann", 500),
            book(2, "Alder River", "Ann", 500),
            book(3, "Birch River", "Ann", 500),
            book(4, "Alder River", "Ann", 500),
        ]);
        let found = index.search(&words("river"), Sort::Relevance, 0, 10);
        assert_eq!(found.unwrap().ids, [2, 4, 3, 1]);
    }

    #[test]
    fn starting_bytes_keep_the_keys_order() {
        let keys = ["", "a", "a harbour", "ab", "b", "harbor", "harbour", "zz"];
        for pair in keys.windows(2) {
            assert!(
                starting_bytes(pair[0]) < starting_bytes(pair[1]),
                "{pair:?}"
            );
        }
        assert_eq!(
            starting_bytes("harbour of the north"),
            starting_bytes("harbour of the south"),
            "past eight bytes, ties (broken by id)"
        );
    }

    #[test]
    fn every_word_is_required_as_typed_or_begun() {
        let index = index_of(&[
            book(1, "Notes on Rivers", "Ann Smith", 500),
            book(2, "River River", "Jo River", 700),
            book(3, "Cien años de soledad", "Gabriel García Márquez", 900),
        ]);
        let found = |search: &str| {
            index
                .search(&words(search), Sort::Relevance, 0, 10)
                .unwrap()
        };
        assert_eq!(
            found("river").ids,
            [2, 1],
            "the word itself before a longer one"
        );
        assert_eq!(found("river smith").ids, [1]);
        assert_eq!(found("anos").ids, [3]);
        assert_eq!(found("MÁRQ").ids, [3]);
        assert_eq!(found("rivers notes").matched, 1);
        assert!(found("nothing").ids.is_empty());
    }

    #[test]
    fn sorts_end_with_the_id_and_pages_follow_each_other() {
        let index = index_of(&[
            book(1, "b harbour", "Zed", 500),
            book(2, "a harbour", "Ann", 500),
            book(3, "C harbour", "ann", 300),
            book(4, "Éa harbour", "Bo", 900),
        ]);
        let sorted = |sort| index.search(&words("harbour"), sort, 0, 10).unwrap().ids;
        assert_eq!(sorted(Sort::Title), [2, 1, 3, 4], "case and accents aside");
        assert_eq!(sorted(Sort::Author), [2, 3, 4, 1], "then the title");
        assert_eq!(sorted(Sort::PriceLow), [3, 1, 2, 4], "ties by id");
        assert_eq!(
            sorted(Sort::PriceHigh),
            [4, 2, 1, 3],
            "ties by id, descending"
        );
        assert_eq!(sorted(Sort::Newest), [4, 3, 2, 1]);
        let second = index.search(&words("harbour"), Sort::Title, 2, 2).unwrap();
        assert_eq!(
            second,
            Hits {
                ids: vec![3, 4],
                matched: 4
            }
        );
    }

    #[test]
    fn a_replaced_book_is_found_by_its_new_words_only_and_a_deleted_one_not_at_all() {
        let index = index_of(&[
            book(1, "Zanzibar", "Ida", 500),
            book(2, "Other", "Ida", 500),
        ]);
        index
            .replace(&[1, 2], &[book(1, "Quokka", "Ida", 500)])
            .unwrap();
        index.commit().unwrap();
        let found = |search: &str| {
            index
                .search(&words(search), Sort::Title, 0, 10)
                .unwrap()
                .ids
        };
        assert_eq!(found("quokka"), [1]);
        assert!(found("zanzibar").is_empty());
        assert!(found("other").is_empty(), "2 is gone from the database");
        assert_eq!(index.books(), 1);
    }
}
