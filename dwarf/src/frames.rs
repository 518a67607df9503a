//! Code address → the functions there (inlined calls expanded) with their file:line, from
//! the name index and the one unit that holds the code: its DIE subtree and line program,
//! each read once. Names, paths and lines are made as addr2line makes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gimli::{AttributeValue, Reader as _};

use super::lines::{InlineFrame, SourceLocation};
use super::units::die_id;
use super::{DebugInfo, DieId, LinkAddr, Reader};

/// Inlined calls nest this deep at most; a corrupt file must not recurse further.
const MAX_DEPTH: usize = 256;
/// Entries read while looking for the calls at one address (a large function has
/// thousands; a corrupt one must not loop forever).
const MAX_ENTRIES: usize = 1 << 20;

/// One sequence of a line program: rows `(address, file, line)` for `[start, end)`.
struct Sequence {
    start: u64,
    end: u64,
    rows: Vec<(u64, u64, u32)>,
}

/// What the frames need from a unit, read once: its language and its line program.
pub(super) struct UnitLines {
    language: Option<gimli::DwLang>,
    sequences: Vec<Sequence>,
}

/// Per-unit line information, by the unit's `.debug_info` offset.
#[derive(Default)]
pub(super) struct LineCache(Mutex<HashMap<usize, Arc<UnitLines>>>);

type Unit = gimli::Unit<Reader>;

impl DebugInfo {
    /// The functions at `addr`, innermost (inlined) first, from the index; None when no
    /// indexed function holds `addr`.
    pub(super) fn indexed_frames(&self, addr: LinkAddr) -> Option<Vec<InlineFrame>> {
        let func = self.index().function_at(addr.0)?;
        let (unit, off) = self.locate(func)?;
        let lines = self.unit_lines(unit)?;
        // The physical function, then each inlined call containing `addr`, outermost
        // first: (name, call file, call line).
        let mut chain: Vec<(Option<String>, u64, u64)> = Vec::new();
        let mut entries = unit.entries_at_offset(off).ok()?;
        let root = entries.next_dfs().ok()??;
        let base = root.depth();
        chain.push((self.frame_name(unit, root, lines.language), 0, 0));
        self.inlined_calls(unit, &mut entries, base, addr.0, lines.language, &mut chain);
        let mut out = Vec::with_capacity(chain.len());
        let mut location = lines.location(self, unit, addr.0);
        for (name, call_file, call_line) in chain.into_iter().rev() {
            out.push(InlineFrame {
                function: name,
                location: location.take(),
            });
            // The call site of this inlined function is where its caller is.
            location = (call_file != 0 || call_line != 0).then(|| SourceLocation {
                file: Arc::from(file_path(self, unit, call_file).unwrap_or_default()),
                line: u32::try_from(call_line).ok().filter(|l| *l != 0),
            });
        }
        Some(out)
    }

    /// Walks the subtree of the function `entries` stands on: into lexical blocks that
    /// hold `addr` (or have no ranges), and into the inlined call that holds it, which
    /// is then the only subtree left to search.
    fn inlined_calls(
        &self,
        unit: &Unit,
        entries: &mut gimli::EntriesCursor<'_, Reader>,
        base: isize,
        addr: u64,
        language: Option<gimli::DwLang>,
        chain: &mut Vec<(Option<String>, u64, u64)>,
    ) {
        // Depths relative to the function's DIE (its children are at 1). Leaving the
        // subtree of the last call pushed (`floor`) ends the search; `skip` is the depth
        // of an entry whose subtree is not searched.
        let mut floor: isize = 0;
        let mut skip: Option<isize> = None;
        for _ in 0..MAX_ENTRIES {
            let Ok(Some(entry)) = entries.next_dfs() else {
                return;
            };
            let depth = entry.depth() - base;
            if depth <= floor {
                return;
            }
            match skip {
                Some(d) if depth > d => continue,
                _ => skip = None,
            }
            let has_ranges = entry.attr_value(gimli::DW_AT_low_pc).is_some()
                || entry.attr_value(gimli::DW_AT_ranges).is_some();
            match entry.tag() {
                gimli::DW_TAG_lexical_block
                    if !has_ranges || self.die_contains(unit, entry, LinkAddr(addr)) => {}
                gimli::DW_TAG_inlined_subroutine
                    if self.die_contains(unit, entry, LinkAddr(addr)) =>
                {
                    if chain.len() >= MAX_DEPTH {
                        return;
                    }
                    let file = attr_u64(entry, gimli::DW_AT_call_file);
                    let line = attr_u64(entry, gimli::DW_AT_call_line);
                    chain.push((self.frame_name(unit, entry, language), file, line));
                    floor = depth;
                }
                _ => skip = Some(depth),
            }
        }
    }

    /// A frame's function name: the linkage name demangled (Rust's without its hash),
    /// else the name, following `DW_AT_abstract_origin` / `DW_AT_specification` from an
    /// entry that has neither (a short chain in any sane file: 16 hops at most).
    fn frame_name(
        &self,
        unit: &Unit,
        entry: &gimli::DebuggingInformationEntry<Reader>,
        language: Option<gimli::DwLang>,
    ) -> Option<String> {
        let (mut name, mut next) = self.own_name(unit, entry);
        for _ in 0..16 {
            if let Some(n) = name {
                return Some(demangled(n, language));
            }
            let (unit, off) = self.locate(next?)?;
            (name, next) = self.own_name(unit, &unit.entry(off).ok()?);
        }
        None
    }

