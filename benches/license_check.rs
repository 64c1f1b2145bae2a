//! Cost of judging a configuration by the license model (issue 6): it runs
//! on every ChangeConfig, inside the single writer.
//!
//! `cargo bench --bench license_check`; with `CI` or `ISC_BENCH_QUICK` set,
//! short warm-up and measurement.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use isc_ledger::domain::license_model::Catalogue;
use isc_ledger::domain::Hosting;
use std::time::Duration;

fn quick() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("ISC_BENCH_QUICK").is_some()
}

fn bench(c: &mut Criterion) {
    let catalogue = Catalogue::default_v13();
    let mut c = c.benchmark_group("license_check");
    if quick() {
        c.warm_up_time(Duration::from_millis(200));
        c.measurement_time(Duration::from_secs(1));
    }
    let typical: Vec<(&str, u32)> = vec![
        ("PBX-Port13", 120),
        ("PBX-Standby13", 100),
        ("PBX-UC13", 40),
        ("App(phone)13", 20),
        ("App(softphone)13", 10),
        ("PBX-Channels13", 8),
        ("App(innovaphone-pbx-conference)13", 2),
    ];
    c.bench_function("check_typical_7_lines", |b| {
        b.iter(|| catalogue.check(black_box(&typical), 13, Hosting::Gateway))
    });
    // The largest configuration the core accepts (256 lines): every known
    // type, then unknown ones.
    let names: Vec<String> = catalogue
        .types
        .iter()
        .filter(|t| !t.hardware && t.name != "PBX-Port12" && !t.name.starts_with("Port13$"))
        .map(|t| t.name.clone())
        .chain((0..256).map(|i| format!("Other{i}")))
        .take(256)
        .collect();
    let large: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    c.bench_function("check_256_lines", |b| {
        b.iter(|| catalogue.check(black_box(&large), 13, Hosting::Ipva))
    });
    c.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
