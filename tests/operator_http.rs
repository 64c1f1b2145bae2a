//! The operator's HTTP surface against a real server on 127.0.0.1:0:
//! `/metrics` scraped and parsed with a Prometheus text parser (counters
//! move when commands run), the console's access rules over plain HTTP, and
//! the browser test: headless Chromium (Debian's `chromium`) driven by
//! Playwright for Python (`tests/browser/console.py`) against the real
//! binary, checked against gRPC and the offline `statement --format csv`.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use isc_ledger::api::auth::Tokens;
use isc_ledger::api::pb;
use isc_ledger::api::server::{serve, ServerOptions};
use isc_ledger::domain::Policy;
use isc_ledger::engine::{Engine, EngineConfig, ManualClock};
use tokio::net::TcpListener;
use tokio::sync::watch;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400;

/// gRPC, `/metrics` and the console over one engine, in process.
struct Full {
    grpc: String,
    metrics: String,
    console: String,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Full {
    async fn start(dir: &Path, tokens: Tokens) -> Full {
        let policy = Policy {
            min_activation_runtime_s: 0,
            ..Policy::default()
        };
        let engine = Engine::start(
            dir,
            EngineConfig {
                policy,
                ..EngineConfig::default()
            },
            Arc::new(ManualClock::new(T0)),
        )
        .unwrap();
        let (stop, rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let gl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ml = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = format!("http://{}", gl.local_addr().unwrap());
        let metrics = ml.local_addr().unwrap().to_string();
        let console = cl.local_addr().unwrap().to_string();
        let mut tasks = Vec::new();
        let (e, s) = (engine.clone(), stopped());
        tasks.push(tokio::spawn(async move {
            isc_ledger::http::serve_metrics(e, ml, s).await.unwrap();
        }));
        let (e, s, t) = (engine.clone(), stopped(), Arc::new(tokens.clone()));
        tasks.push(tokio::spawn(async move {
            isc_ledger::http::console::serve_console(e, cl, t, s)
                .await
                .unwrap();
        }));
        let s = stopped();
        tasks.push(tokio::spawn(async move {
            serve(
                engine,
                gl,
                ServerOptions {
                    tokens,
                    tls: None,
                    clock_service: true,
                },
                s,
            )
            .await
            .unwrap();
        }));
        Full {
            grpc,
            metrics,
            console,
            stop,
            tasks,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

/// A plain HTTP/1.1 request; returns (status, headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Parsed `/metrics`: (name, sorted labels) → value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn scrape(addr: &str) -> Samples {
    let (status, head, body) = http(addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "{head}");
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => {
                // Keep the +Inf bucket: the number of observations.
                h.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert((s.metric, labels), v);
    }
    out
}

fn get(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    m.get(&(name.to_string(), l)).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_parsed_and_move() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Full::start(dir.path(), Tokens::none()).await;
    let addr = srv.metrics.clone();
    let before = tokio::task::spawn_blocking({
        let a = addr.clone();
        move || scrape(&a)
    })
    .await
    .unwrap();
    assert_eq!(get(&before, "isc_ledger_log_head_seq", &[]), 0.0);

    let mut c = ledger(&srv.grpc).await;
    let mut clk = clock(&srv.grpc).await;
    let mut w = c
        .watch(pb::WatchRequest {
            account_id: String::new(),
            since: 0,
        })
        .await
        .unwrap()
        .into_inner();
    c.publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap();
    c.open_account(open("acme")).await.unwrap();
    c.open_account(open("idle-one")).await.unwrap();
    c.top_up(topup("acme", "KEY-00000001", "0.5"))
        .await
        .unwrap(); // 500 000 s at 1 port
    c.change_config(config("acme", "pbx-1", 1)).await.unwrap();
    code_of(
        c.get_account(get_req("nobody")).await,
        tonic::Code::NotFound,
    );
    code_of(
        c.get_account(get_req("bad id")).await,
        tonic::Code::InvalidArgument,
    );
    c.get_account(get_req("acme")).await.unwrap();
    // Runs out in ~5.8 days; then time passes it: a depletion notice.
    let m = tokio::task::spawn_blocking({
        let a = addr.clone();
        move || scrape(&a)
    })
    .await
    .unwrap();
    assert_eq!(
        get(&m, "isc_ledger_credit_runouts", &[("within", "1d")]),
        0.0
    );
    assert_eq!(
        get(&m, "isc_ledger_credit_runouts", &[("within", "7d")]),
        1.0
    );
    assert_eq!(
        get(&m, "isc_ledger_credit_runouts", &[("within", "30d")]),
        1.0
    );
    assert_eq!(get(&m, "isc_ledger_accounts", &[("state", "active")]), 1.0);
    assert_eq!(get(&m, "isc_ledger_accounts", &[("state", "idle")]), 1.0);
    assert_eq!(get(&m, "isc_ledger_watchers", &[]), 1.0);
    clk.set_time(pb::SetTimeRequest {
        unix_seconds: T0 + 10 * DAY,
    })
    .await
    .unwrap();
    // The 30d/7d/1d reminders and the depletion reach the watcher.
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        kinds.push(next_notice(&mut w).await.kind);
    }
    let addr2 = addr.clone();
    let after = tokio::task::spawn_blocking({
        let a = addr.clone();
        move || scrape(&a)
    })
    .await
    .unwrap();
    let console = srv.console.clone();
    let (_, _, text) = tokio::task::spawn_blocking(move || {
        assert_eq!(http(&console, "GET", "/accounts", &[], "").0, 200);
        http(&addr2, "GET", "/metrics", &[], "")
    })
    .await
    .unwrap();
    for name in [
        "isc_ledger_grpc_calls",
        "isc_ledger_append_batch_records",
        "isc_ledger_append_seconds",
        "isc_ledger_fdatasync_seconds",
        "isc_ledger_notices",
        "isc_ledger_writer_queue_depth",
        "isc_ledger_accounts",
        "isc_ledger_credit_runouts",
        "isc_ledger_watchers",
        "isc_ledger_log_head_seq",
        "isc_ledger_snapshot_age_seconds",
        "isc_ledger_startup_replay_seconds",
        "isc_ledger_console_requests",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is documented (families appear once used):\n{text}"
        );
    }
    let moved = |name: &str, labels: &[(&str, &str)]| {
        get(&after, name, labels) - get(&before, name, labels)
    };
    assert_eq!(
        moved(
            "isc_ledger_grpc_calls_total",
            &[("method", "OpenAccount"), ("code", "Ok")]
        ),
        2.0
    );
    assert_eq!(
        moved(
            "isc_ledger_grpc_calls_total",
            &[("method", "TopUp"), ("code", "Ok")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "isc_ledger_grpc_calls_total",
            &[("method", "GetAccount"), ("code", "NotFound")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "isc_ledger_grpc_calls_total",
            &[("method", "GetAccount"), ("code", "InvalidArgument")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "isc_ledger_grpc_calls_total",
            &[("method", "SetTime"), ("code", "Ok")]
        ),
        1.0
    );
    assert_eq!(moved("isc_ledger_log_head_seq", &[]), 5.0);
    assert!(
        moved("isc_ledger_append_seconds", &[]) >= 1.0,
        "appends observed"
    );
    assert!(
        moved("isc_ledger_fdatasync_seconds", &[]) >= 1.0,
        "fdatasyncs observed"
    );
    assert!(
        moved("isc_ledger_append_batch_records", &[]) >= 1.0,
        "batches observed"
    );
    assert_eq!(
        moved("isc_ledger_notices_total", &[("kind", "depletion")]),
        1.0
    );
    assert!(moved("isc_ledger_notices_total", &[("kind", "reminder")]) >= 1.0);
    assert_eq!(
        get(&after, "isc_ledger_accounts", &[("state", "suspended")]),
        1.0
    );
    assert_eq!(
        get(&after, "isc_ledger_accounts", &[("state", "active")]),
        0.0
    );
    assert_eq!(
        get(&after, "isc_ledger_credit_runouts", &[("within", "30d")]),
        0.0
    );
    assert_eq!(get(&after, "isc_ledger_writer_queue_depth", &[]), 0.0);
    assert!(get(&after, "isc_ledger_startup_replay_seconds", &[]) > 0.0);
    drop(w);
    srv.stop().await;
}

fn get_req(id: &str) -> pb::GetAccountRequest {
    pb::GetAccountRequest {
        account_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_answers_a_request_without_a_token_with_the_login_page() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::from_pairs("agent-tok=agent,vendor-tok=vendor,audit-tok=auditor").unwrap();
    let srv = Full::start(dir.path(), tokens).await;
    let mut c = pb::ledger_client::LedgerClient::with_interceptor(
        channel(&srv.grpc).await,
        |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", "Bearer agent-tok".parse().unwrap());
            Ok(r)
        },
    );
    c.open_account(open("secret-acct")).await.unwrap();
    c.top_up(topup("secret-acct", "KEY-00000042", "123.456"))
        .await
        .unwrap();
    let addr = srv.console.clone();
    tokio::task::spawn_blocking(move || {
        for path in [
            "/accounts",
            "/accounts/secret-acct",
            "/accounts/secret-acct/statement",
            "/accounts/secret-acct/statement.csv",
            "/compliance",
            "/ledger",
        ] {
            let (status, _, body) = http(&addr, "GET", path, &[], "");
            assert_eq!(status, 401, "{path}");
            assert!(
                body.contains("<form method=\"post\" action=\"/login\""),
                "{path}: {body}"
            );
            assert!(
                !body.contains("secret-acct") || path != "/accounts",
                "{path}"
            );
            assert!(!body.contains("123.456"), "{path} leaks data");
            let (status, _, body) = http(
                &addr,
                "GET",
                path,
                &[("Cookie", "isc_ledger_token=77726f6e67")],
                "",
            );
            assert_eq!(status, 401, "{path} with a wrong token");
            assert!(!body.contains("123.456"));
        }
        // A bearer header works like gRPC's.
        let (status, _, body) = http(
            &addr,
            "GET",
            "/accounts/secret-acct",
            &[("Authorization", "Bearer audit-tok")],
            "",
        );
        assert_eq!(status, 200);
        assert!(body.contains("123.456"));
        // The vendor may not read accounts; the agent may not see the compliance report.
        let (status, _, body) = http(
            &addr,
            "GET",
            "/accounts",
            &[("Authorization", "Bearer vendor-tok")],
            "",
        );
        assert_eq!(status, 403);
        assert!(!body.contains("secret-acct"));
        let (status, _, _) = http(
            &addr,
            "GET",
            "/compliance",
            &[("Authorization", "Bearer agent-tok")],
            "",
        );
        assert_eq!(status, 403);
        // Logging in sets the cookie; a wrong token does not.
        let (status, head, _) = http(
            &addr,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "token=wrong&next=%2Faccounts",
        );
        assert_eq!(status, 401);
        assert!(!head.to_ascii_lowercase().contains("set-cookie"));
        let (status, head, _) = http(
            &addr,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "token=agent-tok&next=%2F%2Fevil.example",
        );
        assert_eq!(status, 303);
        assert!(head.contains("location: /accounts\r\n"), "{head}");
        let cookie = format!("isc_ledger_token={}", hex_of("agent-tok"));
        assert!(head.contains(&cookie), "{head}");
        let (status, head, body) = http(
            &addr,
            "GET",
            "/accounts?q=secret",
            &[("Cookie", &cookie)],
            "",
        );
        assert_eq!(status, 200);
        assert!(head.contains("content-security-policy"));
        assert!(body.contains("secret-acct"));
        // Malformed input is a page, never a panic.
        for path in [
            "/accounts/bad%20id",
            "/accounts/x/statement?from=yesterday",
            "/accounts/nobody",
            "/accounts?page=zz",
            "/accounts?q=%3Cscript%3E",
            &format!("/accounts/{}", "a".repeat(300)),
        ] {
            let (status, _, body) = http(&addr, "GET", path, &[("Cookie", &cookie)], "");
            assert!((400..500).contains(&status), "{path}: {status}");
            assert!(!body.contains("<script>"), "{path} escapes");
        }
    })
    .await
    .unwrap();
    srv.stop().await;
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------- the browser

/// The real binary with a manual clock, tokens, and the console.
struct Spawned {
    child: std::process::Child,
    grpc: String,
    console: String,
}

fn spawn_server(dir: &Path, tokens_file: &Path) -> Spawned {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--clock", "manual", "--start-at", &T0.to_string()])
        .args(["--min-activation-runtime", "0"])
        .arg("--data")
        .arg(dir)
        .arg("--tokens")
        .arg(tokens_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut grpc, mut console) = (String::new(), String::new());
    while grpc.is_empty() || console.is_empty() {
        let line = lines
            .next()
            .expect("the server prints its addresses")
            .unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            grpc = format!("http://{a}");
        } else if let Some(a) = line.strip_prefix("console on ") {
            console = a.trim_end_matches('/').to_string();
        }
    }
    Spawned {
        child,
        grpc,
        console,
    }
}

fn sigterm_and_wait(mut s: Spawned) {
    let pid = s.child.id() as libc::pid_t;
    // SAFETY: plain kill(2) of our own child process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = s.child.wait().unwrap();
    assert!(status.success(), "clean stop: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_console_matches_grpc_and_the_offline_statement() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: the browser test needs Debian's chromium (scripts/test installs it)"
    );
    let pw = std::process::Command::new("python3")
        .args(["-c", "import playwright"])
        .status();
    assert!(
        pw.is_ok_and(|s| s.success()),
        "Playwright for Python is missing (scripts/test installs it: pip install playwright)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens_file,
        "[tokens]\n\"browser-admin-tok\" = \"admin\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let srv = spawn_server(&data, &tokens_file);
    let ch = channel(&srv.grpc).await;
    let auth = |mut r: tonic::Request<()>| {
        r.metadata_mut()
            .insert("authorization", "Bearer browser-admin-tok".parse().unwrap());
        Ok(r)
    };
    let mut c = pb::ledger_client::LedgerClient::with_interceptor(ch.clone(), auth);
    let mut clk = pb::clock_client::ClockClient::with_interceptor(ch.clone(), auth);
    let mut at = T0;
    let set = async |clk: &mut pb::clock_client::ClockClient<_>, t: i64| {
        clk.set_time(pb::SetTimeRequest { unix_seconds: t })
            .await
            .unwrap();
    };

    // The scenario: one port costs 1e-6 iSC/s.
    c.publish_price_list(price_list(1, 0, "2.628"))
        .await
        .unwrap();
    c.open_account(open("acme-01")).await.unwrap();
    c.top_up(topup("acme-01", "KEY-acme-0001", "1"))
        .await
        .unwrap(); // 11.6 days
    c.change_config(config("acme-01", "hq", 1)).await.unwrap();
    at += 2 * DAY;
    set(&mut clk, at).await;
    c.top_up(topup("acme-01", "KEY-acme-0002", "0.2"))
        .await
        .unwrap();
    at += 20 * DAY; // past the runout: depleted
    set(&mut clk, at).await;
    c.top_up(topup("acme-01", "KEY-acme-0003", "2.5"))
        .await
        .unwrap(); // reactivates
    c.change_config(config("acme-01", "branch", 0))
        .await
        .unwrap();
    at += 3 * DAY;
    set(&mut clk, at).await;
    // Other accounts, for the list: urgent, this week, later, idle, closed, suspended.
    for (id, amount) in [("acme-02", "0.05"), ("beta-01", "0.4"), ("gamma-07", "5")] {
        c.open_account(open(id)).await.unwrap();
        c.top_up(topup(id, &format!("KEY-{id}-1"), amount))
            .await
            .unwrap();
        c.change_config(config(id, &format!("pbx-{id}"), 1))
            .await
            .unwrap();
    }
    c.open_account(open("idle-04")).await.unwrap();
    c.open_account(open("closed-05")).await.unwrap();
    c.close_account(pb::CloseAccountRequest {
        account_id: "closed-05".into(),
    })
    .await
    .unwrap();
    c.open_account(open("susp-06")).await.unwrap();
    c.top_up(topup("susp-06", "KEY-susp-06-1", "0.00001"))
        .await
        .unwrap();
    c.change_config(config("susp-06", "pbx-susp", 1))
        .await
        .unwrap();
    at += 60; // susp-06 runs out after 10 s
    set(&mut clk, at).await;

    let view = c
        .get_account(pb::GetAccountRequest {
            account_id: "acme-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let st = c
        .get_statement(pb::GetStatementRequest {
            account_id: "acme-01".into(),
            from: 0,
            to: at,
        })
        .await
        .unwrap()
        .into_inner();
    let count =
        |k: pb::statement_line::Kind| st.lines.iter().filter(|l| l.kind == k as i32).count();
    let (tops, depletions, reactivations) = (
        count(pb::statement_line::Kind::TopUp),
        count(pb::statement_line::Kind::Depletion),
        count(pb::statement_line::Kind::Reactivation),
    );
    assert_eq!((tops, depletions, reactivations), (3, 1, 1), "the scenario");

    let csv_path = dir.path().join("console.csv");
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let arg = serde_json::json!({
        "console": srv.console,
        "token": "browser-admin-tok",
        "account": "acme-01",
        "search": "acme-0",
        "now": at,
        "csv_path": csv_path,
        "docs_dir": docs,
    });
    let script = root.join("tests/browser/console.py");
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(arg.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "the browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(
        run.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();

    // Without a token: the login page, no data.
    assert_eq!(out["no_token_status"], 401);
    assert_eq!(out["no_token_login_form"], 1);
    assert_eq!(out["no_token_balance"], 0);
    assert_eq!(out["after_logout_status"], 401);
    // The list: most urgent first, then those without a runout by id.
    assert_eq!(
        out["list_order"],
        serde_json::json!([
            "acme-02",
            "beta-01",
            "acme-01",
            "gamma-07",
            "closed-05",
            "idle-04",
            "susp-06"
        ])
    );
    assert_eq!(out["list_countdowns"], 4);
    assert_eq!(
        out["search_rows"],
        serde_json::json!(["acme-02", "acme-01"])
    );
    // The account page equals GetAccount at that instant (the manual clock
    // stands still and nothing was written meanwhile: checked below).
    assert_eq!(out["balance"], view.balance.as_str());
    assert_eq!(out["markers"]["TOP_UP"], tops);
    assert_eq!(out["markers"]["DEPLETION"], depletions);
    assert_eq!(out["markers"]["REACTIVATION"], reactivations);
    assert_eq!(out["pbx_sections"], 2);
    assert_eq!(out["statement_lines"], st.lines.len());
    let again = c
        .get_account(pb::GetAccountRequest {
            account_id: "acme-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, view);
    let head = c
        .list_accounts(pb::ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(head.accounts.len(), 7);
    drop((c, clk));
    sigterm_and_wait(srv);

    // The download is `statement --format csv`, byte for byte.
    let offline = std::process::Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args([
            "statement",
            "--account",
            "acme-01",
            "--from",
            "0",
            "--format",
            "csv",
        ])
        .args(["--to", &at.to_string()])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let downloaded = std::fs::read(&csv_path).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&downloaded),
        String::from_utf8_lossy(&offline.stdout)
    );
    assert!(docs.join("console-account.png").exists());
    assert!(docs.join("console-accounts.png").exists());
}
