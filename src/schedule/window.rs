//! Windows: the half-open slice of time `[start, end)` one run exports.
//!
//! A window is derived from the run's *nominal* time (when the schedule fired), never from the
//! wall clock when the run actually starts, so a run delayed by an outage still exports exactly
//! the window it was meant to, and re-running it writes the same object names. Calendar windows
//! are computed in the export's time zone: `previous_day` is a local day, 23 or 25 hours long
//! across DST changes, and a local midnight a zone skips resolves to the first instant after it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use super::engine::{first_at_or_after, local};
use super::parse::suggest;

/// Which window a run exports; parsed from the snake_case names used in export definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// The local clock hour before the one the nominal time falls in, in real time: the hour
    /// `[h − 1 h, h)` where `h` is the nominal time with local minutes and seconds cleared, so
    /// hourly runs tile the time line even through a repeated hour.
    PreviousHour,
    /// The local calendar day before the nominal time's day.
    PreviousDay,
    /// The ISO week (Monday to Monday, local) before the nominal time's week.
    PreviousWeek,
    /// The local calendar month before the nominal time's month.
    PreviousMonth,
    /// The seven whole local days before the nominal time's day: `[midnight 7 days before,
    /// midnight of the nominal day)`. The nominal day's partial data is left out, so a daily run
    /// never exports a day that is still being written.
    Last7Days,
    /// `[watermark, nominal)`. Without a watermark (first run) the window has no start: the
    /// first run exports everything before the nominal time, which is what a "since" export's
    /// first delivery should contain. A watermark after the nominal time gives an empty window.
    SinceLastRun,
    /// Everything before the nominal time (no start).
    All,
}

const NAMES: [(WindowKind, &str); 7] = [
    (WindowKind::PreviousHour, "previous_hour"),
    (WindowKind::PreviousDay, "previous_day"),
    (WindowKind::PreviousWeek, "previous_week"),
    (WindowKind::PreviousMonth, "previous_month"),
    (WindowKind::Last7Days, "last_7_days"),
    (WindowKind::SinceLastRun, "since_last_run"),
    (WindowKind::All, "all"),
];

/// A window name that is not one of the seven kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown window `{got}`{}; expected one of previous_hour, previous_day, previous_week, \
     previous_month, last_7_days, since_last_run, all",
    .suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
)]
pub struct ParseWindowKindError {
    /// The text that was given, trimmed.
    pub got: String,
    /// The nearest valid name, when the text looks like a typo of one.
    pub suggestion: Option<String>,
}

/// A half-open interval `[start, end)` of real time; `start: None` means "from the beginning".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Inclusive start; `None` for "from the beginning" (`all`, first `since_last_run`).
    pub start: Option<DateTime<Utc>>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

/// Path template variables for one run, all rendered in the export's time zone from the window
/// start (or from the nominal time when the window has no start, as for `all`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TemplateVars {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Four-digit year of `date` (calendar year, not ISO week year).
    pub year: String,
    /// Two-digit month, `01`–`12`.
    pub month: String,
    /// Two-digit day of month.
    pub day: String,
    /// Two-digit hour, `00`–`23`.
    pub hour: String,
    /// ISO week with its ISO year, e.g. `2024-W03` (2024-12-30 is `2025-W01`).
    pub week: String,
}

impl WindowKind {
    /// All kinds, in documentation order.
    pub const ALL: [WindowKind; 7] = [
        WindowKind::PreviousHour,
        WindowKind::PreviousDay,
        WindowKind::PreviousWeek,
        WindowKind::PreviousMonth,
        WindowKind::Last7Days,
        WindowKind::SinceLastRun,
        WindowKind::All,
    ];

    /// The snake_case name used in export definitions.
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("all", |(_, n)| n)
    }

    /// The window of a run fired at `nominal`, read in `tz`. `last_watermark` is the end of the
    /// last successfully exported window, used only by `since_last_run`. Never panics: at the
    /// far ends of chrono's range, where a boundary cannot be computed, the window is empty.
    pub fn window_for(
        self,
        nominal: DateTime<Utc>,
        tz: Tz,
        last_watermark: Option<DateTime<Utc>>,
    ) -> Window {
        let Some(local) = local(tz, nominal) else {
            return Window {
                start: Some(nominal),
                end: nominal,
            };
        };
        let today = local.date();
        let midnight = |d: Option<NaiveDate>| {
            d.and_then(|d| first_at_or_after(tz, d.and_time(NaiveTime::MIN)))
        };
        let calendar = |from: Option<NaiveDate>, to: Option<NaiveDate>| {
            let end = midnight(to).unwrap_or(nominal);
            Window {
                start: Some(midnight(from).filter(|s| *s <= end).unwrap_or(end)),
                end,
            }
        };
        match self {
            WindowKind::PreviousHour => {
                let into_hour = TimeDelta::seconds(i64::from(local.minute() * 60 + local.second()))
                    + TimeDelta::nanoseconds(i64::from(local.nanosecond()));
                let end = nominal.checked_sub_signed(into_hour).unwrap_or(nominal);
                Window {
                    start: Some(end.checked_sub_signed(TimeDelta::hours(1)).unwrap_or(end)),
                    end,
                }
            }
            WindowKind::PreviousDay => calendar(today.pred_opt(), Some(today)),
            WindowKind::PreviousWeek => {
                let back = u64::from(today.weekday().num_days_from_monday());
                let monday = today.checked_sub_days(Days::new(back));
                calendar(
                    monday.and_then(|m| m.checked_sub_days(Days::new(7))),
                    monday,
                )
            }
            WindowKind::PreviousMonth => {
                let first = today.with_day(1);
                calendar(
                    first.and_then(|f| f.checked_sub_months(Months::new(1))),
                    first,
                )
            }
            WindowKind::Last7Days => calendar(today.checked_sub_days(Days::new(7)), Some(today)),
            WindowKind::SinceLastRun => Window {
                start: last_watermark.map(|w| w.min(nominal)),
                end: nominal,
            },
            WindowKind::All => Window {
                start: None,
                end: nominal,
            },
        }
    }
}

