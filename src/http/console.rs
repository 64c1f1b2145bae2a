//! The read-only web console: accounts (search, state filter, urgency
//! order, runout countdown), one account (balance, state, rates, runout,
//! PBXs with their tier breakdown and license-model warnings, the balance
//! chart), its statement for a window (with the CSV of `statement --format
//! csv`), the continuous-use report and the ledger's facts.
//!
//! Access is gRPC's: a bearer token (the `Authorization` header, or the
//! cookie the login form sets, hex-encoded, `HttpOnly`, `SameSite=Strict`)
//! mapped to a role by the same [`Tokens`]; the pages need the `Read`
//! permission, the continuous-use report `Compliance`. Without a token
//! configuration every caller is admin and the listener is loopback-only
//! (as for gRPC). A request without a valid token gets the login page
//! (401), never data. Every page is a GET over the engine's shared state;
//! nothing here writes.

// Handlers answer early with the page to show (`Err(Response)`), once per
// request: boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::html::{balance_chart, duration, esc, instant, page, url_component};
use crate::api::auth::{Permission, Role, Tokens};
use crate::domain::{AccountState, Code, LineKind};
use crate::engine::{Engine, EngineError, ListOrder, ListQuery};

/// The login cookie.
pub const COOKIE: &str = "isc_ledger_token";

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

#[derive(Clone)]
struct Console {
    engine: Engine,
    tokens: Arc<Tokens>,
}

/// The console's routes over `engine`, guarded by `tokens`.
pub fn router(engine: Engine, tokens: Arc<Tokens>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/accounts") }))
        .route("/accounts", get(accounts))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/statement", get(statement))
        .route("/accounts/{id}/statement.csv", get(statement_csv))
        .route("/compliance", get(compliance))
        .route("/ledger", get(ledger))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(|| async {
            html(
                StatusCode::NOT_FOUND,
                message_page("Not found", "No such page."),
            )
        })
        .with_state(Console { engine, tokens })
}

/// Serves the console on `listener` until `shutdown` resolves.
pub async fn serve_console(
    engine: Engine,
    listener: TcpListener,
    tokens: Arc<Tokens>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "serving the web console");
    axum::serve(listener, router(engine, tokens))
        .with_graceful_shutdown(shutdown)
        .await
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// An HTML response with the console's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn message_page(title: &str, text: &str) -> String {
    page(
        title,
        "",
        0,
        &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)),
    )
}

// ------------------------------------------------------------------ access

/// The bearer token of a request: the `Authorization` header, else the cookie.
fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(t.trim().to_owned());
        }
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some(hexed) = part
                .trim()
                .strip_prefix(COOKIE)
                .and_then(|r| r.strip_prefix('='))
            {
                if hexed.len() <= 2 * crate::api::auth::TOKEN_MAX_BYTES {
                    if let Ok(bytes) = hex::decode(hexed) {
                        return String::from_utf8(bytes).ok();
                    }
                }
            }
        }
    }
    None
}

/// The caller's role, or the page to answer instead (login or forbidden).
fn authorize(
    c: &Console,
    headers: &HeaderMap,
    p: Permission,
    here: &str,
) -> Result<Role, Response> {
    if !c.tokens.is_configured() {
        return Ok(Role::Admin);
    }
    let role = token_of(headers).and_then(|t| c.tokens.role_of(&t));
    match role {
        None => Err(html(StatusCode::UNAUTHORIZED, login_page(here, None))),
        Some(r) if r.allows(p) => Ok(r),
        Some(_) => Err(html(
            StatusCode::FORBIDDEN,
            message_page(
                "Not allowed",
                "Your token's role may not see this page (accounts: agent, auditor or admin; continuous use: auditor or admin).",
            ),
        )),
    }
}

