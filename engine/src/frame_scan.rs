//! A future an optimized build keeps no location for (`block_on`'s `f`), found in its
//! frame's stack: every aligned slot is tried as the future and kept only if its states
//! and the values they hold hold together.

use crate::dwarf::{DebugInfo, DieId, Type, TypeKind};
use crate::memory::Memory;

// A pinned future never moves once polled, so the live one is suspended; the copies a
// move leaves behind were made before the first poll and are `Unresumed`. Stack bytes
// pass one state check often (a tag byte of 3 or 4), two in a row rarely.

/// Stack scanned at most (a frame's size; `block_on`'s is a few KiB).
const MAX_FRAME: u64 = 1 << 20;
/// Await levels checked per candidate.
const MAX_DEPTH: usize = 16;

/// Where the future is, and how sure the scan is of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub addr: u64,
    pub ty: DieId,
    /// Suspended async fns in a row from the candidate down (at least 1).
    pub depth: usize,
    /// Pointers among the values its outermost state holds that point into the dump.
    pub pointers: usize,
    /// Other slots that look as good and hold the same bytes: a copy of the future left
    /// in the frame, which would show the same backtrace.
    pub copies: usize,
}

impl Found {
    /// How it was found, for `block_on[].found_by`: the frame of `function` was scanned
    /// because DWARF said `why`.
    pub fn how(&self, function: &str, why: &str) -> String {
        let states = match (self.depth, self.copies) {
            (1, 0) => "1 suspended state, the only one".to_string(),
            (1, n) => format!(
                "1 suspended state; {n} more slot{} hold the same bytes, the first is shown",
                if n == 1 { "" } else { "s" }
            ),
            (d, _) => format!("{d} suspended states in a row"),
        };
        format!("a scan of `{function}`'s stack frame ({why}; validated by {states})")
    }
}

/// Levels of nested structs whose pointers are checked in a candidate's state.
const MAX_POINTER_NESTING: usize = 6;
/// Pointers checked per candidate.
const MAX_POINTERS: usize = 64;

/// The future of the type `declared` (the local's type: `Pin<&mut F>`, `&mut F` or `F`)
/// in the stack between `sp` and `cfa`.
pub fn find_future(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    sp: u64,
    cfa: Option<u64>,
    declared: DieId,
) -> Result<Found, String> {
    let ty = pointee(dbg, declared)?;
    let t = dbg.ty(ty).map_err(|e| e.to_string())?;
    if !t.is_coroutine() {
        return Err(format!(
            "`{}` is not an async fn or block: a copy on the stack cannot be told from the live one",
            t.name
        ));
    }
    let end = cfa.ok_or("the frame's extent is unknown (no CFA)")?;
    let len = end
        .checked_sub(sp)
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| {
            format!("the frame's extent {sp:#x}..{end:#x} is implausible for a stack frame")
        })?;
    let mut stack = vec![0u8; len as usize];
    mem.read(sp, &mut stack)
        .map_err(|e| format!("the frame's stack is not in the dump: {e}"))?;
    let mut best: Option<Found> = None;
    let mut ties = 0;
    // Ties whose bytes differ from the best's: those are what cannot be told apart.
    let mut differing = 0;
    // A future passed by value may sit partly in the caller's frame: read it whole.
    let size = usize::try_from(t.size.min(MAX_FRAME)).unwrap_or(0);
    let bytes = |addr: u64| {
        let mut b = vec![0u8; size];
        mem.read(addr, &mut b).ok().map(|()| b)
    };
    for off in (0..len).step_by(8) {
        let addr = sp + off;
        let depth = suspended_depth(dbg, mem, &stack, sp, addr, &t, 0);
        if depth == 0 {
            continue;
        }
        // The values the state holds: a pointer among them into memory the dump lacks
        // (random stack bytes) rules the slot out.
        let Some(pointers) = state_pointers(dbg, mem, addr, &t) else {
            continue;
        };
        let key = |f: &Found| (f.depth, f.pointers);
        let found = Found {
            addr,
            ty,
            depth,
            pointers,
            copies: 0,
        };
        match best.as_ref().map(|b| key(b).cmp(&key(&found))) {
            Some(std::cmp::Ordering::Greater) => {}
            Some(std::cmp::Ordering::Equal) => {
                ties += 1;
                let same = best
                    .as_ref()
                    .and_then(|b| Some(bytes(b.addr)? == bytes(addr)?))
                    .unwrap_or(false);
                if !same {
                    differing += 1;
                }
            }
            _ => {
                best = Some(found);
                ties = 0;
                differing = 0;
            }
        }
    }
    match best {
        // One suspended state alone is what random bytes give: trusted only when no
        // other slot looks as good, or those that do are byte for byte the same future
        // (a copy the frame keeps shows the same backtrace).
        Some(b) if b.depth >= 2 || differing == 0 => Ok(Found { copies: ties, ..b }),
        Some(_) => Err(format!(
            "{} slots of the frame look like a suspended `{}` (one await deep, as many pointers into the dump): not told apart",
            ties + 1,
            t.name
        )),
        None => Err(format!("no suspended `{}` in the frame's stack", t.name)),
    }
}

