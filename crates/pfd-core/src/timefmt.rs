//! Timestamps in the format the LSTM_PFD service used: UTC ISO-8601 with microseconds and a
//! trailing `Z` (Python's `datetime.utcnow().isoformat() + "Z"`).

use time::{format_description::BorrowedFormatItem, macros::format_description, OffsetDateTime};

const FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats `t` (converted to UTC) as `2026-11-27T22:07:16.123456Z`.
pub fn iso8601(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .expect("the format only uses fields every OffsetDateTime has")
}

/// The current time, formatted by [`iso8601`].
pub fn now() -> String {
    iso8601(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_microseconds_and_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_281_236_123_456_789).unwrap();
        assert_eq!(iso8601(t), "2025-11-27T22:07:16.123456Z");
    }

    #[test]
    fn now_ends_with_z() {
        let s = now();
        assert!(s.ends_with('Z') && s.len() == 27, "{s}");
    }
}
