//! Command lines: splitting a typed line into words, the commands zkCli
//! knows with their usage strings, and option parsing in Commons CLI's
//! manner (options may come before or after the arguments). Pure.

/// A command's name, its usage (exactly as zkCli prints it), the options
/// it takes (`'x'` a flag, `'X'` in `with_value` when it takes a value) and
/// the least and most positional arguments after the name.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub usage: &'static str,
    pub flags: &'static str,
    pub with_value: &'static str,
    pub min_args: usize,
    pub max_args: usize,
}

const fn spec(
    name: &'static str,
    usage: &'static str,
    flags: &'static str,
    with_value: &'static str,
    min_args: usize,
    max_args: usize,
) -> Spec {
    Spec {
        name,
        usage,
        flags,
        with_value,
        min_args,
        max_args,
    }
}

const ANY: usize = usize::MAX;

/// Every command, in zkCli's help order, then Paddock's own.
pub const COMMANDS: &[Spec] = &[
    spec("addWatch", "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE", "", "m", 1, 1),
    spec("addauth", "scheme auth", "", "", 1, 2),
    spec("close", "", "", "", 0, ANY),
    spec("config", "[-c] [-w] [-s]", "cws", "", 0, ANY),
    spec("connect", "host:port", "", "", 0, 1),
    spec("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]", "sec", "t", 1, 3),
    spec("delete", "[-v version] path", "", "v", 1, 1),
    spec("deleteall", "path [-b batch size]", "", "b", 1, 1),
    spec("get", "[-s] [-w] path", "sw", "", 1, 1),
    spec("getAcl", "[-s] path", "s", "", 1, 1),
    spec("getAllChildrenNumber", "path", "", "", 1, 1),
    spec("getEphemerals", "path", "", "", 0, 1),
    spec("history", "", "", "", 0, ANY),
    spec("ls", "[-s] [-w] [-R] path", "swR", "", 1, 1),
    spec("printwatches", "on|off", "", "", 0, 1),
    spec("quit", "", "", "", 0, ANY),
    spec("reconfig", "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]", "s", "v", 0, 0),
    spec("redo", "cmdno", "", "", 1, 1),
    spec("removewatches", "path [-c|-d|-a] [-l]", "cdal", "", 1, 1),
    spec("set", "[-s] [-v version] path data", "s", "v", 2, 2),
    spec("setAcl", "[-s] [-v version] [-R] path acl", "sR", "v", 2, 2),
    spec("stat", "[-w] path", "w", "", 1, 1),
    spec("sync", "path", "", "", 1, 1),
    spec("version", "", "", "", 0, ANY),
    spec("whoami", "", "", "", 0, ANY),
    spec("tree", "path # Paddock: the subtree with each node's data", "", "", 0, 1),
    spec("watch", "[-n count] path # Paddock: print every change under path", "", "n", 1, 1),
    spec("endpoint", "status # Paddock: every server's mode, zxid and load", "", "", 1, 1),
];

pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The usage line of one command, as printed on a bad invocation.
pub fn usage(spec: &Spec) -> String {
    format!("{} {}", spec.name, spec.usage)
}

/// The usage line of the command called `name`.
pub fn usage_of(name: &str) -> String {
    find(name).map_or_else(|| name.to_owned(), usage)
}

/// The help text printed for an unknown command.
pub fn help() -> String {
    let mut out = String::from(
        "ZooKeeper -server host:port -client-configuration properties-file cmd args\n",
    );
    for c in COMMANDS {
        out.push_str(&format!("\t{} {}\n", c.name, c.usage));
    }
    out
}

/// A parsed invocation: the options given and the positional arguments
/// (without the command name).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub flags: String,
    pub values: Vec<(char, String)>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn has(&self, flag: char) -> bool {
        self.flags.contains(flag)
    }

    pub fn value(&self, opt: char) -> Option<&str> {
        self.values
            .iter()
            .find(|(o, _)| *o == opt)
            .map(|(_, v)| v.as_str())
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }
}

/// Why a line could not be parsed; the text is what the shell prints.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    NotFound(String),
    Usage(String),
}

/// Parses `words` (the command name first) against its spec. `reconfig`
/// takes long options and is parsed by its own function.
pub fn parse(words: &[String]) -> Result<(&'static Spec, Parsed), ParseError> {
    let Some(name) = words.first() else {
        return Err(ParseError::Usage(String::new()));
    };
    let spec = find(name).ok_or_else(|| ParseError::NotFound(name.clone()))?;
    let mut parsed = Parsed::default();
    let mut rest = words[1..].iter();
    while let Some(w) = rest.next() {
        let opts = match w.strip_prefix('-') {
            Some(o) if !o.is_empty() && spec.name != "reconfig" => o,
            _ => {
                parsed.args.push(w.clone());
                continue;
            }
        };
        let mut chars = opts.chars();
        while let Some(c) = chars.next() {
            if spec.with_value.contains(c) {
                // The value is the rest of this word or the next word.
                let tail: String = chars.collect();
                let v = if tail.is_empty() {
                    rest.next().cloned().ok_or_else(|| {
                        ParseError::Usage(format!("Missing argument for option: {c}"))
                    })?
                } else {
                    tail
                };
                parsed.values.push((c, v));
                break;
            } else if spec.flags.contains(c) {
                parsed.flags.push(c);
            } else {
                return Err(ParseError::Usage(format!("Unrecognized option: -{c}")));
            }
        }
    }
    if spec.name == "reconfig" {
        return Ok((spec, parsed));
    }
    if parsed.args.len() < spec.min_args || parsed.args.len() > spec.max_args {
        return Err(ParseError::Usage(usage(spec)));
    }
    Ok((spec, parsed))
}

