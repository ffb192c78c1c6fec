//! The part of a JAAS login configuration ZooKeeper's DIGEST-MD5 SASL
//! reads: in the server's section, every login module option named
//! `user_NAME` is a user NAME with that password.
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! ```

use std::collections::BTreeMap;

/// The users of `section`; None if the file has no such section (SASL
/// is then off, as in ZooKeeper); Err for a file that does not parse.
pub fn users(text: &str, section: &str) -> Result<Option<BTreeMap<String, String>>, String> {
    let tokens = tokenize(text)?;
    let mut found = None;
    let mut seen = Vec::new();
    let mut t = tokens.iter().peekable();
    while let Some(name) = t.next() {
        let Token::Word(name) = name else {
            return Err(format!("expected a section name, found {name}"));
        };
        if seen.contains(&name) {
            return Err(format!("section {name} is given twice"));
        }
        seen.push(name);
        expect(t.next(), &Token::Open, name)?;
        let mut users = BTreeMap::new();
        // Entries: module flag (option=value)* ;
        loop {
            match t.next() {
                Some(Token::Close) => break,
                Some(Token::Word(_module)) => {}
                other => {
                    return Err(format!(
                        "section {name}: expected a login module, found {}",
                        show(other)
                    ))
                }
            }
            match t.next() {
                Some(Token::Word(_flag)) => {}
                other => {
                    return Err(format!(
                        "section {name}: expected a control flag, found {}",
                        show(other)
                    ))
                }
            }
            loop {
                match t.next() {
                    Some(Token::Semi) => break,
                    Some(Token::Word(key)) => {
                        expect(t.next(), &Token::Equals, name)?;
                        let value = match t.next() {
                            Some(Token::Word(v) | Token::Quoted(v)) => v,
                            other => {
                                return Err(format!(
                                    "section {name}: option {key} has no value, found {}",
                                    show(other)
                                ))
                            }
                        };
                        if let Some(user) = key.strip_prefix("user_") {
                            users.insert(user.to_owned(), value.clone());
                        }
                    }
                    other => {
                        return Err(format!(
                            "section {name}: expected an option or ';', found {}",
                            show(other)
                        ))
                    }
                }
            }
        }
        if t.peek() == Some(&&Token::Semi) {
            t.next();
        }
        if name == section {
            found = Some(users);
        }
    }
    Ok(found)
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semi,
    Equals,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Word(w) => write!(f, "'{w}'"),
            Token::Quoted(q) => write!(f, "\"{q}\""),
            Token::Open => f.write_str("'{'"),
            Token::Close => f.write_str("'}'"),
            Token::Semi => f.write_str("';'"),
            Token::Equals => f.write_str("'='"),
        }
    }
}

fn show(t: Option<&Token>) -> String {
    t.map_or_else(|| "the end of the file".to_owned(), Token::to_string)
}

fn expect(got: Option<&Token>, want: &Token, section: &str) -> Result<(), String> {
    match got {
        Some(t) if t == want => Ok(()),
        other => Err(format!(
            "section {section}: expected {want}, found {}",
            show(other)
        )),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '{' => out.push(Token::Open),
            '}' => out.push(Token::Close),
            ';' => out.push(Token::Semi),
            '=' => out.push(Token::Equals),
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err("a comment is not closed".into()),
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => s.push(c),
                            None => return Err("a quoted value is not closed".into()),
                        },
                        Some(c) => s.push(c),
                        None => return Err("a quoted value is not closed".into()),
                    }
                }
                out.push(Token::Quoted(s));
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};=\"".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_come_from_every_module_of_the_named_section() {
        let text = r#"
            // Kazoo's harness writes this shape.
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="super_secret"
                user_jaasuser="jaas_password";
                /* a second module */
                other.Module optional debug=true user_bob=plain;
            };
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                username="jaasuser" password="jaas_password";
            };
        "#;
        let users = users(text, "Server").unwrap().unwrap();
        let want: BTreeMap<String, String> = [
            ("bob", "plain"),
            ("jaasuser", "jaas_password"),
            ("super", "super_secret"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        assert_eq!(users, want);
        assert_eq!(super::users(text, "Client").unwrap(), Some(BTreeMap::new()));
        assert_eq!(super::users(text, "Missing").unwrap(), None);
    }

    #[test]
    fn an_empty_file_has_no_section_and_a_broken_one_says_where() {
        assert_eq!(users("", "Server").unwrap(), None);
        let e = users("Server { Module required user_a=; };", "Server").unwrap_err();
        assert!(e.contains("user_a has no value"), "{e}");
        let e = users("Server { Module required user_a=\"x;", "Server").unwrap_err();
        assert!(e.contains("not closed"), "{e}");
        let e = users("Server { M required; }; Server { M required; };", "Server").unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }
}
