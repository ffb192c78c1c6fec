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

#[cfg(test)]
mod tests {
    use super::*;

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
