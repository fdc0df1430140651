//! Floods against the real binary in a process of its own, so its memory can
//! be read from /proc: anonymous page views must not grow memory or Redis,
//! and a login flood must neither grow memory without bound nor delay a real
//! login once it stops. Each run prints its figures.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore;

use crate::common::{csrf_token_in, free_port};
use crate::helpers::{PASSWORD, emptied_redis_db, fresh_database, random_address, unique_email};

/// Anonymous views may not grow the process by more than this (allocator
/// noise; when every anonymous view stored a session, 20,000 of them took ~5 MB).
const VIEW_FLOOD_RSS_BOUND_KB: i64 = 3 * 1024;
/// A login flood may not grow the process by more than this while it lasts
/// (1,000 open connections and their buffers; the hashing queue is bounded).
const LOGIN_FLOOD_RSS_BOUND_KB: i64 = 96 * 1024;
/// Redis keys the view flood may add (none are expected).
const VIEW_FLOOD_REDIS_KEY_BOUND: i64 = 2;

/// Redis databases of their own for the two floods, apart from the other
/// tests' keys (and each other's: the login flood leaves thousands of
/// counters that expire later).
const VIEW_FLOOD_REDIS_DB: u8 = 11;
const LOGIN_FLOOD_REDIS_DB: u8 = 12;

