//! Durability: a restart keeps every acknowledged write and every live
//! session; kill -9 at random moments loses nothing acknowledged and
//! half-applies nothing; a damaged log stops the server with file and
//! offset; a data directory serves one server at a time.

use crate::common::{config_in, create_request, Raw, TestServer};
use paddock_proto::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn create(path: &str, flags: i32) -> Request {
    create_request(path, flags, path.as_bytes())
}

fn children(path: &str) -> Request {
    Request::GetChildren(PathWatchRequest {
        path: path.into(),
        watch: false,
    })
}

#[tokio::test]
async fn a_restart_keeps_the_tree_and_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (mut raw, session) = Raw::session(s.addr, 30_000).await;
    raw.call(&create("/keep", 0)).await;
    raw.call(&create("/keep/seq-", 2)).await;
    raw.call(&create("/keep/eph", 1)).await;
    let (before, _) = raw.call(&children("/keep")).await;
    drop(raw);
    s.stop().await;

    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let mut again = Raw::open(s.addr).await;
    let resp = again
        .connect(&ConnectRequest {
            timeout_ms: 30_000,
            session_id: session.session_id,
            passwd: Some(session.passwd.clone()),
            last_zxid_seen: before.zxid,
            ..Default::default()
        })
        .await
        .expect("the server answers");
    assert_eq!(
        resp.session_id, session.session_id,
        "the session survived the restart"
    );
    let (h, r) = again.call(&children("/keep")).await;
    assert_eq!(h.zxid, before.zxid, "same zxid after replay");
    let Some(Response::GetChildren { mut children }) = r else {
        panic!()
    };
    children.sort();
    assert_eq!(children, vec!["eph", "seq-0000000000"]);
    let (_, r) = again.call(&create("/keep/seq-", 2)).await;
    assert_eq!(
        r,
        Some(Response::Create {
            path: "/keep/seq-0000000002".into()
        }),
        "sequence numbers continue"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestServer::start_in(dir.path(), |_| {}).await;
    let config = config_in(dir.path());
    let err = paddock_server::Server::bind(config)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("in use by another server"),
        "{err}"
    );
    first.stop().await;
}

/// A server process, killed (SIGKILL) when dropped, so a failing test
/// leaves nothing running.
struct Proc(Child);

