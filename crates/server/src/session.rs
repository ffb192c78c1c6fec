//! Session ids, passwords and liveness. The sessions themselves (create,
//! close) live in the replicated tree; this tracks when each was last heard
//! from, which connection holds it, and decides expiry.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The 16-byte password of a session: `java.util.Random` seeded with
/// `session_id ^ 0xB3415C00`, as ZooKeeper derives it, so a password is the
/// same on every server and across restarts without being stored.
pub fn password(session_id: i64) -> [u8; 16] {
    const MULT: i64 = 0x5DEECE66D;
    const MASK: i64 = (1 << 48) - 1;
    let mut seed = ((session_id ^ 0xB341_5C00) ^ MULT) & MASK;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(4) {
        seed = (seed.wrapping_mul(MULT).wrapping_add(0xB)) & MASK;
        let mut r = (seed >> 16) as i32;
        for b in chunk {
            *b = r as u8;
            r >>= 8;
        }
    }
    out
}

/// The first session id of a server started at `now_ms`:
/// `((now_ms << 24) >>> 8) | (server_id << 56)`.
pub fn initial_session_id(now_ms: i64, server_id: u8) -> i64 {
    let low = ((now_ms << 24) as u64 >> 8) as i64;
    low | (i64::from(server_id) << 56)
}

/// Liveness of one session, shared with the connection that holds it.
#[derive(Debug)]
pub struct Liveness {
    timeout_ms: AtomicI32,
    last_seen_ms: AtomicI64,
}

impl Liveness {
    pub fn timeout_ms(&self) -> i32 {
        self.timeout_ms.load(Ordering::Relaxed)
    }

    pub fn touch(&self, now_ms: i64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }

    fn expired_at(&self, now_ms: i64) -> bool {
        now_ms - self.last_seen_ms.load(Ordering::Relaxed) > i64::from(self.timeout_ms())
    }
}

/// The connection holding a session: its id, and the token that closes it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub connection_id: u64,
    pub close: CancellationToken,
}

struct Tracked {
    liveness: Arc<Liveness>,
    holder: Option<Holder>,
    /// When (`mono_ms`) a closeSession for it was proposed here; it cannot
    /// be reattached while that is on its way through the log.
    closing_since_ms: Option<i64>,
    /// Created in read-only mode: known to this server only, never in
    /// the log; it expires here and is forgotten when read-only mode ends.
    local: bool,
}

/// What the leader's expiry check may do this time round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Not leading with a quorum: expire nothing.
    Idle,
    /// Just stopped leading: forget the closes proposed while leading.
    StepDown,
    /// Leading (again, or in a new term): rebuild liveness, expire nothing
    /// yet.
    Rebuild,
    /// The check ran this much late, more than one interval (paused or
    /// starved): extend every session by it, expire nothing this time.
    Extend(i64),
    /// Leading with a quorum, continuously since the last check: expire
    /// the sessions not heard from within their timeout.
    Expire,
}

/// Decides, at each expiry check, whether this server's view of session
/// liveness can be trusted. A leader's view holds only while it leads in
/// one term with a quorum and runs on time: it cannot hear from followers
/// while it is partitioned, paused or out of office. Pure: the caller
/// passes the time and what consensus says now.
#[derive(Debug)]
pub struct ExpiryGate {
    /// The term this server led in at the last check, if it led.
    leading: Option<u64>,
    last_check_ms: Option<i64>,
    /// How often the check runs.
    every_ms: i64,
}

impl ExpiryGate {
    pub fn new(every_ms: i64) -> Self {
        ExpiryGate {
            leading: None,
            last_check_ms: None,
            every_ms,
        }
    }

    /// `leading`: the term this server leads in with a quorum it heard
    /// from lately, or None. Lateness counts from the end of the last
    /// check (`done`), so a check slowed by its own proposals is no stall.
    pub fn check(&mut self, now_ms: i64, leading: Option<u64>) -> Expiry {
        let late_ms = self
            .last_check_ms
            .map_or(0, |at| now_ms - at - self.every_ms);
        self.last_check_ms = Some(now_ms);
        let was = std::mem::replace(&mut self.leading, leading);
        match leading {
            None if was.is_some() => Expiry::StepDown,
            None => Expiry::Idle,
            Some(_) if was != leading => Expiry::Rebuild,
            // One missed check is scheduling noise; more is a stall.
            Some(_) if late_ms > self.every_ms => Expiry::Extend(late_ms),
            Some(_) => Expiry::Expire,
        }
    }

