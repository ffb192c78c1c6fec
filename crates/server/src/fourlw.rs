//! Four-letter words: a command sent instead of the first frame, answered
//! with text, then the connection closes.

use crate::shared::Shared;
use crate::stats::Stats;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

/// The version reported to clients; the leading ZooKeeper version is what
/// they parse to decide which features the server has.
pub fn version() -> String {
    format!("3.8.0-paddock-{}", env!("CARGO_PKG_VERSION"))
}

/// The first line of srvr and stat.
pub fn version_line() -> String {
    format!(
        "Zookeeper version: {}, built on 1970-01-01 00:00 UTC",
        version()
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
        "srvr" | "stat" | "mntr" if !shared.serving() => NOT_SERVING.to_owned(),
        "srvr" => format!("{}\n{}", version_line(), server_body(shared)),
        "hash" => {
            let tree = shared.tree.read();
            format!("{:x}: {}\n", tree.last_zxid(), tree.digest())
        }
        "stat" => format!(
            "{}\n{}\n{}",
            version_line(),
            clients(shared),
            server_body(shared)
        ),
        "wchs" => {
            let (watches, paths, watchers) = shared.watches.summary();
            format!("{watchers} connections watching {paths} paths\nTotal watches:{watches}\n")
        }
        "wchc" => watches_by_session(shared),
        "wchp" => watches_by_path(shared),
        "mntr" => monitor(shared),
        "conf" => configuration(shared),
        "envi" => environment(),
        "isro" => "rw".to_owned(),
        "dirs" => {
            let dirs = crate::recovery::dirs(&shared.config);
            format!(
                "datadir_size: {}\nlogdir_size: {}\n",
                dir_bytes(&dirs.snapshots),
                dir_bytes(&dirs.log)
            )
        }
        "cons" => connections(shared),
        "crst" => {
            for c in shared.connections.lock().values() {
                c.received.store(0, Ordering::Relaxed);
                c.sent.store(0, Ordering::Relaxed);
            }
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            shared.stats.reset();
            "Server stats reset.\n".to_owned()
        }
        other => format!("{other} is not implemented by this server.\n"),
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

/// The session of each watching connection, by connection id.
fn sessions_by_connection(shared: &Shared) -> HashMap<u64, i64> {
    shared
        .connections
        .lock()
        .iter()
        .map(|(id, c)| (*id, c.session_id.load(Ordering::Relaxed)))
        .collect()
}

/// wchc: each session, then the paths it watches.
fn watches_by_session(shared: &Shared) -> String {
    let sessions = sessions_by_connection(shared);
    let mut by_session: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (path, watchers) in shared.watches.entries() {
        for w in watchers {
            let sid = sessions.get(&w).copied().unwrap_or_default();
            by_session.entry(sid).or_default().push(path.clone());
        }
    }
    let mut out = String::new();
    for (sid, paths) in by_session {
        let _ = writeln!(out, "0x{sid:x}");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out.push('\n');
    out
}

/// wchp: each watched path, then the sessions watching it.
fn watches_by_path(shared: &Shared) -> String {
    let sessions = sessions_by_connection(shared);
    let mut out = String::new();
    for (path, watchers) in shared.watches.entries() {
        let _ = writeln!(out, "{path}");
        for w in watchers {
            let _ = writeln!(
                out,
                "\t0x{:x}",
                sessions.get(&w).copied().unwrap_or_default()
            );
        }
    }
    out.push('\n');
    out
}

/// mntr: `zk_<key>\t<value>` lines with ZooKeeper's names.
fn monitor(shared: &Shared) -> String {
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
    let mut out = String::new();
    let status = shared.status();
    let rows: [(&str, String); 21] = [
        ("version", version()),
        ("server_state", status.role.name().to_owned()),
        // The leader's term (ZooKeeper's epoch; our zxids do not carry it).
        ("epoch", status.term.to_string()),
        ("avg_latency", format!("{:.4}", lat.avg_ms)),
        ("max_latency", lat.max_ms.to_string()),
        ("min_latency", lat.min_ms.to_string()),
        (
            "packets_received",
            Stats::get(&s.packets_received).to_string(),
        ),
        ("packets_sent", Stats::get(&s.packets_sent).to_string()),
        (
            "num_alive_connections",
            Stats::get(&s.connections).to_string(),
        ),
        (
            "outstanding_requests",
            Stats::get(&s.outstanding).to_string(),
        ),
        ("znode_count", nodes.to_string()),
        ("watch_count", watches.to_string()),
        ("ephemerals_count", ephemerals.to_string()),
        ("approximate_data_size", data_size.to_string()),
        ("open_file_descriptor_count", open_fds().to_string()),
        ("uptime", shared.started.elapsed().as_millis().to_string()),
        ("global_sessions", sessions.to_string()),
        ("local_sessions", "0".to_owned()),
        ("connection_drop_probability", "0.0".to_owned()),
        ("last_zxid", format!("0x{zxid:x}")),
        ("auth_failed_count", "0".to_owned()),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "zk_{key}\t{value}");
    }
    out
}

/// conf: the effective settings, in ZooKeeper's key=value form.
fn configuration(shared: &Shared) -> String {
    let c = &shared.config;
    let dirs = crate::recovery::dirs(c);
    format!(
        "clientPort={}\nsecureClientPort=-1\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n{}",
        c.client_addr.port(),
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
                crate::server::membership_text(&shared.status())
            ),
            None => String::new(),
        }
    )
}

/// envi: `key=value` lines; clients parse `zookeeper.version=`.
fn environment() -> String {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={}\nhost.name={}\nos.name={}\nos.arch={}\nuser.name={}\nuser.home={}\nuser.dir={}\n",
        version(),
        host.trim(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        var("USER"),
        var("HOME"),
        cwd
    )
}

fn dir_bytes(dir: &Path) -> u64 {
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
        shared.status().role.name(),
        nodes
    )
}
