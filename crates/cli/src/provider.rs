//! `tollgate provider …`: flags → JSON bodies for the LLM provider resource, and the
//! create/get/list/update/delete commands over `/api/v1/llm-providers`.
//!
//! [`create_body`] and [`update_patch`] are pure but for reading the `-f` manifest: they
//! are where the flag grammar lives and are tested without a server. Validation of the
//! resource itself is the server's job; the client only rejects what it cannot express
//! (two config groups, a malformed `--pricing` or `--tags`).

use crate::client::Client;
use crate::client::fetch_pages;
use crate::opts::{OutputFormat, PageArgs};
use crate::output;
use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use tollgate_core::{Microcents, ProviderType};

const COLLECTION: &str = "llm-providers";

/// The `<type>_config` keys, in `ProviderType::ALL` order.
fn config_keys() -> impl Iterator<Item = &'static str> {
    ProviderType::ALL.into_iter().map(ProviderType::config_field)
}

/// Output-only fields of a fetched resource, dropped from manifests before sending.
const OUTPUT_ONLY: [&str; 4] = ["url", "created_at", "updated_at", "@type"];

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Create a provider from flags and/or a manifest (`-f`).
    Create(CreateArgs),
    /// Show one provider.
    Get(NameArg),
    /// List providers.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Change a provider (JSON merge patch built from the flags given).
    Update(UpdateArgs),
    /// Delete a provider.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Test the connection: probe the upstream with the stored credential (exit code 1 on failure).
    Check(CheckArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Provider name.
    pub name: String,
    /// Also check that the upstream lists this model.
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NameArg {
    /// Provider name.
    pub name: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeleteArgs {
    /// Provider name.
    pub name: String,
    /// Also delete the provider's transcripts (recorded bodies); its usage history stays.
    #[arg(long)]
    pub purge_transcripts: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// Provider name (`^[a-z][a-z0-9-]*$`); optional with `-f` when the manifest names it.
    #[arg(required_unless_present = "file")]
    pub name: Option<String>,
    #[command(flatten)]
    pub flags: ProviderFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// Provider name.
    pub name: String,
    #[command(flatten)]
    pub flags: ProviderFlags,
    /// Set a field to null (JSON path with dots, e.g. `anthropic_config.base_url`, `tags.team`). Repeatable.
    #[arg(long = "clear", value_name = "PATH")]
    pub clear: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only providers of this type.
    #[arg(long = "type", value_parser = parse_type)]
    pub provider_type: Option<ProviderType>,
    /// Only enabled (true) or disabled (false) providers.
    #[arg(long, value_name = "true|false")]
    pub enabled: Option<bool>,
    /// Only providers whose name contains this text.
    #[arg(long)]
    pub name_contains: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// The resource flags shared by `create` and `update`. Dots in names mirror the JSON fields.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProviderFlags {
    /// Manifest (JSON or YAML, as printed by `get -o json|yaml`); flags override its fields.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Human-readable name (create defaults it to NAME).
    #[arg(long = "display-name")]
    pub display_name: Option<String>,
    /// openai | anthropic | google | bedrock | openai_compatible | azure_openai (create infers it from the config group used).
    #[arg(long = "type", value_parser = parse_type)]
    pub provider_type: Option<ProviderType>,
    #[arg(long, value_name = "true|false")]
    pub enabled: Option<bool>,

    #[arg(long = "openai-config.base-url", value_name = "URL", help_heading = "OpenAI")]
    pub openai_base_url: Option<String>,
    #[arg(long = "openai-config.api-key-ref", value_name = "SECRET", help_heading = "OpenAI")]
    pub openai_api_key_ref: Option<String>,
    #[arg(long = "openai-config.authorization-passthrough", value_name = "true|false",
          num_args = 0..=1, default_missing_value = "true", help_heading = "OpenAI")]
    pub openai_authorization_passthrough: Option<bool>,

    #[arg(long = "anthropic-config.base-url", value_name = "URL", help_heading = "Anthropic")]
    pub anthropic_base_url: Option<String>,
    #[arg(long = "anthropic-config.api-key-ref", value_name = "SECRET", help_heading = "Anthropic")]
    pub anthropic_api_key_ref: Option<String>,
    #[arg(long = "anthropic-config.authorization-passthrough", value_name = "true|false",
          num_args = 0..=1, default_missing_value = "true", help_heading = "Anthropic")]
    pub anthropic_authorization_passthrough: Option<bool>,

    #[arg(long = "google-config.base-url", value_name = "URL", help_heading = "Google")]
    pub google_base_url: Option<String>,
    #[arg(long = "google-config.api-key-ref", value_name = "SECRET", help_heading = "Google")]
    pub google_api_key_ref: Option<String>,

    #[arg(long = "bedrock-config.region", value_name = "REGION", help_heading = "Bedrock")]
    pub bedrock_region: Option<String>,
    #[arg(long = "bedrock-config.base-url", value_name = "URL", help_heading = "Bedrock")]
    pub bedrock_base_url: Option<String>,
    /// Bedrock guardrail identifier, optionally `:VERSION` (default DRAFT); checked with
    /// GetGuardrail when saved.
    #[arg(long = "bedrock-config.guardrail", value_name = "ID[:VERSION]", help_heading = "Bedrock")]
    pub bedrock_guardrail: Option<String>,
    #[arg(
        long = "bedrock-config.static-credentials.access-key-id-ref",
        value_name = "SECRET",
        help_heading = "Bedrock"
    )]
    pub bedrock_access_key_id_ref: Option<String>,
    #[arg(
        long = "bedrock-config.static-credentials.secret-access-key-ref",
        value_name = "SECRET",
        help_heading = "Bedrock"
    )]
    pub bedrock_secret_access_key_ref: Option<String>,
    #[arg(long = "bedrock-config.assume-role.role-arn", value_name = "ARN", help_heading = "Bedrock")]
    pub bedrock_role_arn: Option<String>,
    #[arg(long = "bedrock-config.assume-role.external-id", value_name = "ID", help_heading = "Bedrock")]
    pub bedrock_external_id: Option<String>,
    #[arg(long = "bedrock-config.assume-role.session-name", value_name = "NAME", help_heading = "Bedrock")]
    pub bedrock_session_name: Option<String>,

    #[arg(long = "openai-compatible-config.base-url", value_name = "URL", help_heading = "OpenAI-compatible")]
    pub openai_compatible_base_url: Option<String>,
    #[arg(long = "openai-compatible-config.api-key-ref", value_name = "SECRET", help_heading = "OpenAI-compatible")]
    pub openai_compatible_api_key_ref: Option<String>,
    #[arg(long = "openai-compatible-config.authorization-passthrough", value_name = "true|false",
          num_args = 0..=1, default_missing_value = "true", help_heading = "OpenAI-compatible")]
    pub openai_compatible_authorization_passthrough: Option<bool>,

    /// The Azure OpenAI resource endpoint, e.g. https://my-resource.openai.azure.com.
    #[arg(long = "azure-openai-config.endpoint", value_name = "URL", help_heading = "Azure OpenAI")]
    pub azure_openai_endpoint: Option<String>,
    #[arg(long = "azure-openai-config.api-key-ref", value_name = "SECRET", help_heading = "Azure OpenAI")]
    pub azure_openai_api_key_ref: Option<String>,
    #[arg(long = "azure-openai-config.authorization-passthrough", value_name = "true|false",
          num_args = 0..=1, default_missing_value = "true", help_heading = "Azure OpenAI")]
    pub azure_openai_authorization_passthrough: Option<bool>,
    /// The api-version the Connect tab's examples use (default 2024-10-21).
    #[arg(long = "azure-openai-config.api-version", value_name = "VERSION", help_heading = "Azure OpenAI")]
    pub azure_openai_api_version: Option<String>,

    /// A model the provider exposes: a name or a JSON object `{"name", "custom_pricing"}`.
    /// Repeatable; replaces the whole list.
    #[arg(long = "provider-models", value_name = "MODEL")]
    pub provider_models: Vec<String>,
    /// Price override in USD per 1M tokens:
    /// `model=M,input=3,output=15,cached=0.3,cache_write_5m=3.75,cache_write_1h=6`.
    /// Repeatable; an omitted key keeps the catalog rate, 0 means free. The model must be in
    /// the provider's model list (`--provider-models`, the manifest's or, on update, the
    /// current one); only the models named change.
    #[arg(long = "pricing", value_name = "SPEC")]
    pub pricing: Vec<String>,
    /// A tag `key=value`. Repeatable.
    #[arg(long = "tags", value_name = "K=V")]
    pub tags: Vec<String>,
    #[arg(long = "transcripts.record-input-messages", value_name = "true|false")]
    pub record_input_messages: Option<bool>,
    #[arg(long = "transcripts.record-output-messages", value_name = "true|false")]
    pub record_output_messages: Option<bool>,
}

