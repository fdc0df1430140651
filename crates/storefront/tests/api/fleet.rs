//! Fleet mode: several replicas on one MySQL and one Redis. These run only when
//! TEST_MYSQL_URL and TEST_REDIS_URL are set (scripts/test sets both); under
//! CI=true a missing backend fails instead of skipping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::skip_because;
use crate::common::vanishing::VanishingRelay;
use crate::concurrency::race_for_the_last_copies;
use crate::helpers::{
    TestApp, backends, emptied_redis_db, every_order_holds, flush_redis, fresh_database, location,
    order_id_in, spawn_app_with, spawn_on,
};

/// Two replicas of one shop, or `None` when this run has no MySQL and Redis.
async fn two_replicas(
    adjust: impl Fn(&mut storefront::app::config::Config) + Copy,
) -> Option<(TestApp, TestApp)> {
    let (mysql, redis) = backends();
    if mysql.is_none() || redis.is_none() {
        skip_because("fleet tests need TEST_MYSQL_URL and TEST_REDIS_URL (scripts/test sets them)");
        return None;
    }
    let a = spawn_app_with(|c| {
        c.replica_id = "replica-a".into();
        adjust(c);
    })
    .await;
    let b = spawn_on(&a.database_url, a.redis_url.clone(), |c| {
        c.replica_id = "replica-b".into();
        adjust(c);
    })
    .await;
    Some((a, b))
}

#[tokio::test]
async fn a_shopper_keeps_session_and_cart_across_replicas_and_logs_out_everywhere() {
    let Some((a, b)) = two_replicas(|_| {}).await else {
        return;
    };
    let seller = a.shopper("Seller").await;
    let book = a.listed_book(&seller, "Portable", "5.00", "5").await;

    let on_a = a.shopper("Roamer").await;
    let added = on_a
        .post(
            "/cart/add",
            &[("book_id", &book.to_string()), ("quantity", "2")],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let on_b = on_a.on(&b);
    let response = on_b.get("/cart").await;
    assert_eq!(response.headers()["x-served-by"], "replica-b");
    let cart = response.text().await.unwrap();
    assert!(
        cart.contains("Signed in as <strong>Roamer</strong>"),
        "logged in on B"
    );
    assert!(
        cart.contains("Portable") && cart.contains("id=\"cart-total\">$10.00"),
        "the cart followed"
    );

    // A form rendered by A is accepted by B: the CSRF token lives in the shared session.
    let checkout = on_b.post("/cart/checkout", &[]).await;
    assert_eq!(checkout.status(), StatusCode::SEE_OTHER);
    let order = order_id_in(&location(&checkout));
    let paid = on_a.deliver_and_pay(order, "1", "Paypal").await;
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);

    assert_eq!(
        on_b.post("/logout", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        location(&on_a.get("/orders").await),
        "/login",
        "logged out on A too"
    );
}

#[tokio::test]
async fn forty_buyers_on_two_replicas_never_oversell() {
    let Some((a, b)) = two_replicas(|_| {}).await else {
        return;
    };
    race_for_the_last_copies(&[&a, &b], 40, 5).await;
}

#[tokio::test]
async fn concurrent_cart_checkouts_take_all_their_lines_or_none() {
    let Some((a, b)) = two_replicas(every_order_holds).await else {
        return;
    };
    let seller = a.shopper("Seller").await;
    let common = a.listed_book(&seller, "Common", "3.00", "100").await;
    let rare = a.listed_book(&seller, "Rare", "9.00", "6").await;
    let mut carts = Vec::new();
    for i in 0..24 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let shopper = a.shopper(&format!("cart{i}")).await.on(replica);
        // Half put the rare book first: lock order must not depend on the cart's order.
        let lines = if i % 4 < 2 {
            [common, rare]
        } else {
            [rare, common]
        };
        for book in lines {
            let added = shopper
                .post(
                    "/cart/add",
                    &[("book_id", &book.to_string()), ("quantity", "1")],
                )
                .await;
            assert_eq!(added.status(), StatusCode::SEE_OTHER);
        }
        let token = shopper.token().await;
        carts.push((shopper, token));
    }
    let tasks: Vec<_> = carts
        .into_iter()
        .map(|(shopper, token)| {
            tokio::spawn(async move {
                shopper
                    .post_raw("/cart/checkout", &[("csrf_token", token.as_str())])
                    .await
                    .status()
            })
        })
        .collect();
    let mut placed = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::SEE_OTHER => placed += 1,
            StatusCode::CONFLICT => {}
            other => panic!("a checkout got {other}"),
        }
    }
    assert_eq!(placed, 6, "exactly as many carts as rare copies");
    assert_eq!(a.stock_of(rare).await, 0);
    assert_eq!(
        a.stock_of(common).await,
        100 - 6,
        "refused carts took nothing"
    );
    assert_eq!(
        a.count("SELECT COUNT(*) FROM order_lines").await,
        12,
        "every placed order has both lines"
    );
}

