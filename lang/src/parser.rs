//! Parsing: pest turns one layout file into syntax, and this module lowers it into the
//! program's arenas with names still unresolved. pest's types never leave this file.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::diagnostic::Diagnostic;
use crate::program::*;

/// The parser's expressions are parsed ones (`ParsedExpr`): `Expr::X` below is `ExprOf::X`.
use crate::program::ExprOf as Expr;
use crate::source::{FileId, Span};
use crate::types::TypeExpr;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct LayoutParser;

/// What one file declares, before names are resolved.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub header: Option<(String, String)>,
    pub uses: Vec<(String, Span)>,
    pub runtime_code: Vec<String>,
    pub functions: Vec<(Function, Vec<String>)>,
    pub hooks: Vec<ParsedHook>,
    pub views: Vec<(View, String)>,
    pub rules: Vec<(crate::program::Rule, String)>,
    pub roots: Vec<(Root, String)>,
}

/// A `hook` item before its rhai body is compiled.
#[derive(Debug)]
pub struct ParsedHook {
    pub name: String,
    pub params: Vec<String>,
    pub code: String,
    pub span: Span,
    pub body: Span,
}

/// Parses `text` (file `file`) into the expression arena `exprs`. A syntax error stops
/// this file only: pest reports the first one, at its line and column.
pub fn parse_file(
    text: &str,
    file: FileId,
    exprs: &mut Vec<ParsedExpr>,
    spans: &mut Vec<Span>,
) -> Result<ParsedFile, Diagnostic> {
    let mut pairs = LayoutParser::parse(Rule::file, text).map_err(|e| syntax_error(e, file))?;
    let mut lower = Lower { file, exprs, spans };
    let mut out = ParsedFile::default();
    let Some(root) = pairs.next() else {
        return Ok(out);
    };
    for item in root.into_inner() {
        match item.as_rule() {
            Rule::header => {
                let mut it = item.into_inner();
                let name = it
                    .next()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let version = it.next().map(|p| unquote(p.as_str())).unwrap_or_default();
                out.header = Some((name, version));
            }
            Rule::code_item => {
                out.runtime_code
                    .extend(item.into_inner().map(|p| unquote(p.as_str())));
            }
            Rule::use_item => {
                let span = lower.span(&item);
                out.uses
                    .push((item.into_inner().as_str().to_string(), span));
            }
            Rule::fn_item => {
                let span = lower.span(&item);
                let mut it = item.into_inner().peekable();
                let name = it
                    .next()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let mut params = Vec::new();
                let mut body = None;
                for p in it {
                    match p.as_rule() {
                        Rule::ident => params.push(p.as_str().to_string()),
                        _ => body = Some(lower.expr(p)),
                    }
                }
                let body = body.unwrap_or_else(|| lower.push(Expr::Int(0), span));
                out.functions.push((
                    Function {
                        name,
                        params: params.len(),
                        body,
                        frame_size: 0,
                        span,
                    },
                    params,
                ));
            }
            Rule::hook_item => {
                let span = lower.span(&item);
                let mut hook = ParsedHook {
                    name: String::new(),
                    params: Vec::new(),
                    code: String::new(),
                    span,
                    body: span,
                };
                for p in item.into_inner() {
                    match p.as_rule() {
                        Rule::ident if hook.name.is_empty() => hook.name = p.as_str().into(),
                        Rule::ident => hook.params.push(p.as_str().into()),
                        _ => {
                            if let Some(code) = p.into_inner().next() {
                                hook.body = lower.span(&code);
                                hook.code = code.as_str().into();
                            }
                        }
                    }
                }
                out.hooks.push(hook);
            }
            Rule::view_item => {
                let span = lower.span(&item);
                let (pattern, subject, _, members) = lower.typed_block(item.into_inner());
                out.views.push((
                    View {
                        pattern,
                        members,
                        frame_size: 0,
                        span,
                    },
                    subject,
                ));
            }
            Rule::rule_item => {
                let span = lower.span(&item);
                let mut it = item.into_inner();
                let kind = rule_kind(it.next());
                let (pattern, subject, guard, members) = lower.typed_block(it);
                let rule = crate::program::Rule {
                    kind,
                    pattern,
                    guard,
                    members,
                    frame_size: 0,
                    span,
                };
                out.rules.push((rule, subject));
            }
            Rule::root_item => {
                let span = lower.span(&item);
                let mut it = item.into_inner();
                let kind = it.next().and_then(|k| k.into_inner().next()).map(root_kind);
                let subject = it
                    .next()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let yields = rule_kind(it.next());
                let value = match it.next() {
                    Some(e) => lower.expr(e),
                    None => lower.push(Expr::Int(0), span),
                };
                let members = it.map(|m| lower.member(m)).collect();
                let kind = kind.unwrap_or(RootKind::Static(String::new()));
                out.roots.push((
                    Root {
                        kind,
                        yields,
                        value,
                        members,
                        frame_size: 0,
                        span,
                    },
                    subject,
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn syntax_error(e: pest::error::Error<Rule>, file: FileId) -> Diagnostic {
    let (start, end) = match e.location {
        pest::error::InputLocation::Pos(p) => (p, p + 1),
        pest::error::InputLocation::Span((s, e)) => (s, e.max(s + 1)),
    };
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<String> = positives.iter().map(|r| describe(*r)).collect();
            names.sort();
            names.dedup();
            format!("syntax error: expected {}", names.join(", "))
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    Diagnostic::new(
        Span {
            file,
            start: start as u32,
            end: end as u32,
        },
        message,
    )
    .with_help("see docs/language.md for the syntax of each item")
}

/// A grammar rule as a user would call it.
fn describe(rule: Rule) -> String {
    match rule {
        Rule::EOI => "end of file".into(),
        Rule::ident | Rule::name => "a name".into(),
        Rule::expr | Rule::bin_or | Rule::postfix | Rule::unary => "an expression".into(),
        Rule::type_expr => "a type".into(),
        Rule::number => "a number".into(),
        Rule::string => "a string".into(),
        Rule::header => "`layout NAME \"VERSION\"`".into(),
        Rule::use_item | Rule::code_item | Rule::fn_item | Rule::hook_item | Rule::view_item | Rule::root_item | Rule::rule_item => {
            "an item (`use`, `runtime_code`, `fn`, `view`, `root`, `runtime`, `task`, `future`, `leaf`)".into()
        }
        Rule::let_member | Rule::field_member => {
            "a member (`name = expr` or `let name = expr`)".into()
        }
        other => format!("{other:?}").replace('_', " "),
    }
}

fn rule_kind(p: Option<Pair<'_, Rule>>) -> RuleKind {
    match p.map(|p| p.as_str()) {
        Some("task") => RuleKind::Task,
        Some("future") => RuleKind::Future,
        Some("leaf") => RuleKind::Leaf,
        Some("holds") => RuleKind::Holds,
        _ => RuleKind::Runtime,
    }
}

fn root_kind(p: Pair<'_, Rule>) -> RootKind {
    let rule = p.as_rule();
    let mut it = p.into_inner();
    if rule == Rule::root_scan {
        let object = it
            .next()
            .map(|t| type_expr(t).to_string())
            .unwrap_or_default();
        let field = it
            .next()
            .map(|f| f.as_str().to_string())
            .unwrap_or_default();
        let mut rest: Vec<_> = it.collect();
        let slot = if rest.first().is_some_and(|p| p.as_rule() == Rule::scan_slot) {
            let s = rest.remove(0);
            s.into_inner().next().and_then(|n| parse_number(n.as_str()))
        } else {
            None
        };
        let mut it = rest.into_iter();
        let function = it.next().map(|s| unquote(s.as_str())).unwrap_or_default();
        let param = it.next().map(|w| {
            let mut w = w.into_inner();
            let name = w.next().map(|n| n.as_str().to_string()).unwrap_or_default();
            let text = w.next().map(|t| unquote(t.as_str())).unwrap_or_default();
            (name, text)
        });
        return RootKind::Scan {
            object,
            field,
            slot,
            function,
            param,
        };
    }
    let path = it
        .next()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    match rule {
        Rule::root_tls => RootKind::Tls(path),
        Rule::root_frame => RootKind::Frame {
            function: path,
            local: it
                .next()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
        },
        _ => RootKind::Static(path),
    }
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_string()
}

fn type_expr(p: Pair<'_, Rule>) -> TypeExpr {
    let inner = match p.as_rule() {
        Rule::type_expr => match p.into_inner().next() {
            Some(i) => i,
            None => return TypeExpr::Wildcard,
        },
        _ => p,
    };
    match inner.as_rule() {
        Rule::wildcard => TypeExpr::Wildcard,
        Rule::rest => TypeExpr::Rest,
        Rule::type_ref => {
            let mut it = inner.into_inner();
            let path = it
                .next()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            let args = it
                .next()
                .map(|args| args.into_inner().map(type_expr).collect());
            // `Foo<>` is written as `Foo<` `>` with no type_args pair.
            TypeExpr::Path { path, args }
        }
        Rule::type_ptr => {
            let text = inner.as_str();
            let prefix = ["&mut ", "&", "*const ", "*mut "]
                .into_iter()
                .find(|p| text.starts_with(p.trim_end()))
                .unwrap_or("&")
                .to_string();
            let target = inner
                .into_inner()
                .next()
                .map(type_expr)
                .unwrap_or(TypeExpr::Wildcard);
            TypeExpr::Ptr {
                prefix,
                target: Box::new(target),
            }
        }
        Rule::type_slice => TypeExpr::Slice(Box::new(
            inner
                .into_inner()
                .next()
                .map(type_expr)
                .unwrap_or(TypeExpr::Wildcard),
        )),
        Rule::type_tuple => TypeExpr::Tuple(inner.into_inner().map(type_expr).collect()),
        _ => TypeExpr::Wildcard,
    }
}

struct Lower<'p> {
    file: FileId,
    /// The arena parsed expressions go to, and their spans.
    exprs: &'p mut Vec<ParsedExpr>,
    spans: &'p mut Vec<Span>,
}

impl Lower<'_> {
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        let s = p.as_span();
        Span {
            file: self.file,
            start: s.start() as u32,
            end: s.end() as u32,
        }
    }

    fn push(&mut self, e: ParsedExpr, span: Span) -> ExprId {
        self.exprs.push(e);
        self.spans.push(span);
        ExprId(self.exprs.len() as u32 - 1)
    }

    /// `TYPE as NAME [when EXPR] { MEMBER* }`, shared by views and rules (the grammar
    /// allows `when` on rules only).
    fn typed_block<'i>(
        &mut self,
        mut it: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> (TypeExpr, String, Option<ExprId>, Vec<Member>) {
        let pattern = it.next().map(type_expr).unwrap_or(TypeExpr::Wildcard);
        let subject = it
            .next()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let mut guard = None;
        let mut members = Vec::new();
        for p in it {
            if p.as_rule() == Rule::guard {
                guard = p.into_inner().next().map(|e| self.expr(e));
            } else {
                members.push(self.member(p));
            }
        }
        (pattern, subject, guard, members)
    }

    fn member(&mut self, p: Pair<'_, Rule>) -> Member {
        let span = self.span(&p);
        let is_let = p.as_rule() == Rule::let_member;
        let mut it = p.into_inner();
        let name = it
            .next()
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        let value = match it.next() {
            Some(e) => self.expr(e),
            None => self.push(Expr::Int(0), span),
        };
        Member {
            name,
            is_let,
            slot: Slot(0),
            read: true,
            value,
            span,
        }
    }

    fn expr(&mut self, p: Pair<'_, Rule>) -> ExprId {
        let span = self.span(&p);
        match p.as_rule() {
            // `expr` wraps exactly one alternative; binary levels with one operand fall
            // through to the loop below and add nothing.
            Rule::expr => {
                let mut it = p.into_inner();
                self.next_expr(&mut it, span)
            }
            Rule::for_expr => {
                let mut it = p.into_inner();
                let var = it
                    .next()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                let seq = self.next_expr(&mut it, span);
                let mut filter = None;
                let mut rest: Vec<_> = it.collect();
                if rest.first().is_some_and(|p| p.as_rule() == Rule::for_when) {
                    let w = rest.remove(0);
                    filter = Some(self.next_expr(&mut w.into_inner(), span));
                }
                let body = self.next_expr(&mut rest.into_iter(), span);
                self.push(
                    Expr::Unresolved(Named::For {
                        var,
                        seq,
                        filter,
                        body,
                    }),
                    span,
                )
            }
            Rule::lambda => {
                let mut it = p.into_inner();
                let param = it
                    .next()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                let body = self.next_expr(&mut it, span);
                self.push(Expr::Unresolved(Named::Lambda { param, body }), span)
            }
            Rule::bin_or | Rule::bin_and | Rule::cmp | Rule::shift | Rule::sum | Rule::product => {
                let mut it = p.into_inner();
                let mut left = self.next_expr(&mut it, span);
                while let Some(op) = it.next() {
                    let op = bin_op(op.as_str());
                    let right = self.next_expr(&mut it, span);
                    left = self.push(Expr::Binary(op, left, right), span);
                }
                left
            }
            Rule::unary => {
                let mut ops = Vec::new();
                let mut operand = None;
                for i in p.into_inner() {
                    if i.as_rule() == Rule::op_unary {
                        ops.push(match i.as_str() {
                            "-" => UnOp::Neg,
                            "!" => UnOp::Not,
                            _ => UnOp::Deref,
                        });
                    } else {
                        operand = Some(self.expr(i));
                    }
                }
                let mut e = operand.unwrap_or_else(|| self.push(Expr::Int(0), span));
                for op in ops.into_iter().rev() {
                    e = self.push(Expr::Unary(op, e), span);
                }
                e
            }
            Rule::postfix => {
                let mut it = p.into_inner();
                let mut e = self.next_expr(&mut it, span);
                for s in it {
                    // Suffix spans cover the suffix alone (`.field`, `as Type`): a
                    // diagnostic points at the part that is wrong.
                    let sspan = self.span(&s);
                    e = match s.as_rule() {
                        Rule::field_suffix => {
                            let name = s.into_inner().as_str();
                            let name = if name.chars().all(|c| c.is_ascii_digit()) {
                                format!("__{name}")
                            } else {
                                name.to_string()
                            };
                            self.push(Expr::Field(e, name), sspan)
                        }
                        Rule::index_suffix => {
                            let mut it = s.into_inner();
                            let index = self.next_expr(&mut it, sspan);
                            self.push(Expr::Index(e, index), sspan)
                        }
                        _ => self.cast(e, s, sspan),
                    };
                }
                e
            }
            // `size_of(TYPE …)`, `align_of(TYPE …)`: of a cast of address 0 to that type,
            // so that `with T from type v` works as it does for a cast.
            Rule::size_of_expr => {
                let mut it = p.into_inner();
                let func = match it.next().map(|f| f.as_str()) {
                    Some("align_of") => Builtin::AlignOf,
                    _ => Builtin::SizeOf,
                };
                let zero = self.push(Expr::Int(0), span);
                let ty = self.cast_parts(zero, it, span);
                self.push(
                    Expr::Call {
                        func,
                        args: vec![ty],
                    },
                    span,
                )
            }
            Rule::static_expr => {
                let path = p.into_inner().as_str().to_string();
                self.push(Expr::Static(path), span)
            }
            Rule::call => {
                let mut it = p.into_inner();
                let name = it
                    .next()
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default();
                let args = it.map(|a| self.expr(a)).collect();
                self.push(Expr::Unresolved(Named::Call { name, args }), span)
            }
            Rule::bits_expr => {
                let mut it = p.into_inner();
                let value = self.next_expr(&mut it, span);
                let arms = it
                    .map(|arm| {
                        let mut a = arm.into_inner();
                        let mask = a.next().and_then(|m| parse_number(m.as_str()));
                        let label = a.next().map(|l| unquote(l.as_str())).unwrap_or_default();
                        (mask, label)
                    })
                    .collect();
                self.push(Expr::Bits { value, arms }, span)
            }
            Rule::flags_expr => {
                let mut it = p.into_inner();
                let value = self.next_expr(&mut it, span);
                let flags = it
                    .map(|f| {
                        let mut a = f.into_inner();
                        let name = a.next().map(|n| n.as_str().to_string()).unwrap_or_default();
                        let mask = a.next().and_then(|m| parse_number(m.as_str())).unwrap_or(0);
                        (name, mask)
                    })
                    .collect();
                self.push(Expr::Flags { value, flags }, span)
            }
            Rule::number => {
                let n = parse_number(p.as_str()).unwrap_or(u64::MAX);
                self.push(Expr::Int(n), span)
            }
            Rule::string => self.push(Expr::Str(unquote(p.as_str())), span),
            Rule::ident => self.push(Expr::Unresolved(Named::Name(p.as_str().to_string())), span),
            _ => self.push(Expr::Int(0), span),
        }
    }

    /// `value as TYPE [with T, … from fn|type e]`, from a cast suffix (or `size_of`'s
    /// parentheses): the type, then the optional clause naming where its variables come from.
    fn cast(&mut self, value: ExprId, p: Pair<'_, Rule>, span: Span) -> ExprId {
        self.cast_parts(value, p.into_inner(), span)
    }

    /// `cast` from its parts: the type, then the optional `with … from …` clause.
    fn cast_parts<'i>(
        &mut self,
        value: ExprId,
        mut it: impl Iterator<Item = Pair<'i, Rule>>,
        span: Span,
    ) -> ExprId {
        let ty = it.next().map(type_expr).unwrap_or(TypeExpr::Wildcard);
        let mut vars = Vec::new();
        let mut from = None;
        let mut source = ParamSource::Function;
        if let Some(clause) = it.next() {
            for f in clause.into_inner() {
                match f.as_rule() {
                    Rule::ident => vars.push(f.as_str().to_string()),
                    Rule::from_kind if f.as_str() == "type" => source = ParamSource::TypeOf,
                    Rule::from_kind => {}
                    _ => from = Some((source, self.expr(f))),
                }
            }
        }
        self.push(
            Expr::Cast {
                value,
                ty,
                vars,
                from,
            },
            span,
        )
    }

    fn next_expr<'i>(
        &mut self,
        it: &mut impl Iterator<Item = Pair<'i, Rule>>,
        span: Span,
    ) -> ExprId {
        match it.next() {
            Some(p) => self.expr(p),
            None => self.push(Expr::Int(0), span),
        }
    }
}

/// The grammar admits only the operators `BinOp` spells.
fn bin_op(s: &str) -> BinOp {
    BinOp::from_symbol(s).unwrap_or(BinOp::Rem)
}

/// Decimal or `0x` hex; None when it does not fit in 64 bits (reported by the compiler).
pub fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
