//! Writes an x86_64 Linux ELF core file, as the kernel and gdb's `gcore` lay it out, from
//! already-gathered process facts and a `ReadMemory`; no ptrace or /proc access here.

use std::io::{self, Write};

use crate::maps::Mapping;
use crate::memory::ReadMemory;
use crate::procfs::{Stat, Status};
use crate::ptrace::{NT_X86_XSTATE, ThreadRegisters};
use crate::regions::{self, Content, PAGE_SIZE};
use crate::{SkipReason, SkippedRegion};

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;
// The segment and note types, as the `object` crate defines them for the dump reader too.
const PT_LOAD: u32 = object::elf::PT_LOAD.0;
const PT_NOTE: u32 = object::elf::PT_NOTE.0;
/// `e_phnum` value meaning "the real count is in section header 0's `sh_info`".
const PN_XNUM: u64 = object::elf::PN_XNUM as u64;
const NT_PRSTATUS: u32 = object::elf::NT_PRSTATUS.0;
const NT_SIGINFO: u32 = object::elf::NT_SIGINFO.0;
const NT_FPREGSET: u32 = object::elf::NT_FPREGSET.0;
const NT_PRPSINFO: u32 = object::elf::NT_PRPSINFO.0;
const NT_AUXV: u32 = object::elf::NT_AUXV.0;
const NT_FILE: u32 = object::elf::NT_FILE.0;
/// Linux's USER_HZ, the unit of /proc/PID/stat times; fixed at 100 on x86_64.
const USER_HZ: u64 = 100;
const PRSTATUS_SIZE: usize = 336;
const PRPSINFO_SIZE: usize = 136;
/// Memory is copied in pieces this large, so a dump never holds a whole region.
const CHUNK: usize = 1 << 20;

/// One thread as the core records it.
#[derive(Debug, Clone)]
pub struct CoreThread {
    pub registers: ThreadRegisters,
    /// The thread's own stat and status (CPU times, pending and blocked signals).
    pub stat: Stat,
    pub status: Status,
}

/// Everything a core holds besides memory contents.
#[derive(Debug, Clone)]
pub struct CoreProcess {
    pub pid: i32,
    pub stat: Stat,
    pub status: Status,
    pub cmdline: String,
    pub auxv: Vec<u8>,
    /// Main thread first: gdb selects the thread of the first NT_PRSTATUS.
    pub threads: Vec<CoreThread>,
    pub mappings: Vec<Mapping>,
    pub include_readonly: bool,
    /// The signal the process is dying of, when the capture is made from its crash
    /// handler: written as NT_SIGINFO and the crashing thread's pr_cursig, as the kernel
    /// does, with that thread first.
    pub crash: Option<crate::CrashSignal>,
    /// When the process was stopped: `CLOCK_MONOTONIC` and `CLOCK_REALTIME` nanoseconds,
    /// written as the `LAYOUTDUMP` note (a layout's `dump_time()`).
    pub captured: Option<(u64, u64)>,
}

/// What ended up in the core.
#[derive(Debug, Default)]
pub struct CoreStats {
    /// PT_LOAD segments with bytes in the file.
    pub regions: usize,
    pub bytes: u64,
    pub skipped: Vec<SkippedRegion>,
}

struct Segment {
    start: u64,
    end: u64,
    flags: u32,
    file_size: u64,
}

