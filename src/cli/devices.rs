//! Client subcommands of the device policy (spec §14) and software
//! maintenance (spec §15): `device register|status|list`,
//! `pbx register|upgrade|maintenance`, `plan buy`. Text by default, JSON
//! with `--json`.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::client::{print, print_receipt, rpc_err, ClientOpts};
use super::fmt_instant;
use crate::api::pb;
use crate::domain::money::MAX_REPORTED_INSTANT;

/// `device register|status|list`.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    cmd: DeviceCmd,
}

/// Where a device was bought.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ChannelArg {
    /// From the platform vendor.
    Vendor,
    /// Through another channel.
    Other,
}

/// A device status the vendor sets.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Active,
    Incompatible,
    Banned,
}

#[derive(Debug, Subcommand)]
enum DeviceCmd {
    /// Register a device of an account (agent); a compatible model bought
    /// elsewhere and provisioned pays the list's provisioning fee.
    Register {
        account_id: String,
        /// MAC or serial (1–64 of [A-Za-z0-9._-]).
        device_id: String,
        /// Model name as in the price list, e.g. Yealink-T54W.
        model: String,
        #[arg(long, value_enum, default_value = "vendor")]
        channel: ChannelArg,
        /// Ask the platform to provision it.
        #[arg(long)]
        provisioned: bool,
    },
    /// Mark a device incompatible or banned, or back active (vendor).
    Status {
        device_id: String,
        #[arg(value_enum)]
        status: StatusArg,
        /// Why (kept with the device).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The devices of an account.
    List { account_id: String },
}

/// `pbx register|upgrade|maintenance`.
#[derive(Debug, Args)]
pub struct PbxArgs {
    #[command(subcommand)]
    cmd: PbxCmd,
}

#[derive(Debug, Subcommand)]
enum PbxCmd {
    /// Register a purchased PBX (3 months of maintenance included).
    Register {
        account_id: String,
        pbx_id: String,
        /// Installed release, MAJOR.MINOR (e.g. 7.1).
        release: String,
    },
    /// Install another release on a purchased PBX.
    Upgrade {
        pbx_id: String,
        /// Target release, MAJOR.MINOR.
        release: String,
    },
    /// Coverage, release and whether an upgrade is allowed now.
    Maintenance { pbx_id: String },
}

/// `plan buy`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    cmd: PlanCmd,
}

#[derive(Debug, Subcommand)]
enum PlanCmd {
    /// Buy a maintenance plan for a purchased PBX, paid from its account.
    Buy {
        pbx_id: String,
        /// Plan name of the price list in effect, e.g. 5y or 1y.
        plan: String,
        /// Idempotency key (8–64 printable characters): a retry with the same
        /// key returns the first receipt.
        #[arg(long)]
        key: String,
    },
}

/// `MAJOR.MINOR` (or `MAJOR`) → the two numbers.
fn parse_release(s: &str) -> anyhow::Result<(u32, u32)> {
    let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
    let num = |t: &str| {
        t.parse::<u32>()
            .map_err(|_| anyhow::anyhow!("release {s:?} must read MAJOR.MINOR, e.g. 7.1"))
    };
    Ok((num(major)?, num(minor)?))
}

fn name<E: std::fmt::Debug>(e: Result<E, prost::UnknownEnumValue>) -> String {
    match e {
        Ok(v) => format!("{v:?}"),
        Err(_) => "Unspecified".into(),
    }
}

/// JSON form of a device list.
pub fn devices_json(l: &pb::DeviceList) -> Value {
    json!({
        "account_id": l.account_id,
        "devices": l.devices.iter().map(|d| json!({
            "device_id": d.device_id,
            "model": d.model,
            "channel": name(pb::device::Channel::try_from(d.channel)),
            "support_level": name(pb::device::SupportLevel::try_from(d.support_level)),
            "status": name(pb::device::Status::try_from(d.status)),
            "provisioned": d.provisioned,
            "fee": d.fee,
            "registered_at": d.registered_at,
            "reason": d.reason,
        })).collect::<Vec<_>>(),
    })
}

fn devices_text(l: &pb::DeviceList) -> String {
    let mut s = format!("devices of {} ({})", l.account_id, l.devices.len());
    for d in &l.devices {
        s.push_str(&format!(
            "\n  {:<20} {:<20} {:<7} {:<13} {:<13} {} fee {}{}",
            d.device_id,
            d.model,
            name(pb::device::Channel::try_from(d.channel)),
            name(pb::device::SupportLevel::try_from(d.support_level)),
            name(pb::device::Status::try_from(d.status)),
            if d.provisioned {
                "provisioned"
            } else {
                "not provisioned"
            },
            d.fee,
            if d.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.reason)
            }
        ));
    }
    s
}

/// JSON form of a maintenance view.
pub fn maintenance_json(v: &pb::MaintenanceView) -> Value {
    let mut out = json!({
        "pbx_id": v.pbx_id,
        "account_id": v.account_id,
        "rented": v.rented,
        "firmware_major": v.firmware_major,
        "firmware_minor": v.firmware_minor,
        "coverage": v.coverage.iter().map(|c| json!({"from": c.from, "to": c.to})).collect::<Vec<_>>(),
        "covered": v.covered,
        "upgrade_allowed": v.upgrade_allowed,
        "at": v.at,
    });
    if !v.rented {
        out["commissioned_at"] = json!(v.commissioned_at);
    }
    if let (Some(major), Some(minor)) = (v.policy_major, v.policy_minor) {
        out["policy_release"] = json!(format!("{major}.{minor}"));
    }
    out
}

