//! The public listener. `axum::serve` has no header-read timeout and no
//! connection limit, so connections are served here with hyper's HTTP/1.1
//! server directly: a client that does not finish its request header within
//! the header timeout is disconnected, whether it trickles bytes (slowloris)
//! or sits idle on a kept-alive connection (hyper runs one timer for both);
//! at most `max_connections` are open at once, the rest wait in the kernel's
//! backlog. HTTP/2 is not offered: the shop's proxy speaks HTTP/1.1 to it, and
//! one protocol means one set of limits to reason about.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::HttpTimeouts;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting
/// and waits for the requests in flight (idle connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: &HttpTimeouts,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(timeouts.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer, slot) = accepted;
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(with_peer(app.clone(), peer)),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
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
