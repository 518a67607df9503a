//! rhai hooks on synthetic memory with real DWARF: a hook decodes a value no rule can, and
//! a hostile hook ends with an error that names the hook and its line in the layout, never
//! a hang.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use layoutdump_engine::dwarf::DebugInfo;
use layoutdump_engine::eval::{EvalError, Evaluator, Limits, Value};
use layoutdump_engine::memory::SliceMemory;
use layoutdump_lang::{Loader, Program, SourceFile};

pub struct Slot {
    pub name: [u8; 16],
    pub state: AtomicU64,
    pub id: u64,
    pub label: Option<String>,
}

fn debug_info() -> &'static DebugInfo {
    static DBG: OnceLock<DebugInfo> = OnceLock::new();
    DBG.get_or_init(|| {
        DebugInfo::load(&std::env::current_exe().unwrap()).expect("test binary has DWARF")
    })
}

struct Shipped;
impl Loader for Shipped {
    fn load(&self, name: &str) -> Result<SourceFile, String> {
        layoutdump_engine::layout_loader::LayoutLoader { dir: None }.load(name)
    }
}

fn compile(text: &str) -> Result<Program, String> {
    let src = SourceFile {
        name: "hooks.layout".into(),
        text: text.into(),
    };
    layoutdump_lang::compile(src, &Shipped).map_err(|d| d.to_string())
}

/// Evaluates the members of the layout's one rule on `slot`; returns them and the notes
/// of what the hooks printed.
/// Each reported member's name and value.
type Members = Vec<(String, Result<Value, EvalError>)>;

fn run(layout: &str, slot: &Slot) -> (Members, Vec<String>) {
    let program = compile(layout).unwrap_or_else(|e| panic!("{e}"));
    let dbg = debug_info();
    let ty = dbg.type_named("hooks::Slot").expect("Slot in DWARF");
    let mut mem = SliceMemory::default();
    let addr = slot as *const Slot as u64;
    let bytes =
        unsafe { std::slice::from_raw_parts(slot as *const Slot as *const u8, size_of::<Slot>()) };
    mem.insert(addr, bytes.to_vec());
    if let Some(l) = &slot.label {
        mem.insert(l.as_ptr() as u64, l.as_bytes().to_vec());
    }
    let ev = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    let rule = &program.rules[0];
    let out = ev
        .eval_members(&rule.members, rule.frame_size, Value::Place { addr, ty })
        .into_iter()
        .map(|(name, r)| (name.to_string(), r))
        .collect();
    (out, ev.hook_output())
}

fn get<'a>(
    out: &'a [(String, Result<Value, EvalError>)],
    name: &str,
) -> &'a Result<Value, EvalError> {
    &out.iter().find(|(n, _)| n == name).unwrap().1
}

fn slot() -> Slot {
    let mut name = [0u8; 16];
    name[..7].copy_from_slice(b"ingest\0");
    Slot {
        name,
        // state 2 in bits 0..3, generation 5 in bits 8..
        state: AtomicU64::new(2 | (5 << 8)),
        id: 41,
        label: Some("primary".to_string()),
    }
}

const DECODE: &str = r#"
layout hooks "0"
use std
hook c_name(s) """
    let bytes = blob();
    for b in s.name {
        if b == 0 { break; }
        bytes.push(b);
    }
    let out = bytes.as_string();
    print(`decoded ${out} for id ${s.id}`);
    out
"""
hook state_of(word) """
    let names = ["idle", "queued", "running", "done"];
    let i = word & 0x7;
    if i < names.len() { names[i] } else { `bad state ${i}` }
"""
hook pair(s) """ [s.id, s.state >> 8, s.label.variant, s.label["__0"]] """
runtime hooks::Slot as s {
    name = c_name(s)
    state = state_of(s.state)
    generation_and_label = pair(s)
    own_bytes = len_of(s)
}
hook len_of(s) """ s.__bytes.len() """
"#;

