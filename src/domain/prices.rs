//! Price lists with graduated tiers (spec §4, §11): validation of a new list
//! against its predecessor, and the tiered monthly cost of a quantity.

use super::error::Rejection;
use super::ids::{check_license_type, MAX_PRICE_ENTRIES, MAX_QUANTITY, MAX_TIERS};
use super::license_model::Catalogue;
use super::money::{Nano, UnixSeconds, MAX_MONTHLY_UNIT_PRICE};
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
mod tests {
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
}
