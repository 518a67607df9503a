//! Running a layout: evaluates its roots on every thread, matches the values they yield
//! to runtime rules, walks each runtime's tasks through the task rules, and assembles the
//! report. Runtimes are deduplicated by address, tasks by address within a runtime.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet;
use std::sync::Arc;

use layoutdump_lang::program::{RootKind, Rule, RuleKind};

use crate::dwarf::{DebugInfo, FrameRegs, LinkAddr, VarLocation};
use crate::eval::{EvalError, Evaluator, Limits, Members, Value};
use crate::memory::Memory;
use crate::report::{
    BlockOnReport, FieldValue, Fields, FutureRef, Hex, Map, RuntimeReport, TaskReport,
};
use crate::task_stream::{Listed, Listing, Pending, PendingTask, drop_on_every_thread};
use crate::unwind::Frame;

/// A thread as a root needs it.
#[derive(Debug, Clone)]
pub struct ThreadContext {
    pub tid: u32,
    /// Thread pointer (x86_64 `fs_base`).
    pub fs_base: Option<u64>,
    /// Its stack, innermost first.
    pub frames: Vec<Frame>,
    /// std's panic machinery is on its stack (`std::panicking::…` frames).
    pub panicking: bool,
}

/// What a run found, before it is joined with dump and binary facts into a `Report`.
#[derive(Debug, Default)]
pub struct Findings {
    pub runtimes: Vec<RuntimeReport>,
    /// What could not be read but does not make the report partial (a block_on future
    /// kept only in a register).
    pub notes: Vec<String>,
    pub block_on: Vec<BlockOnReport>,
    /// Futures a frame root found by scanning the frame's stack, as DWARF had no location
    /// for them: their addresses and how they were found.
    scanned_futures: Vec<(u64, String)>,
    /// Runtime address per thread id, for the threads section.
    pub thread_runtime: BTreeMap<u32, Hex>,
    /// The root members evaluated on each thread (`current_task`, …).
    pub thread_fields: BTreeMap<u32, Fields>,
    pub warnings: Vec<String>,
    pub usage: crate::explain::Usage,
    /// (runtime, task) addresses already reported: one hash lookup per task instead of a
    /// search of the runtime's list, which made 100k tasks take 40 s. A runtime whose
    /// tasks are pending is not in it (its duplicates go after sorting): a scan candidate
    /// among its tasks is skipped through the root's `listed` set first.
    listed_tasks: FxHashSet<(u64, u64)>,
    pub timings: crate::progress::Timings,
    progress: bool,
    defer_tasks: bool,
}

/// How a run goes: its bounds, whether it draws progress on stderr, and whether it
/// leaves each runtime's tasks to be read as the report is written (`deferred`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub limits: Limits,
    pub progress: bool,
    pub defer_tasks: bool,
}

