//! Logs: human-readable text by default, one JSON object per line in images.
//! Colour only on a terminal: escape codes in a file or a log shipper are noise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::app::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// A log line that a flood would repeat thousands of times (a request shed
/// for load, a dependency down): the first of each minute is written, the
/// rest of that minute only counted, and the count rides on the next line
/// written. A flood of 68,000 refused logins once wrote 46 MB of log.
pub struct Throttled {
    window: std::time::Duration,
    state: std::sync::Mutex<ThrottleState>,
}

struct ThrottleState {
    last_written: Option<std::time::Instant>,
    unwritten: u64,
}

impl Throttled {
    pub const fn per_minute() -> Self {
        Throttled {
            window: std::time::Duration::from_secs(60),
            state: std::sync::Mutex::new(ThrottleState {
                last_written: None,
                unwritten: 0,
            }),
        }
    }

    /// `Some(n)` when this occurrence is to be written, `n` being how many
    /// were only counted since the last one written; `None` when it is counted.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = std::time::Instant::now();
        match state.last_written {
            Some(at) if now.duration_since(at) < self.window => {
                state.unwritten += 1;
                None
            }
            _ => {
                state.last_written = Some(now);
                Some(std::mem::take(&mut state.unwritten))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_carries_the_count_of_the_others() {
        let throttled = Throttled::per_minute();
        assert_eq!(throttled.admit(), Some(0));
        for _ in 0..999 {
            assert_eq!(throttled.admit(), None);
        }
        // A minute later the next one is written with the 999 counted.
        throttled.state.lock().unwrap().last_written =
            Some(std::time::Instant::now() - std::time::Duration::from_secs(61));
        assert_eq!(throttled.admit(), Some(999));
        assert_eq!(throttled.admit(), None);
    }
}
