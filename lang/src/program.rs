//! The compiled layout: a flat program. Expressions live in one arena addressed by
//! `ExprId`, with a parallel span table for messages; rules refer to expressions by id
//! and to bindings by slot number. This is what the interpreter runs.

use crate::source::{SourceFile, Span};
use crate::types::TypeExpr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExprId(pub u32);

/// A binding's place in the frame of the rule, view member or function that declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot(pub u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FnId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Shl,
    Shr,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    const ALL: [BinOp; 15] = [
        BinOp::Or,
        BinOp::And,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::Shl,
        BinOp::Shr,
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Rem,
    ];

    /// The operator as a layout writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "|",
            BinOp::And => "&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }

    /// The operator written `symbol`.
    pub fn from_symbol(symbol: &str) -> Option<BinOp> {
        BinOp::ALL.into_iter().find(|op| op.symbol() == symbol)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    /// `*e`: follow a pointer or reference.
    Deref,
}

/// Functions the interpreter provides. Each one's doc is its entry in docs/language.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `addr(e)`: the address of the place `e` (a number).
    Addr,
    /// `variant(e)`: the name of the active variant of the enum `e` (a string).
    Variant,
    /// `list(first, n => next)`: follows an intrusive list from `first` (a pointer or a
    /// null/None) through `next` until null, a repeat, or the length limit.
    List,
    /// `slice(ptr, len)`: `len` values of the pointee type of `ptr`, laid out contiguously.
    Slice,
    /// `len(seq)`: the number of items of a sequence.
    Len,
    /// `type_name(e)`: the qualified type name of `e` (a string).
    TypeName,
    /// `is_null(e)`: whether the pointer `e` is null (or the Option is None).
    IsNull,
    /// `str(ptr, len)`: the UTF-8 text of `len` bytes at `ptr` (the first 256 shown).
    Str,
    /// `dyn_target(data, vtable)`: the object a trait object points at, typed by its
    /// concrete type, which the vtable's address names.
    DynTarget,
    /// `dump_time()`: when the dump was taken, on the process's monotonic clock
    /// (`CLOCK_MONOTONIC` nanoseconds, what `Instant`s hold), where the dump records it.
    DumpTime,
    /// `range(n)`: the numbers 0 to n - 1, as a sequence (a hash table's bucket indices).
    Range,
    /// `if(cond, then, else)`: `then` when `cond` is not 0, else `else`; only the chosen
    /// one is evaluated, so a recursive `fn` can stop (a B-tree's leaves).
    If,
    /// `size_of(TYPE)` or `size_of(T with T from type v)`: the size in bytes of a type (a
    /// hash table's bucket stride). Its argument is parsed as a type, so it is written
    /// `Call { SizeOf, [0 as TYPE] }` in a compiled program.
    SizeOf,
    /// `align_of(TYPE)` (or with a variable, as `size_of`): the alignment in bytes the
    /// compiler gives the type (a glommio task's future sits at an offset rounded up to it).
    AlignOf,
    /// `task_runtime()`: the runtime whose `tasks` listed the task being read (its runtime
    /// rule's subject), so a task, leaf or future rule can read the runtime's state (the
    /// io_uring rings an operation is in).
    Runtime,
}

impl Builtin {
    /// Every builtin, with its name and how many arguments it takes.
    const ALL: [(Builtin, &'static str, usize); 15] = [
        (Builtin::Addr, "addr", 1),
        (Builtin::Variant, "variant", 1),
        (Builtin::List, "list", 2),
        (Builtin::Slice, "slice", 2),
        (Builtin::Len, "len", 1),
        (Builtin::TypeName, "type_name", 1),
        (Builtin::IsNull, "is_null", 1),
        (Builtin::Str, "str", 2),
        (Builtin::DynTarget, "dyn_target", 2),
        (Builtin::DumpTime, "dump_time", 0),
        (Builtin::Range, "range", 1),
        (Builtin::If, "if", 3),
        (Builtin::SizeOf, "size_of", 1),
        (Builtin::AlignOf, "align_of", 1),
        (Builtin::Runtime, "task_runtime", 0),
    ];

    pub fn by_name(name: &str) -> Option<(Builtin, usize)> {
        let (b, _, arity) = Builtin::ALL.into_iter().find(|(_, n, _)| *n == name)?;
        Some((b, arity))
    }

    /// Every builtin's name, in the order the language reference lists them.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Builtin::ALL.into_iter().map(|(_, n, _)| n)
    }