/// Runs `program` against the process image `mem` (main executable loaded at `bias`).
pub fn run(
    program: &layoutdump_lang::Program,
    dbg: &DebugInfo,
    mem: &dyn Memory,
    bias: u64,
    threads: &[ThreadContext],
    scan: &crate::scan::ScanSpace,
    settings: Settings,
) -> Findings {
    let limits = settings.limits;
    let ev = Evaluator::new(program, dbg, mem, bias, limits);
    let mut out = Findings {
        progress: settings.progress,
        defer_tasks: settings.defer_tasks,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    if program.roots.is_empty() {
        out.warnings.push(format!(
            "layout `{}` declares no root: nothing to start from",
            program.name
        ));
    }
    let mut frame_notes = Vec::new();
    for (root_index, root) in program.roots.iter().enumerate() {
        let here = program.location(root.span);
        let record = |f: &mut dyn FnMut(&mut crate::explain::RootUse)| {
            if let Some(u) = ev.usage.borrow_mut().roots.get_mut(root_index) {
                f(u)
            }
        };
        let subjects: Vec<(Option<u32>, Value)> = match &root.kind {
            RootKind::Tls(path) => match tls_variable(dbg, path) {
                Err(msg) => {
                    record(&mut |u| u.error = Some(msg.to_string()));
                    out.warnings.push(format!("root at {here}: {msg}"));
                    continue;
                }
                Ok((offset, ty)) => {
                    let Some(tls) = dbg.tls_template() else {
                        out.warnings
                            .push(format!("root at {here}: the binary has no PT_TLS segment"));
                        continue;
                    };
                    let block = tls.memsz.div_ceil(tls.align).saturating_mul(tls.align);
                    let mut subjects = Vec::new();
                    let mut no_tp = 0;
                    for t in threads {
                        // x86_64 variant II: the executable's TLS block ends at the thread pointer.
                        match t.fs_base {
                            Some(tp) if tp != 0 => {
                                let addr = tp.wrapping_sub(block).wrapping_add(offset);
                                subjects.push((Some(t.tid), Value::Place { addr, ty }));
                            }
                            _ => no_tp += 1,
                        }
                    }
                    if no_tp > 0 {
                        out.warnings.push(format!(
                            "root at {here}: {no_tp} of {} threads have no thread pointer (fs_base) in the dump; their thread-locals cannot be read",
                            threads.len()
                        ));
                    }
                    subjects
                }
            },
            RootKind::Static(path) => match static_variable(dbg, path) {
                Ok((link, ty)) => vec![(
                    None,
                    Value::Place {
                        addr: link.wrapping_add(bias),
                        ty,
                    },
                )],
                Err(msg) => {
                    record(&mut |u| u.error = Some(msg.to_string()));
                    out.warnings.push(format!("root at {here}: {msg}"));
                    continue;
                }
            },
            RootKind::Scan {
                object,
                field,
                slot,
                function,
                param,
            } => {
                let (ty, offset) = match crate::scan::object_field(dbg, object, field) {
                    Ok(t) => t,
                    // A program that does not use that type (a LocalPool without the
                    // ThreadPool) has nothing to scan for: said by `check --explain`, not
                    // a warning.
                    Err(msg) => {
                        record(&mut |u| u.error = Some(msg.clone()));
                        continue;
                    }
                };
                let wanted = crate::scan::Wanted {
                    slot: *slot,
                    prefix: function,
                    param: param.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
                };
                let (found, cut) = out.timings.time("scan memory (scan roots)", || {
                    crate::scan::vtable_refs(dbg, mem, bias, scan, &wanted, limits.items)
                });
                if let Some(c) = cut {
                    out.warnings.push(format!("root at {here}: {c}"));
                }
                found
                    .into_iter()
                    .map(|a| {
                        let addr = a.wrapping_sub(offset);
                        (None, Value::Place { addr, ty })
                    })
                    .collect()
            }
            RootKind::Frame { function, local } => {
                let (found, misses, scanned) =
                    frame_locals(dbg, mem, bias, threads, function, local);
                out.scanned_futures.extend(scanned);
                // A local optimized out in some frame is said in the notes (what DWARF could
                // not tell us is never silent); it becomes a warning only if no runtime was
                // found at all.
                frame_notes.extend(misses.into_iter().map(|m| format!("root at {here}: {m}")));
                found
            }
        };
        record(&mut |u| u.subjects = subjects.len() as u64);
        let is_scan = matches!(root.kind, RootKind::Scan { .. });
        // A scan's candidates that led nowhere: one note, not one warning each.
        let mut scan_misses = 0u64;
        // Tasks already reported: a scan candidate among them needs no evaluation (its
        // runtime is known), which keeps a scan linear in the number of tasks. Made only
        // when the scan found something (tokio's LocalSet scan mostly finds nothing, and
        // a million listed tasks took 0.1 s to collect).
        let mut listed: FxHashSet<u64> = if is_scan && !subjects.is_empty() {
            out.runtimes
                .iter()
                .flat_map(|r| r.task_addresses())
                .collect()
        } else {
            Default::default()
        };
        for (tid, subject) in subjects {
            let candidate = match subject {
                Value::Place { addr, .. } if is_scan => Some(addr),
                _ => None,
            };
            if candidate.is_some_and(|c| listed.contains(&c)) {
                record(&mut |u| u.values += 1);
                continue;
            }
            // What evaluating a rejected candidate complained about (a list through freed
            // memory) is about that guess, not about the program: dropped with it.
            let ev_warnings = ev.warnings.borrow().len();
            let value = match ev.eval_with_subject(root.value, root.frame_size, subject.clone()) {
                Ok(v) => {
                    record(&mut |u| u.values += 1);
                    v
                }
                // "No runtime on this thread" is the common case, not a problem.
                Err(e) if e.is_absent() => {
                    record(&mut |u| u.absent += 1);
                    continue;
                }
                Err(e) => {
                    record(&mut |u| {
                        u.error.get_or_insert_with(|| e.to_string());
                    });
                    if is_scan {
                        scan_misses += 1;
                        ev.warnings.borrow_mut().truncate(ev_warnings);
                        continue;
                    }
                    let on = tid.map_or(String::new(), |t| format!(" on thread {t}"));
                    out.warnings.push(format!("root at {here}{on}: {e}"));
                    continue;
                }
            };
            // Facts about this thread (the task it is running): values only, an absent
            // one (no current task) is simply left out.
            if let Some(tid) = tid {
                for (name, r) in ev.eval_members(&root.members, root.frame_size, subject.clone()) {
                    if let Ok(v) = r {
                        out.thread_fields
                            .entry(tid)
                            .or_default()
                            .insert(name, field_value(&ev, &v));
                    }
                }
            }
            match root.yields {
                RuleKind::Runtime if is_scan => {
                    let Some(candidate) = candidate else { continue };
                    if add_scanned_runtime(&ev, value, candidate, &mut out) {
                        listed.extend(out.runtimes.iter().flat_map(|r| r.task_addresses()));
                    } else {
                        scan_misses += 1;
                        ev.warnings.borrow_mut().truncate(ev_warnings);
                    }
                }
                RuleKind::Runtime => add_runtime(&ev, value, tid, &mut out),
                RuleKind::Future => add_block_on(&ev, value, tid, &mut out),
                RuleKind::Task if is_scan => {
                    let Some(candidate) = candidate else { continue };
                    if add_scanned_task(&ev, root, subject, value, &mut out) {
                        listed.insert(candidate);
                    } else {
                        scan_misses += 1;
                        ev.warnings.borrow_mut().truncate(ev_warnings);
                    }
                }
                RuleKind::Task | RuleKind::Leaf | RuleKind::Holds => out.warnings.push(format!(
                    "root at {here}: only a scan root may yield tasks directly"
                )),
            }
        }
        if scan_misses > 0 {
            frame_notes.push(format!(
                "root at {here}: {scan_misses} of the objects the memory scan found were not task headers of a listed executor (copies of vtable pointers, freed tasks); they are left out"
            ));
        }
    }
    join_owner_threads(&mut out);
    for r in &mut out.runtimes {
        // A scan added tasks to a runtime whose list is pending: all are read now, so
        // that they are written in one order.
        if !r.tasks.is_empty()
            && let Some(p) = r.pending.take()
        {
            r.tasks.extend(
                p.tasks
                    .iter()
                    .filter_map(|t| listed_task_report(&ev, t).ok())
                    .map(|mut t| {
                        t.shrink();
                        t
                    }),
            );
        }
        sort_tasks(&mut r.tasks);
        r.threads.sort_unstable();
    }
    out.runtimes.sort_by(|a, b| {
        let first = |r: &RuntimeReport| {
            (r.tasks.first().map(|t| t.id))
                .or_else(|| r.pending.as_ref()?.tasks.first().map(|t| t.id))
                .flatten()
        };
        (a.kind.as_str(), first(a), a.address).cmp(&(b.kind.as_str(), first(b), b.address))
    });
    for b in &mut out.block_on {
        b.runtime = b.thread.and_then(|t| out.thread_runtime.get(&t).copied());
    }
    out.block_on.sort_by_key(|b| (b.thread, b.future.address));
    out.warnings.extend(ev.warnings.borrow().iter().cloned());
    out.usage = ev.usage.borrow().clone();
    if out.runtimes.is_empty() {
        out.warnings.extend(frame_notes.iter().cloned());
    }
    out.notes = frame_notes;
    out.notes.extend(
        ev.hook_output()
            .into_iter()
            .map(|line| format!("hook printed: {line}")),
    );
    let reading = out.timings.0.iter().map(|(_, d)| *d).sum();
    out.timings.0.insert(
        0,
        (
            "roots, runtimes (the rest)",
            started.elapsed().saturating_sub(reading),
        ),
    );
    out
}

/// Tasks by id (those without one last), then address.
fn sort_tasks(tasks: &mut [TaskReport]) {
    sort_by_id(tasks, |t| (t.id, t.address));
}

/// The tasks listed (None: not a task), by id (those without one last), then address:
/// the order `sort_tasks` gives read tasks. The keys are sorted (on every thread, merging
/// the runs they hold: tokio lists each shard's tasks newest first, so a million tasks are
/// eight descending runs) and the listing is read in their order (`Listing`). A task
/// listed twice (a corrupt list) has one id, so its copies are neighbours: kept once,
/// rather than by a million-entry hash set (0.4 s). Sorting the tasks themselves (112
/// bytes each) took a buffer as large as them; gathering them in order into a second
/// vector took 60 to 100 ms at a million tasks.
fn sort_listed(listed: Vec<Option<PendingTask>>) -> Listing {
    use rayon::prelude::*;
    // Sixteen bytes a key (id, index): the keys with the address and the missing id's
    // flag were forty, and sorting them took twice as long. A task without an id is keyed
    // as the largest id, then put after those that have it; equal ids (a corrupt dump)
    // are ordered by address.
    let mut order: Vec<(u64, usize)> = listed
        .par_iter()
        .enumerate()
        .filter_map(|(i, t)| Some((t.as_ref()?.id.unwrap_or(u64::MAX), i)))
        .collect();
    // Merge sort, which takes the runs it finds (tokio lists each shard newest first):
    // pdqsort took 45M more instructions at 116,666 tasks. The keys are distinct.
    order.par_sort();
    // Only tasks with one id can be one task listed twice: the listing itself (112 MB
    // at random) is looked at only for those.
    let task = |i: usize| listed[i].as_ref().map(|t| (t.id.is_none(), t.address));
    let mut kept = Vec::with_capacity(order.len());
    for run in order.chunk_by_mut(|a, b| a.0 == b.0) {
        if let [(_, i)] = run {
            kept.push(*i);
            continue;
        }
        run.sort_unstable_by_key(|&(_, i)| (task(i), i));
        let mut run: Vec<usize> = run.iter().map(|&(_, i)| i).collect();
        run.dedup_by_key(|&mut i| task(i).map(|(_, address)| address));
        kept.extend(run);
    }
    Listing::new(listed, kept)
}

/// Each item's (no id, id, address, index), sorted.
fn sort_keys<T: Sync>(
    items: &[T],
    key: impl Fn(&T) -> (Option<u64>, Hex) + Sync,
) -> Vec<(bool, Option<u64>, Hex, usize)> {
    use rayon::prelude::*;
    let mut order: Vec<(bool, Option<u64>, Hex, usize)> = items
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            let (id, address) = key(t);
            (id.is_none(), id, address, i)
        })
        .collect();
    order.par_sort();
    order
}

