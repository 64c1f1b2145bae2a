//! The proof tools (spec §13): `key new|show`, `audit --server`, `prove`,
//! `check-receipt`.
//!
//! Receipt JSON (what `--json` client commands print, what `prove` prints,
//! what `check-receipt` reads):
//!
//! ```json
//! {"seq": 12, "at": 1767225600, "balance": "10",
//!  "tree_head": {"tree_size": 40, "root_hash": "…", "at": 1767225700,
//!                "signature": "…", "public_key": "…"},
//!  "inclusion": {"seq": 12, "tree_size": 40, "leaf_hash": "…", "path": ["…", …]}}
//! ```
//!
//! `tree_head` is the signed head's JSON form (`store::sth`); `inclusion`
//! the RFC 9162 audit path of leaf `seq - 1` in that tree. An optional
//! `record` (`{"prev_hash","hash","payload","version"}` in hex, as `ReadLog`
//! gives them) lets `check-receipt` recompute the leaf from the record's
//! bytes too.
//!
//! Audit state (`audit --state FILE`): the signed head's JSON form (so
//! `verify --sth FILE` reads it) plus `chain_hash` (hash of the head's last
//! record), `frontier` (the tree's compact range, `store::merkle::Frontier`)
//! and counters; beside it `FILE.fold`, the replayed ledger (bincode, bound
//! to the state's size and chain hash and to the state layout), so a later
//! run folds only the new records. A missing or stale fold means one full
//! replay, never a skipped one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::client::ClientOpts;
use crate::api::log_wire::LogEntry;
use crate::api::pb;
use crate::domain::{Event, Ledger, Policy};
use crate::store::codec::{self, record_hash};
use crate::store::merkle::{leaf_hash, verify_consistency, verify_inclusion, Frontier};
use crate::store::sled_log::decode_event_serde;
use crate::store::sth::{
    parse_hex, parse_public_key, read_small_file, write_file_atomic, write_file_atomic_with,
    LedgerKey, SignedTreeHead, DEFAULT_KEY_FILE,
};
use crate::store::{Hash, SnapshotState, DEFAULT_DATA_DIR, GENESIS_HASH};

/// `key new|show`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    cmd: KeyCmd,
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Create a new Ed25519 ledger signing key (file mode 0600; never
    /// overwrites) and print its public key.
    New {
        /// The key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key of a key file (default: the data directory's).
    Show {
        /// A key file.
        #[arg(long, value_name = "FILE", conflicts_with = "data")]
        key: Option<PathBuf>,
        /// A data directory whose `ledger-key` to read.
        #[arg(long, value_name = "DIR", env = "ISC_LEDGER_DATA")]
        data: Option<PathBuf>,
    },
}

/// `key new|show`.
pub fn key(opts: &ClientOpts, a: KeyArgs) -> anyhow::Result<()> {
    let (key, file) = match a.cmd {
        KeyCmd::New { out } => {
            let key = LedgerKey::generate()?;
            key.save_new(&out)
                .with_context(|| format!("cannot create the key file {}", out.display()))?;
            (key, out)
        }
        KeyCmd::Show { key, data } => {
            let file = key.unwrap_or_else(|| {
                data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
                    .join(DEFAULT_KEY_FILE)
            });
            (LedgerKey::load(&file)?, file)
        }
    };
    if opts.json {
        println!(
            "{}",
            json!({"public_key": key.public_key_hex(), "file": file.display().to_string()})
        );
    } else {
        println!("{}", key.public_key_hex());
    }
    Ok(())
}

fn hexs(v: &[u8]) -> String {
    hex::encode(v)
}

fn hash_of(what: &str, b: &[u8]) -> anyhow::Result<Hash> {
    Hash::try_from(b).map_err(|_| anyhow::anyhow!("{what}: expected 32 bytes, got {}", b.len()))
}

fn rpc_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// A signed head from the wire.
pub fn tree_head_from_pb(h: &pb::SignedTreeHead) -> anyhow::Result<SignedTreeHead> {
    Ok(SignedTreeHead {
        tree_size: h.tree_size,
        root_hash: hash_of("root_hash", &h.root_hash)?,
        at: h.at,
        signature: <[u8; 64]>::try_from(h.signature.as_slice())
            .map_err(|_| anyhow::anyhow!("signature: expected 64 bytes"))?,
        public_key: hash_of("public_key", &h.public_key)?,
    })
}

/// The signed head a receipt carries (`None` when the server keeps no proofs).
pub fn receipt_head(r: &pb::Receipt) -> Option<SignedTreeHead> {
    if r.root_hash.is_empty() {
        return None;
    }
    tree_head_from_pb(&pb::SignedTreeHead {
        tree_size: r.tree_size,
        root_hash: r.root_hash.clone(),
        at: r.tree_at,
        signature: r.tree_signature.clone(),
        public_key: r.public_key.clone(),
    })
    .ok()
}

/// JSON form of an inclusion proof.
pub fn inclusion_json(p: &pb::InclusionProof) -> Value {
    json!({
        "seq": p.seq,
        "tree_size": p.tree_size,
        "leaf_hash": hexs(&p.leaf_hash),
        "path": p.path.iter().map(|h| hexs(h)).collect::<Vec<_>>(),
    })
}

/// Adds the inclusion proof of a receipt's record under its own head to the
/// receipt's JSON (one more call; left out, with a note on stderr, when the
/// caller's role may not read proofs).
pub async fn add_inclusion(client: &mut super::client::Client, r: &pb::Receipt, v: &mut Value) {
    if r.tree_size == 0 || r.seq == 0 {
        return;
    }
    match client
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            seq: r.seq,
            tree_size: r.tree_size,
        })
        .await
    {
        Ok(p) => v["inclusion"] = inclusion_json(p.get_ref()),
        Err(e) => eprintln!(
            "note: no inclusion proof in this receipt ({:?}: {})",
            e.code(),
            e.message()
        ),
    }
}

