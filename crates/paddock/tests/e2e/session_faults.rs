//! Sessions under faults, as ZooKeeper keeps them: a session is expired
//! only by the leader of the current term, through a committed close,
//! after nobody heard from it for its whole timeout; a server that stops
//! leading (or leads again) rebuilds its view of who is alive. Partitions
//! here are blackholes (nothing arrives, no connection is reset), made
//! with the TCP proxies the ensemble test owns.

use crate::common::{create_request, Raw};
use crate::ensemble::{connect, wait_until, Client, Ensemble};
use paddock_proto::Request;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The session timeout the test clients ask for (and get: tickTime 200).
const SESSION_TIMEOUT: Duration = Duration::from_millis(4000);
/// Two ticks of the test ensembles.
const TWO_TICKS: Duration = Duration::from_millis(400);

/// Holds (or releases) everything to and from each server in `ids`.
fn blackhole(e: &Ensemble, ids: &[u64], on: bool) {
    for ((from, to), p) in &e.proxies {
        if ids.contains(from) || ids.contains(to) {
            p.hold_out.store(on, Ordering::SeqCst);
            p.hold_back.store(on, Ordering::SeqCst);
        }
    }
}

/// Holds (or releases) what server `src` sends to server `dst`, on the
/// connections either of them dialled; the other way flows.
fn blackhole_one_way(e: &Ensemble, src: u64, dst: u64, on: bool) {
    e.proxies[&(src, dst)].hold_out.store(on, Ordering::SeqCst);
    e.proxies[&(dst, src)].hold_back.store(on, Ordering::SeqCst);
}

/// A client on the servers in `on` (not the others), with an ephemeral
/// node at `path`.
async fn ephemeral_owner(e: &Ensemble, on: &[u64], path: &str) -> Client {
    let mut c = Client::open(on.iter().map(|id| e.addr(*id)).collect(), 0).await;
    assert_eq!(c.call(&create_request(path, 1, b"")).await.err, 0);
    c
}

