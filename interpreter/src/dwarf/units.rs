//! Compilation units and DIE-level helpers: finding a DIE's unit from its `.debug_info`
//! offset, reading names, type references and locations, and decoding functions and
//! variables. Type decoding is in `types.rs`.

use std::path::Path;
use std::sync::Arc;

use gimli::{AttributeValue, DwAt, Reader as _, UnitOffset};

use super::{DebugInfo, DieId, DwarfError, Function, LinkAddr, Reader, VarLocation, Variable};

pub struct Units {
    /// Parsed units, sorted by their start offset in `.debug_info`.
    pub list: Vec<gimli::Unit<Reader>>,
    starts: Vec<usize>,
}

impl Units {
    pub fn parse(dwarf: &gimli::Dwarf<Reader>, path: &Path) -> Result<Units, DwarfError> {
        let mut headers = Vec::new();
        let mut iter = dwarf.units();
        loop {
            match iter.next() {
                Ok(Some(h)) => headers.push(h),
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
        use rayon::prelude::*;
        let mut list: Vec<gimli::Unit<Reader>> = headers
            .into_par_iter()
            .filter_map(|h| dwarf.unit(h).ok())
            .filter(|u| u.header.debug_info_offset().is_some())
            .collect();
        list.sort_by_key(|u| u.header.debug_info_offset().map_or(0, |o| o.0));
        let starts = list
            .iter()
            .map(|u| u.header.debug_info_offset().map_or(0, |o| o.0))
            .collect();
        Ok(Units { list, starts })
    }

    /// The unit holding `die` and the DIE's offset inside it.
    pub fn locate(&self, die: DieId) -> Option<(&gimli::Unit<Reader>, UnitOffset)> {
        let i = self
            .starts
            .partition_point(|s| *s <= die.0)
            .checked_sub(1)?;
        let unit = &self.list[i];
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
        .units()
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
        .units()
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
    let mut current = die;
    let mut name = None;
    let mut params = Vec::new();
    for _ in 0..4 {
        params = template_params(dbg, current)?;
        let (n, next) = with_entry(dbg, current, |unit, e| {
            Ok((
                attr_str(dbg.dwarf(), unit, e, gimli::DW_AT_name),
                attr_ref(unit, e, gimli::DW_AT_specification)
                    .or_else(|| attr_ref(unit, e, gimli::DW_AT_abstract_origin)),
            ))
        })?;
        if name.is_none() {
            name = dbg.index().qualified_name(current).or(n);
        }
        match next {
            Some(next) if params.is_empty() || name.is_none() => current = next,
            _ => break,
        }
    }
    Ok(Function {
        name: name.unwrap_or_else(|| Arc::from("<unnamed>")),
        die,
        template_params: params,
    })
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
