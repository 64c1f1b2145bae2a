//! `isc-ledger prices check FILE [--catalogue FILE]`: validates a price-list
//! file (and the license catalogue it will carry) before it is published.
//!
//! Owns the price-list file format (TOML, see README.md, "License model") and the
//! offline check. It reads files, so it lives outside the pure domain; the
//! judgement itself is the domain's own `decide` on an empty ledger plus the
//! catalogue's validation, so the check cannot drift from what the server
//! enforces at publish time.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::domain::license_model::Catalogue;
use crate::domain::prices::{
    DeviceModelInput, MaintenanceInput, MaintenancePlanInput, PriceListExtInput,
    ServiceCreditInput, SlaKpi,
};
use crate::domain::{
    Command, Decision, Event, EventBody, Ledger, Policy, PriceEntryInput, TierInput,
};

/// Largest price-list or catalogue file read, in bytes: a full catalogue of
/// a few hundred types with tiers fits in far less.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The price-list file, as written by a vendor operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceListFile {
    /// Price-list version, strictly greater than the previous one (spec §7).
    pub version: u32,
    /// From when the list applies (at the next contact): Unix seconds or an
    /// RFC 3339 text; absent means 0 (in effect at once).
    #[serde(default)]
    pub effective_at: Option<Instant>,
    /// One entry per rentable license type.
    #[serde(default)]
    pub entries: Vec<EntryFile>,
    /// `[[devices]]`: the compatible device models (spec §14).
    #[serde(default)]
    pub devices: Vec<DeviceFile>,
    /// `[maintenance]` and `[[maintenance.plans]]` (spec §15).
    #[serde(default)]
    pub maintenance: Option<MaintenanceFile>,
    /// `[[service_credits]]`: iSC granted per SLA breach (spec §16).
    #[serde(default)]
    pub service_credits: Vec<ServiceCreditFile>,
}

impl PriceListFile {
    /// The entries as the domain's raw input.
    pub fn entries_input(&self) -> Vec<PriceEntryInput> {
        self.entries
            .iter()
            .map(|e| PriceEntryInput {
                license_type: e.license_type.clone(),
                tiers: e
                    .tiers
                    .iter()
                    .map(|t| TierInput {
                        from_qty: t.from_qty,
                        monthly_price: t.monthly_price.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The extension sections as the domain's raw input.
    pub fn ext_input(&self) -> PriceListExtInput {
        PriceListExtInput {
            devices: self
                .devices
                .iter()
                .map(|d| DeviceModelInput {
                    model: d.model.clone(),
                    provisioning_fee: d.provisioning_fee.clone(),
                })
                .collect(),
            maintenance: self.maintenance.as_ref().map(|m| MaintenanceInput {
                policy_major: m.policy_major,
                policy_minor: m.policy_minor,
                plans: m
                    .plans
                    .iter()
                    .map(|p| MaintenancePlanInput {
                        plan: p.plan.clone(),
                        months: p.months,
                        price: p.price.clone(),
                        within_days: p.within_days,
                    })
                    .collect(),
            }),
            service_credits: self
                .service_credits
                .iter()
                .map(|c| ServiceCreditInput {
                    priority: c.priority,
                    kpi: c.kpi,
                    amount: c.amount.clone(),
                })
                .collect(),
        }
    }
}

/// A compatible device model: `[[devices]] model = "Yealink-T54W"
/// provisioning_fee = "15"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFile {
    pub model: String,
    /// One-time fee in iSC (a decimal string), charged when a device of this
    /// model bought through another channel is provisioned.
    pub provisioning_fee: String,
}

/// `[maintenance] policy_major = 7 policy_minor = 1`, then its plans.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceFile {
    /// The release from which an upgrade needs coverage (Allworx: 7.1).
    pub policy_major: u32,
    pub policy_minor: u32,
    #[serde(default)]
    pub plans: Vec<PlanFile>,
}

/// `[[maintenance.plans]] plan = "5y" months = 60 price = "900" within_days = 90`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub plan: String,
    pub months: u32,
    /// Price in iSC, a decimal string.
    pub price: String,
    /// Bought at most this many days after commissioning; 0 (default): any time.
    #[serde(default)]
    pub within_days: u32,
}

/// `[[service_credits]] priority = 1 kpi = "response" amount = "10"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCreditFile {
    pub priority: u32,
    /// `response`, `update` or `repair`.
    pub kpi: SlaKpi,
    /// iSC granted per breach, a decimal string.
    pub amount: String,
}

/// An instant in a file: Unix seconds or RFC 3339 (as the `prices publish`
/// client accepts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Instant {
    /// Unix seconds.
    Unix(i64),
    /// RFC 3339, e.g. `2026-01-01T00:00:00Z`.
    Text(String),
}

impl Instant {
    /// Unix seconds.
    pub fn unix_s(&self) -> Result<i64, String> {
        match self {
            Instant::Unix(n) => Ok(*n),
            Instant::Text(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp())
                .map_err(|e| format!("effective_at {t:?} is not Unix seconds or RFC 3339: {e}")),
        }
    }
}

