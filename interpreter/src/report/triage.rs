//! Triage at scale: filtering tasks (`--state`, `--task`, `--match`), grouping tasks whose
//! async stacks are the same (`--group`), and the wait-for graph (`--graph dot`) with its
//! cycles, which are possible deadlocks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use super::{FieldValue, Hex, Report, SourceRef, TaskReport, WaitLinks};

/// Which tasks to keep. Empty lists keep everything.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub states: Vec<String>,
    pub ids: Vec<u64>,
    /// Matched against every frame's function, future type and `file:line`.
    pub pattern: Option<regex::Regex>,
}

impl TaskFilter {
    pub fn is_empty(&self) -> bool {
        self.states.is_empty() && self.ids.is_empty() && self.pattern.is_none()
    }

    pub fn keeps(&self, t: &TaskReport) -> bool {
        let state_ok = self.states.is_empty()
            || t.state
                .as_ref()
                .is_some_and(|s| self.states.iter().any(|w| **w == **s));
        let id_ok = self.ids.is_empty() || t.id.is_some_and(|id| self.ids.contains(&id));
        let pattern_ok = self.pattern.as_ref().is_none_or(|re| {
            t.backtrace.iter().any(|f| {
                re.is_match(&f.function)
                    || re.is_match(&f.future)
                    || f.location.as_ref().is_some_and(|l| {
                        re.is_match(&format!("{}:{}", l.file.as_deref().unwrap_or(""), l.line))
                    })
            }) || t
                .blocked_on
                .as_ref()
                .is_some_and(|b| re.is_match(&b.kind) || re.is_match(&b.future))
        });
        state_ok && id_ok && pattern_ok
    }

    /// Drops the tasks the filter does not keep (runtimes stay, with what is left).
    pub fn apply(&self, report: &mut Report) {
        if self.is_empty() {
            return;
        }
        for rt in &mut report.runtimes {
            rt.tasks.retain(|t| self.keeps(t));
        }
    }
}

/// Tasks whose async stacks are the same: same frames and await locations, and the same
/// kind of leaf; values ignored.
#[derive(Debug, Clone, Serialize)]
pub struct TaskGroup {
    pub count: usize,
    pub task_ids: Vec<u64>,
    pub state: Option<smol_str::SmolStr>,
    pub frames: Vec<GroupFrame>,
    pub blocked_on: Option<smol_str::SmolStr>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupFrame {
    pub function: Arc<str>,
    pub location: Option<SourceRef>,
}

impl PartialOrd for SourceRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SourceRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.file, self.line).cmp(&(&other.file, other.line))
    }
}

/// What puts two tasks in one group: state, stack (functions and await lines) and the
/// kind of leaf they are blocked on.
pub type GroupKey = (
    Option<smol_str::SmolStr>,
    Vec<GroupFrame>,
    Option<smol_str::SmolStr>,
);

/// The group a task belongs in.
pub fn group_key(t: &TaskReport) -> GroupKey {
    let frames = t
        .backtrace
        .iter()
        .map(|f| GroupFrame {
            function: f.function.clone(),
            location: f.location.clone(),
        })
        .collect();
    (
        t.state.clone(),
        frames,
        t.blocked_on.as_ref().map(|b| b.kind.clone()),
    )
}

/// Groups built one task at a time: the tasks themselves need not be kept (a runtime's
/// tasks read while they are written, or read only to be grouped).
#[derive(Debug, Default)]
pub struct Grouper {
    groups: BTreeMap<GroupKey, Vec<u64>>,
}

impl Grouper {
    pub fn add(&mut self, key: GroupKey, id: Option<u64>) {
        self.groups
            .entry(key)
            .or_default()
            .push(id.unwrap_or(u64::MAX));
    }

    /// The groups so far, most common first (ties: by first task id).
    pub fn groups(&self) -> Vec<TaskGroup> {
        let mut out: Vec<TaskGroup> = self
            .groups
            .iter()
            .map(|((state, frames, blocked_on), ids)| {
                let mut ids = ids.clone();
                ids.sort_unstable();
                TaskGroup {
                    count: ids.len(),
                    task_ids: ids,
                    state: state.clone(),
                    frames: frames.clone(),
                    blocked_on: blocked_on.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.task_ids.first().cmp(&b.task_ids.first()))
        });
        out
    }
}

/// The groups of one runtime's tasks, most common first (ties: by first task id).
pub fn group_tasks(tasks: &[TaskReport]) -> Vec<TaskGroup> {
    let mut g = Grouper::default();
    for t in tasks {
        g.add(group_key(t), t.id);
    }
    g.groups()
}

/// A wait-for edge: a task waits for another task, or for a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitTarget {
    Task(u64),
    /// A resource node: its kind and an identity (an address, an fd).
    Resource {
        kind: String,
        id: String,
    },
}

