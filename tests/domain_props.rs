//! Property tests of the core's laws over random command sequences,
//! malformed input included: conservation, no negative balance, replay ==
//! live, rejections change nothing, statements reconcile, accounts are
//! independent, a past instant is the fold of the log's prefix, and nothing
//! panics.

use isc_ledger::domain::report::view_of;
use isc_ledger::domain::sim::Sim;
use isc_ledger::domain::{
    account_view_at, statement, Command, Event, EventBody, Hosting, Ledger, LicenseLine, Nano,
    Policy, PriceEntryInput, TierInput,
};
use proptest::prelude::*;

const ACCOUNTS: &[&str] = &["a0", "a1", "a2", "bad id"];
const TYPES: &[&str] = &["A", "B", "C", "Relay-X", "Z"];
const AMOUNTS: &[&str] = &[
    "1",
    "0.5",
    "10",
    "100.000000001",
    "0.000000001",
    "3.456",
    "1000000000",
    "0",
    "-1",
    "1e3",
    ".5",
    "12.",
    "0.0000000001",
    "",
    " 1",
    "1000000000.000000001",
];
const PRICES: &[&str] = &[
    "0",
    "1",
    "2.628",
    "0.000000001",
    "1000000",
    "1000000.1",
    "x",
];

fn command() -> impl Strategy<Value = Command> {
    let account = prop::sample::select(ACCOUNTS)
        .prop_map(str::to_owned)
        .boxed();
    let line = (
        prop::sample::select(TYPES),
        prop_oneof![Just(0u32), 1u32..20, 490u32..1010, Just(1_000_001)],
    )
        .prop_map(|(t, q)| LicenseLine {
            license_type: t.into(),
            quantity: q,
        });
    let tier = (1u32..1200, prop::sample::select(PRICES)).prop_map(|(q, p)| TierInput {
        from_qty: q,
        monthly_price: p.to_owned(),
    });
    let entry = (
        prop::sample::select(TYPES),
        prop::collection::vec(tier, 1..3),
    )
        .prop_map(|(t, mut tiers)| {
            tiers.sort_by_key(|t| t.from_qty);
            tiers[0].from_qty = 1;
            PriceEntryInput {
                license_type: t.to_owned(),
                tiers,
            }
        });
    prop_oneof![
        1 => account.clone().prop_map(|account_id| Command::OpenAccount { account_id }),
        5 => (account.clone(), 0u8..4, prop::collection::vec(line, 0..3), prop_oneof![Just(13u32), Just(12), Just(14)], any::<bool>())
            .prop_map(|(account_id, p, licenses, firmware_major, ipva)| Command::ChangeConfig {
                account_id,
                pbx_id: format!("p{p}"),
                licenses,
                firmware_major,
                hosting: if ipva { Hosting::Ipva } else { Hosting::Gateway },
            }),
        4 => (account.clone(), 0u8..12, prop::sample::select(AMOUNTS)).prop_map(|(account_id, k, amount)| Command::TopUp {
            account_id,
            activation_key: format!("KEY-{k:04}"),
            amount: amount.to_owned(),
        }),
        1 => (0u32..5, 0i64..3_000_000, prop::collection::vec(entry, 0..4))
            .prop_map(|(version, effective_at, entries)| Command::PublishPriceList { version, effective_at, entries, catalogue: None, ext: Default::default() }),
        1 => account.clone().prop_map(|account_id| Command::CloseAccount { account_id }),
        3 => policy_command(account),
    ]
}

const MODELS: &[&str] = &["M1", "M2", "Unlisted", "bad model"];
const PLANS: &[&str] = &["1y", "5y", "zz"];

