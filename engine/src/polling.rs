//! Which task each thread runs: the one whose chain holds a future the thread polls (an
//! async body's own parameter, `Pin<&mut {async_fn_env#0}>`, which rustc leaves unnamed),
//! or, where frames locate none, the running task only its live stack points at.

use crate::dwarf::{DebugInfo, FrameRegs, LinkAddr, Type, TypeKind};
use crate::memory::{Bytes, Memory};
use crate::report::{Hex, Pending, Report, RunningTask, TaskReport};
use layoutdump_dwarf::unwind::Frame;

/// Futures one thread's stack shows it polling, at most: a task's chain is rarely deeper.
const MAX_POLLED: usize = 16;

/// The addresses of the coroutines that `frames` (innermost first) are polling, outermost
/// first, where the debug info locates them (optimized builds often keep no location).
/// The outermost may be no task's (smol's `block_on` future around the executor's run):
/// the task a thread runs is the one whose chain holds any of them.
pub fn polled_futures(dbg: &DebugInfo, mem: &dyn Memory, bias: u64, frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .rev()
        .filter_map(|frame| coroutine_self(dbg, mem, bias, frame))
        .take(MAX_POLLED)
        .collect()
}

/// The coroutine a body's frame polls: its `self`, a pinned pointer to a coroutine.
fn coroutine_self(dbg: &DebugInfo, mem: &dyn Memory, bias: u64, frame: &Frame) -> Option<u64> {
    let pc = LinkAddr(frame.lookup_pc.wrapping_sub(bias));
    let f = dbg.function_at(pc)?;
    let last = f.name.rsplit("::").next()?;
    if !(last.starts_with("{async_fn#") || last.starts_with("{async_block#")) {
        return None;
    }
    let locals = dbg.locals(f.die, pc).ok()?;
    let this = locals.iter().find(|l| &*l.name == "self")?;
    let pin = dbg.ty(this.ty?).ok()?;
    if !points_at_coroutine(dbg, &pin) {
        return None;
    }
    let regs = FrameRegs {
        sp: frame.sp,
        bp: frame.bp,
        cfa: frame.cfa,
    };
    let at = dbg.local_address(f.die, this, pc, regs, mem, bias).ok()?;
    // `Pin<&mut T>` is the pointer alone.
    mem.u64_le(at).ok().filter(|&a| a != 0)
}

/// Whether `pin` is a `Pin<&mut C>` (a struct whose one field points at `C`) with `C` a
/// coroutine.
fn points_at_coroutine(dbg: &DebugInfo, pin: &Type) -> bool {
    let TypeKind::Struct { fields, .. } = &pin.kind else {
        return false;
    };
    let [field] = fields.as_slice() else {
        return false;
    };
    let pointee = field
        .ty
        .and_then(|t| dbg.ty(t).ok())
        .and_then(|p| match p.kind {
            TypeKind::Pointer { pointee } => pointee,
            _ => None,
        });
    pointee
        .and_then(|c| dbg.ty(c).ok())
        .is_some_and(|c| c.is_coroutine())
}

/// How far past a task's header the futures it holds can start: a task is one
/// allocation, its future inside it.
const TASK_EXTENT: u64 = 1 << 20;

/// Tasks looked for on the stacks, at most: running tasks read up front (a misread state
/// could call a million running), listed tasks read now to see whether they run.
const MAX_LOOKED_FOR: usize = 16;

/// Sets each thread's `running` task: the one whose await chain holds a future it polls
/// (`polling`, from its frames), among the tasks read, else among those still to be read
/// (the listed task that starts nearest below the future is read now: the future lies
/// inside its task). Then, for an optimized build, whose frames locate nothing: a task
/// in state `running` that only one runtime thread's live stack points at is that
/// thread's, and its future joins the thread's `polling`.
pub fn find_running(report: &mut Report, mem: &dyn Memory) {
    let mut listings = Listings::new(&report.runtimes);
    for t in &mut report.threads {
        t.running = (report.runtimes.iter())
            .flat_map(|r| &r.tasks)
            .find(|task| t.runs(task))
            .map(running_task)
            .or_else(|| listings.run_by(&t.polling));
    }
    for (tid, task, future) in claimed_by_stack(report, mem) {
        if let Some(t) = report.threads.iter_mut().find(|t| t.tid == tid) {
            t.polling.push(future);
            t.running.get_or_insert(task);
        }
    }
}

