//! Price lists with graduated tiers (spec §4, §11): validation of a new list
//! against its predecessor, and the tiered monthly cost of a quantity; and
//! the list's extension (device models, maintenance plans, service credits:
//! spec §14–§16), which travels beside the list in its own event.

use super::error::Rejection;
use super::ids::{check_license_type, MAX_PRICE_ENTRIES, MAX_QUANTITY, MAX_TIERS};
use super::license_model::Catalogue;
use super::money::{Nano, UnixSeconds, MAX_MONTHLY_UNIT_PRICE, MAX_TOP_UP};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One bracket: units from `from_qty` up to the next bracket pay `monthly_price` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub from_qty: u32,
    pub monthly_price: Nano,
}

/// A complete catalogue of rentable types and their tiers, by version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceList {
    pub version: u32,
    pub effective_at: UnixSeconds,
    /// Type names are inline strings (≤ 24 bytes): pricing a configuration
    /// compares them without chasing a pointer per tree node.
    pub entries: BTreeMap<CompactString, Vec<Tier>>,
    /// The license-model rules in force with this list (seed 003): recorded
    /// with it so replay judges nothing again.
    pub catalogue: Catalogue,
}

/// Raw client input for a tier (the price is an unparsed decimal string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierInput {
    pub from_qty: u32,
    pub monthly_price: String,
}

/// Raw client input for one price-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntryInput {
    pub license_type: String,
    pub tiers: Vec<TierInput>,
}

/// The cost of one bracket inside a line's tiered cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierUse {
    pub from_qty: u32,
    pub to_qty: u32,
    pub units: u32,
    pub unit_price: Nano,
    pub cost: Nano,
}

/// Checks syntax and bounds of a price list (everything that does not depend
/// on the ledger's state) and builds it.
pub fn parse_price_list(
    version: u32,
    effective_at: UnixSeconds,
    entries: &[PriceEntryInput],
) -> Result<PriceList, Rejection> {
    if version == 0 {
        return Err(Rejection::invalid(
            "price list version must be 1 or greater",
        ));
    }
    if effective_at < 0 {
        return Err(Rejection::invalid(
            "price list effective_at must not be before 1970",
        ));
    }
    if entries.is_empty() {
        return Err(Rejection::invalid(
            "a price list must contain at least one license type",
        ));
    }
    if entries.len() > MAX_PRICE_ENTRIES {
        return Err(Rejection::invalid(format!(
            "a price list may contain at most {MAX_PRICE_ENTRIES} license types"
        )));
    }
    let mut out = BTreeMap::new();
    for entry in entries {
        let name = &entry.license_type;
        check_license_type(name)?;
        if entry.tiers.is_empty() {
            return Err(Rejection::invalid(format!(
                "license type {name} has no price tiers"
            )));
        }
        if entry.tiers.len() > MAX_TIERS {
            return Err(Rejection::invalid(format!(
                "license type {name} has more than {MAX_TIERS} tiers"
            )));
        }
        let mut tiers = Vec::with_capacity(entry.tiers.len());
        for (i, tier) in entry.tiers.iter().enumerate() {
            if i == 0 && tier.from_qty != 1 {
                return Err(Rejection::invalid(format!(
                    "license type {name}: the first tier must start at quantity 1 (got {})",
                    tier.from_qty
                )));
            }
            if let Some(prev) = tiers.last().map(|t: &Tier| t.from_qty) {
                if tier.from_qty <= prev {
                    return Err(Rejection::invalid(format!(
                        "license type {name}: tier quantities must strictly increase ({} after {prev})",
                        tier.from_qty
                    )));
                }
            }
            if tier.from_qty > MAX_QUANTITY {
                return Err(Rejection::invalid(format!(
                    "license type {name}: tier quantity {} exceeds the maximum quantity {MAX_QUANTITY}",
                    tier.from_qty
                )));
            }
            let price = Nano::parse_bounded(
                &tier.monthly_price,
                &format!("monthly price of {name}"),
                Nano::ZERO,
                MAX_MONTHLY_UNIT_PRICE,
            )?;
            tiers.push(Tier {
                from_qty: tier.from_qty,
                monthly_price: price,
            });
        }
        if out
            .insert(CompactString::from(name.as_str()), tiers)
            .is_some()
        {
            return Err(Rejection::invalid(format!(
                "license type {name} appears twice in the price list"
            )));
        }
    }
    Ok(PriceList {
        version,
        effective_at,
        entries: out,
        // The caller (decide) replaces it when the command brings its own.
        catalogue: Catalogue::default_v13(),
    })
}

