//! The LLM provider resource: its wire shape, defaults and every validation rule.
//!
//! One struct, [`ProviderSpec`], is both what clients send and what the API answers.
//! Parsing is lenient about `null` (treated as absent) and strict about unknown fields;
//! [`ProviderSpec::parse`] turns JSON into a validated, normalised spec or a
//! [`ValidationError`] naming the offending field.

use crate::error::ValidationError;
use crate::validate;

mod registry;
pub use registry::{
    CredentialScheme, ErrorShape, Probe, ProviderDescriptor, WireFamilyId, client_key_headers, descriptor,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// The configured kind of a provider (its `type`). What each type is lives in its
/// [`ProviderDescriptor`] ([`ProviderType::descriptor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    Openai,
    Anthropic,
    Google,
    Bedrock,
    OpenaiCompatible,
    AzureOpenai,
}

impl ProviderType {
    pub const ALL: [ProviderType; 6] = [
        ProviderType::Openai,
        ProviderType::Anthropic,
        ProviderType::Google,
        ProviderType::Bedrock,
        ProviderType::OpenaiCompatible,
        ProviderType::AzureOpenai,
    ];

    /// What this type is: names, credential scheme, defaults, probe, error shape, family.
    pub fn descriptor(self) -> &'static ProviderDescriptor {
        descriptor(self)
    }

    pub fn as_str(self) -> &'static str {
        descriptor(self).id
    }

    /// The name of the config object that must accompany this type.
    pub fn config_field(self) -> &'static str {
        descriptor(self).config_field
    }

    /// Human label, as the console shows it.
    pub fn label(self) -> &'static str {
        descriptor(self).label
    }

    /// The wire family its requests and responses use.
    pub fn wire_family(self) -> WireFamilyId {
        descriptor(self).wire_family
    }

    /// The type ids, as an error message lists them: `a, b or c`.
    pub fn id_list() -> String {
        let ids: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
        match ids.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => ids.join(""),
        }
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Ids are snake_case; the kebab-case spelling is accepted too (CLI habit).
        let id = s.replace('-', "_");
        ProviderType::ALL
            .into_iter()
            .find(|t| t.as_str() == id)
            .ok_or_else(|| format!("unknown provider type `{s}`; expected {}", ProviderType::id_list()))
    }
}

/// `null` in JSON means "absent": deserialize it as the type's default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `openai_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenaiConfig {
    /// Upstream base URL; absent means `https://api.openai.com/v1` (override for Azure).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Secret reference (UPPER_SNAKE_CASE) holding the upstream API key; required unless
    /// `authorization_passthrough` is on.
    #[serde(default)]
    pub api_key_ref: Option<String>,
    /// Forward the client's own `Authorization` header upstream instead of a stored key.
    #[serde(default, deserialize_with = "null_default")]
    pub authorization_passthrough: bool,
}

/// `google_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Upstream base URL; absent means the type's public default.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Secret reference (UPPER_SNAKE_CASE) holding the upstream API key.
    #[serde(default)]
    pub api_key_ref: Option<String>,
}

/// `anthropic_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnthropicConfig {
    #[serde(default)]
    pub base_url: Option<String>,
    /// Required unless `authorization_passthrough` is on.
    #[serde(default)]
    pub api_key_ref: Option<String>,
    /// Forward the client's own `Authorization` header upstream instead of a stored key.
    #[serde(default, deserialize_with = "null_default")]
    pub authorization_passthrough: bool,
}

/// `openai_compatible_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenaiCompatibleConfig {
    /// Required: the endpoint that serves `/chat/completions`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Optional: leave empty for unauthenticated local runtimes.
    #[serde(default)]
    pub api_key_ref: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub authorization_passthrough: bool,
}

/// `azure_openai_config`: an Azure OpenAI (or Azure AI Foundry) resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureOpenaiConfig {
    /// Required: the resource endpoint, e.g. `https://my-resource.openai.azure.com`; clients'
    /// paths (`/openai/deployments/{deployment}/…`, `/openai/v1/…`) are appended to it.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Secret reference holding the resource's API key (sent as `api-key`); required unless
    /// `authorization_passthrough` is on.
    #[serde(default)]
    pub api_key_ref: Option<String>,
    /// Forward the client's own `Authorization` (a Microsoft Entra ID token) upstream instead
    /// of a stored key.
    #[serde(default, deserialize_with = "null_default")]
    pub authorization_passthrough: bool,
    /// The `api-version` the Connect tab's examples use (`YYYY-MM-DD`, optionally
    /// `-preview`); absent means `2024-10-21`. Clients send their own on each request.
    #[serde(default)]
    pub api_version: Option<String>,
}

