//! `run --pid`: a running process, analyzed from a snapshot. The process is stopped only
//! while its memory is copied (by the capture library, as `layoutdump capture` does), so
//! the report is exactly what a dump taken at that moment would give.

use anyhow::{Context, Result};
use layoutdump_capture::{CaptureFormat, CaptureOptions, capture};
use layoutdump_engine::analyze::{Options, Outcome};
use layoutdump_engine::report::Report;

/// Removes the snapshot however the analysis ends.
struct Snapshot(std::path::PathBuf);

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn analyze_live(layout: &str, pid: i32, opts: &Options) -> Result<(Report, Outcome)> {
    let path =
        std::env::temp_dir().join(format!("layoutdump-live-{pid}-{}.core", std::process::id()));
    let snapshot = Snapshot(path);
    capture(
        pid,
        &snapshot.0,
        &CaptureOptions {
            format: CaptureFormat::Core,
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot read process {pid}"))?;
    let (mut report, outcome) = crate::auto::analyze_layout(layout, &snapshot.0, opts)?;
    // Say what was analyzed: the process, not the temporary snapshot file.
    if let Some(d) = &mut report.dump {
        d.path = format!("live process {pid}");
        d.format = "live (snapshot)".into();
    }
    Ok((report, outcome))
}
