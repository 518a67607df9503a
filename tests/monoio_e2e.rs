//! monoio end to end, on its io_uring driver: each thread's runtime from its scoped
//! thread-local; tasks waiting for I/O or a timer (owned only by their wakers) found by a
//! scan and joined to their thread's runtime; each task blocked on its io_uring operation
//! (`accept`, `recv`) with the socket's fd and the op's lifecycle in the driver
//! (`Waiting`: submitted, its task waiting for the completion), or on a timer with the
//! time left. Copies of task headers on a stack are not tasks. Dev and release; cores and
//! minidumps.

mod common;

use common::report::{check_time_left, run_json};
use common::{Profile, fixture_dumps, truth_rows};

#[test]
fn monoio_tasks_and_io_uring_ops_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("monoio-tasks", profile);
        for dump in [&d.core, &d.minidump] {
            let what = dump.display();
            let (r, code) = run_json(&["run", dump.to_str().unwrap()]);
            assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
            assert_eq!(code, Some(0), "{what}");
            assert_eq!(r.layout.name, "auto: monoio 0.2", "{what}");
            assert_eq!(r.runtimes.len(), 1, "{what}");
            let rt = &r.runtimes[0];
            assert_eq!(rt.kind, "monoio", "{what}");
            // (task function, await line, leaf kind, fd) for every task.
            let mut got: Vec<(String, u64, String, Option<u64>)> = rt
                .tasks
                .iter()
                .map(|t| {
                    let own = t.own_frames("monoio-tasks/");
                    assert_eq!(own.len(), 1, "{what}: {:?}", t.backtrace);
                    let (function, line) = own[0];
                    let leaf = t.blocked_on.as_ref().expect("a leaf");
                    assert_eq!(t.state.as_deref(), Some("idle"), "{what}");
                    if leaf.kind == "sleep" {
                        // An hour and up to ten seconds.
                        let left = leaf.fields.get("left_ms");
                        check_time_left(&what.to_string(), &r, left, 3_000_000..=3_611_000);
                    } else if leaf.kind == "join" {
                        let target = leaf.fields["task"].as_str().unwrap_or_default();
                        let joined = rt.tasks.iter().find(|t| t.address == target);
                        assert_eq!(
                            joined.map(|t| t.backtrace[0].function.as_str()),
                            Some("monoio_tasks::sleeper"),
                            "{what}: join target {target}"
                        );
                    } else {
                        assert_eq!(leaf.fields["uring"], "Waiting", "{what} {function}");
                    }
                    (
                        function.trim_start_matches("monoio_tasks::").to_string(),
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
