//! The wall clock, read in one place: Unix milliseconds and seconds, as the record contract
//! (`received_at_ms`), the validation window (`Limits::now`) and the tables use them.
//! A clock before 1970 reads as 0 rather than failing.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree_and_are_after_2026() {
        let (ms, s) = (now_ms(), now_secs());
        assert!(s >= 1_767_225_600, "{s}"); // 2026-01-01
        assert!((ms / 1000 - s).abs() <= 1);
    }
}
