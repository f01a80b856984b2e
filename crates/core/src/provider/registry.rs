//! The provider registry: one [`ProviderDescriptor`] per [`ProviderType`], the single place
//! that says what a type is: its id, label and config field, the console's description and
//! icon, its credential scheme, default base URL, Test Connection probe, example model,
//! whether it supports authorization passthrough, whether the response names the model that
//! prices the call (`model_from_response`), the type it is priced as (`priced_as`), its native
//! error shape, its wire family ([`WireFamilyId`]) and its `gen_ai.provider.name`. [`descriptor`] returns it through one
//! exhaustive match. Code elsewhere asks the descriptor instead of matching on the type; where
//! behaviour really differs per type the match is exhaustive, so a new type is a compile error
//! until every place handles it.

use super::ProviderType;

/// How the gateway presents the upstream credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialScheme {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of this header (lower case), e.g. `x-api-key`.
    Header(&'static str),
    /// The request is signed with AWS Signature V4; nothing is injected.
    SigV4,
}

/// The native error JSON a type's clients expect (see `protocol::errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`.
    Anthropic,
    /// `{"error":{"code","message","status"}}`.
    Google,
    /// `{"message"}` plus `x-amzn-ErrorType`.
    Bedrock,
}

/// A wire family: one request/response format, implemented in `tollgate-protocol` by a
/// `WireFamily` (several provider types may share one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFamilyId {
    /// OpenAI chat completions, completions, Responses, embeddings.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini API.
    Google,
    /// Bedrock runtime: native paths, plus the OpenAI-compatible chat completions.
    Bedrock,
    /// Azure OpenAI: the OpenAI format on deployment paths
    /// (`/openai/deployments/{deployment}/…?api-version=…`) and the `/openai/v1/` paths.
    AzureOpenAi,
}

impl WireFamilyId {
    /// Every wire family, in a stable order.
    pub const ALL: [WireFamilyId; 5] = [
        WireFamilyId::OpenAi,
        WireFamilyId::Anthropic,
        WireFamilyId::Google,
        WireFamilyId::Bedrock,
        WireFamilyId::AzureOpenAi,
    ];

    /// Its name, also the directory of its golden fixtures under `tests/fixtures/`.
    pub fn as_str(self) -> &'static str {
        match self {
            WireFamilyId::OpenAi => "openai",
            WireFamilyId::Anthropic => "anthropic",
            WireFamilyId::Google => "google",
            WireFamilyId::Bedrock => "bedrock",
            WireFamilyId::AzureOpenAi => "azure_openai",
        }
    }
}

/// Where Test Connection probes a provider (a free, unmetered model-list call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET <upstream base URL><path>` with the injected credential and these extra headers.
    Runtime { path: &'static str, headers: &'static [(&'static str, &'static str)] },
    /// `GET <Bedrock control endpoint><path>`, SigV4-signed (`ListFoundationModels`).
    BedrockControl { path: &'static str },
}

impl Probe {
    /// The path and query of the probe.
    pub fn path(self) -> &'static str {
        match self {
            Probe::Runtime { path, .. } | Probe::BedrockControl { path } => path,
        }
    }
}

/// Everything the gateway knows about a provider type that is data rather than code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderDescriptor {
    pub provider_type: ProviderType,
    /// The `type` value on the wire, e.g. `openai_compatible`.
    pub id: &'static str,
    /// Human label, as the console shows it.
    pub label: &'static str,
    /// The config object that must accompany the type, e.g. `openai_config`.
    pub config_field: &'static str,
    /// What the console's type card says.
    pub description: &'static str,
    pub credential: CredentialScheme,
    /// The upstream base URL when none is configured (`None`: the config must give one).
    /// `{region}` is replaced by the Bedrock region.
    pub default_base_url: Option<&'static str>,
    pub probe: Probe,
    /// The console icon, `assets/icons/<icon>.svg`.
    pub icon: &'static str,
    /// A model id for examples when the provider lists none.
    pub example_model: &'static str,
    /// Clients may send their own upstream credential (`authorization_passthrough`).
    pub supports_passthrough: bool,
    /// Usage is priced (and reported) by the model the response names when the catalog
    /// knows it, else by the model as called (Azure: the deployment name).
    pub model_from_response: bool,
    /// The catalog section whose prices apply when the catalog has no entry of this type
    /// for a model (`None`: only its own).
    pub priced_as: Option<ProviderType>,
    pub error_shape: ErrorShape,
    pub wire_family: WireFamilyId,
    /// `gen_ai.provider.name` in traces and metrics (the OpenTelemetry GenAI conventions'
    /// well-known value where there is one, e.g. `gcp.gemini`, `aws.bedrock`).
    pub genai_provider_name: &'static str,
}

const OPENAI: ProviderDescriptor = ProviderDescriptor {
    provider_type: ProviderType::Openai,
    id: "openai",
    label: "OpenAI",
    config_field: "openai_config",
    description: "GPT, o-series and embeddings through the OpenAI API.",
    credential: CredentialScheme::Bearer,
    default_base_url: Some("https://api.openai.com/v1"),
    probe: Probe::Runtime { path: "/models", headers: &[] },
    icon: "openai",
    example_model: "gpt-4o-mini",
    supports_passthrough: true,
    model_from_response: false,
    priced_as: None,
    error_shape: ErrorShape::OpenAi,
    wire_family: WireFamilyId::OpenAi,
    genai_provider_name: "openai",
};

