//! Where a long analysis is, for a person at a terminal: a progress line on stderr, only
//! when asked for and only once a phase has taken a second.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A counter of work done, drawn on stderr as `layoutdump: reading tasks 41% (410000 of
/// 1000000)` at most five times a second, after the first second.
pub struct Progress {
    what: &'static str,
    total: u64,
    start: Instant,
    state: Mutex<(u64, Option<Instant>)>,
    enabled: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: u64, enabled: bool) -> Progress {
        Progress {
            what,
            total,
            start: Instant::now(),
            state: Mutex::new((0, None)),
            enabled,
        }
    }

    pub fn add(&self, n: u64) {
        if !self.enabled {
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        s.0 += n;
        let now = Instant::now();
        if now - self.start < Duration::from_secs(1)
            || s.1.is_some_and(|t| now - t < Duration::from_millis(200))
        {
            return;
        }
        s.1 = Some(now);
        let pct = s.0.saturating_mul(100) / self.total.max(1);
        let _ = write!(
            std::io::stderr(),
            "\rlayoutdump: {} {pct}% ({} of {})",
            self.what,
            s.0,
            self.total
        );
    }
}

impl Drop for Progress {
    /// Clears the line, if one was drawn.
    fn drop(&mut self) {
        if self.state.lock().is_ok_and(|s| s.1.is_some()) {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
