//! Create and edit a provider (`/providers/new`, `/providers/{name}/edit`), plus the two small
//! JSON endpoints the form's script uses: the live Resource ID check and the model catalog.
//!
//! The form is rendered from a [`ProviderForm`] (so a refused submission comes back with every
//! value kept and each error next to its field) and posts a plain urlencoded form. The handler
//! turns it into the provider JSON the admin API takes and saves it through the same functions
//! as the API ([`crate::admin::providers::create_spec`] / `update_spec`).
//!
//! Secrets created inline ("New" tab) are written only after the provider has passed every
//! check that does not need them (all of [`ProviderSpec`]'s validation, plus the new names and
//! values); if saving the provider still fails (a guardrail lookup, a race), the secrets just
//! created are deleted again, so a refused form leaves nothing behind. A "new" name that already
//! exists is refused instead of overwriting that secret.

use super::{Console, ConsoleError, Form, Layout, Session, format, html_page, type_icon};
use crate::admin;
use crate::error::ApiError;
use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use tollgate_core::catalog::{Catalog, CatalogPricing, ModelEntry, split_bedrock_profile};
use tollgate_core::money::Microcents;
use tollgate_core::{ProviderSpec, ProviderType, Role, validate};

/// The five override buckets, in rate-card order, with their labels.
pub const PRICE_BUCKETS: [(&str, &str); 5] = [
    ("input_per_million", "Input"),
    ("output_per_million", "Output"),
    ("cached_input_per_million", "Cached input"),
    ("cache_creation_5m_per_million", "Cache write (5-minute TTL)"),
    ("cache_creation_1h_per_million", "Cache write (1-hour TTL)"),
];

/// What each type card says.
fn blurb(t: ProviderType) -> &'static str {
    t.descriptor().description
}

/// A type card of the form.
#[derive(Debug)]
pub struct TypeCard {
    pub value: &'static str,
    pub label: &'static str,
    pub blurb: &'static str,
    pub icon: String,
    pub checked: bool,
}

/// A secret reference field with its Existing / New tabs.
#[derive(Debug, Clone, Default)]
pub struct SecretField {
    /// The API field path, also the input name: `openai_config.api_key_ref`.
    pub field: String,
    pub label: &'static str,
    pub required: bool,
    /// A suggested name for a new secret.
    pub suggest: &'static str,
    pub mode_new: bool,
    pub existing: String,
    pub new_name: String,
    pub error: String,
    pub new_name_error: String,
    pub new_value_error: String,
}

impl SecretField {
    fn new(field: &str, label: &'static str, required: bool, suggest: &'static str) -> SecretField {
        SecretField { field: field.into(), label, required, suggest, ..SecretField::default() }
    }

    /// An HTML id for the field's inputs.
    pub fn id(&self) -> String {
        self.field.replace(['.', '_'], "-")
    }
}

/// One override field of a model row.
#[derive(Debug, Clone)]
pub struct Override {
    pub bucket: &'static str,
    /// As typed, in dollars per 1M (blank = catalog rate).
    pub value: String,
}

/// A selected model.
#[derive(Debug, Clone)]
pub struct ModelRow {
    pub idx: usize,
    pub name: String,
    pub label: String,
    pub in_price: String,
    pub out_price: String,
    pub overrides: Vec<Override>,
    /// Catalog rates in dollars per 1M (`""` = none), `|`-joined, for the dialog's placeholders.
    pub rates: String,
    pub overridden: bool,
    pub error: String,
    /// Not in the catalog (unpriced) or a bare Bedrock id that needs an inference profile.
    pub warning: String,
    /// The catalog of the form's type has this model (else it was added as a custom ID).
    pub in_catalog: bool,
}

#[derive(Debug, Template)]
#[template(path = "provider_form.html")]
pub struct ProviderForm {
    pub layout: Layout,
    pub editing: bool,
    pub action: String,
    pub cancel_url: String,
    pub display_name: String,
    pub name: String,
    pub ptype: String,
    pub types: Vec<TypeCard>,
    pub enabled: bool,
    pub openai_base_url: String,
    pub openai_passthrough: bool,
    pub openai_key: SecretField,
    pub anthropic_base_url: String,
    pub anthropic_passthrough: bool,
    pub anthropic_key: SecretField,
    pub google_base_url: String,
    pub google_key: SecretField,
    pub compat_base_url: String,
    pub compat_passthrough: bool,
    pub compat_key: SecretField,
    pub azure_endpoint: String,
    pub azure_api_version: String,
    pub azure_passthrough: bool,
    pub azure_key: SecretField,
    pub bedrock_region: String,
    pub bedrock_base_url: String,
    /// `default`, `static` or `assume`.
    pub bedrock_cred: String,
    pub bedrock_access_key: SecretField,
    pub bedrock_secret_key: SecretField,
    pub bedrock_role_arn: String,
    pub bedrock_external_id: String,
    pub bedrock_session_name: String,
    pub bedrock_guardrail: String,
    pub models: Vec<ModelRow>,
    pub next_idx: usize,
    pub record_inputs: bool,
    pub record_outputs: bool,
    pub secrets: Vec<String>,
    pub errors: BTreeMap<String, String>,
    /// Errors that belong to no single input.
    pub general: Vec<String>,
    pub buckets: Vec<(&'static str, &'static str)>,
}

