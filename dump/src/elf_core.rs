//! Reads an x86_64 Linux ELF core (kernel or gdb `gcore`) into a `Dump`: PT_LOAD segments
//! as memory, PT_NOTE notes as threads, files, auxv and signal; no DWARF, no file filling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, NoteIterator, ProgramHeader};

use crate::backing::Backing;
use crate::dump::{
    BuildIdOrigin, CrashInfo, Dump, DumpError, DumpFormat, DumpParts, Mapping, Module, Registers,
    Thread,
};
use crate::memory::Memory;
use crate::regions::{Region, RegionMemory, RegionSource};

const MAX_PROGRAM_HEADERS: u32 = 1_000_000;
const MAX_NOTES: usize = 100_000;
const MAX_FILE_MAPPINGS: u64 = 1_000_000;
/// PATH_MAX on Linux: a longer NT_FILE name is corrupt.
const MAX_PATH_LEN: usize = 4096;
const MAX_AUXV_ENTRIES: usize = 4096;

// x86_64 `struct elf_prstatus`: pr_cursig (i16) at 12, pr_pid at 32, pr_reg (27 u64 of
// `user_regs_struct`) at 112.
const PRSTATUS_CURSIG: usize = 12;
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REG: usize = 112;
const USER_REGS_LEN: usize = 27 * 8;
// x86_64 `struct elf_prpsinfo`: pr_pid at 24, pr_fname[16] at 40.
const PRPSINFO_PID: usize = 24;
const PRPSINFO_FNAME: usize = 40;

/// gdb's `gcore` stops a live process with SIGSTOP and records it as each thread's signal:
/// that is the capture, not a crash.
const SIGSTOP: u32 = 19;
const AT_PHDR: u64 = 3;
const AT_ENTRY: u64 = 9;

/// What the notes say, gathered before modules and memory are put together.
#[derive(Default)]
struct Notes {
    threads: Vec<Thread>,
    /// Per thread (same index): the `pr_cursig` of its NT_PRSTATUS.
    cursig: Vec<u16>,
    pid: Option<u32>,
    process_name: Option<String>,
    auxv: Vec<(u64, u64)>,
    files: Vec<(PathBuf, Mapping)>,
    crash: Option<CrashInfo>,
    captured: crate::dump::CaptureTime,
}

/// The note `layoutdump capture` adds to a core: when it was taken, as two little-endian
/// u64s, `CLOCK_MONOTONIC` then `CLOCK_REALTIME` nanoseconds, read while the process was
/// stopped. Kernel cores and gcore do not write it.
pub const CAPTURE_NOTE: &[u8] = b"LAYOUTDUMP";
/// Not a small number: a tool that ignores the owner name will not take it for a CORE note.
pub const NT_CAPTURE_TIME: u32 = 0x4c44_5431;
/// The minidump stream `layoutdump capture` writes with the same 16 bytes (a user stream
/// type: above the format's reserved ones).
pub const MD_CAPTURE_TIME_STREAM: u32 = NT_CAPTURE_TIME;

/// ELF cores: `ET_CORE` files. Other ELF files are named for what they are.
pub(crate) struct ElfCoreReader;

impl crate::reader::DumpReader for ElfCoreReader {
    fn name(&self) -> &'static str {
        "an ELF core file (7f 45 4c 46 \"\\x7fELF\", type ET_CORE)"
    }

    fn sniff(&self, data: &[u8]) -> crate::reader::Sniff {
        use crate::reader::Sniff;
        if !data.starts_with(b"\x7fELF") {
            return Sniff::Other;
        }
        // e_type, little-endian, at offset 16; ET_CORE = 4.
        match data.get(16..18) {
            Some([4, 0]) => Sniff::Dump,
            Some([2, 0]) => Sniff::NotADump("executable"),
            Some([3, 0]) => Sniff::NotADump("shared object or PIE executable"),
            Some([1, 0]) => Sniff::NotADump("relocatable object"),
            _ => Sniff::NotADump("file of unknown type"),
        }
    }

    fn read(&self, path: &Path, data: Backing) -> Result<Dump, DumpError> {
        read(path, data)
    }
}

