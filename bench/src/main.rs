//! The scale benchmark: times `layoutdump run` on dumps of 10k to 1M tokio tasks, of an
//! axum service with 100k requests in flight, and of a binary with 182 MiB of DWARF.
//! Usage is in `--help` and docs/benchmarks.md, which also has the results.

mod service;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The command line: `cargo run --release -p layoutdump-bench -- [--sizes
/// 10000,100000,1000000] [--connections 100000] [--formats core,minidump] [--runs 3]
/// [--no-service]`.
struct Args {
    sizes: Vec<u64>,
    /// In-flight requests of the `web-many` service fixture.
    connections: Vec<u64>,
    formats: Vec<String>,
    runs: usize,
    service: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![10_000, 100_000, 1_000_000],
        connections: vec![100_000],
        formats: vec!["core".into(), "minidump".into()],
        runs: 3,
        service: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--sizes" => args.sizes = counts(&value()?)?,
            "--connections" => args.connections = counts(&value()?)?,
            "--formats" => args.formats = value()?.split(',').map(str::to_string).collect(),
            "--runs" => args.runs = value()?.parse().map_err(|_| "bad --runs")?,
            "--no-service" => args.service = false,
            "-h" | "--help" => {
                println!(
                    "usage: cargo run --release -p layoutdump-bench -- [--sizes 10000,100000,1000000] [--connections 100000] [--formats core,minidump] [--runs 3] [--no-service]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// `10000,100000`: the counts of a list (an empty one skips that fixture).
fn counts(list: &str) -> Result<Vec<u64>, String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().map_err(|_| format!("bad count {s:?}")))
        .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo_build(args: &[&str]) -> Result<(), String> {
    let mut cargo = Command::new(env!("CARGO"));
    // `cargo run` gave this process the bench package's CARGO_MANIFEST_DIR, CARGO_PKG_*
    // and the like. Passed on, they differ from a plain build's environment, and build
    // scripts that watch them (ring's watches CARGO_MANIFEST_DIR) rerun: the fixtures'
    // TLS stack and everything above it were rebuilt on every switch between the two.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
        {
            cargo.env_remove(&*key);
        }
    }
    let status = cargo
        .args(["build", "--release", "--quiet"])
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or(format!("cargo build {args:?} failed"))
}

/// The name-index cache of the benchmark's runs.
fn index_cache() -> PathBuf {
    root().join("target/bench-index-cache")
}

/// A fixture process started with `n` tasks, killed when dropped.
struct Fixture(Child);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the fixture with `n` tasks and waits for it to say READY; returns it and the
/// number of live tasks its runtime reported.
fn start_fixture(exe: &Path, n: u64) -> Result<(Fixture, u64), String> {
    let child = Command::new(exe)
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let mut fixture = Fixture(child);
    let stdout = fixture.0.stdout.take().ok_or("no stdout")?;
    let mut alive = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(rest) = line.strip_prefix("GROUND_TRUTH ") {
            alive = number_after(rest, "\"alive\":");
        }
        if line == "READY" {
            break;
        }
    }
    let alive = alive.ok_or("the fixture did not report its ground truth")?;
    Ok((fixture, alive))
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The dumps of a fixture run with argument `n` (captured now, or earlier with the same
/// fixture binary), and the fixture's own count of live tasks.
fn dumps(
    layoutdump: &Path,
    fixture: &Path,
    n: u64,
    formats: &[String],
) -> Result<(Vec<(String, PathBuf)>, u64), String> {
    let name = fixture
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("fixture path has no name")?;
    let dir = root().join("target/bench-dumps");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let built = std::fs::metadata(fixture)
        .and_then(|m| m.modified())
        .map_err(|e| e.to_string())?;
    let truth = dir.join(format!("{name}-{n}.alive"));
    let path = |f: &str| {
        dir.join(format!(
            "{name}-{n}.{}",
            if f == "core" { "core" } else { "dmp" }
        ))
    };
    let fresh = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > built)
    };
    let cached = fresh(&truth) && formats.iter().all(|f| fresh(&path(f)));
    let alive = if cached {
        std::fs::read_to_string(&truth)
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map_err(|_| "bad cached task count")?
    } else {
        eprintln!("bench: starting {name} {n} and capturing it");
        let (running, alive) = start_fixture(fixture, n)?;
        for f in formats {
            let status = Command::new(layoutdump)
                .args(["capture", &running.0.id().to_string(), "--format", f, "-o"])
                .arg(path(f))
                .stdout(Stdio::null())
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("layoutdump capture --format {f} failed"));
            }
        }
        std::fs::write(&truth, alive.to_string()).map_err(|e| e.to_string())?;
        alive
    };
    Ok((
        formats.iter().map(|f| (f.clone(), path(f))).collect(),
        alive,
    ))
}

