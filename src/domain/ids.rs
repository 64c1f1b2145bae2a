//! Identifier syntax (spec §2, §11): accounts, PBXs, license types and
//! activation keys, plus the other named input limits.

use super::error::Rejection;

/// Longest account or PBX id (spec §2).
pub const MAX_ID_LEN: usize = 64;
/// Activation keys are 8–64 printable ASCII bytes (spec §11).
pub const MIN_KEY_LEN: usize = 8;
pub const MAX_KEY_LEN: usize = 64;
/// Longest license type name. Not in the spec: vendor names are ~20 chars.
pub const MAX_LICENSE_TYPE_LEN: usize = 64;
/// Largest quantity of one license type (spec §3).
pub const MAX_QUANTITY: u32 = 1_000_000;
/// Most license lines in one configuration. Not in the spec: the V13 model
/// has a few dozen rentable types; this bounds the work of one command.
pub const MAX_LICENSE_LINES: usize = 256;
/// Most entries in one price list and tiers per entry (same reasoning).
pub const MAX_PRICE_ENTRIES: usize = 1024;
pub const MAX_TIERS: usize = 32;
/// Prefix of hardware licenses, never rentable (spec §4, matched case-sensitively).
pub const HARDWARE_PREFIX: &str = "Relay-";
/// Rental needs firmware 13r1 or later (spec §7).
pub const MIN_FIRMWARE_MAJOR: u32 = 13;

fn show(text: &str) -> String {
    let shown: String = text.chars().take(80).collect();
    format!("{shown:?}")
}

/// The rule [`check_id`] enforces, as its messages state it.
pub const ID_RULE: &str = "1 to 64 characters of letters, digits, '.', '_' and '-'";

/// Accounts and PBXs: 1–64 chars of `[A-Za-z0-9._-]`. The one check of an
/// id, for writes (`decide`) and reads (views, statements, watches, the
/// offline tools) alike; the message names the id and the rule.
pub fn check_id(what: &str, text: &str) -> Result<(), Rejection> {
    if text.is_empty() {
        return Err(Rejection::invalid(format!(
            "{what} is missing (empty): it must be {ID_RULE}"
        )));
    }
    if text.len() > MAX_ID_LEN {
        return Err(Rejection::invalid(format!(
            "{what} {} is too long ({} bytes): it must be {ID_RULE}",
            show(text),
            text.len()
        )));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Rejection::invalid(format!(
            "{what} {} is malformed: it must be {ID_RULE}",
            show(text)
        )));
    }
    Ok(())
}

/// Activation keys: 8–64 bytes in `0x21..=0x7E` (no space).
pub fn check_key(text: &str) -> Result<(), Rejection> {
    if text.len() < MIN_KEY_LEN || text.len() > MAX_KEY_LEN {
        return Err(Rejection::invalid(format!(
            "activation key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} characters long (got {})",
            text.len()
        )));
    }
    if !text.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        return Err(Rejection::invalid(
            "activation key may only contain printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// License type names: 1–64 printable ASCII bytes, not a hardware type.
pub fn check_license_type(text: &str) -> Result<(), Rejection> {
    if text.is_empty() {
        return Err(Rejection::invalid("license type is missing"));
    }
    if text.len() > MAX_LICENSE_TYPE_LEN || !text.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        return Err(Rejection::invalid(format!(
            "license type {} is malformed: 1 to {MAX_LICENSE_TYPE_LEN} printable ASCII characters without spaces",
            show(text)
        )));
    }
    if text.starts_with(HARDWARE_PREFIX) {
        return Err(Rejection::invalid(format!(
            "license type {} is a hardware license: hardware licenses are never rentable",
            show(text)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("account id", "acme-01.main_x").is_ok());
        assert!(check_id("account id", &"a".repeat(64)).is_ok());
        assert!(check_id("account id", &"a".repeat(65)).is_err());
        assert!(check_id("account id", "").is_err());
        assert!(check_id("account id", "a b").is_err());
        assert!(check_id("account id", "é").is_err());
    }

    #[test]
    fn keys() {
        assert!(check_key("KEY-0001").is_ok());
        assert!(check_key("KEY-001").is_err());
        assert!(check_key("KEY 0001").is_err());
        assert!(check_key(&"k".repeat(65)).is_err());
    }

    #[test]
    fn license_types() {
        assert!(check_license_type("App(phone)13").is_ok());
        assert!(check_license_type("Relay-4").is_err());
        assert!(check_license_type("relay-4").is_ok());
    }
}
