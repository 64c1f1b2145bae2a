//! Reads over gRPC against a real server on 127.0.0.1:0: every read that
//! takes an account id checks its syntax before its existence (spec §11).

mod common;

use common::*;
use isc_ledger::api::pb;
use isc_ledger::domain::ids::ID_RULE;
use tonic::Code;

const T0: i64 = 1_000_000;

/// The malformed ids every read must refuse with `INVALID_ARGUMENT`.
fn malformed() -> Vec<String> {
    vec![String::new(), "a".repeat(65), "bad id".into()]
}

#[track_caller]
fn invalid_naming<T: std::fmt::Debug>(r: Result<T, tonic::Status>, id: &str) {
    let msg = code_of(r, Code::InvalidArgument);
    assert!(msg.contains("account id"), "{id:?}: {msg}");
    assert!(msg.contains(ID_RULE), "the rule is named for {id:?}: {msg}");
    if !id.is_empty() {
        assert!(
            msg.contains(&id[..id.len().min(60)]),
            "the id is named: {msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_check_the_id_before_existence() {
    let (_dir, srv, mut c) = start_temp(T0).await;
    c.open_account(open("acme")).await.unwrap();

    for id in malformed() {
        invalid_naming(c.get_account(get(&id, 0)).await, &id);
        invalid_naming(c.get_account(get(&id, T0 - 10)).await, &id);
        let st = pb::GetStatementRequest {
            account_id: id.clone(),
            from: 0,
            to: T0,
        };
        invalid_naming(c.get_statement(st).await, &id);
        if !id.is_empty() {
            // An empty id means "all accounts" for Watch.
            let w = pb::WatchRequest {
                account_id: id.clone(),
                since: 0,
            };
            invalid_naming(c.watch(w).await.map(|_| ()), &id);
            let w = pb::WatchRequest {
                account_id: id.clone(),
                since: 1,
            };
            invalid_naming(c.watch(w).await.map(|_| ()), &id);
        }
    }

    // Well formed but never opened: NOT_FOUND, for every read.
    let msg = code_of(c.get_account(get("nobody", 0)).await, Code::NotFound);
    assert!(msg.contains("nobody"), "{msg}");
    let st = pb::GetStatementRequest {
        account_id: "nobody".into(),
        from: 0,
        to: T0,
    };
    code_of(c.get_statement(st).await, Code::NotFound);
    let w = pb::WatchRequest {
        account_id: "nobody".into(),
        since: 0,
    };
    let msg = code_of(c.watch(w).await.map(|_| ()), Code::NotFound);
    assert!(msg.contains("nobody"), "{msg}");

    // The syntax check precedes the window check of a statement too.
    let st = pb::GetStatementRequest {
        account_id: "bad id".into(),
        from: 10,
        to: 5,
    };
    invalid_naming(c.get_statement(st).await, "bad id");

    // And the opened account reads fine.
    c.get_account(get("acme", 0)).await.unwrap();
    let w = pb::WatchRequest {
        account_id: "acme".into(),
        since: 0,
    };
    c.watch(w).await.unwrap();
    // An empty id still watches every account.
    c.watch(pb::WatchRequest {
        account_id: String::new(),
        since: 0,
    })
    .await
    .unwrap();
    srv.stop().await;
}

// ---------------------------------------------------------------- ListAccounts

use isc_ledger::api::auth::Tokens;
use isc_ledger::domain::Policy;
use pb::list_accounts_request::Order;
use std::collections::HashSet;

const DAY: i64 = 86_400;

/// A server whose rate rises need no minimum runtime (short runouts).
async fn start_lenient(dir: &std::path::Path) -> TestServer {
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    start_with(dir, T0, Tokens::none(), policy).await
}

/// Opens `id`, loads enough credit for one port to run `runout_s` seconds
/// (1 port = 1e-6 iSC/s) and rents that port.
async fn renting(
    c: &mut pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    id: &str,
    runout_s: i64,
) {
    c.open_account(open(id)).await.unwrap();
    let amount = format!("{}.{:06}", runout_s / 1_000_000, runout_s % 1_000_000);
    c.top_up(topup(id, &format!("KEY-{id}"), &amount))
        .await
        .unwrap();
    c.change_config(config(id, &format!("pbx-{id}"), 1))
        .await
        .unwrap();
}

fn list(state: pb::AccountState, order: Order) -> pb::ListAccountsRequest {
    pb::ListAccountsRequest {
        state: state as i32,
        order: order as i32,
        ..Default::default()
    }
}

fn ids(r: &pb::ListAccountsResponse) -> Vec<&str> {
    r.accounts.iter().map(|a| a.account_id.as_str()).collect()
}

/// Every page of a listing, following the tokens.
async fn all_pages(
    c: &mut pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    mut req: pb::ListAccountsRequest,
) -> Vec<pb::AccountRow> {
    let mut rows = Vec::new();
    loop {
        let page = c.list_accounts(req.clone()).await.unwrap().into_inner();
        rows.extend(page.accounts);
        if page.next_page_token.is_empty() {
            return rows;
        }
        req.page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_accounts_filters_and_orders() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_lenient(dir.path()).await;
    let mut c = ledger(&srv.url).await;
    let mut clk = clock(&srv.url).await;
    c.publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap();
    c.open_account(open("a-idle")).await.unwrap();
    c.open_account(open("a-closed")).await.unwrap();
    c.close_account(pb::CloseAccountRequest {
        account_id: "a-closed".into(),
    })
    .await
    .unwrap();
    renting(&mut c, "d-susp", 10).await;
    renting(&mut c, "c-far", 100 * DAY).await;
    renting(&mut c, "b-week", 5 * DAY).await;
    renting(&mut c, "c-month", 20 * DAY).await;
    renting(&mut c, "b-soon", DAY).await;
    clk.set_time(pb::SetTimeRequest {
        unix_seconds: T0 + 100,
    })
    .await
    .unwrap();

    // Default order: soonest runout first, then the rest by id.
    let all = c
        .list_accounts(list(pb::AccountState::Unspecified, Order::Runout))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(&all),
        ["b-soon", "b-week", "c-month", "c-far", "a-closed", "a-idle", "d-susp"]
    );
    assert!(all.next_page_token.is_empty());
    assert_eq!(all.at, T0 + 100);
    // Each row is the account's view at that instant.
    for row in &all.accounts {
        let v = c
            .get_account(get(&row.account_id, all.at))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (
                &row.balance,
                row.state,
                &row.monthly_rate,
                &row.daily_rate,
                row.runtime_seconds,
                row.runout_at,
                row.pbx_count as usize
            ),
            (
                &v.balance,
                v.state,
                &v.monthly_rate,
                &v.daily_rate,
                v.runtime_seconds,
                v.runout_at,
                v.pbxs.len()
            ),
            "{}",
            row.account_id
        );
    }
    let by_id = c
        .list_accounts(list(pb::AccountState::Unspecified, Order::Id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(&by_id),
        ["a-closed", "a-idle", "b-soon", "b-week", "c-far", "c-month", "d-susp"]
    );

    // By state, in both orders.
    for (state, want) in [
        (pb::AccountState::Suspended, vec!["d-susp"]),
        (pb::AccountState::Idle, vec!["a-idle"]),
        (pb::AccountState::Closed, vec!["a-closed"]),
    ] {
        for order in [Order::Runout, Order::Id] {
            let r = c
                .list_accounts(list(state, order))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(ids(&r), want, "{state:?} {order:?}");
        }
    }
    let r = c
        .list_accounts(list(pb::AccountState::Active, Order::Runout))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&r), ["b-soon", "b-week", "c-month", "c-far"]);
    let r = c
        .list_accounts(list(pb::AccountState::Active, Order::Id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&r), ["b-soon", "b-week", "c-far", "c-month"]);

    // By runout: within 7 days of the server's now, or before an instant.
    let mut q = list(pb::AccountState::Unspecified, Order::Runout);
    q.runout_within_seconds = 7 * DAY;
    assert_eq!(
        ids(&c.list_accounts(q.clone()).await.unwrap().into_inner()),
        ["b-soon", "b-week"]
    );
    q.order = Order::Id as i32;
    assert_eq!(
        ids(&c.list_accounts(q).await.unwrap().into_inner()),
        ["b-soon", "b-week"]
    );
    let mut q = list(pb::AccountState::Unspecified, Order::Runout);
    q.runout_before = T0 + 30 * DAY;
    assert_eq!(
        ids(&c.list_accounts(q.clone()).await.unwrap().into_inner()),
        ["b-soon", "b-week", "c-month"]
    );
    q.state = pb::AccountState::Suspended as i32;
    assert!(ids(&c.list_accounts(q).await.unwrap().into_inner()).is_empty());

    // By id prefix, in both orders.
    let mut q = list(pb::AccountState::Unspecified, Order::Runout);
    q.id_prefix = "c-".into();
    assert_eq!(
        ids(&c.list_accounts(q.clone()).await.unwrap().into_inner()),
        ["c-month", "c-far"]
    );
    q.order = Order::Id as i32;
    assert_eq!(
        ids(&c.list_accounts(q.clone()).await.unwrap().into_inner()),
        ["c-far", "c-month"]
    );
    q.id_prefix = "a".into();
    assert_eq!(
        ids(&c.list_accounts(q).await.unwrap().into_inner()),
        ["a-closed", "a-idle"]
    );

    // Time alone suspends: past b-soon's runout it leaves the runout part.
    clk.set_time(pb::SetTimeRequest {
        unix_seconds: T0 + 2 * DAY,
    })
    .await
    .unwrap();
    let r = c
        .list_accounts(list(pb::AccountState::Suspended, Order::Runout))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&r), ["b-soon", "d-susp"]);
    let r = c
        .list_accounts(list(pb::AccountState::Unspecified, Order::Runout))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(&r),
        ["b-week", "c-month", "c-far", "a-closed", "a-idle", "b-soon", "d-susp"]
    );

    // Bad arguments.
    let mut q = list(pb::AccountState::Unspecified, Order::Runout);
    q.page_size = 1001;
    code_of(c.list_accounts(q).await, Code::InvalidArgument);
    let mut q = list(pb::AccountState::Unspecified, Order::Runout);
    q.page_token = "not-a-token".into();
    code_of(c.list_accounts(q).await, Code::InvalidArgument);
    let mut q = list(pb::AccountState::Unspecified, Order::Runout);
    q.id_prefix = "bad id".into();
    code_of(c.list_accounts(q).await, Code::InvalidArgument);
    let mut q = list(pb::AccountState::Unspecified, Order::Runout);
    q.state = 99;
    code_of(c.list_accounts(q).await, Code::InvalidArgument);
    // A token only continues the listing it came from.
    let mut q = list(pb::AccountState::Unspecified, Order::Id);
    q.page_size = 2;
    let p1 = c.list_accounts(q.clone()).await.unwrap().into_inner();
    assert_eq!(ids(&p1), ["a-closed", "a-idle"]);
    q.order = Order::Runout as i32;
    q.page_token = p1.next_page_token;
    code_of(c.list_accounts(q).await, Code::InvalidArgument);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_accounts_pages_stay_stable_while_accounts_are_added() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_lenient(dir.path()).await;
    let mut c = ledger(&srv.url).await;
    c.publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap();
    // 60 accounts with distinct runouts, opened concurrently (group commit).
    let ids_at_start: Vec<String> = (0..60).map(|i| format!("p-{:03}", (i * 37) % 60)).collect();
    let tasks: Vec<_> = ids_at_start
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let url = srv.url.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let mut c = ledger(&url).await;
                renting(&mut c, &id, DAY + 1000 * i as i64).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for order in [Order::Id, Order::Runout] {
        let mut req = list(pb::AccountState::Unspecified, order);
        req.page_size = 7;
        let mut seen: Vec<pb::AccountRow> = Vec::new();
        let mut pages = 0;
        loop {
            let page = c.list_accounts(req.clone()).await.unwrap().into_inner();
            assert!(page.accounts.len() <= 7);
            seen.extend(page.accounts);
            pages += 1;
            // Between pages, accounts are added on both sides of the cursor:
            // ids before and after, runouts sooner and later.
            let n = pages;
            renting(&mut c, &format!("a-new-{order:?}-{n:02}"), 2 * DAY + n).await;
            renting(&mut c, &format!("z-new-{order:?}-{n:02}"), 500 + n).await;
            if page.next_page_token.is_empty() {
                break;
            }
            req.page_token = page.next_page_token;
        }
        assert!(pages >= 9, "{order:?}: {pages} pages");
        let listed: Vec<&str> = seen.iter().map(|r| r.account_id.as_str()).collect();
        let unique: HashSet<&str> = listed.iter().copied().collect();
        assert_eq!(
            unique.len(),
            listed.len(),
            "{order:?}: no account twice: {listed:?}"
        );
        for id in &ids_at_start {
            assert!(unique.contains(id.as_str()), "{order:?}: {id} listed");
        }
        // In order across pages.
        match order {
            Order::Id => assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}"),
            Order::Runout => assert!(
                seen.windows(2)
                    .all(|w| (w[0].runout_at.unwrap(), &w[0].account_id)
                        < (w[1].runout_at.unwrap(), &w[1].account_id)),
                "{listed:?}"
            ),
        }
    }
    // Following every page of a plain listing equals one big page.
    let mut small = list(pb::AccountState::Unspecified, Order::Runout);
    small.page_size = 9;
    let paged = all_pages(&mut c, small).await;
    let mut big = list(pb::AccountState::Unspecified, Order::Runout);
    big.page_size = 1000;
    let one = c.list_accounts(big).await.unwrap().into_inner();
    assert_eq!(paged, one.accounts);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_accounts_roles() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_roles(dir.path(), T0).await;
    let callers = Callers::connect(&srv.url).await;
    let with = |tok: &str| callers.with(tok);
    with("agent-tok").open_account(open("a1")).await.unwrap();
    let q = || list(pb::AccountState::Unspecified, Order::Runout);
    for tok in ["agent-tok", "audit-tok", "admin-tok"] {
        let r = with(tok).list_accounts(q()).await.unwrap().into_inner();
        assert_eq!(ids(&r), ["a1"], "{tok}");
    }
    code_of(
        with("vendor-tok").list_accounts(q()).await,
        Code::PermissionDenied,
    );
    code_of(
        with("wrong").list_accounts(q()).await,
        Code::Unauthenticated,
    );
    let mut anon = callers.anon();
    code_of(anon.list_accounts(q()).await, Code::Unauthenticated);
    srv.stop().await;
}
