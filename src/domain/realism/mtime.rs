//! Backdated modification times (realism.md §4.5).
//!
//! Files must look touched by their persona: strictly in the past, mostly within the last day
//! or two (exponential, mean 12 h), and — for a real window — at a clock time inside the
//! persona's active hours.

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use rand::Rng;

use super::hours::{ActiveWindow, MINUTES_PER_DAY};

/// Mean of the exponential backdate, in hours.
const MEAN_SPAN_HOURS: f64 = 12.0;
/// Lower clamp of the uniform draw so `ln` never sees zero.
const MIN_UNIFORM: f64 = 1e-6;

/// How far back a sampled mtime may lie.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MtimeBounds {
    min_hours: f64,
    max_days: f64,
}

/// Invalid [`MtimeBounds`].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("mtime bounds need 0 < min_hours <= max_days * 24 (got {min_hours} h, {max_days} d)")]
pub struct InvalidBounds {
    pub min_hours: f64,
    pub max_days: f64,
}

impl MtimeBounds {
    /// Create plans: 30 minutes to 14 days ago.
    pub const CREATE: MtimeBounds = MtimeBounds {
        min_hours: 0.5,
        max_days: 14.0,
    };
    /// Edit plans: 1 hour to 2 days ago.
    pub const EDIT: MtimeBounds = MtimeBounds {
        min_hours: 1.0,
        max_days: 2.0,
    };

    pub fn new(min_hours: f64, max_days: f64) -> Result<Self, InvalidBounds> {
        let ok = min_hours.is_finite()
            && max_days.is_finite()
            && min_hours > 0.0
            && min_hours <= max_days * 24.0;
        if ok {
            Ok(MtimeBounds {
                min_hours,
                max_days,
            })
        } else {
            Err(InvalidBounds {
                min_hours,
                max_days,
            })
        }
    }

    pub fn min_hours(&self) -> f64 {
        self.min_hours
    }

    pub fn max_days(&self) -> f64 {
        self.max_days
    }

    fn min_span(&self) -> Duration {
        hours_to_duration(self.min_hours)
    }

    fn max_span(&self) -> Duration {
        hours_to_duration(self.max_days * 24.0)
    }
}

fn hours_to_duration(hours: f64) -> Duration {
    // Bounded by MtimeBounds (finite, small): the cast cannot overflow.
    Duration::microseconds((hours * 3_600_000_000.0).round() as i64)
}

/// Draw a minute of the day inside `start..end` (wrapping windows use their longer segment).
fn snap_minute<R: Rng + ?Sized>(start: u16, end: u16, rng: &mut R) -> u16 {
    if start < end {
        rng.gen_range(start..end)
    } else if MINUTES_PER_DAY - start >= end {
        rng.gen_range(start..MINUTES_PER_DAY)
    } else {
        rng.gen_range(0..end)
    }
}

