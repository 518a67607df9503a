//! Separate debug files: a stripped executable plus its DWARF in a `--debug-dir`, found by
//! build id (`.build-id/ab/cdef….debug`) or by `.gnu_debuglink` — as distributions and
//! many deployments ship them. The report must be the same as with the unstripped binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::report::Report;
use common::{Profile, run_layoutdump, tokio_dumps};

fn objcopy(args: &[&str], input: &Path, output: &Path) {
    let status = Command::new("objcopy")
        .args(args)
        .arg(input)
        .arg(output)
        .status()
        .expect("objcopy (binutils)");
    assert!(status.success(), "objcopy {args:?} failed");
}

fn task_ids(report: &Report) -> Vec<u64> {
    let mut ids: Vec<u64> = report.tasks().map(|(_, t)| t.id.unwrap()).collect();
    ids.sort_unstable();
    ids
}

fn report(args: &[&str]) -> Report {
    let out = run_layoutdump(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn build_id_of(report: &Report) -> String {
    report.binary.as_ref().unwrap().build_id.clone().unwrap()
}

#[test]
fn stripped_binary_with_debug_file_by_build_id_and_by_debuglink() {
    let d = tokio_dumps(Profile::Dev);
    let core = d.core.to_str().unwrap();
    let reference = report(&["run", "tokio", core, "--format", "json"]);
    let id = build_id_of(&reference);

    let dir = common::root().join("target/test-scratch/debug-files");
    let _ = std::fs::remove_dir_all(&dir);
    let by_id: PathBuf = dir.join("by-id/.build-id").join(&id[..2]);
    std::fs::create_dir_all(&by_id).unwrap();
    let debug_file = by_id.join(format!("{}.debug", &id[2..]));
    objcopy(&["--only-keep-debug"], &d.exe, &debug_file);
    let stripped = dir.join("tokio-tasks");
    objcopy(&["--strip-debug"], &d.exe, &stripped);

    let by_build_id = report(&[
        "run",
        "tokio",
        core,
        "--format",
        "json",
        "--binary",
        stripped.to_str().unwrap(),
        "--debug-dir",
        dir.join("by-id").to_str().unwrap(),
    ]);
    assert_eq!(task_ids(&by_build_id), task_ids(&reference));

    // .gnu_debuglink: the stripped binary names its debug file; found in --debug-dir.
    let link_dir = dir.join("by-link");
    std::fs::create_dir_all(&link_dir).unwrap();
    let linked_debug = link_dir.join("tokio-tasks.debug");
    std::fs::copy(&debug_file, &linked_debug).unwrap();
    let linked = dir.join("linked/tokio-tasks");
    std::fs::create_dir_all(linked.parent().unwrap()).unwrap();
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(format!("--add-gnu-debuglink={}", linked_debug.display()))
        .arg(&d.exe)
        .arg(&linked)
        .status()
        .unwrap();
    assert!(status.success());
    let by_link = report(&[
        "run",
        "tokio",
        core,
        "--format",
        "json",
        "--binary",
        linked.to_str().unwrap(),
        "--debug-dir",
        link_dir.to_str().unwrap(),
    ]);
    assert_eq!(task_ids(&by_link), task_ids(&reference));
}
