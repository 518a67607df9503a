//! Type expressions as written in layouts (`alloc::sync::Arc<_>`, `Cell<T, S>`, `&[_]`),
//! their rendering in rustc's DWARF spelling, and matching them against DWARF type names.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeExpr {
    /// `a::b::C` or `a::b::C<args>`; without `<…>` a pattern matches every instantiation.
    Path {
        path: String,
        args: Option<Vec<TypeExpr>>,
    },
    /// `&T`, `&mut T`, `*const T`, `*mut T` (the prefix as written, e.g. "&mut ").
    Ptr {
        prefix: String,
        target: Box<TypeExpr>,
    },
    /// `[T]`
    Slice(Box<TypeExpr>),
    /// `(A, B)`
    Tuple(Vec<TypeExpr>),
    /// `_`: any one type.
    Wildcard,
    /// `..`: any remaining generic arguments.
    Rest,
}

impl fmt::Display for TypeExpr {
    /// rustc's spelling: `a::B<c::D, e::F>`, `&[u8]`, `(A, B)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeExpr::Path { path, args } => {
                f.write_str(path)?;
                if let Some(args) = args {
                    f.write_str("<")?;
                    write_list(f, args)?;
                    f.write_str(">")?;
                }
                Ok(())
            }
            TypeExpr::Ptr { prefix, target } => write!(f, "{prefix}{target}"),
            TypeExpr::Slice(t) => write!(f, "[{t}]"),
            TypeExpr::Tuple(items) => {
                f.write_str("(")?;
                write_list(f, items)?;
                f.write_str(")")
            }
            TypeExpr::Wildcard => f.write_str("_"),
            TypeExpr::Rest => f.write_str(".."),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[TypeExpr]) -> fmt::Result {
    for (i, a) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{a}")?;
    }
    Ok(())
}

impl TypeExpr {
    /// Replaces single-segment paths named like a variable (`T`) by the given types.
    pub fn substitute(&self, vars: &[(String, String)]) -> TypeExpr {
        match self {
            TypeExpr::Path { path, args: None } => match vars.iter().find(|(v, _)| v == path) {
                Some((_, ty)) => TypeExpr::Path {
                    path: ty.clone(),
                    args: None,
                },
                None => self.clone(),
            },
            TypeExpr::Path {
                path,
                args: Some(args),
            } => TypeExpr::Path {
                path: path.clone(),
                args: Some(args.iter().map(|a| a.substitute(vars)).collect()),
            },
            TypeExpr::Ptr { prefix, target } => TypeExpr::Ptr {
                prefix: prefix.clone(),
                target: Box::new(target.substitute(vars)),
            },
            TypeExpr::Slice(t) => TypeExpr::Slice(Box::new(t.substitute(vars))),
            TypeExpr::Tuple(items) => {
                TypeExpr::Tuple(items.iter().map(|a| a.substitute(vars)).collect())
            }
            TypeExpr::Wildcard | TypeExpr::Rest => self.clone(),
        }
    }

    /// Does the DWARF type name `name` match this pattern? Matching is structural on
    /// rustc's spelling: `_` takes one balanced generic argument, `..` the rest, and a
    /// path without `<…>` matches any instantiation of that path.
    pub fn matches(&self, name: &str) -> bool {
        matches_at(self, name.trim()).is_some_and(|rest| rest.is_empty())
    }

    /// The literal start of the path (up to a `{impl#*}` wildcard): every matching name
    /// starts with it, so it narrows a search over all type names.
    pub fn base_path(&self) -> Option<&str> {
        match self {
            TypeExpr::Path { path, .. } => Some(path.split("#*}").next().unwrap_or(path)),
            _ => None,
        }
    }
}

