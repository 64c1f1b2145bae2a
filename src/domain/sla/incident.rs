//! One incident: its recorded facts, its deadlines under a priority and its
//! timeline of `SLA_DEADLINE` warnings and `SLA_BREACH`es.
//!
//! Readings of seed 004 (spec §16):
//! - the response is the first `RespondIncident` (or the resolution, if it
//!   comes first), due [`response_s`] support seconds after the report;
//! - updates (P1, P2) are due [`update_s`] after the response, then after
//!   each update, until resolved (the resolution ends the last interval);
//!   each late update is one breach (occurrence `k`: the `k`-th interval);
//! - repair (P2) is due at 17:00 of the second working day counted from the
//!   working day after the report;
//! - a deadline is met by a fact at or before it; a deadline passed without
//!   its fact is breached from the next second on;
//! - `ChangePriority` recomputes every deadline from the report under the
//!   new priority. A deadline the change puts in the past breaches at the
//!   change; a breach is told (and credited) once per (KPI, occurrence)
//!   over the incident's life, whatever later changes do.

use super::clock::{SupportClock, SUPPORT_HOUR_S};
use super::{repair_days, response_s, update_s, SlaKpi};
use crate::domain::money::Nano;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// An incident as the log made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: CompactString,
    pub account_id: CompactString,
    pub reported_at: i64,
    /// Index of the calendar in force at the report (the incident's clock).
    pub calendar: u32,
    /// `(from, priority)`: the report's priority first, then each change.
    pub priorities: Vec<(i64, u8)>,
    pub responded_at: Option<i64>,
    pub updates: Vec<i64>,
    pub resolved_at: Option<i64>,
    /// Breaches credited: (KPI, occurrence, amount).
    pub granted: Vec<(SlaKpi, u32, Nano)>,
    /// Every warning and breach as of the facts so far (derived from them
    /// by [`Incident::timeline`], refreshed by each event of the incident).
    pub marks: Vec<SlaMark>,
}

/// One deadline of an incident under a priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub kpi: SlaKpi,
    /// 0 for response and repair; the update interval for TTTU.
    pub occurrence: u32,
    pub due: i64,
    /// The fact that ended it (met when `<= due`).
    pub done: Option<i64>,
}

