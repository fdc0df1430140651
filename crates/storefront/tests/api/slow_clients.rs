//! Slow clients on the storefront's own listener: slowloris headers, idle
//! kept-alive connections and trickled bodies are cut after their timeouts.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app_with};

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const BODY_TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling slack on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(1500);

async fn shop_with_short_timeouts() -> TestApp {
    spawn_app_with(|c| {
        c.http.header = HEADER_TIMEOUT;
        c.http.body = BODY_TIMEOUT;
    })
    .await
}

/// Trickles header lines until the server closes the connection; returns how long that took.
async fn slowloris(addr: std::net::SocketAddr, give_up: Duration) -> Duration {
    let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
    let started = Instant::now();
    writer
        .write_all(b"GET /book/catalog HTTP/1.1\r\nHost: shop\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        let trickle = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            writer.write_all(b"X-Slow: y\r\n").await
        };
        tokio::select! {
            read = reader.read(&mut buf) => {
                // EOF or reset: the server hung up. (A 408 may precede the close.)
                if matches!(read, Ok(0) | Err(_)) { return started.elapsed(); }
            }
            written = trickle => {
                if written.is_err() { return started.elapsed(); }
            }
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_after_the_header_timeout_and_others_are_served() {
    let app = shop_with_short_timeouts().await;
    let give_up = HEADER_TIMEOUT * 10;
    let attackers: Vec<_> = (0..200)
        .map(|_| tokio::spawn(slowloris(app.addr, give_up)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = app.visitor().page("/book/catalog").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a normal visitor is served during the attack"
    );

    let mut held: Vec<Duration> = Vec::new();
    for attacker in attackers {
        held.push(attacker.await.unwrap());
    }
    held.sort();
    let (fastest, median, slowest) = (held[0], held[held.len() / 2], held[held.len() - 1]);
    eprintln!(
        "200 slowloris connections closed after {fastest:?} (first), {median:?} (median), {slowest:?} (last); header timeout {HEADER_TIMEOUT:?}"
    );
    assert!(
        slowest < HEADER_TIMEOUT + SLACK,
        "a slowloris connection stayed open {slowest:?} (header timeout {HEADER_TIMEOUT:?})"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = shop_with_short_timeouts().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "first request answered"
    );

    let idle_since = Instant::now();
    let closed = tokio::time::timeout(HEADER_TIMEOUT * 10, stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection was closed"
    );
    let idle = idle_since.elapsed();
    assert!(
        idle < HEADER_TIMEOUT + SLACK,
        "idle connection kept {idle:?}"
    );
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_with_the_shops_page() {
    let app = shop_with_short_timeouts().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: shop\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail=a",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BODY_TIMEOUT * 10, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server answered and closed");
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:.80}");
    assert!(answer.contains("Back to the catalog"), "the shop's page");
    assert!(took < BODY_TIMEOUT + SLACK, "answered after {took:?}");
}
