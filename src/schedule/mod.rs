//! Schedules and windows: when an export runs, and which slice of time each run exports.
//!
//! Everything here is pure: the current time is always passed in, never read, so the daemon,
//! `exportd plan`, catch-up and backfill all see the same answers and tests run on a fixed clock.
//!
//! # Schedule forms
//! `daily at 02:00`, `weekly on monday at 06:00` (or `mon`), `monthly on day 1 at 00:00`,
//! `monthly on last day at 23:00`, `hourly` / `hourly at :15`, `every 15m` / `every 2h` /
//! `every 90s`, `@hourly`, `@daily`, `@weekly` (Monday 00:00, not cron's Sunday), `@monthly`,
//! `@yearly`, and 5- or 6-field cron expressions (`0 2 * * *`) parsed by croner. Bare `daily`,
//! `weekly` and `monthly` mean midnight, Monday and day 1. Times use the 24-hour clock.
//!
//! * **Day 29–31 of a month** fires on the month's *last* day in shorter months, so
//!   `monthly on day 31` runs every month (Feb 29 in leap years, Feb 28 otherwise) instead of
//!   silently skipping five months a year as cron's `31` would.
//! * **`every N`** needs N ≥ 1 minute (a faster export would overlap its own runs) and N ≤ 24 h
//!   (longer periods read better as `daily`/`weekly`). When N divides 24 h the slots are aligned
//!   to the local wall clock from midnight (`every 15m` fires at :00, :15, :30, :45 local);
//!   otherwise (`every 7m`, `every 5h`) they are aligned to the Unix epoch in real time.
//! * **Cron** expressions may fire at most once a minute (the seconds field, when present, must
//!   be a single value) and must match at least one real date (`0 0 30 2 *` is rejected).
//!
//! # Daylight saving time
//! Schedules are classified into two families, because DESIGN.md's rule ("a wall-clock time
//! that does not exist runs once at the next valid instant; one that occurs twice runs once")
//! is about *times of day*, while an hourly or 15-minute export is about *elapsed time*:
//!
//! * **Times of day** (`daily`, `weekly`, `monthly`, `@daily`…, and cron expressions that do not
//!   match every hour, e.g. `0 2 * * *` or `30 1-3 * * *`): a time inside a spring-forward gap
//!   fires once at the first instant after the gap (02:30 Chicago on 2024-03-10 → 03:00 CDT =
//!   08:00Z); a time inside a fall-back fold fires once, at its first (earlier) occurrence.
//!   croner already does this for single-time patterns but not for multi-hour ones (it skips
//!   `30 1-3 * * *`'s 02:30 on spring-forward day and runs its 01:30 twice on fall-back day), so
//!   the engine resolves wall-clock times itself instead of trusting croner's zone handling.
//! * **Cadences** (`hourly`, `every N`, `@hourly`, and cron expressions matching every hour such
//!   as `*/15 * * * *`): fire at every real instant whose local wall clock matches. A repeated
//!   hour fires on both passes (it is two real hours of data) and a skipped hour not at all (no
//!   real time passes), so `every 15m` yields a slot every 15 real minutes: 92 slots on a 23-hour
//!   day, 100 on a 25-hour one, no duplicate or missing UTC slot. When N does not divide the DST
//!   shift (e.g. `every 2h` around a one-hour change) one interval is N ± the shift.
//!
//! Windows (`previous_day`, …) are derived from the *nominal* fire time; see [`WindowKind`].

mod engine;
mod parse;
mod window;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

pub use parse::ScheduleError;
pub use window::{ParseWindowKindError, TemplateVars, Window, WindowKind};

/// A parsed export schedule. Displays as the text it was parsed from (trimmed), so a schedule
/// round-trips through config files and the status API unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule {
    text: String,
    kind: Kind,
}

/// The parsed form. Private so the grammar can grow without breaking callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    Daily {
        at: NaiveTime,
    },
    Weekly {
        on: Weekday,
        at: NaiveTime,
    },
    Monthly {
        on: MonthDay,
        at: NaiveTime,
    },
    Hourly {
        minute: u32,
    },
    /// Interval in seconds, 60..=86_400.
    Every {
        seconds: u32,
    },
    /// `cadence` is true when the pattern matches every hour of the day.
    Cron {
        cron: Box<croner::Cron>,
        cadence: bool,
    },
}

