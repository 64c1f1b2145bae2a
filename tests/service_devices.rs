//! Devices (spec §14) and software maintenance (spec §15) end to end: a
//! real server on 127.0.0.1:0 over a temp dir, driven with the generated
//! client.

mod common;

use std::path::Path;

use common::*;
use isc_ledger::api::pb;
use tonic::Code;

const T0: i64 = 1_000_000;

/// The example price list of `prices check`, with its devices, maintenance
/// and service-credit sections, as the CLI reads it.
fn example_list() -> pb::PublishPriceListRequest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/price_list_example.toml");
    let mut req = isc_ledger::cli::client::read_price_file(&path).expect("example list");
    req.effective_at = 0;
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_list_carries_devices_maintenance_and_credits() {
    let (dir, srv, mut c) = start_temp(T0).await;
    let list = example_list();
    assert_eq!(list.devices.len(), 3);
    assert_eq!(list.maintenance.as_ref().map(|m| m.plans.len()), Some(2));
    assert_eq!(list.service_credits.len(), 2);
    let r = c
        .publish_price_list(list.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.seq, r.balance.as_str()), (1, ""));

    // A later list keeps every device model.
    let mut dropped = list.clone();
    dropped.version = 2;
    dropped.devices.pop();
    code_with(
        c.publish_price_list(dropped).await,
        Code::FailedPrecondition,
        "drops device model",
    );
    // A KPI the proto does not know, a fee out of bounds.
    let mut bad_kpi = list.clone();
    bad_kpi.version = 2;
    bad_kpi.service_credits[0].kpi = 99;
    code_of(c.publish_price_list(bad_kpi).await, Code::InvalidArgument);
    let mut bad_fee = list.clone();
    bad_fee.version = 2;
    bad_fee.devices[0].provisioning_fee = "1000000.1".into();
    code_of(c.publish_price_list(bad_fee).await, Code::InvalidArgument);
    // Models may be added and fees changed.
    let mut more = list;
    more.version = 2;
    more.devices.push(pb::DeviceModel {
        model: "Snom-D785".into(),
        provisioning_fee: "9".into(),
    });
    more.devices[0].provisioning_fee = "16".into();
    let r = c.publish_price_list(more).await.unwrap().into_inner();
    assert_eq!(r.seq, 2);
    srv.stop().await;

    // The log replays after a restart (the extended event decodes).
    let srv = start(dir.path(), T0).await;
    let mut c = ledger(&srv.url).await;
    let mut again = example_list();
    again.version = 2;
    code_of(c.publish_price_list(again).await, Code::FailedPrecondition);
    srv.stop().await;
}

fn register_device(
    account: &str,
    id: &str,
    model: &str,
    channel: pb::device::Channel,
    provisioned: bool,
) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        account_id: account.into(),
        device_id: id.into(),
        model: model.into(),
        channel: channel as i32,
        provisioned,
    }
}

fn register_pbx(account: &str, pbx: &str, major: u32, minor: u32) -> pb::RegisterPbxRequest {
    pb::RegisterPbxRequest {
        account_id: account.into(),
        pbx_id: pbx.into(),
        firmware_major: major,
        firmware_minor: minor,
    }
}

fn buy(pbx: &str, plan: &str, key: &str) -> pb::BuyPlanRequest {
    pb::BuyPlanRequest {
        pbx_id: pbx.into(),
        plan: plan.into(),
        key: key.into(),
    }
}

fn upgrade(pbx: &str, major: u32, minor: u32) -> pb::UpgradeFirmwareRequest {
    pb::UpgradeFirmwareRequest {
        pbx_id: pbx.into(),
        firmware_major: major,
        firmware_minor: minor,
    }
}

fn maintenance(pbx: &str) -> pb::GetMaintenanceRequest {
    pb::GetMaintenanceRequest { pbx_id: pbx.into() }
}

