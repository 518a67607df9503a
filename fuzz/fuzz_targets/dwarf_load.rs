//! Fuzz target: any bytes as the program's binary. Binaries are not always ours (a user's
//! `--binary` may be damaged or hostile): never panic, never allocate by a claimed size.
//! `DebugInfo::load` maps a path, so each input goes through one scratch file; the work per
//! input is `layoutdump_engine::fuzzing::dwarf_load`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("dwarf_load.{}", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    if std::fs::write(scratch(), data).is_ok() {
        layoutdump_engine::fuzzing::dwarf_load(scratch());
    }
});
