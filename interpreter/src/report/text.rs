//! The text report for people: a header naming what was read, then each runtime with its
//! tasks one per line (id, state, root future), then threads and warnings.

use std::fmt::Write as _;

use super::{FieldValue, Report};

pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    if let Some(d) = &r.dump {
        let name = d.process_name.as_deref().unwrap_or("?");
        let pid = d.pid.map_or(String::new(), |p| format!(" pid {p}"));
        let _ = writeln!(
            s,
            "dump: {} ({}, {name}{pid}, {} threads)",
            d.path,
            d.format,
            r.threads.len()
        );
    }
    if let Some(b) = &r.binary {
        let _ = writeln!(
            s,
            "binary: {} (build-id {})",
            b.path,
            b.build_id.as_deref().unwrap_or("none")
        );
    }
    let _ = writeln!(s, "layout: {} {}", r.layout.name, r.layout.version);
    if r.runtimes.is_empty() {
        let _ = writeln!(s, "\nno runtime found (see the warnings below)");
    }
    for rt in &r.runtimes {
        let workers = rt.workers.map_or(String::new(), |w| {
            format!(", {w} worker{}", if w == 1 { "" } else { "s" })
        });
        let _ = writeln!(
            s,
            "\nruntime {} @ {:#x}{workers}, {} tasks",
            rt.kind,
            rt.address.0,
            rt.tasks.len()
        );
        if !rt.threads.is_empty() {
            let tids: Vec<String> = rt.threads.iter().map(|t| t.to_string()).collect();
            let _ = writeln!(s, "  threads: {}", tids.join(" "));
        }
        for (name, v) in &rt.fields {
            let _ = writeln!(s, "  {name}: {}", show(v));
        }
        for (name, why) in &rt.unavailable {
            let _ = writeln!(s, "  {name}: unavailable ({why})");
        }
        for t in &rt.tasks {
            let id = t.id.map_or("?".to_string(), |i| i.to_string());
            let state = t.state.as_deref().unwrap_or("?");
            let future = t
                .future
                .as_ref()
                .map_or("<future unavailable>", |f| f.ty.as_str());
            let _ = writeln!(s, "  task {id:>5}  {state:<9}  {future}");
            for (name, v) in &t.fields {
                let _ = writeln!(s, "             {name}: {}", show(v));
            }
            for (name, why) in &t.unavailable {
                let _ = writeln!(s, "             {name}: unavailable ({why})");
            }
        }
    }
    if !r.threads.is_empty() {
        let _ = writeln!(s, "\nthreads:");
        for t in &r.threads {
            let name = t.name.as_deref().unwrap_or("");
            let rt = t
                .runtime
                .map_or(String::new(), |a| format!("  runtime @ {:#x}", a.0));
            let _ = writeln!(s, "  {:>7} {name:<16} pc {:#x}{rt}", t.tid, t.pc.0);
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "\nwarnings:");
        for w in &r.warnings {
            let _ = writeln!(s, "  - {w}");
        }
    }
    s
}

fn show(v: &FieldValue) -> String {
    match v {
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Str(s) => s.clone(),
        FieldValue::List(items) => items.iter().map(show).collect::<Vec<_>>().join(" | "),
        FieldValue::Object { ty, address } => format!("{ty} @ {:#x}", address.0),
    }
}
