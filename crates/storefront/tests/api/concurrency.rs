use reqwest::StatusCode;

use crate::helpers::{Shopper, TestApp, spawn_app};

/// The original sold 9 copies of a book with stock 5 to 40 racing buyers.
pub async fn race_for_the_last_copies(replicas: &[&TestApp], buyers: usize, stock: i64) {
    let app = replicas[0];
    let seller = app.shopper("Seller").await;
    let book = app
        .listed_book(&seller, "Last Copies", "10.00", &stock.to_string())
        .await;
    let mut shoppers: Vec<Shopper> = Vec::new();
    for i in 0..buyers {
        let shopper = app.shopper(&format!("buyer{i}")).await;
        shoppers.push(shopper.on(replicas[i % replicas.len()]));
    }
    let mut tasks = Vec::new();
    for shopper in shoppers {
        let token = shopper.token().await;
        tasks.push(tokio::spawn(async move {
            shopper
                .post_raw(
                    &format!("/buy/{book}"),
                    &[("quantity", "1"), ("csrf_token", token.as_str())],
                )
                .await
                .status()
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::SEE_OTHER => won += 1,
            StatusCode::CONFLICT => {}
            other => panic!("a racing buyer got {other}"),
        }
    }
    assert_eq!(won, stock, "exactly `stock` buyers win");
    assert_eq!(app.stock_of(book).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, stock);
    let sold: i64 = app
        .count("SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM order_lines")
        .await;
    assert_eq!(sold, stock, "no copy sold twice");
}

#[tokio::test]
async fn forty_buyers_racing_for_five_copies_never_oversell() {
    let app = spawn_app().await;
    race_for_the_last_copies(&[&app], 40, 5).await;
}
