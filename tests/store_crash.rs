//! Crash test (issue 4): a child process appends in a loop and prints each
//! acknowledged seq; it is killed with SIGKILL at random moments, the store
//! is reopened each time, and every acknowledged seq must be there, the
//! chain must verify and the replay must succeed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use isc_ledger::cli::audit::{self, VerifyArgs};
use isc_ledger::domain::Policy;
use isc_ledger::store::ledger::open_ledger;
use isc_ledger::store::workload::Rng;
use isc_ledger::store::LogStore;

const KILLS: usize = 24;

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut rng = Rng::new(0x5EED);
    let mut acked_max = 0u64;
    for round in 0..KILLS {
        let batch = 1 + rng.below(40);
        let mut child = Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
            .args([
                "__append-loop",
                "--seed",
                &round.to_string(),
                "--batch",
                &batch.to_string(),
            ])
            .args(["--snapshot-every", "300", "--data"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it has opened the store, then let it run a random while.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child opened");
        let opened: u64 = first
            .strip_prefix("open ")
            .and_then(|s| s.parse().ok())
            .expect("open line");
        assert!(
            opened >= acked_max,
            "round {round}: reopened at {opened} < acked {acked_max}"
        );
        std::thread::sleep(Duration::from_millis(20 + rng.below(250)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let _ = reader.join();
        for line in rx.try_iter() {
            if let Some(seq) = line
                .strip_prefix("ack ")
                .and_then(|s| s.parse::<u64>().ok())
            {
                acked_max = acked_max.max(seq);
            }
        }
        // Reopen: every acknowledged record is there and the ledger replays.
        let (log, ledger) = open_ledger(&dir, Policy::default()).expect("reopen after SIGKILL");
        assert!(
            log.head().seq >= acked_max,
            "round {round}: head {} lost acknowledged seq {acked_max}",
            log.head().seq
        );
        assert_eq!(ledger.last_seq(), log.head().seq);
        drop(log);
        let mut out = Vec::new();
        let args = VerifyArgs::new(&dir);
        let ok = audit::verify(&args, &mut out).expect("verify runs");
        assert!(ok, "round {round}: {}", String::from_utf8_lossy(&out));
    }
    assert!(acked_max > 0, "the child never acknowledged anything");
}
