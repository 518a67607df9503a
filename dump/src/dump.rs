//! The format-independent model of a crash dump (threads, registers, modules, crash, memory)
//! that every reader produces; `Dump::open` sniffs the format and fills holes from files.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use object::read::elf::NoteIterator;
use object::{LittleEndian, Object, elf};

use crate::backing::Backing;
use crate::binary::image_fill;
use crate::memory::Memory;
use crate::regions::{Region, RegionMemory};

/// A GNU build id is 20 bytes (SHA-1) in practice; anything past this is not a build id.
const MAX_BUILD_ID_LEN: usize = 64;
/// Regions that are neither stacks nor module images must add up to this before a dump is
/// said to hold the heap: crash reporters add small chunks around pointers found on stacks
/// (Crashpad: 1 KiB each), which is not a heap one can walk.
const MIN_HEAP_BYTES: u64 = 4096;
/// At most this many modules get a file mapped to fill their holes.
const MAX_FILE_BACKED_MODULES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    /// An ELF `ET_CORE` file (kernel core, gdb `gcore`).
    ElfCore,
    /// A minidump (`MDMP`), e.g. from minidump-writer, Breakpad or Crashpad.
    Minidump,
}

/// A dump opened and parsed: what every later stage works from.
pub struct Dump {
    pub format: DumpFormat,
    pub path: PathBuf,
    pub pid: Option<u32>,
    /// The process's short name (`comm`), when the dump records it.
    pub process_name: Option<String>,
    pub threads: Vec<Thread>,
    pub modules: Vec<Module>,
    pub crash: Option<CrashInfo>,
    /// When it was taken, where the dump records it.
    pub captured: CaptureTime,
    /// Things a user should know about (missing files, truncation, unverifiable build ids).
    pub warnings: Vec<String>,
    pub(crate) memory: RegionMemory,
    pub(crate) main_module: Option<usize>,
    pub(crate) has_heap: bool,
    /// Per module: the warning that its file was not used, withdrawn if a file is attached
    /// later (`--binary`).
    file_warnings: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub tid: u32,
    pub name: Option<String>,
    pub regs: Registers,
}

/// x86_64 register state of a thread when the dump was taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub eflags: u64,
    /// The thread pointer (glibc's TCB); thread-locals are found from it. ELF cores carry it;
    /// minidumps do not, and the reader recovers it by scanning for the TCB when it can.
    pub fs_base: Option<u64>,
    pub gs_base: Option<u64>,
}

impl Registers {
    /// The register with this DWARF number (System V x86_64 psABI numbering: 0 rax, 1 rdx,
    /// 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8–15 r8–r15, 16 return address = rip,
    /// 49 rflags, 58 fs.base, 59 gs.base).
    pub fn dwarf(&self, register: u16) -> Option<u64> {
        Some(match register {
            0 => self.rax,
            1 => self.rdx,
            2 => self.rcx,
            3 => self.rbx,
            4 => self.rsi,
            5 => self.rdi,
            6 => self.rbp,
            7 => self.rsp,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            15 => self.r15,
            16 => self.rip,
            49 => self.eflags,
            58 => return self.fs_base,
            59 => return self.gs_base,
            _ => return None,
        })
    }
}

/// An executable or shared library mapped into the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The path the dump recorded (it may not exist on this machine, or be a newer build).
    pub path: PathBuf,
    pub build_id: Option<Vec<u8>>,
    pub build_id_origin: BuildIdOrigin,
    /// Sorted by start address.
    pub mappings: Vec<Mapping>,
    /// The file on disk now serving the bytes of this module that the dump lacks.
    pub file: Option<PathBuf>,
}

/// Where a module's build id came from, which says how far it can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildIdOrigin {
    /// Recorded in the dump (its memory or the minidump module record): authoritative.
    Dump,
    /// Read from the file at the recorded path, because the dump lacks the ELF header;
    /// it is what is on disk now, which may be a rebuild.
    File,
    /// No build id is known.
    Unknown,
}

/// A file mapping: runtime `[start, end)` backed by the file from `file_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
}

