//! What each fuzz target does with one input, here so that the regression tests replay
//! every committed finding through the code the fuzzer ran. Each must return for any
//! input: no panic, no hang, no allocation sized by the input without a cap.

use std::path::Path;

use crate::dwarf::{DebugInfo, LinkAddr};
use crate::memory::Dump;

/// Any bytes as a dump (ELF core or minidump, chosen by magic as `run` does), then
/// everything a report reads from the dump alone: threads and their registers, modules
/// and build ids, the crash record, and memory at the addresses the dump itself names.
pub fn dump_open(data: &[u8]) {
    let Ok(dump) = Dump::from_bytes(Path::new("fuzz.dmp"), data.to_vec()) else {
        return;
    };
    let memory = dump.memory();
    let mut buf = [0u8; 64];
    for thread in &dump.threads {
        for reg in [7u16, 16] {
            if let Some(addr) = thread.regs.dwarf(reg) {
                let _ = memory.read(addr, &mut buf);
            }
        }
    }
    for module in &dump.modules {
        let _ = module.build_id_hex();
        let _ = memory.read(module.base(), &mut buf);
    }
    let _ = dump.main_module();
    let _ = dump.has_heap();
    let _ = format!("{:?}", dump.crash);
}

/// Any bytes as a name-index cache file (`~/.cache/layoutdump/*.names`, which another
/// user or a full disk could have damaged), then the lookups a run makes on it.
pub fn index_file(data: &[u8]) {
    crate::dwarf::fuzz_index_file(data);
}

/// The file at `path` as the program's binary, then what a report asks of its DWARF: the
/// name index, type decoding (structs, enums, niches), the function and inlined frames at
/// addresses, their locals, and line tables.
pub fn dwarf_load(path: &Path) {
    let Ok(dbg) = DebugInfo::load(path) else {
        return;
    };
    // Every named type, decoded (bounded: the fuzzer wants many inputs, not one deep one).
    let _ = crate::type_layout::describe_types(&dbg, "", 64);
    for addr in (0..64u64).map(|i| 0x1000 + i * 0x10) {
        let _ = dbg.location_at(LinkAddr(addr));
        let _ = dbg.frames_at(LinkAddr(addr));
        if let Some(f) = dbg.function_at(LinkAddr(addr)) {
            let _ = dbg.locals(f.die, LinkAddr(addr));
        }
    }
    let _ = dbg.tls_template();
}

/// The interpreter over mutated dumps: a real dump of a fixture and the layout that reads
/// it, with each input a list of writes into the memory the clean run's report names (task
/// headers, futures, leaves, the runtime, thread stacks), so that mutations land where the
/// layout looks instead of in megabytes of unused heap. Debug info is loaded once.
pub struct MutatedDumps {
    program: layoutdump_lang::Program,
    base: Vec<u8>,
    /// File offsets of the dump's bytes around every address the clean report names.
    hot: Vec<std::ops::Range<usize>>,
    hot_len: usize,
    opts: crate::analyze::Options,
    /// The same, with the tasks read while the JSON is written (`deferred`).
    deferred: crate::analyze::Options,
    label: std::path::PathBuf,
}

/// Bytes of memory made mutable around each address a clean report names.
const HOT_BEFORE: u64 = 64;
const HOT_AFTER: u64 = 512;
/// Writes applied per input, at most.
const MAX_WRITES: usize = 64;

impl MutatedDumps {
    /// `layout` is a shipped layout's name or a `.layout` path; `dump` a core or minidump
    /// whose binary is where the dump says (or `binary`).
    pub fn new(
        layout: &str,
        dump: &Path,
        binary: Option<std::path::PathBuf>,
    ) -> Result<MutatedDumps, String> {
        let program = crate::layout_loader::compile_layout(layout)?;
        let base = std::fs::read(dump).map_err(|e| format!("{}: {e}", dump.display()))?;
        let opts = crate::analyze::Options {
            binary,
            dwarf_cache: Some(Default::default()),
            ..Default::default()
        };
        let opened = Dump::from_bytes(dump, base.clone()).map_err(|e| e.to_string())?;
        let regions: Vec<crate::memory::Region> = opened.regions().to_vec();
        let (report, _) = crate::analyze::analyze_dump(&program, opened, dump, &opts);
        let mut addrs: Vec<u64> = report.threads.iter().map(|t| t.sp.0).collect();
        for r in &report.runtimes {
            addrs.push(r.address.0);
            for t in &r.tasks {
                addrs.push(t.address.0);
                addrs.extend(t.future.iter().map(|f| f.address.0));
                addrs.extend(t.backtrace.iter().map(|f| f.address.0));
                addrs.extend(t.blocked_on.iter().map(|b| b.address.0));
            }
        }
        let mut hot = Vec::new();
        for a in addrs {
            let (lo, hi) = (a.saturating_sub(HOT_BEFORE), a.saturating_add(HOT_AFTER));
            for r in &regions {
                let crate::memory::RegionSource::Dump { offset } = r.source else {
                    continue;
                };
                let (s, e) = (lo.max(r.start), hi.min(r.end));
                if s < e {
                    let from = offset.saturating_add(s - r.start) as usize;
                    let to = (offset.saturating_add(e - r.start) as usize).min(base.len());
                    if from < to {
                        hot.push(from..to);
                    }
                }
            }
        }
        let hot_len = hot.iter().map(|r| r.len()).sum();
        if hot_len == 0 {
            return Err("the clean run names no memory held in the dump: nothing to mutate".into());
        }
        let deferred = crate::analyze::Options {
            defer_tasks: true,
            ..opts.clone()
        };
        Ok(MutatedDumps {
            program,
            base,
            hot,
            hot_len,
            opts,
            deferred,
            label: dump.to_path_buf(),
        })
    }

