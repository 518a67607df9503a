//! Minidump capture: minidump-writer writes the dump, plus all writable memory as "app
//! memory"; afterwards each thread's `teb` is set to its fs_base, as Crashpad does on Linux,
//! and a stream of our own records when the process was stopped.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::thread::sleep;
use std::time::{Duration, Instant};

use minidump_writer::app_memory::AppMemory;
use minidump_writer::minidump_writer::MinidumpWriterConfig;

use crate::error::CaptureError;
use crate::maps::Mapping;
use crate::memory::{ProcessMemory, ReadMemory};
use crate::ptrace::StoppedProcess;
use crate::regions::{self, Content, PAGE_SIZE};
use crate::{SkipReason, SkippedRegion, procfs, snapshot};

/// Single regions above this are left out (a 64 GiB reserved-and-touched arena, say).
pub const MAX_REGION_BYTES: u64 = 1 << 30;
/// minidump-writer builds the whole dump in memory and minidump offsets are 32-bit, so
/// the app memory stays well below 4 GiB.
pub const MAX_TOTAL_BYTES: u64 = 2 << 30;
const MD_SIGNATURE: u32 = 0x504d_444d; // "MDMP"
const THREAD_LIST_STREAM: u32 = 3;
const MEMORY_LIST_STREAM: u32 = 5;
const MD_THREAD_SIZE: u64 = 48;
const MD_MEMORY_DESCRIPTOR_SIZE: u64 = 16;

/// What the written minidump holds, read back from the file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MinidumpStats {
    pub threads: usize,
    pub regions: usize,
    pub bytes: u64,
    pub skipped: Vec<SkippedRegion>,
}

/// Writes a minidump of `pid` to `file`.
///
/// minidump-writer ptrace-attaches by itself, so we cannot hold the process while it
/// runs. Instead: stop every thread, read maps and fs_bases, queue a SIGSTOP, and detach —
/// each thread enters the group stop before running any user code — so the maps we
/// planned from are still true when minidump-writer (which also SIGSTOPs, attaches, and
/// SIGCONTs at the end) reads them.
pub fn capture(
    pid: i32,
    file: &mut File,
    include_readonly: bool,
    stacks_only: bool,
) -> Result<MinidumpStats, CaptureError> {
    let was_stopped = procfs::read_stat(pid, None).is_ok_and(|s| s.state == b'T');
    let (app_memory, mut skipped, fs_bases, resume) = {
        let stopped = StoppedProcess::stop(pid)?;
        let registers = snapshot::read_all_registers(pid, &stopped)?;
        let mappings = snapshot::read_mappings(pid)?;
        let memory = ProcessMemory::open(pid)?;
        let stack_pages: Vec<u64> = registers
            .iter()
            .map(|r| r.rsp() & !(PAGE_SIZE - 1))
            .collect();
        let (app_memory, skipped) = if stacks_only {
            (Vec::new(), Vec::new())
        } else {
            plan_app_memory(&mappings, &stack_pages, &memory, include_readonly)
        };
        let fs_bases: HashMap<u32, u64> = registers
            .iter()
            .map(|r| (r.tid as u32, r.fs_base()))
            .filter(|_| !stacks_only)
            .collect();
        let resume = if was_stopped {
            None
        } else {
            Some(GroupStop::send(pid)?)
        };
        (app_memory, skipped, fs_bases, resume)
    };
    wait_until_stopped(pid, Duration::from_secs(2));
    // The process is stopped: this is the time its memory shows.
    let captured = snapshot::now();

    let mut config = MinidumpWriterConfig::new(pid, pid);
    config.set_app_memory(app_memory);
    // From here minidump-writer owns the stop: it SIGCONTs the process when done, on
    // success and failure alike.
    if let Some(resume) = resume {
        resume.hand_over();
    }
    let written = config.write(file);
    if was_stopped {
        // It was stopped before we came; minidump-writer's SIGCONT must not change that.
        let _ = signal(pid, libc::SIGSTOP);
    }
    written.map_err(|e| CaptureError::Minidump {
        pid,
        source: Box::new(e),
    })?;

    let mut stats = patch_and_count(file, &fs_bases).map_err(|source| CaptureError::Minidump {
        pid,
        source: Box::new(source),
    })?;
    skipped.append(&mut stats.skipped);
    stats.skipped = skipped;
    if let Some((monotonic, realtime)) = captured {
        let mut time = monotonic.to_le_bytes().to_vec();
        time.extend(realtime.to_le_bytes());
        append_stream(file, layoutdump_dump::MD_CAPTURE_TIME_STREAM, &time).map_err(|source| {
            CaptureError::Minidump {
                pid,
                source: Box::new(source),
            }
        })?;
    }
    Ok(stats)
}

