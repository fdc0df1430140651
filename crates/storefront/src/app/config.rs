//! Configuration from environment variables (12-factor); docs/reference.md lists them.
//! Every secret-bearing variable also accepts `NAME_FILE`, a Docker secret path.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::edge::trusted_proxies::TrustedProxies;
use crate::shared::read_cache::DEFAULT_ENTRIES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// `None`: sessions, carts and rate limits live in this process only.
    pub redis_url: Option<String>,
    pub listen_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// Trusted origin for cross-site checks; `https` also makes cookies Secure.
    pub public_origin: Option<String>,
    pub replica_id: String,
    pub log_format: LogFormat,
    /// How long an unpaid order holds its stock.
    pub order_ttl: Duration,
    /// How often this replica looks for expired orders.
    pub expiry_interval: Duration,
    /// Fill an empty shop with the demo catalog at start.
    pub seed_demo_if_empty: bool,
    /// How long `/readyz` reports 503 before the listener stops (load balancers need a beat).
    pub shutdown_drain: Duration,
    /// How long start-up keeps retrying an unreachable database before giving up.
    pub database_wait: Duration,
    pub database_max_connections: u32,
    /// Catalog pages and book pages each replica keeps (0: none, every read
    /// goes to the database, as the catalog-size benchmark wants).
    pub catalog_cache_entries: usize,
    /// Peers whose `X-Forwarded-For` is believed (the shop's own proxies).
    pub trusted_proxies: TrustedProxies,
    pub limits: Limits,
    pub http: HttpTimeouts,
    pub search: SearchSettings,
    pub mail: MailSettings,
}

/// Where the shop's mail goes (`src/mail/`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// lettre's form: `smtp://user@host:587?tls=required` (STARTTLS),
    /// `smtps://user@host:465`, `smtp://host:25` (plain, a local relay only).
    /// `None`: mail is written to this process's log, not sent.
    pub smtp_url: Option<String>,
    /// The SMTP password (`SMTP_PASSWORD_FILE`), with the user of `smtp_url`.
    pub smtp_password: Option<String>,
    /// The sender shoppers see: `Bookstore <no-reply@shop.example>`.
    pub from: String,
    /// Tries before a mail is given up as dead (counted and alerted on).
    pub max_attempts: u32,
    /// The first retry's delay; each later one doubles it, up to an hour.
    pub retry_base: Duration,
    /// How often this replica's sender looks for mail when not woken.
    pub poll: Duration,
    /// Does this replica send the outbox's mail (every replica may; rows are leased).
    pub sender: bool,
    /// How long a sender holds the rows it took; one that dies holding them
    /// loses them when it ends. A delivery's SMTP timeout is at most half of it.
    pub lease: Duration,
    /// How long delivered mail stays in the outbox (MAIL_KEEP_SENT_DAYS).
    pub keep_sent: Duration,
    /// How long a password-reset link works.
    pub reset_link_ttl: Duration,
    /// Reset mails per account per hour; past it, a request sends nothing (and says the same).
    pub resets_per_account_hour: i64,
    /// Reset requests per client address per hour (429 beyond).
    pub resets_per_address_hour: u64,
    /// Do orders hold copies only for accounts whose address is confirmed
    /// (`ADDRESS_VERIFICATION=required`)? Unconfirmed accounts still browse,
    /// fill carts and pay; their unpaid orders wait unreserved.
    pub confirm_addresses: bool,
    /// How long an address-confirmation link works.
    pub confirm_link_ttl: Duration,
    /// Confirmation mails per account per hour, the one sent at registration included.
    pub confirm_mails_per_account_hour: i64,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            smtp_url: None,
            smtp_password: None,
            from: "Bookstore <no-reply@bookstore.localhost>".into(),
            max_attempts: 8,
            retry_base: Duration::from_secs(5),
            poll: Duration::from_secs(1),
            sender: true,
            lease: Duration::from_secs(60),
            keep_sent: Duration::from_secs(30 * 24 * 3600),
            reset_link_ttl: Duration::from_secs(30 * 60),
            resets_per_account_hour: 3,
            resets_per_address_hour: 20,
            confirm_addresses: false,
            confirm_link_ttl: Duration::from_secs(48 * 3600),
            confirm_mails_per_account_hour: 3,
        }
    }
}

