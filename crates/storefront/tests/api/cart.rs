use reqwest::{Response, StatusCode};

use crate::helpers::{
    PASSWORD, Shopper, every_order_holds, hidden_value_in, location, order_id_in, spawn_app,
    spawn_app_with,
};

#[tokio::test]
async fn a_cart_of_two_books_checks_out_as_one_order() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let emma = app.listed_book(&seller, "Emma", "8.00", "5").await;
    let dracula = app.listed_book(&seller, "Dracula", "6.50", "5").await;
    let buyer = app.shopper("Buyer").await;

    for (book, qty) in [(emma, "1"), (dracula, "2"), (emma, "1")] {
        let added = buyer
            .post(
                "/cart/add",
                &[
                    ("book_id", &book.to_string()),
                    ("quantity", qty),
                    ("price", "0"),
                ],
            )
            .await;
        assert_eq!(added.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&added), "/cart");
    }
    let (_, cart) = buyer.page("/cart").await;
    assert!(cart.contains("Emma") && cart.contains("Dracula"));
    assert!(
        cart.contains("id=\"cart-total\">$29.00"),
        "2 × 8.00 + 2 × 6.50"
    );

    let updated = buyer
        .post(
            "/cart/update",
            &[("book_id", &dracula.to_string()), ("quantity", "3")],
        )
        .await;
    assert_eq!(updated.status(), StatusCode::SEE_OTHER);
    let (_, cart) = buyer.page("/cart").await;
    assert!(cart.contains("id=\"cart-total\">$35.50"));

    let checkout = buyer.post("/cart/checkout", &[]).await;
    assert_eq!(checkout.status(), StatusCode::SEE_OTHER);
    let order = order_id_in(&location(&checkout));
    assert_eq!(
        (app.stock_of(emma).await, app.stock_of(dracula).await),
        (3, 2)
    );
    let items: i64 = sqlx::query_scalar("SELECT items_cents FROM orders WHERE id = ?")
        .bind(order)
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert_eq!(items, 3550);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM order_lines WHERE order_id = {order}"
        ))
        .await,
        2
    );
    let (_, empty) = buyer.page("/cart").await;
    assert!(empty.contains("Your cart is empty"));

    let paid = buyer.deliver_and_pay(order, "2", "Credit Card").await;
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let amount: i64 = sqlx::query_scalar("SELECT amount_cents FROM payments WHERE order_id = ?")
        .bind(order)
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert_eq!(amount, 3550 + 4500, "books plus FedEx");
}

#[tokio::test]
async fn a_checkout_takes_all_lines_or_none() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let plenty = app.listed_book(&seller, "Plenty", "2.00", "10").await;
    let scarce = app.listed_book(&seller, "Scarce", "2.00", "2").await;
    let buyer = app.shopper("Buyer").await;
    buyer
        .post(
            "/cart/add",
            &[("book_id", &plenty.to_string()), ("quantity", "3")],
        )
        .await;
    buyer
        .post(
            "/cart/add",
            &[("book_id", &scarce.to_string()), ("quantity", "2")],
        )
        .await;
    // Someone else takes a copy of the scarce book meanwhile.
    app.shopper("Rival").await.buy_ok(scarce, "1").await;

    let checkout = buyer.post("/cart/checkout", &[]).await;
    assert_eq!(checkout.status(), StatusCode::CONFLICT);
    let html = checkout.text().await.unwrap();
    assert!(html.contains("Only 1 left of “Scarce”"), "{html}");
    assert_eq!(
        app.stock_of(plenty).await,
        10,
        "the line that fitted was not taken either"
    );
    assert_eq!(app.stock_of(scarce).await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders").await,
        1,
        "only the rival's order"
    );
    let (_, cart) = buyer.page("/cart").await;
    assert!(
        cart.contains("Only 1 left."),
        "the cart is kept and shows the shortage"
    );
}

