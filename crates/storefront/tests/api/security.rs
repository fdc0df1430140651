use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn forms_without_the_session_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Guarded", "10.00", "3").await;
    let buyer = app.shopper("Buyer").await;

    let no_token = buyer
        .post_raw(&format!("/buy/{book}"), &[("quantity", "1")])
        .await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let wrong_token = buyer
        .post_raw(
            &format!("/buy/{book}"),
            &[("quantity", "1"), ("csrf_token", "00ff")],
        )
        .await;
    assert_eq!(wrong_token.status(), StatusCode::FORBIDDEN);
    let delete = buyer
        .post_raw(&format!("/book/delete_book/{book}"), &[])
        .await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    let logout = buyer.post_raw("/logout", &[]).await;
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);

    assert_eq!(app.stock_of(book).await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    let (_, still) = buyer.page("/").await;
    assert!(
        still.contains("Signed in as"),
        "a forged logout must not log out"
    );
}

#[tokio::test]
async fn a_cross_origin_post_is_refused_even_with_a_token() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Guarded", "10.00", "3").await;
    let buyer = app.shopper("Buyer").await;
    let token = buyer.token().await;
    for (header, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = buyer
            .client
            .post(buyer.url(&format!("/buy/{book}")))
            .header(header, value)
            .form(&[("quantity", "1"), ("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
    }
    assert_eq!(app.stock_of(book).await, 3);
}

#[tokio::test]
async fn every_response_has_security_headers_and_the_replica_id() {
    let app = spawn_app().await;
    for path in ["/", "/book/catalog", "/login", "/nope", "/healthz"] {
        let response = app.visitor().get(path).await;
        let headers = response.headers();
        let csp = headers
            .get("content-security-policy")
            .expect(path)
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-served-by"], "local");
        assert!(headers.contains_key("x-request-id"));
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test]
async fn a_shoppers_own_pages_are_never_stored_but_the_stylesheet_is() {
    let app = spawn_app().await;
    let shopper = app.shopper("Private").await;
    for path in ["/cart", "/orders", "/book/my_books", "/book/catalog"] {
        let response = shopper.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    let css = shopper.get("/static/style.css").await;
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
}

#[tokio::test]
async fn session_cookies_are_http_only_and_same_site() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let token = visitor.token().await;
    let response = visitor
        .post_raw(
            "/register",
            &[
                ("name", "Ana"),
                ("email", &crate::helpers::unique_email("ana")),
                ("password", crate::helpers::PASSWORD),
                ("csrf_token", &token),
            ],
        )
        .await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("bookstore_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

/// Where the shop is on https (`PUBLIC_ORIGIN`), every cookie it sets is
/// `Secure`, the language switch's too (it lacked the flag); on plain http
/// (the embedded default) none is, or the browser would drop them.
#[tokio::test]
async fn cookies_are_secure_where_the_shop_is_on_https() {
    for (origin, secure) in [(Some("https://shop.example"), true), (None, false)] {
        let app = spawn_app_with(|c| c.public_origin = origin.map(str::to_string)).await;
        let visitor = app.visitor();
        let switched = visitor.get("/lang/es?next=/").await;
        let lang_cookie = switched.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(lang_cookie.starts_with("lang=es"), "{lang_cookie}");
        assert_eq!(lang_cookie.contains("; Secure"), secure, "{lang_cookie}");
        let login = visitor.get("/login").await;
        for cookie in login.headers().get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
        }
    }
}

#[tokio::test]
async fn probes_answer_and_metrics_stay_off_the_public_port() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    assert_eq!(
        visitor.page("/healthz").await,
        (StatusCode::OK, "ok".into())
    );
    let (status, body) = visitor.page("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.starts_with("ready\nsearch: "),
        "readiness, then where searches go: {body}"
    );
    assert_eq!(
        visitor.get("/metrics").await.status(),
        StatusCode::NOT_FOUND
    );
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(
        "storefront_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"}"
    ));
    assert!(metrics.contains("storefront_build_info{replica=\"local\""));
}
