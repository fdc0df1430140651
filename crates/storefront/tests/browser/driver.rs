//! Debian's Chromium through chromedriver: finding them, starting the driver
//! on a free port, and one headless browser session per window size.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value, json};

/// A window the whole flow runs in.
#[derive(Clone, Copy, Debug)]
pub struct Viewport {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    /// Phone-sized windows are emulated as a touch device that honours the
    /// viewport meta tag, as a real phone would.
    pub mobile: bool,
}

pub const DESKTOP: Viewport = Viewport {
    name: "desktop",
    width: 1280,
    height: 900,
    mobile: false,
};

pub const PHONE: Viewport = Viewport {
    name: "phone",
    width: 390,
    height: 844,
    mobile: true,
};

/// Where the driver and the browser are, when both are installed.
pub struct Installed {
    driver: PathBuf,
    browser: PathBuf,
}

impl Installed {
    /// `CHROMEDRIVER` / `CHROME_BIN` override Debian's paths. The browser is
    /// started as the real binary, not Debian's `/usr/bin/chromium` wrapper
    /// script, so that only the flags below apply.
    pub fn find() -> Option<Installed> {
        let pick = |var: &str, candidates: &[&str]| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .into_iter()
                .chain(candidates.iter().map(PathBuf::from))
                .find(|p| p.is_file())
        };
        Some(Installed {
            driver: pick("CHROMEDRIVER", &["/usr/bin/chromedriver"])?,
            browser: pick(
                "CHROME_BIN",
                &["/usr/lib/chromium/chromium", "/usr/bin/chromium"],
            )?,
        })
    }
}

/// A running chromedriver, killed when dropped (also when a step panics).
pub struct Driver {
    child: Child,
    url: String,
    browser: PathBuf,
}

impl Driver {
    pub async fn start(installed: &Installed) -> Driver {
        let port = free_port();
        let child = Command::new(&installed.driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", installed.driver.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            browser: installed.browser.clone(),
        };
        driver.wait_ready().await;
        driver
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = format!("{}/status", self.url);
        while Instant::now() < deadline {
            if let Ok(response) = reqwest::get(&status).await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {status} within 20 s");
    }

    /// A fresh headless browser with its own profile directory.
    pub async fn session(&self, viewport: Viewport, profile: &Path) -> Client {
        let capabilities = capabilities(&self.browser, viewport, profile);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("starting Chromium through chromedriver: {e}"));
        if !viewport.mobile {
            fit_page_to(&client, viewport).await;
        }
        client
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--window-size` sizes the whole window; grow it so that the page itself
/// gets the viewport's size.
async fn fit_page_to(client: &Client, viewport: Viewport) {
    let frame = client
        .execute(
            "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
            vec![],
        )
        .await
        .expect("measuring the window frame");
    let extra = |i: usize| frame[i].as_u64().unwrap_or(0) as u32;
    client
        .set_window_size(viewport.width + extra(0), viewport.height + extra(1))
        .await
        .expect("sizing the window");
}

/// Running as root needs `--no-sandbox`; the networking flags keep Chromium
/// from calling home, which on this offline machine floods the log with
/// refused connections and slows every page.
fn capabilities(browser: &Path, viewport: Viewport, profile: &Path) -> Map<String, Value> {
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--hide-scrollbars".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut options = json!({ "binary": browser });
    if viewport.mobile {
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": viewport.width, "height": viewport.height, "pixelRatio": 2, "touch": true }
        });
    } else {
        args.push(format!(
            "--window-size={},{}",
            viewport.width, viewport.height
        ));
    }
    options["args"] = json!(args);
    let mut caps = Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    caps
}