/// `prove --seq N [--tree-size S]`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The record.
    #[arg(long)]
    pub seq: u64,
    /// The tree size (default: the newest signed head).
    #[arg(long, default_value_t = 0)]
    pub tree_size: u64,
}

/// `prove`: the inclusion proof of a record under a signed head, as the
/// receipt JSON `check-receipt` reads.
pub async fn prove(opts: &ClientOpts, a: ProveArgs) -> anyhow::Result<()> {
    let mut c = opts.ledger().await?;
    let head = c
        .get_tree_head(pb::GetTreeHeadRequest {})
        .await
        .map_err(rpc_err)?
        .into_inner();
    let head = tree_head_from_pb(&head)?;
    let size = if a.tree_size == 0 {
        head.tree_size
    } else {
        a.tree_size
    };
    if size != head.tree_size {
        anyhow::bail!(
            "only the newest signed head (size {}) can be fetched; prove under it or keep the receipt's head",
            head.tree_size
        );
    }
    let p = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            seq: a.seq,
            tree_size: size,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    let out = json!({
        "seq": a.seq,
        "tree_head": head.to_json_value(),
        "inclusion": inclusion_json(&p),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `check-receipt --public-key KEY FILE`.
#[derive(Debug, Args)]
pub struct CheckReceiptArgs {
    /// The ledger's public key: 64 hex digits, or a file holding them (or a
    /// key file).
    #[arg(long, value_name = "KEY")]
    pub public_key: String,
    /// The receipt JSON (`-` for stdin).
    pub file: PathBuf,
}

fn field<'a>(v: &'a Value, k: &str) -> Result<&'a Value, String> {
    v.get(k).ok_or_else(|| format!("the receipt has no `{k}`"))
}

fn u64_field(v: &Value, k: &str) -> Result<u64, String> {
    field(v, k)?
        .as_u64()
        .ok_or_else(|| format!("`{k}` is not an unsigned integer"))
}

fn hex_field(v: &Value, k: &str) -> Result<Hash, String> {
    let s = field(v, k)?
        .as_str()
        .ok_or_else(|| format!("`{k}` is not a hex string"))?;
    parse_hex::<32>(k, s).map_err(|e| e.to_string())
}

/// What `check-receipt` concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptCheck {
    /// The record.
    pub seq: u64,
    /// The head it is included under.
    pub head: SignedTreeHead,
    /// Whether the record's own bytes were checked too.
    pub record_checked: bool,
}

/// Checks a receipt JSON offline: the head's signature by `public_key`,
/// then the record's inclusion under it. `Err` names what is wrong.
pub fn check_receipt_json(v: &Value, public_key: &[u8; 32]) -> Result<ReceiptCheck, String> {
    let head = SignedTreeHead::from_json_value(field(v, "tree_head")?)
        .map_err(|e| format!("tree_head: {e}"))?;
    head.verify_with(public_key).map_err(|e| e.to_string())?;
    let inc = field(v, "inclusion")
        .map_err(|e| format!("{e} (print receipts with --json under a role that may read proofs, or run `isc-ledger prove`)"))?;
    let seq = u64_field(inc, "seq")?;
    if let Some(s) = v.get("seq") {
        if s.as_u64() != Some(seq) {
            return Err(format!(
                "the receipt is for seq {s} but the proof for seq {seq}"
            ));
        }
    }
    let size = u64_field(inc, "tree_size")?;
    if size != head.tree_size {
        return Err(format!(
            "the proof is for a tree of size {size}, the signed head has size {}",
            head.tree_size
        ));
    }
    if seq == 0 || seq > size {
        return Err(format!(
            "seq {seq} is not in the signed tree of size {size}"
        ));
    }
    let leaf = hex_field(inc, "leaf_hash")?;
    let path = field(inc, "path")?
        .as_array()
        .ok_or("`path` is not a list")?
        .iter()
        .map(|h| {
            h.as_str()
                .ok_or_else(|| "`path` holds a non-string".to_string())
                .and_then(|s| parse_hex::<32>("path", s).map_err(|e| e.to_string()))
        })
        .collect::<Result<Vec<Hash>, String>>()?;
    let mut record_checked = false;
    if let Some(rec) = v.get("record") {
        let prev = hex_field(rec, "prev_hash")?;
        let payload = hex::decode(
            field(rec, "payload")?
                .as_str()
                .ok_or("`record.payload` is not hex")?,
        )
        .map_err(|e| format!("record.payload: {e}"))?;
        let at = field(v, "at")?.as_i64().ok_or("`at` is not an integer")?;
        let chain = record_hash(&prev, seq, at, &payload);
        if leaf_hash(&chain) != leaf {
            return Err(format!(
                "record {seq}: its bytes do not hash to the proven leaf (altered record or wrong `at`)"
            ));
        }
        record_checked = true;
    }
    verify_inclusion(seq - 1, size, &leaf, &path, &head.root_hash).map_err(|e| {
        format!("record {seq} is not included under the signed head of size {size}: {e}")
    })?;
    Ok(ReceiptCheck {
        seq,
        head,
        record_checked,
    })
}

