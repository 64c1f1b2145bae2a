//! Hand-computed scenarios of the device policy (spec §14) and software
//! maintenance (spec §15). Each test is data plus a few assertions; the
//! arithmetic is worked out in comments.
//!
//! The price list: `A` at 2.628 iSC/month = 1000 nano-iSC/s per unit;
//! devices `Yealink-T54W` (fee 15) and `Snom-D785` (fee 0); maintenance
//! policy 7.1, plans `5y` (60 months, 900 iSC, within 90 days) and `1y`
//! (12 months, 250 iSC, any time).

use super::devices::{Channel, DeviceStatus, SupportLevel};
use super::event::{Command, EventBody, NoticeKind, Policy};
use super::maintenance::{Coverage, EXPIRING_NOTICE_S, INCLUDED_S};
use super::money::{Nano, SECONDS_PER_MONTH};
use super::prices::tests::ext_input;
use super::report::{notices_history, statement, LineKind};
use super::sim::{license_lines, price_entries, Sim};
use super::{Code, Hosting};

const T0: i64 = 1_000_000;
const DAY: i64 = 86_400;

fn n(s: &str) -> Nano {
    match s.strip_prefix('-') {
        Some(abs) => Nano(-Nano::parse(abs).unwrap().0),
        None => Nano::parse(s).unwrap(),
    }
}

fn prices(version: u32) -> Command {
    Command::PublishPriceList {
        version,
        effective_at: 0,
        entries: price_entries(&[("A", &[(1, "2.628")])]),
        catalogue: None,
        ext: ext_input(
            &[("Yealink-T54W", "15"), ("Snom-D785", "0")],
            Some((7, 1, &[("5y", 60, "900", 90), ("1y", 12, "250", 0)])),
            &[],
        ),
    }
}

fn open(id: &str) -> Command {
    Command::OpenAccount {
        account_id: id.into(),
    }
}

fn topup(account: &str, key: &str, amount: &str) -> Command {
    Command::TopUp {
        account_id: account.into(),
        activation_key: key.into(),
        amount: amount.into(),
    }
}

fn rent(account: &str, pbx: &str, qty: u32, firmware_major: u32) -> Command {
    Command::ChangeConfig {
        account_id: account.into(),
        pbx_id: pbx.into(),
        licenses: license_lines(&[("A", qty)]),
        firmware_major,
        hosting: Hosting::Gateway,
    }
}

fn device(account: &str, id: &str, model: &str, channel: Channel, provisioned: bool) -> Command {
    Command::RegisterDevice {
        account_id: account.into(),
        device_id: id.into(),
        model: model.into(),
        channel,
        provisioned,
    }
}

fn status(id: &str, status: DeviceStatus) -> Command {
    Command::SetDeviceStatus {
        device_id: id.into(),
        status,
        reason: "seen on the platform".into(),
    }
}

fn register_pbx(account: &str, pbx: &str, major: u32, minor: u32) -> Command {
    Command::RegisterPbx {
        account_id: account.into(),
        pbx_id: pbx.into(),
        firmware_major: major,
        firmware_minor: minor,
    }
}

fn buy(pbx: &str, plan: &str, key: &str) -> Command {
    Command::BuyPlan {
        pbx_id: pbx.into(),
        plan: plan.into(),
        key: key.into(),
    }
}

fn upgrade(pbx: &str, major: u32, minor: u32) -> Command {
    Command::UpgradeFirmware {
        pbx_id: pbx.into(),
        firmware_major: major,
        firmware_minor: minor,
    }
}

/// The list, account `acme` opened and topped up with `credit` at T0.
fn funded(credit: &str) -> Sim {
    let mut sim = Sim::new(Policy::default());
    sim.run(&prices(1), T0).unwrap();
    sim.run(&open("acme"), T0).unwrap();
    sim.run(&topup("acme", "KEY-00001", credit), T0).unwrap();
    sim
}