    /// The check that began last ended at `now_ms`.
    pub fn done(&mut self, now_ms: i64) {
        self.last_check_ms = Some(now_ms);
    }
}

/// Which sessions are alive, and which connection owns each.
pub struct SessionTracker {
    sessions: Mutex<HashMap<i64, Tracked>>,
    next_id: AtomicI64,
}

impl SessionTracker {
    pub fn new(first_id: i64) -> Self {
        SessionTracker {
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(first_id),
        }
    }

    /// A fresh session id (never i64::MIN, which marks containers).
    pub fn next_id(&self) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id == i64::MIN {
            self.next_id.fetch_add(1, Ordering::Relaxed)
        } else {
            id
        }
    }

    /// Starts tracking a session owned by `holder`: one of the replicated
    /// tree, or with `local` one made in read-only mode, which only this
    /// server knows.
    pub fn add(
        &self,
        session_id: i64,
        timeout_ms: i32,
        now_ms: i64,
        holder: Holder,
        local: bool,
    ) -> Arc<Liveness> {
        let liveness = Arc::new(Liveness {
            timeout_ms: AtomicI32::new(timeout_ms),
            last_seen_ms: AtomicI64::new(now_ms),
        });
        self.sessions.lock().insert(
            session_id,
            Tracked {
                liveness: liveness.clone(),
                holder: Some(holder),
                closing_since_ms: None,
                local,
            },
        );
        liveness
    }

    pub fn is_local(&self, session_id: i64) -> bool {
        self.sessions
            .lock()
            .get(&session_id)
            .is_some_and(|t| t.local)
    }

    /// Forgets every read-only-mode session and closes its connection
    /// (read-only mode ended).
    pub fn drop_local(&self) {
        self.sessions.lock().retain(|_, t| {
            if t.local {
                if let Some(h) = &t.holder {
                    h.close.cancel();
                }
            }
            !t.local
        });
    }

    /// Tracks a session held by no connection here (recovered from disk,
    /// or created through another server), unless it is tracked already.
    pub fn ensure(&self, session_id: i64, timeout_ms: i32, now_ms: i64) {
        self.sessions
            .lock()
            .entry(session_id)
            .or_insert_with(|| Tracked {
                liveness: Arc::new(Liveness {
                    timeout_ms: AtomicI32::new(timeout_ms),
                    last_seen_ms: AtomicI64::new(now_ms),
                }),
                holder: None,
                closing_since_ms: None,
                local: false,
            });
    }

    /// Makes the tracked sessions exactly `live` (after the tree was
    /// replaced by a snapshot); sessions new to us get a full timeout.
    pub fn resync(&self, live: &[(i64, i32)], now_ms: i64) {
        let keep: std::collections::HashSet<i64> = live.iter().map(|(id, _)| *id).collect();
        self.sessions.lock().retain(|id, _| keep.contains(id));
        for (id, timeout_ms) in live {
            self.ensure(*id, *timeout_ms, now_ms);
        }
    }

    /// Another server heard from this session's client at `at_ms` (never
    /// moves the time back).
    pub fn touch(&self, session_id: i64, at_ms: i64) {
        if let Some(t) = self.sessions.lock().get(&session_id) {
            t.liveness.last_seen_ms.fetch_max(at_ms, Ordering::Relaxed);
        }
    }

    /// Rebuilds this server's view of liveness (it begins to lead, or
    /// leads again after losing its quorum): every session gets a full
    /// timeout from now, since nobody knows when the others last heard
    /// from their clients, and no close proposed before counts as on its
    /// way.
    pub fn rebuild(&self, now_ms: i64) {
        for t in self.sessions.lock().values_mut() {
            t.liveness.touch(now_ms);
            t.closing_since_ms = None;
        }
    }

    /// Forgets every close proposed here (this server stopped leading: a
    /// close it proposed may never commit, and the next leader decides).
    pub fn forget_closing(&self) {
        for t in self.sessions.lock().values_mut() {
            t.closing_since_ms = None;
        }
    }

    /// This server heard nothing for `ms` until `now_ms` (its process was
    /// paused or starved): the time does not count against any session.
    pub fn extend(&self, ms: i64, now_ms: i64) {
        for t in self.sessions.lock().values() {
            let seen = &t.liveness.last_seen_ms;
            let later = (seen.load(Ordering::Relaxed) + ms).min(now_ms);
            seen.fetch_max(later, Ordering::Relaxed);
        }
    }

    /// Sessions held by a connection here and heard from at or after
    /// `since_ms`, with how long ago as of `now_ms`: what a follower
    /// reports to the leader.
    pub fn heard_since(&self, since_ms: i64, now_ms: i64) -> Vec<(i64, u32)> {
        let sessions = self.sessions.lock();
        let mut out: Vec<(i64, u32)> = sessions
            .iter()
            .filter(|(_, t)| !t.local && t.holder.is_some())
            .map(|(id, t)| (*id, t.liveness.last_seen_ms.load(Ordering::Relaxed)))
            .filter(|(_, seen)| *seen >= since_ms)
            .map(|(id, seen)| {
                (
                    id,
                    u32::try_from((now_ms - seen).max(0)).unwrap_or(u32::MAX),
                )
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Moves a live session to a new connection with a newly negotiated
    /// timeout, closing the old connection. None if the session is unknown
    /// or already closing.
    pub fn attach(
        &self,
        session_id: i64,
        timeout_ms: i32,
        now_ms: i64,
        holder: Holder,
    ) -> Option<Arc<Liveness>> {
        let mut sessions = self.sessions.lock();
        let t = sessions
            .get_mut(&session_id)
            .filter(|t| t.closing_since_ms.is_none())?;
        if let Some(old) = t.holder.replace(holder) {
            old.close.cancel();
        }
        t.liveness.touch(now_ms);
        t.liveness.timeout_ms.store(timeout_ms, Ordering::Relaxed);
        Some(t.liveness.clone())
    }

    /// The session's client reattached to another server: the connection
    /// here, if any, is stale and is closed.
    pub fn moved_away(&self, session_id: i64) {
        if let Some(t) = self.sessions.lock().get_mut(&session_id) {
            if let Some(old) = t.holder.take() {
                old.close.cancel();
            }
        }
    }

    /// The connection holding a session went away; the session lives on
    /// until it times out or the client reconnects.
    pub fn detach(&self, session_id: i64, connection_id: u64) {
        if let Some(t) = self.sessions.lock().get_mut(&session_id) {
            if t.holder
                .as_ref()
                .is_some_and(|h| h.connection_id == connection_id)
            {
                t.holder = None;
            }
        }
    }

    /// Marks a session as closing (a closeSession is on its way through
    /// the log); it can no longer be reattached.
    pub fn mark_closing(&self, session_id: i64, now_ms: i64) {
        if let Some(t) = self.sessions.lock().get_mut(&session_id) {
            t.closing_since_ms = Some(now_ms);
        }
    }

    /// Forgets a session whose close was applied, closing its connection.
    pub fn remove(&self, session_id: i64) {
        if let Some(t) = self.sessions.lock().remove(&session_id) {
            if let Some(h) = t.holder {
                h.close.cancel();
            }
        }
    }

    /// Sessions of the tree not heard from within their timeout, for the
    /// leader to close: at most `max`, the longest silent first. Each is
    /// marked closing and returned once, and again after `retry_ms` if
    /// its close has not been applied by then.
    pub fn expire(&self, now_ms: i64, retry_ms: i64, max: usize) -> Vec<i64> {
        let mut sessions = self.sessions.lock();
        let mut due: Vec<(i64, i64)> = sessions
            .iter()
            .filter(|(_, t)| {
                !t.local
                    && t.closing_since_ms.is_none_or(|at| now_ms - at >= retry_ms)
                    && t.liveness.expired_at(now_ms)
            })
            .map(|(id, t)| (t.liveness.last_seen_ms.load(Ordering::Relaxed), *id))
            .collect();
        due.sort_unstable();
        due.truncate(max);
        let mut out: Vec<i64> = due.into_iter().map(|(_, id)| id).collect();
        for id in &out {
            if let Some(t) = sessions.get_mut(id) {
                t.closing_since_ms = Some(now_ms);
            }
        }
        out.sort_unstable();
        out
    }

    /// Forgets the read-only-mode sessions not heard from within their
    /// timeout, closing their connections; returns their ids.
    pub fn expire_local(&self, now_ms: i64) -> Vec<i64> {
        let mut out = Vec::new();
        self.sessions.lock().retain(|id, t| {
            let expired = t.local && t.liveness.expired_at(now_ms);
            if expired {
                out.push(*id);
                if let Some(h) = &t.holder {
                    h.close.cancel();
                }
            }
            !expired
        });
        out.sort_unstable();
        out
    }

    /// Every tracked session and when (in `mono_ms` time) it expires
    /// unless heard from.
    pub fn deadlines(&self) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = self
            .sessions
            .lock()
            .iter()
            .map(|(id, t)| {
                let l = &t.liveness;
                (
                    *id,
                    l.last_seen_ms.load(Ordering::Relaxed) + i64::from(l.timeout_ms()),
                )
            })
            .collect();
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(connection_id: u64) -> Holder {
        Holder {
            connection_id,
            close: CancellationToken::new(),
        }
    }

    #[test]
    fn passwords_match_zookeepers_java_random_scheme() {
        // Java: new Random(0x0100_0040_7f1f_0001L ^ 0xB3415C00L).nextBytes(b)
        // (bytes printed by Java 17 for that call)
        let want = [
            0x26, 0x0d, 0xbf, 0x0a, 0x44, 0x13, 0xea, 0xae, 0x9e, 0x67, 0x8c, 0xec, 0x61, 0x43,
            0x43, 0x58,
        ];
        assert_eq!(password(0x0100_0040_7f1f_0001), want);
    }

    #[test]
    fn session_ids_carry_the_server_id_in_the_top_byte() {
        // ((now << 24) >>> 8): the low 40 bits of the clock, shifted up 16.
        let id = initial_session_id(0x0199_407f_1f00, 1);
        assert_eq!(id, 0x0199_407f_1f00_0000 & 0x00ff_ffff_ffff_ffff | 1 << 56);
        assert_eq!(initial_session_id(-1, 7) >> 56, 7);
    }

    /// Expiry with no retry within the test and no cap.
    fn expire(t: &SessionTracker, now_ms: i64) -> Vec<i64> {
        t.expire(now_ms, 1_000_000, usize::MAX)
    }

    #[test]
    fn sessions_expire_once_after_their_timeout() {
        let t = SessionTracker::new(1);
        let live = t.add(5, 1000, 0, holder(1), false);
        assert!(expire(&t, 1000).is_empty());
        live.touch(500);
        assert!(expire(&t, 1400).is_empty());
        assert_eq!(expire(&t, 1501), vec![5]);
        assert!(expire(&t, 5000).is_empty(), "reported once");
        assert!(t.attach(5, 1000, 5000, holder(2)).is_none(), "closing");
    }

    #[test]
    fn a_close_not_applied_in_time_is_proposed_again() {
        let t = SessionTracker::new(1);
        t.ensure(5, 1000, 0);
        assert_eq!(t.expire(1001, 500, 10), vec![5]);
        assert!(t.expire(1500, 500, 10).is_empty(), "on its way");
        assert_eq!(t.expire(1501, 500, 10), vec![5], "retried");
        t.remove(5);
        assert!(t.expire(3000, 500, 10).is_empty(), "applied: gone");
    }

    #[test]
    fn expiry_takes_the_longest_silent_first_and_at_most_max() {
        let t = SessionTracker::new(1);
        for (id, last_seen) in [(1, 300), (2, 100), (3, 200)] {
            t.ensure(id, 1000, last_seen);
        }
        assert_eq!(t.expire(2000, 5000, 2), vec![2, 3]);
        assert_eq!(t.expire(2000, 5000, 2), vec![1], "the rest next time");
    }

    #[test]
    fn a_rebuilt_view_forgets_closes_and_gives_a_full_timeout() {
        let t = SessionTracker::new(1);
        t.add(5, 1000, 0, holder(1), false);
        t.ensure(6, 1000, 0);
        assert_eq!(expire(&t, 1001), vec![5, 6]);
        t.rebuild(5000);
        assert!(
            t.attach(5, 1000, 5000, holder(2)).is_some(),
            "a close proposed while leading before is void"
        );
        assert!(expire(&t, 6000).is_empty(), "a full timeout from 5000");
        assert_eq!(expire(&t, 6001), vec![5, 6]);
    }

    #[test]
    fn stepping_down_forgets_the_closes_proposed_while_leading() {
        let t = SessionTracker::new(1);
        t.add(5, 1000, 0, holder(1), false);
        assert_eq!(expire(&t, 1001), vec![5]);
        assert!(t.attach(5, 1000, 1002, holder(2)).is_none());
        t.forget_closing();
        assert!(t.attach(5, 1000, 1003, holder(3)).is_some());
    }

    #[test]
    fn a_stall_does_not_count_against_sessions() {
        let t = SessionTracker::new(1);
        t.ensure(5, 1000, 0);
        t.extend(3000, 3500);
        assert!(expire(&t, 4000).is_empty());
        assert_eq!(expire(&t, 4001), vec![5]);
        t.ensure(6, 1000, 5000);
        t.extend(3000, 6000);
        assert!(expire(&t, 7000).is_empty());
        assert_eq!(expire(&t, 7001), vec![6], "extended to now, not past it");
    }

    #[test]
    fn the_gate_expires_only_while_leading_one_term_on_time() {
        let mut g = ExpiryGate::new(100);
        assert_eq!(g.check(0, None), Expiry::Idle);
        assert_eq!(g.check(100, Some(3)), Expiry::Rebuild, "begins to lead");
        assert_eq!(g.check(200, Some(3)), Expiry::Expire);
        assert_eq!(g.check(390, Some(3)), Expiry::Expire, "one late check");
        assert_eq!(g.check(800, Some(3)), Expiry::Extend(310), "paused");
        assert_eq!(g.check(900, Some(3)), Expiry::Expire);
        assert_eq!(g.check(1000, None), Expiry::StepDown, "lost its quorum");
        assert_eq!(g.check(1100, None), Expiry::Idle);
        assert_eq!(
            g.check(1200, Some(3)),
            Expiry::Rebuild,
            "regained its quorum in the same term"
        );
        assert_eq!(g.check(1300, Some(5)), Expiry::Rebuild, "a new term");
        assert_eq!(g.check(1400, Some(5)), Expiry::Expire);
        g.done(1700);
        assert_eq!(
            g.check(1800, Some(5)),
            Expiry::Expire,
            "a check slowed by its own proposals is no stall"
        );
    }

    #[test]
    fn a_follower_reports_only_the_sessions_its_clients_were_heard_from() {
        let t = SessionTracker::new(1);
        let held = t.add(5, 1000, 0, holder(1), false);
        t.ensure(6, 1000, 0);
        t.ensure(5, 9999, 0);
        assert_eq!(t.heard_since(0, 250), vec![(5, 250)], "heard 250 ms ago");
        assert!(t.heard_since(1, 250).is_empty());
        held.touch(10);
        assert_eq!(t.heard_since(1, 250), vec![(5, 240)]);
        assert_eq!(held.timeout_ms(), 1000, "ensure keeps a tracked session");
    }

    #[test]
    fn a_report_counts_from_when_the_client_was_heard_and_never_moves_time_back() {
        let t = SessionTracker::new(1);
        t.ensure(5, 1000, 0);
        t.touch(5, 800);
        t.touch(5, 300);
        assert!(expire(&t, 1800).is_empty());
        assert_eq!(expire(&t, 1801), vec![5]);
    }

    #[test]
    fn the_leader_expires_sessions_only_after_touches_stop() {
        let t = SessionTracker::new(1);
        t.ensure(6, 1000, 0);
        t.touch(6, 900);
        assert!(expire(&t, 1500).is_empty());
        t.rebuild(1600);
        assert!(expire(&t, 2500).is_empty());
        assert_eq!(expire(&t, 2601), vec![6]);
        t.resync(&[(7, 1000)], 3000);
        assert!(expire(&t, 3500).is_empty());
        assert_eq!(t.len(), 1);
        assert_eq!(expire(&t, 4001), vec![7]);
    }

    #[test]
    fn read_only_sessions_expire_here_and_end_with_read_only_mode() {
        let t = SessionTracker::new(1);
        let a = holder(1);
        let b = holder(2);
        t.add(5, 1000, 0, a.clone(), true);
        t.add(6, 1000, 0, b.clone(), true);
        t.add(7, 1000, 0, holder(3), false);
        assert!(t.is_local(5) && !t.is_local(7));
        assert_eq!(
            t.heard_since(0, 0),
            vec![(7, 0)],
            "only tree sessions are reported"
        );
        t.touch(6, 900);
        assert_eq!(
            expire(&t, 1500),
            vec![7],
            "the leader expires tree sessions only"
        );
        assert_eq!(t.expire_local(1500), vec![5]);
        assert!(a.close.is_cancelled() && !b.close.is_cancelled());
        t.drop_local();
        assert!(b.close.is_cancelled());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn attaching_elsewhere_closes_the_old_connection() {
        let t = SessionTracker::new(1);
        let old = holder(1);
        t.add(5, 1000, 0, old.clone(), false);
        let new = holder(2);
        assert!(t.attach(5, 1000, 10, new.clone()).is_some());
        assert!(old.close.is_cancelled());
        t.detach(5, 1);
        assert!(!new.close.is_cancelled());
        t.moved_away(5);
        assert!(new.close.is_cancelled(), "moved to another server");
        let newest = holder(3);
        assert!(t.attach(5, 1000, 20, newest.clone()).is_some());
        t.detach(5, 2);
        t.remove(5);
        assert!(
            newest.close.is_cancelled(),
            "a stale detach left the new holder in place"
        );
    }
}
