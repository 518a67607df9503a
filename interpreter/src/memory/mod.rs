//! The one read-only view of a dumped process's memory (`Memory`), its error, and the sorted
//! region table every file-backed source shares; parsing dump formats lives in the submodules.

pub mod binary;
pub mod dump;
mod elf_core;
mod minidump;
mod resident;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use binary::{BinaryError, BinaryImage, FileImageMemory, locate_binary};
pub use dump::{
    BuildIdOrigin, CrashInfo, Dump, DumpError, DumpFormat, Mapping, Module, Registers, Thread,
};

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

/// Cache lines of `bytes` asked for (x86_64 only; elsewhere nothing).
fn prefetch_bytes(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch reads nothing and cannot fault; the address is in a live slice.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Asks for the cache lines of `v` (a listed task that will be read a few tasks from now;
/// x86_64 only; elsewhere nothing).
pub(crate) fn prefetch_value<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = (v as *const T).cast::<i8>();
        let size = std::mem::size_of::<T>();
        for offset in (0..size).step_by(64).chain(size.checked_sub(1)) {
            // SAFETY: a prefetch reads nothing and cannot fault; the lines are a live value's.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

impl<M: Memory + ?Sized> Memory for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(addr, buf)
    }

    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        (**self).slice(addr, len)
    }

    fn window(&self, addr: u64) -> Option<(u64, &[u8])> {
        (**self).window(addr)
    }
}

impl<M: Memory + ?Sized> Memory for Box<M> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(addr, buf)
    }

    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        (**self).slice(addr, len)
    }

    fn window(&self, addr: u64) -> Option<(u64, &[u8])> {
        (**self).window(addr)
    }
}

impl<M: Memory + ?Sized> Memory for Arc<M> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(addr, buf)
    }

    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        (**self).slice(addr, len)
    }

    fn window(&self, addr: u64) -> Option<(u64, &[u8])> {
        (**self).window(addr)
    }
}

/// The stretches of a memory read from last (`Memory::window`), the latest first: a
/// task's reads are mostly within its own allocation, its runtime's and its vtable's, and
/// from a stretch in hand a read is a bounds check and a copy. Four, not two: a tokio
/// task reads its own arena, the runtime's heap and the binary's data, and one waiting on
/// a `JoinHandle` another task's arena (with two kept, 1.8 region searches per task).
/// One reader's (not shared).
#[derive(Default)]
pub(crate) struct Windows<'a>([Cell<(u64, &'a [u8])>; WINDOWS]);

const WINDOWS: usize = 4;

