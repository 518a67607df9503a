//! Writing a report as JSON. Indented for a person at a terminal; compact otherwise, with
//! the tasks (nearly all of a large report) serialized in parallel: windows of tasks are
//! rendered on the worker threads, then copied out in order, so the output is the same
//! as a sequential one and only one window is held at a time. A million tasks make about
//! a gigabyte of JSON; sequentially that was a third of the run.

use std::cell::Cell;

use serde::ser::SerializeSeq;

use super::{Report, TaskReport};
use crate::deferred::Pending;

/// Tasks rendered per window (each worker takes a share of a window).
pub(crate) const WINDOW: usize = 8192;

thread_local! {
    /// Set while `write_json` writes compact output on this thread.
    static PARALLEL_TASKS: Cell<bool> = const { Cell::new(false) };
}

impl Report {
    /// Writes the report as JSON to `w` as it is serialized (it is never held whole in
    /// memory), indented if `pretty`.
    pub fn write_json(&self, w: impl std::io::Write, pretty: bool) -> std::io::Result<()> {
        let mut w = w;
        if pretty {
            serde_json::to_writer_pretty(&mut w, self)?;
        } else {
            PARALLEL_TASKS.with(|p| p.set(true));
            let written = serde_json::to_writer(&mut w, self);
            PARALLEL_TASKS.with(|p| p.set(false));
            written?;
        }
        w.write_all(b"\n")
    }
}

/// A runtime's tasks: in parallel windows for compact output, else one by one; then its
/// pending tasks (`deferred`), each window read, written and dropped before the next.
pub fn serialize_tasks<S: serde::Serializer>(
    tasks: &[TaskReport],
    pending: Option<&Pending>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let parallel = PARALLEL_TASKS.with(Cell::get);
    let total = tasks.len() + pending.map_or(0, |p| p.tasks.len());
    let mut seq = s.serialize_seq(Some(total))?;
    for window in tasks.chunks(WINDOW) {
        write_window(&mut seq, window, parallel)?;
    }
    if let Some(p) = pending {
        for window in p.tasks.chunks(WINDOW) {
            match &p.reader {
                // Each task rendered where it was read (compact output).
                Some(reader) if parallel => {
                    let rendered =
                        reader.read_with(p, window, |t| serde_json::value::to_raw_value(&t));
                    for task in rendered {
                        seq.serialize_element(&task.map_err(serde::ser::Error::custom)?)?;
                    }
                }
                Some(reader) => write_window(&mut seq, &reader.read(p, window), false)?,
                // Not attached to a dump (a report built by hand): listed, not read.
                None => {
                    let listed: Vec<TaskReport> = window
                        .iter()
                        .map(|t| TaskReport::new(t.id, t.address))
                        .collect();
                    write_window(&mut seq, &listed, parallel)?;
                }
            }
        }
    }
    seq.end()
}

fn write_window<Q: SerializeSeq>(
    seq: &mut Q,
    window: &[TaskReport],
    parallel: bool,
) -> Result<(), Q::Error> {
    use rayon::prelude::*;
    if !parallel {
        for task in window {
            seq.serialize_element(task)?;
        }
        return Ok(());
    }
    let rendered: Vec<Box<serde_json::value::RawValue>> = window
        .par_iter()
        .map(serde_json::value::to_raw_value)
        .collect::<Result<_, _>>()
        .map_err(serde::ser::Error::custom)?;
    for task in &rendered {
        seq.serialize_element(task)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::report::{Hex, Report, RuntimeReport, TaskReport};

    fn report(tasks: usize) -> Report {
        let task = |i: usize| TaskReport {
            state: Some("idle".into()),
            ..TaskReport::new(Some(i as u64), Hex(0x1000 + i as u64))
        };
        let mut r = Report {
            schema_version: crate::report::SCHEMA_VERSION,
            layout: crate::report::LayoutInfo {
                name: "test".into(),
                version: "1".into(),
            },
            dump: None,
            binary: None,
            crash: None,
            runtimes: vec![],
            block_on: vec![],
            threads: vec![],
            warnings: vec!["a warning".into()],
            notes: vec![],
            usage: None,
            timings: Default::default(),
        };
        r.runtimes.push(RuntimeReport {
            kind: "test".into(),
            address: Hex(1),
            workers: None,
            threads: vec![],
            task_count: None,
            tasks: (0..tasks).map(task).collect(),
            pending: None,
            groups: None,
            fields: Default::default(),
            unavailable: Default::default(),
        });
        r
    }

    #[test]
    fn compact_parallel_output_is_the_pretty_output_without_whitespace() {
        // More than one window, so the windows' order is checked too.
        let r = report(super::WINDOW * 2 + 5);
        let mut compact = Vec::new();
        r.write_json(&mut compact, false).unwrap();
        let mut pretty = Vec::new();
        r.write_json(&mut pretty, true).unwrap();
        let a: serde_json::Value = serde_json::from_slice(&compact).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["runtimes"][0]["tasks"][16388]["id"], 16388);
        assert!(compact.len() < pretty.len());
    }
}
