//! Type decoding: a DIE becomes a `Type` (struct, Rust enum with its variant part, pointer,
//! array, base type, …). Names are the qualified names of the index; layout facts only.

use std::sync::Arc;

use gimli::AttributeValue;

use super::units::{attr_ref, attr_str, attr_u64, malformed, template_params};
use super::{DebugInfo, DieId, DwarfError, Reader};

#[derive(Debug, Clone)]
pub struct Type {
    pub id: DieId,
    /// Qualified name (`alloc::vec::Vec<u8, alloc::alloc::Global>`), or a synthesized one
    /// for unnamed types (`[u8; 4]`).
    pub name: Arc<str>,
    pub size: u64,
    /// Alignment in bytes (`DW_AT_alignment`), where the compiler records it: rustc does
    /// for structs, enums and unions, not for base types or pointers.
    pub align: Option<u64>,
    pub kind: TypeKind,
    pub template_params: Vec<(Arc<str>, DieId)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseKind {
    Bool,
    Char,
    Signed,
    Unsigned,
    Float,
}

#[derive(Debug, Clone)]
pub enum TypeKind {
    Base(BaseKind),
    /// A struct, or a Rust enum / coroutine when `variants` is set.
    Struct {
        fields: Vec<Field>,
        variants: Option<VariantPart>,
    },
    Union {
        fields: Vec<Field>,
    },
    /// A C-like enumeration (`DW_TAG_enumeration_type`).
    CEnum {
        enumerators: Vec<(Arc<str>, i128)>,
    },
    /// Raw pointers and references. `pointee` is None for `*const ()` and unknown targets.
    Pointer {
        pointee: Option<DieId>,
    },
    Array {
        elem: DieId,
        count: Option<u64>,
    },
    Function,
    /// A declaration without a definition, or a tag this tool does not model.
    Opaque,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: Arc<str>,
    pub offset: u64,
    pub ty: Option<DieId>,
    /// Source position of the member's declaration; for a coroutine's `SuspendN` variant
    /// this is the line of the `.await`.
    pub decl_file: Option<u64>,
    pub decl_line: Option<u64>,
    pub artificial: bool,
}

/// The `DW_TAG_variant_part` of a Rust enum or coroutine.
#[derive(Debug, Clone)]
pub struct VariantPart {
    /// The tag (or niche) member read to pick a variant; absent for single-variant enums.
    pub discr: Option<Field>,
    pub variants: Vec<Variant>,
}

impl VariantPart {
    /// The variant a tag value selects: the one with that value, else the default one.
    pub fn select(&self, tag: u64) -> Option<(usize, &Variant)> {
        let all = || self.variants.iter().enumerate();
        all()
            .find(|(_, v)| v.discr_value == Some(tag))
            .or_else(|| all().find(|(_, v)| v.discr_value.is_none()))
    }
}

#[derive(Debug, Clone)]
pub struct Variant {
    /// The tag value selecting this variant; None marks the default (dataful) variant of a
    /// niche-encoded enum.
    pub discr_value: Option<u64>,
    /// The member holding the variant's data: named after the variant (`Some`, or "3" for
    /// a coroutine's `Suspend0`), typed by the variant's own struct.
    pub field: Field,
}

impl Type {
    /// An async fn, block or closure future: a struct whose variant part is chosen by the
    /// artificial `__state` member.
    pub fn is_coroutine(&self) -> bool {
        matches!(&self.kind, TypeKind::Struct { variants: Some(vp), .. } if vp.discr.as_ref().is_some_and(|d| &*d.name == "__state"))
    }

