//! `paddock status` and the shell's `endpoint status`: what each server
//! says of itself in `srvr` (mode, zxid, nodes, connections, latency; every
//! server answers it, ZooKeeper's default whitelist included) and, where
//! allowed, `mntr` (Paddock's term), the members its `conf` lists, and the
//! lag of each behind the leader. Parsing and the report are pure
//! functions; `probe` asks the servers.

use serde_json::{json, Value};

/// What one server said of itself, or why it said nothing useful.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub endpoint: String,
    /// The member id, when a membership listed this server.
    pub id: Option<u64>,
    pub seen: Result<Seen, String>,
}

/// What the report shows of one server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seen {
    pub mode: String,
    /// The leader's term (ZooKeeper's epoch), when known.
    pub term: Option<u64>,
    pub zxid: Option<u64>,
    pub nodes: u64,
    pub connections: u64,
    /// `min/avg/max` in ms.
    pub latency: String,
    pub version: String,
}

impl Seen {
    /// Reads `srvr`'s `Key: value` lines, and the term from `mntr`'s
    /// `zk_epoch` when it was answered; a server that is not serving
    /// answers `srvr` with one sentence instead, which becomes the error.
    /// ZooKeeper's zxid carries its epoch in the high 32 bits; Paddock's
    /// does not, so Paddock's term comes from `mntr` only.
    pub fn from_answers(srvr: &str, mntr: Option<&str>) -> Result<Seen, String> {
        let get = |key: &str| {
            srvr.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
                .map(str::trim)
        };
        let Some(mode) = get("Mode") else {
            let said = srvr.lines().next().unwrap_or_default().trim();
            return Err(match said {
                "" => "no answer".to_owned(),
                said => said.to_owned(),
            });
        };
        let number = |key: &str| get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let zxid =
            get("Zxid").and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
        let version = get("Zookeeper version")
            .map(|v| v.split(", built on").next().unwrap_or(v).to_owned())
            .unwrap_or_default();
        let epoch = mntr.and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("zk_epoch\t"))
                .and_then(|v| v.trim().parse().ok())
        });
        let term = match epoch {
            Some(term) => Some(term),
            None if !version.contains("paddock") => zxid.map(|z| z >> 32),
            None => None,
        };
        Ok(Seen {
            mode: mode.to_owned(),
            term,
            zxid,
            nodes: number("Node count"),
            connections: number("Connections"),
            latency: get("Latency min/avg/max").unwrap_or("-").to_owned(),
            version,
        })
    }
}

