//! The on-disk cache of name indexes, one file per binary (by build id) under
//! `$LAYOUTDUMP_CACHE_DIR`, `$XDG_CACHE_HOME/layoutdump` or `~/.cache/layoutdump`:
//! written under a temporary name and renamed; a corrupt file is ignored and rebuilt.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::DieId;
use super::index::{Arena, NameIndex, Span};

const MAGIC: &[u8; 8] = b"LDNAMIX3";
/// magic, `.debug_info` size, seven lengths, checksum.
const HEADER: usize = 10 * 8;
/// Index files kept; the least recently used beyond this are removed.
const KEEP: usize = 16;
/// Bytes of index files kept (about 30 service binaries of 230 MiB of DWARF): the most
/// recently used file is kept whatever its size, older ones only while under this.
const KEEP_BYTES: u64 = 4 << 30;

/// A directory of cached indexes.
#[derive(Debug, Clone)]
pub struct IndexCache {
    dir: PathBuf,
}

/// What a cached index is for: the binary's identity and its `.debug_info` size.
#[derive(Debug, Clone)]
pub struct CacheKey {
    file: String,
    debug_info_len: u64,
}

impl IndexCache {
    pub fn new(dir: impl Into<PathBuf>) -> IndexCache {
        IndexCache { dir: dir.into() }
    }