/// Devices (spec §14) and maintenance (spec §15): an extended price list,
/// device registrations and statuses, purchased PBXs (their ids shared
/// with rented ones), plans and upgrades.
fn policy_command(account: BoxedStrategy<String>) -> impl Strategy<Value = Command> {
    use isc_ledger::domain::devices::{Channel, DeviceStatus};
    use isc_ledger::domain::prices::{
        DeviceModelInput, MaintenanceInput, MaintenancePlanInput, PriceListExtInput,
    };
    let ext = (
        prop::sample::select(PRICES),
        prop::sample::select(PRICES),
        any::<bool>(),
        0u32..9,
    )
        .prop_map(
            |(fee, plan_price, with_m2, policy_minor)| PriceListExtInput {
                devices: [("M1", fee), ("M2", "2")]
                    .iter()
                    .take(if with_m2 { 2 } else { 1 })
                    .map(|(m, f)| DeviceModelInput {
                        model: m.to_string(),
                        provisioning_fee: f.to_string(),
                    })
                    .collect(),
                maintenance: Some(MaintenanceInput {
                    policy_major: 7,
                    policy_minor,
                    plans: vec![
                        MaintenancePlanInput {
                            plan: "1y".into(),
                            months: 12,
                            price: plan_price.into(),
                            within_days: 0,
                        },
                        MaintenancePlanInput {
                            plan: "5y".into(),
                            months: 60,
                            price: "3".into(),
                            within_days: 90,
                        },
                    ],
                }),
                service_credits: vec![],
            },
        );
    let release = (5u32..10, 0u32..4);
    prop_oneof![
        1 => (0u32..6, ext).prop_map(|(version, ext)| Command::PublishPriceList {
            version,
            effective_at: 0,
            entries: ab_entries(),
            catalogue: None,
            ext,
        }),
        3 => (account.clone(), 0u8..4, prop::sample::select(MODELS), any::<bool>(), any::<bool>())
            .prop_map(|(account_id, d, model, vendor, provisioned)| Command::RegisterDevice {
                account_id,
                device_id: format!("d{d}"),
                model: model.into(),
                channel: if vendor { Channel::Vendor } else { Channel::Other },
                provisioned,
            }),
        1 => (0u8..4, 0u8..3).prop_map(|(d, s)| Command::SetDeviceStatus {
            device_id: format!("d{d}"),
            status: [DeviceStatus::Active, DeviceStatus::Incompatible, DeviceStatus::Banned][s as usize],
            reason: String::new(),
        }),
        2 => (account, 0u8..4, release.clone()).prop_map(|(account_id, p, (major, minor))| Command::RegisterPbx {
            account_id,
            pbx_id: format!("p{p}"),
            firmware_major: major,
            firmware_minor: minor,
        }),
        3 => (0u8..4, prop::sample::select(PLANS), 0u8..6).prop_map(|(p, plan, k)| Command::BuyPlan {
            pbx_id: format!("p{p}"),
            plan: plan.into(),
            key: format!("PLAN-{k:04}"),
        }),
        2 => (0u8..4, release).prop_map(|(p, (major, minor))| Command::UpgradeFirmware {
            pbx_id: format!("p{p}"),
            firmware_major: major,
            firmware_minor: minor,
        }),
    ]
}

fn history() -> impl Strategy<Value = Vec<(i64, Command)>> {
    // Time steps: often 0 (same instant), sometimes large (weeks).
    let step = prop_oneof![Just(0i64), 1i64..100, 1_000i64..3_000_000];
    prop::collection::vec((step, command()), 1..60)
}

fn run(history: &[(i64, Command)], policy: Policy) -> (Sim, i64) {
    let mut sim = Sim::new(policy);
    let mut now = 0;
    // Start with a usable price list so most commands get past it.
    let base = Command::PublishPriceList {
        version: 1,
        effective_at: 0,
        entries: ["A", "B"]
            .iter()
            .map(|t| PriceEntryInput {
                license_type: t.to_string(),
                tiers: vec![TierInput {
                    from_qty: 1,
                    monthly_price: "2.628".into(),
                }],
            })
            .collect(),
        catalogue: None,
        ext: Default::default(),
    };
    sim.run(&base, 0).unwrap();
    for (step, cmd) in history {
        now += step;
        let before = sim.ledger.clone();
        let len = sim.log.len();
        if sim.run(cmd, now).is_err() {
            assert_eq!(
                sim.ledger, before,
                "a rejected command changed the ledger: {cmd:?}"
            );
            assert_eq!(sim.log.len(), len);
        }
    }
    (sim, now)
}

/// Types `A` and `B` at 2.628 iSC/month, as `run`'s first list.
fn ab_entries() -> Vec<PriceEntryInput> {
    ["A", "B"]
        .iter()
        .map(|t| PriceEntryInput {
            license_type: t.to_string(),
            tiers: vec![TierInput {
                from_qty: 1,
                monthly_price: "2.628".into(),
            }],
        })
        .collect()
}

