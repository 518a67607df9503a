//! Locking shared state that a panicking thread may have left poisoned: the data behind
//! these locks (caches, findings, groups) stays valid when a holder panics, and a panic
//! on one worker must end the run with its own message, not a second one from here.

use std::sync::{Mutex, MutexGuard};

/// `m`'s guard, poisoned or not.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
