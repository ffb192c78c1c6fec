//! Running commands: one-shot (the words from the command line, exit code
//! non-zero on error) or interactive (rustyline with history and znode
//! path completion). Output follows zkCli: results on stdout, "Created"
//! and errors on stderr, watch events as `WATCHER::` blocks.

use crate::command::{self, ParseError, Parsed};
use crate::output::{self, error_message};
use crate::session::{Event, Session, State};
use paddock_proto::{
    AddWatchRequest, AuthPacket, CreateRequest, CreateTtlRequest, DeleteRequest, ErrorCode,
    PathRequest, PathWatchRequest, ReconfigRequest, Request, Response, SetAclRequest,
    SetDataRequest, Stat, WatchesRequest,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub server: String,
    pub timeout_ms: i32,
    pub json: bool,
}

/// A failed command: the text for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
    /// The server could not be reached (the message gets the reason).
    lost: bool,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
            lost: false,
        }
    }

    fn keeper(code: ErrorCode, path: &str) -> Failure {
        Failure {
            lost: code == ErrorCode::ConnectionLoss,
            ..Failure::new(error_message(code, path))
        }
    }
}

type Outcome = Result<Flow, Failure>;

/// What the shell does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Shell {
    opts: Options,
    /// Opened by the first command that needs the server.
    session: Arc<Mutex<Option<Session>>>,
    printwatches: Arc<AtomicBool>,
    /// Set while `watch` prints events itself.
    streaming: Arc<AtomicBool>,
    events: broadcast::Sender<Event>,
    history: Vec<String>,
}

impl Shell {
    /// A shell with no session yet: the first command that needs the
    /// server connects (so a mistyped command costs the server nothing).
    pub fn new(opts: Options) -> Shell {
        let (events, _) = broadcast::channel(1024);
        Shell {
            opts,
            session: Arc::new(Mutex::new(None)),
            printwatches: Arc::new(AtomicBool::new(true)),
            streaming: Arc::new(AtomicBool::new(false)),
            events,
            history: Vec::new(),
        }
    }