#[tokio::test]
async fn a_payment_submitted_twice_on_two_replicas_charges_once() {
    let Some((a, b)) = two_replicas(|_| {}).await else {
        return;
    };
    let seller = a.shopper("Seller").await;
    let book = a.listed_book(&seller, "Double Click", "10.00", "50").await;
    let buyer = a.shopper("Buyer").await;
    for _ in 0..10 {
        let order = buyer.buy_ok(book, "1").await;
        buyer
            .post(&format!("/delivery/{order}"), &[("provider", "1")])
            .await;
        let token = buyer.token().await;
        let path = format!("/payment/{order}");
        let submit = |shopper: crate::helpers::Shopper| {
            let (path, token) = (path.clone(), token.clone());
            tokio::spawn(async move {
                shopper
                    .post_raw(
                        &path,
                        &[("method", "Credit Card"), ("csrf_token", token.as_str())],
                    )
                    .await
            })
        };
        // Both lead to the paid order (the second calmly), one charge.
        let (first, second) = (submit(buyer.clone()), submit(buyer.on(&b)));
        for response in [first.await.unwrap(), second.await.unwrap()] {
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "order {order}");
            assert_eq!(location(&response), format!("/orders/{order}"));
        }
        let payments = a
            .count(&format!(
                "SELECT COUNT(*) FROM payments WHERE order_id = {order}"
            ))
            .await;
        assert_eq!(payments, 1);
    }
    let charged = a
        .count("SELECT CAST(SUM(amount_cents) AS SIGNED) FROM payments")
        .await;
    assert_eq!(charged, 10 * (1000 + 5000), "ten orders, each charged once");
}

