//! The `layoutdump` command: parses flags into settings and calls the libraries. Thin on
//! purpose: analysis lives in the engine, rendering in the report crate.

mod auto;
mod check;
mod demo;
mod live;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use layoutdump_engine::analyze::{Options, Outcome};
use layoutdump_engine::dwarf::IndexCache;
use layoutdump_engine::eval::Limits;
use layoutdump_engine::layout_loader::compile_layout;
use layoutdump_engine::report::task_views::TaskFilter;
use layoutdump_engine::report::{Report, TextOptions, Writer, writer};

/// Async task backtraces for any Rust executor, from crash dumps and DWARF.
///
/// layoutdump reads a dump's memory (ELF core or minidump) plus the binary's debug info
/// and lists the runtimes and tasks in it, using a layout file that describes the
/// executor: tokio, smol, async-std, futures-executor, embassy, monoio, compio and
/// glommio are shipped and found on their own (`layoutdump run DUMP`); write your own
/// for a custom executor (docs/guides/custom-executor.md).
///
/// Exit status: 0 complete report; 1 error (nothing analyzed, or the report could not be
/// written); 2 usage error; 3 partial report (printed, but something is missing: see its
/// warnings).
#[derive(Parser, Debug)]
#[command(name = "layoutdump", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Report the runtimes and tasks in a dump.
    ///
    /// Example: layoutdump run tokio crash.core --format json
    Run(RunArgs),
    /// Check a layout: compile it, and with --binary resolve its roots and types in that
    /// binary's debug info. No dump needed.
    ///
    /// Example: layoutdump check myexec.layout --binary target/debug/app
    Check(check::CheckArgs),
    /// Write a dump of a running process that `run` can fully use (all writable memory,
    /// every thread's registers including the thread pointer). The process is paused only
    /// while it is read.
    ///
    /// Example: layoutdump capture 4242 -o app.core
    Capture(CaptureArgs),
    /// Analyze many dumps in parallel and group them by crash signature: which dumps
    /// are the same crash, how often, first and last seen, one example each.
    ///
    /// Example: layoutdump triage /var/crash/ --format jsonl
    Triage(TriageArgs),
    /// Find types in a binary's debug info and print their layout: fields with offsets,
    /// enum variants with tags, and for an async fn each await's line. For writing layouts.
    ///
    /// Example: layoutdump types target/debug/app 'tokio::runtime::task::core::Header'
    Types(TypesArgs),
    /// Build and start the bundled demo program (a tokio service with two runtimes),
    /// capture it, and report its tasks next to what the program says it has.
    Demo(demo::DemoArgs),
}

#[derive(Parser, Debug)]
struct RunArgs {
    /// A shipped layout by name (tokio), a path to a .layout file, or `auto` (every
    /// shipped layout that finds a runtime). With a single argument, that argument is the
    /// dump and the layout is `auto`: `layoutdump run crash.core`; with `--pid` and no
    /// argument, the layout is `auto` too.
    #[arg(default_value = "auto")]
    layout: String,
    /// The dump: an ELF core (gcore, kernel, `layoutdump capture`) or a minidump.
    dump: Option<PathBuf>,
    /// Instead of a dump, a running process: it is paused while its memory is read (a
    /// snapshot, as `capture` takes), then resumes; the report is the same as for a dump.
    #[arg(long, conflicts_with = "dump")]
    pid: Option<i32>,
    /// The executable that was running, if the path recorded in the dump is wrong or gone.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// A folder holding separate debug files (`.build-id/ab/cdef….debug` or debuglink names).
    #[arg(long = "debug-dir")]
    debug_dirs: Vec<PathBuf>,
    /// Use the binary even if its build id differs from the dump's (results may be wrong).
    #[arg(long)]
    force: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Show the values each task holds across its awaits (JSON and YAML always have them).
    #[arg(long)]
    locals: bool,
    /// In the crash section, show std's and the runtime's frames too (folded by default).
    #[arg(long = "all-frames")]
    all_frames: bool,
    /// Coalesce tasks whose async stacks are the same (same frames and await lines; values
    /// ignored), most common first, with their count and ids.
    #[arg(long)]
    group: bool,
    /// Only tasks in this state (idle, scheduled, running, done, cancelled); repeatable.
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Only the task with this id; repeatable. Picked from the ids listed: the other
    /// tasks are read as the report is written, not held.
    #[arg(long = "task", value_name = "ID")]
    tasks: Vec<u64>,
    /// Only tasks with a frame whose function, future type or file:line matches this
    /// regular expression (or whose blocked-on kind does), e.g. `--match 'mutex|semaphore'`.
    #[arg(long = "match", value_name = "REGEX")]
    pattern: Option<String>,
    /// Instead of the report, write the wait-for graph (task → task for JoinHandles,
    /// task → resource for locks, channels, sockets) in Graphviz DOT. Cycles are red.
    #[arg(long, value_enum)]
    graph: Option<GraphFormat>,
    /// After the report, print on stderr how long each phase took (opening the dump,
    /// indexing debug info, walking task lists, reading tasks and backtraces, output).
    #[arg(long)]
    timings: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Bounds on the work a dump or a layout can cause. When one is hit, the value or list
/// it cut short is reported as such (exit code 3) and the rest of the report goes on.
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Most items one list, slice or `for` may yield (guards against corrupt lengths and cycles).
    #[arg(long = "limit-items", default_value_t = Limits::default().items)]
    limit_items: u64,
    /// Deepest nesting of layout functions and view members.
    #[arg(long = "limit-depth", default_value_t = Limits::default().depth)]
    limit_depth: u32,
    /// Most expression evaluations in one run (all tasks together).
    #[arg(long = "limit-steps", default_value_t = Limits::default().steps)]
    limit_steps: u64,
    /// Most rhai operations in one call of a layout's hook.
    #[arg(long = "limit-hook-operations", default_value_t = Limits::default().hook.operations)]
    limit_hook_operations: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        let mut l = Limits {
            items: self.limit_items,
            depth: self.limit_depth,
            steps: self.limit_steps,
            ..Limits::default()
        };
        l.hook.operations = self.limit_hook_operations;
        l
    }
}

