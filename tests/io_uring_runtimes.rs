//! The io_uring runtimes end to end (monoio, compio, glommio): each thread's runtime, and
//! every task blocked on its io_uring op, a timer or a join as the fixture reports it; in
//! a stalled runtime, where each op is in the rings. Dev and release; cores and minidumps.

mod common;

use common::report::{Runtime, check_time_left, run_json};
use common::{Profile, fixture_dumps, truth_rows};

/// What differs between the runtimes' fixtures and layouts.
struct Uring {
    fixture: &'static str,
    layout: &'static str,
    /// The op state of a submitted op whose task waits for the completion.
    waiting: &'static str,
    /// Where the rings say that op is, for layouts that read them per op.
    ring: Option<&'static str>,
}

#[test]
fn monoio_tasks_and_io_uring_ops_match_ground_truth() {
    check(Uring {
        fixture: "monoio-tasks",
        layout: "monoio 0.2",
        waiting: "Waiting",
        ring: Some("submitted"),
    });
}

#[test]
fn compio_tasks_and_io_uring_ops_match_ground_truth() {
    check(Uring {
        fixture: "compio-tasks",
        layout: "compio 0.16",
        waiting: "Pending",
        ring: Some("submitted"),
    });
}

#[test]
fn glommio_tasks_and_io_uring_ops_match_ground_truth() {
    check(Uring {
        fixture: "glommio-tasks",
        layout: "glommio 0.9",
        waiting: "Dispatched",
        ring: None,
    });
}

/// `u`'s fixture against its ground truth. Each thread's runtime is found from its scoped
/// thread-local; every task is listed (monoio's idle tasks, owned only by their wakers, and
/// glommio's, by a scan joined to their thread's runtime; compio's from its slab of
/// wakers), each blocked on its io_uring operation (`accept`, `recv`, `read`) with the
/// socket's fd and the op's state in the driver (monoio `Waiting`, compio `Pending`,
/// glommio `Dispatched`: submitted, the task waiting for the completion), on a timer with
/// the time left, or on another task through its JoinHandle. Copies of task headers on a
/// stack are not tasks. Dev and release; cores and minidumps.
fn check(u: Uring) {
    let kind = u.layout.split(' ').next().unwrap_or_default();
    let prefix = format!("{}/", u.fixture);
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps(u.fixture, profile);
        for dump in [&d.core, &d.minidump] {
            let what = dump.display().to_string();
            let (r, code) = run_json(&["run", dump.to_str().unwrap()]);
            assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
            assert_eq!(code, Some(0), "{what}");
            assert_eq!(r.layout.name, format!("auto: {}", u.layout), "{what}");
            assert_eq!(r.runtimes.len(), 1, "{what}");
            let rt = &r.runtimes[0];
            assert_eq!(rt.kind, kind, "{what}");
            // (task function, await line, leaf kind, fd) for every task.
            let mut got: Vec<(String, u64, String, Option<u64>)> = rt
                .tasks
                .iter()
                .map(|t| {
                    let own = t.own_frames(&prefix);
                    assert_eq!(own.len(), 1, "{what}: {:?}", t.backtrace);
                    let (function, line) = own[0];
                    // `monoio_tasks::sleeper`, `compio_tasks::main::{async block#0}`.
                    let name = function.split("::").nth(1).unwrap_or_default();
                    let leaf = t.blocked_on.as_ref().expect("a leaf");
                    assert_eq!(t.state.as_deref(), Some("idle"), "{what}");
                    match leaf.kind.as_str() {
                        // The sleepers' hour and up to ten seconds; main's day.
                        "sleep" => {
                            let left = leaf.fields.get("left_ms");
                            let most = if name == "main" {
                                86_400_000
                            } else {
                                3_611_000
                            };
                            check_time_left(&what, &r, left, 3_000_000..=most);
                        }
                        "join" => assert_eq!(
                            joined(rt, &leaf.fields["task"], &prefix),
                            Some(format!("{}::sleeper", kind.to_owned() + "_tasks")),
                            "{what}"
                        ),
                        _ => {
                            assert_eq!(leaf.fields["uring"], u.waiting, "{what} {function}");
                            assert_eq!(
                                leaf.fields.get("ring").and_then(|r| r.as_str()),
                                u.ring,
                                "{what} {function}"
                            );
                        }
                    }
                    (
                        name.to_string(),
                        line,
                        leaf.kind.clone(),
                        leaf.fields.get("fd").and_then(|f| f.as_u64()),
                    )
                })
                .collect();
            got.sort();
            // The accepted socket's fd is the connection's own: any, but not another's.
            let conn = got
                .iter_mut()
                .find(|t| t.0 == "connection")
                .expect("connection");
            let conn_fd = conn.3.take().expect("an fd");
            let want = truth_rows(&d.truth, |t| t["fd"].as_u64());
            assert_eq!(got, want, "{what}");
            assert!(
                want.iter().all(|t| t.3 != Some(conn_fd)),
                "{what}: fd {conn_fd}"
            );
        }
    }
}

