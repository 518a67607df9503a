//! `Memory`, the one read-only view of a dumped process's memory every source implements,
//! its error, and `Bytes`, the reads everything above it is written against.

use std::sync::Arc;

use crate::prefetch::prefetch_bytes;

/// Read-only access to the memory of a dumped (or otherwise inspected) process.
///
/// Every source implements it: ELF cores, minidumps, binary images, test memory. Missing
/// memory is an ordinary value, not a crash: dumps routinely lack pages.
pub trait Memory: Send + Sync {
    /// Fills `buf` from `addr` (a runtime address in the dumped process), entirely or not at all.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    /// The `len` bytes at `addr` in place, when the source holds them as one slice (a
    /// memory-mapped dump): a scan of every byte then reads without copying them. None
    /// does not mean unavailable: `read` says that.
    fn slice(&self, _addr: u64, _len: usize) -> Option<&[u8]> {
        None
    }

    /// The stretch of memory holding `addr` as the source holds it in place (a region of
    /// a memory-mapped dump), and the address it starts at: a reader that keeps it reads
    /// the next values there without asking the source again (see `Evaluator::read`).
    /// None where the source has no such stretch; `read` still reads.
    fn window(&self, _addr: u64) -> Option<(u64, &[u8])> {
        None
    }

    /// Asks the CPU to start loading the `len` bytes at `addr` into its cache, where the
    /// source holds them in place: reading a million tasks one after the other, the next
    /// task's memory arrives while this one is read. Only a hint: nothing is read, and
    /// memory the dump lacks is simply not fetched.
    fn prefetch(&self, addr: u64, len: usize) {
        if let Some(bytes) = self.slice(addr, len) {
            prefetch_bytes(bytes);
        }
    }

    /// When the process was captured, on its monotonic clock (`CLOCK_MONOTONIC`, in
    /// nanoseconds), where the dump records it: what a layout's `dump_time()` gives.
    fn captured_at(&self) -> Option<u64> {
        None
    }

    fn read_u8(&self, addr: u64) -> Result<u8, MemoryError> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }

    fn read_u32_le(&self, addr: u64) -> Result<u32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn read_u64_le(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads `len` bytes, refusing (without allocating) when `len > cap`: lengths often come
    /// from the dump itself, and a corrupt `Vec` header must not become a 2^63-byte allocation.
    fn read_vec(&self, addr: u64, len: u64, cap: u64) -> Result<Vec<u8>, MemoryError> {
        if len > cap {
            return Err(MemoryError::TooLarge { addr, len, cap });
        }
        let size = usize::try_from(len).map_err(|_| MemoryError::TooLarge { addr, len, cap })?;
        let mut v = vec![0u8; size];
        self.read(addr, &mut v)?;
        Ok(v)
    }
}

/// A reference or an owning pointer to a memory is that memory: every method the trait
/// lets a source override is forwarded, so a wrapper never falls back to a default (a
/// `captured_at` of None, a `window` that always misses).
macro_rules! forward_memory {
    ($($wrapper:ty),*) => {$(
        impl<M: Memory + ?Sized> Memory for $wrapper {
            fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
                (**self).read(addr, buf)
            }

            fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
                (**self).slice(addr, len)
            }

            fn window(&self, addr: u64) -> Option<(u64, &[u8])> {
                (**self).window(addr)
            }

            fn captured_at(&self) -> Option<u64> {
                (**self).captured_at()
            }
        }
    )*};
}

forward_memory!(&M, Box<M>, Arc<M>);

/// What following a route needs of a memory: its bytes. Every `Memory` gives them; so
/// does an evaluator, from the stretches of memory it keeps (`Evaluator::read`).
pub trait Bytes {
    fn bytes(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    #[inline]
    fn u64_le(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.bytes(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl<M: Memory + ?Sized> Bytes for M {
    fn bytes(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.read(addr, buf)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MemoryError {
    /// Some byte of the range is not in any source (not dumped, unmapped, or past the end).
    #[error("memory unavailable at {addr:#x}, {len} bytes")]
    Unavailable { addr: u64, len: u64 },
    #[error("refusing to read {len} bytes at {addr:#x}: more than the limit of {cap} bytes")]
    TooLarge { addr: u64, len: u64, cap: u64 },
}

/// `dst.copy_from_slice(src)`, with the sizes of integers and pointers copied by a load
/// and a store instead of a call to memcpy (which costs more than the rest of a read).
pub(crate) fn copy_small(dst: &mut [u8], src: &[u8]) {
    fn fixed<const N: usize>(dst: &mut [u8], src: &[u8]) {
        let mut word = [0u8; N];
        word.copy_from_slice(src);
        dst.copy_from_slice(&word);
    }
    match dst.len() {
        // A one-byte enum tag, and the byte a list reads to know its next node is there.
        1 => dst[0] = src[0],
        8 => fixed::<8>(dst, src),
        4 => fixed::<4>(dst, src),
        2 => fixed::<2>(dst, src),
        16 => fixed::<16>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}
