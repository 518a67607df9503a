//! Ordered parallel chunks: work on chunks `0..n` on a few worker threads, each with state
//! of its own, and hand each chunk's result back to the calling thread in chunk order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, mpsc};

/// How the chunks are scheduled.
pub struct Plan<F> {
    /// How many chunks there are.
    pub chunks: usize,
    /// Worker threads at most (at least one; never more than there are chunks).
    pub workers: usize,
    /// The chunk that must have been settled before chunk `i` starts, if any. This bounds
    /// how far the workers run ahead, and lets a chunk's inputs (a step budget) depend only
    /// on chunks settled before it, never on the number of threads.
    pub starts_after: F,
}

/// No chunk waits for another: every worker takes the next chunk as soon as it is free.
pub fn unbounded(_: usize) -> Option<usize> {
    None
}

/// Workers stay within `ahead` chunks of the oldest chunk not yet settled.
pub fn window(ahead: usize) -> impl Fn(usize) -> Option<usize> + Sync {
    move |i| i.checked_sub(ahead.max(1))
}

/// Chunks run in batches of `batch`: a batch starts once the one before it is settled.
pub fn batches(batch: usize) -> impl Fn(usize) -> Option<usize> + Sync {
    move |i| (i / batch.max(1) * batch.max(1)).checked_sub(1)
}

/// Where the workers stand: chunks settled so far, and whether to stop.
struct Progress {
    settled: usize,
    stopped: bool,
}

/// Runs every chunk of `plan`: `work` makes chunk `i`'s result on a worker thread, with
/// that worker's state (`init`, made on its thread); this thread then `settle`s each
/// result in chunk order (adds what it found to the totals; after that, chunks waiting
/// for it may start) and `consume`s it (writes it out); the result then goes back to the
/// worker that made it (`recycle`), so that its buffers are reused there, and freed
/// there, not on the calling thread. The first error `consume` returns stops every worker
/// and is returned; a panic on any thread stops every worker too.
pub fn run<S, O: Send, E>(
    plan: Plan<impl Fn(usize) -> Option<usize> + Sync>,
    init: impl Fn(usize) -> S + Sync,
    work: impl Fn(&mut S, usize) -> O + Sync,
    recycle: impl Fn(&mut S, O) + Sync,
    mut settle: impl FnMut(usize, &mut O),
    mut consume: impl FnMut(usize, &mut O) -> Result<(), E>,
) -> Result<(), E> {
    if plan.chunks == 0 {
        return Ok(());
    }
    let workers = plan.workers.clamp(1, plan.chunks);
    let progress = Mutex::new(Progress {
        settled: 0,
        stopped: false,
    });
    let moved = Condvar::new();
    let next = AtomicUsize::new(0);
    let stop = || {
        lock(&progress).stopped = true;
        moved.notify_all();
    };
    let worker = |who: usize, sent: mpsc::Sender<(usize, usize, O)>, back: mpsc::Receiver<O>| {
        let _on_panic = OnPanic(&stop);
        let mut state = init(who);
        loop {
            while let Ok(done) = back.try_recv() {
                recycle(&mut state, done);
            }
            let at = next.fetch_add(1, Ordering::Relaxed);
            if at >= plan.chunks {
                break;
            }
            {
                let mut p = lock(&progress);
                while !p.stopped && (plan.starts_after)(at).is_some_and(|j| p.settled <= j) {
                    p = moved.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                if p.stopped {
                    break;
                }
            }
            let out = work(&mut state, at);
            if sent.send((at, who, out)).is_err() {
                break;
            }
        }
    };
    let (sent, received) = mpsc::channel();
    std::thread::scope(|scope| {
        let mut back = Vec::with_capacity(workers);
        for who in 0..workers {
            let sent = sent.clone();
            let (give_back, taken_back) = mpsc::channel();
            back.push(give_back);
            let worker = &worker;
            scope.spawn(move || worker(who, sent, taken_back));
        }
        drop(sent);
        let _on_panic = OnPanic(&stop);
        let mut early: BTreeMap<usize, (usize, O)> = BTreeMap::new();
        let mut at = 0;
        for (index, who, out) in received.iter() {
            early.insert(index, (who, out));
            while let Some((who, mut out)) = early.remove(&at) {
                settle(at, &mut out);
                lock(&progress).settled = at + 1;
                moved.notify_all();
                if let Err(e) = consume(at, &mut out) {
                    stop();
                    return Err(e);
                }
                // A worker that has stopped has no more use for it: dropped here.
                let _ = back[who].send(out);
                at += 1;
            }
        }
        Ok(())
    })
}

/// Locks `m`, poisoned or not: the counters behind it stay valid when a holder panics.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Calls its function if it is dropped while the thread unwinds: a panic on one thread
/// must end the run, not leave the others waiting for a chunk that will not come.
struct OnPanic<'a>(&'a dyn Fn());

