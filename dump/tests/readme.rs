//! The crate's README maps every source file: a file added without a line there fails.

use std::path::Path;

#[test]
fn readme_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut missing = Vec::new();
    for dir in ["src", "tests"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("a source directory") {
            let name = entry.expect("an entry").file_name();
            let path = format!("`{dir}/{}`", name.to_string_lossy());
            if !readme.contains(&path) {
                missing.push(path);
            }
        }
    }
    assert!(missing.is_empty(), "README.md does not name {missing:?}");
}