/// Every task's edge, from its `blocked_on`: `task` fields name tasks (JoinHandle), other
/// leaves are resources identified by their address-like fields.
pub fn wait_edges(report: &Report) -> Vec<(u64, WaitTarget)> {
    let mut edges = Vec::new();
    for t in report.runtimes.iter().flat_map(|r| &r.tasks) {
        let (Some(id), Some(b)) = (t.id, &t.blocked_on) else {
            continue;
        };
        if let Some(target) = t.waits_for() {
            edges.push((id, WaitTarget::Task(target)));
            continue;
        }
        let resource = ["semaphore", "channel", "fd"]
            .iter()
            .find_map(|k| b.fields.get(k).map(|v| format!("{k} {}", show(v))))
            .unwrap_or_else(|| format!("{:#x}", b.address.0));
        edges.push((
            id,
            WaitTarget::Resource {
                kind: b.kind.to_string(),
                id: resource,
            },
        ));
    }
    // Tasks that hold what others wait on: an edge to each holder.
    let links = report
        .runtimes
        .iter()
        .flat_map(|r| &r.tasks)
        .filter_map(TaskReport::wait_links)
        .filter(|l| l.on_task.is_none());
    edges.extend(
        task_waits(links)
            .into_iter()
            .map(|(from, to)| (from, WaitTarget::Task(to))),
    );
    edges.sort();
    edges.dedup();
    edges
}

/// Cycles of tasks waiting for each other, each starting at its smallest id, in order.
pub fn wait_cycles(report: &Report) -> Vec<Vec<u64>> {
    cycles(task_waits(
        report
            .runtimes
            .iter()
            .flat_map(|r| &r.tasks)
            .filter_map(TaskReport::wait_links),
    ))
}

