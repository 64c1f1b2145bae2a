//! Devices and their one-time provisioning fee (spec §14, seed 000:
//! ALLOcloud's device utilization policy).
//!
//! Owns the device commands (`RegisterDevice`, `SetDeviceStatus`), their
//! events, the support levels of seed 000's table, the device registry of
//! the folded state and the `ListDevices` report. A device belongs to one
//! account forever. It is not a contact (§5) and never changes the rate;
//! only a provisioning fee touches the account's money, as a breakpoint
//! (the account accrues to the registration's instant first, then pays).

use super::account::ApplyError;
use super::error::Rejection;
use super::event::{Decision, EventBody};
use super::ids::check_id;
use super::ledger::Ledger;
use super::money::{Nano, UnixSeconds};
use super::prices::check_model;
use super::Receipt;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Longest reason of a status change, in bytes. Not in the spec: a line of
/// an operator's note.
pub const MAX_REASON_LEN: usize = 512;

/// Where a device was bought (seed 000 §4 "sales channel").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// Sourced from the platform vendor: natively provisioned.
    Vendor,
    /// Bought through another channel (an online store, another reseller).
    Other,
}

/// The support the vendor gives a device (seed 000 §4's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SupportLevel {
    /// A compatible device provided by the vendor.
    Full,
    /// A compatible device from another channel: the platform side only.
    PlatformOnly,
    /// A model not in the price list (a generic SIP device), or one found
    /// incompatible: best effort, no guarantee of service performance.
    BestEffort,
    /// A banned device: no access at all.
    None,
}

/// What the vendor has said about a device since its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceStatus {
    /// As registered: the support level its registration gave.
    Active,
    /// An "identical" device found with other firmware or hardware: best
    /// effort, provisioning stops, no refund.
    Incompatible,
    /// It interfered with the platform: no support, no access.
    Banned,
}

/// A registered device in the folded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Index of its account in the ledger (forever).
    pub account: u32,
    pub device_id: CompactString,
    pub model: CompactString,
    pub channel: Channel,
    /// As asked at registration (kept to recognise an identical retry).
    pub provisioned_asked: bool,
    /// The support level its registration gave.
    pub registered_support: SupportLevel,
    /// The provisioning fee charged at registration (`None`: no fee applied).
    pub fee: Option<Nano>,
    pub status: DeviceStatus,
    pub reason: String,
    pub registered_at: UnixSeconds,
    /// The receipt of the registration, answered to an identical retry.
    pub receipt: Receipt,
}

impl Device {
    /// The support level now: the registration's, lowered by a status.
    pub fn support(&self) -> SupportLevel {
        match self.status {
            DeviceStatus::Active => self.registered_support,
            DeviceStatus::Incompatible => SupportLevel::BestEffort,
            DeviceStatus::Banned => SupportLevel::None,
        }
    }

    /// Whether the platform provisions it now: a vendor device or one whose
    /// fee was paid, while its status is active.
    pub fn provisioned(&self) -> bool {
        self.status == DeviceStatus::Active
            && (self.registered_support == SupportLevel::Full || self.fee.is_some())
    }
}

/// Every registered device, by id and by account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Devices {
    by_id: BTreeMap<CompactString, Device>,
    by_account: BTreeSet<(u32, CompactString)>,
}

impl Devices {
    pub fn get(&self, device_id: &str) -> Option<&Device> {
        self.by_id.get(device_id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The devices of the account at index `account`, by device id.
    pub fn of_account(&self, account: u32) -> impl Iterator<Item = &Device> + '_ {
        self.by_account
            .range((account, CompactString::default())..)
            .take_while(move |(a, _)| *a == account)
            .filter_map(|(_, id)| self.by_id.get(id))
    }

    /// Folds a device event of the account at index `account`.
    pub(crate) fn apply(
        &mut self,
        account: u32,
        at: UnixSeconds,
        body: &EventBody,
        receipt: Receipt,
    ) -> Result<(), ApplyError> {
        match body {
            EventBody::DeviceRegistered {
                device_id,
                model,
                channel,
                provisioned,
                support,
                fee,
                ..
            } => {
                if self.by_id.contains_key(device_id.as_str()) {
                    return Err(ApplyError(format!(
                        "device {device_id} is registered twice"
                    )));
                }
                self.by_account.insert((account, device_id.clone()));
                self.by_id.insert(
                    device_id.clone(),
                    Device {
                        account,
                        device_id: device_id.clone(),
                        model: model.clone(),
                        channel: *channel,
                        provisioned_asked: *provisioned,
                        registered_support: *support,
                        fee: *fee,
                        status: DeviceStatus::Active,
                        reason: String::new(),
                        registered_at: at,
                        receipt,
                    },
                );
            }
            EventBody::DeviceStatusSet {
                device_id,
                status,
                reason,
                ..
            } => {
                let device = self
                    .by_id
                    .get_mut(device_id.as_str())
                    .filter(|d| d.account == account)
                    .ok_or_else(|| {
                        ApplyError(format!(
                            "status of device {device_id}, not registered to this account"
                        ))
                    })?;
                device.status = *status;
                device.reason.clone_from(reason);
            }
            _ => return Err(ApplyError("not a device event".into())),
        }
        Ok(())
    }
}

/// One line of `ListDevices` (spec §14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub device_id: String,
    pub model: String,
    pub channel: Channel,
    pub support: SupportLevel,
    pub status: DeviceStatus,
    pub provisioned: bool,
    /// The provisioning fee charged (0 when none was).
    pub fee: Nano,
    pub registered_at: UnixSeconds,
    pub reason: String,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> DeviceView {
        DeviceView {
            device_id: d.device_id.to_string(),
            model: d.model.to_string(),
            channel: d.channel,
            support: d.support(),
            status: d.status,
            provisioned: d.provisioned(),
            fee: d.fee.unwrap_or(Nano::ZERO),
            registered_at: d.registered_at,
            reason: d.reason.clone(),
        }
    }
}

