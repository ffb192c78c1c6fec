//! Runs a spec against a server: preload, the workers, a progress line,
//! and the merged results.

use crate::conn::Conn;
use crate::recipes::{self, Fanout};
use crate::report::{self, histogram, Latency, OpReport, ProcessUse, Report};
use crate::spec::{Distribution, Kind, Spec};
use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use paddock_proto::{Acl, CreateRequest, ErrorCode, Id, PathWatchRequest, Request, SetDataRequest};
use rand::{RngExt, SeedableRng};
use rand_distr::Distribution as _;
use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ROOT: &str = "/paddock-bench";
const NODE_EXISTS: i32 = -110;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    Get,
    Set,
    Exists,
    Children,
    Create,
    Delete,
    Multi,
    Session,
    /// A watch notification delivered.
    Notify,
    /// A lock acquired and released.
    Lock,
    /// One change, from its send until every watcher has heard of it.
    Round,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Exists => "exists",
            Op::Children => "children",
            Op::Create => "create",
            Op::Delete => "delete",
            Op::Multi => "multi",
            Op::Session => "session",
            Op::Notify => "notify",
            Op::Lock => "lock",
            Op::Round => "round",
        }
    }
}

/// Counters the progress line reads while workers run.
#[derive(Default)]
pub(crate) struct Live {
    ops: AtomicU64,
    errors: AtomicU64,
    /// The slowest request since the last progress line, in µs: a stall
    /// shows in the second it happened.
    slowest_us: AtomicU64,
}

/// What one worker measured.
#[derive(Default)]
pub(crate) struct Tally {
    hist: BTreeMap<Op, Histogram<u64>>,
    errors: BTreeMap<i32, u64>,
}

impl Tally {
    pub(crate) fn record(&mut self, op: Op, us: u64, err: i32, measured: bool, live: &Live) {
        live.ops.fetch_add(1, Ordering::Relaxed);
        live.slowest_us.fetch_max(us, Ordering::Relaxed);
        if err != 0 {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
        if !measured {
            return;
        }
        let _ = self
            .hist
            .entry(op)
            .or_insert_with(histogram)
            .record(us.max(1));
        if err != 0 {
            *self.errors.entry(err).or_default() += 1;
        }
    }
}

pub(crate) struct Plan {
    pub spec: Spec,
    pub addr: SocketAddr,
    pub start: Instant,
    pub measure_from: Instant,
    /// When the run ends unless it is stopped sooner (`end`).
    pub deadline: Instant,
    /// When the caller stopped the run, if it did.
    pub stopped: std::sync::OnceLock<Instant>,
    pub payload: Bytes,
    pub remaining: AtomicU64,
    pub live: Live,
    pub keys: Arc<Vec<String>>,
    /// Sessions being set up at once. Ten thousand connects at once
    /// overflow a server's listen backlog and queue of unread requests:
    /// ZooKeeper then stops reading some new connections and closes them
    /// as sessionless 10 s later.
    opening: tokio::sync::Semaphore,
}

/// Sessions a run sets up at once.
const OPENING_AT_ONCE: usize = 64;

impl Plan {
    /// When the run ends: its deadline, or when it was stopped.
    pub(crate) fn end(&self) -> Instant {
        self.stopped
            .get()
            .map_or(self.deadline, |at| (*at).min(self.deadline))
    }