/// `Pin<&mut F>`, `&mut F`: F.
fn pointee(dbg: &DebugInfo, mut ty: DieId) -> Result<DieId, String> {
    for _ in 0..4 {
        let t = dbg.ty(ty).map_err(|e| e.to_string())?;
        ty = match &t.kind {
            TypeKind::Pointer { pointee: Some(p) } => *p,
            TypeKind::Struct {
                fields,
                variants: None,
            } if t.name.starts_with("core::pin::Pin<") => fields
                .iter()
                .find(|f| &*f.name == "pointer")
                .and_then(|f| f.ty)
                .ok_or_else(|| format!("`{}` has no pointer", t.name))?,
            _ => return Ok(ty),
        };
    }
    Ok(ty)
}

/// How many suspended async fns in a row start at `addr` (0: the candidate is not one).
fn suspended_depth(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    stack: &[u8],
    stack_start: u64,
    addr: u64,
    t: &Type,
    depth: usize,
) -> usize {
    let TypeKind::Struct {
        variants: Some(vp), ..
    } = &t.kind
    else {
        return depth;
    };
    let Some(discr) = &vp.discr else { return 0 };
    let size = discr
        .ty
        .and_then(|d| dbg.ty(d).ok())
        .map_or(1, |d| d.size)
        .clamp(1, 8) as usize;
    let mut tag = [0u8; 8];
    let at = addr.wrapping_add(discr.offset);
    // From the stack copy where it lies there, else from the dump (an awaitee in a box).
    let read = match at
        .checked_sub(stack_start)
        .and_then(|o| usize::try_from(o).ok())
        .and_then(|o| stack.get(o..o.checked_add(size)?))
    {
        Some(bytes) => {
            tag[..size].copy_from_slice(bytes);
            true
        }
        None => mem.read(at, &mut tag[..size]).is_ok(),
    };
    if !read {
        return 0;
    }
    let tag = u64::from_le_bytes(tag);
    // 0 Unresumed, 1 Returned, 2 Panicked, 3 + k Suspend k.
    let Some(variant) = vp
        .variants
        .iter()
        .find(|v| v.discr_value == Some(tag) && tag >= 3)
    else {
        return 0;
    };
    let depth = depth + 1;
    if depth >= MAX_DEPTH {
        return depth;
    }
    let Some(state) = variant.field.ty.and_then(|s| dbg.ty(s).ok()) else {
        return depth;
    };
    let TypeKind::Struct { fields, .. } = &state.kind else {
        return depth;
    };
    let Some(awaitee) = fields.iter().find(|f| &*f.name == "__awaitee") else {
        return depth;
    };
    let Some(next) = awaitee.ty.and_then(|a| dbg.ty(a).ok()) else {
        return depth;
    };
    if !next.is_coroutine() {
        return depth;
    }
    let next_addr = addr
        .wrapping_add(variant.field.offset)
        .wrapping_add(awaitee.offset);
    // An awaited async fn that is not suspended (0) means the candidate is not live.
    suspended_depth(dbg, mem, stack, stack_start, next_addr, &next, depth)
}

