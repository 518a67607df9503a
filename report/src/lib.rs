//! The report: what a run found, as plain data with a documented, versioned schema
//! (docs/output-schema.md), and its writers (text, JSON, YAML, DOT). Never reads a dump.

mod chunks;
pub mod explain;
mod json;
pub mod json_task;
mod map;
pub mod pending;
mod serialize;
pub mod task_views;
mod text;
mod timings;
pub mod writer;
mod yaml;

use std::sync::Arc;

use serde::Serialize;
use smol_str::SmolStr;

pub use map::Map;
pub use pending::{LateFindings, Pending};
pub use text::{TextOptions, render_text, write_text};
pub use timings::Timings;
pub use writer::Writer;

/// Named values of a task, a frame or a leaf.
pub type Fields = Map<FieldValue>;

/// Bumped on any incompatible change of the JSON/YAML shape.
pub const SCHEMA_VERSION: u32 = 1;

/// An address, serialized as a `0x…` hex string (JSON numbers lose precision past 2^53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl Hex {
    /// `0x` and lowercase digits without leading zeros, written at the end of `buf`
    /// (on the stack: a report has several addresses per task, millions in all).
    pub fn digits(self, buf: &mut [u8; 18]) -> &str {
        // Only ASCII digits and `0x` are written.
        std::str::from_utf8(self.ascii_digits(buf)).unwrap_or("0x?")
    }

    /// The bytes of `digits`, for a writer of bytes: checking that they are UTF-8 cost
    /// more than writing them (a tenth of the JSON writer's time).
    pub fn ascii_digits(self, buf: &mut [u8; 18]) -> &[u8] {
        // All sixteen digits at once, eight to a word; then the leading zeros skipped.
        // A task writes half a dozen addresses.
        buf[2..10].copy_from_slice(&hex_word((self.0 >> 32) as u32));
        buf[10..18].copy_from_slice(&hex_word(self.0 as u32));
        let digits = (16 - self.0.leading_zeros() as usize / 4).max(1);
        let at = buf.len() - digits - 2;
        buf[at..at + 2].copy_from_slice(b"0x");
        &buf[at..]
    }
}

/// The eight lowercase hex digits of `x`, most significant first.
fn hex_word(x: u32) -> [u8; 8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Nibble i of x to byte i of the word.
    let mut w = u64::from(x);
    w = (w | (w << 16)) & 0x0000_ffff_0000_ffff;
    w = (w | (w << 8)) & 0x00ff_00ff_00ff_00ff;
    w = (w | (w << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte holding 10 or more (adding 6 carries it into bit 4).
    let letters = ((w + 6 * ONES) >> 4) & ONES;
    // '0' + n, and 'a' - '0' - 10 = 39 more for the letters.
    (w + u64::from(b'0') * ONES + letters * 39).to_be_bytes()
}

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.digits(&mut [0u8; 18]))
    }
}

