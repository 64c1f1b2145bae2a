//! The innovaphone license model (seed 003, "Modèle de licence V13r2") as
//! data: which combinations of license types a PBX may rent.
//!
//! This module owns the [`Catalogue`] (license types + rules), its TOML file
//! format and [`Catalogue::check`]. It is pure: no I/O, no clock. It must not
//! know about accounts, prices or the log; the core calls `check` after all
//! its own checks and records the catalogue inside each price list, so that
//! replay judges nothing again: a configuration accepted under the catalogue
//! of its time stays accepted forever.
//!
//! Rules are data, not code: each [`Rule`] is one of a few generic
//! [`RuleKind`]s applied to license *families*, with the seed section it comes
//! from, so a new catalogue can tighten, relax or add rules without a release.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::Hosting;

/// The built-in V13 catalogue, shipped with the binary.
pub const DEFAULT_V13_TOML: &str = include_str!("catalogue_v13.toml");

/// Type-name prefix of hardware licenses (seed 003 §1.4; spec §4), matched
/// case-sensitively (spec §11); the core's own constant.
pub use super::ids::HARDWARE_PREFIX;

/// Most license types one catalogue may describe: far above the ~30 of V13,
/// low enough (with the two limits below) that even a hostile catalogue
/// keeps `check` of a 256-line configuration in the milliseconds.
pub const MAX_CATALOGUE_TYPES: usize = 256;

/// Most rules one catalogue may hold (V13 has 13).
pub const MAX_CATALOGUE_RULES: usize = 256;

/// Most families in one list: a bundle's `contains`, a rule's `families` or
/// `others` (UC contains 7).
pub const MAX_FAMILIES_PER_LIST: usize = 16;

/// Longest name (type, family, rule id) or section accepted in a catalogue.
pub const MAX_CATALOGUE_NAME_LEN: usize = 128;

/// Longest rule text accepted in a catalogue.
pub const MAX_RULE_TEXT_LEN: usize = 1_000;

/// A versioned license catalogue: every type the license model knows and the
/// rules between them. Recorded in the log inside each price list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Catalogue version (1 = the first V13r2 catalogue); independent of the
    /// price-list version.
    pub version: u32,
    /// The document the rules come from, cited in every message
    /// (e.g. "license model V13r2").
    pub source: String,
    /// License types, in file order.
    pub types: Vec<LicenseType>,
    /// Rules, in evaluation order: the first violation is the one reported.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One license type, as the vendor names it (`PBX-Port13`, `App(phone)13`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LicenseType {
    /// Technical type name, exactly as in price lists and configurations.
    pub name: String,
    /// What the license enables (`Port`, `UC`, `PhoneApp`, …); rules speak
    /// about families so that V13 and a later V14 type count together.
    pub family: String,
    /// Software version of the license (13 for `PBX-Port13`); `None` only for
    /// hardware licenses, which have none (§1.4).
    #[serde(default)]
    pub software_version: Option<u32>,
    /// Bound to one device (BRI, PRI, Channel): never rentable (§1.4, §2).
    #[serde(default)]
    pub hardware: bool,
    /// Whether the version rule compares `software_version` with the PBX
    /// firmware. False for Windows licenses, whose version is compared with
    /// the Windows application's (§7), unknown to the ledger.
    #[serde(default = "yes")]
    pub firmware_bound: bool,
    /// Families a bundle contains, one each per bundle license (UC, §4).
    #[serde(default)]
    pub contains: Vec<String>,
    /// Largest quantity one configuration may hold (SMB-Port sizes, §3.4).
    #[serde(default)]
    pub max_quantity: Option<u32>,
    /// Vendor reference number, for auditors (e.g. "02-00039-002").
    #[serde(default)]
    pub reference: Option<String>,
    /// Seed section describing the type.
    pub section: String,
}

fn yes() -> bool {
    true
}

/// Whether a broken rule refuses the configuration or merely reports it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The model forbids the configuration: `FAILED_PRECONDITION`.
    Violation,
    /// The model only says a function is unavailable: accepted, and the
    /// account view shows the warning.
    Warning,
}

/// The generic shapes a rule can take. `families` and `others` are lists of
/// license families; counts are *users*: the quantity of every license of the
/// family plus the quantity of every bundle containing it (a `PBX-UC13`
/// counts as one Phone App user, one Softphone App user, …).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// No hardware-bound type (catalogue `hardware` or `Relay-` prefix).
    NotRentable,
    /// Every firmware-bound license has `software_version >= firmware_major`.
    LicenseVersion,
    /// Every type's quantity is at most its `max_quantity`.
    MaxQuantity,
    /// No license of `families` together with a license of `others`.
    Exclusive,
    /// At most one type of `families` in a configuration.
    SingleType,
    /// users(`families`) ≤ users(`others`).
    Requires,
    /// On `hosting`: users(`families`) = users(`others`).
    EqualOnHosting,
    /// When users(`families`) > 0: users(`families`) ≥ users(`others`).
    NotFewerThan,
    /// When users(`families`) > 0: users(`others`) > 0.
    NeedsAny,
    /// On `hosting`: users(`families`) = 0.
    AbsentOnHosting,
}

/// One rule of the license model, traced to its seed section.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier (`smb-port-not-with-port`), for tests and logs.
    pub id: String,
    /// The rule's shape.
    pub kind: RuleKind,
    /// Refuse or warn.
    pub severity: Severity,
    /// Seed section(s) the rule comes from (`§3.4`).
    pub section: String,
    /// The rule in one sentence, the start of every message it produces.
    pub text: String,
    /// First family list (meaning per [`RuleKind`]).
    #[serde(default)]
    pub families: Vec<String>,
    /// Second family list (meaning per [`RuleKind`]).
    #[serde(default)]
    pub others: Vec<String>,
    /// Hosting the rule applies to (`*_on_hosting` kinds only).
    #[serde(default)]
    pub hosting: Option<Hosting>,
}

