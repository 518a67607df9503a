//! End to end on real dumps of the real tokio fixture (tests/fixtures/tokio-tasks): built
//! dev and release, captured by `layoutdump capture` (core and minidump) and by gdb's
//! gcore; `layoutdump run tokio` must report exactly the tasks the program said it had.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::report::{Report, Task};
use common::{Dumps, Profile, fixture_dumps, redact, run_layoutdump, tokio_dumps};
use serde_json::Value;

/// Runs the tokio layout on `dump` as JSON and checks it against the fixture's truth.
fn assert_matches_ground_truth(dumps: &Dumps, dump: &Path) {
    let out = run_layoutdump(&["run", "tokio", dump.to_str().unwrap(), "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr not empty: {stderr}");
    let report: Report = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit code (0 = complete); warnings: {:?}",
        report.warnings
    );
    // The only warnings: the deadlocks the fixture built (two tasks, each joining the
    // other), one per runtime, as the fixture reported them.
    let truth = dumps.truth["runtimes"].as_array().unwrap();
    assert_block_on(dumps, &report);
    let mut expected = Vec::new();
    for rt in truth {
        let tasks = rt["tasks"].as_array().unwrap();
        let waits = |t: &Value| {
            (t["leaf"] == "join")
                .then(|| t["detail"][1].as_u64())
                .flatten()
        };
        for t in tasks {
            let (me, peer) = (t["id"].as_u64().unwrap(), waits(t));
            let back = peer
                .and_then(|p| tasks.iter().find(|o| o["id"] == p))
                .and_then(waits);
            // Each task is named with its innermost await line in the fixture's own code.
            let line = |id: u64| {
                let t = tasks.iter().find(|o| o["id"] == id).unwrap();
                t["awaits"].as_array().unwrap().last().unwrap()[1].clone()
            };
            if let (Some(peer), Some(back)) = (peer, back)
                && back == me
                && me < peer
            {
                expected.push(format!(
                    "possible deadlock: task {me} (at main.rs:{}) → task {peer} (at main.rs:{}) → task {me} (each waits for the next to finish or to release what it holds)",
                    line(me),
                    line(peer)
                ));
            }
        }
    }
    expected.sort();
    let mut warnings: Vec<String> = report
        .warnings
        .iter()
        .map(|w| {
            // The fixture's files are `tokio-tasks/src/main.rs`, and for `tokio-full`
            // `tokio-full/../tokio-tasks/src/main.rs`: compared by file name.
            w.replace("tokio-full/../", "")
                .replace("tokio-tasks/src/", "")
        })
        .collect();
    warnings.sort();
    assert_eq!(warnings, expected, "warnings: only the fixture's deadlocks");
    assert_eq!(
        expected.len(),
        truth.len(),
        "the fixture builds one deadlock per runtime"
    );

    assert_eq!(report.runtimes.len(), truth.len(), "runtime count");
    for t in truth {
        let kind = match t["kind"].as_str().unwrap() {
            "MultiThread" => "multi_thread",
            "CurrentThread" => "current_thread",
            other => panic!("fixture reported unknown kind {other}"),
        };
        let rt = report
            .runtimes
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} runtime in report"));
        assert_eq!(rt.workers, t["workers"].as_u64(), "{kind}: workers");
        assert_eq!(
            rt.task_count,
            t["alive"].as_u64(),
            "{kind}: the runtime's own live-task count"
        );
        assert_eq!(
            rt.tasks.len() as u64,
            t["alive"].as_u64().unwrap(),
            "{kind}: number of tasks"
        );
        let want: BTreeSet<u64> = t["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_u64().unwrap())
            .collect();
        let got: BTreeSet<u64> = rt.tasks.iter().map(|x| x.id.unwrap()).collect();
        assert_eq!(got, want, "{kind}: task ids");

        for spawned in t["tasks"].as_array().unwrap() {
            let id = spawned["id"].as_u64().unwrap();
            let task = rt.tasks.iter().find(|x| x.id == Some(id)).unwrap();
            // The root future's own type, or for a boxed `dyn Future` (whose type is
            // `Pin<Box<dyn …>>`) the concrete future behind it, which the backtrace
            // shows first.
            let future = task.future.as_ref().map_or("", |f| f.ty.as_str());
            let first = task.backtrace.first().map_or("", |f| f.future.as_str());
            let root = spawned["root"].as_str().unwrap();
            assert!(
                [future, first]
                    .iter()
                    .any(|f| f.starts_with(&format!("{root}::"))),
                "{kind} task {id}: future `{future}` / `{first}` is not from `{root}`"
            );
            // Every task of the fixture is parked at an await when it is captured.
            assert_eq!(
                task.state.as_deref(),
                Some("idle"),
                "{kind} task {id}: state"
            );
            assert_backtrace(kind, task, spawned);
        }
    }
}

