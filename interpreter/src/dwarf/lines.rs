//! Line information: code address → file:line (with inlined frames), through addr2line
//! over the same mapped sections; and a DIE's `DW_AT_decl_file` index → file path.

use std::sync::{Arc, Mutex, OnceLock};

use gimli::Reader as _;

use super::units::malformed;
use super::{DebugInfo, DieId, DwarfError, LinkAddr, Reader};

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

pub struct LineTables {
    spare: Mutex<Option<gimli::Dwarf<Reader>>>,
    context: OnceLock<Option<Mutex<addr2line::Context<Reader>>>>,
}

impl LineTables {
    pub fn new(dwarf: gimli::Dwarf<Reader>) -> Self {
        LineTables {
            spare: Mutex::new(Some(dwarf)),
            context: OnceLock::new(),
        }
    }

    fn context(&self) -> Option<&Mutex<addr2line::Context<Reader>>> {
        self.context
            .get_or_init(|| {
                let dwarf = self.spare.lock().ok()?.take()?;
                addr2line::Context::from_dwarf(dwarf).ok().map(Mutex::new)
            })
            .as_ref()
    }
}

impl DebugInfo {
    /// The source file and line of the code at `addr`.
    pub fn location_at(&self, addr: LinkAddr) -> Option<SourceLocation> {
        let ctx = self.lines.context()?.lock().ok()?;
        let loc = ctx.find_location(addr.0).ok()??;
        Some(SourceLocation {
            file: Arc::from(loc.file?),
            line: loc.line,
        })
    }

    /// `path` relative to the compilation directory of some unit (the workspace or crate
    /// it was built in), when it lies under one; the longest such directory wins.
    pub fn relative_to_build_dir<'p>(&self, path: &'p str) -> &'p str {
        self.index()
            .comp_dirs()
            .find_map(|d| path.strip_prefix(d).and_then(|r| r.strip_prefix('/')))
            .unwrap_or(path)
    }

    /// The functions at `addr`, innermost (inlined) first, each with its file:line.
    pub fn frames_at(&self, addr: LinkAddr) -> Vec<InlineFrame> {
        let Some(ctx) = self.lines.context() else {
            return vec![];
        };
        let Ok(ctx) = ctx.lock() else { return vec![] };
        let Ok(mut frames) = ctx.find_frames(addr.0).skip_all_loads() else {
            return vec![];
        };
        let mut out = Vec::new();
        // Inline depth is bounded by the DWARF, but a corrupt file must not loop forever.
        while let (Ok(Some(f)), true) = (frames.next(), out.len() < 256) {
            out.push(InlineFrame {
                function: f
                    .function
                    .and_then(|n| n.demangle().ok().map(|d| d.into_owned())),
                location: f.location.and_then(|l| {
                    Some(SourceLocation {
                        file: Arc::from(l.file?),
                        line: l.line,
                    })
                }),
            });
        }
        out
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
