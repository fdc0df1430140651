use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{
    Shopper, catalog_form_for, every_order_holds, fresh_buy_key, hidden_value_in, location,
    set_field, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn the_seeded_shop_shows_the_classics_with_search_sorting_and_pages() {
    let app = spawn_app_with(|c| c.seed_demo_if_empty = true).await;
    let visitor = app.visitor();
    let total = app.count("SELECT COUNT(*) FROM books").await;
    assert!(total >= 100, "seeded {total} books");

    let (status, first) = visitor.page("/book/catalog").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first.matches("class=\"card\"").count(),
        24,
        "default page size"
    );
    assert!(first.contains(&format!("{total} books")));
    assert!(first.contains("Page 1 of"));

    let (_, all) = visitor.page("/book/catalog?per_page=100").await;
    assert_eq!(all.matches("class=\"card\"").count(), 100);
    let (_, capped) = visitor.page("/book/catalog?per_page=100000").await;
    assert_eq!(
        capped.matches("class=\"card\"").count(),
        100,
        "page size is capped"
    );

    let (_, austen) = visitor.page("/book/catalog?q=austen").await;
    assert!(austen.contains("Pride and Prejudice"));
    assert!(!austen.contains("Moby-Dick"));
    let (_, by_title) = visitor.page("/book/catalog?q=MOBY").await;
    assert!(by_title.contains("Moby-Dick"), "search ignores case");
    let (_, none) = visitor.page("/book/catalog?q=%25%25%25").await;
    assert!(none.contains("No books found"), "% is matched literally");

    let (_, cheap) = visitor.page("/book/catalog?sort=price&per_page=100").await;
    let (_, dear) = visitor
        .page("/book/catalog?sort=price_desc&per_page=100")
        .await;
    let first_price = |html: &str| {
        html.split("class=\"price\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string()
    };
    let (low, high) = (first_price(&cheap), first_price(&dear));
    let cents = |p: &str| {
        p.trim_start_matches('$')
            .replace('.', "")
            .parse::<i64>()
            .unwrap()
    };
    assert!(
        cents(&low) < cents(&high),
        "{low} should be cheaper than {high}"
    );

    // Junk in the query string falls back to defaults instead of failing.
    let (status, _) = visitor
        .page("/book/catalog?page=abc&per_page=-3&sort=drop")
        .await;
    assert_eq!(status, StatusCode::OK);
    // A page past the end leads to the last page, not to "Page 999 of 5".
    let pages = (total + 23) / 24;
    let past_the_end = visitor.get("/book/catalog?page=999").await;
    assert_eq!(past_the_end.status(), StatusCode::SEE_OTHER);
    let to = location(&past_the_end);
    assert!(to.contains(&format!("page={pages}")), "{to}");
    let (_, last) = visitor.page(&to).await;
    assert!(last.contains(&format!("Page {pages} of {pages}")), "{last}");
    assert!(!last.contains("No books found"), "{last}");
    let nothing = visitor.get("/book/catalog?q=zzzqqq&page=999").await;
    let to = location(&nothing);
    assert!(to.contains("page=1"), "{to}");
    let (_, nothing) = visitor.page(&to).await;
    assert!(nothing.contains("No books found"), "{nothing}");
    assert!(!nothing.contains("Page 999"), "{nothing}");
}

#[tokio::test]
async fn anonymous_visitors_see_books_but_no_buy_forms() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Visible", "12.50", "4").await;
    let (_, html) = app.visitor().page("/book/catalog").await;
    assert!(html.contains("Visible") && html.contains("$12.50") && html.contains("4 available"));
    assert!(!html.contains(&format!("action=\"/buy/{book}\"")));
    let (_, buyer_view) = app.shopper("Buyer").await.page("/book/catalog").await;
    assert!(buyer_view.contains(&format!("action=\"/buy/{book}\"")));
    assert!(
        !buyer_view.contains("name=\"price\""),
        "prices are never sent by the form"
    );
}

#[tokio::test]
async fn a_book_page_shows_the_book_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "The Page", "3.99", "0").await;
    let visitor = app.visitor();
    let (status, html) = visitor.page(&format!("/book/{book}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<h1>The Page</h1>")
            && html.contains("$3.99")
            && html.contains("Out of stock")
    );
    for path in [
        "/book/999999",
        "/book/abc",
        "/book/-1",
        "/book/0",
        "/book/999999/cover.svg",
    ] {
        let (status, html) = visitor.page(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("Not found"), "a friendly page for {path}");
    }
}

