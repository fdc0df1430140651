//! The benchmark's reference: the smallest axum server, built from this
//! workspace with the same runtime, served and loaded like the storefront.
//! `cargo run --release -p storefront --example hello -- 127.0.0.1:8090`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let app = Router::new().route("/", get(|| async { "Hello, world!" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
