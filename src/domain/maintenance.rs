//! Software maintenance of purchased PBXs (spec §15, seed 002: Allworx's
//! software maintenance plan).
//!
//! Owns the maintenance commands (`RegisterPbx`, `BuyPlan`,
//! `UpgradeFirmware`), their events, the coverage of each purchased PBX
//! (3 months included at commissioning, plans bought within their window,
//! coverage that extends running coverage), the upgrade gating (no upgrade
//! past the policy release without coverage, no leapfrogging it), the
//! `GetMaintenance` report and the `MAINTENANCE_EXPIRING` notices.
//!
//! A rented PBX has maintenance in its rent (seed 001): it is always
//! covered and changes firmware through `ChangeConfig`. A PBX is rented or
//! purchased, never both. Only a plan purchase touches the account's money,
//! as a breakpoint (the account accrues to its instant first, then pays).

use super::account::ApplyError;
use super::error::Rejection;
use super::event::{Decision, Event, EventBody, Notice, NoticeKind};
use super::ids::{check_id, check_key};
use super::ledger::Ledger;
use super::money::{UnixSeconds, MAX_REPORTED_INSTANT, SECONDS_PER_DAY, SECONDS_PER_MONTH};
use super::Receipt;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Maintenance included with a new server: 3 months (seed 002), of
/// §3's `SECONDS_PER_MONTH` each, so 7 884 000 s.
pub const INCLUDED_S: i64 = 3 * SECONDS_PER_MONTH;
/// `MAINTENANCE_EXPIRING` is due this long before coverage ends (spec §15).
pub const EXPIRING_NOTICE_S: i64 = 30 * SECONDS_PER_DAY;

/// A firmware release, compared major first.
pub type Release = (u32, u32);

fn show(r: Release) -> String {
    format!("{}.{}", r.0, r.1)
}

/// A maximal interval of coverage, `[from, to)`: covered at `t` when
/// `from <= t < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub from: UnixSeconds,
    pub to: UnixSeconds,
}

/// A purchased PBX in the folded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchasedPbx {
    /// Index of its account in the ledger (forever).
    pub account: u32,
    pub pbx_id: CompactString,
    /// The registration's instant: the 3 months and plan windows count from it.
    pub commissioned_at: UnixSeconds,
    pub firmware: Release,
    /// As registered (kept to recognise an identical retry).
    pub registered_firmware: Release,
    /// Merged, in time order.
    pub coverage: Vec<Coverage>,
    /// The receipt of the registration, answered to an identical retry.
    pub receipt: Receipt,
}

impl PurchasedPbx {
    pub fn covered_at(&self, t: UnixSeconds) -> bool {
        self.coverage.iter().any(|c| c.from <= t && t < c.to)
    }

    /// When the last coverage ends.
    pub fn coverage_end(&self) -> UnixSeconds {
        self.coverage.last().map_or(self.commissioned_at, |c| c.to)
    }

    /// The instant `MAINTENANCE_EXPIRING` is due for the current end.
    pub fn expiring_due(&self) -> UnixSeconds {
        self.coverage_end() - EXPIRING_NOTICE_S
    }
}

/// A plan bought, by its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPurchase {
    pub pbx_id: CompactString,
    pub plan: CompactString,
    pub receipt: Receipt,
}

/// Every purchased PBX and every plan key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Maintenance {
    pbxs: BTreeMap<CompactString, PurchasedPbx>,
    keys: BTreeMap<CompactString, PlanPurchase>,
}

impl Maintenance {
    pub fn pbx(&self, pbx_id: &str) -> Option<&PurchasedPbx> {
        self.pbxs.get(pbx_id)
    }

    pub fn is_purchased(&self, pbx_id: &str) -> bool {
        self.pbxs.contains_key(pbx_id)
    }

    pub fn plan_key(&self, key: &str) -> Option<&PlanPurchase> {
        self.keys.get(key)
    }

