//! The evaluator: runs a compiled layout's expressions against dump memory and DWARF.
//! It knows Rust's representation (structs, enums, pointers, arrays) and nothing about any
//! crate: every library type is understood through the layout's views.

mod arith;
mod cache;
mod hook;
mod plan;
mod value;

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use layoutdump_lang::program::{BinOp, Builtin, Expr, ExprId, ParamSource, Program, Slot, UnOp};

use crate::dwarf::{BaseKind, DebugInfo, DieId, LinkAddr, Type, TypeKind};
use crate::memory::{Bytes, Memory, MemoryError};
pub use cache::FrameFacts;
pub use value::{EvalError, Value};

/// Bounds on the work a layout and a dump can cause. Each has a default and a flag.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Items of one list, slice or `for`.
    pub items: u64,
    /// Nested calls of layout functions and view members.
    pub depth: u32,
    /// Expression evaluations in one run.
    pub steps: u64,
    /// Bounds of each rhai hook call.
    pub hook: layoutdump_lang::hook::HookLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A runtime's task list is one list: production services hold a million
            // tasks and more (a list of four million is 128 MB of values).
            items: 4_000_000,
            depth: 64,
            // tokio takes 80 to 110 steps per task (deeper chains, joins): room for
            // the items above, and still a bound on a run's time.
            steps: 400_000_000,
            hook: Default::default(),
        }
    }
}

/// Bytes of a string that `str()` reads.
const MAX_STR: u64 = 256;

/// How many pointer/view hops one field access or coercion may take.
const MAX_HOPS: usize = 32;

pub struct Evaluator<'a> {
    pub program: &'a Program,
    pub dbg: &'a DebugInfo,
    pub mem: &'a dyn Memory,
    /// Runtime address minus link-time address of the main executable.
    pub bias: u64,
    pub limits: Limits,
    views: RefCell<rustc_hash::FxHashMap<DieId, Option<usize>>>,
    steps: Cell<u64>,
    /// Steps this evaluator may take: `limits.steps`, or less (`set_step_limit`).
    step_limit: Cell<u64>,
    /// Whether it may walk a `for`'s lists on several threads: not when it is itself one
    /// of several evaluators running in parallel (`one_of_many`).
    parallel: Cell<bool>,
    depth: Cell<u32>,
    /// Problems that did not stop evaluation (a list cut short), in order.
    pub warnings: RefCell<Vec<String>>,
    /// What each root and rule found, for `check --explain`.
    pub usage: RefCell<crate::explain::Usage>,
    /// The rhai engine, made at the first hook call.
    hooks: std::cell::OnceCell<hook::HookEngine>,
    cache: cache::Caches,
    /// What hooks printed on worker threads' evaluators (`absorb`).
    absorbed_printed: RefCell<Vec<String>>,
    /// Routes being recorded (see `plan`), and how many: checked on every step.
    recorder: RefCell<plan::Recorder>,
    recording: Cell<u32>,
    /// The stretches of memory read from last (see `read`).
    windows: crate::memory::Windows<'a>,
}

/// The ingredients of an evaluator, shareable between threads (see `Evaluator::seed`).
#[derive(Clone, Copy)]
pub struct Seed<'a> {
    program: &'a Program,
    dbg: &'a DebugInfo,
    mem: &'a dyn Memory,
    bias: u64,
    limits: Limits,
    /// Steps a worker may take (what the run had left when it was seeded).
    steps_left: u64,
    /// Nesting of calls where it was seeded: a worker goes on from there.
    depth: u32,
}

impl<'a> Seed<'a> {
    pub fn evaluator(&self) -> Evaluator<'a> {
        let ev = Evaluator::new(self.program, self.dbg, self.mem, self.bias, self.limits);
        ev.set_step_limit(self.steps_left);
        ev.depth.set(self.depth);
        ev.one_of_many();
        ev
    }
}

/// What a worker's evaluator gathered for the run (see `Evaluator::drain`).
pub struct Spent {
    pub(crate) warnings: Vec<String>,
    usage: crate::explain::Usage,
    pub(crate) steps: u64,
    pub(crate) printed: Vec<String>,
}

/// A rule's members' results, by name (see `Evaluator::eval_members`): on the stack, as
/// rules have a handful (a tokio task's rule and a `Sleep`'s were two allocations a task).
pub type Members<'m> = smallvec::SmallVec<[(&'m str, Result<Value, EvalError>); 5]>;

/// A frame of `size` empty slots (at least one, the subject's). Built from an array of
/// empty slots in place: `smallvec![None; n]` built it and then copied it out (a call to
/// memcpy for each of the several frames of a task).
#[inline(always)]
fn new_frame(size: u16) -> Frame {
    const EMPTY: Option<Value> = None;
    let size = usize::from(size.max(1));
    if size <= FRAME_INLINE {
        Frame::from_buf_and_len([EMPTY; FRAME_INLINE], size)
    } else {
        smallvec::smallvec![None; size]
    }
}

