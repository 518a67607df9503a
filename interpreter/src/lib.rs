//! layoutdump's engine: memory sources, the DWARF model, Rust value decoding, execution of
//! compiled layouts against a dump, and report rendering.

pub mod analyze;
pub mod backtrace;
pub mod check;
pub mod crash;
pub mod deferred;
pub mod descent;
pub mod dwarf;
pub mod eval;
pub mod fleet;
pub mod frame_scan;
pub mod fuzzing;
/// The memory sources, from their own crate (the layer below this one).
pub use layoutdump_dump as memory;
pub mod progress;
pub mod ptype;
pub mod report;
pub mod run;
pub mod scan;
pub mod shipped;
mod sync;
pub mod unwind;
pub mod usage;
