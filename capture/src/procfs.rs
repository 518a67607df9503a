//! Small readers for `/proc/PID/{stat,status,task,auxv,cmdline}`: process identity, state
//! and the thread list. Parsers take text and return `Option`s; nothing here panics.

use std::fs;
use std::io;
use std::path::PathBuf;

pub fn proc_path(pid: i32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// The fields of `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) a core file records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// One of `R S D T t Z X I …`.
    pub state: u8,
    pub comm: String,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub flags: u64,
    /// User, system, children's user and children's system time, in clock ticks.
    pub times: [u64; 4],
    pub nice: i64,
}

/// Parses `/proc/PID/stat`. The command name sits in parentheses and may contain spaces
/// and `)` itself (`(tokio-runtime-w)`, `(a) b)`), so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // Fields 3.. of proc(5), so index 0 here is field 3 (state).
    let fields: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let num = |i: usize| fields.get(i)?.parse::<i64>().ok();
    let unum = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        state: *fields.first()?.as_bytes().first()?,
        comm,
        ppid: i32::try_from(num(1)?).ok()?,
        pgrp: i32::try_from(num(2)?).ok()?,
        session: i32::try_from(num(3)?).ok()?,
        flags: unum(6)?,
        times: [unum(11)?, unum(12)?, unum(13)?, unum(14)?],
        nice: num(16)?,
    })
}

pub fn read_stat(pid: i32, tid: Option<i32>) -> io::Result<Stat> {
    let path = match tid {
        Some(tid) => proc_path(pid, &format!("task/{tid}/stat")),
        None => proc_path(pid, "stat"),
    };
    let text = fs::read_to_string(path)?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable stat"))
}

/// The fields of `/proc/PID/status` a capture needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub tgid: i32,
    /// Real uid and gid, as the kernel puts them in NT_PRPSINFO.
    pub uid: u32,
    pub gid: u32,
    /// Signals pending for this thread (`SigPnd`) and blocked by it (`SigBlk`).
    pub sig_pending: u64,
    pub sig_blocked: u64,
}

pub fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let first = value.split_ascii_whitespace().next().unwrap_or("");
        match key {
            "Tgid" => status.tgid = first.parse().unwrap_or(0),
            "Uid" => status.uid = first.parse().unwrap_or(0),
            "Gid" => status.gid = first.parse().unwrap_or(0),
            "SigPnd" => status.sig_pending = u64::from_str_radix(first, 16).unwrap_or(0),
            "SigBlk" => status.sig_blocked = u64::from_str_radix(first, 16).unwrap_or(0),
            _ => {}
        }
    }
    status
}

pub fn read_status(pid: i32, tid: Option<i32>) -> io::Result<Status> {
    let path = match tid {
        Some(tid) => proc_path(pid, &format!("task/{tid}/status")),
        None => proc_path(pid, "status"),
    };
    Ok(parse_status(&fs::read_to_string(path)?))
}

/// Thread ids in `/proc/PID/task`, sorted, main thread (tid == pid) first.
pub fn list_threads(pid: i32) -> io::Result<Vec<i32>> {
    let mut tids: Vec<i32> = fs::read_dir(proc_path(pid, "task"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_by_key(|&tid| (tid != pid, tid));
    Ok(tids)
}

/// `cmdline` with its NUL separators turned into spaces, as `ps` and NT_PRPSINFO show it.
pub fn read_cmdline(pid: i32) -> String {
    let bytes = fs::read(proc_path(pid, "cmdline")).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    text.trim_end_matches('\0').replace('\0', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parens_in_comm() {
        let text = "1234 (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 \
                    1000 0 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "a) b");
        assert_eq!(stat.state, b'S');
        assert_eq!((stat.ppid, stat.pgrp, stat.session), (1, 1234, 1234));
        assert_eq!(stat.flags, 4194560);
        assert_eq!(stat.times, [7, 3, 0, 0]);
        assert_eq!(stat.nice, 0);
    }

    #[test]
    fn odd_stat_and_status_do_not_panic() {
        for text in ["", "(", ")", ")(", "1 (x)", "1 (x) S", "1 (x) S a b c"] {
            assert!(parse_stat(text).is_none(), "{text}");
        }
        let status = parse_status("Tgid:\nUid:\tx\nSigPnd: zz\nGid:\t5\t5\t5\t5\n:");
        assert_eq!(
            status,
            Status {
                gid: 5,
                ..Status::default()
            }
        );
    }
}
