//! `paddock bench` against a server started here: the counts it reports
//! match what it did to the tree.

use crate::common::{Raw, TestServer};
use paddock_bench::spec::{named, Kind};
use paddock_proto::{PathWatchRequest, Request, Response};
use std::process::Command;

/// The reply to one read by a new session; the read must succeed.
async fn read(addr: std::net::SocketAddr, req: Request) -> Response {
    let (mut raw, _) = Raw::session(addr, 30_000).await;
    let (h, r) = raw.call(&req).await;
    assert_eq!(h.err, 0, "{req:?}");
    r.expect("a reply body")
}

fn at(path: &str) -> PathWatchRequest {
    PathWatchRequest {
        path: path.into(),
        watch: false,
    }
}

async fn children(addr: std::net::SocketAddr, path: &str) -> usize {
    match read(addr, Request::GetChildren(at(path))).await {
        Response::GetChildren { children } => children.len(),
        other => panic!("{other:?}"),
    }
}

async fn data_version(addr: std::net::SocketAddr, path: &str) -> u32 {
    match read(addr, Request::Exists(at(path))).await {
        Response::Stat(stat) => u32::try_from(stat.version).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_read_write_mix_reports_every_op_it_made_and_no_errors() {
    let s = TestServer::start().await;
    let mut spec = named("read-50").unwrap();
    spec.connections = 3;
    spec.inflight = 4;
    spec.duration_s = 1.0;
    spec.warmup_s = 0.0;
    spec.keys = 50;
    spec.mix.create = 1;
    spec.mix.delete = 1;
    let report = paddock_bench::run(spec, s.addr, None, std::future::pending())
        .await
        .unwrap();
    assert!(report.ops > 100, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let per_op: u64 = report.per_op.values().map(|o| o.ops).sum();
    assert_eq!(per_op, report.ops);
    for op in ["get", "set", "create", "delete"] {
        assert!(
            report.per_op.contains_key(op),
            "{op} missing: {}",
            report.table()
        );
    }
    let l = &report.latency;
    assert!(
        l.p50_us <= l.p99_us && l.p99_us <= l.max_us && l.max_us > 0,
        "{l:?}"
    );
    assert_eq!(
        children(s.addr, "/paddock-bench/k").await,
        50,
        "the keys were preloaded"
    );
    let created = report.per_op["create"].ops - report.per_op["delete"].ops;
    assert_eq!(
        children(s.addr, "/paddock-bench/c").await as u64,
        created,
        "every request sent is waited for and counted, so creates minus deletes remain"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_tree_load_creates_exactly_the_nodes_asked_for() {
    let s = TestServer::start().await;
    let mut spec = named("tree-load").unwrap();
    assert_eq!(spec.kind, Kind::TreeLoad);
    spec.connections = 4;
    spec.total = 777;
    spec.warmup_s = 0.0;
    spec.duration_s = 30.0;
    let report = paddock_bench::run(spec, s.addr, None, std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.ops, 777, "{}", report.table());
    assert_eq!(children(s.addr, "/paddock-bench/t").await, 777);
    s.stop().await;
}

#[tokio::test]
async fn an_open_loop_charges_requests_held_back_from_when_they_were_due() {
    let s = TestServer::start().await;
    // A schedule far faster than one request in flight can keep: each
    // waits behind the one before, and the backlog grows through the run.
    let mut spec = named("get").unwrap();
    spec.connections = 1;
    spec.inflight = 1;
    spec.rate = 1_000_000;
    spec.duration_s = 1.0;
    spec.warmup_s = 0.0;
    spec.keys = 10;
    let report = paddock_bench::run(spec, s.addr, None, std::future::pending())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.ops > 10, "{}", report.table());
    assert!(
        report.latency.max_us >= 300_000,
        "the last requests were due long before they could be sent: {}",
        report.table()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_session_storm_opens_and_closes_sessions() {
    let s = TestServer::start().await;
    let mut spec = named("session-storm").unwrap();
    spec.connections = 2;
    spec.duration_s = 0.5;
    spec.warmup_s = 0.0;
    let report = paddock_bench::run(spec, s.addr, None, std::future::pending())
        .await
        .unwrap();
    assert!(report.ops > 10, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    s.stop().await;
}

#[tokio::test]
async fn every_watcher_hears_of_every_change_in_a_watch_fanout() {
    let s = TestServer::start().await;
    let mut spec = named("watch-fanout").unwrap();
    assert_eq!(spec.kind, Kind::WatchFanout);
    spec.connections = 5;
    spec.inflight = 2;
    spec.duration_s = 0.5;
    spec.warmup_s = 0.0;
    let report = paddock_bench::run(spec, s.addr, None, std::future::pending())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let sets = report.per_op["set"].ops;
    assert!(sets > 10, "{}", report.table());
    assert_eq!(
        report.per_op["notify"].ops,
        5 * sets,
        "each of 5 watchers is notified once per setData: {}",
        report.table()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_watch_round_waits_for_every_watcher_before_the_next_change() {
    let s = TestServer::start().await;
    let mut spec = named("watch-round").unwrap();
    assert_eq!(spec.kind, Kind::WatchRound);
    spec.connections = 5;
    spec.duration_s = 0.5;
    spec.warmup_s = 0.0;
    let report = paddock_bench::run(spec, s.addr, None, std::future::pending())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.per_op.len(), 1, "{}", report.table());
    let rounds = report.per_op["round"].ops;
    assert!(rounds > 10, "{}", report.table());
    assert_eq!(
        u64::from(data_version(s.addr, "/paddock-bench/w").await),
        rounds,
        "one setData per round: {}",
        report.table()
    );
    s.stop().await;
}

#[tokio::test]
async fn lock_churn_acquires_and_releases_and_leaves_the_queue_empty() {
    let s = TestServer::start().await;
    let mut spec = named("lock-churn").unwrap();
    assert_eq!(spec.kind, Kind::LockChurn);
    spec.connections = 4;
    spec.duration_s = 0.5;
    spec.warmup_s = 0.0;
    let report = paddock_bench::run(spec, s.addr, None, std::future::pending())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.per_op["lock"].ops > 10, "{}", report.table());
    assert_eq!(report.per_op.len(), 1, "{}", report.table());
    assert_eq!(
        children(s.addr, "/paddock-bench/l").await,
        0,
        "every contender released what it queued"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_command_line_prints_a_table_and_writes_json() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let addr = s.addr.to_string();
    let out = tokio::task::spawn_blocking({
        let json = json.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_paddock"))
                .args([
                    "bench", "--server", &addr, "-w", "get", "-c", "2", "-d", "0.5", "--json",
                ])
                .arg(&json)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("get against "), "{table}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["spec"]["connections"], 2);
    let bad = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["bench", "-w", "nope"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown workload 'nope'; built in: get,")
    );
    s.stop().await;
}
