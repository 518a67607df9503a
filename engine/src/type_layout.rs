//! `layoutdump types`: a `ptype` for Rust. Finds types by name in a binary's DWARF and
//! prints their size, fields with offsets and types, and enum variants with their tags
//! and declaration lines (for an async fn: the line of each await).

use std::fmt::Write as _;

use crate::dwarf::{DebugInfo, TypeKind};

/// Types whose qualified name contains `pattern` (or every word of it), at most `max`:
/// an exact match first, then names starting with the pattern, shorter names first.
pub fn describe_types(dbg: &DebugInfo, pattern: &str, max: usize) -> (String, usize) {
    let parts: Vec<&str> = pattern.split_whitespace().collect();
    let mut names: Vec<_> = dbg
        .index()
        .type_names()
        .filter(|n| parts.iter().all(|p| n.contains(p)))
        .collect();
    // The exact name first, then names that start with the pattern, then shorter ones.
    let first = parts.first().copied().unwrap_or("");
    names.sort_by_key(|n| (*n != pattern, !n.starts_with(first), n.len(), *n));
    names.dedup();
    let total = names.len();
    // Types named by the pattern (it, its instantiations, its members' types) are shown
    // in full; types that only contain it (`Option<my::Task>`, `(u64, my::Task)`) are
    // named, after them: an author looking for a layout reads the first.
    let (own, containing): (Vec<&str>, Vec<&str>) =
        names.into_iter().partition(|n| names_itself(n, first));
    let shown_containing = max.saturating_sub(own.len().min(max));
    let mut out = String::new();
    describe_each(dbg, own.iter().copied().take(max), &mut out);
    if shown_containing > 0 && !containing.is_empty() {
        let _ = writeln!(
            out,
            "types that contain it (give one's full name to see its layout):"
        );
        for name in containing.iter().take(shown_containing) {
            let _ = writeln!(out, "  {name}");
        }
    }
    (out, total)
}

/// Whether `name` is a type the pattern names, not one that only contains it: `pattern`
/// starts its path (`app::Task`, `Task` in `app::Task<u8>`) or one of its segments, before
/// any generic argument.
fn names_itself(name: &str, pattern: &str) -> bool {
    // A tuple, reference, pointer or array of it only contains it.
    if name.starts_with(['(', '&', '*', '[']) && !pattern.starts_with(['(', '&', '*', '[']) {
        return false;
    }
    let path = name.split('<').next().unwrap_or(name);
    path.starts_with(pattern) || path.contains(&format!("::{pattern}"))
}

/// Each type's size and layout: fields with offsets, variants with tags, enumerators.
fn describe_each<'n>(dbg: &DebugInfo, names: impl Iterator<Item = &'n str>, out: &mut String) {
    for name in names {
        let Some(id) = dbg.type_named(name) else {
            continue;
        };
        let Ok(t) = dbg.ty(id) else { continue };
        let _ = writeln!(out, "{} (size {})", t.name, t.size);
        let type_name = |id: Option<crate::dwarf::DieId>| {
            id.and_then(|i| dbg.ty(i).ok())
                .map_or("?".to_string(), |t| t.name.to_string())
        };
        match &t.kind {
            TypeKind::Struct { fields, .. } | TypeKind::Union { fields } => {
                let mut fields: Vec<_> = fields.iter().collect();
                fields.sort_by_key(|f| f.offset);
                for f in fields {
                    let _ = writeln!(out, "  +{:<5} {}: {}", f.offset, f.name, type_name(f.ty));
                }
                let variants = match &t.kind {
                    TypeKind::Struct { variants, .. } => variants.as_ref(),
                    _ => None,
                };
                if let Some(vp) = variants {
                    if let Some(d) = &vp.discr {
                        let name = if d.name.is_empty() { "<tag>" } else { &d.name };
                        let _ = writeln!(
                            out,
                            "  +{:<5} {name}: {} (selects the variant)",
                            d.offset,
                            type_name(d.ty)
                        );
                    }
                    for v in &vp.variants {
                        let tag = v
                            .discr_value
                            .map_or("otherwise".to_string(), |d| format!("= {d}"));
                        let line = v
                            .field
                            .decl_line
                            .map_or(String::new(), |l| format!("  (line {l})"));
                        let _ = writeln!(
                            out,
                            "  variant {} {tag}: {}{line}",
                            v.field.name,
                            type_name(v.field.ty)
                        );
                    }
                }
            }
            TypeKind::CEnum { enumerators } => {
                for (n, v) in enumerators {
                    let _ = writeln!(out, "  {n} = {v}");
                }
            }
            other => {
                let _ = writeln!(out, "  {other:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::names_itself;

    #[test]
    fn a_pattern_names_its_own_types_not_their_wrappers() {
        assert!(names_itself("app::Task", "app::Task"));
        assert!(names_itself("app::TaskState", "app::Task"));
        assert!(names_itself("app::Task", "Task"));
        assert!(names_itself("app::Task<u8>", "Task"));
        assert!(!names_itself(
            "core::option::Option<app::Task>",
            "app::Task"
        ));
        assert!(!names_itself("(u64, app::Task)", "Task"));
        assert!(!names_itself(
            "hashbrown::raw::Bucket<(u64, app::Task)>",
            "Task"
        ));
    }
}