impl<'a> Windows<'a> {
    /// Fills `buf` from `addr` of `mem`: what `mem.read` gives, from a stretch in hand
    /// where one holds all of it, else from `mem` (whose stretch is then kept, the
    /// longest unused one dropped). A stretch read from is swapped to the front. The
    /// first two are looked at here, inlined where a value is read; the others are not.
    #[inline]
    pub(crate) fn read(
        &self,
        mem: &'a dyn Memory,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), MemoryError> {
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
    pub(crate) fn prefetch(&self, mem: &dyn Memory, addr: u64, len: usize) {
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

/// A contiguous range of runtime addresses `[start, end)` and where its bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub source: RegionSource,
    /// From the segment flags or the maps listing; `None` when the format does not say.
    pub writable: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionSource {
    /// Bytes stored in the dump file itself, starting at this file offset.
    Dump { offset: u64 },
    /// Bytes of a file mapped by the process (the binary, a library), read from disk because
    /// the dump left them out; `file` indexes the owning memory's file table.
    File { file: usize, offset: u64 },
}

impl Region {
    fn len(&self) -> u64 {
        self.end - self.start
    }
}

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

/// Copies `buf.len()` bytes at `addr` out of `spans` (sorted by start, non-overlapping),
/// walking across adjacent spans. Binary search: cores hold tens of thousands of segments.
fn read_spans<S>(
    spans: &[S],
    bounds: impl Fn(&S) -> (u64, u64),
    addr: u64,
    buf: &mut [u8],
    mut copy: impl FnMut(&S, u64, &mut [u8]) -> bool,
) -> Result<(), MemoryError> {
    let unavailable = MemoryError::Unavailable {
        addr,
        len: buf.len() as u64,
    };
    if buf.is_empty() {
        return Ok(());
    }
    if addr.checked_add(buf.len() as u64 - 1).is_none() {
        return Err(unavailable);
    }
    let mut index = spans.partition_point(|s| bounds(s).1 <= addr);
    let mut cur = addr;
    let mut done = 0usize;
    while done < buf.len() {
        let Some(span) = spans.get(index) else {
            return Err(unavailable);
        };
        let (start, end) = bounds(span);
        if start > cur {
            return Err(unavailable);
        }
        let want = (buf.len() - done) as u64;
        let take = want.min(end - cur) as usize;
        if !copy(span, cur - start, &mut buf[done..done + take]) {
            return Err(unavailable);
        }
        done += take;
        cur = cur.wrapping_add(take as u64);
        index += 1;
    }
    Ok(())
}

/// A mapped file serving some regions, and which module it backs (for replacement).
struct FileLayer {
    module: usize,
    backing: Backing,
    /// The words the dynamic loader wrote, as (runtime address, value), sorted: a file's
    /// `.data.rel.ro` holds 0 where the process had a vtable pointer.
    relocations: Vec<(u64, u64)>,
}

/// The memory of a dump: its own segments first, then mapped files filling the holes.
///
/// Core bytes always win: a private file mapping the process wrote to (relocated vtables in
/// `.data.rel.ro`) differs from the file, and only the dump holds what the process saw.
pub(crate) struct RegionMemory {
    dump: Backing,
    /// Gives the dump's pages back when the resident set grows past its bound.
    _resident: Option<resident::Watcher>,
    /// The dump's own regions, sorted and non-overlapping.
    core: Vec<Region>,
    /// Indexed by `RegionSource::File::file`; `None` once replaced.
    files: Vec<Option<FileLayer>>,
    /// File regions in priority order (first wins), before clipping.
    file_regions: Vec<Region>,
    /// `core` plus the uncovered parts of `file_regions`, sorted: what reads search.
    merged: Vec<Region>,
}

impl RegionMemory {
    /// `regions` must all be `RegionSource::Dump`; overlaps are clipped (earlier start wins)
    /// and parts beyond the end of `dump` are dropped. Returns the memory and how many bytes
    /// were dropped that way, for the reader's warning.
    pub(crate) fn new(dump: Backing, mut regions: Vec<Region>) -> (RegionMemory, u64) {
        regions.sort_by_key(|r| (r.start, r.end));
        let mut core: Vec<Region> = Vec::with_capacity(regions.len());
        let mut dropped = 0u64;
        let dump_len = dump.len() as u64;
        for mut r in regions {
            let RegionSource::Dump { offset } = r.source else {
                continue;
            };
            if let Some(last) = core.last()
                && r.start < last.end
            {
                let skip = last.end - r.start;
                if skip >= r.len() {
                    continue;
                }
                r.start = last.end;
                r.source = RegionSource::Dump {
                    offset: offset.saturating_add(skip),
                };
            }
            let RegionSource::Dump { offset } = r.source else {
                continue;
            };
            let available = dump_len.saturating_sub(offset);
            if r.len() > available {
                dropped += r.len() - available;
                r.end = r.start + available;
            }
            if r.end > r.start {
                core.push(r);
            }
        }
        let merged = core.clone();
        let resident = match &dump {
            Backing::Mapped(map) => resident::Watcher::start(map),
            Backing::Owned(_) => None,
        };
        let memory = RegionMemory {
            dump,
            _resident: resident,
            core,
            files: Vec::new(),
            file_regions: Vec::new(),
            merged,
        };
        (memory, dropped)
    }

    pub(crate) fn regions(&self) -> &[Region] {
        &self.merged
    }

    pub(crate) fn core_regions(&self) -> &[Region] {
        &self.core
    }

    pub(crate) fn dump_bytes(&self) -> &Backing {
        &self.dump
    }

    /// Serves `ranges` (runtime `start`, `end`, file offset) from `backing` for holes in the
    /// dump, with `relocations` (sorted runtime address, value) applied over the file's
    /// words, replacing whatever file previously backed `module`. Earlier-added modules keep
    /// priority where files overlap (the main binary is added first).
    pub(crate) fn set_module_file(
        &mut self,
        module: usize,
        backing: Backing,
        ranges: &[(u64, u64, u64)],
        relocations: Vec<(u64, u64)>,
    ) {
        self.add_module_file(module, backing, ranges, relocations);
        self.rebuild();
    }

    /// `set_module_file` without rebuilding the read table: for attaching many files at
    /// once; call `rebuild` after the last.
    pub(crate) fn add_module_file(
        &mut self,
        module: usize,
        backing: Backing,
        ranges: &[(u64, u64, u64)],
        relocations: Vec<(u64, u64)>,
    ) {
        let old: Vec<usize> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.as_ref().is_some_and(|f| f.module == module))
            .map(|(i, _)| i)
            .collect();
        for &i in &old {
            self.files[i] = None;
        }
        self.file_regions.retain(
            |r| !matches!(r.source, RegionSource::File { file, .. } if old.contains(&file)),
        );
        let file = self.files.len();
        let file_len = backing.len() as u64;
        self.files.push(Some(FileLayer {
            module,
            backing,
            relocations,
        }));
        for &(start, end, offset) in ranges {
            // Pages past the end of the file would fault in the process; here they are
            // simply unavailable.
            let len = (end.saturating_sub(start)).min(file_len.saturating_sub(offset));
            if len > 0 {
                self.file_regions.push(Region {
                    start,
                    end: start + len,
                    source: RegionSource::File { file, offset },
                    writable: None,
                });
            }
        }
    }

    /// Recomputes the read table: the dump's regions, then each file region (in priority
    /// order) where nothing earlier covers it. O(n log n): cores have ~10^5 regions and a
    /// process ~10^3 mapped files.
    pub(crate) fn rebuild(&mut self) {
        let mut placed: BTreeMap<u64, Region> = BTreeMap::new();
        for r in &self.file_regions {
            let RegionSource::File { file, offset } = r.source else {
                continue;
            };
            let first = self.core.partition_point(|t| t.end <= r.start);
            let core_pieces = subtract(
                self.core[first..].iter().map(|t| (t.start, t.end)),
                r.start,
                r.end,
            );
            for (s, e) in core_pieces {
                let before = placed.range(..s).next_back().map(|(_, t)| (t.start, t.end));
                let within = placed.range(s..e).map(|(_, t)| (t.start, t.end));
                let pieces = subtract(before.into_iter().chain(within), s, e);
                for (s, e) in pieces {
                    let piece = Region {
                        start: s,
                        end: e,
                        source: RegionSource::File {
                            file,
                            offset: offset + (s - r.start),
                        },
                        writable: r.writable,
                    };
                    placed.insert(s, piece);
                }
            }
        }
        let mut merged = self.core.clone();
        merged.extend(placed.into_values());
        merged.sort_by_key(|r| r.start);
        self.merged = merged;
    }
}

/// Overwrites the bytes of `buf` (read from a file at runtime address `addr`) covered by
/// `relocations` (sorted (address, 8-byte value)), including words that straddle its ends.
fn apply_relocations(relocations: &[(u64, u64)], addr: u64, buf: &mut [u8]) {
    let end = addr.saturating_add(buf.len() as u64);
    let first = relocations.partition_point(|&(at, _)| at.saturating_add(8) <= addr);
    for &(at, value) in relocations[first..].iter().take_while(|&&(at, _)| at < end) {
        for (k, byte) in value.to_le_bytes().into_iter().enumerate() {
            let a = at.wrapping_add(k as u64);
            if a >= addr && a < end {
                buf[(a - addr) as usize] = byte;
            }
        }
    }
}

/// The parts of `[start, end)` not covered by `taken`, a sorted, non-overlapping sequence
/// beginning at or before the first range that can overlap it.
fn subtract(taken: impl Iterator<Item = (u64, u64)>, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut cur = start;
    for (t_start, t_end) in taken {
        if t_start >= end {
            break;
        }
        if t_end <= cur {
            continue;
        }
        if t_start > cur {
            out.push((cur, t_start));
        }
        cur = t_end;
        if cur >= end {
            break;
        }
    }
    if cur < end {
        out.push((cur, end));
    }
    out
}

thread_local! {
    /// The indexes in `merged` of the two regions this thread read last, latest first: a
    /// task's reads fall in one heap region one after another, and checking them first
    /// skips the binary search (a fifth of a read's cost on a million-task core). Two,
    /// because a tokio `Sleep` alternates between its task's region and its runtime's
    /// driver. Only hints: each is checked against the region's bounds, so a hint from
    /// another memory is merely a miss.
    static LAST_REGIONS: Cell<[usize; 2]> = const { Cell::new([0, 0]) };
}

impl RegionMemory {
    /// `buf` from the dump's bytes when a region read lately holds all of it.
    fn read_last_region(&self, addr: u64, buf: &mut [u8]) -> bool {
        let last = LAST_REGIONS.with(Cell::get);
        if self.read_in(last[0], addr, buf) {
            return true;
        }
        if last[1] != last[0] && self.read_in(last[1], addr, buf) {
            LAST_REGIONS.with(|l| l.set([last[1], last[0]]));
            return true;
        }
        false
    }

    /// `buf` from the dump's bytes of region `index`, if it holds all of it.
    fn read_in(&self, index: usize, addr: u64, buf: &mut [u8]) -> bool {
        let Some(r) = self.merged.get(index) else {
            return false;
        };
        let RegionSource::Dump { offset } = r.source else {
            return false;
        };
        if addr < r.start || addr >= r.end || buf.len() as u64 > r.end - addr {
            return false;
        }
        match self.dump.bytes_at(offset + (addr - r.start), buf.len()) {
            Some(bytes) => {
                copy_small(buf, bytes);
                true
            }
            None => false,
        }
    }
}

/// `dst.copy_from_slice(src)`, with the sizes of integers and pointers copied by a load
/// and a store instead of a call to memcpy (which costs more than the rest of a read).
fn copy_small(dst: &mut [u8], src: &[u8]) {
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

impl Memory for RegionMemory {
    fn window(&self, addr: u64) -> Option<(u64, &[u8])> {
        let r = self
            .merged
            .get(self.merged.partition_point(|r| r.end <= addr))?;
        let RegionSource::Dump { offset } = r.source else {
            return None;
        };
        if addr < r.start {
            return None;
        }
        let len = usize::try_from(r.end - r.start).ok()?;
        Some((r.start, self.dump.bytes_at(offset, len)?))
    }

    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let r = self
            .merged
            .get(self.merged.partition_point(|r| r.end <= addr))?;
        let RegionSource::Dump { offset } = r.source else {
            return None;
        };
        if addr < r.start || len as u64 > r.end - addr {
            return None;
        }
        self.dump.bytes_at(offset + (addr - r.start), len)
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        if self.read_last_region(addr, buf) {
            return Ok(());
        }
        let read = self.read_merged(addr, buf);
        if read.is_ok() {
            let at = self.merged.partition_point(|r| r.end <= addr);
            LAST_REGIONS.with(|last| last.set([at, last.get()[0]]));
        }
        read
    }
}

impl RegionMemory {
    fn read_merged(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        read_spans(
            &self.merged,
            |r| (r.start, r.end),
            addr,
            buf,
            |r, within, out| match r.source {
                RegionSource::Dump { offset } => {
                    match self.dump.bytes_at(offset + within, out.len()) {
                        Some(bytes) => {
                            copy_small(out, bytes);
                            true
                        }
                        None => false,
                    }
                }
                RegionSource::File { file, offset } => {
                    let Some(layer) = self.files.get(file).and_then(|f| f.as_ref()) else {
                        return false;
                    };
                    let Some(bytes) = layer.backing.bytes_at(offset + within, out.len()) else {
                        return false;
                    };
                    out.copy_from_slice(bytes);
                    apply_relocations(&layer.relocations, r.start + within, out);
                    true
                }
            },
        )
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn dump_region(start: u64, end: u64, offset: u64) -> Region {
        Region {
            start,
            end,
            source: RegionSource::Dump { offset },
            writable: Some(true),
        }
    }

    #[test]
    fn slice_memory_reads_across_adjacent_chunks() {
        let m = SliceMemory::new()
            .with(0x1000, [1, 2, 3, 4])
            .with(0x1004, [5, 6]);
        let mut buf = [0u8; 4];
        m.read(0x1002, &mut buf).unwrap();
        assert_eq!(buf, [3, 4, 5, 6]);
        assert_eq!(
            m.read(0x1003, &mut [0u8; 4]),
            Err(MemoryError::Unavailable {
                addr: 0x1003,
                len: 4
            })
        );
        assert!(m.read(0xfff, &mut [0u8; 1]).is_err());
        assert!(m.read(u64::MAX, &mut [0u8; 2]).is_err());
        assert_eq!(m.read_u32_le(0x1000).unwrap(), 0x0403_0201);
    }

    /// Reads through the stretches kept give what the memory gives, byte for byte, at
    /// every address and length around three regions: two adjacent (a read across them
    /// goes to the memory), one backed by the binary's file (never kept: its bytes are
    /// relocated), and gaps.
    #[test]
    fn reads_through_kept_stretches_are_the_memorys_reads() {
        let dump = Backing::Owned((0u8..64).collect());
        let (mut m, _) = RegionMemory::new(
            dump,
            vec![
                dump_region(0x1000, 0x1010, 0),
                dump_region(0x1010, 0x1018, 32),
                dump_region(0x3000, 0x3008, 48),
            ],
        );
        m.set_module_file(
            0,
            Backing::Owned(vec![0xaa; 0x10]),
            &[(0x2000, 0x2010, 0)],
            vec![],
        );
        assert_eq!(
            m.window(0x1004).map(|(s, b)| (s, b.len())),
            Some((0x1000, 0x10))
        );
        assert_eq!(
            m.window(0x1014).map(|(s, b)| (s, b.len())),
            Some((0x1010, 8))
        );
        assert_eq!(m.window(0x2004), None, "a file-backed region is not kept");
        let mem: &dyn Memory = &m;
        let windows = Windows::default();
        // Every read twice: the second from whatever the first kept, alternating regions.
        for addr in (0xff8..0x1020).chain(0x1ff8..0x2018).chain(0x2ff8..0x3010) {
            for len in [1, 2, 4, 8, 16] {
                for _ in 0..2 {
                    let (mut ours, mut theirs) = (vec![0u8; len], vec![0u8; len]);
                    let got = windows.read(mem, addr, &mut ours);
                    let want = mem.read(addr, &mut theirs);
                    assert_eq!(got, want, "{addr:#x}+{len}");
                    assert_eq!(ours, theirs, "{addr:#x}+{len}");
                    let mut other = [0u8; 8];
                    let _ = windows.read(mem, 0x3000, &mut other);
                    // Asked ahead at every address, past a stretch's end included.
                    windows.prefetch(mem, addr, len * 64);
                    windows.prefetch(mem, addr, usize::MAX);
                }
            }
        }
    }

    /// With more regions than stretches kept, reads in an order that hits every kept
    /// stretch (the front two inline, the two behind them out of line) and evicts the
    /// longest unused one give what the memory gives.
    #[test]
    fn reads_from_more_regions_than_are_kept_are_the_memorys_reads() {
        let dump = Backing::Owned((0u8..=255).collect());
        let regions = (0..6u64)
            .map(|i| dump_region(0x1000 * (i + 1), 0x1000 * (i + 1) + 32, 32 * i))
            .collect();
        let (m, _) = RegionMemory::new(dump, regions);
        let mem: &dyn Memory = &m;
        let windows = Windows::default();
        let mut seed = 0x9e37_79b9u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly the last few regions, sometimes another: every distance from the front.
            let region = 1 + (seed % 6);
            let addr = 0x1000 * region + (seed >> 8) % 40;
            let len = [1, 2, 4, 8, 16][((seed >> 16) % 5) as usize];
            let (mut ours, mut theirs) = (vec![0u8; len], vec![0u8; len]);
            let got = windows.read(mem, addr, &mut ours);
            assert_eq!(got, mem.read(addr, &mut theirs), "{addr:#x}+{len}");
            assert_eq!(ours, theirs, "{addr:#x}+{len}");
        }
    }

    #[test]
    fn read_vec_refuses_before_allocating() {
        let m = SliceMemory::new();
        assert_eq!(
            m.read_vec(0x10, u64::MAX, 4096),
            Err(MemoryError::TooLarge {
                addr: 0x10,
                len: u64::MAX,
                cap: 4096
            })
        );
        assert_eq!(
            MemoryError::Unavailable { addr: 0x10, len: 8 }.to_string(),
            "memory unavailable at 0x10, 8 bytes"
        );
    }

    #[test]
    fn region_memory_prefers_dump_bytes_over_file_bytes() {
        let dump = Backing::Owned((0u8..32).collect());
        let (mut m, dropped) = RegionMemory::new(
            dump,
            vec![
                dump_region(0x2000, 0x2008, 8),
                dump_region(0x1004, 0x1008, 0),
            ],
        );
        assert_eq!(dropped, 0);
        let file = Backing::Owned(vec![0xaa; 0x20]);
        m.set_module_file(
            0,
            file,
            &[(0x1000, 0x1010, 0)],
            vec![(0x100e, 0x1122_3344_5566_7788)],
        );
        let mut buf = [0u8; 12];
        m.read(0x1000, &mut buf).unwrap();
        assert_eq!(
            buf,
            [0xaa, 0xaa, 0xaa, 0xaa, 0, 1, 2, 3, 0xaa, 0xaa, 0xaa, 0xaa]
        );
        // A relocated word straddling the end of the file's range: only its first 2 bytes show.
        let mut tail = [0u8; 2];
        m.read(0x100e, &mut tail).unwrap();
        assert_eq!(tail, [0x88, 0x77]);
        assert!(m.read(0x100e, &mut [0u8; 3]).is_err());
        // Replacing the module's file drops the old one.
        m.set_module_file(
            0,
            Backing::Owned(vec![0xbb; 4]),
            &[(0x1000, 0x1010, 0)],
            Vec::new(),
        );
        m.read(0x1000, &mut buf[..4]).unwrap();
        assert_eq!(buf[..4], [0xbb; 4]);
        assert!(m.read(0x1008, &mut [0u8; 1]).is_err());
    }

    #[test]
    fn region_memory_clips_overlaps_and_truncation() {
        let dump = Backing::Owned(vec![7u8; 32]);
        let (m, dropped) = RegionMemory::new(
            dump,
            vec![
                dump_region(0x100, 0x110, 0),
                dump_region(0x108, 0x118, 8),
                dump_region(0x200, 0x210, 28),
            ],
        );
        assert_eq!(dropped, 12);
        assert_eq!(m.regions().len(), 3);
        assert!(m.read(0x100, &mut [0u8; 0x18]).is_ok());
        assert!(m.read(0x200, &mut [0u8; 4]).is_ok());
        assert!(m.read(0x203, &mut [0u8; 2]).is_err());
    }

    /// The two regions read last are tried first: reads that leave them, cross into the
    /// next region or run past its end, and reads of another memory on the same thread,
    /// must read as the binary search does.
    #[test]
    fn region_memory_reads_the_same_after_the_last_region_hint() {
        let bytes: Vec<u8> = (0..64).collect();
        let (a, _) = RegionMemory::new(
            Backing::Owned(bytes.clone()),
            vec![
                dump_region(0x100, 0x110, 0),
                dump_region(0x110, 0x120, 16),
                dump_region(0x200, 0x210, 32),
            ],
        );
        let (b, _) = RegionMemory::new(Backing::Owned(bytes), vec![dump_region(0x100, 0x120, 32)]);
        let read = |m: &RegionMemory, addr: u64, len: usize| {
            let mut buf = vec![0u8; len];
            m.read(addr, &mut buf).map(|()| buf)
        };
        for _ in 0..2 {
            assert_eq!(read(&a, 0x104, 8).unwrap(), (4..12).collect::<Vec<u8>>());
            // Starts in the region just read, ends in the next.
            assert_eq!(read(&a, 0x10c, 8).unwrap(), (12..20).collect::<Vec<u8>>());
            assert_eq!(read(&a, 0x118, 8).unwrap(), (24..32).collect::<Vec<u8>>());
            // Past the end of the region read last, into a hole.
            assert!(read(&a, 0x11c, 8).is_err());
            assert!(read(&a, 0x120, 1).is_err());
            assert_eq!(read(&a, 0x208, 8).unwrap(), (40..48).collect::<Vec<u8>>());
            // Another memory: the same addresses, other bytes.
            assert_eq!(read(&b, 0x104, 8).unwrap(), (36..44).collect::<Vec<u8>>());
            assert_eq!(read(&b, 0x118, 8).unwrap(), (56..64).collect::<Vec<u8>>());
            assert_eq!(read(&a, 0x20c, 4).unwrap(), (44..48).collect::<Vec<u8>>());
            assert!(read(&a, 0x20c, 8).is_err());
            // Back and forth between two regions (the second hint), then a third.
            for _ in 0..3 {
                assert_eq!(read(&a, 0x100, 2).unwrap(), vec![0, 1]);
                assert_eq!(read(&a, 0x20e, 2).unwrap(), vec![46, 47]);
            }
            assert_eq!(read(&a, 0x11e, 2).unwrap(), vec![30, 31]);
            assert!(read(&a, 0x10f, 2).is_ok_and(|b| b == vec![15, 16]));
        }
        // In place: within one region only (a read across two copies instead).
        assert_eq!(a.slice(0x204, 4), Some(&[36u8, 37, 38, 39][..]));
        assert_eq!(a.slice(0x110, 16).map(<[u8]>::len), Some(16));
        assert_eq!(a.slice(0x10f, 2), None);
        assert_eq!(a.slice(0x20c, 8), None);
        assert_eq!(a.slice(0x300, 1), None);
        // A prefetch is only a hint: of held bytes, across regions, of missing memory.
        for (addr, len) in [(0x100, 512), (0x10f, 2), (0x300, 64), (u64::MAX, 512)] {
            a.prefetch(addr, len);
        }
        assert_eq!(read(&a, 0x204, 2).unwrap(), vec![36, 37]);
    }
}
