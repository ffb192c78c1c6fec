//! ACL checks and fix-up, and the auth schemes' identity rules
//! (world, auth, digest, ip, super), as ZooKeeper 3.8 applies them.

use base64::Engine;
use paddock_proto::consts::perms;
use paddock_proto::{Acl, Id, Request};
use sha1::{Digest, Sha1};
use std::net::IpAddr;

pub const WORLD: &str = "world";
pub const ANYONE: &str = "anyone";
pub const DIGEST: &str = "digest";
pub const IP: &str = "ip";
pub const SUPER: &str = "super";
pub const AUTH: &str = "auth";
pub const X509: &str = "x509";
pub const SASL: &str = "sasl";

/// The authentication providers configured beyond ip and digest (which
/// every server has): an ACL may name only a configured provider's ids.
/// Which are configured is the proposing server's business
/// (`mark_unprovided`), so apply does not depend on any server's config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Providers {
    /// A client certificate's subject (a secure client port).
    pub x509: bool,
    /// A SASL user (ZooKeeper's SASLAuthenticationProvider configured).
    pub sasl: bool,
}

pub fn id(scheme: &str, id: &str) -> Id {
    Id {
        scheme: scheme.to_owned(),
        id: id.to_owned(),
    }
}

/// `[ACL(ALL, world:anyone)]`.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: id(WORLD, ANYONE),
    }]
}

/// `user:BASE64(SHA1("user:password"))` for digest auth data `user:password`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Whether the identities hold a super id (which bypasses every check).
pub fn is_super(ids: &[Id]) -> bool {
    ids.iter().any(|i| i.scheme == SUPER)
}

/// Whether `ids` may do `wanted` on a node whose ACL is `acl`.
pub fn allowed(acl: &[Acl], wanted: i32, ids: &[Id]) -> bool {
    if acl.is_empty() || is_super(ids) {
        return true;
    }
    acl.iter().any(|a| {
        a.perms & wanted != 0
            && ((a.id.scheme == WORLD && a.id.id == ANYONE)
                || ids
                    .iter()
                    .any(|i| i.scheme == a.id.scheme && id_matches(&a.id.scheme, &i.id, &a.id.id)))
    })
}

fn id_matches(scheme: &str, have: &str, acl_id: &str) -> bool {
    match scheme {
        IP => ip_matches(have, acl_id),
        // ZooKeeper's SASL provider lets its user named super do anything.
        SASL => have == acl_id || have == SUPER,
        _ => have == acl_id,
    }
}

/// `addr` or `addr/bits`, parsed.
fn parse_ip_expr(expr: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => b.parse::<u32>().ok().filter(|&b| b <= max)?,
    };
    Some((addr, bits))
}

