//! A report as JSON: indented through serde for a terminal; compact otherwise, by hand
//! around the tasks, each rendered on the worker that read it and written in order, so the
//! output is the same as a sequential one and only a bounded part is held at a time.

use std::io::{self, Write};

use serde::Serialize;
use serde::ser::SerializeSeq;

use super::serialize::Sink;
use super::{Report, RuntimeReport, TaskReport, json_task};
use crate::Pending;
use crate::chunks::render_in_order;

impl Report {
    /// Writes the report as JSON to `w` as it is serialized (it is never held whole in
    /// memory), indented if `pretty`.
    pub fn write_json(&self, w: impl Write, pretty: bool) -> io::Result<()> {
        let mut w = w;
        if pretty {
            serde_json::to_writer_pretty(&mut w, self)?;
        } else {
            w.write_all(b"{")?;
            self.write_fields(&mut Compact::new(&mut w))?;
            w.write_all(b"}")?;
        }
        w.write_all(b"\n")
    }
}

/// Compact JSON: an object's fields through serde_json, the tasks by `json_task`.
struct Compact<'w, W> {
    w: &'w mut W,
    first: bool,
}

impl<'w, W: Write> Compact<'w, W> {
    fn new(w: &'w mut W) -> Self {
        Compact { w, first: true }
    }

    /// `"key":`, after a comma unless it is the object's first.
    fn key(&mut self, key: &str) -> io::Result<()> {
        if !std::mem::take(&mut self.first) {
            self.w.write_all(b",")?;
        }
        write!(self.w, "\"{key}\":")
    }
}

impl<W: Write> Sink for Compact<'_, W> {
    type Error = io::Error;

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> io::Result<()> {
        self.key(key)?;
        Ok(serde_json::to_writer(&mut *self.w, v)?)
    }

    fn runtimes(&mut self, runtimes: &[RuntimeReport]) -> io::Result<()> {
        self.key("runtimes")?;
        self.w.write_all(b"[")?;
        for (i, runtime) in runtimes.iter().enumerate() {
            self.w.write_all(if i == 0 { b"{" } else { b",{" })?;
            runtime.write_fields(&mut Compact::new(&mut *self.w))?;
            self.w.write_all(b"}")?;
        }
        self.w.write_all(b"]")
    }

    /// The tasks read (rendered on every thread, a chunk at a time), then the pending ones,
    /// read and rendered by the reader's workers while the ones before are written.
    fn tasks(&mut self, runtime: &RuntimeReport) -> io::Result<()> {
        self.key("tasks")?;
        self.w.write_all(b"[")?;
        let mut first = true;
        let w = &mut *self.w;
        // A chunk of tasks at a time, each after a comma: the list's first is written
        // without it.
        // A chunk may hold no task (none of it shown, `--task`): it does not count as first.
        let mut write = |json: &Vec<u8>| match json.is_empty() || !std::mem::take(&mut first) {
            true => w.write_all(json),
            false => w.write_all(json.get(1..).unwrap_or_default()),
        };
        render_in_order(
            &runtime.tasks,
            |t, json: &mut Vec<u8>| {
                json.push(b',');
                json_task::write_task(json, t);
            },
            &mut write,
        )?;
        if let Some(p) = &runtime.pending {
            p.stream(
                |t, json: &mut Vec<u8>| {
                    json.push(b',');
                    json_task::write_task(json, &t);
                },
                &mut write,
            )?;
        }
        w.write_all(b"]")
    }
}

/// A runtime's tasks through serde (YAML, indented JSON), one by one: those read, then
/// the pending ones, read by the reader's workers while the ones before are written.
pub fn serialize_tasks<S: serde::Serializer>(
    tasks: &[TaskReport],
    pending: Option<&Pending>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let total = tasks.len() + pending.map_or(0, |p| p.listed().count());
    let mut seq = s.serialize_seq(Some(total))?;
    for task in tasks {
        seq.serialize_element(task)?;
    }
    if let Some(p) = pending {
        p.stream(
            |t, chunk: &mut Vec<TaskReport>| chunk.push(t),
            |chunk| chunk.iter().try_for_each(|t| seq.serialize_element(t)),
        )?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use crate::{Hex, Report, RuntimeReport, TaskReport};

    fn report(tasks: usize) -> Report {
        let task = |i: usize| TaskReport {
            state: Some("idle".into()),
            ..TaskReport::new(Some(i as u64), Hex(0x1000 + i as u64))
        };
        let mut r = Report {
            schema_version: crate::SCHEMA_VERSION,
            layout: crate::LayoutInfo {
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

    /// A report built by hand may list tasks it cannot read: every format shows them,
    /// listed (id and address), after the tasks already read.
    #[test]
    fn pending_tasks_without_a_reader_are_listed_in_every_format() {
        use crate::Pending;
        let mut r = report(1);
        r.runtimes[0].pending = Some(Pending::unread(7, 0x70));
        let mut json = Vec::new();
        r.write_json(&mut json, false).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let ids: Vec<_> = v["runtimes"][0]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64())
            .collect();
        assert_eq!(ids, [Some(0), Some(7)]);
        let text = crate::render_text(&r, Default::default());
        assert!(
            text.contains("task 0 [idle]") && text.contains("task 7 [?]"),
            "{text}"
        );
        assert!(r.to_yaml().contains("id: 7"));
    }

    #[test]
    fn compact_parallel_output_is_the_pretty_output_without_whitespace() {
        // Many chunks, so their order is checked too.
        let r = report(crate::chunks::CHUNK * 64 + 5);
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