/// Adds a stream to a written minidump: its data, then a new stream directory (the old
/// entries and one for it), at the end of the file, and the header pointed at them. A
/// minidump's offsets are 32-bit: past 4 GiB the stream is left out.
fn append_stream(file: &File, kind: u32, data: &[u8]) -> io::Result<()> {
    let read_u32 = |offset| read_u32_at(file, offset);
    let count = read_u32(8)?.min(1024);
    let mut directory = vec![0u8; count as usize * 12];
    file.read_exact_at(&mut directory, u64::from(read_u32(12)?))?;
    let at = file.metadata()?.len().next_multiple_of(8);
    let new_directory = (at + data.len() as u64).next_multiple_of(4);
    let (Ok(at32), Ok(dir32), Ok(len32)) = (
        u32::try_from(at),
        u32::try_from(new_directory),
        u32::try_from(data.len()),
    ) else {
        return Ok(());
    };
    file.write_all_at(data, at)?;
    directory.extend(kind.to_le_bytes());
    directory.extend(len32.to_le_bytes());
    directory.extend(at32.to_le_bytes());
    file.write_all_at(&directory, new_directory)?;
    file.write_all_at(&(count + 1).to_le_bytes(), 8)?;
    file.write_all_at(&dir32.to_le_bytes(), 12)
}

/// The writable (and, if asked, read-only) memory to add, with what was left out.
/// A thread's stack is stored by minidump-writer from its stack-pointer page to the end of
/// its mapping, so that mapping is added only below the lowest such page: overlapping
/// ranges in a memory list are dropped by readers (rust-minidump keeps the first).
fn plan_app_memory(
    mappings: &[Mapping],
    stack_pages: &[u64],
    memory: &impl ReadMemory,
    include_readonly: bool,
) -> (Vec<AppMemory>, Vec<SkippedRegion>) {
    let mut app = Vec::new();
    let mut skipped = Vec::new();
    let mut total = 0u64;
    let mut probe = [0u8; PAGE_SIZE as usize];
    for m in mappings {
        let (content, reason) = regions::content(m, include_readonly);
        if let Some(reason) = reason {
            skipped.push(SkippedRegion::new(m, reason));
        }
        if content != Content::Whole {
            continue;
        }
        let end = stack_pages
            .iter()
            .copied()
            .filter(|&page| m.start <= page && page < m.end)
            .min()
            .unwrap_or(m.end);
        let len = end - m.start;
        if len == 0 {
            continue;
        }
        if len > MAX_REGION_BYTES {
            skipped.push(SkippedRegion::new(
                m,
                SkipReason::TooLarge {
                    limit: MAX_REGION_BYTES,
                },
            ));
            continue;
        }
        if total + len > MAX_TOTAL_BYTES {
            skipped.push(SkippedRegion::new(
                m,
                SkipReason::OverBudget {
                    limit: MAX_TOTAL_BYTES,
                },
            ));
            continue;
        }
        // minidump-writer fails the whole dump if one region cannot be read at all.
        if memory.read_exact_at(m.start, &mut probe).is_err() {
            skipped.push(SkippedRegion::new(m, SkipReason::Unreadable));
            continue;
        }
        total += len;
        app.push(AppMemory {
            ptr: m.start as usize,
            length: len as usize,
        });
    }
    (app, skipped)
}

/// Sends SIGCONT on drop unless `hand_over` passed that duty on.
struct GroupStop {
    pid: i32,
    armed: bool,
}

impl GroupStop {
    fn send(pid: i32) -> Result<Self, CaptureError> {
        signal(pid, libc::SIGSTOP).map_err(|source| CaptureError::Signal {
            pid,
            signal: "SIGSTOP",
            source,
        })?;
        Ok(GroupStop { pid, armed: true })
    }

    fn hand_over(mut self) {
        self.armed = false;
    }
}

impl Drop for GroupStop {
    fn drop(&mut self) {
        if self.armed {
            let _ = signal(self.pid, libc::SIGCONT);
        }
    }
}

