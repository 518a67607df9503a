//! The memory-scan root: objects found by their vtable when nothing names the executor
//! (every aligned word of writable memory that points at a table whose slot N is the
//! layout's function). A guess: run.rs keeps it only if the runtime's list holds the object.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use crate::dwarf::{DebugInfo, DieId, LinkAddr, TypeKind};
use crate::memory::Memory;
use crate::sync::lock;

/// Where to look, and what counts as "points into the executable".
#[derive(Debug, Clone, Default)]
pub struct ScanSpace {
    /// Writable memory the dump holds: heap, stacks, data.
    pub regions: Vec<(u64, u64)>,
    /// The main executable's mapped range (its vtables and code are there).
    pub image: (u64, u64),
}

/// What a matching table looks like: slot `slot` points at a function whose path starts
/// with `prefix` and, with `param`, whose template parameter of that name is a type whose
/// name contains the text.
pub struct Wanted<'a> {
    /// None: the word itself must point at the function.
    pub slot: Option<u64>,
    pub prefix: &'a str,
    pub param: Option<(&'a str, &'a str)>,
}

/// Bytes read per step of the scan: large enough to be fast, small enough to bound memory.
const CHUNK: u64 = 1 << 20;
/// Distinct candidate tables judged; past this the scan stops and says so (a corrupt dump
/// full of pointers into the binary must not make this quadratic).
const MAX_TABLES: usize = 200_000;

/// Addresses of the words that point at a matching table, at most `max` of them, and a
/// warning when the scan was cut short.
///
/// The dump is scanned a megabyte at a time on every thread (a million-task core is
/// 670 MB), and the pieces' finds joined in address order. Each distinct table is judged
/// once, in a map the threads share. If the scan meets more distinct tables than it may
/// judge (a corrupt dump full of pointers into the binary), it is done again in order,
/// so that where it stops does not depend on the threads.
pub fn vtable_refs(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    bias: u64,
    space: &ScanSpace,
    wanted: &Wanted<'_>,
    max: u64,
) -> (Vec<u64>, Option<String>) {
    let prefix = wanted.prefix;
    // Nothing can match in a binary with no type of the prefix's crate (smol's layout tried on
    // a tokio program), or none named like the wanted template parameter (a tokio program
    // without a LocalSet): skip reading the dump.
    // The prefix's crate: a function's own module may declare no type (futures-task's
    // `if_alloc` holds only impls).
    let module = prefix.split("::").next().unwrap_or(prefix);
    let has = |text: &str| dbg.index().type_names().any(|n| n.contains(text));
    if !has(module) || wanted.param.is_some_and(|(_, text)| !has(text)) {
        return (Vec::new(), None);
    }
    let judge = |table: u64| slot_matches(dbg, mem, bias, table, wanted, space.image);
    refs_by(mem, space, wanted, max, &judge)
}

/// `vtable_refs` with `judge` saying whether a candidate table matches.
fn refs_by(
    mem: &dyn Memory,
    space: &ScanSpace,
    wanted: &Wanted<'_>,
    max: u64,
    judge: &(dyn Fn(u64) -> bool + Sync),
) -> (Vec<u64>, Option<String>) {
    use rayon::prelude::*;
    let pieces = pieces(&space.regions);
    let shared: Mutex<FxHashMap<u64, bool>> = Mutex::default();
    let found: Vec<Option<Vec<u64>>> = pieces
        .par_iter()
        .map_init(FxHashMap::default, |seen, &(at, len)| {
            let mut found = Vec::new();
            let mut judged = |table: u64| {
                if let Some(&hit) = seen.get(&table) {
                    return Some(hit);
                }
                let known = lock(&shared).get(&table).copied();
                let hit = match known {
                    Some(hit) => hit,
                    None => {
                        let hit = judge(table);
                        let mut all = lock(&shared);
                        if all.len() >= MAX_TABLES {
                            return None;
                        }
                        all.insert(table, hit);
                        hit
                    }
                };
                seen.insert(table, hit);
                Some(hit)
            };
            scan_piece(
                mem,
                space.image,
                wanted,
                (at, len),
                max,
                &mut judged,
                &mut found,
            )
            .then_some(found)
        })
        .collect();
    let Some(found) = found.into_iter().collect::<Option<Vec<_>>>() else {
        return in_order(mem, space, wanted, max, judge, &pieces);
    };
    let mut found: Vec<u64> = found.into_iter().flatten().collect();
    if found.len() as u64 >= max {
        found.truncate(usize::try_from(max).unwrap_or(usize::MAX));
        return (found, Some(cut_at_items(max)));
    }
    (found, None)
}