/// A ledger where devices and plans can be paid: an extended list (M1 fee
/// 15, M2 fee 2, plans 1y 250 and 5y 3, policy 7.1), `a0` with 300 iSC
/// renting two `A` on `p0`, `a1` with 20 iSC, `a2` with nothing.
fn prelude() -> Vec<(i64, Command)> {
    use isc_ledger::domain::prices::{
        DeviceModelInput, MaintenanceInput, MaintenancePlanInput, PriceListExtInput,
    };
    let plan = |plan: &str, months, price: &str, within_days| MaintenancePlanInput {
        plan: plan.into(),
        months,
        price: price.into(),
        within_days,
    };
    // Version 2: `run` publishes a plain version 1 first.
    let mut out = vec![(
        0,
        Command::PublishPriceList {
            version: 2,
            effective_at: 0,
            entries: ab_entries(),
            catalogue: None,
            ext: PriceListExtInput {
                devices: [("M1", "15"), ("M2", "2")]
                    .iter()
                    .map(|(m, f)| DeviceModelInput {
                        model: m.to_string(),
                        provisioning_fee: f.to_string(),
                    })
                    .collect(),
                maintenance: Some(MaintenanceInput {
                    policy_major: 7,
                    policy_minor: 1,
                    plans: vec![plan("1y", 12, "250", 0), plan("5y", 60, "3", 90)],
                }),
                service_credits: vec![],
            },
        },
    )];
    for (id, credit) in [("a0", Some("300")), ("a1", Some("20")), ("a2", None)] {
        out.push((
            0,
            Command::OpenAccount {
                account_id: id.into(),
            },
        ));
        if let Some(amount) = credit {
            out.push((
                0,
                Command::TopUp {
                    account_id: id.into(),
                    activation_key: format!("FUNDING-{id}"),
                    amount: amount.into(),
                },
            ));
        }
    }
    out.push((
        0,
        Command::ChangeConfig {
            account_id: "a0".into(),
            pbx_id: "p0".into(),
            licenses: vec![LicenseLine {
                license_type: "A".into(),
                quantity: 2,
            }],
            firmware_major: 13,
            hosting: Hosting::Gateway,
        },
    ));
    out
}

fn policy_history() -> impl Strategy<Value = Vec<(i64, Command)>> {
    let account = prop::sample::select(ACCOUNTS)
        .prop_map(str::to_owned)
        .boxed();
    let step = prop_oneof![Just(0i64), 1i64..100, 1_000i64..8_000_000];
    let cmd = prop_oneof![4 => policy_command(account), 1 => command()];
    prop::collection::vec((step, cmd), 1..40).prop_map(|h| {
        let mut all = prelude();
        all.extend(h);
        all
    })
}

