//! Async backtraces, from a task's root future down to what it waits on: async fns from
//! DWARF alone (state → await line → awaitee), other futures through `future` rules or
//! generic descent, the innermost matched against `leaf` rules.

use std::sync::Arc;

use layoutdump_lang::program::RuleKind;

use crate::descent;
use crate::dwarf::{DieId, Type, TypeKind};
use crate::eval::FrameFacts;
use crate::eval::observe::Seen;
use crate::eval::{EvalError, Evaluator, Value};
use crate::report::{
    AwaitFrame, BlockedOn, Branch, FieldValue, Fields, FrameHead, Held, Hex, SourceRef, Via,
};

/// Await chains deeper than this are cut (with a frame saying so).
pub const MAX_AWAIT_DEPTH: usize = 128;
/// Pointer and view hops between two frames.
const MAX_HOPS: usize = 16;

/// Facts of a backtrace that could not be read, per chain: a few say what is missing.
const MAX_MISSING: usize = 8;

/// Resources one backtrace shows held, at most (a hostile dump's coroutine may claim a
/// guard in every slot).
const MAX_HELD: usize = 16;

pub struct Backtrace {
    pub frames: Vec<AwaitFrame>,
    pub blocked_on: Option<BlockedOn>,
    /// What could not be read on the way, in any branch (`blocked_on.left_ms`, a frame's
    /// state): the task's report is then partial.
    pub missing: Vec<(smol_str::SmolStr, String)>,
    /// Resources held across an await on the way (a `MutexGuard` among a frame's values).
    pub holds: Vec<Held>,
}

/// What walking a chain gathers besides its frames, over all branches.
#[derive(Default)]
struct Gathered {
    missing: Vec<(smol_str::SmolStr, String)>,
    holds: Vec<Held>,
}

impl Gathered {
    /// Notes a fact that could not be read (up to `MAX_MISSING` per backtrace).
    fn miss(&mut self, what: &str, why: String) {
        if self.missing.len() < MAX_MISSING {
            self.missing.push((what.into(), why));
        }
    }
}

/// Walks the await chain of `future`.
pub fn await_chain(ev: &Evaluator<'_>, future: Value) -> Backtrace {
    let mut budget = MAX_AWAIT_DEPTH * 4;
    let mut gathered = Gathered::default();
    let (frames, blocked_on) = chain(ev, future, 0, &mut budget, &mut gathered);
    Backtrace {
        frames,
        blocked_on,
        missing: gathered.missing,
        holds: gathered.holds,
    }
}

