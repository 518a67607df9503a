//! Each crate's README maps every one of its source files, and each file's header says its
//! job in at most three lines (a crate's `lib.rs`, its documentation, excepted).

mod common;

use std::path::Path;

/// The crates whose READMEs are complete maps, and the folders they map.
const MAPPED: &[&str] = &[
    "lang", "ordered", "dump", "dwarf", "report", "engine", "cli",
];

/// Every `.rs` file under `dir`, as a path relative to the crate.
fn sources(crate_root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(crate_root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(crate_root).unwrap_or(&path);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn every_crate_readme_names_every_source_file() {
    let mut missing = Vec::new();
    for name in MAPPED {
        let root = common::root().join(name);
        let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
        let mut files = Vec::new();
        sources(&root, &root.join("src"), &mut files);
        sources(&root, &root.join("tests"), &mut files);
        for f in files {
            if !readme.contains(&format!("`{f}`")) {
                missing.push(format!("{name}/{f}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not named in their crate's README.md: {missing:?}"
    );
}

#[test]
fn every_file_header_is_at_most_three_lines() {
    let mut long = Vec::new();
    for name in MAPPED {
        let root = common::root().join(name);
        let mut files = Vec::new();
        sources(&root, &root.join("src"), &mut files);
        for f in files.iter().filter(|f| !f.ends_with("lib.rs")) {
            let text = std::fs::read_to_string(root.join(f)).expect("a source file");
            let header = text.lines().take_while(|l| l.starts_with("//!")).count();
            if header > 3 {
                long.push(format!("{name}/{f}: {header} lines"));
            }
        }
    }
    assert!(long.is_empty(), "file headers over three lines: {long:?}");
}
