//! One analysis end to end: open the dump, find and check the binary, load its DWARF, run
//! the layout, and join everything into a `Report` with an outcome (complete, partial,
//! failed). The CLI calls this; so do the tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use layoutdump_lang::Program;

use crate::dwarf::LinkAddr;
use crate::dwarf::{DebugInfo, IndexOrigin};
use crate::eval::Limits;
use crate::memory::{BinaryImage, Dump, DumpFormat, locate_binary};
use crate::report::{
    BinaryInfo, DumpInfo, Hex, LayoutInfo, NativeFrame, Report, SCHEMA_VERSION, SourceRef,
    ThreadReport,
};
use crate::run::{ThreadContext, run};
use crate::unwind::Frame;
use crate::unwind::StackWalker;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The executable, when the path the dump records is wrong or absent.
    pub binary: Option<PathBuf>,
    /// Where separate debug files are found (`.build-id/ab/cdef….debug`, debuglink).
    pub debug_dirs: Vec<PathBuf>,
    /// Use the binary even if its build id differs from the dump's.
    pub force: bool,
    pub limits: Limits,
    /// Debug info already loaded, shared by the analyses of many dumps of one binary
    /// (`triage`); None loads it for this analysis only.
    pub dwarf_cache: Option<Arc<DwarfCache>>,
    /// Where name indexes are kept between runs (the CLI uses the user's cache
    /// directory); None builds the index every time.
    pub index_cache: Option<crate::dwarf::IndexCache>,
    /// Draw progress on stderr while a large task list is read (the CLI sets it when
    /// stderr is a terminal).
    pub progress: bool,
    /// Leave each runtime's listed tasks to be read as the report is written
    /// (`task_stream`), in every format and view, so that memory stays bounded by a
    /// window of tasks; the report's outcome is then known only once it is written
    /// (`Report::late_findings`). Otherwise they are read before `analyze` returns.
    pub defer_tasks: bool,
}

/// A debug file: its path and build id.
type DebugFileKey = (PathBuf, Option<Vec<u8>>);

/// Loaded debug info by file path and build id, so that the dumps of one binary index its
/// DWARF once.
#[derive(Default)]
pub struct DwarfCache {
    loaded: Mutex<HashMap<DebugFileKey, Arc<DebugInfo>>>,
}

impl std::fmt::Debug for DwarfCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.loaded.lock().map_or(0, |m| m.len());
        write!(f, "DwarfCache({n} binaries)")
    }
}

impl DwarfCache {
    fn get_or_load(
        &self,
        path: &Path,
        build_id: Option<&[u8]>,
        index_cache: Option<&crate::dwarf::IndexCache>,
        progress: bool,
    ) -> Result<Arc<DebugInfo>, crate::dwarf::DwarfError> {
        let key = (path.to_path_buf(), build_id.map(<[u8]>::to_vec));
        if let Some(d) = crate::sync::lock(&self.loaded).get(&key) {
            return Ok(d.clone());
        }
        // Loaded outside the lock: two threads may both load it once; the first one kept.
        let d = Arc::new(DebugInfo::load_with(path, index_cache, progress)?);
        Ok(crate::sync::lock(&self.loaded)
            .entry(key)
            .or_insert(d)
            .clone())
    }
}

/// How complete a report is; also the process exit status (docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything the layout asks for was found and read.
    Complete,
    /// A report was made, but something is missing: see its warnings.
    Partial,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Dump(#[from] crate::memory::DumpError),
}

/// Analyzes `dump_path` with `program`. Only an unreadable dump is an error: a missing
/// binary, missing debug info or a heap-less minidump still give a report of the threads,
/// with warnings saying what is missing and what to do.
/// What a `root scan` reads: the writable memory the dump itself holds, and the main
/// executable's mapped range (where vtables and code are).
fn scan_space(dump: &Dump) -> crate::scan::ScanSpace {
    use crate::memory::RegionSource;
    let regions = dump
        .regions()
        .iter()
        .filter(|r| matches!(r.source, RegionSource::Dump { .. }) && r.writable != Some(false))
        .map(|r| (r.start, r.end))
        .collect();
    let image = dump.main_module().map_or((0, 0), |m| {
        let lo = m.mappings.iter().map(|x| x.start).min().unwrap_or(0);
        let hi = m.mappings.iter().map(|x| x.end).max().unwrap_or(0);
        (lo, hi)
    });
    crate::scan::ScanSpace { regions, image }
}

