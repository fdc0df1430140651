use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    Shopper, every_order_holds, fresh_buy_key, hidden_value_in, location, order_id_in, spawn_app,
    spawn_app_with,
};

#[tokio::test]
async fn buy_now_leads_through_delivery_and_payment_at_server_prices() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Dear Book", "10.00", "9").await;
    let buyer = app.shopper("Buyer").await;

    // The original trusted a hidden price: 9 copies for 0.09 in total. Here it is ignored.
    let bought = buyer
        .post(
            &format!("/buy/{book}"),
            &[
                ("quantity", "9"),
                ("price", "0.01"),
                ("buy_key", &fresh_buy_key()),
            ],
        )
        .await;
    assert_eq!(bought.status(), StatusCode::SEE_OTHER);
    let order = order_id_in(&location(&bought));
    assert_eq!(location(&bought), format!("/delivery/{order}"));
    assert_eq!(app.stock_of(book).await, 0);

    let (status, delivery) = buyer.page(&format!("/delivery/{order}")).await;
    assert_eq!(status, StatusCode::OK);
    for provider in ["DHL", "FedEx", "Envia", "Servientrega"] {
        assert!(delivery.contains(provider));
    }
    assert!(delivery.contains("$90.00"));

    // Paying before choosing delivery is sent back to delivery.
    let early = buyer.get(&format!("/payment/{order}")).await;
    assert_eq!(location(&early), format!("/delivery/{order}"));

    // Envia costs 20.00; the form's `amount` (the original's fixed 100) is ignored.
    let delivery = buyer
        .post(&format!("/delivery/{order}"), &[("provider", "3")])
        .await;
    assert_eq!(location(&delivery), format!("/payment/{order}"));
    let (_, payment_page) = buyer.page(&format!("/payment/{order}")).await;
    assert!(payment_page.contains("$110.00"), "books 90 + delivery 20");
    let paid = buyer
        .post(
            &format!("/payment/{order}"),
            &[("method", "Paypal"), ("amount", "0")],
        )
        .await;
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&paid), format!("/orders/{order}"));

    let (amount, method): (i64, String) =
        sqlx::query_as("SELECT amount_cents, method FROM payments WHERE order_id = ?")
            .bind(order)
            .fetch_one(&app.pool())
            .await
            .unwrap();
    assert_eq!((amount, method.as_str()), (11_000, "Paypal"));
    let (_, detail) = buyer.page(&format!("/orders/{order}")).await;
    assert!(
        detail.contains(">Paid</span>") && detail.contains("$110.00") && detail.contains("Envia")
    );
    let (_, list) = buyer.page("/orders").await;
    assert!(list.contains(&format!("#{order}")) && list.contains("Paid"));
}

/// A client that leaves the buy key out, or sends an empty or made-up one,
/// cannot turn its retries into orders: each post is refused as an expired
/// form (as a missing CSRF token is), and nothing is held.
#[tokio::test]
async fn buy_now_without_a_valid_key_is_refused_as_an_expired_form() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Keyed", "5.00", "10").await;
    let buyer = app.shopper("Buyer").await;
    let token = buyer.token().await;
    let bad_keys: [Option<&str>; 5] = [
        None,
        Some(""),
        Some("not-a-key"),
        Some("0123456789ABCDEF0123456789ABCDEF"),
        Some("0123456789abcdef0123456789abcdef0"),
    ];
    for key in bad_keys {
        let mut form = vec![("quantity", "1"), ("csrf_token", token.as_str())];
        form.extend(key.map(|k| ("buy_key", k)));
        for _ in 0..2 {
            let response = buyer.post_raw(&format!("/buy/{book}"), &form).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "buy_key {key:?}");
            let body = response.text().await.unwrap();
            assert!(body.contains("Form expired"), "buy_key {key:?}: {body}");
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(app.stock_of(book).await, 10);

    // The page's own key still works, twice over for one order.
    let (_, page) = buyer.page(&format!("/book/{book}")).await;
    let key = hidden_value_in(&page, "buy_key");
    let first = click_buy(&buyer, &token, book, "1", &key).await;
    assert_eq!(click_buy(&buyer, &token, book, "1", &key).await, first);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
}