    /// A new session, set up while fewer than `OPENING_AT_ONCE` others are.
    pub(crate) async fn session(&self) -> anyhow::Result<Conn> {
        let _turn = self.opening.acquire().await?;
        let (conn, _) = Conn::open(self.addr, self.spec.session_timeout_ms).await?;
        Ok(conn)
    }
}

fn key(i: usize) -> String {
    format!("{ROOT}/k/{i}")
}

pub(crate) fn create(path: String, data: Bytes, flags: i32) -> Request {
    Request::Create {
        opcode: paddock_proto::op::CREATE,
        req: CreateRequest {
            path,
            data: Some(data),
            acl: vec![Acl {
                perms: 31,
                id: Id {
                    scheme: "world".into(),
                    id: "anyone".into(),
                },
            }],
            flags,
        },
    }
}

/// Creates the bench's directories and `keys` znodes (existing ones are
/// kept), pipelined on one connection.
async fn preload(addr: SocketAddr, spec: &Spec, payload: &Bytes) -> anyhow::Result<()> {
    let (mut conn, _) = Conn::open(addr, spec.session_timeout_ms).await?;
    let mut paths: Vec<String> = ["", "/k", "/c", "/t", "/w", "/l"]
        .iter()
        .map(|s| format!("{ROOT}{s}"))
        .collect();
    if spec.kind == Kind::Mix {
        paths.extend((0..spec.keys).map(key));
    }
    for chunk in paths.chunks(256) {
        for p in chunk {
            conn.queue(&create(p.clone(), payload.clone(), 0));
        }
        conn.flush().await?;
        for p in chunk {
            let h = conn.reply().await.context("preloading")?;
            anyhow::ensure!(
                h.err == 0 || h.err == NODE_EXISTS,
                "creating {p} failed with error {}",
                h.err
            );
        }
    }
    Ok(())
}

struct Chooser {
    rng: rand::rngs::StdRng,
    zipf: Option<rand_distr::Zipf<f64>>,
    keys: Arc<Vec<String>>,
    ops: Vec<(Op, u32)>,
    total_weight: u32,
}

impl Chooser {
    fn new(spec: &Spec, keys: Arc<Vec<String>>, seed: u64) -> anyhow::Result<Chooser> {
        let m = &spec.mix;
        let ops: Vec<(Op, u32)> = [
            (Op::Get, m.get),
            (Op::Set, m.set),
            (Op::Exists, m.exists),
            (Op::Children, m.children),
            (Op::Create, m.create),
            (Op::Delete, m.delete),
            (Op::Multi, m.multi),
        ]
        .into_iter()
        .filter(|(_, w)| *w > 0)
        .collect();
        let zipf = match spec.distribution {
            Distribution::Uniform => None,
            Distribution::Zipfian => Some(rand_distr::Zipf::new(spec.keys as f64, spec.zipf_s)?),
        };
        Ok(Chooser {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            zipf,
            keys,
            total_weight: ops.iter().map(|(_, w)| w).sum(),
            ops,
        })
    }

    fn op(&mut self) -> Op {
        let mut pick = self.rng.random_range(0..self.total_weight);
        for (op, w) in &self.ops {
            if pick < *w {
                return *op;
            }
            pick -= w;
        }
        Op::Get
    }

