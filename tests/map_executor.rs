//! A map-keyed custom executor and std.layout's collections, end to end on the `mapexec`
//! fixture: the report must match what the program printed about its tasks and each
//! collection, from dev and release builds, ELF cores and minidumps.

mod common;

use common::report::{check_time_left, run_json};
use common::{Dumps, Profile, fixture_dumps, root, run_layoutdump};
use serde_json::Value;

fn layout(name: &str) -> String {
    root()
        .join("tests/fixtures/mapexec")
        .join(name)
        .display()
        .to_string()
}

fn dumps() -> Vec<(&'static Dumps, &'static std::path::Path)> {
    [Profile::Dev, Profile::Release]
        .into_iter()
        .flat_map(|p| {
            let d = fixture_dumps("mapexec", p);
            [(d, d.core.as_path()), (d, d.minidump.as_path())]
        })
        .collect()
}

/// The fixture's tasks live in a `HashMap` inside a thread-local `RefCell<Option<…>>`:
/// each task's id, name, state, await line, leaf and time left, as the program printed
/// them.
#[test]
fn map_keyed_executor_matches_ground_truth() {
    for (d, dump) in dumps() {
        let what = dump.display();
        let (r, code) = run_json(&["run", &layout("mapexec.layout"), dump.to_str().unwrap()]);
        assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
        assert_eq!(code, Some(0), "{what}");
        assert_eq!(r.runtimes.len(), 1, "{what}");
        let rt = &r.runtimes[0];
        assert_eq!(rt.kind, "mapexec", "{what}");
        assert_eq!(rt.fields["ready"], 3, "{what}");
        let truth = d.truth["tasks"].as_array().unwrap();
        let mut ids: Vec<u64> = rt.tasks.iter().filter_map(|t| t.id).collect();
        ids.sort();
        let want: Vec<u64> = truth.iter().map(|t| t["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, want, "{what}");
        for want in truth {
            let id = want["id"].as_u64().unwrap();
            let got = rt.tasks.iter().find(|t| t.id == Some(id)).unwrap();
            assert_eq!(got.fields["name"], want["name"], "{what} task {id}");
            assert_eq!(
                got.state.as_ref().unwrap(),
                &want["state"],
                "{what} task {id}"
            );
            let lines: Vec<u64> = got
                .backtrace
                .iter()
                .filter_map(|f| f.location.as_ref().map(|l| l.line))
                .collect();
            assert_eq!(
                lines,
                [want["await_line"].as_u64().unwrap()],
                "{what} task {id}"
            );
            // A `Duration` held across the await reads as `{:?}` shows it (std.layout).
            if let Some(span) = want["span"].as_str() {
                assert_eq!(got.backtrace[0].locals["span"], span, "{what} task {id}");
            }
            // So does a `RangeInclusive`.
            if let Some(hours) = want["hours"].as_str() {
                assert_eq!(got.backtrace[0].locals["hours"], hours, "{what} task {id}");
            }
            let leaf = got.blocked_on.as_ref().expect("a leaf");
            assert_eq!(leaf.kind, want["leaf"], "{what} task {id}");
            if leaf.kind == "sleep" {
                assert_eq!(
                    leaf.fields["deadline_ms"], want["deadline_ms"],
                    "{what} task {id}"
                );
                // Every sleeper parks for an hour and a few ms.
                let left = leaf.fields.get("left_ms");
                check_time_left(&what.to_string(), &r, left, 3_000_000..=3_600_100);
            } else {
                assert_eq!(leaf.fields["signal"], "shutdown", "{what} task {id}");
            }
        }
    }
}

/// The guide's promise: a map-keyed executor's tasks, with state and time left, in under
/// 40 lines of layout, and `check` finds nothing wrong with it.
#[test]
fn map_keyed_layout_is_under_40_lines_and_checks_clean() {
    let text = std::fs::read_to_string(layout("mapexec.layout")).unwrap();
    let lines = text.lines().count();
    assert!(lines < 40, "mapexec.layout grew to {lines} lines");
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("mapexec", profile);
        for l in ["mapexec.layout", "collections.layout"] {
            let out = run_layoutdump(&["check", &layout(l), "--binary", d.exe.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{l}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|n| n.as_i64().unwrap_or_else(|| panic!("not a number: {n}")))
        .collect()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort();
    v
}

/// Each collection view against the program's own account: contents, order where the
/// collection has one (a deque's, a B-tree's keys, a list's, a heap's array), and `len`.
/// The fixture keeps a wrapped `VecDeque`, a multi-level `BTreeMap`, a `HashSet`, a
/// `LinkedList`, a `BinaryHeap` and a `slab::Slab` with vacant entries.
#[test]
fn collections_match_ground_truth() {
    for (d, dump) in dumps() {
        let what = dump.display();
        let t = &d.truth;
        assert_eq!(
            t["ready_wrapped"], true,
            "the fixture's deque must wrap around"
        );
        let (r, code) = run_json(&["run", &layout("collections.layout"), dump.to_str().unwrap()]);
        assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
        assert_eq!(code, Some(0), "{what}: {:?}", r.runtimes[0].unavailable);
        let f = &r.runtimes[0].fields;
        let task_ids: Vec<i64> = t["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        // HashMap and HashSet: every entry, in the table's order.
        assert_eq!(sorted(ints(&f["task_ids"])), task_ids, "{what}");
        assert_eq!(f["tasks_len"], task_ids.len(), "{what}");
        let mut names: Vec<String> = f["task_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        let mut want_names: Vec<String> = t["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        want_names.sort();
        assert_eq!(names, want_names, "{what}");
        assert_eq!(sorted(ints(&f["woken"])), ints(&t["woken"]), "{what}");
        assert_eq!(
            f["woken_len"],
            t["woken"].as_array().unwrap().len(),
            "{what}"
        );
        // VecDeque, in queue order across the end of its buffer.
        assert_eq!(ints(&f["ready"]), ints(&t["ready"]), "{what}");
        assert_eq!(f["ready_len"], 3, "{what}");
        // BTreeMap: keys in order, and the values in the same order.
        let timers = t["timers"].as_array().unwrap();
        assert!(timers.len() > 11, "the B-tree needs internal nodes");
        let keys: Vec<i64> = timers.iter().map(|kv| kv[0].as_i64().unwrap()).collect();
        let vals: Vec<i64> = timers.iter().map(|kv| kv[1].as_i64().unwrap()).collect();
        assert_eq!(ints(&f["timer_keys"]), keys, "{what}");
        assert_eq!(ints(&f["timer_tasks"]), vals, "{what}");
        assert_eq!(f["timers_len"], timers.len(), "{what}");
        // LinkedList, front to back; BinaryHeap, in its array's order.
        assert_eq!(f["log"], t["log"], "{what}");
        assert_eq!(f["log_len"], t["log"].as_array().unwrap().len(), "{what}");
        assert_eq!(ints(&f["priorities"]), ints(&t["priorities"]), "{what}");
        // Slab: occupied entries only, with their keys.
        let spare = t["spare"].as_array().unwrap();
        let keys: Vec<i64> = spare.iter().map(|kv| kv[0].as_i64().unwrap()).collect();
        let vals: Vec<i64> = spare.iter().map(|kv| kv[1].as_i64().unwrap()).collect();
        assert_eq!(ints(&f["spare_keys"]), keys, "{what}");
        assert_eq!(ints(&f["spare"]), vals, "{what}");
        assert_eq!(f["spare_len"], spare.len(), "{what}");
    }
}
