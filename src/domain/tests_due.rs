//! The notice schedule (`domain::due`) against its definition: for random
//! histories of accounts (reminders, depletion, reactivation, closure),
//! purchased PBXs and plans, incidents and their service credits, driven
//! like the writer (publishing `(published_until, now]` as time passes),
//! `notices_between` equals the full scan (`notices_between_scan`) for
//! every window asked, for all accounts and for each one, the schedule
//! `apply` kept equals one built afresh, and so does a ledger after a
//! snapshot's round trip (bincode, as the store encodes it) or a replay.

use super::event::{Command, Decision, Event, Policy};
use super::ledger::Ledger;
use super::money::SECONDS_PER_MONTH;
use super::prices::tests::ext_input;
use super::prices::SlaKpi;
use super::sim::{license_lines, price_entries};
use super::Hosting;
use proptest::prelude::*;

/// Monday 2026-11-30 09:00 in Amsterdam (the default support calendar).
const T0: i64 = 1_796_025_600;
const DAY: i64 = 86_400;
const AMOUNTS: &[&str] = &["0.05", "1", "10", "100", "1000", "30"];

#[derive(Debug, Clone)]
enum Step {
    Wait(i64),
    Open(u8),
    Rent(u8, u8, u32),
    TopUp(u8, &'static str),
    Close(u8),
    RegisterPbx(u8, u8),
    Buy(u8, bool),
    Report(u8, u8, u32),
    Respond(u8),
    Update(u8),
    Resolve(u8),
    Priority(u8, u32),
    /// A window `(last_at + from, last_at + from + len]`; `from < 0` is
    /// before `last_at` (outside the contract: the scan answers).
    Ask(i64, i64),
    /// Publish what fell due up to now, as the writer's tick does.
    Tick,
    /// Through a snapshot: encode, decode, go on with the decoded ledger.
    Snapshot,
}

fn span() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..5,
        0i64..4_000,
        0i64..200_000,
        0i64..(40 * DAY),
        0i64..(400 * DAY),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => span().prop_map(Step::Wait),
        2 => (0u8..4).prop_map(Step::Open),
        3 => (0u8..4, 0u8..2, prop_oneof![Just(0u32), 1u32..40]).prop_map(|(a, p, q)| Step::Rent(a, p, q)),
        3 => (0u8..4, prop::sample::select(AMOUNTS)).prop_map(|(a, m)| Step::TopUp(a, m)),
        1 => (0u8..4).prop_map(Step::Close),
        1 => (0u8..4, 0u8..3).prop_map(|(a, p)| Step::RegisterPbx(a, p)),
        1 => (0u8..3, any::<bool>()).prop_map(|(p, long)| Step::Buy(p, long)),
        2 => (0u8..5, 0u8..4, 1u32..5).prop_map(|(i, a, p)| Step::Report(i, a, p)),
        1 => (0u8..5).prop_map(Step::Respond),
        1 => (0u8..5).prop_map(Step::Update),
        1 => (0u8..5).prop_map(Step::Resolve),
        1 => (0u8..5, 1u32..5).prop_map(|(i, p)| Step::Priority(i, p)),
        3 => (prop_oneof![8 => span(), 1 => span().prop_map(|s| -s)], prop_oneof![1 => span().prop_map(|s| -s), 8 => span()]).prop_map(|(f, l)| Step::Ask(f, l)),
        3 => Just(Step::Tick),
        1 => Just(Step::Snapshot),
    ]
}

fn price_list() -> Command {
    Command::PublishPriceList {
        version: 1,
        effective_at: 0,
        entries: price_entries(&[("A", &[(1, "2.628")])]),
        catalogue: None,
        ext: ext_input(
            &[],
            Some((7, 1, &[("5y", 60, "900", 90), ("1y", 12, "250", 0)])),
            &[
                (1, SlaKpi::Response, "0.5"),
                (1, SlaKpi::Update, "0.25"),
                (2, SlaKpi::Update, "0.125"),
                (2, SlaKpi::Repair, "1"),
                (3, SlaKpi::Response, "0.01"),
            ],
        ),
    }
}