/// Runs `cmd` expecting a rejection with `want`, and checks it changed nothing.
fn refused(sim: &mut Sim, cmd: &Command, at: i64, want: Code) -> String {
    let before = sim.ledger.clone();
    let r = sim.run(cmd, at).expect_err("must be rejected");
    assert_eq!(r.code, want, "{}", r.message);
    assert_eq!(sim.ledger, before, "a rejection changes nothing");
    r.message
}

fn support(sim: &Sim, id: &str) -> (SupportLevel, bool, Nano) {
    let d = sim.ledger.devices().get(id).expect("registered");
    (d.support(), d.provisioned(), d.fee.unwrap_or(Nano::ZERO))
}

// ---------------------------------------------------------------- §14 devices

#[test]
fn each_support_level_of_the_seed_table() {
    let mut sim = funded("100");
    use Channel::*;
    use SupportLevel::*;
    // Compatible from the vendor: full support, provisioned, no fee.
    let r = sim
        .run(&device("acme", "mac-1", "Yealink-T54W", Vendor, true), T0)
        .unwrap();
    assert_eq!(r.balance, Some(n("100")));
    assert_eq!(support(&sim, "mac-1"), (Full, true, Nano::ZERO));
    // Compatible from another channel, provisioned: the fee is paid.
    let r = sim
        .run(&device("acme", "mac-2", "Yealink-T54W", Other, true), T0)
        .unwrap();
    assert_eq!(r.balance, Some(n("85")));
    assert_eq!(support(&sim, "mac-2"), (PlatformOnly, true, n("15")));
    // ... not provisioned: platform-side support, no fee.
    sim.run(&device("acme", "mac-3", "Yealink-T54W", Other, false), T0)
        .unwrap();
    assert_eq!(support(&sim, "mac-3"), (PlatformOnly, false, Nano::ZERO));
    // A model not in the list, whatever the channel: best effort, never provisioned.
    sim.run(&device("acme", "mac-4", "Polycom-VVX", Other, false), T0)
        .unwrap();
    sim.run(&device("acme", "mac-5", "Polycom-VVX", Vendor, false), T0)
        .unwrap();
    assert_eq!(support(&sim, "mac-4"), (BestEffort, false, Nano::ZERO));
    assert_eq!(support(&sim, "mac-5"), (BestEffort, false, Nano::ZERO));
    let why = refused(
        &mut sim,
        &device("acme", "mac-6", "Polycom-VVX", Other, true),
        T0,
        Code::FailedPrecondition,
    );
    assert!(why.contains("never provisioned"), "{why}");
    // A fee of 0 is a fee paid (provisioned), of nothing.
    sim.run(&device("acme", "mac-7", "Snom-D785", Other, true), T0)
        .unwrap();
    assert_eq!(support(&sim, "mac-7"), (PlatformOnly, true, Nano::ZERO));
    let list = sim.ledger.list_devices("acme").unwrap();
    assert_eq!(
        list.iter()
            .map(|d| d.device_id.as_str())
            .collect::<Vec<_>>(),
        ["mac-1", "mac-2", "mac-3", "mac-4", "mac-5", "mac-7"]
    );
    assert_eq!(list[1].fee, n("15"));
    let acc = sim.ledger.account("acme").unwrap();
    assert_eq!(acc.totals.fees, n("15"));
}

