//! Which parts of a layout found something in a dump: values each root yielded (and why
//! not), values each rule matched. `layoutdump check LAYOUT --explain DUMP` prints it, so
//! an author whose task list is empty sees where the chain stops.

use std::collections::BTreeMap;
use std::fmt::Write;

use layoutdump_lang::Program;
use layoutdump_lang::program::{RootKind, RuleKind};

#[derive(Debug, Clone, Default)]
pub struct RootUse {
    /// Threads (tls), frames (frame) or 1 (static) it was evaluated on.
    pub subjects: u64,
    /// Values it yielded; evaluations that gave None or null ("no runtime here").
    pub values: u64,
    pub absent: u64,
    /// Why the root could not be evaluated at all, or the first evaluation error.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub roots: Vec<RootUse>,
    /// Values matched by each rule, in `Program::rules` order.
    pub rules: Vec<u64>,
    /// Task members that could not be evaluated.
    pub unread: UnreadMembers,
}

/// Task members that could not be evaluated, by (rule, member) index: a member that fails
/// on some tasks and not others is how a misread shows (a name pointer into unmapped
/// memory, bytes that are not text).
#[derive(Debug, Clone, Default)]
pub struct UnreadMembers(pub BTreeMap<(usize, usize), Unread>);

/// A member that could not be evaluated on `count` values of its rule; the first (in
/// the order values were read) at `first.0`, for the reason `first.1`.
#[derive(Debug, Clone, Default)]
pub struct Unread {
    pub count: u64,
    pub first: Option<(u64, String)>,
}

impl UnreadMembers {
    /// Member `member` of rule `rule` could not be evaluated on the value at `addr`.
    pub fn add_one(&mut self, (rule, member): (usize, usize), addr: u64, why: &dyn Fn() -> String) {
        let u = self.0.entry((rule, member)).or_default();
        u.count += 1;
        if u.first.is_none() {
            u.first = Some((addr, why()));
        }
    }

    /// Adds another evaluator's unread members (a worker's share of the tasks), in the
    /// order the tasks are written: `other` read later tasks than `self`.
    pub fn add(&mut self, other: &UnreadMembers) {
        for (k, u) in &other.0 {
            let mine = self.0.entry(*k).or_default();
            mine.count += u.count;
            if mine.first.is_none() {
                mine.first.clone_from(&u.first);
            }
        }
    }

    /// One warning per task member that could not be read on some tasks, naming the
    /// rule and the member at their lines.
    pub fn warnings(&self, program: &Program) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(&(r, m), u)| {
                let rule = program.rules.get(r)?;
                let member = rule.members.get(m)?;
                let (addr, why) = u.first.as_ref()?;
                Some(format!(
                    "task rule `{}` ({}): `{}` ({}) could not be read on {} task{} (first: the task at {addr:#x}: {why}); \
                     if it fails only on some tasks, the rule may be reading the wrong bytes: check the casts that reach it \
                     (`layoutdump check LAYOUT --explain DUMP` shows the first)",
                    rule.pattern,
                    program.location(rule.span),
                    member.name,
                    program.location(member.span),
                    u.count,
                    plural(u.count),
                ))
            })
            .collect()
    }
}

impl Usage {
    pub fn new(program: &Program) -> Self {
        Usage {
            roots: vec![RootUse::default(); program.roots.len()],
            rules: vec![0; program.rules.len()],
            unread: UnreadMembers::default(),
        }
    }

    /// Adds another evaluator's counts (a worker thread's share of one run); an empty
    /// `Usage` (the default) takes the other's size.
    pub fn add(&mut self, other: &Usage) {
        if self.rules.len() < other.rules.len() {
            self.rules.resize(other.rules.len(), 0);
        }
        if self.roots.len() < other.roots.len() {
            self.roots.resize(other.roots.len(), RootUse::default());
        }
        for (a, b) in self.rules.iter_mut().zip(&other.rules) {
            *a += b;
        }
        self.unread.add(&other.unread);
        for (a, b) in self.roots.iter_mut().zip(&other.roots) {
            a.subjects += b.subjects;
            a.values += b.values;
            a.absent += b.absent;
            if a.error.is_none() {
                a.error.clone_from(&b.error);
            }
        }
    }

