//! Client subcommands: talk to a running `isc-ledger serve` over gRPC and
//! print human-readable text (or JSON with `--json`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{fmt_duration, fmt_instant, parse_instant};
use crate::api::pb;
use crate::api::pb::clock_client::ClockClient;
use crate::api::pb::ledger_client::LedgerClient;

/// Options shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// URL of the ledger server.
    #[arg(
        long,
        global = true,
        env = "ISC_LEDGER_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token sent as `authorization: Bearer <token>`.
    #[arg(long, global = true, env = "ISC_LEDGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Adds the bearer token to every call.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// HTTP/2 flow-control windows of a [`ClientOpts::ledger_bulk`] client.
const BULK_STREAM_WINDOW: u32 = 8 << 20;
const BULK_CONNECTION_WINDOW: u32 = 16 << 20;

/// A `Ledger` client with the token interceptor.
pub type Client = LedgerClient<InterceptedService<Channel, Bearer>>;

impl ClientOpts {
    fn bearer(&self) -> anyhow::Result<Bearer> {
        Ok(Bearer(match &self.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .context("the token must be printable ASCII")?,
            ),
            None => None,
        }))
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        Channel::from_shared(self.server.clone())
            .with_context(|| format!("bad server URL {:?}", self.server))?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.server))
    }

    /// Connects a `Ledger` client.
    pub async fn ledger(&self) -> anyhow::Result<Client> {
        Ok(LedgerClient::with_interceptor(
            self.channel().await?,
            self.bearer()?,
        ))
    }

    /// Connects a `Ledger` client for long streams (`audit`'s ReadLog):
    /// HTTP/2 windows of several MiB instead of 64 KiB, so the server is
    /// not held up waiting for window updates.
    pub async fn ledger_bulk(&self) -> anyhow::Result<Client> {
        let channel = Channel::from_shared(self.server.clone())
            .with_context(|| format!("bad server URL {:?}", self.server))?
            .initial_stream_window_size(BULK_STREAM_WINDOW)
            .initial_connection_window_size(BULK_CONNECTION_WINDOW)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.server))?;
        Ok(LedgerClient::with_interceptor(channel, self.bearer()?))
    }

    async fn clock(&self) -> anyhow::Result<ClockClient<InterceptedService<Channel, Bearer>>> {
        Ok(ClockClient::with_interceptor(
            self.channel().await?,
            self.bearer()?,
        ))
    }
}

/// Turns a gRPC status into an operator-readable error.
pub(crate) fn rpc_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// `account open|show|close`.
#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    cmd: AccountCmd,
}

#[derive(Debug, Subcommand)]
enum AccountCmd {
    /// Open a new account with balance 0.
    Open {
        /// Account id (1–64 of [A-Za-z0-9._-]).
        account_id: String,
    },
    /// Show balance, state, rates, runtime and PBXs.
    Show {
        /// Account id.
        account_id: String,
        /// Instant (Unix seconds or RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
        /// Wait until the node has applied this seq (a receipt's seq):
        /// read your own write on any node.
        #[arg(long, default_value_t = 0)]
        min_seq: u64,
    },
    /// Close an account, forfeiting its balance (admin).
    Close {
        /// Account id.
        account_id: String,
    },
    /// List accounts, soonest runout first (agent, auditor, admin).
    List {
        /// Only this state: active, suspended, idle or closed.
        #[arg(long, value_name = "S")]
        state: Option<String>,
        /// Only accounts whose credit runs out within this long, e.g. 7d.
        #[arg(long, value_name = "DURATION")]
        runout_within: Option<String>,
        /// Only ids starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Order by id instead of by runout.
        #[arg(long)]
        by_id: bool,
        /// Stop after this many rows (0 = every matching account).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
}

/// `config set`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    cmd: ConfigCmd,
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Replace a PBX's rented licenses (no --license ends the rental).
    Set {
        /// Account id.
        #[arg(long)]
        account: String,
        /// PBX id.
        #[arg(long)]
        pbx: String,
        /// A rented license as TYPE=QTY, e.g. PBX-Port13=120 (repeatable).
        #[arg(long = "license", value_name = "TYPE=QTY")]
        licenses: Vec<String>,
        /// Firmware major version (13 or more for rental).
        #[arg(long, default_value_t = 13)]
        firmware: u32,
        /// gateway or ipva.
        #[arg(long, default_value = "gateway")]
        hosting: String,
    },
}