#[test]
fn the_fee_is_charged_at_its_second_and_moves_the_runout() {
    // 100 iSC, one A: 1000 nano/s, runout T0 + 100e9 / 1000 = T0 + 1e8.
    let mut sim = funded("100");
    sim.run(&rent("acme", "pbx-1", 1, 13), T0).unwrap();
    assert_eq!(
        sim.ledger.account("acme").unwrap().runout(),
        Some(T0 + 100_000_000)
    );
    // At T0 + 1000: 1000 s × 1000 nano = 0.000001 × 1000 = 0.001 iSC accrued
    // first, then the fee: 100 − 0.001 − 15 = 84.999.
    let r = sim
        .run(
            &device("acme", "mac-1", "Yealink-T54W", Channel::Other, true),
            T0 + 1000,
        )
        .unwrap();
    assert_eq!(r.balance, Some(n("84.999")));
    // Runout: 84.999e9 nano / 1000 nano/s = 84_999_000 s after T0 + 1000.
    let acc = sim.ledger.account("acme").unwrap();
    assert_eq!(acc.runout(), Some(T0 + 1000 + 84_999_000));
    assert_eq!(acc.since, T0 + 1000, "a fee is a breakpoint");
    // Not a contact: the rate and the frozen list are untouched.
    assert_eq!(acc.configured_rate, n("2.628"));
    // The statement: accrual up to the fee, then the FEE line.
    let st = statement(&sim.ledger, &sim.log, "acme", 0, T0 + 2000).unwrap();
    let lines: Vec<(LineKind, Nano)> = st.lines.iter().map(|l| (l.kind, l.amount)).collect();
    assert_eq!(
        lines,
        vec![
            (LineKind::Open, Nano::ZERO),
            (LineKind::TopUp, n("100")),
            (LineKind::ConfigChange, Nano::ZERO),
            (LineKind::Accrual, n("-0.001")),
            (LineKind::Fee, n("-15")),
            (LineKind::Accrual, n("-0.001")),
        ]
    );
    let fee = &st.lines[4];
    assert_eq!((fee.at, fee.balance_after), (T0 + 1000, n("84.999")));
    assert_eq!(fee.device_id.as_deref(), Some("mac-1"));
    // top-ups − debits − fees − forfeited = balance.
    let (top_ups, debits, forfeited) = st.totals();
    assert_eq!(
        top_ups.0 - debits.0 - st.fees().0 - forfeited.0,
        st.closing_balance.0
    );
    assert_eq!(st.closing_balance, n("84.998"));
}

#[test]
fn a_fee_the_balance_cannot_pay_is_refused_and_one_equal_to_it_leaves_zero() {
    let mut sim = funded("10");
    let why = refused(
        &mut sim,
        &device("acme", "mac-1", "Yealink-T54W", Channel::Other, true),
        T0,
        Code::FailedPrecondition,
    );
    assert!(why.contains("insufficient credit"), "{why}");
    // Exactly the fee: paid, balance 0; with a positive rate the account
    // depletes at the fee's instant.
    let mut sim = funded("15");
    sim.run(&rent("acme", "pbx-1", 1, 13), T0).unwrap();
    // Accrued at T0 + 0: nothing yet, so the balance is still exactly 15.
    let r = sim
        .run(
            &device("acme", "mac-1", "Yealink-T54W", Channel::Other, true),
            T0,
        )
        .unwrap();
    assert_eq!(r.balance, Some(Nano::ZERO));
    let acc = sim.ledger.account("acme").unwrap();
    assert!(acc.suspended, "B = 0 with r > 0 depletes at once");
    let notices = notices_history(&sim.ledger, &sim.log, "acme", 0, T0 + 10);
    assert!(notices
        .iter()
        .any(|x| x.kind == NoticeKind::Depletion && x.at == T0));
}

#[test]
fn a_registration_is_idempotent_and_other_fields_are_already_exists_before_the_balance() {
    let mut sim = funded("20");
    sim.run(&open("other"), T0).unwrap();
    let cmd = device("acme", "mac-1", "Yealink-T54W", Channel::Other, true);
    let first = sim.run(&cmd, T0).unwrap();
    assert_eq!(first.balance, Some(n("5")));
    // Retried later: the first receipt, nothing recorded, no second fee.
    let before = sim.ledger.clone();
    assert_eq!(sim.run(&cmd, T0 + 50).unwrap(), first);
    assert_eq!(sim.ledger, before);
    // Other fields, another account: ALREADY_EXISTS, though the balance of 5
    // could not pay a second fee (the id is checked first).
    for other in [
        device("acme", "mac-1", "Yealink-T54W", Channel::Other, false),
        device("acme", "mac-1", "Yealink-T54W", Channel::Vendor, true),
        device("acme", "mac-1", "Snom-D785", Channel::Other, true),
        device("other", "mac-1", "Yealink-T54W", Channel::Other, true),
    ] {
        refused(&mut sim, &other, T0, Code::AlreadyExists);
    }
}