/// (task, task it waits for) pairs: the task it joins, and every task holding a resource
/// it waits on (a lock whose guard another task keeps across an await). Sorted, each once.
pub fn task_waits(links: impl IntoIterator<Item = WaitLinks>) -> Vec<(u64, u64)> {
    let links: Vec<WaitLinks> = links.into_iter().collect();
    let mut held: Vec<(u64, u64)> = links
        .iter()
        .flat_map(|l| l.holds.iter().map(move |&r| (r, l.id)))
        .collect();
    held.sort_unstable();
    let mut pairs = Vec::new();
    for l in &links {
        pairs.extend(l.on_task.map(|t| (l.id, t)));
        for &r in &l.on_resources {
            let from = held.partition_point(|&(res, _)| res < r);
            pairs.extend(
                held[from..]
                    .iter()
                    .take_while(|&&(res, _)| res == r)
                    .filter(|&&(_, holder)| holder != l.id)
                    .map(|&(_, holder)| (l.id, holder)),
            );
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Cycles in a wait-for graph given as (task, task it waits for) pairs; where a task is
/// given twice, its last pair counts. Each cycle starts at its smallest id; they come
/// sorted. Sorted pairs and a mark per task, not maps and sets: a million tasks, a sixth
/// of them waiting on a `JoinHandle`, took 0.07 s with a `BTreeMap` and `BTreeSet`, on
/// the one thread that writes the report's end.
pub fn cycles(waits: impl IntoIterator<Item = (u64, u64)>) -> Vec<Vec<u64>> {
    let mut next: Vec<(u64, u64)> = waits.into_iter().collect();
    // Stable, so that after the reversal the last pair given for a task comes first.
    next.reverse();
    next.sort_by_key(|&(from, _)| from);
    next.dedup_by_key(|&mut (from, _)| from);
    let index = |id: u64| next.binary_search_by_key(&id, |&(from, _)| from).ok();
    // Which walk reached each task first (0: none yet).
    let mut walk = vec![0usize; next.len()];
    let mut cycles = BTreeSet::new();
    let mut path: Vec<usize> = Vec::new();
    for start in 0..next.len() {
        let this = start + 1;
        path.clear();
        let mut at = start;
        // Each task waits for at most one task: follow the chain until it ends, meets a
        // chain already explored, or closes on itself.
        loop {
            if walk[at] == this {
                let from = path.iter().rposition(|&p| p == at).unwrap_or(0);
                let mut cycle: Vec<u64> = path[from..].iter().map(|&i| next[i].0).collect();
                let min = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, id)| **id)
                    .map_or(0, |(i, _)| i);
                cycle.rotate_left(min);
                cycles.insert(cycle);
                break;
            }
            if walk[at] != 0 {
                break;
            }
            walk[at] = this;
            path.push(at);
            match index(next[at].1) {
                Some(i) => at = i,
                None => break,
            }
        }
    }
    cycles.into_iter().collect()
}

/// A warning for each cycle of tasks waiting for each other (see `cycle_warning`).
pub fn deadlock_warnings(links: impl IntoIterator<Item = WaitLinks>) -> Vec<String> {
    let links: Vec<WaitLinks> = links.into_iter().collect();
    let at = |id: u64| {
        links
            .iter()
            .find(|l| l.id == id)
            .and_then(|l| l.at.as_ref())
            .map(|l| format!("{}:{}", l.file.as_deref().unwrap_or("?"), l.line))
    };
    cycles(task_waits(links.iter().cloned()))
        .iter()
        .map(|c| cycle_warning(c, at))
        .collect()
}

/// "possible deadlock: task 4 (src/main.rs:40) → task 9 (src/main.rs:52) → task 4": each
/// task with where it waits in the program's own code.
pub fn cycle_warning(cycle: &[u64], at: impl Fn(u64) -> Option<String>) -> String {
    let mut s = String::from("possible deadlock:");
    for (i, id) in cycle.iter().chain(cycle.first()).enumerate() {
        let _ = write!(s, "{}task {id}", if s.ends_with(':') { " " } else { " → " });
        if i < cycle.len()
            && let Some(at) = at(*id)
        {
            let _ = write!(s, " (at {at})");
        }
    }
    s.push_str(" (each waits for the next to finish or to release what it holds)");
    s
}

/// The wait-for graph in Graphviz DOT: tasks as boxes (labelled with their innermost
/// own frame), resources as ellipses, cycles in red.
pub fn to_dot(report: &Report) -> String {
    let cycles = wait_cycles(report);
    let in_cycle: BTreeSet<u64> = cycles.iter().flatten().copied().collect();
    let mut s = String::from(
        "digraph waits {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n",
    );
    for t in report.runtimes.iter().flat_map(|r| &r.tasks) {
        let Some(id) = t.id else { continue };
        let label = t
            .backtrace
            .first()
            .map_or(String::new(), |f| f.function.to_string());
        let color = if in_cycle.contains(&id) {
            ", color=red"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  t{id} [shape=box, label=\"task {id}\\n{}\"{color}];",
            escape(&label)
        );
    }
    let mut resources = BTreeSet::new();
    for (from, to) in wait_edges(report) {
        match to {
            WaitTarget::Task(t) => {
                let color = if in_cycle.contains(&from) && in_cycle.contains(&t) {
                    " [color=red]"
                } else {
                    ""
                };
                let _ = writeln!(s, "  t{from} -> t{t}{color};");
            }
            WaitTarget::Resource { kind, id } => {
                let node = format!(
                    "r_{}",
                    id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                );
                if resources.insert(node.clone()) {
                    let _ = writeln!(
                        s,
                        "  {node} [shape=ellipse, label=\"{}\\n{}\"];",
                        escape(&kind),
                        escape(&id)
                    );
                }
                let _ = writeln!(s, "  t{from} -> {node};");
            }
        }
    }
    s.push_str("}\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn show(v: &FieldValue) -> String {
    match v {
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Address(Hex(a)) => format!("{a:#x}"),
        FieldValue::Str(s) => s.clone(),
        FieldValue::List(_) | FieldValue::Collection { .. } | FieldValue::Object { .. } => {
            "?".into()
        }
    }
}

#[cfg(test)]
mod cycle_tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::cycles;

    /// The cycles by the plain definition: from every task, follow the chain until a task
    /// repeats; a repeat on this chain closes a cycle.
    fn by_definition(waits: &[(u64, u64)]) -> Vec<Vec<u64>> {
        let next: BTreeMap<u64, u64> = waits.iter().copied().collect();
        let mut found = BTreeSet::new();
        for &start in next.keys() {
            let mut path = vec![start];
            while let Some(&n) = next.get(path.last().unwrap()) {
                if let Some(pos) = path.iter().position(|&p| p == n) {
                    let mut c = path[pos..].to_vec();
                    let min = (0..c.len()).min_by_key(|&i| c[i]).unwrap();
                    c.rotate_left(min);
                    found.insert(c);
                    break;
                }
                path.push(n);
            }
        }
        found.into_iter().collect()
    }

    #[test]
    fn cycles_are_those_of_the_definition() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut with_cycles = 0;
        for round in 0..2000 {
            let tasks = 1 + rand(12);
            let edges = rand(16);
            // Ids beyond `tasks` wait for nothing; a task may be given twice (the last
            // pair counts) and may wait for itself.
            let waits: Vec<(u64, u64)> =
                (0..edges).map(|_| (rand(tasks), rand(tasks + 3))).collect();
            let want = by_definition(&waits);
            with_cycles += usize::from(!want.is_empty());
            assert_eq!(cycles(waits.clone()), want, "round {round}: {waits:?}");
        }
        assert!(
            with_cycles > 200,
            "the graphs must hold cycles: {with_cycles}"
        );
        assert_eq!(cycles([(4, 9), (9, 4), (1, 4)]), vec![vec![4, 9]]);
        assert_eq!(cycles([(5, 5)]), vec![vec![5]]);
        assert_eq!(
            cycles([(3, 4), (3, 3)]),
            vec![vec![3]],
            "the last pair counts"
        );
    }
}
