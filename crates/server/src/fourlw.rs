//! Four-letter words: a command sent instead of the first frame, answered
//! with text, then the connection closes.

use crate::shared::Shared;
use crate::stats::{Stats, Summary};
use paddock_proto::text::java_date;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

/// The version reported to clients; the leading ZooKeeper version is what
/// they parse to decide which features the server has. Then ours and the
/// commit, as ZooKeeper shows its revision.
pub fn version() -> String {
    format!(
        "3.8.0-paddock-{}-{}",
        env!("CARGO_PKG_VERSION"),
        env!("PADDOCK_COMMIT")
    )
}

/// `paddock --version`: ours, the commit and its date.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PADDOCK_COMMIT"),
    ", ",
    env!("PADDOCK_COMMIT_DATE"),
    "; speaks ZooKeeper 3.8.0)"
);

/// The first line of srvr and stat.
pub fn version_line() -> String {
    format!(
        "Zookeeper version: {}, built on {}",
        version(),
        env!("PADDOCK_COMMIT_DATE")
    )
}

/// What srvr, stat and mntr say while the server has no leader.
const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

/// The text answer to a four-letter word.
pub fn respond(shared: &Shared, word: &str) -> String {
    if !shared.config.four_letter_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_owned(),
        "srvr" | "stat" | "mntr" if !shared.serving() && !shared.read_only() => {
            NOT_SERVING.to_owned()
        }
        "srvr" => format!("{}{}", heading(shared), server_body(shared)),
        "hash" => {
            let tree = shared.tree.read();
            format!("{:x}: {}\n", tree.last_zxid(), tree.digest())
        }
        "stat" => format!(
            "{}{}\n{}",
            heading(shared),
            clients(shared),
            server_body(shared)
        ),
        "wchs" => {
            let (watches, paths, watchers) = shared.watches.summary();
            format!("{watchers} connections watching {paths} paths\nTotal watches:{watches}\n")
        }
        "wchc" => watches_by_session_text(shared),
        "wchp" => watches_by_path_text(shared),
        "mntr" => monitor(shared),
        "conf" => configuration(shared),
        "envi" => environment(),
        "isro" => if shared.read_only() { "ro" } else { "rw" }.to_owned(),
        "dirs" => {
            let dirs = crate::recovery::dirs(&shared.config);
            format!(
                "datadir_size: {}\nlogdir_size: {}\n",
                dir_bytes(&dirs.snapshots),
                dir_bytes(&dirs.log)
            )
        }
        "cons" => connections(shared),
        "dump" => dump_text(shared),
        "gtmk" => shared.trace_mask.load(Ordering::Relaxed).to_string(),
        "crst" => {
            reset_connection_stats(shared);
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            shared.stats.reset();
            "Server stats reset.\n".to_owned()
        }
        other => format!("{other} is not implemented by this server.\n"),
    }
}

/// crst: every connection's counters start again.
pub fn reset_connection_stats(shared: &Shared) {
    for c in shared.connections.lock().values() {
        c.received.store(0, Ordering::Relaxed);
        c.sent.store(0, Ordering::Relaxed);
    }
}

/// cons: one line per connection with its session, then an empty line.
fn connections(shared: &Shared) -> String {
    let mut out = String::new();
    for c in shared.connections.lock().values() {
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={},sid=0x{:x})",
            c.peer,
            Stats::get(&c.queued),
            Stats::get(&c.received),
            Stats::get(&c.sent),
            c.session_id.load(Ordering::Relaxed)
        );
    }
    out.push('\n');
    out
}

/// stmk: sets the trace mask; the answer is the new mask.
pub fn set_trace_mask(shared: &Shared, mask: i64) -> String {
    shared.trace_mask.store(mask, Ordering::Relaxed);
    mask.to_string()
}

/// The session of each watching connection, by connection id.
fn sessions_by_connection(shared: &Shared) -> HashMap<u64, i64> {
    shared
        .connections
        .lock()
        .iter()
        .map(|(id, c)| (*id, c.session_id.load(Ordering::Relaxed)))
        .collect()
}

/// Each watching session and the paths it watches.
pub fn watches_by_session(shared: &Shared) -> BTreeMap<i64, Vec<String>> {
    let sessions = sessions_by_connection(shared);
    let mut by_session: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (path, watchers) in shared.watches.entries() {
        for w in watchers {
            let sid = sessions.get(&w).copied().unwrap_or_default();
            by_session.entry(sid).or_default().push(path.clone());
        }
    }
    by_session
}

/// Each watched path and the sessions watching it.
pub fn watches_by_path(shared: &Shared) -> Vec<(String, Vec<i64>)> {
    let sessions = sessions_by_connection(shared);
    shared
        .watches
        .entries()
        .into_iter()
        .map(|(path, watchers)| {
            let sids = watchers
                .iter()
                .map(|w| sessions.get(w).copied().unwrap_or_default())
                .collect();
            (path, sids)
        })
        .collect()
}

