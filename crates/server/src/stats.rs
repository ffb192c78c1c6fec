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

/// A count and a total, as a Prometheus summary without quantiles.
#[derive(Debug, Default)]
pub struct Summary {
    pub count: AtomicU64,
    pub total_us: AtomicU64,
}

impl Summary {
    fn add(&self, us: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Stats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub connections: AtomicU64,
    pub outstanding: AtomicU64,
    latency_count: AtomicU64,
    latency_total_us: AtomicU64,
    latency_min_us: AtomicU64,
    latency_max_us: AtomicU64,
    /// Reads and updates apart (ZooKeeper's readlatency, updatelatency).
    pub reads: Summary,
    pub updates: Summary,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            latency_total_us: AtomicU64::new(0),
            latency_min_us: AtomicU64::new(u64::MAX),
            latency_max_us: AtomicU64::new(0),
            reads: Summary::default(),
            updates: Summary::default(),
        }
    }
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
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.latency_min_us.fetch_min(us, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub fn latency(&self) -> Latency {
        let count = self.latency_count.load(Ordering::Relaxed);
        if count == 0 {
            return Latency {
                min_ms: 0,
                avg_ms: 0.0,
                max_ms: 0,
            };
        }
        Latency {
            min_ms: self.latency_min_us.load(Ordering::Relaxed) / 1000,
            avg_ms: self.latency_total_us.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0,
            max_ms: self.latency_max_us.load(Ordering::Relaxed) / 1000,
        }
    }

    /// srst: latency and packet counters start again.
    pub fn reset(&self) {
        for c in [
            &self.packets_received,
            &self.packets_sent,
            &self.latency_count,
            &self.latency_total_us,
            &self.latency_max_us,
            &self.reads.count,
            &self.reads.total_us,
            &self.updates.count,
            &self.updates.total_us,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.latency_min_us.store(u64::MAX, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
