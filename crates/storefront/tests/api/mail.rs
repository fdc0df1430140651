//! Mail through a real SMTP server (aiosmtpd, `common::mail_sink`): the
//! password reset end to end, what a reset request does not reveal, its
//! limits, the mail in Spanish; and the outbox's promise: every mail
//! delivered once, with the server down for a while, with a sender that dies
//! holding mail, and with two replicas draining one outbox.

use std::collections::HashSet;
use std::time::Duration;

use regex::Regex;
use reqwest::StatusCode;
use storefront::app::config::Config;
use storefront::mail::Letter;
use storefront::mail::outbox;
use storefront::mail::sender::Sender;
use storefront::mail::transport::Transport;
use storefront::store::link_tokens::{self, LinkKind};

use crate::common::mail_sink::{Delivered, MailSink};
use crate::helpers::{
    PASSWORD, Shopper, TestApp, every_order_holds, location, spawn_app_with, spawn_on, unique_email,
};

const NEW_PASSWORD: &str = "a brand new passphrase";
const DELIVERY: Duration = Duration::from_secs(20);

/// The shop sending to `sink`, its sender polling often.
fn sending_to(sink: &MailSink) -> impl FnOnce(&mut Config) {
    let url = sink.smtp_url();
    move |config: &mut Config| {
        config.mail.smtp_url = Some(url);
        config.mail.poll = Duration::from_millis(100);
        config.mail.retry_base = Duration::from_millis(200);
        config.mail.max_attempts = 50;
    }
}

/// A mail sink and a shop sending to it, with `adjust`'s settings too;
/// `None` when aiosmtpd is missing (`MailSink::start` says so).
async fn shop_mailing(adjust: impl FnOnce(&mut Config)) -> Option<(MailSink, TestApp)> {
    let sink = MailSink::start().await?;
    let send = sending_to(&sink);
    let app = spawn_app_with(|config| {
        send(config);
        adjust(config);
    })
    .await;
    Some((sink, app))
}

/// The reset link in a delivered mail, as a path on the shop.
fn reset_path_in(mail: &Delivered, app: &TestApp) -> String {
    let link = Regex::new(r"http://\S+/password/reset\?token=[0-9a-f]{64}")
        .unwrap()
        .find(&mail.text)
        .unwrap_or_else(|| panic!("no reset link in the mail:\n{}", mail.text))
        .as_str()
        .to_string();
    let origin = format!("http://{}", app.addr);
    assert!(link.starts_with(&origin), "the link is on the shop: {link}");
    link[origin.len()..].to_string()
}

async fn request_reset(visitor: &Shopper, email: &str) -> reqwest::Response {
    visitor.post("/password/forgot", &[("email", email)]).await
}

async fn logged_in(shopper: &Shopper) -> bool {
    shopper.get("/orders").await.status() == StatusCode::OK
}

