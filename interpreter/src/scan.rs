//! The memory-scan root: finds objects by their vtable when nothing names the executor
//! (a smol `Executor` held in an optimized-out local of `main`). Every aligned word of
//! the dump's writable memory that points into the main executable is a candidate
//! vtable; it is kept when the table's slot `N` points at a function whose path starts
//! with the layout's prefix (async-task's `RawTask<…>::run`). Each distinct table is
//! judged once. What the scan yields is a guess: run.rs accepts a runtime found this way
//! only if that runtime's own task list contains the object that led to it.

use std::collections::HashMap;

use crate::dwarf::{DebugInfo, LinkAddr};
use crate::memory::Memory;

/// Where to look, and what counts as "points into the executable".
#[derive(Debug, Clone, Default)]
pub struct ScanSpace {
    /// Writable memory the dump holds: heap, stacks, data.
    pub regions: Vec<(u64, u64)>,
    /// The main executable's mapped range (its vtables and code are there).
    pub image: (u64, u64),
}

/// Bytes read per step of the scan: large enough to be fast, small enough to bound memory.
const CHUNK: u64 = 1 << 20;
/// Distinct candidate tables judged; past this the scan stops and says so (a corrupt dump
/// full of pointers into the binary must not make this quadratic).
const MAX_TABLES: usize = 200_000;

/// Addresses of the words that point at a matching table, at most `max` of them, and a
/// warning when the scan was cut short.
pub fn vtable_refs(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    bias: u64,
    space: &ScanSpace,
    slot: u64,
    prefix: &str,
    max: u64,
) -> (Vec<u64>, Option<String>) {
    // Nothing can match in a binary with no type under the prefix (smol's layout tried on
    // a tokio program): skip reading the dump.
    let module = prefix.rsplit_once("::").map_or(prefix, |(m, _)| m);
    if !dbg.index().type_names().any(|n| n.starts_with(module)) {
        return (Vec::new(), None);
    }
    let (lo, hi) = space.image;
    let mut judged: HashMap<u64, bool> = HashMap::new();
    let mut found = Vec::new();
    let mut buf = vec![0u8; CHUNK as usize];
    for &(start, end) in &space.regions {
        let mut at = start.next_multiple_of(8);
        while at < end {
            let len = (end - at).min(CHUNK) as usize & !7;
            if len == 0 {
                break;
            }
            let chunk = &mut buf[..len];
            if mem.read(at, chunk).is_ok() {
                for (i, word) in chunk.chunks_exact(8).enumerate() {
                    let v = u64::from_le_bytes(word.try_into().unwrap_or_default());
                    if v < lo || v >= hi || v % 8 != 0 {
                        continue;
                    }
                    let hit = match judged.get(&v) {
                        Some(h) => *h,
                        None => {
                            if judged.len() >= MAX_TABLES {
                                return (
                                    found,
                                    Some(format!(
                                        "memory scan stopped after judging {MAX_TABLES} candidate tables"
                                    )),
                                );
                            }
                            let h = slot_matches(dbg, mem, bias, v, slot, prefix, (lo, hi));
                            judged.insert(v, h);
                            h
                        }
                    };
                    if hit {
                        found.push(at + 8 * i as u64);
                        if found.len() as u64 >= max {
                            return (
                                found,
                                Some(format!(
                                    "memory scan stopped at {max} objects (--limit-items)"
                                )),
                            );
                        }
                    }
                }
            }
            at += len as u64;
        }
    }
    (found, None)
}

/// Whether slot `slot` of the table at `table` points at a function whose path (or DWARF
/// name) starts with `prefix`.
fn slot_matches(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    bias: u64,
    table: u64,
    slot: u64,
    prefix: &str,
    (lo, hi): (u64, u64),
) -> bool {
    let Some(at) = slot.checked_mul(8).and_then(|o| table.checked_add(o)) else {
        return false;
    };
    let Ok(f) = mem.read_u64_le(at) else {
        return false;
    };
    if f < lo || f >= hi {
        return false;
    }
    match dbg.function_at(LinkAddr(f.wrapping_sub(bias))) {
        Some(func) => {
            func.path.as_deref().is_some_and(|p| p.starts_with(prefix))
                || func.name.starts_with(prefix)
        }
        None => false,
    }
}
