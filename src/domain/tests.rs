//! Hand-computed scenarios of the core (spec §4–§8, §11, §12). Each test is
//! data plus a few assertions; the arithmetic is worked out in comments.

use super::event::{Command, NoticeKind, Policy};
use super::money::Nano;
use super::report::{account_view_at, notices_history, statement, AccountState, LineKind};
use super::sim::{license_lines, price_entries, Sim};
use super::{Code, Hosting};

const T0: i64 = 1_000_000;

fn n(s: &str) -> Nano {
    match s.strip_prefix('-') {
        Some(abs) => Nano(-Nano::parse(abs).unwrap().0),
        None => Nano::parse(s).unwrap(),
    }
}

fn prices(version: u32, effective_at: i64, entries: &[(&str, &[(u32, &str)])]) -> Command {
    Command::PublishPriceList {
        version,
        effective_at,
        entries: price_entries(entries),
        catalogue: None,
        ext: Default::default(),
    }
}

fn open(id: &str) -> Command {
    Command::OpenAccount {
        account_id: id.into(),
    }
}

fn config(account: &str, pbx: &str, lines: &[(&str, u32)]) -> Command {
    Command::ChangeConfig {
        account_id: account.into(),
        pbx_id: pbx.into(),
        licenses: license_lines(lines),
        firmware_major: 13,
        hosting: Hosting::Gateway,
    }
}

fn topup(account: &str, key: &str, amount: &str) -> Command {
    Command::TopUp {
        account_id: account.into(),
        activation_key: key.into(),
        amount: amount.into(),
    }
}

fn close(account: &str) -> Command {
    Command::CloseAccount {
        account_id: account.into(),
    }
}

/// A ledger with one price list: `A` at 2.628 iSC/month = 1000 nano/s per unit.
fn sim_with(policy: Policy) -> Sim {
    let mut sim = Sim::new(policy);
    sim.run(
        &prices(1, 0, &[("A", &[(1, "2.628")]), ("B", &[(1, "0")])]),
        T0,
    )
    .unwrap();
    sim.run(&open("acme"), T0).unwrap();
    sim
}

fn code(result: Result<super::Receipt, super::Rejection>) -> Code {
    result.expect_err("must be rejected").code
}

fn view(sim: &Sim, t: i64) -> super::AccountView {
    account_view_at(&sim.ledger, &sim.log, "acme", t).unwrap()
}

