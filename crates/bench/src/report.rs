//! Results: per-operation histograms merged into one report, printed as a
//! table and written as JSON.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency in microseconds, from 1 µs to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("constant bounds are valid")
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            mean_us: (h.mean() * 10.0).round() / 10.0,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub ops: u64,
    pub latency: Latency,
}

/// What `/proc` says about a process over the measured interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessUse {
    pub cpu_s: f64,
    pub rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: String,
    pub server: String,
    /// Stopped before its duration was over (Ctrl-C).
    pub interrupted: bool,
    pub spec: crate::spec::Spec,
    /// The measured interval (after warm-up).
    pub seconds: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    pub errors: BTreeMap<String, u64>,
    pub latency: Latency,
    pub per_op: BTreeMap<String, OpReport>,
    pub client: ProcessUse,
    pub server_process: Option<ProcessUse>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} against {}: {:.0} ops/s over {:.1} s ({} ops, {} errors){}\n",
            self.workload,
            self.server,
            self.ops_per_s,
            self.seconds,
            self.ops,
            self.errors.values().sum::<u64>(),
            if self.interrupted {
                ", interrupted"
            } else {
                ""
            }
        );
        out.push_str(&format!(
            "{:<10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "op", "ops", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
        ));
        let row = |name: &str, ops: u64, l: &Latency| {
            format!(
                "{name:<10} {ops:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
            )
        };
        for (name, op) in &self.per_op {
            out.push_str(&row(name, op.ops, &op.latency));
        }
        if self.per_op.len() > 1 {
            out.push_str(&row("all", self.ops, &self.latency));
        }
        for (code, n) in &self.errors {
            out.push_str(&format!("error {code}: {n}\n"));
        }
        out.push_str(&format!("client cpu {:.2} s", self.client.cpu_s));
        if let Some(s) = &self.server_process {
            out.push_str(&format!(
                ", server cpu {:.2} s ({:.3} s per 1k ops), server rss {} KiB",
                s.cpu_s,
                if self.ops > 0 {
                    s.cpu_s * 1000.0 / self.ops as f64
                } else {
                    0.0
                },
                s.rss_kib
            ));
        }
        out.push('\n');
        out
    }
}

/// CPU seconds (user + system) and resident set of a process, from
/// /proc/<pid>/stat and /proc/<pid>/status.
pub fn process_use(pid: &str) -> Option<ProcessUse> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Some(ProcessUse {
        cpu_s: ticks / 100.0,
        rss_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_come_from_the_histogram() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h);
        assert!((499..=501).contains(&l.p50_us), "{l:?}");
        assert!((989..=991).contains(&l.p99_us), "{l:?}");
        assert_eq!(l.max_us, 1000);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = process_use("self").unwrap();
        assert!(me.rss_kib > 0);
        assert!(process_use("0").is_none());
    }
}
