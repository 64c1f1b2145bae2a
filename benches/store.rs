//! Store benchmarks (issue 4): append throughput per batch size (each batch
//! flushed and fdatasynced), cold replay of a big log vs the same history
//! folded from memory, restart from a snapshot, and bytes on disk per event.
//!
//! Full run:  cargo bench --bench store
//! Quick run: ISC_BENCH_QUICK=1 cargo bench --bench store   (also when `CI` is set)

mod common;
use common::quick;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use isc_ledger::domain::{Event, Ledger, Policy};
use isc_ledger::store::ledger::{open_ledger_with, EventLog};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::{LogStore, StoreOptions};

/// Events in the replay history: 1M for real, 20k in quick mode.
fn history_len() -> usize {
    if quick() {
        20_000
    } else {
        1_000_000
    }
}

fn history() -> &'static (Vec<Event>, Ledger) {
    static H: std::sync::OnceLock<(Vec<Event>, Ledger)> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let mut ledger = Ledger::new(Policy::default());
        let events = Workload::history(42, history_len(), &mut ledger);
        (events, ledger)
    })
}

fn write_log(dir: &Path, events: &[Event], batch: usize, fdatasync: bool) -> EventLog {
    let mut log = EventLog::open(dir, StoreOptions::without_snapshots(fdatasync)).expect("open");
    for chunk in events.chunks(batch) {
        let b: Vec<(i64, Event)> = chunk.iter().map(|e| (e.at, e.clone())).collect();
        log.append(&b).expect("append");
    }
    log
}

fn configure() -> Criterion {
    let base = Criterion::default().configure_from_args();
    if quick() {
        base.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1))
    } else {
        base.sample_size(10)
            .measurement_time(Duration::from_secs(5))
    }
}

fn bench_append(c: &mut Criterion) {
    let (events, _) = history();
    let mut g = c.benchmark_group("append");
    // The last case shows the store's own cost without the device's fdatasync.
    for (batch, fdatasync) in [(1usize, true), (64, true), (1024, true), (1024, false)] {
        g.throughput(Throughput::Elements(batch as u64));
        let name = if fdatasync {
            format!("batch_{batch}")
        } else {
            format!("batch_{batch}_no_fdatasync")
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut dirs = vec![tempfile::tempdir().expect("tempdir")];
                let mut log =
                    EventLog::open(dirs[0].path(), StoreOptions::without_snapshots(fdatasync))
                        .expect("open");
                let mut total = Duration::ZERO;
                let mut pos = 0usize;
                for _ in 0..iters {
                    if pos + batch > events.len() {
                        // Out of history: continue in a fresh store.
                        drop(log);
                        dirs.push(tempfile::tempdir().expect("tempdir"));
                        let dir = dirs.last().expect("just pushed").path();
                        log = EventLog::open(dir, StoreOptions::without_snapshots(fdatasync))
                            .expect("open");
                        pos = 0;
                    }
                    let b: Vec<(i64, Event)> = events[pos..pos + batch]
                        .iter()
                        .map(|e| (e.at, e.clone()))
                        .collect();
                    pos += batch;
                    let t = Instant::now();
                    log.append(&b).expect("append");
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn bench_replay(c: &mut Criterion) {
    let (events, folded) = history();
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let log = write_log(tmp.path(), events, 1024, false);
    let written_s = t.elapsed().as_secs_f64();
    let bytes = log.disk_bytes().expect("du");
    eprintln!(
        "store: {} events written in {:.2}s (batches of 1024, no fdatasync); {} bytes on disk = {:.1} bytes/event",
        events.len(),
        written_s,
        bytes,
        bytes as f64 / events.len() as f64
    );
    drop(log);

    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("cold_open_scan_decode_apply", |b| {
        b.iter(|| {
            let (log, ledger) = open_ledger_with(
                tmp.path(),
                Policy::default(),
                StoreOptions::without_snapshots(false),
            )
            .expect("open");
            assert_eq!(ledger.last_seq(), events.len() as u64);
            drop(log);
            ledger
        })
    });
    g.bench_function("in_memory_fold", |b| {
        b.iter(|| Ledger::replay(Policy::default(), events.iter()).expect("fold"))
    });
    g.finish();

    // Restart with a snapshot at the head (plus an empty tail).
    {
        let (mut log, ledger) = open_ledger_with(
            tmp.path(),
            Policy::default(),
            StoreOptions::without_snapshots(false),
        )
        .expect("open");
        assert_eq!(&ledger, folded);
        let before = log.disk_bytes().expect("du");
        log.save_snapshot(&ledger).expect("snapshot");
        let after = log.disk_bytes().expect("du");
        eprintln!(
            "store: snapshot of the {}-event ledger adds {} bytes on disk",
            events.len(),
            after.saturating_sub(before)
        );
    }
    let mut g = c.benchmark_group("restart");
    g.bench_function("with_snapshot", |b| {
        b.iter_batched(
            || (),
            |_| {
                let (log, ledger) = open_ledger_with(
                    tmp.path(),
                    Policy::default(),
                    StoreOptions::without_snapshots(false),
                )
                .expect("open");
                drop(log);
                ledger
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bytes_per_event_small_batches(_c: &mut Criterion) {
    let (events, _) = history();
    let n = if quick() { 2_000 } else { 100_000 }.min(events.len());
    for batch in [1usize, 64] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = write_log(tmp.path(), &events[..n], batch, false);
        let bytes = log.disk_bytes().expect("du");
        eprintln!(
            "store: {n} events in batches of {batch}: {:.1} bytes/event on disk",
            bytes as f64 / n as f64
        );
    }
}

criterion_group! {
    name = benches;
    config = configure();
    targets = bench_append, bench_replay, bytes_per_event_small_batches
}
criterion_main!(benches);
