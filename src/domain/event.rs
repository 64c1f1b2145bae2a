//! Commands (raw client input), events (the stored facts) and the small
//! values that travel with them: receipts, notices and the ledger policy.
//!
//! Storage contract: `EventBody` is encoded with bincode by variant index, so
//! variants and fields are only ever appended; a layout change adds a record
//! version in the store and an upcaster, never an in-place edit.

use super::devices::{Channel, DeviceStatus, SupportLevel};
use super::license_model::Catalogue;
use super::money::{Nano, UnixSeconds};
use super::prices::{PriceEntryInput, PriceList, PriceListExt, PriceListExtInput};
use super::sla::{SlaKpi, SupportCalendar};
use super::Hosting;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// One rented license type and how many of it.
#[derive(Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LicenseLine {
    /// Inline up to 24 bytes: decoding a stored event allocates nothing for it.
    pub license_type: CompactString,
    pub quantity: u32,
}

/// Hand-written so `clone_from` reuses the string buffer: replacing a PBX's
/// configuration on every change is the hottest copy of the fold.
impl Clone for LicenseLine {
    fn clone(&self) -> Self {
        LicenseLine {
            license_type: self.license_type.clone(),
            quantity: self.quantity,
        }
    }
    fn clone_from(&mut self, source: &Self) {
        self.license_type.clone_from(&source.license_type);
        self.quantity = source.quantity;
    }
}

/// What a client asks for. Everything in it is unvalidated; `decide` checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    OpenAccount {
        account_id: String,
    },
    ChangeConfig {
        account_id: String,
        pbx_id: String,
        licenses: Vec<LicenseLine>,
        firmware_major: u32,
        hosting: Hosting,
    },
    TopUp {
        account_id: String,
        activation_key: String,
        amount: String,
    },
    PublishPriceList {
        version: u32,
        effective_at: UnixSeconds,
        entries: Vec<PriceEntryInput>,
        /// License-model rules to record with the list; `None`: the built-in
        /// V13 catalogue.
        catalogue: Option<Catalogue>,
        /// Device models, maintenance plans, service credits (spec §14–§16);
        /// empty: the list has none (and is stored as a plain list).
        ext: PriceListExtInput,
    },
    CloseAccount {
        account_id: String,
    },
    /// Spec §14: a device of the account (a MAC or serial as `device_id`).
    RegisterDevice {
        account_id: String,
        device_id: String,
        model: String,
        channel: Channel,
        provisioned: bool,
    },
    /// Spec §14: the vendor lowers or restores a device's support.
    SetDeviceStatus {
        device_id: String,
        status: DeviceStatus,
        reason: String,
    },
    /// Spec §15: a purchased PBX, commissioned now.
    RegisterPbx {
        account_id: String,
        pbx_id: String,
        firmware_major: u32,
        firmware_minor: u32,
    },
    /// Spec §15: a maintenance plan, idempotent by `key`.
    BuyPlan {
        pbx_id: String,
        plan: String,
        key: String,
    },
    /// Spec §15: a purchased PBX changes release.
    UpgradeFirmware {
        pbx_id: String,
        firmware_major: u32,
        firmware_minor: u32,
    },
    /// An incident reported by the customer (spec §16); `priority` 1–4.
    ReportIncident {
        incident_id: String,
        account_id: String,
        priority: u32,
    },
    RespondIncident {
        incident_id: String,
    },
    UpdateIncident {
        incident_id: String,
    },
    ResolveIncident {
        incident_id: String,
    },
    ChangePriority {
        incident_id: String,
        priority: u32,
    },
    /// System command (the engine at start-up, from `--support-calendar`).
    SetSupportCalendar {
        calendar: SupportCalendar,
    },
    /// System command (the writer, when a breach with a configured credit
    /// falls due): records the grant once per (incident, KPI, occurrence).
    GrantServiceCredit {
        incident_id: String,
        kpi: SlaKpi,
        occurrence: u32,
    },
}

/// An accepted fact with the instant it takes effect. `seq` and the hash
/// chain belong to the store's record envelope, not to the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: UnixSeconds,
    pub body: EventBody,
}