fn login_page(next: &str, error: Option<&str>) -> String {
    let err = error.map_or(String::new(), |e| {
        format!("<p class=\"error\">{}</p>", esc(e))
    });
    page(
        "Log in",
        "",
        0,
        &format!(
            "<h1>Log in</h1>{err}<form method=\"post\" action=\"/login\" class=\"login\">\
<label>Bearer token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
<input type=\"hidden\" name=\"next\" value=\"{}\"><button type=\"submit\">Log in</button></form>\
<p class=\"muted\">The same token as for gRPC (agent, auditor or admin).</p>",
            esc(next)
        ),
    )
}

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 2048
        && next.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        next
    } else {
        "/accounts"
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(Query(q): Query<NextQuery>) -> Response {
    html(
        StatusCode::OK,
        login_page(safe_next(q.next.as_deref().unwrap_or("/accounts")), None),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(State(c): State<Console>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref().unwrap_or("/accounts")).to_owned();
    if c.tokens.is_configured() && c.tokens.role_of(f.token.trim()).is_none() {
        return html(
            StatusCode::UNAUTHORIZED,
            login_page(&next, Some("Unknown token.")),
        );
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        hex::encode(f.token.trim())
    );
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("isc_ledger_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

// ------------------------------------------------------------------ reads

/// Runs an engine read off the async runtime (statements read the store).
async fn read<T: Send + 'static>(
    c: &Console,
    f: impl FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, Response> {
    let engine = c.engine.clone();
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(engine_error(e)),
        Err(e) => Err(html(
            StatusCode::INTERNAL_SERVER_ERROR,
            message_page("Error", &format!("the read failed: {e}")),
        )),
    }
}

fn engine_error(e: EngineError) -> Response {
    let (status, title) = match &e {
        EngineError::Rejected(r) => match r.code {
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, "Invalid request"),
            Code::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            Code::FailedPrecondition | Code::AlreadyExists => {
                (StatusCode::CONFLICT, "Not possible")
            }
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "Log in"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "Not allowed"),
        },
        EngineError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
    };
    html(status, message_page(title, &e.to_string()))
}

/// An instant from a form: Unix seconds or RFC 3339.
fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    s.parse::<i64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp())
    })
}

fn state_name(s: AccountState) -> &'static str {
    match s {
        AccountState::Active => "ACTIVE",
        AccountState::Suspended => "SUSPENDED",
        AccountState::Idle => "IDLE",
        AccountState::Closed => "CLOSED",
    }
}

fn state_badge(s: AccountState) -> String {
    let n = state_name(s);
    format!(
        "<span class=\"state {}\">{n}</span>",
        n.to_ascii_lowercase()
    )
}

/// The runout cell: the instant and a live countdown (the script updates
/// it from the server's clock, `data-now` on the body).
fn runout_cell(runout: Option<i64>, now: i64) -> String {
    match runout {
        Some(t) => {
            let at = esc(&instant(t));
            format!(
                "<time class=\"countdown\" data-runout=\"{t}\" datetime=\"{at}\">{}</time><br><span class=\"muted\">{at}</span>",
                esc(&duration(t - now)),
            )
        }
        None => "<span class=\"muted\">—</span>".into(),
    }
}

fn urgency(runout: Option<i64>, now: i64) -> &'static str {
    match runout {
        Some(t) if t - now <= 86_400 => "urgent",
        Some(t) if t - now <= 7 * 86_400 => "soon",
        _ => "",
    }
}

#[derive(Deserialize, Default)]
struct AccountsQuery {
    q: Option<String>,
    state: Option<String>,
    order: Option<String>,
    within: Option<String>,
    page: Option<String>,
}

async fn accounts(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<AccountsQuery>,
) -> Response {
    let r = accounts_page(&c, &headers, q).await;
    c.engine.metrics().page("accounts", r.status().as_u16());
    r
}