/// Sends a buy form as the browser would: quantity, key and token.
async fn click_buy(buyer: &Shopper, token: &str, book: i64, quantity: &str, key: &str) -> String {
    let response = buyer
        .post_raw(
            &format!("/buy/{book}"),
            &[
                ("quantity", quantity),
                ("buy_key", key),
                ("csrf_token", token),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "buying {book}");
    location(&response)
}

#[tokio::test]
async fn a_buy_form_sent_several_times_at_once_makes_one_order() {
    // Six orders of one title by one shopper: past the default hold caps.
    let app = spawn_app_with(|c| {
        every_order_holds(c);
        c.limits.open_orders = 10;
        c.limits.held_per_title = 20;
    })
    .await;
    let seller = app.shopper("Seller").await;
    let book = app
        .listed_book(&seller, "Clicked Twice", "4.00", "20")
        .await;
    let other_book = app.listed_book(&seller, "Next Door", "4.00", "20").await;
    let buyer = app.shopper("Buyer").await;
    let token = buyer.token().await;
    let (_, page) = buyer.page(&format!("/book/{book}")).await;
    let key = hidden_value_in(&page, "buy_key");

    let clicks: Vec<_> = (0..5)
        .map(|_| {
            let (buyer, token, key) = (buyer.clone(), token.clone(), key.clone());
            tokio::spawn(async move { click_buy(&buyer, &token, book, "2", &key).await })
        })
        .collect();
    let mut led_to = Vec::new();
    for click in clicks {
        led_to.push(order_id_in(&click.await.unwrap()));
    }
    assert!(
        led_to.iter().all(|order| *order == led_to[0]),
        "every click leads to the one order: {led_to:?}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(app.stock_of(book).await, 18, "the stock is held once");

    // The same page with another quantity, another page, another book on a
    // catalog page sharing the key, or no key at all: each is an order.
    click_buy(&buyer, &token, book, "1", &key).await;
    let (_, again) = buyer.page(&format!("/book/{book}")).await;
    let next_key = hidden_value_in(&again, "buy_key");
    assert_ne!(next_key, key, "every page has its own key");
    click_buy(&buyer, &token, book, "2", &next_key).await;
    let (_, catalog) = buyer.page("/book/catalog").await;
    let card_key = hidden_value_in(&catalog, "buy_key");
    click_buy(&buyer, &token, book, "1", &card_key).await;
    click_buy(&buyer, &token, other_book, "1", &card_key).await;
    buyer.buy_ok(book, "1").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 6);
    assert_eq!(app.stock_of(book).await, 13);

    // Another shopper sending the buyer's key gets an order of their own.
    let other = app.shopper("Other").await;
    let other_token = other.token().await;
    let theirs = order_id_in(&click_buy(&other, &other_token, book, "2", &key).await);
    assert_ne!(theirs, led_to[0]);
    assert_eq!(app.stock_of(book).await, 11);
}

#[tokio::test]
async fn a_buy_form_sent_again_after_its_order_closed_makes_a_new_order() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Again", "4.00", "10").await;
    let buyer = app.shopper("Buyer").await;
    let token = buyer.token().await;
    let (_, page) = buyer.page(&format!("/book/{book}")).await;
    let key = hidden_value_in(&page, "buy_key");

    let first = order_id_in(&click_buy(&buyer, &token, book, "1", &key).await);
    let cancelled = buyer.post(&format!("/orders/{first}/cancel"), &[]).await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    let second = order_id_in(&click_buy(&buyer, &token, book, "1", &key).await);
    assert_ne!(second, first, "a cancelled order is not bought again");
    assert_eq!(
        order_id_in(&click_buy(&buyer, &token, book, "1", &key).await),
        second,
        "while unpaid, the form still leads to it"
    );
    let paid = buyer.deliver_and_pay(second, "1", "Paypal").await;
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let third = order_id_in(&click_buy(&buyer, &token, book, "1", &key).await);
    assert_ne!(third, second, "a paid order is not shown as a new one");
    assert_eq!(
        app.stock_of(book).await,
        8,
        "the paid and the third hold one each"
    );
}

