//! The ledger's incidents and support calendars: `decide` of the incident
//! commands, `apply` of their events, the time-driven notices and the
//! service credits breaches have earned.
//!
//! Breaches by time passing (a deadline passes with no response) have no
//! command of their own. The writer, when it publishes the time-driven
//! notices due up to an instant, asks [`Ledger::next_service_credit`] for
//! the earliest breach with a credit not yet granted and records it as a
//! system command (`GrantServiceCredit`) through the same `decide`/`apply`,
//! stamped at the breach instant (or at the priority change that made it
//! due). The grant is then a fact of the log: a replay folds it, it never
//! re-derives it, so balances replay to the nano. One grant per
//! (incident, KPI, occurrence): `decide` refuses a second one.

use super::clock::SupportCalendar;
use super::incident::{Incident, MarkKind, SlaMark};
use super::{kpi_name, SlaKpi, PRIORITIES};
use crate::domain::account::{ApplyError, DueInstants, FastMap};
use crate::domain::error::Rejection;
use crate::domain::event::{Command, EventBody, Notice, NoticeKind, SlaNotice};
use crate::domain::ids::check_id;
use crate::domain::ledger::Ledger;
use crate::domain::money::{Nano, UnixSeconds, MAX_BALANCE, MAX_TOP_UP};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Incidents and calendars, folded from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBook {
    /// Every calendar recorded, in log order; `[0]` is the default one
    /// (Europe/Amsterdam, no holidays) in force before any was recorded.
    calendars: Vec<SupportCalendar>,
    /// In report order.
    incidents: Vec<Incident>,
    index: FastMap<CompactString, u32>,
    /// Unresolved incidents: the only ones time can still breach.
    open: BTreeSet<u32>,
}

impl Default for SlaBook {
    fn default() -> Self {
        SlaBook {
            calendars: vec![SupportCalendar::default()],
            incidents: Vec::new(),
            index: FastMap::default(),
            open: BTreeSet::new(),
        }
    }
}

impl SlaBook {
    /// The calendar in force.
    pub fn calendar(&self) -> &SupportCalendar {
        self.calendars.last().expect("the default calendar")
    }

    /// The calendar an incident is timed on (the one in force at its report).
    pub fn calendar_of(&self, incident: &Incident) -> &SupportCalendar {
        self.calendars
            .get(incident.calendar as usize)
            .unwrap_or_else(|| self.calendar())
    }

    pub fn incident(&self, incident_id: &str) -> Option<&Incident> {
        self.index
            .get(incident_id)
            .map(|i| &self.incidents[*i as usize])
    }