/// Inputs that show their own error (others go to the banner).
const FIELD_INPUTS: [&str; 17] = [
    "name",
    "display_name",
    "type",
    "openai_config.base_url",
    "anthropic_config.base_url",
    "google_config.base_url",
    "openai_compatible_config.base_url",
    "azure_openai_config.endpoint",
    "azure_openai_config.api_version",
    "bedrock_config.region",
    "bedrock_config.base_url",
    "bedrock_config.assume_role.role_arn",
    "bedrock_config.assume_role.external_id",
    "bedrock_config.assume_role.session_name",
    "bedrock_config.guardrail",
    "bedrock_config",
    "provider_models",
];

impl ProviderForm {
    /// The error of an input, or `""`.
    pub fn err(&self, field: &str) -> &str {
        self.errors.get(field).map_or("", String::as_str)
    }

    fn blank(console: &Console, session: &Session, secrets: Vec<String>) -> ProviderForm {
        let _ = console;
        ProviderForm {
            layout: Layout::of(session, "Create LLM provider", "providers"),
            editing: false,
            action: "/providers/new".into(),
            cancel_url: "/providers".into(),
            display_name: String::new(),
            name: String::new(),
            ptype: String::new(),
            types: Vec::new(),
            enabled: true,
            openai_base_url: String::new(),
            openai_passthrough: false,
            openai_key: SecretField::new("openai_config.api_key_ref", "API key reference", true, "OPENAI_API_KEY"),
            anthropic_base_url: String::new(),
            anthropic_passthrough: false,
            anthropic_key: SecretField::new(
                "anthropic_config.api_key_ref",
                "API key reference",
                true,
                "ANTHROPIC_API_KEY",
            ),
            google_base_url: String::new(),
            google_key: SecretField::new("google_config.api_key_ref", "API key reference", true, "GOOGLE_AI_API_KEY"),
            compat_base_url: String::new(),
            compat_passthrough: false,
            compat_key: SecretField::new(
                "openai_compatible_config.api_key_ref",
                "API key reference (optional)",
                false,
                "LOCAL_LLM_API_KEY",
            ),
            azure_endpoint: String::new(),
            azure_api_version: String::new(),
            azure_passthrough: false,
            azure_key: SecretField::new(
                "azure_openai_config.api_key_ref",
                "API key reference",
                true,
                "AZURE_OPENAI_API_KEY",
            ),
            bedrock_region: "us-east-1".into(),
            bedrock_base_url: String::new(),
            bedrock_cred: "default".into(),
            bedrock_access_key: SecretField::new(
                "bedrock_config.static_credentials.access_key_id_ref",
                "Access key ID reference",
                true,
                "AWS_ACCESS_KEY_ID",
            ),
            bedrock_secret_key: SecretField::new(
                "bedrock_config.static_credentials.secret_access_key_ref",
                "Secret access key reference",
                true,
                "AWS_SECRET_ACCESS_KEY",
            ),
            bedrock_role_arn: String::new(),
            bedrock_external_id: String::new(),
            bedrock_session_name: String::new(),
            bedrock_guardrail: String::new(),
            models: Vec::new(),
            next_idx: 0,
            record_inputs: false,
            record_outputs: false,
            secrets,
            errors: BTreeMap::new(),
            general: Vec::new(),
            buckets: PRICE_BUCKETS.to_vec(),
        }
    }

    fn finish(mut self) -> ProviderForm {
        let selected = self.ptype.parse::<ProviderType>().ok();
        self.types = ProviderType::ALL
            .iter()
            .map(|t| TypeCard {
                value: t.as_str(),
                label: t.label(),
                blurb: blurb(*t),
                icon: type_icon(*t),
                checked: selected == Some(*t),
            })
            .collect();
        self.next_idx = self.models.iter().map(|m| m.idx + 1).max().unwrap_or(0);
        // current references that no longer exist still show in the pickers
        let current: Vec<String> = self.secret_fields().iter().map(|f| f.existing.clone()).collect();
        for name in current {
            if !name.is_empty() && !self.secrets.contains(&name) {
                self.secrets.push(name);
            }
        }
        self.secrets.sort();
        self.secrets.dedup();
        self
    }