/// wchc: each session, then the paths it watches.
fn watches_by_session_text(shared: &Shared) -> String {
    let mut out = String::new();
    for (sid, paths) in watches_by_session(shared) {
        let _ = writeln!(out, "0x{sid:x}");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out.push('\n');
    out
}

/// wchp: each watched path, then the sessions watching it.
fn watches_by_path_text(shared: &Shared) -> String {
    let mut out = String::new();
    for (path, sids) in watches_by_path(shared) {
        let _ = writeln!(out, "{path}");
        for sid in sids {
            let _ = writeln!(out, "\t0x{sid:x}");
        }
    }
    out.push('\n');
    out
}

/// What dump reports: sessions by the time they expire (wall-clock ms,
/// rounded up to the tick as ZooKeeper buckets them) and each session's
/// ephemeral nodes.
pub struct Dump {
    pub expiry: BTreeMap<i64, Vec<i64>>,
    pub ephemerals: BTreeMap<i64, Vec<String>>,
}

pub fn dump(shared: &Shared) -> Dump {
    let (now_mono, now_wall) = (shared.mono_ms(), shared.wall_ms());
    let tick = i64::from(shared.config.tick_time_ms.max(1));
    let mut expiry: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (sid, deadline) in shared.sessions.deadlines() {
        let wall = now_wall + (deadline - now_mono);
        expiry
            .entry((wall / tick + 1) * tick)
            .or_default()
            .push(sid);
    }
    let tree = shared.tree.read();
    let ephemerals = tree
        .sessions()
        .keys()
        .map(|sid| (*sid, tree.ephemerals_of(*sid).cloned().collect::<Vec<_>>()))
        .filter(|(_, paths)| !paths.is_empty())
        .collect();
    Dump { expiry, ephemerals }
}

/// dump: sessions by expiry, ephemerals by session, then connections.
fn dump_text(shared: &Shared) -> String {
    let d = dump(shared);
    let sessions: usize = d.expiry.values().map(Vec::len).sum();
    let mut out = format!(
        "SessionTracker dump:\nSession Sets ({})/({sessions}):\n",
        d.expiry.len()
    );
    for (at, sids) in &d.expiry {
        let _ = writeln!(out, "{} expire at {}:", sids.len(), java_date(*at));
        for sid in sids {
            let _ = writeln!(out, "\t0x{sid:x}");
        }
    }
    let _ = writeln!(
        out,
        "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
        d.ephemerals.len()
    );
    for (sid, paths) in &d.ephemerals {
        let _ = writeln!(out, "0x{sid:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    let connections = shared.connections.lock();
    let _ = writeln!(
        out,
        "Connections dump:\nConnections Sets (1)/({}):",
        connections.len()
    );
    let _ = writeln!(
        out,
        "{} expire at {}:",
        connections.len(),
        java_date(shared.wall_ms() + i64::from(shared.config.tick_time_ms))
    );
    for c in connections.values() {
        let _ = writeln!(
            out,
            "\tip: /{} sessionId: 0x{:x}",
            c.peer,
            c.session_id.load(Ordering::Relaxed)
        );
    }
    out
}

/// One mntr value.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metric::Int(v) => write!(f, "{v}"),
            Metric::Float(v) => write!(f, "{v:.4}"),
            Metric::Text(v) => f.write_str(v),
        }
    }
}

/// mntr's rows, with ZooKeeper's names (without the `zk_` prefix): the
/// one source of mntr, the admin `monitor` command and `/metrics`.
pub fn monitor_rows(shared: &Shared) -> Vec<(&'static str, Metric)> {
    use Metric::{Float, Int, Text};
    let s = &shared.stats;
    let lat = s.latency();
    let (zxid, nodes, ephemerals, data_size, sessions) = {
        let tree = shared.tree.read();
        (
            tree.last_zxid(),
            tree.node_count(),
            tree.ephemeral_count(),
            tree.approximate_data_size(),
            tree.sessions().len(),
        )
    };
    let (watches, _, _) = shared.watches.summary();
    let status = shared.status();
    let n = |v: u64| Int(i64::try_from(v).unwrap_or(i64::MAX));
    let summary_ms = |sum: &Summary| {
        let (count, total, min, avg, max) = sum.ms();
        (n(count), Float(total), Float(min), Float(avg), Float(max))
    };
    let (read_cnt, read_sum, _, read_avg, _) = summary_ms(&s.reads);
    let (update_cnt, update_sum, _, update_avg, _) = summary_ms(&s.updates);
    let (fsync_cnt, fsync_sum, fsync_min, fsync_avg, fsync_max) = summary_ms(&s.fsync);
    vec![
        ("version", Text(version())),
        ("server_state", Text(shared.mode_name().to_owned())),
        // The leader's term (ZooKeeper's epoch; our zxids do not carry it).
        ("epoch", n(status.term)),
        ("avg_latency", Float(lat.avg_ms)),
        ("max_latency", n(lat.max_ms)),
        ("min_latency", n(lat.min_ms)),
        ("packets_received", n(Stats::get(&s.packets_received))),
        ("packets_sent", n(Stats::get(&s.packets_sent))),
        ("num_alive_connections", n(Stats::get(&s.connections))),
        ("outstanding_requests", n(Stats::get(&s.outstanding))),
        ("znode_count", n(nodes as u64)),
        ("watch_count", n(watches as u64)),
        ("ephemerals_count", n(ephemerals as u64)),
        ("approximate_data_size", n(data_size as u64)),
        ("open_file_descriptor_count", n(open_fds() as u64)),
        ("max_file_descriptor_count", n(max_fds())),
        ("uptime", n(shared.started.elapsed().as_millis() as u64)),
        ("global_sessions", n(sessions as u64)),
        ("local_sessions", Int(0)),
        ("connection_drop_probability", Float(0.0)),
        ("last_zxid", Text(format!("0x{zxid:x}"))),
        ("auth_failed_count", Int(0)),
        ("cnt_readlatency", read_cnt),
        ("sum_readlatency", read_sum),
        ("avg_readlatency", read_avg),
        ("cnt_updatelatency", update_cnt),
        ("sum_updatelatency", update_sum),
        ("avg_updatelatency", update_avg),
        ("avg_fsynctime", fsync_avg),
        ("min_fsynctime", fsync_min),
        ("max_fsynctime", fsync_max),
        ("cnt_fsynctime", fsync_cnt),
        ("sum_fsynctime", fsync_sum),
    ]
}

