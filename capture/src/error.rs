//! `CaptureError`: everything that stops a capture, each naming the pid or path involved
//! and what the user can do about it. Per-region read failures are not errors (see summary).

use std::io;
use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("no process with pid {pid} (/proc/{pid} does not exist); check the pid with `ps`")]
    NoSuchProcess { pid: i32 },

    #[error("{tid} is a thread of process {pid}, not a process; capture pid {pid} instead")]
    NotAProcess { tid: i32, pid: i32 },

    #[error(
        "pid {pid} is this process itself; a process cannot ptrace itself, run the capture from another process"
    )]
    SelfCapture { pid: i32 },

    #[error("pid {pid} is not a valid process id")]
    InvalidPid { pid: i32 },

    #[error("cannot write the dump to {}: directory {} does not exist", path.display(), dir.display())]
    OutputDirMissing { path: PathBuf, dir: PathBuf },

    #[error("cannot write the dump to {}: it is a directory; give a file name", path.display())]
    OutputIsDirectory { path: PathBuf },

    #[error(
        "permission denied to {what} of pid {pid}: run as the same user as the process or as root; check /proc/sys/kernel/yama/ptrace_scope (1 allows tracing only descendants) and that no debugger is already attached"
    )]
    PermissionDenied {
        pid: i32,
        what: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "could not ptrace-attach thread {tid} of pid {pid} (is a debugger already attached? see TracerPid in /proc/{tid}/status)"
    )]
    Attach {
        pid: i32,
        tid: i32,
        #[source]
        source: io::Error,
    },

    #[error(
        "thread {tid} of pid {pid} did not stop within {seconds} s (uninterruptible sleep, state D?); retry the capture"
    )]
    ThreadDidNotStop { pid: i32, tid: i32, seconds: u64 },

    #[error("no thread of pid {pid} could be stopped; the process may have exited or be a zombie")]
    NoThreads { pid: i32 },

    #[error("could not read registers of thread {tid} of pid {pid}")]
    Registers {
        pid: i32,
        tid: i32,
        #[source]
        source: io::Error,
    },

    #[error("could not read {} for pid {pid}; did the process exit?", path.display())]
    Proc {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not signal pid {pid} with {signal}")]
    Signal {
        pid: i32,
        signal: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("could not write the dump to {} (disk full? permissions?)", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("minidump-writer failed to write a minidump of pid {pid}")]
    Minidump {
        pid: i32,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("capturing a live process is only supported on Linux x86_64")]
    UnsupportedPlatform,
}
