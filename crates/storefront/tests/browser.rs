//! The shop for a person in a real browser: Debian's Chromium, driven through
//! chromedriver, against a storefront this test starts (SQLite, demo catalog).
//! The whole flow runs at a desktop and at a phone-sized window, and a
//! shopper's story runs once more in Spanish at phone size; each leaves
//! screenshots of its pages in a folder it prints.
//!
//! Without Chromium it prints "skipped", unless CI=true, where that fails.
//! `scripts/test-browser` installs it and runs this. UPDATE_SCREENSHOTS=1
//! also copies the telling screenshots into docs/screenshots/.

mod common;
#[path = "browser/driver.rs"]
mod driver;
#[path = "browser/page.rs"]
mod page;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use futures::FutureExt;
use storefront::app::config::Config;
use storefront::domain::{Cents, Email};
use storefront::store::users;

use common::mail_sink::MailSink;
use common::{Running, skip_because};
use driver::{DESKTOP, Driver, Installed, PHONE, Viewport};
use page::Browser;

const PASSWORD: &str = "correct horse battery";
/// A demo classic the shopper also buys, found by searching its author.
const CLASSIC: (&str, &str) = ("Emma", "Austen");
const DELIVERY: &str = "FedEx";
/// The seller's book: listed at 12.00 × 5, then edited to 14.50 × 4.
const PRICE_CENTS: i64 = 1450;
const STOCK: i64 = 4;
const BOUGHT: i64 = 2;

/// The screenshots worth keeping in docs/screenshots/ (README shows the first).
const TELLING: &[&str] = &[
    "desktop-catalog",
    "phone-catalog",
    "desktop-book",
    "phone-book",
    "desktop-cart",
    "phone-checkout",
    "desktop-order-paid",
    "phone-order-paid",
    "desktop-price-changed",
    "desktop-my-books",
    "phone-es-catalog",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_and_a_shopper_use_the_shop_in_chromium() {
    let Some(installed) = prerequisites() else {
        return;
    };
    let Some(mail) = MailSink::start().await else {
        return;
    };
    let shop = Shop::start(mail).await;
    let shots = screenshot_dir();
    let driver = Driver::start(&installed).await;
    for viewport in [DESKTOP, PHONE] {
        let started = Instant::now();
        in_a_browser(&shop, &driver, viewport, &shots, Story::SellAndBuy).await;
        println!(
            "browser flow at {} ({}×{}) passed in {:.1} s",
            viewport.name,
            viewport.width,
            viewport.height,
            started.elapsed().as_secs_f64()
        );
    }
    in_a_browser(&shop, &driver, PHONE, &shots, Story::InSpanish).await;
    println!("the shopper's story in Spanish at {} passed", PHONE.name);
    println!("screenshots: {}", shots.display());
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        update_docs(&shots);
    }
}

/// Chromium missing is a skip on a developer's machine and a failure in CI.
fn prerequisites() -> Option<Installed> {
    let found = Installed::find();
    if found.is_none() {
        skip_because(
            "chromium and chromium-driver are not installed (scripts/test-browser installs them)",
        );
    }
    found
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("BROWSER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots"));
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

fn update_docs(shots: &Path) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&docs).expect("docs/screenshots");
    for name in TELLING {
        let file = format!("{name}.png");
        std::fs::copy(shots.join(&file), docs.join(&file)).expect("copying a screenshot");
    }
    println!(
        "updated {} screenshots in {}",
        TELLING.len(),
        docs.display()
    );
}

/// One storefront for both window sizes, with the demo catalog, mailing
/// through a real SMTP server.
struct Shop {
    base: String,
    running: Running,
    mail: MailSink,
    _dir: tempfile::TempDir,
}

