//! File-level damage over a ledger written by the real service (spawned
//! binary, clean SIGTERM stop): for every file of the data directory, bytes
//! flipped at sampled offsets, truncation at sampled lengths, deletion, and
//! two files swapped. After each, `verify --json`:
//! - never panics or hangs (exit 0 or 1 within a deadline);
//! - never changes the directory;
//! - exits 0 only if the head it recomputed is the very head of the
//!   undamaged ledger (same seq, same chain hash: by the chain, every
//!   acknowledged record present and unaltered);
//! - when it exits 1 over a store it could read, the records it calls
//!   intact are: the recomputed hash of its good prefix is the undamaged
//!   ledger's hash at that seq, and the first bad seq it names follows it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::offline::{bin, copy_dir};
use common::*;
use sha2::{Digest, Sha256};

/// Splitmix64: sampled offsets, reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Writes ~190 records through the real server and stops it cleanly.
async fn write_ledger(dir: &Path) {
    let (mut child, url) = spawn_serve(dir);
    let mut c = ledger(&url).await;
    // Price lists carry their catalogue (several KiB each): enough bytes
    // for sled to write leaves as blob files.
    for v in 1..=80u32 {
        c.publish_price_list(price_list(v, 0, &format!("{}.628", v)))
            .await
            .expect("prices");
    }
    for a in 0..12 {
        let id = format!("acct-{a}");
        c.open_account(open(&id)).await.expect("open");
        c.top_up(topup(&id, &format!("KEY-{a:04}-0000"), "1000"))
            .await
            .expect("topup");
        c.change_config(config(&id, &format!("pbx-{a}"), 5 + a))
            .await
            .expect("config");
        for k in 1..=6 {
            c.top_up(topup(&id, &format!("KEY-{a:04}-{k:04}"), "10"))
                .await
                .expect("topup");
        }
    }
    drop(c);
    // SAFETY: plain kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM)
    };
    let status = child.wait().expect("wait");
    assert!(status.success(), "serve did not stop cleanly: {status}");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, String> {
    files(dir)
        .into_iter()
        .map(|p| {
            let h = hex::encode(Sha256::digest(std::fs::read(&p).expect("read")));
            (p, h)
        })
        .collect()
}

