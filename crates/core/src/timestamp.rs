//! Reading timestamps: the text forms devices send, to Unix seconds in UTC.
//!
//! Hand-written instead of a date crate because the accepted forms are few and fixed, this runs
//! once per reading on the hot path, and the rules (which separators, which zones) are part of
//! the ingest contract, so they are spelled out and tested here:
//!
//! `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, optional `.fraction` (dropped: the table keeps
//! whole seconds), then an optional zone, optionally after one space: `Z` or `z`, `UTC`, `GMT`,
//! or an offset `±HH`, `±HHMM`, `±HH:MM`; no zone means UTC. The space and the spelled-out zones
//! are what Ruby's `Time#to_s` (`2016-06-08 12:30:00 +0200`) and common clients write.

use thiserror::Error;

/// Why a timestamp was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TimestampError {
    #[error("expected YYYY-MM-DD[ T]HH:MM:SS[.fff][ ][Z|UTC|GMT|±HH[:MM]]; {0}")]
    Syntax(&'static str),
    #[error("date or time field out of range")]
    OutOfRange,
}

/// Parses a timestamp to Unix seconds (UTC). May be negative (before 1970).
pub fn parse(s: &str) -> Result<i64, TimestampError> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(TimestampError::Syntax("too short"));
    }
    let year = digits(b, 0, 4)?;
    sep(b, 4, b'-', "'-' after the year")?;
    let month = digits(b, 5, 2)?;
    sep(b, 7, b'-', "'-' after the month")?;
    let day = digits(b, 8, 2)?;
    if b[10] != b'T' && b[10] != b' ' {
        return Err(TimestampError::Syntax("'T' or ' ' between date and time"));
    }
    let hour = digits(b, 11, 2)?;
    sep(b, 13, b':', "':' after the hour")?;
    let minute = digits(b, 14, 2)?;
    sep(b, 16, b':', "':' after the minutes")?;
    let second = digits(b, 17, 2)?;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(TimestampError::Syntax("digits after '.'"));
        }
    }
    let offset = zone(&b[i..])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(TimestampError::OutOfRange);
    }
    let days = days_from_civil(i64::from(year), month, day);
    Ok(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset)
}

