//! `isc-ledger prices check FILE [--catalogue FILE]`: validates a price-list
//! file (and the license catalogue it will carry) before it is published.
//!
//! Owns the price-list file format (TOML, see docs-license.md) and the
//! offline check. It reads files, so it lives outside the pure domain; the
//! judgement itself is the domain's own `decide` on an empty ledger plus the
//! catalogue's validation, so the check cannot drift from what the server
//! enforces at publish time.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::domain::license_model::Catalogue;

/// Largest price-list or catalogue file read, in bytes: a full catalogue of
/// a few hundred types with tiers fits in far less.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The price-list file, as written by a vendor operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceListFile {
    /// Price-list version, strictly greater than the previous one (spec §7).
    pub version: u32,
    /// Unix seconds from which the list applies (at the next contact).
    pub effective_at: i64,
    /// One entry per rentable license type.
    #[serde(default)]
    pub entries: Vec<EntryFile>,
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
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// Parses a price-list file's text.
pub fn parse_price_list(text: &str) -> Result<PriceListFile, String> {
    toml::from_str(text).map_err(|e| format!("price list is not valid: {e}"))
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
    let list = parse_price_list(&read_bounded(path, "price list")?)?;
    let catalogue = match catalogue_path {
        Some(p) => Some(Catalogue::from_toml(&read_bounded(p, "catalogue")?)?),
        None => None,
    };
    check_price_list(&list, catalogue)
}

/// The pure half of [`check_price_list_file`].
pub fn check_price_list(
    list: &PriceListFile,
    catalogue: Option<Catalogue>,
) -> Result<Report, String> {
    let catalogue_builtin = catalogue.is_none();
    let catalogue = catalogue.unwrap_or_else(Catalogue::default_v13);
    catalogue.validate()?;
    if let Some(hw) = list
        .entries
        .iter()
        .find(|e| catalogue.is_hardware(&e.license_type))
    {
        return Err(format!(
            "{} is a hardware license and is never rentable ({} §1.4)",
            hw.license_type, catalogue.source
        ));
    }
    let notes = list
        .entries
        .iter()
        .filter(|e| catalogue.get(&e.license_type).is_none())
        .map(|e| {
            format!(
                "{} is not in the license catalogue: no license-model rule applies to it",
                e.license_type
            )
        })
        .collect();
    Ok(Report {
        version: list.version,
        effective_at: list.effective_at,
        entries: list.entries.len(),
        catalogue_version: catalogue.version,
        catalogue_builtin,
        notes,
    })
}
