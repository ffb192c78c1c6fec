//! `paddock jobs` end to end: a Paddock server, a real redis-server, and
//! executors and watchers as separate processes that are killed with
//! SIGKILL while they work. Every job must still finish exactly once, with
//! every task's correct result exactly once, and leave nothing behind.

use crate::common::{free_port, TestServer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process killed (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway redis-server on a free loopback port, no persistence.
fn start_redis() -> (Proc, String) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test.sh installs it)");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), addr)
}

struct Cluster {
    zk: String,
    redis: String,
    dir: PathBuf,
    spawned: usize,
    session_timeout_ms: u32,
}

impl Cluster {
    fn endpoints(&self) -> Vec<String> {
        vec![
            "--server".into(),
            self.zk.clone(),
            "--redis".into(),
            self.redis.clone(),
            "--session-timeout-ms".into(),
            self.session_timeout_ms.to_string(),
        ]
    }

    /// Starts `paddock jobs <role>`, its stdout and stderr kept in files.
    fn spawn(&mut self, role: &str, extra: &[&str]) -> Proc {
        self.spawned += 1;
        let log = |kind: &str| {
            std::fs::File::create(self.dir.join(format!("{role}-{}.{kind}", self.spawned)))
                .expect("log file")
        };
        let child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["jobs", role])
            .args(self.endpoints())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("spawn paddock jobs");
        Proc(child)
    }

    fn executor(&mut self) -> Proc {
        self.spawn("executor", &["--task-delay-ms", "3", "--poll-ms", "300"])
    }

    fn watcher(&mut self) -> Proc {
        let out = self.dir.join("out");
        let out = out.to_str().expect("utf-8 path").to_string();
        self.spawn("watcher", &["--output-dir", &out, "--poll-ms", "300"])
    }

    fn submit(&self, job: &str, numbers: &[u64]) {
        let list: Vec<String> = numbers.iter().map(u64::to_string).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["jobs", "submit", job])
            .args(self.endpoints())
            .args(["--numbers", &list.join(",")])
            .output()
            .expect("run submit");
        assert!(
            out.status.success(),
            "submit {job}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The output of `paddock jobs status`, which must succeed.
    fn status(&self, extra: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["jobs", "status"])
            .args(self.endpoints())
            .args(extra)
            .output()
            .expect("run status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything the given kind of process wrote to the given stream.
    fn logs(&self, kind: &str) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.dir).expect("dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(kind) {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }
}

fn sieve(limit: usize) -> Vec<bool> {
    let mut prime = vec![true; limit];
    prime[0] = false;
    prime[1] = false;
    let mut i = 2;
    while i * i < limit {
        if prime[i] {
            for j in (i * i..limit).step_by(i) {
                prime[j] = false;
            }
        }
        i += 1;
    }
    prime
}

async fn children(zk: &zookeeper_client::Client, path: &str) -> Vec<String> {
    zk.list_children(path).await.expect("list")
}

fn check_output(dir: &Path, job: &str, numbers: &[u64], prime: &[bool]) {
    let path = dir.join("out").join(format!("{job}.out"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), numbers.len(), "{job}: one line per task");
    for (index, (line, &n)) in lines.iter().zip(numbers).enumerate() {
        let verdict = if prime[n as usize] {
            "prime"
        } else {
            "composite"
        };
        assert_eq!(
            *line,
            format!("{index} {n} {verdict}"),
            "{job} task {index}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_finish_exactly_once_while_members_are_killed() {
    let server = TestServer::start_with(|c| {
        c.tick_time_ms = 100;
        c.min_session_timeout_ms = 200;
        c.max_session_timeout_ms = 5000;
    })
    .await;
    let (_redis, redis) = start_redis();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster {
        zk: server.hosts(),
        redis: redis.clone(),
        dir: dir.path().to_owned(),
        spawned: 0,
        session_timeout_ms: 1000,
    };
    let mut executors: Vec<Proc> = (0..3).map(|_| cluster.executor()).collect();
    let mut watchers: Vec<Proc> = (0..2).map(|_| cluster.watcher()).collect();

    let limit = 200_000;
    let prime = sieve(limit);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut jobs = BTreeMap::new();
    for j in 0..6 {
        let numbers: Vec<u64> = (0..400).map(|_| 2 + next() % (limit as u64 - 2)).collect();
        let job = format!("job-{j}");
        cluster.submit(&job, &numbers);
        jobs.insert(job, numbers);
    }

    let status = cluster.status(&[]);
    for job in jobs.keys() {
        let row = status.lines().find(|l| l.starts_with(job.as_str()));
        let row = row.unwrap_or_else(|| panic!("{job} missing from status:\n{status}"));
        assert!(row.ends_with("/400"), "{row}");
    }

    // Kill members while they work: executors mostly, watchers too, each
    // replaced at once by a new process.
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(150 + next() % 250)).await;
        let pick = next() as usize;
        if round % 4 == 3 {
            watchers.remove(pick % watchers.len());
            watchers.push(cluster.watcher());
        } else {
            executors.remove(pick % executors.len());
            executors.push(cluster.executor());
        }
    }

    let zk = crate::common::client(&server).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while !children(&zk, "/jobs").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "jobs still open: {:?}",
            children(&zk, "/jobs").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (job, numbers) in &jobs {
        check_output(dir.path(), job, numbers, &prime);
    }
    let finished = cluster.logs(".out");
    for job in jobs.keys() {
        let times = finished
            .lines()
            .filter(|l| *l == format!("finished {job} 400"))
            .count();
        assert!(times <= 1, "{job} finished {times} times");
    }
    assert!(
        cluster.logs(".err").contains("requeued"),
        "no kill hit an executor holding a task: the test did not test requeueing"
    );
    assert!(children(&zk, "/watchlocks").await.is_empty());
    let keys = Command::new("redis-cli")
        .args(["-u", &format!("redis://{redis}"), "--scan"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&keys.stdout), "", "Redis keys left");

    // Members that were killed are gone from the groups; the live ones stay.
    let deadline = Instant::now() + Duration::from_secs(10);
    while children(&zk, "/executors").await.len() != 3
        || children(&zk, "/watchers").await.len() != 2
    {
        assert!(Instant::now() < deadline, "dead members still registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = cluster.status(&["--wait"]);
    assert!(status.contains("JOB"), "{status}");
    assert!(status.contains("executors (3)"), "{status}");
    assert!(status.contains("watchers (2)"), "{status}");
    drop(executors);
    drop(watchers);
    server.stop().await;
}

/// SIGTERM (as systemd and Ctrl-C stop them) closes a member's session:
/// its node leaves the group at once, not a session timeout later, so
/// work is not held for a member that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stopped_with_sigterm_leaves_its_group_at_once() {
    let server = TestServer::start_with(|c| c.max_session_timeout_ms = 60_000).await;
    let (_redis, redis) = start_redis();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster {
        zk: server.hosts(),
        redis,
        dir: dir.path().to_owned(),
        spawned: 0,
        session_timeout_ms: 30_000,
    };
    let zk = crate::common::client(&server).await;
    for (role, group) in [("executor", "/executors"), ("watcher", "/watchers")] {
        let mut member = match role {
            "executor" => cluster.executor(),
            _ => cluster.watcher(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while zk.list_children(group).await.map_or(0, |c| c.len()) != 1 {
            assert!(Instant::now() < deadline, "{role} never joined");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stopped = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &member.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        while zk.list_children(group).await.map_or(1, |c| c.len()) != 0 {
            assert!(
                stopped.elapsed() < Duration::from_secs(10),
                "{role}'s node outlived its SIGTERM by 10 s (session timeout 30 s)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let exit = member.0.wait().expect("wait");
        assert!(exit.success(), "{role} exited with {exit}");
    }
    server.stop().await;
}
