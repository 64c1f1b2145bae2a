//! Cost of judging a configuration by the license model (issue 6): it runs
//! on every ChangeConfig, inside the single writer.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use isc_ledger::domain::license_model::Catalogue;
use isc_ledger::domain::Hosting;

fn bench(c: &mut Criterion) {
    let catalogue = Catalogue::default_v13();
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
