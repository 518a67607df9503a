//! Captures a live child process (this test binary re-run as a parked multi-threaded
//! program) in both formats and checks the dumps structurally: threads, fs_base, heap, TLS.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use layoutdump_capture::{CaptureError, CaptureFormat, CaptureOptions, capture};
use object::LittleEndian as LE;
use object::elf::{FileHeader64, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};

const CHILD_ENV: &str = "LAYOUTDUMP_CAPTURE_TEST_CHILD";
const WORKERS: usize = 3;
const HEAP_MARKER: &[u8; 16] = b"HEAP-MARKER-5eed";
const TLS_MARKER: [u8; 16] = *b"TLS-MARKER-c0ffe";

thread_local! {
    // Static TLS in .tdata: lives in each thread's TLS block, just below its fs_base.
    static MARKER: [u8; 16] = const { TLS_MARKER };
}

/// Not a test: the body of the child process, run when `CHILD_ENV` is set. Prints
/// `THREAD tid tls_address` per worker, `HEAP address`, then `READY`, and parks forever.
#[test]
fn child_process_main() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let (tx, rx) = mpsc::channel();
    for _ in 0..WORKERS {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let tls = MARKER.with(|m| std::hint::black_box(m.as_ptr()) as usize);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            tx.send(format!("THREAD {tid} {tls:#x}")).unwrap();
            loop {
                std::thread::park();
            }
        });
    }
    let heap = Box::new(*HEAP_MARKER);
    let mut stdout = std::io::stdout().lock();
    for line in rx.iter().take(WORKERS) {
        writeln!(stdout, "{line}").unwrap();
    }
    writeln!(
        stdout,
        "HEAP {:#x}",
        std::hint::black_box(&*heap).as_ptr() as usize
    )
    .unwrap();
    writeln!(stdout, "READY").unwrap();
    stdout.flush().unwrap();
    loop {
        std::thread::park();
    }
}

/// The running child; killed and reaped on drop.
struct Fixture {
    child: Child,
    /// Worker tid -> address of its TLS marker.
    tls: BTreeMap<i32, u64>,
    heap: u64,
}

impl Fixture {
    fn spawn() -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_main",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut fixture = Fixture {
            child,
            tls: BTreeMap::new(),
            heap: 0,
        };
        let stdout = fixture.child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            // The harness prints `test child_process_main ... ` with no newline first.
            let start = ["THREAD ", "HEAP ", "READY"]
                .iter()
                .filter_map(|k| line.find(k))
                .min();
            let words: Vec<&str> = line[start.unwrap_or(0)..].split_whitespace().collect();
            match words.as_slice() {
                ["THREAD", tid, tls] => {
                    fixture.tls.insert(tid.parse().unwrap(), hex(tls));
                }
                ["HEAP", address] => fixture.heap = hex(address),
                ["READY"] => break,
                _ => {}
            }
        }
        assert_eq!(
            fixture.tls.len(),
            WORKERS,
            "child did not report its threads"
        );
        fixture
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn task_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .unwrap()
            .count()
    }

    fn state(&self) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
    }

    /// `[heap]` from /proc/PID/maps, if the process has one.
    fn heap_mapping(&self) -> Option<(u64, u64)> {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid())).unwrap();
        let line = maps.lines().find(|l| l.ends_with("[heap]"))?;
        let (start, end) = line.split_whitespace().next()?.split_once('-')?;
        Some((hex(start), hex(end)))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

fn out_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capture-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}", std::process::id()))
}

fn assert_no_tmp(out: &Path) {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    assert!(
        !Path::new(&tmp).exists(),
        "{} left behind",
        Path::new(&tmp).display()
    );
}

/// `fs_base` points just above the static TLS block, so each worker's marker must lie
/// a little below its thread's fs_base.
fn assert_tls_below(fs_base: u64, tls: u64, tid: i32) {
    assert!(
        fs_base > tls && fs_base - tls < 1 << 20,
        "tid {tid}: fs_base {fs_base:#x}, tls {tls:#x}"
    );
}