#[tokio::test]
async fn hostile_titles_are_shown_as_text() {
    let app = spawn_app().await;
    let seller = app.shopper("Mallory").await;
    let book = app
        .listed_book(&seller, "<script>alert('x')</script>", "1.00", "1")
        .await;
    let visitor = app.visitor();
    for path in ["/book/catalog".to_string(), format!("/book/{book}")] {
        let (_, html) = visitor.page(&path).await;
        assert!(
            !html.contains("<script>alert"),
            "{path} must escape the title"
        );
        assert!(
            html.contains("&#60;script&#62;alert"),
            "{path} shows the title as text"
        );
    }
    // Logged in, each card also names the title in its quantity label, which
    // the page writes escaped into a message prepared once per page.
    let buyer = app.shopper("Bob").await;
    let (_, html) = buyer.page("/book/catalog").await;
    assert!(
        !html.contains("<script>alert"),
        "the logged-in catalog escapes it"
    );
    assert!(
        html.contains("Quantity of &#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;</label>"),
        "the quantity label shows the title as text"
    );
    let cover = visitor.get(&format!("/book/{book}/cover.svg")).await;
    assert_eq!(cover.headers()["content-type"], "image/svg+xml");
    let svg = cover.text().await.unwrap();
    assert!(svg.starts_with("<svg") && !svg.contains("<script>"));
}

#[tokio::test]
async fn the_home_page_links_the_areas() {
    let app = spawn_app().await;
    let (status, html) = app.visitor().page("/").await;
    assert_eq!(status, StatusCode::OK);
    for link in [
        "/book/catalog",
        "/book/my_books",
        "/login",
        "/register",
        "/static/style.css",
    ] {
        assert!(html.contains(link), "home links {link}");
    }
    let css = app.visitor().get("/static/style.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        css.text()
            .await
            .unwrap()
            .contains("@media (max-width: 640px)")
    );
}