impl Shop {
    async fn start(mail: MailSink) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("shop.db").display());
        let mut config = Config::local(&url);
        config.seed_demo_if_empty = true;
        config.mail.smtp_url = Some(mail.smtp_url());
        config.mail.poll = Duration::from_millis(100);
        let running = Running::start(config).await;
        Shop {
            base: running.base(),
            running,
            mail,
            _dir: dir,
        }
    }

    /// The path of the reset link mailed to `email`.
    async fn reset_path_mailed_to(&self, email: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Her receipt came to the same address first.
            let link = self.mail.delivered().into_iter().find_map(|m| {
                let at = m.text.find("/password/reset?token=")?;
                let path = m.text[at..].split_whitespace().next()?.to_string();
                (m.to == email).then_some(path)
            });
            if let Some(path) = link {
                return path;
            }
            assert!(
                Instant::now() < deadline,
                "no reset mail for {email} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn cents(&self, sql: &str, bind: &str) -> Cents {
        let cents: i64 = sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_one(&self.running.state.db.pool())
            .await
            .unwrap();
        Cents::try_from(cents).expect("a stored amount")
    }

    /// The classic's price and the delivery's cost, as the shop stores them.
    async fn classic_and_delivery(&self) -> (Cents, Cents) {
        let classic = self
            .cents("SELECT price_cents FROM books WHERE title = ?", CLASSIC.0)
            .await;
        let delivery = self
            .cents(
                "SELECT cost_cents FROM delivery_providers WHERE name = ?",
                DELIVERY,
            )
            .await;
        (classic, delivery)
    }

    /// What the order must cost: the shop's own prices, not the test's guess.
    async fn expected_total(&self) -> (Cents, Cents) {
        let (classic, delivery) = self.classic_and_delivery().await;
        let bought = Cents::try_from(PRICE_CENTS * BOUGHT).unwrap();
        let books = bought + classic;
        (books, books + delivery)
    }
}

/// The people of one run; each window size has its own.
struct Cast {
    seller: String,
    shopper: String,
    title: &'static str,
    search: &'static str,
}

impl Cast {
    fn for_viewport(viewport: Viewport) -> Cast {
        let (title, search) = match viewport.mobile {
            // Long, with an apostrophe: it must wrap inside a phone's card.
            true => (
                "The Lighthouse Keeper's Unfinished Letters from the Northern Sea",
                "Lighthouse",
            ),
            false => ("The Cartographer of Forgotten Rivers", "Cartographer"),
        };
        Cast {
            seller: format!("seller-{}@example.com", viewport.name),
            shopper: format!("shopper-{}@example.com", viewport.name),
            title,
            search,
        }
    }
}

#[derive(Clone, Copy)]
enum Story {
    /// A seller lists a book, a shopper buys it, an admin looks on (English).
    SellAndBuy,
    /// A shopper switches the shop to Spanish, then registers and buys.
    InSpanish,
}

