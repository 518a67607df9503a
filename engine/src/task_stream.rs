//! Tasks read while the report is written: a run lists each runtime's tasks by id and
//! address, and the writer has them read (`PendingTasks`), written and dropped as it goes,
//! in order; what reading finds (warnings, unavailable facts, waits) is written at the end.

use std::sync::{Arc, Mutex, OnceLock};

use layoutdump_lang::Program;
use layoutdump_ordered as ordered;

use crate::dwarf::DebugInfo;
use crate::eval::{Evaluator, Limits, Spent};
use crate::memory::Dump;
use crate::report::TaskReport;
use crate::report::pending::{Chunks, LateFindings, Reading, Rendered};
use crate::report::task_views::WaitFacts;
use crate::report::task_views::{GroupKey, Grouper, group_key};
use crate::run::listing::{ListedTasks, PendingTask, ReadListed};
use crate::sync::lock;

/// What a dump's tasks are read with, and what reading them has found so far. Made
/// before the run (which lists tasks for it); reads once `start` gives it its program.
pub struct TaskReader {
    program: OnceLock<Arc<Program>>,
    dbg: Arc<DebugInfo>,
    dump: Arc<Dump>,
    bias: u64,
    limits: Limits,
    /// Draw a progress line on stderr while tasks are read.
    progress: bool,
    found: Mutex<Found>,
}

/// What reading tasks found besides their reports.
#[derive(Default)]
pub(crate) struct Found {
    warnings: Vec<String>,
    notes: Vec<String>,
    /// Some task had a fact that could not be read, or a read was cut short.
    partial: bool,
    /// What each task read adds to the wait-for graph (tasks that add nothing left out).
    waits: WaitFacts,
    /// What the rules matched in the tasks read, and the task members that could not be
    /// read.
    usage: crate::explain::Usage,
    steps: u64,
    read: u64,
    progress: Option<crate::progress::Progress>,
}

/// Warnings reading tasks added, past which they are only counted.
const MAX_WARNINGS: usize = 1000;

/// Tasks a worker reads at a time in `stream`: small enough that the writer is never far
/// behind the readers, large enough that handing them over costs nothing.
const CHUNK: usize = 256;

/// Chunks read ahead of the one the writer waits for: bounds what is held (rendered,
/// unwritten) when one chunk is slow. Not per worker: a chunk's step budget is what
/// the run had left this many chunks before it, the same on any number of threads.
const AHEAD: usize = 16;
/// How many tasks ahead of the one being read a worker asks for a task's memory: a task
/// takes microseconds to read, a cache line some hundred nanoseconds to arrive.
const AHEAD_OF_READ: usize = 2;

/// What one task read adds to the findings: a fact unavailable (or the task unread), the
/// task it waits for, its group.
type Read = (bool, WaitFacts, Option<(GroupKey, Option<u64>)>);

/// A worker of `stream`: its evaluator (whose caches of types and routes last from the
/// first task to the last), the chunk the writer gave back, and the most a chunk took.
struct Worker<'a> {
    ev: Evaluator<'a>,
    spare: Option<Box<dyn Rendered>>,
    room: usize,
}

impl TaskReader {
    pub fn new(
        dbg: Arc<DebugInfo>,
        dump: Arc<Dump>,
        bias: u64,
        limits: Limits,
        progress: bool,
    ) -> TaskReader {
        TaskReader {
            program: OnceLock::new(),
            dbg,
            dump,
            bias,
            limits,
            progress,
            found: Default::default(),
        }
    }

    /// Reading may start: the run is over, and this is the reader's copy of `program`.
    /// The copy is made here, after the run, not with the reader: made before the run,
    /// among what the run then allocates, it made every task read slower
    /// (docs/benchmarks.md, "Why the code is shaped as it is").
    pub fn start(&self, program: &Program) {
        let _ = self.program.set(Arc::new(program.clone()));
    }

    /// The program, once `start` gave it; a warning if reading is asked for before.
    fn program(&self) -> Option<&Program> {
        let program = self.program.get();
        if program.is_none() {
            let mut found = self.lock();
            found.partial = true;
            found
                .warnings
                .push("tasks were asked for before the run ended: none is read".into());
        }
        program.map(|p| &**p)
    }

