//! The submitter: queues a job's tasks in Redis, then publishes the job.

use crate::coord::{job_path, Endpoints};
use crate::model::{check_job_name, JobKeys, JobRecord, JobState, Task};
use crate::queue;
use anyhow::Context;
use zookeeper_client::{Acls, CreateMode};

#[derive(clap::Args, Clone, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// The job's name (letters, digits, '-', '_', '.').
    #[arg(value_parser = |s: &str| check_job_name(s).map(|_| s.to_string()))]
    pub job: String,
    /// The numbers to test, comma-separated; otherwise --count random ones.
    #[arg(long, value_delimiter = ',', conflicts_with = "count")]
    pub numbers: Vec<u64>,
    /// How many random numbers to test.
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// Random numbers are below this.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub max: u64,
    /// Seed of the random numbers (the same seed gives the same job).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    let numbers = if args.numbers.is_empty() {
        anyhow::ensure!(args.max >= 2, "--max must be at least 2");
        random_numbers(args.seed, args.count, args.max)
    } else {
        args.numbers.clone()
    };
    let mut coord = args.endpoints.connect().await?;
    let path = job_path(&args.job);
    anyhow::ensure!(
        coord.zk.check_stat(&path).await?.is_none(),
        "job {} already exists",
        args.job
    );
    let record = JobRecord {
        id: submission_id(),
        tasks: numbers.len() as u64,
        state: JobState::Pending,
    };
    let keys = JobKeys::new(&args.job, &record.id);
    let tasks: Vec<String> = numbers
        .iter()
        .enumerate()
        .map(|(index, &number)| {
            Task {
                index: index as u64,
                number,
            }
            .encode()
        })
        .collect();
    queue::push_tasks(&mut coord.redis, &keys, &tasks)
        .await
        .context("cannot queue the tasks in Redis")?;
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    if let Err(e) = coord.zk.create(&path, &record.encode(), &persistent).await {
        queue::delete_job(&mut coord.redis, &keys).await?;
        return Err(e).with_context(|| format!("cannot create {path}"));
    }
    println!("submitted job {} with {} tasks", args.job, record.tasks);
    Ok(())
}

/// Unique per submission: time and process id.
fn submission_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{:x}", std::process::id())
}

/// splitmix64: a small, seedable generator; numbers in [2, max).
fn random_numbers(seed: u64, count: u64, max: u64) -> Vec<u64> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            2 + z % (max - 2).max(1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_numbers_are_seeded_and_in_range() {
        let a = random_numbers(7, 1000, 100);
        assert_eq!(a, random_numbers(7, 1000, 100));
        assert_ne!(a, random_numbers(8, 1000, 100));
        assert!(a.iter().all(|n| (2..100).contains(n)));
        assert_eq!(random_numbers(1, 3, 2), vec![2, 2, 2]);
    }
}