/// Serialized by hand (`serialize.rs`): tasks read while the report is written add to
/// its warnings, which come after the runtimes.
#[derive(Debug, Clone)]
pub struct Report {
    pub schema_version: u32,
    pub layout: LayoutInfo,
    pub dump: Option<DumpInfo>,
    pub binary: Option<BinaryInfo>,
    /// The crash, when the dump records a signal or a thread is in a panic hook.
    pub crash: Option<CrashReport>,
    pub runtimes: Vec<RuntimeReport>,
    /// Futures run by `block_on` (found by the layout's `=> future` roots).
    pub block_on: Vec<BlockOnReport>,
    pub threads: Vec<ThreadReport>,
    pub warnings: Vec<String>,
    /// What could not be read without making the report partial, e.g. a `block_on`
    /// future that an optimized build keeps only in a register.
    pub notes: Vec<String>,
    /// What each root and rule of the layout found (`check --explain`); not in the output.
    pub usage: Option<explain::Usage>,
    /// How long each phase took (`--timings`); not in the output.
    pub timings: Timings,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayoutInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpInfo {
    pub path: String,
    pub format: String,
    pub pid: Option<u32>,
    pub process_name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinaryInfo {
    pub path: String,
    pub build_id: Option<String>,
    pub load_bias: Hex,
}

/// Serialized by hand (`serialize.rs`): its tasks may be read as they are written.
#[derive(Debug, Clone)]
pub struct RuntimeReport {
    /// What the layout calls it, e.g. `multi_thread`.
    pub kind: String,
    /// The address of the runtime's handle: identifies it across threads.
    pub address: Hex,
    pub workers: Option<u64>,
    /// Threads whose thread-local root led to this runtime.
    pub threads: Vec<u32>,
    /// The runtime's own count of live tasks, where the layout reads one.
    pub task_count: Option<u64>,
    /// The tasks read (all of them, unless `pending` is set).
    pub tasks: Vec<TaskReport>,
    /// Tasks listed but read only as the report is written (JSON output), after `tasks`.
    pub pending: Option<Pending>,
    /// With `--group`: the tasks grouped by identical async stacks, most common first.
    pub groups: Option<Vec<task_views::TaskGroup>>,
    /// Other members of the layout's runtime rule, by name.
    pub fields: Fields,
    /// Members that could not be read, with the reason.
    pub unavailable: Map<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub id: Option<u64>,
    pub address: Hex,
    /// idle, scheduled, running, done, cancelled — as the layout decodes the state word.
    pub state: Option<SmolStr>,
    /// The layout's labels (held inline, not a string per task).
    pub flags: Vec<SmolStr>,
    /// The task's root future.
    pub future: Option<FutureRef>,
    /// The async backtrace: the root future first, then what each awaits, down to the
    /// future the task is parked on.
    pub backtrace: Vec<AwaitFrame>,
    /// What the innermost future means, from the layout's `leaf` rules.
    pub blocked_on: Option<BlockedOn>,
    /// Resources held across an await (`holds` rules), in chain order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Held>,
    pub fields: Fields,
    pub unavailable: Map<String>,
}

/// What an await frame shows of its future that depends only on the future's type and
/// state: one shared value for every task there, so that a frame takes one reference
/// count, not one for each of its names (each an atomic add and, when the report is
/// dropped, an atomic subtract).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameHead {
    /// The async fn or block it comes from (`app::serve::handle_conn`), or the type name
    /// of any other future.
    pub function: Arc<str>,
    /// The future's type as DWARF names it.
    pub future: Arc<str>,
    /// For async fns and blocks: `Unresumed`, `Suspend0`, `Suspend1`, …, `Returned`.
    pub state: Option<SmolStr>,
    /// For a suspended async fn or block: where it awaits.
    pub location: Option<SourceRef>,
    /// How this step of the chain was found; None for a note (a cut or a cycle).
    pub via: Option<Via>,
    /// The program's own code, with an await line: not runtime code (the layouts'
    /// `runtime_code`) and not in a dependency (`SourceRef::in_dependency`). A wait is
    /// placed at the innermost such frame, and groups are keyed on them. Worked out once
    /// per head (`FrameHead::own_code`).
    #[serde(skip)]
    pub own: bool,
}

/// How a step of an async backtrace was found, so that a reader can tell a described
/// step from a guessed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// An async fn, block or closure: its state and await line from DWARF.
    AsyncFn,
    /// A layout's `future` or `leaf` rule.
    Rule,
    /// Generic descent: a hand-written future (or what it holds) found from its type
    /// alone, with no rule.
    Generic,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::AsyncFn => "async_fn",
            Via::Rule => "rule",
            Via::Generic => "generic",
        }
    }
}

/// One future of an async backtrace. Its head's fields read as its own (`frame.function`),
/// and are written first, as they were when they were its own.
#[derive(Debug, Clone)]
pub struct AwaitFrame {
    pub head: Arc<FrameHead>,
    pub address: Hex,
    /// Values held across the await, by name.
    pub locals: Fields,
    /// Why the chain stops or what could not be read here.
    pub note: Option<String>,
    /// For a future waiting on several at once (`join!`, `select!`): each one's chain.
    pub branches: Vec<Branch>,
}

impl AwaitFrame {
    /// A frame of `head` at `address`, holding nothing, with no note and no branches.
    #[inline]
    pub fn new(head: Arc<FrameHead>, address: Hex) -> AwaitFrame {
        AwaitFrame {
            head,
            address,
            locals: Fields::new(),
            note: None,
            branches: Vec::new(),
        }
    }
}

