//! A runtime's tasks listed by id and address, to be read as the report is written: the
//! listing, and what reads it (`ReadListed`, implemented by `task_stream.rs`).

use std::sync::{Arc, Mutex};

use crate::dwarf::DieId;
use crate::eval::{EvalError, Value};
use crate::report::pending::{Chunks, PendingTasks, Reading, Rendered};
use crate::report::task_views::Grouper;
use crate::report::{Hex, TaskReport};

/// A listed task not read yet: its id (for the order), address and the value a task rule
/// matched.
#[derive(Debug, Clone)]
pub struct PendingTask {
    pub id: Option<u64>,
    pub address: Hex,
    pub item: Value,
    /// The task rule's members up to `id` as listing the task evaluated them.
    pub listed: Listed,
}

// A million listed tasks are held at once: their size is the run's memory budget, and an
// `Option` of one must be as large for the listing to become the list in place
// (`run::listed_in_place`).
const _: () = assert!(std::mem::size_of::<PendingTask>() <= 112);
const _: () =
    assert!(std::mem::size_of::<Option<PendingTask>>() == std::mem::size_of::<PendingTask>());

/// Values of a task rule's first members (its `let`s before `id`, and `id`), kept from
/// listing the task so that reading it does not evaluate them again: a tokio task's
/// `Cell` cast and id were a tenth of its cost. Only places are kept (an address and a
/// type, not a whole `Value`): a million tasks keep 48 MB.
#[derive(Debug, Clone, Copy)]
pub struct Listed {
    /// How many members are kept (0: none; the task is read the long way).
    members: u8,
    /// The steps evaluating them took, and then reading the id as a number.
    steps: u32,
    id_steps: u32,
    places: [(u64, DieId); LISTED],
}

impl Default for Listed {
    fn default() -> Self {
        Listed {
            members: 0,
            steps: 0,
            id_steps: 0,
            places: [(0, DieId(0)); LISTED],
        }
    }
}

/// Members a `Listed` keeps at most: tokio's `let cell` and `id`.
const LISTED: usize = 2;

impl Listed {
    /// What to keep of `values` (each member's result, in order, the last being `id`),
    /// evaluated in `steps`, the id's number read in `id_steps`: nothing unless each is a
    /// place, there are few enough, and the steps fit.
    pub(crate) fn keep(values: &[Result<Value, EvalError>], steps: u64, id_steps: u64) -> Listed {
        let mut kept = Listed::default();
        if values.len() > LISTED {
            return kept;
        }
        let (Ok(steps), Ok(id_steps)) = (u32::try_from(steps), u32::try_from(id_steps)) else {
            return kept;
        };
        for (slot, v) in kept.places.iter_mut().zip(values) {
            let Ok(Value::Place { addr, ty }) = v else {
                return Listed::default();
            };
            *slot = (*addr, *ty);
        }
        kept.members = values.len() as u8;
        kept.steps = steps;
        kept.id_steps = id_steps;
        kept
    }

    /// The kept values (none where nothing is kept), the steps they took, and the steps
    /// reading the id took.
    pub(crate) fn values(&self) -> (smallvec::SmallVec<[Value; LISTED]>, u64, u64) {
        let values = self.places[..usize::from(self.members).min(LISTED)]
            .iter()
            .map(|&(addr, ty)| Value::Place { addr, ty })
            .collect();
        (values, u64::from(self.steps), u64::from(self.id_steps))
    }
}

/// A runtime's listed tasks, in report order: the listing as it was made (None where an
/// item was not a task) and the order of the tasks kept: the tasks are read through the
/// order, a random access per task asked for ahead (`TaskReader::stream`), never
/// gathered into a second vector.
#[derive(Default)]
pub struct Listing {
    pub(crate) listed: Vec<Option<PendingTask>>,
    pub(crate) order: Vec<usize>,
}

impl Listing {
    /// `listed` read in `order` (indexes of entries that are `Some`).
    pub(crate) fn new(listed: Vec<Option<PendingTask>>, order: Vec<usize>) -> Listing {
        debug_assert!(
            order
                .iter()
                .all(|&i| listed.get(i).is_some_and(Option::is_some))
        );
        Listing { listed, order }
    }

    /// Tasks already in report order.
    pub fn in_order(tasks: Vec<PendingTask>) -> Listing {
        let order = (0..tasks.len()).collect();
        Listing::new(tasks.into_iter().map(Some).collect(), order)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The tasks in report order.
    pub fn iter(&self) -> impl Iterator<Item = &PendingTask> {
        self.order.iter().filter_map(|&i| self.at(i))
    }

    pub fn first(&self) -> Option<&PendingTask> {
        self.iter().next()
    }

    /// The task at `index` of the listing (an entry of `order`).
    pub(crate) fn at(&self, index: usize) -> Option<&PendingTask> {
        self.listed.get(index)?.as_ref()
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        drop_on_every_thread(std::mem::take(&mut self.listed));
    }
}

/// Drops `items` on every thread: each is looked at to see what it owns, and a million
/// of them are tens of megabytes to read.
pub(crate) fn drop_on_every_thread<T: Send>(items: Vec<T>) {
    use rayon::prelude::*;
    items.into_par_iter().for_each(drop);
}

/// What reads listed tasks from the dump, and keeps what reading found: given to a run
/// that leaves its runtimes' tasks to be read as the report is written.
pub trait ReadListed: Reading {
    /// Reads every task of `list`, in order (see `PendingTasks::read_all`).
    fn read_all(
        &self,
        list: &ListedTasks,
        keep: &(dyn Fn(&TaskReport) -> bool + Sync),
        grouper: Option<&Mutex<Grouper>>,
        chunks: &dyn Chunks,
        sink: &mut dyn FnMut(&dyn Rendered) -> bool,
    );

    /// One task of `runtime` (what `task_runtime()` gives), read now, without adding to what
    /// reading finds.
    fn read_one(
        &self,
        task: &PendingTask,
        runtime: Option<(u64, crate::dwarf::DieId)>,
    ) -> Option<TaskReport>;
}

/// A runtime's listed tasks with what reads them: the report's pending tasks.
pub struct ListedTasks {
    pub tasks: Listing,
    /// Where the runtime rule is, for warnings about its tasks.
    pub rule: String,
    /// The runtime rule's subject: what `task_runtime()` gives while its tasks are read.
    pub runtime: Option<(u64, crate::dwarf::DieId)>,
    pub reader: Arc<dyn ReadListed>,
}

impl PendingTasks for ListedTasks {
    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn listed(&self, index: usize) -> Option<(Option<u64>, Hex)> {
        let t = self.tasks.at(*self.tasks.order.get(index)?)?;
        Some((t.id, t.address))
    }

    fn read_now(&self, index: usize) -> Option<TaskReport> {
        let t = self.tasks.at(*self.tasks.order.get(index)?)?;
        self.reader.read_one(t, self.runtime)
    }

    fn read_all(
        &self,
        keep: &(dyn Fn(&TaskReport) -> bool + Sync),
        grouper: Option<&Mutex<Grouper>>,
        chunks: &dyn Chunks,
        sink: &mut dyn FnMut(&dyn Rendered) -> bool,
    ) {
        self.reader.read_all(self, keep, grouper, chunks, sink)
    }

    fn reading(&self) -> Option<Arc<dyn Reading>> {
        Some(self.reader.clone())
    }
}
