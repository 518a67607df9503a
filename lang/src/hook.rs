//! rhai hooks, for a value no declarative rule can decode: the sandbox every hook runs in
//! (one engine for `check` and `run`), and compiling a hook's body with rhai's errors
//! moved to the hook's line in the layout.

use crate::source::Span;

/// Bounds a hook runs within. Each has a default and a `--limit-hook-*` flag; rhai stops
/// the script with an error when one is hit, and the value becomes unavailable.
#[derive(Debug, Clone, Copy)]
pub struct HookLimits {
    /// rhai operations (roughly: expressions evaluated) in one call of a hook.
    pub operations: u64,
    /// Nested calls of functions the hook defines.
    pub call_depth: usize,
    /// Bytes of one string, and items of one array or map.
    pub string: usize,
    pub array: usize,
}

impl Default for HookLimits {
    fn default() -> Self {
        HookLimits {
            operations: 100_000,
            call_depth: 16,
            string: 64 * 1024,
            array: 16 * 1024,
        }
    }
}

/// The engine hooks run in. rhai itself has no file, network or process access; with the
/// `no_module` feature there is no `import` either, and `eval` (which would compile new
/// code at run time, outside `check`'s reach) is turned off. print and debug go nowhere
/// here: the interpreter replaces both to capture them into the report.
pub fn sandbox(limits: &HookLimits) -> rhai::Engine {
    let mut engine = rhai::Engine::new();
    engine
        .set_max_operations(limits.operations.max(1))
        .set_max_call_levels(limits.call_depth)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(limits.string)
        .set_max_array_size(limits.array)
        .set_max_map_size(limits.array)
        .set_max_variables(256)
        .set_max_functions(64)
        .set_strict_variables(true)
        .disable_symbol("eval")
        .on_print(|_| {})
        .on_debug(|_, _, _| {});
    engine
}

/// A hook's body compiled with its parameters as the variables in scope.
pub fn compile(
    engine: &rhai::Engine,
    params: &[String],
    body: &str,
) -> Result<rhai::AST, (rhai::Position, String)> {
    let mut scope = rhai::Scope::new();
    for p in params {
        scope.push_dynamic(p.as_str(), rhai::Dynamic::UNIT);
    }
    engine
        .compile_with_scope(&scope, body)
        .map_err(|e| (e.position(), e.err_type().to_string()))
}

/// The span in the layout of a position in a hook's body, which starts at byte `body`
/// of the layout's text. Falls back to the hook's whole span when rhai gives none.
pub fn position_span(text: &str, body: Span, pos: rhai::Position, whole: Span) -> Span {
    let (Some(line), Some(col)) = (pos.line(), pos.position().or(Some(1))) else {
        return whole;
    };
    let start = body.start as usize;
    let Some(tail) = text.get(start..body.end as usize) else {
        return whole;
    };
    let mut offset = 0usize;
    for l in tail.split_inclusive('\n').take(line.saturating_sub(1)) {
        offset += l.len();
    }
    let line_text = tail[offset.min(tail.len())..].lines().next().unwrap_or("");
    let in_line: usize = line_text
        .chars()
        .take(col.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let at = (start + offset + in_line).min(body.end as usize) as u32;
    Span {
        file: body.file,
        start: at,
        end: (at + 1).min(body.end.max(at + 1)),
    }
}