pub fn analyze(
    program: &Program,
    dump_path: &Path,
    opts: &Options,
) -> Result<(Report, Outcome), AnalyzeError> {
    let start = std::time::Instant::now();
    let dump = Dump::open(dump_path)?;
    let opened = start.elapsed();
    let (mut report, outcome) = analyze_dump(program, dump, dump_path, opts);
    report.timings.0.insert(0, ("open dump", opened));
    Ok((report, outcome))
}

/// `analyze` of a dump already opened (the interpreter fuzz target reads its mutated
/// dumps from memory); `dump_path` is how the report names it.
pub fn analyze_dump(
    program: &Program,
    mut dump: Dump,
    dump_path: &Path,
    opts: &Options,
) -> (Report, Outcome) {
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        layout: LayoutInfo {
            name: program.name.clone(),
            version: program.version.clone(),
        },
        dump: Some(DumpInfo {
            path: dump_path.display().to_string(),
            format: match dump.format {
                DumpFormat::ElfCore => "ELF core".into(),
                DumpFormat::Minidump => "minidump".into(),
            },
            pid: dump.pid,
            process_name: dump.process_name.clone(),
        }),
        binary: None,
        crash: None,
        runtimes: Vec::new(),
        block_on: Vec::new(),
        threads: dump
            .threads
            .iter()
            .map(|t| ThreadReport {
                tid: t.tid,
                name: t.name.clone(),
                pc: Hex(t.regs.rip),
                sp: Hex(t.regs.rsp),
                fs_base: t.regs.fs_base.map(Hex),
                runtime: None,
                polling: Vec::new(),
                running: None,
                fields: Default::default(),
                frames: Vec::new(),
            })
            .collect(),
        warnings: dump.warnings.clone(),
        notes: Vec::new(),
        usage: None,
        timings: Default::default(),
    };
    let mut timings = crate::report::Timings::default();
    // Native stacks need only the mapped files' unwind info, not DWARF: they are shown
    // even when the binary's debug info is missing.
    let (mut walker, walk_warnings) = StackWalker::new(&dump);
    report.warnings.extend(walk_warnings);
    let stacks: Vec<Vec<Frame>> = timings.time("unwind threads", || {
        dump.threads
            .iter()
            .map(|t| walker.frames(dump.memory(), &t.regs))
            .collect()
    });
    for (t, stack) in report.threads.iter_mut().zip(&stacks) {
        t.frames = stack.iter().map(|f| unsymbolized(&dump, f)).collect();
    }
    let image = match locate_binary(&dump, opts.binary.as_deref(), &opts.debug_dirs, opts.force) {
        Ok(image) => image,
        Err(e) => {
            report
                .warnings
                .push(format!("{e}; only the threads are shown"));
            return (report, Outcome::Partial);
        }
    };
    if opts.binary.is_some()
        && let Some(main) = dump.main_module_index()
        && let Err(e) = dump.set_module_file(main, &image.path)
    {
        report.warnings.push(e.to_string());
    }
    report.binary = Some(binary_info(&image));
    report.warnings.extend(image.warnings.iter().cloned());
    if !dump.has_heap() {
        report.warnings.push(
            "this dump holds thread stacks only, no heap (a default minidump): tasks live on the heap and cannot be \
             listed. Capture with `layoutdump capture PID -o FILE` (ELF core or a minidump with all writable memory), \
             or configure the crash reporter to include heap memory"
                .into(),
        );
        return (report, Outcome::Partial);
    }
    let started = std::time::Instant::now();
    let index_cache = opts.index_cache.as_ref();
    let loaded = match &opts.dwarf_cache {
        Some(cache) => cache.get_or_load(
            &image.debug_path,
            image.build_id.as_deref(),
            index_cache,
            opts.progress,
        ),
        None => DebugInfo::load_with(&image.debug_path, index_cache, opts.progress).map(Arc::new),
    };
    let phase = match loaded.as_ref().map(|d| d.index_origin()) {
        Ok(IndexOrigin::Cache) => "load debug info, index from cache",
        Ok(IndexOrigin::BuiltAndStored) => "load and index debug info, cache it",
        Ok(IndexOrigin::BuiltNotStored(_)) => "load and index debug info (not cached)",
        _ => "load and index debug info",
    };
    timings.add(phase, started.elapsed());
    let dbg = match loaded {
        Ok(d) => d,
        Err(e) => {
            report
                .warnings
                .push(format!("{e}; only the threads are shown"));
            return (report, Outcome::Partial);
        }
    };
    // Shared with the reader of deferred tasks, which reads them after this returns.
    let dump = Arc::new(dump);
    let mut threads: Vec<ThreadContext> = dump
        .threads
        .iter()
        .zip(stacks)
        .map(|(t, frames)| ThreadContext {
            tid: t.tid,
            fs_base: t.regs.fs_base,
            frames,
            panicking: false,
        })
        .collect();
    // Symbolizing the threads (line tables, tens of ms for a large binary) needs nothing
    // from the layout run, nor the run from it: they run side by side.
    let symbolize_all = |out: &mut [ThreadReport]| {
        let started = std::time::Instant::now();
        for (t, ctx) in out.iter_mut().zip(&threads) {
            t.frames = symbolize(&dbg, &dump, image.load_bias, &ctx.frames);
            t.polling =
                crate::polling::polled_futures(&dbg, dump.memory(), image.load_bias, &ctx.frames)
                    .into_iter()
                    .map(Hex)
                    .collect();
            for f in &mut t.frames {
                f.runtime = f
                    .function
                    .as_deref()
                    .is_none_or(|name| program.is_runtime_code(name));
            }
        }
        started.elapsed()
    };
    if !dbg.has_types() {
        timings.add("symbolize threads", symbolize_all(&mut report.threads));
        report.warnings.push(format!(
            "{} has line tables only (no types or variables in its debug info: built with `debug = \"line-tables-only\"` \
             or `debug = 1`): tasks cannot be read; rebuild with `debug = 2`, or pass its full debug file with --debug-dir. \
             Only the threads are shown",
            image.debug_path.display()
        ));
        report.timings = timings;
        return (report, Outcome::Partial);
    }
    // What reads each runtime's tasks: as the report is written, or all at once below.
    let reader = Arc::new(crate::task_stream::TaskReader::new(
        dbg.clone(),
        dump.clone(),
        image.load_bias,
        opts.limits,
        opts.progress,
    ));
    let (symbolizing, findings) = rayon::join(
        || symbolize_all(&mut report.threads),
        || {
            run(
                program,
                &dbg,
                dump.memory(),
                image.load_bias,
                &threads,
                &scan_space(&dump),
                crate::run::Settings {
                    limits: opts.limits,
                    progress: opts.progress,
                    reader: reader.clone(),
                },
            )
        },
    );
    timings.add("symbolize threads (beside the run)", symbolizing);
    timings.extend(&findings.timings);
    // std's panic machinery on a thread's (symbolized) stack: where a panic is searched.
    for (ctx, t) in threads.iter_mut().zip(&report.threads) {
        ctx.panicking = t.frames.iter().any(|f| {
            f.function
                .as_deref()
                .is_some_and(|n| n.contains("panicking::"))
        });
    }
    let (findings_panic, panic_warnings) = timings.time("find the crash", || {
        crate::crash::search(
            program,
            &dbg,
            dump.memory(),
            image.load_bias,
            opts.limits,
            &threads,
        )
    });
    report.warnings.extend(panic_warnings);
    for t in &mut report.threads {
        t.runtime = findings.thread_runtime.get(&t.tid).copied();
        t.fields = findings
            .thread_fields
            .get(&t.tid)
            .cloned()
            .unwrap_or_default();
    }
    report.runtimes = findings.runtimes;
    reader.start(program);
    crate::polling::find_running(&mut report, dump.memory());
    report.block_on = findings.block_on;
    report.notes = findings.notes;
    if dump.captured.monotonic_ns.is_none() && uses_dump_time(program) {
        report.notes.push(
            "the layout's dump_time() has no value: this dump does not record when it was taken on the \
             monotonic clock (`layoutdump capture`, in both formats, and `run --pid` write it; kernel cores, \
             gcore and other writers' minidumps do not), so the members computed from it (time left on a timer) are left out; deadlines are shown"
                .into(),
        );
    }
    report.usage = Some(findings.usage);
    report.warnings.extend(findings.warnings);
    if report.runtimes.is_empty() {
        report.warnings.push(format!(
            "layout `{}` found no runtime in this dump: is it the right layout for this program?",
            program.name
        ));
    }
    // The report held whole (`check --explain`, `triage`, a library's caller): every
    // task read now, as the writers would read them.
    let unread = !opts.defer_tasks && report.read_all_pending();
    let complete = !unread
        && report.warnings.is_empty()
        && report
            .runtimes
            .iter()
            .all(|r| r.unavailable.is_empty() && r.tasks.iter().all(|t| t.unavailable.is_empty()));
    // A cycle of tasks waiting for each other is a finding about the program, not missing
    // data: it is reported with the warnings but does not make the report partial. With
    // tasks still to be read, it is found as they are written (`report::serialize`).
    let cycles = if report.runtimes.iter().any(|r| r.pending.is_some()) {
        Vec::new()
    } else {
        use crate::report::task_views::{WaitFacts, deadlock_warnings, named_in_graph};
        deadlock_warnings(&WaitFacts::of(&report), |key| named_in_graph(&report, key))
    };
    report.warnings.extend(cycles);
    let signal = dump
        .crash
        .as_ref()
        .and_then(|c| c.signal.map(|s| (s, c.tid, c.fault_addr)));
    report.crash = crate::crash::crash_report(program, &report, signal, findings_panic);
    report.timings = timings;
    let outcome = if complete {
        Outcome::Complete
    } else {
        Outcome::Partial
    };
    (report, outcome)
}

