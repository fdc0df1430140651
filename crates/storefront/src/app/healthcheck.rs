//! `storefront healthcheck`: asks this instance's `/healthz`, so the image needs
//! no curl. A dozen lines of HTTP/1.0 on a socket: not worth an HTTP client crate.
//!
//! Liveness, not readiness: Swarm restarts a task whose healthcheck fails, and
//! a replica whose database or Redis is down must not be restarted (that
//! would not bring the database back, and would drop the catalog it still
//! serves from its cache). Readiness (`/readyz`) is for the proxy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// True when `/healthz` on `addr` answers 200 within `limit`.
pub async fn is_alive(addr: SocketAddr, limit: Duration) -> anyhow::Result<bool> {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 16];
        let n = stream.read(&mut head).await?;
        Ok::<bool, std::io::Error>(
            head[..n].starts_with(b"HTTP/1.1 200") || head[..n].starts_with(b"HTTP/1.0 200"),
        )
    };
    Ok(tokio::time::timeout(limit, probe).await??)
}

/// A wildcard listen address is probed on loopback.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip().is_unspecified() {
        true if listen.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], listen.port())),
        true => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listen.port())),
        false => listen,
    }
}