/// Matches a prefix of `s` against `pat`, returning what is left of `s`.
fn matches_at<'a>(pat: &TypeExpr, s: &'a str) -> Option<&'a str> {
    match pat {
        TypeExpr::Wildcard => Some(&s[balanced_len(s)..]),
        TypeExpr::Rest => Some(""),
        TypeExpr::Path { path, args } => {
            let rest = strip_path(path, s)?;
            match args {
                None => {
                    // The path must end here (not `Vec` matching `VecDeque`); any
                    // generic arguments that follow are accepted.
                    if rest.starts_with('<') {
                        let n = balanced_len(rest);
                        Some(&rest[n..])
                    } else if rest.is_empty() || rest.starts_with([',', '>', ']', ')', ';']) {
                        Some(rest)
                    } else {
                        None
                    }
                }
                Some(args) => {
                    let mut rest = rest.strip_prefix('<')?;
                    for (i, a) in args.iter().enumerate() {
                        if *a == TypeExpr::Rest {
                            let close = rest_of_list(rest)?;
                            rest = close;
                            break;
                        }
                        if i > 0 {
                            rest = rest.strip_prefix(", ").or_else(|| rest.strip_prefix(','))?;
                        }
                        rest = matches_at(a, rest)?;
                    }
                    rest.strip_prefix('>')
                }
            }
        }
        TypeExpr::Ptr { prefix, target } => matches_at(target, s.strip_prefix(prefix.as_str())?),
        TypeExpr::Slice(t) => matches_at(t, s.strip_prefix('[')?)?.strip_prefix(']'),
        TypeExpr::Tuple(items) => {
            let mut rest = s.strip_prefix('(')?;
            for (i, a) in items.iter().enumerate() {
                if i > 0 {
                    rest = rest.strip_prefix(", ")?;
                }
                rest = matches_at(a, rest)?;
            }
            rest.strip_prefix(')')
        }
    }
}

/// `s` without the leading `path`. In a pattern, `#*}` matches any number in a
/// compiler-numbered segment: `{impl#*}` matches `{impl#3}` (impl blocks are numbered in
/// source order, which changes between releases of a crate).
fn strip_path<'a>(path: &str, s: &'a str) -> Option<&'a str> {
    let mut rest = s;
    let mut pieces = path.split("#*}").peekable();
    while let Some(piece) = pieces.next() {
        rest = rest.strip_prefix(piece)?;
        if pieces.peek().is_some() {
            rest = rest.strip_prefix('#')?;
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = rest[digits..].strip_prefix('}')?;
        }
    }
    Some(rest)
}

/// Length of the balanced type text at the start of `s`, up to a top-level `,` or closer.
fn balanced_len(s: &str) -> usize {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        if is_arrow(s, i, c) {
            continue;
        }
        match c {
            '<' | '[' | '(' | '{' => depth += 1,
            '>' | ']' | ')' | '}' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 && c == '>' && i + 1 == s.len() {
                    return s.len();
                }
            }
            ',' if depth == 0 => return i,
            _ => {}
        }
    }
    s.len()
}

/// The `>` of a function type's `->` (`fn(u8) -> u16`, `dyn Fn() -> T`, as in closure
/// and service types): not the end of a generic list. A type name like actix-web's runs
/// to tens of kilobytes with many of them; counted as a bracket, one made every pattern
/// on that name fail.
fn is_arrow(s: &str, i: usize, c: char) -> bool {
    c == '>' && i > 0 && s.as_bytes()[i - 1] == b'-'
}

