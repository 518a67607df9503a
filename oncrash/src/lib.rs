//! Dumps the process the moment it panics or crashes, out of process, the way crash
//! reporters do: a child runs `layoutdump capture` on us while we wait, so the dump shows
//! every thread and task as they were, before any unwinding. Call [`install`] in `main`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct Config {
    /// The `layoutdump` binary that writes the dump.
    pub layoutdump: PathBuf,
    /// Where dumps go: `<dir>/<program>-<pid>.core`.
    pub dir: PathBuf,
}

/// The child's command line, built at install time: a signal handler cannot allocate.
struct Prepared {
    program: CString,
    /// `layoutdump capture PID -o PATH` and room for the crash flags.
    args: Vec<CString>,
}

static PREPARED: OnceLock<Prepared> = OnceLock::new();

/// Installs the panic hook and the signal handlers. Call it once, early in `main`.
///
/// ```no_run
/// layoutdump_oncrash::install(layoutdump_oncrash::Config {
///     layoutdump: "/usr/local/bin/layoutdump".into(),
///     dir: "/var/crash".into(),
/// })
/// .expect("crash dumps");
/// ```
///
/// On a panic, the panic hook captures, then runs the hook that was installed before.
/// On a signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), the handler captures with the
/// signal written into the core, then the default action runs (the process dies as it
/// would have). The handler only forks, execs and waits: no allocation, no locks.
pub fn install(config: Config) -> io::Result<()> {
    std::fs::create_dir_all(&config.dir)?;
    let pid = std::process::id();
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "process".into());
    let out = config.dir.join(format!("{name}-{pid}.core"));
    let cstr =
        |s: &[u8]| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let prepared = Prepared {
        program: cstr(config.layoutdump.as_os_str().as_bytes())?,
        args: vec![
            cstr(config.layoutdump.as_os_str().as_bytes())?,
            cstr(b"capture")?,
            cstr(pid.to_string().as_bytes())?,
            cstr(b"-o")?,
            cstr(out.as_os_str().as_bytes())?,
        ],
    };
    if PREPARED.set(prepared).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "layoutdump-oncrash is already installed",
        ));
    }
    // Under Yama's ptrace_scope 1 only a process we name may trace us: any of our
    // children, here. Harmless where Yama is absent.
    unsafe {
        libc::prctl(
            libc::PR_SET_PTRACER,
            libc::PR_SET_PTRACER_ANY as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        capture(None);
        previous(info);
    }));
    for signal in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
    ] {
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Formats `value` in decimal into `buf` (NUL-terminated) without allocating.
fn decimal(value: u64, buf: &mut [u8; 24]) -> *const libc::c_char {
    signed_decimal(false, value, buf)
}

/// `si_code` is negative for signals sent by a process (SI_TKILL from abort()).
fn signed_decimal(negative: bool, value: u64, buf: &mut [u8; 24]) -> *const libc::c_char {
    let mut digits = [0u8; 20];
    let mut n = value;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = usize::from(negative);
    buf[0] = b'-';
    for i in 0..len {
        buf[start + i] = digits[len - 1 - i];
    }
    buf[start + len] = 0;
    buf.as_ptr().cast()
}

/// Forks a child that execs `layoutdump capture …` on us, and waits for it. With a
/// crash signal, its number, thread and address go on the command line (stack buffers:
/// this runs in a signal handler).
fn capture(signal: Option<(i32, i32, u64, i32)>) {
    let Some(p) = PREPARED.get() else { return };
    let (mut sig_buf, mut tid_buf, mut addr_buf, mut code_buf) =
        ([0u8; 24], [0u8; 24], [0u8; 24], [0u8; 24]);
    let mut argv: [*const libc::c_char; 16] = [std::ptr::null(); 16];
    let mut n = 0;
    for a in &p.args {
        argv[n] = a.as_ptr();
        n += 1;
    }
    if let Some((signo, tid, addr, code)) = signal {
        argv[n] = c"--crash-signal".as_ptr();
        argv[n + 1] = decimal(signo as u64, &mut sig_buf);
        argv[n + 2] = c"--crash-tid".as_ptr();
        argv[n + 3] = decimal(tid as u64, &mut tid_buf);
        argv[n + 4] = c"--crash-address".as_ptr();
        argv[n + 5] = decimal(addr, &mut addr_buf);
        argv[n + 6] = c"--crash-code".as_ptr();
        argv[n + 7] = signed_decimal(code < 0, u64::from(code.unsigned_abs()), &mut code_buf);
    }
    unsafe {
        let child = libc::fork();
        if child == 0 {
            libc::execv(p.program.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
        if child > 0 {
            let mut status = 0;
            while libc::waitpid(child, &mut status, 0) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
        }
    }
}

extern "C" fn on_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let (addr, code) = if info.is_null() {
        (0, 0)
    } else {
        unsafe { ((*info).si_addr() as u64, (*info).si_code) }
    };
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    capture(Some((signal, tid, addr, code)));
    // SA_RESETHAND restored the default action: returning re-runs the faulting
    // instruction (or abort() raises again), and the process dies as it would have.
}