/// `items` by their tasks' ids (those without one last), then addresses. The keys are
/// sorted, and each item is then moved once to its place: sorting the reports themselves
/// moved each (240 bytes) some twenty times, which at a million tasks was seconds of
/// memmove.
fn sort_by_id<T: Send + Sync>(items: &mut [T], key: impl Fn(&T) -> (Option<u64>, Hex) + Sync) {
    let order = sort_keys(items, key);
    // order[k].3 is the index of the item that belongs at k; follow each cycle of that
    // permutation with swaps.
    let mut done = vec![false; items.len()];
    for start in 0..items.len() {
        if done[start] {
            continue;
        }
        let mut at = start;
        loop {
            done[at] = true;
            let from = order[at].3;
            if done[from] {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

/// `frame FUNCTION local NAME`: the local in every frame of `function` on every thread.
/// Returns the places found and, for frames where the local could not be located, why.
/// What a frame root found: values by thread, why frames yielded nothing, and the
/// futures found by a scan of their frame (address, how).
type FrameLocals = (Vec<(Option<u32>, Value)>, Vec<String>, Vec<(u64, String)>);

fn frame_locals(
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
fn tls_variable(dbg: &DebugInfo, path: &str) -> Result<(u64, crate::dwarf::DieId), String> {
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

fn static_variable(dbg: &DebugInfo, path: &str) -> Result<(u64, crate::dwarf::DieId), String> {
    let vars = dbg.variables(path);
    let chosen = vars
        .iter()
        .filter(|v| matches!(v.location, VarLocation::Static(_)))
        .max_by_key(|v| v.has_symbol);
    match chosen {
        Some(v) => match (v.location, v.ty) {
            (VarLocation::Static(a), Some(ty)) => Ok((a.0, ty)),
            _ => Err(format!("static `{path}` has no type in the debug info")),
        },
        None => Err(format!("no static named `{path}` in the debug info")),
    }
}

/// Follows pointers and view `deref`s from `v` until a rule of `kind` matches its type.
fn match_rule<'p>(
    ev: &Evaluator<'p>,
    kind: RuleKind,
    mut v: Value,
) -> Result<(&'p Rule, u64, Value), EvalError> {
    for _ in 0..16 {
        let Value::Place { addr, ty } = v else {
            return Err(EvalError::Other(
                "a root or task list yielded a value that is not in memory".into(),
            ));
        };
        let candidates = ev.rules_for(kind, ty)?;
        if let Some((i, rule)) = candidates
            .iter()
            .map(|&i| (i, &ev.program.rules[i]))
            .find(|(_, r)| ev.guard_holds(r, &v))
        {
            ev.usage.borrow_mut().hit(i);
            return Ok((rule, addr, v));
        }
        v = match ev.deref(v) {
            Ok(next) => next,
            // A None (a freed slab slot) or a null pointer: nothing there, not a mismatch.
            Err(e) if e.is_absent() => return Err(e),
            Err(_) => {
                let what = if kind == RuleKind::Runtime {
                    "runtime"
                } else {
                    "task"
                };
                let name = ev.ty(ty).map(|t| t.name.clone()).unwrap_or_default();
                return Err(EvalError::Other(format!(
                    "no `{what}` rule matches type `{name}`"
                )));
            }
        };
    }
    Err(EvalError::Limit {
        what: "depth",
        limit: 16,
    })
}

/// A `=> future` root: the value is a future being run outside the task system (the
/// argument of `block_on`), reported with its own async backtrace.
fn add_block_on(ev: &Evaluator<'_>, value: Value, tid: Option<u32>, out: &mut Findings) {
    // A pinned reference (`Pin<&mut F>`) or a pointer: report the future itself.
    let mut v = value;
    for _ in 0..8 {
        let Value::Place { ty, .. } = v else { return };
        let Ok(t) = ev.ty(ty) else { return };
        if crate::backtrace::is_coroutine(&t)
            || !matches!(t.kind, crate::dwarf::TypeKind::Pointer { .. })
                && !t.name.starts_with("core::pin::Pin<")
        {
            break;
        }
        match ev.deref(v.clone()) {
            Ok(next) => v = next,
            Err(_) => break,
        }
    }
    let Value::Place { addr, ty } = v else { return };
    if out.block_on.iter().any(|b| b.future.address == Hex(addr)) {
        return;
    }
    let chain = crate::backtrace::await_chain(ev, v);
    let on = tid.map_or(String::new(), |t| format!(" on thread {t}"));
    out.warnings.extend(
        chain
            .missing
            .iter()
            .map(|(what, why)| format!("block_on future{on}: {what}: {why}")),
    );
    out.block_on.push(BlockOnReport {
        thread: tid,
        runtime: None,
        future: FutureRef {
            ty: ev
                .ty(ty)
                .map(|t| t.name.clone())
                .unwrap_or_else(|_| Arc::from("")),
            address: Hex(addr),
        },
        found_by: out
            .scanned_futures
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, how)| how.clone()),
        backtrace: chain.frames,
        blocked_on: chain.blocked_on,
    });
}

/// A task found by a scan (one no list holds: an idle futures ThreadPool task is owned
/// only by its waker), added to the runtime the root's `runtime` member names. Kept only
/// if a task rule matches it (whose guard is the place to check it is live) and its
/// runtime resolves; a task already reported is not added twice.
fn add_scanned_task(
    ev: &Evaluator<'_>,
    root: &layoutdump_lang::program::Root,
    subject: Value,
    task: Value,
    out: &mut Findings,
) -> bool {
    let runtime = ev
        .eval_members(&root.members, root.frame_size, subject)
        .into_iter()
        .find(|(n, _)| *n == "runtime")
        .and_then(|(_, r)| r.ok());
    let Some(runtime) = runtime else { return false };
    let Ok(report) = task_report(ev, task) else {
        return false;
    };
    let Ok((_, addr, _)) = match_rule(ev, RuleKind::Runtime, runtime.clone()) else {
        return false;
    };
    if !out.runtimes.iter().any(|r| r.address == Hex(addr)) {
        add_runtime(ev, runtime, None, out);
    }
    let Some(rt) = out.runtimes.iter_mut().find(|r| r.address == Hex(addr)) else {
        return false;
    };
    if out.listed_tasks.insert((addr, report.address.0)) {
        rt.tasks.push(report);
        rt.fields.get_or_insert_with("found_by", || {
            FieldValue::Str("memory scan (no list holds these tasks)".into())
        });
    }
    true
}

/// A runtime reached from a memory-scan candidate: kept only if its own task list holds
/// the candidate (a stale or foreign word that happens to point at a task vtable leads to
/// a runtime that does not list it, or to none). Returns whether it was kept; a runtime
/// already found by another root is kept as it is, so nothing is counted twice.
fn add_scanned_runtime(
    ev: &Evaluator<'_>,
    value: Value,
    candidate: u64,
    out: &mut Findings,
) -> bool {
    let Ok((_, addr, _)) = match_rule(ev, RuleKind::Runtime, value.clone()) else {
        return false;
    };
    if out.runtimes.iter().any(|r| r.address == Hex(addr)) {
        return out.listed_tasks.contains(&(addr, candidate));
    }
    let before = out.runtimes.len();
    let warnings = out.warnings.len();
    add_runtime(ev, value, None, out);
    let Some(new) = out.runtimes.get_mut(before) else {
        return false;
    };
    // Its list (read or pending) must hold the candidate.
    if !new.task_addresses().any(|t| t == candidate) {
        for t in new.task_addresses() {
            out.listed_tasks.remove(&(addr, t));
        }
        out.runtimes.truncate(before);
        out.warnings.truncate(warnings);
        return false;
    }
    new.fields.insert(
        "found_by",
        FieldValue::Str("memory scan (no root names this executor)".into()),
    );
    true
}

/// The member of a runtime rule that names the thread that owns and drives the runtime,
/// matched against the root member of the same name evaluated on each thread: a tokio
/// LocalSet records the tokio thread id of the thread that created it, and each thread's
/// CONTEXT holds its own. Only a join key: taken out of the report once matched.
const OWNER_THREAD: &str = "owner_thread";

/// Lists each runtime found without a thread (by a memory scan) under the thread that
/// owns it, and says which runtime that thread runs it inside (an actix worker's LocalSet
/// inside its `current_thread` runtime).
fn join_owner_threads(out: &mut Findings) {
    let kinds: Vec<(Hex, String)> = out
        .runtimes
        .iter()
        .map(|r| (r.address, r.kind.clone()))
        .collect();
    for r in &mut out.runtimes {
        let Some(key) = r.fields.remove(OWNER_THREAD) else {
            continue;
        };
        let owners = out
            .thread_fields
            .iter()
            .filter(|(_, f)| f.get(OWNER_THREAD) == Some(&key))
            .map(|(tid, _)| *tid);
        for tid in owners {
            if !r.threads.contains(&tid) {
                r.threads.push(tid);
            }
            let inside = out.thread_runtime.get(&tid).filter(|a| **a != r.address);
            if let Some((address, kind)) = inside.and_then(|a| kinds.iter().find(|(k, _)| k == a)) {
                r.fields.insert(
                    "inside_runtime",
                    FieldValue::Str(format!("{kind} @ {:#x}", address.0)),
                );
            }
        }
    }
    for f in out.thread_fields.values_mut() {
        f.remove(OWNER_THREAD);
    }
}

fn add_runtime(ev: &Evaluator<'_>, value: Value, tid: Option<u32>, out: &mut Findings) {
    let (rule, addr, subject) = match match_rule(ev, RuleKind::Runtime, value) {
        Ok(m) => m,
        // An executor handle whose state was never allocated (a thread-local LocalExecutor
        // on a thread that never used it): no runtime there.
        Err(e) if e.is_absent() => return,
        Err(e) => {
            out.warnings.push(e.to_string());
            return;
        }
    };
    if let Some(tid) = tid {
        out.thread_runtime.insert(tid, Hex(addr));
    }
    if let Some(existing) = out.runtimes.iter_mut().find(|r| r.address == Hex(addr)) {
        existing.threads.extend(tid);
        return;
    }
    let mut report = RuntimeReport {
        kind: String::new(),
        address: Hex(addr),
        workers: None,
        threads: tid.into_iter().collect(),
        task_count: None,
        tasks: Vec::new(),
        pending: None,
        groups: None,
        fields: Fields::new(),
        unavailable: Map::new(),
    };
    let here = ev.program.location(rule.span);
    let members = out.timings.time("walk task lists", || {
        ev.eval_members(&rule.members, rule.frame_size, subject)
    });
    for (name, result) in members {
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                report.unavailable.insert(name, e.to_string());
                continue;
            }
        };
        match name {
            "kind" => report.kind = display_string(ev, &value),
            "workers" => {
                report.workers = ev.to_int(&value).ok().and_then(|n| u64::try_from(n).ok())
            }
            "task_count" => {
                report.task_count = ev.to_int(&value).ok().and_then(|n| u64::try_from(n).ok())
            }
            "tasks" => match ev.items(value) {
                Ok(items) if out.defer_tasks => {
                    let progress = crate::progress::Progress::new(
                        "listing tasks",
                        items.len() as u64,
                        out.progress,
                    );
                    let (keys, errors) = out.timings.time("list task ids (their order)", || {
                        listed_in_place(ev, &items, &progress)
                    });
                    // On every thread, as the listing is (`sort_listed`).
                    drop_on_every_thread(items);
                    for e in errors {
                        if !e.is_absent() {
                            out.warnings.push(format!("task in runtime at {here}: {e}"));
                        }
                    }
                    let pending = out
                        .timings
                        .time("order listed tasks by id", || sort_listed(keys));
                    report.pending = Some(Pending {
                        tasks: Arc::new(pending),
                        rule: here.clone(),
                        reader: None,
                        grouper: None,
                    });
                }
                Ok(items) => {
                    report.tasks.reserve_exact(items.len());
                    let chunks = over_tasks(
                        ev,
                        items,
                        out,
                        ("reading tasks", "read tasks and backtraces"),
                        task_report,
                    );
                    for result in chunks.into_iter().flatten() {
                        match result {
                            Ok(t) if !out.listed_tasks.insert((addr, t.address.0)) => {}
                            Ok(mut t) => {
                                t.shrink();
                                report.tasks.push(t);
                            }
                            // A slab's free slot (`Option<Task>` holding None) is no task.
                            Err(e) if e.is_absent() => {}
                            Err(e) => out.warnings.push(format!("task in runtime at {here}: {e}")),
                        }
                    }
                }
                Err(e) => {
                    report.unavailable.insert(name, e.to_string());
                }
            },
            _ => {
                report.fields.insert(name, field_value(ev, &value));
            }
        }
    }
    if report.kind.is_empty() {
        report.kind = "runtime".into();
    }
    if let Some(count) = report.task_count
        && count != report.task_count_listed() as u64
    {
        out.warnings.push(format!(
            "{} runtime at {:#x}: it counts {count} live tasks but {} were found in its task list",
            report.kind,
            addr,
            report.task_count_listed()
        ));
    }
    out.runtimes.push(report);
}

/// Tasks read per piece of work handed to a worker thread: large enough that making the
/// worker's evaluator (and warming its caches) is noise, small enough to balance.
const TASK_CHUNK: usize = 2048;

/// `read` of each item, in order, in chunks. A runtime's list is walked in order (it is
/// linked), but its tasks are then read in parallel: each worker has its own evaluator,
/// whose warnings, rule hits and steps are added back in chunk order, so the result does
/// not depend on the number of threads. The caller drains the chunks one by one, so the
/// results are never held twice.
pub(crate) fn per_item<T: Send>(
    ev: &Evaluator<'_>,
    items: &[Value],
    progress: &crate::progress::Progress,
    read: impl Fn(&Evaluator<'_>, Value) -> T + Sync,
) -> Vec<Vec<T>> {
    use rayon::prelude::*;
    if items.len() <= TASK_CHUNK {
        return vec![items.iter().map(|i| read(ev, i.clone())).collect()];
    }
    let seed = ev.seed();
    let chunks: Vec<_> = items
        .par_chunks(TASK_CHUNK)
        .map_init(
            || seed.evaluator(),
            |worker, chunk| {
                let results: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .map(|(at, i)| {
                        prefetch_item(worker, chunk.get(at + 4));
                        read(worker, i.clone())
                    })
                    .collect();
                progress.add(chunk.len() as u64);
                (results, worker.drain())
            },
        )
        .collect();
    chunks
        .into_iter()
        .map(|(results, spent)| {
            ev.absorb(spent);
            results
        })
        .collect()
}

/// Bytes of a task asked into the cache ahead of reading it: its header and what
/// follows (tokio's future, trailer; async-task's future), where a task's reads mostly are.
const PREFETCHED: usize = 512;

/// Starts loading the memory of `item`, read a few tasks from now (see `Memory::prefetch`).
pub(crate) fn prefetch_item(ev: &Evaluator<'_>, item: Option<&Value>) {
    if let Some(Value::Place { addr, .. }) = item {
        ev.prefetch(*addr, PREFETCHED);
    }
}

/// `task_key` of each item, in parallel as `per_item` reads them, each written into its
/// own slot of one vector (None where it failed), and the errors in item order. Listing a
/// million tasks held every chunk's results and then the list made of them; now only
/// the list.
fn listed_in_place(
    ev: &Evaluator<'_>,
    items: &[Value],
    progress: &crate::progress::Progress,
) -> (Vec<Option<PendingTask>>, Vec<EvalError>) {
    use rayon::prelude::*;
    // Made on every thread: its first touch of 112 MB (at a million tasks) is page faults.
    let mut keys: Vec<Option<PendingTask>> = Vec::new();
    (0..items.len())
        .into_par_iter()
        .map(|_| None)
        .collect_into_vec(&mut keys);
    let list = |worker: &Evaluator<'_>, slots: &mut [Option<PendingTask>], chunk: &[Value]| {
        let mut errors = Vec::new();
        for (at, (slot, item)) in slots.iter_mut().zip(chunk).enumerate() {
            prefetch_item(worker, chunk.get(at + 4));
            match task_key(worker, item.clone()) {
                Ok(t) => *slot = Some(t),
                Err(e) => errors.push(e),
            }
        }
        errors
    };
    if items.len() <= TASK_CHUNK {
        let errors = list(ev, &mut keys, items);
        return (keys, errors);
    }
    let seed = ev.seed();
    let chunks: Vec<_> = keys
        .par_chunks_mut(TASK_CHUNK)
        .zip(items.par_chunks(TASK_CHUNK))
        .map_init(
            || seed.evaluator(),
            |worker, (slots, chunk)| {
                let errors = list(worker, slots, chunk);
                progress.add(chunk.len() as u64);
                (errors, worker.drain())
            },
        )
        .collect();
    let mut errors = Vec::new();
    for (e, spent) in chunks {
        ev.absorb(spent);
        errors.extend(e);
    }
    (keys, errors)
}

/// `per_item` over a runtime's task list: a progress line saying `what` is done, and the
/// time taken added to `phase`.
fn over_tasks<T: Send>(
    ev: &Evaluator<'_>,
    items: Vec<Value>,
    out: &mut Findings,
    (what, phase): (&'static str, &'static str),
    read: impl Fn(&Evaluator<'_>, Value) -> T + Sync,
) -> Vec<Vec<T>> {
    let progress = crate::progress::Progress::new(what, items.len() as u64, out.progress);
    out.timings
        .time(phase, || per_item(ev, &items, &progress, read))
}

/// What a deferred runtime needs of a task before it is read: its id (for the order) and
/// address. The task rule's members up to `id` are evaluated, nothing else; their values
/// are kept for reading the task (`Listed`) where only `let`s come before `id`.
fn task_key(ev: &Evaluator<'_>, item: Value) -> Result<PendingTask, EvalError> {
    let (rule, addr, subject) = match_rule(ev, RuleKind::Task, item.clone())?;
    let (mut id, mut listed) = (None, Listed::default());
    if let Some(last) = rule
        .members
        .iter()
        .position(|m| m.name == "id" && !m.is_let)
    {
        let prefix = &rule.members[..=last];
        let before = ev.steps_used();
        let values = ev.eval_member_values(prefix, rule.frame_size, subject);
        let read_id = ev.steps_used();
        id = values
            .last()
            .and_then(|r| r.as_ref().ok())
            .and_then(|v| ev.to_int(v).ok())
            .and_then(|id| u64::try_from(id).ok());
        if id.is_some() && prefix[..last].iter().all(|m| m.is_let) {
            let steps = read_id.saturating_sub(before);
            listed = Listed::keep(&values, steps, ev.steps_used().saturating_sub(read_id));
        }
    }
    Ok(PendingTask {
        id,
        address: Hex(addr),
        item,
        listed,
    })
}

pub(crate) fn task_report(ev: &Evaluator<'_>, item: Value) -> Result<TaskReport, EvalError> {
    read_task_report(ev, item, None)
}

/// A listed task's report: its members up to `id` as listing it evaluated them (with the
/// steps they took then), the rest evaluated now. The same report as `task_report`.
pub(crate) fn listed_task_report(
    ev: &Evaluator<'_>,
    task: &PendingTask,
) -> Result<TaskReport, EvalError> {
    read_task_report(ev, task.item.clone(), task.id.map(|id| (id, &task.listed)))
}

fn read_task_report(
    ev: &Evaluator<'_>,
    item: Value,
    listed: Option<(u64, &Listed)>,
) -> Result<TaskReport, EvalError> {
    let (rule, addr, subject) = match_rule(ev, RuleKind::Task, item)?;
    let mut t = TaskReport::new(None, Hex(addr));
    let mut members = Members::new();
    let known = listed.is_some_and(|(id, listed)| {
        let (values, steps, id_steps) = listed.values();
        if values.is_empty()
            || !ev.eval_members_after(
                &rule.members,
                rule.frame_size,
                subject.clone(),
                (&values, steps),
                &mut members,
            )
        {
            return false;
        }
        // `id` is the first member reported: read where its result would be.
        match ev.charge_steps(id_steps) {
            Ok(()) => t.id = Some(id),
            Err(_) => {
                t.unavailable.insert("id", "not a number".into());
            }
        }
        true
    });
    if !known {
        ev.eval_members_into(&rule.members, rule.frame_size, subject, &mut members);
    }
    for (name, result) in members.drain(..) {
        let value = match result {
            Ok(v) => v,
            // A None (an unnamed task's name) is an absent fact, not missing data.
            Err(e) if e.is_absent() && !matches!(name, "id" | "state" | "future") => {
                continue;
            }
            Err(e) => {
                t.unavailable.insert(name, e.to_string());
                continue;
            }
        };
        match name {
            "id" => match ev.to_int(&value).map(u64::try_from) {
                Ok(Ok(id)) => t.id = Some(id),
                _ => {
                    t.unavailable.insert(name, "not a number".into());
                }
            },
            "state" => {
                t.state = Some(match &value {
                    // The layout's label, shared by every task in that state.
                    Value::Str(s) => s.clone(),
                    _ => display_string(ev, &value).into(),
                })
            }
            "flags" => {
                t.flags = ev
                    .items(value)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| match v {
                        Value::Str(s) => s,
                        v => display_string(ev, &v).into(),
                    })
                    .collect();
            }
            "future" => match value {
                Value::Place { addr, ty } => {
                    let chain = crate::backtrace::await_chain(ev, value.clone());
                    t.backtrace = chain.frames;
                    t.blocked_on = chain.blocked_on;
                    for (what, why) in chain.missing {
                        t.unavailable.insert(what, why);
                    }
                    t.holds = chain.holds;
                    t.future = Some(FutureRef {
                        ty: ev
                            .ty(ty)
                            .map(|t| t.name.clone())
                            .unwrap_or_else(|_| Arc::from("")),
                        address: Hex(addr),
                    })
                }
                _ => {
                    t.unavailable.insert(name, "not a value in memory".into());
                }
            },
            _ => {
                t.fields.insert(ev.name(name), field_value(ev, &value));
            }
        }
    }
    Ok(t)
}

fn display_string(ev: &Evaluator<'_>, v: &Value) -> String {
    match field_value(ev, v) {
        FieldValue::Str(s) => s,
        FieldValue::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// A member's value for the report: numbers where the value stands for one, strings,
/// lists, and otherwise the object's type and address.
/// Items of a collection shown in a report.
const FIRST_ITEMS: usize = 8;

pub(crate) fn field_value(ev: &Evaluator<'_>, v: &Value) -> FieldValue {
    field_value_depth(ev, v, 0)
}

fn field_value_depth(ev: &Evaluator<'_>, v: &Value, depth: u32) -> FieldValue {
    match v {
        Value::Int(i) => FieldValue::Int(*i),
        Value::Addr(a) => FieldValue::Address(Hex(*a)),
        Value::Str(s) => FieldValue::Str(s.to_string()),
        Value::Seq(items) => FieldValue::List(
            items
                .iter()
                .take(64)
                .map(|i| field_value_depth(ev, i, depth + 1))
                .collect(),
        ),
        Value::Place { addr, ty } => {
            if let Some(i) = ev.shown_number(*addr, *ty) {
                return FieldValue::Int(i);
            }
            // A view's `show` says how the type reads (a String's text); bounded, since a
            // `show` may name another value with a `show`.
            if depth < 4
                && let Some(Ok(shown)) = ev.show(v)
            {
                return field_value_depth(ev, &shown, depth + 1);
            }
            let t = ev.ty(*ty).ok();
            if let Some(t) = &t
                && matches!(t.kind, crate::dwarf::TypeKind::Pointer { .. })
                && let Ok(target) = crate::memory::Bytes::u64_le(ev, *addr)
            {
                return FieldValue::Address(Hex(target));
            }
            if let Some(i) = ev.to_int_ok(v) {
                return FieldValue::Int(i);
            }
            if depth < 4 {
                // A collection: its length and first items (a Vec, a slice).
                if let Some(Ok(items)) = ev.view_items(v) {
                    let first = items
                        .iter()
                        .take(FIRST_ITEMS)
                        .map(|i| field_value_depth(ev, i, depth + 1))
                        .collect();
                    return FieldValue::Collection {
                        len: items.len() as u64,
                        first,
                    };
                }
                // What a wrapper stands for (an Arc's target, a Mutex's value), where that
                // reads as a value rather than as another object.
                if let Ok(inner) = ev.deref(v.clone()) {
                    let shown = field_value_depth(ev, &inner, depth + 1);
                    if !matches!(shown, FieldValue::Object { .. }) {
                        return shown;
                    }
                }
            }
            FieldValue::Object {
                ty: t.map(|t| t.name.to_string()).unwrap_or_default(),
                address: Hex(*addr),
            }
        }
    }
}

#[cfg(test)]
mod sort_tests {
    use super::sort_tasks;
    use crate::report::{Hex, TaskReport};

    fn task(id: Option<u64>, address: u64) -> TaskReport {
        TaskReport::new(id, Hex(address))
    }

    #[test]
    fn tasks_are_ordered_by_id_then_address_with_unnumbered_last() {
        // A scrambled order with a long cycle, fixed points and ties on id.
        let ids = [7, 3, 9, 1, 3, 8, 2, 6, 5, 4];
        let mut tasks: Vec<TaskReport> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| task(Some(id), 100 - i as u64))
            .collect();
        tasks.push(task(None, 5));
        tasks.insert(4, task(None, 1));
        sort_tasks(&mut tasks);
        let got: Vec<(Option<u64>, u64)> = tasks.iter().map(|t| (t.id, t.address.0)).collect();
        let mut want = got.clone();
        want.sort_by_key(|&(id, a)| (id.is_none(), id, a));
        assert_eq!(got, want);
        assert_eq!(got[0], (Some(1), 97));
        assert_eq!(got[2], (Some(3), 96), "equal ids by address");
        assert_eq!(got[10], (None, 1));
        assert_eq!(got.len(), 12);
    }

    /// A listing as a corrupt dump can give: failures (None), tasks without an id, equal
    /// ids, and tasks listed more than once (a list that runs into another, or a shard
    /// walked twice), interleaved with the rest.
    #[test]
    fn listed_tasks_are_ordered_and_each_kept_once() {
        use super::sort_listed;
        use crate::eval::Value;
        use crate::task_stream::{Listed, PendingTask};
        let pending = |id: Option<u64>, address: u64| {
            Some(PendingTask {
                id,
                address: Hex(address),
                item: Value::Addr(address),
                listed: Listed::default(),
            })
        };
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..50 {
            let mut listed = Vec::new();
            for _ in 0..(round * 7 + 3) {
                let address = 0x1000 + next(40) * 0x80;
                // An address's id is its own (a task listed twice has one id), but
                // addresses share ids as corrupt memory may make them, and the largest id
                // is keyed as a missing one is.
                let id = match address % 0x380 {
                    0 => None,
                    0x100 => Some(u64::MAX),
                    _ => Some(address / 0x100),
                };
                listed.push(match next(10) {
                    0 => None,
                    _ => pending(id, address),
                });
            }
            let mut want: Vec<(Option<u64>, u64)> = listed
                .iter()
                .flatten()
                .map(|t| (t.id, t.address.0))
                .collect();
            want.sort_by_key(|&(id, a)| (id.is_none(), id, a));
            want.dedup();
            let got: Vec<(Option<u64>, u64)> = sort_listed(listed)
                .iter()
                .map(|t| (t.id, t.address.0))
                .collect();
            assert_eq!(got, want, "round {round}");
        }
    }
}
