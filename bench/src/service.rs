//! The large-binary part of the benchmark: `layoutdump run tokio` on a core of the
//! `service-large` fixture, with the name-index cache empty (cold) and filled (warm).

use std::path::Path;

use object::{Object, ObjectSection};

use crate::{best_of, cargo_build, check_listed, dumps, root};

/// Bytes of the `.debug_*` sections of the ELF file at `path`.
fn dwarf_size(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*bytes).map_err(|e| e.to_string())?;
    Ok(file
        .sections()
        .filter(|s| s.name().is_ok_and(|n| n.starts_with(".debug_")))
        .map(|s| s.size())
        .sum())
}

/// Builds the `service-large` fixture (an HTTP server and client stack with TLS, a
/// database pool, gRPC, Redis, templates; release with `debug = 2`), holding 100 requests
/// open, and times `layoutdump run tokio` on its core with an empty name-index cache (cold:
/// the DWARF is indexed and the index written) and with the index cached (warm). Every run
/// must list all of the fixture's tasks.
pub fn bench(layoutdump: &Path, runs: usize) -> Result<(), String> {
    eprintln!(
        "bench: building the service-large fixture (release; several minutes the first time)"
    );
    cargo_build(&[
        "--manifest-path",
        "tests/fixtures/Cargo.toml",
        "-p",
        "service-large",
    ])?;
    let fixture = root().join("tests/fixtures/target/release/service-large");
    let dwarf = dwarf_size(&fixture)?;
    let binary = std::fs::metadata(&fixture)
        .map_err(|e| e.to_string())?
        .len();
    let (dumps, alive) = dumps(layoutdump, &fixture, 100, &["core".to_string()])?;
    let core = dumps[0].1.to_str().ok_or("dump path is not UTF-8")?;
    let cache = root().join("target/bench-index-cache-service");
    let wipe = || {
        let _ = std::fs::remove_dir_all(&cache);
    };
    println!();
    println!(
        "service-large: {:.0} MiB binary, {:.0} MiB of DWARF, {alive} live tasks; `run tokio CORE` (text):",
        binary as f64 / (1 << 20) as f64,
        dwarf as f64 / (1 << 20) as f64
    );
    println!();
    println!("| index cache | wall (best of {runs}) | peak RSS | load and index |");
    println!("|---|---:|---:|---:|");
    let args = ["run", "tokio", core, "--timings"];
    for (name, before) in [("cold (empty)", true), ("warm", false)] {
        let m = best_of(runs, layoutdump, &cache, &args, true, || {
            if before {
                wipe()
            }
        })?;
        check_listed(&m.stdout, alive, &format!("service-large, {name}"))?;
        let index = m
            .stderr
            .lines()
            .find(|l| l.contains("debug info"))
            .and_then(|l| l.split_whitespace().rev().nth(1))
            .unwrap_or("?");
        println!(
            "| {name} | {:.2} s | {} MiB | {index} s |",
            m.wall.as_secs_f64(),
            m.peak_rss_kib / 1024
        );
    }
    Ok(())
}
