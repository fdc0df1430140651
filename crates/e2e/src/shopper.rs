//! A shopper at the load-balanced address: one cookie jar (a browser's
//! session), the shop's real forms with their CSRF token, and redirects
//! read rather than followed, so each step's own answer is checked.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use regex::Regex;
use reqwest::{Client, StatusCode, redirect};

/// An answer: its status, the `Location` it redirects to, and its body.
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

pub struct Shopper {
    client: Client,
    base: String,
}

static CSRF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"name="csrf_token" value="([0-9a-f]+)""#).unwrap());
static BUY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"action="/buy/(\d+)""#).unwrap());
static DELIVERY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"/delivery/(\d+)$").unwrap());

impl Shopper {
    /// A new visitor: an empty cookie jar.
    pub fn new(base: &str) -> Result<Shopper> {
        let client = Client::builder()
            .cookie_store(true)
            .redirect(redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Shopper {
            client,
            base: base.to_string(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Answer> {
        let request = self.client.get(format!("{}{path}", self.base));
        answer(
            request
                .send()
                .await
                .with_context(|| format!("GET {path}"))?,
        )
        .await
    }

    /// A form post with this session's CSRF token, read from the login page
    /// first. No token there fails the step, rather than posting an empty
    /// one and reading the 403 as the shop's answer.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Result<Answer> {
        let login = self.get("/login").await?;
        let Some(token) = CSRF.captures(&login.body).map(|c| c[1].to_string()) else {
            bail!(
                "no CSRF token on /login before POST {path} (it answered {})",
                login.status
            );
        };
        let mut form = fields.to_vec();
        form.push(("csrf_token", &token));
        let request = self.client.post(format!("{}{path}", self.base)).form(&form);
        answer(
            request
                .send()
                .await
                .with_context(|| format!("POST {path}"))?,
        )
        .await
    }

    pub async fn register(&self, name: &str, email: &str, password: &str) -> Result<Answer> {
        let fields = [("name", name), ("email", email), ("password", password)];
        self.post("/register", &fields).await
    }

    pub async fn log_in(&self, email: &str, password: &str) -> Result<Answer> {
        self.post("/login", &[("email", email), ("password", password)])
            .await
    }

    /// The replica that answered `path` (the shop's `X-Served-By` header).
    pub async fn served_by(&self, path: &str) -> Result<String> {
        let request = self.client.get(format!("{}{path}", self.base));
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let replica = response.headers().get("x-served-by");
        let replica = replica.and_then(|name| name.to_str().ok());
        replica.map(str::to_string).with_context(|| {
            format!(
                "GET {path} answered {} without X-Served-By",
                response.status()
            )
        })
    }

    /// The first book the catalog offers to buy (a signed-in shopper's view).
    pub async fn first_book_for_sale(&self) -> Result<Option<i64>> {
        let catalog = self.get("/book/catalog").await?;
        Ok(BUY.captures(&catalog.body).and_then(|c| c[1].parse().ok()))
    }

    /// One copy of `book` bought now, delivered and paid through the real
    /// forms; the order's id.
    pub async fn buy_and_pay(&self, book: i64) -> Result<i64> {
        let key = buy_key();
        let bought = self
            .post(
                &format!("/buy/{book}"),
                &[("quantity", "1"), ("buy_key", &key)],
            )
            .await?;
        let order: i64 = bought
            .location
            .as_deref()
            .and_then(|to| DELIVERY.captures(to))
            .and_then(|c| c[1].parse().ok())
            .with_context(|| {
                format!(
                    "buying book {book} answered {} {}",
                    bought.status,
                    bought.location.as_deref().unwrap_or("")
                )
            })?;
        let delivery = self
            .post(&format!("/delivery/{order}"), &[("provider", "3")])
            .await?;
        expect_redirect(
            &delivery,
            &format!("/payment/{order}"),
            "choosing the delivery",
        )?;
        let paid = self
            .post(&format!("/payment/{order}"), &[("method", "Credit Card")])
            .await?;
        expect_redirect(&paid, &format!("/orders/{order}"), "paying")?;
        let shown = self.get(&format!("/orders/{order}")).await?;
        if !shown.body.contains(r#"id="status">Paid"#) {
            bail!(
                "order {order} was paid, but its page does not say Paid ({})",
                shown.status
            );
        }
        Ok(order)
    }
}

async fn answer(response: reqwest::Response) -> Result<Answer> {
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|to| to.to_str().ok())
        .map(str::to_string);
    let body = response.text().await?;
    Ok(Answer {
        status,
        location,
        body,
    })
}

fn expect_redirect(answer: &Answer, to: &str, step: &str) -> Result<()> {
    let location = answer.location.as_deref().unwrap_or("");
    if answer.status != StatusCode::SEE_OTHER || !location.ends_with(to) {
        bail!("{step} answered {} {location}, not 303 {to}", answer.status);
    }
    Ok(())
}

/// A new page's buy key (the shop refuses a buy-now without one): a new key
/// is a new order.
fn buy_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
