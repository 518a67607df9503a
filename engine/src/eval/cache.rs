//! Per-evaluator caches of what depends only on a type, a code address or a rule, never on
//! the task read (decoded types, generic parameters, cast targets, matching rules): DWARF
//! and string work once per distinct type. Each evaluator owns its own: no locks.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use layoutdump_lang::program::{ExprId, RuleKind};
use rustc_hash::FxHashMap;

use crate::dwarf::{DieId, Type};

/// Entries of a cache keyed by an address read from the dump (a function pointer): past
/// this, lookups that miss are worked out each time instead of remembered.
pub const MAX_BY_ADDRESS: usize = 1 << 16;

/// Generic parameters bound by a cast (`with T, S from fn …`): up to this many are
/// cached; a cast with more is resolved each time (none of the shipped layouts has one).
pub const CAST_KEY_PARAMS: usize = 4;

/// A function's generic parameters, by name, as DWARF gives them.
pub type Params = Arc<[(Arc<str>, DieId)]>;
/// A cast and the types bound to its variables (None past the bound ones).
pub type CastKey = (ExprId, [Option<DieId>; CAST_KEY_PARAMS]);
/// A view's index and its member's index in the program.
pub type ViewMember = (usize, usize);
/// Indexes into the program's rules. An evaluator's own (`Rc`): the cache hands out a
/// clone per lookup, and an atomic count was a lock-prefixed add and subtract each time.
pub type RuleSet = Rc<[usize]>;

#[derive(Default)]
pub struct Caches {
    /// This evaluator's own copy of each type, names included (`Type::unshared`): handing
    /// out a shared `Arc` made the two workers' reference counts bounce one cache line
    /// between cores (10% of a run).
    pub types: RefCell<FxHashMap<DieId, Rc<Type>>>,
    /// Template parameters of the function containing a link address; None: no function.
    pub fn_params: RefCell<FxHashMap<u64, Option<Params>>>,
    /// The type a cast names, by the cast and the types bound to its variables.
    pub casts: RefCell<FxHashMap<CastKey, DieId>>,
    /// The type a `from fn` cast names, by the cast and the function's address: every
    /// tokio task's `Cell<T, S>` in one lookup (not the function's parameters, then the
    /// cast's).
    pub fn_casts: RefCell<FxHashMap<(ExprId, u64), DieId>>,
    /// The layout's member names as this evaluator's own `Arc`s: a report's maps are
    /// keyed by them, and a million tasks' `refs` are then one string, not a million.
    pub names: RefCell<FxHashMap<NameKey, smol_str::SmolStr>>,
    /// Indexes of the rules of a kind whose pattern matches the type (guards not applied).
    pub rules: RefCell<FxHashMap<(RuleKind, DieId), RuleSet>>,
    /// What an await frame shows for a future type in one of its states (variant index;
    /// `usize::MAX` for a future that is not a coroutine).
    pub frames: RefCell<FxHashMap<(DieId, usize), Rc<FrameFacts>>>,
    /// Where a future's generic descent looks (`descent::routes`), by the future's type.
    pub routes: RefCell<FxHashMap<DieId, Rc<[super::route::Route]>>>,
    /// Index of the struct field of that name, if the type has one.
    pub fields: RefCell<FxHashMap<(DieId, NameKey), Option<usize>>>,
    /// The view and member index of a view member of that name, if the type's view has one.
    pub view_members: RefCell<FxHashMap<(DieId, NameKey), Option<ViewMember>>>,
    /// What a site does from a type (`plan`): the route it takes, or the route to where
    /// it fails.
    pub plans: RefCell<FxHashMap<(super::plan::Site, DieId), Known>>,
    /// For a type that stands for a number: the route to the number's bytes and how to
    /// read them (its `Site::Number` plan and the final type's reading, in one lookup).
    pub numbers: RefCell<FxHashMap<DieId, Number>>,
    /// The place a `static(PATH)` names, by the expression (a lookup by name in the
    /// debug info, done once).
    pub statics: RefCell<FxHashMap<ExprId, StaticPlace>>,
    /// Arithmetic expressions compiled (see `arith`), by `ExprId`.
    pub arith: RefCell<Vec<super::arith::Compiled>>,
}

/// A static's link-time address and type, or why the binary has none by that name.
pub type StaticPlace = Result<(u64, DieId), String>;

/// How a value of some type is read as a number (see `Caches::numbers`).
pub struct Number {
    pub planned: Planned,
    pub read: ReadNumber,
    /// A report shows a value of this type as this number: it is not a pointer (shown
    /// as an address) and no view gives it a `show` (see `Evaluator::shown_number`).
    pub shown: bool,
}

/// The bytes of a number, by the kind of its type.
#[derive(Debug, Clone, Copy)]
pub enum ReadNumber {
    Int {
        size: u8,
        signed: bool,
    },
    /// A `bool`'s byte: a number in arithmetic, `true`/`false` in a report.
    Bool,
    Pointer,
    CEnum {
        size: u8,
    },
}

/// A recorded route and the steps it took when it was recorded (a replay counts them).
pub type Planned = (super::plan::Plan, u64);

/// What evaluating a site from a type was found to do the first time.
pub enum Known {
    /// It leads to a place by this route.
    Route(Planned),
    /// It is not a plain route (a number, a string, a view that computes): evaluated the
    /// long way each time.
    NotPlain,
    /// It fails, for a reason of the type the route leads to, not of the bytes read: a
    /// struct asked for as a number (an mpsc `Receiver` shown as a local), a missing
    /// member. Where the route still holds, the same error, without working it out
    /// again (a third of the tokio-many tasks hold such a local).
    Fails(Planned, super::EvalError),
}

/// A member name by identity: the names looked up are the layout's own strings (which
/// do not move while it runs) and the evaluator's literals (`"deref"`), so the address
/// and length stand for the text without comparing it. Two copies of one name only
/// miss the cache, never confuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameKey(usize, usize);

impl NameKey {
    pub fn of(name: &str) -> NameKey {
        NameKey(name.as_ptr() as usize, name.len())
    }
}

/// The part of an await frame that depends only on the future's type and state, shared
/// by every task in that state.
pub struct FrameFacts {
    /// Its names, state and await line, as every frame of it shows them.
    pub head: Arc<crate::report::FrameHead>,
    /// The values a coroutine holds in this state, in declaration order, each name once:
    /// name, offset in the state's data, type. Drop flags and the awaitee left out.
    pub saved: Box<[(smol_str::SmolStr, u64, DieId)]>,
    /// The saved values a `holds` rule describes: index in `saved`, the rule's index, and
    /// whether it describes the value's items (a `Vec` of them) rather than the value.
    pub holders: Box<[(usize, usize, bool)]>,
    /// The future it awaits in this state: offset in the state's data, type.
    pub awaitee: Option<(u64, DieId)>,
}
