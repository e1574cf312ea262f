//! Timestamps in sync payloads: one text form every region and backend agrees on, so payloads
//! and digests compare byte for byte.

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike};

/// `2026-11-25T15:00:00.123456Z`: RFC 3339, UTC, exactly six fraction digits.
pub fn format_timestamp(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An RFC 3339 timestamp as UTC; `None` when it is not RFC 3339, is more precise than a
/// microsecond (the backends store microseconds; finer values would not compare equal later),
/// is a leap second (`…:60`), or falls outside the years 1000–9999 once in UTC (MariaDB's
/// `DATETIME` range): every accepted value is stored and read back the same on every backend.
pub fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    let t = DateTime::parse_from_rfc3339(s).ok()?.naive_utc();
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 || nanos % 1_000 != 0 || !(1000..=9999).contains(&t.year()) {
        return None;
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_text_form_round_trips_and_other_offsets_become_utc() {
        let t = parse_timestamp("2026-11-25T15:00:00.123456Z").unwrap();
        assert_eq!(format_timestamp(t), "2026-11-25T15:00:00.123456Z");
        let shifted = parse_timestamp("2026-11-25T16:00:00+01:00").unwrap();
        assert_eq!(format_timestamp(shifted), "2026-11-25T15:00:00.000000Z");
    }

    /// Regression (review of issue 15): values SQLite stores but MariaDB's DATETIME refuses or
    /// changes were accepted, so a replicated payload failed its page on one backend only.
    #[test]
    fn values_a_backend_cannot_store_as_given_are_refused() {
        for bad in [
            "2026-11-25T15:00:00.1234567Z", // finer than a microsecond
            "2016-12-31T23:59:60Z",         // a leap second
            "0999-12-31T23:59:59Z",         // before DATETIME's range
            "1000-01-01T00:30:00+01:00",    // in range as written, before it in UTC
            "9999-12-31T23:30:00-01:00",    // after it in UTC
            "2026-11-25 15:00:00",          // not RFC 3339
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert!(parse_timestamp("1000-01-01T00:00:00Z").is_some());
        assert!(parse_timestamp("9999-12-31T23:59:59.999999Z").is_some());
    }
}
