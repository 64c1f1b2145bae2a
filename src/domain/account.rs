//! One account's folded state and its timeline: per-second accrual between
//! breakpoints, exact depletion, suspension, reactivation, reminders and the
//! continuous-use cycles of its PBXs (spec §5, §6, §8, §12).
//!
//! The same code serves live apply, replay, views, statements and notices:
//! what happens between breakpoints is reported to an [`Observer`], so each
//! caller sees identical arithmetic (replay == live by construction).
//!
//! Layout for a fast fold: license types are interned by the [`PriceBook`]
//! (a PBX stores `(TypeId, quantity)` pairs inline, a list's tiers are found
//! by index, not by comparing names), ids are inline strings, and the
//! account's runout instant is kept with it so a breakpoint costs one
//! division, not two.

use super::event::{EventBody, LicenseLine, NoticeKind, Policy};
use super::money::{
    accrual, seconds_to_deplete, Nano, UnixSeconds, MAX_BALANCE, MAX_MONTHLY_UNIT_PRICE, MAX_TOP_UP,
};
use super::prices::{tiered_cost, PriceList, PriceListExt, Tier, EMPTY_EXT};
use super::typenames::TypeNames;
use super::Hosting;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// Hash maps of the in-memory state: foldhash (fast, seeded per process).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A license type interned by the price book: index into its names.
pub type TypeId = u32;

/// One line of a PBX's rented configuration, with its type interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub ty: TypeId,
    pub quantity: u32,
}

/// The instants a source of time-driven notices is due at (an account's
/// reminders and depletion, an incident's marks): a few, inline.
pub type DueInstants = SmallVec<[UnixSeconds; 4]>;

/// A configuration as stored in the state: up to four lines inline.
pub type Lines = SmallVec<[Line; 4]>;

/// The tiers of one list, by interned type (derived from the list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub version: u32,
    by_type: Vec<Option<Box<[Tier]>>>,
}

impl Rates {
    /// The tiers of `ty` in this list.
    pub fn tiers(&self, ty: TypeId) -> Option<&[Tier]> {
        self.by_type.get(ty as usize)?.as_deref()
    }

    /// Monthly cost of interned lines; `Err(ty)` names a type not in the list.
    pub fn cost(&self, lines: &[Line]) -> Result<Nano, TypeId> {
        let mut total = 0i128;
        for line in lines {
            total += tiered_cost(self.tiers(line.ty).ok_or(line.ty)?, line.quantity).0;
        }
        Ok(Nano(total))
    }
}

/// Every price list ever published, by version (immutable once published),
/// with the interned form the fold prices configurations with. Derefs to
/// the lists by version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PriceBook {
    lists: BTreeMap<u32, PriceList>,
    /// Interned license type names.
    types: TypeNames,
    /// One per list, in ascending version.
    rates: Vec<Rates>,
    /// Version → index in `rates` (a PBX may be frozen to any version).
    rate_index: FastMap<u32, u32>,
    /// The extension sections of the lists that have them (spec §14–§16).
    exts: BTreeMap<u32, PriceListExt>,
}

impl std::ops::Deref for PriceBook {
    type Target = BTreeMap<u32, PriceList>;
    fn deref(&self) -> &Self::Target {
        &self.lists
    }
}

impl PriceBook {
    pub fn new() -> PriceBook {
        PriceBook::default()
    }

    /// The extension of list `version` (empty when it has none).
    pub fn ext(&self, version: u32) -> &PriceListExt {
        self.exts.get(&version).unwrap_or(&EMPTY_EXT)
    }

    /// The extension of the newest list (empty when there is none).
    pub fn newest_ext(&self) -> &PriceListExt {
        self.lists
            .keys()
            .next_back()
            .map_or(&EMPTY_EXT, |v| self.ext(*v))
    }