/// Splits a typed line into words: whitespace separates, and '…' or "…"
/// keep spaces inside one word (the quotes are dropped).
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The membership change a reconfig asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconfig {
    pub joining: Option<String>,
    pub leaving: Option<String>,
    pub members: Option<String>,
    pub version: i64,
    pub stat: bool,
}

/// Parses reconfig's words: `-add a,b`, `-remove 1,2`, `-members ...`,
/// `-file zoo.cfg.dynamic` (read by the caller), `-v version`, `-s`.
pub fn parse_reconfig(
    words: &[String],
    read_file: impl Fn(&str) -> Result<String, String>,
) -> Result<Reconfig, ParseError> {
    let bad = || ParseError::Usage(usage_of("reconfig"));
    let mut r = Reconfig {
        version: -1,
        ..Reconfig::default()
    };
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(bad);
        match w.as_str() {
            "-s" => r.stat = true,
            "-v" => {
                let v = value()?;
                r.version =
                    i64::from_str_radix(v.trim_start_matches("0x"), 16).map_err(|_| bad())?;
            }
            "-add" => append(&mut r.joining, value()?),
            "-remove" => append(&mut r.leaving, value()?),
            "-members" => append(&mut r.members, value()?),
            "-file" => {
                let text = read_file(&value()?).map_err(ParseError::Usage)?;
                let servers: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("server."))
                    .collect();
                append(&mut r.members, servers.join(","));
            }
            _ => return Err(bad()),
        }
    }
    let incremental = r.joining.is_some() || r.leaving.is_some();
    if incremental == r.members.is_some() {
        return Err(bad());
    }
    Ok(r)
}

fn append(to: &mut Option<String>, more: String) {
    match to {
        Some(s) => {
            s.push(',');
            s.push_str(&more);
        }
        None => *to = Some(more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split(s)
    }

    #[test]
    fn splitting_keeps_quoted_spaces() {
        assert_eq!(
            words(" create /a 'hello world'  x"),
            ["create", "/a", "hello world", "x"]
        );
        assert_eq!(words("set /a \"\""), ["set", "/a", ""]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn options_may_come_anywhere_and_take_values() {
        let (spec, p) = parse(&words("create -s /a -e data -t 100")).unwrap();
        assert_eq!(spec.name, "create");
        assert!(p.has('s') && p.has('e') && !p.has('c'));
        assert_eq!(p.value('t'), Some("100"));
        assert_eq!(p.args, ["/a", "data"]);
        let (_, p) = parse(&words("removewatches /a -d -l")).unwrap();
        assert_eq!(p.flags, "dl");
        let (_, p) = parse(&words("delete -v3 /a")).unwrap();
        assert_eq!(p.value('v'), Some("3"));
        let (_, p) = parse(&words("ls -sR /")).unwrap();
        assert!(p.has('s') && p.has('R'));
    }

    #[test]
    fn bad_invocations_name_the_problem() {
        assert_eq!(
            parse(&words("foo /")).unwrap_err(),
            ParseError::NotFound("foo".into())
        );
        assert_eq!(
            parse(&words("set /a")).unwrap_err(),
            ParseError::Usage("set [-s] [-v version] path data".into())
        );
        assert_eq!(
            parse(&words("get -x /a")).unwrap_err(),
            ParseError::Usage("Unrecognized option: -x".into())
        );
        assert_eq!(
            parse(&words("delete /a -v")).unwrap_err(),
            ParseError::Usage("Missing argument for option: v".into())
        );
    }

    #[test]
    fn reconfig_takes_incremental_or_whole_membership() {
        let no_file = |_: &str| Err("no files here".to_owned());
        let r = parse_reconfig(
            &words("reconfig -add server.4=h:1:2;3 -remove 2 -v 0x10 -s"),
            no_file,
        )
        .unwrap();
        assert_eq!(r.joining.as_deref(), Some("server.4=h:1:2;3"));
        assert_eq!(r.leaving.as_deref(), Some("2"));
        assert_eq!((r.version, r.stat), (16, true));
        let r = parse_reconfig(&words("reconfig -file x"), |_| {
            Ok("server.1=a:1:2\n# c\nserver.2=b:1:2\n".into())
        })
        .unwrap();
        assert_eq!(r.members.as_deref(), Some("server.1=a:1:2,server.2=b:1:2"));
        assert!(parse_reconfig(&words("reconfig"), no_file).is_err());
        assert!(parse_reconfig(&words("reconfig -add a -members b"), no_file).is_err());
    }
}
