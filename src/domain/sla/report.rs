//! `GetSlaReport {from, to}` (spec §16): for the incidents reported in
//! `(from, to]`, per priority, met and breached per KPI and the share met
//! against the target; every breach with its deadline and by how many
//! support seconds it was missed. Deadlines are recomputed from the facts
//! under each incident's priority now (a priority change recomputes them
//! from the report).

use super::incident::Incident;
use super::{kpis_of, target_percent, SlaKpi, PRIORITIES};
use crate::domain::ledger::Ledger;
use crate::domain::money::{div_round_half_even, Nano, UnixSeconds};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaKpiFigures {
    pub kpi: SlaKpi,
    pub met: u32,
    pub breached: u32,
    /// Deadlines still ahead with their fact not yet recorded.
    pub open: u32,
    /// `met / (met + breached)` in percent, two decimals rounded half to
    /// even (`"90.91"`); `None` when nothing was measured yet.
    pub share_met: Option<String>,
    /// The target, percent met, to be exceeded (`"90"`), if the seed sets one.
    pub target: Option<String>,
    /// Whether the share exceeds the target (when both exist).
    pub target_met: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPriorityFigures {
    pub priority: u8,
    pub incidents: u32,
    pub kpis: Vec<SlaKpiFigures>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBreach {
    pub incident_id: String,
    pub account_id: String,
    pub priority: u8,
    pub kpi: SlaKpi,
    pub occurrence: u32,
    pub deadline: UnixSeconds,
    /// The late fact; `None`: still missing at the report's instant.
    pub done_at: Option<UnixSeconds>,
    /// Support seconds from the deadline to the fact (or to the report's
    /// instant). 0 means late, but only outside support hours.
    pub missed_by_support_s: i64,
    /// The service credit granted for it, if any.
    pub credit: Option<Nano>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaReport {
    pub from: UnixSeconds,
    pub to: UnixSeconds,
    /// The instant the open deadlines are judged at.
    pub at: UnixSeconds,
    pub priorities: Vec<SlaPriorityFigures>,
    pub breaches: Vec<SlaBreach>,
}

/// `num / den` in percent with two decimals, half to even.
pub fn percent(num: u32, den: u32) -> String {
    let hundredths = div_round_half_even(i128::from(num) * 10_000, i128::from(den.max(1)));
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

impl Ledger {
    /// The SLA report over incidents reported in `(from, to]`, open
    /// deadlines judged at `now`.
    pub fn sla_report(&self, from: UnixSeconds, to: UnixSeconds, now: UnixSeconds) -> SlaReport {
        let book = self.sla();
        let mut priorities: Vec<SlaPriorityFigures> = PRIORITIES
            .map(|p| SlaPriorityFigures {
                priority: p,
                incidents: 0,
                kpis: kpis_of(p)
                    .map(|kpi| SlaKpiFigures {
                        kpi,
                        met: 0,
                        breached: 0,
                        open: 0,
                        share_met: None,
                        target: target_percent(p).map(|t| t.to_string()),
                        target_met: None,
                    })
                    .collect(),
            })
            .collect();
        let mut breaches = Vec::new();
        let selected = book
            .incidents()
            .iter()
            .filter(|inc| inc.reported_at > from && inc.reported_at <= to);
        for inc in selected {
            let p = inc.priority();
            let figures = &mut priorities[usize::from(p - 1)];
            figures.incidents += 1;
            let clock = book.calendar_of(inc).clock();
            for d in inc.deadlines(&clock, p) {
                let Some(k) = figures.kpis.iter_mut().find(|k| k.kpi == d.kpi) else {
                    continue;
                };
                if d.met() {
                    k.met += 1;
                } else if d.breached_at(now) {
                    k.breached += 1;
                    breaches.push(breach_of(inc, p, &d, now, &clock));
                } else {
                    k.open += 1;
                }
            }
        }
        for figures in &mut priorities {
            let target = target_percent(figures.priority);
            for k in &mut figures.kpis {
                let measured = k.met + k.breached;
                if measured > 0 {
                    k.share_met = Some(percent(k.met, measured));
                    // share > target  ⇔  met · 100 > target · measured (exact).
                    k.target_met =
                        target.map(|t| u64::from(k.met) * 100 > u64::from(t) * u64::from(measured));
                }
            }
        }
        breaches.sort_by(|a, b| (a.deadline, &a.incident_id).cmp(&(b.deadline, &b.incident_id)));
        SlaReport {
            from,
            to,
            at: now,
            priorities,
            breaches,
        }
    }
}

fn breach_of(
    inc: &Incident,
    priority: u8,
    d: &super::Deadline,
    now: UnixSeconds,
    clock: &super::SupportClock,
) -> SlaBreach {
    let until = d.done.unwrap_or(now);
    SlaBreach {
        incident_id: inc.incident_id.to_string(),
        account_id: inc.account_id.to_string(),
        priority,
        kpi: d.kpi,
        occurrence: d.occurrence,
        deadline: d.due,
        done_at: d.done,
        missed_by_support_s: clock.support_between(d.due, until),
        credit: inc
            .granted
            .iter()
            .find(|g| g.0 == d.kpi && g.1 == d.occurrence)
            .map(|g| g.2),
    }
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages() {
        assert_eq!(percent(9, 10), "90.00");
        assert_eq!(percent(2, 3), "66.67");
        assert_eq!(percent(10, 10), "100.00");
        assert_eq!(percent(0, 7), "0.00");
        // 1/8 = 12.5 % exactly; 1/800 = 0.125 → 0.12 (half to even).
        assert_eq!(percent(1, 8), "12.50");
        assert_eq!(percent(1, 800), "0.12");
    }
}