    /// Records a published list with its extension.
    pub fn insert_with_ext(
        &mut self,
        list: PriceList,
        ext: PriceListExt,
    ) -> Result<(), ApplyError> {
        if !ext.within_bounds() {
            return Err(ApplyError(format!(
                "price list {} has device fees, plans or service credits that no published list can have",
                list.version
            )));
        }
        let version = list.version;
        self.insert(list)?;
        if !ext.is_empty() {
            self.exts.insert(version, ext);
        }
        Ok(())
    }

    /// Records a published list; versions must strictly increase (as
    /// `decide` ensures), so a tampered log cannot replace a list.
    pub fn insert(&mut self, list: PriceList) -> Result<(), ApplyError> {
        if let Some(last) = self.lists.keys().next_back() {
            if list.version <= *last {
                return Err(ApplyError(format!(
                    "price list version {} is published after version {last}",
                    list.version
                )));
            }
        }
        let mut by_type: Vec<Option<Box<[Tier]>>> = Vec::new();
        for (name, tiers) in &list.entries {
            // What `decide` validated (spec §3, §4), checked again so a forged
            // list cannot make pricing overflow.
            let ordered = tiers.first().is_some_and(|t| t.from_qty == 1)
                && tiers.windows(2).all(|w| w[0].from_qty < w[1].from_qty);
            let bounded = tiers
                .iter()
                .all(|t| (Nano::ZERO..=MAX_MONTHLY_UNIT_PRICE).contains(&t.monthly_price));
            if !(ordered && bounded) {
                return Err(ApplyError(format!(
                    "price list {} has tiers for {name} that no published list can have",
                    list.version
                )));
            }
            let ty = self.types.intern(name) as usize;
            if by_type.len() <= ty {
                by_type.resize(ty + 1, None);
            }
            by_type[ty] = Some(tiers.clone().into_boxed_slice());
        }
        self.rate_index
            .insert(list.version, self.rates.len() as u32);
        self.rates.push(Rates {
            version: list.version,
            by_type,
        });
        self.lists.insert(list.version, list);
        Ok(())
    }

    /// The interned id of a license type named in some list.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.types.get(name)
    }

    /// The name of an interned type.
    pub fn type_name(&self, ty: TypeId) -> &str {
        self.types.name(ty).unwrap_or("?")
    }

    /// The tiers of list `version`, by interned type.
    pub fn rates(&self, version: u32) -> Option<&Rates> {
        match self.rates.last() {
            Some(last) if last.version == version => Some(last),
            _ => self
                .rate_index
                .get(&version)
                .and_then(|i| self.rates.get(*i as usize)),
        }
    }

    /// Interns `licenses` and prices them under list `version`: the one
    /// pricing of a configuration, shared by `decide` and `apply`.
    pub fn price(&self, licenses: &[LicenseLine], version: u32) -> Result<(Lines, Nano), Unpriced> {
        let rates = self.rates(version).ok_or(Unpriced::NoList)?;
        let lines = self.lines(licenses).map_err(Unpriced::Missing)?;
        let cost = rates
            .cost(&lines)
            .map_err(|ty| Unpriced::Missing(self.type_name(ty).to_owned()))?;
        Ok((lines, cost))
    }

    /// Interns a configuration; `Err(name)` names a type no list has.
    pub fn lines(&self, licenses: &[LicenseLine]) -> Result<Lines, String> {
        // A plain loop: collecting a fallible iterator into a SmallVec
        // cost ~200 instructions per event (measured with callgrind).
        let mut lines = Lines::new();
        for l in licenses {
            match self.type_id(&l.license_type) {
                Some(ty) => lines.push(Line {
                    ty,
                    quantity: l.quantity,
                }),
                None => return Err(l.license_type.to_string()),
            }
        }
        Ok(lines)
    }
}

/// One lowering of a PBX's cost raised back within the gap (spec §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    pub lowered_at: UnixSeconds,
    pub raised_at: UnixSeconds,
}

