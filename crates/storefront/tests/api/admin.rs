use reqwest::StatusCode;
use storefront::domain::Email;
use storefront::store::users;

use crate::helpers::spawn_app;

#[tokio::test]
async fn only_admins_see_users_and_orders() {
    let app = spawn_app().await;
    let shopper = app.shopper("Shopper").await;
    for path in ["/admin/users", "/admin/orders"] {
        assert_eq!(
            shopper.get(path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let boss = app.shopper("Boss").await;
    assert_eq!(
        boss.get("/admin/users").await.status(),
        StatusCode::FORBIDDEN
    );

    let email = Email::parse(&boss.email()).unwrap();
    assert!(users::grant_admin(&app.pool(), &email).await.unwrap());
    let (status, html) = boss.page("/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&shopper.email()) && html.contains("Admin"));
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Overview", "2.00", "2").await;
    let order = shopper.buy_ok(book, "1").await;
    let (status, html) = boss.page("/admin/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("#{order}")) && html.contains("Pending payment"));

    let nobody = Email::parse("nobody@example.com").unwrap();
    assert!(!users::grant_admin(&app.pool(), &nobody).await.unwrap());
}

/// `/admin/users` was one table of every account (921 KB at 5,115 rows). Now
/// 50 at a time, newest first, with a link to the older ones, and a search
/// over e-mail and name in which `%` and `_` are only characters.
#[tokio::test]
async fn admin_lists_are_paged_newest_first_and_searchable() {
    let app = spawn_app().await;
    let boss = app.shopper("Boss").await;
    let email = Email::parse(&boss.email()).unwrap();
    assert!(users::grant_admin(&app.pool(), &email).await.unwrap());
    let run = std::process::id();
    for n in 0..60 {
        let email = Email::parse(&format!("page-{n:02}-{run}@example.com")).unwrap();
        users::insert(&app.pool(), &format!("Paged {n}"), &email, "x")
            .await
            .unwrap();
    }
    let odd = Email::parse(&format!("odd_100%-{run}@example.com")).unwrap();
    users::insert(&app.pool(), "Odd", &odd, "x").await.unwrap();

    let (status, first) = boss.page("/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first.matches("<tr><td data-label=").count(),
        50,
        "50 rows a page"
    );
    assert!(first.contains(odd.as_str()), "newest first");
    assert!(
        !first.contains(&format!("page-00-{run}")),
        "the oldest is on a later page"
    );
    let older = first
        .split("class=\"pager\"><a href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older users")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let (_, second) = boss.page(&older).await;
    assert!(
        second.contains(&format!("page-00-{run}")),
        "the oldest on the next page"
    );

    let (_, found) = boss.page(&format!("/admin/users?q=page-07-{run}")).await;
    assert_eq!(found.matches("<tr><td data-label=").count(), 1, "one match");
    let (_, literal) = boss.page("/admin/users?q=_100%25").await;
    assert_eq!(
        literal.matches("<tr><td data-label=").count(),
        1,
        "% and _ taken literally"
    );
    assert!(literal.contains(odd.as_str()));
    let (_, none) = boss.page("/admin/users?q=no-such-person&before=junk").await;
    assert!(none.contains("Nothing matches."));

    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Searched", "2.00", "5").await;
    let order = boss.buy_ok(book, "1").await;
    let (_, by_number) = boss.page(&format!("/admin/orders?q=%23{order}")).await;
    assert!(by_number.contains(&format!("#{order}")));
    let (_, by_buyer) = boss
        .page(&format!("/admin/orders?q={}", boss.email()))
        .await;
    assert!(by_buyer.contains(&format!("#{order}")));
    let (_, no_order) = boss.page("/admin/orders?q=nobody-at-all").await;
    assert!(no_order.contains("Nothing matches."));
}
