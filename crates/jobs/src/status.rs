//! `paddock jobs status`: jobs, their progress and the members; with
//! `--wait`, a progress bar until every job seen is finished.

use crate::coord::{read_job, Coord, Endpoints};
use crate::model::{JobKeys, JobState, EXECUTORS, JOBS, WATCHERS};
use crate::queue;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Show a progress bar until all jobs are finished.
    #[arg(long)]
    pub wait: bool,
}

/// One job's progress.
struct Progress {
    state: JobState,
    done: u64,
    tasks: u64,
}

async fn progress(coord: &mut Coord) -> anyhow::Result<BTreeMap<String, Progress>> {
    let mut jobs = BTreeMap::new();
    for job in coord.zk.list_children(JOBS).await? {
        let Some((record, _)) = read_job(&coord.zk, &job).await? else {
            continue;
        };
        let keys = JobKeys::new(&job, &record.id);
        let done = match record.state {
            JobState::Finished => record.tasks,
            _ => queue::result_count(&mut coord.redis, &keys).await?,
        };
        jobs.insert(
            job,
            Progress {
                state: record.state,
                done,
                tasks: record.tasks,
            },
        );
    }
    Ok(jobs)
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let mut coord = args.endpoints.connect().await?;
    let jobs = progress(&mut coord).await?;
    let mut executors = coord.zk.list_children(EXECUTORS).await?;
    let mut watchers = coord.zk.list_children(WATCHERS).await?;
    executors.sort();
    watchers.sort();
    println!("{:<24} {:<10} {:>15}", "JOB", "STATE", "RESULTS");
    for (name, p) in &jobs {
        let state = format!("{:?}", p.state).to_lowercase();
        let results = format!("{}/{}", p.done, p.tasks);
        println!("{name:<24} {state:<10} {results:>15}");
    }
    println!("executors ({}): {}", executors.len(), executors.join(" "));
    println!("watchers ({}): {}", watchers.len(), watchers.join(" "));
    if args.wait {
        wait_all(&mut coord, jobs).await?;
    }
    Ok(())
}

/// A job that disappears from /jobs has been finished and counts as done.
async fn wait_all(coord: &mut Coord, mut seen: BTreeMap<String, Progress>) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} results, {msg}",
        )?
        .progress_chars("=> "),
    );
    loop {
        let current = progress(coord).await?;
        for p in seen.values_mut() {
            p.done = p.tasks;
        }
        let open = current.len();
        seen.extend(current);
        bar.set_length(seen.values().map(|p| p.tasks).sum());
        bar.set_position(seen.values().map(|p| p.done).sum());
        bar.set_message(format!("{open} jobs open"));
        if open == 0 {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