#[test]
fn device_rejections_in_the_order_of_section_11() {
    let mut sim = funded("20");
    let bad = |id: &str, model: &str| device("acme", id, model, Channel::Vendor, false);
    refused(
        &mut sim,
        &bad("mac 1", "Yealink-T54W"),
        T0,
        Code::InvalidArgument,
    );
    refused(
        &mut sim,
        &bad("", "Yealink-T54W"),
        T0,
        Code::InvalidArgument,
    );
    refused(&mut sim, &bad("mac-1", ""), T0, Code::InvalidArgument);
    refused(
        &mut sim,
        &bad("mac-1", "has space"),
        T0,
        Code::InvalidArgument,
    );
    refused(
        &mut sim,
        &device("ghost", "mac-1", "Yealink-T54W", Channel::Vendor, false),
        T0,
        Code::NotFound,
    );
    refused(
        &mut sim,
        &status("mac-9", DeviceStatus::Banned),
        T0,
        Code::NotFound,
    );
    refused(
        &mut sim,
        &status("mac 9", DeviceStatus::Banned),
        T0,
        Code::InvalidArgument,
    );
    sim.run(&bad("mac-1", "Yealink-T54W"), T0).unwrap();
    let long = Command::SetDeviceStatus {
        device_id: "mac-1".into(),
        status: DeviceStatus::Banned,
        reason: "x".repeat(513),
    };
    refused(&mut sim, &long, T0, Code::InvalidArgument);
    sim.run(
        &Command::CloseAccount {
            account_id: "acme".into(),
        },
        T0,
    )
    .unwrap();
    refused(
        &mut sim,
        &bad("mac-2", "Yealink-T54W"),
        T0,
        Code::FailedPrecondition,
    );
    refused(
        &mut sim,
        &status("mac-1", DeviceStatus::Banned),
        T0,
        Code::FailedPrecondition,
    );
    // The identical retry still answers after the closure (like a top-up's).
    assert!(sim.run(&bad("mac-1", "Yealink-T54W"), T0).is_ok());
}

#[test]
fn status_changes_lower_and_restore_support_without_refund() {
    let mut sim = funded("100");
    sim.run(
        &device("acme", "mac-1", "Yealink-T54W", Channel::Other, true),
        T0,
    )
    .unwrap();
    let r = sim
        .run(&status("mac-1", DeviceStatus::Incompatible), T0 + 10)
        .unwrap();
    assert_eq!(r.balance, Some(n("85")), "no refund");
    assert_eq!(
        support(&sim, "mac-1"),
        (SupportLevel::BestEffort, false, n("15"))
    );
    sim.run(&status("mac-1", DeviceStatus::Banned), T0 + 20)
        .unwrap();
    assert_eq!(support(&sim, "mac-1"), (SupportLevel::None, false, n("15")));
    let view = &sim.ledger.list_devices("acme").unwrap()[0];
    assert_eq!(view.status, DeviceStatus::Banned);
    assert_eq!(view.reason, "seen on the platform");
    sim.run(&status("mac-1", DeviceStatus::Active), T0 + 30)
        .unwrap();
    assert_eq!(
        support(&sim, "mac-1"),
        (SupportLevel::PlatformOnly, true, n("15"))
    );
    // A status change is not money: no statement line, not a breakpoint.
    let st = statement(&sim.ledger, &sim.log, "acme", 0, T0 + 40).unwrap();
    assert_eq!(
        st.lines.iter().filter(|l| l.kind == LineKind::Fee).count(),
        1
    );
    assert_eq!(sim.ledger.account("acme").unwrap().since, T0);
    assert_eq!(
        super::Ledger::replay(Policy::default(), &sim.log).unwrap(),
        sim.ledger
    );
}

// ------------------------------------------------------------ §15 maintenance

