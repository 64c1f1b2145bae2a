//! Service levels through the real server (manual clock): incidents met and
//! breached per KPI, the SLA report's figures, service credits granted as
//! the breach falls due (one reactivating a suspended account), SLA notices
//! on Watch within 2 s of the SetTime, every rejection code, and a restart
//! that replays the same report and balances.

mod common;

use std::time::Duration;

use chrono::TimeZone;
use common::*;
use isc_ledger::api::auth::Tokens;
use isc_ledger::api::pb;
use isc_ledger::domain::Policy;
use tonic::Code;

/// Amsterdam local time → Unix seconds.
fn ams(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    chrono_tz::Europe::Amsterdam
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .unwrap()
        .timestamp()
}

/// Monday 30 November 2026 (Amsterdam, UTC+1).
fn mon(h: u32, m: u32) -> i64 {
    ams(2026, 11, 30, h, m)
}
fn tue(h: u32, m: u32) -> i64 {
    ams(2026, 12, 1, h, m)
}
fn wed(h: u32, m: u32) -> i64 {
    ams(2026, 12, 2, h, m)
}
fn thu(h: u32, m: u32) -> i64 {
    ams(2026, 12, 3, h, m)
}

fn credits(list: &mut pb::PublishPriceListRequest, credits: &[(u32, pb::SlaKpi, &str)]) {
    list.service_credits = credits
        .iter()
        .map(|(priority, kpi, amount)| pb::ServiceCredit {
            priority: *priority,
            kpi: *kpi as i32,
            amount: amount.to_string(),
        })
        .collect();
}

struct Sla {
    ledger: isc_ledger::api::pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    clock: isc_ledger::api::pb::clock_client::ClockClient<tonic::transport::Channel>,
}

impl Sla {
    async fn new(url: &str) -> Sla {
        Sla {
            ledger: ledger(url).await,
            clock: clock(url).await,
        }
    }
    async fn at(&mut self, t: i64) {
        self.clock
            .set_time(pb::SetTimeRequest { unix_seconds: t })
            .await
            .unwrap();
    }
    async fn report(&mut self, id: &str, account: &str, priority: u32) -> pb::Receipt {
        self.ledger
            .report_incident(pb::ReportIncidentRequest {
                incident_id: id.into(),
                account_id: account.into(),
                priority,
            })
            .await
            .unwrap()
            .into_inner()
    }
    async fn respond(&mut self, id: &str) {
        self.ledger
            .respond_incident(pb::RespondIncidentRequest {
                incident_id: id.into(),
            })
            .await
            .unwrap();
    }
    async fn update(&mut self, id: &str) {
        self.ledger
            .update_incident(pb::UpdateIncidentRequest {
                incident_id: id.into(),
            })
            .await
            .unwrap();
    }
    async fn resolve(&mut self, id: &str) {
        self.ledger
            .resolve_incident(pb::ResolveIncidentRequest {
                incident_id: id.into(),
            })
            .await
            .unwrap();
    }
    async fn sla_report(&mut self) -> pb::SlaReport {
        self.ledger
            .get_sla_report(pb::GetSlaReportRequest {
                from: 0,
                to: i64::MAX,
            })
            .await
            .unwrap()
            .into_inner()
    }
    async fn balance(&mut self, account: &str) -> String {
        self.ledger
            .get_account(get(account, 0))
            .await
            .unwrap()
            .into_inner()
            .balance
    }
}