fn parse_type(s: &str) -> Result<ProviderType, String> {
    s.parse()
}

/// One config flag that was given: its group key, path inside the group and value.
struct ConfigField {
    group: &'static str,
    path: &'static [&'static str],
    value: Value,
}

impl ProviderFlags {
    fn config_fields(&self) -> Vec<ConfigField> {
        fn s(v: &Option<String>) -> Option<Value> {
            v.as_ref().map(|v| Value::String(v.clone()))
        }
        fn b(v: &Option<bool>) -> Option<Value> {
            v.map(Value::Bool)
        }
        let all: [(&'static str, &'static [&'static str], Option<Value>); 25] = [
            ("openai_config", &["base_url"], s(&self.openai_base_url)),
            ("openai_config", &["api_key_ref"], s(&self.openai_api_key_ref)),
            ("openai_config", &["authorization_passthrough"], b(&self.openai_authorization_passthrough)),
            ("anthropic_config", &["base_url"], s(&self.anthropic_base_url)),
            ("anthropic_config", &["api_key_ref"], s(&self.anthropic_api_key_ref)),
            ("anthropic_config", &["authorization_passthrough"], b(&self.anthropic_authorization_passthrough)),
            ("google_config", &["base_url"], s(&self.google_base_url)),
            ("google_config", &["api_key_ref"], s(&self.google_api_key_ref)),
            ("bedrock_config", &["region"], s(&self.bedrock_region)),
            ("bedrock_config", &["base_url"], s(&self.bedrock_base_url)),
            ("bedrock_config", &["guardrail"], s(&self.bedrock_guardrail)),
            ("bedrock_config", &["static_credentials", "access_key_id_ref"], s(&self.bedrock_access_key_id_ref)),
            (
                "bedrock_config",
                &["static_credentials", "secret_access_key_ref"],
                s(&self.bedrock_secret_access_key_ref),
            ),
            ("bedrock_config", &["assume_role", "role_arn"], s(&self.bedrock_role_arn)),
            ("bedrock_config", &["assume_role", "external_id"], s(&self.bedrock_external_id)),
            ("bedrock_config", &["assume_role", "session_name"], s(&self.bedrock_session_name)),
            ("openai_compatible_config", &["base_url"], s(&self.openai_compatible_base_url)),
            ("openai_compatible_config", &["api_key_ref"], s(&self.openai_compatible_api_key_ref)),
            (
                "openai_compatible_config",
                &["authorization_passthrough"],
                b(&self.openai_compatible_authorization_passthrough),
            ),
            ("azure_openai_config", &["endpoint"], s(&self.azure_openai_endpoint)),
            ("azure_openai_config", &["api_key_ref"], s(&self.azure_openai_api_key_ref)),
            ("azure_openai_config", &["authorization_passthrough"], b(&self.azure_openai_authorization_passthrough)),
            ("azure_openai_config", &["api_version"], s(&self.azure_openai_api_version)),
            ("transcripts", &["record_input_messages"], b(&self.record_input_messages)),
            ("transcripts", &["record_output_messages"], b(&self.record_output_messages)),
        ];
        all.into_iter()
            .filter_map(|(group, path, value)| value.map(|value| ConfigField { group, path, value }))
            .collect()
    }

    /// The single config group the flags use, or an error when they use two.
    fn config_group(&self) -> anyhow::Result<Option<&'static str>> {
        let mut groups: Vec<&'static str> = Vec::new();
        for f in self.config_fields() {
            if config_keys().any(|k| k == f.group) && !groups.contains(&f.group) {
                groups.push(f.group);
            }
        }
        match groups.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => bail!(
                "flags of {} config groups given ({}); a provider has exactly one",
                many.len(),
                many.iter().map(|g| format!("--{}.*", g.replace('_', "-"))).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Writes every flag into `body` (config groups nested, scalars at the top).
    /// `base_models` is the list `--pricing` applies to when `--provider-models` is absent
    /// (the manifest's, or on update the provider's current list); `None` means no list.
    fn apply(&self, body: &mut Map<String, Value>, base_models: Option<Vec<Value>>) -> anyhow::Result<()> {
        if let Some(d) = &self.display_name {
            body.insert("display_name".into(), json!(d));
        }
        if let Some(t) = self.provider_type {
            body.insert("type".into(), json!(t.as_str()));
        }
        if let Some(e) = self.enabled {
            body.insert("enabled".into(), json!(e));
        }
        for f in self.config_fields() {
            let mut path = vec![f.group];
            path.extend_from_slice(f.path);
            set_path(body, &path, f.value);
        }
        if !self.provider_models.is_empty() || !self.pricing.is_empty() {
            let (mut models, source) = if self.provider_models.is_empty() {
                (base_models.unwrap_or_default(), PricingBase::Existing)
            } else {
                (
                    self.provider_models.iter().map(|m| parse_model(m)).collect::<anyhow::Result<Vec<_>>>()?,
                    PricingBase::Flags,
                )
            };
            for spec in &self.pricing {
                let (model, pricing) = parse_pricing(spec)?;
                apply_pricing(&mut models, &model, pricing, source)?;
            }
            body.insert("provider_models".into(), Value::Array(models));
        }
        for t in &self.tags {
            let (k, v) = parse_tag(t)?;
            set_path(body, &["tags", k.as_str()], json!(v));
        }
        Ok(())
    }
}

/// Parses one `--provider-models` value: a JSON object or a bare model name.
pub fn parse_model(s: &str) -> anyhow::Result<Value> {
    let t = s.trim();
    if t.starts_with('{') {
        let v: Value = serde_json::from_str(t).with_context(|| format!("--provider-models `{t}` is not valid JSON"))?;
        if !v.get("name").is_some_and(Value::is_string) {
            bail!("--provider-models `{t}`: the object needs a string `name`");
        }
        Ok(v)
    } else if t.is_empty() {
        bail!("--provider-models: empty model name")
    } else {
        Ok(json!({ "name": t }))
    }
}

/// Parses one `--tags key=value`.
pub fn parse_tag(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => bail!("--tags `{s}`: expected key=value"),
    }
}

/// The `--pricing` keys and the JSON bucket each one fills.
pub const PRICING_KEYS: [(&str, &str); 5] = [
    ("input", "input_per_million"),
    ("output", "output_per_million"),
    ("cached", "cached_input_per_million"),
    ("cache_write_5m", "cache_creation_5m_per_million"),
    ("cache_write_1h", "cache_creation_1h_per_million"),
];

/// Parses `model=M,input=3,output=15,...` (USD per 1M tokens) into the model name and a
/// `custom_pricing` object in integer microcents per 1M. Blank or omitted keys stay absent.
pub fn parse_pricing(spec: &str) -> anyhow::Result<(String, Map<String, Value>)> {
    let mut model: Option<String> = None;
    let mut pricing = Map::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            bail!("--pricing `{spec}`: `{part}` is not key=value");
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "model" {
            if value.is_empty() {
                bail!("--pricing `{spec}`: `model` is empty");
            }
            model = Some(value.to_owned());
            continue;
        }
        let Some((_, bucket)) = PRICING_KEYS.iter().find(|(k, _)| *k == key) else {
            let known: Vec<&str> = PRICING_KEYS.iter().map(|(k, _)| *k).collect();
            bail!("--pricing `{spec}`: unknown key `{key}` (expected model, {})", known.join(", "));
        };
        if value.is_empty() {
            pricing.remove(*bucket);
            continue;
        }
        let micro = Microcents::parse_usd(value).map_err(|e| anyhow::anyhow!("--pricing `{spec}`: `{key}`: {e}"))?;
        pricing.insert((*bucket).to_owned(), json!(micro.0));
    }
    let Some(model) = model else {
        bail!("--pricing `{spec}`: `model=` is required");
    };
    Ok((model, pricing))
}

/// Where the model list `--pricing` applies to came from, for the error when a model is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PricingBase {
    /// `--provider-models` given on this command line.
    Flags,
    /// The manifest's list, or on update the provider's current list.
    Existing,
}

