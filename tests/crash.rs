//! Crashes: a tokio program whose task panics, held in its panic hook the way a crash
//! reporter would hold it, captured. The report must name the panic, thread and task, and
//! sign it: one signature per panic, whichever task reached it.

mod common;

use std::path::PathBuf;

use common::report::Report;
use common::{Profile, build_fixture, run_layoutdump, start_with};
use serde_json::Value;

struct Crash {
    truth: Value,
    core: PathBuf,
}

fn crash(kind: &str, profile: Profile) -> Crash {
    crash_of("tokio-crash", kind, profile)
}

/// Fixture `fixture` run with argument `kind`, held in its panic hook, captured.
fn crash_of(fixture: &str, kind: &str, profile: Profile) -> Crash {
    let exe = build_fixture(fixture, profile);
    let running = start_with(&exe, &[kind]);
    let dir = common::root().join("target/fixture-dumps/crash");
    std::fs::create_dir_all(&dir).unwrap();
    // Tests run in parallel and may capture the same kind: one file per capture.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let core = dir.join(format!("{kind}-{profile:?}-{n}.core"));
    common::capture_to(&running, &core);
    Crash {
        truth: running.truth.clone(),
        core,
    }
}

fn report(c: &Crash) -> Report {
    let out = run_layoutdump(&["run", "tokio", c.core.to_str().unwrap(), "--format", "json"]);
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// The report names the panic (message and location), the crashing thread and task as the
/// program itself reported them.
#[test]
fn panics_are_reported_with_message_location_thread_and_task() {
    for profile in [Profile::Dev, Profile::Release] {
        for kind in ["parse", "budget"] {
            let c = crash(kind, profile);
            let r = report(&c);
            let crash = r.crash.as_ref().unwrap();
            let what = format!("{kind} {profile:?}");
            let panic = crash.panic.as_ref().unwrap();
            assert_eq!(
                panic.message.as_deref(),
                c.truth["message"].as_str(),
                "{what}"
            );
            let location = panic.location.as_ref().unwrap();
            assert_eq!(
                Some(location.file.as_str()),
                c.truth["file"].as_str(),
                "{what}"
            );
            assert_eq!(Some(location.line), c.truth["line"].as_u64(), "{what}");
            assert_eq!(
                crash.task,
                c.truth["task"].as_u64(),
                "{what}: the task that panicked"
            );
            // The crashing thread is the one running that task.
            let thread = r
                .threads
                .iter()
                .find(|t| Some(t.tid) == crash.thread)
                .unwrap();
            assert_eq!(
                thread.fields.get("current_task"),
                Some(&c.truth["task"]),
                "{what}"
            );
            assert_eq!(crash.signature.len(), 16);
            // In text, the task that was running is not "blocked on" its last await: the
            // report names the thread running it and where it last suspended.
            let out = run_layoutdump(&["run", "tokio", c.core.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout);
            let header = format!("task {} [running]", c.truth["task"]);
            let at = text
                .find(&header)
                .unwrap_or_else(|| panic!("{what}: {text}"));
            let body = &text[at..text[at..].find("\n\n").map_or(text.len(), |e| at + e)];
            assert!(
                body.contains(&format!("running on thread {}", crash.thread.unwrap())),
                "{what}: {body}"
            );
            assert!(body.contains("last suspended at "), "{what}: {body}");
            assert!(!body.contains("blocked on"), "{what}: {body}");
        }
    }
}

/// The same panic reached by another task must give the same signature, another panic
/// another one.
#[test]
fn same_panic_same_signature_other_panic_other_signature() {
    let parse = report(&crash("parse", Profile::Dev)).crash.unwrap();
    let again = report(&crash("parse-again", Profile::Dev)).crash.unwrap();
    let budget = report(&crash("budget", Profile::Dev)).crash.unwrap();
    assert_ne!(parse.task, again.task, "reached by a different task");
    assert_eq!(parse.signature, again.signature, "{parse:?}\n{again:?}");
    assert_ne!(parse.signature, budget.signature);
}

/// A compio task that panics: compio's threads record no current task, so the crash's
/// task is found from the panicking thread's stack (the async body's own parameter in a
/// dev build; the running task its stack points at in a release build), among tasks
/// read as the report is written. Same panic, same signature, in both builds.
#[test]
fn a_panicking_task_is_found_without_a_current_task() {
    let mut signatures = Vec::new();
    for profile in [Profile::Dev, Profile::Release] {
        let c = crash_of("compio-panic", "compio", profile);
        let out = run_layoutdump(&["run", c.core.to_str().unwrap(), "--format", "json"]);
        let r: Report = serde_json::from_slice(&out.stdout).expect("JSON report");
        let what = format!("{profile:?}");
        let crash = r.crash.as_ref().expect("a crash");
        let panic = crash.panic.as_ref().expect("a panic");
        assert_eq!(
            panic.message.as_deref(),
            c.truth["message"].as_str(),
            "{what}"
        );
        let id = crash.task.expect("the crash's task");
        let task = (r.runtimes.iter())
            .flat_map(|rt| &rt.tasks)
            .find(|t| t.id == Some(id))
            .expect("the crash's task is listed");
        assert_eq!(
            Some(task.backtrace[0].function.as_str()),
            c.truth["task"].as_str(),
            "{what}"
        );
        assert_eq!(task.state.as_deref(), Some("running"), "{what}");
        signatures.push(crash.signature.clone());
    }
    assert_eq!(signatures[0], signatures[1]);
}
