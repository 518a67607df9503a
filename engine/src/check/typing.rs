//! Type-level evaluation for `check --binary`: a rule's expressions run on types instead of
//! memory, looked up as the evaluator does (`lookup`), so a missing field is reported at
//! its line without a dump; what only memory can tell (a vtable, a variant) becomes unknown.

use std::cell::Cell;

use layoutdump_lang::program::{Builtin, Expr, ExprId, ParamSource, Program};
use layoutdump_lang::{Diagnostic, TypeExpr};

use crate::dwarf::{DebugInfo, DieId, TypeKind};

/// What an expression is known to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum AType {
    Obj(DieId),
    Int,
    Str,
    Seq(Box<AType>),
    Unknown,
}

pub struct TypeChecker<'a> {
    pub program: &'a Program,
    pub dbg: &'a DebugInfo,
    pub diags: Vec<Diagnostic>,
    depth: Cell<u32>,
}

const MAX_DEPTH: u32 = 32;

impl<'a> TypeChecker<'a> {
    pub fn new(program: &'a Program, dbg: &'a DebugInfo) -> Self {
        TypeChecker {
            program,
            dbg,
            diags: Vec::new(),
            depth: Cell::new(0),
        }
    }

    /// Any type of the binary matching `pattern`, preferring the first by name.
    pub fn any_instance(&self, pattern: &TypeExpr) -> Option<DieId> {
        self.instances(pattern, 1).into_iter().next()
    }

    /// Up to `max` types of the binary matching `pattern`, in name order.
    pub fn instances(&self, pattern: &TypeExpr, max: usize) -> Vec<DieId> {
        let Some(base) = pattern.base_path() else {
            return vec![];
        };
        let mut names: Vec<_> = self
            .dbg
            .index()
            .type_names()
            .filter(|n| n.starts_with(base) && pattern.matches(n))
            .collect();
        names.sort();
        names
            .into_iter()
            .take(max)
            .filter_map(|n| self.dbg.type_named(n))
            .collect()
    }

    /// Whether a rule's `when` guard type-checks on `subject` (no guard: yes). Leaves no
    /// diagnostics: a guard that does not fit means the rule is not about this instance.
    pub fn guard_fits(&mut self, guard: Option<ExprId>, size: u16, subject: AType) -> bool {
        let Some(g) = guard else { return true };
        let before = self.diags.len();
        let mut frame = vec![AType::Unknown; usize::from(size.max(1))];
        frame[0] = subject;
        self.eval(g, &mut frame);
        let fits = self.diags.len() == before;
        self.diags.truncate(before);
        fits
    }

    /// Checks members in order, as a rule evaluates them.
    /// `sequence` names the member that must be a sequence (a runtime's `tasks`).
    pub fn check_members(
        &mut self,
        members: &[layoutdump_lang::program::Member],
        size: u16,
        subject: AType,
        sequence: Option<&str>,
    ) {
        let mut frame = vec![AType::Unknown; usize::from(size.max(1))];
        frame[0] = subject;
        for m in members {
            let mut t = self.eval(m.value, &mut frame);
            if sequence == Some(m.name.as_str()) {
                self.items_at(m.value, t.clone());
                t = AType::Unknown;
            }
            if let Some(slot) = frame.get_mut(usize::from(m.slot.0)) {
                *slot = t;
            }
        }
    }

    fn error(&mut self, id: ExprId, msg: String) -> AType {
        self.error_with(Diagnostic::new(self.program.span(id), msg))
    }

    fn error_with(&mut self, d: Diagnostic) -> AType {
        // One message per place: a view used from many rules would repeat itself.
        if !self.diags.iter().any(|e| e.span == d.span) {
            self.diags.push(d);
        }
        AType::Unknown
    }

