//! Fuzz target: the interpreter running a shipped layout over mutated copies of a real
//! dump; each input must give a report, never a panic or a hang. The work per input is
//! `layoutdump_engine::fuzzing::MutatedDumps::run`; see docs/fuzzing.md.
#![no_main]

use layoutdump_engine::fuzzing::MutatedDumps;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The dump and layout to mutate, set up once: from `LAYOUTDUMP_FUZZ_DUMP`,
/// `LAYOUTDUMP_FUZZ_LAYOUT` and `LAYOUTDUMP_FUZZ_BINARY`, by default the `tokio` layout on
/// the tokio fixture's dev core (captured by `cargo test --test tokio_e2e`). Each input's
/// writes land in the memory the clean run read: task headers, futures, stacks.
fn target() -> &'static MutatedDumps {
    static T: OnceLock<MutatedDumps> = OnceLock::new();
    T.get_or_init(|| {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let dump = var(
            "LAYOUTDUMP_FUZZ_DUMP",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/fixture-dumps/debug/tokio-tasks.core"
            ),
        );
        let layout = var("LAYOUTDUMP_FUZZ_LAYOUT", "tokio");
        let binary = std::env::var_os("LAYOUTDUMP_FUZZ_BINARY").map(Into::into);
        MutatedDumps::new(&layout, std::path::Path::new(&dump), binary)
            .unwrap_or_else(|e| panic!("fuzz setup: {e}"))
    })
}

fuzz_target!(|data: &[u8]| target().run(data));