/// `topup`.
#[derive(Debug, Args)]
pub struct TopupArgs {
    /// Account id.
    #[arg(long)]
    account: String,
    /// Activation key (8–64 printable ASCII characters).
    #[arg(long)]
    key: String,
    /// Amount in iSC, e.g. 120.5.
    #[arg(long)]
    amount: String,
}

/// `prices publish FILE`.
#[derive(Debug, Args)]
pub struct PricesArgs {
    #[command(subcommand)]
    cmd: PricesCmd,
}

#[derive(Debug, Subcommand)]
enum PricesCmd {
    /// Publish a price list from a TOML or JSON file:
    /// `version = 1`, `effective_at = 0` (or RFC 3339),
    /// `[[entries]] license_type = "PBX-Port13"`,
    /// `tiers = [{ from_qty = 1, monthly_price = "1.25" }]`.
    Publish {
        /// The price list file (.json, otherwise TOML).
        file: PathBuf,
        /// License-model catalogue (TOML) to record with the list; default
        /// the built-in V13 catalogue.
        #[arg(long, value_name = "FILE")]
        catalogue: Option<PathBuf>,
    },
    /// Check a price-list file (and catalogue) offline, exactly as the server
    /// would judge it, without publishing.
    Check {
        /// The price list file (.json, otherwise TOML).
        file: PathBuf,
        /// License-model catalogue (TOML); default the built-in one.
        #[arg(long, value_name = "FILE")]
        catalogue: Option<PathBuf>,
    },
}

/// `statement`: offline from the log with `--data`, else from the server.
#[derive(Debug, Args)]
pub struct StatementArgs {
    /// Account id.
    #[arg(long, value_name = "ID")]
    account: String,
    /// Start of the window (exclusive), Unix seconds or RFC 3339.
    #[arg(long, value_name = "T", default_value = "0")]
    from: String,
    /// End of the window (inclusive); default now.
    #[arg(long, value_name = "T")]
    to: Option<String>,
    /// Read the log in this data directory offline instead of asking the
    /// server (the server must not be running on it); `--store URL` reads
    /// it offline from a PostgreSQL database.
    #[arg(long, visible_alias = "store", value_name = "DIR|URL")]
    data: Option<PathBuf>,
    /// Output format; csv is offline only. Default text (json with --json).
    #[arg(long, value_enum)]
    format: Option<super::audit::Format>,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this account (default all).
    #[arg(long)]
    account: Option<String>,
    /// Replay notices due after this instant first.
    #[arg(long, default_value = "0")]
    since: String,
}

/// `compliance`.
#[derive(Debug, Args)]
pub struct ComplianceArgs {
    /// Start of the window (exclusive).
    #[arg(long, default_value = "0")]
    from: String,
    /// End of the window (inclusive); default now.
    #[arg(long)]
    to: Option<String>,
}

/// `clock set|show` (manual-clock servers only).
#[derive(Debug, Args)]
pub struct ClockArgs {
    #[command(subcommand)]
    cmd: ClockCmd,
}

#[derive(Debug, Subcommand)]
enum ClockCmd {
    /// Move the manual clock forward.
    Set {
        /// Unix seconds or RFC 3339.
        at: String,
    },
    /// Read the manual clock.
    Show,
}

pub(crate) fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn print(opts: &ClientOpts, json: Value, text: String) {
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        println!("{text}");
    }
}

/// JSON form of a receipt, with its signed tree head (the receipt format
/// of `check-receipt`, see `cli::proofs`).
pub fn receipt_json(r: &pb::Receipt) -> Value {
    let mut v = json!({"seq": r.seq, "at": r.at});
    if !r.balance.is_empty() {
        v["balance"] = json!(r.balance);
    }
    if let Some(h) = super::proofs::receipt_head(r) {
        v["tree_head"] = h.to_json_value();
    }
    v
}

/// Prints a receipt; with `--json` also fetches the inclusion proof of its
/// record under its head, so the output is a receipt `check-receipt` checks
/// offline.
pub async fn print_receipt(opts: &ClientOpts, r: &pb::Receipt) {
    let mut v = receipt_json(r);
    if opts.json && r.tree_size > 0 {
        match opts.ledger().await {
            Ok(mut c) => super::proofs::add_inclusion(&mut c, r, &mut v).await,
            Err(e) => eprintln!("note: no inclusion proof in this receipt: {e:#}"),
        }
    }
    print(opts, v, receipt_text(r));
}