/// Writes the core to `out`, reading memory from `memory` one chunk at a time.
///
/// Layout: ELF header, program headers (PT_NOTE then one PT_LOAD per mapping), the notes,
/// padding to a page, then each PT_LOAD's bytes in order. A region whose first page
/// cannot be read is stored with no bytes; pages that fail later are written as zeros
/// and reported, since the headers are already out by then.
pub fn write_core(
    out: &mut impl Write,
    process: &CoreProcess,
    memory: &impl ReadMemory,
) -> io::Result<CoreStats> {
    let mut stats = CoreStats::default();
    let segments = plan_segments(process, memory, &mut stats.skipped);
    let notes = build_notes(process);

    let phnum = 1 + segments.len() as u64;
    let extended = phnum >= PN_XNUM;
    let notes_offset = EHDR_SIZE + phnum * PHDR_SIZE + if extended { SHDR_SIZE } else { 0 };
    let data_offset = (notes_offset + notes.len() as u64).next_multiple_of(PAGE_SIZE);

    let mut head = Vec::with_capacity(data_offset as usize);
    write_ehdr(&mut head, phnum, extended, EHDR_SIZE + phnum * PHDR_SIZE);
    write_phdr(
        &mut head,
        PT_NOTE,
        0,
        notes_offset,
        0,
        notes.len() as u64,
        0,
        4,
    );
    let mut offset = data_offset;
    for s in &segments {
        write_phdr(
            &mut head,
            PT_LOAD,
            s.flags,
            offset,
            s.start,
            s.file_size,
            s.end - s.start,
            PAGE_SIZE,
        );
        offset += s.file_size;
    }
    if extended {
        // Section header 0 of type SHT_NULL carrying the real program header count.
        let mut shdr = [0u8; SHDR_SIZE as usize];
        shdr[44..48].copy_from_slice(&(phnum as u32).to_le_bytes()); // sh_info
        head.extend_from_slice(&shdr);
    }
    head.extend_from_slice(&notes);
    head.resize(data_offset as usize, 0);
    out.write_all(&head)?;

    let mut buf = vec![0u8; CHUNK];
    for s in segments.iter().filter(|s| s.file_size > 0) {
        let missing = copy_segment(out, memory, s, &mut buf)?;
        stats.regions += 1;
        stats.bytes += s.file_size;
        if missing > 0 {
            stats.skipped.push(SkippedRegion {
                start: s.start,
                end: s.end,
                name: name_of(process, s.start),
                reason: SkipReason::PartlyUnreadable {
                    missing_bytes: missing,
                },
            });
        }
    }
    out.flush()?;
    Ok(stats)
}

fn name_of(process: &CoreProcess, start: u64) -> String {
    let mapping = process.mappings.iter().find(|m| m.start == start);
    mapping.map(|m| m.name.clone()).unwrap_or_default()
}

fn plan_segments(
    process: &CoreProcess,
    memory: &impl ReadMemory,
    skipped: &mut Vec<SkippedRegion>,
) -> Vec<Segment> {
    let mut probe = [0u8; PAGE_SIZE as usize];
    let mut segments = Vec::with_capacity(process.mappings.len());
    for m in &process.mappings {
        let (content, reason) = regions::content(m, process.include_readonly);
        let mut file_size = regions::stored_len(m, content);
        if file_size > 0 {
            let first = &mut probe[..file_size.min(PAGE_SIZE) as usize];
            let readable = memory.read_exact_at(m.start, first).is_ok();
            let keep = match content {
                // Like the kernel: an offset-0 page is worth keeping only if it is an ELF
                // header (a mapped locale archive's first page is not).
                Content::FirstPage => readable && first.starts_with(b"\x7fELF"),
                _ => readable,
            };
            if !keep {
                if content == Content::Whole {
                    skipped.push(SkippedRegion::new(m, SkipReason::Unreadable));
                }
                file_size = 0;
            }
        }
        if let Some(reason) = reason {
            skipped.push(SkippedRegion::new(m, reason));
        }
        let flags =
            u32::from(m.perms.read) << 2 | u32::from(m.perms.write) << 1 | u32::from(m.perms.exec);
        segments.push(Segment {
            start: m.start,
            end: m.end,
            flags,
            file_size,
        });
    }
    segments
}

/// Copies one segment's bytes; returns how many had to be written as zeros.
fn copy_segment(
    out: &mut impl Write,
    memory: &impl ReadMemory,
    segment: &Segment,
    buf: &mut [u8],
) -> io::Result<u64> {
    let mut missing = 0;
    let mut address = segment.start;
    let end = segment.start + segment.file_size;
    while address < end {
        let len = (end - address).min(buf.len() as u64) as usize;
        let chunk = &mut buf[..len];
        if memory.read_exact_at(address, chunk).is_err() {
            // Find which pages fail (a file mapping past its file's end, say).
            for (i, page) in chunk.chunks_mut(PAGE_SIZE as usize).enumerate() {
                let page_address = address + (i as u64) * PAGE_SIZE;
                if memory.read_exact_at(page_address, page).is_err() {
                    page.fill(0);
                    missing += page.len() as u64;
                }
            }
        }
        out.write_all(chunk)?;
        address += len as u64;
    }
    Ok(missing)
}

