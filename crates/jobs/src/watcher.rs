//! A watcher: for its share of the jobs, notices when every task has a
//! result, and under `/watchlocks/<job>` writes the job's output file and
//! removes the job's znode and Redis keys.
//!
//! The commit point is the conditional setData that moves the record to
//! `finished`: only one watcher can win it, so a job is finished once. The
//! output file is written (atomically, and identically by any watcher) just
//! before it; the clean-up after it is idempotent and resumed by whichever
//! watcher next sees a `finished` record.

use crate::coord::{job_path, join, read_job, run_member, Changed, Coord, Endpoints};
use crate::model::{share, JobKeys, JobRecord, JobState, JOBS, WATCHERS, WATCHLOCKS};
use crate::queue;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zookeeper_client::{Acls, CreateMode};

#[derive(clap::Args, Clone, Debug)]
pub struct WatcherArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Where finished jobs' outputs are written, one `<job>.out` file each.
    #[arg(long, default_value = "paddock-jobs-output")]
    pub output_dir: PathBuf,
    /// Re-read the groups at least this often, in ms, even without a watch event.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

pub async fn run(args: WatcherArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
    run_member(&args.endpoints, "watcher", |coord| session(coord, &args)).await
}

async fn session(mut coord: Coord, args: &WatcherArgs) -> anyhow::Result<()> {
    let me = join(&coord.zk, WATCHERS, "watcher").await?;
    tracing::info!("watcher {me} joined");
    loop {
        let (members, members_watch) = coord.zk.list_and_watch_children(WATCHERS).await?;
        let (jobs, jobs_watch) = coord.zk.list_and_watch_children(JOBS).await?;
        let mut watches = vec![members_watch, jobs_watch];
        for job in share(&jobs, &members, &me) {
            match coord.zk.get_and_watch_data(&job_path(job)).await {
                Ok((_, _, watch)) => watches.push(watch),
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(e.into()),
            }
            try_finish(&mut coord, job, &me, &args.output_dir).await?;
        }
        Changed::on(watches)
            .wait(Duration::from_millis(args.poll_ms))
            .await;
    }
}

/// Finishes a job whose results are all in, if no other watcher is at it.
async fn try_finish(coord: &mut Coord, job: &str, me: &str, out: &Path) -> anyhow::Result<()> {
    let Some((record, _)) = read_job(&coord.zk, job).await? else {
        return Ok(());
    };
    if record.state != JobState::Finished {
        let keys = JobKeys::new(job, &record.id);
        if queue::result_count(&mut coord.redis, &keys).await? < record.tasks {
            return Ok(());
        }
    }
    let lock = format!("{WATCHLOCKS}/{job}");
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    match coord.zk.create(&lock, me.as_bytes(), &ephemeral).await {
        Ok(_) => {}
        Err(zookeeper_client::Error::NodeExists) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot take {lock}")),
    }
    let outcome = finish_locked(coord, job, out).await;
    match coord.zk.delete(&lock, None).await {
        Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot release {lock}")),
    }
    if let Some(tasks) = outcome? {
        tracing::info!("watcher {me}: job {job} finished ({tasks} results)");
        println!("finished {job} {tasks}");
    }
    Ok(())
}

/// With the lock held: re-reads the job (it may have moved on before the
/// lock was ours), commits it and cleans up. Returns the task count when
/// this call was the one that finished the job.
async fn finish_locked(coord: &mut Coord, job: &str, out: &Path) -> anyhow::Result<Option<u64>> {
    let Some((record, mut version)) = read_job(&coord.zk, job).await? else {
        return Ok(None);
    };
    let keys = JobKeys::new(job, &record.id);
    let mut finished_here = None;
    if record.state != JobState::Finished {
        let results = queue::results(&mut coord.redis, &keys).await?;
        let Some(lines) = output_lines(&results, record.tasks) else {
            return Ok(None);
        };
        write_atomically(&out.join(format!("{job}.out")), &lines)?;
        let done = JobRecord {
            state: JobState::Finished,
            ..record.clone()
        };
        match coord
            .zk
            .set_data(&job_path(job), &done.encode(), Some(version))
            .await
        {
            Ok(stat) => version = stat.version,
            Err(zookeeper_client::Error::BadVersion) | Err(zookeeper_client::Error::NoNode) => {
                return Ok(None)
            }
            Err(e) => return Err(e).with_context(|| format!("cannot finish job {job}")),
        }
        finished_here = Some(record.tasks);
    }
    queue::delete_job(&mut coord.redis, &keys).await?;
    match coord.zk.delete(&job_path(job), Some(version)).await {
        Ok(())
        | Err(zookeeper_client::Error::NoNode)
        | Err(zookeeper_client::Error::BadVersion) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot delete /jobs/{job}")),
    }
    Ok(finished_here)
}

/// The output: one line per task, `<index> <number> <prime|composite>`, in
/// task order. `None` unless every index below `tasks` has a result.
fn output_lines(results: &std::collections::HashMap<u64, String>, tasks: u64) -> Option<String> {
    let mut text = String::new();
    for index in 0..tasks {
        let result = results.get(&index)?;
        text.push_str(&format!("{index} {result}\n"));
    }
    Some(text)
}

/// Same content from any watcher, so a rewrite after a crash is harmless.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("out.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_needs_every_result_in_order() {
        let mut results = std::collections::HashMap::new();
        results.insert(1, "9 composite".to_string());
        assert_eq!(output_lines(&results, 2), None);
        results.insert(0, "7 prime".to_string());
        assert_eq!(
            output_lines(&results, 2).as_deref(),
            Some("0 7 prime\n1 9 composite\n")
        );
    }
}
