//! `paddock inspect`: read-only views of a data directory — its files, its
//! log and its snapshots — as text or one JSON object per line.

use anyhow::Context;
use base64::Engine;
use paddock_proto::text::java_date;
use paddock_proto::Reader;
use paddock_replication::codec::{self, Logged};
use paddock_server::recovery::{dirs, tree_config, Dirs};
use paddock_server::ServerConfig;
use paddock_storage::snapshot::{list_snapshots, read_snapshot};
use paddock_storage::wal::list_segments;
use paddock_storage::FsDisk;
use paddock_tree::DataTree;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum InspectCommand {
    /// List the snapshots and log segments, with their log positions and
    /// sizes.
    List(Target),
    /// Print the entries of the log, as written (transactions with their
    /// time, session and operation).
    Log {
        #[command(flatten)]
        target: Target,
        /// Only entries with log index >= this (decimal or 0x hex).
        #[arg(long, value_parser = parse_number)]
        from: Option<i64>,
        /// Only entries with log index <= this (decimal or 0x hex).
        #[arg(long, value_parser = parse_number)]
        to: Option<i64>,
    },
    /// Print every node and session as of the end of the log: the newest
    /// snapshot with every log entry after it replayed (nothing is
    /// changed on disk; a server may be running).
    Tree(Target),
    /// Print every node and session of a snapshot (the newest by default).
    Snapshot {
        #[command(flatten)]
        target: Target,
        /// The snapshot at this position, as `list` shows it (decimal or
        /// 0x hex).
        #[arg(long, value_parser = parse_number)]
        at: Option<i64>,
    },
}

#[derive(clap::Args)]
pub struct Target {
    /// The data directory (dataDir).
    #[arg(long, default_value = "paddock-data")]
    data_dir: PathBuf,
    /// The log directory (dataLogDir), if apart from the data directory.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

impl Target {
    fn dirs(&self) -> anyhow::Result<Dirs> {
        anyhow::ensure!(
            self.data_dir.is_dir(),
            "{} is not a directory",
            self.data_dir.display()
        );
        Ok(dirs(&self.config()))
    }

    fn config(&self) -> ServerConfig {
        ServerConfig {
            data_dir: self.data_dir.clone(),
            data_log_dir: self.log_dir.clone(),
            ..ServerConfig::default()
        }
    }
}

pub fn parse_number(s: &str) -> Result<i64, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("'{s}' is not a number (decimal or 0x hex)"))
}

pub fn run(command: InspectCommand) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = match command {
        InspectCommand::List(target) => list(&target, &mut out),
        InspectCommand::Log { target, from, to } => log(&target, from, to, &mut out),
        InspectCommand::Tree(target) => tree(&target, &mut out),
        InspectCommand::Snapshot { target, at } => snapshot(&target, at, &mut out),
    }
    .and_then(|()| Ok(out.flush()?));
    match result {
        // The reader went away (`| head`): not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn list(target: &Target, out: &mut impl Write) -> anyhow::Result<()> {
    let dirs = target.dirs()?;
    let snapshots = list_snapshots(&FsDisk, &dirs.snapshots)?;
    let segments = list_segments(&FsDisk, &dirs.log)?;
    // A segment's file holds space reserved for appends: what its frames
    // fill is what the log says.
    let used: std::collections::HashMap<PathBuf, u64> =
        match paddock_storage::wal::segments_used(&FsDisk, &dirs.log) {
            Ok(used) => used.into_iter().collect(),
            Err(e) => {
                eprintln!(
                    "note: the log does not read to its end, so segments show their file size: {e}"
                );
                Default::default()
            }
        };
    let kinds = [("snapshot", snapshots), ("segment", segments)];
    for (kind, files) in kinds {
        for (position, path) in files {
            let bytes = size(&path);
            let filled = match kind {
                "segment" => used.get(&path).copied(),
                _ => Some(bytes),
            };
            if target.json {
                let line = serde_json::json!({
                    "kind": kind, "position": position, "bytes": bytes,
                    "used_bytes": filled, "path": path,
                });
                writeln!(out, "{line}")?;
            } else {
                let shown = match filled {
                    Some(b) if b == bytes => format!("{b} bytes"),
                    Some(b) => format!("{b} bytes (file {bytes})"),
                    None => format!("{bytes} bytes (file)"),
                };
                writeln!(out, "{kind}\t0x{position:x}\t{shown}\t{}", path.display())?;
            }
        }
    }
    Ok(())
}

