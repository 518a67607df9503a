//! embassy-executor end to end (`arch-std`): tasks in static pools, found by a scan, listed
//! with their task function, await line and what each waits on, and a lock-order deadlock
//! between two of them. Dev and release; cores and minidumps.

mod common;

use common::report::{check_time_left, run_json};
use common::{Profile, fixture_dumps, truth_rows};

/// Tasks in static pools, found by a scan for their headers' `poll_fn`, must be listed by
/// `layoutdump run DUMP` (auto-detected) with their task function, await line and what
/// each waits on — an embassy-time timer, a full embassy-sync channel (the channel's
/// address), a signal (its address), a mutex (its address), a future that never
/// completes. A task that returned and a pool slot never used are not tasks. Two tasks
/// that take two mutexes in opposite orders are a possible deadlock, named by their
/// addresses (embassy tasks have no ids) and await lines.
#[test]
fn embassy_tasks_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("embassy-tasks", profile);
        for dump in [&d.core, &d.minidump] {
            let what = dump.display();
            let (r, code) = run_json(&["run", dump.to_str().unwrap()]);
            // The deadlock is a finding about the program, not missing data: exit 0.
            assert_eq!(r.warnings.len(), 1, "{what}: {:#?}", r.warnings);
            let deadlock = &r.warnings[0];
            assert!(
                deadlock.starts_with("possible deadlock: task @ 0x")
                    && ["left", "right"].iter().all(|t| {
                        let line = d.truth["tasks"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|x| x["task"] == *t)
                            .unwrap()["await_line"]
                            .as_u64()
                            .unwrap();
                        deadlock.contains(&format!("embassy-tasks/src/main.rs:{line})"))
                    }),
                "{what}: {deadlock}"
            );
            assert_eq!(code, Some(0), "{what}");
            assert_eq!(r.layout.name, "auto: embassy 0.9", "{what}");
            assert_eq!(r.runtimes.len(), 1, "{what}");
            let rt = &r.runtimes[0];
            assert_eq!(rt.kind, "embassy", "{what}");
            assert_eq!(rt.fields["ready"], 0, "{what}");
            // (task function, await line, leaf kind, resource address) for every task.
            let mut got: Vec<(String, u64, String, String)> = rt
                .tasks
                .iter()
                .map(|t| {
                    let own = t.own_frames("embassy-tasks/");
                    assert_eq!(own.len(), 1, "{what}: {:?}", t.backtrace);
                    let (function, line) = own[0];
                    let name = [
                        "blink",
                        "producer",
                        "shutdown_watch",
                        "left",
                        "right",
                        "embassy_main",
                    ]
                    .into_iter()
                    .find(|n| function.contains(&format!("__{n}_task::")))
                    .unwrap_or_else(|| panic!("{what}: task function {function}"));
                    let leaf = t.blocked_on.as_ref().expect("a leaf");
                    let resource = ["channel", "signal", "mutex"]
                        .iter()
                        .find_map(|k| leaf.fields.get(*k)?.as_str())
                        .unwrap_or_default();
                    assert_eq!(t.state.as_deref(), Some("idle"), "{what}");
                    if leaf.kind == "timer" {
                        // `Timer::after(3600 + led s)`, in microsecond ticks since the
                        // driver started, a few ms in; the time left is under that.
                        let ticks = leaf.fields["expires_at_ticks"].as_u64().unwrap();
                        assert!(
                            (3_600_000_000..3_610_000_000).contains(&ticks),
                            "{what}: {ticks}"
                        );
                        let left = leaf.fields.get("left_ms");
                        check_time_left(&what.to_string(), &r, left, 3_000_000..=3_602_100);
                    }
                    let name = if name == "embassy_main" { "main" } else { name };
                    (
                        name.to_string(),
                        line,
                        leaf.kind.clone(),
                        resource.to_string(),
                    )
                })
                .collect();
            got.sort();
            let want = truth_rows(&d.truth, |t| {
                t["resource"].as_str().unwrap_or_default().to_string()
            });
            assert_eq!(got, want, "{what}");
        }
    }
}
