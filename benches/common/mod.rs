//! What the benchmarks share.

/// Quick mode: asked for (`ISC_BENCH_QUICK`), on CI, or when `cargo test`
/// runs the file (cargo passes `--bench` only to real benchmark runs).
pub fn quick() -> bool {
    std::env::var_os("ISC_BENCH_QUICK").is_some()
        || std::env::var_os("CI").is_some()
        || !std::env::args().any(|a| a == "--bench")
}
