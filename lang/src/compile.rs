//! Compiling: parses a layout and the layouts it `use`s, then resolves every name to a
//! frame slot, a builtin or a layout `fn`, checking arities. All errors are collected.

use std::collections::HashMap;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::parser::{ParsedFile, parse_file};
use crate::program::*;

/// Resolution works on parsed expressions: `Expr::X` below is `ExprOf::X`.
use crate::program::ExprOf as Expr;
use crate::source::{FileId, SourceFile, Span};

/// Finds the text of a layout named in `use NAME`.
pub trait Loader {
    fn load(&self, name: &str) -> Result<SourceFile, String>;
}

/// `use` chains deeper than this are a cycle or a mistake.
const MAX_USE_DEPTH: usize = 16;
/// A frame has at most this many bindings (subject, lets, members, loop variables).
const MAX_SLOTS: usize = 1024;

/// Compiles `main` and everything it uses into one program.
pub fn compile(main: SourceFile, loader: &dyn Loader) -> Result<Program, Diagnostics> {
    let mut program = Program::default();
    // The parsed expressions, resolved in place, then turned into the program's.
    let mut exprs: Vec<ParsedExpr> = Vec::new();
    let mut diags = Vec::new();
    let mut parsed: Vec<ParsedFile> = Vec::new();
    let mut pending = vec![(main, 0usize, None::<Span>)];
    let mut loaded: Vec<String> = Vec::new();
    while let Some((file, depth, used_at)) = pending.pop() {
        if loaded.contains(&file.name) {
            continue;
        }
        if depth > MAX_USE_DEPTH {
            if let Some(span) = used_at {
                diags.push(Diagnostic::new(
                    span,
                    format!("`use` chain deeper than {MAX_USE_DEPTH}: is there a cycle?"),
                ));
            }
            continue;
        }
        loaded.push(file.name.clone());
        let id = FileId(program.files.len() as u32);
        let text = file.text.clone();
        program.files.push(file);
        match parse_file(&text, id, &mut exprs, &mut program.spans) {
            Ok(p) => {
                for (name, span) in &p.uses {
                    match loader.load(name) {
                        Ok(f) => pending.push((f, depth + 1, Some(*span))),
                        Err(why) => diags.push(
                            Diagnostic::new(*span, format!("cannot use layout `{name}`: {why}"))
                                .with_help("shipped layouts are used by name (`use std`); others by a path relative to this file"),
                        ),
                    }
                }
                if let (0, Some((n, v))) = (id.0, &p.header) {
                    program.name = n.clone();
                    program.version = v.clone();
                }
                parsed.push(p);
            }
            Err(d) => diags.push(d),
        }
    }

    let mut resolver = Resolver {
        program: &mut program,
        exprs: &mut exprs,
        diags: &mut diags,
        fns: HashMap::new(),
        hooks: HashMap::new(),
        named: Vec::new(),
    };
    compile_hooks(&mut resolver, &mut parsed);
    // Functions first, so that any rule can call any function of any file.
    let mut fn_params = Vec::new();
    for p in &mut parsed {
        for (f, params) in p.functions.drain(..) {
            if let Some(prev) = resolver.fns.get(&f.name) {
                let prev_span = resolver.program.functions[prev.0 as usize].span;
                let at = resolver.program.location(prev_span);
                resolver.diags.push(Diagnostic::new(
                    f.span,
                    format!("function `{}` is defined twice (first at {at})", f.name),
                ));
                continue;
            }
            resolver.fns.insert(
                f.name.clone(),
                FnId(resolver.program.functions.len() as u32),
            );
            resolver.program.functions.push(f);
            fn_params.push(params);
        }
    }
    for (i, params) in fn_params.into_iter().enumerate() {
        let body = resolver.program.functions[i].body;
        let mut scope = Scope::new(params);
        resolver.resolve(body, &mut scope);
        resolver.program.functions[i].frame_size = scope.size();
    }
    for p in parsed {
        program_code(resolver.program, &p.runtime_code);
        for (mut view, subject) in p.views {
            let mut scope = Scope::new(vec![subject]);
            // View members are reached as fields of the subject (`v.len`), not as names;
            // each is evaluated in its own frame holding only the subject.
            for m in &mut view.members {
                let mut s = scope.clone();
                resolver.resolve(m.value, &mut s);
                scope.max = scope.max.max(s.max);
            }
            view.frame_size = scope.size();
            resolver.program.views.push(view);
        }
        for (mut rule, subject) in p.rules {
            let mut scope = Scope::new(vec![subject]);
            if let Some(g) = rule.guard {
                let mut s = scope.clone();
                resolver.resolve(g, &mut s);
                scope.max = scope.max.max(s.max);
            }
            resolver.members(&mut rule.members, &mut scope);
            rule.frame_size = scope.size();
            resolver.program.rules.push(rule);
        }
        for (mut root, subject) in p.roots {
            // A scan may find tasks that no list holds (futures' ThreadPool): it yields
            // them directly, and its `runtime` member says which runtime they belong to
            // (or `task_owner`, the value a runtime found before records: monoio's).
            let scan_task = root.yields == RuleKind::Task
                && matches!(root.kind, RootKind::Scan { .. })
                && root
                    .members
                    .iter()
                    .any(|m| m.name == "runtime" || m.name == "task_owner");
            if !scan_task && !matches!(root.yields, RuleKind::Runtime | RuleKind::Future) {
                resolver.diags.push(
                    Diagnostic::new(
                        root.span,
                        "a root yields a runtime or a future: `root … as x => runtime EXPR`",
                    )
                    .with_help("tasks are reached from a runtime rule's `tasks`; only a `scan` root may yield `task EXPR`, with a member `runtime = EXPR` naming its runtime (or `task_owner = EXPR`, matching the runtime's own `task_owner`)"),
                );
            }
            let mut scope = Scope::new(vec![subject]);
            resolver.resolve(root.value, &mut scope);
            resolver.members(&mut root.members, &mut scope);
            root.frame_size = scope.size();
            resolver.program.roots.push(root);
        }
    }
    if exprs.len() > u32::MAX as usize / 2 {
        diags.push(Diagnostic::new(Span::default(), "layout too large"));
    }
    if diags.is_empty() {
        // Every name was resolved where it is used: the compiled arena has none left.
        match exprs.into_iter().map(ParsedExpr::resolved).collect() {
            Some(exprs) => {
                program.exprs = exprs;
                program.lower_chains();
                return Ok(program);
            }
            None => diags.push(Diagnostic::new(
                Span::default(),
                "an expression was left unresolved (a bug in layoutdump's compiler: please report this layout)",
            )),
        }
    }
    {
        Err(Diagnostics {
            files: program.files,
            list: diags,
        })
    }
}