#[test]
fn three_months_are_included_at_commissioning() {
    let mut sim = funded("1000");
    sim.run(&register_pbx("acme", "srv-1", 7, 1), T0).unwrap();
    let v = sim.ledger.maintenance_view("srv-1", T0).unwrap();
    assert_eq!(
        v.coverage,
        vec![Coverage {
            from: T0,
            to: T0 + 7_884_000
        }]
    );
    assert_eq!(INCLUDED_S, 7_884_000);
    assert!(v.covered && v.upgrade_allowed && !v.rented);
    // The last covered second: 7.1 → 7.2 is accepted.
    let mut early = sim.clone();
    early.run(&upgrade("srv-1", 7, 2), T0 + 7_883_999).unwrap();
    // The second after: coverage has ended.
    let why = refused(
        &mut sim,
        &upgrade("srv-1", 7, 2),
        T0 + 7_884_000,
        Code::FailedPrecondition,
    );
    assert!(why.contains("no maintenance coverage"), "{why}");
    let v = sim
        .ledger
        .maintenance_view("srv-1", T0 + 7_884_000)
        .unwrap();
    assert!(!v.covered && !v.upgrade_allowed);
}

#[test]
fn the_90_day_window_at_its_last_second_and_the_one_after() {
    // 90 × 86 400 = 7 776 000 s after commissioning.
    let mut sim = funded("1000");
    sim.run(&register_pbx("acme", "srv-1", 7, 1), T0).unwrap();
    let mut late = sim.clone();
    let r = sim
        .run(&buy("srv-1", "5y", "PLAN-0001"), T0 + 7_776_000)
        .unwrap();
    assert_eq!(r.balance, Some(n("100")));
    let why = refused(
        &mut late,
        &buy("srv-1", "5y", "PLAN-0001"),
        T0 + 7_776_001,
        Code::FailedPrecondition,
    );
    assert!(why.contains("within 90 days"), "{why}");
    // The 1-year plan has no window.
    late.run(&buy("srv-1", "1y", "PLAN-0002"), T0 + 7_776_001)
        .unwrap();
}

#[test]
fn coverage_extends_running_coverage_and_restarts_after_a_gap() {
    let mut sim = funded("1000");
    sim.run(&register_pbx("acme", "srv-1", 7, 1), T0).unwrap();
    // Bought while the included 3 months run: the year starts at their end.
    sim.run(&buy("srv-1", "1y", "PLAN-0001"), T0 + 100).unwrap();
    let year = 12 * SECONDS_PER_MONTH;
    let end = T0 + INCLUDED_S + year;
    assert_eq!(
        sim.ledger
            .maintenance_view("srv-1", T0 + 100)
            .unwrap()
            .coverage,
        vec![Coverage { from: T0, to: end }]
    );
    // Bought again after it lapsed: no back-years, coverage starts now.
    let later = end + 1000 * DAY;
    sim.run(&buy("srv-1", "1y", "PLAN-0002"), later).unwrap();
    assert_eq!(
        sim.ledger
            .maintenance_view("srv-1", later)
            .unwrap()
            .coverage,
        vec![
            Coverage { from: T0, to: end },
            Coverage {
                from: later,
                to: later + year
            }
        ]
    );
    // The PLAN lines, and the conservation law with them: 1000 − 250 − 250.
    let st = statement(&sim.ledger, &sim.log, "acme", 0, later).unwrap();
    let plans: Vec<_> = st
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Plan)
        .map(|l| (l.at, l.amount, l.plan.clone(), l.pbx_id.clone()))
        .collect();
    assert_eq!(
        plans,
        vec![
            (T0 + 100, n("-250"), Some("1y".into()), Some("srv-1".into())),
            (later, n("-250"), Some("1y".into()), Some("srv-1".into())),
        ]
    );
    assert_eq!(st.closing_balance, n("500"));
    assert_eq!(st.fees(), n("500"));
    let acc = sim.ledger.account("acme").unwrap();
    assert_eq!(acc.totals.top_ups.0 - acc.totals.fees.0, acc.balance.0);
}

