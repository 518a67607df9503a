//! The layout language: grammar (pest), parsing into a flat program with spans,
//! name resolution, and diagnostics. Knows nothing of DWARF or dumps.

pub mod compile;
pub mod diagnostic;
pub mod hook;
mod listing;
mod parser;
pub mod program;
pub mod source;
pub mod types;

pub use compile::{Loader, compile};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use program::Program;
/// The rhai hooks are compiled and run with; the interpreter uses this one, never another.
pub use rhai;
pub use source::{SourceFile, Span};
pub use types::TypeExpr;