/// The members a `conf` answer lists, as (id, client endpoint): from
/// `server.N=host:peer:election[:role][;[clientHost:]clientPort]`. A
/// wildcard or missing client host means the server's own host; a member
/// without a client address (a static zoo.cfg) gets the `clientPort` of
/// the server asked, as ensembles usually share one; None if there is
/// none either.
pub fn members_from_conf(conf: &str) -> Vec<(u64, Option<String>)> {
    let own_port = conf
        .lines()
        .find_map(|l| l.strip_prefix("clientPort="))
        .map(str::trim)
        .filter(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    conf.lines()
        .filter_map(|line| {
            let (key, spec) = line.split_once('=')?;
            let id = key.strip_prefix("server.")?.parse().ok()?;
            let (servers, client) = match spec.split_once(';') {
                Some((servers, client)) => (servers, Some(client.trim())),
                None => (spec, None),
            };
            let servers = servers
                .strip_suffix(":participant")
                .or_else(|| servers.strip_suffix(":observer"))
                .unwrap_or(servers);
            let server_host = servers.rsplitn(3, ':').nth(2)?;
            let endpoint = match client.map(|c| c.rsplit_once(':')) {
                Some(Some((h, p))) if !matches!(h, "0.0.0.0" | "[::]" | "::") => Some((h, p)),
                Some(Some((_, p))) => Some((server_host, p)),
                Some(None) => client.map(|p| (server_host, p)),
                None => own_port.map(|p| (server_host, p)),
            };
            Some((id, endpoint.map(|(h, p)| format!("{h}:{p}"))))
        })
        .collect()
}

/// The id a `conf` answer gives its own server (0 when standalone).
pub fn own_id(conf: &str) -> Option<u64> {
    conf.lines()
        .find_map(|l| l.strip_prefix("serverId="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&id| id > 0)
}

/// The report over all rows: its table, its JSON, and whether all is
/// well (every server serving, one leader or one standalone server).
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    /// The rows that lead (or serve standalone).
    fn leaders(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| {
            r.seen
                .as_ref()
                .is_ok_and(|s| s.mode == "leader" || s.mode == "standalone")
        })
    }

    fn leader(&self) -> Option<&Row> {
        self.leaders().next()
    }

    /// How far a row's zxid is behind the leader's, in transactions: only
    /// within one term (zxids of different terms do not compare).
    fn lag(&self, row: &Row) -> Option<u64> {
        let leader = self.leader()?.seen.as_ref().ok()?;
        let seen = row.seen.as_ref().ok()?;
        if leader.term.is_none() || leader.term != seen.term {
            return None;
        }
        Some(leader.zxid?.saturating_sub(seen.zxid?))
    }

    /// Servers that did not answer with their state.
    pub fn down(&self) -> usize {
        self.rows.iter().filter(|r| r.seen.is_err()).count()
    }

    pub fn healthy(&self) -> bool {
        self.down() == 0 && self.leaders().count() == 1
    }

    /// One line under the table: how many serve, the leader, the term.
    pub fn summary(&self) -> String {
        let serving = self.rows.len() - self.down();
        let standalone = |r: &Row| r.seen.as_ref().is_ok_and(|s| s.mode == "standalone");
        let leader = match self.leader() {
            Some(row) if standalone(row) => "standalone".to_owned(),
            Some(Row { id: Some(id), .. }) => format!("leader {id}"),
            Some(row) => format!("leader {}", row.endpoint),
            None => "no leader".to_owned(),
        };
        let term = self
            .leader()
            .and_then(|r| r.seen.as_ref().ok())
            .and_then(|s| s.term)
            .map(|term| format!(", term {term}"))
            .unwrap_or_default();
        let verdict = if self.healthy() {
            "healthy"
        } else {
            "NOT HEALTHY"
        };
        format!(
            "{verdict}: {serving} of {} serving, {leader}{term}",
            self.rows.len()
        )
    }

    pub fn json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    let mut v = json!({"endpoint": r.endpoint, "id": r.id, "error": null});
                    match &r.seen {
                        Ok(s) => {
                            v["mode"] = json!(s.mode);
                            v["term"] = json!(s.term);
                            v["zxid"] = json!(s.zxid.map(|z| format!("0x{z:x}")));
                            v["lag"] = json!(self.lag(r));
                            v["nodes"] = json!(s.nodes);
                            v["connections"] = json!(s.connections);
                            v["latency_min_avg_max"] = json!(s.latency);
                            v["version"] = json!(s.version);
                        }
                        Err(e) => v["error"] = json!(e),
                    }
                    v
                })
                .collect(),
        )
    }

    /// The rows as an aligned table under a title line.
    pub fn table(&self) -> String {
        const TITLES: [&str; 9] = [
            "ENDPOINT",
            "MODE",
            "ZXID",
            "LAG",
            "TERM",
            "ID",
            "NODES",
            "CONNECTIONS",
            "LATENCY MIN/AVG/MAX",
        ];
        let mut lines: Vec<Vec<String>> = vec![TITLES.iter().map(|t| t.to_string()).collect()];
        for r in &self.rows {
            let id = r.id.map_or("-".to_owned(), |id| id.to_string());
            lines.push(match &r.seen {
                Ok(s) => vec![
                    r.endpoint.clone(),
                    s.mode.clone(),
                    s.zxid.map_or("-".to_owned(), |z| format!("0x{z:x}")),
                    self.lag(r).map_or("-".to_owned(), |l| l.to_string()),
                    s.term.map_or("-".to_owned(), |t| t.to_string()),
                    id,
                    s.nodes.to_string(),
                    s.connections.to_string(),
                    s.latency.clone(),
                ],
                Err(e) => vec![r.endpoint.clone(), format!("not serving: {e}")],
            });
        }
        let width = |i: usize| {
            lines
                .iter()
                .filter(|l| l.len() > i + 1)
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..TITLES.len()).map(width).collect();
        let mut out = String::new();
        for l in lines {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(i, c)| match i + 1 == l.len() {
                    true => c.clone(),
                    false => format!("{c:<w$}", w = widths[i]),
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// Asks each server for `srvr` (and `mntr`, for the term); with
/// `discover`, first asks the servers given for `conf` and adds the
/// members it lists that were not given (matched by id, then endpoint).
pub async fn probe(servers: &[String], discover: bool) -> Report {
    let mut targets: Vec<(Option<u64>, Option<String>)> =
        servers.iter().map(|s| (None, Some(s.clone()))).collect();
    if discover {
        let mut confs = Vec::new();
        for (target, server) in targets.iter_mut().zip(servers) {
            if let Ok(conf) = crate::four_letter(server, "conf").await {
                target.0 = own_id(&conf);
                confs.push(conf);
            }
        }
        for (id, endpoint) in confs.iter().flat_map(|c| members_from_conf(c)) {
            if targets.iter().any(|(i, _)| *i == Some(id)) {
                continue;
            }
            match targets
                .iter_mut()
                .find(|(i, e)| i.is_none() && e.is_some() && *e == endpoint)
            {
                Some(t) => t.0 = Some(id),
                None => targets.push((Some(id), endpoint)),
            }
        }
        targets.sort_by_key(|(id, _)| id.unwrap_or(u64::MAX));
    }
    let asks = targets.into_iter().map(|(id, endpoint)| async move {
        let Some(endpoint) = endpoint else {
            return Row {
                endpoint: format!("server.{}", id.unwrap_or_default()),
                id,
                seen: Err("no client address in the configuration".to_owned()),
            };
        };
        let seen = match crate::four_letter(&endpoint, "srvr").await {
            Ok(srvr) => {
                let mntr = crate::four_letter(&endpoint, "mntr").await.ok();
                Seen::from_answers(&srvr, mntr.as_deref())
            }
            Err(e) => Err(e.to_string()),
        };
        Row { endpoint, id, seen }
    });
    Report {
        rows: futures::future::join_all(asks).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(mode: &str, zxid: u64) -> Result<Seen, String> {
        Ok(Seen {
            mode: mode.into(),
            term: Some(3),
            zxid: Some(zxid),
            latency: "0/0.1/2".into(),
            ..Seen::default()
        })
    }

    #[test]
    fn srvr_gives_the_state_mntr_the_term_and_a_refusal_the_reason() {
        let srvr = "Zookeeper version: 3.8.0-paddock-0.1.0-abc, built on 2026-12-07 22:58 UTC\nLatency min/avg/max: 0/0.25/7\nReceived: 9\nSent: 9\nConnections: 2\nOutstanding: 0\nZxid: 0x1a\nMode: follower\nNode count: 12\n";
        let s = Seen::from_answers(srvr, Some("zk_server_state\tfollower\nzk_epoch\t4\n")).unwrap();
        assert_eq!(
            (s.mode.as_str(), s.term, s.zxid, s.nodes, s.connections),
            ("follower", Some(4), Some(0x1a), 12, 2)
        );
        assert_eq!(
            (s.latency.as_str(), s.version.as_str()),
            ("0/0.25/7", "3.8.0-paddock-0.1.0-abc")
        );
        // Paddock's zxid does not carry the term: unknown without mntr.
        assert_eq!(Seen::from_answers(srvr, None).unwrap().term, None);
        // ZooKeeper's does: its high 32 bits.
        let zk = "Zookeeper version: 3.8.0-5a02a05, built on 2022-02-25 08:49 UTC\nZxid: 0x300000007\nMode: leader\nNode count: 5\n";
        let s = Seen::from_answers(
            zk,
            Some("mntr is not executed because it is not in the whitelist.\n"),
        )
        .unwrap();
        assert_eq!((s.term, s.zxid), (Some(3), Some(0x3_0000_0007)));
        assert_eq!(
            Seen::from_answers(
                "This ZooKeeper instance is not currently serving requests\n",
                None
            ),
            Err("This ZooKeeper instance is not currently serving requests".into())
        );
        assert_eq!(Seen::from_answers("", None), Err("no answer".into()));
    }

    #[test]
    fn conf_lists_each_members_client_endpoint() {
        let conf = "clientPort=2181\nserverId=2\nserver.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\nserver.2=10.0.0.2:2888:3888;10.0.0.9:2182\nserver.3=zk3:2888:3888:observer;2183\nserver.4=[::1]:2888:3888\nversion=100000000\n";
        let some = |e: &str| Some(e.to_owned());
        assert_eq!(
            members_from_conf(conf),
            [
                (1, some("10.0.0.1:2181")),
                (2, some("10.0.0.9:2182")),
                (3, some("zk3:2183")),
                // A static zoo.cfg line: the asked server's client port.
                (4, some("[::1]:2181")),
            ]
        );
        assert_eq!(
            members_from_conf("server.1=h:2888:3888\n"),
            [(1, None)],
            "no client port anywhere"
        );
        assert_eq!(own_id(conf), Some(2));
        assert_eq!(own_id("serverId=0\n"), None);
    }

    #[test]
    fn the_report_shows_lag_behind_the_leader_and_says_when_one_is_down() {
        let report = Report {
            rows: vec![
                Row {
                    endpoint: "h:1".into(),
                    id: Some(1),
                    seen: seen("leader", 0x20),
                },
                Row {
                    endpoint: "h:2".into(),
                    id: Some(2),
                    seen: seen("follower", 0x1d),
                },
                Row {
                    endpoint: "h:3".into(),
                    id: Some(3),
                    seen: Err("Connection refused (os error 111)".into()),
                },
            ],
        };
        assert_eq!(
            report.table(),
            "ENDPOINT  MODE      ZXID  LAG  TERM  ID  NODES  CONNECTIONS  LATENCY MIN/AVG/MAX\n\
             h:1       leader    0x20  0    3     1   0      0            0/0.1/2\n\
             h:2       follower  0x1d  3    3     2   0      0            0/0.1/2\n\
             h:3       not serving: Connection refused (os error 111)\n"
        );
        assert_eq!(
            report.summary(),
            "NOT HEALTHY: 2 of 3 serving, leader 1, term 3"
        );
        assert!(!report.healthy());
        let json = report.json();
        assert_eq!(json[1]["lag"], 3);
        // Zxids of different terms do not compare.
        let mut other_term = report.rows[1].clone();
        if let Ok(s) = &mut other_term.seen {
            s.term = Some(2);
        }
        assert_eq!(report.lag(&other_term), None);
        assert_eq!(json[2]["error"], "Connection refused (os error 111)");
        let whole = Report {
            rows: report.rows[..2].to_vec(),
        };
        assert!(whole.healthy());
        assert_eq!(whole.summary(), "healthy: 2 of 2 serving, leader 1, term 3");
        let leaderless = Report {
            rows: vec![report.rows[1].clone()],
        };
        assert!(!leaderless.healthy());
        assert_eq!(
            leaderless.summary(),
            "NOT HEALTHY: 1 of 1 serving, no leader"
        );
        let alone = Report {
            rows: vec![Row {
                endpoint: "h:1".into(),
                id: None,
                seen: seen("standalone", 7),
            }],
        };
        assert_eq!(
            alone.summary(),
            "healthy: 1 of 1 serving, standalone, term 3"
        );
    }
}