struct Shop {
    process: tokio::process::Child,
    /// The binary's stderr, at its default log level.
    log: tempfile::NamedTempFile,
    base: String,
    metrics: String,
    redis_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The storefront binary on a fresh database and, in fleet mode, an emptied Redis database `redis_db`.
async fn start_shop(redis_db: u8) -> Shop {
    let (database_url, dir) = fresh_database().await;
    let redis_url = emptied_redis_db(redis_db).await;
    let (port, metrics_port) = (free_port(), free_port());
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_storefront"));
    command
        .env("DATABASE_URL", &database_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("SEED_DEMO", "true")
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env_remove("RUST_LOG")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.reopen().unwrap()))
        .kill_on_drop(true);
    if let Some(url) = &redis_url {
        command.env("REDIS_URL", url);
    }
    let shop = Shop {
        process: command.spawn().expect("the storefront binary starts"),
        log,
        base: format!("http://127.0.0.1:{port}"),
        metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
        redis_url,
        _dir: dir,
    };
    let started = Instant::now();
    while !client()
        .get(format!("{}/readyz", shop.base))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the storefront never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shop
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

impl Shop {
    /// Resident memory of the storefront process, in kB.
    fn rss_kb(&self) -> i64 {
        let pid = self.process.id().expect("still running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    async fn redis_keys(&self) -> Option<i64> {
        let url = self.redis_url.as_ref()?;
        let client = deadpool_redis::redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        Some(
            deadpool_redis::redis::cmd("DBSIZE")
                .query_async(&mut conn)
                .await
                .unwrap(),
        )
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let text = client()
            .get(&self.metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// `n` cookieless GETs of the anonymous pages, 32 at a time.
    async fn anonymous_views(&self, n: usize) {
        let client = client();
        let paths = ["/login", "/register", "/", "/book/catalog", "/book/1"];
        futures::stream::iter(0..n)
            .map(|i| {
                let url = format!("{}{}", self.base, paths[i % paths.len()]);
                let client = client.clone();
                async move {
                    let status = client.get(url).send().await.unwrap().status();
                    assert_eq!(status, StatusCode::OK);
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Registers through the form; returns a logged-out client ready to log in.
async fn register(shop: &Shop, email: &str) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let token = token_of(&client, &format!("{}/register", shop.base)).await;
    let registered = client
        .post(format!("{}/register", shop.base))
        .form(&[
            ("name", "Ana"),
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert!(registered.url().path().ends_with("/login"), "registered");
}

async fn token_of(client: &reqwest::Client, url: &str) -> String {
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    csrf_token_in(&html).expect("a form")
}

/// A person logging in through the form from their own address, who does
/// what a 503's `Retry-After` says (the hashing queue may still be full for
/// a moment). The final status and the number of tries.
async fn login_as_a_person(shop: &Shop, email: &str, password: &str) -> (StatusCode, u32) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let address = random_address();
    let token = token_of(&client, &format!("{}/login", shop.base)).await;
    let mut tries = 0;
    loop {
        tries += 1;
        let response = client
            .post(format!("{}/login", shop.base))
            .header("x-forwarded-for", &address)
            .form(&[
                ("email", email),
                ("password", password),
                ("csrf_token", &token),
            ])
            .send()
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match (response.status(), retry_after) {
            (StatusCode::SERVICE_UNAVAILABLE, Some(seconds)) if tries < 3 => {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
            }
            (status, _) => return (status, tries),
        }
    }
}

/// Ana's own browser (a cookie store, an address of its own), once she has
/// logged in from it: it carries her device cookie.
async fn ana_known_browser(shop: &Shop, email: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let address = random_address();
    let status = known_browser_login(&client, &shop.base, &address, email).await;
    assert_eq!(status, 303, "Ana logged in before the flood");
    (client, address)
}

/// One login through the form from `client`: the status (0: no answer).
async fn known_browser_login(
    client: &reqwest::Client,
    base: &str,
    address: &str,
    email: &str,
) -> u16 {
    let token = token_of(client, &format!("{base}/login")).await;
    client
        .post(format!("{base}/login"))
        .header("x-forwarded-for", address)
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Ana's right password, sent from her own address while the flood runs,
/// until the full hashing queue has refused it (503) six times or she got
/// in (303): the statuses she got, in order (0: no answer).
async fn ana_during_the_flood(
    base: String,
    email: String,
    token: String,
    cookie: String,
) -> Vec<u16> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let address = random_address();
    let mut statuses = Vec::new();
    tokio::time::sleep(Duration::from_millis(100)).await; // the flood is under way
    while statuses.len() < 40 {
        let sent = client
            .post(format!("{base}/login"))
            .header("x-forwarded-for", &address)
            .header("cookie", &cookie)
            .form(&[
                ("email", email.as_str()),
                ("password", PASSWORD),
                ("csrf_token", &token),
            ])
            .send()
            .await;
        statuses.push(sent.map(|r| r.status().as_u16()).unwrap_or(0));
        let refused = statuses.iter().filter(|s| **s == 503).count();
        if statuses.last() == Some(&303) || refused == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    statuses
}

#[tokio::test]
async fn twenty_thousand_anonymous_views_leave_memory_and_redis_flat() {
    let shop = start_shop(VIEW_FLOOD_REDIS_DB).await;
    shop.anonymous_views(2_000).await; // warm-up: caches, pools, allocator arenas
    let (rss_before, keys_before) = (shop.rss_kb(), shop.redis_keys().await);
    let started = Instant::now();
    shop.anonymous_views(20_000).await;
    let took = started.elapsed();
    let (rss_after, keys_after) = (shop.rss_kb(), shop.redis_keys().await);
    eprintln!(
        "20,000 anonymous views in {took:?}: RSS {rss_before} -> {rss_after} kB, Redis keys {keys_before:?} -> {keys_after:?}"
    );
    assert!(
        rss_after - rss_before < VIEW_FLOOD_RSS_BOUND_KB,
        "RSS grew {} kB",
        rss_after - rss_before
    );
    if let (Some(before), Some(after)) = (keys_before, keys_after) {
        assert!(
            after - before <= VIEW_FLOOD_REDIS_KEY_BOUND,
            "Redis keys {before} -> {after}"
        );
    }
}

#[tokio::test]
async fn after_a_login_flood_a_real_login_succeeds_within_two_seconds() {
    let shop = start_shop(LOGIN_FLOOD_REDIS_DB).await;
    let ana = unique_email("ana");
    register(&shop, &ana).await;
    let (ana_browser, ana_browser_address) = ana_known_browser(&shop, &ana).await;
    let rss_before = shop.rss_kb();

    // 1,000 attackers at once, each from its own address, each trying three
    // unknown accounts and giving up on an answer after a second.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(2_000)
        .build()
        .unwrap();
    // One anonymous form's token and signed cookie, replayed by every attacker.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let token_client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let token = token_of(&token_client, &format!("{}/login", shop.base)).await;
    let cookie = jar
        .cookies(&shop.base.parse().unwrap())
        .expect("the login page set the CSRF cookie")
        .to_str()
        .unwrap()
        .to_string();
    let flood_started = Instant::now();
    let attackers: Vec<_> = (0..1_000)
        .map(|_| {
            let (client, url, token, cookie) = (
                impatient.clone(),
                format!("{}/login", shop.base),
                token.clone(),
                cookie.clone(),
            );
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                let address = random_address();
                for _ in 0..3 {
                    let email = unique_email("victim");
                    let sent = client
                        .post(&url)
                        .header("x-forwarded-for", &address)
                        .header("cookie", &cookie)
                        .form(&[
                            ("email", email.as_str()),
                            ("password", "guess"),
                            ("csrf_token", &token),
                        ])
                        .send()
                        .await;
                    statuses.push(sent.map(|r| r.status().as_u16()).unwrap_or(0));
                }
                statuses
            })
        })
        .collect();
    // Ana tries her right password during the flood: the full hashing queue
    // refuses her (503) again and again. Those refusals were counted as
    // failed attempts, and locked her out for 15 minutes after five.
    let ana_during = tokio::spawn(ana_during_the_flood(
        shop.base.clone(),
        ana.clone(),
        token.clone(),
        cookie.clone(),
    ));
    // From the browser she logged in from before, her device cookie takes
    // one of the hashing places a flood of strangers cannot fill.
    let known_during = {
        let (base, email) = (shop.base.clone(), ana.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await; // the queue is full by now
            known_browser_login(&ana_browser, &base, &ana_browser_address, &email).await
        })
    };
    let mut peak = rss_before;
    let all_done = futures::future::join_all(attackers);
    tokio::pin!(all_done);
    let outcomes = loop {
        tokio::select! {
            outcomes = &mut all_done => break outcomes,
            () = tokio::time::sleep(Duration::from_millis(100)) => peak = peak.max(shop.rss_kb()),
        }
    };
    let flood_took = flood_started.elapsed();
    let statuses: Vec<u16> = outcomes.into_iter().flat_map(|o| o.unwrap()).collect();
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();

    let ana_statuses = ana_during.await.unwrap();
    let known_status = known_during.await.unwrap();
    let ana_refused = ana_statuses.iter().filter(|s| **s == 503).count();
    let ana_got_in = ana_statuses.last() == Some(&303);
    let started = Instant::now();
    let (status, tries) = login_as_a_person(&shop, &ana, PASSWORD).await;
    let took = started.elapsed();
    let shed = shop
        .metric("storefront_password_hashes_total{outcome=\"shed\"}")
        .await;
    let abandoned = shop
        .metric("storefront_password_hashes_total{outcome=\"abandoned\"}")
        .await;
    let computed = shop
        .metric("storefront_password_hashes_total{outcome=\"computed\"}")
        .await;
    eprintln!(
        "login flood: 3,000 attempts in {flood_took:?} ({} 401, {} 503, {} gave up); hashes computed {computed}, shed {shed}, abandoned {abandoned}; RSS {rss_before} kB, peak {peak} kB; Ana's logins during it {ana_statuses:?}, from her known device {known_status}; then a real login in {took:?} ({tries} tries)",
        count(401),
        count(503),
        count(0)
    );
    assert_eq!(
        known_status, 303,
        "from her known device Ana got in at once during the flood"
    );
    // Counted as failed attempts, her sixth refusal would have been a 429.
    assert!(
        ana_got_in || ana_refused > 5,
        "Ana neither got in during the flood nor was refused for overload more often than her account's limit (5): {ana_statuses:?}"
    );
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the real login succeeded (503s are not failed attempts)"
    );
    assert!(
        took < Duration::from_secs(2),
        "the real login took {took:?}"
    );
    assert!(shed > 0.0, "a full queue refused at once");
    // Thousands of refusals, a handful of lines: one a minute with a count.
    let log = std::fs::read_to_string(shop.log.path()).unwrap();
    let shedding_lines = log.lines().filter(|l| l.contains("shedding load")).count();
    eprintln!(
        "login flood log: {} lines, {} bytes, {shedding_lines} about shedding load for {} 503s",
        log.lines().count(),
        log.len(),
        count(503)
    );
    assert!(
        shedding_lines <= 2 && log.lines().count() <= 30,
        "the flood's refusals were written one by one:\n{}",
        log.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    assert!(
        peak - rss_before < LOGIN_FLOOD_RSS_BOUND_KB,
        "RSS grew {} kB during the flood",
        peak - rss_before
    );
}
