//! Configuration from environment variables (12-factor), as fixed in the design.
//! Every secret-bearing variable also accepts `NAME_FILE`, a Docker secret path.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

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
