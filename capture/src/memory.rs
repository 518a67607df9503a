//! Reading the target's memory through `/proc/PID/mem`, behind a small trait so the dump
//! writers can be tested on synthetic memory. Failed reads are values, never panics.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::error::CaptureError;
use crate::procfs;

/// Memory of a stopped process (or a test's fake of it).
pub trait ReadMemory {
    /// Reads up to `buf.len()` bytes at `address`; `Ok(n < len)` means the rest is
    /// unreadable, an error that even the first byte is.
    fn read_at(&self, address: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Fills `buf` from `address`, or fails.
    fn read_exact_at(&self, address: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(address + done as u64, &mut buf[done..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// `/proc/PID/mem`, opened once. Reading it needs ptrace access to the process (our own
/// ptrace stop guarantees that), and fails with EIO on unmapped or VM_IO pages.
#[derive(Debug)]
pub struct ProcessMemory {
    file: File,
}

impl ProcessMemory {
    pub fn open(pid: i32) -> Result<Self, CaptureError> {
        let path = procfs::proc_path(pid, "mem");
        match File::open(&path) {
            Ok(file) => Ok(ProcessMemory { file }),
            Err(source) if source.kind() == io::ErrorKind::PermissionDenied => {
                Err(CaptureError::PermissionDenied {
                    pid,
                    what: format!("open {}", path.display()),
                    source,
                })
            }
            Err(source) => Err(CaptureError::Proc { pid, path, source }),
        }
    }
}

impl ReadMemory for ProcessMemory {
    fn read_at(&self, address: u64, buf: &mut [u8]) -> io::Result<usize> {
        // Offsets above i64::MAX ([vsyscall] at 0xffffffffff600000) make pread fail with
        // EINVAL, which is the right answer: that page is not in the process's memory.
        self.file.read_at(buf, address)
    }
}