fn ip_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Whether client address `have` falls in the ACL's `addr[/bits]`.
fn ip_matches(have: &str, acl_expr: &str) -> bool {
    let (Ok(have), Some((net, bits))) = (have.parse::<IpAddr>(), parse_ip_expr(acl_expr)) else {
        return false;
    };
    if have.is_ipv4() != net.is_ipv4() {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    // IPv4 values sit in the top 32 bits, so a /bits prefix is the same mask.
    ip_bits(have) & mask == ip_bits(net) & mask
}

/// Whether an id is well-formed for its scheme's provider: ip, digest,
/// x509 and sasl (whose providers the proposing server checked, see
/// `mark_unprovided`); any other scheme has none and is invalid.
fn provider_accepts(a: &Id) -> bool {
    match a.scheme.as_str() {
        // Java's split(":") drops trailing empty strings: "u:" is one part.
        DIGEST => a.id.trim_end_matches(':').split(':').count() == 2,
        IP => parse_ip_expr(&a.id).is_some(),
        X509 => !a.id.is_empty(),
        SASL => true,
        _ => false,
    }
}

/// For the server proposing a write: the ACL entries of `req` (and of a
/// multi's ops) that name a provider this server does not have are given
/// a scheme no provider accepts, so the op fails with InvalidACL where
/// ZooKeeper's would, on every replica alike, whatever their own config.
pub fn mark_unprovided(req: &mut Request, providers: Providers) {
    let acl = match req {
        Request::Create { req, .. } => &mut req.acl,
        Request::CreateTtl(r) => &mut r.acl,
        Request::SetAcl(r) => &mut r.acl,
        Request::Multi(ops) => {
            for op in ops {
                mark_unprovided(op, providers);
            }
            return;
        }
        _ => return,
    };
    for a in acl {
        let missing = match a.id.scheme.as_str() {
            X509 => !providers.x509,
            SASL => !providers.sasl,
            _ => false,
        };
        if missing {
            a.id.scheme = format!("{} (no provider)", a.id.scheme);
        }
    }
}

/// Whether an identity was proven (a password, a certificate, a SASL
/// exchange), so an `auth` ACL entry stands for it; an ip is not.
fn proven(scheme: &str) -> bool {
    matches!(scheme, DIGEST | X509 | SASL)
}

/// Validates and expands an ACL for create/setACL: duplicates dropped,
/// `auth` entries replaced by the caller's proven ids (digest, x509,
/// sasl). None means InvalidACL.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Option<Vec<Acl>> {
    if acl.is_empty() {
        return None;
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    for a in unique {
        if a.id.scheme == WORLD && a.id.id == ANYONE {
            out.push(a.clone());
        } else if a.id.scheme == AUTH {
            let mut any = false;
            for i in ids.iter().filter(|i| proven(&i.scheme)) {
                any = true;
                out.push(Acl {
                    perms: a.perms,
                    id: i.clone(),
                });
            }
            if !any {
                return None;
            }
        } else if provider_accepts(&a.id) {
            out.push(a.clone());
        } else {
            return None;
        }
    }
    Some(out)
}

/// The ACL as getACL shows it to a caller without ADMIN: digest hashes hidden.
pub fn masked(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            let mut a = a.clone();
            if a.id.scheme == DIGEST {
                let user = a.id.id.split(':').next().unwrap_or("").to_owned();
                a.id.id = format!("{user}:x");
            }
            a
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_proto::SetAclRequest;

    fn acl(perms: i32, scheme: &str, i: &str) -> Acl {
        Acl {
            perms,
            id: id(scheme, i),
        }
    }

    #[test]
    fn digest_of_super_test_matches_zookeeper() {
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn world_anyone_allows_everyone_for_its_perms_only() {
        let a = vec![acl(perms::READ, WORLD, ANYONE)];
        assert!(allowed(&a, perms::READ, &[]));
        assert!(!allowed(&a, perms::WRITE, &[]));
        assert!(allowed(&a, perms::WRITE, &[id(SUPER, "")]));
        assert!(allowed(&[], perms::WRITE, &[]));
    }

    #[test]
    fn ip_acls_match_by_prefix() {
        let a = vec![acl(perms::ALL, IP, "10.1.0.0/16")];
        assert!(allowed(&a, perms::READ, &[id(IP, "10.1.2.3")]));
        assert!(!allowed(&a, perms::READ, &[id(IP, "10.2.2.3")]));
        let exact = vec![acl(perms::ALL, IP, "127.0.0.1")];
        assert!(allowed(&exact, perms::READ, &[id(IP, "127.0.0.1")]));
        assert!(!allowed(&exact, perms::READ, &[id(IP, "127.0.0.2")]));
        let v6 = vec![acl(perms::ALL, IP, "::1")];
        assert!(allowed(&v6, perms::READ, &[id(IP, "::1")]));
        assert!(!allowed(&v6, perms::READ, &[id(IP, "127.0.0.1")]));
    }

    #[test]
    fn fixup_expands_auth_and_rejects_invalid_ids() {
        let me = id(DIGEST, &digest_id("u:p"));
        let got = fixup(&[acl(31, AUTH, "")], &[id(IP, "127.0.0.1"), me.clone()]);
        assert_eq!(got, Some(vec![Acl { perms: 31, id: me }]));
        assert_eq!(fixup(&[acl(31, AUTH, "")], &[id(IP, "127.0.0.1")]), None);
        assert_eq!(fixup(&[], &[]), None);
        assert_eq!(fixup(&[acl(31, DIGEST, "nocolon")], &[]), None);
        assert_eq!(fixup(&[acl(31, DIGEST, "u:")], &[]), None);
        assert_eq!(fixup(&[acl(31, IP, "300.0.0.1")], &[]), None);
        assert_eq!(fixup(&[acl(31, IP, "10.0.0.0/33")], &[]), None);
        assert_eq!(fixup(&[acl(31, WORLD, "someone")], &[]), None);
        assert_eq!(fixup(&[acl(31, "x509", "")], &[]), None);
        assert!(fixup(&[acl(31, IP, "10.0.0.0/8")], &[]).is_some());
    }

    #[test]
    fn x509_and_sasl_ids_need_their_provider_and_count_as_proven() {
        assert!(fixup(&[acl(31, X509, "CN=a")], &[],).is_some());
        assert!(fixup(&[acl(31, SASL, "bob")], &[]).is_some());
        // Without the provider on the proposing server: InvalidACL.
        let mut req = Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl: vec![acl(31, SASL, "bob"), acl(31, X509, "CN=a")],
            version: -1,
        });
        mark_unprovided(
            &mut req,
            Providers {
                x509: true,
                sasl: false,
            },
        );
        let Request::SetAcl(r) = &req else {
            unreachable!()
        };
        assert_eq!(fixup(&r.acl, &[]), None);
        assert!(fixup(&r.acl[1..], &[]).is_some());
        let cert = id(X509, "CN=a,O=b");
        let user = id(SASL, "bob");
        let got = fixup(
            &[acl(31, AUTH, "")],
            &[id(IP, "::1"), cert.clone(), user.clone()],
        );
        let want = vec![
            Acl {
                perms: 31,
                id: cert.clone(),
            },
            Acl {
                perms: 31,
                id: user.clone(),
            },
        ];
        assert_eq!(got, Some(want));
        let a = vec![
            acl(perms::READ, X509, "CN=a,O=b"),
            acl(perms::READ, SASL, "bob"),
        ];
        assert!(allowed(&a, perms::READ, &[cert]));
        assert!(allowed(&a, perms::READ, &[user]));
        assert!(!allowed(&a, perms::READ, &[id(X509, "CN=a")]));
        assert!(!allowed(&a, perms::READ, &[id(SASL, "Bob")]));
        // ZooKeeper's SASL provider: the SASL user "super" matches any sasl entry.
        assert!(allowed(&a, perms::READ, &[id(SASL, SUPER)]));
    }

    #[test]
    fn fixup_drops_duplicates() {
        let a = acl(31, WORLD, ANYONE);
        assert_eq!(
            fixup(&[a.clone(), a.clone(), a.clone()], &[]),
            Some(vec![a])
        );
    }

    #[test]
    fn masking_hides_digest_hashes_only() {
        let got = masked(&[acl(1, DIGEST, "bob:abc="), acl(1, IP, "1.2.3.4")]);
        assert_eq!(got, vec![acl(1, DIGEST, "bob:x"), acl(1, IP, "1.2.3.4")]);
    }
}
