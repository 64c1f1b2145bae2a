//! What the ledger reports (spec §8, §12): account views at an instant,
//! statements that reconcile to the nano, notice history and the
//! continuous-use compliance report. All derived, never stored.

use super::account::{Account, Cycle, Observer, PriceBook, Segment};
use super::error::Rejection;
use super::event::{Event, EventBody, Notice, NoticeKind};
use super::ids::check_id;
use super::ledger::fold_account_events;
use super::ledger::Ledger;
use super::money::{
    div_round_half_even, Nano, UnixSeconds, MAX_REPORTED_INSTANT, SECONDS_PER_DAY,
    SECONDS_PER_MONTH,
};
use super::prices::{tier_breakdown, TierUse};
use serde::{Deserialize, Serialize};

/// Account state, by precedence `Closed > Suspended > Idle > Active` (spec §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountState {
    Active,
    Suspended,
    Idle,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseView {
    pub license_type: String,
    pub quantity: u32,
    pub monthly_cost: Nano,
    /// The tier breakdown: units per bracket and their unit price.
    pub tiers: Vec<TierUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbxView {
    pub pbx_id: String,
    pub price_list_version: Option<u32>,
    pub enabled: bool,
    pub monthly_cost: Nano,
    pub licenses: Vec<LicenseView>,
    /// License-model warnings of the PBX's configuration (seed 003).
    pub warnings: Vec<String>,
}

/// The §8 view of an account at instant `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account_id: String,
    pub at: UnixSeconds,
    pub balance: Nano,
    pub state: AccountState,
    /// The enabled rate (0 while suspended or closed).
    pub monthly_rate: Nano,
    pub daily_rate: Nano,
    /// Absent when nothing accrues or the runout is after 9999-12-31.
    pub runtime_seconds: Option<i64>,
    pub runout_at: Option<UnixSeconds>,
    pub pbxs: Vec<PbxView>,
}

/// One account's headline at an instant: what a listing row shows (the
/// view without its PBXs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSummary {
    pub account_id: String,
    pub at: UnixSeconds,
    pub balance: Nano,
    pub state: AccountState,
    /// The enabled rate (0 while suspended or closed).
    pub monthly_rate: Nano,
    pub daily_rate: Nano,
    /// Absent when nothing accrues or the runout is after 9999-12-31.
    pub runtime_seconds: Option<i64>,
    pub runout_at: Option<UnixSeconds>,
    /// PBXs bound to the account.
    pub pbx_count: u32,
}

/// The state of `account` at `t >= account.since` (spec §11 precedence).
pub fn state_of(account: &Account, t: UnixSeconds) -> AccountState {
    if account.is_closed() {
        AccountState::Closed
    } else if account.suspended_at(t) {
        AccountState::Suspended
    } else if account.pbxs.iter().all(|p| p.licenses.is_empty()) {
        AccountState::Idle
    } else {
        AccountState::Active
    }
}

/// The summary of `account` at `t >= account.since`, assuming no further events.
pub fn summary_of(account: &Account, t: UnixSeconds) -> AccountSummary {
    let state = state_of(account, t);
    let monthly_rate = match state {
        AccountState::Closed | AccountState::Suspended => Nano::ZERO,
        _ => account.configured_rate,
    };
    let daily_rate = Nano(div_round_half_even(
        monthly_rate.0 * i128::from(SECONDS_PER_DAY),
        i128::from(SECONDS_PER_MONTH),
    ));
    let runout = account
        .runout()
        .filter(|t_zero| *t_zero > t && *t_zero <= MAX_REPORTED_INSTANT);
    AccountSummary {
        account_id: account.account_id.to_string(),
        at: t,
        balance: if state == AccountState::Closed {
            Nano::ZERO
        } else {
            account.balance_at(t)
        },
        state,
        monthly_rate,
        daily_rate,
        runtime_seconds: runout.map(|t_zero| t_zero - t),
        runout_at: runout,
        pbx_count: u32::try_from(account.pbxs.len()).unwrap_or(u32::MAX),
    }
}

