//! The watch registry: which watcher (connection) watches which path in
//! which mode, and who is told about a change. Pure bookkeeping; delivering
//! notifications is the server's job.

use crate::path;
use crate::txn::Event;
use paddock_proto::consts::event;
use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Identifies a watcher: the server uses its connection id.
pub type WatcherId = u64;

/// One-shot watch set by exists/getData: fires on create, delete, data change.
pub const DATA: u8 = 1;
/// One-shot watch set by getChildren: fires on delete and child changes.
pub const CHILD: u8 = 2;
/// addWatch mode 0: data and child events of the path, never removed.
pub const PERSISTENT: u8 = 4;
/// addWatch mode 1: data events of the path and every descendant.
pub const RECURSIVE: u8 = 8;

/// WatcherType values of checkWatches/removeWatches, as mode bits.
pub fn watcher_type_bits(watcher_type: i32) -> Option<u8> {
    Some(match watcher_type {
        1 => CHILD,
        2 => DATA,
        3 => DATA | CHILD | PERSISTENT | RECURSIVE,
        4 => PERSISTENT,
        5 => RECURSIVE,
        _ => return None,
    })
}

/// One (watcher, mode bits) pair packed in a word: bits in the top byte.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Entry(u64);

impl Entry {
    const ID_MASK: u64 = (1 << 56) - 1;

    fn new(watcher: WatcherId, bits: u8) -> Entry {
        Entry((watcher & Self::ID_MASK) | (u64::from(bits) << 56))
    }

    fn watcher(self) -> WatcherId {
        self.0 & Self::ID_MASK
    }

    fn bits(self) -> u8 {
        (self.0 >> 56) as u8
    }

    fn with_bits(self, bits: u8) -> Entry {
        Entry::new(self.watcher(), bits)
    }
}

/// The watchers of one path; most paths have one, kept inline.
type Entries = SmallVec<[Entry; 1]>;

#[derive(Default)]
pub struct WatchRegistry {
    /// path → watchers with their mode bits; a watcher appears once per path.
    paths: HashMap<Arc<str>, Entries>,
    /// watcher → the paths it has entries on (sharing the keys' strings).
    by_watcher: HashMap<WatcherId, HashSet<Arc<str>>>,
    /// How many entries hold RECURSIVE: when none do, ancestors are not walked.
    recursive: usize,
}

impl WatchRegistry {
    /// Adds `bits` to `watcher`'s watch on `path`.
    pub fn add(&mut self, watcher: WatcherId, path: &str, bits: u8) {
        let key = match self.paths.get_key_value(path) {
            Some((k, _)) => k.clone(),
            None => Arc::from(path),
        };
        let entries = self.paths.entry(key.clone()).or_default();
        match entries.iter_mut().find(|e| e.watcher() == watcher) {
            Some(e) => {
                if bits & RECURSIVE != 0 && e.bits() & RECURSIVE == 0 {
                    self.recursive += 1;
                }
                *e = e.with_bits(e.bits() | bits);
            }
            None => {
                entries.push(Entry::new(watcher, bits));
                if bits & RECURSIVE != 0 {
                    self.recursive += 1;
                }
                self.by_watcher.entry(watcher).or_default().insert(key);
            }
        }
    }

    /// Whether `watcher` has any of `bits` on `path`.
    pub fn contains(&self, watcher: WatcherId, path: &str, bits: u8) -> bool {
        self.paths
            .get(path)
            .and_then(|e| e.iter().find(|e| e.watcher() == watcher))
            .is_some_and(|e| e.bits() & bits != 0)
    }

    /// Removes `bits` from `watcher`'s watch on `path`; false if it had none
    /// of them.
    pub fn remove(&mut self, watcher: WatcherId, path: &str, bits: u8) -> bool {
        let Some(entries) = self.paths.get_mut(path) else {
            return false;
        };
        let Some(i) = entries.iter().position(|e| e.watcher() == watcher) else {
            return false;
        };
        let have = entries[i].bits();
        if have & bits == 0 {
            return false;
        }
        if have & bits & RECURSIVE != 0 {
            self.recursive -= 1;
        }
        entries[i] = entries[i].with_bits(have & !bits);
        if entries[i].bits() == 0 {
            entries.swap_remove(i);
            if entries.is_empty() {
                self.paths.remove(path);
            }
            if let Some(list) = self.by_watcher.get_mut(&watcher) {
                list.remove(path);
                if list.is_empty() {
                    self.by_watcher.remove(&watcher);
                }
            }
        }
        true
    }

    /// Drops every watch of a watcher (its connection closed).
    pub fn remove_watcher(&mut self, watcher: WatcherId) {
        for p in self.by_watcher.remove(&watcher).unwrap_or_default() {
            if let Some(entries) = self.paths.get_mut(&p) {
                if let Some(i) = entries.iter().position(|e| e.watcher() == watcher) {
                    if entries[i].bits() & RECURSIVE != 0 {
                        self.recursive -= 1;
                    }
                    entries.swap_remove(i);
                }
                if entries.is_empty() {
                    self.paths.remove(&p);
                }
            }
        }
    }

