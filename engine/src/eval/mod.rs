//! The evaluator: runs a compiled layout's expressions against dump memory and DWARF.
//! It knows Rust's representation (structs, enums, pointers, arrays) and nothing about any
//! crate: every library type is understood through the layout's views.

mod arith;
mod builtins;
mod cache;
mod expr;
mod field_value;
mod hook;
mod lists;
pub(crate) mod observe;
mod places;
mod plan;
pub mod route;

pub(crate) use field_value::{checked_field_value, display_string, field_value};

/// Bytes of a task asked into the cache ahead of reading it: its header and what
/// follows (tokio's future, trailer; async-task's future), where a task's reads mostly are.
const PREFETCHED: usize = 512;
mod value;
mod views;

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use layoutdump_lang::program::{ExprId, Program, Slot};

use crate::dwarf::{DebugInfo, DieId, LinkAddr, Type, TypeKind};
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
    /// What listens to evaluation (`see`): what each root and rule found, for `check
    /// --explain`, and the task members not read.
    observer: RefCell<crate::explain::Usage>,
    /// The rhai engine, made at the first hook call.
    hooks: std::cell::OnceCell<hook::HookEngine>,
    /// The runtime whose task is being read (`task_runtime()`): its rule's subject.
    runtime: std::cell::Cell<Option<(u64, DieId)>>,
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
    /// The runtime whose tasks it reads (`task_runtime()`).
    runtime: Option<(u64, DieId)>,
}

impl<'a> Seed<'a> {
    pub fn evaluator(&self) -> Evaluator<'a> {
        let ev = Evaluator::new(self.program, self.dbg, self.mem, self.bias, self.limits);
        ev.set_step_limit(self.steps_left);
        ev.depth.set(self.depth);
        ev.runtime.set(self.runtime);
        ev.one_of_many();
        ev
    }
}

/// What a worker's evaluator gathered for the run (see `Evaluator::drain`).
#[derive(Default)]
pub struct Spent {
    pub(crate) warnings: Vec<String>,
    pub(crate) usage: crate::explain::Usage,
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
        _ => Err(EvalError::Other(UNSET.into())),
    }
}

/// Why a binding has no value: it is read before it is set, or it could not be evaluated
/// (which `members_in` says instead, naming it).
const UNSET: &str = "binding used before it has a value";

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
            runtime: std::cell::Cell::new(None),
            observer: RefCell::new(crate::explain::Usage::new(program)),
            cache: cache::Caches::default(),
            absorbed_printed: RefCell::new(Vec::new()),
            recorder: RefCell::new(Default::default()),
            recording: Cell::new(0),
            windows: Default::default(),
        }
    }

    /// Fills `buf` from `addr`, as `Memory::read` does, from the stretches of memory in
    /// hand where they hold it, without the memory's lookup (a task takes two dozen
    /// reads).
    #[inline]
    pub(crate) fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.windows.read(self.mem, addr, buf)
    }

    /// Asks for the `len` bytes at `addr` ahead of reading them (`Memory::prefetch`).
    pub(crate) fn prefetch(&self, addr: u64, len: usize) {
        self.windows.prefetch(self.mem, addr, len);
    }

    /// Starts loading the memory of `item`, a task read a few tasks from now.
    pub(crate) fn prefetch_item(&self, item: Option<&Value>) {
        if let Some(Value::Place { addr, .. }) = item {
            self.prefetch(*addr, PREFETCHED);
        }
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
            runtime: self.runtime.get(),
        }
    }

    /// The runtime whose tasks are read next (`task_runtime()`), its rule's subject; None
    /// when they are done.
    pub(crate) fn set_runtime(&self, runtime: Option<(u64, DieId)>) {
        self.runtime.set(runtime);
    }

    /// Takes what this evaluator gathered that belongs to the run (warnings, rule hits,
    /// steps, hook output), leaving it empty, for `absorb` by the run's own evaluator.
    pub fn drain(&self) -> Spent {
        Spent {
            warnings: std::mem::take(&mut *self.warnings.borrow_mut()),
            usage: std::mem::replace(
                &mut *self.observer.borrow_mut(),
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
        self.observer.borrow_mut().add(&spent.usage);
        self.steps.set(self.steps.get().saturating_add(spent.steps));
        self.absorbed_printed.borrow_mut().extend(spent.printed);
    }

    /// Tells the observer what evaluation saw.
    pub(crate) fn see(&self, what: observe::Seen<'_>) {
        use observe::Observer as _;
        self.observer.borrow_mut().seen(what);
    }

    /// What the observer counted so far.
    pub(crate) fn usage(&self) -> crate::explain::Usage {
        self.observer.borrow().clone()
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
    pub(crate) fn cached_routes(&self, ty: DieId) -> Option<std::rc::Rc<[route::Route]>> {
        self.cache.routes.borrow().get(&ty).cloned()
    }

    pub(crate) fn cache_routes(&self, ty: DieId, routes: std::rc::Rc<[route::Route]>) {
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
                // A null pointer cast to a type is absent, as its deref is: a scoped
                // thread-local's `*const ()` outside the scope is "no runtime here".
                TypeKind::Pointer { .. } => match self.u64_le(*addr)? {
                    0 => {
                        return Err(EvalError::NullPointer {
                            ty: self.ty(target)?.name.clone(),
                        });
                    }
                    a => a,
                },
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
        // Members a later one reads that could not be evaluated: a later member that then
        // finds no value names them and why (a `let` read from memory the dump lacks).
        let mut failed: smallvec::SmallVec<[(&str, EvalError); 1]> = smallvec::SmallVec::new();
        for m in members {
            let mut r = self.eval(m.value, frame);
            if let Err(EvalError::Other(msg)) = &r
                && msg == UNSET
                && let Some((name, why)) = failed.first()
            {
                // What depends on a `None` is absent too, as the `None` itself is.
                r = Err(if why.is_absent() {
                    why.clone()
                } else {
                    EvalError::Other(format!("`{name}` could not be evaluated: {why}"))
                });
            }
            if m.read {
                match &r {
                    Ok(v) => {
                        if let Some(slot) = frame.get_mut(usize::from(m.slot.0)) {
                            *slot = Some(v.clone());
                        }
                    }
                    Err(e) => failed.push((m.name.as_str(), e.clone())),
                }
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