#[tokio::test]
async fn bad_quantities_are_refused_with_a_message_and_take_no_stock() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Scarce", "4.00", "3").await;
    let buyer = app.shopper("Buyer").await;
    let cases = [
        ("", StatusCode::UNPROCESSABLE_ENTITY, "Enter a quantity."),
        (
            "two",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The quantity must be a whole number.",
        ),
        (
            "1.5",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The quantity must be a whole number.",
        ),
        (
            "0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The quantity must be at least 1.",
        ),
        (
            "-4",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The quantity must be at least 1.",
        ),
        (
            "1000000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "At most 100 copies per order.",
        ),
        (
            "99999999999999999999999",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The quantity must be a whole number.",
        ),
        ("4", StatusCode::CONFLICT, "Only 3 left of “Scarce”"),
    ];
    for (quantity, status, message) in cases {
        let response = buyer.buy(book, quantity).await;
        assert_eq!(response.status(), status, "quantity {quantity:?}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains(message),
            "quantity {quantity:?}: expected {message:?}"
        );
    }
    assert_eq!(
        app.stock_of(book).await,
        3,
        "a negative quantity must not raise the stock either"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(
        buyer.buy(999_999, "1").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn another_users_order_is_not_found_and_unchanged() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Private", "5.00", "5").await;
    let owner = app.shopper("Owner").await;
    let order = owner.buy_ok(book, "2").await;
    let intruder = app.shopper("Intruder").await;

    for path in [
        format!("/orders/{order}"),
        format!("/delivery/{order}"),
        format!("/payment/{order}"),
    ] {
        assert_eq!(
            intruder.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "GET {path}"
        );
    }
    let posts = [
        (format!("/delivery/{order}"), vec![("provider", "1")]),
        (
            format!("/payment/{order}"),
            vec![("method", "Credit Card"), ("amount", "0")],
        ),
        (format!("/orders/{order}/cancel"), vec![]),
    ];
    for (path, fields) in &posts {
        assert_eq!(
            intruder.post(path, fields).await.status(),
            StatusCode::NOT_FOUND,
            "POST {path}"
        );
    }
    let (status, provider): (String, Option<i64>) =
        sqlx::query_as("SELECT status, provider_id FROM orders WHERE id = ?")
            .bind(order)
            .fetch_one(&app.pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), provider), ("pending_payment", None));
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(app.stock_of(book).await, 3);
}

#[tokio::test]
async fn paying_twice_charges_once_and_delivery_cannot_change_after_payment() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Once", "7.00", "5").await;
    let buyer = app.shopper("Buyer").await;
    let order = buyer.buy_ok(book, "1").await;

    let unpaid_pay = buyer
        .post(&format!("/payment/{order}"), &[("method", "Paypal")])
        .await;
    assert_eq!(
        unpaid_pay.status(),
        StatusCode::CONFLICT,
        "no payment before delivery is chosen"
    );

    let first = buyer.deliver_and_pay(order, "4", "Credit Card").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    // A second Pay (a double click) leads to the paid order, calmly.
    let again = buyer
        .post(&format!("/payment/{order}"), &[("method", "Credit Card")])
        .await;
    let page = settled_order_page(&buyer, again, order).await;
    assert!(page.contains(&format!("Order #{order} is paid: nothing more to do.")));
    let redeliver = buyer
        .post(&format!("/delivery/{order}"), &[("provider", "1")])
        .await;
    settled_order_page(&buyer, redeliver, order).await;

    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    let (delivery, items): (i64, i64) =
        sqlx::query_as("SELECT delivery_cents, items_cents FROM orders WHERE id = ?")
            .bind(order)
            .fetch_one(&app.pool())
            .await
            .unwrap();
    assert_eq!(
        (delivery, items),
        (1500, 700),
        "Servientrega kept, price from the database"
    );
}