fn policy(min_runtime: i64) -> Policy {
    Policy {
        min_activation_runtime_s: min_runtime,
        ..Policy::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn replay_equals_live_and_money_is_conserved(h in history(), min_runtime in prop_oneof![Just(0i64), Just(86_400)]) {
        let (sim, now) = run(&h, policy(min_runtime));
        let replayed = Ledger::replay(sim.ledger.policy().clone(), &sim.log).unwrap();
        prop_assert_eq!(&replayed, &sim.ledger);
        for id in sim.ledger.account_ids() {
            let account = sim.ledger.account(id).unwrap();
            let t = account.totals;
            prop_assert_eq!(t.top_ups.0 - t.debits.0 - t.fees.0 - t.forfeited.0, account.balance.0);
            prop_assert!(t.fees.0 >= 0);
            prop_assert!(account.balance.0 >= 0);
            // Reads never go negative, now or projected far ahead.
            for dt in [0, 1, 86_400, 10_000_000] {
                let v = view_of(account, sim.ledger.prices(), now.max(account.since) + dt);
                prop_assert!(v.balance.0 >= 0);
                prop_assert!(v.balance <= account.balance);
            }
            // The whole-history statement reconciles:
            // top-ups − debits − fees − forfeited = balance.
            let st = statement(&sim.ledger, &sim.log, id, -1, now + 5_000_000).unwrap();
            let (top_ups, debits, forfeited) = st.totals();
            prop_assert_eq!(st.opening_balance, Nano::ZERO);
            prop_assert_eq!(top_ups.0 - debits.0 - st.fees().0 - forfeited.0, st.closing_balance.0);
            prop_assert_eq!(st.fees(), t.fees);
            prop_assert!(st.lines.iter().all(|l| l.balance_after.0 >= 0));
        }
    }

    #[test]
    fn fees_and_plans_conserve_money_and_replay(h in policy_history()) {
        let (sim, now) = run(&h, policy(0));
        let replayed = Ledger::replay(sim.ledger.policy().clone(), &sim.log).unwrap();
        prop_assert_eq!(&replayed, &sim.ledger);
        for id in sim.ledger.account_ids() {
            let account = sim.ledger.account(id).unwrap();
            let t = account.totals;
            prop_assert_eq!(t.top_ups.0 - t.debits.0 - t.fees.0 - t.forfeited.0, account.balance.0);
            prop_assert!(account.balance.0 >= 0);
            let st = statement(&sim.ledger, &sim.log, id, -1, now + 5_000_000).unwrap();
            let (top_ups, debits, forfeited) = st.totals();
            prop_assert_eq!(top_ups.0 - debits.0 - st.fees().0 - forfeited.0, st.closing_balance.0);
            prop_assert_eq!(st.fees(), t.fees);
            prop_assert!(st.lines.iter().all(|l| l.balance_after.0 >= 0));
            // What the registry and the coverage say survives replay too.
            prop_assert_eq!(replayed.list_devices(id).unwrap(), sim.ledger.list_devices(id).unwrap());
        }
        for p in sim.ledger.maintenance().pbxs() {
            let v = sim.ledger.maintenance_view(&p.pbx_id, now).unwrap();
            prop_assert!(v.coverage.windows(2).all(|w| w[0].to < w[1].from));
            prop_assert!(v.coverage.iter().all(|c| c.from < c.to));
        }
    }

    #[test]
    fn statement_windows_reconcile_with_views(h in history(), cut in 0.0f64..1.0, len in 0.0f64..1.0) {
        let (sim, now) = run(&h, policy(0));
        let from = (now as f64 * cut) as i64;
        let to = from + ((now - from) as f64 * len) as i64 + 1;
        for id in sim.ledger.account_ids() {
            let Ok(st) = statement(&sim.ledger, &sim.log, id, from, to) else { continue };
            let sum: i128 = st.lines.iter().map(|l| l.amount.0).sum();
            prop_assert_eq!(st.opening_balance.0 + sum, st.closing_balance.0);
            if let Ok(v) = account_view_at(&sim.ledger, &sim.log, id, to) {
                prop_assert_eq!(v.balance, st.closing_balance);
            }
            if let Ok(v) = account_view_at(&sim.ledger, &sim.log, id, from) {
                prop_assert_eq!(v.balance, st.opening_balance);
            }
            prop_assert!(st.lines.windows(2).all(|w| w[0].at <= w[1].at));
            prop_assert!(st.lines.iter().all(|l| l.at > from && l.at <= to));
        }
    }

    #[test]
    fn accounts_do_not_affect_each_other(h in history()) {
        let (sim, now) = run(&h, policy(0));
        for id in sim.ledger.account_ids() {
            // Only this account's events and the price lists.
            let own: Vec<Event> = sim
                .log
                .iter()
                .filter(|e| {
                    e.account_id() == Some(id)
                        || matches!(
                            e.body,
                            EventBody::PriceListPublished(_) | EventBody::PriceListPublishedExt { .. }
                        )
                })
                .cloned()
                .collect();
            let alone = Ledger::replay(sim.ledger.policy().clone(), &own).unwrap();
            let t = now + 1_000;
            prop_assert_eq!(alone.account_view(id, t).unwrap(), sim.ledger.account_view(id, t).unwrap());
        }
    }

    /// What `replay --at T` relies on: the ledger folded from the records
    /// with `at <= T` gives at `T` the views the account's own history
    /// gives (`account_view_at` over the whole log), for every account and
    /// for `T` before, at, between and after records (fees, plans, devices
    /// and maintenance among them).
    #[test]
    fn the_prefix_fold_gives_the_past_views(
        h in prop_oneof![history(), policy_history()],
        cuts in prop::collection::vec(0.0f64..1.1, 1..6),
    ) {
        let (sim, now) = run(&h, policy(0));
        let policy = sim.ledger.policy().clone();
        let mut instants: Vec<i64> = cuts.iter().map(|c| (now as f64 * c) as i64).collect();
        // Exactly at a record, and the second before it.
        for e in sim.log.iter().step_by(7) {
            instants.extend([e.at, e.at - 1]);
        }
        for t in instants {
            let k = sim.log.partition_point(|e| e.at <= t);
            let prefix = Ledger::replay(policy.clone(), &sim.log[..k]).unwrap();
            for id in sim.ledger.account_ids() {
                let past = account_view_at(&sim.ledger, &sim.log, id, t);
                let from_prefix = prefix.account_view(id, t);
                match (past, from_prefix) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{} at {}", id, t),
                    (Err(_), Err(_)) => prop_assert!(prefix.account(id).is_none()),
                    (a, b) => prop_assert!(false, "{} at {}: {:?} vs {:?}", id, t, a, b),
                }
            }
        }
    }
}
