//! Views of a report's tasks: filtering them (`--state`, `--task`, `--match`), grouping tasks whose
//! async stacks are the same (`--group`), and the wait-for graph (`--graph dot`) with its
//! cycles, which are possible deadlocks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;
use smol_str::format_smolstr;

use super::{FieldValue, Hex, Report, SourceRef, TaskReport};

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

    /// Whether only `--task` is given: the tasks kept are known by their ids alone.
    pub fn by_id_only(&self) -> bool {
        self.states.is_empty() && self.pattern.is_none()
    }

    /// Whether a task with this id may be kept (`--task`); the rest of the filter needs
    /// the task read.
    pub fn keeps_id(&self, id: Option<u64>) -> bool {
        self.ids.is_empty() || id.is_some_and(|id| self.ids.contains(&id))
    }

    pub fn keeps(&self, t: &TaskReport) -> bool {
        let state_ok = self.states.is_empty()
            || t.state
                .as_ref()
                .is_some_and(|s| self.states.iter().any(|w| **w == **s));
        let id_ok = self.keeps_id(t.id);
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
    /// The program's own code (see `FrameHead::own`).
    #[serde(skip)]
    pub own: bool,
}

impl GroupFrame {
    /// A frame of the program's own code, with its await line (not runtime code, not
    /// in a dependency: axum's and hyper's async fns are framework).
    pub fn is_own(&self) -> bool {
        self.own
    }
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

/// The group a task belongs in. A chain that branches is followed into the branch with
/// the most frames of the program's own code (a web server's connection task: into the
/// handler, not the socket), if any branch has one; frames that are not the program's
/// own (library futures, combinators, a framework's async fns) are left out but for the
/// last (and the root, where no frame is the program's own), so that tasks parked in one
/// handler at one line are one group, named by that line.
pub fn group_key(t: &TaskReport) -> GroupKey {
    let mut frames = Vec::new();
    let kind = key_path(&t.backtrace, t.blocked_on.as_ref(), &mut frames, 0);
    // The root names the task only where no own frame does: a handler parked at one line
    // is one group whether its request came over HTTP/1 (in the connection's task) or
    // HTTP/2 (in a stream task of its own).
    if frames.len() > 1 && !frames[0].is_own() && frames.iter().any(GroupFrame::is_own) {
        frames.remove(0);
    }
    (t.state.clone(), frames, kind)
}

/// Branches followed into, at most (a chain's depth is bounded when it is read).
const MAX_KEY_NESTING: usize = 64;

/// The frames of the chain `frames` (blocked on `leaf`) that a group is keyed on,
/// appended to `out`; the leaf kind the followed path ends on.
fn key_path(
    frames: &[super::AwaitFrame],
    leaf: Option<&super::BlockedOn>,
    out: &mut Vec<GroupFrame>,
    nesting: usize,
) -> Option<smol_str::SmolStr> {
    for (i, f) in frames.iter().enumerate() {
        let last = i + 1 == frames.len();
        let frame = GroupFrame {
            function: f.function.clone(),
            location: f.location.clone(),
            own: f.own,
        };
        let best = (nesting < MAX_KEY_NESTING)
            .then(|| {
                f.branches
                    .iter()
                    .map(|b| (own_frames(&b.backtrace), b))
                    .filter(|(n, _)| *n > 0)
                    .max_by_key(|(n, _)| *n)
            })
            .flatten();
        // The task's root future says what kind of task it is (a client connection, a
        // server connection): kept, as are its own frames and the last one.
        let root = nesting == 0 && i == 0;
        if let Some((_, b)) = best {
            if frame.is_own() || root {
                out.push(frame);
            }
            return key_path(&b.backtrace, b.blocked_on.as_ref(), out, nesting + 1);
        }
        if frame.is_own() || root || last {
            out.push(frame);
        }
    }
    leaf.map(|b| b.kind.clone())
}

/// Frames of the program's own code in a chain, through its branches.
fn own_frames(frames: &[super::AwaitFrame]) -> usize {
    frames
        .iter()
        .map(|f| {
            usize::from(f.own)
                + f.branches
                    .iter()
                    .map(|b| own_frames(&b.backtrace))
                    .sum::<usize>()
        })
        .sum()
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
        kind: smol_str::SmolStr,
        id: smol_str::SmolStr,
    },
}

/// The wait-for graph of the tasks shown, built task by task as they are read: a task
/// adds its node's name and label, its edge and its wait facts, not its report, so a
/// streamed million stay small.
#[derive(Debug, Default, Clone)]
pub struct WaitGraph {
    /// Each task and its root future (whose function labels it), in report order: shared
    /// with the report's frames, not copied.
    nodes: Vec<(crate::RunningTask, Option<Arc<crate::FrameHead>>)>,
    /// Each task's edge, from its `blocked_on`.
    edges: Vec<(u64, WaitTarget)>,
    facts: WaitFacts,
}

