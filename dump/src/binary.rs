//! Finds and checks the program a dump ran (build id, load bias, the file carrying DWARF),
//! and reads a binary's own bytes as memory when there is no dump (`FileImageMemory`).

use std::io;
use std::path::{Path, PathBuf};

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::{Object, ObjectSection, SymbolIndex};

use crate::backing::Backing;
use crate::dump::{BuildIdOrigin, Dump, build_ids_match, hex};
use crate::memory::{Memory, MemoryError};
use crate::regions::{apply_relocations, read_spans};

/// Where distributions install separate debug files; searched after the caller's dirs.
pub const SYSTEM_DEBUG_DIR: &str = "/usr/lib/debug";
/// x86_64 Linux maps ELF segments at 4 KiB page granularity.
const PAGE_MASK: u64 = !0xfff;

/// The executable of a dump (or given alone), checked and ready for the DWARF reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryImage {
    /// The executable.
    pub path: PathBuf,
    /// The file carrying DWARF: the executable itself, or its separate debug file.
    pub debug_path: PathBuf,
    pub build_id: Option<Vec<u8>>,
    /// Runtime address minus link-time address: 0 for non-PIE executables and without a dump.
    pub load_bias: u64,
    /// Whether `debug_path` has a `.debug_info` section.
    pub has_dwarf: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{}: the dump names no main executable (no module holds its entry point); pass --binary", dump.display())]
    NoMainModule { dump: PathBuf },
    #[error(
        "the dump's executable {} is not on this machine; pass --binary PATH with the same \
         build",
        recorded.display()
    )]
    Missing { recorded: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not an x86_64 ELF file: {reason}", path.display())]
    NotElf { path: PathBuf, reason: String },
    #[error(
        "{} has build id {file_id}, but the dumped process ran build {dump_id}: its types \
         and addresses would be wrong; pass the matching --binary, or --force to use it anyway",
        path.display()
    )]
    BuildIdMismatch {
        dump_id: String,
        file_id: String,
        path: PathBuf,
    },
}

/// Finds the dump's executable (`override_path`, else the path the dump recorded), refuses
/// it if its build id differs from the dump's unless `force`, computes the load bias, and
/// finds its DWARF (the file itself, or a separate debug file in `debug_dirs`, next to it,
/// or in `/usr/lib/debug`).
///
/// The dump's memory is not changed: when `override_path` is given, the caller should also
/// call `dump.set_module_file(main_index, &image.path)` so code absent from the dump is read
/// from the right file.
pub fn locate_binary(
    dump: &Dump,
    override_path: Option<&Path>,
    debug_dirs: &[PathBuf],
    force: bool,
) -> Result<BinaryImage, BinaryError> {
    let module = dump
        .main_module()
        .ok_or_else(|| BinaryError::NoMainModule {
            dump: dump.path.clone(),
        })?;
    let path = match override_path {
        Some(p) => p.to_owned(),
        None => module
            .file
            .clone()
            .or_else(|| module.path.is_file().then(|| module.path.clone()))
            .ok_or_else(|| BinaryError::Missing {
                recorded: module.path.clone(),
            })?,
    };
    let data = map(&path)?;
    let elf = parse(&path, &data)?;
    let file_id = elf.build_id().ok().flatten().map(<[u8]>::to_vec);
    let mut warnings = Vec::new();
    match (&module.build_id, &file_id) {
        (Some(dump_id), Some(file_id)) if !build_ids_match(dump_id, file_id) => {
            if module.build_id_origin == BuildIdOrigin::Dump && !force {
                return Err(BinaryError::BuildIdMismatch {
                    dump_id: hex(dump_id),
                    file_id: hex(file_id),
                    path,
                });
            }
            warnings.push(format!(
                "{} has build id {}, not {}{}",
                path.display(),
                hex(file_id),
                hex(dump_id),
                if module.build_id_origin == BuildIdOrigin::Dump {
                    " as the dump says: used anyway (--force); expect wrong results"
                } else {
                    " as the file at the recorded path has (the dump does not say which build ran)"
                }
            ));
        }
        (Some(_), None) => warnings.push(format!(
            "{} has no build id: cannot check it is the build the dump ran",
            path.display()
        )),
        (None, _) => warnings.push(
            "the dump records no build id for its executable: cannot check the binary matches"
                .to_owned(),
        ),
        _ => {}
    }
    let load_bias = load_bias(
        &elf,
        module.mappings.iter().map(|m| (m.start, m.file_offset)),
    );
    let (debug_path, has_dwarf) =
        find_debug_file(&path, &elf, file_id.as_deref(), debug_dirs, &mut warnings);
    Ok(BinaryImage {
        path,
        debug_path,
        build_id: file_id,
        load_bias,
        has_dwarf,
        warnings,
    })
}