/// The view of `account` at `t >= account.since`, assuming no further events.
pub fn view_of(account: &Account, prices: &PriceBook, t: UnixSeconds) -> AccountView {
    let s = summary_of(account, t);
    let enabled = !matches!(s.state, AccountState::Closed | AccountState::Suspended);
    let pbxs = account
        .pbxs
        .iter()
        .map(|pbx| {
            let list = pbx.price_version.and_then(|v| prices.get(&v));
            PbxView {
                pbx_id: pbx.pbx_id.to_string(),
                price_list_version: pbx.price_version,
                enabled,
                monthly_cost: pbx.monthly_cost,
                licenses: pbx
                    .licenses
                    .iter()
                    .map(|line| {
                        let name = prices.type_name(line.ty);
                        let tiers = list
                            .and_then(|l| l.entries.get(name))
                            .map(|tiers| tier_breakdown(tiers, line.quantity))
                            .unwrap_or_default();
                        LicenseView {
                            license_type: name.to_owned(),
                            quantity: line.quantity,
                            monthly_cost: Nano(tiers.iter().map(|t| t.cost.0).sum()),
                            tiers,
                        }
                    })
                    .collect(),
                warnings: pbx.warnings.clone(),
            }
        })
        .collect();
    AccountView {
        account_id: s.account_id,
        at: t,
        balance: s.balance,
        state: s.state,
        monthly_rate: s.monthly_rate,
        daily_rate: s.daily_rate,
        runtime_seconds: s.runtime_seconds,
        runout_at: s.runout_at,
        pbxs,
    }
}

fn not_opened(account_id: &str, t: UnixSeconds) -> Rejection {
    Rejection::not_found(format!("account {account_id} does not exist at {t}"))
}

impl Ledger {
    /// The view at `t` from the live state. Valid for `t` at or after the
    /// account's last event; earlier instants need its history
    /// ([`account_view_at`]), and this says so with `FailedPrecondition`.
    pub fn account_view(&self, account_id: &str, t: UnixSeconds) -> Result<AccountView, Rejection> {
        check_id("account id", account_id)?;
        let account = self
            .account(account_id)
            .ok_or_else(|| not_opened(account_id, t))?;
        if t < account.opened_at {
            return Err(not_opened(account_id, t));
        }
        if t < account.since {
            return Err(Rejection::precondition(format!(
                "the view of {account_id} at {t} needs its history (last event at {})",
                account.since
            )));
        }
        Ok(view_of(account, self.prices(), t))
    }

    /// Whether a view of `account_id` at `t` needs the account's history.
    pub fn needs_history(&self, account_id: &str, t: UnixSeconds) -> bool {
        self.account(account_id).is_some_and(|a| t < a.since)
    }
}

/// The view at any `t`, from the account's own events (spec §11: a past `t`
/// includes the events with `at <= t`; a future one projects).
pub fn account_view_at(
    ledger: &Ledger,
    events: &[Event],
    account_id: &str,
    t: UnixSeconds,
) -> Result<AccountView, Rejection> {
    check_id("account id", account_id)?;
    let account = fold_account_events(ledger, events, account_id, t, &mut super::account::Quiet)
        .map_err(|e| {
            Rejection::precondition(format!("the log of {account_id} is inconsistent: {e}"))
        })?
        .ok_or_else(|| not_opened(account_id, t))?;
    Ok(view_of(&account, ledger.prices(), t))
}

/// Kinds of statement lines (spec §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineKind {
    TopUp,
    Accrual,
    Depletion,
    Reactivation,
    ConfigChange,
    Forfeit,
    Open,
    Close,
    /// A one-time provisioning fee (spec §14).
    Fee,
    /// A maintenance plan bought (spec §15).
    Plan,
    /// A service credit granted for an SLA breach (spec §16): credit like a
    /// top-up, kept apart from paid ones.
    Grant,
}

impl LineKind {
    /// The §10 name: `TOP_UP`, `CONFIG_CHANGE`, …
    pub fn name(self) -> &'static str {
        match self {
            LineKind::TopUp => "TOP_UP",
            LineKind::Accrual => "ACCRUAL",
            LineKind::Depletion => "DEPLETION",
            LineKind::Reactivation => "REACTIVATION",
            LineKind::ConfigChange => "CONFIG_CHANGE",
            LineKind::Forfeit => "FORFEIT",
            LineKind::Open => "OPEN",
            LineKind::Close => "CLOSE",
            LineKind::Fee => "FEE",
            LineKind::Plan => "PLAN",
            LineKind::Grant => "GRANT",
        }
    }
}

/// The interval of an accrual line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccrualSpan {
    pub from: UnixSeconds,
    pub to: UnixSeconds,
    pub seconds: i64,
    pub monthly_rate: Nano,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub at: UnixSeconds,
    pub kind: LineKind,
    /// Signed: a debit is negative.
    pub amount: Nano,
    pub balance_after: Nano,
    pub accrual: Option<AccrualSpan>,
    /// The PBX of a configuration change.
    pub pbx_id: Option<String>,
    /// The key of a top-up.
    pub activation_key: Option<String>,
    /// The device of a `FEE` line (absent from JSON otherwise, so older
    /// readers see the lines they knew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The plan of a `PLAN` line (its PBX is `pbx_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The incident of a `GRANT` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
}

