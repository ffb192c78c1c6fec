//! A client's `reconfig` request, read as ZooKeeper reads it: either the
//! whole new membership (`newMembers`) or servers joining
//! (`server.N=spec`, comma separated) and ids leaving (comma separated).

use crate::config::ServerLine;
use paddock_proto::ReconfigRequest;
use paddock_replication::{Change, Member, Reconfig};
use std::collections::BTreeSet;

/// The reconfig `req` asks for. A request that cannot be read becomes
/// `Change::Unreadable`, refused (BADARGUMENTS) by the leader in
/// ZooKeeper's order, after the version check. The new membership must
/// keep `min_voters` voters (ZooKeeper: 2 while standaloneEnabled, else
/// 1); `authorized`: the caller may WRITE /zookeeper/config.
pub fn parse(req: &ReconfigRequest, min_voters: usize, authorized: bool) -> Reconfig {
    Reconfig {
        change: change(req).unwrap_or_else(Change::Unreadable),
        expected_version: u64::try_from(req.cur_config_id).ok(),
        min_voters,
        authorized,
    }
}

fn change(req: &ReconfigRequest) -> Result<Change, String> {
    if !req.new_members.trim().is_empty() {
        return Ok(Change::Replace(servers(&req.new_members)?));
    }
    let leaving = items(&req.leaving_servers)
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| format!("'{id}' is not a server id"))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(Change::Incremental {
        joining: servers(&req.joining_servers)?,
        leaving,
    })
}

fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `server.N=host:peerPort:electionPort[:role];[clientHost:]clientPort`
/// entries; other keys (a `version=` line of a whole config) are skipped.
fn servers(list: &str) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    for item in items(list) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("'{item}' is not server.N=spec"))?;
        let Some(id) = key.trim().strip_prefix("server.") else {
            continue;
        };
        let id = id
            .parse::<u64>()
            .map_err(|_| format!("'{key}' has no server id"))?;
        let line = ServerLine::parse(id, value)?;
        if line.client.is_none() {
            return Err(format!(
                "server.{id} has no client port: each server needs its three ports"
            ));
        }
        out.push(Member {
            id,
            spec: line.spec(),
            voter: !line.observer,
        });
    }
    Ok(out)
}

/// The `server.N=` lines (each ending in a newline) `/zookeeper/config`
/// gets for `members`, in the order ZooKeeper 3.8's leader writes them.
/// That order is a Java `HashMap`'s: ZooKeeper copies the current
/// membership into a new map sized for it, takes out the servers leaving
/// and puts in the ones joining (an incremental reconfig), or fills a
/// fresh map (a whole new membership, and the first one). `shown` is what
/// the node holds now, `last` the change that led here if known.
pub fn config_lines(shown: &[u8], members: &[Member], last: Option<&Change>) -> String {
    let current: Vec<u64> = shown
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?;
            line.strip_prefix("server.")?
                .split_once('=')?
                .0
                .parse()
                .ok()
        })
        .collect();
    let wanted: BTreeSet<u64> = members.iter().map(|m| m.id).collect();
    let set = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<u64>>();
    let incremental = match last {
        Some(Change::Incremental { joining, leaving }) => {
            let mut map = JavaHashMap::copy_of(&current);
            for id in leaving {
                map.remove(*id);
            }
            for m in joining {
                map.remove(m.id);
                map.insert(m.id);
            }
            Some(map.order()).filter(|order| set(order) == wanted)
        }
        _ => None,
    };
    let order = match incremental {
        Some(order) => order,
        None if set(&current) == wanted && !matches!(last, Some(Change::Replace(_))) => current,
        None => JavaHashMap::fresh(&wanted).order(),
    };
    let mut text = String::new();
    for id in order {
        if let Some(m) = members.iter().find(|m| m.id == id) {
            text.push_str(&m.line());
            text.push('\n');
        }
    }
    text
}

/// The iteration order of a `java.util.HashMap<Long, _>`: buckets by the
/// key's spread hash, each in insertion order; the table doubles when it
/// holds more than three quarters of its size.
struct JavaHashMap {
    table: Vec<Vec<u64>>,
    len: usize,
}

impl JavaHashMap {
    /// An empty map that allocates its default 16 buckets at the first
    /// insert, filled with `ids` in order.
    fn fresh(ids: &BTreeSet<u64>) -> JavaHashMap {
        let mut map = JavaHashMap {
            table: vec![Vec::new(); 16],
            len: 0,
        };
        for id in ids {
            map.insert(*id);
        }
        map
    }

    /// `new HashMap<>(other)`: sized for `other`'s entries (the smallest
    /// power of two at least len / 0.75 + 1), filled in its order.
    fn copy_of(ids: &[u64]) -> JavaHashMap {
        let size = if ids.is_empty() {
            16
        } else {
            ((ids.len() as f32 / 0.75 + 1.0) as usize).next_power_of_two()
        };
        let mut map = JavaHashMap {
            table: vec![Vec::new(); size],
            len: 0,
        };
        for id in ids {
            map.insert(*id);
        }
        map
    }

    fn bucket(&self, id: u64) -> usize {
        let h = (id ^ (id >> 32)) as u32;
        (h ^ (h >> 16)) as usize & (self.table.len() - 1)
    }

