//! The results of one `bench/run.sh` run: rows (one per scenario × target, appended as JSON
//! lines while the run goes), the ratios the issue sets as targets, and the markdown table.
//!
//! Targets are judged only between rows of the same run, so a slow or busy machine moves
//! every row together: RPS and CPU per request against nginx, added latency and added time
//! to first chunk against the mock reached directly.

use crate::load::LoadReport;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Target names as run.sh writes them.
pub const DIRECT: &str = "direct";
pub const NGINX: &str = "nginx";
pub const TOLLGATE: &str = "tollgate";
pub const TOLLGATE_UNMETERED: &str = "tollgate-unmetered";
/// Tollgate with both transcript toggles on for the benchmarked provider.
pub const TOLLGATE_TRANSCRIPTS: &str = "tollgate-transcripts";
/// Tollgate with tracing on, exporting every span to the mock's OTLP receiver.
pub const TOLLGATE_TRACED: &str = "tollgate-traced";
/// Tollgate with one budget and one rate limit that every request matches (none refuses).
pub const TOLLGATE_LIMITED: &str = "tollgate-limited";

/// One line of the rows file: a load run, or the usage-event count of a Tollgate run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
    /// Events in the gateway's usage store after it drained (metered Tollgate rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_events: Option<i64>,
}

/// One target of the issue, judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub value: Option<f64>,
    pub limit: String,
    pub met: Option<bool>,
    pub detail: String,
}

/// The whole run, as written to `bench/results/<stamp>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub machine: String,
    pub commit: String,
    pub date: String,
    pub rows: Vec<Row>,
    pub targets: Vec<Verdict>,
    /// Peers (or peer rows) left out of the run, each `name: why`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// Merges rows of the same scenario and target (a load row and its usage count).
pub fn merge(lines: Vec<Row>) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for r in lines {
        // A target run again in the same scenario (the ABBA rounds of a cost row) is a row of
        // its own; a usage count belongs to the latest run of its target.
        let last = out.iter_mut().rev().find(|o| o.scenario == r.scenario && o.target == r.target);
        match last {
            Some(o) if !(r.load.is_some() && o.load.is_some()) => {
                if r.load.is_some() {
                    o.load = r.load;
                }
                if r.usage_events.is_some() {
                    o.usage_events = r.usage_events;
                }
            }
            _ => out.push(r),
        }
    }
    out
}

fn load<'a>(rows: &'a [Row], scenario: &str, target: &str) -> Option<&'a LoadReport> {
    rows.iter().find(|r| r.scenario == scenario && r.target == target).and_then(|r| r.load.as_ref())
}

/// The mean req/s over every run of a target in a scenario (a cost row's rounds all last the
/// same time, so this is its requests over its time).
fn mean_rps(rows: &[Row], scenario: &str, target: &str) -> Option<f64> {
    let runs: Vec<f64> = rows
        .iter()
        .filter(|r| r.scenario == scenario && r.target == target)
        .filter_map(|r| r.load.as_ref().map(|l| l.rps))
        .collect();
    (!runs.is_empty()).then(|| runs.iter().sum::<f64>() / runs.len() as f64)
}

/// The mean of the p99 time to first byte over every run of a target in a scenario (the ABBA
/// rounds of a latency row: one run's p99 of a few thousand streams moves by ±0.5 ms between
/// runs), with the number of runs.
fn mean_ttft_p99(rows: &[Row], scenario: &str, target: &str) -> Option<(f64, usize)> {
    let runs: Vec<f64> = rows
        .iter()
        .filter(|r| r.scenario == scenario && r.target == target)
        .filter_map(|r| r.load.as_ref().and_then(|l| l.ttft_us.as_ref()).map(|t| t.p99 as f64))
        .collect();
    (!runs.is_empty()).then(|| (runs.iter().sum::<f64>() / runs.len() as f64, runs.len()))
}