/// A PBX bound to an account (forever) and its rented configuration.
///
/// `repr(C)`, fields in the order the fold reads them: what a configuration
/// change or a top-up touches sits in the first two cache lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct Pbx {
    /// Monthly cost at the frozen prices.
    pub monthly_cost: Nano,
    /// A lowering while enabled, waiting for the next change: (at, cost before).
    pub pending_lowering: Option<(UnixSeconds, Nano)>,
    /// The rented configuration, types interned by the price book.
    pub licenses: Lines,
    /// The frozen price list (spec §5).
    pub price_version: Option<u32>,
    pub firmware_major: u32,
    pub hosting: Hosting,
    /// License-model warnings of the last configuration change.
    pub warnings: Vec<String>,
    pub cycles: Vec<Cycle>,
    pub pbx_id: CompactString,
}

/// Running totals that make the conservation law checkable at any time:
/// `top_ups + grants - debits - fees - forfeited = balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub top_ups: Nano,
    pub debits: Nano,
    pub forfeited: Nano,
    /// One-time charges: provisioning fees (§14) and maintenance plans (§15).
    pub fees: Nano,
    /// Service credits granted for SLA breaches (spec §16).
    pub grants: Nano,
}

/// An account's state at its last breakpoint `since`.
///
/// `repr(C)`: what every event reads and writes comes first (three cache
/// lines the fold prefetches), the PBXs last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct Account {
    /// Balance at `since`.
    pub balance: Nano,
    /// Σ PBX monthly costs at their frozen prices, suspended or not.
    pub configured_rate: Nano,
    pub totals: Totals,
    /// The last breakpoint: nothing is accrued past it yet.
    pub since: UnixSeconds,
    /// `t_zero` of the segment that starts at `since` (spec §6), kept equal
    /// to `since + seconds_to_deplete(balance, enabled rate)` by every
    /// breakpoint: derived, cached so the next breakpoint need not divide.
    runout_at: Option<UnixSeconds>,
    pub closed_at: Option<UnixSeconds>,
    /// Bit i set: reminder threshold i already told in this funding period.
    pub reminders_fired: u32,
    pub suspended: bool,
    pub opened_at: UnixSeconds,
    pub account_id: CompactString,
    /// Inline for the usual few PBXs: the fold reaches a PBX at a fixed
    /// offset from its account, not through a second pointer (cache miss).
    pub pbxs: SmallVec<[Pbx; 3]>,
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

/// Why a configuration has no price under a list ([`PriceBook::price`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpriced {
    /// No list of that version was published.
    NoList,
    /// The list does not rent this license type.
    Missing(String),
}

