//! Many tasks: a fixture with 10,000 tasks in four distinct await states; `--group` must
//! print exactly those four groups with the counts the fixture reported.

mod common;

use std::collections::BTreeMap;

use common::report::Report;
use common::{Profile, fixture_dumps, run_layoutdump};

type Awaits = Vec<(String, u64)>;

#[test]
fn group_ten_thousand_tasks_into_their_four_states() {
    let d = fixture_dumps("tokio-many", Profile::Dev);
    let out = run_layoutdump(&[
        "run",
        "tokio",
        d.core.to_str().unwrap(),
        "--group",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    let rt = &report.runtimes[0];
    assert_eq!(rt.tasks.len() as u64, d.truth["alive"].as_u64().unwrap());

    let mut found: BTreeMap<Awaits, u64> = BTreeMap::new();
    for g in &rt.groups {
        let own: Awaits = g
            .frames
            .iter()
            .filter(|f| f.function.starts_with("tokio_many::"))
            .map(|f| (f.function.clone(), f.location.as_ref().unwrap().line))
            .collect();
        *found.entry(own).or_default() += g.count;
    }
    let want: BTreeMap<Awaits, u64> = d.truth["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let awaits = g["awaits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a[0].as_str().unwrap().to_string(), a[1].as_u64().unwrap()))
                .collect();
            (awaits, g["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(found, want);
    assert_eq!(rt.groups.len(), want.len(), "one group per await state");
    // Most common first.
    let counts: Vec<u64> = rt.groups.iter().map(|g| g.count).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
}

/// Output reads each runtime's tasks only as they are written (unless a filter or the
/// graph needs them all first). JSON, text and YAML written that way must be those of the
/// report read at once: the same tasks in the same order, the same warnings and the same
/// outcome.
#[test]
fn tasks_read_while_writing_give_the_same_report() {
    use layoutdump_engine::analyze::{Options, analyze};
    let d = fixture_dumps("tokio-many", Profile::Dev);
    let program = layoutdump_engine::layout_loader::compile_layout("tokio").unwrap();
    let write = |defer_tasks: bool| {
        let opts = Options {
            defer_tasks,
            ..Options::default()
        };
        let (report, outcome) = analyze(&program, &d.core, &opts).unwrap();
        let pending: usize = report
            .runtimes
            .iter()
            .filter_map(|r| r.pending.as_ref())
            .map(|p| p.tasks.len())
            .sum();
        let mut json = Vec::new();
        report.write_json(&mut json, false).unwrap();
        // Text and YAML read the pending tasks again, as a run writes one format.
        let text = layoutdump_engine::report::render_text(&report, Default::default());
        json.extend(text.as_bytes());
        report.write_yaml(&mut json).unwrap();
        let late = report.late_findings();
        (json, format!("{outcome:?}"), pending, late.partial)
    };
    let (at_once, outcome_at_once, none_pending, _) = write(false);
    let (streamed, outcome_streamed, pending, late_partial) = write(true);
    assert_eq!(none_pending, 0);
    // Every task of the fixture was left to be read while writing (not read up front).
    assert_eq!(pending as u64, d.truth["alive"].as_u64().unwrap());
    assert_eq!(outcome_at_once, outcome_streamed);
    assert!(!late_partial);
    assert!(
        at_once == streamed,
        "the streamed JSON, text or YAML differs from that of the report read at once"
    );
    let json_end = streamed.iter().position(|&b| b == b'\n').unwrap();
    let report: Report = serde_json::from_slice(&streamed[..json_end]).unwrap();
    assert_eq!(
        report.runtimes[0].tasks.len() as u64,
        d.truth["alive"].as_u64().unwrap()
    );
}

/// Filters and the wait-for graph are applied to tasks as they are read, not to a report
/// read whole first: on a fixture with tasks of many kinds and a deadlock, each filter
/// shows in every format (and `--group`, and the graph) what it shows on the report read
/// at once, and keeps some tasks but not all.
#[test]
fn filters_and_the_graph_on_tasks_read_while_writing_give_the_same_report() {
    use layoutdump_engine::analyze::{Options, analyze};
    use layoutdump_engine::report::task_views::TaskFilter;
    use layoutdump_engine::report::{Writer, writer};
    let d = fixture_dumps("tokio-tasks", Profile::Dev);
    let program = layoutdump_engine::layout_loader::compile_layout("tokio").unwrap();
    let filters = || {
        let pattern = |re: &str| Some(regex::Regex::new(re).unwrap());
        [
            TaskFilter {
                pattern: pattern("mutex|lock|semaphore"),
                ..TaskFilter::default()
            },
            TaskFilter {
                states: vec!["idle".into()],
                pattern: pattern("sleep"),
                ..TaskFilter::default()
            },
            TaskFilter {
                ids: (1..=40).collect(),
                pattern: pattern("join|sleep"),
                ..TaskFilter::default()
            },
        ]
    };
    let write = |defer_tasks: bool, filter: TaskFilter, group: bool| {
        let opts = Options {
            defer_tasks,
            ..Options::default()
        };
        let (mut report, _) = analyze(&program, &d.core, &opts).unwrap();
        report.show_only(filter);
        let mut out = Vec::new();
        writer::Dot.write(&report, &mut out, false).unwrap();
        if group {
            report.group_tasks(true);
            report.add_late_findings();
            writer::Text(layoutdump_engine::report::TextOptions {
                group: true,
                ..Default::default()
            })
            .write(&report, &mut out, false)
            .unwrap();
            return (out, 0);
        }
        let json_start = out.len();
        report.write_json(&mut out, false).unwrap();
        let r: Report = serde_json::from_slice(&out[json_start..]).unwrap();
        let shown = r.runtimes.iter().map(|rt| rt.tasks.len()).sum();
        writer::Text(Default::default())
            .write(&report, &mut out, false)
            .unwrap();
        report.write_yaml(&mut out).unwrap();
        (out, shown)
    };
    let all: usize = d.truth["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rt| rt["tasks"].as_array().unwrap().len())
        .sum();
    for (i, filter) in filters().into_iter().enumerate() {
        let (at_once, shown) = write(false, filter.clone(), false);
        let (streamed, _) = write(true, filter.clone(), false);
        assert!(shown > 0, "filter {i} shows no task");
        assert!(
            shown < all,
            "filter {i} shows every task ({shown} of {all})"
        );
        assert!(
            at_once == streamed,
            "filter {i}: the streamed DOT, JSON, text or YAML differs from that of the report read at once"
        );
        let (at_once, _) = write(false, filter.clone(), true);
        let (streamed, _) = write(true, filter, true);
        assert!(
            at_once == streamed,
            "filter {i}: the streamed groups differ"
        );
    }
}

/// A step limit that cuts the reading short must cut it at the same task whatever the
/// number of threads: tasks are read in parallel chunks, and each chunk's budget is what
/// the run had left a fixed number of chunks before it; a member access replayed from a
/// thread's cache counts the steps it took the first time.
#[test]
fn a_step_limit_cuts_the_same_tasks_on_any_number_of_threads() {
    let d = fixture_dumps("tokio-many", Profile::Dev);
    let core = d.core.to_str().unwrap();
    // The graph too: its tasks are read as it is drawn, and a cut one makes it partial.
    for mode in [
        &["--format", "json"][..],
        &["--group"][..],
        &["--graph", "dot"][..],
    ] {
        let run = |threads: &str| {
            let out = common::layoutdump()
                .args(["run", "tokio", core, "--limit-steps", "300000"])
                .args(mode)
                .env("RAYON_NUM_THREADS", threads)
                .output()
                .unwrap();
            // 3: partial, as a limit makes it.
            assert_eq!(out.status.code(), Some(3), "{mode:?}, {threads} threads");
            out.stdout
        };
        let one = run("1");
        assert!(one == run("2"), "{mode:?}: 1 and 2 threads differ");
        assert!(one == run("3"), "{mode:?}: 1 and 3 threads differ");
        if mode == ["--format", "json"] {
            let report: Report = serde_json::from_slice(&one).unwrap();
            let tasks = &report.runtimes[0].tasks;
            let cut = tasks.iter().filter(|t| {
                t.unavailable.values().any(|why| {
                    why.as_str()
                        .unwrap()
                        .contains("steps limit of 300000 reached")
                })
            });
            // Some tasks read, some cut: the limit fell inside the list.
            let cut = cut.count();
            assert!(cut > 0 && cut < tasks.len(), "{cut} of {} cut", tasks.len());
        }
    }
}

/// A writer that fails (a closed pipe, a full disk) stops the reading: the error comes
/// back from `write_json` at once, with no thread left waiting.
#[test]
fn a_failing_writer_stops_the_reading() {
    use layoutdump_engine::analyze::{Options, analyze};
    struct FailsAfter(usize);
    impl std::io::Write for FailsAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "closed",
                ));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let d = fixture_dumps("tokio-many", Profile::Dev);
    let program = layoutdump_engine::layout_loader::compile_layout("tokio").unwrap();
    let opts = Options {
        defer_tasks: true,
        ..Options::default()
    };
    let (report, _) = analyze(&program, &d.core, &opts).unwrap();
    // Into the tasks, a few hundred of the 10,000 written.
    for at in [0, 1_000, 300_000] {
        let err = report.write_json(FailsAfter(at), false).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe,
            "after {at} bytes"
        );
    }
}

/// `--task` picks tasks by the ids listed, and reads the rest only as the report is
/// written (not all first): the tasks shown are exactly those of the full report with
/// these ids, and the warnings and exit status are the full report's.
#[test]
fn task_ids_are_picked_from_the_listing_and_shown_as_in_the_full_report() {
    let d = fixture_dumps("tokio-many", Profile::Dev);
    let core = d.core.to_str().unwrap();
    let full = run_layoutdump(&["run", "tokio", core, "--format", "json"]);
    let full_report: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    let all = full_report["runtimes"][0]["tasks"].as_array().unwrap();
    let picked: Vec<u64> = [1, all.len() / 2, all.len() - 1]
        .iter()
        .map(|&i| all[i]["id"].as_u64().unwrap())
        .collect();
    let mut args = vec!["run", "tokio", core, "--format", "json"];
    let ids: Vec<String> = picked.iter().map(u64::to_string).collect();
    for id in &ids {
        args.extend(["--task", id.as_str()]);
    }
    let out = run_layoutdump(&args);
    assert_eq!(out.status.code(), full.status.code());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = report["runtimes"][0]["tasks"].as_array().unwrap();
    let want: Vec<&serde_json::Value> = all
        .iter()
        .filter(|t| picked.contains(&t["id"].as_u64().unwrap()))
        .collect();
    assert_eq!(shown.iter().collect::<Vec<_>>(), want);
    assert_eq!(report["warnings"], full_report["warnings"]);
}
