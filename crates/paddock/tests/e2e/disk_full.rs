//! A full disk on a real file system: a tmpfs of 2 MiB mounted in a mount
//! namespace of the test's own (`unshare`, no privileges needed beyond
//! user namespaces), filled to its last byte while a server writes to it.

use crate::common::{create_request, free_port, Raw};
use paddock_proto::*;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A mount namespace holding a small tmpfs at `mnt`, kept by a sleeping
/// process; servers are started inside it with `nsenter`.
struct SmallDisk {
    holder: Child,
    mnt: PathBuf,
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut holder = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg("mount -t tmpfs -o size=$1 tmpfs \"$0\" && echo mounted && exec sleep 600")
            .arg(&mnt)
            .arg(size)
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "mounted", "the tmpfs was mounted");
        SmallDisk { holder, mnt, dir }
    }

    /// `rel` on the tmpfs, as this process reaches it (through the
    /// holder's view of the file system).
    fn path(&self, rel: &str) -> PathBuf {
        let inside = self.mnt.join(rel);
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(inside.strip_prefix("/").unwrap())
    }

    /// Starts a server whose data directory is on the tmpfs.
    fn server(&self, port: u16, log: &str) -> Child {
        let cfg = self.dir.path().join("zoo.cfg");
        let mut f = std::fs::File::create(&cfg).unwrap();
        // 64 KiB segments: every 64 KiB of log needs new space.
        write!(
            f,
            "tickTime=2000\nclientPortAddress=127.0.0.1\nclientPort={port}\n\
             dataDir={}\npreAllocSize=64\n",
            self.mnt.join("data").display()
        )
        .unwrap();
        Command::new("nsenter")
            .args(["--target", &self.holder.id().to_string()])
            .args(["--user", "--mount", "--preserve-credentials"])
            .arg(env!("CARGO_BIN_EXE_paddock"))
            .args(["server", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Writes a file until the tmpfs has no byte left.
    fn fill(&self, name: &str) {
        let mut f = std::fs::File::create(self.path(name)).unwrap();
        let chunk = vec![7u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Stops a server process (SIGTERM, then waits).
fn stop(mut server: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
}

async fn session_when_up(addr: SocketAddr, server: &mut Child) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((raw, _)) = Raw::try_session(addr, 30_000).await {
            return raw;
        }
        assert!(server.try_wait().unwrap().is_none(), "the server exited");
        assert!(Instant::now() < deadline, "the server came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn children(raw: &mut Raw) -> Vec<String> {
    let (h, r) = raw
        .call(&Request::GetChildren(PathWatchRequest {
            path: "/".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, 0, "reads are served");
    let Some(Response::GetChildren { mut children }) = r else {
        panic!("{r:?}")
    };
    children.retain(|c| c != "zookeeper");
    children.sort();
    children
}

#[tokio::test]
async fn a_full_disk_fails_writes_keeps_reads_and_loses_nothing_once_space_is_freed() {
    let disk = SmallDisk::mount("2m");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = disk.server(port, "first.log");
    let mut raw = session_when_up(addr, &mut server).await;
    disk.fill("filler");
    let mut acked = Vec::new();
    let value = vec![b'v'; 1024];
    let failed = loop {
        let path = format!("/n{:04}", acked.len());
        let (h, _) = raw.call(&create_request(&path, 0, &value)).await;
        if h.err != 0 {
            break h.err;
        }
        acked.push(path[1..].to_owned());
        assert!(acked.len() < 2000, "a write failed on the full disk");
    };
    assert_eq!(
        failed,
        ErrorCode::SystemError.code(),
        "{}",
        disk.log("first.log")
    );
    assert!(!acked.is_empty(), "writes went on until the space ran out");
    let (h, _) = raw.call(&create_request("/after", 0, b"x")).await;
    assert_eq!(
        h.err,
        ErrorCode::SystemError.code(),
        "the log stays stopped"
    );
    assert_eq!(
        children(&mut raw).await,
        acked,
        "reads go on, nothing unsynced"
    );
    assert!(server.try_wait().unwrap().is_none(), "the process stays up");
    assert!(
        disk.log("first.log").contains("No space left on device"),
        "the cause is logged: {}",
        disk.log("first.log")
    );
    drop(raw);
    stop(server);

    std::fs::remove_file(disk.path("filler")).unwrap();
    let mut server = disk.server(port, "second.log");
    let mut raw = session_when_up(addr, &mut server).await;
    assert_eq!(children(&mut raw).await, acked, "every acknowledged write");
    let (h, _) = raw.call(&create_request("/again", 0, b"x")).await;
    assert_eq!(
        h.err,
        0,
        "writes are taken again: {}",
        disk.log("second.log")
    );
    drop(raw);
    stop(server);
    assert!(Path::new(&disk.path("data")).exists());
}
