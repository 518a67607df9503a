//! Fuzz target: any bytes as a dump (ELF core or minidump, chosen by magic as `run` does),
//! then everything a report reads from the dump alone: threads and their registers,
//! modules and build ids, the crash record, and memory at the addresses the dump itself
//! names (stack pointers, module bases). Dumps come from crashed machines: never panic.
#![no_main]

use layoutdump_interpreter::memory::Dump;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
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
});
