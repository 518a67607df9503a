//! The crash itself: which thread crashed and why (the signal from the dump, or a Rust
//! panic found on a thread's stack: its message and location), the task that thread was
//! running, and a stable signature that groups dumps of the same crash.

use std::fmt::Write as _;

use layoutdump_lang::Program;

use crate::dwarf::{FrameRegs, LinkAddr};
use crate::eval::{Evaluator, Value};
use crate::report::{CrashReport, FieldValue, Report, SourceRef};
use crate::run::ThreadContext;

/// A panic found in a panic hook's frame on some thread.
#[derive(Debug, Clone)]
pub struct PanicFound {
    pub tid: u32,
    pub message: Option<String>,
    pub location: Option<SourceRef>,
}

/// The type of the argument every panic hook receives; found in any frame that has it.
const HOOK_INFO: &str = "&std::panic::PanicHookInfo";

/// Looks for a `&PanicHookInfo` local or argument in the frames of every thread (a panic
/// hook, ours or std's default, is running): its payload is the message, its location
/// where `panic!` was called.
/// The panic on the threads whose stacks show std's panic machinery (`threads[].panicking`):
/// its hook's argument in a frame, else an object shaped like one on the stack. Returns
/// it and what the search warned about.
pub fn search(
    program: &layoutdump_lang::Program,
    dbg: &crate::dwarf::DebugInfo,
    mem: &dyn crate::memory::Memory,
    bias: u64,
    limits: crate::eval::Limits,
    threads: &[ThreadContext],
) -> (Option<PanicFound>, Vec<String>) {
    if !threads.iter().any(|t| t.panicking) {
        return (None, Vec::new());
    }
    let ev = Evaluator::new(program, dbg, mem, bias, limits);
    let found = find_panic(&ev, threads).or_else(|| scan_for_panic(&ev, threads));
    let warnings = std::mem::take(&mut *ev.warnings.borrow_mut());
    (found, warnings)
}

pub fn find_panic(ev: &Evaluator<'_>, threads: &[ThreadContext]) -> Option<PanicFound> {
    for t in threads.iter().filter(|t| is_panicking(ev, t)) {
        for frame in &t.frames {
            let pc = LinkAddr(frame.lookup_pc.wrapping_sub(ev.bias));
            let Some(f) = ev.dbg.function_at(pc) else {
                continue;
            };
            let Ok(locals) = ev.dbg.locals(f.die, pc) else {
                continue;
            };
            for local in locals {
                let Some(ty) = local.ty else { continue };
                if ev.ty(ty).map(|t| &*t.name == HOOK_INFO) != Ok(true) {
                    continue;
                }
                let regs = FrameRegs {
                    sp: frame.sp,
                    bp: frame.bp,
                    cfa: frame.cfa,
                };
                let Ok(addr) = ev
                    .dbg
                    .local_address(f.die, &local, pc, regs, ev.mem, ev.bias)
                else {
                    continue;
                };
                let info = match ev.deref(Value::Place { addr, ty }) {
                    Ok(info) => info,
                    Err(_) => continue,
                };
                return Some(PanicFound {
                    tid: t.tid,
                    message: message(ev, &info),
                    location: location(ev, &info),
                });
            }
        }
    }
    None
}

/// Whether std's panic machinery is on this thread's stack (its symbolized frames say
/// so): only such threads are searched and scanned for a panic, which keeps a dump
/// without a panic cheap and a stale PanicHookInfo-shaped object from being taken for one.
fn is_panicking(_ev: &Evaluator<'_>, t: &ThreadContext) -> bool {
    t.panicking
}

/// How far above a thread's stack pointer the stack scan looks for a `PanicHookInfo`.
const SCAN_BYTES: u64 = 256 * 1024;