/// Day of month for monthly schedules; days past a month's end clamp to its last day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MonthDay {
    Day(u32),
    Last,
}

impl Kind {
    /// Whether the schedule is an elapsed-time cadence rather than named times of day (see the
    /// module docs: cadences fire on both passes of a repeated hour and skip gaps).
    fn is_cadence(&self) -> bool {
        match self {
            Kind::Hourly { .. } | Kind::Every { .. } => true,
            Kind::Cron { cadence, .. } => *cadence,
            Kind::Daily { .. } | Kind::Weekly { .. } | Kind::Monthly { .. } => false,
        }
    }
}

impl Schedule {
    /// The text the schedule was parsed from, trimmed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The next nominal fire instant strictly after `after`, with the schedule read in `tz`.
    /// `None` only when no later instant is representable (or, for a cron expression, none
    /// exists before year 5000).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        engine::next_after(&self.kind, after, tz)
    }

    /// Every nominal fire instant in `(from_exclusive, to_inclusive]`, in order: what catch-up
    /// (`catch_up = "all"`) and `exportd backfill` iterate. Lazy, so a long range costs nothing
    /// until consumed.
    pub fn nominal_times(
        &self,
        from_exclusive: DateTime<Utc>,
        to_inclusive: DateTime<Utc>,
        tz: Tz,
    ) -> NominalTimes<'_> {
        NominalTimes {
            schedule: self,
            tz,
            cursor: from_exclusive,
            end: to_inclusive,
            done: false,
        }
    }

    /// A human description for `exportd plan` and the status page.
    pub fn describe(&self) -> String {
        let hm = |t: &NaiveTime| t.format("%H:%M").to_string();
        match &self.kind {
            Kind::Daily { at } => format!("every day at {}", hm(at)),
            Kind::Weekly { on, at } => format!("every {} at {}", weekday_name(*on), hm(at)),
            Kind::Monthly {
                on: MonthDay::Last,
                at,
            } => {
                format!("on the last day of every month at {}", hm(at))
            }
            Kind::Monthly {
                on: MonthDay::Day(d),
                at,
            } if *d > 28 => format!(
                "on day {d} of every month at {} (the last day in shorter months)",
                hm(at)
            ),
            Kind::Monthly {
                on: MonthDay::Day(d),
                at,
            } => {
                format!("on day {d} of every month at {}", hm(at))
            }
            Kind::Hourly { minute } => format!("every hour at :{minute:02}"),
            Kind::Every { seconds } => {
                let aligned = if engine::DAY_SECS.is_multiple_of(*seconds) {
                    "aligned to local midnight"
                } else {
                    "aligned to the Unix epoch"
                };
                format!("every {} ({aligned})", human_interval(*seconds))
            }
            Kind::Cron { cron, .. } => format!("cron `{}`: {}", self.text, cron.describe()),
        }
    }

    /// The period of a cadence schedule (`every N`, `hourly`), which a caller can use as the
    /// implicit window length of an interval export; `None` for times-of-day and cron.
    pub fn period_hint(&self) -> Option<TimeDelta> {
        match self.kind {
            Kind::Every { seconds } => Some(TimeDelta::seconds(i64::from(seconds))),
            Kind::Hourly { .. } => Some(TimeDelta::hours(1)),
            _ => None,
        }
    }

    /// The window an export with this schedule most likely wants when its definition names
    /// none: the calendar period just finished, or everything since the last run.
    pub fn suggested_window(&self) -> WindowKind {
        match self.kind {
            Kind::Hourly { .. } => WindowKind::PreviousHour,
            Kind::Daily { .. } => WindowKind::PreviousDay,
            Kind::Weekly { .. } => WindowKind::PreviousWeek,
            Kind::Monthly { .. } => WindowKind::PreviousMonth,
            Kind::Every { .. } | Kind::Cron { .. } => WindowKind::SinceLastRun,
        }
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    parse::WEEKDAYS[day.num_days_from_monday() as usize]
}

/// `900` → `15 minutes`; picks the largest unit that divides the interval exactly.
fn human_interval(seconds: u32) -> String {
    let (n, unit) = match seconds {
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Schedule {
            text: s.trim().to_owned(),
            kind: parse::parse(s)?,
        })
    }
}

