//! Connections to Paddock and Redis, group membership, and the change signal
//! every member loop waits on.

use crate::model::ROOTS;
use anyhow::Context;
use redis::aio::MultiplexedConnection;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use zookeeper_client::{Acls, Client, CreateMode, OneshotWatcher};

/// Where the coordination service and Redis are.
#[derive(clap::Args, Clone, Debug)]
pub struct Endpoints {
    /// Paddock (or ZooKeeper) servers: host:port[,host:port...].
    #[arg(long, short = 's', default_value = "127.0.0.1:2181")]
    pub server: String,
    /// Redis: host:port or a redis:// URL.
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub redis: String,
    /// Session timeout in ms: how long a dead member keeps its share.
    #[arg(long, default_value_t = 6000)]
    pub session_timeout_ms: u64,
}

/// Both connections of one member session.
pub struct Coord {
    pub zk: Client,
    pub redis: MultiplexedConnection,
}

impl Endpoints {
    pub async fn connect(&self) -> anyhow::Result<Coord> {
        let zk = Client::connector()
            .with_session_timeout(Duration::from_millis(self.session_timeout_ms))
            .connect(&self.server)
            .await
            .with_context(|| format!("cannot connect to {}", self.server))?;
        let url = if self.redis.contains("://") {
            self.redis.clone()
        } else {
            format!("redis://{}/", self.redis)
        };
        let redis = redis::Client::open(url.as_str())
            .with_context(|| format!("'{}' is not a Redis address", self.redis))?
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("cannot connect to Redis at {}", self.redis))?;
        for root in ROOTS {
            create_if_missing(&zk, root).await?;
        }
        Ok(Coord { zk, redis })
    }
}

async fn create_if_missing(zk: &Client, path: &str) -> anyhow::Result<()> {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match zk.create(path, b"", &options).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {path}")),
    }
}

/// Joins a group as an ephemeral sequential member; returns the member name.
pub async fn join(zk: &Client, group: &str, prefix: &str) -> anyhow::Result<String> {
    let options = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let (_, sequence) = zk
        .create(&format!("{group}/{prefix}-"), b"", &options)
        .await
        .with_context(|| format!("cannot join {group}"))?;
    Ok(format!("{prefix}-{sequence}"))
}

/// Runs one member session after another: a session that fails (expired,
/// Redis gone) is dropped, which releases its ephemeral nodes, and a new one
/// starts. Only a failure to connect the very first time is returned.
pub async fn run_member<F, Fut>(endpoints: &Endpoints, role: &str, session: F) -> anyhow::Result<()>
where
    F: Fn(Coord) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut first = true;
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let coord = tokio::select! {
            c = endpoints.connect() => c,
            () = &mut stop => return Ok(()),
        };
        let coord = match coord {
            Ok(coord) => coord,
            Err(e) if first => return Err(e),
            Err(e) => {
                tracing::warn!("{role}: {e:#}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        first = false;
        let mut state = coord.zk.state_watcher();
        tokio::select! {
            ended = session(coord) => if let Err(e) = ended {
                tracing::warn!("{role}: session ended: {e:#}; starting a new one");
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
            () = &mut stop => {
                // The session, and with it the last client handle, is
                // dropped: the client closes it on the server, so this
                // member's node goes now, not a session timeout later.
                let closed = async {
                    while !state.state().is_terminated() {
                        state.changed().await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
                tracing::info!("{role}: stopped; session closed");
                return Ok(());
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Fires once any of a set of one-shot watches fires (a node event, or a
/// session event such as expiry): the member's view is then out of date.
pub struct Changed {
    fired: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Changed {
    pub fn on(watchers: Vec<OneshotWatcher>) -> Changed {
        let (tx, fired) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut set = JoinSet::new();
            for w in watchers {
                set.spawn(w.changed());
            }
            if set.join_next().await.is_some() {
                let _ = tx.send(true);
            } else {
                // No watch at all: nothing can change.
                std::future::pending::<()>().await;
            }
        });
        Changed { fired, task }
    }

    pub fn fired(&self) -> bool {
        *self.fired.borrow()
    }

    /// Waits until a watch fires, or at most `max` (a safety net for events
    /// lost across a reconnect).
    pub async fn wait(&mut self, max: Duration) {
        let _ = tokio::time::timeout(max, self.fired.wait_for(|f| *f)).await;
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn job_path(job: &str) -> String {
    format!("{}/{job}", crate::model::JOBS)
}

/// The record of `/jobs/<job>` and its version, `None` if the job is gone.
/// A record that does not parse is an error naming the job.
pub async fn read_job(
    zk: &Client,
    job: &str,
) -> anyhow::Result<Option<(crate::model::JobRecord, i32)>> {
    match zk.get_data(&job_path(job)).await {
        Ok((data, stat)) => {
            let record = crate::model::JobRecord::decode(&data)
                .with_context(|| format!("/jobs/{job} does not hold a job record"))?;
            Ok(Some((record, stat.version)))
        }
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read /jobs/{job}")),
    }
}