#[derive(Parser, Debug)]
struct TypesArgs {
    /// The binary (or its separate debug file).
    binary: PathBuf,
    /// Text the qualified type name must contain; several words must all appear.
    pattern: String,
    /// Show at most this many types.
    #[arg(long, default_value_t = 20)]
    max: usize,
}

#[derive(Parser, Debug)]
struct TriageArgs {
    /// Dump files, or folders of dumps (their files, not recursively).
    #[arg(required = true)]
    dumps: Vec<PathBuf>,
    /// The layout to analyze them with.
    #[arg(long, default_value = "tokio")]
    layout: String,
    /// The executable, when the paths recorded in the dumps are wrong or gone.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// A folder holding separate debug files.
    #[arg(long = "debug-dir")]
    debug_dirs: Vec<PathBuf>,
    /// A table for people, or one JSON object per group per line for a pipeline.
    #[arg(long, value_enum, default_value_t = TriageFormat::Table)]
    format: TriageFormat,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum TriageFormat {
    Table,
    Jsonl,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    Dot,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Yaml,
}

#[derive(Parser, Debug)]
struct CaptureArgs {
    /// The process id.
    pid: i32,
    /// Where to write the dump.
    #[arg(short, long)]
    output: PathBuf,
    /// ELF core (default; what gdb and the kernel write) or minidump (with all writable
    /// memory added, so that tasks can be listed).
    #[arg(long, value_enum, default_value_t = DumpKind::Core)]
    format: DumpKind,
    /// For a capture made from the process's own crash handler (layoutdump-oncrash does
    /// this): the signal it is dying of, written into the core as the kernel would.
    #[arg(long = "crash-signal", value_name = "SIGNO", requires = "crash_tid")]
    crash_signal: Option<i32>,
    /// The thread that received the crash signal.
    #[arg(long = "crash-tid", value_name = "TID")]
    crash_tid: Option<i32>,
    /// The faulting address (si_addr) of the crash signal.
    #[arg(long = "crash-address", value_name = "ADDR", value_parser = parse_address, default_value = "0")]
    crash_address: u64,
    /// The crash signal's si_code.
    #[arg(
        long = "crash-code",
        value_name = "CODE",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    crash_code: i32,
}

/// Decimal or 0x-hexadecimal.
fn parse_address(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| e.to_string())
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum DumpKind {
    Core,
    Minidump,
    /// A default crash reporter's minidump: stacks only, no heap (tasks cannot be listed
    /// from it; useful to see what such a dump still shows).
    MinidumpStacksOnly,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Check(args) => check::check(args),
        Command::Capture(args) => capture(args),
        Command::Demo(args) => demo::demo(args),
        Command::Triage(args) => triage_command(args),
        Command::Types(args) => types_command(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Library errors already say their cause; add only causes not yet said.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message.push_str(": ");
                    message.push_str(&cause);
                }
            }
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(mut args: RunArgs) -> Result<ExitCode> {
    // `layoutdump run crash.core`: one argument that is a file, not a layout.
    if args.dump.is_none() && args.pid.is_none() {
        if args.layout == "auto" {
            anyhow::bail!("give a dump file (`layoutdump run crash.core`), or --pid PID");
        }
        let is_layout = args.layout.ends_with(".layout")
            || args.layout == "auto"
            || layoutdump_engine::layout_loader::runnable().any(|n| n == args.layout);
        if is_layout {
            anyhow::bail!(
                "give a dump file, or --pid PID (e.g. `layoutdump run {} crash.core`)",
                args.layout
            );
        }
        args.dump = Some(PathBuf::from(&args.layout));
        args.layout = "auto".into();
    }
    let filter = TaskFilter {
        states: args.states,
        ids: args.tasks,
        pattern: args
            .pattern
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .context("--match is not a valid regular expression")?,
    };
    let opts = Options {
        binary: args.binary.clone(),
        debug_dirs: args.debug_dirs.clone(),
        force: args.force,
        limits: args.limits.limits(),
        dwarf_cache: Some(Default::default()),
        index_cache: IndexCache::from_env(),
        // A progress line while a large task list is read, on a terminal only: a
        // pipeline's stderr stays clean.
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        // Every task is written as the tasks are read, and groups, filters and the graph
        // are made as tasks are read, so memory does not grow with the task count.
        defer_tasks: true,
    };
    let (mut report, outcome) = match (&args.dump, args.pid) {
        (Some(dump), _) => auto::analyze_layout(&args.layout, dump, &opts)?,
        (None, Some(pid)) => live::analyze_live(&args.layout, pid, &opts)?,
        (None, None) => anyhow::bail!("give a dump file or --pid PID"),
    };
    report.show_only(filter);
    if let Some(GraphFormat::Dot) = args.graph {
        emit(&report, &writer::Dot, args.output.as_deref())?;
        return Ok(exit_code(written_outcome(&report, outcome)));
    }
    if args.group {
        // Text shows the groups first: its pending tasks are read for them now, and what
        // reading found is added to its warnings. JSON and YAML group them as they write
        // them, and add what reading found after the runtimes.
        let text = matches!(args.format, Format::Text);
        report.group_tasks(text);
        if text {
            report.add_late_findings();
        }
    }
    let output_started = std::time::Instant::now();
    let text = TextOptions {
        locals: args.locals,
        group: args.group,
        all_frames: args.all_frames,
    };
    let writer: &dyn Writer = match args.format {
        Format::Text => &writer::Text(text),
        Format::Json => &writer::Json,
        Format::Yaml => &writer::Yaml,
    };
    emit(&report, writer, args.output.as_deref())?;
    if args.timings {
        let mut t = report.timings.clone();
        t.add("output", output_started.elapsed());
        eprint!("{}", t.render());
    }
    let outcome = written_outcome(&report, outcome);
    // The process ends here: freeing a million task reports one by one, or the name
    // index of a large binary (millions of entries, ~0.3 s), would only delay the exit.
    std::mem::forget(report);
    std::mem::forget(opts);
    Ok(exit_code(outcome))
}

/// The outcome of a report once written: tasks read as they were written may have had
/// facts that could not be read.
fn written_outcome(report: &Report, analyzed: Outcome) -> Outcome {
    match analyzed {
        Outcome::Complete if report.late_findings().partial => Outcome::Partial,
        o => o,
    }
}

pub(crate) fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Complete => ExitCode::SUCCESS,
        Outcome::Partial => ExitCode::from(3),
    }
}

