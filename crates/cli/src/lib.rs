//! `paddock cli`: a zkCli-compatible shell. `command.rs` parses lines,
//! `output.rs` prints in zkCli's shapes, `session.rs` is the client
//! session, `shell.rs` runs commands (one-shot or interactive).
//!
//! The shell talks the protocol through `paddock-proto` rather than a
//! client library so that it can show exactly what the server said: null
//! versus empty data, every error code, removeWatches and reconfig.

pub mod command;
pub mod output;
pub mod session;
pub mod shell;
pub mod status;

use serde_json::json;
use shell::{Flow, Options, Shell};
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The version `version` prints.
pub fn version() -> String {
    format!("3.8.0-paddock-{}", env!("CARGO_PKG_VERSION"))
}

/// The words after `paddock cli`: `--server host:port,...` (zkCli's
/// `-server` too), `--timeout ms`, `-o json`, then an optional command to
/// run once.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true, after_help = OPTIONS)]
pub struct CliArgs {
    /// [--server host:port,...] [--timeout ms] [-o text|json] [command args...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

const USAGE: &str =
    "usage: paddock cli [--server host:port,...] [--timeout ms] [-o text|json] [command args...]";

const OPTIONS: &str = "\
Options (zkCli's single-dash spellings work too):
  --server host[:port],...  the servers to try, in turn [default: 127.0.0.1:2181; port 2181]
  --timeout ms              the session timeout [default: 30000]
  -o, --output text|json    zkCli's text, or one JSON object a line
  -h, --help                this help

With a command, runs it and exits (status 0, or 1 on an error, 127 for an
unknown command); without one, an interactive shell (Ctrl-C stops a
command, Ctrl-D or quit leaves).";

/// `paddock cli --help`: the usage, the options and every command.
fn help_text() -> String {
    format!(
        "A zkCli-compatible shell: interactive, or one command then exit.\n\n{USAGE}\n\n{OPTIONS}\n\nCommands:\n{}",
        command::help().lines().skip(1).map(|l| format!("  {}\n", l.trim_start())).collect::<String>()
    )
}

/// What the words ask for: a shell (with a command to run once, or
/// none), or the help.
#[derive(Debug)]
enum Invocation {
    Shell(Options, Vec<String>),
    Help,
}

fn parse_args(words: &[String]) -> Result<Invocation, String> {
    let mut opts = Options {
        server: "127.0.0.1:2181".to_owned(),
        timeout_ms: 30_000,
        json: false,
    };
    let mut i = 0;
    while i < words.len() {
        let value = |i: usize| {
            words
                .get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{} needs a value\n{USAGE}", words[i]))
        };
        match words[i].as_str() {
            "-server" | "--server" => opts.server = value(i)?,
            "-timeout" | "--timeout" => {
                opts.timeout_ms = value(i)?
                    .parse()
                    .map_err(|_| format!("-timeout takes milliseconds\n{USAGE}"))?
            }
            "-o" | "--output" => {
                opts.json = match value(i)?.as_str() {
                    "json" => true,
                    "text" => false,
                    other => return Err(format!("unknown output format '{other}' (text or json)")),
                }
            }
            "-h" | "--help" => return Ok(Invocation::Help),
            _ => break,
        }
        i += 2;
    }
    Ok(Invocation::Shell(opts, words[i..].to_vec()))
}

/// Runs the shell; returns the process exit code.
pub fn run(args: CliArgs) -> ExitCode {
    let (opts, command) = match parse_args(&args.words) {
        Ok(Invocation::Shell(opts, command)) => (opts, command),
        Ok(Invocation::Help) => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paddock cli: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = if command.is_empty() {
        interactive(&rt, opts)
    } else {
        rt.block_on(async {
            let mut shell = Shell::new(opts);
            let code = match shell.execute(command).await {
                Ok(_) => 0,
                Err(f) => {
                    eprintln!("{}", f.message);
                    f.code
                }
            };
            // Like zkCli, a one-shot command leaves its session to time out
            // (an ephemeral it created lives that long), quietly.
            shell.quiet();
            code
        })
    };
    rt.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(code)
}

fn interactive(rt: &tokio::runtime::Runtime, opts: Options) -> u8 {
    use rustyline::error::ReadlineError;
    let mut shell = Shell::new(opts);
    let session = rt.block_on(async { shell.session() });
    let helper = complete::PathHelper::new(shell.session_slot(), rt.handle().clone());
    let mut editor =
        match rustyline::Editor::<complete::PathHelper, rustyline::history::FileHistory>::new() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("paddock cli: cannot start line editing: {e}");
                return 1;
            }
        };
    editor.set_helper(Some(helper));
    let history_file =
        std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".paddock_cli_history"));
    if let Some(f) = &history_file {
        let _ = editor.load_history(f);
    }
    // Listened for from the start, so a Ctrl-C as a command begins is
    // never the default (fatal) one.
    let mut interrupts = Interrupts::listen(rt);
    rt.block_on(session.wait_connected(Duration::from_secs(5)));
    if let Some(why) = session.unreachable() {
        eprintln!("cannot connect to {why}; still trying (the prompt shows the state)");
    }
    loop {
        // One that came between two commands is not for the next one.
        interrupts.forget_earlier();
        let line = match editor.readline(&shell.prompt()) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
        };
        let words = command::split(&line);
        if words.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        // Ctrl-C stops the command, not the shell.
        let outcome = rt.block_on(async {
            tokio::select! {
                outcome = shell.execute(words) => Some(outcome),
                () = interrupts.next() => None,
            }
        });
        match outcome {
            Some(Ok(Flow::Quit)) => break,
            Some(Ok(Flow::Continue)) => {}
            Some(Err(f)) => eprintln!("{}", f.message),
            None => eprintln!("^C (command interrupted)"),
        }
    }
    if let Some(f) = &history_file {
        let _ = editor.save_history(f);
    }
    rt.block_on(shell.finish());
    0
}

