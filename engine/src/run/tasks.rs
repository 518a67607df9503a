//! A runtime's tasks listed in parallel chunks (keyed by id and address, to be read
//! later), and one task read through the task rule into a report.

use std::sync::{Arc, Mutex};

use layoutdump_ordered as ordered;

use layoutdump_lang::program::{Rule, RuleKind};

use super::findings::{find_rule, match_rule};
use super::listing::{Listed, PendingTask};
use crate::eval::observe::Seen;
use crate::eval::{EvalError, Evaluator, Members, Value};
use crate::eval::{checked_field_value, display_string};
use crate::report::{FutureRef, Hex, TaskReport};
use crate::sync::lock;

/// Tasks read per piece of work handed to a worker thread: large enough that making the
/// worker's evaluator (and warming its caches) is noise, small enough to balance.
pub(super) const TASK_CHUNK: usize = 2048;

/// Chunks that depend on nothing settled before them, on every thread.
fn in_parallel(chunks: usize) -> ordered::Plan<fn(usize) -> Option<usize>> {
    ordered::Plan {
        chunks,
        workers: rayon::current_num_threads(),
        starts_after: ordered::unbounded,
    }
}

/// `task_key` of each item, in parallel as `per_item` reads them, each written into its
/// own slot of one vector (None where it failed), and the errors in item order. Listing a
/// million tasks held every chunk's results and then the list made of them; now only
/// the list.
pub(super) fn listed_in_place(
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
            worker.prefetch_item(chunk.get(at + 4));
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
    let chunks: Vec<&[Value]> = items.chunks(TASK_CHUNK).collect();
    // Each chunk's own slots, taken by the one worker that lists it.
    let slots: Vec<Mutex<&mut [Option<PendingTask>]>> =
        keys.chunks_mut(TASK_CHUNK).map(Mutex::new).collect();
    let mut errors = Vec::new();
    let _: Result<(), std::convert::Infallible> = ordered::run(
        in_parallel(chunks.len()),
        |_| seed.evaluator(),
        |worker, at| {
            let mut slots = lock(&slots[at]);
            let errors = list(worker, &mut slots, chunks[at]);
            progress.add(chunks[at].len() as u64);
            (errors, worker.drain())
        },
        |_, _| {},
        |_, (_, spent)| ev.absorb(std::mem::take(spent)),
        |_, (e, _)| {
            errors.append(e);
            Ok(())
        },
    );
    drop(slots);
    (keys, errors)
}

/// What a deferred runtime needs of a task before it is read: its id (for the order) and
/// address. The task rule's members up to `id` are evaluated, nothing else; their values
/// are kept for reading the task (`Listed`) where only `let`s come before `id`.
pub(super) fn task_key(ev: &Evaluator<'_>, item: Value) -> Result<PendingTask, EvalError> {
    let (_, rule, addr, subject) = find_rule(ev, RuleKind::Task, item.clone())?;
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

pub(super) fn read_task_report(
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
                let why = e.to_string();
                unread(ev, rule, name, addr, &why);
                t.unavailable.insert(name, why);
                continue;
            }
        };
        match name {
            "id" => match ev.to_int(&value).map(u64::try_from) {
                Ok(Ok(id)) => t.id = Some(id),
                _ => {
                    unread(ev, rule, name, addr, "not a number");
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
                Value::Place { addr: at, ty } => {
                    let chain = crate::backtrace::await_chain(ev, value.clone());
                    t.backtrace = chain.frames;
                    t.blocked_on = chain.blocked_on;
                    for (what, why) in chain.missing {
                        if what == "future" {
                            unread(ev, rule, "future", addr, &why);
                        }
                        t.unavailable.insert(what, why);
                    }
                    t.holds = chain.holds;
                    t.future = Some(FutureRef {
                        ty: ev
                            .ty(ty)
                            .map(|t| t.name.clone())
                            .unwrap_or_else(|_| Arc::from("")),
                        address: Hex(at),
                    })
                }
                _ => {
                    t.unavailable.insert(name, "not a value in memory".into());
                }
            },
            _ => match checked_field_value(ev, &value) {
                Ok(shown) => {
                    t.fields.insert(ev.name(name), shown);
                }
                Err(e) => {
                    let why = e.to_string();
                    unread(ev, rule, name, addr, &why);
                    t.unavailable.insert(name, why);
                }
            },
        }
    }
    Ok(t)
}

/// Counts member `name` of task rule `rule` as unread on the task at `addr`, for the
/// run's warning and `check --explain` (`UnreadMembers`).
fn unread(ev: &Evaluator<'_>, rule: &Rule, name: &str, addr: u64, why: &str) {
    let r = ev.program.rules.iter().position(|r| std::ptr::eq(r, rule));
    let m = rule
        .members
        .iter()
        .position(|m| m.name == name && !m.is_let);
    if let (Some(rule), Some(member)) = (r, m) {
        ev.see(Seen::Unread {
            rule,
            member,
            addr,
            why,
        });
    }
}
