//! What leaves a connection: its mailbox from the write path and the
//! watches, and the write side of its socket.
//!
//! The connection's task writes its replies. A watch notification for a
//! connection whose task is asleep is written straight to the socket by
//! the thread that fired it, once the tree is unlocked (`deliver`): a
//! fan-out to thousands of watchers then costs one send each, made in a
//! row by one thread, instead of waking thousands of tasks. Whatever that
//! cannot write (a reply, a full socket buffer) is left to the task.

use crate::socket::WriteHalf;
use bytes::{Bytes, BytesMut};
use paddock_proto::{ErrorCode, Response};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The outcome of one applied transaction, for its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub zxid: i64,
    pub result: Result<Response, ErrorCode>,
}

/// Notifications written at once by `deliver`; more wait for the task.
const DIRECT_FRAMES: usize = 8;

/// What the write path and the watches send to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// The outcome of this connection's oldest uncommitted write.
    Committed(Committed),
    /// An encoded watch notification (without its length prefix),
    /// written before any later reply.
    Notification(Bytes),
    /// The unwritten rest of a frame `deliver` began: written as it is,
    /// before anything else.
    Rest(Bytes),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Outbound>,
    /// The connection's task is awake (it may be writing) or has ended:
    /// only it may write, so nothing is written out of order.
    busy: bool,
}

/// A connection's mailbox, in the order things were sent, and its socket.
/// It holds no buffer while empty, so an idle connection costs a few
/// dozen bytes here (a channel would keep a block of slots for good).
pub struct Outbox {
    state: Mutex<State>,
    sent: Notify,
    socket: WriteHalf,
}

impl Outbox {
    pub fn new(socket: WriteHalf) -> Outbox {
        Outbox {
            state: Mutex::default(),
            sent: Notify::new(),
            socket,
        }
    }

    /// Queues a message and wakes the connection's task; a connection
    /// that has gone never reads it, and it is freed with the outbox.
    pub fn send(&self, m: Outbound) {
        self.state.lock().queue.push_back(m);
        self.sent.notify_one();
    }

    /// Queues a message without waking anyone, for a caller that holds
    /// the tree's lock. True when the outbox was empty: the caller must
    /// then `deliver` it once the lock is released.
    pub fn post(&self, m: Outbound) -> bool {
        let mut state = self.state.lock();
        state.queue.push_back(m);
        state.queue.len() == 1
    }

    /// Writes the notifications at the head of the queue to the socket if
    /// the task sleeps; wakes the task for anything left. Returns how
    /// many were written whole.
    pub fn deliver(&self) -> usize {
        let mut state = self.state.lock();
        let written = if state.busy {
            0
        } else {
            write_notifications(&self.socket, &mut state.queue)
        };
        if state.queue.is_empty() {
            // An idle connection keeps no buffer.
            state.queue = VecDeque::new();
        } else {
            self.sent.notify_one();
        }
        written
    }

    /// For the task: everything sent so far, oldest first. Until it next
    /// `rest`s, only the task writes to the socket.
    pub fn take(&self) -> VecDeque<Outbound> {
        let mut state = self.state.lock();
        state.busy = true;
        std::mem::take(&mut state.queue)
    }

    /// For the task, before it waits: false if something was sent since
    /// its last `take` (it should take that first). Else `deliver` may
    /// write to the socket until the task's next `take`.
    pub fn rest(&self) -> bool {
        let mut state = self.state.lock();
        state.busy = !state.queue.is_empty();
        !state.busy
    }

    /// Resolves once something may have been sent since the last `take`
    /// (at once if a send came after the last wait).
    pub fn sent(&self) -> Notified<'_> {
        self.sent.notified()
    }

    /// For the task (between a `take` and a `rest`): writes all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.socket.write_all(buf).await
    }

    /// The connection has ended: nothing more is written, and the peer is
    /// told (FIN) after what was.
    pub fn close(&self) {
        self.state.lock().busy = true;
        self.socket.shutdown();
    }
}