/// The accepted commands, with what `decide` resolved at that instant (the
/// price-list version a contact froze), so a fold needs no other context.
///
/// Ids are inline strings and a configuration keeps two lines inline, so
/// decoding a typical stored event allocates nothing. Serde sees them as a
/// string and a sequence, exactly like `String` and `Vec`: the stored bytes
/// are those of record version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    AccountOpened {
        account_id: CompactString,
    },
    ConfigChanged {
        account_id: CompactString,
        pbx_id: CompactString,
        licenses: SmallVec<[LicenseLine; 2]>,
        firmware_major: u32,
        hosting: Hosting,
        /// The list this PBX froze to at this contact (`None`: none in effect).
        price_version: Option<u32>,
        /// License-model warnings found by `decide` under that list's
        /// catalogue (functions unavailable, seed 003); replay never re-judges.
        warnings: Vec<String>,
    },
    ToppedUp {
        account_id: CompactString,
        activation_key: CompactString,
        amount: Nano,
        /// The list every PBX of the account froze to at this contact.
        price_version: Option<u32>,
    },
    PriceListPublished(PriceList),
    AccountClosed {
        account_id: CompactString,
        /// The balance forfeited, recorded so an auditor sees it in the log.
        forfeited: Nano,
    },
    /// A price list with the sections added after record version 1
    /// (spec §14–§16). A list without them is stored as `PriceListPublished`.
    PriceListPublishedExt {
        list: PriceList,
        ext: PriceListExt,
    },
    /// Spec §14 (`devices`): with the support level and the provisioning fee
    /// `decide` resolved under the list in effect (`fee: None`: none applied).
    DeviceRegistered {
        account_id: CompactString,
        device_id: CompactString,
        model: CompactString,
        channel: Channel,
        provisioned: bool,
        support: SupportLevel,
        fee: Option<Nano>,
        price_version: Option<u32>,
    },
    DeviceStatusSet {
        account_id: CompactString,
        device_id: CompactString,
        status: DeviceStatus,
        reason: String,
    },
    /// Spec §15 (`maintenance`): commissioning with 3 months included.
    PbxRegistered {
        account_id: CompactString,
        pbx_id: CompactString,
        firmware_major: u32,
        firmware_minor: u32,
    },
    /// A plan paid from the account, with the coverage `[from, to)` it adds.
    PlanBought {
        account_id: CompactString,
        pbx_id: CompactString,
        plan: CompactString,
        key: CompactString,
        months: u32,
        price: Nano,
        from: UnixSeconds,
        to: UnixSeconds,
    },
    FirmwareUpgraded {
        account_id: CompactString,
        pbx_id: CompactString,
        firmware_major: u32,
        firmware_minor: u32,
    },
    // --- Service levels (spec §16). Each incident event carries the
    // incident's account (resolved by `decide`) for the per-account index.
    /// The support calendar in force from this record on.
    SupportCalendarSet {
        calendar: SupportCalendar,
    },
    IncidentReported {
        incident_id: CompactString,
        account_id: CompactString,
        priority: u8,
    },
    IncidentResponded {
        incident_id: CompactString,
        account_id: CompactString,
    },
    IncidentUpdated {
        incident_id: CompactString,
        account_id: CompactString,
    },
    IncidentResolved {
        incident_id: CompactString,
        account_id: CompactString,
    },
    IncidentPriorityChanged {
        incident_id: CompactString,
        account_id: CompactString,
        priority: u8,
    },
    /// A breach credited to the account: like a top-up, a contact (every
    /// PBX freezes to `price_version`) that reactivates a suspended account
    /// and starts a funding period, but its own statement line (`GRANT`).
    ServiceCreditGranted {
        account_id: CompactString,
        incident_id: CompactString,
        kpi: SlaKpi,
        occurrence: u32,
        amount: Nano,
        price_version: Option<u32>,
    },
}

impl EventBody {
    /// An account's event that moves no money: not a breakpoint (§6), the
    /// account's timeline does not see it.
    #[inline]
    pub fn is_passive(&self) -> bool {
        matches!(
            self,
            EventBody::DeviceRegistered { fee: None, .. }
                | EventBody::DeviceStatusSet { .. }
                | EventBody::PbxRegistered { .. }
                | EventBody::FirmwareUpgraded { .. }
        )
    }

    /// An incident fact: recorded on the account's index, but neither a
    /// contact nor a breakpoint of its timeline.
    #[inline]
    pub fn is_incident_fact(&self) -> bool {
        matches!(
            self,
            EventBody::IncidentReported { .. }
                | EventBody::IncidentResponded { .. }
                | EventBody::IncidentUpdated { .. }
                | EventBody::IncidentResolved { .. }
                | EventBody::IncidentPriorityChanged { .. }
        )
    }
}

