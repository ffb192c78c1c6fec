//! Distributed job coordination on Paddock.
//!
//! Jobs are batches of small tasks kept in Redis lists; Paddock decides who
//! does what. Submitters queue tasks and publish `/jobs/<job>`; executors
//! (members of `/executors`) run the tasks of their fair share of the jobs;
//! watchers (members of `/watchers`) collect the results of finished jobs
//! and clean up. See `docs/jobs.md` for the protocol and its guarantees.

mod coord;
mod executor;
pub mod model;
mod queue;
mod status;
mod submit;
mod watcher;

pub use coord::Endpoints;
pub use executor::ExecutorArgs;
pub use status::StatusArgs;
pub use submit::SubmitArgs;
pub use watcher::WatcherArgs;

/// `paddock jobs <command>`.
#[derive(clap::Subcommand, Debug)]
pub enum JobsCommand {
    /// Queue a job's tasks in Redis and publish it under /jobs.
    Submit(SubmitArgs),
    /// Run tasks of this member's share of the jobs, until killed.
    Executor(ExecutorArgs),
    /// Collect the results of finished jobs and clean up, until killed.
    Watcher(WatcherArgs),
    /// Show jobs, their progress and the members.
    Status(StatusArgs),
}

pub async fn run(command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::Submit(args) => submit::run(args).await,
        JobsCommand::Executor(args) => executor::run(args).await,
        JobsCommand::Watcher(args) => watcher::run(args).await,
        JobsCommand::Status(args) => status::run(args).await,
    }
}
