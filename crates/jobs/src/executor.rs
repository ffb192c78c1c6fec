//! An executor: takes the tasks of its share of the jobs, runs them and
//! stores the results; requeues the in-flight tasks of executors that died.

use crate::coord::{job_path, join, read_job, run_member, Changed, Coord, Endpoints};
use crate::model::{share, JobKeys, JobRecord, JobState, Task, EXECUTORS, JOBS};
use crate::queue;
use anyhow::Context;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
pub struct ExecutorArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Extra time each task takes, in ms (to watch the system at work).
    #[arg(long, default_value_t = 0)]
    pub task_delay_ms: u64,
    /// Re-read the groups at least this often, in ms, even without a watch event.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

pub async fn run(args: ExecutorArgs) -> anyhow::Result<()> {
    run_member(&args.endpoints, "executor", |coord| session(coord, &args)).await
}

async fn session(mut coord: Coord, args: &ExecutorArgs) -> anyhow::Result<()> {
    let me = join(&coord.zk, EXECUTORS, "executor").await?;
    tracing::info!("executor {me} joined");
    loop {
        let (members, members_watch) = coord.zk.list_and_watch_children(EXECUTORS).await?;
        let (jobs, jobs_watch) = coord.zk.list_and_watch_children(JOBS).await?;
        let mut changed = Changed::on(vec![members_watch, jobs_watch]);
        requeue_orphans(&mut coord, &jobs, &members).await?;
        let mut busy = false;
        for job in share(&jobs, &members, &me) {
            if changed.fired() {
                break;
            }
            busy |= work_on(&mut coord, job, &me, &changed, args).await?;
        }
        if !busy {
            changed.wait(Duration::from_millis(args.poll_ms)).await;
        }
    }
}

/// Drains one job's task list until it is empty or the view changes.
/// Returns whether any task ran.
async fn work_on(
    coord: &mut Coord,
    job: &str,
    me: &str,
    changed: &Changed,
    args: &ExecutorArgs,
) -> anyhow::Result<bool> {
    let Some((record, version)) = read_job(&coord.zk, job).await? else {
        return Ok(false);
    };
    if record.state == JobState::Finished {
        return Ok(false);
    }
    let keys = JobKeys::new(job, &record.id);
    let mut ran = 0u64;
    let drained = loop {
        if changed.fired() {
            break false;
        }
        let Some(raw) = queue::take(&mut coord.redis, &keys, me).await? else {
            break true;
        };
        let Some(task) = Task::decode(&raw) else {
            tracing::warn!("job {job}: dropping malformed task {raw:?}");
            queue::discard(&mut coord.redis, &keys, me, &raw).await?;
            continue;
        };
        let result = task.run();
        if args.task_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.task_delay_ms)).await;
        }
        queue::complete(&mut coord.redis, &keys, me, &raw, task.index, &result).await?;
        ran += 1;
    };
    if drained && (ran > 0 || record.state == JobState::Pending) {
        mark_processed(coord, job, record, version).await?;
        tracing::info!("executor {me}: job {job} drained ({ran} tasks run here)");
    }
    Ok(ran > 0)
}

/// Tells the watchers the task list is drained. Setting the record again
/// after requeued tasks ran is what wakes them a second time.
async fn mark_processed(
    coord: &Coord,
    job: &str,
    record: JobRecord,
    version: i32,
) -> anyhow::Result<()> {
    let record = JobRecord {
        state: JobState::Processed,
        ..record
    };
    match coord
        .zk
        .set_data(&job_path(job), &record.encode(), Some(version))
        .await
    {
        // Someone else moved the job on meanwhile: their update woke the watchers.
        Ok(_) | Err(zookeeper_client::Error::BadVersion) | Err(zookeeper_client::Error::NoNode) => {
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot mark job {job} processed")),
    }
}

/// Puts the tasks held by executors that are no longer members back on
/// their task lists. Membership is read again after the scan so that a
/// member that joined meanwhile is never mistaken for a dead one.
async fn requeue_orphans(
    coord: &mut Coord,
    jobs: &[String],
    members: &[String],
) -> anyhow::Result<()> {
    let mut suspects = Vec::new();
    for job in jobs {
        let Some((record, _)) = read_job(&coord.zk, job).await? else {
            continue;
        };
        let keys = JobKeys::new(job, &record.id);
        for (owner, key) in queue::processing_lists(&mut coord.redis, &keys).await? {
            if !members.contains(&owner) {
                suspects.push((job, keys.clone(), owner, key));
            }
        }
    }
    if suspects.is_empty() {
        return Ok(());
    }
    let members = coord.zk.list_children(EXECUTORS).await?;
    for (job, keys, owner, key) in suspects {
        if members.contains(&owner) {
            continue;
        }
        let moved = queue::requeue(&mut coord.redis, &keys, &key).await?;
        if moved > 0 {
            tracing::info!("job {job}: requeued {moved} tasks of departed executor {owner}");
        }
    }
    Ok(())
}
