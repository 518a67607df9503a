//! Many dumps at once (`layoutdump triage`): analyze them in parallel and group them by
//! crash signature, for a crash pipeline. Debug info is loaded once per binary and shared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use layoutdump_lang::Program;
use rayon::prelude::*;
use serde::Serialize;

use crate::analyze::{Options, analyze};

/// One group of dumps with the same crash.
#[derive(Debug, Clone, Serialize)]
pub struct CrashGroup {
    pub count: usize,
    /// The crash signature, or `no-crash` / `unreadable` for dumps without one.
    pub signature: String,
    /// What the crash is, from one of the dumps: `panic at FILE:LINE: MESSAGE`.
    pub crash: String,
    /// Modification times of the oldest and newest dump of the group (RFC 3339, UTC).
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// One dump of the group, to open with `layoutdump run`.
    pub example: String,
}

/// Analyzes `dumps` in parallel and groups them, most frequent first. `progress` is
/// called after each dump with (done, total).
pub fn triage(
    program: &Program,
    dumps: &[PathBuf],
    opts: &Options,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<CrashGroup> {
    let done = AtomicUsize::new(0);
    // One DWARF index per binary, whatever the number of dumps.
    let mut opts = opts.clone();
    opts.dwarf_cache.get_or_insert_with(Default::default);
    let opts = &opts;
    let results: Vec<(PathBuf, String, String, Option<SystemTime>)> = dumps
        .par_iter()
        .map(|path| {
            let (signature, crash) = match analyze(program, path, opts) {
                Ok((report, _)) => match report.crash {
                    Some(c) => {
                        let what = match (&c.panic, c.signal) {
                            (Some(p), _) => {
                                let at = p.location.as_ref().map_or(String::new(), |l| {
                                    format!(" at {}:{}", l.file.as_deref().unwrap_or("?"), l.line)
                                });
                                format!("panic{at}: {}", p.message.as_deref().unwrap_or("?"))
                            }
                            (None, Some(sig)) => format!("signal {sig}"),
                            (None, None) => "unknown".into(),
                        };
                        (c.signature, what)
                    }
                    None => ("no-crash".into(), "no signal or panic in this dump".into()),
                },
                Err(e) => ("unreadable".into(), e.to_string()),
            };
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, dumps.len());
            (path.clone(), signature, crash, mtime)
        })
        .collect();
    let mut groups: BTreeMap<String, Vec<(PathBuf, String, Option<SystemTime>)>> = BTreeMap::new();
    for (path, sig, crash, mtime) in results {
        groups.entry(sig).or_default().push((path, crash, mtime));
    }
    let mut out: Vec<CrashGroup> = groups
        .into_iter()
        .map(|(signature, mut members)| {
            members.sort_by(|a, b| a.0.cmp(&b.0));
            let times: Vec<SystemTime> = members.iter().filter_map(|m| m.2).collect();
            CrashGroup {
                count: members.len(),
                signature,
                crash: members[0].1.clone(),
                first_seen: times.iter().min().map(|t| rfc3339(*t)),
                last_seen: times.iter().max().map(|t| rfc3339(*t)),
                example: members[0].0.display().to_string(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.signature.cmp(&b.signature)));
    out
}

/// The dump files named: files as given, and the files directly inside directories
/// (sorted), skipping hidden ones.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            inside.sort();
            out.extend(inside);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// `2026-11-27T10:39:35Z`
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_777_690);
        assert_eq!(rfc3339(t), "2026-11-27T11:08:10Z");
    }
}
