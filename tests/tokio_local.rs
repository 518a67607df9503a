//! tokio LocalSet end to end: `spawn_local` tasks are owned by the LocalSet, which no
//! variable names while its thread is parked; tokio's layout finds them by their vtable
//! (`raw::poll<T, S>` with S = the LocalSet's Shared). The `tokio-local` fixture's local
//! tasks — ids, await lines, leaves, the join target — and its runtime's ordinary tasks
//! must all be listed, each once. Dev and release builds; ELF cores and minidumps.

mod common;

use common::{Profile, fixture_dumps, own_await_lines, run_layoutdump};
use serde_json::Value;

fn await_lines(t: &Value) -> Vec<u64> {
    own_await_lines(t, "tokio-local/")
}

#[test]
fn local_set_tasks_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("tokio-local", profile);
        for dump in [&d.core, &d.minidump] {
            for layout in ["tokio", ""] {
                let mut args = vec!["run"];
                if !layout.is_empty() {
                    args.push(layout);
                }
                args.extend([dump.to_str().unwrap(), "--format", "json"]);
                let out = run_layoutdump(&args);
                let what = format!("{} with {layout:?}", dump.display());
                let r: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(r["warnings"], serde_json::json!([]), "{what}");
                assert_eq!(out.status.code(), Some(0), "{what}");
                let rts = r["runtimes"].as_array().unwrap();
                let mut kinds: Vec<&str> =
                    rts.iter().map(|r| r["kind"].as_str().unwrap()).collect();
                kinds.sort();
                assert_eq!(kinds, ["local_set", "multi_thread"], "{what}");
                let by_kind = |k: &str| rts.iter().find(|r| r["kind"] == k).unwrap();

                let mt = by_kind("multi_thread");
                let ids: Vec<&Value> = mt["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| &t["id"])
                    .collect();
                let want: Vec<&Value> = d.truth["workers"].as_array().unwrap().iter().collect();
                assert_eq!(ids, want, "{what}");
                for t in mt["tasks"].as_array().unwrap() {
                    assert_eq!(
                        await_lines(t),
                        [d.truth["worker_line"].as_u64().unwrap()],
                        "{what}"
                    );
                }

                let ls = by_kind("local_set");
                assert!(ls["fields"].get("found_by").is_some(), "{what}");
                // Found by a scan, it is still listed under the thread that drives it
                // (main, whose tid is the pid), inside the runtime that thread runs.
                assert_eq!(ls["threads"], serde_json::json!([d.truth["pid"]]), "{what}");
                assert_eq!(
                    ls["fields"]["inside_runtime"],
                    format!("multi_thread @ {}", mt["address"].as_str().unwrap()),
                    "{what}"
                );
                assert!(
                    r["threads"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|t| t["fields"].get("owner_thread").is_none()),
                    "{what}: the join key is not reported"
                );
                let tasks = ls["tasks"].as_array().unwrap();
                let truth = d.truth["local"].as_array().unwrap();
                let ids: Vec<&Value> = tasks.iter().map(|t| &t["id"]).collect();
                let want: Vec<&Value> = truth.iter().map(|t| &t["id"]).collect();
                assert_eq!(ids, want, "{what}");
                for (got, want) in tasks.iter().zip(truth) {
                    let id = &want["id"];
                    assert_eq!(
                        await_lines(got),
                        [want["line"].as_u64().unwrap()],
                        "{what} task {id}"
                    );
                    let kind = got["blocked_on"]["kind"].as_str().unwrap_or("");
                    match want["leaf"].as_str().unwrap() {
                        "sleep" => assert_eq!(kind, "sleep", "{what} task {id}"),
                        "channel" => {
                            assert!(kind.starts_with("channel"), "{what} task {id}: {kind}")
                        }
                        _ => {
                            assert_eq!(kind, "join", "{what} task {id}");
                            assert_eq!(
                                got["blocked_on"]["fields"]["task"], want["task"],
                                "{what} task {id}"
                            );
                        }
                    }
                }
            }
        }
    }
}
