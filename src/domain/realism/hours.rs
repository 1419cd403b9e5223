//! Persona active hours (realism.md §3.3): `HH:MM-HH:MM` windows on the clock face.
//!
//! Malformed windows are *fail-open*: a typo in a persona must never silence the fleet.

use chrono::Timelike;

/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// A parsed active-hours window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveWindow {
    /// Equal bounds (`10:00-10:00`) or a malformed window: every minute is in hours.
    AlwaysOn,
    /// `start` inclusive, `end` exclusive, minutes of the day; `start != end`.
    /// `start > end` wraps midnight.
    Range { start: u16, end: u16 },
}

/// Why a window string is malformed (only informative: callers fail open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("active_hours {0:?} is not a HH:MM-HH:MM window")]
pub struct MalformedWindow(pub String);

fn parse_clock(part: &str) -> Option<u16> {
    let (h, m) = part.split_once(':')?;
    let parse = |s: &str| -> Option<u16> {
        let s = s.trim();
        if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (h, m) = (parse(h)?, parse(m)?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl ActiveWindow {
    /// Strict parse: `Err` for anything that is not two `H:M` clock times.
    pub fn parse_strict(window: &str) -> Result<Self, MalformedWindow> {
        let malformed = || MalformedWindow(window.to_owned());
        let (start, end) = window.split_once('-').ok_or_else(malformed)?;
        if end.contains('-') {
            return Err(malformed());
        }
        let start = parse_clock(start).ok_or_else(malformed)?;
        let end = parse_clock(end).ok_or_else(malformed)?;
        Ok(if start == end {
            ActiveWindow::AlwaysOn
        } else {
            ActiveWindow::Range { start, end }
        })
    }

    /// Fail-open parse: malformed windows are always on.
    pub fn parse(window: &str) -> Self {
        Self::parse_strict(window).unwrap_or(ActiveWindow::AlwaysOn)
    }

    /// Whether minute-of-day `minute` (0..1440) is inside the window.
    pub fn contains_minute(self, minute: u16) -> bool {
        match self {
            ActiveWindow::AlwaysOn => true,
            ActiveWindow::Range { start, end } if start < end => start <= minute && minute < end,
            ActiveWindow::Range { start, end } => minute >= start || minute < end,
        }
    }

    /// Whether the clock face of `t` (hour and minute) is inside the window.
    pub fn contains<T: Timelike>(self, t: &T) -> bool {
        // hour() < 24 and minute() < 60, so the cast cannot truncate.
        self.contains_minute((t.hour() * 60 + t.minute()) as u16)
    }
}

/// `in_work_hours(window, now)` of §3.3.
pub fn in_work_hours<T: Timelike>(window: &str, now: &T) -> bool {
    ActiveWindow::parse(window).contains(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn default_window_start_inclusive_end_exclusive() {
        assert!(!in_work_hours("09:00-18:00", &at(8, 59)));
        assert!(in_work_hours("09:00-18:00", &at(9, 0)));
        assert!(in_work_hours("09:00-18:00", &at(17, 59)));
        assert!(!in_work_hours("09:00-18:00", &at(18, 0)));
        assert!(!in_work_hours("09:00-18:00", &at(3, 0)));
    }

    #[test]
    fn minute_precision() {
        let w = "09:30-17:45";
        assert!(!in_work_hours(w, &at(9, 29)));
        assert!(in_work_hours(w, &at(9, 30)));
        assert!(in_work_hours(w, &at(17, 44)));
        assert!(!in_work_hours(w, &at(17, 45)));
    }

    #[test]
    fn wrap_around_midnight() {
        let w = "22:00-06:00";
        assert!(in_work_hours(w, &at(23, 30)));
        assert!(in_work_hours(w, &at(3, 0)));
        assert!(in_work_hours(w, &at(22, 0)));
        assert!(in_work_hours(w, &at(0, 0)));
        assert!(!in_work_hours(w, &at(6, 0)));
        assert!(!in_work_hours(w, &at(12, 0)));
        assert!(!in_work_hours(w, &at(21, 59)));
    }

    #[test]
    fn equal_bounds_always_on() {
        for w in ["00:00-00:00", "10:00-10:00"] {
            assert_eq!(ActiveWindow::parse_strict(w), Ok(ActiveWindow::AlwaysOn));
            for h in 0..24 {
                assert!(in_work_hours(w, &at(h, 17)));
            }
        }
    }

    #[test]
    fn malformed_windows_fail_open() {
        for w in [
            "9-18",
            "09:00",
            "25:00-26:00",
            "09:00-18:99",
            "",
            "09:00-18:00-20:00",
            "ab:cd-ef:gh",
            "09:000-18:00",
            "-1:00-18:00",
        ] {
            assert!(ActiveWindow::parse_strict(w).is_err(), "{w:?} parsed");
            assert_eq!(ActiveWindow::parse(w), ActiveWindow::AlwaysOn);
            assert!(in_work_hours(w, &at(3, 0)), "{w:?} not always on");
        }
    }

    #[test]
    fn single_digit_hours_accepted() {
        assert_eq!(
            ActiveWindow::parse_strict("9:00-18:00"),
            Ok(ActiveWindow::Range {
                start: 540,
                end: 1080
            })
        );
    }

    #[test]
    fn works_on_utc_datetimes() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 4, 27, 10, 15, 0)
            .unwrap();
        assert!(in_work_hours("09:00-18:00", &t));
        assert!(!in_work_hours("22:00-06:00", &t));
    }
}
