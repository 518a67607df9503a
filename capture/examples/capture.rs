//! Manual check: `cargo run -p layoutdump-capture --example capture -- PID OUT [core|minidump]`
//! captures PID into OUT and prints the summary (the real command is `layoutdump capture`).

use layoutdump_capture::{CaptureFormat, CaptureOptions, capture};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(pid), Some(out)) = (args.first().and_then(|p| p.parse().ok()), args.get(1)) else {
        eprintln!("usage: capture PID OUT [core|minidump] [--readonly]");
        return std::process::ExitCode::from(2);
    };
    let format = match args.get(2).map(String::as_str) {
        Some("minidump") => CaptureFormat::Minidump,
        _ => CaptureFormat::Core,
    };
    let include_readonly = args.iter().any(|a| a == "--readonly");
    let started = std::time::Instant::now();
    match capture(
        pid,
        out.as_ref(),
        &CaptureOptions {
            format,
            include_readonly,
            crash: None,
        },
    ) {
        Ok(summary) => {
            println!(
                "{:?}: {} threads, {} regions, {} bytes -> {} in {:?}",
                summary.format,
                summary.threads,
                summary.regions,
                summary.bytes,
                summary.path.display(),
                started.elapsed()
            );
            for skipped in &summary.skipped {
                println!("  skipped {skipped}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let mut message = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message += &format!("\n  caused by: {cause}");
                source = cause.source();
            }
            eprintln!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}
