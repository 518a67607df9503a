//! Compilation units and DIE-level helpers: finding a DIE's unit from its `.debug_info`
//! offset, reading names, type references and locations, and decoding functions and
//! variables. Type decoding is in `types.rs`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use gimli::{AttributeValue, DwAt, Reader as _, UnitOffset};

use super::{DebugInfo, DieId, DwarfError, Function, LinkAddr, Reader, VarLocation, Variable};

/// The compilation units, parsed on first use: a warm run (index from the cache) touches
/// a handful of a large binary's thousands of units, and parsing one (its abbreviations
/// and line-program header) is most of what knowing it costs.
pub struct Units {
    /// Unit headers, in `.debug_info` order.
    headers: Vec<gimli::UnitHeader<Reader>>,
    starts: Vec<usize>,
    parsed: Vec<OnceLock<Option<gimli::Unit<Reader>>>>,
}

impl Units {
    pub fn parse(dwarf: &gimli::Dwarf<Reader>, path: &Path) -> Result<Units, DwarfError> {
        let mut headers = Vec::new();
        let mut iter = dwarf.units();
        loop {
            match iter.next() {
                Ok(Some(h)) if h.debug_info_offset().is_some() => headers.push(h),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    return Err(DwarfError::Malformed {
                        path: path.into(),
                        offset: headers
                            .last()
                            .and_then(|h: &gimli::UnitHeader<Reader>| h.debug_info_offset())
                            .map_or(0, |o| o.0),
                        reason: e.to_string(),
                    });
                }
            }
        }
        let starts: Vec<usize> = headers
            .iter()
            .map(|h| h.debug_info_offset().map_or(0, |o| o.0))
            .collect();
        if !starts.is_sorted() {
            return Err(DwarfError::Malformed {
                path: path.into(),
                offset: 0,
                reason: "compilation units out of order".into(),
            });
        }
        let parsed = headers.iter().map(|_| OnceLock::new()).collect();
        Ok(Units {
            headers,
            starts,
            parsed,
        })
    }

    /// How many units there are.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Unit `i`, parsed now if it was not yet; None if it cannot be parsed.
    fn get(&self, dwarf: &gimli::Dwarf<Reader>, i: usize) -> Option<&gimli::Unit<Reader>> {
        self.parsed
            .get(i)?
            .get_or_init(|| dwarf.unit(self.headers[i].clone()).ok())
            .as_ref()
    }

    /// Every unit that parses, in order, parsed in parallel (the index build).
    pub fn all(&self, dwarf: &gimli::Dwarf<Reader>) -> Vec<&gimli::Unit<Reader>> {
        use rayon::prelude::*;
        (0..self.headers.len())
            .into_par_iter()
            .filter_map(|i| self.get(dwarf, i))
            .collect()
    }

    /// The unit holding `die` and the DIE's offset inside it.
    pub fn locate(
        &self,
        dwarf: &gimli::Dwarf<Reader>,
        die: DieId,
    ) -> Option<(&gimli::Unit<Reader>, UnitOffset)> {
        let i = self
            .starts
            .partition_point(|s| *s <= die.0)
            .checked_sub(1)?;
        let unit = self.get(dwarf, i)?;
        let off = gimli::DebugInfoOffset(die.0).to_unit_offset(&unit.header)?;
        Some((unit, off))
    }
}

pub fn die_id(unit: &gimli::Unit<Reader>, off: UnitOffset) -> Option<DieId> {
    off.to_debug_info_offset(&unit.header).map(|o| DieId(o.0))
}

pub fn attr_str(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
    at: DwAt,
) -> Option<Arc<str>> {
    let value = entry.attr_value(at)?;
    let s = dwarf.attr_string(unit, value).ok()?;
    Some(Arc::from(&*s.to_string_lossy().ok()?))
}

/// A reference attribute (`DW_AT_type`, `DW_AT_specification`, …) as a global DIE id.
pub fn attr_ref(
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
    at: DwAt,
) -> Option<DieId> {
    match entry.attr_value(at)? {
        AttributeValue::UnitRef(off) => die_id(unit, off),
        AttributeValue::DebugInfoRef(off) => Some(DieId(off.0)),
        _ => None,
    }
}