/// The example list (Yealink-T54W fee 15, policy 7.1, plans 5y/1y) and
/// account `acme` with 1000 iSC, all at T0.
async fn setup(url: &str) {
    let mut c = ledger(url).await;
    c.publish_price_list(example_list()).await.unwrap();
    c.open_account(open("acme")).await.unwrap();
    c.top_up(topup("acme", "KEY-0001", "1000")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_through_the_server() {
    use pb::device::{Channel, Status, SupportLevel};
    let (_dir, srv, mut c) = start_temp(T0).await;
    setup(&srv.url).await;
    let r = c
        .register_device(register_device(
            "acme",
            "mac-1",
            "Yealink-T54W",
            Channel::Other,
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.seq, r.balance.as_str()), (4, "985"));
    // The identical retry: the first receipt.
    let again = c
        .register_device(register_device(
            "acme",
            "mac-1",
            "Yealink-T54W",
            Channel::Other,
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, r);
    c.register_device(register_device(
        "acme",
        "mac-2",
        "Polycom-VVX",
        Channel::Other,
        false,
    ))
    .await
    .unwrap();
    // Rejections, each with its code.
    let msg = code_of(
        c.register_device(register_device(
            "acme",
            "mac-1",
            "Yealink-T54W",
            Channel::Vendor,
            true,
        ))
        .await,
        Code::AlreadyExists,
    );
    assert!(msg.contains("already registered"), "{msg}");
    code_of(
        c.register_device(register_device(
            "acme",
            "mac 3",
            "Yealink-T54W",
            Channel::Vendor,
            true,
        ))
        .await,
        Code::InvalidArgument,
    );
    code_of(
        c.register_device(register_device(
            "ghost",
            "mac-3",
            "Yealink-T54W",
            Channel::Vendor,
            true,
        ))
        .await,
        Code::NotFound,
    );
    code_of(
        c.register_device(register_device(
            "acme",
            "mac-3",
            "Polycom-VVX",
            Channel::Other,
            true,
        ))
        .await,
        Code::FailedPrecondition,
    );
    code_of(
        c.register_device(pb::RegisterDeviceRequest {
            channel: 0,
            ..register_device("acme", "mac-3", "Yealink-T54W", Channel::Vendor, false)
        })
        .await,
        Code::InvalidArgument,
    );
    c.open_account(open("poor")).await.unwrap();
    code_of(
        c.register_device(register_device(
            "poor",
            "mac-4",
            "Yealink-T54W",
            Channel::Other,
            true,
        ))
        .await,
        Code::FailedPrecondition,
    );
    // Status changes.
    let set = |id: &str, status: Status| pb::SetDeviceStatusRequest {
        device_id: id.into(),
        status: status as i32,
        reason: "interferes with the platform".into(),
    };
    let r = c
        .set_device_status(set("mac-1", Status::Banned))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.balance, "985", "no refund");
    code_of(
        c.set_device_status(set("mac-9", Status::Banned)).await,
        Code::NotFound,
    );
    code_of(
        c.set_device_status(pb::SetDeviceStatusRequest {
            status: 0,
            ..set("mac-1", Status::Active)
        })
        .await,
        Code::InvalidArgument,
    );
    let list = c
        .list_devices(pb::ListDevicesRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let rows: Vec<(&str, i32, i32, bool, &str)> = list
        .devices
        .iter()
        .map(|d| {
            (
                d.device_id.as_str(),
                d.support_level,
                d.status,
                d.provisioned,
                d.fee.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "mac-1",
                SupportLevel::None as i32,
                Status::Banned as i32,
                false,
                "15"
            ),
            (
                "mac-2",
                SupportLevel::BestEffort as i32,
                Status::Active as i32,
                false,
                "0"
            ),
        ]
    );
    assert_eq!(list.devices[0].reason, "interferes with the platform");
    code_of(
        c.list_devices(pb::ListDevicesRequest {
            account_id: "ghost".into(),
        })
        .await,
        Code::NotFound,
    );
    // The FEE line of the statement.
    let st = c
        .get_statement(pb::GetStatementRequest {
            account_id: "acme".into(),
            from: 0,
            to: T0,
        })
        .await
        .unwrap()
        .into_inner();
    let fee = st
        .lines
        .iter()
        .find(|l| l.kind == pb::statement_line::Kind::Fee as i32)
        .expect("a FEE line");
    assert_eq!(
        (
            fee.amount.as_str(),
            fee.balance_after.as_str(),
            fee.device_id.as_str()
        ),
        ("-15", "985", "mac-1")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_through_the_server() {
    let (dir, srv, mut c) = start_temp(T0).await;
    setup(&srv.url).await;
    let mut clk = clock(&srv.url).await;
    let r = c
        .register_pbx(register_pbx("acme", "srv-1", 6, 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.seq, r.balance.as_str()), (4, "1000"));
    c.register_pbx(register_pbx("acme", "srv-2", 7, 1))
        .await
        .unwrap();
    let v = c
        .get_maintenance(maintenance("srv-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        v.coverage,
        vec![pb::CoverageInterval {
            from: T0,
            to: T0 + 7_884_000
        }]
    );
    assert!(v.covered && v.upgrade_allowed && !v.rented);
    assert_eq!((v.policy_major, v.policy_minor), (Some(7), Some(1)));
    // Leapfrogging 7.1 is refused; 6.5 → 7.1 is free.
    let msg = code_of(
        c.upgrade_firmware(upgrade("srv-1", 7, 2)).await,
        Code::FailedPrecondition,
    );
    assert!(msg.contains("leapfrog"), "{msg}");
    c.upgrade_firmware(upgrade("srv-1", 7, 1)).await.unwrap();
    // The 5-year plan within 90 days; idempotent by key.
    let plan = c
        .buy_plan(buy("srv-1", "5y", "PLAN-0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.balance, "100");
    // The first receipt's seq, at and balance, under the newest tree head (§13).
    let retry = c
        .buy_plan(buy("srv-1", "5y", "PLAN-0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (retry.seq, retry.at, &retry.balance),
        (plan.seq, plan.at, &plan.balance)
    );
    code_of(
        c.buy_plan(buy("srv-2", "5y", "PLAN-0001")).await,
        Code::AlreadyExists,
    );
    code_of(
        c.buy_plan(buy("srv-2", "5y", "PLAN-0002")).await,
        Code::FailedPrecondition,
    );
    code_of(
        c.buy_plan(buy("srv-2", "9y", "PLAN-0002")).await,
        Code::InvalidArgument,
    );
    code_of(
        c.buy_plan(buy("srv-2", "1y", "no")).await,
        Code::InvalidArgument,
    );
    code_of(
        c.buy_plan(buy("srv-9", "1y", "PLAN-0002")).await,
        Code::NotFound,
    );
    code_of(
        c.upgrade_firmware(upgrade("srv-9", 7, 2)).await,
        Code::NotFound,
    );
    code_of(
        c.register_pbx(register_pbx("acme", "srv-1", 6, 4)).await,
        Code::AlreadyExists,
    );
    code_of(
        c.register_pbx(register_pbx("ghost", "srv-3", 7, 1)).await,
        Code::NotFound,
    );
    // A rented PBX: always covered, never purchased.
    c.change_config(config("acme", "rent-1", 1)).await.unwrap();
    let v = c
        .get_maintenance(maintenance("rent-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(v.rented && v.covered && v.upgrade_allowed);
    code_of(
        c.upgrade_firmware(upgrade("rent-1", 14, 0)).await,
        Code::FailedPrecondition,
    );
    code_of(
        c.register_pbx(register_pbx("acme", "rent-1", 7, 1)).await,
        Code::FailedPrecondition,
    );
    code_of(
        c.change_config(config("acme", "srv-2", 1)).await,
        Code::FailedPrecondition,
    );
    code_of(c.get_maintenance(maintenance("nope")).await, Code::NotFound);

    // After the included 3 months: srv-2 (no plan) may not pass 7.1; srv-1 may.
    let mut w = c
        .watch(pb::WatchRequest {
            account_id: "acme".into(),
            since: T0,
        })
        .await
        .unwrap()
        .into_inner();
    clk.set_time(pb::SetTimeRequest {
        unix_seconds: T0 + 7_884_000,
    })
    .await
    .unwrap();
    let mut expiring = Vec::new();
    while expiring.is_empty() {
        let n = next_notice_of(&mut w, pb::notice::Kind::MaintenanceExpiring).await;
        expiring.push((n.at, n.pbx_id, n.threshold_seconds));
    }
    // srv-2's included coverage ends unrenewed; srv-1's continues (5y plan).
    assert_eq!(
        expiring,
        vec![(T0 + 7_884_000 - 2_592_000, "srv-2".to_string(), 2_592_000)]
    );
    let msg = code_of(
        c.upgrade_firmware(upgrade("srv-2", 7, 2)).await,
        Code::FailedPrecondition,
    );
    assert!(msg.contains("coverage"), "{msg}");
    let v = c
        .get_maintenance(maintenance("srv-2"))
        .await
        .unwrap()
        .into_inner();
    assert!(!v.covered && !v.upgrade_allowed);
    c.upgrade_firmware(upgrade("srv-1", 8, 0)).await.unwrap();
    // Past 90 days the 5-year plan is no longer sold, the 1-year one is.
    code_of(
        c.buy_plan(buy("srv-2", "5y", "PLAN-0003")).await,
        Code::FailedPrecondition,
    );
    c.top_up(topup("acme", "KEY-0002", "500")).await.unwrap();
    c.buy_plan(buy("srv-2", "1y", "PLAN-0003")).await.unwrap();
    c.upgrade_firmware(upgrade("srv-2", 7, 2)).await.unwrap();
    let v = c
        .get_maintenance(maintenance("srv-2"))
        .await
        .unwrap()
        .into_inner();
    // Bought at the very second the included coverage ended: one interval.
    assert_eq!(
        v.coverage,
        vec![pb::CoverageInterval {
            from: T0,
            to: T0 + 7_884_000 + 12 * 2_628_000
        }]
    );
    assert_eq!((v.firmware_major, v.firmware_minor), (7, 2));
    srv.stop().await;

    // Everything replays after a restart to the same answers.
    let srv = start(dir.path(), T0 + 7_884_000).await;
    let mut c = ledger(&srv.url).await;
    let again = c
        .get_maintenance(maintenance("srv-2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.coverage, v.coverage);
    // The first receipt's seq, at and balance, under the newest tree head (§13).
    let retry = c
        .buy_plan(buy("srv-1", "5y", "PLAN-0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (retry.seq, retry.at, &retry.balance),
        (plan.seq, plan.at, &plan.balance)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_of_the_device_and_maintenance_rpcs() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_roles(dir.path(), T0).await;
    let callers = Callers::connect(&srv.url).await;
    let with = |tok: &str| callers.with(tok);
    let dev = || {
        register_device(
            "acme",
            "mac-1",
            "Yealink-T54W",
            pb::device::Channel::Vendor,
            false,
        )
    };
    let banned = || pb::SetDeviceStatusRequest {
        device_id: "mac-1".into(),
        status: pb::device::Status::Banned as i32,
        reason: String::new(),
    };
    with("vendor-tok")
        .publish_price_list(example_list())
        .await
        .unwrap();
    with("agent-tok").open_account(open("acme")).await.unwrap();
    // The agent registers devices and PBXs, buys plans and upgrades.
    code_of(
        with("vendor-tok").register_device(dev()).await,
        Code::PermissionDenied,
    );
    code_of(
        with("audit-tok").register_device(dev()).await,
        Code::PermissionDenied,
    );
    with("agent-tok").register_device(dev()).await.unwrap();
    code_of(
        with("vendor-tok")
            .register_pbx(register_pbx("acme", "srv-1", 7, 1))
            .await,
        Code::PermissionDenied,
    );
    with("agent-tok")
        .register_pbx(register_pbx("acme", "srv-1", 7, 1))
        .await
        .unwrap();
    code_of(
        with("audit-tok")
            .buy_plan(buy("srv-1", "1y", "PLAN-0001"))
            .await,
        Code::PermissionDenied,
    );
    code_of(
        with("vendor-tok")
            .upgrade_firmware(upgrade("srv-1", 7, 2))
            .await,
        Code::PermissionDenied,
    );
    with("agent-tok")
        .upgrade_firmware(upgrade("srv-1", 7, 2))
        .await
        .unwrap();
    // The vendor (and admin) sets a device's status; the agent may not.
    code_of(
        with("agent-tok").set_device_status(banned()).await,
        Code::PermissionDenied,
    );
    code_of(
        with("audit-tok").set_device_status(banned()).await,
        Code::PermissionDenied,
    );
    with("vendor-tok")
        .set_device_status(banned())
        .await
        .unwrap();
    with("admin-tok").set_device_status(banned()).await.unwrap();
    // The auditor reads.
    let list = pb::ListDevicesRequest {
        account_id: "acme".into(),
    };
    with("audit-tok").list_devices(list.clone()).await.unwrap();
    with("audit-tok")
        .get_maintenance(maintenance("srv-1"))
        .await
        .unwrap();
    code_of(
        with("vendor-tok").list_devices(list).await,
        Code::PermissionDenied,
    );
    srv.stop().await;
}
