//! Faults with real services: each test runs its own Redis or MariaDB server,
//! stops it under a running storefront, and starts it again; fills a Redis
//! that refuses writes when full; and serves from a MariaDB and a Redis that
//! accept TLS only, as RDS and ElastiCache are run. Needs `redis-server`,
//! `mariadbd`, `mariadb` and `openssl` (scripts/test installs the servers);
//! under CI=true their absence fails the run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use storefront::app::config::Config;
use storefront::app::startup::Application;

mod common;
use common::{Running, csrf_token_in, free_port, skip_because};

fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
}

/// The program, or `None` (a skip) outside CI.
fn require(name: &str) -> Option<PathBuf> {
    let found = find_program(name);
    if found.is_none() {
        skip_because(&format!(
            "{name} is not installed (scripts/test installs it)"
        ));
    }
    found
}

async fn wait_until(limit: Duration, what: &str, mut ready: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ready().await {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

struct Server {
    child: Option<Child>,
    program: PathBuf,
    args: Vec<String>,
    port: u16,
}

impl Server {
    fn start(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        self.child = Some(child);
    }

    /// Kills the server outright, as a crash or a lost node would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_listening(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        wait_until(Duration::from_secs(60), "server listening", async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn redis_server() -> Option<(Server, tempfile::TempDir)> {
    let program = require("redis-server")?;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--dir".into(), dir.path().display().to_string()])
    .collect();
    let mut server = Server {
        child: None,
        program,
        args,
        port,
    };
    server.start();
    server.wait_listening().await;
    Some((server, dir))
}

/// A private MariaDB without grant tables: root connects over TCP with no password.
async fn mariadb_server(start_now: bool) -> Option<(Server, tempfile::TempDir)> {
    let program = require("mariadbd")?;
    let install = require("mariadb-install-db")?;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    // Its own temporary directory and no /etc/mysql settings: two installs at
    // once in the shared /tmp collided on temporary tables ("Unknown table
    // 'mysql.tmp_user_sys'").
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let installed = Command::new(install)
        .arg("--no-defaults")
        .env("TMPDIR", &tmp)
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--user={user}"))
        .arg("--skip-test-db")
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "mariadb-install-db failed: {}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );
    // The database exists from the server's first moment (MariaDB's databases
    // are directories of its datadir): a replica that connects as soon as the
    // port opens must not find "Unknown database 'shop'" and give up.
    std::fs::create_dir(data.join("shop")).unwrap();
    let port = free_port();
    let args = vec![
        "--no-defaults".into(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", dir.path().join("sock").display()),
        format!("--tmpdir={}", tmp.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--user={user}"),
        "--skip-grant-tables".into(),
        "--skip-log-bin".into(),
        "--innodb-buffer-pool-size=64M".into(),
    ];
    let mut server = Server {
        child: None,
        program,
        args,
        port,
    };
    if start_now {
        server.start();
        server.wait_listening().await;
        create_database(port).await;
    }
    Some((server, dir))
}

async fn create_database(port: u16) {
    sqlx::any::install_default_drivers();
    let url = format!("mysql://root@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sqlx::AnyPool::connect(&url).await {
            Ok(pool) => {
                sqlx::query("CREATE DATABASE IF NOT EXISTS shop")
                    .execute(&pool)
                    .await
                    .unwrap();
                return;
            }
            Err(err) if Instant::now() < deadline => {
                eprintln!("waiting for MariaDB: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("MariaDB never answered: {err}"),
        }
    }
}

/// One unlabelled figure from a replica's own metrics page.
async fn metric(app: &Running, name: &str) -> f64 {
    let page = reqwest::get(format!("http://{}/metrics", app.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not on the metrics page"))
        .parse()
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The status of a GET; the request itself must not fail.
async fn status_of(client: &reqwest::Client, url: String) -> StatusCode {
    client.get(url).send().await.unwrap().status()
}

/// True when a GET answers 200 (false on any error): for waiting loops.
async fn answers_ok(client: &reqwest::Client, url: String) -> bool {
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

async fn status_and_time(client: &reqwest::Client, url: String) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap(), started.elapsed())
}

/// Registers and logs in through the real forms; returns the client.
async fn logged_in(addr: SocketAddr) -> reqwest::Client {
    let client = client();
    let email = format!("f{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "long enough pw";
    let register = [("name", "Fault"), ("email", &email), ("password", password)];
    let registered = submit(&client, format!("http://{addr}/register"), &register).await;
    assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    let login = [("email", email.as_str()), ("password", password)];
    let logged_in = submit(&client, format!("http://{addr}/login"), &login).await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    client
}

/// A form posted as a browser does: the page first, for its CSRF token.
async fn submit(
    client: &reqwest::Client,
    url: String,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = csrf_token(client, url.clone()).await;
    let mut form = fields.to_vec();
    form.push(("csrf_token", &token));
    client.post(url).form(&form).send().await.unwrap()
}

/// A shop on SQLite with its sessions in this Redis, serving; and a shopper
/// already logged in. `adjust` changes the configuration first.
async fn shop_on_redis(
    redis: &Server,
    adjust: impl FnOnce(&mut Config),
) -> (String, reqwest::Client, tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::local(&format!(
        "sqlite://{}",
        dir.path().join("shop.db").display()
    ));
    config.redis_url = Some(format!("redis://127.0.0.1:{}", redis.port));
    adjust(&mut config);
    let app = Running::start(config).await;
    let shopper = logged_in(app.addr).await;
    (app.base(), shopper, dir, app)
}

#[tokio::test]
async fn losing_redis_gives_fast_friendly_503s_and_recovers_without_restart() {
    let Some((mut redis, _redis_dir)) = redis_server().await else {
        return;
    };
    let (base, shopper, _dir, app) = shop_on_redis(&redis, |_| {}).await;
    assert_eq!(
        status_of(&shopper, format!("{base}/orders")).await,
        StatusCode::OK
    );

    redis.kill();
    let (status, _, took) = status_and_time(&client(), format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_secs(2), "/readyz took {took:?}");
    const SESSION_ERRORS: &str = "storefront_session_store_errors_total";
    let errors_before = metric(&app, SESSION_ERRORS).await;
    let (status, html, took) = status_and_time(&shopper, format!("{base}/orders")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a page that needs the session"
    );
    assert_eq!(
        metric(&app, SESSION_ERRORS).await - errors_before,
        1.0,
        "one failed request, counted once"
    );
    assert!(html.contains("briefly unavailable") && !html.contains("panicked"));
    assert!(took < Duration::from_secs(5), "the page took {took:?}");
    let (status, _, _) = status_and_time(&client(), format!("{base}/book/catalog")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "anonymous browsing needs no session store"
    );

    redis.start();
    let recovered = wait_until(
        Duration::from_secs(15),
        "readiness after Redis returns",
        async || answers_ok(&client(), format!("{base}/readyz")).await,
    )
    .await;
    eprintln!("recovered {recovered:?} after Redis came back");
    let again = logged_in(app.addr).await;
    assert_eq!(
        status_of(&again, format!("{base}/orders")).await,
        StatusCode::OK
    );
}

/// With Redis down, GET /login and /register once answered a bare, empty 500:
/// every page, these included, must be the shop's own page.
#[tokio::test]
async fn with_redis_down_every_page_is_a_friendly_page_never_a_bare_500() {
    let Some((mut redis, _redis_dir)) = redis_server().await else {
        return;
    };
    let (base, shopper, _dir, _app) = shop_on_redis(&redis, |_| {}).await;
    let newcomer = client();
    let form_page = newcomer.get(format!("{base}/login")).send().await.unwrap();
    let token = csrf_token_in(&form_page.text().await.unwrap()).expect("a form");

    redis.kill();
    for path in [
        "/login",
        "/register",
        "/",
        "/book/catalog",
        "/cart",
        "/orders",
    ] {
        for (who, client) in [("newcomer", &newcomer), ("shopper", &shopper)] {
            let (status, html, took) = status_and_time(client, format!("{base}{path}")).await;
            assert!(
                status == StatusCode::OK
                    || status == StatusCode::SEE_OTHER
                    || status == StatusCode::SERVICE_UNAVAILABLE,
                "{who} {path}: {status}"
            );
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(
                    html.contains("briefly unavailable"),
                    "{who} {path}: friendly page"
                );
            }
            assert!(took < Duration::from_secs(5), "{who} {path} took {took:?}");
        }
    }
    // A logged-in shopper's pages need the session: the friendly 503.
    let (status, html, _) = status_and_time(&shopper, format!("{base}/login")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(html.contains("briefly unavailable"));
    // A newcomer's login form needs no session store at all.
    assert_eq!(
        status_of(&newcomer, format!("{base}/register")).await,
        StatusCode::OK
    );
    // Submitting it needs the shared login counters: a friendly 503, not a 500.
    let login = newcomer
        .post(format!("{base}/login"))
        .form(&[
            ("email", "a@example.com"),
            ("password", "whatever1"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(login.headers().contains_key("retry-after"));
    assert!(login.text().await.unwrap().contains("briefly unavailable"));
    // Registering stores the account, then cannot save the welcome message:
    // the session layer's failure is the friendly 503 too.
    let register = newcomer
        .post(format!("{base}/register"))
        .form(&[
            ("name", "Newcomer"),
            ("email", "newcomer@example.com"),
            ("password", "long enough pw"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        register
            .text()
            .await
            .unwrap()
            .contains("briefly unavailable")
    );
}

#[tokio::test]
async fn losing_mysql_gives_fast_friendly_503s_and_recovers_without_restart() {
    let Some((mut mysql, _mysql_dir)) = mariadb_server(true).await else {
        return;
    };
    let mut config = Config::local(&format!("mysql://root@127.0.0.1:{}/shop", mysql.port));
    config.seed_demo_if_empty = true;
    config.search.max_lag = Duration::from_millis(500);
    let app = Running::start(config).await;
    let base = format!("http://{}", app.addr);
    // The catalog's page as the search index gives it.
    wait_until(Duration::from_secs(30), "the search index", async || {
        let ready = client().get(format!("{base}/readyz")).send().await;
        let text = match ready {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.contains("search: index (")
    })
    .await;
    assert_eq!(
        status_of(&client(), format!("{base}/book/catalog")).await,
        StatusCode::OK
    );

    mysql.kill();
    let (status, _, took) = status_and_time(&client(), format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_secs(2), "/readyz took {took:?}");
    // Pages that need the database now answer 503 quickly… A search that
    // finds books (never asked before, so not cached) reads their rows from
    // MySQL whether the search index or the database found them; one that
    // finds nothing could be answered by the index alone.
    for path in ["/book/catalog?q=prejudice", "/book/1", "/"] {
        let (status, html, took) = status_and_time(&client(), format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            html.contains("briefly unavailable"),
            "{path} shows the friendly page"
        );
        assert!(took < Duration::from_secs(5), "{path} took {took:?}");
    }
    // …while a catalog page this replica had cached is still served: nothing
    // can change the catalog while the database is down. Also once the
    // index, which cannot read the feed either, has fallen behind.
    let (status, _, _) = status_and_time(&client(), format!("{base}/book/catalog")).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, ready, _) = status_and_time(&client(), format!("{base}/readyz")).await;
    assert!(ready.contains("search: database (index behind)"), "{ready}");
    let (status, _, _) = status_and_time(&client(), format!("{base}/book/catalog")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the cached page, with the index behind"
    );

    mysql.start();
    let recovered = wait_until(
        Duration::from_secs(30),
        "pages after MySQL returns",
        async || answers_ok(&client(), format!("{base}/book/catalog")).await,
    )
    .await;
    eprintln!("recovered {recovered:?} after MariaDB came back");
    assert_eq!(
        status_of(&client(), format!("{base}/readyz")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_replica_started_before_mysql_waits_for_it() {
    let Some((mut mysql, _mysql_dir)) = mariadb_server(false).await else {
        return;
    };
    let mut config = Config::local(&format!("mysql://root@127.0.0.1:{}/shop", mysql.port));
    config.database_wait = Duration::from_secs(90);
    let building = tokio::spawn(Application::build(config));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!building.is_finished(), "the replica must wait, not exit");
    mysql.start();
    mysql.wait_listening().await;
    create_database(mysql.port).await;
    let application = tokio::time::timeout(Duration::from_secs(60), building)
        .await
        .expect("started within a minute of MySQL")
        .unwrap()
        .expect("built once MySQL answered");
    let running = Running::serve(application);
    let base = format!("http://{}", running.addr);
    // Built is not enough: the replica that waited serves the migrated catalog.
    assert_eq!(
        status_of(&client(), format!("{base}/readyz")).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&client(), format!("{base}/book/catalog")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sigterm_turns_readiness_off_finishes_in_flight_requests_then_exits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_storefront"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("shop.db").display()),
        )
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("SEED_DEMO", "false")
        .env("SHUTDOWN_DRAIN_MS", "1500")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "storefront ready", async || {
        answers_ok(&client(), format!("{base}/readyz")).await
    })
    .await;

    // A request in flight: headers sent, body still coming.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    slow.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n\r\nemail=a").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pid = process.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, _) = status_and_time(&client(), format!("{base}/readyz")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness goes false first"
    );

    slow.write_all(b"@b.com&x=1234").await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 403"),
        "the in-flight request was answered: {answer:.60}"
    );

    let exit = tokio::time::timeout(Duration::from_secs(10), process.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(exit.success(), "clean exit, got {exit:?}");
}

/// A Redis that refuses writes when full, as stack.yml configures it:
/// `maxmemory` with `noeviction`, here tiny so that a test can fill it.
async fn full_redis_server() -> Option<(Server, tempfile::TempDir)> {
    let (mut server, dir) = redis_server().await?;
    server.kill();
    server.args.extend(
        ["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]
            .iter()
            .map(|s| s.to_string()),
    );
    server.start();
    server.wait_listening().await;
    Some((server, dir))
}

async fn redis_connection(port: u16) -> deadpool_redis::redis::aio::MultiplexedConnection {
    deadpool_redis::redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Writes filler keys until Redis answers OOM even to a tiny write (big ones
/// first, then smaller: a big write can be refused while a session still fits);
/// returns how many keys were written.
async fn fill_redis(redis: &mut deadpool_redis::redis::aio::MultiplexedConnection) -> usize {
    let mut written = 0;
    for size in [64 * 1024, 1024, 16] {
        let chunk = "x".repeat(size);
        loop {
            let set: Result<(), _> = deadpool_redis::redis::cmd("SET")
                .arg(format!("filler:{written}"))
                .arg(&chunk)
                .query_async(redis)
                .await;
            match set {
                Ok(()) => written += 1,
                Err(err) => {
                    assert!(err.to_string().contains("OOM"), "not an OOM refusal: {err}");
                    break;
                }
            }
            assert!(
                written < 100_000,
                "Redis never refused a write: is maxmemory set?"
            );
        }
    }
    written
}

async fn set_maxmemory(redis: &mut deadpool_redis::redis::aio::MultiplexedConnection, bytes: &str) {
    let _: () = deadpool_redis::redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query_async(redis)
        .await
        .unwrap();
}

/// Every key but the filler: the shop's sessions, carts and counters.
async fn shop_keys(redis: &mut deadpool_redis::redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg("*")
        .query_async(redis)
        .await
        .unwrap();
    keys.retain(|k| !k.starts_with("filler:"));
    keys.sort();
    keys
}

async fn csrf_token(client: &reqwest::Client, url: String) -> String {
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    csrf_token_in(&html).expect("a form")
}

async fn add_to_cart(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    quantity: &str,
) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let form = [
        ("book_id", "1"),
        ("quantity", quantity),
        ("csrf_token", token),
    ];
    let response = client
        .post(format!("{base}/cart/add"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap(), started.elapsed())
}

async fn cart_quantity(client: &reqwest::Client, base: &str) -> Option<String> {
    let (status, html, _) = status_and_time(client, format!("{base}/cart")).await;
    assert_eq!(status, StatusCode::OK, "the cart page reads the session");
    let start = html.find("name=\"quantity\" value=\"")? + 23;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_string())
}

#[tokio::test]
async fn a_full_redis_refuses_writes_with_friendly_503s_evicts_nothing_and_recovers() {
    let Some((redis, _redis_dir)) = full_redis_server().await else {
        return;
    };
    let (base, shopper, _dir, app) = shop_on_redis(&redis, |c| c.seed_demo_if_empty = true).await;
    let token = csrf_token(&shopper, format!("{base}/book/1")).await;
    let (status, _, _) = add_to_cart(&shopper, &base, &token, "1").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "adding to the cart works");
    assert_eq!(cart_quantity(&shopper, &base).await.as_deref(), Some("1"));

    let mut redis_conn = redis_connection(redis.port).await;
    let before = shop_keys(&mut redis_conn).await;
    let filled = fill_redis(&mut redis_conn).await;
    eprintln!("Redis full after {filled} filler keys");
    // Memory use breathes a little (client buffers, expiring keys), so a
    // small write could still slip under the limit: hold the limit below
    // what is used, which is what "full" means to a noeviction Redis.
    let limit: Vec<String> = deadpool_redis::redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    set_maxmemory(&mut redis_conn, "1mb").await;

    // A write refused by Redis is the friendly 503, quickly: not a 500, not a hang.
    let (status, html, took) = add_to_cart(&shopper, &base, &token, "2").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "refused write: {html}"
    );
    assert!(html.contains("briefly unavailable"), "{html}");
    assert!(
        took < Duration::from_secs(5),
        "the refused write took {took:?}"
    );
    // A newcomer still gets the registration form (anonymous pages write
    // nothing to Redis), but registering needs a session: the same page.
    let newcomer = client();
    let token = csrf_token(&newcomer, format!("{base}/register")).await;
    let email = format!("n{}@example.com", uuid::Uuid::new_v4().simple());
    let form = [
        ("name", "Newcomer"),
        ("email", email.as_str()),
        ("password", "long enough pw"),
        ("csrf_token", token.as_str()),
    ];
    let answer = newcomer
        .post(format!("{base}/register"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let html = answer.text().await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{html}");
    assert!(html.contains("briefly unavailable"), "{html}");
    // Readiness stays on: every replica shares this Redis, and reads still work.
    assert_eq!(
        status_of(&client(), format!("{base}/readyz")).await,
        StatusCode::OK
    );
    // Reads still work, and the refused write changed nothing: the cart holds 1.
    assert_eq!(cart_quantity(&shopper, &base).await.as_deref(), Some("1"));
    assert_eq!(
        status_of(&client(), format!("{base}/book/catalog")).await,
        StatusCode::OK
    );
    // noeviction: every session key is still there, none made room.
    let during = shop_keys(&mut redis_conn).await;
    assert!(
        before.iter().all(|k| during.contains(k)),
        "keys evicted: before {before:?}, during {during:?}"
    );

    // Memory frees: writes work again, on the same session, without a restart.
    for key in 0..filled {
        let _: () = deadpool_redis::redis::cmd("DEL")
            .arg(format!("filler:{key}"))
            .query_async(&mut redis_conn)
            .await
            .unwrap();
    }
    set_maxmemory(&mut redis_conn, &limit[1]).await;
    // The shopper reloads the page and the same session carries on. (The
    // form left open through this window is refused as expired, 403, when
    // sent again: a defect not yet understood, noted for the next session;
    // a write refused with no reads in between does not show it.)
    assert_eq!(cart_quantity(&shopper, &base).await.as_deref(), Some("1"));
    let token = csrf_token(&shopper, format!("{base}/book/1")).await;
    let (status, html, _) = add_to_cart(&shopper, &base, &token, "2").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "writes work once memory frees: {html}"
    );
    assert_eq!(cart_quantity(&shopper, &base).await.as_deref(), Some("3"));
    let newcomer = logged_in(app.addr).await;
    assert_eq!(
        status_of(&newcomer, format!("{base}/orders")).await,
        StatusCode::OK
    );
}

// --- external services that require TLS (RDS, ElastiCache) ----------------------

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bookstore test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-copy_extensions",
        "copy",
    ]);
}

/// The storefront binary, configured only by its environment as a replica is.
struct Replica(Child);

impl Replica {
    /// The storefront binary listening on `listen`, with only `settings` in
    /// its environment and its log in `log`.
    fn start(listen: SocketAddr, log: &Path, settings: &[(&str, String)]) -> Replica {
        let mut command = Command::new(env!("CARGO_BIN_EXE_storefront"));
        command
            .env_clear()
            .env("LISTEN_ADDR", listen.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        for (name, value) in settings {
            command.env(name, value);
        }
        Replica(command.spawn().expect("the storefront binary starts"))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn external_mysql_and_redis_that_require_tls_are_used_over_tls() {
    if require("openssl").is_none() {
        return;
    }
    let Some((mut mysql, mysql_dir)) = mariadb_server(false).await else {
        return;
    };
    let Some((mut redis, _redis_dir)) = redis_server().await else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let cert = |name: &str| certs.path().join(name).display().to_string();

    // Both servers refuse anything but TLS. MariaDB with its grant tables this
    // time (a user that REQUIREs SSL, made over the socket), as RDS has them.
    mysql.args.retain(|a| a != "--skip-grant-tables");
    mysql.args.extend([
        format!("--ssl-ca={}", cert("ca.pem")),
        format!("--ssl-cert={}", cert("server.pem")),
        format!("--ssl-key={}", cert("server.key")),
        "--require-secure-transport=ON".into(),
    ]);
    mysql.start();
    mysql.wait_listening().await;
    redis.kill();
    let tls_args = [
        "--port".to_string(),
        "0".into(),
        "--tls-port".into(),
        redis.port.to_string(),
        "--tls-cert-file".into(),
        cert("server.pem"),
        "--tls-key-file".into(),
        cert("server.key"),
        "--tls-ca-cert-file".into(),
        cert("ca.pem"),
        "--tls-auth-clients".into(),
        "no".into(),
    ];
    redis.args.splice(0..2, tls_args);
    redis.start();
    redis.wait_listening().await;

    let socket = mysql_dir.path().join("sock");
    let status = Command::new(require("mariadb").unwrap())
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "-e"])
        .arg("CREATE DATABASE IF NOT EXISTS shop; CREATE USER shop@'%' IDENTIFIED BY 'shop pw' REQUIRE SSL; GRANT ALL ON shop.* TO shop@'%';")
        .status()
        .unwrap();
    assert!(status.success(), "creating the TLS-only user");

    // What an operator puts in the two secrets (docs/operations.md).
    let tls = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", cert("ca.pem"));
    sqlx::any::install_default_drivers();
    let over_tls = format!("mysql://shop:shop%20pw@127.0.0.1:{}/shop?{tls}", mysql.port);
    wait_for_pool(&over_tls).await;
    let plain = format!(
        "mysql://shop:shop%20pw@127.0.0.1:{}/shop?ssl-mode=DISABLED",
        mysql.port
    );
    assert!(
        sqlx::AnyPool::connect(&plain).await.is_err(),
        "MariaDB must refuse a connection without TLS"
    );
    let plain_redis =
        deadpool_redis::redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    assert!(
        tokio::time::timeout(
            Duration::from_secs(5),
            plain_redis.get_multiplexed_async_connection()
        )
        .await
        .map_or(true, |c| c.is_err()),
        "Redis must refuse a connection without TLS"
    );

    // A mail server as SES's SMTP interface is: STARTTLS, then AUTH, required.
    let Some(smtp) =
        SecureSmtp::start(certs.path(), &cert("server.pem"), &cert("server.key")).await
    else {
        return;
    };

    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _replica = Replica::start(
        listen,
        &mysql_dir.path().join("replica.log"),
        &[
            ("DATABASE_URL", over_tls.clone()),
            ("REDIS_URL", format!("rediss://127.0.0.1:{}", redis.port)),
            // rediss:// trusts the system's roots; this variable replaces them
            // with the CA bundle (a Docker secret in the stack).
            ("SSL_CERT_FILE", cert("ca.pem")),
            ("SMTP_URL", smtp.url()),
            (
                "SMTP_PASSWORD_FILE",
                smtp.password_file.display().to_string(),
            ),
            ("MAIL_POLL_MS", "100".into()),
            ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
        ],
    );
    let base = format!("http://{listen}");
    wait_until(Duration::from_secs(60), "readiness over TLS", async || {
        answers_ok(&client(), format!("{base}/readyz")).await
    })
    .await;
    let shopper = logged_in(listen).await;
    assert_eq!(
        status_of(&shopper, format!("{base}/orders")).await,
        StatusCode::OK,
        "an account in MySQL and a session in Redis, both over TLS"
    );

    let email = format!("tls-{}@example.com", uuid::Uuid::new_v4().simple());
    let visitor = client();
    let register = [
        ("name", "Tess"),
        ("email", &email),
        ("password", "long enough pw"),
    ];
    submit(&visitor, format!("{base}/register"), &register).await;
    let asked = submit(
        &visitor,
        format!("{base}/password/forgot"),
        &[("email", &email)],
    )
    .await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    let to = format!("To: {email}");
    smtp.wait_for_mail(&[&to, "/password/reset?token="]).await;
    // With SMTP_URL set, addresses are confirmed by default: registering
    // mailed a link too (as it did to the shopper `logged_in` made).
    smtp.wait_for_mail(&[&to, "/account/confirm?token="]).await;
}

/// `tests/smtp_tls_sink.py`: STARTTLS and AUTH required, mail to a Maildir.
struct SecureSmtp {
    port: u16,
    password_file: PathBuf,
    maildir: PathBuf,
    _server: Replica,
}

impl SecureSmtp {
    const USER: &str = "shopmail";
    const PASSWORD: &str = "smtp pass phrase";

    async fn start(dir: &Path, cert: &str, key: &str) -> Option<SecureSmtp> {
        let installed = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            skip_because("aiosmtpd is not installed (python3 -m pip install aiosmtpd)");
            return None;
        }
        let port = free_port();
        let password_file = dir.join("smtp_password");
        std::fs::write(&password_file, format!("{}\n", Self::PASSWORD)).unwrap();
        let maildir = dir.join("maildir");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_tls_sink.py");
        let server = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .args([cert, key, Self::USER, Self::PASSWORD])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("smtp.log")).unwrap())
            .spawn()
            .expect("the SMTP server starts");
        let smtp = SecureSmtp {
            port,
            password_file,
            maildir,
            _server: Replica(server),
        };
        wait_until(Duration::from_secs(15), "the SMTP server", async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Some(smtp)
    }

    fn url(&self) -> String {
        format!("smtp://{}@127.0.0.1:{}?tls=required", Self::USER, self.port)
    }

    /// The first mail delivered that contains every one of `needles`.
    async fn wait_for_mail(&self, needles: &[&str]) -> String {
        let new = self.maildir.join("new");
        let mut found = None;
        wait_until(
            Duration::from_secs(30),
            "a mail through STARTTLS and AUTH",
            async || {
                let mails = std::fs::read_dir(&new).into_iter().flatten().flatten();
                found = mails
                    .filter_map(|f| std::fs::read_to_string(f.path()).ok())
                    .find(|mail| needles.iter().all(|needle| mail.contains(needle)));
                found.is_some()
            },
        )
        .await;
        found.unwrap()
    }
}

async fn wait_for_pool(url: &str) -> sqlx::AnyPool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sqlx::AnyPool::connect(url).await {
            Ok(pool) => return pool,
            Err(err) if Instant::now() < deadline => {
                eprintln!("waiting for MariaDB over TLS: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("MariaDB never answered over TLS: {err}"),
        }
    }
}

/// A storefront process on the SQLite file `db`, mailing through `smtp_url`,
/// its sender holding rows for `MAIL_LEASE_SECS=4`.
fn storefront_mailing(db: &Path, smtp_url: &str, listen: SocketAddr, log: &Path) -> Replica {
    Replica::start(
        listen,
        log,
        &[
            ("DATABASE_URL", format!("sqlite://{}", db.display())),
            ("SEED_DEMO", "false".into()),
            ("SMTP_URL", smtp_url.into()),
            ("ADDRESS_VERIFICATION", "off".into()),
            ("MAIL_POLL_MS", "100".into()),
            ("MAIL_LEASE_SECS", "4".into()),
            ("METRICS_ADDR", "127.0.0.1:0".into()),
        ],
    )
}

/// Who holds the outbox's one row, until when, and its state and tries.
async fn the_outbox_row(pool: &sqlx::AnyPool) -> Option<(Option<String>, i64, String, i64)> {
    sqlx::query_as("SELECT lease_owner, lease_until_ms, state, attempts FROM outbox")
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
}

/// A replica killed (SIGKILL) after a mail was committed and while its
/// sender held it, before the server had it: another replica sends it once
/// the dead one's lease is over, and only once.
#[tokio::test]
async fn mail_held_by_a_killed_replica_is_sent_once_by_the_next() {
    let Some(sink) = common::mail_sink::MailSink::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    // A mail server that accepts connections and never answers: the first
    // replica's sender waits in it, holding the row, when it is killed.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("smtp://{}", silent.local_addr().unwrap());
    let held_open = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });

    let first = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut doomed = storefront_mailing(&db, &silent_url, first, &dir.path().join("first.log"));
    let base = format!("http://{first}");
    wait_until(Duration::from_secs(30), "the first replica", async || {
        answers_ok(&client(), format!("{base}/readyz")).await
    })
    .await;
    let email = format!("killed-{}@example.com", uuid::Uuid::new_v4().simple());
    let visitor = client();
    let register = [
        ("name", "Kim"),
        ("email", &email),
        ("password", "long enough pw"),
    ];
    submit(&visitor, format!("{base}/register"), &register).await;
    let asked = submit(
        &visitor,
        format!("{base}/password/forgot"),
        &[("email", &email)],
    )
    .await;
    assert_eq!(
        asked.status(),
        StatusCode::SEE_OTHER,
        "the mail is committed"
    );

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the first sender to take the mail",
        async || matches!(the_outbox_row(&pool).await, Some((Some(_), _, _, _))),
    )
    .await;
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    let (owner, lease_until_ms, state, attempts) = the_outbox_row(&pool).await.unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("pending", 0),
        "killed mid-delivery: {owner:?} held it, nothing recorded"
    );
    assert!(sink.delivered().is_empty());

    let second = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = dir.path().join("second.log");
    let _next = storefront_mailing(&db, &sink.smtp_url(), second, &log);
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    assert!(
        now_ms() < lease_until_ms - 1000,
        "the lease is still running"
    );
    while now_ms() < lease_until_ms - 200 {
        assert!(
            sink.delivered().is_empty(),
            "nothing is sent while the dead replica's lease runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = sink.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(delivered[0].to, email);
    assert!(delivered[0].text.contains("/password/reset?token="));
    wait_until(
        Duration::from_secs(10),
        "the row marked sent",
        async || matches!(the_outbox_row(&pool).await, Some((_, _, state, _)) if state == "sent"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.delivered().len(), 1, "sent once");
    held_open.abort();
}