    /// The name a layout calls it by.
    pub fn name(self) -> &'static str {
        Builtin::ALL
            .into_iter()
            .find(|(b, _, _)| *b == self)
            .map_or("?", |(_, n, _)| n)
    }
}

/// Where the type variables of a cast get their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamSource {
    /// The template parameters of the function at a code address.
    Function,
    /// The generic parameters of a value's type.
    TypeOf,
}

/// An expression of the layout language. `U` is what may still be unresolved: `Named`
/// between parsing and compiling (a name, a call by name, a lambda or `for` whose variable
/// has no slot yet), `Resolved` (a type with no values) in a compiled program, so that
/// nothing unresolved can reach the evaluator.
#[derive(Debug, Clone)]
pub enum ExprOf<U> {
    Int(u64),
    Str(String),
    /// A binding of the enclosing frame: the rule's subject, a `let`, a parameter, a
    /// `for` or lambda variable.
    Local(Slot),
    /// `e.name` (or `e.0`, which means the tuple field `__0`).
    Field(ExprId, String),
    Index(ExprId, ExprId),
    Unary(UnOp, ExprId),
    Binary(BinOp, ExprId, ExprId),
    /// `e as Type` or `e as Cell<T, S> with T, S from fn f`: reinterpret the place `e`
    /// (or the place a pointer or number `e` points at) as another type. With `from fn`,
    /// the type's variables are the template parameters of the function whose code
    /// address is `f`; with `from type v`, the generic parameters of `v`'s type.
    Cast {
        value: ExprId,
        ty: TypeExpr,
        vars: Vec<String>,
        from: Option<(ParamSource, ExprId)>,
    },
    Call {
        func: Builtin,
        args: Vec<ExprId>,
    },
    /// A call of a layout `fn`.
    CallFn {
        func: FnId,
        args: Vec<ExprId>,
    },
    /// A call of a rhai `hook`.
    CallHook {
        hook: HookId,
        args: Vec<ExprId>,
    },
    /// `x => body`, only as an argument of `list`.
    Lambda {
        param: Slot,
        body: ExprId,
    },
    /// `for x in seq [when cond] => body`: a sequence, flattened when `body` is one too.
    /// Items for which `cond` is 0 or cannot be evaluated are skipped (a slab's vacant
    /// entries).
    For {
        var: Slot,
        seq: ExprId,
        filter: Option<ExprId>,
        body: ExprId,
    },
    /// `bits(e) { 0x2 => "done", _ => "idle" }`: the string of the first arm whose mask
    /// has a bit in common with `e` (or the `_` arm).
    Bits {
        value: ExprId,
        arms: Vec<(Option<u64>, String)>,
    },
    /// `flags(e) { RUNNING = 0x1, ... }`: the names of the flags set in `e`.
    Flags {
        value: ExprId,
        flags: Vec<(String, u64)>,
    },
    /// `static(PATH)`: the static variable of that Rust path, looked up in the binary's
    /// debug info when evaluated (an embassy timer's driver, which no rule reaches).
    Static(String),
    /// What the parser could not resolve by itself (see `Named`); never in a compiled
    /// program.
    Unresolved(U),
}

/// A compiled expression: every name resolved.
pub type Expr = ExprOf<Resolved>;

/// A parsed expression, before its names are resolved.
pub type ParsedExpr = ExprOf<Named>;

/// Nothing: a compiled program has no unresolved expression, and a `match` on one says
/// so with `Expr::Unresolved(r) => match r {}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {}

/// What only resolution can turn into an expression.
#[derive(Debug, Clone)]
pub enum Named {
    /// A name: a binding's slot once resolved.
    Name(String),
    /// A call by name: a builtin, a layout `fn` or a hook once resolved.
    Call { name: String, args: Vec<ExprId> },
    /// `x => body`, its variable not bound to a slot yet.
    Lambda { param: String, body: ExprId },
    /// `for x in seq [when cond] => body`, its variable not bound to a slot yet.
    For {
        var: String,
        seq: ExprId,
        filter: Option<ExprId>,
        body: ExprId,
    },
}

