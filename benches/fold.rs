//! In-memory fold of a generated history: the ceiling that replay from disk
//! is measured against (issue 3 target: ≥ 5 M events/s on one core).
//!
//! `cargo bench --bench fold` runs 10k accounts / 1M events; with `CI` or
//! `ISC_BENCH_QUICK` set, a 100k-event history and few samples.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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

criterion_group!(benches, fold);
criterion_main!(benches);