fn running_task(t: &TaskReport) -> RunningTask {
    RunningTask {
        id: t.id,
        address: t.address,
    }
}

/// The running tasks no thread runs that only one runtime thread's stack points into
/// (anywhere from the task's header to its future: async-task's schedule and waker take
/// the header, a harness its core), as (thread, task, its future).
fn claimed_by_stack(report: &Report, mem: &dyn Memory) -> Vec<(u32, RunningTask, Hex)> {
    let runtime_threads: Vec<(u32, u64)> = (report.threads.iter())
        .filter(|t| t.runtime.is_some())
        .map(|t| (t.tid, t.sp.0))
        .collect();
    if runtime_threads.is_empty() {
        return Vec::new();
    }
    let stacks = Stacks::read(mem, &runtime_threads);
    let unclaimed = |t: &TaskReport| {
        let future = t.backtrace.first()?.address;
        let run = report
            .threads
            .iter()
            .any(|th| th.running == Some(running_task(t)));
        (t.state.as_deref() == Some("running") && !run).then_some((running_task(t), future))
    };
    let mut found = Vec::new();
    let read = (report.runtimes.iter()).flat_map(|r| &r.tasks);
    for (task, future) in read.filter_map(unclaimed).take(MAX_LOOKED_FOR) {
        let (low, high) = (task.address.0.min(future.0), task.address.0.max(future.0));
        found.extend(
            stacks
                .only_thread_into(low, high)
                .map(|tid| (tid, task, future)),
        );
    }
    let pending: Vec<&Pending> = report
        .runtimes
        .iter()
        .filter_map(|r| r.pending.as_ref())
        .collect();
    if !pending.is_empty() {
        let owners = &stacks.owners();
        let on_one_stack = pending.iter().flat_map(|p| {
            (0..p.tasks.len()).filter_map(move |i| {
                let (_, address) = p.tasks.listed(i)?;
                Some((p, i, (*owners.get(&address.0)?)?))
            })
        });
        for (p, i, tid) in on_one_stack.take(MAX_LOOKED_FOR) {
            if let Some((task, future)) = p.tasks.read_now(i).as_ref().and_then(unclaimed) {
                found.push((tid, task, future));
            }
        }
    }
    found
}

/// The tasks still to be read, by where each starts: sorted once, when a thread's
/// futures are first looked for among them.
struct Listings<'r> {
    pending: Vec<&'r Pending>,
    starts: Option<Vec<Vec<(u64, usize)>>>,
}

impl<'r> Listings<'r> {
    fn new(runtimes: &'r [crate::report::RuntimeReport]) -> Self {
        Listings {
            pending: runtimes.iter().filter_map(|r| r.pending.as_ref()).collect(),
            starts: None,
        }
    }

    /// The listed task whose chain holds one of `futures`, read now.
    fn run_by(&mut self, futures: &[Hex]) -> Option<RunningTask> {
        if futures.is_empty() || self.pending.is_empty() {
            return None;
        }
        let pending = &self.pending;
        let starts = self.starts.get_or_insert_with(|| {
            (pending.iter())
                .map(|p| {
                    let mut starts: Vec<(u64, usize)> = (0..p.tasks.len())
                        .filter_map(|i| Some((p.tasks.listed(i)?.1.0, i)))
                        .collect();
                    starts.sort_unstable();
                    starts
                })
                .collect()
        });
        for (p, starts) in pending.iter().zip(starts.iter()) {
            for &future in futures {
                let below = starts.partition_point(|&(start, _)| start <= future.0);
                let Some(&(start, index)) = below.checked_sub(1).and_then(|b| starts.get(b)) else {
                    continue;
                };
                if future.0 - start < TASK_EXTENT
                    && let Some(task) = p.tasks.read_now(index)
                    && task.backtrace.iter().any(|f| futures.contains(&f.address))
                {
                    return Some(running_task(&task));
                }
            }
        }
        None
    }
}

/// How much of a thread's stack, up from its stack pointer, is searched for a running
/// task (`Stacks`): the frames of a poll and the executor beneath it.
const STACK_SEARCHED: u64 = 64 * 1024;
/// Threads whose stacks are searched, at most: with `STACK_SEARCHED`, 16 MiB of words
/// however many threads a hostile dump claims.
const MAX_THREADS: usize = 256;

