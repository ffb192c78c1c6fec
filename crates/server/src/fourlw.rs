//! Four-letter words: a command sent instead of the first frame, answered
//! with text, then the connection closes.

use crate::shared::Shared;
use crate::stats::Stats;
use std::fmt::Write;

/// What srvr/stat print as the version; the leading ZooKeeper version is
/// what clients parse to decide which features the server has.
pub fn version_line() -> String {
    format!(
        "Zookeeper version: 3.8.0-paddock-{}, built on 1970-01-01 00:00 UTC",
        env!("CARGO_PKG_VERSION")
    )
}

/// The text answer to a four-letter word.
pub fn respond(shared: &Shared, word: &str) -> String {
    if !shared.config.four_letter_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_owned(),
        "srvr" => format!("{}\n{}", version_line(), server_body(shared)),
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
        other => format!("{other} is not implemented by this server.\n"),
    }
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
        "Latency min/avg/max: {}/{:.4}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: standalone\nNode count: {}\n",
        lat.min_ms,
        lat.avg_ms,
        lat.max_ms,
        Stats::get(&s.packets_received),
        Stats::get(&s.packets_sent),
        Stats::get(&s.connections),
        Stats::get(&s.outstanding),
        zxid,
        nodes
    )
}
