//! Which bytes of each mapping a dump carries: the same rules for ELF cores and
//! minidumps, modelled on the kernel's `vma_dump_size` and gdb's `gcore`.

use crate::SkipReason;
use crate::maps::Mapping;

pub const PAGE_SIZE: u64 = 4096;

/// What a dump stores of one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Nothing: the bytes are unreadable, unwanted, or identical to the mapped file.
    Nothing,
    /// The first page only: an ELF header, so the build id can be read from the dump
    /// and the right binary found later (the kernel does this for offset-0 mappings).
    FirstPage,
    /// Every byte.
    Whole,
}

/// Decides what to keep of `mapping`. The second value is set when memory that task
/// enumeration may need is left out on purpose, so the summary can say so.
///
/// Kept whole: writable memory (heap, stacks and the TLS blocks at their top, `.data`,
/// `.bss`), anonymous memory of any protection (allocator metadata, `[vdso]`), and
/// private file mappings the process has written to — `smaps` shows them with
/// `Anonymous:` pages. That last case is the RELRO segment: `r--p` after relocation, but
/// it holds the relocated vtables and `.data.rel.ro` pointers a PIE binary's file lacks.
pub fn content(mapping: &Mapping, include_readonly: bool) -> (Content, Option<SkipReason>) {
    if !mapping.perms.read || mapping.is_kernel_only() {
        return (Content::Nothing, None);
    }
    let wanted = include_readonly
        || mapping.perms.write
        || !mapping.is_file_backed()
        || mapping.anonymous_bytes.is_some_and(|b| b > 0);
    // VM_IO / VM_PFNMAP: device memory; reading it fails or has side effects.
    if mapping.has_vm_flag(b"io") || mapping.has_vm_flag(b"pf") {
        return (Content::Nothing, wanted.then_some(SkipReason::DeviceMemory));
    }
    // MADV_DONTDUMP: the program asked to keep these out of dumps; the kernel and gdb obey.
    if mapping.has_vm_flag(b"dd") {
        return (Content::Nothing, wanted.then_some(SkipReason::DontDump));
    }
    if wanted {
        (Content::Whole, None)
    } else if mapping.offset == 0 {
        (Content::FirstPage, None)
    } else {
        (Content::Nothing, None)
    }
}

/// Bytes of `mapping` that `content` stores.
pub fn stored_len(mapping: &Mapping, content: Content) -> u64 {
    match content {
        Content::Nothing => 0,
        Content::FirstPage => mapping.len().min(PAGE_SIZE),
        Content::Whole => mapping.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::parse;

    fn decide(line: &str) -> (Content, Option<SkipReason>) {
        content(&parse(line)[0], false)
    }

    #[test]
    fn rules() {
        let whole = (Content::Whole, None);
        assert_eq!(decide("1000-3000 rw-p 00000000 00:00 0   [heap]"), whole);
        assert_eq!(decide("1000-3000 r--p 00000000 00:00 0"), whole);
        assert_eq!(decide("1000-3000 rw-p 0000a000 fe:00 12   /bin/x"), whole);
        assert_eq!(decide("1000-3000 r-xp 00000000 00:00 0   [vdso]"), whole);
        assert_eq!(
            decide("1000-3000 r--p 00000000 fe:00 12   /bin/x"),
            (Content::FirstPage, None)
        );
        assert_eq!(
            decide("1000-3000 r-xp 00002000 fe:00 12   /bin/x"),
            (Content::Nothing, None)
        );
        assert_eq!(
            decide("1000-3000 ---p 00000000 00:00 0"),
            (Content::Nothing, None)
        );
        assert_eq!(
            decide("1000-3000 r--p 00000000 00:00 0   [vvar]"),
            (Content::Nothing, None)
        );
        let relro = "1000-3000 r--p 00009000 fe:00 12   /bin/x\nAnonymous: 4 kB";
        assert_eq!(decide(relro), whole);
        let dontdump = "1000-3000 rw-p 00000000 00:00 0\nVmFlags: rd wr dd";
        assert_eq!(
            decide(dontdump),
            (Content::Nothing, Some(SkipReason::DontDump))
        );
        let device = "1000-3000 rw-s 00000000 00:05 7   /dev/dri/card0\nVmFlags: rd wr io pf";
        assert_eq!(
            decide(device),
            (Content::Nothing, Some(SkipReason::DeviceMemory))
        );
        let text = parse("1000-3000 r-xp 00002000 fe:00 12   /bin/x");
        assert_eq!(content(&text[0], true), whole);
    }
}