#[test]
fn upgrades_at_and_past_the_policy_release() {
    let after_included = T0 + INCLUDED_S;
    let mut sim = funded("1000");
    sim.run(&register_pbx("acme", "old", 6, 5), T0).unwrap();
    sim.run(&register_pbx("acme", "cur", 7, 1), T0).unwrap();
    // Leapfrogging is refused, covered or not: 6.5 → 7.2.
    let why = refused(
        &mut sim,
        &upgrade("old", 7, 2),
        T0,
        Code::FailedPrecondition,
    );
    assert!(why.contains("no leapfrogging"), "{why}");
    // Up to the policy release, any upgrade is free, even without coverage.
    sim.run(&upgrade("old", 6, 9), after_included).unwrap();
    sim.run(&upgrade("old", 7, 1), after_included).unwrap();
    // Past it, without coverage: refused.
    refused(
        &mut sim,
        &upgrade("old", 7, 2),
        after_included,
        Code::FailedPrecondition,
    );
    refused(
        &mut sim,
        &upgrade("cur", 8, 0),
        after_included,
        Code::FailedPrecondition,
    );
    // A downgrade, or the same release, is accepted.
    sim.run(&upgrade("cur", 7, 0), after_included).unwrap();
    sim.run(&upgrade("cur", 7, 0), after_included).unwrap();
    // With coverage bought: past it.
    sim.run(&buy("old", "1y", "PLAN-0001"), after_included)
        .unwrap();
    sim.run(&upgrade("old", 8, 3), after_included + 1).unwrap();
    let v = sim
        .ledger
        .maintenance_view("old", after_included + 1)
        .unwrap();
    assert_eq!((v.firmware_major, v.firmware_minor), (8, 3));
    assert_eq!(v.policy, Some((7, 1)));
    // Below the policy the next upgrade (to it) is free: allowed.
    let v = sim.ledger.maintenance_view("cur", after_included).unwrap();
    assert!(v.upgrade_allowed && !v.covered);
    assert_eq!(
        super::Ledger::replay(Policy::default(), &sim.log).unwrap(),
        sim.ledger
    );
}

#[test]
fn a_rented_pbx_is_always_covered_and_never_purchased() {
    let mut sim = funded("1000");
    sim.run(&rent("acme", "rent-1", 1, 13), T0).unwrap();
    // Rented: firmware changes through ChangeConfig, free at any time.
    sim.run(&rent("acme", "rent-1", 1, 14), T0 + 400 * DAY)
        .unwrap();
    let v = sim
        .ledger
        .maintenance_view("rent-1", T0 + 400 * DAY)
        .unwrap();
    assert!(v.rented && v.covered && v.upgrade_allowed);
    assert_eq!(v.firmware_major, 14);
    let why = refused(
        &mut sim,
        &upgrade("rent-1", 15, 0),
        T0,
        Code::FailedPrecondition,
    );
    assert!(why.contains("ChangeConfig"), "{why}");
    refused(
        &mut sim,
        &buy("rent-1", "1y", "PLAN-0001"),
        T0,
        Code::FailedPrecondition,
    );
    // Rented or purchased, never both.
    refused(
        &mut sim,
        &register_pbx("acme", "rent-1", 7, 1),
        T0,
        Code::FailedPrecondition,
    );
    sim.run(&register_pbx("acme", "srv-1", 7, 1), T0).unwrap();
    refused(
        &mut sim,
        &rent("acme", "srv-1", 1, 13),
        T0,
        Code::FailedPrecondition,
    );
    let empty = Command::ChangeConfig {
        account_id: "acme".into(),
        pbx_id: "srv-1".into(),
        licenses: vec![],
        firmware_major: 13,
        hosting: Hosting::Gateway,
    };
    refused(&mut sim, &empty, T0, Code::FailedPrecondition);
}

