//! Fuzz target: any bytes as a cached name index (`*.names` in the index cache), which may
//! be damaged or planted: decoding must refuse or read it without panicking, and never
//! index outside it. The work per input is `layoutdump_engine::fuzzing::index_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    layoutdump_engine::fuzzing::index_file(data);
});
