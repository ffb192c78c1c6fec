//! A follower's or observer's path to the leader: its proposals (in order,
//! over one connection, so each session's writes stay in order) and the
//! liveness of its clients' sessions. If the leader cannot take them, the
//! epoch moves on and the server's clients reconnect, as in ZooKeeper.

use crate::network::Network;
use crate::peer::{Link, PeerReply, PeerRequest};
use crate::status::Status;
use crate::types::Command;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::warn;

const MAX_BATCH: usize = 512;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) enum Outgoing {
    Command(Command),
    Touch(Vec<i64>),
}

pub(crate) async fn run(
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    status: Arc<watch::Sender<Status>>,
    local: Arc<BTreeMap<u64, String>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut link: Option<(u64, Link)> = None;
    loop {
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let (leader, spec) = {
            let s = status.borrow();
            let spec = s
                .leader
                .and_then(|l| s.members.iter().find(|m| m.id == l))
                .map(|m| (m.id, Network::spec_of(&local, m.id, &m.spec)));
            match spec {
                Some(found) => found,
                None => {
                    // No leader: these are lost, and the epoch has moved
                    // (or will) so their connections start over.
                    batch.clear();
                    continue;
                }
            }
        };
        if link.as_ref().is_none_or(|(id, _)| *id != leader) {
            link = Some((leader, Link::new(&spec)));
        }
        let Some((_, to)) = link.as_mut() else {
            continue;
        };
        let mut commands = Vec::new();
        let mut touched = Vec::new();
        for item in batch.drain(..) {
            match item {
                Outgoing::Command(c) => commands.push(c),
                Outgoing::Touch(ids) => touched.extend(ids),
            }
        }
        if !touched.is_empty() {
            let _ = to.send(&PeerRequest::Touch(touched)).await;
        }
        if commands.is_empty() {
            continue;
        }
        let result = to
            .call(&PeerRequest::Forward(commands), FORWARD_TIMEOUT)
            .await;
        let failure = match result {
            Ok(PeerReply::Forwarded) => None,
            Ok(PeerReply::Failed(reason)) => Some(reason),
            Ok(other) => Some(format!("unexpected reply {other:?}")),
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = failure {
            warn!(leader, "forwarding writes to the leader failed: {reason}");
            status.send_modify(|s| s.epoch += 1);
        }
    }
}
