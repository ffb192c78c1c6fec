//! Server settings: built-in defaults, ZooKeeper's zoo.cfg format (Java
//! properties), and overrides from the command line.

use paddock_tls::TlsSettings;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
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
    /// `maxCnxns`: client connections in all; 0 = unlimited.
    pub max_cnxns: usize,
    /// `globalOutstandingLimit`: requests outstanding on all connections
    /// together before every connection stops reading (backpressure).
    pub global_outstanding_limit: usize,
    /// Transactions between snapshots (`snapCount`).
    pub snap_count: u64,
    /// Snapshots kept; older ones and the log they cover are deleted
    /// (`autopurge.snapRetainCount`, at least 3).
    pub snap_retain_count: usize,
    /// Space reserved per log segment; a segment rotates when full.
    pub wal_segment_bytes: u64,
    /// The other servers, when this one is part of an ensemble.
    pub ensemble: Option<EnsembleConfig>,
    /// `reconfigEnabled`: whether `reconfig` may change the membership.
    pub reconfig_enabled: bool,
    /// `readonlymode.enabled` (ZooKeeper's `-Dreadonlymode.enabled`): a
    /// member cut off from the quorum keeps serving reads to clients that
    /// asked for read-only sessions.
    pub read_only_mode: bool,
    /// The admin HTTP server (`admin.enableServer`, `admin.serverAddress`,
    /// `admin.serverPort`); off unless asked for.
    pub admin_addr: Option<SocketAddr>,
    /// Where admin commands live (`admin.commandURL`).
    pub admin_command_url: String,
    /// `paddock.quorum.secretFile`: a file holding the secret every peer
    /// connection of the ensemble proves (docs/security.md).
    pub quorum_secret_file: Option<PathBuf>,
    /// `admin.sensitiveCommands`: whether the admin commands that change
    /// the server or show its sessions answer (off: 403).
    pub admin_sensitive_commands: bool,
    /// A Prometheus `/metrics` listener (`metricsProvider.className`
    /// naming the Prometheus provider, `metricsProvider.httpHost/httpPort`).
    pub metrics_addr: Option<SocketAddr>,
    /// The log filter (`paddock.logLevel`, e.g. `info` or `debug`);
    /// RUST_LOG takes precedence.
    pub log_level: Option<String>,
    /// Set this server's files aside and copy the state from the rest of
    /// the ensemble (`paddock server --rebuild`); not a zoo.cfg key.
    pub rebuild: bool,
    /// Whether `client_addr` is served: not when zoo.cfg sets
    /// `secureClientPort` and no `clientPort` (a TLS-only server).
    pub plain_client_port: bool,
    /// `secureClientPort` (on `secureClientPortAddress`): TLS clients.
    pub secure_client_addr: Option<SocketAddr>,
    /// `ssl.*`: the secure client port's TLS settings.
    pub client_tls: TlsSettings,
    /// `sslQuorum`: mutual TLS on every peer connection, with
    /// `quorum_tls` (`ssl.quorum.*`).
    pub ssl_quorum: bool,
    pub quorum_tls: TlsSettings,
    /// `X509AuthenticationProvider.superUser`: the certificate subject
    /// that is also `super`.
    pub x509_super_user: Option<String>,
    /// ZooKeeper's SASL provider is configured (`authProvider.N` naming
    /// SASLAuthenticationProvider): ACLs may name `sasl` ids.
    pub sasl_provider: bool,
    /// The DIGEST-MD5 users (`user_NAME="password"`) of the JAAS file's
    /// server section (`java.security.auth.login.config`,
    /// `sasl.serverconfig`); None: SASL is off.
    pub sasl_users: Option<BTreeMap<String, String>>,
    /// `superUser` (and `superUser.*`): SASL users that are also `super`.
    pub sasl_super_users: Vec<String>,
}