/// The `api-version` of examples when `azure_openai_config.api_version` is absent (the GA
/// version that accepts `stream_options`).
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

impl AzureOpenaiConfig {
    /// The configured `api-version`, or [`DEFAULT_AZURE_API_VERSION`].
    pub fn api_version(&self) -> &str {
        self.api_version.as_deref().unwrap_or(DEFAULT_AZURE_API_VERSION)
    }
}

/// Static AWS keys, both held in the secret store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentials {
    #[serde(default)]
    pub access_key_id_ref: Option<String>,
    #[serde(default)]
    pub secret_access_key_ref: Option<String>,
}

/// An IAM role assumed through STS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssumeRole {
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// Shown in CloudTrail; absent means `tollgate`.
    #[serde(default)]
    pub session_name: Option<String>,
}

/// Default STS session name for assumed roles.
pub const DEFAULT_SESSION_NAME: &str = "tollgate";

/// `bedrock_config`. Neither credentials object set means the AWS default chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BedrockConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_credentials: Option<StaticCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRole>,
    /// A Bedrock guardrail to attach, or absent for none: its identifier, optionally with
    /// `:<version>` (a number or `DRAFT`; default `DRAFT`), e.g. `gr7x2k4m9p1q:3`. Checked
    /// against the Bedrock control plane (`GetGuardrail`) when saved.
    #[serde(default)]
    pub guardrail: Option<String>,
}

impl BedrockConfig {
    /// The guardrail's identifier and version (`DRAFT` when no version is given).
    pub fn guardrail_parts(&self) -> Option<(&str, &str)> {
        let g = self.guardrail.as_deref().filter(|g| !g.is_empty())?;
        Some(g.split_once(':').unwrap_or((g, "DRAFT")))
    }
}

/// How a Bedrock provider gets AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BedrockCredentialMode {
    DefaultChain,
    StaticKeys,
    AssumeRole,
}

/// Per-model price overrides in microcents per 1M tokens. Absent = catalog rate; 0 = free.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPricing {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::error::integer")]
    pub input_per_million: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::error::integer")]
    pub output_per_million: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::error::integer")]
    pub cached_input_per_million: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::error::integer")]
    pub cache_creation_5m_per_million: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::error::integer")]
    pub cache_creation_1h_per_million: Option<i64>,
}

impl ModelPricing {
    /// The buckets with their JSON names, in rate-card order.
    pub fn buckets(&self) -> [(&'static str, Option<i64>); 5] {
        [
            ("input_per_million", self.input_per_million),
            ("output_per_million", self.output_per_million),
            ("cached_input_per_million", self.cached_input_per_million),
            ("cache_creation_5m_per_million", self.cache_creation_5m_per_million),
            ("cache_creation_1h_per_million", self.cache_creation_1h_per_million),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.buckets().iter().all(|(_, v)| v.is_none())
    }
}

/// A model the provider exposes, with optional price overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderModel {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_pricing: Option<ModelPricing>,
}

/// Whether message bodies are recorded. Both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transcripts {
    #[serde(default, deserialize_with = "null_default")]
    pub record_input_messages: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub record_output_messages: bool,
}

