//! What a root's value becomes: a runtime (by its rule), a task found by a scan, a
//! `block_on` future; and the runtimes each thread drives.

use std::sync::Arc;

use layoutdump_lang::program::{Rule, RuleKind};

use super::Findings;
use super::listing::{ListedTasks, drop_on_every_thread};
use super::order::sort_listed;
use super::tasks::{listed_in_place, task_report};
use crate::eval::observe::Seen;
use crate::eval::{EvalError, Evaluator, Value};
use crate::eval::{display_string, field_value};
use crate::report::Pending;
use crate::report::{BlockOnReport, FieldValue, Fields, FutureRef, Hex, Map, RuntimeReport};

/// Follows pointers and view `deref`s from `v` until a rule of `kind` matches its type,
/// and counts the match (`check --explain`).
pub(super) fn match_rule<'p>(
    ev: &Evaluator<'p>,
    kind: RuleKind,
    v: Value,
) -> Result<(&'p Rule, u64, Value), EvalError> {
    let (i, rule, addr, v) = find_rule(ev, kind, v)?;
    ev.see(Seen::Matched { rule: i });
    Ok((rule, addr, v))
}

/// `match_rule` without counting the match: a task listed is counted when it is read.
pub(super) fn find_rule<'p>(
    ev: &Evaluator<'p>,
    kind: RuleKind,
    mut v: Value,
) -> Result<(usize, &'p Rule, u64, Value), EvalError> {
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
            return Ok((i, rule, addr, v));
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
pub(super) fn add_block_on(ev: &Evaluator<'_>, value: Value, tid: Option<u32>, out: &mut Findings) {
    // A pinned reference (`Pin<&mut F>`) or a pointer: report the future itself.
    let mut v = value;
    for _ in 0..8 {
        let Value::Place { ty, .. } = v else { return };
        let Ok(t) = ev.ty(ty) else { return };
        if t.is_coroutine()
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
/// only by its waker), added to the runtime the root's `runtime` member names, or, where
/// the task names no runtime it can be reached from (a monoio task records only its
/// thread's number), to the runtime found earlier whose `task_owner` member equals the
/// root's. Kept only if a task rule matches it (whose guard is the place to check it is
/// live) and its runtime resolves; a task already reported is not added twice.
pub(super) fn add_scanned_task(
    ev: &Evaluator<'_>,
    root: &layoutdump_lang::program::Root,
    subject: Value,
    task: Value,
    out: &mut Findings,
) -> bool {
    let members = ev.eval_members(&root.members, root.frame_size, subject);
    let member = |name: &str| {
        members
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, r)| r.as_ref().ok())
            .cloned()
    };
    // The task rule first: its guard tells a live task from a stale copy, which must
    // not bring a runtime of its own into the report.
    let Ok(report) = task_report(ev, task) else {
        return false;
    };
    let addr = match (member("runtime"), member(TASK_OWNER)) {
        (Some(runtime), _) => {
            let Ok((_, addr, _)) = match_rule(ev, RuleKind::Runtime, runtime.clone()) else {
                return false;
            };
            if !out.runtimes.iter().any(|r| r.address == Hex(addr)) {
                add_runtime(ev, runtime, None, out);
            }
            addr
        }
        (None, Some(owner)) => {
            let key = field_value(ev, &owner);
            let owner = out
                .runtimes
                .iter()
                .find(|r| r.fields.get(TASK_OWNER) == Some(&key));
            let Some(rt) = owner else { return false };
            rt.address.0
        }
        (None, None) => return false,
    };
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

/// The member that joins a scanned task to its runtime when the task cannot reach it: a
/// number both record (monoio's thread number). Only a join key: taken out of the report
/// once every root has run.
pub(super) const TASK_OWNER: &str = "task_owner";

/// A runtime reached from a memory-scan candidate: kept only if its own task list holds
/// the candidate (a stale or foreign word that happens to point at a task vtable leads to
/// a runtime that does not list it, or to none). Returns whether it was kept; a runtime
/// already found by another root is kept as it is, so nothing is counted twice.
pub(super) fn add_scanned_runtime(
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
pub(super) const OWNER_THREAD: &str = "owner_thread";

/// Lists each runtime found without a thread (by a memory scan) under the thread that
/// owns it, and says which runtime that thread runs it inside (an actix worker's LocalSet
/// inside its `current_thread` runtime).
pub(super) fn join_owner_threads(out: &mut Findings) {
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
    for r in &mut out.runtimes {
        r.fields.remove(TASK_OWNER);
    }
}

pub(super) fn add_runtime(ev: &Evaluator<'_>, value: Value, tid: Option<u32>, out: &mut Findings) {
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
    // What `task_runtime()` gives while this runtime's tasks are read.
    let runtime = match subject {
        Value::Place { addr, ty } => Some((addr, ty)),
        _ => None,
    };
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
                Ok(items) if let Some(reader) = out.reader.clone() => {
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
                    let listed = Arc::new(ListedTasks {
                        tasks: pending,
                        rule: here.clone(),
                        runtime,
                        reader,
                    });
                    out.pending.push(listed.clone());
                    report.pending = Some(Pending::new(listed));
                }
                Ok(_) => {
                    report
                        .unavailable
                        .insert(name, "no reader was given to read the tasks".into());
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
