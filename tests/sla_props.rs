//! Property tests of the support-hours clock and of incidents: deadlines are
//! monotone in the start instant, support time adds up over any split and
//! inverts `add_support`, and a ledger driven like the writer (incident
//! commands, credits granted as breaches fall due) replays to the same state.

use isc_ledger::domain::prices::{PriceListExtInput, ServiceCreditInput, SlaKpi};
use isc_ledger::domain::sla::{SupportCalendar, SupportClock, SUPPORT_DAY_S};
use isc_ledger::domain::{
    Command, Decision, Event, Hosting, Ledger, LicenseLine, Policy, PriceEntryInput, TierInput,
};
use proptest::prelude::*;

fn nl() -> SupportClock {
    SupportCalendar::parse_toml(include_str!("../docs/support-calendar-nl.toml"))
        .unwrap()
        .clock()
}

/// 2026-01-01 .. 2028-12-01 (the example calendar's years, both DST changes).
fn instant() -> impl Strategy<Value = i64> {
    1_767_225_600i64..1_827_619_200
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deadlines_are_monotone_in_the_start(a in instant(), d in 0i64..400_000, n in 0i64..(5 * SUPPORT_DAY_S), days in 1u32..4) {
        let c = nl();
        let b = a + d;
        prop_assert!(c.add_support(a, n) <= c.add_support(b, n));
        prop_assert!(c.working_days_after(a, days) <= c.working_days_after(b, days));
        prop_assert!(c.next_opening(a) <= c.next_opening(b));
        prop_assert!(c.sub_support(a, n) <= c.sub_support(b, n));
    }

    #[test]
    fn support_time_adds_up_over_any_split(a in instant(), x in 0i64..2_000_000, y in 0i64..2_000_000) {
        let c = nl();
        let (b, e) = (a + x, a + x + y);
        prop_assert_eq!(
            c.support_between(a, e),
            c.support_between(a, b) + c.support_between(b, e)
        );
        prop_assert!(c.support_between(a, b) <= x);
    }

    #[test]
    fn support_between_inverts_add_and_sub(t in instant(), n in 1i64..(10 * SUPPORT_DAY_S)) {
        let c = nl();
        let due = c.add_support(t, n);
        prop_assert!(due > t);
        prop_assert_eq!(c.support_between(t, due), n);
        // The deadline is the first instant with n support seconds behind it.
        prop_assert_eq!(c.support_between(t, due - 1), n - 1);
        let w = c.sub_support(t, n);
        prop_assert_eq!(c.support_between(w, t), n);
        // A working day is 8 h 30 of support time whatever the season.
        let open = c.next_opening(t);
        prop_assert_eq!(c.support_between(open, c.add_support(open, SUPPORT_DAY_S)), SUPPORT_DAY_S);
    }
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Wait(i64),
    Report {
        incident: u8,
        account: u8,
        priority: u32,
    },
    Respond(u8),
    Update(u8),
    Resolve(u8),
    Priority(u8, u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (60i64..40_000).prop_map(Step::Wait),
        2 => (0u8..6, 0u8..3, 0u32..6).prop_map(|(incident, account, priority)| Step::Report { incident, account, priority }),
        2 => (0u8..7).prop_map(Step::Respond),
        2 => (0u8..7).prop_map(Step::Update),
        1 => (0u8..7).prop_map(Step::Resolve),
        1 => (0u8..7, 0u32..6).prop_map(|(i, p)| Step::Priority(i, p)),
    ]
}

fn price_list() -> Command {
    let credit = |priority, kpi, amount: &str| ServiceCreditInput {
        priority,
        kpi,
        amount: amount.into(),
    };
    Command::PublishPriceList {
        version: 1,
        effective_at: 0,
        entries: vec![PriceEntryInput {
            license_type: "PBX-Port13".into(),
            tiers: vec![TierInput {
                from_qty: 1,
                monthly_price: "2.628".into(),
            }],
        }],
        catalogue: None,
        ext: PriceListExtInput {
            service_credits: vec![
                credit(1, SlaKpi::Response, "0.5"),
                credit(1, SlaKpi::Update, "0.25"),
                credit(2, SlaKpi::Update, "0.125"),
                credit(2, SlaKpi::Repair, "1"),
                credit(3, SlaKpi::Response, "0.01"),
            ],
            ..PriceListExtInput::default()
        },
    }
}