/// `check-receipt`; `Ok(false)` = the receipt does not check (exit 1).
pub fn check_receipt(opts: &ClientOpts, a: &CheckReceiptArgs) -> anyhow::Result<bool> {
    let key = parse_public_key(&a.public_key).context("--public-key")?;
    let text = if a.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 1 << 20), &mut s)?;
        s
    } else {
        read_small_file(&a.file)?
    };
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", a.file.display()))?;
    match check_receipt_json(&v, &key) {
        Ok(c) => {
            if opts.json {
                println!(
                    "{}",
                    json!({"ok": true, "seq": c.seq, "tree_size": c.head.tree_size,
                           "root_hash": hexs(&c.head.root_hash), "record_checked": c.record_checked})
                );
            } else {
                println!(
                    "ok: record #{} is included under the signed head of size {} (root {}){}",
                    c.seq,
                    c.head.tree_size,
                    hexs(&c.head.root_hash),
                    if c.record_checked {
                        ", record bytes checked"
                    } else {
                        ""
                    }
                );
            }
            Ok(true)
        }
        Err(why) => {
            if opts.json {
                println!("{}", json!({"ok": false, "error": why}));
            } else {
                println!("FAILED: {why}");
            }
            Ok(false)
        }
    }
}

/// `audit --server URL --state FILE`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The auditor's state file (created on the first run).
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Require heads signed by this key (hex, or a file); default: the key
    /// of the state file, or on the first run the server's (printed).
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
}

/// What the auditor keeps between runs.
#[derive(Debug, Clone)]
struct AuditState {
    head: SignedTreeHead,
    chain_hash: Hash,
    frontier: Frontier,
}

impl AuditState {
    fn to_json(&self, records_checked: u64) -> Value {
        let mut v = self.head.to_json_value();
        v["chain_hash"] = json!(hexs(&self.chain_hash));
        v["frontier"] = json!(self
            .frontier
            .nodes()
            .iter()
            .map(|h| hexs(h))
            .collect::<Vec<_>>());
        v["records_checked_last_run"] = json!(records_checked);
        v
    }

    fn from_json(v: &Value) -> anyhow::Result<AuditState> {
        let head = SignedTreeHead::from_json_value(v)?;
        let chain_hash = hex_field(v, "chain_hash").map_err(anyhow::Error::msg)?;
        let nodes = v
            .get("frontier")
            .and_then(Value::as_array)
            .context("no `frontier` (not an audit state file)")?
            .iter()
            .map(|h| {
                h.as_str()
                    .context("frontier holds a non-string")
                    .and_then(|s| Ok(parse_hex::<32>("frontier", s)?))
            })
            .collect::<anyhow::Result<Vec<Hash>>>()?;
        let frontier = Frontier::from_parts(head.tree_size, nodes)
            .context("`frontier` does not fit `tree_size`")?;
        if frontier.root() != head.root_hash {
            anyhow::bail!("`frontier` does not give the saved root (state file damaged)");
        }
        Ok(AuditState {
            head,
            chain_hash,
            frontier,
        })
    }
}

const FOLD_MAGIC: &[u8; 22] = b"isc-ledger-audit-fold\0";

fn fold_path(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".fold");
    PathBuf::from(p)
}

fn save_fold(path: &Path, st: &AuditState, ledger: &Ledger) -> anyhow::Result<()> {
    // Encoded straight into the file (a big ledger's fold is tens of MB).
    write_file_atomic_with(path, true, |out| {
        out.write_all(FOLD_MAGIC)?;
        out.write_all(&Ledger::schema().to_be_bytes())?;
        out.write_all(&st.head.tree_size.to_be_bytes())?;
        out.write_all(&st.chain_hash)?;
        bincode::serde::encode_into_std_write(ledger, &mut { out }, bincode::config::standard())
            .map_err(|e| {
                std::io::Error::other(format!("cannot encode the replayed ledger: {e}"))
            })?;
        Ok(())
    })?;
    Ok(())
}

