//! What every storefront test binary needs (`tests/api`, `faults.rs`,
//! `browser.rs`): a real storefront serving on port 0 until it is dropped,
//! free ports, the CSRF token of a page, test logs, and the one way a test
//! whose prerequisite is missing says so.

#![allow(dead_code)]

pub mod mail_sink;
pub mod vanishing;

use std::net::{SocketAddr, TcpListener};
use std::sync::LazyLock;

use regex::Regex;
use storefront::app::config::Config;
use storefront::app::startup::Application;
use storefront::app::state::AppState;
use tokio::sync::oneshot;

/// A storefront serving in this test's runtime; it stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub state: AppState,
    _stop: oneshot::Sender<()>,
}

impl Running {
    /// Builds the application from `config` and serves it.
    pub async fn start(config: Config) -> Running {
        Running::serve(
            Application::build(config)
                .await
                .expect("application builds"),
        )
    }

    /// Serves an application already built (a test that builds it itself,
    /// e.g. to see it wait for its database first).
    pub fn serve(application: Application) -> Running {
        init_logs();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = Running {
            addr: application.addr(),
            metrics_addr: application.metrics_addr(),
            state: application.state(),
            _stop: stop,
        };
        tokio::spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        running
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A port nobody listens on right now (for servers the test starts itself).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static CSRF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"name="csrf_token" value="([0-9a-f]+)""#).unwrap());

/// The CSRF token a page's form carries, if it has one.
pub fn csrf_token_in(html: &str) -> Option<String> {
    CSRF.captures(html).map(|c| c[1].to_string())
}

/// A missing prerequisite: a visible skip on a developer's machine, a failure
/// under `CI=true` (where scripts/test installs everything).
pub fn skip_because(why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    println!("skipped: {why}");
}

/// Logs go to the test's captured output (shown on failure); RUST_LOG tunes them.
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,storefront=info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