/// One license type and its graduated tiers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    /// The vendor's type name, e.g. `PBX-Port13`.
    pub license_type: String,
    /// Tiers, `from_qty` from 1, strictly increasing.
    pub tiers: Vec<TierFile>,
}

/// One tier: a quoted decimal string price, never a TOML float (spec §3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierFile {
    /// First quantity paying this price.
    pub from_qty: u32,
    /// Monthly unit price in iSC, e.g. `"1.25"`.
    pub monthly_price: String,
}

/// What the check found in a valid price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The price list's version.
    pub version: u32,
    /// Its `effective_at`.
    pub effective_at: i64,
    /// Number of license types priced.
    pub entries: usize,
    /// The catalogue's version (1 for the built-in V13 catalogue).
    pub catalogue_version: u32,
    /// Whether the catalogue is the built-in one.
    pub catalogue_builtin: bool,
    /// Number of compatible device models.
    pub devices: usize,
    /// The maintenance section: policy release and number of plans.
    pub maintenance: Option<(u32, u32, usize)>,
    /// Number of service credits.
    pub service_credits: usize,
    /// Remarks that do not make the list invalid (types the license model
    /// does not describe, so no rule applies to them).
    pub notes: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = if self.catalogue_builtin {
            "built-in catalogue"
        } else {
            "catalogue"
        };
        writeln!(
            f,
            "price list version {} (effective_at {}): {} license types, valid with {which} version {}",
            self.version, self.effective_at, self.entries, self.catalogue_version
        )?;
        if self.devices > 0 {
            writeln!(f, "{} compatible device models", self.devices)?;
        }
        if let Some((major, minor, plans)) = self.maintenance {
            writeln!(
                f,
                "maintenance: upgrades past {major}.{minor} need coverage; {plans} plans"
            )?;
        }
        if self.service_credits > 0 {
            writeln!(f, "{} service credits", self.service_credits)?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// Parses a price-list file's text (TOML).
pub fn parse_price_list(text: &str) -> Result<PriceListFile, String> {
    toml::from_str(text).map_err(|e| format!("price list is not valid: {e}"))
}

/// Parses a price-list file's text given as JSON (same fields).
pub fn parse_price_list_json(text: &str) -> Result<PriceListFile, String> {
    serde_json::from_str(text).map_err(|e| format!("price list is not valid: {e}"))
}

fn read_bounded(path: &Path, what: &str) -> Result<String, String> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {what} {shown}: {e}"))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "{what} {shown} is {len} bytes, more than the limit of {MAX_FILE_BYTES}"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {what} {shown}: {e}"))
}

/// Reads and validates a price-list file and, if given, a catalogue file
/// (otherwise the built-in V13 catalogue): everything `PublishPriceList`
/// would check except what depends on the previous list in the log.
pub fn check_price_list_file(path: &Path, catalogue_path: Option<&Path>) -> Result<Report, String> {
    let text = read_bounded(path, "price list")?;
    let list = if path.extension().is_some_and(|e| e == "json") {
        parse_price_list_json(&text)?
    } else {
        parse_price_list(&text)?
    };
    let catalogue = match catalogue_path {
        Some(p) => Some(Catalogue::from_toml(&read_bounded(p, "catalogue")?)?),
        None => None,
    };
    check_price_list(&list, catalogue)
}

