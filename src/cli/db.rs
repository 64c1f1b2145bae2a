//! `isc-ledger db init|migrate` (the PostgreSQL schema) and `isc-ledger
//! copy` (a ledger from one store to another, record by record as stored).

use std::io::Write;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::store::ledger::EventLog;
use crate::store::pg_schema::SCHEMA_VERSION;
use crate::store::{pg_log, LogStore, StoreLocation, StoreOptions};

/// `isc-ledger db`.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub cmd: DbCmd,
}

/// The schema commands.
#[derive(Debug, Clone, Subcommand)]
pub enum DbCmd {
    /// Create the ledger's schema in an empty PostgreSQL database (`serve`
    /// also does this on first start).
    Init(DbStore),
    /// Bring the schema of a database written by an older build up to
    /// this build's version.
    Migrate(DbStore),
}

/// The database of a schema command.
#[derive(Debug, Clone, Args)]
pub struct DbStore {
    /// The database: a postgres:// URL or a libpq key=value string
    /// (password from it, PGPASSWORD or ~/.pgpass).
    #[arg(
        long,
        value_name = "URL",
        env = "ISC_LEDGER_STORE",
        hide_env_values = true
    )]
    pub store: String,
}

fn database(store: &str) -> anyhow::Result<String> {
    match StoreLocation::parse(store) {
        StoreLocation::Postgres(url) => Ok(url),
        StoreLocation::Dir(d) => bail!(
            "{} is not a PostgreSQL connection string (postgres://… or key=value); a sled directory needs no schema",
            d.display()
        ),
    }
}

/// Runs `db init` or `db migrate`.
pub fn run(args: &DbArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (DbCmd::Init(s) | DbCmd::Migrate(s)) = &args.cmd;
    let url = database(&s.store)?;
    let described = StoreLocation::Postgres(url.clone()).describe();
    let m = pg_log::migrate(&url).with_context(|| described.clone())?;
    match (m.from, &args.cmd) {
        (None, _) => writeln!(
            out,
            "created the ledger schema (version {}) in {described}",
            m.to
        )?,
        (Some(v), DbCmd::Init(_)) if v == SCHEMA_VERSION => writeln!(
            out,
            "{described} already holds the ledger schema (version {v}); nothing to do"
        )?,
        (Some(v), _) if v == m.to => {
            writeln!(out, "{described} is at schema version {v}; nothing to do")?
        }
        (Some(v), _) => writeln!(
            out,
            "migrated {described} from schema version {v} to {}",
            m.to
        )?,
    }
    Ok(())
}

/// `isc-ledger copy --from A --to B`.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The ledger to copy: a sled data directory or a PostgreSQL URL. Only
    /// read; stop its server first (a sled directory is locked anyway).
    #[arg(long, value_name = "DIR|URL")]
    pub from: String,
    /// Where to copy it: an empty (or new) data directory or database, or
    /// one holding an earlier copy of the same ledger (the copy resumes).
    #[arg(long, value_name = "DIR|URL")]
    pub to: String,
    /// Records per transaction (PostgreSQL) or durable batch (sled).
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
}

/// Copies the raw records (the exact stored bytes; hashes checked on the
/// way, never recomputed from a re-encoding), then verifies both ends: the
/// destination is read back in full, its chain recomputed, and its head seq
/// and chain hash must equal the source's.
pub fn copy(args: &CopyArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let from = StoreLocation::parse(&args.from);
    let to = StoreLocation::parse(&args.to);
    if from == to {
        bail!("--from and --to are the same store");
    }
    let src = super::audit::open_audit(&from)?;
    let src_head = src.head();
    let mut dst = EventLog::open(&to, StoreOptions::without_snapshots(true))
        .with_context(|| format!("cannot open {}", to.describe()))?;
    let start = dst.head();
    if start.seq > src_head.seq {
        bail!(
            "{} already holds {} records, more than the {} of {}",
            to.describe(),
            start.seq,
            src_head.seq,
            from.describe()
        );
    }
    if start.seq > 0 {
        let same = src
            .raw_records(start.seq, start.seq)
            .next()
            .transpose()
            .with_context(|| format!("cannot read {}", from.describe()))?
            .is_some_and(|r| r.hash == start.hash);
        if !same {
            bail!(
                "{} holds another ledger (its record {} differs from the source's): copy into an empty store",
                to.describe(),
                start.seq
            );
        }
        writeln!(out, "resuming after seq {}", start.seq)?;
    }
    let mut batch = Vec::with_capacity(args.batch.max(1));
    let mut copied = 0u64;
    for r in src.raw_records(start.seq + 1, src_head.seq) {
        let r = r.with_context(|| {
            format!(
                "the source {} is damaged; run `isc-ledger verify`",
                from.describe()
            )
        })?;
        batch.push(r);
        if batch.len() >= args.batch.max(1) {
            dst.append_raw(&batch)
                .with_context(|| format!("cannot write to {}", to.describe()))?;
            copied += batch.len() as u64;
            batch.clear();
        }
    }
    dst.append_raw(&batch)
        .with_context(|| format!("cannot write to {}", to.describe()))?;
    copied += batch.len() as u64;
    drop(dst);
    // Both ends: read the destination back from scratch, chain recomputed.
    let check = super::audit::open_audit(&to)?;
    let mut n = 0u64;
    let mut last = crate::store::Head::EMPTY;
    for r in check.raw_records(1, u64::MAX) {
        let r = r.with_context(|| format!("the copy in {} does not read back", to.describe()))?;
        n += 1;
        last = crate::store::Head {
            seq: r.seq,
            hash: r.hash,
            at: r.at,
        };
    }
    if n != src_head.seq || last != src_head || check.head() != src_head {
        bail!(
            "the copy differs: source head seq {} hash {}, destination seq {} hash {}",
            src_head.seq,
            hex::encode(src_head.hash),
            last.seq,
            hex::encode(last.hash)
        );
    }
    writeln!(
        out,
        "copied {copied} records from {} to {}\nverified: both ends at head seq {} hash {}",
        from.describe(),
        to.describe(),
        src_head.seq,
        hex::encode(src_head.hash)
    )?;
    Ok(())
}