/// A statement over `(from, to]` (spec §8, §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub account_id: String,
    pub from: UnixSeconds,
    pub to: UnixSeconds,
    pub opening_balance: Nano,
    pub closing_balance: Nano,
    pub lines: Vec<StatementLine>,
}

impl Statement {
    /// One-time charges (positive) within the window: `FEE` and `PLAN`
    /// lines, so `top-ups − debits − fees − forfeited = closing − opening`.
    pub fn fees(&self) -> Nano {
        Nano(
            -self
                .lines
                .iter()
                .filter(|l| matches!(l.kind, LineKind::Fee | LineKind::Plan))
                .map(|l| l.amount.0)
                .sum::<i128>(),
        )
    }

    /// `top-ups`, `debits` (positive) and `forfeited` within the window.
    pub fn totals(&self) -> (Nano, Nano, Nano) {
        let sum = |kind: LineKind| {
            Nano(
                self.lines
                    .iter()
                    .filter(|l| l.kind == kind)
                    .map(|l| l.amount.0)
                    .sum(),
            )
        };
        (
            sum(LineKind::TopUp),
            Nano(-sum(LineKind::Accrual).0),
            Nano(-sum(LineKind::Forfeit).0),
        )
    }
}

/// Builds lines from the timeline, clipped to `(from, to]`.
struct Lines {
    from: UnixSeconds,
    to: UnixSeconds,
    lines: Vec<StatementLine>,
    after_event: Vec<StatementLine>,
}

impl Lines {
    fn inside(&self, at: UnixSeconds) -> bool {
        at > self.from && at <= self.to
    }
    fn line(at: UnixSeconds, kind: LineKind, amount: Nano) -> StatementLine {
        StatementLine {
            at,
            kind,
            amount,
            balance_after: Nano::ZERO,
            accrual: None,
            pbx_id: None,
            activation_key: None,
            device_id: None,
            plan: None,
            incident_id: None,
        }
    }
}

impl Observer for Lines {
    fn accrual(&mut self, segment: &Segment, to: UnixSeconds, _debit: Nano) {
        let lo = segment.from.max(self.from);
        let hi = to.min(self.to);
        if hi <= lo {
            return;
        }
        let debit = segment.debit_to(hi).0 - segment.debit_to(lo).0;
        let mut line = Lines::line(hi, LineKind::Accrual, Nano(-debit));
        line.accrual = Some(AccrualSpan {
            from: lo,
            to: hi,
            seconds: hi - lo,
            monthly_rate: segment.monthly_rate,
        });
        self.lines.push(line);
    }

    fn notice(
        &mut self,
        kind: NoticeKind,
        at: UnixSeconds,
        _threshold_s: Option<i64>,
        at_event: bool,
    ) {
        let kind = match kind {
            NoticeKind::Reminder
            | NoticeKind::MaintenanceExpiring
            | NoticeKind::SlaDeadline
            | NoticeKind::SlaBreach => return,
            NoticeKind::Depletion => LineKind::Depletion,
            NoticeKind::Reactivation => LineKind::Reactivation,
        };
        if self.inside(at) {
            let line = Lines::line(at, kind, Nano::ZERO);
            if at_event {
                self.after_event.push(line);
            } else {
                self.lines.push(line);
            }
        }
    }
}

