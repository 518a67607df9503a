//! `layoutdump check`: shipped layouts pass against real fixture binaries; broken layouts
//! get every error at once, each with line, column and what is missing.

mod common;

use common::{Profile, build_fixture, run_layoutdump};

#[test]
fn tokio_layout_checks_against_dev_and_release_binaries() {
    for (name, profile) in [
        ("tokio-tasks", Profile::Dev),
        ("tokio-tasks", Profile::Release),
        ("tokio-full", Profile::Dev),
    ] {
        let exe = build_fixture(name, profile);
        let out = run_layoutdump(&[
            "check",
            "layouts/tokio.layout",
            "--binary",
            exe.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} {profile:?}: {stderr}");
        assert!(stderr.is_empty(), "{stderr}");
    }
}

#[test]
fn broken_layout_against_binary_reports_each_problem_at_its_place() {
    let exe = build_fixture("tokio-tasks", Profile::Dev);
    let dir = common::root().join("target/test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let layout = dir.join("broken.layout");
    std::fs::write(
        &layout,
        "layout broken \"0\"\nuse std\n\nroot tls tokio::runtime::context::NO_SUCH_CONTEXT as ctx => runtime ctx.current\n\nruntime tokio::runtime::scheduler::multi_thread::handle::Handel as h {\n    kind = \"x\"\n    tasks = (addr(h) + 8) as tokio::runtime::task::core::Heder\n}\n\ntask tokio::runtime::task::core::Header as hdr {\n    id = hdr.vtable.trailer_ofset\n    state = hdr.state.vall\n}\n",
    )
    .unwrap();
    let out = run_layoutdump(&[
        "check",
        layout.to_str().unwrap(),
        "--binary",
        exe.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr)
        .replace(&dir.display().to_string(), "[DIR]")
        .replace(&exe.display().to_string(), "[BINARY]");
    insta::assert_snapshot!(text);
}

#[test]
fn syntax_and_name_errors_are_all_reported() {
    let dir = common::root().join("target/test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let layout = dir.join("names.layout");
    std::fs::write(
        &layout,
        "layout names \"0\"\nuse std\nfn f(x) = x.a + y\nruntime a::B as b {\n    kind = g(b)\n    tasks = list(b.head, 3)\n    n = len(b, b)\n}\n",
    )
    .unwrap();
    let out = run_layoutdump(&["check", layout.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr).replace(&dir.display().to_string(), "[DIR]");
    insta::assert_snapshot!(text);
}

#[test]
fn types_prints_fields_offsets_and_await_variants() {
    let exe = build_fixture("tokio-tasks", Profile::Dev);
    let out = run_layoutdump(&[
        "types",
        exe.to_str().unwrap(),
        "tokio::runtime::task::core::Header",
        "--max",
        "1",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("tokio::runtime::task::core::Header (size "),
        "{text}"
    );
    assert!(
        text.contains("+0     state: tokio::runtime::task::state::State"),
        "{text}"
    );
    assert!(
        text.contains("vtable: &tokio::runtime::task::raw::Vtable"),
        "{text}"
    );

    let out = run_layoutdump(&[
        "types",
        exe.to_str().unwrap(),
        "tokio_tasks::leaf_sleep::{async_fn_env#0}",
        "--max",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("__state: u8 (selects the variant)"), "{text}");
    assert!(
        text.contains("variant 3 = 3: tokio_tasks::leaf_sleep::{async_fn_env#0}::Suspend0  (line "),
        "{text}"
    );

    let none = run_layoutdump(&["types", exe.to_str().unwrap(), "no::such::Type"]);
    assert_eq!(none.status.code(), Some(1));
}

/// A scan root names the type it finds and the field holding the vtable pointer: `check
/// --binary` resolves both, as it does for rules, and says which one is wrong.
#[test]
fn scan_root_type_and_field_are_checked() {
    let exe = build_fixture("tokio-tasks", Profile::Dev);
    let dir = common::root().join("target/test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(common::root().join("layouts/tokio.layout")).unwrap();
    for (from, to, wanted) in [
        (
            "Header.vtable slot 0",
            "Header.vtabel slot 0",
            "type `tokio::runtime::task::core::Header` has no field `vtabel`",
        ),
        (
            "root scan tokio::runtime::task::core::Header.",
            "root scan tokio::runtime::task::core::Heder.",
            "no type named `tokio::runtime::task::core::Heder`",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let layout = dir.join("scan.layout");
        std::fs::write(&layout, text.replacen(from, to, 1)).unwrap();
        let out = run_layoutdump(&[
            "check",
            layout.to_str().unwrap(),
            "--binary",
            exe.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{to}");
        assert!(stderr.contains(wanted), "{to}: {stderr}");
        let line = text[..text.find(from).unwrap()].matches('\n').count() + 1;
        assert!(
            stderr.contains(&format!("scan.layout:{line}:1: error: scan root:")),
            "{stderr}"
        );
    }
}
