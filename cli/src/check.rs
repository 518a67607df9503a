//! `layoutdump check`: compiles a layout and, given a binary, resolves what it names
//! there. Every problem is printed with its line and column.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use layoutdump_engine::check::check_against;
use layoutdump_engine::dwarf::{DebugInfo, IndexCache};
use layoutdump_engine::layout_loader::compile_layout;
use layoutdump_engine::memory::BinaryImage;

#[derive(Parser, Debug)]
pub struct CheckArgs {
    /// A shipped layout by name or a path to a .layout file.
    layout: String,
    /// A binary built with debug info: check the layout's roots, rule types and casts
    /// against it.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// A folder holding separate debug files.
    #[arg(long = "debug-dir")]
    debug_dirs: Vec<PathBuf>,
    /// Run the layout on this dump and say what each root and rule found: how many
    /// values each root yielded on how many threads (and why not), how many values each
    /// rule matched. For "why is my task list empty?".
    #[arg(long, value_name = "DUMP")]
    explain: Option<PathBuf>,
    /// Print what the compiler made of the layout (with the layouts it uses): every root,
    /// rule, view and function, each name resolved to the slot, function or builtin it
    /// means, and which values are kept for a later member.
    #[arg(long)]
    compiled: bool,
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let program = match compile_layout(&args.layout) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return Ok(ExitCode::from(1));
        }
    };
    if args.compiled {
        // A closed pipe (`| head`) ends the output, not the program with a panic.
        use std::io::Write as _;
        let _ = std::io::stdout().write_all(program.listing().as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dump) = &args.explain {
        return explain(&program, &args, dump);
    }
    let Some(binary) = args.binary else {
        println!(
            "{}: compiles ({} roots, {} rules, {} views)",
            args.layout,
            program.roots.len(),
            program.rules.len(),
            program.views.len()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let image = BinaryImage::open_static(&binary, &args.debug_dirs)?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let dbg = DebugInfo::load_with(&image.debug_path, IndexCache::from_env().as_ref(), tty)?;
    let diags = check_against(&program, &dbg);
    if diags.list.is_empty() {
        println!("{}: ok against {}", args.layout, binary.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{diags}");
        Ok(ExitCode::from(1))
    }
}

/// `check LAYOUT --explain DUMP`: the layout's roots and rules with what each found in
/// the dump, then the report's own warnings and unavailable members (where a chain stops).
fn explain(
    program: &layoutdump_lang::Program,
    args: &CheckArgs,
    dump: &std::path::Path,
) -> Result<ExitCode> {
    use layoutdump_engine::analyze::{Options, analyze};
    let opts = Options {
        binary: args.binary.clone(),
        debug_dirs: args.debug_dirs.clone(),
        index_cache: IndexCache::from_env(),
        // Only counts are shown: the tasks are read and dropped, a window at a time.
        defer_tasks: true,
        ..Options::default()
    };
    let (mut report, _) = analyze(program, dump, &opts)?;
    report.read_pending_for_findings();
    use std::fmt::Write as _;
    let mut out = format!("{} on {}:\n", args.layout, dump.display());
    if let Some(usage) = &report.usage {
        out.push_str(&usage.render(program));
    }
    for rt in &report.runtimes {
        let _ = writeln!(
            out,
            "runtime {} at {:#x}: {} tasks",
            rt.kind,
            rt.address.0,
            rt.task_count_listed()
        );
        for (name, why) in &rt.unavailable {
            let _ = writeln!(out, "  {name}: unavailable: {why}");
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    // A closed pipe (`| head`) ends the output, not the program with a panic.
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}
