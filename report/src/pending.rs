//! Tasks listed but read only as the report is written: what the engine provides (the
//! `PendingTasks` trait), and how a writer streams them, in order, a chunk at a time.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use crate::task_views::{Grouper, TaskFilter, WaitFacts};
use crate::{Hex, TaskReport};

/// A runtime's tasks in report order, listed by id and address, read on demand. The
/// engine implements it over the dump; this crate only asks for tasks.
pub trait PendingTasks: Send + Sync {
    /// How many tasks are listed.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id and address of the task at `index` of report order.
    fn listed(&self, index: usize) -> Option<(Option<u64>, Hex)>;

    /// The task at `index`, read now, without adding to what reading finds (the crashing
    /// thread's task, whose backtrace the crash signature needs before tasks are written).
    fn read_now(&self, index: usize) -> Option<TaskReport>;

    /// Reads every task, in order. Each that `keep` keeps is rendered by `chunks`
    /// into the chunk its worker fills, and added to `grouper` if there is one; each chunk
    /// is handed, in order, to `sink`, until `sink` returns false. The others are read all
    /// the same: what reading them finds (warnings, waits) is the report's.
    fn read_all(
        &self,
        keep: &(dyn Fn(&TaskReport) -> bool + Sync),
        grouper: Option<&Mutex<Grouper>>,
        chunks: &dyn Chunks,
        sink: &mut dyn FnMut(&dyn Rendered) -> bool,
    );

    /// What reads the tasks and keeps what reading found; the lists of one dump share
    /// it. None when nothing is read (a report built by hand).
    fn reading(&self) -> Option<Arc<dyn Reading>>;
}

/// What reading a dump's pending tasks has found so far.
pub trait Reading: Send + Sync {
    fn late_findings(&self) -> LateFindings;
}

/// What reading the tasks found, for the end of the report.
#[derive(Debug, Default)]
pub struct LateFindings {
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub partial: bool,
    pub waits: WaitFacts,
    /// What the layout's rules matched and could not read in the tasks (`check --explain`).
    pub usage: crate::explain::Usage,
}

/// How a writer renders tasks: into chunks it makes, one task at a time.
pub trait Chunks: Sync {
    fn make(&self) -> Box<dyn Rendered>;
    fn render(&self, task: TaskReport, into: &mut dyn Rendered);
}

/// What a worker renders a chunk of tasks into (each task added to it in order), handed
/// to the writer whole and then back to the worker to be cleared and filled again: the
/// compact JSON writer writes a chunk's bytes at once from the worker's buffer, rather
/// than copying a million tasks' kilobyte into its own.
pub trait Rendered: Any + Send {
    fn clear(&mut self);
    /// Room held (for the next chunk made from nothing: a third of a megabyte of JSON
    /// grown by doubling is copied twice over).
    fn room(&self) -> usize {
        0
    }
    fn reserve(&mut self, _room: usize) {}
}

impl Rendered for Vec<u8> {
    fn clear(&mut self) {
        Vec::clear(self)
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn reserve(&mut self, room: usize) {
        Vec::reserve(self, room)
    }
}

impl Rendered for String {
    fn clear(&mut self) {
        String::clear(self)
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn reserve(&mut self, room: usize) {
        String::reserve(self, room)
    }
}

impl Rendered for Vec<TaskReport> {
    fn clear(&mut self) {
        Vec::clear(self)
    }
}

impl Rendered for () {
    fn clear(&mut self) {}
}

/// Tasks a chunk hands over whole (`Report::read_all_pending`, which keeps them).
impl Rendered for Mutex<Vec<TaskReport>> {
    fn clear(&mut self) {
        self.get_mut().unwrap_or_else(|p| p.into_inner()).clear()
    }
}

/// A runtime's tasks to be read as the report is written, in report order.
#[derive(Clone)]
pub struct Pending {
    /// Shared, not copied: a million listed tasks are 112 MB.
    pub tasks: Arc<dyn PendingTasks>,
    /// With `--group`: the groups of the tasks read so far (see `Report::group_tasks`).
    pub grouper: Option<Arc<Mutex<Grouper>>>,
    /// With `--task`, `--state` or `--match`: the tasks to show (the others are read, not
    /// shown: what reading them finds, warnings and waits, is the report's all the same).
    pub filter: Option<Arc<TaskFilter>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({} tasks)", self.tasks.len())
    }
}

impl Pending {
    pub fn new(tasks: Arc<dyn PendingTasks>) -> Pending {
        Pending {
            tasks,
            grouper: None,
            filter: None,
        }
    }

