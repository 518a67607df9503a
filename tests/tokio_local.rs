//! tokio LocalSet end to end: the `tokio-local` fixture's local tasks, found by their
//! vtable, and its runtime's ordinary tasks, each listed once. Dev and release builds; ELF
//! cores and minidumps.

mod common;

use common::report::{Report, Task};
use common::{Profile, fixture_dumps, run_layoutdump};

fn await_lines(t: &Task) -> Vec<u64> {
    t.own_await_lines("tokio-local/")
}

/// `spawn_local` tasks are owned by the LocalSet, which no variable names while its
/// thread is parked; tokio's layout finds them by their vtable (`raw::poll<T, S>` with S =
/// the LocalSet's Shared). The local tasks — ids, await lines, leaves, the join target —
/// and the runtime's ordinary tasks must all be listed, each once, through `run tokio` and
/// through auto-detection.
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
                let r: Report = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
                assert_eq!(out.status.code(), Some(0), "{what}");
                let mut kinds: Vec<&str> = r.runtimes.iter().map(|r| r.kind.as_str()).collect();
                kinds.sort();
                assert_eq!(kinds, ["local_set", "multi_thread"], "{what}");
                let by_kind = |k: &str| r.runtimes.iter().find(|r| r.kind == k).unwrap();
                let numbers = |key: &str| -> Vec<u64> {
                    let v = &d.truth[key];
                    v.as_array()
                        .unwrap_or_else(|| panic!("{key}: {v}"))
                        .iter()
                        .map(|n| n.as_u64().or_else(|| n["id"].as_u64()).unwrap())
                        .collect()
                };

                let mt = by_kind("multi_thread");
                let ids: Vec<u64> = mt.tasks.iter().filter_map(|t| t.id).collect();
                assert_eq!(ids, numbers("workers"), "{what}");
                for t in &mt.tasks {
                    assert_eq!(
                        await_lines(t),
                        [d.truth["worker_line"].as_u64().unwrap()],
                        "{what}"
                    );
                }

                let ls = by_kind("local_set");
                assert!(ls.fields.contains_key("found_by"), "{what}");
                // Found by a scan, it is still listed under the thread that drives it
                // (main, whose tid is the pid), inside the runtime that thread runs.
                let pid = d.truth["pid"].as_u64().unwrap() as u32;
                assert_eq!(ls.threads, [pid], "{what}");
                assert_eq!(
                    ls.fields["inside_runtime"],
                    format!("multi_thread @ {}", mt.address),
                    "{what}"
                );
                assert!(
                    r.threads
                        .iter()
                        .all(|t| !t.fields.contains_key("owner_thread")),
                    "{what}: the join key is not reported"
                );
                let truth = d.truth["local"].as_array().unwrap();
                let ids: Vec<u64> = ls.tasks.iter().filter_map(|t| t.id).collect();
                assert_eq!(ids, numbers("local"), "{what}");
                for (got, want) in ls.tasks.iter().zip(truth) {
                    let id = &want["id"];
                    assert_eq!(
                        await_lines(got),
                        [want["line"].as_u64().unwrap()],
                        "{what} task {id}"
                    );
                    let leaf = got.blocked_on.as_ref();
                    let kind = leaf.map_or("", |l| l.kind.as_str());
                    match want["leaf"].as_str().unwrap() {
                        "sleep" => assert_eq!(kind, "sleep", "{what} task {id}"),
                        "channel" => {
                            assert!(kind.starts_with("channel"), "{what} task {id}: {kind}")
                        }
                        _ => {
                            assert_eq!(kind, "join", "{what} task {id}");
                            assert_eq!(
                                leaf.map(|l| &l.fields["task"]),
                                Some(&want["task"]),
                                "{what} task {id}"
                            );
                        }
                    }
                }
            }
        }
    }
}