async fn accounts_page(c: &Console, headers: &HeaderMap, q: AccountsQuery) -> Response {
    if let Err(r) = authorize(c, headers, Permission::Read, "/accounts") {
        return r;
    }
    let search = q.q.unwrap_or_default().trim().to_owned();
    let state_s = q.state.unwrap_or_default().to_ascii_lowercase();
    let state = match state_s.as_str() {
        "active" => Some(AccountState::Active),
        "suspended" => Some(AccountState::Suspended),
        "idle" => Some(AccountState::Idle),
        "closed" => Some(AccountState::Closed),
        _ => None,
    };
    let by_id = q.order.as_deref() == Some("id");
    let within_s = q.within.unwrap_or_default();
    let within = match within_s.as_str() {
        "1d" => Some(86_400),
        "7d" => Some(7 * 86_400),
        "30d" => Some(30 * 86_400),
        _ => None,
    };
    let query = ListQuery {
        state,
        runout_before: None,
        runout_within: within,
        prefix: search.clone(),
        order: if by_id {
            ListOrder::Id
        } else {
            ListOrder::Runout
        },
        page_size: 100,
        page_token: q.page.unwrap_or_default(),
    };
    let list = match read(c, move |e| e.list_accounts(&query)).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let now = list.at;
    let opt = |v: &str, cur: &str, label: &str| {
        format!(
            "<option value=\"{v}\"{}>{label}</option>",
            if v == cur { " selected" } else { "" }
        )
    };
    let mut b = String::new();
    b.push_str("<h1>Accounts</h1>");
    b.push_str(&format!(
        "<form method=\"get\" action=\"/accounts\" class=\"filters\">\
<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"account id starts with…\" aria-label=\"Search accounts\">\
<select name=\"state\" aria-label=\"State\">{}{}{}{}{}</select>\
<select name=\"within\" aria-label=\"Runs out within\">{}{}{}{}</select>\
<select name=\"order\" aria-label=\"Order\">{}{}</select>\
<button type=\"submit\">Search</button></form>",
        esc(&search),
        opt("", &state_s, "any state"),
        opt("active", &state_s, "active"),
        opt("suspended", &state_s, "suspended"),
        opt("idle", &state_s, "idle"),
        opt("closed", &state_s, "closed"),
        opt("", &within_s, "any runout"),
        opt("1d", &within_s, "runs out within 1 day"),
        opt("7d", &within_s, "runs out within 7 days"),
        opt("30d", &within_s, "runs out within 30 days"),
        opt("", if by_id { "id" } else { "" }, "most urgent first"),
        opt("id", if by_id { "id" } else { "" }, "by id"),
    ));
    b.push_str(&format!(
        "<p class=\"muted\">{} shown, as of {}.</p>",
        list.rows.len(),
        esc(&instant(now))
    ));
    b.push_str(
        "<table class=\"accounts\"><thead><tr><th>Account</th><th>State</th><th class=\"num\">Balance (iSC)</th>\
<th class=\"num\">Monthly rate</th><th>Runs out in</th><th class=\"num\">PBXs</th></tr></thead><tbody>",
    );
    for r in &list.rows {
        b.push_str(&format!(
            "<tr class=\"{}\" data-account=\"{}\"><td><a href=\"/accounts/{}\">{}</a></td><td>{}</td>\
<td class=\"num balance\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            urgency(r.runout_at, now),
            esc(&r.account_id),
            url_component(&r.account_id),
            esc(&r.account_id),
            state_badge(r.state),
            esc(&r.balance.to_string()),
            esc(&r.monthly_rate.to_string()),
            runout_cell(r.runout_at, now),
            r.pbx_count
        ));
    }
    if list.rows.is_empty() {
        b.push_str("<tr><td colspan=\"6\" class=\"muted\">No account matches.</td></tr>");
    }
    b.push_str("</tbody></table>");
    if !list.next_page_token.is_empty() {
        b.push_str(&format!(
            "<p><a class=\"next\" href=\"/accounts?q={}&amp;state={}&amp;within={}&amp;order={}&amp;page={}\">Next page →</a></p>",
            url_component(&search),
            url_component(&state_s),
            url_component(&within_s),
            if by_id { "id" } else { "" },
            url_component(&list.next_page_token)
        ));
    }
    html(StatusCode::OK, page("Accounts", "Accounts", now, &b))
}

async fn account(State(c): State<Console>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let r = account_page(&c, &headers, id).await;
    c.engine.metrics().page("account", r.status().as_u16());
    r
}

