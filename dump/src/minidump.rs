//! Reads an x86_64 Linux minidump (minidump-writer, Breakpad, Crashpad) into a `Dump` with the
//! `minidump` crate, and recovers each thread's `fs_base`, which minidumps do not record.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use minidump::format::MINIDUMP_STREAM_TYPE;
use minidump::{
    CodeView, Minidump, MinidumpException, MinidumpMemory64List, MinidumpMemoryList,
    MinidumpMiscInfo, MinidumpModuleList, MinidumpRawContext, MinidumpSystemInfo,
    MinidumpThreadList, MinidumpThreadNames, system_info::Cpu,
};

use crate::backing::Backing;
use crate::dump::{
    BuildIdOrigin, CrashInfo, Dump, DumpError, DumpFormat, DumpParts, Mapping, Module, Registers,
    Thread,
};
use crate::elf_core::path_from_bytes;
use crate::memory::Memory;
use crate::regions::{Region, RegionMemory, RegionSource};

const MAX_MAPS_LINES: usize = 1_000_000;
const MAX_AUXV_ENTRIES: usize = 4096;
const AT_ENTRY: u64 = 9;
const DUMP_REQUESTED: u32 = 0xffff_ffff;
/// glibc x86_64 `struct pthread`: `header.tcb` (self pointer) at 0, `header.self` at 0x10,
/// `tid` at 0x2d0 (stable since glibc 2.2x; fs_base points at the struct).
const TCB_SELF: u64 = 0x10;
const TCB_TID: u64 = 0x2d0;
/// The TCB scan reads at most this much dump memory.
const MAX_TCB_SCAN_BYTES: u64 = 1 << 30;

/// One line of `/proc/PID/maps` from the LinuxMaps stream.
struct MapsLine {
    start: u64,
    end: u64,
    writable: bool,
    offset: u64,
    path: Option<PathBuf>,
}

/// Minidumps: files that start with `MDMP`.
pub(crate) struct MinidumpReader;

impl crate::reader::DumpReader for MinidumpReader {
    fn name(&self) -> &'static str {
        "a minidump (4d 44 4d 50 \"MDMP\")"
    }

    fn sniff(&self, data: &[u8]) -> crate::reader::Sniff {
        if data.starts_with(b"MDMP") {
            crate::reader::Sniff::Dump
        } else {
            crate::reader::Sniff::Other
        }
    }

    fn read(&self, path: &Path, data: Backing) -> Result<Dump, DumpError> {
        read(path, data)
    }
}

