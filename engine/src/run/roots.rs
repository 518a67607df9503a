//! What a root reads: a frame's local (evaluated in an unwound frame), a thread-local or a
//! static variable, found by its path in the debug info.

use super::ThreadContext;
use crate::dwarf::{DebugInfo, FrameRegs, LinkAddr, VarLocation};
use crate::eval::Value;
use crate::memory::Memory;

/// What a frame root found: values by thread, why frames yielded nothing, and the
/// futures found by a scan of their frame (address, how).
pub(super) type FrameLocals = (Vec<(Option<u32>, Value)>, Vec<String>, Vec<(u64, String)>);

/// `frame FUNCTION local NAME`: the local in every frame of `function` on every thread.
/// Returns the places found and, for frames where the local could not be located, why.
pub(super) fn frame_locals(
    dbg: &DebugInfo,
    mem: &dyn Memory,
    bias: u64,
    threads: &[ThreadContext],
    function: &str,
    local: &str,
) -> FrameLocals {
    let mut found = Vec::new();
    let mut misses = Vec::new();
    let mut scanned = Vec::new();
    for t in threads {
        for frame in &t.frames {
            let pc = LinkAddr(frame.lookup_pc.wrapping_sub(bias));
            let Some(f) = dbg.function_at(pc) else {
                continue;
            };
            if f.path.as_deref() != Some(function) && &*f.name != function {
                continue;
            }
            let regs = FrameRegs {
                sp: frame.sp,
                bp: frame.bp,
                cfa: frame.cfa,
            };
            let locals = match dbg.locals(f.die, pc) {
                Ok(l) => l,
                Err(e) => {
                    misses.push(format!("thread {}: {e}", t.tid));
                    continue;
                }
            };
            // A name can be bound twice in one function (`let mut f = pin!(f);` shadows
            // the parameter, whose bytes are a stale copy): the innermost binding wins.
            let Some(var) = locals.iter().rev().find(|l| &*l.name == local) else {
                let names: Vec<&str> = locals.iter().map(|l| &*l.name).collect();
                misses.push(format!(
                    "thread {}: `{function}` has no local `{local}` here (it has: {})",
                    t.tid,
                    names.join(", ")
                ));
                continue;
            };
            match (dbg.local_address(f.die, var, pc, regs, mem, bias), var.ty) {
                (Ok(addr), Some(ty)) => found.push((Some(t.tid), Value::Place { addr, ty })),
                (Ok(_), None) => misses.push(format!("thread {}: `{local}` has no type", t.tid)),
                (Err(why), None) => misses.push(format!("thread {}: {why}", t.tid)),
                // An optimized build keeps no location for it (`f` in release): the
                // future is still in this frame's stack, if it can be told apart there.
                (Err(why), Some(ty)) => {
                    match crate::frame_scan::find_future(dbg, mem, frame.sp, frame.cfa, ty) {
                        Ok(hit) => {
                            scanned.push((hit.addr, hit.how(function, &why)));
                            found.push((
                                Some(t.tid),
                                Value::Place {
                                    addr: hit.addr,
                                    ty: hit.ty,
                                },
                            ));
                        }
                        Err(scan) => misses.push(format!("thread {}: {why}; {scan}", t.tid)),
                    }
                }
            }
        }
    }
    (found, misses, scanned)
}

/// The thread-local's TLS offset and type. rustc can emit dead duplicates of a
/// `thread_local!`'s storage (a `{closure#1}` copy typed as the bare value); the copy the
/// symbol table names is the live one.
pub(super) fn tls_variable(
    dbg: &DebugInfo,
    path: &str,
) -> Result<(u64, crate::dwarf::DieId), String> {
    let vars = dbg.variables(path);
    let tls: Vec<_> = vars
        .iter()
        .filter(|v| matches!(v.location, VarLocation::Tls(_)))
        .collect();
    let chosen = tls.iter().find(|v| v.has_symbol).or_else(|| tls.first());
    match chosen {
        Some(v) => match (v.location, v.ty) {
            (VarLocation::Tls(off), Some(ty)) => Ok((off, ty)),
            _ => Err(format!(
                "thread-local `{path}` has no type in the debug info"
            )),
        },
        None if vars.is_empty() => Err(format!(
            "no variable named `{path}` in the debug info: the binary may not use this runtime, or was built without debug info for it"
        )),
        None => Err(format!("`{path}` is not a thread-local")),
    }
}
