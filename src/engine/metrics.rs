//! The service's Prometheus metrics: one registry, filled where the work
//! happens (the writer observes its appends and notices, the gRPC edge its
//! calls) and completed at scrape time from the shared state (gauges), so a
//! scrape never reaches the writer.
//!
//! Owns the metric names (README "Metrics" lists them). Must not: hold a
//! lock of the engine while encoding, or take labels from client input
//! other than through a closed set (a method name is only recorded for a
//! call the server routed).

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a gRPC call: its method (e.g. `GetAccount`) and status code
/// (e.g. `Ok`, `InvalidArgument`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    pub code: String,
}

/// A notice kind (`reminder`, `depletion`, …).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// An account state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

/// A runout horizon (`1d`, `7d`, `30d`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WithinLabels {
    pub within: String,
}

/// A console page.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PageLabels {
    pub page: String,
    pub status: String,
}

type GaugeF = Gauge<f64, AtomicU64>;

/// fdatasync durations of the sled backend, process-wide (the store calls
/// [`observe_fdatasync`] through its hook; every registry shows this one).
static FDATASYNC_SECONDS: std::sync::LazyLock<Histogram> =
    std::sync::LazyLock::new(|| Histogram::new(exponential_buckets(0.000_125, 2.0, 14)));

fn observe_fdatasync(d: std::time::Duration) {
    FDATASYNC_SECONDS.observe(d.as_secs_f64());
}

/// Every metric of the service.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// gRPC calls by method and status code.
    pub calls: Family<CallLabels, Counter>,
    /// Records per durable append (group-commit batch size).
    pub batch_records: Histogram,
    /// Duration of each durable append (write, flush, fdatasync), seconds.
    pub append_seconds: Histogram,
    /// Notices broadcast to watchers, by kind.
    pub notices: Family<KindLabels, Counter>,
    /// Console requests by page and HTTP status.
    pub console: Family<PageLabels, Counter>,
    // Gauges set at scrape time.
    queue_depth: Gauge<i64, AtomicI64>,
    accounts: Family<StateLabels, Gauge<i64, AtomicI64>>,
    runouts: Family<WithinLabels, Gauge<i64, AtomicI64>>,
    watchers: Gauge<i64, AtomicI64>,
    head_seq: Gauge<i64, AtomicI64>,
    snapshot_age: GaugeF,
    replay_seconds: GaugeF,
}

/// What a scrape reads from the engine, taken without holding any lock
/// while the text is encoded.
#[derive(Debug, Clone, Default)]
pub struct ScrapeValues {
    pub queue_depth: usize,
    pub counts: super::IndexCounts,
    pub watchers: usize,
    pub head_seq: u64,
    pub snapshot_age_seconds: f64,
    pub replay_seconds: f64,
}

fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered, all at zero.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("isc_ledger");
        let calls = Family::<CallLabels, Counter>::default();
        r.register(
            "grpc_calls",
            "gRPC calls by method and status code",
            calls.clone(),
        );
        let batch_records = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        r.register(
            "append_batch_records",
            "Records per durable append (group-commit batch size)",
            batch_records.clone(),
        );
        let append_seconds = Histogram::new(exponential_buckets(0.000_125, 2.0, 14));
        r.register(
            "append_seconds",
            "Duration of one durable append: write, flush and fdatasync",
            append_seconds.clone(),
        );
        r.register(
            "fdatasync_seconds",
            "Duration of the fdatasync of sled's data file in each durable append (sled backend)",
            FDATASYNC_SECONDS.clone(),
        );
        crate::store::sled_log::set_fdatasync_observer(observe_fdatasync);
        let notices = Family::<KindLabels, Counter>::default();
        r.register(
            "notices",
            "Notices broadcast to watchers, by kind",
            notices.clone(),
        );
        let console = Family::<PageLabels, Counter>::default();
        r.register(
            "console_requests",
            "Web console requests by page and HTTP status",
            console.clone(),
        );
        let queue_depth = Gauge::default();
        r.register(
            "writer_queue_depth",
            "Commands waiting for the writer (capacity 16384)",
            queue_depth.clone(),
        );
        let accounts = Family::<StateLabels, Gauge<i64, AtomicI64>>::default();
        r.register("accounts", "Accounts by state, now", accounts.clone());
        let runouts = Family::<WithinLabels, Gauge<i64, AtomicI64>>::default();
        r.register(
            "credit_runouts",
            "Accounts whose credit runs out within 1, 7 or 30 days",
            runouts.clone(),
        );
        let watchers = Gauge::default();
        r.register("watchers", "Watch streams connected", watchers.clone());
        let head_seq = Gauge::default();
        r.register(
            "log_head_seq",
            "Seq of the last durable record",
            head_seq.clone(),
        );
        let snapshot_age = GaugeF::default();
        r.register(
            "snapshot_age_seconds",
            "Seconds since this process last wrote a state snapshot (since start if none)",
            snapshot_age.clone(),
        );
        let replay_seconds = GaugeF::default();
        r.register(
            "startup_replay_seconds",
            "Seconds the start-up took to load the snapshot and replay the log's tail",
            replay_seconds.clone(),
        );
        Metrics {
            registry: r,
            calls,
            batch_records,
            append_seconds,
            notices,
            console,
            queue_depth,
            accounts,
            runouts,
            watchers,
            head_seq,
            snapshot_age,
            replay_seconds,
        }
    }

    /// Counts one gRPC call.
    pub fn call(&self, method: &str, code: tonic::Code) {
        self.calls
            .get_or_create(&CallLabels {
                method: method.to_owned(),
                code: format!("{code:?}"),
            })
            .inc();
    }

    /// Counts one console request.
    pub fn page(&self, page: &'static str, status: u16) {
        self.console
            .get_or_create(&PageLabels {
                page: page.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts one broadcast notice.
    pub fn notice(&self, kind: crate::domain::NoticeKind) {
        self.notices
            .get_or_create(&KindLabels {
                kind: format!("{kind:?}").to_ascii_lowercase(),
            })
            .inc();
    }

    /// The text exposition (OpenMetrics) with the gauges set to `v`.
    pub fn encode(&self, v: &ScrapeValues) -> String {
        self.queue_depth.set(to_i64(v.queue_depth));
        let c = &v.counts;
        for (state, n) in [
            ("active", c.active),
            ("suspended", c.suspended),
            ("idle", c.idle),
            ("closed", c.closed),
        ] {
            self.accounts
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(to_i64(n));
        }
        for (within, n) in ["1d", "7d", "30d"].iter().zip(c.runouts_within) {
            self.runouts
                .get_or_create(&WithinLabels {
                    within: (*within).into(),
                })
                .set(to_i64(n));
        }
        self.watchers.set(to_i64(v.watchers));
        self.head_seq.set(to_i64(v.head_seq));
        self.snapshot_age.set(v.snapshot_age_seconds);
        self.replay_seconds.set(v.replay_seconds);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
