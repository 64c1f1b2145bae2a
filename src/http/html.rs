//! HTML building blocks of the console: the one escaping function, the
//! page layout, instants and durations for people, and the SVG chart of a
//! balance over time drawn from a statement.

use std::fmt::Write as _;

use crate::domain::{LineKind, Statement};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a query-string component (percent-encoding every byte outside
/// the unreserved set).
pub fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Unix seconds as RFC 3339 UTC (`2026-12-02 00:00:00Z`). Written field
/// by field: a listing page shows two per row, and chrono's `format`
/// parses its pattern on every call.
pub fn instant(t: i64) -> String {
    use chrono::{Datelike, Timelike};
    match chrono::DateTime::from_timestamp(t, 0) {
        Some(d) if (0..=9999).contains(&d.year()) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        // Signed years, as chrono writes them.
        Some(d) => d.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => t.to_string(),
    }
}

/// Seconds as `12d 3h 4m 5s`.
pub fn duration(mut s: i64) -> String {
    if s <= 0 {
        return "0s".into();
    }
    let mut out = Vec::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push(format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out.join(" ")
}

/// A whole page: `title` is text, `body` is HTML already built from
/// escaped parts; `now` (the server's clock) drives the countdowns.
pub fn page(title: &str, nav: &str, now: i64, body: &str) -> String {
    let link = |href: &str, name: &str| {
        let class = if nav == name { " class=\"here\"" } else { "" };
        format!("<a href=\"{href}\"{class}>{name}</a>")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · isc-ledger</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
<script src=\"/assets/app.js\" defer></script></head>\
<body data-now=\"{now}\"><header><span class=\"brand\">isc-ledger</span><nav>{}{}{}</nav>\
<form method=\"post\" action=\"/logout\" class=\"logout\"><button type=\"submit\">Log out</button></form></header>\
<main>{body}</main></body></html>\n",
        link("/accounts", "Accounts"),
        link("/compliance", "Continuous use"),
        link("/ledger", "Ledger"),
        title = esc(title),
    )
}

/// One point of the balance line: instant and balance in iSC (for drawing
/// only: the figures on the page are the exact decimal strings).
fn nano_f(n: crate::domain::Nano) -> f64 {
    n.0 as f64 / 1e9
}

/// The SVG chart of `st`'s balance over its window: one point per line,
/// a dashed projection to `runout` (if any, at balance 0), and one marker
/// per top-up, depletion and reactivation (`data-kind` names it, a
/// `<title>` says when and how much).
pub fn balance_chart(st: &Statement, now: i64, runout: Option<i64>) -> String {
    const W: f64 = 760.0;
    const H: f64 = 240.0;
    const PAD_L: f64 = 64.0;
    const PAD_R: f64 = 16.0;
    const PAD_T: f64 = 12.0;
    const PAD_B: f64 = 28.0;
    // Accruals are the sloped segments; every other line moves the balance
    // at its instant (a step), e.g. nothing accrues while suspended and a
    // top-up jumps.
    let mut pts: Vec<(i64, f64)> = Vec::with_capacity(2 * st.lines.len() + 2);
    let mut prev = nano_f(st.opening_balance);
    for l in &st.lines {
        let b = nano_f(l.balance_after);
        if l.kind != LineKind::Accrual {
            pts.push((l.at, prev));
        }
        pts.push((l.at, b));
        prev = b;
    }
    if pts.is_empty() {
        return "<p class=\"muted\">No history in this window.</p>".into();
    }
    let t0 = pts[0].0;
    let last = pts[pts.len() - 1];
    let end_now = now.max(last.0);
    // The balance now (the closing balance at `to`).
    pts.push((end_now, nano_f(st.closing_balance)));
    let span = (end_now - t0).max(1);
    let proj_end = runout.map(|r| r.min(end_now + span));
    let t1 = proj_end.unwrap_or(end_now).max(t0 + 1);
    let max_b = pts.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9);
    let x = |t: i64| PAD_L + (t - t0) as f64 / (t1 - t0) as f64 * (W - PAD_L - PAD_R);
    let y = |b: f64| PAD_T + (1.0 - b / max_b) * (H - PAD_T - PAD_B);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Balance over time\">"
    );
    // Axes and labels.
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{PAD_L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
<line class=\"axis\" x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{}\"/>\
<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\
<text class=\"label\" x=\"{PAD_L}\" y=\"{}\">{}</text>\
<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        H - PAD_B,
        W - PAD_R,
        H - PAD_B,
        H - PAD_B,
        PAD_L - 6.0,
        PAD_T + 10.0,
        esc(&format!("{max_b:.2}")),
        PAD_L - 6.0,
        H - PAD_B,
        H - 8.0,
        esc(&instant(t0)),
        W - PAD_R,
        H - 8.0,
        esc(&instant(t1)),
    );
    // The balance line (at most ~2000 points drawn; markers are all drawn).
    let step = (pts.len() / 2000).max(1);
    let mut d = String::new();
    for (i, (t, b)) in pts.iter().enumerate() {
        if i % step != 0 && i + 1 != pts.len() {
            continue;
        }
        let _ = write!(
            d,
            "{}{:.1},{:.1} ",
            if d.is_empty() { "M" } else { "L" },
            x(*t),
            y(*b)
        );
    }
    let _ = write!(svg, "<path class=\"balance\" d=\"{}\"/>", d.trim_end());
    if let Some(r) = proj_end {
        let _ = write!(
            svg,
            "<path class=\"projection\" d=\"M{:.1},{:.1} L{:.1},{:.1}\"><title>projected runout {}</title></path>",
            x(end_now),
            y(nano_f(st.closing_balance)),
            x(r),
            y(0.0),
            esc(&instant(r))
        );
    }
    let _ = write!(
        svg,
        "<line class=\"now\" x1=\"{:.1}\" y1=\"{PAD_T}\" x2=\"{:.1}\" y2=\"{}\"/>",
        x(end_now),
        x(end_now),
        H - PAD_B
    );
    for l in &st.lines {
        let (kind, shape) = match l.kind {
            LineKind::TopUp => ("TOP_UP", "circle"),
            LineKind::Depletion => ("DEPLETION", "down"),
            LineKind::Reactivation => ("REACTIVATION", "square"),
            _ => continue,
        };
        let (cx, cy) = (x(l.at), y(nano_f(l.balance_after)));
        let title = match l.kind {
            LineKind::TopUp => format!("top-up of {} iSC at {}", l.amount, instant(l.at)),
            LineKind::Depletion => format!("credit ran out at {}", instant(l.at)),
            _ => format!("reactivated at {}", instant(l.at)),
        };
        let shape_svg = match shape {
            "circle" => format!("<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"5\"/>"),
            "down" => format!(
                "<path d=\"M{:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z\"/>",
                cx - 6.0,
                cy - 9.0,
                cx + 6.0,
                cy - 9.0,
                cx,
                cy
            ),
            _ => format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\"/>",
                cx - 4.5,
                cy - 4.5
            ),
        };
        let _ = write!(
            svg,
            "<g class=\"marker {}\" data-kind=\"{kind}\" data-at=\"{}\">{shape_svg}<title>{}</title></g>",
            kind.to_ascii_lowercase().replace('_', "-"),
            l.at,
            esc(&title)
        );
    }
    svg.push_str("</svg>");
    svg.push_str(
        "<p class=\"legend\"><span class=\"key top-up\">●</span> top-up \
<span class=\"key depletion\">▼</span> credit ran out \
<span class=\"key reactivation\">■</span> reactivated \
<span class=\"key projection\">- -</span> projection to runout</p>",
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_component("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn instants_as_chrono_writes_them() {
        for t in [
            i64::MIN,
            -62_167_219_201,
            -1,
            0,
            1_764_633_600,
            253_402_300_799,
            253_402_300_800,
            i64::MAX,
        ] {
            let chrono = chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
                .unwrap_or_else(|| t.to_string());
            assert_eq!(instant(t), chrono, "{t}");
        }
        assert_eq!(instant(1_764_633_600), "2025-12-02 00:00:00Z");
    }
}