/// The state checks of a new list against the newest one (spec §7, §11).
pub fn check_succession(new: &PriceList, previous: Option<&PriceList>) -> Result<(), Rejection> {
    let Some(prev) = previous else { return Ok(()) };
    if new.version <= prev.version {
        return Err(Rejection::precondition(format!(
            "price list version {} is not greater than the current version {}",
            new.version, prev.version
        )));
    }
    let dropped: BTreeSet<&CompactString> = prev
        .entries
        .keys()
        .filter(|k| !new.entries.contains_key(*k))
        .collect();
    if let Some(first) = dropped.iter().next() {
        return Err(Rejection::precondition(format!(
            "price list version {} drops license type {first} (and {} more): a new list must keep every type of the previous one",
            new.version,
            dropped.len() - 1
        )));
    }
    if new.effective_at < prev.effective_at {
        return Err(Rejection::precondition(format!(
            "price list version {} takes effect at {}, earlier than version {} ({})",
            new.version, new.effective_at, prev.version, prev.effective_at
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The price list's extension (spec §14 devices, §15 maintenance, §16 credits).
//
// `PriceList` is stored by bincode, which is not self-describing: it cannot
// gain fields. The sections added later travel beside it in their own event
// (`EventBody::PriceListPublishedExt`), and a list published without them has
// the empty extension.

/// Most compatible device models in one list. Not in the spec: a vendor's
/// catalogue of phones and gateways has a few hundred; this bounds one command.
pub const MAX_DEVICE_MODELS: usize = 1024;
/// Longest device model name (like a license type name).
pub const MAX_MODEL_LEN: usize = 64;
/// Most maintenance plans in one list (Allworx sells two).
pub const MAX_PLANS: usize = 16;
/// Longest plan a list may sell, in months (spec §15 months are
/// `SECONDS_PER_MONTH`): 10 years, twice Allworx's longest.
pub const MAX_PLAN_MONTHS: u32 = 120;
/// Latest purchase window of a plan, in days after commissioning (10 years).
pub const MAX_PLAN_WINDOW_DAYS: u32 = 3650;
/// Priorities of the SLA (spec §16: 1 critical … 4 low).
pub const SLA_PRIORITIES: std::ops::RangeInclusive<u8> = 1..=4;

/// A compatible device model and its one-time provisioning fee (spec §14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceModel {
    pub model: CompactString,
    pub provisioning_fee: Nano,
}

/// A software maintenance plan on sale (spec §15): `months` of coverage,
/// bought at most `within_days` days after commissioning (0: any time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenancePlan {
    pub plan: CompactString,
    pub months: u32,
    pub price: Nano,
    pub within_days: u32,
}

/// The maintenance section: the release from which upgrades need coverage
/// (Allworx: 7.1) and the plans on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceTerms {
    pub policy_major: u32,
    pub policy_minor: u32,
    pub plans: Vec<MaintenancePlan>,
}

impl MaintenanceTerms {
    pub fn plan(&self, name: &str) -> Option<&MaintenancePlan> {
        self.plans.iter().find(|p| p.plan == name)
    }
}

/// Which SLA KPI a service credit pays for (spec §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaKpi {
    Response,
    Update,
    Repair,
}

/// The iSC a breach of `kpi` at `priority` grants (spec §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCredit {
    /// 1..=4.
    pub priority: u8,
    pub kpi: SlaKpi,
    pub amount: Nano,
}