impl ParsedExpr {
    /// The compiled expression, if nothing in it is left to resolve.
    pub fn resolved(self) -> Option<Expr> {
        Some(match self {
            ExprOf::Int(n) => ExprOf::Int(n),
            ExprOf::Str(s) => ExprOf::Str(s),
            ExprOf::Static(p) => ExprOf::Static(p),
            ExprOf::Local(s) => ExprOf::Local(s),
            ExprOf::Field(e, name) => ExprOf::Field(e, name),
            ExprOf::Index(a, b) => ExprOf::Index(a, b),
            ExprOf::Unary(op, e) => ExprOf::Unary(op, e),
            ExprOf::Binary(op, a, b) => ExprOf::Binary(op, a, b),
            ExprOf::Cast {
                value,
                ty,
                vars,
                from,
            } => ExprOf::Cast {
                value,
                ty,
                vars,
                from,
            },
            ExprOf::Call { func, args } => ExprOf::Call { func, args },
            ExprOf::CallFn { func, args } => ExprOf::CallFn { func, args },
            ExprOf::CallHook { hook, args } => ExprOf::CallHook { hook, args },
            ExprOf::Lambda { param, body } => ExprOf::Lambda { param, body },
            ExprOf::For {
                var,
                seq,
                filter,
                body,
            } => ExprOf::For {
                var,
                seq,
                filter,
                body,
            },
            ExprOf::Bits { value, arms } => ExprOf::Bits { value, arms },
            ExprOf::Flags { value, flags } => ExprOf::Flags { value, flags },
            ExprOf::Unresolved(_) => return None,
        })
    }
}

/// `name = expr` in a rule or view; `let` members are bindings, not reported.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub is_let: bool,
    pub slot: Slot,
    /// A later member (or the rule's guard, lambdas, `for`s in it) names it: its value is
    /// kept in its slot. False where nothing does, so a task's `flags` list is not copied
    /// into a slot no one reads.
    pub read: bool,
    pub value: ExprId,
    pub span: Span,
}

/// A view of a standard type, e.g. `view alloc::sync::Arc as a { deref = a.ptr.pointer.data }`.
#[derive(Debug, Clone)]
pub struct View {
    pub pattern: TypeExpr,
    pub members: Vec<Member>,
    pub frame_size: u16,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Runtime,
    Task,
    /// `future TYPE as f { awaits = … }`: how to see into a future that is not an async
    /// fn (a boxed `dyn Future`, a combinator): what it is waiting on.
    Future,
    /// `leaf TYPE as f { kind = "sleep", … }`: what a task waiting on this future is
    /// blocked on.
    Leaf,
    /// `holds TYPE as g { kind = "lock", resource = … }`: a value of TYPE kept across an
    /// await (a `MutexGuard`) means the task holds that resource; a task waiting on the
    /// same resource waits for it.
    Holds,
}

/// `runtime TYPE as h { … }`, `task …`, `future …` or `leaf …`: how to report or see
/// into a value of that type.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    pub pattern: TypeExpr,
    /// `when EXPR`: the rule applies only to values for which EXPR can be evaluated and
    /// is not 0 (evaluated with the subject bound, before the members).
    pub guard: Option<ExprId>,
    pub members: Vec<Member>,
    pub frame_size: u16,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKind {
    /// A thread-local, evaluated once per thread of the dump.
    Tls(String),
    Static(String),
    /// A local variable of a function's frame on some thread's stack.
    Frame {
        function: String,
        local: String,
    },
    /// `scan TYPE.FIELD slot N fn "PREFIX"`: every object of TYPE in the dump's writable
    /// memory whose FIELD points at a table whose slot `N` points at a function whose path
    /// starts with `PREFIX` (a task header found by its vtable, wherever the executor is).
    /// A guess: what it yields is checked (see docs/language.md) and marked as found by a
    /// scan.
    Scan {
        /// The object's type as written, and the field holding the vtable pointer.
        object: String,
        field: String,
        /// None: the field itself points at the function (a `drop_fn`), not at a table.
        slot: Option<u64>,
        function: String,
        /// `where S ~ "TEXT"`: the function's template parameter `S` must be a type whose
        /// name contains TEXT (tokio's `raw::poll<T, S>` for a LocalSet's tasks).
        param: Option<(String, String)>,
    },
}

/// `root tls PATH as x => runtime EXPR`: where values to report are found.
#[derive(Debug, Clone)]
pub struct Root {
    pub kind: RootKind,
    pub yields: RuleKind,
    pub value: ExprId,
    /// `{ name = expr … }` after the root: facts about the thread (or frame) the root was
    /// evaluated on, e.g. the task a runtime thread is running. Reported per thread.
    pub members: Vec<Member>,
    pub frame_size: u16,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub params: usize,
    pub body: ExprId,
    pub frame_size: u16,
    pub span: Span,
}