/// An LLM provider, as clients send it and as the API answers.
///
/// `url`, `created_at` and `updated_at` (and a write answer's `warnings`) are output only:
/// accepted on input (so a fetched resource can be sent back) and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Resource ID: `^[a-z][a-z0-9-]*$`, at most 63 characters, ends alphanumeric. Immutable.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Human-readable label, 1 to 253 characters.
    #[serde(default, deserialize_with = "null_default")]
    pub display_name: String,
    /// Upstream family. Immutable.
    #[serde(rename = "type", default)]
    #[schema(value_type = ProviderType)]
    pub provider_type: Option<ProviderType>,
    /// Defaults to true on create.
    #[serde(default)]
    #[schema(value_type = bool)]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_config: Option<OpenaiConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_config: Option<AnthropicConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_config: Option<ApiKeyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_config: Option<BedrockConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_compatible_config: Option<OpenaiCompatibleConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_openai_config: Option<AzureOpenaiConfig>,
    /// Models exposed; empty means every model is allowed.
    #[serde(default, deserialize_with = "null_default")]
    pub provider_models: Vec<ProviderModel>,
    /// Deprecated flat list of model names; accepted on input, folded into `provider_models`.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_default")]
    pub transcripts: Transcripts,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: BTreeMap<String, String>,
    /// Output only: the proxy URL clients use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub url: Option<String>,
    /// Output only (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub created_at: Option<String>,
    /// Output only (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub updated_at: Option<String>,
}