    /// Reads every task of `pending`, in order, renders each (`render`) into the chunk
    /// its worker is filling, and hands each chunk, in order, to `sink`; what reading adds
    /// to the report's warnings is kept for `late_findings`.
    ///
    /// Worker threads keep their evaluators (and their caches of types and routes) from
    /// the first task to the last and read chunk after chunk, while this thread writes
    /// the chunks already read: reading never waits for writing, nor a worker for the
    /// others to finish a window. Chunks are taken in order and written in order, so the
    /// output, the warnings and the steps counted do not depend on the threads. A worker
    /// stays at most a few chunks ahead of the writer, so a million tasks are never held.
    ///
    /// What a worker rendered is dropped by that worker, not by the writer: the chunks
    /// written go back to it, so the writer never frees into a worker's malloc arena
    /// while the worker allocates from it. A chunk that comes back is cleared and
    /// rendered into again, rather than a task's kilobyte of JSON being allocated anew.
    fn stream(
        &self,
        pending: &ListedTasks,
        keep: &(dyn Fn(&TaskReport) -> bool + Sync),
        grouper: Option<&Mutex<Grouper>>,
        render: &dyn Chunks,
        sink: &mut dyn FnMut(&dyn Rendered) -> bool,
    ) {
        let Some(program) = self.program() else {
            return;
        };
        let listing = &pending.tasks;
        let chunks: Vec<&[usize]> = listing.order.chunks(CHUNK).collect();
        let start_steps = self.lock().steps;
        // The run's steps after each chunk settled: a chunk's budget is what was left
        // `AHEAD` chunks before it, settled before it may start.
        let steps_after = Mutex::new(Vec::with_capacity(chunks.len()));
        let grouping = grouper.is_some();
        let memory = self.dump.memory();
        let total = pending.tasks.len() as u64;
        let plan = ordered::Plan {
            chunks: chunks.len(),
            workers: rayon::current_num_threads().min(AHEAD),
            starts_after: ordered::window(AHEAD),
        };
        let _: Result<(), ()> = ordered::run(
            plan,
            |_| Worker {
                ev: {
                    let ev = Evaluator::new(program, &self.dbg, memory, self.bias, self.limits);
                    ev.one_of_many();
                    ev.set_runtime(pending.runtime);
                    ev
                },
                spare: None,
                room: 0,
            },
            |w, at| {
                let steps_before = match at.checked_sub(AHEAD) {
                    Some(back) => lock(&steps_after)[back],
                    None => start_steps,
                };
                w.ev.set_step_limit(self.limits.steps.saturating_sub(steps_before));
                let mut rendered = w.spare.take().unwrap_or_else(|| {
                    let mut fresh = render.make();
                    fresh.reserve(w.room);
                    fresh
                });
                rendered.clear();
                let chunk = chunks[at];
                let reads = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &index)| {
                        // The listed task itself further ahead than its memory: the
                        // memory is found through it.
                        if let Some(&later) = chunk.get(i + 2 * AHEAD_OF_READ) {
                            crate::memory::prefetch_value(&listing.listed[later]);
                        }
                        w.ev.prefetch_item(
                            (chunk.get(i + AHEAD_OF_READ))
                                .and_then(|&j| listing.at(j))
                                .map(|t| &t.item),
                        );
                        let t = listing.at(index)?;
                        Some(read_task(
                            &w.ev,
                            t,
                            &pending.rule,
                            (keep, grouping),
                            render,
                            &mut *rendered,
                        ))
                    })
                    .collect();
                w.room = w.room.max(rendered.room());
                (rendered, reads, w.ev.drain())
            },
            // This worker's chunk the writer is done with: rendered into again (one kept,
            // the one before dropped here, on the worker that made it).
            |w, (rendered, _, _)| w.spare = Some(rendered),
            |at, (_, reads, spent)| {
                self.settle(
                    grouper,
                    std::mem::take(reads),
                    std::mem::take(spent),
                    chunks[at].len(),
                    total,
                );
                let steps = self.lock().steps;
                lock(&steps_after).push(steps);
            },
            |_, (rendered, _, _)| {
                if sink(&**rendered) {
                    return Ok(());
                }
                // The progress line is cleared, as at the end of the list.
                let mut found = self.lock();
                found.progress = None;
                found.read = 0;
                Err(())
            },
        );
    }

    /// Adds what a chunk's `tasks` tasks added to what was found, in task order.
    fn settle(
        &self,
        grouper: Option<&Mutex<Grouper>>,
        reads: Vec<Read>,
        spent: Spent,
        tasks: usize,
        total: u64,
    ) {
        let mut found = self.lock();
        let mut grouper = grouper.map(lock);
        for (partial, waits, group) in reads {
            found.partial |= partial;
            found.waits.extend(waits);
            if let (Some(g), Some((key, id))) = (grouper.as_mut(), group) {
                g.add(key, id);
            }
        }
        found.usage.add(&spent.usage);
        found.steps = found.steps.saturating_add(spent.steps);
        for w in spent.warnings {
            found.partial = true;
            if found.warnings.len() < MAX_WARNINGS {
                found.warnings.push(w);
            }
        }
        found.notes.extend(
            spent
                .printed
                .into_iter()
                .map(|line| format!("hook printed: {line}")),
        );
        found.read += tasks as u64;
        if self.progress && found.progress.is_none() {
            found.progress = Some(crate::progress::Progress::new("reading tasks", total, true));
        }
        if let Some(p) = &found.progress {
            p.add(tasks as u64);
        }
        if found.read >= total {
            // Done with this runtime: the line is cleared.
            found.progress = None;
            found.read = 0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Found> {
        lock(&self.found)
    }
}

impl ReadListed for TaskReader {
    fn read_all(
        &self,
        list: &ListedTasks,
        keep: &(dyn Fn(&TaskReport) -> bool + Sync),
        grouper: Option<&Mutex<Grouper>>,
        chunks: &dyn Chunks,
        sink: &mut dyn FnMut(&dyn Rendered) -> bool,
    ) {
        self.stream(list, keep, grouper, chunks, sink)
    }

    /// One task, read without adding to what the written report will say (the crashing
    /// thread's task, for the crash signature, before the tasks are written).
    fn read_one(
        &self,
        task: &PendingTask,
        runtime: Option<(u64, crate::dwarf::DieId)>,
    ) -> Option<TaskReport> {
        let ev = Evaluator::new(
            self.program()?,
            &self.dbg,
            self.dump.memory(),
            self.bias,
            self.limits,
        );
        ev.set_runtime(runtime);
        crate::run::listed_task_report(&ev, task).ok()
    }
}

impl Reading for TaskReader {
    /// What reading the tasks has found; the report's end is written from it.
    fn late_findings(&self) -> LateFindings {
        let f = self.lock();
        let mut warnings = f.warnings.clone();
        if let Some(program) = self.program.get() {
            warnings.extend(f.usage.unread.warnings(program));
        }
        LateFindings {
            warnings,
            notes: f.notes.clone(),
            partial: f.partial,
            waits: f.waits.clone(),
            usage: f.usage.clone(),
        }
    }
}

/// Reads one task and, if it is kept (`shown`), renders it into `out` and groups it (if
/// `grouping`), with what it adds to the findings (whether shown or not). A task that
/// matched a task rule when listed can still not be read (the run's step limit): it stays
/// listed, saying why it is empty.
fn read_task(
    ev: &Evaluator<'_>,
    task: &PendingTask,
    rule: &str,
    (shown, grouping): (&(dyn Fn(&TaskReport) -> bool + Sync), bool),
    render: &dyn Chunks,
    out: &mut dyn Rendered,
) -> Read {
    let (report, partial) = match crate::run::listed_task_report(ev, task) {
        Ok(report) => {
            let partial = !report.unavailable.is_empty();
            (report, partial)
        }
        Err(e) => {
            let mut r = TaskReport::new(task.id, task.address);
            r.unavailable
                .insert("task", format!("in runtime at {rule}: {e}"));
            (r, true)
        }
    };
    let mut waits = WaitFacts::default();
    waits.add(&report);
    let mut group = None;
    if shown(&report) {
        group = grouping.then(|| (group_key(&report), report.id));
        render.render(report, out);
    }
    (partial, waits, group)
}