/// Sets (or with an empty `pricing`, removes) the `custom_pricing` of `model` in `models`.
/// `--pricing` never adds a model: the list is the provider's allow-list, so adding one
/// would silently change which models the provider serves.
fn apply_pricing(
    models: &mut [Value],
    model: &str,
    pricing: Map<String, Value>,
    source: PricingBase,
) -> anyhow::Result<()> {
    let Some(entry) = models.iter_mut().find(|m| m.get("name").and_then(Value::as_str) == Some(model)) else {
        let names: Vec<&str> = models.iter().filter_map(|m| m.get("name").and_then(Value::as_str)).collect();
        let listed = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        match source {
            PricingBase::Flags => bail!(
                "--pricing model=`{model}`: the model is not in --provider-models ({listed}); \
                 add `--provider-models {model}` to serve and price it"
            ),
            PricingBase::Existing if names.is_empty() => bail!(
                "--pricing model=`{model}`: the provider has no model list (it serves every model), so there is \
                 nothing to price; pass --provider-models with every model it should serve, `{model}` included"
            ),
            PricingBase::Existing => bail!(
                "--pricing model=`{model}`: the model is not in the provider's model list ({listed}); \
                 pass --provider-models with the full list, `{model}` included, to add it"
            ),
        }
    };
    if let Some(obj) = entry.as_object_mut() {
        if pricing.is_empty() {
            obj.remove("custom_pricing");
        } else {
            obj.insert("custom_pricing".into(), Value::Object(pricing));
        }
    }
    Ok(())
}

