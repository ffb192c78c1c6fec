//! Workloads shaped like the coordination recipes people build: a watch
//! fanned out to many sessions, and a lock many sessions contend for.

use crate::conn::Conn;
use crate::run::{create, Op, Plan, Tally, ROOT};
use crate::spec::Kind;
use anyhow::Context;
use paddock_proto::{
    AddWatchRequest, DeleteRequest, ErrorCode, PathWatchRequest, Request, Response, SetDataRequest,
};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The znode every fan-out watcher watches.
pub fn fanout_path() -> String {
    format!("{ROOT}/w")
}

/// The directory lock contenders queue under.
pub fn lock_dir() -> String {
    format!("{ROOT}/l")
}

const NODE_DATA_CHANGED: i32 = 3;
const PERSISTENT: i32 = 0;
const EPHEMERAL_SEQUENTIAL: i32 = 3;
/// How long past the end watchers wait for the last notifications, and
/// contenders for the lock.
const GRACE: Duration = Duration::from_secs(30);

/// What the fan-out writer and its watchers share.
#[derive(Default)]
pub struct Fanout {
    /// Watchers whose persistent watch is in place.
    ready: AtomicUsize,
    /// When each setData was sent, in order: a watcher's k-th
    /// notification is for the k-th one.
    sent: Mutex<Vec<Instant>>,
    /// The writer has stopped and `sent` is final; `finished` wakes the
    /// watchers then.
    done: AtomicBool,
    finished: tokio::sync::Notify,
    /// In a watch round: watchers that have heard of the latest change,
    /// the time from its send to the last of them, in µs, and a wake-up
    /// for the writer once all have.
    heard: AtomicUsize,
    last_heard_us: AtomicU64,
    all_heard: tokio::sync::Notify,
}

/// One watcher: a persistent watch on the fan-out znode. In a fan-out
/// every notification is an op, timed from the send of the setData behind
/// it; in a watch round the last watcher to hear of a change tells the
/// writer how long that took.
pub async fn watcher(plan: &Plan, fanout: &Fanout) -> anyhow::Result<Tally> {
    let mut conn = plan.session().await?;
    let (h, _) = conn
        .call(&Request::AddWatch(AddWatchRequest {
            path: fanout_path(),
            mode: PERSISTENT,
        }))
        .await?;
    anyhow::ensure!(h.err == 0, "addWatch failed with error {}", h.err);
    fanout.ready.fetch_add(1, Ordering::SeqCst);
    let mut tally = Tally::default();
    let mut seen = 0usize;
    // Set up once, not per notification: a timer per wait costs the
    // client more than reading the notification.
    let give_up = tokio::time::sleep_until((plan.deadline + GRACE).into());
    let finished = fanout.finished.notified();
    tokio::pin!(give_up, finished);
    finished.as_mut().enable();
    let mut woken_by_finish = false;
    loop {
        if fanout.done.load(Ordering::SeqCst) && seen >= fanout.sent.lock().len() {
            return Ok(tally);
        }
        let (h, mut body) = tokio::select! {
            frame = conn.next() => frame?,
            _ = &mut finished, if !woken_by_finish => {
                woken_by_finish = true;
                // The run may have been stopped early: wait no longer
                // than a grace after its real end.
                give_up.as_mut().reset((plan.end() + GRACE).into());
                continue;
            }
            _ = &mut give_up => anyhow::bail!(
                "a watcher saw {seen} of {} notifications",
                fanout.sent.lock().len()
            ),
        };
        if h.xid != -1 {
            continue;
        }
        let event: paddock_proto::WatcherEvent = paddock_proto::Jute::read(&mut body)
            .map_err(|e| anyhow::anyhow!("a bad notification: {e}"))?;
        if event.event_type != NODE_DATA_CHANGED {
            continue;
        }
        let at = fanout.sent.lock().get(seen).copied();
        let at = at.context("a notification for a change nobody made")?;
        seen += 1;
        let us = at.elapsed().as_micros() as u64;
        if plan.spec.kind == Kind::WatchRound {
            if fanout.heard.fetch_add(1, Ordering::SeqCst) + 1 == plan.spec.connections {
                fanout.last_heard_us.store(us, Ordering::SeqCst);
                fanout.all_heard.notify_one();
            }
        } else {
            tally.record(Op::Notify, us, 0, at >= plan.measure_from, &plan.live);
        }
    }
}

/// The fan-out writer: once every watcher is ready, changes the watched
/// znode until the end, as a fan-out (`inflight` setData outstanding) or
/// in watch rounds; then lets the watchers know.
pub async fn writer(plan: &Plan, fanout: &Fanout) -> anyhow::Result<Tally> {
    let result = match plan.spec.kind {
        Kind::WatchRound => write_rounds(plan, fanout).await,
        _ => write_changes(plan, fanout).await,
    };
    fanout.done.store(true, Ordering::SeqCst);
    fanout.finished.notify_waiters();
    result
}

