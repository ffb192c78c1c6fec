//! The watch registry: which watcher (connection) watches which path in
//! which mode, and who is told about a change. Pure bookkeeping; delivering
//! notifications is the server's job.

use crate::path;
use crate::txn::Event;
use paddock_proto::consts::event;
use std::collections::HashMap;
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

#[derive(Default)]
pub struct WatchRegistry {
    /// path → (watcher, mode bits); a watcher appears once per path.
    paths: HashMap<Arc<str>, Vec<(WatcherId, u8)>>,
    /// watcher → the paths it has entries on.
    by_watcher: HashMap<WatcherId, Vec<Arc<str>>>,
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
        match entries.iter_mut().find(|(w, _)| *w == watcher) {
            Some((_, have)) => {
                if bits & RECURSIVE != 0 && *have & RECURSIVE == 0 {
                    self.recursive += 1;
                }
                *have |= bits;
            }
            None => {
                entries.push((watcher, bits));
                if bits & RECURSIVE != 0 {
                    self.recursive += 1;
                }
                self.by_watcher.entry(watcher).or_default().push(key);
            }
        }
    }

    /// Whether `watcher` has any of `bits` on `path`.
    pub fn contains(&self, watcher: WatcherId, path: &str, bits: u8) -> bool {
        self.paths
            .get(path)
            .and_then(|e| e.iter().find(|(w, _)| *w == watcher))
            .is_some_and(|(_, have)| have & bits != 0)
    }

    /// Removes `bits` from `watcher`'s watch on `path`; false if it had none
    /// of them.
    pub fn remove(&mut self, watcher: WatcherId, path: &str, bits: u8) -> bool {
        let Some(entries) = self.paths.get_mut(path) else {
            return false;
        };
        let Some(i) = entries.iter().position(|(w, _)| *w == watcher) else {
            return false;
        };
        let have = entries[i].1;
        if have & bits == 0 {
            return false;
        }
        if have & bits & RECURSIVE != 0 {
            self.recursive -= 1;
        }
        entries[i].1 &= !bits;
        if entries[i].1 == 0 {
            entries.swap_remove(i);
            if entries.is_empty() {
                self.paths.remove(path);
            }
            if let Some(list) = self.by_watcher.get_mut(&watcher) {
                if let Some(j) = list.iter().position(|p| p.as_ref() == path) {
                    list.swap_remove(j);
                }
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
                if let Some(i) = entries.iter().position(|(w, _)| *w == watcher) {
                    if entries[i].1 & RECURSIVE != 0 {
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
            for (w, bits) in entries.iter_mut() {
                let hit = *bits & fires != 0 || (recursive_too && *bits & RECURSIVE != 0);
                if hit {
                    out.push(*w);
                    *bits &= !one_shot;
                }
            }
            let emptied: Vec<WatcherId> = entries
                .iter()
                .filter(|(_, b)| *b == 0)
                .map(|(w, _)| *w)
                .collect();
            entries.retain(|(_, b)| *b != 0);
            if entries.is_empty() {
                self.paths.remove(ev.path.as_str());
            }
            for w in emptied {
                if let Some(list) = self.by_watcher.get_mut(&w) {
                    list.retain(|p| p.as_ref() != ev.path);
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
                for (w, bits) in self.paths.get(p).into_iter().flatten() {
                    if *bits & RECURSIVE != 0 && !out.contains(w) {
                        out.push(*w);
                    }
                }
            }
        }
        out
    }

    /// Number of (path, watcher) entries.
    pub fn len(&self) -> usize {
        self.paths.values().map(Vec::len).sum()
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