impl Drop for OnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            (self.0)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back in chunk order whatever order the workers finish in.
    #[test]
    fn results_are_settled_and_consumed_in_order() {
        let mut settled = Vec::new();
        let mut consumed = Vec::new();
        let r: Result<(), ()> = run(
            Plan {
                chunks: 200,
                workers: 4,
                starts_after: unbounded,
            },
            |_| (),
            |_, i| {
                // Later chunks finish first, often.
                std::thread::sleep(std::time::Duration::from_micros(
                    ((200 - i) % 7) as u64 * 50,
                ));
                i * 2
            },
            |_, _| {},
            |i, out| settled.push((i, *out)),
            |i, out| {
                consumed.push((i, *out));
                Ok(())
            },
        );
        assert!(r.is_ok());
        let want: Vec<(usize, usize)> = (0..200).map(|i| (i, i * 2)).collect();
        assert_eq!(settled, want);
        assert_eq!(consumed, want);
    }

    /// A chunk starts only once the chunk it waits for is settled: with a window of 3,
    /// when chunk `i` is made, at least `i - 2` chunks have been settled.
    #[test]
    fn a_window_bounds_how_far_workers_run_ahead() {
        let settled = AtomicUsize::new(0);
        let worst = AtomicUsize::new(0);
        let _: Result<(), ()> = run(
            Plan {
                chunks: 100,
                workers: 4,
                starts_after: window(3),
            },
            |_| (),
            |_, i| {
                let done = settled.load(Ordering::SeqCst);
                worst.fetch_max(i.saturating_sub(done), Ordering::SeqCst);
                i
            },
            |_, _| {},
            |_, _| {
                settled.fetch_add(1, Ordering::SeqCst);
            },
            |_, _| Ok(()),
        );
        assert!(worst.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn batches_wait_for_the_batch_before() {
        let f = batches(8);
        assert!((0..8).all(|i| f(i).is_none()));
        assert_eq!(f(8), Some(7));
        assert_eq!(f(15), Some(7));
        assert_eq!(f(16), Some(15));
        assert_eq!(window(4)(3), None);
        assert_eq!(window(4)(4), Some(0));
    }

    /// The first error stops the run and is returned; nothing after it is consumed.
    #[test]
    fn an_error_stops_every_worker() {
        let made = AtomicUsize::new(0);
        let mut consumed = 0;
        let r = run(
            Plan {
                chunks: 10_000,
                workers: 3,
                starts_after: window(4),
            },
            |_| (),
            |_, i| {
                made.fetch_add(1, Ordering::SeqCst);
                i
            },
            |_, _| {},
            |_, _| {},
            |i, _| {
                consumed += 1;
                if i == 10 { Err("full disk") } else { Ok(()) }
            },
        );
        assert_eq!(r, Err("full disk"));
        assert_eq!(consumed, 11);
        assert!(made.load(Ordering::SeqCst) < 100, "workers went on");
    }

    /// A consumed result goes back to the worker that made it.
    #[test]
    fn results_are_recycled_by_their_worker() {
        let wrong = AtomicUsize::new(0);
        let recycled = AtomicUsize::new(0);
        let _: Result<(), ()> = run(
            Plan {
                chunks: 500,
                workers: 3,
                starts_after: window(8),
            },
            |who| who,
            |who, _| *who,
            |who, made_by| {
                recycled.fetch_add(1, Ordering::SeqCst);
                if *who != made_by {
                    wrong.fetch_add(1, Ordering::SeqCst);
                }
            },
            |_, _| {},
            |_, _| Ok(()),
        );
        assert_eq!(wrong.load(Ordering::SeqCst), 0);
        assert!(recycled.load(Ordering::SeqCst) > 0);
    }

    #[test]
    fn no_chunks_is_nothing_to_do() {
        let r: Result<(), ()> = run(
            Plan {
                chunks: 0,
                workers: 4,
                starts_after: unbounded,
            },
            |_| (),
            |_, _| (),
            |_, _| {},
            |_, _| panic!("nothing to settle"),
            |_, _| panic!("nothing to consume"),
        );
        assert!(r.is_ok());
    }

    /// A panic on a worker ends the run with that panic, not a hang.
    #[test]
    fn a_panicking_worker_does_not_hang_the_run() {
        let r = std::panic::catch_unwind(|| {
            let _: Result<(), ()> = run(
                Plan {
                    chunks: 1000,
                    workers: 3,
                    starts_after: window(2),
                },
                |_| (),
                |_, i| {
                    if i == 5 {
                        panic!("worker failed");
                    }
                    i
                },
                |_, _| {},
                |_, _| {},
                |_, _| Ok(()),
            );
        });
        assert!(r.is_err());
    }
}
