//! Every shipped layout has a reviewed snapshot of its fixture's text report: the runtime
//! layouts by name, and the library layouts through the fixtures whose futures they
//! describe. Addresses, thread ids and clock values are redacted; nothing else is.

mod common;

use common::{Profile, fixture_dumps, text_snapshot};

/// The fixture each shipped runtime layout is snapshotted on (tokio's own fixture is
/// `tokio_e2e`'s snapshot), and the fixtures that exercise the library layouts.
const SNAPSHOTS: &[(&str, &str)] = &[
    ("smol", "smol-tasks"),
    ("async-std", "async-std-tasks"),
    ("futures-executor", "futures-pool"),
    ("embassy", "embassy-tasks"),
    ("monoio", "monoio-tasks"),
    ("compio", "compio-tasks"),
    ("glommio", "glommio-tasks"),
    // hyper, tower, tonic, tracing and futures, through tokio.
    ("tokio", "web-service"),
    // actix's signals and LocalSets under their threads.
    ("tokio", "actix-app"),
    ("tokio", "tokio-local"),
    // std's and slab's collections, and the custom-executor guide's map-keyed example.
    ("tests/fixtures/mapexec/collections.layout", "mapexec"),
    ("tests/fixtures/mapexec/mapexec.layout", "mapexec"),
];

fn snapshot(layout: &str, fixture: &str) {
    let d = fixture_dumps(fixture, Profile::Dev);
    let text = text_snapshot(d, layout);
    // A layout given by path is named by its file.
    let name = layout.rsplit('/').next().unwrap_or(layout);
    let name = name.strip_suffix(".layout").unwrap_or(name);
    insta::assert_snapshot!(format!("{fixture}-{name}"), text);
}

/// The snapshot of a fixture whose tasks are spawned from several threads at once: its
/// task ids and the order of its tasks differ from one run to the next.
fn snapshot_unordered(layout: &str, fixture: &str) {
    let d = fixture_dumps(fixture, Profile::Dev);
    let text = common::unordered_tasks(&text_snapshot(d, layout));
    insta::assert_snapshot!(format!("{fixture}-{layout}"), text);
}

#[test]
fn smol_on_smol_tasks() {
    snapshot("smol", "smol-tasks");
}

#[test]
fn async_std_on_async_std_tasks() {
    snapshot("async-std", "async-std-tasks");
}

#[test]
fn futures_executor_on_futures_pool() {
    snapshot("futures-executor", "futures-pool");
}

#[test]
fn embassy_on_embassy_tasks() {
    snapshot("embassy", "embassy-tasks");
}

#[test]
fn monoio_on_monoio_tasks() {
    snapshot("monoio", "monoio-tasks");
}

#[test]
fn compio_on_compio_tasks() {
    snapshot("compio", "compio-tasks");
}

#[test]
fn glommio_on_glommio_tasks() {
    snapshot("glommio", "glommio-tasks");
}

#[test]
fn tokio_and_its_libraries_on_web_service() {
    snapshot_unordered("tokio", "web-service");
}

#[test]
fn tokio_and_actix_on_actix_app() {
    snapshot_unordered("tokio", "actix-app");
}

#[test]
fn tokio_local_sets_on_tokio_local() {
    snapshot("tokio", "tokio-local");
}

#[test]
fn collections_on_mapexec() {
    snapshot("tests/fixtures/mapexec/collections.layout", "mapexec");
}

#[test]
fn map_keyed_executor_on_mapexec() {
    snapshot("tests/fixtures/mapexec/mapexec.layout", "mapexec");
}

/// Every shipped layout is compiled into at least one snapshotted run (a library layout
/// through the runtime layout that uses it).
#[test]
fn every_shipped_layout_is_snapshotted() {
    let mut covered: Vec<String> = Vec::new();
    for (layout, _) in SNAPSHOTS {
        let program = if layout.contains('/') {
            let path = common::root().join(layout);
            layoutdump_engine::layout_loader::compile_layout(path.to_str().unwrap())
        } else {
            layoutdump_engine::layout_loader::compile_layout(layout)
        }
        .unwrap();
        covered.extend(program.files.iter().map(|f| f.name.clone()));
    }
    for (name, _) in layoutdump_layouts::SHIPPED {
        assert!(
            covered
                .iter()
                .any(|f| f.ends_with(&format!("/{name}.layout"))),
            "shipped layout `{name}` is in no snapshotted run: add its fixture to SNAPSHOTS"
        );
    }
}