/// The pure half of [`check_price_list_file`]: the domain's own `decide`
/// of the publication on an empty ledger, so the file is judged exactly as
/// the server will judge it (syntax, bounds, tiers, duplicates, hardware
/// types, catalogue consistency).
pub fn check_price_list(
    list: &PriceListFile,
    catalogue: Option<Catalogue>,
) -> Result<Report, String> {
    let catalogue_builtin = catalogue.is_none();
    let effective_at = list.effective_at.as_ref().map_or(Ok(0), Instant::unix_s)?;
    let cmd = Command::PublishPriceList {
        version: list.version,
        effective_at,
        entries: list.entries_input(),
        catalogue,
        ext: list.ext_input(),
    };
    let decided = Ledger::new(Policy::default())
        .decide(&cmd, effective_at)
        .map_err(|r| r.message)?;
    let (published, ext) = match decided {
        Decision::Append(Event {
            body: EventBody::PriceListPublished(list),
            ..
        }) => (list, Default::default()),
        Decision::Append(Event {
            body: EventBody::PriceListPublishedExt { list, ext },
            ..
        }) => (list, ext),
        _ => return Err("the ledger did not decide a price-list publication".to_string()),
    };
    let notes = published
        .entries
        .keys()
        .filter(|t| published.catalogue.get(t).is_none())
        .map(|t| {
            format!("{t} is not in the license catalogue: no license-model rule applies to it")
        })
        .collect();
    Ok(Report {
        version: published.version,
        effective_at: published.effective_at,
        entries: published.entries.len(),
        catalogue_version: published.catalogue.version,
        catalogue_builtin,
        devices: ext.devices.len(),
        maintenance: ext
            .maintenance
            .as_ref()
            .map(|m| (m.policy_major, m.policy_minor, m.plans.len())),
        service_credits: ext.service_credits.len(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::license_model::DEFAULT_V13_TOML;
    use std::io::Write;

    fn example() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/price_list_example.toml");
        std::fs::read_to_string(path).expect("example price list")
    }

    fn check_text(text: &str) -> Result<Report, String> {
        check_price_list(&parse_price_list(text)?, None)
    }

    #[test]
    fn the_example_price_list_is_valid() {
        let report = check_text(&example()).expect("valid");
        assert_eq!(report.version, 1);
        assert_eq!(report.entries, 18);
        assert_eq!(report.catalogue_version, 1);
        assert!(report.catalogue_builtin && report.notes.is_empty());
        assert_eq!(report.devices, 3);
        assert_eq!(report.maintenance, Some((7, 1, 2)));
        assert_eq!(report.service_credits, 2);
        assert!(report
            .to_string()
            .contains("maintenance: upgrades past 7.1 need coverage; 2 plans"));
        assert!(report
            .to_string()
            .starts_with("price list version 1 (effective_at 1767225600): 18 license types"));
    }

    #[test]
    fn the_core_rules_apply() {
        let bad = [
            (
                r#"license_type = "PBX-UC13""#,
                r#"license_type = "Relay-BRIs""#,
                "hardware license",
            ),
            (
                r#"monthly_price = "3.5""#,
                "monthly_price = 3.5",
                "expected a string",
            ),
            (
                r#"monthly_price = "3.5""#,
                r#"monthly_price = "3.5.1""#,
                "monthly price of PBX-UC13",
            ),
            (
                r#"license_type = "App(chat)13""#,
                r#"license_type = "PBX-UC13""#,
                "appears twice",
            ),
            (
                "version = 1",
                "version = 1
colour = 2",
                "unknown field",
            ),
            (
                r#"provisioning_fee = "15""#,
                r#"provisioning_fee = "-15""#,
                "provisioning fee of device model Yealink-T54W",
            ),
            (
                r#"model = "Yealink-T46U""#,
                r#"model = "Yealink-T54W""#,
                "device model Yealink-T54W appears twice",
            ),
            ("months = 12", "months = 0", "must last 1 to 120 months"),
            (r#"kpi = "repair""#, r#"kpi = "uptime""#, "unknown variant"),
            ("priority = 1", "priority = 9", "priority must be 1 to 4"),
            (
                "within_days = 0 ",
                "within_days = 0\nrefund = true ",
                "unknown field",
            ),
        ];
        for (from, to, expected) in bad {
            let text = example().replacen(from, to, 1);
            let err = check_text(&text).expect_err(expected);
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }

    #[test]
    fn types_unknown_to_the_catalogue_are_noted() {
        let text = format!(
            "{}
[[entries]]
license_type = \"PBX-Future13\"
tiers = [{{ from_qty = 1, monthly_price = \"0\" }}]
",
            example()
        );
        let report = check_text(&text).expect("valid");
        assert_eq!(report.notes.len(), 1);
        assert!(report.notes[0].starts_with("PBX-Future13 is not in the license catalogue"));
    }

    #[test]
    fn files_and_catalogues_are_read_and_judged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("prices.toml");
        std::fs::File::create(&list)
            .and_then(|mut f| f.write_all(example().as_bytes()))
            .expect("write");
        assert!(check_price_list_file(&list, None).is_ok());

        // A catalogue that calls a priced type hardware refuses the list.
        let catalogue = dir.path().join("catalogue.toml");
        let text = DEFAULT_V13_TOML.to_string()
            + "\n[[types]]\nname = \"App(chat)13-HW\"\nfamily = \"BRI\"\nhardware = true\nsection = \"§2\"\n";
        std::fs::write(&catalogue, text).expect("write");
        let with_hw = dir.path().join("prices-hw.toml");
        std::fs::write(
            &with_hw,
            example().replacen("App(chat)13", "App(chat)13-HW", 1),
        )
        .expect("write");
        let err = check_price_list_file(&with_hw, Some(&catalogue)).expect_err("hardware");
        assert!(
            err.contains("App(chat)13-HW is a hardware license"),
            "{err}"
        );
        let ok = check_price_list_file(&list, Some(&catalogue)).expect("valid");
        assert!(!ok.catalogue_builtin);

        std::fs::write(&catalogue, "version = 1").expect("write");
        assert!(check_price_list_file(&list, Some(&catalogue)).is_err());
        let json = dir.path().join("prices.json");
        std::fs::write(
            &json,
            r#"{"version": 2, "effective_at": "2026-01-01T00:00:00Z",
                "entries": [{"license_type": "PBX-Port13", "tiers": [{"from_qty": 1, "monthly_price": "1"}]}]}"#,
        )
        .expect("write");
        let report = check_price_list_file(&json, None).expect("json");
        assert_eq!((report.version, report.effective_at), (2, 1_767_225_600));
        let err =
            check_price_list_file(&dir.path().join("missing.toml"), None).expect_err("missing");
        assert!(err.starts_with("cannot read price list"), "{err}");
    }
}