#[test]
fn tiered_port_configuration_in_the_view() {
    // 1200 PBX-Port13: 500 × 2 + 500 × 1.5 + 200 × 1 = 1950 iSC/month.
    let mut sim = Sim::new(Policy::default());
    let port = [
        (1, "2"),
        (501, "1.5"),
        (1001, "1"),
        (2001, "0.8"),
        (5001, "0.5"),
    ];
    sim.run(&prices(1, 0, &[("PBX-Port13", &port)]), T0)
        .unwrap();
    sim.run(&open("acme"), T0).unwrap();
    sim.run(&topup("acme", "KEY-00001", "10000"), T0).unwrap();
    sim.run(&config("acme", "pbx1", &[("PBX-Port13", 1200)]), T0)
        .unwrap();
    let v = sim.ledger.account_view("acme", T0).unwrap();
    assert_eq!(v.monthly_rate, n("1950"));
    // daily: 1950 × 86400 / 2628000 = 64.109589041(0958…) → 64.109589041
    assert_eq!(v.daily_rate, n("64.109589041"));
    let line = &v.pbxs[0].licenses[0];
    assert_eq!(
        line.tiers.iter().map(|t| t.units).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    assert_eq!(v.pbxs[0].monthly_cost, n("1950"));
    assert_eq!(v.state, AccountState::Active);
}

#[test]
fn prices_stay_frozen_until_the_next_contact() {
    let mut sim = sim_with(Policy::default());
    sim.run(&topup("acme", "KEY-00001", "1000"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    sim.run(&config("acme", "p2", &[("A", 1)]), T0).unwrap();
    // v2 doubles A's price, effective at T0 + 100.
    sim.run(
        &prices(2, T0 + 100, &[("A", &[(1, "5.256")]), ("B", &[(1, "0")])]),
        T0 + 10,
    )
    .unwrap();
    // Long after v2 took effect, both PBXs still pay v1 (no contact yet).
    let v = view(&sim, T0 + 1000);
    assert_eq!(v.monthly_rate, n("5.256"));
    assert!(v.pbxs.iter().all(|p| p.price_list_version == Some(1)));
    // A config change of p1 is a contact for p1 only.
    sim.run(&config("acme", "p1", &[("A", 1)]), T0 + 1000)
        .unwrap();
    let v = view(&sim, T0 + 1000);
    assert_eq!(v.pbxs[0].price_list_version, Some(2));
    assert_eq!(v.pbxs[1].price_list_version, Some(1));
    assert_eq!(v.monthly_rate, n("7.884"));
    // A top-up contacts every PBX of the account.
    sim.run(&topup("acme", "KEY-00002", "1"), T0 + 2000)
        .unwrap();
    let v = view(&sim, T0 + 2000);
    assert!(v.pbxs.iter().all(|p| p.price_list_version == Some(2)));
    assert_eq!(v.monthly_rate, n("10.512"));
    // A list effective in the future is not used before its date.
    sim.run(
        &prices(3, T0 + 1_000_000, &[("A", &[(1, "1")]), ("B", &[(1, "0")])]),
        T0 + 3000,
    )
    .unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0 + 3000)
        .unwrap();
    assert_eq!(view(&sim, T0 + 3000).pbxs[0].price_list_version, Some(2));
}

#[test]
fn depletion_at_t_zero_and_the_seconds_around_it() {
    // 1 iSC at 1000 nano/s → t_zero = start + 1_000_000 s exactly.
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let mut sim = sim_with(policy);
    sim.run(&topup("acme", "KEY-00001", "1"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    let t_zero = T0 + 1_000_000;
    let before = view(&sim, t_zero - 1);
    assert_eq!(before.balance, n("0.000001")); // 1e9 − 999_999 × 1000
    assert_eq!(before.state, AccountState::Active);
    assert_eq!(before.runtime_seconds, Some(1));
    assert_eq!(before.runout_at, Some(t_zero));
    for t in [t_zero, t_zero + 1] {
        let v = view(&sim, t);
        assert_eq!(v.balance, Nano::ZERO);
        assert_eq!(v.state, AccountState::Suspended);
        assert_eq!(v.monthly_rate, Nano::ZERO);
        assert_eq!(v.runtime_seconds, None);
        assert!(v.pbxs.iter().all(|p| !p.enabled));
    }
    // A config change at exactly t_zero sees a suspended account: a rise is refused...
    assert_eq!(
        code(sim.run(&config("acme", "p1", &[("A", 2)]), t_zero)),
        Code::FailedPrecondition
    );
    // ...a lowering is accepted and the account stays suspended.
    sim.run(&config("acme", "p1", &[("B", 1)]), t_zero).unwrap();
    assert_eq!(view(&sim, t_zero).state, AccountState::Suspended);
    let st = statement(&sim.ledger, &sim.log, "acme", T0, t_zero).unwrap();
    let depletion = st
        .lines
        .iter()
        .position(|l| l.kind == LineKind::Depletion)
        .unwrap();
    assert_eq!(st.lines[depletion - 1].amount, n("-1"));
    assert_eq!(st.lines[depletion - 1].accrual.unwrap().seconds, 1_000_000);
    assert_eq!(st.closing_balance, Nano::ZERO);
}

#[test]
fn a_read_one_second_before_t_zero_may_show_zero() {
    // B = 1 nano, rate 0.0015768 iSC/month = 0.6 nano/s: s* = 2 (1.2 ≥ 1);
    // at s = 1 the rounded accrual is round(0.6) = 1 = B.
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let mut sim = Sim::new(policy);
    sim.run(&prices(1, 0, &[("A", &[(1, "0.0015768")])]), T0)
        .unwrap();
    sim.run(&open("acme"), T0).unwrap();
    sim.run(&topup("acme", "KEY-00001", "0.000000001"), T0)
        .unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    let v = view(&sim, T0 + 1);
    assert_eq!(
        (v.balance, v.state, v.runtime_seconds),
        (Nano::ZERO, AccountState::Active, Some(1))
    );
    assert_eq!(view(&sim, T0 + 2).state, AccountState::Suspended);
}

#[test]
fn accrual_rounds_half_to_even_once_per_interval() {
    // Rate 1 nano/month. Half a month (1_314_000 s) accrues 0.5 nano → 0 (even);
    // then 1.5 months (3_942_000 s) accrue 1.5 nano → 2 (even).
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let mut sim = Sim::new(policy);
    sim.run(
        &prices(1, 0, &[("A", &[(1, "0.000000001")]), ("B", &[(1, "0")])]),
        T0,
    )
    .unwrap();
    sim.run(&open("acme"), T0).unwrap();
    sim.run(&topup("acme", "KEY-00001", "1"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    let r = sim
        .run(&config("acme", "p2", &[("B", 1)]), T0 + 1_314_000)
        .unwrap();
    assert_eq!(r.balance, Some(n("1")));
    let r = sim
        .run(
            &config("acme", "p2", &[("B", 2)]),
            T0 + 1_314_000 + 3_942_000,
        )
        .unwrap();
    assert_eq!(r.balance, Some(Nano(1_000_000_000 - 2)));
    let st = statement(&sim.ledger, &sim.log, "acme", 0, T0 + 5_256_000).unwrap();
    let accruals: Vec<_> = st
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Accrual)
        .map(|l| l.amount)
        .collect();
    // The first interval keeps its line although its rounded debit is 0.
    assert_eq!(accruals, vec![Nano(0), Nano(-2)]);
}

#[test]
fn reactivation_on_top_up() {
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let mut sim = sim_with(policy);
    sim.run(&topup("acme", "KEY-00001", "1"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    let t_zero = T0 + 1_000_000;
    // A top-up at exactly t_zero reactivates at once.
    let r = sim.run(&topup("acme", "KEY-00002", "2"), t_zero).unwrap();
    assert_eq!(r.balance, Some(n("2")));
    let v = view(&sim, t_zero);
    assert_eq!(v.state, AccountState::Active);
    assert_eq!(v.runout_at, Some(t_zero + 2_000_000));
    let st = statement(&sim.ledger, &sim.log, "acme", T0, t_zero + 10).unwrap();
    let kinds: Vec<LineKind> = st.lines.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        vec![
            LineKind::Accrual,
            LineKind::Depletion,
            LineKind::TopUp,
            LineKind::Reactivation,
            LineKind::Accrual
        ]
    );
    let notices = notices_history(&sim.ledger, &sim.log, "acme", T0, t_zero);
    let kinds: Vec<NoticeKind> = notices.iter().map(|n| n.kind).collect();
    // 30-day and 7-day reminders (1_000_000 s of credit is under 30 days at once),
    // depletion, reactivation, then the new funding period's 30-day reminder
    // at the top-up itself (2_000_000 s of credit).
    use NoticeKind::*;
    assert_eq!(
        kinds,
        vec![Reminder, Reminder, Depletion, Reactivation, Reminder]
    );
    assert_eq!(notices[4].at, t_zero);
}

#[test]
fn min_activation_runtime_refuses_a_rise() {
    // 1 iSC pays 1_000_000 s of one A, 500_000 s of two; M = 600_000 s.
    let policy = Policy {
        min_activation_runtime_s: 600_000,
        ..Policy::default()
    };
    let mut sim = sim_with(policy);
    sim.run(&topup("acme", "KEY-00001", "1"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    let before = sim.ledger.clone();
    let err = sim.run(&config("acme", "p1", &[("A", 2)]), T0).unwrap_err();
    assert_eq!(err.code, Code::FailedPrecondition);
    assert!(
        err.message.contains("insufficient credit"),
        "{}",
        err.message
    );
    assert_eq!(sim.ledger, before, "a rejection changes nothing");
    // Lowering is always fine; a zero balance refuses any rise.
    sim.run(&config("acme", "p1", &[("B", 1)]), T0).unwrap();
}

#[test]
fn zero_balance_refuses_any_rise_even_with_no_minimum() {
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let mut sim = sim_with(policy);
    assert_eq!(
        code(sim.run(&config("acme", "p1", &[("A", 1)]), T0)),
        Code::FailedPrecondition
    );
    // Zero-priced licenses do not raise the rate: accepted, ACTIVE, nothing accrues.
    sim.run(&config("acme", "p1", &[("B", 3)]), T0).unwrap();
    let v = view(&sim, T0 + 100);
    assert_eq!((v.state, v.runtime_seconds), (AccountState::Active, None));
}

#[test]
fn activation_keys_are_idempotent_and_exclusive() {
    let mut sim = sim_with(Policy::default());
    sim.run(&open("other"), T0).unwrap();
    let first = sim.run(&topup("acme", "KEY-00001", "10"), T0 + 5).unwrap();
    let seq = sim.ledger.last_seq();
    // Same key, account and amount ("10.0" equals "10"): the first receipt, nothing recorded.
    assert_eq!(
        sim.run(&topup("acme", "KEY-00001", "10.0"), T0 + 50)
            .unwrap(),
        first
    );
    assert_eq!(sim.ledger.last_seq(), seq);
    assert_eq!(
        code(sim.run(&topup("acme", "KEY-00001", "11"), T0 + 50)),
        Code::AlreadyExists
    );
    assert_eq!(
        code(sim.run(&topup("other", "KEY-00001", "10"), T0 + 50)),
        Code::AlreadyExists
    );
    // Keys are case-sensitive.
    sim.run(&topup("acme", "key-00001", "10"), T0 + 60).unwrap();
    // Still the first receipt after the account is closed.
    sim.run(&close("acme"), T0 + 70).unwrap();
    assert_eq!(
        sim.run(&topup("acme", "KEY-00001", "10"), T0 + 80).unwrap(),
        first
    );
}

#[test]
fn close_forfeits_and_freezes_the_account() {
    let mut sim = sim_with(Policy::default());
    sim.run(&topup("acme", "KEY-00001", "100"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    // After 1000 s at 1000 nano/s (10^6 nano = 0.001 iSC): 99.999 forfeited.
    let r = sim.run(&close("acme"), T0 + 1000).unwrap();
    assert_eq!(r.balance, Some(Nano::ZERO));
    let st = statement(&sim.ledger, &sim.log, "acme", 0, T0 + 2000).unwrap();
    let tail: Vec<(LineKind, Nano)> = st
        .lines
        .iter()
        .rev()
        .take(2)
        .map(|l| (l.kind, l.amount))
        .collect();
    assert_eq!(
        tail,
        vec![
            (LineKind::Close, Nano::ZERO),
            (LineKind::Forfeit, n("-99.999"))
        ]
    );
    let (top_ups, debits, forfeited) = st.totals();
    assert_eq!(top_ups.0 - debits.0 - forfeited.0, st.closing_balance.0);
    assert_eq!(view(&sim, T0 + 2000).state, AccountState::Closed);
    assert_eq!(
        code(sim.run(&close("acme"), T0 + 2000)),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(sim.run(&topup("acme", "KEY-00002", "1"), T0 + 2000)),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(sim.run(&config("acme", "p1", &[]), T0 + 2000)),
        Code::FailedPrecondition
    );
    assert_eq!(code(sim.run(&open("acme"), T0 + 2000)), Code::AlreadyExists);
    // The PBX stays bound to the closed account forever.
    sim.run(&open("next"), T0 + 2000).unwrap();
    assert_eq!(
        code(sim.run(&config("next", "p1", &[]), T0 + 2000)),
        Code::FailedPrecondition
    );
}

#[test]
fn status_codes_follow_the_check_order() {
    let mut sim = Sim::new(Policy::default());
    sim.run(&open("acme"), T0).unwrap();
    // No list in effect: renting is a state error, an empty set is fine.
    assert_eq!(
        code(sim.run(&config("acme", "p1", &[("A", 1)]), T0)),
        Code::FailedPrecondition
    );
    sim.run(&config("acme", "p1", &[]), T0).unwrap();
    sim.run(&prices(1, 0, &[("A", &[(1, "1")])]), T0).unwrap();
    let cases: Vec<(Command, Code)> = vec![
        (config("bad id!", "p1", &[("A", 1)]), Code::InvalidArgument),
        (config("acme", "p1", &[("A", 0)]), Code::InvalidArgument),
        (
            config("acme", "p1", &[("A", 1_000_001)]),
            Code::InvalidArgument,
        ),
        (
            config("acme", "p1", &[("A", 1), ("A", 2)]),
            Code::InvalidArgument,
        ),
        (
            config("acme", "p1", &[("Relay-4", 1)]),
            Code::InvalidArgument,
        ),
        (config("ghost", "p1", &[("A", 1)]), Code::NotFound),
        (config("acme", "p1", &[("Z", 1)]), Code::InvalidArgument),
        (topup("acme", "short", "1"), Code::InvalidArgument),
        (topup("acme", "KEY-00009", "0"), Code::InvalidArgument),
        (
            topup("acme", "KEY-00009", "1000000000.000000001"),
            Code::InvalidArgument,
        ),
        (topup("acme", "KEY-00009", "1e3"), Code::InvalidArgument),
        (topup("ghost", "KEY-00009", "1"), Code::NotFound),
        (open("acme"), Code::AlreadyExists),
        (open(""), Code::InvalidArgument),
        (close("ghost"), Code::NotFound),
        (
            prices(1, 0, &[("A", &[(1, "2")])]),
            Code::FailedPrecondition,
        ),
        (
            prices(2, 0, &[("B", &[(1, "2")])]),
            Code::FailedPrecondition,
        ),
    ];
    for (cmd, expected) in cases {
        assert_eq!(code(sim.run(&cmd, T0)), expected, "{cmd:?}");
    }
    let mut firmware12 = config("acme", "p1", &[("A", 1)]);
    if let Command::ChangeConfig { firmware_major, .. } = &mut firmware12 {
        *firmware_major = 12;
    }
    assert_eq!(code(sim.run(&firmware12, T0)), Code::FailedPrecondition);
    // A closed account with an unknown type: the argument error comes first.
    sim.run(&close("acme"), T0).unwrap();
    assert_eq!(
        code(sim.run(&config("acme", "p1", &[("Z", 1)]), T0)),
        Code::InvalidArgument
    );
    // Balance above 10^12 is refused.
    sim.run(&open("rich"), T0).unwrap();
    for i in 0..1000 {
        sim.run(&topup("rich", &format!("RICH-{i:05}"), "1000000000"), T0)
            .unwrap();
    }
    assert_eq!(
        code(sim.run(&topup("rich", "RICH-99999", "0.000000001"), T0)),
        Code::FailedPrecondition
    );
}

#[test]
fn at_is_never_earlier_than_the_last_event() {
    let mut sim = sim_with(Policy::default());
    let r = sim.run(&open("later"), T0 - 500).unwrap();
    assert_eq!(r.at, T0);
}

#[test]
fn reminders_fall_due_at_t_zero_minus_threshold() {
    // 40 days of credit: 40 × 86400 s × 1000 nano/s = 3.456 iSC.
    let mut sim = sim_with(Policy::default());
    sim.run(&topup("acme", "KEY-00001", "3.456"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0).unwrap();
    let t_zero = T0 + 40 * 86_400;
    let notices = notices_history(&sim.ledger, &sim.log, "acme", T0, t_zero + 1);
    let got: Vec<(NoticeKind, i64)> = notices.iter().map(|n| (n.kind, n.at)).collect();
    assert_eq!(
        got,
        vec![
            (NoticeKind::Reminder, t_zero - 30 * 86_400),
            (NoticeKind::Reminder, t_zero - 7 * 86_400),
            (NoticeKind::Reminder, t_zero - 86_400),
            (NoticeKind::Depletion, t_zero),
        ]
    );
    // The live projection agrees, and the scheduler's next instant is the first reminder.
    let live = sim.ledger.notices_between(Some("acme"), T0, t_zero + 1);
    assert_eq!(live, notices);
    assert_eq!(sim.ledger.next_due_after(T0), Some(t_zero - 30 * 86_400));
    // Once per funding period: a config change that lowers then raises the rate
    // after the 30-day reminder does not repeat it...
    sim.run(&config("acme", "p1", &[("B", 1)]), T0 + 20 * 86_400)
        .unwrap();
    sim.run(&config("acme", "p1", &[("A", 1)]), T0 + 20 * 86_400 + 10)
        .unwrap();
    let again = notices_history(
        &sim.ledger,
        &sim.log,
        "acme",
        T0 + 20 * 86_400,
        T0 + 21 * 86_400,
    );
    assert!(again.is_empty(), "{again:?}");
    // ...but a top-up starts a new funding period: runtime still ≤ 30 days → due at once.
    let t = T0 + 21 * 86_400;
    sim.run(&topup("acme", "KEY-00002", "0.0864"), t).unwrap();
    let fresh = notices_history(&sim.ledger, &sim.log, "acme", t - 1, t);
    assert_eq!(fresh.len(), 1);
    assert_eq!(
        (fresh[0].kind, fresh[0].threshold_s),
        (NoticeKind::Reminder, Some(30 * 86_400))
    );
}

#[test]
fn continuous_use_cycles_are_reported() {
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let mut sim = sim_with(policy);
    sim.run(&topup("acme", "KEY-00001", "1000"), T0).unwrap();
    sim.run(&config("acme", "p1", &[("A", 10)]), T0).unwrap();
    let day = 86_400;
    // Three weekends: down on Friday, back on Monday (< 72 h).
    for week in 0..3 {
        let friday = T0 + week * 7 * day + 4 * day;
        sim.run(&config("acme", "p1", &[("A", 1)]), friday).unwrap();
        sim.run(&config("acme", "p1", &[("A", 10)]), friday + 71 * 3600)
            .unwrap();
    }
    // A lowering raised back after exactly 72 h is not a cycle.
    sim.run(&config("acme", "p1", &[("A", 1)]), T0 + 25 * day)
        .unwrap();
    sim.run(&config("acme", "p1", &[("A", 10)]), T0 + 28 * day)
        .unwrap();
    let report = sim.ledger.compliance_report(0, T0 + 30 * day);
    assert_eq!(report.entries.len(), 1);
    assert_eq!(report.entries[0].cycles.len(), 3);
    assert_eq!(report.entries[0].cycles[0].lowered_at, T0 + 4 * day);
    // Two cycles only in the window: not flagged.
    assert!(sim
        .ledger
        .compliance_report(T0 + 5 * day, T0 + 30 * day)
        .entries
        .is_empty());
}

#[test]
fn a_log_cannot_publish_an_older_price_list_after_a_newer_one() {
    // `decide` never produces it; a tampered log that does is refused by
    // `apply`, not folded over the newer list.
    let mut sim = Sim::new(Policy::default());
    sim.run(&prices(2, 0, &[("A", &[(1, "1")])]), T0).unwrap();
    let Ok(super::Decision::Append(mut older)) =
        super::Ledger::new(Policy::default()).decide(&prices(1, 0, &[("A", &[(1, "9")])]), T0)
    else {
        panic!("an empty ledger accepts version 1");
    };
    older.at = T0;
    let seq = sim.ledger.last_seq() + 1;
    let err = sim.ledger.apply(seq, &older).unwrap_err();
    assert!(
        err.0.contains("version 1 is published after version 2"),
        "{err}"
    );
    assert_eq!(sim.ledger.prices().len(), 1);
}

#[test]
fn a_forged_log_with_out_of_bound_money_is_refused_not_folded() {
    // `decide` never records such values; a forged record that does is an
    // apply error (tamper evidence), never an overflow or a panic.
    use super::event::{Event, EventBody};
    use super::money::{MAX_BALANCE, MAX_MONTHLY_UNIT_PRICE, MAX_TOP_UP};
    let mut sim = sim_with(Policy::default());
    let before = sim.ledger.clone();
    let topup = |amount: Nano| Event {
        at: T0,
        body: EventBody::ToppedUp {
            account_id: "acme".into(),
            activation_key: "FORGED-1".into(),
            amount,
            price_version: Some(1),
        },
    };
    for amount in [Nano(i128::MAX), Nano(0), Nano(-5), Nano(MAX_TOP_UP.0 + 1)] {
        let seq = sim.ledger.last_seq() + 1;
        let err = sim.ledger.apply(seq, &topup(amount)).unwrap_err();
        assert!(err.0.contains("outside the bounds"), "{err}");
    }
    // Within one top-up's bound, but past the balance bound.
    let mut near_full = sim.ledger.clone();
    for i in 0..(MAX_BALANCE.0 / MAX_TOP_UP.0) {
        let seq = near_full.last_seq() + 1;
        let mut ev = topup(MAX_TOP_UP);
        if let EventBody::ToppedUp { activation_key, .. } = &mut ev.body {
            *activation_key = format!("FORGED-FULL-{i}").into();
        }
        near_full.apply(seq, &ev).expect("up to the balance bound");
    }
    let seq = near_full.last_seq() + 1;
    let err = near_full.apply(seq, &topup(Nano(1))).unwrap_err();
    assert!(err.0.contains("outside the bounds"), "{err}");

    // A forged price list: a price above the bound, tiers not from 1.
    let Ok(super::Decision::Append(good)) = sim
        .ledger
        .decide(&prices(2, 0, &[("A", &[(1, "1")]), ("B", &[(1, "0")])]), T0)
    else {
        panic!("a newer list is accepted");
    };
    let EventBody::PriceListPublished(list) = &good.body else {
        panic!("a price list event")
    };
    for (from_qty, price) in [
        (1, Nano(MAX_MONTHLY_UNIT_PRICE.0 + 1)),
        (1, Nano(-1)),
        (2, Nano(1)),
    ] {
        let mut forged = list.clone();
        if let Some(tiers) = forged.entries.get_mut("A") {
            tiers[0].from_qty = from_qty;
            tiers[0].monthly_price = price;
        }
        let ev = Event {
            at: T0,
            body: EventBody::PriceListPublished(forged),
        };
        let seq = sim.ledger.last_seq() + 1;
        let err = sim.ledger.apply(seq, &ev).unwrap_err();
        assert!(err.0.contains("no published list can have"), "{err}");
    }
    // Here nothing had accrued (the account's own instant) and the types
    // were known: in general a refused record may leave the account accrued
    // to its instant (replay stops at it; the live path never meets one).
    assert_eq!(sim.ledger, before, "these refused records changed nothing");
}

#[test]
fn a_price_list_with_devices_maintenance_and_credits_is_its_own_event() {
    use super::event::{Decision, Event, EventBody};
    use super::prices::{parse_price_list_ext, SlaKpi};
    let mut sim = sim_with(Policy::default());
    // A list without the new sections is stored exactly as before.
    assert!(matches!(sim.log[0].body, EventBody::PriceListPublished(_)));
    assert!(sim.ledger.ext_in_effect(T0).is_empty());
    let ext = super::prices::tests::ext_input(
        &[("Yealink-T54W", "15")],
        Some((7, 1, &[("5y", 60, "900", 90), ("1y", 12, "250", 0)])),
        &[(1, SlaKpi::Response, "10")],
    );
    let with_ext = |version: u32, effective_at: i64, ext| Command::PublishPriceList {
        version,
        effective_at,
        entries: price_entries(&[("A", &[(1, "2.628")]), ("B", &[(1, "0")])]),
        catalogue: None,
        ext,
    };
    let r = sim.run(&with_ext(2, T0 + 100, ext.clone()), T0).unwrap();
    assert_eq!(r.balance, None);
    let EventBody::PriceListPublishedExt { list, ext: stored } = &sim.log.last().unwrap().body
    else {
        panic!("an extended price list event")
    };
    assert_eq!(list.version, 2);
    assert_eq!(stored, &parse_price_list_ext(&ext).unwrap());
    assert_eq!(sim.log.last().unwrap().account_id(), None);
    // In effect from its date on; the older list has none.
    assert!(sim.ledger.ext_in_effect(T0 + 99).is_empty());
    let now = sim.ledger.ext_in_effect(T0 + 100);
    assert_eq!(
        now.device("Yealink-T54W").unwrap().provisioning_fee,
        n("15")
    );
    assert_eq!(now.service_credit(1, SlaKpi::Response), Some(n("10")));
    assert_eq!(sim.ledger.prices().ext(2), stored);
    // A later list must keep the model (and the maintenance section).
    let mut dropped = ext.clone();
    dropped.devices.clear();
    let before = sim.ledger.clone();
    assert_eq!(
        code(sim.run(&with_ext(3, T0 + 100, dropped), T0)),
        Code::FailedPrecondition
    );
    let mut no_maintenance = ext.clone();
    no_maintenance.maintenance = None;
    assert_eq!(
        code(sim.run(&with_ext(3, T0 + 100, no_maintenance), T0)),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(sim.run(
            &prices(3, T0 + 100, &[("A", &[(1, "1")]), ("B", &[(1, "0")])]),
            T0
        )),
        Code::FailedPrecondition,
        "a list without sections drops the model too"
    );
    let mut bad_fee = ext.clone();
    bad_fee.devices[0].provisioning_fee = "1.0000000001".into();
    assert_eq!(
        code(sim.run(&with_ext(3, T0 + 100, bad_fee), T0)),
        Code::InvalidArgument
    );
    assert_eq!(sim.ledger, before, "rejections change nothing");
    // Replay gives the same state; a forged fee is refused by apply.
    assert_eq!(
        super::Ledger::replay(Policy::default(), &sim.log).unwrap(),
        sim.ledger
    );
    let Ok(Decision::Append(good)) = sim.ledger.decide(&with_ext(3, T0 + 100, ext), T0) else {
        panic!("a list keeping every section is accepted")
    };
    let EventBody::PriceListPublishedExt { list, mut ext } = good.body else {
        panic!("extended")
    };
    ext.devices[0].provisioning_fee = Nano(-1);
    let forged = Event {
        at: T0,
        body: EventBody::PriceListPublishedExt { list, ext },
    };
    let err = sim
        .ledger
        .apply(sim.ledger.last_seq() + 1, &forged)
        .unwrap_err();
    assert!(err.0.contains("no published list can have"), "{err}");
}
