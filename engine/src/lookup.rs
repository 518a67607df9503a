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
