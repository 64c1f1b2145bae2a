//! The gRPC service end to end: a real server on 127.0.0.1:0 over a temp
//! dir, driven with the generated client (spec §7, §10–§12, issue 5).

mod common;

use common::*;
use isc_ledger::api::pb;
use tonic::Code;

const T0: i64 = 1_000_000;

/// A ledger with a price list and one funded, renting account:
/// 10 ports at 1e-6 iSC/s each = 1e-5 iSC/s; balance 10 → runs out 1e6 s later.
async fn funded(url: &str) -> (pb::Receipt, pb::Receipt) {
    let mut c = ledger(url).await;
    c.publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap();
    c.open_account(open("acme")).await.unwrap();
    let top = c
        .top_up(topup("acme", "KEY-0001", "10"))
        .await
        .unwrap()
        .into_inner();
    let cfg = c
        .change_config(config("acme", "pbx-1", 10))
        .await
        .unwrap()
        .into_inner();
    (top, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_answers() {
    let (_dir, srv, mut c) = start_temp(T0).await;

    let r = c
        .publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.seq, r.at, r.balance.as_str()), (1, T0, ""));
    let r = c.open_account(open("acme")).await.unwrap().into_inner();
    assert_eq!((r.seq, r.balance.as_str()), (2, "0"));
    let r = c
        .top_up(topup("acme", "KEY-0001", "10"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.seq, r.balance.as_str()), (3, "10"));
    let r = c
        .change_config(config("acme", "pbx-1", 10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.seq, r.balance.as_str()), (4, "10"));

    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.state, pb::AccountState::Active as i32);
    assert_eq!(v.balance, "10");
    assert_eq!(v.monthly_rate, "26.28");
    assert_eq!(v.daily_rate, "0.864");
    assert_eq!(v.runtime_seconds, Some(1_000_000));
    assert_eq!(v.runout_at, Some(T0 + 1_000_000));
    assert_eq!(v.pbxs.len(), 1);
    assert_eq!(v.pbxs[0].price_list_version, 1);
    assert!(v.pbxs[0].enabled);
    assert_eq!(v.pbxs[0].licenses[0].monthly_cost, "26.28");

    clock(&srv.url)
        .await
        .set_time(pb::SetTimeRequest {
            unix_seconds: T0 + 100_000,
        })
        .await
        .unwrap();
    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.balance, "9");
    // A past instant is served from history.
    let past = c
        .get_account(get("acme", T0 + 50_000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(past.balance, "9.5");

    let st = c
        .get_statement(pb::GetStatementRequest {
            account_id: "acme".into(),
            from: 0,
            to: T0 + 100_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.opening_balance, "0");
    assert_eq!(st.closing_balance, "9");
    use pb::statement_line::Kind;
    let kinds: Vec<i32> = st.lines.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        vec![
            Kind::Open as i32,
            Kind::TopUp as i32,
            Kind::ConfigChange as i32,
            Kind::Accrual as i32
        ]
    );
    let accrual = &st.lines[3];
    assert_eq!(
        (
            accrual.amount.as_str(),
            accrual.seconds,
            accrual.from,
            accrual.to
        ),
        ("-1", 100_000, T0, T0 + 100_000)
    );
    assert_eq!(accrual.monthly_rate, "26.28");

    let rep = c
        .get_compliance_report(pb::GetComplianceReportRequest {
            from: 0,
            to: T0 + 100_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rep.entries.is_empty());

    // Watch with replay: the 30-day reminder fell due at the config change.
    let mut w = c
        .watch(pb::WatchRequest {
            account_id: "acme".into(),
            since: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let n = next_notice(&mut w).await;
    assert_eq!(
        (n.kind, n.at, n.threshold_seconds),
        (pb::notice::Kind::Reminder as i32, T0, 2_592_000)
    );

    let r = c
        .close_account(pb::CloseAccountRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.seq, r.balance.as_str()), (5, "0"));
    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.state, pb::AccountState::Closed as i32);
    drop(w);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_codes_of_section_7_and_11() {
    let (_dir, srv, mut c) = start_temp(T0).await;
    // Licenses while no price list is in effect.
    c.open_account(open("early")).await.unwrap();
    code_of(
        c.change_config(config("early", "pbx-e", 1)).await,
        Code::FailedPrecondition,
    );
    funded(&srv.url).await;

    // INVALID_ARGUMENT: syntax and bounds.
    for bad in [
        "1.",
        ".5",
        "-1",
        "1e3",
        "1.0000000000",
        " 1",
        "1,5",
        "",
        "0",
        "1000000001",
    ] {
        let m = code_of(
            c.top_up(topup("acme", "KEY-bad-amount", bad)).await,
            Code::InvalidArgument,
        );
        assert!(!m.is_empty(), "{bad:?}");
    }
    code_of(c.open_account(open("bad id")).await, Code::InvalidArgument);
    code_of(c.open_account(open("é")).await, Code::InvalidArgument);
    code_of(
        c.open_account(open(&"a".repeat(65))).await,
        Code::InvalidArgument,
    );
    code_of(
        c.top_up(topup("acme", "short", "1")).await,
        Code::InvalidArgument,
    );
    code_of(
        c.top_up(topup("acme", "has space key", "1")).await,
        Code::InvalidArgument,
    );
    // An empty set is always accepted for an open account (ends the rental).
    c.change_config(config("acme", "pbx-empty", 0))
        .await
        .unwrap();
    let mut zero = config("acme", "pbx-1", 1);
    zero.licenses[0].quantity = 0;
    code_of(c.change_config(zero).await, Code::InvalidArgument);
    let mut unknown = config("acme", "pbx-1", 1);
    unknown.licenses[0].license_type = "PBX-Nope13".into();
    code_of(c.change_config(unknown).await, Code::InvalidArgument);
    let mut hosting = config("acme", "pbx-1", 1);
    hosting.hosting = 42;
    let m = code_of(c.change_config(hosting).await, Code::InvalidArgument);
    assert!(m.contains("hosting"), "{m}");
    let mut relay = price_list(2, 0, "1");
    relay.entries.push(pb::PriceEntry {
        license_type: "Relay-4".into(),
        tiers: vec![pb::Tier {
            from_qty: 1,
            monthly_price: "1".into(),
        }],
    });
    code_of(c.publish_price_list(relay).await, Code::InvalidArgument);
    code_of(
        c.publish_price_list(pb::PublishPriceListRequest {
            version: 2,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    code_of(
        c.publish_price_list(price_list(2, 0, "1.5.5")).await,
        Code::InvalidArgument,
    );

    // NOT_FOUND.
    code_of(
        c.top_up(topup("ghost", "KEY-ghost-1", "1")).await,
        Code::NotFound,
    );
    code_of(c.get_account(get("ghost", 0)).await, Code::NotFound);
    code_of(c.get_account(get("acme", 5)).await, Code::NotFound);

    // ALREADY_EXISTS.
    code_of(c.open_account(open("acme")).await, Code::AlreadyExists);
    code_of(
        c.top_up(topup("acme", "KEY-0001", "11")).await,
        Code::AlreadyExists,
    );

    // FAILED_PRECONDITION.
    let mut old_fw = config("acme", "pbx-2", 1);
    old_fw.firmware_major = 12;
    code_of(c.change_config(old_fw).await, Code::FailedPrecondition);
    c.open_account(open("other")).await.unwrap();
    code_of(
        c.change_config(config("other", "pbx-1", 0)).await,
        Code::FailedPrecondition,
    );
    // min_activation_runtime: 10 iSC cannot pay one day of 1e6 ports.
    code_of(
        c.change_config(config("acme", "pbx-1", 1_000_000)).await,
        Code::FailedPrecondition,
    );
    code_of(
        c.publish_price_list(price_list(1, 0, "3")).await,
        Code::FailedPrecondition,
    );
    code_of(
        clock(&srv.url)
            .await
            .set_time(pb::SetTimeRequest {
                unix_seconds: T0 - 1,
            })
            .await,
        Code::FailedPrecondition,
    );
    c.close_account(pb::CloseAccountRequest {
        account_id: "other".into(),
    })
    .await
    .unwrap();
    code_of(
        c.top_up(topup("other", "KEY-other-1", "1")).await,
        Code::FailedPrecondition,
    );
    code_of(
        c.close_account(pb::CloseAccountRequest {
            account_id: "other".into(),
        })
        .await,
        Code::FailedPrecondition,
    );
    code_of(c.open_account(open("other")).await, Code::AlreadyExists);
    code_of(
        c.get_statement(pb::GetStatementRequest {
            account_id: "acme".into(),
            from: 10,
            to: 5,
        })
        .await,
        Code::InvalidArgument,
    );

    // Nothing above was recorded: acme still reads as before.
    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.balance, "10");
    let pbx1 = v.pbxs.iter().find(|p| p.pbx_id == "pbx-1").unwrap();
    assert_eq!(pbx1.licenses[0].quantity, 10);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_top_up_retry_returns_the_first_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), T0).await;
    let (first, _) = funded(&srv.url).await;
    let mut c = ledger(&srv.url).await;
    clock(&srv.url)
        .await
        .set_time(pb::SetTimeRequest {
            unix_seconds: T0 + 500,
        })
        .await
        .unwrap();
    let again = c
        .top_up(topup("acme", "KEY-0001", "10.000"))
        .await
        .unwrap()
        .into_inner();
    // The first receipt's seq, at and balance (with the newest tree head, §13).
    let core = |r: &pb::Receipt| (r.seq, r.at, r.balance.clone());
    assert_eq!(core(&again), core(&first));
    assert!(again.tree_size >= first.tree_size);
    // The retry recorded nothing: the next record is seq 5.
    let next = c
        .top_up(topup("acme", "KEY-0002", "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.seq, 5);
    // Concurrent retries of one new key: exactly one record.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = srv.url.clone();
        tasks.push(tokio::spawn(async move {
            ledger(&url)
                .await
                .top_up(topup("acme", "KEY-0003", "2"))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut receipts = Vec::new();
    for t in tasks {
        receipts.push(t.await.unwrap());
    }
    assert!(
        receipts.windows(2).all(|w| core(&w[0]) == core(&w[1])),
        "{receipts:?}"
    );
    assert_eq!(receipts[0].seq, 6);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depletion_and_reactivation_through_get_account_and_watch() {
    let (_dir, srv, mut c) = start_temp(T0).await;
    funded(&srv.url).await;
    let mut clk = clock(&srv.url).await;
    let mut w = c
        .watch(pb::WatchRequest {
            account_id: String::new(),
            since: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let t_zero = T0 + 1_000_000;
    // Past the 7-day and 1-day reminders, one second before runout.
    clk.set_time(pb::SetTimeRequest {
        unix_seconds: t_zero - 1,
    })
    .await
    .unwrap();
    let n = next_notice(&mut w).await;
    assert_eq!(
        (n.kind, n.at, n.threshold_seconds),
        (pb::notice::Kind::Reminder as i32, t_zero - 604_800, 604_800)
    );
    let n = next_notice(&mut w).await;
    assert_eq!(
        (n.kind, n.at, n.threshold_seconds),
        (pb::notice::Kind::Reminder as i32, t_zero - 86_400, 86_400)
    );
    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.state, pb::AccountState::Active as i32);
    assert_eq!(v.runtime_seconds, Some(1));

    clk.set_time(pb::SetTimeRequest {
        unix_seconds: t_zero,
    })
    .await
    .unwrap();
    let n = next_notice(&mut w).await;
    assert_eq!(
        (n.account_id.as_str(), n.kind, n.at),
        ("acme", pb::notice::Kind::Depletion as i32, t_zero)
    );
    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.state, pb::AccountState::Suspended as i32);
    assert_eq!(v.balance, "0");
    assert_eq!(v.monthly_rate, "0");
    assert!(!v.pbxs[0].enabled);
    assert_eq!(v.runtime_seconds, None);

    // Raising the rate while suspended is refused; a top-up reactivates.
    clk.set_time(pb::SetTimeRequest {
        unix_seconds: t_zero + 3_600,
    })
    .await
    .unwrap();
    code_of(
        c.change_config(config("acme", "pbx-1", 11)).await,
        Code::FailedPrecondition,
    );
    let r = c
        .top_up(topup("acme", "KEY-0002", "20"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.balance, "20");
    let n = next_notice(&mut w).await;
    assert_eq!(
        (n.kind, n.at),
        (pb::notice::Kind::Reactivation as i32, t_zero + 3_600)
    );
    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.state, pb::AccountState::Active as i32);
    assert!(v.pbxs[0].enabled);

    // A late watcher replays everything since an instant, in order.
    let mut late = c
        .watch(pb::WatchRequest {
            account_id: "acme".into(),
            since: T0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        kinds.push(next_notice(&mut late).await.kind);
    }
    use pb::notice::Kind;
    assert_eq!(
        kinds,
        vec![
            Kind::Reminder as i32,
            Kind::Reminder as i32,
            Kind::Depletion as i32,
            Kind::Reactivation as i32
        ]
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_balance_to_the_nano() {
    let (dir, srv, mut c) = start_temp(T0).await;
    funded(&srv.url).await;
    let mut clk = clock(&srv.url).await;
    for i in 0..20u32 {
        let id = format!("acct-{i}");
        c.open_account(open(&id)).await.unwrap();
        c.top_up(topup(
            &id,
            &format!("KEY-restart-{i}"),
            &format!("{}.123456789", 5 + i),
        ))
        .await
        .unwrap();
        clk.set_time(pb::SetTimeRequest {
            unix_seconds: T0 + 7 * i64::from(i),
        })
        .await
        .unwrap();
        c.change_config(config(&id, &format!("pbx-r{i}"), 1 + i % 7))
            .await
            .unwrap();
    }
    let at = T0 + 123_457;
    let mut before = Vec::new();
    for i in 0..20 {
        before.push(
            c.get_account(get(&format!("acct-{i}"), at))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    srv.stop().await;

    let srv = start(dir.path(), T0 + 200).await;
    let mut c = ledger(&srv.url).await;
    for (i, b) in before.iter().enumerate() {
        let a = c
            .get_account(get(&format!("acct-{i}"), at))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&a, b, "acct-{i}");
    }
    // Records continue densely.
    let r = c
        .open_account(open("after-restart"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.seq, 4 + 20 * 3 + 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_roles(dir.path(), T0).await;
    let callers = Callers::connect(&srv.url).await;
    let with = |tok: &str| callers.with(tok);
    let mut anon = callers.anon();
    code_of(anon.open_account(open("a1")).await, Code::Unauthenticated);
    code_of(
        with("wrong").open_account(open("a1")).await,
        Code::Unauthenticated,
    );
    code_of(
        with("vendor-tok").open_account(open("a1")).await,
        Code::PermissionDenied,
    );
    code_of(
        with("agent-tok")
            .publish_price_list(price_list(1, 0, "1"))
            .await,
        Code::PermissionDenied,
    );
    code_of(
        with("audit-tok").open_account(open("a1")).await,
        Code::PermissionDenied,
    );
    with("vendor-tok")
        .publish_price_list(price_list(1, 0, "1"))
        .await
        .unwrap();
    with("agent-tok").open_account(open("a1")).await.unwrap();
    code_of(
        with("agent-tok")
            .close_account(pb::CloseAccountRequest {
                account_id: "a1".into(),
            })
            .await,
        Code::PermissionDenied,
    );
    code_of(
        with("agent-tok")
            .get_compliance_report(pb::GetComplianceReportRequest { from: 0, to: 1 })
            .await,
        Code::PermissionDenied,
    );
    with("audit-tok").get_account(get("a1", 0)).await.unwrap();
    with("audit-tok")
        .get_compliance_report(pb::GetComplianceReportRequest { from: 0, to: 1 })
        .await
        .unwrap();
    with("admin-tok")
        .close_account(pb::CloseAccountRequest {
            account_id: "a1".into(),
        })
        .await
        .unwrap();
    // Health needs no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(callers.channel());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "isc.ledger.v1.Ledger".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors_and_the_server_stays_up() {
    let (_dir, srv, mut c) = start_temp(T0).await;
    funded(&srv.url).await;

    // Huge repeated field (under the size limit): INVALID_ARGUMENT.
    let mut huge = config("acme", "pbx-1", 1);
    huge.licenses = vec![
        pb::LicenseLine {
            license_type: PORT.into(),
            quantity: 1
        };
        100_000
    ];
    let m = code_of(c.change_config(huge).await, Code::InvalidArgument);
    assert!(m.contains("too many"), "{m}");
    let mut tiers = price_list(2, 0, "1");
    tiers.entries[0].tiers = (1..=10_000)
        .map(|q| pb::Tier {
            from_qty: q,
            monthly_price: "1".into(),
        })
        .collect();
    code_of(c.publish_price_list(tiers).await, Code::InvalidArgument);

    // A 10 MB message: refused by the size limit, with a message.
    let big = c.open_account(open(&"x".repeat(10 << 20))).await;
    let s = big.expect_err("10 MB must be refused");
    assert!(
        matches!(
            s.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{s:?}"
    );
    assert!(!s.message().is_empty());

    // Out-of-alphabet ids and odd decimals.
    code_of(
        c.open_account(open("acme/../x")).await,
        Code::InvalidArgument,
    );
    code_of(
        c.top_up(topup("acme", "KEY-odd-1", "0x10")).await,
        Code::InvalidArgument,
    );

    // Still up and consistent.
    let mut c = ledger(&srv.url).await;
    let v = c.get_account(get("acme", 0)).await.unwrap().into_inner();
    assert_eq!(v.balance, "10");
    c.open_account(open("still-up")).await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_report_flags_on_off_cycling() {
    let (_dir, srv, mut c) = start_temp(T0).await;
    c.publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap();
    c.open_account(open("cyc")).await.unwrap();
    c.top_up(topup("cyc", "KEY-cycle-1", "1000")).await.unwrap();
    let mut clk = clock(&srv.url).await;
    let mut t = T0;
    c.change_config(config("cyc", "p", 10)).await.unwrap();
    for _ in 0..3 {
        t += 86_400;
        clk.set_time(pb::SetTimeRequest { unix_seconds: t })
            .await
            .unwrap();
        c.change_config(config("cyc", "p", 2)).await.unwrap();
        t += 3_600;
        clk.set_time(pb::SetTimeRequest { unix_seconds: t })
            .await
            .unwrap();
        c.change_config(config("cyc", "p", 10)).await.unwrap();
    }
    let rep = c
        .get_compliance_report(pb::GetComplianceReportRequest { from: 0, to: t })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rep.entries.len(), 1);
    assert_eq!(rep.entries[0].pbx_id, "p");
    assert_eq!(rep.entries[0].cycles.len(), 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_ledger_and_clock_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), T0).await;
    let mut r = ServerReflectionClient::new(channel(&srv.url).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = r
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "isc.ledger.v1.Ledger",
        "isc.ledger.v1.Clock",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_model_warnings_and_violations_reach_the_client() {
    let (_dir, srv, mut c) = start_temp(T0).await;
    let mut list = price_list(1, 0, "2.628");
    for t in ["PBX-Standby13", "Port13$20"] {
        list.entries.push(pb::PriceEntry {
            license_type: t.into(),
            tiers: vec![pb::Tier {
                from_qty: 1,
                monthly_price: "1".into(),
            }],
        });
    }
    c.publish_price_list(list).await.unwrap();
    c.open_account(open("lm")).await.unwrap();
    c.top_up(topup("lm", "KEY-lm-0001", "1000")).await.unwrap();
    // Fewer Standby than Port licenses: accepted, with a warning on the view.
    let mut cfg = config("lm", "pbx-lm", 10);
    cfg.licenses.push(pb::LicenseLine {
        license_type: "PBX-Standby13".into(),
        quantity: 2,
    });
    c.change_config(cfg).await.unwrap();
    let v = c.get_account(get("lm", 0)).await.unwrap().into_inner();
    assert_eq!(v.pbxs[0].warnings.len(), 1, "{:?}", v.pbxs[0].warnings);
    // SMB-Port with Port licenses: a violation, FAILED_PRECONDITION.
    let mut bad = config("lm", "pbx-lm", 10);
    bad.licenses.push(pb::LicenseLine {
        license_type: "Port13$20".into(),
        quantity: 1,
    });
    code_of(c.change_config(bad).await, Code::FailedPrecondition);
    // A malformed catalogue is an argument error.
    let mut list = price_list(2, 0, "2.628");
    list.catalogue_toml = "version = \"x\"".into();
    code_of(c.publish_price_list(list).await, Code::InvalidArgument);
    srv.stop().await;
}
