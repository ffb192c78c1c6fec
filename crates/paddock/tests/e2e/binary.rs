//! The `paddock` binary itself: start-up, zoo.cfg, clear errors.

use crate::common::four_letter;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

fn paddock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paddock"))
}

/// A `paddock server` process and the lines it logs.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    /// Starts `paddock server` with `args` and waits for the line naming
    /// its client address; returns it with every line logged before it.
    fn start(args: &[&str]) -> (Running, SocketAddr, Vec<String>) {
        Self::start_with_env(args, &[])
    }

    /// `start` with these environment variables set.
    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> (Running, SocketAddr, Vec<String>) {
        let mut child = paddock()
            .arg("server")
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut running = Running { child, lines };
        let started = std::time::Instant::now();
        let mut before = Vec::new();
        loop {
            let left = Duration::from_secs(20).saturating_sub(started.elapsed());
            let Ok(line) = running.lines.recv_timeout(left) else {
                running.stop_now();
                panic!("no 'serving' log line within 20 s");
            };
            if let Some(i) = line.find("addr=") {
                let addr = line[i + 5..].split_whitespace().next().unwrap();
                return (running, addr.parse().unwrap(), before);
            }
            before.push(line);
        }
    }

    fn stop_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop_now();
        }
    }
}

#[tokio::test]
async fn the_server_starts_from_a_zoo_cfg_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\nsomeFutureKey=1\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (mut server, addr, logged) = Running::start(&["--config", cfg.to_str().unwrap()]);
    assert!(
        logged
            .iter()
            .any(|l| l.contains("unknown key 'someFutureKey' ignored")),
        "unknown keys are warned about"
    );
    assert_eq!(four_letter(addr, "ruok").await, "imok");
    assert!(dir.path().join("data").is_dir(), "data directory created");
    unsafe_kill(server.child.id(), 15);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            server.stop_now();
            let log: Vec<String> = server.lines.try_iter().collect();
            panic!(
                "still running 20 s after SIGTERM; its log:\n{}",
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

/// zkServer.sh hands ZooKeeper its settings as Java system properties:
/// from SERVER_JVMFLAGS and `-D` on the command line they are zoo.cfg's
/// keys (`zookeeper.X` is `X`); JVM-only ones pass without a word.
#[tokio::test]
async fn java_system_properties_set_what_zookeeper_reads_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, addr, logged) = Running::start_with_env(
        &[
            "--port",
            "0",
            "--data-dir",
            data.to_str().unwrap(),
            "-Dzookeeper.4lw.commands.whitelist=dump,ruok",
        ],
        &[(
            "SERVER_JVMFLAGS",
            "-Xmx512m -Dfile.encoding=UTF-8 -Dlog4j.configuration=file:/etc/zk/log4j.properties -Dzookeeper.log.dir=/var/log/zk",
        )],
    );
    assert!(
        !logged.iter().any(|l| l.contains("unknown key")),
        "{logged:?}"
    );
    // dump is not among the words allowed by default.
    assert!(four_letter(addr, "dump").await.contains("Session"));
    assert!(four_letter(addr, "srvr").await.contains("is not executed"));
}

/// Context switches of every thread of process `pid` so far.
fn context_switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[tokio::test]
async fn an_idle_standalone_server_hardly_wakes_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, addr, _) = Running::start(&["--port", "0", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(four_letter(addr, "ruok").await, "imok");
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id();
    let before = context_switches(pid);
    std::thread::sleep(Duration::from_secs(2));
    let woken = context_switches(pid) - before;
    // About 110: the status poll (40 a second) and a few timers. With
    // openraft's 4 ms clock running it was over 600.
    assert!(woken < 300, "{woken} context switches in 2 s of idling");
}

fn unsafe_kill(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `paddock server` with `args` (data in `dir` unless given) and
/// returns its one error line; it must fail with exactly one.
fn start_up_error(dir: &std::path::Path, args: &[&str]) -> String {
    let mut cmd = paddock();
    cmd.arg("server").args(args);
    if !args.contains(&"--config") && !args.contains(&"--data-dir") {
        cmd.arg("--data-dir").arg(dir.join("data"));
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("paddock: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_owned()
}

#[test]
fn every_start_up_problem_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(&cfg, "tickTime=fast\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    assert!(start_up_error(dir.path(), &["--config", cfg])
        .ends_with("zoo.cfg: tickTime: 'fast' is not a valid number"));
    // zkServer.sh's habit: the file without --config.
    assert!(start_up_error(dir.path(), &[cfg])
        .ends_with("zoo.cfg: tickTime: 'fast' is not a valid number"));
    let missing = dir.path().join("none.cfg");
    let e = start_up_error(dir.path(), &["--config", missing.to_str().unwrap()]);
    assert!(e.contains("cannot read"), "{e}");
    assert_eq!(e.matches("os error 2").count(), 1, "the cause once: {e}");
    assert!(start_up_error(dir.path(), &["--log-level", "a=b=c"])
        .contains("log level 'a=b=c' is not a log filter"));
    assert!(
        start_up_error(dir.path(), &["--log-level", "bogus"]).contains("'bogus' is not a level")
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_eq!(
        start_up_error(dir.path(), &["--port", &port]),
        format!("paddock: cannot listen on 127.0.0.1:{port} (clientPort): Address already in use (os error 98)")
    );
    assert!(
        start_up_error(dir.path(), &["--port", "0", "--admin-port", &port]).contains(&format!(
            "cannot listen on 127.0.0.1:{port} (admin.serverPort)"
        ))
    );

    // A second server on a data directory in use.
    let data = dir.path().join("busy");
    let mut first = paddock()
        .args(["server", "--port", "0", "--data-dir"])
        .arg(&data)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !data.join("paddock.lock").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The lock is taken right after the file appears.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let err = start_up_error(
        dir.path(),
        &["--port", "0", "--data-dir", data.to_str().unwrap()],
    );
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(err.contains("is in use by another server"), "{err}");
}

#[test]
fn the_version_names_the_commit_and_its_date() {
    let out = paddock().arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    // Built from a git checkout (this test's own): the commit is known.
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(text.starts_with("paddock "), "{text}");
    if !commit.is_empty() {
        assert!(text.contains(&format!("(commit {commit}, ")), "{text}");
        assert!(text.contains(" UTC; speaks ZooKeeper 3.8.0)"), "{text}");
    }
}