fn command(step: &Step, keys: &mut u32) -> Option<Command> {
    let account = |a: &u8| format!("a{a}");
    let incident = |i: &u8| format!("inc-{i}");
    Some(match step {
        Step::Open(a) => Command::OpenAccount {
            account_id: account(a),
        },
        Step::Rent(a, p, q) => Command::ChangeConfig {
            account_id: account(a),
            pbx_id: format!("p{a}-{p}"),
            licenses: if *q == 0 {
                Vec::new()
            } else {
                license_lines(&[("A", *q)])
            },
            firmware_major: 13,
            hosting: Hosting::Gateway,
        },
        Step::TopUp(a, amount) => {
            *keys += 1;
            Command::TopUp {
                account_id: account(a),
                activation_key: format!("KEY-{keys:05}"),
                amount: (*amount).into(),
            }
        }
        Step::Close(a) => Command::CloseAccount {
            account_id: account(a),
        },
        Step::RegisterPbx(a, p) => Command::RegisterPbx {
            account_id: account(a),
            pbx_id: format!("srv-{p}"),
            firmware_major: 7,
            firmware_minor: 1,
        },
        Step::Buy(p, long) => {
            *keys += 1;
            Command::BuyPlan {
                pbx_id: format!("srv-{p}"),
                plan: if *long { "5y" } else { "1y" }.into(),
                key: format!("PLAN-{keys:05}"),
            }
        }
        Step::Report(i, a, priority) => Command::ReportIncident {
            incident_id: incident(i),
            account_id: account(a),
            priority: *priority,
        },
        Step::Respond(i) => Command::RespondIncident {
            incident_id: incident(i),
        },
        Step::Update(i) => Command::UpdateIncident {
            incident_id: incident(i),
        },
        Step::Resolve(i) => Command::ResolveIncident {
            incident_id: incident(i),
        },
        Step::Priority(i, priority) => Command::ChangePriority {
            incident_id: incident(i),
            priority: *priority,
        },
        Step::Wait(_) | Step::Ask(..) | Step::Tick | Step::Snapshot => return None,
    })
}

fn append(ledger: &mut Ledger, log: &mut Vec<Event>, cmd: &Command, at: i64) {
    if let Ok(Decision::Append(ev)) = ledger.decide(cmd, at) {
        ledger
            .apply(ledger.last_seq() + 1, &ev)
            .expect("decided events apply");
        log.push(ev);
    }
}

/// The writer's service credits: every breach due by `t`, in time order.
fn credit_breaches(ledger: &mut Ledger, log: &mut Vec<Event>, t: i64) {
    while let Some((due, grant)) = ledger.next_service_credit(t) {
        let before = ledger.last_seq();
        append(ledger, log, &grant, due.max(ledger.last_at()));
        if ledger.last_seq() == before {
            return;
        }
    }
}

/// The schedule's answers equal the scan's for `(t1, t2]`, for all
/// accounts and for each one.
fn check_window(ledger: &Ledger, t1: i64, t2: i64) -> Result<(), TestCaseError> {
    let all = ledger.notices_between(None, t1, t2);
    prop_assert_eq!(&all, &ledger.notices_between_scan(None, t1, t2));
    for id in ["a0", "a1", "a2", "a3", "nobody"] {
        let one = ledger.notices_between(Some(id), t1, t2);
        prop_assert_eq!(&one, &ledger.notices_between_scan(Some(id), t1, t2));
        let of_id: Vec<_> = all.iter().filter(|n| n.account_id == id).cloned().collect();
        prop_assert_eq!(one, of_id);
    }
    prop_assert!(ledger.notice_schedule_is_exact());
    Ok(())
}