/// Writes `report` with `writer` to its destination.
fn emit(report: &Report, writer: &dyn Writer, output: Option<&std::path::Path>) -> Result<()> {
    write_streamed(output, |w, terminal| writer.write(report, w, terminal))
}

/// Sends a report to its destination as it is made (it can be gigabytes: the tasks are
/// read while it is written): `write` is told whether that is a terminal.
fn write_streamed(
    output: Option<&std::path::Path>,
    write: impl FnOnce(&mut dyn Write, bool) -> std::io::Result<()>,
) -> Result<()> {
    // Smaller than a chunk of tasks as the workers render them (256 tasks, a kilobyte
    // or so each): `BufWriter` writes a chunk straight from the worker's buffer rather
    // than copying it into its own (a gigabyte at a million tasks, on the writing thread).
    const BUFFER: usize = 64 << 10;
    match output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(BUFFER, file);
            write(&mut w, false)
                .and_then(|()| w.flush())
                .with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            let terminal = std::io::IsTerminal::is_terminal(&stdout);
            // Not a terminal: straight to the file or pipe. Rust's stdout is line-buffered
            // and looks for the last newline in every write, which on a gigabyte of JSON
            // (one line) is a scan of every byte on the thread that writes.
            let raw = (!terminal).then(|| stdout_file(&mut stdout)).flatten();
            let written = match raw {
                Some(file) => {
                    let mut w = std::io::BufWriter::with_capacity(BUFFER, file);
                    write(&mut w, terminal).and_then(|()| w.flush())
                }
                None => {
                    let mut w = std::io::BufWriter::with_capacity(BUFFER, stdout);
                    write(&mut w, terminal).and_then(|()| w.flush())
                }
            };
            stdout_written(written)
        }
    }
}

