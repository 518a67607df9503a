//! The crates depend on each other in one direction, in the order data flows: memory,
//! DWARF, the engine that fills the report, the CLI. A dependency pointing back fails here.

mod common;

/// Each crate and the layoutdump crates it may depend on (`[dependencies]`; tests may use
/// more). `report` is the report's data and writers: the engine fills it, and it depends
/// on nothing that reads a dump.
const ALLOWED: &[(&str, &[&str])] = &[
    ("lang", &[]),
    ("layouts", &[]),
    ("ordered", &[]),
    ("dump", &[]),
    ("dwarf", &["dump"]),
    ("report", &["lang", "ordered"]),
    (
        "engine",
        &["lang", "layouts", "ordered", "dump", "dwarf", "report"],
    ),
    ("capture", &["dump"]),
    ("oncrash", &[]),
    ("cli", &["lang", "engine", "capture"]),
    (".", &["cli"]),
];

/// The layoutdump crates a manifest's `[dependencies]` section names.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && let Some(rest) = line.strip_prefix("layoutdump-") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn crates_depend_only_on_the_layers_before_them() {
    let mut wrong = Vec::new();
    for (name, allowed) in ALLOWED {
        let path = common::root().join(name).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path).expect("a crate's Cargo.toml");
        for dep in dependencies(&manifest) {
            if !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{name} depends on layoutdump-{dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the data's direction: {wrong:?}"
    );
}

#[test]
fn every_workspace_crate_is_placed() {
    let manifest = std::fs::read_to_string(common::root().join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("a members line");
    for member in members.split('"').skip(1).step_by(2) {
        assert!(
            member == "bench" || ALLOWED.iter().any(|(name, _)| *name == member),
            "workspace crate `{member}` has no place in tests/crate_order.rs"
        );
    }
}

#[test]
fn a_dependency_line_is_read() {
    let manifest = "[dependencies]\nlayoutdump-dump = { path = \"../dump\" }\nrayon = \"1\"\n\n[dev-dependencies]\nlayoutdump-cli = { path = \"../cli\" }\n";
    assert_eq!(dependencies(manifest), ["dump"]);
}