    fn key(&mut self) -> String {
        let i = match &self.zipf {
            // Zipf gives 1..=n, most often 1.
            Some(z) => (z.sample(&mut self.rng) as usize)
                .saturating_sub(1)
                .min(self.keys.len() - 1),
            None => self.rng.random_range(0..self.keys.len()),
        };
        self.keys[i].clone()
    }
}

/// One connection of a mix or tree-load run.
async fn requests(plan: Arc<Plan>, id: usize) -> anyhow::Result<Tally> {
    let spec = &plan.spec;
    let mut conn = plan.session().await?;
    let mut choose = Chooser::new(spec, plan.keys.clone(), id as u64 + 1)?;
    let mut tally = Tally::default();
    let mut created: VecDeque<String> = VecDeque::new();
    let mut made = 0u64;
    let mut waiting: VecDeque<(Op, Instant)> = VecDeque::new();
    // Open loop: this connection's share of the rate, on a fixed schedule.
    // A request is timed from its send, but from when it was due if the
    // in-flight limit held it back: a server that stalls is charged for
    // every request it kept waiting, and the client's own lateness (its
    // timer wakes it up to 1 ms late) is not charged to the server.
    let interval = (spec.rate > 0)
        .then(|| Duration::from_secs_f64(spec.connections as f64 / spec.rate as f64));
    let mut next_send =
        plan.start + interval.map_or(Duration::ZERO, |i| stagger(i, id, spec.connections));
    // When replies last made room under a full in-flight limit.
    let mut room_at = plan.start;
    loop {
        let now = Instant::now();
        let mut sent = false;
        while waiting.len() < spec.inflight && now < plan.end() {
            if interval.is_some() && next_send > now {
                break;
            }
            let (op, req) = match spec.kind {
                Kind::TreeLoad => {
                    if plan
                        .remaining
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_err()
                    {
                        break;
                    }
                    made += 1;
                    (
                        Op::Create,
                        create(format!("{ROOT}/t/{id}-{made}"), plan.payload.clone(), 0),
                    )
                }
                _ => next_request(&mut choose, &plan.payload, id, &mut made, &mut created),
            };
            conn.queue(&req);
            let at = match interval {
                Some(i) => {
                    let due = next_send;
                    next_send += i;
                    if room_at > due {
                        due
                    } else {
                        Instant::now()
                    }
                }
                None => Instant::now(),
            };
            waiting.push_back((op, at));
            sent = true;
        }
        if sent {
            conn.flush().await?;
        }
        if waiting.is_empty() {
            if Instant::now() >= plan.end() || spec.kind == Kind::TreeLoad {
                return Ok(tally);
            }
            tokio::time::sleep_until(next_send.into()).await;
            continue;
        }
        let reply = match interval {
            Some(_) if waiting.len() < spec.inflight && Instant::now() < plan.end() => {
                tokio::select! {
                    r = conn.reply() => r,
                    _ = tokio::time::sleep_until(next_send.into()) => continue,
                }
            }
            _ => conn.reply().await,
        };
        let mut next = Some(reply?);
        let done = Instant::now();
        if waiting.len() >= spec.inflight {
            room_at = done;
        }
        // Take every reply that has arrived before sending more.
        while let Some(h) = next {
            let Some((op, at)) = waiting.pop_front() else {
                anyhow::bail!("a reply nobody asked for (xid {})", h.xid);
            };
            let us = done.duration_since(at).as_micros() as u64;
            tally.record(op, us, h.err, at >= plan.measure_from, &plan.live);
            next = conn.buffered_reply()?;
        }
    }
}

/// Where connection `id` of `connections` starts its open-loop schedule,
/// as an offset into the first interval: the connections' schedules are
/// staggered evenly so that together they send at an even pace. Started
/// together, every connection sent at the same instant (32 requests at
/// once every 12.8 ms at 2 500/s), and each reply waited while this one
/// thread sent the rest: getData p50 was 0.67 ms, and 0.10 ms once
/// staggered.
fn stagger(interval: Duration, id: usize, connections: usize) -> Duration {
    interval.mul_f64(id as f64 / connections.max(1) as f64)
}

fn next_request(
    choose: &mut Chooser,
    payload: &Bytes,
    id: usize,
    made: &mut u64,
    created: &mut VecDeque<String>,
) -> (Op, Request) {
    let mut op = choose.op();
    if op == Op::Delete && created.is_empty() {
        op = Op::Create;
    }
    let req = match op {
        Op::Get => Request::GetData(PathWatchRequest {
            path: choose.key(),
            watch: false,
        }),
        Op::Set => Request::SetData(SetDataRequest {
            path: choose.key(),
            data: Some(payload.clone()),
            version: -1,
        }),
        Op::Exists => Request::Exists(PathWatchRequest {
            path: choose.key(),
            watch: false,
        }),
        Op::Children => Request::GetChildren(PathWatchRequest {
            path: choose.key(),
            watch: false,
        }),
        Op::Create => {
            *made += 1;
            let path = format!("{ROOT}/c/{id}-{made}");
            created.push_back(path.clone());
            create(path, payload.clone(), 0)
        }
        Op::Delete => Request::Delete(paddock_proto::DeleteRequest {
            path: created.pop_front().unwrap_or_default(),
            version: -1,
        }),
        Op::Multi | Op::Session | Op::Notify | Op::Lock | Op::Round => {
            let set = |path| {
                Request::SetData(SetDataRequest {
                    path,
                    data: Some(payload.clone()),
                    version: -1,
                })
            };
            Request::Multi(vec![set(choose.key()), set(choose.key())])
        }
    };
    (op, req)
}

/// One worker of a session storm: open a session, close it, repeat.
async fn sessions(plan: Arc<Plan>) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    while Instant::now() < plan.end() {
        let at = Instant::now();
        let mut conn = plan.session().await?;
        conn.queue(&Request::CloseSession);
        conn.flush().await?;
        let h = conn.reply().await.context("closing the session")?;
        let us = at.elapsed().as_micros() as u64;
        tally.record(Op::Session, us, h.err, at >= plan.measure_from, &plan.live);
    }
    Ok(tally)
}

