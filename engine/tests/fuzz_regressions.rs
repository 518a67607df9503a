//! Replays every input the fuzzers found a problem with (`fuzz/seeds/<target>/regress-*`,
//! committed with the fix) through the function its fuzz target calls, so a fixed crash
//! stays fixed without a nightly toolchain (a stack overflow aborts: a failure too).

use std::path::{Path, PathBuf};

use layoutdump_engine::fuzzing;

fn regressions(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("regress-"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn dwarf_load_findings_stay_fixed() {
    let found = regressions("dwarf_load");
    assert!(!found.is_empty(), "the array-cycle finding is committed");
    for path in found {
        fuzzing::dwarf_load(&path);
    }
}

#[test]
fn dump_open_findings_stay_fixed() {
    for path in regressions("dump_open") {
        fuzzing::dump_open(&std::fs::read(&path).unwrap());
    }
}
