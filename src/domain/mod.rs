//! The pure domain: everything that turns accepted commands into balances.
//!
//! No I/O, no clock, no async: instants come in as arguments. Modules:
//! - [`money`]: `Nano` (i128 nano-iSC), decimal parsing, rounding, bounds.
//! - [`ids`]: identifier syntax and input limits.
//! - [`prices`]: price lists, graduated tiers, their validation.
//! - [`event`]: commands, events (the stored facts), receipts, notices, policy.
//! - [`account`]: one account's timeline: accrual, depletion, reminders.
//! - [`ledger`]: `decide` and `apply` over the whole ledger.
//! - `due`: the notice schedule, when each account, purchased PBX and open
//!   incident next has a time-driven notice due (derived, kept by `apply`).
//! - [`keys`]: the redeemed activation keys, laid out for a fast fold.
//! - [`license_model`]: the innovaphone V13 license rules as a versioned
//!   catalogue recorded with each price list (seed 003).
//! - [`devices`]: devices, support levels, provisioning fees (§14, seed 000).
//! - [`maintenance`]: purchased PBXs, maintenance plans, upgrade gating
//!   (§15, seed 002).
//! - [`report`]: views, statements, notice history, compliance report.
//! - [`sla`]: incidents on a support-hours clock, the SLA report and
//!   service credits (seed 004).

use serde::{Deserialize, Serialize};

pub mod account;
pub mod chunked;
pub mod devices;
mod due;
pub mod error;
pub mod event;
pub mod idmap;
pub mod ids;
pub mod keys;
pub mod ledger;
pub mod license_model;
pub mod maintenance;
pub mod money;
mod prefetch;
pub mod prices;
pub mod report;
pub mod sim;
pub mod sla;
pub mod typenames;

pub use account::{Account, ApplyError, Cycle, Observer, Pbx, PriceBook};
pub use error::{Code, Rejection};
pub use event::{
    Command, ComplianceRule, Decision, Event, EventBody, LicenseLine, Notice, NoticeKind, Policy,
    Receipt, SlaNotice,
};
pub use ledger::{Applied, Ledger};
pub use money::{Nano, UnixSeconds, SECONDS_PER_MONTH};
pub use prices::{PriceEntryInput, PriceList, Tier, TierInput};
pub use report::{
    account_view_at, notices_history, statement, AccountState, AccountView, ComplianceReport,
    LineKind, Statement, StatementLine,
};

/// Where the PBX runs (spec §11 `hosting`). It does not change billing; it
/// feeds the license-model rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Hosting {
    /// On an innovaphone gateway (the default).
    #[default]
    Gateway,
    /// On an IPVA (virtual appliance).
    Ipva,
}
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_due;
#[cfg(test)]
mod tests_policies;
