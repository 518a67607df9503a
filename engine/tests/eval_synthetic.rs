//! The evaluator on synthetic memory with real DWARF: this test binary's own debug info
//! describes the structs below; their bytes are copied into a `SliceMemory` at their real
//! addresses, then patched to be hostile (cycles, lying lengths, nulls, bad tags).

use std::sync::OnceLock;

use layoutdump_engine::dwarf::DebugInfo;
use layoutdump_engine::eval::{EvalError, Evaluator, Limits, Value};
use layoutdump_engine::memory::SliceMemory;
use layoutdump_lang::{Loader, Program, SourceFile};

#[repr(C)]
pub struct Node {
    pub value: u64,
    pub next: *const Node,
}

#[repr(C)]
pub struct FakeVec {
    pub ptr: *const u32,
    pub len: usize,
}

pub enum Shape {
    Empty,
    Circle(u32),
    Rect { w: u16, h: u16 },
}

pub struct Holder {
    pub head: *const Node,
    pub fake: FakeVec,
    pub real: Vec<u32>,
    pub maybe: Option<u32>,
    pub niche: Option<&'static u64>,
    pub shape: Shape,
}

fn debug_info() -> &'static DebugInfo {
    static DBG: OnceLock<DebugInfo> = OnceLock::new();
    DBG.get_or_init(|| {
        DebugInfo::load(&std::env::current_exe().unwrap()).expect("test binary has DWARF")
    })
}

struct NoUse;
impl Loader for NoUse {
    fn load(&self, name: &str) -> Result<SourceFile, String> {
        layoutdump_engine::layout_loader::LayoutLoader { dir: None }.load(name)
    }
}

const LAYOUT: &str = r#"
layout synthetic "0"
use std
view eval_synthetic::FakeVec as v { items = slice(v.ptr, v.len) }
runtime eval_synthetic::Holder as h {
    nodes = list(h.head, n => n.next)
    values = for n in list(h.head, n => n.next) => n.value + 0
    pairs = for n in list(h.head, n => n.next) => for m in list(h.head, m => m.next) => n.value * 10 + m.value
    suffixes = for s in suffix_walks(h) => s.value + 0
    fake_len = len(h.fake)
    fake = for x in h.fake => x + 0
    real = for x in h.real => x + 0
    real_len = len(h.real)
    maybe = h.maybe + 0
    niche = **h.niche + 0
    shape = variant(h.shape)
    width = h.shape.Rect.w + 0
}
# A `for` whose body walks a list: the lists are walked in parallel.
fn suffix_walks(h) = for n in list(h.head, n => n.next) => list(n, m => m.next)
"#;

fn program() -> Program {
    layout("synthetic.layout", LAYOUT)
}

/// A rule's members by name, as `eval_members` gives them, and the steps they took.
type Evaluated<'r> = (Vec<(&'r str, Result<Value, EvalError>)>, u64);

/// The members of `rule` evaluated on the holder `h`, and the steps they took.
fn members_on<'r>(
    ev: &Evaluator<'_>,
    rule: &'r layoutdump_lang::program::Rule,
    h: &Holder,
) -> Evaluated<'r> {
    let ty = debug_info().type_named("eval_synthetic::Holder").unwrap();
    let subject = Value::Place {
        addr: h as *const Holder as u64,
        ty,
    };
    let before = ev.steps_used();
    let out = ev.eval_members(&rule.members, rule.frame_size, subject);
    (out.into_vec(), ev.steps_used() - before)
}

/// One member's result on the holder `h`, and the steps the rule took.
fn member_on(
    ev: &Evaluator<'_>,
    rule: &layoutdump_lang::program::Rule,
    h: &Holder,
    name: &str,
) -> (Result<Value, EvalError>, u64) {
    let (out, steps) = members_on(ev, rule, h);
    let r = out.into_iter().find(|(n, _)| *n == name).unwrap().1;
    (r, steps)
}

/// A layout of the test's own, compiled.
fn layout(name: &str, text: &str) -> Program {
    let src = SourceFile {
        name: name.into(),
        text: text.into(),
    };
    layoutdump_lang::compile(src, &NoUse).unwrap_or_else(|d| panic!("{d}"))
}

