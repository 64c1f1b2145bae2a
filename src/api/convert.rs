//! Proto ↔ domain conversion, all in one place. Requests become domain
//! commands without validating their content (that is `Ledger::decide`'s
//! job, so replay and live agree); only what the domain cannot express is
//! checked here: unknown enum values and repeated fields so long that merely
//! copying them would be wasteful.

use tonic::Status;

use super::pb;
use crate::domain::devices::{Channel, DeviceStatus, DeviceView, SupportLevel};
use crate::domain::ids::{MAX_LICENSE_LINES, MAX_PRICE_ENTRIES, MAX_TIERS};
use crate::domain::license_model::Catalogue;
use crate::domain::maintenance::MaintenanceView;
use crate::domain::prices::{
    DeviceModelInput, MaintenanceInput, MaintenancePlanInput, PriceListExtInput,
    ServiceCreditInput, MAX_DEVICE_MODELS, MAX_PLANS,
};
use crate::domain::sla::{SlaKpi, SlaReport};
use crate::domain::{
    AccountState, AccountView, Command, ComplianceReport, Hosting, LicenseLine, LineKind, Nano,
    Notice, NoticeKind, PriceEntryInput, Receipt, Statement, TierInput,
};

/// Largest catalogue accepted in a request (the decoding limit is 4 MiB;
/// a full catalogue of 256 types and 256 rules is far below this).
pub const MAX_CATALOGUE_BYTES: usize = 1024 * 1024;

fn too_many(what: &str, got: usize, max: usize) -> Status {
    Status::invalid_argument(format!(
        "too many {what}: {got} given, at most {max} allowed"
    ))
}

/// `OpenAccount` → command.
pub fn open_account(r: pb::OpenAccountRequest) -> Command {
    Command::OpenAccount {
        account_id: r.account_id,
    }
}

/// `CloseAccount` → command.
pub fn close_account(r: pb::CloseAccountRequest) -> Command {
    Command::CloseAccount {
        account_id: r.account_id,
    }
}

/// `TopUp` → command.
pub fn top_up(r: pb::TopUpRequest) -> Command {
    Command::TopUp {
        account_id: r.account_id,
        activation_key: r.activation_key,
        amount: r.amount,
    }
}

/// `ChangeConfig` → command; rejects unknown `hosting` values.
pub fn change_config(r: pb::ChangeConfigRequest) -> Result<Command, Status> {
    if r.licenses.len() > MAX_LICENSE_LINES {
        return Err(too_many(
            "license lines",
            r.licenses.len(),
            MAX_LICENSE_LINES,
        ));
    }
    let hosting = match pb::Hosting::try_from(r.hosting) {
        Ok(pb::Hosting::Gateway) => Hosting::Gateway,
        Ok(pb::Hosting::Ipva) => Hosting::Ipva,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown hosting value {} (expected HOSTING_GATEWAY or HOSTING_IPVA)",
                r.hosting
            )))
        }
    };
    Ok(Command::ChangeConfig {
        account_id: r.account_id,
        pbx_id: r.pbx_id,
        licenses: r
            .licenses
            .into_iter()
            .map(|l| LicenseLine {
                license_type: l.license_type.into(),
                quantity: l.quantity,
            })
            .collect(),
        firmware_major: r.firmware_major,
        hosting,
    })
}