/// Prints ops/s and errors once a second: in place on a terminal, one line
/// per second otherwise.
async fn progress(plan: Arc<Plan>) {
    let tty = std::io::stderr().is_terminal();
    let mut last = 0;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    loop {
        every.tick().await;
        let ops = plan.live.ops.load(Ordering::Relaxed);
        let line = format!(
            "[{:5.1}s] {:>9} ops/s  {} ops  {} errors  slowest {:.1} ms",
            plan.start.elapsed().as_secs_f64(),
            ops - last,
            ops,
            plan.live.errors.load(Ordering::Relaxed),
            plan.live.slowest_us.swap(0, Ordering::Relaxed) as f64 / 1000.0
        );
        last = ops;
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
    }
}

/// Deletes everything the bench made (the `ROOT` subtree), deepest
/// first, pipelined on one connection; returns how many znodes went.
pub async fn cleanup(addr: SocketAddr) -> anyhow::Result<usize> {
    let (mut conn, _) = Conn::open(addr, 30_000).await?;
    let mut all = vec![ROOT.to_owned()];
    let mut next = 0;
    while let Some(parent) = all.get(next).cloned() {
        next += 1;
        let req = Request::GetChildren(PathWatchRequest {
            path: parent.clone(),
            watch: false,
        });
        match conn.call(&req).await? {
            (_, Some(paddock_proto::Response::GetChildren { children })) => {
                all.extend(children.into_iter().map(|c| format!("{parent}/{c}")));
            }
            (h, _) if h.err == ErrorCode::NoNode.code() => {}
            (h, _) => anyhow::bail!("listing {parent} failed with error {}", h.err),
        }
    }
    all.reverse();
    for chunk in all.chunks(256) {
        for path in chunk {
            conn.queue(&Request::Delete(paddock_proto::DeleteRequest {
                path: path.clone(),
                version: -1,
            }));
        }
        conn.flush().await?;
        for path in chunk {
            let h = conn.reply().await.context("cleaning up")?;
            anyhow::ensure!(
                h.err == 0 || h.err == ErrorCode::NoNode.code(),
                "deleting {path} failed with error {}",
                h.err
            );
        }
    }
    Ok(all.len())
}