/// Compiles every file's hooks with the sandbox engine, so a rhai syntax error is a
/// layout error at its own line. Hook names share one namespace with `fn`s.
fn compile_hooks(resolver: &mut Resolver<'_>, parsed: &mut [ParsedFile]) {
    // Making the engine registers rhai's standard library: a few milliseconds, paid only
    // by layouts that have hooks.
    if parsed.iter().all(|p| p.hooks.is_empty()) {
        return;
    }
    let engine = crate::hook::sandbox(&crate::hook::HookLimits::default());
    for p in parsed.iter_mut() {
        for h in p.hooks.drain(..) {
            if resolver.hooks.contains_key(&h.name) || resolver.fns.contains_key(&h.name) {
                resolver.diags.push(Diagnostic::new(
                    h.span,
                    format!("`{}` is defined twice (as a fn or a hook)", h.name),
                ));
                continue;
            }
            if Builtin::by_name(&h.name).is_some() {
                resolver.diags.push(Diagnostic::new(
                    h.span,
                    format!("`{}` is a builtin; give the hook another name", h.name),
                ));
                continue;
            }
            // A hook whose body does not compile is still declared, so that its calls
            // are resolved and their arity checked rather than reported as unknown.
            let ast = match crate::hook::compile(&engine, &h.params, &h.code) {
                Ok(ast) => ast,
                Err((pos, msg)) => {
                    let text = resolver
                        .program
                        .files
                        .get(h.body.file.0 as usize)
                        .map_or("", |f| f.text.as_str());
                    let at = crate::hook::position_span(text, h.body, pos, h.span);
                    resolver.diags.push(
                        Diagnostic::new(at, format!("in hook `{}`: {msg}", h.name))
                            .with_help("hooks are rhai; see docs/language.md, \"Hooks\""),
                    );
                    rhai::AST::empty()
                }
            };
            let id = HookId(resolver.program.hooks.len() as u32);
            resolver.hooks.insert(h.name.clone(), id);
            resolver.program.hooks.push(Hook {
                name: h.name,
                params: h.params,
                ast,
                span: h.span,
                body: h.body,
            });
        }
    }
}

