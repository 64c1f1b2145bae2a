//! The support-hours clock (seed 004 §4): working days 08:30–17:00 local
//! time in a time zone with daylight saving, minus a holiday calendar.
//!
//! Pure: instants are Unix seconds in, Unix seconds out, exact to the
//! second. Each working day holds [`SUPPORT_DAY_S`] seconds of support time
//! whatever the daylight-saving change of that week (08:30 and 17:00 are
//! never inside a change in the zones this is meant for; a zone whose change
//! falls inside the opening hours is still handled: a missing local time is
//! read as the first instant after the gap).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Opening time, seconds after local midnight (08:30).
pub const OPENS_S: u32 = 8 * 3600 + 30 * 60;
/// Closing time, seconds after local midnight (17:00).
pub const CLOSES_S: u32 = 17 * 3600;
/// Support time of one working day: 8 h 30 min ("1 working day").
pub const SUPPORT_DAY_S: i64 = (CLOSES_S - OPENS_S) as i64;
/// One support hour.
pub const SUPPORT_HOUR_S: i64 = 3600;
/// The default zone of the support desk (seed 004: CloudCTI, the Netherlands).
pub const DEFAULT_ZONE: &str = "Europe/Amsterdam";
/// Most holidays one calendar may list (a century of public holidays).
pub const MAX_HOLIDAYS: usize = 5_000;

/// The calendar as recorded in the log: a zone and its holidays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportCalendar {
    /// IANA time-zone name, e.g. `Europe/Amsterdam`.
    pub zone: String,
    /// Days without support, as `YYYYMMDD`, ascending and distinct.
    pub holidays: Vec<u32>,
}

impl Default for SupportCalendar {
    fn default() -> Self {
        SupportCalendar {
            zone: DEFAULT_ZONE.to_owned(),
            holidays: Vec::new(),
        }
    }
}

/// The calendar file: `zone = "Europe/Amsterdam"` (optional) and
/// `holidays = ["2026-12-25", …]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    zone: Option<String>,
    #[serde(default)]
    holidays: Vec<String>,
}

fn yyyymmdd(d: NaiveDate) -> u32 {
    (d.year() as u32) * 10_000 + d.month() * 100 + d.day()
}

fn from_yyyymmdd(n: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt((n / 10_000) as i32, (n / 100) % 100, n % 100)
}

impl SupportCalendar {
    /// Parses a calendar file (TOML, see README "Service levels" and
    /// `docs/support-calendar-nl.toml`).
    pub fn parse_toml(text: &str) -> Result<SupportCalendar, String> {
        let file: CalendarFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut holidays = Vec::with_capacity(file.holidays.len());
        for h in &file.holidays {
            let d = NaiveDate::parse_from_str(h, "%Y-%m-%d")
                .map_err(|_| format!("holiday {h:?} is not a date like 2026-12-25"))?;
            holidays.push(yyyymmdd(d));
        }
        SupportCalendar {
            zone: file.zone.unwrap_or_else(|| DEFAULT_ZONE.to_owned()),
            holidays,
        }
        .normalized()
    }

    /// Sorts and dedups the holidays and checks the zone, dates and size.
    pub fn normalized(mut self) -> Result<SupportCalendar, String> {
        self.validate_zone()?;
        self.holidays.sort_unstable();
        self.holidays.dedup();
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(format!(
                "a support calendar lists at most {MAX_HOLIDAYS} holidays (got {})",
                self.holidays.len()
            ));
        }
        if let Some(bad) = self.holidays.iter().find(|h| from_yyyymmdd(**h).is_none()) {
            return Err(format!("holiday {bad} is not a date"));
        }
        Ok(self)
    }

    fn validate_zone(&self) -> Result<Tz, String> {
        self.zone
            .parse::<Tz>()
            .map_err(|_| format!("{:?} is not an IANA time zone", self.zone))
    }

    /// Whether the calendar is one `normalized` would return unchanged
    /// (what `apply` requires of a recorded calendar).
    pub fn is_normalized(&self) -> bool {
        self.clone().normalized().as_ref() == Ok(self)
    }

    /// The clock over this calendar. A calendar that does not validate (only
    /// a forged log has one: `apply` refuses it) reads as UTC.
    pub fn clock(&self) -> SupportClock {
        SupportClock {
            tz: self.validate_zone().unwrap_or(Tz::UTC),
            holidays: self
                .holidays
                .iter()
                .filter_map(|h| from_yyyymmdd(*h))
                .collect(),
        }
    }
}