/// A configuration the license model forbids. Display = a message a person
/// understands, citing the rule and its seed section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleViolation {
    /// The broken rule's id.
    pub rule_id: String,
    /// Human message, e.g. "SMB-Port licenses cannot be combined with Port
    /// licenses: Port13$20 with PBX-Port13 (license model V13r2 §3.4)".
    pub message: String,
}

/// A function the configuration leaves unavailable; the configuration is
/// accepted and the warning shown on the account view.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The rule's id.
    pub rule_id: String,
    /// Human message citing the seed section.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Catalogue {
    /// The built-in V13 catalogue (`catalogue_v13.toml`), embedded in a price
    /// list published without a catalogue of its own.
    pub fn default_v13() -> Catalogue {
        static DEFAULT: OnceLock<Catalogue> = OnceLock::new();
        DEFAULT
            .get_or_init(|| match Catalogue::from_toml(DEFAULT_V13_TOML) {
                Ok(catalogue) => catalogue,
                // A compile-time constant, proven valid by a unit test.
                Err(e) => panic!("the built-in catalogue_v13.toml is invalid: {e}"),
            })
            .clone()
    }

    /// Parses and validates a catalogue file (format: README.md, "License model").
    pub fn from_toml(text: &str) -> Result<Catalogue, String> {
        let catalogue: Catalogue =
            toml::from_str(text).map_err(|e| format!("catalogue is not valid: {e}"))?;
        catalogue.validate()?;
        Ok(catalogue)
    }

    /// Checks the catalogue is self-consistent: unique names, families that
    /// exist, parameters that fit each rule kind, sizes within the limits.
    /// A catalogue arriving with a published price list must pass this.
    pub fn validate(&self) -> Result<(), String> {
        if self.version == 0 {
            return Err("catalogue version must be at least 1".to_string());
        }
        check_text("catalogue source", &self.source, MAX_RULE_TEXT_LEN)?;
        if self.types.is_empty() {
            return Err("catalogue describes no license type".to_string());
        }
        if self.types.len() > MAX_CATALOGUE_TYPES {
            return Err(format!(
                "catalogue describes {} license types, more than the limit of {MAX_CATALOGUE_TYPES}",
                self.types.len()
            ));
        }
        if self.rules.len() > MAX_CATALOGUE_RULES {
            return Err(format!(
                "catalogue has {} rules, more than the limit of {MAX_CATALOGUE_RULES}",
                self.rules.len()
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut families = std::collections::BTreeSet::new();
        for t in &self.types {
            check_text("license type name", &t.name, MAX_CATALOGUE_NAME_LEN)?;
            check_text("license family", &t.family, MAX_CATALOGUE_NAME_LEN)?;
            check_text("license type section", &t.section, MAX_CATALOGUE_NAME_LEN)?;
            if !names.insert(t.name.as_str()) {
                return Err(format!("license type {} is described twice", t.name));
            }
            if t.name.starts_with(HARDWARE_PREFIX) && !t.hardware {
                return Err(format!(
                    "license type {} has the {HARDWARE_PREFIX} prefix of hardware licenses but is not marked hardware",
                    t.name
                ));
            }
            match (t.hardware, t.software_version) {
                (false, None) => {
                    return Err(format!(
                        "software license type {} needs a software_version",
                        t.name
                    ))
                }
                (true, Some(_)) => {
                    return Err(format!(
                        "hardware license type {} has no software version",
                        t.name
                    ))
                }
                _ => {}
            }
            if t.max_quantity == Some(0) {
                return Err(format!("license type {} has max_quantity 0", t.name));
            }
            families.insert(t.family.as_str());
        }
        for t in &self.types {
            if t.contains.len() > MAX_FAMILIES_PER_LIST {
                return Err(format!(
                    "license type {} contains more than {MAX_FAMILIES_PER_LIST} families",
                    t.name
                ));
            }
            if let Some(unknown) = t.contains.iter().find(|f| !families.contains(f.as_str())) {
                return Err(format!(
                    "license type {} contains family {unknown}, which no type has",
                    t.name
                ));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for r in &self.rules {
            check_text("rule id", &r.id, MAX_CATALOGUE_NAME_LEN)?;
            check_text("rule section", &r.section, MAX_CATALOGUE_NAME_LEN)?;
            check_text("rule text", &r.text, MAX_RULE_TEXT_LEN)?;
            if !ids.insert(r.id.as_str()) {
                return Err(format!("rule {} is defined twice", r.id));
            }
            if r.families.len() > MAX_FAMILIES_PER_LIST || r.others.len() > MAX_FAMILIES_PER_LIST {
                return Err(format!(
                    "rule {} names more than {MAX_FAMILIES_PER_LIST} families in one list",
                    r.id
                ));
            }
            if let Some(unknown) = r
                .families
                .iter()
                .chain(&r.others)
                .find(|f| !families.contains(f.as_str()))
            {
                return Err(format!(
                    "rule {} names family {unknown}, which no type has",
                    r.id
                ));
            }
            let (needs_families, needs_others, needs_hosting) = match r.kind {
                RuleKind::NotRentable | RuleKind::LicenseVersion | RuleKind::MaxQuantity => {
                    (false, false, false)
                }
                RuleKind::SingleType => (true, false, false),
                RuleKind::AbsentOnHosting => (true, false, true),
                RuleKind::EqualOnHosting => (true, true, true),
                RuleKind::Exclusive
                | RuleKind::Requires
                | RuleKind::NotFewerThan
                | RuleKind::NeedsAny => (true, true, false),
            };
            let expect = |what: &str, needed: bool, present: bool| {
                if needed && !present {
                    Err(format!("rule {} ({:?}) needs {what}", r.id, r.kind))
                } else if !needed && present {
                    Err(format!("rule {} ({:?}) takes no {what}", r.id, r.kind))
                } else {
                    Ok(())
                }
            };
            expect("families", needs_families, !r.families.is_empty())?;
            expect("others", needs_others, !r.others.is_empty())?;
            expect("hosting", needs_hosting, r.hosting.is_some())?;
        }
        Ok(())
    }

    /// The description of `license_type`, if the catalogue has one.
    pub fn get(&self, license_type: &str) -> Option<&LicenseType> {
        self.types.iter().find(|t| t.name == license_type)
    }

    /// Whether `license_type` is a hardware license, never rentable: marked
    /// so in the catalogue, or carrying the `Relay-` prefix (§1.4) even when
    /// the catalogue does not know it.
    pub fn is_hardware(&self, license_type: &str) -> bool {
        license_type.starts_with(HARDWARE_PREFIX)
            || self.get(license_type).is_some_and(|t| t.hardware)
    }

    /// Judges a configuration (`(license_type, quantity)` pairs) for a PBX
    /// running `firmware_major` on `hosting`. Rules run in catalogue order:
    /// the first violation is returned; otherwise the warnings of every rule
    /// of severity warning that the configuration breaks.
    ///
    /// Types the catalogue does not describe belong to no family and are
    /// ignored (whether a type is rentable at all is the price list's
    /// business, checked by the core before). Zero quantities count as
    /// absent. Never panics.
    pub fn check(
        &self,
        licenses: &[(&str, u32)],
        firmware_major: u32,
        hosting: Hosting,
    ) -> Result<Vec<Warning>, RuleViolation> {
        // Each line resolved once: rules then never search the types again.
        let present: Vec<Line> = licenses
            .iter()
            .filter(|(_, quantity)| *quantity > 0)
            .map(|&(name, quantity)| Line {
                name,
                quantity,
                known: self.get(name),
            })
            .collect();
        let mut warnings = Vec::new();
        for rule in &self.rules {
            let Some(detail) = self.broken(rule, &present, firmware_major, hosting) else {
                continue;
            };
            let message = format!("{}: {detail} ({} {})", rule.text, self.source, rule.section);
            match rule.severity {
                Severity::Violation => {
                    return Err(RuleViolation {
                        rule_id: rule.id.clone(),
                        message,
                    })
                }
                Severity::Warning => warnings.push(Warning {
                    rule_id: rule.id.clone(),
                    message,
                }),
            }
        }
        Ok(warnings)
    }

    /// What breaks `rule` in the configuration, or `None` when it holds.
    fn broken(
        &self,
        rule: &Rule,
        licenses: &[Line<'_>],
        firmware_major: u32,
        hosting: Hosting,
    ) -> Option<String> {
        // Cheap (a handful of licenses): computed once for every kind.
        let (a, b) = (
            users(licenses, &rule.families),
            users(licenses, &rule.others),
        );
        match rule.kind {
            RuleKind::NotRentable => licenses
                .iter()
                .find(|l| {
                    l.name.starts_with(HARDWARE_PREFIX) || l.known.is_some_and(|t| t.hardware)
                })
                .map(|l| format!("{} is a hardware license", l.name)),
            RuleKind::LicenseVersion => licenses.iter().find_map(|l| {
                let name = l.name;
                let t = l.known.filter(|t| t.firmware_bound)?;
                let version = t.software_version?;
                (version < firmware_major).then(|| {
                    format!(
                        "{name} is a V{version} license and cannot run firmware V{firmware_major}"
                    )
                })
            }),
            RuleKind::MaxQuantity => licenses.iter().find_map(|l| {
                let max = l.known?.max_quantity?;
                (l.quantity > max)
                    .then(|| format!("{} covers at most {max}, {} configured", l.name, l.quantity))
            }),
            RuleKind::Exclusive => (a.total > 0 && b.total > 0).then(|| format!("{a} with {b}")),
            RuleKind::SingleType => {
                let mut names: Vec<&str> = Vec::new();
                for l in licenses {
                    let in_families = l.known.is_some_and(|t| rule.families.contains(&t.family));
                    if in_families && !names.contains(&l.name) {
                        names.push(l.name);
                    }
                }
                (names.len() > 1).then(|| format!("{} together", names.join(" and ")))
            }
            RuleKind::Requires => (a.total > b.total).then(|| format!("{a} for {b}")),
            RuleKind::EqualOnHosting => (rule.hosting == Some(hosting) && a.total != b.total)
                .then(|| format!("{a} for {b} on {}", hosting_label(hosting))),
            RuleKind::NotFewerThan => {
                (a.total > 0 && a.total < b.total).then(|| format!("{a} for {b}"))
            }
            RuleKind::NeedsAny => (a.total > 0 && b.total == 0).then(|| format!("{a} with {b}")),
            RuleKind::AbsentOnHosting => (rule.hosting == Some(hosting) && a.total > 0)
                .then(|| format!("{a} on {}", hosting_label(hosting))),
        }
    }
}

/// One configuration line, resolved against the catalogue.
struct Line<'a> {
    name: &'a str,
    quantity: u32,
    known: Option<&'a LicenseType>,
}

/// How many users the configuration gives the `families`: licenses of those
/// families plus bundles containing one of them, each counted once.
fn users<'a>(licenses: &[Line<'a>], families: &'a [String]) -> Users<'a> {
    let mut users = Users {
        families,
        total: 0,
        parts: Vec::new(),
    };
    for line in licenses {
        let Some(t) = line.known else { continue };
        let counts =
            families.contains(&t.family) || t.contains.iter().any(|f| families.contains(f));
        if counts {
            users.total = users.total.saturating_add(u64::from(line.quantity));
            users.parts.push((line.name, line.quantity));
        }
    }
    users
}

/// A count of users of some families with where they come from, printed as
/// "15 SoftphoneApp (5 App(softphone)13 + 10 PBX-UC13)" or "no PBX-Channels".
struct Users<'a> {
    families: &'a [String],
    total: u64,
    parts: Vec<(&'a str, u32)>,
}

impl fmt::Display for Users<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families = self.families.join("/");
        if self.parts.is_empty() {
            return write!(f, "no {families}");
        }
        write!(f, "{} {families} (", self.total)?;
        for (i, (name, quantity)) in self.parts.iter().enumerate() {
            let sep = if i == 0 { "" } else { " + " };
            write!(f, "{sep}{quantity} {name}")?;
        }
        f.write_str(")")
    }
}

fn hosting_label(hosting: Hosting) -> &'static str {
    match hosting {
        Hosting::Gateway => "a gateway",
        Hosting::Ipva => "an IPVA",
    }
}

