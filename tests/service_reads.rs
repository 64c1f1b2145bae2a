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
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), T0).await;
    let mut c = ledger(&srv.url).await;
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
