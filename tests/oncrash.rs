//! layoutdump-oncrash: a panic in a task, a segfault in a spawn_blocking thread and abort()
//! in a task, each dumped by the library at the moment of the crash; the report names the
//! crash as the program reported it before crashing.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::report::Report;
use common::{Profile, build_fixture, run_layoutdump};
use serde_json::Value;

struct Crashed {
    truth: Value,
    stdout: String,
    status: std::process::ExitStatus,
    report: Report,
}

/// Runs the `tokio-crash` fixture with the library installed and crash `kind`: at the
/// moment of the crash the library runs `layoutdump capture` on the process. Returns what
/// the program printed, how it ended, and the report on the dump the library wrote.
fn crash(kind: &str) -> Crashed {
    let exe = build_fixture("tokio-crash", Profile::Dev);
    let dir = common::root()
        .join("target/test-scratch/oncrash")
        .join(kind);
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(exe)
        .args(["oncrash", dir.to_str().unwrap(), kind])
        .env("LAYOUTDUMP", env!("CARGO_BIN_EXE_layoutdump"))
        .output()
        .expect("run the fixture");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let truth = stdout
        .lines()
        .find_map(|l| l.strip_prefix("GROUND_TRUTH "))
        .map(|t| serde_json::from_str(t).unwrap())
        .unwrap_or_else(|| panic!("no ground truth: {stdout}"));
    let core = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .expect("the library wrote a dump")
        .unwrap()
        .path();
    let report = run_layoutdump(&["run", "tokio", core.to_str().unwrap(), "--format", "json"]);
    let report = serde_json::from_slice(&report.stdout).expect("JSON report");
    Crashed {
        truth,
        stdout,
        status: out.status,
        report,
    }
}

#[test]
fn panic_in_a_task() {
    let c = crash("parse");
    let crash = c.report.crash.as_ref().unwrap();
    let panic = crash.panic.as_ref().unwrap();
    assert_eq!(panic.message.as_deref(), c.truth["message"].as_str());
    assert_eq!(
        panic.location.as_ref().map(|l| l.line),
        c.truth["line"].as_u64()
    );
    assert_eq!(
        crash.task,
        c.truth["task"].as_u64(),
        "the task that panicked"
    );
}

#[test]
fn segfault_in_a_blocking_thread() {
    let c = crash("segv");
    assert_eq!(
        c.status.signal(),
        Some(11),
        "the process still dies of SIGSEGV"
    );
    let tid: u32 = c
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("CRASHING_THREAD "))
        .unwrap()
        .parse()
        .unwrap();
    let crash = c.report.crash.as_ref().unwrap();
    assert_eq!(crash.signal, Some(11));
    assert_eq!(crash.fault_address.as_deref(), Some("0x0"));
    assert_eq!(crash.thread, Some(tid));
    // Unwinding goes through the signal frame to the code that faulted.
    let thread = c.report.threads.iter().find(|t| t.tid == tid).unwrap();
    let own: Vec<&str> = thread
        .frames
        .iter()
        .filter(|f| !f.runtime)
        .filter_map(|f| f.function.as_deref())
        .collect();
    assert!(
        own.iter().any(|f| f.starts_with("tokio_crash::oncrash")),
        "{own:?}"
    );
}

#[test]
fn abort_in_a_task() {
    let c = crash("abort");
    assert_eq!(
        c.status.signal(),
        Some(6),
        "the process still dies of SIGABRT"
    );
    let crash = c.report.crash.as_ref().unwrap();
    assert_eq!(crash.signal, Some(6));
    assert_eq!(crash.task, c.truth["task"].as_u64());
}
