//! The search engine behind [`Schedule::next_after`](super::Schedule::next_after).
//!
//! Every schedule except an epoch-aligned interval is a set of *wall-clock* times in the
//! export's time zone. The engine walks those wall-clock times in order (a pure calendar walk,
//! with no time zone involved, so croner's own DST handling never runs) and resolves each one to
//! real instants itself. Keeping the DST policy in one place is what lets `daily at 02:00` and
//! the cron expression `0 2 * * *` behave identically, and lets the policy differ from croner's
//! where DESIGN.md asks for it (see the module documentation of `schedule` for the rules).

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::{Kind, MonthDay};

/// Seconds in a civil day; intervals dividing it are aligned to local midnight.
pub(super) const DAY_SECS: u32 = 86_400;

/// Upper bound on wall-clock candidates examined per search. The longest legitimate run of
/// candidates that resolve to nothing new is a day-long gap or fold walked minute by minute
/// (1,440), so this only stops pathological inputs.
const MAX_STEPS: usize = 20_000;

/// How a wall-clock time maps onto the real time line of one time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolved {
    /// The wall-clock time occurs exactly once.
    Single(DateTime<Utc>),
    /// The wall-clock time occurs twice (clocks went back); earlier instant first.
    Ambiguous(DateTime<Utc>, DateTime<Utc>),
    /// The wall-clock time never occurs (clocks jumped forward); holds the first instant after
    /// the jump, i.e. the first instant whose wall clock reads later than the skipped time.
    Gap(Option<DateTime<Utc>>),
}

/// Resolves one wall-clock time in `tz`.
pub(super) fn resolve(tz: Tz, wall: NaiveDateTime) -> Resolved {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Resolved::Single(t.to_utc()),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.to_utc(), b.to_utc());
            Resolved::Ambiguous(a.min(b), a.max(b))
        }
        LocalResult::None => Resolved::Gap(gap_end(tz, wall)),
    }
}

/// The first instant whose wall clock in `tz` reads `wall` or later: the instant itself, the
/// earlier of two, or the end of the gap swallowing it. Used for "local midnight" too, so a
/// midnight that a zone skips resolves to the first valid instant after it.
pub(super) fn first_at_or_after(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match resolve(tz, wall) {
        Resolved::Single(t) | Resolved::Ambiguous(t, _) => Some(t),
        Resolved::Gap(t) => t,
    }
}

/// The wall-clock reading of `t` in `tz`; `None` where it would leave chrono's range (chrono's
/// own `naive_local` panics there).
pub(super) fn local(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    t.naive_utc()
        .checked_add_offset(tz.offset_from_utc_datetime(&t.naive_utc()).fix())
}