/// The writer's session, opened once every watcher is ready.
async fn writer_session(plan: &Plan, fanout: &Fanout) -> anyhow::Result<Conn> {
    let conn = plan.session().await?;
    while fanout.ready.load(Ordering::SeqCst) < plan.spec.connections {
        anyhow::ensure!(Instant::now() < plan.end(), "the watchers never got ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(conn)
}

fn set_watched(plan: &Plan) -> Request {
    Request::SetData(SetDataRequest {
        path: fanout_path(),
        data: Some(plan.payload.clone()),
        version: -1,
    })
}

/// A fan-out's changes: `inflight` setData outstanding, each timed to its
/// reply (the watchers time the notifications).
async fn write_changes(plan: &Plan, fanout: &Fanout) -> anyhow::Result<Tally> {
    let mut conn = writer_session(plan, fanout).await?;
    let mut tally = Tally::default();
    let mut waiting: VecDeque<Instant> = VecDeque::new();
    loop {
        while waiting.len() < plan.spec.inflight && Instant::now() < plan.end() {
            let at = Instant::now();
            // Recorded before it can be sent, so no notification can come
            // before its time is known.
            fanout.sent.lock().push(at);
            conn.queue(&set_watched(plan));
            waiting.push_back(at);
        }
        if waiting.is_empty() {
            return Ok(tally);
        }
        conn.flush().await?;
        let h = conn.reply().await?;
        let at = waiting.pop_front().context("a reply nobody asked for")?;
        anyhow::ensure!(h.err == 0, "setData failed with error {}", h.err);
        let us = at.elapsed().as_micros() as u64;
        tally.record(Op::Set, us, h.err, at >= plan.measure_from, &plan.live);
    }
}

/// The watch-round writer: one setData at a time, each waited for until
/// every watcher has heard of it; an op is one round, from the send to
/// the last watcher's notification.
async fn write_rounds(plan: &Plan, fanout: &Fanout) -> anyhow::Result<Tally> {
    let mut conn = writer_session(plan, fanout).await?;
    let mut tally = Tally::default();
    while Instant::now() < plan.end() {
        // Every watcher counted the previous change before it was woken,
        // so the count starts again from nobody.
        fanout.heard.store(0, Ordering::SeqCst);
        let at = Instant::now();
        fanout.sent.lock().push(at);
        let (h, _) = conn.call(&set_watched(plan)).await?;
        anyhow::ensure!(h.err == 0, "setData failed with error {}", h.err);
        tokio::time::timeout(GRACE, fanout.all_heard.notified())
            .await
            .context("not every watcher heard of a change")?;
        let us = fanout.last_heard_us.load(Ordering::SeqCst);
        tally.record(Op::Round, us, 0, at >= plan.measure_from, &plan.live);
    }
    Ok(tally)
}

/// One lock contender, as the lock recipe does it: queue an ephemeral
/// sequential znode, wait (watching only the one just ahead) until it is
/// the lowest, release it. One op is one acquire and release.
pub async fn contender(plan: &Plan) -> anyhow::Result<Tally> {
    let mut conn = plan.session().await?;
    let mut tally = Tally::default();
    while Instant::now() < plan.end() {
        let at = Instant::now();
        let mine = match conn
            .call(&create(
                format!("{}/lock-", lock_dir()),
                plan.payload.clone(),
                EPHEMERAL_SEQUENTIAL,
            ))
            .await?
        {
            (_, Some(Response::Create { path })) => path,
            (h, _) => anyhow::bail!("queueing for the lock failed with error {}", h.err),
        };
        acquire(&mut conn, &mine, plan.end() + GRACE).await?;
        let (h, _) = conn
            .call(&Request::Delete(DeleteRequest {
                path: mine,
                version: -1,
            }))
            .await?;
        let us = at.elapsed().as_micros() as u64;
        tally.record(Op::Lock, us, h.err, at >= plan.measure_from, &plan.live);
    }
    Ok(tally)
}

/// Waits until `mine` is the lowest znode in the lock directory.
async fn acquire(conn: &mut Conn, mine: &str, give_up: Instant) -> anyhow::Result<()> {
    let name = mine.rsplit('/').next().unwrap_or(mine);
    loop {
        let children = match conn
            .call(&Request::GetChildren(PathWatchRequest {
                path: lock_dir(),
                watch: false,
            }))
            .await?
        {
            (_, Some(Response::GetChildren { mut children })) => {
                children.sort();
                children
            }
            (h, _) => anyhow::bail!("listing the lock queue failed with error {}", h.err),
        };
        let ahead = match children.iter().position(|c| c == name) {
            Some(0) => return Ok(()),
            Some(i) => &children[i - 1],
            None => anyhow::bail!("{mine} vanished from the lock queue"),
        };
        let (h, _) = conn
            .call(&Request::Exists(PathWatchRequest {
                path: format!("{}/{ahead}", lock_dir()),
                watch: true,
            }))
            .await?;
        if h.err == ErrorCode::NoNode.code() {
            continue;
        }
        anyhow::ensure!(
            h.err == 0,
            "watching the lock queue failed with error {}",
            h.err
        );
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            let (h, _) = tokio::time::timeout(left, conn.next())
                .await
                .context("waited too long for the lock")??;
            if h.xid == -1 {
                break;
            }
        }
    }
}
