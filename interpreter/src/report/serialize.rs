//! The report's own `Serialize`: as derived, field for field, except that a runtime's
//! pending tasks are read as they are written (`deferred`), and what reading them found
//! — warnings, hook output, tasks waiting for each other in a cycle — is written with the
//! report's warnings and notes, which come after the runtimes.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{Report, RuntimeReport};

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Report", 10)?;
        st.serialize_field("schema_version", &self.schema_version)?;
        st.serialize_field("layout", &self.layout)?;
        st.serialize_field("dump", &self.dump)?;
        st.serialize_field("binary", &self.binary)?;
        st.serialize_field("crash", &self.crash)?;
        st.serialize_field("runtimes", &self.runtimes)?;
        st.serialize_field("block_on", &self.block_on)?;
        st.serialize_field("threads", &self.threads)?;
        if self.runtimes.iter().any(|r| r.pending.is_some()) {
            // The runtimes are written: their tasks have all been read now.
            let (warnings, notes) = self.late_warnings_and_notes();
            st.serialize_field("warnings", &warnings)?;
            st.serialize_field("notes", &notes)?;
        } else {
            st.serialize_field("warnings", &self.warnings)?;
            st.serialize_field("notes", &self.notes)?;
        }
        st.end()
    }
}

impl Serialize for RuntimeReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let grouper = self.pending.as_ref().and_then(|p| p.grouper.as_ref());
        let grouped = self.groups.is_some() || grouper.is_some();
        let mut st = s.serialize_struct("RuntimeReport", if grouped { 9 } else { 8 })?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("address", &self.address)?;
        st.serialize_field("workers", &self.workers)?;
        st.serialize_field("threads", &self.threads)?;
        st.serialize_field("task_count", &self.task_count)?;
        st.serialize_field("tasks", &Tasks(self))?;
        if let Some(groups) = &self.groups {
            st.serialize_field("groups", groups)?;
        } else if let Some(g) = grouper {
            // The tasks were grouped as they were read and written, just above.
            let groups = g.lock().unwrap_or_else(|p| p.into_inner()).groups();
            st.serialize_field("groups", &groups)?;
        }
        st.serialize_field("fields", &self.fields)?;
        st.serialize_field("unavailable", &self.unavailable)?;
        st.end()
    }
}

/// A runtime's tasks: those read, then those pending, read window by window.
struct Tasks<'a>(&'a RuntimeReport);

impl Serialize for Tasks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::json::serialize_tasks(&self.0.tasks, self.0.pending.as_ref(), s)
    }
}