#[test]
fn plan_purchases_are_idempotent_by_key_and_paid_from_the_balance() {
    let mut sim = funded("300");
    sim.run(&open("other"), T0).unwrap();
    sim.run(&register_pbx("acme", "srv-1", 7, 1), T0).unwrap();
    sim.run(&register_pbx("other", "srv-2", 7, 1), T0).unwrap();
    let first = sim.run(&buy("srv-1", "1y", "PLAN-0001"), T0).unwrap();
    assert_eq!(first.balance, Some(n("50")));
    let before = sim.ledger.clone();
    assert_eq!(
        sim.run(&buy("srv-1", "1y", "PLAN-0001"), T0 + 9).unwrap(),
        first
    );
    assert_eq!(sim.ledger, before, "a retry records nothing");
    // The same key with other fields (checked before the balance).
    refused(
        &mut sim,
        &buy("srv-1", "5y", "PLAN-0001"),
        T0,
        Code::AlreadyExists,
    );
    refused(
        &mut sim,
        &buy("srv-2", "1y", "PLAN-0001"),
        T0,
        Code::AlreadyExists,
    );
    // A balance that cannot pay: 50 < 250; `other` has nothing.
    let why = refused(
        &mut sim,
        &buy("srv-1", "1y", "PLAN-0002"),
        T0,
        Code::FailedPrecondition,
    );
    assert!(why.contains("insufficient credit"), "{why}");
    refused(
        &mut sim,
        &buy("srv-2", "1y", "PLAN-0003"),
        T0,
        Code::FailedPrecondition,
    );
    // Syntax, existence, the plan on sale.
    refused(
        &mut sim,
        &buy("srv-1", "1y", "short"),
        T0,
        Code::InvalidArgument,
    );
    refused(
        &mut sim,
        &buy("srv-1", "", "PLAN-0004"),
        T0,
        Code::InvalidArgument,
    );
    refused(
        &mut sim,
        &buy("srv 1", "1y", "PLAN-0004"),
        T0,
        Code::InvalidArgument,
    );
    refused(
        &mut sim,
        &buy("srv-9", "1y", "PLAN-0004"),
        T0,
        Code::NotFound,
    );
    refused(
        &mut sim,
        &buy("srv-1", "3y", "PLAN-0004"),
        T0,
        Code::InvalidArgument,
    );
    refused(&mut sim, &upgrade("srv-9", 7, 2), T0, Code::NotFound);
    refused(
        &mut sim,
        &register_pbx("ghost", "srv-3", 7, 1),
        T0,
        Code::NotFound,
    );
    refused(
        &mut sim,
        &register_pbx("acme", "srv 3", 7, 1),
        T0,
        Code::InvalidArgument,
    );
    // Registering again: the same fields answer the first receipt.
    let again = sim
        .run(&register_pbx("acme", "srv-1", 7, 1), T0 + 5)
        .unwrap();
    assert_eq!(again.seq, 5);
    refused(
        &mut sim,
        &register_pbx("acme", "srv-1", 7, 2),
        T0,
        Code::AlreadyExists,
    );
    refused(
        &mut sim,
        &register_pbx("other", "srv-1", 7, 1),
        T0,
        Code::AlreadyExists,
    );
}

#[test]
fn plans_need_a_maintenance_section_in_effect() {
    let mut sim = Sim::new(Policy::default());
    let plain = Command::PublishPriceList {
        version: 1,
        effective_at: 0,
        entries: price_entries(&[("A", &[(1, "2.628")])]),
        catalogue: None,
        ext: Default::default(),
    };
    sim.run(&plain, T0).unwrap();
    sim.run(&open("acme"), T0).unwrap();
    sim.run(&register_pbx("acme", "srv-1", 6, 0), T0).unwrap();
    refused(
        &mut sim,
        &buy("srv-1", "1y", "PLAN-0001"),
        T0,
        Code::FailedPrecondition,
    );
    // Without a policy release, upgrades are not gated.
    sim.run(&upgrade("srv-1", 9, 0), T0 + 400 * DAY).unwrap();
    // Without a list, every model is best effort.
    let mut bare = Sim::new(Policy::default());
    bare.run(&open("acme"), T0).unwrap();
    bare.run(
        &device("acme", "mac-1", "Yealink-T54W", Channel::Vendor, false),
        T0,
    )
    .unwrap();
    assert_eq!(
        bare.ledger.devices().get("mac-1").unwrap().support(),
        SupportLevel::BestEffort
    );
}