pub(crate) fn read(path: &Path, data: Backing) -> Result<Dump, DumpError> {
    let bytes: &[u8] = &data;
    let size = bytes.len() as u64;
    let truncated = |what: &str, needed: u64| DumpError::Truncated {
        path: path.to_owned(),
        what: what.to_owned(),
        needed,
        size,
    };
    if bytes.len() < 64 {
        return Err(truncated("ELF header", 64));
    }
    // e_ident: EI_CLASS at 4 (2 = 64-bit), EI_DATA at 5 (1 = little-endian).
    if bytes[4] != elf::ELFCLASS64.0 || bytes[5] != elf::ELFDATA2LSB.0 {
        return Err(DumpError::Unsupported {
            path: path.to_owned(),
            what: "a 32-bit or big-endian ELF core".to_owned(),
        });
    }
    let header = elf::FileHeader64::<LE>::parse(bytes).map_err(|e| DumpError::Malformed {
        path: path.to_owned(),
        what: format!("ELF header ({e})"),
        offset: 0,
    })?;
    let machine = header.e_machine(LE);
    if machine != elf::EM_X86_64 {
        return Err(DumpError::Unsupported {
            path: path.to_owned(),
            what: format!("ELF machine {}", machine.0),
        });
    }
    let phoff = header.e_phoff(LE);
    let phnum = header.phnum(LE, bytes).map_err(|e| DumpError::Malformed {
        path: path.to_owned(),
        what: format!("program header count ({e})"),
        offset: 0x38,
    })?;
    if phnum > MAX_PROGRAM_HEADERS {
        return Err(DumpError::Malformed {
            path: path.to_owned(),
            what: format!("program header count {phnum} (more than {MAX_PROGRAM_HEADERS})"),
            offset: 0x38,
        });
    }
    let phdrs = header.program_headers(LE, bytes).map_err(|_| {
        truncated(
            "program header table",
            phoff.saturating_add(u64::from(phnum) * 56),
        )
    })?;

    let mut warnings = Vec::new();
    let mut regions = Vec::new();
    let mut notes = Notes::default();
    let mut note_count = 0usize;
    for (i, ph) in phdrs.iter().enumerate() {
        let p_type = ph.p_type(LE);
        let offset = ph.p_offset(LE);
        let filesz = ph.p_filesz(LE);
        if p_type == elf::PT_LOAD {
            let vaddr = ph.p_vaddr(LE);
            let len = filesz.min(ph.p_memsz(LE));
            // Bytes past p_filesz were not dumped (gcore and the kernel omit unmodified
            // read-only file pages): leave them unavailable for the file fill, never zero.
            match vaddr.checked_add(len) {
                Some(end) if len > 0 => regions.push(Region {
                    start: vaddr,
                    end,
                    source: RegionSource::Dump { offset },
                    writable: Some(ph.p_flags(LE).0 & elf::PF_W.0 != 0),
                }),
                Some(_) => {}
                None => warnings.push(format!(
                    "program header #{i} (at offset {:#x}): segment at {vaddr:#x} overflows the \
                     address space; ignored",
                    phoff + i as u64 * 56
                )),
            }
        } else if p_type == elf::PT_NOTE {
            let end = offset.saturating_add(filesz);
            let available = bytes
                .get(offset as usize..end.min(size) as usize)
                .unwrap_or(&[]);
            if end > size {
                warnings.push(format!(
                    "the note segment at offset {offset:#x} is cut short by the end of the \
                     file ({size:#x}); notes past it are missing"
                ));
            }
            let align = if ph.p_align(LE) == 8 { 8 } else { 4 };
            read_notes(
                bytes,
                available,
                align,
                &mut notes,
                &mut note_count,
                &mut warnings,
            );
        }
    }

    let (memory, dropped) = RegionMemory::new(data, regions);
    if dropped > 0 {
        warnings.push(format!(
            "the core is truncated: {dropped} bytes of memory segments lie past its end \
             ({size:#x}) and are unavailable"
        ));
    }
    if notes.threads.is_empty() {
        warnings.push("the core has no NT_PRSTATUS note: no threads are known".to_owned());
    }
    // The kernel writes the crashing thread's NT_PRSTATUS first (and so does
    // `layoutdump capture --crash-signal`): NT_SIGINFO itself does not name a thread.
    if let (Some(crash), Some(first)) = (notes.crash.as_mut(), notes.threads.first())
        && crash.tid.is_none()
    {
        crash.tid = Some(first.tid);
    }
    if notes.crash.is_none() {
        // Without NT_SIGINFO, the kernel's pr_cursig on the first thread still names the signal.
        if let (Some(t), Some(&sig)) = (notes.threads.first(), notes.cursig.first())
            && sig != 0
            && u32::from(sig) != SIGSTOP
        {
            notes.crash = Some(CrashInfo {
                signal: Some(u32::from(sig)),
                tid: Some(t.tid),
                fault_addr: None,
            });
        }
    }
    let modules = modules_from_files(&notes.files, &memory);
    let main_module = find_main_module(&modules, &notes.auxv, &mut warnings);
    Ok(Dump::assemble(DumpParts {
        format: DumpFormat::ElfCore,
        path: path.to_owned(),
        pid: notes.pid.or_else(|| notes.threads.first().map(|t| t.tid)),
        process_name: notes.process_name,
        threads: notes.threads,
        modules,
        main_module,
        crash: notes.crash,
        captured: notes.captured,
        warnings,
        memory,
        stacks: Vec::new(),
    }))
}

