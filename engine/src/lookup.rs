//! The order in which `v.name` and a type's view are looked up, shared by the evaluator
//! (on memory) and `check --binary` (on types), so that what `check` accepts is what a
//! run reads.

use layoutdump_lang::program::Program;

use crate::dwarf::{Field, Type, TypeKind, VariantPart};

/// The view that applies to a type: the first, in layout order, whose pattern matches
/// the type's name.
pub(crate) fn view_for(program: &Program, type_name: &str) -> Option<usize> {
    program
        .views
        .iter()
        .position(|v| v.pattern.matches(type_name))
}

/// Member `name` of view `view`, as (view, member) indexes.
pub(crate) fn view_member(program: &Program, view: usize, name: &str) -> Option<(usize, usize)> {
    program.views[view]
        .members
        .iter()
        .position(|m| m.name == name)
        .map(|m| (view, m))
}

/// What `.name` does on a value of one type: the first of these that applies.
pub(crate) enum FieldStep<'t> {
    /// A pointer: dereference it, and look again.
    Pointer,
    /// A field of the struct or union.
    Field(&'t Field),
    /// An enum's variant by its name (`o.Some`): the value must hold that one.
    Variant(&'t Field),
    /// A member of the type's view, as (view, member).
    View((usize, usize)),
    /// The view's `deref`: follow it, and look again.
    ViewDeref((usize, usize)),
    /// An enum: into the variant the value holds, and look again. With the type's fields,
    /// for the error where no variant has the name either.
    ActiveVariant(&'t VariantPart, &'t [Field]),
    /// Nothing applies: the type's fields, for the error.
    Missing(&'t [Field]),
}

/// The step `.name` takes on type `t`. `direct` finds a field by name (the evaluator
/// caches it); `view_member` finds a member of the type's view.
pub(crate) fn field_step<'t>(
    t: &'t Type,
    name: &str,
    direct: impl FnOnce(&'t [Field]) -> Option<usize>,
    view_member: impl Fn(&str) -> Option<(usize, usize)>,
) -> FieldStep<'t> {
    let (fields, variants) = match &t.kind {
        TypeKind::Pointer { .. } => return FieldStep::Pointer,
        TypeKind::Struct { fields, variants } => (fields.as_slice(), variants.as_ref()),
        TypeKind::Union { fields } => (fields.as_slice(), None),
        _ => return FieldStep::Missing(&[]),
    };
    if let Some(f) = direct(fields).and_then(|i| fields.get(i)) {
        return FieldStep::Field(f);
    }
    if let Some(var) = variants.and_then(|vp| vp.variants.iter().find(|v| &*v.field.name == name)) {
        return FieldStep::Variant(&var.field);
    }
    if let Some(m) = view_member(name) {
        return FieldStep::View(m);
    }
    if let Some(m) = view_member("deref") {
        return FieldStep::ViewDeref(m);
    }
    match variants {
        Some(vp) => FieldStep::ActiveVariant(vp, fields),
        None => FieldStep::Missing(fields),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{FieldStep, field_step};
    use crate::dwarf::{DieId, Field, Type, TypeKind, Variant, VariantPart};

    fn field(name: &str) -> Field {
        Field {
            name: name.into(),
            offset: 0,
            ty: None,
            decl_file: None,
            decl_line: None,
            artificial: false,
        }
    }

    fn ty(kind: TypeKind) -> Type {
        Type {
            id: DieId(1),
            name: Arc::from("t"),
            size: 8,
            align: None,
            kind,
            template_params: Vec::new(),
        }
    }

    fn step(t: &Type, name: &str, view: &[&str]) -> String {
        let direct = |fields: &[Field]| fields.iter().position(|f| &*f.name == name);
        let member = |m: &str| view.iter().position(|v| *v == m).map(|i| (0, i));
        match field_step(t, name, direct, member) {
            FieldStep::Pointer => "pointer".into(),
            FieldStep::Field(f) => format!("field {}", f.name),
            FieldStep::Variant(f) => format!("variant {}", f.name),
            FieldStep::View((_, m)) => format!("view {}", view[m]),
            FieldStep::ViewDeref(_) => "view deref".into(),
            FieldStep::ActiveVariant(..) => "active variant".into(),
            FieldStep::Missing(fields) => format!("missing ({} fields)", fields.len()),
        }
    }

    /// The order both the evaluator and `check` follow: a field, then a variant by its
    /// name, then the view's member, then the view's `deref`, then the active variant.
    #[test]
    fn a_field_comes_before_a_variant_a_view_and_the_active_variant() {
        let option = ty(TypeKind::Struct {
            fields: vec![field("len")],
            variants: Some(VariantPart {
                discr: None,
                variants: vec![Variant {
                    discr_value: None,
                    field: field("Some"),
                }],
            }),
        });
        assert_eq!(step(&option, "len", &["len", "deref"]), "field len");
        assert_eq!(step(&option, "Some", &["Some"]), "variant Some");
        assert_eq!(step(&option, "items", &["items", "deref"]), "view items");
        assert_eq!(step(&option, "value", &["deref"]), "view deref");
        assert_eq!(step(&option, "value", &[]), "active variant");
        let plain = ty(TypeKind::Struct {
            fields: vec![field("a"), field("b")],
            variants: None,
        });
        assert_eq!(step(&plain, "c", &[]), "missing (2 fields)");
        assert_eq!(
            step(&ty(TypeKind::Pointer { pointee: None }), "a", &[]),
            "pointer"
        );
        assert_eq!(
            step(&ty(TypeKind::Function), "a", &["a"]),
            "missing (0 fields)"
        );
    }
}
