//! In-memory fold of a generated history: the ceiling that replay from disk
//! is measured against (issue 3 target: ≥ 5 M events/s on one core).
//!
//! `cargo bench --bench fold` runs 10k accounts / 1M events; with `CI` or
//! `ISC_BENCH_QUICK` set, a 100k-event history and few samples. The
//! `notices` group times the writer's clock tick (`notices_between` over
//! the next second) by the full scan and through the notice schedule.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use isc_ledger::domain::sim::generate_history;
use isc_ledger::domain::Ledger;
use std::time::Duration;

fn quick() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("ISC_BENCH_QUICK").is_some()
}

fn fold(c: &mut Criterion) {
    let (accounts, events) = if quick() {
        (1_000, 100_000)
    } else {
        (10_000, 1_000_000)
    };
    let sim = generate_history(42, accounts, events);
    let policy = sim.ledger.policy().clone();
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(sim.log.len() as u64));
    group.sample_size(10);
    if quick() {
        group.warm_up_time(Duration::from_millis(200));
        group.measurement_time(Duration::from_secs(1));
    }
    group.bench_function(format!("apply_{}_events", sim.log.len()), |b| {
        // Freeing the folded state is not part of a replay.
        b.iter_with_large_drop(|| {
            Ledger::replay(policy.clone(), &sim.log).expect("generated log replays")
        })
    });
    group.finish();
}

/// The writer's clock tick: `notices_between(None, t, t + 1)` on a ledger
/// of ~52k accounts (1M records; quick: 5k accounts, 100k records), by
/// the full scan (the definition, what every tick cost before the notice
/// schedule) and through the schedule; and building the schedule from the
/// state (what the first tick after a snapshot's load or a replay pays).
fn notices(c: &mut Criterion) {
    let (accounts, events) = if quick() {
        (5_000, 100_000)
    } else {
        (52_000, 1_000_000)
    };
    // Generated on first use, so a filter that skips this group skips it.
    let ledger = std::sync::OnceLock::new();
    let ledger = || ledger.get_or_init(|| generate_history(7, accounts, events).ledger);
    let mut group = c.benchmark_group("notices");
    group.sample_size(20);
    if quick() {
        group.warm_up_time(Duration::from_millis(200));
        group.measurement_time(Duration::from_secs(1));
    }
    group.bench_function(format!("scan_{accounts}_accounts_1s"), |b| {
        let l = ledger();
        let t = l.last_at();
        b.iter(|| l.notices_between_scan(None, t, t + 1))
    });
    group.bench_function(format!("schedule_{accounts}_accounts_1s"), |b| {
        let l = ledger().clone();
        l.prepare_notices();
        let t = l.last_at();
        b.iter(|| l.notices_between(None, t, t + 1))
    });
    group.bench_function(format!("build_schedule_{accounts}_accounts"), |b| {
        // `ledger()` is never asked through the schedule: its clones carry none.
        b.iter_batched(
            || ledger().clone(),
            |l| {
                l.prepare_notices();
                l
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, fold, notices);
criterion_main!(benches);
