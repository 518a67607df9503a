//! Reading values in memory: fields (through views and auto-deref), pointers, enum
//! variants, numbers.

use std::sync::Arc;

use layoutdump_lang::program::BinOp;

use super::{EvalError, Evaluator, MAX_HOPS, Value, arith, cache, place, plan};
use crate::dwarf::{BaseKind, DieId, Type, TypeKind};
use crate::memory::Bytes;

impl<'a> Evaluator<'a> {
    /// One hop towards what a value stands for: through a pointer, or a view's `deref`.
    pub(super) fn step_in(&self, v: Value, t: &Type, wanted: &str) -> Result<Value, EvalError> {
        if let TypeKind::Pointer { .. } = t.kind {
            return self.deref(v);
        }
        if let Some((view, m)) = self.view_member(t.id, "deref") {
            return self.eval_view_member(view, m, v);
        }
        Err(EvalError::NotA {
            what: if wanted == "items" {
                "a sequence"
            } else {
                "a number"
            },
            ty: t.name.clone(),
        })
    }

    /// `v.name`, with Rust's conveniences: through pointers, into an enum's variant by
    /// its name (`o.Some`) or into the active one, a view member, or a view's `deref`.
    pub fn field(&self, mut v: Value, name: &str) -> Result<Value, EvalError> {
        use crate::lookup::FieldStep;
        for _ in 0..MAX_HOPS {
            let Value::Place { addr, ty } = v else {
                return Err(EvalError::Other(format!(
                    "`.{name}` applied to a value that is not in memory"
                )));
            };
            let t = self.ty(ty)?;
            let direct = |fields: &[crate::dwarf::Field]| {
                let key = (ty, cache::NameKey::of(name));
                let cached = self.cache.fields.borrow().get(&key).copied();
                cached.unwrap_or_else(|| {
                    let found = fields.iter().position(|f| &*f.name == name);
                    self.cache.fields.borrow_mut().insert(key, found);
                    found
                })
            };
            match crate::lookup::field_step(&t, name, direct, |m| self.view_member(ty, m)) {
                FieldStep::Pointer => v = self.deref(v)?,
                FieldStep::Field(f) => return self.member(addr, f.offset, f.ty, &t),
                FieldStep::Variant(f) => {
                    let (active, _) = self.active_variant(addr, ty)?;
                    if &*active != name {
                        return Err(EvalError::Inactive {
                            wanted: name.into(),
                            active,
                            ty: t.name.clone(),
                        });
                    }
                    return self.member(addr, f.offset, f.ty, &t);
                }
                FieldStep::View((view, m)) => return self.eval_view_member(view, m, v),
                FieldStep::ViewDeref((view, m)) => v = self.eval_view_member(view, m, v)?,
                FieldStep::ActiveVariant(..) => {
                    let (_, inner) = self.active_variant(addr, ty)?;
                    if let Value::Place { addr: at, ty } = inner {
                        self.step(plan::Op::Offset {
                            offset: at.wrapping_sub(addr),
                            ty,
                        });
                    }
                    v = inner;
                }
                FieldStep::Missing(fields) => {
                    return Err(EvalError::NoField {
                        field: name.into(),
                        ty: t.name.clone(),
                        available: fields.iter().map(|f| f.name.clone()).collect(),
                    });
                }
            }
        }
        Err(EvalError::Limit {
            what: "depth",
            limit: MAX_HOPS as u64,
        })
    }

    /// `*v`: the pointee of a pointer, or what a view's `deref` says the value stands for.
    pub fn deref(&self, v: Value) -> Result<Value, EvalError> {
        let Value::Place { addr, ty } = v else {
            return Err(EvalError::Other(
                "only a value in memory can be dereferenced".into(),
            ));
        };
        let t = self.ty(ty)?;
        match t.kind {
            TypeKind::Pointer { pointee } => {
                let target = self.u64_le(addr)?;
                if target == 0 {
                    return Err(EvalError::NullPointer { ty: t.name.clone() });
                }
                let pointee = pointee.ok_or_else(|| EvalError::NotA {
                    what: "a pointer to a known type",
                    ty: t.name.clone(),
                })?;
                self.step(plan::Op::Load { ty: pointee });
                Ok(Value::Place {
                    addr: target,
                    ty: pointee,
                })
            }
            _ => match self.view_member(ty, "deref") {
                Some((view, m)) => self.eval_view_member(view, m, v),
                None => Err(EvalError::NotA {
                    what: "a pointer or a type with a `deref` view",
                    ty: t.name.clone(),
                }),
            },
        }
    }

