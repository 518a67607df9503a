//! futures-executor end to end: the `futures-pool` fixture's LocalPool and ThreadPool tasks,
//! found by scans for their boxed futures' drop functions, each pool listed once and no
//! stale candidate reported. Dev and release; cores and minidumps.

mod common;

use common::report::Report;
use common::{Profile, fixture_dumps, numbers, run_layoutdump};

/// A LocalPool lives in the frames of the thread running it (in registers, in release
/// builds), and an idle ThreadPool task is held only by its waker, so both are found by
/// scans for their boxed futures' drop functions. The LocalPool tasks — root async fns,
/// await lines, channel leaves — and the ThreadPool tasks must be listed, each pool once,
/// with no warning: the scans' stale candidates (freed tasks, copies, the other pool's
/// tasks) are left out.
#[test]
fn local_pool_tasks_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("futures-pool", profile);
        for dump in [&d.core, &d.minidump] {
            let out = run_layoutdump(&["run", dump.to_str().unwrap(), "--format", "json"]);
            let what = dump.display();
            let r: Report = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
            // A partial report without warnings has something unavailable: name it.
            let gaps: Vec<String> = r
                .runtimes
                .iter()
                .map(|rt| {
                    let tasks: Vec<_> = rt
                        .tasks
                        .iter()
                        .map(|t| &t.unavailable)
                        .filter(|u| !u.is_empty())
                        .collect();
                    format!(
                        "{} at {} ({} tasks): {:?}; tasks: {tasks:?}",
                        rt.kind,
                        rt.address,
                        rt.tasks.len(),
                        rt.unavailable
                    )
                })
                .collect();
            assert_eq!(out.status.code(), Some(0), "{what}: {gaps:#?}");
            assert_eq!(r.layout.name, "auto: futures-executor 0.3", "{what}");
            let mut kinds: Vec<&str> = r.runtimes.iter().map(|r| r.kind.as_str()).collect();
            kinds.sort();
            assert_eq!(kinds, ["local_pool", "thread_pool"], "{what}");
            let tp = r.runtimes.iter().find(|r| r.kind == "thread_pool").unwrap();
            assert_eq!(tp.workers, Some(2), "{what}");
            assert_eq!(
                tp.tasks.len() as u64,
                d.truth["pooled"].as_u64().unwrap(),
                "{what}"
            );
            for t in &tp.tasks {
                let lines = t.own_await_lines("futures-pool/");
                assert_eq!(lines, [d.truth["pooled_line"].as_u64().unwrap()], "{what}");
                assert_eq!(t.leaf_kind(), "channel receive", "{what}");
            }
            let lp = r.runtimes.iter().find(|r| r.kind == "local_pool").unwrap();
            let truth = d.truth["tasks"].as_array().unwrap();
            assert_eq!(lp.task_count, Some(truth.len() as u64), "{what}");
            let mut got: Vec<(String, Vec<u64>, String)> = lp
                .tasks
                .iter()
                .map(|t| {
                    let own = t.own_frames("futures-pool/");
                    (
                        own[0].0.to_string(),
                        own.iter().map(|(_, l)| *l).collect(),
                        t.leaf_kind().to_string(),
                    )
                })
                .collect();
            let mut want: Vec<(String, Vec<u64>, String)> = truth
                .iter()
                .map(|t| {
                    (
                        t["future"].as_str().unwrap().to_string(),
                        numbers(&t["await_lines"]),
                        "channel receive".to_string(),
                    )
                })
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{what}");
        }
    }
}