    fn secret_fields(&self) -> Vec<&SecretField> {
        vec![
            &self.openai_key,
            &self.anthropic_key,
            &self.google_key,
            &self.compat_key,
            &self.azure_key,
            &self.bedrock_access_key,
            &self.bedrock_secret_key,
        ]
    }

    fn secret_fields_mut(&mut self) -> Vec<&mut SecretField> {
        vec![
            &mut self.openai_key,
            &mut self.anthropic_key,
            &mut self.google_key,
            &mut self.compat_key,
            &mut self.azure_key,
            &mut self.bedrock_access_key,
            &mut self.bedrock_secret_key,
        ]
    }

    /// Files an error next to its input (a secret field, a model row) or in the banner.
    fn add_error(&mut self, field: &str, message: &str) {
        if let Some(rest) = field.strip_prefix("provider_models[")
            && let Some((i, _)) = rest.split_once(']')
            && let Some(row) = i.parse::<usize>().ok().and_then(|i| self.models.get_mut(i))
        {
            row.error = message.to_string();
            return;
        }
        for f in self.secret_fields_mut() {
            if field == f.field {
                // with "New", the reference is the new name: its error belongs there, once
                if !f.mode_new {
                    f.error = message.to_string();
                } else if f.new_name_error.is_empty() {
                    f.new_name_error = message.to_string();
                }
                return;
            }
            if let Some(sub) = field.strip_prefix(&f.field) {
                match sub {
                    ".new_name" => f.new_name_error = message.to_string(),
                    _ => f.new_value_error = message.to_string(),
                }
                return;
            }
        }
        if FIELD_INPUTS.contains(&field) {
            self.errors.insert(field.to_string(), message.to_string());
        } else if field.is_empty() {
            self.general.push(message.to_string());
        } else {
            self.general.push(format!("{field}: {message}"));
        }
    }
}

/// Existing secret names (the first 1000), for the pickers.
async fn secret_names(console: &Console) -> Result<Vec<String>, ConsoleError> {
    let page = admin::paging::PageRequest { after: None, limit: 1000 };
    let (items, _) = admin::secrets::list_meta(&console.state, page).await?;
    Ok(items.into_iter().map(|m| m.name).collect())
}

/// Catalog rates (dollars per 1M, `""` when the catalog has none) in bucket order.
fn catalog_rates(p: Option<&CatalogPricing>) -> [String; 5] {
    let r = |v: Option<i64>| v.map(format::rate_input).unwrap_or_default();
    match p {
        None => Default::default(),
        Some(p) => [
            r(p.input_per_million),
            r(p.output_per_million),
            r(p.cached_input_per_million),
            r(p.cache_creation_5m_per_million),
            r(p.cache_creation_1h_per_million),
        ],
    }
}

/// Builds a model row: catalog label and prices, the overrides as typed.
fn model_row(
    console: &Console,
    ptype: Option<ProviderType>,
    idx: usize,
    name: &str,
    overrides: [String; 5],
) -> ModelRow {
    let catalog = console.state.catalog();
    let entry = ptype.and_then(|t| catalog.get(t, name));
    let rates = catalog_rates(entry.map(|e| &e.pricing));
    let shown = |i: usize| {
        if !overrides[i].trim().is_empty() {
            match Microcents::parse_usd(&overrides[i]) {
                Ok(m) => format::rate(m.0),
                Err(_) => overrides[i].clone(),
            }
        } else if rates[i].is_empty() {
            "—".to_string()
        } else {
            Microcents::parse_usd(&rates[i]).map(|m| format::rate(m.0)).unwrap_or_default()
        }
    };
    let priced = overrides.iter().any(|o| !o.trim().is_empty());
    let warning =
        ptype.and_then(|t| tollgate_core::warnings::model_warning(t, name, priced, &catalog)).unwrap_or_default();
    ModelRow {
        idx,
        name: name.to_string(),
        label: entry.map(|e| e.label.clone()).filter(|l| l != name).unwrap_or_default(),
        in_price: shown(0),
        out_price: shown(1),
        overridden: overrides.iter().any(|o| !o.trim().is_empty()),
        overrides: PRICE_BUCKETS
            .iter()
            .zip(overrides)
            .map(|((bucket, _), value)| Override { bucket, value: value.trim().to_string() })
            .collect(),
        rates: rates.join("|"),
        error: String::new(),
        warning,
        in_catalog: entry.is_some(),
    }
}