/// A feature's cost in % of req/s: 1 − with ÷ without, over the means of both sides; with the
/// two means for the verdict's detail.
fn cost(rows: &[Row], scenario: &str, with: &str, without: &str) -> (Option<f64>, f64, f64) {
    let (on, off) = (mean_rps(rows, scenario, with), mean_rps(rows, scenario, without));
    let cost = on.zip(off).filter(|(_, off)| *off > 0.0).map(|(on, off)| (1.0 - on / off) * 100.0);
    (cost, on.unwrap_or(0.0), off.unwrap_or(0.0))
}

fn verdict(name: &str, value: Option<f64>, limit: &str, ok: impl Fn(f64) -> bool, detail: String) -> Verdict {
    Verdict { name: name.into(), value, limit: limit.into(), met: value.map(ok), detail }
}

/// Judges every target the issue sets from the rows of one run.
pub fn judge(rows: &[Row]) -> Vec<Verdict> {
    let mut v = Vec::new();
    let (tg, ng) = (load(rows, "P1", TOLLGATE), load(rows, "P1", NGINX));
    let rps = tg.zip(ng).map(|(t, n)| t.rps / n.rps);
    v.push(verdict(
        "P1 RPS, Tollgate / nginx",
        rps,
        ">= 0.80",
        |x| x >= 0.8,
        format!("{:.0} vs {:.0} req/s", tg.map_or(0.0, |t| t.rps), ng.map_or(0.0, |n| n.rps)),
    ));
    let cpu = |l: Option<&LoadReport>| l.and_then(|l| l.proxy.as_ref()).map(|p| p.cpu_us_per_request);
    let ratio = cpu(tg).zip(cpu(ng)).filter(|(_, n)| *n > 0.0).map(|(t, n)| t / n);
    v.push(verdict(
        "P1 CPU per request, Tollgate / nginx",
        ratio,
        "<= 1.50",
        |x| x <= 1.5,
        format!("{:.1} vs {:.1} µs", cpu(tg).unwrap_or(0.0), cpu(ng).unwrap_or(0.0)),
    ));
    let (t3, d3, n3) = (load(rows, "P3", TOLLGATE), load(rows, "P3", DIRECT), load(rows, "P3", NGINX));
    let p50 = |l: Option<&LoadReport>| l.map_or(0, |l| l.latency_us.p50) as f64;
    // Judged against nginx's own added latency in the same run (issue 21: nginx's + 20 µs):
    // with one connection, most of what a proxy adds is the machine's (waking the other vCPU).
    let added = t3.zip(d3).map(|(t, d)| t.latency_us.p50 as f64 - d.latency_us.p50 as f64);
    let nginx_added = n3.zip(d3).map(|(n, d)| n.latency_us.p50 as f64 - d.latency_us.p50 as f64);
    let limit =
        nginx_added.map_or("nginx's + 20 (no nginx row)".into(), |n| format!("<= {:.0} (nginx's + 20)", n + 20.0));
    let mut p3 = verdict(
        "P3 added p50 latency, 1 connection (µs)",
        added,
        &limit,
        |x| nginx_added.is_some_and(|n| x <= n + 20.0),
        format!("{} vs {} µs direct; nginx adds {} µs", p50(t3), p50(d3), p50(n3) - p50(d3)),
    );
    if nginx_added.is_none() {
        p3.met = None;
    }
    v.push(p3);
    let ttft = |l: Option<&LoadReport>| l.and_then(|l| l.ttft_us.as_ref()).map(|t| t.p99);
    let (t5, d5, n5) = (load(rows, "P5", TOLLGATE), load(rows, "P5", DIRECT), load(rows, "P5", NGINX));
    let added = ttft(t5).zip(ttft(d5)).map(|(t, d)| t as f64 - d as f64);
    let nginx_added = ttft(n5).unwrap_or(0) as f64 - ttft(d5).unwrap_or(0) as f64;
    v.push(verdict(
        "P5 added TTFT p99 (µs)",
        added,
        "<= 500",
        |x| x <= 500.0,
        format!("{} vs {} µs direct; nginx adds {nginx_added} µs", ttft(t5).unwrap_or(0), ttft(d5).unwrap_or(0)),
    ));
    let p6 = load(rows, "P6", TOLLGATE).and_then(|l| l.proxy.as_ref());
    let rss = p6.map(|p| p.rss_peak_kib as f64 / 1024.0);
    let streams = load(rows, "P6", TOLLGATE).map_or(0, |l| l.connections);
    // Rows of runs before the anonymous part was sampled have none.
    let anon = match p6.map(|p| p.rss_peak_anon_kib) {
        Some(kib) if kib > 0 => format!(" ({:.0} MiB of it anonymous)", kib as f64 / 1024.0),
        _ => String::new(),
    };
    let settled = match p6.and_then(|p| p.rss_settled_kib.zip(p.settle_s)) {
        Some((kib, s)) => format!("; {:.0} MiB {s:.0} s after they closed", kib as f64 / 1024.0),
        None => String::new(),
    };
    v.push(verdict(
        "P6 RSS with 1,000 open streams (MiB)",
        rss,
        "<= 48",
        |x| x <= 48.0,
        format!("peak over the run{anon}, {streams} concurrent streams{settled}"),
    ));
    let (p7, on, off) = cost(rows, "P7", TOLLGATE, TOLLGATE_UNMETERED);
    v.push(verdict(
        "P7 metering cost (% RPS)",
        p7,
        "<= 5",
        |x| x <= 5.0,
        format!("{on:.0} metered vs {off:.0} unmetered req/s"),
    ));
    let (p8, on, off) = cost(rows, "P8", TOLLGATE_TRANSCRIPTS, TOLLGATE);
    v.push(verdict(
        "P8 transcript cost (% RPS, both toggles on vs metering only)",
        p8,
        "<= 5",
        |x| x <= 5.0,
        format!("{on:.0} recorded vs {off:.0} metered req/s"),
    ));
    let (on, off) = (mean_ttft_p99(rows, "P9", TOLLGATE_TRANSCRIPTS), mean_ttft_p99(rows, "P9", TOLLGATE));
    let added = on.zip(off).map(|((t, _), (m, _))| t - m);
    let runs = on.map_or(0, |(_, n)| n) + off.map_or(0, |(_, n)| n);
    v.push(verdict(
        "P9 TTFT p99 added by transcripts (µs)",
        added,
        "<= 100",
        |x| x <= 100.0,
        format!(
            "{:.0} recorded vs {:.0} µs metered (mean p99 of {runs} runs)",
            on.map_or(0.0, |(t, _)| t),
            off.map_or(0.0, |(m, _)| m)
        ),
    ));
    let (p10, traced, plain) = cost(rows, "P10", TOLLGATE_TRACED, TOLLGATE);
    v.push(verdict(
        "P10 tracing cost (% RPS)",
        p10,
        "<= 5",
        |x| x <= 5.0,
        format!("{traced:.0} traced vs {plain:.0} untraced req/s"),
    ));
    let (p11, limited, plain) = cost(rows, "P11", TOLLGATE_LIMITED, TOLLGATE);
    v.push(verdict(
        "P11 budget + rate limit cost (% RPS)",
        p11,
        "<= 5",
        |x| x <= 5.0,
        format!("{limited:.0} with one budget and one rate limit vs {plain:.0} without req/s"),
    ));
    let metered: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            (r.target == TOLLGATE
                || r.target == TOLLGATE_TRANSCRIPTS
                || r.target == TOLLGATE_TRACED
                || r.target == TOLLGATE_LIMITED)
                && r.load.is_some()
        })
        .collect();
    let mut bad = Vec::new();
    let mut checked = 0;
    for r in &metered {
        let Some(l) = &r.load else { continue };
        match r.usage_events {
            // Requests never started (open loop) never reached the gateway: no answer, no event.
            Some(n) if l.errors == l.unsent && n == l.total_2xx as i64 && l.missing_usage == 0 => checked += 1,
            Some(n) => bad.push(format!(
                "{}: {n} events for {} 2xx ({} errors, {} of them never sent; {} without usage)",
                r.scenario, l.total_2xx, l.errors, l.unsent, l.missing_usage
            )),
            None => bad.push(format!("{}: not counted", r.scenario)),
        }
    }
    let total: u64 = metered.iter().filter_map(|r| r.load.as_ref()).map(|l| l.total_2xx).sum();
    v.push(Verdict {
        name: "Usage events: exactly one per 2xx".into(),
        value: Some(bad.len() as f64),
        limit: "0 rows off".into(),
        met: Some(bad.is_empty() && checked > 0),
        detail: if bad.is_empty() {
            format!("{checked} metered rows, {total} responses, every one with exactly one event")
        } else {
            bad.join("; ")
        },
    });
    v
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// What each scenario is, for the table.
pub fn scenario_label(s: &str) -> &'static str {
    match s {
        "P1" => "P1: 50 connections, instant JSON",
        "P2" => "P2: 50 connections, stream of 20 chunks + usage",
        "P3" => "P3: 1 connection, instant JSON",
        "P4" => "P4: open loop, 5,000 req/s",
        "P5" => "P5: paced streams (20 ms to first chunk, 10 ms apart), 50 connections",
        "P6" => "P6: 1,000 concurrent 5 s streams",
        "P7" => "P7: P1 with metering on / off",
        "P8" => "P8: P1 with transcripts on (both toggles) / metering only",
        "P9" => "P9: P5 with transcripts on (both toggles) / metering only",
        "P10" => "P10: P1 with tracing on (every span exported over OTLP/HTTP) / off",
        "P11" => "P11: P1 with one budget and one rate limit active / none",
        "P12" => "P12: P1 in Anthropic's shape (POST /v1/messages), 50 connections, instant JSON",
        _ => "",
    }
}

