//! Server settings: built-in defaults, ZooKeeper's zoo.cfg format (Java
//! properties), and overrides from the command line.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub client_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// Concurrent connections per client IP; 0 = unlimited.
    pub max_client_cnxns: usize,
    /// `jute.maxbuffer`: the largest request frame, in bytes.
    pub max_frame_bytes: usize,
    pub extended_types: bool,
    /// `user:base64(sha1)` whose digest auth makes a session super.
    pub super_digest: Option<String>,
    pub four_letter_whitelist: Vec<String>,
    /// How often container and TTL nodes are checked for reaping.
    pub container_check_interval_ms: u64,
    /// Connections that send no ConnectRequest within this are dropped.
    pub handshake_timeout_ms: u64,
    /// The top byte of session ids.
    pub server_id: u8,
    /// Requests one connection may have outstanding before reads pause.
    pub max_outstanding_per_connection: usize,
    /// Transactions between snapshots (`snapCount`).
    pub snap_count: u64,
    /// Snapshots kept; older ones and the log they cover are deleted
    /// (`autopurge.snapRetainCount`, at least 3).
    pub snap_retain_count: usize,
    /// Space reserved per log segment; a segment rotates when full.
    pub wal_segment_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let tick = 3000;
        ServerConfig {
            client_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2181),
            data_dir: PathBuf::from("paddock-data"),
            data_log_dir: None,
            tick_time_ms: tick,
            min_session_timeout_ms: 2 * tick,
            max_session_timeout_ms: 20 * tick,
            max_client_cnxns: 60,
            max_frame_bytes: paddock_proto::consts::DEFAULT_MAX_FRAME_BYTES,
            extended_types: false,
            super_digest: None,
            four_letter_whitelist: ["srvr", "ruok", "mntr", "isro", "envi", "conf"]
                .map(String::from)
                .to_vec(),
            container_check_interval_ms: 60_000,
            handshake_timeout_ms: 10_000,
            server_id: 1,
            max_outstanding_per_connection: 1000,
            snap_count: 100_000,
            snap_retain_count: 3,
            wal_segment_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {key}: {message}")]
    Value {
        file: String,
        key: String,
        message: String,
    },
    #[error("minSessionTimeout ({min}) must not be larger than maxSessionTimeout ({max})")]
    SessionBounds { min: u32, max: u32 },
}

/// Parses Java properties text: `key=value`, `key: value` or `key value`,
/// `#`/`!` comments, and backslash line continuations.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        let continued = line.ends_with('\\') && !line.ends_with("\\\\");
        pending.push_str(if continued {
            &line[..line.len() - 1]
        } else {
            line
        });
        if continued {
            continue;
        }
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':', ' ', '\t']).unwrap_or(entry.len());
        let key = entry[..split].trim().to_owned();
        let mut value = entry[split..].trim_start();
        if let Some(rest) = value.strip_prefix(['=', ':']) {
            value = rest.trim_start();
        }
        out.push((key, value.trim_end().to_owned()));
    }
    out
}

/// Keys ZooKeeper accepts that a standalone Paddock does not act on yet.
const IGNORED_KEYS: [&str; 11] = [
    "initLimit",
    "syncLimit",
    // Purging follows every snapshot; there is no separate schedule.
    "autopurge.purgeInterval",
    "admin.enableServer",
    "admin.serverAddress",
    "admin.serverPort",
    "admin.commandURL",
    "admin.idleTimeout",
    "standaloneEnabled",
    "reconfigEnabled",
    "electionAlg",
];