impl BinaryImage {
    /// A binary on its own, without a dump (`layoutdump check`): load bias 0.
    pub fn open_static(path: &Path, debug_dirs: &[PathBuf]) -> Result<BinaryImage, BinaryError> {
        let data = map(path)?;
        let elf = parse(path, &data)?;
        let build_id = elf.build_id().ok().flatten().map(<[u8]>::to_vec);
        let mut warnings = Vec::new();
        let (debug_path, has_dwarf) =
            find_debug_file(path, &elf, build_id.as_deref(), debug_dirs, &mut warnings);
        Ok(BinaryImage {
            path: path.to_owned(),
            debug_path,
            build_id,
            load_bias: 0,
            has_dwarf,
            warnings,
        })
    }

    /// The executable's own bytes at this image's load bias, relocated.
    pub fn memory(&self) -> Result<FileImageMemory, BinaryError> {
        FileImageMemory::open(&self.path, self.load_bias)
    }

    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id.as_deref().map(hex)
    }
}

fn map(path: &Path) -> Result<Backing, BinaryError> {
    Backing::map(path).map_err(|source| BinaryError::Io {
        path: path.to_owned(),
        source,
    })
}

fn parse<'d>(path: &Path, data: &'d [u8]) -> Result<ElfFile64<'d, LE>, BinaryError> {
    let not_elf = |reason: String| BinaryError::NotElf {
        path: path.to_owned(),
        reason,
    };
    if !data.starts_with(b"\x7fELF") {
        return Err(not_elf("it does not start with \\x7fELF".to_owned()));
    }
    let elf = ElfFile64::<LE>::parse(data).map_err(|e| not_elf(e.to_string()))?;
    let machine = elf.elf_header().e_machine(LE);
    if machine != elf::EM_X86_64 {
        return Err(not_elf(format!("its machine is {}", machine.0)));
    }
    Ok(elf)
}

/// Runtime minus link-time address. `mappings` are the module's (start, file offset): the
/// mapping of a PT_LOAD starts at the page of its `p_vaddr` plus the bias, so the bias is
/// found from the mapping of the same file page (for a PIE, the lowest one: offset 0,
/// vaddr 0). ET_EXEC images are never moved.
fn load_bias(elf: &ElfFile64<'_, LE>, mappings: impl Iterator<Item = (u64, u64)>) -> u64 {
    if elf.elf_header().e_type(LE) == elf::ET_EXEC {
        return 0;
    }
    let loads: Vec<(u64, u64)> = elf
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(LE) == elf::PT_LOAD)
        .map(|p| (p.p_vaddr(LE) & PAGE_MASK, p.p_offset(LE) & PAGE_MASK))
        .collect();
    let Some((start, offset)) = mappings.min_by_key(|&(start, _)| start) else {
        return 0;
    };
    let vaddr = loads
        .iter()
        .find(|&&(_, o)| o == offset)
        .or_else(|| loads.iter().min())
        .map_or(0, |&(v, _)| v);
    start.wrapping_sub(vaddr)
}

