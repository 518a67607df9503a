//! One way to write a report, whatever the format: text, JSON, YAML and the wait-for
//! graph are each a `Writer`, which the command chooses and hands the report and output.

use std::io::{self, Write};

use crate::{Report, TextOptions, task_views, text};

/// Writes a whole report to `w` as it is made: tasks still pending are read as they are
/// written, so a million of them are never held. `terminal`: a person reads it there.
pub trait Writer {
    fn write(&self, report: &Report, w: &mut dyn Write, terminal: bool) -> io::Result<()>;
}

/// The text report, as `layoutdump run` prints it.
pub struct Text(pub TextOptions);

/// JSON: indented for a person at a terminal, compact (and written in parallel) for a
/// program.
pub struct Json;

pub struct Yaml;

/// The wait-for graph in Graphviz DOT (`--graph dot`) of the tasks shown, read as it is
/// made.
pub struct Dot;

impl Writer for Text {
    fn write(&self, report: &Report, w: &mut dyn Write, _terminal: bool) -> io::Result<()> {
        text::write_text(report, self.0, w)
    }
}

impl Writer for Json {
    fn write(&self, report: &Report, w: &mut dyn Write, terminal: bool) -> io::Result<()> {
        report.write_json(w, terminal)
    }
}

impl Writer for Yaml {
    fn write(&self, report: &Report, w: &mut dyn Write, _terminal: bool) -> io::Result<()> {
        report.write_yaml(w)
    }
}

impl Writer for Dot {
    fn write(&self, report: &Report, w: &mut dyn Write, _terminal: bool) -> io::Result<()> {
        task_views::write_dot(&task_views::WaitGraph::of(report), w)
    }
}
