//! The PostgreSQL schema of the log and its migrations. Versioned: table
//! `isc_schema` holds one row with the version; each migration moves the
//! database from version `n - 1` to `n` in one transaction. Portable SQL
//! only (no extensions, no PL/pgSQL), see ARCHITECTURE.md.
//!
//! Version 1:
//! - `isc_records`: one row per record. `seq` is the dense primary key (a
//!   second writer's record at a taken seq is refused by it), `at`, the
//!   record layout `version`, the chain hashes `prev_hash` and `hash`
//!   (32 bytes each), the account the event touches (`account_id`, bytes,
//!   NULL for ledger-wide events; indexed with `seq` for statements) and
//!   `payload`, the event bytes exactly as hashed (`codec::record_hash`).
//! - `isc_head`: one row, the last acknowledged record (`seq`, `at`,
//!   `hash`), updated in the same transaction as the records by
//!   compare-and-set: it detects truncation and refuses a stale writer.
//! - `isc_snapshots`: folded-state snapshots keyed by the seq they cover
//!   (`codec::encode_snapshot` bytes).
//! - `isc_signed_head`: one row, the newest signed tree head (JSON text).
//!
//! Version 2:
//! - `isc_writer_lease`: one row, the writer lease and its fencing epoch
//!   (see `store::pg_lease`).

use tokio_postgres::Client;

use super::StoreError;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 2;

/// Migration `i` moves version `i` to `i + 1` (index 0 creates version 1).
const MIGRATIONS: &[&str] = &[
    // -> 1
    "CREATE TABLE isc_schema (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version integer NOT NULL
    );
    CREATE TABLE isc_records (
        seq bigint PRIMARY KEY CHECK (seq >= 1),
        at bigint NOT NULL,
        version smallint NOT NULL,
        prev_hash bytea NOT NULL,
        hash bytea NOT NULL,
        account_id bytea,
        payload bytea NOT NULL
    );
    CREATE INDEX isc_records_account ON isc_records (account_id, seq) WHERE account_id IS NOT NULL;
    CREATE TABLE isc_head (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        seq bigint NOT NULL,
        at bigint NOT NULL,
        hash bytea NOT NULL
    );
    CREATE TABLE isc_snapshots (
        seq bigint PRIMARY KEY,
        body bytea NOT NULL
    );
    CREATE TABLE isc_signed_head (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        body text NOT NULL
    );",
    // -> 2: the writer lease of several nodes (`store::pg_lease`).
    super::pg_lease::SCHEMA_SQL,
];

fn pg(what: &str, e: tokio_postgres::Error) -> StoreError {
    super::pg_log::pg_error(what, e)
}

/// The schema version of the database: `None` when it has no ledger schema.
pub async fn version(client: &Client) -> Result<Option<i32>, StoreError> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM information_schema.tables \
             WHERE table_name = 'isc_schema' AND table_schema = current_schema()",
            &[],
        )
        .await
        .map_err(|e| pg("cannot read the schema version", e))?;
    if exists.is_none() {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT version FROM isc_schema", &[])
        .await
        .map_err(|e| pg("cannot read the schema version", e))?;
    match row {
        Some(r) => Ok(Some(
            r.try_get::<_, i32>(0)
                .map_err(|e| pg("cannot read the schema version", e))?,
        )),
        None => Err(StoreError::Postgres(
            "table isc_schema is empty: the schema is damaged".into(),
        )),
    }
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Version before (`None`: no schema).
    pub from: Option<i32>,
    /// Version after.
    pub to: i32,
}

/// Creates the schema on an empty database, or applies the migrations a
/// database at an older version lacks (each in its own transaction).
/// A concurrent creator (another node starting at the same time) makes
/// this one's transaction fail; the version is then read again.
pub async fn migrate(client: &Client) -> Result<Migrated, StoreError> {
    let from = version(client).await?;
    let mut v = from.unwrap_or(0);
    if v > SCHEMA_VERSION {
        return Err(StoreError::Postgres(format!(
            "the database has schema version {v}, newer than this build's {SCHEMA_VERSION}: upgrade isc-ledger"
        )));
    }
    while v < SCHEMA_VERSION {
        let sql = MIGRATIONS[v as usize];
        let step = async {
            client.batch_execute("BEGIN").await?;
            client.batch_execute(sql).await?;
            if v == 0 {
                client
                    .execute("INSERT INTO isc_schema (version) VALUES ($1)", &[&(v + 1)])
                    .await?;
                client
                    .execute(
                        "INSERT INTO isc_head (seq, at, hash) VALUES (0, 0, $1)",
                        &[&&super::GENESIS_HASH[..]],
                    )
                    .await?;
            } else {
                client
                    .execute("UPDATE isc_schema SET version = $1", &[&(v + 1)])
                    .await?;
            }
            client.batch_execute("COMMIT").await
        };
        if let Err(e) = step.await {
            let _ = client.batch_execute("ROLLBACK").await;
            // Someone else may have migrated meanwhile.
            match version(client).await? {
                Some(now) if now > v => {
                    v = now;
                    continue;
                }
                _ => return Err(pg(&format!("migration to schema version {}", v + 1), e)),
            }
        }
        v += 1;
    }
    Ok(Migrated { from, to: v })
}

/// Checks that the database is at this build's version; creates the schema
/// on an empty database when `create` is set (what `serve` does).
pub async fn ensure(client: &Client, create: bool) -> Result<(), StoreError> {
    match version(client).await? {
        Some(SCHEMA_VERSION) => Ok(()),
        None if create => migrate(client).await.map(|_| ()),
        None => Err(StoreError::Postgres(
            "the database has no ledger schema (run `isc-ledger db init --store URL`)".into(),
        )),
        Some(v) if v < SCHEMA_VERSION => Err(StoreError::Postgres(format!(
            "the database has schema version {v}, this build needs {SCHEMA_VERSION}: run `isc-ledger db migrate --store URL`"
        ))),
        Some(v) => Err(StoreError::Postgres(format!(
            "the database has schema version {v}, newer than this build's {SCHEMA_VERSION}: upgrade isc-ledger"
        ))),
    }
}