/// The saved fold, when it is the fold of exactly the saved state.
fn load_fold(path: &Path, st: &AuditState) -> Option<Ledger> {
    let b = std::fs::read(path).ok()?;
    let rest = b.strip_prefix(FOLD_MAGIC.as_slice())?;
    let (schema, rest) = rest.split_at_checked(8)?;
    let (size, rest) = rest.split_at_checked(8)?;
    let (hash, rest) = rest.split_at_checked(32)?;
    if schema != Ledger::schema().to_be_bytes()
        || size != st.head.tree_size.to_be_bytes()
        || hash != st.chain_hash
    {
        return None;
    }
    let (ledger, used) =
        bincode::serde::decode_from_slice::<Ledger, _>(rest, bincode::config::standard()).ok()?;
    (used == rest.len() && ledger.last_seq() == st.head.tree_size).then_some(ledger)
}

/// What one audit run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The newest signed head, now saved.
    pub head: SignedTreeHead,
    /// Size of the head the run started from (0 on a first run).
    pub from_size: u64,
    /// Records streamed and checked in this run.
    pub records_checked: u64,
    /// Whether the fold continued from the saved one (else a full replay).
    pub incremental_fold: bool,
}

/// Either a finding (the ledger fails the audit) or a tool error.
#[derive(Debug)]
pub enum AuditOutcome {
    /// The audit passed.
    Ok(AuditReport),
    /// The ledger fails: what is wrong, for a person.
    Failed(String),
}

/// Records the auditor asks for per `ReadLog` message.
const AUDIT_BATCH: u32 = 1024;
/// Messages in flight between the receiving task, the checker and the fold.
const AUDIT_AHEAD: usize = 8;

/// The audit's first stage over the streamed records: seqs, versions, the
/// hash chain (re-hashing each record's bytes) and the Merkle frontier.
struct Checker {
    /// The next seq expected.
    next: u64,
    /// The last seq to check (the signed head's size).
    end: u64,
    /// Size of the saved head; records up to it were checked before and
    /// are re-checked only when their fold is replayed again.
    from_size: u64,
    /// The chain hash at the last record checked past `from_size`.
    chain: Hash,
    /// The chain re-computed over records `..= from_size`.
    old_chain: Hash,
    frontier: Frontier,
    last_at: i64,
    checked: u64,
    bar: ProgressBar,
}

impl Checker {
    /// Checks one record; `Err` says what is wrong with it, naming its seq.
    fn check(&mut self, r: &LogEntry<'_>) -> Result<(), String> {
        let next = self.next;
        if r.seq != next {
            return Err(format!(
                "record {next}: the stream sent seq {} instead",
                r.seq
            ));
        }
        if r.version != u32::from(codec::RECORD_VERSION_1) {
            return Err(format!(
                "record {next}: unknown record version {}",
                r.version
            ));
        }
        let (Ok(prev), Ok(hash)) = (Hash::try_from(r.prev_hash), Hash::try_from(r.hash)) else {
            return Err(format!("record {next}: hashes are not 32 bytes"));
        };
        let running = if next <= self.from_size {
            &mut self.old_chain
        } else {
            &mut self.chain
        };
        if prev != *running {
            return Err(format!(
                "record {next}: prev_hash does not match the hash of the record before (chain broken)"
            ));
        }
        if record_hash(&prev, next, r.at, r.payload) != hash {
            return Err(format!(
                "record {next}: its hash does not match its bytes (altered)"
            ));
        }
        *running = hash;
        if next > self.from_size {
            self.frontier.push(&hash);
        } else if next == self.from_size && hash != self.chain {
            return Err(format!(
                "record {next}: differs from the record the last audit saw"
            ));
        }
        self.last_at = r.at;
        self.checked += 1;
        self.next += 1;
        if self.checked.is_multiple_of(65_536) {
            self.bar.set_position(self.checked);
        }
        Ok(())
    }

    /// Checks a message's records up to `end` (any past it are ignored)
    /// and decodes their events into `events` (serde, not the service's
    /// fast path). On a defect `events` holds the records before it: they
    /// still go to the fold, whose own finding would be the earlier one.
    fn check_message(
        &mut self,
        m: &pb::LogRecord,
        events: &mut Vec<(u64, Event)>,
    ) -> Result<(), String> {
        for r in m.records() {
            if self.next > self.end {
                break;
            }
            let r = r.map_err(|e| format!("record {}: {e}", self.next))?;
            self.check(&r)?;
            let raw = codec::RawRecord {
                seq: r.seq,
                at: r.at,
                version: codec::RECORD_VERSION_1,
                event: r.payload,
            };
            match decode_event_serde::<Event>(&raw) {
                Ok(ev) if ev.at == r.at => events.push((r.seq, ev)),
                Ok(ev) => {
                    return Err(format!(
                        "record {}: the record's at {} is not its event's at {}",
                        r.seq, r.at, ev.at
                    ))
                }
                Err(e) => return Err(format!("record {}: {e}", r.seq)),
            }
        }
        Ok(())
    }
}