/// The support-hours clock over one calendar.
#[derive(Debug, Clone)]
pub struct SupportClock {
    tz: Tz,
    /// Ascending.
    holidays: Vec<NaiveDate>,
}

impl SupportClock {
    /// The local calendar date of an instant.
    pub fn date_of(&self, t: i64) -> Option<NaiveDate> {
        DateTime::from_timestamp(t, 0).map(|d| d.with_timezone(&self.tz).date_naive())
    }

    /// Mon–Fri and not a holiday.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
            && self.holidays.binary_search(&d).is_err()
    }

    /// The instant of local time `secs` after midnight of `d`. An ambiguous
    /// local time is its first instant; a missing one the end of the gap.
    fn local(&self, d: NaiveDate, secs: u32) -> Option<i64> {
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)?;
        let mut ndt = NaiveDateTime::new(d, time);
        for _ in 0..48 {
            if let Some(x) = self.tz.from_local_datetime(&ndt).earliest() {
                return Some(x.timestamp());
            }
            ndt += chrono::Duration::minutes(30);
        }
        None
    }

    /// Support hours of `d` as `[opens, closes)`, or `None` on a day without support.
    pub fn window(&self, d: NaiveDate) -> Option<(i64, i64)> {
        if !self.is_working_day(d) {
            return None;
        }
        Some((self.local(d, OPENS_S)?, self.local(d, CLOSES_S)?))
    }

    /// How many days a walk may take to find `support_s` of support time:
    /// every holiday, every weekend, and a margin.
    fn day_budget(&self, support_s: i64) -> usize {
        let days = usize::try_from(support_s.max(0) / SUPPORT_DAY_S).unwrap_or(usize::MAX / 4);
        self.holidays
            .len()
            .saturating_add(days.saturating_mul(2))
            .saturating_add(16)
    }

    /// The first support instant at or after `t` (a report outside support
    /// hours starts its clock here).
    pub fn next_opening(&self, t: i64) -> i64 {
        let Some(mut d) = self.date_of(t) else {
            return t;
        };
        for _ in 0..self.day_budget(0) {
            if let Some((o, c)) = self.window(d) {
                if t < c {
                    return t.max(o);
                }
            }
            match d.succ_opt() {
                Some(n) => d = n,
                None => break,
            }
        }
        i64::MAX
    }

    /// The deadline "`support_s` support seconds after `t`": the instant at
    /// which that much support time has passed since `t` (a closing time
    /// when the last day is used up exactly). `support_s <= 0` is `t`.
    pub fn add_support(&self, t: i64, support_s: i64) -> i64 {
        if support_s <= 0 {
            return t;
        }
        let Some(mut d) = self.date_of(t) else {
            return i64::MAX;
        };
        let mut left = support_s;
        for _ in 0..self.day_budget(support_s) {
            if let Some((o, c)) = self.window(d) {
                let s = t.max(o);
                if s < c {
                    if left <= c - s {
                        return s + left;
                    }
                    left -= c - s;
                }
            }
            match d.succ_opt() {
                Some(n) => d = n,
                None => break,
            }
        }
        i64::MAX
    }

    /// The latest instant `w <= t` with `support_s` support seconds in
    /// `[w, t)` (e.g. one support hour before a deadline).
    pub fn sub_support(&self, t: i64, support_s: i64) -> i64 {
        if support_s <= 0 {
            return t;
        }
        let Some(mut d) = self.date_of(t) else {
            return i64::MIN;
        };
        let mut left = support_s;
        for _ in 0..self.day_budget(support_s) {
            if let Some((o, c)) = self.window(d) {
                let e = t.min(c);
                if e > o {
                    if left <= e - o {
                        return e - left;
                    }
                    left -= e - o;
                }
            }
            match d.pred_opt() {
                Some(p) => d = p,
                None => break,
            }
        }
        i64::MIN
    }

    /// Support seconds in `[a, b)` (0 when `b <= a`).
    pub fn support_between(&self, a: i64, b: i64) -> i64 {
        if b <= a {
            return 0;
        }
        let (Some(mut d), Some(last)) = (self.date_of(a), self.date_of(b)) else {
            return 0;
        };
        let mut total = 0;
        while d <= last {
            if let Some((o, c)) = self.window(d) {
                let lo = a.max(o);
                let hi = b.min(c);
                if hi > lo {
                    total += hi - lo;
                }
            }
            match d.succ_opt() {
                Some(n) => d = n,
                None => break,
            }
        }
        total
    }

    /// 17:00 of the `n`-th working day counted from the working day after
    /// the report (seed 004 §5: "the start date is the day after the
    /// report"); a report outside support hours counts from its next
    /// opening. `n = 2`, reported Monday: Wednesday 17:00.
    pub fn working_days_after(&self, t: i64, n: u32) -> i64 {
        let start = self.next_opening(t);
        let Some(mut d) = self.date_of(start) else {
            return i64::MAX;
        };
        let mut counted = 0;
        for _ in 0..self.day_budget(i64::from(n) * SUPPORT_DAY_S) {
            match d.succ_opt() {
                Some(next) => d = next,
                None => break,
            }
            if let Some((_, c)) = self.window(d) {
                counted += 1;
                if counted >= n {
                    return c;
                }
            }
        }
        i64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Amsterdam local time → Unix seconds.
    fn ams(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        chrono_tz::Europe::Amsterdam
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .timestamp()
    }

    fn plain() -> SupportClock {
        SupportCalendar::default().clock()
    }

    fn nl() -> SupportClock {
        SupportCalendar::parse_toml(include_str!("../../../docs/support-calendar-nl.toml"))
            .unwrap()
            .clock()
    }

    #[test]
    fn friday_1600_plus_four_support_hours_is_monday_1130() {
        // 2026-11-27 is a Friday.
        let c = plain();
        assert_eq!(
            c.add_support(ams(2026, 11, 27, 16, 0), 4 * 3600),
            ams(2026, 11, 30, 11, 30)
        );
    }

    #[test]
    fn a_holiday_is_skipped() {
        // Thursday 2026-12-24 16:00 + 4 sh: 1 h on Thursday, Christmas
        // (Fri 25) and the weekend skipped, Monday 28th 11:30. Boxing day
        // is a Saturday.
        let c = nl();
        assert_eq!(
            c.add_support(ams(2026, 12, 24, 16, 0), 4 * 3600),
            ams(2026, 12, 28, 11, 30)
        );
        // Without the calendar Friday is a working day.
        assert_eq!(
            plain().add_support(ams(2026, 12, 24, 16, 0), 4 * 3600),
            ams(2026, 12, 25, 11, 30)
        );
        // King's Day (Mon 2026-04-27): Friday 24th 15:00 + 8 sh → Tuesday 28th 14:30.
        assert_eq!(
            c.add_support(ams(2026, 4, 24, 15, 0), 8 * 3600),
            ams(2026, 4, 28, 14, 30)
        );
    }

    #[test]
    fn across_both_daylight_saving_changes() {
        let c = plain();
        // Clocks go forward on Sunday 2026-03-29: Friday 27th 16:00 (UTC+1)
        // + 4 sh → Monday 30th 11:30 (UTC+2). In UTC that is 2 days 18 h 30 min
        // minus the hour lost.
        let from = ams(2026, 3, 27, 16, 0);
        let to = c.add_support(from, 4 * 3600);
        assert_eq!(to, ams(2026, 3, 30, 11, 30));
        assert_eq!(to - from, 2 * 86_400 + 19 * 3600 + 30 * 60 - 3600);
        assert_eq!(c.support_between(from, to), 4 * 3600);
        // Clocks go back on Sunday 2026-10-25: Friday 23rd 16:00 (UTC+2) → Monday 26th 11:30 (UTC+1).
        let from = ams(2026, 10, 23, 16, 0);
        let to = c.add_support(from, 4 * 3600);
        assert_eq!(to, ams(2026, 10, 26, 11, 30));
        assert_eq!(to - from, 2 * 86_400 + 19 * 3600 + 30 * 60 + 3600);
        // A working day stays 8 h 30 min on both sides of a change.
        for d in [
            ams(2026, 3, 27, 8, 30),
            ams(2026, 3, 30, 8, 30),
            ams(2026, 10, 23, 8, 30),
            ams(2026, 10, 26, 8, 30),
        ] {
            assert_eq!(c.add_support(d, SUPPORT_DAY_S), d + SUPPORT_DAY_S);
        }
    }

    #[test]
    fn a_report_at_night_or_on_a_sunday_starts_at_the_next_opening() {
        let c = plain();
        // Tuesday 2026-12-01 at 02:00 → 08:30 + 4 h = 12:30.
        assert_eq!(
            c.add_support(ams(2026, 12, 1, 2, 0), 4 * 3600),
            ams(2026, 12, 1, 12, 30)
        );
        assert_eq!(
            c.next_opening(ams(2026, 12, 1, 2, 0)),
            ams(2026, 12, 1, 8, 30)
        );
        // Tuesday 17:00 sharp is closed: Wednesday 08:30.
        assert_eq!(
            c.next_opening(ams(2026, 12, 1, 17, 0)),
            ams(2026, 12, 2, 8, 30)
        );
        // Sunday 2026-11-29 14:00 → Monday 30th 08:30 + 8 sh = 16:30.
        assert_eq!(
            c.add_support(ams(2026, 11, 29, 14, 0), 8 * 3600),
            ams(2026, 11, 30, 16, 30)
        );
        // Saturday night to Monday 08:30 holds no support time.
        assert_eq!(
            c.support_between(ams(2026, 11, 28, 23, 0), ams(2026, 11, 30, 8, 30)),
            0
        );
    }

    #[test]
    fn mttr_two_working_days_from_the_day_after() {
        let c = plain();
        // Reported Monday 2026-11-30 10:00 → Wednesday 2026-12-02 17:00.
        assert_eq!(
            c.working_days_after(ams(2026, 11, 30, 10, 0), 2),
            ams(2026, 12, 2, 17, 0)
        );
        // Reported Thursday → counted Friday and Monday → Monday 17:00.
        assert_eq!(
            c.working_days_after(ams(2026, 12, 3, 16, 59), 2),
            ams(2026, 12, 7, 17, 0)
        );
        // Reported Friday after closing: the report counts from Monday's
        // opening, so Tuesday and Wednesday → Wednesday 17:00.
        assert_eq!(
            c.working_days_after(ams(2026, 12, 4, 18, 0), 2),
            ams(2026, 12, 9, 17, 0)
        );
        // Across Christmas with the Dutch calendar: reported Wed 23 Dec →
        // Thu 24, (25, 26, 27 off) Mon 28 → Monday 17:00.
        assert_eq!(
            nl().working_days_after(ams(2026, 12, 23, 9, 0), 2),
            ams(2026, 12, 28, 17, 0)
        );
    }

    #[test]
    fn p3_one_working_day_is_eight_and_a_half_support_hours() {
        let c = plain();
        // Tuesday 10:00 → Wednesday 10:00.
        assert_eq!(
            c.add_support(ams(2026, 12, 1, 10, 0), SUPPORT_DAY_S),
            ams(2026, 12, 2, 10, 0)
        );
        // Friday 08:30 → Friday 17:00 (the day used exactly).
        assert_eq!(
            c.add_support(ams(2026, 12, 4, 8, 30), SUPPORT_DAY_S),
            ams(2026, 12, 4, 17, 0)
        );
        // Friday 12:00 → Monday 12:00.
        assert_eq!(
            c.add_support(ams(2026, 12, 4, 12, 0), SUPPORT_DAY_S),
            ams(2026, 12, 7, 12, 0)
        );
    }

    #[test]
    fn one_support_hour_before_a_deadline() {
        let c = plain();
        // Monday 09:00 deadline → Friday 16:30 warning.
        assert_eq!(
            c.sub_support(ams(2026, 11, 30, 9, 0), 3600),
            ams(2026, 11, 27, 16, 30)
        );
        assert_eq!(
            c.sub_support(ams(2026, 11, 30, 11, 30), 3600),
            ams(2026, 11, 30, 10, 30)
        );
        // A deadline at closing time: 16:00 the same day.
        assert_eq!(
            c.sub_support(ams(2026, 12, 2, 17, 0), 3600),
            ams(2026, 12, 2, 16, 0)
        );
    }

    #[test]
    fn calendar_file() {
        let cal = SupportCalendar::parse_toml(
            "zone = \"Europe/Amsterdam\"\nholidays = [\"2026-12-26\", \"2026-12-25\", \"2026-12-25\"]\n",
        )
        .unwrap();
        assert_eq!(cal.holidays, vec![20261225, 20261226]);
        assert!(cal.is_normalized());
        assert!(SupportCalendar::parse_toml("zone = \"Mars/Olympus\"").is_err());
        assert!(SupportCalendar::parse_toml("holidays = [\"2026-02-30\"]").is_err());
        assert!(SupportCalendar::parse_toml("holiday = []").is_err());
        assert_eq!(
            SupportCalendar::parse_toml("").unwrap(),
            SupportCalendar::default()
        );
        let nl =
            SupportCalendar::parse_toml(include_str!("../../../docs/support-calendar-nl.toml"))
                .unwrap();
        assert!(nl.holidays.contains(&20270427), "King's Day 2027");
        assert_eq!(nl.holidays.len(), 30);
    }
}
