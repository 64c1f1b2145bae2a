//! `replay --json --at T` against the live service. A ledger is written
//! through the real server (manual clock): accounts, a rented PBX accruing,
//! devices (a fee, a ban), purchased PBXs with their included maintenance, a
//! plan and an upgrade, an SLA breach credited by the service, an account
//! that depletes and is reactivated. At instants before, at, between and
//! after records, what the service answered (`GetAccount`, `ListDevices`,
//! `GetMaintenance`) is noted; the offline replay of the stopped store at
//! each instant must give exactly that, field by field.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::TimeZone;
use common::*;
use isc_ledger::api::{convert, pb};
use isc_ledger::cli::audit::{self, DataArg, ReplayArgs};
use isc_ledger::domain::devices::DeviceView;
use isc_ledger::domain::maintenance::MaintenanceView;
use isc_ledger::domain::AccountView;
use isc_ledger::store::StoreLocation;

/// Monday 30 November 2026 (Amsterdam, UTC+1): support hours from 08:30.
fn mon(h: u32, m: u32) -> i64 {
    chrono_tz::Europe::Amsterdam
        .with_ymd_and_hms(2026, 11, 30, h, m, 0)
        .single()
        .unwrap()
        .timestamp()
}

/// The included maintenance of a purchased PBX (3 months).
const INCLUDED: i64 = 7_884_000;

/// Per account: its view, its devices, its purchased PBXs' maintenance.
type Answers = BTreeMap<String, (pb::AccountView, pb::DeviceList, Vec<pb::MaintenanceView>)>;

/// The example list of `prices check` (Yealink-T54W fee 15, policy 7.1,
/// plans 5y/1y, P1 credits), in effect from 0.
fn example_list() -> pb::PublishPriceListRequest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/price_list_example.toml");
    let mut req = isc_ledger::cli::client::read_price_file(&path).expect("example list");
    req.effective_at = 0;
    req
}

struct Live {
    c: pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    clock: pb::clock_client::ClockClient<tonic::transport::Channel>,
    /// The accounts opened so far and their purchased PBXs, in order.
    accounts: BTreeMap<String, Vec<String>>,
    /// What the service answered, by instant.
    seen: Vec<(i64, Answers)>,
}

impl Live {
    async fn at(&mut self, t: i64) {
        self.clock
            .set_time(pb::SetTimeRequest { unix_seconds: t })
            .await
            .unwrap();
    }