fn receipt_text(r: &pb::Receipt) -> String {
    let mut s = format!("ok: record #{} at {} ({})", r.seq, fmt_instant(r.at), r.at);
    if !r.balance.is_empty() {
        s.push_str(&format!(", balance {} iSC", r.balance));
    }
    s
}

fn state_name(s: i32) -> &'static str {
    match pb::AccountState::try_from(s) {
        Ok(pb::AccountState::Active) => "ACTIVE",
        Ok(pb::AccountState::Suspended) => "SUSPENDED",
        Ok(pb::AccountState::Idle) => "IDLE",
        Ok(pb::AccountState::Closed) => "CLOSED",
        _ => "UNSPECIFIED",
    }
}

/// JSON form of listing rows.
fn rows_json(rows: &[pb::AccountRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "account_id": r.account_id, "state": state_name(r.state), "balance": r.balance,
                    "monthly_rate": r.monthly_rate, "daily_rate": r.daily_rate,
                    "runtime_seconds": r.runtime_seconds, "runout_at": r.runout_at,
                    "pbx_count": r.pbx_count,
                })
            })
            .collect(),
    )
}

/// Human form of listing rows: one line each.
fn rows_text(rows: &[pb::AccountRow], at: i64) -> String {
    let mut s = format!(
        "{} accounts at {}\n{:<24} {:<10} {:>20} {:>16} {:>14} {:<20} {:>4}\n",
        rows.len(),
        fmt_instant(at),
        "account",
        "state",
        "balance",
        "monthly_rate",
        "runtime",
        "runout",
        "pbxs"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<24} {:<10} {:>20} {:>16} {:>14} {:<20} {:>4}\n",
            r.account_id,
            state_name(r.state),
            r.balance,
            r.monthly_rate,
            r.runtime_seconds.map_or_else(|| "-".into(), fmt_duration),
            r.runout_at.map_or_else(|| "-".into(), fmt_instant),
            r.pbx_count
        ));
    }
    s.pop();
    s
}

