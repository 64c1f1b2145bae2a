//! Shared helpers for the service integration tests: an in-process server on
//! 127.0.0.1:0 over a temp dir (or, for the `_pg` test targets, a database
//! of a throwaway PostgreSQL cluster: see [`pg::store_for`]), with a manual
//! clock, or the real binary ([`spawn_serve`]), and typed clients ([`start_temp`]: a temp dir, its server and a
//! client); a server with the four roles' tokens and
//! clients calling as one of them ([`start_with_roles`], [`Callers`]); the
//! asserts of a rejection ([`code_of`], [`code_with`]) and of the next
//! notice on a watch ([`next_notice`], [`next_notice_of`]).
#![allow(dead_code)]

pub mod offline;
pub mod pg;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use isc_ledger::api::auth::Tokens;
use isc_ledger::api::pb;
use isc_ledger::api::pb::clock_client::ClockClient;
use isc_ledger::api::pb::ledger_client::LedgerClient;
use isc_ledger::api::server::{serve, ServerOptions};
use isc_ledger::domain::Policy;
use isc_ledger::engine::{Engine, EngineConfig, ManualClock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

pub struct TestServer {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Graceful stop: waits until the engine committed and stopped.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }
}

pub async fn start_with(dir: &Path, start_at: i64, tokens: Tokens, policy: Policy) -> TestServer {
    let clock = Arc::new(ManualClock::new(start_at));
    let engine = Engine::start(
        pg::store_for(dir),
        EngineConfig {
            policy,
            // On PostgreSQL the node's key lives beside (restarts keep it).
            key_dir: Some(dir.to_path_buf()),
            ..EngineConfig::default()
        },
        clock,
    )
    .expect("engine starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(
            engine,
            listener,
            ServerOptions {
                tokens,
                tls: None,
                clock_service: true,
            },
            async move {
                let _ = rx.await;
            },
        )
        .await
        .expect("server runs");
    });
    TestServer {
        url,
        stop: Some(tx),
        task: Some(task),
    }
}

pub async fn start(dir: &Path, start_at: i64) -> TestServer {
    start_with(dir, start_at, Tokens::none(), Policy::default()).await
}

/// A server over a fresh temp dir, and a client: the start of most tests.
/// Keep the dir for as long as the server runs (and to restart on it).
pub async fn start_temp(start_at: i64) -> (tempfile::TempDir, TestServer, LedgerClient<Channel>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start(dir.path(), start_at).await;
    let c = ledger(&srv.url).await;
    (dir, srv, c)
}

/// The tokens of [`start_with_roles`]: `agent-tok`, `vendor-tok`,
/// `audit-tok`, `admin-tok`, one per role.
pub const ROLE_TOKENS: &str = "agent-tok=agent,vendor-tok=vendor,audit-tok=auditor,admin-tok=admin";

/// A server (default policy) that takes only the tokens of [`ROLE_TOKENS`].
pub async fn start_with_roles(dir: &Path, start_at: i64) -> TestServer {
    let tokens = Tokens::from_pairs(ROLE_TOKENS).expect("role tokens");
    start_with(dir, start_at, tokens, Policy::default()).await
}

/// Sends `authorization: Bearer <token>` with every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert("authorization", self.0.clone());
        Ok(r)
    }
}

/// A ledger client calling with a token.
pub type AuthedLedger = LedgerClient<InterceptedService<Channel, Bearer>>;

/// Clients over one connection, each calling as someone.
pub struct Callers {
    ch: Channel,
}

impl Callers {
    pub async fn connect(url: &str) -> Callers {
        Callers {
            ch: channel(url).await,
        }
    }

    /// A client sending `token` (any string: a wrong one too).
    pub fn with(&self, token: &str) -> AuthedLedger {
        let v = format!("Bearer {token}").parse().expect("an ASCII token");
        LedgerClient::with_interceptor(self.ch.clone(), Bearer(v))
    }

    /// A client sending no token.
    pub fn anon(&self) -> LedgerClient<Channel> {
        LedgerClient::new(self.ch.clone())
    }

    /// The connection, for the other services (health, reflection).
    pub fn channel(&self) -> Channel {
        self.ch.clone()
    }
}

/// `isc-ledger serve` spawned on `dir` (manual clock at 1000, gRPC on an
/// ephemeral port): the child, once it printed its address, and its URL.
pub fn spawn_serve(dir: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isc-ledger"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--clock",
            "manual",
            "--start-at",
            "1000",
            "--data",
        ])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn isc-ledger serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("line");
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.trim().to_string();
        }
    };
    (child, format!("http://{addr}"))
}

pub async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

pub async fn ledger(url: &str) -> LedgerClient<Channel> {
    LedgerClient::new(channel(url).await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

pub async fn clock(url: &str) -> ClockClient<Channel> {
    ClockClient::new(channel(url).await)
}

/// Monthly price 2.628 iSC = 1e-6 iSC per unit-second: easy arithmetic.
pub const PORT: &str = "PBX-Port13";

pub fn price_list(version: u32, effective_at: i64, price: &str) -> pb::PublishPriceListRequest {
    pb::PublishPriceListRequest {
        version,
        effective_at,
        entries: vec![pb::PriceEntry {
            license_type: PORT.into(),
            tiers: vec![pb::Tier {
                from_qty: 1,
                monthly_price: price.into(),
            }],
        }],
        catalogue_toml: String::new(),
        ..Default::default()
    }
}

pub fn config(account: &str, pbx: &str, qty: u32) -> pb::ChangeConfigRequest {
    pb::ChangeConfigRequest {
        account_id: account.into(),
        pbx_id: pbx.into(),
        licenses: if qty == 0 {
            vec![]
        } else {
            vec![pb::LicenseLine {
                license_type: PORT.into(),
                quantity: qty,
            }]
        },
        firmware_major: 13,
        hosting: pb::Hosting::Gateway as i32,
    }
}

pub fn topup(account: &str, key: &str, amount: &str) -> pb::TopUpRequest {
    pb::TopUpRequest {
        account_id: account.into(),
        activation_key: key.into(),
        amount: amount.into(),
    }
}

pub fn open(account: &str) -> pb::OpenAccountRequest {
    pb::OpenAccountRequest {
        account_id: account.into(),
    }
}

pub fn get(account: &str, at: i64) -> pb::GetAccountRequest {
    pb::GetAccountRequest {
        account_id: account.into(),
        at,
        min_seq: 0,
    }
}

/// Asserts a call failed with `code`, and returns its message.
#[track_caller]
pub fn code_of<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: tonic::Code) -> String {
    match r {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            assert!(!s.message().is_empty(), "a status needs a message");
            s.message().to_string()
        }
    }
}

/// Asserts a call failed with `code` and a message containing `part`, and
/// returns the message.
#[track_caller]
pub fn code_with<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: tonic::Code,
    part: &str,
) -> String {
    let msg = code_of(r, code);
    assert!(msg.contains(part), "expected {part:?} in: {msg}");
    msg
}

/// The next notice on a watch, within 2 s.
pub async fn next_notice(w: &mut tonic::Streaming<pb::Notice>) -> pb::Notice {
    tokio::time::timeout(Duration::from_secs(2), w.message())
        .await
        .expect("a notice within 2 s")
        .expect("stream ok")
        .expect("stream open")
}

/// The next notice of `kind` on a watch (others are skipped), each within 2 s.
pub async fn next_notice_of(
    w: &mut tonic::Streaming<pb::Notice>,
    kind: pb::notice::Kind,
) -> pb::Notice {
    loop {
        let n = next_notice(w).await;
        if n.kind == kind as i32 {
            return n;
        }
    }
}