    /// Whether the tasks shown are known from the listing (ids), before they are read;
    /// not with `--state` or `--match`, which look into each task.
    pub fn shown_when_listed(&self) -> bool {
        self.filter.as_ref().is_none_or(|f| f.by_id_only())
    }

    /// The ids and addresses of the listed tasks, in report order, those `--task` leaves
    /// out left out (what `--state` and `--match` leave out is known once they are read).
    pub fn listed(&self) -> impl Iterator<Item = (Option<u64>, Hex)> + '_ {
        (0..self.tasks.len())
            .filter_map(|i| self.tasks.listed(i))
            .filter(|(id, _)| self.filter.as_ref().is_none_or(|f| f.keeps_id(*id)))
    }

    /// Reads every task in order, renders each (`render`) into a chunk of type `C`, and
    /// hands each chunk, in order, to `sink`; the first error `sink` returns ends it.
    pub fn stream<C: Rendered + Default, E>(
        &self,
        render: impl Fn(TaskReport, &mut C) + Sync,
        mut sink: impl FnMut(&C) -> Result<(), E>,
    ) -> Result<(), E> {
        let chunks = Typed(render, PhantomData);
        let mut failed = None;
        let keep = |t: &TaskReport| self.filter.as_ref().is_none_or(|f| f.keeps(t));
        self.tasks
            .read_all(&keep, self.grouper.as_deref(), &chunks, &mut |chunk| {
                // Every chunk is one `chunks` made: a `C`.
                let Some(chunk) = (chunk as &dyn Any).downcast_ref::<C>() else {
                    return true;
                };
                match sink(chunk) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            });
        failed.map_or(Ok(()), Err)
    }
}

/// Chunks of type `C`, rendered by `F`.
struct Typed<C, F>(F, PhantomData<fn() -> C>);

impl<C: Rendered + Default, F: Fn(TaskReport, &mut C) + Sync> Chunks for Typed<C, F> {
    fn make(&self) -> Box<dyn Rendered> {
        Box::new(C::default())
    }

    fn render(&self, task: TaskReport, into: &mut dyn Rendered) {
        if let Some(chunk) = (into as &mut dyn Any).downcast_mut::<C>() {
            (self.0)(task, chunk)
        }
    }
}

/// Tasks listed with nothing to read them: a report built by hand, whose tasks every
/// writer lists (id and address) as it would unread ones.
pub struct Unread(pub Vec<(Option<u64>, Hex)>);

impl PendingTasks for Unread {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn listed(&self, index: usize) -> Option<(Option<u64>, Hex)> {
        self.0.get(index).copied()
    }

    fn read_now(&self, _index: usize) -> Option<TaskReport> {
        None
    }

    fn read_all(
        &self,
        keep: &(dyn Fn(&TaskReport) -> bool + Sync),
        _grouper: Option<&Mutex<Grouper>>,
        chunks: &dyn Chunks,
        sink: &mut dyn FnMut(&dyn Rendered) -> bool,
    ) {
        for &(id, address) in &self.0 {
            let task = TaskReport::new(id, address);
            if !keep(&task) {
                continue;
            }
            let mut chunk = chunks.make();
            chunks.render(task, &mut *chunk);
            if !sink(&*chunk) {
                return;
            }
        }
    }

    fn reading(&self) -> Option<Arc<dyn Reading>> {
        None
    }
}

#[cfg(test)]
impl Pending {
    /// One task (`id` at `address`) listed with no reader: a report built by hand.
    pub(crate) fn unread(id: u64, address: u64) -> Pending {
        Pending::new(Arc::new(Unread(vec![(Some(id), Hex(address))])))
    }
}