/// Writes the leading notifications of `queue` (up to DIRECT_FRAMES of
/// them) with one send, and takes off what was written. Returns the
/// frames written whole.
fn write_notifications(socket: &WriteHalf, queue: &mut VecDeque<Outbound>) -> usize {
    let bodies = queue
        .iter()
        .map_while(|m| match m {
            Outbound::Notification(body) => Some(body),
            _ => None,
        })
        .take(DIRECT_FRAMES);
    let mut lengths = [[0u8; 4]; DIRECT_FRAMES];
    let mut frames = 0;
    for (len, body) in lengths.iter_mut().zip(bodies.clone()) {
        *len = (body.len() as u32).to_be_bytes();
        frames += 1;
    }
    if frames == 0 {
        return 0;
    }
    let mut slices = [IoSlice::new(&[]); 2 * DIRECT_FRAMES];
    for (i, (len, body)) in lengths.iter().zip(bodies).enumerate() {
        slices[2 * i] = IoSlice::new(len);
        slices[2 * i + 1] = IoSlice::new(body);
    }
    match socket.try_write_vectored(&slices[..2 * frames]) {
        Ok(written) => take_written(queue, written),
        // Not writable now (or broken): the task finds out when it writes.
        Err(_) => 0,
    }
}

/// Takes the first `written` bytes' worth of notification frames off the
/// head of `queue`; a frame written in part leaves its rest at the head.
/// Returns the frames written whole.
fn take_written(queue: &mut VecDeque<Outbound>, mut written: usize) -> usize {
    let mut whole_frames = 0;
    while written > 0 {
        let Some(Outbound::Notification(body)) = queue.pop_front() else {
            break;
        };
        let whole = 4 + body.len();
        if written < whole {
            let mut rest = BytesMut::with_capacity(whole - written);
            let len = (body.len() as u32).to_be_bytes();
            if written < 4 {
                rest.extend_from_slice(&len[written..]);
                rest.extend_from_slice(&body);
            } else {
                rest.extend_from_slice(&body[written - 4..]);
            }
            queue.push_front(Outbound::Rest(rest.freeze()));
            break;
        }
        written -= whole;
        whole_frames += 1;
    }
    whole_frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_proto::Response;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    fn note(n: u8) -> Outbound {
        Outbound::Notification(Bytes::from(vec![n; 3]))
    }

    fn committed(zxid: i64) -> Outbound {
        Outbound::Committed(Committed {
            zxid,
            result: Ok(Response::Empty),
        })
    }

    /// An outbox on one end of a loopback connection, and the other end.
    async fn pair() -> (Outbox, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_rd, wr) = accepted.unwrap().0.into_split();
        (Outbox::new(WriteHalf::Tcp(wr)), client.unwrap())
    }

    async fn read_exactly(peer: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        tokio::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .expect("the bytes arrive")
            .unwrap();
        got
    }

    async fn nothing_more(peer: &mut TcpStream) {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(50), peer.read(&mut byte)).await;
        assert!(read.is_err(), "nothing else was written: {read:?}");
    }

    async fn woken(outbox: &Outbox) -> bool {
        tokio::time::timeout(Duration::from_millis(50), outbox.sent())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_outbox_gives_messages_in_order_and_wakes_for_a_send_before_the_wait() {
        let (outbox, _peer) = pair().await;
        outbox.send(note(1));
        outbox.send(note(2));
        // Sent before anyone waited: the wait still ends at once.
        assert!(woken(&outbox).await);
        assert_eq!(outbox.take(), [note(1), note(2)]);
        assert!(outbox.take().is_empty());
        assert!(!woken(&outbox).await, "nothing new was sent");
    }

    #[tokio::test]
    async fn an_outbox_wakes_its_waiting_task() {
        let (outbox, _peer) = pair().await;
        let outbox = Arc::new(outbox);
        let sender = outbox.clone();
        let waiting = tokio::spawn(async move {
            outbox.sent().await;
            outbox.take()
        });
        tokio::task::yield_now().await;
        sender.send(note(3));
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, [note(3)]);
    }

    #[tokio::test]
    async fn notifications_for_a_resting_task_are_written_straight_to_the_socket() {
        let (outbox, mut peer) = pair().await;
        assert!(outbox.rest());
        assert!(outbox.post(note(1)), "the first post asks for delivery");
        assert!(!outbox.post(note(2)), "one delivery covers the second");
        assert_eq!(outbox.deliver(), 2);
        let got = read_exactly(&mut peer, 14).await;
        assert_eq!(got, [0, 0, 0, 3, 1, 1, 1, 0, 0, 0, 3, 2, 2, 2]);
        assert_eq!(outbox.state.lock().queue.capacity(), 0, "no buffer kept");
        assert!(outbox.take().is_empty());
        assert!(!woken(&outbox).await, "the task had nothing to do");
    }

    #[tokio::test]
    async fn a_busy_task_writes_its_notifications_itself() {
        let (outbox, mut peer) = pair().await;
        assert!(outbox.take().is_empty(), "the task is awake");
        outbox.post(note(1));
        assert_eq!(outbox.deliver(), 0);
        nothing_more(&mut peer).await;
        assert!(woken(&outbox).await);
        assert_eq!(outbox.take(), [note(1)]);
        // Once it has ended, nothing is written for it either.
        assert!(outbox.rest());
        outbox.close();
        outbox.post(note(2));
        outbox.deliver();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut rest))
            .await
            .expect("closed")
            .unwrap();
        assert!(rest.is_empty(), "only the FIN came: {rest:?}");
    }

    #[tokio::test]
    async fn a_task_that_has_not_taken_everything_does_not_rest() {
        let (outbox, _peer) = pair().await;
        outbox.send(note(1));
        assert!(!outbox.rest());
        assert_eq!(outbox.take(), [note(1)]);
        assert!(outbox.rest());
    }

    #[tokio::test]
    async fn what_comes_after_a_written_notification_is_left_to_the_task_in_order() {
        let (outbox, mut peer) = pair().await;
        assert!(outbox.rest());
        outbox.post(note(1));
        outbox.post(committed(7));
        outbox.post(note(2));
        assert_eq!(outbox.deliver(), 1);
        assert_eq!(read_exactly(&mut peer, 7).await, [0, 0, 0, 3, 1, 1, 1]);
        nothing_more(&mut peer).await;
        assert!(woken(&outbox).await);
        assert_eq!(outbox.take(), [committed(7), note(2)]);
    }

    #[test]
    fn a_frame_written_in_part_leaves_exactly_its_rest_first_in_line() {
        let rest = |written| {
            let mut queue = VecDeque::from([note(1), note(2), committed(3)]);
            let whole = take_written(&mut queue, written);
            (whole, queue)
        };
        let bytes = |b: &[u8]| Outbound::Rest(Bytes::copy_from_slice(b));
        // Frames are 4 length bytes then 3 body bytes.
        assert_eq!(
            rest(0),
            (0, VecDeque::from([note(1), note(2), committed(3)]))
        );
        assert_eq!(
            rest(2),
            (
                0,
                VecDeque::from([bytes(&[0, 3, 1, 1, 1]), note(2), committed(3)])
            )
        );
        assert_eq!(
            rest(5),
            (0, VecDeque::from([bytes(&[1, 1]), note(2), committed(3)]))
        );
        assert_eq!(rest(7), (1, VecDeque::from([note(2), committed(3)])));
        assert_eq!(
            rest(11),
            (1, VecDeque::from([bytes(&[2, 2, 2]), committed(3)]))
        );
        assert_eq!(rest(14), (2, VecDeque::from([committed(3)])));
    }

    #[tokio::test]
    async fn a_full_socket_leaves_the_unwritten_rest_first_in_line() {
        let (outbox, mut peer) = pair().await;
        // Fill the socket's buffers (the peer reads nothing yet).
        let filler = vec![9u8; 64 * 1024];
        let mut sent = 0;
        while let Ok(n) = outbox.socket.try_write(&filler) {
            sent += n;
        }
        assert!(outbox.rest());
        let big = Bytes::from(vec![5u8; 8]);
        outbox.post(Outbound::Notification(big.clone()));
        outbox.deliver();
        assert!(woken(&outbox).await, "the task is asked to finish");
        // Whatever was not written is first in line, as the bytes still due.
        let frame = [&(8u32).to_be_bytes()[..], &big[..]].concat();
        let unwritten = match outbox.take().pop_front() {
            Some(Outbound::Notification(b)) if b == big => frame.clone(),
            Some(Outbound::Rest(b)) if frame.ends_with(&b) => b.to_vec(),
            other => panic!("unexpected head {other:?}"),
        };
        let reading = tokio::spawn(async move { read_exactly(&mut peer, sent + 12).await });
        outbox.write_all(&unwritten).await.unwrap();
        let got = reading.await.unwrap();
        assert!(got[..sent].iter().all(|b| *b == 9));
        assert_eq!(got[sent..], frame);
    }
}
