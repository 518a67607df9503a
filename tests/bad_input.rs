//! Bad input, end to end: each case gets a clear message naming what is missing and what
//! to do, a non-zero exit status, no panic, and whatever can still be shown.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::report::Report;
use common::{Profile, run_layoutdump, tokio_dumps};

fn scratch(name: &str) -> PathBuf {
    let dir = common::root().join("target/test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `layoutdump run tokio …` and returns (exit code, stderr, parsed JSON report if any).
fn run_json(args: &[&str]) -> (Option<i32>, String, Option<Report>) {
    let mut all = vec!["run", "tokio"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = run_layoutdump(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("panicked"),
        "layoutdump panicked: {stderr}"
    );
    (
        out.status.code(),
        stderr,
        serde_json::from_slice(&out.stdout).ok(),
    )
}

fn warnings(report: &Report) -> String {
    report.warnings.join("\n")
}

#[test]
fn minidump_without_heap_explains_and_shows_threads() {
    let d = tokio_dumps(Profile::Dev);
    let (code, _, report) = run_json(&[d.stacks_only.to_str().unwrap()]);
    let report = report.expect("a report is still printed");
    assert_eq!(code, Some(3), "partial");
    let w = warnings(&report);
    assert!(w.contains("thread stacks only, no heap"), "{w}");
    assert!(w.contains("layoutdump capture"), "says what to do: {w}");
    assert!(report.runtimes.is_empty());
    assert_eq!(report.threads.len(), 6, "the threads are still shown");
}

#[test]
fn binary_without_debug_info() {
    let d = tokio_dumps(Profile::Dev);
    let stripped = scratch("tokio-tasks.stripped");
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&d.exe)
        .arg(&stripped)
        .status()
        .expect("objcopy (binutils)");
    assert!(status.success());
    for dump in [&d.core, &d.minidump] {
        let (code, _, report) = run_json(&[
            dump.to_str().unwrap(),
            "--binary",
            stripped.to_str().unwrap(),
        ]);
        let report = report.expect("a report is still printed");
        assert_eq!(code, Some(3));
        let w = warnings(&report);
        assert!(w.contains("no DWARF debug info"), "{w}");
        assert!(w.contains("debug = 2"), "says what to do: {w}");
        assert_eq!(report.threads.len(), 6);
    }
}

#[test]
fn wrong_binary_is_refused_unless_forced() {
    let dev = tokio_dumps(Profile::Dev);
    let release = tokio_dumps(Profile::Release);
    for dump in [&dev.core, &dev.minidump] {
        let (code, _, report) = run_json(&[
            dump.to_str().unwrap(),
            "--binary",
            release.exe.to_str().unwrap(),
        ]);
        let report = report.unwrap();
        assert_eq!(code, Some(3));
        let w = warnings(&report);
        assert!(w.contains("build id") && w.contains("--force"), "{w}");
        assert!(
            report.runtimes.is_empty(),
            "no tasks from a mismatched binary"
        );

        let (code, _, report) = run_json(&[
            dump.to_str().unwrap(),
            "--binary",
            release.exe.to_str().unwrap(),
            "--force",
        ]);
        assert_eq!(code, Some(3), "forced: still partial, with a warning");
        assert!(warnings(&report.unwrap()).contains("--force"));
    }
}

#[test]
fn truncated_dumps_never_panic() {
    let d = tokio_dumps(Profile::Dev);
    for (dump, ext) in [(&d.core, "core"), (&d.minidump, "dmp")] {
        truncated_never_panic(&std::fs::read(dump).unwrap(), ext);
    }
}

fn truncated_never_panic(bytes: &[u8], ext: &str) {
    for fraction in [0.0, 0.001, 0.01, 0.1, 0.5, 0.9] {
        let cut = scratch(&format!("truncated-{fraction}.{ext}"));
        std::fs::write(&cut, &bytes[..(bytes.len() as f64 * fraction) as usize]).unwrap();
        let (code, stderr, report) = run_json(&[cut.to_str().unwrap()]);
        assert!(
            matches!(code, Some(1) | Some(3)),
            "cut at {fraction}: exit {code:?}, {stderr}"
        );
        if code == Some(1) {
            assert!(
                stderr.contains(cut.to_str().unwrap()),
                "the error names the file: {stderr}"
            );
        } else {
            assert!(!warnings(&report.unwrap()).is_empty());
        }
    }
}

#[test]
fn garbage_and_empty_files_are_not_dumps() {
    let garbage = scratch("garbage.core");
    std::fs::write(&garbage, b"this is not a dump at all, just text").unwrap();
    let empty = scratch("empty.core");
    std::fs::write(&empty, b"").unwrap();
    for f in [&garbage, &empty] {
        let (code, stderr, _) = run_json(&[f.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains("error:") && stderr.contains(f.to_str().unwrap()),
            "{stderr}"
        );
    }
}

/// A report that cannot be written (a full disk behind `>`) is an error that says so, in
/// every format; a pipe closed early (`| head`) is not.
#[test]
fn a_report_that_cannot_be_written_is_an_error() {
    let d = tokio_dumps(Profile::Dev);
    let core = d.core.to_str().unwrap();
    for format in ["json", "text", "yaml"] {
        let full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = common::layoutdump()
            .args(["run", "tokio", core, "--format", format])
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{format}: {stderr}");
        assert!(
            stderr.contains("cannot write the report to standard output: No space left"),
            "{format}: {stderr}"
        );
    }
    let mut child = common::layoutdump()
        .args(["run", "tokio", core, "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_dump_file() {
    let (code, stderr, _) = run_json(&["/nonexistent/crash.core"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/nonexistent/crash.core"), "{stderr}");
}

#[test]
fn unknown_layout_name() {
    let out = run_layoutdump(&["run", "tokyo", "x.core"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "neither a shipped layout (tokio, async-std, smol, futures-executor, embassy, monoio, compio, glommio)"
        ),
        "{stderr}"
    );
}

/// A library layout run by name finds nothing, and the report says which layout to run:
/// `futures` (the combinators) is not `futures-executor` (the executors).
#[test]
fn library_layout_by_name_points_at_the_runtime_layouts() {
    let d = common::fixture_dumps("futures-pool", Profile::Dev);
    let out = run_layoutdump(&[
        "run",
        "futures",
        d.core.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(3), "nothing found is partial");
    let report: Report = serde_json::from_slice(&out.stdout).expect("a report");
    assert!(report.runtimes.is_empty());
    let w = warnings(&report);
    assert!(w.contains("`futures-executor`"), "{w}");
    assert!(w.contains("layoutdump run DUMP"), "{w}");
}

/// `run` with no dump and no process says what to give.
#[test]
fn run_without_a_dump_says_what_to_give() {
    let out = run_layoutdump(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("give a dump file") && stderr.contains("--pid"),
        "{stderr}"
    );
}

#[test]
fn binary_with_line_tables_only() {
    // `debug = "line-tables-only"` (or `debug = 1`): functions and lines, no types.
    let d = common::fixture_dumps("inhouse", Profile::LineTables);
    let layout = common::root().join("tests/fixtures/inhouse/inhouse.layout");
    for dump in [&d.core, &d.minidump] {
        let out = run_layoutdump(&[
            "run",
            layout.to_str().unwrap(),
            dump.to_str().unwrap(),
            "--format",
            "json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(out.status.code(), Some(3), "partial: {stderr}");
        let report: Report = serde_json::from_slice(&out.stdout).expect("a report");
        let w = warnings(&report);
        assert!(w.contains("line tables only"), "{w}");
        assert!(w.contains("debug = 2"), "says what to do: {w}");
        assert!(report.runtimes.is_empty());
        // The line tables are still used: the main thread's stack has file:line.
        let main_rs = report.threads.iter().flat_map(|t| &t.frames).any(|f| {
            f.location
                .as_ref()
                .and_then(|l| l.file.as_deref())
                .is_some_and(|file| file.ends_with("inhouse/src/main.rs"))
        });
        assert!(main_rs, "threads symbolized from the line tables");
    }
}

/// A collection where a sequence is needed, with no view that makes it one: `check
/// --binary` says so at its line and names the layout whose view fits (issue 20: a
/// HashMap passed `check`, and only `run` said "expected a sequence").
#[test]
fn collection_used_as_a_sequence_is_a_check_error() {
    let d = common::fixture_dumps("mapexec", Profile::Dev);
    let (text, from) = mapexec_layout();
    let line = text[..text.find(from).unwrap()].matches('\n').count() + 1;
    let cases = [
        // A slab, without `use slab`.
        (
            "    tasks = ex.spare\n",
            "`slab::Slab<u64>` is not a sequence",
            "add `use slab`",
        ),
        // The map's internals instead of the map.
        (
            "    tasks = ex.tasks.base.table.table\n",
            "`hashbrown::raw::RawTableInner` is not a sequence",
            "an `items` member makes it one",
        ),
    ];
    for (to, wanted, help) in cases {
        let path = scratch("collection-as-sequence.layout");
        let (code, err) = common::check_layout_text(&path, &text.replacen(from, to, 1), &d.exe);
        assert_eq!(code, Some(1), "{to}: {err}");
        assert!(err.contains(wanted) && err.contains(help), "{to}: {err}");
        assert!(
            err.contains(&format!("collection-as-sequence.layout:{line}:")),
            "{to}: not at line {line}: {err}"
        );
    }
}

/// `static(PATH)` naming a static the binary lacks: `check --binary` says so at its line;
/// `run` leaves that member out with the same reason and exits 3.
#[test]
fn missing_static_is_named_at_its_line() {
    let d = common::fixture_dumps("mapexec", Profile::Dev);
    let text =
        std::fs::read_to_string(common::root().join("tests/fixtures/mapexec/mapexec.layout"))
            .unwrap();
    let from = "    ready = len(ex.ready)\n";
    assert!(text.contains(from));
    let line = text[..text.find(from).unwrap()].matches('\n').count() + 2;
    let broken = text.replacen(
        from,
        &format!("{from}    clock = static(mapexec::CLOCK)\n"),
        1,
    );
    let path = scratch("missing-static.layout");
    let (code, err) = common::check_layout_text(&path, &broken, &d.exe);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("missing-static.layout:{line}:"))
            && err.contains("no static named `mapexec::CLOCK`"),
        "{err}"
    );
    let out = run_layoutdump(&["run", path.to_str().unwrap(), d.core.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("no static named `mapexec::CLOCK`"),
        "{stdout}"
    );
}

/// The issue-20 mistake: the task map walked by hand with a wrong bucket stride (here 8
/// bytes short), so each "task" is read from the wrong bytes. The report lists garbage;
/// it must say so, naming the task rule's members at their lines, and exit 3. Before,
/// the garbage came with exit 0 and no warning.
#[test]
fn wrong_cast_is_a_warning_and_exit_3() {
    let d = common::fixture_dumps("mapexec", Profile::Dev);
    let (text, from) = mapexec_layout();
    let t = "ex.tasks.base.table.table";
    let walk = format!(
        "    tasks = for i in range({t}.bucket_mask + 1) when (({t}.ctrl.pointer + i) as u8) < 0x80 \
         => ({t}.ctrl.pointer - (i + 1) * (size_of((u64, mapexec::Task)) - 8) + 8) as mapexec::Task\n"
    );
    let wrong = text.replacen(from, &walk, 1);
    let path = common::mistake_layout("wrong-stride.layout", &wrong);
    let line_of = |s: &str| wrong[..wrong.find(s).unwrap()].matches('\n').count() + 1;
    let out = run_layoutdump(&["run", path.to_str().unwrap(), d.core.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let warnings = &stdout[stdout.find("\nwarnings:").expect("a warnings section")..];
    // Each task member that failed on some tasks is named once, with the rule, at its line.
    let rule = format!(
        "wrong-stride.layout:{}:1): `",
        line_of("task mapexec::Task")
    );
    for member in ["name", "future"] {
        let at = format!(
            "wrong-stride.layout:{}:5) could not be read on",
            line_of(&format!("    {member} = t."))
        );
        assert!(
            warnings
                .lines()
                .any(|l| l.contains("task rule `mapexec::Task` (")
                    && l.contains(&rule)
                    && l.contains(&format!("`{member}` ("))
                    && l.contains(&at)),
            "{member}: {warnings}"
        );
    }
    // A boxed future whose vtable pointer names no type is said to be one.
    assert!(warnings.contains("cannot be followed"), "{warnings}");
    // The same check on the explain listing: the first misread of each member.
    let out = run_layoutdump(&[
        "check",
        path.to_str().unwrap(),
        "--explain",
        d.core.to_str().unwrap(),
    ]);
    let explained = String::from_utf8_lossy(&out.stdout);
    assert!(
        explained.lines().any(|l| l.starts_with("!!    `name` (")
            && l.contains(&format!(
                "wrong-stride.layout:{}:5) could not be read on",
                line_of("    name = t.")
            ))),
        "{explained}"
    );
}

/// A task member no task has (a misspelt field) is found only as the tasks are read,
/// which every view does as it writes them: each still ends with exit 3, the graph too.
#[test]
fn a_member_unread_on_every_task_is_exit_3_in_every_view() {
    let d = common::fixture_dumps("mapexec", Profile::Dev);
    let (text, _) = mapexec_layout();
    let from = "    name = t.name\n";
    assert!(text.contains(from));
    let path = common::mistake_layout(
        "misspelt-member.layout",
        &text.replacen(from, "    name = t.nmae\n", 1),
    );
    let (layout, core) = (path.to_str().unwrap(), d.core.to_str().unwrap());
    for view in [
        &[][..],
        &["--format", "json"],
        &["--format", "yaml"],
        &["--group"],
        &["--state", "idle"],
        &["--graph", "dot"],
    ] {
        let out = common::layoutdump()
            .args(["run", layout, core])
            .args(view)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{view:?}");
    }
}

/// The mapexec fixture's layout, and its line listing the tasks, which the cases above
/// replace with a mistake.
fn mapexec_layout() -> (String, &'static str) {
    let text =
        std::fs::read_to_string(common::root().join("tests/fixtures/mapexec/mapexec.layout"))
            .unwrap();
    let from = "    tasks = ex.tasks\n";
    assert!(text.contains(from));
    (text, from)
}