pub(crate) fn read(path: &Path, data: Backing) -> Result<Dump, DumpError> {
    let mut warnings = Vec::new();
    let (parsed, captured) = {
        let md = Minidump::read(&*data).map_err(|e| DumpError::Malformed {
            path: path.to_owned(),
            what: format!("minidump header or stream directory ({e})"),
            offset: 0,
        })?;
        // `layoutdump capture`'s own stream has both clocks; otherwise the header's wall
        // clock, in seconds (a minidump has no monotonic time of its own).
        let stamp = u64::from(md.header.time_date_stamp);
        let ours = md
            .get_raw_stream(crate::MD_CAPTURE_TIME_STREAM)
            .ok()
            .filter(|b| b.len() >= 16);
        let word = |at: usize| {
            let b: [u8; 8] = ours?.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        let captured = crate::dump::CaptureTime {
            monotonic_ns: word(0),
            realtime_ns: word(8)
                .or_else(|| (stamp != 0).then(|| stamp.saturating_mul(1_000_000_000))),
        };
        (read_streams(path, &md, &data, &mut warnings)?, captured)
    };
    let Parsed {
        mut threads,
        modules,
        main_module,
        crash,
        regions,
        stacks,
        pid,
        process_name,
    } = parsed;
    let (memory, dropped) = RegionMemory::new(data, regions);
    if dropped > 0 {
        warnings.push(format!(
            "the minidump is truncated: {dropped} bytes of its memory ranges lie past its end"
        ));
    }
    recover_fs_base(&memory, &mut threads, &mut warnings);
    Ok(Dump::assemble(DumpParts {
        format: DumpFormat::Minidump,
        path: path.to_owned(),
        pid,
        process_name,
        threads,
        modules,
        main_module,
        crash,
        captured,
        warnings,
        memory,
        stacks,
    }))
}

struct Parsed {
    threads: Vec<Thread>,
    modules: Vec<Module>,
    main_module: Option<usize>,
    crash: Option<CrashInfo>,
    regions: Vec<Region>,
    stacks: Vec<(u64, u64)>,
    pid: Option<u32>,
    process_name: Option<String>,
}

fn read_streams<'a>(
    path: &Path,
    md: &'a Minidump<'a, &'a [u8]>,
    file: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Parsed, DumpError> {
    let system_info = md.get_stream::<MinidumpSystemInfo>().ok();
    if let Some(info) = &system_info {
        if info.cpu != Cpu::X86_64 {
            return Err(DumpError::Unsupported {
                path: path.to_owned(),
                what: format!("a minidump of a {} process", info.cpu),
            });
        }
    } else {
        warnings.push(
            "the minidump has no readable system info stream: thread registers are unknown".into(),
        );
    }
    let misc = md.get_stream::<MinidumpMiscInfo>().ok();
    let maps = md
        .get_raw_stream(MINIDUMP_STREAM_TYPE::LinuxMaps as u32)
        .map(parse_maps)
        .unwrap_or_default();

    // Memory: the 32-bit list (stacks, small ranges) and the 64-bit list (full dumps); a
    // dump may carry both.
    let mut regions = Vec::new();
    let mut short = 0u64;
    let mut add = |start: u64, size: u64, bytes: &[u8]| {
        let Some(offset) = offset_in(file, bytes) else {
            return;
        };
        let len = size.min(bytes.len() as u64);
        short += size - len;
        if len > 0
            && let Some(end) = start.checked_add(len)
        {
            regions.push(Region {
                start,
                end,
                source: RegionSource::Dump { offset },
                writable: None,
            });
        }
    };
    if let Ok(list) = md.get_stream::<MinidumpMemoryList>() {
        for m in list.iter() {
            add(m.base_address, m.size, m.bytes);
        }
    }
    if let Ok(list) = md.get_stream::<MinidumpMemory64List>() {
        for m in list.iter() {
            add(m.base_address, m.size, m.bytes);
        }
    }

    let mut threads = Vec::new();
    let mut stacks = Vec::new();
    match md.get_stream::<MinidumpThreadList>() {
        Ok(list) => {
            let names = md.get_stream::<MinidumpThreadNames>().ok();
            for t in &list.threads {
                let tid = t.raw.thread_id;
                let stack = &t.raw.stack;
                let (start, size) = (
                    stack.start_of_memory_range,
                    u64::from(stack.memory.data_size),
                );
                if size > 0 {
                    stacks.push((start, start.saturating_add(size)));
                    // The list usually repeats the stack in the memory list; overlaps are
                    // clipped when the region table is built.
                    let rva = u64::from(stack.memory.rva);
                    let bytes = file.get(rva as usize..).unwrap_or(&[]);
                    add(start, size, &bytes[..bytes.len().min(size as usize)]);
                }
                let regs = system_info
                    .as_ref()
                    .and_then(|info| t.context(info, misc.as_ref()))
                    .and_then(|ctx| match &ctx.raw {
                        MinidumpRawContext::Amd64(c) => Some(Registers {
                            rax: c.rax,
                            rbx: c.rbx,
                            rcx: c.rcx,
                            rdx: c.rdx,
                            rsi: c.rsi,
                            rdi: c.rdi,
                            rbp: c.rbp,
                            rsp: c.rsp,
                            r8: c.r8,
                            r9: c.r9,
                            r10: c.r10,
                            r11: c.r11,
                            r12: c.r12,
                            r13: c.r13,
                            r14: c.r14,
                            r15: c.r15,
                            rip: c.rip,
                            eflags: u64::from(c.eflags),
                            fs_base: None,
                            gs_base: None,
                        }),
                        _ => None,
                    });
                if regs.is_none() && system_info.is_some() {
                    warnings.push(format!("thread {tid}: no readable x86_64 register context"));
                }
                let name = names
                    .as_ref()
                    .and_then(|n| n.get_name(tid))
                    .map(|n| n.into_owned());
                threads.push(Thread {
                    tid,
                    name,
                    regs: regs.unwrap_or_default(),
                });
            }
        }
        Err(e) => warnings.push(format!("the minidump has no readable thread list ({e})")),
    }
    if short > 0 {
        warnings.push(format!(
            "{short} bytes of memory ranges the minidump lists are missing from the file"
        ));
    }

    // Region permissions come from the maps listing when the writer included it.
    if !maps.is_empty() {
        for r in &mut regions {
            let i = maps.partition_point(|m| m.end <= r.start);
            r.writable = maps
                .get(i)
                .filter(|m| m.start <= r.start)
                .map(|m| m.writable);
        }
    }

    let mut modules = Vec::new();
    match md.get_stream::<MinidumpModuleList>() {
        Ok(list) => {
            for m in list.iter() {
                let module_path = PathBuf::from(&m.name);
                let build_id = match &m.codeview_info {
                    Some(CodeView::Elf(cv)) if !cv.build_id.is_empty() => Some(cv.build_id.clone()),
                    _ => None,
                };
                let mut mappings: Vec<Mapping> = maps
                    .iter()
                    .filter(|l| l.path.as_deref() == Some(module_path.as_path()))
                    .map(|l| Mapping {
                        start: l.start,
                        end: l.end,
                        file_offset: l.offset,
                    })
                    .collect();
                if mappings.is_empty() {
                    let start = m.raw.base_of_image;
                    let end = start.saturating_add(u64::from(m.raw.size_of_image));
                    mappings.push(Mapping {
                        start,
                        end,
                        file_offset: 0,
                    });
                }
                mappings.sort_by_key(|m| m.start);
                modules.push(Module {
                    path: module_path,
                    build_id_origin: if build_id.is_some() {
                        BuildIdOrigin::Dump
                    } else {
                        BuildIdOrigin::Unknown
                    },
                    build_id,
                    mappings,
                    file: None,
                });
            }
        }
        Err(e) => warnings.push(format!("the minidump has no readable module list ({e})")),
    }
    // minidump-writer and Breakpad list the executable first; the entry point says for sure.
    let entry = md
        .get_raw_stream(MINIDUMP_STREAM_TYPE::LinuxAuxv as u32)
        .ok()
        .and_then(|auxv| {
            auxv.chunks_exact(16)
                .take(MAX_AUXV_ENTRIES)
                .map(|c| (le_u64(&c[..8]), le_u64(&c[8..])))
                .find(|&(k, _)| k == AT_ENTRY)
                .map(|(_, v)| v)
        });
    let main_module = entry
        .and_then(|e| modules.iter().position(|m: &Module| m.contains(e)))
        .or((!modules.is_empty()).then_some(0));

    let crash = md.get_stream::<MinidumpException>().ok().and_then(|e| {
        let record = &e.raw.exception_record;
        // Linux writers store the signal number as the exception code and si_addr as the
        // exception address; minidump-writer without a crash context (a dump of a live
        // process) writes 0xffffffff, MD_EXCEPTION_CODE_LIN_DUMP_REQUESTED: no crash.
        (record.exception_code != 0 && record.exception_code != DUMP_REQUESTED).then_some(
            CrashInfo {
                signal: Some(record.exception_code),
                tid: Some(e.thread_id),
                fault_addr: Some(record.exception_address),
            },
        )
    });

    let status = md
        .get_raw_stream(MINIDUMP_STREAM_TYPE::LinuxProcStatus as u32)
        .ok();
    let status_field = |key: &str| {
        let text = std::str::from_utf8(status?).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
    };
    let pid = status_field("Pid:")
        .and_then(|p| p.parse().ok())
        .or_else(|| misc.as_ref().and_then(misc_pid));
    let process_name = status_field("Name:");
    Ok(Parsed {
        threads,
        modules,
        main_module,
        crash,
        regions,
        stacks,
        pid,
        process_name,
    })
}

fn misc_pid(misc: &MinidumpMiscInfo) -> Option<u32> {
    use minidump::RawMiscInfo::*;
    let raw = match &misc.raw {
        MiscInfo(m) => (m.flags1, m.process_id),
        MiscInfo2(m) => (m.flags1, m.process_id),
        MiscInfo3(m) => (m.flags1, m.process_id),
        MiscInfo4(m) => (m.flags1, m.process_id),
        MiscInfo5(m) => (m.flags1, m.process_id),
    };
    // MINIDUMP_MISC1_PROCESS_ID = 1.
    (raw.0 & 1 != 0).then_some(raw.1)
}

/// Where `part` (a slice of the minidump) starts in `file`.
fn offset_in(file: &[u8], part: &[u8]) -> Option<u64> {
    let base = file.as_ptr() as usize;
    let at = (part.as_ptr() as usize).checked_sub(base)?;
    (!part.is_empty() && at.checked_add(part.len())? <= file.len()).then_some(at as u64)
}

/// `/proc/PID/maps` lines: `start-end perms offset dev inode   path`, sorted by start.
fn parse_maps(text: &[u8]) -> Vec<MapsLine> {
    let mut lines: Vec<MapsLine> = text
        .split(|&b| b == b'\n')
        .take(MAX_MAPS_LINES)
        .filter_map(|line| {
            let mut fields = line.splitn(6, |&b| b == b' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            let offset = fields.next()?;
            let _dev = fields.next()?;
            let _inode = fields.next()?;
            let path = fields
                .next()
                .map(|p| p.trim_ascii_start())
                .filter(|p| p.starts_with(b"/"));
            let dash = range.iter().position(|&b| b == b'-')?;
            let start = hex_u64(&range[..dash])?;
            let end = hex_u64(&range[dash + 1..])?;
            (start < end).then(|| MapsLine {
                start,
                end,
                writable: perms.get(1) == Some(&b'w'),
                offset: hex_u64(offset).unwrap_or(0),
                path: path.map(path_from_bytes),
            })
        })
        .collect();
    lines.sort_by_key(|l| l.start);
    lines
}

fn hex_u64(text: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok()
}

fn le_u64(b: &[u8]) -> u64 {
    b.try_into().map_or(0, u64::from_le_bytes)
}

/// Minidumps carry no `fs_base`. glibc's TCB (`struct pthread`, where fs_base points) starts
/// with a pointer to itself, repeats it at +0x10, and holds the thread id at +0x2d0: scan
/// the dumped memory for that pattern, once, for all threads.
fn recover_fs_base(memory: &RegionMemory, threads: &mut [Thread], warnings: &mut Vec<String>) {
    let wanted: HashSet<u32> = threads.iter().map(|t| t.tid).collect();
    if wanted.is_empty() {
        return;
    }
    let mut found: HashMap<u32, u64> = HashMap::new();
    let mut budget = MAX_TCB_SCAN_BYTES;
    // glibc puts a thread's TCB at the top of the mapping of its stack, and the main
    // thread's in a small mapping of the loader's: the regions holding a stack pointer
    // first, then the small ones. A service's heap can be gigabytes, which a scan in
    // address order spent its budget on before it reached them.
    let mut order: Vec<&Region> = memory
        .core_regions()
        .iter()
        .filter(|r| r.writable != Some(false))
        .collect();
    let holds_stack = |r: &Region| {
        threads
            .iter()
            .any(|t| r.start <= t.regs.rsp && t.regs.rsp < r.end)
    };
    order.sort_by_key(|r| (!holds_stack(r), r.end - r.start, r.start));
    'regions: for region in order {
        let RegionSource::Dump { offset } = region.source else {
            continue;
        };
        let len = (region.end - region.start).min(budget);
        budget -= len;
        let Some(bytes) = memory.dump_bytes().bytes_at(offset, len as usize) else {
            continue;
        };
        let skip = ((8 - region.start % 8) % 8) as usize;
        let Some(aligned) = bytes.get(skip..) else {
            continue;
        };
        for (i, word) in aligned.chunks_exact(8).enumerate() {
            let addr = region.start + skip as u64 + i as u64 * 8;
            if le_u64(word) != addr {
                continue;
            }
            let is_tcb = memory.read_u64_le(addr + TCB_SELF).ok() == Some(addr);
            let tid = memory.read_u32_le(addr + TCB_TID).ok();
            if let (true, Some(tid)) = (is_tcb, tid)
                && wanted.contains(&tid)
                && !found.contains_key(&tid)
            {
                found.insert(tid, addr);
                if found.len() == wanted.len() {
                    break 'regions;
                }
            }
        }
        if budget == 0 {
            break;
        }
    }
    let mut missing = Vec::new();
    for t in threads.iter_mut() {
        match found.get(&t.tid) {
            Some(&tp) => t.regs.fs_base = Some(tp),
            None => missing.push(t.tid.to_string()),
        }
    }
    if !missing.is_empty() {
        warnings.push(format!(
            "thread-local storage unknown for {} of {} threads (tids {}): the minidump has no \
             fs_base and their glibc thread control block was not found in its memory (the \
             first {} MiB scanned, stacks and small regions first)",
            missing.len(),
            threads.len(),
            missing.join(", "),
            MAX_TCB_SCAN_BYTES >> 20
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Memory;

    /// A hand-made minidump: system info, one thread with an AMD64 context and a stack,
    /// a memory list (the stack and a 4 KiB "heap" page holding the thread's TCB), and a
    /// SIGSEGV exception.
    fn tiny_minidump() -> Vec<u8> {
        fn put(b: &mut [u8], at: usize, v: &[u8]) {
            b[at..at + v.len()].copy_from_slice(v);
        }
        let (sysinfo, csd, threads, context, memlist, exception, stack, heap) = (
            80usize, 136usize, 144usize, 200usize, 1432usize, 1468usize, 1636usize, 1892usize,
        );
        let (stack_addr, heap_addr, tcb) = (0x7ff0_0000u64, 0x5000_0000u64, 0x5000_0040u64);
        let mut b = vec![0u8; heap + 0x1000];
        put(&mut b, 0, b"MDMP");
        put(&mut b, 4, &0xa793u32.to_le_bytes());
        put(&mut b, 8, &4u32.to_le_bytes());
        put(&mut b, 12, &32u32.to_le_bytes());
        for (i, (ty, size, rva)) in [
            (7u32, 56u32, sysinfo),
            (3, 52, threads),
            (5, 36, memlist),
            (6, 168, exception),
        ]
        .into_iter()
        .enumerate()
        {
            let d = 32 + i * 12;
            put(&mut b, d, &ty.to_le_bytes());
            put(&mut b, d + 4, &size.to_le_bytes());
            put(&mut b, d + 8, &(rva as u32).to_le_bytes());
        }
        put(&mut b, sysinfo, &9u16.to_le_bytes()); // PROCESSOR_ARCHITECTURE_AMD64
        put(&mut b, sysinfo + 20, &0x8201u32.to_le_bytes()); // Linux
        put(&mut b, sysinfo + 24, &(csd as u32).to_le_bytes());
        put(&mut b, threads, &1u32.to_le_bytes());
        put(&mut b, threads + 4, &4321u32.to_le_bytes());
        put(&mut b, threads + 4 + 24, &stack_addr.to_le_bytes());
        put(&mut b, threads + 4 + 32, &256u32.to_le_bytes());
        put(&mut b, threads + 4 + 36, &(stack as u32).to_le_bytes());
        put(&mut b, threads + 4 + 40, &1232u32.to_le_bytes());
        put(&mut b, threads + 4 + 44, &(context as u32).to_le_bytes());
        put(&mut b, context + 48, &0x0010_0003u32.to_le_bytes()); // CONTEXT_AMD64 | control | integer
        put(&mut b, context + 152, &(stack_addr + 0x10).to_le_bytes()); // rsp
        put(&mut b, context + 160, &(stack_addr + 0x20).to_le_bytes()); // rbp
        put(&mut b, context + 248, &0x40_1234u64.to_le_bytes()); // rip
        put(&mut b, memlist, &2u32.to_le_bytes());
        for (i, (addr, size, rva)) in [(stack_addr, 256u32, stack), (heap_addr, 0x1000, heap)]
            .into_iter()
            .enumerate()
        {
            let d = memlist + 4 + i * 16;
            put(&mut b, d, &addr.to_le_bytes());
            put(&mut b, d + 8, &size.to_le_bytes());
            put(&mut b, d + 12, &(rva as u32).to_le_bytes());
        }
        put(&mut b, exception, &4321u32.to_le_bytes());
        put(&mut b, exception + 8, &11u32.to_le_bytes()); // SIGSEGV
        put(&mut b, exception + 8 + 16, &0xdeadu64.to_le_bytes());
        put(&mut b, stack + 0x10, &0x1122u64.to_le_bytes());
        let t = heap + (tcb - heap_addr) as usize;
        put(&mut b, t, &tcb.to_le_bytes());
        put(&mut b, t + 0x10, &tcb.to_le_bytes());
        put(&mut b, t + 0x2d0, &4321u32.to_le_bytes());
        b
    }

    #[test]
    fn reads_a_synthetic_minidump() {
        let dump = read(Path::new("tiny.dmp"), Backing::Owned(tiny_minidump())).unwrap();
        assert_eq!(dump.format, DumpFormat::Minidump);
        assert_eq!(dump.threads.len(), 1, "{:?}", dump.warnings);
        let regs = dump.threads[0].regs;
        assert_eq!(
            (dump.threads[0].tid, regs.rsp, regs.rbp, regs.rip),
            (4321, 0x7ff0_0010, 0x7ff0_0020, 0x40_1234)
        );
        assert_eq!(regs.fs_base, Some(0x5000_0040));
        assert_eq!(
            dump.crash,
            Some(CrashInfo {
                signal: Some(11),
                tid: Some(4321),
                fault_addr: Some(0xdead)
            })
        );
        assert_eq!(dump.memory().read_u64_le(0x7ff0_0010).unwrap(), 0x1122);
        assert!(dump.memory().read_u8(0x7ff0_0100).is_err());
        assert!(dump.has_heap());
    }

    #[test]
    fn corrupt_minidumps_never_panic() {
        let good = tiny_minidump();
        for len in (0..good.len()).step_by(7) {
            let _ = read(Path::new("cut.dmp"), Backing::Owned(good[..len].to_vec()));
        }
        for at in 0..1700 {
            for byte in [0xff, 0x80] {
                let mut bad = good.clone();
                bad[at] = byte;
                let _ = read(Path::new("bad.dmp"), Backing::Owned(bad));
            }
        }
    }

    #[test]
    fn maps_lines_parse() {
        let text = b"55d0c0a00000-55d0c0a05000 r--p 00000000 fd:01 123   /usr/bin/app\n\
55d0c0a05000-55d0c0a20000 r-xp 00005000 fd:01 123   /usr/bin/app\n\
7ffd1000-7ffd2000 rw-p 00000000 00:00 0   [stack]\n\
garbage\n";
        let lines = parse_maps(text);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].start, 0x7ffd1000);
        assert!(lines[0].writable && lines[0].path.is_none());
        assert_eq!(lines[2].offset, 0x5000);
        assert_eq!(lines[2].path.as_deref(), Some(Path::new("/usr/bin/app")));
    }

    #[test]
    fn tcb_scan_finds_fs_base_by_self_pointer_and_tid() {
        // A writable region at 0x10000 holding a TCB at 0x10040 for tid 77, and a decoy
        // self-pointer at 0x10008 without the second copy.
        let mut bytes = vec![0u8; 0x400];
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(&mut bytes, 0x8, &0x10008u64.to_le_bytes());
        put(&mut bytes, 0x40, &0x10040u64.to_le_bytes());
        put(&mut bytes, 0x50, &0x10040u64.to_le_bytes());
        put(&mut bytes, 0x40 + 0x2d0, &77u32.to_le_bytes());
        let region = Region {
            start: 0x10000,
            end: 0x10400,
            source: RegionSource::Dump { offset: 0 },
            writable: Some(true),
        };
        let (memory, _) = RegionMemory::new(Backing::Owned(bytes), vec![region]);
        assert_eq!(memory.read_u64_le(0x10040).unwrap(), 0x10040);
        let mut threads = vec![
            Thread {
                tid: 77,
                name: None,
                regs: Registers::default(),
            },
            Thread {
                tid: 78,
                name: None,
                regs: Registers::default(),
            },
        ];
        let mut warnings = Vec::new();
        recover_fs_base(&memory, &mut threads, &mut warnings);
        assert_eq!(threads[0].regs.fs_base, Some(0x10040));
        assert_eq!(threads[1].regs.fs_base, None);
        assert!(warnings[0].contains("78"), "{warnings:?}");
    }
}
