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
    assert!(users::grant_admin(app.pool(), &email).await.unwrap());
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
    assert!(!users::grant_admin(app.pool(), &nobody).await.unwrap());
}
