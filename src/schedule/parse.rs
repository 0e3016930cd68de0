//! Parsing schedule text into its form, with errors an operator can act on.
//!
//! The grammar is small and keyword-led, so it is parsed by hand over lower-cased,
//! whitespace-split tokens: that keeps error messages specific ("unknown weekday `mondy`; did
//! you mean `monday`?") where a generic parser would only say "unexpected token". Anything whose
//! first token looks like a cron field goes to croner, and croner's message is passed through
//! with the expected field layout appended.

use chrono::{NaiveDate, NaiveTime, Weekday};
use croner::Cron;

use super::engine::DAY_SECS;
use super::{Kind, MonthDay};

/// Weekday names, Monday first (ISO order, as `Weekday::num_days_from_monday`).
pub(super) const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const KEYWORDS: [&str; 5] = ["daily", "weekly", "monthly", "hourly", "every"];
const MACROS: [&str; 7] = [
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
];
/// Unit spellings accepted by `every`, for typo suggestions.
const UNIT_NAMES: [&str; 6] = ["seconds", "minutes", "hours", "sec", "min", "hr"];
const CRON_SHAPE: &str = "expected 5 fields \"minute hour day-of-month month day-of-week\", or 6 with a leading seconds field";

/// Why a schedule string was rejected. Messages quote the offending text and, where a typo is
/// likely, suggest the nearest valid word. Fields are public so a caller (e.g. `exportd
/// validate`) can point at the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing but whitespace.
    #[error("empty schedule; expected e.g. `daily at 02:00`, `every 15m` or a cron expression")]
    Empty,
    /// The first word is no known form; `suggestion` is the nearest keyword.
    #[error(
        "unrecognised schedule `{text}`{}; expected `daily at HH:MM`, `weekly on DAY at HH:MM`, \
         `monthly on day N at HH:MM`, `hourly at :MM`, `every N(m|h)`, `@daily`… or a cron expression",
        did_you_mean(.suggestion)
    )]
    Unrecognised {
        text: String,
        suggestion: Option<String>,
    },
    /// A known form with the wrong words after its keyword.
    #[error("in schedule `{text}`: expected {expected}")]
    Syntax { text: String, expected: String },
    /// `weekly on DAY` with an unknown DAY.
    #[error("unknown weekday `{got}`{}", did_you_mean(.suggestion))]
    UnknownWeekday {
        got: String,
        suggestion: Option<String>,
    },
    /// A time of day or `:MM` minute that is malformed or out of range.
    #[error("invalid time `{got}`: {reason}")]
    InvalidTime { got: String, reason: &'static str },
    /// `monthly on day N` with N outside 1–31.
    #[error("invalid day of month `{got}`: expected 1–31, or `last day`")]
    InvalidDay { got: String },
    /// `every N<unit>` with a bad unit or an interval outside 1 minute–24 hours.
    #[error("invalid interval `{got}`: {reason}")]
    InvalidInterval { got: String, reason: String },
    /// A cron expression croner rejects, or one that fires more than once a minute or never.
    #[error("{message}")]
    Cron { expr: String, message: String },
}

/// Renders an optional suggestion as `; did you mean `x`?`.
fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// The candidate closest to `got` by edit distance, if close enough to be a plausible typo
/// (at most 2 edits, and fewer than half the word).
pub(super) fn suggest<'a>(
    got: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let got = got.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (crate::text::edit_distance(&got, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2 && *d * 2 < c.chars().count().max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_lowercase())
}

