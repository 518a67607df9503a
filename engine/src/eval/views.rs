//! Views: a type's `deref`, `items` and other members, as a layout declares them.

use super::{EvalError, Evaluator, Value, cache, place, plan};
use crate::dwarf::{DieId, Type};

impl<'a> Evaluator<'a> {
    /// The first view (in layout order) whose pattern matches the type, cached per type.
    pub(super) fn view_of(&self, ty: DieId) -> Option<usize> {
        if let Some(v) = self.views.borrow().get(&ty) {
            return *v;
        }
        let found = (self.ty(ty).ok()).and_then(|t| crate::lookup::view_for(self.program, &t.name));
        self.views.borrow_mut().insert(ty, found);
        found
    }

    /// The items of a value whose type's view has `items` (a collection), if it has one.
    pub fn view_items(&self, v: &Value) -> Option<Result<Vec<Value>, EvalError>> {
        let Value::Place { ty, .. } = v else {
            return None;
        };
        self.view_member(*ty, "items")?;
        Some(self.items(v.clone()))
    }

    /// The value of the type's view member `show` (how a value is shown in reports), if
    /// its view has one.
    pub fn show(&self, v: &Value) -> Option<Result<Value, EvalError>> {
        let Value::Place { ty, .. } = v else {
            return None;
        };
        let (view, m) = self.view_member(*ty, "show")?;
        Some(self.eval_view_member(view, m, v.clone()))
    }

    /// Whether the type's view has a member of that name (`items`: it is a collection).
    pub(crate) fn has_view_member(&self, ty: DieId, name: &str) -> bool {
        self.view_member(ty, name).is_some()
    }

    pub(super) fn view_member(&self, ty: DieId, name: &str) -> Option<(usize, usize)> {
        let key = (ty, cache::NameKey::of(name));
        if let Some(found) = self.cache.view_members.borrow().get(&key) {
            return *found;
        }
        let found = (self.view_of(ty))
            .and_then(|view| crate::lookup::view_member(self.program, view, name));
        self.cache.view_members.borrow_mut().insert(key, found);
        found
    }

    pub(super) fn eval_view_member(
        &self,
        view: usize,
        member: usize,
        subject: Value,
    ) -> Result<Value, EvalError> {
        let v = &self.program.views[view];
        let m = &v.members[member];
        let site = plan::Site::ViewMember(view as u32, member as u32);
        self.planned(site, subject, |subject| {
            self.nested(|| self.eval_with_subject(m.value, v.frame_size, subject))
        })
    }

    /// The member at `offset` of the object at `addr` (a step of the route being recorded).
    pub(super) fn member(
        &self,
        addr: u64,
        offset: u64,
        ty: Option<DieId>,
        parent: &Type,
    ) -> Result<Value, EvalError> {
        let v = place(addr, offset, ty, parent)?;
        if let Value::Place { ty, .. } = v {
            self.step(plan::Op::Offset { offset, ty });
        }
        Ok(v)
    }
}