/// The `server.N` lines of zoo.cfg and this server's place among them.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleConfig {
    pub members: Vec<ServerLine>,
    /// Where this server listens for its peers (its own line's peer port).
    pub peer_addr: SocketAddr,
    /// `standaloneEnabled`: a reconfig must then keep two voters.
    pub standalone_enabled: bool,
}

/// One `server.N=host:peerPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub id: u64,
    pub host: String,
    pub peer_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// `host:port` clients connect to, when the line gives it.
    pub client: Option<String>,
}

impl ServerLine {
    /// Parses the value of a `server.N` key.
    pub fn parse(id: u64, value: &str) -> Result<ServerLine, String> {
        let (servers, client) = match value.split_once(';') {
            Some((s, c)) => (s.trim(), Some(c.trim())),
            None => (value.trim(), None),
        };
        let parts: Vec<&str> = servers.split(':').collect();
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("'{p}' is not a port number"))
        };
        let (host, peer_port, election_port, role) = match parts.as_slice() {
            [host, peer, election] => (host, port(peer)?, port(election)?, None),
            [host, peer, election, role] => (host, port(peer)?, port(election)?, Some(*role)),
            _ => {
                return Err(format!(
                "'{value}' is not host:peerPort:electionPort[:participant|observer][;clientPort]"
            ))
            }
        };
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        let observer = match role {
            None | Some("participant") => false,
            Some("observer") => true,
            Some(other) => return Err(format!("'{other}' is neither participant nor observer")),
        };
        let client = match client {
            None | Some("") => None,
            Some(c) => Some(match c.rsplit_once(':') {
                Some((h, p)) => format!("{h}:{}", port(p)?),
                None => format!("0.0.0.0:{}", port(c)?),
            }),
        };
        Ok(ServerLine {
            id,
            host: host.to_string(),
            peer_port,
            election_port,
            observer,
            client,
        })
    }

    /// The line as ZooKeeper writes it in /zookeeper/config.
    pub fn spec(&self) -> String {
        let role = if self.observer {
            "observer"
        } else {
            "participant"
        };
        let mut s = format!(
            "{}:{}:{}:{role}",
            self.host, self.peer_port, self.election_port
        );
        if let Some(c) = &self.client {
            s.push(';');
            s.push_str(c);
        }
        s
    }
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
            max_cnxns: 0,
            global_outstanding_limit: 1000,
            snap_count: 100_000,
            snap_retain_count: 3,
            wal_segment_bytes: 64 << 20,
            ensemble: None,
            reconfig_enabled: false,
            read_only_mode: false,
            admin_addr: None,
            admin_command_url: "/commands".to_owned(),
            admin_sensitive_commands: false,
            quorum_secret_file: None,
            metrics_addr: None,
            log_level: None,
            rebuild: false,
            plain_client_port: true,
            secure_client_addr: None,
            client_tls: TlsSettings::default(),
            ssl_quorum: false,
            quorum_tls: TlsSettings::default(),
            x509_super_user: None,
            sasl_provider: false,
            sasl_users: None,
            sasl_super_users: Vec::new(),
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
    #[error("{0}")]
    Ensemble(String),
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

/// What `apply_properties` found besides plain settings.
#[derive(Debug, Default)]
pub struct Properties {
    pub warnings: Vec<String>,
    pub servers: Vec<ServerLine>,
    pub standalone_enabled: bool,
    pub client_port_given: bool,
}

/// Java system properties that only the JVM or ZooKeeper's logging
/// read: passed over quietly.
const JVM_ONLY: [&str; 14] = [
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "log4j",
    "logback.",
    "file.encoding",
    "user.",
    "networkaddress.",
    "zookeeper.log.",
    "zookeeper.root.logger",
    "zookeeper.tracelog.",
    "zookeeper.jmx.log4j.disable",
];