fn log(
    target: &Target,
    from: Option<i64>,
    to: Option<i64>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let dirs = target.dirs()?;
    let log = paddock_storage::read_log(&FsDisk, &dirs.log)?;
    let range = from.unwrap_or(i64::MIN)..=to.unwrap_or(i64::MAX);
    for record in log.records.into_iter().filter(|r| range.contains(&r.index)) {
        let index = record.index;
        let decoded = codec::inspect_record(index as u64, record.body)
            .with_context(|| format!("log record {index} does not decode"))?;
        let mut line = serde_json::json!({ "index": index });
        let text = match decoded {
            Logged::TruncateFrom => {
                line["kind"] = "truncate".into();
                "removes the entries from here on".to_owned()
            }
            Logged::Blank { term } => {
                line["kind"] = "blank".into();
                line["term"] = term.into();
                format!("term {term}\tblank (a new leader's first entry)")
            }
            Logged::Membership {
                term,
                description,
                json,
            } => {
                line["kind"] = "membership".into();
                line["term"] = term.into();
                line["membership"] = json;
                format!("term {term}\tmembership {description}")
            }
            Logged::Barrier {
                term,
                origin,
                claim,
            } => {
                line["kind"] = "barrier".into();
                line["term"] = term.into();
                line["origin"] = origin.into();
                match claim {
                    Some(session) => {
                        line["session"] = format!("0x{session:x}").into();
                        format!("term {term}\tsession 0x{session:x} moved to server {origin}")
                    }
                    None => format!("term {term}\tsync barrier from server {origin}"),
                }
            }
            Logged::Txn {
                term,
                txn,
                expiry_term,
                ..
            } => {
                let txn = paddock_tree::Txn::decode(txn).with_context(|| {
                    format!("the transaction at log index {index} does not decode")
                })?;
                line["kind"] = "txn".into();
                line["term"] = term.into();
                line["time_ms"] = txn.time_ms.into();
                line["time"] = java_date(txn.time_ms).into();
                line["session"] = format!("0x{:x}", txn.session_id).into();
                line["op"] = txn.op.summary().into();
                let expiry = match expiry_term {
                    Some(decided) => {
                        line["expiry_term"] = decided.into();
                        if decided == term {
                            format!("\texpired by the leader of term {decided}")
                        } else {
                            format!("\tskipped: an expiry decided in term {decided}")
                        }
                    }
                    None => String::new(),
                };
                format!(
                    "term {term}\t{}\tsession 0x{:x}\t{}{expiry}",
                    java_date(txn.time_ms),
                    txn.session_id,
                    txn.op.summary()
                )
            }
        };
        if target.json {
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{index}\t{text}")?;
        }
    }
    if let Some((path, offset)) = log.truncated {
        eprintln!(
            "note: {} ends with an unfinished write at offset {offset}",
            path.display()
        );
    }
    Ok(())
}

