//! Golden statement with one-time charges: a provisioning fee (`FEE`, spec
//! §14) and a maintenance plan (`PLAN`, spec §15) between the accruals
//! (insta snapshots in `snapshots/`). Review every change of these files as
//! carefully as code: they are what an operator and an auditor read.

use isc_ledger::cli::prices_check::parse_price_list;
use isc_ledger::domain::devices::{Channel, DeviceStatus};
use isc_ledger::domain::report::statement_csv;
use isc_ledger::domain::sim::Sim;
use isc_ledger::domain::{statement, Command, Hosting, LicenseLine, Policy};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z, the example list's date
const DAY: i64 = 86_400;

fn scenario() -> Sim {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/price_list_example.toml"
    ))
    .unwrap();
    let file = parse_price_list(&text).unwrap();
    let mut sim = Sim::new(Policy::default());
    let commands = [
        (
            T0,
            Command::PublishPriceList {
                version: file.version,
                effective_at: T0,
                entries: file.entries_input(),
                catalogue: None,
                ext: file.ext_input(),
            },
        ),
        (
            T0,
            Command::OpenAccount {
                account_id: "acme".into(),
            },
        ),
        (
            T0,
            Command::TopUp {
                account_id: "acme".into(),
                activation_key: "ISC-2026-0001".into(),
                amount: "500".into(),
            },
        ),
        // 10 PBX-Port13 at 1.25 = 12.5 iSC/month.
        (
            T0,
            Command::ChangeConfig {
                account_id: "acme".into(),
                pbx_id: "pbx-rented".into(),
                licenses: vec![LicenseLine {
                    license_type: "PBX-Port13".into(),
                    quantity: 10,
                }],
                firmware_major: 13,
                hosting: Hosting::Gateway,
            },
        ),
        // A vendor phone: full support, no fee, no line.
        (
            T0 + DAY,
            Command::RegisterDevice {
                account_id: "acme".into(),
                device_id: "00-15-65-aa-00-01".into(),
                model: "Yealink-T54W".into(),
                channel: Channel::Vendor,
                provisioned: true,
            },
        ),
        // The same model bought online and provisioned: the 15 iSC fee.
        (
            T0 + 2 * DAY,
            Command::RegisterDevice {
                account_id: "acme".into(),
                device_id: "00-15-65-bb-00-02".into(),
                model: "Yealink-T54W".into(),
                channel: Channel::Other,
                provisioned: true,
            },
        ),
        (
            T0 + 3 * DAY,
            Command::SetDeviceStatus {
                device_id: "00-15-65-bb-00-02".into(),
                status: DeviceStatus::Incompatible,
                reason: "other firmware than the listed model".into(),
            },
        ),
        // A purchased server on 7.1 with its 3 months, then the 1-year plan.
        (
            T0 + 5 * DAY,
            Command::RegisterPbx {
                account_id: "acme".into(),
                pbx_id: "allworx-1".into(),
                firmware_major: 7,
                firmware_minor: 1,
            },
        ),
        (
            T0 + 10 * DAY,
            Command::BuyPlan {
                pbx_id: "allworx-1".into(),
                plan: "1y".into(),
                key: "PLAN-2026-0001".into(),
            },
        ),
        (
            T0 + 20 * DAY,
            Command::UpgradeFirmware {
                pbx_id: "allworx-1".into(),
                firmware_major: 7,
                firmware_minor: 2,
            },
        ),
    ];
    for (at, cmd) in commands {
        sim.run(&cmd, at).unwrap_or_else(|r| panic!("{cmd:?}: {r}"));
    }
    sim
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn golden_statement_with_fee_and_plan_lines() {
    let sim = scenario();
    let st = statement(&sim.ledger, &sim.log, "acme", 0, T0 + 30 * DAY).unwrap();
    // top-ups − debits − fees − forfeited = balance, to the nano.
    let (top_ups, debits, forfeited) = st.totals();
    assert_eq!(
        top_ups.0 - debits.0 - st.fees().0 - forfeited.0,
        st.closing_balance.0
    );
    settings().bind(|| {
        insta::assert_json_snapshot!("statement_fees_and_plans", st);
        insta::assert_snapshot!("statement_fees_and_plans_csv", statement_csv(&st));
    });
}

/// The same scenario in a real log: the offline tools (`verify`, `replay
/// --json`, `statement`, `export`) see the devices, the plan and the fee.
#[test]
fn the_offline_tools_see_devices_and_maintenance() {
    use isc_ledger::cli::audit::{self, DataArg, ExportArgs, Format, ReplayArgs, StatementArgs};
    use isc_ledger::store::ledger::{commit, open_ledger_with};
    use isc_ledger::store::StoreOptions;
    let sim = scenario();
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut log, mut ledger) = open_ledger_with(
            tmp.path(),
            Policy::default(),
            StoreOptions::without_snapshots(false),
        )
        .unwrap();
        commit(&mut log, &mut ledger, sim.log.clone()).unwrap();
        assert_eq!(ledger, sim.ledger);
    }
    let data = || DataArg {
        data: tmp.path().to_path_buf(),
    };
    let t = T0 + 30 * DAY;
    let mut out = Vec::new();
    audit::replay(
        &ReplayArgs {
            data: data(),
            at: Some(t),
            json: true,
        },
        &mut out,
    )
    .unwrap();
    let views: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let acme = &views[0];
    assert_eq!(acme["devices"].as_array().map(Vec::len), Some(2));
    assert_eq!(acme["devices"][1]["support"], "BestEffort");
    assert_eq!(acme["devices"][1]["fee"], "15");
    assert_eq!(acme["maintenance"][0]["pbx_id"], "allworx-1");
    assert_eq!(acme["maintenance"][0]["firmware_minor"], 2);
    let live = statement(&sim.ledger, &sim.log, "acme", 0, t).unwrap();
    assert_eq!(acme["balance"], live.closing_balance.to_string());
    let mut out = Vec::new();
    audit::statement_cmd(
        &StatementArgs {
            data: data(),
            account: "acme".into(),
            from: 0,
            to: t,
            format: Format::Csv,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), statement_csv(&live));
    let mut out = Vec::new();
    audit::export(&ExportArgs { data: data() }, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("PlanBought") && text.contains("DeviceRegistered"));
}
