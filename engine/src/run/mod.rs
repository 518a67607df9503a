//! Running a layout: evaluates its roots on every thread, matches the values they yield
//! to runtime rules, walks each runtime's tasks through the task rules, and assembles the
//! report. Runtimes are deduplicated by address, tasks by address within a runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashSet;

use layoutdump_lang::program::{RootKind, RuleKind};

use crate::dwarf::DebugInfo;
use crate::eval::observe::Seen;
use crate::eval::{Evaluator, Limits, Value, field_value};
use crate::memory::Memory;
use crate::report::{BlockOnReport, Fields, Hex, RuntimeReport};
use crate::unwind::Frame;
use listing::{ListedTasks, ReadListed};

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
#[derive(Default)]
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
    /// (runtime, task) addresses already reported: one hash lookup per task, not a search
    /// of the runtime's list (quadratic in its tasks). A runtime whose
    /// tasks are pending is not in it (its duplicates go after sorting): a scan candidate
    /// among its tasks is skipped through the root's `listed` set first.
    listed_tasks: FxHashSet<(u64, u64)>,
    pub timings: crate::report::Timings,
    progress: bool,
    /// What reads each runtime's listed tasks (`Settings::reader`), and the lists left
    /// to it; None only in `Findings::default`, before a run sets it.
    reader: Option<Arc<dyn ReadListed>>,
    pending: Vec<Arc<ListedTasks>>,
}

/// How a run goes: its bounds, whether it draws progress on stderr, and what reads the
/// tasks it lists for each runtime (as the report is written, or all at once after).
#[derive(Clone)]
pub struct Settings {
    pub limits: Limits,
    pub progress: bool,
    pub reader: Arc<dyn ReadListed>,
}

/// ` at FILE:LINE:COL` of the task rule's `id` member, when the program has one task rule.
fn task_id_location(program: &layoutdump_lang::Program) -> String {
    let mut task_rules = program.rules.iter().filter(|r| r.kind == RuleKind::Task);
    match (task_rules.next(), task_rules.next()) {
        (Some(rule), None) => rule
            .members
            .iter()
            .find(|m| m.name == "id")
            .map_or(String::new(), |m| {
                format!(" at {}", program.location(m.span))
            }),
        _ => String::new(),
    }
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
        reader: Some(settings.reader),
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
        let root_error = |error: &str| {
            ev.see(Seen::RootError {
                root: root_index,
                error,
            })
        };
        let root_value = |absent: bool| {
            ev.see(Seen::RootValue {
                root: root_index,
                absent,
            })
        };
        let subjects: Vec<(Option<u32>, Value)> = match &root.kind {
            RootKind::Tls(path) => match tls_variable(dbg, path) {
                Err(msg) => {
                    root_error(&msg.to_string());
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
            RootKind::Static(path) => match dbg.static_variable(path) {
                Ok((link, ty)) => vec![(
                    None,
                    Value::Place {
                        addr: link.wrapping_add(bias),
                        ty,
                    },
                )],
                Err(msg) => {
                    root_error(&msg.to_string());
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
                        root_error(&msg);
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
        ev.see(Seen::RootSubjects {
            root: root_index,
            count: subjects.len() as u64,
        });
        let is_scan = matches!(root.kind, RootKind::Scan { .. });
        // A scan's candidates that led nowhere: one note, not one warning each.
        let mut scan_misses = 0u64;
        // Tasks already reported: a scan candidate among them needs no evaluation (its
        // runtime is known), which keeps a scan linear in the number of tasks. Made only
        // when the scan found something: tokio's LocalSet scan mostly finds nothing.
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
                root_value(false);
                continue;
            }
            // What evaluating a rejected candidate complained about (a list through freed
            // memory) is about that guess, not about the program: dropped with it.
            let ev_warnings = ev.warnings.borrow().len();
            let value = match ev.eval_with_subject(root.value, root.frame_size, subject.clone()) {
                Ok(v) => {
                    root_value(false);
                    v
                }
                // "No runtime on this thread" is the common case, not a problem.
                Err(e) if e.is_absent() => {
                    root_value(true);
                    continue;
                }
                Err(e) => {
                    root_error(&e.to_string());
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
            && let Some(listed) = (out.pending.iter())
                .find(|l| std::ptr::addr_eq(Arc::as_ptr(l), Arc::as_ptr(&p.tasks)))
        {
            ev.set_runtime(listed.runtime);
            r.tasks.extend(
                listed
                    .tasks
                    .iter()
                    .filter_map(|t| listed_task_report(&ev, t).ok())
                    .map(|mut t| {
                        t.shrink();
                        t
                    }),
            );
            ev.set_runtime(None);
        }
        sort_tasks(&mut r.tasks);
        r.threads.sort_unstable();
        let ids = || -> Box<dyn Iterator<Item = (Option<u64>, Hex)> + '_> {
            match &r.pending {
                Some(p) => Box::new(p.listed()),
                None => Box::new(r.tasks.iter().map(|t| (t.id, t.address))),
            }
        };
        if let Some(((low, low_at), (high, high_at))) = order::scattered_ids(ids()) {
            out.warnings.push(format!(
                "runtime {} at {:#x}: task ids run from {low} (the task at {:#x}) to {high} (the task at {:#x}): \
                 a counter's ids and a pointer's or hash's, which no one executor gives: some are misread; \
                 check the task rule's `id`{} and the casts that reach it (`layoutdump check LAYOUT --explain DUMP`)",
                r.kind,
                r.address.0,
                low_at.0,
                high_at.0,
                task_id_location(program)
            ));
        }
        let shared = order::shared_ids(ids());
        if let Some(order::SharedIds {
            id,
            addresses: (a, b),
            tasks,
        }) = shared
        {
            out.warnings.push(format!(
                "runtime {} at {:#x}: {tasks} tasks share an id with another (first: id {id}, the tasks at {:#x} and {:#x}), \
                 which no executor does: the ids are misread; check the task rule's `id`{} and the casts that reach it \
                 (`layoutdump check LAYOUT --binary BIN`, `check --explain DUMP`)",
                r.kind,
                r.address.0,
                a.0,
                b.0,
                task_id_location(program)
            ));
        }
    }
    out.runtimes.sort_by(|a, b| {
        let first = |r: &RuntimeReport| {
            (r.tasks.first().map(|t| t.id))
                .or_else(|| r.pending.as_ref()?.listed().next().map(|(id, _)| id))
                .flatten()
        };
        (a.kind.as_str(), first(a), a.address).cmp(&(b.kind.as_str(), first(b), b.address))
    });
    for b in &mut out.block_on {
        b.runtime = b.thread.and_then(|t| out.thread_runtime.get(&t).copied());
    }
    out.block_on.sort_by_key(|b| (b.thread, b.future.address));
    out.warnings.extend(ev.warnings.borrow().iter().cloned());
    out.usage = ev.usage();
    out.warnings.extend(out.usage.unread.warnings(program));
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

mod findings;
pub mod listing;
mod order;
mod roots;
mod tasks;

use findings::{
    add_block_on, add_runtime, add_scanned_runtime, add_scanned_task, join_owner_threads,
};
use order::sort_tasks;
use roots::{frame_locals, tls_variable};
pub(crate) use tasks::listed_task_report;