    /// Starts a session (connecting in the background); its events are
    /// printed while printwatches is on and passed to `watch`.
    fn open(&self) -> Session {
        let (session, mut rx) = Session::start(&self.opts.server, self.opts.timeout_ms);
        let json = self.opts.json;
        let (print, streaming, events) = (
            self.printwatches.clone(),
            self.streaming.clone(),
            self.events.clone(),
        );
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if print.load(Ordering::Relaxed) && !streaming.load(Ordering::Relaxed) {
                    let kind = output::event_type_name(ev.event_type);
                    match (json, &ev.path) {
                        // JSON output carries node events only, one object a line.
                        (true, Some(path)) => println!(
                            "{}",
                            json!({"watcher": {"state": ev.state.name(), "type": kind, "path": path}})
                        ),
                        (true, None) => {}
                        (false, path) => println!(
                            "WATCHER::\n\n{}",
                            output::event_text(ev.state.name(), ev.event_type, path.as_deref())
                        ),
                    }
                }
                let _ = events.send(ev);
            }
        });
        session
    }

    /// The session, opened now if there is none.
    pub fn session(&self) -> Session {
        let mut slot = self.session.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| self.open()).clone()
    }

    /// A shared handle for path completion.
    pub fn session_slot(&self) -> Arc<Mutex<Option<Session>>> {
        self.session.clone()
    }

    /// Sends a request once connected (waiting up to the session
    /// timeout); ConnectionLoss at once while no server can be reached.
    async fn call(&self, req: Request) -> Result<Response, ErrorCode> {
        let s = self.session();
        if s.state() == State::Connecting
            && s.wait_connected(self.connect_limit()).await == State::Connecting
            && s.unreachable().is_some()
        {
            return Err(ErrorCode::ConnectionLoss);
        }
        s.call(req).await
    }

    /// Why no server can be reached now, if that is so.
    pub fn unreachable(&self) -> Option<String> {
        let slot = self.session.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().and_then(Session::unreachable)
    }

    /// Stops printing watch events (zkCli prints none once it exits).
    pub fn quiet(&self) {
        self.printwatches.store(false, Ordering::Relaxed);
    }

    /// Closes the session, quietly.
    pub async fn finish(&self) {
        self.quiet();
        self.close().await;
    }

    async fn close(&self) {
        let open = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(s) = open {
            s.close().await;
        }
    }

    /// The interactive prompt: `[zk: host(STATE) n] `.
    pub fn prompt(&self) -> String {
        let s = self.session();
        let state = match s.state() {
            State::Connected => "CONNECTED",
            State::Connecting => "CONNECTING",
            State::Expired => "EXPIRED",
            State::Closed => "CLOSED",
        };
        let (host, _) = s.endpoint();
        let host = if host.is_empty() {
            self.opts.server.clone()
        } else {
            host
        };
        format!("[zk: {host}({state}) {}] ", self.history.len())
    }

    /// Runs one command line (already split into words), recording it in
    /// the history, and prints its output.
    pub async fn execute(&mut self, words: Vec<String>) -> Outcome {
        if words.is_empty() {
            return Ok(Flow::Continue);
        }
        self.history.push(words.join(" "));
        self.dispatch(words).await.map_err(|mut f| {
            if let Some(why) = self.unreachable().filter(|_| f.lost) {
                f.message = format!("{}: cannot connect to {why}", f.message);
            }
            f
        })
    }

    async fn dispatch(&mut self, words: Vec<String>) -> Outcome {
        let (spec, p) = match command::parse(&words) {
            Ok(parsed) => parsed,
            Err(ParseError::NotFound(name)) => {
                eprint!("{}", command::help());
                return Err(Failure {
                    lost: false,
                    message: format!("Command not found: Command not found {name}"),
                    code: 127,
                });
            }
            Err(ParseError::Usage(text)) => return Err(Failure::new(text)),
        };
        match spec.name {
            "quit" => Ok(Flow::Quit),
            "history" => {
                let from = self.history.len().saturating_sub(11);
                for (i, line) in self.history.iter().enumerate().skip(from) {
                    println!("{i} - {line}");
                }
                Ok(Flow::Continue)
            }
            "redo" => {
                let line = p
                    .arg(0)
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| self.history.get(n).cloned())
                    .ok_or_else(|| Failure::new("Command index out of range"))?;
                if command::split(&line).first().map(String::as_str) == Some("redo") {
                    return Err(Failure::new("cannot redo a redo"));
                }
                self.history.push(line.clone());
                Box::pin(self.dispatch(command::split(&line))).await
            }
            "printwatches" => {
                match p.arg(0) {
                    Some("on") => self.printwatches.store(true, Ordering::Relaxed),
                    Some("off") => self.printwatches.store(false, Ordering::Relaxed),
                    _ => println!(
                        "printwatches is {}",
                        if self.printwatches.load(Ordering::Relaxed) {
                            "on"
                        } else {
                            "off"
                        }
                    ),
                }
                Ok(Flow::Continue)
            }
            "version" => {
                println!("ZooKeeper CLI version: {}", crate::version());
                Ok(Flow::Continue)
            }
            "connect" => {
                if let Some(server) = p.arg(0) {
                    self.opts.server = server.to_owned();
                }
                self.close().await;
                let fresh = self.open();
                fresh.wait_connected(self.connect_limit()).await;
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
                Ok(Flow::Continue)
            }
            "close" => {
                self.close().await;
                Ok(Flow::Continue)
            }
            "endpoint" => self.endpoint_status(&p).await,
            "reconfig" => self.reconfig(&words).await,
            name => self.run_on_session(name, &p).await,
        }
    }

    fn connect_limit(&self) -> Duration {
        Duration::from_millis(self.opts.timeout_ms.max(1000) as u64)
    }

    /// Prints `value` as JSON when `-o json`, else the zkCli text.
    fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.opts.json {
            println!("{value}");
        } else {
            print!("{}", text());
        }
    }

    async fn run_on_session(&self, name: &str, p: &Parsed) -> Outcome {
        let path = p.arg(0).unwrap_or("/").to_owned();
        let checked =
            |sequential: bool| output::validate_path(&path, sequential).map_err(Failure::new);
        let call = |req: Request| self.call(req);
        match name {
            "ls" => {
                checked(false)?;
                if p.has('R') {
                    let all = self.subtree(&path).await?;
                    self.emit(json!(all), || {
                        all.iter().map(|x| format!("{x}\n")).collect()
                    });
                    return Ok(Flow::Continue);
                }
                let req = PathWatchRequest {
                    path: path.clone(),
                    watch: p.has('w'),
                };
                let (mut children, stat) = match call(Request::GetChildren2(req)).await {
                    Ok(Response::GetChildren2 { children, stat }) => (children, stat),
                    other => return Err(unexpected(other, &path)),
                };
                children.sort();
                let stat = p.has('s').then_some(stat);
                let mut value = json!({"path": path, "children": children});
                if let Some(st) = &stat {
                    value["stat"] = output::stat_json(st);
                }
                self.emit(value, || {
                    format!(
                        "[{}]\n{}",
                        children.join(", "),
                        stat.as_ref().map(output::stat_text).unwrap_or_default()
                    )
                });
            }
            "get" => {
                checked(false)?;
                let req = PathWatchRequest {
                    path: path.clone(),
                    watch: p.has('w'),
                };
                let (data, stat) = match call(Request::GetData(req)).await {
                    Ok(Response::GetData { data, stat }) => (data, stat),
                    other => return Err(unexpected(other, &path)),
                };
                let text = output::data_text(data.as_deref());
                let mut value = json!({"path": path, "data": data.as_ref().map(|_| text.clone())});
                if p.has('s') {
                    value["stat"] = output::stat_json(&stat);
                }
                self.emit(value, || {
                    let mut out = format!("{text}\n");
                    if p.has('s') {
                        out.push_str(&output::stat_text(&stat));
                    }
                    out
                });
            }
            "stat" => {
                checked(false)?;
                let req = PathWatchRequest {
                    path: path.clone(),
                    watch: p.has('w'),
                };
                match call(Request::Exists(req)).await {
                    Ok(Response::Stat(stat)) => {
                        self.emit(output::stat_json(&stat), || output::stat_text(&stat))
                    }
                    other => return Err(unexpected(other, &path)),
                }
            }
            "set" => {
                checked(false)?;
                let version = version_arg(p)?;
                let data = p
                    .arg(1)
                    .map(|d| bytes::Bytes::copy_from_slice(d.as_bytes()));
                let req = SetDataRequest {
                    path: path.clone(),
                    data,
                    version,
                };
                match call(Request::SetData(req)).await {
                    Ok(Response::Stat(stat)) => self.print_stat_if(p.has('s'), &stat),
                    other => return Err(unexpected(other, &path)),
                }
            }
            "create" => return self.create(p, &path).await,
            "delete" => {
                checked(false)?;
                let version = version_arg(p)?;
                match call(Request::Delete(DeleteRequest {
                    path: path.clone(),
                    version,
                }))
                .await
                {
                    Ok(_) => {}
                    Err(e) => return Err(Failure::keeper(e, &path)),
                }
            }
            "deleteall" => {
                checked(false)?;
                let batch = match p.value('b') {
                    Some(b) => b
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| Failure::new("batch size must be a positive integer"))?,
                    None => 1000,
                };
                let mut all = self.subtree(&path).await?;
                all.reverse();
                for chunk in all.chunks(batch) {
                    let ops = chunk
                        .iter()
                        .map(|p| {
                            Request::Delete(DeleteRequest {
                                path: p.clone(),
                                version: -1,
                            })
                        })
                        .collect();
                    if let Err(e) = call(Request::Multi(ops)).await {
                        return Err(Failure::keeper(e, &path));
                    }
                }
            }
            "getAcl" => {
                checked(false)?;
                match call(Request::GetAcl(PathRequest { path: path.clone() })).await {
                    Ok(Response::GetAcl { acl, stat }) => {
                        let mut value = json!({"path": path, "acl": output::acl_json(&acl)});
                        if p.has('s') {
                            value["stat"] = output::stat_json(&stat);
                        }
                        self.emit(value, || {
                            let mut out = output::acl_text(&acl);
                            if p.has('s') {
                                out.push_str(&output::stat_text(&stat));
                            }
                            out
                        });
                    }
                    other => return Err(unexpected(other, &path)),
                }
            }
            "setAcl" => {
                checked(false)?;
                let version = version_arg(p)?;
                let (acl, warnings) = output::parse_acl(p.arg(1).unwrap_or_default());
                for w in &warnings {
                    eprintln!("{w}");
                }
                if acl.is_empty() {
                    return Err(Failure::new("Acl is not valid : null"));
                }
                let targets = if p.has('R') {
                    self.subtree(&path).await?
                } else {
                    vec![path.clone()]
                };
                let mut last = None;
                for target in targets {
                    let req = SetAclRequest {
                        path: target.clone(),
                        acl: acl.clone(),
                        version,
                    };
                    match call(Request::SetAcl(req)).await {
                        Ok(Response::Stat(stat)) => last = Some(stat),
                        other => return Err(unexpected(other, &target)),
                    }
                }
                if let Some(stat) = last {
                    self.print_stat_if(p.has('s'), &stat);
                }
            }
            "addauth" => {
                let scheme = p.arg(0).unwrap_or_default().to_owned();
                let auth = p
                    .arg(1)
                    .map(|a| bytes::Bytes::copy_from_slice(a.as_bytes()));
                // The reply comes back only on failure (the server closes).
                let _ = call(Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme,
                    auth,
                }))
                .await;
            }
            "sync" => {
                checked(false)?;
                match call(Request::Sync(PathRequest { path: path.clone() })).await {
                    Ok(_) => self.emit(json!({"path": path, "synced": true}), || {
                        "Sync is OK\n".into()
                    }),
                    Err(e) => {
                        return Err(Failure::new(format!(
                            "Sync returned {}",
                            output::keeper_message(e, None)
                        )))
                    }
                }
            }
            "addWatch" => {
                checked(false)?;
                let mode = match p.value('m') {
                    None | Some("PERSISTENT_RECURSIVE") => 1,
                    Some("PERSISTENT") => 0,
                    Some(_) => return Err(Failure::new(command::usage_of("addWatch"))),
                };
                if let Err(e) = call(Request::AddWatch(AddWatchRequest {
                    path: path.clone(),
                    mode,
                }))
                .await
                {
                    return Err(Failure::keeper(e, &path));
                }
            }
            "removewatches" => {
                checked(false)?;
                let watcher_type = if p.has('c') {
                    1
                } else if p.has('d') {
                    2
                } else {
                    3
                };
                let req = WatchesRequest {
                    path: path.clone(),
                    watcher_type,
                };
                if let Err(e) = call(Request::RemoveWatches(req)).await {
                    return Err(Failure::keeper(e, &path));
                }
            }
            "getAllChildrenNumber" => {
                checked(false)?;
                match call(Request::GetAllChildrenNumber(PathRequest {
                    path: path.clone(),
                }))
                .await
                {
                    Ok(Response::GetAllChildrenNumber { total }) => self
                        .emit(json!({"path": path, "count": total}), || {
                            format!("{total}\n")
                        }),
                    other => return Err(unexpected(other, &path)),
                }
            }
            "getEphemerals" => {
                checked(false)?;
                match call(Request::GetEphemerals(PathRequest { path: path.clone() })).await {
                    Ok(Response::GetEphemerals { mut paths }) => {
                        paths.sort();
                        self.emit(json!({"paths": paths}), || {
                            format!("[{}]\n", paths.join(", "))
                        })
                    }
                    other => return Err(unexpected(other, &path)),
                }
            }
            "whoami" => match call(Request::WhoAmI).await {
                Ok(Response::WhoAmI(users)) => {
                    let value = Value::Array(
                        users
                            .iter()
                            .map(|u| json!({"scheme": u.auth_scheme, "user": u.user}))
                            .collect(),
                    );
                    self.emit(value, || {
                        users
                            .iter()
                            .map(|u| format!("Auth scheme: User\n{}: {}\n", u.auth_scheme, u.user))
                            .collect()
                    });
                }
                other => return Err(unexpected(other, "")),
            },
            "config" => {
                let req = PathWatchRequest {
                    path: "/zookeeper/config".into(),
                    watch: p.has('w'),
                };
                match call(Request::GetData(req)).await {
                    Ok(Response::GetData { data, stat }) => {
                        let text = output::data_text(data.as_deref());
                        let shown = if p.has('c') {
                            client_config(&text)
                        } else {
                            text
                        };
                        let mut value = json!({"config": shown});
                        if p.has('s') {
                            value["stat"] = output::stat_json(&stat);
                        }
                        self.emit(value, || {
                            let mut out = if shown.is_empty() {
                                String::new()
                            } else {
                                format!("{shown}\n")
                            };
                            if p.has('s') {
                                out.push_str(&output::stat_text(&stat));
                            }
                            out
                        });
                    }
                    other => return Err(unexpected(other, "/zookeeper/config")),
                }
            }
            "tree" => {
                checked(false)?;
                let tree = self.tree(&path).await?;
                self.emit(tree.json(), || tree.text());
            }
            "watch" => return self.watch(p, &path).await,
            other => return Err(Failure::new(format!("{other} is not available here"))),
        }
        Ok(Flow::Continue)
    }

    fn print_stat_if(&self, wanted: bool, stat: &Stat) {
        if wanted {
            self.emit(output::stat_json(stat), || output::stat_text(stat));
        }
    }

    async fn create(&self, p: &Parsed, path: &str) -> Outcome {
        let (e, seq, container) = (p.has('e'), p.has('s'), p.has('c'));
        let ttl = p.value('t');
        if container && (e || seq) {
            return Err(Failure::new("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential."));
        }
        let ttl = match ttl {
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| Failure::new("-t argument must be a long value"))?,
            ),
            None => None,
        };
        if ttl.is_some() && e {
            return Err(Failure::new("TTLs cannot be used with Ephemeral znodes"));
        }
        if ttl.is_some() && container {
            return Err(Failure::new("TTLs cannot be used with Container znodes"));
        }
        if let Some(t) = ttl {
            if t <= 0 || t > paddock_proto::consts::MAX_TTL_MS {
                return Err(Failure::new(format!(
                    "ttl must be positive and cannot be larger than: {}",
                    paddock_proto::consts::MAX_TTL_MS
                )));
            }
        }
        output::validate_path(path, seq).map_err(Failure::new)?;
        // CreateMode numbers: 1 ephemeral, 2 sequential, 4 container, 5/6 TTL.
        let flags = match (e, seq, container, ttl.is_some()) {
            (true, true, ..) => 3,
            (true, false, ..) => 1,
            (false, true, _, true) => 6,
            (false, true, ..) => 2,
            (_, _, true, _) => 4,
            (_, _, _, true) => 5,
            _ => 0,
        };
        let data = p
            .arg(1)
            .map(|d| bytes::Bytes::copy_from_slice(d.as_bytes()));
        let acl = match p.arg(2) {
            Some(text) => {
                let (acl, warnings) = output::parse_acl(text);
                for w in warnings {
                    eprintln!("{w}");
                }
                acl
            }
            None => output::open_acl(),
        };
        let base = CreateRequest {
            path: path.to_owned(),
            data,
            acl,
            flags,
        };
        let req = match ttl {
            Some(ttl) => Request::CreateTtl(CreateTtlRequest {
                path: base.path,
                data: base.data,
                acl: base.acl,
                flags,
                ttl,
            }),
            None if container => Request::Create {
                opcode: paddock_proto::op::CREATE_CONTAINER,
                req: base,
            },
            None => Request::Create {
                opcode: paddock_proto::op::CREATE2,
                req: base,
            },
        };
        match self.call(req).await {
            Ok(Response::Create { path: created } | Response::Create2 { path: created, .. }) => {
                if self.opts.json {
                    println!("{}", json!({"created": created}));
                } else {
                    eprintln!("Created {created}");
                }
                Ok(Flow::Continue)
            }
            Err(ErrorCode::InvalidAcl) => {
                eprintln!(
                    "{}",
                    output::keeper_message(ErrorCode::InvalidAcl, Some(path))
                );
                Err(Failure::keeper(ErrorCode::InvalidAcl, path))
            }
            other => Err(unexpected(other, path)),
        }
    }

    /// Every path of the subtree at `root`, parents before children,
    /// children in name order.
    async fn subtree(&self, root: &str) -> Result<Vec<String>, Failure> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(path) = stack.pop() {
            let req = PathWatchRequest {
                path: path.clone(),
                watch: false,
            };
            let mut children = match self.call(Request::GetChildren(req)).await {
                Ok(Response::GetChildren { children }) => children,
                Err(ErrorCode::NoNode) if path != root => continue,
                other => return Err(unexpected(other, &path)),
            };
            children.sort();
            for c in children.iter().rev() {
                stack.push(child_path(&path, c));
            }
            out.push(path);
        }
        Ok(out)
    }

    async fn tree(&self, root: &str) -> Result<Node, Failure> {
        let req = PathWatchRequest {
            path: root.to_owned(),
            watch: false,
        };
        let data = match self.call(Request::GetData(req)).await {
            Ok(Response::GetData { data, .. }) => data,
            other => return Err(unexpected(other, root)),
        };
        let req = PathWatchRequest {
            path: root.to_owned(),
            watch: false,
        };
        let mut names = match self.call(Request::GetChildren(req)).await {
            Ok(Response::GetChildren { children }) => children,
            other => return Err(unexpected(other, root)),
        };
        names.sort();
        let mut children = Vec::new();
        for name in names {
            match Box::pin(self.tree(&child_path(root, &name))).await {
                Ok(mut node) => {
                    node.name = name;
                    children.push(node);
                }
                // Deleted while we walked: leave it out.
                Err(_) => continue,
            }
        }
        Ok(Node {
            name: root.to_owned(),
            data: data.map(|d| d.to_vec()),
            children,
        })
    }

    /// `watch [-n count] path`: a persistent recursive watch whose events
    /// are printed one per line until `count` arrived or Ctrl-C.
    async fn watch(&self, p: &Parsed, path: &str) -> Outcome {
        output::validate_path(path, false).map_err(Failure::new)?;
        let limit = match p.value('n') {
            Some(n) => Some(
                n.parse::<usize>()
                    .map_err(|_| Failure::new("-n takes a number of events"))?,
            ),
            None => None,
        };
        let mut events = self.events.subscribe();
        self.streaming.store(true, Ordering::Relaxed);
        let added = self
            .call(Request::AddWatch(AddWatchRequest {
                path: path.to_owned(),
                mode: 1,
            }))
            .await;
        if let Err(e) = added {
            self.streaming.store(false, Ordering::Relaxed);
            return Err(Failure::keeper(e, path));
        }
        if !self.opts.json {
            eprintln!("watching {path} (Ctrl-C stops)");
        }
        let under = |p: &str| p == path || path == "/" || p.starts_with(&format!("{path}/"));
        let mut seen = 0usize;
        while limit.is_none_or(|n| seen < n) {
            let ev = tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::signal::ctrl_c() => break,
            };
            let Some(at) = ev.path.as_deref().filter(|p| under(p)) else {
                if matches!(self.session().state(), State::Expired | State::Closed) {
                    break;
                }
                continue;
            };
            let kind = output::event_type_name(ev.event_type);
            self.emit(json!({"type": kind, "path": at}), || {
                format!("{kind} {at}\n")
            });
            seen += 1;
        }
        let _ = self
            .call(Request::RemoveWatches(WatchesRequest {
                path: path.to_owned(),
                watcher_type: 3,
            }))
            .await;
        self.streaming.store(false, Ordering::Relaxed);
        Ok(Flow::Continue)
    }

    async fn reconfig(&self, words: &[String]) -> Outcome {
        let r = command::parse_reconfig(words, |f| {
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))
        })
        .map_err(|e| match e {
            ParseError::Usage(t) | ParseError::NotFound(t) => Failure::new(t),
        })?;
        let req = ReconfigRequest {
            joining_servers: r.joining.unwrap_or_default(),
            leaving_servers: r.leaving.unwrap_or_default(),
            new_members: r.members.unwrap_or_default(),
            cur_config_id: r.version,
        };
        match self.call(Request::Reconfig(req)).await {
            Ok(Response::GetData { data, stat }) => {
                let text = output::data_text(data.as_deref());
                let mut value = json!({"config": text});
                if r.stat {
                    value["stat"] = output::stat_json(&stat);
                }
                self.emit(value, || {
                    let mut out = format!("Committed new configuration:\n{text}\n");
                    if r.stat {
                        out.push_str(&output::stat_text(&stat));
                    }
                    out
                });
                Ok(Flow::Continue)
            }
            Err(e @ (ErrorCode::ReconfigInProgress | ErrorCode::NewConfigNoQuorum)) => {
                Err(Failure::keeper(e, ""))
            }
            Err(e) => Err(Failure::new(output::keeper_message(e, None))),
            Ok(_) => Err(Failure::new("unexpected reply to reconfig")),
        }
    }

    /// `endpoint status`: each server's srvr answer, one row each.
    async fn endpoint_status(&self, p: &Parsed) -> Outcome {
        if p.arg(0) != Some("status") {
            return Err(Failure::new("endpoint status"));
        }
        let report = crate::status::probe(&crate::server_list(&self.opts.server), false).await;
        self.emit(report.json(), || report.table());
        let down = report.down();
        if down > 0 {
            return Err(Failure::new(format!(
                "{down} of {} servers did not answer",
                report.rows.len()
            )));
        }
        Ok(Flow::Continue)
    }
}

