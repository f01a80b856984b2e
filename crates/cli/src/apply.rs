//! GitOps: `tollgate apply -f FILE|DIR|-` and `tollgate diff -f …` over manifests.
//!
//! A manifest is the shape `tollgate provider get -o yaml` (`budget get`, `rate-limit get`)
//! prints plus `kind: Provider` (`Budget`, `RateLimit`) (several documents per file, `---`
//! between them; JSON works too). Output-only fields (`url`, `created_at`, `updated_at`,
//! `warnings`, a budget's spend and period) are ignored. Manifests name secrets
//! (`api_key_ref`), never hold their values. `--prune` deletes, of each kind the files hold,
//! what they no longer name (a run with only providers never deletes budgets).
//!
//! Both commands first read and validate every document — with the same rules the server
//! applies (`tollgate_core::ProviderSpec`), plus: one document per name, the type of an existing
//! provider unchanged, and every referenced secret present — and change nothing when any
//! document fails (all or nothing per run). Then `apply` creates, updates (a merge patch from
//! the stored provider to the manifest, so a field left out of the manifest returns to its
//! default) or leaves each provider alone, and with `--prune` deletes the providers the files no
//! longer name. A server-side failure after validation (a concurrent change) stops the run and
//! is reported with what was already done. Before writing (and for `--dry-run`), every create
//! and update is sent to the server as a dry run ([`rehearse`]), so the rules only the server
//! can check (the upstream address policy, secret host bindings, provider scope, budget
//! overrides) refuse the whole run up front. What a rehearsal cannot see is a conflict between
//! two documents of the same run (two new providers binding one secret to two hosts) or a
//! concurrent change: those still stop the run midway.
//!
//! Exit status: `apply` 0, or 2 on an error; `diff` 0 when nothing differs, 1 when something
//! does, 2 on an error ([`Exit`]).

use crate::client::{Client, fetch_pages};
use anyhow::{Context, anyhow, bail};
use reqwest::Method;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use tollgate_core::ProviderSpec;
use tollgate_core::budget::{BudgetSpec, RateLimitSpec};
use tollgate_server::admin::Strict;

/// Flags of `apply` and `diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// Manifest file, directory (every `*.yaml`, `*.yml`, `*.json` in it, sorted by name) or
    /// `-` for standard input; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Also delete, of each kind the manifests hold, what they no longer name (off by default).
    #[arg(long)]
    pub prune: bool,
    /// `apply` only: print what would change (every create and update rehearsed by the
    /// server), change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// An exit status chosen by the command itself (the error, if any, was already printed).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The kinds a manifest may hold.
const PROVIDER: &str = "Provider";
const KINDS: [Kind; 3] = [Kind::Provider, Kind::Budget, Kind::RateLimit];

/// A resource kind: its manifest name, API collection and list key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Provider,
    Budget,
    RateLimit,
}

impl Kind {
    fn manifest(self) -> &'static str {
        match self {
            Kind::Provider => PROVIDER,
            Kind::Budget => "Budget",
            Kind::RateLimit => "RateLimit",
        }
    }

    fn collection(self) -> &'static str {
        match self {
            Kind::Provider => "llm-providers",
            Kind::Budget => "budgets",
            Kind::RateLimit => "rate-limits",
        }
    }

    fn list_key(self) -> &'static str {
        match self {
            Kind::Provider => "llm_providers",
            Kind::Budget => "budgets",
            Kind::RateLimit => "rate_limits",
        }
    }

    /// `provider`, `budget`, `rate-limit`: how messages name the kind.
    fn label(self) -> &'static str {
        match self {
            Kind::Provider => "provider",
            Kind::Budget => "budget",
            Kind::RateLimit => "rate-limit",
        }
    }

    /// `name` for providers (as before budgets existed), `kind/name` for the others.
    fn diff_name(self, name: &str) -> String {
        match self {
            Kind::Provider => name.to_string(),
            Kind::Budget | Kind::RateLimit => format!("{}/{name}", self.label()),
        }
    }

    /// The spec as the server would store it (validated by the shared rules, output-only
    /// fields dropped).
    fn normalise(self, v: Value) -> Result<Value, tollgate_core::ValidationError> {
        match self {
            Kind::Provider => normalise(v),
            Kind::Budget => Ok(serde_json::to_value(BudgetSpec::from_value(v)?).unwrap_or(Value::Null)),
            Kind::RateLimit => Ok(serde_json::to_value(RateLimitSpec::from_value(v)?).unwrap_or(Value::Null)),
        }
    }
}