fn read_notes(
    file: &[u8],
    segment: &[u8],
    align: u64,
    notes: &mut Notes,
    count: &mut usize,
    warnings: &mut Vec<String>,
) {
    let offset_of = |part: &[u8]| (part.as_ptr() as usize).wrapping_sub(file.as_ptr() as usize);
    let Ok(mut iter) = NoteIterator::<elf::FileHeader64<LE>>::new(LE, align, segment) else {
        return;
    };
    loop {
        let note = match iter.next() {
            Ok(Some(note)) => note,
            Ok(None) => break,
            Err(e) => {
                warnings.push(format!(
                    "malformed note in the segment at offset {:#x} ({e}); later notes ignored",
                    offset_of(segment)
                ));
                break;
            }
        };
        *count += 1;
        if *count > MAX_NOTES {
            warnings.push(format!("more than {MAX_NOTES} notes; the rest are ignored"));
            break;
        }
        if note.name() == CAPTURE_NOTE && note.n_type(LE).0 == NT_CAPTURE_TIME {
            let desc = note.desc();
            notes.captured = crate::dump::CaptureTime {
                monotonic_ns: u64_at(desc, 0),
                realtime_ns: u64_at(desc, 8),
            };
            continue;
        }
        if note.name() != b"CORE" {
            continue;
        }
        let desc = note.desc();
        let at = offset_of(desc);
        let n_type = note.n_type(LE);
        let short = |what: &str, need: usize| {
            format!(
                "{what} note at offset {at:#x} has {} bytes, expected at least {need}; ignored",
                desc.len()
            )
        };
        if n_type == elf::NT_PRSTATUS {
            match parse_prstatus(desc) {
                Some((thread, cursig)) => {
                    notes.threads.push(thread);
                    notes.cursig.push(cursig);
                }
                None => warnings.push(short("NT_PRSTATUS", PRSTATUS_REG + USER_REGS_LEN)),
            }
        } else if n_type == elf::NT_PRPSINFO {
            if desc.len() < PRPSINFO_FNAME + 16 {
                warnings.push(short("NT_PRPSINFO", PRPSINFO_FNAME + 16));
                continue;
            }
            notes.pid = u32_at(desc, PRPSINFO_PID);
            notes.process_name = c_string(&desc[PRPSINFO_FNAME..PRPSINFO_FNAME + 16]);
        } else if n_type == elf::NT_SIGINFO {
            // Kernel cores write it once, after the signalled thread's NT_PRSTATUS; gdb
            // writes one per thread, zero for threads with no pending signal.
            if notes.crash.is_none() {
                notes.crash = parse_siginfo(desc, notes.threads.last().map(|t| t.tid));
            }
        } else if n_type == elf::NT_AUXV {
            notes.auxv = desc
                .chunks_exact(16)
                .take(MAX_AUXV_ENTRIES)
                .map(|c| (u64_at(c, 0).unwrap_or(0), u64_at(c, 8).unwrap_or(0)))
                .take_while(|&(key, _)| key != 0)
                .collect();
        } else if n_type == elf::NT_FILE
            && let Err(what) = parse_nt_file(desc, &mut notes.files)
        {
            warnings.push(format!("NT_FILE note at offset {at:#x}: {what}"));
        }
    }
}