fn snapshot(target: &Target, at: Option<i64>, out: &mut impl Write) -> anyhow::Result<()> {
    let dirs = target.dirs()?;
    let snapshots = list_snapshots(&FsDisk, &dirs.snapshots)?;
    let chosen = match at {
        Some(p) => snapshots.iter().find(|(s, _)| *s == p),
        None => snapshots.first(),
    };
    let Some((_, path)) = chosen else {
        anyhow::bail!(
            "no snapshot{} in {}",
            at.map(|p| format!(" at position 0x{p:x}"))
                .unwrap_or_default(),
            dirs.snapshots.display()
        );
    };
    let payload = read_snapshot(&FsDisk, path)?;
    let (last_index, tree) = codec::inspect_snapshot(payload)
        .with_context(|| format!("{} does not decode", path.display()))?;
    let tree = DataTree::decode_snapshot(&mut Reader::new(tree), tree_config(&target.config()))
        .with_context(|| format!("{} does not decode", path.display()))?;
    print_tree(
        &tree,
        ("snapshot", &path.display().to_string()),
        last_index,
        target.json,
        out,
    )
}

fn tree(target: &Target, out: &mut impl Write) -> anyhow::Result<()> {
    let dirs = target.dirs()?;
    let (tree, last_index) =
        paddock_replication::read_to_end(&FsDisk, &dirs, tree_config(&target.config()))?;
    let source = dirs.log.display().to_string();
    print_tree(&tree, ("log_end", &source), last_index, target.json, out)
}

/// A header line (where the tree comes from, its zxid and log index, its
/// sessions), then one line per node.
fn print_tree(
    tree: &DataTree,
    (kind, source): (&str, &str),
    last_index: Option<u64>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if json {
        let sessions: Vec<_> = tree
            .sessions()
            .iter()
            .map(|(id, s)| serde_json::json!({"session": format!("0x{id:x}"), "timeout_ms": s.timeout_ms}))
            .collect();
        let header = serde_json::json!({
            kind: source, "zxid": tree.last_zxid(), "last_index": last_index,
            "nodes": tree.node_count(), "sessions": sessions,
        });
        writeln!(out, "{header}")?;
    } else {
        writeln!(
            out,
            "{source}: zxid 0x{:x}, log index {}, {} nodes, {} sessions",
            tree.last_zxid(),
            last_index.map_or("none".to_owned(), |i| i.to_string()),
            tree.node_count(),
            tree.sessions().len()
        )?;
        for (id, s) in tree.sessions() {
            writeln!(out, "session 0x{id:x}\ttimeout {} ms", s.timeout_ms)?;
        }
    }
    let mut nodes = Vec::new();
    tree.walk(|p, node| nodes.push((p.to_owned(), node)));
    for (p, node) in nodes {
        let stat = node.stat();
        let acl: Vec<String> = node
            .acl
            .iter()
            .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
            .collect();
        let data = node.data();
        if json {
            let mut line = serde_json::json!({
                "path": p,
                "czxid": stat.czxid, "mzxid": stat.mzxid, "pzxid": stat.pzxid,
                "ctime": stat.ctime, "mtime": stat.mtime,
                "version": stat.version, "cversion": stat.cversion, "aversion": stat.aversion,
                "ephemeral_owner": stat.ephemeral_owner, "num_children": stat.num_children,
                "acl": acl,
            });
            line["data"] = match data.map(std::str::from_utf8) {
                None => serde_json::Value::Null,
                Some(Ok(text)) => text.into(),
                Some(Err(_)) => serde_json::json!({
                    "base64": base64::engine::general_purpose::STANDARD.encode(data.unwrap_or_default())
                }),
            };
            writeln!(out, "{line}")?;
        } else {
            let shown = match data {
                None => "null".to_string(),
                Some(d) => format!("{:?}", String::from_utf8_lossy(d)),
            };
            writeln!(
                out,
                "{p}\tczxid 0x{:x} mzxid 0x{:x} pzxid 0x{:x} version {} cversion {} aversion {} owner 0x{:x} mtime {}\t{}\t{shown}",
                stat.czxid,
                stat.mzxid,
                stat.pzxid,
                stat.version,
                stat.cversion,
                stat.aversion,
                stat.ephemeral_owner,
                java_date(stat.mtime),
                acl.join(",")
            )?;
        }
    }
    Ok(())
}
