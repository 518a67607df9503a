//! async-executor based runtimes end to end, smol and async-std: each task listed as the
//! fixture reports it (ids, root async fns, await lines, what it waits on), each executor
//! once, from dev and release builds, ELF cores and minidumps.

mod common;

use common::report::{Report, Runtime, Task};
use common::{Dumps, Profile, fixture_dumps, numbers, root, run_layoutdump};
use serde_json::Value;

fn report(layout: &str, dump: &std::path::Path) -> Report {
    let mut args = vec!["run"];
    if !layout.is_empty() {
        args.push(layout);
    }
    args.extend([dump.to_str().unwrap(), "--format", "json"]);
    let out = run_layoutdump(&args);
    let what = dump.display();
    let r: Report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(r.warnings.is_empty(), "{what}: {:?}", r.warnings);
    assert_eq!(out.status.code(), Some(0), "{what}");
    r
}

/// (root async fn, await lines, leaf kind) of a reported task.
fn shape(t: &Task) -> (String, Vec<u64>, String) {
    let located: Vec<_> = t
        .backtrace
        .iter()
        .filter_map(|f| Some((f.function.as_str(), f.location.as_ref()?.line)))
        .collect();
    (
        located
            .first()
            .map_or(String::new(), |(f, _)| f.to_string()),
        located.iter().map(|(_, line)| *line).collect(),
        t.leaf_kind().to_string(),
    )
}

fn check(d: &Dumps, layout: &str, dump: &std::path::Path, by_scan: bool) {
    let r = report(layout, dump);
    let what = format!("{} with {layout}", dump.display());
    // The static executor, and the LocalExecutor held only in a local of main (found by
    // the scan, whatever the layout names).
    assert_eq!(r.runtimes.len(), 2, "{what}");
    let local_truth = d.truth["local"].as_array().unwrap();
    let is_local = |r: &&Runtime| r.tasks.len() == local_truth.len();
    let local = r.runtimes.iter().find(is_local).unwrap();
    assert!(local.fields.contains_key("found_by"), "{what}");
    check_tasks(&what, local, local_truth);
    let rt = r.runtimes.iter().find(|r| !is_local(r)).unwrap();
    assert_eq!(rt.kind, "async_executor", "{what}");
    assert_eq!(rt.fields.contains_key("found_by"), by_scan, "{what}");
    check_tasks(&what, rt, d.truth["tasks"].as_array().unwrap());
}

/// A runtime's tasks against the fixture's list: slab key, root async fn, await lines,
/// leaf, state.
fn check_tasks(what: &str, rt: &Runtime, truth: &[Value]) {
    assert_eq!(rt.task_count, Some(truth.len() as u64), "{what}");
    assert_eq!(rt.tasks.len(), truth.len(), "{what}");
    for want in truth {
        let key = want["key"].as_u64().unwrap();
        let got = rt
            .tasks
            .iter()
            .find(|t| t.id == Some(key))
            .unwrap_or_else(|| panic!("{what}: no task {key}"));
        let f = want["future"].as_str().unwrap();
        let leaf = match f {
            "smol_tasks::sleeper" => "sleep",
            "smol_tasks::receiver" => "channel",
            "smol_tasks::locker" => "mutex",
            _ => "join",
        };
        let lines = numbers(&want["await_lines"]);
        assert_eq!(
            shape(got),
            (f.to_string(), lines, leaf.to_string()),
            "{what} task {key}"
        );
        assert_eq!(got.state.as_deref(), Some("idle"), "{what} task {key}");
    }
}

/// The `smol-tasks` fixture's static executor must be listed exactly as the fixture reports
/// it — slab keys, root async fns, await lines, what each task waits on — both through the
/// shipped layout alone (its memory-scan root finds the tasks by their vtable) and through
/// a user layout that also names the static (the same executor, reported once).
#[test]
fn smol_executor_tasks_match_ground_truth() {
    let named = root().join("tests/fixtures/smol-tasks/smol-tasks.layout");
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("smol-tasks", profile);
        for dump in [&d.core, &d.minidump] {
            check(d, "smol", dump, true);
            check(d, named.to_str().unwrap(), dump, false);
        }
    }
}

