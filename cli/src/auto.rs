//! Choosing the layout: a named one, or `auto`, which runs every shipped runtime layout on
//! the dump and keeps those that find a runtime (a program may run tokio and another
//! executor side by side). The binary's DWARF is indexed once for all of them.

use std::path::Path;

use anyhow::Result;
use layoutdump_engine::analyze::{Options, Outcome, analyze};
use layoutdump_engine::layout_loader::{compile_layout, is_library, runnable};
use layoutdump_engine::report::Report;

pub fn analyze_layout(layout: &str, dump: &Path, opts: &Options) -> Result<(Report, Outcome)> {
    if layout != "auto" {
        let program = compile_layout(layout).map_err(anyhow::Error::msg)?;
        let (mut report, outcome) = analyze(&program, dump, opts)?;
        if report.runtimes.is_empty() && is_library(layout) {
            let runnable: Vec<&str> = runnable().collect();
            report.warnings.push(format!(
                "`{layout}` describes futures that other layouts use and finds no runtime by itself: \
                 run a runtime's layout ({}; futures' LocalPool and ThreadPool are `futures-executor`), \
                 or give the dump alone (`layoutdump run DUMP`) to try them all",
                runnable.join(", ")
            ));
        }
        return Ok((report, outcome));
    }
    let mut found: Vec<(String, Report, Outcome)> = Vec::new();
    let mut first: Option<(Report, Outcome)> = None;
    for name in runnable() {
        let program = compile_layout(name).map_err(anyhow::Error::msg)?;
        let (report, outcome) = analyze(&program, dump, opts)?;
        if report.runtimes.is_empty() {
            first.get_or_insert((report, outcome));
        } else {
            found.push((name.to_string(), report, outcome));
        }
    }
    let label = |name: &str, r: &Report| {
        format!("{name} {}", r.layout.version)
            .trim_end()
            .to_string()
    };
    let mut merged = found.into_iter();
    let Some((first_name, mut report, mut outcome)) = merged.next() else {
        let (mut report, _) = first.ok_or_else(|| anyhow::anyhow!("no shipped layout to try"))?;
        let tried: Vec<&str> = runnable().collect();
        report.warnings.push(format!(
            "no shipped layout ({}) found a runtime in this dump: for another executor, write a layout \
             (docs/language.md) and run `layoutdump run my.layout DUMP`",
            tried.join(", ")
        ));
        return Ok((report, Outcome::Partial));
    };
    let mut names = vec![label(&first_name, &report)];
    for (name, mut other, o) in merged {
        // Two layouts may find the same runtime (async-std's executor is smol's): the
        // first layout's report of it is kept, and a layout adding nothing is not named.
        let new: Vec<_> = std::mem::take(&mut other.runtimes)
            .into_iter()
            .filter(|r| !report.runtimes.iter().any(|k| k.address == r.address))
            .collect();
        if new.is_empty() {
            continue;
        }
        names.push(label(&name, &other));
        report.runtimes.extend(new);
        report.block_on.extend(other.block_on);
        report.warnings.extend(other.warnings);
        if o == Outcome::Partial {
            outcome = Outcome::Partial;
        }
    }
    report.layout.name = format!("auto: {}", names.join(", "));
    report.layout.version = String::new();
    Ok((report, outcome))
}