/// A form filled from a stored provider (for editing).
fn from_spec(console: &Console, session: &Session, spec: &ProviderSpec, secrets: Vec<String>) -> ProviderForm {
    let mut f = ProviderForm::blank(console, session, secrets);
    f.layout = Layout::of(session, format!("Edit {}", spec.display_name), "providers");
    f.editing = true;
    f.action = format!("/providers/{}/edit", spec.name);
    f.cancel_url = format!("/providers/{}", spec.name);
    f.display_name = spec.display_name.clone();
    f.name = spec.name.clone();
    f.ptype = spec.kind().as_str().to_string();
    f.enabled = spec.is_enabled();
    let set = |sf: &mut SecretField, v: &Option<String>| sf.existing = v.clone().unwrap_or_default();
    if let Some(c) = &spec.openai_config {
        f.openai_base_url = c.base_url.clone().unwrap_or_default();
        f.openai_passthrough = c.authorization_passthrough;
        set(&mut f.openai_key, &c.api_key_ref);
    }
    if let Some(c) = &spec.anthropic_config {
        f.anthropic_base_url = c.base_url.clone().unwrap_or_default();
        f.anthropic_passthrough = c.authorization_passthrough;
        set(&mut f.anthropic_key, &c.api_key_ref);
    }
    if let Some(c) = &spec.google_config {
        f.google_base_url = c.base_url.clone().unwrap_or_default();
        set(&mut f.google_key, &c.api_key_ref);
    }
    if let Some(c) = &spec.openai_compatible_config {
        f.compat_base_url = c.base_url.clone().unwrap_or_default();
        f.compat_passthrough = c.authorization_passthrough;
        set(&mut f.compat_key, &c.api_key_ref);
    }
    if let Some(c) = &spec.azure_openai_config {
        f.azure_endpoint = c.endpoint.clone().unwrap_or_default();
        f.azure_api_version = c.api_version.clone().unwrap_or_default();
        f.azure_passthrough = c.authorization_passthrough;
        set(&mut f.azure_key, &c.api_key_ref);
    }
    if let Some(c) = &spec.bedrock_config {
        f.bedrock_region = c.region.clone().unwrap_or_default();
        f.bedrock_base_url = c.base_url.clone().unwrap_or_default();
        f.bedrock_guardrail = c.guardrail.clone().unwrap_or_default();
        if let Some(s) = &c.static_credentials {
            f.bedrock_cred = "static".into();
            set(&mut f.bedrock_access_key, &s.access_key_id_ref);
            set(&mut f.bedrock_secret_key, &s.secret_access_key_ref);
        } else if let Some(r) = &c.assume_role {
            f.bedrock_cred = "assume".into();
            f.bedrock_role_arn = r.role_arn.clone().unwrap_or_default();
            f.bedrock_external_id = r.external_id.clone().unwrap_or_default();
            f.bedrock_session_name = r.session_name.clone().unwrap_or_default();
        }
    }
    f.models = spec
        .provider_models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = m.custom_pricing.clone().unwrap_or_default();
            let v = |x: Option<i64>| x.map(format::rate_input).unwrap_or_default();
            let overrides = [
                v(p.input_per_million),
                v(p.output_per_million),
                v(p.cached_input_per_million),
                v(p.cache_creation_5m_per_million),
                v(p.cache_creation_1h_per_million),
            ];
            model_row(console, spec.provider_type, i, &m.name, overrides)
        })
        .collect();
    f.record_inputs = spec.transcripts.record_input_messages;
    f.record_outputs = spec.transcripts.record_output_messages;
    f.finish()
}

/// A secret to create because a field's "New" tab was used.
#[derive(Clone)]
struct NewSecret {
    field: String,
    name: String,
    value: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret").field("field", &self.field).field("name", &self.name).finish_non_exhaustive()
    }
}