    fn insert(&mut self, id: u64) {
        let b = self.bucket(id);
        if self.table[b].contains(&id) {
            return;
        }
        self.table[b].push(id);
        self.len += 1;
        if self.len > self.table.len() * 3 / 4 {
            let order = self.order();
            self.table = vec![Vec::new(); self.table.len() * 2];
            for id in order {
                let b = self.bucket(id);
                self.table[b].push(id);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let b = self.bucket(id);
        let before = self.table[b].len();
        self.table[b].retain(|x| *x != id);
        self.len -= before - self.table[b].len();
    }

    fn order(&self) -> Vec<u64> {
        self.table.iter().flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(joining: &str, leaving: &str, members: &str, version: i64) -> ReconfigRequest {
        ReconfigRequest {
            joining_servers: joining.into(),
            leaving_servers: leaving.into(),
            new_members: members.into(),
            cur_config_id: version,
        }
    }

    #[test]
    fn incremental_requests_name_joiners_and_leavers() {
        let r = parse(
            &request(
                "server.4=127.0.0.1:2004:3004;2184,server.5=h:1:2:observer;127.0.0.2:2185",
                "2, 3",
                "",
                -1,
            ),
            2,
            true,
        );
        assert_eq!(r.expected_version, None);
        let Change::Incremental { joining, leaving } = r.change else {
            panic!("{:?}", r.change);
        };
        assert_eq!(leaving, vec![2, 3]);
        assert_eq!(
            joining[0].spec,
            "127.0.0.1:2004:3004:participant;0.0.0.0:2184"
        );
        assert!(joining[0].voter);
        assert_eq!(joining[1].spec, "h:1:2:observer;127.0.0.2:2185");
        assert!(!joining[1].voter);
    }

    #[test]
    fn a_whole_membership_replaces_and_the_version_is_kept() {
        let r = parse(
            &request(
                "",
                "",
                "server.1=a:1:2;3\nserver.2=b:1:2;3\nversion=100000003",
                0x1_0000_0003,
            ),
            2,
            false,
        );
        assert!(!r.authorized);
        assert_eq!(r.expected_version, Some(0x1_0000_0003));
        assert!(matches!(r.change, Change::Replace(ref m) if m.len() == 2));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let err = |j, l| match parse(&request(j, l, "", -1), 2, true).change {
            Change::Unreadable(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(err("", "two").contains("not a server id"));
        assert!(err("server.4=h:1:2", "").contains("no client port"));
        assert!(err("server.x=h:1:2;3", "").contains("no server id"));
        assert!(err("h:1:2;3", "").contains("server.N=spec"));
        assert!(err("server.4=h:1", "").contains("host:peerPort"));
    }

    fn members(ids: &[u64]) -> Vec<Member> {
        ids.iter()
            .map(|id| Member {
                id: *id,
                spec: format!("h:{id}:{id}:participant;h:{id}"),
                voter: true,
            })
            .collect()
    }

    fn order(text: &str) -> Vec<u64> {
        text.lines()
            .map(|l| l["server.".len()..l.find('=').unwrap()].parse().unwrap())
            .collect()
    }

    /// What ZooKeeper 3.8.0 wrote in the same steps (tests/python
    /// test_reconfig.py shows it side by side).
    #[test]
    fn servers_are_listed_in_zookeepers_order() {
        let step = |shown: &[u64], now: &[u64], change: Change| {
            let shown: String = members(shown)
                .iter()
                .map(|m| format!("{}\n", m.line()))
                .collect();
            order(&config_lines(
                shown.as_bytes(),
                &members(now),
                Some(&change),
            ))
        };
        let leave = |ids: &[u64]| Change::Incremental {
            joining: vec![],
            leaving: ids.to_vec(),
        };
        let join = |ids: &[u64]| Change::Incremental {
            joining: members(ids),
            leaving: vec![],
        };
        assert_eq!(step(&[1, 2, 3], &[2, 3], leave(&[1])), [2, 3]);
        assert_eq!(step(&[2, 3], &[2, 3, 4], join(&[4])), [4, 2, 3]);
        assert_eq!(step(&[4, 2, 3], &[1, 2, 3, 4], join(&[1])), [1, 2, 3, 4]);
        // Ids in one bucket keep the order they are listed in.
        assert_eq!(step(&[9, 1], &[9, 1, 2], join(&[2])), [9, 1, 2]);
        assert_eq!(step(&[1, 9], &[1, 9, 2], join(&[2])), [1, 9, 2]);
        let all = Change::Replace(members(&[1, 2, 3]));
        assert_eq!(step(&[1, 2, 3, 4], &[1, 2, 3], all), [1, 2, 3]);
        // A fresh map lists ids by their bucket of 16.
        assert_eq!(
            order(&config_lines(b"", &members(&[17, 2, 16]), None)),
            [16, 17, 2]
        );
        // The same servers keep their order.
        let shown = "server.4=x\nserver.2=y\nversion=1";
        assert_eq!(
            order(&config_lines(shown.as_bytes(), &members(&[2, 4]), None)),
            [4, 2]
        );
    }
}
