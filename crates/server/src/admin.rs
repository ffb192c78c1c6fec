//! The admin HTTP server, like ZooKeeper's AdminServer: `GET
//! <commandURL>` lists the commands, `GET <commandURL>/<name>` answers one
//! as JSON (names and aliases as ZooKeeper's, e.g. `monitor` or `mntr`),
//! and `GET /metrics` gives the mntr figures in Prometheus' text format
//! under ZooKeeper's metric names. A separate metrics listener
//! (`metricsProvider.httpPort`) serves `/metrics` and nothing else, so a
//! scraper never reaches the commands. Commands that change the server's
//! state or show its sessions (`SENSITIVE`) answer 403 unless
//! `admin.sensitiveCommands=true` (ZooKeeper 3.9 asks for authentication
//! for them).

use crate::fourlw::{self, Metric};
use crate::shared::Shared;
use crate::stats::Stats;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Every command: its name, its four-letter alias (if any).
pub const COMMANDS: [(&str, Option<&str>); 20] = [
    ("configuration", Some("conf")),
    ("connection_stat_reset", Some("crst")),
    ("connections", Some("cons")),
    ("dirs", None),
    ("dump", None),
    ("environment", Some("envi")),
    ("get_trace_mask", Some("gtmk")),
    ("hash", None),
    ("is_read_only", Some("isro")),
    ("leader", Some("lead")),
    ("monitor", Some("mntr")),
    ("ruok", None),
    ("server_stats", Some("srvr")),
    ("set_trace_mask", Some("stmk")),
    ("stat_reset", Some("srst")),
    ("stats", Some("stat")),
    ("voting_view", None),
    ("watch_summary", Some("wchs")),
    ("watches", Some("wchc")),
    ("watches_by_path", Some("wchp")),
];

/// Commands that reset or set something, or show sessions, their
/// clients' addresses and the paths they watch or own.
pub const SENSITIVE: [&str; 7] = [
    "connection_stat_reset",
    "connections",
    "dump",
    "set_trace_mask",
    "stat_reset",
    "watches",
    "watches_by_path",
];

fn canonical(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(n, alias)| *n == name || *alias == Some(name))
        .map(|(n, _)| *n)
}

pub fn router(shared: Arc<Shared>) -> Router {
    let base = shared
        .config
        .admin_command_url
        .trim_end_matches('/')
        .to_owned();
    Router::new()
        .route(&format!("{base}/"), get(list))
        .route(&base, get(list))
        .route(&format!("{base}/{{name}}"), get(command))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// The metrics listener's routes: `/metrics` only.
pub fn metrics_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// Serves `app` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        warn!("admin server stopped: {e}");
    }
}

async fn list(State(shared): State<Arc<Shared>>) -> Html<String> {
    let base = shared.config.admin_command_url.trim_end_matches('/');
    Html(
        COMMANDS
            .iter()
            .map(|(n, _)| n)
            .map(|n| format!("<a href=\"{base}/{n}\">{n}</a>\n<br/>\n"))
            .collect(),
    )
}

async fn command(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(cmd) = canonical(&name) else {
        let body = json!({"command": name, "error": format!("Unknown command: {name}")});
        // ZooKeeper answers 200 and names the problem in "error".
        return json_response(StatusCode::OK, &body);
    };
    if SENSITIVE.contains(&cmd) && !shared.config.admin_sensitive_commands {
        let body = json!({
            "command": cmd,
            "error": format!("{cmd} changes the server or shows its sessions: set admin.sensitiveCommands=true to allow it"),
        });
        return json_response(StatusCode::FORBIDDEN, &body);
    }
    let mut body = match run(&shared, cmd, &params) {
        Ok(fields) => fields,
        Err(error) => {
            let body = json!({"command": cmd, "error": error});
            return json_response(StatusCode::OK, &body);
        }
    };
    body.insert("command".into(), json!(cmd));
    body.insert("error".into(), Value::Null);
    json_response(StatusCode::OK, &Value::Object(body))
}