fn signal(pid: i32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory effects on this process.
    if unsafe { libc::kill(pid, signal) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Polls until every thread shows state `T`; gives up quietly at the deadline, since
/// minidump-writer attaches either way.
fn wait_until_stopped(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let all_stopped = procfs::list_threads(pid).is_ok_and(|tids| {
            tids.iter().all(|&tid| {
                procfs::read_stat(pid, Some(tid))
                    .is_ok_and(|s| matches!(s.state, b'T' | b't' | b'Z'))
            })
        });
        if all_stopped {
            return;
        }
        sleep(Duration::from_millis(1));
    }
}

/// Writes each thread's fs_base into `MDRawThread.teb` and counts threads and memory.
fn patch_and_count(file: &File, fs_bases: &HashMap<u32, u64>) -> io::Result<MinidumpStats> {
    let read_u32 = |offset| read_u32_at(file, offset);
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if read_u32(0)? != MD_SIGNATURE {
        return Err(invalid("not a minidump (bad signature)"));
    }
    let stream_count = read_u32(8)?.min(1024);
    let directory = u64::from(read_u32(12)?);
    let mut stats = MinidumpStats::default();
    for i in 0..u64::from(stream_count) {
        let entry = directory + i * 12;
        let (kind, size, rva) = (read_u32(entry)?, read_u32(entry + 4)?, read_u32(entry + 8)?);
        let (size, rva) = (u64::from(size), u64::from(rva));
        match kind {
            THREAD_LIST_STREAM => {
                let (count, first) = list_bounds(read_u32(rva)?, size, MD_THREAD_SIZE)?;
                stats.threads = count as usize;
                for t in 0..count {
                    let thread = rva + first + t * MD_THREAD_SIZE;
                    if let Some(fs_base) = fs_bases.get(&read_u32(thread)?) {
                        file.write_all_at(&fs_base.to_le_bytes(), thread + 16)?;
                    }
                }
            }
            MEMORY_LIST_STREAM => {
                let (count, first) = list_bounds(read_u32(rva)?, size, MD_MEMORY_DESCRIPTOR_SIZE)?;
                stats.regions = count as usize;
                for r in 0..count {
                    let descriptor = rva + first + r * MD_MEMORY_DESCRIPTOR_SIZE;
                    stats.bytes += u64::from(read_u32(descriptor + 8)?);
                }
            }
            _ => {}
        }
    }
    Ok(stats)
}

/// The little-endian u32 at `offset` of the written minidump.
fn read_u32_at(file: &File, offset: u64) -> io::Result<u32> {
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, offset)?;
    Ok(u32::from_le_bytes(b))
}

/// Entry count and offset of the first entry of a `count, [pad,] entries…` list stream;
/// some writers put 4 bytes of padding after the count.
fn list_bounds(count: u32, stream_size: u64, entry_size: u64) -> io::Result<(u64, u64)> {
    let count = u64::from(count);
    match stream_size.checked_sub(count * entry_size) {
        Some(4) => Ok((count, 4)),
        Some(8) => Ok((count, 8)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "list stream size mismatch",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps;

    struct AllReadable;
    impl ReadMemory for AllReadable {
        fn read_at(&self, address: u64, buf: &mut [u8]) -> io::Result<usize> {
            if address == 0x50000 {
                Err(io::ErrorKind::Other.into())
            } else {
                Ok(buf.len())
            }
        }
    }

    #[test]
    fn plan_splits_stacks_and_skips_what_it_must() {
        let mappings = maps::parse(
            "10000-20000 rw-p 00000000 00:00 0   [heap]\n\
             20000-30000 r-xp 00001000 fe:00 7   /bin/x\n\
             30000-40000 rw-p 00000000 00:00 0   [stack]\n\
             50000-51000 rw-p 00000000 00:00 0\n\
             100000000-180000000 rw-p 00000000 00:00 0\n",
        );
        let (app, skipped) =
            plan_app_memory(&mappings, &[0x3f000, 0x3a123 & !0xfff], &AllReadable, false);
        let ranges: Vec<(usize, usize)> = app.iter().map(|a| (a.ptr, a.length)).collect();
        assert_eq!(ranges, [(0x10000, 0x10000), (0x30000, 0xa000)]);
        let reasons: Vec<&SkipReason> = skipped.iter().map(|s| &s.reason).collect();
        assert_eq!(
            reasons,
            [
                &SkipReason::Unreadable,
                &SkipReason::TooLarge {
                    limit: MAX_REGION_BYTES
                }
            ]
        );
    }

    #[test]
    fn list_bounds_accepts_padding_and_rejects_nonsense() {
        assert_eq!(list_bounds(2, 4 + 96, 48).unwrap(), (2, 4));
        assert_eq!(list_bounds(2, 8 + 96, 48).unwrap(), (2, 8));
        assert!(list_bounds(3, 100, 48).is_err());
        assert!(list_bounds(u32::MAX, 100, 48).is_err());
    }
}