#[tokio::test]
async fn the_cart_refuses_bad_lines() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Few", "2.00", "2").await;
    let buyer = app.shopper("Buyer").await;
    let id = book.to_string();
    let over = buyer
        .post("/cart/add", &[("book_id", &id), ("quantity", "3")])
        .await;
    assert_eq!(over.status(), StatusCode::CONFLICT);
    let over = over.text().await.unwrap();
    assert!(over.contains("Only 2 left."), "{over}");
    assert!(
        !over.contains("you already have"),
        "nothing is in the cart: {over}"
    );
    let zero = buyer
        .post("/cart/add", &[("book_id", &id), ("quantity", "0")])
        .await;
    assert_eq!(zero.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let ghost = buyer
        .post("/cart/add", &[("book_id", "999999"), ("quantity", "1")])
        .await;
    assert_eq!(ghost.status(), StatusCode::NOT_FOUND);
    let junk = buyer
        .post("/cart/add", &[("book_id", "abc"), ("quantity", "1")])
        .await;
    assert_eq!(junk.status(), StatusCode::NOT_FOUND);

    buyer
        .post("/cart/add", &[("book_id", &id), ("quantity", "1")])
        .await;
    let bad_update = buyer
        .post("/cart/update", &[("book_id", &id), ("quantity", "-1")])
        .await;
    assert_eq!(bad_update.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let explained = bad_update.text().await.unwrap();
    assert!(
        explained.contains("The quantity must be at least 1.")
            && !explained.contains("invalid-quantity"),
        "the cart says why in words, not a message id"
    );
    let removed = buyer
        .post("/cart/update", &[("book_id", &id), ("quantity", "0")])
        .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    let empty_checkout = buyer.post("/cart/checkout", &[]).await;
    assert_eq!(empty_checkout.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(app.stock_of(book).await, 2);
}

#[tokio::test]
async fn a_sold_out_book_is_refused_as_sold_out() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Gone", "2.00", "1").await;
    app.shopper("Rival").await.buy_ok(book, "1").await;
    let refused = app
        .shopper("Buyer")
        .await
        .post(
            "/cart/add",
            &[("book_id", &book.to_string()), ("quantity", "1")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let html = refused.text().await.unwrap();
    assert!(html.contains("“Gone” is sold out."), "{html}");
    assert!(!html.contains("Only 0 left"), "{html}");
}

#[tokio::test]
async fn another_shopper_logging_in_on_the_same_browser_does_not_get_the_cart() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app
        .listed_book(&seller, "Private Reading", "4.00", "5")
        .await;
    let alice = app.shopper("Alice").await;
    let browser = app.shopper("Carol").await;
    let added = browser.add_to_cart(book, "3").await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);

    browser.login_ok(&alice.email(), PASSWORD).await;
    let (_, cart) = browser.page("/cart").await;
    assert!(cart.contains("Signed in as"), "Alice is logged in");
    assert!(
        !cart.contains("Private Reading"),
        "Carol's cart stayed with Carol"
    );
}

#[tokio::test]
async fn a_seller_cannot_buy_their_own_book() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Mine", "3.00", "4").await;

    let bought = seller.buy(book, "1").await;
    assert_eq!(bought.status(), StatusCode::FORBIDDEN);
    assert!(bought.text().await.unwrap().contains("you cannot buy it"));
    let added = seller.add_to_cart(book, "1").await;
    assert_eq!(added.status(), StatusCode::FORBIDDEN);
    assert!(added.text().await.unwrap().contains("you cannot buy it"));

    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(app.stock_of(book).await, 4);
}

#[tokio::test]
async fn a_book_deleted_while_in_the_cart_is_taken_out_at_checkout() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let kept = app.listed_book(&seller, "Kept", "5.00", "5").await;
    let gone = app.listed_book(&seller, "Withdrawn", "7.00", "5").await;
    let also_gone = app.listed_book(&seller, "Withdrawn Too", "9.00", "5").await;
    let buyer = app.shopper("Buyer").await;
    for book in [kept, gone, also_gone] {
        buyer.add_to_cart(book, "1").await;
    }
    for book in [gone, also_gone] {
        let deleted = seller.post(&format!("/book/delete_book/{book}"), &[]).await;
        assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    }

    let refused = buyer.post("/cart/checkout", &[]).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("no longer for sale, so it was taken out"),
        "{page}"
    );
    assert!(page.contains("Kept"));
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);

    let checkout = buyer.post("/cart/checkout", &[]).await;
    assert_eq!(checkout.status(), StatusCode::SEE_OTHER);
    let order = order_id_in(&location(&checkout));
    let items: i64 = sqlx::query_scalar("SELECT items_cents FROM orders WHERE id = ?")
        .bind(order)
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert_eq!(items, 500);
    assert_eq!(app.stock_of(kept).await, 4);
}

