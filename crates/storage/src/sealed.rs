//! Small files whose every byte is checked before it is trusted: an 8-byte
//! magic naming the format, a `u32` crc32c (big-endian) of the body, then
//! the body.

/// `magic`, the body's checksum, the body.
pub fn seal(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of a sealed file, if it starts with `magic` and its checksum
/// holds; `Ok(None)` if it does not start with `magic` (another format).
pub fn unseal<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> Result<Option<&'a [u8]>, &'static str> {
    let Some(rest) = bytes.strip_prefix(magic) else {
        return Ok(None);
    };
    let Some((crc, body)) = rest.split_first_chunk::<4>() else {
        return Err("cut short before its checksum");
    };
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err("checksum mismatch");
    }
    Ok(Some(body))
}

/// A magic's name and format number: `PDKWAL02` is `PDKWAL`, 2.
fn split_magic(magic: &[u8]) -> Option<(&[u8], u32)> {
    let digits = magic
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let (name, number) = magic.split_at(magic.len() - digits);
    let number = std::str::from_utf8(number).ok()?.parse().ok()?;
    (!name.is_empty()).then_some((name, number))
}

/// Why a file whose first 8 bytes are none of the magics `reads` is
/// refused: another format of the same kind (a later version wrote it),
/// or not a file of this kind at all.
pub fn unknown_format(bytes: &[u8], what: &str, reads: &[&[u8; 8]]) -> String {
    let found = bytes.get(..8).and_then(split_magic);
    let known: Vec<(&[u8], u32)> = reads.iter().filter_map(|m| split_magic(&m[..])).collect();
    match found {
        Some((name, number)) if known.iter().any(|(n, _)| *n == name) => {
            let mut numbers: Vec<String> = known.iter().map(|(_, v)| v.to_string()).collect();
            numbers.sort();
            format!(
                "a {what} of format {number}; this binary reads format {}",
                numbers.join(" and ")
            )
        }
        _ => format!("not a Paddock {what} (unknown magic)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_format_is_named_and_a_foreign_file_is_not_taken_for_one() {
        let reads: [&[u8; 8]; 2] = [b"PDKWAL02", b"PDKWAL01"];
        assert_eq!(
            unknown_format(b"PDKWAL03\0\0", "log segment", &reads),
            "a log segment of format 3; this binary reads format 1 and 2"
        );
        assert_eq!(
            unknown_format(b"PDKSNAP1", "log segment", &reads),
            "not a Paddock log segment (unknown magic)"
        );
        assert_eq!(
            unknown_format(b"PDK", "log segment", &reads),
            "not a Paddock log segment (unknown magic)"
        );
    }

    #[test]
    fn a_sealed_body_comes_back_and_every_flipped_bit_is_caught() {
        let sealed = seal(b"TESTFMT1", b"{\"vote\":7}");
        assert_eq!(unseal(b"TESTFMT1", &sealed), Ok(Some(&b"{\"vote\":7}"[..])));
        assert_eq!(unseal(b"OTHERFMT", &sealed), Ok(None));
        for bit in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(unseal(b"TESTFMT1", &bad), Ok(Some(_))),
                "bit {bit} went unnoticed"
            );
        }
        assert_eq!(
            unseal(b"TESTFMT1", b"TESTFMT1ab"),
            Err("cut short before its checksum")
        );
    }
}