/// Sets `path` inside `body`, creating (or replacing non-object) intermediate objects.
pub fn set_path(body: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = body;
    for p in parents {
        let slot = cur.entry((*p).to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else { return };
        cur = next;
    }
    cur.insert((*last).to_owned(), value);
}

/// Reads a JSON or YAML manifest into a JSON object, without its output-only fields.
pub fn read_manifest(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the manifest from stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    parse_manifest(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Parses manifest text (JSON, or YAML which includes JSON) into an object, dropping output-only fields.
pub fn parse_manifest(text: &str) -> anyhow::Result<Map<String, Value>> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => serde_yaml_ng::from_str(text).context("the manifest is neither JSON nor YAML")?,
    };
    let Value::Object(mut map) = value else {
        bail!("the manifest must be an object (a provider as printed by `tollgate provider get -o yaml`)");
    };
    for k in OUTPUT_ONLY {
        map.remove(k);
    }
    Ok(map)
}

fn configs_present(body: &Map<String, Value>) -> Vec<&'static str> {
    config_keys().filter(|k| body.get(*k).is_some_and(|v| !v.is_null())).collect()
}

/// The POST body of `provider create`: the manifest (if any), overridden by the flags.
/// The type is inferred from the one config group present when `--type` is absent.
pub fn create_body(args: &CreateArgs) -> anyhow::Result<Value> {
    let flags = &args.flags;
    flags.config_group()?;
    let mut body = match &flags.file {
        Some(path) => read_manifest(path)?,
        None => Map::new(),
    };
    let file_models = body.get("provider_models").and_then(Value::as_array).cloned();
    flags.apply(&mut body, file_models)?;
    if let Some(name) = &args.name {
        body.insert("name".into(), json!(name));
    }
    let name = match body.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => bail!("missing provider name: pass NAME or set `name` in the manifest"),
    };
    if body.get("display_name").is_none_or(|d| d.is_null() || d.as_str() == Some("")) {
        body.insert("display_name".into(), json!(name));
    }
    let present = configs_present(&body);
    if present.len() > 1 {
        bail!("two config groups given ({}); a provider has exactly one", present.join(", "));
    }
    let ty = body.get("type").and_then(Value::as_str).map(str::to_owned);
    match (ty, present.first()) {
        (None, Some(cfg)) => {
            let inferred = ProviderType::ALL.iter().find(|t| t.config_field() == *cfg).map(|t| t.as_str());
            if let Some(t) = inferred {
                body.insert("type".into(), json!(t));
            }
        }
        (None, None) => bail!(
            "cannot tell the provider type: pass --type or flags of one config group (e.g. --openai-config.api-key-ref)"
        ),
        (Some(t), None) => {
            // An empty config lets the server name the missing field precisely.
            if let Ok(t) = t.parse::<ProviderType>() {
                body.insert(t.config_field().into(), json!({}));
            }
        }
        (Some(_), Some(_)) => {}
    }
    Ok(Value::Object(body))
}