/// Pretty JSON, as ZooKeeper's AdminServer writes it.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let text = serde_json::to_string_pretty(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn metric_json(m: Metric) -> Value {
    match m {
        Metric::Int(v) => json!(v),
        Metric::Float(v) => json!(v),
        Metric::Text(v) => json!(v),
    }
}

/// One command's fields (before `command` and `error` are added).
pub fn run(
    shared: &Shared,
    cmd: &str,
    params: &HashMap<String, String>,
) -> Result<Map<String, Value>, String> {
    Ok(match cmd {
        "ruok" => Map::new(),
        "stat_reset" => {
            shared.stats.reset();
            Map::new()
        }
        "connection_stat_reset" => {
            fourlw::reset_connection_stats(shared);
            Map::new()
        }
        "monitor" => fourlw::monitor_rows(shared)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), metric_json(v)))
            .collect(),
        "server_stats" => server_stats(shared),
        "stats" => {
            let mut m = server_stats(shared);
            m.extend(connections(shared));
            m
        }
        "connections" => connections(shared),
        "configuration" => {
            let c = &shared.config;
            let dirs = crate::recovery::dirs(c);
            object(json!({
                "client_port": c.client_addr.port(),
                "data_dir": dirs.snapshots,
                "data_log_dir": dirs.log,
                "tick_time": c.tick_time_ms,
                "max_client_cnxns": c.max_client_cnxns,
                "min_session_timeout": c.min_session_timeout_ms,
                "max_session_timeout": c.max_session_timeout_ms,
                "server_id": if c.ensemble.is_some() { u64::from(c.server_id) } else { 0 },
                "client_port_listen_backlog": -1,
            }))
        }
        "dirs" => {
            let dirs = crate::recovery::dirs(&shared.config);
            object(json!({
                "datadir_size": fourlw::dir_bytes(&dirs.snapshots),
                "logdir_size": fourlw::dir_bytes(&dirs.log),
            }))
        }
        "dump" => {
            let d = fourlw::dump(shared);
            object(json!({
                "expiry_time_to_session_ids": d.expiry.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
                "session_id_to_ephemeral_paths": d.ephemerals.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
            }))
        }
        "environment" => fourlw::environment_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect(),
        "get_trace_mask" => object(json!({"tracemask": shared.trace_mask.load(Ordering::Relaxed)})),
        "set_trace_mask" => {
            let mask = params
                .get("traceMask")
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or("set_trace_mask needs a numeric traceMask parameter")?;
            fourlw::set_trace_mask(shared, mask);
            object(json!({"tracemask": mask}))
        }
        "hash" => {
            let tree = shared.tree.read();
            object(json!({"digests": [{"zxid": tree.last_zxid(), "digest": tree.digest()}]}))
        }
        "is_read_only" => object(json!({"read_only": shared.read_only()})),
        "leader" => {
            let status = shared.status();
            let leader = status
                .leader
                .and_then(|id| status.members.iter().find(|m| m.id == id));
            object(json!({
                "is_leader": status.role == paddock_replication::Role::Leader
                    || status.role == paddock_replication::Role::Standalone,
                "leader_id": status.leader,
                "leader_ip": leader.map(|m| m.spec.split(':').next().unwrap_or_default().to_owned()),
            }))
        }
        "voting_view" => {
            let status = shared.status();
            let config: Map<String, Value> = status
                .members
                .iter()
                .filter(|m| m.voter)
                .map(|m| (m.id.to_string(), json!(m.spec)))
                .collect();
            object(json!({"current_config": config}))
        }
        "watch_summary" => {
            let (watches, paths, watchers) = shared.watches.summary();
            object(
                json!({"num_connections": watchers, "num_paths": paths, "num_total_watches": watches}),
            )
        }
        "watches" => object(json!({
            "session_id_to_watched_paths": fourlw::watches_by_session(shared)
                .into_iter()
                .map(|(sid, paths)| (sid.to_string(), json!(paths)))
                .collect::<Map<_, _>>(),
        })),
        "watches_by_path" => object(json!({
            "path_to_session_ids": fourlw::watches_by_path(shared)
                .into_iter()
                .map(|(path, sids)| (path, json!(sids)))
                .collect::<Map<_, _>>(),
        })),
        other => return Err(format!("Unknown command: {other}")),
    })
}