const ANTHROPIC: ProviderDescriptor = ProviderDescriptor {
    provider_type: ProviderType::Anthropic,
    id: "anthropic",
    label: "Anthropic",
    config_field: "anthropic_config",
    description: "Claude Opus, Sonnet and Haiku. Can forward each client's own Authorization (subscription passthrough).",
    credential: CredentialScheme::Header("x-api-key"),
    default_base_url: Some("https://api.anthropic.com"),
    // The Messages API refuses calls without a version header.
    probe: Probe::Runtime { path: "/v1/models?limit=1000", headers: &[("anthropic-version", "2023-06-01")] },
    icon: "anthropic",
    example_model: "claude-haiku-4-5",
    supports_passthrough: true,
    model_from_response: false,
    priced_as: None,
    error_shape: ErrorShape::Anthropic,
    wire_family: WireFamilyId::Anthropic,
    genai_provider_name: "anthropic",
};

const GOOGLE: ProviderDescriptor = ProviderDescriptor {
    provider_type: ProviderType::Google,
    id: "google",
    label: "Google AI",
    config_field: "google_config",
    description: "Gemini Pro, Flash and multimodal models through Google AI Studio.",
    credential: CredentialScheme::Header("x-goog-api-key"),
    default_base_url: Some("https://generativelanguage.googleapis.com"),
    probe: Probe::Runtime { path: "/v1beta/models?pageSize=1000", headers: &[] },
    icon: "google",
    example_model: "gemini-2.5-flash",
    supports_passthrough: false,
    model_from_response: false,
    priced_as: None,
    error_shape: ErrorShape::Google,
    wire_family: WireFamilyId::Google,
    genai_provider_name: "gcp.gemini",
};

const BEDROCK: ProviderDescriptor = ProviderDescriptor {
    provider_type: ProviderType::Bedrock,
    id: "bedrock",
    label: "AWS Bedrock",
    config_field: "bedrock_config",
    description: "Foundation models in your AWS account (Claude, Llama, Titan, Nova, Mistral). Needs a region and credentials.",
    credential: CredentialScheme::SigV4,
    default_base_url: Some("https://bedrock-runtime.{region}.amazonaws.com"),
    probe: Probe::BedrockControl { path: "/foundation-models" },
    icon: "bedrock",
    example_model: "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    supports_passthrough: false,
    model_from_response: false,
    priced_as: None,
    error_shape: ErrorShape::Bedrock,
    wire_family: WireFamilyId::Bedrock,
    genai_provider_name: "aws.bedrock",
};

const OPENAI_COMPATIBLE: ProviderDescriptor = ProviderDescriptor {
    provider_type: ProviderType::OpenaiCompatible,
    id: "openai_compatible",
    label: "OpenAI-compatible",
    config_field: "openai_compatible_config",
    description: "Any endpoint that serves /v1/chat/completions: vLLM, Ollama, LM Studio, gateways.",
    credential: CredentialScheme::Bearer,
    default_base_url: None,
    probe: Probe::Runtime { path: "/models", headers: &[] },
    icon: "openai_compatible",
    example_model: "llama3.1:8b",
    supports_passthrough: true,
    model_from_response: false,
    priced_as: None,
    error_shape: ErrorShape::OpenAi,
    wire_family: WireFamilyId::OpenAi,
    genai_provider_name: "openai_compatible",
};

const AZURE_OPENAI: ProviderDescriptor = ProviderDescriptor {
    provider_type: ProviderType::AzureOpenai,
    id: "azure_openai",
    label: "Azure OpenAI",
    config_field: "azure_openai_config",
    description: "OpenAI models deployed in your Azure OpenAI resource: deployment paths and the /openai/v1 API. Key or Entra ID passthrough.",
    credential: CredentialScheme::Header("api-key"),
    default_base_url: None,
    // The v1 API's model list needs no api-version.
    probe: Probe::Runtime { path: "/openai/v1/models", headers: &[] },
    icon: "azure_openai",
    example_model: "gpt-4o-mini",
    supports_passthrough: true,
    model_from_response: true,
    priced_as: Some(ProviderType::Openai),
    error_shape: ErrorShape::OpenAi,
    wire_family: WireFamilyId::AzureOpenAi,
    genai_provider_name: "azure.ai.openai",
};

/// The descriptor of a provider type.
pub fn descriptor(t: ProviderType) -> &'static ProviderDescriptor {
    match t {
        ProviderType::Openai => &OPENAI,
        ProviderType::Anthropic => &ANTHROPIC,
        ProviderType::Google => &GOOGLE,
        ProviderType::Bedrock => &BEDROCK,
        ProviderType::OpenaiCompatible => &OPENAI_COMPATIBLE,
        ProviderType::AzureOpenai => &AZURE_OPENAI,
    }
}

/// The headers some provider type's SDK sends its API key in (other than `Authorization`),
/// in `ProviderType::ALL` order: where clients put the gateway token, and what is never
/// forwarded upstream from the client.
pub fn client_key_headers() -> impl Iterator<Item = &'static str> {
    ProviderType::ALL.into_iter().filter_map(|t| match descriptor(t).credential {
        CredentialScheme::Header(name) => Some(name),
        CredentialScheme::Bearer | CredentialScheme::SigV4 => None,
    })
}