    /// Every incident, in report order.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Unresolved incidents.
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.open.iter().map(|i| &self.incidents[*i as usize])
    }

    /// The incident of an event, which must name its account.
    fn slot(&self, incident_id: &str, account_id: &str) -> Result<usize, ApplyError> {
        let i = self
            .index
            .get(incident_id)
            .map(|i| *i as usize)
            .ok_or_else(|| ApplyError(format!("incident {incident_id} was never reported")))?;
        if self.incidents[i].account_id != account_id {
            return Err(ApplyError(format!(
                "incident {incident_id} is recorded against account {account_id}, not its own"
            )));
        }
        Ok(i)
    }

    /// Folds an SLA event; the account checks are the ledger's. Returns the
    /// marks the event itself made due (a priority change).
    pub(crate) fn apply(
        &mut self,
        at: UnixSeconds,
        body: &EventBody,
    ) -> Result<Vec<SlaMark>, ApplyError> {
        let (i, refresh) = match body {
            EventBody::SupportCalendarSet { calendar } => {
                if !calendar.is_normalized() {
                    return Err(ApplyError("a recorded support calendar is invalid".into()));
                }
                self.calendars.push(calendar.clone());
                return Ok(Vec::new());
            }
            EventBody::IncidentReported {
                incident_id,
                account_id,
                priority,
            } => {
                if !PRIORITIES.contains(priority) {
                    return Err(ApplyError(format!(
                        "incident {incident_id} has priority {priority}"
                    )));
                }
                if self.index.contains_key(incident_id.as_str()) {
                    return Err(ApplyError(format!(
                        "incident {incident_id} is reported twice"
                    )));
                }
                let i = self.incidents.len();
                let n = u32::try_from(i).map_err(|_| ApplyError("too many incidents".into()))?;
                let calendar = (self.calendars.len() - 1) as u32;
                self.incidents.push(Incident::new(
                    incident_id,
                    account_id,
                    *priority,
                    at,
                    calendar,
                ));
                self.index.insert(incident_id.clone(), n);
                self.open.insert(n);
                (i, true)
            }
            EventBody::IncidentResponded {
                incident_id,
                account_id,
            } => {
                let i = self.open_slot(incident_id, account_id)?;
                let inc = &mut self.incidents[i];
                if inc.responded_at.is_some() {
                    return Err(ApplyError(format!(
                        "incident {incident_id} is responded twice"
                    )));
                }
                inc.responded_at = Some(at);
                (i, true)
            }
            EventBody::IncidentUpdated {
                incident_id,
                account_id,
            } => {
                let i = self.open_slot(incident_id, account_id)?;
                let inc = &mut self.incidents[i];
                if inc.responded_at.is_none() {
                    return Err(ApplyError(format!(
                        "incident {incident_id} is updated before its response"
                    )));
                }
                inc.updates.push(at);
                (i, true)
            }
            EventBody::IncidentResolved {
                incident_id,
                account_id,
            } => {
                let i = self.open_slot(incident_id, account_id)?;
                self.incidents[i].resolved_at = Some(at);
                self.open.remove(&(i as u32));
                (i, true)
            }
            EventBody::IncidentPriorityChanged {
                incident_id,
                account_id,
                priority,
            } => {
                let i = self.open_slot(incident_id, account_id)?;
                if !PRIORITIES.contains(priority) {
                    return Err(ApplyError(format!(
                        "incident {incident_id} gets priority {priority}"
                    )));
                }
                self.incidents[i].priorities.push((at, *priority));
                (i, true)
            }
            EventBody::ServiceCreditGranted {
                incident_id,
                account_id,
                kpi,
                occurrence,
                amount,
                ..
            } => {
                let i = self.slot(incident_id, account_id)?;
                let inc = &mut self.incidents[i];
                let breached = inc.breach(*kpi, *occurrence).is_some_and(|m| m.at <= at);
                if !breached || inc.is_granted(*kpi, *occurrence) {
                    return Err(ApplyError(format!(
                        "incident {incident_id} is credited for a {} breach it does not have or was credited for",
                        kpi_name(*kpi)
                    )));
                }
                inc.granted.push((*kpi, *occurrence, *amount));
                (i, false)
            }
            _ => return Ok(Vec::new()),
        };
        let mut made_due = Vec::new();
        if refresh {
            let clock = self.calendar_of(&self.incidents[i]).clock();
            let inc = &mut self.incidents[i];
            inc.refresh(&clock);
            if matches!(body, EventBody::IncidentPriorityChanged { .. }) {
                made_due.extend(inc.marks.iter().filter(|m| m.at_event && m.at == at));
            }
        }
        Ok(made_due)
    }

    fn open_slot(&self, incident_id: &str, account_id: &str) -> Result<usize, ApplyError> {
        let i = self.slot(incident_id, account_id)?;
        if self.incidents[i].is_resolved() {
            return Err(ApplyError(format!(
                "incident {incident_id} is resolved already"
            )));
        }
        Ok(i)
    }

    /// Warnings and breaches of `(t1, t2]` as notices. `live`: only the
    /// time-driven marks of unresolved incidents (what the writer publishes
    /// as time passes; marks caused by an event come with its `apply`);
    /// otherwise every mark of every incident (a watcher's replay).
    pub fn notices_between(
        &self,
        account_id: Option<&str>,
        t1: UnixSeconds,
        t2: UnixSeconds,
        live: bool,
        out: &mut Vec<Notice>,
    ) {
        let mut push = |inc: &Incident| push_marks(inc, account_id, t1, t2, live, out);
        if live {
            self.open_incidents().for_each(&mut push);
        } else {
            self.incidents.iter().for_each(&mut push);
        }
    }

    /// The slot of an incident (its place in report order, never moved).
    pub(crate) fn slot_of(&self, incident_id: &str) -> Option<u32> {
        self.index.get(incident_id).copied()
    }

    /// The slots of the unresolved incidents, ascending.
    pub(crate) fn open_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.open.iter().copied()
    }

    /// The instants of incident `i`'s time-driven marks while it is
    /// unresolved (what the live [`SlaBook::notices_between`] can tell of
    /// it); none once resolved. The notice schedule files it under them.
    pub(crate) fn live_due(&self, i: u32) -> DueInstants {
        match self.incidents.get(i as usize) {
            Some(inc) if self.open.contains(&i) => inc
                .marks
                .iter()
                .filter(|m| !m.at_event)
                .map(|m| m.at)
                .collect(),
            _ => DueInstants::new(),
        }
    }

    /// What the live [`SlaBook::notices_between`] of all accounts tells of
    /// incident `i` alone (the same code, for the schedule's sources).
    pub(crate) fn live_notices_of(
        &self,
        i: u32,
        t1: UnixSeconds,
        t2: UnixSeconds,
        out: &mut Vec<Notice>,
    ) {
        if let (Some(inc), true) = (self.incidents.get(i as usize), self.open.contains(&i)) {
            push_marks(inc, None, t1, t2, true, out);
        }
    }

    /// The earliest time-driven mark of an unresolved incident after `t`.
    pub fn next_due_after(&self, t: UnixSeconds) -> Option<UnixSeconds> {
        self.open_incidents()
            .flat_map(|inc| inc.marks.iter())
            .filter(|m| !m.at_event && m.at > t)
            .map(|m| m.at)
            .min()
    }
}

