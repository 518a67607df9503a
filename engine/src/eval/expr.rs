//! Evaluating one expression of a rule: names, members, chains of fields, operators,
//! calls, `for`, conditions; counted against the step limit.

use std::sync::Arc;

use layoutdump_lang::program::{Expr, ExprId, ParamSource, Slot, UnOp};

use super::{EvalError, Evaluator, Frame, Value, arith, cache, local, new_frame, plan, set};
use crate::dwarf::DieId;

impl<'a> Evaluator<'a> {
    pub(super) fn eval(&self, id: ExprId, frame: &mut Frame) -> Result<Value, EvalError> {
        self.charge(1)?;
        let expr = self.program.expr(id);
        if self.recording.get() > 0
            && !matches!(
                expr,
                Expr::Field(..) | Expr::Unary(UnOp::Deref, _) | Expr::Local(Slot(0))
            )
        {
            self.spoil();
        }
        match expr {
            Expr::Int(n) => Ok(Value::Int(i128::from(*n))),
            Expr::Str(s) => Ok(Value::Str(self.name(s))),
            Expr::Static(path) => {
                let known = self.cache.statics.borrow().get(&id).cloned();
                let found = known.unwrap_or_else(|| {
                    let found = self.dbg.static_variable(path);
                    self.cache.statics.borrow_mut().insert(id, found.clone());
                    found
                });
                let (link, ty) = found.map_err(EvalError::Other)?;
                Ok(Value::Place {
                    addr: link.wrapping_add(self.bias),
                    ty,
                })
            }
            Expr::Local(slot) => local(frame, *slot),
            Expr::Field(base, name) => {
                if matches!(self.program.expr(*base), Expr::Field(..)) {
                    return self.field_chain(id, frame);
                }
                let v = self.eval(*base, frame)?;
                self.planned(plan::Site::Field(id), v, |v| self.field(v, name))
            }
            Expr::Index(base, index) => {
                let items = self.eval(*base, frame)?;
                let i = self.eval(*index, frame)?;
                let i = self.to_int(&i)?;
                let items = self.items(items)?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.into_iter().nth(i))
                    .ok_or_else(|| EvalError::Other(format!("index {i} out of range")))
            }
            Expr::Unary(op, e) => {
                let v = self.eval(*e, frame)?;
                match op {
                    UnOp::Deref => self.deref(v),
                    UnOp::Neg | UnOp::Not => {
                        let x = self.to_int(&v)?;
                        Ok(Value::Int(arith::int_unary(*op, x).unwrap_or_default()))
                    }
                }
            }
            Expr::Binary(op, a, b) => {
                if let Some(v) = self.compiled_arith(id, frame) {
                    return Ok(v);
                }
                let a = self.eval(*a, frame)?;
                let b = self.eval(*b, frame)?;
                let r = self.binary(*op, &a, &b);
                if r.is_ok() {
                    self.compile_arith(id, frame);
                }
                r
            }
            Expr::Cast {
                value,
                ty,
                vars,
                from,
            } => {
                let v = self.eval(*value, frame)?;
                let mut bound: smallvec::SmallVec<[DieId; cache::CAST_KEY_PARAMS]> =
                    smallvec::SmallVec::new();
                // `from fn`: the function's address, by which the target is cached.
                let mut by_fn = None;
                if let Some((source, e)) = from {
                    let params: cache::Params = match source {
                        ParamSource::Function => {
                            let target = self.eval(*e, frame)?;
                            let addr = self.to_int(&target)? as u64;
                            let known = self.cache.fn_casts.borrow().get(&(id, addr)).copied();
                            if let Some(target) = known {
                                return self.cast_to(v, target);
                            }
                            by_fn = Some(addr);
                            self.fn_params(addr)?
                        }
                        ParamSource::TypeOf => {
                            let of = self.eval(*e, frame)?;
                            let Value::Place { ty, .. } = of else {
                                return Err(EvalError::Other(
                                    "`from type` needs a value in memory".into(),
                                ));
                            };
                            Arc::from(self.ty(ty)?.template_params.as_slice())
                        }
                    };
                    for (i, var) in vars.iter().enumerate() {
                        let (_, die) = params.get(i).ok_or_else(|| {
                            EvalError::Other(format!(
                                "`{var}`: the source has only {} generic parameters",
                                params.len()
                            ))
                        })?;
                        bound.push(*die);
                    }
                }
                let target = self.cast_target(id, ty, vars, &bound)?;
                if let Some(addr) = by_fn {
                    let mut known = self.cache.fn_casts.borrow_mut();
                    // Keyed by an address read from the dump: bounded, as a hostile dump
                    // may give every task a different one (a real program has a few).
                    if known.len() < cache::MAX_BY_ADDRESS {
                        known.insert((id, addr), target);
                    }
                }
                self.cast_to(v, target)
            }
            Expr::Call { func, args } => self.builtin(*func, args, frame),
            Expr::CallFn { func, args } => {
                let f = &self.program.functions[func.0 as usize];
                let mut inner = new_frame(f.frame_size);
                for (i, a) in args.iter().enumerate() {
                    let v = self.eval(*a, frame)?;
                    if let Some(slot) = inner.get_mut(i) {
                        *slot = Some(v);
                    }
                }
                self.nested(|| self.eval(f.body, &mut inner))
            }
            Expr::CallHook { hook, args } => {
                let h = &self.program.hooks[hook.0 as usize];
                let values = args
                    .iter()
                    .map(|a| self.eval(*a, frame))
                    .collect::<Result<Vec<_>, _>>()?;
                self.call_hook(h, values)
            }
            Expr::For {
                var,
                seq,
                filter,
                body,
            } => {
                let seq = self.eval(*seq, frame)?;
                let items = self.items(seq)?;
                if filter.is_none() && self.walks_in_parallel(*body, items.len()) {
                    return self.for_walks(id, *var, items, *body, frame);
                }
                let mut out = Vec::new();
                for item in items {
                    set(frame, var.0, item);
                    if let Some(f) = filter {
                        let keep = match self.eval(*f, frame) {
                            Ok(v) => !matches!(self.to_int(&v), Ok(0) | Err(_)),
                            Err(e @ EvalError::Limit { .. }) => return Err(e),
                            Err(_) => false,
                        };
                        if !keep {
                            continue;
                        }
                    }
                    let v = self.eval(*body, frame)?;
                    if self.join_item(id, &mut out, v) {
                        break;
                    }
                }
                Ok(Value::Seq(out))
            }
            Expr::Bits { value, arms } => {
                let v = self.eval(*value, frame)?;
                let bits = self.to_int(&v)?;
                let label = arms
                    .iter()
                    .find(|(mask, _)| mask.is_none_or(|m| bits & i128::from(m) != 0))
                    .map(|(_, l)| self.name(l))
                    .unwrap_or_else(|| format!("{bits:#x}").into());
                Ok(Value::Str(label))
            }
            Expr::Flags { value, flags } => {
                let v = self.eval(*value, frame)?;
                let bits = self.to_int(&v)?;
                Ok(Value::Seq(
                    flags
                        .iter()
                        .filter(|(_, m)| bits & i128::from(*m) != 0)
                        .map(|(n, _)| Value::Str(self.name(n)))
                        .collect(),
                ))
            }
            Expr::Lambda { .. } => Err(EvalError::Other(
                "a `x => …` function is only allowed in `list`".into(),
            )),
            // A compiled program has no unresolved expression.
            Expr::Unresolved(never) => match *never {},
        }
    }

    /// `a.b.c.d` as one site: the root `a` is evaluated, then the whole chain of members
    /// is replayed from its type at once (Sleep's `s.deadline.std.0.t.tv_sec`: two
    /// evaluations and one plan lookup a task). The long way
    /// is the links one by one, each planned as before. Every link is counted before the
    /// root is evaluated, as evaluating them one inside the other did, so a chain that
    /// fails (or meets the step limit) counts what it counted before.
    pub(super) fn field_chain(&self, top: ExprId, frame: &mut Frame) -> Result<Value, EvalError> {
        let (root, inner) = self.program.chain_shape(top);
        // Each inner link is an evaluation of its own (`top` was counted).
        self.charge(u64::from(inner))?;
        let v = match self.program.expr(root) {
            // A binding, as `eval` gives it (it counts one step) without its dispatch:
            // most chains start at one (`s.deadline.std.0.t.tv_sec`).
            Expr::Local(slot) if self.recording.get() == 0 => {
                self.charge(1)?;
                local(frame, *slot)?
            }
            _ => self.eval(root, frame)?,
        };
        self.planned(plan::Site::Chain(top), v, |mut v| {
            // The long way, member by member from the root's.
            let mut links: smallvec::SmallVec<[ExprId; 8]> = smallvec::smallvec![top];
            let mut at = top;
            while let Expr::Field(base, _) = self.program.expr(at) {
                at = *base;
                if matches!(self.program.expr(at), Expr::Field(..)) {
                    links.push(at);
                }
            }
            for &link in links.iter().rev() {
                let Expr::Field(_, name) = self.program.expr(link) else {
                    unreachable!("links are fields")
                };
                v = self.planned(plan::Site::Field(link), v, |v| self.field(v, name))?;
            }
            Ok(v)
        })
    }
}