impl Proc {
    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The binary, started on a data directory with a snapshot every 40
/// transactions (so crashes also land in compactions and purges); returns
/// the process and the address from its "serving" log line.
fn spawn(data_dir: &std::path::Path) -> (Proc, std::net::SocketAddr) {
    let cfg = data_dir.join("zoo.cfg");
    std::fs::write(&cfg, "clientPortAddress=127.0.0.1\nsnapCount=40\n").unwrap();
    let mut child = Proc(
        Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["server", "--port", "0", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server logs its address");
        if let Some(i) = line.find("addr=") {
            let addr = line[i + 5..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            return (child, addr);
        }
    }
}

/// Writes until killed: single creates and two-node multis, pipelined, and
/// returns what was acknowledged.
async fn write_until_killed(addr: std::net::SocketAddr, cycle: usize) -> (Vec<String>, Vec<usize>) {
    let mut acked = Vec::new();
    let mut pairs = Vec::new();
    let Some(Some((mut raw, _))) =
        tokio::time::timeout(Duration::from_secs(5), Raw::try_session(addr, 30_000))
            .await
            .ok()
    else {
        return (acked, pairs);
    };
    for i in 0.. {
        let single = format!("/crash/c{cycle}-{i}");
        let multi = Request::Multi(vec![
            create(&format!("/crash/a{cycle}-{i}"), 0),
            create(&format!("/crash/b{cycle}-{i}"), 0),
        ]);
        let sent = raw
            .try_send_frame(&create(&single, 0).encode_with_header(2 * i + 1))
            .await
            .is_ok()
            && raw
                .try_send_frame(&multi.encode_with_header(2 * i + 2))
                .await
                .is_ok();
        if !sent {
            return (acked, pairs);
        }
        for _ in 0..2 {
            let Some(body) = raw.read_frame().await else {
                return (acked, pairs);
            };
            let Ok(h) = ReplyHeader::read(&mut Reader::new(body)) else {
                return (acked, pairs);
            };
            if h.err == 0 && h.xid % 2 == 1 {
                acked.push(single.clone());
            } else if h.err == 0 {
                pairs.push(i as usize);
            }
        }
    }
    (acked, pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut addr) = spawn(dir.path());
    {
        let (mut raw, _) = Raw::session(addr, 30_000).await;
        raw.call(&create("/crash", 0)).await;
    }
    let mut all_acked: Vec<String> = Vec::new();
    let mut all_pairs: Vec<(usize, usize)> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let started = Instant::now();
    // 100 in every run; set PADDOCK_CRASH_CYCLES for a longer one.
    let cycles: usize = std::env::var("PADDOCK_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    for cycle in 0..cycles {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run_for = Duration::from_millis(5 + rng % 60);
        let writer = tokio::spawn(write_until_killed(addr, cycle));
        tokio::time::sleep(run_for).await;
        child.kill9();
        let (acked, pairs) = writer.await.unwrap();
        all_acked.extend(acked);
        all_pairs.extend(pairs.into_iter().map(|i| (cycle, i)));
        let (next, next_addr) = spawn(dir.path());
        child = next;
        let (mut raw, _) = Raw::session(next_addr, 30_000).await;
        let (h, r) = raw.call(&children("/crash")).await;
        assert_eq!(h.err, 0);
        let Some(Response::GetChildren { children }) = r else {
            panic!()
        };
        let present: std::collections::HashSet<String> = children.into_iter().collect();
        for path in &all_acked {
            assert!(
                present.contains(&path["/crash/".len()..]),
                "cycle {cycle}: acknowledged {path} lost"
            );
        }
        for &(c, i) in &all_pairs {
            assert!(
                present.contains(&format!("a{c}-{i}")) && present.contains(&format!("b{c}-{i}")),
                "cycle {cycle}: multi {c}-{i} lost"
            );
        }
        for name in &present {
            if let Some(rest) = name.strip_prefix('a') {
                assert!(
                    present.contains(&format!("b{rest}")),
                    "half of a multi applied: {name}"
                );
            }
        }
        drop(raw);
        addr = next_addr;
    }
    drop(child);
    assert!(
        all_acked.len() > cycles,
        "the writers got acknowledgements ({})",
        all_acked.len()
    );
    eprintln!(
        "{cycles} kill -9 cycles, {} acknowledged creates and {} multis verified in {:?}",
        all_acked.len(),
        all_pairs.len(),
        started.elapsed()
    );
}

/// A data directory holding `n` acknowledged creates, its server stopped.
fn log_of_creates(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = TestServer::start_in(dir.path(), |_| {}).await;
        let (mut raw, _) = Raw::session(s.addr, 30_000).await;
        for i in 0..n {
            assert_eq!(raw.call(&create(&format!("/d{i}"), 0)).await.0.err, 0);
        }
        drop(raw);
        s.stop().await;
    });
    dir
}

#[test]
fn a_damaged_log_stops_the_server_with_file_and_offset() {
    let dir = log_of_creates(5);
    let seg = files(&dir.path().join("wal"), "wal-").remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[8 + 12 + 3] ^= 0x01; // inside the first frame's payload
    std::fs::write(&seg, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["server", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "it must not start on a damaged log");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&seg.display().to_string()) && err.contains("at offset 8"),
        "{err}"
    );
}

