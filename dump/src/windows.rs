//! The stretches of memory one reader read from last: most reads are a bounds check and a
//! copy from them instead of a search of the region table.

use std::cell::Cell;

use crate::memory::{Memory, MemoryError, copy_small};
use crate::prefetch::prefetch_bytes;

/// The stretches of a memory read from last (`Memory::window`), the latest first: a
/// task's reads are mostly within its own allocation, its runtime's and its vtable's, and
/// from a stretch in hand a read is a bounds check and a copy. Four, not two: a tokio
/// task reads its own arena, the runtime's heap and the binary's data, and one waiting on
/// a `JoinHandle` another task's arena (with two kept, 1.8 region searches per task).
/// One reader's (not shared).
#[derive(Default)]
pub struct Windows<'a>([Cell<(u64, &'a [u8])>; WINDOWS]);

const WINDOWS: usize = 4;

impl<'a> Windows<'a> {
    /// Fills `buf` from `addr` of `mem`: what `mem.read` gives, from a stretch in hand
    /// where one holds all of it, else from `mem` (whose stretch is then kept, the
    /// longest unused one dropped). A stretch read from is swapped to the front. The
    /// first two are looked at here, inlined where a value is read; the others are not.
    #[inline]
    pub fn read(&self, mem: &'a dyn Memory, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for i in 0..2 {
            if let Some(src) = within(self.0[i].get(), addr, buf.len()) {
                copy_small(buf, src);
                if i > 0 {
                    self.0[0].swap(&self.0[i]);
                }
                return Ok(());
            }
        }
        self.read_further(mem, addr, buf)
    }

    #[inline(never)]
    fn read_further(
        &self,
        mem: &'a dyn Memory,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), MemoryError> {
        for i in 2..WINDOWS {
            if let Some(src) = within(self.0[i].get(), addr, buf.len()) {
                copy_small(buf, src);
                self.0[0].swap(&self.0[i]);
                return Ok(());
            }
        }
        mem.read(addr, buf)?;
        if let Some(w) = mem.window(addr) {
            for i in (1..WINDOWS).rev() {
                self.0[i].set(self.0[i - 1].get());
            }
            self.0[0].set(w);
        }
        Ok(())
    }

    /// `mem.prefetch`, from a stretch in hand where one holds the bytes (no search of the
    /// regions). The stretches are left as they are: what is fetched is read later.
    pub fn prefetch(&self, mem: &dyn Memory, addr: u64, len: usize) {
        for window in &self.0 {
            let (start, bytes) = window.get();
            if let Some(at) = addr.checked_sub(start)
                && let Ok(at) = usize::try_from(at)
                && at < bytes.len()
            {
                let end = at.saturating_add(len).min(bytes.len());
                return prefetch_bytes(&bytes[at..end]);
            }
        }
        mem.prefetch(addr, len);
    }
}

/// The `len` bytes at `addr` of a stretch that starts at `start`, if it holds them all.
#[inline]
fn within((start, bytes): (u64, &[u8]), addr: u64, len: usize) -> Option<&[u8]> {
    let at = usize::try_from(addr.checked_sub(start)?).ok()?;
    bytes.get(at..at.checked_add(len)?)
}
