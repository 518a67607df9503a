//! Stops every thread of a process with ptrace and reads their registers; the guard
//! detaches them all when dropped, on success and on every error path alike.

use std::collections::BTreeSet;
use std::io;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::CaptureError;
use crate::procfs;

const NT_PRSTATUS: usize = 1;
const NT_PRFPREG: usize = 2;
/// x86 XSAVE area; the kernel writes it in cores under the note name "LINUX".
pub const NT_X86_XSTATE: usize = 0x202;
/// `user_regs_struct` is 27 u64 on x86_64.
pub const GREG_COUNT: usize = 27;
const FS_BASE_INDEX: usize = 21;
const RSP_INDEX: usize = 19;
/// How long one thread may take to reach a ptrace stop. A thread in uninterruptible
/// sleep (`D`, e.g. blocked on NFS) stops only when the kernel lets it go.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds of "list /proc/PID/task, attach the new ones": a thread not yet stopped may
/// spawn another, so repeat until a round finds nothing new, but never forever.
const MAX_ATTACH_ROUNDS: usize = 1000;

/// A thread we hold in a ptrace stop.
#[derive(Debug)]
struct Tracee {
    tid: i32,
    /// A signal the thread was about to receive when it stopped (a signal-delivery-stop
    /// rather than our interrupt). Detaching with 0 would swallow it, so it is passed on.
    pending_signal: i32,
    stopped: bool,
}

/// Every thread of `pid` held stopped; dropping this detaches them and they run on.
/// ptrace ties tracees to the attaching *thread*, so this must stay on one thread.
#[derive(Debug)]
pub struct StoppedProcess {
    pid: i32,
    tracees: Vec<Tracee>,
}

impl StoppedProcess {
    /// Seizes and interrupts each thread in `/proc/PID/task`. Unlike PTRACE_ATTACH this
    /// sends no SIGSTOP, so the process (and its parent's `waitpid`) never notices.
    pub fn stop(pid: i32) -> Result<Self, CaptureError> {
        let mut process = StoppedProcess {
            pid,
            tracees: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        for _ in 0..MAX_ATTACH_ROUNDS {
            let tids = procfs::list_threads(pid).map_err(|source| CaptureError::Proc {
                pid,
                path: procfs::proc_path(pid, "task"),
                source,
            })?;
            let new: Vec<i32> = tids.into_iter().filter(|tid| seen.insert(*tid)).collect();
            if new.is_empty() {
                break;
            }
            for tid in new {
                process.attach(tid)?;
            }
        }
        if process.tracees.is_empty() {
            return Err(CaptureError::NoThreads { pid });
        }
        // Main thread first: the first NT_PRSTATUS is the thread gdb selects.
        process.tracees.sort_by_key(|t| (t.tid != pid, t.tid));
        Ok(process)
    }

    /// Thread ids held stopped, main thread first.
    pub fn tids(&self) -> impl Iterator<Item = i32> + '_ {
        self.tracees.iter().filter(|t| t.stopped).map(|t| t.tid)
    }

    fn attach(&mut self, tid: i32) -> Result<(), CaptureError> {
        // A zombie (a main thread that called pthread_exit while others run on) can be
        // seized but never reaches a ptrace stop; it has no registers worth having.
        if let Ok(stat) = procfs::read_stat(self.pid, Some(tid))
            && matches!(stat.state, b'Z' | b'X' | b'x')
        {
            return Ok(());
        }
        match ptrace(libc::PTRACE_SEIZE, tid, 0, 0) {
            Ok(()) => {}
            // The thread exited between listing and attaching.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return Err(CaptureError::PermissionDenied {
                    pid: self.pid,
                    what: format!("ptrace-attach thread {tid}"),
                    source: e,
                });
            }
            Err(source) => {
                return Err(CaptureError::Attach {
                    pid: self.pid,
                    tid,
                    source,
                });
            }
        }
        self.tracees.push(Tracee {
            tid,
            pending_signal: 0,
            stopped: false,
        });
        if let Err(e) = ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) {
            self.tracees.pop();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(CaptureError::Attach {
                pid: self.pid,
                tid,
                source: e,
            });
        }
        match wait_for_stop(tid, STOP_TIMEOUT) {
            Ok(Some(signal)) => {
                if let Some(tracee) = self.tracees.last_mut() {
                    tracee.stopped = true;
                    tracee.pending_signal = signal;
                }
                Ok(())
            }
            Ok(None) => {
                self.tracees.pop(); // exited while stopping
                Ok(())
            }
            Err(WaitError::Timeout) => Err(CaptureError::ThreadDidNotStop {
                pid: self.pid,
                tid,
                seconds: STOP_TIMEOUT.as_secs(),
            }),
            Err(WaitError::Io(source)) => Err(CaptureError::Attach {
                pid: self.pid,
                tid,
                source,
            }),
        }
    }
}