impl MailSettings {
    fn from_env() -> anyhow::Result<Self> {
        let d = MailSettings::default();
        let smtp_url = secret("SMTP_URL")?;
        Ok(MailSettings {
            confirm_addresses: address_verification(smtp_url.is_some())?,
            confirm_link_ttl: Duration::from_secs(parse_var(
                "ADDRESS_VERIFICATION_TTL_SECS",
                d.confirm_link_ttl.as_secs(),
            )?),
            confirm_mails_per_account_hour: parse_var(
                "ADDRESS_VERIFICATION_MAILS_PER_HOUR",
                d.confirm_mails_per_account_hour,
            )?,
            smtp_url,
            smtp_password: secret("SMTP_PASSWORD")?,
            from: plain("MAIL_FROM").unwrap_or(d.from),
            max_attempts: parse_var("MAIL_MAX_ATTEMPTS", d.max_attempts)?.max(1),
            retry_base: Duration::from_millis(parse_var(
                "MAIL_RETRY_BASE_MS",
                d.retry_base.as_millis() as u64,
            )?),
            poll: Duration::from_millis(
                parse_var("MAIL_POLL_MS", d.poll.as_millis() as u64)?.max(50),
            ),
            sender: parse_var("MAIL_SENDER", d.sender)?,
            lease: Duration::from_secs(parse_var("MAIL_LEASE_SECS", d.lease.as_secs())?.max(2)),
            keep_sent: Duration::from_secs(
                parse_var("MAIL_KEEP_SENT_DAYS", d.keep_sent.as_secs() / 86_400)? * 86_400,
            ),
            reset_link_ttl: Duration::from_secs(parse_var(
                "PASSWORD_RESET_TTL_SECS",
                d.reset_link_ttl.as_secs(),
            )?),
            resets_per_account_hour: parse_var(
                "PASSWORD_RESETS_PER_ACCOUNT_HOUR",
                d.resets_per_account_hour,
            )?,
            resets_per_address_hour: parse_var(
                "PASSWORD_RESETS_PER_ADDRESS_HOUR",
                d.resets_per_address_hour,
            )?,
        })
    }
}

/// `ADDRESS_VERIFICATION`: `required` or `off`. Unset, it is required when
/// the shop sends mail (`SMTP_URL`) and off when mail only goes to the log,
/// where no shopper could read the link.
fn address_verification(sends_mail: bool) -> anyhow::Result<bool> {
    match plain("ADDRESS_VERIFICATION").as_deref() {
        None => Ok(sends_mail),
        Some("required") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => {
            anyhow::bail!("ADDRESS_VERIFICATION=`{other}` is not valid: use `required` or `off`")
        }
    }
}

/// The search index each replica keeps (`src/search/`).
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// Off: every search is the database's full-text search.
    pub index: bool,
    /// How often the index reads the change feed.
    pub poll: Duration,
    /// Further behind than this, searches go to the database.
    pub max_lag: Duration,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            index: true,
            poll: Duration::from_millis(100),
            max_lag: Duration::from_secs(3),
        }
    }
}

impl SearchSettings {
    fn from_env() -> anyhow::Result<Self> {
        let d = SearchSettings::default();
        Ok(SearchSettings {
            index: parse_var("SEARCH_INDEX", d.index)?,
            poll: Duration::from_millis(
                parse_var("SEARCH_POLL_MS", d.poll.as_millis() as u64)?.max(10),
            ),
            max_lag: Duration::from_millis(parse_var(
                "SEARCH_MAX_LAG_MS",
                d.max_lag.as_millis() as u64,
            )?),
        })
    }
}