impl std::ops::Deref for AwaitFrame {
    type Target = FrameHead;

    fn deref(&self) -> &FrameHead {
        &self.head
    }
}

impl Serialize for AwaitFrame {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let fields = if self.branches.is_empty() { 8 } else { 9 };
        let mut st = s.serialize_struct("AwaitFrame", fields)?;
        st.serialize_field("function", &self.head.function)?;
        st.serialize_field("future", &self.head.future)?;
        st.serialize_field("state", &self.head.state)?;
        st.serialize_field("location", &self.head.location)?;
        st.serialize_field("via", &self.head.via)?;
        st.serialize_field("address", &self.address)?;
        st.serialize_field("locals", &self.locals)?;
        st.serialize_field("note", &self.note)?;
        if self.branches.is_empty() {
            st.skip_field("branches")?;
        } else {
            st.serialize_field("branches", &self.branches)?;
        }
        st.end()
    }
}

/// A resource a task holds across an await: a value of a frame that a `holds` rule
/// describes (tokio: a `MutexGuard`, a `SemaphorePermit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    /// The rule's `kind` (`lock`, `permit`, …).
    pub kind: SmolStr,
    /// The resource's address: a task blocked on a leaf with an address field equal to it
    /// waits for this task.
    pub resource: Hex,
    /// The frame's value that holds it, and the frame (the async fn and its await line).
    pub local: SmolStr,
    pub function: Arc<str>,
    pub location: Option<SourceRef>,
}

/// One of the futures a combinator waits on, with its own chain.
#[derive(Debug, Clone, Serialize)]
pub struct Branch {
    pub backtrace: Vec<AwaitFrame>,
    pub blocked_on: Option<BlockedOn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    pub file: Option<Arc<str>>,
    pub line: u64,
}

impl FrameHead {
    /// Whether a frame of `location`, runtime code or not, is the program's own (`own`).
    pub fn own_code(runtime: bool, location: Option<&SourceRef>) -> bool {
        !runtime && location.is_some_and(|l| !l.in_dependency())
    }
}

impl SourceRef {
    /// In a crates.io dependency (`axum-0.8.9/src/serve.rs`, as paths from the registry
    /// are shown) or the standard library (`library/…`): not the program's own code.
    pub fn in_dependency(&self) -> bool {
        let Some(file) = self.file.as_deref() else {
            return false;
        };
        if file.starts_with("library/") {
            return true;
        }
        let first = file.split('/').next().unwrap_or("");
        first.rsplit_once('-').is_some_and(|(name, version)| {
            !name.is_empty()
                && version.split('.').count() >= 3
                && version.split('.').next().is_some_and(|major| {
                    !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit())
                })
        })
    }
}

/// What a task is waiting for.
#[derive(Debug, Clone, Serialize)]
pub struct BlockedOn {
    /// The `kind` of the matching `leaf` rule (`sleep`, `join`, `mutex`, …), or `unknown`.
    pub kind: SmolStr,
    /// The leaf future's type and address.
    pub future: Arc<str>,
    pub address: Hex,
    /// The leaf rule's other members (`task`, `deadline`, `fd`, …).
    pub fields: Fields,
}

#[derive(Debug, Clone, Serialize)]
pub struct FutureRef {
    /// The future's type as DWARF names it, e.g. `app::serve::{async_fn_env#0}`.
    #[serde(rename = "type")]
    pub ty: Arc<str>,
    pub address: Hex,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadReport {
    pub tid: u32,
    pub name: Option<String>,
    pub pc: Hex,
    pub sp: Hex,
    /// Thread pointer (`fs_base` on x86_64), None when the dump does not record it.
    pub fs_base: Option<Hex>,
    /// Address of the runtime this thread belongs to, if a root found one.
    pub runtime: Option<Hex>,
    /// The futures of the async fn and block bodies on its stack, outermost first, where
    /// the debug info locates them (optimized builds often do not); else, found by its
    /// stack, a running task's future. The task whose await chain holds one is the one it
    /// runs.
    pub polling: Vec<Hex>,
    /// The task it was running, where one's await chain holds a future it polls: its id
    /// (None for an executor without ids) and address.
    pub running: Option<RunningTask>,
    /// What the layout's root says about this thread (tokio: `current_task`, the id of
    /// the task it was polling).
    pub fields: Fields,
    /// The thread's native stack, innermost first (inlined calls expanded).
    pub frames: Vec<NativeFrame>,
}

/// A task a thread was running (`ThreadReport::running`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunningTask {
    pub id: Option<u64>,
    pub address: Hex,
}

