//! Calendar dates (release dates, maintenance end dates), without time zones:
//! the vendor and licences speak in days.

use std::fmt;
use std::str::FromStr;

/// A day of the proleptic Gregorian calendar, `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("`{0}` is not a date; write YYYY-MM-DD, e.g. 2026-03-31")]
    Format(String),
    #[error("`{0}` is not a date of the calendar (month 1-12, a day the month has)")]
    OutOfRange(String),
}

/// A time (Unix ms) as RFC 3339 in UTC, to the second, for the reasons
/// this crate writes.
pub(crate) fn utc(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms - ms.rem_euclid(1000))
        .map_or_else(|_| ms.to_string(), |t| t.to_string())
}

pub const fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

pub const fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A valid date, or `None`.
    pub const fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        if year == 0 || month == 0 || month > 12 || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Self { year, month, day })
    }

    pub const fn year(&self) -> u16 {
        self.year
    }

    pub const fn month(&self) -> u8 {
        self.month
    }

    pub const fn day(&self) -> u8 {
        self.day
    }

    /// Strictly `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Self, DateError> {
        let format = || DateError::Format(text.to_owned());
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(format());
        }
        let number = |range: std::ops::Range<usize>| -> Result<u16, DateError> {
            let part = &text[range];
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format());
            }
            part.parse().map_err(|_| format())
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let month = u8::try_from(month).map_err(|_| format())?;
        let day = u8::try_from(day).map_err(|_| format())?;
        Date::new(year, month, day).ok_or_else(|| DateError::OutOfRange(text.to_owned()))
    }
}

impl FromStr for Date {
    type Err = DateError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

crate::serde_as_text!(Date);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let a = Date::parse("2026-03-31").unwrap();
        let b = Date::parse("2026-04-01").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "2026-03-31");
        assert_eq!(Date::parse("2024-02-29").unwrap().day(), 29);
    }

    #[test]
    fn refuses_what_is_not_a_day() {
        for bad in [
            "2026-3-31",
            "2026/03/31",
            "31.03.2026",
            "",
            "2026-03-31 ",
            "+026-03-31",
            "2026-03",
        ] {
            assert_eq!(
                Date::parse(bad),
                Err(DateError::Format(bad.into())),
                "{bad}"
            );
        }
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "0000-01-01",
        ] {
            assert_eq!(
                Date::parse(bad),
                Err(DateError::OutOfRange(bad.into())),
                "{bad}"
            );
        }
    }
}
