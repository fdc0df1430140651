//! Abuse resistance: login bursts, spraying, forged client
//! addresses, hoarding stock, framework rejections. The floods that measure a
//! process's memory are in `floods.rs`; slow clients in `slow_clients.rs`.

use reqwest::StatusCode;
use std::sync::atomic::Ordering;

use crate::helpers::{
    PASSWORD, Shopper, fresh_buy_key, location, random_address, spawn_app, spawn_app_with,
};

/// Sends the login form `n` times at once, each from its own address (a
/// distributed attack: only the account's limit can stop it). Statuses
/// arrive on the channel as they are answered.
async fn burst(
    visitor: &Shopper,
    email: &str,
    password: &str,
    n: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<StatusCode> {
    let token = visitor.token().await;
    let (answered, statuses) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let (visitor, answered) = (visitor.clone(), answered.clone());
        let form = [
            ("email", email.to_string()),
            ("password", password.to_string()),
            ("csrf_token", token.clone()),
        ];
        tokio::spawn(async move {
            let response = visitor
                .client
                .post(visitor.url("/login"))
                .header("x-forwarded-for", random_address())
                .form(&form)
                .send()
                .await
                .unwrap();
            let _ = answered.send(response.status());
        });
    }
    statuses
}

#[tokio::test]
async fn forty_parallel_wrong_passwords_check_at_most_the_limit_and_the_right_one_is_refused() {
    let app = spawn_app().await;
    let ana = app.shopper("Ana").await;
    let limit = app.state.config.limits.login_per_account as usize;
    let hashed_before = app.state.hasher.stats().computed.load(Ordering::SeqCst);

    let attacker = app.visitor();
    let mut answers = burst(&attacker, &ana.email(), "wrong guess", 40).await;
    let mut statuses = Vec::new();
    // The right password goes in as soon as the first attempt is refused,
    // while the checked ones are still being hashed.
    while let Some(status) = answers.recv().await {
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    let right = attacker.login(&ana.email(), PASSWORD).await;
    while let Some(status) = answers.recv().await {
        statuses.push(status);
    }

    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        checked <= limit,
        "{checked} passwords checked, limit {limit}"
    );
    assert_eq!(
        checked + throttled,
        40,
        "every other answer is 429: {statuses:?}"
    );
    assert_eq!(
        right.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the right password in the burst"
    );
    assert!(right.headers().contains_key("retry-after"));
    let hashed = app.state.hasher.stats().computed.load(Ordering::SeqCst) - hashed_before;
    assert!(
        hashed <= limit as u64,
        "{hashed} hashes for at most {limit} checks"
    );
}

#[tokio::test]
async fn an_attackers_address_is_throttled_before_the_account_it_targets() {
    let app = spawn_app_with(|c| {
        c.limits.login_per_address = 3;
        c.limits.login_per_account = 5;
    })
    .await;
    let ana = app.shopper("Ana").await;
    let attacker = app.visitor();
    for _ in 0..3 {
        let refused = attacker.login(&ana.email(), "guess").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..10 {
        let refused = attacker.login(&ana.email(), "guess").await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.text().await.unwrap().contains("from your network"));
    }
    // Spraying other accounts from that address is refused too, before any check.
    let bob = app.shopper("Bob").await;
    assert_eq!(
        attacker.login(&bob.email(), "guess").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Ana's account took only the three attempts the address was allowed.
    app.visitor().login_ok(&ana.email(), PASSWORD).await;
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = Default::default();
        c.limits.login_per_address = 3;
    })
    .await;
    // Every request now counts under the peer, 127.0.0.1: in a shared Redis
    // that counter may still hold an earlier run's attempts.
    if let Some(pool) = &app.state.redis {
        let mut conn = pool.get().await.unwrap();
        deadpool_redis::redis::cmd("DEL")
            .arg("ratelimit:login:addr:127.0.0.1")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    let ana = app.shopper("Ana").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        // A new address in the header each time: ignored, the peer is not a proxy.
        let attacker = app.visitor();
        statuses.push(attacker.login(&ana.email(), "guess").await.status());
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(
        checked, 3,
        "the TCP peer's address was counted: {statuses:?}"
    );
}

