//! Golden statements and account views (insta snapshots in `snapshots/`).
//! Review every change of these files as carefully as code: they are what an
//! operator and an auditor read.

use isc_ledger::domain::sim::Sim;
use isc_ledger::domain::{
    account_view_at, statement, Command, Hosting, LicenseLine, Policy, PriceEntryInput, TierInput,
};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400;

fn scenario() -> Sim {
    let mut sim = Sim::new(Policy::default());
    let tiers = |list: &[(u32, &str)]| -> Vec<TierInput> {
        list.iter()
            .map(|(q, p)| TierInput {
                from_qty: *q,
                monthly_price: p.to_string(),
            })
            .collect()
    };
    let list = |version: u32, at: i64, port: &[(u32, &str)], uc: &str| Command::PublishPriceList {
        version,
        effective_at: at,
        entries: vec![
            PriceEntryInput {
                license_type: "PBX-Port13".into(),
                tiers: tiers(port),
            },
            PriceEntryInput {
                license_type: "PBX-UC13".into(),
                tiers: tiers(&[(1, uc)]),
            },
        ],
        catalogue: None,
        ext: Default::default(),
    };
    let config = |pbx: &str, ports: u32, uc: u32| Command::ChangeConfig {
        account_id: "acme".into(),
        pbx_id: pbx.into(),
        licenses: [("PBX-Port13", ports), ("PBX-UC13", uc)]
            .iter()
            .filter(|(_, q)| *q > 0)
            .map(|(t, q)| LicenseLine {
                license_type: (*t).into(),
                quantity: *q,
            })
            .collect(),
        firmware_major: 13,
        hosting: Hosting::Gateway,
    };
    let topup = |key: &str, amount: &str| Command::TopUp {
        account_id: "acme".into(),
        activation_key: key.into(),
        amount: amount.into(),
    };
    let port_v1 = [
        (1, "1.5"),
        (501, "1.2"),
        (1001, "1"),
        (2001, "0.8"),
        (5001, "0.6"),
    ];
    let port_v2 = [
        (1, "1.8"),
        (501, "1.4"),
        (1001, "1.1"),
        (2001, "0.9"),
        (5001, "0.7"),
    ];
    let steps: Vec<(i64, Command)> = vec![
        (T0, list(1, T0, &port_v1, "2.5")),
        (
            T0,
            Command::OpenAccount {
                account_id: "acme".into(),
            },
        ),
        (T0 + 60, topup("ISC-2026-0001", "2000")),
        (T0 + 120, config("hq", 1200, 40)),
        (T0 + 3 * DAY, config("branch", 50, 0)),
        (T0 + 10 * DAY, list(2, T0 + 15 * DAY, &port_v2, "3")),
        (T0 + 20 * DAY, config("branch", 20, 0)),
        (T0 + 25 * DAY, topup("ISC-2026-0002", "150.25")),
        (T0 + 70 * DAY, topup("ISC-2026-0003", "500")),
        (
            T0 + 75 * DAY,
            Command::CloseAccount {
                account_id: "acme".into(),
            },
        ),
    ];
    for (at, cmd) in steps {
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
fn golden_statement_whole_history() {
    let sim = scenario();
    let st = statement(&sim.ledger, &sim.log, "acme", 0, T0 + 90 * DAY).unwrap();
    settings().bind(|| insta::assert_json_snapshot!("statement_whole_history", st));
}

#[test]
fn golden_statement_window() {
    let sim = scenario();
    let st = statement(&sim.ledger, &sim.log, "acme", T0 + 10 * DAY, T0 + 30 * DAY).unwrap();
    settings().bind(|| insta::assert_json_snapshot!("statement_window", st));
}

#[test]
fn golden_account_views() {
    let sim = scenario();
    let views: Vec<_> = [
        T0 + 200,
        T0 + 16 * DAY,
        T0 + 65 * DAY,
        T0 + 74 * DAY,
        T0 + 85 * DAY,
    ]
    .iter()
    .map(|t| account_view_at(&sim.ledger, &sim.log, "acme", *t).unwrap())
    .collect();
    settings().bind(|| insta::assert_json_snapshot!("account_views", views));
}
