//! A compiled program as text: its roots, rules, views and functions with every name
//! resolved (slots `$N`, functions, builtins), for reviewing what the compiler made.

use std::fmt::Write;

use crate::program::{Expr, ExprId, Member, ParamSource, Program, RootKind, RuleKind, UnOp};

/// Nesting printed before an expression is cut as `…`: compiled expressions are trees of
/// earlier ids, but a listing must not trust that of a program built by hand.
const MAX_DEPTH: usize = 48;

impl Program {
    /// The program as text: one block per root, rule, view, function and hook, each with
    /// its place in the layout, its frame size and its members as compiled (the slot each
    /// is bound to, and whether its value is kept for a later member).
    pub fn listing(&self) -> String {
        let mut out = String::new();
        let files: Vec<&str> = self.files.iter().map(|f| file_name(&f.name)).collect();
        let _ = writeln!(out, "layout {} {:?}", self.name, self.version);
        let _ = writeln!(out, "files: {}", files.join(", "));
        if !self.runtime_code.is_empty() {
            let _ = writeln!(out, "runtime_code: {}", self.runtime_code.join(" "));
        }
        for root in &self.roots {
            let kind = match &root.kind {
                RootKind::Tls(path) => format!("tls {path}"),
                RootKind::Static(path) => format!("static {path}"),
                RootKind::Frame { function, local } => format!("frame {function} local {local}"),
                RootKind::Scan {
                    object,
                    field,
                    slot,
                    function,
                    param,
                } => {
                    let slot = slot.map_or(String::new(), |s| format!(" slot {s}"));
                    let param = param
                        .as_ref()
                        .map_or(String::new(), |(p, t)| format!(" where {p} ~ {t:?}"));
                    format!("scan {object}.{field}{slot} fn {function:?}{param}")
                }
            };
            let _ = writeln!(
                out,
                "\nroot {kind} => {}  [{}, frame {}]",
                rule_kind(root.yields),
                self.short_location(root.span),
                root.frame_size
            );
            let _ = writeln!(out, "  yields {}", self.expr_text(root.value));
            self.members(&mut out, &root.members, true);
        }
        for rule in &self.rules {
            let _ = writeln!(
                out,
                "\n{} {}  [{}, frame {}]",
                rule_kind(rule.kind),
                rule.pattern,
                self.short_location(rule.span),
                rule.frame_size
            );
            if let Some(guard) = rule.guard {
                let _ = writeln!(out, "  when {}", self.expr_text(guard));
            }
            self.members(&mut out, &rule.members, true);
        }
        for view in &self.views {
            let _ = writeln!(
                out,
                "\nview {}  [{}, frame {}]",
                view.pattern,
                self.short_location(view.span),
                view.frame_size
            );
            self.members(&mut out, &view.members, false);
        }
        for (i, f) in self.functions.iter().enumerate() {
            let _ = writeln!(
                out,
                "\nfn#{i} {}({} params)  [{}, frame {}]\n  = {}",
                f.name,
                f.params,
                self.short_location(f.span),
                f.frame_size,
                self.expr_text(f.body)
            );
        }
        for (i, h) in self.hooks.iter().enumerate() {
            let _ = writeln!(
                out,
                "\nhook#{i} {}({})  [{}]",
                h.name,
                h.params.join(", "),
                self.short_location(h.span)
            );
        }
        out
    }

    /// `name:line`, the file without its folder (`<shipped>/` or a user's path).
    fn short_location(&self, span: crate::Span) -> String {
        match self.files.get(span.file.0 as usize) {
            Some(f) => format!("{}:{}", file_name(&f.name), f.line_col(span.start).0),
            None => "?".into(),
        }
    }

    /// A rule's or root's members, each bound to a slot; a view's (`bound` false) are
    /// reached as fields of the subject, and have none.
    fn members(&self, out: &mut String, members: &[Member], bound: bool) {
        for m in members.iter().filter(|_| !bound) {
            let _ = writeln!(out, "  {} = {}", m.name, self.expr_text(m.value));
        }
        for m in members.iter().filter(|_| bound) {
            let _ = writeln!(
                out,
                "  {}{} ${} = {}{}",
                if m.is_let { "let " } else { "" },
                m.name,
                m.slot.0,
                self.expr_text(m.value),
                if m.read {
                    "  (kept: a later member reads it)"
                } else {
                    ""
                }
            );
        }
    }