/// `PublishPriceList` → command.
pub fn publish_price_list(r: pb::PublishPriceListRequest) -> Result<Command, Status> {
    if r.entries.len() > MAX_PRICE_ENTRIES {
        return Err(too_many(
            "price-list entries",
            r.entries.len(),
            MAX_PRICE_ENTRIES,
        ));
    }
    if let Some(e) = r.entries.iter().find(|e| e.tiers.len() > MAX_TIERS) {
        return Err(Status::invalid_argument(format!(
            "too many tiers for {:?}: {} given, at most {MAX_TIERS} allowed",
            e.license_type.chars().take(64).collect::<String>(),
            e.tiers.len()
        )));
    }
    if r.catalogue_toml.len() > MAX_CATALOGUE_BYTES {
        return Err(Status::invalid_argument(format!(
            "catalogue of {} bytes is larger than the limit of {MAX_CATALOGUE_BYTES}",
            r.catalogue_toml.len()
        )));
    }
    let catalogue = if r.catalogue_toml.is_empty() {
        None
    } else {
        Some(Catalogue::from_toml(&r.catalogue_toml).map_err(Status::invalid_argument)?)
    };
    let ext = price_list_ext(r.devices, r.maintenance, r.service_credits)?;
    Ok(Command::PublishPriceList {
        catalogue,
        ext,
        version: r.version,
        effective_at: r.effective_at,
        entries: r
            .entries
            .into_iter()
            .map(|e| PriceEntryInput {
                license_type: e.license_type,
                tiers: e
                    .tiers
                    .into_iter()
                    .map(|t| TierInput {
                        from_qty: t.from_qty,
                        monthly_price: t.monthly_price,
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// The extension sections of `PublishPriceList` → domain input; rejects
/// unknown KPI values and lists too long to copy.
fn price_list_ext(
    devices: Vec<pb::DeviceModel>,
    maintenance: Option<pb::MaintenanceTerms>,
    credits: Vec<pb::ServiceCredit>,
) -> Result<PriceListExtInput, Status> {
    if devices.len() > MAX_DEVICE_MODELS {
        return Err(too_many("device models", devices.len(), MAX_DEVICE_MODELS));
    }
    if let Some(m) = &maintenance {
        if m.plans.len() > MAX_PLANS {
            return Err(too_many("maintenance plans", m.plans.len(), MAX_PLANS));
        }
    }
    // Four priorities × three KPIs.
    const MAX_CREDITS: usize = 12;
    if credits.len() > MAX_CREDITS {
        return Err(too_many("service credits", credits.len(), MAX_CREDITS));
    }
    let service_credits = credits
        .into_iter()
        .map(|c| {
            let kpi = match pb::SlaKpi::try_from(c.kpi) {
                Ok(pb::SlaKpi::Response) => SlaKpi::Response,
                Ok(pb::SlaKpi::Update) => SlaKpi::Update,
                Ok(pb::SlaKpi::Repair) => SlaKpi::Repair,
                _ => {
                    return Err(Status::invalid_argument(format!(
                        "service credit KPI {} is not SLA_KPI_RESPONSE, SLA_KPI_UPDATE or SLA_KPI_REPAIR",
                        c.kpi
                    )))
                }
            };
            Ok(ServiceCreditInput {
                priority: c.priority,
                kpi,
                amount: c.amount,
            })
        })
        .collect::<Result<_, Status>>()?;
    Ok(PriceListExtInput {
        devices: devices
            .into_iter()
            .map(|d| DeviceModelInput {
                model: d.model,
                provisioning_fee: d.provisioning_fee,
            })
            .collect(),
        maintenance: maintenance.map(|m| MaintenanceInput {
            policy_major: m.policy_major,
            policy_minor: m.policy_minor,
            plans: m
                .plans
                .into_iter()
                .map(|p| MaintenancePlanInput {
                    plan: p.plan,
                    months: p.months,
                    price: p.price,
                    within_days: p.within_days,
                })
                .collect(),
        }),
        service_credits,
    })
}

/// Domain extension input → the proto fields (the CLI's price files).
pub fn price_list_ext_to_pb(
    ext: PriceListExtInput,
) -> (
    Vec<pb::DeviceModel>,
    Option<pb::MaintenanceTerms>,
    Vec<pb::ServiceCredit>,
) {
    (
        ext.devices
            .into_iter()
            .map(|d| pb::DeviceModel {
                model: d.model,
                provisioning_fee: d.provisioning_fee,
            })
            .collect(),
        ext.maintenance.map(|m| pb::MaintenanceTerms {
            policy_major: m.policy_major,
            policy_minor: m.policy_minor,
            plans: m
                .plans
                .into_iter()
                .map(|p| pb::MaintenancePlan {
                    plan: p.plan,
                    months: p.months,
                    price: p.price,
                    within_days: p.within_days,
                })
                .collect(),
        }),
        ext.service_credits
            .into_iter()
            .map(|c| pb::ServiceCredit {
                priority: c.priority,
                kpi: match c.kpi {
                    SlaKpi::Response => pb::SlaKpi::Response,
                    SlaKpi::Update => pb::SlaKpi::Update,
                    SlaKpi::Repair => pb::SlaKpi::Repair,
                } as i32,
                amount: c.amount,
            })
            .collect(),
    )
}

fn amount(n: Nano) -> String {
    n.to_string()
}

/// Receipt → proto (empty balance for a price list), without a tree head.
pub fn receipt(r: Receipt) -> pb::Receipt {
    receipt_with_head(r, None)
}

/// Receipt → proto with the signed tree head it was answered under.
pub fn receipt_with_head(r: Receipt, head: Option<crate::store::SignedTreeHead>) -> pb::Receipt {
    let mut out = pb::Receipt {
        seq: r.seq,
        at: r.at,
        balance: r.balance.map(amount).unwrap_or_default(),
        ..Default::default()
    };
    if let Some(h) = head {
        out.tree_size = h.tree_size;
        out.root_hash = h.root_hash.to_vec();
        out.tree_at = h.at;
        out.tree_signature = h.signature.to_vec();
        out.public_key = h.public_key.to_vec();
    }
    out
}

/// Signed tree head → proto.
pub fn tree_head(h: crate::store::SignedTreeHead) -> pb::SignedTreeHead {
    pb::SignedTreeHead {
        tree_size: h.tree_size,
        root_hash: h.root_hash.to_vec(),
        at: h.at,
        signature: h.signature.to_vec(),
        public_key: h.public_key.to_vec(),
    }
}

/// Inclusion proof → proto.
pub fn inclusion_proof(p: crate::engine::InclusionProof) -> pb::InclusionProof {
    pb::InclusionProof {
        seq: p.seq,
        tree_size: p.tree_size,
        leaf_hash: p.leaf_hash.to_vec(),
        path: p.path.iter().map(|h| h.to_vec()).collect(),
    }
}

/// Consistency proof → proto.
pub fn consistency_proof(p: crate::engine::ConsistencyProof) -> pb::ConsistencyProof {
    pb::ConsistencyProof {
        first_size: p.first_size,
        second_size: p.second_size,
        path: p.path.iter().map(|h| h.to_vec()).collect(),
    }
}

fn state(s: AccountState) -> pb::AccountState {
    match s {
        AccountState::Active => pb::AccountState::Active,
        AccountState::Suspended => pb::AccountState::Suspended,
        AccountState::Idle => pb::AccountState::Idle,
        AccountState::Closed => pb::AccountState::Closed,
    }
}

/// `ListAccounts` request → the engine's query (`INVALID_ARGUMENT` for an
/// unknown state or order; every other check is the index's).
pub fn list_query(r: pb::ListAccountsRequest) -> Result<crate::engine::ListQuery, Status> {
    use crate::engine::{ListOrder, ListQuery};
    let state = match pb::AccountState::try_from(r.state) {
        Ok(pb::AccountState::Unspecified) => None,
        Ok(pb::AccountState::Active) => Some(AccountState::Active),
        Ok(pb::AccountState::Suspended) => Some(AccountState::Suspended),
        Ok(pb::AccountState::Idle) => Some(AccountState::Idle),
        Ok(pb::AccountState::Closed) => Some(AccountState::Closed),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown state {}",
                r.state
            )))
        }
    };
    let order = match pb::list_accounts_request::Order::try_from(r.order) {
        Ok(pb::list_accounts_request::Order::Runout) => ListOrder::Runout,
        Ok(pb::list_accounts_request::Order::Id) => ListOrder::Id,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown order {}",
                r.order
            )))
        }
    };
    Ok(ListQuery {
        state,
        runout_before: (r.runout_before != 0).then_some(r.runout_before),
        runout_within: (r.runout_within_seconds != 0).then_some(r.runout_within_seconds),
        prefix: r.id_prefix,
        order,
        page_size: r.page_size as usize,
        page_token: r.page_token,
    })
}

