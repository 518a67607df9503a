//! Compiling real layouts: the shipped ones compile, and errors are collected across all
//! files of a program, each pointing at its own file, line and column.

use layoutdump_lang::program::{RootKind, RuleKind};
use layoutdump_lang::{Loader, SourceFile, compile};

struct Files(Vec<(&'static str, &'static str)>);

impl Loader for Files {
    fn load(&self, name: &str) -> Result<SourceFile, String> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, t)| SourceFile {
                name: format!("{n}.layout"),
                text: (*t).into(),
            })
            .ok_or_else(|| format!("no layout {name}"))
    }
}

fn shipped() -> Files {
    Files(layoutdump_layouts::SHIPPED.to_vec())
}

#[test]
fn every_shipped_layout_compiles() {
    for (name, _) in shipped().0 {
        let main = shipped().load(name).unwrap();
        compile(main, &shipped()).unwrap_or_else(|d| panic!("{name}: {d}"));
    }
}

/// What the compiler makes of each runnable shipped layout (with the libraries it uses),
/// as `Program::listing` shows it: every name resolved to a slot, function or builtin.
/// Each member chain's root and length, worked out once in one pass at compile time, are
/// those found by walking the chain from its outermost member, in every shipped layout
/// (tokio's `s.deadline.std.0.t.tv_sec`: root `s`, four members below the last).
#[test]
fn chain_shapes_lowered_at_compile_time_are_those_walked() {
    use layoutdump_lang::program::{Expr, ExprId};
    let mut longest = 0;
    for (name, _) in shipped().0 {
        let program = compile(shipped().load(name).unwrap(), &shipped()).unwrap();
        assert_eq!(program.chains.len(), program.exprs.len(), "{name}");
        let by_hand = layoutdump_lang::Program {
            chains: Vec::new(),
            ..program.clone()
        };
        for i in 0..program.exprs.len() {
            let id = ExprId(i as u32);
            let (root, inner) = program.chain_shape(id);
            assert_eq!(
                (root, inner),
                by_hand.chain_shape(id),
                "{name}: expression {i}"
            );
            assert!(
                !matches!(program.expr(root), Expr::Field(..)),
                "{name}: {i}"
            );
            longest = longest.max(inner);
        }
    }
    assert!(
        longest >= 4,
        "the longest chain has {longest} members below its last"
    );
}

#[test]
fn compiled_shipped_layouts() {
    for name in [
        "tokio",
        "smol",
        "async-std",
        "futures-executor",
        "embassy",
        "monoio",
        "compio",
        "glommio",
    ] {
        let main = shipped().load(name).unwrap();
        let p = compile(main, &shipped()).unwrap_or_else(|d| panic!("{name}: {d}"));
        let listing = p.listing();
        insta::assert_snapshot!(format!("compiled-{name}"), listing);
    }
}

#[test]
fn tokio_and_std_compile() {
    let main = shipped().load("tokio").unwrap();
    let p = compile(main, &shipped()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!((p.name.as_str(), p.version.as_str()), ("tokio", "1.54"));
    assert_eq!(
        p.files.len(),
        8,
        "tokio, std, futures, tracing, hyper, tower, tonic and actix"
    );
    // The runtime root, the two block_on frame roots, and the LocalSet scan.
    assert_eq!(p.roots.len(), 4);
    assert_eq!(
        p.roots[0].kind,
        RootKind::Tls("tokio::runtime::context::CONTEXT".into())
    );
    assert_eq!(
        p.roots[1].kind,
        RootKind::Frame {
            function: "tokio::runtime::park::CachedParkThread::block_on".into(),
            local: "f".into()
        }
    );
    assert_eq!(p.roots[1].yields, RuleKind::Future);
    assert!(matches!(
        &p.roots[3].kind,
        RootKind::Scan { object, field, slot: Some(0), param: Some((s, _)), .. }
            if object == "tokio::runtime::task::core::Header" && field == "vtable" && s == "S"
    ));
    let count = |k: RuleKind| p.rules.iter().filter(|r| r.kind == k).count();
    assert_eq!(
        count(RuleKind::Runtime),
        3,
        "multi_thread, current_thread and LocalSet"
    );
    assert_eq!(count(RuleKind::Task), 1);
    assert!(
        count(RuleKind::Future) >= 1 && count(RuleKind::Leaf) >= 1,
        "combinators and leaves"
    );
    assert_eq!(p.rules[3].kind, RuleKind::Task, "rules keep layout order");
    let task = &p.rules[3];
    let names: Vec<&str> = task.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["cell", "id", "state", "flags", "refs", "future"]);
    assert!(task.members[0].is_let);
    // No name is left unresolved after compiling: `Expr` has no such variant (its
    // `Unresolved` holds a type with no values), so there is nothing to look for.
}

