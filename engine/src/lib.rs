//! layoutdump's engine: Rust value decoding, execution of compiled layouts against a dump,
//! async backtraces, over the memory and DWARF crates; it fills `layoutdump-report`.

pub mod analyze;
pub mod backtrace;
pub mod check;
pub mod crash;
pub mod descent;
pub mod task_stream;
/// The binary's DWARF, from its own crate (the layer below this one).
pub use layoutdump_dwarf as dwarf;
pub mod eval;
pub mod frame_scan;
pub mod fuzzing;
pub mod polling;
pub mod triage;
/// The memory sources, from their own crate (the layer below this one).
pub use layoutdump_dump as memory;
pub use layoutdump_dwarf::progress;
pub mod layout_loader;
mod lookup;
/// The report's data and writers, from their own crate (the engine fills it).
pub use layoutdump_report as report;
pub use layoutdump_report::explain;
pub mod run;
pub mod scan;
pub mod type_layout;
use layoutdump_dwarf::sync;
pub use layoutdump_dwarf::unwind;
