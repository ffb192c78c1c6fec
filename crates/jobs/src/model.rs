//! The shared vocabulary of the job system, with no I/O: znode paths, Redis
//! key names, the job record stored in `/jobs/<job>`, the fair-share rule and
//! the demo task.

use serde::{Deserialize, Serialize};

/// One znode per job, named after it; its data is a [`JobRecord`].
pub const JOBS: &str = "/jobs";
/// Ephemeral sequential member nodes of the executors.
pub const EXECUTORS: &str = "/executors";
/// Ephemeral sequential member nodes of the watchers.
pub const WATCHERS: &str = "/watchers";
/// `/watchlocks/<job>`: an ephemeral node held by the watcher finishing a job.
pub const WATCHLOCKS: &str = "/watchlocks";

/// The groups every command makes sure exist before it starts.
pub const ROOTS: [&str; 4] = [JOBS, EXECUTORS, WATCHERS, WATCHLOCKS];

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Tasks are waiting or running.
    Pending,
    /// An executor found the task list drained; the watcher checks the results.
    Processed,
    /// A watcher wrote the output; only the clean-up of keys and znodes remains.
    Finished,
}

/// The data of `/jobs/<job>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Unique per submission, so that keys of a finished job can never be
    /// confused with those of a later job reusing its name.
    pub id: String,
    pub tasks: u64,
    pub state: JobState,
}

impl JobRecord {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(data: &[u8]) -> Option<JobRecord> {
        serde_json::from_slice(data).ok()
    }
}

/// The Redis keys of one submission of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKeys {
    prefix: String,
}

impl JobKeys {
    pub fn new(job: &str, id: &str) -> JobKeys {
        JobKeys {
            prefix: format!("paddock:job:{job}:{id}"),
        }
    }

    /// Tasks not yet taken, as `<index>:<number>` strings.
    pub fn tasks(&self) -> String {
        format!("{}:tasks", self.prefix)
    }

    /// Results by task index.
    pub fn results(&self) -> String {
        format!("{}:results", self.prefix)
    }

    /// Tasks taken by one executor member and not yet done.
    pub fn processing(&self, member: &str) -> String {
        format!("{}:processing:{member}", self.prefix)
    }

    /// A SCAN pattern matching every member's processing list.
    pub fn processing_pattern(&self) -> String {
        format!("{}:processing:*", self.prefix)
    }

    /// The member that owns a processing list key, if the key is one.
    pub fn processing_owner<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?.strip_prefix(":processing:")
    }
}

/// Job names become znode names and Redis key parts (and SCAN patterns), so
/// they are kept to a safe alphabet.
pub fn check_job_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a job name: use 1-200 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// The fair share: with members and jobs both sorted, member i of N takes
/// the jobs at positions i, i+N, i+2N, … . A process not in `members` (not
/// registered yet, or its session just expired) takes nothing.
pub fn share<'a>(jobs: &'a [String], members: &[String], me: &str) -> Vec<&'a str> {
    let mut members: Vec<&str> = members.iter().map(String::as_str).collect();
    members.sort_unstable();
    let Some(index) = members.iter().position(|m| *m == me) else {
        return Vec::new();
    };
    let mut jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
    jobs.sort_unstable();
    jobs.into_iter()
        .skip(index)
        .step_by(members.len())
        .collect()
}

/// One task as stored in the task list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub index: u64,
    pub number: u64,
}

impl Task {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.index, self.number)
    }

    pub fn decode(s: &str) -> Option<Task> {
        let (index, number) = s.split_once(':')?;
        Some(Task {
            index: index.parse().ok()?,
            number: number.parse().ok()?,
        })
    }

    /// The demo work: the result stored for this task.
    pub fn run(&self) -> String {
        let verdict = if is_prime(self.number) {
            "prime"
        } else {
            "composite"
        };
        format!("{} {verdict}", self.number)
    }
}

/// Trial division by 2, 3 and numbers of the form 6k ± 1.
pub fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn share_deals_sorted_jobs_round_robin_over_sorted_members() {
        let jobs = names(&["e", "a", "d", "b", "c"]);
        let members = names(&["m-2", "m-0", "m-1"]);
        assert_eq!(share(&jobs, &members, "m-0"), ["a", "d"]);
        assert_eq!(share(&jobs, &members, "m-1"), ["b", "e"]);
        assert_eq!(share(&jobs, &members, "m-2"), ["c"]);
        assert!(share(&jobs, &members, "m-9").is_empty());
        assert!(share(&[], &members, "m-0").is_empty());
    }

    #[test]
    fn every_job_has_exactly_one_owner() {
        let jobs: Vec<String> = (0..37).map(|i| format!("job{i:02}")).collect();
        for n in 1..6 {
            let members: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let mut owned: Vec<&str> = members
                .iter()
                .flat_map(|m| share(&jobs, &members, m))
                .collect();
            owned.sort_unstable();
            let all: Vec<&str> = jobs.iter().map(String::as_str).collect();
            assert_eq!(owned, all, "{n} members");
        }
    }

    #[test]
    fn primes_match_a_sieve() {
        let limit = 20_000usize;
        let mut sieve = vec![true; limit];
        sieve[0] = false;
        sieve[1] = false;
        for i in 2..limit {
            if sieve[i] {
                for j in (i * i..limit).step_by(i) {
                    sieve[j] = false;
                }
            }
        }
        for (n, expected) in sieve.iter().enumerate() {
            assert_eq!(is_prime(n as u64), *expected, "{n}");
        }
        assert!(is_prime(1_000_000_007));
        assert!(!is_prime(1_000_000_007 * 3));
    }

    #[test]
    fn tasks_and_records_round_trip() {
        let t = Task {
            index: 7,
            number: 91,
        };
        assert_eq!(Task::decode(&t.encode()), Some(t));
        assert_eq!(t.run(), "91 composite");
        assert_eq!(Task::decode("7"), None);
        assert_eq!(Task::decode("x:1"), None);
        let r = JobRecord {
            id: "abc".into(),
            tasks: 3,
            state: JobState::Processed,
        };
        assert_eq!(JobRecord::decode(&r.encode()), Some(r));
        assert_eq!(
            String::from_utf8(
                JobRecord::decode(b"{\"id\":\"x\",\"tasks\":1,\"state\":\"finished\"}")
                    .map(|r| r.encode())
                    .unwrap_or_default()
            )
            .ok(),
            Some("{\"id\":\"x\",\"tasks\":1,\"state\":\"finished\"}".to_string())
        );
        assert_eq!(JobRecord::decode(b"garbage"), None);
    }

    #[test]
    fn keys_name_the_job_and_find_owners() {
        let k = JobKeys::new("primes", "42");
        assert_eq!(k.tasks(), "paddock:job:primes:42:tasks");
        let p = k.processing("executor-0000000003");
        assert_eq!(k.processing_owner(&p), Some("executor-0000000003"));
        assert_eq!(k.processing_owner(&k.results()), None);
        assert!(check_job_name("batch-7.a_b").is_ok());
        for bad in ["", "a/b", "a*", "..", "a b", "é"] {
            assert!(check_job_name(bad).is_err(), "{bad}");
        }
    }
}