fn round_trip(ledger: &Ledger) -> Ledger {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(ledger, config).expect("encodes");
    let (decoded, _): (Ledger, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
    decoded
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_schedule_gives_the_scans_notices(
        steps in prop::collection::vec(step(), 1..80),
        early in any::<bool>(),
    ) {
        let mut ledger = Ledger::new(Policy { min_activation_runtime_s: 0, ..Policy::default() });
        let mut log = Vec::new();
        let mut keys = 0;
        let mut now = T0;
        let mut published = T0;
        append(&mut ledger, &mut log, &price_list(), now);
        if early {
            // Kept by `apply` from the first event (otherwise built at the
            // first question).
            ledger.prepare_notices();
        }
        for step in &steps {
            match step {
                Step::Wait(dt) => now += dt,
                Step::Ask(from, len) => {
                    let t1 = ledger.last_at() + from;
                    check_window(&ledger, t1, t1 + len)?;
                }
                Step::Tick => {
                    credit_breaches(&mut ledger, &mut log, now);
                    let t1 = published.max(ledger.last_at());
                    check_window(&ledger, t1, now)?;
                    published = published.max(now);
                }
                Step::Snapshot => {
                    let decoded = round_trip(&ledger);
                    prop_assert_eq!(&decoded, &ledger);
                    let t1 = ledger.last_at();
                    for len in [1, DAY, 40 * DAY, 13 * SECONDS_PER_MONTH] {
                        prop_assert_eq!(
                            decoded.notices_between(None, t1, t1 + len),
                            ledger.notices_between(None, t1, t1 + len)
                        );
                    }
                    ledger = decoded;
                }
                other => {
                    if let Some(cmd) = command(other, &mut keys) {
                        credit_breaches(&mut ledger, &mut log, now);
                        append(&mut ledger, &mut log, &cmd, now);
                    }
                }
            }
        }
        prop_assert!(ledger.notice_schedule_is_exact());
        // The fold (replay, the store's cold start) and a snapshot of it.
        let replayed = Ledger::replay(ledger.policy().clone(), &log).expect("the log replays");
        prop_assert_eq!(&replayed, &ledger);
        let decoded = round_trip(&replayed);
        let t1 = ledger.last_at();
        for len in [1, 3_600, DAY, 8 * DAY, 31 * DAY, 100 * DAY, 400 * DAY, 6_000 * DAY] {
            let want = ledger.notices_between_scan(None, t1, t1 + len);
            prop_assert_eq!(&replayed.notices_between(None, t1, t1 + len), &want);
            prop_assert_eq!(&decoded.notices_between(None, t1, t1 + len), &want);
            check_window(&ledger, t1, t1 + len)?;
        }
    }
}

/// A window with notices of every kind, so the property above is known to
/// compare something: reminders and depletion, maintenance expiring, an
/// SLA warning and breach.
#[test]
fn a_long_window_tells_every_kind() {
    use super::event::NoticeKind;
    let mut ledger = Ledger::new(Policy::default());
    let mut log = Vec::new();
    let mut keys = 0;
    append(&mut ledger, &mut log, &price_list(), T0);
    ledger.prepare_notices();
    for step in [
        Step::Open(0),
        Step::TopUp(0, "30"),
        Step::Rent(0, 0, 10),
        Step::RegisterPbx(0, 0),
        Step::Report(0, 0, 1),
    ] {
        let cmd = command(&step, &mut keys).unwrap();
        append(&mut ledger, &mut log, &cmd, T0);
    }
    let all = ledger.notices_between(None, T0, T0 + 400 * DAY);
    assert_eq!(all, ledger.notices_between_scan(None, T0, T0 + 400 * DAY));
    for kind in [
        NoticeKind::Reminder,
        NoticeKind::Depletion,
        NoticeKind::MaintenanceExpiring,
        NoticeKind::SlaDeadline,
        NoticeKind::SlaBreach,
    ] {
        assert!(
            all.iter().any(|n| n.kind == kind),
            "no {kind:?} in {all:#?}"
        );
    }
    assert!(ledger.notice_schedule_is_exact());
}