/// Optimized builds keep the hook's `info` argument in a register; the `PanicHookInfo`
/// itself is a temporary in `rust_panic_with_hook`'s frame, on the stack. Scan each
/// thread's stack for an object shaped like one: its `location` points at a `Location`
/// whose file name is readable text ending in `.rs`, and its payload's vtable gives the
/// size of a `&str` or a `String`.
pub fn scan_for_panic(ev: &Evaluator<'_>, threads: &[ThreadContext]) -> Option<PanicFound> {
    let ty = ev.dbg.type_named("std::panic::PanicHookInfo")?;
    let t = ev.ty(ty).ok()?;
    let crate::dwarf::TypeKind::Struct { fields, .. } = &t.kind else {
        return None;
    };
    let offset = |name: &str| fields.iter().find(|f| &*f.name == name).map(|f| f.offset);
    let (payload_at, location_at) = (offset("payload")?, offset("location")?);
    for th in threads.iter().filter(|t| is_panicking(ev, t)) {
        let Some(sp) = th.frames.first().map(|f| f.sp) else {
            continue;
        };
        // Read the stack in pieces: its top may be short of SCAN_BYTES.
        let mut base = sp & !7;
        while base < sp.saturating_add(SCAN_BYTES) {
            let Ok(chunk) = ev.mem.read_vec(base, 4096, 4096) else {
                break;
            };
            for i in (0..chunk.len().saturating_sub(32)).step_by(8) {
                let at = base + i as u64;
                let word = |off: u64| {
                    let o = i + off as usize;
                    chunk
                        .get(o..o + 8)
                        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                };
                let (Some(loc), Some(vt)) = (word(location_at), word(payload_at + 8)) else {
                    continue;
                };
                if !plausible_location(ev, loc)
                    || !matches!(ev.mem.read_u64_le(vt.wrapping_add(8)), Ok(16 | 24))
                {
                    continue;
                }
                let info = Value::Place { addr: at, ty };
                let found = PanicFound {
                    tid: th.tid,
                    message: message(ev, &info),
                    location: location(ev, &info),
                };
                if found.message.is_some() {
                    return Some(found);
                }
            }
            base += 4096;
        }
    }
    None
}

/// A `core::panic::Location` at `addr`: a file name of readable text ending in `.rs`.
fn plausible_location(ev: &Evaluator<'_>, addr: u64) -> bool {
    let (Ok(ptr), Ok(len)) = (
        ev.mem.read_u64_le(addr),
        ev.mem.read_u64_le(addr.wrapping_add(8)),
    ) else {
        return false;
    };
    if len == 0 || len > 4096 {
        return false;
    }
    matches!(ev.mem.read_vec(ptr, len, 4096), Ok(b) if b.ends_with(b".rs") && std::str::from_utf8(&b).is_ok())
}

