//! A client's `reconfig` request, read as ZooKeeper reads it: either the
//! whole new membership (`newMembers`) or servers joining
//! (`server.N=spec`, comma separated) and ids leaving (comma separated).

use crate::config::ServerLine;
use paddock_proto::ReconfigRequest;
use paddock_replication::{Change, Member, Reconfig};

/// The change asked for, or why it cannot be read (BADARGUMENTS). The new
/// membership must keep `min_voters` voters (ZooKeeper: 2 while
/// standaloneEnabled, else 1).
pub fn parse(req: &ReconfigRequest, min_voters: usize) -> Result<Reconfig, String> {
    let change = if !req.new_members.trim().is_empty() {
        Change::Replace(servers(&req.new_members)?)
    } else {
        let leaving = items(&req.leaving_servers)
            .map(|id| {
                id.parse::<u64>()
                    .map_err(|_| format!("'{id}' is not a server id"))
            })
            .collect::<Result<Vec<u64>, String>>()?;
        Change::Incremental {
            joining: servers(&req.joining_servers)?,
            leaving,
        }
    };
    Ok(Reconfig {
        change,
        expected_version: u64::try_from(req.cur_config_id).ok(),
        min_voters,
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
        )
        .unwrap();
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
        )
        .unwrap();
        assert_eq!(r.expected_version, Some(0x1_0000_0003));
        assert!(matches!(r.change, Change::Replace(ref m) if m.len() == 2));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let err = |j, l| parse(&request(j, l, "", -1), 2).unwrap_err();
        assert!(err("", "two").contains("not a server id"));
        assert!(err("server.4=h:1:2", "").contains("no client port"));
        assert!(err("server.x=h:1:2;3", "").contains("no server id"));
        assert!(err("h:1:2;3", "").contains("server.N=spec"));
        assert!(err("server.4=h:1", "").contains("host:peerPort"));
    }
}
