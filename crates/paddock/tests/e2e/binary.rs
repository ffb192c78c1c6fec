//! The `paddock` binary itself: start-up, zoo.cfg, clear errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn paddock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paddock"))
}

#[test]
fn the_server_starts_from_a_zoo_cfg_answers_and_stops_on_sigterm() {
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
    let mut child = paddock()
        .args(["server", "--config"])
        .arg(&cfg)
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
    let mut warned = false;
    let started = std::time::Instant::now();
    let addr = loop {
        let left = Duration::from_secs(20).saturating_sub(started.elapsed());
        let Ok(line) = lines.recv_timeout(left) else {
            let _ = child.kill();
            panic!("no 'serving' log line within 20 s");
        };
        warned |= line.contains("unknown key 'someFutureKey' ignored");
        if let Some(i) = line.find("addr=") {
            break line[i + 5..].split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(warned, "unknown keys are warned about");
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"ruok").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out, "imok");
    assert!(dir.path().join("data").is_dir(), "data directory created");
    unsafe_kill(child.id(), 15);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log: Vec<String> = lines.try_iter().collect();
            panic!(
                "still running 20 s after SIGTERM; its log:\n{}",
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
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
    let missing = dir.path().join("none.cfg");
    assert!(
        start_up_error(dir.path(), &["--config", missing.to_str().unwrap()])
            .contains("cannot read")
    );
    assert!(start_up_error(dir.path(), &["--log-level", "a=b=c"])
        .contains("log level 'a=b=c' is not a log filter"));

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