/// Futures shown in one backtrace, over all its branches: a hostile dump must not make a
/// join of joins explode.
fn chain(
    ev: &Evaluator<'_>,
    future: Value,
    depth: usize,
    budget: &mut usize,
    gathered: &mut Gathered,
) -> (Vec<AwaitFrame>, Option<BlockedOn>) {
    // Room for the usual two to four futures at once (a report that is kept gives back
    // what it does not use: `TaskReport::shrink`).
    let mut frames = Vec::with_capacity(4);
    // A handful of futures per chain (at most MAX_AWAIT_DEPTH): a list searched in place
    // costs less than a hash set allocated for every task.
    let mut seen: smallvec::SmallVec<[(u64, DieId); 8]> = smallvec::SmallVec::new();
    let mut current = Some(future);
    let mut blocked_on = None;
    while let Some(v) = current.take() {
        if frames.len() + depth >= MAX_AWAIT_DEPTH || *budget == 0 {
            frames.push(note_frame(format!(
                "await chain deeper than {MAX_AWAIT_DEPTH} futures: cut here"
            )));
            break;
        }
        *budget -= 1;
        let Value::Place { addr, ty } = v else { break };
        // Nested futures can share an address (an `__awaitee` at offset 0): key on the type too.
        if seen.contains(&(addr, ty)) {
            frames.push(note_frame(format!(
                "cycle: the future at {addr:#x} was already shown"
            )));
            break;
        }
        seen.push((addr, ty));
        let Ok(t) = ev.ty(ty) else { break };
        // A leaf rule ends the chain, even on an async fn: `accept on fd 12` says more
        // than the runtime's internals beneath it.
        let leaf = ev.rules_for(RuleKind::Leaf, ty).ok().and_then(|r| {
            r.iter()
                .copied()
                .find(|&i| ev.guard_holds(&ev.program.rules[i], &v))
        });
        if let Some((i, rule)) = leaf.map(|i| (i, &ev.program.rules[i])) {
            ev.see(Seen::Matched { rule: i });
            let frame = if t.is_coroutine() {
                coroutine_frame(ev, addr, &t, gathered)
                    .map(|(f, _)| f)
                    .unwrap_or_else(|e| unreadable_frame(ev, &t, addr, e, gathered))
            } else {
                plain_frame(ev, &t, addr, Via::Rule)
            };
            frames.push(frame);
            blocked_on = Some(leaf_report(ev, rule, v, &t, addr, gathered));
            break;
        }
        if t.is_coroutine() {
            match coroutine_frame(ev, addr, &t, gathered) {
                Ok((frame, awaitee)) => {
                    frames.push(frame);
                    current = awaitee;
                }
                Err(e) => frames.push(unreadable_frame(ev, &t, addr, e, gathered)),
            }
            continue;
        }
        if let Some((kind, details, next)) = see_into(ev, &v, &t, gathered) {
            let mut frame = plain_frame(ev, &t, addr, Via::Rule);
            frame.locals = details;
            // What it keeps for others, though the rule says what it waits on: a buffer
            // worker keeps the reply sender of the request it holds.
            let (holds, error) = descent::holds(ev, addr, t.id);
            note_holds(ev, holds, error, addr, &t, &mut frame, gathered);
            match next {
                Err(e) => frame.note = Some(format!("cannot see into it: {e}")),
                Ok(mut items) if items.len() == 1 => current = items.pop(),
                Ok(items) => {
                    let kind = kind.unwrap_or_else(|| "all of".into());
                    blocked_on = Some(branch_out(
                        ev,
                        &mut frame,
                        items,
                        kind,
                        depth + frames.len(),
                        budget,
                        gathered,
                    ));
                }
            }
            frames.push(frame);
            continue;
        }
        // Pointers, Pin, Box: step through without a frame of their own.
        let root = depth == 0 && frames.is_empty();
        if let Some(next) = step_through(ev, v, &t, root, gathered) {
            current = Some(next);
            continue;
        }
        // A future no rule sees into: what it holds, from its type (generic descent).
        let (frame, next, leaf) =
            generic_step(ev, addr, &t, depth + frames.len(), budget, gathered);
        frames.push(frame);
        current = next;
        if leaf.is_some() {
            blocked_on = leaf;
        }
    }
    // Spare capacity is given back by a report that is kept (`TaskReport::shrink`).
    (frames, blocked_on)
}

/// A future no rule sees into, by generic descent: its frame (with what a rule without
/// `awaits` says of it), the one future it holds (the chain goes on there), or what it is
/// blocked on (nothing seen: `unknown`; several: a branch each). What it holds for others
/// (`holds` rules) is noted in `gathered`.
fn generic_step(
    ev: &Evaluator<'_>,
    addr: u64,
    t: &Type,
    depth: usize,
    budget: &mut usize,
    gathered: &mut Gathered,
) -> (AwaitFrame, Option<Value>, Option<BlockedOn>) {
    let described = description(ev, &Value::Place { addr, ty: t.id }, t, gathered);
    let via = if described.is_some() {
        Via::Rule
    } else {
        Via::Generic
    };
    let mut frame = plain_frame(ev, t, addr, via);
    let (kind, details) = described.unwrap_or_default();
    frame.locals = details;
    let descent::Holdings {
        values: mut held,
        holds,
        error,
    } = descent::held(ev, addr, t.id);
    note_holds(ev, holds, error, addr, t, &mut frame, gathered);
    match held.len() {
        0 => {
            let unknown = BlockedOn {
                kind: ev.name("unknown"),
                future: t.name.clone(),
                address: Hex(addr),
                fields: Fields::new(),
            };
            (frame, None, Some(unknown))
        }
        1 => (frame, held.pop(), None),
        _ => {
            let kind = kind.unwrap_or_else(|| ev.name("several"));
            let leaf = branch_out(ev, &mut frame, held, kind, depth, budget, gathered);
            (frame, None, Some(leaf))
        }
    }
}