impl Module {
    /// The lowest mapped address; for an ELF image, where its ELF header is.
    pub fn base(&self) -> u64 {
        self.mappings.iter().map(|m| m.start).min().unwrap_or(0)
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.mappings
            .iter()
            .any(|m| m.start <= addr && addr < m.end)
    }

    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id.as_deref().map(hex)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashInfo {
    pub signal: Option<u32>,
    /// The thread that received the signal.
    pub tid: Option<u32>,
    /// The faulting address, for the signals that have one (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    pub fault_addr: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is not a crash dump: it starts with {found}; expected {expected}",
        path.display()
    )]
    NotADump {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{} is an ELF {kind}, not a core dump: pass a core (from the kernel or gdb's \
         `gcore`) or a minidump, and give a program with --binary",
        path.display()
    )]
    NotACore { path: PathBuf, kind: String },
    #[error(
        "{} is truncated: the {what} needs bytes up to offset {needed:#x}, but the file \
         ends at {size:#x}",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        what: String,
        needed: u64,
        size: u64,
    },
    #[error("{}: malformed {what} at offset {offset:#x}", path.display())]
    Malformed {
        path: PathBuf,
        what: String,
        offset: u64,
    },
    #[error("{}: unsupported dump: {what} (layoutdump reads x86_64 Linux dumps)", path.display())]
    Unsupported { path: PathBuf, what: String },
}

/// What a format reader hands to `Dump::assemble`.
/// When a dump was taken: `layoutdump capture` records both clocks (an ELF note, see
/// `elf_core::NT_CAPTURE_TIME`, or a minidump stream of the same bytes); another
/// writer's minidump records the wall clock in seconds; kernel cores and gcore neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureTime {
    /// `CLOCK_MONOTONIC`, in nanoseconds: the clock `Instant`s and runtimes' timers use.
    pub monotonic_ns: Option<u64>,
    /// `CLOCK_REALTIME`, in nanoseconds since the Unix epoch.
    pub realtime_ns: Option<u64>,
}

pub(crate) struct DumpParts {
    pub format: DumpFormat,
    pub path: PathBuf,
    pub pid: Option<u32>,
    pub process_name: Option<String>,
    pub threads: Vec<Thread>,
    pub modules: Vec<Module>,
    pub main_module: Option<usize>,
    pub crash: Option<CrashInfo>,
    pub captured: CaptureTime,
    pub warnings: Vec<String>,
    pub memory: RegionMemory,
    /// Stack ranges the format records (minidump thread stacks); regions holding a thread's
    /// `rsp` count as stacks too.
    pub stacks: Vec<(u64, u64)>,
}

impl Dump {
    /// Opens a dump, whichever its format, and fills the bytes it lacks from the mapped files
    /// found on disk (the main binary first) whose build ids match: their read-only parts
    /// and RELRO (relocated), never `.data`/`.bss`, whose file bytes are only initial values.
    pub fn open(path: &Path) -> Result<Dump, DumpError> {
        let data = Backing::map(path).map_err(|source| DumpError::Io {
            path: path.to_owned(),
            source,
        })?;
        Dump::from_backing(path, data)
    }

    /// Reads a dump held in memory; `label` names it in messages. The fuzz targets use this
    /// (no file per input); a dump's NT_FILE paths are still looked up on disk.
    pub fn from_bytes(label: &Path, bytes: Vec<u8>) -> Result<Dump, DumpError> {
        Dump::from_backing(label, Backing::Owned(bytes))
    }

    fn from_backing(path: &Path, data: Backing) -> Result<Dump, DumpError> {
        crate::reader::read(path, data)
    }

    /// Builds the dump from a reader's parts: build ids from the dump's own bytes, then file
    /// backing, then the heap verdict.
    pub(crate) fn assemble(parts: DumpParts) -> Dump {
        let mut dump = Dump {
            format: parts.format,
            path: parts.path,
            pid: parts.pid,
            process_name: parts.process_name,
            threads: parts.threads,
            modules: parts.modules,
            crash: parts.crash,
            captured: parts.captured,
            warnings: parts.warnings,
            memory: parts.memory,
            main_module: parts.main_module,
            has_heap: false,
            file_warnings: Vec::new(),
        };
        // Before any file is attached, memory holds only the dump's bytes: a build id read
        // now is what the process had, not what is on disk.
        for module in &mut dump.modules {
            if module.build_id.is_none()
                && let Some(id) = build_id_in_memory(&dump.memory, module.base())
            {
                module.build_id = Some(id);
                module.build_id_origin = BuildIdOrigin::Dump;
            }
        }
        dump.memory.captured_at = dump.captured.monotonic_ns;
        dump.attach_module_files();
        dump.has_heap = compute_has_heap(&dump, &parts.stacks);
        dump
    }