/// A monoio or compio runtime stalled by a task that blocks its thread, with a recv in
/// each place the rings can hold one: the report says, for each, whether the kernel has
/// it (`submitted`), has finished it with the completion not yet reaped (`completed`), or
/// was never handed it (`not submitted`), as the program itself knows; and that the
/// stalling task is the one its thread runs.
#[test]
fn monoio_ring_says_where_each_op_is() {
    check_stall("monoio", "Waiting");
}

#[test]
fn compio_ring_says_where_each_op_is() {
    check_stall("compio", "Pending");
}

fn check_stall(kind: &str, waiting: &str) {
    let fixture = format!("{kind}-stall");
    let prefix = format!("{fixture}/");
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps(&fixture, profile);
        for dump in [&d.core, &d.minidump] {
            let what = dump.display().to_string();
            let (r, code) = run_json(&["run", dump.to_str().unwrap()]);
            assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
            assert_eq!(code, Some(0), "{what}");
            assert_eq!(r.runtimes.len(), 1, "{what}");
            let rt = &r.runtimes[0];
            if kind == "compio" {
                // One op in each ring: the queued recv, the posted completion.
                assert_eq!(rt.fields["not_submitted"], 1, "{what}");
                assert_eq!(rt.fields["not_reaped"], 1, "{what}");
            }
            let mut readers = Vec::new();
            let mut stalls = 0;
            for t in &rt.tasks {
                let own = t.own_frames(&prefix);
                let function = own
                    .first()
                    .map(|f| f.0.split("::").nth(1).unwrap_or_default());
                match function {
                    Some("stall") => {
                        stalls += 1;
                        assert_eq!(t.state.as_deref(), Some("running"), "{what}");
                        // The runtime's thread polls it: its stack's outermost async fn
                        // body's parameter says so in a dev build; in a release build,
                        // which keeps no location for it, its stack points at the task.
                        let polling: Vec<&String> =
                            r.threads.iter().flat_map(|th| &th.polling).collect();
                        assert_eq!(polling, [&t.backtrace[0].address], "{what}");
                        // And the thread names it: compio's listed tasks are read as the
                        // report is written, monoio's scanned ones before.
                        let running: Vec<&str> = (r.threads.iter())
                            .filter_map(|th| Some(th.running.as_ref()?.address.as_str()))
                            .collect();
                        assert_eq!(running, [t.address.as_str()], "{what}");
                    }
                    Some("reader") => {
                        let leaf = t.blocked_on.as_ref().expect("a leaf");
                        assert_eq!(leaf.fields["uring"], waiting, "{what}");
                        readers.push((
                            "reader".to_string(),
                            own[0].1,
                            leaf.kind.clone(),
                            (
                                leaf.fields["fd"].as_u64(),
                                leaf.fields["ring"].as_str().map(str::to_string),
                            ),
                        ));
                    }
                    // compio's main future is a task of its runtime, asleep for a day.
                    Some("main") if kind == "compio" => {
                        let leaf = t.blocked_on.as_ref().expect("a leaf");
                        assert_eq!(leaf.kind, "sleep", "{what}");
                    }
                    other => panic!("{what}: an unexpected task {other:?}: {:?}", t.backtrace),
                }
            }
            assert_eq!(stalls, 1, "{what}");
            readers.sort();
            let want = truth_rows(&d.truth, |t| {
                (t["fd"].as_u64(), t["ring"].as_str().map(str::to_string))
            });
            assert_eq!(readers, want, "{what}");
        }
    }
}

/// The function of the task a join names: by id (compio), or by address (monoio and
/// glommio, whose tasks have none).
fn joined(rt: &Runtime, target: &serde_json::Value, prefix: &str) -> Option<String> {
    let task = match target {
        serde_json::Value::Number(id) => rt.tasks.iter().find(|t| t.id == id.as_u64()),
        serde_json::Value::String(address) => rt.tasks.iter().find(|t| &t.address == address),
        _ => None,
    }?;
    let own = task.own_frames(prefix);
    Some(own.first()?.0.to_string())
}
