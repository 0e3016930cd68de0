//! When each export runs: the next nominal time, missed runs after downtime (`catch_up`), and
//! runs that came due while the previous one was still going (they wait; runs of one export
//! never overlap). Pure: the current time is passed in, so tests drive it with a simulated
//! clock.

use crate::config::export::CatchUp;
use crate::schedule::Schedule;
use crate::state::Trigger;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::VecDeque;

/// The run queue of one export.
#[derive(Debug, Clone)]
pub struct ExportSchedule {
    schedule: Option<Schedule>,
    timezone: Tz,
    next: Option<DateTime<Utc>>,
    pending: VecDeque<(DateTime<Utc>, Trigger)>,
    running: bool,
    max_pending: usize,
    /// How many missed runs were queued at start-up, and how many were skipped by the policy.
    pub caught_up: (usize, usize),
}

/// The nominal times missed between the last scheduled run and `now`, after the policy:
/// `all` keeps the most recent `max` (oldest first), `latest` the last one, `none` nothing.
/// An export that never ran has nothing to catch up.
pub fn missed_runs(
    schedule: &Schedule,
    timezone: Tz,
    last_nominal: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: CatchUp,
    max: usize,
) -> (Vec<DateTime<Utc>>, usize) {
    let Some(last) = last_nominal else {
        return (Vec::new(), 0);
    };
    // Bounded so that a years-long outage with `every 1m` cannot allocate without end.
    let limit = max.max(1) * 4 + 1_000;
    let missed: Vec<_> = schedule
        .nominal_times(last, now, timezone)
        .take(limit)
        .collect();
    let total = missed.len();
    let kept: Vec<_> = match policy {
        CatchUp::None => Vec::new(),
        CatchUp::Latest => missed.last().copied().into_iter().collect(),
        CatchUp::All => missed[total.saturating_sub(max)..].to_vec(),
    };
    let skipped = total - kept.len();
    (kept, skipped)
}

impl ExportSchedule {
    /// The queue of an export whose last scheduled run had `last_nominal`.
    pub fn new(
        schedule: Option<Schedule>,
        timezone: Tz,
        suspended: bool,
        last_nominal: Option<DateTime<Utc>>,
        policy: CatchUp,
        max_catch_up: usize,
        now: DateTime<Utc>,
    ) -> ExportSchedule {
        let schedule = schedule.filter(|_| !suspended);
        let mut pending = VecDeque::new();
        let mut caught_up = (0, 0);
        if let Some(s) = &schedule {
            let (missed, skipped) =
                missed_runs(s, timezone, last_nominal, now, policy, max_catch_up);
            caught_up = (missed.len(), skipped);
            pending.extend(missed.into_iter().map(|t| (t, Trigger::CatchUp)));
        }
        let next = schedule.as_ref().and_then(|s| s.next_after(now, timezone));
        ExportSchedule {
            schedule,
            timezone,
            next,
            pending,
            running: false,
            max_pending: max_catch_up.max(1),
            caught_up,
        }
    }

    /// Queues a run to start as soon as the export is idle (crash recovery, API triggers).
    pub fn push_front(&mut self, nominal: DateTime<Utc>, trigger: Trigger) {
        self.pending.push_front((nominal, trigger));
    }

    /// Whether `nominal` is already queued.
    pub fn pending_contains(&self, nominal: DateTime<Utc>) -> bool {
        self.pending.iter().any(|(t, _)| *t == nominal)
    }

