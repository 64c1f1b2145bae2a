//! The whole ledger as two pure functions (spec §7): `decide` checks a
//! command against the state at an instant and yields the event to store
//! (or a rejection, or an idempotent retry); `apply` folds a stored event
//! into the state. Replay is `apply` over the log, live is `decide` then
//! `apply` of the same event, so they agree by construction.

pub use super::account::FastMap;
use super::account::{Account, ApplyError, Observer, PbxSlot, PriceBook, Quiet, Unpriced};
use super::chunked::Chunked;
use super::devices::Devices;
use super::due::DueCache;
use super::error::Rejection;
use super::event::{
    Command, Decision, Event, EventBody, LicenseLine, Notice, NoticeKind, Policy, Receipt,
};
use super::idmap::IdMap;
use super::ids::{
    check_id, check_key, check_license_type, MAX_LICENSE_LINES, MAX_QUANTITY, MIN_FIRMWARE_MAJOR,
};
use super::keys::KeyBook;
use super::maintenance::Maintenance;
use super::money::{
    seconds_to_deplete, Nano, UnixSeconds, MAX_ACCOUNT_MONTHLY_RATE, MAX_BALANCE, MAX_TOP_UP,
};
use super::prefetch;
use super::prices::{
    check_ext_succession, check_succession, parse_price_list, parse_price_list_ext, PriceList,
    PriceListExt, EMPTY_EXT,
};
use super::sla::SlaBook;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

const NO_LIST_YET: &str =
    "no price list is in effect yet: licenses cannot be rented before the vendor publishes prices";

/// A redeemed activation key and the receipt of its top-up (spec §7: a retry
/// with the same account and amount answers this receipt verbatim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUse {
    /// Index of the account in the ledger (accounts are never removed).
    pub account: u32,
    pub amount: Nano,
    pub receipt: Receipt,
}

/// What `apply` reports: the receipt of the record and the notices the event
/// itself made due (time-driven notices come from `notices_between`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub receipt: Receipt,
    pub notices: Vec<Notice>,
}

/// The folded state of the whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub(crate) policy: Policy,
    pub(crate) last_seq: u64,
    pub(crate) last_at: UnixSeconds,
    pub(crate) prices: PriceBook,
    /// Accounts in opening order; an account's index never changes.
    pub(crate) accounts: Chunked<Account>,
    pub(crate) account_index: IdMap<u32>,
    /// PBX → (index of its account, forever; its slot in the account's `pbxs`).
    pub(crate) pbx_owner: IdMap<(u32, u32)>,
    /// Activation key → its first redemption.
    pub(crate) keys: KeyBook,
    /// Registered devices (spec §14).
    pub(crate) devices: Devices,
    /// Purchased PBXs and their maintenance (spec §15).
    pub(crate) maintenance: Maintenance,
    /// Incidents and support calendars (spec §16).
    pub(crate) sla: SlaBook,
    /// When each account, purchased PBX and open incident next has a
    /// time-driven notice due (`domain::due`): derived, never serialized,
    /// built on the first `notices_between`, then kept by `apply`.
    #[serde(skip)]
    pub(crate) due: DueCache,
}

/// Collects the notices an event makes due at its own instant.
struct AtEvent<'a> {
    account_id: &'a str,
    notices: &'a mut Vec<Notice>,
}

impl Observer for AtEvent<'_> {
    fn notice(
        &mut self,
        kind: NoticeKind,
        at: UnixSeconds,
        threshold_s: Option<i64>,
        at_event: bool,
    ) {
        if at_event {
            self.notices.push(Notice {
                account_id: self.account_id.to_owned(),
                at,
                kind,
                threshold_s,
                pbx_id: None,
                sla: None,
            });
        }
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new(Policy::default())
    }
}