fn parse_prstatus(desc: &[u8]) -> Option<(Thread, u16)> {
    let regs = desc.get(PRSTATUS_REG..PRSTATUS_REG + USER_REGS_LEN)?;
    let r = |i: usize| u64_at(regs, i * 8).unwrap_or(0);
    // user_regs_struct order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
    // orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
    let regs = Registers {
        r15: r(0),
        r14: r(1),
        r13: r(2),
        r12: r(3),
        rbp: r(4),
        rbx: r(5),
        r11: r(6),
        r10: r(7),
        r9: r(8),
        r8: r(9),
        rax: r(10),
        rcx: r(11),
        rdx: r(12),
        rsi: r(13),
        rdi: r(14),
        rip: r(16),
        eflags: r(18),
        rsp: r(19),
        fs_base: Some(r(21)),
        gs_base: Some(r(22)),
    };
    let cursig = u16::from_le_bytes([desc[PRSTATUS_CURSIG], desc[PRSTATUS_CURSIG + 1]]);
    let tid = u32_at(desc, PRSTATUS_PID)?;
    Some((
        Thread {
            tid,
            name: None,
            regs,
        },
        cursig,
    ))
}

/// `siginfo_t`: si_signo at 0, si_code at 8, and for fault signals si_addr at 16.
fn parse_siginfo(desc: &[u8], tid: Option<u32>) -> Option<CrashInfo> {
    let signal = u32_at(desc, 0)?;
    if signal == 0 || signal == SIGSTOP {
        return None;
    }
    // SIGILL 4, SIGTRAP 5, SIGBUS 7, SIGFPE 8, SIGSEGV 11 carry an address; for the others
    // offset 16 is the sender's pid/uid.
    let fault_addr = matches!(signal, 4 | 5 | 7 | 8 | 11)
        .then(|| u64_at(desc, 16))
        .flatten();
    Some(CrashInfo {
        signal: Some(signal),
        tid,
        fault_addr,
    })
}

/// NT_FILE: count, page_size, count × (start, end, page offset), then count NUL-terminated
/// names.
fn parse_nt_file(desc: &[u8], files: &mut Vec<(PathBuf, Mapping)>) -> Result<(), String> {
    let count = u64_at(desc, 0).ok_or("shorter than its header")?;
    let page_size = u64_at(desc, 8).ok_or("shorter than its header")?;
    if count > MAX_FILE_MAPPINGS {
        return Err(format!(
            "{count} mappings is more than the limit of {MAX_FILE_MAPPINGS}"
        ));
    }
    if !page_size.is_power_of_two() || page_size > 1 << 30 {
        return Err(format!("page size {page_size:#x} is not a page size"));
    }
    let names_at = 16 + count as usize * 24;
    let names = desc.get(names_at..).ok_or_else(|| {
        format!(
            "{count} mappings need {names_at} bytes, it has {}",
            desc.len()
        )
    })?;
    let mut names = names.split(|&b| b == 0);
    for i in 0..count as usize {
        let entry = 16 + i * 24;
        let (Some(start), Some(end), Some(pgoff)) = (
            u64_at(desc, entry),
            u64_at(desc, entry + 8),
            u64_at(desc, entry + 16),
        ) else {
            break;
        };
        let Some(name) = names.next() else {
            return Err(format!("names end after {i} of {count} mappings"));
        };
        if name.is_empty() || name.len() > MAX_PATH_LEN || start >= end {
            continue;
        }
        let Some(file_offset) = pgoff.checked_mul(page_size) else {
            continue;
        };
        files.push((
            path_from_bytes(name),
            Mapping {
                start,
                end,
                file_offset,
            },
        ));
    }
    Ok(())
}

/// One module per mapped ELF file: NT_FILE lists every file mapping (also locale archives,
/// fonts, shared memory); an ELF image always maps its file offset 0, where its header is.
fn modules_from_files(files: &[(PathBuf, Mapping)], memory: &RegionMemory) -> Vec<Module> {
    let mut index: HashMap<&Path, usize> = HashMap::new();
    let mut modules: Vec<Module> = Vec::new();
    for (path, mapping) in files {
        let i = *index.entry(path.as_path()).or_insert_with(|| {
            modules.push(Module {
                path: path.clone(),
                build_id: None,
                build_id_origin: BuildIdOrigin::Unknown,
                mappings: Vec::new(),
                file: None,
            });
            modules.len() - 1
        });
        modules[i].mappings.push(*mapping);
    }
    modules.retain_mut(|m| {
        m.mappings.sort_by_key(|m| m.start);
        let Some(first) = m.mappings.iter().find(|m| m.file_offset == 0) else {
            return false;
        };
        let mut magic = [0u8; 4];
        if memory.read(first.start, &mut magic).is_ok() {
            return &magic == b"\x7fELF";
        }
        // Header not dumped: ask the file, if it is here; keep the module if it is not.
        match std::fs::File::open(&m.path) {
            Ok(mut f) => {
                use std::io::Read;
                f.read_exact(&mut magic).is_ok() && &magic == b"\x7fELF"
            }
            Err(_) => true,
        }
    });
    modules.sort_by_key(Module::base);
    modules
}

