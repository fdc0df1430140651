use reqwest::StatusCode;

use crate::helpers::{Shopper, TestApp, fresh_buy_key, location, order_id_in, spawn_app};

/// The original sold 9 copies of a book with stock 5 to 40 racing buyers.
/// All 40 are new buyers here: the first ones' orders hold copies, the rest
/// wait unreserved once new buyers hold half the title (hoarding.rs), and
/// payment decides. All of them pay at once: exactly `stock` are paid, and no
/// copy is sold twice.
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
    let orders = all_at_once(shoppers, move |shopper, token| async move {
        let response = shopper
            .post_raw(
                &format!("/buy/{book}"),
                &[
                    ("quantity", "1"),
                    ("buy_key", &fresh_buy_key()),
                    ("csrf_token", token.as_str()),
                ],
            )
            .await;
        match response.status() {
            StatusCode::SEE_OTHER => Some((shopper, order_id_in(&location(&response)))),
            StatusCode::CONFLICT => None,
            other => panic!("a racing buyer got {other}"),
        }
    })
    .await;
    let placed: Vec<(Shopper, i64)> = orders.into_iter().flatten().collect();
    assert!(placed.len() as i64 >= stock, "every copy found a buyer");

    for (shopper, order) in &placed {
        let delivery = shopper
            .post(&format!("/delivery/{order}"), &[("provider", "1")])
            .await;
        assert_eq!(delivery.status(), StatusCode::SEE_OTHER);
    }
    let payers: Vec<Shopper> = placed.iter().map(|(shopper, _)| shopper.clone()).collect();
    let order_of: std::collections::HashMap<String, i64> = placed
        .iter()
        .map(|(shopper, order)| (shopper.email(), *order))
        .collect();
    let paid = all_at_once(payers, move |shopper, token| {
        let order = order_of[&shopper.email()];
        async move {
            let response = shopper
                .post_raw(
                    &format!("/payment/{order}"),
                    &[("method", "Paypal"), ("csrf_token", token.as_str())],
                )
                .await;
            match response.status() {
                StatusCode::SEE_OTHER => true,
                StatusCode::CONFLICT => false,
                other => panic!("a racing payment got {other}"),
            }
        }
    })
    .await;
    let won = paid.into_iter().filter(|paid| *paid).count() as i64;
    assert_eq!(won, stock, "exactly `stock` buyers pay");
    assert_eq!(app.stock_of(book).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, stock);
    let sold: i64 = app
        .count(
            "SELECT CAST(COALESCE(SUM(l.quantity), 0) AS SIGNED) FROM order_lines l \
             JOIN orders o ON o.id = l.order_id WHERE o.status = 'paid'",
        )
        .await;
    assert_eq!(sold, stock, "no copy sold twice");
}

/// Runs `act` for every shopper at the same moment (each with its CSRF
/// token, fetched first) and returns what each returned.
async fn all_at_once<T, F, Fut>(shoppers: Vec<Shopper>, act: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Shopper, String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut tasks = Vec::new();
    for shopper in shoppers {
        let token = shopper.token().await;
        let act = act.clone();
        tasks.push(tokio::spawn(async move { act(shopper, token).await }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn forty_buyers_racing_for_five_copies_never_oversell() {
    let app = spawn_app().await;
    race_for_the_last_copies(&[&app], 40, 5).await;
}