/// The `mixed` fixture runs tokio and a smol executor held only in a local of `main`:
/// `run DUMP` with no layout must list both.
#[test]
fn auto_detection_lists_tokio_and_smol_side_by_side() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("mixed", profile);
        for dump in [&d.core, &d.minidump] {
            let r = report("", dump);
            let what = dump.display();
            let mut kinds: Vec<&str> = r.runtimes.iter().map(|r| r.kind.as_str()).collect();
            kinds.sort();
            assert_eq!(kinds, ["async_executor", "multi_thread"], "{what}");
            let by_kind = |k: &str| r.runtimes.iter().find(|r| r.kind == k).unwrap();
            let smol = by_kind("async_executor");
            assert!(smol.fields.contains_key("found_by"), "{what}");
            let mut lines: Vec<u64> = smol.tasks.iter().flat_map(|t| shape(t).1).collect();
            lines.sort();
            let want = numbers(&d.truth["smol_await_lines"]);
            assert_eq!(lines, want, "{what}");
            let tokio = by_kind("multi_thread");
            let ids: Vec<Option<u64>> = tokio.tasks.iter().map(|t| t.id).collect();
            let want_ids: Vec<Option<u64>> = numbers(&d.truth["tokio_ids"])
                .into_iter()
                .map(Some)
                .collect();
            assert_eq!(ids, want_ids, "{what}");
            for t in &tokio.tasks {
                assert_eq!(
                    shape(t).1,
                    vec![d.truth["tokio_await_line"].as_u64().unwrap()],
                    "{what}"
                );
            }
        }
    }
}

/// The `async-std-tasks` fixture: its tasks' async-std ids and names, root async fns, await
/// lines and leaves, through `run async-std` and through `run DUMP` (which must not report
/// the executor twice, though smol's scan finds it too).
#[test]
fn async_std_tasks_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("async-std-tasks", profile);
        for dump in [&d.core, &d.minidump] {
            for layout in ["async-std", ""] {
                let r = report(layout, dump);
                let what = format!("{} with {layout:?}", dump.display());
                if layout.is_empty() {
                    assert_eq!(r.layout.name, "auto: async-std 1.13", "{what}");
                }
                // The global executor (no thread of its own), and the LocalExecutor of each
                // thread that ran `block_on`: main's holds the `spawn_local` task, the
                // global executor's worker threads' are empty.
                let with_tasks: Vec<&Runtime> =
                    r.runtimes.iter().filter(|r| !r.tasks.is_empty()).collect();
                assert_eq!(with_tasks.len(), 2, "{what}");
                let local = with_tasks.iter().find(|r| !r.threads.is_empty()).unwrap();
                let want_local = d.truth["local"].as_array().unwrap();
                assert_eq!(local.tasks.len(), want_local.len(), "{what}");
                assert_eq!(local.tasks[0].id, want_local[0]["id"].as_u64(), "{what}");
                assert_eq!(
                    shape(&local.tasks[0]).1,
                    [want_local[0]["await_lines"][0].as_u64().unwrap()],
                    "{what}"
                );
                let global = with_tasks.iter().find(|r| r.threads.is_empty()).unwrap();
                let truth = d.truth["tasks"].as_array().unwrap();
                let got_ids: Vec<Option<u64>> = global.tasks.iter().map(|t| t.id).collect();
                let want_ids: Vec<Option<u64>> = truth.iter().map(|t| t["id"].as_u64()).collect();
                assert_eq!(got_ids, want_ids, "{what}");
                for (got, want) in global.tasks.iter().zip(truth) {
                    let id = &want["id"];
                    assert_eq!(
                        got.fields.get("name").unwrap_or(&Value::Null),
                        &want["name"],
                        "{what} task {id}"
                    );
                    let (future, lines, leaf) = shape(got);
                    assert_eq!(future, want["future"].as_str().unwrap(), "{what} task {id}");
                    let want_lines: Vec<u64> = numbers(&want["await_lines"]);
                    // async-std's own frames (sleep → timeout) follow the program's.
                    assert_eq!(
                        lines[..want_lines.len()],
                        want_lines[..],
                        "{what} task {id}"
                    );
                    let want_leaf = match future.as_str() {
                        "async_std_tasks::sleeper" => "sleep",
                        "async_std_tasks::receiver" => "channel",
                        _ => "join",
                    };
                    assert_eq!(leaf, want_leaf, "{what} task {id}");
                    if leaf == "join" {
                        // The joiner waits for the task spawned just before it.
                        let watched = id.as_u64().unwrap() - 1;
                        let waits = got.blocked_on.as_ref().and_then(|b| b.fields.get("task"));
                        assert_eq!(waits, Some(&Value::from(watched)), "{what} task {id}");
                    }
                }
            }
        }
    }
}
