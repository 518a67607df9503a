//! Working out a type's routes: a breadth-first search of its fields, variants and owning
//! pointers for the nearest values with meaning, within a budget of levels and places.

// Breadth first, so that the budget goes to what is near: a tower `retry` future's request
// is 5 levels down, behind a client's configuration whose boxed services run 10 deep.

use std::collections::VecDeque;

use layoutdump_lang::program::RuleKind;

use super::{Hop, Route, has_meaning, owning_pointer, trait_object};
use crate::dwarf::{DieId, TypeKind};
use crate::eval::Evaluator;

/// Levels of one route: a field, a variant's field or a pointer is one level (tonic's
/// request body reaches hyper's `RecvStream` in 9: `Streaming` → `inner` → `body` →
/// `kind` → `Wrap` → `UnsyncBoxBody` → `Pin` → `Box<dyn Body>`, then the boxed body).
const MAX_LEVELS: usize = 12;
/// Routes kept per type: a future holding more futures than this at once is cut.
const MAX_ROUTES: usize = 16;
/// Places looked at while working out one type's routes.
const MAX_VISITS: usize = 512;

/// A place the search reached.
struct Node {
    hops: Vec<Hop>,
    ty: DieId,
    levels: usize,
    /// The node this one was reached from: a type that holds itself (a list of boxes)
    /// is not searched again inside itself.
    parent: Option<usize>,
    /// Which field or variant it is at each step: routes are listed in this order, the
    /// order of the type's declaration, whatever order the search found them in.
    rank: Vec<u32>,
}

/// The routes from a value of type `root` to the nearest values with meaning.
pub(super) fn search(ev: &Evaluator<'_>, root: DieId) -> Vec<Route> {
    let mut nodes = vec![Node {
        hops: Vec::new(),
        ty: root,
        levels: 0,
        parent: None,
        rank: Vec::new(),
    }];
    let mut queue = VecDeque::from([0usize]);
    let mut out = Vec::new();
    let mut visits = 0;
    while let Some(at) = queue.pop_front() {
        for child in children(ev, &nodes[at], at) {
            visits += 1;
            if visits > MAX_VISITS || out.len() >= MAX_ROUTES {
                break;
            }
            if on_path(&nodes, at, child.ty) {
                continue;
            }
            match classify(ev, &child) {
                Some(route) => out.push((route, child.rank)),
                None if child.levels < MAX_LEVELS => {
                    queue.push_back(nodes.len());
                    nodes.push(child);
                }
                None => {}
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.into_iter().map(|(route, _)| route).collect()
}

/// What a route that ends at `node` is, if the search stops there.
fn classify(ev: &Evaluator<'_>, node: &Node) -> Option<Route> {
    let t = ev.ty(node.ty).ok()?;
    let route = |hops: Vec<Hop>, holds| Route {
        hops: hops.into(),
        target: node.ty,
        holds,
    };
    if let Some(hop) = trait_object(&t) {
        let mut hops = node.hops.clone();
        hops.push(hop);
        return Some(route(hops, None));
    }
    if let Some(rule) = ev
        .rules_for(RuleKind::Holds, node.ty)
        .ok()
        .and_then(|r| r.first().copied())
    {
        return Some(route(node.hops.clone(), Some(rule)));
    }
    has_meaning(ev, &t).then(|| route(node.hops.clone(), None))
}

/// Whether `ty` is already on the way from the root to the node `at`.
fn on_path(nodes: &[Node], mut at: usize, ty: DieId) -> bool {
    loop {
        if nodes[at].ty == ty {
            return true;
        }
        match nodes[at].parent {
            Some(p) => at = p,
            None => return false,
        }
    }
}

/// The places one step inside the value at `node`: through its pointer, its fields, or
/// each of its variants' fields.
fn children(ev: &Evaluator<'_>, node: &Node, index: usize) -> Vec<Node> {
    let Ok(t) = ev.ty(node.ty) else {
        return Vec::new();
    };
    let child = |extra: &[Hop], ty: DieId, rank: u32| {
        let mut hops = node.hops.clone();
        hops.extend_from_slice(extra);
        let mut ranks = node.rank.clone();
        ranks.push(rank);
        Node {
            hops,
            ty,
            levels: node.levels + 1,
            parent: Some(index),
            rank: ranks,
        }
    };
    if let Some(p) = owning_pointer(&t) {
        return vec![child(&[Hop::Deref], p, 0)];
    }
    if t.size == 0 {
        return Vec::new();
    }
    let TypeKind::Struct { fields, variants } = &t.kind else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match variants {
        Some(vp) => {
            // A variant's fields are one level below the enum, as a struct's are: the
            // variant is where they are, not a step of its own.
            for (index, v) in vp.variants.iter().enumerate() {
                let Some(vty) = v.field.ty else { continue };
                let Ok(vt) = ev.ty(vty) else { continue };
                let TypeKind::Struct { fields, .. } = &vt.kind else {
                    continue;
                };
                for (i, f) in fields.iter().enumerate() {
                    let Some(fty) = f.ty else { continue };
                    let hops = [
                        Hop::Variant { ty: t.id, index },
                        Hop::Field(v.field.offset),
                        Hop::Field(f.offset),
                    ];
                    let rank = (index as u32) << 16 | (i as u32 & 0xffff);
                    out.push(child(&hops, fty, rank));
                }
            }
        }
        None => {
            for (i, f) in fields.iter().enumerate() {
                if let Some(fty) = f.ty {
                    out.push(child(&[Hop::Field(f.offset)], fty, i as u32));
                }
            }
        }
    }
    out
}
