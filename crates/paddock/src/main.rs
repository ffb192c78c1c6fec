//! The `paddock` binary: one executable, one subcommand per tool.

mod inspect;

use anyhow::Context;
use clap::{Parser, Subcommand};
use paddock_server::{Server, ServerConfig};
use std::net::IpAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "paddock",
    version,
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
    /// Client port (clientPort).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on (clientPortAddress).
    #[arg(long)]
    bind: Option<IpAddr>,
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
}

impl ServerArgs {
    fn into_config(self) -> anyhow::Result<ServerConfig> {
        let mut cfg = match &self.config {
            Some(path) => {
                let (cfg, warnings) = ServerConfig::from_zoo_cfg(path)?;
                for w in warnings {
                    tracing::warn!("{w}");
                }
                cfg
            }
            None => ServerConfig::default(),
        };
        if let Some(tick) = self.tick_time {
            anyhow::ensure!(tick > 0, "--tick-time must be positive");
            cfg.tick_time_ms = tick;
            cfg.min_session_timeout_ms = 2 * tick;
            cfg.max_session_timeout_ms = 20 * tick;
        }
        if let Some(port) = self.port {
            cfg.client_addr.set_port(port);
        }
        if let Some(ip) = self.bind {
            cfg.client_addr.set_ip(ip);
        }
        if let Some(dir) = self.data_dir {
            cfg.data_dir = dir;
        }
        if let Some(ms) = self.container_check_interval_ms {
            cfg.container_check_interval_ms = ms;
        }
        cfg.extended_types |= self.extended_types;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,zookeeper_client=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => run_server(args),
        Command::Inspect(command) => inspect::run(command),
        Command::Import(args) => import(args),
        Command::Jobs(command) => runtime().and_then(|rt| rt.block_on(paddock_jobs::run(command))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paddock: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    runtime()?.block_on(async {
        let server = Server::bind(config).await?;
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        server.run(shutdown).await;
        Ok(())
    })
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

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