/// Reads a secret field's inputs into `sf`; returns the reference to use (if any) and the secret
/// to create, filing problems on the form.
fn read_secret(
    form: &Form,
    sf: &mut SecretField,
    errors: &mut Vec<(String, String)>,
) -> (Option<String>, Option<NewSecret>) {
    let field = sf.field.clone();
    sf.mode_new = form.get(&format!("{field}.mode")) == Some("new");
    sf.existing = form.text(&field);
    sf.new_name = form.text(&format!("{field}.new_name"));
    if !sf.mode_new {
        return ((!sf.existing.is_empty()).then(|| sf.existing.clone()), None);
    }
    let value = form.get(&format!("{field}.new_value")).unwrap_or_default().to_string();
    if sf.new_name.is_empty() && value.is_empty() && !sf.required {
        return (None, None);
    }
    if let Err(m) = validate::secret_name(&sf.new_name) {
        errors.push((format!("{field}.new_name"), m));
    }
    if value.is_empty() {
        errors.push((format!("{field}.new_value"), "is required: paste the secret value".into()));
    } else if value.chars().count() > admin::secrets::MAX_SECRET_CHARS {
        errors.push((
            format!("{field}.new_value"),
            format!("must be at most {} characters", admin::secrets::MAX_SECRET_CHARS),
        ));
    }
    let name = sf.new_name.clone();
    (Some(name.clone()), Some(NewSecret { field, name, value }))
}

fn opt_str(s: &str) -> Value {
    if s.trim().is_empty() { Value::Null } else { Value::String(s.trim().to_string()) }
}

