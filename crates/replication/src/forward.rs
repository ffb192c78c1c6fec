//! A follower's or observer's path to the leader: its proposals (in order,
//! over one connection, so each session's writes stay in order) and the
//! liveness of its clients' sessions. If the leader cannot take them, the
//! epoch moves on and the server's clients reconnect, as in ZooKeeper.
//! Session reports are acknowledged: a leader that does not hear them
//! would expire sessions whose clients talk to this server, so a report
//! that is not acknowledged ends the epoch too (its clients move to a
//! server the leader hears), and its sessions are reported again with
//! their real age.

use crate::peer::{Link, PeerReply, PeerRequest, Peers};
use crate::status::Status;
use crate::types::Command;
use crate::Heard;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

const MAX_BATCH: usize = 512;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// A leader that has not acknowledged a session report within this long
/// is taken not to hear this server (as a follower that has not heard its
/// leader for this long stops serving).
const REPORT_TIMEOUT: Duration = Duration::from_millis(crate::status::CONTACT_LOST_MS);

pub(crate) enum Outgoing {
    Command(Command),
    /// Sessions heard from, as of the instant given.
    Touch(Vec<Heard>, Instant),
}

/// How often a server whose reports fail asks the leader again (with an
/// empty report when it has nothing to report).
const PROBE_EVERY: Duration = Duration::from_millis(500);

pub(crate) async fn run(
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    status: Arc<watch::Sender<Status>>,
    peers: Peers,
    reports_failing: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut link: Option<(u64, Link)> = None;
    // Sessions heard from and not yet acknowledged by a leader, with when
    // each was last heard from.
    let mut touched: BTreeMap<i64, Instant> = BTreeMap::new();
    loop {
        let probe = reports_failing.load(Ordering::Relaxed);
        if probe {
            let next = queue.recv_many(&mut batch, MAX_BATCH);
            if let Ok(0) = tokio::time::timeout(PROBE_EVERY, next).await {
                return;
            }
        } else if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let mut commands = Vec::new();
        for item in batch.drain(..) {
            match item {
                Outgoing::Command(c) => commands.push(c),
                Outgoing::Touch(heard, at) => {
                    for (id, ago_ms) in heard {
                        let heard_at = at
                            .checked_sub(Duration::from_millis(u64::from(ago_ms)))
                            .unwrap_or(at);
                        let last = touched.entry(id).or_insert(heard_at);
                        *last = (*last).max(heard_at);
                    }
                }
            }
        }
        let (leader, spec) = {
            let s = status.borrow();
            let spec = s
                .leader
                .and_then(|l| s.members.iter().find(|m| m.id == l))
                .map(|m| (m.id, m.spec.clone()));
            match spec {
                Some(found) => found,
                None => {
                    // No leader: the writes are lost, and the epoch has
                    // moved (or will) so their connections start over.
                    continue;
                }
            }
        };
        if link.as_ref().is_none_or(|(id, _)| *id != leader) {
            link = Some((leader, peers.link_to(leader, &spec)));
        }
        let Some((_, to)) = link.as_mut() else {
            continue;
        };
        if !commands.is_empty() {
            let result = to
                .call(&PeerRequest::Forward(commands), FORWARD_TIMEOUT)
                .await;
            if let Some(reason) = failure(result, PeerReply::Forwarded) {
                warn!(leader, "forwarding writes to the leader failed: {reason}");
                status.send_modify(|s| s.epoch += 1);
            }
        }
        if !touched.is_empty() || probe {
            // Ages as of now: a report held back while the leader could
            // not be reached is as old as it is.
            let report = PeerRequest::Touch(
                touched
                    .iter()
                    .map(|(id, at)| {
                        (
                            *id,
                            u32::try_from(at.elapsed().as_millis()).unwrap_or(u32::MAX),
                        )
                    })
                    .collect(),
            );
            let acked = to.call(&report, REPORT_TIMEOUT).await;
            match failure(acked, PeerReply::Touched) {
                None => {
                    touched.clear();
                    if reports_failing.swap(false, Ordering::Relaxed) {
                        info!(leader, "the leader hears this server again");
                    }
                }
                Some(reason) => {
                    if !reports_failing.swap(true, Ordering::Relaxed) {
                        warn!(
                            leader,
                            "the leader does not acknowledge this server's session reports \
                             ({reason}); not serving until it does"
                        );
                    }
                    status.send_modify(|s| s.epoch += 1);
                }
            }
        }
    }
}

/// Why a request to the leader failed, if it did.
fn failure(result: std::io::Result<PeerReply>, expected: PeerReply) -> Option<String> {
    match result {
        Ok(reply) if std::mem::discriminant(&reply) == std::mem::discriminant(&expected) => None,
        Ok(PeerReply::Failed(reason)) => Some(reason),
        Ok(other) => Some(format!("unexpected reply {other:?}")),
        Err(e) => Some(e.to_string()),
    }
}