fn server_stats(shared: &Shared) -> Map<String, Value> {
    let s = &shared.stats;
    let lat = s.latency();
    let dirs = crate::recovery::dirs(&shared.config);
    let (zxid, nodes) = {
        let tree = shared.tree.read();
        (tree.last_zxid(), tree.node_count())
    };
    object(json!({
        "version": fourlw::version(),
        "read_only": shared.read_only(),
        "server_stats": {
            "packets_sent": Stats::get(&s.packets_sent),
            "packets_received": Stats::get(&s.packets_received),
            "data_dir_size": fourlw::dir_bytes(&dirs.snapshots),
            "log_dir_size": fourlw::dir_bytes(&dirs.log),
            "server_state": shared.mode_name(),
            "last_processed_zxid": zxid,
            "outstanding_requests": Stats::get(&s.outstanding),
            "avg_latency": lat.avg_ms,
            "max_latency": lat.max_ms,
            "min_latency": lat.min_ms,
            "num_alive_client_connections": Stats::get(&s.connections),
            "uptime": shared.started.elapsed().as_millis() as u64,
            "auth_failed_count": 0,
        },
        "node_count": nodes,
    }))
}

fn connections(shared: &Shared) -> Map<String, Value> {
    let list: Vec<Value> = shared
        .connections
        .lock()
        .values()
        .map(|c| {
            json!({
                "remote_socket_address": c.peer.to_string(),
                "outstanding_requests": Stats::get(&c.queued),
                "packets_received": Stats::get(&c.received),
                "packets_sent": Stats::get(&c.sent),
                "session_id": c.session_id.load(Ordering::Relaxed),
            })
        })
        .collect();
    object(json!({"connections": list, "secure_connections": []}))
}

/// The Prometheus text: every numeric mntr row as a gauge, and the
/// summaries (mntr's cnt_/sum_/avg_/min_/max_ rows: read and update
/// latency, fsync time) as summaries in ms, as ZooKeeper's provider names
/// them.
pub fn metrics_text(shared: &Shared) -> String {
    let mut out = String::new();
    let mut summaries: HashMap<&str, (String, String)> = HashMap::new();
    let rows = fourlw::monitor_rows(shared);
    let summarised: Vec<&str> = rows
        .iter()
        .filter_map(|(name, _)| name.strip_prefix("cnt_"))
        .collect();
    let of_summary = |name: &str| {
        ["avg_", "min_", "max_"].iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|b| summarised.contains(&b))
        })
    };
    for &(name, ref value) in &rows {
        let v = match *value {
            Metric::Int(v) => v as f64,
            Metric::Float(v) => v,
            Metric::Text(_) => continue,
        };
        if let Some(base) = name.strip_prefix("cnt_") {
            summaries.entry(base).or_default().0 = format!("{v}");
            continue;
        }
        if let Some(base) = name.strip_prefix("sum_") {
            summaries.entry(base).or_default().1 = format!("{v}");
            continue;
        }
        if of_summary(name) {
            continue;
        }
        out.push_str(&format!(
            "# HELP {name} {name}\n# TYPE {name} gauge\n{name} {v:?}\n"
        ));
    }
    let mut names: Vec<_> = summaries.into_iter().collect();
    names.sort();
    for (name, (count, sum)) in names {
        out.push_str(&format!(
            "# HELP {name} {name}\n# TYPE {name} summary\n{name}_count {count}\n{name}_sum {sum}\n"
        ));
    }
    out
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&shared),
    )
        .into_response()
}
