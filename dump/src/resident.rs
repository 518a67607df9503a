//! Keeps a large dump's mapped pages from filling the resident set: a watcher thread gives
//! them back when the process passes a bound; reads map them again from the page cache.

// Reading a task maps its pages and the kernel maps their neighbours too (fault-around):
// without this, 100k connections of a 2.8 GiB core left all of it resident.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Dumps smaller than this are left alone: they cannot push the resident set far.
const WATCHED_FROM: usize = 768 << 20;
/// The resident set (KiB) above which the dump's pages are given back.
const BOUND_KIB: u64 = 640 << 10;
/// How often the resident set is looked at (a read of /proc/self/status, some 20 µs): a
/// run maps up to 2 GiB a second, so it passes the bound by at most about 40 MiB before
/// it is brought back, and each release has few pages to drop.
const EVERY: Duration = Duration::from_millis(20);

/// The watcher of one mapped dump; stops when dropped.
pub(crate) struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `map` if it is large enough to matter and the system says how
    /// large the resident set is (Linux's /proc).
    pub(crate) fn start(map: &Arc<memmap2::Mmap>) -> Option<Watcher> {
        if map.len() < WATCHED_FROM || resident_kib().is_none() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let weak = Arc::downgrade(map);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("layoutdump-resident".into())
            .spawn(move || watch(&weak, &flag))
            .ok()?;
        Some(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn watch(map: &Weak<memmap2::Mmap>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(EVERY);
        if resident_kib().is_some_and(|kib| kib > BOUND_KIB) {
            let Some(map) = map.upgrade() else { return };
            // SAFETY: the map is a read-only shared mapping of a file: dropping its pages
            // changes no byte any reader sees; the next read maps them again from the
            // same file.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

/// The process's resident set in KiB (`VmRSS` of /proc/self/status).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