/// The value of the binding in `slot`.
#[inline(always)]
fn local(frame: &Frame, slot: Slot) -> Result<Value, EvalError> {
    match frame.get(usize::from(slot.0)) {
        // Nearly every binding: copied without the clone of a string's or a list's.
        Some(Some(Value::Place { addr, ty })) => Ok(Value::Place {
            addr: *addr,
            ty: *ty,
        }),
        Some(Some(v)) => Ok(v.clone()),
        _ => Err(EvalError::Other(
            "binding used before it has a value".into(),
        )),
    }
}

/// A rule's or function's slots: a handful, made for every view member and rule evaluated
/// (several per task), so kept on the stack.
type Frame = smallvec::SmallVec<[Option<Value>; FRAME_INLINE]>;

/// Slots a frame holds without allocating.
const FRAME_INLINE: usize = 8;

impl<'a> Evaluator<'a> {
    pub fn new(
        program: &'a Program,
        dbg: &'a DebugInfo,
        mem: &'a dyn Memory,
        bias: u64,
        limits: Limits,
    ) -> Self {
        Evaluator {
            program,
            dbg,
            mem,
            bias,
            limits,
            views: RefCell::new(Default::default()),
            steps: Cell::new(0),
            step_limit: Cell::new(limits.steps),
            parallel: Cell::new(true),
            depth: Cell::new(0),
            warnings: RefCell::new(Vec::new()),
            hooks: std::cell::OnceCell::new(),
            usage: RefCell::new(crate::explain::Usage::new(program)),
            cache: cache::Caches::default(),
            absorbed_printed: RefCell::new(Vec::new()),
            recorder: RefCell::new(Default::default()),
            recording: Cell::new(0),
            windows: Default::default(),
        }
    }

