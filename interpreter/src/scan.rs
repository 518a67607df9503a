//! The memory-scan root: finds objects by their vtable when nothing names the executor
//! (a smol `Executor` held in an optimized-out local of `main`). Every aligned word of
//! the dump's writable memory that points into the main executable is a candidate
//! vtable; it is kept when the table's slot `N` points at a function whose path starts
//! with the layout's prefix (async-task's `RawTask<…>::run`). Each distinct table is
//! judged once. What the scan yields is a guess: run.rs accepts a runtime found this way
//! only if that runtime's own task list contains the object that led to it.

use crate::dwarf::{DebugInfo, DieId, LinkAddr, TypeKind};
use crate::memory::Memory;

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
    let (lo, hi) = space.image;
    let mut judged: rustc_hash::FxHashMap<u64, bool> = Default::default();
    let mut found = Vec::new();
    let mut buf = vec![0u8; CHUNK as usize];
    for &(start, end) in &space.regions {
        let mut at = start.next_multiple_of(8);
        while at < end {
            let len = (end - at).min(CHUNK) as usize & !7;
            if len == 0 {
                break;
            }
            // In place where the dump maps it (a million-task core is 670 MB to scan).
            let chunk = match mem.slice(at, len) {
                Some(bytes) => Some(bytes),
                None => mem.read(at, &mut buf[..len]).ok().map(|()| &buf[..len]),
            };
            if let Some(chunk) = chunk {
                for (i, word) in chunk.chunks_exact(8).enumerate() {
                    let v = u64::from_le_bytes(word.try_into().unwrap_or_default());
                    // A table is 8-aligned; a function need not be.
                    if v < lo || v >= hi || (wanted.slot.is_some() && v % 8 != 0) {
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
                            let h = slot_matches(dbg, mem, bias, v, wanted, (lo, hi));
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