struct Measured {
    wall: Duration,
    peak_rss_kib: i64,
    stdout: String,
    stderr: String,
}

/// Runs `layoutdump ARGS` once with its index cache in `cache`, stdout to a file (or
/// discarded), and measures it.
fn measure(
    layoutdump: &Path,
    cache: &Path,
    args: &[&str],
    keep_stdout: bool,
) -> Result<Measured, String> {
    let scratch = std::env::temp_dir().join(format!("layoutdump-bench.{}", std::process::id()));
    let out_path = scratch.with_extension("out");
    let err_path = scratch.with_extension("err");
    let stdout = if keep_stdout {
        Stdio::from(std::fs::File::create(&out_path).map_err(|e| e.to_string())?)
    } else {
        Stdio::null()
    };
    let stderr = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let child = Command::new(layoutdump)
        .env("LAYOUTDUMP_CACHE_DIR", cache)
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which std has not reaped (we never call wait).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if pid < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let m = Measured {
        wall,
        peak_rss_kib: usage.ru_maxrss,
        stdout: if keep_stdout {
            read(&out_path)
        } else {
            String::new()
        },
        stderr: read(&err_path),
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    // Exit 0 (complete) and 3 (partial) are reports; anything else is a failure.
    let code = libc::WEXITSTATUS(status);
    if !libc::WIFEXITED(status) || (code != 0 && code != 3) {
        return Err(format!(
            "layoutdump {args:?} failed ({status:#x}): {}",
            m.stderr
        ));
    }
    Ok(m)
}

/// The best (least wall time) of `runs` measurements, each after `before` (which can
/// empty the cache, for cold runs).
fn best_of(
    runs: usize,
    layoutdump: &Path,
    cache: &Path,
    args: &[&str],
    keep: bool,
    before: impl Fn(),
) -> Result<Measured, String> {
    let mut best: Option<Measured> = None;
    for _ in 0..runs.max(1) {
        before();
        let m = measure(layoutdump, cache, args, keep)?;
        if best.as_ref().is_none_or(|b| m.wall < b.wall) {
            best = Some(m);
        }
    }
    best.ok_or_else(|| "no run".into())
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// Builds the `tokio-many` fixture (release, `debug = 2`), has it spawn 10k, 100k and 1M
/// tasks in four await states, captures each as an ELF core and a minidump (cached in
/// `target/bench-dumps/`, reused while the fixture binary is unchanged), then runs
/// `layoutdump run tokio` on every dump: full async backtraces of every task to JSON, and
/// `--group`. It prints, per run, the best wall time of N, the peak RSS, the cost per task,
/// and the phases `--timings` reports; and it checks that every run found as many tasks as
/// the fixture said it had, or it would be timing a failure. The same for `web-many`, an
/// axum service with 100k requests in flight, each request's chain some 20 futures deep
/// through hyper, tower and axum (generic descent). Then the large binary
/// (`service::bench`).
///
/// Runs use their own index cache, `target/bench-index-cache`: the best of N runs of a
/// task-count dump is a warm run.
fn bench() -> Result<(), String> {
    let args = parse_args()?;
    eprintln!("bench: building layoutdump and the tokio-many and web-many fixtures (release)");
    cargo_build(&["-p", "layoutdump"])?;
    cargo_build(&[
        "--manifest-path",
        "tests/fixtures/Cargo.toml",
        "-p",
        "tokio-many",
        "-p",
        "web-many",
    ])?;
    let layoutdump = root().join("target/release/layoutdump");
    let mut phases = Vec::new();
    // Tasks of a million async fns; then an axum service's connections, each request in
    // its handler under some 20 frames of hyper's, tower's and axum's futures.
    for (name, sizes) in [("tokio-many", &args.sizes), ("web-many", &args.connections)] {
        if sizes.is_empty() {
            continue;
        }
        let fixture = root().join("tests/fixtures/target/release").join(name);
        println!("{name}:");
        println!();
        // 100k connections are a 2.8 GiB process: over the 2 GiB that `capture` puts in
        // a minidump, which then lacks part of the heap (a partial report, exit 3).
        let formats: Vec<String> = match name {
            "web-many" => args
                .formats
                .iter()
                .filter(|f| *f == "core")
                .cloned()
                .collect(),
            _ => args.formats.clone(),
        };
        scale(&args, &formats, &layoutdump, &fixture, sizes, &mut phases)?;
        println!();
    }
    println!("Phases of the JSON runs (`--timings`, best run):");
    for (n, format, timings) in phases {
        println!();
        println!("{n} tasks, {format}:");
        for line in timings.lines().filter(|l| l.starts_with("timing:")) {
            println!("    {}", line.trim_start_matches("timing: "));
        }
    }
    if args.service {
        service::bench(&layoutdump, args.runs)?;
    }
    Ok(())
}

/// A fixture at each of `sizes`: JSON with every backtrace, and `--group`, on each dump
/// format; a table row each, and the JSON runs' phases added to `phases`.
fn scale(
    args: &Args,
    formats: &[String],
    layoutdump: &Path,
    fixture: &Path,
    sizes: &[u64],
    phases: &mut Vec<(u64, String, String)>,
) -> Result<(), String> {
    println!(
        "| tasks | dump | command | wall (best of {}) | peak RSS | wall / task |",
        args.runs
    );
    println!("|---:|---|---|---:|---:|---:|");
    for &n in sizes {
        let (dumps, alive) = dumps(layoutdump, fixture, n, formats)?;
        for (format, dump) in &dumps {
            let dump_arg = dump.to_str().ok_or("dump path is not UTF-8")?;
            let json = ["run", "tokio", dump_arg, "--format", "json", "--timings"];
            let group = ["run", "tokio", dump_arg, "--group"];
            for (name, cmd, keep) in [
                ("JSON, all backtraces", &json[..], false),
                ("--group", &group[..], true),
            ] {
                let m = best_of(args.runs, layoutdump, &index_cache(), cmd, keep, || ())?;
                if keep {
                    check_listed(&m.stdout, alive, &format!("{format} with {n} tasks"))?;
                } else {
                    phases.push((n, format.clone(), m.stderr.clone()));
                }
                println!(
                    "| {n} | {format} | {name} | {:.2} s | {} MiB | {:.2} µs |",
                    m.wall.as_secs_f64(),
                    m.peak_rss_kib / 1024,
                    m.wall.as_secs_f64() * 1e6 / alive as f64
                );
            }
        }
    }
    Ok(())
}

/// The runtime headers of a text report count the tasks listed: all of the fixture's,
/// or the benchmark is measuring a failure.
fn check_listed(text: &str, alive: u64, what: &str) -> Result<(), String> {
    let found: u64 = text
        .lines()
        .filter(|l| l.starts_with("runtime "))
        .filter_map(|l| l.split(", ").find_map(|p| p.strip_suffix(" tasks")))
        .filter_map(|c| c.parse::<u64>().ok())
        .sum();
    if found != alive {
        return Err(format!(
            "{what}: the fixture had {alive} live tasks, layoutdump listed {found}"
        ));
    }
    Ok(())
}