/// What writing to standard output came to. A closed pipe (`| head`) is not an error
/// worth a message; a full disk behind `> report.json` is: the report is not all there.
fn stdout_written(written: std::io::Result<()>) -> Result<()> {
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write the report to standard output"),
    }
}

/// Standard output as a file of its own (a duplicate of descriptor 1), after what Rust's
/// stdout holds is flushed; None where that is not possible.
fn stdout_file(stdout: &mut std::io::StdoutLock<'_>) -> Option<std::fs::File> {
    stdout.flush().ok()?;
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        stdout
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::fs::File::from)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

fn write_out(text: &str, output: Option<&std::path::Path>) -> Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            stdout_written(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
        }
    }
}

fn capture(args: CaptureArgs) -> Result<ExitCode> {
    use layoutdump_capture::{CaptureFormat, CaptureOptions, capture};
    let format = match args.format {
        DumpKind::Core => CaptureFormat::Core,
        DumpKind::Minidump => CaptureFormat::Minidump,
        DumpKind::MinidumpStacksOnly => CaptureFormat::MinidumpStacksOnly,
    };
    let crash = args.crash_signal.zip(args.crash_tid).map(|(signal, tid)| {
        layoutdump_capture::CrashSignal {
            signal,
            code: args.crash_code,
            address: args.crash_address,
            tid,
        }
    });
    let summary = capture(
        args.pid,
        &args.output,
        &CaptureOptions {
            format,
            crash,
            ..Default::default()
        },
    )?;
    eprintln!(
        "wrote {} ({} threads, {} regions, {} MiB)",
        summary.path.display(),
        summary.threads,
        summary.regions,
        summary.bytes / (1024 * 1024)
    );
    Ok(ExitCode::SUCCESS)
}

fn triage_command(args: TriageArgs) -> Result<ExitCode> {
    use layoutdump_engine::triage;
    use std::io::IsTerminal;
    let program = compile_layout(&args.layout).map_err(anyhow::Error::msg)?;
    let dumps = triage::expand(&args.dumps).context("cannot list the dumps")?;
    if dumps.is_empty() {
        anyhow::bail!("no dump files in {:?}", args.dumps);
    }
    let opts = Options {
        binary: args.binary,
        debug_dirs: args.debug_dirs,
        limits: args.limits.limits(),
        index_cache: IndexCache::from_env(),
        // Only the crash is kept, and it reads the task it needs: the others are listed,
        // never read.
        defer_tasks: true,
        ..Options::default()
    };
    // Progress on a terminal only: a pipeline's stderr should stay clean.
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let progress = |done: usize, total: usize| {
        if tty && started.elapsed().as_secs_f32() > 1.0 {
            eprint!("\r[{done}/{total}] dumps analyzed");
        }
    };
    let groups = triage::triage(&program, &dumps, &opts, &progress);
    if tty && started.elapsed().as_secs_f32() > 1.0 {
        eprintln!();
    }
    let mut out = String::new();
    match args.format {
        TriageFormat::Jsonl => {
            for g in &groups {
                out.push_str(&serde_json::to_string(g)?);
                out.push('\n');
            }
        }
        TriageFormat::Table => {
            use std::fmt::Write as _;
            let _ = writeln!(out, "{} dumps, {} groups", dumps.len(), groups.len());
            let _ = writeln!(
                out,
                "{:>6}  {:<16}  {:<20}  {:<20}  CRASH",
                "COUNT", "SIGNATURE", "FIRST SEEN", "LAST SEEN"
            );
            for g in &groups {
                let _ = writeln!(
                    out,
                    "{:>6}  {:<16}  {:<20}  {:<20}  {}",
                    g.count,
                    g.signature,
                    g.first_seen.as_deref().unwrap_or("?"),
                    g.last_seen.as_deref().unwrap_or("?"),
                    g.crash
                );
                let _ = writeln!(out, "{:>6}  example: {}", "", g.example);
            }
        }
    }
    write_out(&out, None)?;
    Ok(ExitCode::SUCCESS)
}

fn types_command(args: TypesArgs) -> Result<ExitCode> {
    let image = layoutdump_engine::memory::BinaryImage::open_static(&args.binary, &[])?;
    let dbg = layoutdump_engine::dwarf::DebugInfo::load_with(
        &image.debug_path,
        IndexCache::from_env().as_ref(),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )?;
    let (text, total) =
        layoutdump_engine::type_layout::describe_types(&dbg, &args.pattern, args.max);
    let mut out = text;
    if total == 0 {
        out.push_str(&format!("no type name contains {:?}\n", args.pattern));
    } else if total > args.max {
        out.push_str(&format!(
            "… {} more (use --max, or a longer pattern)\n",
            total - args.max
        ));
    }
    write_out(&out, None)?;
    Ok(if total == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