/// The module holding the entry point (AT_ENTRY), else the program headers (AT_PHDR).
fn find_main_module(
    modules: &[Module],
    auxv: &[(u64, u64)],
    warnings: &mut Vec<String>,
) -> Option<usize> {
    for key in [AT_ENTRY, AT_PHDR] {
        if let Some(&(_, addr)) = auxv.iter().find(|(k, _)| *k == key)
            && let Some(i) = modules.iter().position(|m| m.contains(addr))
        {
            return Some(i);
        }
    }
    if modules.is_empty() {
        warnings.push("the core lists no mapped files (NT_FILE): no modules are known".into());
        return None;
    }
    warnings.push(
        "no module holds the entry point (NT_AUXV AT_ENTRY): taking the first mapped file as \
         the main executable"
            .to_owned(),
    );
    Some(0)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn c_string(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    (end > 0).then(|| String::from_utf8_lossy(&b[..end]).into_owned())
}

pub(crate) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a little x86_64 core: ELF header, a PT_NOTE (NT_PRPSINFO, NT_PRSTATUS,
    /// NT_SIGINFO, NT_AUXV, NT_FILE) and one PT_LOAD of 32 bytes at 0x7000_0000.
    pub(crate) fn tiny_core() -> Vec<u8> {
        fn note(out: &mut Vec<u8>, n_type: u32, desc: &[u8]) {
            out.extend_from_slice(&5u32.to_le_bytes());
            out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            out.extend_from_slice(&n_type.to_le_bytes());
            out.extend_from_slice(b"CORE\0\0\0\0");
            out.extend_from_slice(desc);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        let mut notes = Vec::new();
        let mut prpsinfo = vec![0u8; 136];
        prpsinfo[PRPSINFO_PID..PRPSINFO_PID + 4].copy_from_slice(&4242u32.to_le_bytes());
        prpsinfo[PRPSINFO_FNAME..PRPSINFO_FNAME + 5].copy_from_slice(b"tasks");
        note(&mut notes, 3, &prpsinfo);
        let mut prstatus = vec![0u8; 336];
        prstatus[PRSTATUS_PID..PRSTATUS_PID + 4].copy_from_slice(&4243u32.to_le_bytes());
        let mut reg = |i: usize, v: u64| {
            let at = PRSTATUS_REG + i * 8;
            prstatus[at..at + 8].copy_from_slice(&v.to_le_bytes());
        };
        reg(16, 0x40_1000); // rip
        reg(19, 0x7000_0010); // rsp
        reg(21, 0x7fff_1234_5000); // fs_base
        reg(4, 0x7000_0018); // rbp
        note(&mut notes, 1, &prstatus);
        let mut siginfo = vec![0u8; 128];
        siginfo[0..4].copy_from_slice(&11u32.to_le_bytes());
        siginfo[16..24].copy_from_slice(&0xdeadu64.to_le_bytes());
        note(&mut notes, 0x5349_4749, &siginfo);
        let mut auxv = Vec::new();
        for (k, v) in [(9u64, 0x40_1000u64), (0, 0)] {
            auxv.extend_from_slice(&k.to_le_bytes());
            auxv.extend_from_slice(&v.to_le_bytes());
        }
        note(&mut notes, 6, &auxv);
        let mut nt_file = Vec::new();
        for v in [1u64, 4096, 0x40_0000, 0x40_2000, 0] {
            nt_file.extend_from_slice(&v.to_le_bytes());
        }
        nt_file.extend_from_slice(b"/nonexistent/tasks\0");
        note(&mut notes, 0x4649_4c45, &nt_file);

        let phoff = 64u64;
        let notes_off = phoff + 2 * 56;
        let load_off = notes_off + notes.len() as u64;
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // 64-bit
        out[5] = 1; // little-endian
        out[6] = 1; // EV_CURRENT
        out[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
        out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        out[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        let phdr = |out: &mut Vec<u8>,
                    t: u32,
                    flags: u32,
                    off: u64,
                    vaddr: u64,
                    filesz: u64,
                    memsz: u64| {
            for v in [t, flags] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in [off, vaddr, 0, filesz, memsz, 4] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        phdr(&mut out, 4, 0, notes_off, 0, notes.len() as u64, 0);
        phdr(&mut out, 1, 6, load_off, 0x7000_0000, 32, 0x1000);
        out.extend_from_slice(&notes);
        out.extend((0u8..32).collect::<Vec<_>>());
        out
    }

    #[test]
    fn reads_a_synthetic_core() {
        let path = Path::new("synthetic.core");
        let dump = read(path, Backing::Owned(tiny_core())).unwrap();
        assert_eq!(dump.format, DumpFormat::ElfCore);
        assert_eq!(dump.pid, Some(4242));
        assert_eq!(dump.process_name.as_deref(), Some("tasks"));
        assert_eq!(dump.threads.len(), 1);
        let t = &dump.threads[0];
        assert_eq!(t.tid, 4243);
        assert_eq!(t.regs.rip, 0x40_1000);
        assert_eq!(t.regs.rsp, 0x7000_0010);
        assert_eq!(t.regs.rbp, 0x7000_0018);
        assert_eq!(t.regs.fs_base, Some(0x7fff_1234_5000));
        assert_eq!(
            dump.crash,
            Some(CrashInfo {
                signal: Some(11),
                tid: Some(4243),
                fault_addr: Some(0xdead)
            })
        );
        // The file is not on disk, so the module is kept (its header is unknown).
        assert_eq!(dump.modules.len(), 1);
        assert_eq!(
            dump.main_module().unwrap().path,
            Path::new("/nonexistent/tasks")
        );
        assert_eq!(dump.main_module().unwrap().base(), 0x40_0000);
        assert!(
            dump.warnings
                .iter()
                .any(|w| w.contains("not on this machine"))
        );
        let m = dump.memory();
        assert_eq!(
            m.read_u64_le(0x7000_0008).unwrap(),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15])
        );
        // p_memsz is 0x1000 but only 32 bytes were dumped: the rest is unavailable.
        assert!(m.read_u8(0x7000_0020).is_err());
        assert!(m.read(0x7000_001c, &mut [0u8; 8]).is_err());
        // The only writable region holds the thread's stack pointer: no heap.
        assert!(!dump.has_heap());
    }

    #[test]
    fn truncated_cores_fail_cleanly_or_warn() {
        let core = tiny_core();
        // Every prefix must parse or fail with an error, never panic.
        for len in 0..core.len() {
            let _ = read(Path::new("cut.core"), Backing::Owned(core[..len].to_vec()));
        }
        let err = read(Path::new("cut.core"), Backing::Owned(core[..100].to_vec()))
            .err()
            .unwrap();
        assert!(
            matches!(err, DumpError::Truncated { ref what, needed: 176, size: 100, .. } if what == "program header table"),
            "{err}"
        );
        assert!(err.to_string().contains("cut.core"));
        // Cut inside the memory segment: the dump opens, the missing bytes are unavailable.
        let dump = read(
            Path::new("cut.core"),
            Backing::Owned(core[..core.len() - 8].to_vec()),
        )
        .unwrap();
        assert!(
            dump.warnings.iter().any(|w| w.contains("truncated")),
            "{:?}",
            dump.warnings
        );
        assert!(dump.memory().read_u64_le(0x7000_0010).is_ok());
        assert!(dump.memory().read_u64_le(0x7000_0018).is_err());
    }

    #[test]
    fn corrupt_cores_never_panic() {
        let good = tiny_core();
        for at in 0..good.len() {
            for byte in [0xff, 0x80, 0x01] {
                let mut bad = good.clone();
                bad[at] = byte;
                let _ = read(Path::new("bad.core"), Backing::Owned(bad));
            }
        }
    }

    #[test]
    fn corrupt_counts_are_refused_without_allocating() {
        let mut core = tiny_core();
        core[0x38..0x3a].copy_from_slice(&0xfffeu16.to_le_bytes());
        assert!(matches!(
            read(Path::new("x"), Backing::Owned(core)),
            Err(DumpError::Truncated { .. })
        ));
        let mut files = Vec::new();
        let mut desc = Vec::new();
        desc.extend_from_slice(&u64::MAX.to_le_bytes());
        desc.extend_from_slice(&4096u64.to_le_bytes());
        assert!(parse_nt_file(&desc, &mut files).is_err());
        assert!(files.is_empty());
    }
}