    pub fn hit(&mut self, rule: usize) {
        if let Some(n) = self.rules.get_mut(rule) {
            *n += 1;
        }
    }

    /// One line per root and rule: what it found, or that it found nothing and why.
    pub fn render(&self, program: &Program) -> String {
        let mut out = String::new();
        let width = program
            .rules
            .iter()
            .map(|r| r.pattern.to_string().len() + 8)
            .max()
            .unwrap_or(0)
            .clamp(24, 60);
        for (root, u) in program.roots.iter().zip(&self.roots) {
            let what = match &root.kind {
                RootKind::Tls(p) => format!("root tls {p}"),
                RootKind::Static(p) => format!("root static {p}"),
                RootKind::Frame { function, local } => {
                    format!("root frame {function} local {local}")
                }
                RootKind::Scan {
                    object,
                    field,
                    slot,
                    function,
                    ..
                } => {
                    let slot = slot.map_or(String::new(), |s| format!(" slot {s}"));
                    format!("root scan {object}.{field}{slot} fn {function:?}")
                }
            };
            let on = match root.kind {
                RootKind::Tls(_) => "threads",
                RootKind::Static(_) => "static",
                RootKind::Frame { .. } => "frames",
                RootKind::Scan { .. } => "objects found by the scan",
            };
            let mark = if u.values > 0 { "ok " } else { "-- " };
            let _ = write!(
                out,
                "{mark}{what:<width$}  {}\n      {} {on}: {} value{}, {} absent (None/null)",
                program.location(root.span),
                u.subjects,
                u.values,
                plural(u.values),
                u.absent
            );
            if let Some(e) = &u.error {
                let _ = write!(out, "; {e}");
            }
            out.push('\n');
        }
        // Rules of the layouts this one `use`s that matched nothing (std's `Pending`
        // leaf) are counted, not listed: they say nothing about the author's layout.
        let mut quiet = 0;
        for (r, (rule, n)) in program.rules.iter().zip(&self.rules).enumerate() {
            if *n == 0 && rule.span.file.0 != 0 {
                quiet += 1;
                continue;
            }
            let kind = match rule.kind {
                RuleKind::Runtime => "runtime",
                RuleKind::Task => "task",
                RuleKind::Future => "future",
                RuleKind::Leaf => "leaf",
                RuleKind::Holds => "holds",
            };
            let what = format!("{kind} {}", rule.pattern);
            let mark = if *n > 0 { "ok " } else { "-- " };
            let found = if *n > 0 {
                format!("matched {n} value{}", plural(*n))
            } else {
                match rule.kind {
                    RuleKind::Runtime => {
                        "matched nothing: no root yielded a value of this type".into()
                    }
                    RuleKind::Task => {
                        "matched nothing: no runtime's `tasks` yielded a value of this type".into()
                    }
                    _ => "matched nothing (normal if the program never awaits this type)".into(),
                }
            };
            let _ = writeln!(
                out,
                "{mark}{what:<width$}  {}  {found}",
                program.location(rule.span)
            );
            for ((_, m), u) in self.unread.0.range((r, 0)..(r + 1, 0)) {
                let (Some(member), Some((addr, why))) = (rule.members.get(*m), &u.first) else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "!!    `{}` ({}) could not be read on {} value{}; the first, at {addr:#x}: {why}",
                    member.name,
                    program.location(member.span),
                    u.count,
                    plural(u.count)
                );
            }
        }
        if quiet > 0 {
            let _ = writeln!(
                out,
                "   ({quiet} rule{} of the layouts it uses matched nothing: not listed)",
                plural(quiet)
            );
        }
        out
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
