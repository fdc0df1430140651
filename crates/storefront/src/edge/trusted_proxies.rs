//! The peers whose `X-Forwarded-For` the storefront believes
//! (`TRUSTED_PROXIES`): address ranges, and host names looked up again and
//! again, since the stack's proxy tasks come and go (`client_addr` reads it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ipnet::IpNet;

/// The peers whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`): address
/// ranges, and host names resolved again every [`REFRESH`] as they come and
/// go (the stack names `tasks.proxy`: its proxy tasks, wherever they run).
/// Empty, the default: no header is believed, every client is its TCP peer.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
    /// Each host name's addresses, from its last lookup that answered.
    resolved: Arc<RwLock<HashMap<String, Vec<IpAddr>>>>,
}

/// How often the host names of [`TrustedProxies`] are looked up again: a
/// proxy task that replaced another is believed within this time.
pub const REFRESH: Duration = Duration::from_secs(5);

impl TrustedProxies {
    /// `10.0.0.0/8, tasks.proxy`: commas or spaces between entries; a bare
    /// address is a /32 (or /128); a name (letters, digits, `.`, `-`, not
    /// only digits) is looked up; `none` trusts no proxy.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let mut trusted = TrustedProxies::default();
        if raw.trim() == "none" {
            return Ok(trusted);
        }
        for item in raw
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if let Ok(net) = item.parse::<IpNet>() {
                trusted.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                trusted.nets.push(IpNet::from(ip));
            } else if is_host_name(item) {
                trusted.hosts.push(item.to_owned());
            } else {
                anyhow::bail!(
                    "TRUSTED_PROXIES: `{item}` is not an address, a CIDR range or a host name"
                );
            }
        }
        Ok(trusted)
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
            || self
                .resolved
                .read()
                .is_ok_and(|found| found.values().any(|addrs| addrs.contains(ip)))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }

    pub fn has_host_names(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// What the startup log says is trusted.
    pub fn describe(&self) -> String {
        let nets = self.nets.iter().map(ToString::to_string);
        let hosts = self
            .hosts
            .iter()
            .map(|h| format!("{h} (looked up every {}s)", REFRESH.as_secs()));
        nets.chain(hosts).collect::<Vec<_>>().join(", ")
    }

    /// Looks the host names up again. A name that has never resolved (no
    /// proxy task yet) trusts nothing until it does; a lookup that fails
    /// later (the resolver briefly unreachable) keeps the name's last
    /// answer, since forgetting it would make every shopper behind the proxy
    /// one client to the per-address limits until the next lookup.
    pub async fn refresh(&self) {
        for host in &self.hosts {
            match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => {
                    let addrs = addrs.map(|a| a.ip()).collect();
                    if let Ok(mut resolved) = self.resolved.write() {
                        resolved.insert(host.clone(), addrs);
                    }
                }
                Err(err) => tracing::debug!(%host, %err, "a trusted proxy's name does not resolve"),
            }
        }
    }
}

fn is_host_name(item: &str) -> bool {
    item.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && item.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Keeps the trusted proxies' names current while the storefront runs.
pub async fn refresh_trusted_forever(trusted: TrustedProxies) {
    let mut every = tokio::time::interval(REFRESH);
    loop {
        every.tick().await;
        trusted.refresh().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse_trusted_proxies(raw: &str) -> anyhow::Result<TrustedProxies> {
        TrustedProxies::parse(raw)
    }

    #[test]
    fn entries_are_ranges_addresses_or_host_names() {
        let trusted = parse_trusted_proxies("10.0.0.0/8, 127.0.0.1 ::1 tasks.proxy").unwrap();
        assert!(trusted.contains(&ip("10.1.2.3")));
        assert!(trusted.contains(&ip("127.0.0.1")));
        assert!(trusted.contains(&ip("::1")));
        assert!(!trusted.contains(&ip("192.168.0.1")));
        assert!(trusted.has_host_names());
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert!(parse_trusted_proxies("none").unwrap().is_empty());
        for typo in ["10.0.0.0/33", "10.0.0.300", "proxy_1", "1.2.3.4/x"] {
            assert!(parse_trusted_proxies(typo).is_err(), "{typo} accepted");
        }
    }

    #[tokio::test]
    async fn a_name_is_looked_up_and_a_failed_lookup_keeps_its_last_answer() {
        let trusted = parse_trusted_proxies("localhost").unwrap();
        assert!(
            !trusted.contains(&ip("127.0.0.1")),
            "nothing before a lookup"
        );
        trusted.refresh().await;
        assert!(trusted.contains(&ip("127.0.0.1")));

        // The same entry, now failing to resolve: what it answered last stays.
        let failing = TrustedProxies {
            hosts: vec!["name-that-does-not-resolve.invalid".into()],
            ..trusted.clone()
        };
        failing.resolved.write().unwrap().insert(
            "name-that-does-not-resolve.invalid".into(),
            vec![ip("10.0.9.9")],
        );
        failing.refresh().await;
        assert!(failing.contains(&ip("10.0.9.9")), "last good answer kept");
        assert!(failing.contains(&ip("127.0.0.1")));
    }
}