/// mntr: `zk_<key>\t<value>` lines.
fn monitor(shared: &Shared) -> String {
    let mut out = String::new();
    for (key, value) in monitor_rows(shared) {
        let _ = writeln!(out, "zk_{key}\t{value}");
    }
    out
}

/// The open-files limit, as the JVM reports it.
fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// conf: the effective settings, in ZooKeeper's key=value form.
fn configuration(shared: &Shared) -> String {
    let c = &shared.config;
    let dirs = crate::recovery::dirs(c);
    format!(
        "clientPort={}\nsecureClientPort={}\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n{}",
        match c.plain_client_port {
            true => i32::from(c.client_addr.port()),
            false => -1,
        },
        c.secure_client_addr.map_or(-1, |a| i32::from(a.port())),
        dirs.snapshots.display(),
        dir_bytes(&dirs.snapshots),
        dirs.log.display(),
        dir_bytes(&dirs.log),
        c.tick_time_ms,
        c.max_client_cnxns,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
        if c.ensemble.is_some() { c.server_id } else { 0 },
        match &c.ensemble {
            Some(_) => format!(
                "{}\n",
                String::from_utf8_lossy(&shared.tree.read().config_data())
            ),
            None => String::new(),
        }
    )
}

/// The environment envi and the admin `environment` command report.
pub fn environment_pairs() -> Vec<(&'static str, String)> {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    vec![
        // As ZooKeeper's: the version, then when it was built.
        (
            "zookeeper.version",
            format!("{}, built on {}", version(), env!("PADDOCK_COMMIT_DATE")),
        ),
        ("host.name", host.trim().to_owned()),
        ("os.name", std::env::consts::OS.to_owned()),
        ("os.arch", std::env::consts::ARCH.to_owned()),
        (
            "os.version",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        ("user.name", var("USER")),
        ("user.home", var("HOME")),
        ("user.dir", cwd),
    ]
}

/// envi: `key=value` lines; clients parse `zookeeper.version=`.
fn environment() -> String {
    let mut out = String::from("Environment:\n");
    for (k, v) in environment_pairs() {
        let _ = writeln!(out, "{k}={v}");
    }
    out
}

/// Bytes in the files directly inside `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// `Clients:` and one line per connection, then an empty line.
fn clients(shared: &Shared) -> String {
    let mut out = String::from("Clients:\n");
    for c in shared.connections.lock().values() {
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={})",
            c.peer,
            Stats::get(&c.queued),
            Stats::get(&c.received),
            Stats::get(&c.sent)
        );
    }
    out
}

/// The version line of srvr and stat, and in read-only mode the line
/// that says so.
fn heading(shared: &Shared) -> String {
    let mut out = format!("{}\n", version_line());
    if shared.read_only() {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    out
}

/// The srvr lines from `Latency` to `Node count`.
fn server_body(shared: &Shared) -> String {
    let s = &shared.stats;
    let lat = s.latency();
    let (zxid, nodes) = {
        let tree = shared.tree.read();
        (tree.last_zxid(), tree.node_count())
    };
    format!(
        "Latency min/avg/max: {}/{:.4}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        lat.min_ms,
        lat.avg_ms,
        lat.max_ms,
        Stats::get(&s.packets_received),
        Stats::get(&s.packets_sent),
        Stats::get(&s.connections),
        Stats::get(&s.outstanding),
        zxid,
        shared.mode_name(),
        nodes
    )
}
