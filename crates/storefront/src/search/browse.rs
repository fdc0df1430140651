//! The catalog's orders without a search, kept in memory beside the index.
//!
//! A listing with no search words is a walk along one order of every book
//! (by title, author, price or newest) from its start, from a typed page's
//! offset, or from the book a keyset link names. Sorting every book for each
//! page, as a tantivy collector would, costs a visit of every book; ordered
//! sets give a page in O(log n + page), as the database's B-tree indexes do,
//! without asking the database. They are written by the same builds and
//! feed as the index, with the same sort keys, so they order books exactly
//! as the index's sorts do.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use crate::store::catalog::{COUNT_CAP, Cursor, Sort};

/// What a book sorts by, in the database's order (see `CatalogIndex::sort_key`).
#[derive(Debug, Clone)]
pub struct SortKeys {
    pub title: Arc<str>,
    pub author: Arc<str>,
    pub price_cents: i64,
}

/// A page of a listing: its books' ids in the listing's order.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    pub ids: Vec<i64>,
    /// Whether more books follow the page in the direction it was read.
    pub more: bool,
    /// Whether the page was read from its cursor towards the listing's
    /// start (a "previous" link): the page it came from follows it.
    pub backwards: bool,
    /// With a cursor: how many books come before its book in the listing,
    /// counted no further than one past [`COUNT_CAP`].
    pub before_anchor: Option<i64>,
    /// Every book listed.
    pub total: usize,
}

/// Where a page starts.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub sort: Sort,
    pub cursor: Option<Cursor>,
    /// Books skipped when there is no cursor (or its book is gone).
    pub offset: usize,
    pub per_page: usize,
}

#[derive(Default)]
pub struct BrowseOrders {
    orders: RwLock<Orders>,
}

/// One entry per book in each order; every key ends with the id, so each
/// order is total (what keyset paging needs).
#[derive(Default)]
struct Orders {
    /// Every book's keys by id: what a replaced book's entries are found
    /// by, and the newest order (read backwards).
    by_id: BTreeMap<i64, SortKeys>,
    by_title: BTreeSet<(Arc<str>, i64)>,
    by_author: BTreeSet<(Arc<str>, Arc<str>, i64)>,
    /// Read forwards for the cheapest first, backwards for the dearest.
    by_price: BTreeSet<(i64, i64)>,
    /// Each distinct key once, shared by every book that has it: authors
    /// repeat, and so do titles (a third of the memory at a million
    /// generated books was copies of the same strings).
    keys: HashSet<Arc<str>>,
}

impl BrowseOrders {
    /// Takes `ids` out of every order and puts `books` in, at once: a
    /// page is read before or after, never between.
    pub fn replace(&self, ids: &[i64], books: Vec<(i64, SortKeys)>) {
        let mut orders = self.write();
        for id in ids {
            orders.remove(*id);
        }
        for (id, keys) in books {
            orders.remove(id);
            orders.insert(id, keys);
        }
    }

    pub fn clear(&self) {
        *self.write() = Orders::default();
    }

