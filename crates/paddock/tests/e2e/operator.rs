//! What operators read, pinned by snapshots: the text of every
//! four-letter word, the JSON shape of every admin command and the
//! Prometheus metric names. Volatile values (ids, ports, times, counts)
//! are masked, so a snapshot changes only when a shape does.
//! tests/python/test_operator.py checks the same shapes against
//! Apache ZooKeeper.

use crate::common::{four_letter, Raw, TestServer};
use paddock_proto::{PathWatchRequest, Request};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mask(text: &str) -> String {
    let rules = [
        (r"0x[0-9a-f]{6,}", "0xSESSION"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
        (
            r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d UTC \d{4}",
            "DATE",
        ),
        (
            r"(?m)^(host\.name|os\.version|user\.name|user\.home|user\.dir|dataDir|dataLogDir)=.*$",
            "$1=X",
        ),
        (r"\d+/\d+(\.\d+)?/\d+", "N/N/N"),
        (r"(?m)(\t|: |=|/)\d+(\.\d+)?$", "${1}N"),
        (r"(recved|sent|queued)=\d+", "$1=N"),
        (r"(?m)^[0-9a-f]+: \d+$", "ZXID: DIGEST"),
        (r"(?m)^\d+ expire at", "N expire at"),
        (r"3\.8\.0-paddock-[0-9.]+-[0-9a-z]+", "VERSION"),
        (r"built on \d{4}-\d\d-\d\d \d\d:\d\d UTC", "built on DATE"),
    ];
    rules.iter().fold(text.to_owned(), |t, (re, with)| {
        regex::Regex::new(re)
            .expect("regex")
            .replace_all(&t, *with)
            .into_owned()
    })
}

/// A JSON value's shape: every key kept, every leaf replaced by its type.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (mask_key(k), shape(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        Value::Null => Value::Null,
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
    }
}

/// Keys that are ids or times (dump's maps) are masked too.
fn mask_key(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_digit()) {
        "ID".into()
    } else {
        k.to_owned()
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out[9..12].parse().expect("status");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], crate::common::free_port()))
}

/// A server with one session holding an ephemeral node and a data watch.
async fn busy_server(admin: SocketAddr) -> (TestServer, Raw) {
    let s = TestServer::start_with(|c| {
        c.four_letter_whitelist = vec!["*".into()];
        c.admin_addr = Some(admin);
        c.admin_sensitive_commands = true;
        c.tick_time_ms = 2000;
    })
    .await;
    let (mut raw, _) = Raw::session(s.addr, 10_000).await;
    raw.call(&crate::common::create_request("/op", 1, b"x"))
        .await;
    raw.call(&Request::GetData(PathWatchRequest {
        path: "/op".into(),
        watch: true,
    }))
    .await;
    (s, raw)
}

#[tokio::test]
async fn four_letter_words_keep_their_shapes() {
    let (s, _raw) = busy_server(free_addr()).await;
    for word in [
        "ruok", "srvr", "stat", "cons", "dump", "wchs", "wchc", "wchp", "isro", "gtmk", "conf",
        "envi", "mntr", "dirs", "hash",
    ] {
        let text = four_letter(s.addr, word).await;
        insta::assert_snapshot!(format!("4lw_{word}"), mask(&text));
    }
}

#[tokio::test]
async fn stmk_sets_the_trace_mask_gtmk_reads() {
    let s = TestServer::start_with(|c| c.four_letter_whitelist = vec!["*".into()]).await;
    assert_eq!(four_letter(s.addr, "gtmk").await, "306");
    let mut stream = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    stream.write_all(b"stmk").await.expect("write");
    stream.write_all(&31i64.to_be_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    assert_eq!(out, "31");
    assert_eq!(four_letter(s.addr, "gtmk").await, "31");
}

#[tokio::test]
async fn admin_commands_answer_json_with_zookeeper_names() {
    let admin = free_addr();
    let (_s, _raw) = busy_server(admin).await;
    let (status, list) = http_get(admin, "/commands").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = paddock_server::admin::COMMANDS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for name in &names {
        assert!(
            list.contains(&format!("href=\"/commands/{name}\"")),
            "{list}"
        );
    }
    for name in names {
        let path = if name == "set_trace_mask" {
            "/commands/set_trace_mask?traceMask=306".to_owned()
        } else {
            format!("/commands/{name}")
        };
        let (status, body) = http_get(admin, &path).await;
        assert_eq!(status, 200, "{name}: {body}");
        let json: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["command"], name);
        assert_eq!(json["error"], Value::Null);
        insta::assert_json_snapshot!(format!("admin_{name}"), shape(&json));
    }
    // Four-letter aliases reach the same command.
    let (_, body) = http_get(admin, "/commands/mntr").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["command"],
        "monitor"
    );
    // As in ZooKeeper, a failed command is a 200 whose "error" says why.
    let (status, body) = http_get(admin, "/commands/frobnicate").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["error"],
        "Unknown command: frobnicate"
    );
    let (_, body) = http_get(admin, "/commands/set_trace_mask?traceMask=x").await;
    let error = &serde_json::from_str::<Value>(&body).expect("json")["error"];
    assert!(
        error.as_str().is_some_and(|e| e.contains("traceMask")),
        "{body}"
    );
}

#[tokio::test]
async fn the_metrics_port_serves_only_metrics_and_sensitive_commands_need_allowing() {
    let (admin, metrics) = (free_addr(), free_addr());
    let _s = TestServer::start_with(|c| {
        c.admin_addr = Some(admin);
        c.metrics_addr = Some(metrics);
    })
    .await;
    let (status, text) = http_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("znode_count"), "{text}");
    for path in ["/commands", "/commands/dump", "/commands/monitor"] {
        assert_eq!(http_get(metrics, path).await.0, 404, "{path}");
    }
    assert_eq!(http_get(admin, "/commands/monitor").await.0, 200);
    for name in paddock_server::admin::SENSITIVE {
        let (status, body) = http_get(admin, &format!("/commands/{name}")).await;
        assert_eq!(status, 403, "{name}: {body}");
        let error = serde_json::from_str::<Value>(&body).expect("json")["error"].clone();
        assert!(
            error
                .as_str()
                .is_some_and(|e| e.contains("admin.sensitiveCommands")),
            "{body}"
        );
    }
    // Not run: the trace mask is as it was.
    assert!(http_get(admin, "/commands/gtmk").await.1.contains("306"));
}

#[tokio::test]
async fn metrics_use_zookeeper_names_in_prometheus_format() {
    let admin = free_addr();
    let (_s, mut raw) = busy_server(admin).await;
    raw.call(&Request::GetData(PathWatchRequest {
        path: "/op".into(),
        watch: false,
    }))
    .await;
    let (status, text) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
    insta::assert_snapshot!("metrics_types", types.join("\n"));
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(value("znode_count"), 6.0);
    assert_eq!(value("ephemerals_count"), 1.0);
    assert_eq!(value("watch_count"), 1.0);
    assert!(value("readlatency_count") >= 2.0);
    assert!(value("updatelatency_count") >= 1.0);
    // Every write went through the log: one frame and fdatasync at least.
    assert!(value("fsynctime_count") >= 1.0);
    assert!(value("fsynctime_sum") > 0.0);
}
