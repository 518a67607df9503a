//! A generic-descent route: the hops from a future to one thing it may hold. Worked out
//! by `descent` from the types, and cached by the evaluator per type.

use crate::dwarf::DieId;

/// One step from a place to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The field at this offset.
    Field(u64),
    /// Into the enum's variant at this index, only if it is the active one.
    Variant { ty: DieId, index: usize },
    /// Through a reference or a `Box` (a null one ends the route: nothing held).
    Deref,
    /// Through a `dyn Future`/`dyn Stream` fat pointer: data and vtable at these offsets;
    /// the vtable names the concrete type.
    Dyn { data: u64, vtable: u64 },
}

/// A way from a future to one thing it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub hops: Box<[Hop]>,
    /// The type at the end (for a `Dyn` hop, the one its vtable names).
    pub target: DieId,
    /// Set when the end is a value a `holds` rule describes (a oneshot `Sender` a
    /// connection keeps to answer a request): the rule's index. Not a step of the chain.
    pub holds: Option<usize>,
}
