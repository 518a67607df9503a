//! The dump formats layoutdump reads, each one a `DumpReader`: recognised by its first
//! bytes, read into a `Dump`. A new format is one file implementing it, its line in
//! `READERS` and its `DumpFormat` variant (what the report calls it).

use std::path::Path;

use crate::backing::Backing;
use crate::dump::{Dump, DumpError};

/// What a format makes of a file's first bytes.
pub(crate) enum Sniff {
    /// One of its dumps.
    Dump,
    /// Not this format.
    Other,
    /// This format's family, but not a dump (an ELF executable): what it is instead.
    NotADump(&'static str),
}

pub(crate) trait DumpReader: Sync {
    /// The format's name and magic, for a message that lists what is expected.
    fn name(&self) -> &'static str;
    fn sniff(&self, data: &[u8]) -> Sniff;
    fn read(&self, path: &Path, data: Backing) -> Result<Dump, DumpError>;
}

/// Every format, tried in order.
pub(crate) static READERS: &[&dyn DumpReader] = &[
    &crate::elf_core::ElfCoreReader,
    &crate::minidump::MinidumpReader,
];

/// Reads `data` with the reader whose format it is.
pub(crate) fn read(path: &Path, data: Backing) -> Result<Dump, DumpError> {
    for reader in READERS {
        match reader.sniff(&data) {
            Sniff::Dump => return reader.read(path, data),
            Sniff::NotADump(kind) => {
                return Err(DumpError::NotACore {
                    path: path.to_owned(),
                    kind: kind.to_owned(),
                });
            }
            Sniff::Other => {}
        }
    }
    let shown = data.get(..8).unwrap_or(&data);
    let found = if shown.is_empty() {
        "nothing (the file is empty)".to_owned()
    } else {
        format!("bytes {}", crate::dump::hex_spaced(shown))
    };
    let expected: Vec<&str> = READERS.iter().map(|r| r.name()).collect();
    Err(DumpError::NotADump {
        path: path.to_owned(),
        found,
        expected: expected.join(" or "),
    })
}
