use reqwest::StatusCode;

use crate::helpers::{PASSWORD, location, spawn_app, unique_email};

#[tokio::test]
async fn a_visitor_registers_logs_in_and_logs_out() {
    let app = spawn_app().await;
    let ana = app.visitor();
    let email = unique_email("ana");

    let registered = ana.register("Ana", &email, PASSWORD).await;
    assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&registered), "/login");
    let (_, login_page) = ana.page("/login").await;
    assert!(
        login_page.contains("Your account is ready"),
        "flash after registering"
    );

    ana.login_ok(&email, PASSWORD).await;
    let (_, catalog) = ana.page("/book/catalog").await;
    assert!(catalog.contains("Signed in as <strong>Ana</strong>"));
    assert!(catalog.contains("Welcome back, Ana."));

    let logout = ana.post("/logout", &[]).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let (_, after) = ana.page("/book/catalog").await;
    assert!(!after.contains("Signed in as"));
    assert_eq!(location(&ana.get("/orders").await), "/login");
}

/// Logging out is a form (CSRF): a GET of `/logout` (a bookmark, a typed
/// address) shows a page with the button, and logs nobody out by itself.
#[tokio::test]
async fn logout_by_get_is_a_page_with_the_button() {
    let app = spawn_app().await;
    let ana = app.shopper("Ana").await;
    let (status, page) = ana.page("/logout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Log out of the shop?"));
    assert!(page.contains(r#"<form class="stacked" method="post" action="/logout">"#));
    let (_, page) = ana.page("/").await;
    assert!(
        page.contains("Signed in as"),
        "a GET must not log anyone out"
    );
    let logout = ana.post("/logout", &[]).await;
    assert_eq!(location(&logout), "/login");
    assert_eq!(
        location(&ana.get("/logout").await),
        "/login",
        "nobody to log out"
    );
}

#[tokio::test]
async fn registration_refuses_bad_input_with_messages_and_creates_nobody() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let long_name = "x".repeat(101);
    let cases = [
        ("", "a@example.com", PASSWORD, "Enter your name."),
        (
            long_name.as_str(),
            "a@example.com",
            PASSWORD,
            "At most 100 characters.",
        ),
        ("Ana", "", PASSWORD, "Enter your e-mail address."),
        (
            "Ana",
            "not-an-email",
            PASSWORD,
            "Enter an e-mail address like name@example.com.",
        ),
        (
            "Ana",
            "a@example.com",
            "short",
            "Use at least 8 characters.",
        ),
        ("Ana", "a@example.com", "", "Choose a password."),
    ];
    for (name, email, password, message) in cases {
        let response = visitor.register(name, email, password).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?} {email:?}"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains(message),
            "expected {message:?} for {name:?}/{email:?}"
        );
        assert!(
            html.contains(&format!("value=\"{}\"", email)),
            "the form keeps what was typed"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_duplicate_email_is_a_form_error_not_a_500() {
    let app = spawn_app().await;
    let email = unique_email("dup");
    let first = app.visitor().register("One", &email, PASSWORD).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let second = app
        .visitor()
        .register("Two", &email.to_uppercase(), PASSWORD)
        .await;
    assert_eq!(second.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(second.text().await.unwrap().contains("already registered"));
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_message() {
    let app = spawn_app().await;
    let ana = app.shopper("Ana").await;
    let visitor = app.visitor();
    let wrong = visitor.login(&ana.email(), "wrong password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = wrong.text().await.unwrap();
    let unknown = visitor.login(&unique_email("nobody"), PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown.text().await.unwrap();
    for html in [&wrong, &unknown] {
        assert!(html.contains("Login failed: check your e-mail and password."));
    }
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id() {
    let app = spawn_app().await;
    let ana = app.shopper("Ana").await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = ?")
        .bind(ana.email())
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn the_session_id_changes_at_login_and_dies_at_logout() {
    let app = spawn_app().await;
    let email = unique_email("ana");
    let ana = app.visitor();
    ana.register("Ana", &email, PASSWORD).await;
    let _ = ana.token().await;
    let before = ana
        .session_cookie()
        .expect("a session exists before login (the flash after registering)");
    ana.login_ok(&email, PASSWORD).await;
    let after = ana.session_cookie().expect("logged-in session");
    assert_ne!(before, after, "login must renew the session id");

    // A copy of the logged-in cookie, as a thief would hold it.
    let thief = app.visitor();
    let url = ana.url("/").parse().unwrap();
    thief
        .jar
        .add_cookie_str(&format!("bookstore_session={after}; Path=/"), &url);
    assert_eq!(
        thief.get("/orders").await.status(),
        StatusCode::OK,
        "the copy works while logged in"
    );

    assert_eq!(
        ana.post("/logout", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    let stolen = thief.get("/orders").await;
    assert_eq!(
        stolen.status(),
        StatusCode::SEE_OTHER,
        "the copied cookie must stop working"
    );
    assert_eq!(location(&stolen), "/login");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let app = spawn_app().await;
    let ana = app.shopper("Ana").await;
    let attacker = app.visitor();
    for _ in 0..5 {
        assert_eq!(
            attacker.login(&ana.email(), "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = attacker.login(&ana.email(), PASSWORD).await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(
        blocked
            .text()
            .await
            .unwrap()
            .contains("Too many failed attempts")
    );
    // Another address is not affected.
    let bob = app.shopper("Bob").await;
    assert_eq!(bob.get("/orders").await.status(), StatusCode::OK);
}

/// "Log in to buy" on a book's page returns the shopper to that book; a
/// `next` that leaves the site is ignored (the catalog instead).
#[tokio::test]
async fn logging_in_returns_to_the_book_and_never_to_another_site() {
    let app = spawn_app().await;
    let seller = app.shopper("Seller").await;
    let book = app.listed_book(&seller, "Wanted", "3.00", "5").await;
    let email = crate::helpers::unique_email("pat");
    let pat = app.visitor();
    pat.register("Pat", &email, PASSWORD).await;
    let (_, book_page) = pat.page(&format!("/book/{book}")).await;
    let link = format!("/login?next=/book/{book}");
    assert!(book_page.contains(&link), "the book's login link");
    let (_, login_page) = pat.page(&link).await;
    assert!(login_page.contains(&format!(r#"name="next" value="/book/{book}""#)));
    let token = pat.token().await;
    let next = format!("/book/{book}");
    let form = [
        ("email", email.as_str()),
        ("password", PASSWORD),
        ("next", next.as_str()),
        ("csrf_token", token.as_str()),
    ];
    let logged_in = pat.post_raw("/login", &form).await;
    assert_eq!(location(&logged_in), next);

    for elsewhere in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let visitor = app.visitor();
        let token = visitor.token().await;
        let form = [
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("next", elsewhere),
            ("csrf_token", token.as_str()),
        ];
        let response = visitor.post_raw("/login", &form).await;
        assert_eq!(location(&response), "/book/catalog", "{elsewhere}");
    }
}

/// Anyone could register as "Bookstore Classics", the demo catalog's seller,
/// and sell as the shop; or as a name of only a zero-width space, or with a
/// line break in it. Such names are refused with a message, and nobody is made.
#[tokio::test]
async fn the_shops_own_name_and_invisible_or_broken_names_are_refused() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    for (name, message) in [
        ("Bookstore Classics", "That name is the shop&#39;s own"),
        ("bookstore  CLASSICS", "That name is the shop&#39;s own"),
        (
            "B\u{043E}\u{043E}kstore Classics",
            "That name is the shop&#39;s own",
        ),
        ("\u{200B}", "Enter your name."),
        ("\u{200E}\u{E0041}", "Enter your name."),
        ("Ana\nMaría", "Write it on one line."),
    ] {
        let email = crate::helpers::unique_email("name");
        let response = visitor.register(name, &email, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains(message), "{name:?}: {page}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}
