//! The `isc-ledger` command line, as library code so `main.rs` stays a thin
//! clap dispatcher and the subcommands can be tested. This is the binary's
//! edge: errors are `anyhow` here, typed everywhere below.
//!
//! - [`audit`]: offline auditor tools on the data directory (verify, replay,
//!   statement, export).
//! - [`serve`]: the gRPC server; [`client`]: the client subcommands an
//!   operator uses instead of grpcurl; [`bench`]: the `bench-load` generator;
//!   [`sla`]: the incident and SLA-report subcommands.
//! - [`prices_check`]: `prices check`, a price-list file judged offline by
//!   the domain's own `decide`.
//! - [`devices`]: the `device`, `pbx` and `plan` client subcommands (device
//!   policy and software maintenance).

pub mod audit;
pub mod bench;
pub mod client;
pub mod db;
pub mod devices;
pub mod prices_check;
pub mod proofs;
pub mod serve;
pub mod sla;

use anyhow::{bail, Context};

/// Parses an instant given as Unix seconds (`1767225600`) or RFC 3339
/// (`2026-01-01T00:00:00Z`).
pub fn parse_instant(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp())
        .with_context(|| format!("{s:?} is neither Unix seconds nor an RFC 3339 instant"))
}

/// Parses a duration like `30d`, `72h`, `15m`, `10s` or plain seconds.
pub fn parse_duration_s(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'd')) => (&s[..i], 86_400),
        Some((i, 'h')) => (&s[..i], 3_600),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 's')) => (&s[..i], 1),
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 30d, 72h, 15m or 10s"))?;
    if n < 0 {
        bail!("duration {s:?} is negative");
    }
    n.checked_mul(mult)
        .with_context(|| format!("duration {s:?} is too large"))
}

/// Parses a wait like `5s`, `500ms`, `2m` (a bare number is seconds).
pub fn parse_wait(s: &str) -> anyhow::Result<std::time::Duration> {
    let t = s.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        let n: u64 = ms
            .parse()
            .with_context(|| format!("{s:?} is not a duration like 500ms or 5s"))?;
        return Ok(std::time::Duration::from_millis(n));
    }
    let secs = parse_duration_s(t)?;
    Ok(std::time::Duration::from_secs(
        u64::try_from(secs).unwrap_or(0),
    ))
}

/// Formats Unix seconds as RFC 3339 UTC for people.
pub fn fmt_instant(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Formats a number of seconds as `12d 3h 4m 5s`.
pub fn fmt_duration(mut s: i64) -> String {
    if s <= 0 {
        return "0s".into();
    }
    let mut out = Vec::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push(format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_durations() {
        assert_eq!(parse_instant("1767225600").unwrap(), 1_767_225_600);
        assert_eq!(
            parse_instant("2026-01-01T00:00:00Z").unwrap(),
            1_767_225_600
        );
        assert!(parse_instant("tomorrow").is_err());
        assert_eq!(parse_duration_s("30d").unwrap(), 2_592_000);
        assert_eq!(parse_duration_s("72h").unwrap(), 259_200);
        assert_eq!(parse_duration_s("90").unwrap(), 90);
        assert!(parse_duration_s("-1d").is_err());
        assert_eq!(fmt_duration(90_061), "1d 1h 1m 1s");
        assert_eq!(fmt_instant(0), "1970-01-01T00:00:00Z");
    }
}
