//! The public listener. `axum::serve` has no header-read timeout and no
//! connection limit, so connections are served here with hyper's HTTP/1.1
//! server directly: a client that does not finish its request header within
//! the header timeout is disconnected, whether it trickles bytes (slowloris)
//! or sits idle on a kept-alive connection (hyper runs one timer for both);
//! at most `max_connections` are open at once, the rest wait in the kernel's
//! backlog; one client address may hold `max_connections_per_address` of them
//! (the shop's own proxies excepted), so one client cannot take every slot;
//! a request header longer than `max_header_bytes` is answered 431, so each
//! connection costs at most that much buffer. HTTP/2 is not offered: the shop's proxy speaks HTTP/1.1 to it, and
//! one protocol means one set of limits to reason about.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::app::config::HttpTimeouts;
use crate::edge::client_addr::limit_key;
use crate::edge::trusted_proxies::TrustedProxies;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting
/// and waits for the requests in flight (idle connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: &HttpTimeouts,
    proxies: &TrustedProxies,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        // hyper answers 431 when a request head outgrows its read buffer.
        .max_buf_size(timeouts.max_header_bytes)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(timeouts.max_connections.max(1)));
    let per_address = PerAddress::new(timeouts.max_connections_per_address, proxies.clone());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer, slot) = accepted;
        let Some(address_slot) = per_address.admit(peer.ip()) else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(with_peer(app.clone(), peer)),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop((slot, address_slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection, once a slot is free. Accept errors (out of file
/// descriptors, a connection reset before accept) are logged and waited out.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit) {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer, slot);
            }
            Err(err) => {
                tracing::warn!(error = %err, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Open connections per client address (an IPv6 /64 counts as one). The
/// trusted proxies are not counted: every shopper arrives through them.
struct PerAddress {
    cap: usize,
    proxies: TrustedProxies,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One connection counted under its address (none for a trusted proxy),
/// until it is dropped.
struct AddressSlot {
    key: Option<String>,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl PerAddress {
    fn new(cap: usize, proxies: TrustedProxies) -> Self {
        PerAddress {
            cap: cap.max(1),
            proxies,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `peer`, unless it holds its cap.
    fn admit(&self, peer: IpAddr) -> Option<AddressSlot> {
        let open = self.open.clone();
        if self.proxies.contains(&peer) {
            return Some(AddressSlot { key: None, open });
        }
        let key = limit_key(peer);
        let mut counts = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(key.clone()).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            key: Some(key),
            open,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = &self.key else { return };
        let mut counts = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(key);
            }
        }
    }
}

/// A connection over its address's cap: a bare 429, then closed, without
/// reading the request (nothing of it is buffered) and without a log line
/// (a flood would write one per connection).
async fn refuse(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 10\r\n\r\n")
        .await;
    let _ = stream.shutdown().await;
}

/// The router, with the peer's address on every request (`ConnectInfo`).
fn with_peer(
    app: Router,
    peer: SocketAddr,
) -> impl tower::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    })
}