/// `config -c`: the client connection string ZooKeeper derives from the
/// membership: the version, then every server's client address.
fn client_config(text: &str) -> String {
    let mut version = String::new();
    let mut clients = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("version=") {
            version = v.to_owned();
        } else if let Some((_, spec)) = line.split_once('=') {
            if let Some((_, client)) = spec.split_once(';') {
                clients.push(client.to_owned());
            }
        }
    }
    format!("{version} {}", clients.join(","))
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn version_arg(p: &Parsed) -> Result<i32, Failure> {
    match p.value('v') {
        Some(v) => v
            .parse()
            .map_err(|_| Failure::new(format!("version {v} is not a number"))),
        None => Ok(-1),
    }
}

fn unexpected(outcome: Result<Response, ErrorCode>, path: &str) -> Failure {
    match outcome {
        Err(code) => Failure::keeper(code, path),
        Ok(other) => Failure::new(format!("unexpected reply for {path}: {other:?}")),
    }
}

/// One node of `tree`'s output.
pub struct Node {
    pub name: String,
    pub data: Option<Vec<u8>>,
    pub children: Vec<Node>,
}

impl Node {
    fn label(&self) -> String {
        match &self.data {
            None => format!("{} = null", self.name),
            Some(d) => match std::str::from_utf8(d) {
                Ok(s) if s.len() <= 60 => format!("{} = {s:?}", self.name),
                Ok(s) => format!(
                    "{} = {:?}… ({} bytes)",
                    self.name,
                    &s[..s.floor_char_boundary(60)],
                    d.len()
                ),
                Err(_) => format!("{} = <{} bytes>", self.name, d.len()),
            },
        }
    }

