//! The self-contained HTML report: the summary table and inline SVG charts
//! (offer latency over time, throughput over time). No script, no CDN.

use crate::summary::Summary;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line chart: x = seconds, several named series.
fn chart(title: &str, unit: &str, series: &[(&str, &str, Vec<f64>)]) -> String {
    let (w, h, left, bottom, top, right) = (820.0, 260.0, 60.0, 30.0, 30.0, 130.0);
    let n = series.iter().map(|s| s.2.len()).max().unwrap_or(0).max(2);
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let max = nice(max);
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}">
<text x="{left}" y="18" font-size="14" font-weight="bold">{t}</text>
"#,
        t = escape(title)
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        svg.push_str(&format!(
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{} {unit}</text>
"##,
            w - right,
            left - 4.0,
            y(v) + 4.0,
            trim(v),
            y = y(v)
        ));
    }
    let step = (n / 10).max(1);
    for i in (0..n).step_by(step) {
        svg.push_str(&format!(
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{i}s</text>
"#,
            x(i),
            h - 10.0
        ));
    }
    for (k, (name, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        svg.push_str(&format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>
<rect x="{}" y="{}" width="12" height="3" fill="{color}"/><text x="{}" y="{}" font-size="12">{}</text>
"#,
            points.join(" "),
            w - right + 10.0,
            top + 18.0 * k as f64 + 6.0,
            w - right + 28.0,
            top + 18.0 * k as f64 + 10.0,
            escape(name)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn nice(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * magnitude {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}

fn trim(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub fn html(s: &Summary) -> String {
    let json = serde_json::to_string_pretty(s).unwrap_or_default();
    let latency = chart(
        "Offer latency per second (complaint posted → offer at the agent)",
        "ms",
        &[
            (
                "p50",
                "#1f77b4",
                s.timeline.iter().map(|p| p.offer_p50_ms).collect(),
            ),
            (
                "p99",
                "#d62728",
                s.timeline.iter().map(|p| p.offer_p99_ms).collect(),
            ),
        ],
    );
    let throughput = chart(
        "Throughput per second",
        "/s",
        &[
            (
                "created",
                "#2ca02c",
                s.timeline.iter().map(|p| p.created as f64).collect(),
            ),
            (
                "resolved",
                "#9467bd",
                s.timeline.iter().map(|p| p.resolved as f64).collect(),
            ),
        ],
    );
    let ramp = s
        .ramp
        .as_ref()
        .map(|r| {
            chart(
                &format!(
                    "Ramp: p99 offer latency per rate step (bound {} ms)",
                    r.p99_bound_ms
                ),
                "ms",
                &[(
                    "p99 per step",
                    "#ff7f0e",
                    r.steps.iter().map(|st| st.offer_p99_ms).collect(),
                )],
            )
        })
        .unwrap_or_default();
    let row =
        |k: &str, v: String| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(&v));
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "n/a".into());
    let p = |p: &crate::stats::Percentiles| {
        format!(
            "p50 {:.3} · p90 {:.3} · p99 {:.3} · p99.9 {:.3} · max {:.3} (n={})",
            p.p50, p.p90, p.p99, p.p999, p.max, p.count
        )
    };
    let mut table = String::new();
    table.push_str(&row(
        "verdict",
        if s.passed {
            "PASSED".into()
        } else {
            "FAILED".into()
        },
    ));
    table.push_str(&row(
        "backend",
        format!(
            "{} + {}, {} node(s){}",
            s.backend.database,
            s.backend.live,
            s.backend.nodes,
            if s.backend.local { ", local" } else { "" }
        ),
    ));
    table.push_str(&row("machine", s.machine.clone()));
    table.push_str(&row(
        "load",
        format!(
            "{} mode, {} agents (capacity {}), {} supervisors, {}/s for {:.0} s",
            s.mode, s.agents, s.capacity, s.supervisors, s.rate_per_s, s.duration_s
        ),
    ));
    table.push_str(&row(
        "tickets",
        format!(
            "created {}, resolved {}, throughput {:.1} lifecycles/s",
            s.tickets_created, s.tickets_resolved, s.throughput_per_s
        ),
    ));
    table.push_str(&row(
        "checks",
        format!(
            "lost {}, double_offers {}, capacity_violations {}, resume_gaps {}",
            s.lost, s.double_offers, s.capacity_violations, s.resume_gaps
        ),
    ));
    table.push_str(&row("offer latency (ms)", p(&s.offer_latency_ms)));
    table.push_str(&row("intake latency (ms)", p(&s.intake_latency_ms)));
    table.push_str(&row("accept round trip (ms)", p(&s.accept_rtt_ms)));
    table.push_str(&row(
        "board lag (ms)",
        s.board_lag_ms
            .as_ref()
            .map(p)
            .unwrap_or_else(|| "no boards received".into()),
    ));
    table.push_str(&row(
        "cost per ticket",
        format!(
            "Redis commands {} · database transactions {}",
            opt(s.redis_cmds_per_ticket),
            opt(s.db_xacts_per_ticket)
        ),
    ));
    if !s.filing_phases_ms.is_empty() {
        let steps: Vec<String> = crate::limits::PHASES
            .iter()
            .chain(&crate::limits::WRITER_PHASES)
            .filter_map(|phase| {
                let p = s.filing_phases_ms.get(*phase)?;
                Some(format!(
                    "{phase}: p50 {:.2} · p90 {:.2} · p99 {:.2} (n={})",
                    p.p50, p.p90, p.p99, p.count
                ))
            })
            .collect();
        table.push_str(&row(
            "where a new complaint's time goes on the nodes (ms)",
            steps.join("; "),
        ));
    }
    if let Some(cpu) = &s.cpu_seconds {
        let part = |name: &str, v: Option<f64>| {
            v.map(|v| {
                format!(
                    "{name} {v:.1} s ({:.0} % of a core)",
                    v / cpu.window_s.max(0.001) * 100.0
                )
            })
        };
        let parts: Vec<String> = [
            part("harness", cpu.harness),
            part("nodes", cpu.nodes),
            part("PostgreSQL", cpu.postgres),
            part("Redis", cpu.redis),
        ]
        .into_iter()
        .flatten()
        .collect();
        table.push_str(&row(
            "CPU over the run",
            format!(
                "{} over {:.0} s on {} cores; machine busy {}",
                parts.join(" · "),
                cpu.window_s,
                cpu.cores,
                cpu.machine_busy
                    .map(|b| format!("{:.0} %", b * 100.0))
                    .unwrap_or_else(|| "n/a".into())
            ),
        ));
    }
    table.push_str(&row(
        "server memory",
        s.server_rss_bytes
            .map(|b| {
                format!(
                    "{:.1} MiB RSS, {} connections",
                    b as f64 / 1048576.0,
                    s.connections
                )
            })
            .unwrap_or_else(|| "n/a (remote nodes)".into()),
    ));
    if let Some(r) = &s.routing {
        table.push_str(&row(
            "bare routing",
            format!(
                "{:.0} jobs/s on {}; delivery {}",
                r.completed_per_s,
                r.backend,
                p(&r.delivery_latency_ms)
            ),
        ));
    }
    let errors: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    table.push_str(&row(
        "errors",
        if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        },
    ));
    let violations: String = s
        .violation_examples
        .iter()
        .map(|v| format!("<li>{}</li>", escape(v)))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callcenter load test</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:900px}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:4px 10px;border-bottom:1px solid #eee}}
pre{{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}}</style></head>
<body><h1>callcenter load test</h1>
<table>
{table}</table>
<ul>{violations}</ul>
{latency}{throughput}{ramp}
<details><summary>The summary as JSON</summary><pre>{}</pre></details>
</body></html>
"#,
        escape(&json)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::TimelinePoint;

    #[test]
    fn the_report_is_self_contained_with_both_charts() {
        let s = Summary {
            timeline: (0..5)
                .map(|t| TimelinePoint {
                    t,
                    created: 10 * t,
                    resolved: 9 * t,
                    offer_p50_ms: 1.0,
                    offer_p99_ms: 3.5,
                })
                .collect(),
            ..Summary::default()
        };
        let html = html(&s);
        assert_eq!(html.matches("<svg").count(), 2);
        // Nothing measured of the nodes: no limits rows.
        assert!(!html.contains("CPU over the run"));
        let with_limits = Summary {
            filing_phases_ms: [(
                "record".to_string(),
                crate::stats::Percentiles {
                    count: 40,
                    p50: 1.5,
                    p90: 4.0,
                    p99: 12.5,
                    ..Default::default()
                },
            )]
            .into(),
            cpu_seconds: Some(crate::limits::CpuUse {
                window_s: 20.0,
                cores: 2,
                machine_busy: Some(0.45),
                harness: Some(9.0),
                nodes: Some(4.0),
                postgres: Some(6.0),
                redis: Some(3.0),
            }),
            ..s.clone()
        };
        let html = super::html(&with_limits);
        assert!(
            html.contains("record: p50 1.50 · p90 4.00 · p99 12.50 (n=40)"),
            "{html}"
        );
        assert!(html.contains("PostgreSQL 6.0 s (30 % of a core)"), "{html}");
        assert!(html.contains("machine busy 45 %"), "{html}");
        assert!(html.contains("Offer latency per second"));
        assert!(html.contains("Throughput per second"));
        assert!(!html.contains("<script src"));
        assert!(!html.contains("https://"));
    }
}