/// A statement as CSV, one row per line under a header: the one format of
/// `statement --format csv` and the console's download.
pub fn statement_csv(st: &Statement) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "at,kind,amount,balance_after,from,to,seconds,monthly_rate,pbx_id,activation_key,device_id,plan\n",
    );
    for l in &st.lines {
        let (from, to, secs, rate) = match &l.accrual {
            Some(a) => (
                a.from.to_string(),
                a.to.to_string(),
                a.seconds.to_string(),
                a.monthly_rate.to_string(),
            ),
            None => Default::default(),
        };
        // Ids and keys are in `[A-Za-z0-9._-]` and `0x21..=0x7E`: a key with
        // a comma or a quote is quoted so every row keeps twelve fields.
        let _ = writeln!(
            out,
            "{},{},{},{},{from},{to},{secs},{rate},{},{},{},{}",
            l.at,
            l.kind.name(),
            l.amount,
            l.balance_after,
            csv_field(l.pbx_id.as_deref().unwrap_or("")),
            csv_field(l.activation_key.as_deref().unwrap_or("")),
            l.device_id.as_deref().unwrap_or(""),
            l.plan.as_deref().unwrap_or("")
        );
    }
    out
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// The statement of `account_id` over `(from, to]` from its own events.
pub fn statement(
    ledger: &Ledger,
    events: &[Event],
    account_id: &str,
    from: UnixSeconds,
    to: UnixSeconds,
) -> Result<Statement, Rejection> {
    check_id("account id", account_id)?;
    check_window("statement", from, to)?;
    let inconsistent = |e: super::account::ApplyError| {
        Rejection::precondition(format!("the log of {account_id} is inconsistent: {e}"))
    };
    let opening_balance =
        match fold_account_events(ledger, events, account_id, from, &mut super::account::Quiet)
            .map_err(inconsistent)?
        {
            Some(account) => account.balance_at(from),
            None => Nano::ZERO,
        };
    let mut lines = Lines {
        from,
        to,
        lines: Vec::new(),
        after_event: Vec::new(),
    };
    let mut account: Option<Account> = None;
    for ev in events.iter().filter(|e| e.account_id() == Some(account_id)) {
        if ev.at > to {
            break;
        }
        match (&mut account, &ev.body) {
            (None, EventBody::AccountOpened { .. }) => {
                account = Some(Account::open(account_id, ev.at))
            }
            (Some(acc), body) => acc
                .apply(ev.at, body, ledger.prices(), ledger.policy(), &mut lines)
                .map_err(inconsistent)?,
            (None, _) => {
                return Err(inconsistent(super::account::ApplyError(
                    "events before opening".into(),
                )))
            }
        }
        if lines.inside(ev.at) {
            match &ev.body {
                EventBody::AccountOpened { .. } => {
                    lines
                        .lines
                        .push(Lines::line(ev.at, LineKind::Open, Nano::ZERO))
                }
                EventBody::ConfigChanged { pbx_id, .. } => {
                    let mut line = Lines::line(ev.at, LineKind::ConfigChange, Nano::ZERO);
                    line.pbx_id = Some(pbx_id.to_string());
                    lines.lines.push(line);
                }
                EventBody::ToppedUp {
                    amount,
                    activation_key,
                    ..
                } => {
                    let mut line = Lines::line(ev.at, LineKind::TopUp, *amount);
                    line.activation_key = Some(activation_key.to_string());
                    lines.lines.push(line);
                }
                EventBody::AccountClosed { forfeited, .. } => {
                    lines
                        .lines
                        .push(Lines::line(ev.at, LineKind::Forfeit, Nano(-forfeited.0)));
                    lines
                        .lines
                        .push(Lines::line(ev.at, LineKind::Close, Nano::ZERO));
                }
                EventBody::DeviceRegistered {
                    device_id,
                    fee: Some(fee),
                    ..
                } => {
                    let mut line = Lines::line(ev.at, LineKind::Fee, Nano(-fee.0));
                    line.device_id = Some(device_id.to_string());
                    lines.lines.push(line);
                }
                EventBody::PlanBought {
                    pbx_id,
                    plan,
                    price,
                    ..
                } => {
                    let mut line = Lines::line(ev.at, LineKind::Plan, Nano(-price.0));
                    line.pbx_id = Some(pbx_id.to_string());
                    line.plan = Some(plan.to_string());
                    lines.lines.push(line);
                }
                EventBody::ServiceCreditGranted {
                    amount,
                    incident_id,
                    ..
                } => {
                    let mut line = Lines::line(ev.at, LineKind::Grant, *amount);
                    line.incident_id = Some(incident_id.to_string());
                    lines.lines.push(line);
                }
                // Not money: no statement line (ListDevices, GetMaintenance show them).
                EventBody::DeviceRegistered { .. }
                | EventBody::DeviceStatusSet { .. }
                | EventBody::PbxRegistered { .. }
                | EventBody::FirmwareUpgraded { .. }
                | EventBody::PriceListPublished(_)
                | EventBody::PriceListPublishedExt { .. }
                | EventBody::SupportCalendarSet { .. }
                | EventBody::IncidentReported { .. }
                | EventBody::IncidentResponded { .. }
                | EventBody::IncidentUpdated { .. }
                | EventBody::IncidentResolved { .. }
                | EventBody::IncidentPriorityChanged { .. } => {}
            }
        }
        let after = std::mem::take(&mut lines.after_event);
        lines.lines.extend(after);
    }
    let Some(mut account) = account else {
        return Err(not_opened(account_id, to));
    };
    // The open segment up to `to` is a read, not a breakpoint: project it.
    let closing_balance = account.balance_at(to.max(account.since));
    account.advance(to, ledger.policy(), &mut lines);
    let mut running = opening_balance;
    for line in &mut lines.lines {
        running = Nano(running.0 + line.amount.0);
        line.balance_after = running;
    }
    debug_assert_eq!(
        running, closing_balance,
        "statement of {account_id} does not reconcile"
    );
    if running != closing_balance {
        return Err(Rejection::precondition(format!(
            "statement of {account_id} does not reconcile ({running} vs {closing_balance}): please report this defect"
        )));
    }
    Ok(Statement {
        account_id: account_id.to_owned(),
        from,
        to,
        opening_balance,
        closing_balance,
        lines: lines.lines,
    })
}