    /// The subtree drawn with box-drawing branches.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.label());
        self.draw_children("", &mut out);
        out
    }

    fn draw_children(&self, prefix: &str, out: &mut String) {
        for (i, child) in self.children.iter().enumerate() {
            let last = i + 1 == self.children.len();
            out.push_str(&format!(
                "{prefix}{}{}\n",
                if last { "└── " } else { "├── " },
                child.label()
            ));
            child.draw_children(
                &format!("{prefix}{}", if last { "    " } else { "│   " }),
                out,
            );
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "data": self.data.as_ref().map(|d| String::from_utf8_lossy(d).into_owned()),
            "children": self.children.iter().map(Node::json).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str, data: Option<&str>) -> Node {
        Node {
            name: name.into(),
            data: data.map(|d| d.as_bytes().to_vec()),
            children: vec![],
        }
    }

    #[test]
    fn tree_draws_branches() {
        let mut b = leaf("b", None);
        b.children.push(leaf("c", Some("x")));
        let mut root = leaf("/a", Some("hello"));
        root.children = vec![b, leaf("d", Some(""))];
        assert_eq!(
            root.text(),
            "/a = \"hello\"\n├── b = null\n│   └── c = \"x\"\n└── d = \"\"\n"
        );
    }

    #[test]
    fn client_config_lists_client_addresses() {
        let text = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\nserver.2=h:1:2:observer;h:2182\nversion=100000000";
        assert_eq!(client_config(text), "100000000 0.0.0.0:2181,h:2182");
    }
}