/// Notes for the task what a future keeps for others (`holds` rules), and says on its
/// frame if not all it holds could be read.
fn note_holds(
    ev: &Evaluator<'_>,
    holds: Vec<(Value, usize)>,
    error: Option<EvalError>,
    addr: u64,
    t: &Type,
    frame: &mut AwaitFrame,
    gathered: &mut Gathered,
) {
    for (value, rule) in holds {
        let local = match &value {
            Value::Place { ty, .. } => ev.ty(*ty).map(|h| short_type_name(&h.name).into()),
            _ => Ok(smol_str::SmolStr::default()),
        }
        .unwrap_or_default();
        held_resource(ev, rule, value, &local, &frame.head, gathered);
    }
    if let Some(e) = error {
        let note = format!("not all it holds could be read: {e}");
        gathered.miss("backtrace", format!("`{}` at {addr:#x}: {note}", t.name));
        frame.note = Some(note);
    }
}

/// A future waiting on several at once (`join!`, `select!`, or several held futures found
/// by generic descent): each one's chain as a branch of `frame`; what it is blocked on.
fn branch_out(
    ev: &Evaluator<'_>,
    frame: &mut AwaitFrame,
    items: Vec<Value>,
    kind: smol_str::SmolStr,
    depth: usize,
    budget: &mut usize,
    gathered: &mut Gathered,
) -> BlockedOn {
    frame.branches = items
        .into_iter()
        .map(|item| {
            let (backtrace, blocked_on) = chain(ev, item, depth + 1, budget, gathered);
            Branch {
                backtrace,
                blocked_on,
            }
        })
        .collect();
    BlockedOn {
        kind,
        future: frame.future.clone(),
        address: frame.address,
        fields: Fields::from_iter([("branches", FieldValue::Int(frame.branches.len() as i128))]),
    }
}

/// What a `future` rule says: its `kind`, its other members (the frame's details), and
/// the futures it waits on (or why not).
type SeenInto = (
    Option<smol_str::SmolStr>,
    Fields,
    Result<Vec<Value>, EvalError>,
);