    fn eval(&mut self, id: ExprId, frame: &mut Vec<AType>) -> AType {
        if self.depth.get() > MAX_DEPTH {
            return AType::Unknown;
        }
        match self.program.expr(id).clone() {
            Expr::Int(_) => AType::Int,
            Expr::Str(_) => AType::Str,
            Expr::Static(path) => match self.dbg.static_variable(&path) {
                Ok((_, ty)) => AType::Obj(ty),
                Err(msg) => self.error(id, format!("{msg} of {}", self.dbg.path().display())),
            },
            Expr::Local(slot) => frame
                .get(usize::from(slot.0))
                .cloned()
                .unwrap_or(AType::Unknown),
            Expr::Field(base, name) => {
                let t = self.eval(base, frame);
                self.field(id, t, &name)
            }
            Expr::Index(base, index) => {
                self.eval(index, frame);
                let t = self.eval(base, frame);
                self.items_at(base, t)
            }
            Expr::Unary(op, e) => {
                let t = self.eval(e, frame);
                match op {
                    layoutdump_lang::program::UnOp::Deref => self.deref(t),
                    _ => AType::Int,
                }
            }
            Expr::Binary(_, a, b) => {
                self.eval(a, frame);
                self.eval(b, frame);
                AType::Int
            }
            Expr::Cast {
                value,
                ty,
                vars,
                from,
            } => {
                self.eval(value, frame);
                if let Some((source, e)) = from {
                    let of = self.eval(e, frame);
                    if let (ParamSource::TypeOf, AType::Obj(t)) = (source, &of) {
                        let params = self
                            .dbg
                            .ty(*t)
                            .map(|t| t.template_params.clone())
                            .unwrap_or_default();
                        let bound: Vec<(String, String)> = vars
                            .iter()
                            .zip(&params)
                            .filter_map(|(v, (_, p))| {
                                Some((v.clone(), self.dbg.ty(*p).ok()?.name.to_string()))
                            })
                            .collect();
                        if bound.len() == vars.len() {
                            let target = ty.substitute(&bound).to_string();
                            return match self.dbg.type_named(&target) {
                                Some(t) => AType::Obj(t),
                                None => self.error(
                                    id,
                                    format!(
                                        "cast to `{target}`: no such type in {}",
                                        self.dbg.path().display()
                                    ),
                                ),
                            };
                        }
                    }
                    // Function template parameters need memory (a vtable slot): check
                    // against any instantiation of the pattern instead.
                    let wild: Vec<(String, String)> =
                        vars.iter().map(|v| (v.clone(), "_".to_string())).collect();
                    let pattern = wildcard_vars(&ty.substitute(&wild));
                    return self
                        .any_instance(&pattern)
                        .map_or(AType::Unknown, AType::Obj);
                }
                // Unknown concrete cast types are reported by the name check.
                self.dbg
                    .type_named(&ty.to_string())
                    .map_or(AType::Unknown, AType::Obj)
            }
            Expr::Call { func, args } => self.builtin(func, &args, frame),
            Expr::CallFn { func, args } => {
                let f = self.program.functions[func.0 as usize].clone();
                let mut inner = vec![AType::Unknown; usize::from(f.frame_size.max(1))];
                for (i, a) in args.iter().enumerate() {
                    let t = self.eval(*a, frame);
                    if let Some(slot) = inner.get_mut(i) {
                        *slot = t;
                    }
                }
                self.nested(|me| me.eval(f.body, &mut inner))
            }
            Expr::CallHook { args, .. } => {
                for a in args {
                    self.eval(a, frame);
                }
                AType::Unknown
            }
            Expr::For {
                var,
                seq,
                filter,
                body,
            } => {
                let s = self.eval(seq, frame);
                let item = self.items_at(seq, s);
                set(frame, var.0, item);
                if let Some(f) = filter {
                    self.eval(f, frame);
                }
                match self.eval(body, frame) {
                    AType::Seq(inner) => AType::Seq(inner),
                    t => AType::Seq(Box::new(t)),
                }
            }
            Expr::Bits { value, .. } => {
                self.eval(value, frame);
                AType::Str
            }
            Expr::Flags { value, .. } => {
                self.eval(value, frame);
                AType::Seq(Box::new(AType::Str))
            }
            Expr::Lambda { body, .. } => self.eval(body, frame),
            _ => AType::Unknown,
        }
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self) -> AType) -> AType {
        let d = self.depth.get();
        self.depth.set(d + 1);
        let r = f(self);
        self.depth.set(d);
        r
    }

    fn builtin(&mut self, func: Builtin, args: &[ExprId], frame: &mut Vec<AType>) -> AType {
        match func {
            Builtin::List => {
                let first = args
                    .first()
                    .map_or(AType::Unknown, |a| self.eval(*a, frame));
                let node = self.list_node(first);
                if let Some(Expr::Lambda { param, body }) =
                    args.get(1).map(|a| self.program.expr(*a).clone())
                {
                    set(frame, param.0, node.clone());
                    let next = self.eval(body, frame);
                    self.list_node(next);
                }
                AType::Seq(Box::new(node))
            }
            Builtin::Slice => {
                let first = args
                    .first()
                    .map_or(AType::Unknown, |a| self.eval(*a, frame));
                if let Some(len) = args.get(1) {
                    self.eval(*len, frame);
                }
                let elem = match first {
                    AType::Obj(t) if self.is_pointer(t) => self.deref(AType::Obj(t)),
                    t => t,
                };
                AType::Seq(Box::new(elem))
            }
            Builtin::DynTarget | Builtin::Runtime => {
                for a in args {
                    self.eval(*a, frame);
                }
                AType::Unknown
            }
            Builtin::Range => {
                for a in args {
                    self.eval(*a, frame);
                }
                AType::Seq(Box::new(AType::Int))
            }
            // Either branch may be taken: both are checked, and the first known type is
            // the result.
            Builtin::If => {
                let types: Vec<AType> = args.iter().map(|a| self.eval(*a, frame)).collect();
                types
                    .into_iter()
                    .skip(1)
                    .find(|t| *t != AType::Unknown)
                    .unwrap_or(AType::Unknown)
            }
            Builtin::Addr
            | Builtin::Len
            | Builtin::IsNull
            | Builtin::DumpTime
            | Builtin::SizeOf
            | Builtin::AlignOf => {
                for a in args {
                    self.eval(*a, frame);
                }
                AType::Int
            }
            Builtin::Variant | Builtin::TypeName | Builtin::Str => {
                for a in args {
                    self.eval(*a, frame);
                }
                AType::Str
            }
        }
    }

    fn is_pointer(&self, t: DieId) -> bool {
        self.dbg
            .ty(t)
            .is_ok_and(|t| matches!(t.kind, TypeKind::Pointer { .. }))
    }

    fn view_member(&self, ty: DieId, name: &str) -> Option<(usize, usize)> {
        let t = self.dbg.ty(ty).ok()?;
        let view = crate::lookup::view_for(self.program, &t.name)?;
        crate::lookup::view_member(self.program, view, name)
    }

    fn eval_view_member(&mut self, (view, member): (usize, usize), subject: AType) -> AType {
        let v = self.program.views[view].clone();
        let mut frame = vec![AType::Unknown; usize::from(v.frame_size.max(1))];
        frame[0] = subject;
        self.nested(|me| me.eval(v.members[member].value, &mut frame))
    }

    fn deref(&mut self, t: AType) -> AType {
        let AType::Obj(id) = t else {
            return AType::Unknown;
        };
        let Ok(ty) = self.dbg.ty(id) else {
            return AType::Unknown;
        };
        match ty.kind {
            TypeKind::Pointer { pointee } => pointee.map_or(AType::Unknown, AType::Obj),
            _ => match self.view_member(id, "deref") {
                Some(m) => self.eval_view_member(m, t),
                None => AType::Unknown,
            },
        }
    }

    fn list_node(&mut self, mut t: AType) -> AType {
        for _ in 0..16 {
            let AType::Obj(id) = t else { return t };
            if self.is_pointer(id) || self.view_member(id, "deref").is_some() {
                t = self.deref(t);
            } else {
                return t;
            }
        }
        AType::Unknown
    }

    /// `t` where a sequence is needed (a `for`, an index, a runtime's `tasks`): its item
    /// type, or an error at `at` when `t` is an object that nothing makes a sequence (a
    /// collection whose view the layout does not `use`, a table's internals).
    pub fn items_at(&mut self, at: ExprId, t: AType) -> AType {
        match self.items_or(t) {
            Ok(item) => item,
            Err(ty) => {
                let name = self
                    .dbg
                    .ty(ty)
                    .map(|t| t.name.to_string())
                    .unwrap_or_default();
                let help = match crate::layout_loader::shipped_view_for(&name) {
                    Some(layout) => {
                        format!("the `{layout}` layout has a view of it: add `use {layout}`")
                    }
                    None => format!(
                        "a view of it with an `items` member makes it one (docs/language.md, \"Views\"); `layoutdump types {} '{}'` shows its fields",
                        self.dbg.path().display(),
                        name.split('<').next().unwrap_or(&name)
                    ),
                };
                let d = Diagnostic::new(
                    self.program.span(at),
                    format!("`{name}` is not a sequence: no view gives it `items`"),
                )
                .with_help(help);
                self.error_with(d)
            }
        }
    }

    /// The item type of `t`, in the evaluator's order (`Evaluator::items`); `Err` with the
    /// type where that order ends at an object that is not a sequence.
    fn items_or(&mut self, mut t: AType) -> Result<AType, DieId> {
        for _ in 0..16 {
            let AType::Obj(id) = t else {
                return Ok(match t {
                    AType::Seq(inner) => *inner,
                    _ => AType::Unknown,
                });
            };
            let Ok(ty) = self.dbg.ty(id) else {
                return Ok(AType::Unknown);
            };
            match ty.kind {
                TypeKind::Array { elem, .. } => return Ok(AType::Obj(elem)),
                // A tuple's fields are its items (of as many types).
                _ if ty.name.starts_with('(') => return Ok(AType::Unknown),
                TypeKind::Pointer { .. } => t = self.deref(t),
                _ => {
                    if let Some(m) = self.view_member(id, "items") {
                        t = self.eval_view_member(m, t);
                    } else if let Some(m) = self.view_member(id, "deref") {
                        t = self.eval_view_member(m, t);
                    } else if matches!(ty.kind, TypeKind::Function | TypeKind::Opaque) {
                        return Ok(AType::Unknown);
                    } else {
                        return Err(id);
                    }
                }
            }
        }
        Ok(AType::Unknown)
    }

    /// `t.name` on types, in the evaluator's order (`lookup::field_step`); an error when
    /// no step can apply.
    fn field(&mut self, at: ExprId, mut t: AType, name: &str) -> AType {
        use crate::lookup::FieldStep;
        for _ in 0..32 {
            let AType::Obj(id) = t else {
                return AType::Unknown;
            };
            let Ok(ty) = self.dbg.ty(id) else {
                return AType::Unknown;
            };
            let direct =
                |fields: &[crate::dwarf::Field]| fields.iter().position(|f| &*f.name == name);
            let step = crate::lookup::field_step(&ty, name, direct, |m| self.view_member(id, m));
            let fields = match step {
                FieldStep::Pointer => {
                    t = self.deref(t);
                    continue;
                }
                FieldStep::Field(f) | FieldStep::Variant(f) => {
                    return f.ty.map_or(AType::Unknown, AType::Obj);
                }
                FieldStep::View(m) => return self.eval_view_member(m, t),
                FieldStep::ViewDeref(m) => {
                    t = self.eval_view_member(m, t);
                    continue;
                }
                // Which variant is active needs memory: accept the field if any variant
                // has it.
                FieldStep::ActiveVariant(vp, fields) => {
                    let found = (vp.variants.iter())
                        .filter_map(|v| v.field.ty)
                        .map(|vt| self.field_in(vt, name))
                        .find(|found| *found != AType::Unknown);
                    if let Some(found) = found {
                        return found;
                    }
                    fields
                }
                FieldStep::Missing(fields) => fields,
            };
            let available: Vec<&str> = fields.iter().take(12).map(|f| &*f.name).collect();
            let has = if available.is_empty() {
                String::new()
            } else {
                format!(" (it has: {})", available.join(", "))
            };
            return self.error(at, format!("type `{}` has no field `{name}`{has}", ty.name));
        }
        AType::Unknown
    }

    /// A direct field of a variant's struct, without reporting.
    fn field_in(&self, ty: DieId, name: &str) -> AType {
        match self.dbg.ty(ty).map(|t| t.kind.clone()) {
            Ok(TypeKind::Struct { fields, .. }) => fields
                .iter()
                .find(|f| &*f.name == name)
                .and_then(|f| f.ty)
                .map_or(AType::Unknown, AType::Obj),
            _ => AType::Unknown,
        }
    }
}

/// Turns the `_` that replaced type variables into pattern wildcards (they render as `_`).
fn wildcard_vars(t: &TypeExpr) -> TypeExpr {
    match t {
        TypeExpr::Path { path, args: None } if path == "_" => TypeExpr::Wildcard,
        TypeExpr::Path { path, args } => TypeExpr::Path {
            path: path.clone(),
            args: args.as_ref().map(|a| a.iter().map(wildcard_vars).collect()),
        },
        TypeExpr::Ptr { prefix, target } => TypeExpr::Ptr {
            prefix: prefix.clone(),
            target: Box::new(wildcard_vars(target)),
        },
        TypeExpr::Slice(t) => TypeExpr::Slice(Box::new(wildcard_vars(t))),
        TypeExpr::Tuple(items) => TypeExpr::Tuple(items.iter().map(wildcard_vars).collect()),
        other => other.clone(),
    }
}

fn set(frame: &mut [AType], slot: u16, t: AType) {
    if let Some(s) = frame.get_mut(usize::from(slot)) {
        *s = t;
    }
}
