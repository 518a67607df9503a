//! The order tasks are reported in: by id, then address, sorted in parallel for large lists.

use super::listing::{Listing, PendingTask};
use crate::report::{Hex, TaskReport};

/// Tasks by id (those without one last), then address.
pub(super) fn sort_tasks(tasks: &mut [TaskReport]) {
    sort_by_id(tasks, |t| (t.id, t.address));
}

/// Tasks that share an id, which no executor hands to two live tasks: a misread (a task
/// rule's `id`, or a cast on the way to it, reading the wrong bytes).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SharedIds {
    /// The first id shared, in tasks sorted by id then address.
    pub id: u64,
    /// The first two tasks with it: where to look at what was read.
    pub addresses: (Hex, Hex),
    /// How many tasks share an id with another.
    pub tasks: usize,
}

/// The tasks (sorted by id then address) that share an id, if any do.
pub(super) fn shared_ids(sorted: impl Iterator<Item = (Option<u64>, Hex)>) -> Option<SharedIds> {
    let mut first: Option<(u64, (Hex, Hex))> = None;
    let mut shared = 0;
    let mut last: Option<(u64, Hex)> = None;
    for (id, address) in sorted {
        let Some(id) = id else { continue };
        if let Some((prev, prev_address)) = last
            && prev == id
            && prev_address != address
        {
            first.get_or_insert((id, (prev_address, address)));
            shared += 1;
        }
        last = Some((id, address));
    }
    first.map(|(id, addresses)| SharedIds {
        id,
        addresses,
        tasks: shared + 1,
    })
}

/// Below this, an id is a counter's (tokio's and most executors' ids count up from 0 or
/// 1); at or above `HUGE_ID`, a pointer's or a hash's. An executor gives one kind or the
/// other, so a list with both has misread some.
const SMALL_ID: u64 = 1 << 20;
const HUGE_ID: u64 = 1 << 40;

/// The smallest and the largest id (with their tasks' addresses) of tasks sorted by id,
/// where the smallest is a counter's and the largest is not: ids no single executor gives.
pub(super) fn scattered_ids(
    mut sorted: impl Iterator<Item = (Option<u64>, Hex)>,
) -> Option<((u64, Hex), (u64, Hex))> {
    let (low, low_at) = sorted.find_map(|(id, at)| Some((id?, at)))?;
    let (high, high_at) = sorted.filter_map(|(id, at)| Some((id?, at))).last()?;
    (low < SMALL_ID && high >= HUGE_ID).then_some(((low, low_at), (high, high_at)))
}

/// The tasks listed (None: not a task), by id (those without one last), then address:
/// the order `sort_tasks` gives read tasks. The keys are sorted (on every thread, merging
/// the runs they hold: tokio lists each shard's tasks newest first, so a million tasks are
/// eight descending runs) and the listing is read in their order (`Listing`): the tasks
/// themselves are not moved. A task listed twice (a corrupt list) has one id, so its
/// copies are neighbours: kept once, with no set of the tasks seen.
pub(super) fn sort_listed(listed: Vec<Option<PendingTask>>) -> Listing {
    use rayon::prelude::*;
    // Sixteen bytes a key (id, index), the smallest that orders them. A task without an
    // id is keyed as the largest id, then put after those that have it; equal ids (a
    // corrupt dump) are ordered by address.
    let mut order: Vec<(u64, usize)> = listed
        .par_iter()
        .enumerate()
        .filter_map(|(i, t)| Some((t.as_ref()?.id.unwrap_or(u64::MAX), i)))
        .collect();
    // Merge sort, which takes the runs it finds (tokio lists each shard newest first).
    // The keys are distinct.
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
pub(super) fn sort_keys<T: Sync>(
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
/// sorted, and each item is then moved once to its place (a report is 240 bytes).
pub(super) fn sort_by_id<T: Send + Sync>(
    items: &mut [T],
    key: impl Fn(&T) -> (Option<u64>, Hex) + Sync,
) {
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

#[cfg(test)]
mod sort_tests {
    use super::{SharedIds, scattered_ids, shared_ids, sort_tasks};
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
        use crate::run::listing::{Listed, PendingTask};
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

    /// The first shared id names its first two tasks; the same task listed twice (one
    /// address) is not a misread, and tasks without ids share nothing.
    #[test]
    fn counters_mixed_with_pointer_sized_ids_are_scattered() {
        let ids = |v: &[Option<u64>]| {
            v.iter()
                .enumerate()
                .map(|(i, id)| (*id, Hex(0x1000 + i as u64)))
                .collect::<Vec<_>>()
        };
        // The wrong cast: 512, 33554517 and 144115557030274246.
        let wrong = ids(&[
            Some(512),
            Some(33_554_517),
            Some(144_115_557_030_274_246),
            None,
        ]);
        assert_eq!(
            scattered_ids(wrong.into_iter()),
            Some(((512, Hex(0x1000)), (144_115_557_030_274_246, Hex(0x1002))))
        );
        // A counter's ids, however many; addresses or hashes as ids; one task.
        assert_eq!(
            scattered_ids(ids(&[Some(1), Some(2), Some(900_000)]).into_iter()),
            None
        );
        assert_eq!(
            scattered_ids(ids(&[Some(0x5555_0000_1000), Some(0x7fff_0000_0000)]).into_iter()),
            None
        );
        assert_eq!(scattered_ids(ids(&[Some(1)]).into_iter()), None);
        assert_eq!(scattered_ids(ids(&[None, None]).into_iter()), None);
    }

    #[test]
    fn shared_ids_name_the_first_pair() {
        let tasks = [
            (Some(1), Hex(0x10)),
            (Some(2), Hex(0x20)),
            (Some(2), Hex(0x20)),
            (Some(3), Hex(0x30)),
            (Some(3), Hex(0x38)),
            (Some(3), Hex(0x40)),
            (None, Hex(0x50)),
            (None, Hex(0x58)),
        ];
        let shared = shared_ids(tasks.into_iter()).expect("id 3 is shared");
        assert_eq!(
            shared,
            SharedIds {
                id: 3,
                addresses: (Hex(0x30), Hex(0x38)),
                tasks: 3,
            }
        );
        assert_eq!(shared_ids(tasks[..4].iter().copied()), None);
    }
}
