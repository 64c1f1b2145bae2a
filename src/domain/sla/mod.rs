//! Service levels (spec §16, seed 004): incidents timed on a support-hours
//! clock, their KPIs, the SLA report and the breaches that grant service
//! credits.
//!
//! Pure like the rest of `domain`: instants come in as arguments.
//! - [`clock`]: the support-hours clock over a recorded calendar.
//! - [`incident`]: one incident's facts, its deadlines under a priority and
//!   its timeline of warnings and breaches.
//! - [`book`]: the incidents and calendars of the ledger (state, decide
//!   and apply of the incident events).
//! - [`report`]: the SLA report (`GetSlaReport`).

pub mod book;
pub mod clock;
pub mod incident;
pub mod report;

pub use book::SlaBook;
pub use clock::{SupportCalendar, SupportClock, SUPPORT_DAY_S, SUPPORT_HOUR_S};
pub use incident::{Deadline, Incident, MarkKind, SlaMark};
pub use report::{SlaBreach, SlaKpiFigures, SlaPriorityFigures, SlaReport};

pub use super::prices::SlaKpi;

/// Priorities: 1 critical, 2 high, 3 normal, 4 low (seed 004 §3).
pub const PRIORITIES: std::ops::RangeInclusive<u8> = 1..=4;

/// Response time of a priority, in support seconds (seed 004 §5): P1 4
/// support hours, P2 8, P3 and P4 one working day (8 h 30 min).
pub fn response_s(priority: u8) -> i64 {
    match priority {
        1 => 4 * SUPPORT_HOUR_S,
        2 => 8 * SUPPORT_HOUR_S,
        _ => SUPPORT_DAY_S,
    }
}

/// TTTU of a priority in support seconds: P1 4 support hours, P2 8; P3 and
/// P4 best effort (not measured).
pub fn update_s(priority: u8) -> Option<i64> {
    match priority {
        1 => Some(4 * SUPPORT_HOUR_S),
        2 => Some(8 * SUPPORT_HOUR_S),
        _ => None,
    }
}

/// MTTR of a priority in working days counted from the working day after
/// the report: P2 2; P1 "to be determined", P3 and P4 best effort.
pub fn repair_days(priority: u8) -> Option<u32> {
    (priority == 2).then_some(2)
}

/// The performance target of a priority, percent met (strictly more than):
/// P2 > 90 %; the seed gives none for the others.
pub fn target_percent(priority: u8) -> Option<u32> {
    (priority == 2).then_some(90)
}

/// Name of a KPI for messages and reports.
pub fn kpi_name(kpi: SlaKpi) -> &'static str {
    match kpi {
        SlaKpi::Response => "response",
        SlaKpi::Update => "update",
        SlaKpi::Repair => "repair",
    }
}

/// The KPIs measured for a priority, in report order.
pub fn kpis_of(priority: u8) -> impl Iterator<Item = SlaKpi> {
    [
        Some(SlaKpi::Response),
        update_s(priority).map(|_| SlaKpi::Update),
        repair_days(priority).map(|_| SlaKpi::Repair),
    ]
    .into_iter()
    .flatten()
}
