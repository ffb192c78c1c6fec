//! ZooKeeper's text conventions that tools and four-letter words share.

/// A Java `Date.toString()` of epoch milliseconds, in UTC
/// (`Thu Jan 01 00:00:00 UTC 1970`).
pub fn java_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%a %b %d %H:%M:%S UTC %Y").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_read_like_java() {
        assert_eq!(super::java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            super::java_date(1_795_631_774_000),
            "Wed Nov 25 18:36:14 UTC 2026"
        );
    }
}
