//! Who is asking, for per-address limits. Behind the shop's proxies the TCP
//! peer is a proxy, so the client comes from `X-Forwarded-For`, but only when
//! the peer is a configured trusted proxy: anyone can send that header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::app::state::AppState;
use crate::edge::trusted_proxies::TrustedProxies;
use crate::error::AppError;

/// The client's address as far as trusted hops can vouch for it.
///
/// Each trusted proxy appends the address it received from, so the header is
/// read from the right: trusted hops are skipped, and the first address no
/// trusted proxy owns is the client. A malformed entry stops the walk at the
/// last address a trusted hop did vouch for.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.contains(ip);
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// The key a limit counts under: one IPv4 address, or one IPv6 /64 (what a
/// single subscriber is usually given, so rotating inside it gains nothing).
pub fn limit_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let net = ipnet::Ipv6Net::new(v6, 64)
                    .expect("64 is a valid prefix")
                    .trunc();
                net.to_string()
            }
        },
    }
}

/// The requesting client's address, resolved through trusted proxies.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no peer address on the request")))?;
        Ok(ClientAddr(resolve(
            peer.ip(),
            &parts.headers,
            &app.config.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_trusted_proxies(raw: &str) -> anyhow::Result<TrustedProxies> {
        TrustedProxies::parse(raw)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with_xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let trusted = parse_trusted_proxies("10.0.0.0/8").unwrap();
        let spoofed = with_xff(&["1.2.3.4"]);
        assert_eq!(
            resolve(ip("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(resolve(ip("10.0.0.2"), &spoofed, &trusted), ip("1.2.3.4"));
        let nobody = TrustedProxies::default();
        assert_eq!(resolve(ip("10.0.0.2"), &spoofed, &nobody), ip("10.0.0.2"));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right_and_forged_entries_ignored() {
        let trusted = parse_trusted_proxies("10.0.0.0/8").unwrap();
        // The client forged "6.6.6.6"; the load balancer (10.0.1.5) appended the
        // real client, the node proxy appended the load balancer.
        let headers = with_xff(&["6.6.6.6, 198.51.100.7", "10.0.1.5"]);
        assert_eq!(
            resolve(ip("10.0.0.2"), &headers, &trusted),
            ip("198.51.100.7")
        );
        let garbage = with_xff(&["198.51.100.7, not-an-ip, 10.0.1.5"]);
        assert_eq!(resolve(ip("10.0.0.2"), &garbage, &trusted), ip("10.0.1.5"));
        let none = HeaderMap::new();
        assert_eq!(resolve(ip("10.0.0.2"), &none, &trusted), ip("10.0.0.2"));
    }

    #[tokio::test]
    async fn a_host_name_is_trusted_once_it_resolves() {
        let trusted = parse_trusted_proxies("localhost").unwrap();
        let spoofed = with_xff(&["1.2.3.4"]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &spoofed, &trusted),
            ip("127.0.0.1"),
            "not looked up yet: not trusted"
        );
        trusted.refresh().await;
        assert_eq!(resolve(ip("127.0.0.1"), &spoofed, &trusted), ip("1.2.3.4"));
        assert!(
            trusted
                .describe()
                .contains("localhost (looked up every 5s)")
        );
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff::9")),
            limit_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(limit_key(ip("192.0.2.1")), "192.0.2.1");
    }
}
