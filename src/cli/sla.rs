//! Service-level client subcommands (spec §16): `isc-ledger incident
//! report|respond|update|resolve|priority` and `isc-ledger sla report`.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{now_s, print_receipt, rpc_err, ClientOpts};
use super::{fmt_instant, parse_instant};
use crate::api::pb;

/// `incident …`.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    #[command(subcommand)]
    cmd: IncidentCmd,
}

#[derive(Debug, Subcommand)]
enum IncidentCmd {
    /// Record a new incident; its KPIs start now (outside support hours:
    /// at the next opening).
    Report {
        /// Incident id (1–64 of [A-Za-z0-9._-]; never reused).
        incident_id: String,
        /// The account it concerns.
        #[arg(long)]
        account: String,
        /// 1 critical, 2 high, 3 normal, 4 low.
        #[arg(long)]
        priority: u32,
    },
    /// Record the first response.
    Respond { incident_id: String },
    /// Record an update (after the response).
    Update { incident_id: String },
    /// Record the resolution.
    Resolve { incident_id: String },
    /// Change the priority: every deadline is recomputed from the report.
    Priority { incident_id: String, priority: u32 },
}

/// `incident …`: one write, prints its receipt.
pub async fn incident(opts: &ClientOpts, a: IncidentArgs) -> anyhow::Result<()> {
    let mut c = opts.ledger().await?;
    let r = match a.cmd {
        IncidentCmd::Report {
            incident_id,
            account,
            priority,
        } => {
            c.report_incident(pb::ReportIncidentRequest {
                incident_id,
                account_id: account,
                priority,
            })
            .await
        }
        IncidentCmd::Respond { incident_id } => {
            c.respond_incident(pb::RespondIncidentRequest { incident_id })
                .await
        }
        IncidentCmd::Update { incident_id } => {
            c.update_incident(pb::UpdateIncidentRequest { incident_id })
                .await
        }
        IncidentCmd::Resolve { incident_id } => {
            c.resolve_incident(pb::ResolveIncidentRequest { incident_id })
                .await
        }
        IncidentCmd::Priority {
            incident_id,
            priority,
        } => {
            c.change_priority(pb::ChangePriorityRequest {
                incident_id,
                priority,
            })
            .await
        }
    }
    .map_err(rpc_err)?
    .into_inner();
    print_receipt(opts, &r).await;
    Ok(())
}

/// `sla report`.
#[derive(Debug, Args)]
pub struct SlaArgs {
    #[command(subcommand)]
    cmd: SlaCmd,
}

#[derive(Debug, Subcommand)]
enum SlaCmd {
    /// Per-priority KPI figures and every breach of the incidents reported
    /// in (from, to].
    Report {
        /// Window start (Unix seconds or RFC 3339), exclusive.
        #[arg(long, default_value = "0")]
        from: String,
        /// Window end, inclusive; default now.
        #[arg(long)]
        to: Option<String>,
        /// text, json or csv (`--json` also selects json).
        #[arg(long, default_value = "text")]
        format: String,
    },
}

/// The label of a proto KPI.
pub fn kpi_label(k: i32) -> &'static str {
    match pb::SlaKpi::try_from(k) {
        Ok(pb::SlaKpi::Response) => "response",
        Ok(pb::SlaKpi::Update) => "update",
        Ok(pb::SlaKpi::Repair) => "repair",
        _ => "unspecified",
    }
}

/// `sla report`.
pub async fn sla(opts: &ClientOpts, a: SlaArgs) -> anyhow::Result<()> {
    let SlaCmd::Report { from, to, format } = a.cmd;
    let to = match to {
        Some(t) => parse_instant(&t)?,
        None => now_s(),
    };
    let format = if opts.json { "json".into() } else { format };
    if !matches!(format.as_str(), "text" | "json" | "csv") {
        bail!("--format {format:?}: expected text, json or csv");
    }
    let rep = opts
        .ledger()
        .await?
        .get_sla_report(pb::GetSlaReportRequest {
            from: parse_instant(&from)?,
            to,
        })
        .await
        .map_err(rpc_err)?
        .into_inner();
    match format.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&rep)).unwrap_or_default()
        ),
        "csv" => print!("{}", report_csv(&rep)),
        _ => println!("{}", report_text(&rep)),
    }
    Ok(())
}

