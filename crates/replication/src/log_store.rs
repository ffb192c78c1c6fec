//! openraft's log storage over our write-ahead log. Appends are handed to
//! one writer thread, which puts everything waiting into one frame and one
//! fdatasync (group commit) and only then tells openraft they are durable.
//! Entries stay readable from memory until the state machine has applied
//! them; older ones are read back from the segments.

use crate::codec::{self, RaftState};
use crate::files::{self, Dirs};
use crate::types::{Entry, LogId, TypeConfig, Vote};
use crate::Applier;
use bytes::BytesMut;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::RaftLogReader;
use paddock_storage::{read_log_from, Disk, Wal};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Bytes of log records the writer puts into one frame at most.
const MAX_FRAME_BYTES: usize = 8 << 20;
/// A frame whose write and fdatasync take longer than this is logged: every
/// write waiting behind it waited as long (the disk, not the server).
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(100);
/// Applied entries kept in memory for followers that are slightly behind.
const KEEP_APPLIED: u64 = 1024;

enum Job {
    Append(Vec<(i64, BytesMut)>, IOFlushed<TypeConfig>),
    TruncateFrom(u64),
    /// An installed snapshot replaced the whole log: drop every segment.
    Clear,
}

struct Mem {
    entries: BTreeMap<u64, Entry>,
    last: Option<LogId>,
    state: RaftState,
}

struct Inner {
    mem: Mutex<Mem>,
    disk: Arc<dyn Disk>,
    dirs: Dirs,
    jobs: std::sync::mpsc::Sender<Job>,
}

/// Held while purged segments are removed, so that two purges do not
/// free the same files at once.
static FREEING: Mutex<()> = Mutex::new(());

/// The log store; clones share it (the reader openraft asks for is one).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

/// The index up to which the log is durable, for snapshots to wait on.
pub type Flushed = watch::Receiver<Option<u64>>;