/// Folds checked, decoded records, a batch at a time (the fold prefetches
/// the state of the events ahead); `Err` names the record refused.
fn fold_batch(ledger: &mut Ledger, events: &[(u64, Event)]) -> Result<(), String> {
    ledger
        .apply_quiet_all(events.iter().map(|(seq, ev)| (*seq, ev)))
        .map_err(|e| {
            format!(
                "record {}: the replay refuses it: {}",
                ledger.last_seq() + 1,
                e.0
            )
        })
}

/// Streams the records into the checker and the fold, pipelined: this
/// task receives messages (their bytes, read in place later), a blocking
/// thread checks and decodes their records, another folds them (decoded
/// batches go back to the checker to be refilled). Returns the checker and
/// the fold as they ended, and the first finding in log order (the fold
/// only ever sees checked records, the checker only received ones).
async fn check_stream(
    mut stream: impl futures::Stream<Item = Result<pb::LogRecord, tonic::Status>> + Unpin,
    mut checker: Checker,
    mut ledger: Ledger,
) -> anyhow::Result<(Checker, Ledger, Option<String>)> {
    type Batch = Vec<(u64, Event)>;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<pb::LogRecord>(AUDIT_AHEAD);
    let (fold_tx, fold_rx) = std::sync::mpsc::sync_channel::<Batch>(AUDIT_AHEAD);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Batch>();
    let fold = tokio::task::spawn_blocking(move || {
        for mut events in fold_rx {
            if let Err(e) = fold_batch(&mut ledger, &events) {
                return (ledger, Some(e));
            }
            events.clear();
            let _ = empty_tx.send(events);
        }
        (ledger, None)
    });
    // The checker stops at the signed head's size (dropping `rx` ends the
    // stream too, whatever the server sends after it).
    let check = tokio::task::spawn_blocking(move || {
        while checker.next <= checker.end {
            let Some(m) = rx.blocking_recv() else { break };
            let mut events = empty_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(AUDIT_BATCH as usize));
            let found = checker.check_message(&m, &mut events);
            drop(m);
            if !events.is_empty() && fold_tx.send(events).is_err() {
                break; // the fold stopped at a finding
            }
            if let Err(e) = found {
                return (checker, Some(e));
            }
        }
        (checker, None)
    });
    let mut lost: Option<Result<(), tonic::Status>> = None;
    loop {
        match futures::StreamExt::next(&mut stream).await {
            Some(Ok(m)) => {
                if tx.send(m).await.is_err() {
                    break; // the checker is done, or stopped at a finding
                }
            }
            None => {
                lost = Some(Ok(()));
                break;
            }
            Some(Err(e)) => {
                lost = Some(Err(e));
                break;
            }
        }
    }
    drop(tx);
    drop(stream);
    let (checker, bad_record) = check.await.context("the audit's check thread failed")?;
    let (ledger, refused) = fold.await.context("the audit's fold thread failed")?;
    // The stream ending (or failing) matters only before the head's size.
    let (received, end) = (checker.next - 1, checker.end);
    let lost = lost.filter(|_| received < end).map(|why| match why {
        Ok(()) => format!(
            "the server's log stream ended at seq {received} but its signed head has size {end}"
        ),
        Err(e) => format!(
            "reading the log at seq {}: {:?}: {}",
            received + 1,
            e.code(),
            e.message()
        ),
    });
    let failure = refused.or(bad_record).or(lost);
    Ok((checker, ledger, failure))
}

