//! Proof benchmarks (spec §13): an inclusion proof (and its check) on a
//! 1M-leaf tree, a consistency proof, and building the tree from 1M chain
//! hashes (the start-up rebuild's hashing part).
//!
//! Full run:  cargo bench --bench proofs
//! Quick run: ISC_BENCH_QUICK=1 cargo bench --bench proofs   (also when `CI` is set)

mod common;
use common::quick;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use isc_ledger::store::merkle::{leaf_hash, verify_inclusion, MerkleTree};
use isc_ledger::store::sth::LedgerKey;
use isc_ledger::store::Hash;
use sha2::{Digest, Sha256};

fn leaves() -> u64 {
    if quick() {
        20_000
    } else {
        1_000_000
    }
}

fn chain(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| Sha256::digest(i.to_be_bytes()).into())
        .collect()
}

fn tree() -> &'static (MerkleTree, Vec<Hash>) {
    static T: std::sync::OnceLock<(MerkleTree, Vec<Hash>)> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let hs = chain(leaves());
        let mut t = MerkleTree::new();
        for h in &hs {
            t.push(*h);
        }
        (t, hs)
    })
}

fn configure() -> Criterion {
    let base = Criterion::default().configure_from_args();
    if quick() {
        base.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1))
    } else {
        base.measurement_time(Duration::from_secs(3))
    }
}

fn bench(c: &mut Criterion) {
    let (t, hs) = tree();
    let n = t.size();
    let root = t.root();
    let mut g = c.benchmark_group("proofs");
    let mut i = 0u64;
    g.bench_function(format!("inclusion_proof/{n}"), |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            t.inclusion_proof(i, n).map(|p| p.len())
        })
    });
    let mut j = 0u64;
    g.bench_function(format!("inclusion_proof_and_verify/{n}"), |b| {
        b.iter(|| {
            j = (j + 7919) % n;
            let p = t.inclusion_proof(j, n).unwrap_or_default();
            verify_inclusion(j, n, &leaf_hash(&hs[j as usize]), &p, &root).is_ok()
        })
    });
    let mut k = 1u64;
    g.bench_function(format!("consistency_proof/{n}"), |b| {
        b.iter(|| {
            k = 1 + (k + 7919) % (n - 1);
            t.consistency_proof(k, n).map(|p| p.len())
        })
    });
    let key = LedgerKey::from_seed(&[9; 32]);
    g.bench_function("sign_head", |b| b.iter(|| key.sign(n, root, 1_767_225_600)));
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function(format!("build_tree/{n}"), |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut t = MerkleTree::new();
                for h in hs {
                    t.push(*h);
                }
                t.root()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = configure();
    targets = bench
}
criterion_main!(benches);