/// The JSON merge patch (RFC 7396) of `provider update`: the manifest (if any), then
/// `--clear` paths set to null, then the flags given. `--provider-models` replaces the whole
/// list; `--pricing` alone changes only the models it names, in the manifest's list or else in
/// `current_models` (the provider's list as fetched; the patch then carries the whole list,
/// since a merge patch replaces arrays); `--tags` merge into the existing tags.
pub fn update_patch(args: &UpdateArgs, current_models: Option<Vec<Value>>) -> anyhow::Result<Value> {
    let flags = &args.flags;
    flags.config_group()?;
    let mut patch = match &flags.file {
        Some(path) => read_manifest(path)?,
        None => Map::new(),
    };
    if patch.get("name").and_then(Value::as_str) == Some(args.name.as_str()) {
        patch.remove("name");
    }
    let base_models = patch.get("provider_models").and_then(Value::as_array).cloned().or(current_models);
    for path in &args.clear {
        let segments: Vec<&str> = path.split('.').map(str::trim).collect();
        if segments.iter().any(|s| s.is_empty()) {
            bail!("--clear `{path}`: expected a dotted JSON path such as anthropic_config.base_url");
        }
        set_path(&mut patch, &segments, Value::Null);
    }
    flags.apply(&mut patch, base_models)?;
    if patch.is_empty() {
        bail!("nothing to update: pass flags, -f FILE or --clear PATH");
    }
    Ok(Value::Object(patch))
}