    /// The page `request` asks for; a cursor whose book is no longer listed
    /// is ignored (the page starts at the offset), as the database does.
    pub fn page(&self, request: PageRequest) -> Listing {
        let orders = self.orders.read().expect("browse orders lock poisoned");
        let anchor = match (request.sort, request.cursor) {
            (Sort::Relevance, _) | (_, None) => None,
            (_, Some(Cursor::After(id) | Cursor::Before(id))) => {
                orders.by_id.get(&id).map(|keys| (id, keys))
            }
        };
        let backwards = anchor.is_some() && matches!(request.cursor, Some(Cursor::Before(_)));
        let walk = Walk {
            backwards,
            offset: if anchor.is_some() { 0 } else { request.offset },
            // One more than the page: whether more follow.
            limit: request.per_page + 1,
        };
        let title = |(id, keys): (i64, &SortKeys)| (keys.title.clone(), id);
        let author = |(id, keys): (i64, &SortKeys)| (keys.author.clone(), keys.title.clone(), id);
        let price = |(id, keys): (i64, &SortKeys)| (keys.price_cents, id);
        let (mut ids, before_anchor) = match request.sort {
            Sort::Relevance | Sort::Title => {
                walk.along(&orders.by_title, false, anchor.map(title), |k| k.1)
            }
            Sort::Author => walk.along(&orders.by_author, false, anchor.map(author), |k| k.2),
            Sort::PriceLow => walk.along(&orders.by_price, false, anchor.map(price), |k| k.1),
            Sort::PriceHigh => walk.along(&orders.by_price, true, anchor.map(price), |k| k.1),
            Sort::Newest => walk.along_ids(&orders.by_id, anchor.map(|(id, _)| id)),
        };
        let more = ids.len() > request.per_page;
        ids.truncate(request.per_page);
        if backwards {
            ids.reverse();
        }
        Listing {
            ids,
            more,
            backwards,
            before_anchor,
            total: orders.by_id.len(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Orders> {
        self.orders.write().expect("browse orders lock poisoned")
    }
}

impl Orders {
    fn insert(&mut self, id: i64, mut keys: SortKeys) {
        keys.title = self.shared(keys.title);
        keys.author = self.shared(keys.author);
        self.by_title.insert((keys.title.clone(), id));
        self.by_author
            .insert((keys.author.clone(), keys.title.clone(), id));
        self.by_price.insert((keys.price_cents, id));
        self.by_id.insert(id, keys);
    }

    fn remove(&mut self, id: i64) {
        let Some(keys) = self.by_id.remove(&id) else {
            return;
        };
        self.by_title.remove(&(keys.title.clone(), id));
        self.by_author
            .remove(&(keys.author.clone(), keys.title.clone(), id));
        self.by_price.remove(&(keys.price_cents, id));
        self.release(keys.title);
        self.release(keys.author);
    }

    /// The one copy of `key` the orders keep.
    fn shared(&mut self, key: Arc<str>) -> Arc<str> {
        match self.keys.get(&key) {
            Some(kept) => kept.clone(),
            None => {
                self.keys.insert(key.clone());
                key
            }
        }
    }

    /// Forgets `key` once no book has it (its last holders: the set and this).
    fn release(&mut self, key: Arc<str>) {
        if Arc::strong_count(&key) == 2 {
            self.keys.remove(&key);
        }
    }
}

/// How a page is read from an order.
struct Walk {
    /// Towards the start of the listing, from the anchor (a "previous" link).
    backwards: bool,
    offset: usize,
    limit: usize,
}

impl Walk {
    /// The page's ids from `order` (read backwards when `descending`), in
    /// the listing's order, and with an anchor the books before it.
    fn along<K: Ord>(
        &self,
        order: &BTreeSet<K>,
        descending: bool,
        anchor: Option<K>,
        id_of: impl Fn(&K) -> i64,
    ) -> (Vec<i64>, Option<i64>) {
        let range = |bounds: (Bound<&K>, Bound<&K>)| order.range(bounds);
        self.read(range, descending, anchor.as_ref(), id_of)
    }

    /// The newest order: ids, highest first.
    fn along_ids(
        &self,
        order: &BTreeMap<i64, SortKeys>,
        anchor: Option<i64>,
    ) -> (Vec<i64>, Option<i64>) {
        let range = |bounds: (Bound<&i64>, Bound<&i64>)| order.range(bounds).map(|(id, _)| id);
        self.read(range, true, anchor.as_ref(), |id| *id)
    }

    /// Ids in the order the walk meets them, and the books before the anchor.
    fn read<'a, K: Ord + 'a, I: DoubleEndedIterator<Item = &'a K>>(
        &self,
        range: impl Fn((Bound<&K>, Bound<&K>)) -> I,
        descending: bool,
        anchor: Option<&K>,
        id_of: impl Fn(&K) -> i64,
    ) -> (Vec<i64>, Option<i64>) {
        // The listing runs along the order's keys unless `descending`; a
        // "previous" page walks against the listing.
        let ascending = descending == self.backwards;
        let page = walk(&range, ascending, anchor, self.offset, self.limit);
        let ids = page.into_iter().map(&id_of).collect();
        let before_anchor = anchor.map(|anchor| {
            let counted = walk(&range, descending, Some(anchor), 0, COUNT_CAP as usize + 1);
            counted.len() as i64
        });
        (ids, before_anchor)
    }
}

/// Up to `take` keys after skipping `skip`, from past `anchor` (or the
/// order's start or end), ascending or descending.
fn walk<'a, K: Ord + 'a, I: DoubleEndedIterator<Item = &'a K>>(
    range: &impl Fn((Bound<&K>, Bound<&K>)) -> I,
    ascending: bool,
    anchor: Option<&K>,
    skip: usize,
    take: usize,
) -> Vec<&'a K> {
    let bounds = match (anchor, ascending) {
        (None, _) => (Bound::Unbounded, Bound::Unbounded),
        (Some(anchor), true) => (Bound::Excluded(anchor), Bound::Unbounded),
        (Some(anchor), false) => (Bound::Unbounded, Bound::Excluded(anchor)),
    };
    if ascending {
        range(bounds).skip(skip).take(take).collect()
    } else {
        range(bounds).rev().skip(skip).take(take).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(title: &str, author: &str, price_cents: i64) -> SortKeys {
        SortKeys {
            title: title.into(),
            author: author.into(),
            price_cents,
        }
    }

    /// Six books whose orders all differ, with ties broken by id.
    fn orders() -> BrowseOrders {
        let orders = BrowseOrders::default();
        for (id, title, author, price) in [
            (1, "c", "bo", 300),
            (2, "a", "zed", 500),
            (3, "b", "ann", 300),
            (4, "a", "ann", 900),
            (5, "e", "bo", 100),
            (6, "d", "ann", 500),
        ] {
            orders.replace(&[], vec![(id, keys(title, author, price))]);
        }
        orders
    }

    fn request(sort: Sort, cursor: Option<Cursor>, offset: usize, per_page: usize) -> PageRequest {
        PageRequest {
            sort,
            cursor,
            offset,
            per_page,
        }
    }

    fn whole(orders: &BrowseOrders, sort: Sort) -> Vec<i64> {
        orders.page(request(sort, None, 0, 100)).ids
    }

    #[test]
    fn each_order_ends_with_the_id() {
        let orders = orders();
        assert_eq!(whole(&orders, Sort::Title), [2, 4, 3, 1, 6, 5]);
        assert_eq!(whole(&orders, Sort::Author), [4, 3, 6, 1, 5, 2]);
        assert_eq!(whole(&orders, Sort::PriceLow), [5, 1, 3, 2, 6, 4]);
        assert_eq!(whole(&orders, Sort::PriceHigh), [4, 6, 2, 3, 1, 5]);
        assert_eq!(whole(&orders, Sort::Newest), [6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn cursors_lead_to_the_neighbouring_pages_and_count_the_books_before() {
        let orders = orders();
        for sort in Sort::BROWSING.iter().copied() {
            let all = whole(&orders, sort);
            let first = orders.page(request(sort, None, 0, 2));
            assert_eq!(first.ids, all[..2], "{sort:?}");
            assert!(first.more && !first.backwards && first.before_anchor.is_none());

            let after = Some(Cursor::After(all[1]));
            let second = orders.page(request(sort, after, 40, 2));
            assert_eq!(second.ids, all[2..4], "{sort:?}: the offset is ignored");
            assert_eq!(second.before_anchor, Some(1), "{sort:?}");
            assert!(second.more);

            let last = orders.page(request(sort, Some(Cursor::After(all[3])), 0, 2));
            assert_eq!(last.ids, all[4..], "{sort:?}");
            assert!(!last.more, "{sort:?}: nothing after the last");

            let before = Some(Cursor::Before(all[4]));
            let back = orders.page(request(sort, before, 0, 2));
            assert_eq!(back.ids, all[2..4], "{sort:?}: in the listing's order");
            assert!(back.backwards && back.more);
            assert_eq!(back.before_anchor, Some(4), "{sort:?}");
        }
    }

    #[test]
    fn a_cursor_whose_book_is_gone_starts_at_the_offset() {
        let orders = orders();
        orders.replace(&[3], Vec::new());
        let page = orders.page(request(Sort::Title, Some(Cursor::Before(3)), 2, 2));
        assert_eq!(page.ids, [1, 6]);
        assert_eq!(
            (page.backwards, page.before_anchor, page.total),
            (false, None, 5)
        );
    }

    #[test]
    fn a_book_put_again_moves_in_every_order() {
        let orders = orders();
        orders.replace(&[], vec![(5, keys("0", "aaa", 1_000))]);
        assert_eq!(whole(&orders, Sort::Title)[0], 5);
        assert_eq!(whole(&orders, Sort::Author)[0], 5);
        assert_eq!(whole(&orders, Sort::PriceHigh)[0], 5);
        assert_eq!(orders.page(request(Sort::Title, None, 0, 10)).total, 6);
        orders.clear();
        assert!(whole(&orders, Sort::Newest).is_empty());
    }

    #[test]
    fn a_key_is_kept_once_and_forgotten_with_its_last_book() {
        let orders = orders();
        let kept = |orders: &BrowseOrders| orders.write().keys.len();
        // Titles a b c d e, authors ann bo zed.
        assert_eq!(kept(&orders), 8);
        orders.replace(&[2], Vec::new());
        assert_eq!(kept(&orders), 7, "zed's only book is gone; title a stays");
        orders.replace(&[4], Vec::new());
        assert_eq!(kept(&orders), 6, "and title a with its last book");
    }
}