/// ZooKeeper's Java system properties (`name=value` each, as given to
/// `-D`) as zoo.cfg keys: `zookeeper.X` is zoo.cfg's `X` (ZooKeeper makes
/// each zoo.cfg key it does not know that property), any other name is
/// taken as it is, and JVM-only ones are dropped. A define without `=`
/// is an error, as `java` would not take it either.
pub fn system_properties(defines: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut props = BTreeMap::new();
    for define in defines {
        let (name, value) = define.split_once('=').ok_or_else(|| ConfigError::Value {
            file: "-D".into(),
            key: define.clone(),
            message: "a system property is -Dname=value".into(),
        })?;
        if name != JAAS_FILE && JVM_ONLY.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let key = match name.strip_prefix("zookeeper.") {
            Some(key) if !FULL_NAMES.contains(&name) => key,
            _ => name,
        };
        props.insert(key.to_owned(), value.to_owned());
    }
    Ok(props)
}

/// The JAAS file ZooKeeper's SASL users come from (a JVM property).
const JAAS_FILE: &str = "java.security.auth.login.config";

/// Property names read under their full `zookeeper.` name.
const FULL_NAMES: [&str; 1] = ["zookeeper.DigestAuthenticationProvider.superDigest"];

/// The `-D` settings zkServer.sh would pass to ZooKeeper's JVM: from
/// `SERVER_JVMFLAGS` and `JVMFLAGS` (its environment), in that order.
pub fn jvm_flags_from_env() -> Vec<String> {
    ["SERVER_JVMFLAGS", "JVMFLAGS"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .flat_map(|flags| {
            flags
                .split_whitespace()
                .filter_map(|f| f.strip_prefix("-D").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Keys ZooKeeper accepts that Paddock does not act on.
const IGNORED_KEYS: [&str; 7] = [
    "initLimit",
    "syncLimit",
    // Purging follows every snapshot; there is no separate schedule.
    "autopurge.purgeInterval",
    "admin.idleTimeout",
    "metricsProvider.exportJvmInfo",
    "electionAlg",
    "quorumListenOnAllIPs",
];

impl ServerConfig {
    /// Reads a zoo.cfg file over the defaults. Unknown keys are returned as
    /// warnings, not errors; a bad value is an error naming file and key.
    pub fn from_zoo_cfg(path: &Path) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        Self::from_sources(Some(path), &[])
    }

    /// The settings from ZooKeeper's Java system properties (`defines`:
    /// `name=value`, see `system_properties`) and then a zoo.cfg file,
    /// whose keys win as they do in ZooKeeper (it sets a property for
    /// each key). Without a file, the defaults (127.0.0.1:2181).
    pub fn from_sources(
        path: Option<&Path>,
        defines: &[String],
    ) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        let mut props: BTreeMap<String, String> = system_properties(defines)?;
        let (mut cfg, label) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                props.extend(parse_properties(&text));
                let cfg = ServerConfig {
                    // ZooKeeper binds every interface unless clientPortAddress is set.
                    client_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 2181),
                    ..ServerConfig::default()
                };
                let label = match defines.is_empty() {
                    true => path.display().to_string(),
                    false => format!("{} and -D", path.display()),
                };
                (cfg, label)
            }
            None => (ServerConfig::default(), "-D".to_owned()),
        };
        let lines = cfg.apply_map(&label, props)?;
        cfg.join_ensemble(&label, &lines)?;
        Ok((cfg, lines.warnings))
    }

    /// With `server.N` lines: reads `myid` from the data directory and
    /// sets this server's place in the ensemble. One participant and
    /// `standaloneEnabled` (the default) means standalone, as in ZooKeeper.
    fn join_ensemble(&mut self, file: &str, props: &Properties) -> Result<(), ConfigError> {
        let servers = props.servers.clone();
        if servers.is_empty() {
            return Ok(());
        }
        let myid_path = self.data_dir.join("myid");
        let text = std::fs::read_to_string(&myid_path).map_err(|e| {
            ConfigError::Ensemble(format!(
                "{file} lists servers, so {} must hold this server's id (the N of its server.N line): {e}",
                myid_path.display()
            ))
        })?;
        let myid: u64 = text.trim().parse().map_err(|_| {
            ConfigError::Ensemble(format!(
                "{}: '{}' is not a server id",
                myid_path.display(),
                text.trim()
            ))
        })?;
        self.server_id = u8::try_from(myid).map_err(|_| {
            ConfigError::Ensemble(format!(
                "{}: server id {myid} is above 255",
                myid_path.display()
            ))
        })?;
        let me = servers.iter().find(|s| s.id == myid).ok_or_else(|| {
            ConfigError::Ensemble(format!(
                "{}: id {myid} has no server.{myid} line in {file}",
                myid_path.display()
            ))
        })?;
        if !props.client_port_given {
            if let Some(addr) = me
                .client
                .as_deref()
                .and_then(|c| c.to_socket_addrs().ok()?.next())
            {
                self.client_addr = addr;
            }
        }
        let participants = servers.iter().filter(|s| !s.observer).count();
        if participants == 0 {
            return Err(ConfigError::Ensemble(format!(
                "{file}: every server is an observer; at least one must vote"
            )));
        }
        if participants == 1 && servers.len() == 1 && props.standalone_enabled {
            return Ok(());
        }
        let peer = format!("{}:{}", me.host, me.peer_port);
        let peer_addr = peer
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                ConfigError::Ensemble(format!("{file}: server.{myid}: cannot resolve {peer}"))
            })?;
        self.ensemble = Some(EnsembleConfig {
            members: servers,
            peer_addr,
            standalone_enabled: props.standalone_enabled,
        });
        Ok(())
    }

    /// Applies zoo.cfg text; returns the `server.N` lines (for
    /// `join_ensemble`) and warnings for keys that are not used.
    pub fn apply_properties(&mut self, file: &str, text: &str) -> Result<Properties, ConfigError> {
        self.apply_map(file, parse_properties(text).into_iter().collect())
    }

    fn apply_map(
        &mut self,
        file: &str,
        props: BTreeMap<String, String>,
    ) -> Result<Properties, ConfigError> {
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
            "true" => Ok(true),
            "false" => Ok(false),
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
        let mut servers = Vec::new();
        let mut standalone_enabled = true;
        let client_port_given = props.contains_key("clientPort");
        for (key, v) in &props {
            let key = key.as_str();
            match key {
                "tickTime" => {}
                "clientPort" => port = num(key, v, err)?,
                "clientPortAddress" => {
                    ip = host_ip(v)
                        .ok_or_else(|| err(key, format!("'{v}' is not an address or a host name that resolves")))?
                }
                "dataDir" => self.data_dir = PathBuf::from(v),
                "dataLogDir" => self.data_log_dir = Some(PathBuf::from(v)),
                "minSessionTimeout" => self.min_session_timeout_ms = num(key, v, err)?,
                "maxSessionTimeout" => self.max_session_timeout_ms = num(key, v, err)?,
                "maxClientCnxns" => self.max_client_cnxns = num(key, v, err)?,
                "maxCnxns" => self.max_cnxns = num(key, v, err)?,
                "globalOutstandingLimit" => {
                    self.global_outstanding_limit = num::<usize>(key, v, err)?.max(1)
                }
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
                // ZooKeeper grows its log files by this many KiB; our
                // segments reserve it when created.
                "preAllocSize" | "zookeeper.preAllocSize" => {
                    self.wal_segment_bytes = num::<u64>(key, v, err)?.clamp(4, 1 << 20) << 10
                }
                "autopurge.snapRetainCount" => {
                    self.snap_retain_count = num::<usize>(key, v, err)?.max(3)
                }
                "reconfigEnabled" => self.reconfig_enabled = boolean(key, v)?,
                "readonlymode.enabled" | "zookeeper.readonlymode.enabled" => {
                    self.read_only_mode = boolean(key, v)?
                }
                "admin.enableServer" | "admin.serverAddress" | "admin.serverPort" => {}
                "admin.commandURL" => self.admin_command_url = v.clone(),
                "admin.sensitiveCommands" => self.admin_sensitive_commands = boolean(key, v)?,
                "paddock.quorum.secretFile" => self.quorum_secret_file = Some(PathBuf::from(v)),
                "metricsProvider.className"
                | "metricsProvider.httpHost"
                | "metricsProvider.httpPort" => {}
                "paddock.logLevel" => self.log_level = Some(v.clone()),
                "standaloneEnabled" => standalone_enabled = boolean(key, v)?,
                "secureClientPort" | "secureClientPortAddress" | "serverCnxnFactory" => {}
                "ssl.authProvider" if v != "x509" => {
                    return Err(err(key, format!("'{v}': only x509 is offered")))
                }
                "X509AuthenticationProvider.superUser" => self.x509_super_user = Some(v.clone()),
                k if k.starts_with("authProvider.") => match v.rsplit('.').next() {
                    Some("SASLAuthenticationProvider") => self.sasl_provider = true,
                    Some(
                        "X509AuthenticationProvider"
                        | "DigestAuthenticationProvider"
                        | "IPAuthenticationProvider",
                    ) => {}
                    _ => warnings.push(format!(
                        "{file}: {k}: '{v}' is not a provider Paddock has; ignored"
                    )),
                },
                k if k == "superUser" || k.starts_with("superUser.") => {
                    self.sasl_super_users.push(v.clone())
                }
                JAAS_FILE | "sasl.serverconfig" => {}
                // Settings that would make ZooKeeper stricter and that
                // Paddock does not implement: refused, rather than running
                // with less protection than the operator asked for.
                "ssl.crl" | "ssl.ocsp" | "ssl.quorum.crl" | "ssl.quorum.ocsp"
                | "sessionRequireClientSASLAuth" | "enforce.auth.enabled"
                    if boolean(key, v)? =>
                {
                    return Err(err(key, "is not offered by Paddock (docs/security.md); remove it or set it to false".into()))
                }
                "ssl.crl" | "ssl.ocsp" | "ssl.quorum.crl" | "ssl.quorum.ocsp"
                | "sessionRequireClientSASLAuth" | "enforce.auth.enabled" => {}
                "SASLAuthenticationProvider.superPassword"
                | "ssl.context.supplier.class"
                | "ssl.quorum.context.supplier.class" => {
                    return Err(err(key, "is not offered by Paddock (docs/security.md)".into()))
                }
                "sslQuorum" => self.ssl_quorum = boolean(key, v)?,
                // Certificates are read at start-up; ZooKeeper's reload of
                // the quorum's is not offered (docs/security.md).
                "sslQuorumReloadCertFiles" | "portUnification" => {}
                k if k.starts_with("ssl.quorum.")
                    && self
                        .quorum_tls
                        .set(&k["ssl.quorum.".len()..], v)
                        .map_err(|m| err(k, m))? => {}
                k if k.starts_with("ssl.")
                    && self
                        .client_tls
                        .set(&k["ssl.".len()..], v)
                        .map_err(|m| err(k, m))? => {}
                k if IGNORED_KEYS.contains(&k) => {}
                k if k.starts_with("server.") => {
                    let id = k["server.".len()..]
                        .parse::<u64>()
                        .map_err(|_| err(k, "the server id must be a number".into()))?;
                    servers.push(ServerLine::parse(id, v).map_err(|m| err(k, m))?);
                }
                k => warnings.push(format!("{file}: unknown key '{k}' ignored")),
            }
        }
        self.client_addr = SocketAddr::new(ip, port);
        let ip_of = |key: &str| -> Result<IpAddr, ConfigError> {
            match props.get(key) {
                Some(v) => host_ip(v).ok_or_else(|| {
                    err(
                        key,
                        format!("'{v}' is not an address or a host name that resolves"),
                    )
                }),
                None => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            }
        };
        let port_of = |key: &str, default: u16| -> Result<u16, ConfigError> {
            props.get(key).map_or(Ok(default), |v| num(key, v, err))
        };
        if let Some(path) = props.get(JAAS_FILE) {
            let section = props
                .get("sasl.serverconfig")
                .map_or("Server", String::as_str);
            let text = std::fs::read_to_string(path)
                .map_err(|e| err(JAAS_FILE, format!("{path}: {e}")))?;
            let users = crate::jaas::users(&text, section)
                .map_err(|m| err(JAAS_FILE, format!("{path}: {m}")))?;
            // A file without the section turns SASL off, as in ZooKeeper.
            self.sasl_users = users;
        }
        match props.get("secureClientPort") {
            Some(v) => {
                let ip = match props.get("secureClientPortAddress") {
                    Some(a) => host_ip(a).ok_or_else(|| {
                        err(
                            "secureClientPortAddress",
                            format!("'{a}' is not an address or a host name that resolves"),
                        )
                    })?,
                    None => self.client_addr.ip(),
                };
                self.secure_client_addr =
                    Some(SocketAddr::new(ip, num("secureClientPort", v, err)?));
                self.plain_client_port = client_port_given;
            }
            None if props.contains_key("secureClientPortAddress") => {
                return Err(err(
                    "secureClientPortAddress",
                    "is set without secureClientPort".into(),
                ))
            }
            None => {}
        }
        if let Some(v) = props.get("admin.enableServer") {
            self.admin_addr = if boolean("admin.enableServer", v)? {
                Some(SocketAddr::new(
                    ip_of("admin.serverAddress")?,
                    port_of("admin.serverPort", 8080)?,
                ))
            } else {
                None
            };
        }
        if let Some(class) = props.get("metricsProvider.className") {
            if !class.contains("Prometheus") {
                return Err(err(
                    "metricsProvider.className",
                    format!("'{class}': only the Prometheus provider is offered"),
                ));
            }
            self.metrics_addr = Some(SocketAddr::new(
                ip_of("metricsProvider.httpHost")?,
                port_of("metricsProvider.httpPort", 7000)?,
            ));
        }
        self.validate()?;
        Ok(Properties {
            warnings,
            servers,
            standalone_enabled,
            client_port_given,
        })
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

    /// The authentication providers ACLs may name here: x509 with a
    /// secure client port, sasl with ZooKeeper's SASL provider.
    pub fn auth_providers(&self) -> paddock_tree::acl::Providers {
        paddock_tree::acl::Providers {
            x509: self.secure_client_addr.is_some(),
            sasl: self.sasl_provider,
        }
    }

    pub fn four_letter_allowed(&self, word: &str) -> bool {
        self.four_letter_whitelist
            .iter()
            .any(|w| w == "*" || w == word)
    }
}

