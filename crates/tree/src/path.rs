//! ZooKeeper path rules (PathUtils.validatePath) and parent/name helpers.

/// Whether `path` is a legal znode path. The checks run on UTF-16 code
/// units, as Java does, so any character outside the BMP is rejected along
/// with control characters, surrogates, the private-use area and
/// U+FFF0..U+FFFF.
pub fn is_valid(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    if path == "/" {
        return true;
    }
    if path.ends_with('/') {
        return false;
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return false;
        }
    }
    path.encode_utf16().all(|u| {
        !(u == 0
            || (0x0001..=0x001f).contains(&u)
            || (0x007f..=0x009f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u))
    })
}

/// The parent of a path the way ZooKeeper computes it: everything before the
/// last '/', with the empty string meaning the root. None if there is no '/'.
pub fn parent(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// The last segment of a path.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_zookeeper_rejects_are_rejected() {
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\u{1}",
            "/a\0b",
            "/😀",
            "/\u{e000}",
            "/\u{fff0}",
            "/\u{85}",
        ] {
            assert!(!is_valid(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn paths_zookeeper_accepts_are_accepted() {
        for good in [
            "/",
            "/a",
            "/a/b",
            "/...",
            "/a.b",
            "/zookeeper",
            "/é",
            "/a-0000000001",
        ] {
            assert!(is_valid(good), "{good:?} should be valid");
        }
    }

    #[test]
    fn parent_and_name_split_at_the_last_slash() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a//b"), Some("/a/"));
        assert_eq!(parent("a"), None);
        assert_eq!(name("/a/b"), "b");
    }
}