    pub fn memory(&self) -> &dyn Memory {
        &self.memory
    }

    /// The runtime address ranges the dump can serve (its own bytes and file-filled holes),
    /// sorted by address.
    pub fn regions(&self) -> &[Region] {
        self.memory.regions()
    }

    /// The main executable: the module holding the entry point (ELF core), or the first
    /// module (minidump).
    pub fn main_module(&self) -> Option<&Module> {
        self.main_module.and_then(|i| self.modules.get(i))
    }

    pub fn main_module_index(&self) -> Option<usize> {
        self.main_module
    }

    /// False for a stacks-only minidump: true only if the dump holds writable memory beyond
    /// thread stacks and module images (the heap, where tasks live). Without it, tasks cannot
    /// be listed, only threads.
    pub fn has_heap(&self) -> bool {
        self.has_heap
    }

    /// Serves the bytes of module `module_index` that the dump lacks from `path` (e.g. the
    /// `--binary` the user gave), as `open` does, replacing any file attached before and
    /// withdrawing the warning that none matched. Dump bytes still win.
    /// The build id is not checked here: `binary::locate_binary` does that (and `--force`).
    pub fn set_module_file(&mut self, module_index: usize, path: &Path) -> Result<(), DumpError> {
        let Some(module) = self.modules.get(module_index) else {
            return Err(DumpError::Io {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the dump has no module #{module_index}"),
                ),
            });
        };
        let backing = Backing::map(path).map_err(|source| DumpError::Io {
            path: path.to_owned(),
            source,
        })?;
        let fill = image_fill(&backing, &mapping_triples(module));
        self.memory
            .set_module_file(module_index, backing, &fill.ranges, fill.relocations);
        self.modules[module_index].file = Some(path.to_owned());
        for (_, text) in self
            .file_warnings
            .extract_if(.., |(m, _)| *m == module_index)
        {
            self.warnings.retain(|w| *w != text);
        }
        Ok(())
    }

    fn attach_module_files(&mut self) {
        let mut order: Vec<usize> = self.main_module.into_iter().collect();
        order.extend((0..self.modules.len()).filter(|&i| Some(i) != self.main_module));
        order.truncate(MAX_FILE_BACKED_MODULES);
        let mut unverified = Vec::new();
        for index in order {
            let is_main = Some(index) == self.main_module;
            let module = &self.modules[index];
            let Some(path) = existing_path(&module.path) else {
                if is_main {
                    let text = format!(
                        "the main executable {} is not on this machine: code and read-only \
                         data missing from the dump are unavailable; pass --binary",
                        module.path.display()
                    );
                    self.warnings.push(text.clone());
                    self.file_warnings.push((index, text));
                }
                continue;
            };
            let Ok(backing) = Backing::map(&path) else {
                continue;
            };
            let file_id = match object::File::parse(&*backing) {
                Ok(file) => file.build_id().ok().flatten().map(<[u8]>::to_vec),
                Err(_) => continue,
            };
            match (&module.build_id, &file_id) {
                (Some(dump_id), Some(file_id)) if !build_ids_match(dump_id, file_id) => {
                    let text = format!(
                        "not reading {}: its build id {} differs from the dump's {}{}",
                        path.display(),
                        hex(file_id),
                        hex(dump_id),
                        if is_main {
                            "; pass the matching --binary"
                        } else {
                            ""
                        }
                    );
                    self.warnings.push(text.clone());
                    self.file_warnings.push((index, text));
                    continue;
                }
                (None, Some(file_id)) => {
                    unverified.push(module.path.display().to_string());
                    let module = &mut self.modules[index];
                    module.build_id = Some(file_id.clone());
                    module.build_id_origin = BuildIdOrigin::File;
                }
                _ => {}
            }
            let fill = image_fill(&backing, &mapping_triples(&self.modules[index]));
            self.memory
                .add_module_file(index, backing, &fill.ranges, fill.relocations);
            self.modules[index].file = Some(path);
        }
        self.memory.rebuild();
        if !unverified.is_empty() {
            let shown: Vec<_> = unverified.iter().take(3).map(String::as_str).collect();
            self.warnings.push(format!(
                "{} module file(s) used without checking their build id against the dump, \
                 whose copy of their ELF headers is missing: {}{}",
                unverified.len(),
                shown.join(", "),
                if unverified.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ));
        }
    }
}

