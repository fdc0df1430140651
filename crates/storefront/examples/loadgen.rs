//! Load for the flows a URL-hammering tool cannot script: logging in (each
//! attempt needs a fresh CSRF token) and checkout (buy → delivery → payment,
//! per distinct user). Used by `scripts/bench`; prints one JSON line.
//!
//! loadgen checkout BASE_URL --users N --connections C --seconds S --books ID,ID,…
//! loadgen login    BASE_URL --users N --connections C --seconds S
//! loadgen freshness BASE_URL --other OTHER_URL [--changes N]
//!   (a seller on BASE lists N books one after the other; each is searched
//!   for through OTHER, another replica, until found: how long a change takes
//!   to reach another replica's search, median and max)
//! loadgen steady   URL --connections C --seconds S [--stop-file F] [--pause-ms P] [--targets-file T]
//!                  [--shoppers-per-connection N]
//!   (GETs on a new connection each, as a load balancer spreads them, until
//!   S seconds pass or F exists: the steady load of a rolling update. With
//!   T, URL is a path and T lists the base URLs to spread it over, one a
//!   line, re-read twice a second: a load balancer's target group, which
//!   the test edits as nodes register and deregister)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use regex::Regex;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// buy → delivery → payment, one distinct user per signed-up account
    Checkout,
    /// log in again and again (each attempt scrapes a fresh CSRF token)
    Login,
    /// GETs on a new connection each, as a load balancer spreads them
    Steady,
    /// a seller's new book, searched for through another replica until found
    Freshness,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Checkout => "checkout",
            Mode::Login => "login",
            Mode::Steady => "steady",
            Mode::Freshness => "freshness",
        }
    }
}

/// Load for the flows a URL-hammering tool cannot script; prints one JSON line.
#[derive(clap::Parser)]
struct Args {
    mode: Mode,
    /// The shop's base URL (a path with --targets-file)
    #[arg(default_value = "http://127.0.0.1:8080")]
    base: String,
    #[arg(long, default_value_t = 64)]
    users: usize,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Book ids to buy, comma-separated (checkout)
    #[arg(long, value_delimiter = ',')]
    books: Vec<i64>,
    /// Steady: stop when this file exists
    #[arg(long)]
    stop_file: Option<String>,
    /// Steady: pause between a connection's requests
    #[arg(long = "pause-ms", default_value = "0", value_parser = parse_millis)]
    pause: Duration,
    /// Steady: the base URLs to spread over, one a line, re-read twice a second
    #[arg(long)]
    targets_file: Option<String>,
    /// Steady: keep each connection open between requests. By default every
    /// request has a connection of its own, so a node taken away is never
    /// reused; at hundreds of requests a second through one local port that
    /// fills the ephemeral ports with TIME-WAIT sockets within a minute.
    #[arg(long)]
    keep_alive: bool,
    /// Steady: the shoppers each connection stands for, taking turns
    /// (X-Forwarded-For). One by default; more keep a fast connection under
    /// the proxy's per-client request limit, which a load of CPU is not
    /// about (a connection answered 429 at once would go on at full speed).
    #[arg(long, default_value_t = 1)]
    shoppers_per_connection: usize,
    /// Freshness: the other replica's base URL, where searches go
    #[arg(long)]
    other: Option<String>,
    /// Freshness: how many books are listed and looked for
    #[arg(long, default_value_t = 100)]
    changes: usize,
}

fn parse_millis(text: &str) -> Result<Duration, std::num::ParseIntError> {
    text.parse().map(Duration::from_millis)
}

struct User {
    client: reqwest::Client,
    email: String,
    token: String,
}

const PASSWORD: &str = "bench password 1";
const FORWARDED_FOR: &str = "x-forwarded-for";

/// A distinct private address for shopper or attempt `n`.
fn shopper_address(n: usize) -> reqwest::header::HeaderValue {
    let address = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    address.parse().expect("an address is a valid header value")
}