/// The scan one piece after the other, with one map of the tables judged: where the cap
/// of distinct tables stops it is the same on any machine.
fn in_order(
    mem: &dyn Memory,
    space: &ScanSpace,
    wanted: &Wanted<'_>,
    max: u64,
    judge: &dyn Fn(u64) -> bool,
    pieces: &[(u64, usize)],
) -> (Vec<u64>, Option<String>) {
    let mut seen: FxHashMap<u64, bool> = Default::default();
    let mut judged = |table: u64| {
        if let Some(&hit) = seen.get(&table) {
            return Some(hit);
        }
        if seen.len() >= MAX_TABLES {
            return None;
        }
        let hit = judge(table);
        seen.insert(table, hit);
        Some(hit)
    };
    let mut found = Vec::new();
    for &piece in pieces {
        if !scan_piece(
            mem,
            space.image,
            wanted,
            piece,
            max,
            &mut judged,
            &mut found,
        ) {
            return (
                found,
                Some(format!(
                    "memory scan stopped after judging {MAX_TABLES} candidate tables"
                )),
            );
        }
        if found.len() as u64 >= max {
            return (found, Some(cut_at_items(max)));
        }
    }
    (found, None)
}

fn cut_at_items(max: u64) -> String {
    format!("memory scan stopped at {max} objects (--limit-items)")
}

/// The writable regions in pieces of at most `CHUNK` bytes (8-aligned), in address order.
fn pieces(regions: &[(u64, u64)]) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    for &(start, end) in regions {
        let mut at = start.next_multiple_of(8);
        while at < end {
            let len = (end - at).min(CHUNK) as usize & !7;
            if len == 0 {
                break;
            }
            out.push((at, len));
            at += len as u64;
        }
    }
    out
}

/// Adds to `found` the words of one piece that point at a matching table, stopping at
/// `max` finds. False when `judged` refuses a new table (the cap of distinct tables).
fn scan_piece(
    mem: &dyn Memory,
    (lo, hi): (u64, u64),
    wanted: &Wanted<'_>,
    (at, len): (u64, usize),
    max: u64,
    judged: &mut impl FnMut(u64) -> Option<bool>,
    found: &mut Vec<u64>,
) -> bool {
    let mut buf = Vec::new();
    // In place where the dump maps it; copied only where it does not.
    let chunk = match mem.slice(at, len) {
        Some(bytes) => bytes,
        None => {
            buf.resize(len, 0);
            match mem.read(at, &mut buf) {
                Ok(()) => &buf[..],
                Err(_) => return true,
            }
        }
    };
    for (i, word) in chunk.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(word.try_into().unwrap_or_default());
        // A table is 8-aligned; a function need not be.
        if v < lo || v >= hi || (wanted.slot.is_some() && v % 8 != 0) {
            continue;
        }
        match judged(v) {
            None => return false,
            Some(true) => {
                found.push(at + 8 * i as u64);
                if found.len() as u64 >= max {
                    return true;
                }
            }
            Some(false) => {}
        }
    }
    true
}

/// Whether slot `slot` of the table at `table` points at a function whose path (or DWARF
/// name) starts with `prefix`.
fn slot_matches(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    bias: u64,
    table: u64,
    wanted: &Wanted<'_>,
    (lo, hi): (u64, u64),
) -> bool {
    let f = match wanted.slot {
        None => table,
        Some(slot) => {
            let Some(at) = slot.checked_mul(8).and_then(|o| table.checked_add(o)) else {
                return false;
            };
            let Ok(f) = mem.read_u64_le(at) else {
                return false;
            };
            f
        }
    };
    if f < lo || f >= hi {
        return false;
    }
    let Some(func) = dbg.function_at(LinkAddr(f.wrapping_sub(bias))) else {
        return false;
    };
    let named = func
        .path
        .as_deref()
        .is_some_and(|p| p.starts_with(wanted.prefix))
        || func.name.starts_with(wanted.prefix);
    named
        && wanted.param.is_none_or(|(name, text)| {
            func.template_params
                .iter()
                .find(|(n, _)| &**n == name)
                .and_then(|(_, ty)| dbg.ty(*ty).ok())
                .is_some_and(|t| t.name.contains(text))
        })
}

