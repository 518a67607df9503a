//! Calling a layout's rhai hooks on a snapshot of the value (its typed fields and bytes),
//! never the dump itself: a hook can neither wander through memory nor run longer than
//! its operation limit. What it prints is kept for the report's notes.

use std::sync::{Arc, Mutex};

use layoutdump_lang::hook::{HookLimits, sandbox};
use layoutdump_lang::program::Hook;
use layoutdump_lang::rhai::{self, Blob, Dynamic, Engine, Map, Scope};

use super::{EvalError, Evaluator, Value};
use crate::dwarf::{BaseKind, TypeKind};

/// How deep a struct argument is copied; deeper members are given as their address.
const MAX_NESTING: u32 = 4;
/// Bytes of dump memory one hook call may copy into its arguments.
const MAX_COPY: u64 = 1 << 20;
/// The `__bytes` of an argument: at most this many of its first bytes.
const MAX_OWN_BYTES: u64 = 4096;
/// Lines of print/debug output kept per run (the rest are counted).
const MAX_PRINTED: usize = 200;

/// The sandbox engine of one run and what its hooks printed.
pub struct HookEngine {
    engine: Engine,
    printed: Arc<Mutex<Vec<String>>>,
}

impl HookEngine {
    pub fn new(limits: &HookLimits) -> Self {
        let printed = Arc::new(Mutex::new(Vec::new()));
        let mut engine = sandbox(limits);
        let sink = printed.clone();
        engine.on_print(move |s| keep(&sink, s));
        let sink = printed.clone();
        engine.on_debug(move |s, _, _| keep(&sink, s));
        HookEngine { engine, printed }
    }

