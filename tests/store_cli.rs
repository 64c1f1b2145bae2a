//! The auditor subcommands over a real log: `replay`, `statement`, `export`.

use isc_ledger::cli::audit::{self, DataArg, ExportArgs, Format, ReplayArgs, StatementArgs};
use isc_ledger::domain::{account_view_at, Event, Ledger, Nano, Policy};
use isc_ledger::store::ledger::{commit, open_ledger_with};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::StoreOptions;

fn build() -> (tempfile::TempDir, Ledger) {
    let (tmp, reference, _) = build_with_events();
    (tmp, reference)
}

fn build_with_events() -> (tempfile::TempDir, Ledger, Vec<Event>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reference = Ledger::new(Policy::default());
    let events = Workload::history(5, 400, &mut reference);
    let opts = StoreOptions {
        snapshot_every_records: 100,
        fdatasync: false,
    };
    let (mut log, mut ledger) =
        open_ledger_with(tmp.path(), Policy::default(), opts).expect("open");
    for chunk in events.chunks(33) {
        commit(&mut log, &mut ledger, chunk.to_vec()).expect("commit");
    }
    (tmp, reference, events)
}

fn data(tmp: &tempfile::TempDir) -> DataArg {
    DataArg {
        data: tmp.path().to_path_buf(),
    }
}

#[test]
fn replay_shows_every_account_as_the_live_ledger_does() {
    let (tmp, ledger, events) = build_with_events();
    let t = ledger.last_at() + 86_400;
    let mut out = Vec::new();
    audit::replay(
        &ReplayArgs {
            data: data(&tmp),
            at: Some(t),
            json: true,
        },
        &mut out,
    )
    .expect("replay");
    let views: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("json");
    assert_eq!(views.len(), ledger.account_count());
    for v in &views {
        let id = v["account_id"].as_str().expect("id");
        let live = ledger.account_view(id, t).expect("view");
        assert_eq!(v, &serde_json::to_value(&live).expect("json"), "{id}");
    }
    // A past instant: the views of the log's prefix are those each
    // account's own history gives (the accounts opened by then, no others).
    let first = events[0].at;
    let mid = events[events.len() / 2].at;
    for early in [first - 1, first, mid - 1, mid, ledger.last_at() - 3_000] {
        let mut out = Vec::new();
        audit::replay(
            &ReplayArgs {
                data: data(&tmp),
                at: Some(early),
                json: true,
            },
            &mut out,
        )
        .expect("replay");
        let views: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("json");
        let past: Vec<serde_json::Value> = ledger
            .account_ids()
            .into_iter()
            .filter_map(|id| account_view_at(&ledger, &events, id, early).ok())
            .map(|v| serde_json::to_value(v).expect("json"))
            .collect();
        assert_eq!(views, past, "at {early}");
        assert!(early < mid || !views.is_empty(), "{early}");
    }
    let mut out = Vec::new();
    let early = ledger.last_at() - 3_000;
    audit::replay(
        &ReplayArgs {
            data: data(&tmp),
            at: Some(early),
            json: false,
        },
        &mut out,
    )
    .expect("replay");
    assert!(String::from_utf8_lossy(&out).starts_with(&format!("views at {early}")));
}

#[test]
fn statements_reconcile_in_every_format() {
    let (tmp, ledger) = build();
    let id = ledger.account_ids()[0].to_owned();
    let args = |format| StatementArgs {
        data: data(&tmp),
        account: id.clone(),
        from: 0,
        to: ledger.last_at() + 1,
        format,
    };
    let mut out = Vec::new();
    audit::statement_cmd(&args(Format::Json), &mut out).expect("statement");
    let st: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let nano = |v: &serde_json::Value| {
        Nano::parse(v.as_str().expect("amount").trim_start_matches('-'))
            .map(|n| {
                if v.as_str().is_some_and(|s| s.starts_with('-')) {
                    Nano(-n.0)
                } else {
                    n
                }
            })
            .expect("decimal")
    };
    let lines = st["lines"].as_array().expect("lines");
    let sum: i128 = lines.iter().map(|l| nano(&l["amount"]).0).sum();
    assert_eq!(
        nano(&st["opening_balance"]).0 + sum,
        nano(&st["closing_balance"]).0
    );
    let mut csv = Vec::new();
    audit::statement_cmd(&args(Format::Csv), &mut csv).expect("csv");
    assert_eq!(
        String::from_utf8_lossy(&csv).lines().count(),
        lines.len() + 1
    );
    let mut text = Vec::new();
    audit::statement_cmd(&args(Format::Text), &mut text).expect("text");
    assert!(String::from_utf8_lossy(&text).contains("closing balance"));
}

#[test]
fn export_has_one_chained_line_per_record() {
    let (tmp, _) = build();
    let mut out = Vec::new();
    audit::export(&ExportArgs { data: data(&tmp) }, &mut out).expect("export");
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 400);
    for w in lines.windows(2) {
        assert_eq!(w[1]["prev_hash"], w[0]["hash"]);
        assert_eq!(w[1]["seq"].as_u64(), w[0]["seq"].as_u64().map(|s| s + 1));
    }
}
