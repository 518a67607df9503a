//! A custom executor, end to end: the `inhouse` fixture (a hand-written single-threaded
//! executor) and its layout `tests/fixtures/inhouse/inhouse.layout`, written from
//! docs/guides/custom-executor.md: what it reports, and what mistakes in it give.

mod common;

use common::report::{check_time_left, run_json};
use common::{Dumps, Profile, fixture_dumps, numbers, root, run_layoutdump};
use serde_json::Value;

fn layout() -> String {
    root()
        .join("tests/fixtures/inhouse/inhouse.layout")
        .display()
        .to_string()
}

fn check_against_truth(d: &Dumps, dump: &std::path::Path) {
    let (r, code) = run_json(&["run", &layout(), dump.to_str().unwrap()]);
    let what = dump.display();
    assert_eq!(r.warnings, Vec::<String>::new(), "{what}");
    assert_eq!(code, Some(0), "{what}");
    assert_eq!(r.runtimes.len(), 1, "{what}");
    let rt = &r.runtimes[0];
    assert_eq!(rt.kind, "inhouse");
    let truth = d.truth["tasks"].as_array().unwrap();
    // The finished task's slot is None: not listed, and no warning about it.
    let ids: Vec<u64> = rt.tasks.iter().filter_map(|t| t.id).collect();
    let want_ids: Vec<u64> = truth.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, want_ids, "{what}");
    for want in truth {
        let id = want["id"].as_u64().unwrap();
        let got = rt.tasks.iter().find(|t| t.id == Some(id)).unwrap();
        assert_eq!(got.fields["name"], want["name"], "{what} task {id}");
        let pp = &d.truth["polls_and_priority"][id.to_string()];
        assert_eq!(got.fields["polls"], pp[0], "{what} task {id}");
        assert_eq!(got.fields["priority"], pp[1], "{what} task {id}");
        assert_eq!(got.state.as_deref(), Some("idle"), "{what} task {id}");
        let lines: Vec<u64> = got
            .backtrace
            .iter()
            .filter_map(|f| f.location.as_ref().map(|l| l.line))
            .collect();
        assert_eq!(lines, numbers(&want["await_lines"]), "{what} task {id}");
        let leaf = got.blocked_on.as_ref().expect("a leaf");
        assert_eq!(leaf.kind, want["leaf"], "{what} task {id}");
        match want["leaf"].as_str().unwrap() {
            "sleep" => {
                assert_eq!(leaf.fields["deadline_ms"], want["deadline_ms"]);
                // deadline_ms is the executor's virtual clock when the sleep began (a few
                // ms in) plus its duration: the real time left is at most that, and
                // within minutes of it.
                let deadline = want["deadline_ms"].as_i64().unwrap();
                let left = leaf.fields.get("left_ms");
                check_time_left(&what.to_string(), &r, left, deadline - 599_999..=deadline);
            }
            "join" => assert_eq!(leaf.fields["task"], want["task"]),
            other => panic!("unknown leaf {other}"),
        }
    }
}

/// Every task the fixture reports about itself — id, name (decoded by the layout's rhai
/// hook), polls, priority, await lines, what it waits on — must be in the report, from dev
/// and release builds, ELF cores, minidumps and (where gdb is installed) gcore cores.
#[test]
fn inhouse_executor_tasks_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("inhouse", profile);
        check_against_truth(d, &d.core);
        check_against_truth(d, &d.minidump);
        if let Some(g) = &d.gcore {
            check_against_truth(d, g);
        }
    }
}

