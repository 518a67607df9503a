//! The DWARF model: a binary's debug info, memory-mapped and indexed by qualified Rust name
//! in parallel; types, functions and variables decoded lazily and cached per DIE.

mod frames;
mod index;
mod index_cache;
mod lines;
mod locals;
mod reader;
mod types;
mod units;

pub mod progress;
pub mod sync;
pub mod unwind;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use memmap2::Mmap;
use object::{Object, ObjectSection, ObjectSymbol};

pub use index::NameIndex;
#[doc(hidden)]
pub use index_cache::fuzz_decode as fuzz_index_file;
pub use index_cache::{CacheKey, IndexCache};
pub use lines::SourceLocation;
pub use locals::{FrameRegs, Local};
pub use reader::{Reader, SectionBytes};
pub use types::{BaseKind, Field, Type, TypeKind, Variant, VariantPart};

/// A type, function or variable: the offset of its DIE in `.debug_info`. One binary's
/// offsets only; never mixed with addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DieId(pub usize);

/// Link-time address (as in the ELF file); add the load bias to get a runtime address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkAddr(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ELF file this tool can read: {reason}")]
    NotElf { path: PathBuf, reason: String },
    #[error(
        "{path} has no DWARF debug info (.debug_info is missing): rebuild with `debug = 2` \
         in the profile, or pass a separate debug file with --debug-dir"
    )]
    NoDebugInfo { path: PathBuf },
    #[error("malformed DWARF in {path} at .debug_info offset {offset:#x}: {reason}")]
    Malformed {
        path: PathBuf,
        offset: usize,
        reason: String,
    },
}

/// A function found at an address, with the generic arguments it was instantiated with.
#[derive(Debug, Clone)]
pub struct Function {
    /// Qualified DWARF name (`tokio::runtime::runtime::{impl#0}::block_on<F>`).
    pub name: Arc<str>,
    /// The path as written in source, from the linkage name
    /// (`tokio::runtime::runtime::Runtime::block_on`); None without one.
    pub path: Option<Arc<str>>,
    pub die: DieId,
    pub template_params: Vec<(Arc<str>, DieId)>,
}

/// Where a global variable lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarLocation {
    Static(LinkAddr),
    /// Offset in the module's thread-local block.
    Tls(u64),
    Other,
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub name: Arc<str>,
    pub linkage_name: Option<Arc<str>>,
    pub ty: Option<DieId>,
    pub location: VarLocation,
    /// The symbol table names this variable: the live copy, not a dead duplicate.
    pub has_symbol: bool,
}

/// `PT_TLS` of the main executable: size and alignment of its thread-local block.
#[derive(Debug, Clone, Copy)]
pub struct TlsTemplate {
    pub memsz: u64,
    pub align: u64,
}

/// Debug info of one binary (the executable itself or its separate debug file).
pub struct DebugInfo {
    path: PathBuf,
    dwarf: gimli::Dwarf<Reader>,
    units: units::Units,
    index: NameIndex,
    types: Mutex<HashMap<DieId, Arc<Type>>>,
    symbols: HashMap<Arc<str>, (u64, u64)>,
    vtables: OnceLock<Vec<(u64, DieId)>>,
    tls: Option<TlsTemplate>,
    index_origin: IndexOrigin,
    /// Per-unit line programs for `frames_at`, read on first use.
    line_cache: frames::LineCache,
}

/// Where the name index came from, for `--timings` and the cache's tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOrigin {
    /// Built by walking the DWARF; no cache was asked for.
    Built,
    /// Read from the on-disk cache.
    Cache,
    /// Built, then written to the cache.
    BuiltAndStored,
    /// Built; writing it to the cache failed (the reason).
    BuiltNotStored(String),
}

impl DebugInfo {
    /// Maps `path`, loads its DWARF sections and builds the name index in parallel.
    pub fn load(path: &Path) -> Result<DebugInfo, DwarfError> {
        DebugInfo::load_with(path, None, false)
    }