/// Fields the server sets; a manifest copied from `get -o yaml` carries them, apply ignores them.
const OUTPUT_ONLY: [&str; 4] = ["url", "created_at", "updated_at", "warnings"];

/// One validated document.
#[derive(Debug, Clone)]
struct Desired {
    kind: Kind,
    name: String,
    /// Where it came from, for messages: `file#N`.
    origin: String,
    /// The normalised spec as JSON (output-only fields cleared).
    spec: Value,
}

/// What a run would do to one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Create,
    Update { fields: Vec<String>, patch: Value },
    Unchanged,
    Delete,
}

/// `tollgate apply`.
pub async fn apply(client: &Client, a: ApplyArgs) -> anyhow::Result<()> {
    let plan = match plan(client, &a).await {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let rehearsed = match rehearse(client, &plan).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    // What this run creates: a dry run's warning about one of them will not hold after the run.
    let created: Vec<String> = plan
        .iter()
        .filter(|((kind, _), change, _)| *kind == Kind::Provider && *change == Change::Create)
        .map(|((_, name), _, _)| format!("provider \"{name}\""))
        .collect();
    let mut done_count = 0;
    for (((kind, name), change, desired), rehearsal) in plan.iter().zip(&rehearsed) {
        let coll = kind.collection();
        let verb = match change {
            Change::Create => "created",
            Change::Update { .. } => "updated",
            Change::Unchanged => "unchanged",
            Change::Delete => "deleted",
        };
        let origin = desired.as_ref().map_or("", |d| d.origin.as_str());
        let answer = if a.dry_run {
            rehearsal.clone()
        } else {
            let done = match change {
                Change::Create => client.post(&[coll], desired.as_ref().map_or(&Value::Null, |d| &d.spec)).await,
                Change::Update { patch, .. } => client.patch(&[coll, name], patch).await,
                Change::Unchanged => Ok(crate::client::Answer { status: 200, body: None }),
                Change::Delete => client.delete(&[coll, name]).await,
            };
            match done {
                Ok(answer) => answer.body,
                Err(e) => {
                    let what = refusal(&e, origin, kind.label(), name);
                    return fail(&anyhow!(
                        "{what}\nthe run stopped there: the {done_count} change(s) listed above stay applied; \
                         nothing after it was applied"
                    ));
                }
            }
        };
        if *change != Change::Unchanged {
            done_count += 1;
        }
        let suffix = if a.dry_run && *change != Change::Unchanged { " (dry run)" } else { "" };
        crate::output::line(&format!("{verb} {}/{name}{suffix}", kind.label()));
        for w in answer.iter().flat_map(|b| b["warnings"].as_array().cloned().unwrap_or_default()) {
            let message = w["message"].as_str().unwrap_or_default();
            if a.dry_run && created.iter().any(|p| message.starts_with(p.as_str())) {
                continue;
            }
            crate::output::warning(&format!(
                "{origin}: {}/{name}: {}: {message}",
                kind.label(),
                w["field"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// A server refusal of one document: `origin: kind/name: message` (the API's message already
/// starts with the field it names).
fn refusal(e: &anyhow::Error, origin: &str, label: &str, name: &str) -> String {
    match e.downcast_ref::<crate::client::ApiError>() {
        Some(api) => format!("{origin}: {label}/{name}: {}", api.message),
        None => format!("{origin}: {label}/{name}: {e:#}"),
    }
}

/// Sends every create and update of the plan as a dry run (`?dry_run=true`: the server runs
/// all its checks, its database's inside the write's own transaction, and rolls back), and
/// fails, naming every document the server refuses, before anything is written: rules only the
/// server knows (the upstream address policy, a secret bound to another host, a provider
/// scope, one override per user or agent) refuse the run, not its middle. Answers each plan
/// entry's rehearsal answer (None for what is not rehearsed: unchanged, deleted).
async fn rehearse(client: &Client, plan: &Plan) -> anyhow::Result<Vec<Option<Value>>> {
    let dry = [("dry_run", "true".to_string())];
    let mut problems = Vec::new();
    let mut answers = Vec::with_capacity(plan.len());
    for ((kind, name), change, desired) in plan {
        let (Some(d), coll) = (desired, kind.collection()) else {
            answers.push(None);
            continue;
        };
        let sent = match change {
            Change::Create => client.send(Method::POST, &[coll], &dry, Some((&d.spec, "application/json"))).await,
            Change::Update { patch, .. } => {
                client.send(Method::PATCH, &[coll, name], &dry, Some((patch, crate::client::MERGE_PATCH))).await
            }
            Change::Unchanged | Change::Delete => {
                answers.push(None);
                continue;
            }
        };
        match sent {
            Ok(answer) => answers.push(answer.body),
            Err(e) if e.downcast_ref::<crate::client::ApiError>().is_some() => {
                problems.push(refusal(&e, &d.origin, kind.label(), name));
                answers.push(None);
            }
            Err(e) => return Err(e),
        }
    }
    if !problems.is_empty() {
        bail!("nothing was changed (the server refused):\n  {}", problems.join("\n  "));
    }
    Ok(answers)
}

/// `tollgate diff`.
pub async fn diff(client: &Client, a: ApplyArgs) -> anyhow::Result<()> {
    let plan = match plan(client, &a).await {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let mut differs = false;
    for ((kind, name), change, _) in &plan {
        let name = kind.diff_name(name);
        let line = match change {
            Change::Create => format!("+ {name}"),
            Change::Update { fields, .. } => format!("~ {name} (update: {})", fields.join(", ")),
            Change::Unchanged => format!("= {name}"),
            Change::Delete => format!("- {name}"),
        };
        differs |= *change != Change::Unchanged;
        crate::output::line(&line);
    }
    if differs { Err(Exit(1).into()) } else { Ok(()) }
}

fn fail(e: &anyhow::Error) -> anyhow::Result<()> {
    crate::output::error(e);
    Err(Exit(2).into())
}

/// What a run does: per (kind, name), its change and the document.
type Plan = Vec<((Kind, String), Change, Option<Desired>)>;

/// Reads and validates every document, compares with the server: the change per resource, by
/// kind then name (deletions last).
async fn plan(client: &Client, a: &ApplyArgs) -> anyhow::Result<Plan> {
    let desired = read_all(&a.files)?;
    let mut current: BTreeMap<(Kind, String), Value> = BTreeMap::new();
    for kind in KINDS {
        let listing = fetch_pages(client, kind.collection(), kind.list_key(), Vec::new(), true).await?;
        for p in listing.items {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let spec = kind.normalise(p).map_err(|e| anyhow!("the server's {}: {e}", kind.label()))?;
            current.insert((kind, name), spec);
        }
    }
    let secrets = fetch_pages(client, "secrets", "secrets", Vec::new(), true).await?;
    let secrets: BTreeSet<String> =
        secrets.items.iter().filter_map(|s| s["name"].as_str().map(str::to_string)).collect();

    let mut problems = Vec::new();
    for d in desired.values().filter(|d| d.kind == Kind::Provider) {
        if let Some(cur) = current.get(&(d.kind, d.name.clone()))
            && cur["type"] != d.spec["type"]
        {
            problems.push(format!(
                "{}: provider/{}: type is immutable ({} on the server, {} in the manifest): delete it first",
                d.origin, d.name, cur["type"], d.spec["type"]
            ));
        }
        for secret in secret_refs(&d.spec) {
            if !secrets.contains(&secret) {
                problems.push(format!(
                    "{}: provider/{}: secret \"{secret}\" does not exist (store it with `tollgate secret set {secret}`)",
                    d.origin, d.name
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!("nothing was changed:\n  {}", problems.join("\n  "));
    }

    let mut plan = Vec::new();
    for (key, d) in &desired {
        let change = match current.get(key) {
            None => Change::Create,
            Some(cur) => {
                let mut fields = Vec::new();
                changed_paths(cur, &d.spec, "", &mut fields);
                if fields.is_empty() {
                    Change::Unchanged
                } else {
                    Change::Update { fields, patch: merge_patch(cur, &d.spec) }
                }
            }
        };
        plan.push((key.clone(), change, Some(d.clone())));
    }
    if a.prune {
        // Only the kinds the manifests hold: a providers-only run never deletes budgets.
        let kinds: BTreeSet<Kind> = desired.keys().map(|(k, _)| *k).collect();
        for key in current.keys().filter(|k| kinds.contains(&k.0) && !desired.contains_key(*k)) {
            plan.push((key.clone(), Change::Delete, None));
        }
    }
    Ok(plan)
}

/// Every document of every file, validated; keyed by kind and name (a name twice is an error).
fn read_all(files: &[String]) -> anyhow::Result<BTreeMap<(Kind, String), Desired>> {
    let mut docs: Vec<(String, Value)> = Vec::new();
    for f in files {
        for (path, text) in sources(f)? {
            let mut n = 0;
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                n += 1;
                let v = match tollgate_server::admin::strict_value(doc) {
                    Ok(v) => v,
                    Err(Strict::Duplicate { path: key }) => bail!(
                        "nothing was changed:\n  {path}#{n}: {key}: appears twice in one mapping; a key may appear \
                         once (it is never resolved to the last value)"
                    ),
                    Err(Strict::Format(e)) => {
                        return Err(e).with_context(|| format!("{path}#{n}: not valid YAML or JSON"));
                    }
                };
                if !v.is_null() {
                    docs.push((format!("{path}#{n}"), v));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (origin, v) in docs {
        match desired_of(&origin, v) {
            Ok(d) => {
                let key = (d.kind, d.name.clone());
                if let Some(first) = out.get(&key).map(|x: &Desired| x.origin.clone()) {
                    problems.push(format!("{origin}: {}/{} is also defined in {first}", d.kind.label(), d.name));
                } else {
                    out.insert(key, d);
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        bail!("nothing was changed:\n  {}", problems.join("\n  "));
    }
    Ok(out)
}

/// One document → its provider name and normalised spec (`origin` prefixes every message).
pub fn validate_document(origin: &str, v: Value) -> anyhow::Result<(String, Value)> {
    desired_of(origin, v).map(|d| (d.name, d.spec))
}

fn desired_of(origin: &str, v: Value) -> anyhow::Result<Desired> {
    let Value::Object(mut m) = v else { bail!("{origin}: a manifest document must be a mapping") };
    let expected = "`Provider`, `Budget` or `RateLimit`";
    let kind = match m.remove("kind") {
        Some(Value::String(k)) => match KINDS.into_iter().find(|x| x.manifest() == k) {
            Some(kind) => kind,
            None => bail!("{origin}: kind: unknown kind `{k}`; expected {expected}"),
        },
        _ => bail!("{origin}: kind: required (`kind: {PROVIDER}`; one of {expected})"),
    };
    let spec = kind.normalise(Value::Object(m)).map_err(|e| anyhow!("{origin}: {e}"))?;
    let name = spec["name"].as_str().unwrap_or_default().to_string();
    Ok(Desired { kind, name, origin: origin.to_string(), spec })
}

/// The spec as the server would store it: validated and normalised by the shared rules, with
/// output-only fields removed.
fn normalise(v: Value) -> Result<Value, tollgate_core::ValidationError> {
    let mut v = v;
    if let Value::Object(m) = &mut v {
        for k in OUTPUT_ONLY {
            m.remove(k);
        }
    }
    let spec = ProviderSpec::from_value(v)?;
    Ok(serde_json::to_value(spec).unwrap_or(Value::Null))
}

/// The `(path, text)` of each manifest a `-f` argument names.
fn sources(arg: &str) -> anyhow::Result<Vec<(String, String)>> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading manifests from standard input")?;
        return Ok(vec![("<stdin>".to_string(), s)]);
    }
    let path = Path::new(arg);
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading the directory {arg}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|x| x.to_str()).is_some_and(|x| matches!(x, "yaml" | "yml" | "json")))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// The secret names a normalised spec references (`*_ref` strings anywhere in it).
pub fn secret_refs(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) if k.ends_with("_ref") => out.push(s.clone()),
                        other => walk(other, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(spec, &mut out);
    out
}

/// Dotted paths of the leaves that differ (objects are compared member by member; arrays and
/// scalars as a whole).
pub fn changed_paths(cur: &Value, want: &Value, prefix: &str, out: &mut Vec<String>) {
    match (cur, want) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                changed_paths(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), &path, out);
            }
        }
        (a, b) if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// The RFC 7396 merge patch that turns `cur` into `want`.
pub fn merge_patch(cur: &Value, want: &Value) -> Value {
    match (cur, want) {
        (Value::Object(a), Value::Object(b)) => {
            let mut p = Map::new();
            for (k, bv) in b {
                match a.get(k) {
                    Some(av) if av == bv => {}
                    Some(av) if av.is_object() && bv.is_object() => {
                        p.insert(k.clone(), merge_patch(av, bv));
                    }
                    _ => {
                        p.insert(k.clone(), bv.clone());
                    }
                }
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                p.insert(k.clone(), Value::Null);
            }
            Value::Object(p)
        }
        (_, b) => b.clone(),
    }
}
