//! `layoutdump triage` over 50 dumps of 3 distinct crashes (a parse panic, reached by two
//! different tasks; a budget panic; an index out of bounds raised in core) prints exactly
//! 3 groups with the right counts, most frequent first.

mod common;

use common::{Profile, build_fixture, run_layoutdump, start_with};
use serde_json::Value;

#[test]
fn fifty_dumps_three_crashes_three_groups() {
    let exe = build_fixture("tokio-crash", Profile::Dev);
    let dir = common::root().join("target/test-scratch/triage");
    let _ = std::fs::remove_dir_all(&dir);
    let captured = dir.join("captured");
    let fleet = dir.join("fleet");
    std::fs::create_dir_all(&captured).unwrap();
    std::fs::create_dir_all(&fleet).unwrap();

    // Two real processes per crash; `parse-again` is the parse panic in another task.
    let mut cores = Vec::new();
    for (kind, group) in [
        ("parse", "parse"),
        ("parse-again", "parse"),
        ("budget", "budget"),
        ("budget", "budget"),
        ("index", "index"),
        ("index", "index"),
    ] {
        let running = start_with(&exe, &[kind]);
        let core = captured.join(format!("{kind}-{}.core", cores.len()));
        common::capture_to(&running, &core);
        cores.push((group, core));
    }
    // 50 dumps in the fleet folder: 25 parse, 15 budget, 10 index (hard links to the real
    // ones, alternating between the two processes of each crash).
    let mut n = 0;
    for (group, count) in [("parse", 25), ("budget", 15), ("index", 10)] {
        let real: Vec<_> = cores
            .iter()
            .filter(|(g, _)| *g == group)
            .map(|(_, c)| c)
            .collect();
        for i in 0..count {
            std::fs::hard_link(
                real[i % real.len()],
                fleet.join(format!("dump-{n:02}.core")),
            )
            .unwrap();
            n += 1;
        }
    }

    let out = run_layoutdump(&["triage", fleet.to_str().unwrap(), "--format", "jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(u64, String)> = groups
        .iter()
        .map(|g| {
            (
                g["count"].as_u64().unwrap(),
                g["crash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(groups.len(), 3, "{summary:?}");
    assert_eq!(
        summary.iter().map(|s| s.0).collect::<Vec<_>>(),
        [25, 15, 10],
        "{summary:?}"
    );
    assert!(
        summary[0].1.contains("request id is not a number"),
        "{summary:?}"
    );
    assert!(summary[1].1.contains("budget exceeded"), "{summary:?}");
    assert!(summary[2].1.contains("index out of bounds"), "{summary:?}");

    // The table names the same groups.
    let table = run_layoutdump(&["triage", fleet.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("50 dumps, 3 groups"), "{text}");
}
