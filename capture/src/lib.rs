//! layoutdump-capture: writes an ELF core or a minidump of a live Linux x86_64 process
//! with everything layoutdump needs — all writable memory and each thread's fs_base.

#![cfg_attr(
    not(all(target_os = "linux", target_arch = "x86_64")),
    allow(dead_code)
)]

use std::fmt;
use std::path::{Path, PathBuf};

mod error;
pub use error::CaptureError;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod elf_core;
mod maps;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod memory;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod minidump;
mod procfs;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod ptrace;
mod regions;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod snapshot;

/// The file format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureFormat {
    /// An ELF core file, as `gcore` writes it: loads in gdb and lldb.
    #[default]
    Core,
    /// A Breakpad minidump (via minidump-writer) with all writable memory added, and each
    /// thread's fs_base in its `teb` field.
    Minidump,
    /// What a crash reporter writes by default: thread stacks only, no heap, no thread
    /// pointers. Tasks cannot be listed from it; it exists to test how that is reported.
    MinidumpStacksOnly,
}

/// The signal a process is dying of, for a capture made from its own crash handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashSignal {
    pub signal: i32,
    /// `si_code` (e.g. SEGV_MAPERR).
    pub code: i32,
    /// The faulting address for SIGSEGV, SIGBUS, SIGILL, SIGFPE.
    pub address: u64,
    /// The thread that received it.
    pub tid: i32,
}

#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    pub format: CaptureFormat,
    /// Also store read-only file-backed memory (code, `.rodata`). Off by default: those
    /// bytes are in the binaries, and layoutdump reads them from there.
    pub include_readonly: bool,
    /// Write this signal into the core (ELF core only), as the kernel would.
    pub crash: Option<CrashSignal>,
}

/// What a capture wrote.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    pub format: CaptureFormat,
    /// Threads in the dump (NT_PRSTATUS notes, or minidump thread list entries).
    pub threads: usize,
    /// Memory regions with contents in the dump (PT_LOADs with bytes, or memory list
    /// entries, thread stacks included).
    pub regions: usize,
    /// Memory bytes stored.
    pub bytes: u64,
    pub path: PathBuf,
    /// Memory that would have been stored but was not, and why.
    pub skipped: Vec<SkippedRegion>,
}

/// A mapping (or part of one) left out of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRegion {
    pub start: u64,
    pub end: u64,
    /// The mapping's path or pseudo-name from /proc/PID/maps; empty if anonymous.
    pub name: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Its first page could not be read through /proc/PID/mem.
    Unreadable,
    /// Some pages could not be read; they are zeros in the core.
    PartlyUnreadable { missing_bytes: u64 },
    /// The program marked it MADV_DONTDUMP.
    DontDump,
    /// Device memory (VM_IO / VM_PFNMAP).
    DeviceMemory,
    /// Minidump only: larger than the per-region limit.
    TooLarge { limit: u64 },
    /// Minidump only: would have taken the dump past its total memory limit.
    OverBudget { limit: u64 },
}

impl SkippedRegion {
    fn new(mapping: &maps::Mapping, reason: SkipReason) -> Self {
        SkippedRegion {
            start: mapping.start,
            end: mapping.end,
            name: mapping.name.clone(),
            reason,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Unreadable => write!(f, "unreadable"),
            SkipReason::PartlyUnreadable { missing_bytes } => {
                write!(f, "{missing_bytes} bytes unreadable, stored as zeros")
            }
            SkipReason::DontDump => write!(f, "marked MADV_DONTDUMP"),
            SkipReason::DeviceMemory => write!(f, "device memory"),
            SkipReason::TooLarge { limit } => {
                write!(f, "larger than the {limit}-byte region limit")
            }
            SkipReason::OverBudget { limit } => write!(f, "over the {limit}-byte total limit"),
        }
    }
}

impl fmt::Display for SkippedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x}-{:#x} {}: {}",
            self.start, self.end, self.name, self.reason
        )
    }
}