    /// Everything the hooks printed so far, oldest first.
    pub fn printed(&self) -> Vec<String> {
        self.printed.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Everything printed so far, which is then forgotten.
    pub fn take_printed(&self) -> Vec<String> {
        self.printed
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

fn keep(sink: &Mutex<Vec<String>>, line: &str) {
    if let Ok(mut lines) = sink.lock() {
        if lines.len() < MAX_PRINTED {
            lines.push(line.chars().take(512).collect());
        } else if lines.len() == MAX_PRINTED {
            lines.push(format!("(hook output after {MAX_PRINTED} lines not kept)"));
        }
    }
}

impl Evaluator<'_> {
    /// Runs `hook` on `args`; its result becomes a number, a string or a list of them.
    pub(super) fn call_hook(&self, hook: &Hook, args: Vec<Value>) -> Result<Value, EvalError> {
        let engine = self
            .hooks
            .get_or_init(|| HookEngine::new(&self.limits.hook));
        let mut scope = Scope::new();
        let mut budget = MAX_COPY;
        for (name, v) in hook.params.iter().zip(args) {
            let mut d = self.to_rhai(&v, 0, &mut budget)?;
            if let Value::Place { addr, ty } = v
                && let Some(mut map) = d.write_lock::<Map>()
            {
                let size = self.ty(ty)?.size.min(MAX_OWN_BYTES);
                let mut bytes = vec![0u8; size as usize];
                if self.mem.read(addr, &mut bytes).is_ok() {
                    map.insert("__bytes".into(), Dynamic::from_blob(bytes));
                }
            }
            scope.push_dynamic(name.as_str(), d);
        }
        let result = engine
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &hook.ast)
            .map_err(|mut e| {
                let pos = e.take_position();
                let at = self.program.location(self.program.hook_span(hook, pos));
                let raise = match *e {
                    rhai::EvalAltResult::ErrorTooManyOperations(..) => format!(
                        " (limit {}; raise it with --limit-hook-operations)",
                        self.limits.hook.operations
                    ),
                    _ => String::new(),
                };
                EvalError::Other(format!("hook `{}` failed at {at}: {e}{raise}", hook.name))
            })?;
        from_rhai(&hook.name, result, 0)
    }

    /// A copy of `v` for a hook: numbers as numbers, text as strings, byte arrays as
    /// blobs, other arrays and sequences as arrays, structs as maps of their fields (with
    /// `__addr` and `__type`), an enum as a map of its active variant's fields plus
    /// `variant`, a pointer as its address.
    fn to_rhai(&self, v: &Value, nesting: u32, budget: &mut u64) -> Result<Dynamic, EvalError> {
        let (addr, ty) = match v {
            Value::Int(i) => return int(*i),
            Value::Addr(a) => return Ok(Dynamic::from_int(*a as i64)),
            Value::Str(s) => return Ok(Dynamic::from(s.to_string())),
            Value::Seq(items) => {
                if items.len() > self.limits.hook.array {
                    return Err(hook_limit("array", self.limits.hook.array as u64));
                }
                return items
                    .iter()
                    .map(|i| self.to_rhai(i, nesting + 1, budget))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Dynamic::from_array);
            }
            Value::Place { addr, ty } => (*addr, *ty),
        };
        let t = self.ty(ty)?;
        *budget = match budget.checked_sub(t.size.min(MAX_COPY)) {
            Some(left) => left,
            None => {
                *budget = 0;
                return Err(hook_limit("bytes copied into one hook call", MAX_COPY));
            }
        };
        if nesting > 0
            && let Some(shown) = self.show(v)
        {
            return self.to_rhai(&shown?, nesting + 1, budget);
        }
        if nesting > MAX_NESTING {
            return Ok(Dynamic::from_int(addr as i64));
        }
        match &t.kind {
            TypeKind::Base(BaseKind::Bool) => Ok(Dynamic::from_bool(self.to_int(v)? != 0)),
            TypeKind::Base(BaseKind::Float) if t.size == 8 => {
                let mut b = [0u8; 8];
                self.mem.read(addr, &mut b)?;
                Ok(Dynamic::from_float(f64::from_le_bytes(b)))
            }
            TypeKind::Base(_) | TypeKind::Pointer { .. } | TypeKind::CEnum { .. } => {
                int(self.to_int(v)?)
            }
            TypeKind::Array { elem, count } => {
                let count = count.unwrap_or(0);
                let e = self.ty(*elem)?;
                if count > self.limits.hook.array as u64 {
                    return Err(hook_limit("array", self.limits.hook.array as u64));
                }
                if e.size == 1 && matches!(e.kind, TypeKind::Base(_)) {
                    // One read for the whole array; each byte a number, as `for b in …`
                    // and `==` on numbers expect.
                    let mut bytes: Blob = vec![0u8; count as usize];
                    self.mem.read(addr, &mut bytes)?;
                    let signed = matches!(e.kind, TypeKind::Base(BaseKind::Signed));
                    return Ok(Dynamic::from_array(
                        bytes
                            .into_iter()
                            .map(|b| {
                                Dynamic::from_int(if signed {
                                    i64::from(b as i8)
                                } else {
                                    i64::from(b)
                                })
                            })
                            .collect(),
                    ));
                }
                (0..count)
                    .map(|i| {
                        let at = addr.wrapping_add(i.wrapping_mul(e.size));
                        self.to_rhai(
                            &Value::Place {
                                addr: at,
                                ty: *elem,
                            },
                            nesting + 1,
                            budget,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Dynamic::from_array)
            }
            TypeKind::Struct {
                variants: Some(_), ..
            } => {
                let (name, data) = self.active_variant(addr, ty)?;
                let mut map = match data {
                    Value::Place { addr, ty } => {
                        self.fields_map(addr, &*self.ty(ty)?, nesting, budget)?
                    }
                    _ => Map::new(),
                };
                map.insert("variant".into(), Dynamic::from(name.to_string()));
                Ok(Dynamic::from_map(map))
            }
            TypeKind::Struct { fields, .. } | TypeKind::Union { fields } => {
                // `Cell`, `UnsafeCell`, atomics, `NonZero`…: a hook wants the number.
                if fields.len() == 1 && t.name.starts_with("core::") {
                    let inner = super::place(addr, fields[0].offset, fields[0].ty, &t)?;
                    return self.to_rhai(&inner, nesting, budget);
                }
                let mut map = self.fields_map(addr, &t, nesting, budget)?;
                map.insert("__addr".into(), Dynamic::from_int(addr as i64));
                map.insert("__type".into(), Dynamic::from(t.name.to_string()));
                Ok(Dynamic::from_map(map))
            }
            TypeKind::Function | TypeKind::Opaque => Ok(Dynamic::from_int(addr as i64)),
        }
    }
}

impl Evaluator<'_> {
    /// The fields of the struct (or enum variant) `t` at `addr`, by name. A field that
    /// cannot be read is left out: the hook sees it missing, as `()`.
    fn fields_map(
        &self,
        addr: u64,
        t: &crate::dwarf::Type,
        nesting: u32,
        budget: &mut u64,
    ) -> Result<Map, EvalError> {
        let mut map = Map::new();
        let (TypeKind::Struct { fields, .. } | TypeKind::Union { fields }) = &t.kind else {
            return Ok(map);
        };
        for f in fields {
            match super::place(addr, f.offset, f.ty, t)
                .and_then(|p| self.to_rhai(&p, nesting + 1, budget))
            {
                Ok(d) => {
                    map.insert(f.name.as_ref().into(), d);
                }
                // Run-wide limits, and the copy budget running out, end the call.
                Err(e) if matches!(e, EvalError::Limit { .. }) || *budget == 0 => return Err(e),
                Err(_) => {}
            }
        }
        Ok(map)
    }
}

fn int(i: i128) -> Result<Dynamic, EvalError> {
    // rhai numbers are i64; a u64 (an address, a state word) keeps its bits.
    i64::try_from(i)
        .ok()
        .or_else(|| u64::try_from(i).ok().map(|u| u as i64))
        .map(Dynamic::from_int)
        .ok_or_else(|| EvalError::Other(format!("{i} does not fit in a hook's 64-bit integer")))
}

fn hook_limit(what: &'static str, limit: u64) -> EvalError {
    EvalError::Other(format!(
        "a hook's argument is too large: {what} over {limit} (see docs/language.md, \"Limits\")"
    ))
}

/// A hook's result as a layout value: numbers, booleans (0/1), strings and characters,
/// and arrays of those.
fn from_rhai(hook: &str, d: Dynamic, nesting: u32) -> Result<Value, EvalError> {
    if let Ok(i) = d.as_int() {
        return Ok(Value::Int(i128::from(i)));
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Value::Int(i128::from(b)));
    }
    if let Ok(c) = d.as_char() {
        return Ok(Value::Str(c.to_string().into()));
    }
    if let Ok(f) = d.as_float() {
        return Ok(Value::Str(format!("{f}").into()));
    }
    if d.is_string() {
        return Ok(Value::Str(d.into_string().unwrap_or_default().into()));
    }
    if d.is_array() && nesting < 4 {
        let items = d.into_array().unwrap_or_default();
        return items
            .into_iter()
            .map(|i| from_rhai(hook, i, nesting + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Seq);
    }
    let what = if d.is_unit() {
        "nothing".to_string()
    } else {
        format!("a value of type `{}`", d.type_name())
    };
    Err(EvalError::Other(format!(
        "hook `{hook}` returned {what}; a hook returns a number, a string, or an array of them"
    )))
}
