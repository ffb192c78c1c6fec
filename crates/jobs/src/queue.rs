//! The Redis side of a job: the task list, per-member processing lists and
//! the results hash. Every step is either atomic or safe to repeat, so a
//! process killed between two steps loses nothing and duplicates nothing.

use crate::model::JobKeys;
use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use std::collections::HashMap;

/// Moves the next task to `member`'s processing list (atomic), or `None`
/// once the task list is empty.
pub async fn take(
    con: &mut MultiplexedConnection,
    keys: &JobKeys,
    member: &str,
) -> RedisResult<Option<String>> {
    redis::cmd("LMOVE")
        .arg(keys.tasks())
        .arg(keys.processing(member))
        .arg("LEFT")
        .arg("RIGHT")
        .query_async(con)
        .await
}

/// Records a result and drops the task from the processing list, in one
/// MULTI. A result is keyed by task index, so running a task twice (after a
/// requeue) stores it once.
pub async fn complete(
    con: &mut MultiplexedConnection,
    keys: &JobKeys,
    member: &str,
    raw: &str,
    index: u64,
    result: &str,
) -> RedisResult<()> {
    redis::pipe()
        .atomic()
        .hset(keys.results(), index, result)
        .ignore()
        .lrem(keys.processing(member), 1, raw)
        .ignore()
        .query_async(con)
        .await
}

/// Drops a task that cannot be parsed (only written by hand into Redis).
pub async fn discard(
    con: &mut MultiplexedConnection,
    keys: &JobKeys,
    member: &str,
    raw: &str,
) -> RedisResult<()> {
    redis::cmd("LREM")
        .arg(keys.processing(member))
        .arg(1)
        .arg(raw)
        .query_async(con)
        .await
}

/// The processing lists of a job, with their owners.
pub async fn processing_lists(
    con: &mut MultiplexedConnection,
    keys: &JobKeys,
) -> RedisResult<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(keys.processing_pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await?;
        for key in batch {
            if let Some(owner) = keys.processing_owner(&key) {
                found.push((owner.to_string(), key.clone()));
            }
        }
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// Moves every task of a dead member's processing list back to the front
/// of the task list, one atomic LMOVE at a time. Returns how many moved.
pub async fn requeue(
    con: &mut MultiplexedConnection,
    keys: &JobKeys,
    processing: &str,
) -> RedisResult<u64> {
    let mut moved = 0;
    loop {
        let task: Option<String> = redis::cmd("LMOVE")
            .arg(processing)
            .arg(keys.tasks())
            .arg("RIGHT")
            .arg("LEFT")
            .query_async(con)
            .await?;
        if task.is_none() {
            return Ok(moved);
        }
        moved += 1;
    }
}

pub async fn result_count(con: &mut MultiplexedConnection, keys: &JobKeys) -> RedisResult<u64> {
    redis::cmd("HLEN")
        .arg(keys.results())
        .query_async(con)
        .await
}

pub async fn results(
    con: &mut MultiplexedConnection,
    keys: &JobKeys,
) -> RedisResult<HashMap<u64, String>> {
    redis::cmd("HGETALL")
        .arg(keys.results())
        .query_async(con)
        .await
}

/// Pushes a new job's tasks (after clearing any leftovers of the same keys)
/// in one MULTI, so a job is either fully queued or not at all.
pub async fn push_tasks(
    con: &mut MultiplexedConnection,
    keys: &JobKeys,
    tasks: &[String],
) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .del(keys.tasks())
        .ignore()
        .del(keys.results())
        .ignore();
    for chunk in tasks.chunks(1000) {
        pipe.rpush(keys.tasks(), chunk).ignore();
    }
    pipe.query_async(con).await
}

/// Deletes every key of a job.
pub async fn delete_job(con: &mut MultiplexedConnection, keys: &JobKeys) -> RedisResult<()> {
    let mut doomed = vec![keys.tasks(), keys.results()];
    doomed.extend(
        processing_lists(con, keys)
            .await?
            .into_iter()
            .map(|(_, k)| k),
    );
    redis::cmd("DEL").arg(doomed).query_async(con).await
}