#[test]
fn core_has_every_thread_heap_and_tls() {
    let fixture = Fixture::spawn();
    let out = out_path("fixture.core");
    let opts = CaptureOptions {
        format: CaptureFormat::Core,
        ..CaptureOptions::default()
    };
    let summary = capture(fixture.pid(), &out, &opts).unwrap();
    assert_no_tmp(&out);
    assert_eq!(summary.path, out);
    assert_eq!(summary.threads, fixture.task_count());
    assert_ne!(fixture.state(), 'T', "process left stopped");

    let data = std::fs::read(&out).unwrap();
    let header = FileHeader64::<LE>::parse(&*data).unwrap();
    assert_eq!(header.e_type(LE), object::elf::ET_CORE);
    assert_eq!(header.e_machine(LE), object::elf::EM_X86_64);
    let phdrs = header.program_headers(LE, &*data).unwrap();

    // Notes: one NT_PRSTATUS per thread, main thread first, each with a nonzero fs_base.
    let mut fs_bases = Vec::new();
    let mut kinds = Vec::new();
    for phdr in phdrs.iter().filter(|p| p.p_type(LE) == PT_NOTE) {
        let mut notes = phdr.notes(LE, &*data).unwrap().unwrap();
        while let Some(note) = notes.next().unwrap() {
            kinds.push(note.n_type(LE));
            if note.n_type(LE) == object::elf::NT_PRSTATUS {
                let desc = note.desc();
                assert_eq!(desc.len(), 336);
                let tid = i32::from_le_bytes(desc[32..36].try_into().unwrap());
                let fs_base =
                    u64::from_le_bytes(desc[112 + 21 * 8..112 + 22 * 8].try_into().unwrap());
                assert_ne!(fs_base, 0, "tid {tid} has no fs_base");
                fs_bases.push((tid, fs_base));
            }
        }
    }
    assert_eq!(fs_bases.len(), fixture.task_count());
    assert_eq!(fs_bases[0].0, fixture.pid(), "main thread first");
    for kind in [
        object::elf::NT_PRPSINFO,
        object::elf::NT_AUXV,
        object::elf::NT_FILE,
    ] {
        assert!(kinds.contains(&kind), "note type {kind} missing");
    }

    let read = |address: u64, len: usize| -> Option<&[u8]> {
        let phdr = phdrs.iter().find(|p| {
            p.p_type(LE) == PT_LOAD
                && p.p_vaddr(LE) <= address
                && address + len as u64 <= p.p_vaddr(LE) + p.p_filesz(LE)
        })?;
        let offset = (phdr.p_offset(LE) + address - phdr.p_vaddr(LE)) as usize;
        data.get(offset..offset + len)
    };
    assert_eq!(read(fixture.heap, 16), Some(&HEAP_MARKER[..]));
    if let Some((start, _)) = fixture.heap_mapping() {
        assert!(read(start, 4096).is_some(), "[heap] not in the core");
    }
    for (&tid, &tls) in &fixture.tls {
        let &(_, fs_base) = fs_bases.iter().find(|(t, _)| *t == tid).unwrap();
        assert_tls_below(fs_base, tls, tid);
        assert_eq!(read(tls, 16), Some(&TLS_MARKER[..]), "tid {tid} TLS");
    }
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn minidump_has_every_thread_heap_and_tls() {
    use minidump::{Minidump, MinidumpMemoryList, MinidumpThreadList};

    let fixture = Fixture::spawn();
    let out = out_path("fixture.dmp");
    let opts = CaptureOptions {
        format: CaptureFormat::Minidump,
        ..CaptureOptions::default()
    };
    let summary = capture(fixture.pid(), &out, &opts).unwrap();
    assert_no_tmp(&out);
    assert_eq!(summary.threads, fixture.task_count());
    // minidump-writer SIGCONTs asynchronously; give the process a moment to run again.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_ne!(fixture.state(), 'T', "process left stopped");

    let dump = Minidump::read_path(&out).unwrap();
    let threads = dump.get_stream::<MinidumpThreadList>().unwrap();
    assert_eq!(threads.threads.len(), fixture.task_count());
    let memory = dump.get_stream::<MinidumpMemoryList>().unwrap();
    assert_eq!(memory.iter().count(), summary.regions);
    let read = |address: u64, len: usize| -> Option<&[u8]> {
        let region = memory.memory_at_address(address)?;
        let offset = (address - region.base_address) as usize;
        region.bytes.get(offset..offset + len)
    };
    assert_eq!(read(fixture.heap, 16), Some(&HEAP_MARKER[..]));
    if let Some((start, _)) = fixture.heap_mapping() {
        assert!(read(start, 4096).is_some(), "[heap] not in the minidump");
    }
    for thread in &threads.threads {
        assert_ne!(
            thread.raw.teb, 0,
            "thread {} has no fs_base in teb",
            thread.raw.thread_id
        );
        if let Some(&tls) = fixture.tls.get(&(thread.raw.thread_id as i32)) {
            assert_tls_below(thread.raw.teb, tls, thread.raw.thread_id as i32);
            assert_eq!(
                read(tls, 16),
                Some(&TLS_MARKER[..]),
                "tid {} TLS",
                thread.raw.thread_id
            );
        }
    }
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn bad_inputs_are_refused_with_no_file_left() {
    let opts = CaptureOptions::default();
    let out = out_path("never-written.core");
    let err = capture(i32::MAX, &out, &opts).unwrap_err();
    assert!(matches!(err, CaptureError::NoSuchProcess { .. }), "{err}");
    let err = capture(std::process::id() as i32, &out, &opts).unwrap_err();
    assert!(matches!(err, CaptureError::SelfCapture { .. }), "{err}");
    let err = capture(0, &out, &opts).unwrap_err();
    assert!(matches!(err, CaptureError::InvalidPid { .. }), "{err}");

    let fixture = Fixture::spawn();
    let worker = *fixture.tls.keys().next().unwrap();
    let err = capture(worker, &out, &opts).unwrap_err();
    assert!(
        matches!(err, CaptureError::NotAProcess { pid, .. } if pid == fixture.pid()),
        "{err}"
    );
    let missing = out_path("no-such-dir").join("x.core");
    let err = capture(fixture.pid(), &missing, &opts).unwrap_err();
    assert!(
        matches!(err, CaptureError::OutputDirMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!out.exists());
    assert_no_tmp(&out);
}