/// A client for shopper `n`. Real shoppers reach the shop from many
/// addresses through the load balancer, which names each in
/// `X-Forwarded-For` (believed from loopback, a trusted proxy); without it
/// every bench user would share one address and its login allowance.
fn client(n: usize) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(FORWARDED_FOR, shopper_address(n));
    reqwest::Client::builder()
        .default_headers(headers)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build()
        .expect("client")
}

async fn token(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let html = client
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let re = Regex::new(r#"name="csrf_token" value="([0-9a-f]+)""#)?;
    Ok(re
        .captures(&html)
        .ok_or_else(|| anyhow::anyhow!("no CSRF token"))?[1]
        .to_string())
}

/// Tells this run's accounts from an earlier run's on the same database (a
/// process id does not: in a container it is always 1).
static RUN: std::sync::LazyLock<u64> = std::sync::LazyLock::new(rand::random);

/// Registers and logs in one user (not timed).
async fn sign_up(base: &str, n: usize) -> anyhow::Result<User> {
    let client = client(n);
    let email = format!("bench-{n}-{}@example.com", *RUN);
    let t = token(&client, base).await?;
    let form = [
        ("name", "Bench"),
        ("email", email.as_str()),
        ("password", PASSWORD),
        ("csrf_token", t.as_str()),
    ];
    let status = client
        .post(format!("{base}/register"))
        .form(&form)
        .send()
        .await?
        .status();
    anyhow::ensure!(status.as_u16() == 303, "register answered {status}");
    login(&client, base, &email, None).await?;
    let token = token(&client, base).await?;
    Ok(User {
        client,
        email,
        token,
    })
}

/// Logs in once. The login limit allows 20 attempts per address per 15
/// minutes, as it should for one person; the bench's logins stand for many
/// people, so `from` gives each attempt its own address.
async fn login(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    from: Option<usize>,
) -> anyhow::Result<()> {
    let t = token(client, base).await?;
    let form = [
        ("email", email),
        ("password", PASSWORD),
        ("csrf_token", t.as_str()),
    ];
    let mut request = client.post(format!("{base}/login")).form(&form);
    if let Some(n) = from {
        request = request.header(FORWARDED_FOR, shopper_address(n));
    }
    let status = request.send().await?.status();
    anyhow::ensure!(status.as_u16() == 303, "login answered {status}");
    Ok(())
}

/// One order through the whole flow; returns false on any unexpected answer.
async fn checkout(user: &User, base: &str, book: i64) -> anyhow::Result<bool> {
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let mut form = fields;
        form.push(("csrf_token", user.token.clone()));
        user.client.post(format!("{base}{path}")).form(&form).send()
    };
    // A fresh page's buy key: each checkout is a new order.
    let buy_key = storefront::web::catalog::new_buy_key();
    let bought = post(
        format!("/buy/{book}"),
        vec![("quantity", "1".into()), ("buy_key", buy_key)],
    )
    .await?;
    let location = bought
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some(order) = location.strip_prefix("/delivery/") else {
        return Ok(false);
    };
    let delivered = post(format!("/delivery/{order}"), vec![("provider", "3".into())]).await?;
    let paid = post(
        format!("/payment/{order}"),
        vec![("method", "Paypal".into())],
    )
    .await?;
    Ok(delivered.status().as_u16() == 303 && paid.status().as_u16() == 303)
}

struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u64>>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank] as f64 / 1000.0
}

/// Where steady load goes: one URL, or a path over a changing set of targets.
struct Targets {
    path_or_url: String,
    file: Option<String>,
    current: std::sync::RwLock<Vec<String>>,
    next: AtomicU64,
}

impl Targets {
    fn new(args: &Args) -> Arc<Self> {
        let targets = Arc::new(Targets {
            path_or_url: args.base.clone(),
            file: args.targets_file.clone(),
            current: std::sync::RwLock::new(Vec::new()),
            next: AtomicU64::new(0),
        });
        targets.reload();
        targets
    }

    fn reload(&self) {
        let Some(file) = &self.file else { return };
        if let Ok(text) = std::fs::read_to_string(file) {
            let list = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect();
            *self.current.write().unwrap() = list;
        }
    }

