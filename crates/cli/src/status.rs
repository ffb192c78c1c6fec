//! `paddock status` and the shell's `endpoint status`: what each server
//! says of itself in `mntr` (mode, term, zxid, nodes, connections,
//! latency), the members its `conf` lists, and the lag of each behind the
//! leader. Parsing and the report are pure; `probe` does the asking.

use serde_json::{json, Value};

/// What one server said of itself, or why it said nothing useful.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub endpoint: String,
    /// The member id, when a membership listed this server.
    pub id: Option<u64>,
    pub seen: Result<Seen, String>,
}

/// The fields of `mntr` the report shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seen {
    pub mode: String,
    pub term: u64,
    pub zxid: u64,
    pub nodes: u64,
    pub connections: u64,
    /// `min/avg/max` in ms.
    pub latency: String,
    pub version: String,
}

impl Seen {
    /// Reads `mntr`'s `zk_key<TAB>value` lines; a server that is not
    /// serving answers with one sentence instead, which becomes the error.
    pub fn from_mntr(text: &str) -> Result<Seen, String> {
        let get = |key: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix("zk_")
                    .and_then(|l| l.strip_prefix(key))
                    .and_then(|v| v.strip_prefix('\t'))
                    .map(str::trim)
            })
        };
        let Some(mode) = get("server_state") else {
            let said = text.lines().next().unwrap_or_default().trim();
            return Err(match said {
                "" => "no answer".to_owned(),
                said => said.to_owned(),
            });
        };
        let number = |key: &str| get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let zxid = get("last_zxid")
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let latency = |key: &str| get(key).unwrap_or("-").to_owned();
        Ok(Seen {
            mode: mode.to_owned(),
            term: number("epoch"),
            zxid,
            nodes: number("znode_count"),
            connections: number("num_alive_connections"),
            latency: format!(
                "{}/{}/{}",
                latency("min_latency"),
                latency("avg_latency"),
                latency("max_latency")
            ),
            version: get("version").unwrap_or_default().to_owned(),
        })
    }
}

/// The members a `conf` answer lists, as (id, client endpoint): from
/// `server.N=host:peer:election[:role];[clientHost:]clientPort`. A
/// wildcard or missing client host means the server's own host.
pub fn members_from_conf(conf: &str) -> Vec<(u64, String)> {
    conf.lines()
        .filter_map(|line| {
            let (key, spec) = line.split_once('=')?;
            let id = key.strip_prefix("server.")?.parse().ok()?;
            let (servers, client) = spec.split_once(';')?;
            let servers = servers
                .strip_suffix(":participant")
                .or_else(|| servers.strip_suffix(":observer"))
                .unwrap_or(servers);
            let server_host = servers.rsplitn(3, ':').nth(2)?;
            let (host, port) = match client.rsplit_once(':') {
                Some((h, p)) if !matches!(h, "0.0.0.0" | "[::]" | "::") => (h, p),
                Some((_, p)) => (server_host, p),
                None => (server_host, client),
            };
            Some((id, format!("{host}:{}", port.trim())))
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
    fn leader(&self) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.seen
                .as_ref()
                .is_ok_and(|s| s.mode == "leader" || s.mode == "standalone")
        })
    }

    /// How far a row's zxid is behind the leader's, in transactions.
    fn lag(&self, row: &Row) -> Option<u64> {
        let leader = self.leader()?.seen.as_ref().ok()?;
        let seen = row.seen.as_ref().ok()?;
        Some(leader.zxid.saturating_sub(seen.zxid))
    }

    /// Servers that did not answer with their state.
    pub fn down(&self) -> usize {
        self.rows.iter().filter(|r| r.seen.is_err()).count()
    }

    pub fn healthy(&self) -> bool {
        let leaders = self
            .rows
            .iter()
            .filter(|r| {
                r.seen
                    .as_ref()
                    .is_ok_and(|s| s.mode == "leader" || s.mode == "standalone")
            })
            .count();
        self.down() == 0 && leaders == 1
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
            .map(|s| format!(", term {}", s.term))
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
                            v["zxid"] = json!(format!("0x{:x}", s.zxid));
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
                    format!("0x{:x}", s.zxid),
                    self.lag(r).map_or("-".to_owned(), |l| l.to_string()),
                    s.term.to_string(),
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

/// Asks each server for `mntr`; with `discover`, first asks the servers
/// for `conf` and adds the members it lists that were not given.
pub async fn probe(servers: &[String], discover: bool) -> Report {
    let mut targets: Vec<(Option<u64>, String)> =
        servers.iter().map(|s| (None, s.clone())).collect();
    if discover {
        for server in servers {
            let Ok(conf) = crate::four_letter(server, "conf").await else {
                continue;
            };
            if let Some(t) = targets.iter_mut().find(|(_, e)| e == server) {
                t.0 = own_id(&conf);
            }
            for (id, endpoint) in members_from_conf(&conf) {
                match targets
                    .iter_mut()
                    .find(|(i, e)| *i == Some(id) || *e == endpoint)
                {
                    Some(t) => t.0 = Some(id),
                    None => targets.push((Some(id), endpoint)),
                }
            }
        }
        targets.sort_by_key(|(id, _)| id.unwrap_or(u64::MAX));
    }
    let asks = targets.into_iter().map(|(id, endpoint)| async move {
        let seen = match crate::four_letter(&endpoint, "mntr").await {
            Ok(text) => Seen::from_mntr(&text),
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
            term: 3,
            zxid,
            latency: "0/0.1/2".into(),
            ..Seen::default()
        })
    }

    #[test]
    fn mntr_gives_the_state_and_a_refusal_gives_the_reason() {
        let text = "zk_version\t3.8.0-paddock\nzk_server_state\tfollower\nzk_epoch\t4\nzk_min_latency\t0\nzk_avg_latency\t0.25\nzk_max_latency\t7\nzk_num_alive_connections\t2\nzk_znode_count\t12\nzk_last_zxid\t0x1a\n";
        let s = Seen::from_mntr(text).unwrap();
        assert_eq!(
            (s.mode.as_str(), s.term, s.zxid, s.nodes, s.connections),
            ("follower", 4, 0x1a, 12, 2)
        );
        assert_eq!(s.latency, "0/0.25/7");
        assert_eq!(
            Seen::from_mntr("This ZooKeeper instance is not currently serving requests\n"),
            Err("This ZooKeeper instance is not currently serving requests".into())
        );
        assert_eq!(Seen::from_mntr(""), Err("no answer".into()));
    }

    #[test]
    fn conf_lists_each_members_client_endpoint() {
        let conf = "clientPort=2181\nserverId=2\nserver.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\nserver.2=10.0.0.2:2888:3888;10.0.0.9:2182\nserver.3=zk3:2888:3888:observer;2183\nversion=100000000\n";
        assert_eq!(
            members_from_conf(conf),
            [
                (1, "10.0.0.1:2181".to_owned()),
                (2, "10.0.0.9:2182".to_owned()),
                (3, "zk3:2183".to_owned())
            ]
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