/// An IP address, or the first address a host name resolves to
/// (ZooKeeper takes host names for its listening addresses).
pub fn host_ip(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    (host, 0).to_socket_addrs().ok()?.next().map(|a| a.ip())
}

fn parse_int_maybe_hex(v: &str) -> Option<usize> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names_are_resolved_and_booleans_are_true_or_false() {
        let mut c = super::ServerConfig::default();
        c.apply_properties("zoo.cfg", "clientPortAddress=localhost\n")
            .unwrap();
        assert!(c.client_addr.ip().is_loopback());
        let e = c
            .apply_properties("zoo.cfg", "extendedTypesEnabled=yes\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'yes' is not true or false"), "{e}");
        let e = c
            .apply_properties("zoo.cfg", "clientPortAddress=no.such.host.invalid\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not resolve") || e.contains("resolves"),
            "{e}"
        );
    }

    #[test]
    fn tls_and_sasl_settings_are_read_as_zookeeper_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let jaas = dir.path().join("jaas.conf");
        std::fs::write(
            &jaas,
            "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\"; };",
        )
        .unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nsecureClientPort=2281\nssl.clientAuth=want\nssl.keyStore.location=/k.pem\n\
                 authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\nsuperUser=bob\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let defines = [
            format!("java.security.auth.login.config={}", jaas.display()),
            "zookeeper.X509AuthenticationProvider.superUser=CN=root".to_owned(),
        ];
        let (c, warnings) = super::ServerConfig::from_sources(Some(&cfg), &defines).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        // Only secureClientPort: the server speaks TLS only.
        assert!(!c.plain_client_port);
        assert_eq!(c.secure_client_addr.map(|a| a.port()), Some(2281));
        assert_eq!(c.client_tls.client_auth, paddock_tls::ClientAuth::Want);
        assert_eq!(c.x509_super_user.as_deref(), Some("CN=root"));
        assert!(c.sasl_provider);
        assert_eq!(c.sasl_super_users, ["bob"]);
        assert_eq!(c.sasl_users.unwrap()["bob"], "pw");

        std::fs::write(&cfg, "ssl.crl=true\n").unwrap();
        let e = super::ServerConfig::from_sources(Some(&cfg), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ssl.crl") && e.contains("not offered"), "{e}");
        std::fs::write(&cfg, "sessionRequireClientSASLAuth=false\n").unwrap();
        assert!(super::ServerConfig::from_sources(Some(&cfg), &[]).is_ok());
        std::fs::write(&cfg, "ssl.authProvider=sasl\n").unwrap();
        let e = super::ServerConfig::from_sources(Some(&cfg), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("only x509"), "{e}");
        std::fs::write(&cfg, "ssl.clientAuth=sometimes\n").unwrap();
        let e = super::ServerConfig::from_sources(Some(&cfg), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ssl.clientAuth") && e.contains("need, want or none"),
            "{e}"
        );
        let missing = format!(
            "java.security.auth.login.config={}/none.conf",
            dir.path().display()
        );
        std::fs::write(&cfg, "").unwrap();
        let e = super::ServerConfig::from_sources(Some(&cfg), &[missing])
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.conf"), "{e}");
    }

    #[test]
    fn system_properties_are_zoo_cfg_keys_and_the_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!("dataDir={}\nsnapCount=7\n", dir.path().display()),
        )
        .unwrap();
        let defines: Vec<String> = [
            "zookeeper.snapCount=99",
            "readonlymode.enabled=true",
            "zookeeper.DigestAuthenticationProvider.superDigest=super:abc=",
            "zookeeper.4lw.commands.whitelist=dump,ruok",
            "file.encoding=UTF-8",
            "log4j.configuration=file:/etc/log4j.properties",
            "zookeeper.log.dir=/var/log/zookeeper",
            "java.net.preferIPv4Stack=true",
        ]
        .map(String::from)
        .to_vec();
        let (c, warnings) = super::ServerConfig::from_sources(Some(&cfg), &defines).unwrap();
        assert_eq!(c.snap_count, 7, "zoo.cfg wins");
        assert!(c.read_only_mode);
        assert_eq!(c.super_digest.as_deref(), Some("super:abc="));
        assert_eq!(c.four_letter_whitelist, ["dump", "ruok"]);
        assert!(warnings.is_empty(), "{warnings:?}");

        let (c, warnings) = super::ServerConfig::from_sources(
            None,
            &["zookeeper.snapCount=99".into(), "foo.bar=1".into()],
        )
        .unwrap();
        assert_eq!(c.snap_count, 99);
        assert_eq!(warnings, ["-D: unknown key 'foo.bar' ignored"]);
        let err = super::ServerConfig::from_sources(None, &["novalue".into()]).unwrap_err();
        assert!(err.to_string().contains("-Dname=value"), "{err}");
    }

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
            .apply_properties("zoo.cfg", "tickTime=2000\nclientPort=2281\nclientPortAddress=127.0.0.2\ndataDir=/tmp/x\nmaxClientCnxns=0\njute.maxbuffer=0x1000\nfoo=bar\nreadonlymode.enabled=true\npreAllocSize=64\n")
            .unwrap();
        assert!(c.read_only_mode);
        assert_eq!(c.wal_segment_bytes, 64 << 10, "preAllocSize is in KiB");
        assert_eq!(c.client_addr, "127.0.0.2:2281".parse().unwrap());
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (4000, 40000)
        );
        assert_eq!((c.max_client_cnxns, c.max_frame_bytes), (0, 4096));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            w.warnings,
            vec!["zoo.cfg: unknown key 'foo' ignored".to_string()]
        );
        assert_eq!(c.negotiate_timeout(1), 4000);
        assert_eq!(c.negotiate_timeout(100_000), 40000);
        assert_eq!(c.negotiate_timeout(10_000), 10000);
    }

    #[test]
    fn server_lines_parse_as_zookeeper_writes_them() {
        let l = ServerLine::parse(2, "zk2:2888:3888:observer;127.0.0.1:2182").unwrap();
        assert_eq!(
            (l.host.as_str(), l.peer_port, l.election_port),
            ("zk2", 2888, 3888)
        );
        assert!(l.observer);
        assert_eq!(l.client.as_deref(), Some("127.0.0.1:2182"));
        assert_eq!(l.spec(), "zk2:2888:3888:observer;127.0.0.1:2182");
        let plain = ServerLine::parse(1, "zk1:2888:3888;2181").unwrap();
        assert_eq!(plain.spec(), "zk1:2888:3888:participant;0.0.0.0:2181");
        assert!(ServerLine::parse(1, "zk1:2888").is_err());
        assert!(ServerLine::parse(1, "zk1:2888:x").is_err());
        assert!(ServerLine::parse(1, "zk1:2888:3888:voter").is_err());
    }

    fn write_cfg(dir: &Path, myid: Option<&str>, servers: &str) -> PathBuf {
        if let Some(id) = myid {
            std::fs::write(dir.join("myid"), id).unwrap();
        }
        let cfg = dir.join("zoo.cfg");
        std::fs::write(&cfg, format!("dataDir={}\n{servers}", dir.display())).unwrap();
        cfg
    }

    #[test]
    fn an_ensemble_takes_its_id_from_myid_and_its_client_port_from_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let three = "server.1=127.0.0.1:2888:3888;127.0.0.1:2281\nserver.2=127.0.0.1:2889:3889;127.0.0.1:2282\nserver.3=127.0.0.1:2890:3890:observer\n";
        let (c, _) =
            ServerConfig::from_zoo_cfg(&write_cfg(dir.path(), Some("2\n"), three)).unwrap();
        assert_eq!(c.server_id, 2);
        assert_eq!(c.client_addr, "127.0.0.1:2282".parse().unwrap());
        let e = c.ensemble.unwrap();
        assert_eq!(e.peer_addr, "127.0.0.1:2889".parse().unwrap());
        assert_eq!(e.members.len(), 3);

        let one = "server.1=127.0.0.1:2888:3888\n";
        let (c, _) = ServerConfig::from_zoo_cfg(&write_cfg(dir.path(), Some("1"), one)).unwrap();
        assert!(c.ensemble.is_none(), "one participant runs standalone");
    }

    #[test]
    fn a_missing_or_unlisted_myid_stops_start_up_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let two = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n";
        let e = ServerConfig::from_zoo_cfg(&write_cfg(dir.path(), None, two)).unwrap_err();
        assert!(
            e.to_string().contains("myid must hold this server's id"),
            "{e}"
        );
        let e = ServerConfig::from_zoo_cfg(&write_cfg(dir.path(), Some("7"), two)).unwrap_err();
        assert!(e.to_string().contains("id 7 has no server.7 line"), "{e}");
        let e = ServerConfig::from_zoo_cfg(&write_cfg(dir.path(), Some("x"), two)).unwrap_err();
        assert!(e.to_string().contains("'x' is not a server id"), "{e}");
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