/// JSON form of an SLA report (instants as Unix seconds).
pub fn report_json(r: &pb::SlaReport) -> Value {
    json!({
        "from": r.from, "to": r.to, "at": r.at,
        "priorities": r.priorities.iter().map(|p| json!({
            "priority": p.priority, "incidents": p.incidents,
            "kpis": p.kpis.iter().map(|k| json!({
                "kpi": kpi_label(k.kpi), "met": k.met, "breached": k.breached, "open": k.open,
                "share_met": (!k.share_met.is_empty()).then_some(&k.share_met),
                "target": (!k.target.is_empty()).then_some(&k.target),
                "target_met": (!k.target.is_empty() && !k.share_met.is_empty()).then_some(k.target_met),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "breaches": r.breaches.iter().map(|b| json!({
            "incident_id": b.incident_id, "account_id": b.account_id, "priority": b.priority,
            "kpi": kpi_label(b.kpi), "occurrence": b.occurrence, "deadline": b.deadline,
            "done_at": b.done_at, "missed_by_support_seconds": b.missed_by_support_seconds,
            "credit": (!b.credit.is_empty()).then_some(&b.credit),
        })).collect::<Vec<_>>(),
    })
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// Human form of an SLA report.
pub fn report_text(r: &pb::SlaReport) -> String {
    let mut s = format!(
        "SLA report: incidents reported in ({} .. {}], judged at {}\n",
        fmt_instant(r.from),
        fmt_instant(r.to),
        fmt_instant(r.at)
    );
    s.push_str("  prio  kpi       incidents  met  breached  open  share met  target\n");
    for p in &r.priorities {
        for k in &p.kpis {
            let target = if k.target.is_empty() {
                "-".to_string()
            } else if k.share_met.is_empty() {
                format!("> {} %", k.target)
            } else {
                format!(
                    "> {} % {}",
                    k.target,
                    if k.target_met { "met" } else { "MISSED" }
                )
            };
            let share = if k.share_met.is_empty() {
                "-".to_string()
            } else {
                format!("{} %", k.share_met)
            };
            s.push_str(&format!(
                "  P{}    {:<9} {:>9}  {:>3}  {:>8}  {:>4}  {:>9}  {}\n",
                p.priority,
                kpi_label(k.kpi),
                p.incidents,
                k.met,
                k.breached,
                k.open,
                share,
                target
            ));
        }
    }
    if r.breaches.is_empty() {
        s.push_str("no breaches");
    } else {
        s.push_str(&format!("{} breach(es):\n", r.breaches.len()));
        for b in &r.breaches {
            let done = b.done_at.map_or("still missing".to_string(), |t| {
                format!("done {}", fmt_instant(t))
            });
            let occurrence = if b.kpi == pb::SlaKpi::Update as i32 {
                format!(" #{}", b.occurrence)
            } else {
                String::new()
            };
            s.push_str(&format!(
                "  {} (P{}, account {}) {}{}: due {}, {}, missed by {} support s, credit {}\n",
                b.incident_id,
                b.priority,
                b.account_id,
                kpi_label(b.kpi),
                occurrence,
                fmt_instant(b.deadline),
                done,
                b.missed_by_support_seconds,
                or_dash(&b.credit)
            ));
        }
    }
    s.trim_end().to_string()
}

/// CSV form: one table, a `row` column tells KPI figures (`kpi`) from
/// breaches (`breach`); instants in RFC 3339 UTC, empty cells for n/a.
pub fn report_csv(r: &pb::SlaReport) -> String {
    let mut s = String::from(
        "row,priority,kpi,incidents,met,breached,open,share_met,target,target_met,incident_id,account_id,occurrence,deadline,done_at,missed_by_support_seconds,credit\n",
    );
    for p in &r.priorities {
        for k in &p.kpis {
            let target_met = if k.target.is_empty() || k.share_met.is_empty() {
                String::new()
            } else {
                k.target_met.to_string()
            };
            s.push_str(&format!(
                "kpi,{},{},{},{},{},{},{},{},{},,,,,,,\n",
                p.priority,
                kpi_label(k.kpi),
                p.incidents,
                k.met,
                k.breached,
                k.open,
                k.share_met,
                k.target,
                target_met
            ));
        }
    }
    for b in &r.breaches {
        // Ids are [A-Za-z0-9._-]: no quoting needed.
        s.push_str(&format!(
            "breach,{},{},,,,,,,,{},{},{},{},{},{},{}\n",
            b.priority,
            kpi_label(b.kpi),
            b.incident_id,
            b.account_id,
            b.occurrence,
            fmt_instant(b.deadline),
            b.done_at.map(fmt_instant).unwrap_or_default(),
            b.missed_by_support_seconds,
            b.credit
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::SlaReport {
        pb::SlaReport {
            from: 0,
            to: 100,
            at: 100,
            priorities: vec![pb::SlaPriorityFigures {
                priority: 2,
                incidents: 3,
                kpis: vec![pb::SlaKpiFigures {
                    kpi: pb::SlaKpi::Repair as i32,
                    met: 2,
                    breached: 1,
                    open: 0,
                    share_met: "66.67".into(),
                    target: "90".into(),
                    target_met: false,
                }],
            }],
            breaches: vec![pb::SlaBreach {
                incident_id: "INC-1".into(),
                account_id: "acme".into(),
                priority: 2,
                kpi: pb::SlaKpi::Repair as i32,
                occurrence: 0,
                deadline: 61_200,
                done_at: None,
                missed_by_support_seconds: 5400,
                credit: "20".into(),
            }],
        }
    }

    #[test]
    fn the_three_formats() {
        let r = sample();
        let csv = report_csv(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let columns = lines[0].split(',').count();
        assert!(
            lines.iter().all(|l| l.split(',').count() == columns),
            "{csv}"
        );
        assert_eq!(lines[1], "kpi,2,repair,3,2,1,0,66.67,90,false,,,,,,,");
        assert_eq!(
            lines[2],
            "breach,2,repair,,,,,,,,INC-1,acme,0,1970-01-01T17:00:00Z,,5400,20"
        );
        let j = report_json(&r);
        assert_eq!(j["priorities"][0]["kpis"][0]["share_met"], "66.67");
        assert_eq!(j["breaches"][0]["done_at"], Value::Null);
        let t = report_text(&r);
        assert!(t.contains("> 90 % MISSED"), "{t}");
        assert!(t.contains("missed by 5400 support s, credit 20"), "{t}");
    }
}