/// The validated config of a provider, by type.
#[derive(Debug, Clone, Copy)]
pub enum ProviderConfig<'a> {
    Openai(&'a OpenaiConfig),
    Anthropic(&'a AnthropicConfig),
    Google(&'a ApiKeyConfig),
    Bedrock(&'a BedrockConfig),
    OpenaiCompatible(&'a OpenaiCompatibleConfig),
    AzureOpenai(&'a AzureOpenaiConfig),
}

/// OpenAI's public API, the fallback base URL of an unvalidated spec.
const OPENAI_BASE_URL: Option<&str> = Some("https://api.openai.com/v1");

/// Limits on tags and models.
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_VALUE_CHARS: usize = 256;
pub const MAX_MODEL_NAME_CHARS: usize = 256;
pub const MAX_MODELS: usize = 1000;

fn field_err(field: impl Into<String>) -> impl FnOnce(String) -> ValidationError {
    let field = field.into();
    move |m| ValidationError::new(field, m)
}

impl ProviderSpec {
    /// Parses a JSON body into a validated, normalised spec.
    pub fn parse(body: &[u8]) -> Result<ProviderSpec, ValidationError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ValidationError::shape("", format!("request body is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Deserializes a JSON value (reporting the path of any type error) and validates it.
    pub fn from_value(mut value: serde_json::Value) -> Result<ProviderSpec, ValidationError> {
        let Some(o) = value.as_object_mut() else {
            return Err(ValidationError::shape("", "request body must be a JSON object"));
        };
        // a create or update answer's own `warnings`: output only, so the answer can be sent back
        o.remove("warnings");
        let mut spec: ProviderSpec = crate::error::from_json_value(value)?;
        spec.normalize_and_validate()?;
        Ok(spec)
    }

    /// The validated type. Panics never: `validate` guarantees it is set; `Openai` is only a
    /// placeholder for unvalidated specs.
    pub fn kind(&self) -> ProviderType {
        self.provider_type.unwrap_or(ProviderType::Openai)
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// The config object matching the type, if present.
    pub fn config(&self) -> Option<ProviderConfig<'_>> {
        match self.provider_type? {
            ProviderType::Openai => self.openai_config.as_ref().map(ProviderConfig::Openai),
            ProviderType::Anthropic => self.anthropic_config.as_ref().map(ProviderConfig::Anthropic),
            ProviderType::Google => self.google_config.as_ref().map(ProviderConfig::Google),
            ProviderType::Bedrock => self.bedrock_config.as_ref().map(ProviderConfig::Bedrock),
            ProviderType::OpenaiCompatible => {
                self.openai_compatible_config.as_ref().map(ProviderConfig::OpenaiCompatible)
            }
            ProviderType::AzureOpenai => self.azure_openai_config.as_ref().map(ProviderConfig::AzureOpenai),
        }
    }

    /// Every secret reference in the spec, with the field that holds it.
    pub fn secret_refs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |field: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((field.to_string(), v.clone()));
            }
        };
        if let Some(c) = &self.openai_config {
            push("openai_config.api_key_ref", &c.api_key_ref);
        }
        if let Some(c) = &self.anthropic_config {
            push("anthropic_config.api_key_ref", &c.api_key_ref);
        }
        if let Some(c) = &self.google_config {
            push("google_config.api_key_ref", &c.api_key_ref);
        }
        if let Some(c) = &self.openai_compatible_config {
            push("openai_compatible_config.api_key_ref", &c.api_key_ref);
        }
        if let Some(c) = &self.azure_openai_config {
            push("azure_openai_config.api_key_ref", &c.api_key_ref);
        }
        if let Some(s) = self.bedrock_config.as_ref().and_then(|c| c.static_credentials.as_ref()) {
            push("bedrock_config.static_credentials.access_key_id_ref", &s.access_key_id_ref);
            push("bedrock_config.static_credentials.secret_access_key_ref", &s.secret_access_key_ref);
        }
        out
    }

    /// The secret holding the upstream API key (OpenAI, Anthropic, Google, OpenAI-compatible),
    /// without allocating: the proxy calls this on every request.
    pub fn api_key_ref(&self) -> Option<&str> {
        match self.config()? {
            ProviderConfig::Openai(c) => c.api_key_ref.as_deref(),
            ProviderConfig::Anthropic(c) => c.api_key_ref.as_deref(),
            ProviderConfig::Google(c) => c.api_key_ref.as_deref(),
            ProviderConfig::OpenaiCompatible(c) => c.api_key_ref.as_deref(),
            ProviderConfig::AzureOpenai(c) => c.api_key_ref.as_deref(),
            ProviderConfig::Bedrock(_) => None,
        }
    }

    /// The upstream base URL: the configured one or the type's default.
    pub fn upstream_base_url(&self) -> String {
        let (configured, region) = match self.config() {
            Some(ProviderConfig::Openai(c)) => (c.base_url.clone(), None),
            Some(ProviderConfig::Google(c)) => (c.base_url.clone(), None),
            Some(ProviderConfig::Anthropic(c)) => (c.base_url.clone(), None),
            Some(ProviderConfig::OpenaiCompatible(c)) => (c.base_url.clone(), None),
            Some(ProviderConfig::Bedrock(c)) => (c.base_url.clone(), c.region.as_deref()),
            Some(ProviderConfig::AzureOpenai(c)) => (c.endpoint.clone(), None),
            None => (None, None),
        };
        configured.unwrap_or_else(|| {
            // Validation requires a base URL of the types without a default; an unvalidated
            // spec falls back to OpenAI's, as `kind` does.
            let default = self.kind().descriptor().default_base_url.or(OPENAI_BASE_URL);
            default.unwrap_or_default().replace("{region}", region.unwrap_or("us-east-1"))
        })
    }

    /// Whether the client's own `Authorization` header is forwarded upstream.
    pub fn authorization_passthrough(&self) -> bool {
        match self.config() {
            Some(ProviderConfig::Openai(c)) => c.authorization_passthrough,
            Some(ProviderConfig::Anthropic(c)) => c.authorization_passthrough,
            Some(ProviderConfig::OpenaiCompatible(c)) => c.authorization_passthrough,
            Some(ProviderConfig::AzureOpenai(c)) => c.authorization_passthrough,
            Some(ProviderConfig::Google(_) | ProviderConfig::Bedrock(_)) | None => false,
        }
    }

    /// The Bedrock credential mode, for Bedrock providers.
    pub fn bedrock_credential_mode(&self) -> Option<BedrockCredentialMode> {
        let c = self.bedrock_config.as_ref()?;
        Some(if c.static_credentials.is_some() {
            BedrockCredentialMode::StaticKeys
        } else if c.assume_role.is_some() {
            BedrockCredentialMode::AssumeRole
        } else {
            BedrockCredentialMode::DefaultChain
        })
    }

    /// Whether `model` may be called: true when the list is empty or names it.
    pub fn allows_model(&self, model: &str) -> bool {
        self.provider_models.is_empty() || self.provider_models.iter().any(|m| m.name == model)
    }

    /// Clears output-only fields and applies defaults, then checks every rule.
    pub fn normalize_and_validate(&mut self) -> Result<(), ValidationError> {
        self.url = None;
        self.created_at = None;
        self.updated_at = None;
        self.enabled = Some(self.enabled.unwrap_or(true));

        validate::resource_name(&self.name).map_err(field_err("name"))?;
        if self.display_name.trim().is_empty() {
            return Err(ValidationError::new("display_name", "is required (1 to 253 characters, not only spaces)"));
        }
        validate::char_len(&self.display_name, 1, 253).map_err(field_err("display_name"))?;
        validate::no_control(&self.display_name).map_err(field_err("display_name"))?;

        let Some(kind) = self.provider_type else {
            let ids: Vec<&str> = ProviderType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(ValidationError::new("type", format!("is required: one of {}", ids.join(", "))));
        };
        self.check_config_objects(kind)?;
        match kind {
            ProviderType::Openai => {
                let c = self.openai_config.as_mut().ok_or_else(|| missing_config(kind))?;
                normalize_base_url(&mut c.base_url, "openai_config")?;
                check_key_or_passthrough(&c.api_key_ref, c.authorization_passthrough, "openai_config", true)?;
            }
            ProviderType::Google => {
                let c = self.google_config.as_mut().ok_or_else(|| missing_config(kind))?;
                normalize_base_url(&mut c.base_url, "google_config")?;
                required_ref(&c.api_key_ref, "google_config.api_key_ref")?;
            }
            ProviderType::Anthropic => {
                let c = self.anthropic_config.as_mut().ok_or_else(|| missing_config(kind))?;
                normalize_base_url(&mut c.base_url, "anthropic_config")?;
                check_key_or_passthrough(&c.api_key_ref, c.authorization_passthrough, "anthropic_config", true)?;
            }
            ProviderType::OpenaiCompatible => {
                let c = self.openai_compatible_config.as_mut().ok_or_else(|| missing_config(kind))?;
                if c.base_url.is_none() {
                    return Err(ValidationError::new(
                        "openai_compatible_config.base_url",
                        "is required: the URL of your OpenAI-compatible endpoint, e.g. http://ollama.local:11434/v1",
                    ));
                }
                normalize_base_url(&mut c.base_url, "openai_compatible_config")?;
                check_key_or_passthrough(
                    &c.api_key_ref,
                    c.authorization_passthrough,
                    "openai_compatible_config",
                    false,
                )?;
            }
            ProviderType::Bedrock => {
                let c = self.bedrock_config.as_mut().ok_or_else(|| missing_config(kind))?;
                validate_bedrock(c)?;
            }
            ProviderType::AzureOpenai => {
                let c = self.azure_openai_config.as_mut().ok_or_else(|| missing_config(kind))?;
                validate_azure_openai(c)?;
            }
        }

        self.normalize_models()?;
        self.validate_tags()?;
        Ok(())
    }

    fn check_config_objects(&self, kind: ProviderType) -> Result<(), ValidationError> {
        let present = [
            (ProviderType::Openai, self.openai_config.is_some()),
            (ProviderType::Anthropic, self.anthropic_config.is_some()),
            (ProviderType::Google, self.google_config.is_some()),
            (ProviderType::Bedrock, self.bedrock_config.is_some()),
            (ProviderType::OpenaiCompatible, self.openai_compatible_config.is_some()),
            (ProviderType::AzureOpenai, self.azure_openai_config.is_some()),
        ];
        for (t, is) in present {
            if is && t != kind {
                return Err(ValidationError::new(
                    t.config_field(),
                    format!(
                        "must not be set when type is {kind}: exactly one config object, {}, is allowed",
                        kind.config_field()
                    ),
                ));
            }
        }
        if !present.iter().any(|(t, is)| *is && *t == kind) {
            return Err(missing_config(kind));
        }
        Ok(())
    }

    fn normalize_models(&mut self) -> Result<(), ValidationError> {
        if let Some(flat) = self.models.take() {
            if !self.provider_models.is_empty() {
                return Err(ValidationError::new(
                    "models",
                    "must not be set together with provider_models (models is the deprecated flat list)",
                ));
            }
            self.provider_models = flat.into_iter().map(|name| ProviderModel { name, custom_pricing: None }).collect();
        }
        if self.provider_models.len() > MAX_MODELS {
            return Err(ValidationError::new("provider_models", format!("must have at most {MAX_MODELS} models")));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.provider_models.iter_mut().enumerate() {
            let f = format!("provider_models[{i}].name");
            if m.name.is_empty() {
                return Err(ValidationError::new(f, "is required"));
            }
            validate::char_len(&m.name, 1, MAX_MODEL_NAME_CHARS).map_err(field_err(&f))?;
            if m.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ValidationError::new(f, "must not contain whitespace or control characters"));
            }
            if !seen.insert(m.name.clone()) {
                return Err(ValidationError::new(f, format!("duplicate model `{}`", m.name)));
            }
            if let Some(p) = &m.custom_pricing {
                for (bucket, v) in p.buckets() {
                    if v.is_some_and(|v| v < 0) {
                        return Err(ValidationError::new(
                            format!("provider_models[{i}].custom_pricing.{bucket}"),
                            "must be 0 or more (microcents per 1M tokens; 0 means free, absent means the catalog rate)",
                        ));
                    }
                }
                if p.is_empty() {
                    m.custom_pricing = None;
                }
            }
        }
        Ok(())
    }

    fn validate_tags(&self) -> Result<(), ValidationError> {
        if self.tags.len() > MAX_TAGS {
            return Err(ValidationError::new("tags", format!("must have at most {MAX_TAGS} entries")));
        }
        for (k, v) in &self.tags {
            let f = format!("tags.{k}");
            validate::char_len(k, 1, 63).map_err(|m| ValidationError::new(&f, format!("key {m}")))?;
            validate::charset(k, "_.-", "letters, digits, `_`, `.` and `-`")
                .map_err(|m| ValidationError::new(&f, format!("key {m}")))?;
            validate::char_len(v, 0, MAX_TAG_VALUE_CHARS)
                .map_err(|m| ValidationError::new(&f, format!("value {m}")))?;
            validate::no_control(v).map_err(|m| ValidationError::new(&f, format!("value {m}")))?;
        }
        Ok(())
    }
}

fn missing_config(kind: ProviderType) -> ValidationError {
    ValidationError::new(kind.config_field(), format!("is required when type is {kind}"))
}

fn normalize_base_url(v: &mut Option<String>, cfg: &str) -> Result<(), ValidationError> {
    if let Some(u) = v.as_deref() {
        *v = Some(validate::base_url(u).map_err(field_err(format!("{cfg}.base_url")))?);
    }
    Ok(())
}

fn required_ref(v: &Option<String>, field: &str) -> Result<(), ValidationError> {
    match v.as_deref() {
        None | Some("") => Err(ValidationError::new(
            field,
            "is required: the name of the secret holding the credential, e.g. OPENAI_API_KEY",
        )),
        Some(r) => validate::secret_name(r).map_err(field_err(field)),
    }
}

fn optional_ref(v: &Option<String>, field: &str) -> Result<(), ValidationError> {
    match v.as_deref() {
        None => Ok(()),
        Some(r) => validate::secret_name(r).map_err(field_err(field)),
    }
}

fn check_key_or_passthrough(
    key: &Option<String>,
    passthrough: bool,
    cfg: &str,
    key_required: bool,
) -> Result<(), ValidationError> {
    let f = format!("{cfg}.api_key_ref");
    if passthrough && key.is_some() {
        return Err(ValidationError::new(
            f,
            "must be empty when authorization_passthrough is true (clients send their own Authorization)",
        ));
    }
    if key_required && !passthrough {
        return required_ref(key, &f).map_err(|e| {
            if key.is_none() {
                ValidationError::new(&f, "is required unless authorization_passthrough is true")
            } else {
                e
            }
        });
    }
    optional_ref(key, &f)
}

fn is_aws_region(r: &str) -> bool {
    // e.g. us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts.last().is_some_and(|d| (1..=2).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn is_role_arn(a: &str) -> bool {
    // arn:<partition>:iam::<12 digits>:role/<path/name>
    let mut it = a.splitn(6, ':');
    let (Some("arn"), Some(part), Some("iam"), Some(""), Some(account), Some(res)) =
        (it.next(), it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return false;
    };
    part.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && res
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c)))
        && a.len() <= 2048
}

