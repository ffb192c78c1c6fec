//! The server side of SASL DIGEST-MD5 (RFC 2831) as ZooKeeper offers
//! it: protocol `zookeeper`, server name and realm `zk-sasl-md5`, quality
//! of protection `auth` only, users and passwords from the JAAS file.
//! Pure: the connection feeds it the client's tokens and sends back what
//! it returns.

use md5::{Digest, Md5};
use std::collections::BTreeMap;

/// ZooKeeper's fixed server name, which is also the only realm.
const REALM: &str = "zk-sasl-md5";
const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";
/// A longer response is refused unread, as Java's server does.
const MAX_RESPONSE_BYTES: usize = 4096;

/// A fresh nonce: 30 random bytes in base64 (40 characters), as Java's;
/// None without the OS's randomness (the exchange then fails).
pub fn nonce() -> Option<String> {
    use base64::Engine;
    let mut bytes = [0u8; 30];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes))
}

/// One connection's exchange.
pub struct DigestMd5 {
    nonce: String,
    step: Step,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Challenge,
    Response,
    Done,
}

/// What one client token leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this token and wait for the next.
    Continue(Vec<u8>),
    /// The client proved to be `user`; send `token` (rspauth).
    Authenticated { user: String, token: Vec<u8> },
    /// Authentication failed (why, for the log).
    Failed(String),
}

impl DigestMd5 {
    /// A new exchange with a fresh random `nonce`.
    pub fn new(nonce: String) -> DigestMd5 {
        DigestMd5 {
            nonce,
            step: Step::Challenge,
        }
    }

    pub fn step(&mut self, token: &[u8], users: &BTreeMap<String, String>) -> Outcome {
        match self.step {
            Step::Challenge => {
                self.step = Step::Response;
                Outcome::Continue(
                    format!(
                        "realm=\"{REALM}\",nonce=\"{}\",charset=utf-8,algorithm=md5-sess",
                        self.nonce
                    )
                    .into_bytes(),
                )
            }
            Step::Response => {
                self.step = Step::Done;
                match self.check(token, users) {
                    Ok((user, token)) => Outcome::Authenticated { user, token },
                    Err(why) => Outcome::Failed(why),
                }
            }
            Step::Done => Outcome::Failed("the exchange is already over".into()),
        }
    }

    fn check(
        &self,
        token: &[u8],
        users: &BTreeMap<String, String>,
    ) -> Result<(String, Vec<u8>), String> {
        if token.len() > MAX_RESPONSE_BYTES {
            return Err(format!("a response of {} bytes is too long", token.len()));
        }
        let text = std::str::from_utf8(token).map_err(|_| "the response is not UTF-8")?;
        let d = directives(text)?;
        let get = |k: &str| d.get(k).map(String::as_str);
        if get("charset").is_some_and(|c| c != "utf-8") {
            return Err("charset must be utf-8".into());
        }
        let user = get("username").ok_or("no username")?;
        if get("realm").unwrap_or("") != REALM {
            return Err(format!("realm must be {REALM}"));
        }
        if get("nonce") != Some(self.nonce.as_str()) {
            return Err("not the nonce we sent".into());
        }
        let cnonce = get("cnonce").ok_or("no cnonce")?;
        if let Some(nc) = get("nc") {
            if i64::from_str_radix(nc, 16) != Ok(1) {
                return Err("nc must be 1".into());
            }
        }
        let qop = get("qop").unwrap_or("auth");
        if qop != "auth" {
            return Err(format!("qop {qop} is not offered (only auth)"));
        }
        let uri = get("digest-uri").ok_or("no digest-uri")?;
        if !uri.eq_ignore_ascii_case(DIGEST_URI) {
            return Err(format!("digest-uri must be {DIGEST_URI}"));
        }
        let response = get("response").ok_or("no response")?;
        let password = users.get(user).ok_or_else(|| format!("no user {user}"))?;
        let a = Answer {
            user,
            password,
            nonce: &self.nonce,
            cnonce,
            authzid: get("authzid"),
            qop,
            uri,
        };
        if a.response("AUTHENTICATE") != response {
            return Err(format!("wrong password for {user}"));
        }
        Ok((
            user.to_owned(),
            format!("rspauth={}", a.response("")).into_bytes(),
        ))
    }
}

/// The values a digest is computed from (RFC 2831 section 2.1.2.1).
struct Answer<'a> {
    user: &'a str,
    password: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    authzid: Option<&'a str>,
    qop: &'a str,
    uri: &'a str,
}