/// With `From<Schedule> for String`, lets config types use
/// `#[serde(try_from = "String", into = "String")]`.
impl TryFrom<String> for Schedule {
    type Error = ScheduleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<&str> for Schedule {
    type Error = ScheduleError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Schedule> for String {
    fn from(schedule: Schedule) -> String {
        schedule.text
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Iterator over nominal fire times in a half-open range; see [`Schedule::nominal_times`].
#[derive(Debug, Clone)]
pub struct NominalTimes<'a> {
    schedule: &'a Schedule,
    tz: Tz,
    cursor: DateTime<Utc>,
    end: DateTime<Utc>,
    done: bool,
}

impl Iterator for NominalTimes<'_> {
    type Item = DateTime<Utc>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.schedule.next_after(self.cursor, self.tz) {
            Some(t) if t <= self.end => {
                self.cursor = t;
                Some(t)
            }
            _ => {
                self.done = true;
                None
            }
        }
    }
}

/// The first instant of a local calendar day in `tz` (a skipped midnight resolves to the first
/// valid instant after it); `None` only outside chrono's range.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    engine::first_at_or_after(tz, date.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};

    const CHICAGO: Tz = Tz::America__Chicago;
    const LONDON: Tz = Tz::Europe__London;

    /// `2024-03-10T08:00` (UTC, minutes) or full RFC 3339.
    fn utc(s: &str) -> DateTime<Utc> {
        let full = if s.len() == 16 {
            format!("{s}:00Z")
        } else {
            s.to_owned()
        };
        DateTime::parse_from_rfc3339(&full).unwrap().to_utc()
    }
    fn sched(s: &str) -> Schedule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    /// Fire times in `(from, to]` as compact UTC `MM-DDTHH:MM` words, so expectations fit a line.
    fn fires(s: &str, tz: Tz, from: &str, to: &str) -> String {
        let schedule = sched(s);
        let times = schedule.nominal_times(utc(from), utc(to), tz);
        times
            .map(|t| t.format("%m-%dT%H:%M").to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Exactly these UTC instants for a week around a DST change, one per local day.
    fn assert_week(s: &str, tz: Tz, from: &str, to: &str, expected: &str) {
        assert_eq!(fires(s, tz, from, to), expected, "{s} in {tz}");
        let fired: Vec<_> = sched(s).nominal_times(utc(from), utc(to), tz).collect();
        let mut days: Vec<_> = fired
            .iter()
            .map(|t| t.with_timezone(&tz).date_naive())
            .collect();
        days.dedup();
        assert_eq!((days.len(), fired.len()), (7, 7), "one fire per local day");
    }

    #[test]
    fn chicago_daily_across_both_dst_changes() {
        // 2024-03-10: 02:00 does not exist → once at 03:00 CDT = 08:00Z.
        let (from, to) = ("2024-03-07T00:00", "2024-03-14T00:00");
        let expected =
            "03-07T08:00 03-08T08:00 03-09T08:00 03-10T08:00 03-11T07:00 03-12T07:00 03-13T07:00";
        assert_week("daily at 02:00", CHICAGO, from, to, expected);
        // 2024-11-03: 02:00 CST occurs once; 01:30 occurs twice and fires at the first (CDT).
        let (from, to) = ("2024-10-31T00:00", "2024-11-07T00:00");
        let expected =
            "10-31T07:00 11-01T07:00 11-02T07:00 11-03T08:00 11-04T08:00 11-05T08:00 11-06T08:00";
        assert_week("daily at 02:00", CHICAGO, from, to, expected);
        let expected =
            "10-31T06:30 11-01T06:30 11-02T06:30 11-03T06:30 11-04T07:30 11-05T07:30 11-06T07:30";
        assert_week("daily at 01:30", CHICAGO, from, to, expected);
    }

    #[test]
    fn london_0130_across_both_dst_changes() {
        // 2024-03-31: 01:30 skipped → 02:00 BST = 01:00Z. 2024-10-27: first 01:30 (BST) only.
        let (from, to) = ("2024-03-28T00:00", "2024-04-04T00:00");
        let expected =
            "03-28T01:30 03-29T01:30 03-30T01:30 03-31T01:00 04-01T00:30 04-02T00:30 04-03T00:30";
        assert_week("daily at 01:30", LONDON, from, to, expected);
        let (from, to) = ("2024-10-24T00:00", "2024-10-31T00:00");
        let expected =
            "10-24T00:30 10-25T00:30 10-26T00:30 10-27T00:30 10-28T01:30 10-29T01:30 10-30T01:30";
        assert_week("daily at 01:30", LONDON, from, to, expected);
    }

    #[test]
    fn cron_matches_daily_form_for_three_years() {
        let (a, b) = ("2022-01-01T00:00", "2025-01-01T00:00");
        for (tz, native, cron) in [
            (CHICAGO, "daily at 02:00", "0 2 * * *"),
            (CHICAGO, "daily at 01:30", "0 30 1 * * *"),
            (LONDON, "daily at 01:30", "30 1 * * *"),
            (Tz::America__Santiago, "@daily", "0 0 * * *"),
        ] {
            let native_fires = fires(native, tz, a, b);
            assert_eq!(native_fires.split(' ').count(), 1096);
            assert_eq!(native_fires, fires(cron, tz, a, b), "{cron} in {tz}");
        }
    }

    #[test]
    fn every_15m_is_uniform_in_real_time_across_dst_days() {
        let s = sched("every 15m");
        for (day, slots) in [
            ((2024, 3, 10), 92),
            ((2024, 11, 3), 100),
            ((2024, 6, 1), 96),
        ] {
            let date = NaiveDate::from_ymd_opt(day.0, day.1, day.2).unwrap();
            let start = engine::first_at_or_after(CHICAGO, date.and_time(NaiveTime::MIN)).unwrap();
            let next = date.succ_opt().unwrap().and_time(NaiveTime::MIN);
            let end = engine::first_at_or_after(CHICAGO, next).unwrap();
            // Slots in the local day [start, end): start itself plus (start, end - 1s].
            let times: Vec<_> = std::iter::once(start)
                .chain(s.nominal_times(start, end - TimeDelta::seconds(1), CHICAGO))
                .collect();
            assert_eq!(times.len(), slots, "{date}");
            assert!(
                times
                    .windows(2)
                    .all(|w| w[1] - w[0] == TimeDelta::minutes(15))
            );
            // since_last_run windows chained on the previous nominal time tile the day.
            let windows: Vec<_> = times
                .windows(2)
                .map(|w| WindowKind::SinceLastRun.window_for(w[1], CHICAGO, Some(w[0])))
                .collect();
            assert!(windows.windows(2).all(|w| w[0].end == w[1].start.unwrap()));
        }
        let real_day = fires("every 15m", CHICAGO, "2024-11-03T00:00", "2024-11-04T00:00");
        assert_eq!(real_day.split(' ').count(), 96);
        // 01:30 CDT, 01:45 CDT, then the second pass: 01:00 CST, 01:15 CST.
        let fold = fires("every 15m", CHICAGO, "2024-11-03T06:20", "2024-11-03T07:20");
        assert_eq!(fold, "11-03T06:30 11-03T06:45 11-03T07:00 11-03T07:15");
    }

    #[test]
    fn cadences_through_fold_and_gap() {
        let hourly = fires(
            "hourly at :15",
            CHICAGO,
            "2024-11-03T05:00",
            "2024-11-03T09:00",
        );
        assert_eq!(hourly, "11-03T05:15 11-03T06:15 11-03T07:15 11-03T08:15");
        let spring = fires("@hourly", CHICAGO, "2024-03-10T06:30", "2024-03-10T09:00");
        assert_eq!(spring, "03-10T07:00 03-10T08:00 03-10T09:00");
        // Starting inside the first pass must still find the second pass's slots.
        let s = sched("*/30 * * * *");
        let next = |t: &str| s.next_after(utc(t), CHICAGO).unwrap();
        assert_eq!(next("2024-11-03T06:40"), utc("2024-11-03T07:00"));
        assert_eq!(next("2024-11-03T07:10"), utc("2024-11-03T07:30"));
        let fold = fires(
            "*/30 * * * *",
            CHICAGO,
            "2024-11-03T04:00",
            "2024-11-03T10:00",
        );
        assert_eq!(fold.split(' ').count(), 12);
        // every 2h is aligned to local midnight; the jump makes one interval 3 real hours.
        let two = fires("every 2h", CHICAGO, "2024-03-10T05:00", "2024-03-10T12:00");
        assert_eq!(two, "03-10T06:00 03-10T09:00 03-10T11:00");
        // every 7m does not divide a day: aligned to the Unix epoch.
        let seven = sched("every 7m")
            .next_after(utc("2024-01-01T00:00"), CHICAGO)
            .unwrap();
        assert_eq!(seven.timestamp() % 420, 0);
        assert!(seven > utc("2024-01-01T00:00") && seven <= utc("2024-01-01T00:07"));
    }

    #[test]
    fn multi_hour_cron_follows_the_once_rule_unlike_raw_croner() {
        let spring = fires(
            "30 1-3 * * *",
            CHICAGO,
            "2024-03-10T06:00",
            "2024-03-10T10:00",
        );
        assert_eq!(spring, "03-10T07:30 03-10T08:00 03-10T08:30");
        let fall = fires(
            "30 1-3 * * *",
            CHICAGO,
            "2024-11-03T05:00",
            "2024-11-03T10:00",
        );
        assert_eq!(fall, "11-03T06:30 11-03T08:30 11-03T09:30");
    }

    /// Pins croner's own zone-aware behaviour, which the engine deliberately bypasses: if an
    /// upgrade changes it, this test says so (the engine's results will not change).
    #[test]
    fn croner_raw_behaviour_at_dst_edges() {
        let raw = |p: &str, from: &str, n: usize| -> String {
            let cron: croner::Cron = p.parse().unwrap();
            let times = cron.iter_after(utc(from).with_timezone(&CHICAGO)).take(n);
            times
                .map(|t| t.to_utc().format("%m-%dT%H:%M").to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Single fixed time: gap → first instant after; fold → first pass only. Our rule.
        assert_eq!(raw("30 2 * * *", "2024-03-10T00:00", 1), "03-10T08:00");
        assert_eq!(
            raw("30 1 * * *", "2024-11-03T00:00", 2),
            "11-03T06:30 11-04T07:30"
        );
        // Multi-hour pattern: croner skips the gap's 02:30 and runs the folded 01:30 twice.
        assert_eq!(
            raw("30 1-3 * * *", "2024-03-10T06:00", 2),
            "03-10T07:30 03-10T08:30"
        );
        assert_eq!(
            raw("30 1-3 * * *", "2024-11-03T05:00", 2),
            "11-03T06:30 11-03T07:30"
        );
    }

    /// Zones with 1 h, 30 min and midnight changes, a 45-minute offset and an odd history.
    const ZONES: [Tz; 8] = [
        CHICAGO,
        LONDON,
        Tz::Australia__Sydney,
        Tz::America__Santiago,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Kathmandu,
        Tz::America__St_Johns,
        Tz::Asia__Beirut,
    ];

    #[test]
    fn properties_hold_in_many_zones() {
        let (from, to) = (utc("2021-12-31T00:00"), utc("2024-01-02T00:00"));
        for tz in ZONES {
            // A 15-minute cadence is exactly 15 real minutes apart, always.
            let slots: Vec<_> = sched("every 15m").nominal_times(from, to, tz).collect();
            assert!(
                slots
                    .windows(2)
                    .all(|w| w[1] - w[0] == TimeDelta::minutes(15)),
                "{tz}"
            );
            // A time of day fires once per local day, every day.
            for text in ["daily at 02:00", "daily at 00:00", "30 1 * * *"] {
                let fired: Vec<_> = sched(text).nominal_times(from, to, tz).collect();
                let mut days: Vec<_> = fired
                    .iter()
                    .map(|t| t.with_timezone(&tz).date_naive())
                    .collect();
                days.dedup();
                assert_eq!(days.len(), fired.len(), "{text} in {tz}");
                assert!(
                    (731..=733).contains(&fired.len()),
                    "{text} in {tz}: {}",
                    fired.len()
                );
            }
        }
    }

    /// For single-time cron patterns croner's zone-aware search implements the same rule, so
    /// the engine must agree with it exactly: a differential check of both.
    #[test]
    fn single_time_cron_agrees_with_croner() {
        let (from, to) = (utc("2021-01-01T00:00"), utc("2025-01-01T00:00"));
        for tz in ZONES {
            for pattern in ["30 2 * * *", "0 1 * * *", "0 0 * * *", "45 23 * * 0"] {
                let cron: croner::Cron = pattern.parse().unwrap();
                let raw = cron.iter_after(from.with_timezone(&tz)).map(|t| t.to_utc());
                let raw: Vec<_> = raw.take_while(|t| *t <= to).collect();
                let ours: Vec<_> = sched(pattern).nominal_times(from, to, tz).collect();
                assert_eq!(ours, raw, "{pattern} in {tz}");
            }
        }
    }

    #[test]
    fn monthly_day_31_29_and_last_clamp_to_month_end() {
        let days = |s: &str, from: &str, to: &str| -> String {
            let schedule = sched(s);
            let times = schedule.nominal_times(utc(from), utc(to), Tz::UTC);
            times
                .map(|t| format!("{}/{}", t.month(), t.day()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let y2024 = days(
            "monthly on day 31 at 02:00",
            "2024-01-01T00:00",
            "2024-12-31T23:00",
        );
        assert_eq!(
            y2024,
            "1/31 2/29 3/31 4/30 5/31 6/30 7/31 8/31 9/30 10/31 11/30 12/31"
        );
        let feb = |s: &str, y: i32| {
            days(
                s,
                &format!("{y}-02-01T00:00:00Z"),
                &format!("{y}-03-01T00:00:00Z"),
            )
        };
        assert_eq!(feb("monthly on day 31 at 02:00", 2025), "2/28");
        assert_eq!(feb("monthly on day 29 at 02:00", 2025), "2/28");
        assert_eq!(feb("monthly on day 29 at 02:00", 2024), "2/29");
        assert_eq!(feb("monthly on last day at 23:00", 2025), "2/28");
        // The range is (from, to]: Feb 1 00:00 is the excluded start, Mar 1 00:00 the included end.
        assert_eq!(feb("monthly on day 1 at 00:00", 2025), "3/1");
        assert_eq!(
            feb("@monthly", 2024),
            feb("monthly on day 1 at 00:00", 2024)
        );
    }

    #[test]
    fn weekly_yearly_and_strictly_after() {
        let mon = sched("weekly on mon at 06:00");
        let t = mon.next_after(utc("2025-01-01T00:00"), CHICAGO).unwrap();
        assert_eq!(t, utc("2025-01-06T12:00"));
        assert_eq!(mon.next_after(t, CHICAGO), Some(utc("2025-01-13T12:00")));
        let next_utc = |s: &str| sched(s).next_after(utc("2025-01-01T00:00"), Tz::UTC);
        assert_eq!(next_utc("@weekly"), Some(utc("2025-01-06T00:00")));
        assert_eq!(next_utc("@yearly"), Some(utc("2026-01-01T00:00")));
        // Sub-second cursors, empty ranges and the ends of chrono's range.
        let sub = utc("2025-01-06T11:59:59.999Z");
        assert_eq!(mon.next_after(sub, CHICAGO), Some(utc("2025-01-06T12:00")));
        assert_eq!(
            fires(
                "daily at 02:00",
                CHICAGO,
                "2025-01-02T08:00",
                "2025-01-02T08:00"
            ),
            ""
        );
        assert_eq!(mon.next_after(DateTime::<Utc>::MAX_UTC, CHICAGO), None);
        assert!(
            sched("every 15m")
                .next_after(DateTime::<Utc>::MIN_UTC, Tz::UTC)
                .is_some()
        );
    }

    #[test]
    fn describe_period_and_display() {
        let cases = [
            ("daily at 02:00", "every day at 02:00"),
            ("weekly on monday at 06:00", "every Monday at 06:00"),
            (
                "monthly on day 31 at 02:00",
                "on day 31 of every month at 02:00 (the last day in shorter months)",
            ),
            (
                "monthly on last day at 23:00",
                "on the last day of every month at 23:00",
            ),
            ("hourly at :15", "every hour at :15"),
            ("every 15m", "every 15 minutes (aligned to local midnight)"),
            ("every 7m", "every 7 minutes (aligned to the Unix epoch)"),
            ("0 2 * * *", "cron `0 2 * * *`: At 02:00."),
        ];
        for (text, description) in cases {
            assert_eq!(sched(text).describe(), description);
            assert_eq!(sched(&format!("  {text} ")).to_string(), text);
        }
        assert_eq!(sched("@daily").describe(), sched("daily").describe());
        assert_eq!(sched("every 2h").period_hint(), Some(TimeDelta::hours(2)));
        assert_eq!(sched("@hourly").period_hint(), Some(TimeDelta::hours(1)));
        assert_eq!(sched("daily").period_hint(), None);
        assert_eq!(sched("weekly").suggested_window(), WindowKind::PreviousWeek);
        assert_eq!(
            Schedule::try_from("every 1h".to_string()).unwrap().as_str(),
            "every 1h"
        );
    }
}