/// SIGINT while a command runs (at the prompt the terminal is raw and
/// Ctrl-C is a key the line editor reads).
struct Interrupts(Option<tokio::signal::unix::Signal>);

impl Interrupts {
    fn listen(rt: &tokio::runtime::Runtime) -> Interrupts {
        let _in = rt.enter();
        Interrupts(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok())
    }

    /// Drops the interrupts that came so far.
    fn forget_earlier(&mut self) {
        use futures::FutureExt;
        if let Some(s) = self.0.as_mut() {
            while let Some(Some(())) = s.recv().now_or_never() {}
        }
    }

    async fn next(&mut self) {
        match self.0.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

mod complete {
    //! Tab completion: command names first, then znode paths (the
    //! children of the typed parent, asked of the server).

    use crate::session::Session;
    use paddock_proto::{PathWatchRequest, Request, Response};
    use rustyline::completion::{Completer, Pair};
    use rustyline::highlight::Highlighter;
    use rustyline::hint::Hinter;
    use rustyline::validate::Validator;
    use rustyline::{Context, Helper};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    pub struct PathHelper {
        session: Arc<Mutex<Option<Session>>>,
        rt: tokio::runtime::Handle,
    }

    impl PathHelper {
        pub fn new(session: Arc<Mutex<Option<Session>>>, rt: tokio::runtime::Handle) -> Self {
            PathHelper { session, rt }
        }

        fn children(&self, parent: &str) -> Vec<String> {
            let slot = self
                .session
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let Some(session) = slot else {
                return Vec::new();
            };
            let req = Request::GetChildren(PathWatchRequest {
                path: parent.to_owned(),
                watch: false,
            });
            // The timer must be made inside the runtime.
            let call =
                async { tokio::time::timeout(Duration::from_secs(2), session.call(req)).await };
            match self.rt.block_on(call) {
                Ok(Ok(Response::GetChildren { mut children })) => {
                    children.sort();
                    children
                }
                _ => Vec::new(),
            }
        }
    }

    impl Completer for PathHelper {
        type Candidate = Pair;

        fn complete(
            &self,
            line: &str,
            pos: usize,
            _: &Context<'_>,
        ) -> rustyline::Result<(usize, Vec<Pair>)> {
            let before = &line[..pos];
            let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
            let word = &before[start..];
            let pair = |s: String| Pair {
                display: s.clone(),
                replacement: s,
            };
            if start == 0 {
                let names = crate::command::COMMANDS
                    .iter()
                    .filter(|c| c.name.starts_with(word))
                    .map(|c| pair(c.name.to_owned()))
                    .collect();
                return Ok((0, names));
            }
            let Some(slash) = word.rfind('/') else {
                return Ok((start, Vec::new()));
            };
            let (parent, prefix) = (&word[..slash.max(1)], &word[slash + 1..]);
            let base = if parent == "/" {
                String::new()
            } else {
                parent.to_owned()
            };
            let found = self
                .children(parent)
                .into_iter()
                .filter(|c| c.starts_with(prefix))
                .map(|c| pair(format!("{base}/{c}")))
                .collect();
            Ok((start, found))
        }
    }

    impl Hinter for PathHelper {
        type Hint = String;
    }
    impl Highlighter for PathHelper {}
    impl Validator for PathHelper {}
    impl Helper for PathHelper {}
}

/// `host[:port]` with ZooKeeper's client port when none is given, as
/// zkCli takes `-server 127.0.0.1` (IPv6 in brackets: `[::1]`).
pub fn with_default_port(host: &str) -> String {
    let has_port = match host.strip_prefix('[') {
        Some(rest) => rest.contains("]:"),
        None => host.contains(':'),
    };
    match has_port {
        true => host.to_owned(),
        false => format!("{host}:2181"),
    }
}

/// The servers of a `host[:port],...` list, each with a port.
pub fn server_list(spec: &str) -> Vec<String> {
    spec.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(with_default_port)
        .collect()
}

/// `paddock status`: every member's state, for people and scripts.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The servers to ask (host[:port],...); the members their
    /// configuration lists are asked too.
    #[arg(long, short = 's', default_value = "127.0.0.1:2181")]
    pub server: String,
    /// text (a table and a verdict) or json (one object per server).
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// Prints the status; the exit code is 0 when every member serves and
/// there is one leader (or one standalone server), else 1.
pub fn status(args: StatusArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paddock status: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(status::probe(&server_list(&args.server), true));
    if args.output == "json" {
        let verdict = json!({
            "healthy": report.healthy(),
            "summary": report.summary(),
            "members": report.json(),
        });
        println!("{verdict:#}");
    } else {
        print!("{}", report.table());
        println!("{}", report.summary());
    }
    match report.healthy() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// Sends a four-letter word and reads the whole answer.
pub async fn four_letter(host: &str, word: &str) -> std::io::Result<String> {
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        s.write_all(word.as_bytes()).await?;
        let mut out = Vec::new();
        s.take(1 << 20).read_to_end(&mut out).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), talk)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer within 5 s",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_a_port_gets_zookeepers() {
        assert_eq!(with_default_port("127.0.0.1"), "127.0.0.1:2181");
        assert_eq!(with_default_port("zk1:2182"), "zk1:2182");
        assert_eq!(with_default_port("[::1]"), "[::1]:2181");
        assert_eq!(with_default_port("[::1]:2183"), "[::1]:2183");
    }

    #[test]
    fn arguments_like_zkcli() {
        let w = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let Ok(Invocation::Shell(o, cmd)) = parse_args(&w("-server h:1,h:2 -o json ls -s /"))
        else {
            panic!("not a shell invocation")
        };
        assert_eq!((o.server.as_str(), o.json), ("h:1,h:2", true));
        assert_eq!(cmd, ["ls", "-s", "/"]);
        let Ok(Invocation::Shell(o, _)) = parse_args(&w("--server h:3 --timeout 5000")) else {
            panic!("not a shell invocation")
        };
        assert_eq!((o.server.as_str(), o.timeout_ms), ("h:3", 5000));
        assert!(matches!(parse_args(&w("--help")), Ok(Invocation::Help)));
        assert!(help_text().contains("\n  deleteall "), "{}", help_text());
        assert!(parse_args(&w("-timeout x")).is_err());
        assert!(parse_args(&w("-o yaml")).is_err());
    }
}