    /// (target, full URL) of the next request, round robin; None: no target registered.
    fn pick(&self) -> Option<(String, String)> {
        if self.file.is_none() {
            return Some((self.path_or_url.clone(), self.path_or_url.clone()));
        }
        let list = self.current.read().unwrap();
        if list.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize % list.len();
        let base = list[n].trim_end_matches('/').to_string();
        Some((base.clone(), format!("{base}{}", self.path_or_url)))
    }
}

/// Answers per target: [ok, failed].
type PerTarget = std::sync::Mutex<std::collections::BTreeMap<String, [u64; 2]>>;

/// Steady GETs until the time is up or the stop file appears; every answer but 200 is a failure.
async fn steady(args: Arc<Args>) -> anyhow::Result<()> {
    let idle_per_host = if args.keep_alive { args.connections } else { 0 };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(idle_per_host)
        .timeout(Duration::from_secs(10))
        .build()?;
    let targets = Targets::new(&args);
    let per_target: Arc<PerTarget> = Arc::default();
    // How each request was answered: its status code, or "no answer" (a
    // refused or cut connection, a timeout), so a test can tell a friendly
    // 503 from a 500.
    let answers: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // The first error explains the others.
    let first_error = Arc::new(std::sync::Mutex::new(String::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let reloader = {
        let targets = targets.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                targets.reload();
            }
        })
    };
    let mut workers = tokio::task::JoinSet::new();
    // Each connection is one shopper behind the load balancer, named in
    // X-Forwarded-For (the proxy's per-client limits count shoppers, not the
    // load balancer), as in the checkout scenarios.
    for shopper in 0..args.connections {
        let (args, client, targets, per_target, answers) = (
            args.clone(),
            client.clone(),
            targets.clone(),
            per_target.clone(),
            answers.clone(),
        );
        let (ok, failed, first_error) = (ok.clone(), failed.clone(), first_error.clone());
        workers.spawn(async move {
            let stopped = || {
                args.stop_file
                    .as_deref()
                    .is_some_and(|f| std::path::Path::new(f).exists())
            };
            let mut turn = 0;
            while Instant::now() < deadline && !stopped() {
                let Some((target, url)) = targets.pick() else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let answer = client
                    .get(&url)
                    .header(
                        FORWARDED_FOR,
                        shopper_address(shopper + args.connections * turn),
                    )
                    .send()
                    .await;
                turn = (turn + 1) % args.shoppers_per_connection.max(1);
                let answered_as = answer
                    .as_ref()
                    .map_or("no answer".to_string(), |r| r.status().as_u16().to_string());
                *answers.lock().unwrap().entry(answered_as).or_default() += 1;
                let error = match answer {
                    // The whole page, read: a response dropped unread also
                    // closes its connection, so --keep-alive needs it.
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {
                        r.bytes().await.err().map(|e| format!("{url}: {e:?}"))
                    }
                    Ok(r) => Some(format!("{url}: status {}", r.status())),
                    Err(e) => Some(format!("{url}: {e:?}")),
                };
                per_target.lock().unwrap().entry(target).or_default()
                    [usize::from(error.is_some())] += 1;
                // A pause keeps the rate below what TIME_WAIT sockets allow
                // (a new connection per request exhausts ephemeral ports).
                tokio::time::sleep(args.pause).await;
                let Some(error) = error else {
                    ok.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                failed.fetch_add(1, Ordering::Relaxed);
                let mut first = first_error.lock().unwrap();
                if first.is_empty() {
                    *first = error;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    reloader.abort();
    let report = serde_json::json!({
        "mode": "steady",
        "ok": ok.load(Ordering::Relaxed),
        "failed": failed.load(Ordering::Relaxed),
        "seconds": two_places(started.elapsed().as_secs_f64()),
        "first_error": first_error.lock().unwrap().as_str(),
        "targets": *per_target.lock().unwrap(),
        "answers": *answers.lock().unwrap(),
    });
    println!("{report}");
    Ok(())
}

/// How long a search through another replica takes to find a book after
/// its seller's save returned, over `--changes` books; prints one JSON line.
async fn freshness(args: Arc<Args>) -> anyhow::Result<()> {
    let other = args
        .other
        .clone()
        .ok_or_else(|| anyhow::anyhow!("freshness needs --other"))?;
    // An address of its own (the bench's other runs sign up from 10.0.x.y).
    let seller = sign_up(&args.base, 0xf_ffff).await?;
    let mut waits_us = Vec::new();
    for n in 0..args.changes {
        // One word no other book has: found means this book's change arrived.
        let word = format!("fresh{:x}n{n}", *RUN);
        let form = [
            ("title", word.clone()),
            ("author", "Bench Seller".into()),
            ("description", "Listed to measure freshness.".into()),
            ("price", "5.00".into()),
            ("stock", "1".into()),
            ("csrf_token", seller.token.clone()),
        ];
        let listed = seller
            .client
            .post(format!("{}/book/add_book", args.base))
            .form(&form)
            .send()
            .await?;
        anyhow::ensure!(
            listed.status().as_u16() == 303,
            "listing answered {}",
            listed.status()
        );
        let saved = Instant::now();
        // A visitor of its own (no session, so no wait for a seller's own change).
        let visitor = client(1_000 + n);
        loop {
            let page = visitor
                .get(format!("{other}/book/catalog?q={word}"))
                .send()
                .await?
                .text()
                .await?;
            if page.contains(&format!(">{word}</a>")) {
                break;
            }
            anyhow::ensure!(
                saved.elapsed() < Duration::from_secs(10),
                "book {n} not found through the other replica after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        waits_us.push(saved.elapsed().as_micros() as u64);
    }
    waits_us.sort_unstable();
    let report = serde_json::json!({
        "mode": "freshness",
        "changes": waits_us.len(),
        "median_ms": two_places(percentile(&waits_us, 50.0)),
        "max_ms": two_places(*waits_us.last().unwrap_or(&0) as f64 / 1000.0),
    });
    println!("{report}");
    Ok(())
}

fn two_places(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(<Args as clap::Parser>::parse());
    if args.mode == Mode::Steady {
        return steady(args).await;
    }
    if args.mode == Mode::Freshness {
        return freshness(args).await;
    }
    anyhow::ensure!(
        args.mode == Mode::Login || !args.books.is_empty(),
        "checkout needs --books"
    );
    let mut users = Vec::new();
    let mut signups = tokio::task::JoinSet::new();
    for n in 0..args.users {
        let base = args.base.clone();
        signups.spawn(async move { sign_up(&base, n).await });
        if signups.len() >= 8 {
            users.push(signups.join_next().await.unwrap()??);
        }
    }
    while let Some(user) = signups.join_next().await {
        users.push(user??);
    }
    let users: Arc<Vec<User>> = Arc::new(users);
    let tally = Arc::new(Tally {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latencies_us: Default::default(),
    });
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (args, users, tally, next) = (args.clone(), users.clone(), tally.clone(), next.clone());
        workers.spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let user = &users[n % users.len()];
                let began = Instant::now();
                let ok = match args.mode {
                    Mode::Checkout => checkout(user, &args.base, args.books[n % args.books.len()])
                        .await
                        .unwrap_or(false),
                    _ => login(&user.client, &args.base, &user.email, Some(args.users + n))
                        .await
                        .is_ok(),
                };
                let counter = if ok { &tally.ok } else { &tally.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                tally
                    .latencies_us
                    .lock()
                    .unwrap()
                    .push(began.elapsed().as_micros() as u64);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = tally.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let ok = tally.ok.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "mode": args.mode.name(),
        "ok": ok,
        "failed": tally.failed.load(Ordering::Relaxed),
        "seconds": two_places(elapsed),
        "per_second": (ok as f64 / elapsed * 10.0).round() / 10.0,
        "p50_ms": two_places(percentile(&latencies, 50.0)),
        "p99_ms": two_places(percentile(&latencies, 99.0)),
    });
    println!("{report}");
    Ok(())
}
