//! The layout language's builtins (`addr`, `variant`, `len`, `bits`, casts, …) evaluated.

use layoutdump_lang::program::{Builtin, ExprId};

use super::{EvalError, Evaluator, Frame, MAX_STR, Value};
use crate::dwarf::TypeKind;
use crate::memory::Bytes;

impl<'a> Evaluator<'a> {
    pub(super) fn builtin(
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
            Builtin::Runtime => match self.runtime.get() {
                Some((addr, ty)) => Ok(Value::Place { addr, ty }),
                None => Err(EvalError::Other(
                    "task_runtime() is known only while reading a task that a runtime's `tasks` listed \
                     (not a task found by a scan, nor a runtime's own members)"
                        .into(),
                )),
            },
            // Left out where the dump does not record it (`Analysis` notes why).
            Builtin::DumpTime => match self.mem.captured_at() {
                Some(ns) => Ok(Value::Int(i128::from(ns))),
                None => Err(EvalError::NoCaptureTime),
            },
            Builtin::Range => {
                let n = arg(0, frame)?;
                let n = u64::try_from(self.to_int(&n)?).unwrap_or(0);
                if n > self.limits.items {
                    return Err(EvalError::Limit {
                        what: "items",
                        limit: self.limits.items,
                    });
                }
                Ok(Value::Seq(
                    (0..n).map(|i| Value::Int(i128::from(i))).collect(),
                ))
            }
            Builtin::If => {
                let cond = arg(0, frame)?;
                let chosen = if self.to_int(&cond)? != 0 { 1 } else { 2 };
                arg(chosen, frame)
            }
            Builtin::SizeOf => match arg(0, frame)? {
                Value::Place { ty, .. } => Ok(Value::Int(i128::from(self.ty(ty)?.size))),
                _ => Err(EvalError::Other("size_of() needs a type".into())),
            },
            Builtin::AlignOf => match arg(0, frame)? {
                Value::Place { ty, .. } => Ok(Value::Int(i128::from(self.align_of(ty)?))),
                _ => Err(EvalError::Other("align_of() needs a type".into())),
            },
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
                let mut text = utf8_text(&bytes, len > shown).map_err(|bad| {
                    EvalError::Other(format!(
                        "the {len} bytes at {addr:#x} are not UTF-8 text (byte {bad} is not): \
                         a Rust string always is, so this reads the wrong memory"
                    ))
                })?;
                if len > shown {
                    text.push('…');
                }
                Ok(Value::Str(text.into()))
            }
        }
    }
}

impl Evaluator<'_> {
    /// A type's alignment: as the compiler recorded it, an array's element's, or for a
    /// base type or pointer (which rustc records none for) its size's largest power of
    /// two, up to 16 (1 for a zero-sized one). Arrays of arrays are followed a bounded
    /// number of times: a hostile DWARF file may make one its own element.
    fn align_of(&self, mut ty: crate::dwarf::DieId) -> Result<u64, EvalError> {
        for _ in 0..super::MAX_HOPS {
            let t = self.ty(ty)?;
            if let Some(align) = t.align {
                return Ok(align);
            }
            match t.kind {
                TypeKind::Array { elem, .. } => ty = elem,
                _ if t.size == 0 => return Ok(1),
                _ => return Ok(1 << t.size.trailing_zeros().min(4)),
            }
        }
        Err(EvalError::Limit {
            what: "depth",
            limit: super::MAX_HOPS as u64,
        })
    }
}

/// `bytes` as text, or the offset of the first byte that makes it not UTF-8. A string
/// `cut` short may end inside a character: that character is left out.
fn utf8_text(bytes: &[u8], cut: bool) -> Result<String, usize> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) if cut && e.error_len().is_none() => {
            Ok(String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned())
        }
        Err(e) => Err(e.valid_up_to()),
    }
}

#[cfg(test)]
mod utf8_tests {
    use super::utf8_text;

    #[test]
    fn text_is_strict_except_where_cut() {
        assert_eq!(utf8_text(b"worker-1", false).as_deref(), Ok("worker-1"));
        assert_eq!(utf8_text(b"ab\xff", false), Err(2));
        // "é" is two bytes; cut after the first, the text ends before it.
        assert_eq!(utf8_text(b"caf\xc3", true).as_deref(), Ok("caf"));
        assert_eq!(utf8_text(b"caf\xc3", false), Err(3));
        assert_eq!(utf8_text(b"\xffabc", true), Err(0));
    }
}