/// Copies `value`'s bytes into `mem` at its own address.
fn copy<T>(mem: &mut SliceMemory, value: &T) {
    let addr = value as *const T as u64;
    let bytes =
        unsafe { std::slice::from_raw_parts(value as *const T as *const u8, size_of::<T>()) };
    mem.insert(addr, bytes.to_vec());
}

/// Each reported member's name and value.
type Members = Vec<(String, Result<Value, EvalError>)>;

fn eval_all(mem: &SliceMemory, holder: &Holder, limits: Limits) -> (Members, Vec<String>) {
    let program = program();
    let dbg = debug_info();
    let ty = dbg
        .type_named("eval_synthetic::Holder")
        .expect("Holder in DWARF");
    let ev = Evaluator::new(&program, dbg, mem, 0, limits);
    let rule = &program.rules[0];
    let subject = Value::Place {
        addr: holder as *const Holder as u64,
        ty,
    };
    let out = ev
        .eval_members(&rule.members, rule.frame_size, subject)
        .into_iter()
        .map(|(name, r)| (name.to_string(), r))
        .collect();
    let warnings = ev.warnings.borrow().clone();
    (out, warnings)
}

fn get<'a>(
    out: &'a [(String, Result<Value, EvalError>)],
    name: &str,
) -> &'a Result<Value, EvalError> {
    &out.iter().find(|(n, _)| n == name).unwrap().1
}

fn ints(v: &Result<Value, EvalError>) -> Vec<i128> {
    match v {
        Ok(Value::Seq(items)) => items
            .iter()
            .map(|i| {
                if let Value::Int(n) = i {
                    *n
                } else {
                    panic!("{i:?}")
                }
            })
            .collect(),
        other => panic!("not a sequence of numbers: {other:?}"),
    }
}

/// A holder of the list at `head` and of `shape`, its other members empty (boxed, so
/// that the address copied stays its own).
fn holder(head: *const Node, shape: Shape) -> Box<Holder> {
    Box::new(Holder {
        head,
        fake: FakeVec {
            ptr: std::ptr::null(),
            len: 0,
        },
        real: Vec::new(),
        maybe: None,
        niche: None,
        shape,
    })
}

/// A holder whose list has `len` nodes valued 0, 1, …; the last links back to node
/// `back_to` (a cycle) or ends. `mem` holds the nodes and the holder (boxed, so that
/// the addresses copied stay theirs).
struct Chain {
    /// Made once at its length and never grown: the nodes do not move.
    nodes: Vec<Node>,
    holder: Box<Holder>,
    mem: SliceMemory,
}

fn chain(len: usize, back_to: Option<usize>) -> Chain {
    let mut nodes: Vec<Node> = (0..len)
        .map(|i| Node {
            value: i as u64,
            next: std::ptr::null(),
        })
        .collect();
    let at = nodes.as_ptr();
    for (i, node) in nodes.iter_mut().enumerate() {
        node.next = match (i + 1 < len, back_to) {
            (true, _) => at.wrapping_add(i + 1),
            (false, Some(to)) => at.wrapping_add(to),
            (false, None) => std::ptr::null(),
        };
    }
    let holder = holder(at, Shape::Empty);
    let mut mem = SliceMemory::new();
    for n in &nodes {
        copy(&mut mem, n);
    }
    copy(&mut mem, &*holder);
    Chain { nodes, holder, mem }
}

static TARGET: u64 = 77;