/// The `future` rules for this type, tried in layout order: the first whose `awaits`
/// can be evaluated says what the future waits on (its `kind`, and the futures). Several
/// rules may share a pattern (`PollFn` built by `join!` or by `select!`); a rule whose
/// fields do not fit fails and the next is tried. None when no rule matches the type.
fn see_into(ev: &Evaluator<'_>, v: &Value, t: &Type, gathered: &mut Gathered) -> Option<SeenInto> {
    let mut first_error: Option<EvalError> = None;
    let rules = ev.rules_for(RuleKind::Future, t.id).ok()?;
    for (i, rule) in rules.iter().map(|&i| (i, &ev.program.rules[i])) {
        if !has_awaits(rule) || !ev.guard_holds(rule, v) {
            continue;
        }
        let mut members = ev.eval_members(&rule.members, rule.frame_size, v.clone());
        let kind = members
            .iter()
            .find(|(n, _)| *n == "kind")
            .and_then(|(_, r)| match r {
                Ok(Value::Str(s)) => Some(s.clone()),
                _ => None,
            });
        let awaits = members
            .iter()
            .position(|(n, _)| *n == "awaits")
            .map(|at| members.remove(at).1);
        match awaits {
            Some(Ok(next)) => {
                // `&mut (A, B)`: the tuple itself.
                let mut next = next;
                for _ in 0..MAX_HOPS {
                    let is_ptr = matches!(&next, Value::Place { ty, .. } if ev.ty(*ty).is_ok_and(|t| matches!(t.kind, TypeKind::Pointer { .. })));
                    if !is_ptr {
                        break;
                    }
                    match ev.deref(next.clone()) {
                        Ok(n) => next = n,
                        Err(_) => break,
                    }
                }
                let items = match next {
                    Value::Seq(items) => items,
                    Value::Place { .. } => match ev.items(next.clone()) {
                        Ok(items) if is_tuple(ev, &next) => items,
                        _ => vec![next],
                    },
                    other => vec![other],
                };
                ev.see(Seen::Matched { rule: i });
                let details = member_details(ev, rule, members, gathered);
                return Some((kind, details, Ok(items)));
            }
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    // No rule fits this instance (a PollFn that is neither join! nor select!): it is
    // treated as a future no rule describes.
    let _ = first_error;
    None
}

/// Whether a `future` rule says what the future awaits; one that does not describes it
/// (`description`) and leaves the awaiting to generic descent.
fn has_awaits(rule: &layoutdump_lang::program::Rule) -> bool {
    rule.members.iter().any(|m| m.name == "awaits" && !m.is_let)
}

/// What a `future` rule without `awaits` says of a future generic descent sees into: its
/// `kind` (the name of what it waits on, when it holds several) and its other members as
/// the frame's details (hyper's connection: what it is reading and writing). None when no
/// such rule matches the type.
fn description(
    ev: &Evaluator<'_>,
    v: &Value,
    t: &Type,
    gathered: &mut Gathered,
) -> Option<(Option<smol_str::SmolStr>, Fields)> {
    let rules = ev.rules_for(RuleKind::Future, t.id).ok()?;
    let (i, rule) = rules
        .iter()
        .map(|&i| (i, &ev.program.rules[i]))
        .find(|(_, r)| !has_awaits(r) && ev.guard_holds(r, v))?;
    ev.see(Seen::Matched { rule: i });
    let members = ev.eval_members(&rule.members, rule.frame_size, v.clone());
    let kind = members.iter().find_map(|(n, r)| match (*n, r) {
        ("kind", Ok(Value::Str(s))) => Some(s.clone()),
        _ => None,
    });
    Some((kind, member_details(ev, rule, members, gathered)))
}

/// A `future` rule's members other than `kind` and `awaits`, as a frame's details; one
/// that cannot be evaluated is missing data for the task.
fn member_details<'m>(
    ev: &Evaluator<'_>,
    rule: &layoutdump_lang::program::Rule,
    members: crate::eval::Members<'m>,
    gathered: &mut Gathered,
) -> Fields {
    let mut details = Fields::with_capacity(members.len());
    for (name, r) in members {
        match (name, r) {
            ("kind", _) => {}
            (_, Ok(value)) => {
                details.insert(ev.name(name), crate::eval::field_value(ev, &value));
            }
            // Computed from a capture time the dump lacks: left out (the notes say why).
            (_, Err(EvalError::NoCaptureTime)) => {}
            (_, Err(e)) => {
                gathered.miss(
                    &format!("backtrace.{name}"),
                    format!("future rule at {}: {e}", ev.program.location(rule.span)),
                );
                details.insert(ev.name(name), FieldValue::Str(format!("unavailable: {e}")));
            }
        }
    }
    details
}

/// A tuple `(A, B, …)`: the futures of a join or select, each its own branch.
fn is_tuple(ev: &Evaluator<'_>, v: &Value) -> bool {
    let Value::Place { ty, .. } = v else {
        return false;
    };
    ev.ty(*ty).is_ok_and(|t| t.name.starts_with('('))
}

/// The frame of one coroutine and, if it is suspended, the future it awaits.
fn coroutine_frame(
    ev: &Evaluator<'_>,
    addr: u64,
    t: &Type,
    gathered: &mut Gathered,
) -> Result<(AwaitFrame, Option<Value>), EvalError> {
    let TypeKind::Struct {
        variants: Some(vp), ..
    } = &t.kind
    else {
        unreachable!("checked by Type::is_coroutine")
    };
    let (index, data) = ev.active_variant_index(addr, t.id)?;
    // Names, state, source line and where the saved values are depend only on the type
    // and its state: worked out once.
    let facts = ev.frame_facts((t.id, index), || coroutine_facts(ev, t, vp, index));
    let state = facts.head.state.as_deref().unwrap_or_default();
    let mut locals = Fields::new();
    let mut awaitee = None;
    if let Value::Place { addr: vaddr, .. } = data {
        let mut saved = Vec::with_capacity(facts.saved.len());
        for (name, offset, ty) in facts.saved.iter() {
            let place = Value::Place {
                addr: vaddr.wrapping_add(*offset),
                ty: *ty,
            };
            // The name is the evaluator's own copy of the type's: shared, not copied.
            saved.push((name.clone(), local_value(ev, &place)));
        }
        locals = Fields::from_unique(saved);
        for &(slot, rule, in_items) in facts.holders.iter() {
            let Some((name, offset, ty)) = facts.saved.get(slot) else {
                continue;
            };
            let place = Value::Place {
                addr: vaddr.wrapping_add(*offset),
                ty: *ty,
            };
            if !in_items {
                held_resource(ev, rule, place, name, &facts.head, gathered);
                continue;
            }
            // A collection of them (an actor's `Vec` of reply senders): each item, up to
            // what a backtrace notes.
            match ev.view_items(&place) {
                Some(Ok(items)) => {
                    for item in items.into_iter().take(MAX_HELD) {
                        held_resource(ev, rule, item, name, &facts.head, gathered);
                    }
                }
                Some(Err(e)) => gathered.miss(&format!("holds.{name}"), e.to_string()),
                None => {}
            }
        }
        // Unresumed holds the arguments; only a suspended coroutine awaits something.
        if state.starts_with("Suspend") {
            awaitee = facts.awaitee.map(|(offset, ty)| Value::Place {
                addr: vaddr.wrapping_add(offset),
                ty,
            });
        }
    }
    let mut frame = AwaitFrame::new(facts.head.clone(), Hex(addr));
    frame.locals = locals;
    Ok((frame, awaitee))
}

/// What a coroutine's frame shows in the state of variant `index`: its names and await
/// line, and where the values it holds across that await are.
fn coroutine_facts(
    ev: &Evaluator<'_>,
    t: &Type,
    vp: &crate::dwarf::VariantPart,
    index: usize,
) -> FrameFacts {
    let variant = vp.variants.get(index);
    let member = variant.map(|v| v.field.name.clone()).unwrap_or_default();
    let state_ty = variant
        .and_then(|v| v.field.ty)
        .and_then(|id| ev.ty(id).ok());
    let mut saved: Vec<(smol_str::SmolStr, u64, DieId)> = Vec::new();
    let mut holders = Vec::new();
    let mut awaitee = None;
    if let Some(st) = &state_ty
        && let TypeKind::Struct { fields, .. } = &st.kind
    {
        for f in fields {
            let Some(fty) = f.ty else { continue };
            if &*f.name == "__awaitee" {
                awaitee = Some((f.offset, fty));
            } else if !is_drop_flag(&f.name) && !saved.iter().any(|(n, ..)| *n == *f.name) {
                if let Some((rule, in_items)) = holds_rule(ev, fty) {
                    holders.push((saved.len(), rule, in_items));
                }
                saved.push((f.name.clone().into(), f.offset, fty));
            }
        }
    }
    let location = variant.and_then(|v| {
        let line = v.field.decl_line?;
        let file = v
            .field
            .decl_file
            .and_then(|f| ev.dbg.decl_file(t.id, f).ok().flatten());
        Some(SourceRef {
            file: file.map(|f| display_path(&f)),
            line,
        })
    });
    let own = FrameHead::own_code(ev.program.is_runtime_code(&t.name), location.as_ref());
    FrameFacts {
        head: Arc::new(FrameHead {
            function: function_name(&t.name).into(),
            future: t.name.clone(),
            // The variant's own struct is named after the state: `Unresumed`, `Suspend0`, ….
            state: Some(
                state_ty
                    .as_ref()
                    .map_or_else(|| member.clone().into(), |s| last_segment(&s.name).into()),
            ),
            location,
            via: Some(Via::AsyncFn),
            own,
        }),
        saved: saved.into(),
        holders: holders.into(),
        awaitee,
    }
}

/// The `holds` rule for a value of type `ty`, and whether it applies to its items (a
/// collection whose view has `items` and whose first type parameter the rule describes:
/// `Vec<oneshot::Sender<T>>`) rather than to the value itself.
fn holds_rule(ev: &Evaluator<'_>, ty: DieId) -> Option<(usize, bool)> {
    let first = |ty: DieId| {
        ev.rules_for(RuleKind::Holds, ty)
            .ok()
            .and_then(|r| r.first().copied())
    };
    if let Some(rule) = first(ty) {
        return Some((rule, false));
    }
    let t = ev.ty(ty).ok()?;
    let (_, elem) = t.template_params.first()?;
    let rule = first(*elem)?;
    ev.has_view_member(ty, "items").then_some((rule, true))
}

/// A value a frame holds across its await that a `holds` rule describes: the resource it
/// holds (its `resource` address and `kind`), noted for the task.
fn held_resource(
    ev: &Evaluator<'_>,
    rule: usize,
    place: Value,
    local: &smol_str::SmolStr,
    head: &FrameHead,
    gathered: &mut Gathered,
) {
    if gathered.holds.len() >= MAX_HELD {
        return;
    }
    let Some(r) = ev.program.rules.get(rule) else {
        return;
    };
    ev.see(Seen::Matched { rule });
    let mut kind = ev.name("held");
    let mut resource = None;
    for (name, value) in ev.eval_members(&r.members, r.frame_size, place) {
        match (name, value) {
            ("kind", Ok(Value::Str(s))) => kind = s,
            ("resource", Ok(v)) => match ev.to_int(&v) {
                Ok(a) => resource = Some(a as u64),
                Err(e) => gathered.miss(
                    &format!("holds.{local}"),
                    format!("holds rule at {}: {e}", ev.program.location(r.span)),
                ),
            },
            ("resource", Err(e)) => gathered.miss(
                &format!("holds.{local}"),
                format!("holds rule at {}: {e}", ev.program.location(r.span)),
            ),
            _ => {}
        }
    }
    if let Some(resource) = resource {
        gathered.holds.push(Held {
            kind,
            resource: Hex(resource),
            local: local.clone(),
            function: head.function.clone(),
            location: head.location.clone(),
        });
    }
}

fn leaf_report(
    ev: &Evaluator<'_>,
    rule: &layoutdump_lang::program::Rule,
    v: Value,
    t: &Type,
    addr: u64,
    gathered: &mut Gathered,
) -> BlockedOn {
    let mut out = BlockedOn {
        kind: ev.name("unknown"),
        future: t.name.clone(),
        address: Hex(addr),
        fields: Fields::with_capacity(rule.members.len()),
    };
    let mut members = crate::eval::Members::new();
    ev.eval_members_into(&rule.members, rule.frame_size, v, &mut members);
    for (name, r) in members.drain(..) {
        match (name, r) {
            ("kind", Ok(Value::Str(s))) => out.kind = s,
            (_, Ok(value)) => {
                let value = crate::eval::field_value(ev, &value);
                out.fields.insert(ev.name(name), value);
            }
            // Computed from a capture time the dump lacks: left out (the notes say why).
            (_, Err(EvalError::NoCaptureTime)) => {}
            (_, Err(e)) => {
                // A member that could not be read (a hook that failed, memory the dump
                // lacks) makes the report partial, and says where the rule is.
                gathered.miss(
                    &format!("blocked_on.{name}"),
                    format!("leaf rule at {}: {e}", ev.program.location(rule.span)),
                );
                out.fields
                    .insert(ev.name(name), FieldValue::Str(format!("unavailable: {e}")));
            }
        }
    }
    out
}

/// Through a pointer or a view's `deref` (Pin, Box, NonNull…), if the type has one.
///
/// A pointer or view that cannot be followed (a trait object whose vtable names no type,
/// a pointer into memory the dump lacks) is missing data: as the task's `future` where
/// `root` (the task rule read the wrong bytes, or the type the vtable does not confirm),
/// else as its `backtrace`.
fn step_through(
    ev: &Evaluator<'_>,
    v: Value,
    t: &Type,
    root: bool,
    gathered: &mut Gathered,
) -> Option<Value> {
    let mut v = v;
    for _ in 0..MAX_HOPS {
        let next = match ev.deref(v.clone()) {
            Ok(next) => next,
            // Nothing to follow (no view, or a view written for another version of the
            // type's crate): not missing data.
            Err(e)
                if e.is_absent()
                    || matches!(e, EvalError::NotA { .. } | EvalError::NoField { .. }) =>
            {
                return None;
            }
            Err(e) => {
                let what = if root { "future" } else { "backtrace" };
                let addr = match v {
                    Value::Place { addr, .. } => addr,
                    _ => 0,
                };
                gathered.miss(
                    what,
                    format!("`{}` at {addr:#x} cannot be followed: {e}", t.name),
                );
                return None;
            }
        };
        let Value::Place { ty, .. } = next else {
            return None;
        };
        let t = ev.ty(ty).ok()?;
        // Stop at anything with meaning of its own: a coroutine or a rule's type.
        let has_rule = [RuleKind::Future, RuleKind::Leaf]
            .into_iter()
            .any(|k| ev.rules_for(k, ty).is_ok_and(|r| !r.is_empty()));
        if t.is_coroutine() || has_rule || !matches!(t.kind, TypeKind::Pointer { .. }) {
            return Some(next);
        }
        v = next;
    }
    None
}

/// A frame of a future that is not an async fn: its type, and how it was found.
fn plain_frame(ev: &Evaluator<'_>, t: &Type, addr: u64, via: Via) -> AwaitFrame {
    // Not a variant index: one key per way of finding the type.
    let key = usize::MAX - via as usize;
    let facts = ev.frame_facts((t.id, key), || FrameFacts {
        head: Arc::new(FrameHead {
            function: function_name(&t.name).into(),
            future: t.name.clone(),
            state: None,
            location: None,
            via: Some(via),
            own: false,
        }),
        saved: Box::new([]),
        holders: Box::new([]),
        awaitee: None,
    });
    AwaitFrame::new(facts.head.clone(), Hex(addr))
}

fn unreadable_frame(
    ev: &Evaluator<'_>,
    t: &Type,
    addr: u64,
    e: EvalError,
    gathered: &mut Gathered,
) -> AwaitFrame {
    gathered.miss(
        "backtrace",
        format!("state of `{}` at {addr:#x}: {e}", t.name),
    );
    let mut f = plain_frame(ev, t, addr, Via::AsyncFn);
    f.note = Some(format!("state unreadable: {e}"));
    f
}

fn note_frame(note: String) -> AwaitFrame {
    let head = FrameHead {
        function: "".into(),
        future: "".into(),
        state: None,
        location: None,
        via: None,
        own: false,
    };
    let mut frame = AwaitFrame::new(Arc::new(head), Hex(0));
    frame.note = Some(note);
    frame
}

/// A saved local: its number where it stands for one, else its type (and length where a
/// view gives one).
fn local_value(ev: &Evaluator<'_>, v: &Value) -> FieldValue {
    crate::eval::field_value(ev, v)
}

fn is_drop_flag(name: &str) -> bool {
    name.strip_prefix("__")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `tokio::sync::oneshot::Sender<u64>` -> `Sender`: a held value's name where it has no
/// variable name (a field of a hand-written future).
fn short_type_name(name: &str) -> &str {
    last_segment(name.split('<').next().unwrap_or(name))
}

fn last_segment(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// `app::serve::handle_conn::{async_fn_env#0}` -> `app::serve::handle_conn`;
/// `app::main::{async_block_env#1}` -> `app::main::{async block#1}`; other futures keep
/// their type name.
pub fn function_name(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut rest = type_name;
    while let Some(i) = rest.find("::{") {
        out.push_str(&rest[..i]);
        let seg_end = rest[i..].find('}').map_or(rest.len(), |e| i + e + 1);
        let segment = &rest[i + 2..seg_end];
        // `{async_fn_env#0}` is the async fn itself; blocks and closures keep a marker.
        if let Some(n) = segment.strip_prefix("{async_block_env#") {
            out.push_str("::{async block#");
            out.push_str(n);
        } else if let Some(n) = segment.strip_prefix("{closure_env#") {
            out.push_str("::{closure#");
            out.push_str(n);
        } else if !segment.starts_with("{async_fn_env#") && !segment.starts_with("{async_fn#") {
            // `{async_fn#0}` is an async fn's body, where its blocks and closures live.
            out.push_str(&rest[i..seg_end]);
        }
        rest = &rest[seg_end..];
    }
    out.push_str(rest);
    out
}

/// Paths from the build machine, shortened where the crate can be told: a crates.io
/// dependency as `tokio-1.54.1/src/time/sleep.rs`, the standard library from `library/`.
pub fn display_path(path: &Arc<str>) -> Arc<str> {
    if let Some(i) = path.find("/registry/src/") {
        let rest = &path[i + "/registry/src/".len()..];
        return rest.split_once('/').map_or(rest, |(_, r)| r).into();
    }
    if let Some(i) = path.find("/library/") {
        return path[i + 1..].into();
    }
    path.clone()
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn function_names_read_like_source() {
        assert_eq!(
            function_name("app::serve::handle_conn::{async_fn_env#0}"),
            "app::serve::handle_conn"
        );
        assert_eq!(
            function_name("app::main::{async_block_env#1}"),
            "app::main::{async block#1}"
        );
        assert_eq!(
            function_name("tokio::sync::mpsc::bounded::{impl#0}::recv::{async_fn_env#0}<u64>"),
            "tokio::sync::mpsc::bounded::{impl#0}::recv<u64>"
        );
        assert_eq!(
            function_name("tokio::time::sleep::Sleep"),
            "tokio::time::sleep::Sleep"
        );
        assert_eq!(
            function_name("app::spawn_mix::{async_fn#0}::{async_block_env#0}"),
            "app::spawn_mix::{async block#0}"
        );
    }
}
