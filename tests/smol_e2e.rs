//! smol (async-executor + async-task) end to end: the `smol-tasks` fixture's static
//! executor, reached by a two-line user layout (`use smol` + a root), must list exactly
//! the fixture's tasks — count, root async fn, await lines, what each waits on — from
//! dev and release builds, ELF cores and minidumps.

mod common;

use common::{Dumps, Profile, fixture_dumps, root, run_layoutdump};
use serde_json::Value;

fn check(d: &Dumps, dump: &std::path::Path) {
    let layout = root().join("tests/fixtures/smol-tasks/smol-tasks.layout");
    let out = run_layoutdump(&[
        "run",
        layout.to_str().unwrap(),
        dump.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let what = dump.display();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["warnings"], serde_json::json!([]), "{what}");
    assert_eq!(out.status.code(), Some(0), "{what}");
    let rts = r["runtimes"].as_array().unwrap();
    assert_eq!(rts.len(), 1, "{what}");
    assert_eq!(rts[0]["kind"], "async_executor", "{what}");
    let tasks = rts[0]["tasks"].as_array().unwrap();
    // Each task as (root async fn, await lines, leaf kind), sorted: async-task has no ids,
    // so tasks are compared as a multiset.
    let mut got: Vec<(String, Vec<u64>, String)> = tasks
        .iter()
        .map(|t| {
            let frames = t["backtrace"].as_array().unwrap();
            let located: Vec<&Value> = frames.iter().filter(|f| !f["location"].is_null()).collect();
            (
                located.first().map_or(String::new(), |f| {
                    f["function"].as_str().unwrap().to_string()
                }),
                located
                    .iter()
                    .map(|f| f["location"]["line"].as_u64().unwrap())
                    .collect(),
                t["blocked_on"]["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut want: Vec<(String, Vec<u64>, String)> = d.truth["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let f = t["future"].as_str().unwrap().to_string();
            let leaf = match f.as_str() {
                "smol_tasks::sleeper" => "sleep",
                "smol_tasks::receiver" => "channel",
                _ => "join",
            };
            (
                f,
                t["await_lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_u64().unwrap())
                    .collect(),
                leaf.to_string(),
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{what}");
    assert_eq!(
        rts[0]["task_count"].as_u64(),
        Some(want.len() as u64),
        "{what}"
    );
}

#[test]
fn smol_executor_tasks_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("smol-tasks", profile);
        check(d, &d.core);
        check(d, &d.minidump);
    }
}
