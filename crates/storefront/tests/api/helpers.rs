//! The harness: a real storefront on port 0 with a fresh database per test
//! (SQLite by default; MySQL/MariaDB when TEST_MYSQL_URL is set; Redis
//! sessions when TEST_REDIS_URL is set), and shoppers with their own cookies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode};
use sqlx::AnyPool;
use storefront::app::config::Config;
use storefront::app::state::AppState;
use storefront::search::SearchSource;

use crate::common::{Running, csrf_token_in};

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub state: AppState,
    pub database_url: String,
    pub redis_url: Option<String>,
    _running: Running,
    _dir: Option<tempfile::TempDir>,
}

/// Which backends this run of the suite uses, from the environment.
pub fn backends() -> (Option<String>, Option<String>) {
    let nonempty = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    (nonempty("TEST_MYSQL_URL"), nonempty("TEST_REDIS_URL"))
}

/// A fresh, empty database for one test.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match backends().0 {
        Some(server) => {
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let admin = AnyPool::connect(&server)
                .await
                .expect("TEST_MYSQL_URL reachable");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            (format!("{}/{name}", server.trim_end_matches('/')), None)
        }
        None => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("shop.db").display());
            (url, Some(dir))
        }
    }
}

/// Redis database `db` of the test server, emptied, for a test that needs
/// one of its own; `None` when this run has no Redis.
pub async fn emptied_redis_db(db: u8) -> Option<String> {
    let url = format!("{}/{db}", backends().1?.trim_end_matches('/'));
    flush_redis(&url).await;
    Some(url)
}