/// The marks of `inc` in `(t1, t2]` as notices (of `account_id` only, if
/// given; `live`: the time-driven ones only), in timeline order.
fn push_marks(
    inc: &Incident,
    account_id: Option<&str>,
    t1: UnixSeconds,
    t2: UnixSeconds,
    live: bool,
    out: &mut Vec<Notice>,
) {
    if account_id.is_some_and(|a| a != inc.account_id) {
        return;
    }
    for m in &inc.marks {
        if m.at > t1 && m.at <= t2 && !(live && m.at_event) {
            out.push(notice_of(inc, m));
        }
    }
}

/// The notice telling a mark.
pub fn notice_of(inc: &Incident, m: &SlaMark) -> Notice {
    Notice {
        account_id: inc.account_id.to_string(),
        at: m.at,
        kind: match m.kind {
            MarkKind::Warning => NoticeKind::SlaDeadline,
            MarkKind::Breach => NoticeKind::SlaBreach,
        },
        threshold_s: None,
        pbx_id: None,
        sla: Some(SlaNotice {
            incident_id: inc.incident_id.to_string(),
            kpi: m.kpi,
            occurrence: m.occurrence,
            deadline: m.deadline,
            priority: m.priority,
        }),
    }
}

fn check_priority(priority: u32) -> Result<u8, Rejection> {
    match u8::try_from(priority) {
        Ok(p) if PRIORITIES.contains(&p) => Ok(p),
        _ => Err(Rejection::invalid(format!(
            "priority must be 1 (critical) to 4 (low), got {priority}"
        ))),
    }
}

impl Ledger {
    /// The incidents and calendars.
    pub fn sla(&self) -> &SlaBook {
        &self.sla
    }