impl Ledger {
    /// `RegisterDevice` (spec §14), checked in §11's order: syntax, the
    /// account's existence, an earlier registration of the id (the same
    /// fields: the first receipt; others: `ALREADY_EXISTS`), then state.
    pub(crate) fn decide_register_device(
        &self,
        account_id: &str,
        device_id: &str,
        model: &str,
        channel: Channel,
        provisioned: bool,
        at: UnixSeconds,
    ) -> Result<Decision, Rejection> {
        check_id("account id", account_id)?;
        check_id("device id", device_id)?;
        check_model(model)?;
        let account = self.existing(account_id)?;
        if let Some(d) = self.devices.get(device_id) {
            let same = self.accounts[d.account as usize].account_id == account_id
                && d.model == model
                && d.channel == channel
                && d.provisioned_asked == provisioned;
            if same {
                return Ok(Decision::Retry(d.receipt));
            }
            return Err(Rejection::exists(format!(
                "device {device_id} is already registered (record {}) with other fields; a device belongs to one account forever",
                d.receipt.seq
            )));
        }
        if account.is_closed() {
            return Err(Rejection::precondition(format!(
                "account {account_id} is closed"
            )));
        }
        let list = self.list_in_effect(at);
        let compatible = self.ext_in_effect(at).device(model);
        let (support, fee) = match (compatible, channel) {
            (Some(_), Channel::Vendor) => (SupportLevel::Full, None),
            (Some(m), Channel::Other) => (
                SupportLevel::PlatformOnly,
                provisioned.then_some(m.provisioning_fee),
            ),
            (None, _) if provisioned => {
                let listed = match list {
                    Some(l) => format!("price list version {}", l.version),
                    None => "any price list in effect".to_string(),
                };
                return Err(Rejection::precondition(format!(
                    "device model {model} is not in {listed}: a device of an incompatible model gets best-effort support and is never provisioned"
                )));
            }
            (None, _) => (SupportLevel::BestEffort, None),
        };
        if let Some(fee) = fee {
            let balance = account.balance_at(at);
            if fee > balance {
                return Err(Rejection::precondition(format!(
                    "insufficient credit: the provisioning fee of {model} is {fee} iSC and the balance is {balance} iSC"
                )));
            }
        }
        Ok(Decision::Append(super::event::Event {
            at,
            body: EventBody::DeviceRegistered {
                account_id: account_id.into(),
                device_id: device_id.into(),
                model: model.into(),
                channel,
                provisioned,
                support,
                fee,
                price_version: list.map(|l| l.version),
            },
        }))
    }

    /// `SetDeviceStatus` (spec §14): the vendor marks a device incompatible,
    /// bans it or restores it. No refund of a fee paid.
    pub(crate) fn decide_device_status(
        &self,
        device_id: &str,
        status: DeviceStatus,
        reason: &str,
    ) -> Result<EventBody, Rejection> {
        check_id("device id", device_id)?;
        if reason.len() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
            return Err(Rejection::invalid(format!(
                "reason must be at most {MAX_REASON_LEN} bytes without control characters"
            )));
        }
        let device = self
            .devices
            .get(device_id)
            .ok_or_else(|| Rejection::not_found(format!("device {device_id} is not registered")))?;
        let account = &self.accounts[device.account as usize];
        if account.is_closed() {
            return Err(Rejection::precondition(format!(
                "account {} of device {device_id} is closed",
                account.account_id
            )));
        }
        Ok(EventBody::DeviceStatusSet {
            account_id: account.account_id.clone(),
            device_id: device_id.into(),
            status,
            reason: reason.to_owned(),
        })
    }

    /// `ListDevices` (spec §14): every device of the account, by id.
    pub fn list_devices(&self, account_id: &str) -> Result<Vec<DeviceView>, Rejection> {
        check_id("account id", account_id)?;
        let index = self
            .account_index
            .get(account_id)
            .ok_or_else(|| Rejection::not_found(format!("account {account_id} does not exist")))?;
        Ok(self
            .devices
            .of_account(index)
            .map(DeviceView::from)
            .collect())
    }

    /// The registry of devices.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }
}