/// The zone after the time: nothing (UTC), or one optional space then `Z`/`z`, `UTC`, `GMT`,
/// or `±HH`, `±HHMM`, `±HH:MM`. Returns the offset east of UTC in seconds.
fn zone(b: &[u8]) -> Result<i64, TimestampError> {
    const WHAT: &str = "'Z', 'UTC', '±HH[:MM]' or the end";
    let z = match b {
        [] => return Ok(0),
        [b' ', rest @ ..] if !rest.is_empty() => rest,
        _ => b,
    };
    match z {
        b"Z" | b"z" | b"UTC" | b"GMT" => Ok(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest.len() {
                2 => (digits(rest, 0, 2)?, 0),
                4 => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
                5 => {
                    sep(rest, 2, b':', "':' in the zone offset")?;
                    (digits(rest, 0, 2)?, digits(rest, 3, 2)?)
                }
                _ => return Err(TimestampError::Syntax(WHAT)),
            };
            if h > 23 || m > 59 {
                return Err(TimestampError::OutOfRange);
            }
            let secs = i64::from(h * 3600 + m * 60);
            Ok(if *sign == b'+' { secs } else { -secs })
        }
        _ => Err(TimestampError::Syntax(WHAT)),
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<u32, TimestampError> {
    let mut v = 0u32;
    for &c in b
        .get(at..at + n)
        .ok_or(TimestampError::Syntax("too short"))?
    {
        if !c.is_ascii_digit() {
            return Err(TimestampError::Syntax("a digit"));
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Ok(v)
}

fn sep(b: &[u8], at: usize, want: u8, what: &'static str) -> Result<(), TimestampError> {
    if b.get(at) == Some(&want) {
        Ok(())
    } else {
        Err(TimestampError::Syntax(what))
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (the raw format's form; used by tests,
/// generators and the load test).
pub fn format_utc(secs: i64) -> String {
    crate::encode::Utc(secs).to_string()
}

/// (year, month) of Unix seconds, UTC: the `toYYYYMM` partition of a reading.
pub fn year_month(secs: i64) -> (i64, u32) {
    let (y, m, _) = civil_from_days(secs.div_euclid(86_400));
    (y, m)
}

/// The inverse of [`days_from_civil`]: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let t = 1_465_381_800; // 2016-06-08 10:30:00 UTC
        for s in [
            "2016-06-08 10:30:00",
            "2016-06-08T10:30:00",
            "2016-06-08 10:30:00Z",
            "2016-06-08T10:30:00Z",
            "2016-06-08T10:30:00.999Z",
            "2016-06-08 10:30:00.5",
            "2016-06-08T12:30:00+02:00",
            "2016-06-08T07:00:00-03:30",
            "2016-06-08T12:30:00.123456+02:00",
            // What Ruby's Time#to_s and common clients write.
            "2016-06-08 12:30:00 +0200",
            "2016-06-08 12:30:00 +02:00",
            "2016-06-08T12:30:00+02",
            "2016-06-08T12:30:00+0200",
            "2016-06-08 07:00:00 -0330",
            "2016-06-08 10:30:00 UTC",
            "2016-06-08 10:30:00 GMT",
            "2016-06-08 10:30:00UTC",
            "2016-06-08T10:30:00z",
            "2016-06-08 10:30:00 Z",
            "2016-06-08 10:30:00.5 UTC",
        ] {
            assert_eq!(parse(s), Ok(t), "{s}");
        }
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse("2017-03-24T13:35:14Z"), Ok(1_490_362_514));
        assert_eq!(parse("2024-02-29 23:59:59"), Ok(1_709_251_199));
        assert_eq!(parse("1969-12-31T23:59:59Z"), Ok(-1));
    }

    #[test]
    fn rejected_forms() {
        for s in [
            "",
            "2016-06-08",
            "2016-06-08 10:30",
            "2016/06/08 10:30:00",
            "2016-06-08_10:30:00",
            "2016-06-08 10:30:00.",
            "2016-06-08 10:30:00 ",
            "2016-06-08 10:30:00  Z",
            "2016-06-08 10:30:00 utc",
            "2016-06-08 10:30:00 CET",
            "2016-06-08 10:30:00+2",
            "2016-06-08 10:30:00+020",
            "2016-06-08 10:30:00+02:0",
            "2016-06-08 10:30:00+02:00Z",
            "2016-06-08 10:30:00+0a00",
            "2016-06-08 10:30:00 +02 00",
            "2016-6-08 10:30:00",
            "x016-06-08 10:30:00",
            "2016-06-08 10:30:00Zjunk",
        ] {
            assert!(
                matches!(parse(s), Err(TimestampError::Syntax(_))),
                "{s}: {:?}",
                parse(s)
            );
        }
        for s in [
            "2016-13-01 00:00:00",
            "2016-00-01 00:00:00",
            "2016-02-30 00:00:00",
            "2023-02-29 00:00:00",
            "2016-06-31 00:00:00",
            "2016-06-08 24:00:00",
            "2016-06-08 10:60:00",
            "2016-06-08 10:30:60",
            "2016-06-08 10:30:00+24:00",
            "2016-06-08 10:30:00 +0260",
            "2016-06-08 10:30:00-24",
        ] {
            assert_eq!(parse(s), Err(TimestampError::OutOfRange), "{s}");
        }
    }

    #[test]
    fn format_round_trips() {
        for secs in [
            0,
            1,
            86_399,
            951_782_400,
            1_490_362_514,
            4_102_444_800,
            -86_401,
        ] {
            assert_eq!(parse(&format_utc(secs)), Ok(secs), "{}", format_utc(secs));
        }
        assert_eq!(format_utc(1_490_362_514), "2017-03-24T13:35:14Z");
        assert_eq!(year_month(1_490_362_514), (2017, 3));
        assert_eq!(year_month(951_868_800), (2000, 3)); // 2000-03-01T00:00:00Z
        assert_eq!(year_month(951_868_799), (2000, 2));
    }
}