    pub fn pbxs(&self) -> impl Iterator<Item = &PurchasedPbx> + '_ {
        self.pbxs.values()
    }

    /// Folds a maintenance event of the account at index `account`.
    pub(crate) fn apply(
        &mut self,
        account: u32,
        at: UnixSeconds,
        body: &EventBody,
        receipt: Receipt,
    ) -> Result<(), ApplyError> {
        match body {
            EventBody::PbxRegistered {
                pbx_id,
                firmware_major,
                firmware_minor,
                ..
            } => {
                if self.pbxs.contains_key(pbx_id.as_str()) {
                    return Err(ApplyError(format!("PBX {pbx_id} is registered twice")));
                }
                let firmware = (*firmware_major, *firmware_minor);
                self.pbxs.insert(
                    pbx_id.clone(),
                    PurchasedPbx {
                        account,
                        pbx_id: pbx_id.clone(),
                        commissioned_at: at,
                        firmware,
                        registered_firmware: firmware,
                        coverage: vec![Coverage {
                            from: at,
                            to: at + INCLUDED_S,
                        }],
                        receipt,
                    },
                );
            }
            EventBody::PlanBought {
                pbx_id,
                plan,
                key,
                months,
                from,
                to,
                ..
            } => {
                let pbx = self.owned(account, pbx_id)?;
                let start = at.max(pbx.coverage_end());
                let length = i64::from(*months) * SECONDS_PER_MONTH;
                if *from != start || *to != start + length {
                    return Err(ApplyError(format!(
                        "plan {plan} of PBX {pbx_id} records coverage [{from}, {to}) but it runs [{start}, {})",
                        start + length
                    )));
                }
                if self.keys.contains_key(key.as_str()) {
                    return Err(ApplyError(format!("plan key {key} is used twice")));
                }
                let pbx = self.owned(account, pbx_id)?;
                match pbx.coverage.last_mut() {
                    Some(last) if last.to == *from => last.to = *to,
                    _ => pbx.coverage.push(Coverage {
                        from: *from,
                        to: *to,
                    }),
                }
                self.keys.insert(
                    key.clone(),
                    PlanPurchase {
                        pbx_id: pbx_id.clone(),
                        plan: plan.clone(),
                        receipt,
                    },
                );
            }
            EventBody::FirmwareUpgraded {
                pbx_id,
                firmware_major,
                firmware_minor,
                ..
            } => {
                self.owned(account, pbx_id)?.firmware = (*firmware_major, *firmware_minor);
            }
            _ => return Err(ApplyError("not a maintenance event".into())),
        }
        Ok(())
    }

    fn owned(&mut self, account: u32, pbx_id: &str) -> Result<&mut PurchasedPbx, ApplyError> {
        self.pbxs
            .get_mut(pbx_id)
            .filter(|p| p.account == account)
            .ok_or_else(|| {
                ApplyError(format!(
                    "PBX {pbx_id} is not a purchased PBX of this account"
                ))
            })
    }
}

/// The `GetMaintenance` view of a PBX (spec §15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceView {
    pub pbx_id: String,
    pub account_id: String,
    /// A rented PBX: maintenance is part of its rent, always covered.
    pub rented: bool,
    /// Purchased PBXs: the registration's instant.
    pub commissioned_at: Option<UnixSeconds>,
    pub firmware_major: u32,
    pub firmware_minor: u32,
    /// Merged intervals `[from, to)`; a rented PBX's runs to 9999-12-31
    /// (or its account's closure).
    pub coverage: Vec<Coverage>,
    /// Covered at the view's instant.
    pub covered: bool,
    /// Whether an upgrade past the current release is allowed now.
    pub upgrade_allowed: bool,
    /// The policy release of the list in effect, if it has one.
    pub policy: Option<Release>,
    pub at: UnixSeconds,
}

/// The PBX a maintenance command names, resolved.
enum Found<'a> {
    Purchased(&'a PurchasedPbx),
    Rented(u32),
}

