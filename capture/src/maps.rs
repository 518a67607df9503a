//! Parser for `/proc/PID/maps` and `/proc/PID/smaps`: one `Mapping` per line or block.
//! Pure text in, values out; it never touches the process, and odd lines are skipped.

/// One virtual memory area of the target, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: Perms,
    /// Byte offset into the mapped file (0 for anonymous memory).
    pub offset: u64,
    /// Inode of the mapped file; 0 for anonymous and kernel mappings (`[heap]`, `[vdso]`).
    pub inode: u64,
    /// Path or pseudo-name (`[heap]`, `[stack]`, `/usr/lib/libc.so.6 (deleted)`); may be empty.
    pub name: String,
    /// `Anonymous:` from smaps, in bytes: private pages this mapping no longer shares with
    /// its file. `None` when only `maps` was readable.
    pub anonymous_bytes: Option<u64>,
    /// Two-letter `VmFlags:` from smaps (`dd` = MADV_DONTDUMP, `io` = device memory).
    pub vm_flags: Vec<[u8; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// `s` (MAP_SHARED) rather than `p`.
    pub shared: bool,
}

impl Mapping {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Backed by a file (the kernel's NT_FILE lists exactly these).
    pub fn is_file_backed(&self) -> bool {
        self.inode != 0
    }

    /// `[vvar]`, `[vvar_vclock]` and `[vsyscall]`: kernel pages that `/proc/PID/mem`
    /// cannot read (vvar is VM_PFNMAP; vsyscall lies above the range `pread` accepts).
    pub fn is_kernel_only(&self) -> bool {
        !self.is_file_backed() && (self.name.starts_with("[vvar") || self.name == "[vsyscall]")
    }

    pub fn has_vm_flag(&self, flag: &[u8; 2]) -> bool {
        self.vm_flags.iter().any(|f| f == flag)
    }
}

/// Parses `/proc/PID/maps`, or the header lines of `/proc/PID/smaps` together with the
/// `Anonymous:` and `VmFlags:` lines that follow each header. Lines that parse as neither
/// are ignored, so a future kernel field or a truncated read costs nothing but that line.
pub fn parse(text: &str) -> Vec<Mapping> {
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(mapping) = parse_header(line) {
            mappings.push(mapping);
            continue;
        }
        let Some(last) = mappings.last_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("Anonymous:") {
            last.anonymous_bytes = parse_kb(rest);
        } else if let Some(rest) = line.strip_prefix("VmFlags:") {
            last.vm_flags = rest
                .split_ascii_whitespace()
                .filter_map(|f| f.as_bytes().try_into().ok())
                .collect();
        }
    }
    mappings
}

/// `55d8e017f000-55d8e0181000 r--p 00000000 fe:00 247030      /usr/bin/cat`
fn parse_header(line: &str) -> Option<Mapping> {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (f, r) = trimmed.split_at(end);
        rest = r;
        Some(f).filter(|f| !f.is_empty())
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let _dev = field()?;
    let inode = field()?;
    // The name is the rest of the line after the padding; it may itself contain spaces.
    let name = rest.trim_start_matches(' ').to_string();

    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if end <= start {
        return None;
    }
    let p = perms.as_bytes();
    if p.len() != 4 {
        return None;
    }
    Some(Mapping {
        start,
        end,
        perms: Perms {
            read: p[0] == b'r',
            write: p[1] == b'w',
            exec: p[2] == b'x',
            shared: p[3] == b's',
        },
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode: inode.parse().ok()?,
        name,
        anonymous_bytes: None,
        vm_flags: Vec::new(),
    })
}

fn parse_kb(text: &str) -> Option<u64> {
    let number = text.trim().strip_suffix("kB")?.trim();
    number.parse::<u64>().ok()?.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d8e0186000-55d8e0189000 r--p 00007000 fe:00 247030                     /usr/bin/my prog
Size:                 12 kB
Anonymous:             8 kB
VmFlags: rd mr mw me ac 
7f43fd04b000-7f43fd04f000 r--p 00000000 00:00 0                          [vvar]
Anonymous:             0 kB
VmFlags: rd mr pf io de dd 
7f43fd049000-7f43fd04b000 rw-s 00000000 00:00 0 
garbage line
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn parses_headers_and_smaps_fields() {
        let maps = parse(SMAPS);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[0].name, "/usr/bin/my prog");
        assert_eq!(maps[0].offset, 0x7000);
        assert_eq!(maps[0].anonymous_bytes, Some(8192));
        assert!(maps[0].is_file_backed());
        assert!(maps[0].has_vm_flag(b"mw"));
        assert!(maps[1].is_kernel_only() && maps[1].has_vm_flag(b"dd"));
        assert!(maps[2].perms.shared && maps[2].perms.write && maps[2].name.is_empty());
        assert_eq!(maps[2].anonymous_bytes, None);
        assert!(maps[3].is_kernel_only());
    }

    #[test]
    fn odd_lines_do_not_panic() {
        for line in [
            "",
            "-",
            "1-0 rw-p 0 0 0",
            "zz-1 rw-p 0 00:00 0",
            "0-1 rw 0 00:00 0",
            "0-1 rw-p 0 00:00",
            "Anonymous: 4 kB",
            "0-1000 rw-p 0 00:00 0\nAnonymous: 99999999999999999999 kB\nVmFlags: abc",
        ] {
            let _ = parse(line);
        }
        assert_eq!(parse("0-1000 rw-p 0 00:00 0").len(), 1);
    }
}