/// `verify --json` on `dir`, with a deadline: (exit code, JSON or None, stderr).
fn verify_json(dir: &Path) -> (i32, Option<serde_json::Value>, String) {
    let mut child = bin()
        .args(["verify", "--json", "--data"])
        .arg(dir)
        .env("RUST_LOG", "off")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verify");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("verify hung on {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(stdout.trim()).ok();
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The undamaged ledger: its length and every record's chain hash.
struct Truth {
    records: u64,
    hashes: Vec<String>,
}

impl Truth {
    fn of(dir: &Path) -> Truth {
        let out = bin()
            .arg("export")
            .arg("--data")
            .arg(dir)
            .output()
            .expect("export");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hashes: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                v["hash"].as_str().expect("hash").to_owned()
            })
            .collect();
        Truth {
            records: hashes.len() as u64,
            hashes,
        }
    }

    fn hash_at(&self, seq: u64) -> &str {
        if seq == 0 {
            "0000000000000000000000000000000000000000000000000000000000000000"
        } else {
            &self.hashes[seq as usize - 1]
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    runs: usize,
    passed_whole: usize,
    defect_named: usize,
    unreadable: usize,
}

/// Runs verify on a damaged copy and checks the rules of this file.
fn judge(dir: &Path, truth: &Truth, what: &str, tally: &mut Tally) {
    let before = fingerprint(dir);
    let (code, json, err) = verify_json(dir);
    tally.runs += 1;
    // DAMAGE_SHOW=1 lists every damage and what verify said.
    if std::env::var_os("DAMAGE_SHOW").is_some() {
        let first = json
            .as_ref()
            .map(|v| v["defects"][0]["what"].to_string())
            .unwrap_or_else(|| err.trim().to_owned());
        eprintln!("{what} -> exit {code}: {first}");
    }
    assert!(
        code == 0 || code == 1,
        "{what}: verify exited {code} (panic?): {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(
        fingerprint(dir),
        before,
        "{what}: verify changed the directory"
    );
    let head_of = |v: &serde_json::Value| {
        (
            v["head"]["seq"].as_u64().expect("seq"),
            v["head"]["hash"].as_str().expect("hash").to_owned(),
        )
    };
    if code == 0 {
        let v = json.unwrap_or_else(|| panic!("{what}: exit 0 without JSON"));
        let (seq, hash) = head_of(&v);
        assert!(
            seq == truth.records && hash == truth.hash_at(seq),
            "{what}: verify passed a store that is not the acknowledged ledger: {v}"
        );
        tally.passed_whole += 1;
        return;
    }
    match json {
        Some(v) => {
            assert_eq!(v["ok"], false, "{what}: {v}");
            let (seq, hash) = head_of(&v);
            // What it read as intact really is.
            if seq <= truth.records {
                assert_eq!(hash, truth.hash_at(seq), "{what}: {v}");
            }
            let first = v["defects"][0]["seq"].as_u64().expect("a defect seq");
            let intact = v["intact_through"].as_u64().expect("intact");
            assert!(
                intact <= seq && first >= 1 && first <= truth.records + 1,
                "{what}: {v}"
            );
            tally.defect_named += 1;
        }
        None => {
            // sled could not open the copy at all: an error, never a pass.
            assert!(
                err.contains("error:"),
                "{what}: exit 1 without a message: {err}"
            );
            tally.unreadable += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_level_damage_passes_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pristine = tmp.path().join("pristine");
    write_ledger(&pristine).await;
    let truth = Truth::of(&pristine);
    // The service signs heads and leaves an exact one after a clean stop.
    assert!(
        pristine.join(isc_ledger::store::sth::HEAD_FILE).exists(),
        "the service left no signed head file"
    );
    let (code, json, err) = verify_json(&pristine);
    assert_eq!(code, 0, "{json:?} {err}");
    let names: Vec<PathBuf> = files(&pristine)
        .into_iter()
        .map(|p| p.strip_prefix(&pristine).expect("prefix").to_path_buf())
        .collect();
    let listed: Vec<String> = names.iter().map(|p| p.display().to_string()).collect();
    assert!(listed.iter().any(|n| n == "db"), "{listed:?}");
    assert!(listed.iter().any(|n| n == "conf"), "{listed:?}");
    eprintln!("files of the data directory: {listed:?}");

    let work = tmp.path().join("work");
    let fresh = || {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&pristine, &work);
    };
    let mut rng = Rng(0x15c_1ed9e5);
    let mut tally = Tally::default();
    for name in &names {
        let len = std::fs::metadata(pristine.join(name)).expect("meta").len();
        // Flips: the first and last byte, then sampled offsets (more of
        // them in the larger files).
        let samples = if len > 4096 { 10 } else { 4 };
        let mut offsets = vec![0, len.saturating_sub(1)];
        offsets.extend((0..samples).map(|_| rng.below(len)));
        offsets.sort_unstable();
        offsets.dedup();
        for &off in offsets.iter().filter(|&&o| o < len) {
            fresh();
            let p = work.join(name);
            let mut bytes = std::fs::read(&p).expect("read");
            bytes[off as usize] ^= 1 << rng.below(8);
            std::fs::write(&p, &bytes).expect("write");
            judge(
                &work,
                &truth,
                &format!("{} byte {off} flipped", name.display()),
                &mut tally,
            );
        }
        // Truncations: empty, half, one byte short, sampled lengths.
        let mut lens = vec![0, len / 2, len.saturating_sub(1)];
        lens.extend((0..samples / 2).map(|_| rng.below(len)));
        lens.sort_unstable();
        lens.dedup();
        for &l in lens.iter().filter(|&&l| l < len) {
            fresh();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(work.join(name))
                .expect("open");
            f.set_len(l).expect("truncate");
            drop(f);
            judge(
                &work,
                &truth,
                &format!("{} cut to {l} bytes", name.display()),
                &mut tally,
            );
        }
        fresh();
        std::fs::remove_file(work.join(name)).expect("rm");
        judge(
            &work,
            &truth,
            &format!("{} deleted", name.display()),
            &mut tally,
        );
    }
    // Two files swapped: every pair (the directory has a handful).
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            fresh();
            let (pa, pb) = (work.join(a), work.join(b));
            let (ba, bb) = (
                std::fs::read(&pa).expect("read"),
                std::fs::read(&pb).expect("read"),
            );
            std::fs::write(&pa, &bb).expect("write");
            std::fs::write(&pb, &ba).expect("write");
            judge(
                &work,
                &truth,
                &format!("{} and {} swapped", a.display(), b.display()),
                &mut tally,
            );
        }
    }
    eprintln!("{tally:?}");
    assert!(tally.defect_named > 0 && tally.runs > 50, "{tally:?}");
}