/// The provider JSON a submitted form stands for, the secrets to create, and the form to show
/// again if anything is refused. Problems found here (prices, new secrets) are filed on the form.
fn read_form(
    console: &Console,
    session: &Session,
    form: &Form,
    secrets: Vec<String>,
    editing: Option<&ProviderSpec>,
) -> (ProviderForm, Value, Vec<NewSecret>, Vec<(String, String)>) {
    let mut f = ProviderForm::blank(console, session, secrets);
    let mut errors: Vec<(String, String)> = Vec::new();
    if let Some(spec) = editing {
        f.layout = Layout::of(session, format!("Edit {}", spec.display_name), "providers");
        f.editing = true;
        f.action = format!("/providers/{}/edit", spec.name);
        f.cancel_url = format!("/providers/{}", spec.name);
        f.name = spec.name.clone();
        f.ptype = spec.kind().as_str().to_string();
        f.enabled = form.checked("enabled");
    } else {
        f.name = form.text("name");
        f.ptype = form.text("type");
    }
    f.display_name = form.get("display_name").unwrap_or_default().to_string();
    let ptype = f.ptype.parse::<ProviderType>().ok();
    let mut new_secrets = Vec::new();
    let mut spec = Map::new();
    spec.insert("name".into(), json!(f.name));
    spec.insert("display_name".into(), json!(f.display_name));
    if !f.ptype.is_empty() {
        spec.insert("type".into(), json!(f.ptype));
    }
    if editing.is_some() {
        spec.insert("enabled".into(), json!(f.enabled));
    }
    // every type's inputs are read back (so switching type loses nothing); only the chosen
    // type's config goes into the provider
    f.openai_base_url = form.text("openai_config.base_url");
    f.openai_passthrough = form.checked("openai_config.authorization_passthrough");
    f.anthropic_base_url = form.text("anthropic_config.base_url");
    f.anthropic_passthrough = form.checked("anthropic_config.authorization_passthrough");
    f.google_base_url = form.text("google_config.base_url");
    f.compat_base_url = form.text("openai_compatible_config.base_url");
    f.compat_passthrough = form.checked("openai_compatible_config.authorization_passthrough");
    f.azure_endpoint = form.text("azure_openai_config.endpoint");
    f.azure_api_version = form.text("azure_openai_config.api_version");
    f.azure_passthrough = form.checked("azure_openai_config.authorization_passthrough");
    f.bedrock_region = form.text("bedrock_config.region");
    f.bedrock_base_url = form.text("bedrock_config.base_url");
    f.bedrock_cred = match form.get("bedrock_config.credential_type") {
        Some(c @ ("static" | "assume")) => c.to_string(),
        _ => "default".into(),
    };
    f.bedrock_role_arn = form.text("bedrock_config.assume_role.role_arn");
    f.bedrock_external_id = form.text("bedrock_config.assume_role.external_id");
    f.bedrock_session_name = form.text("bedrock_config.assume_role.session_name");
    f.bedrock_guardrail = form.text("bedrock_config.guardrail");
    let mut secret_of = |sf: &mut SecretField, used: bool, errors: &mut Vec<(String, String)>| {
        let mut scratch = Vec::new();
        let (r, n) = read_secret(form, sf, if used { errors } else { &mut scratch });
        if used && let Some(n) = n {
            new_secrets.push(n);
        }
        if used { r } else { None }
    };
    let t = ptype;
    let key = secret_of(&mut f.openai_key, t == Some(ProviderType::Openai), &mut errors);
    if t == Some(ProviderType::Openai) {
        spec.insert(
            "openai_config".into(),
            json!({"base_url": opt_str(&f.openai_base_url), "api_key_ref": key,
                   "authorization_passthrough": f.openai_passthrough}),
        );
    }
    let key = secret_of(&mut f.anthropic_key, t == Some(ProviderType::Anthropic), &mut errors);
    if t == Some(ProviderType::Anthropic) {
        spec.insert(
            "anthropic_config".into(),
            json!({"base_url": opt_str(&f.anthropic_base_url), "api_key_ref": key,
                   "authorization_passthrough": f.anthropic_passthrough}),
        );
    }
    let key = secret_of(&mut f.google_key, t == Some(ProviderType::Google), &mut errors);
    if t == Some(ProviderType::Google) {
        spec.insert("google_config".into(), json!({"base_url": opt_str(&f.google_base_url), "api_key_ref": key}));
    }
    let key = secret_of(&mut f.compat_key, t == Some(ProviderType::OpenaiCompatible), &mut errors);
    if t == Some(ProviderType::OpenaiCompatible) {
        spec.insert(
            "openai_compatible_config".into(),
            json!({"base_url": opt_str(&f.compat_base_url), "api_key_ref": key,
                   "authorization_passthrough": f.compat_passthrough}),
        );
    }
    let key = secret_of(&mut f.azure_key, t == Some(ProviderType::AzureOpenai), &mut errors);
    if t == Some(ProviderType::AzureOpenai) {
        spec.insert(
            "azure_openai_config".into(),
            json!({"endpoint": opt_str(&f.azure_endpoint), "api_key_ref": key,
                   "authorization_passthrough": f.azure_passthrough, "api_version": opt_str(&f.azure_api_version)}),
        );
    }
    let is_static = t == Some(ProviderType::Bedrock) && f.bedrock_cred == "static";
    let akid = secret_of(&mut f.bedrock_access_key, is_static, &mut errors);
    let sak = secret_of(&mut f.bedrock_secret_key, is_static, &mut errors);
    if t == Some(ProviderType::Bedrock) {
        let mut c = json!({"region": opt_str(&f.bedrock_region), "base_url": opt_str(&f.bedrock_base_url),
                           "guardrail": opt_str(&f.bedrock_guardrail),
                           "static_credentials": null, "assume_role": null});
        if f.bedrock_cred == "static" {
            c["static_credentials"] = json!({"access_key_id_ref": akid, "secret_access_key_ref": sak});
        } else if f.bedrock_cred == "assume" {
            c["assume_role"] = json!({"role_arn": opt_str(&f.bedrock_role_arn),
                "external_id": opt_str(&f.bedrock_external_id), "session_name": opt_str(&f.bedrock_session_name)});
        }
        spec.insert("bedrock_config".into(), c);
    }
    // models: rows `m<idx>.name` + `m<idx>.<bucket>`, in idx order
    let mut idxs: Vec<usize> = form
        .pairs()
        .iter()
        .filter_map(|(k, _)| k.strip_prefix('m')?.strip_suffix(".name")?.parse::<usize>().ok())
        .collect();
    idxs.sort_unstable();
    idxs.dedup();
    let mut models = Vec::new();
    for idx in idxs {
        let name = form.text(&format!("m{idx}.name"));
        if name.is_empty() {
            continue;
        }
        let overrides: [String; 5] =
            PRICE_BUCKETS.map(|(b, _)| form.get(&format!("m{idx}.{b}")).unwrap_or_default().trim().to_string());
        let pos = f.models.len();
        let mut pricing = Map::new();
        for ((bucket, label), raw) in PRICE_BUCKETS.iter().zip(&overrides) {
            if raw.is_empty() {
                continue;
            }
            match Microcents::parse_usd(raw) {
                Ok(m) => {
                    pricing.insert((*bucket).to_string(), json!(m.0));
                }
                Err(e) => errors.push((
                    format!("provider_models[{pos}].custom_pricing.{bucket}"),
                    format!("{label} price: {e} (dollars per 1M tokens)"),
                )),
            }
        }
        let mut m = json!({"name": name});
        if !pricing.is_empty() {
            m["custom_pricing"] = Value::Object(pricing);
        }
        models.push(m);
        f.models.push(model_row(console, ptype, idx, &name, overrides));
    }
    spec.insert("provider_models".into(), Value::Array(models));
    f.record_inputs = form.checked("transcripts.record_input_messages");
    f.record_outputs = form.checked("transcripts.record_output_messages");
    spec.insert(
        "transcripts".into(),
        json!({"record_input_messages": f.record_inputs, "record_output_messages": f.record_outputs}),
    );
    if let Some(current) = editing {
        spec.insert("tags".into(), json!(current.tags));
    }
    // a "new" secret must really be new, and named once
    let mut seen: Vec<&str> = Vec::new();
    for n in &new_secrets {
        if f.secrets.contains(&n.name) {
            errors.push((
                format!("{}.new_name", n.field),
                format!("a secret named {} already exists: pick it under Existing, or choose another name", n.name),
            ));
        } else if seen.contains(&n.name.as_str()) {
            errors.push((
                format!("{}.new_name", n.field),
                format!("{} is already being created by another field", n.name),
            ));
        }
        seen.push(&n.name);
    }
    (f, Value::Object(spec), new_secrets, errors)
}

