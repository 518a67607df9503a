//! Line information: code address → file:line with inlined frames (`frames.rs` reads
//! them from the name index and the unit holding the code); a DIE's `DW_AT_decl_file`
//! index → file path.

use std::sync::Arc;

use gimli::Reader as _;

use super::units::malformed;
use super::{DebugInfo, DieId, DwarfError, LinkAddr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: Arc<str>,
    pub line: Option<u32>,
}

/// A function (possibly inlined) at an address, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFrame {
    pub function: Option<String>,
    pub location: Option<SourceLocation>,
}

impl DebugInfo {
    /// The source file and line of the code at `addr` (of the innermost inlined call).
    pub fn location_at(&self, addr: LinkAddr) -> Option<SourceLocation> {
        self.frames_at(addr).into_iter().next()?.location
    }

    /// `path` relative to the compilation directory of some unit (the workspace or crate
    /// it was built in), when it lies under one; the longest such directory wins.
    pub fn relative_to_build_dir<'p>(&self, path: &'p str) -> &'p str {
        self.index()
            .comp_dirs()
            .find_map(|d| path.strip_prefix(d).and_then(|r| r.strip_prefix('/')))
            .unwrap_or(path)
    }

    /// The functions at `addr`, innermost (inlined) first, each with its file:line; none
    /// when no function with code ranges holds `addr` (code without debug info, such as
    /// `_start`: addr2line finds nothing there either).
    pub fn frames_at(&self, addr: LinkAddr) -> Vec<InlineFrame> {
        self.indexed_frames(addr).unwrap_or_default()
    }

    /// The path of file number `index` of the line table of `die`'s unit: what
    /// `DW_AT_decl_file` refers to.
    pub fn decl_file(&self, die: DieId, index: u64) -> Result<Option<Arc<str>>, DwarfError> {
        let (unit, _) = self
            .locate(die)
            .ok_or_else(|| malformed(self, die, "offset outside every unit"))?;
        let Some(program) = &unit.line_program else {
            return Ok(None);
        };
        let header = program.header();
        let Some(file) = header.file(index) else {
            return Ok(None);
        };
        let name = self
            .dwarf()
            .attr_string(unit, file.path_name())
            .map_err(|e| malformed(self, die, &e.to_string()))?;
        let mut path = String::new();
        // A crates.io dependency is compiled in its own folder of the registry, and its
        // line table may name files relative to it (`src/async_impl/client.rs`, as
        // reqwest's does): joined, the path says which crate it is. The program's own
        // crates' relative paths are kept relative to the build's folder.
        if let Some(comp_dir) = &unit.comp_dir
            && let Ok(comp_dir) = comp_dir.to_string_lossy()
            && comp_dir.contains("/registry/src/")
            && !file_is_absolute(self, unit, file, header)
        {
            path.push_str(&comp_dir);
            path.push('/');
        }
        if let Some(dir) = file.directory(header)
            && let Ok(dir) = self.dwarf().attr_string(unit, dir)
        {
            path.push_str(&dir.to_string_lossy().unwrap_or_default());
            if !path.is_empty() && !path.ends_with('/') {
                path.push('/');
            }
        }
        path.push_str(&name.to_string_lossy().unwrap_or_default());
        Ok(Some(Arc::from(path)))
    }
}

/// Whether a line table's file entry (its directory, else its name) is an absolute path.
fn file_is_absolute(
    dbg: &DebugInfo,
    unit: &gimli::Unit<super::Reader>,
    file: &gimli::FileEntry<super::Reader>,
    header: &gimli::LineProgramHeader<super::Reader>,
) -> bool {
    let starts_with_slash = |v: gimli::AttributeValue<super::Reader>| {
        dbg.dwarf()
            .attr_string(unit, v)
            .ok()
            .and_then(|s| s.to_string_lossy().ok().map(|s| s.starts_with('/')))
            .unwrap_or(false)
    };
    match file.directory(header) {
        Some(dir) => starts_with_slash(dir),
        None => starts_with_slash(file.path_name()),
    }
}
