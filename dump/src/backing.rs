//! The bytes of a file: memory-mapped in production (a dump, a binary), owned in tests.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// Bytes of a file: memory-mapped in production, owned in unit tests.
pub(crate) enum Backing {
    Mapped(Arc<memmap2::Mmap>),
    Owned(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

impl Backing {
    /// Maps `path` read-only; dumps and binaries can be many GiB and are never read whole.
    pub(crate) fn map(path: &Path) -> io::Result<Backing> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Backing::Owned(Vec::new()));
        }
        // SAFETY: the mapping is read-only. If another process truncates the file while we
        // hold the map, reads may fault (SIGBUS); that is the documented memmap caveat, the
        // same one every debugger that maps cores accepts.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Backing::Mapped(Arc::new(map)))
    }

    /// The `len` bytes at `offset`, or `None` if the file is shorter.
    pub(crate) fn bytes_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        self.deref().get(start..start.checked_add(len)?)
    }
}