/// Empties the Redis database at `url`.
pub async fn flush_redis(url: &str) {
    let client = deadpool_redis::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    deadpool_redis::redis::cmd("FLUSHDB")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The new buyers' share (`NEW_BUYERS_MAX_*_PERCENT`) set to the whole
/// stock, so that every order holds its copies: for tests of what a hold
/// does, in shops of a few copies where any share would be a copy or two.
/// hoarding.rs tests the share itself.
pub fn every_order_holds(config: &mut Config) {
    config.limits.new_buyers_shop_percent = 100;
    config.limits.new_buyers_title_percent = 100;
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let (database_url, dir) = fresh_database().await;
    let mut app = spawn_on(&database_url, backends().1, adjust).await;
    app._dir = dir;
    app
}

/// Another replica of the same shop: same database and session store.
pub async fn spawn_on(
    database_url: &str,
    redis_url: Option<String>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::local(database_url);
    config.redis_url = redis_url.clone();
    // As behind the fleet's proxy: each test visitor has an address of its own
    // (`X-Forwarded-For`), so per-address login limits in a shared Redis do
    // not add up across tests.
    config.trusted_proxies =
        storefront::edge::trusted_proxies::TrustedProxies::parse("127.0.0.1").unwrap();
    adjust(&mut config);
    let running = Running::start(config).await;
    search_index_built(&running.state).await;
    TestApp {
        addr: running.addr,
        metrics_addr: running.metrics_addr,
        state: running.state.clone(),
        database_url: database_url.into(),
        redis_url,
        _running: running,
        _dir: None,
    }
}

/// Waits until the replica's search index is built (it starts empty and
/// fills from the database in the background), so that a test's searches
/// are the index's from its first request.
async fn search_index_built(state: &AppState) {
    let Some(search) = &state.search else { return };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while search.source() == SearchSource::DatabaseWhileBuilding {
        assert!(
            std::time::Instant::now() < deadline,
            "the search index was not built within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl TestApp {
    pub async fn metrics_page(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the first line of the metrics page that starts with `line_start`.
    pub async fn metric(&self, line_start: &str) -> f64 {
        let text = self.metrics_page().await;
        text.lines()
            .find_map(|line| line.strip_prefix(line_start))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in the metrics"))
    }

    pub fn pool(&self) -> AnyPool {
        self.state.db.pool()
    }

    /// A visitor with an empty cookie jar, from an address of its own.
    pub fn visitor(&self) -> Shopper {
        self.visitor_from(&random_address())
    }

    /// A visitor whose requests arrive through the proxy from `address`.
    pub fn visitor_from(&self, address: &str) -> Shopper {
        Shopper::from_address(self.addr, Arc::new(Jar::default()), Some(address))
    }

    /// A registered and logged-in shopper with a unique e-mail address.
    pub async fn shopper(&self, name: &str) -> Shopper {
        let shopper = self.visitor();
        let email = unique_email(name);
        shopper.register(name, &email, PASSWORD).await;
        shopper.login_ok(&email, PASSWORD).await;
        shopper.set_email(email);
        shopper
    }

    /// Lists a book for `seller` through the form and returns its id.
    pub async fn listed_book(
        &self,
        seller: &Shopper,
        title: &str,
        price: &str,
        stock: &str,
    ) -> i64 {
        let response = seller
            .post(
                "/book/add_book",
                &[
                    ("title", title),
                    ("author", "Test Author"),
                    ("description", "A test book."),
                    ("price", price),
                    ("stock", stock),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "listing {title}");
        sqlx::query_scalar("SELECT id FROM books WHERE title = ? ORDER BY id DESC LIMIT 1")
            .bind(title)
            .fetch_one(&self.pool())
            .await
            .unwrap()
    }

    pub async fn stock_of(&self, book_id: i64) -> i64 {
        sqlx::query_scalar("SELECT stock FROM books WHERE id = ?")
            .bind(book_id)
            .fetch_one(&self.pool())
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool())
            .await
            .unwrap()
    }
}

pub const PASSWORD: &str = "correct horse battery";

pub fn unique_email(name: &str) -> String {
    format!(
        "{}-{}@example.com",
        name.to_lowercase(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A browser stand-in: keeps cookies, does not follow redirects (tests look at them).
#[derive(Clone)]
pub struct Shopper {
    pub addr: SocketAddr,
    pub jar: Arc<Jar>,
    pub client: reqwest::Client,
    email: Arc<std::sync::Mutex<String>>,
}

/// An address in 198.18.0.0/15 (reserved for benchmarks), different for every visitor.
pub fn random_address() -> String {
    let n = rand::random::<u32>() % (1 << 17);
    format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
}

impl Shopper {
    /// A shopper whose requests carry `X-Forwarded-For: address`, as the proxy adds it.
    pub fn from_address(addr: SocketAddr, jar: Arc<Jar>, address: Option<&str>) -> Shopper {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(address) = address {
            headers.insert("x-forwarded-for", address.parse().unwrap());
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Shopper {
            addr,
            jar,
            client,
            email: Default::default(),
        }
    }

    /// The same cookies (and address), talking to another replica.
    pub fn on(&self, app: &TestApp) -> Shopper {
        Shopper {
            addr: app.addr,
            ..self.clone()
        }
    }

    pub fn email(&self) -> String {
        self.email.lock().unwrap().clone()
    }

    fn set_email(&self, email: String) {
        *self.email.lock().unwrap() = email;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        (response.status(), response.text().await.unwrap())
    }

    /// This session's CSRF token, as a page's form carries it.
    pub async fn token(&self) -> String {
        let (_, html) = self.page("/login").await;
        csrf_token_in(&html).expect("the login form carries a CSRF token")
    }

    /// Posts a form with this session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let token = self.token().await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.post_raw(path, &form).await
    }

    /// Posts a form read from a page (`catalog_form_for`), as it is.
    pub async fn post_fields(&self, path: &str, fields: &[(String, String)]) -> Response {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.post_raw(path, &pairs).await
    }

    /// Posts exactly these fields (no token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, name: &str, email: &str, password: &str) -> Response {
        self.post(
            "/register",
            &[("name", name), ("email", email), ("password", password)],
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/login", &[("email", email), ("password", password)])
            .await
    }

    pub async fn login_ok(&self, email: &str, password: &str) {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "login of {email}");
        assert_eq!(location(&response), "/book/catalog");
    }

    pub fn session_cookie(&self) -> Option<String> {
        let url = self.url("/").parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix("bookstore_session=").map(str::to_string))
    }

    /// Buys `quantity` of `book_id` now; returns the new order's id.
    pub async fn add_to_cart(&self, book_id: i64, quantity: &str) -> Response {
        self.post(
            "/cart/add",
            &[("book_id", &book_id.to_string()), ("quantity", quantity)],
        )
        .await
    }

    /// A buy-now form as a freshly loaded page sends it: its own buy key.
    pub async fn buy(&self, book_id: i64, quantity: &str) -> Response {
        let key = fresh_buy_key();
        self.post(
            &format!("/buy/{book_id}"),
            &[("quantity", quantity), ("buy_key", &key)],
        )
        .await
    }

    pub async fn buy_ok(&self, book_id: i64, quantity: &str) -> i64 {
        let response = self.buy(book_id, quantity).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "buying book {book_id}"
        );
        order_id_in(&location(&response))
    }

    /// Delivery then payment; returns the payment response.
    pub async fn deliver_and_pay(&self, order_id: i64, provider: &str, method: &str) -> Response {
        let delivery = self
            .post(&format!("/delivery/{order_id}"), &[("provider", provider)])
            .await;
        assert_eq!(
            delivery.status(),
            StatusCode::SEE_OTHER,
            "choosing delivery"
        );
        assert_eq!(location(&delivery), format!("/payment/{order_id}"));
        self.post(&format!("/payment/{order_id}"), &[("method", method)])
            .await
    }
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `/delivery/42` → 42.
/// What a browser sends when a catalog card's button is pressed: the page's
/// one buy form (`<form id="buy">`, its token and buy key) with every field
/// that names it (`form="buy"`: every card's quantity and shown price), and
/// the pressed button's `book_id`.
pub fn catalog_form_for(html: &str, book: i64) -> Vec<(String, String)> {
    let start = html
        .find(r#"<form id="buy""#)
        .expect("the catalog has its buy form");
    let end = start + html[start..].find("</form>").expect("the form ends");
    let inside = html[start..end].split("<input").skip(1);
    let outside = html.split("<input").skip(1).filter(|tag| {
        tag.split('>')
            .next()
            .unwrap_or("")
            .contains(r#"form="buy""#)
    });
    let mut fields: Vec<(String, String)> = inside
        .chain(outside)
        .filter_map(|tag| {
            let tag = tag.split('>').next().unwrap_or("");
            let name = attribute(tag, "name")?;
            Some((name, attribute(tag, "value").unwrap_or_default()))
        })
        .collect();
    fields.push(("book_id".into(), book.to_string()));
    fields
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].to_string())
}

/// Replaces one field's value in a form (as typing into it would).
pub fn set_field(form: &mut [(String, String)], name: &str, value: &str) {
    let field = form
        .iter_mut()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the form has no field {name}"));
    field.1 = value.to_string();
}

/// What a page's buy forms carry (`catalog::new_buy_key`): a new one is a
/// new page, a new order.
pub fn fresh_buy_key() -> String {
    storefront::web::catalog::new_buy_key()
}

pub fn order_id_in(path: &str) -> i64 {
    path.rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no order id in {path:?}"))
}

/// The value of the hidden field `name` in a page's form.
pub fn hidden_value_in(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("the page's form has no field {name}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("the value is quoted");
    html[start..end].to_string()
}