#[tokio::test]
async fn a_forgotten_password_is_reset_through_the_mailed_link_and_every_session_ends() {
    let Some((sink, app)) = shop_mailing(|_| {}).await else {
        return;
    };
    let ana = app.shopper("Ana").await;
    let ana_on_her_phone = app.visitor();
    ana_on_her_phone.login_ok(&ana.email(), PASSWORD).await;
    assert!(logged_in(&ana).await && logged_in(&ana_on_her_phone).await);

    let (status, login) = app.visitor().page("/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(login.contains(r#"<a href="/password/forgot">Forgot your password?</a>"#));

    let forgetful = app.visitor();
    let requested = request_reset(&forgetful, &ana.email()).await;
    assert_eq!(requested.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&requested), "/login");
    let (_, page) = forgetful.page("/login").await;
    assert!(page.contains("If an account uses that address"), "{page}");

    let mail = sink.wait_for(1, DELIVERY).await.remove(0);
    assert_eq!(mail.to, ana.email());
    assert_eq!(
        mail.subject,
        "Choose a new password for your Bookstore account"
    );
    assert!(mail.text.contains("Hello Ana,") && mail.text.contains("30 minutes"));
    assert!(
        mail.raw.contains("Content-Type: text/html"),
        "an HTML part too"
    );
    let path = reset_path_in(&mail, &app);

    let (status, form) = forgetful.page(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains(r#"action="/password/reset""#));
    let token = path.rsplit('=').next().unwrap();
    let too_short = forgetful
        .post(
            "/password/reset",
            &[("token", token), ("password", "short")],
        )
        .await;
    assert_eq!(too_short.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let reset = forgetful
        .post(
            "/password/reset",
            &[("token", token), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(reset.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&reset), "/login");
    let (_, page) = forgetful.page("/login").await;
    assert!(page.contains("Your password is changed"), "{page}");

    assert!(!logged_in(&ana).await, "the session she had is over");
    assert!(
        !logged_in(&ana_on_her_phone).await,
        "so is the one on her phone"
    );
    let old = app.visitor().login(&ana.email(), PASSWORD).await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old password is gone"
    );
    app.visitor().login_ok(&ana.email(), NEW_PASSWORD).await;

    let again = forgetful
        .post(
            "/password/reset",
            &[("token", token), ("password", "yet another passphrase")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::GONE, "a link works once");
    assert_eq!(forgetful.page(&path).await.0, StatusCode::GONE);
    app.visitor().login_ok(&ana.email(), NEW_PASSWORD).await;
    assert_eq!(sink.delivered().len(), 1);
}

/// An address without an account gets the same answer and no mail: the form
/// cannot tell anyone who shops here.
#[tokio::test]
async fn a_reset_request_answers_the_same_whether_or_not_the_address_has_an_account() {
    let Some((sink, app)) = shop_mailing(|_| {}).await else {
        return;
    };
    let ana = app.shopper("Ana").await;

    let stranger = app.visitor();
    let unknown = request_reset(&stranger, &unique_email("nobody")).await;
    let (_, unknown_page) = stranger.page("/login").await;
    let known_visitor = app.visitor();
    let known = request_reset(&known_visitor, &ana.email()).await;
    let (_, known_page) = known_visitor.page("/login").await;

    assert_eq!(unknown.status(), known.status());
    assert_eq!(location(&unknown), location(&known));
    let flash = |page: &str| page.contains("If an account uses that address");
    assert!(flash(&unknown_page) && flash(&known_page));

    // The known address's mail arrives; had the unknown one been sent, it
    // was written first and would have arrived too.
    let delivered = sink.wait_for(1, DELIVERY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered_now = sink.delivered();
    assert_eq!(delivered_now.len(), 1, "{delivered:?}");
    assert_eq!(delivered_now[0].to, ana.email());
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 1);

    let malformed = stranger
        .post("/password/forgot", &[("email", "not an address")])
        .await;
    assert_eq!(malformed.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn reset_mail_is_limited_per_account_and_requests_per_client_address() {
    let Some((sink, app)) = shop_mailing(|config| {
        config.mail.resets_per_account_hour = 2;
        config.mail.resets_per_address_hour = 5;
    })
    .await
    else {
        return;
    };
    let ana = app.shopper("Ana").await;
    for _ in 0..4 {
        let answer = request_reset(&app.visitor(), &ana.email()).await;
        assert_eq!(
            answer.status(),
            StatusCode::SEE_OTHER,
            "the same answer past the account's limit"
        );
    }
    sink.wait_for(2, DELIVERY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.delivered().len(),
        2,
        "two mails an hour for one account"
    );

    let one_place = app.visitor();
    for _ in 0..5 {
        let answer = request_reset(&one_place, &unique_email("someone")).await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    }
    let refused = request_reset(&one_place, &unique_email("someone")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let Some((sink, app)) = shop_mailing(|config| {
        config.mail.reset_link_ttl = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let ana = app.shopper("Ana").await;
    request_reset(&app.visitor(), &ana.email()).await;
    let mail = sink.wait_for(1, DELIVERY).await.remove(0);
    let path = reset_path_in(&mail, &app);
    let visitor = app.visitor();
    let (status, page) = visitor.page(&path).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("This link does not work"));
    let token = path.rsplit('=').next().unwrap();
    let reset = visitor
        .post(
            "/password/reset",
            &[("token", token), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(reset.status(), StatusCode::GONE);
    assert!(logged_in(&ana).await, "nothing changed for the account");
}

#[tokio::test]
async fn the_reset_mail_speaks_the_language_of_who_asked() {
    let Some((sink, app)) = shop_mailing(|_| {}).await else {
        return;
    };
    let ana = app.shopper("Ana").await;
    let visitor = app.visitor();
    visitor.get("/lang/es?next=/").await;
    let (_, form) = visitor.page("/password/forgot").await;
    assert!(form.contains("¿Olvidaste tu contraseña?"));
    request_reset(&visitor, &ana.email()).await;
    let mail = sink.wait_for(1, DELIVERY).await.remove(0);
    assert_eq!(
        mail.subject,
        "Elige una contraseña nueva para tu cuenta de Bookstore"
    );
    assert!(mail.text.contains("Hola, Ana:"), "{}", mail.text);
    assert!(mail.text.contains("durante 30 minutos"), "{}", mail.text);
}

/// A paid order mails its buyer a receipt in the buyer's language (Spanish
/// here) and its seller a notice in the seller's (English), once each.
#[tokio::test]
async fn a_paid_order_mails_a_receipt_and_a_sale_notice_each_in_its_readers_language() {
    let Some((sink, app)) = shop_mailing(|config| {
        every_order_holds(config);
    })
    .await
    else {
        return;
    };
    let seller = app.shopper("Sofia").await;
    let book = app
        .listed_book(&seller, "Mail Order Mysteries", "12.50", "5")
        .await;
    let buyer = app.visitor();
    buyer.get("/lang/es?next=/").await;
    let email = unique_email("lucia");
    buyer.register("Lucía", &email, PASSWORD).await;
    buyer.login_ok(&email, PASSWORD).await;
    let order = buyer.buy_ok(book, "2").await;
    let paid = buyer.deliver_and_pay(order, "3", "Credit Card").await;
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);

    let mails = sink.wait_for(2, DELIVERY).await;
    let to = |address: &str| mails.iter().find(|m| m.to == address).cloned().unwrap();
    let receipt = to(&email);
    assert_eq!(
        receipt.subject,
        format!("Tu recibo de Bookstore del pedido n.º {order}")
    );
    for line in [
        "Hola, Lucía:",
        "2 × Mail Order Mysteries: 25,00 US$",
        "Envío (Envia): 20,00 US$",
        "Total pagado: 45,00 US$",
        &format!("/orders/{order}"),
    ] {
        assert!(
            receipt.text.contains(line),
            "{line:?} in the receipt:\n{}",
            receipt.text
        );
    }
    let notice = to(&seller.email());
    assert_eq!(
        notice.subject,
        format!("You sold books on Bookstore (order #{order})")
    );
    for line in [
        "Hello Sofia,",
        &format!("Lucía bought from you in order #{order}:"),
        "2 × Mail Order Mysteries: $25.00",
        "It goes by Envia.",
    ] {
        assert!(
            notice.text.contains(line),
            "{line:?} in the notice:\n{}",
            notice.text
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivered().len(), 2, "one receipt, one notice");
}

/// Buying the demo catalog's classics mails a receipt, and no notice to its
/// seller, an account nobody can log in to.
#[tokio::test]
async fn the_demo_catalogs_seller_gets_no_mail() {
    let Some((sink, app)) = shop_mailing(|config| {
        every_order_holds(config);
        config.seed_demo_if_empty = true;
    })
    .await
    else {
        return;
    };
    let book: i64 = sqlx::query_scalar("SELECT MIN(id) FROM books")
        .fetch_one(&app.pool())
        .await
        .unwrap();
    let buyer = app.shopper("Ana").await;
    let order = buyer.buy_ok(book, "1").await;
    buyer.deliver_and_pay(order, "3", "Paypal").await;
    let receipt = sink.wait_for(1, DELIVERY).await.remove(0);
    assert_eq!(receipt.to, buyer.email());
    assert!(receipt.subject.contains(&format!("order #{order}")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivered().len(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 1);
}

// --- confirming an address -----------------------------------------------------------

/// The shop asks for confirmed addresses, and any new buyer's order could hold
/// (so only the confirmation decides).
fn confirming(config: &mut Config) {
    every_order_holds(config);
    config.mail.confirm_addresses = true;
}

/// The confirmation link in the mail to `address`, as a path on the shop.
async fn confirm_path_for(sink: &MailSink, app: &TestApp, address: &str) -> String {
    let deadline = std::time::Instant::now() + DELIVERY;
    let mail = loop {
        if let Some(mail) = sink.delivered().into_iter().rev().find(|m| m.to == address) {
            break mail;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no mail reached {address}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let link = Regex::new(r"http://\S+/account/confirm\?token=[0-9a-f]{64}")
        .unwrap()
        .find(&mail.text)
        .unwrap_or_else(|| panic!("no confirmation link in the mail:\n{}", mail.text))
        .as_str()
        .to_string();
    link[format!("http://{}", app.addr).len()..].to_string()
}

async fn stock_of(app: &TestApp, book: i64) -> i64 {
    app.count(&format!("SELECT stock FROM books WHERE id = {book}"))
        .await
}

async fn status_of(app: &TestApp, order: i64) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
        .bind(order)
        .fetch_one(&app.pool())
        .await
        .unwrap()
}

const UNCONFIRMED_NOTE: &str = "Orders hold their copies once you confirm your e-mail address";

#[tokio::test]
async fn until_its_address_is_confirmed_an_account_pays_but_its_orders_hold_no_copies() {
    let Some((sink, app)) = shop_mailing(confirming).await else {
        return;
    };
    let seller = app.shopper("Sofia").await;
    let book = app.listed_book(&seller, "Held Or Not", "9.00", "5").await;

    let buyer = app.visitor();
    let email = unique_email("lucas");
    let registered = buyer.register("Lucas", &email, PASSWORD).await;
    assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    let (_, login) = buyer.page("/login").await;
    assert!(
        login.contains("We mailed you a link to confirm your address"),
        "{login}"
    );
    let path = confirm_path_for(&sink, &app, &email).await;
    let mail = sink
        .delivered()
        .into_iter()
        .find(|m| m.to == email)
        .unwrap();
    assert_eq!(mail.subject, "Confirm your e-mail address for Bookstore");
    assert!(mail.text.contains("Hello Lucas,") && mail.text.contains("48 hours"));

    buyer.login_ok(&email, PASSWORD).await;
    buyer.add_to_cart(book, "1").await;
    let (_, cart) = buyer.page("/cart").await;
    assert!(
        cart.contains(r#"id="unconfirmed""#),
        "the cart says so before checkout"
    );
    let waiting = buyer.buy_ok(book, "2").await;
    assert_eq!(status_of(&app, waiting).await, "unreserved");
    assert_eq!(stock_of(&app, book).await, 5, "nothing held");
    let (_, page) = buyer.page(&format!("/delivery/{waiting}")).await;
    assert!(page.contains(UNCONFIRMED_NOTE), "{page}");
    assert!(page.contains(r#"action="/account/confirm/resend""#));

    let (status, confirm_page) = buyer.page(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm_page.contains(r#"action="/account/confirm""#));
    let token = path.rsplit('=').next().unwrap();
    assert!(
        !confirm_page.contains("is confirmed"),
        "opening the link confirms nothing"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email_verified_at IS NOT NULL")
            .await,
        0
    );
    let confirmed = buyer.post("/account/confirm", &[("token", token)]).await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&confirmed), "/orders");
    let (_, orders) = buyer.page("/orders").await;
    assert!(
        orders.contains("Your e-mail address is confirmed"),
        "{orders}"
    );
    let (_, cart) = buyer.page("/cart").await;
    assert!(!cart.contains(r#"id="unconfirmed""#), "{cart}");
    let (_, page) = buyer.page(&format!("/delivery/{waiting}")).await;
    assert!(
        !page.contains(UNCONFIRMED_NOTE) && page.contains("not held for you"),
        "the order placed before stays unreserved, and no longer asks for the link"
    );

    let held = buyer.buy_ok(book, "1").await;
    assert_eq!(status_of(&app, held).await, "pending_payment");
    assert_eq!(
        stock_of(&app, book).await,
        4,
        "a confirmed account's order holds"
    );
    let (_, page) = buyer.page(&format!("/delivery/{held}")).await;
    assert!(!page.contains(UNCONFIRMED_NOTE));

    // The unreserved order is still paid for as any: payment takes the copies.
    let paid = buyer.deliver_and_pay(waiting, "3", "Paypal").await;
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_of(&app, waiting).await, "paid");
    assert_eq!(stock_of(&app, book).await, 2);

    let again = app
        .visitor()
        .post("/account/confirm", &[("token", token)])
        .await;
    assert_eq!(again.status(), StatusCode::GONE, "a link works once");
    let (status, page) = app.visitor().page(&path).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("This link does not work"));
    let made_up = "0".repeat(64);
    let unknown = app
        .visitor()
        .post("/account/confirm", &[("token", &made_up)])
        .await;
    assert_eq!(unknown.status(), StatusCode::GONE);
}

#[tokio::test]
async fn the_confirmation_link_is_sent_again_on_request_within_an_hourly_limit() {
    let Some((sink, app)) = shop_mailing(|config| {
        confirming(config);
        config.mail.confirm_mails_per_account_hour = 2;
    })
    .await
    else {
        return;
    };
    let ana = app.shopper("Ana").await;
    let first = confirm_path_for(&sink, &app, &ana.email()).await;
    let send_again = || ana.post("/account/confirm/resend", &[("next", "/orders")]);

    let sent = send_again().await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&sent), "/orders");
    assert!(
        ana.page("/orders")
            .await
            .1
            .contains("A new link to confirm your address")
    );
    sink.wait_for(2, DELIVERY).await;

    send_again().await;
    assert!(
        ana.page("/orders")
            .await
            .1
            .contains("We have sent you several links")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivered().len(), 2, "the third is refused");

    // Either link confirms; using one spends the other.
    let second = confirm_path_for(&sink, &app, &ana.email()).await;
    assert_ne!(first, second);
    let token = |path: &str| path.rsplit('=').next().unwrap().to_string();
    let confirmed = ana
        .post("/account/confirm", &[("token", &token(&first))])
        .await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    let spent = ana
        .post("/account/confirm", &[("token", &token(&second))])
        .await;
    assert_eq!(spent.status(), StatusCode::GONE);

    send_again().await;
    assert!(ana.page("/orders").await.1.contains("is confirmed already"));
    let offsite = ana
        .post(
            "/account/confirm/resend",
            &[("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(
        location(&offsite),
        "/orders",
        "back only to a page of the shop"
    );
}

/// Requests for one account made at once are counted one after the other:
/// together they cannot pass the hourly limit.
#[tokio::test]
async fn links_asked_for_at_once_stay_within_the_hourly_limit() {
    let Some((sink, app)) = shop_mailing(|config| {
        confirming(config);
        config.mail.confirm_mails_per_account_hour = 2;
        config.mail.resets_per_account_hour = 2;
        config.mail.resets_per_address_hour = 100;
    })
    .await
    else {
        return;
    };
    let ana = app.shopper("Ana").await;
    let send_again = (0..6).map(|_| ana.post("/account/confirm/resend", &[("next", "/orders")]));
    futures::future::join_all(send_again).await;
    let visitor = app.visitor();
    let email = ana.email();
    let resets = (0..6).map(|_| request_reset(&visitor, &email));
    futures::future::join_all(resets).await;

    sink.wait_for(4, DELIVERY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails_of_kind = |kind: &str| {
        format!("SELECT COUNT(*) FROM outbox WHERE recipient = '{email}' AND kind = '{kind}'")
    };
    assert_eq!(
        app.count(&mails_of_kind("confirm_address")).await,
        2,
        "registration's and one more"
    );
    assert_eq!(app.count(&mails_of_kind("password_reset")).await, 2);
    assert_eq!(sink.delivered().len(), 4);
}

/// The statement of migration 0008 that marks accounts confirmed, the same
/// on both backends.
fn grandfathering_statement() -> String {
    let update_in = |sql: &str| {
        sql.split(';')
            .map(|statement| {
                let lines = statement
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"));
                lines.collect::<Vec<_>>().join("\n").trim().to_string()
            })
            .find(|statement| statement.starts_with("UPDATE users"))
            .expect("migration 0008 marks accounts confirmed")
    };
    let sqlite = update_in(include_str!(
        "../../migrations/sqlite/0008_address_verification.sql"
    ));
    let mysql = update_in(include_str!(
        "../../migrations/mysql/0008_address_verification.sql"
    ));
    assert_eq!(sqlite, mysql);
    sqlite
}

/// Accounts made before addresses were confirmed: those that have paid count
/// as confirmed, the others are asked (migration 0008).
#[tokio::test]
async fn accounts_from_before_confirmation_keep_holding_once_they_have_paid() {
    let Some((_sink, app)) = shop_mailing(confirming).await else {
        return;
    };
    let seller = app.shopper("Sofia").await;
    let book = app.listed_book(&seller, "Old Customers", "5.00", "9").await;
    let regular = app.shopper("Rita").await;
    let order = regular.buy_ok(book, "1").await;
    regular.deliver_and_pay(order, "3", "Paypal").await;
    let newcomer = app.shopper("Nico").await;

    sqlx::query(&grandfathering_statement())
        .execute(&app.pool())
        .await
        .unwrap();
    assert_eq!(
        status_of(&app, regular.buy_ok(book, "1").await).await,
        "pending_payment"
    );
    assert_eq!(
        status_of(&app, newcomer.buy_ok(book, "1").await).await,
        "unreserved"
    );
}

// --- the outbox: each mail once ------------------------------------------------------

fn letter(n: usize) -> Letter {
    Letter {
        recipient: format!("shopper{n}@example.com"),
        kind: "test",
        subject: format!("mail {n}"),
        text: format!("body {n}"),
        html: format!("<p>body {n}</p>"),
    }
}

/// A sender of its own on `app`'s outbox and settings, as another replica's.
fn sender_of(app: &TestApp, owner: &str, lease: Duration) -> Sender {
    Sender {
        db: app.state.db.clone(),
        transport: Transport::from_settings(&app.state.config.mail).unwrap(),
        from: app.state.config.mail.from.parse().unwrap(),
        owner: owner.into(),
        settings: app.state.config.mail.clone(),
        metrics: app.state.metrics.clone(),
        wake: Default::default(),
        lease,
    }
}

/// Writes `count` letters to the outbox, committed, as an event would.
async fn enqueue(app: &TestApp, count: usize) {
    let mut tx = app.pool().begin().await.unwrap();
    for n in 0..count {
        app.state.mailer.enqueue(&mut tx, &letter(n)).await.unwrap();
    }
    tx.commit().await.unwrap();
    app.state.mailer.wake_sender();
}

/// Each of `count` mails delivered exactly once: distinct Message-IDs, the
/// ones the outbox holds, every row sent.
async fn each_delivered_once(app: &TestApp, sink: &MailSink, count: usize) {
    let delivered = sink.wait_for(count, DELIVERY).await;
    let deadline = std::time::Instant::now() + DELIVERY;
    while app
        .count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'")
        .await
        < count as i64
    {
        assert!(std::time::Instant::now() < deadline, "rows marked sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = if sink.delivered().len() > delivered.len() {
        sink.delivered()
    } else {
        delivered
    };
    assert_eq!(delivered.len(), count, "no mail twice");
    let ids: HashSet<String> = delivered.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len(), count, "distinct Message-IDs");
    let stored: Vec<String> = sqlx::query_scalar("SELECT message_id FROM outbox")
        .fetch_all(&app.pool())
        .await
        .unwrap();
    assert_eq!(ids, stored.into_iter().collect::<HashSet<_>>());
}

/// A mail server that accepts connections and then says nothing (lettre's
/// own timeout covers only the connect): each delivery gives up within half
/// the lease and is tried again; once a real server answers on that port,
/// the mail goes once.
#[tokio::test]
async fn a_mail_server_that_never_answers_costs_retries_not_a_stuck_sender() {
    let Some(mut sink) = MailSink::stopped() else {
        return;
    };
    let silent = tokio::net::TcpListener::bind(("127.0.0.1", sink.port))
        .await
        .unwrap();
    let silent_server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let send = sending_to(&sink);
    let app = spawn_app_with(|config| {
        send(config);
        config.mail.lease = Duration::from_secs(2);
    })
    .await;
    enqueue(&app, 1).await;
    let deadline = std::time::Instant::now() + DELIVERY;
    while app
        .count("SELECT COUNT(*) FROM outbox WHERE attempts >= 2 AND state = 'pending'")
        .await
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "each silent delivery ends within half the lease, and is tried again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error: String = sqlx::query_scalar("SELECT last_error FROM outbox")
        .fetch_one(&app.pool())
        .await
        .unwrap();
    assert!(error.contains("did not finish within 1 s"), "{error}");

    silent_server.abort();
    let _ = silent_server.await;
    sink.up().await;
    each_delivered_once(&app, &sink, 1).await;
}

#[tokio::test]
async fn mail_written_while_the_server_is_down_is_delivered_once_when_it_is_back() {
    let Some(mut sink) = MailSink::stopped() else {
        return;
    };
    let app = spawn_app_with(sending_to(&sink)).await;
    enqueue(&app, 5).await;
    let deadline = std::time::Instant::now() + DELIVERY;
    while app
        .count("SELECT COUNT(*) FROM outbox WHERE attempts >= 2")
        .await
        < 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sender kept trying"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            .await,
        5
    );
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"storefront_mails_total{outcome="retry"}"#),
        "{metrics}"
    );

    sink.up().await;
    each_delivered_once(&app, &sink, 5).await;
}

/// A sender that takes mail and dies before delivering it (a replica
/// killed between the commit and the send): the mail waits out its lease,
/// then another sender delivers it, once.
#[tokio::test]
async fn mail_held_by_a_sender_that_died_is_delivered_once_by_another() {
    let Some((sink, app)) = shop_mailing(|config| {
        config.mail.sender = false;
    })
    .await
    else {
        return;
    };
    enqueue(&app, 3).await;
    let lease = Duration::from_secs(2);
    let taken = outbox::claim(&app.pool(), "replica-that-dies", lease, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 3, "the doomed sender holds all three");

    let survivor = sender_of(&app, "survivor", lease);
    assert_eq!(survivor.pass().await.unwrap(), 0, "held mail is not taken");
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    assert_eq!(
        survivor.pass().await.unwrap(),
        3,
        "taken once the lease is over"
    );
    each_delivered_once(&app, &sink, 3).await;
}

#[tokio::test]
async fn two_replicas_draining_one_outbox_send_each_mail_once() {
    let Some(sink) = MailSink::start().await else {
        return;
    };
    let first = spawn_app_with(sending_to(&sink)).await;
    let second = spawn_on(
        &first.database_url,
        first.redis_url.clone(),
        sending_to(&sink),
    )
    .await;
    enqueue(&first, 40).await;
    second.state.mailer.wake_sender();
    each_delivered_once(&first, &sink, 40).await;
    let owners: i64 = first
        .count("SELECT COUNT(*) FROM outbox WHERE lease_owner IS NOT NULL")
        .await;
    assert_eq!(owners, 0, "every lease released");
}

/// Delivered mail goes after MAIL_KEEP_SENT_DAYS and links a day after they
/// expire; pending and dead mail, and fresh links, stay.
#[tokio::test]
async fn old_delivered_mail_and_expired_links_are_pruned() {
    let Some((sink, app)) = shop_mailing(confirming).await else {
        return;
    };
    let ana = app.shopper("Ana").await;
    request_reset(&app.visitor(), &ana.email()).await;
    enqueue(&app, 3).await;
    // Every row marked sent, not only received by the server: a sender
    // still marking one would undo the changes below.
    each_delivered_once(&app, &sink, 5).await;
    let day = 86_400;
    // Two mails delivered long ago, one given up; two links long expired.
    sqlx::query("UPDATE outbox SET sent_at = sent_at - ? WHERE recipient IN (?, ?)")
        .bind(31 * day)
        .bind(letter(0).recipient)
        .bind(letter(1).recipient)
        .execute(&app.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET state = 'dead', sent_at = NULL WHERE recipient = ?")
        .bind(letter(2).recipient)
        .execute(&app.pool())
        .await
        .unwrap();
    for table in ["password_resets", "address_verifications"] {
        sqlx::query(&format!("UPDATE {table} SET expires_at = expires_at - ?"))
            .bind(4 * day)
            .execute(&app.pool())
            .await
            .unwrap();
    }
    let mut tx = app.pool().begin().await.unwrap();
    let user: i64 = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    link_tokens::create(
        &mut tx,
        LinkKind::PasswordReset,
        user,
        &link_tokens::new_token(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let sender = sender_of(&app, "pruner", Duration::from_secs(5));
    sender.prune().await;

    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT recipient, state FROM outbox ORDER BY id")
            .fetch_all(&app.pool())
            .await
            .unwrap();
    let expected = [
        (ana.email(), "sent".to_string()),
        (ana.email(), "sent".to_string()),
        (letter(2).recipient, "dead".to_string()),
    ];
    assert_eq!(
        left, expected,
        "the welcome and reset mails, recent; the dead one"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM address_verifications")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM password_resets").await,
        1,
        "the fresh link stays"
    );
}