    /// A copy whose names are allocations of its own. Reports clone these names for every
    /// task (an await frame's future type, an enum's active variant): from a copy shared
    /// by two worker threads, each clone and drop moved the reference count's cache line
    /// between the cores.
    pub fn unshared(&self) -> Type {
        fn name(n: &Arc<str>) -> Arc<str> {
            Arc::from(&**n)
        }
        fn field(f: &Field) -> Field {
            Field {
                name: name(&f.name),
                ..f.clone()
            }
        }
        let fields = |fs: &[Field]| fs.iter().map(field).collect();
        let kind = match &self.kind {
            TypeKind::Struct {
                fields: fs,
                variants,
            } => TypeKind::Struct {
                fields: fields(fs),
                variants: variants.as_ref().map(|vp| VariantPart {
                    discr: vp.discr.as_ref().map(field),
                    variants: vp
                        .variants
                        .iter()
                        .map(|v| Variant {
                            discr_value: v.discr_value,
                            field: field(&v.field),
                        })
                        .collect(),
                }),
            },
            TypeKind::Union { fields: fs } => TypeKind::Union { fields: fields(fs) },
            TypeKind::CEnum { enumerators } => TypeKind::CEnum {
                enumerators: enumerators.iter().map(|(n, v)| (name(n), *v)).collect(),
            },
            other => other.clone(),
        };
        Type {
            id: self.id,
            name: name(&self.name),
            size: self.size,
            align: self.align,
            kind,
            template_params: self
                .template_params
                .iter()
                .map(|(n, d)| (name(n), *d))
                .collect(),
        }
    }
}

/// Bounds on what a (possibly hostile) DWARF file can make us allocate for one type.
const MAX_FIELDS: usize = 4096;

/// How deeply decoding one type may decode others (an array's element, which may be an
/// array): a hostile file can make the element chain a cycle, found by the fuzzer as a
/// stack overflow (`fuzz/seeds/dwarf_load/regress-array-cycle`).
const MAX_NESTING: u32 = 64;

thread_local! {
    static NESTING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

pub fn decode(dbg: &DebugInfo, id: DieId) -> Result<Type, DwarfError> {
    struct Level;
    impl Drop for Level {
        fn drop(&mut self) {
            NESTING.with(|n| n.set(n.get().saturating_sub(1)));
        }
    }
    let depth = NESTING.with(|n| {
        let d = n.get();
        n.set(d + 1);
        d
    });
    let _level = Level;
    if depth >= MAX_NESTING {
        return Err(malformed(
            dbg,
            id,
            "types nested deeper than 64 (an array whose element type leads back to itself?)",
        ));
    }
    decode_depth(dbg, id, 0)
}

fn decode_depth(dbg: &DebugInfo, id: DieId, depth: u32) -> Result<Type, DwarfError> {
    if depth > 16 {
        return Err(malformed(dbg, id, "typedef/qualifier chain deeper than 16"));
    }
    let (unit, off) = dbg
        .locate(id)
        .ok_or_else(|| malformed(dbg, id, "type offset outside every unit"))?;
    let mut tree = unit
        .entries_tree(Some(off))
        .map_err(|e| malformed(dbg, id, &e.to_string()))?;
    let root = tree
        .root()
        .map_err(|e| malformed(dbg, id, &e.to_string()))?;
    let entry = root.entry().clone();
    let raw_name = attr_str(dbg.dwarf(), unit, &entry, gimli::DW_AT_name);
    let name = dbg.index().qualified_name(id).or(raw_name);
    let size = attr_u64(&entry, gimli::DW_AT_byte_size).unwrap_or(0);
    let align = attr_u64(&entry, gimli::DW_AT_alignment);
    let target = attr_ref(unit, &entry, gimli::DW_AT_type);
    let unnamed = |s: String| -> Arc<str> { Arc::from(s) };

    let kind = match entry.tag() {
        gimli::DW_TAG_base_type => {
            let enc = match entry.attr_value(gimli::DW_AT_encoding) {
                Some(AttributeValue::Encoding(e)) => e,
                _ => gimli::DW_ATE_unsigned,
            };
            let kind = match enc {
                gimli::DW_ATE_boolean => BaseKind::Bool,
                gimli::DW_ATE_signed | gimli::DW_ATE_signed_char => BaseKind::Signed,
                gimli::DW_ATE_float => BaseKind::Float,
                gimli::DW_ATE_UTF => BaseKind::Char,
                _ => BaseKind::Unsigned,
            };
            TypeKind::Base(kind)
        }
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type => {
            let size = if size == 0 {
                u64::from(unit.encoding().address_size)
            } else {
                size
            };
            let name = name.unwrap_or_else(|| unnamed("*const _".into()));
            return Ok(Type {
                id,
                name,
                size,
                align,
                kind: TypeKind::Pointer { pointee: target },
                template_params: vec![],
            });
        }
        gimli::DW_TAG_typedef
        | gimli::DW_TAG_const_type
        | gimli::DW_TAG_volatile_type
        | gimli::DW_TAG_atomic_type => {
            let Some(target) = target else {
                return Err(malformed(dbg, id, "qualifier without a type"));
            };
            return decode_depth(dbg, target, depth + 1);
        }
        gimli::DW_TAG_array_type => {
            let Some(elem) = target else {
                return Err(malformed(dbg, id, "array without element type"));
            };
            let mut count = None;
            let mut children = root.children();
            if let Ok(Some(child)) = children.next() {
                let e = child.entry();
                count = attr_u64(e, gimli::DW_AT_count)
                    .or_else(|| attr_u64(e, gimli::DW_AT_upper_bound).map(|u| u.saturating_add(1)));
            }
            let elem_name = dbg
                .ty(elem)
                .map(|t| t.name.clone())
                .unwrap_or_else(|_| Arc::from("?"));
            let name = unnamed(format!(
                "[{elem_name}; {}]",
                count.map_or("?".into(), |c| c.to_string())
            ));
            let size = if size == 0 {
                dbg.ty(elem)
                    .map_or(0, |t| t.size.saturating_mul(count.unwrap_or(0)))
            } else {
                size
            };
            return Ok(Type {
                id,
                name,
                size,
                align,
                kind: TypeKind::Array { elem, count },
                template_params: vec![],
            });
        }
        gimli::DW_TAG_subroutine_type => TypeKind::Function,
        gimli::DW_TAG_enumeration_type => {
            let mut enumerators = Vec::new();
            let mut children = root.children();
            while let Ok(Some(child)) = children.next() {
                let e = child.entry();
                if e.tag() == gimli::DW_TAG_enumerator && enumerators.len() < MAX_FIELDS {
                    let value = e.attr(gimli::DW_AT_const_value).and_then(|a| {
                        a.sdata_value()
                            .map(i128::from)
                            .or_else(|| a.udata_value().map(i128::from))
                    });
                    if let (Some(n), Some(v)) =
                        (attr_str(dbg.dwarf(), unit, e, gimli::DW_AT_name), value)
                    {
                        enumerators.push((n, v));
                    }
                }
            }
            TypeKind::CEnum { enumerators }
        }
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
            if entry.attr_value(gimli::DW_AT_declaration).is_some() {
                TypeKind::Opaque
            } else {
                let is_union = entry.tag() == gimli::DW_TAG_union_type;
                let mut fields = Vec::new();
                let mut variants = None;
                let mut children = root.children();
                while let Some(child) = children
                    .next()
                    .map_err(|e| malformed(dbg, id, &e.to_string()))?
                {
                    match child.entry().tag() {
                        gimli::DW_TAG_member if fields.len() < MAX_FIELDS => {
                            if let Some(f) = field(dbg, unit, child.entry()) {
                                fields.push(f);
                            }
                        }
                        gimli::DW_TAG_variant_part => {
                            variants = Some(variant_part(dbg, unit, id, child)?)
                        }
                        _ => {}
                    }
                }
                if is_union {
                    TypeKind::Union { fields }
                } else {
                    TypeKind::Struct { fields, variants }
                }
            }
        }
        _ => TypeKind::Opaque,
    };
    let name = name.unwrap_or_else(|| unnamed("<anonymous>".into()));
    let template_params = match kind {
        TypeKind::Struct { .. } | TypeKind::Union { .. } => template_params(dbg, id)?,
        _ => vec![],
    };
    Ok(Type {
        id,
        name,
        size,
        align,
        kind,
        template_params,
    })
}

fn field(
    dbg: &DebugInfo,
    unit: &gimli::Unit<Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<Field> {
    Some(Field {
        name: attr_str(dbg.dwarf(), unit, e, gimli::DW_AT_name).unwrap_or_else(|| Arc::from("")),
        offset: attr_u64(e, gimli::DW_AT_data_member_location).unwrap_or(0),
        ty: attr_ref(unit, e, gimli::DW_AT_type),
        decl_file: attr_u64(e, gimli::DW_AT_decl_file),
        decl_line: attr_u64(e, gimli::DW_AT_decl_line),
        artificial: e.attr_value(gimli::DW_AT_artificial).is_some(),
    })
}

fn variant_part(
    dbg: &DebugInfo,
    unit: &gimli::Unit<Reader>,
    id: DieId,
    node: gimli::EntriesTreeNode<'_, '_, Reader>,
) -> Result<VariantPart, DwarfError> {
    let discr_ref = attr_ref(unit, node.entry(), gimli::DW_AT_discr);
    let mut discr = None;
    let mut variants = Vec::new();
    let mut children = node.children();
    while let Some(child) = children
        .next()
        .map_err(|e| malformed(dbg, id, &e.to_string()))?
    {
        let e = child.entry();
        match e.tag() {
            gimli::DW_TAG_member => {
                let this = super::units::die_id(unit, e.offset());
                if discr_ref.is_none() || this == discr_ref {
                    discr = field(dbg, unit, e);
                }
            }
            gimli::DW_TAG_variant if variants.len() < MAX_FIELDS => {
                let discr_value = e.attr(gimli::DW_AT_discr_value).and_then(|a| {
                    a.udata_value()
                        .or_else(|| a.sdata_value().map(|v| v as u64))
                });
                let mut members = child.children();
                while let Some(m) = members
                    .next()
                    .map_err(|e| malformed(dbg, id, &e.to_string()))?
                {
                    if m.entry().tag() == gimli::DW_TAG_member {
                        if let Some(field) = field(dbg, unit, m.entry()) {
                            variants.push(Variant { discr_value, field });
                        }
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(VariantPart { discr, variants })
}
