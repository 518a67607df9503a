//! The on-disk name-index cache, end to end on the tokio fixture's core: a damaged,
//! truncated or unwritable cache costs only the time to rebuild, never the report; runs
//! started together leave one whole file and no temporary ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Profile, layoutdump, tokio_dumps};
use serde_json::Value;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = common::root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `run tokio CORE --format json --timings` with `LAYOUTDUMP_CACHE_DIR=cache` (a
/// directory, or `off`); it must exit 0.
fn run(cache: &Path) -> Output {
    let core = &tokio_dumps(Profile::Dev).core;
    let out = layoutdump()
        .env("LAYOUTDUMP_CACHE_DIR", cache)
        .args(["run", "tokio"])
        .arg(core)
        .args(["--format", "json", "--timings"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that the run's stderr (its `--timings`) contains `text`.
fn says(out: &Output, text: &str) {
    let err = stderr(out);
    assert!(err.contains(text), "expected {text:?} in:\n{err}");
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn index_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A first run builds and stores the index, a second reads it back and reports the same;
/// a damaged or truncated index is rebuilt and stored again, and a cache that is off or
/// cannot be written is not used: each with the same report.
#[test]
fn cold_warm_damaged_and_off() {
    let dir = fresh_dir("index-cache");
    let cold = run(&dir);
    says(&cold, "load and index debug info, cache it");
    let files = index_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].extension().is_some_and(|e| e == "names"),
        "{files:?}"
    );
    let truth = report(&cold);
    assert!(!truth["runtimes"].as_array().unwrap().is_empty());

    let warm = run(&dir);
    says(&warm, "load debug info, index from cache");
    assert_eq!(report(&warm), truth);

    // A flipped byte in the middle, then a file cut in half: each is refused, rebuilt
    // and stored again, with the same report.
    let bytes = std::fs::read(&files[0]).unwrap();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    for damaged in [flipped, bytes[..bytes.len() / 2].to_vec()] {
        std::fs::write(&files[0], damaged).unwrap();
        let rebuilt = run(&dir);
        says(&rebuilt, "cache it");
        assert_eq!(report(&rebuilt), truth);
        assert_eq!(
            std::fs::read(&files[0]).unwrap(),
            bytes,
            "stored again, whole"
        );
    }

    // `off` neither reads nor writes: the index is built, and the phase says nothing
    // of a cache.
    let out = run(Path::new("off"));
    says(&out, "timing: load and index debug info  ");
    assert_eq!(report(&out), truth);

    // A cache directory that cannot be made (under a regular file): the report is
    // complete, the timings say it was not cached.
    let blocker = fresh_dir("index-cache-blocker");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let unwritable = run(&blocker.join("cache"));
    says(&unwritable, "(not cached)");
    assert_eq!(report(&unwritable), truth);
}

/// Four runs started together on an empty cache: all complete with the same report,
/// and the directory ends with one whole index file and no temporary ones.
#[test]
fn concurrent_runs_share_one_file() {
    let dir = fresh_dir("index-cache-concurrent");
    let core = &tokio_dumps(Profile::Dev).core;
    let children: Vec<_> = (0..4)
        .map(|_| {
            layoutdump()
                .env("LAYOUTDUMP_CACHE_DIR", &dir)
                .args(["run", "tokio"])
                .arg(core)
                .args(["--format", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reports: Vec<Value> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            report(&out)
        })
        .collect();
    assert!(reports.windows(2).all(|w| w[0] == w[1]));
    let files = index_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let warm = run(&dir);
    says(&warm, "index from cache");
    assert_eq!(report(&warm), reports[0]);
}
