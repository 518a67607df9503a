//! The name index: every named type, function and global by qualified Rust path, and every
//! function's code ranges; built in parallel per unit, or read back from `index_cache.rs`.
//! All names live in one arena string, entries are fixed-size records pointing into it.

use std::sync::Arc;

use rayon::prelude::*;

use super::units::{Units, die_id};
use super::{DieId, Reader};

/// A name: a byte range of the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Span {
    pub start: u32,
    pub len: u32,
}

/// A complete type definition: the hash of its name (`name_hash`), the name, the DIE.
pub(super) type TypeEntry = (u64, Span, DieId);

/// The bytes of all names: built in memory, or left in the cache file's mapping (read
/// back without copying; each name is checked to be UTF-8 when it is read).
pub(super) enum Arena {
    Built(String),
    Stored {
        bytes: Box<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        len: usize,
    },
}

impl Arena {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Arena::Built(s) => s.as_bytes(),
            Arena::Stored { bytes, start, len } => (**bytes)
                .as_ref()
                .get(*start..start + len)
                .unwrap_or_default(),
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::Built(String::new())
    }
}

impl PartialEq for Arena {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Arena {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Arena({} bytes)", self.bytes().len())
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
pub struct NameIndex {
    /// Every name of the records below, concatenated.
    pub(super) arena: Arena,
    /// Complete type definitions, sorted by (hash, DIE). Rust emits a type once per unit:
    /// the copies of one name are neighbours.
    pub(super) types: Vec<TypeEntry>,
    /// Qualified name of every indexed DIE (types, functions, variables), sorted by DIE.
    pub(super) names: Vec<(DieId, Span)>,
    /// Global variables (statics and thread-locals), sorted by name.
    pub(super) variables: Vec<(Span, DieId)>,
    /// Code ranges `[low, high)` of functions, sorted by `low`.
    pub(super) functions: Vec<(u64, u64, DieId)>,
    /// The units' compilation directories, each once, longest first (source paths are
    /// shown relative to them; kept here so that a warm run need not parse every unit).
    pub(super) comp_dirs: Vec<Span>,
    /// Paths of the types that implement `Future` or `Stream` by hand (`impl Future for
    /// hyper::proto::h1::dispatch::Dispatcher<…>`), without generic arguments; sorted,
    /// each once. Generic descent steps into these (see `Self::is_future_path`).
    pub(super) futures: Vec<Span>,
}

/// What one unit contributes, with spans into its own arena.
#[derive(Default)]
struct UnitIndex {
    arena: String,
    types: Vec<TypeEntry>,
    names: Vec<(DieId, Span)>,
    variables: Vec<(Span, DieId)>,
    functions: Vec<(u64, u64, DieId)>,
    comp_dir: Option<Span>,
    futures: Vec<Span>,
}

/// A stable 64-bit hash of a name (the cache stores it, so it must not change with a
/// dependency's version): eight bytes at a time, rotate-xor-multiply.
pub(super) fn name_hash(name: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = name.len() as u64;
    let mut chunks = name.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes(c.try_into().unwrap_or_default());
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// The index would need more than 4 GiB of names (u32 offsets): about 20 times the
/// largest binaries seen.
#[derive(Debug)]
pub struct TooLarge;

impl NameIndex {
    /// Indexes every unit, in parallel; `progress` draws `indexing debug info N%` on a
    /// terminal when that takes over a second (a large binary's first run).
    pub fn build(
        dwarf: &gimli::Dwarf<Reader>,
        units: &Units,
        progress: bool,
    ) -> Result<NameIndex, TooLarge> {
        // Started before the units are parsed, so that their parsing counts to the second
        // after which the line appears.
        let shown =
            crate::progress::Progress::new("indexing debug info", units.len() as u64, progress);
        let units = units.all(dwarf);
        let parts: Vec<UnitIndex> = units
            .into_par_iter()
            .map(|u| {
                let part = index_unit(dwarf, u).unwrap_or_default();
                shown.add(1);
                part
            })
            .collect();
        drop(shown);
        let mut index = NameIndex::default();
        let total: usize = parts.iter().map(|p| p.arena.len()).sum();
        if total > u32::MAX as usize {
            return Err(TooLarge);
        }
        let mut arena = String::with_capacity(total);
        let count = |f: fn(&UnitIndex) -> usize| parts.iter().map(f).sum::<usize>();
        index.types.reserve_exact(count(|p| p.types.len()));
        index.names.reserve_exact(count(|p| p.names.len()));
        index.variables.reserve_exact(count(|p| p.variables.len()));
        index.functions.reserve_exact(count(|p| p.functions.len()));
        for part in parts {
            // Fits: the total was checked above.
            let base = arena.len() as u32;
            let shift = |s: Span| Span {
                start: s.start + base,
                len: s.len,
            };
            arena.push_str(&part.arena);
            index
                .types
                .extend(part.types.into_iter().map(|(h, s, d)| (h, shift(s), d)));
            index
                .names
                .extend(part.names.into_iter().map(|(d, s)| (d, shift(s))));
            index
                .variables
                .extend(part.variables.into_iter().map(|(s, d)| (shift(s), d)));
            index.functions.extend(part.functions);
            index.comp_dirs.extend(part.comp_dir.map(shift));
            index.futures.extend(part.futures.into_iter().map(shift));
        }
        // Units are in offset order and DIEs in DFS order within a unit: already sorted
        // unless the units overlap (a corrupt file).
        if !index.names.is_sorted_by_key(|(d, _)| *d) {
            index.names.par_sort_unstable_by_key(|(d, _)| *d);
        }
        index.types.par_sort_unstable_by_key(|(h, _, d)| (*h, *d));
        index.functions.par_sort_unstable();
        index
            .variables
            .sort_unstable_by(|a, b| (span_in(&arena, a.0), a.1).cmp(&(span_in(&arena, b.0), b.1)));
        index.comp_dirs.sort_by(|a, b| {
            let (a, b) = (span_in(&arena, *a), span_in(&arena, *b));
            b.len().cmp(&a.len()).then(a.cmp(b))
        });
        index
            .comp_dirs
            .dedup_by(|a, b| span_in(&arena, *a) == span_in(&arena, *b));
        index
            .futures
            .sort_unstable_by(|a, b| span_in(&arena, *a).cmp(span_in(&arena, *b)));
        index
            .futures
            .dedup_by(|a, b| span_in(&arena, *a) == span_in(&arena, *b));
        index.arena = Arena::Built(arena);
        Ok(index)
    }

    pub(super) fn str(&self, s: Span) -> &str {
        let start = s.start as usize;
        self.arena
            .bytes()
            .get(start..start + s.len as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Whether any complete type is described (not so with line tables only).
    pub fn has_types(&self) -> bool {
        !self.types.is_empty()
    }

    /// The DIEs of the complete definitions named `name`, lowest offset first.
    pub fn types_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = DieId> + 'a {
        let h = name_hash(name);
        let start = self.types.partition_point(|(x, _, _)| *x < h);
        self.types[start..]
            .iter()
            .take_while(move |(x, _, _)| *x == h)
            .filter(move |(_, s, _)| self.str(*s) == name)
            .map(|(_, _, d)| *d)
    }

    pub fn qualified_name(&self, die: DieId) -> Option<Arc<str>> {
        let i = self.names.binary_search_by_key(&die, |(d, _)| *d).ok()?;
        Some(Arc::from(self.str(self.names[i].1)))
    }

    /// Global variables (qualified name, DIE), sorted by name.
    pub fn variables(&self) -> impl Iterator<Item = (&str, DieId)> {
        self.variables.iter().map(|(s, d)| (self.str(*s), *d))
    }

    /// The innermost function containing `addr`: of the ranges that contain it, the one
    /// that starts last (an inner lexical block or a nested function starts after its
    /// parent).
    pub fn function_at(&self, addr: u64) -> Option<DieId> {
        let end = self.functions.partition_point(|(low, _, _)| *low <= addr);
        // Ranges are short and rarely nested deeply: look back a bounded distance.
        self.functions[..end]
            .iter()
            .rev()
            .take(64)
            .find(|(low, high, _)| *low <= addr && addr < *high)
            .map(|f| f.2)
    }

    /// Whether the type at `path` (no generic arguments: `tokio::time::timeout::Timeout`)
    /// implements `Future` or `Stream` with a `poll` of its own.
    pub fn is_future_path(&self, path: &str) -> bool {
        self.futures
            .binary_search_by(|s| self.str(*s).cmp(path))
            .is_ok()
    }

    /// The paths `is_future_path` knows, in order.
    pub fn future_paths(&self) -> impl Iterator<Item = &str> {
        self.futures.iter().map(|s| self.str(*s))
    }

    /// The compilation directories of the units, longest first.
    pub fn comp_dirs(&self) -> impl Iterator<Item = &str> {
        self.comp_dirs.iter().map(|s| self.str(*s))
    }

    /// Qualified names of all types, each once, for `types` searches and `check`
    /// suggestions.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        let mut last: Option<&str> = None;
        self.types.iter().filter_map(move |(_, s, _)| {
            let name = self.str(*s);
            if last == Some(name) {
                return None;
            }
            last = Some(name);
            Some(name)
        })
    }
}

/// The text of a span of a string being built.
fn span_in(arena: &str, s: Span) -> &str {
    let start = s.start as usize;
    arena.get(start..start + s.len as usize).unwrap_or("")
}

/// An open DIE with children: its depth, the path segment it adds (a namespace or type
/// name, as a span of the unit's segment buffer), and the enclosing function with whether
/// that function had code ranges.
type Scope = (isize, Option<Span>, Option<(DieId, bool)>);

/// A string attribute's text, copied into `buf` (made valid UTF-8 if it is not).
fn text_of<'a>(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    value: gimli::AttributeValue<Reader>,
    buf: &'a mut Vec<u8>,
) -> Option<&'a str> {
    use gimli::Reader as _;
    let r = dwarf.attr_string(unit, value).ok()?;
    buf.clear();
    buf.extend_from_slice(&r.to_slice().ok()?);
    if std::str::from_utf8(buf).is_err() {
        *buf = String::from_utf8_lossy(buf).into_owned().into_bytes();
    }
    std::str::from_utf8(buf).ok()
}

fn push(arena: &mut String, text: &str) -> Span {
    let start = arena.len() as u32;
    arena.push_str(text);
    Span {
        start,
        len: text.len() as u32,
    }
}

/// Whether the index wants an entry with this tag, given whether it lies inside a
/// function (and whether that function has code ranges of its own). Everything else —
/// members, parameters, locals, inlined calls, most DIEs of a binary — is skipped
/// without decoding its attributes.
fn wanted(tag: gimli::DwTag, enclosing_fn: Option<(DieId, bool)>) -> bool {
    match tag {
        gimli::DW_TAG_namespace
        | gimli::DW_TAG_structure_type
        | gimli::DW_TAG_union_type
        | gimli::DW_TAG_enumeration_type
        | gimli::DW_TAG_base_type
        | gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_typedef
        | gimli::DW_TAG_subprogram => true,
        gimli::DW_TAG_lexical_block => matches!(enclosing_fn, Some((_, false))),
        gimli::DW_TAG_variable => enclosing_fn.is_none(),
        _ => false,
    }
}

/// The attributes the index reads from a wanted entry.
#[derive(Default)]
struct Attrs {
    name: Option<gimli::AttributeValue<Reader>>,
    linkage_name: Option<gimli::AttributeValue<Reader>>,
    declaration: bool,
    location: bool,
    low_pc: Option<gimli::AttributeValue<Reader>>,
    high_pc: Option<gimli::AttributeValue<Reader>>,
    ranges: Option<gimli::AttributeValue<Reader>>,
}

fn index_unit(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
) -> gimli::Result<UnitIndex> {
    let mut out = UnitIndex::default();
    if let Some(dir) = &unit.comp_dir
        && let Ok(dir) = gimli::Reader::to_string_lossy(dir)
    {
        out.comp_dir = Some(push(&mut out.arena, &dir));
    }
    let mut scopes: Vec<Scope> = Vec::new();
    // Path segments of the open scopes (namespaces and types): a scratch arena.
    let mut segments = String::new();
    let mut name_buf = Vec::new();
    let mut entries = unit.entries_raw(None)?;
    while !entries.is_empty() {
        let depth = entries.next_depth();
        let offset = entries.next_offset();
        let Some(abbrev) = entries.read_abbreviation()? else {
            continue;
        };
        while scopes.last().is_some_and(|s| s.0 >= depth) {
            scopes.pop();
        }
        if scopes.is_empty() {
            segments.clear();
        }
        let tag = abbrev.tag();
        let enclosing_fn = scopes.iter().rev().find_map(|s| s.2);
        let Some(die) = die_id(unit, offset).filter(|_| wanted(tag, enclosing_fn)) else {
            entries.skip_attributes(abbrev.attributes())?;
            if abbrev.has_children() {
                scopes.push((depth, None, None));
            }
            continue;
        };
        let mut attrs = Attrs::default();
        for spec in abbrev.attributes() {
            let attr = entries.read_attribute(*spec)?;
            match attr.name() {
                gimli::DW_AT_name => attrs.name = Some(attr.value()),
                gimli::DW_AT_linkage_name => attrs.linkage_name = Some(attr.value()),
                gimli::DW_AT_declaration => attrs.declaration = true,
                gimli::DW_AT_location => attrs.location = true,
                gimli::DW_AT_low_pc => attrs.low_pc = Some(attr.value()),
                gimli::DW_AT_high_pc => attrs.high_pc = Some(attr.value()),
                gimli::DW_AT_ranges => attrs.ranges = Some(attr.value()),
                _ => {}
            }
        }
        let name = match attrs.name.take() {
            Some(v) => text_of(dwarf, unit, v, &mut name_buf),
            None => None,
        };
        let qualify = |arena: &mut String, name: &str| -> Span {
            let start = arena.len() as u32;
            for seg in scopes.iter().filter_map(|s| s.1) {
                arena.push_str(span_in(&segments, seg));
                arena.push_str("::");
            }
            arena.push_str(name);
            Span {
                start,
                len: arena.len() as u32 - start,
            }
        };
        let mut segment = None;
        let mut function = None;
        match tag {
            gimli::DW_TAG_namespace => segment = name.map(|n| push(&mut segments, n)),
            gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type
            | gimli::DW_TAG_base_type => {
                if let Some(name) = name {
                    let q = qualify(&mut out.arena, name);
                    if !attrs.declaration && enclosing_fn.is_none() {
                        out.types.push((name_hash(span_in(&out.arena, q)), q, die));
                    }
                    out.names.push((die, q));
                    segment = Some(push(&mut segments, name));
                }
            }
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type | gimli::DW_TAG_typedef => {
                if let Some(name) = name {
                    out.names.push((die, push(&mut out.arena, name)));
                }
            }
            gimli::DW_TAG_subprogram => {
                let is_poll = name.is_some_and(is_poll_name);
                if let Some(name) = name {
                    let q = qualify(&mut out.arena, name);
                    out.names.push((die, q));
                }
                // Concrete, abstract (inlined-only) and declared `poll`s all name the
                // type: many futures exist only inlined, with no symbol of their own.
                if is_poll
                    && let Some(v) = attrs.linkage_name.take()
                    && let Some(linkage) = text_of(dwarf, unit, v, &mut name_buf)
                    && let Some(path) = future_impl_path(linkage)
                {
                    out.futures.push(push(&mut out.arena, &path));
                }
                let ranges = record_ranges(dwarf, unit, &attrs, die, &mut out.functions);
                function = Some((die, ranges));
            }
            gimli::DW_TAG_lexical_block => {
                // A release build may put a function's only code in a lexical block of a
                // subprogram DIE that has no ranges itself: attribute it to that function.
                if let Some((f, false)) = enclosing_fn {
                    record_ranges(dwarf, unit, &attrs, f, &mut out.functions);
                }
            }
            gimli::DW_TAG_variable => {
                if let Some(name) = name
                    && attrs.location
                {
                    let q = qualify(&mut out.arena, name);
                    out.names.push((die, q));
                    out.variables.push((q, die));
                }
            }
            _ => {}
        }
        if abbrev.has_children() {
            scopes.push((depth, segment, function));
        }
    }
    Ok(out)
}

/// `poll`, `poll<…>`, `poll_next`, `poll_next<…>`: the DW_AT_name of a `Future::poll` or
/// `Stream::poll_next` (generic ones carry their arguments in the name).
fn is_poll_name(name: &str) -> bool {
    ["poll", "poll_next"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('<'))
    })
}

