//! The JSON report as typed structs, as docs/output-schema.md describes it: what the
//! end-to-end tests read instead of walking untyped JSON. Unknown keys are ignored, so a
//! field added to the report does not break a test that does not read it.

#![allow(dead_code)]

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub struct Report {
    pub layout: LayoutName,
    pub dump: Option<DumpInfo>,
    pub binary: Option<BinaryInfo>,
    pub crash: Option<Crash>,
    pub runtimes: Vec<Runtime>,
    #[serde(default)]
    pub block_on: Vec<BlockOn>,
    #[serde(default)]
    pub threads: Vec<Thread>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct LayoutName {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Deserialize)]
pub struct BinaryInfo {
    pub path: String,
    pub build_id: Option<String>,
}

/// Why the process was dumped.
#[derive(Debug, Deserialize)]
pub struct Crash {
    pub signal: Option<u32>,
    pub fault_address: Option<String>,
    pub thread: Option<u32>,
    pub panic: Option<Panic>,
    pub task: Option<u64>,
    pub signature: String,
}

#[derive(Debug, Deserialize)]
pub struct Panic {
    pub message: Option<String>,
    pub location: Option<Location>,
}

#[derive(Debug, Deserialize)]
pub struct DumpInfo {
    pub path: String,
    pub format: String,
    pub pid: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct Runtime {
    pub kind: String,
    pub address: String,
    pub workers: Option<u64>,
    pub task_count: Option<u64>,
    #[serde(default)]
    pub threads: Vec<u32>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// With `--group`.
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub unavailable: Map<String, Value>,
}

/// Tasks with the same async stack (`--group`).
#[derive(Debug, Deserialize)]
pub struct Group {
    pub count: u64,
    #[serde(default)]
    pub task_ids: Vec<u64>,
    pub state: Option<String>,
    #[serde(default)]
    pub frames: Vec<Frame>,
    pub blocked_on: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Task {
    pub id: Option<u64>,
    pub address: String,
    pub state: Option<String>,
    /// The task's root future.
    pub future: Option<FutureRef>,
    #[serde(default)]
    pub backtrace: Vec<Frame>,
    pub blocked_on: Option<BlockedOn>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub holds: Vec<Held>,
    #[serde(default)]
    pub unavailable: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct Frame {
    #[serde(default)]
    pub function: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub future: String,
    pub location: Option<Location>,
    pub via: Option<String>,
    #[serde(default)]
    pub locals: Map<String, Value>,
    #[serde(default)]
    pub branches: Vec<Branch>,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Branch {
    #[serde(default)]
    pub backtrace: Vec<Frame>,
    pub blocked_on: Option<BlockedOn>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub struct Location {
    pub file: String,
    pub line: u64,
}

#[derive(Debug, Deserialize)]
pub struct BlockedOn {
    pub kind: String,
    #[serde(default)]
    pub fields: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct Held {
    pub kind: String,
    pub resource: String,
}

#[derive(Debug, Deserialize)]
pub struct FutureRef {
    #[serde(rename = "type")]
    pub ty: String,
    pub address: String,
}

#[derive(Debug, Deserialize)]
pub struct BlockOn {
    pub thread: u32,
    /// The address of the runtime the thread runs.
    pub runtime: Option<String>,
    #[serde(default)]
    pub backtrace: Vec<Frame>,
    pub blocked_on: Option<BlockedOn>,
    pub found_by: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Thread {
    pub tid: u32,
    /// The futures it polls (async fn and block bodies on its stack, a running task).
    #[serde(default)]
    pub polling: Vec<String>,
    /// The task whose chain holds one of those futures.
    pub running: Option<RunningTask>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub frames: Vec<NativeFrame>,
}

/// A task a thread was running.
#[derive(Debug, Deserialize)]
pub struct RunningTask {
    pub id: Option<u64>,
    pub address: String,
}

/// A frame of a thread's native stack.
#[derive(Debug, Deserialize)]
pub struct NativeFrame {
    pub function: Option<String>,
    pub location: Option<NativeLocation>,
    pub module: Option<String>,
    /// std's or a runtime's own code.
    pub runtime: bool,
}

/// A native frame's place: the line tables may know the line but not the file.
#[derive(Debug, Deserialize)]
pub struct NativeLocation {
    pub file: Option<String>,
    pub line: u64,
}

impl Report {
    /// Every task of every runtime, with its runtime.
    pub fn tasks(&self) -> impl Iterator<Item = (&Runtime, &Task)> {
        self.runtimes
            .iter()
            .flat_map(|rt| rt.tasks.iter().map(move |t| (rt, t)))
    }

    /// The task with this id, with its runtime.
    pub fn task(&self, id: u64) -> Option<(&Runtime, &Task)> {
        self.tasks().find(|(_, t)| t.id == Some(id))
    }
}

impl Frame {
    /// Whether this frame is `function` awaiting at `line`.
    pub fn is_at(&self, function: &str, line: u64) -> bool {
        self.function == function && self.location.as_ref().is_some_and(|l| l.line == line)
    }
}

/// Every chain of a backtrace from its root to a leaf, through each branch: the frames on
/// the way and what the chain ends blocked on.
pub fn chains<'a>(
    frames: &'a [Frame],
    blocked_on: Option<&'a BlockedOn>,
) -> Vec<(Vec<&'a Frame>, Option<&'a BlockedOn>)> {
    for (i, f) in frames.iter().enumerate() {
        if !f.branches.is_empty() {
            let head: Vec<&Frame> = frames[..=i].iter().collect();
            return f
                .branches
                .iter()
                .flat_map(|b| chains(&b.backtrace, b.blocked_on.as_ref()))
                .map(|(tail, leaf)| (head.iter().copied().chain(tail).collect(), leaf))
                .collect();
        }
    }
    vec![(frames.iter().collect(), blocked_on)]
}

impl Task {
    pub fn chains(&self) -> Vec<(Vec<&Frame>, Option<&BlockedOn>)> {
        chains(&self.backtrace, self.blocked_on.as_ref())
    }

    /// The task's frames in the fixture's own source (files under `prefix`, e.g.
    /// `tokio-local/`), root first: `(function, await line)` each.
    pub fn own_frames(&self, prefix: &str) -> Vec<(&str, u64)> {
        self.backtrace
            .iter()
            .filter_map(|f| Some((f.function.as_str(), f.location.as_ref()?)))
            .filter(|(_, l)| l.file.starts_with(prefix))
            .map(|(function, l)| (function, l.line))
            .collect()
    }

    /// The await lines of `own_frames`.
    pub fn own_await_lines(&self, prefix: &str) -> Vec<u64> {
        self.own_frames(prefix)
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    }

    /// What the task is blocked on, or "" when nothing is said.
    pub fn leaf_kind(&self) -> &str {
        self.blocked_on.as_ref().map_or("", |l| l.kind.as_str())
    }

    /// The kind of every leaf the task's chains end at.
    pub fn leaf_kinds(&self) -> Vec<&str> {
        self.chains()
            .into_iter()
            .filter_map(|(_, l)| l.map(|l| l.kind.as_str()))
            .collect()
    }
}

/// `layoutdump ARGS… --format json`, typed, with its exit status; a report that does not
/// parse fails the test with what layoutdump said.
pub fn run_json(args: &[&str]) -> (Report, Option<i32>) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = super::run_layoutdump(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.code())
}

/// A timer's `left_ms`, computed from the dump's capture time: present on the cores and
/// minidumps `layoutdump capture` writes (which record it) and within `range`; on other
/// dumps left out, with a note naming `dump_time()`.
pub fn check_time_left(
    what: &str,
    r: &Report,
    left: Option<&Value>,
    range: std::ops::RangeInclusive<i64>,
) {
    let captured_by_us = what.ends_with(".core") || what.ends_with(".dmp");
    match left {
        Some(left) => {
            assert!(captured_by_us, "{what}: left_ms without a capture time");
            let left = left.as_i64().expect("a number");
            assert!(
                range.contains(&left),
                "{what}: left_ms {left}, not in {range:?}"
            );
        }
        None => assert!(
            !captured_by_us && r.notes.iter().any(|n| n.contains("dump_time()")),
            "{what}: no left_ms: {:?}",
            r.notes
        ),
    }
}
