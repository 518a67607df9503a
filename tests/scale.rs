//! Many tasks: a fixture with 10,000 tasks in four distinct await states; `--group` must
//! print exactly those four groups with the counts the fixture reported.

mod common;

use std::collections::BTreeMap;

use common::{Profile, fixture_dumps, run_layoutdump};
use serde_json::Value;

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
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rt = &report["runtimes"][0];
    assert_eq!(
        rt["tasks"].as_array().unwrap().len() as u64,
        d.truth["alive"].as_u64().unwrap()
    );

    let mut found: BTreeMap<Awaits, u64> = BTreeMap::new();
    for g in rt["groups"].as_array().unwrap() {
        let own: Awaits = g["frames"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["function"].as_str().unwrap().starts_with("tokio_many::"))
            .map(|f| {
                (
                    f["function"].as_str().unwrap().to_string(),
                    f["location"]["line"].as_u64().unwrap(),
                )
            })
            .collect();
        *found.entry(own).or_default() += g["count"].as_u64().unwrap();
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
    assert_eq!(
        rt["groups"].as_array().unwrap().len(),
        want.len(),
        "one group per await state"
    );
    // Most common first.
    let counts: Vec<u64> = rt["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
}

/// JSON output reads each runtime's tasks only as they are written (a window at a time);
/// every other output reads them all first. Both must give the same report: the same
/// tasks in the same order, the same warnings and the same outcome.
#[test]
fn tasks_read_while_writing_give_the_same_report() {
    use layoutdump_interpreter::analyze::{Options, analyze};
    let d = fixture_dumps("tokio-many", Profile::Dev);
    let program = layoutdump_interpreter::shipped::compile_layout("tokio").unwrap();
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
        "the streamed JSON differs from the JSON of the report read at once"
    );
    let report: Value = serde_json::from_slice(&streamed).unwrap();
    assert_eq!(
        report["runtimes"][0]["tasks"].as_array().unwrap().len() as u64,
        d.truth["alive"].as_u64().unwrap()
    );
}