/// The payload, a `&dyn Any`: its concrete type (from the vtable) is `&str` for
/// `panic!("literal")` and `String` for a formatted message, which std formats before
/// calling the hook. Both read through the std views' `show`.
fn message(ev: &Evaluator<'_>, info: &Value) -> Option<String> {
    let payload = ev.field(info.clone(), "payload").ok()?;
    let data = ev
        .to_int(&ev.field(payload.clone(), "pointer").ok()?)
        .ok()? as u64;
    let vtable = ev.to_int(&ev.field(payload, "vtable").ok()?).ok()? as u64;
    // The payload's vtable is usually std's, and std ships without type debug info: then
    // tell the two payload types apart by the size in the vtable's second word.
    let ty = ev
        .dbg
        .vtable_type(LinkAddr(vtable.wrapping_sub(ev.bias)))
        .or_else(|| match ev.mem.read_u64_le(vtable.wrapping_add(8)).ok()? {
            24 => ev.dbg.type_named("alloc::string::String"),
            16 => ev.dbg.type_named("&str"),
            _ => None,
        })?;
    match ev.show(&Value::Place { addr: data, ty })? {
        Ok(Value::Str(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn location(ev: &Evaluator<'_>, info: &Value) -> Option<SourceRef> {
    let loc = ev.field(info.clone(), "location").ok()?;
    let line = ev.to_int(&ev.field(loc.clone(), "line").ok()?).ok()?;
    // `filename` is a `NonNull<str>`: a (data, length) pair.
    let name = ev.field(ev.field(loc, "filename").ok()?, "pointer").ok()?;
    let data = ev.to_int(&ev.field(name.clone(), "data_ptr").ok()?).ok()? as u64;
    let len = ev.to_int(&ev.field(name, "length").ok()?).ok()? as u64;
    let bytes = ev.mem.read_vec(data, len, 4096).ok()?;
    Some(SourceRef {
        file: Some(String::from_utf8_lossy(&bytes).into()),
        line: line as u64,
    })
}

/// The stable signature of a crash, and the lines it was computed from:
/// `panic <file>` (crate-relative, no line), then the crashing thread's own functions
/// innermost first (not the layouts' `runtime_code`), then the crashing task's async
/// functions root first. FNV-1a 64 of
/// those lines, joined by newlines, in hex. No addresses, no line numbers, no ids: the
/// same crash in another process, build or task gives the same signature.
pub fn signature(program: &Program, report: &Report, crash: &CrashReport) -> (String, Vec<String>) {
    let mut lines = Vec::new();
    if let Some(p) = &crash.panic {
        if let Some(file) = p.location.as_ref().and_then(|l| l.file.as_deref()) {
            lines.push(format!(
                "panic {}",
                crate::backtrace::display_path(&file.into())
            ));
        }
    } else if let Some(sig) = crash.signal {
        lines.push(format!("signal {sig}"));
    }
    if let Some(t) = report.threads.iter().find(|t| Some(t.tid) == crash.thread) {
        for f in &t.frames {
            if let Some(name) = &f.function
                && !f.runtime
                && !lines.iter().any(|l| l == &format!("fn {name}"))
            {
                lines.push(format!("fn {name}"));
            }
        }
    }
    if let Some(id) = crash.task {
        let task = report.task_by_id(id);
        for f in task
            .as_ref()
            .map(|t| t.backtrace.as_slice())
            .unwrap_or_default()
        {
            if !program.is_runtime_code(&f.function) {
                lines.push(format!("await {}", f.function));
            }
        }
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lines.join("\n").bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut hex = String::new();
    let _ = write!(hex, "{hash:016x}");
    (hex, lines)
}

/// The crash section of a report, when there is a crash to report: a signal recorded by
/// the dump, or a panic hook running on some thread.
pub fn crash_report(
    program: &Program,
    report: &Report,
    signal: Option<(u32, Option<u32>, Option<u64>)>,
    panic: Option<PanicFound>,
) -> Option<CrashReport> {
    if signal.is_none() && panic.is_none() {
        return None;
    }
    let thread = panic
        .as_ref()
        .map(|p| p.tid)
        .or_else(|| signal.and_then(|s| s.1));
    let crashing = thread.and_then(|tid| report.threads.iter().find(|t| t.tid == tid));
    let task = crashing
        .and_then(|t| match t.fields.get("current_task") {
            Some(FieldValue::Int(id)) => u64::try_from(*id).ok(),
            _ => None,
        })
        // Any executor: the task the thread was running (`polling::find_running`).
        .or_else(|| crashing?.running?.id)
        // A worker's own blocking task is not a task of the report: only a listed task counts.
        .filter(|id| {
            report
                .runtimes
                .iter()
                .any(|r| r.task_ids().any(|t| t == *id))
        });
    let mut crash = CrashReport {
        signal: signal.map(|s| s.0),
        fault_address: signal.and_then(|s| s.2).map(crate::report::Hex),
        thread,
        panic: panic.map(|p| crate::report::PanicReport {
            message: p.message,
            location: p.location,
        }),
        task,
        signature: String::new(),
        signature_lines: Vec::new(),
    };
    let (sig, lines) = signature(program, report, &crash);
    crash.signature = sig;
    crash.signature_lines = lines;
    Some(crash)
}
