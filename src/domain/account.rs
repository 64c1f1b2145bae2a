//! One account's folded state and its timeline: per-second accrual between
//! breakpoints, exact depletion, suspension, reactivation, reminders and the
//! continuous-use cycles of its PBXs (spec §5, §6, §8, §12).
//!
//! The same code serves live apply, replay, views, statements and notices:
//! what happens between breakpoints is reported to an [`Observer`], so each
//! caller sees identical arithmetic (replay == live by construction).

use super::event::{EventBody, LicenseLine, NoticeKind, Policy};
use super::money::{accrual, seconds_to_deplete, Nano, UnixSeconds};
use super::prices::{tiered_cost, PriceList};
use super::Hosting;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every price list ever published, by version (immutable once published).
pub type PriceBook = BTreeMap<u32, PriceList>;

/// One lowering of a PBX's cost raised back within the gap (spec §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    pub lowered_at: UnixSeconds,
    pub raised_at: UnixSeconds,
}

/// A PBX bound to an account (forever) and its rented configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pbx {
    pub pbx_id: String,
    pub licenses: Vec<LicenseLine>,
    pub firmware_major: u32,
    pub hosting: Hosting,
    /// The frozen price list (spec §5).
    pub price_version: Option<u32>,
    /// Monthly cost at the frozen prices.
    pub monthly_cost: Nano,
    /// A lowering while enabled, waiting for the next change: (at, cost before).
    pub pending_lowering: Option<(UnixSeconds, Nano)>,
    pub cycles: Vec<Cycle>,
    /// License-model warnings of the last configuration change.
    pub warnings: Vec<String>,
}

/// Running totals that make the conservation law checkable at any time:
/// `top_ups - debits - forfeited = balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub top_ups: Nano,
    pub debits: Nano,
    pub forfeited: Nano,
}

/// An account's state at its last breakpoint `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account_id: String,
    pub opened_at: UnixSeconds,
    pub closed_at: Option<UnixSeconds>,
    /// Balance at `since`.
    pub balance: Nano,
    /// The last breakpoint: nothing is accrued past it yet.
    pub since: UnixSeconds,
    pub suspended: bool,
    pub pbxs: Vec<Pbx>,
    /// Σ PBX monthly costs at their frozen prices, suspended or not.
    pub configured_rate: Nano,
    /// Bit i set: reminder threshold i already told in this funding period.
    pub reminders_fired: u32,
    pub totals: Totals,
}

/// An interval of constant rate that starts at a breakpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: UnixSeconds,
    pub monthly_rate: Nano,
    pub balance_at_from: Nano,
}

impl Segment {
    /// `D(x)`: the rounded accrual from the segment's start to `x`, never
    /// more than the balance (spec §6, §12). At `t_zero` it is exactly the balance.
    pub fn debit_to(&self, x: UnixSeconds) -> Nano {
        let seconds = (x - self.from).max(0);
        let raw = accrual(self.monthly_rate, seconds).unwrap_or(self.balance_at_from);
        raw.min(self.balance_at_from)
    }
}

/// Receives what happens along an account's timeline.
pub trait Observer {
    /// The segment accrued up to `to` (a breakpoint), debiting `debit`.
    fn accrual(&mut self, _segment: &Segment, _to: UnixSeconds, _debit: Nano) {}
    /// A derived notice. `at_event`: caused by the event being applied,
    /// rather than by time passing.
    fn notice(
        &mut self,
        _kind: NoticeKind,
        _at: UnixSeconds,
        _threshold_s: Option<i64>,
        _at_event: bool,
    ) {
    }
}

/// Ignores everything: the plain fold.
pub struct Quiet;
impl Observer for Quiet {}

/// Why an event cannot be applied: the log contradicts itself. `decide` never
/// produces such events; this reports tampering or a corrupt log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// Monthly cost of a configuration under a list; `None` names a missing type.
pub fn config_cost(licenses: &[LicenseLine], list: &PriceList) -> Result<Nano, String> {
    let mut total = Nano::ZERO;
    for line in licenses {
        let tiers = list
            .entries
            .get(line.license_type.as_str())
            .ok_or_else(|| line.license_type.clone())?;
        total = Nano(total.0 + tiered_cost(tiers, line.quantity).0);
    }
    Ok(total)
}

