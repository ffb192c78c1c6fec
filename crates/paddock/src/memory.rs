//! How the process hands memory back to the system around recovery.
//!
//! mimalloc returns freed pages to the system only after a delay (a second
//! by default), and only when the heap is next used. Recovery frees
//! hundreds of MiB at once (the decompressed snapshot, the log it replayed)
//! and a restarted server may then sit idle, so those pages would stay
//! resident. While recovering, freed pages go back at once; afterwards the
//! delay returns, since purging at every free costs about a fifth of write
//! throughput under load.

use libmimalloc_sys::{mi_collect, mi_option_get, mi_option_set, mi_option_t};

/// mimalloc's `mi_option_purge_delay` (milliseconds; 0 purges at once).
/// Not exported by libmimalloc-sys; its place in the option enum.
const PURGE_DELAY: mi_option_t = 15;

/// Purging at once until dropped.
pub struct PurgeAtOnce {
    delay: std::os::raw::c_long,
}

impl PurgeAtOnce {
    pub fn begin() -> PurgeAtOnce {
        // SAFETY: reading and setting an option is allowed at any time.
        let delay = unsafe {
            let delay = mi_option_get(PURGE_DELAY);
            mi_option_set(PURGE_DELAY, 0);
            delay
        };
        PurgeAtOnce { delay }
    }
}

impl Drop for PurgeAtOnce {
    fn drop(&mut self) {
        // SAFETY: mi_collect only walks this thread's heap and the arenas.
        unsafe {
            mi_collect(true);
            mi_option_set(PURGE_DELAY, self.delay);
        }
    }
}

/// How often [`collect_now_and_then`] has the allocator purge.
const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Has the allocator return, every two seconds, the freed pages whose purge
/// delay has passed. mimalloc purges only when a thread allocates or frees
/// again; after a snapshot of a big tree (the chunks its writes copied
/// meanwhile, freed at once) an idle server would otherwise keep hundreds
/// of MiB for as long as nothing else happens.
pub async fn collect_now_and_then() {
    let mut every = tokio::time::interval(COLLECT_EVERY);
    loop {
        every.tick().await;
        // SAFETY: collecting is allowed at any time on any thread.
        unsafe { mi_collect(false) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_we_set() {
        // mimalloc v3's default purge delay is 1000 ms: if the option
        // enum moved, this reads some other option.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 1000);
        let purging = PurgeAtOnce::begin();
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 0);
        drop(purging);
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 1000);
    }
}