/// Runs one audit against the server; saves the state only when it passes.
pub async fn run_audit(opts: &ClientOpts, a: &AuditArgs) -> anyhow::Result<AuditOutcome> {
    macro_rules! fail {
        ($($t:tt)*) => { return Ok(AuditOutcome::Failed(format!($($t)*))) };
    }
    let saved = if a.state.exists() {
        let text = read_small_file(&a.state)?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", a.state.display()))?;
        Some(
            AuditState::from_json(&v)
                .with_context(|| format!("{} is not a usable audit state", a.state.display()))?,
        )
    } else {
        None
    };
    let want_key = match (&a.public_key, &saved) {
        (Some(k), _) => Some(parse_public_key(k).context("--public-key")?),
        (None, Some(s)) => Some(s.head.public_key),
        (None, None) => None,
    };
    if let Some(s) = &saved {
        if let Err(e) = s.head.verify_with(&want_key.unwrap_or(s.head.public_key)) {
            fail!(
                "the saved head in {} does not verify: {e}",
                a.state.display()
            );
        }
    }
    let mut c = opts.ledger_bulk().await?;
    let head = c
        .get_tree_head(pb::GetTreeHeadRequest {})
        .await
        .map_err(rpc_err)?
        .into_inner();
    let head = tree_head_from_pb(&head)?;
    let key = want_key.unwrap_or(head.public_key);
    if let Err(e) = head.verify_with(&key) {
        fail!("the server's newest tree head does not verify: {e}");
    }
    // The log only grew: a consistency proof from the saved head.
    if let Some(s) = &saved {
        if head.tree_size < s.head.tree_size {
            fail!(
                "the log shrank: the server's signed head has size {}, the saved one {} (records {}..{} are gone)",
                head.tree_size,
                s.head.tree_size,
                head.tree_size + 1,
                s.head.tree_size
            );
        }
        if s.head.tree_size > 0 {
            let p = c
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    first_size: s.head.tree_size,
                    second_size: head.tree_size,
                })
                .await
                .map_err(rpc_err)?
                .into_inner();
            let path = p
                .path
                .iter()
                .map(|h| hash_of("consistency path", h))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if let Err(e) = verify_consistency(
                s.head.tree_size,
                head.tree_size,
                &s.head.root_hash,
                &head.root_hash,
                &path,
            ) {
                fail!(
                    "the log was rewritten: the head of size {} is not an extension of the saved head of size {} ({e})",
                    head.tree_size,
                    s.head.tree_size
                );
            }
        } else if head.tree_size == 0 && head.root_hash != s.head.root_hash {
            fail!("the empty tree's root changed");
        }
    }
    // Continue the chain, the tree and the fold from the saved state, or
    // start from nothing.
    let (chain, frontier, from_size) = match &saved {
        Some(s) => (s.chain_hash, s.frontier.clone(), s.head.tree_size),
        None => (GENESIS_HASH, Frontier::new(), 0),
    };
    let fold_file = fold_path(&a.state);
    let saved_fold = saved.as_ref().and_then(|s| load_fold(&fold_file, s));
    let incremental_fold = saved_fold.is_some();
    let ledger = saved_fold.unwrap_or_else(|| Ledger::new(Policy::default()));
    // Without the fold of the saved records, replay them (their hashes are
    // checked again, against the saved chain hash).
    let replay_from = ledger.last_seq() + 1;
    let bar = super::audit::progress(head.tree_size.saturating_sub(replay_from - 1), "audit");
    let stream = c
        .read_log(pb::ReadLogRequest {
            from_seq: replay_from,
            to_seq: head.tree_size,
            max_batch: AUDIT_BATCH,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    let checker = Checker {
        next: replay_from,
        end: head.tree_size,
        from_size,
        chain,
        old_chain: GENESIS_HASH,
        frontier,
        last_at: 0,
        checked: 0,
        bar: bar.clone(),
    };
    let (checker, ledger, failure) = check_stream(stream, checker, ledger).await?;
    if let Some(why) = failure {
        return Ok(AuditOutcome::Failed(why));
    }
    bar.finish_and_clear();
    let Checker {
        chain,
        frontier,
        last_at,
        checked,
        ..
    } = checker;
    if frontier.size() != head.tree_size || frontier.root() != head.root_hash {
        fail!(
            "the Merkle root of records 1..{} is {}, the signed head says {}",
            head.tree_size,
            hexs(&frontier.root()),
            hexs(&head.root_hash)
        );
    }
    if head.tree_size > 0 && head.tree_size > from_size && last_at != head.at {
        fail!(
            "the signed head's at {} is not the at {} of its last record",
            head.at,
            last_at
        );
    }
    let state = AuditState {
        head,
        chain_hash: chain,
        frontier,
    };
    save_fold(&fold_file, &state, &ledger)?;
    let mut text = serde_json::to_string_pretty(&state.to_json(checked))?;
    text.push('\n');
    write_file_atomic(&a.state, text.as_bytes(), true)?;
    // A big fold takes a while to free: nothing waits for it (a process
    // that ends now never frees it; without a thread it is freed here).
    let _ = std::thread::Builder::new().spawn(move || drop(ledger));
    Ok(AuditOutcome::Ok(AuditReport {
        head,
        from_size,
        records_checked: checked,
        incremental_fold,
    }))
}

/// `audit --server`; `Ok(false)` = the ledger fails the audit (exit 1).
pub async fn audit(opts: &ClientOpts, a: &AuditArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    match run_audit(opts, a).await? {
        AuditOutcome::Ok(r) => {
            if opts.json {
                writeln!(
                    out,
                    "{}",
                    json!({"ok": true, "tree_size": r.head.tree_size, "from_size": r.from_size,
                           "records_checked": r.records_checked, "root_hash": hexs(&r.head.root_hash),
                           "at": r.head.at, "public_key": hexs(&r.head.public_key),
                           "incremental": r.incremental_fold})
                )?;
            } else {
                writeln!(
                    out,
                    "ok: {} records under the signed head of size {} (root {}, key {}); {} checked this run{}",
                    r.head.tree_size,
                    r.head.tree_size,
                    hexs(&r.head.root_hash),
                    hexs(&r.head.public_key),
                    r.records_checked,
                    if r.from_size > 0 {
                        format!(", the log only grew since size {}", r.from_size)
                    } else {
                        String::new()
                    }
                )?;
            }
            Ok(true)
        }
        AuditOutcome::Failed(why) => {
            if opts.json {
                writeln!(out, "{}", json!({"ok": false, "error": why}))?;
            } else {
                writeln!(out, "audit FAILED: {why}")?;
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::workload::Workload;

    /// A record as `ReadLog` sends it.
    #[derive(Clone)]
    struct Rec {
        seq: u64,
        at: i64,
        prev_hash: Vec<u8>,
        hash: Vec<u8>,
        payload: Vec<u8>,
    }

    /// `n` generated records as `ReadLog` gives them (seq 1..=n), and the
    /// events they hold.
    fn stream_of(n: usize) -> (Vec<Rec>, Vec<Event>) {
        let mut reference = Ledger::new(Policy::default());
        let events = Workload::history(3, n, &mut reference);
        let mut prev = GENESIS_HASH;
        let recs = events
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                let payload =
                    bincode::serde::encode_to_vec(ev, bincode::config::standard()).unwrap();
                let seq = i as u64 + 1;
                let hash = record_hash(&prev, seq, ev.at, &payload);
                let r = Rec {
                    seq,
                    at: ev.at,
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                    payload,
                };
                prev = hash;
                r
            })
            .collect();
        (recs, events)
    }

    /// One message holding all of `recs`.
    fn batch(recs: &[Rec]) -> pb::LogRecord {
        let entries: Vec<LogEntry<'_>> = recs
            .iter()
            .map(|r| LogEntry {
                seq: r.seq,
                at: r.at,
                version: 1,
                prev_hash: &r.prev_hash,
                hash: &r.hash,
                payload: &r.payload,
            })
            .collect();
        pb::LogRecord::from_entries(&entries)
    }

    fn checker(end: u64) -> Checker {
        Checker {
            next: 1,
            end,
            from_size: 0,
            chain: GENESIS_HASH,
            old_chain: GENESIS_HASH,
            frontier: Frontier::new(),
            last_at: 0,
            checked: 0,
            bar: ProgressBar::hidden(),
        }
    }

    #[test]
    fn batches_and_single_records_check_alike() {
        let (recs, _) = stream_of(300);
        let mut whole = checker(300);
        let mut events = vec![];
        for part in recs.chunks(7) {
            whole.check_message(&batch(part), &mut events).unwrap();
        }
        let mut single = checker(300);
        let mut events1 = vec![];
        for r in &recs {
            single
                .check_message(&batch(std::slice::from_ref(r)), &mut events1)
                .unwrap();
        }
        assert_eq!(whole.frontier.root(), single.frontier.root());
        assert_eq!(whole.chain, single.chain);
        assert_eq!(events.len(), 300);
        assert_eq!(events, events1);
        let mut folded = Ledger::new(Policy::default());
        fold_batch(&mut folded, &events).unwrap();
        assert_eq!(folded.last_seq(), 300);
    }

    #[test]
    fn a_tampered_record_in_the_middle_of_a_batch_is_named_by_its_seq() {
        let (recs, _) = stream_of(40);
        // Altered bytes (hash kept): record 23, the 3rd of the batch 21..=30.
        let mut bad = recs.clone();
        bad[22].payload[2] ^= 1;
        let mut ck = checker(40);
        let mut events = vec![];
        ck.check_message(&batch(&bad[..20]), &mut events).unwrap();
        let e = ck
            .check_message(&batch(&bad[20..30]), &mut events)
            .unwrap_err();
        assert_eq!(e, "record 23: its hash does not match its bytes (altered)");
        // The records before it still reach the fold.
        assert_eq!(events.last().map(|(s, _)| *s), Some(22));

        // A record left out of a batch: the one after it is named.
        let mut gap = recs[20..30].to_vec();
        gap.remove(4);
        let mut ck = checker(40);
        let mut events = vec![];
        ck.check_message(&batch(&recs[..20]), &mut events).unwrap();
        let e = ck.check_message(&batch(&gap), &mut events).unwrap_err();
        assert_eq!(e, "record 25: the stream sent seq 26 instead");

        // A forgery (the record's hash recomputed over altered bytes): its
        // event is not the one at the record's instant; named at it.
        let mut forged = recs.clone();
        forged[32].payload[2] ^= 1;
        let prev = Hash::try_from(&forged[32].prev_hash[..]).unwrap();
        forged[32].hash = record_hash(&prev, 33, forged[32].at, &forged[32].payload).to_vec();
        let mut ck = checker(40);
        let mut events = vec![];
        ck.check_message(&batch(&forged[..30]), &mut events)
            .unwrap();
        let e = ck
            .check_message(&batch(&forged[30..]), &mut events)
            .unwrap_err();
        assert!(e.starts_with("record 33: "), "{e}");
        assert_eq!(events.last().map(|(s, _)| *s), Some(32));

        // A broken link in the middle of a batch.
        let mut unlinked = recs.clone();
        unlinked[24].prev_hash = vec![7u8; 32];
        let mut ck = checker(40);
        let mut events = vec![];
        let e = ck
            .check_message(&batch(&unlinked[..30]), &mut events)
            .unwrap_err();
        assert_eq!(
            e,
            "record 25: prev_hash does not match the hash of the record before (chain broken)"
        );
    }

    /// Runs `check_stream` over `msgs` for a head of size `end`.
    fn stream_check(
        msgs: Vec<Result<pb::LogRecord, tonic::Status>>,
        end: u64,
    ) -> (u64, u64, Option<String>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (ck, ledger, failure) = rt
            .block_on(check_stream(
                futures::stream::iter(msgs),
                checker(end),
                Ledger::new(Policy::default()),
            ))
            .unwrap();
        (ck.next - 1, ledger.last_seq(), failure)
    }

    #[test]
    fn a_stream_that_ends_fails_or_overruns_is_judged_at_the_signed_head() {
        let (recs, _) = stream_of(50);
        let msgs = |r: &[Rec]| r.chunks(8).map(|c| Ok(batch(c))).collect::<Vec<_>>();
        // The whole log: checked and folded.
        assert_eq!(stream_check(msgs(&recs), 50), (50, 50, None));
        // Ended early.
        let (seen, folded, why) = stream_check(msgs(&recs[..30]), 50);
        assert_eq!((seen, folded), (30, 30));
        assert_eq!(
            why.unwrap(),
            "the server's log stream ended at seq 30 but its signed head has size 50"
        );
        // Failed mid-way: named at the first record not received.
        let mut failing = msgs(&recs[..20]);
        failing.push(Err(tonic::Status::unavailable("going away")));
        let (seen, _, why) = stream_check(failing, 50);
        assert_eq!(seen, 20);
        assert_eq!(
            why.unwrap(),
            "reading the log at seq 21: Unavailable: going away"
        );
        // Past the head: ignored, and a failure after it does not count.
        let mut more = msgs(&recs);
        more.push(Err(tonic::Status::internal("after the end")));
        assert_eq!(stream_check(more, 40), (40, 40, None));
        // Bytes that are not a LogRecord: named at the record they hold.
        let mut garbage = msgs(&recs[..8]);
        garbage.push(Ok(pb::LogRecord::from_wire(vec![0x0a, 0x05, 1].into())));
        let (seen, folded, why) = stream_check(garbage, 50);
        assert_eq!((seen, folded), (8, 8));
        assert_eq!(
            why.unwrap(),
            "record 9: malformed LogRecord message: a field has the wrong wire type"
        );
    }

    #[test]
    fn records_past_the_signed_head_are_not_checked() {
        let (recs, _) = stream_of(20);
        let mut ck = checker(12);
        let mut events = vec![];
        ck.check_message(&batch(&recs), &mut events).unwrap();
        assert_eq!((ck.next, events.len()), (13, 12));
        assert_eq!(ck.frontier.size(), 12);
    }

    #[test]
    fn an_undecodable_or_refused_record_in_a_batch_is_named_by_its_seq() {
        let (recs, events) = stream_of(30);
        // Bytes that do not decode, hashed as they are (a hostile server).
        let mut bad = recs.clone();
        let mut prev = Hash::try_from(&bad[16].prev_hash[..]).unwrap();
        for r in &mut bad[16..] {
            if r.seq == 17 {
                r.payload = vec![0xff; 5];
            }
            r.prev_hash = prev.to_vec();
            let h = record_hash(&prev, r.seq, r.at, &r.payload);
            r.hash = h.to_vec();
            prev = h;
        }
        let mut ck = checker(30);
        let mut got = vec![];
        let e = ck.check_message(&batch(&bad), &mut got).unwrap_err();
        assert!(e.starts_with("record 17: "), "{e}");
        assert_eq!(got.len(), 16);

        // The fold refuses a record (an event replayed twice): named.
        let mut twice: Vec<(u64, Event)> = events
            .iter()
            .enumerate()
            .map(|(i, ev)| (i as u64 + 1, ev.clone()))
            .collect();
        let first_open = events
            .iter()
            .position(|e| matches!(e.body, crate::domain::EventBody::AccountOpened { .. }))
            .expect("an account is opened");
        twice.insert(first_open + 1, (0, events[first_open].clone()));
        for (i, e) in twice.iter_mut().enumerate() {
            e.0 = i as u64 + 1;
        }
        let mut ledger = Ledger::new(Policy::default());
        let e = fold_batch(&mut ledger, &twice).unwrap_err();
        assert!(
            e.starts_with(&format!("record {}: the replay refuses it", first_open + 2)),
            "{e}"
        );
    }
}
