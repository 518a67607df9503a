//! Shared by the end-to-end tests: builds the fixture programs (once per profile), starts
//! one, waits until it reports its ground truth and parks, and captures it in every
//! format — once per test run; the dumps are then reused by every test.

#![allow(dead_code)]

pub mod report;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layoutdump binary, with its name-index cache in the target directory (not the
/// user's home): tests share it, so later runs on one fixture read the index back.
pub fn layoutdump() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_layoutdump"));
    cmd.env("LAYOUTDUMP_CACHE_DIR", root().join("target/index-cache"));
    cmd
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    Dev,
    Release,
    /// Dev with line tables only (no types or variables in the DWARF).
    LineTables,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
            Profile::LineTables => "line-tables",
        }
    }
}

/// Builds a fixture program of tests/fixtures and returns its executable.
pub fn build_fixture(name: &str, profile: Profile) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let fixtures = root().join("tests/fixtures");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", name, "--manifest-path"])
        .arg(fixtures.join("Cargo.toml"));
    match profile {
        Profile::Dev => {}
        Profile::Release => {
            cmd.arg("--release");
        }
        Profile::LineTables => {
            cmd.args(["--profile", "line-tables"]);
        }
    }
    let status = cmd.status().expect("run cargo to build a fixture");
    assert!(
        status.success(),
        "building fixture {name} ({profile:?}) failed"
    );
    fixtures.join("target").join(profile.dir()).join(name)
}

/// A fixture process; killed when dropped.
pub struct Running {
    pub child: Child,
    /// The `GROUND_TRUTH` JSON the program printed about itself.
    pub truth: Value,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(exe: &Path) -> Running {
    start_with(exe, &[])
}

/// Starts a fixture with arguments (which crash `tokio-crash` performs).
pub fn start_with(exe: &Path, args: &[&str]) -> Running {
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fixture");
    let stdout = child.stdout.take().expect("fixture stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut truth = None;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("fixture did not print READY within 60 s");
        if let Some(t) = line.strip_prefix("GROUND_TRUTH ") {
            truth = Some(serde_json::from_str(t).expect("ground truth is JSON"));
        }
        if line == "READY" {
            break;
        }
    }
    Running {
        child,
        truth: truth.expect("fixture printed no GROUND_TRUTH"),
    }
}

/// `layoutdump capture` of a running fixture into `core` (an ELF core).
pub fn capture_to(running: &Running, core: &Path) {
    let out = layoutdump()
        .args(["capture", &running.child.id().to_string(), "-o"])
        .arg(core)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "layoutdump capture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The dumps of one fixture run, in every format we can produce here.
pub struct Dumps {
    pub exe: PathBuf,
    pub truth: Value,
    pub core: PathBuf,
    pub minidump: PathBuf,
    /// gdb's `gcore`: a dump this project did not write. None when gdb is not installed,
    /// and for fixtures not in [`GCORE_FIXTURES`].
    pub gcore: Option<PathBuf>,
    /// A default crash reporter's minidump: stacks only, no heap.
    pub stacks_only: PathBuf,
}

/// The fixtures whose tests also read gdb's core of them. gdb writes every mapping,
/// glibc's reserved 64 MiB malloc arenas included, so a gcore of a multi-threaded fixture
/// is 200–350 MiB where ours is 7–12 MiB; taken for every fixture and profile they came
/// to 2.9 GB and filled a CI machine's disk.
const GCORE_FIXTURES: &[&str] = &["tokio-tasks", "inhouse"];

/// Captures the tokio fixture of `profile` once per test run.
pub fn tokio_dumps(profile: Profile) -> &'static Dumps {
    fixture_dumps("tokio-tasks", profile)
}

/// Captures fixture `name` of `profile` once per test run (tests asking at the same time
/// wait for the one capture).
pub fn fixture_dumps(name: &str, profile: Profile) -> &'static Dumps {
    static CACHE: Mutex<Vec<(String, Profile, &'static Dumps)>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, d)) = cache.iter().find(|(n, p, _)| n == name && *p == profile) {
        return d;
    }
    let dumps: &'static Dumps = Box::leak(Box::new(capture_all(name, profile)));
    cache.push((name.to_string(), profile, dumps));
    dumps
}