/// The file with the DWARF: the binary itself if it has `.debug_info`, else a separate debug
/// file by build id (`DIR/.build-id/ab/cdef….debug`) or by `.gnu_debuglink` name (next to
/// the binary, in its `.debug/`, in DIR, in DIR/<binary's dir>), as gdb looks.
fn find_debug_file(
    path: &Path,
    elf: &ElfFile64<'_, LE>,
    build_id: Option<&[u8]>,
    debug_dirs: &[PathBuf],
    warnings: &mut Vec<String>,
) -> (PathBuf, bool) {
    if has_debug_info(elf) {
        return (path.to_owned(), true);
    }
    let mut dirs: Vec<PathBuf> = debug_dirs.to_vec();
    dirs.push(PathBuf::from(SYSTEM_DEBUG_DIR));
    let mut candidates = Vec::new();
    if let Some(id) = build_id.filter(|id| id.len() >= 2) {
        let id = hex(id);
        for dir in &dirs {
            candidates.push(
                dir.join(".build-id")
                    .join(&id[..2])
                    .join(format!("{}.debug", &id[2..])),
            );
        }
    }
    if let Ok(Some((name, _crc))) = elf.gnu_debuglink() {
        let name = crate::elf_core::path_from_bytes(name);
        let exe_dir = path.parent().unwrap_or(Path::new("."));
        candidates.push(exe_dir.join(&name));
        candidates.push(exe_dir.join(".debug").join(&name));
        for dir in &dirs {
            candidates.push(dir.join(&name));
            if let Ok(abs) = exe_dir.canonicalize()
                && let Ok(relative) = abs.strip_prefix("/")
            {
                candidates.push(dir.join(relative).join(&name));
            }
        }
    }
    for candidate in &candidates {
        if candidate.as_path() == path || !candidate.is_file() {
            continue;
        }
        let Ok(data) = Backing::map(candidate) else {
            continue;
        };
        let Ok(debug) = ElfFile64::<LE>::parse(&*data) else {
            continue;
        };
        let debug_id = debug.build_id().ok().flatten();
        if let (Some(want), Some(got)) = (build_id, debug_id)
            && want != got
        {
            warnings.push(format!(
                "ignoring debug file {}: build id {} is not the binary's {}",
                candidate.display(),
                hex(got),
                hex(want)
            ));
            continue;
        }
        if has_debug_info(&debug) {
            return (candidate.clone(), true);
        }
    }
    let searched: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    warnings.push(format!(
        "{} has no DWARF (.debug_info) and no separate debug file was found{}{}",
        path.display(),
        if searched.is_empty() {
            ""
        } else {
            "; looked for: "
        },
        searched.join(", ")
    ));
    (path.to_owned(), false)
}

fn has_debug_info(elf: &ElfFile64<'_, LE>) -> bool {
    elf.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0)
}

/// A binary file's bytes laid out as the loader would map them, without a process: PT_LOAD
/// segments at `p_vaddr + bias` (`.bss` reads as zeros), with dynamic relocations applied.
///
/// Relocations matter for vtables: in a PIE, a vtable word in `.data.rel.ro` is 0 in the
/// file and becomes `bias + r_addend` (`R_X86_64_RELATIVE`) only when the loader runs.
pub struct FileImageMemory {
    data: Backing,
    /// Sorted by start, non-overlapping.
    segments: Vec<Segment>,
    /// Sorted by runtime address: 8-byte words to overwrite.
    relocations: Vec<(u64, u64)>,
}

struct Segment {
    start: u64,
    end: u64,
    file_offset: u64,
    file_size: u64,
}

impl FileImageMemory {
    pub fn open(path: &Path, load_bias: u64) -> Result<FileImageMemory, BinaryError> {
        let data = map(path)?;
        let (segments, relocations) = {
            let elf = parse(path, &data)?;
            let segments = load_segments(&elf, load_bias, data.len() as u64);
            let relocations = relocations(&elf, load_bias, &segments, &data);
            (segments, relocations)
        };
        Ok(FileImageMemory {
            data,
            segments,
            relocations,
        })
    }

    /// Reads the file's bytes at `addr` (no relocation applied).
    fn read_raw(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        read_spans(
            &self.segments,
            |s| (s.start, s.end),
            addr,
            buf,
            |s, within, out| {
                // Bytes past p_filesz (`.bss`) are zero in a fresh image.
                out.fill(0);
                if within < s.file_size {
                    let n = (s.file_size - within).min(out.len() as u64) as usize;
                    match self.data.bytes_at(s.file_offset + within, n) {
                        Some(bytes) => out[..n].copy_from_slice(bytes),
                        None => return false,
                    }
                }
                true
            },
        )
    }
}

impl Memory for FileImageMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.read_raw(addr, buf)?;
        apply_relocations(&self.relocations, addr, buf);
        Ok(())
    }
}

/// How a dump's holes in one module may be filled from its file.
#[derive(Debug, Default)]
pub(crate) struct ImageFill {
    /// (runtime start, end, file offset): the parts of the module's mappings whose content
    /// is fixed once the loader is done.
    pub ranges: Vec<(u64, u64, u64)>,
    /// (runtime address, value), sorted: the loader's writes over those parts.
    pub relocations: Vec<(u64, u64)>,
}