fn check_text(what: &str, value: &str, max_len: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > max_len {
        return Err(format!(
            "{what} {value:.40}… is longer than {max_len} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Hosting::{Gateway, Ipva};

    /// The verdict of the default catalogue on firmware 13: `Ok(warnings)`
    /// or `Err(message)`, as messages so each test is one line of data.
    fn judge(licenses: &[(&str, u32)], hosting: Hosting) -> Result<Vec<String>, String> {
        judge_on(13, licenses, hosting)
    }

    fn judge_on(
        firmware_major: u32,
        licenses: &[(&str, u32)],
        hosting: Hosting,
    ) -> Result<Vec<String>, String> {
        Catalogue::default_v13()
            .check(licenses, firmware_major, hosting)
            .map(|ws| ws.into_iter().map(|w| w.message).collect())
            .map_err(|v| v.message)
    }

    fn clean(licenses: &[(&str, u32)], hosting: Hosting) {
        assert_eq!(judge(licenses, hosting), Ok(vec![]), "{licenses:?}");
    }

    fn refused(licenses: &[(&str, u32)], hosting: Hosting, expected: &str) {
        assert_eq!(
            judge(licenses, hosting),
            Err(expected.to_string()),
            "{licenses:?}"
        );
    }

    #[test]
    fn default_catalogue_is_valid_and_traced_to_the_seed() {
        let c = Catalogue::from_toml(DEFAULT_V13_TOML).expect("built-in catalogue parses");
        assert_eq!(c, Catalogue::default_v13());
        assert_eq!(c.version, 1);
        assert_eq!(c.source, "license model V13r2");
        assert!(c.types.iter().all(|t| t.section.starts_with('§')));
        assert!(c.rules.iter().all(|r| r.section.starts_with('§')));
        for name in [
            "PBX-Port13",
            "PBX-Standby13",
            "PBX-IPVA13",
            "PBX-UC13",
            "App(phone)13",
        ] {
            assert!(c.get(name).is_some(), "{name}");
        }
        let uc = c.get("PBX-UC13").expect("UC");
        assert_eq!(
            uc.contains,
            [
                "PhoneApp",
                "SoftphoneApp",
                "AppSharing",
                "Video",
                "VoicemailUser",
                "Mobility",
                "Fax"
            ]
        );
    }

    #[test]
    fn a_typical_rented_pbx_is_clean() {
        clean(
            &[
                ("PBX-Port13", 120),
                ("PBX-UC13", 40),
                ("App(phone)13", 20),
                ("App(softphone)13", 10),
                ("PBX-Channels13", 8),
                ("App(innovaphone-pbx-conference)13", 2),
                ("PBX-Reporting13", 120),
            ],
            Gateway,
        );
        clean(&[], Gateway);
    }

    // §1.4, §2: hardware licenses are never rented.
    #[test]
    fn hardware_licenses_are_never_rented() {
        clean(&[("PBX-Port13", 5), ("PBX-Channels13", 2)], Gateway);
        refused(
            &[("PBX-Port13", 5), ("Relay-Channels", 2)],
            Gateway,
            "Hardware licenses are bound to one device and are never rented: \
             Relay-Channels is a hardware license (license model V13r2 §1.4, §2.2–§2.4)",
        );
        // The prefix alone is enough, even for a type the catalogue lacks.
        let c = Catalogue::default_v13();
        assert!(c.is_hardware("Relay-BRIs") && c.is_hardware("Relay-Whatever"));
        assert!(!c.is_hardware("PBX-Port13") && !c.is_hardware("relay-x"));
        assert!(c.check(&[("Relay-Whatever", 1)], 13, Gateway).is_err());
    }

    // §1.3: a license runs its own version or older firmware only.
    #[test]
    fn a_v12_license_cannot_run_v13_firmware() {
        assert_eq!(judge_on(12, &[("PBX-Port12", 10)], Gateway), Ok(vec![]));
        assert_eq!(judge_on(12, &[("PBX-Port13", 10)], Gateway), Ok(vec![]));
        refused(
            &[("PBX-Port13", 10), ("PBX-Port12", 10)],
            Gateway,
            "A license runs PBX firmware of its own version or lower only: \
             PBX-Port12 is a V12 license and cannot run firmware V13 (license model V13r2 §1.3)",
        );
        assert!(judge_on(14, &[("PBX-Port13", 1)], Gateway).is_err());
        // Windows licenses follow the Windows application's version (§7).
        assert_eq!(judge_on(14, &[("PBX-Operator13", 1)], Gateway), Ok(vec![]));
    }

    // §3.4: an SMB-Port license is not extensible beyond its size.
    #[test]
    fn smb_port_quantity_stays_within_its_size() {
        clean(&[("Port13$20", 20)], Gateway);
        refused(
            &[("Port13$20", 21)],
            Gateway,
            "An SMB-Port license is not extensible beyond the size chosen: \
             Port13$20 covers at most 20, 21 configured (license model V13r2 §3.4)",
        );
    }

    // §3.4: SMB-Port sizes are neither added together nor combined.
    #[test]
    fn smb_port_sizes_do_not_combine() {
        clean(&[("Port13$30", 25)], Gateway);
        refused(
            &[("Port13$20", 20), ("Port13$30", 10)],
            Gateway,
            "SMB-Port licenses of different sizes cannot be added together or combined: \
             Port13$20 and Port13$30 together (license model V13r2 §3.4)",
        );
    }

    // §3.4: SMB-Port is a special form of Port and cannot be combined with it.
    #[test]
    fn smb_port_is_not_combined_with_port() {
        clean(&[("Port13$50", 40), ("App(phone)13", 40)], Gateway);
        refused(
            &[("Port13$20", 10), ("PBX-Port13", 5)],
            Gateway,
            "SMB-Port licenses cannot be combined with Port licenses: \
             10 SMB-Port (10 Port13$20) with 5 Port (5 PBX-Port13) (license model V13r2 §3.4)",
        );
    }

    // §3.2, §3.4: SMB-Port cannot be used with Standby.
    #[test]
    fn smb_port_is_not_combined_with_standby() {
        clean(&[("PBX-Port13", 10), ("PBX-Standby13", 10)], Gateway);
        refused(
            &[("Port13$20", 10), ("PBX-Standby13", 10)],
            Gateway,
            "SMB-Port licenses cannot be combined with Standby licenses: \
             10 SMB-Port (10 Port13$20) with 10 Standby (10 PBX-Standby13) \
             (license model V13r2 §3.2, §3.4)",
        );
    }

    // §3.3: on an IPVA, one IPVA license per Port license.
    #[test]
    fn on_ipva_the_ipva_count_equals_the_port_count() {
        clean(&[("PBX-Port13", 10), ("PBX-IPVA13", 10)], Ipva);
        clean(&[("Port13$20", 12), ("PBX-IPVA13", 12)], Ipva);
        clean(&[("App(phone)13", 3)], Ipva);
        refused(
            &[("PBX-Port13", 10), ("PBX-IPVA13", 9)],
            Ipva,
            "On an IPVA the number of IPVA licenses must equal the number of Port licenses: \
             9 IPVA (9 PBX-IPVA13) for 10 Port/SMB-Port (10 PBX-Port13) on an IPVA \
             (license model V13r2 §3.3)",
        );
        assert!(judge(&[("PBX-Port13", 10), ("PBX-IPVA13", 11)], Ipva).is_err());
        assert!(judge(&[("PBX-Port13", 10)], Ipva).is_err());
        // The same configuration on a gateway is no IPVA matter.
        clean(&[("PBX-Port13", 10)], Gateway);
    }

    // §6.2: Softphone App needs a Phone App for as many users.
    #[test]
    fn softphone_app_needs_phone_app_for_as_many_users() {
        clean(&[("App(phone)13", 5), ("App(softphone)13", 5)], Gateway);
        clean(
            &[
                ("PBX-UC13", 10),
                ("App(phone)13", 5),
                ("App(softphone)13", 5),
            ],
            Gateway,
        );
        refused(
            &[("App(phone)13", 4), ("App(softphone)13", 5)],
            Gateway,
            "Softphone App needs a Phone App license (alone or in UC) for as many users: \
             5 SoftphoneApp (5 App(softphone)13) for 4 PhoneApp (4 App(phone)13) \
             (license model V13r2 §6.2)",
        );
        // A UC user already has both: its Phone App is not spare for others.
        refused(
            &[("PBX-UC13", 10), ("App(softphone)13", 5)],
            Gateway,
            "Softphone App needs a Phone App license (alone or in UC) for as many users: \
             15 SoftphoneApp (10 PBX-UC13 + 5 App(softphone)13) for 10 PhoneApp (10 PBX-UC13) \
             (license model V13r2 §6.2)",
        );
    }

    // §5.1: Video cannot be used without Phone App.
    #[test]
    fn video_needs_phone_app_for_as_many_users() {
        clean(
            &[("PBX-UC13", 3), ("App(phone)13", 2), ("PBX-Video13", 2)],
            Gateway,
        );
        refused(
            &[("PBX-Video13", 2)],
            Gateway,
            "Video needs a Phone App license (alone or in UC) for as many users: \
             2 Video (2 PBX-Video13) for no PhoneApp (license model V13r2 §5.1, §6.1)",
        );
    }

    // §5.2: Application Sharing cannot be used without Phone App.
    #[test]
    fn app_sharing_needs_phone_app_for_as_many_users() {
        clean(&[("App(phone)13", 7), ("PBX-AppSharing13", 7)], Gateway);
        refused(
            &[("App(phone)13", 6), ("PBX-AppSharing13", 7)],
            Gateway,
            "Application Sharing needs a Phone App license (alone or in UC) for as many users: \
             7 AppSharing (7 PBX-AppSharing13) for 6 PhoneApp (6 App(phone)13) \
             (license model V13r2 §5.2, §6.1)",
        );
    }

    // §3.2: fewer Standby than Port licenses leaves Standby unavailable: warn.
    #[test]
    fn fewer_standby_than_ports_is_accepted_with_a_warning() {
        clean(&[("PBX-Port13", 10), ("PBX-Standby13", 10)], Gateway);
        clean(&[("PBX-Port13", 10)], Gateway);
        assert_eq!(
            judge(&[("PBX-Port13", 10), ("PBX-Standby13", 5)], Gateway),
            Ok(vec![
                "Standby is unavailable while there are fewer Standby than Port licenses: \
                 5 Standby (5 PBX-Standby13) for 10 Port (10 PBX-Port13) (license model V13r2 §3.2)"
                    .to_string()
            ])
        );
    }

    // §6.4, §3.5: conferences need PBX-Channels on a rented PBX: warn.
    #[test]
    fn conference_app_without_channels_is_accepted_with_a_warning() {
        clean(
            &[
                ("App(innovaphone-pbx-conference)13", 2),
                ("PBX-Channels13", 6),
            ],
            Gateway,
        );
        assert_eq!(
            judge(&[("App(innovaphone-pbx-conference)13", 2)], Gateway),
            Ok(vec![
                "Conference App cannot hold conferences without PBX-Channels licenses \
                 (a rented PBX cannot use hardware channels): 2 ConferenceApp \
                 (2 App(innovaphone-pbx-conference)13) with no PBX-Channels \
                 (license model V13r2 §6.4, §3.5)"
                    .to_string()
            ])
        );
    }

    // §3.3: IPVA licenses on a gateway serve nothing: warn.
    #[test]
    fn ipva_licenses_on_a_gateway_are_accepted_with_a_warning() {
        let warnings = judge(&[("PBX-Port13", 4), ("PBX-IPVA13", 4)], Gateway).expect("accepted");
        assert_eq!(
            warnings,
            ["IPVA licenses serve only a PBX hosted on an IPVA: 4 IPVA (4 PBX-IPVA13) on a gateway \
              (license model V13r2 §3.3)"]
        );
    }

    #[test]
    fn every_warning_is_reported_and_the_first_violation_wins() {
        let warnings = judge(
            &[
                ("PBX-Port13", 10),
                ("PBX-Standby13", 1),
                ("PBX-IPVA13", 10),
                ("App(innovaphone-pbx-conference)13", 1),
            ],
            Gateway,
        )
        .expect("accepted");
        assert_eq!(warnings.len(), 3);
        // Hardware comes before the version rule in the catalogue.
        let err = judge(&[("PBX-Port12", 1), ("Relay-PRIs", 1)], Gateway).unwrap_err();
        assert!(err.contains("§1.4"), "{err}");
    }

    #[test]
    fn unknown_types_and_zero_quantities_are_ignored() {
        clean(&[("Third-Party-Thing", 5), ("PBX-Video13", 0)], Gateway);
        assert!(Catalogue::default_v13().get("Third-Party-Thing").is_none());
    }

    #[test]
    fn a_catalogue_can_relax_a_rule_without_code() {
        let relaxed = DEFAULT_V13_TOML.replace(
            "id = \"video-needs-phone-app\"\nkind = \"requires\"\nseverity = \"violation\"",
            "id = \"video-needs-phone-app\"\nkind = \"requires\"\nseverity = \"warning\"",
        );
        let c = Catalogue::from_toml(&relaxed).expect("valid");
        assert_ne!(c, Catalogue::default_v13());
        let warnings = c
            .check(&[("PBX-Video13", 1)], 13, Gateway)
            .expect("accepted");
        assert_eq!(warnings[0].rule_id, "video-needs-phone-app");
    }

    #[test]
    fn inconsistent_catalogues_are_refused() {
        let cases = [
            ("version = 1", "version = 0", "version must be at least 1"),
            (
                "name = \"PBX-Port12\"",
                "name = \"PBX-Port13\"",
                "PBX-Port13 is described twice",
            ),
            (
                "hardware = true\nreference = \"01-00500-002\"",
                "reference = \"x\"",
                "not marked hardware",
            ),
            (
                "others = [\"Port\"]",
                "others = [\"Prot\"]",
                "names family Prot",
            ),
            ("hosting = \"Ipva\"\n", "", "needs hosting"),
            ("max_quantity = 20", "max_quantity = 0", "max_quantity 0"),
            (
                "others = [\"Standby\"]",
                "others = [\"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\", \"Port\"]",
                "more than 16 families",
            ),
            (
                "software_version = 13\nreference = \"02-00039-002\"",
                "reference = \"y\"",
                "needs a software_version",
            ),
            (
                "kind = \"not_rentable\"",
                "kind = \"not_rentable\"\nfamilies = [\"Port\"]",
                "takes no families",
            ),
            (
                "text = \"IPVA licenses",
                "colour = \"red\"\ntext = \"IPVA licenses",
                "unknown field",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(DEFAULT_V13_TOML.contains(from), "{from}");
            let err =
                Catalogue::from_toml(&DEFAULT_V13_TOML.replacen(from, to, 1)).expect_err(expected);
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }

    #[test]
    fn the_catalogue_round_trips_through_the_log_encodings() {
        let c = Catalogue::default_v13();
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&c, config).expect("encode");
        let (back, _): (Catalogue, usize) =
            bincode::serde::decode_from_slice(&bytes, config).expect("decode");
        assert_eq!(back, c);
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(
            serde_json::from_str::<Catalogue>(&json).expect("json back"),
            c
        );
    }

    proptest::proptest! {
        /// `check` is total: any names, quantities and firmware, no panic,
        /// and the same input always gives the same verdict.
        #[test]
        fn check_never_panics(
            picks in proptest::collection::vec((0usize..40, 0u32..=1_000_000), 0..12),
            firmware_major in proptest::prelude::any::<u32>(),
            ipva in proptest::prelude::any::<bool>(),
        ) {
            let c = Catalogue::default_v13();
            let names: Vec<String> = c.types.iter().map(|t| t.name.clone())
                .chain(["Relay-X".to_string(), "Unknown13".to_string()]).collect();
            let licenses: Vec<(&str, u32)> =
                picks.iter().map(|&(i, q)| (names[i % names.len()].as_str(), q)).collect();
            let hosting = if ipva { Ipva } else { Gateway };
            let first = c.check(&licenses, firmware_major, hosting);
            proptest::prop_assert_eq!(first, c.check(&licenses, firmware_major, hosting));
        }
    }
}

/// The rules inside the ledger: publish records the catalogue, `decide`
/// judges a configuration by the catalogue of the list it freezes to, and
/// replay (`apply`) never judges again.
#[cfg(test)]
mod ledger_tests {
    use super::*;
    use crate::domain::{
        Code, Command, Decision, Event, EventBody, Ledger, Policy, PriceEntryInput, TierInput,
    };

    const T0: i64 = 1_767_225_600;

    /// A live ledger that keeps its stored events, as the engine would.
    struct Live {
        ledger: Ledger,
        events: Vec<Event>,
    }

    impl Live {
        fn new() -> Live {
            Live {
                ledger: Ledger::new(Policy::default()),
                events: Vec::new(),
            }
        }

        fn run(&mut self, cmd: Command, now: i64) -> Result<(), (Code, String)> {
            match self.ledger.decide(&cmd, now) {
                Ok(Decision::Append(ev)) => {
                    let seq = self.ledger.last_seq() + 1;
                    self.ledger.apply(seq, &ev).expect("decided events apply");
                    self.events.push(ev);
                    Ok(())
                }
                Ok(Decision::Retry(_)) => Ok(()),
                Err(r) => Err((r.code, r.message)),
            }
        }

        fn ok(&mut self, cmd: Command, now: i64) {
            if let Err(e) = self.run(cmd, now) {
                panic!("refused: {e:?}");
            }
        }
    }

    fn publish(version: u32, types: &[&str], catalogue: Option<Catalogue>) -> Command {
        Command::PublishPriceList {
            version,
            effective_at: T0,
            entries: types
                .iter()
                .map(|t| PriceEntryInput {
                    license_type: t.to_string(),
                    tiers: vec![TierInput {
                        from_qty: 1,
                        monthly_price: "1".to_string(),
                    }],
                })
                .collect(),
            catalogue,
            ext: Default::default(),
        }
    }

    fn config(pbx: &str, licenses: &[(&str, u32)], hosting: Hosting) -> Command {
        Command::ChangeConfig {
            account_id: "acme".to_string(),
            pbx_id: pbx.to_string(),
            licenses: crate::domain::sim::license_lines(licenses),
            firmware_major: 13,
            hosting,
        }
    }

    fn top_up(key: &str, amount: &str) -> Command {
        Command::TopUp {
            account_id: "acme".to_string(),
            activation_key: key.to_string(),
            amount: amount.to_string(),
        }
    }

    const TYPES: &[&str] = &[
        "PBX-Port13",
        "PBX-Standby13",
        "PBX-IPVA13",
        "Port13$20",
        "App(phone)13",
        "App(softphone)13",
        "PBX-Video13",
        "PBX-UC13",
    ];

    /// An account with credit for a long time under price list 1.
    fn funded(catalogue: Option<Catalogue>) -> Live {
        let mut live = Live::new();
        live.ok(publish(1, TYPES, catalogue), T0);
        live.ok(
            Command::OpenAccount {
                account_id: "acme".to_string(),
            },
            T0,
        );
        live.ok(top_up("KEY-0001", "100000"), T0);
        live
    }

    /// The default V13 catalogue with Video only warning (an "old" catalogue
    /// that a later one tightens).
    fn lenient() -> Catalogue {
        let text = DEFAULT_V13_TOML.replace(
            "id = \"video-needs-phone-app\"\nkind = \"requires\"\nseverity = \"violation\"",
            "id = \"video-needs-phone-app\"\nkind = \"requires\"\nseverity = \"warning\"",
        );
        Catalogue::from_toml(&text).expect("valid")
    }

    #[test]
    fn a_price_list_records_its_catalogue() {
        let live = funded(None);
        let EventBody::PriceListPublished(list) = &live.events[0].body else {
            panic!("a price list first");
        };
        assert_eq!(list.catalogue, Catalogue::default_v13());
        let live = funded(Some(lenient()));
        assert_eq!(
            live.ledger.list_in_effect(T0).expect("v1").catalogue,
            lenient()
        );
    }

    #[test]
    fn publish_refuses_a_bad_catalogue_or_a_catalogue_hardware_type() {
        let mut live = Live::new();
        let mut broken = Catalogue::default_v13();
        broken.rules[0].families = vec!["NoSuchFamily".to_string()];
        let (code, message) = live.run(publish(1, TYPES, Some(broken)), T0).unwrap_err();
        assert_eq!(code, Code::InvalidArgument);
        assert!(message.contains("NoSuchFamily"), "{message}");

        let with_isdn = Catalogue::from_toml(&format!(
            "{DEFAULT_V13_TOML}\n[[types]]\nname = \"ISDN-S0\"\nfamily = \"BRI\"\nhardware = true\nsection = \"§2.2\"\n"
        ))
        .expect("valid");
        let (code, message) = live
            .run(publish(1, &["PBX-Port13", "ISDN-S0"], Some(with_isdn)), T0)
            .unwrap_err();
        assert_eq!(code, Code::InvalidArgument);
        assert!(
            message.contains("ISDN-S0 is a hardware license"),
            "{message}"
        );
        assert_eq!(
            live.ledger.last_seq(),
            0,
            "rejections leave the ledger unchanged"
        );
    }

    #[test]
    fn a_violation_is_failed_precondition_and_changes_nothing() {
        let mut live = funded(None);
        let before = live.ledger.clone();
        let (code, message) = live
            .run(
                config(
                    "pbx-1",
                    &[("Port13$20", 10), ("PBX-Port13", 5)],
                    Hosting::Gateway,
                ),
                T0,
            )
            .unwrap_err();
        assert_eq!(code, Code::FailedPrecondition);
        assert_eq!(
            message,
            "SMB-Port licenses cannot be combined with Port licenses: 10 SMB-Port (10 Port13$20) \
             with 5 Port (5 PBX-Port13) (license model V13r2 §3.4)"
        );
        assert_eq!(live.ledger, before);
    }

    #[test]
    fn core_checks_come_before_the_rules() {
        let mut live = funded(None);
        // An unknown type is an argument error even though the rest breaks a rule.
        let (code, _) = live
            .run(
                config(
                    "p",
                    &[("Port13$20", 10), ("PBX-Port13", 5), ("Nope13", 1)],
                    Hosting::Gateway,
                ),
                T0,
            )
            .unwrap_err();
        assert_eq!(code, Code::InvalidArgument);
        // Firmware below 13 is the core's precondition, with its own message.
        let mut cmd = config("p", &[("PBX-Port13", 1)], Hosting::Gateway);
        if let Command::ChangeConfig { firmware_major, .. } = &mut cmd {
            *firmware_major = 12;
        }
        let (code, message) = live.run(cmd, T0).unwrap_err();
        assert_eq!(code, Code::FailedPrecondition);
        assert!(message.contains("rental needs firmware 13"), "{message}");
        // Not enough credit is reported before the rule violation.
        let mut poor = Live::new();
        poor.ok(publish(1, TYPES, None), T0);
        poor.ok(
            Command::OpenAccount {
                account_id: "acme".to_string(),
            },
            T0,
        );
        let (_, message) = poor
            .run(
                config(
                    "p",
                    &[("Port13$20", 10), ("PBX-Port13", 5)],
                    Hosting::Gateway,
                ),
                T0,
            )
            .unwrap_err();
        assert!(message.contains("no credit"), "{message}");
        // An empty configuration is never judged.
        live.ok(config("p", &[], Hosting::Ipva), T0);
    }

    #[test]
    fn warnings_are_kept_on_the_pbx_and_shown_on_the_view() {
        let mut live = funded(None);
        live.ok(
            config(
                "pbx-1",
                &[("PBX-Port13", 10), ("PBX-Standby13", 5)],
                Hosting::Gateway,
            ),
            T0 + 10,
        );
        live.ok(
            config(
                "pbx-2",
                &[("PBX-Port13", 3), ("PBX-IPVA13", 3)],
                Hosting::Ipva,
            ),
            T0 + 20,
        );
        let view = live.ledger.account_view("acme", T0 + 30).expect("view");
        assert_eq!(view.pbxs.len(), 2);
        assert_eq!(view.pbxs[0].warnings.len(), 1);
        assert!(
            view.pbxs[0].warnings[0].contains("§3.2"),
            "{:?}",
            view.pbxs[0].warnings
        );
        assert!(view.pbxs[1].warnings.is_empty());
        // A later change that fixes it clears the warning.
        live.ok(
            config(
                "pbx-1",
                &[("PBX-Port13", 10), ("PBX-Standby13", 10)],
                Hosting::Gateway,
            ),
            T0 + 40,
        );
        let view = live.ledger.account_view("acme", T0 + 50).expect("view");
        assert!(view.pbxs[0].warnings.is_empty());
    }

    #[test]
    fn replay_never_rejudges_a_configuration_under_a_tighter_catalogue() {
        // Catalogue 1 only warns about Video without Phone App.
        let mut live = funded(Some(lenient()));
        live.ok(
            config(
                "pbx-1",
                &[("PBX-Port13", 5), ("PBX-Video13", 5)],
                Hosting::Gateway,
            ),
            T0 + 100,
        );
        // The vendor tightens the rule: price list 2 carries the default catalogue.
        let mut strict = Catalogue::default_v13();
        strict.version = 2;
        live.ok(publish(2, TYPES, Some(strict)), T0 + 200);
        // A top-up is a contact: pbx-1 re-freezes to list 2 without being judged.
        live.ok(top_up("KEY-0002", "10"), T0 + 300);
        let view = live.ledger.account_view("acme", T0 + 400).expect("view");
        assert_eq!(view.pbxs[0].price_list_version, Some(2));
        assert_eq!(view.pbxs[0].licenses.len(), 2);
        assert_eq!(
            view.pbxs[0].warnings.len(),
            1,
            "the warning of its own time"
        );

        // Replay of the stored events gives the same ledger, accepting it.
        let replayed = Ledger::replay(Policy::default(), &live.events).expect("replay");
        assert_eq!(replayed, live.ledger);
        // Through the log encoding too.
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&live.events, cfg).expect("encode");
        let (decoded, _): (Vec<Event>, usize) =
            bincode::serde::decode_from_slice(&bytes, cfg).expect("decode");
        assert_eq!(
            Ledger::replay(Policy::default(), &decoded).expect("replay"),
            live.ledger
        );

        // Only a new decision meets the new rule.
        let (code, message) = live
            .run(
                config(
                    "pbx-1",
                    &[("PBX-Port13", 5), ("PBX-Video13", 5)],
                    Hosting::Gateway,
                ),
                T0 + 500,
            )
            .unwrap_err();
        assert_eq!(code, Code::FailedPrecondition);
        assert!(message.starts_with("Video needs a Phone App"), "{message}");
    }
}