impl Event {
    /// The account this event touches (`None` for price lists).
    #[inline]
    pub fn account_id(&self) -> Option<&str> {
        match &self.body {
            EventBody::AccountOpened { account_id }
            | EventBody::ConfigChanged { account_id, .. }
            | EventBody::ToppedUp { account_id, .. }
            | EventBody::AccountClosed { account_id, .. }
            | EventBody::DeviceRegistered { account_id, .. }
            | EventBody::DeviceStatusSet { account_id, .. }
            | EventBody::PbxRegistered { account_id, .. }
            | EventBody::PlanBought { account_id, .. }
            | EventBody::FirmwareUpgraded { account_id, .. }
            | EventBody::IncidentReported { account_id, .. }
            | EventBody::IncidentResponded { account_id, .. }
            | EventBody::IncidentUpdated { account_id, .. }
            | EventBody::IncidentResolved { account_id, .. }
            | EventBody::IncidentPriorityChanged { account_id, .. }
            | EventBody::ServiceCreditGranted { account_id, .. } => Some(account_id),
            EventBody::PriceListPublished(_)
            | EventBody::PriceListPublishedExt { .. }
            | EventBody::SupportCalendarSet { .. } => None,
        }
    }
}

/// The answer to an accepted command (spec §10 `Receipt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub seq: u64,
    pub at: UnixSeconds,
    /// Balance of the account right after the record; `None` for a price list.
    pub balance: Option<Nano>,
}

/// What `decide` concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Append this event; its receipt comes from `apply`.
    Append(Event),
    /// An idempotent top-up retry: answer the first receipt, record nothing.
    Retry(Receipt),
}

/// Kinds of notices told to watchers (spec §8 reminders, §12 notices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NoticeKind {
    Reminder,
    Depletion,
    Reactivation,
    /// Spec §15: a purchased PBX's coverage ends in 30 days.
    MaintenanceExpiring,
    /// One support hour before an incident's deadline (spec §16).
    SlaDeadline,
    /// An incident's deadline passed without its fact.
    SlaBreach,
}

/// What an SLA notice is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlaNotice {
    pub incident_id: String,
    pub kpi: SlaKpi,
    pub occurrence: u32,
    pub deadline: UnixSeconds,
    pub priority: u8,
}

/// A derived notice; computed by replay, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Notice {
    pub account_id: String,
    pub at: UnixSeconds,
    pub kind: NoticeKind,
    /// Set for reminders: the projected runtime threshold that was reached
    /// (and for `MaintenanceExpiring`: how long before the end it is told).
    pub threshold_s: Option<i64>,
    /// The PBX of a `MaintenanceExpiring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbx_id: Option<String>,
    /// Set for `SlaDeadline` and `SlaBreach`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaNotice>,
}

/// Continuous-use thresholds (spec §12): a cycle is a lowering raised back
/// within `max_gap_s`; `cycles` cycles within `window_s` flag the PBX.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceRule {
    pub max_gap_s: i64,
    pub cycles: usize,
    pub window_s: i64,
}

impl Default for ComplianceRule {
    fn default() -> Self {
        ComplianceRule {
            max_gap_s: 72 * 3600,
            cycles: 3,
            window_s: 30 * 86_400,
        }
    }
}

/// Most reminder thresholds (they are tracked in a bit set per funding period).
pub const MAX_REMINDER_THRESHOLDS: usize = 16;

/// Operator settings that shape decisions and derived facts. Part of the
/// ledger state, so a snapshot taken under other settings is detectable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// A rate rise needs the balance to cover this many seconds (0: any positive balance).
    pub min_activation_runtime_s: i64,
    /// Reminder thresholds in seconds of projected runtime, distinct, descending.
    pub reminder_thresholds_s: Vec<i64>,
    pub compliance: ComplianceRule,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_activation_runtime_s: 86_400,
            reminder_thresholds_s: vec![30 * 86_400, 7 * 86_400, 86_400],
            compliance: ComplianceRule::default(),
        }
    }
}

impl Policy {
    /// The longest reminder threshold (0 when there is none): no reminder
    /// falls due while more runtime than this is left.
    #[inline]
    pub fn longest_reminder_s(&self) -> i64 {
        self.reminder_thresholds_s
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Normalises the thresholds (descending, distinct, positive) and checks limits.
    pub fn normalized(mut self) -> Result<Policy, String> {
        if self.min_activation_runtime_s < 0 {
            return Err("min activation runtime must not be negative".into());
        }
        self.reminder_thresholds_s.sort_unstable_by(|a, b| b.cmp(a));
        self.reminder_thresholds_s.dedup();
        if self.reminder_thresholds_s.iter().any(|t| *t <= 0) {
            return Err("reminder thresholds must be positive durations".into());
        }
        if self.reminder_thresholds_s.len() > MAX_REMINDER_THRESHOLDS {
            return Err(format!(
                "at most {MAX_REMINDER_THRESHOLDS} reminder thresholds"
            ));
        }
        if self.compliance.cycles == 0
            || self.compliance.max_gap_s <= 0
            || self.compliance.window_s <= 0
        {
            return Err("compliance thresholds must be positive".into());
        }
        Ok(self)
    }
}
