//! Everything the binary prints goes through here: documents (`-o json|yaml`), tables,
//! key/value views, notes on stderr and the final error report.
//!
//! Writes to stdout ignore a closed pipe (`tollgate provider list | head`) instead of
//! panicking. This module must not talk to the network.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::client::{ApiError, Listing};
use crate::opts::OutputFormat;
use serde_json::Value;
use std::io::Write as _;
use tollgate_core::Microcents;

/// Prints one line on stdout.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
}

/// Prints one line on stderr (notes, hints: never data a script would parse).
pub fn note(s: &str) {
    eprintln!("{s}");
}

/// Renders a JSON value as pretty JSON or YAML text.
pub fn render(value: &Value, fmt: OutputFormat) -> anyhow::Result<String> {
    Ok(match fmt {
        OutputFormat::Yaml => serde_yaml_ng::to_string(value)?,
        OutputFormat::Json | OutputFormat::Table => serde_json::to_string_pretty(value)?,
    })
}

/// Prints a JSON value as pretty JSON or YAML.
pub fn document(value: &Value, fmt: OutputFormat) -> anyhow::Result<()> {
    let text = render(value, fmt)?;
    line(text.trim_end_matches('\n'));
    Ok(())
}

/// Formats rows under headers, columns padded to their widest cell.
pub fn format_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            s.push_str(cell);
            if i < last {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count()) + 3;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = fmt_row(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&fmt_row(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Prints a table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    line(&format_table(headers, rows));
}

/// Flattens a JSON document to `(dotted.path, value)` pairs; nulls and empty containers are skipped.
pub fn flatten(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Null => {}
            Value::Object(map) => {
                for (k, v) in map {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// Prints a resource as `key  value` lines.
/// One `warning: <text>` line on stderr.
#[allow(clippy::print_stderr)]
pub fn warning(text: &str) {
    eprintln!("warning: {text}");
}

/// The `warnings` of an answer, one `warning: <field>: <message>` line each on stderr (stdout
/// keeps only the document, so `-o json` stays parseable).
#[allow(clippy::print_stderr)]
pub fn warnings(answer: &Value) {
    for w in answer.get("warnings").and_then(Value::as_array).into_iter().flatten() {
        eprintln!("warning: {}: {}", cell(w, "field"), cell(w, "message"));
    }
}

pub fn key_values(value: &Value) {
    let pairs = flatten(value);
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:<width$}   {v}")).collect();
    line(&text.join("\n"));
}

/// A price in integer microcents per 1M tokens as exact USD: `300000000` → `$3`, `7500000` → `$0.075`.
pub fn usd_per_million(microcents: i64) -> String {
    format!("${}", Microcents(microcents).to_usd_string())
}

/// A copy of an API document for a table: every integer field named `*_per_million` (a price
/// in microcents per 1M tokens: catalog pricing, its tiers, a provider's `custom_pricing`)
/// becomes exact USD (`$3`), so tables show USD per 1M like `--pricing` takes. Answers whether
/// any price was converted. JSON and YAML output keep the API's integers.
pub fn prices_in_usd(value: &Value) -> (Value, bool) {
    fn walk(v: &mut Value, changed: &mut bool) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match v.as_i64() {
                        Some(m) if k.ends_with("_per_million") => {
                            *v = Value::String(usd_per_million(m));
                            *changed = true;
                        }
                        _ => walk(v, changed),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, changed)),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }
    let mut out = value.clone();
    let mut changed = false;
    walk(&mut out, &mut changed);
    (out, changed)
}

/// Prints a resource as `key  value` lines with prices in USD per 1M tokens (see
/// [`prices_in_usd`]), and says so on stderr when it has prices.
pub fn key_values_usd(value: &Value) {
    let (shown, priced) = prices_in_usd(value);
    key_values(&shown);
    if priced {
        note("prices in USD per 1M tokens");
    }
}

/// A string field of a JSON object, or `-` when absent, null or empty.
pub fn cell(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Prints the final error of a command on stderr: `Error: <message>`, then `field:` and
/// `code:` lines when the server named them.
pub fn error(err: &anyhow::Error) {
    eprintln!("{}", error_text(err));
}

/// The text [`error`] prints.
pub fn error_text(err: &anyhow::Error) -> String {
    match err.downcast_ref::<ApiError>() {
        Some(api) => {
            let mut s = format!("Error: {}", api.message);
            if let Some(field) = &api.field {
                s.push_str(&format!("\n  field: {field}"));
            }
            if let Some(code) = &api.code {
                s.push_str(&format!("\n  code: {code}"));
            }
            if let Some(hint) = &api.hint {
                s.push_str(&format!("\n  hint: {hint}"));
            }
            s
        }
        None => format!("Error: {err:#}"),
    }
}

/// Prints a fetched list: the document for `-o json|yaml`, else a table of `row(item)` and,
/// when more pages exist, a note on stderr saying how to get them.
pub fn listing(
    list: &Listing,
    fmt: OutputFormat,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> anyhow::Result<()> {
    if fmt != OutputFormat::Table {
        return document(&list.document, fmt);
    }
    let rows: Vec<Vec<String>> = list.items.iter().map(row).collect();
    table(headers, &rows);
    if let Some(t) = &list.next {
        note(&format!("more results: --page-token {t} (or --all)"));
    }
    Ok(())
}