/// The sections a price list gained after record version 1: devices,
/// maintenance, service credits. Empty for a list published without them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PriceListExt {
    /// Sorted by model, no duplicates.
    pub devices: Vec<DeviceModel>,
    pub maintenance: Option<MaintenanceTerms>,
    /// Sorted by (priority, kpi), no duplicates.
    pub service_credits: Vec<ServiceCredit>,
}

/// The extension of a list published without one.
pub static EMPTY_EXT: PriceListExt = PriceListExt {
    devices: Vec::new(),
    maintenance: None,
    service_credits: Vec::new(),
};

impl PriceListExt {
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.maintenance.is_none() && self.service_credits.is_empty()
    }

    /// The compatible model `model`, if the list has it.
    pub fn device(&self, model: &str) -> Option<&DeviceModel> {
        self.devices
            .binary_search_by(|d| d.model.as_str().cmp(model))
            .ok()
            .map(|i| &self.devices[i])
    }

    /// The credit a breach of `kpi` at `priority` grants (none: not configured).
    pub fn service_credit(&self, priority: u8, kpi: SlaKpi) -> Option<Nano> {
        self.service_credits
            .iter()
            .find(|c| c.priority == priority && c.kpi == kpi)
            .map(|c| c.amount)
    }

    /// The bounds `parse_price_list_ext` enforces, checked again by `apply`
    /// so a forged list cannot carry a fee or credit no published list can.
    pub fn within_bounds(&self) -> bool {
        let price = |n: &Nano| (Nano::ZERO..=MAX_MONTHLY_UNIT_PRICE).contains(n);
        self.devices.iter().all(|d| price(&d.provisioning_fee))
            && self.devices.windows(2).all(|w| w[0].model < w[1].model)
            && self.maintenance.as_ref().is_none_or(|m| {
                m.plans
                    .iter()
                    .all(|p| price(&p.price) && (1..=MAX_PLAN_MONTHS).contains(&p.months))
            })
            && self.service_credits.iter().all(|c| {
                SLA_PRIORITIES.contains(&c.priority) && (Nano(1)..=MAX_TOP_UP).contains(&c.amount)
            })
    }
}

/// Raw client input of a device model (the fee is an unparsed decimal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceModelInput {
    pub model: String,
    pub provisioning_fee: String,
}

/// Raw client input of a maintenance plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenancePlanInput {
    pub plan: String,
    pub months: u32,
    pub price: String,
    pub within_days: u32,
}

/// Raw client input of the maintenance section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceInput {
    pub policy_major: u32,
    pub policy_minor: u32,
    pub plans: Vec<MaintenancePlanInput>,
}

/// Raw client input of a service credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCreditInput {
    pub priority: u32,
    pub kpi: SlaKpi,
    pub amount: String,
}

/// Raw client input of the extension sections (all optional).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PriceListExtInput {
    pub devices: Vec<DeviceModelInput>,
    pub maintenance: Option<MaintenanceInput>,
    pub service_credits: Vec<ServiceCreditInput>,
}

/// Device model names: 1–64 printable ASCII bytes without spaces (like
/// license type names).
pub fn check_model(text: &str) -> Result<(), Rejection> {
    if text.is_empty()
        || text.len() > MAX_MODEL_LEN
        || !text.bytes().all(|b| (0x21..=0x7E).contains(&b))
    {
        let shown: String = text.chars().take(80).collect();
        return Err(Rejection::invalid(format!(
            "device model {shown:?} is malformed: 1 to {MAX_MODEL_LEN} printable ASCII characters without spaces"
        )));
    }
    Ok(())
}