/// Runs one provider command.
pub async fn run(client: &Client, fmt: OutputFormat, cmd: ProviderCommand) -> anyhow::Result<()> {
    match cmd {
        ProviderCommand::Create(args) => {
            let body = create_body(&args)?;
            let created = client.post(&[COLLECTION], &body).await?.json();
            show_one(&created, fmt, "created")?;
            output::warnings(&created);
            Ok(())
        }
        ProviderCommand::Get(a) => {
            let p = client.get(&[COLLECTION, &a.name], &[]).await?;
            show_one(&p, fmt, "")
        }
        ProviderCommand::Update(args) => {
            // `--pricing` without `--provider-models` edits the current list in place.
            let current_models = if !args.flags.pricing.is_empty() && args.flags.provider_models.is_empty() {
                let current = client.get(&[COLLECTION, &args.name], &[]).await?;
                Some(current.get("provider_models").and_then(Value::as_array).cloned().unwrap_or_default())
            } else {
                None
            };
            let patch = update_patch(&args, current_models)?;
            let updated = client.patch(&[COLLECTION, &args.name], &patch).await?.json();
            show_one(&updated, fmt, "updated")?;
            output::warnings(&updated);
            Ok(())
        }
        ProviderCommand::Delete(a) => {
            let query = if a.purge_transcripts { vec![("purge_transcripts", "true".to_string())] } else { vec![] };
            client.send(reqwest::Method::DELETE, &[COLLECTION, &a.name], &query, None).await?;
            if fmt == OutputFormat::Table {
                output::line(&format!("deleted provider {}", a.name));
            }
            Ok(())
        }
        ProviderCommand::List(a) => list(client, fmt, &a).await,
        ProviderCommand::Check(a) => {
            let body = match &a.model {
                Some(m) => serde_json::json!({"model": m}),
                None => serde_json::json!({}),
            };
            let result = client.post(&[COLLECTION, &a.name, "check"], &body).await?.json();
            if fmt == OutputFormat::Table {
                let verdict = if result["ok"] == true { "PASS" } else { "FAIL" };
                let status = result["upstream_status"].as_u64().map_or("-".to_string(), |s| s.to_string());
                output::line(&format!(
                    "{verdict} {} ({} ms, upstream status {status}): {}",
                    output::cell(&result, "probe"),
                    output::cell(&result, "latency_ms"),
                    output::cell(&result, "message")
                ));
            } else {
                output::document(&result, fmt)?;
            }
            if result["ok"] != true {
                anyhow::bail!("connection check failed: {}", output::cell(&result, "message"));
            }
            Ok(())
        }
    }
}