impl ServerConfig {
    /// Reads a zoo.cfg file over the defaults. Unknown keys are returned as
    /// warnings, not errors; a bad value is an error naming file and key.
    pub fn from_zoo_cfg(path: &Path) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = ServerConfig {
            // ZooKeeper binds every interface unless clientPortAddress is set.
            client_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 2181),
            ..ServerConfig::default()
        };
        let warnings = cfg.apply_properties(&path.display().to_string(), &text)?;
        Ok((cfg, warnings))
    }

    /// Applies zoo.cfg text; returns warnings for keys that are not used.
    pub fn apply_properties(&mut self, file: &str, text: &str) -> Result<Vec<String>, ConfigError> {
        let props: BTreeMap<String, String> = parse_properties(text).into_iter().collect();
        let mut warnings = Vec::new();
        let err = |key: &str, message: String| ConfigError::Value {
            file: file.to_owned(),
            key: key.to_owned(),
            message,
        };
        fn num<T: std::str::FromStr>(
            key: &str,
            v: &str,
            err: impl Fn(&str, String) -> ConfigError,
        ) -> Result<T, ConfigError> {
            v.parse()
                .map_err(|_| err(key, format!("'{v}' is not a valid number")))
        }
        let boolean = |key: &str, v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            _ => Err(err(key, format!("'{v}' is not true or false"))),
        };
        if let Some(v) = props.get("tickTime") {
            self.tick_time_ms = num("tickTime", v, err)?;
            if self.tick_time_ms == 0 {
                return Err(err("tickTime", "must be positive".into()));
            }
        }
        self.min_session_timeout_ms = 2 * self.tick_time_ms;
        self.max_session_timeout_ms = 20 * self.tick_time_ms;
        let mut port = self.client_addr.port();
        let mut ip = self.client_addr.ip();
        for (key, v) in &props {
            let key = key.as_str();
            match key {
                "tickTime" => {}
                "clientPort" => port = num(key, v, err)?,
                "clientPortAddress" => {
                    ip = v
                        .parse()
                        .map_err(|_| err(key, format!("'{v}' is not an IP address")))?
                }
                "dataDir" => self.data_dir = PathBuf::from(v),
                "dataLogDir" => self.data_log_dir = Some(PathBuf::from(v)),
                "minSessionTimeout" => self.min_session_timeout_ms = num(key, v, err)?,
                "maxSessionTimeout" => self.max_session_timeout_ms = num(key, v, err)?,
                "maxClientCnxns" => self.max_client_cnxns = num(key, v, err)?,
                "jute.maxbuffer" => {
                    self.max_frame_bytes = parse_int_maybe_hex(v)
                        .ok_or_else(|| err(key, format!("'{v}' is not a valid number")))?
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    self.extended_types = boolean(key, v)?
                }
                "superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    self.super_digest = Some(v.clone())
                }
                "4lw.commands.whitelist" => {
                    self.four_letter_whitelist = v
                        .split(',')
                        .map(|w| w.trim().to_owned())
                        .filter(|w| !w.is_empty())
                        .collect()
                }
                "znode.container.checkIntervalMs" => {
                    self.container_check_interval_ms = num(key, v, err)?
                }
                "snapCount" => self.snap_count = num::<u64>(key, v, err)?.max(1),
                "autopurge.snapRetainCount" => {
                    self.snap_retain_count = num::<usize>(key, v, err)?.max(3)
                }
                k if IGNORED_KEYS.contains(&k) => {}
                k if k.starts_with("server.") => warnings.push(format!(
                    "{file}: {k}: ensemble members are not supported yet; running standalone"
                )),
                k => warnings.push(format!("{file}: unknown key '{k}' ignored")),
            }
        }
        self.client_addr = SocketAddr::new(ip, port);
        self.validate()?;
        Ok(warnings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(ConfigError::SessionBounds {
                min: self.min_session_timeout_ms,
                max: self.max_session_timeout_ms,
            });
        }
        Ok(())
    }

    /// The negotiated session timeout for a requested one.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        let min = self.min_session_timeout_ms as i64;
        let max = self.max_session_timeout_ms as i64;
        (requested_ms as i64).clamp(min, max) as i32
    }

    pub fn four_letter_allowed(&self, word: &str) -> bool {
        self.four_letter_whitelist
            .iter()
            .any(|w| w == "*" || w == word)
    }
}

fn parse_int_maybe_hex(v: &str) -> Option<usize> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_separators_comments_and_continuations() {
        let got = parse_properties("# c\n! c\n a=1\nb : 2\nc 3\nd=x\\\n  y\ne=\n");
        let want: Vec<(String, String)> =
            [("a", "1"), ("b", "2"), ("c", "3"), ("d", "xy"), ("e", "")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn zoo_cfg_values_are_applied_and_timeouts_follow_tick_time() {
        let mut c = ServerConfig::default();
        let w = c
            .apply_properties("zoo.cfg", "tickTime=2000\nclientPort=2281\nclientPortAddress=127.0.0.2\ndataDir=/tmp/x\nmaxClientCnxns=0\njute.maxbuffer=0x1000\nfoo=bar\n")
            .unwrap();
        assert_eq!(c.client_addr, "127.0.0.2:2281".parse().unwrap());
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (4000, 40000)
        );
        assert_eq!((c.max_client_cnxns, c.max_frame_bytes), (0, 4096));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(w, vec!["zoo.cfg: unknown key 'foo' ignored".to_string()]);
        assert_eq!(c.negotiate_timeout(1), 4000);
        assert_eq!(c.negotiate_timeout(100_000), 40000);
        assert_eq!(c.negotiate_timeout(10_000), 10000);
    }

    #[test]
    fn bad_values_name_the_file_and_key() {
        let mut c = ServerConfig::default();
        let e = c.apply_properties("zoo.cfg", "tickTime=abc\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "zoo.cfg: tickTime: 'abc' is not a valid number"
        );
        let e = c
            .apply_properties(
                "zoo.cfg",
                "minSessionTimeout=5000\nmaxSessionTimeout=4000\n",
            )
            .unwrap_err();
        assert!(e.to_string().contains("must not be larger"));
    }
}