    /// The watchers told about `ev`, each once, in registration order; the
    /// one-shot watches that fire are removed. ZooKeeper's rules:
    /// created/data changed reach DATA and PERSISTENT watches on the path;
    /// deleted also reaches CHILD watches; children changed (on the parent)
    /// reaches CHILD and PERSISTENT; RECURSIVE watches on the path or an
    /// ancestor see every event except children changed.
    pub fn trigger(&mut self, ev: &Event) -> Vec<WatcherId> {
        let (fires, one_shot) = match ev.event_type {
            event::NODE_CREATED | event::NODE_DATA_CHANGED => (DATA | PERSISTENT, DATA),
            event::NODE_DELETED => (DATA | CHILD | PERSISTENT, DATA | CHILD),
            event::NODE_CHILDREN_CHANGED => (CHILD | PERSISTENT, CHILD),
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        let recursive_too = ev.event_type != event::NODE_CHILDREN_CHANGED;
        if let Some(entries) = self.paths.get_mut(ev.path.as_str()) {
            for e in entries.iter_mut() {
                let bits = e.bits();
                if bits & fires != 0 || (recursive_too && bits & RECURSIVE != 0) {
                    out.push(e.watcher());
                    *e = e.with_bits(bits & !one_shot);
                }
            }
            let emptied: Vec<WatcherId> = entries
                .iter()
                .filter(|e| e.bits() == 0)
                .map(|e| e.watcher())
                .collect();
            entries.retain(|e| e.bits() != 0);
            if entries.is_empty() {
                self.paths.remove(ev.path.as_str());
            }
            for w in emptied {
                if let Some(list) = self.by_watcher.get_mut(&w) {
                    list.remove(ev.path.as_str());
                    if list.is_empty() {
                        self.by_watcher.remove(&w);
                    }
                }
            }
        }
        if recursive_too && self.recursive > 0 {
            let mut p = ev.path.as_str();
            while p != "/" {
                p = path::parent(p).unwrap_or("/");
                for e in self.paths.get(p).into_iter().flatten() {
                    if e.bits() & RECURSIVE != 0 && !out.contains(&e.watcher()) {
                        out.push(e.watcher());
                    }
                }
            }
        }
        out
    }

    /// Every watched path with its watchers, sorted (for wchp and wchc).
    pub fn entries(&self) -> Vec<(String, Vec<WatcherId>)> {
        let mut out: Vec<(String, Vec<WatcherId>)> = self
            .paths
            .iter()
            .map(|(p, e)| {
                let mut ws: Vec<WatcherId> = e.iter().map(|e| e.watcher()).collect();
                ws.sort_unstable();
                (p.to_string(), ws)
            })
            .collect();
        out.sort();
        out
    }

    /// Number of (path, watcher) entries.
    pub fn len(&self) -> usize {
        self.paths.values().map(|e| e.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Number of distinct watched paths.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// Number of watchers with at least one watch.
    pub fn watcher_count(&self) -> usize {
        self.by_watcher.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: i32, path: &str) -> Event {
        Event {
            event_type,
            path: path.into(),
            acl: Arc::new(Vec::new()),
        }
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut r = WatchRegistry::default();
        r.add(1, "/a", DATA);
        r.add(2, "/a", CHILD);
        assert_eq!(r.trigger(&ev(event::NODE_DATA_CHANGED, "/a")), vec![1]);
        assert_eq!(
            r.trigger(&ev(event::NODE_DATA_CHANGED, "/a")),
            Vec::<u64>::new()
        );
        assert_eq!(r.trigger(&ev(event::NODE_CHILDREN_CHANGED, "/a")), vec![2]);
        assert!(r.is_empty());
        assert_eq!(r.watcher_count(), 0);
    }

    #[test]
    fn delete_reaches_data_and_child_watches_once_per_watcher() {
        let mut r = WatchRegistry::default();
        r.add(1, "/a", DATA);
        r.add(1, "/a", CHILD);
        r.add(2, "/a", CHILD);
        assert_eq!(r.trigger(&ev(event::NODE_DELETED, "/a")), vec![1, 2]);
        assert!(r.is_empty());
    }

    #[test]
    fn persistent_watches_stay_and_see_children_but_recursive_never_does() {
        let mut r = WatchRegistry::default();
        r.add(1, "/p", PERSISTENT);
        r.add(2, "/p", RECURSIVE);
        assert_eq!(r.trigger(&ev(event::NODE_CREATED, "/p")), vec![1, 2]);
        assert_eq!(r.trigger(&ev(event::NODE_CHILDREN_CHANGED, "/p")), vec![1]);
        assert_eq!(r.trigger(&ev(event::NODE_CREATED, "/p/c/d")), vec![2]);
        assert_eq!(r.trigger(&ev(event::NODE_DELETED, "/p")), vec![1, 2]);
        assert_eq!(r.len(), 2, "persistent watches survive deletion");
    }

    #[test]
    fn removal_by_type_and_by_watcher() {
        let mut r = WatchRegistry::default();
        r.add(1, "/a", DATA | CHILD);
        r.add(1, "/b", RECURSIVE);
        r.add(2, "/a", DATA);
        assert!(r.contains(1, "/a", CHILD));
        assert!(r.remove(1, "/a", CHILD));
        assert!(!r.remove(1, "/a", CHILD), "NoWatcher the second time");
        assert!(r.contains(1, "/a", DATA));
        r.remove_watcher(1);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.trigger(&ev(event::NODE_CREATED, "/b/x")),
            Vec::<u64>::new()
        );
        assert_eq!(r.trigger(&ev(event::NODE_CREATED, "/a")), vec![2]);
    }
}