/// Writes a dump of process `pid` to `out`.
///
/// The process is stopped while it is read and resumes afterwards (also on error). The
/// dump is written to `out` + `.tmp` and renamed into place, so a failed capture leaves
/// no partial file; it is created mode 0600, since it holds the process's secrets.
///
/// ```no_run
/// use layoutdump_capture::{capture, CaptureFormat, CaptureOptions};
/// let opts = CaptureOptions { format: CaptureFormat::Core, ..CaptureOptions::default() };
/// let summary = capture(1234, "app.core".as_ref(), &opts)?;
/// println!("{} threads, {} bytes in {}", summary.threads, summary.bytes, summary.path.display());
/// # Ok::<(), layoutdump_capture::CaptureError>(())
/// ```
pub fn capture(
    pid: i32,
    out: &Path,
    opts: &CaptureOptions,
) -> Result<CaptureSummary, CaptureError> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        linux::capture(pid, out, opts)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = (pid, out, opts);
        Err(CaptureError::UnsupportedPlatform)
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux {
    use std::fs::{self, File, OpenOptions};
    use std::io::{self, BufWriter, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::{Path, PathBuf};

    use crate::memory::ProcessMemory;
    use crate::ptrace::StoppedProcess;
    use crate::{CaptureError, CaptureFormat, CaptureOptions, CaptureSummary};
    use crate::{elf_core, minidump, procfs, snapshot};

    pub fn capture(
        pid: i32,
        out: &Path,
        opts: &CaptureOptions,
    ) -> Result<CaptureSummary, CaptureError> {
        validate(pid, out)?;
        let mut tmp_name = out.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| CaptureError::Write { path, source }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .read(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err(&tmp))?;
        let result = match opts.format {
            CaptureFormat::Core => {
                capture_core(pid, &mut file, &tmp, opts.include_readonly, opts.crash)
            }
            CaptureFormat::Minidump => {
                capture_minidump(pid, &mut file, opts.include_readonly, false)
            }
            CaptureFormat::MinidumpStacksOnly => {
                capture_minidump(pid, &mut file, opts.include_readonly, true)
            }
        }
        .and_then(|summary| {
            file.sync_all().map_err(write_err(&tmp))?;
            fs::rename(&tmp, out).map_err(write_err(out))?;
            Ok(summary)
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|summary| CaptureSummary {
            path: out.to_path_buf(),
            ..summary
        })
    }

    fn capture_core(
        pid: i32,
        file: &mut File,
        tmp: &Path,
        include_readonly: bool,
        crash: Option<crate::CrashSignal>,
    ) -> Result<CaptureSummary, CaptureError> {
        let stopped = StoppedProcess::stop(pid)?;
        let mut process = snapshot::core_process(pid, &stopped, include_readonly)?;
        if let Some(c) = crash {
            // The crashing thread first, as the kernel writes it.
            if let Some(i) = process
                .threads
                .iter()
                .position(|t| t.registers.tid == c.tid)
            {
                let t = process.threads.remove(i);
                process.threads.insert(0, t);
            }
            process.crash = Some(c);
        }
        let memory = ProcessMemory::open(pid)?;
        let mut writer = BufWriter::with_capacity(1 << 16, file);
        let stats = elf_core::write_core(&mut writer, &process, &memory)
            .and_then(|stats| writer.flush().map(|()| stats))
            .map_err(|source| CaptureError::Write {
                path: tmp.to_path_buf(),
                source,
            })?;
        drop(stopped);
        Ok(CaptureSummary {
            format: CaptureFormat::Core,
            threads: process.threads.len(),
            regions: stats.regions,
            bytes: stats.bytes,
            path: PathBuf::new(),
            skipped: stats.skipped,
        })
    }

    fn capture_minidump(
        pid: i32,
        file: &mut File,
        include_readonly: bool,
        stacks_only: bool,
    ) -> Result<CaptureSummary, CaptureError> {
        let stats = minidump::capture(pid, file, include_readonly, stacks_only)?;
        Ok(CaptureSummary {
            format: if stacks_only {
                CaptureFormat::MinidumpStacksOnly
            } else {
                CaptureFormat::Minidump
            },
            threads: stats.threads,
            regions: stats.regions,
            bytes: stats.bytes,
            path: PathBuf::new(),
            skipped: stats.skipped,
        })
    }

    fn validate(pid: i32, out: &Path) -> Result<(), CaptureError> {
        if pid <= 0 {
            return Err(CaptureError::InvalidPid { pid });
        }
        if pid as u32 == std::process::id() {
            return Err(CaptureError::SelfCapture { pid });
        }
        let status = match procfs::read_status(pid, None) {
            Ok(status) => status,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CaptureError::NoSuchProcess { pid });
            }
            Err(source) => {
                return Err(CaptureError::Proc {
                    pid,
                    path: procfs::proc_path(pid, "status"),
                    source,
                });
            }
        };
        if status.tgid != pid && status.tgid > 0 {
            if status.tgid as u32 == std::process::id() {
                return Err(CaptureError::SelfCapture { pid: status.tgid });
            }
            return Err(CaptureError::NotAProcess {
                tid: pid,
                pid: status.tgid,
            });
        }
        if out.is_dir() {
            return Err(CaptureError::OutputIsDirectory {
                path: out.to_path_buf(),
            });
        }
        let dir = match out.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(CaptureError::OutputDirMissing {
                path: out.to_path_buf(),
                dir: dir.to_path_buf(),
            });
        }
        Ok(())
    }
}