/// Files `errors` on the form and renders it with 400.
fn refused(mut f: ProviderForm, errors: Vec<(String, String)>) -> Result<Response, ConsoleError> {
    for (field, msg) in errors {
        f.add_error(&field, &msg);
    }
    f.layout.notice = super::Notice::error("The provider was not saved: fix the fields marked below.");
    html_page(StatusCode::BAD_REQUEST, &f.finish())
}

fn api_error_fields(e: &ApiError) -> Option<Vec<(String, String)>> {
    match e {
        ApiError::InvalidArgument { field, message } | ApiError::Unprocessable { field, message } => {
            Some(vec![(field.clone(), message.clone())])
        }
        ApiError::AlreadyExists(m) => Some(vec![("name".into(), m.clone())]),
        _ => None,
    }
}

/// Creates the new secrets; on failure deletes those already created and says which field.
async fn create_secrets(
    console: &Console,
    token: &tollgate_store::TokenRecord,
    new: &[NewSecret],
) -> Result<Vec<String>, (String, ApiError)> {
    let mut done = Vec::new();
    for n in new {
        match admin::secrets::store_value(&console.state, token, &n.name, &n.value).await {
            Ok(_) => done.push(n.name.clone()),
            Err(e) => {
                undo_secrets(console, &done).await;
                return Err((n.field.clone(), e));
            }
        }
    }
    Ok(done)
}

async fn undo_secrets(console: &Console, names: &[String]) {
    for name in names {
        if let Err(e) = admin::secrets::remove(&console.state, name).await {
            tracing::warn!(secret = %name, error = %e, "could not delete a secret created for a provider that was not saved");
        }
    }
}

/// `GET /providers/new`.
pub async fn new_form(State(console): State<Console>, session: Session) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    let f = ProviderForm::blank(&console, &session, secret_names(&console).await?).finish();
    html_page(StatusCode::OK, &f)
}

/// `POST /providers/new`.
pub async fn create(State(console): State<Console>, session: Session, body: Bytes) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    let form = Form::parse(&body);
    let (f, spec_json, new_secrets, mut errors) =
        read_form(&console, &session, &form, secret_names(&console).await?, None);
    // everything the provider's own rules say, before any secret is written
    let spec = match ProviderSpec::from_value(spec_json) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push((e.field, e.message));
            None
        }
    };
    let Some(spec) = spec.filter(|_| errors.is_empty()) else {
        return refused(f, errors);
    };
    if let Err(e) = session.require_scope(&spec.name) {
        return refused(f, vec![("name".into(), e.to_string())]);
    }
    let created = match create_secrets(&console, &session.token, &new_secrets).await {
        Ok(c) => c,
        Err((field, e)) => return refused(f, vec![(format!("{field}.new_value"), e.to_string())]),
    };
    match admin::providers::create_spec(&console.state, &session.token, spec, admin::Write::Commit).await {
        Ok(p) => {
            let to = format!("/providers/{}?notice=created&name={}", p.name, p.name);
            Ok(Redirect::to(&to).into_response())
        }
        Err(e) => {
            undo_secrets(&console, &created).await;
            match api_error_fields(&e) {
                Some(errs) => refused(f, errs),
                None => Err(e.into()),
            }
        }
    }
}

async fn stored_spec(console: &Console, name: &str) -> Result<ProviderSpec, ConsoleError> {
    let rec = console
        .state
        .store()
        .get_provider(name)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ConsoleError::NotFound(format!("provider \"{name}\" not found")))?;
    serde_json::from_str(&rec.spec_json)
        .map_err(|e| ConsoleError::Internal(format!("stored provider {name} is unreadable: {e}")))
}

/// `GET /providers/{name}/edit`.
pub async fn edit_form(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    session.require_scope(&name)?;
    let spec = stored_spec(&console, &name).await?;
    let f = from_spec(&console, &session, &spec, secret_names(&console).await?);
    html_page(StatusCode::OK, &f)
}

