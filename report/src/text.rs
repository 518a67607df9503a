//! The text report for people: a header naming what was read, then each runtime with its
//! tasks one per line (id, state, root future), then threads and warnings.

use std::fmt::Write as _;

use super::{AwaitFrame, BlockedOn, CrashReport, FieldValue, Report, TaskReport};

/// What the text report shows beyond the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// Values held across each await (always in JSON/YAML).
    pub locals: bool,
    /// Show each runtime's task groups instead of every task.
    pub group: bool,
    /// Show the runtime's and std's frames too, not folded.
    pub all_frames: bool,
}

/// The text report as one string (a report whose tasks are all read, or a small one).
pub fn render_text(r: &Report, opts: TextOptions) -> String {
    let mut out = Vec::new();
    // Writing to memory fails only as the sink of a pending task list could, never.
    let _ = write_text(r, opts, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the text report to `w` as it is made. A runtime's pending tasks (see
/// `deferred`) are read while the ones before them are written, so the text of a million
/// tasks is never held; what reading them found is written with the warnings and notes
/// at the end.
pub fn write_text(
    r: &Report,
    opts: TextOptions,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut s = String::new();
    let mut streamed = false;
    if let Some(d) = &r.dump {
        let name = d.process_name.as_deref().unwrap_or("?");
        let pid = d.pid.map_or(String::new(), |p| format!(" pid {p}"));
        let _ = writeln!(
            s,
            "dump: {} ({}, {name}{pid}, {} threads)",
            d.path,
            d.format,
            r.threads.len()
        );
    }
    if let Some(b) = &r.binary {
        let _ = writeln!(
            s,
            "binary: {} (build-id {})",
            b.path,
            b.build_id.as_deref().unwrap_or("none")
        );
    }
    let _ = writeln!(
        s,
        "layout: {}",
        format!("{} {}", r.layout.name, r.layout.version).trim_end()
    );
    if let Some(c) = &r.crash {
        crash(&mut s, r, c, opts);
    }
    let polling = Polling::of(r);
    // Per runtime, the ids of the tasks shown once `--state` or `--match` kept them (the
    // threads' lines name a task only if it is shown).
    let mut kept: Vec<Option<Vec<u64>>> = Vec::with_capacity(r.runtimes.len());
    if r.runtimes.is_empty() {
        let _ = writeln!(s, "\nno runtime found (see the warnings below)");
    }
    for rt in &r.runtimes {
        let workers = rt.workers.map_or(String::new(), |w| {
            format!(", {w} worker{}", if w == 1 { "" } else { "s" })
        });
        let grouped = match (&rt.groups, opts.group) {
            (Some(groups), true) => Some(groups),
            _ => None,
        };
        // With `--state` or `--match`, which tasks are shown is known once they are read:
        // their text is made before the header that counts them (only theirs is held).
        let (tasks, shown) = match &rt.pending {
            Some(p) if !p.shown_when_listed() => match grouped {
                Some(groups) => {
                    kept.push(Some(
                        groups.iter().flat_map(|g| &g.task_ids).copied().collect(),
                    ));
                    (groups.iter().map(|g| g.count).sum(), None)
                }
                None => {
                    let (text, ids) = filtered_tasks(p, opts, &polling);
                    streamed |= p.tasks.reading().is_some();
                    let shown = rt.tasks.len() + ids.len();
                    let ids = rt.tasks.iter().map(|t| t.id).chain(ids).flatten();
                    kept.push(Some(ids.collect()));
                    (shown, Some(text))
                }
            },
            _ => {
                kept.push(None);
                (rt.task_count_listed(), None)
            }
        };
        let _ = writeln!(
            s,
            "\nruntime {} @ {:#x}{workers}, {tasks} task{}",
            rt.kind,
            rt.address.0,
            if tasks == 1 { "" } else { "s" }
        );
        if !rt.threads.is_empty() {
            let tids: Vec<String> = rt.threads.iter().map(|t| t.to_string()).collect();
            let _ = writeln!(s, "  threads: {}", tids.join(" "));
        }
        for (name, v) in &rt.fields {
            let _ = writeln!(s, "  {name}: {}", show(v));
        }
        for (name, why) in &rt.unavailable {
            let _ = writeln!(s, "  {name}: unavailable ({why})");
        }
        if let Some(groups) = grouped {
            for g in groups {
                group(&mut s, g);
            }
            continue;
        }
        for t in &rt.tasks {
            task(&mut s, t, opts, &polling);
        }
        match (shown, &rt.pending) {
            (Some(text), _) => s.push_str(&text),
            (None, Some(p)) => {
                w.write_all(s.as_bytes())?;
                s.clear();
                let text = |t: TaskReport, s: &mut String| task(s, &t, opts, &polling);
                p.stream(text, |t: &String| w.write_all(t.as_bytes()))?;
                streamed |= p.tasks.reading().is_some();
            }
            (None, None) => {}
        }
    }
    if !r.block_on.is_empty() {
        let _ = writeln!(s, "\nblock_on futures (run by a thread, not tasks):");
        for b in &r.block_on {
            let on = b
                .thread
                .map_or(String::new(), |t| format!(" on thread {t}"));
            let root = b.backtrace.first().map_or(&*b.future.ty, |f| &*f.function);
            let how = b
                .found_by
                .as_ref()
                .map_or(String::new(), |h| format!("  (found by {h})"));
            tree(
                &mut s,
                &format!("block_on{on}  {root}{how}"),
                &b.backtrace,
                b.blocked_on.as_ref(),
                opts,
            );
        }
    }
    if !r.threads.is_empty() {
        let _ = writeln!(s, "\nthreads:");
        for t in &r.threads {
            let name = t.name.as_deref().unwrap_or("");
            let rt = t
                .runtime
                .map_or(String::new(), |a| format!("  runtime @ {:#x}", a.0));
            let shown = |id: u64| {
                r.runtimes.iter().zip(&kept).any(|(rt, kept)| match kept {
                    Some(ids) => ids.contains(&id),
                    None => rt.task_ids().any(|x| x == id),
                })
            };
            let task = match t.fields.get("current_task") {
                Some(FieldValue::Int(id)) if shown(*id as u64) => {
                    format!("  polling task {id}")
                }
                // A task whose await chain holds a future the thread polls.
                _ => t
                    .running
                    .map_or(String::new(), |task| format!("  polling {}", task.name())),
            };
            let _ = writeln!(s, "  {:>7} {name:<16} pc {:#x}{rt}{task}", t.tid, t.pc.0);
            native_frames(&mut s, &t.frames, opts);
        }
    }
    // The tasks just read add what they found (`--group` read them before, and its
    // caller added it then).
    let late = streamed.then(|| r.late_warnings_and_notes());
    let (warnings, notes) = match &late {
        Some((warnings, notes)) => (warnings, notes),
        None => (&r.warnings, &r.notes),
    };
    if !notes.is_empty() {
        let _ = writeln!(s, "\nnotes:");
        for n in notes {
            let _ = writeln!(s, "  - {n}");
        }
    }
    if !warnings.is_empty() {
        let _ = writeln!(s, "\nwarnings:");
        for warning in warnings {
            let _ = writeln!(s, "  - {warning}");
        }
    }
    w.write_all(s.as_bytes())
}

/// The crash first: what happened and where, the crashing thread's own frames (runtime
/// and std frames folded), and the async backtrace of the task it was running.
fn crash(s: &mut String, r: &Report, c: &CrashReport, opts: TextOptions) {
    let what = match (&c.panic, c.signal) {
        (Some(p), _) => {
            let at = p.location.as_ref().map_or(String::new(), |l| {
                format!(" at {}:{}", l.file.as_deref().unwrap_or("?"), l.line)
            });
            format!(
                "panic{at}: {}",
                p.message.as_deref().unwrap_or("<message not readable>")
            )
        }
        (None, Some(sig)) => {
            let addr = c
                .fault_address
                .map_or(String::new(), |a| format!(" at address {:#x}", a.0));
            format!("signal {sig}{addr}")
        }
        (None, None) => "unknown".into(),
    };
    let _ = writeln!(s, "\nCRASH: {what}");
    let thread = c.thread.map_or("?".to_string(), |t| t.to_string());
    let running = c
        .task
        .map_or(String::new(), |t| format!(", running task {t}"));
    let _ = writeln!(s, "  thread {thread}{running}; signature {}", c.signature);
    if let Some(t) = r.threads.iter().find(|t| Some(t.tid) == c.thread) {
        native_frames(s, &t.frames, opts);
    }
    if let Some(id) = c.task
        && let Some(t) = r.task_by_id(id)
    {
        task(s, &t, opts, &Polling::of(r));
    }
}

/// The text of the pending tasks a filter that looks into them keeps, and their ids.
fn filtered_tasks(
    p: &crate::Pending,
    opts: TextOptions,
    polling: &Polling,
) -> (String, Vec<Option<u64>>) {
    let ids = std::sync::Mutex::new(Vec::new());
    let text = |t: TaskReport, s: &mut String| {
        crate::lock(&ids).push(t.id);
        task(s, &t, opts, polling)
    };
    let mut all = String::new();
    let _: Result<(), std::convert::Infallible> = p.stream(text, |t: &String| {
        all.push_str(t);
        Ok(())
    });
    (all, ids.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// A native stack, innermost first: the program's own frames with file:line, std's and
/// the runtime's folded into counts (`[14 std/runtime frames]`) unless --all-frames.
fn native_frames(s: &mut String, frames: &[super::NativeFrame], opts: TextOptions) {
    let mut folded = 0;
    for f in frames {
        if f.runtime && !opts.all_frames {
            folded += 1;
            continue;
        }
        if folded > 0 {
            let _ = writeln!(s, "            [{folded} std/runtime frames]");
            folded = 0;
        }
        let name = f.function.as_deref().or(f.module.as_deref()).unwrap_or("?");
        let at = f.location.as_ref().map_or(String::new(), |l| {
            format!("  at {}:{}", l.file.as_deref().unwrap_or("?"), l.line)
        });
        let _ = writeln!(s, "            {name}{at}");
    }
    if folded > 0 {
        let _ = writeln!(s, "            [{folded} std/runtime frames]");
    }
}

/// What each thread was polling when the dump was taken: a task, by the id the layout
/// gives (tokio's `current_task`), or a future (`ThreadReport::polling`) that a task's
/// await chain holds.
struct Polling<'r> {
    by_id: Vec<(u64, u32)>,
    threads: &'r [crate::ThreadReport],
}

impl<'r> Polling<'r> {
    fn of(r: &'r Report) -> Polling<'r> {
        let by_id = r
            .threads
            .iter()
            .filter_map(|t| match t.fields.get("current_task") {
                Some(FieldValue::Int(id)) => Some((u64::try_from(*id).ok()?, t.tid)),
                _ => None,
            })
            .collect();
        Polling {
            by_id,
            threads: &r.threads,
        }
    }

    /// The thread running task `t`, if one says so.
    fn thread_of(&self, t: &TaskReport) -> Option<u32> {
        let by_id = self.by_id.iter().find(|(id, _)| Some(*id) == t.id);
        by_id
            .map(|(_, tid)| *tid)
            .or_else(|| self.threads.iter().find(|th| th.runs(t)).map(|th| th.tid))
    }
}

/// One task: a header line, then its async backtrace as a tree, root future first and
/// the future it is parked on last, then what it is blocked on.
fn task(s: &mut String, t: &TaskReport, opts: TextOptions, polling: &Polling) {
    let state = t.state.as_deref().unwrap_or("?");
    let root = t
        .backtrace
        .first()
        .map(|f| &*f.function)
        .or(t.future.as_ref().map(|f| &*f.ty));
    // A `name` member (async-std's, a custom executor's) heads the task.
    let name = match t.fields.get("name") {
        Some(FieldValue::Str(n)) => format!(" {n:?}"),
        _ => String::new(),
    };
    // A task without an id is named by its address, as the wait-for graph names it.
    let header = format!(
        "{}{name} [{state}]  {}",
        t.graph_name(),
        root.unwrap_or("<future unavailable>")
    );
    let thread = polling.thread_of(t);
    if thread.is_some() || t.state.as_deref() == Some("running") {
        // Its chain is where it last suspended, not what it waits on now: it is running.
        let _ = writeln!(s, "\n  {header}");
        frames(s, "    ", &t.backtrace, opts);
        let on = thread.map_or_else(
            || "running (no thread says it polls it)".to_string(),
            |tid| format!("running on thread {tid}: its native frames show where it is now"),
        );
        let _ = writeln!(s, "    {on}");
        let at = t
            .backtrace
            .iter()
            .rev()
            .find_map(|f| f.location.as_ref())
            .map_or(String::new(), |l| {
                format!(" at {}:{}", l.file.as_deref().unwrap_or("?"), l.line)
            });
        if let Some(b) = &t.blocked_on {
            let _ = writeln!(s, "    last suspended{at}, on {}", blocked_text(b));
        }
    } else {
        tree(s, &header, &t.backtrace, t.blocked_on.as_ref(), opts);
    }
    for h in &t.holds {
        let at = h.location.as_ref().map_or(String::new(), |l| {
            format!(" at {}:{}", l.file.as_deref().unwrap_or("?"), l.line)
        });
        let _ = writeln!(
            s,
            "    holds {} {:#x} ({} in {}{at})",
            h.kind, h.resource.0, h.local, h.function
        );
    }
    if !t.flags.is_empty() {
        let _ = writeln!(s, "    flags: {}", t.flags.join(" "));
    }
    for (field, v) in &t.fields {
        if field != "name" || name.is_empty() {
            let _ = writeln!(s, "    {field}: {}", show(v));
        }
    }
    for (name, why) in &t.unavailable {
        let _ = writeln!(s, "    {name}: unavailable ({why})");
    }
}

/// A header, an async backtrace as a tree and what it is blocked on.
fn tree(
    s: &mut String,
    header: &str,
    backtrace: &[AwaitFrame],
    blocked_on: Option<&BlockedOn>,
    opts: TextOptions,
) {
    let _ = writeln!(s, "\n  {header}");
    frames(s, "    ", backtrace, opts);
    if let Some(b) = blocked_on {
        let _ = writeln!(s, "    blocked on {}", blocked_text(b));
    }
}

fn blocked_text(b: &BlockedOn) -> String {
    let details: Vec<String> = b
        .fields
        .iter()
        .map(|(n, v)| format!("{n} {}", show(v)))
        .collect();
    if details.is_empty() && b.kind == "unknown" {
        // The frame above names the type: say how to give it a meaning.
        "unknown (no rule describes it and generic descent sees nothing in it: a `leaf` \
         rule can, docs/language.md \"Async backtraces\")"
            .to_string()
    } else if details.is_empty() {
        b.kind.to_string()
    } else {
        format!("{}: {}", b.kind, details.join(", "))
    }
}

/// The frames of one chain under `indent`; a combinator's branches are drawn beneath it,
/// each as its own chain, ending with what that branch is blocked on.
fn frames(s: &mut String, indent: &str, backtrace: &[AwaitFrame], opts: TextOptions) {
    let width = backtrace
        .iter()
        .map(|f| f.function.chars().count())
        .max()
        .unwrap_or(0)
        .min(70);
    for (i, f) in backtrace.iter().enumerate() {
        let last = i + 1 == backtrace.len();
        let branch = if last { "└─" } else { "├─" };
        let cont = if last { "  " } else { "│ " };
        if let Some(note) = &f.note
            && f.function.is_empty()
        {
            let _ = writeln!(s, "{indent}{branch} ({note})");
            continue;
        }
        let at = match &f.location {
            Some(l) => format!("  at {}:{}", l.file.as_deref().unwrap_or("?"), l.line),
            None => String::new(),
        };
        let state = match f.state.as_deref() {
            Some(st) if !st.starts_with("Suspend") => format!("  [{st}]"),
            _ => String::new(),
        };
        let line = format!("{indent}{branch} {:<width$}{at}{state}", f.function);
        let _ = writeln!(s, "{}", line.trim_end());
        if let Some(note) = &f.note {
            let _ = writeln!(s, "{indent}{cont}   ({note})");
        }
        if opts.locals {
            for (n, v) in &f.locals {
                let _ = writeln!(s, "{indent}{cont}   {n} = {}", show(v));
            }
        } else if f.state.is_none() && !f.locals.is_empty() {
            // What a rule says of a future that is not an async fn (hyper's connection:
            // what it is reading, writing): facts, not values held, so always shown.
            let facts: Vec<String> = f
                .locals
                .iter()
                .map(|(n, v)| format!("{n} {}", show(v)))
                .collect();
            let _ = writeln!(s, "{indent}{cont}   ({})", facts.join(", "));
        }
        for (b, br) in f.branches.iter().enumerate() {
            let _ = writeln!(s, "{indent}{cont}   [branch {}]", b + 1);
            let inner = format!("{indent}{cont}     ");
            frames(s, &inner, &br.backtrace, opts);
            if let Some(blocked) = &br.blocked_on {
                let _ = writeln!(s, "{inner}blocked on {}", blocked_text(blocked));
            }
        }
    }
}

/// One group: how many tasks, which ids (the first few), and their shared stack.
fn group(s: &mut String, g: &super::task_views::TaskGroup) {
    let ids: Vec<String> = g.task_ids.iter().take(12).map(|i| i.to_string()).collect();
    let more = if g.task_ids.len() > 12 {
        format!(", … ({} more)", g.task_ids.len() - 12)
    } else {
        String::new()
    };
    let state = g.state.as_deref().unwrap_or("?");
    let plural = if g.count == 1 { "" } else { "s" };
    // Named by where the program's own code waits: its innermost own frame.
    let name = g
        .frames
        .iter()
        .rev()
        .find(|f| f.is_own())
        .map_or(String::new(), |f| {
            let at = f.location.as_ref().map_or(String::new(), |l| {
                format!(" at {}:{}", l.file.as_deref().unwrap_or("?"), l.line)
            });
            format!("  {}{at}", f.function)
        });
    let _ = writeln!(
        s,
        "\n  {} task{plural} [{state}]{name}  ids {}{more}",
        g.count,
        ids.join(", ")
    );
    let width = g
        .frames
        .iter()
        .map(|f| f.function.chars().count())
        .max()
        .unwrap_or(0)
        .min(70);
    for (i, f) in g.frames.iter().enumerate() {
        let branch = if i + 1 == g.frames.len() {
            "└─"
        } else {
            "├─"
        };
        let at = f.location.as_ref().map_or(String::new(), |l| {
            format!("  at {}:{}", l.file.as_deref().unwrap_or("?"), l.line)
        });
        let line = format!("    {branch} {:<width$}{at}", f.function);
        let _ = writeln!(s, "{}", line.trim_end());
    }
    if let Some(kind) = &g.blocked_on {
        let _ = writeln!(s, "    blocked on {kind}");
    }
}

/// A value for a line of text: long ones (a big string, many items) are cut.
fn show(v: &FieldValue) -> String {
    let full = show_full(v);
    if full.chars().count() > MAX_SHOWN {
        let cut: String = full.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    } else {
        full
    }
}

const MAX_SHOWN: usize = 120;

fn show_full(v: &FieldValue) -> String {
    match v {
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Address(a) => format!("{:#x}", a.0),
        FieldValue::Str(s) => s.clone(),
        FieldValue::List(items) => items.iter().map(show).collect::<Vec<_>>().join(" | "),
        FieldValue::Collection { len, first } => {
            // Objects say little one by one: their type once is enough.
            if let Some(FieldValue::Object { ty, .. }) = first.first()
                && first.iter().all(|f| matches!(f, FieldValue::Object { .. }))
            {
                return format!("[{len} × {ty}]");
            }
            let items: Vec<String> = first.iter().map(show).collect();
            let more = if *len as usize > first.len() {
                ", …"
            } else {
                ""
            };
            format!("[{}{more}] (len {len})", items.join(", "))
        }
        FieldValue::Object { ty, address } => format!("{ty} @ {:#x}", address.0),
    }
}
