//! Diagnostics for layouts: every error found, each with its file, line and column, the
//! offending line and a caret, and what to do. Collected, never stopped at the first.

use std::fmt;

use crate::source::{SourceFile, Span};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:col: error: message`, the line, a caret under the span, and the help.
    pub fn render(&self, files: &[SourceFile]) -> String {
        let Some(file) = files.get(self.span.file.0 as usize) else {
            return format!("error: {}", self.message);
        };
        let (line, col) = file.line_col(self.span.start);
        let text = file.line_text(line);
        let width = {
            let (end_line, end_col) = file.line_col(self.span.end);
            if end_line == line {
                end_col.saturating_sub(col).max(1)
            } else {
                text.chars().count().saturating_sub(col - 1).max(1)
            }
        };
        let mut out = format!("{}:{line}:{col}: error: {}\n", file.name, self.message);
        out.push_str(&format!("  {line:>4} | {text}\n"));
        out.push_str(&format!(
            "       | {}{}\n",
            " ".repeat(col - 1),
            "^".repeat(width)
        ));
        if let Some(help) = &self.help {
            out.push_str(&format!("       = help: {help}\n"));
        }
        out
    }
}

/// All the diagnostics of one compilation, with the files they point into.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub files: Vec<SourceFile>,
    pub list: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.list {
            f.write_str(&d.render(&self.files))?;
        }
        write!(
            f,
            "{} error{} in layout",
            self.list.len(),
            if self.list.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}
