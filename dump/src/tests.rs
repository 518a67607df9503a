//! Reads through the region table, the kept stretches and test memory agree with the
//! sources they read.

use crate::backing::Backing;
use crate::memory::*;
use crate::regions::*;
use crate::slice::*;
use crate::windows::*;

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