/// What one client, one account or one shopper may take (docs/operations.md).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Login attempts per account per window (failures and attempts in flight).
    pub login_per_account: u64,
    /// Login attempts per client address per window, checked before the account's.
    pub login_per_address: u64,
    pub login_window: Duration,
    /// New accounts one client address may make per `register_window`.
    pub register_per_address: u64,
    pub register_window: Duration,
    /// Password hashes queued or running on this replica; beyond it, 503 at once.
    pub hash_queue: usize,
    /// Unpaid orders one shopper may hold at once.
    pub open_orders: i64,
    /// Copies of one title one shopper may hold in unpaid orders.
    pub held_per_title: i64,
    /// What shoppers who never paid may hold together, in percent of the
    /// shop's copies and of each title's (store::orders::NewBuyerShare).
    pub new_buyers_shop_percent: i64,
    pub new_buyers_title_percent: i64,
}

/// Timeouts on the storefront's own listener, for clients that are slow on purpose.
#[derive(Debug, Clone)]
pub struct HttpTimeouts {
    /// From connection (or the previous response) to a complete request header:
    /// bounds slowloris and idle keep-alive connections alike.
    pub header: Duration,
    /// To receive a request body.
    pub body: Duration,
    /// Open connections; beyond it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections of one client address (the trusted proxies are not
    /// counted); beyond it, a new one gets a bare 429 and is closed.
    pub max_connections_per_address: usize,
    /// The longest request head (request line and headers) read; a longer
    /// one is answered 431. Bounds what an unfinished header costs.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_per_account: 5,
            login_per_address: 20,
            login_window: Duration::from_secs(15 * 60),
            register_per_address: 10,
            register_window: Duration::from_secs(60 * 60),
            hash_queue: 16,
            open_orders: 5,
            held_per_title: 10,
            new_buyers_shop_percent: 20,
            new_buyers_title_percent: 50,
        }
    }
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_address: 64,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    fn from_env() -> anyhow::Result<Self> {
        let d = Limits::default();
        Ok(Limits {
            login_per_account: parse_var("LOGIN_MAX_PER_ACCOUNT", d.login_per_account)?,
            login_per_address: parse_var("LOGIN_MAX_PER_ADDRESS", d.login_per_address)?,
            login_window: Duration::from_secs(parse_var(
                "LOGIN_WINDOW_SECS",
                d.login_window.as_secs(),
            )?),
            register_per_address: parse_var("REGISTER_MAX_PER_ADDRESS", d.register_per_address)?,
            register_window: Duration::from_secs(parse_var(
                "REGISTER_WINDOW_SECS",
                d.register_window.as_secs(),
            )?),
            hash_queue: parse_var("PASSWORD_HASH_QUEUE", d.hash_queue)?,
            open_orders: parse_var("MAX_OPEN_ORDERS", d.open_orders)?,
            held_per_title: parse_var("MAX_HELD_PER_TITLE", d.held_per_title)?,
            new_buyers_shop_percent: percent_var(
                "NEW_BUYERS_MAX_SHOP_PERCENT",
                d.new_buyers_shop_percent,
            )?,
            new_buyers_title_percent: percent_var(
                "NEW_BUYERS_MAX_TITLE_PERCENT",
                d.new_buyers_title_percent,
            )?,
        })
    }
}

/// A share in percent, 0 to 100.
fn percent_var(name: &str, default: i64) -> anyhow::Result<i64> {
    let percent = parse_var(name, default)?;
    if !(0..=100).contains(&percent) {
        bail!("{name} is a percentage (0 to 100), not {percent}");
    }
    Ok(percent)
}

/// hyper reads at least 8 KiB at a time: a smaller cap would refuse every request.
fn header_bytes(bytes: usize) -> anyhow::Result<usize> {
    if bytes < 8192 {
        bail!("HTTP_MAX_HEADER_BYTES must be at least 8192, not {bytes}");
    }
    Ok(bytes)
}