impl LogStore {
    /// Opens the store over `wal` with the entries and state found on disk.
    pub fn open(
        disk: Arc<dyn Disk>,
        dirs: Dirs,
        wal: Wal,
        entries: BTreeMap<u64, Entry>,
        state: RaftState,
        applier: Arc<dyn Applier>,
    ) -> std::io::Result<(LogStore, Flushed)> {
        // Entries a snapshot covers are purged, even if a crash left them
        // on disk while the log was being cleared.
        let mut entries = entries;
        if let Some(purged) = state.last_purged {
            entries = entries.split_off(&(purged.index + 1));
        }
        let last = entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(state.last_purged);
        let (flushed_tx, flushed) = watch::channel(last.map(|l| l.index));
        let (jobs, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("paddock-wal".into())
            .spawn(move || write_loop(wal, rx, flushed_tx, applier))
            .map_err(|e| std::io::Error::other(format!("cannot start the log writer: {e}")))?;
        let inner = Inner {
            mem: Mutex::new(Mem {
                entries,
                last,
                state,
            }),
            disk,
            dirs,
            jobs,
        };
        Ok((
            LogStore {
                inner: Arc::new(inner),
            },
            flushed,
        ))
    }

    /// Lets applied entries go from memory, keeping a window for followers.
    pub fn applied(&self, index: u64) {
        let mut mem = self.inner.mem.lock();
        let keep_from = index.saturating_sub(KEEP_APPLIED);
        let kept = mem.entries.split_off(&keep_from);
        mem.entries = kept;
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.inner
            .jobs
            .send(job)
            .map_err(|_| io::Error::other("the log writer has stopped"))
    }

    fn save_state(&self, change: impl FnOnce(&mut RaftState)) -> io::Result<()> {
        let mut mem = self.inner.mem.lock();
        let mut state = mem.state.clone();
        change(&mut state);
        files::write_state(&*self.inner.disk, &self.inner.dirs, &state)?;
        mem.state = state;
        Ok(())
    }
}

/// The writer thread: drains every waiting job into one frame, syncs it,
/// then reports. After a failure every later append fails too.
fn write_loop(
    mut wal: Wal,
    jobs: std::sync::mpsc::Receiver<Job>,
    flushed: watch::Sender<Option<u64>>,
    applier: Arc<dyn Applier>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut bytes = 0;
        while bytes < MAX_FRAME_BYTES {
            match jobs.try_recv() {
                Ok(job) => {
                    if let Job::Append(records, _) = &job {
                        bytes += records.iter().map(|(_, b)| b.len()).sum::<usize>();
                    }
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut records: Vec<(i64, &[u8])> = Vec::new();
        let marker = {
            let mut m = BytesMut::new();
            codec::encode_truncate(&mut m);
            m
        };
        let mut result = Ok(());
        for job in &batch {
            match job {
                Job::Append(recs, _) => records.extend(recs.iter().map(|(i, b)| (*i, b.as_ref()))),
                Job::TruncateFrom(i) => records.push((*i as i64, marker.as_ref())),
                Job::Clear => {
                    // What came before is covered by the snapshot.
                    records.clear();
                    result = wal.clear();
                }
            }
        }
        let last = records.last().map(|(i, _)| *i as u64);
        let started = std::time::Instant::now();
        let result = result.and_then(|_| wal.append(&records));
        let took = started.elapsed();
        if result.is_ok() {
            applier.log_written(took);
        }
        if took > SLOW_WRITE {
            warn!(
                ms = took.as_millis() as u64,
                records = records.len(),
                "a slow log write (write and fdatasync)"
            );
        }
        if let Err(e) = &result {
            error!("writing the log failed ({e}); no more writes are accepted until restart");
        }
        for job in batch {
            if let Job::Append(_, done) = job {
                done.io_completed(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| io::Error::other(e.to_string())),
                );
            }
        }
        if let (Ok(()), Some(last)) = (&result, last) {
            flushed.send_replace(Some(last));
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        {
            let mem = self.inner.mem.lock();
            let from = match range.start_bound() {
                Bound::Included(i) => *i,
                Bound::Excluded(i) => i + 1,
                Bound::Unbounded => 0,
            };
            if mem
                .entries
                .keys()
                .next()
                .is_some_and(|first| *first <= from)
            {
                return Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect());
            }
        }
        // Older than memory holds: read the segments (rare: a follower far
        // behind, still within the log).
        let inner = self.inner.clone();
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        tokio::task::spawn_blocking(move || {
            let from = match bounds.0 {
                Bound::Included(i) => i,
                Bound::Excluded(i) => i + 1,
                Bound::Unbounded => 0,
            };
            let log = read_log_from(&*inner.disk, &inner.dirs.log, from as i64)
                .map_err(io::Error::other)?;
            let entries = files::standing_entries(log.records, from).map_err(io::Error::other)?;
            Ok(entries.range(bounds).map(|(_, e)| e.clone()).collect())
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.mem.lock().state.vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let mem = self.inner.mem.lock();
        Ok(LogState {
            last_purged_log_id: mem.state.last_purged,
            last_log_id: mem.last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        self.save_state(|s| s.vote = Some(vote))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        {
            let mut mem = self.inner.mem.lock();
            for entry in entries {
                let mut body = BytesMut::new();
                codec::encode_entry(&entry, &mut body);
                records.push((entry.log_id.index as i64, body));
                mem.last = Some(entry.log_id);
                mem.entries.insert(entry.log_id.index, entry);
            }
        }
        self.send(Job::Append(records, callback))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        {
            let mut mem = self.inner.mem.lock();
            mem.entries.split_off(&from);
            mem.last = last_log_id.or(mem.state.last_purged);
        }
        self.send(Job::TruncateFrom(from))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.save_state(|s| s.last_purged = Some(log_id))?;
        info!(upto = log_id.index, "log purged (a snapshot covers it)");
        let beyond_log = {
            let mut mem = self.inner.mem.lock();
            let kept = mem.entries.split_off(&(log_id.index + 1));
            mem.entries = kept;
            let beyond = mem.last.is_none_or(|l| l.index < log_id.index);
            if beyond {
                mem.last = Some(log_id);
            }
            beyond
        };
        if beyond_log {
            // A snapshot from the leader reaches past our log: the next
            // entry follows the snapshot, so the old log must go first.
            return self.send(Job::Clear);
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            files::purge_log(&*inner.disk, &inner.dirs, log_id.index)
        })
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
        // Freeing the space takes seconds, and consensus waits for purge.
        let (disk, dir) = (self.inner.disk.clone(), self.inner.dirs.log.clone());
        std::thread::spawn(move || {
            let _one_at_a_time = FREEING.lock();
            if let Err(e) = files::free_retired(&*disk, &dir) {
                warn!("removing purged log segments: {e}");
            }
        });
        Ok(())
    }
}