pub fn attr_u64(entry: &gimli::DebuggingInformationEntry<Reader>, at: DwAt) -> Option<u64> {
    let attr = entry.attr(at)?;
    attr.udata_value()
        .or_else(|| attr.sdata_value().map(|v| v as u64))
}

/// Reads the DIE at `die` and calls `f` with its unit and entry.
pub fn with_entry<T>(
    dbg: &DebugInfo,
    die: DieId,
    f: impl FnOnce(
        &gimli::Unit<Reader>,
        &gimli::DebuggingInformationEntry<Reader>,
    ) -> Result<T, DwarfError>,
) -> Result<T, DwarfError> {
    let (unit, off) = dbg
        .locate(die)
        .ok_or_else(|| malformed(dbg, die, "offset outside every unit"))?;
    let entry = unit
        .entry(off)
        .map_err(|e| malformed(dbg, die, &e.to_string()))?;
    f(unit, &entry)
}

pub fn malformed(dbg: &DebugInfo, die: DieId, reason: &str) -> DwarfError {
    DwarfError::Malformed {
        path: dbg.path().into(),
        offset: die.0,
        reason: reason.into(),
    }
}

/// Template type parameters (`DW_TAG_template_type_parameter` children) of a DIE.
pub fn template_params(dbg: &DebugInfo, die: DieId) -> Result<Vec<(Arc<str>, DieId)>, DwarfError> {
    let (unit, off) = dbg
        .locate(die)
        .ok_or_else(|| malformed(dbg, die, "offset outside every unit"))?;
    let mut tree = unit
        .entries_tree(Some(off))
        .map_err(|e| malformed(dbg, die, &e.to_string()))?;
    let root = tree
        .root()
        .map_err(|e| malformed(dbg, die, &e.to_string()))?;
    let mut children = root.children();
    let mut out = Vec::new();
    while let Some(child) = children
        .next()
        .map_err(|e| malformed(dbg, die, &e.to_string()))?
    {
        let e = child.entry();
        if e.tag() == gimli::DW_TAG_template_type_parameter
            && let (Some(name), Some(ty)) = (
                attr_str(dbg.dwarf(), unit, e, gimli::DW_AT_name),
                attr_ref(unit, e, gimli::DW_AT_type),
            )
        {
            out.push((name, ty));
        }
    }
    Ok(out)
}

/// A function DIE with its name and template parameters. rustc puts the parameters on
/// the concrete DIE in most cases, but async-task's `RawTask<F,T,S,M>::run` has them only
/// on the declaration that `DW_AT_specification` points to.
pub fn function(dbg: &DebugInfo, die: DieId) -> Result<Function, DwarfError> {
    let mut current = Some(die);
    let (mut name, mut linkage, mut params) = (None, None, Vec::new());
    // The concrete DIE, its declaration, and an abstract origin: at most a short chain.
    for _ in 0..4 {
        let Some(at) = current else { break };
        if params.is_empty() {
            params = template_params(dbg, at)?;
        }
        let (n, l, next) = with_entry(dbg, at, |unit, e| {
            Ok((
                attr_str(dbg.dwarf(), unit, e, gimli::DW_AT_name),
                attr_str(dbg.dwarf(), unit, e, gimli::DW_AT_linkage_name),
                attr_ref(unit, e, gimli::DW_AT_specification)
                    .or_else(|| attr_ref(unit, e, gimli::DW_AT_abstract_origin)),
            ))
        })?;
        name = name.or_else(|| dbg.index().qualified_name(at)).or(n);
        linkage = linkage.or(l);
        current = next;
    }
    let display = linkage.as_deref().map(|l| Arc::from(symbol_path(l)));
    Ok(Function {
        name: name.unwrap_or_else(|| Arc::from("<unnamed>")),
        path: display,
        die,
        template_params: params,
    })
}