fn validate_azure_openai(c: &mut AzureOpenaiConfig) -> Result<(), ValidationError> {
    let f = "azure_openai_config.endpoint";
    match c.endpoint.as_deref() {
        None | Some("") => {
            return Err(ValidationError::new(
                f,
                "is required: the endpoint of your Azure OpenAI resource, e.g. https://my-resource.openai.azure.com",
            ));
        }
        Some(u) => {
            let u = validate::base_url(u).map_err(field_err(f))?;
            if u.ends_with("/openai") || u.contains("/openai/") {
                return Err(ValidationError::new(
                    f,
                    "must be the resource endpoint without a path (clients add /openai/deployments/… or /openai/v1/…)",
                ));
            }
            c.endpoint = Some(u);
        }
    }
    check_key_or_passthrough(&c.api_key_ref, c.authorization_passthrough, "azure_openai_config", true)?;
    if let Some(v) = c.api_version.as_deref() {
        let (date, suffix) = v.split_at(v.len().min(10));
        let b = date.as_bytes();
        let is_date = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !is_date || !(suffix.is_empty() || suffix == "-preview") {
            return Err(ValidationError::new(
                "azure_openai_config.api_version",
                format!("`{v}` is not an Azure OpenAI api-version (YYYY-MM-DD, optionally -preview, e.g. 2024-10-21)"),
            ));
        }
    }
    Ok(())
}

