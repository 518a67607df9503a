//! Generic descent: the futures and resources a hand-written future holds, from DWARF
//! alone, along routes worked out once per type (`search.rs`) and followed in memory.

use std::rc::Rc;

use layoutdump_lang::program::RuleKind;

use crate::dwarf::{DieId, Type, TypeKind};
pub use crate::eval::route::{Hop, Route};
use crate::eval::{EvalError, Evaluator, Value};
use crate::memory::Bytes;

mod search;

/// Trait objects within trait objects searched at run time: an HTTP body boxes the body it
/// wraps, which boxes the next (tonic's request body is 4 boxes above hyper's `Incoming`).
const MAX_DYN_NESTING: usize = 8;
/// Routes followed for one future, over every nesting: a hostile vtable chain could
/// otherwise fan out at each trait object.
const MAX_FOLLOWED: usize = 256;

// A route ends at anything with meaning of its own: an async fn or block, a type with a
// `Future::poll`/`Stream::poll_next` in the debug info, a trait object of either, or a
// type a `future`/`leaf` rule describes (a socket's `PollEvented`); plain structs on the
// way are stepped through. Raw pointers, `Arc`s and unions are never followed: what they
// point at is shared or not owned, and would show other tasks' futures as this one's.

/// The routes from a value of type `ty` to the futures and resources it holds: worked
/// out once per type and evaluator.
pub fn routes(ev: &Evaluator<'_>, ty: DieId) -> Rc<[Route]> {
    if let Some(r) = ev.cached_routes(ty) {
        return r;
    }
    let found: Rc<[Route]> = search::search(ev, ty).into();
    ev.cache_routes(ty, found.clone());
    found
}

/// Whether a value of this type is a step of its own in a backtrace.
pub fn has_meaning(ev: &Evaluator<'_>, t: &Type) -> bool {
    t.is_coroutine()
        || [RuleKind::Future, RuleKind::Leaf]
            .into_iter()
            .any(|k| ev.rules_for(k, t.id).is_ok_and(|r| !r.is_empty()))
        || ev.dbg.is_future_type(&t.name)
}

/// A fat pointer to a trait object that generic descent follows, through its vtable:
/// any owned one (`Box<dyn AsyncConnWithInfo>`, reqwest's connection, is a socket
/// inside), and borrowed futures and streams (`&mut (dyn Stream<…> + Send)`). Closures
/// (`dyn Fn…`) hold no future the task waits on; errors and `Any` neither. These are
/// structs of two fields in DWARF.
fn trait_object(t: &Type) -> Option<Hop> {
    let name = &*t.name;
    let (object, owned) = match name.strip_prefix("alloc::boxed::Box<") {
        Some(o) => (o, true),
        None => (
            name.strip_prefix("&mut ")
                .or_else(|| name.strip_prefix('&'))?,
            false,
        ),
    };
    // `Box<(dyn Future<…> + Send)>`: with auto traits the object is in parentheses.
    let object = object.strip_prefix('(').unwrap_or(object);
    let trait_path = object.strip_prefix("dyn ")?;
    let future = trait_path.starts_with("core::future::future::Future")
        || trait_path.starts_with("futures_core::stream::Stream");
    let skipped = [
        "core::ops::function::",
        "core::any::Any",
        "core::error::Error",
    ]
    .iter()
    .any(|p| trait_path.starts_with(p));
    if !(future || owned && !skipped) {
        return None;
    }
    let TypeKind::Struct { fields, .. } = &t.kind else {
        return None;
    };
    let at = |n: &str| fields.iter().find(|f| &*f.name == n).map(|f| f.offset);
    Some(Hop::Dyn {
        data: at("pointer")?,
        vtable: at("vtable")?,
    })
}

/// A pointer that owns or borrows what it points at: a reference or a thin `Box`.
fn owning_pointer(t: &Type) -> Option<DieId> {
    match t.kind {
        TypeKind::Pointer { pointee: Some(p) }
            if t.name.starts_with('&') || t.name.starts_with("alloc::boxed::Box<") =>
        {
            Some(p)
        }
        _ => None,
    }
}

/// What following a route found.
pub enum Held {
    /// The future or resource at the end.
    Value(Value),
    /// Nothing here in the value's current state (a `None`, another variant, a null
    /// pointer).
    Absent,
}

/// Follows `route` from the value at `addr`.
pub fn follow(ev: &Evaluator<'_>, addr: u64, route: &Route) -> Result<Held, EvalError> {
    let mut at = addr;
    let mut target = route.target;
    ev.charge_steps(route.hops.len() as u64)?;
    for hop in route.hops.iter() {
        match *hop {
            Hop::Field(offset) => at = at.wrapping_add(offset),
            Hop::Variant { ty, index } => {
                let (active, _) = ev.active_variant_index(at, ty)?;
                if active != index {
                    return Ok(Held::Absent);
                }
            }
            Hop::Deref => {
                at = ev.u64_le(at)?;
                if at == 0 {
                    return Ok(Held::Absent);
                }
            }
            Hop::Dyn { data, vtable } => {
                let object = ev.u64_le(at.wrapping_add(data))?;
                let table = ev.u64_le(at.wrapping_add(vtable))?;
                if object == 0 {
                    return Ok(Held::Absent);
                }
                target = ev.vtable_target(table)?;
                at = object;
            }
        }
    }
    Ok(Held::Value(Value::Place {
        addr: at,
        ty: target,
    }))
}

