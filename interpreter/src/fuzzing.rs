//! What each fuzz target does with one input, here rather than in `fuzz/` so that the
//! regression tests (`interpreter/tests/fuzz_regressions.rs`) replay every committed
//! finding through exactly the code the fuzzer ran. Each function must return for any
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

/// The file at `path` as the program's binary, then what a report asks of its DWARF: the
/// name index, type decoding (structs, enums, niches), the function and inlined frames at
/// addresses, their locals, and line tables.
pub fn dwarf_load(path: &Path) {
    let Ok(dbg) = DebugInfo::load(path) else {
        return;
    };
    // Every named type, decoded (bounded: the fuzzer wants many inputs, not one deep one).
    let _ = crate::ptype::describe_types(&dbg, "", 64);
    for addr in (0..64u64).map(|i| 0x1000 + i * 0x10) {
        let _ = dbg.location_at(LinkAddr(addr));
        let _ = dbg.frames_at(LinkAddr(addr));
        if let Some(f) = dbg.function_at(LinkAddr(addr)) {
            let _ = dbg.locals(f.die, LinkAddr(addr));
        }
    }
    let _ = dbg.tls_template();
}