impl Ledger {
    fn find_pbx(&self, pbx_id: &str) -> Result<Found<'_>, Rejection> {
        if let Some(p) = self.maintenance.pbx(pbx_id) {
            return Ok(Found::Purchased(p));
        }
        match self.pbx_owner.get(pbx_id) {
            Some((account, _)) => Ok(Found::Rented(account)),
            None => Err(Rejection::not_found(format!(
                "PBX {pbx_id} is not registered"
            ))),
        }
    }

    fn rented_refusal(pbx_id: &str, what: &str) -> Rejection {
        Rejection::precondition(format!(
            "PBX {pbx_id} is rented: maintenance is part of its rent (always covered); {what}"
        ))
    }

    fn open_owner(&self, account: u32) -> Result<&super::Account, Rejection> {
        let account = &self.accounts[account as usize];
        if account.is_closed() {
            return Err(Rejection::precondition(format!(
                "account {} is closed",
                account.account_id
            )));
        }
        Ok(account)
    }

    /// The policy release of the list in effect at `at`.
    fn policy_release(&self, at: UnixSeconds) -> Option<Release> {
        self.ext_in_effect(at)
            .maintenance
            .as_ref()
            .map(|m| (m.policy_major, m.policy_minor))
    }

    /// `RegisterPbx` (spec §15): a purchased PBX, commissioned now with
    /// 3 months of maintenance. The same fields again: the first receipt.
    pub(crate) fn decide_register_pbx(
        &self,
        account_id: &str,
        pbx_id: &str,
        firmware: Release,
        at: UnixSeconds,
    ) -> Result<Decision, Rejection> {
        check_id("account id", account_id)?;
        check_id("PBX id", pbx_id)?;
        let account = self.existing(account_id)?;
        if let Some(p) = self.maintenance.pbx(pbx_id) {
            if self.accounts[p.account as usize].account_id == account_id
                && p.registered_firmware == firmware
            {
                return Ok(Decision::Retry(p.receipt));
            }
            return Err(Rejection::exists(format!(
                "PBX {pbx_id} is already registered (record {}) with other fields; a PBX belongs to one account forever",
                p.receipt.seq
            )));
        }
        if account.is_closed() {
            return Err(Rejection::precondition(format!(
                "account {account_id} is closed"
            )));
        }
        if self.pbx_owner.get(pbx_id).is_some() {
            return Err(Rejection::precondition(format!(
                "PBX {pbx_id} rents licenses (bound by ChangeConfig): a PBX is either rented or purchased, never both"
            )));
        }
        Ok(Decision::Append(Event {
            at,
            body: EventBody::PbxRegistered {
                account_id: account_id.into(),
                pbx_id: pbx_id.into(),
                firmware_major: firmware.0,
                firmware_minor: firmware.1,
            },
        }))
    }

    /// `BuyPlan` (spec §15), idempotent by `key` like a top-up.
    pub(crate) fn decide_buy_plan(
        &self,
        pbx_id: &str,
        plan: &str,
        key: &str,
        at: UnixSeconds,
    ) -> Result<Decision, Rejection> {
        check_id("PBX id", pbx_id)?;
        check_id("maintenance plan name", plan)?;
        check_key(key)
            .map_err(|r| Rejection::invalid(r.message.replace("activation key", "plan key")))?;
        let pbx = match self.find_pbx(pbx_id)? {
            Found::Purchased(p) => p,
            Found::Rented(_) => {
                return Err(Self::rented_refusal(pbx_id, "no plan is needed"));
            }
        };
        if let Some(used) = self.maintenance.plan_key(key) {
            if used.pbx_id == pbx_id && used.plan == plan {
                return Ok(Decision::Retry(used.receipt));
            }
            return Err(Rejection::exists(format!(
                "plan key {key} was already used (record {}) for another PBX or plan",
                used.receipt.seq
            )));
        }
        let Some(terms) = self.ext_in_effect(at).maintenance.as_ref() else {
            return Err(Rejection::precondition(
                "no maintenance plans are on sale: the price list in effect has no maintenance section",
            ));
        };
        let Some(offer) = terms.plan(plan) else {
            let names: Vec<&str> = terms.plans.iter().map(|p| p.plan.as_str()).collect();
            return Err(Rejection::invalid(format!(
                "maintenance plan {plan} is not on sale in the price list in effect (plans: {})",
                names.join(", ")
            )));
        };
        let account = self.open_owner(pbx.account)?;
        if offer.within_days > 0 {
            let window_s = i64::from(offer.within_days) * SECONDS_PER_DAY;
            if at - pbx.commissioned_at > window_s {
                return Err(Rejection::precondition(format!(
                    "plan {plan} is sold only within {} days of commissioning: PBX {pbx_id} was commissioned at {}, the window closed at {}",
                    offer.within_days,
                    pbx.commissioned_at,
                    pbx.commissioned_at + window_s
                )));
            }
        }
        let balance = account.balance_at(at);
        if offer.price > balance {
            return Err(Rejection::precondition(format!(
                "insufficient credit: plan {plan} costs {} iSC and the balance is {balance} iSC",
                offer.price
            )));
        }
        let from = at.max(pbx.coverage_end());
        Ok(Decision::Append(Event {
            at,
            body: EventBody::PlanBought {
                account_id: account.account_id.clone(),
                pbx_id: pbx_id.into(),
                plan: plan.into(),
                key: key.into(),
                months: offer.months,
                price: offer.price,
                from,
                to: from + i64::from(offer.months) * SECONDS_PER_MONTH,
            },
        }))
    }

    /// `UpgradeFirmware` (spec §15): up to the policy release any upgrade is
    /// free; past it, only from the policy release or later (no leapfrogging)
    /// and only while covered. A downgrade or the same release is accepted.
    pub(crate) fn decide_upgrade(
        &self,
        pbx_id: &str,
        target: Release,
        at: UnixSeconds,
    ) -> Result<EventBody, Rejection> {
        check_id("PBX id", pbx_id)?;
        let pbx = match self.find_pbx(pbx_id)? {
            Found::Purchased(p) => p,
            Found::Rented(_) => {
                return Err(Self::rented_refusal(
                    pbx_id,
                    "it changes firmware through ChangeConfig (firmware_major)",
                ))
            }
        };
        let account = self.open_owner(pbx.account)?;
        let current = pbx.firmware;
        if let Some(policy) = self.policy_release(at) {
            if target > current && target > policy {
                if current < policy {
                    return Err(Rejection::precondition(format!(
                        "no leapfrogging: PBX {pbx_id} runs {} and must install release {} before any release past it (asked {})",
                        show(current),
                        show(policy),
                        show(target)
                    )));
                }
                if !pbx.covered_at(at) {
                    return Err(Rejection::precondition(format!(
                        "no maintenance coverage: an upgrade of PBX {pbx_id} past release {} (asked {}) needs a valid maintenance plan; coverage ended at {}",
                        show(policy),
                        show(target),
                        pbx.coverage_end()
                    )));
                }
            }
        }
        Ok(EventBody::FirmwareUpgraded {
            account_id: account.account_id.clone(),
            pbx_id: pbx_id.into(),
            firmware_major: target.0,
            firmware_minor: target.1,
        })
    }

    /// `GetMaintenance` (spec §15) at `at` (no later events assumed).
    pub fn maintenance_view(
        &self,
        pbx_id: &str,
        at: UnixSeconds,
    ) -> Result<MaintenanceView, Rejection> {
        check_id("PBX id", pbx_id)?;
        let policy = self.policy_release(at);
        match self.find_pbx(pbx_id)? {
            Found::Purchased(p) => {
                let account = &self.accounts[p.account as usize];
                let covered = p.covered_at(at);
                let open = !account.is_closed();
                let upgrade_allowed = open
                    && match policy {
                        None => true,
                        // Below the policy the next upgrade (to it) is free.
                        Some(policy) => p.firmware < policy || covered,
                    };
                Ok(MaintenanceView {
                    pbx_id: pbx_id.to_owned(),
                    account_id: account.account_id.to_string(),
                    rented: false,
                    commissioned_at: Some(p.commissioned_at),
                    firmware_major: p.firmware.0,
                    firmware_minor: p.firmware.1,
                    coverage: p.coverage.clone(),
                    covered,
                    upgrade_allowed,
                    policy,
                    at,
                })
            }
            Found::Rented(index) => {
                let account = &self.accounts[index as usize];
                let firmware_major = account.pbx(pbx_id).map_or(0, |p| p.firmware_major);
                let to = account.closed_at.unwrap_or(MAX_REPORTED_INSTANT);
                let open = !account.is_closed();
                Ok(MaintenanceView {
                    pbx_id: pbx_id.to_owned(),
                    account_id: account.account_id.to_string(),
                    rented: true,
                    commissioned_at: None,
                    firmware_major,
                    firmware_minor: 0,
                    coverage: vec![Coverage {
                        from: account.opened_at,
                        to,
                    }],
                    covered: open,
                    upgrade_allowed: open,
                    policy,
                    at,
                })
            }
        }
    }

    /// The purchased PBXs.
    pub fn maintenance(&self) -> &Maintenance {
        &self.maintenance
    }

    /// `MAINTENANCE_EXPIRING` notices due in `(t1, t2]` with no further
    /// events (`t1 >= last_at`), for one account or all.
    pub(crate) fn expiring_between(
        &self,
        account: Option<u32>,
        t1: UnixSeconds,
        t2: UnixSeconds,
        out: &mut Vec<Notice>,
    ) {
        for p in self.maintenance.pbxs() {
            if account.is_some_and(|a| a != p.account) {
                continue;
            }
            self.expiring_of(p, t1, t2, out);
        }
    }

    /// The `MAINTENANCE_EXPIRING` of one purchased PBX due in `(t1, t2]`
    /// (none once its account is closed).
    pub(crate) fn expiring_of(
        &self,
        p: &PurchasedPbx,
        t1: UnixSeconds,
        t2: UnixSeconds,
        out: &mut Vec<Notice>,
    ) {
        let owner = &self.accounts[p.account as usize];
        let due = p.expiring_due();
        if !owner.is_closed() && due > t1 && due <= t2 {
            out.push(expiring(&owner.account_id, &p.pbx_id, due));
        }
    }

    /// The earliest `MAINTENANCE_EXPIRING` strictly after `t`.
    pub(crate) fn next_expiring_after(&self, t: UnixSeconds) -> Option<UnixSeconds> {
        self.maintenance
            .pbxs()
            .filter(|p| !self.accounts[p.account as usize].is_closed())
            .map(PurchasedPbx::expiring_due)
            .filter(|due| *due > t)
            .min()
    }
}