/// What a future holds now (see `held`).
#[derive(Default)]
pub struct Holdings {
    /// The futures and resources its routes reach in memory: the chain's next steps.
    pub values: Vec<Value>,
    /// Values a `holds` rule describes, with the rule's index: what it holds for others.
    pub holds: Vec<(Value, usize)>,
    /// The first route that could not be followed (why the lists may be short).
    pub error: Option<EvalError>,
}

/// What the future of type `ty` at `addr` holds now.
pub fn held(ev: &Evaluator<'_>, addr: u64, ty: DieId) -> Holdings {
    let mut out = Holdings::default();
    let mut followed = 0;
    held_into(ev, addr, ty, 0, &mut followed, &mut out);
    out
}

fn held_into(
    ev: &Evaluator<'_>,
    addr: u64,
    ty: DieId,
    nesting: usize,
    followed: &mut usize,
    out: &mut Holdings,
) {
    for route in routes(ev, ty).iter() {
        *followed += 1;
        if *followed > MAX_FOLLOWED {
            return;
        }
        match follow(ev, addr, route) {
            Ok(Held::Value(v)) => {
                let Value::Place { addr, ty } = v else {
                    continue;
                };
                if let Some(rule) = route.holds {
                    out.holds.push((v, rule));
                    continue;
                }
                // A trait object's concrete type is known only now: a plain struct (a
                // boxed connection) is searched in turn.
                let plain = matches!(route.hops.last(), Some(Hop::Dyn { .. }))
                    && ev.ty(ty).is_ok_and(|t| !has_meaning(ev, &t));
                if !plain {
                    out.values.push(v);
                } else if nesting < MAX_DYN_NESTING {
                    held_into(ev, addr, ty, nesting + 1, followed, out);
                }
            }
            Ok(Held::Absent) => {}
            Err(e) => {
                out.error.get_or_insert(e);
            }
        }
    }
}

/// What the future of type `ty` at `addr` keeps for others (its `holds` routes only):
/// for a future a rule describes, whose awaits the rule says.
pub fn holds(ev: &Evaluator<'_>, addr: u64, ty: DieId) -> (Vec<(Value, usize)>, Option<EvalError>) {
    let mut out = Vec::new();
    let mut error = None;
    for route in routes(ev, ty).iter().filter(|r| r.holds.is_some()) {
        match follow(ev, addr, route) {
            Ok(Held::Value(v)) => out.extend(route.holds.map(|rule| (v, rule))),
            Ok(Held::Absent) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (out, error)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Hop, owning_pointer, trait_object};
    use crate::dwarf::{DieId, Field, Type, TypeKind};

    fn field(name: &str, offset: u64) -> Field {
        Field {
            name: name.into(),
            offset,
            ty: Some(DieId(1)),
            decl_file: None,
            decl_line: None,
            artificial: false,
        }
    }

    fn fat(name: &str) -> Type {
        Type {
            id: DieId(7),
            name: Arc::from(name),
            size: 16,
            align: Some(8),
            kind: TypeKind::Struct {
                fields: vec![field("pointer", 0), field("vtable", 8)],
                variants: None,
            },
            template_params: Vec::new(),
        }
    }

    fn pointer(name: &str) -> Type {
        Type {
            id: DieId(8),
            name: Arc::from(name),
            size: 8,
            align: None,
            kind: TypeKind::Pointer {
                pointee: Some(DieId(9)),
            },
            template_params: Vec::new(),
        }
    }

    #[test]
    fn trait_objects_followed_are_futures_streams_and_owned_non_closures() {
        let through = Some(Hop::Dyn { data: 0, vtable: 8 });
        for followed in [
            "alloc::boxed::Box<(dyn core::future::future::Future<Output=()> + core::marker::Send), alloc::alloc::Global>",
            "alloc::boxed::Box<dyn core::future::future::Future<Output=()>, alloc::alloc::Global>",
            "&mut (dyn futures_core::stream::Stream<Item=u8> + core::marker::Send)",
            "alloc::boxed::Box<dyn reqwest::connect::AsyncConnWithInfo, alloc::alloc::Global>",
        ] {
            assert_eq!(trait_object(&fat(followed)), through, "{followed}");
        }
        for left in [
            "alloc::boxed::Box<dyn core::ops::function::Fn<()>, alloc::alloc::Global>",
            "alloc::boxed::Box<(dyn core::error::Error + core::marker::Send), alloc::alloc::Global>",
            "&dyn core::fmt::Debug",
            "alloc::vec::Vec<u8, alloc::alloc::Global>",
        ] {
            assert_eq!(trait_object(&fat(left)), None, "{left}");
        }
    }

    #[test]
    fn only_references_and_boxes_are_followed() {
        assert_eq!(
            owning_pointer(&pointer("&mut tokio::net::tcp::stream::TcpStream")),
            Some(DieId(9))
        );
        assert_eq!(
            owning_pointer(&pointer("alloc::boxed::Box<u8, alloc::alloc::Global>")),
            Some(DieId(9))
        );
        assert_eq!(
            owning_pointer(&pointer("*mut tokio::runtime::task::core::Header")),
            None
        );
    }
}
