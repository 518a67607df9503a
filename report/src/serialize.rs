//! The report's own `Serialize`, field for field, for any `Sink` (serde's serializers and
//! the compact JSON writer), except that pending tasks are read as they are written and
//! what reading them found is written with the warnings and notes after the runtimes.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{Report, RuntimeReport};

/// Where a report's fields go, in order.
pub(super) trait Sink {
    type Error;
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T)
    -> Result<(), Self::Error>;
    fn runtimes(&mut self, runtimes: &[RuntimeReport]) -> Result<(), Self::Error>;
    fn tasks(&mut self, runtime: &RuntimeReport) -> Result<(), Self::Error>;
}

impl Report {
    pub(super) fn write_fields<K: Sink>(&self, k: &mut K) -> Result<(), K::Error> {
        k.field("schema_version", &self.schema_version)?;
        k.field("layout", &self.layout)?;
        k.field("dump", &self.dump)?;
        k.field("binary", &self.binary)?;
        k.field("crash", &self.crash)?;
        k.runtimes(&self.runtimes)?;
        k.field("block_on", &self.block_on)?;
        k.field("threads", &self.threads)?;
        if self.runtimes.iter().any(|r| r.pending.is_some()) {
            // The runtimes are written: their tasks have all been read now.
            let (warnings, notes) = self.late_warnings_and_notes();
            k.field("warnings", &warnings)?;
            k.field("notes", &notes)
        } else {
            k.field("warnings", &self.warnings)?;
            k.field("notes", &self.notes)
        }
    }
}

impl RuntimeReport {
    fn grouped(&self) -> bool {
        self.groups.is_some() || self.pending.as_ref().is_some_and(|p| p.grouper.is_some())
    }

    pub(super) fn write_fields<K: Sink>(&self, k: &mut K) -> Result<(), K::Error> {
        k.field("kind", &self.kind)?;
        k.field("address", &self.address)?;
        k.field("workers", &self.workers)?;
        k.field("threads", &self.threads)?;
        k.field("task_count", &self.task_count)?;
        k.tasks(self)?;
        if let Some(groups) = &self.groups {
            k.field("groups", groups)?;
        } else if let Some(g) = self.pending.as_ref().and_then(|p| p.grouper.as_ref()) {
            // The tasks were grouped as they were read and written, just above.
            let groups = crate::lock(g).groups();
            k.field("groups", &groups)?;
        }
        k.field("fields", &self.fields)?;
        k.field("unavailable", &self.unavailable)
    }
}

/// A serde serializer's struct as a `Sink`.
struct Serde<S>(S);

impl<S: SerializeStruct> Sink for Serde<S> {
    type Error = S::Error;
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), S::Error> {
        self.0.serialize_field(key, v)
    }
    fn runtimes(&mut self, runtimes: &[RuntimeReport]) -> Result<(), S::Error> {
        self.0.serialize_field("runtimes", runtimes)
    }
    fn tasks(&mut self, runtime: &RuntimeReport) -> Result<(), S::Error> {
        self.0.serialize_field("tasks", &Tasks(runtime))
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = Serde(s.serialize_struct("Report", 10)?);
        self.write_fields(&mut st)?;
        st.0.end()
    }
}

impl Serialize for RuntimeReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = if self.grouped() { 9 } else { 8 };
        let mut st = Serde(s.serialize_struct("RuntimeReport", len)?);
        self.write_fields(&mut st)?;
        st.0.end()
    }
}

/// A runtime's tasks: those read, then those pending, read window by window.
struct Tasks<'a>(&'a RuntimeReport);

impl Serialize for Tasks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::json::serialize_tasks(&self.0.tasks, self.0.pending.as_ref(), s)
    }
}
