use reqwest::StatusCode;

use crate::helpers::{
    TestApp, every_order_holds, hidden_value_in, location, spawn_app, spawn_app_with,
};

fn form<'a>(title: &'a str, price: &'a str, stock: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("title", title),
        ("author", "Author"),
        ("description", "About it."),
        ("price", price),
        ("stock", stock),
    ]
}

#[tokio::test]
async fn a_seller_lists_edits_and_deletes_their_books() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "First Draft", "10.00", "2").await;
    let (_, mine) = seller.page("/book/my_books").await;
    assert!(mine.contains("First Draft") && mine.contains("$10.00"));

    let (status, edit_form) = seller.page(&format!("/book/edit_book/{book}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(edit_form.contains("value=\"First Draft\"") && edit_form.contains("value=\"10.00\""));
    let edited = seller
        .post(
            &format!("/book/edit_book/{book}"),
            &form("Final Cut", "12.5", "7"),
        )
        .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored(&app, book).await, ("Final Cut".to_string(), 1250, 7));

    let deleted = seller.post(&format!("/book/delete_book/{book}"), &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&deleted), "/book/my_books");
    assert_eq!(app.count("SELECT COUNT(*) FROM books").await, 0);
}

#[tokio::test]
async fn bad_book_forms_come_back_with_messages_and_change_nothing() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let long_title = "t".repeat(151);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (form("", "10", "1"), "Enter the title."),
        (form(&long_title, "10", "1"), "At most 150 characters."),
        (form("Ok", "", "1"), "Enter a price."),
        (form("Ok", "ten", "1"), "Enter a price as a number"),
        (form("Ok", "-5", "1"), "Enter a price as a number"),
        (form("Ok", "0", "1"), "The price must be more than zero."),
        (form("Ok", "1.999", "1"), "at most two decimals"),
        (form("Ok", "100000000", "1"), "That price is too high"),
        (form("Ok", "10", "-1"), "The stock cannot be negative."),
        (
            form("Ok", "10", "many"),
            "The stock must be a whole number.",
        ),
        (form("Ok", "10", "1000001"), "At most 100000 copies."),
    ];
    for (fields, message) in &cases {
        let response = seller.post("/book/add_book", fields).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{message}"
        );
        let html = response.text().await.unwrap();
        assert!(html.contains(message), "expected {message:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM books").await, 0);

    let book = app.listed_book(&seller, "Stays", "5.00", "3").await;
    let refused = seller
        .post(
            &format!("/book/edit_book/{book}"),
            &form("Changed", "0", "3"),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.text().await.unwrap().contains("value=\"Changed\""),
        "the form keeps what was typed"
    );
    let title: String = sqlx::query_scalar("SELECT title FROM books WHERE id = ?")
        .bind(book)
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert_eq!(title, "Stays");
}

#[tokio::test]
async fn nobody_edits_or_deletes_another_sellers_book() {
    let app = spawn_app().await;
    let owner = app.shopper("Owner").await;
    let book = app.listed_book(&owner, "Mine", "5.00", "3").await;
    let other = app.shopper("Other").await;

    assert_eq!(
        other.get(&format!("/book/edit_book/{book}")).await.status(),
        StatusCode::FORBIDDEN
    );
    let edit = other
        .post(
            &format!("/book/edit_book/{book}"),
            &form("Stolen", "0.01", "0"),
        )
        .await;
    assert_eq!(edit.status(), StatusCode::FORBIDDEN);
    let delete = other.post(&format!("/book/delete_book/{book}"), &[]).await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    let missing = other.post("/book/delete_book/999999", &[]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    assert_eq!(stored(&app, book).await, ("Mine".to_string(), 500, 3));
    let (_, others_list) = other.page("/book/my_books").await;
    assert!(!others_list.contains("Mine"));
}

#[tokio::test]
async fn seller_pages_send_visitors_to_login() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    for path in [
        "/book/my_books",
        "/book/add_book",
        "/book/edit_book/1",
        "/cart",
        "/orders",
        "/admin/users",
    ] {
        let response = visitor.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/login", "{path}");
    }
}

/// A book's title, price in cents and stock, as stored.
async fn stored(app: &TestApp, book: i64) -> (String, i64, i64) {
    sqlx::query_as("SELECT title, price_cents, stock FROM books WHERE id = ?")
        .bind(book)
        .fetch_one(&app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edit_form_opened_before_a_sale_does_not_write_over_it() {
    let app = spawn_app_with(every_order_holds).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Counted", "6.00", "5").await;
    let path = format!("/book/edit_book/{book}");
    let (_, opened) = seller.page(&path).await;
    let seen = hidden_value_in(&opened, "stock_seen");
    assert_eq!(seen, "5");

    let buyer = app.shopper("Buyer").await;
    buyer.buy_ok(book, "3").await;

    let mut stale = form("Counted, Revised", "6.00", "5");
    stale.push(("stock_seen", &seen));
    let refused = seller.post(&path, &stale).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let again = refused.text().await.unwrap();
    assert!(again.contains("the stock is now 2"), "{again}");
    assert!(
        again.contains("value=\"Counted, Revised\""),
        "what the seller typed is kept"
    );
    assert_eq!(app.stock_of(book).await, 2, "the sale stands");

    let now_seen = hidden_value_in(&again, "stock_seen");
    assert_eq!(now_seen, "2");
    let mut fresh = form("Counted, Revised", "6.00", "4");
    fresh.push(("stock_seen", &now_seen));
    let saved = seller.post(&path, &fresh).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.stock_of(book).await, 4);
    let (_, page) = seller.page(&format!("/book/{book}")).await;
    assert!(page.contains("Counted, Revised"));
}