    /// The run to start now, if the export is idle and something is due.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, Trigger)> {
        while let (Some(next), Some(schedule)) = (self.next, &self.schedule) {
            if next > now {
                break;
            }
            self.pending.push_back((next, Trigger::Schedule));
            self.next = schedule.next_after(next, self.timezone);
        }
        while self.pending.len() > self.max_pending {
            // A run longer than many intervals: keep the newest, as `catch_up` bounds do.
            self.pending.pop_front();
        }
        if self.running {
            return None;
        }
        let due = self.pending.pop_front()?;
        self.running = true;
        Some(due)
    }

    /// Marks a run as in progress that this queue did not start (a run of the previous
    /// revision still going when the definition changed).
    pub fn mark_running(&mut self) {
        self.running = true;
    }

    /// The previous run ended.
    pub fn finished(&mut self) {
        self.running = false;
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// When the loop must look at this export again.
    pub fn wake_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.running {
            return None;
        }
        if !self.pending.is_empty() {
            return Some(now);
        }
        self.next
    }

    /// Upcoming nominal times, for status views.
    pub fn upcoming(&self, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = self.next;
        while let (Some(t), Some(s)) = (at, &self.schedule) {
            if out.len() == count {
                break;
            }
            out.push(t);
            at = s.next_after(t, self.timezone);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::WindowKind;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// A simulated day: the loop wakes exactly at each fire time and each run ends at once.
    #[test]
    fn a_day_of_every_15m_gives_96_contiguous_windows() {
        let tz = chrono_tz::America::Chicago;
        let start = at("2024-01-15T06:00:00Z");
        let schedule: Schedule = "every 15m".parse().unwrap();
        let mut queue = ExportSchedule::new(
            Some(schedule),
            tz,
            false,
            None,
            CatchUp::Latest,
            100,
            start - chrono::Duration::seconds(1),
        );
        let mut now = start;
        let mut watermark = None;
        let mut windows = Vec::new();
        while now < start + chrono::Duration::days(1) {
            if let Some((nominal, trigger)) = queue.poll(now) {
                assert_eq!(trigger, Trigger::Schedule);
                let window = WindowKind::SinceLastRun.window_for(nominal, tz, watermark);
                watermark = Some(window.end);
                windows.push(window);
                queue.finished();
            }
            now = queue.wake_at(now).unwrap();
        }
        assert_eq!(windows.len(), 96);
        for pair in windows.windows(2) {
            assert_eq!(pair[1].start, Some(pair[0].end), "gap or overlap");
            assert_eq!(pair[1].end - pair[0].end, chrono::Duration::minutes(15));
        }
    }

    #[test]
    fn three_hours_of_downtime_follow_the_catch_up_policy() {
        let tz = chrono_tz::UTC;
        let schedule: Schedule = "every 15m".parse().unwrap();
        let last = at("2024-01-15T09:00:00Z");
        let now = at("2024-01-15T12:07:00Z");
        let queued = |policy| {
            let mut q = ExportSchedule::new(
                Some(schedule.clone()),
                tz,
                false,
                Some(last),
                policy,
                100,
                now,
            );
            let mut runs = Vec::new();
            while let Some((t, trigger)) = q.poll(now) {
                runs.push((t, trigger));
                q.finished();
            }
            runs
        };
        let all = queued(CatchUp::All);
        assert_eq!(all.len(), 12);
        assert_eq!(all[0], (at("2024-01-15T09:15:00Z"), Trigger::CatchUp));
        assert_eq!(all[11], (at("2024-01-15T12:00:00Z"), Trigger::CatchUp));
        assert_eq!(
            queued(CatchUp::Latest),
            vec![(at("2024-01-15T12:00:00Z"), Trigger::CatchUp)]
        );
        assert!(queued(CatchUp::None).is_empty());
        // The bound keeps the newest runs.
        let (bounded, skipped) = missed_runs(&schedule, tz, Some(last), now, CatchUp::All, 5);
        assert_eq!(bounded.len(), 5);
        assert_eq!(skipped, 7);
        assert_eq!(bounded[4], at("2024-01-15T12:00:00Z"));
    }

    #[test]
    fn runs_never_overlap_and_due_runs_wait() {
        let schedule: Schedule = "every 1m".parse().unwrap();
        let t0 = at("2024-01-15T00:00:30Z");
        let mut q = ExportSchedule::new(
            Some(schedule),
            chrono_tz::UTC,
            false,
            None,
            CatchUp::Latest,
            100,
            t0,
        );
        let first = q.poll(at("2024-01-15T00:01:00Z")).unwrap();
        assert_eq!(first.0, at("2024-01-15T00:01:00Z"));
        // Still running two minutes later: nothing starts, both due runs wait in order.
        assert_eq!(q.poll(at("2024-01-15T00:03:10Z")), None);
        q.finished();
        assert_eq!(
            q.poll(at("2024-01-15T00:03:10Z")).unwrap().0,
            at("2024-01-15T00:02:00Z")
        );
        q.finished();
        assert_eq!(
            q.poll(at("2024-01-15T00:03:10Z")).unwrap().0,
            at("2024-01-15T00:03:00Z")
        );
    }

    #[test]
    fn suspended_and_unscheduled_exports_never_fire() {
        let schedule: Schedule = "every 1m".parse().unwrap();
        let t0 = at("2024-01-15T00:00:00Z");
        let mut q = ExportSchedule::new(
            Some(schedule),
            chrono_tz::UTC,
            true,
            Some(t0),
            CatchUp::All,
            100,
            t0,
        );
        assert_eq!(q.poll(t0 + chrono::Duration::hours(1)), None);
        assert_eq!(q.wake_at(t0), None);
        let mut q = ExportSchedule::new(None, chrono_tz::UTC, false, None, CatchUp::All, 100, t0);
        assert_eq!(q.poll(t0 + chrono::Duration::hours(1)), None);
    }
}