#[test]
fn honest_memory_decodes_everything() {
    let n3 = Node {
        value: 3,
        next: std::ptr::null(),
    };
    let n2 = Node {
        value: 2,
        next: &n3,
    };
    let n1 = Node {
        value: 1,
        next: &n2,
    };
    let backing = [10u32, 20, 30];
    let holder = Holder {
        head: &n1,
        fake: FakeVec {
            ptr: backing.as_ptr(),
            len: 3,
        },
        real: vec![4, 5],
        maybe: Some(9),
        niche: Some(&TARGET),
        shape: Shape::Rect { w: 640, h: 480 },
    };
    let mut mem = SliceMemory::new();
    copy(&mut mem, &n1);
    copy(&mut mem, &n2);
    copy(&mut mem, &n3);
    copy(&mut mem, &backing);
    copy(&mut mem, &holder);
    mem.insert(holder.real.as_ptr() as u64, vec![4, 0, 0, 0, 5, 0, 0, 0]);
    copy(&mut mem, &TARGET);

    let (out, warnings) = eval_all(&mem, &holder, Limits::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(ints(get(&out, "values")), vec![1, 2, 3]);
    assert_eq!(
        ints(get(&out, "pairs")),
        vec![11, 12, 13, 21, 22, 23, 31, 32, 33]
    );
    assert_eq!(ints(get(&out, "fake")), vec![10, 20, 30]);
    assert_eq!(ints(get(&out, "real")), vec![4, 5]);
    assert_eq!(get(&out, "real_len"), &Ok(Value::Int(2)));
    assert_eq!(get(&out, "fake_len"), &Ok(Value::Int(3)));
    assert_eq!(get(&out, "maybe"), &Ok(Value::Int(9)));
    assert_eq!(get(&out, "niche"), &Ok(Value::Int(77)));
    assert_eq!(get(&out, "shape"), &Ok(Value::Str("Rect".into())));
    assert_eq!(get(&out, "width"), &Ok(Value::Int(640)));
    std::hint::black_box((Shape::Empty, Shape::Circle(1)));

    // A `for` yielding more than `--limit-items` (a runtime with one task too many) keeps
    // the limit's worth and says so. It used to drop everything: found on a
    // 1,000,001-task dump, whose runtime was listed with no tasks.
    let limits = Limits {
        items: 5,
        ..Limits::default()
    };
    let (out, warnings) = eval_all(&mem, &holder, limits);
    assert_eq!(ints(get(&out, "pairs")), vec![11, 12, 13, 21, 22]);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("item limit 5 reached") && w.contains("--limit-items")),
        "{warnings:?}"
    );
}