#[tokio::test]
async fn a_shopper_cannot_hold_more_unpaid_orders_or_copies_than_the_caps() {
    let app = spawn_app_with(|c| {
        c.limits.open_orders = 3;
        c.limits.held_per_title = 4;
    })
    .await;
    let seller = app.shopper("Seller").await;
    let common = app.listed_book(&seller, "Common", "3.00", "100").await;
    let other = app.listed_book(&seller, "Other", "3.00", "100").await;
    let hoarder = app.shopper("Hoarder").await;

    hoarder.buy_ok(common, "3").await;
    let past_title_cap = hoarder.buy(common, "2").await;
    assert_eq!(past_title_cap.status(), StatusCode::CONFLICT);
    let html = past_title_cap.text().await.unwrap();
    assert!(
        html.contains("at most 4 copies of “Common” in unpaid orders")
            && html.contains("already hold 3"),
        "a clear message"
    );
    let fits = hoarder.buy_ok(common, "1").await;
    hoarder.buy_ok(other, "1").await;

    let past_order_cap = hoarder.buy(other, "1").await;
    assert_eq!(past_order_cap.status(), StatusCode::CONFLICT);
    assert!(
        past_order_cap
            .text()
            .await
            .unwrap()
            .contains("You already have 3 unpaid orders")
    );
    assert_eq!(app.stock_of(common).await, 96);
    assert_eq!(app.stock_of(other).await, 99);

    // Cancelling one frees a place; other shoppers were never affected.
    let cancelled = hoarder.post(&format!("/orders/{fits}/cancel"), &[]).await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    hoarder.buy_ok(other, "1").await;
    app.shopper("Other").await.buy_ok(common, "4").await;
}

#[tokio::test]
async fn parallel_orders_from_one_shopper_never_pass_the_cap() {
    let app = spawn_app_with(|c| c.limits.open_orders = 3).await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Hoarded", "3.00", "100").await;
    let hoarder = app.shopper("Hoarder").await;
    let token = hoarder.token().await;
    let buys: Vec<_> = (0..12)
        .map(|_| {
            let (hoarder, token) = (hoarder.clone(), token.clone());
            tokio::spawn(async move {
                hoarder
                    .post_raw(
                        &format!("/buy/{book}"),
                        &[
                            ("quantity", "1"),
                            ("buy_key", &fresh_buy_key()),
                            ("csrf_token", token.as_str()),
                        ],
                    )
                    .await
                    .status()
            })
        })
        .collect();
    let mut placed = 0;
    for buy in buys {
        match buy.await.unwrap() {
            StatusCode::SEE_OTHER => placed += 1,
            StatusCode::CONFLICT => {}
            other => panic!("a parallel buy answered {other}"),
        }
    }
    assert_eq!(placed, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(app.stock_of(book).await, 97);
}

#[tokio::test]
async fn framework_rejections_are_the_shops_pages_with_truthful_statuses() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let cases = [
        ("/book/catalog?q=a&q=b", StatusCode::BAD_REQUEST),
        ("/book/%FF", StatusCode::BAD_REQUEST),
        ("/book/%FF/cover.svg", StatusCode::BAD_REQUEST),
        ("/cart/checkout", StatusCode::METHOD_NOT_ALLOWED),
        ("/no/such/page", StatusCode::NOT_FOUND),
    ];
    for (path, status) in cases {
        let response = visitor.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        assert!(
            response.headers().contains_key("content-security-policy"),
            "{path}"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains("Back to the catalog")
                && html.contains(&format!("Error {}", status.as_u16())),
            "{path} shows the shop's error page"
        );
        assert!(!html.contains("Failed to deserialize") && !html.contains("Invalid UTF-8"));
    }
    let not_allowed = visitor.get("/cart/checkout").await;
    assert_eq!(not_allowed.headers()["allow"], "POST");
    // Probes keep their plain answers.
    let (status, body) = visitor.page("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.starts_with("ready\nsearch: "),
        "readiness, then where searches go: {body}"
    );
}