fn mapping_triples(module: &Module) -> Vec<(u64, u64, u64)> {
    module
        .mappings
        .iter()
        .map(|m| (m.start, m.end, m.file_offset))
        .collect()
}

/// The path to open for a recorded module path: itself, or without the kernel's
/// " (deleted)" suffix (the binary was replaced after the process started; the build-id
/// check decides whether the replacement is the same build).
fn existing_path(recorded: &Path) -> Option<PathBuf> {
    if recorded.is_file() {
        return Some(recorded.to_owned());
    }
    let text = recorded.to_str()?;
    let stripped = Path::new(text.strip_suffix(" (deleted)")?);
    stripped.is_file().then(|| stripped.to_owned())
}

/// Old Breakpad writers truncate ELF build ids to 16 bytes (a GUID); accept that prefix.
pub(crate) fn build_ids_match(dump_id: &[u8], file_id: &[u8]) -> bool {
    dump_id == file_id
        || (dump_id.len() == 16 && file_id.len() > 16 && file_id.starts_with(dump_id))
}

/// The GNU build id of the ELF image whose header is at `base`, from the notes its program
/// headers point at: what the process had mapped.
pub(crate) fn build_id_in_memory(memory: &dyn Memory, base: u64) -> Option<Vec<u8>> {
    let mut header = [0u8; 64];
    memory.read(base, &mut header).ok()?;
    // 64-bit little-endian only; e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().ok()?);
    let phentsize = u16::from_le_bytes([header[0x36], header[0x37]]);
    let phnum = u16::from_le_bytes([header[0x38], header[0x39]]);
    if phentsize != 56 || phnum == 0 || phnum > 512 {
        return None;
    }
    let table = memory
        .read_vec(base.checked_add(phoff)?, u64::from(phnum) * 56, 512 * 56)
        .ok()?;
    let phdrs: Vec<_> = table.chunks_exact(56).map(ProgramHeader::parse).collect();
    // The header's mapping starts at the page of the lowest PT_LOAD.
    let first_load = phdrs
        .iter()
        .filter(|p| p.p_type == 1)
        .map(|p| p.vaddr)
        .min()?;
    let bias = base.wrapping_sub(first_load & !0xfff);
    for note in phdrs.iter().filter(|p| p.p_type == 4) {
        let data = memory
            .read_vec(bias.wrapping_add(note.vaddr), note.filesz, 64 * 1024)
            .ok()?;
        let align = if note.align == 8 { 8u64 } else { 4 };
        let Ok(mut notes) =
            NoteIterator::<elf::FileHeader64<LittleEndian>>::new(LittleEndian, align, &data)
        else {
            continue;
        };
        while let Ok(Some(n)) = notes.next() {
            if n.name() == elf::ELF_NOTE_GNU
                && n.n_type(LittleEndian) == elf::NT_GNU_BUILD_ID
                && !n.desc().is_empty()
                && n.desc().len() <= MAX_BUILD_ID_LEN
            {
                return Some(n.desc().to_vec());
            }
        }
    }
    None
}

/// The fields of an `Elf64_Phdr` read from memory.
struct ProgramHeader {
    p_type: u32,
    vaddr: u64,
    filesz: u64,
    align: u64,
}