/// Checks syntax and bounds of the extension sections (spec §3 price bounds
/// for fees and plan prices, §14, §15, §16) and builds them.
pub fn parse_price_list_ext(input: &PriceListExtInput) -> Result<PriceListExt, Rejection> {
    if input.devices.len() > MAX_DEVICE_MODELS {
        return Err(Rejection::invalid(format!(
            "a price list may contain at most {MAX_DEVICE_MODELS} device models"
        )));
    }
    let mut devices = Vec::with_capacity(input.devices.len());
    for d in &input.devices {
        check_model(&d.model)?;
        let fee = Nano::parse_bounded(
            &d.provisioning_fee,
            &format!("provisioning fee of device model {}", d.model),
            Nano::ZERO,
            MAX_MONTHLY_UNIT_PRICE,
        )?;
        devices.push(DeviceModel {
            model: d.model.as_str().into(),
            provisioning_fee: fee,
        });
    }
    devices.sort_by(|a, b| a.model.cmp(&b.model));
    if let Some(w) = devices.windows(2).find(|w| w[0].model == w[1].model) {
        return Err(Rejection::invalid(format!(
            "device model {} appears twice in the price list",
            w[0].model
        )));
    }
    let maintenance = match &input.maintenance {
        None => None,
        Some(m) => {
            if m.plans.len() > MAX_PLANS {
                return Err(Rejection::invalid(format!(
                    "the maintenance section may offer at most {MAX_PLANS} plans"
                )));
            }
            let mut plans: Vec<MaintenancePlan> = Vec::with_capacity(m.plans.len());
            for p in &m.plans {
                super::ids::check_id("maintenance plan name", &p.plan)?;
                if !(1..=MAX_PLAN_MONTHS).contains(&p.months) {
                    return Err(Rejection::invalid(format!(
                        "maintenance plan {} must last 1 to {MAX_PLAN_MONTHS} months (got {})",
                        p.plan, p.months
                    )));
                }
                if p.within_days > MAX_PLAN_WINDOW_DAYS {
                    return Err(Rejection::invalid(format!(
                        "maintenance plan {}: within_days must be at most {MAX_PLAN_WINDOW_DAYS} (0: any time; got {})",
                        p.plan, p.within_days
                    )));
                }
                let price = Nano::parse_bounded(
                    &p.price,
                    &format!("price of maintenance plan {}", p.plan),
                    Nano::ZERO,
                    MAX_MONTHLY_UNIT_PRICE,
                )?;
                if plans.iter().any(|q| q.plan == p.plan.as_str()) {
                    return Err(Rejection::invalid(format!(
                        "maintenance plan {} appears twice in the price list",
                        p.plan
                    )));
                }
                plans.push(MaintenancePlan {
                    plan: p.plan.as_str().into(),
                    months: p.months,
                    price,
                    within_days: p.within_days,
                });
            }
            Some(MaintenanceTerms {
                policy_major: m.policy_major,
                policy_minor: m.policy_minor,
                plans,
            })
        }
    };
    let mut service_credits = Vec::with_capacity(input.service_credits.len());
    for c in &input.service_credits {
        let priority = u8::try_from(c.priority)
            .ok()
            .filter(|p| SLA_PRIORITIES.contains(p))
            .ok_or_else(|| {
                Rejection::invalid(format!(
                    "service credit priority must be 1 to 4 (got {})",
                    c.priority
                ))
            })?;
        let amount = Nano::parse_bounded(
            &c.amount,
            &format!("service credit of priority {priority}"),
            Nano(1),
            MAX_TOP_UP,
        )?;
        service_credits.push(ServiceCredit {
            priority,
            kpi: c.kpi,
            amount,
        });
    }
    service_credits.sort_by_key(|c| (c.priority, c.kpi));
    if let Some(w) = service_credits
        .windows(2)
        .find(|w| (w[0].priority, w[0].kpi) == (w[1].priority, w[1].kpi))
    {
        return Err(Rejection::invalid(format!(
            "service credit for priority {} and KPI {:?} appears twice in the price list",
            w[0].priority, w[0].kpi
        )));
    }
    Ok(PriceListExt {
        devices,
        maintenance,
        service_credits,
    })
}