    /// The file offset of the `n`th hot byte (wrapping).
    fn hot_offset(&self, n: u32) -> usize {
        let mut n = n as usize % self.hot_len;
        for r in &self.hot {
            if n < r.len() {
                return r.start + n;
            }
            n -= r.len();
        }
        self.hot[0].start
    }

    /// Applies `data` as writes to a copy of the dump, then analyzes and renders it. Each
    /// write: u32 (which hot byte), u8 kind, u8 argument, then for kind 0 that many bytes.
    /// Kinds: 0 bytes, 1 zero word, 2 all-ones word, 3 copy the word at another hot byte
    /// (a pointer to elsewhere: cycles, wrong types), 4 add `argument as i8 * 8` to the word.
    pub fn run(&self, data: &[u8]) {
        let mut bytes = self.base.clone();
        let mut rest = data;
        for _ in 0..MAX_WRITES {
            let [a, b, c, d, kind, arg, tail @ ..] = rest else {
                break;
            };
            rest = tail;
            let at = self.hot_offset(u32::from_le_bytes([*a, *b, *c, *d]));
            let word = |bytes: &[u8], at: usize| -> u64 {
                let mut w = [0u8; 8];
                let n = bytes.len().saturating_sub(at).min(8);
                w[..n].copy_from_slice(&bytes[at..at + n]);
                u64::from_le_bytes(w)
            };
            let value: Vec<u8> = match kind % 5 {
                0 => {
                    let n = usize::from(*arg % 17).min(rest.len());
                    let (v, tail) = rest.split_at(n);
                    rest = tail;
                    v.to_vec()
                }
                1 => vec![0; 8],
                2 => vec![0xff; 8],
                3 => {
                    let from = self.hot_offset(u32::from(*arg).wrapping_mul(2_654_435_761));
                    word(&bytes, from).to_le_bytes().to_vec()
                }
                _ => word(&bytes, at)
                    .wrapping_add_signed(i64::from(*arg as i8) * 8)
                    .to_le_bytes()
                    .to_vec(),
            };
            let end = (at + value.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&value[..end - at]);
        }
        let Ok(dump) = Dump::from_bytes(&self.label, bytes.clone()) else {
            return;
        };
        let (report, _) =
            crate::analyze::analyze_dump(&self.program, dump, &self.label, &self.opts);
        let _ = report.to_json();
        let _ = crate::report::render_text(&report, Default::default());
        // Compact JSON writes tasks by hand: it must stay serde's JSON of them, whatever
        // strings and numbers a damaged dump puts in a task.
        for task in report.runtimes.iter().flat_map(|r| &r.tasks) {
            let mut ours = Vec::new();
            crate::report::json_task::write_task(&mut ours, task);
            let serde = serde_json::to_vec(task).unwrap_or_default();
            assert!(ours == serde, "compact JSON of a task is not serde_json's");
        }
        // The same dump as `run` reads it: tasks listed first, then read while the
        // JSON, the text or the YAML is written, or read only to be grouped.
        let Ok(dump) = Dump::from_bytes(&self.label, bytes) else {
            return;
        };
        let (mut report, _) =
            crate::analyze::analyze_dump(&self.program, dump, &self.label, &self.deferred);
        let _ = report.write_json(std::io::sink(), false);
        let _ = crate::report::write_text(&report, Default::default(), &mut std::io::sink());
        let _ = report.write_yaml(std::io::sink());
        report.group_tasks(true);
        report.add_late_findings();
        let text = crate::report::TextOptions {
            group: true,
            ..Default::default()
        };
        let _ = crate::report::render_text(&report, text);
    }
}