/// Parses a schedule; the caller keeps the original text for `Display`.
pub(super) fn parse(text: &str) -> Result<Kind, ScheduleError> {
    let text = text.trim();
    let lower = text.to_lowercase();
    let tokens: Vec<&str> = lower.split_whitespace().collect();
    let Some((&head, rest)) = tokens.split_first() else {
        return Err(ScheduleError::Empty);
    };
    let syntax = |expected: &str| ScheduleError::Syntax {
        text: text.to_owned(),
        expected: expected.to_owned(),
    };
    match head {
        "daily" => Ok(Kind::Daily {
            at: optional_at(rest, &syntax, "`at HH:MM` after `daily`")?,
        }),
        "hourly" => match rest {
            [] => Ok(Kind::Hourly { minute: 0 }),
            ["at", m] => Ok(Kind::Hourly {
                minute: minute_of_hour(m)?,
            }),
            _ => Err(syntax("`at :MM` after `hourly` (e.g. `hourly at :15`)")),
        },
        "weekly" => match rest {
            [] => Ok(Kind::Weekly {
                on: Weekday::Mon,
                at: NaiveTime::MIN,
            }),
            ["on", day, tail @ ..] => Ok(Kind::Weekly {
                on: weekday(day)?,
                at: optional_at(tail, &syntax, "`at HH:MM` after the weekday")?,
            }),
            _ => Err(syntax(
                "`on DAY at HH:MM` after `weekly` (e.g. `weekly on monday at 06:00`)",
            )),
        },
        "monthly" => monthly(rest, &syntax),
        "every" => every(&rest.concat()),
        _ if head.starts_with('@') => macro_form(head, text),
        _ if head.starts_with(|c: char| c.is_ascii_digit() || "*?/".contains(c)) => cron(text),
        _ => Err(ScheduleError::Unrecognised {
            text: text.to_owned(),
            suggestion: suggest(head, KEYWORDS),
        }),
    }
}

/// `[]` (midnight) or `["at", "HH:MM"]`.
fn optional_at(
    rest: &[&str],
    syntax: &dyn Fn(&str) -> ScheduleError,
    expected: &str,
) -> Result<NaiveTime, ScheduleError> {
    match rest {
        [] => Ok(NaiveTime::MIN),
        ["at", t] => time_of_day(t),
        _ => Err(syntax(expected)),
    }
}

/// `on day N [at HH:MM]` or `on last day [at HH:MM]`, with an optional `the`.
fn monthly(rest: &[&str], syntax: &dyn Fn(&str) -> ScheduleError) -> Result<Kind, ScheduleError> {
    let expected = "`on day N at HH:MM` or `on last day at HH:MM` after `monthly`";
    let rest = match rest {
        [] => {
            return Ok(Kind::Monthly {
                on: MonthDay::Day(1),
                at: NaiveTime::MIN,
            });
        }
        ["on", "the", tail @ ..] | ["on", tail @ ..] => tail,
        _ => return Err(syntax(expected)),
    };
    let (on, tail) = match rest {
        ["last", "day", tail @ ..] => (MonthDay::Last, tail),
        ["day", n, tail @ ..] => match n.parse::<u32>() {
            Ok(d @ 1..=31) if n.len() <= 2 => (MonthDay::Day(d), tail),
            _ => {
                return Err(ScheduleError::InvalidDay {
                    got: (*n).to_owned(),
                });
            }
        },
        _ => return Err(syntax(expected)),
    };
    Ok(Kind::Monthly {
        on,
        at: optional_at(tail, syntax, "`at HH:MM` after the day")?,
    })
}

/// `HH:MM` on the 24-hour clock; one-digit hours are accepted (`2:00`).
fn time_of_day(t: &str) -> Result<NaiveTime, ScheduleError> {
    let bad = |reason| ScheduleError::InvalidTime {
        got: t.to_owned(),
        reason,
    };
    let digits = |s: &str, max_len| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    let Some((h, m)) = t
        .split_once(':')
        .filter(|(h, m)| digits(h, 2) && m.len() == 2 && digits(m, 2))
    else {
        return Err(bad(
            "expected HH:MM on the 24-hour clock, e.g. 02:00 or 23:30",
        ));
    };
    let (h, m): (u32, u32) = (h.parse().unwrap_or(99), m.parse().unwrap_or(99));
    if h > 23 {
        return Err(bad("hours are 00–23"));
    }
    if m > 59 {
        return Err(bad("minutes are 00–59"));
    }
    NaiveTime::from_hms_opt(h, m, 0).ok_or(bad("not a time of day"))
}

