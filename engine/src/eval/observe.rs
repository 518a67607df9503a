//! What evaluation tells as it goes: a root evaluated, a value a rule matched, a task
//! member not read. The evaluator only tells; `Usage` listens and counts, for `check
//! --explain` and the run's warnings about members not read.

use crate::explain::Usage;

/// One thing evaluation saw.
pub enum Seen<'a> {
    /// Root `root` is evaluated on this many subjects (threads, frames, the static).
    RootSubjects { root: usize, count: u64 },
    /// Root `root` yielded a value, or None/null (`absent`: no runtime on that thread).
    RootValue { root: usize, absent: bool },
    /// Root `root` could not be evaluated: the first such error is what is said of it.
    RootError { root: usize, error: &'a str },
    /// Rule `rule` matched a value.
    Matched { rule: usize },
    /// Member `member` of task rule `rule` could not be read on the task at `addr`.
    Unread {
        rule: usize,
        member: usize,
        addr: u64,
        why: &'a str,
    },
}

/// What listens to evaluation. Each evaluator has its own, merged in task order with the
/// others' (`Evaluator::drain`, `absorb`), as its warnings and steps are.
pub trait Observer {
    fn seen(&mut self, what: Seen<'_>);
}

impl Observer for Usage {
    fn seen(&mut self, what: Seen<'_>) {
        match what {
            Seen::RootSubjects { root, count } => {
                if let Some(u) = self.roots.get_mut(root) {
                    u.subjects = count;
                }
            }
            Seen::RootValue { root, absent } => {
                if let Some(u) = self.roots.get_mut(root) {
                    match absent {
                        true => u.absent += 1,
                        false => u.values += 1,
                    }
                }
            }
            Seen::RootError { root, error } => {
                if let Some(u) = self.roots.get_mut(root) {
                    u.error.get_or_insert_with(|| error.to_string());
                }
            }
            Seen::Matched { rule } => self.hit(rule),
            Seen::Unread {
                rule,
                member,
                addr,
                why,
            } => self
                .unread
                .add_one((rule, member), addr, &|| why.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Observer, Seen};
    use crate::explain::{RootUse, Usage};

    /// A root's counts, its first error kept (a later one is about a later subject), a
    /// rule's matches and a member not read on two tasks, the first of them named.
    #[test]
    fn usage_counts_what_it_is_told() {
        let mut u = Usage {
            roots: vec![RootUse::default()],
            rules: vec![0, 0],
            unread: Default::default(),
        };
        u.seen(Seen::RootSubjects { root: 0, count: 3 });
        u.seen(Seen::RootValue {
            root: 0,
            absent: false,
        });
        u.seen(Seen::RootValue {
            root: 0,
            absent: true,
        });
        u.seen(Seen::RootError {
            root: 0,
            error: "first",
        });
        u.seen(Seen::RootError {
            root: 0,
            error: "second",
        });
        // Out of range: ignored, as a hostile or stale index must be.
        u.seen(Seen::RootValue {
            root: 7,
            absent: false,
        });
        u.seen(Seen::Matched { rule: 1 });
        u.seen(Seen::Matched { rule: 1 });
        u.seen(Seen::Matched { rule: 9 });
        for addr in [0x10, 0x20] {
            u.seen(Seen::Unread {
                rule: 1,
                member: 0,
                addr,
                why: "not mapped",
            });
        }
        let r = &u.roots[0];
        assert_eq!((r.subjects, r.values, r.absent), (3, 1, 1));
        assert_eq!(r.error.as_deref(), Some("first"));
        assert_eq!(u.rules, [0, 2]);
        let unread = &u.unread.0[&(1, 0)];
        assert_eq!(unread.count, 2);
        assert_eq!(unread.first, Some((0x10, "not mapped".to_string())));
    }
}