    /// The user's cache: `$LAYOUTDUMP_CACHE_DIR` (`off` or empty turns caching off),
    /// else `$XDG_CACHE_HOME/layoutdump`, else `$HOME/.cache/layoutdump`.
    pub fn from_env() -> Option<IndexCache> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(dir) = std::env::var_os("LAYOUTDUMP_CACHE_DIR") {
            if dir.is_empty() || dir == "off" {
                return None;
            }
            return Some(IndexCache::new(dir));
        }
        let base = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(IndexCache::new(base.join("layoutdump")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.names", key.file))
    }

    /// The cached index for `key`, if a whole, intact one is there.
    pub(super) fn load(&self, key: &CacheKey) -> Option<NameIndex> {
        let path = self.path(key);
        let file = std::fs::File::open(&path).ok()?;
        // SAFETY: read-only map of a file that is only ever replaced by rename, never
        // written in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let index = decode(Box::new(map), key.debug_info_len)?;
        // Recently used: the pruning below keeps it.
        let _ = file.set_modified(SystemTime::now());
        Some(index)
    }

    /// Writes the index for `key`; errors are the caller's to ignore (a cache that
    /// cannot be written only costs the next run its time).
    pub(super) fn store(&self, key: &CacheKey, index: &NameIndex) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = encode(index, key.debug_info_len);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = self
            .dir
            .join(format!("{}.tmp-{}-{nanos}", key.file, std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&bytes));
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, self.path(key))) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.prune(KEEP_BYTES);
        Ok(())
    }

    /// Removes index files beyond the `KEEP` most recently used or `KEEP_BYTES` in all,
    /// and temporary files of runs that died while writing (older than ten minutes).
    fn prune(&self, keep_bytes: u64) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut indexes = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let meta = entry.metadata().ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let size = meta.map_or(0, |m| m.len());
            if name.contains(".tmp-") {
                let age = now.duration_since(modified).unwrap_or_default();
                if age > Duration::from_secs(600) {
                    let _ = std::fs::remove_file(&path);
                }
            } else if name.ends_with(".names") {
                indexes.push((modified, size, path));
            }
        }
        indexes.sort_by_key(|b| std::cmp::Reverse(b.0));
        let mut total = 0u64;
        for (i, (_, size, path)) in indexes.into_iter().enumerate() {
            total = total.saturating_add(size);
            if i >= KEEP || (i > 0 && total > keep_bytes) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl CacheKey {
    /// The key of the binary at `path`: its build id when it has one, else its path, size
    /// and modification time.
    pub fn new(path: &Path, build_id: Option<&[u8]>, debug_info_len: u64) -> CacheKey {
        let file = match build_id.filter(|b| !b.is_empty()) {
            Some(id) => id.iter().map(|b| format!("{b:02x}")).collect(),
            None => {
                let meta = std::fs::metadata(path).ok();
                let modified = meta
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                let ident = format!(
                    "{}\0{}\0{modified}",
                    std::fs::canonicalize(path)
                        .unwrap_or_else(|_| path.into())
                        .display(),
                    meta.map_or(0, |m| m.len()),
                );
                format!("nobuildid-{:016x}", checksum(ident.as_bytes()))
            }
        };
        CacheKey {
            file,
            debug_info_len,
        }
    }
}

/// A 64-bit checksum (stable: it is stored): four independent rotate-xor-multiply lanes
/// over 32-byte blocks, so that a 100 MB file is summed in a few milliseconds rather
/// than waiting on one multiply chain, then folded.
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let mix = |h: u64, w: u64| (h.rotate_left(23) ^ w).wrapping_mul(K);
    let mut lanes = [bytes.len() as u64, 1, 2, 3];
    let mut blocks = bytes.chunks_exact(32);
    for b in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane = mix(*lane, word(&b[i * 8..i * 8 + 8]));
        }
    }
    let mut tail = [0u8; 32];
    tail[..blocks.remainder().len()].copy_from_slice(blocks.remainder());
    let h = lanes.iter().enumerate().fold(0u64, |h, (i, lane)| {
        mix(mix(h, *lane), word(&tail[i * 8..i * 8 + 8]))
    });
    h ^ (h >> 31)
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn encode(index: &NameIndex, debug_info_len: u64) -> Vec<u8> {
    let arena = index.arena.bytes();
    let size = HEADER
        + pad8(arena.len())
        + index.types.len() * 24
        + index.names.len() * 16
        + index.variables.len() * 16
        + index.functions.len() * 24
        + index.comp_dirs.len() * 8
        + index.futures.len() * 8;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    for n in [
        debug_info_len,
        arena.len() as u64,
        index.types.len() as u64,
        index.names.len() as u64,
        index.variables.len() as u64,
        index.functions.len() as u64,
        index.comp_dirs.len() as u64,
        index.futures.len() as u64,
        0, // checksum, filled in below
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(arena);
    out.resize(HEADER + pad8(arena.len()), 0);
    let span = |out: &mut Vec<u8>, s: Span| {
        out.extend_from_slice(&s.start.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
    };
    let die = |out: &mut Vec<u8>, d: DieId| out.extend_from_slice(&(d.0 as u64).to_le_bytes());
    for (h, s, d) in &index.types {
        out.extend_from_slice(&h.to_le_bytes());
        span(&mut out, *s);
        die(&mut out, *d);
    }
    for (d, s) in &index.names {
        die(&mut out, *d);
        span(&mut out, *s);
    }
    for (s, d) in &index.variables {
        span(&mut out, *s);
        die(&mut out, *d);
    }
    for (low, high, d) in &index.functions {
        out.extend_from_slice(&low.to_le_bytes());
        out.extend_from_slice(&high.to_le_bytes());
        die(&mut out, *d);
    }
    for s in index.comp_dirs.iter().chain(&index.futures) {
        span(&mut out, *s);
    }
    let sum = checksum(&out[HEADER..]);
    out[HEADER - 8..HEADER].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Reads little-endian words off the front of a byte slice.
struct Words<'a>(&'a [u8]);

impl Words<'_> {
    fn u64(&mut self) -> u64 {
        let (head, rest) = self.0.split_at(8);
        self.0 = rest;
        u64::from_le_bytes(head.try_into().unwrap_or_default())
    }
    fn u32(&mut self) -> u32 {
        let (head, rest) = self.0.split_at(4);
        self.0 = rest;
        u32::from_le_bytes(head.try_into().unwrap_or_default())
    }
    fn span(&mut self) -> Span {
        Span {
            start: self.u32(),
            len: self.u32(),
        }
    }
    fn die(&mut self) -> DieId {
        DieId(self.u64() as usize)
    }
}

/// The index in `file` (kept: the names stay in it), or None if it is not a whole,
/// intact index for a `.debug_info` of `debug_info_len` bytes.
fn decode(file: Box<dyn AsRef<[u8]> + Send + Sync>, debug_info_len: u64) -> Option<NameIndex> {
    let bytes = (*file).as_ref();
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return None;
    }
    let mut header = Words(&bytes[8..HEADER]);
    let [
        info_len,
        arena_len,
        types,
        names,
        vars,
        funcs,
        dirs,
        futures,
        sum,
    ] = [(); 9].map(|()| header.u64());
    if info_len != debug_info_len {
        return None;
    }
    // Every length is checked against the file's size before anything is allocated.
    let len = |n: u64| usize::try_from(n).ok();
    let size = [
        Some(HEADER),
        len(arena_len).map(pad8),
        len(types)?.checked_mul(24),
        len(names)?.checked_mul(16),
        len(vars)?.checked_mul(16),
        len(funcs)?.checked_mul(24),
        len(dirs)?.checked_mul(8),
        len(futures)?.checked_mul(8),
    ]
    .into_iter()
    .try_fold(0usize, |acc, n| acc.checked_add(n?))?;
    if size != bytes.len() || checksum(&bytes[HEADER..]) != sum {
        return None;
    }
    let arena_len = len(arena_len)?;
    let mut w = Words(&bytes[HEADER + pad8(arena_len)..]);
    let types = (0..types).map(|_| (w.u64(), w.span(), w.die())).collect();
    let names = (0..names).map(|_| (w.die(), w.span())).collect();
    let variables = (0..vars).map(|_| (w.span(), w.die())).collect();
    let functions = (0..funcs).map(|_| (w.u64(), w.u64(), w.die())).collect();
    let comp_dirs = (0..dirs).map(|_| w.span()).collect();
    let futures = (0..futures).map(|_| w.span()).collect();
    let index = NameIndex {
        arena: Arena::Stored {
            bytes: file,
            start: HEADER,
            len: arena_len,
        },
        types,
        names,
        variables,
        functions,
        comp_dirs,
        futures,
    };
    // Lookups are binary searches: a file out of order is as bad as a corrupt one.
    let sorted = index.types.is_sorted_by_key(|(h, _, d)| (*h, *d))
        && index.names.is_sorted_by_key(|(d, _)| *d)
        && index.functions.is_sorted()
        && index
            .variables
            .is_sorted_by(|a, b| index.str(a.0) <= index.str(b.0))
        && index
            .futures
            .is_sorted_by(|a, b| index.str(*a) <= index.str(*b));
    sorted.then_some(index)
}

