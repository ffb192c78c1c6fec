//! Watch delivery: the registry (in `paddock-tree`) says who watches what;
//! this keeps each watcher's outbox and identities and sends notifications.

use crate::outbox::{Outbound, Outbox};
use paddock_proto::consts::perms;
use paddock_proto::{encode_notification, Id};
use paddock_tree::{acl, Event, WatchRegistry, WatcherId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Notifications carry zxid -1, as ZooKeeper 3.8 sends them.
const NOTIFICATION_ZXID: i64 = -1;

struct Handle {
    outbox: Arc<Outbox>,
    ids: Arc<Vec<Id>>,
}

#[derive(Default)]
struct Inner {
    registry: WatchRegistry,
    handles: HashMap<WatcherId, Handle>,
    /// Outboxes given notifications under the tree's lock, to deliver
    /// once it is released.
    due: Vec<Arc<Outbox>>,
}

/// Lock order: the tree lock first, then this one. Registering a watch
/// while holding the tree's read lock, and firing while holding its write
/// lock, makes "read + register" atomic with respect to every change.
#[derive(Default)]
pub struct Watches {
    inner: Mutex<Inner>,
}

impl Watches {
    /// A connection that may watch; `ids` decide which notifications it may see.
    pub fn connect(&self, watcher: WatcherId, outbox: Arc<Outbox>, ids: Arc<Vec<Id>>) {
        self.inner
            .lock()
            .handles
            .insert(watcher, Handle { outbox, ids });
    }

    pub fn set_ids(&self, watcher: WatcherId, ids: Arc<Vec<Id>>) {
        if let Some(h) = self.inner.lock().handles.get_mut(&watcher) {
            h.ids = ids;
        }
    }

    /// The connection closed: all its watches go.
    pub fn disconnect(&self, watcher: WatcherId) {
        let mut inner = self.inner.lock();
        inner.handles.remove(&watcher);
        inner.registry.remove_watcher(watcher);
    }

    pub fn add(&self, watcher: WatcherId, path: &str, bits: u8) {
        self.inner.lock().registry.add(watcher, path, bits);
    }

    pub fn contains(&self, watcher: WatcherId, path: &str, bits: u8) -> bool {
        self.inner.lock().registry.contains(watcher, path, bits)
    }

    pub fn remove(&self, watcher: WatcherId, path: &str, bits: u8) -> bool {
        self.inner.lock().registry.remove(watcher, path, bits)
    }

    /// Queues the notifications for applied changes, in order, to be sent
    /// by `deliver`. Each event is encoded once and shared by every watcher
    /// it reaches; a watcher that may not READ the changed node is not told.
    pub fn fire(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        let Inner {
            registry,
            handles,
            due,
        } = &mut *inner;
        if registry.is_empty() {
            return;
        }
        for ev in events {
            let watchers = registry.trigger(ev);
            if watchers.is_empty() {
                continue;
            }
            let frame = encode_notification(NOTIFICATION_ZXID, ev.event_type, &ev.path);
            for w in watchers {
                if let Some(h) = handles.get(&w) {
                    if acl::allowed(&ev.acl, perms::READ, &h.ids)
                        && h.outbox.post(Outbound::Notification(frame.clone()))
                    {
                        due.push(h.outbox.clone());
                    }
                }
            }
        }
    }

    /// Sends what `fire` queued; called once the tree's lock is released.
    /// Returns how many notifications were written here rather than by
    /// their connections' tasks.
    pub fn deliver(&self) -> usize {
        let due = std::mem::take(&mut self.inner.lock().due);
        due.iter().map(|outbox| outbox.deliver()).sum()
    }

    /// Watched paths with their watchers, sorted.
    pub fn entries(&self) -> Vec<(String, Vec<WatcherId>)> {
        self.inner.lock().registry.entries()
    }

    /// (watches, distinct paths, watchers) for wchs/mntr.
    pub fn summary(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock();
        (
            inner.registry.len(),
            inner.registry.path_count(),
            inner.registry.watcher_count(),
        )
    }
}

/// A notification for setWatches to send at once.
pub fn immediate(event_type: i32, path: &str) -> Outbound {
    Outbound::Notification(encode_notification(NOTIFICATION_ZXID, event_type, path))
}
