//! In-memory test memory: byte ranges at chosen addresses.

use crate::memory::{Memory, MemoryError};
use crate::regions::read_spans;

/// In-memory test double: a few byte ranges at chosen addresses.
#[derive(Debug, Clone, Default)]
pub struct SliceMemory {
    /// Sorted by address, non-overlapping.
    chunks: Vec<(u64, Vec<u8>)>,
}

pub type TestMemory = SliceMemory;

impl SliceMemory {
    pub fn new() -> SliceMemory {
        SliceMemory::default()
    }

    /// Adds `bytes` at `addr`. Panics on overlap: this is for tests, which should not overlap.
    pub fn with(mut self, addr: u64, bytes: impl Into<Vec<u8>>) -> SliceMemory {
        self.insert(addr, bytes);
        self
    }

    pub fn insert(&mut self, addr: u64, bytes: impl Into<Vec<u8>>) {
        let bytes = bytes.into();
        let end = addr + bytes.len() as u64;
        let at = self.chunks.partition_point(|(a, _)| *a < addr);
        let overlaps_prev = at > 0 && {
            let (a, b) = &self.chunks[at - 1];
            a + b.len() as u64 > addr
        };
        let overlaps_next = self.chunks.get(at).is_some_and(|(a, _)| *a < end);
        assert!(
            !overlaps_prev && !overlaps_next,
            "SliceMemory chunks overlap at {addr:#x}"
        );
        self.chunks.insert(at, (addr, bytes));
    }

    /// Adds a little-endian u64 at `addr`.
    pub fn with_u64(self, addr: u64, value: u64) -> SliceMemory {
        self.with(addr, value.to_le_bytes())
    }
}

impl Memory for SliceMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        read_spans(
            &self.chunks,
            |(a, b)| (*a, a + b.len() as u64),
            addr,
            buf,
            |(_, bytes), within, out| {
                let start = within as usize;
                out.copy_from_slice(&bytes[start..start + out.len()]);
                true
            },
        )
    }
}