    /// An entry's own name (its linkage name if it has one, else its name) and the
    /// entry it refers to for one.
    fn own_name(
        &self,
        unit: &Unit,
        entry: &gimli::DebuggingInformationEntry<Reader>,
    ) -> (Option<String>, Option<DieId>) {
        let text = |v: AttributeValue<Reader>| {
            self.dwarf()
                .attr_string(unit, v)
                .ok()
                .and_then(|s| s.to_string_lossy().ok().map(|s| s.into_owned()))
        };
        let (mut linkage, mut name, mut next) = (None, None, None);
        for (at, value) in attrs(entry) {
            match at {
                gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                    linkage = linkage.or_else(|| text(value));
                }
                gimli::DW_AT_name => name = name.or_else(|| text(value)),
                gimli::DW_AT_abstract_origin | gimli::DW_AT_specification => {
                    next = reference(unit, value);
                }
                _ => {}
            }
        }
        (linkage.or(name), next)
    }

    /// The unit's language and line program, read on first use.
    fn unit_lines(&self, unit: &Unit) -> Option<Arc<UnitLines>> {
        let key = unit.header.debug_info_offset()?.0;
        let cache = &self.line_cache.0;
        if let Some(l) = cache.lock().ok()?.get(&key) {
            return Some(l.clone());
        }
        let lines = Arc::new(read_unit_lines(unit));
        cache.lock().ok()?.insert(key, lines.clone());
        Some(lines)
    }
}

impl UnitLines {
    /// The row for `addr`: the last row at or before it in the sequence holding it.
    fn location(&self, dbg: &DebugInfo, unit: &Unit, addr: u64) -> Option<SourceLocation> {
        let i = self.sequences.partition_point(|s| s.start <= addr);
        let seq = self.sequences[..i]
            .iter()
            .rev()
            .take(16)
            .find(|s| addr < s.end)?;
        let r = seq
            .rows
            .partition_point(|(a, _, _)| *a <= addr)
            .checked_sub(1)?;
        let (_, file, line) = seq.rows[r];
        Some(SourceLocation {
            file: Arc::from(file_path(dbg, unit, file)?),
            line: (line != 0).then_some(line),
        })
    }
}

fn read_unit_lines(unit: &Unit) -> UnitLines {
    let mut language = None;
    let mut cursor = unit.entries();
    if let Ok(Some(root)) = cursor.next_dfs()
        && let Some(AttributeValue::Language(l)) = root.attr_value(gimli::DW_AT_language)
    {
        language = Some(l);
    }
    let mut sequences = Vec::new();
    if let Some(program) = unit.line_program.clone() {
        let mut rows = program.rows();
        let mut current: Vec<(u64, u64, u32)> = Vec::new();
        // A corrupt program could be endless: a unit has at most millions of rows.
        for _ in 0..(1 << 24) {
            let Ok(Some((_, row))) = rows.next_row() else {
                break;
            };
            let address = row.address();
            if row.end_sequence() {
                if let Some(&(start, _, _)) = current.first()
                    && start < address
                {
                    sequences.push(Sequence {
                        start,
                        end: address,
                        rows: std::mem::take(&mut current),
                    });
                }
                current.clear();
                continue;
            }
            let line = row
                .line()
                .map_or(0, |l| u32::try_from(l.get()).unwrap_or(0));
            // Rows at one address: the last one stands (as addr2line keeps it).
            match current.last_mut() {
                Some(last) if last.0 == address => *last = (address, row.file_index(), line),
                _ => current.push((address, row.file_index(), line)),
            }
        }
    }
    sequences.sort_by_key(|s| s.start);
    UnitLines {
        language,
        sequences,
    }
}

/// File `index` of the unit's line program as a path: the compilation directory, then
/// the file's directory (unless it is entry 0, which is that same directory), then its
/// name; an absolute part replaces what came before.
fn file_path(dbg: &DebugInfo, unit: &Unit, index: u64) -> Option<String> {
    let program = unit.line_program.as_ref()?;
    let header = program.header();
    let file = header.file(index)?;
    let text = |v: AttributeValue<Reader>| {
        dbg.dwarf()
            .attr_string(unit, v)
            .ok()
            .and_then(|s| s.to_string_lossy().ok().map(|s| s.into_owned()))
    };
    let mut path = unit
        .comp_dir
        .as_ref()
        .and_then(|d| d.to_string_lossy().ok().map(|d| d.into_owned()))
        .unwrap_or_default();
    if file.directory_index() != 0
        && let Some(dir) = file.directory(header).and_then(text)
    {
        push_path(&mut path, &dir);
    }
    push_path(&mut path, &text(file.path_name())?);
    Some(path)
}

fn push_path(path: &mut String, part: &str) {
    let absolute = |p: &str| p.starts_with('/') || p.starts_with('\\') || p.get(1..3) == Some(":/");
    if absolute(part) || part.get(1..3) == Some(":\\") {
        *path = part.to_string();
        return;
    }
    let windows = path.starts_with('\\') || path.get(1..3) == Some(":\\");
    let sep = if windows { '\\' } else { '/' };
    if !path.is_empty() && !path.ends_with(sep) {
        path.push(sep);
    }
    path.push_str(part);
}

fn demangled(name: String, language: Option<gimli::DwLang>) -> String {
    addr2line::demangle_auto(name.into(), language).into_owned()
}

fn attrs(
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> impl Iterator<Item = (gimli::DwAt, AttributeValue<Reader>)> + '_ {
    entry.attrs().iter().map(|a| (a.name(), a.value()))
}

fn attr_u64(entry: &gimli::DebuggingInformationEntry<Reader>, at: gimli::DwAt) -> u64 {
    entry.attr(at).and_then(|a| a.udata_value()).unwrap_or(0)
}

fn reference(unit: &Unit, value: AttributeValue<Reader>) -> Option<DieId> {
    match value {
        AttributeValue::UnitRef(off) => die_id(unit, off),
        AttributeValue::DebugInfoRef(off) => Some(DieId(off.0)),
        _ => None,
    }
}