/// The checkout button of a cart page that showed `key`.
async fn click_checkout(buyer: &Shopper, token: &str, key: &str) -> Response {
    buyer
        .post_raw(
            "/cart/checkout",
            &[("csrf_token", token), ("checkout_key", key)],
        )
        .await
}

#[tokio::test]
async fn a_cart_checked_out_several_times_at_once_makes_one_order() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Once Only", "4.00", "10").await;
    let buyer = app.shopper("Buyer").await;
    buyer.add_to_cart(book, "2").await;
    let (_, cart) = buyer.page("/cart").await;
    let key = hidden_value_in(&cart, "checkout_key");
    let token = buyer.token().await;

    let mut clicks = Vec::new();
    for _ in 0..5 {
        let (buyer, key, token) = (buyer.clone(), key.clone(), token.clone());
        clicks.push(tokio::spawn(async move {
            let response = click_checkout(&buyer, &token, &key).await;
            (response.status(), location(&response))
        }));
    }
    let mut led_to = Vec::new();
    for click in clicks {
        let (status, to) = click.await.unwrap();
        assert_eq!(status, StatusCode::SEE_OTHER);
        led_to.push(to);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(app.stock_of(book).await, 8, "the stock is held once");
    let order = order_id_in(&led_to[0]);
    assert!(
        led_to.iter().all(|to| order_id_in(to) == order),
        "every click leads to the one order: {led_to:?}"
    );

    // The same page's button once more, long after: still that order.
    let again = click_checkout(&buyer, &token, &key).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(order_id_in(&location(&again)), order);

    // Another shopper sending this cart's key reaches nothing of the buyer's.
    let other = app.shopper("Other").await;
    let other_token = other.token().await;
    let borrowed = click_checkout(&other, &other_token, &key).await;
    assert_eq!(
        borrowed.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "their own cart is empty"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);

    // A cart filled again is a new cart: a second order.
    buyer.add_to_cart(book, "1").await;
    let next = buyer.post("/cart/checkout", &[]).await;
    assert_eq!(next.status(), StatusCode::SEE_OTHER);
    assert_ne!(order_id_in(&location(&next)), order);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 2);
}

/// The cart took 100 copies and said "Only 11 left", then checkout refused
/// more than 10 of a title. One rule now, stated by the quantity field and
/// the same whether the copies go to the cart or straight to an order.
#[tokio::test]
async fn one_quantity_rule_for_the_cart_and_buy_now_stated_where_it_is_chosen() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Plentiful", "3.00", "50").await;
    let scarce = app.listed_book(&seller, "Scarce", "3.00", "4").await;
    let buyer = app.shopper("Buyer").await;
    let (_, page) = buyer.page(&format!("/book/{book}")).await;
    assert!(page.contains(r#"max="10""#) && page.contains("At most 10 per order."));
    let (_, page) = buyer.page(&format!("/book/{scarce}")).await;
    assert!(page.contains(r#"max="4""#) && page.contains("At most 4 per order."));

    let refused = buyer.add_to_cart(book, "11").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("One order takes at most 10 copies of “Plentiful”."),
        "{text}"
    );
    assert_eq!(
        buyer.add_to_cart(book, "6").await.status(),
        StatusCode::SEE_OTHER
    );
    let more = buyer.add_to_cart(book, "5").await;
    assert_eq!(more.status(), StatusCode::CONFLICT);
    assert!(more.text().await.unwrap().contains("and your cart has 6"));
    let update = buyer
        .post(
            "/cart/update",
            &[("book_id", &book.to_string()), ("quantity", "11")],
        )
        .await;
    assert_eq!(update.status(), StatusCode::CONFLICT);

    let buy = buyer.buy(book, "11").await;
    assert_eq!(buy.status(), StatusCode::CONFLICT);
    assert!(
        buy.text()
            .await
            .unwrap()
            .contains("One order takes at most 10 copies")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    let checkout = buyer.post("/cart/checkout", &[]).await;
    assert_eq!(
        checkout.status(),
        StatusCode::SEE_OTHER,
        "what the cart took, checkout takes"
    );
}