#[test]
fn maintenance_expiring_30_days_before_coverage_ends_unless_it_continues() {
    let mut sim = funded("1000");
    sim.run(&register_pbx("acme", "srv-1", 7, 1), T0).unwrap();
    sim.run(&register_pbx("acme", "srv-2", 7, 1), T0).unwrap();
    // Included: ends T0 + 7 884 000, told at T0 + 7 884 000 − 2 592 000.
    let due = T0 + INCLUDED_S - EXPIRING_NOTICE_S;
    assert_eq!(due, T0 + 5_292_000);
    let live = sim.ledger.notices_between(None, T0, due);
    assert_eq!(live.len(), 2);
    assert!(live
        .iter()
        .all(|x| x.kind == NoticeKind::MaintenanceExpiring && x.at == due));
    assert_eq!(live[0].pbx_id.as_deref(), Some("srv-1"));
    assert!(sim.ledger.notices_between(None, T0, due - 1).is_empty());
    assert_eq!(sim.ledger.next_due_after(T0), Some(due));
    // srv-1's coverage continues (bought a second before the notice): no
    // notice then, one 30 days before the new end. srv-2's plan is bought at
    // the notice's instant: the notice comes first.
    sim.run(&buy("srv-1", "1y", "PLAN-0001"), due - 1).unwrap();
    sim.run(&buy("srv-2", "1y", "PLAN-0002"), due).unwrap();
    let year = 12 * SECONDS_PER_MONTH;
    let new_due = T0 + INCLUDED_S + year - EXPIRING_NOTICE_S;
    let history = notices_history(&sim.ledger, &sim.log, "acme", T0, new_due);
    let got: Vec<(i64, Option<&str>)> = history
        .iter()
        .filter(|x| x.kind == NoticeKind::MaintenanceExpiring)
        .map(|x| (x.at, x.pbx_id.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (due, Some("srv-2")),
            (new_due, Some("srv-1")),
            (new_due, Some("srv-2"))
        ]
    );
    // Live, from now on: the two new ends.
    let live = sim.ledger.notices_between(Some("acme"), due, new_due);
    assert_eq!(live.len(), 2);
    // A closed account gets none.
    sim.run(
        &Command::CloseAccount {
            account_id: "acme".into(),
        },
        due + 1,
    )
    .unwrap();
    assert!(sim
        .ledger
        .notices_between(None, due + 1, new_due)
        .is_empty());
    assert!(notices_history(&sim.ledger, &sim.log, "acme", due, new_due)
        .iter()
        .all(|x| x.kind != NoticeKind::MaintenanceExpiring));
}

#[test]
fn the_new_events_carry_their_account_and_replay_identically() {
    let mut sim = funded("1000");
    sim.run(
        &device("acme", "mac-1", "Yealink-T54W", Channel::Other, true),
        T0,
    )
    .unwrap();
    sim.run(&status("mac-1", DeviceStatus::Banned), T0).unwrap();
    sim.run(&register_pbx("acme", "srv-1", 7, 1), T0).unwrap();
    sim.run(&buy("srv-1", "5y", "PLAN-0001"), T0).unwrap();
    sim.run(&upgrade("srv-1", 7, 3), T0).unwrap();
    for ev in &sim.log[3..] {
        assert_eq!(ev.account_id(), Some("acme"), "{ev:?}");
    }
    assert!(matches!(
        sim.log[6].body,
        EventBody::PlanBought { months: 60, .. }
    ));
    let replayed = super::Ledger::replay(Policy::default(), &sim.log).unwrap();
    assert_eq!(replayed, sim.ledger);
    // A forged plan price above the balance is refused by apply.
    let mut forged = sim.log[6].clone();
    if let EventBody::PlanBought {
        price,
        key,
        from,
        to,
        ..
    } = &mut forged.body
    {
        *price = n("1000000");
        *key = "PLAN-FORGED".into();
        *from = *to;
        *to = *from + 60 * SECONDS_PER_MONTH;
    }
    let mut copy = sim.ledger.clone();
    let err = copy.apply(copy.last_seq() + 1, &forged).unwrap_err();
    assert!(err.0.contains("exceeds its balance"), "{err}");
}