fn show_one(p: &Value, fmt: OutputFormat, verb: &str) -> anyhow::Result<()> {
    match fmt {
        OutputFormat::Table if !verb.is_empty() => {
            output::line(&format!("{verb} provider {}", output::cell(p, "name")));
            Ok(())
        }
        OutputFormat::Table => {
            output::key_values_usd(p);
            Ok(())
        }
        _ => output::document(p, fmt),
    }
}

/// The query string of `provider list`.
pub fn list_query(a: &ListArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(t) = a.provider_type {
        q.push(("type", t.as_str().to_owned()));
    }
    if let Some(e) = a.enabled {
        q.push(("enabled", e.to_string()));
    }
    if let Some(n) = &a.name_contains {
        q.push(("name_contains", n.clone()));
    }
    q.extend(a.page.query());
    q
}

async fn list(client: &Client, fmt: OutputFormat, a: &ListArgs) -> anyhow::Result<()> {
    let page = fetch_pages(client, COLLECTION, "llm_providers", list_query(a), a.page.all).await?;
    output::listing(&page, fmt, &["NAME", "TYPE", "STATUS", "MODELS", "URL"], provider_row)
}

/// One row of the provider table: NAME, TYPE, STATUS, MODELS, URL.
pub fn provider_row(p: &Value) -> Vec<String> {
    let status = match p.get("enabled").and_then(Value::as_bool) {
        Some(false) => "Disabled",
        _ => "Enabled",
    };
    let models: Vec<&str> = p
        .get("provider_models")
        .and_then(Value::as_array)
        .map(|ms| ms.iter().filter_map(|m| m.get("name").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let models = match models.len() {
        0 => "(all)".to_owned(),
        1 | 2 => models.join(", "),
        n => format!("{} +{}", models[..2].join(", "), n - 2),
    };
    vec![output::cell(p, "name"), output::cell(p, "type"), status.to_owned(), models, output::cell(p, "url")]
}
