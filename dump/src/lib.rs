//! The memory of a dumped process: the read-only view every source gives (`Memory`), the
//! dump formats (ELF cores, minidumps) and the binaries and libraries they map, laid over
//! one another as regions. The lowest layer: it knows nothing of DWARF or of layouts.

pub mod backing;
pub mod binary;
pub mod dump;
mod elf_core;
pub mod memory;
mod minidump;
pub mod prefetch;
mod reader;
pub mod regions;
mod resident;
pub mod slice;
pub mod windows;

#[cfg(test)]
mod tests;

pub use binary::{BinaryError, BinaryImage, FileImageMemory, locate_binary};
pub use dump::{
    BuildIdOrigin, CaptureTime, CrashInfo, Dump, DumpError, DumpFormat, Mapping, Module, Registers,
    Thread,
};
/// The note `layoutdump capture` writes into a core with the time it was taken.
pub use elf_core::{CAPTURE_NOTE, MD_CAPTURE_TIME_STREAM, NT_CAPTURE_TIME};
pub use memory::{Bytes, Memory, MemoryError};
pub use prefetch::prefetch_value;
pub use regions::{Region, RegionSource};
pub use slice::{SliceMemory, TestMemory};
pub use windows::Windows;