    fn known_incident(&self, incident_id: &str) -> Result<&Incident, Rejection> {
        check_id("incident id", incident_id)?;
        self.sla.incident(incident_id).ok_or_else(|| {
            Rejection::not_found(format!("incident {incident_id} was never reported"))
        })
    }

    fn unresolved_incident(&self, incident_id: &str) -> Result<&Incident, Rejection> {
        let inc = self.known_incident(incident_id)?;
        if let Some(at) = inc.resolved_at {
            return Err(Rejection::precondition(format!(
                "incident {incident_id} is resolved already (at {at})"
            )));
        }
        Ok(inc)
    }

    /// `decide` of the SLA commands (spec §16, §11 order: syntax and
    /// bounds, existence, state). `None`: not an SLA command.
    pub(crate) fn decide_sla(
        &self,
        cmd: &Command,
        at: UnixSeconds,
    ) -> Option<Result<EventBody, Rejection>> {
        let body = match cmd {
            Command::ReportIncident {
                incident_id,
                account_id,
                priority,
            } => (|| {
                check_id("incident id", incident_id)?;
                check_id("account id", account_id)?;
                let priority = check_priority(*priority)?;
                let account = self.account(account_id).ok_or_else(|| {
                    Rejection::not_found(format!("account {account_id} does not exist"))
                })?;
                if let Some(inc) = self.sla.incident(incident_id) {
                    return Err(Rejection::exists(format!(
                        "incident {incident_id} was already reported (at {}); incident ids are never reused",
                        inc.reported_at
                    )));
                }
                if account.is_closed() {
                    return Err(Rejection::precondition(format!(
                        "account {account_id} is closed"
                    )));
                }
                Ok(EventBody::IncidentReported {
                    incident_id: incident_id.as_str().into(),
                    account_id: account_id.as_str().into(),
                    priority,
                })
            })(),
            Command::RespondIncident { incident_id } => (|| {
                let inc = self.unresolved_incident(incident_id)?;
                if let Some(t) = inc.responded_at {
                    return Err(Rejection::precondition(format!(
                        "incident {incident_id} was responded to already (at {t}); send an update instead"
                    )));
                }
                Ok(EventBody::IncidentResponded {
                    incident_id: incident_id.as_str().into(),
                    account_id: inc.account_id.clone(),
                })
            })(),
            Command::UpdateIncident { incident_id } => (|| {
                let inc = self.unresolved_incident(incident_id)?;
                if inc.responded_at.is_none() {
                    return Err(Rejection::precondition(format!(
                        "incident {incident_id} has no response yet: respond before updating"
                    )));
                }
                Ok(EventBody::IncidentUpdated {
                    incident_id: incident_id.as_str().into(),
                    account_id: inc.account_id.clone(),
                })
            })(),
            Command::ResolveIncident { incident_id } => (|| {
                let inc = self.unresolved_incident(incident_id)?;
                Ok(EventBody::IncidentResolved {
                    incident_id: incident_id.as_str().into(),
                    account_id: inc.account_id.clone(),
                })
            })(),
            Command::ChangePriority {
                incident_id,
                priority,
            } => (|| {
                check_id("incident id", incident_id)?;
                let priority = check_priority(*priority)?;
                let inc = self.unresolved_incident(incident_id)?;
                if inc.priority() == priority {
                    return Err(Rejection::precondition(format!(
                        "incident {incident_id} has priority {priority} already"
                    )));
                }
                Ok(EventBody::IncidentPriorityChanged {
                    incident_id: incident_id.as_str().into(),
                    account_id: inc.account_id.clone(),
                    priority,
                })
            })(),
            Command::SetSupportCalendar { calendar } => (|| {
                let calendar = calendar
                    .clone()
                    .normalized()
                    .map_err(|e| Rejection::invalid(format!("support calendar: {e}")))?;
                if &calendar == self.sla.calendar() {
                    return Err(Rejection::precondition(
                        "this support calendar is in force already",
                    ));
                }
                Ok(EventBody::SupportCalendarSet { calendar })
            })(),
            Command::GrantServiceCredit {
                incident_id,
                kpi,
                occurrence,
            } => self.decide_grant(incident_id, *kpi, *occurrence, at),
            _ => return None,
        };
        Some(body)
    }