/// A fresh browser for one window size; it is closed even when a step fails,
/// so no Chromium outlives the test.
async fn in_a_browser(
    shop: &Shop,
    driver: &Driver,
    viewport: Viewport,
    shots: &Path,
    story: Story,
) {
    let profile = tempfile::tempdir().expect("profile dir");
    let client = driver.session(viewport, profile.path()).await;
    let browser = Browser::new(client.clone(), viewport, shop.base.clone(), shots);
    let outcome = match story {
        Story::SellAndBuy => AssertUnwindSafe(flow(shop, &browser)).catch_unwind().await,
        Story::InSpanish => {
            AssertUnwindSafe(spanish_shopper_buys(shop, &browser))
                .catch_unwind()
                .await
        }
    };
    let _ = client.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn flow(shop: &Shop, b: &Browser) {
    let cast = Cast::for_viewport(b.viewport);
    b.open("/").await;
    b.shot("home").await;
    // Brand, Catalog, Log in, Register, the language switch, then the search field and button.
    b.check_focus_rings(7).await;

    seller_lists_and_edits(b, &cast).await;
    shopper_buys(shop, b, &cast).await;
    a_changed_price_stops_the_purchase(shop, b, &cast).await;
    seller_sees_the_stock_go_down(b, &cast).await;
    admin_sees_the_users(shop, b, &cast).await;
}

async fn register(b: &Browser, name: &str, email: &str) {
    b.open("/register").await;
    b.fill("Name", name).await;
    b.fill("E-mail", email).await;
    b.fill("Password", PASSWORD).await;
    b.press("Register").await;
    b.expect_text("Your account is ready.").await;
}

async fn login(b: &Browser, email: &str, password: &str) {
    b.open("/login").await;
    b.fill("E-mail", email).await;
    b.fill("Password", password).await;
    b.press("Log in").await;
}

async fn login_ok(b: &Browser, email: &str) {
    login(b, email, PASSWORD).await;
    b.expect_text("Welcome back").await;
}

async fn logout(b: &Browser) {
    b.press("Log out").await;
    assert_eq!(b.path().await, "/login");
}

/// The text of one column in the table row that mentions `row`.
async fn cell(b: &Browser, row: &str, column: &str) -> String {
    let xpath = format!("//tr[contains(., \"{row}\")]/td[@data-label='{column}']");
    let td = b.client.find(Locator::XPath(&xpath)).await.expect(column);
    td.text().await.unwrap().trim().to_string()
}

async fn seller_lists_and_edits(b: &Browser, cast: &Cast) {
    register(b, "Sam Seller", &cast.seller).await;
    login(b, &cast.seller, "not my password").await;
    b.expect_text("Login failed: check your e-mail and password.")
        .await;
    login_ok(b, &cast.seller).await;

    b.open("/book/my_books").await;
    b.follow("Add a book").await;
    b.press("Save").await;
    b.expect_text("Enter the title.").await;
    b.expect_text("Enter a price.").await;
    b.shot("add-book-errors").await;

    b.fill("Title", cast.title).await;
    b.fill("Author", "Ada Quill").await;
    b.fill(
        "Description",
        "Maps of rivers that no longer exist, and the people who walked them.",
    )
    .await;
    b.fill("Price (USD)", "12.00").await;
    b.fill("Copies in stock", "5").await;
    b.press("Save").await;
    b.expect_text("is now for sale.").await;

    b.press_in(cast.title, "Edit").await;
    b.fill("Price (USD)", "14.50").await;
    b.fill("Copies in stock", &STOCK.to_string()).await;
    b.press("Save").await;
    b.expect_text("was updated.").await;
    assert_eq!(cell(b, cast.title, "Price").await, "$14.50");
    logout(b).await;
}

async fn shopper_buys(shop: &Shop, b: &Browser, cast: &Cast) {
    register(b, "Pat Shopper", &cast.shopper).await;
    login_ok(b, &cast.shopper).await;
    b.open("/book/catalog").await;
    b.shot("catalog").await;

    b.fill("Search by title or author", cast.search).await;
    b.press("Show").await;
    b.expect_text("1 book matching").await;
    from_the_card_the_typed_quantity_is_sent(b, cast).await;
    // The refusal is the book's page, its own form holding what was typed.
    b.shot("book-over-stock").await;
    b.fill("Quantity", &BOUGHT.to_string()).await;
    b.press("Add to cart").await;
    b.expect_text("to your cart.").await;

    // The second book through the home page's search box.
    b.open("/").await;
    b.fill("Search by title or author", CLASSIC.1).await;
    b.press("Search").await;
    b.follow(CLASSIC.0).await;
    b.press("Add to cart").await;
    b.expect_text("to your cart.").await;
    checks_out_and_pays(shop, b, cast).await;

    b.open("/admin/users").await;
    b.expect_text("Not allowed").await;
    b.expect_text("Error 403").await;
    // The error page has no navigation, so leave from a shop page.
    b.open("/orders").await;
    logout(b).await;
}

/// A card's quantity field and buttons belong to the catalog's one buy
/// form: Enter in the field submits nothing (the form's default button is
/// disabled, so it cannot buy another card's book), and the card's button
/// sends the quantity typed in that card.
async fn from_the_card_the_typed_quantity_is_sent(b: &Browser, cast: &Cast) {
    let field = format!("Quantity of {}", cast.title);
    b.fill(&field, "5\u{E007}").await; // WebDriver's Enter key
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        b.path().await,
        "/book/catalog",
        "Enter in a card submitted the form"
    );
    b.press("Add to cart").await;
    b.expect_text(&format!("Only {STOCK} left")).await;
}

