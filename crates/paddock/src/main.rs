//! The `paddock` binary: one executable, one subcommand per tool.

mod inspect;
mod memory;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use paddock_server::{Server, ServerConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// mimalloc hands freed memory back to the system (glibc's malloc kept
/// memory freed in bulk, such as a second tree at recovery, in the
/// process for good) and fragments less under many small nodes. It is
/// built without asking for transparent huge pages (`no_thp`): a 2 MiB page
/// counts whole however little of it is used, which cost an empty server
/// 23 MiB and one holding a million znodes 38 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "paddock",
    version = paddock_server::fourlw::LONG_VERSION,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server. With no options: standalone on 127.0.0.1:2181, data in ./paddock-data.
    Server(ServerArgs),
    /// Read-only views of a data directory: list, log, snapshot.
    #[command(subcommand)]
    Inspect(inspect::InspectCommand),
    /// Make a Paddock data directory from an Apache ZooKeeper one (snapshot + txn logs).
    Import(ImportArgs),
    /// Distributed jobs on Paddock and Redis: submit, executor, watcher, status.
    #[command(subcommand)]
    Jobs(paddock_jobs::JobsCommand),
    /// Load any ZooKeeper-protocol server and report ops/s and latency.
    Bench(BenchArgs),
    /// A zkCli-compatible shell: interactive, or one command then exit.
    Cli(paddock_cli::CliArgs),
    /// Each member's mode, term, zxid and lag; exit status 0 when all serve under one leader.
    Status(paddock_cli::StatusArgs),
    /// The version, the commit it was built from and that commit's date.
    Version,
    /// A shell completion script, for bash, zsh, fish, elvish or powershell.
    Completions { shell: clap_complete::Shell },
    /// Manual pages (roff): paddock.1 on stdout, or one page per subcommand into a directory.
    Man {
        /// Write paddock.1 and paddock-SUBCOMMAND.1 here instead.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
#[command(after_help = "\
Everything a run creates is under /paddock-bench; --cleanup deletes it after
the run. Ctrl-C stops a run early and still prints its report (marked
interrupted); a second Ctrl-C exits at once.")]
struct BenchArgs {
    /// The server to load.
    #[arg(long, short = 's', default_value = "127.0.0.1:2181")]
    server: String,
    /// A built-in workload: get, set, exists, children, create (create and
    /// delete), multi, read-90, read-50, zipf-read-90 (90% reads, 10% sets),
    /// tree-load (create --total znodes), session-storm (open and close
    /// sessions), watch-fanout (one writer, --connections watchers),
    /// watch-round (a change until every watcher heard it), lock-churn
    /// (lock recipe contention).
    #[arg(long, short = 'w', default_value = "read-90", conflicts_with = "spec")]
    workload: String,
    /// A TOML workload spec (fields as in the JSON report's "spec").
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Connections, each with its own session [default: 32; 16 for
    /// session-storm and lock-churn, 100 for the watch workloads].
    #[arg(long, short = 'c')]
    connections: Option<usize>,
    /// Requests in flight per connection [default: 32; 1 for
    /// session-storm, the watch workloads and lock-churn].
    #[arg(long)]
    inflight: Option<usize>,
    /// Seconds to run, warm-up included [default: 10].
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// Seconds at the start that load the server but are not measured
    /// [default: 1, or a tenth of --duration when that is given].
    #[arg(long)]
    warmup: Option<f64>,
    /// Open loop at this many ops/s in total [default: closed loop].
    #[arg(long)]
    rate: Option<u64>,
    /// Bytes of data per write [default: 100].
    #[arg(long)]
    payload: Option<usize>,
    /// Znodes the reads and writes spread over [default: 1000].
    #[arg(long)]
    keys: Option<usize>,
    /// For tree-load: znodes to create [default: 100000].
    #[arg(long)]
    total: Option<u64>,
    /// Delete everything the run created (/paddock-bench) when it ends.
    #[arg(long)]
    cleanup: bool,
    /// Also report this server process's CPU time and memory (from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl BenchArgs {
    fn spec(&self) -> anyhow::Result<paddock_bench::Spec> {
        let mut spec = match &self.spec {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                paddock_bench::Spec::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => paddock_bench::spec::named(&self.workload).with_context(|| {
                format!(
                    "unknown workload '{}'; built in: {}",
                    self.workload,
                    paddock_bench::spec::NAMES.join(", ")
                )
            })?,
        };
        macro_rules! set {
            ($($arg:ident => $field:ident),*) => {
                $(if let Some(v) = self.$arg { spec.$field = v; })*
            };
        }
        set!(connections => connections, inflight => inflight, duration => duration_s,
            warmup => warmup_s, rate => rate, payload => payload_bytes, keys => keys, total => total);
        if self.duration.is_some() && self.warmup.is_none() {
            spec.warmup_s = spec.warmup_s.min(spec.duration_s / 10.0);
        }
        spec.check().map_err(anyhow::Error::msg)?;
        Ok(spec)
    }
}

#[derive(clap::Args)]
struct ImportArgs {
    /// ZooKeeper's dataDir (holding version-2/snapshot.*).
    zookeeper_data_dir: PathBuf,
    /// ZooKeeper's dataLogDir, if its logs live apart from the snapshots.
    #[arg(long)]
    zookeeper_log_dir: Option<PathBuf>,
    /// The new Paddock data directory (must hold no Paddock data yet).
    #[arg(long, default_value = "paddock-data")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// A ZooKeeper zoo.cfg file; the options below override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// The zoo.cfg file, as zkServer.sh takes it (same as --config).
    #[arg(value_name = "ZOO_CFG", conflicts_with = "config")]
    zoo_cfg: Option<PathBuf>,
    /// Client port (clientPort).
    #[arg(long)]
    port: Option<u16>,
    /// Address or host name to listen on (clientPortAddress).
    #[arg(long)]
    bind: Option<String>,
    /// Data directory (dataDir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Base time unit in ms (tickTime); session timeouts default to 2x..20x.
    #[arg(long)]
    tick_time: Option<u32>,
    /// Allow TTL nodes (extendedTypesEnabled).
    #[arg(long)]
    extended_types: bool,
    /// How often empty containers and expired TTL nodes are reaped, in ms.
    #[arg(long)]
    container_check_interval_ms: Option<u64>,
    /// Serve the admin HTTP commands (and /metrics) on 127.0.0.1:PORT.
    #[arg(long)]
    admin_port: Option<u16>,
    /// Serve Prometheus /metrics on 127.0.0.1:PORT.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Log filter, e.g. info, debug, paddock_server=trace (RUST_LOG wins).
    #[arg(long)]
    log_level: Option<String>,
    /// Move this ensemble member's files aside (to snap.damaged-T and
    /// wal.damaged-T) and copy the state from the other servers: for a
    /// member whose files are damaged. Needs a quorum of the others running.
    #[arg(long)]
    rebuild: bool,
    /// A ZooKeeper Java system property, as zkServer.sh passes them
    /// (also read from SERVER_JVMFLAGS and JVMFLAGS): `zookeeper.X` is
    /// zoo.cfg's X, which wins; JVM-only ones are ignored.
    #[arg(short = 'D', value_name = "NAME=VALUE")]
    define: Vec<String>,
}

impl ServerArgs {
    /// The settings, and warnings about keys that were not used.
    fn into_config(self) -> anyhow::Result<(ServerConfig, Vec<String>)> {
        let mut defines = paddock_server::config::jvm_flags_from_env();
        defines.extend(self.define);
        let (mut cfg, warnings) =
            ServerConfig::from_sources(self.config.or(self.zoo_cfg).as_deref(), &defines)?;
        if let Some(tick) = self.tick_time {
            anyhow::ensure!(tick > 0, "--tick-time must be positive");
            cfg.tick_time_ms = tick;
            cfg.min_session_timeout_ms = 2 * tick;
            cfg.max_session_timeout_ms = 20 * tick;
        }
        if let Some(port) = self.port {
            cfg.client_addr.set_port(port);
            cfg.plain_client_port = true;
        }
        if let Some(host) = self.bind {
            let ip = paddock_server::config::host_ip(&host).with_context(|| {
                format!("--bind: '{host}' is not an address or a host name that resolves")
            })?;
            cfg.client_addr.set_ip(ip);
        }
        if let Some(dir) = self.data_dir {
            cfg.data_dir = dir;
        }
        if let Some(ms) = self.container_check_interval_ms {
            cfg.container_check_interval_ms = ms;
        }
        cfg.extended_types |= self.extended_types;
        cfg.rebuild = self.rebuild;
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        if let Some(port) = self.admin_port {
            cfg.admin_addr = Some(local(port));
        }
        if let Some(port) = self.metrics_port {
            cfg.metrics_addr = Some(local(port));
        }
        if self.log_level.is_some() {
            cfg.log_level = self.log_level;
        }
        cfg.validate()?;
        Ok((cfg, warnings))
    }
}

/// Logs go to stderr; the filter is RUST_LOG if set, else `level`, else
/// info (openraft's own chatter only from warn up, and not its warning on
/// every failed heartbeat or replication call: the peer network reports
/// an unreachable peer itself, once per 10 s).
/// A bare word of a log filter that is not a level: tracing would take it
/// for a target name and log nothing, where the user meant a level.
fn unknown_level(filter: &str) -> Option<&str> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains(['=', ':', '[']))
        .find(|d| !LEVELS.contains(&d.to_ascii_lowercase().as_str()))
}

fn init_logging(level: Option<&str>) -> anyhow::Result<()> {
    const QUIET: &str = "openraft=warn,openraft::core::heartbeat=error,\
        openraft::replication=error,openraft::engine::handler::replication_handler=error,\
        zookeeper_client=warn";
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(&env)
            .map_err(|e| anyhow::anyhow!("RUST_LOG: '{env}' is not a log filter: {e}"))?,
        _ => {
            let level = level.unwrap_or("info");
            if let Some(word) = unknown_level(level) {
                anyhow::bail!(
                    "log level '{level}': '{word}' is not a level (trace, debug, info, warn, error, off) nor target=level"
                );
            }
            EnvFilter::try_new(format!("{level},{QUIET}"))
                .map_err(|e| anyhow::anyhow!("log level '{level}' is not a log filter: {e}"))?
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => run_server(args),
        Command::Inspect(command) => init_logging(None).and_then(|()| inspect::run(command)),
        Command::Import(args) => init_logging(None).and_then(|()| import(args)),
        Command::Jobs(command) => init_logging(None)
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(paddock_jobs::run(command))),
        Command::Bench(args) => init_logging(None).and_then(|()| bench(args)),
        Command::Cli(args) => return paddock_cli::run(args),
        Command::Status(args) => return paddock_cli::status(args),
        Command::Version => {
            println!("paddock {}", paddock_server::fourlw::LONG_VERSION);
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "paddock",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man { out_dir } => man(out_dir),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paddock: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: an error that
/// already shows its cause's text (`#[error("{path}: {source}")]`) is not
/// followed by it again.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Renders the manual pages from the command definitions.
fn man(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let command = Cli::command();
    let Some(dir) = out_dir else {
        let mut out = std::io::stdout();
        return clap_mangen::Man::new(command)
            .render(&mut out)
            .context("cannot write the manual page");
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: String, page: clap_mangen::Man| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut text = Vec::new();
        page.title(name).render(&mut text)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    for sub in command.get_subcommands() {
        let page =
            clap_mangen::Man::new(sub.clone().bin_name(format!("paddock {}", sub.get_name())));
        write(format!("paddock-{}", sub.get_name()), page)?;
    }
    write("paddock".to_owned(), clap_mangen::Man::new(command))
}

fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let (config, warnings) = args.into_config()?;
    init_logging(config.log_level.as_deref())?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = runtime()?;
    // The server runs on a worker thread rather than this one, so each
    // connection it accepts starts on the thread that accepted it instead
    // of being handed to another.
    let result = runtime.block_on(async {
        tokio::spawn(async {
            // Listened for before the server says it is serving, so a signal
            // sent as soon as it does is never the default (fatal) one.
            let signals = Signals::listen();
            let server = {
                let _recovering = memory::PurgeAtOnce::begin();
                Server::bind(config).await?
            };
            let collecting = tokio::spawn(memory::collect_now_and_then());
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                signals.recv().await;
                signal.cancel();
            });
            let served = server.run(shutdown).await;
            collecting.abort();
            Ok(served?)
        })
        .await?
    });
    // Dropping the runtime would wait for a blocking task however long it
    // takes, which would undo the bound on stopping.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = ServerConfig {
        data_dir: args.data_dir,
        ..ServerConfig::default()
    };
    let imported = paddock_import::import_dir(
        &args.zookeeper_data_dir,
        args.zookeeper_log_dir.as_deref(),
        paddock_server::recovery::tree_config(&config),
    )?;
    let written = paddock_server::recovery::seed(&config, &imported.tree)?;
    let tree = &imported.tree;
    println!(
        "imported {} znodes and {} sessions up to zxid 0x{:x} from {} and {} transactions of {} log file(s) into {}",
        tree.node_count(),
        tree.sessions().len(),
        tree.last_zxid(),
        imported.snapshot.display(),
        imported.replayed,
        imported.logs.len(),
        written.display()
    );
    Ok(())
}