impl ProgramHeader {
    fn parse(raw: &[u8]) -> ProgramHeader {
        let u64_at = |o: usize| {
            raw.get(o..o + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        ProgramHeader {
            p_type: raw
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes),
            vaddr: u64_at(0x10),
            filesz: u64_at(0x20),
            align: u64_at(0x30),
        }
    }
}

fn compute_has_heap(dump: &Dump, stacks: &[(u64, u64)]) -> bool {
    let mut heap_bytes = 0u64;
    for region in dump.memory.core_regions() {
        if region.writable == Some(false) {
            continue;
        }
        let overlaps = |s: u64, e: u64| s < region.end && region.start < e;
        let is_stack = dump
            .threads
            .iter()
            .any(|t| region.start <= t.regs.rsp && t.regs.rsp < region.end)
            || stacks.iter().any(|&(s, e)| overlaps(s, e));
        let is_image = dump
            .modules
            .iter()
            .flat_map(|m| &m.mappings)
            .any(|m| overlaps(m.start, m.end));
        if !is_stack && !is_image {
            heap_bytes = heap_bytes.saturating_add(region.end - region.start);
            if heap_bytes >= MIN_HEAP_BYTES {
                return true;
            }
        }
    }
    false
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(crate) fn hex_spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slice::SliceMemory;

    #[test]
    fn open_refuses_non_dumps_with_what_it_saw() {
        let dir = std::env::temp_dir().join(format!("layoutdump-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("notes.txt");
        std::fs::write(&text, b"hello world").unwrap();
        let err = Dump::open(&text).err().unwrap().to_string();
        assert!(err.contains("68 65 6c 6c 6f 20 77 6f"), "{err}");
        assert!(err.contains("MDMP"), "{err}");
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(
            Dump::open(&empty)
                .err()
                .unwrap()
                .to_string()
                .contains("empty")
        );
        let missing = Dump::open(&dir.join("missing")).err().unwrap();
        assert!(matches!(missing, DumpError::Io { .. }));
        let exe = Dump::open(Path::new("/proc/self/exe"));
        assert!(matches!(
            exe,
            Err(DumpError::NotACore { .. } | DumpError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn build_id_is_read_from_an_elf_header_in_memory() {
        // A PIE mapped at 0x5555_0000_0000: header, one PT_LOAD at vaddr 0, one PT_NOTE.
        let base = 0x5555_0000_0000u64;
        let mut image = vec![0u8; 0x200];
        image[..4].copy_from_slice(b"\x7fELF");
        image[4] = 2;
        image[5] = 1;
        image[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        image[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        image[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        let phdr = |t: u32, vaddr: u64, filesz: u64| {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&t.to_le_bytes());
            p[0x10..0x18].copy_from_slice(&vaddr.to_le_bytes());
            p[0x20..0x28].copy_from_slice(&filesz.to_le_bytes());
            p[0x30..0x38].copy_from_slice(&4u64.to_le_bytes());
            p
        };
        image[64..120].copy_from_slice(&phdr(1, 0, 0x200));
        image[120..176].copy_from_slice(&phdr(4, 0x100, 36));
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&20u32.to_le_bytes());
        note.extend_from_slice(&3u32.to_le_bytes());
        note.extend_from_slice(b"GNU\0");
        note.extend((1u8..=20).collect::<Vec<_>>());
        image[0x100..0x100 + note.len()].copy_from_slice(&note);
        let memory = SliceMemory::new().with(base, image);
        let id = build_id_in_memory(&memory, base).unwrap();
        assert_eq!(id, (1u8..=20).collect::<Vec<_>>());
        assert_eq!(build_id_in_memory(&memory, base + 8), None);
    }

    #[test]
    fn registers_by_dwarf_number() {
        let regs = Registers {
            rdx: 1,
            rsp: 7,
            rip: 16,
            fs_base: Some(58),
            ..Registers::default()
        };
        assert_eq!(regs.dwarf(1), Some(1));
        assert_eq!(regs.dwarf(7), Some(7));
        assert_eq!(regs.dwarf(16), Some(16));
        assert_eq!(regs.dwarf(58), Some(58));
        assert_eq!(regs.dwarf(59), None);
        assert_eq!(regs.dwarf(100), None);
    }

    #[test]
    fn truncated_breakpad_build_ids_match_by_prefix() {
        let full: Vec<u8> = (0..20).collect();
        assert!(build_ids_match(&full, &full));
        assert!(build_ids_match(&full[..16], &full));
        assert!(!build_ids_match(&full[..8], &full));
        assert!(!build_ids_match(&full, &full[..16]));
    }
}