async fn checks_out_and_pays(shop: &Shop, b: &Browser, cast: &Cast) {
    let (books, total) = shop.expected_total().await;
    b.expect_text(cast.title).await;
    b.expect_text(CLASSIC.0).await;
    assert_eq!(b.text_of("cart-total").await, books.to_string());
    b.shot("cart").await;

    b.press("Check out").await;
    assert!(b.path().await.starts_with("/delivery/"));
    b.shot("checkout").await;
    b.choose(DELIVERY).await;
    b.press("Continue to payment").await;
    assert_eq!(b.text_of("amount").await, total.to_string());
    b.shot("payment").await;
    b.press(&format!("Pay {total}")).await;

    b.expect_text(&format!("Thank you! We received {total}"))
        .await;
    assert_eq!(b.text_of("status").await, "Paid");
    assert_eq!(b.text_of("total").await, total.to_string());
    b.shot("order-paid").await;
    let order = b.path().await.trim_start_matches("/orders/").to_string();

    // The payment page again from the history (or a second click on Pay):
    // the paid order, calmly, not an error page.
    b.client.back().await.expect("history back");
    b.expect_text(&format!("Order #{order} is paid: nothing more to do."))
        .await;
    assert_eq!(b.text_of("status").await, "Paid");

    b.follow("Orders").await;
    b.expect_text(&format!("#{order}")).await;
    b.shot("orders").await;
}

/// The seller changes the price while the shopper looks at the book: Buy now
/// stops with both prices, and the page's own button buys at the new one.
async fn a_changed_price_stops_the_purchase(shop: &Shop, b: &Browser, cast: &Cast) {
    login_ok(b, &cast.shopper).await;
    b.open("/book/catalog").await;
    b.fill("Search by title or author", cast.search).await;
    b.press("Show").await;
    b.follow(cast.title).await;
    b.shot("book").await;
    let set_price = |cents: i64| async move {
        sqlx::query("UPDATE books SET price_cents = ? WHERE title = ?")
            .bind(cents)
            .bind(cast.title)
            .execute(&shop.running.state.db.pool())
            .await
            .unwrap();
        shop.running.state.catalog_changed().await;
    };
    set_price(PRICE_CENTS + 100).await;
    b.press("Buy now").await;
    b.expect_text("changed from $14.50 to $15.50 since you saw it")
        .await;
    b.shot("price-changed").await;
    set_price(PRICE_CENTS).await;
    logout(b).await;
}

async fn seller_sees_the_stock_go_down(b: &Browser, cast: &Cast) {
    login_ok(b, &cast.seller).await;
    b.open("/book/my_books").await;
    assert_eq!(
        cell(b, cast.title, "Stock").await,
        (STOCK - BOUGHT).to_string()
    );
    b.shot("my-books").await;
}

/// The seller is made admin; the new role takes effect at the next login.
async fn admin_sees_the_users(shop: &Shop, b: &Browser, cast: &Cast) {
    let email = Email::parse(&cast.seller).unwrap();
    assert!(
        users::grant_admin(&shop.running.state.db.pool(), &email)
            .await
            .unwrap()
    );
    logout(b).await;
    login_ok(b, &cast.seller).await;
    b.follow("Admin").await;
    b.expect_text("Registered users").await;
    b.expect_text(&cast.shopper).await;
    b.shot("admin-users").await;
    logout(b).await;
}

