//! The `layoutdump` binary: everything lives in the `layoutdump-cli` crate; this file only
//! hands control to it so that `cargo install --path .` and `cargo run` work at the root.
fn main() -> std::process::ExitCode {
    layoutdump_cli::main()
}
