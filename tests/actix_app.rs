//! actix-web 4 end to end (`actix-app`): the System and two worker arbiters are each a
//! tokio `current_thread` runtime driving a LocalSet, and a handler runs in a local task
//! of its worker. Each LocalSet, found by the memory scan, must be listed under its
//! thread and the runtime that thread runs; each handler shown in its task at its await
//! line with its leaf; the lock handlers waiting for the task that holds the lock; no
//! leaf unknown (actix's signals future is described by `layouts/actix.layout`). Dev and
//! release builds; ELF cores and minidumps.

mod common;

use common::{Profile, fixture_dumps, run_layoutdump};
use serde_json::Value;

/// The frames of a backtrace and its branches, in order.
fn frames(backtrace: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for f in backtrace.as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push(f);
        for b in f["branches"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            out.extend(frames(&b["backtrace"]));
        }
    }
    out
}

/// Every leaf of a task: its `blocked_on`, or each branch's.
fn leaves<'a>(backtrace: &'a Value, blocked_on: &'a Value) -> Vec<&'a Value> {
    for f in backtrace.as_array().map(Vec::as_slice).unwrap_or_default() {
        if let Some(branches) = f["branches"].as_array() {
            return branches
                .iter()
                .flat_map(|b| leaves(&b["backtrace"], &b["blocked_on"]))
                .collect();
        }
    }
    vec![blocked_on]
}

#[test]
fn actix_workers_and_handlers_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("actix-app", profile);
        for dump in [&d.core, &d.minidump] {
            let what = format!("{}", dump.display());
            let out = run_layoutdump(&["run", dump.to_str().unwrap(), "--format", "json"]);
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["warnings"], serde_json::json!([]), "{what}");
            assert_eq!(out.status.code(), Some(0), "{what}");
            let rts = r["runtimes"].as_array().unwrap();

            // The System's thread (main) and each worker's: one current_thread runtime
            // with no tasks of its own, and the LocalSet it drives, listed under it.
            let pid = &d.truth["pid"];
            let mut threads: Vec<&Value> = vec![pid];
            threads.extend(d.truth["workers"].as_array().unwrap());
            assert_eq!(threads.len(), 3, "{what}: the System and 2 workers");
            for tid in &threads {
                let on = |kind: &str| {
                    rts.iter()
                        .find(|rt| {
                            rt["kind"] == kind && rt["threads"].as_array().unwrap().contains(tid)
                        })
                        .unwrap_or_else(|| panic!("{what}: no {kind} runtime on thread {tid}"))
                };
                let (ct, ls) = (on("current_thread"), on("local_set"));
                assert_eq!(
                    ls["fields"]["inside_runtime"],
                    format!("current_thread @ {}", ct["address"].as_str().unwrap()),
                    "{what}: thread {tid}"
                );
            }
            let tasks: Vec<(&Value, &Value)> = rts
                .iter()
                .flat_map(|rt| rt["tasks"].as_array().unwrap().iter().map(move |t| (rt, t)))
                .collect();
            let by_id = |id: &Value| {
                *tasks
                    .iter()
                    .find(|(_, t)| t["id"] == *id)
                    .unwrap_or_else(|| panic!("{what}: task {id} not listed"))
            };

            // Each handler in a local task of the LocalSet of the thread it ran on, at its
            // await line, on its leaf.
            for h in d.truth["handlers"].as_array().unwrap() {
                let (rt, task) = by_id(&h["task"]);
                assert_eq!(rt["kind"], "local_set", "{what}: {h}");
                assert_eq!(
                    rt["threads"],
                    serde_json::json!([h["thread"]]),
                    "{what}: {h}"
                );
                let all = frames(&task["backtrace"]);
                let at = all
                    .iter()
                    .position(|f| f["function"] == h["fn"] && f["location"]["line"] == h["line"])
                    .unwrap_or_else(|| panic!("{what}: handler {h} not shown"));
                assert!(
                    all[..at].iter().any(|f| f["via"] == "generic"),
                    "{what}: {h} reached with no generic step"
                );
                let kinds: Vec<&Value> = leaves(&task["backtrace"], &task["blocked_on"])
                    .into_iter()
                    .map(|l| &l["kind"])
                    .collect();
                assert!(kinds.contains(&&h["leaf"]), "{what}: {h}: {kinds:?}");
            }

            // The lock handlers wait for the task holding the lock, in the System's set.
            let holder = &d.truth["lock_holder"];
            let (holder_rt, _) = by_id(&holder["task"]);
            assert_eq!(holder_rt["threads"], serde_json::json!([pid]), "{what}");
            let dot = run_layoutdump(&["run", dump.to_str().unwrap(), "--graph", "dot"]);
            let dot = String::from_utf8_lossy(&dot.stdout);
            for h in d.truth["handlers"].as_array().unwrap() {
                if h["route"] == "/lock" {
                    let edge = format!("t{} -> t{};", h["task"], holder["task"]);
                    assert!(dot.contains(&edge), "{what}: no {edge} in\n{dot}");
                }
            }

            // Nothing unknown: actix's own futures (server, workers, arbiters, signals)
            // end in leaves that say what they wait on.
            let unknown: Vec<&Value> = tasks
                .iter()
                .flat_map(|(_, t)| leaves(&t["backtrace"], &t["blocked_on"]))
                .filter(|l| l["kind"] == "unknown")
                .collect();
            assert!(unknown.is_empty(), "{what}: unknown leaves {unknown:?}");
        }
    }
}