/// The next notice of `kind` within 2 s.
fn figures(r: &pb::SlaReport, priority: u32, kpi: pb::SlaKpi) -> (u32, u32, u32, String) {
    let p = r
        .priorities
        .iter()
        .find(|p| p.priority == priority)
        .unwrap();
    let k = p.kpis.iter().find(|k| k.kpi == kpi as i32).unwrap();
    (k.met, k.breached, k.open, k.share_met.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_met_and_breached_per_kpi_the_report_and_credits() {
    use pb::notice::Kind;
    use pb::SlaKpi::{Repair, Response, Update};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), mon(8, 0)).await;
    let mut s = Sla::new(&server.url).await;
    let mut list = price_list(1, 0, "2.628");
    credits(
        &mut list,
        &[
            (1, Response, "10"),
            (1, Update, "5"),
            (2, Update, "3"),
            (2, Repair, "20"),
        ],
    );
    s.ledger.publish_price_list(list).await.unwrap();
    s.ledger.open_account(open("acme")).await.unwrap();
    s.ledger
        .top_up(topup("acme", "KEY-sla-0001", "100"))
        .await
        .unwrap();
    let mut w = s
        .ledger
        .watch(pb::WatchRequest {
            account_id: "acme".into(),
            since: 0,
        })
        .await
        .unwrap()
        .into_inner();

    s.at(mon(9, 0)).await;
    let r = s.report("A", "acme", 1).await;
    assert_eq!(
        r.balance, "100",
        "the receipt carries the account's balance"
    );
    s.report("B", "acme", 1).await;
    s.report("C", "acme", 2).await;
    s.at(mon(9, 30)).await;
    s.report("D", "acme", 2).await;
    s.at(mon(10, 0)).await;
    s.respond("A").await;
    s.respond("D").await;
    s.at(mon(11, 0)).await;
    s.respond("C").await;
    // B's response is due 13:00: warned at 12:00, breached at 13:00:01.
    s.at(mon(12, 0)).await;
    let n = next_notice_of(&mut w, Kind::SlaDeadline).await;
    assert_eq!(
        (n.incident_id.as_str(), n.kpi, n.at, n.deadline, n.priority),
        ("B", Response as i32, mon(12, 0), mon(13, 0), 1)
    );
    s.at(mon(13, 0) + 1).await;
    let n = next_notice_of(&mut w, Kind::SlaBreach).await;
    assert_eq!(
        (n.incident_id.as_str(), n.kpi, n.at, n.deadline),
        ("B", Response as i32, mon(13, 0) + 1, mon(13, 0))
    );
    assert_eq!(s.balance("acme").await, "110", "credited at the breach");
    s.at(mon(13, 30)).await;
    s.update("A").await;
    s.at(mon(14, 0)).await;
    s.respond("B").await;
    s.at(mon(16, 0)).await;
    s.resolve("A").await;
    s.report("E", "acme", 3).await;
    s.at(tue(9, 0)).await;
    s.update("D").await;
    // B's first update was due 4 sh after its response: 3 h Monday, 1 h Tuesday.
    s.at(tue(10, 0)).await;
    let n = next_notice_of(&mut w, Kind::SlaBreach).await;
    assert_eq!(
        (n.incident_id.as_str(), n.kpi, n.occurrence, n.at),
        ("B", Update as i32, 0, tue(9, 30) + 1)
    );
    s.resolve("B").await;
    s.update("C").await;
    s.at(tue(15, 0)).await;
    s.respond("E").await;
    s.at(wed(9, 0)).await;
    s.resolve("C").await;
    s.at(thu(10, 0)).await;
    assert_eq!(s.balance("acme").await, "138", "100 + 10 + 5 + 3 + 20");

    let r = s.sla_report().await;
    assert_eq!(r.at, thu(10, 0));
    let incidents: Vec<u32> = r.priorities.iter().map(|p| p.incidents).collect();
    assert_eq!(incidents, vec![2, 2, 1, 0]);
    assert_eq!(figures(&r, 1, Response), (1, 1, 0, "50.00".into()));
    assert_eq!(figures(&r, 1, Update), (2, 1, 0, "66.67".into()));
    assert_eq!(figures(&r, 2, Response), (2, 0, 0, "100.00".into()));
    assert_eq!(figures(&r, 2, Update), (3, 1, 0, "75.00".into()));
    assert_eq!(figures(&r, 2, Repair), (1, 1, 0, "50.00".into()));
    assert_eq!(figures(&r, 3, Response), (1, 0, 0, "100.00".into()));
    let p2 = &r.priorities[1];
    let targets: Vec<(&str, bool)> = p2
        .kpis
        .iter()
        .map(|k| (k.target.as_str(), k.target_met))
        .collect();
    assert_eq!(targets, vec![("90", true), ("90", false), ("90", false)]);
    assert!(r.priorities[0].kpis.iter().all(|k| k.target.is_empty()));
    let breaches: Vec<BreachRow> = r
        .breaches
        .iter()
        .map(|b| {
            (
                b.incident_id.as_str(),
                b.kpi,
                b.occurrence,
                b.deadline,
                b.done_at,
                b.missed_by_support_seconds,
                b.credit.as_str(),
            )
        })
        .collect();
    assert_eq!(
        breaches,
        vec![
            (
                "B",
                Response as i32,
                0,
                mon(13, 0),
                Some(mon(14, 0)),
                3600,
                "10"
            ),
            (
                "B",
                Update as i32,
                0,
                tue(9, 30),
                Some(tue(10, 0)),
                1800,
                "5"
            ),
            // D: updated Tuesday 09:00, next due 8 sh later (17:00), never came:
            // Wednesday's 8 h 30 and Thursday 08:30-10:00 missed so far.
            ("D", Update as i32, 1, tue(17, 0), None, 36_000, "3"),
            // D: reported Monday → repair due Wednesday 17:00.
            ("D", Repair as i32, 0, wed(17, 0), None, 5400, "20"),
        ]
    );

    // The statement keeps the grants apart from the paid top-up.
    let st = s
        .ledger
        .get_statement(pb::GetStatementRequest {
            account_id: "acme".into(),
            from: 0,
            to: thu(10, 0),
        })
        .await
        .unwrap()
        .into_inner();
    let grant = pb::statement_line::Kind::Grant as i32;
    let grants: Vec<(i64, &str, &str)> = st
        .lines
        .iter()
        .filter(|l| l.kind == grant)
        .map(|l| (l.at, l.amount.as_str(), l.incident_id.as_str()))
        .collect();
    assert_eq!(
        grants,
        vec![
            (mon(13, 0) + 1, "10", "B"),
            (tue(9, 30) + 1, "5", "B"),
            (tue(17, 0) + 1, "3", "D"),
            (wed(17, 0) + 1, "20", "D"),
        ]
    );
    let top_ups = st
        .lines
        .iter()
        .filter(|l| l.kind == pb::statement_line::Kind::TopUp as i32)
        .count();
    assert_eq!(top_ups, 1);
    assert_eq!(st.closing_balance, "138");

    // A late watcher replays every SLA notice of the account, each breach once.
    let mut late = s
        .ledger
        .watch(pb::WatchRequest {
            account_id: "acme".into(),
            since: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut replayed = Vec::new();
    while let Ok(Some(Ok(n))) =
        tokio::time::timeout(Duration::from_millis(300), late.next_message()).await
    {
        if n.kind == Kind::SlaBreach as i32 {
            replayed.push((n.incident_id.clone(), n.kpi, n.occurrence, n.at));
        }
    }
    assert_eq!(
        replayed,
        vec![
            ("B".to_string(), Response as i32, 0, mon(13, 0) + 1),
            ("B".to_string(), Update as i32, 0, tue(9, 30) + 1),
            ("D".to_string(), Update as i32, 1, tue(17, 0) + 1),
            ("D".to_string(), Repair as i32, 0, wed(17, 0) + 1),
        ]
    );

    // A restart replays the log: the same report and balance.
    drop(s);
    server.stop().await;
    let server = start(dir.path(), thu(10, 0)).await;
    let mut s = Sla::new(&server.url).await;
    assert_eq!(s.sla_report().await, r);
    assert_eq!(s.balance("acme").await, "138");
    server.stop().await;
}

/// incident, KPI, occurrence, deadline, done at, missed by, credit.
type BreachRow<'a> = (&'a str, i32, u32, i64, Option<i64>, i64, &'a str);

trait NextMessage {
    async fn next_message(&mut self) -> Option<Result<pb::Notice, tonic::Status>>;
}
impl NextMessage for tonic::Streaming<pb::Notice> {
    async fn next_message(&mut self) -> Option<Result<pb::Notice, tonic::Status>> {
        self.message().await.transpose()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_credit_reactivates_a_suspended_account() {
    use pb::notice::Kind;
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let server = start_with(dir.path(), mon(8, 0), Tokens::none(), policy).await;
    let mut s = Sla::new(&server.url).await;
    let mut list = price_list(1, 0, "2.628");
    credits(&mut list, &[(1, pb::SlaKpi::Response, "1")]);
    s.ledger.publish_price_list(list).await.unwrap();
    s.ledger.open_account(open("susp")).await.unwrap();
    // One hour of credit at 1e-6 iSC/s: suspended at 09:00.
    s.ledger
        .top_up(topup("susp", "KEY-sla-0002", "0.0036"))
        .await
        .unwrap();
    s.ledger
        .change_config(config("susp", "pbx", 1))
        .await
        .unwrap();
    let mut w = s
        .ledger
        .watch(pb::WatchRequest {
            account_id: "susp".into(),
            since: 0,
        })
        .await
        .unwrap()
        .into_inner();
    s.at(mon(9, 30)).await;
    assert_eq!(next_notice_of(&mut w, Kind::Depletion).await.at, mon(9, 0));
    s.report("P1", "susp", 1).await;
    // Response due 13:30; the breach at 13:30:01 grants 1 iSC and reactivates.
    s.at(mon(14, 0)).await;
    let b = next_notice_of(&mut w, Kind::SlaBreach).await;
    assert_eq!(b.at, mon(13, 30) + 1);
    let r = next_notice_of(&mut w, Kind::Reactivation).await;
    assert_eq!(r.at, mon(13, 30) + 1);
    let v = s
        .ledger
        .get_account(get("susp", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.state, pb::AccountState::Active as i32);
    // 1 iSC granted at 13:30:01, 1799 s accrued since at 1e-6 iSC/s.
    assert_eq!(v.balance, "0.998201");
    let st = s
        .ledger
        .get_statement(pb::GetStatementRequest {
            account_id: "susp".into(),
            from: 0,
            to: mon(14, 0),
        })
        .await
        .unwrap()
        .into_inner();
    use pb::statement_line::Kind as L;
    let kinds: Vec<(i32, i64)> = st
        .lines
        .iter()
        .filter(|l| l.kind != L::Accrual as i32)
        .map(|l| (l.kind, l.at))
        .collect();
    assert!(kinds.contains(&(L::Depletion as i32, mon(9, 0))));
    let grant = kinds
        .iter()
        .position(|k| *k == (L::Grant as i32, mon(13, 30) + 1))
        .expect("a GRANT line");
    assert_eq!(kinds[grant + 1], (L::Reactivation as i32, mon(13, 30) + 1));
    // A second breach of the same deadline is never credited twice: a
    // late response changes nothing.
    s.respond("P1").await;
    assert_eq!(s.balance("susp").await, "0.998201");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_change_recomputes_deadlines_and_breaches_at_once() {
    use pb::notice::Kind;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), mon(8, 0)).await;
    let mut s = Sla::new(&server.url).await;
    let mut list = price_list(1, 0, "2.628");
    credits(&mut list, &[(1, pb::SlaKpi::Response, "2.5")]);
    s.ledger.publish_price_list(list).await.unwrap();
    s.ledger.open_account(open("acme")).await.unwrap();
    let mut w = s
        .ledger
        .watch(pb::WatchRequest {
            account_id: "acme".into(),
            since: 0,
        })
        .await
        .unwrap()
        .into_inner();
    s.at(mon(9, 0)).await;
    s.report("X", "acme", 3).await;
    // As P3 the response is due Tuesday 09:00; raised to P1 at 14:00 it was
    // due 13:00: breached at the change, credited at once.
    s.at(mon(14, 0)).await;
    let r = s
        .ledger
        .change_priority(pb::ChangePriorityRequest {
            incident_id: "X".into(),
            priority: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.at, mon(14, 0));
    let b = next_notice_of(&mut w, Kind::SlaBreach).await;
    assert_eq!((b.at, b.deadline, b.priority), (mon(14, 0), mon(13, 0), 1));
    assert_eq!(s.balance("acme").await, "2.5");
    let rep = s.sla_report().await;
    assert_eq!(rep.priorities[0].incidents, 1);
    assert_eq!(rep.priorities[2].incidents, 0);
    assert_eq!(rep.breaches[0].deadline, mon(13, 0));
    assert_eq!(rep.breaches[0].missed_by_support_seconds, 3600);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_has_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), mon(8, 0)).await;
    let mut s = Sla::new(&server.url).await;
    s.ledger.open_account(open("acme")).await.unwrap();
    s.ledger.open_account(open("gone")).await.unwrap();
    s.ledger
        .close_account(pb::CloseAccountRequest {
            account_id: "gone".into(),
        })
        .await
        .unwrap();
    let l = &mut s.ledger;
    let report = |id: &str, account: &str, priority: u32| pb::ReportIncidentRequest {
        incident_id: id.into(),
        account_id: account.into(),
        priority,
    };
    // Syntax and bounds first.
    code_of(
        l.report_incident(report("", "acme", 1)).await,
        Code::InvalidArgument,
    );
    code_of(
        l.report_incident(report("a b", "acme", 1)).await,
        Code::InvalidArgument,
    );
    let m = code_of(
        l.report_incident(report("i", "acme", 0)).await,
        Code::InvalidArgument,
    );
    assert!(m.contains("priority"), "{m}");
    code_of(
        l.report_incident(report("i", "acme", 5)).await,
        Code::InvalidArgument,
    );
    code_of(
        l.report_incident(report("i", "nobody", 9)).await,
        Code::InvalidArgument,
    );
    // Existence.
    code_of(
        l.report_incident(report("i", "nobody", 1)).await,
        Code::NotFound,
    );
    let unknown = || pb::RespondIncidentRequest {
        incident_id: "nope".into(),
    };
    let m = code_of(l.respond_incident(unknown()).await, Code::NotFound);
    assert!(m.contains("nope"), "{m}");
    code_of(
        l.change_priority(pb::ChangePriorityRequest {
            incident_id: "nope".into(),
            priority: 7,
        })
        .await,
        Code::InvalidArgument,
    );
    // State.
    code_of(
        l.report_incident(report("i", "gone", 1)).await,
        Code::FailedPrecondition,
    );
    l.report_incident(report("i", "acme", 2)).await.unwrap();
    code_of(
        l.report_incident(report("i", "acme", 2)).await,
        Code::AlreadyExists,
    );
    let id = || "i".to_string();
    code_of(
        l.update_incident(pb::UpdateIncidentRequest { incident_id: id() })
            .await,
        Code::FailedPrecondition,
    );
    code_of(
        l.change_priority(pb::ChangePriorityRequest {
            incident_id: id(),
            priority: 2,
        })
        .await,
        Code::FailedPrecondition,
    );
    l.respond_incident(pb::RespondIncidentRequest { incident_id: id() })
        .await
        .unwrap();
    code_of(
        l.respond_incident(pb::RespondIncidentRequest { incident_id: id() })
            .await,
        Code::FailedPrecondition,
    );
    l.resolve_incident(pb::ResolveIncidentRequest { incident_id: id() })
        .await
        .unwrap();
    let m = code_of(
        l.resolve_incident(pb::ResolveIncidentRequest { incident_id: id() })
            .await,
        Code::FailedPrecondition,
    );
    assert!(m.contains("resolved already"), "{m}");
    code_of(
        l.update_incident(pb::UpdateIncidentRequest { incident_id: id() })
            .await,
        Code::FailedPrecondition,
    );
    code_of(
        l.get_sla_report(pb::GetSlaReportRequest { from: 10, to: 5 })
            .await,
        Code::InvalidArgument,
    );
    server.stop().await;
}
