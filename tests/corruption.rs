//! Hostile dumps: copies of a real fixture core and minidump with their memory corrupted
//! must never crash or hang layoutdump: each run ends, in bounded time, with a report
//! (complete or partial) or a clear error.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Profile, tokio_dumps};

/// A deterministic pseudo-random sequence (64-bit LCG), so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

/// Something done to a core's bytes.
type Corruption<'a> = Box<dyn Fn(&mut Vec<u8>, &mut Lcg) + 'a>;

/// File ranges of the core's memory segments (PT_LOAD with bytes).
fn memory_ranges(core: &[u8]) -> Vec<(usize, usize)> {
    let phoff = u64::from_le_bytes(core[32..40].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(core[56..58].try_into().unwrap()) as usize;
    (0..phnum)
        .filter_map(|i| {
            let ph = &core[phoff + i * 56..phoff + (i + 1) * 56];
            let kind = u32::from_le_bytes(ph[0..4].try_into().unwrap());
            let offset = u64::from_le_bytes(ph[8..16].try_into().unwrap()) as usize;
            let size = u64::from_le_bytes(ph[32..40].try_into().unwrap()) as usize;
            (kind == 1 && size > 0).then_some((offset, offset + size))
        })
        .collect()
}

/// File ranges of a minidump's memory (the bytes its memory lists point at).
fn minidump_memory_ranges(dump: &[u8]) -> Vec<(usize, usize)> {
    let md = minidump::Minidump::read(dump).expect("the fixture's minidump parses");
    let Some(list) = md.get_memory() else {
        return Vec::new();
    };
    list.iter()
        .map(|m| {
            let start = m.bytes().as_ptr() as usize - dump.as_ptr() as usize;
            (start, start + m.bytes().len())
        })
        .filter(|(s, e)| e > s)
        .collect()
}

/// Runs `layoutdump run tokio` on `path` with a deadline; returns (exit code, stderr).
fn run_bounded(path: &std::path::Path, limit: Duration) -> (Option<i32>, String) {
    let mut child = common::layoutdump()
        .args(["run", "tokio"])
        .arg(path)
        .args(["--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("layoutdump ran longer than {limit:?} on {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn corrupted_core_memory_never_crashes_or_hangs() {
    let d = tokio_dumps(Profile::Dev);
    let original = std::fs::read(&d.core).unwrap();
    let ranges = memory_ranges(&original);
    corrupt_and_run(&original, &ranges, "core");
}

#[test]
fn corrupted_minidump_memory_never_crashes_or_hangs() {
    let d = tokio_dumps(Profile::Dev);
    let original = std::fs::read(&d.minidump).unwrap();
    let ranges = minidump_memory_ranges(&original);
    corrupt_and_run(&original, &ranges, "dmp");
}

/// Every corruption, three rounds each, on copies of `original` whose memory is at the
/// file ranges `ranges`; each copy is run and must end in time with a report or an error.
/// The corruptions: bit flips, zeroed and randomized pages, and heap pointers rewritten to
/// make task links cyclic, point them into unmapped memory, or make a Vec length 2^60.
fn corrupt_and_run(original: &[u8], ranges: &[(usize, usize)], ext: &str) {
    assert!(!ranges.is_empty());
    let dir = common::root().join("target/test-scratch/corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Lcg(0x1a70_d0d0);
    // Each case: what is done to the memory bytes.
    let cases: Vec<(&str, Corruption<'_>)> = vec![
        (
            "bit flips",
            Box::new(|b: &mut Vec<u8>, r: &mut Lcg| {
                for _ in 0..20_000 {
                    let (s, e) = ranges[(r.next() as usize) % ranges.len()];
                    let i = s + (r.next() as usize) % (e - s);
                    b[i] ^= 1 << (r.next() % 8);
                }
            }),
        ),
        (
            "zeroed pages",
            Box::new(|b: &mut Vec<u8>, r: &mut Lcg| {
                for _ in 0..200 {
                    let (s, e) = ranges[(r.next() as usize) % ranges.len()];
                    let i = s + ((r.next() as usize) % (e - s)) / 4096 * 4096;
                    let end = (i + 4096).min(e);
                    b[i..end].fill(0);
                }
            }),
        ),
        (
            "random pages",
            Box::new(|b: &mut Vec<u8>, r: &mut Lcg| {
                for _ in 0..200 {
                    let (s, e) = ranges[(r.next() as usize) % ranges.len()];
                    let i = s + ((r.next() as usize) % (e - s)) / 4096 * 4096;
                    for x in &mut b[i..(i + 4096).min(e)] {
                        *x = r.next() as u8;
                    }
                }
            }),
        ),
        (
            "pointers to themselves and to nowhere",
            Box::new(|b: &mut Vec<u8>, r: &mut Lcg| {
                // Rewrite words that look like heap pointers: some to point at themselves
                // (cycles in every list), some into unmapped memory, some huge (lengths).
                for &(s, e) in ranges {
                    let mut i = s;
                    while i + 8 <= e {
                        let w = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
                        if (0x5500_0000_0000..0x7fff_ffff_ffff).contains(&w)
                            && r.next().is_multiple_of(7)
                        {
                            let new = match r.next() % 3 {
                                0 => w & !0xfff,
                                1 => 0xdead_0000_0000,
                                _ => 1 << 60,
                            };
                            b[i..i + 8].copy_from_slice(&new.to_le_bytes());
                        }
                        i += 8;
                    }
                }
            }),
        ),
    ];
    for (name, corrupt) in &cases {
        for round in 0..3 {
            let mut bytes = original.to_vec();
            corrupt(&mut bytes, &mut rng);
            let path = dir.join(format!("{}-{round}.{ext}", name.replace(' ', "-")));
            std::fs::write(&path, &bytes).unwrap();
            let (code, stderr) = run_bounded(&path, Duration::from_secs(60));
            assert!(
                !stderr.contains("panicked"),
                "{name} #{round}: layoutdump panicked:\n{stderr}"
            );
            assert!(
                matches!(code, Some(0 | 1 | 3)),
                "{name} #{round}: exit {code:?}\n{stderr}"
            );
            // Kept only when a case fails, to be run again by hand: each copy is as big
            // as the dump, and twelve of them would stay on disk for nothing.
            let _ = std::fs::remove_file(&path);
        }
    }
}