impl FromStr for WindowKind {
    type Err = ParseWindowKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let got = s.trim();
        NAMES
            .iter()
            .find(|(_, n)| *n == got)
            .map(|(k, _)| *k)
            .ok_or_else(|| ParseWindowKindError {
                got: got.to_owned(),
                suggestion: suggest(&got.replace(['-', ' '], "_"), NAMES.iter().map(|(_, n)| *n)),
            })
    }
}

/// Lets config types use `#[serde(try_from = "String", into = "String")]`.
impl TryFrom<String> for WindowKind {
    type Error = ParseWindowKindError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WindowKind> for String {
    fn from(kind: WindowKind) -> String {
        kind.as_str().to_owned()
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Window {
    /// Whether `t` falls inside `[start, end)`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= t) && t < self.end
    }

    /// Real length of the window; `None` when it has no start.
    pub fn duration(&self) -> Option<TimeDelta> {
        self.start.map(|s| self.end.signed_duration_since(s))
    }

    /// Template variables for this window (see [`TemplateVars`]); `nominal` stands in for a
    /// missing start.
    pub fn template_vars(&self, nominal: DateTime<Utc>, tz: Tz) -> TemplateVars {
        TemplateVars::at(self.start.unwrap_or(nominal), tz)
    }
}

impl TemplateVars {
    /// The variables for one instant, read in `tz`.
    pub fn at(instant: DateTime<Utc>, tz: Tz) -> Self {
        // Outside chrono's range the UTC reading is the only one available.
        let local = local(tz, instant).unwrap_or(instant.naive_utc());
        let iso = local.iso_week();
        TemplateVars {
            date: local.format("%Y-%m-%d").to_string(),
            year: local.format("%Y").to_string(),
            month: local.format("%m").to_string(),
            day: local.format("%d").to_string(),
            hour: local.format("%H").to_string(),
            week: format!("{}-W{:02}", iso.year(), iso.week()),
        }
    }

    /// Name/value pairs, for handing to the template engine.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("date", self.date.clone()),
            ("year", self.year.clone()),
            ("month", self.month.clone()),
            ("day", self.day.clone()),
            ("hour", self.hour.clone()),
            ("week", self.week.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::Schedule;
    use super::*;

    const CHICAGO: Tz = Tz::America__Chicago;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }
    /// The window as `start/end` in local time with offsets (`..` for no start), plus its vars.
    fn win(kind: WindowKind, nominal: &str, tz: Tz) -> (String, TemplateVars) {
        let w = kind.window_for(utc(nominal), tz, None);
        let show = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M%:z").to_string();
        let start = w.start.map_or("..".to_owned(), show);
        (
            format!("{start}/{}", show(w.end)),
            w.template_vars(utc(nominal), tz),
        )
    }

    #[test]
    fn previous_day_is_a_local_day_of_23_or_25_hours() {
        // Run at 2024-03-11 02:00 CDT: a 23-hour day.
        let (w, vars) = win(WindowKind::PreviousDay, "2024-03-11T07:00:00Z", CHICAGO);
        assert_eq!(w, "2024-03-10T00:00-06:00/2024-03-11T00:00-05:00");
        assert_eq!(
            (vars.date.as_str(), vars.hour.as_str()),
            ("2024-03-10", "00")
        );
        let day = |n: &str| {
            WindowKind::PreviousDay
                .window_for(utc(n), CHICAGO, None)
                .duration()
        };
        assert_eq!(day("2024-03-11T07:00:00Z"), Some(TimeDelta::hours(23)));
        assert_eq!(day("2024-11-04T08:00:00Z"), Some(TimeDelta::hours(25)));
        // Santiago skipped midnight on 2022-09-11: that day starts at 01:00 -03.
        let (w, _) = win(
            WindowKind::PreviousDay,
            "2022-09-12T05:00:00Z",
            Tz::America__Santiago,
        );
        assert_eq!(w, "2022-09-11T01:00-03:00/2022-09-12T00:00-03:00");
    }

    #[test]
    fn previous_week_uses_iso_weeks_across_the_year_boundary() {
        let (w, vars) = win(WindowKind::PreviousWeek, "2025-01-06T12:00:00Z", CHICAGO);
        assert_eq!(w, "2024-12-30T00:00-06:00/2025-01-06T00:00-06:00");
        let got = (vars.week.as_str(), vars.date.as_str(), vars.year.as_str());
        assert_eq!(got, ("2025-W01", "2024-12-30", "2024"));
        let (w, vars) = win(WindowKind::PreviousWeek, "2024-12-30T12:00:00Z", CHICAGO);
        assert_eq!(w, "2024-12-23T00:00-06:00/2024-12-30T00:00-06:00");
        assert_eq!(vars.week, "2024-W52");
        // A run late on Sunday (local) still exports the week before its own.
        let (w, _) = win(WindowKind::PreviousWeek, "2025-01-06T05:59:00Z", CHICAGO);
        assert_eq!(w, "2024-12-23T00:00-06:00/2024-12-30T00:00-06:00");
    }

    #[test]
    fn previous_month_last_7_days_and_previous_hour() {
        let (w, vars) = win(WindowKind::PreviousMonth, "2024-03-01T06:00:00Z", CHICAGO);
        assert_eq!(w, "2024-02-01T00:00-06:00/2024-03-01T00:00-06:00");
        assert_eq!((vars.month.as_str(), vars.day.as_str()), ("02", "01"));
        let (w, _) = win(WindowKind::PreviousMonth, "2025-01-15T06:00:00Z", CHICAGO);
        assert_eq!(w, "2024-12-01T00:00-06:00/2025-01-01T00:00-06:00");
        let (w, _) = win(WindowKind::Last7Days, "2024-03-11T07:00:00Z", CHICAGO);
        assert_eq!(w, "2024-03-04T00:00-06:00/2024-03-11T00:00-05:00");
        // In the repeated hour: 01:15 CST exports [01:00 CDT, 01:00 CST).
        let (w, vars) = win(WindowKind::PreviousHour, "2024-11-03T07:15:00Z", CHICAGO);
        assert_eq!(w, "2024-11-03T01:00-05:00/2024-11-03T01:00-06:00");
        assert_eq!(vars.hour, "01");
        // Half-hour zones floor to the local hour, not the UTC one.
        let (w, _) = win(
            WindowKind::PreviousHour,
            "2024-01-01T05:45:00Z",
            Tz::Asia__Kolkata,
        );
        assert_eq!(w, "2024-01-01T10:00+05:30/2024-01-01T11:00+05:30");
    }

    #[test]
    fn hourly_previous_hour_windows_tile_dst_days() {
        let hourly: Schedule = "hourly".parse().unwrap();
        for from in ["2024-03-09T12:00:00Z", "2024-11-02T12:00:00Z"] {
            let to = utc(from) + TimeDelta::hours(48);
            let windows: Vec<Window> = hourly
                .nominal_times(utc(from), to, CHICAGO)
                .map(|t| WindowKind::PreviousHour.window_for(t, CHICAGO, None))
                .collect();
            assert_eq!(windows.len(), 48);
            assert!(windows.windows(2).all(|p| p[0].end == p[1].start.unwrap()));
        }
    }

    #[test]
    fn since_last_run_and_all() {
        let (nominal, mark) = (utc("2024-05-01T12:00:00Z"), utc("2024-05-01T11:45:00Z"));
        let since = |mark| WindowKind::SinceLastRun.window_for(nominal, CHICAGO, mark);
        let w = since(Some(mark));
        assert_eq!((w.start, w.end), (Some(mark), nominal));
        assert!(w.contains(mark) && !w.contains(nominal));
        assert_eq!(
            since(None),
            Window {
                start: None,
                end: nominal
            }
        );
        let future = since(Some(utc("2024-06-01T00:00:00Z")));
        assert_eq!(future.duration(), Some(TimeDelta::zero()));
        let (all, vars) = win(WindowKind::All, "2024-05-01T03:00:00Z", CHICAGO);
        assert_eq!(all, "../2024-04-30T22:00-05:00");
        assert_eq!(vars.date, "2024-04-30"); // the nominal local date
        let names: Vec<_> = vars.pairs().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["date", "year", "month", "day", "hour", "week"]);
    }

    #[test]
    fn names_round_trip_and_typos_get_suggestions() {
        for kind in WindowKind::ALL {
            assert_eq!(kind.to_string().parse::<WindowKind>(), Ok(kind));
        }
        let err = "previous-dya"
            .parse::<WindowKind>()
            .unwrap_err()
            .to_string();
        let expected = "unknown window `previous-dya`; did you mean `previous_day`?";
        assert!(err.starts_with(expected), "{err}");
        assert_eq!("weekly".parse::<WindowKind>().unwrap_err().suggestion, None);
    }

    #[test]
    fn extremes_do_not_panic() {
        for kind in WindowKind::ALL {
            for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                let w = kind.window_for(t, Tz::Pacific__Kiritimati, Some(t));
                let _ = w.template_vars(t, Tz::Pacific__Kiritimati);
            }
        }
    }
}