impl Account {
    pub fn open(account_id: &str, at: UnixSeconds) -> Account {
        Account {
            account_id: CompactString::from(account_id),
            opened_at: at,
            closed_at: None,
            balance: Nano::ZERO,
            since: at,
            suspended: false,
            pbxs: SmallVec::new(),
            configured_rate: Nano::ZERO,
            reminders_fired: 0,
            totals: Totals::default(),
            runout_at: None,
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
        debug_assert_eq!(self.runout_at, self.compute_runout(), "stale runout");
        self.runout_at
    }

    /// The runout from first principles (one i128 division).
    fn compute_runout(&self) -> Option<UnixSeconds> {
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

    /// Where `pbx_id` sits in `pbxs`.
    pub fn pbx_slot(&self, pbx_id: &str) -> Option<usize> {
        self.pbxs.iter().position(|p| p.pbx_id == pbx_id)
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

    /// Every instant [`Account::pending_notices`] can report a notice at
    /// for a window that starts at or after `since` (as every window of the
    /// live ledger does: `t1 >= last_at >= since`): the unfired reminders
    /// and the depletion still ahead of the last breakpoint. The notice
    /// schedule (`domain::due`) files the account under these instants.
    pub fn due_instants(&self, policy: &Policy) -> DueInstants {
        let mut out = DueInstants::new();
        let Some(t_zero) = self.runout() else {
            return out;
        };
        for (i, threshold) in policy.reminder_thresholds_s.iter().enumerate() {
            let due = t_zero - threshold;
            if self.reminders_fired & (1 << i) == 0 && due > self.since {
                out.push(due);
            }
        }
        if t_zero > self.since {
            out.push(t_zero);
        }
        out
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
        self.accrue_to(t, policy, obs);
        self.runout_at = self.compute_runout();
    }

    /// [`Account::advance`] without refreshing the runout: `apply` does it
    /// once after the event.
    fn accrue_to<O: Observer>(&mut self, t: UnixSeconds, policy: &Policy, obs: &mut O) {
        if t <= self.since {
            return;
        }
        if let Some(t_zero) = self.runout_at {
            // A reminder is due at `t_zero - threshold <= t`: none while the
            // runway left at `t` exceeds the longest threshold (the usual case).
            let reminders = if t_zero - t <= policy.longest_reminder_s() {
                policy.reminder_thresholds_s.as_slice()
            } else {
                &[]
            };
            for (i, threshold) in reminders.iter().enumerate() {
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
    /// Also refreshes the cached runout (the one division of a breakpoint).
    fn settle<O: Observer>(&mut self, t: UnixSeconds, policy: &Policy, obs: &mut O) {
        self.runout_at = None;
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
        self.runout_at = Some(self.since.saturating_add(runtime));
        let reminders = if runtime <= policy.longest_reminder_s() {
            policy.reminder_thresholds_s.as_slice()
        } else {
            &[]
        };
        for (i, threshold) in reminders.iter().enumerate() {
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
        self.apply_at(at, body, PbxSlot::Lookup, prices, policy, obs)
    }

    /// [`Account::apply`] told where the event's PBX sits (the ledger knows
    /// it from its PBX index), so no id is compared.
    pub(crate) fn apply_at<O: Observer>(
        &mut self,
        at: UnixSeconds,
        body: &EventBody,
        slot: PbxSlot,
        prices: &PriceBook,
        policy: &Policy,
        obs: &mut O,
    ) -> Result<(), ApplyError> {
        if body.is_incident_fact() {
            // On the account's index, but not a breakpoint of its timeline.
            return Ok(());
        }
        if at < self.since {
            return Err(ApplyError(format!(
                "event at {at} is earlier than the account's last event at {}",
                self.since
            )));
        }
        if self.is_closed() {
            return Err(ApplyError(format!("account {} is closed", self.account_id)));
        }
        if body.is_passive() {
            // Moves no money: not a breakpoint (devices, maintenance).
            return Ok(());
        }
        self.accrue_to(at, policy, obs);
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
                let (lines, new_cost) = if licenses.is_empty() {
                    (Lines::new(), Nano::ZERO)
                } else {
                    let unknown = || {
                        ApplyError(format!(
                            "configuration of PBX {pbx_id} names an unknown price list"
                        ))
                    };
                    let version = price_version.ok_or_else(unknown)?;
                    prices.price(licenses, version).map_err(|why| match why {
                        Unpriced::NoList => unknown(),
                        Unpriced::Missing(t) => {
                            ApplyError(format!("license type {t} is not in price list {version}"))
                        }
                    })?
                };
                let enabled = !self.suspended;
                let gap = policy.compliance.max_gap_s;
                let found = match slot {
                    PbxSlot::Known(i) if i < self.pbxs.len() => Some(i),
                    PbxSlot::Known(_) | PbxSlot::New => None,
                    PbxSlot::Lookup => self.pbx_slot(pbx_id),
                };
                let index = match found {
                    Some(i) => i,
                    None => {
                        self.pbxs.push(Pbx {
                            pbx_id: CompactString::from(pbx_id.as_str()),
                            licenses: Lines::new(),
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
                debug_assert_eq!(pbx.pbx_id, pbx_id.as_str(), "PBX slot");
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
                pbx.licenses = lines;
                pbx.firmware_major = *firmware_major;
                pbx.hosting = *hosting;
                pbx.price_version = *price_version;
                pbx.monthly_cost = new_cost;
                if !(pbx.warnings.is_empty() && warnings.is_empty()) {
                    pbx.warnings.clone_from(warnings);
                }
                self.configured_rate = Nano(self.configured_rate.0 - old_cost.0 + new_cost.0);
            }
            EventBody::ToppedUp {
                amount,
                price_version,
                ..
            }
            | EventBody::ServiceCreditGranted {
                amount,
                price_version,
                ..
            } => {
                // Bounds `decide` enforces (spec §3), checked again so a forged
                // amount cannot overflow the balance.
                if !(Nano(1)..=MAX_TOP_UP).contains(amount)
                    || self.balance.0 + amount.0 > MAX_BALANCE.0
                {
                    return Err(ApplyError(format!(
                        "credit of {} by {amount} iSC is outside the bounds of a top-up or a balance",
                        self.account_id
                    )));
                }
                self.balance = Nano(self.balance.0 + amount.0);
                if matches!(body, EventBody::ServiceCreditGranted { .. }) {
                    self.totals.grants = Nano(self.totals.grants.0 + amount.0);
                } else {
                    self.totals.top_ups = Nano(self.totals.top_ups.0 + amount.0);
                }
                self.reminders_fired = 0;
                // Re-price only PBXs whose frozen list changes at this contact.
                let stale =
                    |pbx: &Pbx| pbx.price_version != *price_version && !pbx.licenses.is_empty();
                if let (Some(rates), true) = (
                    price_version.and_then(|v| prices.rates(v)),
                    self.pbxs.iter().any(stale),
                ) {
                    let mut rate = Nano::ZERO;
                    for pbx in &mut self.pbxs {
                        pbx.price_version = Some(rates.version);
                        pbx.monthly_cost = rates.cost(&pbx.licenses).map_err(|ty| {
                            ApplyError(format!(
                                "license type {} of PBX {} is not in price list {}",
                                prices.type_name(ty),
                                pbx.pbx_id,
                                rates.version
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
                self.runout_at = None;
                return Ok(());
            }
            EventBody::DeviceRegistered { fee, .. } => {
                self.charge(fee.unwrap_or(Nano::ZERO))?;
            }
            EventBody::PlanBought { price, .. } => self.charge(*price)?,
            EventBody::AccountOpened { .. }
            | EventBody::PriceListPublished(_)
            | EventBody::PriceListPublishedExt { .. }
            | EventBody::DeviceStatusSet { .. }
            | EventBody::PbxRegistered { .. }
            | EventBody::FirmwareUpgraded { .. }
            | EventBody::SupportCalendarSet { .. }
            | EventBody::IncidentReported { .. }
            | EventBody::IncidentResponded { .. }
            | EventBody::IncidentUpdated { .. }
            | EventBody::IncidentResolved { .. }
            | EventBody::IncidentPriorityChanged { .. } => {
                return Err(ApplyError("not an event of an open account".into()));
            }
        }
        self.settle(at, policy, obs);
        debug_assert_eq!(
            self.totals.top_ups.0 + self.totals.grants.0
                - self.totals.debits.0
                - self.totals.fees.0
                - self.totals.forfeited.0,
            self.balance.0,
            "conservation"
        );
        debug_assert_eq!(self.runout_at, self.compute_runout(), "runout refreshed");
        Ok(())
    }
}

impl Account {
    /// Pays a one-time charge from the balance accrued to now (prepaid:
    /// `decide` refused a charge above it; checked again against a forged log).
    fn charge(&mut self, amount: Nano) -> Result<(), ApplyError> {
        if amount.0 < 0 || amount > self.balance {
            return Err(ApplyError(format!(
                "a charge of {amount} iSC to {} exceeds its balance of {} iSC",
                self.account_id, self.balance
            )));
        }
        self.balance = Nano(self.balance.0 - amount.0);
        self.totals.fees = Nano(self.totals.fees.0 + amount.0);
        Ok(())
    }
}

/// Where the PBX of a `ConfigChanged` sits in its account's `pbxs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PbxSlot {
    /// At this index.
    Known(usize),
    /// Not yet configured: appended.
    New,
    /// Unknown to the caller: found by id.
    Lookup,
}
