//! actix-web 4 end to end (`actix-app`): each arbiter's LocalSet listed under its thread's
//! tokio runtime, and each handler in its local task at its await line with its leaf. Dev
//! and release builds; ELF cores and minidumps.

mod common;

use common::report::Report;
use common::{Profile, fixture_dumps, run_layoutdump};

/// The System and two worker arbiters are each a tokio `current_thread` runtime driving a
/// LocalSet, and a handler runs in a local task of its worker. Each LocalSet, found by the
/// memory scan, must be listed under its thread and the runtime that thread runs; each
/// handler shown in its task at its await line with its leaf; the lock handlers waiting
/// for the task that holds the lock; no leaf unknown (actix's signals future is described
/// by `layouts/actix.layout`).
#[test]
fn actix_workers_and_handlers_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("actix-app", profile);
        for dump in [&d.core, &d.minidump] {
            let what = format!("{}", dump.display());
            let out = run_layoutdump(&["run", dump.to_str().unwrap(), "--format", "json"]);
            let r: Report = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
            assert_eq!(out.status.code(), Some(0), "{what}");

            // The System's thread (main) and each worker's: one current_thread runtime
            // with no tasks of its own, and the LocalSet it drives, listed under it.
            let pid = d.truth["pid"].as_u64().unwrap() as u32;
            let mut threads = vec![pid];
            threads.extend(
                d.truth["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_u64().unwrap() as u32),
            );
            assert_eq!(threads.len(), 3, "{what}: the System and 2 workers");
            for tid in &threads {
                let on = |kind: &str| {
                    r.runtimes
                        .iter()
                        .find(|rt| rt.kind == kind && rt.threads.contains(tid))
                        .unwrap_or_else(|| panic!("{what}: no {kind} runtime on thread {tid}"))
                };
                let (ct, ls) = (on("current_thread"), on("local_set"));
                assert_eq!(
                    ls.fields["inside_runtime"],
                    format!("current_thread @ {}", ct.address),
                    "{what}: thread {tid}"
                );
            }
            let task = |id: u64| {
                r.task(id)
                    .unwrap_or_else(|| panic!("{what}: task {id} not listed"))
            };

            // Each handler in a local task of the LocalSet of the thread it ran on, at its
            // await line, on its leaf.
            for h in d.truth["handlers"].as_array().unwrap() {
                let (rt, t) = task(h["task"].as_u64().unwrap());
                assert_eq!(rt.kind, "local_set", "{what}: {h}");
                assert_eq!(
                    rt.threads,
                    [h["thread"].as_u64().unwrap() as u32],
                    "{what}: {h}"
                );
                let (func, line) = (h["fn"].as_str().unwrap(), h["line"].as_u64().unwrap());
                let (frames, _) = t
                    .chains()
                    .into_iter()
                    .find(|(frames, _)| frames.iter().any(|f| f.is_at(func, line)))
                    .unwrap_or_else(|| panic!("{what}: handler {h} not shown"));
                let at = frames.iter().position(|f| f.is_at(func, line)).unwrap();
                assert!(
                    frames[..at]
                        .iter()
                        .any(|f| f.via.as_deref() == Some("generic")),
                    "{what}: {h} reached with no generic step"
                );
                let leaf = h["leaf"].as_str().unwrap();
                assert!(
                    t.leaf_kinds().contains(&leaf),
                    "{what}: {h}: {:?}",
                    t.leaf_kinds()
                );
            }

            // The lock handlers wait for the task holding the lock, in the System's set.
            let holder = d.truth["lock_holder"]["task"].as_u64().unwrap();
            assert_eq!(task(holder).0.threads, [pid], "{what}");
            let dot = run_layoutdump(&["run", dump.to_str().unwrap(), "--graph", "dot"]);
            let dot = String::from_utf8_lossy(&dot.stdout);
            for h in d.truth["handlers"].as_array().unwrap() {
                if h["route"] == "/lock" {
                    let edge = format!("t{} -> t{holder};", h["task"]);
                    assert!(dot.contains(&edge), "{what}: no {edge} in\n{dot}");
                }
            }

            // Nothing unknown: actix's own futures (server, workers, arbiters, signals)
            // end in leaves that say what they wait on.
            let unknown: Vec<u64> = r
                .tasks()
                .filter(|(_, t)| t.leaf_kinds().contains(&"unknown"))
                .filter_map(|(_, t)| t.id)
                .collect();
            assert!(
                unknown.is_empty(),
                "{what}: tasks with unknown leaves {unknown:?}"
            );
        }
    }
}