    /// The name and data of the active variant of the enum at `addr`.
    pub fn active_variant(&self, addr: u64, ty: DieId) -> Result<(Arc<str>, Value), EvalError> {
        let (index, data) = self.active_variant_index(addr, ty)?;
        let t = self.ty(ty)?;
        let name = match &t.kind {
            TypeKind::Struct {
                variants: Some(vp), ..
            } => vp.variants.get(index).map(|v| v.field.name.clone()),
            _ => None,
        };
        Ok((name.unwrap_or_default(), data))
    }

    /// `active_variant`, with the variant by its index in the type's variant part.
    pub fn active_variant_index(&self, addr: u64, ty: DieId) -> Result<(usize, Value), EvalError> {
        let t = self.ty(ty)?;
        let TypeKind::Struct {
            variants: Some(vp), ..
        } = &t.kind
        else {
            return Err(EvalError::NotA {
                what: "an enum",
                ty: t.name.clone(),
            });
        };
        let chosen = match &vp.discr {
            None => vp.variants.first().map(|v| (0, v)),
            Some(d) => {
                let dty = d.ty.map(|d| self.ty(d)).transpose()?;
                let size = dty.map_or(8, |t| t.size).clamp(1, 8) as usize;
                let mut buf = [0u8; 8];
                self.read(addr.wrapping_add(d.offset), &mut buf[..size])?;
                let tag = u64::from_le_bytes(buf);
                let chosen = vp.select(tag);
                if self.recording.get() > 0 {
                    let explicit: smallvec::SmallVec<[u64; 4]> =
                        vp.variants.iter().filter_map(|v| v.discr_value).collect();
                    match chosen.map(|(_, c)| {
                        plan::tag_check(d.offset, size as u8, c.discr_value, &explicit)
                    }) {
                        Some(Some(check)) => self.step(check),
                        _ => self.spoil(),
                    }
                }
                chosen
            }
        };
        let (index, var) = chosen.ok_or_else(|| {
            EvalError::Other(format!(
                "enum `{}`: tag matches no variant (corrupt memory?)",
                t.name
            ))
        })?;
        Ok((index, place(addr, var.field.offset, var.field.ty, &t)?))
    }

    /// A number from a value: base types, pointers, C-like enums, and structs that stand
    /// for a number through a view's `deref` or by having one field (Rust newtypes).
    pub fn to_int(&self, v: &Value) -> Result<i128, EvalError> {
        let (addr, ty) = match v {
            Value::Int(i) => return Ok(*i),
            Value::Addr(a) => return Ok(i128::from(*a)),
            Value::Place { addr, ty } => (*addr, *ty),
            Value::Str(_) | Value::Seq(_) => {
                return Err(EvalError::Other("expected a number".into()));
            }
        };
        // Known for this type: one lookup gives the route to the number's bytes and how
        // to read them (the numbers of Sleep's `left_ms` were a third of a task's cost).
        if let Some(known) = self.cache.numbers.borrow().get(&ty)
            && let Some((at, _)) = self.replay(&known.planned, addr, ty)?
        {
            return self.read_number(at, known.read);
        }
        // The hops to the number's own bytes are the same for every value of a type.
        let at = self.planned(plan::Site::Number, Value::Place { addr, ty }, |v| {
            self.number_place(v)
        })?;
        let Value::Place {
            addr: at,
            ty: at_ty,
        } = at
        else {
            return self.to_int(&at);
        };
        let t = self.ty(at_ty)?;
        let read = match &t.kind {
            TypeKind::Base(BaseKind::Bool) => cache::ReadNumber::Bool,
            TypeKind::Base(kind) => cache::ReadNumber::Int {
                size: t.size.clamp(1, 16) as u8,
                signed: *kind == BaseKind::Signed,
            },
            TypeKind::Pointer { .. } => cache::ReadNumber::Pointer,
            TypeKind::CEnum { .. } => cache::ReadNumber::CEnum {
                size: t.size.clamp(1, 8) as u8,
            },
            _ => {
                return Err(EvalError::NotA {
                    what: "a number",
                    ty: t.name.clone(),
                });
            }
        };
        let route = match self.cache.plans.borrow().get(&(plan::Site::Number, ty)) {
            Some(cache::Known::Route(planned)) => Some(planned.clone()),
            _ => None,
        };
        if let Some(planned) = route {
            let shown = self.view_member(ty, "show").is_none()
                && self
                    .ty(ty)
                    .is_ok_and(|t| !matches!(t.kind, TypeKind::Pointer { .. }));
            let known = cache::Number {
                planned,
                read,
                shown,
            };
            self.cache.numbers.borrow_mut().insert(ty, known);
        }
        self.read_number(at, read)
    }

