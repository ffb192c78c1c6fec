//! Does taking a snapshot pause the server? Loads N znodes (default 1M)
//! into an in-process server, then measures the latency of one client's
//! back-to-back setData calls, first with no snapshot running and then
//! while a snapshot of the whole tree is encoded and written in the
//! background.
//!
//!     cargo run --release -p paddock --example snapshot_pause [-- N]

use futures::stream::{FuturesUnordered, StreamExt};
use paddock_server::{Server, ServerConfig};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acls, Client, CreateMode};

fn snapshots(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("snap"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
                .count()
        })
        .unwrap_or(0)
}

/// p50, p99, p99.9 and max of latencies, in µs.
fn summary(mut lat: Vec<Duration>) -> String {
    lat.sort();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_micros();
    format!(
        "{} ops: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        lat.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        lat.last().map_or(0, |d| d.as_micros())
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let config = ServerConfig {
        client_addr: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_owned(),
        // Session, /n, n creates and 10k quiet probes come first: the first
        // snapshot starts with the third probe after them.
        snap_count: n + 10_005,
        ..ServerConfig::default()
    };
    let server = Server::bind(config).await?;
    let addr = server.local_addr()?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    let client = Client::connect(&addr.to_string()).await?;
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/n", b"", &persistent).await?;

    let started = Instant::now();
    let data = [7u8; 100];
    let mut pending = FuturesUnordered::new();
    for i in 0..n {
        let path = format!("/n/{i:08}");
        let client = &client;
        let persistent = &persistent;
        pending.push(async move { client.create(&path, &data, persistent).await.map(|_| ()) });
        if pending.len() >= 2000 {
            if let Some(r) = pending.next().await {
                r?;
            }
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    println!(
        "loaded {n} znodes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut quiet = Vec::new();
    for _ in 0..10_000 {
        let t = Instant::now();
        client.set_data("/n/00000000", b"probe", None).await?;
        quiet.push(t.elapsed());
    }
    println!("no snapshot running:     {}", summary(quiet));

    let mut during = Vec::new();
    let compaction = Instant::now();
    while snapshots(dir.path()) == 0 {
        let t = Instant::now();
        client.set_data("/n/00000000", b"probe", None).await?;
        during.push(t.elapsed());
        anyhow::ensure!(
            compaction.elapsed() < Duration::from_secs(600),
            "no snapshot appeared"
        );
    }
    println!(
        "while a snapshot of {n} znodes was made ({:.1} s): {}",
        compaction.elapsed().as_secs_f64(),
        summary(during)
    );
    shutdown.cancel();
    task.await??;
    Ok(())
}