impl Answer<'_> {
    /// The client's `response` (method "AUTHENTICATE") or the server's
    /// `rspauth` (method "").
    fn response(&self, method: &str) -> String {
        let mut inner = Md5::new();
        for (i, part) in [self.user, REALM, self.password].iter().enumerate() {
            if i > 0 {
                inner.update(b":");
            }
            inner.update(latin1_or_utf8(part));
        }
        let mut a1 = Md5::new();
        a1.update(inner.finalize());
        a1.update(format!(":{}:{}", self.nonce, self.cnonce));
        if let Some(z) = self.authzid {
            a1.update(format!(":{z}"));
        }
        let ha1 = hex(&a1.finalize());
        let ha2 = hex(&Md5::digest(format!("{method}:{}", self.uri)));
        hex(&Md5::digest(format!(
            "{ha1}:{}:00000001:{}:{}:{ha2}",
            self.nonce, self.cnonce, self.qop
        )))
    }
}

/// Java's server hashes names and passwords as ISO-8859-1 when every
/// character fits, else as UTF-8.
fn latin1_or_utf8(s: &str) -> Vec<u8> {
    match s.chars().all(|c| u32::from(c) <= 0xff) {
        true => s.chars().map(|c| c as u8).collect(),
        false => s.as_bytes().to_vec(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key=value` and `key="quoted value"` pairs separated by commas; keys
/// case-insensitive, a key given twice is an error.
fn directives(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("a directive has no value")?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => v.push(c),
                        None => return Err("a quoted value is not closed".into()),
                    },
                    Some((_, c)) => v.push(c),
                    None => return Err("a quoted value is not closed".into()),
                }
            };
            value = v;
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        if out.insert(key.clone(), value).is_some() {
            return Err(format!("{key} is given twice"));
        }
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_rfc_2831s_own_example() {
        // RFC 2831 section 4, with its realm and URI in place of ours.
        let inner = |user: &str, realm: &str, pw: &str| Md5::digest(format!("{user}:{realm}:{pw}"));
        let mut a1 = Md5::new();
        a1.update(inner("chris", "elwood.innosoft.com", "secret"));
        a1.update(":OA6MG9tEQGm2hh:OA6MHXh6VqTrRk");
        let ha1 = hex(&a1.finalize());
        let ha2 = hex(&Md5::digest("AUTHENTICATE:imap/elwood.innosoft.com"));
        let response = hex(&Md5::digest(format!(
            "{ha1}:OA6MG9tEQGm2hh:00000001:OA6MHXh6VqTrRk:auth:{ha2}"
        )));
        assert_eq!(response, "d388dad90d4bbd760a152321f2143af7");
    }

    fn users() -> BTreeMap<String, String> {
        [("jaasuser".to_owned(), "jaas_password".to_owned())].into()
    }

    fn client_response(nonce: &str, user: &str, password: &str) -> String {
        let a = Answer {
            user,
            password,
            nonce,
            cnonce: "c1",
            authzid: None,
            qop: "auth",
            uri: DIGEST_URI,
        };
        format!(
            "username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",cnonce=\"c1\",nc=00000001,qop=auth,digest-uri=\"{DIGEST_URI}\",response={}",
            a.response("AUTHENTICATE")
        )
    }

    #[test]
    fn a_right_password_authenticates_and_a_wrong_one_fails() {
        let mut s = DigestMd5::new("n0nce".into());
        let Outcome::Continue(challenge) = s.step(b"", &users()) else {
            panic!("no challenge")
        };
        assert_eq!(
            challenge,
            b"realm=\"zk-sasl-md5\",nonce=\"n0nce\",charset=utf-8,algorithm=md5-sess"
        );
        let got = s.step(
            client_response("n0nce", "jaasuser", "jaas_password").as_bytes(),
            &users(),
        );
        let Outcome::Authenticated { user, token } = got else {
            panic!("{got:?}")
        };
        assert_eq!(user, "jaasuser");
        assert!(token.starts_with(b"rspauth=") && token.len() == 40);
        assert!(matches!(s.step(b"again", &users()), Outcome::Failed(_)));

        for (nonce, user, pw) in [
            ("n0nce", "jaasuser", "wrong"),
            ("n0nce", "nobody", "jaas_password"),
            ("other", "jaasuser", "jaas_password"),
        ] {
            let mut s = DigestMd5::new("n0nce".into());
            s.step(b"", &users());
            let got = s.step(client_response(nonce, user, pw).as_bytes(), &users());
            assert!(matches!(got, Outcome::Failed(_)), "{got:?}");
        }
    }

    #[test]
    fn directives_parse_quotes_escapes_and_refuse_repeats() {
        let d = directives(" a=1, B=\"x\\\"y,z\" ,c=\"\"").unwrap();
        assert_eq!(d["a"], "1");
        assert_eq!(d["b"], "x\"y,z");
        assert_eq!(d["c"], "");
        assert!(directives("a=1,A=2").is_err());
        assert!(directives("a=\"open").is_err());
        assert!(directives("novalue").is_err());
    }
}