    /// Notes every answer now (the clock's instant, after its records).
    async fn note(&mut self, t: i64) {
        let mut answers = Answers::new();
        for (id, pbxs) in &self.accounts {
            let view = self.c.get_account(get(id, 0)).await.unwrap().into_inner();
            assert_eq!(view.at, t, "the service's now");
            let devices = self
                .c
                .list_devices(pb::ListDevicesRequest {
                    account_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            let mut maintenance = vec![];
            for p in pbxs {
                let m = pb::GetMaintenanceRequest { pbx_id: p.clone() };
                maintenance.push(self.c.get_maintenance(m).await.unwrap().into_inner());
            }
            answers.insert(id.clone(), (view, devices, maintenance));
        }
        self.seen.push((t, answers));
    }

    async fn open(&mut self, id: &str, key: &str, amount: &str) {
        self.c.open_account(open(id)).await.unwrap();
        self.c.top_up(topup(id, key, amount)).await.unwrap();
        self.accounts.insert(id.into(), vec![]);
    }

    async fn register_pbx(&mut self, account: &str, pbx: &str, major: u32, minor: u32) {
        self.c
            .register_pbx(pb::RegisterPbxRequest {
                account_id: account.into(),
                pbx_id: pbx.into(),
                firmware_major: major,
                firmware_minor: minor,
            })
            .await
            .unwrap();
        self.accounts
            .get_mut(account)
            .expect("opened")
            .push(pbx.into());
    }

    async fn device(&mut self, account: &str, id: &str, channel: pb::device::Channel) {
        self.c
            .register_device(pb::RegisterDeviceRequest {
                account_id: account.into(),
                device_id: id.into(),
                model: "Yealink-T54W".into(),
                channel: channel as i32,
                provisioned: true,
            })
            .await
            .unwrap();
    }
}

/// The offline `replay --json --at t` of the store, as the service's types.
fn replayed(data: &Path, t: i64) -> Answers {
    let mut out = Vec::new();
    audit::replay(
        &ReplayArgs {
            data: DataArg {
                data: data.to_path_buf(),
            },
            at: Some(t),
            json: true,
        },
        &mut out,
    )
    .expect("replay");
    let views: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("json");
    let list = |v: &serde_json::Value, key: &str| match v.get(key) {
        Some(x) => x.as_array().expect("an array").clone(),
        None => vec![],
    };
    views
        .iter()
        .map(|v| {
            let view: AccountView = serde_json::from_value(v.clone()).expect("a view");
            let id = view.account_id.clone();
            let devices: Vec<DeviceView> = list(v, "devices")
                .into_iter()
                .map(|d| serde_json::from_value(d).expect("a device"))
                .collect();
            let maintenance: Vec<pb::MaintenanceView> = list(v, "maintenance")
                .into_iter()
                .map(|m| {
                    let m: MaintenanceView = serde_json::from_value(m).expect("maintenance");
                    convert::maintenance_view(m)
                })
                .collect();
            (
                id.clone(),
                (
                    convert::account_view(view),
                    convert::device_list(id, devices),
                    maintenance,
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_at_any_instant_answers_as_the_service_did() {
    use pb::device::Channel;
    let t0 = mon(8, 0);
    let (dir, srv, c) = start_temp(t0).await;
    let mut live = Live {
        c,
        clock: clock(&srv.url).await,
        accounts: BTreeMap::new(),
        seen: vec![],
    };
    live.c.publish_price_list(example_list()).await.unwrap();
    live.open("acme", "KEY-0001", "1000").await;
    live.c
        .change_config(config("acme", "rent-1", 10))
        .await
        .unwrap();
    live.device("acme", "mac-1", Channel::Other).await; // pays 15
    live.register_pbx("acme", "srv-1", 6, 5).await;
    live.register_pbx("acme", "srv-2", 7, 1).await;
    live.note(t0).await;
    // Between records: the rented PBX accrues.
    live.at(mon(8, 30)).await;
    live.note(mon(8, 30)).await;

    live.at(mon(9, 0)).await;
    live.c
        .report_incident(pb::ReportIncidentRequest {
            incident_id: "INC-1".into(),
            account_id: "acme".into(),
            priority: 1,
        })
        .await
        .unwrap();
    live.open("beta", "KEY-0002", "50").await;
    // 20 ports: 25 iSC a month, so beta's 50 run out in two months.
    live.c
        .change_config(config("beta", "rent-b", 20))
        .await
        .unwrap();
    live.c
        .upgrade_firmware(pb::UpgradeFirmwareRequest {
            pbx_id: "srv-1".into(),
            firmware_major: 7,
            firmware_minor: 1,
        })
        .await
        .unwrap();
    live.device("acme", "mac-2", Channel::Vendor).await;
    live.note(mon(9, 0)).await;

    // INC-1's response is due 13:00: the service credits acme at 13:00:01.
    live.at(mon(13, 0)).await;
    live.note(mon(13, 0)).await;
    live.at(mon(13, 0) + 1).await;
    live.note(mon(13, 0) + 1).await;

    live.at(mon(14, 0)).await;
    live.c
        .respond_incident(pb::RespondIncidentRequest {
            incident_id: "INC-1".into(),
        })
        .await
        .unwrap();
    live.c
        .buy_plan(pb::BuyPlanRequest {
            pbx_id: "srv-1".into(),
            plan: "5y".into(),
            key: "PLAN-0001".into(),
        })
        .await
        .unwrap();
    live.c
        .set_device_status(pb::SetDeviceStatusRequest {
            device_id: "mac-1".into(),
            status: pb::device::Status::Banned as i32,
            reason: "floods the SBC".into(),
        })
        .await
        .unwrap();
    live.note(mon(14, 0)).await;

    // Weeks without a record: beta depleted, srv-2's included coverage over.
    let later = t0 + INCLUDED + 3_600;
    live.at(later).await;
    live.note(later).await;
    live.at(later + 3_600).await;
    live.c
        .top_up(topup("beta", "KEY-0003", "100"))
        .await
        .unwrap();
    live.c
        .top_up(topup("acme", "KEY-0004", "100"))
        .await
        .unwrap();
    live.note(later + 3_600).await;
    // After the last record.
    live.at(later + 86_400).await;
    live.note(later + 86_400).await;
    srv.stop().await;

    // The scenario shows what it should (else the comparison proves little).
    let at = |t: i64| &live.seen.iter().find(|(s, _)| *s == t).expect("noted").1;
    let balance = |t: i64, id: &str| {
        isc_ledger::domain::Nano::parse(&at(t)[id].0.balance).expect("a decimal")
    };
    assert!(
        balance(mon(13, 0) + 1, "acme").0 > balance(mon(13, 0), "acme").0,
        "credited"
    );
    assert!(
        balance(mon(8, 30), "acme").0 < balance(t0, "acme").0,
        "accrued"
    );
    assert!(!at(mon(8, 30)).contains_key("beta"));
    let suspended = pb::AccountState::Suspended as i32;
    assert_eq!(at(later)["beta"].0.state, suspended);
    assert_ne!(at(later + 3_600)["beta"].0.state, suspended);
    assert_eq!(at(t0)["acme"].1.devices.len(), 1);
    let banned = pb::device::Status::Banned as i32;
    let mac1 = |t: i64| at(t)["acme"].1.devices[0].status;
    assert!(mac1(mon(9, 0)) != banned && mac1(mon(14, 0)) == banned);
    let srv2 = |t: i64| at(t)["acme"].2[1].covered;
    assert!(srv2(mon(14, 0)) && !srv2(later));
    let srv1 = |t: i64| at(t)["acme"].2[0].clone();
    let covered_to = |t: i64| srv1(t).coverage.last().expect("coverage").to;
    assert!(covered_to(mon(14, 0)) > covered_to(mon(13, 0)), "the plan");
    assert_eq!(srv1(t0).firmware_minor, 5);
    assert_eq!(srv1(mon(9, 0)).firmware_minor, 1);

    let data: PathBuf = match pg::store_for(dir.path()) {
        StoreLocation::Dir(d) => d,
        StoreLocation::Postgres(url) => PathBuf::from(url),
    };
    assert_eq!(
        replayed(&data, t0 - 1),
        Answers::new(),
        "before the first record"
    );
    for (t, answers) in &live.seen {
        assert_eq!(&replayed(&data, *t), answers, "replay --at {t}");
    }
}