/// SIGTERM and SIGINT (ctrl-c), either of which stops the server.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn recv(self) {
        #[cfg(unix)]
        {
            async fn one(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = one(self.term) => {}
                _ = one(self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let spec = args.spec()?;
    // One thread: the load generator should leave the other cores to the
    // server under test (its own CPU time is in the report).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let server =
        std::net::ToSocketAddrs::to_socket_addrs(&paddock_cli::with_default_port(&args.server))
            .ok()
            .and_then(|mut addrs| addrs.next())
            .with_context(|| {
                format!(
                    "--server: '{}' is not host:port with a host that resolves",
                    args.server
                )
            })?;
    // The first Ctrl-C ends the run early with its report; a second one
    // exits at once.
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: finishing the requests in flight (Ctrl-C again to quit)");
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            });
        }
    };
    let outcome = rt.block_on(paddock_bench::run(
        spec,
        server,
        args.server_pid,
        interrupted,
    ));
    if let Ok(report) = &outcome {
        print!("{}", report.table());
        if let Some(path) = &args.json {
            let json = serde_json::to_string_pretty(report)?;
            std::fs::write(path, json + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    // Also after a failed run: what it created is still there.
    if args.cleanup {
        let removed = rt.block_on(paddock_bench::cleanup(server))?;
        println!(
            "cleanup: deleted {removed} znodes under {}",
            paddock_bench::ROOT
        );
    }
    outcome.map(drop)
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_bare_word_in_a_log_filter_must_be_a_level() {
        assert_eq!(super::unknown_level("bogus"), Some("bogus"));
        assert_eq!(super::unknown_level("DEBUG,paddock_server=trace"), None);
        assert_eq!(super::unknown_level("warn, infoo"), Some("infoo"));
    }

    #[test]
    fn an_error_chain_is_one_line_with_each_cause_once() {
        /// An error whose message already shows its cause.
        #[derive(Debug)]
        struct Shows(std::io::Error);
        impl std::fmt::Display for Shows {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "zoo.cfg: {}", self.0)
            }
        }
        impl std::error::Error for Shows {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("No such file or directory (os error 2)");
        let e = anyhow::Error::new(Shows(io)).context("cannot start");
        assert_eq!(
            one_line(&e),
            "cannot start: zoo.cfg: No such file or directory (os error 2)"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
