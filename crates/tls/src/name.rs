//! A certificate's subject as Java writes it (`X500Principal.getName()`,
//! RFC 2253): ZooKeeper's `x509` identities are these strings, so ACLs
//! written for ZooKeeper match here too.

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AttributeTypeAndValue;

/// Attribute keywords RFC 2253 names; any other attribute is written as
/// its dotted OID with the value's DER in hex.
const KEYWORDS: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
];

/// The subject of a DER certificate in RFC 2253 form: the most specific
/// name first (`CN=client,OU=ops,O=Example,C=NL`). None if it does not
/// parse.
pub fn subject_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

fn attribute(a: &AttributeTypeAndValue<'_>) -> String {
    let oid = a.attr_type().to_id_string();
    let keyword = KEYWORDS.iter().find(|(o, _)| *o == oid).map(|(_, k)| *k);
    match (keyword, a.as_str()) {
        (Some(k), Ok(value)) => format!("{k}={}", escape(value)),
        (k, _) => format!("{}=#{}", k.unwrap_or(&oid), hex(&value_der(a))),
    }
}

/// As Java's RFC 2253 form: the special characters (and '#' anywhere)
/// escaped with a backslash, and every leading and trailing space.
fn escape(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let lead = chars.iter().take_while(|c| **c == ' ').count();
    let trail = chars.len() - chars.iter().rev().take_while(|c| **c == ' ').count();
    let mut out = String::with_capacity(value.len());
    for (i, &c) in chars.iter().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#')
            || (c == ' ' && (i < lead || i >= trail));
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The attribute value's whole DER encoding: tag, length, content.
fn value_der(a: &AttributeTypeAndValue<'_>) -> Vec<u8> {
    let value = a.attr_value();
    let content = value.data;
    // Identifier octet: class, constructed bit and a low tag number (the
    // string and primitive types a name holds all have one).
    let header = &value.header;
    let class = (header.class() as u8) << 6;
    let constructed = u8::from(header.is_constructed()) << 5;
    let mut der = vec![class | constructed | (value.tag().0 as u8 & 0x1f)];
    let len = content.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(content);
    der
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    fn utf8(s: &str) -> DnValue {
        DnValue::Utf8String(s.into())
    }

    fn cert_with(dn: &[(DnType, DnValue)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for (t, v) in dn {
            name.push(t.clone(), v.clone());
        }
        params.distinguished_name = name;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_is_written_most_specific_first_as_java_does() {
        let der = cert_with(&[
            (DnType::CountryName, utf8("NL")),
            (DnType::OrganizationName, utf8("Example")),
            (DnType::OrganizationalUnitName, utf8("ops")),
            (DnType::CommonName, utf8("client one")),
        ]);
        assert_eq!(
            subject_name(&der).unwrap(),
            "CN=client one,OU=ops,O=Example,C=NL"
        );
    }

    #[test]
    fn special_characters_are_escaped_and_unknown_attributes_are_hex() {
        let der = cert_with(&[
            (DnType::CommonName, utf8("a,b+c")),
            (
                DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                DnValue::Ia5String("me@example.org".try_into().unwrap()),
            ),
        ]);
        // Email is an IA5String (tag 0x16) of 14 bytes.
        assert_eq!(
            subject_name(&der).unwrap(),
            "1.2.840.113549.1.9.1=#160e6d65406578616d706c652e6f7267,CN=a\\,b\\+c"
        );
    }

    #[test]
    fn every_leading_and_trailing_space_and_any_hash_are_escaped() {
        let der = cert_with(&[(DnType::CommonName, utf8("  a#b "))]);
        assert_eq!(subject_name(&der).unwrap(), "CN=\\ \\ a\\#b\\ ");
    }

    #[test]
    fn garbage_is_no_name() {
        assert_eq!(subject_name(b"not a certificate"), None);
    }
}