/// Decides and applies like the writer: every credit due by `t` first.
fn run(ledger: &mut Ledger, log: &mut Vec<Event>, cmd: &Command, t: i64) {
    while let Some((due, grant)) = ledger.next_service_credit(t) {
        let at = due.max(ledger.last_at());
        match ledger.decide(&grant, at) {
            Ok(Decision::Append(ev)) => {
                ledger.apply(ledger.last_seq() + 1, &ev).unwrap();
                log.push(ev);
            }
            other => panic!("a due credit is refused: {other:?}"),
        }
    }
    if let Ok(Decision::Append(ev)) = ledger.decide(cmd, t) {
        let seq = ledger.last_seq() + 1;
        ledger.apply(seq, &ev).unwrap();
        log.push(ev);
        if matches!(cmd, Command::ChangePriority { .. }) {
            run(
                ledger,
                log,
                &Command::OpenAccount {
                    account_id: String::new(),
                },
                t,
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replay_equals_live_for_incidents(steps in proptest::collection::vec(step(), 1..60)) {
        let mut t = 1_796_025_600; // Monday 2026-11-30 09:00 in Amsterdam
        let mut live = Ledger::new(Policy::default());
        let mut log = Vec::new();
        run(&mut live, &mut log, &price_list(), t);
        for (i, a) in ["a0", "a1", "a2"].iter().enumerate() {
            run(&mut live, &mut log, &Command::OpenAccount { account_id: a.to_string() }, t);
            run(&mut live, &mut log, &Command::TopUp {
                account_id: a.to_string(),
                activation_key: format!("KEY-props-{i}"),
                amount: "0.05".into(),
            }, t);
            run(&mut live, &mut log, &Command::ChangeConfig {
                account_id: a.to_string(),
                pbx_id: format!("pbx-{i}"),
                licenses: vec![LicenseLine { license_type: "PBX-Port13".into(), quantity: 1 }],
                firmware_major: 13,
                hosting: Hosting::Gateway,
            }, t);
        }
        let id = |i: u8| format!("INC-{i}");
        for s in &steps {
            let cmd = match s {
                Step::Wait(d) => { t += d; continue; }
                Step::Report { incident, account, priority } => Command::ReportIncident {
                    incident_id: id(*incident),
                    account_id: format!("a{account}"),
                    priority: *priority,
                },
                Step::Respond(i) => Command::RespondIncident { incident_id: id(*i) },
                Step::Update(i) => Command::UpdateIncident { incident_id: id(*i) },
                Step::Resolve(i) => Command::ResolveIncident { incident_id: id(*i) },
                Step::Priority(i, p) => Command::ChangePriority { incident_id: id(*i), priority: *p },
            };
            let before = live.clone();
            run(&mut live, &mut log, &cmd, t);
            // A rejected command changes nothing but the credits due before it.
            prop_assert!(live.last_seq() >= before.last_seq());
        }
        t += 10 * 86_400;
        run(&mut live, &mut log, &Command::OpenAccount { account_id: String::new() }, t);
        let replayed = Ledger::replay(Policy::default(), &log).unwrap();
        prop_assert_eq!(&replayed, &live);
        prop_assert_eq!(replayed.sla_report(0, t, t), live.sla_report(0, t, t));
        // Each breach that earns a credit was credited exactly once.
        for inc in live.sla().incidents() {
            let mut keys: Vec<_> = inc.granted.iter().map(|g| (g.0, g.1)).collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), n);
        }
        // Through bincode (the snapshot form) the state is the same.
        let bytes = bincode::serde::encode_to_vec(&live, bincode::config::standard()).unwrap();
        let (back, _): (Ledger, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        prop_assert_eq!(back, live);
    }
}
