//! Collections read from memory: intrusive lists, slices and views with `items`, and the
//! `for` walks over them (in parallel for large lists).

use layoutdump_lang::program::{Builtin, Expr, ExprId, Slot};

use super::{
    EvalError, Evaluator, Frame, MAX_HOPS, Spent, Value, cache, first_repeat, place, plan, set,
};
use crate::dwarf::TypeKind;
use crate::memory::Bytes;
use crate::sync::lock;
use layoutdump_ordered as ordered;

impl<'a> Evaluator<'a> {
    /// Whether a `for` over `items` runs its body on several threads: when each item's
    /// body walks a list (tokio's OwnedTasks: one list per shard, a million tasks in
    /// eight lists), on an evaluator that is not itself one of many.
    pub(super) fn walks_in_parallel(&self, body: ExprId, items: usize) -> bool {
        self.parallel.get()
            && items >= 2
            && matches!(
                self.program.expr(body),
                Expr::Call {
                    func: Builtin::List,
                    ..
                }
            )
    }

    /// A `for` whose items' lists are walked in parallel, eight items at a time, each on
    /// an evaluator of its own given the steps this one has left; then, in item order, as
    /// the sequential `for` does: their warnings and steps added, the step limit checked,
    /// the lists joined, and the item limit applied (what an item past the cut warned is
    /// dropped, as it would not have been walked). A batch at a time, so a corrupt array
    /// of a million "shards" holds one batch of lists, not a million, and overshoots the
    /// step limit by one batch at most.
    pub(super) fn for_walks(
        &self,
        id: ExprId,
        var: Slot,
        items: Vec<Value>,
        body: ExprId,
        frame: &mut Frame,
    ) -> Result<Value, EvalError> {
        // Not by the thread count: each batch's budget is what the ones before left,
        // and a limit must cut the same lists on any number of threads.
        const BATCH: usize = 8;
        let base: &Frame = frame;
        let mut out = Vec::new();
        // Each batch's seed: the steps the run had left once the batch before was joined.
        let seeds = std::sync::Mutex::new(vec![self.seed()]);
        // The batch being joined (its walks, in item order), and how the walk ended early.
        let mut batch: Vec<(Result<Value, EvalError>, Spent)> = Vec::with_capacity(BATCH);
        let ended: std::cell::RefCell<Option<Result<(), EvalError>>> = Default::default();
        let plan = ordered::Plan {
            chunks: items.len(),
            workers: rayon::current_num_threads().min(BATCH),
            starts_after: ordered::batches(BATCH),
        };
        let _ = ordered::run(
            plan,
            |_| (),
            |_, at| {
                // A batch's seed is there once the batch before was joined; not when the
                // walk ended early, in which case nothing made here is used.
                let Some(w) = lock(&seeds).get(at / BATCH).map(|s| s.evaluator()) else {
                    return (Ok(Value::Seq(Vec::new())), Spent::default());
                };
                let mut f = base.clone();
                set(&mut f, var.0, items[at].clone());
                let r = w.eval(body, &mut f);
                (r, w.drain())
            },
            |_, _| {},
            |at, walked| {
                batch.push(std::mem::replace(
                    walked,
                    (Ok(Value::Int(0)), Spent::default()),
                ));
                if (at + 1) % BATCH != 0 && at + 1 != items.len() {
                    return;
                }
                // Room for this batch's lists at once, not grown by doubling (a million
                // tasks' places are 37 MB).
                let room: usize = batch
                    .iter()
                    .map(|(r, _)| match r {
                        Ok(Value::Seq(inner)) => inner.len(),
                        _ => 1,
                    })
                    .sum();
                out.reserve(room.min(usize::try_from(self.limits.items).unwrap_or(usize::MAX)));
                for (r, spent) in batch.drain(..) {
                    self.absorb(spent);
                    // Over the limit with this item's steps: stopped here, as in sequence.
                    let joined = self
                        .charge(0)
                        .and(r)
                        .map(|v| self.join_item(id, &mut out, v));
                    match joined {
                        Ok(false) => {}
                        Ok(true) => return *ended.borrow_mut() = Some(Ok(())),
                        Err(e) => return *ended.borrow_mut() = Some(Err(e)),
                    }
                }
                lock(&seeds).push(self.seed());
            },
            // A walk that ended early ends the run: what comes after is not walked.
            |_, _| match ended.borrow().is_some() {
                true => Err(()),
                false => Ok(()),
            },
        );
        match ended.into_inner() {
            Some(Err(e)) => Err(e),
            _ => Ok(Value::Seq(out)),
        }
    }