#[test]
fn inhouse_layout_is_small_and_checks_clean() {
    let text = std::fs::read_to_string(layout()).unwrap();
    let lines = text.lines().count();
    assert!(lines <= 80, "the custom layout grew to {lines} lines");
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("inhouse", profile);
        let out = run_layoutdump(&["check", &layout(), "--binary", d.exe.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The mistakes an author makes while following the guide, each caught by `check` with the
/// line, the column and what to do.
#[test]
fn check_catches_mistakes_in_the_custom_layout() {
    let d = fixture_dumps("inhouse", Profile::Dev);
    let text = std::fs::read_to_string(layout()).unwrap();
    let cases = [
        // A field name misremembered from the source.
        (
            "polls = (t.word >> 8)",
            "polls = (t.words >> 8)",
            "type `inhouse::Task` has no field `words` (it has: id, word, name, future)",
        ),
        // A rhai mistake inside the hook: reported at its line in the layout.
        (
            "if b == 0 { break; }",
            "if b == 0 { brek; }",
            "in hook `c_name`",
        ),
        // A type path that does not exist in the binary.
        (
            "task inhouse::Task as t",
            "task inhouse::Tsk as t",
            "no type matches `inhouse::Tsk`",
        ),
    ];
    for (from, to, wanted) in cases {
        assert!(text.contains(from), "{from}");
        let path = common::mistake_path("broken.layout");
        let (code, err) = common::check_layout_text(&path, &text.replacen(from, to, 1), &d.exe);
        assert_ne!(code, Some(0), "{to}: check passed");
        assert!(err.contains(wanted), "{to}: {err}");
        let line = text[..text.find(from).unwrap()].matches('\n').count() + 1;
        assert!(
            err.contains(&format!("broken.layout:{line}:")),
            "{to}: not at line {line}: {err}"
        );
    }
}

/// `check --explain DUMP`: each root and rule with what it found; with the task list
/// pointed at the wrong collection, the task rule matched nothing and the warning names
/// the type the list yielded instead.
#[test]
fn explain_shows_where_the_task_list_stops() {
    let d = fixture_dumps("inhouse", Profile::Dev);
    let core = d.core.to_str().unwrap();
    let out = run_layoutdump(&["check", &layout(), "--explain", core]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let task_line = text
        .lines()
        .find(|l| l.contains("task inhouse::Task"))
        .unwrap_or_else(|| panic!("{text}"));
    let live = d.truth["tasks"].as_array().unwrap().len();
    assert!(task_line.starts_with("ok "), "{task_line}");
    assert!(
        task_line.ends_with(&format!("matched {live} values")),
        "{task_line}"
    );
    assert!(text.contains("1 threads: 1 value, 0 absent"), "{text}");

    let text_src = std::fs::read_to_string(layout()).unwrap();
    let path = common::mistake_layout(
        "wrong-list.layout",
        &text_src.replacen("tasks = ex.tasks", "tasks = ex.timers.data", 1),
    );
    let out = run_layoutdump(&["check", path.to_str().unwrap(), "--explain", core]);
    let text = String::from_utf8_lossy(&out.stdout);
    let task_line = text
        .lines()
        .find(|l| l.contains("task inhouse::Task"))
        .unwrap();
    assert!(task_line.starts_with("-- "), "{task_line}");
    assert!(task_line.contains("matched nothing"), "{task_line}");
    assert!(
        text.contains("no `task` rule matches type `core::cmp::Reverse<(u64, u64)>`"),
        "{text}"
    );
}

/// A leaf member that cannot be read (here a hook that fails) makes the report partial:
/// exit 3, and each task blocked on that leaf says which member and which rule, at its
/// line (issue 18: it printed `unavailable` and exited 0).
#[test]
fn failing_hook_in_a_leaf_is_partial() {
    let d = fixture_dumps("inhouse", Profile::Dev);
    let text = std::fs::read_to_string(layout()).unwrap();
    let from = "    deadline_ms = s.deadline_ms\n";
    assert!(text.contains(from));
    let broken = text.replacen(
        from,
        "    deadline_ms = s.deadline_ms\n    late = fail(s.deadline_ms)\n",
        1,
    ) + "hook fail(x) \"\"\"\n    throw \"no clock\";\n\"\"\"\n";
    let path = common::mistake_layout("failing-leaf.layout", &broken);
    let out = run_layoutdump(&[
        "run",
        path.to_str().unwrap(),
        d.core.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = broken[..broken.find("leaf inhouse::Sleep").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let sleepers: Vec<&Value> = r["runtimes"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["blocked_on"]["kind"] == "sleep")
        .collect();
    assert!(!sleepers.is_empty());
    for t in sleepers {
        let why = t["unavailable"]["blocked_on.late"]
            .as_str()
            .unwrap_or_default();
        assert!(
            why.contains(&format!("failing-leaf.layout:{line}:")) && why.contains("no clock"),
            "task {}: {why:?}",
            t["id"]
        );
    }
}

/// A task rule that reads the wrong bytes for `id` (here the state bits: every idle task
/// gets 0) gives ids that no executor would: the report says so, names the rule's line,
/// and is partial (exit 3), where it used to list the garbage with exit 0 (issue 20).
#[test]
fn misread_ids_are_a_warning() {
    let d = fixture_dumps("inhouse", Profile::Dev);
    let text = std::fs::read_to_string(layout()).unwrap();
    let from = "    id = t.id\n";
    assert!(text.contains(from));
    let path = common::mistake_layout(
        "wrong-id.layout",
        &text.replacen(from, "    id = t.word & 0x7\n", 1),
    );
    let out = run_layoutdump(&["run", path.to_str().unwrap(), d.core.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let live = d.truth["tasks"].as_array().unwrap().len();
    assert!(
        stdout.contains(&format!(
            "{live} tasks share an id with another (first: id 0, the tasks at 0x"
        )) && stdout.contains("wrong-id.layout:22:5"),
        "{stdout}"
    );
    // The layout as written reads distinct ids: no such warning.
    let out = run_layoutdump(&["run", &layout(), d.core.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("share an id"));
}
