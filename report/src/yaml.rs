//! The report as YAML, field by field, each task rendered through yaml_serde on the thread
//! that read it and indented where it goes; the writer only writes them out, in order.
//! The text is the one yaml_serde writes for the whole report (`tests/scale.rs` holds it).

use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::serialize::Sink;
use super::{Report, RuntimeReport, TaskReport};
use crate::chunks::render_in_order;

impl Report {
    /// Writes the report as YAML to `w`; pending tasks are read (on every thread) while
    /// the ones before them are written (see the module's comment).
    pub fn write_yaml(&self, mut w: impl Write) -> io::Result<()> {
        self.write_fields(&mut Yaml {
            w: &mut w,
            first: "",
            rest: "",
        })
    }
}

/// Writes each field as `key: value` at an indentation: `first` before the first line
/// written (a runtime's `- `), `rest` before every other line that is not empty.
struct Yaml<'w> {
    w: &'w mut dyn Write,
    first: &'static str,
    rest: &'static str,
}

impl Yaml<'_> {
    fn put(&mut self, text: &str) -> io::Result<()> {
        for line in text.split_inclusive('\n') {
            if line != "\n" {
                self.w
                    .write_all(std::mem::replace(&mut self.first, self.rest).as_bytes())?;
            }
            self.w.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

impl Sink for Yaml<'_> {
    type Error = io::Error;

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> io::Result<()> {
        self.put(&entry(key, v)?)
    }

    fn runtimes(&mut self, runtimes: &[RuntimeReport]) -> io::Result<()> {
        if runtimes.is_empty() {
            return self.put("runtimes: []\n");
        }
        self.put("runtimes:\n")?;
        for runtime in runtimes {
            runtime.write_fields(&mut Yaml {
                w: &mut *self.w,
                first: "- ",
                rest: "  ",
            })?;
        }
        Ok(())
    }

    /// A runtime's tasks: those read (rendered a chunk at a time on every thread), then
    /// the pending ones, read and rendered by the reader's workers. The runtime's fields
    /// are two spaces in: a task is `  - ` and its other lines four spaces in.
    fn tasks(&mut self, runtime: &RuntimeReport) -> io::Result<()> {
        // `tasks:` comes before the first task shown, `tasks: []` after none: which are
        // shown is known as they are read (`--state`, `--match`). All are read all the
        // same: what reading finds is the report's.
        let mut headed = false;
        // A task that cannot be rendered (it cannot: a report is strings and numbers) is
        // written as the error, which the writer then returns.
        let render = |t: &TaskReport, chunk: &mut Chunk| {
            if chunk.error.is_none()
                && let Err(e) = task(t, &mut chunk.yaml)
            {
                chunk.error = Some(e);
            }
        };
        let mut write = |chunk: &Chunk| {
            if !headed && !chunk.yaml.is_empty() {
                headed = true;
                self.put("tasks:\n")?;
            }
            // The tasks before one that failed, then the error, as one by one.
            self.w.write_all(chunk.yaml.as_bytes())?;
            match &chunk.error {
                None => Ok(()),
                Some(e) => Err(io::Error::other(e.to_string())),
            }
        };
        render_in_order(&runtime.tasks, render, &mut write)?;
        if let Some(p) = &runtime.pending {
            p.stream(|t, chunk: &mut Chunk| render(&t, chunk), &mut write)?;
        }
        if !headed {
            self.put("tasks: []\n")?;
        }
        Ok(())
    }
}

/// `key: value` as yaml_serde writes that one entry of a map.
fn entry<T: Serialize + ?Sized>(key: &str, v: &T) -> io::Result<String> {
    struct Entry<'a, T: ?Sized>(&'a str, &'a T);
    impl<T: Serialize + ?Sized> Serialize for Entry<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(self.0, self.1)?;
            map.end()
        }
    }
    serde_yaml::to_string(&Entry(key, v)).map_err(io::Error::other)
}

/// A chunk of pending tasks as YAML, or why one could not be rendered (the rest of the
/// chunk is not: the writer returns the error).
#[derive(Default)]
struct Chunk {
    yaml: String,
    error: Option<io::Error>,
}

impl crate::pending::Rendered for Chunk {
    fn clear(&mut self) {
        self.yaml.clear();
        self.error = None;
    }
}

