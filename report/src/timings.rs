//! How long each phase of an analysis took, as `--timings` prints it.

use std::time::{Duration, Instant};

/// Phase durations, in the order the phases ended.
#[derive(Debug, Clone, Default)]
pub struct Timings(pub Vec<(&'static str, Duration)>);

impl Timings {
    /// Runs `f`, adding its duration to `phase` (phases can be entered several times: one
    /// per runtime).
    pub fn time<T>(&mut self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.add(phase, start.elapsed());
        out
    }

    pub fn add(&mut self, phase: &'static str, d: Duration) {
        match self.0.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += d,
            None => self.0.push((phase, d)),
        }
    }

    pub fn extend(&mut self, other: &Timings) {
        for (p, d) in &other.0 {
            self.add(p, *d);
        }
    }

    /// `timing: PHASE SECONDS` lines, as `--timings` prints them.
    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(|(p, d)| format!("timing: {p:<36} {:.3} s\n", d.as_secs_f64()))
            .collect()
    }
}