/// JSON form of an account view.
pub fn account_json(v: &pb::AccountView) -> Value {
    json!({
        "account_id": v.account_id, "at": v.at, "balance": v.balance, "state": state_name(v.state),
        "monthly_rate": v.monthly_rate, "daily_rate": v.daily_rate,
        "runtime_seconds": v.runtime_seconds, "runout_at": v.runout_at,
        "pbxs": v.pbxs.iter().map(|p| json!({
            "pbx_id": p.pbx_id, "price_list_version": p.price_list_version, "enabled": p.enabled,
            "monthly_cost": p.monthly_cost,
            "licenses": p.licenses.iter().map(|l| json!({
                "license_type": l.license_type, "quantity": l.quantity, "monthly_cost": l.monthly_cost,
                "tiers": l.tiers.iter().map(|t| json!({
                    "from_qty": t.from_qty, "to_qty": t.to_qty, "quantity": t.quantity,
                    "monthly_price": t.monthly_price, "monthly_cost": t.monthly_cost,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Human form of an account view.
pub fn account_text(v: &pb::AccountView) -> String {
    let mut s = format!(
        "account {}  {}  (at {})\n  balance       {} iSC\n  monthly rate  {} iSC/month (daily {} iSC)\n",
        v.account_id,
        state_name(v.state),
        fmt_instant(v.at),
        v.balance,
        v.monthly_rate,
        v.daily_rate
    );
    match (v.runtime_seconds, v.runout_at) {
        (Some(r), Some(at)) => s.push_str(&format!(
            "  runtime       {} (runs out at {})\n",
            fmt_duration(r),
            fmt_instant(at)
        )),
        _ => s.push_str("  runtime       nothing accrues\n"),
    }
    for p in &v.pbxs {
        s.push_str(&format!(
            "  pbx {}  price list v{}  {}  {} iSC/month\n",
            p.pbx_id,
            p.price_list_version,
            if p.enabled { "enabled" } else { "DISABLED" },
            p.monthly_cost,
        ));
        for l in &p.licenses {
            s.push_str(&format!(
                "    {} x {}  {} iSC/month\n",
                l.license_type, l.quantity, l.monthly_cost
            ));
        }
    }
    s.trim_end().to_string()
}

fn line_kind(k: i32) -> &'static str {
    use pb::statement_line::Kind;
    match Kind::try_from(k) {
        Ok(Kind::TopUp) => "TOP_UP",
        Ok(Kind::Accrual) => "ACCRUAL",
        Ok(Kind::Depletion) => "DEPLETION",
        Ok(Kind::Reactivation) => "REACTIVATION",
        Ok(Kind::ConfigChange) => "CONFIG_CHANGE",
        Ok(Kind::Forfeit) => "FORFEIT",
        Ok(Kind::Open) => "OPEN",
        Ok(Kind::Close) => "CLOSE",
        Ok(Kind::Fee) => "FEE",
        Ok(Kind::Plan) => "PLAN",
        Ok(Kind::Grant) => "GRANT",
        _ => "UNSPECIFIED",
    }
}

/// JSON form of a statement.
pub fn statement_json(st: &pb::Statement) -> Value {
    json!({
        "account_id": st.account_id, "from": st.from, "to": st.to,
        "opening_balance": st.opening_balance, "closing_balance": st.closing_balance,
        "lines": st.lines.iter().map(|l| {
            let mut v = json!({"at": l.at, "kind": line_kind(l.kind), "amount": l.amount, "balance_after": l.balance_after});
            if line_kind(l.kind) == "ACCRUAL" {
                v["from"] = json!(l.from); v["to"] = json!(l.to);
                v["seconds"] = json!(l.seconds); v["monthly_rate"] = json!(l.monthly_rate);
            }
            if !l.pbx_id.is_empty() { v["pbx_id"] = json!(l.pbx_id); }
            if !l.activation_key.is_empty() { v["activation_key"] = json!(l.activation_key); }
            if !l.device_id.is_empty() { v["device_id"] = json!(l.device_id); }
            if !l.plan.is_empty() { v["plan"] = json!(l.plan); }
            if !l.incident_id.is_empty() { v["incident_id"] = json!(l.incident_id); }
            v
        }).collect::<Vec<_>>(),
    })
}

/// Human form of a statement.
pub fn statement_text(st: &pb::Statement) -> String {
    let mut s = format!(
        "statement {}  ({} .. {}]\n  opening balance {:>24}\n",
        st.account_id,
        fmt_instant(st.from),
        fmt_instant(st.to),
        st.opening_balance
    );
    for l in &st.lines {
        let detail = match line_kind(l.kind) {
            "ACCRUAL" => format!(
                "{}s at {} iSC/month from {}",
                l.seconds,
                l.monthly_rate,
                fmt_instant(l.from)
            ),
            "CONFIG_CHANGE" => format!("pbx {}", l.pbx_id),
            "TOP_UP" => format!("key {}", l.activation_key),
            "FEE" => format!("device {}", l.device_id),
            "PLAN" => format!("pbx {} plan {}", l.pbx_id, l.plan),
            "GRANT" => format!("service credit, incident {}", l.incident_id),
            _ => String::new(),
        };
        s.push_str(&format!(
            "  {}  {:<13} {:>20} {:>24}  {}\n",
            fmt_instant(l.at),
            line_kind(l.kind),
            l.amount,
            l.balance_after,
            detail
        ));
    }
    s.push_str(&format!("  closing balance {:>24}", st.closing_balance));
    s
}

fn notice_kind(k: i32) -> &'static str {
    use pb::notice::Kind;
    match Kind::try_from(k) {
        Ok(Kind::Reminder) => "REMINDER",
        Ok(Kind::Depletion) => "DEPLETION",
        Ok(Kind::Reactivation) => "REACTIVATION",
        Ok(Kind::MaintenanceExpiring) => "MAINTENANCE_EXPIRING",
        Ok(Kind::SlaDeadline) => "SLA_DEADLINE",
        Ok(Kind::SlaBreach) => "SLA_BREACH",
        _ => "UNSPECIFIED",
    }
}

/// JSON form of a notice.
pub fn notice_json(n: &pb::Notice) -> Value {
    let mut v = json!({"account_id": n.account_id, "at": n.at, "kind": notice_kind(n.kind)});
    if n.threshold_seconds != 0 {
        v["threshold_seconds"] = json!(n.threshold_seconds);
    }
    if !n.pbx_id.is_empty() {
        v["pbx_id"] = json!(n.pbx_id);
    }
    if !n.incident_id.is_empty() {
        v["incident_id"] = json!(n.incident_id);
        v["kpi"] = json!(super::sla::kpi_label(n.kpi));
        v["occurrence"] = json!(n.occurrence);
        v["deadline"] = json!(n.deadline);
        v["priority"] = json!(n.priority);
    }
    v
}

fn notice_text(n: &pb::Notice) -> String {
    let what = match notice_kind(n.kind) {
        "REMINDER" => format!(
            "reminder: {} of runtime left",
            fmt_duration(n.threshold_seconds)
        ),
        "DEPLETION" => "credit used up: every license disabled".into(),
        "REACTIVATION" => "reactivated by a top-up".into(),
        "MAINTENANCE_EXPIRING" => format!(
            "maintenance of PBX {} ends in {}",
            n.pbx_id,
            fmt_duration(n.threshold_seconds)
        ),
        "SLA_DEADLINE" => format!(
            "incident {} (P{}): {} due at {}, one support hour left",
            n.incident_id,
            n.priority,
            super::sla::kpi_label(n.kpi),
            fmt_instant(n.deadline)
        ),
        "SLA_BREACH" => format!(
            "incident {} (P{}): {} deadline {} missed",
            n.incident_id,
            n.priority,
            super::sla::kpi_label(n.kpi),
            fmt_instant(n.deadline)
        ),
        other => other.to_string(),
    };
    format!("{}  {}  {}", fmt_instant(n.at), n.account_id, what)
}

fn parse_license(s: &str) -> anyhow::Result<pb::LicenseLine> {
    let (t, q) = s
        .rsplit_once('=')
        .with_context(|| format!("--license {s:?} must read TYPE=QTY"))?;
    Ok(pb::LicenseLine {
        license_type: t.to_string(),
        quantity: q
            .parse()
            .with_context(|| format!("quantity in {s:?} is not a whole number"))?,
    })
}

/// Reads a TOML or JSON price-list file (the format `prices check` owns)
/// into the request.
pub fn read_price_file(path: &std::path::Path) -> anyhow::Result<pb::PublishPriceListRequest> {
    use super::prices_check::{parse_price_list, parse_price_list_json, Instant};
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = if path.extension().is_some_and(|e| e == "json") {
        parse_price_list_json(&text)
    } else {
        parse_price_list(&text)
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (devices, maintenance, service_credits) =
        crate::api::convert::price_list_ext_to_pb(file.ext_input());
    Ok(pb::PublishPriceListRequest {
        version: file.version,
        effective_at: match &file.effective_at {
            None => 0,
            Some(Instant::Unix(n)) => *n,
            Some(Instant::Text(s)) => parse_instant(s)?,
        },
        entries: file
            .entries_input()
            .into_iter()
            .map(|e| pb::PriceEntry {
                license_type: e.license_type,
                tiers: e
                    .tiers
                    .into_iter()
                    .map(|t| pb::Tier {
                        from_qty: t.from_qty,
                        monthly_price: t.monthly_price,
                    })
                    .collect(),
            })
            .collect(),
        catalogue_toml: String::new(),
        devices,
        maintenance,
        service_credits,
    })
}

/// `isc-ledger account ...`
pub async fn account(opts: &ClientOpts, a: AccountArgs) -> anyhow::Result<()> {
    let mut c = opts.ledger().await?;
    match a.cmd {
        AccountCmd::Open { account_id } => {
            let r = c
                .open_account(pb::OpenAccountRequest { account_id })
                .await
                .map_err(rpc_err)?
                .into_inner();
            print_receipt(opts, &r).await;
        }
        AccountCmd::Close { account_id } => {
            let r = c
                .close_account(pb::CloseAccountRequest { account_id })
                .await
                .map_err(rpc_err)?
                .into_inner();
            print_receipt(opts, &r).await;
        }
        AccountCmd::List {
            state,
            runout_within,
            prefix,
            by_id,
            limit,
        } => {
            let state = match state.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => pb::AccountState::Unspecified,
                Some("active") => pb::AccountState::Active,
                Some("suspended") => pb::AccountState::Suspended,
                Some("idle") => pb::AccountState::Idle,
                Some("closed") => pb::AccountState::Closed,
                Some(other) => {
                    bail!("--state {other:?}: expected active, suspended, idle or closed")
                }
            };
            let within = runout_within
                .as_deref()
                .map(super::parse_duration_s)
                .transpose()
                .context("--runout-within")?;
            let mut req = pb::ListAccountsRequest {
                state: state as i32,
                runout_within_seconds: within.unwrap_or(0),
                id_prefix: prefix,
                order: if by_id {
                    pb::list_accounts_request::Order::Id
                } else {
                    pb::list_accounts_request::Order::Runout
                } as i32,
                page_size: 1000,
                ..Default::default()
            };
            let mut rows = Vec::new();
            let mut at = 0;
            loop {
                let page = c
                    .list_accounts(req.clone())
                    .await
                    .map_err(rpc_err)?
                    .into_inner();
                at = if at == 0 { page.at } else { at };
                rows.extend(page.accounts);
                if limit > 0 && rows.len() >= limit {
                    rows.truncate(limit);
                    break;
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                req.page_token = page.next_page_token;
            }
            print(opts, rows_json(&rows), rows_text(&rows, at));
        }
        AccountCmd::Show {
            account_id,
            at,
            min_seq,
        } => {
            let at = at.as_deref().map(parse_instant).transpose()?.unwrap_or(0);
            let v = c
                .get_account(pb::GetAccountRequest {
                    account_id,
                    at,
                    min_seq,
                })
                .await
                .map_err(rpc_err)?
                .into_inner();
            print(opts, account_json(&v), account_text(&v));
        }
    }
    Ok(())
}

/// `isc-ledger config set ...`
pub async fn config(opts: &ClientOpts, a: ConfigArgs) -> anyhow::Result<()> {
    let ConfigCmd::Set {
        account,
        pbx,
        licenses,
        firmware,
        hosting,
    } = a.cmd;
    let hosting = match hosting.to_ascii_lowercase().as_str() {
        "gateway" => pb::Hosting::Gateway,
        "ipva" => pb::Hosting::Ipva,
        other => bail!("--hosting {other:?}: expected gateway or ipva"),
    };
    let licenses = licenses
        .iter()
        .map(|s| parse_license(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let r = opts
        .ledger()
        .await?
        .change_config(pb::ChangeConfigRequest {
            account_id: account,
            pbx_id: pbx,
            licenses,
            firmware_major: firmware,
            hosting: hosting as i32,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    print_receipt(opts, &r).await;
    Ok(())
}

/// `isc-ledger topup ...`
pub async fn topup(opts: &ClientOpts, a: TopupArgs) -> anyhow::Result<()> {
    let r = opts
        .ledger()
        .await?
        .top_up(pb::TopUpRequest {
            account_id: a.account,
            activation_key: a.key,
            amount: a.amount,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    print_receipt(opts, &r).await;
    Ok(())
}

/// `isc-ledger prices publish FILE`
pub async fn prices(opts: &ClientOpts, a: PricesArgs) -> anyhow::Result<()> {
    let (file, catalogue) = match a.cmd {
        PricesCmd::Check { file, catalogue } => {
            let report = super::prices_check::check_price_list_file(&file, catalogue.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("{report}");
            return Ok(());
        }
        PricesCmd::Publish { file, catalogue } => (file, catalogue),
    };
    let mut req = read_price_file(&file)?;
    if let Some(c) = catalogue {
        req.catalogue_toml =
            std::fs::read_to_string(&c).with_context(|| format!("cannot read {}", c.display()))?;
    }
    let r = opts
        .ledger()
        .await?
        .publish_price_list(req)
        .await
        .map_err(rpc_err)?
        .into_inner();
    print_receipt(opts, &r).await;
    Ok(())
}

/// `isc-ledger statement --account ...`: offline with `--data`, else
/// against the server.
pub async fn statement(opts: &ClientOpts, a: StatementArgs) -> anyhow::Result<()> {
    use super::audit::{self, Format};
    let to = match &a.to {
        Some(t) => parse_instant(t)?,
        None => now_s(),
    };
    let format = a.format.unwrap_or(if opts.json {
        Format::Json
    } else {
        Format::Text
    });
    if let Some(data) = a.data {
        let args = audit::StatementArgs {
            data: audit::DataArg { data },
            account: a.account,
            from: parse_instant(&a.from)?,
            to,
            format,
        };
        return tokio::task::spawn_blocking(move || {
            audit::statement_cmd(&args, &mut std::io::stdout().lock())
        })
        .await?;
    }
    if format == Format::Csv {
        bail!("--format csv is available offline only (with --data DIR)");
    }
    let st = opts
        .ledger()
        .await?
        .get_statement(pb::GetStatementRequest {
            account_id: a.account,
            from: parse_instant(&a.from)?,
            to,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&statement_json(&st))?);
    } else {
        println!("{}", statement_text(&st));
    }
    Ok(())
}

/// `isc-ledger watch`: prints notices until interrupted.
pub async fn watch(opts: &ClientOpts, a: WatchArgs) -> anyhow::Result<()> {
    let mut stream = opts
        .ledger()
        .await?
        .watch(pb::WatchRequest {
            account_id: a.account.unwrap_or_default(),
            since: parse_instant(&a.since)?,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    while let Some(n) = stream.message().await.map_err(rpc_err)? {
        if opts.json {
            println!("{}", notice_json(&n));
        } else {
            println!("{}", notice_text(&n));
        }
    }
    Ok(())
}

/// `isc-ledger compliance`.
pub async fn compliance(opts: &ClientOpts, a: ComplianceArgs) -> anyhow::Result<()> {
    let to = match a.to {
        Some(t) => parse_instant(&t)?,
        None => now_s(),
    };
    let rep = opts
        .ledger()
        .await?
        .get_compliance_report(pb::GetComplianceReportRequest {
            from: parse_instant(&a.from)?,
            to,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    let json = json!({
        "from": rep.from, "to": rep.to,
        "entries": rep.entries.iter().map(|e| json!({
            "account_id": e.account_id, "pbx_id": e.pbx_id,
            "cycles": e.cycles.iter().map(|c| json!({"lowered_at": c.lowered_at, "raised_at": c.raised_at})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut text = format!(
        "continuous-use report ({} .. {}]: {} PBX(s) flagged",
        fmt_instant(rep.from),
        fmt_instant(rep.to),
        rep.entries.len()
    );
    for e in &rep.entries {
        text.push_str(&format!("\n  account {} pbx {}", e.account_id, e.pbx_id));
        for c in &e.cycles {
            text.push_str(&format!(
                "\n    lowered {}  raised {}",
                fmt_instant(c.lowered_at),
                fmt_instant(c.raised_at)
            ));
        }
    }
    print(opts, json, text);
    Ok(())
}

/// `isc-ledger clock set|show`.
pub async fn clock(opts: &ClientOpts, a: ClockArgs) -> anyhow::Result<()> {
    let mut c = opts.clock().await?;
    let t = match a.cmd {
        ClockCmd::Set { at } => {
            c.set_time(pb::SetTimeRequest {
                unix_seconds: parse_instant(&at)?,
            })
            .await
        }
        ClockCmd::Show => c.get_time(pb::GetTimeRequest {}).await,
    }
    .map_err(rpc_err)?
    .into_inner()
    .unix_seconds;
    print(
        opts,
        json!({"unix_seconds": t}),
        format!("clock: {} ({t})", fmt_instant(t)),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_file_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(
            &p,
            "version = 2\neffective_at = \"2026-01-01T00:00:00Z\"\n[[entries]]\nlicense_type = \"PBX-Port13\"\ntiers = [{ from_qty = 1, monthly_price = \"1.25\" }, { from_qty = 501, monthly_price = \"1\" }]\n",
        )
        .unwrap();
        let r = read_price_file(&p).unwrap();
        assert_eq!(r.version, 2);
        assert_eq!(r.effective_at, 1_767_225_600);
        assert_eq!(r.entries[0].tiers[1].from_qty, 501);
        let j = dir.path().join("p.json");
        std::fs::write(&j, r#"{"version":1,"entries":[{"license_type":"X","tiers":[{"from_qty":1,"monthly_price":"2"}]}]}"#).unwrap();
        assert_eq!(read_price_file(&j).unwrap().entries[0].license_type, "X");
        let bad = dir.path().join("b.toml");
        std::fs::write(&bad, "version = 1\n[[entries]]\nlicense_type = \"X\"\ntiers = [{ from_qty = 1, monthly_price = 1.5 }]\n").unwrap();
        assert!(read_price_file(&bad).is_err(), "float prices are refused");
    }

    #[test]
    fn license_args() {
        let l = parse_license("App(phone)13=5").unwrap();
        assert_eq!((l.license_type.as_str(), l.quantity), ("App(phone)13", 5));
        assert!(parse_license("PBX-Port13").is_err());
    }
}
