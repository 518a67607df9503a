//! Each crate's README maps every one of its source files, and every Rust file's header
//! (crate roots and tests too) says its job in at most three lines.

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

/// Every `.rs` file under `dir`, as a path relative to the repository root, leaving out
/// hidden folders (`.git`), build output (any `target/`) and the programs whose line
/// numbers are tests' ground truth (`tests/fixtures/`, `bench/unseen*`): their headers are
/// not ours to shorten.
fn repo_sources(dir: &Path, out: &mut Vec<String>) {
    let root = common::root();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(&root).unwrap_or(&path);
        let rel = rel.to_string_lossy().replace('\\', "/");
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            let skipped = name.starts_with('.')
                || name == "target"
                || rel == "tests/fixtures"
                || rel.starts_with("bench/unseen");
            if !skipped {
                repo_sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(rel);
        }
    }
}

/// A header is the run of `//!` lines a file starts with; longer explanations belong in a
/// `///` comment on the item they explain, where a reader of that item finds them.
#[test]
fn file_headers_are_at_most_three_lines() {
    let mut files = Vec::new();
    repo_sources(&common::root(), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f == "tests/crate_readmes.rs"),
        "the walk found this file"
    );
    let mut long = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(common::root().join(f)).expect("a source file");
        let header = text.lines().take_while(|l| l.starts_with("//!")).count();
        if header > 3 {
            long.push(format!("{f}: {header} lines"));
        }
    }
    assert!(long.is_empty(), "file headers over three lines: {long:#?}");
}