#[tokio::test]
async fn expiry_running_on_every_replica_returns_stock_once() {
    let fast_expiry = |c: &mut storefront::app::config::Config| {
        c.order_ttl = Duration::from_secs(1);
        c.expiry_interval = Duration::from_millis(50);
        // One buyer holds ten orders of one title here, past the default caps
        // (tested in orders.rs); this test is about expiry on every replica.
        c.limits.open_orders = 10;
        c.limits.held_per_title = 30;
        // Every order holds its copies: an unreserved one (past the new
        // buyers' share) would expire on its own clock and return nothing.
        every_order_holds(c);
    };
    let Some((a, _b)) = two_replicas(fast_expiry).await else {
        return;
    };
    let seller = a.shopper("Seller").await;
    let book = a.listed_book(&seller, "Ephemeral", "2.00", "30").await;
    let buyer = a.shopper("Buyer").await;
    for _ in 0..10 {
        buyer.buy_ok(book, "3").await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while a
        .count("SELECT COUNT(*) FROM orders WHERE status IN ('pending_payment', 'unreserved')")
        .await
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "orders did not expire in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.stock_of(book).await, 30, "every copy back, none twice");
    assert_eq!(
        a.count("SELECT COUNT(*) FROM orders WHERE status = 'expired'")
            .await,
        10
    );
}

#[tokio::test]
async fn replicas_starting_together_on_a_fresh_database_migrate_once() {
    let (mysql, redis) = backends();
    if mysql.is_none() {
        skip_because("migrating from several replicas needs TEST_MYSQL_URL (scripts/test sets it)");
        return;
    }
    let (url, _) = crate::helpers::fresh_database().await;
    let starts = (0..4).map(|i| {
        let (url, redis) = (url.clone(), redis.clone());
        tokio::spawn(async move { spawn_on(&url, redis, |c| c.replica_id = format!("r{i}")).await })
    });
    let replicas: Vec<TestApp> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let applied = replicas[0]
        .count("SELECT COUNT(*) FROM _sqlx_migrations")
        .await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql"))
        .unwrap()
        .count() as i64;
    assert_eq!(applied, files, "each migration recorded once");
    assert_eq!(
        replicas[0]
            .count("SELECT COUNT(*) FROM delivery_providers")
            .await,
        4,
        "seed rows inserted once"
    );
    for replica in &replicas {
        assert_eq!(replica.visitor().page("/readyz").await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn metrics_count_orders_and_show_both_pools() {
    let Some((a, _b)) = two_replicas(|_| {}).await else {
        return;
    };
    let seller = a.shopper("Seller").await;
    let book = a.listed_book(&seller, "Measured", "2.00", "5").await;
    let buyer = a.shopper("Buyer").await;
    let order = buyer.buy_ok(book, "1").await;
    buyer.post(&format!("/orders/{order}/cancel"), &[]).await;
    let metrics = reqwest::get(format!("http://{}/metrics", a.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "storefront_orders_total{event=\"created\"}",
        "storefront_orders_total{event=\"cancelled\"}",
        "storefront_db_pool_connections{state=\"max\"}",
        "storefront_redis_pool_connections{state=\"max\"}",
        "storefront_http_request_duration_seconds_bucket{method=\"POST\",route=\"/buy/{book_id}\"",
        "storefront_http_requests_in_flight",
        "storefront_session_store_errors_total",
    ] {
        assert!(metrics.contains(expected), "missing {expected}");
    }
}

/// Replicas learn of catalog changes over Redis pub/sub: within milliseconds, not at once.
async fn shows_within_a_second(app: &TestApp, path: &str, expected: &[&str]) {
    let visitor = app.visitor();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let html = visitor.page(path).await.1;
        if expected.iter().all(|e| html.contains(e)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never showed {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cached_catalog_pages_follow_changes_made_on_another_replica() {
    let Some((a, b)) = two_replicas(every_order_holds).await else {
        return;
    };
    let seller = a.shopper("Seller").await;
    let book = a.listed_book(&seller, "Cached Title", "5.00", "4").await;
    // Warm replica A's cache for the catalog and the book page.
    shows_within_a_second(&a, "/book/catalog", &["4 available"]).await;
    shows_within_a_second(&a, &format!("/book/{book}"), &["4 available"]).await;

    a.shopper("Buyer").await.on(&b).buy_ok(book, "3").await;
    shows_within_a_second(&a, "/book/catalog", &["1 available"]).await;
    shows_within_a_second(&a, &format!("/book/{book}"), &["1 available"]).await;

    let form = [
        ("title", "Renamed Title"),
        ("author", "Test Author"),
        ("description", "New."),
        ("price", "6.00"),
        ("stock", "9"),
    ];
    assert_eq!(
        seller
            .on(&b)
            .post(&format!("/book/edit_book/{book}"), &form)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    shows_within_a_second(
        &a,
        "/book/catalog",
        &["Renamed Title", "$6.00", "9 available"],
    )
    .await;
}

/// A Redis database of this test's own: the test below empties it.
const DATA_LOSS_REDIS_DB: u8 = 13;

#[tokio::test]
async fn cached_catalog_pages_follow_changes_after_redis_loses_its_data() {
    let Some(own_db) = emptied_redis_db(DATA_LOSS_REDIS_DB).await else {
        skip_because("fleet tests need TEST_MYSQL_URL and TEST_REDIS_URL (scripts/test sets them)");
        return;
    };
    let Some((a, b)) = two_replicas(|c| {
        every_order_holds(c);
        c.redis_url = Some(own_db.clone());
    })
    .await
    else {
        return;
    };
    let seller = a.shopper("Seller").await;
    let book = a.listed_book(&seller, "Kept Title", "5.00", "9").await;
    // A few changes, so the counter in Redis is past what it restarts from.
    a.shopper("EarlyBuyer").await.buy_ok(book, "1").await;
    a.shopper("SecondBuyer").await.buy_ok(book, "1").await;
    shows_within_a_second(&a, "/book/catalog", &["7 available"]).await;

    // Redis comes back empty (no persistence, or a lost volume): the catalog
    // counter starts again from 0.
    flush_redis(&own_db).await;
    a.shopper("Buyer").await.on(&b).buy_ok(book, "3").await;
    shows_within_a_second(&a, "/book/catalog", &["4 available"]).await;
}

/// Whether both of `app`'s subscriptions gave up a Redis that went silent
/// (once each) and are up again.
async fn resubscribed_after_silence(app: &TestApp) -> bool {
    let page = app.metrics_page().await;
    ["catalog:version", "session:changed"].iter().all(|channel| {
        let given_up = format!(
            "storefront_redis_subscriptions_ended_total{{channel=\"{channel}\",reason=\"silent\"}} 1\n"
        );
        let up = format!("storefront_redis_subscriptions_up{{channel=\"{channel}\"}} 1\n");
        page.contains(&given_up) && page.contains(&up)
    })
}

/// The data node lost for good: its Redis neither closes nor refuses the
/// replicas' connections, it goes silent, and the Redis that replaces it (the
/// volume moved to another instance) answers at the same name. Replica A
/// reaches Redis through a relay that plays this; B directly. A must give up
/// its silent subscriptions within seconds and follow the new Redis, or it
/// would keep pages and sessions that no announcement can correct: a sale
/// or a logout on B would not be seen on A.
#[tokio::test]
async fn a_replica_whose_redis_vanished_follows_the_redis_that_replaced_it() {
    let Some(redis) = backends().1 else {
        skip_because("fleet tests need TEST_MYSQL_URL and TEST_REDIS_URL (scripts/test sets them)");
        return;
    };
    let mut relayed = url::Url::parse(&redis).unwrap();
    let redis_addr = relayed.socket_addrs(|| Some(6379)).unwrap()[0];
    let relay = VanishingRelay::start(redis_addr).await;
    relayed.set_port(Some(relay.addr.port())).unwrap();
    let a = spawn_app_with(|c| {
        c.replica_id = "replica-a".into();
        c.redis_url = Some(relayed.to_string());
        every_order_holds(c);
    })
    .await;
    let b = spawn_on(&a.database_url, Some(redis), |c| {
        c.replica_id = "replica-b".into();
        every_order_holds(c);
    })
    .await;
    let seller = a.shopper("Seller").await;
    let book = a.listed_book(&seller, "Moved Title", "5.00", "9").await;
    let roamer = a.shopper("Roamer").await;
    a.shopper("Early").await.on(&b).buy_ok(book, "1").await;
    shows_within_a_second(&a, "/book/catalog", &["8 available"]).await;

    relay.vanish();
    let vanished = tokio::time::Instant::now();
    while !resubscribed_after_silence(&a).await {
        assert!(
            vanished.elapsed() < Duration::from_secs(10),
            "replica A still listens to a Redis that went silent 10 s ago:\n{}",
            a.metrics_page().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Pooled connections to the silent Redis are given up as they are
    // tried; readiness says when A reaches the new one.
    while a.visitor().get("/readyz").await.status() != StatusCode::OK {
        assert!(
            vanished.elapsed() < Duration::from_secs(20),
            "replica A not ready 20 s after its Redis vanished"
        );
    }
    eprintln!(
        "subscriptions followed the new Redis and A was ready {:?} after the old one went silent",
        vanished.elapsed()
    );

    shows_within_a_second(&a, "/book/catalog", &["8 available"]).await;
    a.shopper("Later").await.on(&b).buy_ok(book, "3").await;
    shows_within_a_second(&a, "/book/catalog", &["5 available"]).await;
    let orders = roamer.page("/orders").await.1;
    assert!(orders.contains("Signed in as <strong>Roamer</strong>"));
    assert_eq!(
        roamer.on(&b).post("/logout", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        location(&roamer.get("/orders").await),
        "/login",
        "logged out on A too, at once"
    );
}

/// The same for the database: MySQL's host vanishes under load, in the middle
/// of queries, and the MySQL that replaces it answers at the same address.
/// The replica must be ready again within seconds and its search index must
/// follow the new database's feed.
#[tokio::test]
async fn a_replica_whose_database_vanished_under_load_comes_back_on_the_new_one() {
    let (Some(_), Some(redis)) = backends() else {
        skip_because("fleet tests need TEST_MYSQL_URL and TEST_REDIS_URL (scripts/test sets them)");
        return;
    };
    let (_, relayed, relay) = database_behind_a_relay().await;
    let a = spawn_on(&relayed, Some(redis), |c| {
        c.replica_id = "replica-a".into();
    })
    .await;
    let seller = a.shopper("Seller").await;
    a.listed_book(&seller, "Before The Loss", "5.00", "9").await;

    // Shoppers whose every page reads the database, as fast as they can.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for n in 0..16 {
        let shopper = a.shopper(&format!("Reader{n}")).await;
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = shopper.get("/orders").await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.vanish();
    let vanished =
        ready_within_10_s(&a, "replica A not ready 10 s after its database vanished").await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    // What the pool in use still holds of the silent database: not
    // asserted, as connections whose queries were cut short stay held until
    // the kernel gives them up, unless every one was and the pool was
    // replaced (the next test; the runbook's "Day two: a manager lost for
    // good").
    let in_use = "storefront_db_pool_connections{state=\"in_use\"}";
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!(
        "{} of the pool's connections in use {:?} after the loss",
        a.metric(in_use).await,
        vanished.elapsed()
    );
    // The index follows the new database's feed: a search finds a book
    // listed now, and the index answered it.
    let by_index = "storefront_catalog_searches_total{source=\"index\"}";
    let searched_before = a.metric(by_index).await;
    let book = a.listed_book(&seller, "After The Loss", "5.00", "9").await;
    let found = a.visitor().page("/book/catalog?q=after+loss").await.1;
    assert!(found.contains(&format!("/book/{book}")), "{found}");
    assert_eq!(a.metric(by_index).await, searched_before + 1.0);
}

/// The worst moment of that loss: every connection of the pool is in a
/// query when the host goes. Each waits for an answer that never comes, and
/// sqlx's ping of each one given back has no time limit, so none is ever
/// freed; the pool is replaced once it has given nothing back for 5 s. A
/// second stall while the first pool still holds its connections is not
/// replaced: a server that only stopped answering for a while (a lock every
/// query waits for) must not get a new pool's worth of connections every
/// few seconds.
#[tokio::test]
async fn a_pool_whose_every_connection_went_with_the_host_is_replaced() {
    let (Some(_), Some(redis)) = backends() else {
        skip_because("fleet tests need TEST_MYSQL_URL and TEST_REDIS_URL (scripts/test sets them)");
        return;
    };
    let (database, relayed, relay) = database_behind_a_relay().await;
    let a = spawn_on(&relayed, Some(redis), |c| {
        c.database_max_connections = 4;
    })
    .await;
    let replaced = "storefront_db_pools_replaced_total";
    assert_eq!(a.metric(replaced).await, 0.0);

    every_connection_cut_off_mid_query(&a, &relay, &database, "SELECT SLEEP(60)").await;
    ready_within_10_s(
        &a,
        "replica not ready 10 s after its pool's every connection vanished",
    )
    .await;
    assert_eq!(a.metric(replaced).await, 1.0);
    let seller = a.shopper("Seller").await;
    a.listed_book(&seller, "After The Stall", "5.00", "9").await;

    // Again, while the first pool's four are still held (the relay never
    // lets them go): the new pool is left stalled.
    every_connection_cut_off_mid_query(&a, &relay, &database, "SELECT SLEEP(61)").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        a.metric(replaced).await,
        1.0,
        "replaced while the first pool held connections"
    );
    assert_eq!(
        a.visitor().get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// The false alarm: a lock every query of the pool waits for longer than
/// 5 s looks like a vanished host, and the pool is replaced. When the lock
/// goes, the old pool's connections finish and are closed, not kept: the
/// replica is back to one pool's worth on the server, and a later stall is
/// replaced again.
#[tokio::test]
async fn a_pool_replaced_while_its_queries_waited_lets_them_go_when_they_end() {
    let (Some(_), Some(redis)) = backends() else {
        skip_because("fleet tests need TEST_MYSQL_URL and TEST_REDIS_URL (scripts/test sets them)");
        return;
    };
    let (database, _) = fresh_database().await;
    let a = spawn_on(&database, Some(redis), |c| {
        c.database_max_connections = 4;
    })
    .await;
    let holder = sqlx::AnyPool::connect(&database).await.unwrap();
    let mut lock = holder.acquire().await.unwrap();
    let replaced = "storefront_db_pools_replaced_total";
    for round in 1..=2 {
        sqlx::query("SELECT GET_LOCK(DATABASE(), 0)")
            .execute(&mut *lock)
            .await
            .unwrap();
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let pool = a.pool();
                tokio::spawn(async move {
                    sqlx::query("SELECT GET_LOCK(DATABASE(), 30)")
                        .execute(&pool)
                        .await
                })
            })
            .collect();
        running_on_the_server(&database, "SELECT GET_LOCK(DATABASE(), 30)", 4).await;
        let old_pools = sessions_running(&holder, "SELECT GET_LOCK(DATABASE(), 30)").await;
        let stalled = tokio::time::Instant::now();
        while a.metric(replaced).await < f64::from(round) {
            assert!(
                stalled.elapsed() < Duration::from_secs(10),
                "round {round}: not replaced"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Each waiting query takes the lock in turn; its session's end frees it.
        sqlx::query("SELECT RELEASE_LOCK(DATABASE())")
            .execute(&mut *lock)
            .await
            .unwrap();
        for query in waiting {
            query.await.unwrap().unwrap();
        }
        let released = tokio::time::Instant::now();
        while sessions_still_open(&holder, &old_pools).await > 0 {
            assert!(
                released.elapsed() < Duration::from_secs(5),
                "round {round}: the old pool's connections stayed open"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The server's ids of the sessions running `query` (the user's own, as
/// the processlist shows them).
async fn sessions_running(via: &sqlx::AnyPool, query: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = ?")
        .bind(query)
        .fetch_all(via)
        .await
        .unwrap()
}

/// How many of these sessions the server still has.
async fn sessions_still_open(via: &sqlx::AnyPool, ids: &[i64]) -> usize {
    let open: Vec<i64> = sqlx::query_scalar("SELECT ID FROM information_schema.PROCESSLIST")
        .fetch_all(via)
        .await
        .unwrap();
    ids.iter().filter(|id| open.contains(id)).count()
}

/// Waits until `a` is ready again, failing with `what` and its metrics
/// after 10 s; returns when the wait began (the loss).
async fn ready_within_10_s(a: &TestApp, what: &str) -> tokio::time::Instant {
    let vanished = tokio::time::Instant::now();
    while a.visitor().get("/readyz").await.status() != StatusCode::OK {
        assert!(
            vanished.elapsed() < Duration::from_secs(10),
            "{what}:\n{}",
            a.metrics_page().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "ready {:?} after the database went silent",
        vanished.elapsed()
    );
    vanished
}

/// A fresh MySQL database, reached directly (the first URL) and through a
/// relay that can play its host vanishing (the second).
async fn database_behind_a_relay() -> (String, String, VanishingRelay) {
    let (database, _) = fresh_database().await;
    let mut relayed = url::Url::parse(&database).unwrap();
    let mysql_addr = relayed.socket_addrs(|| Some(3306)).unwrap()[0];
    let relay = VanishingRelay::start(mysql_addr).await;
    relayed.set_port(Some(relay.addr.port())).unwrap();
    (database, relayed.into(), relay)
}

/// Runs `query` on each of the pool's 4 connections, makes the host vanish
/// once the server runs all four, and cuts them short, as the request
/// timeout cuts a page's query.
async fn every_connection_cut_off_mid_query(
    a: &TestApp,
    relay: &VanishingRelay,
    database: &str,
    query: &'static str,
) {
    let queries: Vec<_> = (0..4)
        .map(|_| {
            let pool = a.pool();
            tokio::spawn(async move { sqlx::query(query).execute(&pool).await })
        })
        .collect();
    running_on_the_server(database, query, 4).await;
    relay.vanish();
    for query in queries {
        query.abort();
    }
}

/// Waits until `count` connections to `database` run `query`.
async fn running_on_the_server(database: &str, query: &str, count: i64) {
    let name = url::Url::parse(database).unwrap().path()[1..].to_string();
    let watcher = sqlx::AnyPool::connect(database).await.unwrap();
    let started = tokio::time::Instant::now();
    loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO = ?",
        )
        .bind(&name)
        .bind(query)
        .fetch_one(&watcher)
        .await
        .unwrap();
        if running == count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{running} of {count} queries running after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Redis twin of the limiter gives an overloaded attempt back to both
/// the address and the account, as the in-memory one does (its unit test).
#[tokio::test]
async fn login_attempts_refused_for_overload_do_not_count_in_redis() {
    let Some(redis) = backends().1 else {
        skip_because("the Redis limiter needs TEST_REDIS_URL (scripts/test sets it)");
        return;
    };
    use storefront::edge::ratelimit::{LoginLimiter, Verdict};
    let pool = storefront::shared::redis::redis_pool(&redis, 2).unwrap();
    let limits = storefront::app::config::Limits {
        login_per_address: 3,
        login_per_account: 3,
        ..storefront::app::config::Limits::default()
    };
    let limiter = LoginLimiter::in_redis(pool, &limits);
    let (address, account) = (
        crate::helpers::random_address(),
        crate::helpers::unique_email("overload"),
    );
    for _ in 0..10 {
        let verdict = limiter.attempt(&address, &account).await.unwrap();
        assert_eq!(verdict, Verdict::Allowed);
        limiter.not_checked(&address, &account).await.unwrap();
    }
    for _ in 0..3 {
        let verdict = limiter.attempt(&address, &account).await.unwrap();
        assert_eq!(verdict, Verdict::Allowed, "given back, not counted");
    }
    assert!(matches!(
        limiter.attempt(&address, &account).await.unwrap(),
        Verdict::AddressThrottled(_)
    ));
}
