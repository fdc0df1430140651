//! The shop in Spanish and English: the browser's preference, the header's
//! switch (a cookie that overrides it), and a Spanish shopper who never meets
//! an English sentence.

use reqwest::StatusCode;
use storefront::i18n::{Lang, SOURCES};

use crate::helpers::{Shopper, location, spawn_app, spawn_app_with};

const SPANISH_BROWSER: &str = "es-ES,es;q=0.9,en;q=0.8";

async fn page_in(visitor: &Shopper, path: &str, accept: &str) -> (StatusCode, String) {
    let response = visitor
        .client
        .get(visitor.url(path))
        .header("accept-language", accept)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_browser_that_prefers_spanish_gets_the_shop_in_spanish() {
    let app = spawn_app_with(|c| c.seed_demo_if_empty = true).await;
    let visitor = app.visitor();
    let response = visitor
        .client
        .get(visitor.url("/book/catalog?q=austen"))
        .header("accept-language", SPANISH_BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let vary = response.headers().get("vary").unwrap().to_str().unwrap();
    assert!(
        vary.contains("Accept-Language") && vary.contains("Cookie"),
        "{vary}"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<html lang="es">"#));
    assert!(html.contains("<h1>Catálogo</h1>"));
    assert!(
        html.contains("Pride and Prejudice"),
        "titles stay as they are"
    );
    assert!(html.contains("9,99 US$"), "prices written the Spanish way");
    assert!(html.contains("que coinciden con «austen»"));
    assert!(!html.contains("Catalog<"));

    let (_, english) = page_in(&visitor, "/book/catalog?q=austen", "en-US,en;q=0.9").await;
    assert!(english.contains(r#"<html lang="en">"#));
    assert!(english.contains("$9.99"));
    let (_, mexican) = page_in(&visitor, "/", "es-MX").await;
    assert!(
        mexican.contains(r#"<html lang="es">"#),
        "a regional Spanish is Spanish"
    );
}

#[tokio::test]
async fn english_is_the_default_and_garbage_is_ignored() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let (status, html) = visitor.page("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("Welcome to the Bookstore"));
    for odd in ["de-DE,fr;q=0.9", ";;q=,,*", "x-klingon-tlh", "*"] {
        let (status, html) = page_in(&visitor, "/", odd).await;
        assert_eq!(status, StatusCode::OK, "{odd:?}");
        assert!(html.contains(r#"<html lang="en">"#), "{odd:?}");
    }
}

#[tokio::test]
async fn the_switch_remembers_the_choice_over_the_browsers_preference() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let (_, english) = visitor.page("/book/catalog").await;
    assert!(
        english.contains(r#"href="/lang/es?next=%2Fbook%2Fcatalog""#),
        "the header offers Spanish, back to this page"
    );

    let switched = visitor.get("/lang/es?next=/book/catalog").await;
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&switched), "/book/catalog");
    let cookie = switched
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cookie.starts_with("lang=es;"), "{cookie}");
    assert!(cookie.contains("Path=/") && cookie.contains("SameSite=Lax"));
    assert!(
        cookie.contains("Max-Age="),
        "remembered beyond this visit: {cookie}"
    );
    assert_eq!(
        switched.headers().get_all("set-cookie").iter().count(),
        1,
        "no session is needed (the choice survives a session store outage)"
    );

    let (_, spanish) = page_in(&visitor, "/book/catalog", "en-US,en").await;
    assert!(
        spanish.contains(r#"<html lang="es">"#),
        "the choice beats the browser"
    );
    assert!(spanish.contains(r#"href="/lang/en?next=%2Fbook%2Fcatalog""#));

    visitor.get("/lang/en?next=/").await;
    let (_, english) = page_in(&visitor, "/", SPANISH_BROWSER).await;
    assert!(english.contains(r#"<html lang="en">"#), "and back");
}

#[tokio::test]
async fn the_switch_only_sends_shoppers_back_to_this_site() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    for next in [
        "//evil.example/x",
        "http://evil.example",
        "https:evil.example",
        "/\\evil.example",
        "evil.example",
        "",
    ] {
        let query = serde_urlencoded::to_string([("next", next)]).unwrap();
        let response = visitor.get(&format!("/lang/es?{query}")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(location(&response), "/", "{next:?}");
    }
    let unknown = visitor.get("/lang/xx?next=/cart").await;
    assert_eq!(location(&unknown), "/cart");
    assert!(
        unknown.headers().get("set-cookie").is_none(),
        "an unknown language is not remembered"
    );
}

#[tokio::test]
async fn error_pages_speak_spanish() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let (status, html) = page_in(&visitor, "/no/such/page", SPANISH_BROWSER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains(r#"<html lang="es">"#));
    assert!(html.contains("No encontrado") && html.contains("Volver al catálogo"));

    let response = visitor
        .client
        .put(visitor.url("/book/catalog"))
        .header("accept-language", SPANISH_BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Aquí no se permite"),
        "a refusal outside the handlers too"
    );
}

/// The shopper's story in Spanish, page by page: no English message of the
/// catalogue may appear on any of them.
#[tokio::test]
async fn a_spanish_shopper_never_meets_an_english_sentence() {
    let app = spawn_app().await;
    let seller = app.shopper("Vendedora").await;
    let book = app.listed_book(&seller, "Niebla", "1234.50", "3").await;
    let shopper = app.visitor();
    shopper.get("/lang/es?next=/").await;

    let mut pages = vec![shopper.page("/").await.1, shopper.page("/register").await.1];
    let refused = shopper
        .post(
            "/register",
            &[("name", ""), ("email", "nope"), ("password", "x")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = refused.text().await.unwrap();
    assert!(
        refused.contains("Escribe un correo electrónico como"),
        "validation errors"
    );
    pages.push(refused);
    let email = crate::helpers::unique_email("lectora");
    shopper.register("Lectora", &email, "correct horse").await;
    let (_, login) = shopper.page("/login").await;
    assert!(login.contains("Tu cuenta está lista"), "flash messages");
    pages.push(login);
    shopper.login_ok(&email, "correct horse").await;
    pages.push(shopper.page("/book/catalog").await.1);
    let (_, book_page) = shopper.page(&format!("/book/{book}")).await;
    assert!(book_page.contains("1234,50 US$"), "{book_page}");
    pages.push(book_page);
    let too_many = shopper.buy(book, "5").await;
    pages.push(too_many.text().await.unwrap());
    shopper
        .post(
            "/cart/add",
            &[("book_id", &book.to_string()), ("quantity", "1")],
        )
        .await;
    pages.push(shopper.page("/cart").await.1);
    let order = shopper.buy_ok(book, "1").await;
    pages.push(shopper.page(&format!("/delivery/{order}")).await.1);
    let paid = shopper.deliver_and_pay(order, "1", "Credit Card").await;
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let (_, detail) = shopper.page(&format!("/orders/{order}")).await;
    assert!(
        detail.contains("Pagado") && detail.contains("Tarjeta de crédito"),
        "{detail}"
    );
    pages.push(detail);
    pages.push(shopper.page("/orders").await.1);
    pages.push(shopper.page("/book/my_books").await.1);
    pages.push(shopper.page("/book/add_book").await.1);
    pages.push(shopper.page("/orders/999999").await.1);

    let english = english_sentences();
    for html in &pages {
        assert!(html.contains(r#"<html lang="es">"#));
        let met: Vec<_> = english
            .iter()
            .filter(|s| html.contains(s.as_str()))
            .collect();
        assert!(met.is_empty(), "English on a Spanish page: {met:?}\n{html}");
    }
}

/// The English catalogue's texts without arguments that differ from the
/// Spanish ones and are long enough not to be part of a title by chance.
fn english_sentences() -> Vec<String> {
    let (_, english) = SOURCES[0];
    let resource = fluent_syntax::parser::parse(english).unwrap();
    resource
        .body
        .iter()
        .filter_map(|entry| match entry {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name),
            _ => None,
        })
        .filter(|id| !Lang::En.t(id).contains('{'))
        .map(|id| (Lang::En.t(id), Lang::Es.t(id)))
        .filter(|(en, es)| en != es && en.len() >= 8 && !en.contains('$'))
        .map(|(en, _)| en.into_owned())
        .collect()
}

/// A Spanish seller types prices as Spanish writes them ("12,50", the hint
/// says so); the delivery choices speak Spanish too.
#[tokio::test]
async fn a_spanish_seller_types_a_decimal_comma_and_delivery_speaks_spanish() {
    let app = spawn_app().await;
    let seller = app.shopper("Vendedor").await;
    seller.get("/lang/es?next=/").await;
    let (_, form) = seller.page("/book/add_book").await;
    assert!(form.contains(r#"placeholder="12,50""#));
    let listed = seller
        .post(
            "/book/add_book",
            &[
                ("title", "Coma decimal"),
                ("author", "Autora"),
                ("description", "Un libro."),
                ("price", "12,50"),
                ("stock", "40"),
            ],
        )
        .await;
    assert_eq!(listed.status(), StatusCode::SEE_OTHER);
    let price: i64 =
        sqlx::query_scalar("SELECT price_cents FROM books WHERE title = 'Coma decimal'")
            .fetch_one(&app.pool())
            .await
            .unwrap();
    assert_eq!(price, 1250);
    let too_high = seller
        .post(
            "/book/add_book",
            &[
                ("title", "Carísimo"),
                ("author", "Autora"),
                ("description", "Un libro."),
                ("price", "99999999"),
                ("stock", "1"),
            ],
        )
        .await;
    let page = too_high.text().await.unwrap();
    assert!(
        page.contains("como máximo 100.000,00 US$"),
        "one message for every price too high"
    );

    let book: i64 = sqlx::query_scalar("SELECT id FROM books WHERE title = 'Coma decimal'")
        .fetch_one(&app.pool())
        .await
        .unwrap();
    let buyer = app.shopper("Compradora").await;
    buyer.get("/lang/es?next=/").await;
    let order = buyer.buy_ok(book, "1").await;
    let (_, delivery) = buyer.page(&format!("/delivery/{order}")).await;
    assert!(delivery.contains("Internacional") && delivery.contains("Nacional"));
    assert!(!delivery.contains("International") && !delivery.contains("National"));
}