impl Account {
    pub fn open(account_id: &str, at: UnixSeconds) -> Account {
        Account {
            account_id: account_id.to_owned(),
            opened_at: at,
            closed_at: None,
            balance: Nano::ZERO,
            since: at,
            suspended: false,
            pbxs: Vec::new(),
            configured_rate: Nano::ZERO,
            reminders_fired: 0,
            totals: Totals::default(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed_at.is_some()
    }

    /// The rate actually accruing: 0 while suspended or closed.
    pub fn enabled_rate(&self) -> Nano {
        if self.suspended || self.is_closed() {
            Nano::ZERO
        } else {
            self.configured_rate
        }
    }

    /// The segment that starts at `since`.
    pub fn segment(&self) -> Segment {
        Segment {
            from: self.since,
            monthly_rate: self.enabled_rate(),
            balance_at_from: self.balance,
        }
    }

    /// `t_zero` of the current segment, when something accrues (spec §6).
    pub fn runout(&self) -> Option<UnixSeconds> {
        let rate = self.enabled_rate();
        if !rate.is_positive() || !self.balance.is_positive() {
            return None;
        }
        Some(
            self.since
                .saturating_add(seconds_to_deplete(self.balance, rate)),
        )
    }

    /// The §6 read at `t >= since`, assuming no further events.
    pub fn balance_at(&self, t: UnixSeconds) -> Nano {
        match self.runout() {
            Some(t_zero) if t >= t_zero => Nano::ZERO,
            Some(_) => Nano(self.balance.0 - self.segment().debit_to(t).0),
            None => self.balance,
        }
    }

    /// Whether the account is suspended at `t >= since` (depletion at `t` included).
    pub fn suspended_at(&self, t: UnixSeconds) -> bool {
        self.suspended || self.runout().is_some_and(|t_zero| t >= t_zero)
    }

    pub fn pbx(&self, pbx_id: &str) -> Option<&Pbx> {
        self.pbxs.iter().find(|p| p.pbx_id == pbx_id)
    }

    /// Time-driven notices due in `(t1, t2]`, assuming no further events.
    pub fn pending_notices(
        &self,
        policy: &Policy,
        t1: UnixSeconds,
        t2: UnixSeconds,
        out: &mut Vec<(NoticeKind, UnixSeconds, Option<i64>)>,
    ) {
        let Some(t_zero) = self.runout() else { return };
        let lo = t1.max(self.since);
        for (i, threshold) in policy.reminder_thresholds_s.iter().enumerate() {
            let due = t_zero - threshold;
            if self.reminders_fired & (1 << i) == 0 && due > lo && due <= t2 {
                out.push((NoticeKind::Reminder, due, Some(*threshold)));
            }
        }
        if t_zero > lo && t_zero <= t2 {
            out.push((NoticeKind::Depletion, t_zero, None));
        }
    }

    /// The earliest time-driven notice strictly after `t`, if any.
    pub fn next_due_after(&self, policy: &Policy, t: UnixSeconds) -> Option<UnixSeconds> {
        let t_zero = self.runout()?;
        let lo = t.max(self.since);
        policy
            .reminder_thresholds_s
            .iter()
            .enumerate()
            .filter(|(i, _)| self.reminders_fired & (1 << i) == 0)
            .map(|(_, threshold)| t_zero - threshold)
            .chain(std::iter::once(t_zero))
            .filter(|due| *due > lo)
            .min()
    }

    /// Accrues from `since` to `t` (a breakpoint), reporting reminders and
    /// depletion crossed on the way, in time order.
    pub fn advance<O: Observer>(&mut self, t: UnixSeconds, policy: &Policy, obs: &mut O) {
        if t <= self.since {
            return;
        }
        if let Some(t_zero) = self.runout() {
            for (i, threshold) in policy.reminder_thresholds_s.iter().enumerate() {
                let due = t_zero - threshold;
                if self.reminders_fired & (1 << i) == 0 && due > self.since && due <= t {
                    self.reminders_fired |= 1 << i;
                    obs.notice(NoticeKind::Reminder, due, Some(*threshold), false);
                }
            }
            let segment = self.segment();
            if t_zero <= t {
                obs.accrual(&segment, t_zero, self.balance);
                self.totals.debits = Nano(self.totals.debits.0 + self.balance.0);
                self.balance = Nano::ZERO;
                self.suspended = true;
                obs.notice(NoticeKind::Depletion, t_zero, None, false);
            } else {
                let debit = segment.debit_to(t);
                obs.accrual(&segment, t, debit);
                self.totals.debits = Nano(self.totals.debits.0 + debit.0);
                self.balance = Nano(self.balance.0 - debit.0);
            }
        } else if self.enabled_rate().is_positive() {
            // Positive rate on a zero balance cannot outlive its breakpoint:
            // `settle` suspends it at once.
            debug_assert!(
                false,
                "account {} accrues on a zero balance",
                self.account_id
            );
        }
        self.since = t;
    }

    /// After an event at `t`: immediate depletion (B = 0, r > 0) and the
    /// reminders whose threshold the event itself crossed (spec §11, §12).
    fn settle<O: Observer>(&mut self, t: UnixSeconds, policy: &Policy, obs: &mut O) {
        let rate = self.enabled_rate();
        if !rate.is_positive() {
            return;
        }
        if self.balance.is_zero() {
            self.suspended = true;
            obs.notice(NoticeKind::Depletion, t, None, true);
            return;
        }
        let runtime = seconds_to_deplete(self.balance, rate);
        for (i, threshold) in policy.reminder_thresholds_s.iter().enumerate() {
            if self.reminders_fired & (1 << i) == 0 && runtime <= *threshold {
                self.reminders_fired |= 1 << i;
                obs.notice(NoticeKind::Reminder, t, Some(*threshold), true);
            }
        }
    }

    /// Applies one of this account's events (after `AccountOpened`).
    pub fn apply<O: Observer>(
        &mut self,
        at: UnixSeconds,
        body: &EventBody,
        prices: &PriceBook,
        policy: &Policy,
        obs: &mut O,
    ) -> Result<(), ApplyError> {
        if at < self.since {
            return Err(ApplyError(format!(
                "event at {at} is earlier than the account's last event at {}",
                self.since
            )));
        }
        if self.is_closed() {
            return Err(ApplyError(format!("account {} is closed", self.account_id)));
        }
        self.advance(at, policy, obs);
        match body {
            EventBody::ConfigChanged {
                pbx_id,
                licenses,
                firmware_major,
                hosting,
                price_version,
                warnings,
                ..
            } => {
                let new_cost = if licenses.is_empty() {
                    Nano::ZERO
                } else {
                    let list = price_version.and_then(|v| prices.get(&v)).ok_or_else(|| {
                        ApplyError(format!(
                            "configuration of PBX {pbx_id} names an unknown price list"
                        ))
                    })?;
                    config_cost(licenses, list).map_err(|t| {
                        ApplyError(format!(
                            "license type {t} is not in price list {}",
                            list.version
                        ))
                    })?
                };
                let enabled = !self.suspended;
                let gap = policy.compliance.max_gap_s;
                let index = match self.pbxs.iter().position(|p| &p.pbx_id == pbx_id) {
                    Some(i) => i,
                    None => {
                        self.pbxs.push(Pbx {
                            pbx_id: pbx_id.clone(),
                            licenses: Vec::new(),
                            firmware_major: *firmware_major,
                            hosting: *hosting,
                            price_version: None,
                            monthly_cost: Nano::ZERO,
                            pending_lowering: None,
                            cycles: Vec::new(),
                            warnings: Vec::new(),
                        });
                        self.pbxs.len() - 1
                    }
                };
                let pbx = &mut self.pbxs[index];
                let old_cost = pbx.monthly_cost;
                if let Some((lowered_at, level)) = pbx.pending_lowering.take() {
                    if at - lowered_at < gap && new_cost >= level {
                        pbx.cycles.push(Cycle {
                            lowered_at,
                            raised_at: at,
                        });
                    }
                }
                if enabled && new_cost < old_cost {
                    pbx.pending_lowering = Some((at, old_cost));
                }
                pbx.licenses.clone_from(licenses);
                pbx.firmware_major = *firmware_major;
                pbx.hosting = *hosting;
                pbx.price_version = *price_version;
                pbx.monthly_cost = new_cost;
                pbx.warnings.clone_from(warnings);
                self.configured_rate = Nano(self.configured_rate.0 - old_cost.0 + new_cost.0);
            }
            EventBody::ToppedUp {
                amount,
                price_version,
                ..
            } => {
                self.balance = Nano(self.balance.0 + amount.0);
                self.totals.top_ups = Nano(self.totals.top_ups.0 + amount.0);
                self.reminders_fired = 0;
                // Re-price only PBXs whose frozen list changes at this contact.
                let stale =
                    |pbx: &Pbx| pbx.price_version != *price_version && !pbx.licenses.is_empty();
                if let (Some(list), true) = (
                    price_version.and_then(|v| prices.get(&v)),
                    self.pbxs.iter().any(stale),
                ) {
                    let mut rate = Nano::ZERO;
                    for pbx in &mut self.pbxs {
                        pbx.price_version = Some(list.version);
                        pbx.monthly_cost = config_cost(&pbx.licenses, list).map_err(|t| {
                            ApplyError(format!(
                                "license type {t} of PBX {} is not in price list {}",
                                pbx.pbx_id, list.version
                            ))
                        })?;
                        rate = Nano(rate.0 + pbx.monthly_cost.0);
                    }
                    self.configured_rate = rate;
                } else if price_version.is_some() {
                    for pbx in &mut self.pbxs {
                        pbx.price_version = *price_version;
                    }
                }
                if self.suspended {
                    self.suspended = false;
                    obs.notice(NoticeKind::Reactivation, at, None, true);
                }
            }
            EventBody::AccountClosed { forfeited, .. } => {
                if *forfeited != self.balance {
                    return Err(ApplyError(format!(
                        "close of {} records a forfeit of {forfeited} but the balance is {}",
                        self.account_id, self.balance
                    )));
                }
                self.totals.forfeited = Nano(self.totals.forfeited.0 + self.balance.0);
                self.balance = Nano::ZERO;
                for pbx in &mut self.pbxs {
                    pbx.licenses.clear();
                    pbx.monthly_cost = Nano::ZERO;
                    pbx.pending_lowering = None;
                }
                self.configured_rate = Nano::ZERO;
                self.closed_at = Some(at);
                return Ok(());
            }
            EventBody::AccountOpened { .. } | EventBody::PriceListPublished(_) => {
                return Err(ApplyError("not an event of an open account".into()));
            }
        }
        self.settle(at, policy, obs);
        debug_assert_eq!(
            self.totals.top_ups.0 - self.totals.debits.0 - self.totals.forfeited.0,
            self.balance.0,
            "conservation"
        );
        Ok(())
    }
}
