//! The gimli `Reader` used everywhere: section bytes borrowed from a shared memory map, or
//! owned when a section had to be decompressed. Nothing else in the crate touches the map.

use std::ops::Deref;
use std::sync::Arc;

use memmap2::Mmap;

/// Bytes of one DWARF section. Cloning is cheap (an `Arc`), so gimli can hand readers
/// around freely while the file stays mapped, never read whole.
#[derive(Debug, Clone)]
pub enum SectionBytes {
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        end: usize,
    },
    Owned(Arc<[u8]>),
}

impl Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SectionBytes::Mapped { map, start, end } => &map[*start..*end],
            SectionBytes::Owned(bytes) => bytes,
        }
    }
}

// SAFETY: both variants point into heap or mapped memory owned by an `Arc`, whose address
// does not change while any clone lives, which is what StableDeref requires.
unsafe impl gimli::StableDeref for SectionBytes {}
unsafe impl gimli::CloneStableDeref for SectionBytes {}

/// The reader type for every DWARF section of a loaded binary.
pub type Reader = gimli::EndianReader<gimli::RunTimeEndian, SectionBytes>;
