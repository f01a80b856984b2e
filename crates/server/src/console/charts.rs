//! Charts as SVG drawn on the server: pure functions from numbers to SVG text.
//!
//! Stacked bars have one bar per time bucket, empty buckets included as zero-height bars so
//! quiet periods keep their place; every segment and bucket has a `<title>` (the browser shows
//! it on hover). Colours come from the Okabe–Ito palette, which stays distinguishable with the
//! common colour-vision deficiencies; series of the same colour (two providers of one type)
//! get different SVG `<pattern>` hatches. Sparklines are small polylines. No JavaScript.
//!
//! What the console's script builds on, and what works without it: a bucket with a link is an
//! SVG `<a>` (Cost & Usage links each bar to its own window, so a click narrows the range);
//! an optional previous-period line is a dashed polyline over the bars; every segment carries
//! `data-series` (its series index) and `data-value` (its formatted value), and every bucket
//! `data-label`, which the script reads for the crosshair tooltip and legend isolation.
//!
//! Chosen over a vendored JavaScript chart library so a page needs no script to show its data
//! and tests can read the numbers from the HTML.

use super::format::esc;
use std::fmt::Write;
use tollgate_core::ProviderType;

/// Okabe & Ito's colour-blind-safe palette (orange, sky blue, bluish green, yellow, blue,
/// vermillion, reddish purple, black).
pub const OKABE_ITO: [&str; 8] =
    ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"];

/// The colour of a provider type: every provider of one type shares it (and differs by hatch).
pub fn type_color(t: ProviderType) -> &'static str {
    match t {
        ProviderType::Openai => OKABE_ITO[2],
        ProviderType::Anthropic => OKABE_ITO[5],
        ProviderType::Google => OKABE_ITO[4],
        ProviderType::Bedrock => OKABE_ITO[0],
        ProviderType::OpenaiCompatible => OKABE_ITO[6],
        ProviderType::AzureOpenai => OKABE_ITO[1],
    }
}

/// Number of distinct fills: solid plus this many hatches.
pub const HATCHES: usize = 5;

/// One series of a stacked bar chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub label: String,
    pub color: String,
    /// 0 = solid; 1..=HATCHES = a hatch pattern over the colour.
    pub hatch: usize,
    /// One value per bucket.
    pub values: Vec<i64>,
}

/// A stacked bar chart.
#[derive(Debug, Clone)]
pub struct BarChart<'a> {
    /// Unique on the page (prefixes pattern ids).
    pub id: &'a str,
    /// Accessible name of the chart.
    pub title: &'a str,
    /// One full label per bucket (tooltips).
    pub buckets: Vec<String>,
    /// One short axis label per bucket.
    pub ticks: Vec<String>,
    pub series: Vec<Series>,
    /// Formats values in tooltips and on the axis.
    pub fmt: fn(i64) -> String,
    pub axis_fmt: fn(i64) -> String,
    pub width: u32,
    pub height: u32,
    /// The smallest axis maximum (so an empty chart still has a sensible scale).
    pub min_top: i64,
    /// Per bucket, where a click on it leads (empty: nowhere); missing entries are no link.
    pub links: Vec<String>,
    /// The previous period's totals, one per bucket, drawn as a dashed line.
    pub previous: Option<Vec<i64>>,
}

/// The pattern definition for a hatch over `color`.
fn pattern(id: &str, color: &str, hatch: usize) -> String {
    let c = esc(color);
    let body = match (hatch - 1) % HATCHES {
        0 => r##"<path d="M0 0V6" stroke="#fff" stroke-width="2.2"/>"##.to_string(),
        1 => r##"<path d="M0 0V6" stroke="#fff" stroke-width="2.2"/>"##.to_string(),
        2 => r##"<path d="M0 0V6M0 0H6" stroke="#fff" stroke-width="1.6"/>"##.to_string(),
        3 => r##"<circle cx="3" cy="3" r="1.3" fill="#fff"/>"##.to_string(),
        _ => r##"<path d="M0 3H6" stroke="#fff" stroke-width="2"/>"##.to_string(),
    };
    let rotate = match (hatch - 1) % HATCHES {
        0 => r#" patternTransform="rotate(45)""#,
        1 => r#" patternTransform="rotate(-45)""#,
        _ => "",
    };
    format!(
        r#"<pattern id="{id}" patternUnits="userSpaceOnUse" width="6" height="6"{rotate}><rect width="6" height="6" fill="{c}"/>{body}</pattern>"#
    )
}