#[tokio::test]
async fn bad_delivery_and_payment_choices_re_render_with_a_message() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Choices", "7.00", "5").await;
    let buyer = app.shopper("Buyer").await;
    let order = buyer.buy_ok(book, "1").await;
    for provider in ["", "99", "DHL"] {
        let response = buyer
            .post(&format!("/delivery/{order}"), &[("provider", provider)])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider {provider:?}"
        );
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Choose one of the providers.")
        );
    }
    buyer
        .post(&format!("/delivery/{order}"), &[("provider", "2")])
        .await;
    let response = buyer
        .post(&format!("/payment/{order}"), &[("method", "Cash")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Choose a payment method.")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
}

#[tokio::test]
async fn cancelling_an_unpaid_order_returns_its_stock_once() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Returnable", "3.00", "4").await;
    let buyer = app.shopper("Buyer").await;
    let order = buyer.buy_ok(book, "3").await;
    assert_eq!(app.stock_of(book).await, 1);

    let cancelled = buyer.post(&format!("/orders/{order}/cancel"), &[]).await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.stock_of(book).await, 4);
    let again = buyer.post(&format!("/orders/{order}/cancel"), &[]).await;
    let page = settled_order_page(&buyer, again, order).await;
    assert!(page.contains(&format!("Order #{order} is cancelled.")));
    assert_eq!(app.stock_of(book).await, 4, "stock is returned once");
    let payment_page = buyer.get(&format!("/payment/{order}")).await;
    settled_order_page(&buyer, payment_page, order).await;

    let paid = buyer.buy_ok(book, "1").await;
    buyer.deliver_and_pay(paid, "1", "Bank Transfer").await;
    let cancel_paid = buyer.post(&format!("/orders/{paid}/cancel"), &[]).await;
    let page = settled_order_page(&buyer, cancel_paid, paid).await;
    assert!(page.contains(&format!("Order #{paid} is paid")));
    assert_eq!(app.stock_of(book).await, 3, "a paid order keeps its copies");
}

#[tokio::test]
async fn unpaid_orders_expire_and_return_their_stock() {
    let app = spawn_app_with(|c| {
        every_order_holds(c);
        c.order_ttl = Duration::from_secs(1);
        c.expiry_interval = Duration::from_millis(200);
    })
    .await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Fleeting", "3.00", "2").await;
    let buyer = app.shopper("Buyer").await;
    let order = buyer.buy_ok(book, "2").await;
    assert_eq!(app.stock_of(book).await, 0);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.stock_of(book).await != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order did not expire in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
        .bind(order)
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert_eq!(status, "expired");
    let late = buyer
        .post(&format!("/delivery/{order}"), &[("provider", "1")])
        .await;
    let page = settled_order_page(&buyer, late, order).await;
    assert!(
        page.contains("expired before it was paid"),
        "an expired order cannot go on"
    );
}

/// A step on an order that is no longer open answers with the order's own
/// page (303 there, no error) and a message saying what it is; returns that
/// page. The order itself is not changed by the step.
pub async fn settled_order_page(
    buyer: &Shopper,
    response: reqwest::Response,
    order: i64,
) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "no error page");
    assert_eq!(location(&response), format!("/orders/{order}"));
    let (status, page) = buyer.page(&format!("/orders/{order}")).await;
    assert_eq!(status, StatusCode::OK);
    page
}

#[tokio::test]
async fn the_seller_sees_the_stock_go_down() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Counted", "3.00", "5").await;
    app.shopper("Buyer").await.buy_ok(book, "2").await;
    let (_, mine) = seller.page("/book/my_books").await;
    assert!(
        mine.contains("data-label=\"Stock\" class=\"num\">3</td>"),
        "{mine}"
    );
}

