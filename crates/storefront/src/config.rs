//! Configuration from environment variables (12-factor), as fixed in the design.
//! Every secret-bearing variable also accepts `NAME_FILE`, a Docker secret path.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;

use crate::read_cache::DEFAULT_ENTRIES;

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
    pub trusted_proxies: Vec<IpNet>,
    pub limits: Limits,
    pub http: HttpTimeouts,
}

/// What one client, one account or one shopper may take (docs/operations.md).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Login attempts per account per window (failures and attempts in flight).
    pub login_per_account: u64,
    /// Login attempts per client address per window, checked before the account's.
    pub login_per_address: u64,
    pub login_window: Duration,
    /// Password hashes queued or running on this replica; beyond it, 503 at once.
    pub hash_queue: usize,
    /// Unpaid orders one shopper may hold at once.
    pub open_orders: i64,
    /// Copies of one title one shopper may hold in unpaid orders.
    pub held_per_title: i64,
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_per_account: 5,
            login_per_address: 20,
            login_window: Duration::from_secs(15 * 60),
            hash_queue: 16,
            open_orders: 5,
            held_per_title: 10,
        }
    }
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
            max_connections: 4096,
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
            hash_queue: parse_var("PASSWORD_HASH_QUEUE", d.hash_queue)?,
            open_orders: parse_var("MAX_OPEN_ORDERS", d.open_orders)?,
            held_per_title: parse_var("MAX_HELD_PER_TITLE", d.held_per_title)?,
        })
    }
}

impl HttpTimeouts {
    fn from_env() -> anyhow::Result<Self> {
        let d = HttpTimeouts::default();
        Ok(HttpTimeouts {
            header: Duration::from_secs(parse_var("HTTP_HEADER_TIMEOUT_SECS", d.header.as_secs())?),
            body: Duration::from_secs(parse_var("HTTP_BODY_TIMEOUT_SECS", d.body.as_secs())?),
            max_connections: parse_var("HTTP_MAX_CONNECTIONS", d.max_connections)?,
        })
    }
}

/// Loopback and private ranges, as Rails trusts by default: the fleet's
/// proxies (the overlay network) and load balancer (the VPC) live there, while
/// a shop exposed directly sees public peers, whose header is never believed.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7";

/// `10.0.0.0/8, 172.16.0.0/12`: commas or spaces between ranges; a bare
/// address is a /32 (or /128); `none` trusts no proxy.
pub fn parse_trusted_proxies(raw: &str) -> anyhow::Result<Vec<IpNet>> {
    if raw.trim() == "none" {
        return Ok(Vec::new());
    }
    raw.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!("TRUSTED_PROXIES: `{item}` is not an address or CIDR range")
                })
        })
        .collect()
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
            trusted_proxies: parse_trusted_proxies(
                &plain("TRUSTED_PROXIES").unwrap_or_else(|| DEFAULT_TRUSTED_PROXIES.into()),
            )?,
            limits: Limits::from_env()?,
            http: HttpTimeouts::from_env()?,
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
            trusted_proxies: parse_trusted_proxies(DEFAULT_TRUSTED_PROXIES)
                .expect("the default ranges parse"),
            limits: Limits::default(),
            http: HttpTimeouts::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_take_ranges_and_bare_addresses() {
        let nets = parse_trusted_proxies("10.0.0.0/8, 127.0.0.1 ::1").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[0].contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        assert!(nets[1].contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert!(parse_trusted_proxies("none").unwrap().is_empty());
        assert_eq!(
            parse_trusted_proxies(DEFAULT_TRUSTED_PROXIES)
                .unwrap()
                .len(),
            6
        );
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxies("proxy.local").is_err());
    }
}