    /// Fills `buf` from `addr`, as `Memory::read` does, from the stretches of memory in
    /// hand where they hold it: a read through the memory took ninety instructions, and
    /// a task takes two dozen.
    #[inline]
    pub(crate) fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.windows.read(self.mem, addr, buf)
    }

    /// Asks for the `len` bytes at `addr` ahead of reading them (`Memory::prefetch`).
    pub(crate) fn prefetch(&self, addr: u64, len: usize) {
        self.windows.prefetch(self.mem, addr, len);
    }

    /// Evaluates `site` on `v` by replaying the route recorded for v's type, or the long
    /// way (`slow`), recording the route the first time (see `plan`).
    fn planned(
        &self,
        site: plan::Site,
        v: Value,
        slow: impl FnOnce(Value) -> Result<Value, EvalError>,
    ) -> Result<Value, EvalError> {
        let Value::Place { addr, ty } = v else {
            return slow(v);
        };
        let key = (site, ty);
        let known = {
            let plans = self.cache.plans.borrow();
            match plans.get(&key) {
                Some(cache::Known::Route(planned)) => {
                    if let Some((addr, ty)) = self.replay(planned, addr, ty)? {
                        return Ok(Value::Place { addr, ty });
                    }
                    true
                }
                Some(cache::Known::Fails(planned, error)) => {
                    if self.replay(planned, addr, ty)?.is_some() {
                        self.spoil();
                        return Err(error.clone());
                    }
                    true
                }
                Some(cache::Known::NotPlain) => true,
                None => false,
            }
        };
        if known {
            let r = slow(v);
            if !matches!(r, Ok(Value::Place { .. })) {
                self.spoil();
            }
            return r;
        }
        let (r, route, steps) = self.record(|| slow(v));
        let known = match (&r, route) {
            (Ok(Value::Place { .. }), Some(route)) => Some(cache::Known::Route((route, steps))),
            (Ok(Value::Place { .. }), None) => Some(cache::Known::NotPlain),
            // Not a place (a number, a string): not a route, now or later.
            (Ok(_), _) => {
                self.spoil();
                Some(cache::Known::NotPlain)
            }
            (Err(e), Some(route)) if e.is_of_type() => {
                self.spoil();
                Some(cache::Known::Fails((route, steps), e.clone()))
            }
            // Decided on a value that can be read, not on this one.
            (Err(_), _) => {
                self.spoil();
                None
            }
        };
        if let Some(known) = known {
            self.cache.plans.borrow_mut().insert(key, known);
        }
        r
    }

    /// Replays a recorded route from the object at `addr`: where it leads, or None where
    /// the route no longer holds. The steps are counted as the long way counted them (what
    /// a run may do within `--limit-steps` does not depend on what a thread has cached),
    /// and go to the routes being recorded.
    fn replay(
        &self,
        (route, steps): &cache::Planned,
        addr: u64,
        ty: DieId,
    ) -> Result<Option<(u64, DieId)>, EvalError> {
        let Some(at) = plan::replay(route, self, addr, ty) else {
            return Ok(None);
        };
        if self.recording.get() > 0 {
            self.recorder.borrow_mut().steps(route);
        }
        self.charge(*steps)?;
        Ok(Some(at))
    }

    /// Runs `f` while recording the route it takes: its result, the route (None where it
    /// was not plain) and the steps it took.
    fn record<T>(&self, f: impl FnOnce() -> T) -> (T, Option<plan::Plan>, u64) {
        self.recorder.borrow_mut().begin();
        self.recording.set(self.recording.get() + 1);
        let before = self.steps.get();
        let r = f();
        let steps = self.steps.get().saturating_sub(before);
        self.recording.set(self.recording.get() - 1);
        (r, self.recorder.borrow_mut().end(), steps)
    }

    /// A plain step of the route being recorded, if any.
    fn step(&self, op: plan::Op) {
        if self.recording.get() > 0 {
            self.recorder.borrow_mut().step(op);
        }
    }

    /// The routes being recorded are not plain (see `plan`).
    fn spoil(&self) {
        if self.recording.get() > 0 {
            self.recorder.borrow_mut().spoil();
        }
    }

    /// What a worker thread needs to make an evaluator of its own for part of this run
    /// (an evaluator is not shared between threads: its caches are unlocked). The
    /// worker's step budget is what this one has left.
    pub fn seed(&self) -> Seed<'a> {
        Seed {
            program: self.program,
            dbg: self.dbg,
            mem: self.mem,
            bias: self.bias,
            limits: self.limits,
            steps_left: self.step_limit.get().saturating_sub(self.steps.get()),
            depth: self.depth.get(),
        }
    }

    /// Takes what this evaluator gathered that belongs to the run (warnings, rule hits,
    /// steps, hook output), leaving it empty, for `absorb` by the run's own evaluator.
    pub fn drain(&self) -> Spent {
        Spent {
            warnings: std::mem::take(&mut *self.warnings.borrow_mut()),
            usage: std::mem::replace(
                &mut *self.usage.borrow_mut(),
                crate::explain::Usage::new(self.program),
            ),
            steps: self.steps.replace(0),
            printed: self
                .hooks
                .get()
                .map(|h| h.take_printed())
                .unwrap_or_default(),
        }
    }

    /// Adds what a worker's evaluator gathered (see `drain`) to this one.
    pub fn absorb(&self, spent: Spent) {
        for w in spent.warnings {
            self.warn(w);
        }
        self.usage.borrow_mut().add(&spent.usage);
        self.steps.set(self.steps.get().saturating_add(spent.steps));
        self.absorbed_printed.borrow_mut().extend(spent.printed);
    }

    /// Marks this evaluator as one of several running in parallel (a worker reading
    /// tasks): it evaluates everything on its own thread.
    pub(crate) fn one_of_many(&self) {
        self.parallel.set(false);
    }

    /// Lets this evaluator take `steps` more steps than it has taken since `drain`: a
    /// worker reading chunk after chunk gets, for each, what the run has left.
    pub(crate) fn set_step_limit(&self, steps: u64) {
        self.step_limit.set(steps);
    }

    /// Expression evaluations so far (see `Limits::steps`).
    pub fn steps_used(&self) -> u64 {
        self.steps.get()
    }

    pub fn ty(&self, id: DieId) -> Result<std::rc::Rc<Type>, EvalError> {
        if let Some(t) = self.cache.types.borrow().get(&id) {
            return Ok(t.clone());
        }
        let t = std::rc::Rc::new(self.dbg.ty(id)?.unshared());
        self.cache.types.borrow_mut().insert(id, t.clone());
        Ok(t)
    }

    /// `name` as a shared string, made once. Only for the layout's own strings and
    /// literals: they are cached by address (`NameKey`), and a temporary string's
    /// address could later hold another name.
    pub(crate) fn name(&self, name: &str) -> smol_str::SmolStr {
        let key = cache::NameKey::of(name);
        if let Some(n) = self.cache.names.borrow().get(&key) {
            return n.clone();
        }
        let n = smol_str::SmolStr::new(name);
        self.cache.names.borrow_mut().insert(key, n.clone());
        n
    }

    /// The facts of an await frame for `key` (type, state), made by `make` the first time.
    pub fn frame_facts(
        &self,
        key: (DieId, usize),
        make: impl FnOnce() -> FrameFacts,
    ) -> std::rc::Rc<FrameFacts> {
        if let Some(f) = self.cache.frames.borrow().get(&key) {
            return f.clone();
        }
        let f = std::rc::Rc::new(make());
        self.cache.frames.borrow_mut().insert(key, f.clone());
        f
    }

    /// The concrete type behind a trait object whose vtable is at the runtime address
    /// `vtable`.
    pub(crate) fn vtable_target(&self, vtable: u64) -> Result<DieId, EvalError> {
        self.dbg
            .vtable_type(LinkAddr(vtable.wrapping_sub(self.bias)))
            .ok_or_else(|| {
                EvalError::Other(format!(
                    "no vtable known at {vtable:#x}: cannot tell the concrete type"
                ))
            })
    }

    /// A type's generic-descent routes, if worked out (`descent::routes`).
    pub(crate) fn cached_routes(&self, ty: DieId) -> Option<std::rc::Rc<[crate::descent::Route]>> {
        self.cache.routes.borrow().get(&ty).cloned()
    }

    pub(crate) fn cache_routes(&self, ty: DieId, routes: std::rc::Rc<[crate::descent::Route]>) {
        self.cache.routes.borrow_mut().insert(ty, routes);
    }

    /// Indexes of the rules of `kind` whose pattern matches the type (their guards are
    /// for the caller to evaluate on the value).
    pub fn rules_for(
        &self,
        kind: layoutdump_lang::program::RuleKind,
        ty: DieId,
    ) -> Result<cache::RuleSet, EvalError> {
        if let Some(r) = self.cache.rules.borrow().get(&(kind, ty)) {
            return Ok(r.clone());
        }
        let t = self.ty(ty)?;
        let found: cache::RuleSet = self
            .program
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == kind && r.pattern.matches(&t.name))
            .map(|(i, _)| i)
            .collect();
        self.cache
            .rules
            .borrow_mut()
            .insert((kind, ty), found.clone());
        Ok(found)
    }

    /// Generic parameters of the function whose code holds the runtime address `addr`.
    fn fn_params(&self, addr: u64) -> Result<cache::Params, EvalError> {
        let link = addr.wrapping_sub(self.bias);
        let cached = self.cache.fn_params.borrow().get(&link).cloned();
        let params = match cached {
            Some(p) => p,
            None => {
                let p = self
                    .dbg
                    .function_at(LinkAddr(link))
                    .map(|f| Arc::from(f.template_params));
                let mut known = self.cache.fn_params.borrow_mut();
                if known.len() < cache::MAX_BY_ADDRESS {
                    known.insert(link, p.clone());
                }
                p
            }
        };
        params.ok_or(EvalError::NoFunction { addr })
    }

    /// The type a cast names once its variables are bound to `bound`, cached per cast and
    /// binding (building the name and looking it up is string work worth doing once).
    fn cast_target(
        &self,
        cast: ExprId,
        ty: &layoutdump_lang::types::TypeExpr,
        vars: &[String],
        bound: &[DieId],
    ) -> Result<DieId, EvalError> {
        let key = (bound.len() <= cache::CAST_KEY_PARAMS).then(|| {
            let mut k = [None; cache::CAST_KEY_PARAMS];
            for (slot, die) in k.iter_mut().zip(bound) {
                *slot = Some(*die);
            }
            (cast, k)
        });
        if let Some(k) = &key
            && let Some(t) = self.cache.casts.borrow().get(k)
        {
            return Ok(*t);
        }
        let mut names = Vec::with_capacity(bound.len());
        for (var, die) in vars.iter().zip(bound) {
            names.push((var.clone(), self.ty(*die)?.name.to_string()));
        }
        let name = ty.substitute(&names).to_string();
        let target = self
            .dbg
            .type_named(&name)
            .ok_or(EvalError::TypeNotFound { name })?;
        if let Some(k) = key {
            self.cache.casts.borrow_mut().insert(k, target);
        }
        Ok(target)
    }

    /// `v as target`: the object a pointer points at, or at the place or address given.
    fn cast_to(&self, v: Value, target: DieId) -> Result<Value, EvalError> {
        let addr = match &v {
            Value::Int(a) => *a as u64,
            Value::Addr(a) => *a,
            Value::Place { addr, ty } => match self.ty(*ty)?.kind {
                TypeKind::Pointer { .. } => self.u64_le(*addr)?,
                _ => *addr,
            },
            _ => {
                return Err(EvalError::Other(
                    "only a place, a pointer or an address can be cast".into(),
                ));
            }
        };
        Ok(Value::Place { addr, ty: target })
    }

    /// Whether `rule` applies to `subject`: it has no `when` guard, or the guard can be
    /// evaluated and is not 0.
    pub fn guard_holds(&self, rule: &layoutdump_lang::program::Rule, subject: &Value) -> bool {
        let Some(guard) = rule.guard else { return true };
        match self.eval_with_subject(guard, rule.frame_size, subject.clone()) {
            Ok(Value::Int(0)) | Ok(Value::Addr(0)) | Err(_) => false,
            Ok(v @ Value::Place { .. }) => !matches!(self.to_int(&v), Ok(0)),
            Ok(_) => true,
        }
    }

    /// Evaluates `expr` in a fresh frame of `size` slots whose slot 0 is `subject`.
    pub fn eval_with_subject(
        &self,
        expr: ExprId,
        size: u16,
        subject: Value,
    ) -> Result<Value, EvalError> {
        let mut frame = new_frame(size);
        frame[0] = Some(subject);
        self.eval(expr, &mut frame)
    }

    /// Evaluates a rule's members in order in one frame; each member's result (or error)
    /// is returned with its name. `let` members are evaluated but not returned.
    pub fn eval_members<'m>(
        &self,
        members: &'m [layoutdump_lang::program::Member],
        size: u16,
        subject: Value,
    ) -> Members<'m> {
        let mut out = Members::new();
        self.eval_members_into(members, size, subject, &mut out);
        out
    }

    /// `eval_members` into `out` (cleared first): a caller that drains it moves no
    /// `Members` around (a few hundred bytes, copied three times a rule).
    pub fn eval_members_into<'m>(
        &self,
        members: &'m [layoutdump_lang::program::Member],
        size: u16,
        subject: Value,
        out: &mut Members<'m>,
    ) {
        out.clear();
        let mut frame = new_frame(size);
        frame[0] = Some(subject);
        self.members_in(members, &mut frame, |m, r| {
            if !m.is_let {
                out.push((m.name.as_str(), r));
            }
        });
    }

    /// Each member's result, `let`s included, in order: what a rule's frame holds after
    /// them (see `eval_members_after`).
    pub fn eval_member_values(
        &self,
        members: &[layoutdump_lang::program::Member],
        size: u16,
        subject: Value,
    ) -> smallvec::SmallVec<[Result<Value, EvalError>; 2]> {
        let mut frame = new_frame(size);
        frame[0] = Some(subject);
        let mut out = smallvec::SmallVec::new();
        self.members_in(members, &mut frame, |_, r| out.push(r));
        out
    }

    /// `eval_members_into` where the first `known.len()` members were evaluated before (by
    /// `eval_member_values`, on the same subject, taking `steps`): their values fill their
    /// slots and their steps are counted, and only the members after them are evaluated
    /// and given. A task's members up to its id are evaluated when the tasks are listed
    /// (to order them) and not again when each is read. False, with nothing counted,
    /// where those steps would pass the step limit: the caller then evaluates every
    /// member, and the limit cuts where it would have.
    pub fn eval_members_after<'m>(
        &self,
        members: &'m [layoutdump_lang::program::Member],
        size: u16,
        subject: Value,
        (known, steps): (&[Value], u64),
        out: &mut Members<'m>,
    ) -> bool {
        if known.len() > members.len()
            || self.steps.get().saturating_add(steps) > self.step_limit.get()
            || self.charge(steps).is_err()
        {
            return false;
        }
        out.clear();
        let mut frame = new_frame(size);
        frame[0] = Some(subject);
        for (m, v) in members.iter().zip(known) {
            if let Some(slot) = frame.get_mut(usize::from(m.slot.0)) {
                *slot = Some(v.clone());
            }
        }
        self.members_in(&members[known.len()..], &mut frame, |m, r| {
            if !m.is_let {
                out.push((m.name.as_str(), r));
            }
        });
        true
    }

    /// Evaluates `members` in order in `frame`, each value that a later member reads
    /// kept in its slot, and hands each result to `each`.
    fn members_in<'m>(
        &self,
        members: &'m [layoutdump_lang::program::Member],
        frame: &mut Frame,
        mut each: impl FnMut(&'m layoutdump_lang::program::Member, Result<Value, EvalError>),
    ) {
        for m in members {
            let r = self.eval(m.value, frame);
            if m.read
                && let Ok(v) = &r
                && let Some(slot) = frame.get_mut(usize::from(m.slot.0))
            {
                *slot = Some(v.clone());
            }
            each(m, r);
        }
    }

    /// Counts `steps` taken elsewhere (see `eval_members_after`): an error where they
    /// pass the step limit.
    pub(crate) fn charge_steps(&self, steps: u64) -> Result<(), EvalError> {
        self.charge(steps)
    }

    /// Counts `steps` evaluations against the step limit.
    fn charge(&self, steps: u64) -> Result<(), EvalError> {
        let steps = self.steps.get().saturating_add(steps);
        self.steps.set(steps);
        if steps > self.step_limit.get() {
            // The run's limit, which the user set: an evaluator's own share of it
            // (`set_step_limit`) is not a number they would know.
            return Err(EvalError::Limit {
                what: "steps",
                limit: self.limits.steps,
            });
        }
        Ok(())
    }

    fn eval(&self, id: ExprId, frame: &mut Frame) -> Result<Value, EvalError> {
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
            Expr::Name(n)
            | Expr::CallNamed { name: n, .. }
            | Expr::LambdaNamed { param: n, .. }
            | Expr::ForNamed { var: n, .. } => Err(EvalError::Other(format!(
                "unresolved name `{n}` (layout not compiled)"
            ))),
        }
    }

    /// `a.b.c.d` as one site: the root `a` is evaluated, then the whole chain of members
    /// is replayed from its type at once. Sleep's `s.deadline.std.0.t.tv_sec` took five
    /// evaluations and five plan lookups per task; now it takes two and one. The long way
    /// is the links one by one, each planned as before. Every link is counted before the
    /// root is evaluated, as evaluating them one inside the other did, so a chain that
    /// fails (or meets the step limit) counts what it counted before.
    fn field_chain(&self, top: ExprId, frame: &mut Frame) -> Result<Value, EvalError> {
        let (root, inner) = self.chain_shape(top);
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

    /// The root of the chain of members `top` and how many members it has below `top`,
    /// worked out once per chain: a chain replayed needs only these.
    fn chain_shape(&self, top: ExprId) -> (ExprId, u32) {
        let at = top.0 as usize;
        if let Some(&known) = self.cache.chains.borrow().get(at)
            && known != cache::NO_CHAIN
        {
            return known;
        }
        let (mut root, mut inner) = (top, 0u32);
        while let Expr::Field(base, _) = self.program.expr(root) {
            root = *base;
            if matches!(self.program.expr(root), Expr::Field(..)) {
                inner += 1;
            }
        }
        let mut chains = self.cache.chains.borrow_mut();
        if chains.len() <= at {
            chains.resize(self.program.exprs.len().max(at + 1), cache::NO_CHAIN);
        }
        chains[at] = (root, inner);
        (root, inner)
    }

    /// What hooks printed during this run (print/debug in rhai).
    pub fn hook_output(&self) -> Vec<String> {
        let mut out = self.hooks.get().map(|h| h.printed()).unwrap_or_default();
        out.extend(self.absorbed_printed.borrow().iter().cloned());
        out
    }

    fn nested<T>(&self, f: impl FnOnce() -> Result<T, EvalError>) -> Result<T, EvalError> {
        let d = self.depth.get();
        if d >= self.limits.depth {
            return Err(EvalError::Limit {
                what: "depth",
                limit: u64::from(self.limits.depth),
            });
        }
        self.depth.set(d + 1);
        let r = f();
        self.depth.set(d);
        r
    }

    fn builtin(
        &self,
        func: Builtin,
        args: &[ExprId],
        frame: &mut Frame,
    ) -> Result<Value, EvalError> {
        let arg = |i: usize, frame: &mut Frame| -> Result<Value, EvalError> {
            let id = args
                .get(i)
                .ok_or_else(|| EvalError::Other("missing argument".into()))?;
            self.eval(*id, frame)
        };
        match func {
            Builtin::Addr => match arg(0, frame)? {
                Value::Place { addr, .. } => Ok(Value::Addr(addr)),
                Value::Int(a) => Ok(Value::Addr(a as u64)),
                Value::Addr(a) => Ok(Value::Addr(a)),
                _ => Err(EvalError::Other("addr() needs a value in memory".into())),
            },
            Builtin::Variant => {
                let v = arg(0, frame)?;
                let Value::Place { addr, ty } = v else {
                    return Err(EvalError::Other("variant() needs an enum in memory".into()));
                };
                // A C-like enum (actix's `SignalKind`): the enumerator its value names.
                if let TypeKind::CEnum { enumerators } = &self.ty(ty)?.kind {
                    let value = self.to_int(&v)?;
                    return enumerators
                        .iter()
                        .find(|(_, n)| *n == value)
                        .map(|(name, _)| Value::Str(name.to_string().into()))
                        .ok_or_else(|| {
                            EvalError::Other(format!("{value} names no enumerator of this enum"))
                        });
                }
                let (name, _) = self.active_variant(addr, ty)?;
                Ok(Value::Str(name.into()))
            }
            Builtin::TypeName => match arg(0, frame)? {
                Value::Place { ty, .. } => Ok(Value::Str(self.ty(ty)?.name.clone().into())),
                _ => Err(EvalError::Other(
                    "type_name() needs a value in memory".into(),
                )),
            },
            Builtin::Len => {
                let v = arg(0, frame)?;
                if let Value::Place { ty, .. } = &v
                    && let Some((view, m)) = self.view_member(*ty, "len")
                {
                    let len = self.eval_view_member(view, m, v)?;
                    return Ok(Value::Int(self.to_int(&len)?));
                }
                Ok(Value::Int(self.items(v)?.len() as i128))
            }
            Builtin::IsNull => {
                let v = arg(0, frame)?;
                Ok(Value::Int(i128::from(self.list_node(v)?.is_none())))
            }
            Builtin::Slice => {
                let first = arg(0, frame)?;
                let len = arg(1, frame)?;
                let len = self.to_int(&len)?;
                self.slice(first, len)
            }
            Builtin::List => self.list(args, frame),
            Builtin::DynTarget => {
                let data = arg(0, frame)?;
                let vtable = arg(1, frame)?;
                let data = self.to_int(&data)? as u64;
                let vtable = self.to_int(&vtable)? as u64;
                if data == 0 {
                    return Err(EvalError::Other("null trait object".into()));
                }
                let ty = self.vtable_target(vtable)?;
                Ok(Value::Place { addr: data, ty })
            }
            Builtin::Str => {
                let at = arg(0, frame)?;
                let len = arg(1, frame)?;
                let len = u64::try_from(self.to_int(&len)?)
                    .map_err(|_| EvalError::Other("negative string length".into()))?;
                let addr = match &at {
                    Value::Place { addr, ty } => match self.ty(*ty)?.kind {
                        TypeKind::Pointer { .. } => self.u64_le(*addr)?,
                        _ => *addr,
                    },
                    other => self.to_int(other)? as u64,
                };
                // Strings are shown, not processed: the first 256 bytes say enough.
                let shown = len.min(MAX_STR);
                let bytes = self.mem.read_vec(addr, shown, MAX_STR)?;
                let mut text = String::from_utf8_lossy(&bytes).into_owned();
                if len > shown {
                    text.push('…');
                }
                Ok(Value::Str(text.into()))
            }
        }
    }

    /// Whether a `for` over `items` runs its body on several threads: when each item's
    /// body walks a list (tokio's OwnedTasks: one list per shard, a million tasks in
    /// eight lists), on an evaluator that is not itself one of many.
    fn walks_in_parallel(&self, body: ExprId, items: usize) -> bool {
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
    fn for_walks(
        &self,
        id: ExprId,
        var: Slot,
        items: Vec<Value>,
        body: ExprId,
        frame: &mut Frame,
    ) -> Result<Value, EvalError> {
        use rayon::prelude::*;
        // Not by the thread count: each batch's budget is what the ones before left,
        // and a limit must cut the same lists on any number of threads.
        const BATCH: usize = 8;
        let base: &Frame = frame;
        let mut out = Vec::new();
        for items in items.chunks(BATCH) {
            let seed = self.seed();
            // One list per piece of work: rayon otherwise hands a thread two lists at a
            // time, and at a million tasks in eight lists one core waited 0.1 s for the
            // other's second list.
            let walked: Vec<(Result<Value, EvalError>, Spent)> = items
                .par_iter()
                .with_max_len(1)
                .map(|item| {
                    let w = seed.evaluator();
                    let mut f = base.clone();
                    set(&mut f, var.0, item.clone());
                    let r = w.eval(body, &mut f);
                    (r, w.drain())
                })
                .collect();
            // Room for this batch's lists at once: a million tasks' places (37 MB) were
            // copied again each time the joined list doubled.
            let batch: usize = walked
                .iter()
                .map(|(r, _)| match r {
                    Ok(Value::Seq(inner)) => inner.len(),
                    _ => 1,
                })
                .sum();
            out.reserve(batch.min(usize::try_from(self.limits.items).unwrap_or(usize::MAX)));
            for (r, spent) in walked {
                self.absorb(spent);
                // Over the limit with this item's steps: stopped here, as in sequence.
                self.charge(0)?;
                if self.join_item(id, &mut out, r?) {
                    return Ok(Value::Seq(out));
                }
            }
        }
        Ok(Value::Seq(out))
    }

    /// Adds what a `for`'s body gave for one item to `out` (a sequence is flattened);
    /// true when that reached the item limit, and `out` was cut to it.
    fn join_item(&self, id: ExprId, out: &mut Vec<Value>, v: Value) -> bool {
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
    fn list(&self, args: &[ExprId], frame: &mut Frame) -> Result<Value, EvalError> {
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
        // seen (at a million tasks that set was a fifth of the walk): the node at the
        // last power-of-two step is kept, and meeting it again means a cycle.
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
                    crate::run::prefetch_item(self, next.as_ref());
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
    /// pointee; None for null or `None`. The hops are a route per link type (see `plan`):
    /// tokio's `Option<NonNull<Header>>` took four lookups and a view per task. A replay
    /// fails where the link is null or `None` (its steps check that), and the long way
    /// then says which.
    fn list_node(&self, v: Value) -> Result<Option<Value>, EvalError> {
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

    fn list_node_hops(&self, mut v: Value) -> Result<Option<Value>, EvalError> {
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

    fn slice(&self, first: Value, len: i128) -> Result<Value, EvalError> {
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

    /// One hop towards what a value stands for: through a pointer, or a view's `deref`.
    fn step_in(&self, v: Value, t: &Type, wanted: &str) -> Result<Value, EvalError> {
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
        for _ in 0..MAX_HOPS {
            let Value::Place { addr, ty } = v else {
                return Err(EvalError::Other(format!(
                    "`.{name}` applied to a value that is not in memory"
                )));
            };
            let t = self.ty(ty)?;
            match &t.kind {
                TypeKind::Pointer { .. } => {
                    v = self.deref(v)?;
                    continue;
                }
                TypeKind::Struct { fields, .. } | TypeKind::Union { fields } => {
                    let variants = match &t.kind {
                        TypeKind::Struct { variants, .. } => variants.as_ref(),
                        _ => None,
                    };
                    let key = (ty, cache::NameKey::of(name));
                    let direct = self.cache.fields.borrow().get(&key).copied();
                    let direct = direct.unwrap_or_else(|| {
                        let found = fields.iter().position(|f| &*f.name == name);
                        self.cache.fields.borrow_mut().insert(key, found);
                        found
                    });
                    if let Some(f) = direct.map(|i| &fields[i]) {
                        return self.member(addr, f.offset, f.ty, &t);
                    }
                    if let Some(vp) = variants
                        && let Some(var) = vp.variants.iter().find(|var| &*var.field.name == name)
                    {
                        let (active, _) = self.active_variant(addr, ty)?;
                        if &*active != name {
                            return Err(EvalError::Inactive {
                                wanted: name.into(),
                                active,
                                ty: t.name.clone(),
                            });
                        }
                        return self.member(addr, var.field.offset, var.field.ty, &t);
                    }
                    if let Some((view, m)) = self.view_member(ty, name) {
                        return self.eval_view_member(view, m, v);
                    }
                    if let Some((view, m)) = self.view_member(ty, "deref") {
                        v = self.eval_view_member(view, m, v)?;
                        continue;
                    }
                    if variants.is_some() {
                        let (_, inner) = self.active_variant(addr, ty)?;
                        if let Value::Place { addr: at, ty } = inner {
                            self.step(plan::Op::Offset {
                                offset: at.wrapping_sub(addr),
                                ty,
                            });
                        }
                        v = inner;
                        continue;
                    }
                    let available = fields.iter().map(|f| f.name.clone()).collect();
                    return Err(EvalError::NoField {
                        field: name.into(),
                        ty: t.name.clone(),
                        available,
                    });
                }
                _ => {
                    return Err(EvalError::NoField {
                        field: name.into(),
                        ty: t.name.clone(),
                        available: vec![],
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

    /// The number a report shows for the value at `addr`, where its type is known to be
    /// shown as one (`cache::Number::shown`) and it can be read within the step limit:
    /// what `to_int` gives, with the steps it counts, in one lookup rather than the
    /// three a report's value took (a view's `show`, the type, the number). None: the
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

    fn read_number(&self, addr: u64, read: cache::ReadNumber) -> Result<i128, EvalError> {
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
    fn number_place(&self, mut v: Value) -> Result<Value, EvalError> {
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

    fn binary(&self, op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
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

    /// The first view (in layout order) whose pattern matches the type, cached per type.
    fn view_of(&self, ty: DieId) -> Option<usize> {
        if let Some(v) = self.views.borrow().get(&ty) {
            return *v;
        }
        let found = self.ty(ty).ok().and_then(|t| {
            self.program
                .views
                .iter()
                .position(|v| v.pattern.matches(&t.name))
        });
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

    fn view_member(&self, ty: DieId, name: &str) -> Option<(usize, usize)> {
        let key = (ty, cache::NameKey::of(name));
        if let Some(found) = self.cache.view_members.borrow().get(&key) {
            return *found;
        }
        let found = self.view_of(ty).and_then(|view| {
            self.program.views[view]
                .members
                .iter()
                .position(|m| m.name == name)
                .map(|m| (view, m))
        });
        self.cache.view_members.borrow_mut().insert(key, found);
        found
    }

    fn eval_view_member(
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
    fn member(
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

    fn warn(&self, msg: String) {
        let mut w = self.warnings.borrow_mut();
        if w.len() < 1000 {
            w.push(msg);
        }
    }
}

/// Routes are replayed through the evaluator's stretches of memory (`Evaluator::read`).
impl crate::memory::Bytes for Evaluator<'_> {
    #[inline]
    fn bytes(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.read(addr, buf)
    }
}

/// The index of the first node of `nodes`, then `next`, that repeats an earlier one.
fn first_repeat(nodes: &[Value], next: u64) -> Option<usize> {
    let mut seen = rustc_hash::FxHashSet::default();
    let addrs = nodes.iter().filter_map(|v| match v {
        Value::Place { addr, .. } => Some(*addr),
        _ => None,
    });
    for (i, addr) in addrs.chain(std::iter::once(next)).enumerate() {
        if !seen.insert(addr) {
            return Some(i);
        }
    }
    None
}

fn set(frame: &mut Frame, slot: u16, v: Value) {
    if let Some(s) = frame.get_mut(usize::from(slot)) {
        *s = Some(v);
    }
}

fn place(addr: u64, offset: u64, ty: Option<DieId>, parent: &Type) -> Result<Value, EvalError> {
    let ty =
        ty.ok_or_else(|| EvalError::Dwarf(format!("a member of `{}` has no type", parent.name)))?;
    Ok(Value::Place {
        addr: addr.wrapping_add(offset),
        ty,
    })
}