    fn decide_grant(
        &self,
        incident_id: &str,
        kpi: SlaKpi,
        occurrence: u32,
        at: UnixSeconds,
    ) -> Result<EventBody, Rejection> {
        let inc = self.known_incident(incident_id)?;
        let what = kpi_name(kpi);
        let mark = inc
            .breach(kpi, occurrence)
            .filter(|m| m.at <= at)
            .ok_or_else(|| {
                Rejection::precondition(format!(
                    "incident {incident_id} has no {what} breach #{occurrence} at {at}"
                ))
            })?;
        if inc.is_granted(kpi, occurrence) {
            return Err(Rejection::exists(format!(
                "the {what} breach #{occurrence} of incident {incident_id} was credited already"
            )));
        }
        let account = self.account(&inc.account_id).ok_or_else(|| {
            Rejection::not_found(format!("account {} does not exist", inc.account_id))
        })?;
        if account.is_closed() {
            return Err(Rejection::precondition(format!(
                "account {} is closed",
                inc.account_id
            )));
        }
        let (amount, _) = self
            .service_credit(mark.at, mark.priority, kpi)
            .ok_or_else(|| {
                Rejection::precondition(format!(
                    "no service credit is configured for a priority {} {what} breach",
                    mark.priority
                ))
            })?;
        let balance = account.balance_at(at);
        if balance.0 + amount.0 > MAX_BALANCE.0 {
            return Err(Rejection::precondition(format!(
                "the service credit would take the balance of {} above {MAX_BALANCE} iSC",
                inc.account_id
            )));
        }
        Ok(EventBody::ServiceCreditGranted {
            account_id: inc.account_id.clone(),
            incident_id: incident_id.into(),
            kpi,
            occurrence,
            amount,
            price_version: self.list_in_effect(at).map(|l| l.version),
        })
    }

    /// The credit a breach of `kpi` at priority `priority` earns under the
    /// price list in effect at the breach, with that list's version.
    /// `None`: no credit configured (the default), or not a positive amount.
    pub fn service_credit(
        &self,
        breach_at: UnixSeconds,
        priority: u8,
        kpi: SlaKpi,
    ) -> Option<(Nano, u32)> {
        let list = self.list_in_effect(breach_at)?;
        self.prices
            .ext(list.version)
            .service_credit(priority, kpi)
            .filter(|a| (Nano(1)..=MAX_TOP_UP).contains(a))
            .map(|a| (a, list.version))
    }

    /// The earliest breach of an unresolved incident at or before `t` that
    /// earns a credit not granted yet, and the system command that records
    /// it (to be decided at the returned instant, or later).
    pub fn next_service_credit(&self, t: UnixSeconds) -> Option<(UnixSeconds, Command)> {
        let mut best: Option<(UnixSeconds, Command)> = None;
        for inc in self.sla.open_incidents() {
            let Some(account) = self.account(&inc.account_id) else {
                continue;
            };
            if account.is_closed() {
                continue;
            }
            for m in &inc.marks {
                if m.kind != MarkKind::Breach
                    || m.at > t
                    || best.as_ref().is_some_and(|(b, _)| *b <= m.at)
                    || inc.is_granted(m.kpi, m.occurrence)
                {
                    continue;
                }
                let Some((amount, _)) = self.service_credit(m.at, m.priority, m.kpi) else {
                    continue;
                };
                let at = m.at.max(self.last_at);
                if account.balance_at(at).0 + amount.0 > MAX_BALANCE.0 {
                    continue;
                }
                best = Some((
                    m.at,
                    Command::GrantServiceCredit {
                        incident_id: inc.incident_id.to_string(),
                        kpi: m.kpi,
                        occurrence: m.occurrence,
                    },
                ));
            }
        }
        best
    }
}