/// `t` as an item of a runtime's `tasks`, added to `out`: `  - ` before its first line,
/// four spaces before its others (empty lines, inside a block scalar, stay empty).
fn task(t: &TaskReport, out: &mut String) -> io::Result<()> {
    let yaml = serde_yaml::to_string(t).map_err(io::Error::other)?;
    out.reserve(yaml.len() + yaml.len() / 8);
    for (i, line) in yaml.split_inclusive('\n').enumerate() {
        if line != "\n" {
            out.push_str(if i == 0 { "  - " } else { "    " });
        }
        out.push_str(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{
        AwaitFrame, BlockedOn, Branch, DumpInfo, FieldValue, Fields, FrameHead, FutureRef, Hex,
        LayoutInfo, Report, RuntimeReport, SourceRef, TaskReport,
    };
    use crate::Pending;

    /// Strings libyaml quotes, folds into blocks or escapes, at every depth they occur.
    const AWKWARD: [&str; 12] = [
        "plain",
        "",
        " leading and trailing ",
        "two lines\nsecond",
        "blank line\n\nafter it\n",
        "ends with a newline\n",
        "key: value # comment",
        "'quoted' \"twice\"",
        "0x1f",
        "null",
        "ünïcødé ✓ and a tab\there",
        "- looks like a list item",
    ];

    fn fields(depth: usize) -> Fields {
        let mut f = Fields::new();
        for (i, s) in AWKWARD.iter().enumerate() {
            f.insert(format!("s{i}"), FieldValue::Str(s.to_string()));
        }
        f.insert("n", FieldValue::Int(-3));
        f.insert("a", FieldValue::Address(Hex(0xdead_beef)));
        f.insert(
            "list",
            FieldValue::List(vec![FieldValue::Int(1), FieldValue::Str("x\ny".into())]),
        );
        f.insert("empty", FieldValue::List(vec![]));
        if depth > 0 {
            f.insert(
                "collection",
                FieldValue::Collection {
                    len: 9,
                    first: vec![FieldValue::Str(AWKWARD[4].into()); 2],
                },
            );
        }
        f
    }

    fn frame(note: Option<&str>, branches: Vec<Branch>) -> AwaitFrame {
        AwaitFrame {
            head: std::sync::Arc::new(FrameHead {
                function: "app::serve::{closure#0}".into(),
                future: "app::serve::{async_block_env#0}<T: 'a>".into(),
                state: Some("Suspend0".into()),
                location: Some(SourceRef {
                    file: Some("src/main.rs".into()),
                    line: 42,
                }),
                via: Some(crate::Via::Rule),
                own: false,
            }),
            address: Hex(0x7f00_0000_1000),
            locals: fields(1),
            note: note.map(str::to_string),
            branches,
        }
    }

    fn blocked() -> BlockedOn {
        BlockedOn {
            kind: "sleep".into(),
            future: "tokio::time::sleep::Sleep".into(),
            address: Hex(0x10),
            fields: fields(0),
        }
    }

    fn task(id: u64) -> TaskReport {
        let mut t = TaskReport::new(Some(id), Hex(0x1000 + id));
        t.state = Some("idle".into());
        t.flags = vec!["JOIN_INTEREST".into(), "NOTIFIED".into()];
        t.future = Some(FutureRef {
            ty: "app::main::{async_block_env#0}".into(),
            address: Hex(0x2000),
        });
        let branch = Branch {
            backtrace: vec![frame(None, vec![])],
            blocked_on: Some(blocked()),
        };
        t.backtrace = vec![
            frame(Some(AWKWARD[4]), vec![branch.clone(), branch]),
            frame(None, vec![]),
        ];
        t.blocked_on = Some(blocked());
        t.fields = fields(1);
        for s in AWKWARD {
            t.unavailable.insert(format!("u{}", s.len()), s.to_string());
        }
        t
    }

    fn runtime(kind: &str, tasks: Vec<TaskReport>) -> RuntimeReport {
        RuntimeReport {
            kind: kind.into(),
            address: Hex(1),
            workers: Some(2),
            threads: vec![10, 11],
            task_count: Some(tasks.len() as u64),
            tasks,
            pending: None,
            groups: None,
            fields: fields(1),
            unavailable: Default::default(),
        }
    }

    /// Written field by field with the tasks rendered on their own, the report is byte
    /// for byte what yaml_serde writes for the whole of it (its `Serialize`), with
    /// strings libyaml must quote, escape or write as blocks, at every depth.
    #[test]
    fn the_yaml_is_that_of_the_whole_report() {
        let mut pending = runtime("pending", vec![task(1)]);
        pending.pending = Some(Pending::unread(7, 0x70));
        let report = Report {
            schema_version: super::super::SCHEMA_VERSION,
            layout: LayoutInfo {
                name: "test".into(),
                version: "1.0".into(),
            },
            dump: Some(DumpInfo {
                path: "dumps/a b: c.core".into(),
                format: "ELF core".into(),
                pid: Some(7),
                process_name: None,
            }),
            binary: None,
            crash: None,
            runtimes: vec![
                runtime("multi_thread", (1..4).map(task).collect()),
                runtime("empty", vec![]),
                pending,
            ],
            block_on: vec![],
            threads: vec![],
            warnings: AWKWARD.iter().map(|s| s.to_string()).collect(),
            notes: vec![],
            usage: None,
            timings: Default::default(),
        };
        let mut ours = Vec::new();
        report.write_yaml(&mut ours).unwrap();
        let whole = serde_yaml::to_string(&report).unwrap();
        let ours = String::from_utf8(ours).unwrap();
        assert!(
            ours.contains("\n\n"),
            "a block with a blank line is written"
        );
        assert_eq!(ours, whole);

        let none = Report {
            runtimes: vec![],
            ..report
        };
        let mut ours = Vec::new();
        none.write_yaml(&mut ours).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_yaml::to_string(&none).unwrap()
        );
    }
}