#[test]
fn errors_from_every_file_are_collected() {
    let files = Files(vec![("lib", "fn ok(x) = x.a\nfn bad(x) = nope(x)\n")]);
    let main = SourceFile {
        name: "main.layout".into(),
        text: "use lib\nuse missing\nfn f(y) = z\n".into(),
    };
    let diags = compile(main, &files).unwrap_err();
    let text = diags.to_string();
    assert!(
        text.contains("main.layout:2:1: error: cannot use layout `missing`"),
        "{text}"
    );
    assert!(
        text.contains("main.layout:3:11: error: unknown name `z`"),
        "{text}"
    );
    assert!(
        text.contains("lib.layout:2:13: error: unknown function `nope`"),
        "{text}"
    );
    assert!(text.ends_with("3 errors in layout"), "{text}");
}

#[test]
fn use_cycles_terminate() {
    let files = Files(vec![("a", "use b\n"), ("b", "use a\n")]);
    let main = SourceFile {
        name: "main.layout".into(),
        text: "use a\n".into(),
    };
    compile(main, &files).expect("a cycle of uses loads each file once");
}

#[test]
fn syntax_errors_name_what_was_expected() {
    let main = SourceFile {
        name: "m.layout".into(),
        text: "layout m \"1\"\nview Foo as f { deref = }\n".into(),
    };
    let text = compile(main, &shipped()).unwrap_err().to_string();
    assert!(
        text.starts_with("m.layout:2:25: error: syntax error: expected"),
        "{text}"
    );
    assert!(text.contains("an expression"), "{text}");
}

/// A member named like the rule's subject would hide it from the members after it (a
/// monoio leaf once computed an op's state from its own type name): an error at the member.
#[test]
fn a_member_cannot_take_the_subjects_name() {
    let text =
        "layout t \"1\"\nleaf a::Op as op {\n    kind = \"x\"\n    op = 1\n    more = op\n}\n";
    let main = SourceFile {
        name: "t.layout".into(),
        text: text.into(),
    };
    let err = compile(main, &Files(vec![])).expect_err("a member named like the subject");
    let shown = err.to_string();
    assert!(
        shown.contains("t.layout:4:5")
            && shown.contains("member `op` has the name of the rule's subject"),
        "{shown}"
    );
}

#[test]
fn size_of_range_and_if_compile_to_builtins() {
    let text = "layout t \"1\"\nfn walk(t, h) = for i in range(size_of((u64, u8)) + h) => if(i % 2, i, range(0))\nview a::B as b { items = walk(b, 1) }\n";
    let main = SourceFile {
        name: "t.layout".into(),
        text: text.into(),
    };
    let p = compile(main, &Files(vec![])).unwrap_or_else(|d| panic!("{d}"));
    let listing = p.listing();
    assert!(
        listing.contains(
            "for $2 in range((size_of((0 as (u64, u8))) + $1)) => if(($2 % 2), $2, range(0))"
        ),
        "{listing}"
    );
}