/// The path of `T` (without generic arguments) when `linkage` is the mangled name of
/// `<T as core::future::future::Future>::poll` or `<T as futures_core::stream::Stream>
/// ::poll_next`. Blanket impls on pointers (`&mut F`, `Pin<P>`, `Box<F>`) are left out:
/// generic descent steps through those as pointers.
pub(super) fn future_impl_path(linkage: &str) -> Option<String> {
    let demangled = format!("{:#}", rustc_demangle::demangle(linkage));
    let body = demangled.strip_prefix('<')?;
    let self_ty = body
        .strip_suffix(" as core::future::future::Future>::poll")
        .or_else(|| body.strip_suffix(" as futures_core::stream::Stream>::poll_next"))?;
    let path = self_ty.split('<').next()?;
    let pointer_like = path.is_empty()
        || path.starts_with(['&', '*', '(', '['])
        || path.starts_with("dyn ")
        || matches!(path, "core::pin::Pin" | "alloc::boxed::Box");
    (!pointer_like).then(|| path.to_string())
}

/// Adds the code ranges of an entry (low/high pc or a range list) for function `f`;
/// returns whether there were any.
fn record_ranges(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    attrs: &Attrs,
    f: DieId,
    out: &mut Vec<(u64, u64, DieId)>,
) -> bool {
    let mut push = |begin: u64, end: u64| {
        let ok = begin < end && begin != 0;
        if ok {
            out.push((begin, end, f));
        }
        ok
    };
    if let Some(r) = attrs.ranges.clone() {
        let Ok(Some(mut list)) = dwarf.attr_ranges(unit, r) else {
            return false;
        };
        let mut any = false;
        // A corrupt range list could be endless: cap it.
        for _ in 0..4096 {
            match list.next() {
                Ok(Some(r)) => any |= push(r.begin, r.end),
                _ => break,
            }
        }
        return any;
    }
    let Some(Ok(Some(low))) = attrs.low_pc.clone().map(|v| dwarf.attr_address(unit, v)) else {
        return false;
    };
    let high = match attrs.high_pc.clone() {
        Some(gimli::AttributeValue::Udata(size)) => low.checked_add(size),
        Some(v) => dwarf.attr_address(unit, v).ok().flatten(),
        None => None,
    };
    high.is_some_and(|high| push(low, high))
}

#[cfg(test)]
mod tests {
    use super::{future_impl_path, is_poll_name};

    #[test]
    fn future_impls_are_named_by_their_self_type() {
        // Legacy mangling, as rustc 1.95 emits it.
        assert_eq!(
            future_impl_path(
                "_ZN87_$LT$tokio..time..timeout..Timeout$LT$T$GT$$u20$as$u20$core..future..future..Future$GT$4poll17h4e9266dc179081b0E"
            )
            .as_deref(),
            Some("tokio::time::timeout::Timeout")
        );
        // A closure inside a poll is not the poll itself.
        assert_eq!(
            future_impl_path(
                "_ZN97_$LT$futures_util..future..join_all..JoinAll$LT$F$GT$$u20$as$u20$core..future..future..Future$GT$4poll28_$u7b$$u7b$closure$u7d$$u7d$17h285651676b80fbdeE"
            ),
            None
        );
        assert!(is_poll_name("poll"));
        assert!(is_poll_name("poll<u8>"));
        assert!(is_poll_name("poll_next"));
        assert!(!is_poll_name("poll_read"));
    }
}