/// The shopper's story in Spanish: the header's switch, then registering,
/// searching, the cart, delivery and payment, all in Spanish words, with
/// prices written the Spanish way.
async fn spanish_shopper_buys(shop: &Shop, b: &Browser) {
    let email = format!("lectora-{}@example.com", b.viewport.name);
    b.open("/").await;
    b.follow("Español").await;
    b.expect_text("Bienvenido a la Librería").await;
    b.follow("Registrarse").await;
    b.fill("Nombre", "Lucía Lectora").await;
    b.fill("Correo electrónico", &email).await;
    b.fill("Contraseña", PASSWORD).await;
    b.press("Registrarse").await;
    b.expect_text("Tu cuenta está lista.").await;
    b.fill("Correo electrónico", &email).await;
    b.fill("Contraseña", PASSWORD).await;
    b.press("Iniciar sesión").await;
    b.expect_text("Hola de nuevo, Lucía Lectora.").await;

    // She sells a book too, its price typed as Spanish writes it.
    b.open("/book/add_book").await;
    b.fill("Título", "Cuaderno de la lectora").await;
    b.fill("Autor", "Lucía Lectora").await;
    b.fill("Descripción", "Notas al margen.").await;
    b.fill("Precio (USD)", "12,50").await;
    b.fill("Ejemplares disponibles", "3").await;
    b.press("Guardar").await;
    b.expect_text("«Cuaderno de la lectora» ya está a la venta.")
        .await;
    b.expect_text("12,50 US$").await;
    b.open("/book/catalog").await;

    b.fill("Buscar por título o autor", CLASSIC.1).await;
    b.press("Mostrar").await;
    b.expect_text("que coinciden con «Austen»").await;
    b.shot("es-catalog").await;
    b.follow(CLASSIC.0).await;
    b.press("Añadir al carrito").await;
    b.expect_text("se añadió a tu carrito.").await;
    b.shot("es-cart").await;

    b.press("Tramitar pedido").await;
    b.choose(DELIVERY).await;
    b.press("Continuar al pago").await;
    let total = spanish_total(shop).await;
    assert_eq!(b.text_of("amount").await, total);
    b.press(&format!("Pagar {total}")).await;
    b.expect_text(&format!(
        "¡Gracias! Hemos recibido {total} por Tarjeta de crédito."
    ))
    .await;
    assert_eq!(b.text_of("status").await, "Pagado");
    b.shot("es-order-paid").await;
    b.press("Cerrar sesión").await;
    assert_eq!(b.path().await, "/login");
    forgets_her_password(shop, b, &email).await;
}

/// "¿Olvidaste tu contraseña?": the link comes by mail, a new password is set
/// on the phone, and it logs her in.
async fn forgets_her_password(shop: &Shop, b: &Browser, email: &str) {
    const NEW_PASSWORD: &str = "otra frase de paso larga";
    b.follow("¿Olvidaste tu contraseña?").await;
    b.fill("Correo electrónico", email).await;
    b.shot("es-forgot").await;
    b.press("Enviarme un enlace").await;
    b.expect_text("Si una cuenta usa esa dirección").await;
    let path = shop.reset_path_mailed_to(email).await;
    b.open(&path).await;
    b.fill("Contraseña nueva", NEW_PASSWORD).await;
    b.shot("es-reset").await;
    b.press("Guardar la contraseña nueva").await;
    b.expect_text("Tu contraseña ha cambiado").await;
    b.fill("Correo electrónico", email).await;
    b.fill("Contraseña", NEW_PASSWORD).await;
    b.press("Iniciar sesión").await;
    b.expect_text("Hola de nuevo, Lucía Lectora.").await;
}

/// One copy of the classic plus delivery, as a Spanish page writes it.
async fn spanish_total(shop: &Shop) -> String {
    let (classic, delivery) = shop.classic_and_delivery().await;
    storefront::i18n::Lang::Es
        .money((classic + delivery).get())
        .to_string()
}