/// Hooks read what no rule can decode: a NUL-terminated name in a byte array, a packed
/// state word.
#[test]
fn hooks_decode_what_rules_cannot() {
    let s = slot();
    let (out, printed) = run(DECODE, &s);
    assert_eq!(get(&out, "name"), &Ok(Value::Str("ingest".into())));
    assert_eq!(get(&out, "state"), &Ok(Value::Str("running".into())));
    assert_eq!(
        get(&out, "generation_and_label"),
        &Ok(Value::Seq(vec![
            Value::Int(41),
            Value::Int(5),
            Value::Str("Some".into()),
            Value::Str("primary".into())
        ]))
    );
    assert_eq!(
        get(&out, "own_bytes"),
        &Ok(Value::Int(size_of::<Slot>() as i128))
    );
    assert_eq!(printed, vec!["decoded ingest for id 41".to_string()]);
}

/// A hook's rule evaluated on a real value; the error of member `v`.
fn hook_error(body: &str) -> (String, Duration) {
    let layout = format!(
        "layout hooks \"0\"\nuse std\nhook bad(s) \"\"\"\n{body}\n\"\"\"\nruntime hooks::Slot as s {{ v = bad(s) }}\n"
    );
    let s = slot();
    let start = Instant::now();
    let (out, _) = run(&layout, &s);
    let took = start.elapsed();
    match get(&out, "v") {
        Err(e) => (e.to_string(), took),
        Ok(v) => panic!("hostile hook returned {v:?}"),
    }
}

/// Endless loops, deep recursion, huge strings and arrays, and hooks that return nothing
/// usable each end with an error in bounded time, never a hang.
#[test]
fn hostile_hooks_stop_at_their_limits() {
    let cases = [
        ("loop {}", "Too many operations"),
        ("let x = 0; while true { x += 1; }", "Too many operations"),
        ("fn f(n) { f(n + 1) } f(0)", "Stack overflow"),
        ("let s = \"x\"; loop { s += s; }", "Length of string"),
        ("let a = [1]; loop { a += a; }", "Size of array"),
        // A missing map property is () in rhai.
        ("s.missing_field", "returned nothing"),
        ("()", "returned nothing"),
        ("#{a: 1}", "returned a value of type"),
    ];
    for (body, wanted) in cases {
        let (err, took) = hook_error(body);
        assert!(err.contains(wanted), "{body}: {err}");
        assert!(
            err.contains("hook `bad` failed at hooks.layout:") || wanted.starts_with("returned"),
            "{body}: {err}"
        );
        assert!(took < Duration::from_secs(5), "{body} took {took:?}");
    }
}

#[test]
fn hook_runtime_errors_point_at_the_layout_line() {
    // The body starts on layout line 4; its second line (layout line 5) divides by zero.
    let (err, _) = hook_error("let a = 1;\nlet b = a / 0;\nb");
    assert!(err.contains("hooks.layout:5:"), "{err}");
    assert!(err.contains("Division by zero"), "{err}");
}

/// `eval`, `import`, files and unknown names are refused, when the layout is compiled or
/// when the hook runs.
#[test]
fn hooks_cannot_reach_outside_the_sandbox() {
    for (body, wanted) in [
        ("eval(\"1 + 1\")", "eval"),
        ("import \"std\" as s; 1", "import"),
        ("open_file(\"/etc/passwd\")", "open_file"),
        ("unknown_variable", "unknown_variable"),
    ] {
        let layout = format!(
            "layout hooks \"0\"\nhook bad(s) \"\"\"\n{body}\n\"\"\"\nruntime hooks::Slot as s {{ v = bad(s) }}\n"
        );
        match compile(&layout) {
            Err(e) => {
                assert!(e.contains("hooks.layout:3:"), "{body}: {e}");
                assert!(e.contains("in hook `bad`"), "{body}: {e}");
            }
            Ok(_) => {
                let (err, _) = hook_error(body);
                assert!(err.contains(wanted), "{body}: {err}");
            }
        }
    }
}

#[test]
fn hook_syntax_errors_are_layout_errors_with_a_caret() {
    let layout = "layout hooks \"0\"\nhook bad(s) \"\"\"\n  let x = ;\n\"\"\"\nruntime hooks::Slot as s { v = bad(s, 1) }\n";
    let err = compile(layout).unwrap_err();
    assert!(err.contains("hooks.layout:3:"), "{err}");
    assert!(err.contains("in hook `bad`"), "{err}");
    assert!(err.contains("`bad` takes 1 argument"), "{err}");
}