/// Bindings visible at a point: names to slots, innermost last.
#[derive(Clone)]
struct Scope {
    names: Vec<(String, Slot)>,
    next: u16,
    max: u16,
}

impl Scope {
    fn new(initial: Vec<String>) -> Scope {
        let mut s = Scope {
            names: Vec::new(),
            next: 0,
            max: 0,
        };
        for n in initial {
            s.bind(&n);
        }
        s
    }

    fn bind(&mut self, name: &str) -> Slot {
        let slot = Slot(self.next.min(MAX_SLOTS as u16));
        self.next = self.next.saturating_add(1);
        self.max = self.max.max(self.next);
        self.names.push((name.to_string(), slot));
        slot
    }

    fn lookup(&self, name: &str) -> Option<Slot> {
        self.names
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
    }

    fn size(&self) -> u16 {
        self.max
    }
}

struct Resolver<'a> {
    program: &'a mut Program,
    exprs: &'a mut Vec<ParsedExpr>,
    diags: &'a mut Vec<Diagnostic>,
    fns: HashMap<String, FnId>,
    hooks: HashMap<String, HookId>,
    /// Slots that names were resolved to since it was last cleared (see `Member::read`).
    named: Vec<Slot>,
}

impl Resolver<'_> {
    /// Resolves a rule's or root's members in order, binding each to the next slot. A
    /// member is `read` if a later one names its slot; not its own value, where a lambda
    /// (`list(h, n => …)`) may use that slot before the member is bound to it.
    fn members(&mut self, members: &mut [Member], scope: &mut Scope) {
        let mut named = Vec::with_capacity(members.len());
        for m in members.iter_mut() {
            self.named.clear();
            self.resolve(m.value, scope);
            // `leaf Op as op { op = type_name(op) … uring = f(op) }`: from here on `op`
            // would be the member, not the subject.
            if let Some((subject, _)) = scope.names.first()
                && *subject == m.name
            {
                self.diags.push(
                    Diagnostic::new(
                        m.span,
                        format!("member `{}` has the name of the rule's subject: the members after it would read the member, not the subject", m.name),
                    )
                    .with_help("rename the member or the subject (`… as x {`)"),
                );
            }
            m.slot = scope.bind(&m.name);
            named.push(std::mem::take(&mut self.named));
        }
        for (i, m) in members.iter_mut().enumerate() {
            m.read = named[i + 1..].iter().any(|n| n.contains(&m.slot));
        }
    }

    fn resolve(&mut self, id: ExprId, scope: &mut Scope) {
        let span = self.program.span(id);
        let expr = self.exprs[id.0 as usize].clone();
        let replaced = match expr {
            Expr::Int(_)
            | Expr::Str(_)
            | Expr::Static(_)
            | Expr::Local(_)
            | Expr::CallFn { .. }
            | Expr::CallHook { .. }
            | Expr::Lambda { .. }
            | Expr::For { .. } => None,
            Expr::Unresolved(Named::Name(name)) => match scope.lookup(&name) {
                Some(slot) => {
                    self.named.push(slot);
                    Some(Expr::Local(slot))
                }
                None => {
                    let visible: Vec<&str> = scope.names.iter().map(|(n, _)| n.as_str()).collect();
                    self.diags.push(
                        Diagnostic::new(span, format!("unknown name `{name}`"))
                            .with_help(format!("names in scope here: {}", visible.join(", "))),
                    );
                    None
                }
            },
            Expr::Field(e, _) | Expr::Unary(_, e) => {
                self.resolve(e, scope);
                None
            }
            Expr::Index(a, b) | Expr::Binary(_, a, b) => {
                self.resolve(a, scope);
                self.resolve(b, scope);
                None
            }
            // Only `size_of(TYPE …)` is a call when parsed: its cast may name a value.
            Expr::Call { args, .. } => {
                for a in args {
                    self.resolve(a, scope);
                }
                None
            }
            Expr::Cast { value, from, .. } => {
                self.resolve(value, scope);
                if let Some((_, f)) = from {
                    self.resolve(f, scope);
                }
                None
            }
            Expr::Bits { value, .. } | Expr::Flags { value, .. } => {
                self.resolve(value, scope);
                None
            }
            Expr::Unresolved(Named::Call { name, args }) => {
                if let Some((func, arity)) = Builtin::by_name(&name) {
                    self.check_arity(&name, arity, args.len(), span);
                    for (i, a) in args.iter().enumerate() {
                        let is_lambda = matches!(
                            self.exprs[a.0 as usize],
                            Expr::Unresolved(Named::Lambda { .. })
                        );
                        if is_lambda != (func == Builtin::List && i == 1) {
                            let msg = if is_lambda {
                                "a `x => …` function is only allowed as the second argument of `list`"
                            } else {
                                "`list` takes a `node => next` function as its second argument"
                            };
                            self.diags.push(Diagnostic::new(self.program.span(*a), msg));
                        }
                        self.resolve(*a, scope);
                    }
                    Some(Expr::Call { func, args })
                } else if let Some(&func) = self.fns.get(&name) {
                    let arity = self.program.functions[func.0 as usize].params;
                    self.check_arity(&name, arity, args.len(), span);
                    for a in &args {
                        self.resolve(*a, scope);
                    }
                    Some(Expr::CallFn { func, args })
                } else if let Some(&hook) = self.hooks.get(&name) {
                    let arity = self.program.hooks[hook.0 as usize].params.len();
                    self.check_arity(&name, arity, args.len(), span);
                    for a in &args {
                        self.resolve(*a, scope);
                    }
                    Some(Expr::CallHook { hook, args })
                } else {
                    let builtins: Vec<&str> = Builtin::names().collect();
                    self.diags.push(
                        Diagnostic::new(span, format!("unknown function `{name}`")).with_help(format!(
                            "builtins are {}; or define it with `fn name(x) = …` or `hook name(x) \"\"\" … \"\"\"`",
                            builtins.join(", ")
                        )),
                    );
                    None
                }
            }
            Expr::Unresolved(Named::Lambda { param, body }) => {
                let mut inner = scope.clone();
                let slot = inner.bind(&param);
                self.resolve(body, &mut inner);
                scope.max = scope.max.max(inner.max);
                Some(Expr::Lambda { param: slot, body })
            }
            Expr::Unresolved(Named::For {
                var,
                seq,
                filter,
                body,
            }) => {
                self.resolve(seq, scope);
                let mut inner = scope.clone();
                let slot = inner.bind(&var);
                if let Some(f) = filter {
                    self.resolve(f, &mut inner);
                }
                self.resolve(body, &mut inner);
                scope.max = scope.max.max(inner.max);
                Some(Expr::For {
                    var: slot,
                    seq,
                    filter,
                    body,
                })
            }
        };
        if let Some(e) = replaced {
            self.exprs[id.0 as usize] = e;
        }
    }

    fn check_arity(&mut self, name: &str, want: usize, got: usize, span: Span) {
        if want != got {
            self.diags.push(Diagnostic::new(
                span,
                format!(
                    "`{name}` takes {want} argument{}, given {got}",
                    if want == 1 { "" } else { "s" }
                ),
            ));
        }
    }
}

fn program_code(program: &mut Program, code: &[String]) {
    for c in code {
        if !program.runtime_code.contains(c) {
            program.runtime_code.push(c.clone());
        }
    }
}