/// The parts of an image mapped as `mappings` (runtime start, end, file offset) that the
/// file can stand in for: read-only segments, and the RELRO part of the writable one with
/// relocations applied (vtables live there). The rest of a writable segment (`.data`,
/// `.bss`, the loader-zeroed tail of its last file page) is the process's own state: the
/// file only has its initial value, so it stays unavailable. Empty if `data` is not an
/// x86_64 ELF image.
pub(crate) fn image_fill(data: &Backing, mappings: &[(u64, u64, u64)]) -> ImageFill {
    let Ok(elf) = ElfFile64::<LE>::parse(&**data) else {
        return ImageFill::default();
    };
    if elf.elf_header().e_machine(LE) != elf::EM_X86_64 {
        return ImageFill::default();
    }
    let bias = load_bias(
        &elf,
        mappings.iter().map(|&(start, _, offset)| (start, offset)),
    );
    // Link-time ranges whose bytes are the file's (plus relocations).
    let mut fixed: Vec<(u64, u64)> = Vec::new();
    for p in elf.elf_program_headers() {
        let (vaddr, filesz) = (p.p_vaddr(LE), p.p_filesz(LE));
        if p.p_type(LE) == elf::PT_LOAD && p.p_flags(LE).0 & elf::PF_W.0 == 0 {
            // From the start of its first page: those bytes share the page and the file.
            fixed.push((vaddr & PAGE_MASK, vaddr.saturating_add(filesz)));
        } else if p.p_type(LE) == elf::PT_GNU_RELRO {
            fixed.push((vaddr, vaddr.saturating_add(filesz.min(p.p_memsz(LE)))));
        }
    }
    let mut ranges = Vec::new();
    for &(start, end, offset) in mappings {
        for &(a, b) in &fixed {
            let (a, b) = (a.wrapping_add(bias), b.wrapping_add(bias));
            let (s, e) = (start.max(a), end.min(b));
            if s < e {
                ranges.push((s, e, offset + (s - start)));
            }
        }
    }
    let segments = load_segments(&elf, bias, data.len() as u64);
    ImageFill {
        ranges,
        relocations: relocations(&elf, bias, &segments, data),
    }
}

fn load_segments(elf: &ElfFile64<'_, LE>, bias: u64, file_len: u64) -> Vec<Segment> {
    let mut segments: Vec<Segment> = elf
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(LE) == elf::PT_LOAD)
        .filter_map(|p| {
            let start = p.p_vaddr(LE).wrapping_add(bias);
            let memsz = p.p_memsz(LE);
            let offset = p.p_offset(LE);
            let file_size = p
                .p_filesz(LE)
                .min(memsz)
                .min(file_len.saturating_sub(offset));
            Some(Segment {
                start,
                end: start.checked_add(memsz)?,
                file_offset: offset,
                file_size,
            })
        })
        .filter(|s| s.end > s.start)
        .collect();
    segments.sort_by_key(|s| s.start);
    // A malformed file may overlap segments; keep the first of each overlap.
    let mut kept: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments {
        if kept.last().is_none_or(|last| last.end <= s.start) {
            kept.push(s);
        }
    }
    kept
}

/// The words the dynamic loader would write, as (runtime address, value): RELATIVE
/// relocations (RELA and RELR), and absolute/GOT ones against symbols the binary defines.
fn relocations(
    elf: &ElfFile64<'_, LE>,
    bias: u64,
    segments: &[Segment],
    data: &Backing,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let symbols = elf.elf_dynamic_symbol_table();
    for section in elf.elf_section_table().iter() {
        if section.sh_flags(LE).0 & elf::SHF_ALLOC.0 == 0 {
            continue;
        }
        if let Ok(Some((relas, _))) = section.rela(LE, data.as_ref()) {
            for r in relas {
                let at = r.r_offset(LE).wrapping_add(bias);
                let addend = r.r_addend(LE) as u64;
                let r_type = r.r_type(LE, false);
                let value = if r_type == elf::R_X86_64_RELATIVE {
                    Some(bias.wrapping_add(addend))
                } else if r_type == elf::R_X86_64_64
                    || r_type == elf::R_X86_64_GLOB_DAT
                    || r_type == elf::R_X86_64_JUMP_SLOT
                {
                    let index = SymbolIndex(r.r_sym(LE, false) as usize);
                    symbols
                        .symbol(index)
                        .ok()
                        .filter(|s| !s.is_undefined(LE) && s.st_value(LE) != 0)
                        .map(|s| {
                            let addend = if r_type == elf::R_X86_64_64 {
                                addend
                            } else {
                                0
                            };
                            bias.wrapping_add(s.st_value(LE)).wrapping_add(addend)
                        })
                } else {
                    None
                };
                if let Some(value) = value {
                    out.push((at, value));
                }
            }
        } else if let Ok(Some(relrs)) = section.relr(LE, data.as_ref()) {
            // RELR: the addend is the word in the file.
            for offset in relrs {
                let at = offset.wrapping_add(bias);
                if let Some(word) = file_word(segments, data, at) {
                    out.push((at, bias.wrapping_add(word)));
                }
            }
        }
    }
    out.sort_by_key(|&(at, _)| at);
    out.dedup_by_key(|&mut (at, _)| at);
    out
}