/// Collects every notice of an account's timeline inside `(t1, t2]`.
struct NoticeLog<'a> {
    account_id: &'a str,
    t1: UnixSeconds,
    t2: UnixSeconds,
    out: Vec<Notice>,
}

impl Observer for NoticeLog<'_> {
    fn notice(
        &mut self,
        kind: NoticeKind,
        at: UnixSeconds,
        threshold_s: Option<i64>,
        _at_event: bool,
    ) {
        if at > self.t1 && at <= self.t2 {
            self.out.push(Notice {
                account_id: self.account_id.to_owned(),
                at,
                kind,
                threshold_s,
                pbx_id: None,
                sla: None,
            });
        }
    }
}

/// Every notice of `account_id` due in `(t1, t2]`, derived from its events
/// (spec §12: from the log, never from when a watcher was told). Closed
/// accounts stop producing notices at their closure.
pub fn notices_history(
    ledger: &Ledger,
    events: &[Event],
    account_id: &str,
    t1: UnixSeconds,
    t2: UnixSeconds,
) -> Vec<Notice> {
    let mut log = NoticeLog {
        account_id,
        t1,
        t2,
        out: Vec::new(),
    };
    let Ok(Some(account)) = fold_account_events(ledger, events, account_id, t2, &mut log) else {
        return log.out;
    };
    let mut pending = Vec::new();
    account.pending_notices(ledger.policy(), t1, t2, &mut pending);
    log.out
        .extend(pending.into_iter().map(|(kind, at, threshold_s)| Notice {
            account_id: account_id.to_owned(),
            at,
            kind,
            threshold_s,
            pbx_id: None,
            sla: None,
        }));
    log.out.extend(super::maintenance::expiring_history(
        events, account_id, t1, t2,
    ));
    ledger
        .sla()
        .notices_between(Some(account_id), t1, t2, false, &mut log.out);
    log.out.sort_by_key(|n| n.at);
    log.out
}

/// One flagged PBX of the continuous-use report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceEntry {
    pub account_id: String,
    pub pbx_id: String,
    pub cycles: Vec<Cycle>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    pub from: UnixSeconds,
    pub to: UnixSeconds,
    pub entries: Vec<ComplianceEntry>,
}

impl Ledger {
    /// PBXs switched down and back up too often over `(from, to]` (spec §12):
    /// `cycles` cycles inside `window_s`, first lowering to last raise.
    /// Cycles are derived from events only, so the report at `to` depends on
    /// events up to `to` alone.
    pub fn compliance_report(&self, from: UnixSeconds, to: UnixSeconds) -> ComplianceReport {
        let rule = &self.policy().compliance;
        let mut entries = Vec::new();
        for account_id in self.account_ids() {
            let Some(account) = self.account(account_id) else {
                continue;
            };
            for pbx in &account.pbxs {
                let cycles: Vec<Cycle> = pbx
                    .cycles
                    .iter()
                    .copied()
                    .filter(|c| c.lowered_at > from && c.raised_at <= to)
                    .collect();
                let flagged = rule.cycles > 0
                    && cycles.len() >= rule.cycles
                    && cycles
                        .windows(rule.cycles)
                        .any(|w| w[rule.cycles - 1].raised_at - w[0].lowered_at <= rule.window_s);
                if flagged {
                    entries.push(ComplianceEntry {
                        account_id: account_id.to_owned(),
                        pbx_id: pbx.pbx_id.to_string(),
                        cycles,
                    });
                }
            }
        }
        ComplianceReport { from, to, entries }
    }
}

/// A `(from, to]` window of a statement or report: `INVALID_ARGUMENT` when
/// it ends before it starts.
pub fn check_window(what: &str, from: UnixSeconds, to: UnixSeconds) -> Result<(), Rejection> {
    if to < from {
        return Err(Rejection::invalid(format!(
            "{what} window ends ({to}) before it starts ({from})"
        )));
    }
    Ok(())
}
