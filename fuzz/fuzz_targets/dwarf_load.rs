//! Fuzz target: any bytes as the program's binary, then what a report asks of its DWARF:
//! the name index, type decoding (structs, enums, niches), the function and inlined
//! frames at addresses, their locals, and line tables. Binaries are not always ours (a
//! user's `--binary` may be damaged or hostile): never panic, never allocate by a claimed
//! size. `DebugInfo::load` maps a path, so each input goes through one scratch file.
#![no_main]

use layoutdump_interpreter::dwarf::{DebugInfo, LinkAddr};
use layoutdump_interpreter::ptype::describe_types;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("dwarf_load.{}", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    if std::fs::write(scratch(), data).is_err() {
        return;
    }
    let Ok(dbg) = DebugInfo::load(scratch()) else {
        return;
    };
    // Every named type, decoded (bounded: the fuzzer wants many inputs, not one deep one).
    let _ = describe_types(&dbg, "", 64);
    // Functions, inline frames and locals at each address that names a function.
    let addrs: Vec<u64> = (0..64u64).map(|i| 0x1000 + i * 0x10).collect();
    for addr in addrs {
        let _ = dbg.location_at(LinkAddr(addr));
        let _ = dbg.frames_at(LinkAddr(addr));
        if let Some(f) = dbg.function_at(LinkAddr(addr)) {
            let _ = dbg.locals(f.die, LinkAddr(addr));
        }
    }
    let _ = dbg.tls_template();
});