impl RunningTask {
    /// How the report names it: `task 4`, or `task @ 0x…` without an id.
    pub fn name(&self) -> String {
        match self.id {
            Some(id) => format!("task {id}"),
            None => format!("task @ {:#x}", self.address.0),
        }
    }
}

impl ThreadReport {
    /// Whether it polls a future of `task`'s await chain: whether it runs `task`.
    pub fn runs(&self, task: &TaskReport) -> bool {
        task.backtrace
            .iter()
            .any(|f| self.polling.contains(&f.address))
    }
}

/// Why the process was dumped.
#[derive(Debug, Clone, Serialize)]
pub struct CrashReport {
    /// The signal the dump records (kernel cores: `NT_SIGINFO`; minidumps: the exception).
    pub signal: Option<u32>,
    pub fault_address: Option<Hex>,
    /// The crashing thread: the one in a panic hook, else the one the dump names.
    pub thread: Option<u32>,
    pub panic: Option<PanicReport>,
    /// The task that thread was running, when the layout says (tokio: `current_task`).
    pub task: Option<u64>,
    /// Stable crash signature (docs/signature.md): same crash, same signature.
    pub signature: String,
    /// What the signature was computed from.
    pub signature_lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PanicReport {
    pub message: Option<String>,
    /// Where `panic!` was called (as the compiler recorded the path).
    pub location: Option<SourceRef>,
}

/// One native stack frame.
#[derive(Debug, Clone, Serialize)]
pub struct NativeFrame {
    pub pc: Hex,
    /// Demangled function name where the binary's debug info knows it; otherwise None and
    /// `module` says where the code is.
    pub function: Option<String>,
    pub location: Option<SourceRef>,
    /// The file mapped at `pc` (`libc.so.6`), for frames outside the executable.
    pub module: Option<String>,
    /// A call inlined into the frame below it (same pc).
    pub inlined: bool,
    /// std's or a runtime's own code (the layouts' `runtime_code`), not the program's.
    pub runtime: bool,
}

/// The future passed to a runtime's `block_on`: not a task, but often the program's main
/// loop.
#[derive(Debug, Clone, Serialize)]
pub struct BlockOnReport {
    pub thread: Option<u32>,
    /// The runtime that thread runs, if known.
    pub runtime: Option<Hex>,
    pub future: FutureRef,
    /// How the future was found where DWARF gave no location for it (an optimized
    /// build): e.g. a scan of the polling frame's stack. Absent when DWARF located it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found_by: Option<String>,
    pub backtrace: Vec<AwaitFrame>,
    pub blocked_on: Option<BlockedOn>,
}

/// A reported member value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    Int(i128),
    /// A `bool`: `true`/`false`, not the byte.
    Bool(bool),
    /// An address (a pointer's value, `addr(x)`), as a hex string.
    Address(Hex),
    Str(String),
    List(Vec<FieldValue>),
    /// A collection (a type whose view has `items`): its length and its first items.
    Collection {
        len: u64,
        first: Vec<FieldValue>,
    },
    /// An object in memory: its type and address.
    Object {
        #[serde(rename = "type")]
        ty: String,
        address: Hex,
    },
}

impl RuntimeReport {
    /// Tasks listed: read, and pending.
    pub fn task_count_listed(&self) -> usize {
        self.tasks.len() + self.pending.as_ref().map_or(0, |p| p.listed().count())
    }