fn write_ehdr(out: &mut Vec<u8>, phnum: u64, extended: bool, shoff: u64) {
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, little endian, EV_CURRENT, SysV ABI
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    out.extend_from_slice(&(if extended { shoff } else { 0 }).to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    out.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    out.extend_from_slice(&(phnum.min(PN_XNUM) as u16).to_le_bytes());
    let (shentsize, shnum) = if extended {
        (SHDR_SIZE as u16, 1u16)
    } else {
        (0, 0)
    };
    out.extend_from_slice(&shentsize.to_le_bytes());
    out.extend_from_slice(&shnum.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
}

#[allow(clippy::too_many_arguments)] // mirrors Elf64_Phdr field for field
fn write_phdr(
    out: &mut Vec<u8>,
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
    align: u64,
) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    for field in [offset, vaddr, 0, file_size, mem_size, align] {
        out.extend_from_slice(&field.to_le_bytes());
    }
}

/// The PT_NOTE contents, in gcore's order: NT_PRPSINFO; per thread NT_PRSTATUS,
/// NT_FPREGSET, NT_X86_XSTATE; then NT_AUXV and NT_FILE.
fn build_notes(process: &CoreProcess) -> Vec<u8> {
    let mut notes = Vec::new();
    push_note(&mut notes, "CORE", NT_PRPSINFO, &prpsinfo(process));
    if let Some(crash) = &process.crash {
        push_note(&mut notes, "CORE", NT_SIGINFO, &siginfo(crash));
    }
    for thread in &process.threads {
        push_note(&mut notes, "CORE", NT_PRSTATUS, &prstatus(process, thread));
        if let Some(fpregs) = &thread.registers.fpregs {
            push_note(&mut notes, "CORE", NT_FPREGSET, fpregs);
        }
        if let Some(xstate) = &thread.registers.xstate {
            push_note(&mut notes, "LINUX", NT_X86_XSTATE as u32, xstate);
        }
    }
    push_note(&mut notes, "CORE", NT_AUXV, &process.auxv);
    push_note(&mut notes, "CORE", NT_FILE, &nt_file(&process.mappings));
    if let Some((monotonic, realtime)) = process.captured {
        let mut desc = monotonic.to_le_bytes().to_vec();
        desc.extend_from_slice(&realtime.to_le_bytes());
        let name = std::str::from_utf8(layoutdump_dump::CAPTURE_NOTE).unwrap_or("LAYOUTDUMP");
        push_note(&mut notes, name, layoutdump_dump::NT_CAPTURE_TIME, &desc);
    }
    notes
}

/// An ELF note: namesz, descsz, type, then name and desc, each padded to 4 bytes.
fn push_note(out: &mut Vec<u8>, name: &str, kind: u32, desc: &[u8]) {
    out.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn put<const N: usize>(buf: &mut [u8], offset: usize, bytes: [u8; N]) {
    buf[offset..offset + N].copy_from_slice(&bytes);
}

/// Copies `text` into a fixed C char array, truncated and always NUL-terminated.
fn put_cstr(buf: &mut [u8], offset: usize, size: usize, text: &str) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(size - 1);
    buf[offset..offset + n].copy_from_slice(&bytes[..n]);
}

/// `struct elf_prpsinfo` (x86_64, 136 bytes).
fn prpsinfo(process: &CoreProcess) -> [u8; PRPSINFO_SIZE] {
    let mut d = [0u8; PRPSINFO_SIZE];
    let state = process.stat.state;
    d[0] = b"RSDTZW".iter().position(|&c| c == state).unwrap_or(0) as u8; // pr_state
    d[1] = if state.is_ascii_graphic() {
        state
    } else {
        b'.'
    }; // pr_sname
    d[2] = u8::from(state == b'Z'); // pr_zomb
    d[3] = process.stat.nice.clamp(-128, 127) as i8 as u8; // pr_nice
    put(&mut d, 8, process.stat.flags.to_le_bytes()); // pr_flag
    put(&mut d, 16, process.status.uid.to_le_bytes());
    put(&mut d, 20, process.status.gid.to_le_bytes());
    put(&mut d, 24, process.pid.to_le_bytes());
    put(&mut d, 28, process.stat.ppid.to_le_bytes());
    put(&mut d, 32, process.stat.pgrp.to_le_bytes());
    put(&mut d, 36, process.stat.session.to_le_bytes());
    put_cstr(&mut d, 40, 16, &process.stat.comm); // pr_fname
    put_cstr(&mut d, 56, 80, &process.cmdline); // pr_psargs
    d
}

/// `siginfo_t` (128 bytes): si_signo, si_errno, si_code, then for fault signals si_addr.
fn siginfo(crash: &crate::CrashSignal) -> [u8; 128] {
    let mut d = [0u8; 128];
    put(&mut d, 0, crash.signal.to_le_bytes());
    put(&mut d, 8, crash.code.to_le_bytes());
    put(&mut d, 16, crash.address.to_le_bytes());
    d
}

/// `struct elf_prstatus` (x86_64, 336 bytes).
fn prstatus(process: &CoreProcess, thread: &CoreThread) -> [u8; PRSTATUS_SIZE] {
    let mut d = [0u8; PRSTATUS_SIZE];
    // pr_cursig names the signal on the crashing thread; 0 when we stopped the process.
    if let Some(crash) = process
        .crash
        .as_ref()
        .filter(|c| c.tid == thread.registers.tid)
    {
        put(&mut d, 0, crash.signal.to_le_bytes()); // pr_info.si_signo
        put(&mut d, 12, (crash.signal as u16).to_le_bytes()); // pr_cursig
    }
    put(&mut d, 16, thread.status.sig_pending.to_le_bytes());
    put(&mut d, 24, thread.status.sig_blocked.to_le_bytes());
    put(&mut d, 32, thread.registers.tid.to_le_bytes());
    put(&mut d, 36, process.stat.ppid.to_le_bytes());
    put(&mut d, 40, process.stat.pgrp.to_le_bytes());
    put(&mut d, 44, process.stat.session.to_le_bytes());
    // pr_utime, pr_stime, pr_cutime, pr_cstime: struct timeval {sec, usec}.
    for (i, ticks) in thread.stat.times.iter().enumerate() {
        let offset = 48 + i * 16;
        put(&mut d, offset, (ticks / USER_HZ).to_le_bytes());
        put(
            &mut d,
            offset + 8,
            ((ticks % USER_HZ) * (1_000_000 / USER_HZ)).to_le_bytes(),
        );
    }
    for (i, reg) in thread.registers.gregs.iter().enumerate() {
        put(&mut d, 112 + i * 8, reg.to_le_bytes());
    }
    put(
        &mut d,
        328,
        i32::from(thread.registers.fpregs.is_some()).to_le_bytes(),
    );
    d
}

/// NT_FILE: count, page size, then {start, end, file offset in pages} per file mapping,
/// then their names, NUL-terminated — the kernel's `fill_files_note` format.
fn nt_file(mappings: &[Mapping]) -> Vec<u8> {
    let files: Vec<&Mapping> = mappings.iter().filter(|m| m.is_file_backed()).collect();
    let mut d = Vec::new();
    d.extend_from_slice(&(files.len() as u64).to_le_bytes());
    d.extend_from_slice(&PAGE_SIZE.to_le_bytes());
    for m in &files {
        for field in [m.start, m.end, m.offset / PAGE_SIZE] {
            d.extend_from_slice(&field.to_le_bytes());
        }
    }
    for m in &files {
        d.extend_from_slice(m.name.as_bytes());
        d.push(0);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps;
    use object::LittleEndian as LE;
    use object::elf::{FileHeader64, PT_LOAD as OBJ_PT_LOAD};
    use object::read::elf::{FileHeader, ProgramHeader};

    /// Memory where every address holds its low byte, except one unreadable page.
    struct FakeMemory {
        hole: u64,
    }

    impl ReadMemory for FakeMemory {
        fn read_at(&self, address: u64, buf: &mut [u8]) -> io::Result<usize> {
            for (i, b) in buf.iter_mut().enumerate() {
                let a = address + i as u64;
                if a / PAGE_SIZE == self.hole / PAGE_SIZE {
                    return if i == 0 {
                        Err(io::ErrorKind::Other.into())
                    } else {
                        Ok(i)
                    };
                }
                *b = a as u8;
            }
            Ok(buf.len())
        }
    }

    fn process(maps_text: &str) -> CoreProcess {
        let mut gregs = [0u64; 27];
        gregs[21] = 0x7f00_0000_1000;
        CoreProcess {
            pid: 42,
            stat: Stat {
                state: b'S',
                comm: "fixture".into(),
                ppid: 1,
                ..Stat::default()
            },
            status: Status::default(),
            cmdline: "fixture --flag".into(),
            auxv: vec![0; 16],
            threads: vec![CoreThread {
                registers: ThreadRegisters {
                    tid: 42,
                    gregs,
                    fpregs: Some(vec![0; 512]),
                    xstate: None,
                },
                stat: Stat::default(),
                status: Status::default(),
            }],
            mappings: maps::parse(maps_text),
            include_readonly: false,
            crash: None,
            captured: Some((5_000_000_000, 1_700_000_000_000_000_000)),
        }
    }

    #[test]
    fn layout_notes_and_segments() {
        let p = process(
            "10000-13000 rw-p 00000000 00:00 0   [heap]\n\
             20000-22000 r-xp 00001000 fe:00 7   /bin/x\n\
             30000-31000 rw-p 00000000 00:00 0\n",
        );
        let mut out = Vec::new();
        let stats = write_core(&mut out, &p, &FakeMemory { hole: 0x11000 }).unwrap();
        assert_eq!(stats.regions, 2);
        assert_eq!(stats.bytes, 0x4000);
        assert_eq!(stats.skipped.len(), 1);
        assert_eq!(
            stats.skipped[0].reason,
            SkipReason::PartlyUnreadable {
                missing_bytes: 0x1000
            }
        );

        let header = FileHeader64::<LE>::parse(&out[..]).unwrap();
        assert_eq!(header.e_type(LE), object::elf::ET_CORE);
        let phdrs = header.program_headers(LE, &out[..]).unwrap();
        assert_eq!(phdrs.len(), 4);
        let heap = &phdrs[1];
        assert_eq!(heap.p_type(LE), OBJ_PT_LOAD);
        assert_eq!(heap.p_flags(LE).0, 6);
        assert_eq!(heap.p_filesz(LE), 0x3000);
        let data = heap.data(LE, &out[..]).unwrap();
        assert_eq!(data[0x10], 0x10);
        assert!(
            data[0x1000..0x2000].iter().all(|&b| b == 0),
            "hole is zero-filled"
        );
        assert_eq!(phdrs[2].p_filesz(LE), 0);
        assert_eq!(phdrs[3].p_offset(LE), heap.p_offset(LE) + 0x3000);

        let mut kinds = Vec::new();
        let mut notes = phdrs[0].notes(LE, &out[..]).unwrap().unwrap();
        while let Some(note) = notes.next().unwrap() {
            kinds.push(note.n_type(LE).0);
            if note.n_type(LE).0 == NT_PRSTATUS {
                let desc = note.desc();
                assert_eq!(desc.len(), PRSTATUS_SIZE);
                assert_eq!(&desc[32..36], &42i32.to_le_bytes());
                assert_eq!(
                    &desc[112 + 21 * 8..112 + 22 * 8],
                    &0x7f00_0000_1000u64.to_le_bytes()
                );
            }
            if note.n_type(LE).0 == NT_FILE {
                let desc = note.desc();
                assert_eq!(&desc[..8], &1u64.to_le_bytes());
                assert_eq!(&desc[32..40], &1u64.to_le_bytes()); // pgoff of /bin/x
                assert!(desc.ends_with(b"/bin/x\0"));
            }
        }
        assert_eq!(
            kinds,
            [
                NT_PRPSINFO,
                NT_PRSTATUS,
                NT_FPREGSET,
                NT_AUXV,
                NT_FILE,
                layoutdump_dump::NT_CAPTURE_TIME
            ]
        );

        // The dump reader reads the capture time back.
        let path = std::env::temp_dir().join(format!("capture-notes-{}.core", std::process::id()));
        std::fs::write(&path, &out).unwrap();
        let dump = layoutdump_dump::Dump::open(&path);
        let _ = std::fs::remove_file(&path);
        let captured = dump.unwrap().captured;
        assert_eq!(captured.monotonic_ns, Some(5_000_000_000));
        assert_eq!(captured.realtime_ns, Some(1_700_000_000_000_000_000));
    }

    #[test]
    fn more_than_65534_segments_use_pn_xnum() {
        let maps: String = (0..0x10000u64)
            .map(|i| {
                format!(
                    "{:x}-{:x} ---p 00000000 00:00 0\n",
                    (i + 1) << 12,
                    (i + 2) << 12
                )
            })
            .collect();
        let mut out = Vec::new();
        write_core(&mut out, &process(&maps), &FakeMemory { hole: 0 }).unwrap();
        let header = FileHeader64::<LE>::parse(&out[..]).unwrap();
        assert_eq!(header.e_phnum.get(LE), 0xffff);
        assert_eq!(header.phnum(LE, &out[..]).unwrap(), 0x10001);
    }
}