/// A frame before (or without) debug info: its pc and the file mapped there.
fn unsymbolized(dump: &Dump, f: &Frame) -> NativeFrame {
    NativeFrame {
        pc: Hex(f.pc),
        function: None,
        location: None,
        module: module_name(dump, f.pc),
        inlined: false,
        runtime: true,
    }
}

/// Frames in the executable get function names and file:line, inlined calls expanded
/// (innermost first, all at the same pc); others keep their module name.
fn symbolize(dbg: &DebugInfo, dump: &Dump, bias: u64, stack: &[Frame]) -> Vec<NativeFrame> {
    let main = dump.main_module();
    let mut out = Vec::new();
    for f in stack {
        let in_main = main.is_some_and(|m| m.contains(f.pc));
        let inlined = if in_main {
            dbg.frames_at(LinkAddr(f.lookup_pc.wrapping_sub(bias)))
        } else {
            Vec::new()
        };
        if inlined.is_empty() {
            out.push(unsymbolized(dump, f));
            continue;
        }
        let last = inlined.len() - 1;
        for (i, frame) in inlined.into_iter().enumerate() {
            out.push(NativeFrame {
                pc: Hex(f.pc),
                function: frame.function,
                location: frame.location.map(|l| SourceRef {
                    file: Some(crate::backtrace::display_path(&Arc::from(
                        dbg.relative_to_build_dir(&l.file),
                    ))),
                    line: u64::from(l.line.unwrap_or(0)),
                }),
                module: None,
                inlined: i < last,
                runtime: false,
            });
        }
    }
    out
}

fn module_name(dump: &Dump, pc: u64) -> Option<String> {
    let m = dump.modules.iter().find(|m| m.contains(pc))?;
    Some(m.path.file_name().map_or_else(
        || m.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    ))
}

fn binary_info(image: &BinaryImage) -> BinaryInfo {
    BinaryInfo {
        path: image.path.display().to_string(),
        build_id: image.build_id_hex(),
        load_bias: Hex(image.load_bias),
    }
}

/// Whether any expression of `program` calls `dump_time()`.
fn uses_dump_time(program: &Program) -> bool {
    use layoutdump_lang::program::{Builtin, Expr};
    program.exprs.iter().any(|e| {
        matches!(
            e,
            Expr::Call {
                func: Builtin::DumpTime,
                ..
            }
        )
    })
}