impl Ledger {
    pub fn new(policy: Policy) -> Ledger {
        Ledger {
            policy,
            last_seq: 0,
            last_at: 0,
            prices: PriceBook::new(),
            accounts: Chunked::new(),
            account_index: IdMap::new(),
            pbx_owner: IdMap::new(),
            keys: KeyBook::default(),
            devices: Devices::default(),
            maintenance: Maintenance::default(),
            sla: SlaBook::default(),
            due: DueCache::default(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// Seq of the last applied record (0: empty log).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    /// `at` of the last applied record: live commands are never stamped earlier.
    pub fn last_at(&self) -> UnixSeconds {
        self.last_at
    }
    pub fn prices(&self) -> &PriceBook {
        &self.prices
    }
    pub fn account(&self, account_id: &str) -> Option<&Account> {
        self.account_index
            .get(account_id)
            .map(|i| &self.accounts[i as usize])
    }
    /// Account ids in sorted order (stable output for reports).
    pub fn account_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .accounts
            .iter()
            .map(|a| a.account_id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }
    /// The index of an account (its place in opening order), as device and
    /// PBX records name their account.
    pub fn account_index_of(&self, account_id: &str) -> Option<u32> {
        self.account_index.get(account_id)
    }
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The newest list in effect at `at` (spec §5): versions and dates agree.
    pub fn list_in_effect(&self, at: UnixSeconds) -> Option<&PriceList> {
        self.prices
            .values()
            .rev()
            .find(|list| list.effective_at <= at)
    }

    /// The extension sections (devices, maintenance, service credits) of the
    /// list in effect at `at`; empty when none is in effect or it has none.
    pub fn ext_in_effect(&self, at: UnixSeconds) -> &PriceListExt {
        self.list_in_effect(at)
            .map_or(&EMPTY_EXT, |list| self.prices.ext(list.version))
    }

    /// The first redemption of an activation key.
    pub fn key_use(&self, activation_key: &str) -> Option<KeyUse> {
        self.keys.get(activation_key)
    }

    pub(crate) fn existing(&self, account_id: &str) -> Result<&Account, Rejection> {
        self.account(account_id)
            .ok_or_else(|| Rejection::not_found(format!("account {account_id} does not exist")))
    }

    fn open_account(&self, account_id: &str) -> Result<&Account, Rejection> {
        let account = self.existing(account_id)?;
        if account.is_closed() {
            return Err(Rejection::precondition(format!(
                "account {account_id} is closed"
            )));
        }
        Ok(account)
    }

    /// Checks `cmd` at `max(now, last_at)` (spec §7, §11). Pure: the state is
    /// untouched whatever the outcome.
    pub fn decide(&self, cmd: &Command, now: UnixSeconds) -> Result<Decision, Rejection> {
        let at = now.max(self.last_at);
        let body = match cmd {
            Command::OpenAccount { account_id } => {
                check_id("account id", account_id)?;
                if self.account_index.contains_key(account_id.as_str()) {
                    return Err(Rejection::exists(format!(
                        "account {account_id} already exists (account ids are never reused, even after closing)"
                    )));
                }
                EventBody::AccountOpened {
                    account_id: account_id.as_str().into(),
                }
            }
            Command::ChangeConfig {
                account_id,
                pbx_id,
                licenses,
                firmware_major,
                hosting,
            } => self.decide_config(account_id, pbx_id, licenses, *firmware_major, *hosting, at)?,
            Command::TopUp {
                account_id,
                activation_key,
                amount,
            } => {
                check_id("account id", account_id)?;
                check_key(activation_key)?;
                let amount = Nano::parse_bounded(amount, "top-up amount", Nano(1), MAX_TOP_UP)?;
                let account = self.existing(account_id)?;
                if let Some(used) = self.key_use(activation_key) {
                    if self.accounts[used.account as usize].account_id == *account_id
                        && used.amount == amount
                    {
                        return Ok(Decision::Retry(used.receipt));
                    }
                    return Err(Rejection::exists(format!(
                        "activation key {activation_key} was already redeemed (record {}) with another account or amount",
                        used.receipt.seq
                    )));
                }
                if account.is_closed() {
                    return Err(Rejection::precondition(format!(
                        "account {account_id} is closed"
                    )));
                }
                let balance = account.balance_at(at);
                if balance.0 + amount.0 > MAX_BALANCE.0 {
                    return Err(Rejection::precondition(format!(
                        "top-up refused: the balance would be {} iSC, above the limit of {MAX_BALANCE} iSC",
                        Nano(balance.0 + amount.0)
                    )));
                }
                EventBody::ToppedUp {
                    account_id: account_id.as_str().into(),
                    activation_key: activation_key.as_str().into(),
                    amount,
                    price_version: self.list_in_effect(at).map(|l| l.version),
                }
            }
            Command::PublishPriceList {
                version,
                effective_at,
                entries,
                catalogue,
                ext,
            } => {
                let mut list = parse_price_list(*version, *effective_at, entries)?;
                let ext = parse_price_list_ext(ext)?;
                if let Some(catalogue) = catalogue {
                    catalogue.validate().map_err(|e| {
                        Rejection::invalid(format!("license catalogue is invalid: {e}"))
                    })?;
                    list.catalogue = catalogue.clone();
                }
                if let Some(hw) = list.entries.keys().find(|t| list.catalogue.is_hardware(t)) {
                    return Err(Rejection::invalid(format!(
                        "license type {hw} is a hardware license in the license catalogue: hardware licenses are never rentable"
                    )));
                }
                check_succession(&list, self.prices.values().next_back())?;
                check_ext_succession(list.version, &ext, self.prices.newest_ext())?;
                if ext.is_empty() {
                    EventBody::PriceListPublished(list)
                } else {
                    EventBody::PriceListPublishedExt { list, ext }
                }
            }
            Command::CloseAccount { account_id } => {
                check_id("account id", account_id)?;
                let account = self.open_account(account_id)?;
                EventBody::AccountClosed {
                    account_id: account_id.as_str().into(),
                    forfeited: account.balance_at(at),
                }
            }
            // Policies of their own modules (devices, maintenance).
            Command::RegisterDevice {
                account_id,
                device_id,
                model,
                channel,
                provisioned,
            } => {
                return self.decide_register_device(
                    account_id,
                    device_id,
                    model,
                    *channel,
                    *provisioned,
                    at,
                )
            }
            Command::SetDeviceStatus {
                device_id,
                status,
                reason,
            } => self.decide_device_status(device_id, *status, reason)?,
            Command::RegisterPbx {
                account_id,
                pbx_id,
                firmware_major,
                firmware_minor,
            } => {
                return self.decide_register_pbx(
                    account_id,
                    pbx_id,
                    (*firmware_major, *firmware_minor),
                    at,
                )
            }
            Command::BuyPlan { pbx_id, plan, key } => {
                return self.decide_buy_plan(pbx_id, plan, key, at)
            }
            Command::UpgradeFirmware {
                pbx_id,
                firmware_major,
                firmware_minor,
            } => self.decide_upgrade(pbx_id, (*firmware_major, *firmware_minor), at)?,
            Command::ReportIncident { .. }
            | Command::RespondIncident { .. }
            | Command::UpdateIncident { .. }
            | Command::ResolveIncident { .. }
            | Command::ChangePriority { .. }
            | Command::SetSupportCalendar { .. }
            | Command::GrantServiceCredit { .. } => self
                .decide_sla(cmd, at)
                .unwrap_or_else(|| Err(Rejection::invalid("not a service-level command")))?,
        };
        Ok(Decision::Append(Event { at, body }))
    }

    fn decide_config(
        &self,
        account_id: &str,
        pbx_id: &str,
        licenses: &[LicenseLine],
        firmware_major: u32,
        hosting: super::Hosting,
        at: UnixSeconds,
    ) -> Result<EventBody, Rejection> {
        // 1. Syntax and bounds.
        check_id("account id", account_id)?;
        check_id("PBX id", pbx_id)?;
        if licenses.len() > MAX_LICENSE_LINES {
            return Err(Rejection::invalid(format!(
                "a configuration may list at most {MAX_LICENSE_LINES} license types (got {})",
                licenses.len()
            )));
        }
        let mut seen = HashSet::with_capacity(licenses.len());
        for line in licenses {
            check_license_type(&line.license_type)?;
            if line.quantity == 0 || line.quantity > MAX_QUANTITY {
                return Err(Rejection::invalid(format!(
                    "quantity of {} must be between 1 and {MAX_QUANTITY} (got {}); remove the line to stop renting it",
                    line.license_type, line.quantity
                )));
            }
            if !seen.insert(line.license_type.as_str()) {
                return Err(Rejection::invalid(format!(
                    "license type {} appears twice in the configuration",
                    line.license_type
                )));
            }
        }
        // 2. Existence.
        let account = self.existing(account_id)?;
        // 3. Types against the list the PBX would freeze to (an argument error).
        let list = self.list_in_effect(at);
        if let (Some(list), false) = (list, licenses.is_empty()) {
            if let Some(missing) = licenses
                .iter()
                .find(|l| !list.entries.contains_key(l.license_type.as_str()))
            {
                return Err(Rejection::invalid(format!(
                    "license type {} is not rentable: it is not in price list version {} in effect",
                    missing.license_type, list.version
                )));
            }
        }
        // 4. State.
        if account.is_closed() {
            return Err(Rejection::precondition(format!(
                "account {account_id} is closed"
            )));
        }
        if let Some((owner, _)) = self.pbx_owner.get(pbx_id) {
            if self.accounts[owner as usize].account_id != account_id {
                return Err(Rejection::precondition(format!(
                    "PBX {pbx_id} belongs to another account; a PBX never changes account"
                )));
            }
        } else if self.maintenance.is_purchased(pbx_id) {
            return Err(Rejection::precondition(format!(
                "PBX {pbx_id} is a purchased PBX (RegisterPbx): it cannot rent licenses; a PBX is either rented or purchased, never both"
            )));
        }
        let mut body = EventBody::ConfigChanged {
            account_id: account_id.into(),
            pbx_id: pbx_id.into(),
            licenses: licenses.iter().cloned().collect(),
            firmware_major,
            hosting,
            price_version: list.map(|l| l.version),
            warnings: Vec::new(),
        };
        if licenses.is_empty() {
            return Ok(body);
        }
        let Some(list) = list else {
            return Err(Rejection::precondition(NO_LIST_YET));
        };
        if firmware_major < MIN_FIRMWARE_MAJOR {
            return Err(Rejection::precondition(format!(
                "firmware {firmware_major} cannot rent licenses: rental needs firmware {MIN_FIRMWARE_MAJOR}r1 or later"
            )));
        }
        let (_, new_cost) = self
            .prices
            .price(licenses, list.version)
            .map_err(|why| match why {
                Unpriced::NoList => Rejection::precondition(NO_LIST_YET),
                Unpriced::Missing(t) => {
                    Rejection::invalid(format!("license type {t} is not rentable"))
                }
            })?;
        let old_cost = account.pbx(pbx_id).map_or(Nano::ZERO, |p| p.monthly_cost);
        let before = account.configured_rate;
        let after = Nano(before.0 - old_cost.0 + new_cost.0);
        if after > MAX_ACCOUNT_MONTHLY_RATE {
            return Err(Rejection::precondition(format!(
                "the account's monthly rate would be {after} iSC, above the limit of {MAX_ACCOUNT_MONTHLY_RATE} iSC"
            )));
        }
        if after > before {
            if account.suspended_at(at) {
                return Err(Rejection::precondition(format!(
                    "account {account_id} is suspended (credit used up): top up before raising its rented configuration"
                )));
            }
            let balance = account.balance_at(at);
            if balance.is_zero() {
                return Err(Rejection::precondition(format!(
                    "account {account_id} has no credit: top up before raising its rented configuration"
                )));
            }
            let runtime = seconds_to_deplete(balance, after);
            let needed = self.policy.min_activation_runtime_s;
            if runtime < needed {
                return Err(Rejection::precondition(format!(
                    "insufficient credit: the balance of {balance} iSC pays only {runtime} s of the new monthly rate of {after} iSC, the minimum is {needed} s"
                )));
            }
        }
        // 5. License-model rules of the list the PBX freezes to, after every
        //    check above (spec §11 `hosting`); warnings are recorded, not re-judged.
        let lines: Vec<(&str, u32)> = licenses
            .iter()
            .map(|l| (l.license_type.as_str(), l.quantity))
            .collect();
        let found = list
            .catalogue
            .check(&lines, firmware_major, hosting)
            .map_err(|v| Rejection::precondition(v.message))?;
        if let EventBody::ConfigChanged { warnings, .. } = &mut body {
            *warnings = found.into_iter().map(|w| w.message).collect();
        }
        Ok(body)
    }

    /// Folds one stored record into the state and reports the notices the
    /// event made due. Fails only on a log that contradicts itself (tampered
    /// or corrupt); `decide`'s events never do.
    pub fn apply(&mut self, seq: u64, ev: &Event) -> Result<Applied, ApplyError> {
        let mut notices = Vec::new();
        let hints = self.hints(ev);
        let receipt = self.apply_inner::<true>(seq, ev, hints, Some(&mut notices))?;
        Ok(Applied { receipt, notices })
    }

    /// The same fold without notices: what replay uses (no allocation for
    /// them). It does not keep the notice schedule: a built one is dropped
    /// (rebuilt from the state when next asked).
    pub fn apply_quiet(&mut self, seq: u64, ev: &Event) -> Result<Receipt, ApplyError> {
        self.due.forget();
        let hints = self.hints(ev);
        self.apply_inner::<false>(seq, ev, hints, None)
    }

    /// Stage 1 of an event's fold: the hashes its ids probe by.
    #[inline]
    fn hints(&self, ev: &Event) -> Hints {
        let mut hints = Hints::default();
        if let Some(id) = ev.account_id() {
            hints.account_hash = self.account_index.hash(id);
        }
        match &ev.body {
            EventBody::ConfigChanged { pbx_id, .. } => hints.pbx_hash = self.pbx_owner.hash(pbx_id),
            EventBody::ToppedUp { activation_key, .. } => {
                hints.key_tag = self.keys.tag(activation_key)
            }
            _ => {}
        }
        hints
    }

    /// `LIVE`: `apply`, which keeps the notice schedule; otherwise the
    /// quiet fold, compiled without it.
    fn apply_inner<const LIVE: bool>(
        &mut self,
        seq: u64,
        ev: &Event,
        hints: Hints,
        notices: Option<&mut Vec<Notice>>,
    ) -> Result<Receipt, ApplyError> {
        if seq != self.last_seq + 1 {
            return Err(ApplyError(format!(
                "record {seq} follows record {}: sequence is not dense",
                self.last_seq
            )));
        }
        if ev.at < self.last_at {
            return Err(ApplyError(format!(
                "record {seq} at {} is earlier than the previous record at {}",
                ev.at, self.last_at
            )));
        }
        let receipt = match self.apply_body::<LIVE>(seq, ev, hints, notices) {
            Ok(receipt) => receipt,
            Err(e) => {
                // The state may be half-updated: the schedule is rebuilt
                // from it when next asked.
                self.due.forget();
                return Err(e);
            }
        };
        self.last_seq = seq;
        self.last_at = ev.at;
        Ok(receipt)
    }

    fn apply_body<const LIVE: bool>(
        &mut self,
        seq: u64,
        ev: &Event,
        hints: Hints,
        notices: Option<&mut Vec<Notice>>,
    ) -> Result<Receipt, ApplyError> {
        let at = ev.at;
        let (account_id, pbx_id) = match &ev.body {
            EventBody::SupportCalendarSet { .. } => {
                self.sla.apply(at, &ev.body)?;
                return Ok(Receipt {
                    seq,
                    at,
                    balance: None,
                });
            }
            body if body.is_incident_fact() => {
                let account_id = ev.account_id().unwrap_or_default();
                let index = hints
                    .account
                    .or_else(|| {
                        self.account_index
                            .get_hashed(hints.account_hash, account_id)
                    })
                    .ok_or_else(|| ApplyError(format!("account {account_id} does not exist")))?;
                let account = &self.accounts[index as usize];
                if matches!(body, EventBody::IncidentReported { .. }) && account.is_closed() {
                    return Err(ApplyError(format!(
                        "incident reported on closed account {account_id}"
                    )));
                }
                let balance = Some(account.balance_at(at.max(account.since)));
                let refile = LIVE && self.due.get_mut().is_some();
                let incident_id = ev_incident_id(body);
                let before = match refile.then(|| self.sla.slot_of(incident_id)) {
                    Some(Some(i)) => self.sla.live_due(i),
                    _ => Default::default(),
                };
                let made_due = self.sla.apply(at, body)?;
                if refile {
                    if let (Some(due), Some(i)) =
                        (self.due.get_mut(), self.sla.slot_of(incident_id))
                    {
                        due.refile_incident(i, &before, &self.sla.live_due(i));
                    }
                }
                if let (Some(out), false) = (notices, made_due.is_empty()) {
                    let inc = self
                        .sla
                        .incident(ev_incident_id(body))
                        .ok_or_else(|| ApplyError("an applied incident is missing".into()))?;
                    out.extend(made_due.iter().map(|m| super::sla::book::notice_of(inc, m)));
                }
                return Ok(Receipt { seq, at, balance });
            }
            EventBody::ServiceCreditGranted { account_id, .. } => {
                self.sla.apply(at, &ev.body)?;
                (account_id, None)
            }
            EventBody::PriceListPublished(list) => {
                self.prices.insert(list.clone())?;
                return Ok(Receipt {
                    seq,
                    at,
                    balance: None,
                });
            }
            EventBody::PriceListPublishedExt { list, ext } => {
                self.prices.insert_with_ext(list.clone(), ext.clone())?;
                return Ok(Receipt {
                    seq,
                    at,
                    balance: None,
                });
            }
            EventBody::AccountOpened { account_id } => {
                if hints.account.is_some()
                    || self
                        .account_index
                        .get_hashed(hints.account_hash, account_id)
                        .is_some()
                {
                    return Err(ApplyError(format!("account {account_id} is opened twice")));
                }
                let index = u32::try_from(self.accounts.len())
                    .map_err(|_| ApplyError("too many accounts".into()))?;
                self.account_index
                    .insert_hashed(hints.account_hash, account_id, index);
                self.accounts.push(Account::open(account_id, at));
                return Ok(Receipt {
                    seq,
                    at,
                    balance: Some(Nano::ZERO),
                });
            }
            EventBody::ConfigChanged {
                account_id, pbx_id, ..
            } => (account_id, Some(pbx_id)),
            EventBody::ToppedUp { account_id, .. }
            | EventBody::AccountClosed { account_id, .. }
            | EventBody::DeviceRegistered { account_id, .. }
            | EventBody::DeviceStatusSet { account_id, .. }
            | EventBody::PbxRegistered { account_id, .. }
            | EventBody::PlanBought { account_id, .. }
            | EventBody::FirmwareUpgraded { account_id, .. } => (account_id, None),
            EventBody::IncidentReported { .. }
            | EventBody::IncidentResponded { .. }
            | EventBody::IncidentUpdated { .. }
            | EventBody::IncidentResolved { .. }
            | EventBody::IncidentPriorityChanged { .. } => {
                return Err(ApplyError("incident facts are folded above".into()))
            }
        };
        let index = hints
            .account
            .or_else(|| {
                self.account_index
                    .get_hashed(hints.account_hash, account_id)
            })
            .ok_or_else(|| ApplyError(format!("account {account_id} does not exist")))?;
        let account = &mut self.accounts[index as usize];
        let mut slot = PbxSlot::Lookup;
        if let Some(pbx_id) = pbx_id {
            let owner = hints
                .pbx
                .or_else(|| self.pbx_owner.get_hashed(hints.pbx_hash, pbx_id));
            match owner {
                Some((owner, _)) if owner != index => {
                    return Err(ApplyError(format!(
                        "PBX {pbx_id} is bound to another account"
                    )));
                }
                Some((_, at_slot)) => slot = PbxSlot::Known(at_slot as usize),
                None => {
                    if self.maintenance.is_purchased(pbx_id) {
                        return Err(ApplyError(format!(
                            "PBX {pbx_id} is purchased and cannot rent licenses"
                        )));
                    }
                    let at_slot = u32::try_from(account.pbxs.len())
                        .map_err(|_| ApplyError("too many PBXs".into()))?;
                    self.pbx_owner
                        .insert_hashed(hints.pbx_hash, pbx_id, (index, at_slot));
                    slot = PbxSlot::New;
                }
            }
        }
        // Only a breakpoint changes when the account's notices fall due.
        let refile = LIVE && !ev.body.is_passive() && self.due.get_mut().is_some();
        let before = if refile {
            account.due_instants(&self.policy)
        } else {
            Default::default()
        };
        match notices {
            Some(out) => {
                let mut obs = AtEvent {
                    account_id,
                    notices: out,
                };
                account.apply_at(at, &ev.body, slot, &self.prices, &self.policy, &mut obs)?;
            }
            None => account.apply_at(at, &ev.body, slot, &self.prices, &self.policy, &mut Quiet)?,
        }
        if let (true, Some(due)) = (refile, self.due.get_mut()) {
            due.refile_account(index, &before, &account.due_instants(&self.policy));
        }
        let balance = if ev.body.is_passive() {
            // Not a breakpoint: the account was not accrued to `at`.
            account.balance_at(at)
        } else {
            account.balance
        };
        let receipt = Receipt {
            seq,
            at,
            balance: Some(balance),
        };
        match &ev.body {
            EventBody::ToppedUp {
                activation_key,
                amount,
                ..
            } => {
                let used = KeyUse {
                    account: index,
                    amount: *amount,
                    receipt,
                };
                if !self.keys.insert_tagged(hints.key_tag, activation_key, used) {
                    return Err(ApplyError(format!(
                        "activation key {activation_key} is redeemed twice"
                    )));
                }
            }
            EventBody::DeviceRegistered { .. } | EventBody::DeviceStatusSet { .. } => {
                self.devices.apply(index, at, &ev.body, receipt)?
            }
            EventBody::PbxRegistered { pbx_id, .. } | EventBody::PlanBought { pbx_id, .. } => {
                let expiring = |m: &Maintenance| m.pbx(pbx_id).map(|p| p.expiring_due());
                let refile = LIVE && self.due.get_mut().is_some();
                let before = if refile {
                    expiring(&self.maintenance)
                } else {
                    None
                };
                self.maintenance.apply(index, at, &ev.body, receipt)?;
                if let (true, Some(due)) = (refile, self.due.get_mut()) {
                    due.refile_expiring(pbx_id, before, expiring(&self.maintenance));
                }
            }
            EventBody::FirmwareUpgraded { .. } => {
                self.maintenance.apply(index, at, &ev.body, receipt)?
            }
            _ => {}
        }
        Ok(receipt)
    }

    /// Time-driven notices (reminders, depletion, maintenance expiring, SLA
    /// warnings and breaches) due in `(t1, t2]` with no further events;
    /// `t1 >= last_at`. One account, or all of them.
    ///
    /// For all of them, only the sources the notice schedule (`domain::due`)
    /// files in `(t1, t2]` are visited: O(notices due + log n). The notices
    /// are those of [`Ledger::notices_between_scan`] (the definition), in
    /// the same order; a window starting before `last_at` gets the scan.
    pub fn notices_between(
        &self,
        account_id: Option<&str>,
        t1: UnixSeconds,
        t2: UnixSeconds,
    ) -> Vec<Notice> {
        if account_id.is_some() || t1 < self.last_at {
            return self.notices_between_scan(account_id, t1, t2);
        }
        let due = self.due.get_or_build(self);
        let mut out = Vec::new();
        let mut raw = Vec::new();
        // The scan's order of sources (accounts, PBXs, incidents, each
        // ascending), so the stable sort breaks ties alike.
        for i in due.accounts_due(t1, t2) {
            self.push_pending(&self.accounts[i as usize], t1, t2, &mut raw, &mut out);
        }
        for pbx_id in due.pbxs_due(t1, t2) {
            if let Some(p) = self.maintenance.pbx(pbx_id) {
                self.expiring_of(p, t1, t2, &mut out);
            }
        }
        for i in due.incidents_due(t1, t2) {
            self.sla.live_notices_of(i, t1, t2, &mut out);
        }
        sort_notices(&mut out);
        debug_assert_eq!(
            out,
            self.notices_between_scan(None, t1, t2),
            "the notice schedule disagrees with the scan"
        );
        out
    }

    /// Forces the notice schedule to be built now (the writer does it at
    /// start, so the first clock tick does not pay for it).
    pub fn prepare_notices(&self) {
        self.due.get_or_build(self);
    }

    /// Whether the notice schedule `apply` kept equals one built afresh
    /// from the state (tests; `true` while it is not built).
    #[doc(hidden)]
    pub fn notice_schedule_is_exact(&self) -> bool {
        self.due
            .get()
            .is_none_or(|due| *due == super::due::DueIndex::build(self))
    }

    /// One account's time-driven reminders and depletion in `(t1, t2]`.
    fn push_pending(
        &self,
        account: &Account,
        t1: UnixSeconds,
        t2: UnixSeconds,
        raw: &mut Vec<(NoticeKind, UnixSeconds, Option<i64>)>,
        out: &mut Vec<Notice>,
    ) {
        raw.clear();
        account.pending_notices(&self.policy, t1, t2, raw);
        out.extend(raw.iter().map(|(kind, at, threshold_s)| Notice {
            account_id: account.account_id.to_string(),
            at: *at,
            kind: *kind,
            threshold_s: *threshold_s,
            pbx_id: None,
            sla: None,
        }));
    }

    /// [`Ledger::notices_between`] by its definition: every account, PBX
    /// and open incident asked, O(accounts). The oracle of the schedule's
    /// tests and benches.
    pub fn notices_between_scan(
        &self,
        account_id: Option<&str>,
        t1: UnixSeconds,
        t2: UnixSeconds,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        let mut raw = Vec::new();
        let mut push = |account: &Account| self.push_pending(account, t1, t2, &mut raw, &mut out);
        match account_id {
            Some(id) => {
                if let Some(index) = self.account_index.get(id) {
                    push(&self.accounts[index as usize]);
                    self.expiring_between(Some(index), t1, t2, &mut out);
                }
            }
            None => {
                self.accounts.iter().for_each(&mut push);
                self.expiring_between(None, t1, t2, &mut out);
            }
        }
        self.sla.notices_between(account_id, t1, t2, true, &mut out);
        sort_notices(&mut out);
        out
    }

    /// The earliest time-driven notice strictly after `t` over all accounts.
    pub fn next_due_after(&self, t: UnixSeconds) -> Option<UnixSeconds> {
        self.accounts
            .iter()
            .filter_map(|a| a.next_due_after(&self.policy, t))
            .chain(self.next_expiring_after(t))
            .chain(self.sla.next_due_after(t))
            .min()
    }

    /// The plain fold of a log from empty (used by replay and tests).
    pub fn replay<'a>(
        policy: Policy,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Ledger, ApplyError> {
        let mut ledger = Ledger::new(policy);
        ledger.apply_quiet_all(events.into_iter().zip(1..).map(|(ev, seq)| (seq, ev)))?;
        Ok(ledger)
    }

    /// [`Ledger::apply_quiet`] of each `(seq, event)` in turn (so the same
    /// density and order checks), software-pipelined in three stages: an
    /// event's ids are hashed and their id-map slots prefetched
    /// [`AHEAD_SLOTS`] events before it is folded; [`AHEAD_STATE`] events
    /// before, its account and PBX are looked up (slots cached by now) and
    /// their state prefetched; then it is folded with what was found. Each
    /// id is hashed and looked up once. A lookup that found nothing is
    /// redone at fold time (the events in between may create the account
    /// or the PBX); one that found something stays true, since an account's
    /// index and a PBX's place never change. Like `apply_quiet`, it drops
    /// a built notice schedule.
    pub fn apply_quiet_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = (u64, &'a Event)>,
    ) -> Result<(), ApplyError> {
        // Not kept by the fold (it pays nothing for it): rebuilt when asked.
        self.due.forget();
        let mut records = records.into_iter();
        let mut window: std::collections::VecDeque<(u64, &Event, Hints)> =
            std::collections::VecDeque::with_capacity(AHEAD_SLOTS + 1);
        loop {
            while window.len() <= AHEAD_SLOTS {
                let Some((seq, ev)) = records.next() else {
                    break;
                };
                let hints = self.hints(ev);
                self.prefetch_slots(&hints);
                window.push_back((seq, ev, hints));
            }
            if let Some((_, ev, hints)) = window.get_mut(AHEAD_STATE) {
                self.resolve(ev, hints);
            }
            let Some((seq, ev, hints)) = window.pop_front() else {
                return Ok(());
            };
            self.apply_inner::<false>(seq, ev, hints, None)?;
        }
    }

    /// Stage 1 of the pipeline: the id-map slots the event's ids probe.
    #[inline]
    fn prefetch_slots(&self, hints: &Hints) {
        self.account_index.prefetch_hashed(hints.account_hash);
        if hints.pbx_hash != 0 {
            self.pbx_owner.prefetch_hashed(hints.pbx_hash);
        }
        if hints.key_tag != 0 {
            self.keys.prefetch_tagged(hints.key_tag);
        }
    }

    /// Stage 2: finds the account and the PBX (their slots are cached by
    /// now) and prefetches their state. Ids not found are left to the fold.
    #[inline]
    fn resolve(&self, ev: &Event, hints: &mut Hints) {
        let Some(id) = ev.account_id() else { return };
        hints.account = self.account_index.get_hashed(hints.account_hash, id);
        if let Some(account) = hints.account.and_then(|i| self.accounts.get(i as usize)) {
            // The header; a top-up also reads every PBX (its frozen list),
            // so the whole account (`lines` stops at its size).
            let lines = match ev.body {
                EventBody::ToppedUp { .. } => usize::MAX,
                _ => 3,
            };
            prefetch::lines(account, lines);
        }
        if let EventBody::ConfigChanged { pbx_id, .. } = &ev.body {
            hints.pbx = self.pbx_owner.get_hashed(hints.pbx_hash, pbx_id);
            if let Some(pbx) = hints.pbx.and_then(|(a, slot)| {
                self.accounts
                    .get(a as usize)
                    .and_then(|acc| acc.pbxs.get(slot as usize))
            }) {
                prefetch::lines(pbx, 3);
            }
        }
    }
}

/// What the fold knows of an event's ids before folding it: the hashes
/// they probe by and, once looked up, where the account and the PBX are.
/// Found places stay true (accounts and PBX slots are never removed or
/// moved); `None` means "look it up when folding".
#[derive(Debug, Clone, Copy, Default)]
struct Hints {
    account_hash: u64,
    account: Option<u32>,
    pbx_hash: u64,
    pbx: Option<(u32, u32)>,
    key_tag: u32,
}

/// The fold's pipeline (see [`Ledger::apply_quiet_all`]): how many events
/// ahead the id-map slots, then the account and PBX state, are prefetched.
/// Measured with `cargo bench --bench fold`.
pub const AHEAD_SLOTS: usize = 8;
pub const AHEAD_STATE: usize = 4;

/// Folds one account's own events (in log order) into a fresh account,
/// reporting its timeline to `obs`; used for past views, statements and
/// notice history. Stops at events after `until`.
pub fn fold_account_events<O: Observer>(
    ledger: &Ledger,
    events: &[Event],
    account_id: &str,
    until: UnixSeconds,
    obs: &mut O,
) -> Result<Option<Account>, ApplyError> {
    let mut account: Option<Account> = None;
    for ev in events.iter().filter(|e| e.account_id() == Some(account_id)) {
        if ev.at > until {
            break;
        }
        match (&mut account, &ev.body) {
            (None, EventBody::AccountOpened { .. }) => {
                account = Some(Account::open(account_id, ev.at))
            }
            (Some(acc), body) => acc.apply(ev.at, body, &ledger.prices, &ledger.policy, obs)?,
            (None, _) => {
                return Err(ApplyError(format!(
                    "account {account_id} has events before it was opened"
                )))
            }
        }
    }
    Ok(account)
}

/// The order notices are published in (stable: ties keep their order).
fn sort_notices(out: &mut [Notice]) {
    out.sort_by(|a, b| {
        (
            a.at,
            &a.account_id,
            a.kind,
            std::cmp::Reverse(a.threshold_s),
            &a.pbx_id,
        )
            .cmp(&(
                b.at,
                &b.account_id,
                b.kind,
                std::cmp::Reverse(b.threshold_s),
                &b.pbx_id,
            ))
    });
}

/// The incident an incident fact is about.
fn ev_incident_id(body: &EventBody) -> &str {
    match body {
        EventBody::IncidentReported { incident_id, .. }
        | EventBody::IncidentResponded { incident_id, .. }
        | EventBody::IncidentUpdated { incident_id, .. }
        | EventBody::IncidentResolved { incident_id, .. }
        | EventBody::IncidentPriorityChanged { incident_id, .. }
        | EventBody::ServiceCreditGranted { incident_id, .. } => incident_id,
        _ => "",
    }
}
