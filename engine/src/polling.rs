//! Which future a thread is polling: the outermost async fn or block body on its stack,
//! from that frame's own parameter (the `Pin<&mut {async_fn_env#0}>` rustc leaves
//! unnamed). The task whose await chain holds it is the one the thread runs.

use crate::dwarf::{DebugInfo, FrameRegs, LinkAddr, Type, TypeKind};
use crate::memory::{Bytes, Memory};
use layoutdump_dwarf::unwind::Frame;

/// The address of the outermost coroutine that `frames` (innermost first) are polling, if
/// the debug info locates one: optimized builds often keep no location for it.
pub fn polled_future(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    bias: u64,
    frames: &[Frame],
) -> Option<u64> {
    frames
        .iter()
        .rev()
        .find_map(|frame| coroutine_self(dbg, mem, bias, frame))
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