impl WaitGraph {
    /// The graph of the report's tasks, those pending read now (and only those a filter
    /// keeps added).
    pub fn of(report: &Report) -> WaitGraph {
        let mut graph = WaitGraph::default();
        for rt in &report.runtimes {
            for t in &rt.tasks {
                graph.add(t);
            }
            if let Some(p) = &rt.pending {
                let _: Result<(), std::convert::Infallible> = p.stream(
                    |t, chunk: &mut WaitGraph| chunk.add(&t),
                    |chunk| {
                        graph.extend(chunk);
                        Ok(())
                    },
                );
            }
        }
        graph
    }

    /// Adds `t`: its node, and its edge: `task` fields name tasks (JoinHandle), other
    /// leaves are resources identified by their address-like fields.
    pub fn add(&mut self, t: &TaskReport) {
        let id = t.graph_key();
        let task = crate::RunningTask {
            id: t.id,
            address: t.address,
        };
        self.nodes
            .push((task, t.backtrace.first().map(|f| f.head.clone())));
        self.facts.add(t);
        let Some(b) = &t.blocked_on else { return };
        if let Some(target) = t.waits_for() {
            self.edges.push((id, WaitTarget::Task(target)));
            return;
        }
        // The resource a leaf names: a well-known field, else its first address (an
        // embassy `mutex`, a `signal`), else the leaf future itself.
        let named = ["semaphore", "channel", "fd"]
            .iter()
            .find_map(|k| b.fields.get(k).map(|v| format_smolstr!("{k} {}", show(v))));
        let resource = named
            .or_else(|| {
                b.fields.iter().find_map(|(k, v)| {
                    matches!(v, FieldValue::Address(_)).then(|| format_smolstr!("{k} {}", show(v)))
                })
            })
            .unwrap_or_else(|| format_smolstr!("{:#x}", b.address.0));
        self.edges.push((
            id,
            WaitTarget::Resource {
                kind: b.kind.clone(),
                id: resource,
            },
        ));
    }

    fn extend(&mut self, other: &WaitGraph) {
        self.nodes.extend_from_slice(&other.nodes);
        self.edges.extend_from_slice(&other.edges);
        self.facts.extend(other.facts.clone());
    }

    /// Every edge: each task's own, then one to each task holding what a task waits on
    /// (unless it joins a task), sorted, each once.
    pub fn edges(&self) -> Vec<(u64, WaitTarget)> {
        let mut edges = self.edges.clone();
        let joins: BTreeSet<u64> = edges
            .iter()
            .filter(|(_, to)| matches!(to, WaitTarget::Task(_)))
            .map(|(from, _)| *from)
            .collect();
        edges.extend(
            self.facts
                .pairs()
                .into_iter()
                .filter(|(from, _)| !joins.contains(from))
                .map(|(from, to)| (from, WaitTarget::Task(to))),
        );
        edges.sort();
        edges.dedup();
        edges
    }

    /// Cycles of tasks waiting for each other, each starting at its smallest id, in order.
    pub fn cycles(&self) -> Vec<Vec<u64>> {
        cycles(self.facts.pairs())
    }
}

impl crate::pending::Rendered for WaitGraph {
    fn clear(&mut self) {
        self.nodes.clear();
        self.edges.clear();
        self.facts = WaitFacts::default();
    }
}

/// The wait-for graph's facts, gathered task by task (16 bytes each, so that a million
/// streamed tasks add megabytes, not their reports): which task a task joins, which
/// resources (addresses its leaves name) it waits on, which ones it holds.
#[derive(Debug, Default, Clone)]
pub struct WaitFacts {
    /// (task, task it joins).
    joins: Vec<(u64, u64)>,
    /// (task, resource it waits on).
    waits_on: Vec<(u64, u64)>,
    /// (resource, task holding it).
    holds: Vec<(u64, u64)>,
}

impl WaitFacts {
    /// The facts of every task the report holds.
    pub fn of(report: &Report) -> WaitFacts {
        let mut facts = WaitFacts::default();
        for t in report.runtimes.iter().flat_map(|r| &r.tasks) {
            facts.add(t);
        }
        facts
    }

    /// Adds what `t` waits on and holds.
    pub fn add(&mut self, t: &TaskReport) {
        let id = t.graph_key();
        if let Some(target) = t.waits_for() {
            self.joins.push((id, target));
        }
        t.waited_addresses(|r| self.waits_on.push((id, r)));
        self.holds
            .extend(t.holds.iter().map(|h| (h.resource.0, id)));
    }

    pub fn extend(&mut self, other: WaitFacts) {
        self.joins.extend(other.joins);
        self.waits_on.extend(other.waits_on);
        self.holds.extend(other.holds);
    }

