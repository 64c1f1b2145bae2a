//! Every write command of the CLI prints its receipt through the one
//! printer (`cli::client::print_receipt`): as text `ok: record #N at …`,
//! and with `--json` a receipt with its inclusion proof under the signed
//! head that `check-receipt` accepts offline — the device, PBX and incident
//! commands as the account ones. Real binary, real server.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn cli(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args(args)
        .env("ISC_LEDGER_SERVER", url)
        .env_remove("ISC_LEDGER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run isc-ledger");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_command_prints_a_checkable_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_serve(dir.path());
    let key = dir.path().join("ledger-key");
    let key = key.to_str().unwrap();
    let writes: [&[&str]; 6] = [
        &["account", "open", "acme"],
        &["device", "register", "acme", "mac-1", "Yealink-T54W"],
        &["device", "status", "mac-1", "banned"],
        &["pbx", "register", "acme", "srv-1", "7.1"],
        &["pbx", "upgrade", "srv-1", "7.2"],
        &[
            "incident",
            "report",
            "inc-1",
            "--account",
            "acme",
            "--priority",
            "2",
        ],
    ];
    for (i, args) in writes.iter().enumerate() {
        let seq = i as u64 + 1;
        // Text and JSON in turn (a write cannot be repeated as the other).
        if i % 2 == 0 {
            let text = cli(&url, args);
            assert!(
                text.starts_with(&format!("ok: record #{seq} at ")),
                "{args:?}: {text}"
            );
            continue;
        }
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = cli(&url, &with_json);
        let v: serde_json::Value = serde_json::from_str(&out).expect("a JSON receipt");
        assert_eq!(v["seq"], seq, "{args:?}: {v}");
        assert!(
            v["inclusion"].is_object(),
            "{args:?}: no inclusion proof: {v}"
        );
        let file = dir.path().join(format!("receipt-{seq}.json"));
        std::fs::write(&file, &out).unwrap();
        let checked = cli(
            &url,
            &["check-receipt", file.to_str().unwrap(), "--public-key", key],
        );
        assert!(!checked.is_empty(), "{args:?}");
    }
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().expect("wait").success());
}
