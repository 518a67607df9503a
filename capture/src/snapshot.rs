//! Gathers the facts of a stopped process — threads' registers, mappings, auxv, identity —
//! into the plain values the dump writers take. Runs only while `StoppedProcess` holds it.

use std::fs;
use std::io;

use crate::elf_core::{CoreProcess, CoreThread};
use crate::error::CaptureError;
use crate::maps::{self, Mapping};
use crate::procfs;
use crate::ptrace::{self, StoppedProcess, ThreadRegisters};

/// The target's mappings, from `smaps` (which adds `Anonymous:` and `VmFlags:`) or, if
/// that cannot be read, from `maps`.
pub fn read_mappings(pid: i32) -> Result<Vec<Mapping>, CaptureError> {
    let text = fs::read_to_string(procfs::proc_path(pid, "smaps"))
        .or_else(|_| fs::read_to_string(procfs::proc_path(pid, "maps")))
        .map_err(|source| CaptureError::Proc {
            pid,
            path: procfs::proc_path(pid, "maps"),
            source,
        })?;
    Ok(maps::parse(&text))
}

/// Registers of every stopped thread, main thread first. A thread that vanished (killed
/// by SIGKILL while we hold it) is left out; any other failure is an error.
pub fn read_all_registers(
    pid: i32,
    stopped: &StoppedProcess,
) -> Result<Vec<ThreadRegisters>, CaptureError> {
    let mut all = Vec::new();
    for tid in stopped.tids() {
        match ptrace::read_registers(tid) {
            Ok(registers) => all.push(registers),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(source) => return Err(CaptureError::Registers { pid, tid, source }),
        }
    }
    if all.is_empty() {
        return Err(CaptureError::NoThreads { pid });
    }
    Ok(all)
}

/// The monotonic and wall clocks now, in nanoseconds (the process is stopped: this is
/// the time its memory shows).
pub(crate) fn now() -> Option<(u64, u64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return None;
    }
    let monotonic = u64::try_from(ts.tv_sec)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(ts.tv_nsec).ok()?)?;
    let realtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some((monotonic, u64::try_from(realtime).ok()?))
}

/// Everything an ELF core needs except memory contents.
pub fn core_process(
    pid: i32,
    stopped: &StoppedProcess,
    include_readonly: bool,
) -> Result<CoreProcess, CaptureError> {
    let proc_err = |file: &str| {
        let path = procfs::proc_path(pid, file);
        move |source: io::Error| CaptureError::Proc { pid, path, source }
    };
    let stat = procfs::read_stat(pid, None).map_err(proc_err("stat"))?;
    let status = procfs::read_status(pid, None).map_err(proc_err("status"))?;
    let auxv = fs::read(procfs::proc_path(pid, "auxv")).map_err(proc_err("auxv"))?;
    let threads = read_all_registers(pid, stopped)?
        .into_iter()
        .map(|registers| CoreThread {
            stat: procfs::read_stat(pid, Some(registers.tid)).unwrap_or_default(),
            status: procfs::read_status(pid, Some(registers.tid)).unwrap_or_default(),
            registers,
        })
        .collect();
    Ok(CoreProcess {
        pid,
        stat,
        status,
        cmdline: procfs::read_cmdline(pid),
        auxv,
        threads,
        mappings: read_mappings(pid)?,
        include_readonly,
        crash: None,
        captured: now(),
    })
}