/// For the `index_file` fuzz target: `data` as a cache file, its checksum and
/// `.debug_info` size taken as right (so the fuzzer reaches the records, which a
/// checksum would otherwise guard), then the lookups a run makes.
pub fn fuzz_decode(data: &[u8]) {
    let mut bytes = data.to_vec();
    if bytes.len() >= HEADER {
        let sum = checksum(&bytes[HEADER..]);
        bytes[HEADER - 8..HEADER].copy_from_slice(&sum.to_le_bytes());
    }
    let info_len = bytes
        .get(8..16)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let Some(index) = decode(Box::new(bytes), info_len) else {
        return;
    };
    for name in index.type_names().take(64) {
        let _ = index.types_named(name).count();
    }
    for (name, die) in index.variables().take(64) {
        let _ = (name.len(), index.qualified_name(die));
    }
    for (low, high, die) in index.functions.iter().take(64) {
        let _ = (
            index.function_at(*low),
            index.function_at(*high),
            index.qualified_name(*die),
        );
    }
    let _ = index.comp_dirs().count();
    let _ = index.is_future_path("hyper::proto::h1::dispatch::Dispatcher");
    let _ = index
        .types_named("tokio::runtime::task::core::Header")
        .count();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NameIndex {
        let arena = Arena::Built(
            "core::option::Option<u8>tokio::RUNTIMEmaintokio::time::timeout::Timeout".to_string(),
        );
        let s = |start: u32, len: u32| Span { start, len };
        let opt = "core::option::Option<u8>";
        NameIndex {
            types: vec![(super::super::index::name_hash(opt), s(0, 24), DieId(40))],
            names: vec![(DieId(40), s(0, 24)), (DieId(90), s(38, 4))],
            variables: vec![(s(24, 14), DieId(70))],
            functions: vec![(0x1000, 0x1040, DieId(90))],
            comp_dirs: vec![s(24, 5)],
            futures: vec![s(42, 29)],
            arena,
        }
    }

    #[test]
    fn round_trip() {
        let index = sample();
        let bytes = encode(&index, 1234);
        assert_eq!(decode(Box::new(bytes.clone()), 1234), Some(sample()));
        let back = decode(Box::new(bytes.clone()), 1234).unwrap();
        assert_eq!(
            back.types_named("core::option::Option<u8>")
                .collect::<Vec<_>>(),
            [DieId(40)]
        );
        assert_eq!(back.qualified_name(DieId(90)).as_deref(), Some("main"));
        assert!(back.is_future_path("tokio::time::timeout::Timeout"));
        assert!(!back.is_future_path("tokio::time::timeout"));
    }

    /// Another binary's index, a truncated file, any flipped byte, a lying length: all
    /// refused, none panics.
    #[test]
    fn damaged_files_are_refused() {
        let bytes = encode(&sample(), 1234);
        assert_eq!(
            decode(Box::new(bytes.clone()), 1235),
            None,
            "built for another .debug_info"
        );
        for cut in [0, 7, HEADER - 1, HEADER, bytes.len() - 1] {
            assert_eq!(
                decode(Box::new(bytes[..cut].to_vec()), 1234),
                None,
                "truncated at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            assert_eq!(decode(Box::new(b), 1234), None, "byte {at} flipped");
        }
        let mut b = bytes.clone();
        b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert_eq!(decode(Box::new(b), 1234), None, "arena of 2^60 bytes");
    }

    /// An intact file whose records are out of order (as only a hostile writer makes
    /// one) is refused too: lookups would be wrong.
    #[test]
    fn unsorted_records_are_refused() {
        let mut index = sample();
        index.names.push((DieId(10), Span { start: 0, len: 4 }));
        assert_eq!(decode(Box::new(encode(&index, 1234)), 1234), None);
    }

    #[test]
    fn store_then_load_and_prune() {
        let dir = std::env::temp_dir().join(format!("ld-index-cache-{}", std::process::id()));
        let cache = IndexCache::new(&dir);
        let key = CacheKey::new(Path::new("/nonexistent"), Some(&[0xab, 0x01]), 1234);
        cache.store(&key, &sample()).unwrap();
        assert!(dir.join("ab01.names").exists());
        assert_eq!(cache.load(&key), Some(sample()));
        for i in 0..KEEP + 3 {
            let k = CacheKey::new(Path::new("/x"), Some(&[i as u8, 0xee]), 1234);
            cache.store(&k, &sample()).unwrap();
        }
        let left = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(left, KEEP);
        // A byte budget smaller than two files keeps only the most recent one.
        let one = encode(&sample(), 1234).len() as u64;
        cache.prune(one + one / 2);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).ok();
    }
}