/// The type a scan root finds and the offset of its vtable field.
pub fn object_field(dbg: &DebugInfo, object: &str, field: &str) -> Result<(DieId, u64), String> {
    let ty = dbg
        .type_named(object)
        .ok_or_else(|| format!("no type named `{object}` in the debug info"))?;
    let t = dbg.ty(ty).map_err(|e| e.to_string())?;
    let TypeKind::Struct { fields, .. } = &t.kind else {
        return Err(format!("`{object}` is not a struct"));
    };
    let f = fields
        .iter()
        .find(|f| &*f.name == field)
        .ok_or_else(|| format!("type `{object}` has no field `{field}`"))?;
    Ok((ty, f.offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;

    /// `words` at 0x10000 (a writable region), the image at 0x100000..0x900000.
    fn space(words: &[u64]) -> (SliceMemory, ScanSpace) {
        let mut mem = SliceMemory::new();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        mem.insert(0x10000, bytes);
        let space = ScanSpace {
            regions: vec![(0x10000, 0x10000 + 8 * words.len() as u64)],
            image: (0x100000, 0x900000),
        };
        (mem, space)
    }

    const WANTED: Wanted<'static> = Wanted {
        slot: Some(0),
        prefix: "",
        param: None,
    };

    /// What the scan finds, in parallel, is what it finds in order: the same words, cut at
    /// the same `max`, over pieces of a megabyte.
    #[test]
    fn the_scan_in_parallel_finds_what_it_finds_in_order() {
        // 3 MB of words: a table every 5th word, tables on a 64-byte grid match.
        let words: Vec<u64> = (0..400_000u64)
            .map(|i| {
                if i % 5 == 0 {
                    0x100000 + (i % 4096) * 8
                } else {
                    i
                }
            })
            .collect();
        let (mem, space) = space(&words);
        let judge = |t: u64| t.is_multiple_of(64);
        let pieces = pieces(&space.regions);
        assert_eq!(pieces.len(), 4);
        for max in [u64::MAX, 70_000, 3, 1] {
            let ours = refs_by(&mem, &space, &WANTED, max, &judge);
            let in_order = in_order(&mem, &space, &WANTED, max, &judge, &pieces);
            assert_eq!(ours, in_order, "max {max}");
        }
        let (all, cut) = refs_by(&mem, &space, &WANTED, u64::MAX, &judge);
        assert_eq!((all.len(), cut), (10_000, None));
        let (some, cut) = refs_by(&mem, &space, &WANTED, 3, &judge);
        assert_eq!(some, vec![0x10000, 0x10000 + 8 * 40, 0x10000 + 8 * 80]);
        assert!(cut.unwrap().contains("stopped at 3 objects"));
    }

    /// Past the cap of distinct tables the scan stops where the scan in order stops, with
    /// the same finds and warning.
    #[test]
    fn too_many_distinct_tables_stop_the_scan_where_it_stops_in_order() {
        let words: Vec<u64> = (0..MAX_TABLES as u64 + 1000)
            .map(|i| 0x100000 + i * 8)
            .collect();
        let (mem, space) = space(&words);
        let judge = |t: u64| t.is_multiple_of(4096);
        let pieces = pieces(&space.regions);
        let ours = refs_by(&mem, &space, &WANTED, u64::MAX, &judge);
        assert_eq!(
            ours,
            in_order(&mem, &space, &WANTED, u64::MAX, &judge, &pieces)
        );
        assert!(ours.1.unwrap().contains("after judging"));
        assert_eq!(ours.0.len(), MAX_TABLES.div_ceil(512));
    }
}
