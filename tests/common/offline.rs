//! Helpers of the offline tests (stores written and damaged on disk, the
//! binary run on them): the binary, its run, a directory copy, and sled's
//! log tree of a closed store.

use std::path::Path;
use std::process::Command;

use isc_ledger::store::sled_log::SEGMENT_SIZE_BYTES;

/// The `isc-ledger` binary of this build.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
}

/// Runs the binary; returns (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().expect("run isc-ledger");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies the tree `from` to `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// Opens the closed sled store in `dir`, hands `f` its log tree, flushes.
pub fn with_log_tree(dir: &Path, f: impl FnOnce(&sled::Tree)) {
    // sled's background flusher may hold the lock of the store just closed
    // for a moment: retry briefly.
    let mut tries = 0;
    let db = loop {
        match sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_SIZE_BYTES)
            .open()
        {
            Ok(db) => break db,
            Err(e) if tries < 500 => {
                tries += 1;
                eprintln!("retrying sled open: {e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("sled: {e}"),
        }
    };
    let tree = db.open_tree("log").expect("tree");
    f(&tree);
    db.flush().expect("flush");
}