/// `POST /providers/{name}/edit`: the whole form as a merge patch (cleared fields become `null`).
pub async fn update(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    session.require_scope(&name)?;
    let current = stored_spec(&console, &name).await?;
    let form = Form::parse(&body);
    let (f, patch, new_secrets, mut errors) =
        read_form(&console, &session, &form, secret_names(&console).await?, Some(&current));
    // validate the result of the patch before writing any secret
    let mut doc = serde_json::to_value(&current).map_err(|e| ConsoleError::Internal(e.to_string()))?;
    tollgate_core::patch::merge_patch(&mut doc, &patch);
    if let Err(e) = ProviderSpec::from_value(doc) {
        errors.push((e.field, e.message));
    }
    if !errors.is_empty() {
        return refused(f, errors);
    }
    let created = match create_secrets(&console, &session.token, &new_secrets).await {
        Ok(c) => c,
        Err((field, e)) => return refused(f, vec![(format!("{field}.new_value"), e.to_string())]),
    };
    match admin::providers::update_spec(&console.state, &session.token, &name, &patch, admin::Write::Commit).await {
        Ok(p) => Ok(Redirect::to(&format!("/providers/{}?notice=updated&name={}", p.name, p.name)).into_response()),
        Err(e) => {
            undo_secrets(&console, &created).await;
            match api_error_fields(&e) {
                Some(errs) => refused(f, errs),
                None => Err(e.into()),
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NameParam {
    #[serde(default)]
    name: String,
}

/// `GET /ui/resource-id?name=`: the API's Resource ID rule, and whether the name is taken.
pub async fn resource_id_check(
    State(console): State<Console>,
    _session: Session,
    Query(p): Query<NameParam>,
) -> Json<Value> {
    let name = p.name.trim();
    match validate::resource_name(name) {
        Err(m) => Json(json!({"ok": false, "message": m})),
        Ok(()) if console.state.snapshot().providers.contains_key(name) => {
            Json(json!({"ok": false, "message": format!("a provider named \"{name}\" already exists")}))
        }
        Ok(()) => Json(json!({"ok": true, "message": format!("available: /llm/v1/providers/{name}")})),
    }
}

/// The catalog models a user may pick for a provider of type `t`, in picker order. Bedrock
/// models served only through inference profiles are offered as their profiles (`us.…`,
/// `eu.…`, …), never by the bare id the gateway refuses; each model's profiles sort together.
pub fn pickable_models(catalog: &Catalog, t: ProviderType) -> Vec<&ModelEntry> {
    let bedrock = t == ProviderType::Bedrock;
    let mut models: Vec<&ModelEntry> =
        catalog.models_of(t).filter(|m| !(bedrock && m.requires_inference_profile)).collect();
    if bedrock {
        models.sort_by(|a, b| {
            let (pa, ba) = split_bedrock_profile(&a.name);
            let (pb, bb) = split_bedrock_profile(&b.name);
            ba.cmp(bb).then(pa.cmp(&pb))
        });
    } else {
        models.sort_by(|a, b| a.name.cmp(&b.name));
    }
    models
}

#[derive(Debug, Deserialize)]
pub struct TypeParam {
    #[serde(rename = "type", default)]
    provider_type: String,
}

/// `GET /ui/catalog?type=`: the catalog models of a type for the model picker, with prices.
pub async fn catalog_json(
    State(console): State<Console>,
    _session: Session,
    Query(p): Query<TypeParam>,
) -> Result<Json<Value>, ConsoleError> {
    let t = p.provider_type.parse::<ProviderType>().map_err(ConsoleError::BadRequest)?;
    let catalog = console.state.catalog();
    let models = pickable_models(&catalog, t);
    let price = |v: Option<i64>| v.map(format::rate).unwrap_or_else(|| "—".into());
    let out: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "label": m.label,
                "input": price(m.pricing.input_per_million),
                "output": price(m.pricing.output_per_million),
                "rates": catalog_rates(Some(&m.pricing)).join("|"),
            })
        })
        .collect();
    Ok(Json(json!({"type": t.as_str(), "catalog_version": catalog.version(), "models": out})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_field_ids_are_html_safe() {
        let f = SecretField::new("bedrock_config.static_credentials.access_key_id_ref", "x", true, "X");
        assert_eq!(f.id(), "bedrock-config-static-credentials-access-key-id-ref");
    }

    #[test]
    fn catalog_rates_in_dollars() {
        let p =
            CatalogPricing { input_per_million: Some(300_000_000), output_per_million: Some(0), ..Default::default() };
        let r = catalog_rates(Some(&p));
        assert_eq!(r, ["3".to_string(), "0".into(), String::new(), String::new(), String::new()]);
    }
}