/// Keeps the client's session alive (a ping every 500 ms) for `d`.
async fn keep_alive(c: &mut Client, d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        assert_eq!(c.call(&Request::Ping).await.err, 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `path` is gone, as seen through server `id` after a sync;
/// returns how long that took.
async fn gone_within(e: &Ensemble, id: u64, path: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut c = Client::open(vec![e.addr(id)], 0).await;
    loop {
        c.sync().await;
        if !c.exists(path).await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{path} still there {limit:?} after its session's client died"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_past_the_session_timeout_takes_back_a_live_session_once_healed() {
    let e = Ensemble::start(3, 0, "", true).await;
    let leader = e.wait_for_leader().await;
    let others: Vec<u64> = e.running().into_iter().filter(|id| *id != leader).collect();
    let mut c = ephemeral_owner(&e, &others, "/eph").await;
    blackhole(&e, &[leader], true);
    keep_alive(&mut c, SESSION_TIMEOUT + Duration::from_secs(1)).await;
    blackhole(&e, &[leader], false);
    wait_until(Duration::from_secs(20), "the old leader to follow", || {
        (e.mode(leader).as_deref() == Some("follower")).then_some(())
    })
    .await;
    let (mut at_old_leader, _, _) = connect(&[e.addr(leader)], Some(&c.session), 0).await;
    let (h, _) = at_old_leader.call(&Request::Ping).await;
    assert_eq!(h.err, 0, "the session lives on at the old leader");
    e.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_a_follower_the_leader_cannot_hear_moves_and_keeps_its_session() {
    let e = Ensemble::start(3, 0, "", true).await;
    let leader = e.wait_for_leader().await;
    let others: Vec<u64> = e.running().into_iter().filter(|id| *id != leader).collect();
    // The client starts on others[0] and may move to any server.
    let order = [others[0], others[1], leader];
    let mut c = Client::open(order.iter().map(|id| e.addr(*id)).collect(), 0).await;
    assert_eq!(c.call(&create_request("/eph", 1, b"")).await.err, 0);
    // That follower hears the leader (it keeps getting appends), but the
    // leader hears nothing from it: not its acks, not its session reports.
    blackhole_one_way(&e, others[0], leader, true);
    keep_alive(&mut c, SESSION_TIMEOUT * 2).await;
    assert!(c.exists("/eph").await, "the session and its ephemeral live");
    blackhole_one_way(&e, others[0], leader, false);
    e.wait_for_leader().await;
    e.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_leads_again_expires_a_session_whose_client_died() {
    let e = Ensemble::start(3, 0, "", true).await;
    let first = e.wait_for_leader().await;
    let others: Vec<u64> = e.running().into_iter().filter(|id| *id != first).collect();
    let c = ephemeral_owner(&e, &others, "/eph").await;
    // The first leader, cut off, finds the session silent past its
    // timeout; the client lives on through the others meanwhile.
    blackhole(&e, &[first], true);
    let mut c = c;
    keep_alive(&mut c, SESSION_TIMEOUT + Duration::from_secs(1)).await;
    blackhole(&e, &[first], false);
    drop(c);
    let died = Instant::now();
    // Cut off whoever else leads until the first leader leads again.
    let mut leader = e.wait_for_leader().await;
    // Each round the first leader wins with even odds: 16 rounds miss 1 in 65536.
    for _ in 0..16 {
        if leader == first {
            break;
        }
        blackhole(&e, &[leader], true);
        let cut = leader;
        leader = wait_until(Duration::from_secs(20), "a new leader", || {
            e.running()
                .into_iter()
                .filter(|id| *id != cut)
                .find(|id| e.mode(*id).as_deref() == Some("leader"))
        })
        .await;
        blackhole(&e, &[cut], false);
        e.wait_for_leader().await;
    }
    assert_eq!(leader, first, "the first leader never led again");
    let led_again = died.elapsed();
    let took = gone_within(&e, first, "/eph", SESSION_TIMEOUT * 3).await;
    assert!(
        took <= SESSION_TIMEOUT + TWO_TICKS + Duration::from_secs(2),
        "the ephemeral went {took:?} after its server led again ({led_again:?} after its client died)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_client_died_without_a_quorum_expires_once_the_quorum_is_back() {
    let e = Ensemble::start(3, 0, "", true).await;
    let leader = e.wait_for_leader().await;
    let term = |id| e.four_letter(id, "mntr").unwrap_or_default();
    let before = term(leader);
    let others: Vec<u64> = e.running().into_iter().filter(|id| *id != leader).collect();
    let c = ephemeral_owner(&e, &others, "/eph").await;
    // The leader hears nobody: no quorum anywhere. Its heartbeats still
    // arrive, so no follower campaigns and no term moves; the leader
    // regains its quorum in its term. (Holding both ways would let a
    // follower's first vote request race the leader's first heartbeat.)
    for f in &others {
        blackhole_one_way(&e, *f, leader, true);
    }
    drop(c);
    tokio::time::sleep(SESSION_TIMEOUT + Duration::from_secs(1)).await;
    for f in &others {
        blackhole_one_way(&e, *f, leader, false);
    }
    let healed = Instant::now();
    assert_eq!(e.wait_for_leader().await, leader);
    assert_eq!(epoch_of(&before), epoch_of(&term(leader)), "the same term");
    gone_within(&e, leader, "/eph", SESSION_TIMEOUT * 3).await;
    let took = healed.elapsed();
    assert!(
        took >= SESSION_TIMEOUT - TWO_TICKS,
        "a leader that regains its quorum gives the session a full timeout first ({took:?})"
    );
    assert!(
        took <= SESSION_TIMEOUT + TWO_TICKS + Duration::from_secs(2),
        "the ephemeral went {took:?} after the quorum came back"
    );
    assert!(Raw::try_session(e.addr(leader), 4000).await.is_some());
}

/// The leader's term, as mntr reports it (`zk_epoch`).
fn epoch_of(mntr: &str) -> String {
    let line = mntr.lines().find(|l| l.starts_with("zk_epoch\t"));
    line.expect("mntr reports zk_epoch").to_owned()
}
