//! Values of the layout language at run time, and the errors that make a value
//! unavailable. A place is typed memory in the dump; nothing is read until needed.

use std::sync::Arc;

use crate::dwarf::DieId;
use crate::memory::MemoryError;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An object of DWARF type `ty` at runtime address `addr`.
    Place {
        addr: u64,
        ty: DieId,
    },
    Int(i128),
    /// A number that is an address (`addr(x)`, a pointer's value): reported in hex.
    Addr(u64),
    /// Short strings (a state's or a kind's name) inline, longer ones shared.
    Str(smol_str::SmolStr),
    Seq(Vec<Value>),
}

/// Why a value could not be produced. Each one becomes "unavailable: <reason>" in the
/// report and the rest of the report goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Memory(#[from] MemoryError),
    #[error("type `{ty}` has no field `{field}`{}", available_hint(.available))]
    NoField {
        field: String,
        ty: Arc<str>,
        available: Vec<Arc<str>>,
    },
    #[error("null pointer of type `{ty}`")]
    NullPointer { ty: Arc<str> },
    #[error("enum `{ty}` holds variant `{active}`, not `{wanted}`")]
    Inactive {
        wanted: String,
        active: Arc<str>,
        ty: Arc<str>,
    },
    #[error("no type named `{name}` in the binary's debug info")]
    TypeNotFound { name: String },
    #[error("expected {what}, found a value of type `{ty}`")]
    NotA { what: &'static str, ty: Arc<str> },
    #[error("no function with debug info at {addr:#x}")]
    NoFunction { addr: u64 },
    #[error("{what} limit of {limit} reached (raise it with --limit-{what})")]
    Limit { what: &'static str, limit: u64 },
    #[error("debug info: {0}")]
    Dwarf(String),
    #[error("{0}")]
    Other(String),
    /// `dump_time()` on a dump that does not record when it was taken: the value is left
    /// out, as a `None` is, and the report's notes say why.
    #[error("the dump does not record when it was taken")]
    NoCaptureTime,
}

fn available_hint(fields: &[Arc<str>]) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        let shown: Vec<&str> = fields.iter().take(12).map(|f| &**f).collect();
        format!(" (it has: {})", shown.join(", "))
    }
}

impl From<crate::dwarf::DwarfError> for EvalError {
    fn from(e: crate::dwarf::DwarfError) -> Self {
        EvalError::Dwarf(e.to_string())
    }
}

impl EvalError {
    /// An `Option` holding `None` (or a null pointer): the normal end of a list, or "no
    /// runtime on this thread", rather than a failure.
    pub fn is_absent(&self) -> bool {
        match self {
            EvalError::Inactive { active, .. } => &**active == "None",
            EvalError::NullPointer { .. } | EvalError::NoCaptureTime => true,
            _ => false,
        }
    }

    /// An error that the type of the value it was raised on decides, whatever its bytes:
    /// a member the type lacks, a struct where a number was wanted. Reached by the same
    /// route from the same type, it is raised again (see `cache::Known::Fails`).
    pub fn is_of_type(&self) -> bool {
        matches!(self, EvalError::NoField { .. } | EvalError::NotA { .. })
    }
}
