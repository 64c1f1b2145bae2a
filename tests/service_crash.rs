//! A command acknowledged to a client survives SIGKILL of the server right
//! after the acknowledgement (spec §9): the real binary is spawned, hammered
//! with top-ups from concurrent clients, killed mid-stream, restarted on the
//! same directory, and every acknowledged top-up is found again — retrying
//! its key returns the very same receipt.

mod common;

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use isc_ledger::api::pb;
use isc_ledger::domain::Nano;

struct Server {
    child: Child,
    url: String,
}

fn spawn(dir: &std::path::Path) -> Server {
    let (child, url) = spawn_serve(dir);
    Server { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = spawn(dir.path());
    let mut c = ledger(&srv.url).await;
    c.open_account(open("crash")).await.unwrap();

    let acked: Arc<Mutex<Vec<(String, pb::Receipt)>>> = Arc::default();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let url = srv.url.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = ledger(&url).await;
            for n in 0.. {
                let key = format!("KEY-crash-{t}-{n}");
                match c.top_up(topup("crash", &key, "1.000000001")).await {
                    Ok(r) => acked.lock().unwrap().push((key, r.into_inner())),
                    Err(_) => break,
                }
            }
        }));
    }
    // Let acknowledgements flow, then kill -9 in the middle of them.
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if acked.lock().unwrap().len() >= 200 {
            break;
        }
    }
    srv.child.kill().expect("SIGKILL");
    let _ = srv.child.wait();
    for t in tasks {
        let _ = t.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() >= 200);

    let mut srv = spawn(dir.path());
    let mut c = ledger(&srv.url).await;
    let v = c.get_account(get("crash", 0)).await.unwrap().into_inner();
    let max_seq = acked.iter().map(|(_, r)| r.seq).max().unwrap();
    // Balance covers at least every acknowledged top-up (unacknowledged ones
    // that reached the disk may be there too).
    let balance = Nano::parse(&v.balance).unwrap();
    let acked_total = Nano(1_000_000_001 * acked.len() as i128);
    assert!(balance >= acked_total, "{} < {acked_total}", v.balance);
    for (key, receipt) in &acked {
        let again = c
            .top_up(topup("crash", key, "1.000000001"))
            .await
            .unwrap()
            .into_inner();
        // The first receipt's seq, at and balance; the head is the newest (§13).
        assert_eq!(
            (again.seq, again.at, &again.balance),
            (receipt.seq, receipt.at, &receipt.balance),
            "acknowledged top-up {key} lost or changed"
        );
        assert!(again.tree_size >= receipt.tree_size);
    }
    // The log continues after the highest acknowledged record.
    let next = c
        .open_account(open("after-crash"))
        .await
        .unwrap()
        .into_inner();
    assert!(next.seq > max_seq);
    srv.child.kill().unwrap();
    let _ = srv.child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_with_exit_code_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = spawn(dir.path());
    let mut c = ledger(&srv.url).await;
    c.open_account(open("term")).await.unwrap();
    // An open watch stream must not keep the server from stopping.
    let _w = c
        .watch(pb::WatchRequest {
            account_id: String::new(),
            since: 0,
        })
        .await
        .unwrap()
        .into_inner();
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || srv.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut srv = spawn(dir.path());
    let mut c = ledger(&srv.url).await;
    c.get_account(get("term", 0)).await.unwrap();
    srv.child.kill().unwrap();
    let _ = srv.child.wait();
}