fn expiring(account_id: &str, pbx_id: &str, at: UnixSeconds) -> Notice {
    Notice {
        account_id: account_id.to_owned(),
        at,
        kind: NoticeKind::MaintenanceExpiring,
        threshold_s: Some(EXPIRING_NOTICE_S),
        pbx_id: Some(pbx_id.to_owned()),
        sla: None,
    }
}

/// Every `MAINTENANCE_EXPIRING` of `account_id` due in `(t1, t2]`, derived
/// from its own events in log order: the notice of a coverage end is due
/// 30 days before it, unless a purchase before that instant extended the
/// coverage (a purchase at the very instant comes after the notice). A
/// closed account gets none after its closure.
pub fn expiring_history(
    events: &[Event],
    account_id: &str,
    t1: UnixSeconds,
    t2: UnixSeconds,
) -> Vec<Notice> {
    let mut ends: BTreeMap<&str, UnixSeconds> = BTreeMap::new();
    let mut out = Vec::new();
    let emit_due =
        |ends: &BTreeMap<&str, UnixSeconds>, upto: UnixSeconds, out: &mut Vec<Notice>| {
            for (pbx, end) in ends {
                let due = end - EXPIRING_NOTICE_S;
                if due <= upto && due > t1 && due <= t2 {
                    out.push(expiring(account_id, pbx, due));
                }
            }
        };
    let mut closed = false;
    for ev in events.iter().filter(|e| e.account_id() == Some(account_id)) {
        if ev.at > t2 {
            break;
        }
        match &ev.body {
            EventBody::PbxRegistered { pbx_id, .. } => {
                ends.insert(pbx_id, ev.at + INCLUDED_S);
            }
            EventBody::PlanBought { pbx_id, to, .. } => {
                if let Some(end) = ends.get_mut(pbx_id.as_str()) {
                    let due = *end - EXPIRING_NOTICE_S;
                    if due <= ev.at && due > t1 && due <= t2 {
                        out.push(expiring(account_id, pbx_id, due));
                    }
                    *end = *to;
                }
            }
            EventBody::AccountClosed { .. } => {
                // Notices due up to the closure's instant come before it.
                emit_due(&ends, ev.at, &mut out);
                closed = true;
                break;
            }
            _ => {}
        }
    }
    if !closed {
        emit_due(&ends, t2, &mut out);
    }
    out.sort_by(|a, b| (a.at, &a.pbx_id).cmp(&(b.at, &b.pbx_id)));
    out
}
