//! The name index: every named type, function and global variable by qualified Rust path
//! (`tokio::runtime::task::core::Header`), and every function's code ranges. Built once per
//! binary, one compilation unit per rayon job, then merged.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::units::{Units, attr_str, die_id};
use super::{DieId, Reader};

#[derive(Default)]
pub struct NameIndex {
    /// Complete type definitions by qualified name; the same type appears once per unit.
    pub types: HashMap<Arc<str>, Vec<DieId>>,
    /// Qualified name of every indexed DIE (types, functions, variables).
    names: HashMap<DieId, Arc<str>>,
    /// Global variables (statics and thread-locals) by qualified name.
    pub variables: Vec<(Arc<str>, DieId)>,
    /// Code ranges `[low, high)` of functions, sorted by `low`.
    functions: Vec<(u64, u64, DieId)>,
}

/// What one unit contributes.
#[derive(Default)]
struct UnitIndex {
    types: Vec<(Arc<str>, DieId)>,
    names: Vec<(DieId, Arc<str>)>,
    variables: Vec<(Arc<str>, DieId)>,
    functions: Vec<(u64, u64, DieId)>,
}

impl NameIndex {
    pub fn build(dwarf: &gimli::Dwarf<Reader>, units: &Units) -> NameIndex {
        let parts: Vec<UnitIndex> = units
            .list
            .par_iter()
            .map(|u| index_unit(dwarf, u).unwrap_or_default())
            .collect();
        let mut index = NameIndex::default();
        for part in parts {
            for (name, die) in part.types {
                index.types.entry(name).or_default().push(die);
            }
            index.names.extend(part.names);
            index.variables.extend(part.variables);
            index.functions.extend(part.functions);
        }
        for dies in index.types.values_mut() {
            dies.sort();
        }
        index.variables.sort();
        index.functions.sort();
        index
    }

    pub fn qualified_name(&self, die: DieId) -> Option<Arc<str>> {
        self.names.get(&die).cloned()
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

    /// Qualified names of all types, for `types` searches and `check` suggestions.
    pub fn type_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.types.keys()
    }
}

/// An open DIE with children: its depth, the path segment it adds (a namespace or type
/// name), and the enclosing function with whether that function had code ranges.
type Scope = (isize, Option<Arc<str>>, Option<(DieId, bool)>);

fn index_unit(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
) -> gimli::Result<UnitIndex> {
    let mut out = UnitIndex::default();
    let mut scopes: Vec<Scope> = Vec::new();
    let mut cursor = unit.entries();
    let mut path = String::new();
    while let Some(entry) = cursor.next_dfs()? {
        let depth = entry.depth();
        while scopes.last().is_some_and(|s| s.0 >= depth) {
            scopes.pop();
        }
        let Some(die) = die_id(unit, entry.offset()) else {
            continue;
        };
        let tag = entry.tag();
        let name = attr_str(dwarf, unit, entry, gimli::DW_AT_name);
        let mut qualify = |name: &str| -> Arc<str> {
            path.clear();
            for seg in scopes.iter().filter_map(|s| s.1.as_deref()) {
                path.push_str(seg);
                path.push_str("::");
            }
            path.push_str(name);
            Arc::from(path.as_str())
        };
        let enclosing_fn = scopes.iter().rev().find_map(|s| s.2);
        let mut segment = None;
        let mut function = None;
        match tag {
            gimli::DW_TAG_namespace => segment = name.clone(),
            gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type
            | gimli::DW_TAG_base_type => {
                if let Some(name) = &name {
                    let q = qualify(name);
                    let declaration = entry.attr_value(gimli::DW_AT_declaration).is_some();
                    if !declaration && enclosing_fn.is_none() {
                        out.types.push((q.clone(), die));
                    }
                    out.names.push((die, q));
                    segment = Some(name.clone());
                }
            }
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type | gimli::DW_TAG_typedef => {
                if let Some(name) = &name {
                    out.names.push((die, name.clone()));
                }
            }
            gimli::DW_TAG_subprogram => {
                if let Some(name) = &name {
                    out.names.push((die, qualify(name)));
                }
                let ranges = record_ranges(dwarf, unit, entry, die, &mut out.functions);
                function = Some((die, ranges));
            }
            gimli::DW_TAG_lexical_block => {
                // A release build may put a function's only code in a lexical block of a
                // subprogram DIE that has no ranges itself: attribute it to that function.
                if let Some((f, false)) = enclosing_fn {
                    record_ranges(dwarf, unit, entry, f, &mut out.functions);
                }
            }
            gimli::DW_TAG_variable if enclosing_fn.is_none() => {
                if let Some(name) = &name
                    && entry.attr_value(gimli::DW_AT_location).is_some()
                {
                    let q = qualify(name);
                    out.names.push((die, q.clone()));
                    out.variables.push((q, die));
                }
            }
            _ => {}
        }
        if entry.has_children() {
            scopes.push((depth, segment, function));
        }
    }
    Ok(out)
}

/// Adds the code ranges of `entry` (low/high pc or a range list) for function `f`;
/// returns whether there were any.
fn record_ranges(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
    f: DieId,
    out: &mut Vec<(u64, u64, DieId)>,
) -> bool {
    let Ok(mut ranges) = dwarf.die_ranges(unit, entry) else {
        return false;
    };
    let mut any = false;
    // A corrupt range list could be endless: cap it.
    for _ in 0..4096 {
        match ranges.next() {
            Ok(Some(r)) if r.begin < r.end && r.begin != 0 => {
                out.push((r.begin, r.end, f));
                any = true;
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    any
}