/// `sample_mtime(window, now, bounds)` of §4.5, in whole seconds. The result is strictly
/// before `now`, at least
/// `bounds.min_hours` back; for a real window its clock time lies inside the window. Beyond
/// the reference, a snap that would overshoot `max_days` is moved one day later when that
/// still honours the minimum, so the cap holds too.
pub fn sample_mtime<R: Rng + ?Sized>(
    window: ActiveWindow,
    now: DateTime<Utc>,
    bounds: MtimeBounds,
    rng: &mut R,
) -> DateTime<Utc> {
    let u = rng.gen::<f64>().max(MIN_UNIFORM);
    let span_h = (-u.ln() * MEAN_SPAN_HOURS).clamp(bounds.min_hours, bounds.max_days * 24.0);
    // whole seconds: file systems and tar headers keep seconds, so the planned mtime is
    // exactly what a reader of the file will see
    let candidate = now - hours_to_duration(span_h);
    let candidate = candidate.with_nanosecond(0).unwrap_or(candidate);

    let ActiveWindow::Range { start, end } = window else {
        return candidate;
    };
    if window.contains(&candidate) {
        return candidate;
    }

    let minute = snap_minute(start, end, rng);
    let second: u32 = rng.gen_range(0..60);
    let Some(time) =
        NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), second)
    else {
        return candidate;
    };
    let mut snapped = candidate.date_naive().and_time(time).and_utc();
    let floor = now - bounds.min_span();
    while snapped > floor {
        snapped -= Duration::days(1);
    }
    let cap = now - bounds.max_span();
    if snapped < cap && snapped + Duration::days(1) <= floor {
        snapped += Duration::days(1);
    }
    debug_assert!(snapped.nanosecond() == 0);
    snapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 28, 10, 20, 0).unwrap()
    }

    #[test]
    fn bounds_validation() {
        assert!(MtimeBounds::new(0.5, 14.0).is_ok());
        assert!(MtimeBounds::new(0.0, 14.0).is_err());
        assert!(MtimeBounds::new(-1.0, 14.0).is_err());
        assert!(MtimeBounds::new(49.0, 2.0).is_err());
        assert!(MtimeBounds::new(f64::NAN, 2.0).is_err());
        assert!(MtimeBounds::new(1.0, f64::INFINITY).is_err());
    }

    #[test]
    fn always_strictly_past_and_within_caps() {
        for (window, bounds) in [
            ("00:00-00:00", MtimeBounds::CREATE),
            ("09:00-18:00", MtimeBounds::CREATE),
            ("22:00-06:00", MtimeBounds::CREATE),
            ("23:58-00:01", MtimeBounds::CREATE),
            ("garbage", MtimeBounds::CREATE),
            ("00:00-00:00", MtimeBounds::EDIT),
            ("13:00-13:30", MtimeBounds::EDIT),
        ] {
            let w = ActiveWindow::parse(window);
            for seed in 0..400 {
                let mut rng = StdRng::seed_from_u64(seed);
                let t = sample_mtime(w, now(), bounds, &mut rng);
                assert!(t < now(), "{window} seed {seed}: {t} not past");
                assert!(
                    t <= now() - bounds.min_span(),
                    "{window} seed {seed}: {t} too recent"
                );
                assert!(
                    t >= now() - bounds.max_span() - Duration::days(1),
                    "{window} seed {seed}: {t} too old"
                );
            }
        }
    }

    #[test]
    fn unsnapped_respects_exact_caps() {
        let w = ActiveWindow::AlwaysOn;
        for seed in 0..500 {
            let mut rng = StdRng::seed_from_u64(seed);
            let t = sample_mtime(w, now(), MtimeBounds::CREATE, &mut rng);
            assert!(t <= now() - Duration::minutes(30));
            assert!(t >= now() - Duration::days(14));
            let t = sample_mtime(w, now(), MtimeBounds::EDIT, &mut rng);
            assert!(t <= now() - Duration::hours(1));
            assert!(t >= now() - Duration::days(2));
        }
    }

    #[test]
    fn hour_inside_office_window() {
        let w = ActiveWindow::parse("09:00-18:00");
        for seed in 0..500 {
            let mut rng = StdRng::seed_from_u64(seed);
            let t = sample_mtime(w, now(), MtimeBounds::CREATE, &mut rng);
            assert!((9..18).contains(&t.hour()), "seed {seed}: {t}");
            assert!(t >= now() - Duration::days(14), "seed {seed}: {t}");
        }
    }

    #[test]
    fn hour_inside_wrap_window() {
        for window in ["22:00-06:00", "20:00-02:00", "23:00-07:30"] {
            let w = ActiveWindow::parse(window);
            for seed in 0..500 {
                let mut rng = StdRng::seed_from_u64(seed);
                let t = sample_mtime(w, now(), MtimeBounds::CREATE, &mut rng);
                assert!(w.contains(&t), "{window} seed {seed}: {t}");
            }
        }
    }

    #[test]
    fn most_files_are_recent() {
        let recent = (0..1000)
            .filter(|seed| {
                let mut rng = StdRng::seed_from_u64(*seed);
                let t = sample_mtime(ActiveWindow::AlwaysOn, now(), MtimeBounds::CREATE, &mut rng);
                t >= now() - Duration::hours(48)
            })
            .count();
        // exponential with mean 12 h: P(span <= 48 h) = 1 - e^-4 ≈ 0.98
        assert!(recent > 900, "{recent}");
    }

    #[test]
    fn deterministic_for_a_seed() {
        let w = ActiveWindow::parse("09:00-18:00");
        for seed in 0..50 {
            let a = sample_mtime(
                w,
                now(),
                MtimeBounds::CREATE,
                &mut StdRng::seed_from_u64(seed),
            );
            let b = sample_mtime(
                w,
                now(),
                MtimeBounds::CREATE,
                &mut StdRng::seed_from_u64(seed),
            );
            assert_eq!(a, b);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_window_any_now(
            seed in proptest::prelude::any::<u64>(),
            start in 0u16..1440,
            end in 0u16..1440,
            now_s in 1_600_000_000i64..2_000_000_000,
        ) {
            let window = format!("{:02}:{:02}-{:02}:{:02}", start / 60, start % 60, end / 60, end % 60);
            let w = ActiveWindow::parse(&window);
            let now = DateTime::from_timestamp(now_s, 0).unwrap();
            let t = sample_mtime(w, now, MtimeBounds::CREATE, &mut StdRng::seed_from_u64(seed));
            proptest::prop_assert!(t <= now - Duration::minutes(30), "{window} {now} {t}");
            proptest::prop_assert!(t >= now - Duration::days(15), "{window} {now} {t}");
            proptest::prop_assert!(w.contains(&t), "{window} {now} {t}");
            proptest::prop_assert_eq!(t.nanosecond(), 0);
        }
    }
}