fn validate_bedrock(c: &mut BedrockConfig) -> Result<(), ValidationError> {
    match c.region.as_deref() {
        None | Some("") => {
            return Err(ValidationError::new(
                "bedrock_config.region",
                "is required: the AWS region of the Bedrock endpoint, e.g. us-east-1",
            ));
        }
        Some(r) if !is_aws_region(r) => {
            return Err(ValidationError::new(
                "bedrock_config.region",
                format!("`{r}` is not an AWS region name such as us-east-1"),
            ));
        }
        Some(_) => {}
    }
    normalize_base_url(&mut c.base_url, "bedrock_config")?;
    if c.static_credentials.is_some() && c.assume_role.is_some() {
        return Err(ValidationError::new(
            "bedrock_config.assume_role",
            "must not be set together with static_credentials: pick one credential type (neither means the default chain)",
        ));
    }
    if let Some(s) = &c.static_credentials {
        required_ref(&s.access_key_id_ref, "bedrock_config.static_credentials.access_key_id_ref")?;
        required_ref(&s.secret_access_key_ref, "bedrock_config.static_credentials.secret_access_key_ref")?;
    }
    if let Some(a) = &c.assume_role {
        match a.role_arn.as_deref() {
            None | Some("") => {
                return Err(ValidationError::new(
                    "bedrock_config.assume_role.role_arn",
                    "is required: the ARN of the IAM role to assume, e.g. arn:aws:iam::123456789012:role/bedrock-invoker",
                ));
            }
            Some(arn) if !is_role_arn(arn) => {
                return Err(ValidationError::new(
                    "bedrock_config.assume_role.role_arn",
                    format!("`{arn}` is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)"),
                ));
            }
            Some(_) => {}
        }
        if let Some(x) = a.external_id.as_deref() {
            let f = "bedrock_config.assume_role.external_id";
            validate::char_len(x, 2, 1224).map_err(field_err(f))?;
            validate::charset(x, "+=,.@:/-_", "letters, digits and +=,.@:/-_").map_err(field_err(f))?;
        }
        if let Some(x) = a.session_name.as_deref() {
            let f = "bedrock_config.assume_role.session_name";
            validate::char_len(x, 2, 64).map_err(field_err(f))?;
            validate::charset(x, "+=,.@-_", "letters, digits and +=,.@-_").map_err(field_err(f))?;
        }
    }
    if let Some(g) = c.guardrail.as_deref() {
        if g.is_empty() {
            c.guardrail = None;
        } else {
            let f = "bedrock_config.guardrail";
            let (id, version) = g.split_once(':').unwrap_or((g, "DRAFT"));
            validate::char_len(id, 1, 63).map_err(field_err(f))?;
            validate::charset(id, "_-", "letters, digits, `_` and `-`").map_err(field_err(f))?;
            let numeric = (1..=8).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_digit());
            if version != "DRAFT" && !numeric {
                return Err(ValidationError::new(
                    f,
                    format!("version `{version}` must be a number or DRAFT (write <identifier>:<version>)"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