/// The futures given to `block_on` (one per runtime in the fixture): each one found must
/// be parked at the line the fixture reported for its runtime, on `pending()`. Dev builds
/// keep both at a DWARF location; an optimized build has none for multi_thread's, found
/// by a scan of `block_on`'s stack frame (`found_by` says so).
fn assert_block_on(dumps: &Dumps, report: &Report) {
    let truth = dumps.truth["runtimes"].as_array().unwrap();
    let found = &report.block_on;
    let optimized = dumps.exe.to_string_lossy().contains("/release/");
    assert_eq!(
        found.len(),
        truth.len(),
        "one block_on future per runtime: {found:?}"
    );
    // multi_thread's `f` has no DWARF location in this fixture's release build.
    let scanned = found.iter().filter(|b| b.found_by.is_some()).count();
    assert_eq!(scanned > 0, optimized, "{found:?}");
    for b in found {
        if let Some(how) = &b.found_by {
            assert!(how.contains("stack frame"), "{b:?}");
        }
        let kind = report
            .runtimes
            .iter()
            .find(|r| Some(&r.address) == b.runtime.as_ref())
            .map(|r| r.kind.as_str())
            .expect("block_on future of a known runtime");
        let want = truth
            .iter()
            .find(|t| {
                t["kind"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .replace("thread", "_thread")
                    == kind
            })
            .unwrap();
        let first = &b.backtrace[0];
        assert!(first.function.contains("::main::"), "{first:?}");
        assert_eq!(
            first.location.as_ref().map(|l| l.line),
            want["block_on_await"].as_u64(),
            "{kind} block_on future: await line"
        );
        assert_eq!(
            b.blocked_on.as_ref().map(|l| l.kind.as_str()),
            Some("pending forever")
        );
    }
}

/// The task's async backtrace, as far as it runs through the program's own code, must be
/// the chain of awaits the fixture reported (function and line of each `.await`), and
/// the task must be blocked on what the fixture said, with the detail it gave (the
/// listener's fd, the awaited task's id, the channel's capacity…).
fn assert_backtrace(kind: &str, task: &Task, spawned: &Value) {
    let id = &spawned["id"];
    let root = spawned["root"].as_str().unwrap();
    let krate = format!("{}::", root.split("::").next().unwrap());
    let own: Vec<(String, u64)> = task
        .backtrace
        .iter()
        .filter(|f| f.function.starts_with(&krate))
        .map(|f| {
            (
                f.function.clone(),
                f.location.as_ref().map_or(0, |l| l.line),
            )
        })
        .collect();
    // An await inside join!/select! is attributed by DWARF to tokio's macro file and
    // line: there the fixture names the macro file instead of a line of its own.
    let in_macro = spawned["in_macro"].as_str();
    let want: Vec<(String, u64)> = spawned["awaits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a[0].as_str().unwrap().to_string(), a[1].as_u64().unwrap()))
        .collect();
    if in_macro.is_none() {
        assert_eq!(own, want, "{kind} task {id}: await chain");
    } else {
        let names = |v: &[(String, u64)]| v.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>();
        assert_eq!(names(&own), names(&want), "{kind} task {id}: await chain");
    }
    for f in task
        .backtrace
        .iter()
        .filter(|f| f.function.starts_with(&krate))
    {
        let file = f.location.as_ref().map_or("", |l| l.file.as_str());
        let expected = in_macro.unwrap_or("tokio-tasks/src/main.rs");
        assert!(
            file.ends_with(expected),
            "{kind} task {id}: await file {file}"
        );
    }
    // join!/select!: one branch per future, each blocked on what the fixture said.
    let wanted_branches: Vec<&str> = spawned["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    let branches: Vec<&str> = task
        .backtrace
        .iter()
        .flat_map(|f| &f.branches)
        .map(|b| b.blocked_on.as_ref().map_or("?", |l| l.kind.as_str()))
        .collect();
    assert_eq!(branches, wanted_branches, "{kind} task {id}: branches");
    if let Some(holds) = spawned["holds"].as_array() {
        let (function, name) = (holds[0].as_str().unwrap(), holds[1].as_str().unwrap());
        let frame = task
            .backtrace
            .iter()
            .find(|f| f.function == function)
            .unwrap_or_else(|| panic!("{kind} task {id}: no frame {function}"));
        assert_eq!(
            frame.locals.get(name),
            Some(&holds[2]),
            "{kind} task {id}: {function} holds {name}"
        );
    }
    let blocked = task.blocked_on.as_ref();
    assert_eq!(
        blocked.map(|l| l.kind.as_str()),
        spawned["leaf"].as_str(),
        "{kind} task {id}: blocked on"
    );
    let field = |key: &str| blocked.and_then(|l| l.fields.get(key));
    if let Some(detail) = spawned["detail"].as_array()
        && detail[0] == "left_ms"
    {
        // Time left on a sleep: at most its duration, less what passed between the
        // timer's last turn and the spawn (well under a minute here).
        let left = field("left_ms").and_then(Value::as_i64).expect("left_ms");
        let full = detail[1].as_i64().unwrap();
        assert!(
            left <= full && left > full - 60_000,
            "{kind} task {id}: left_ms {left} of {full}"
        );
    } else if let Some(detail) = spawned["detail"].as_array() {
        let key = detail[0].as_str().unwrap();
        assert_eq!(field(key), Some(&detail[1]), "{kind} task {id}: {key}");
    }
}

#[test]
fn dev_core_from_layoutdump_capture() {
    let d = tokio_dumps(Profile::Dev);
    assert_matches_ground_truth(d, &d.core);
}

#[test]
fn dev_minidump_from_layoutdump_capture() {
    let d = tokio_dumps(Profile::Dev);
    assert_matches_ground_truth(d, &d.minidump);
}

#[test]
fn dev_core_from_gcore() {
    let d = tokio_dumps(Profile::Dev);
    match &d.gcore {
        Some(core) => assert_matches_ground_truth(d, core),
        None => eprintln!("gcore not installed: skipped (.ci/run installs gdb)"),
    }
}

#[test]
fn release_core_from_layoutdump_capture() {
    let d = tokio_dumps(Profile::Release);
    assert_matches_ground_truth(d, &d.core);
}

#[test]
fn release_minidump_from_layoutdump_capture() {
    let d = tokio_dumps(Profile::Release);
    assert_matches_ground_truth(d, &d.minidump);
}

#[test]
fn release_core_from_gcore() {
    let d = tokio_dumps(Profile::Release);
    match &d.gcore {
        Some(core) => assert_matches_ground_truth(d, core),
        None => eprintln!("gcore not installed: skipped (.ci/run installs gdb)"),
    }
}

/// tokio with `full` features (parking_lot locks inside the runtime).
#[test]
fn full_features_dev_core() {
    let d = fixture_dumps("tokio-full", Profile::Dev);
    assert_matches_ground_truth(d, &d.core);
}

#[test]
fn full_features_release_minidump() {
    let d = fixture_dumps("tokio-full", Profile::Release);
    assert_matches_ground_truth(d, &d.minidump);
}

/// Compact JSON writes each task by hand (`report::json_task`), not through serde: on
/// real tasks (joins and selects with their branches, leaves, locals, unavailable facts)
/// it must be byte for byte serde_json's JSON of the same task.
#[test]
fn compact_json_of_every_task_is_serde_json() {
    use layoutdump_engine::analyze::{Options, analyze};
    use layoutdump_engine::report::json_task::write_task;
    let program = layoutdump_engine::layout_loader::compile_layout("tokio").unwrap();
    let (mut tasks, mut branches) = (0, 0);
    for profile in [Profile::Dev, Profile::Release] {
        for name in ["tokio-tasks", "tokio-full"] {
            let d = fixture_dumps(name, profile);
            let (report, _) = analyze(&program, &d.core, &Options::default()).unwrap();
            for task in report.runtimes.iter().flat_map(|r| &r.tasks) {
                let mut ours = Vec::new();
                write_task(&mut ours, task);
                let serde = serde_json::to_string(task).unwrap();
                assert_eq!(String::from_utf8(ours).unwrap(), serde);
                tasks += 1;
                branches += task
                    .backtrace
                    .iter()
                    .filter(|f| !f.branches.is_empty())
                    .count();
            }
        }
    }
    assert!(tasks >= 4 * 46, "{tasks} tasks");
    assert!(branches > 0, "no join or select among the tasks");
}

#[test]
fn text_report_dev_core() {
    let text = common::text_snapshot(tokio_dumps(Profile::Dev), "tokio");
    insta::assert_snapshot!(text);
}

#[test]
fn json_report_dev_core() {
    let d = tokio_dumps(Profile::Dev);
    let out = run_layoutdump(&["run", "tokio", d.core.to_str().unwrap(), "--format", "json"]);
    let mut report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Thread ids and the pid change every run; everything else is redacted by address.
    report["dump"]["pid"] = Value::from("[PID]");
    report["dump"]["path"] = Value::from("[DUMP]");
    report["binary"]["path"] = Value::from("[BINARY]");
    report["binary"]["build_id"] = Value::from("[BUILD-ID]");
    for rt in report["runtimes"].as_array_mut().unwrap() {
        let n = rt["threads"].as_array().unwrap().len();
        rt["threads"] = Value::from(format!("[{n} TIDS]"));
    }
    // Where each thread is parked natively depends on timing (which worker holds the
    // I/O driver); thread stacks are checked by `main_thread_stack_reaches_main`.
    for t in report["threads"].as_array_mut().unwrap() {
        t["tid"] = Value::from("[TID]");
        t["frames"] = Value::from("[FRAMES]");
        // Which worker runs which of tokio's worker tasks varies too.
        t["fields"] = Value::from("[FIELDS]");
    }
    for b in report["block_on"].as_array_mut().unwrap() {
        b["thread"] = Value::from("[TID]");
    }
    let text = redact(&serde_json::to_string_pretty(&report).unwrap(), d);
    insta::assert_snapshot!(text);
}

#[test]
fn yaml_report_parses_and_matches_json() {
    let d = tokio_dumps(Profile::Dev);
    let json = run_layoutdump(&["run", "tokio", d.core.to_str().unwrap(), "--format", "json"]);
    let yaml = run_layoutdump(&["run", "tokio", d.core.to_str().unwrap(), "--format", "yaml"]);
    let a: Value = serde_json::from_slice(&json.stdout).unwrap();
    let b: Value = serde_yaml_value(&yaml.stdout);
    assert_eq!(a, b);
    // Grouped, both say the same too: YAML once listed the warnings found while reading
    // the tasks (the fixture's two deadlocks) twice.
    let grouped = |format: &str| {
        let out = run_layoutdump(&[
            "run",
            "tokio",
            d.core.to_str().unwrap(),
            "--group",
            "--format",
            format,
        ]);
        out.stdout
    };
    let a: Value = serde_json::from_slice(&grouped("json")).unwrap();
    let b: Value = serde_yaml_value(&grouped("yaml"));
    assert_eq!(
        a["warnings"].as_array().unwrap().len(),
        2,
        "{}",
        a["warnings"]
    );
    assert_eq!(a, b);
}

fn serde_yaml_value(bytes: &[u8]) -> Value {
    serde_yaml::from_slice(bytes).expect("YAML report")
}

/// tokio.layout with its thread-local root replaced by a stack-frame root: the `self` of
/// `Runtime::block_on`, found by unwinding every thread.
fn frame_root_layout() -> std::path::PathBuf {
    let tokio = std::fs::read_to_string(common::root().join("layouts/tokio.layout")).unwrap();
    // The thread-local root, through the end of its `{ … }` block.
    let start = tokio
        .find("root tls tokio::runtime::context::CONTEXT as ctx => runtime ctx.current.handle.0")
        .expect("tokio.layout's root changed: update this test");
    let end = start + tokio[start..].find("\n}\n").expect("the root's block") + 3;
    let frame_root = "root frame tokio::runtime::runtime::Runtime::block_on local self as rt => runtime rt.handle.inner.0\n";
    let dir = common::root().join("target/test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokio-frame-root.layout");
    std::fs::write(
        &path,
        format!("{}{frame_root}{}", &tokio[..start], &tokio[end..]),
    )
    .unwrap();
    path
}

fn runtimes_and_ids(report: &Report) -> Vec<(String, String, Vec<u64>)> {
    report
        .runtimes
        .iter()
        .map(|r| {
            let ids = r.tasks.iter().map(|t| t.id.unwrap()).collect();
            (r.kind.clone(), r.address.clone(), ids)
        })
        .collect()
}

#[test]
fn frame_root_finds_the_same_runtimes_as_the_thread_local_root() {
    let d = tokio_dumps(Profile::Dev);
    let layout = frame_root_layout();
    for dump in [&d.core, &d.minidump] {
        let by_tls = run_layoutdump(&["run", "tokio", dump.to_str().unwrap(), "--format", "json"]);
        let by_frame = run_layoutdump(&[
            "run",
            layout.to_str().unwrap(),
            dump.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(
            by_frame.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&by_frame.stdout)
        );
        let a: Report = serde_json::from_slice(&by_tls.stdout).unwrap();
        let b: Report = serde_json::from_slice(&by_frame.stdout).unwrap();
        assert_eq!(
            runtimes_and_ids(&a),
            runtimes_and_ids(&b),
            "{}",
            dump.display()
        );
        assert_eq!(runtimes_and_ids(&b).len(), 2);
    }
}

#[test]
fn frame_root_in_release_says_why_it_found_nothing() {
    // Optimized code keeps `self` only as an entry value: the report must say so.
    let d = tokio_dumps(Profile::Release);
    let layout = frame_root_layout();
    let out = run_layoutdump(&[
        "run",
        layout.to_str().unwrap(),
        d.core.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    if report.runtimes.is_empty() {
        assert_eq!(out.status.code(), Some(3));
        let warnings = report.warnings.join("\n");
        assert!(warnings.contains("`self`"), "{warnings}");
    } else {
        // A compiler that keeps `self` in memory gives the full answer instead.
        assert_eq!(out.status.code(), Some(0));
    }
}

/// Native stacks: the main thread's, unwound through libc and symbolized with inlined
/// frames, runs from `main` through `Runtime::block_on` down to the parking code.
#[test]
fn main_thread_stack_reaches_main() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = tokio_dumps(profile);
        let out = run_layoutdump(&["run", "tokio", d.core.to_str().unwrap(), "--format", "json"]);
        let report: Report = serde_json::from_slice(&out.stdout).unwrap();
        let pid = d.truth["pid"].as_u64().unwrap();
        let main = report
            .threads
            .iter()
            .find(|t| u64::from(t.tid) == pid)
            .expect("main thread");
        let functions: Vec<&str> = main
            .frames
            .iter()
            .filter_map(|f| f.function.as_deref())
            .collect();
        let has = |name: &str| functions.iter().any(|f| f.starts_with(name));
        assert!(has("tokio_tasks::main"), "{profile:?}: {functions:?}");
        assert!(
            has("tokio::runtime::runtime::Runtime::block_on"),
            "{profile:?}: {functions:?}"
        );
        let main_frame = main
            .frames
            .iter()
            .find(|f| f.function.as_deref() == Some("tokio_tasks::main"))
            .unwrap();
        let file = main_frame.location.as_ref().and_then(|l| l.file.as_deref());
        assert!(file.unwrap().ends_with("tokio-tasks/src/main.rs"));
    }
}

/// Runtime kind, task id, await chain (function, line), leaf kind.
type TaskSummary = (String, u64, Vec<(String, u64)>, String);

/// What a report says about tasks, without addresses or times: for comparing reports of
/// the same process taken two ways.
fn task_summary(report: &Report) -> Vec<TaskSummary> {
    let mut out: Vec<_> = report
        .tasks()
        .map(|(rt, t)| {
            let frames = t
                .backtrace
                .iter()
                .map(|f| {
                    (
                        f.function.clone(),
                        f.location.as_ref().map_or(0, |l| l.line),
                    )
                })
                .collect();
            (
                rt.kind.clone(),
                t.id.unwrap(),
                frames,
                t.leaf_kind().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `run --pid` on a live fixture gives the same tasks, chains and leaves as a core of it.
#[test]
fn live_pid_gives_the_same_report_as_a_core() {
    let exe = common::build_fixture("tokio-tasks", Profile::Dev);
    let running = common::start(&exe);
    let pid = running.child.id().to_string();
    let live = run_layoutdump(&["run", "tokio", "--pid", &pid, "--format", "json"]);
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let core = common::root().join("target/test-scratch/live.core");
    std::fs::create_dir_all(core.parent().unwrap()).unwrap();
    let out = run_layoutdump(&["capture", &pid, "-o", core.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_core = run_layoutdump(&["run", "tokio", core.to_str().unwrap(), "--format", "json"]);
    let (a, b): (Report, Report) = (
        serde_json::from_slice(&live.stdout).unwrap(),
        serde_json::from_slice(&from_core.stdout).unwrap(),
    );
    assert_eq!(a.dump.as_ref().unwrap().path, format!("live process {pid}"));
    assert!(!task_summary(&a).is_empty());
    assert_eq!(task_summary(&a), task_summary(&b));
    // The process was only paused: it is still running (sleeping) afterwards.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("State:") && !l.contains("stopped")),
        "{status}"
    );
}

/// `layoutdump run DUMP` with no layout tries every shipped runtime layout: on a tokio
/// program it gives the tokio report.
#[test]
fn auto_detection_finds_tokio() {
    let d = tokio_dumps(Profile::Dev);
    let auto = run_layoutdump(&["run", d.core.to_str().unwrap(), "--format", "json"]);
    let named = run_layoutdump(&["run", "tokio", d.core.to_str().unwrap(), "--format", "json"]);
    let (a, b): (Report, Report) = (
        serde_json::from_slice(&auto.stdout).unwrap(),
        serde_json::from_slice(&named.stdout).unwrap(),
    );
    assert_eq!(a.layout.name, format!("auto: tokio {}", b.layout.version));
    assert_eq!(task_summary(&a), task_summary(&b));
    assert_eq!(auto.status.code(), named.status.code());
}