#[test]
fn hostile_memory_is_bounded_and_reported() {
    // A cycle: n1 -> n2 -> n1.
    let mut n1 = Node {
        value: 1,
        next: std::ptr::null(),
    };
    let n2 = Node {
        value: 2,
        next: &n1,
    };
    n1.next = &n2;
    let backing = [10u32; 4];
    let holder = Holder {
        head: &n1,
        // A lying length: 2^60 elements.
        fake: FakeVec {
            ptr: backing.as_ptr(),
            len: 1 << 60,
        },
        real: Vec::new(),
        maybe: None,
        niche: None,
        shape: Shape::Circle(5),
    };
    let mut mem = SliceMemory::new();
    copy(&mut mem, &n1);
    copy(&mut mem, &n2);
    copy(&mut mem, &holder);

    let (out, warnings) = eval_all(
        &mem,
        &holder,
        Limits {
            items: 1000,
            ..Limits::default()
        },
    );
    assert_eq!(
        ints(get(&out, "values")),
        vec![1, 2],
        "the cycle is cut after each node once"
    );
    assert!(
        warnings.iter().any(|w| w.contains("seen twice")),
        "{warnings:?}"
    );
    assert!(
        matches!(
            get(&out, "fake"),
            Err(EvalError::Limit { what: "items", .. })
        ),
        "{:?}",
        get(&out, "fake")
    );
    assert_eq!(ints(get(&out, "real")), Vec::<i128>::new());
    assert!(
        matches!(get(&out, "maybe"), Err(e) if e.is_absent()),
        "None is reported as such"
    );
    assert!(matches!(get(&out, "niche"), Err(e) if e.is_absent()));
    match get(&out, "width") {
        Err(EvalError::Inactive { active, wanted, .. }) => {
            assert_eq!((&**active, wanted.as_str()), ("Circle", "Rect"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_memory_is_a_value_not_a_crash() {
    let n2 = Node {
        value: 2,
        next: 0xdead_0000 as *const Node,
    };
    let n1 = Node {
        value: 1,
        next: &n2,
    };
    let holder = Holder {
        head: &n1,
        fake: FakeVec {
            ptr: 0x10 as *const u32,
            len: 2,
        },
        real: Vec::new(),
        maybe: Some(1),
        niche: None,
        shape: Shape::Empty,
    };
    let mut mem = SliceMemory::new();
    copy(&mut mem, &n1);
    copy(&mut mem, &n2);
    copy(&mut mem, &holder);
    let (out, warnings) = eval_all(&mem, &holder, Limits::default());
    // The list keeps what it read and says where it stopped.
    assert_eq!(
        ints(get(&out, "values")).len(),
        2,
        "{:?}",
        get(&out, "values")
    );
    assert!(
        warnings.iter().any(|w| w.contains("0xdead0000")),
        "{warnings:?}"
    );
    match get(&out, "fake") {
        Err(EvalError::Memory(e)) => assert!(e.to_string().contains("0x10"), "{e}"),
        other => panic!("{other:?}"),
    }
}

async fn parked_here(n: u32) -> u32 {
    std::future::pending::<()>().await; // AWAIT_LINE
    n
}

#[test]
fn coroutine_variants_carry_the_await_line_and_file() {
    drop(std::hint::black_box(parked_here(1)));
    let dbg = debug_info();
    let id = dbg
        .type_named("eval_synthetic::parked_here::{async_fn_env#0}")
        .expect("async fn env in DWARF");
    let ty = dbg.ty(id).unwrap();
    let layoutdump_engine::dwarf::TypeKind::Struct {
        variants: Some(vp), ..
    } = &ty.kind
    else {
        panic!("not a coroutine: {:?}", ty.kind)
    };
    let suspend0 = vp
        .variants
        .iter()
        .find(|v| v.discr_value == Some(3))
        .expect("Suspend0 has tag 3");
    let source = include_str!("eval_synthetic.rs");
    let line = source
        .lines()
        .position(|l| l.ends_with("// AWAIT_LINE"))
        .unwrap() as u64
        + 1;
    assert_eq!(suspend0.field.decl_line, Some(line));
    let file = dbg
        .decl_file(id, suspend0.field.decl_file.unwrap())
        .unwrap()
        .unwrap();
    assert!(file.ends_with("engine/tests/eval_synthetic.rs"), "{file}");
}

/// A list with a tail into a cycle (0 → 1 → … → 6 → 3): cut where the first node comes
/// round again, with that node named, whatever the item limit past that point.
#[test]
fn a_cycle_after_a_tail_is_cut_at_its_first_repeat() {
    let Chain { nodes, holder, mem } = chain(7, Some(3));
    let again = format!("node {:#x} seen twice", &nodes[3] as *const Node as u64);
    // 8 and 9: the limit falls after the first repeat (item 7) but before the cycle is
    // noticed by the walk itself; 1000: far past it.
    for items in [8, 9, 1000] {
        let (out, warnings) = eval_all(
            &mem,
            &holder,
            Limits {
                items,
                ..Limits::default()
            },
        );
        assert_eq!(
            ints(get(&out, "values")),
            vec![0, 1, 2, 3, 4, 5, 6],
            "limit {items}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&again) && w.contains("stopped after 7 items")),
            "limit {items}: {warnings:?}"
        );
        // (The layout's `pairs`, a `for` of 49 items, meets the limit on its own.)
        assert!(
            !warnings
                .iter()
                .any(|w| w.starts_with("list at") && w.contains("item limit")),
            "limit {items}: {warnings:?}"
        );
    }
    // A limit before the repeat cuts the list there, and says so.
    let (out, warnings) = eval_all(
        &mem,
        &holder,
        Limits {
            items: 5,
            ..Limits::default()
        },
    );
    assert_eq!(ints(get(&out, "values")), vec![0, 1, 2, 3, 4]);
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("list at") && w.contains("item limit 5 reached")),
        "{warnings:?}"
    );
}

/// A member access replayed from the evaluator's routes counts the steps it took the
/// long way: a second pass over the same values takes as many steps as the first, so
/// what `--limit-steps` cuts does not depend on what an evaluator has seen before.
#[test]
fn a_replayed_access_counts_the_steps_of_the_long_way() {
    let Chain { holder, mem, .. } = chain(3, None);
    let program = program();
    let dbg = debug_info();
    let ty = dbg.type_named("eval_synthetic::Holder").unwrap();
    let ev = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    let rule = &program.rules[0];
    let subject = Value::Place {
        addr: &*holder as *const Holder as u64,
        ty,
    };
    let first = ev.eval_members(&rule.members, rule.frame_size, subject.clone());
    let long_way = ev.steps_used();
    let second = ev.eval_members(&rule.members, rule.frame_size, subject);
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
    assert!(long_way > 0);
    assert_eq!(ev.steps_used(), 2 * long_way);
}

/// A rule's first members given as evaluated before (a listed task's cast and id, kept
/// from listing it): the members after them read as evaluating all of them does, with
/// the same steps; where those steps would pass the step limit, nothing is counted and
/// the caller is told to take the long way (which stops where the limit falls).
#[test]
fn members_after_known_ones_read_and_count_as_all_of_them() {
    let Chain { holder, mem, .. } = chain(3, None);
    let program = program();
    let dbg = debug_info();
    let rule = &program.rules[0];
    assert!(
        rule.members.iter().all(|m| !m.is_let),
        "each member is reported"
    );
    let ty = dbg.type_named("eval_synthetic::Holder").unwrap();
    let subject = Value::Place {
        addr: &*holder as *const Holder as u64,
        ty,
    };
    let fresh = |steps: u64| {
        let limits = Limits {
            steps,
            ..Limits::default()
        };
        Evaluator::new(&program, dbg, &mem, 0, limits)
    };
    let all = fresh(Limits::default().steps);
    let every = all.eval_members(&rule.members, rule.frame_size, subject.clone());
    let total = all.steps_used();
    let mut tried = 0;
    for known in 1..rule.members.len() {
        let lister = fresh(Limits::default().steps);
        let values =
            lister.eval_member_values(&rule.members[..known], rule.frame_size, subject.clone());
        let Ok(values) = values.into_iter().collect::<Result<Vec<Value>, _>>() else {
            break;
        };
        let steps = lister.steps_used();
        let reader = fresh(Limits::default().steps);
        let mut rest = layoutdump_engine::eval::Members::new();
        assert!(reader.eval_members_after(
            &rule.members,
            rule.frame_size,
            subject.clone(),
            (&values, steps),
            &mut rest
        ));
        assert_eq!(
            format!("{:?}", &rest[..]),
            format!("{:?}", &every[known..]),
            "{known} known"
        );
        assert_eq!(reader.steps_used(), total, "{known} known");
        let limited = fresh(steps - 1);
        assert!(!limited.eval_members_after(
            &rule.members,
            rule.frame_size,
            subject.clone(),
            (&values, steps),
            &mut rest
        ));
        assert_eq!(limited.steps_used(), 0, "nothing counted past the limit");
        tried += 1;
    }
    assert!(tried >= 3, "members known before: {tried} tried");
}

/// A chain of members (`h.shape.Rect.w`) is replayed as one route from the holder's
/// type. Where the route no longer holds (the shape is a Circle now), the evaluation
/// takes the long way: the error and the steps are those of an evaluator that never
/// saw a Rect, and a Rect after it is read again.
#[test]
fn a_chain_replayed_where_its_route_fails_reads_as_the_long_way() {
    let rect = holder(std::ptr::null(), Shape::Rect { w: 7, h: 9 });
    let circle = holder(std::ptr::null(), Shape::Circle(3));
    let mut mem = SliceMemory::new();
    copy(&mut mem, &*rect);
    copy(&mut mem, &*circle);
    let program = program();
    let dbg = debug_info();
    let rule = &program.rules[0];
    let width = |ev: &Evaluator<'_>, holder: &Holder| {
        let (r, steps) = member_on(ev, rule, holder, "width");
        (format!("{r:?}"), steps)
    };
    let seen_rect = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    let (first, _) = width(&seen_rect, &rect);
    assert_eq!(first, "Ok(Int(7))");
    let fresh = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    let long_way = width(&fresh, &circle);
    assert!(long_way.0.contains("active: \"Circle\""), "{long_way:?}");
    assert_eq!(width(&seen_rect, &circle), long_way);
    assert_eq!(width(&seen_rect, &rect).0, first);
}

/// A chain of members counts each of its links as an evaluation, however far it gets, as
/// the links evaluated one inside the other did: `h.niche.Some.a.b` on a `None` is five
/// steps (four members and `h`), though it fails at its second member (counting only the
/// links it reached made it four); `h.niche` is two.
/// A failed chain records no route, so a second pass counts the same.
#[test]
fn a_failing_chain_counts_every_link() {
    const CHAINS: &str = r#"
layout chains "0"
runtime eval_synthetic::Holder as h {
    deep = h.niche.Some.a.b
    shallow = h.niche
}
"#;
    let program = layout("chains.layout", CHAINS);
    let dbg = debug_info();
    let ty = dbg.type_named("eval_synthetic::Holder").unwrap();
    let none = holder(std::ptr::null(), Shape::Empty);
    let mut mem = SliceMemory::new();
    copy(&mut mem, &*none);
    let ev = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    let rule = &program.rules[0];
    let subject = Value::Place {
        addr: &*none as *const Holder as u64,
        ty,
    };
    for pass in 1..=2 {
        let out = ev.eval_members(&rule.members, rule.frame_size, subject.clone());
        assert!(out[0].1.is_err(), "{out:?}");
        assert!(out[1].1.is_ok(), "{out:?}");
        assert_eq!(ev.steps_used(), pass * 7);
    }
}

/// A value that cannot be a number for a reason of its type (`h + 1` through the view's
/// `deref` reaches a `Node`, a struct of two fields) fails the same way whenever the
/// route to that type holds: the second time from the route recorded the first, with
/// the same error and steps. Where the route no longer holds (a null `head`), the error
/// and steps are those of an evaluator that never saw the first.
#[test]
fn a_failure_of_the_type_is_replayed_only_where_its_route_holds() {
    const FAILS: &str = r#"
layout fails "0"
view eval_synthetic::Holder as h { deref = *h.head }
runtime eval_synthetic::Holder as h {
    n = h + 1
}
"#;
    let program = layout("fails.layout", FAILS);
    let dbg = debug_info();
    let Chain {
        holder, mut mem, ..
    } = chain(1, None);
    let empty = self::holder(std::ptr::null(), Shape::Empty);
    copy(&mut mem, &*empty);
    let rule = &program.rules[0];
    let n = |ev: &Evaluator<'_>, h: &Holder| member_on(ev, rule, h, "n");
    let ev = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    let first = n(&ev, &holder);
    assert!(
        matches!(&first.0, Err(EvalError::NotA { ty, .. }) if ty.ends_with("Node")),
        "{first:?}"
    );
    assert_eq!(n(&ev, &holder), first);
    let fresh = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    let long_way = n(&fresh, &empty);
    assert!(
        matches!(long_way.0, Err(EvalError::NullPointer { .. })),
        "{long_way:?}"
    );
    assert_eq!(n(&ev, &empty), long_way);
    assert_eq!(n(&ev, &holder), first);
}

/// Arithmetic over members is compiled after its first evaluation (see `eval::arith`);
/// the compiled form gives what the long way gives, in results, errors and steps: on the
/// next holder, on one whose route breaks (a null `head`), on a division by zero, and
/// with the step limit falling anywhere inside the expression.
#[test]
fn compiled_arithmetic_reads_as_the_long_way() {
    const ARITH: &str = r#"
layout arith "0"
runtime eval_synthetic::Holder as h {
    let n = *h.head
    total = (n.value + h.fake.len) * 3 - -1
    ratio = h.head.value / h.fake.len
    small = !(h.fake.len >> 1) + (n.value < 9)
    gap = addr(n) - addr(h) + h.fake.len
    deep = n.value + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1
}
"#;
    let program = layout("arith.layout", ARITH);
    let dbg = debug_info();
    // The chain's node (value 0) and its holder's memory; the holders read are these.
    let Chain {
        holder: listed,
        mut mem,
        ..
    } = chain(1, None);
    let mut holder = self::holder(listed.head, Shape::Empty);
    holder.fake.len = 2;
    copy(&mut mem, &*holder);
    let mut zero = self::holder(listed.head, Shape::Empty);
    zero.fake.len = 0;
    copy(&mut mem, &*zero);
    let mut null = self::holder(std::ptr::null(), Shape::Empty);
    null.fake.len = 3;
    copy(&mut mem, &*null);
    let rule = &program.rules[0];
    let all = |ev: &Evaluator<'_>, h: &Holder| {
        let (out, steps) = members_on(ev, rule, h);
        (format!("{out:?}"), steps)
    };
    let fresh = |h: &Holder, steps: u64| {
        let limits = Limits {
            steps,
            ..Limits::default()
        };
        all(&Evaluator::new(&program, dbg, &mem, 0, limits), h)
    };
    let long_way = fresh(&holder, u64::MAX);
    let gap = listed.head as i128 - &*holder as *const Holder as i128 + 2;
    // `deep` is deeper than a compiled program may be: always the long way.
    let sums = [
        ("total", 7),
        ("ratio", 0),
        ("small", 1),
        ("gap", gap),
        ("deep", 20),
    ];
    for (name, value) in sums {
        let want = format!("\"{name}\", Ok(Int({value})))");
        assert!(long_way.0.contains(&want), "{want} in {long_way:?}");
    }
    let warm = Evaluator::new(&program, dbg, &mem, 0, Limits::default());
    assert_eq!(all(&warm, &holder), long_way);
    for h in [&holder, &zero, &null, &holder] {
        assert_eq!(all(&warm, h), fresh(h, u64::MAX));
    }
    assert!(all(&warm, &zero).0.contains("division by zero"));
    let broken = all(&warm, &null);
    assert!(broken.0.contains("NullPointer"), "{broken:?}");
    // The limit met at each step of the rule: the warmed evaluator (compiled) stops
    // where a fresh one (the long way) stops.
    let (_, steps) = long_way;
    for left in 0..=steps + 1 {
        let warm_limited = Evaluator::new(
            &program,
            dbg,
            &mem,
            0,
            Limits {
                steps: steps + left,
                ..Limits::default()
            },
        );
        all(&warm_limited, &holder);
        // The error names the run's limit, which the two set differently.
        let (warm, warm_steps) = all(&warm_limited, &holder);
        let warm = warm.replace(&format!("limit: {}", steps + left), "limit: L");
        let (long, long_steps) = fresh(&holder, left);
        let long = long.replace(&format!("limit: {left}"), "limit: L");
        assert_eq!((warm, warm_steps), (long, long_steps), "limit {left}");
    }
}

/// A `for` whose items each walk a list walks them on several threads; the lists are
/// joined in item order and the item limit cuts the join where a sequential walk would,
/// with its warning.
#[test]
fn lists_walked_in_parallel_join_in_order_and_stop_at_the_item_limit() {
    let Chain { holder, mem, .. } = chain(3, None);
    let (out, warnings) = eval_all(&mem, &holder, Limits::default());
    assert_eq!(ints(get(&out, "suffixes")), vec![0, 1, 2, 1, 2, 2]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let items = Limits {
        items: 4,
        ..Limits::default()
    };
    let (out, warnings) = eval_all(&mem, &holder, items);
    assert_eq!(ints(get(&out, "suffixes")), vec![0, 1, 2, 1]);
    // Line 20: `suffix_walks`, once (its inner lists are each within the limit).
    let cut: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("synthetic.layout:20:"))
        .collect();
    assert_eq!(cut.len(), 1, "{warnings:?}");
    assert!(cut[0].contains("item limit 4 reached"), "{cut:?}");
}
