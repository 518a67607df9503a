//! Checking a compiled layout against a binary's debug info without a dump: roots exist,
//! rules match types, casts name types, field paths resolve (`typing.rs`); problems point
//! at the layout's line and column.

mod typing;

use layoutdump_lang::program::{Expr, RootKind, RuleKind};
use layoutdump_lang::{Diagnostic, Diagnostics, Program, TypeExpr};

use crate::dwarf::{DebugInfo, VarLocation};

pub fn check_against(program: &Program, dbg: &DebugInfo) -> Diagnostics {
    let mut list = Vec::new();
    for root in &program.roots {
        let (path, want_tls) = match &root.kind {
            RootKind::Tls(p) => (p, true),
            RootKind::Static(p) => (p, false),
            RootKind::Frame { .. } => continue,
            RootKind::Scan { object, field, .. } => {
                if let Err(msg) = crate::scan::object_field(dbg, object, field) {
                    list.push(
                        Diagnostic::new(root.span, format!("scan root: {msg} in {}", dbg.path().display()))
                            .with_help(format!("`layoutdump types BINARY '{object}'` shows the types and fields that exist")),
                    );
                }
                continue;
            }
        };
        let vars = dbg.variables(path);
        let found = vars
            .iter()
            .any(|v| matches!(v.location, VarLocation::Tls(_)) == want_tls);
        if !found {
            let kind = if want_tls { "thread-local" } else { "static" };
            list.push(Diagnostic::new(root.span, format!("no {kind} named `{path}` in {}", dbg.path().display())).with_help(
                "the binary may not use this runtime, or its version names the variable differently; `nm -C BINARY | grep NAME` shows what exists",
            ));
        }
    }
    // Runtime and task rules are what a layout is for: one that matches nothing is an
    // error. Future and leaf rules describe types a program may not use (a broadcast
    // channel): matching nothing is normal.
    for rule in program
        .rules
        .iter()
        .filter(|r| matches!(r.kind, RuleKind::Runtime | RuleKind::Task))
    {
        if !any_type_matches(dbg, &rule.pattern) {
            list.push(
                Diagnostic::new(
                    rule.span,
                    format!(
                        "no type matches `{}` in {}",
                        rule.pattern,
                        dbg.path().display()
                    ),
                )
                .with_help(suggest(dbg, &rule.pattern)),
            );
        }
    }
    for (i, e) in program.exprs.iter().enumerate() {
        if let Expr::Cast { ty, vars, .. } = e
            && vars.is_empty()
            && dbg.type_named(&ty.to_string()).is_none()
        {
            let span = program.spans[i];
            list.push(
                Diagnostic::new(
                    span,
                    format!("cast to `{ty}`: no such type in {}", dbg.path().display()),
                )
                .with_help(suggest(dbg, ty)),
            );
        }
    }
    let mut typing = typing::TypeChecker::new(program, dbg);
    // A rule passes if one of the first instances of its pattern that its `when` guard
    // fits type-checks; otherwise the first such instance's errors are reported. (tokio's
    // join! and select! rules match every PollFn; their guards pick the macros' closures.)
    const INSTANCES_TRIED: usize = 64;
    for rule in &program.rules {
        let before = typing.diags.len();
        let mut first_errors = None;
        for subject in typing.instances(&rule.pattern, INSTANCES_TRIED) {
            // A guarded rule is about the instances its guard fits, only.
            if !typing.guard_fits(rule.guard, rule.frame_size, typing::AType::Obj(subject)) {
                continue;
            }
            // A runtime's `tasks` are a sequence, of task values.
            let sequence = (rule.kind == RuleKind::Runtime).then_some("tasks");
            typing.check_members(
                &rule.members,
                rule.frame_size,
                typing::AType::Obj(subject),
                sequence,
            );
            let errors: Vec<_> = typing.diags.drain(before..).collect();
            if errors.is_empty() {
                first_errors = None;
                break;
            }
            first_errors.get_or_insert(errors);
        }
        typing.diags.extend(first_errors.unwrap_or_default());
    }
    list.extend(typing.diags);
    list.sort_by_key(|d| (d.span.file.0, d.span.start));
    Diagnostics {
        files: program.files.clone(),
        list,
    }
}

fn any_type_matches(dbg: &DebugInfo, pattern: &TypeExpr) -> bool {
    match pattern.base_path() {
        Some(base) => dbg
            .index()
            .type_names()
            .any(|n| n.starts_with(base) && pattern.matches(n)),
        None => true,
    }
}

/// Names sharing the last path segment of the pattern: what a renamed module looks like.
fn suggest(dbg: &DebugInfo, pattern: &TypeExpr) -> String {
    let Some(base) = pattern.base_path() else {
        return "check the type's spelling".into();
    };
    let last = base.rsplit("::").next().unwrap_or(base);
    let mut near: Vec<&str> = dbg
        .index()
        .type_names()
        .filter(|n| {
            n.split('<')
                .next()
                .is_some_and(|p| p.rsplit("::").next() == Some(last))
        })
        .map(|n| n.split('<').next().unwrap_or(n))
        .collect();
    near.sort_unstable();
    near.dedup();
    near.truncate(5);
    if !near.is_empty() {
        return format!("types with that name: {}", near.join(", "));
    }
    // A misspelled name: show what the same module has.
    let module = base.rsplit_once("::").map_or("", |(m, _)| m);
    let mut siblings: Vec<&str> = dbg
        .index()
        .type_names()
        .filter_map(|n| n.split('<').next())
        .filter(|p| p.rsplit_once("::").is_some_and(|(m, _)| m == module))
        .collect();
    siblings.sort_unstable();
    siblings.dedup();
    siblings.truncate(8);
    if siblings.is_empty() {
        format!(
            "no type named `…::{last}` and no types in `{module}`: does this binary use that code?"
        )
    } else {
        format!("types in `{module}`: {}", siblings.join(", "))
    }
}
