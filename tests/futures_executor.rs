//! futures-executor end to end. A LocalPool lives in the frames of the thread running it
//! (in registers, in release builds), and an idle ThreadPool task is held only by its
//! waker, so both are found by scans for their boxed futures' drop functions. The
//! `futures-pool` fixture's LocalPool tasks — root async fns, await lines, channel
//! leaves — and its ThreadPool tasks must be listed, each pool once, with no warning: the
//! scans' stale candidates (freed tasks, copies, the other pool's tasks) are left out.
//! Dev and release; cores and minidumps.

mod common;

use common::{Profile, fixture_dumps, numbers, own_await_lines, own_frames, run_layoutdump};
use serde_json::Value;

#[test]
fn local_pool_tasks_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("futures-pool", profile);
        for dump in [&d.core, &d.minidump] {
            let out = run_layoutdump(&["run", dump.to_str().unwrap(), "--format", "json"]);
            let what = dump.display();
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["warnings"], serde_json::json!([]), "{what}");
            // A partial report without warnings has something unavailable: name it.
            let gaps: Vec<String> = r["runtimes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|rt| {
                    let tasks: Vec<&Value> = rt["tasks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| &t["unavailable"])
                        .filter(|u| u.as_object().is_some_and(|u| !u.is_empty()))
                        .collect();
                    format!(
                        "{} at {} ({} tasks): {}; tasks: {tasks:?}",
                        rt["kind"],
                        rt["address"],
                        rt["tasks"].as_array().unwrap().len(),
                        rt["unavailable"]
                    )
                })
                .collect();
            assert_eq!(out.status.code(), Some(0), "{what}: {gaps:#?}");
            assert_eq!(r["layout"]["name"], "auto: futures-executor 0.3", "{what}");
            let rts = r["runtimes"].as_array().unwrap();
            let mut kinds: Vec<&str> = rts.iter().map(|r| r["kind"].as_str().unwrap()).collect();
            kinds.sort();
            assert_eq!(kinds, ["local_pool", "thread_pool"], "{what}");
            let tp = rts.iter().find(|r| r["kind"] == "thread_pool").unwrap();
            assert_eq!(tp["workers"], 2, "{what}");
            let pooled = tp["tasks"].as_array().unwrap();
            assert_eq!(
                pooled.len() as u64,
                d.truth["pooled"].as_u64().unwrap(),
                "{what}"
            );
            for t in pooled {
                let lines = own_await_lines(t, "futures-pool/");
                assert_eq!(lines, [d.truth["pooled_line"].as_u64().unwrap()], "{what}");
                assert_eq!(t["blocked_on"]["kind"], "channel receive", "{what}");
            }
            let rts: Vec<&Value> = rts.iter().filter(|r| r["kind"] == "local_pool").collect();
            let truth = d.truth["tasks"].as_array().unwrap();
            assert_eq!(
                rts[0]["task_count"].as_u64(),
                Some(truth.len() as u64),
                "{what}"
            );
            let mut got: Vec<(String, Vec<u64>, String)> = rts[0]["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let own = own_frames(t, "futures-pool/");
                    (
                        own[0].0.clone(),
                        own.iter().map(|(_, l)| *l).collect(),
                        t["blocked_on"]["kind"].as_str().unwrap_or("").to_string(),
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
