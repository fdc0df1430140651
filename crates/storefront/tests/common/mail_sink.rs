//! A real SMTP server for the mail tests: aiosmtpd (PyPI; scripts/test
//! installs it) writing every message it accepts to a Maildir, which the
//! test reads. It can be stopped and started again on its port, to play a
//! mail server that is down for a while.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, skip_because};

pub struct MailSink {
    pub port: u16,
    dir: tempfile::TempDir,
    server: Option<Child>,
}

/// One delivered message: its headers as sent and its plain-text part, decoded.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub raw: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
}

impl MailSink {
    /// A sink on a free port, listening; `None` (a visible skip, a failure
    /// under CI=true) when aiosmtpd is not installed.
    pub async fn start() -> Option<MailSink> {
        let mut sink = MailSink::stopped()?;
        sink.up().await;
        Some(sink)
    }

    /// A sink whose port nobody listens on yet (`up` starts it).
    pub fn stopped() -> Option<MailSink> {
        let installed = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            skip_because("aiosmtpd is not installed (python3 -m pip install aiosmtpd)");
            return None;
        }
        Some(MailSink {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            server: None,
        })
    }

    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn up(&mut self) {
        let maildir = self.dir.path().join("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server: connections are refused until `up`.
    pub fn down(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let maildir = self.dir.path().join("maildir");
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        // In delivery order: by the time each file was written, then by
        // name. The names alone are not in order (Python's Maildir names
        // hold the microseconds unpadded: M64942 sorts after M123663).
        let written = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        files.sort_by_cached_key(|path| (written(path), path.clone()));
        files
    }

    /// Every message delivered so far, the first delivered first.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.files()
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|raw| Delivered::parse(&raw))
            .collect()
    }

    /// Waits until at least `count` messages are delivered (fails after `within`).
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Delivered> {
        let deadline = Instant::now() + within;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} mails delivered within {within:?}",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.down();
    }
}

impl Delivered {
    fn parse(raw: &str) -> Delivered {
        let raw = raw.replace("\r\n", "\n");
        // Headers unfolded: a long one continues on lines that start with a space.
        let head = raw
            .split("\n\n")
            .next()
            .unwrap_or("")
            .replace("\n ", " ")
            .replace("\n\t", " ");
        let header = |name: &str| {
            head.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_default()
        };
        Delivered {
            to: header("To"),
            subject: decoded_header(&header("Subject")),
            message_id: header("Message-ID"),
            text: plain_text_part(&raw),
            raw: raw.clone(),
        }
    }
}

/// The body of the `text/plain` part, quoted-printable decoded.
fn plain_text_part(raw: &str) -> String {
    let Some(start) = raw.find("Content-Type: text/plain") else {
        return String::new();
    };
    let part = &raw[start..];
    let body_start = part.find("\n\n").map(|i| i + 2).unwrap_or(part.len());
    let body = &part[body_start..];
    let body = body.split("\n--").next().unwrap_or(body);
    let headers = &part[..body_start];
    if headers.contains("quoted-printable") {
        return quoted_printable(body);
    }
    if headers.contains("base64") {
        use base64::Engine;
        let joined: String = body.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(joined)
            .unwrap_or_default();
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    body.to_string()
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=' && i + 3 <= bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `=?utf-8?b?…?=` (a subject with accents) decoded; other subjects as they
/// are. Encoded words are joined without the spaces between them (RFC 2047).
fn decoded_header(value: &str) -> String {
    use base64::Engine;
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut decoded = String::new();
    let mut previous_encoded = false;
    for (i, word) in value.split_whitespace().enumerate() {
        let lower = word.to_ascii_lowercase();
        let encoded = lower.starts_with("=?utf-8?b?") && word.ends_with("?=");
        if i > 0 && !(previous_encoded && encoded) {
            decoded.push(' ');
        }
        match encoded {
            true => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&word[10..word.len() - 2])
                    .unwrap_or_default();
                decoded.push_str(&String::from_utf8_lossy(&bytes));
            }
            false => decoded.push_str(word),
        }
        previous_encoded = encoded;
    }
    decoded
}
