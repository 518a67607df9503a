//! Which futures a thread is polling: each async fn or block body on its stack, from that
//! frame's own parameter (the `Pin<&mut {async_fn_env#0}>` rustc leaves unnamed), or a
//! running task its live stack points at. The task whose chain holds one is the one it runs.

use crate::dwarf::{DebugInfo, FrameRegs, LinkAddr, Type, TypeKind};
use crate::memory::{Bytes, Memory};
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