    /// Addresses of the tasks listed, read or not.
    pub fn task_addresses(&self) -> impl Iterator<Item = u64> + '_ {
        self.tasks.iter().map(|t| t.address.0).chain(
            self.pending
                .iter()
                .flat_map(|p| p.listed().map(|(_, address)| address.0)),
        )
    }

    /// Ids of the tasks listed, read or not.
    pub fn task_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.tasks.iter().filter_map(|t| t.id).chain(
            self.pending
                .iter()
                .flat_map(|p| p.listed().filter_map(|(id, _)| id)),
        )
    }
}

impl TaskReport {
    /// Gives back the spare capacity of its backtraces, for a report that is kept (a
    /// million of them, when every task is held): most chains are two to five futures.
    /// A streamed report is written and dropped, and is not worth the reallocation.
    pub fn shrink(&mut self) {
        fn frames(f: &mut Vec<AwaitFrame>) {
            f.shrink_to_fit();
            for frame in f {
                for b in &mut frame.branches {
                    frames(&mut b.backtrace);
                }
            }
        }
        frames(&mut self.backtrace);
    }

    /// Addresses its leaves name (in every branch): the resources it waits on (a
    /// semaphore, a channel), in chain order.
    pub fn waited_addresses(&self, mut each: impl FnMut(u64)) {
        fn addresses(b: &BlockedOn, each: &mut impl FnMut(u64)) {
            for (_, v) in &b.fields {
                if let FieldValue::Address(a) = v {
                    each(a.0);
                }
            }
        }
        fn leaves(frames: &[AwaitFrame], each: &mut impl FnMut(u64)) {
            for f in frames {
                for b in &f.branches {
                    if let Some(leaf) = &b.blocked_on {
                        addresses(leaf, each);
                    }
                    leaves(&b.backtrace, each);
                }
            }
        }
        if let Some(b) = &self.blocked_on {
            addresses(b, &mut each);
        }
        leaves(&self.backtrace, &mut each);
    }

