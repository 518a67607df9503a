//! A member's value as a report shows it: numbers, addresses, strings, collections
//! (their length and first items), objects.

use super::{EvalError, Evaluator, Value};
use crate::report::{FieldValue, Hex};

pub(crate) fn display_string(ev: &Evaluator<'_>, v: &Value) -> String {
    match field_value(ev, v) {
        FieldValue::Str(s) => s,
        FieldValue::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// Items of a collection shown in a report.
const FIRST_ITEMS: usize = 8;

/// A member's value for the report: numbers where the value stands for one, strings,
/// lists, and otherwise the object's type and address.
pub(crate) fn field_value(ev: &Evaluator<'_>, v: &Value) -> FieldValue {
    field_value_depth(ev, v, 0)
}

/// `field_value` for a task's member: where the value's view says how it reads (`show`,
/// a string's text) and that cannot be read, why; the report marks the member unread
/// instead of showing the object's type and address.
pub(crate) fn checked_field_value(ev: &Evaluator<'_>, v: &Value) -> Result<FieldValue, EvalError> {
    if let Value::Place { addr, ty } = v {
        // Read once: `shown_number` counts the steps it takes.
        if let Some(i) = ev.shown_number(*addr, *ty) {
            return Ok(number(ev, *ty, i));
        }
        match ev.show(v) {
            Some(Ok(shown)) => return Ok(field_value_depth(ev, &shown, 1)),
            Some(Err(e)) if !e.is_absent() => return Err(e),
            _ => {}
        }
    }
    Ok(field_value(ev, v))
}

pub(super) fn field_value_depth(ev: &Evaluator<'_>, v: &Value, depth: u32) -> FieldValue {
    match v {
        Value::Int(i) => FieldValue::Int(*i),
        Value::Addr(a) => FieldValue::Address(Hex(*a)),
        Value::Str(s) => FieldValue::Str(s.to_string()),
        Value::Seq(items) => FieldValue::List(
            items
                .iter()
                .take(64)
                .map(|i| field_value_depth(ev, i, depth + 1))
                .collect(),
        ),
        Value::Place { addr, ty } => {
            if let Some(i) = ev.shown_number(*addr, *ty) {
                return number(ev, *ty, i);
            }
            // A view's `show` says how the type reads (a String's text); bounded, since a
            // `show` may name another value with a `show`.
            if depth < 4
                && let Some(Ok(shown)) = ev.show(v)
            {
                return field_value_depth(ev, &shown, depth + 1);
            }
            let t = ev.ty(*ty).ok();
            if let Some(t) = &t
                && matches!(t.kind, crate::dwarf::TypeKind::Pointer { .. })
                && let Ok(target) = crate::memory::Bytes::u64_le(ev, *addr)
            {
                return FieldValue::Address(Hex(target));
            }
            if let Some(i) = ev.to_int_ok(v) {
                return number(ev, *ty, i);
            }
            if depth < 4 {
                // A collection: its length and first items (a Vec, a slice).
                if let Some(Ok(items)) = ev.view_items(v) {
                    let first = items
                        .iter()
                        .take(FIRST_ITEMS)
                        .map(|i| field_value_depth(ev, i, depth + 1))
                        .collect();
                    return FieldValue::Collection {
                        len: items.len() as u64,
                        first,
                    };
                }
                // What a wrapper stands for (an Arc's target, a Mutex's value), where that
                // reads as a value rather than as another object.
                if let Ok(inner) = ev.deref(v.clone()) {
                    let shown = field_value_depth(ev, &inner, depth + 1);
                    if !matches!(shown, FieldValue::Object { .. }) {
                        return shown;
                    }
                }
            }
            FieldValue::Object {
                ty: t.map(|t| t.name.to_string()).unwrap_or_default(),
                address: Hex(*addr),
            }
        }
    }
}

/// The number `i` a value of type `ty` stands for, as a report shows it: `true`/`false`
/// for a `bool`.
fn number(ev: &Evaluator<'_>, ty: crate::dwarf::DieId, i: i128) -> FieldValue {
    if ev.shown_bool(ty) {
        FieldValue::Bool(i != 0)
    } else {
        FieldValue::Int(i)
    }
}