/// Runs `spec` against `addr` until its duration is over or `stop`
/// completes (a partial run, reported as interrupted); `server_pid` adds
/// that process's CPU and memory to the report.
pub async fn run(
    spec: Spec,
    addr: SocketAddr,
    server_pid: Option<u32>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Report> {
    spec.check().map_err(anyhow::Error::msg)?;
    let payload = Bytes::from(vec![b'x'; spec.payload_bytes]);
    preload(addr, &spec, &payload).await?;
    let pid = server_pid.map(|p| p.to_string());
    let client_before = report::process_use("self").unwrap_or_default();
    let server_before = pid.as_deref().and_then(report::process_use);
    let start = Instant::now();
    let plan = Arc::new(Plan {
        addr,
        start,
        measure_from: start + Duration::from_secs_f64(spec.warmup_s),
        deadline: start + Duration::from_secs_f64(spec.duration_s),
        stopped: std::sync::OnceLock::new(),
        payload,
        remaining: AtomicU64::new(spec.total),
        live: Live::default(),
        keys: Arc::new((0..spec.keys).map(key).collect()),
        opening: tokio::sync::Semaphore::new(OPENING_AT_ONCE),
        spec: spec.clone(),
    });
    let ticker = tokio::spawn(progress(plan.clone()));
    let stopper = {
        let plan = plan.clone();
        tokio::spawn(async move {
            stop.await;
            let _ = plan.stopped.set(Instant::now());
        })
    };
    let fanout = Arc::new(Fanout::default());
    let mut workers: Vec<_> = (0..spec.connections)
        .map(|id| {
            let (plan, fanout) = (plan.clone(), fanout.clone());
            tokio::spawn(async move {
                match plan.spec.kind {
                    Kind::SessionStorm => sessions(plan).await,
                    Kind::WatchFanout | Kind::WatchRound => recipes::watcher(&plan, &fanout).await,
                    Kind::LockChurn => recipes::contender(&plan).await,
                    Kind::Mix | Kind::TreeLoad => requests(plan, id).await,
                }
            })
        })
        .collect();
    if matches!(spec.kind, Kind::WatchFanout | Kind::WatchRound) {
        let plan = plan.clone();
        workers.push(tokio::spawn(async move {
            recipes::writer(&plan, &fanout).await
        }));
    }
    let mut tallies = Vec::new();
    for w in workers {
        tallies.push(w.await.context("a worker panicked")??);
    }
    ticker.abort();
    stopper.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let finished = Instant::now();
    let client_after = report::process_use("self").unwrap_or_default();
    let server_process = match (server_before, pid.as_deref().and_then(report::process_use)) {
        (Some(b), Some(a)) => Some(ProcessUse {
            cpu_s: a.cpu_s - b.cpu_s,
            rss_kib: a.rss_kib,
        }),
        _ => None,
    };
    let mut all = histogram();
    let mut per_op: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tallies {
        for (op, h) in t.hist {
            let _ = all.add(&h);
            let _ = per_op
                .entry(op.name().to_owned())
                .or_insert_with(histogram)
                .add(&h);
        }
        for (code, n) in t.errors {
            let name = paddock_proto::ErrorCode::from_code(code)
                .map_or_else(|| code.to_string(), |c| format!("{c:?}"));
            *errors.entry(name).or_default() += n;
        }
    }
    let seconds = finished
        .min(plan.end())
        .saturating_duration_since(plan.measure_from)
        .as_secs_f64()
        .max(1e-3);
    let ops = all.len();
    Ok(Report {
        interrupted: plan.stopped.get().is_some_and(|at| *at < plan.deadline),
        workload: spec.name.clone(),
        server: addr.to_string(),
        seconds,
        ops,
        ops_per_s: ops as f64 / seconds,
        errors,
        latency: Latency::of(&all),
        per_op: per_op
            .into_iter()
            .map(|(k, h)| {
                (
                    k,
                    OpReport {
                        ops: h.len(),
                        latency: Latency::of(&h),
                    },
                )
            })
            .collect(),
        client: ProcessUse {
            cpu_s: client_after.cpu_s - client_before.cpu_s,
            rss_kib: client_after.rss_kib,
        },
        server_process,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staggered_schedules_split_the_interval_evenly() {
        let interval = Duration::from_micros(1280);
        let starts: Vec<Duration> = (0..4).map(|id| stagger(interval, id, 4)).collect();
        assert_eq!(
            starts,
            [0, 320, 640, 960].map(Duration::from_micros).to_vec()
        );
        assert_eq!(stagger(interval, 0, 1), Duration::ZERO);
    }
}