    /// Where it waits in the program's own code: the innermost await frame (in any
    /// branch) that is not runtime code nor in a dependency, and has a line.
    pub fn own_await_line(&self) -> Option<&SourceRef> {
        fn own_line<'a>(frames: &'a [AwaitFrame], at: &mut Option<&'a SourceRef>) {
            for f in frames {
                if let (true, Some(l)) = (f.own, &f.location) {
                    *at = Some(l);
                }
                for b in &f.branches {
                    own_line(&b.backtrace, at);
                }
            }
        }
        let mut at = None;
        own_line(&self.backtrace, &mut at);
        at
    }

    /// The task's node in the wait-for graph: its id, or its address where the executor
    /// gives tasks none (embassy's, without its `trace` feature).
    pub fn graph_key(&self) -> u64 {
        self.id.unwrap_or(self.address.0)
    }

    /// How the graph and its warnings name the task: `task 7`, or `task @ 0x…`.
    pub fn graph_name(&self) -> String {
        RunningTask {
            id: self.id,
            address: self.address,
        }
        .name()
    }

    /// The graph key of the task this one waits for (a `join` leaf's `task` field): an id,
    /// or the address of a task of an executor without ids (a monoio JoinHandle's).
    pub fn waits_for(&self) -> Option<u64> {
        match self.blocked_on.as_ref()?.fields.get("task")? {
            FieldValue::Int(target) => u64::try_from(*target).ok(),
            FieldValue::Address(target) => Some(target.0),
            _ => None,
        }
    }

    /// The task at `address`, with nothing read about it yet.
    #[inline]
    pub fn new(id: Option<u64>, address: Hex) -> TaskReport {
        TaskReport {
            id,
            address,
            state: None,
            flags: Vec::new(),
            future: None,
            backtrace: Vec::new(),
            blocked_on: None,
            holds: Vec::new(),
            fields: Fields::new(),
            unavailable: Map::new(),
        }
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("error: {e}\n"))
    }

    /// Tasks listed, read or not.
    pub fn task_total(&self) -> usize {
        self.runtimes.iter().map(|r| r.task_count_listed()).sum()
    }

    /// With `--group`: each runtime's groups. Tasks already read are grouped now; pending
    /// ones as they are read: now if `read_now` (text output, which shows the groups
    /// before anything else), else while the JSON is written (the groups follow the
    /// tasks there). Pending tasks read for grouping only are dropped as they are read.
    pub fn group_tasks(&mut self, read_now: bool) {
        for rt in &mut self.runtimes {
            match rt.pending.as_mut() {
                Some(p) if p.tasks.reading().is_some() => {
                    let grouper = Arc::new(std::sync::Mutex::new(task_views::Grouper::default()));
                    p.grouper = Some(grouper.clone());
                    if read_now {
                        let _: Result<(), std::convert::Infallible> =
                            p.stream(|_, _: &mut ()| (), |_| Ok(()));
                        // A runtime with pending tasks has no read ones (`run` reads all
                        // of a runtime's tasks when a scan adds one to it).
                        rt.groups = Some(lock(&grouper).groups());
                    }
                }
                _ => rt.groups = Some(task_views::group_tasks(&rt.tasks)),
            }
        }
    }

    /// Shows only the tasks `filter` keeps (`--task`, `--state`, `--match`). Tasks already
    /// read that it does not keep are dropped now; pending ones are still all read as the
    /// report is written (what reading them finds, warnings and waits, stays the report's),
    /// and only those it keeps are written, grouped and drawn. Runtimes stay.
    pub fn show_only(&mut self, filter: task_views::TaskFilter) {
        if filter.is_empty() {
            return;
        }
        let filter = Arc::new(filter);
        for rt in &mut self.runtimes {
            rt.tasks.retain(|t| filter.keeps(t));
            if let Some(p) = &mut rt.pending {
                p.filter = Some(filter.clone());
            }
        }
    }

    /// Reads every pending task into its runtime's `tasks`, in order: the report held
    /// whole is one sink of the task stream. What reading found is added to the warnings,
    /// notes and usage; true if something could not be read.
    pub fn read_all_pending(&mut self) -> bool {
        // Asked once all are read; the lists that lead to them are gone by then.
        let readers: Vec<_> = self
            .runtimes
            .iter()
            .filter_map(|r| r.pending.as_ref()?.tasks.reading())
            .collect();
        for rt in &mut self.runtimes {
            let Some(p) = rt.pending.take() else { continue };
            let _: Result<(), std::convert::Infallible> = p.stream(
                |t, chunk: &mut std::sync::Mutex<Vec<TaskReport>>| lock(chunk).push(t),
                |chunk| {
                    rt.tasks.extend(lock(chunk).drain(..).map(|mut t| {
                        t.shrink();
                        t
                    }));
                    Ok(())
                },
            );
        }
        let late = late_findings_of(readers);
        self.warnings.extend(late.warnings);
        self.notes.extend(late.notes);
        if let Some(usage) = &mut self.usage {
            usage.add(&late.usage);
        }
        late.partial
    }

    /// Adds what reading the pending tasks found (`late_findings`, and the cycles of
    /// tasks waiting for each other) to the warnings and notes, and what the rules matched
    /// to the usage, for output that is not serialized (text), once the tasks are read.
    pub fn add_late_findings(&mut self) {
        if self.runtimes.iter().any(|r| r.pending.is_some()) {
            let mut late = self.late_findings();
            let usage = std::mem::take(&mut late.usage);
            let (warnings, notes) = self.with_late(late);
            self.warnings = warnings;
            self.notes = notes;
            if let Some(u) = &mut self.usage {
                u.add(&usage);
            }
        }
    }

    /// Reads every pending task for what reading finds (warnings, waits, what the rules
    /// matched), added as `add_late_findings` adds it, keeping no task: for output that
    /// shows none (`check --explain`).
    pub fn read_pending_for_findings(&mut self) {
        for p in self.runtimes.iter().filter_map(|r| r.pending.as_ref()) {
            let _: Result<(), std::convert::Infallible> = p.stream(|_, _: &mut ()| (), |_| Ok(()));
        }
        self.add_late_findings();
    }

    /// The warnings and notes with what reading the pending tasks found added.
    fn late_warnings_and_notes(&self) -> (Vec<String>, Vec<String>) {
        self.with_late(self.late_findings())
    }

    /// The warnings and notes with `late` (what reading found) and its cycles added.
    fn with_late(&self, late: LateFindings) -> (Vec<String>, Vec<String>) {
        let mut warnings = self.warnings.clone();
        warnings.extend(late.warnings);
        let mut facts = late.waits;
        for t in self.runtimes.iter().flat_map(|r| &r.tasks) {
            facts.add(t);
        }
        // The tasks of a cycle are read again for their await lines: cycles are few.
        warnings.extend(task_views::deadlock_warnings(&facts, |key| {
            task_views::named_in_graph(self, key)
        }));
        let mut notes = self.notes.clone();
        notes.extend(late.notes);
        (warnings, notes)
    }

    /// The listed task with this id, read now if it is pending (the crashing thread's
    /// task, whose backtrace the crash signature needs before the tasks are written).
    pub fn task_by_id(&self, id: u64) -> Option<std::borrow::Cow<'_, TaskReport>> {
        self.find_task(|t, _| t == Some(id))
    }

    /// The listed task whose `graph_key` is `key` (read now if pending).
    pub fn task_by_graph_key(&self, key: u64) -> Option<std::borrow::Cow<'_, TaskReport>> {
        self.find_task(|id, address| id.unwrap_or(address.0) == key)
    }

    /// The first listed task whose id and address `matches`, read now if pending.
    fn find_task(
        &self,
        matches: impl Fn(Option<u64>, Hex) -> bool,
    ) -> Option<std::borrow::Cow<'_, TaskReport>> {
        for r in &self.runtimes {
            if let Some(t) = r.tasks.iter().find(|t| matches(t.id, t.address)) {
                return Some(std::borrow::Cow::Borrowed(t));
            }
            if let Some(p) = &r.pending
                && let Some(index) = (0..p.tasks.len()).find(|&i| {
                    p.tasks
                        .listed(i)
                        .is_some_and(|(id, address)| matches(id, address))
                })
            {
                let read = p.tasks.read_now(index).or_else(|| {
                    let (id, address) = p.tasks.listed(index)?;
                    Some(TaskReport::new(id, address))
                });
                return read.map(std::borrow::Cow::Owned);
            }
        }
        None
    }

    /// What reading the pending tasks found (warnings, unavailable facts, which task
    /// waits for which); empty until they are written.
    pub fn late_findings(&self) -> LateFindings {
        late_findings_of(
            self.runtimes
                .iter()
                .filter_map(|r| r.pending.as_ref()?.tasks.reading()),
        )
    }
}

