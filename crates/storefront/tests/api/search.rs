//! Search from each replica's index: found as typed (accents folded, words
//! begun), in the database's order, fresh on every replica within a second,
//! the seller's own change at once, and the database's answer while an
//! index cannot give one.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use reqwest::StatusCode;

use crate::common::skip_because;
use crate::helpers::{Shopper, TestApp, backends, spawn_app, spawn_app_with, spawn_on};

/// Every freshness wait in this file; the promise is one second.
const FRESH_WITHIN: Duration = Duration::from_secs(1);

/// The books a catalog page shows, in its order.
fn ids_on(html: &str) -> Vec<i64> {
    static CARD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"<h2><a href="/book/(\d+)">"#).unwrap());
    CARD.captures_iter(html)
        .map(|c| c[1].parse().unwrap())
        .collect()
}

async fn search(shopper: &Shopper, words: &str, sort: &str) -> Vec<i64> {
    let query =
        serde_urlencoded::to_string([("q", words), ("sort", sort), ("per_page", "96")]).unwrap();
    let (status, html) = shopper.page(&format!("/book/catalog?{query}")).await;
    assert_eq!(status, StatusCode::OK, "searching {words}");
    ids_on(&html)
}

/// How long until `words` finds `book` (or, with `found == false`, no
/// longer does) for `shopper`; fails past [`FRESH_WITHIN`].
async fn settles(shopper: &Shopper, words: &str, book: i64, found: bool) -> Duration {
    let started = Instant::now();
    loop {
        if search(shopper, words, "relevance").await.contains(&book) == found {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < FRESH_WITHIN,
            "\"{words}\" {} book {book} after {:?}",
            if found {
                "does not find"
            } else {
                "still finds"
            },
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn list(app: &TestApp, seller: &Shopper, title: &str, author: &str, price: &str) -> i64 {
    let response = seller
        .post(
            "/book/add_book",
            &[
                ("title", title),
                ("author", author),
                ("description", "Searched for."),
                ("price", price),
                ("stock", "3"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "listing {title}");
    sqlx::query_scalar("SELECT id FROM books WHERE title = ? ORDER BY id DESC LIMIT 1")
        .bind(title)
        .fetch_one(&app.pool())
        .await
        .unwrap()
}

/// A shop whose replica answers from its index, a second replica of it
/// that answers from the database alone, and `books` (title, author,
/// price) listed by one seller, their ids in that order.
async fn index_and_database(books: &[(&str, &str, &str)]) -> (TestApp, TestApp, Shopper, Vec<i64>) {
    let app = spawn_app().await;
    let by_database = spawn_on(&app.database_url, app.redis_url.clone(), |c| {
        c.search.index = false;
    })
    .await;
    let seller = app.shopper("Seller").await;
    let mut listed = Vec::new();
    for (title, author, price) in books {
        listed.push(list(&app, &seller, title, author, price).await);
    }
    (app, by_database, seller, listed)
}

#[tokio::test]
async fn a_search_finds_words_as_typed_with_accents_folded_and_operators_as_spaces() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let cien = list(
        &app,
        &seller,
        "Cien años de soledad",
        "Gabriel García Márquez",
        "12.00",
    )
    .await;
    let soledades = list(&app, &seller, "Soledades", "Luis de Góngora", "9.00").await;
    let pride = list(&app, &seller, "Pride and Prejudice", "Jane Austen", "7.00").await;
    let visitor = app.visitor();
    settles(&visitor, "pride", pride, true).await;

    assert_eq!(
        search(&visitor, "anos", "relevance").await,
        [cien],
        "ñ folded to n"
    );
    assert_eq!(search(&visitor, "CIEN Soled", "relevance").await, [cien]);
    assert_eq!(
        search(&visitor, "garcia marquez", "relevance").await,
        [cien],
        "authors too"
    );
    let mut soled = search(&visitor, "soled", "title").await;
    assert_eq!(soled, [cien, soledades], "a word begun, in title order");
    soled = search(&visitor, "soledad", "relevance").await;
    assert_eq!(soled[0], cien, "the word itself ranks before a longer one");
    assert_eq!(
        search(&visitor, "+pride -prejudice \"austen*\"", "relevance").await,
        [pride]
    );
    assert_eq!(
        search(&visitor, "prid* OR soled", "relevance").await,
        Vec::<i64>::new()
    );
    assert!(
        app.metric("storefront_catalog_searches_total{source=\"index\"}")
            .await
            >= 7.0,
        "these searches were the index's"
    );
}

#[tokio::test]
async fn the_index_and_the_database_list_the_same_books_in_the_same_order() {
    let (app, by_database, _, listed) = index_and_database(&[
        ("The Quiet Harbour", "Ann Brook", "10.00"),
        ("Harbour Lights", "Zed Quill", "4.50"),
        ("A harbour in winter", "Ann Brook", "10.00"),
        ("Harbourmaster", "Lee Ames", "22.00"),
        ("Quiet Waters", "Harbour Smith", "4.50"),
        ("Éclair of the Harbour", "Ann Brook", "6.00"),
    ])
    .await;
    let visitor = app.visitor();
    settles(&visitor, "harbour", *listed.last().unwrap(), true).await;
    let other = visitor.on(&by_database);
    for words in ["harbour", "quiet", "ann brook", "harb"] {
        for sort in ["title", "author", "price", "price_desc", "newest"] {
            assert_eq!(
                search(&visitor, words, sort).await,
                search(&other, words, sort).await,
                "\"{words}\" sorted by {sort}: index, then database"
            );
        }
        let mut index = search(&visitor, words, "relevance").await;
        let mut database = search(&other, words, "relevance").await;
        index.sort_unstable();
        database.sort_unstable();
        assert_eq!(index, database, "\"{words}\" by relevance: the same books");
    }
    assert!(
        by_database
            .metric("storefront_catalog_searches_total{source=\"index\"}")
            .await
            == 0.0
    );
}

/// A listing without a search, every page of it in `sort`, followed by its
/// "next" links from the first page and then by its "previous" links back:
/// each page's books and its pager's text and links.
async fn every_page(shopper: &Shopper, sort: &str) -> Vec<(Vec<i64>, String)> {
    static PAGER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"(?s)<nav class="pager".*?</nav>"#).unwrap());
    static LINK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"href="([^"]+)" rel="(prev|next)""#).unwrap());
    let mut pages = Vec::new();
    let mut path = format!("/book/catalog?sort={sort}&per_page=3");
    for direction in ["next", "prev"] {
        loop {
            let (status, html) = shopper.page(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let pager = PAGER.find(&html).map_or("", |m| m.as_str()).to_string();
            let link = LINK
                .captures_iter(&pager)
                .find(|c| &c[2] == direction)
                .map(|c| c[1].replace("&#38;", "&").replace("&amp;", "&"));
            pages.push((ids_on(&html), pager));
            match link {
                Some(next) => path = next,
                None => break,
            }
            assert!(pages.len() < 100, "the pages of {sort} never end");
        }
    }
    pages
}

#[tokio::test]
async fn pages_without_a_search_come_from_the_index_as_the_database_gives_them() {
    // Ties in each order (a title, an author, a price), broken by the id.
    let (app, by_database, seller, listed) = index_and_database(&[
        ("Zebra Crossing", "Ann Brook", "10.00"),
        ("Éclair Days", "ann brook", "4.50"),
        ("zebra crossing", "Lee Ames", "10.00"),
        ("Aardvark", "Zed Quill", "22.00"),
        ("Mango Season", "Lee Ames", "4.50"),
        ("Éclair Days", "Bo Reyes", "7.25"),
        ("Quinces", "ANN BROOK", "10.00"),
    ])
    .await;
    let visitor = app.visitor();
    settles(&visitor, "aardvark", listed[3], true).await;
    let other = visitor.on(&by_database);
    let sorts = ["title", "author", "price", "price_desc", "newest"];
    for sort in sorts {
        let from_index = every_page(&visitor, sort).await;
        assert!(from_index.len() > 2, "{sort}: more than a page each way");
        assert_eq!(
            from_index,
            every_page(&other, sort).await,
            "{sort}: every page, then back: index, then database"
        );
    }
    let listings = "storefront_catalog_listings_total{source=\"index\"}";
    assert!(app.metric(listings).await >= 10.0, "the index's listings");
    assert!(by_database.metric(listings).await == 0.0);

    // A change moves the book in the listing at once for its seller.
    let edit = seller
        .post(
            &format!("/book/edit_book/{}", listed[3]),
            &[
                ("title", "Aardvark"),
                ("author", "Zed Quill"),
                ("description", "Dearer."),
                ("price", "999.00"),
                ("stock", "3"),
            ],
        )
        .await;
    assert_eq!(edit.status(), StatusCode::SEE_OTHER);
    let (_, html) = seller
        .page("/book/catalog?sort=price_desc&per_page=4")
        .await;
    assert_eq!(ids_on(&html)[0], listed[3], "the dearest now");
}

#[tokio::test]
async fn a_database_restored_under_a_running_replica_is_searched_as_restored() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let before = list(&app, &seller, "Antediluvian Almanac", "Ida Wren", "8.00").await;
    let visitor = app.visitor();
    settles(&visitor, "antediluvian", before, true).await;
    // As a restore leaves it: other books, and a feed that stands before
    // where this replica's index had got to.
    for statement in [
        "DELETE FROM catalog_changes",
        "UPDATE books SET title = 'Postdiluvian Almanac' WHERE title = 'Antediluvian Almanac'",
    ] {
        sqlx::query(statement).execute(&app.pool()).await.unwrap();
    }
    settles(&visitor, "postdiluvian", before, true).await;
    settles(&visitor, "antediluvian", before, false).await;
}

/// Across replicas: these need MySQL and Redis, so the embedded run (which
/// skips `fleet::`) leaves them out.
mod fleet {
    use super::*;

    /// Two replicas of one shop (MySQL and Redis), the second adjusted.
    async fn two_replicas(
        adjust_second: impl FnOnce(&mut storefront::app::config::Config),
    ) -> Option<(TestApp, TestApp)> {
        let (mysql, redis) = backends();
        if mysql.is_none() || redis.is_none() {
            skip_because(
                "searching across replicas needs TEST_MYSQL_URL and TEST_REDIS_URL (scripts/test sets them)",
            );
            return None;
        }
        let a = spawn_app_with(|c| c.replica_id = "replica-a".into()).await;
        let b = spawn_on(&a.database_url, a.redis_url.clone(), |c| {
            c.replica_id = "replica-b".into();
            adjust_second(c);
        })
        .await;
        Some((a, b))
    }

    #[tokio::test]
    async fn a_book_added_edited_or_deleted_on_one_replica_is_found_so_on_the_other_within_a_second()
     {
        let Some((a, b)) = two_replicas(|_| {}).await else {
            return;
        };
        let seller = a.shopper("Seller").await;
        let visitor = b.visitor();
        let book = list(&a, &seller, "Zanzibar Chronicles", "Ida Wren", "8.00").await;
        let mut took = vec![settles(&visitor, "zanzibar", book, true).await];
        let newest = || async {
            let (_, html) = visitor.page("/book/catalog?sort=newest&per_page=5").await;
            ids_on(&html).first().copied()
        };
        assert_eq!(newest().await, Some(book), "the listing too, once searched");

        let edit = seller
            .post(
                &format!("/book/edit_book/{book}"),
                &[
                    ("title", "Quokka Chronicles"),
                    ("author", "Ida Wren"),
                    ("description", "Renamed."),
                    ("price", "8.00"),
                    ("stock", "3"),
                ],
            )
            .await;
        assert_eq!(edit.status(), StatusCode::SEE_OTHER);
        took.push(settles(&visitor, "quokka", book, true).await);
        took.push(settles(&visitor, "zanzibar", book, false).await);

        let delete = seller.post(&format!("/book/delete_book/{book}"), &[]).await;
        assert_eq!(delete.status(), StatusCode::SEE_OTHER);
        // The listing on the other replica, without a search first.
        let started = Instant::now();
        while newest().await == Some(book) {
            assert!(
                started.elapsed() < FRESH_WITHIN,
                "the newest listing still shows the deleted book after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took.push(started.elapsed());
        took.push(settles(&visitor, "quokka", book, false).await);
        println!("found on the other replica after {took:?}");
        assert!(
            b.metric("storefront_catalog_listings_total{source=\"index\"}")
                .await
                > 0.0,
            "the other replica's listings came from its index"
        );
        assert!(
            b.metric("storefront_catalog_searches_total{source=\"index\"}")
                .await
                > 0.0
        );
    }

    #[tokio::test]
    async fn the_seller_finds_their_own_change_at_once_on_another_replica() {
        let Some((a, b)) = two_replicas(|_| {}).await else {
            return;
        };
        let seller = a.shopper("Seller").await;
        for n in 0..5 {
            let title = format!("Ostrakon Volume{n}");
            let book = list(&a, &seller, &title, "Ida Wren", "8.00").await;
            let next_request =
                search(&seller.on(&b), &format!("ostrakon volume{n}"), "relevance").await;
            assert_eq!(
                next_request,
                [book],
                "the seller's very next search, on the other replica"
            );
        }
    }

    #[tokio::test]
    async fn a_replica_whose_index_falls_behind_answers_from_the_database_and_says_so() {
        let Some((a, b)) = two_replicas(|c| {
            // The feed is not read again for an hour: the index falls behind.
            c.search.poll = Duration::from_secs(3600);
            c.search.max_lag = Duration::from_millis(300);
        })
        .await
        else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        let seller = a.shopper("Seller").await;
        let book = list(&a, &seller, "Yellowhammer Songs", "Ida Wren", "8.00").await;
        let visitor = b.visitor();
        assert_eq!(search(&visitor, "yellowhammer", "relevance").await, [book]);
        let (status, ready) = visitor.page("/readyz").await;
        assert_eq!(status, StatusCode::OK, "behind is not unready");
        assert!(ready.contains("search: database (index behind)"), "{ready}");
        assert!(
            b.metric("storefront_catalog_searches_total{source=\"database\"}")
                .await
                >= 1.0
        );
        assert!(
            b.metric("storefront_search_index{figure=\"serving\"}")
                .await
                == 0.0
        );
        assert!(b.metric("storefront_search_index_behind_seconds").await >= 0.3);
        // The replica that follows the feed still answers from its index.
        let (_, ready) = a.visitor().page("/readyz").await;
        assert!(ready.contains("search: index ("), "{ready}");
    }
}
