//! Power loss, modelled: the writer (`isc-ledger __append-loop`) runs in a
//! child process under an LD_PRELOAD shim (`tests/support/fsync_shadow.c`)
//! that records, at every fsync/fdatasync, what that call makes durable (a
//! file's content, a directory's entries). The child is SIGKILLed at a
//! random moment and the data directory is rebuilt from those records
//! alone: everything never fsynced is dropped, as a power cut may drop it.
//!
//! Shown: sled's `conf` (which sled never fsyncs) and the settings file
//! survive; every acknowledged record survives and verifies; a `conf` lost
//! anyway is rewritten only when the recorded settings are this build's,
//! and a store whose settings differ is refused with a clear error.
//! Not shown (the model's limits): torn writes inside an fsynced file, a
//! drive that acknowledges a flush it did not do, inode reuse between a
//! deleted and a new file, and anything ext4 commits beyond what POSIX
//! promises (the model is stricter than ext4).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use isc_ledger::cli::audit::{self, VerifyArgs};
use isc_ledger::store::datadir::{write_settings, StoreSettings, SETTINGS_FILE, SLED_CONF};
use isc_ledger::store::ledger::EventLog;
use isc_ledger::store::{LogStore, StoreError, StoreOptions};

/// Builds the shim with the system C compiler (every Rust toolchain on
/// Linux links through one).
fn shim(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fsync_shadow.c");
    let so = dir.join("fsync_shadow.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// What the shim recorded: per inode the last durable copy of its content,
/// per directory its last durable entries.
#[derive(Default)]
struct Durable {
    content: HashMap<u64, PathBuf>,
    listing: HashMap<String, Vec<(u64, String)>>,
    /// Relative paths of files whose content was fsynced at least once.
    synced_inodes: Vec<u64>,
}

fn read_log(shadow: &Path) -> Durable {
    let mut d = Durable::default();
    let text = std::fs::read_to_string(shadow.join("log")).expect("shim log");
    for line in text.lines() {
        let mut parts = line.split(' ');
        match parts.next() {
            Some("F") => {
                let ino: u64 = parts.next().expect("ino").parse().expect("ino");
                let copy = PathBuf::from(parts.next().expect("copy"));
                d.content.insert(ino, copy);
                d.synced_inodes.push(ino);
            }
            Some("D") => {
                let rel = parts.next().expect("dir").to_owned();
                let entries = parts
                    .filter_map(|e| {
                        let (ino, name) = e.split_once(':')?;
                        Some((ino.parse().ok()?, name.to_owned()))
                    })
                    .collect();
                d.listing.insert(rel, entries);
            }
            // A line cut by the kill: nothing durable came of it.
            _ => {}
        }
    }
    d
}

/// The directory as a power cut leaves it: only durable entries, each with
/// its last durable content (empty when its content was never fsynced).
fn rebuild(d: &Durable, rel: &str, out: &Path) {
    std::fs::create_dir_all(out).expect("mkdir");
    let Some(entries) = d.listing.get(rel) else {
        return;
    };
    for (ino, name) in entries {
        let child_rel = if rel == "." {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if d.listing.contains_key(&child_rel) {
            rebuild(d, &child_rel, &out.join(name));
        } else {
            let bytes = d
                .content
                .get(ino)
                .map(|p| std::fs::read(p).expect("copy"))
                .unwrap_or_default();
            std::fs::write(out.join(name), bytes).expect("write");
        }
    }
}

/// Runs the writer under the shim until `acks` acknowledgements (or its
/// end), SIGKILLs it, returns the last acknowledged seq.
fn run_and_cut(so: &Path, data: &Path, shadow: &Path, acks: usize) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args([
            "__append-loop",
            "--batch",
            "40",
            "--snapshot-every",
            "300",
            "--max-records",
            "4000",
            "--data",
        ])
        .arg(data)
        .env("LD_PRELOAD", so)
        .env("SHADOW_WATCH", data)
        .env("SHADOW_DIR", shadow)
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut last = 0;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("ack ") {
            last = n.trim().parse().expect("seq");
            seen += 1;
            if seen >= acks {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    last
}

#[test]
fn conf_and_every_acknowledged_record_survive_a_modelled_power_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let so = shim(tmp.path());
    // Canonical: the shim compares the paths /proc reports.
    let base = tmp.path().canonicalize().expect("canonical");
    for (round, acks) in [3usize, 17, 40].into_iter().enumerate() {
        let data = base.join(format!("data-{round}"));
        let shadow = base.join(format!("shadow-{round}"));
        // The data directory exists before the writer (its entry in the
        // parent is not the store's to make durable).
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::create_dir_all(&shadow).expect("mkdir");
        let acked = run_and_cut(&so, &data, &shadow, acks);
        assert!(acked > 0, "round {round}: nothing acknowledged");
        let durable = read_log(&shadow);
        let cut = base.join(format!("after-cut-{round}"));
        rebuild(&durable, ".", &cut);

        // conf survived with the very bytes sled wrote, and so did the
        // store's settings file.
        let conf = std::fs::read(cut.join(SLED_CONF)).expect("conf survives");
        assert!(conf.len() > 8, "round {round}: conf empty after the cut");
        assert_eq!(conf, std::fs::read(data.join(SLED_CONF)).expect("conf"));
        assert!(cut.join(SETTINGS_FILE).exists(), "round {round}");

        // Every acknowledged record is there and the store verifies.
        {
            let log = EventLog::open(cut.as_path(), StoreOptions::default())
                .unwrap_or_else(|e| panic!("round {round}: reopen after the cut: {e}"));
            assert!(
                log.head().seq >= acked,
                "round {round}: acknowledged {acked}, found {}",
                log.head().seq
            );
        }
        let mut out = Vec::new();
        let ok = audit::verify(&VerifyArgs::new(&cut), &mut out).expect("verify runs");
        assert!(ok, "round {round}: {}", String::from_utf8_lossy(&out));
    }

    // A conf lost anyway (as it was before it was fsynced): rewritten with
    // the recorded settings, which are this build's…
    let store = base.join("after-cut-2");
    std::fs::write(store.join(SLED_CONF), b"").expect("empty conf");
    drop(EventLog::open(store.as_path(), StoreOptions::default()).expect("reopen"));
    assert!(std::fs::read(store.join(SLED_CONF)).expect("conf").len() > 8);
    // …but a store recorded with other settings is refused, conf lost or not.
    let mut other = StoreSettings::current();
    other.segment_size = 8 << 20;
    write_settings(&store, &other).expect("settings");
    std::fs::write(store.join(SLED_CONF), b"").expect("empty conf");
    let refused = |what: &str| match EventLog::open(store.as_path(), StoreOptions::default()) {
        Err(StoreError::Settings(m)) => {
            assert!(
                m.contains("segment_size 8388608") && m.contains("refusing"),
                "{what}: {m}"
            );
        }
        Err(e) => panic!("{what}: another error: {e}"),
        Ok(_) => panic!("{what}: opened a store whose settings differ"),
    };
    refused("conf lost, settings differ");
    let before = std::fs::read(store.join(SLED_CONF)).expect("conf");
    assert!(before.is_empty(), "the refused open rewrote conf");
    // sled's conf differing from the recorded settings: refused too.
    write_settings(&store, &StoreSettings::current()).expect("settings");
    let mut conf = b"segment_size: 8388608\nuse_compression: false\nversion: 0.34\n".to_vec();
    conf.extend_from_slice(&[0; 4]);
    std::fs::write(store.join(SLED_CONF), conf).expect("conf");
    match EventLog::open(store.as_path(), StoreOptions::default()) {
        Err(StoreError::Settings(m)) => {
            assert!(m.contains("sled's conf says segment_size 8388608"), "{m}")
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("opened a store whose conf differs"),
    }
}