/// How many non-null pointers the active state of the coroutine at `addr` holds (through
/// nested structs), all of them into memory the dump has; None if one points elsewhere.
fn state_pointers(dbg: &DebugInfo, mem: &dyn Memory, addr: u64, t: &Type) -> Option<usize> {
    let TypeKind::Struct {
        variants: Some(vp), ..
    } = &t.kind
    else {
        return Some(0);
    };
    let variant = active_variant(dbg, mem, addr, vp)?;
    let state = dbg.ty(variant.field.ty?).ok()?;
    let mut count = 0;
    pointers_in(
        dbg,
        mem,
        addr.wrapping_add(variant.field.offset),
        &state,
        0,
        &mut count,
    )
    .then_some(count)
}

/// The variant of the enum at `addr` its tag selects: the one with that value, else the
/// one for every other value; None when the tag is unreadable or selects none.
fn active_variant<'v>(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    addr: u64,
    vp: &'v crate::dwarf::VariantPart,
) -> Option<&'v crate::dwarf::Variant> {
    let Some(discr) = vp.discr.as_ref() else {
        // A lone variant needs no tag.
        return (vp.variants.len() == 1).then(|| &vp.variants[0]);
    };
    let mut tag = [0u8; 8];
    let size = discr
        .ty
        .and_then(|d| dbg.ty(d).ok())
        .map_or(1, |d| d.size)
        .clamp(1, 8) as usize;
    mem.read(addr.wrapping_add(discr.offset), &mut tag[..size])
        .ok()?;
    vp.select(u64::from_le_bytes(tag)).map(|(_, v)| v)
}

/// Checks the pointers of the value at `addr` (of an enum, its active variant's); false
/// when one is unreadable or a tag selects no variant.
fn pointers_in(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    addr: u64,
    t: &Type,
    nesting: usize,
    count: &mut usize,
) -> bool {
    let TypeKind::Struct { fields, variants } = &t.kind else {
        return true;
    };
    if let Some(vp) = variants {
        // An enum: its tag must name a variant (stack bytes often do not), whose fields
        // hold together in turn.
        let Some(variant) = active_variant(dbg, mem, addr, vp) else {
            return false;
        };
        let Some(vt) = variant.field.ty.and_then(|v| dbg.ty(v).ok()) else {
            return true;
        };
        return nesting >= MAX_POINTER_NESTING
            || pointers_in(
                dbg,
                mem,
                addr.wrapping_add(variant.field.offset),
                &vt,
                nesting + 1,
                count,
            );
    }
    for f in fields {
        if *count >= MAX_POINTERS {
            return true;
        }
        let Some(ft) = f.ty.and_then(|id| dbg.ty(id).ok()) else {
            continue;
        };
        let at = addr.wrapping_add(f.offset);
        match ft.kind {
            TypeKind::Pointer { pointee } => {
                let mut word = [0u8; 8];
                if mem.read(at, &mut word).is_err() {
                    return false;
                }
                let target = u64::from_le_bytes(word);
                if target == 0 {
                    continue;
                }
                let mut byte = [0u8; 1];
                if mem.read(target, &mut byte).is_err() {
                    return false;
                }
                *count += 1;
                // What it points at must hold together too: stack bytes that pass for a
                // state (a tag, readable words) rarely point at a struct whose own
                // pointers are readable.
                let target_type = pointee.and_then(|p| dbg.ty(p).ok());
                if let Some(pt) = target_type
                    && nesting < MAX_POINTER_NESTING
                    && !pointers_in(dbg, mem, target, &pt, nesting + 1, count)
                {
                    return false;
                }
            }
            TypeKind::Struct { .. }
                if nesting < MAX_POINTER_NESTING
                    && !pointers_in(dbg, mem, at, &ft, nesting + 1, count) =>
            {
                return false;
            }
            _ => {}
        }
    }
    true
}