/// `:MM` (or `MM`) for `hourly at`.
fn minute_of_hour(m: &str) -> Result<u32, ScheduleError> {
    let digits = m.strip_prefix(':').unwrap_or(m);
    match digits.parse::<u32>() {
        Ok(n @ 0..=59) if digits.len() == 2 => Ok(n),
        _ => Err(ScheduleError::InvalidTime {
            got: m.to_owned(),
            reason: "expected :MM with minutes 00–59, e.g. :15",
        }),
    }
}

fn weekday(day: &str) -> Result<Weekday, ScheduleError> {
    let found = WEEKDAYS.iter().position(|full| {
        let full = full.to_lowercase();
        day == full || (day.len() >= 3 && full.starts_with(day))
    });
    match found
        .and_then(|i| u8::try_from(i).ok())
        .and_then(|i| Weekday::try_from(i).ok())
    {
        Some(w) => Ok(w),
        None => Err(ScheduleError::UnknownWeekday {
            got: day.to_owned(),
            suggestion: suggest(day, WEEKDAYS),
        }),
    }
}

/// `every N<unit>` (tokens already joined, so `15 minutes` arrives as `15minutes`); a missing
/// number means one (`every hour`).
fn every(spec: &str) -> Result<Kind, ScheduleError> {
    let invalid = |reason: String| ScheduleError::InvalidInterval {
        got: spec.to_owned(),
        reason,
    };
    let split = spec
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(spec.len());
    let (number, unit) = spec.split_at(split);
    let n: u32 = if number.is_empty() {
        1
    } else {
        number
            .parse()
            .map_err(|_| invalid("number too large".into()))?
    };
    let Some(scale) = unit_seconds(unit) else {
        let hint = did_you_mean(&suggest(unit, UNIT_NAMES));
        return Err(invalid(format!(
            "expected a number and a unit s, m or h, e.g. `every 15m`{hint}"
        )));
    };
    match n.checked_mul(scale) {
        Some(s) if s < 60 => Err(invalid(
            "intervals shorter than 1 minute are not supported".into(),
        )),
        Some(s) if s <= DAY_SECS => Ok(Kind::Every { seconds: s }),
        _ => Err(invalid(
            "intervals longer than 24h are not supported; use `daily`, `weekly` or cron".into(),
        )),
    }
}

fn unit_seconds(unit: &str) -> Option<u32> {
    match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600),
        _ => None,
    }
}

/// `@daily` and friends. `@weekly` is Monday (ISO weeks), unlike cron's Sunday, so that it
/// lines up with `previous_week` windows.
fn macro_form(head: &str, text: &str) -> Result<Kind, ScheduleError> {
    let midnight = NaiveTime::MIN;
    match head {
        _ if text.split_whitespace().count() > 1 => Err(ScheduleError::Syntax {
            text: text.to_owned(),
            expected: format!("nothing after `{head}`"),
        }),
        "@hourly" => Ok(Kind::Hourly { minute: 0 }),
        "@daily" | "@midnight" => Ok(Kind::Daily { at: midnight }),
        "@weekly" => Ok(Kind::Weekly {
            on: Weekday::Mon,
            at: midnight,
        }),
        "@monthly" => Ok(Kind::Monthly {
            on: MonthDay::Day(1),
            at: midnight,
        }),
        "@yearly" | "@annually" => cron("0 0 1 1 *"),
        _ => Err(ScheduleError::Unrecognised {
            text: text.to_owned(),
            suggestion: suggest(head, MACROS),
        }),
    }
}