#[test]
fn rebuild_is_refused_for_a_standalone_server_and_moves_nothing() {
    let dir = log_of_creates(5);
    let before = files(&dir.path().join("wal"), "wal-");
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["server", "--rebuild", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this server is standalone"), "{err}");
    assert_eq!(files(&dir.path().join("wal"), "wal-"), before);
    assert!(!dir.path().join("wal.rebuilding").exists());
}

/// The frames of a log segment: (offset, whole length), from the layout in
/// docs/storage.md (8-byte magic; 12-byte header, payload, end marker).
fn frames(segment: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 12 <= segment.len() {
        let len = u32::from_be_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push((at, 12 + len + 1));
        at += 12 + len + 1;
    }
    out
}

#[test]
fn no_flipped_bit_in_the_log_lets_the_binary_start_with_less() {
    let dir = log_of_creates(200);
    let seg = files(&dir.path().join("wal"), "wal-").pop().unwrap();
    let clean = std::fs::read(&seg).unwrap();
    let frames = frames(&clean);
    assert!(frames.len() > 10, "{} frames", frames.len());
    // Every bit of the first, a middle and the last frame's header, and a
    // bit of every 97th byte of everything written.
    let (first, middle, last) = (
        frames[0],
        frames[frames.len() / 2],
        frames[frames.len() - 1],
    );
    let mut bits: Vec<usize> = [first, middle, last]
        .iter()
        .flat_map(|(at, _)| at * 8..(at + 12) * 8)
        .collect();
    bits.extend(
        (8..last.0 + last.1)
            .step_by(97)
            .map(|byte| byte * 8 + byte % 8),
    );
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    let put = |byte: usize, value: u8| {
        std::os::unix::fs::FileExt::write_all_at(&file, &[value], byte as u64).unwrap()
    };
    for bit in bits {
        let byte = bit / 8;
        put(byte, clean[byte] ^ (1 << (bit % 8)));
        let err = hash_or_refusal(dir.path())
            .expect_err(&format!("bit {bit}: the server refused to start"));
        let frame = frames.iter().rev().find(|(at, _)| *at <= byte).unwrap().0;
        assert!(
            err.contains(&seg.display().to_string()) && err.contains(&format!("at offset {frame}")),
            "bit {bit} (byte {byte}, frame at {frame}): {err}"
        );
        put(byte, clean[byte]);
    }
}

#[tokio::test]
async fn after_a_failed_fsync_writes_get_errors_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let disk = std::sync::Arc::new(paddock_storage::disk::FaultyDisk::new(
        usize::MAX,
        usize::MAX,
    ));
    let server = paddock_server::Server::bind_on(config, disk.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    let (mut raw, _) = Raw::session(addr, 30_000).await;
    assert_eq!(raw.call(&create("/ok", 0)).await.0.err, 0);
    disk.allow_syncs(0);
    assert_eq!(
        raw.call(&create("/lost", 0)).await.0.err,
        ErrorCode::SystemError.code()
    );
    assert_eq!(
        raw.call(&create("/later", 0)).await.0.err,
        ErrorCode::SystemError.code(),
        "the log stays stopped"
    );
    let (h, r) = raw.call(&children("/")).await;
    assert_eq!(h.err, 0, "reads are still served");
    let Some(Response::GetChildren { mut children }) = r else {
        panic!()
    };
    children.sort();
    assert_eq!(
        children,
        vec!["ok", "zookeeper"],
        "nothing unsynced is served"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

fn inspect(args: &[&str], dir: &std::path::Path) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .arg("inspect")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn paddock_inspect_lists_files_and_prints_the_log_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = TestServer::start_in(dir.path(), |c| c.snap_count = 2).await;
        let (mut raw, _) = Raw::session(s.addr, 30_000).await;
        raw.call(&create("/logged", 0)).await;
        raw.call(&Request::Delete(DeleteRequest {
            path: "/logged".into(),
            version: 0,
        }))
        .await;
        raw.call(&create("/kept", 0)).await;
        drop(raw);
        let snaps = dir.path().join("snap");
        // Entries: 0 membership, 1 blank, 2 session, 3-5 the writes. Wait
        // for a snapshot that includes them (position 6 or more).
        let covers_writes = |p: &std::path::PathBuf| {
            let name = p.file_name().unwrap().to_str().unwrap();
            i64::from_str_radix(&name[9..25], 16).unwrap() >= 6
        };
        for _ in 0..500 {
            if files(&snaps, "snapshot-").iter().any(covers_writes) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s.stop().await;
    });
    // Index 0 is the membership of the one-server group, 1 its leader's
    // first (blank) entry, 2 the session.
    let all = inspect(&["log", "--json"], dir.path());
    assert!(
        all[0].contains(r#""kind":"membership""#) && all[1].contains(r#""kind":"blank""#),
        "{all:?}"
    );
    let lines = inspect(&["log", "--json", "--from", "3", "--to", "4"], dir.path());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains(r#""op":"create /logged (opcode 1, flags 0, 7 bytes)""#)
            && lines[0].contains(r#""index":3"#)
            && lines[0].contains(r#""kind":"txn""#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""op":"delete /logged version 0""#),
        "{}",
        lines[1]
    );

    let listed = inspect(&["list"], dir.path());
    assert!(
        listed.iter().any(|l| l.starts_with("segment\t0x0\t")),
        "{listed:?}"
    );
    let snapshot = listed
        .iter()
        .find(|l| l.starts_with("snapshot\t"))
        .unwrap_or_else(|| panic!("no snapshot listed: {listed:?}"));
    let position = snapshot.split('\t').nth(1).unwrap();

    let dump = inspect(&["snapshot", "--json", "--at", position], dir.path());
    let header: serde_json::Value = serde_json::from_str(&dump[0]).unwrap();
    // A snapshot at position p holds log entries 0..p.
    assert_eq!(
        header["last_index"].as_i64(),
        Some(i64::from_str_radix(&position[2..], 16).unwrap() - 1)
    );
    assert!(header["zxid"].as_i64().unwrap() >= 1, "{header}");
    let root: serde_json::Value = serde_json::from_str(&dump[1]).unwrap();
    assert_eq!(root["path"], "/");
    assert_eq!(root["acl"][0], "world:anyone:31");
    let text = inspect(&["snapshot"], dir.path());
    assert!(
        text.iter().any(|l| l.starts_with("/zookeeper\tczxid 0x0 ")),
        "{text:?}"
    );
}

fn files(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .filter(|p| *p != paddock_storage::retiring_name(p))
        .collect();
    out.sort();
    out
}

/// Writes `n` nodes under /snap on a server with small segments and
/// frequent snapshots, waits for the snapshots, and stops it. Returns the
/// zxid of the last write.
async fn write_with_snapshots(dir: &std::path::Path, n: usize) -> i64 {
    let small = |c: &mut paddock_server::ServerConfig| {
        c.snap_count = 25;
        c.wal_segment_bytes = 2048;
    };
    let s = TestServer::start_in(dir, small).await;
    let (mut raw, _) = Raw::session(s.addr, 30_000).await;
    raw.call(&create("/snap", 0)).await;
    let mut zxid = 0;
    for i in 0..n {
        let (h, _) = raw.call(&create(&format!("/snap/n{i:04}"), 0)).await;
        assert_eq!(h.err, 0);
        zxid = h.zxid;
    }
    // Snapshots are built in the background every snapCount entries; on a
    // busy machine one may start a few entries late, so wait until the
    // newest is within one step of the end of the log (n + 2 entries).
    let position = |p: &std::path::PathBuf| {
        let name = p.file_name().unwrap().to_str().unwrap();
        let digits = name
            .trim_start_matches("snapshot-")
            .trim_end_matches(".snap");
        i64::from_str_radix(digits, 16).unwrap()
    };
    let last = n as i64 + 2;
    let mut snaps = Vec::new();
    for _ in 0..500 {
        snaps = files(&dir.join("snap"), "snapshot-");
        if snaps.len() == 3 && snaps.last().is_some_and(|p| position(p) + 25 > last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        snaps.last().is_some_and(|p| position(p) + 25 > last),
        "no snapshot within 25 entries of {last} within 10 s: {snaps:?}"
    );
    drop(raw);
    s.stop().await;
    zxid
}

/// Restarts on `dir` and counts the children of /snap, with the zxid the
/// server has reached (one past the writes: the new session).
async fn count_children(dir: &std::path::Path) -> (usize, i64) {
    let s = TestServer::start_in(dir, |_| {}).await;
    let (mut raw, _) = Raw::session(s.addr, 30_000).await;
    let (h, r) = raw.call(&children("/snap")).await;
    drop(raw);
    s.stop().await;
    match r {
        Some(Response::GetChildren { children }) => (children.len(), h.zxid),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn snapshots_bound_the_log_and_a_restart_starts_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_with_snapshots(dir.path(), 200).await;
    let snaps = files(&dir.path().join("snap"), "snapshot-");
    assert_eq!(snaps.len(), 3, "autopurge keeps 3 snapshots: {snaps:?}");
    let segments = files(&dir.path().join("wal"), "wal-");
    let first = i64::from_str_radix(
        &segments[0].file_name().unwrap().to_str().unwrap()[4..20],
        16,
    )
    .unwrap();
    assert!(
        first > 1,
        "segments below the oldest snapshot were purged: {segments:?}"
    );
    // Purged segments are freed in the background; none is left behind.
    let retiring = || {
        std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| *p == paddock_storage::retiring_name(p))
            .count()
    };
    for _ in 0..250 {
        if retiring() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(retiring(), 0, "purged segments are removed");
    // Each snapshot holds exactly the state at its position: replaying the
    // log after it applies nothing twice.
    assert_eq!(count_children(dir.path()).await, (200, written + 1));
}

#[tokio::test]
async fn a_damaged_snapshot_is_skipped_only_while_the_log_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_with_snapshots(dir.path(), 120).await;
    let snaps = files(&dir.path().join("snap"), "snapshot-");
    let newest = snaps.last().unwrap().clone();
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&newest, &bytes).unwrap();
    assert_eq!(
        count_children(dir.path()).await,
        (120, written + 1),
        "an older snapshot and the log still hold everything"
    );

    for s in &snaps {
        let mut bytes = std::fs::read(s).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(s, &bytes).unwrap();
    }
    let config = config_in(dir.path());
    let err = paddock_server::Server::bind(config)
        .await
        .err()
        .expect("refused: the old log is purged");
    let msg = err.to_string();
    assert!(
        msg.contains("snapshot-") && msg.contains("refusing to start"),
        "{msg}"
    );
}

/// Copies a directory tree.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every znode under `path` with its data, full Stat and ACL, one line
/// each, parents first and siblings by name.
async fn listing(c: &zookeeper_client::Client, path: &str, out: &mut Vec<String>) {
    let (data, s) = c.get_data(path).await.unwrap();
    let (acl, _) = c.get_acl(path).await.unwrap();
    let acl: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{:?}", a.scheme(), a.id(), a.permission()))
        .collect();
    let shown = String::from_utf8_lossy(&data);
    let shown = match shown.len() {
        0..=40 => shown.into_owned(),
        _ => format!("{}… ({} bytes)", &shown[..20], data.len()),
    };
    out.push(format!(
        "{path} {shown:?} czxid={:#x} mzxid={:#x} pzxid={:#x} ctime={} mtime={} \
         version={} cversion={} aversion={} owner={:#x} length={} children={} acl={}",
        s.czxid,
        s.mzxid,
        s.pzxid,
        s.ctime,
        s.mtime,
        s.version,
        s.cversion,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children,
        acl.join(",")
    ));
    let (mut kids, _) = c.get_children(path).await.unwrap();
    kids.sort();
    for kid in kids {
        let child = match path {
            "/" => format!("/{kid}"),
            _ => format!("{path}/{kid}"),
        };
        Box::pin(listing(c, &child, out)).await;
    }
}

/// A data directory written by the binary of 2026-12-07 (log segment
/// format 2, snapshot metadata and consensus state in our own layouts;
/// scripts/golden-datadir.sh wrote it) loads into the same tree in every
/// later version.
#[tokio::test]
async fn a_data_directory_written_on_2026_12_07_still_loads_into_the_same_tree() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v2");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let c = crate::common::client(&s).await;
    let mut lines = Vec::new();
    listing(&c, "/", &mut lines).await;
    insta::assert_snapshot!("golden_datadir_v2_tree", lines.join("\n"));
    drop(c);
    s.stop().await;
}

/// A segment of a later format is refused by name, not taken for damage.
#[test]
fn a_log_of_a_later_format_is_refused_naming_the_format() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v2");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let wal = dir.path().join("wal");
    let newest = files(&wal, "wal-").pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[..8].copy_from_slice(b"PDKWAL03");
    std::fs::write(&newest, bytes).unwrap();
    let err = hash_or_refusal(dir.path()).expect_err("the server refused to start");
    assert!(
        err.contains(&newest.display().to_string())
            && err.contains("a log segment of format 3; this binary reads format 1 and 2"),
        "{err}"
    );
}

/// Starts the binary on `dir`: its answer to `hash` (last zxid and tree
/// digest) once it serves, or what it printed if it stopped (with a
/// failure status: it never stops by itself with success).
fn hash_or_refusal(dir: &std::path::Path) -> Result<String, String> {
    let port = crate::common::free_port();
    let mut server = Proc(
        Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["server", "--port", &port.to_string(), "--data-dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut server.0.stderr.take().unwrap(), &mut err).unwrap();
            assert!(!status.success(), "it stopped by itself: {err}");
            return Err(err);
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let mut answer = String::new();
            if s.write_all(b"hash").is_ok() && s.read_to_string(&mut answer).is_ok() {
                server.kill9();
                return Ok(answer);
            }
        }
        assert!(Instant::now() < deadline, "the server started or stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Flips bits in the snapshots, the consensus state file and the log of
/// the 2026-12-07 data directory (every bit of each file's header, a bit
/// of a sample of the rest), restarting the real binary each time: it
/// serves the whole tree (an older snapshot and the log stand in for a
/// damaged one) or refuses naming the file. Never less.
#[test]
fn no_flipped_bit_in_any_stored_file_lets_the_binary_start_with_less() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v2");
    // A server changes its directory as it starts: each run gets a copy.
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture, dir.path());
        dir
    };
    let whole = hash_or_refusal(fresh().path()).expect("the fixture loads");
    let (mut refused, mut served) = (0, 0);
    let mut stored = files(&fixture.join("snap"), "snapshot-");
    stored.extend(files(&fixture.join("wal"), "raft-state"));
    stored.extend(files(&fixture.join("wal"), "wal-"));
    for original in stored {
        let clean = std::fs::read(&original).unwrap();
        let rel = original.strip_prefix(&fixture).unwrap().to_owned();
        let header = if original.ends_with("raft-state") {
            47
        } else {
            12
        };
        let mut bits: Vec<usize> = (0..header.min(clean.len()) * 8).collect();
        bits.extend((header..clean.len()).step_by(23).map(|b| b * 8 + b % 8));
        for bit in bits {
            let dir = fresh();
            let path = dir.path().join(&rel);
            let mut bad = clean.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &bad).unwrap();
            match hash_or_refusal(dir.path()) {
                Ok(hash) => {
                    assert_eq!(hash, whole, "bit {bit} of {}", rel.display());
                    served += 1;
                }
                Err(err) => {
                    assert!(
                        err.contains(&path.display().to_string()) && err.contains("refusing"),
                        "bit {bit} of {}: {err}",
                        rel.display()
                    );
                    refused += 1;
                }
            }
        }
    }
    eprintln!("{refused} refused, {served} served the whole tree");
    assert!(
        refused > 100 && served > 50,
        "{refused} refused, {served} served whole"
    );
}