/// Ten Pay clicks at once used to show nine 409 error pages for an order
/// that was paid: every click now leads to the paid order's page, and it is
/// charged once. The same for ten Cancel clicks on another order.
#[tokio::test]
async fn ten_pay_or_cancel_clicks_at_once_all_lead_to_the_order() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Clicked", "3.00", "100").await;
    let buyer = app.shopper("Buyer").await;
    let to_pay = buyer.buy_ok(book, "1").await;
    let delivery = buyer
        .post(&format!("/delivery/{to_pay}"), &[("provider", "1")])
        .await;
    assert_eq!(delivery.status(), StatusCode::SEE_OTHER);
    let to_cancel = buyer.buy_ok(book, "1").await;
    let token = buyer.token().await;
    let clicks = |path: String, fields: Vec<(&'static str, &'static str)>| {
        let (buyer, token) = (buyer.clone(), token.clone());
        (0..10)
            .map(|_| {
                let (buyer, token, path, fields) =
                    (buyer.clone(), token.clone(), path.clone(), fields.clone());
                tokio::spawn(async move {
                    let mut form = fields;
                    form.push(("csrf_token", token.as_str()));
                    let response = buyer.post_raw(&path, &form).await;
                    (response.status(), location(&response))
                })
            })
            .collect::<Vec<_>>()
    };
    for (order, path, fields) in [
        (
            to_pay,
            format!("/payment/{to_pay}"),
            vec![("method", "Paypal")],
        ),
        (to_cancel, format!("/orders/{to_cancel}/cancel"), vec![]),
    ] {
        for click in clicks(path, fields) {
            let (status, to) = click.await.unwrap();
            assert_eq!(status, StatusCode::SEE_OTHER, "no error page");
            assert_eq!(to, format!("/orders/{order}"));
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    let (_, page) = buyer.page(&format!("/orders/{to_pay}")).await;
    assert!(page.contains("Paid"));
    assert_eq!(
        app.stock_of(book).await,
        99,
        "the cancelled copy is back once"
    );
}

/// The buyer saw $10.00, the seller then asked $99.00: the buy used to go
/// through at $99.00 with no notice. Buy-now and the cart's checkout now
/// carry the prices shown; a changed price stops the purchase with both
/// prices, and the page's own button buys at the new one.
#[tokio::test]
async fn a_price_changed_since_the_page_stops_the_purchase_with_a_notice() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Repriced", "10.00", "50").await;
    let buyer = app.shopper("Buyer").await;
    let (_, page) = buyer.page(&format!("/book/{book}")).await;
    let shown = hidden_value_in(&page, "shown_price");
    assert_eq!(shown, "1000");
    let edit = [
        ("title", "Repriced"),
        ("author", "Test Author"),
        ("description", "A test book."),
        ("price", "99.00"),
        ("stock", "50"),
    ];
    let edited = seller.post(&format!("/book/edit_book/{book}"), &edit).await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);

    let key = fresh_buy_key();
    let buy = |price: String| {
        let (buyer, key) = (buyer.clone(), key.clone());
        async move {
            buyer
                .post(
                    &format!("/buy/{book}"),
                    &[
                        ("quantity", "1"),
                        ("buy_key", &key),
                        ("shown_price", &price),
                    ],
                )
                .await
        }
    };
    let stopped = buy(shown).await;
    assert_eq!(stopped.status(), StatusCode::CONFLICT);
    let notice = stopped.text().await.unwrap();
    assert!(
        notice.contains("The price of “Repriced” changed from $10.00 to $99.00 since you saw it"),
        "{notice}"
    );
    assert_eq!(
        hidden_value_in(&notice, "shown_price"),
        "9900",
        "the new price's button"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(app.stock_of(book).await, 50);
    let order = order_id_in(&location(&buy("9900".into()).await));
    let total: i64 = sqlx::query_scalar("SELECT items_cents FROM orders WHERE id = ?")
        .bind(order)
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert_eq!(total, 9900);

    // The cart: the page showed $99.00; the price goes down to $5.00 before checkout.
    let cart_buyer = app.shopper("CartBuyer").await;
    cart_buyer.add_to_cart(book, "2").await;
    let (_, cart) = cart_buyer.page("/cart").await;
    let shown_prices = hidden_value_in(&cart, "shown_prices");
    assert_eq!(shown_prices, format!("{book}:9900"));
    let cheaper = edit.map(|(name, value)| (name, if name == "price" { "5.00" } else { value }));
    seller
        .post(&format!("/book/edit_book/{book}"), &cheaper)
        .await;
    let checkout = cart_buyer
        .post("/cart/checkout", &[("shown_prices", &shown_prices)])
        .await;
    assert_eq!(checkout.status(), StatusCode::CONFLICT);
    let page = checkout.text().await.unwrap();
    assert!(page.contains("changed from $99.00 to $5.00"), "{page}");
    assert_eq!(
        hidden_value_in(&page, "shown_prices"),
        format!("{book}:500")
    );
}