    /// Adds what a `for`'s body gave for one item to `out` (a sequence is flattened);
    /// true when that reached the item limit, and `out` was cut to it.
    pub(super) fn join_item(&self, id: ExprId, out: &mut Vec<Value>, v: Value) -> bool {
        match v {
            Value::Seq(inner) => out.extend(inner),
            v => out.push(v),
        }
        // Cut short, not lost: a runtime with one task more than the limit lists the
        // limit's worth and says so (as `list` does), rather than none at all.
        let limit = usize::try_from(self.limits.items).unwrap_or(usize::MAX);
        if out.len() <= limit {
            return false;
        }
        out.truncate(limit);
        let here = self.program.location(self.program.span(id));
        self.warn(format!(
            "for at {here}: item limit {limit} reached; the rest is not shown (raise it with --limit-items)"
        ));
        true
    }

    /// `list(first, n => next)`: an intrusive list, stopped at a null/None, a node seen
    /// before (a cycle in a corrupt dump), or the item limit. A node that cannot be read
    /// ends the list with a warning; the nodes read so far are kept.
    pub(super) fn list(&self, args: &[ExprId], frame: &mut Frame) -> Result<Value, EvalError> {
        let (Some(first), Some(next)) = (args.first(), args.get(1)) else {
            return Err(EvalError::Other("list() takes 2 arguments".into()));
        };
        let Expr::Lambda { param, body } = self.program.expr(*next) else {
            return Err(EvalError::Other(
                "list() needs `node => next` as its second argument".into(),
            ));
        };
        let first = self.eval(*first, frame)?;
        let mut node = self.list_node(first)?;
        let mut out = Vec::new();
        let here = self.program.location(self.program.span(*next));
        // A cycle (a corrupt dump) is noticed by Brent's method, with no set of the nodes
        // seen: the node at the last power-of-two step is kept, and meeting it again
        // means a cycle.
        let (mut kept, mut power, mut since) = (None, 1usize, 0usize);
        while let Some(n) = node {
            let Value::Place { addr, .. } = n else { break };
            let limit_reached = out.len() as u64 >= self.limits.items;
            if kept == Some(addr) || limit_reached {
                // Cut exactly where the first node came round again, as a set of the
                // nodes would have: Brent's method notices a little later.
                if let Some(at) = first_repeat(&out, addr) {
                    let again = match out.get(at) {
                        Some(Value::Place { addr, .. }) => *addr,
                        _ => addr,
                    };
                    out.truncate(at);
                    self.warn(format!(
                        "list at {here}: node {again:#x} seen twice (a cycle); stopped after {} items",
                        out.len()
                    ));
                } else {
                    self.warn(format!(
                        "list at {here}: item limit {} reached; the rest is not shown",
                        self.limits.items
                    ));
                }
                break;
            }
            since += 1;
            if since == power {
                kept = Some(addr);
                power = power.saturating_mul(2);
                since = 0;
            }
            // A link into memory the dump lacks ends the list here, rather than yielding
            // a node whose every field would be unavailable.
            if let Err(e) = self.read(addr, &mut [0u8; 1]) {
                self.warn(format!(
                    "list at {here}: stopped after {} items: {e}",
                    out.len()
                ));
                break;
            }
            out.push(n.clone());
            set(frame, param.0, n);
            node = match self.eval(*body, frame).and_then(|v| self.list_node(v)) {
                Ok(next) => {
                    // The next node's reads (tokio: its header, then its trailer a few
                    // hundred bytes on) asked for at once, not one after the other.
                    self.prefetch_item(next.as_ref());
                    next
                }
                Err(e) => {
                    self.warn(format!(
                        "list at {here}: stopped after {} items: {e}",
                        out.len()
                    ));
                    None
                }
            };
        }
        Ok(Value::Seq(out))
    }