#[tokio::test]
async fn the_catalog_shows_stock_changes_at_once() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Moving Stock", "5.00", "3").await;
    let visitor = app.visitor();
    assert!(
        visitor
            .page("/book/catalog")
            .await
            .1
            .contains("3 available")
    );
    let buyer = app.shopper("Buyer").await;
    let order = buyer.buy_ok(book, "2").await;
    assert!(
        visitor
            .page("/book/catalog")
            .await
            .1
            .contains("1 available")
    );
    buyer.post(&format!("/orders/{order}/cancel"), &[]).await;
    assert!(
        visitor
            .page(&format!("/book/{book}"))
            .await
            .1
            .contains("3 available")
    );
    seller.post(&format!("/book/delete_book/{book}"), &[]).await;
    assert_eq!(
        visitor.page(&format!("/book/{book}")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_cards_quantity_field_allows_what_one_order_may_take() {
    let app = spawn_app_with(|c| c.limits.held_per_title = 4).await;
    let seller = app.shopper("Seller").await;
    let plenty = app.listed_book(&seller, "Plenty Left", "5.00", "50").await;
    let few = app.listed_book(&seller, "Two Left", "5.00", "2").await;
    let buyer = app.shopper("Buyer").await;
    let (_, html) = buyer.page("/book/catalog?sort=newest").await;
    let field = |id: i64| {
        let at = html
            .find(&format!("id=\"qty-{id}\""))
            .unwrap_or_else(|| panic!("a quantity field for book {id}"));
        html[at..].split('>').next().unwrap().to_string()
    };
    assert!(field(plenty).contains("max=\"4\""), "{}", field(plenty));
    assert!(field(few).contains("max=\"2\""), "{}", field(few));
}

/// The titles of a catalog page's cards, in order.
fn card_titles(html: &str) -> Vec<String> {
    html.split("<h2><a href=\"/book/")
        .skip(1)
        .filter_map(|card| card.split('>').nth(1)?.split('<').next())
        .map(str::to_string)
        .collect()
}

/// Where the pager's link marked `rel` leads.
fn pager_link(html: &str, rel: &str) -> Option<String> {
    let before = html.split(&format!("\" rel=\"{rel}\"")).next()?;
    if before.len() == html.len() {
        return None;
    }
    let href = before.rsplit("href=\"").next()?;
    Some(href.replace("&#38;", "&").replace("&amp;", "&"))
}

#[tokio::test]
async fn pager_links_walk_the_catalog_by_keyset_both_ways() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    for n in 1..=25 {
        app.listed_book(&seller, &format!("Volume {n:02}"), "5.00", "1")
            .await;
    }
    let visitor = app.visitor();
    let titles = |range: std::ops::RangeInclusive<i32>| -> Vec<String> {
        range.map(|n| format!("Volume {n:02}")).collect()
    };

    let (_, first) = visitor.page("/book/catalog?per_page=10").await;
    assert_eq!(card_titles(&first), titles(1..=10));
    assert!(first.contains("Page 1 of 3"));
    let next = pager_link(&first, "next").expect("a next link");
    assert!(next.contains("after="), "links go by keyset: {next}");

    let (_, second) = visitor.page(&next).await;
    assert_eq!(card_titles(&second), titles(11..=20));
    let (_, third) = visitor.page(&pager_link(&second, "next").unwrap()).await;
    assert_eq!(card_titles(&third), titles(21..=25));
    assert!(third.contains("Page 3 of 3"));
    assert!(
        pager_link(&third, "next").is_none(),
        "the last page has no next"
    );

    let back = pager_link(&third, "prev").unwrap();
    assert!(back.contains("before="), "{back}");
    let (_, second_again) = visitor.page(&back).await;
    assert_eq!(card_titles(&second_again), titles(11..=20));
    let (_, first_again) = visitor
        .page(&pager_link(&second_again, "prev").unwrap())
        .await;
    assert_eq!(card_titles(&first_again), titles(1..=10));

    // A typed page number (no cursor) still works, and a cursor naming no
    // book falls back to it.
    let (_, typed) = visitor.page("/book/catalog?per_page=10&page=3").await;
    assert_eq!(card_titles(&typed), titles(21..=25));
    let (status, gone) = visitor
        .page("/book/catalog?per_page=10&page=2&after=999999")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(card_titles(&gone), titles(11..=20));

    // Newest first, keyset on the id going down.
    let (_, newest) = visitor.page("/book/catalog?sort=newest&per_page=10").await;
    let (_, older) = visitor.page(&pager_link(&newest, "next").unwrap()).await;
    assert_eq!(
        card_titles(&older),
        titles(6..=15).into_iter().rev().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn search_matches_words_ranks_by_relevance_and_ignores_operators() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let listings = [
        ("Notes on Rivers", "Ann Smith"),
        ("River River", "Jo River"),
        ("The Hobbit", "J. R. R. Tolkien"),
        ("Cien años de soledad", "Gabriel García Márquez"),
        ("Go Set a Watchman", "Harper Lee"),
    ];
    for (title, author) in listings {
        let fields = [
            ("title", title),
            ("author", author),
            ("description", "A book."),
            ("price", "9.99"),
            ("stock", "3"),
        ];
        let response = seller.post("/book/add_book", &fields).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{title} listed");
    }
    let visitor = app.visitor();
    let search = |q: &str| {
        let path = format!("/book/catalog?q={}", q.replace(' ', "+"));
        let visitor = visitor.clone();
        async move { card_titles(&visitor.page(&path).await.1) }
    };

    assert_eq!(
        search("river").await,
        ["River River", "Notes on Rivers"],
        "every word is a prefix, the better match first"
    );
    assert_eq!(search("the hobbit").await, ["The Hobbit"], "no stopwords");
    assert_eq!(
        search("garcia").await,
        ["Cien años de soledad"],
        "accents folded"
    );
    assert_eq!(
        search("TOLKIEN hobbit").await,
        ["The Hobbit"],
        "title and author, any case"
    );
    assert_eq!(search("Go Set").await, ["Go Set a Watchman"]);
    assert!(
        search("hobbit river").await.is_empty(),
        "every word must match"
    );
    for hostile in [
        "\"",
        "+-*",
        "river\" OR \"1",
        "(hobbit",
        "%25%25",
        "*",
        "~river @2",
    ] {
        let path = format!("/book/catalog?q={hostile}");
        let (status, _) = visitor.page(&path).await;
        assert_eq!(status, StatusCode::OK, "{hostile} is just a search");
    }
    assert_eq!(
        search("~river @2").await,
        ["River River", "Notes on Rivers"]
    );
    let (_, sorted) = visitor.page("/book/catalog?q=river&sort=price").await;
    assert!(
        sorted.contains("value=\"relevance\""),
        "a search offers relevance"
    );
    let (_, plain) = visitor.page("/book/catalog").await;
    assert!(!plain.contains("value=\"relevance\""), "browsing does not");
}

#[tokio::test]
async fn a_large_generated_catalog_counts_up_to_a_cap_and_is_searchable() {
    let app = spawn_app().await;
    let cap = storefront::store::catalog::COUNT_CAP;
    let target = cap as u64 + 500;
    let added = storefront::seed::fill_to(&app.pool(), target, |_| {})
        .await
        .unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM books").await, target as i64);
    assert_eq!(added, target);
    let again = storefront::seed::fill_to(&app.pool(), target, |_| {})
        .await
        .unwrap();
    assert_eq!(again, 0, "a second fill to the same size adds nothing");

    let visitor = app.visitor();
    // The bulk load reached the database behind the replica's back: its
    // index (which lists the catalog) rebuilds when it reads the feed.
    let catalog = listed_within(
        &visitor,
        &format!("More than {cap} books"),
        Duration::from_secs(5),
    )
    .await;
    assert!(catalog.contains("Page 1<"), "no page count past the cap");
    let (_, home) = visitor.page("/").await;
    assert!(home.contains(&format!("More than {cap} books")));
    let (_, deep) = visitor.page(&pager_link(&catalog, "next").unwrap()).await;
    assert_eq!(card_titles(&deep).len(), 24);

    let author = app
        .count("SELECT COUNT(*) FROM books WHERE author = 'Ana García'")
        .await;
    let (_, found) = visitor
        .page("/book/catalog?q=Ana+Garcia&per_page=100")
        .await;
    let shown = found.matches("class=\"card\"").count() as i64;
    assert!(
        shown >= author.min(100),
        "{shown} cards for {author} books by Ana García"
    );
}

/// The catalog's first page once it shows `text`; fails past `deadline`.
async fn listed_within(visitor: &Shopper, text: &str, deadline: Duration) -> String {
    let started = Instant::now();
    loop {
        let (_, catalog) = visitor.page("/book/catalog").await;
        if catalog.contains(text) {
            return catalog;
        }
        assert!(
            started.elapsed() < deadline,
            "the catalog does not show \"{text}\" after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CSRF tokens of a page's forms, in order.
fn form_tokens(html: &str) -> Vec<&str> {
    html.split("name=\"csrf_token\" value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

/// The catalog's cards are rendered once and shared (web/catalog.rs,
/// `RenderedCards`); the page's one buy form carries each shopper's own
/// token and a new buy key with every response.
#[tokio::test]
async fn each_shoppers_catalog_has_one_buy_form_with_their_token() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    app.listed_book(&seller, "Shared", "5.00", "9").await;
    app.listed_book(&seller, "Also Shared", "6.00", "9").await;
    let (ann, bob) = (app.shopper("Ann").await, app.shopper("Bob").await);
    for shopper in [&ann, &bob, &ann, &bob] {
        let (_, html) = shopper.page("/book/catalog").await;
        let own = shopper.token().await;
        let tokens = form_tokens(&html);
        assert!(
            tokens.len() == 2 && tokens.iter().all(|t| *t == own),
            "the buy form and the header's logout form, this shopper's token: {tokens:?}"
        );
        assert_eq!(html.matches(r#"<form id="buy""#).count(), 1);
        assert_eq!(
            html.matches(r#"form="buy""#).count(),
            2 * 4,
            "two cards: price, quantity, two buttons, each"
        );
        assert!(
            !html.contains("not-for-seller"),
            "no marker left in the page"
        );
        let key = hidden_value_in(&html, "buy_key");
        assert!(
            key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "the form carries the page's buy key: {key}"
        );
        let (_, again) = shopper.page("/book/catalog").await;
        assert_ne!(
            hidden_value_in(&again, "buy_key"),
            key,
            "the cached cards' page gets a new key with every response"
        );
    }
    let (_, visitor_html) = app.visitor().page("/book/catalog").await;
    assert!(
        !visitor_html.contains("csrf_token") && !visitor_html.contains(r#"form="buy""#),
        "anonymous cards have no forms"
    );
}

/// A card's buttons send the whole page's form, every card's quantity and
/// price in it: the store takes the pressed card's, by its book's id, for
/// buy now and for the cart alike.
#[tokio::test]
async fn a_cards_buttons_buy_the_quantity_typed_in_that_card() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let first = app.listed_book(&seller, "First Card", "5.00", "9").await;
    let second = app.listed_book(&seller, "Second Card", "7.00", "9").await;
    let buyer = app.shopper("Buyer").await;

    let (_, html) = buyer.page("/book/catalog?sort=title").await;
    let mut form = catalog_form_for(&html, second);
    set_field(&mut form, &format!("quantity-{first}"), "4");
    set_field(&mut form, &format!("quantity-{second}"), "3");
    let bought = buyer.post_fields(&format!("/buy/{second}"), &form).await;
    assert_eq!(
        bought.status(),
        StatusCode::SEE_OTHER,
        "{}",
        bought.text().await.unwrap()
    );
    assert_eq!(
        (app.stock_of(first).await, app.stock_of(second).await),
        (9, 6)
    );
    let again = buyer.post_fields(&format!("/buy/{second}"), &form).await;
    assert_eq!(
        location(&again),
        location(&bought),
        "the same form sent twice is one order"
    );

    let mut form = catalog_form_for(&html, first);
    set_field(&mut form, &format!("quantity-{first}"), "2");
    let added = buyer.post_fields("/cart/add", &form).await;
    assert_eq!(location(&added), "/cart");
    let (_, cart) = buyer.page("/cart").await;
    assert!(
        cart.contains("First Card") && !cart.contains("Second Card"),
        "{cart}"
    );
    assert!(
        cart.contains(r#"id="cart-total">$10.00"#),
        "2 × 5.00: {cart}"
    );

    // The card's own shown price is the one checked.
    let edit = [
        ("title", "Second Card"),
        ("author", "Test Author"),
        ("description", "A test book."),
        ("price", "8.00"),
        ("stock", "6"),
    ];
    let edited = seller
        .post(&format!("/book/edit_book/{second}"), &edit)
        .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    let mut form = catalog_form_for(&html, second);
    set_field(&mut form, "buy_key", &fresh_buy_key());
    let stopped = buyer.post_fields(&format!("/buy/{second}"), &form).await;
    let page = stopped.text().await.unwrap();
    assert!(page.contains("changed from $7.00 to $8.00"), "{page}");
    assert_eq!(app.stock_of(second).await, 6);
}

/// A search that finds nothing offers no buying ("Log in to buy"), only a
/// way back to every book; a page with books offers it, back to the catalog.
#[tokio::test]
async fn an_empty_search_offers_nothing_to_buy() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    app.listed_book(&seller, "Findable", "3.00", "5").await;
    let visitor = app.visitor();
    let (_, empty) = visitor.page("/book/catalog?q=nothing-matches-this").await;
    assert!(empty.contains("Show every book"), "{empty}");
    assert!(!empty.contains("to buy."), "no buying on an empty result");
    let (_, found) = visitor.page("/book/catalog?q=Findable").await;
    assert!(found.contains(r#"<a href="/login?next=/book/catalog">"#));
}

/// Catalog cards showed buy buttons on the seller's own books, which then
/// answered 403: the seller's cards offer none, everyone else's still do,
/// from the same cached page.
#[tokio::test]
async fn a_sellers_own_cards_offer_no_buy_form() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let own = app.listed_book(&seller, "Mine To Sell", "3.00", "5").await;
    let other_seller = app.shopper("Other").await;
    let theirs = app
        .listed_book(&other_seller, "Theirs To Sell", "3.00", "5")
        .await;
    let (_, seller_view) = seller.page("/book/catalog").await;
    assert!(
        !seller_view.contains(&format!(r#"action="/buy/{own}""#)),
        "{seller_view}"
    );
    assert!(seller_view.contains(&format!(r#"action="/buy/{theirs}""#)));
    assert!(
        seller_view.contains("Mine To Sell"),
        "the card itself stays"
    );
    let buyer = app.shopper("Buyer").await;
    let (_, buyer_view) = buyer.page("/book/catalog").await;
    assert!(buyer_view.contains(&format!(r#"action="/buy/{own}""#)));
    assert!(!buyer_view.contains("not-for-seller"), "no marker leaks");
}

/// Hand-edited pager links (`page=3&after=1`, `page=5&after=1`) showed the
/// same books under different page numbers: the number shown, and the links'
/// numbers, are now the page's own, counted from the books before it.
#[tokio::test]
async fn a_pages_number_is_its_own_whatever_the_link_says() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    for n in 0..7 {
        app.listed_book(&seller, &format!("Paged {n:02}"), "3.00", "5")
            .await;
    }
    let visitor = app.visitor();
    let (_, first) = visitor.page("/book/catalog?sort=title&per_page=2").await;
    assert!(first.contains("Page 1 of 4"), "{first}");
    let next = pager_link(&first, "next").expect("a next link");
    let (_, second) = visitor.page(&next).await;
    assert!(
        second.contains("Page 2 of 4"),
        "{next}: {}",
        second.split("pager").nth(1).unwrap_or("")
    );
    let after = next
        .split("after=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    for label in ["3", "5", "1"] {
        let edited = format!("/book/catalog?sort=title&per_page=2&page={label}&after={after}");
        let (_, page) = visitor.page(&edited).await;
        assert!(page.contains("Page 2 of 4"), "page={label}: {page}");
        assert!(page.contains("Paged 02") && page.contains("Paged 03"));
        assert!(pager_link(&page, "next").unwrap().contains("page=3"));
    }
}