/// The markdown report: the rows table, then the targets.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {}  \nCommit: `{}`  \nDate: {}\n", s.machine, s.commit, s.date);
    out.push_str(
        "| scenario | target | req/s | p50 ms | p90 ms | p99 ms | TTFT p50 / p99 ms | proxy CPU µs/req (kernel) | proxy RSS MiB (anonymous) | \
         errors | usage events / 2xx | load avg before → after |\n",
    );
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
    let mut last = String::new();
    for r in &s.rows {
        let Some(l) = &r.load else { continue };
        let scen = if r.scenario == last {
            String::new()
        } else {
            format!("{} {}", r.scenario, scenario_label(&r.scenario).split_once(": ").map_or("", |x| x.1))
        };
        last = r.scenario.clone();
        let ttft = l.ttft_us.as_ref().map_or("–".into(), |t| format!("{} / {}", ms(t.p50), ms(t.p99)));
        let (cpu, rss) = match &l.proxy {
            Some(p) => (
                format!("{:.1} ({:.1})", p.cpu_us_per_request, p.cpu_system_us_per_request),
                match p.rss_peak_anon_kib {
                    0 => format!("{:.1}", p.rss_peak_kib as f64 / 1024.0),
                    anon => format!("{:.1} ({:.1})", p.rss_peak_kib as f64 / 1024.0, anon as f64 / 1024.0),
                },
            ),
            None => ("–".into(), "–".into()),
        };
        let usage = r.usage_events.map_or("–".into(), |n| format!("{n} / {}", l.total_2xx));
        let _ = writeln!(
            out,
            "| {scen} | {} | {:.0} | {} | {} | {} | {ttft} | {cpu} | {rss} | {} | {usage} | {} → {} |",
            r.target,
            l.rps,
            ms(l.latency_us.p50),
            ms(l.latency_us.p90),
            ms(l.latency_us.p99),
            l.errors,
            l.loadavg_before,
            l.loadavg_after
        );
    }
    out.push_str("\n| target | value | limit | met | detail |\n|---|--:|---|---|---|\n");
    for v in &s.targets {
        let value = v.value.map_or("–".into(), |x| if x.abs() >= 10.0 { format!("{x:.0}") } else { format!("{x:.2}") });
        let met = match v.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {value} | {} | {met} | {} |", v.name, v.limit, v.detail);
    }
    if !s.skipped.is_empty() {
        out.push_str("\nSkipped:\n\n");
        for x in &s.skipped {
            let _ = writeln!(out, "- {x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Percentiles, ProcStats};

    fn row(scenario: &str, target: &str, rps: f64, cpu: f64, p50: u64) -> Row {
        Row {
            scenario: scenario.into(),
            target: target.into(),
            load: Some(LoadReport {
                rps,
                total_2xx: 100,
                latency_us: Percentiles { p50, ..Percentiles::default() },
                ttft_us: Some(Percentiles { p99: p50 * 2, ..Percentiles::default() }),
                proxy: Some(ProcStats { cpu_us_per_request: cpu, rss_peak_kib: 30 * 1024, ..ProcStats::default() }),
                ..LoadReport::default()
            }),
            usage_events: None,
        }
    }

    #[test]
    fn judges_ratios_within_one_run() {
        let mut p6 = row("P6", TOLLGATE, 0.0, 0.0, 1);
        if let Some(p) = p6.load.as_mut().and_then(|l| l.proxy.as_mut()) {
            p.rss_settled_kib = Some(12 * 1024);
            p.rss_peak_anon_kib = 20 * 1024;
            p.settle_s = Some(5.0);
        }
        let mut rows = vec![
            row("P1", NGINX, 1000.0, 10.0, 100),
            row("P1", TOLLGATE, 950.0, 16.0, 120),
            row("P3", DIRECT, 0.0, 0.0, 50),
            row("P3", TOLLGATE, 0.0, 0.0, 140),
            row("P3", NGINX, 0.0, 0.0, 130),
            p6,
            row("P7", TOLLGATE, 960.0, 0.0, 1),
            row("P7", TOLLGATE_UNMETERED, 1000.0, 0.0, 1),
            row("P9", TOLLGATE, 0.0, 0.0, 1000),
            row("P9", TOLLGATE_TRANSCRIPTS, 0.0, 0.0, 1040),
            row("P9", TOLLGATE_TRANSCRIPTS, 0.0, 0.0, 1100),
            row("P9", TOLLGATE, 0.0, 0.0, 1060),
            row("P10", TOLLGATE, 1000.0, 0.0, 1),
            row("P10", TOLLGATE_TRACED, 930.0, 0.0, 1),
            row("P11", TOLLGATE, 1100.0, 0.0, 1),
            row("P11", TOLLGATE_LIMITED, 900.0, 0.0, 1),
            row("P11", TOLLGATE_LIMITED, 900.0, 0.0, 1),
            row("P11", TOLLGATE, 900.0, 0.0, 1),
            row("P12", TOLLGATE, 900.0, 20.0, 1),
            row("P12", "litellm-rust", 300.0, 90.0, 1),
            Row { scenario: "P1".into(), target: TOLLGATE.into(), load: None, usage_events: Some(100) },
            Row { scenario: "P12".into(), target: TOLLGATE.into(), load: None, usage_events: Some(100) },
            Row { scenario: "P7".into(), target: TOLLGATE.into(), load: None, usage_events: Some(99) },
        ];
        rows = merge(rows);
        assert_eq!(rows.iter().filter(|r| r.scenario == "P11").count(), 4, "each ABBA round stays a row");
        let v = judge(&rows);
        let get = |n: &str| v.iter().find(|x| x.name.starts_with(n)).map(|x| (x.value, x.met));
        assert_eq!(get("P1 RPS"), Some((Some(0.95), Some(true))));
        assert_eq!(get("P1 CPU"), Some((Some(1.6), Some(false))));
        assert_eq!(get("P3"), Some((Some(90.0), Some(true))), "within nginx's 80 µs + 20");
        let p3 = v.iter().find(|x| x.name.starts_with("P3")).map(|x| x.limit.as_str());
        assert_eq!(p3, Some("<= 100 (nginx's + 20)"));
        let without_nginx: Vec<Row> =
            rows.iter().filter(|r| !(r.scenario == "P3" && r.target == NGINX)).cloned().collect();
        let p3 = judge(&without_nginx).into_iter().find(|x| x.name.starts_with("P3")).map(|x| (x.value, x.met));
        assert_eq!(p3, Some((Some(90.0), None)), "no nginx row: shown, not judged");
        assert_eq!(get("P5"), Some((None, None)));
        assert_eq!(get("P6"), Some((Some(30.0), Some(true))));
        let p6 = v.iter().find(|x| x.name.starts_with("P6")).map(|x| x.detail.as_str());
        assert_eq!(
            p6,
            Some("peak over the run (20 MiB of it anonymous), 0 concurrent streams; 12 MiB 5 s after they closed")
        );
        assert!(get("P7").is_some_and(|(v, m)| v.is_some_and(|x| (x - 4.0).abs() < 1e-9) && m == Some(true)));
        // p99 TTFT is twice p50 in these rows: (2080 + 2200) / 2 - (2000 + 2120) / 2
        assert!(get("P9").is_some_and(|(v, m)| v.is_some_and(|x| (x - 80.0).abs() < 1e-9) && m == Some(true)));
        let p9 = v.iter().find(|x| x.name.starts_with("P9")).map(|x| x.detail.as_str());
        assert_eq!(p9, Some("2140 recorded vs 2060 µs metered (mean p99 of 4 runs)"));
        assert!(get("P10").is_some_and(|(v, m)| v.is_some_and(|x| (x - 7.0).abs() < 1e-9) && m == Some(false)));
        assert!(get("P11").is_some_and(|(v, m)| v.is_some_and(|x| (x - 10.0).abs() < 1e-9) && m == Some(false)));
        let usage = v.iter().find(|x| x.name.starts_with("Usage")).map(|x| (x.met, x.detail.clone()));
        assert!(usage.as_ref().is_some_and(|(m, d)| *m == Some(false) && d.contains("P7: 99 events")), "{usage:?}");
        let md = markdown(&Summary {
            machine: "m".into(),
            commit: "c".into(),
            date: "d".into(),
            rows: rows.clone(),
            targets: v,
            skipped: vec!["LangDB ai-gateway: needs a local patch".into()],
        });
        assert!(md.contains("| P1 50 connections, instant JSON | nginx | 1000 |"), "{md}");
        assert!(md.contains("| 30.0 (20.0) |"), "P6's RSS and its anonymous part: {md}");
        assert!(md.contains("| 30.0 | 0 |"), "a row without the anonymous part shows the total alone: {md}");
        assert!(md.contains("| P1 RPS, Tollgate / nginx | 0.95 | >= 0.80 | yes |"), "{md}");
        assert!(
            md.contains(
                "| P12 P1 in Anthropic's shape (POST /v1/messages), 50 connections, instant JSON | tollgate | 900 |"
            ),
            "{md}"
        );
        assert!(md.contains("|  | litellm-rust | 300 |"), "{md}");
        assert!(md.ends_with("\nSkipped:\n\n- LangDB ai-gateway: needs a local patch\n"), "{md}");
    }

    /// Requests of an open-loop rate never sent reached no gateway: they leave the one-event
    /// check alone; any other error fails it, as does an event too many or too few.
    #[test]
    fn usage_check_counts_answers_not_unsent_slots() {
        let usage = |errors: u64, unsent: u64, events: i64| {
            let mut r = row("P4", TOLLGATE, 0.0, 0.0, 1);
            if let Some(l) = r.load.as_mut() {
                (l.errors, l.unsent) = (errors, unsent);
            }
            r.usage_events = Some(events);
            let v = judge(&[r]);
            v.iter().find(|x| x.name.starts_with("Usage")).and_then(|x| x.met)
        };
        assert_eq!(usage(0, 0, 100), Some(true));
        assert_eq!(usage(1, 1, 100), Some(true), "one slot never sent");
        assert_eq!(usage(2, 1, 100), Some(false), "an error that reached the gateway");
        assert_eq!(usage(1, 1, 101), Some(false));
        assert_eq!(usage(0, 0, 99), Some(false));
    }
}