fn file_word(segments: &[Segment], data: &Backing, at: u64) -> Option<u64> {
    let i = segments.partition_point(|s| s.end <= at);
    let s = segments.get(i).filter(|s| s.start <= at)?;
    let within = at - s.start;
    if within.checked_add(8)? > s.file_size {
        return None;
    }
    let bytes = data.bytes_at(s.file_offset + within, 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself is an x86_64 ELF (PIE by default on Linux).
    fn this_exe() -> PathBuf {
        std::env::current_exe().unwrap()
    }

    /// (offset, addend) of the first 50 R_X86_64_RELATIVE relocations of each RELA section.
    fn relative_relocations(elf: &ElfFile64<LE>, data: &[u8]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for section in elf.elf_section_table().iter() {
            if let Ok(Some((relas, _))) = section.rela(LE, data) {
                out.extend(
                    relas
                        .iter()
                        .filter(|r| r.r_type(LE, false) == elf::R_X86_64_RELATIVE)
                        .take(50)
                        .map(|r| (r.r_offset(LE), r.r_addend(LE) as u64)),
                );
            }
        }
        out
    }

    #[test]
    fn static_image_reads_the_elf_header_and_resolves_debug_info() {
        let image = BinaryImage::open_static(&this_exe(), &[]).unwrap();
        assert_eq!(image.load_bias, 0);
        let memory = image.memory().unwrap();
        let data = std::fs::read(this_exe()).unwrap();
        let elf = ElfFile64::<LE>::parse(&data[..]).unwrap();
        let first = elf
            .elf_program_headers()
            .iter()
            .filter(|p| p.p_type(LE) == elf::PT_LOAD)
            .map(|p| (p.p_vaddr(LE), p.p_offset(LE)))
            .min()
            .unwrap();
        if first.1 == 0 {
            let mut magic = [0u8; 4];
            memory.read(first.0, &mut magic).unwrap();
            assert_eq!(&magic, b"\x7fELF");
        }
        // Every RELATIVE relocation reads as bias + addend (bias 0 here).
        for (offset, addend) in relative_relocations(&elf, &data) {
            assert_eq!(memory.read_u64_le(offset).unwrap(), addend);
        }
        assert!(memory.read_u8(u64::MAX - 1).is_err());
    }

    #[test]
    fn relocations_follow_the_load_bias() {
        let bias = 0x5555_0000_0000;
        let memory = FileImageMemory::open(&this_exe(), bias).unwrap();
        let data = std::fs::read(this_exe()).unwrap();
        let elf = ElfFile64::<LE>::parse(&data[..]).unwrap();
        let relocations = relative_relocations(&elf, &data);
        for &(offset, addend) in &relocations {
            let at = offset + bias;
            assert_eq!(memory.read_u64_le(at).unwrap(), bias + addend);
            // An unaligned read straddling the word sees the same bytes.
            let mut buf = [0u8; 4];
            memory.read(at + 6, &mut buf).unwrap();
            assert_eq!(buf[..2], (bias + addend).to_le_bytes()[6..]);
        }
        let checked = relocations.len();
        if elf.elf_header().e_type(LE) == elf::ET_DYN {
            assert!(checked > 0, "a PIE test binary has RELATIVE relocations");
        }
    }

    #[test]
    fn load_bias_of_a_pie_is_base_minus_first_vaddr() {
        let data = std::fs::read(this_exe()).unwrap();
        let elf = ElfFile64::<LE>::parse(&data[..]).unwrap();
        if elf.elf_header().e_type(LE) == elf::ET_DYN {
            let mappings = [(0x5600_0000_3000u64, 0x3000u64), (0x5600_0000_0000, 0)];
            assert_eq!(load_bias(&elf, mappings.into_iter()), 0x5600_0000_0000);
        }
    }

    #[test]
    fn non_elf_files_are_refused_by_name() {
        let err = BinaryImage::open_static(Path::new("/proc/self/status"), &[]).unwrap_err();
        assert!(err.to_string().contains("/proc/self/status"), "{err}");
    }
}
