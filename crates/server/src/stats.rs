//! Counters reported by srvr/stat, mntr and /metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which kind of request a latency belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Read,
    Update,
    /// Pings, auth, errors answered before any work.
    Other,
}

/// Count, total, least and most of a duration: ZooKeeper's summaries
/// (readlatency, fsynctime, ...) without quantiles.
#[derive(Debug)]
pub struct Summary {
    count: AtomicU64,
    total_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            count: AtomicU64::new(0),
            total_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Summary {
    pub fn add(&self, us: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.min_us.fetch_min(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// (count, total, least, mean, most) in milliseconds; zeros when empty.
    pub fn ms(&self) -> (u64, f64, f64, f64, f64) {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return (0, 0.0, 0.0, 0.0, 0.0);
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let total = ms(self.total_us.load(Ordering::Relaxed));
        (
            count,
            total,
            ms(self.min_us.load(Ordering::Relaxed)),
            total / count as f64,
            ms(self.max_us.load(Ordering::Relaxed)),
        )
    }

    fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.total_us.store(0, Ordering::Relaxed);
        self.min_us.store(u64::MAX, Ordering::Relaxed);
        self.max_us.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub connections: AtomicU64,
    pub outstanding: AtomicU64,
    /// Every request answered (srvr's latency).
    all: Summary,
    /// Reads and updates apart (ZooKeeper's readlatency, updatelatency).
    pub reads: Summary,
    pub updates: Summary,
    /// The log's writes, one frame's write and fdatasync each (ZooKeeper's
    /// fsynctime).
    pub fsync: Summary,
}

/// Latency as srvr prints it: min/avg/max in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub min_ms: u64,
    pub avg_ms: f64,
    pub max_ms: u64,
}

impl Stats {
    pub fn record_latency(&self, kind: Served, us: u64) {
        match kind {
            Served::Read => self.reads.add(us),
            Served::Update => self.updates.add(us),
            Served::Other => {}
        }
        self.all.add(us);
    }

    pub fn latency(&self) -> Latency {
        let (_, _, min, avg, max) = self.all.ms();
        Latency {
            min_ms: min as u64,
            avg_ms: avg,
            max_ms: max as u64,
        }
    }

    /// srst: latency and packet counters start again.
    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        for summary in [&self.all, &self.reads, &self.updates, &self.fsync] {
            summary.reset();
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_keeps_count_total_least_and_most_until_reset() {
        let stats = Stats::default();
        assert_eq!(stats.fsync.ms(), (0, 0.0, 0.0, 0.0, 0.0), "empty: zeros");
        for us in [400, 100, 1000] {
            stats.fsync.add(us);
        }
        assert_eq!(stats.fsync.ms(), (3, 1.5, 0.1, 0.5, 1.0));
        stats.record_latency(Served::Update, 4500);
        stats.record_latency(Served::Read, 1500);
        assert_eq!(
            stats.latency(),
            Latency {
                min_ms: 1,
                avg_ms: 3.0,
                max_ms: 4
            }
        );
        assert_eq!(stats.updates.ms().0, 1);
        stats.reset();
        assert_eq!(stats.fsync.ms(), (0, 0.0, 0.0, 0.0, 0.0));
        assert_eq!(stats.latency().max_ms, 0);
        stats.fsync.add(50);
        assert_eq!(
            stats.fsync.ms(),
            (1, 0.05, 0.05, 0.05, 0.05),
            "least starts again"
        );
    }
}