fn maintenance_text(v: &pb::MaintenanceView) -> String {
    let mut s = format!(
        "PBX {} of {}: {} release {}.{}",
        v.pbx_id,
        v.account_id,
        if v.rented { "rented" } else { "purchased" },
        v.firmware_major,
        v.firmware_minor
    );
    if !v.rented {
        s.push_str(&format!(
            ", commissioned {}",
            fmt_instant(v.commissioned_at)
        ));
    }
    for c in &v.coverage {
        let to = if c.to >= MAX_REPORTED_INSTANT {
            "never ends (maintenance is part of the rent)".to_string()
        } else {
            fmt_instant(c.to)
        };
        s.push_str(&format!("\n  covered {} .. {to}", fmt_instant(c.from)));
    }
    if let (Some(major), Some(minor)) = (v.policy_major, v.policy_minor) {
        s.push_str(&format!("\n  upgrades past {major}.{minor} need coverage"));
    }
    s.push_str(&format!(
        "\n  covered now: {}; upgrade past {}.{} allowed now: {}",
        if v.covered { "yes" } else { "no" },
        v.firmware_major,
        v.firmware_minor,
        if v.upgrade_allowed { "yes" } else { "no" }
    ));
    s
}

/// `isc-ledger device ...`
pub async fn device(opts: &ClientOpts, a: DeviceArgs) -> anyhow::Result<()> {
    let mut c = opts.ledger().await?;
    let r = match a.cmd {
        DeviceCmd::Register {
            account_id,
            device_id,
            model,
            channel,
            provisioned,
        } => {
            let channel = match channel {
                ChannelArg::Vendor => pb::device::Channel::Vendor,
                ChannelArg::Other => pb::device::Channel::Other,
            };
            c.register_device(pb::RegisterDeviceRequest {
                account_id,
                device_id,
                model,
                channel: channel as i32,
                provisioned,
            })
            .await
        }
        DeviceCmd::Status {
            device_id,
            status,
            reason,
        } => {
            let status = match status {
                StatusArg::Active => pb::device::Status::Active,
                StatusArg::Incompatible => pb::device::Status::Incompatible,
                StatusArg::Banned => pb::device::Status::Banned,
            };
            c.set_device_status(pb::SetDeviceStatusRequest {
                device_id,
                status: status as i32,
                reason,
            })
            .await
        }
        DeviceCmd::List { account_id } => {
            let l = c
                .list_devices(pb::ListDevicesRequest { account_id })
                .await
                .map_err(rpc_err)?
                .into_inner();
            print(opts, devices_json(&l), devices_text(&l));
            return Ok(());
        }
    }
    .map_err(rpc_err)?
    .into_inner();
    print_receipt(opts, &r).await;
    Ok(())
}

/// `isc-ledger pbx ...`
pub async fn pbx(opts: &ClientOpts, a: PbxArgs) -> anyhow::Result<()> {
    let mut c = opts.ledger().await?;
    let r = match a.cmd {
        PbxCmd::Register {
            account_id,
            pbx_id,
            release,
        } => {
            let (firmware_major, firmware_minor) = parse_release(&release)?;
            c.register_pbx(pb::RegisterPbxRequest {
                account_id,
                pbx_id,
                firmware_major,
                firmware_minor,
            })
            .await
        }
        PbxCmd::Upgrade { pbx_id, release } => {
            let (firmware_major, firmware_minor) = parse_release(&release)?;
            c.upgrade_firmware(pb::UpgradeFirmwareRequest {
                pbx_id,
                firmware_major,
                firmware_minor,
            })
            .await
        }
        PbxCmd::Maintenance { pbx_id } => {
            let v = c
                .get_maintenance(pb::GetMaintenanceRequest { pbx_id })
                .await
                .map_err(rpc_err)?
                .into_inner();
            print(opts, maintenance_json(&v), maintenance_text(&v));
            return Ok(());
        }
    }
    .map_err(rpc_err)?
    .into_inner();
    print_receipt(opts, &r).await;
    Ok(())
}

/// `isc-ledger plan ...`
pub async fn plan(opts: &ClientOpts, a: PlanArgs) -> anyhow::Result<()> {
    let mut c = opts.ledger().await?;
    let PlanCmd::Buy { pbx_id, plan, key } = a.cmd;
    let r = c
        .buy_plan(pb::BuyPlanRequest { pbx_id, plan, key })
        .await
        .map_err(rpc_err)?
        .into_inner();
    print_receipt(opts, &r).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse() {
        assert_eq!(parse_release("7.1").unwrap(), (7, 1));
        assert_eq!(parse_release("13").unwrap(), (13, 0));
        assert!(parse_release("7.x").is_err());
        assert!(parse_release("-1.0").is_err());
    }
}