async fn account_page(c: &Console, headers: &HeaderMap, id: String) -> Response {
    let here = format!("/accounts/{}", url_component(&id));
    if let Err(r) = authorize(c, headers, Permission::Read, &here) {
        return r;
    }
    // The view and the chart's statement at one instant: the view's `at`.
    let id2 = id.clone();
    let got = read(c, move |e| {
        let v = e.account_view(&id2, None)?;
        let st = e.statement(&id2, 0, v.at)?;
        Ok((v, st))
    })
    .await;
    let (v, st) = match got {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = v.at;
    let mut b = String::new();
    b.push_str(&format!(
        "<h1>Account <span class=\"id\">{}</span> {}</h1>",
        esc(&v.account_id),
        state_badge(v.state)
    ));
    b.push_str(&format!(
        "<dl class=\"facts\"><dt>Balance</dt><dd><span id=\"balance\" class=\"balance\">{}</span> iSC</dd>\
<dt>Monthly rate</dt><dd>{} iSC/month</dd><dt>Daily rate</dt><dd>{} iSC/day</dd>\
<dt>Runs out</dt><dd class=\"{}\">{}</dd><dt>As of</dt><dd>{}</dd></dl>",
        esc(&v.balance.to_string()),
        esc(&v.monthly_rate.to_string()),
        esc(&v.daily_rate.to_string()),
        urgency(v.runout_at, now),
        match v.runout_at {
            Some(_) => runout_cell(v.runout_at, now),
            None => "nothing accrues".into(),
        },
        esc(&instant(now)),
    ));
    b.push_str("<h2>Balance over time</h2>");
    b.push_str(&balance_chart(&st, now, v.runout_at));
    let (tops, debits, forfeited) = st.totals();
    b.push_str(&format!(
        "<p class=\"muted\">Since opening: top-ups {} iSC, debits {} iSC, forfeited {} iSC. \
<a href=\"/accounts/{}/statement\">Statement</a></p>",
        esc(&tops.to_string()),
        esc(&debits.to_string()),
        esc(&forfeited.to_string()),
        url_component(&v.account_id)
    ));
    b.push_str("<h2>PBXs and licenses</h2>");
    if v.pbxs.is_empty() {
        b.push_str("<p class=\"muted\">No PBX bound.</p>");
    }
    for p in &v.pbxs {
        b.push_str(&format!(
            "<section class=\"pbx\"><h3>PBX <span class=\"id\">{}</span> <span class=\"muted\">price list {} · {} · {} iSC/month</span></h3>",
            esc(&p.pbx_id),
            p.price_list_version.map_or_else(|| "—".into(), |v| format!("v{v}")),
            if p.enabled { "enabled" } else { "disabled" },
            esc(&p.monthly_cost.to_string())
        ));
        for w in &p.warnings {
            b.push_str(&format!("<p class=\"warning\">⚠ {}</p>", esc(w)));
        }
        if p.licenses.is_empty() {
            b.push_str("<p class=\"muted\">Nothing rented.</p>");
        } else {
            b.push_str("<table class=\"licenses\"><thead><tr><th>License type</th><th class=\"num\">Quantity</th><th class=\"num\">Monthly cost</th><th>Tiers (units × unit price)</th></tr></thead><tbody>");
            for l in &p.licenses {
                let tiers: Vec<String> = l
                    .tiers
                    .iter()
                    .map(|t| {
                        esc(&format!(
                            "{}–{}: {} × {} = {}",
                            t.from_qty, t.to_qty, t.units, t.unit_price, t.cost
                        ))
                    })
                    .collect();
                b.push_str(&format!(
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"tiers\">{}</td></tr>",
                    esc(&l.license_type),
                    l.quantity,
                    esc(&l.monthly_cost.to_string()),
                    tiers.join("<br>")
                ));
            }
            b.push_str("</tbody></table>");
        }
        b.push_str("</section>");
    }
    html(
        StatusCode::OK,
        page(&format!("Account {}", v.account_id), "Accounts", now, &b),
    )
}

#[derive(Deserialize, Default)]
struct WindowQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The window of a statement or report: `(from, to]`, defaults given.
fn window(q: &WindowQuery, default_from: i64, default_to: i64) -> Result<(i64, i64), Response> {
    let get = |v: &Option<String>, d: i64, name: &str| match v.as_deref().map(str::trim) {
        None | Some("") => Ok(d),
        Some(s) => parse_instant(s).ok_or_else(|| {
            html(
                StatusCode::BAD_REQUEST,
                message_page(
                    "Invalid request",
                    &format!("{name} {s:?} is neither Unix seconds nor an RFC 3339 instant"),
                ),
            )
        }),
    };
    Ok((
        get(&q.from, default_from, "from")?,
        get(&q.to, default_to, "to")?,
    ))
}

async fn statement(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Response {
    let r = statement_page(&c, &headers, id, q).await;
    c.engine.metrics().page("statement", r.status().as_u16());
    r
}

async fn statement_page(c: &Console, headers: &HeaderMap, id: String, q: WindowQuery) -> Response {
    let here = format!("/accounts/{}/statement", url_component(&id));
    if let Err(r) = authorize(c, headers, Permission::Read, &here) {
        return r;
    }
    let now = c.engine.clock_now();
    let (from, to) = match window(&q, 0, now) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let id2 = id.clone();
    let st = match read(c, move |e| e.statement(&id2, from, to)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut b = format!(
        "<h1>Statement of <a href=\"/accounts/{}\" class=\"id\">{}</a></h1>\
<form method=\"get\" class=\"filters\"><label>From (exclusive) <input name=\"from\" value=\"{from}\"></label>\
<label>To <input name=\"to\" value=\"{to}\"></label><button type=\"submit\">Show</button></form>\
<p>Window ({}, {}] · opening balance <strong>{}</strong> · closing balance <strong>{}</strong> · \
<a id=\"csv\" href=\"/accounts/{}/statement.csv?from={from}&amp;to={to}\" download=\"statement-{}-{from}-{to}.csv\">Download CSV</a></p>",
        url_component(&st.account_id),
        esc(&st.account_id),
        esc(&instant(from)),
        esc(&instant(to)),
        esc(&st.opening_balance.to_string()),
        esc(&st.closing_balance.to_string()),
        url_component(&st.account_id),
        esc(&st.account_id),
    );
    b.push_str("<table class=\"statement\"><thead><tr><th>At</th><th>Kind</th><th class=\"num\">Amount</th><th class=\"num\">Balance after</th><th>Details</th></tr></thead><tbody>");
    for l in &st.lines {
        let details = match (&l.accrual, &l.pbx_id, &l.activation_key) {
            (Some(a), _, _) => format!(
                "{} s at {} iSC/month ({} → {})",
                a.seconds,
                a.monthly_rate,
                instant(a.from),
                instant(a.to)
            ),
            (_, Some(p), _) => format!("PBX {p}"),
            (_, _, Some(k)) => format!("key {k}"),
            _ => String::new(),
        };
        b.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            if l.kind == LineKind::TopUp { "top-up" } else { "" },
            esc(&instant(l.at)),
            l.kind.name(),
            esc(&l.amount.to_string()),
            esc(&l.balance_after.to_string()),
            esc(&details)
        ));
    }
    b.push_str("</tbody></table>");
    html(
        StatusCode::OK,
        page(&format!("Statement {}", st.account_id), "Accounts", now, &b),
    )
}

async fn statement_csv(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Response {
    let r = statement_csv_inner(&c, &headers, id, q).await;
    c.engine
        .metrics()
        .page("statement.csv", r.status().as_u16());
    r
}

async fn statement_csv_inner(
    c: &Console,
    headers: &HeaderMap,
    id: String,
    q: WindowQuery,
) -> Response {
    let here = format!("/accounts/{}/statement", url_component(&id));
    if let Err(r) = authorize(c, headers, Permission::Read, &here) {
        return r;
    }
    let now = c.engine.clock_now();
    let (from, to) = match window(&q, 0, now) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let st = match read(c, move |e| e.statement(&id, from, to)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let disposition = format!(
        "attachment; filename=\"statement-{}-{from}-{to}.csv\"",
        st.account_id
    );
    let mut r = (StatusCode::OK, crate::domain::report::statement_csv(&st)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn compliance(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<WindowQuery>,
) -> Response {
    let r = compliance_page(&c, &headers, q).await;
    c.engine.metrics().page("compliance", r.status().as_u16());
    r
}

async fn compliance_page(c: &Console, headers: &HeaderMap, q: WindowQuery) -> Response {
    if let Err(r) = authorize(c, headers, Permission::Compliance, "/compliance") {
        return r;
    }
    let now = c.engine.clock_now();
    let (from, to) = match window(&q, now - 30 * 86_400, now) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let rep = match read(c, move |e| e.compliance(from, to)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut b = format!(
        "<h1>Continuous use</h1><p class=\"muted\">PBXs whose configuration was lowered and raised back \
within the cycle gap often enough in the period (spec §8).</p>\
<form method=\"get\" class=\"filters\"><label>From (exclusive) <input name=\"from\" value=\"{from}\"></label>\
<label>To <input name=\"to\" value=\"{to}\"></label><button type=\"submit\">Show</button></form>\
<p>Window ({}, {}]: {} flagged PBX(s).</p>",
        esc(&instant(from)),
        esc(&instant(to)),
        rep.entries.len()
    );
    b.push_str("<table class=\"compliance\"><thead><tr><th>Account</th><th>PBX</th><th>Cycles (lowered → raised)</th></tr></thead><tbody>");
    for e in &rep.entries {
        let cycles: Vec<String> = e
            .cycles
            .iter()
            .map(|cy| {
                esc(&format!(
                    "{} → {}",
                    instant(cy.lowered_at),
                    instant(cy.raised_at)
                ))
            })
            .collect();
        b.push_str(&format!(
            "<tr><td><a href=\"/accounts/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            url_component(&e.account_id),
            esc(&e.account_id),
            esc(&e.pbx_id),
            cycles.join("<br>")
        ));
    }
    if rep.entries.is_empty() {
        b.push_str("<tr><td colspan=\"3\" class=\"muted\">Nothing flagged.</td></tr>");
    }
    b.push_str("</tbody></table>");
    html(
        StatusCode::OK,
        page("Continuous use", "Continuous use", now, &b),
    )
}

async fn ledger(State(c): State<Console>, headers: HeaderMap) -> Response {
    let r = ledger_page(&c, &headers).await;
    c.engine.metrics().page("ledger", r.status().as_u16());
    r
}

async fn ledger_page(c: &Console, headers: &HeaderMap) -> Response {
    if let Err(r) = authorize(c, headers, Permission::Read, "/ledger") {
        return r;
    }
    let got = read(c, |e| Ok((e.info()?, e.signed_head()?))).await;
    let (info, sth) = match got {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut b = String::from("<h1>Ledger</h1><dl class=\"facts\">");
    let mut fact = |k: &str, v: String| {
        b.push_str(&format!("<dt>{}</dt><dd>{v}</dd>", esc(k)));
    };
    fact(
        "Head seq",
        format!("<span id=\"head-seq\">{}</span>", info.head_seq),
    );
    fact("Last record at", esc(&instant(info.last_at)));
    fact("Accounts", info.accounts.to_string());
    fact(
        "Records since start",
        format!(
            "{} in {} durable appends",
            info.records_appended, info.durable_appends
        ),
    );
    fact(
        "Snapshot age",
        esc(&if info.snapshot_written {
            format!(
                "{} (written by this process)",
                duration(info.snapshot_age_seconds as i64)
            )
        } else {
            format!(
                "none written since start {} ago",
                duration(info.snapshot_age_seconds as i64)
            )
        }),
    );
    fact(
        "Start-up replay",
        esc(&format!("{:.3} s", info.replay_seconds)),
    );
    fact("Clock", esc(&instant(info.now)));
    b.push_str("</dl><h2>Signed tree head</h2>");
    match sth {
        Some(h) => b.push_str(&format!(
            "<dl class=\"facts sth\"><dt>Tree size</dt><dd id=\"sth-size\">{}</dd><dt>Root hash</dt><dd class=\"hash\">{}</dd>\
<dt>At</dt><dd>{}</dd><dt>Public key</dt><dd class=\"hash\">{}</dd><dt>Signature</dt><dd class=\"hash\">{}</dd></dl>",
            h.tree_size,
            hex::encode(h.root_hash),
            esc(&instant(h.at)),
            hex::encode(h.public_key),
            hex::encode(h.signature)
        )),
        None => b.push_str("<p class=\"muted\">No signed tree head stored yet.</p>"),
    }
    html(StatusCode::OK, page("Ledger", "Ledger", info.now, &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_header_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; isc_ledger_token=746f6b"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("tok"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer other"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("other"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("isc_ledger_token=zz"),
        );
        assert_eq!(token_of(&h), None);
    }

    #[test]
    fn only_local_redirects() {
        assert_eq!(safe_next("/accounts/a"), "/accounts/a");
        assert_eq!(safe_next("//evil.example"), "/accounts");
        assert_eq!(safe_next("https://evil.example"), "/accounts");
        assert_eq!(safe_next("/\\evil"), "/accounts");
    }
}