/// The state checks of a new extension against the newest list's (spec §14:
/// a list keeps every device model of the previous one; and, so that
/// upgrade gating cannot lapse by omission, a maintenance section once
/// published stays: its release and plans may change).
pub fn check_ext_succession(
    version: u32,
    new: &PriceListExt,
    previous: &PriceListExt,
) -> Result<(), Rejection> {
    let dropped: Vec<&str> = previous
        .devices
        .iter()
        .filter(|d| new.device(&d.model).is_none())
        .map(|d| d.model.as_str())
        .collect();
    if let Some(first) = dropped.first() {
        return Err(Rejection::precondition(format!(
            "price list version {version} drops device model {first} (and {} more): a new list must keep every device model of the previous one",
            dropped.len() - 1
        )));
    }
    if previous.maintenance.is_some() && new.maintenance.is_none() {
        return Err(Rejection::precondition(format!(
            "price list version {version} drops the maintenance section: a new list must keep it (its release and plans may change)"
        )));
    }
    Ok(())
}

/// The brackets `qty` units fall into: `(tier, last unit of the bracket)`.
fn brackets(tiers: &[Tier], qty: u32) -> impl Iterator<Item = (&Tier, u32)> {
    tiers
        .iter()
        .enumerate()
        .take_while(move |(_, tier)| qty >= tier.from_qty)
        .map(move |(i, tier)| {
            let upper = tiers
                .get(i + 1)
                .map_or(qty, |next| (next.from_qty - 1).min(qty));
            (tier, upper)
        })
}

/// Tiered monthly cost of `qty` units (spec §4): each unit pays its bracket's price.
/// Inside the bounds (qty ≤ 10^6, price ≤ 10^6 iSC) the result fits easily.
pub fn tiered_cost(tiers: &[Tier], qty: u32) -> Nano {
    Nano(
        brackets(tiers, qty)
            .map(|(tier, upper)| i128::from(upper - tier.from_qty + 1) * tier.monthly_price.0)
            .sum(),
    )
}

