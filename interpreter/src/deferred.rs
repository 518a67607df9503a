//! Tasks read while the report is written. A million task reports held at once took
//! 2.5 GB; written as JSON they are needed only one window at a time. So for JSON output
//! a run lists each runtime's tasks by id and address (enough to order them, count them
//! and name the crashing thread's task), and the JSON writer has each window of tasks
//! read, written and dropped in turn. What reading them finds beyond the reports (their
//! warnings, whether any fact was unavailable, which task waits for which) is kept here
//! and written after the runtimes, where the report's warnings are.

use std::sync::{Arc, Mutex};

use layoutdump_lang::Program;

use crate::dwarf::DebugInfo;
use crate::eval::{Evaluator, Limits, Value};
use crate::memory::Dump;
use crate::report::triage::{Grouper, group_key};
use crate::report::{Hex, TaskReport};

/// A listed task not read yet: its id (for the order), address and the value a task rule
/// matched.
#[derive(Debug, Clone)]
pub struct PendingTask {
    pub id: Option<u64>,
    pub address: Hex,
    pub item: Value,
}

/// A runtime's tasks to be read as the report is written, in report order.
#[derive(Clone)]
pub struct Pending {
    pub tasks: Arc<[PendingTask]>,
    /// Where the runtime rule is, for warnings about its tasks.
    pub rule: String,
    /// Set by the analysis once the run is over (it owns what reading needs).
    pub reader: Option<Arc<TaskReader>>,
    /// With `--group`: the groups of the tasks read so far (see `Report::group_tasks`).
    pub grouper: Option<Arc<Mutex<Grouper>>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({} tasks)", self.tasks.len())
    }
}

/// What a dump's tasks are read with, and what reading them has found so far.
pub struct TaskReader {
    pub(crate) program: Arc<Program>,
    pub(crate) dbg: Arc<DebugInfo>,
    pub(crate) dump: Arc<Dump>,
    pub(crate) bias: u64,
    pub(crate) limits: Limits,
    /// Draw a progress line on stderr while tasks are read.
    pub(crate) progress: bool,
    pub(crate) found: Mutex<Found>,
}

/// What reading tasks found besides their reports.
#[derive(Default)]
pub(crate) struct Found {
    warnings: Vec<String>,
    notes: Vec<String>,
    /// Some task had a fact that could not be read, or a read was cut short.
    partial: bool,
    /// (task, task it waits for), from `blocked_on.task`.
    waits: Vec<(u64, u64)>,
    steps: u64,
    read: u64,
    progress: Option<crate::progress::Progress>,
}

/// Warnings reading tasks added, past which they are only counted.
const MAX_WARNINGS: usize = 1000;

/// What reading the tasks found, for the end of the report.
#[derive(Debug, Default)]
pub struct LateFindings {
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub partial: bool,
    pub waits: Vec<(u64, u64)>,
}

impl TaskReader {
    /// Reads `tasks` (a window of `pending`, in order), in parallel; what they add to the
    /// report's warnings is kept for `late_findings`.
    pub fn read(&self, pending: &Pending, tasks: &[PendingTask]) -> Vec<TaskReport> {
        self.read_with(pending, tasks, |t| t)
    }

    /// `read`, each report turned into `render(report)` on the thread that read it (JSON
    /// text, for compact output): the reports are dropped where they were made, in
    /// parallel, and never held as a window.
    pub fn read_with<T: Send>(
        &self,
        pending: &Pending,
        tasks: &[PendingTask],
        render: impl Fn(TaskReport) -> T + Sync,
    ) -> Vec<T> {
        let total: u64 = pending.tasks.len() as u64;
        let steps = self.lock().steps;
        let limits = Limits {
            steps: self.limits.steps.saturating_sub(steps),
            ..self.limits
        };
        let ev = Evaluator::new(
            &self.program,
            &self.dbg,
            self.dump.memory(),
            self.bias,
            limits,
        );
        let items: Vec<Value> = tasks.iter().map(|t| t.item.clone()).collect();
        let progress = crate::progress::Progress::new("reading tasks", total, false);
        // What a report adds to the findings, taken before it is rendered.
        let grouping = pending.grouper.is_some();
        let read_one = |w: &Evaluator<'_>, item: Value| {
            crate::run::task_report(w, item).map(|report| {
                let partial = !report.unavailable.is_empty();
                let waits = report.id.zip(report.waits_for());
                let group = grouping.then(|| (group_key(&report), report.id));
                (render(report), partial, waits, group)
            })
        };
        let chunks = crate::run::per_item(&ev, &items, &progress, read_one);
        let mut out = Vec::with_capacity(tasks.len());
        let mut found = self.lock();
        let mut grouper = pending
            .grouper
            .as_ref()
            .map(|g| g.lock().unwrap_or_else(|p| p.into_inner()));
        for (result, task) in chunks.into_iter().flatten().zip(tasks) {
            match result {
                Ok((rendered, partial, waits, group)) => {
                    found.partial |= partial;
                    found.waits.extend(waits);
                    if let (Some(g), Some((key, id))) = (grouper.as_mut(), group) {
                        g.add(key, id);
                    }
                    out.push(rendered);
                }
                // It matched a task rule when listed; reading it again can still stop
                // (the run's step limit): it stays listed, saying why it is empty.
                Err(e) => {
                    let mut r = TaskReport::new(task.id, task.address);
                    r.unavailable
                        .insert("task", format!("in runtime at {}: {e}", pending.rule));
                    found.partial = true;
                    if let Some(g) = grouper.as_mut() {
                        g.add(group_key(&r), r.id);
                    }
                    out.push(render(r));
                }
            }
        }
        found.steps = found.steps.saturating_add(ev.steps_used());
        for w in ev.warnings.borrow().iter() {
            found.partial = true;
            if found.warnings.len() < MAX_WARNINGS {
                found.warnings.push(w.clone());
            }
        }
        found.notes.extend(
            ev.hook_output()
                .into_iter()
                .map(|line| format!("hook printed: {line}")),
        );
        found.read += tasks.len() as u64;
        if self.progress && found.progress.is_none() {
            found.progress = Some(crate::progress::Progress::new("reading tasks", total, true));
        }
        if let Some(p) = &found.progress {
            p.add(tasks.len() as u64);
        }
        if found.read >= total {
            // Done with this runtime: the line is cleared.
            found.progress = None;
            found.read = 0;
        }
        out
    }

    /// One task, read without adding to what the written report will say (the crashing
    /// thread's task, for the crash signature, before the tasks are written).
    pub fn read_one(&self, task: &PendingTask) -> Option<TaskReport> {
        let ev = Evaluator::new(
            &self.program,
            &self.dbg,
            self.dump.memory(),
            self.bias,
            self.limits,
        );
        crate::run::task_report(&ev, task.item.clone()).ok()
    }

    /// What reading the tasks has found; the report's end is written from it.
    pub fn late_findings(&self) -> LateFindings {
        let f = self.lock();
        LateFindings {
            warnings: f.warnings.clone(),
            notes: f.notes.clone(),
            partial: f.partial,
            waits: f.waits.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Found> {
        self.found.lock().unwrap_or_else(|p| p.into_inner())
    }
}