    /// `to_int(v).ok()`, without the error where the type is known not to be a number: a
    /// report's value tries it on every object a task holds (a tuple of futures, an
    /// `Arc`), and the cached error's clone and drop were two atomic counts each time. The
    /// same route is replayed and the same steps counted as `to_int` does.
    pub(crate) fn to_int_ok(&self, v: &Value) -> Option<i128> {
        if let Value::Place { addr, ty } = *v
            && self.recording.get() == 0
            && !self.cache.numbers.borrow().contains_key(&ty)
        {
            let plans = self.cache.plans.borrow();
            if let Some(cache::Known::Fails(planned, _)) = plans.get(&(plan::Site::Number, ty)) {
                match self.replay(planned, addr, ty) {
                    // Where `to_int` returns the cached error.
                    Ok(Some(_)) | Err(_) => return None,
                    // The route no longer holds: the long way, as `to_int` takes it.
                    Ok(None) => {}
                }
            }
        }
        self.to_int(v).ok()
    }

    /// Whether the number a value of type `ty` is shown as (`shown_number`) is a `bool`.
    pub(crate) fn shown_bool(&self, ty: DieId) -> bool {
        if let Some(n) = self.cache.numbers.borrow().get(&ty) {
            return matches!(n.read, cache::ReadNumber::Bool);
        }
        // Not worked out yet (a route being recorded): the type says.
        self.ty(ty)
            .is_ok_and(|t| matches!(t.kind, TypeKind::Base(BaseKind::Bool)))
    }

    /// The number a report shows for the value at `addr`, where its type is known to be
    /// shown as one (`cache::Number::shown`) and it can be read within the step limit:
    /// what `to_int` gives, with the steps it counts, in one lookup (not a view's `show`,
    /// then the type, then the number). None: the
    /// long way, with nothing counted yet (a route that no longer holds, memory the
    /// dump lacks, the step limit, a route being recorded).
    pub(crate) fn shown_number(&self, addr: u64, ty: DieId) -> Option<i128> {
        if self.recording.get() > 0 {
            return None;
        }
        let numbers = self.cache.numbers.borrow();
        let known = numbers.get(&ty).filter(|n| n.shown)?;
        let (route, steps) = &known.planned;
        let (at, _) = plan::replay(route, self, addr, ty)?;
        if self.steps.get().saturating_add(*steps) > self.step_limit.get() {
            return None;
        }
        let n = self.read_number(at, known.read).ok()?;
        self.charge(*steps).ok()?;
        Some(n)
    }

    pub(super) fn read_number(
        &self,
        addr: u64,
        read: cache::ReadNumber,
    ) -> Result<i128, EvalError> {
        match read {
            cache::ReadNumber::Int { size, signed } => {
                let size = usize::from(size);
                let mut buf = [0u8; 16];
                self.read(addr, &mut buf[..size])?;
                let raw = u128::from_le_bytes(buf);
                Ok(if signed && size < 16 {
                    let shift = 128 - 8 * size as u32;
                    ((raw << shift) as i128) >> shift
                } else {
                    raw as i128
                })
            }
            cache::ReadNumber::Bool => {
                let mut b = [0u8];
                self.read(addr, &mut b)?;
                Ok(i128::from(b[0]))
            }
            cache::ReadNumber::Pointer => Ok(i128::from(self.u64_le(addr)?)),
            cache::ReadNumber::CEnum { size } => {
                let mut buf = [0u8; 8];
                self.read(addr, &mut buf[..usize::from(size)])?;
                Ok(i128::from(u64::from_le_bytes(buf)))
            }
        }
    }

    /// Where the number a value stands for is: the value itself for a base type, a
    /// pointer or a C-like enum, else through newtypes and views' `deref`. A view may
    /// compute the number instead (then that is returned).
    pub(super) fn number_place(&self, mut v: Value) -> Result<Value, EvalError> {
        for _ in 0..MAX_HOPS {
            let Value::Place { addr, ty } = v else {
                return Ok(v);
            };
            let t = self.ty(ty)?;
            match &t.kind {
                TypeKind::Base(_) | TypeKind::Pointer { .. } | TypeKind::CEnum { .. } => {
                    return Ok(v);
                }
                TypeKind::Struct {
                    fields,
                    variants: None,
                } if fields.len() == 1 && self.view_member(ty, "deref").is_none() => {
                    v = self.member(addr, fields[0].offset, fields[0].ty, &t)?;
                }
                _ => v = self.step_in(v, &t, "number")?,
            }
        }
        Err(EvalError::Limit {
            what: "depth",
            limit: MAX_HOPS as u64,
        })
    }

    pub(super) fn binary(&self, op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
        if let (Value::Str(x), Value::Str(y)) = (a, b) {
            return match op {
                BinOp::Eq => Ok(Value::Int(i128::from(x == y))),
                BinOp::Ne => Ok(Value::Int(i128::from(x != y))),
                _ => Err(EvalError::Other(
                    "strings can only be compared with == and !=".into(),
                )),
            };
        }
        let (x, y) = (self.to_int(a)?, self.to_int(b)?);
        Ok(Value::Int(arith::int_op(op, x, y)?))
    }
}