/// The same cost, bracket by bracket, for views.
pub fn tier_breakdown(tiers: &[Tier], qty: u32) -> Vec<TierUse> {
    brackets(tiers, qty)
        .map(|(tier, upper)| {
            let units = upper - tier.from_qty + 1;
            TierUse {
                from_qty: tier.from_qty,
                to_qty: upper,
                units,
                unit_price: tier.monthly_price,
                cost: Nano(i128::from(units) * tier.monthly_price.0),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn nano(s: &str) -> Nano {
        Nano::parse(s).unwrap()
    }

    /// The PBX-Port13 family: 1–500, 501–1000, 1001–2000, 2001–5000, 5001+.
    fn port_tiers() -> Vec<Tier> {
        [
            (1, "2"),
            (501, "1.5"),
            (1001, "1"),
            (2001, "0.8"),
            (5001, "0.5"),
        ]
        .iter()
        .map(|(q, p)| Tier {
            from_qty: *q,
            monthly_price: nano(p),
        })
        .collect()
    }

    #[test]
    fn tiered_cost_crossing_brackets() {
        // 1200 ports: 500 × 2 + 500 × 1.5 + 200 × 1 = 1000 + 750 + 200 = 1950 iSC/month.
        assert_eq!(tiered_cost(&port_tiers(), 1200), nano("1950"));
        // Exactly at a bracket edge: 500 × 2 = 1000; 501 → 1000 + 1.5.
        assert_eq!(tiered_cost(&port_tiers(), 500), nano("1000"));
        assert_eq!(tiered_cost(&port_tiers(), 501), nano("1001.5"));
        // 6000: 1000 + 750 + 1000 + 3000×0.8=2400 + 1000×0.5=500 → 5650.
        assert_eq!(tiered_cost(&port_tiers(), 6000), nano("5650"));
        let parts = tier_breakdown(&port_tiers(), 1200);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].units, 200);
        assert_eq!(parts.iter().map(|p| p.cost.0).sum::<i128>(), nano("1950").0);
    }

    fn input(entries: &[(&str, &[(u32, &str)])]) -> Vec<PriceEntryInput> {
        crate::domain::sim::price_entries(entries)
    }

    #[test]
    fn malformed_lists_are_rejected() {
        let bad: Vec<(u32, Vec<PriceEntryInput>)> = vec![
            (0, input(&[("A", &[(1, "1")])])),
            (1, input(&[])),
            (1, input(&[("A", &[])])),
            (1, input(&[("A", &[(2, "1")])])),
            (1, input(&[("A", &[(1, "1"), (1, "2")])])),
            (1, input(&[("A", &[(1, "-1")])])),
            (1, input(&[("A", &[(1, "1000000.000000001")])])),
            (1, input(&[("A", &[(1, "1")]), ("A", &[(1, "2")])])),
            (1, input(&[("Relay-1", &[(1, "1")])])),
        ];
        for (version, entries) in bad {
            let r = parse_price_list(version, 0, &entries);
            assert!(r.is_err(), "{entries:?} must be rejected");
        }
        assert!(parse_price_list(1, 0, &input(&[("A", &[(1, "1000000")])])).is_ok());
    }

    #[test]
    fn succession_rules() {
        let v1 =
            parse_price_list(1, 100, &input(&[("A", &[(1, "1")]), ("B", &[(1, "1")])])).unwrap();
        let drop_b = parse_price_list(2, 100, &input(&[("A", &[(1, "1")])])).unwrap();
        assert!(check_succession(&drop_b, Some(&v1)).is_err());
        let same_version =
            parse_price_list(1, 100, &input(&[("A", &[(1, "1")]), ("B", &[(1, "1")])])).unwrap();
        assert!(check_succession(&same_version, Some(&v1)).is_err());
        let earlier =
            parse_price_list(2, 99, &input(&[("A", &[(1, "1")]), ("B", &[(1, "1")])])).unwrap();
        assert!(check_succession(&earlier, Some(&v1)).is_err());
        let ok = parse_price_list(
            2,
            100,
            &input(&[("A", &[(1, "2")]), ("B", &[(1, "1")]), ("C", &[(1, "1")])]),
        )
        .unwrap();
        assert!(check_succession(&ok, Some(&v1)).is_ok());
    }

    /// A plan as test data: (name, months, price, within_days).
    pub(crate) type PlanRow<'a> = (&'a str, u32, &'a str, u32);

    /// The extension input from rows: devices (model, fee), maintenance
    /// (policy major, minor, plans), credits (priority, KPI, amount).
    pub(crate) fn ext_input(
        devices: &[(&str, &str)],
        maintenance: Option<(u32, u32, &[PlanRow])>,
        credits: &[(u32, SlaKpi, &str)],
    ) -> PriceListExtInput {
        PriceListExtInput {
            devices: devices
                .iter()
                .map(|(m, f)| DeviceModelInput {
                    model: m.to_string(),
                    provisioning_fee: f.to_string(),
                })
                .collect(),
            maintenance: maintenance.map(|(major, minor, plans)| MaintenanceInput {
                policy_major: major,
                policy_minor: minor,
                plans: plans
                    .iter()
                    .map(|(plan, months, price, within_days)| MaintenancePlanInput {
                        plan: plan.to_string(),
                        months: *months,
                        price: price.to_string(),
                        within_days: *within_days,
                    })
                    .collect(),
            }),
            service_credits: credits
                .iter()
                .map(|(priority, kpi, amount)| ServiceCreditInput {
                    priority: *priority,
                    kpi: *kpi,
                    amount: amount.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn extension_sections_are_parsed_sorted_and_bounded() {
        let plans: &[PlanRow] = &[("5y", 60, "900", 90), ("1y", 12, "250", 0)];
        let ext = parse_price_list_ext(&ext_input(
            &[("Yealink-T54W", "15"), ("Snom-D785", "0")],
            Some((7, 1, plans)),
            &[(2, SlaKpi::Repair, "5"), (1, SlaKpi::Response, "10")],
        ))
        .unwrap();
        assert_eq!(ext.devices[0].model, "Snom-D785");
        assert_eq!(
            ext.device("Yealink-T54W").unwrap().provisioning_fee,
            nano("15")
        );
        assert!(ext.device("Yealink-T46U").is_none());
        let m = ext.maintenance.as_ref().unwrap();
        assert_eq!((m.policy_major, m.policy_minor), (7, 1));
        assert_eq!(m.plan("1y").unwrap().months, 12);
        assert_eq!(ext.service_credit(1, SlaKpi::Response), Some(nano("10")));
        assert_eq!(ext.service_credit(1, SlaKpi::Repair), None);
        assert_eq!(ext.service_credits[0].priority, 1);
        assert!(ext.within_bounds());
        assert!(parse_price_list_ext(&PriceListExtInput::default())
            .unwrap()
            .is_empty());

        // Each bound, one at a time: all INVALID_ARGUMENT.
        let one_plan = |p: (&'static str, u32, &'static str, u32)| {
            ext_input(&[], Some((7, 1, Box::leak(Box::new([p])))), &[])
        };
        let bad = [
            ext_input(&[("", "1")], None, &[]),
            ext_input(&[("Has space", "1")], None, &[]),
            ext_input(&[("M", "-1")], None, &[]),
            ext_input(&[("M", "1000000.000000001")], None, &[]),
            ext_input(&[("M", "1"), ("M", "2")], None, &[]),
            one_plan(("5y", 0, "1", 0)),
            one_plan(("5y", MAX_PLAN_MONTHS + 1, "1", 0)),
            one_plan(("5y", 60, "1", MAX_PLAN_WINDOW_DAYS + 1)),
            one_plan(("5 y", 60, "1", 0)),
            one_plan(("5y", 60, "1.0000000001", 0)),
            ext_input(
                &[],
                Some((7, 1, &[("1y", 12, "1", 0), ("1y", 24, "1", 0)])),
                &[],
            ),
            ext_input(&[], None, &[(0, SlaKpi::Response, "1")]),
            ext_input(&[], None, &[(5, SlaKpi::Response, "1")]),
            ext_input(&[], None, &[(1, SlaKpi::Response, "0")]),
            ext_input(
                &[],
                None,
                &[(1, SlaKpi::Update, "1"), (1, SlaKpi::Update, "2")],
            ),
        ];
        for input in bad {
            let r = parse_price_list_ext(&input);
            assert_eq!(
                r.map_err(|e| e.code),
                Err(super::super::Code::InvalidArgument),
                "{input:?}"
            );
        }
        assert!(parse_price_list_ext(&ext_input(&[("M", "1000000")], None, &[])).is_ok());
    }

    #[test]
    fn a_new_list_keeps_every_device_model_and_the_maintenance_section() {
        let prev = parse_price_list_ext(&ext_input(
            &[("A", "1"), ("B", "2")],
            Some((7, 1, &[])),
            &[],
        ))
        .unwrap();
        let drop_b =
            parse_price_list_ext(&ext_input(&[("A", "1")], Some((7, 1, &[])), &[])).unwrap();
        let err = check_ext_succession(2, &drop_b, &prev).unwrap_err();
        assert_eq!(err.code, super::super::Code::FailedPrecondition);
        assert!(
            err.message.contains("drops device model B"),
            "{}",
            err.message
        );
        let no_maintenance =
            parse_price_list_ext(&ext_input(&[("A", "1"), ("B", "2")], None, &[])).unwrap();
        assert!(check_ext_succession(2, &no_maintenance, &prev).is_err());
        // Fees, the policy release and plans may change; models may be added.
        let ok = parse_price_list_ext(&ext_input(
            &[("A", "0"), ("B", "3"), ("C", "1")],
            Some((8, 0, &[("1y", 12, "1", 0)])),
            &[],
        ))
        .unwrap();
        assert!(check_ext_succession(2, &ok, &prev).is_ok());
        assert!(check_ext_succession(1, &prev, &EMPTY_EXT).is_ok());
    }
}
