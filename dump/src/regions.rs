//! The region table of a dump: its own segments first, then the files the process mapped
//! filling the holes (relocated where the process wrote to them), read by address.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::backing::Backing;
use crate::memory::{Memory, MemoryError, copy_small};
use crate::resident;

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

/// Copies `buf.len()` bytes at `addr` out of `spans` (sorted by start, non-overlapping),
/// walking across adjacent spans. Binary search: cores hold tens of thousands of segments.
pub(crate) fn read_spans<S>(
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
    /// When the process was captured, on its monotonic clock (see `Memory::captured_at`).
    pub(crate) captured_at: Option<u64>,
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
            captured_at: None,
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
pub(crate) fn apply_relocations(relocations: &[(u64, u64)], addr: u64, buf: &mut [u8]) {
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
    /// skips the binary search. Two,
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

impl Memory for RegionMemory {
    fn captured_at(&self) -> Option<u64> {
        self.captured_at
    }

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