fn fill_of(chart_id: &str, index: usize, s: &Series) -> String {
    if s.hatch == 0 { esc(&s.color) } else { format!("url(#{chart_id}-p{index})") }
}

/// A "nice" axis maximum and step (1, 2 or 5 × 10^k) for values up to `max`, about 4 ticks.
pub fn nice_scale(max: i64) -> (i64, i64) {
    if max <= 0 {
        return (4, 1);
    }
    let raw = (max + 3) / 4;
    let mut mag: i64 = 1;
    while mag <= raw / 10 {
        mag *= 10;
    }
    let step = [1, 2, 5, 10].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10 * mag);
    let top = (max + step - 1) / step * step;
    (top, step)
}

/// A stacked bar chart: one bar per bucket (zero-height when empty), series stacked in order.
pub fn bars(c: &BarChart<'_>) -> String {
    let n = c.buckets.len().max(1);
    let (w, h) = (f64::from(c.width), f64::from(c.height));
    let (left, right, top, bottom) = (64.0, 8.0, 10.0, 26.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let totals: Vec<i64> = (0..c.buckets.len())
        .map(|i| c.series.iter().map(|s| s.values.get(i).copied().unwrap_or(0).max(0)).sum())
        .collect();
    let prev_max = c.previous.as_ref().and_then(|p| p.iter().copied().max()).unwrap_or(0);
    let (ymax, step) = nice_scale(totals.iter().copied().max().unwrap_or(0).max(c.min_top).max(prev_max));
    let y_of = |v: i64| top + plot_h - (v as f64 / ymax as f64) * plot_h;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="bars" id="{id}" viewBox="0 0 {w} {h}" role="{role}" aria-label="{title}" data-buckets="{nb}">"#,
        // an image's children are presentational: with links to follow it is a group
        role = if c.links.iter().any(|l| !l.is_empty()) { "group" } else { "img" },
        id = esc(c.id),
        title = esc(c.title),
        nb = c.buckets.len()
    );
    out.push_str("<defs>");
    for (i, s) in c.series.iter().enumerate() {
        if s.hatch > 0 {
            out.push_str(&pattern(&format!("{}-p{i}", c.id), &s.color, s.hatch));
        }
    }
    out.push_str("</defs>");
    // grid and y axis
    let mut v = 0;
    while v <= ymax {
        let y = y_of(v);
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6eb"/><text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="11" fill="#5f6b7a">{label}</text>"##,
            x2 = w - right,
            tx = left - 6.0,
            ty = y + 4.0,
            label = esc(&(c.axis_fmt)(v))
        );
        v += step;
    }
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.72).max(1.0);
    let label_every = c.buckets.len().div_ceil(12).max(1);
    let baseline = top + plot_h;
    for (i, bucket) in c.buckets.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let link = c.links.get(i).filter(|l| !l.is_empty());
        if let Some(l) = link {
            let _ = write!(
                out,
                r#"<a href="{}" class="bucket-link" aria-label="{}: narrow the range to it">"#,
                esc(l),
                esc(bucket)
            );
        }
        let _ = write!(
            out,
            r#"<g class="bucket" data-total="{t}" data-label="{b}" data-total-label="{tv}"><title>{b}: {tv}</title><rect class="hit" x="{hx:.1}" y="{top}" width="{slot:.1}" height="{plot_h:.1}" fill="transparent"/>"#,
            t = totals[i],
            b = esc(bucket),
            tv = esc(&(c.fmt)(totals[i])),
            hx = left + slot * i as f64,
        );
        if totals[i] == 0 {
            let _ = write!(
                out,
                r##"<rect class="bar-empty" x="{x:.1}" y="{baseline:.1}" width="{bar_w:.1}" height="0" fill="#cfd4dc"/>"##
            );
        }
        let mut acc = 0;
        for (si, s) in c.series.iter().enumerate() {
            let val = s.values.get(i).copied().unwrap_or(0).max(0);
            if val == 0 {
                continue;
            }
            let (y1, y0) = (y_of(acc + val), y_of(acc));
            acc += val;
            let _ = write!(
                out,
                r#"<rect class="seg" data-series="{si}" data-value="{val}" x="{x:.1}" y="{y1:.2}" width="{bar_w:.1}" height="{hh:.2}" fill="{fill}"><title>{label} · {b}: {val}</title></rect>"#,
                hh = (y0 - y1).max(0.0),
                fill = fill_of(c.id, si, s),
                label = esc(&s.label),
                b = esc(bucket),
                val = esc(&(c.fmt)(val))
            );
        }
        out.push_str("</g>");
        if link.is_some() {
            out.push_str("</a>");
        }
        if i % label_every == 0 {
            let _ = write!(
                out,
                r##"<text x="{cx:.1}" y="{ty}" text-anchor="middle" font-size="11" fill="#5f6b7a">{t}</text>"##,
                cx = x + bar_w / 2.0,
                ty = h - 8.0,
                t = esc(c.ticks.get(i).map_or("", String::as_str))
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{left}" x2="{x2}" y1="{baseline:.1}" y2="{baseline:.1}" stroke="#8a94a3"/>"##,
        x2 = w - right
    );
    if let Some(prev) = &c.previous {
        let pts: Vec<String> = prev
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", left + slot * i as f64 + slot / 2.0, y_of((*v).max(0))))
            .collect();
        let total: i64 = prev.iter().sum();
        let _ = write!(
            out,
            r##"<polyline class="prev" points="{p}" fill="none" stroke="#5f6b7a" stroke-width="1.6" stroke-dasharray="5 4"><title>Previous period: {t}</title></polyline>"##,
            p = pts.join(" "),
            t = esc(&(c.fmt)(total))
        );
        for (i, v) in prev.iter().enumerate() {
            let _ = write!(
                out,
                r##"<circle class="prev-pt" data-bucket="{i}" data-value="{val}" cx="{cx:.1}" cy="{cy:.1}" r="2" fill="#5f6b7a"/>"##,
                val = esc(&(c.fmt)(*v)),
                cx = left + slot * i as f64 + slot / 2.0,
                cy = y_of((*v).max(0))
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A legend swatch (its own tiny SVG, so its pattern id is its own).
pub fn swatch(id: &str, s: &Series) -> String {
    let (defs, fill) = if s.hatch == 0 {
        (String::new(), esc(&s.color))
    } else {
        (format!("<defs>{}</defs>", pattern(id, &s.color, s.hatch)), format!("url(#{id})"))
    };
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">{defs}<rect width="14" height="14" rx="2" fill="{fill}"/></svg>"#
    )
}

/// A sparkline: a polyline over `values` scaled to the box (flat at the bottom when all zero).
pub fn sparkline(values: &[i64], width: u32, height: u32, title: &str) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let n = values.len();
    let pad = 2.0;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = if n <= 1 { w / 2.0 } else { i as f64 * w / (n - 1) as f64 };
            let y = h - pad - (*v.max(&0) as f64 / max as f64) * (h - 2.0 * pad);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{t}"><title>{t}</title><polyline points="{p}" fill="none" stroke="#3b4fd8" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round"/></svg>"##,
        t = esc(title),
        p = points.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>, buckets: usize) -> String {
        bars(&BarChart {
            id: "spend",
            title: "Spend",
            buckets: (0..buckets).map(|i| format!("Day {i}")).collect(),
            ticks: (0..buckets).map(|i| i.to_string()).collect(),
            series,
            fmt: |v| format!("{v} units"),
            axis_fmt: |v| v.to_string(),
            width: 600,
            height: 200,
            min_top: 4,
            links: vec![],
            previous: None,
        })
    }

    fn s(label: &str, color: &str, hatch: usize, values: Vec<i64>) -> Series {
        Series { label: label.into(), color: color.into(), hatch, values }
    }

    #[test]
    fn empty_buckets_are_zero_height_bars_with_tooltips() {
        let svg = chart(vec![s("a", OKABE_ITO[0], 0, vec![0, 5, 0, 0])], 4);
        assert_eq!(svg.matches(r#"<g class="bucket""#).count(), 4);
        assert_eq!(svg.matches(r#"class="bar-empty""#).count(), 3);
        assert_eq!(svg.matches(r#"height="0""#).count(), 3);
        assert!(svg.contains("<title>Day 1: 5 units</title>"));
        assert!(svg.contains("<title>Day 0: 0 units</title>"));
        assert!(svg.contains("<title>a · Day 1: 5 units</title>"));
        assert!(svg.contains(r#"data-buckets="4""#));
    }

    #[test]
    fn segments_stack_and_same_colour_series_get_distinct_hatches() {
        let green = type_color(ProviderType::Openai);
        let svg = chart(vec![s("openai-a", green, 0, vec![3, 1]), s("openai-b", green, 1, vec![1, 1])], 2);
        assert_eq!(svg.matches(r#"class="seg""#).count(), 4);
        assert!(svg.contains(r#"<pattern id="spend-p1""#), "{svg}");
        assert!(svg.contains(r#"fill="url(#spend-p1)""#));
        assert!(!svg.contains("spend-p0"), "the solid series needs no pattern");
        // bucket 0: 3 at the bottom, 1 on top; a 4-unit axis (nice scale 4) fills the plot
        let first = svg.find("openai-a · Day 0").unwrap_or(0);
        let second = svg.find("openai-b · Day 0").unwrap_or(0);
        assert!(first > 0 && second > first);
    }

    #[test]
    fn bars_link_to_their_window_and_the_previous_period_is_a_line() {
        let mut c = BarChart {
            id: "spend",
            title: "Spend",
            buckets: vec!["Day 0".into(), "Day 1".into()],
            ticks: vec!["0".into(), "1".into()],
            series: vec![s("a", OKABE_ITO[0], 0, vec![1, 2])],
            fmt: |v| format!("{v} units"),
            axis_fmt: |v| v.to_string(),
            width: 600,
            height: 200,
            min_top: 4,
            links: vec!["/usage?range=custom&a=1".into(), String::new()],
            previous: Some(vec![3, 9]),
        };
        let svg = bars(&c);
        assert_eq!(svg.matches("<a href=").count(), 1, "only the bucket with a link: {svg}");
        assert!(svg.contains(r#"<a href="/usage?range=custom&amp;a=1" class="bucket-link""#), "{svg}");
        assert!(svg.contains(r#"class="prev""#) && svg.contains("<title>Previous period: 12 units</title>"));
        assert!(svg.contains(r#"data-series="0" data-value="2 units""#));
        // the axis covers the previous period's highest bucket (9 → a 10-unit scale)
        assert!(svg.contains(">10</text>"), "{svg}");
        c.previous = None;
        assert!(!bars(&c).contains("class=\"prev\""));
    }

    #[test]
    fn text_is_escaped() {
        let svg = chart(vec![s("<script>", "#000", 0, vec![1])], 1);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn nice_scales() {
        assert_eq!(nice_scale(0), (4, 1));
        assert_eq!(nice_scale(4), (4, 1));
        assert_eq!(nice_scale(7), (8, 2));
        assert_eq!(nice_scale(95), (100, 50));
        assert_eq!(nice_scale(1_000), (1_000, 500));
        let (top, step) = nice_scale(123_456_789);
        assert!(top >= 123_456_789 && top % step == 0 && top / step <= 5, "{top} {step}");
    }

    #[test]
    fn palette_and_swatches() {
        let colors: std::collections::HashSet<_> = ProviderType::ALL.iter().map(|t| type_color(*t)).collect();
        assert_eq!(colors.len(), ProviderType::ALL.len(), "one colour per type");
        assert!(colors.iter().all(|c| OKABE_ITO.contains(c)));
        let sw = swatch("lg-1", &s("x", OKABE_ITO[1], 2, vec![]));
        assert!(sw.contains(r#"<pattern id="lg-1""#) && sw.contains("url(#lg-1)"));
        assert!(!swatch("lg-2", &s("x", OKABE_ITO[1], 0, vec![])).contains("pattern"));
    }

    #[test]
    fn sparklines() {
        let sp = sparkline(&[0, 5, 10], 100, 20, "spend");
        assert!(sp.contains(r#"points="0.0,18.0 50.0,10.0 100.0,2.0""#), "{sp}");
        assert!(sparkline(&[0, 0], 10, 10, "x").contains("0.0,8.0 10.0,8.0"));
    }
}