/// Skips the remaining arguments of a generic list, stopping at its closing `>`.
fn rest_of_list(s: &str) -> Option<&str> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        if is_arrow(s, i, c) {
            continue;
        }
        match c {
            '<' | '[' | '(' | '{' => depth += 1,
            '>' | ']' | ')' | '}' if depth > 0 => depth -= 1,
            '>' => return Some(&s[i..]),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str, args: Option<Vec<TypeExpr>>) -> TypeExpr {
        TypeExpr::Path {
            path: p.into(),
            args,
        }
    }

    #[test]
    fn bare_path_matches_any_instantiation_but_not_a_longer_name() {
        let p = path("alloc::vec::Vec", None);
        assert!(p.matches("alloc::vec::Vec<u8, alloc::alloc::Global>"));
        assert!(p.matches("alloc::vec::Vec"));
        assert!(!p.matches("alloc::vec::VecDeque<u8, alloc::alloc::Global>"));
    }

    #[test]
    fn wildcards_take_balanced_arguments() {
        let p = path(
            "alloc::sync::Arc",
            Some(vec![TypeExpr::Wildcard, TypeExpr::Wildcard]),
        );
        assert!(p.matches("alloc::sync::Arc<tokio::x::Handle<a::B<c, d>>, alloc::alloc::Global>"));
        assert!(!p.matches("alloc::sync::Arc<u8>"));
        let rest = path(
            "alloc::sync::Arc",
            Some(vec![TypeExpr::Wildcard, TypeExpr::Rest]),
        );
        assert!(rest.matches("alloc::sync::Arc<u8, alloc::alloc::Global>"));
    }

    /// Issue 18: an actix-web connection task's future type, 18 KB long with many
    /// `fn(…) -> …` arguments, matched no view, so tokio's `UnsafeCell` view never applied.
    #[test]
    fn function_arrows_are_not_closing_brackets() {
        let p = path("tokio::loom::std::unsafe_cell::UnsafeCell", None);
        let name = "tokio::loom::std::unsafe_cell::UnsafeCell<tokio::runtime::task::core::Stage<\
            futures_util::future::future::Map<app::Fut, fn(core::result::Result<u8, ()>) -> u16>>>";
        assert!(p.matches(name));
        let w = path(
            "futures_util::future::future::Map",
            Some(vec![TypeExpr::Wildcard, TypeExpr::Wildcard]),
        );
        assert!(w.matches("futures_util::future::future::Map<a::F, fn(u8) -> u16>"));
        let r = path(
            "futures_util::future::future::Map",
            Some(vec![TypeExpr::Rest]),
        );
        assert!(r.matches("futures_util::future::future::Map<a::F, fn(u8) -> u16>"));
    }

    #[test]
    fn numbered_segments_match_any_number() {
        let p = path(
            "tokio::sync::mpsc::unbounded::{impl#*}::recv::{async_fn_env#0}",
            None,
        );
        assert!(p.matches("tokio::sync::mpsc::unbounded::{impl#3}::recv::{async_fn_env#0}<u64>"));
        assert!(p.matches("tokio::sync::mpsc::unbounded::{impl#12}::recv::{async_fn_env#0}<u64>"));
        assert!(!p.matches("tokio::sync::mpsc::unbounded::{impl#}::recv::{async_fn_env#0}<u64>"));
        assert!(!p.matches("tokio::sync::mpsc::unbounded::{impl#3}::send::{async_fn_env#0}<u64>"));
    }

    #[test]
    fn slices_and_pointers() {
        let p = path(
            "alloc::boxed::Box",
            Some(vec![
                TypeExpr::Slice(Box::new(TypeExpr::Wildcard)),
                TypeExpr::Rest,
            ]),
        );
        assert!(p.matches("alloc::boxed::Box<[tokio::Mutex<u8>], alloc::alloc::Global>"));
        let r = TypeExpr::Ptr {
            prefix: "&".into(),
            target: Box::new(TypeExpr::Slice(Box::new(TypeExpr::Wildcard))),
        };
        assert!(r.matches("&[u8]"));
        assert!(!r.matches("&mut [u8]"));
    }

    #[test]
    fn substitution_renders_rustc_spelling() {
        let p = path(
            "tokio::runtime::task::core::Cell",
            Some(vec![path("T", None), path("S", None)]),
        );
        let s = p.substitute(&[
            ("T".into(), "app::f::{async_fn_env#0}".into()),
            (
                "S".into(),
                "alloc::sync::Arc<h::H, alloc::alloc::Global>".into(),
            ),
        ]);
        assert_eq!(
            s.to_string(),
            "tokio::runtime::task::core::Cell<app::f::{async_fn_env#0}, alloc::sync::Arc<h::H, alloc::alloc::Global>>"
        );
    }
}