#[tokio::test]
async fn anonymous_pages_store_no_session_and_their_forms_still_work() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let response = visitor.get("/login").await;
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        !cookies.iter().any(|c| c.starts_with("bookstore_session=")),
        "no session for looking: {cookies:?}"
    );
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("bookstore_csrf="))
        .expect("a signed CSRF cookie");
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Lax"),
        "{csrf}"
    );

    // A visitor cannot make up a token: the cookie's signature is checked.
    let forger = app.visitor();
    let url = forger.url("/").parse().unwrap();
    forger
        .jar
        .add_cookie_str("bookstore_csrf=00ff; Path=/", &url);
    let forged = forger
        .post_raw(
            "/login",
            &[
                ("email", "a@example.com"),
                ("password", "x"),
                ("csrf_token", "00ff"),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // The same form, with the token it was given, works.
    let ana = app.shopper("Ana").await;
    let returning = app.visitor();
    returning.login_ok(&ana.email(), PASSWORD).await;
    assert!(
        returning.session_cookie().is_some(),
        "logging in stores a session"
    );
    assert_eq!(location(&returning.get("/orders").await), "");
}

/// Registrations were unlimited: 5,000 from one address in 112 s. Each
/// client address may now make `REGISTER_MAX_PER_ADDRESS` in its window (a
/// duplicate address counts too); the next is the form again, 429, with
/// `Retry-After`, and no account is made. Another address is not affected.
#[tokio::test]
async fn registrations_from_one_address_are_limited() {
    let app = spawn_app_with(|c| c.limits.register_per_address = 3).await;
    let registrar = app.visitor();
    let register = |n: usize| {
        let registrar = registrar.clone();
        async move {
            registrar
                .post(
                    "/register",
                    &[
                        ("name", "Bulk"),
                        (
                            "email",
                            &format!("bulk-{n}-{}@example.com", std::process::id()),
                        ),
                        ("password", PASSWORD),
                    ],
                )
                .await
        }
    };
    for n in 0..3 {
        assert_eq!(
            register(n).await.status(),
            StatusCode::SEE_OTHER,
            "registration {n}"
        );
    }
    let refused = register(3).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many new accounts from your network")
    );
    let made = app
        .count(&format!(
            "SELECT COUNT(*) FROM users WHERE email LIKE 'bulk-%-{}@example.com'",
            std::process::id()
        ))
        .await;
    assert_eq!(made, 3, "no account beyond the limit");

    let elsewhere = app.visitor();
    let other = elsewhere
        .post(
            "/register",
            &[
                ("name", "Other"),
                (
                    "email",
                    &format!("other-{}@example.com", std::process::id()),
                ),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        other.status(),
        StatusCode::SEE_OTHER,
        "another address registers"
    );
}

/// Five wrong passwords from rotating addresses used to lock Ana out for 15
/// minutes, even with her right password. Strangers now lock out unknown
/// devices only: the browser she logged in from before (its signed device
/// cookie) still gets in; a new browser waits out the window; and a device
/// cookie copied to another account, or forged, counts for nothing.
#[tokio::test]
async fn strangers_cannot_lock_a_user_out_of_her_own_browser() {
    let app = spawn_app().await;
    let ana = app.shopper("Ana").await; // logged in once: a known device
    let email = ana.email();
    assert_eq!(
        ana.post("/logout", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    for _ in 0..6 {
        let stranger = app.visitor(); // a new address each time
        let refused = stranger.login(&email, "guess").await.status();
        assert!(
            matches!(
                refused,
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ),
            "{refused}"
        );
    }
    let new_browser = app.visitor();
    assert_eq!(
        new_browser.login(&email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "an unknown device waits out the window"
    );
    ana.login_ok(&email, PASSWORD).await;

    // Bob's known device is not a known device of Ana's account.
    let bob = app.shopper("Bob").await;
    assert_eq!(
        bob.post("/logout", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        bob.login(&email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "another account's device cookie counts for nothing"
    );
}