    /// An expression as text, with slots, functions and builtins resolved.
    pub fn expr_text(&self, id: ExprId) -> String {
        let mut out = String::new();
        self.write_expr(&mut out, id, 0);
        out
    }

    fn write_expr(&self, out: &mut String, id: ExprId, depth: usize) {
        let Some(expr) = self.exprs.get(id.0 as usize) else {
            out.push_str("<no expression>");
            return;
        };
        if depth >= MAX_DEPTH {
            out.push('…');
            return;
        }
        let sub = |out: &mut String, e: ExprId| self.write_expr(out, e, depth + 1);
        let args = |out: &mut String, args: &[ExprId]| {
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                self.write_expr(out, *a, depth + 1);
            }
            out.push(')');
        };
        match expr {
            Expr::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Expr::Str(s) => {
                let _ = write!(out, "{s:?}");
            }
            Expr::Static(path) => {
                let _ = write!(out, "static({path})");
            }
            Expr::Local(slot) => {
                let _ = write!(out, "${}", slot.0);
            }
            Expr::Field(e, name) => {
                sub(out, *e);
                let _ = write!(out, ".{name}");
            }
            Expr::Index(e, i) => {
                sub(out, *e);
                out.push('[');
                sub(out, *i);
                out.push(']');
            }
            Expr::Unary(op, e) => {
                out.push_str(match op {
                    UnOp::Neg => "-",
                    UnOp::Not => "!",
                    UnOp::Deref => "*",
                });
                sub(out, *e);
            }
            Expr::Binary(op, a, b) => {
                out.push('(');
                sub(out, *a);
                let _ = write!(out, " {} ", op.symbol());
                sub(out, *b);
                out.push(')');
            }
            Expr::Cast {
                value,
                ty,
                vars,
                from,
            } => {
                out.push('(');
                sub(out, *value);
                let _ = write!(out, " as {ty}");
                if let Some((source, e)) = from {
                    let from = match source {
                        ParamSource::Function => "fn",
                        ParamSource::TypeOf => "type",
                    };
                    let _ = write!(out, " with {} from {from} ", vars.join(", "));
                    sub(out, *e);
                }
                out.push(')');
            }
            Expr::Call { func, args: a } => {
                out.push_str(func.name());
                args(out, a);
            }
            Expr::CallFn { func, args: a } => {
                let name = self
                    .functions
                    .get(func.0 as usize)
                    .map_or("?", |f| f.name.as_str());
                let _ = write!(out, "fn#{}:{name}", func.0);
                args(out, a);
            }
            Expr::CallHook { hook, args: a } => {
                let name = self
                    .hooks
                    .get(hook.0 as usize)
                    .map_or("?", |h| h.name.as_str());
                let _ = write!(out, "hook#{}:{name}", hook.0);
                args(out, a);
            }
            Expr::Lambda { param, body } => {
                let _ = write!(out, "${} => ", param.0);
                sub(out, *body);
            }
            Expr::For {
                var,
                seq,
                filter,
                body,
            } => {
                let _ = write!(out, "for ${} in ", var.0);
                sub(out, *seq);
                if let Some(f) = filter {
                    out.push_str(" when ");
                    sub(out, *f);
                }
                out.push_str(" => ");
                sub(out, *body);
            }
            Expr::Bits { value, arms } => {
                out.push_str("bits(");
                sub(out, *value);
                out.push_str(") { ");
                for (mask, name) in arms {
                    match mask {
                        Some(m) => {
                            let _ = write!(out, "{m:#x} => {name:?}, ");
                        }
                        None => {
                            let _ = write!(out, "_ => {name:?}, ");
                        }
                    }
                }
                out.push('}');
            }
            Expr::Flags { value, flags } => {
                out.push_str("flags(");
                sub(out, *value);
                out.push_str(") { ");
                for (name, mask) in flags {
                    let _ = write!(out, "{name} = {mask:#x}, ");
                }
                out.push('}');
            }
            Expr::Unresolved(never) => match *never {},
        }
    }
}

fn rule_kind(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Runtime => "runtime",
        RuleKind::Task => "task",
        RuleKind::Future => "future",
        RuleKind::Leaf => "leaf",
        RuleKind::Holds => "holds",
    }
}

/// `tokio.layout` of `<shipped>/tokio.layout` or `/home/me/my.layout`.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
