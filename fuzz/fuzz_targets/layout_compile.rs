//! Fuzz target: any text as a layout, parsed, compiled and its diagnostics rendered. A
//! layout comes from a third party: no input may panic, hang or grow without bound. `use`
//! resolves to the shipped layouts only, so the fuzzer never reads the disk.
#![no_main]

use layoutdump_engine::layout_loader::LayoutLoader;
use layoutdump_lang::{Loader, SourceFile, compile};
use libfuzzer_sys::fuzz_target;

/// Shipped layouts by name; everything else is "not found", as a missing file would be.
struct ShippedOnly;

impl Loader for ShippedOnly {
    fn load(&self, name: &str) -> Result<SourceFile, String> {
        if name.contains(['/', '.']) {
            return Err(format!("{name}: not a shipped layout"));
        }
        LayoutLoader { dir: None }.load(name)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let main = SourceFile {
        name: "fuzz.layout".to_owned(),
        text: text.to_owned(),
    };
    if let Err(diags) = compile(main, &ShippedOnly) {
        // Rendering walks spans back to lines and columns: it must agree with the parser.
        let _ = diags.to_string();
    }
});