    /// (task, task it waits for) pairs: the task it joins, and every task holding a
    /// resource it waits on (a lock whose guard another task keeps across an await).
    /// Sorted, each once.
    pub fn pairs(&self) -> Vec<(u64, u64)> {
        let mut held = self.holds.clone();
        held.sort_unstable();
        let mut pairs = self.joins.clone();
        if !held.is_empty() {
            for &(task, r) in &self.waits_on {
                let from = held.partition_point(|&(res, _)| res < r);
                pairs.extend(
                    held[from..]
                        .iter()
                        .take_while(|&&(res, _)| res == r)
                        .filter(|&&(_, holder)| holder != task)
                        .map(|&(_, holder)| (task, holder)),
                );
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }
}

/// Cycles in a wait-for graph given as (task, task it waits for) pairs; where a task is
/// given twice, its last pair counts. Each cycle starts at its smallest id; they come
/// sorted. Sorted pairs and a mark per task, not maps and sets: this runs on the one
/// thread that writes the report's end.
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

/// A warning for each cycle of tasks waiting for each other (see `cycle_warning`); `at`
/// gives a task's await line.
pub fn deadlock_warnings(
    facts: &WaitFacts,
    at: impl Fn(u64) -> (String, Option<String>),
) -> Vec<String> {
    cycles(facts.pairs())
        .iter()
        .map(|c| cycle_warning(c, &at))
        .collect()
}

/// How a cycle warning names the task whose graph key is `key`, and its await line.
pub fn named_in_graph(report: &Report, key: u64) -> (String, Option<String>) {
    match report.task_by_graph_key(key) {
        Some(t) => (t.graph_name(), await_line(&t)),
        None => (format!("task {key}"), None),
    }
}

/// A task's await line in the program's own code, as a warning names it (`file:line`).
pub fn await_line(t: &TaskReport) -> Option<String> {
    t.own_await_line()
        .map(|l| format!("{}:{}", l.file.as_deref().unwrap_or("?"), l.line))
}

/// "possible deadlock: task 4 (src/main.rs:40) → task 9 (src/main.rs:52) → task 4": each
/// task with where it waits in the program's own code.
pub fn cycle_warning(cycle: &[u64], at: impl Fn(u64) -> (String, Option<String>)) -> String {
    let mut s = String::from("possible deadlock:");
    for (i, key) in cycle.iter().chain(cycle.first()).enumerate() {
        let (name, line) = at(*key);
        let _ = write!(s, "{}{name}", if s.ends_with(':') { " " } else { " → " });
        if i < cycle.len()
            && let Some(line) = line
        {
            let _ = write!(s, " (at {line})");
        }
    }
    s.push_str(" (each waits for the next to finish or to release what it holds)");
    s
}

/// The wait-for graph in Graphviz DOT: tasks as boxes (labelled with their innermost
/// own frame), resources as ellipses, cycles in red.
pub fn write_dot(graph: &WaitGraph, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cycles = graph.cycles();
    let in_cycle: BTreeSet<u64> = cycles.iter().flatten().copied().collect();
    w.write_all(
        b"digraph waits {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n",
    )?;
    for (task, root) in &graph.nodes {
        let id = task.id.unwrap_or(task.address.0);
        let label = root.as_ref().map_or("", |f| &*f.function);
        let color = if in_cycle.contains(&id) {
            ", color=red"
        } else {
            ""
        };
        writeln!(
            w,
            "  t{id} [shape=box, label=\"{}\\n{}\"{color}];",
            escape(&task.name()),
            escape(label)
        )?;
    }
    let mut resources = BTreeSet::new();
    for (from, to) in graph.edges() {
        match to {
            WaitTarget::Task(t) => {
                let color = if in_cycle.contains(&from) && in_cycle.contains(&t) {
                    " [color=red]"
                } else {
                    ""
                };
                writeln!(w, "  t{from} -> t{t}{color};")?;
            }
            WaitTarget::Resource { kind, id } => {
                let node = format_smolstr!(
                    "r_{}",
                    id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                );
                if resources.insert(node.clone()) {
                    writeln!(
                        w,
                        "  {node} [shape=ellipse, label=\"{}\\n{}\"];",
                        escape(&kind),
                        escape(&id)
                    )?;
                }
                writeln!(w, "  t{from} -> {node};")?;
            }
        }
    }
    w.write_all(b"}\n")
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn show(v: &FieldValue) -> String {
    match v {
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Bool(b) => b.to_string(),
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

#[cfg(test)]
mod own_code_tests {
    use crate::SourceRef;

    #[test]
    fn dependencies_are_told_by_their_versioned_folder() {
        let at = |f: &str| SourceRef {
            file: Some(f.into()),
            line: 1,
        };
        assert!(at("axum-0.8.9/src/serve/listener.rs").in_dependency());
        assert!(at("tokio-1.54.1/src/time/sleep.rs").in_dependency());
        assert!(at("hyper-util-0.1.21/src/client/legacy/client.rs").in_dependency());
        assert!(at("library/core/src/future/pending.rs").in_dependency());
        assert!(!at("web-service/src/main.rs").in_dependency());
        assert!(!at("src/main.rs").in_dependency());
        assert!(!at("tokio-tasks/src/main.rs").in_dependency());
    }
}
