//! Fuzz target: any bytes as a dump (ELF core or minidump). Dumps come from crashed
//! machines: never panic. The work per input is `layoutdump_engine::fuzzing::dump_open`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| layoutdump_engine::fuzzing::dump_open(data));