    /// A list link as a node: follows pointers and views (NonNull, Option) to the
    /// pointee; None for null or `None`. The hops are a route per link type (see `plan`),
    /// replayed for every link of that type. A replay
    /// fails where the link is null or `None` (its steps check that), and the long way
    /// then says which.
    pub(super) fn list_node(&self, v: Value) -> Result<Option<Value>, EvalError> {
        let Value::Place { addr, ty } = v else {
            return self.list_node_hops(v);
        };
        let key = (plan::Site::Node, ty);
        if let Some(cache::Known::Route(planned)) = self.cache.plans.borrow().get(&key)
            && let Some((addr, ty)) = self.replay(planned, addr, ty)?
        {
            return Ok(Some(Value::Place { addr, ty }));
        }
        if self.cache.plans.borrow().contains_key(&key) {
            let r = self.list_node_hops(v);
            self.spoil();
            return r;
        }
        let (r, route, steps) = self.record(|| self.list_node_hops(v));
        // Only a node found is a route; the end of a list depends on this link's value.
        if let Ok(Some(Value::Place { .. })) = &r {
            let known = route.map_or(cache::Known::NotPlain, |route| {
                cache::Known::Route((route, steps))
            });
            self.cache.plans.borrow_mut().insert(key, known);
        }
        self.spoil();
        r
    }

    pub(super) fn list_node_hops(&self, mut v: Value) -> Result<Option<Value>, EvalError> {
        for _ in 0..MAX_HOPS {
            match &v {
                Value::Int(0) | Value::Addr(0) => return Ok(None),
                Value::Place { addr, ty } => {
                    let t = self.ty(*ty)?;
                    match t.kind {
                        TypeKind::Pointer { .. } => {
                            if self.u64_le(*addr)? == 0 {
                                return Ok(None);
                            }
                            v = self.deref(v)?;
                        }
                        _ => match self.view_member(*ty, "deref") {
                            Some((view, m)) => match self.eval_view_member(view, m, v.clone()) {
                                Ok(next) => v = next,
                                Err(e) if e.is_absent() => return Ok(None),
                                Err(e) => return Err(e),
                            },
                            None => return Ok(Some(v)),
                        },
                    }
                }
                _ => {
                    return Err(EvalError::Other(
                        "a list link must be a pointer or an Option".into(),
                    ));
                }
            }
        }
        Err(EvalError::Limit {
            what: "depth",
            limit: MAX_HOPS as u64,
        })
    }

    pub(super) fn slice(&self, first: Value, len: i128) -> Result<Value, EvalError> {
        let first = match &first {
            Value::Place { ty, .. } if matches!(self.ty(*ty)?.kind, TypeKind::Pointer { .. }) => {
                self.deref(first)?
            }
            _ => first,
        };
        let Value::Place { addr, ty } = first else {
            return Err(EvalError::Other(
                "slice() needs the first element or a pointer to it".into(),
            ));
        };
        let len = u64::try_from(len)
            .map_err(|_| EvalError::Other(format!("negative slice length {len}")))?;
        if len > self.limits.items {
            return Err(EvalError::Limit {
                what: "items",
                limit: self.limits.items,
            });
        }
        let size = self.ty(ty)?.size;
        let items = (0..len)
            .map(|i| Value::Place {
                addr: addr.wrapping_add(i.wrapping_mul(size)),
                ty,
            })
            .collect();
        Ok(Value::Seq(items))
    }

    /// The elements of a sequence: a `Seq`, an array, or a type whose view has `items`.
    pub fn items(&self, mut v: Value) -> Result<Vec<Value>, EvalError> {
        for _ in 0..MAX_HOPS {
            match v {
                Value::Seq(items) => return Ok(items),
                Value::Place { addr, ty } => {
                    let t = self.ty(ty)?;
                    if let TypeKind::Array { elem, count } = t.kind {
                        return match self.slice(
                            Value::Place { addr, ty: elem },
                            i128::from(count.unwrap_or(0)),
                        )? {
                            Value::Seq(items) => Ok(items),
                            _ => Ok(vec![]),
                        };
                    }
                    // A tuple's elements, in order (the futures of a join!).
                    if let TypeKind::Struct {
                        fields,
                        variants: None,
                    } = &t.kind
                        && t.name.starts_with('(')
                    {
                        let mut fields: Vec<_> =
                            fields.iter().filter(|f| f.name.starts_with("__")).collect();
                        fields.sort_by_key(|f| f.name[2..].parse::<u32>().unwrap_or(u32::MAX));
                        return fields
                            .iter()
                            .map(|f| place(addr, f.offset, f.ty, &t))
                            .collect();
                    }
                    if let Some((view, m)) = self.view_member(ty, "items") {
                        v = self.eval_view_member(view, m, v)?;
                        continue;
                    }
                    v = self.step_in(v, &t, "items")?;
                }
                _ => return Err(EvalError::Other("not a sequence".into())),
            }
        }
        Err(EvalError::Limit {
            what: "depth",
            limit: MAX_HOPS as u64,
        })
    }
}