impl Drop for StoppedProcess {
    fn drop(&mut self) {
        for tracee in &mut self.tracees {
            if !tracee.stopped {
                // Interrupted but not yet stopped (we gave up waiting): PTRACE_DETACH
                // needs a stopped tracee, so give it one more short chance.
                tracee.stopped = matches!(
                    wait_for_stop(tracee.tid, Duration::from_secs(1)),
                    Ok(Some(_))
                );
            }
            if tracee.stopped {
                let _ = ptrace(
                    libc::PTRACE_DETACH,
                    tracee.tid,
                    0,
                    tracee.pending_signal as usize,
                );
            }
        }
    }
}

enum WaitError {
    Timeout,
    Io(io::Error),
}

/// Waits until `tid` reports a stop. `Ok(Some(sig))`: stopped, `sig` to re-deliver on
/// detach (0 for our own interrupt or a group stop); `Ok(None)`: the thread is gone.
fn wait_for_stop(tid: i32, timeout: Duration) -> Result<Option<i32>, WaitError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid only writes the status integer we pass.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == tid {
            if libc::WIFSTOPPED(status) {
                let event = status >> 16;
                let signal = libc::WSTOPSIG(status);
                // An event (PTRACE_EVENT_STOP, 128) is our interrupt or a group stop
                // (SIGSTOP etc.), which stays in force after detach on its own. Event 0
                // is a signal-delivery-stop: a signal the thread was about to take.
                let pending = if event == 0 { signal } else { 0 };
                return Ok(Some(pending));
            }
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                return Ok(None);
            }
            continue;
        }
        if r == -1 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => Ok(None),
                _ => Err(WaitError::Io(e)),
            };
        }
        if Instant::now() > deadline {
            return Err(WaitError::Timeout);
        }
        sleep(Duration::from_micros(200));
    }
}

#[cfg(target_env = "gnu")]
type Request = libc::c_uint;
#[cfg(not(target_env = "gnu"))]
type Request = libc::c_int;

fn ptrace(request: Request, tid: i32, addr: usize, data: usize) -> io::Result<()> {
    // SAFETY: these requests (SEIZE, INTERRUPT, DETACH) take integers, no pointers.
    let r = unsafe {
        libc::ptrace(
            request,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// PTRACE_GETREGSET into `buf`; returns how many bytes the kernel filled.
fn get_regset(tid: i32, kind: usize, buf: &mut [u8]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most `iov_len` bytes into `buf` and updates `iov_len`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            tid,
            kind as *mut libc::c_void,
            (&mut iov as *mut libc::iovec).cast::<libc::c_void>(),
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(iov.iov_len.min(buf.len()))
    }
}

/// One thread's register state, as the kernel's regsets return it.
#[derive(Debug, Clone)]
pub struct ThreadRegisters {
    pub tid: i32,
    /// `user_regs_struct` in kernel order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx
    /// rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
    pub gregs: [u64; GREG_COUNT],
    /// `user_fpregs_struct` (FXSAVE layout, 512 bytes), if readable.
    pub fpregs: Option<Vec<u8>>,
    /// The XSAVE area (AVX and later), if the CPU and kernel provide it.
    pub xstate: Option<Vec<u8>>,
}

impl ThreadRegisters {
    /// The thread pointer: glibc's TCB, from which thread-locals are found.
    pub fn fs_base(&self) -> u64 {
        self.gregs[FS_BASE_INDEX]
    }
    pub fn rsp(&self) -> u64 {
        self.gregs[RSP_INDEX]
    }
}

/// Reads a stopped thread's registers. Only the general registers are required.
pub fn read_registers(tid: i32) -> io::Result<ThreadRegisters> {
    let mut raw = [0u8; GREG_COUNT * 8];
    let n = get_regset(tid, NT_PRSTATUS, &mut raw)?;
    if n != raw.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short NT_PRSTATUS regset",
        ));
    }
    let mut gregs = [0u64; GREG_COUNT];
    for (reg, bytes) in gregs.iter_mut().zip(raw.chunks_exact(8)) {
        *reg = u64::from_ne_bytes(bytes.try_into().unwrap_or_default());
    }
    let read_optional = |kind: usize, size: usize| {
        let mut buf = vec![0u8; size];
        let n = get_regset(tid, kind, &mut buf).ok().filter(|&n| n > 0)?;
        buf.truncate(n);
        Some(buf)
    };
    let fpregs = read_optional(NT_PRFPREG, 512);
    // XSAVE areas are ~1 KiB with AVX, ~2.7 KiB with AVX-512, ~11 KiB with AMX.
    let xstate = read_optional(NT_X86_XSTATE, 16 * 1024);
    Ok(ThreadRegisters {
        tid,
        gregs,
        fpregs,
        xstate,
    })
}