    /// `load`, reading the name index from `cache` when it holds this binary's, and
    /// writing it there when not; with `progress`, building it draws a progress line on
    /// stderr once it has taken a second.
    pub fn load_with(
        path: &Path,
        cache: Option<&IndexCache>,
        progress: bool,
    ) -> Result<DebugInfo, DwarfError> {
        let file = std::fs::File::open(path).map_err(|source| DwarfError::Io {
            path: path.into(),
            source,
        })?;
        // SAFETY: the map is read-only; a file truncated under us would fault, which is the
        // accepted risk of every mapping debugger (gimli, addr2line do the same).
        let map = unsafe { Mmap::map(&file) }.map_err(|source| DwarfError::Io {
            path: path.into(),
            source,
        })?;
        let map = Arc::new(map);
        let obj = object::File::parse(&map[..]).map_err(|e| DwarfError::NotElf {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if obj.section_by_name(".debug_info").is_none() {
            return Err(DwarfError::NoDebugInfo { path: path.into() });
        }
        let endian = if obj.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let load_section = |id: gimli::SectionId| -> Result<Reader, DwarfError> {
            let bytes = match obj.section_by_name(id.name()) {
                None => SectionBytes::Owned(Arc::from(&[][..])),
                Some(section) => {
                    section_bytes(&map, &section).map_err(|reason| DwarfError::NotElf {
                        path: path.into(),
                        reason,
                    })?
                }
            };
            Ok(gimli::EndianReader::new(bytes, endian))
        };
        let dwarf = gimli::Dwarf::load(load_section)?;
        let units = units::Units::parse(&dwarf, path)?;
        let key = cache.map(|_| {
            use gimli::{Reader as _, Section as _};
            let build_id = obj.build_id().ok().flatten();
            CacheKey::new(path, build_id, dwarf.debug_info.reader().len() as u64)
        });
        let cached = cache.zip(key.as_ref()).and_then(|(c, k)| c.load(k));
        let index_origin;
        let index = match cached {
            Some(index) => {
                index_origin = IndexOrigin::Cache;
                index
            }
            None => {
                let index = NameIndex::build(&dwarf, &units, progress).map_err(|_| {
                    DwarfError::Malformed {
                        path: path.into(),
                        offset: 0,
                        reason: "more than 4 GiB of names: too large for the name index".into(),
                    }
                })?;
                index_origin = match cache.zip(key.as_ref()) {
                    None => IndexOrigin::Built,
                    Some((c, k)) => match c.store(k, &index) {
                        Ok(()) => IndexOrigin::BuiltAndStored,
                        Err(e) => {
                            IndexOrigin::BuiltNotStored(format!("{}: {e}", c.dir().display()))
                        }
                    },
                };
                index
            }
        };
        let symbols = obj
            .symbols()
            .filter_map(|s| Some((Arc::from(s.name().ok()?), (s.address(), s.size()))))
            .collect();
        Ok(DebugInfo {
            path: path.into(),
            tls: tls_template(&obj),
            index_origin,
            line_cache: Default::default(),
            dwarf,
            units,
            index,
            types: Mutex::new(HashMap::new()),
            symbols,
            vtables: OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tls_template(&self) -> Option<TlsTemplate> {
        self.tls
    }

    pub fn index(&self) -> &NameIndex {
        &self.index
    }

    pub fn index_origin(&self) -> &IndexOrigin {
        &self.index_origin
    }

    /// The complete definition of the type with this qualified name, e.g.
    /// `tokio::runtime::task::core::Header`. Rust emits one copy per compilation unit;
    /// any copy with a size will do, they agree.
    /// Whether the debug info describes any type: a binary built with `debug =
    /// "line-tables-only"` or `debug = 1` has functions and lines but no types or
    /// variables, so no layout can read anything in it.
    pub fn has_types(&self) -> bool {
        self.index.has_types()
    }

    pub fn type_named(&self, name: &str) -> Option<DieId> {
        self.index.types_named(name).next()
    }

    /// Whether the type named `name` implements `Future` (or `Stream`) by hand: its path
    /// without generic arguments has a `poll` in the debug info.
    pub fn is_future_type(&self, name: &str) -> bool {
        let path = name.split('<').next().unwrap_or(name);
        self.index.is_future_path(path)
    }

    /// Decodes (once, then from the cache) the type at `id`.
    pub fn ty(&self, id: DieId) -> Result<Arc<Type>, DwarfError> {
        if let Some(t) = crate::sync::lock(&self.types).get(&id) {
            return Ok(t.clone());
        }
        let t = Arc::new(types::decode(self, id)?);
        crate::sync::lock(&self.types).insert(id, t.clone());
        Ok(t)
    }

    /// The innermost function whose code contains `addr`, with its template parameters,
    /// taken from its declaration (`DW_AT_specification`) when the concrete DIE has none.
    pub fn function_at(&self, addr: LinkAddr) -> Option<Function> {
        let die = self.index.function_at(addr.0)?;
        units::function(self, die).ok()
    }

    /// Global variables whose qualified name is `name` or starts with `name::` (the
    /// compiler nests a `thread_local!`'s storage under its name).
    pub fn variables(&self, name: &str) -> Vec<Variable> {
        let prefix = format!("{name}::");
        self.index
            .variables()
            .filter(|(n, _)| *n == name || n.starts_with(&prefix))
            .filter_map(|(_, die)| units::variable(self, die).ok())
            .collect()
    }

    /// The static variable `path`: its link-time address and type. Of several by that
    /// name, the one with a symbol (a definition, not a declaration).
    pub fn static_variable(&self, path: &str) -> Result<(u64, DieId), String> {
        let vars = self.variables(path);
        let chosen = vars
            .iter()
            .filter(|v| matches!(v.location, VarLocation::Static(_)))
            .max_by_key(|v| v.has_symbol);
        match chosen {
            Some(v) => match (v.location, v.ty) {
                (VarLocation::Static(a), Some(ty)) => Ok((a.0, ty)),
                _ => Err(format!("static `{path}` has no type in the debug info")),
            },
            None => Err(format!("no static named `{path}` in the debug info")),
        }
    }

    /// Address and size of a symbol by its (mangled) name.
    pub fn symbol(&self, name: &str) -> Option<(u64, u64)> {
        self.symbols.get(name).copied()
    }

    /// The concrete type behind a `dyn Trait` vtable at link address `addr`. rustc
    /// describes each vtable as a variable `<T as Trait>::{vtable}` whose type has
    /// `DW_AT_containing_type` = `T`; the map from addresses is built on first use.
    pub fn vtable_type(&self, addr: LinkAddr) -> Option<DieId> {
        let map = self.vtables.get_or_init(|| {
            let mut v: Vec<(u64, DieId)> = self
                .index
                .variables()
                .filter(|(n, _)| n.ends_with("::{vtable}"))
                .filter_map(|(_, die)| {
                    let var = units::variable(self, die).ok()?;
                    let VarLocation::Static(at) = var.location else {
                        return None;
                    };
                    let containing = units::with_entry(self, var.ty?, |unit, e| {
                        Ok(units::attr_ref(unit, e, gimli::DW_AT_containing_type))
                    })
                    .ok()??;
                    Some((at.0, containing))
                })
                .collect();
            v.sort();
            v.dedup_by_key(|(a, _)| *a);
            v
        });
        map.binary_search_by_key(&addr.0, |(a, _)| *a)
            .ok()
            .map(|i| map[i].1)
    }

    pub(crate) fn dwarf(&self) -> &gimli::Dwarf<Reader> {
        &self.dwarf
    }

    /// The unit holding `die` (parsed now if it was not yet) and the DIE's offset in it.
    pub(crate) fn locate(&self, die: DieId) -> Option<(&gimli::Unit<Reader>, gimli::UnitOffset)> {
        self.units.locate(&self.dwarf, die)
    }
}

impl From<gimli::Error> for DwarfError {
    fn from(e: gimli::Error) -> Self {
        DwarfError::Malformed {
            path: PathBuf::new(),
            offset: 0,
            reason: e.to_string(),
        }
    }
}

/// The largest ratio of decompressed to compressed size we believe (zlib's bound is 1032).
const MAX_EXPANSION: u64 = 1100;

fn section_bytes(
    map: &Arc<Mmap>,
    section: &object::Section<'_, '_>,
) -> Result<SectionBytes, String> {
    let range = section.compressed_file_range().map_err(|e| e.to_string())?;
    if range.format == object::CompressionFormat::None {
        let start = usize::try_from(range.offset).map_err(|e| e.to_string())?;
        let end =
            start.checked_add(usize::try_from(range.uncompressed_size).map_err(|e| e.to_string())?);
        match end {
            Some(end) if end <= map.len() => Ok(SectionBytes::Mapped {
                map: map.clone(),
                start,
                end,
            }),
            _ => Err(format!(
                "section {} lies outside the file",
                section.name().unwrap_or("?")
            )),
        }
    } else {
        // The header's claimed size is allocated up front: a hostile file claiming 2^60
        // bytes must be refused, not attempted. zlib and zstd cannot expand more than
        // about 1032:1, so a larger claim is a lie.
        if range.uncompressed_size > range.compressed_size.saturating_mul(MAX_EXPANSION) {
            return Err(format!(
                "section {} claims {} bytes when decompressed from {}: more than any \
                 compressor produces",
                section.name().unwrap_or("?"),
                range.uncompressed_size,
                range.compressed_size
            ));
        }
        let data = section.uncompressed_data().map_err(|e| e.to_string())?;
        Ok(SectionBytes::Owned(Arc::from(&*data)))
    }
}

fn tls_template(obj: &object::File<'_>) -> Option<TlsTemplate> {
    use object::read::elf::ProgramHeader as _;
    let object::File::Elf64(elf) = obj else {
        return None;
    };
    let endian = elf.endian();
    elf.elf_program_headers()
        .iter()
        .find(|ph| ph.p_type(endian) == object::elf::PT_TLS)
        .map(|ph| TlsTemplate {
            memsz: ph.p_memsz(endian),
            align: ph.p_align(endian).max(1),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSection};

    /// `fuzz/seeds/tiny.c` built with `gcc -g -O1 -gz=zlib`: every DWARF section compressed.
    const TINY_ZLIB: &[u8] = include_bytes!("../../fuzz/seeds/dwarf_load/seed-tiny-zlib");

    fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{name}.{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn compressed_sections_load() {
        let path = write_temp("tiny-zlib", TINY_ZLIB);
        let dbg = DebugInfo::load(&path).unwrap();
        assert!(dbg.type_named("node").is_some());
        std::fs::remove_file(path).ok();
    }

    /// A compressed section whose header claims 2^60 bytes is refused before anything is
    /// allocated, and the message names the section.
    #[test]
    fn lying_decompressed_size_is_refused() {
        let mut bytes = TINY_ZLIB.to_vec();
        let (offset, _) = object::File::parse(TINY_ZLIB)
            .unwrap()
            .section_by_name(".debug_info")
            .unwrap()
            .file_range()
            .unwrap();
        // Elf64_Chdr: ch_type u32, ch_reserved u32, ch_size u64.
        let at = usize::try_from(offset).unwrap() + 8;
        bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let path = write_temp("tiny-zlib-lying", &bytes);
        let err = DebugInfo::load(&path)
            .err()
            .expect("a lying size must be refused");
        std::fs::remove_file(path).ok();
        let message = err.to_string();
        assert!(message.contains(".debug_info"), "{message}");
        assert!(
            message.contains("claims 1152921504606846976 bytes"),
            "{message}"
        );
    }
}