/// Checks the numbers of each cron field against its range, so `0 25 * * *` is explained as
/// "hour `25` is out of range 0–23" instead of croner's generic message.
fn check_cron_ranges(expr: &str) -> Result<(), String> {
    const FIVE: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let (fields, offset): (Vec<(&str, u32, u32)>, usize) = if parts.len() == 6 {
        (std::iter::once(("second", 0, 59)).chain(FIVE).collect(), 0)
    } else {
        (FIVE.to_vec(), 0)
    };
    for ((name, lo, hi), part) in fields.iter().zip(&parts[offset..]) {
        // Step values (`*/15`) are counts, not positions: only check what precedes a `/`.
        for item in part.split(',') {
            let base = item.split('/').next().unwrap_or(item);
            for number in base.split('-') {
                if let Ok(n) = number.parse::<u32>()
                    && (n < *lo || n > *hi)
                {
                    return Err(format!("{name} `{n}` is out of range {lo}–{hi}"));
                }
            }
        }
    }
    Ok(())
}

/// A 5- or 6-field cron expression, checked to fire at most once a minute and at least once.
fn cron(expr: &str) -> Result<Kind, ScheduleError> {
    let fail = |message: String| ScheduleError::Cron {
        expr: expr.to_owned(),
        message,
    };
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(fail(format!(
            "a cron expression has 5 or 6 fields, found {fields}; {CRON_SHAPE}"
        )));
    }
    check_cron_ranges(expr).map_err(fail)?;
    let cron: Cron = expr.parse().map_err(|e: croner::errors::CronError| {
        fail(format!("invalid cron expression: {e}; {CRON_SHAPE}"))
    })?;
    let seconds = (0..60)
        .filter(|s| cron.pattern.second_match(*s).unwrap_or(false))
        .count();
    if seconds != 1 {
        return Err(fail(
            "the seconds field must be a single value: exports run at most once a minute".into(),
        ));
    }
    let probe = NaiveDate::from_ymd_opt(2000, 1, 1).map(|d| d.and_time(NaiveTime::MIN));
    if probe.is_none_or(|p| cron.find_next_occurrence(&p, true).is_err()) {
        return Err(fail("it never matches a real date".into()));
    }
    let cadence = (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false));
    Ok(Kind::Cron {
        cron: Box::new(cron),
        cadence,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Schedule;
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use chrono_tz::Tz;

    fn err(s: &str) -> String {
        s.parse::<Schedule>().expect_err(s).to_string()
    }

    #[test]
    fn accepts_every_documented_form() {
        let forms = "daily at 02:00|Daily At 2:00|daily|weekly on monday at 06:00|weekly on mon \
            at 06:00|weekly on Thurs|monthly on day 1 at 00:00|monthly on the day 31 at 02:00|\
            monthly on last day at 23:00|monthly|hourly|hourly at :15|hourly at 45|every 15m|\
            every 2h|every 90s|every 15 minutes|every hour|every 24h|@hourly|@daily|@weekly|\
            @monthly|@yearly|0 2 * * *|0 30 2 * * *|*/15 * * * *|0 0 L * *|0 9 * * MON-FRI|\
            0 0 29 2 *";
        for s in forms.split('|') {
            assert!(
                s.parse::<Schedule>().is_ok(),
                "{s}: {:?}",
                s.parse::<Schedule>()
            );
        }
    }

    #[test]
    fn helpful_errors() {
        assert_eq!(
            err("weekly on mondy at 06:00"),
            "unknown weekday `mondy`; did you mean `monday`?"
        );
        assert_eq!(
            err("daily at 25:00"),
            "invalid time `25:00`: hours are 00–23"
        );
        assert_eq!(
            err("daily at 02:60"),
            "invalid time `02:60`: minutes are 00–59"
        );
        assert!(err("daily at 2pm").contains("expected HH:MM"));
        assert!(
            err("dayly at 02:00").ends_with("or a cron expression")
                && err("dayly").contains("did you mean `daily`?")
        );
        assert!(err("monthly on day 32").contains("expected 1–31"));
        assert!(err("every 30s").contains("shorter than 1 minute"));
        assert!(err("every 25h").contains("longer than 24h"));
        assert!(err("every 15 minuts").contains("did you mean `minutes`?"));
        assert!(err("@daly").contains("did you mean `@daily`?"));
        assert_eq!(err("  "), ScheduleError::Empty.to_string());
        assert_eq!(err("61 2 * * *"), "minute `61` is out of range 0–59");
        assert_eq!(err("0 25 * * *"), "hour `25` is out of range 0–23");
        assert!(err("0 2 * *").contains("found 4"), "{}", err("0 2 * *"));
        assert!(err("* * * * * *").contains("at most once a minute"));
        assert!(err("0 0 30 2 *").contains("never matches"));
        assert!(err("daily at 02:00 sharp").contains("expected `at HH:MM` after `daily`"));
    }

    use crate::testing::SplitMix;

    /// Random token soup and raw bytes must never panic the parser, and anything it accepts must
    /// never panic the engine, even at the ends of chrono's range.
    #[test]
    fn fuzz_parser_and_engine_never_panic() {
        let tokens: Vec<&str> = "daily weekly monthly hourly every at on day last the mon sunday \
            02:00 23:59 24:00 :15 99 0 31 -1 15m 2h 90s 1 m * */7 L W # @daily @weekly @yearly 1-3 \
            5/0 , ? MON-FRI é ΩΩ \u{0} 2147483648 18446744073709551616 : ::"
            .split(' ')
            .chain([""])
            .collect();
        let cron_fields: Vec<&str> = "* 0 */15 1-3 L 30 59 MON 2 ? 5W 1#2 0,30 FRI-SUN 60 */0"
            .split(' ')
            .collect();
        let valid: Vec<&str> = "daily at 02:00|weekly on monday at 06:00|monthly on day 31 at \
            02:00|monthly on last day at 23:00|hourly at :15|every 15m|every 2h|every 7m|@weekly|\
            0 2 * * *|*/15 * * * *|30 1-3 * * *"
            .split('|')
            .collect();
        let zones = [
            Tz::UTC,
            Tz::America__Chicago,
            Tz::Pacific__Apia,
            Tz::Australia__Lord_Howe,
        ];
        let instants = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            Utc.with_ymd_and_hms(2011, 12, 29, 10, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 11, 3, 6, 59, 59).unwrap(),
        ];
        let mut rng = SplitMix(0x5EED);
        let mut accepted = 0;
        for i in 0..4000 {
            let text: String = match i % 4 {
                0 => (0..rng.next() % 12)
                    .map(|_| char::from_u32((rng.next() % 0x250) as u32).unwrap_or('?'))
                    .collect(),
                1 => (0..rng.next() % 8)
                    .map(|_| rng.pick(&tokens))
                    .collect::<Vec<_>>()
                    .join(" "),
                2 => (0..5 + rng.next() % 2)
                    .map(|_| rng.pick(&cron_fields))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => {
                    // A valid example with one token swapped for a random one (or kept).
                    let mut words: Vec<&str> = rng.pick(&valid).split(' ').collect();
                    let at = (rng.next() % (words.len() as u64 + 2)) as usize;
                    if let Some(w) = words.get_mut(at) {
                        *w = rng.pick(&tokens);
                    }
                    words.join(" ")
                }
            };
            if let Ok(s) = text.parse::<Schedule>() {
                accepted += 1;
                let tz = zones[(rng.next() % zones.len() as u64) as usize];
                let at = instants[(rng.next() % instants.len() as u64) as usize];
                let _ = s.next_after(at, tz);
                let _ = s.describe();
                assert_eq!(s.to_string(), text.trim());
            }
        }
        assert!(
            accepted > 400,
            "the corpus should exercise the engine too ({accepted})"
        );
    }
}