/// A function's path as a user writes it, from its mangled name: demangled, without the
/// hash and generic arguments, with `<Type>::method` and `<Type as Trait>::method` (v0
/// mangling) written `Type::method` as legacy mangling does. E.g.
/// `tokio::runtime::runtime::Runtime::block_on`.
pub fn symbol_path(mangled: &str) -> String {
    let demangled = format!("{:#}", rustc_demangle::demangle(mangled));
    let mut out = String::with_capacity(demangled.len());
    let mut chars = demangled.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // `::<…>` generic arguments: skip the balanced group.
            ':' if out.ends_with(':') && chars.peek() == Some(&'<') => {
                out.pop();
                skip_group(&mut chars);
            }
            // `<Type>::` or `<Type as Trait>::` at a path start: keep `Type`.
            '<' if out.is_empty() || out.ends_with("::") => {
                let inner = take_group(&mut chars);
                let ty = inner.split(" as ").next().unwrap_or(&inner);
                out.push_str(&symbol_path(ty));
            }
            '<' => skip_group_after_open(&mut chars),
            _ => out.push(c),
        }
    }
    out
}

fn skip_group(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    if chars.next() == Some('<') {
        skip_group_after_open(chars);
    }
}

fn skip_group_after_open(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    take_group(chars);
}

/// The text of a `<…>` group whose `<` was just read, without the closing `>`.
fn take_group(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut depth = 1;
    let mut s = String::new();
    for c in chars.by_ref() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        s.push(c);
    }
    s
}

pub fn variable(dbg: &DebugInfo, die: DieId) -> Result<Variable, DwarfError> {
    with_entry(dbg, die, |unit, e| {
        let name = dbg
            .index()
            .qualified_name(die)
            .unwrap_or_else(|| Arc::from("<unnamed>"));
        let linkage_name = attr_str(dbg.dwarf(), unit, e, gimli::DW_AT_linkage_name);
        let location = match e.attr_value(gimli::DW_AT_location) {
            Some(AttributeValue::Exprloc(expr)) => decode_location(expr, unit.encoding()),
            _ => VarLocation::Other,
        };
        let has_symbol = linkage_name
            .as_deref()
            .is_some_and(|n| dbg.symbol(n).is_some());
        Ok(Variable {
            name,
            linkage_name,
            ty: attr_ref(unit, e, gimli::DW_AT_type),
            location,
            has_symbol,
        })
    })
}

/// Recognizes the two location shapes of globals: `DW_OP_addr A` (a static) and
/// `DW_OP_const8u OFF; DW_OP_GNU_push_tls_address` (a thread-local at OFF in the TLS block).
fn decode_location(expr: gimli::Expression<Reader>, encoding: gimli::Encoding) -> VarLocation {
    let mut ops = expr.operations(encoding);
    let mut last_const = None;
    while let Ok(Some(op)) = ops.next() {
        match op {
            gimli::Operation::Address { address } => return VarLocation::Static(LinkAddr(address)),
            gimli::Operation::UnsignedConstant { value } => last_const = Some(value),
            gimli::Operation::TLS => {
                return last_const.map_or(VarLocation::Other, VarLocation::Tls);
            }
            _ => return VarLocation::Other,
        }
    }
    VarLocation::Other
}

#[cfg(test)]
mod tests {
    use super::symbol_path;

    #[test]
    fn symbol_paths_from_both_manglings() {
        // Legacy mangling (what rustc 1.95 uses for crates by default).
        assert_eq!(
            symbol_path("_ZN5tokio7runtime7runtime7Runtime8block_on17h0123456789abcdefE"),
            "tokio::runtime::runtime::Runtime::block_on"
        );
        // v0-style demangled forms (std is built with v0).
        assert_eq!(
            symbol_path("<std::sync::mpmc::context::Context>::with::<u8>"),
            "std::sync::mpmc::context::Context::with"
        );
        assert_eq!(
            symbol_path("<alloc::vec::Vec<u8> as core::ops::drop::Drop>::drop"),
            "alloc::vec::Vec::drop"
        );
    }
}
