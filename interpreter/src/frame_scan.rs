//! A future that an optimized build keeps no location for (`Runtime::block_on`'s `f`,
//! optimized out in release), found in its frame's stack: every aligned slot is tried as
//! a value of the future's type and kept only if its coroutine states hold together.
//!
//! A pinned future never moves once polled, so the live one is suspended; the stale
//! copies a move leaves behind were made before the first poll and are `Unresumed`.
//! Random stack bytes pass one state check often (a tag byte of 3 or 4), two in a row
//! rarely: a candidate must be suspended and so must every async fn it awaits, down to
//! the first future that is not one.

use crate::backtrace::is_coroutine;
use crate::dwarf::{DebugInfo, DieId, Type, TypeKind};
use crate::memory::Memory;

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
}

impl Found {
    /// How it was found, for `block_on[].found_by`: the frame of `function` was scanned
    /// because DWARF said `why`.
    pub fn how(&self, function: &str, why: &str) -> String {
        let states = if self.depth == 1 {
            "1 suspended state, the only one".to_string()
        } else {
            format!("{} suspended states in a row", self.depth)
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
    if !is_coroutine(&t) {
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
        };
        match best.as_ref().map(|b| key(b).cmp(&key(&found))) {
            Some(std::cmp::Ordering::Greater) => {}
            Some(std::cmp::Ordering::Equal) => ties += 1,
            _ => {
                best = Some(found);
                ties = 0;
            }
        }
    }
    match best {
        // One suspended state alone is what random bytes give: trusted only when no
        // other slot looks as good.
        Some(b) if b.depth >= 2 || ties == 0 => Ok(b),
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
    if !is_coroutine(&next) {
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
    let discr = vp.discr.as_ref()?;
    let mut tag = [0u8; 8];
    let size = discr
        .ty
        .and_then(|d| dbg.ty(d).ok())
        .map_or(1, |d| d.size)
        .clamp(1, 8) as usize;
    mem.read(addr.wrapping_add(discr.offset), &mut tag[..size])
        .ok()?;
    let tag = u64::from_le_bytes(tag);
    let variant = vp.variants.iter().find(|v| v.discr_value == Some(tag))?;
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

/// Checks the pointers of the struct at `addr`; false when one is unreadable.
fn pointers_in(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    addr: u64,
    t: &Type,
    nesting: usize,
    count: &mut usize,
) -> bool {
    let TypeKind::Struct {
        fields,
        variants: None,
    } = &t.kind
    else {
        return true;
    };
    for f in fields {
        if *count >= MAX_POINTERS {
            return true;
        }
        let Some(ft) = f.ty.and_then(|id| dbg.ty(id).ok()) else {
            continue;
        };
        let at = addr.wrapping_add(f.offset);
        match ft.kind {
            TypeKind::Pointer { .. } => {
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
