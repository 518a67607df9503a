//! One analysis end to end: open the dump, find and check the binary, load its DWARF, run
//! the layout, and join everything into a `Report` with an outcome (complete, partial,
//! failed). The CLI calls this; so do the tests.

use std::path::{Path, PathBuf};

use layoutdump_lang::Program;
use layoutdump_lang::program::RootKind;

use crate::dwarf::DebugInfo;
use crate::eval::Limits;
use crate::memory::{BinaryImage, Dump, DumpFormat, locate_binary};
use crate::report::{BinaryInfo, DumpInfo, Hex, LayoutInfo, Report, SCHEMA_VERSION, ThreadReport};
use crate::run::{ThreadContext, run};
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
pub fn analyze(
    program: &Program,
    dump_path: &Path,
    opts: &Options,
) -> Result<(Report, Outcome), AnalyzeError> {
    let mut dump = Dump::open(dump_path)?;
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
        runtimes: Vec::new(),
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
            })
            .collect(),
        warnings: dump.warnings.clone(),
    };
    let image = match locate_binary(&dump, opts.binary.as_deref(), &opts.debug_dirs, opts.force) {
        Ok(image) => image,
        Err(e) => {
            report
                .warnings
                .push(format!("{e}; only the threads are shown"));
            return Ok((report, Outcome::Partial));
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
        return Ok((report, Outcome::Partial));
    }
    let dbg = match DebugInfo::load(&image.debug_path) {
        Ok(d) => d,
        Err(e) => {
            report
                .warnings
                .push(format!("{e}; only the threads are shown"));
            return Ok((report, Outcome::Partial));
        }
    };
    // Stacks are unwound only when a root needs them.
    let needs_frames = program
        .roots
        .iter()
        .any(|r| matches!(r.kind, RootKind::Frame { .. }));
    let mut walker = needs_frames.then(|| {
        let (walker, warnings) = StackWalker::new(&dump);
        report.warnings.extend(warnings);
        walker
    });
    let threads: Vec<ThreadContext> = dump
        .threads
        .iter()
        .map(|t| ThreadContext {
            tid: t.tid,
            fs_base: t.regs.fs_base,
            frames: walker
                .as_mut()
                .map(|w| w.frames(dump.memory(), &t.regs))
                .unwrap_or_default(),
        })
        .collect();
    let findings = run(
        program,
        &dbg,
        dump.memory(),
        image.load_bias,
        &threads,
        opts.limits,
    );
    for t in &mut report.threads {
        t.runtime = findings.thread_runtime.get(&t.tid).copied();
    }
    report.runtimes = findings.runtimes;
    report.warnings.extend(findings.warnings);
    if report.runtimes.is_empty() {
        report.warnings.push(format!(
            "layout `{}` found no runtime in this dump: is it the right layout for this program?",
            program.name
        ));
    }
    let complete = report.warnings.is_empty()
        && report
            .runtimes
            .iter()
            .all(|r| r.unavailable.is_empty() && r.tasks.iter().all(|t| t.unavailable.is_empty()));
    // A cycle of tasks waiting for each other is a finding about the program, not missing
    // data: it is reported with the warnings but does not make the report partial.
    for cycle in crate::report::triage::wait_cycles(&report) {
        report
            .warnings
            .push(crate::report::triage::cycle_warning(&cycle));
    }
    let outcome = if complete {
        Outcome::Complete
    } else {
        Outcome::Partial
    };
    Ok((report, outcome))
}

fn binary_info(image: &BinaryImage) -> BinaryInfo {
    BinaryInfo {
        path: image.path.display().to_string(),
        build_id: image.build_id_hex(),
        load_bias: Hex(image.load_bias),
    }
}