/// `hook name(a, b) """ rhai """`: a function written in rhai, called like a `fn`.
#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    pub params: Vec<String>,
    /// The body, compiled once by the sandbox engine (`crate::hook::sandbox`).
    pub ast: rhai::AST,
    /// The whole item, and the body's text between the quotes (for error positions).
    pub span: Span,
    pub body: Span,
}

#[derive(Debug, Clone, Default)]
pub struct Program {
    /// The layout's own name and version (`layout tokio "1.x"`).
    pub name: String,
    pub version: String,
    pub files: Vec<SourceFile>,
    pub exprs: Vec<Expr>,
    pub spans: Vec<Span>,
    pub views: Vec<View>,
    pub rules: Vec<Rule>,
    pub roots: Vec<Root>,
    pub functions: Vec<Function>,
    pub hooks: Vec<Hook>,
    /// Path prefixes of code that is std's or a runtime's own, not the program's
    /// (`runtime_code "tokio::" "mio::"`): folded in native stacks and left out of crash
    /// signatures.
    pub runtime_code: Vec<String>,
    /// Each expression's chain of members (see `chain_shape`), by `ExprId`: worked out
    /// once when the program is compiled, as it depends on nothing else.
    pub chains: Vec<(ExprId, u32)>,
}

impl Program {
    /// Whether a function (a demangled path) is std's or a runtime's own code. Symbols
    /// without a Rust path (`__libc_start_main`, `<…>` impl paths start with `<`, C code)
    /// count as not the program's.
    pub fn is_runtime_code(&self, function: &str) -> bool {
        // `<&dyn core::ops::Fn<…> as core::ops::FnOnce<…>>::call_once` is core's: judge
        // an impl path by the type it starts with.
        let mut bare = function;
        loop {
            let next = bare
                .trim_start_matches(['<', '&', '(', ' '])
                .trim_start_matches("dyn ")
                .trim_start_matches("mut ");
            if next == bare {
                break;
            }
            bare = next;
        }
        !bare.contains("::")
            || self
                .runtime_code
                .iter()
                .any(|p| bare.starts_with(p.as_str()))
    }
}

impl Program {
    pub fn expr(&self, id: ExprId) -> &Expr {
        &self.exprs[id.0 as usize]
    }

    pub fn span(&self, id: ExprId) -> Span {
        self.spans[id.0 as usize]
    }

    /// The chain of members `top` ends (`s.deadline.std.0.t` at its last `.t`): its root
    /// (`s`) and how many members it has below `top`; `(top, 0)` for an expression that
    /// is not a member.
    pub fn chain_shape(&self, top: ExprId) -> (ExprId, u32) {
        match self.chains.get(top.0 as usize) {
            Some(&shape) => shape,
            // A program made by hand, not compiled.
            None => self.walk_chain(top),
        }
    }

    fn walk_chain(&self, top: ExprId) -> (ExprId, u32) {
        let (mut root, mut inner) = (top, 0u32);
        while let ExprOf::Field(base, _) = self.expr(root) {
            root = *base;
            if matches!(self.expr(root), ExprOf::Field(..)) {
                inner += 1;
            }
        }
        (root, inner)
    }

    /// Works out every expression's chain (`chain_shape`) in one pass: a member's base is
    /// made before it, so its chain is known by then (a walk where it is not).
    pub(crate) fn lower_chains(&mut self) {
        let mut chains: Vec<(ExprId, u32)> = Vec::with_capacity(self.exprs.len());
        for (i, e) in self.exprs.iter().enumerate() {
            let shape = match e {
                ExprOf::Field(base, _) => match (self.expr(*base), chains.get(base.0 as usize)) {
                    (ExprOf::Field(..), Some(&(root, inner))) => (root, inner + 1),
                    (ExprOf::Field(..), None) => self.walk_chain(ExprId(i as u32)),
                    _ => (*base, 0),
                },
                _ => (ExprId(i as u32), 0),
            };
            chains.push(shape);
        }
        self.chains = chains;
    }

    /// The layout span of a position rhai reported inside `hook`'s body.
    pub fn hook_span(&self, hook: &Hook, pos: rhai::Position) -> Span {
        let text = self
            .files
            .get(hook.body.file.0 as usize)
            .map_or("", |f| f.text.as_str());
        crate::hook::position_span(text, hook.body, pos, hook.span)
    }

    /// `file:line:col` of a span, for runtime messages that point back into the layout.
    pub fn location(&self, span: Span) -> String {
        match self.files.get(span.file.0 as usize) {
            Some(f) => {
                let (l, c) = f.line_col(span.start);
                format!("{}:{l}:{c}", f.name)
            }
            None => "?".into(),
        }
    }
}