impl HttpTimeouts {
    fn from_env() -> anyhow::Result<Self> {
        let d = HttpTimeouts::default();
        Ok(HttpTimeouts {
            header: Duration::from_secs(parse_var("HTTP_HEADER_TIMEOUT_SECS", d.header.as_secs())?),
            body: Duration::from_secs(parse_var("HTTP_BODY_TIMEOUT_SECS", d.body.as_secs())?),
            max_connections: parse_var("HTTP_MAX_CONNECTIONS", d.max_connections)?,
            max_connections_per_address: parse_var(
                "HTTP_MAX_CONNECTIONS_PER_ADDRESS",
                d.max_connections_per_address,
            )?,
            max_header_bytes: header_bytes(parse_var(
                "HTTP_MAX_HEADER_BYTES",
                d.max_header_bytes,
            )?)?,
        })
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://bookstore.db";

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let database_url = secret("DATABASE_URL")?.unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let embedded = database_url.starts_with("sqlite:");
        Ok(Config {
            seed_demo_if_empty: parse_var("SEED_DEMO", embedded)?,
            database_url,
            redis_url: secret("REDIS_URL")?,
            listen_addr: parse_var("LISTEN_ADDR", ([127, 0, 0, 1], 8080).into())?,
            metrics_addr: parse_var("METRICS_ADDR", ([127, 0, 0, 1], 9464).into())?,
            public_origin: plain("PUBLIC_ORIGIN").map(|o| o.trim_end_matches('/').to_string()),
            replica_id: plain("REPLICA_ID").unwrap_or_else(host_name),
            log_format: match plain("LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => bail!("LOG_FORMAT must be `text` or `json`, not `{other}`"),
            },
            order_ttl: Duration::from_secs(parse_var("ORDER_TTL_SECS", 30 * 60)?),
            expiry_interval: Duration::from_secs(parse_var("EXPIRY_INTERVAL_SECS", 30)?),
            shutdown_drain: Duration::from_millis(parse_var("SHUTDOWN_DRAIN_MS", 0)?),
            database_wait: Duration::from_secs(parse_var("DATABASE_WAIT_SECS", 120)?),
            database_max_connections: parse_var("DATABASE_MAX_CONNECTIONS", 16)?,
            catalog_cache_entries: parse_var("CATALOG_CACHE_ENTRIES", DEFAULT_ENTRIES)?,
            // None by default: a header anyone can send is believed only
            // from the proxies named (the stack names its own, `tasks.proxy`).
            trusted_proxies: TrustedProxies::parse(&plain("TRUSTED_PROXIES").unwrap_or_default())?,
            limits: Limits::from_env()?,
            http: HttpTimeouts::from_env()?,
            search: SearchSettings::from_env()?,
            mail: MailSettings::from_env()?,
        })
    }

    /// Defaults for one process on `database_url`, without reading the environment.
    pub fn local(database_url: &str) -> Self {
        Config {
            database_url: database_url.into(),
            redis_url: None,
            listen_addr: ([127, 0, 0, 1], 0).into(),
            metrics_addr: ([127, 0, 0, 1], 0).into(),
            public_origin: None,
            replica_id: "local".into(),
            log_format: LogFormat::Text,
            order_ttl: Duration::from_secs(30 * 60),
            expiry_interval: Duration::from_secs(30),
            seed_demo_if_empty: false,
            shutdown_drain: Duration::ZERO,
            database_wait: Duration::from_secs(10),
            database_max_connections: 8,
            catalog_cache_entries: DEFAULT_ENTRIES,
            trusted_proxies: TrustedProxies::default(),
            limits: Limits::default(),
            http: HttpTimeouts::default(),
            search: SearchSettings::default(),
            mail: MailSettings::default(),
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"))
    }
}

fn plain(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `NAME`, or the contents of the file named by `NAME_FILE` (trailing newline trimmed).
pub fn secret(name: &str) -> anyhow::Result<Option<String>> {
    if let Some(path) = plain(&format!("{name}_FILE")) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{name}_FILE: cannot read {path}"))?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(plain(name))
}

fn parse_var<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match plain(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}=`{raw}` is not valid: {e}")),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "storefront".into())
}
