//! A one-line progress indicator on stderr for long operations: shown only
//! when stderr is a terminal, redrawn at most ten times a second, erased
//! when done (so the real output is never mixed with it).
//! `RIO_PROGRESS=always` draws it even when stderr is not a terminal (and
//! from the start), `RIO_PROGRESS=never` never draws it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(100);
/// Nothing is drawn for operations shorter than this.
const DELAY: Duration = Duration::from_millis(300);

pub struct Progress {
    enabled: bool,
    delay: Duration,
    what: &'static str,
    total_bytes: u64,
    started: Instant,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// A progress line for `what`, out of `total_bytes`; silent unless
    /// stderr is a terminal.
    pub fn new(what: &'static str, total_bytes: u64) -> Progress {
        let (enabled, delay) = match std::env::var("RIO_PROGRESS").as_deref() {
            Ok("always") => (true, Duration::ZERO),
            Ok("never") => (false, DELAY),
            _ => (std::io::stderr().is_terminal(), DELAY),
        };
        Progress {
            enabled,
            delay,
            what,
            total_bytes,
            started: Instant::now(),
            last_draw: None,
            drawn: false,
        }
    }

    /// One that never draws.
    pub fn disabled() -> Progress {
        let mut p = Progress::new("", 0);
        p.enabled = false;
        p
    }

    /// Reports `done_bytes` of the total and `entries` so far; cheap when
    /// called often (draws only when due).
    pub fn update(&mut self, done_bytes: u64, entries: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.started) < self.delay || self.last_draw.is_some_and(|t| now.duration_since(t) < INTERVAL) {
            return;
        }
        self.last_draw = Some(now);
        let pct = if self.total_bytes == 0 { 100.0 } else { done_bytes as f64 * 100.0 / self.total_bytes as f64 };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{}: {:.1}% ({} of {}), {} entries",
            self.what,
            pct.min(100.0),
            human_bytes(done_bytes),
            human_bytes(self.total_bytes),
            entries
        );
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
