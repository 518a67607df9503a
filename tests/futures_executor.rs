//! futures-executor's LocalPool end to end: the pool lives in the frames of the thread
//! running it (in registers, in release builds), so its tasks are found by a scan for
//! their boxed futures' drop functions. The `futures-pool` fixture's three tasks — root
//! async fns, await lines, channel leaves — must be listed, with no warning: the scan's
//! stale candidates (freed tasks) are left out. Dev and release; cores and minidumps.

mod common;

use common::{Profile, fixture_dumps, run_layoutdump};
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
            assert_eq!(out.status.code(), Some(0), "{what}");
            assert_eq!(r["layout"]["name"], "auto: futures-executor 0.3", "{what}");
            let rts = r["runtimes"].as_array().unwrap();
            assert_eq!(rts.len(), 1, "{what}");
            assert_eq!(rts[0]["kind"], "local_pool", "{what}");
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
                    let own: Vec<&Value> = t["backtrace"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|f| {
                            f["location"]["file"]
                                .as_str()
                                .is_some_and(|p| p.starts_with("futures-pool/"))
                        })
                        .collect();
                    (
                        own[0]["function"].as_str().unwrap().to_string(),
                        own.iter()
                            .map(|f| f["location"]["line"].as_u64().unwrap())
                            .collect(),
                        t["blocked_on"]["kind"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let mut want: Vec<(String, Vec<u64>, String)> = truth
                .iter()
                .map(|t| {
                    (
                        t["future"].as_str().unwrap().to_string(),
                        t["await_lines"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|l| l.as_u64().unwrap())
                            .collect(),
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