/// A listing page → proto.
pub fn list_page(p: crate::engine::ListPage) -> pb::ListAccountsResponse {
    pb::ListAccountsResponse {
        accounts: p
            .rows
            .into_iter()
            .map(|s| pb::AccountRow {
                account_id: s.account_id,
                state: state(s.state) as i32,
                balance: amount(s.balance),
                monthly_rate: amount(s.monthly_rate),
                daily_rate: amount(s.daily_rate),
                runtime_seconds: s.runtime_seconds,
                runout_at: s.runout_at,
                pbx_count: s.pbx_count,
            })
            .collect(),
        next_page_token: p.next_page_token,
        at: p.at,
    }
}

/// Account view → proto.
pub fn account_view(v: AccountView) -> pb::AccountView {
    pb::AccountView {
        account_id: v.account_id,
        balance: amount(v.balance),
        state: state(v.state) as i32,
        monthly_rate: amount(v.monthly_rate),
        daily_rate: amount(v.daily_rate),
        runtime_seconds: v.runtime_seconds,
        runout_at: v.runout_at,
        at: v.at,
        pbxs: v
            .pbxs
            .into_iter()
            .map(|p| pb::PbxView {
                pbx_id: p.pbx_id,
                price_list_version: p.price_list_version.unwrap_or(0),
                enabled: p.enabled,
                monthly_cost: amount(p.monthly_cost),
                warnings: p.warnings,
                licenses: p
                    .licenses
                    .into_iter()
                    .map(|l| pb::LicenseView {
                        license_type: l.license_type,
                        quantity: l.quantity,
                        monthly_cost: amount(l.monthly_cost),
                        tiers: l
                            .tiers
                            .into_iter()
                            .map(|t| pb::TierCost {
                                from_qty: t.from_qty,
                                to_qty: t.to_qty,
                                quantity: t.units,
                                monthly_price: amount(t.unit_price),
                                monthly_cost: amount(t.cost),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn line_kind(k: LineKind) -> pb::statement_line::Kind {
    use pb::statement_line::Kind;
    match k {
        LineKind::TopUp => Kind::TopUp,
        LineKind::Accrual => Kind::Accrual,
        LineKind::Depletion => Kind::Depletion,
        LineKind::Reactivation => Kind::Reactivation,
        LineKind::ConfigChange => Kind::ConfigChange,
        LineKind::Forfeit => Kind::Forfeit,
        LineKind::Open => Kind::Open,
        LineKind::Close => Kind::Close,
        LineKind::Fee => Kind::Fee,
        LineKind::Plan => Kind::Plan,
        LineKind::Grant => Kind::Grant,
    }
}

/// Statement → proto.
pub fn statement(s: Statement) -> pb::Statement {
    pb::Statement {
        account_id: s.account_id,
        from: s.from,
        to: s.to,
        opening_balance: amount(s.opening_balance),
        closing_balance: amount(s.closing_balance),
        lines: s
            .lines
            .into_iter()
            .map(|l| {
                let (from, to, seconds, monthly_rate) = match l.accrual {
                    Some(a) => (a.from, a.to, a.seconds, amount(a.monthly_rate)),
                    None => (0, 0, 0, String::new()),
                };
                pb::StatementLine {
                    at: l.at,
                    kind: line_kind(l.kind) as i32,
                    amount: amount(l.amount),
                    balance_after: amount(l.balance_after),
                    from,
                    to,
                    seconds,
                    monthly_rate,
                    pbx_id: l.pbx_id.unwrap_or_default(),
                    activation_key: l.activation_key.unwrap_or_default(),
                    device_id: l.device_id.unwrap_or_default(),
                    plan: l.plan.unwrap_or_default(),
                    incident_id: l.incident_id.unwrap_or_default(),
                }
            })
            .collect(),
    }
}

/// Notice → proto.
pub fn notice(n: Notice) -> pb::Notice {
    use pb::notice::Kind;
    let sla = n.sla;
    pb::Notice {
        account_id: n.account_id,
        at: n.at,
        kind: match n.kind {
            NoticeKind::Reminder => Kind::Reminder,
            NoticeKind::Depletion => Kind::Depletion,
            NoticeKind::Reactivation => Kind::Reactivation,
            NoticeKind::MaintenanceExpiring => Kind::MaintenanceExpiring,
            NoticeKind::SlaDeadline => Kind::SlaDeadline,
            NoticeKind::SlaBreach => Kind::SlaBreach,
        } as i32,
        threshold_seconds: n.threshold_s.unwrap_or(0),
        pbx_id: n.pbx_id.unwrap_or_default(),
        incident_id: sla
            .as_ref()
            .map(|s| s.incident_id.clone())
            .unwrap_or_default(),
        kpi: sla.as_ref().map_or(0, |s| sla_kpi(s.kpi) as i32),
        occurrence: sla.as_ref().map_or(0, |s| s.occurrence),
        deadline: sla.as_ref().map_or(0, |s| s.deadline),
        priority: sla.as_ref().map_or(0, |s| u32::from(s.priority)),
    }
}

/// KPI → proto.
pub fn sla_kpi(k: SlaKpi) -> pb::SlaKpi {
    match k {
        SlaKpi::Response => pb::SlaKpi::Response,
        SlaKpi::Update => pb::SlaKpi::Update,
        SlaKpi::Repair => pb::SlaKpi::Repair,
    }
}

/// `ReportIncident` → command (validated by `decide`).
pub fn report_incident(r: pb::ReportIncidentRequest) -> Command {
    Command::ReportIncident {
        incident_id: r.incident_id,
        account_id: r.account_id,
        priority: r.priority,
    }
}

/// SLA report → proto.
pub fn sla_report(r: SlaReport) -> pb::SlaReport {
    pb::SlaReport {
        from: r.from,
        to: r.to,
        at: r.at,
        priorities: r
            .priorities
            .into_iter()
            .map(|p| pb::SlaPriorityFigures {
                priority: u32::from(p.priority),
                incidents: p.incidents,
                kpis: p
                    .kpis
                    .into_iter()
                    .map(|k| pb::SlaKpiFigures {
                        kpi: sla_kpi(k.kpi) as i32,
                        met: k.met,
                        breached: k.breached,
                        open: k.open,
                        share_met: k.share_met.unwrap_or_default(),
                        target: k.target.unwrap_or_default(),
                        target_met: k.target_met.unwrap_or(false),
                    })
                    .collect(),
            })
            .collect(),
        breaches: r
            .breaches
            .into_iter()
            .map(|b| pb::SlaBreach {
                incident_id: b.incident_id,
                account_id: b.account_id,
                priority: u32::from(b.priority),
                kpi: sla_kpi(b.kpi) as i32,
                occurrence: b.occurrence,
                deadline: b.deadline,
                done_at: b.done_at,
                missed_by_support_seconds: b.missed_by_support_s,
                credit: b.credit.map(amount).unwrap_or_default(),
            })
            .collect(),
    }
}

/// Compliance report → proto.
pub fn compliance(r: ComplianceReport) -> pb::ComplianceReport {
    pb::ComplianceReport {
        from: r.from,
        to: r.to,
        entries: r
            .entries
            .into_iter()
            .map(|e| pb::ComplianceEntry {
                account_id: e.account_id,
                pbx_id: e.pbx_id,
                cycles: e
                    .cycles
                    .into_iter()
                    .map(|c| pb::Cycle {
                        lowered_at: c.lowered_at,
                        raised_at: c.raised_at,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// `RegisterDevice` → command; rejects an unknown channel.
pub fn register_device(r: pb::RegisterDeviceRequest) -> Result<Command, Status> {
    use pb::device::Channel as C;
    let channel = match C::try_from(r.channel) {
        Ok(C::Vendor) => Channel::Vendor,
        Ok(C::Other) => Channel::Other,
        _ => {
            return Err(Status::invalid_argument(format!(
                "channel must be VENDOR or OTHER (got {})",
                r.channel
            )))
        }
    };
    Ok(Command::RegisterDevice {
        account_id: r.account_id,
        device_id: r.device_id,
        model: r.model,
        channel,
        provisioned: r.provisioned,
    })
}

/// `SetDeviceStatus` → command; rejects an unknown status.
pub fn set_device_status(r: pb::SetDeviceStatusRequest) -> Result<Command, Status> {
    use pb::device::Status as S;
    let status = match S::try_from(r.status) {
        Ok(S::Active) => DeviceStatus::Active,
        Ok(S::Incompatible) => DeviceStatus::Incompatible,
        Ok(S::Banned) => DeviceStatus::Banned,
        _ => {
            return Err(Status::invalid_argument(format!(
                "status must be ACTIVE, INCOMPATIBLE or BANNED (got {})",
                r.status
            )))
        }
    };
    Ok(Command::SetDeviceStatus {
        device_id: r.device_id,
        status,
        reason: r.reason,
    })
}

/// `RegisterPbx` → command.
pub fn register_pbx(r: pb::RegisterPbxRequest) -> Command {
    Command::RegisterPbx {
        account_id: r.account_id,
        pbx_id: r.pbx_id,
        firmware_major: r.firmware_major,
        firmware_minor: r.firmware_minor,
    }
}

/// `BuyPlan` → command.
pub fn buy_plan(r: pb::BuyPlanRequest) -> Command {
    Command::BuyPlan {
        pbx_id: r.pbx_id,
        plan: r.plan,
        key: r.key,
    }
}

/// `UpgradeFirmware` → command.
pub fn upgrade_firmware(r: pb::UpgradeFirmwareRequest) -> Command {
    Command::UpgradeFirmware {
        pbx_id: r.pbx_id,
        firmware_major: r.firmware_major,
        firmware_minor: r.firmware_minor,
    }
}

/// Devices → proto.
pub fn device_list(account_id: String, devices: Vec<DeviceView>) -> pb::DeviceList {
    use pb::device::{Channel as C, Status as S, SupportLevel as L};
    pb::DeviceList {
        account_id,
        devices: devices
            .into_iter()
            .map(|d| pb::Device {
                device_id: d.device_id,
                model: d.model,
                channel: match d.channel {
                    Channel::Vendor => C::Vendor,
                    Channel::Other => C::Other,
                } as i32,
                support_level: match d.support {
                    SupportLevel::Full => L::Full,
                    SupportLevel::PlatformOnly => L::PlatformOnly,
                    SupportLevel::BestEffort => L::BestEffort,
                    SupportLevel::None => L::None,
                } as i32,
                status: match d.status {
                    DeviceStatus::Active => S::Active,
                    DeviceStatus::Incompatible => S::Incompatible,
                    DeviceStatus::Banned => S::Banned,
                } as i32,
                provisioned: d.provisioned,
                fee: amount(d.fee),
                registered_at: d.registered_at,
                reason: d.reason,
            })
            .collect(),
    }
}

/// Maintenance view → proto.
pub fn maintenance_view(v: MaintenanceView) -> pb::MaintenanceView {
    pb::MaintenanceView {
        pbx_id: v.pbx_id,
        coverage: v
            .coverage
            .iter()
            .map(|c| pb::CoverageInterval {
                from: c.from,
                to: c.to,
            })
            .collect(),
        firmware_major: v.firmware_major,
        firmware_minor: v.firmware_minor,
        upgrade_allowed: v.upgrade_allowed,
        account_id: v.account_id,
        rented: v.rented,
        commissioned_at: v.commissioned_at.unwrap_or(0),
        covered: v.covered,
        policy_major: v.policy.map(|p| p.0),
        policy_minor: v.policy.map(|p| p.1),
        at: v.at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_hosting_is_invalid_argument() {
        let r = pb::ChangeConfigRequest {
            hosting: 7,
            ..Default::default()
        };
        let e = change_config(r).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("hosting"));
    }

    #[test]
    fn huge_repeated_fields_are_refused_before_copying() {
        let r = pb::ChangeConfigRequest {
            licenses: vec![pb::LicenseLine::default(); MAX_LICENSE_LINES + 1],
            ..Default::default()
        };
        assert_eq!(
            change_config(r).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let r = pb::PublishPriceListRequest {
            entries: vec![pb::PriceEntry {
                license_type: "X".into(),
                tiers: vec![pb::Tier::default(); MAX_TIERS + 1],
            }],
            ..Default::default()
        };
        assert_eq!(
            publish_price_list(r).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn receipt_balance_is_empty_for_price_lists() {
        let r = receipt(Receipt {
            seq: 3,
            at: 10,
            balance: None,
        });
        assert_eq!(r.balance, "");
        let r = receipt(Receipt {
            seq: 4,
            at: 10,
            balance: Some(Nano(12_500_000_000)),
        });
        assert_eq!(r.balance, "12.5");
    }
}
