//! PostgreSQL store benchmarks, on a throwaway cluster of their own (fsync
//! on, `synchronous_commit` on: every append is a durable COMMIT):
//! append throughput per batch size, and the cold replay of a log of 1M
//! records from PostgreSQL (open, stream the rows, check the chain, decode,
//! fold), next to the same history folded from memory.
//!
//! Full run:  cargo bench --bench pg_store
//! Quick run: ISC_BENCH_QUICK=1 cargo bench --bench pg_store   (also when `CI` is set)
//! Replay only, on a database of one's own (filled with the 1M history
//! first when empty, kept afterwards, e.g. for `isc-ledger replay --store`):
//!   ISC_BENCH_PG_URL=postgres://… cargo bench --bench pg_store

mod common;
use common::quick;

use std::time::Instant;

use isc_ledger::domain::{Event, Ledger, Policy};
use isc_ledger::store::ledger::{open_ledger_with, EventLog};
use isc_ledger::store::pg_temp::TempCluster;
use isc_ledger::store::workload::Workload;
use isc_ledger::store::{LogStore, StoreLocation, StoreOptions};

/// Where the bench writes: a throwaway cluster, or the caller's database.
enum Target {
    Temp(TempCluster),
    Own(String),
}

impl Target {
    /// The URL of database `name` (created on a throwaway cluster).
    fn database(&self, name: &str) -> String {
        match self {
            Target::Temp(c) => c.create_database(name).expect("db"),
            Target::Own(url) => url.clone(),
        }
    }
}

fn main() {
    let n = if quick() { 20_000 } else { 1_000_000 };
    let own_db = std::env::var("ISC_BENCH_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let target = match own_db {
        Some(url) => Target::Own(url),
        None => match TempCluster::start() {
            Ok(c) => Target::Temp(c),
            Err(e) => {
                eprintln!("pg_store bench: {e}");
                std::process::exit(1);
            }
        },
    };
    let t = Instant::now();
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(42, n, &mut reference);
    println!(
        "pg_store: history of {n} events generated in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Append: durable batches of 1, 64 and 1024 records.
    let stages: &[(usize, usize)] = match &target {
        Target::Temp(_) => &[(1, 2_000), (64, 64_000), (1024, n)],
        Target::Own(_) => &[(1024, n)],
    };
    for &(batch, records) in stages {
        let records = records.min(n);
        let url = target.database(&format!("append_{batch}"));
        let mut log = EventLog::open(
            StoreLocation::Postgres(url),
            StoreOptions::without_snapshots(true),
        )
        .expect("open");
        if log.head().seq == n as u64 {
            println!("pg_store: the database holds the history already");
            continue;
        }
        assert_eq!(
            log.head().seq,
            0,
            "ISC_BENCH_PG_URL: an empty database or this history"
        );
        let t = Instant::now();
        for chunk in events[..records].chunks(batch) {
            let b: Vec<(i64, Event)> = chunk.iter().map(|e| (e.at, e.clone())).collect();
            log.append(&b).expect("append");
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "pg_store: append batch {batch:>4}: {records} records in {s:.2} s = {:.0} records/s ({:.0} commits/s)",
            records as f64 / s,
            (records / batch) as f64 / s
        );
        if batch == 1024 {
            let bytes = log.disk_bytes().expect("size");
            println!(
                "pg_store: {:.0} bytes per record in PostgreSQL (table + indexes)",
                bytes as f64 / records as f64
            );
        }
    }

    // Cold replay of the whole log (written above with batches of 1024).
    let url = target.database("append_1024");
    let t = Instant::now();
    let folded = Ledger::replay(Policy::default(), &events).expect("fold");
    let mem = t.elapsed().as_secs_f64();
    drop(folded);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let (log, ledger) = open_ledger_with(
            StoreLocation::Postgres(url.clone()),
            Policy::default(),
            StoreOptions::without_snapshots(true),
        )
        .expect("replay");
        let s = t.elapsed().as_secs_f64();
        assert_eq!(log.head().seq, n as u64);
        assert_eq!(ledger, reference);
        best = best.min(s);
    }
    println!(
        "pg_store: cold replay of {n} records from PostgreSQL: best of 3 {best:.2} s = {:.2} M records/s (in-memory fold of the same history: {:.2} M/s)",
        n as f64 / best / 1e6,
        n as f64 / mem / 1e6
    );
}
