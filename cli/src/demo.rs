//! `layoutdump demo`: the main job on the bundled demo program. Builds the tokio fixture,
//! starts it, waits until it says it is parked, captures it, kills it, and prints the
//! report next to the ground truth the program printed about itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use layoutdump_capture::{CaptureFormat, CaptureOptions, capture};
use layoutdump_engine::analyze::{Options, analyze};
use layoutdump_engine::layout_loader::compile_layout;
use layoutdump_engine::report::{TextOptions, render_text};

#[derive(Parser, Debug)]
pub struct DemoArgs {
    /// Keep the dump here instead of a temporary file.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Capture a minidump instead of an ELF core.
    #[arg(long)]
    minidump: bool,
}

/// The fixture workspace, found from this crate's source location: the demo runs from a
/// checkout (`cargo run -- demo`).
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Kills the demo program however `demo` ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn demo(args: DemoArgs) -> Result<ExitCode> {
    let dir = fixtures_dir();
    eprintln!("[1/4] building the demo program (tests/fixtures/tokio-tasks)…");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "tokio-tasks", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .status()
        .context("cannot run cargo to build the demo program")?;
    if !status.success() {
        bail!("building the demo program failed (see cargo's output above)");
    }
    let exe = dir.join("target/debug/tokio-tasks");
    eprintln!("[2/4] starting it and waiting until its tasks are parked…");
    let child = Command::new(&exe)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let mut running = Running(child);
    let truth = wait_ready(&mut running.0, Duration::from_secs(30))?;
    let pid = running.0.id() as i32;

    let dump = args
        .keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("layoutdump-demo-{pid}.core")));
    let format = if args.minidump {
        CaptureFormat::Minidump
    } else {
        CaptureFormat::Core
    };
    eprintln!("[3/4] capturing pid {pid} to {}…", dump.display());
    capture(
        pid,
        &dump,
        &CaptureOptions {
            format,
            ..Default::default()
        },
    )?;
    drop(running);

    eprintln!("[4/4] layoutdump run tokio {}\n", dump.display());
    let program = compile_layout("tokio").map_err(anyhow::Error::msg)?;
    let (report, outcome) = analyze(&program, &dump, &Options::default())?;
    print!(
        "{}",
        render_text(
            &report,
            TextOptions {
                locals: true,
                group: false,
                all_frames: false
            }
        )
    );
    println!("\nthe program said about itself (before it was captured):");
    for line in summarize(&truth) {
        println!("  {line}");
    }
    println!(
        "layoutdump found {} tasks in {} runtimes",
        report.task_total(),
        report.runtimes.len()
    );
    if args.keep.is_none() {
        let _ = std::fs::remove_file(&dump);
    }
    Ok(crate::exit_code(outcome))
}

/// Reads the program's output until `READY`; returns its `GROUND_TRUTH` line.
fn wait_ready(child: &mut Child, timeout: Duration) -> Result<String> {
    let stdout = child.stdout.take().context("demo program has no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut truth = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == "READY" => return Ok(truth),
            Ok(line) => {
                if let Some(t) = line.strip_prefix("GROUND_TRUTH ") {
                    truth = t.to_string();
                }
            }
            Err(_) => bail!("the demo program did not print READY within {timeout:?}"),
        }
    }
}

/// One line per runtime of the program's own report: kind, task count, id range.
fn summarize(truth: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(truth) else {
        return vec![truth.to_string()];
    };
    let runtimes = v["runtimes"].as_array().cloned().unwrap_or_default();
    runtimes
        .iter()
        .map(|rt| {
            let ids: Vec<u64> = rt["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["id"].as_u64())
                .collect();
            let range = match (ids.iter().min(), ids.iter().max()) {
                (Some(a), Some(b)) => format!(", ids {a}–{b}"),
                _ => String::new(),
            };
            format!(
                "{} runtime: {} live tasks{range}",
                rt["kind"].as_str().unwrap_or("?"),
                rt["alive"]
            )
        })
        .collect()
}