/// What these readers found, each asked once: one reader serves every runtime of a dump.
fn late_findings_of(readers: impl IntoIterator<Item = Arc<dyn pending::Reading>>) -> LateFindings {
    let mut all = LateFindings::default();
    let mut seen: Vec<Arc<dyn pending::Reading>> = Vec::new();
    for reader in readers {
        if seen.iter().any(|s| Arc::ptr_eq(s, &reader)) {
            continue;
        }
        seen.push(reader.clone());
        let f = reader.late_findings();
        all.warnings.extend(f.warnings);
        all.notes.extend(f.notes);
        all.partial |= f.partial;
        all.waits.extend(f.waits);
        all.usage.add(&f.usage);
    }
    all
}

/// `m`'s guard, poisoned or not: the groups behind these locks stay valid when a holder
/// panics, and that panic must end the run with its own message, not a second one here.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod hex_tests {
    use crate::Hex;

    #[test]
    fn addresses_serialize_as_lowercase_hex() {
        for (v, want) in [
            (0, "\"0x0\""),
            (0xf, "\"0xf\""),
            (0x5646_60dc_5d00, "\"0x564660dc5d00\""),
            (u64::MAX, "\"0xffffffffffffffff\""),
        ] {
            assert_eq!(serde_json::to_string(&Hex(v)).unwrap(), want);
        }
    }

    #[test]
    fn digits_are_those_of_format() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut values: Vec<u64> = (0..64).flat_map(|b| [1u64 << b, (1u64 << b) - 1]).collect();
        values.extend((0..10_000).map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed >> (seed % 64)
        }));
        values.extend([0x5646_60dc_5d00, 0xa, 0x9, 0xf0, 0xabcd_ef01_2345_6789]);
        for v in values {
            assert_eq!(Hex(v).digits(&mut [0u8; 18]), format!("{v:#x}"), "{v}");
        }
    }
}
