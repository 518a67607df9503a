//! Fuzz target: any bytes as the program's binary, which may be a user's damaged or hostile
//! `--binary`: never panic, never allocate by a claimed size. The work per input is
//! `layoutdump_engine::fuzzing::dwarf_load`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// `DebugInfo::load` maps a path, so each input goes through this one scratch file.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("dwarf_load.{}", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    if std::fs::write(scratch(), data).is_ok() {
        layoutdump_engine::fuzzing::dwarf_load(scratch());
    }
});