/// The live stacks of threads, as words: for an optimized build, where no frame locates
/// the future a body polls, a running task is the one thread's whose stack points at it.
pub struct Stacks {
    threads: Vec<(u32, Vec<u64>)>,
}

impl Stacks {
    /// The stacks of `threads` (thread id, stack pointer), each from its stack pointer up
    /// to `STACK_SEARCHED` bytes or the first page the dump lacks.
    pub fn read(mem: &dyn Memory, threads: &[(u32, u64)]) -> Stacks {
        Stacks {
            threads: threads
                .iter()
                .take(MAX_THREADS)
                .map(|&(tid, sp)| (tid, stack_words(mem, sp)))
                .collect(),
        }
    }

    /// The one thread whose stack holds a pointer into `low..=high` (a task's header up to
    /// its future: async-task's schedule and waker take the header, a harness its core);
    /// None where no thread's or several threads' do.
    pub fn only_thread_into(&self, low: u64, high: u64) -> Option<u32> {
        let mut on = (self.threads.iter())
            .filter(|(_, words)| words.iter().any(|w| (low..=high).contains(w)));
        let (tid, _) = on.next()?;
        on.next().is_none().then_some(*tid)
    }

    /// Each word on some stack, with the one thread it is on (None: on several).
    pub fn owners(&self) -> rustc_hash::FxHashMap<u64, Option<u32>> {
        let mut owners = rustc_hash::FxHashMap::default();
        for (tid, words) in &self.threads {
            for &w in words.iter().filter(|&&w| w != 0) {
                owners
                    .entry(w)
                    .and_modify(|o: &mut Option<u32>| {
                        if *o != Some(*tid) {
                            *o = None;
                        }
                    })
                    .or_insert(Some(*tid));
            }
        }
        owners
    }
}

/// The 8-byte words of a thread's live stack, from `sp` up to `STACK_SEARCHED` bytes or
/// the first page the dump lacks.
fn stack_words(mem: &dyn Memory, sp: u64) -> Vec<u64> {
    const PAGE: u64 = 4096;
    let mut words = Vec::new();
    let mut at = sp & !7;
    let end = sp.saturating_add(STACK_SEARCHED);
    let mut buf = [0u8; PAGE as usize];
    while at < end {
        let len = (PAGE - at % PAGE).min(end - at) as usize;
        if mem.read(at, &mut buf[..len]).is_err() {
            // A stack the dump holds only part of a page of (a minidump's ends where the
            // stack does): its words up to the first it lacks.
            let mut word = [0u8; 8];
            let held = (at..at + len as u64).step_by(8).map_while(|a| {
                mem.read(a, &mut word)
                    .ok()
                    .map(|()| u64::from_le_bytes(word))
            });
            words.extend(held);
            break;
        }
        words.extend(
            buf[..len]
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default())),
        );
        at += len as u64;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::Stacks;
    use crate::memory::SliceMemory;

    /// Two threads' stacks (8 words each, the rest unmapped): a task pointed at from one
    /// stack only is that thread's; one pointed at from both, or from none, is no one's.
    #[test]
    fn a_task_on_one_stack_only_is_that_threads() {
        let words = |ws: [u64; 8]| ws.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        let mem = SliceMemory::new()
            .with(0x1000, words([0, 7, 0x5000, 0x6008, 0, 0, 0, 0]))
            .with(0x2000, words([0x6010, 0, 0, 0, 0, 0, 0, 0]));
        let stacks = Stacks::read(&mem, &[(1, 0x1000), (2, 0x2000)]);
        // Into 0x5000..=0x5040 (header to future): thread 1's pointer at its header.
        assert_eq!(stacks.only_thread_into(0x5000, 0x5040), Some(1));
        // 0x6000..=0x6040: pointed into from both threads.
        assert_eq!(stacks.only_thread_into(0x6000, 0x6040), None);
        assert_eq!(stacks.only_thread_into(0x9000, 0x9040), None);
        let owners = stacks.owners();
        assert_eq!(owners.get(&0x5000), Some(&Some(1)));
        assert_eq!(owners.get(&0x6010), Some(&Some(2)));
        assert_eq!(owners.get(&0), None, "a null word is no pointer");
    }
}