fn capture_all(name: &str, profile: Profile) -> Dumps {
    let exe = build_fixture(name, profile);
    let dir = root().join("target/fixture-dumps").join(profile.dir());
    std::fs::create_dir_all(&dir).unwrap();
    let running = start(&exe);
    let pid = running.child.id();
    let core = dir.join(format!("{name}.core"));
    let minidump = dir.join(format!("{name}.dmp"));
    let stacks_only = dir.join(format!("{name}.stacks.dmp"));
    for (path, format) in [
        (&core, "core"),
        (&minidump, "minidump"),
        (&stacks_only, "minidump-stacks-only"),
    ] {
        let out = layoutdump()
            .args(["capture", &pid.to_string(), "--format", format, "-o"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "layoutdump capture --format {format} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let gcore = GCORE_FIXTURES
        .contains(&name)
        .then(|| which("gcore"))
        .flatten()
        .map(|gcore| {
            let prefix = dir.join(format!("{name}.gcore"));
            let out = Command::new(gcore)
                .arg("-o")
                .arg(&prefix)
                .arg(pid.to_string())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "gcore failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let written = PathBuf::from(format!("{}.{pid}", prefix.display()));
            let path = dir.join(format!("{name}.gcore"));
            std::fs::rename(&written, &path).unwrap();
            path
        });
    let truth = running.truth.clone();
    drop(running);
    Dumps {
        exe,
        truth,
        core,
        minidump,
        gcore,
        stacks_only,
    }
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

/// `layoutdump ARGS…`, with its output.
pub fn run_layoutdump(args: &[&str]) -> Output {
    layoutdump().args(args).output().expect("run layoutdump")
}

/// Replaces what changes from run to run (addresses, pids, thread ids, paths, build ids)
/// so that a snapshot shows only what must stay the same.
/// `layoutdump run LAYOUT` on the fixture's debug core, as text, for a snapshot: without
/// the threads section (where each thread is parked natively depends on timing; stacks
/// are checked by their own tests), the dump's path and every address redacted. A run
/// that writes anything on stderr fails.
pub fn text_snapshot(d: &Dumps, layout: &str) -> String {
    let out = run_layoutdump(&["run", layout, d.core.to_str().unwrap()]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = String::from_utf8_lossy(&out.stdout).to_string();
    let text = match (full.find("\nthreads:\n"), full.find("\nwarnings:\n")) {
        (Some(a), Some(b)) => format!(
            "{}\n[threads section left out: timing-dependent]\n{}",
            &full[..a],
            &full[b..]
        ),
        (Some(a), None) => format!(
            "{}\n[threads section left out: timing-dependent]\n",
            &full[..a]
        ),
        _ => full,
    };
    let text = redact(&text, d);
    text.replace(
        &d.core
            .display()
            .to_string()
            .replace(&root().display().to_string(), "[ROOT]"),
        "[DUMP]",
    )
}

/// A snapshot's text with what a multi-threaded fixture does not fix made stable: task
/// ids (handed out in the order threads happened to spawn) become `[ID]`, as do HTTP/2
/// stream ids (which concurrent call went first), thread counts (tokio's blocking
/// pool may or may not have a thread) and task reference counts (a tonic connection's
/// task read 3 in one capture, 4 in the next: a waker clone in flight); the tasks of
/// each runtime, then the runtimes, are sorted by what they show.
pub fn unordered_tasks(text: &str) -> String {
    let mut text = text.to_string();
    for (pattern, with) in [
        (r"\btask \d+", "task [ID]"),
        (r"\bstream \d+", "stream [ID]"),
        (r"\b\d+ threads\)", "[N] threads)"),
        (r"\[\d+ TIDS\]", "[N TIDS]"),
        (r"\brefs: \d+", "refs: [N]"),
    ] {
        let re = regex::Regex::new(pattern).unwrap();
        text = re.replace_all(&text, with).into_owned();
    }
    // The runtimes end where the block_on futures or the threads begin.
    let end = ["\nblock_on futures", "\n[threads section"]
        .iter()
        .filter_map(|at| text.find(at))
        .min();
    let (start, end) = match (text.find("\nruntime "), end) {
        (Some(a), Some(b)) if a < b => (a + 1, b),
        _ => return text,
    };
    // A runtime's header, then its tasks, each a block that starts at `  task `.
    let mut runtimes: Vec<String> = text[start..end]
        .split_inclusive('\n')
        .fold(Vec::<Vec<String>>::new(), |mut runtimes, line| {
            if line.starts_with("runtime ") {
                runtimes.push(vec![String::new()]);
            }
            if let Some(blocks) = runtimes.last_mut() {
                if line.starts_with("  task ") {
                    blocks.push(String::new());
                }
                if let Some(block) = blocks.last_mut() {
                    block.push_str(line);
                }
            }
            runtimes
        })
        .into_iter()
        .map(|mut blocks| {
            blocks[1..].sort();
            blocks.concat()
        })
        .collect();
    runtimes.sort();
    format!("{}{}{}", &text[..start], runtimes.concat(), &text[end..])
}

pub fn redact(text: &str, dumps: &Dumps) -> String {
    let mut s = text.replace(&root().display().to_string(), "[ROOT]");
    if let Some(pid) = dumps.truth.get("pid").and_then(Value::as_u64) {
        s = s.replace(&format!("pid {pid}"), "pid [PID]");
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        let hex_len = rest[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        out.push_str("[ADDR]");
        rest = &rest[i + 2 + hex_len..];
    }
    out.push_str(rest);
    redact_values(
        &redact_words(&out),
        &[
            "deadline_secs",
            "deadline_nanos",
            "left_ms",
            "expires_at_ticks",
            "fd",
            "on thread",
        ],
    )
}

/// Numbers that depend on when and where the fixture ran (a monotonic-clock deadline, a
/// file descriptor) after `key ` (text) or `"key": ` (JSON). The tests compare them with
/// the fixture's own report instead.
fn redact_values(s: &str, keys: &[&str]) -> String {
    let mut out = s.to_string();
    for key in keys {
        for prefix in [format!("{key} "), format!("\"{key}\": ")] {
            let mut result = String::with_capacity(out.len());
            let mut rest = out.as_str();
            while let Some(i) = rest.find(&prefix) {
                let start = i + prefix.len();
                let digits = rest[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                result.push_str(&rest[..start]);
                if digits > 0 {
                    result.push_str(&format!("[{}]", key.to_uppercase().replace(" ", "_")));
                }
                rest = &rest[start + digits..];
            }
            result.push_str(rest);
            out = result;
        }
    }
    out
}

/// Thread ids (7-digit and shorter numbers after "threads:" or at a thread line's start)
/// and 40-hex build ids.
fn redact_words(s: &str) -> String {
    s.lines()
        .map(|line| {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("threads: ") {
                let n = rest.split_whitespace().count();
                return format!("{}threads: [{n} TIDS]", &line[..line.len() - t.len()]);
            }
            let first = t.split_whitespace().next().unwrap_or("");
            let line = if !first.is_empty()
                && first.chars().all(|c| c.is_ascii_digit())
                && line.contains(" pc ")
            {
                // Right-aligned thread ids change width from run to run too.
                format!("  [TID] {}", t[first.len()..].trim_start())
            } else {
                line.to_string()
            };
            match line.find("build-id ") {
                Some(i) => {
                    let end = line[i + 9..].find(')').map_or(line.len(), |e| i + 9 + e);
                    format!("{}build-id [BUILD-ID]{}", &line[..i], &line[end..])
                }
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The frames of a reported task's async backtrace in the fixture's own source (files
/// under `prefix`, e.g. `tokio-local/`), root first: `(function, await line)` each.
pub fn own_frames(task: &Value, prefix: &str) -> Vec<(String, u64)> {
    task["backtrace"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|f| {
            f["location"]["file"]
                .as_str()
                .is_some_and(|p| p.starts_with(prefix))
        })
        .map(|f| {
            (
                f["function"].as_str().unwrap_or_default().to_string(),
                f["location"]["line"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The await lines of `own_frames`.
pub fn own_await_lines(task: &Value, prefix: &str) -> Vec<u64> {
    own_frames(task, prefix)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// A ground-truth array of numbers (`"await_lines": [12, 7]`).
pub fn numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|n| n.as_u64().unwrap_or_else(|| panic!("not a number: {n}")))
        .collect()
}

/// The fixture's own `tasks` as sorted rows of (task function, await line, leaf kind,
/// `extra` of the task): what a report's tasks are compared with, in any order.
pub fn truth_rows<T: Ord>(
    truth: &Value,
    extra: impl Fn(&Value) -> T,
) -> Vec<(String, u64, String, T)> {
    let mut rows: Vec<_> = truth["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in the ground truth: {truth}"))
        .iter()
        .map(|t| {
            (
                t["task"].as_str().unwrap_or_default().to_string(),
                t["await_line"].as_u64().unwrap_or_default(),
                t["leaf"].as_str().unwrap_or_default().to_string(),
                extra(t),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Where the tests write layouts with a mistake made on purpose (a file per case, kept to
/// be read after a failure): `target/custom-layout-mistakes/NAME`.
pub fn mistake_path(name: &str) -> PathBuf {
    let dir = root().join("target/custom-layout-mistakes");
    std::fs::create_dir_all(&dir).expect("make target/custom-layout-mistakes");
    dir.join(name)
}

/// `text` written as the mistake layout `name` (see `mistake_path`): its path.
pub fn mistake_layout(name: &str, text: &str) -> PathBuf {
    let path = mistake_path(name);
    std::fs::write(&path, text).expect("write the layout");
    path
}

/// `layoutdump check PATH --binary BINARY` on `text` written to `path`: the exit status
/// and what it printed on stderr.
pub fn check_layout_text(path: &Path, text: &str, binary: &Path) -> (Option<i32>, String) {
    std::fs::write(path, text).expect("write the layout");
    let out = run_layoutdump(&[
        "check",
        path.to_str().unwrap(),
        "--binary",
        binary.to_str().unwrap(),
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
