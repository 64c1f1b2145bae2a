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
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), T0).await;
    let mut c = ledger(&srv.url).await;
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
    let err = c.publish_price_list(dropped).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("drops device model"), "{err:?}");
    // A KPI the proto does not know, a fee out of bounds.
    let mut bad_kpi = list.clone();
    bad_kpi.version = 2;
    bad_kpi.service_credits[0].kpi = 99;
    let err = c.publish_price_list(bad_kpi).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut bad_fee = list.clone();
    bad_fee.version = 2;
    bad_fee.devices[0].provisioning_fee = "1000000.1".into();
    let err = c.publish_price_list(bad_fee).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
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
    let err = c.publish_price_list(again).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "version 2 exists");
    srv.stop().await;
}