impl Deadline {
    pub fn met(&self) -> bool {
        self.done.is_some_and(|d| d <= self.due)
    }
    /// Breached as of `now` (late fact, or none and the deadline passed).
    pub fn breached_at(&self, now: i64) -> bool {
        match self.done {
            Some(d) => d > self.due,
            None => now > self.due,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MarkKind {
    /// One support hour before a deadline still open.
    Warning,
    /// The deadline passed without its fact.
    Breach,
}

/// A warning or a breach on the incident's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaMark {
    pub kind: MarkKind,
    /// When it is told: the warning instant or the second after the
    /// deadline, or the priority change that made it due.
    pub at: i64,
    /// Caused by an event at `at` (a priority change), not by time passing.
    pub at_event: bool,
    pub kpi: SlaKpi,
    pub occurrence: u32,
    pub deadline: i64,
    /// The priority in force when it was told.
    pub priority: u8,
}

impl Incident {
    pub fn new(
        incident_id: &str,
        account_id: &str,
        priority: u8,
        at: i64,
        calendar: u32,
    ) -> Incident {
        Incident {
            incident_id: incident_id.into(),
            account_id: account_id.into(),
            reported_at: at,
            calendar,
            priorities: vec![(at, priority)],
            responded_at: None,
            updates: Vec::new(),
            resolved_at: None,
            granted: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// The priority in force now.
    pub fn priority(&self) -> u8 {
        self.priorities.last().map_or(4, |p| p.1)
    }

    /// The priority the incident was reported with.
    pub fn reported_priority(&self) -> u8 {
        self.priorities.first().map_or(4, |p| p.1)
    }

    pub fn is_resolved(&self) -> bool {
        self.resolved_at.is_some()
    }

    /// Every deadline under `priority`, computed from the report and the
    /// facts recorded so far (an interval not yet ended has `done: None`).
    pub fn deadlines(&self, clock: &SupportClock, priority: u8) -> Vec<Deadline> {
        let mut out = Vec::new();
        let response_done = match (self.responded_at, self.resolved_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        out.push(Deadline {
            kpi: SlaKpi::Response,
            occurrence: 0,
            due: clock.add_support(self.reported_at, response_s(priority)),
            done: response_done,
        });
        if let (Some(every), Some(mut base)) = (update_s(priority), self.responded_at) {
            for k in 0.. {
                let next = self.updates.get(k as usize).copied();
                out.push(Deadline {
                    kpi: SlaKpi::Update,
                    occurrence: k,
                    due: clock.add_support(base, every),
                    done: next.or(self.resolved_at),
                });
                match next {
                    Some(u) => base = u,
                    None => break,
                }
            }
        }
        if let Some(days) = repair_days(priority) {
            out.push(Deadline {
                kpi: SlaKpi::Repair,
                occurrence: 0,
                due: clock.working_days_after(self.reported_at, days),
                done: self.resolved_at,
            });
        }
        out
    }

    /// Every warning and breach implied by the facts so far, assuming no
    /// further events, in time order. A priority regime `[c, next change]`
    /// tells its time-driven marks in `(c, next change]`; marks the change
    /// itself makes due (a warning instant or a deadline already behind
    /// it) are told at `c`. Each (KPI, occurrence) breaches at most once;
    /// a warning is not repeated for an unchanged deadline.
    pub fn timeline(&self, clock: &SupportClock) -> Vec<SlaMark> {
        let mut marks: Vec<SlaMark> = Vec::new();
        let mut breached: Vec<(SlaKpi, u32)> = Vec::new();
        let mut warned: Vec<(SlaKpi, u32, i64)> = Vec::new();
        for (i, &(start, priority)) in self.priorities.iter().enumerate() {
            let end = self
                .priorities
                .get(i + 1)
                .map_or(i64::MAX, |(next, _)| *next);
            let changed = i > 0;
            for d in self.deadlines(clock, priority) {
                // Warning: one support hour before the deadline, while open.
                let w = clock.sub_support(d.due, SUPPORT_HOUR_S);
                let (at, at_event) = if changed && w <= start {
                    (start, true)
                } else {
                    (w, false)
                };
                let open = if at_event {
                    start <= d.due && d.done.is_none_or(|f| f > start)
                } else {
                    at > start && d.done.is_none_or(|f| f >= at)
                };
                let key = (d.kpi, d.occurrence, d.due);
                if open && at <= end && !warned.contains(&key) {
                    warned.push(key);
                    marks.push(SlaMark {
                        kind: MarkKind::Warning,
                        at,
                        at_event,
                        kpi: d.kpi,
                        occurrence: d.occurrence,
                        deadline: d.due,
                        priority,
                    });
                }
                // Breach: the second after the deadline, unless met.
                if d.met() || breached.contains(&(d.kpi, d.occurrence)) {
                    continue;
                }
                let natural = d.due.saturating_add(1);
                let (at, at_event) = if changed && natural <= start {
                    (start, true)
                } else {
                    (natural, false)
                };
                if at <= end && (at_event || at > start) {
                    breached.push((d.kpi, d.occurrence));
                    marks.push(SlaMark {
                        kind: MarkKind::Breach,
                        at,
                        at_event,
                        kpi: d.kpi,
                        occurrence: d.occurrence,
                        deadline: d.due,
                        priority,
                    });
                }
            }
        }
        marks.sort_by_key(|m| (m.at, m.kind, m.kpi, m.occurrence));
        marks
    }

    /// Refreshes the cached timeline after a fact.
    pub fn refresh(&mut self, clock: &SupportClock) {
        self.marks = self.timeline(clock);
    }

    /// Whether a breach of (KPI, occurrence) was credited already.
    pub fn is_granted(&self, kpi: SlaKpi, occurrence: u32) -> bool {
        self.granted.iter().any(|g| g.0 == kpi && g.1 == occurrence)
    }

    /// The breach of (KPI, occurrence) on the timeline, if any.
    pub fn breach(&self, kpi: SlaKpi, occurrence: u32) -> Option<&SlaMark> {
        self.marks
            .iter()
            .find(|m| m.kind == MarkKind::Breach && m.kpi == kpi && m.occurrence == occurrence)
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::SupportCalendar;
    use super::*;
    use chrono::TimeZone;

    fn ams(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        chrono_tz::Europe::Amsterdam
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .timestamp()
    }

    #[test]
    fn p2_deadlines_and_timeline() {
        let clock = SupportCalendar::default().clock();
        // Monday 2026-11-30 10:00, P2.
        let mut inc = Incident::new("i", "a", 2, ams(2026, 11, 30, 10, 0), 0);
        let d = inc.deadlines(&clock, 2);
        assert_eq!(
            d.len(),
            2,
            "response and repair (no response yet: no update due)"
        );
        assert_eq!(
            d[0].due,
            ams(2026, 12, 1, 9, 30),
            "8 sh: 7 h Monday, 1 h Tuesday"
        );
        assert_eq!(d[1].due, ams(2026, 12, 2, 17, 0), "Wednesday 17:00");
        // Responded Tuesday 09:00: first update due 8 sh later, Tuesday
        // 17:00; updated 16:30 (met), next due Wednesday 16:00 (30 min
        // Tuesday, 7 h 30 Wednesday); updated Wednesday 15:00 (met), next
        // due Thursday 14:30; resolved Thursday 10:00 (met, but repair was
        // due Wednesday 17:00).
        inc.responded_at = Some(ams(2026, 12, 1, 9, 0));
        inc.updates.push(ams(2026, 12, 1, 16, 30));
        inc.updates.push(ams(2026, 12, 2, 15, 0));
        inc.resolved_at = Some(ams(2026, 12, 3, 10, 0));
        let d = inc.deadlines(&clock, 2);
        let kinds: Vec<_> = d.iter().map(|d| (d.kpi, d.occurrence, d.met())).collect();
        assert_eq!(
            kinds,
            vec![
                (SlaKpi::Response, 0, true),
                (SlaKpi::Update, 0, true),
                (SlaKpi::Update, 1, true),
                (SlaKpi::Update, 2, true),
                (SlaKpi::Repair, 0, false),
            ]
        );
        assert_eq!(d[1].due, ams(2026, 12, 1, 17, 0));
        assert_eq!(d[2].due, ams(2026, 12, 2, 16, 0));
        assert_eq!(d[3].due, ams(2026, 12, 3, 14, 30));
        inc.refresh(&clock);
        let breaches: Vec<_> = inc
            .marks
            .iter()
            .filter(|m| m.kind == MarkKind::Breach)
            .collect();
        assert_eq!(breaches.len(), 1);
        assert_eq!(breaches[0].kpi, SlaKpi::Repair);
        assert_eq!(breaches[0].at, ams(2026, 12, 2, 17, 0) + 1);
        assert!(inc.marks.iter().any(|m| m.kind == MarkKind::Warning
            && m.kpi == SlaKpi::Repair
            && m.at == ams(2026, 12, 2, 16, 0)));
    }

    #[test]
    fn a_priority_change_recomputes_from_the_report() {
        let clock = SupportCalendar::default().clock();
        // P3 reported Tuesday 09:00 (response due Wednesday 09:00); raised to
        // P1 at 14:00: response due 13:00, already behind → breach at 14:00.
        let mut inc = Incident::new("i", "a", 3, ams(2026, 12, 1, 9, 0), 0);
        inc.refresh(&clock);
        assert_eq!(
            inc.marks[0].at,
            ams(2026, 12, 1, 16, 30),
            "warning one sh before"
        );
        inc.priorities.push((ams(2026, 12, 1, 14, 0), 1));
        inc.refresh(&clock);
        let b = inc.breach(SlaKpi::Response, 0).unwrap();
        assert_eq!(b.at, ams(2026, 12, 1, 14, 0));
        assert!(b.at_event);
        assert_eq!(b.deadline, ams(2026, 12, 1, 13, 0));
        assert_eq!(b.priority, 1);
        // Back to P3: no second breach, and the old deadline is not warned again
        // at the change (its warning instant is still ahead: told then).
        inc.priorities.push((ams(2026, 12, 1, 15, 0), 3));
        inc.refresh(&clock);
        assert_eq!(
            inc.marks
                .iter()
                .filter(|m| m.kind == MarkKind::Breach)
                .count(),
            1
        );
        let warnings: Vec<_> = inc
            .marks
            .iter()
            .filter(|m| m.kind == MarkKind::Warning)
            .map(|m| (m.at, m.at_event))
            .collect();
        assert_eq!(warnings, vec![(ams(2026, 12, 1, 16, 30), false)]);
    }
}