/// Finds the instant a gap ends by bisection over whole seconds, because chrono-tz does not
/// expose its transition table. Offsets never move by more than a day, so ±30 h brackets it.
fn gap_end(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let reaches = |secs: i64| -> Option<bool> {
        Some(local(tz, DateTime::from_timestamp(secs, 0)?)? >= wall)
    };
    let base = wall.and_utc().timestamp();
    let (mut lo, mut hi) = (base.checked_sub(30 * 3600)?, base.checked_add(30 * 3600)?);
    if reaches(lo)? || !reaches(hi)? {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// The next fire instant strictly after `after`; see the module docs of `schedule` for the
/// rules this implements.
pub(super) fn next_after(kind: &Kind, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    if let Kind::Every { seconds } = kind
        && !DAY_SECS.is_multiple_of(*seconds)
    {
        // Real time from the Unix epoch: no wall clock, so no DST question at all.
        let n = i64::from(*seconds);
        let next = after
            .timestamp()
            .div_euclid(n)
            .checked_add(1)?
            .checked_mul(n)?;
        return DateTime::from_timestamp(next, 0);
    }
    let cadence = kind.is_cadence();
    // A cadence fires on the second pass of a repeated hour too, and that pass can lie ahead of
    // `after` for wall-clock times behind `after`'s own: start the walk that much earlier.
    let margin = if cadence { fold_margin(tz, after) } else { 0 };
    let start = local(tz, after)?.checked_sub_signed(TimeDelta::seconds(margin))?;
    let mut wall = next_wall(kind, start, true)?;
    let mut best: Option<DateTime<Utc>> = None;
    for _ in 0..MAX_STEPS {
        let (first, second) = match resolve(tz, wall) {
            Resolved::Single(t) => (Some(t), None),
            Resolved::Ambiguous(early, late) => (Some(early), cadence.then_some(late)),
            // A cadence skips wall-clock times no real time passes through; a named time of
            // day runs once at the first instant after the gap.
            Resolved::Gap(end) => (if cadence { None } else { end }, None),
        };
        if let Some(late) = second.filter(|t| *t > after) {
            best = Some(best.map_or(late, |b| b.min(late)));
        }
        // `first` never decreases as the walk advances, so the first one past `after` ends it.
        if let Some(first) = first.filter(|t| *t > after) {
            return Some(best.map_or(first, |b| b.min(first)));
        }
        wall = next_wall(kind, wall, false)?;
    }
    best
}

/// How far (in seconds) the UTC offset drops soon after `after`: the length of a fold ahead,
/// whose second pass may still hold fire times for wall-clock times behind us. Such a fold must
/// begin within its own length of `after` (at most a day), so a few samples up to 26 h find it.
fn fold_margin(tz: Tz, after: DateTime<Utc>) -> i64 {
    let offset = |t: DateTime<Utc>| {
        i64::from(
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let now = offset(after);
    let lowest = [1, 2, 3, 6, 12, 26]
        .into_iter()
        .filter_map(|h| after.checked_add_signed(TimeDelta::hours(h)))
        .map(offset)
        .min()
        .unwrap_or(now);
    (now - lowest).max(0)
}

/// The first wall-clock time the schedule names at or after (`inclusive`) or strictly after
/// `wall`. Every native form fires on whole seconds, so the cursor is rounded up to one.
fn next_wall(kind: &Kind, wall: NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
    let wall = if inclusive {
        wall
    } else {
        wall.checked_add_signed(TimeDelta::seconds(1))?
    };
    let w = if wall.nanosecond() == 0 {
        wall
    } else {
        wall.with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?
    };
    let date = w.date();
    let at_or_next = |c: NaiveDateTime, next: &dyn Fn(NaiveDateTime) -> Option<NaiveDateTime>| {
        if c >= w { Some(c) } else { next(c) }
    };
    match kind {
        Kind::Daily { at } => at_or_next(date.and_time(*at), &|c| c.checked_add_days(Days::new(1))),
        Kind::Weekly { on, at } => {
            let ahead = (7 + on.num_days_from_monday() - date.weekday().num_days_from_monday()) % 7;
            let c = date
                .checked_add_days(Days::new(u64::from(ahead)))?
                .and_time(*at);
            at_or_next(c, &|c| c.checked_add_days(Days::new(7)))
        }
        Kind::Monthly { on, at } => {
            let c = month_fire(date.year(), date.month(), *on, *at)?;
            at_or_next(c, &|_| {
                let (y, m) = if date.month() == 12 {
                    (date.year().checked_add(1)?, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                month_fire(y, m, *on, *at)
            })
        }
        Kind::Hourly { minute } => {
            let c = date.and_hms_opt(w.hour(), *minute, 0)?;
            at_or_next(c, &|c| c.checked_add_signed(TimeDelta::hours(1)))
        }
        Kind::Every { seconds } => {
            let slot = w.num_seconds_from_midnight().div_ceil(*seconds) * seconds;
            match NaiveTime::from_num_seconds_from_midnight_opt(slot, 0) {
                Some(t) if slot < DAY_SECS => Some(date.and_time(t)),
                _ => Some(date.succ_opt()?.and_time(NaiveTime::MIN)),
            }
        }
        Kind::Cron { cron, .. } => cron.find_next_occurrence(&w, true).ok(),
    }
}

/// The fire time of a monthly schedule in one month. Day numbers past the month's end are
/// clamped to its last day (documented on `schedule`).
fn month_fire(year: i32, month: u32, on: MonthDay, at: NaiveTime) -> Option<NaiveDateTime> {
    let last = last_day_of_month(year, month)?;
    let day = match on {
        MonthDay::Day(d) => d.min(last),
        MonthDay::Last => last,
    };
    Some(NaiveDate::from_ymd_opt(year, month, day)?.and_time(at))
}

/// Number of days in a month (28–31), computed rather than tabulated so leap years are right.
pub(super) fn last_day_of_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    Some(next.pred_opt()?.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }
    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn resolves_gap_fold_and_skipped_midnight() {
        let chicago = Tz::America__Chicago;
        assert_eq!(
            resolve(chicago, wall("2024-03-10 02:30")),
            Resolved::Gap(Some(utc("2024-03-10T08:00:00Z")))
        );
        assert_eq!(
            resolve(chicago, wall("2024-11-03 01:30")),
            Resolved::Ambiguous(utc("2024-11-03T06:30:00Z"), utc("2024-11-03T07:30:00Z"))
        );
        // Santiago skipped 2022-09-11 00:00 (-04 → -03): midnight is 01:00 -03.
        assert_eq!(
            first_at_or_after(Tz::America__Santiago, wall("2022-09-11 00:00")),
            Some(utc("2022-09-11T04:00:00Z"))
        );
    }

    #[test]
    fn month_lengths() {
        assert_eq!(last_day_of_month(2024, 2), Some(29));
        assert_eq!(last_day_of_month(2025, 2), Some(28));
        assert_eq!(last_day_of_month(1900, 2), Some(28));
        assert_eq!(last_day_of_month(2000, 2), Some(29));
        assert_eq!(last_day_of_month(2024, 12), Some(31));
        assert_eq!(last_day_of_month(2024, 13), None);
    }
}
