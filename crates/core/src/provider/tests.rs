//! Data-driven tests: each case is a JSON body and the field the error must name
//! (or `None` when it must be accepted).

use super::*;
use serde_json::{Value, json};

fn check(body: Value, want_field: Option<&str>) {
    let got = ProviderSpec::from_value(body.clone());
    match (got, want_field) {
        (Ok(_), None) => {}
        (Err(e), Some(f)) => assert_eq!(e.field, f, "body {body}: wrong field in {e}"),
        (Ok(s), Some(f)) => panic!("body {body} accepted ({s:?}), expected an error on {f}"),
        (Err(e), None) => panic!("body {body} rejected: {e}"),
    }
}

fn base() -> Value {
    json!({"name": "prod-openai", "display_name": "Prod OpenAI", "type": "openai",
           "openai_config": {"api_key_ref": "OPENAI_API_KEY"}})
}

fn with(mut v: Value, patch: Value) -> Value {
    if let (Some(o), Some(p)) = (v.as_object_mut(), patch.as_object()) {
        for (k, x) in p {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

#[test]
fn accepts_every_type() {
    check(base(), None);
    check(
        json!({"name": "a", "display_name": "A", "type": "anthropic",
        "anthropic_config": {"api_key_ref": "ANTHROPIC_API_KEY"}}),
        None,
    );
    check(
        json!({"name": "a", "display_name": "A", "type": "anthropic",
        "anthropic_config": {"authorization_passthrough": true}}),
        None,
    );
    check(
        json!({"name": "g", "display_name": "G", "type": "google",
        "google_config": {"api_key_ref": "GOOGLE_AI_API_KEY", "base_url": null}}),
        None,
    );
    check(
        json!({"name": "b", "display_name": "B", "type": "bedrock",
        "bedrock_config": {"region": "us-east-1"}}),
        None,
    );
    check(
        json!({"name": "b", "display_name": "B", "type": "bedrock",
        "bedrock_config": {"region": "eu-central-1", "static_credentials":
            {"access_key_id_ref": "AWS_ACCESS_KEY_ID", "secret_access_key_ref": "AWS_SECRET_ACCESS_KEY"}}}),
        None,
    );
    check(
        json!({"name": "b", "display_name": "B", "type": "bedrock",
        "bedrock_config": {"region": "us-gov-west-1", "assume_role":
            {"role_arn": "arn:aws:iam::123456789012:role/bedrock-invoker", "external_id": "ext-1", "session_name": "redpanda-adp"}}}),
        None,
    );
    check(
        json!({"name": "o", "display_name": "Ollama", "type": "openai_compatible",
        "openai_compatible_config": {"base_url": "http://ollama.local:11434/v1"}}),
        None,
    );
}

#[test]
fn identity_rules() {
    check(with(base(), json!({"name": null})), Some("name"));
    check(with(base(), json!({"name": "Prod"})), Some("name"));
    check(with(base(), json!({"name": "1prod"})), Some("name"));
    check(with(base(), json!({"name": "prod-"})), Some("name"));
    check(with(base(), json!({"name": "prod_x"})), Some("name"));
    check(with(base(), json!({"name": "a".repeat(64)})), Some("name"));
    check(with(base(), json!({"name": "a".repeat(63)})), None);
    check(with(base(), json!({"name": 7})), Some("name"));
    check(with(base(), json!({"display_name": ""})), Some("display_name"));
    check(with(base(), json!({"display_name": "   "})), Some("display_name"));
    check(with(base(), json!({"display_name": "x".repeat(254)})), Some("display_name"));
    check(with(base(), json!({"display_name": "é".repeat(253)})), None);
    check(with(base(), json!({"display_name": "a\nb"})), Some("display_name"));
    check(with(base(), json!({"type": null})), Some("type"));
    check(with(base(), json!({"type": "azure"})), Some("type"));
    check(with(base(), json!({"surprise": 1})), Some("surprise"));
    check(with(base(), json!({"enabled": "yes"})), Some("enabled"));
}

#[test]
fn exactly_one_matching_config() {
    let mut v = base();
    if let Some(o) = v.as_object_mut() {
        o.remove("openai_config");
    }
    check(v, Some("openai_config"));
    check(with(base(), json!({"google_config": {"api_key_ref": "K"}})), Some("google_config"));
    check(with(base(), json!({"type": "anthropic"})), Some("openai_config"));
    check(with(base(), json!({"openai_config": {"api_key_ref": "K", "region": "x"}})), Some("openai_config.region"));
}

#[test]
fn credential_rules_per_type() {
    check(with(base(), json!({"openai_config": {}})), Some("openai_config.api_key_ref"));
    check(with(base(), json!({"openai_config": {"api_key_ref": ""}})), Some("openai_config.api_key_ref"));
    check(with(base(), json!({"openai_config": {"api_key_ref": "openai_key"}})), Some("openai_config.api_key_ref"));
    check(with(base(), json!({"openai_config": {"api_key_ref": "OPENAI-KEY"}})), Some("openai_config.api_key_ref"));
    check(
        with(base(), json!({"openai_config": {"api_key_ref": "K", "base_url": "not a url"}})),
        Some("openai_config.base_url"),
    );
    check(
        with(base(), json!({"openai_config": {"api_key_ref": "K", "base_url": "https://u:p@x.io"}})),
        Some("openai_config.base_url"),
    );
    let o = |cfg: Value| json!({"name": "o", "display_name": "O", "type": "openai", "openai_config": cfg});
    check(o(json!({"authorization_passthrough": true})), None);
    check(o(json!({"authorization_passthrough": true, "api_key_ref": "K"})), Some("openai_config.api_key_ref"));
    check(o(json!({"authorization_passthrough": false})), Some("openai_config.api_key_ref"));
    let g = json!({"name": "g", "display_name": "G", "type": "google", "google_config": {}});
    check(g, Some("google_config.api_key_ref"));
    check(
        json!({"name": "g", "display_name": "G", "type": "google",
               "google_config": {"api_key_ref": "K", "authorization_passthrough": true}}),
        Some("google_config.authorization_passthrough"),
    );
    let a = |cfg: Value| json!({"name": "a", "display_name": "A", "type": "anthropic", "anthropic_config": cfg});
    check(a(json!({})), Some("anthropic_config.api_key_ref"));
    check(a(json!({"authorization_passthrough": false})), Some("anthropic_config.api_key_ref"));
    check(a(json!({"authorization_passthrough": true, "api_key_ref": "K"})), Some("anthropic_config.api_key_ref"));
    let c = |cfg: Value| json!({"name": "c", "display_name": "C", "type": "openai_compatible", "openai_compatible_config": cfg});
    check(c(json!({})), Some("openai_compatible_config.base_url"));
    check(c(json!({"base_url": "ftp://x"})), Some("openai_compatible_config.base_url"));
    check(c(json!({"base_url": "http://x:1/v1", "api_key_ref": "K"})), None);
    check(c(json!({"base_url": "http://x:1/v1", "api_key_ref": "k"})), Some("openai_compatible_config.api_key_ref"));
    check(
        c(json!({"base_url": "http://x:1/v1", "api_key_ref": "K", "authorization_passthrough": true})),
        Some("openai_compatible_config.api_key_ref"),
    );
}

#[test]
fn bedrock_rules() {
    let b = |cfg: Value| json!({"name": "b", "display_name": "B", "type": "bedrock", "bedrock_config": cfg});
    check(b(json!({})), Some("bedrock_config.region"));
    check(b(json!({"region": "US-EAST-1"})), Some("bedrock_config.region"));
    check(b(json!({"region": "useast1"})), Some("bedrock_config.region"));
    check(b(json!({"region": "us-east-1", "base_url": "https://bedrock.internal"})), None);
    check(
        b(json!({"region": "us-east-1", "static_credentials": {"access_key_id_ref": "A"}})),
        Some("bedrock_config.static_credentials.secret_access_key_ref"),
    );
    check(
        b(json!({"region": "us-east-1", "static_credentials": {"secret_access_key_ref": "S"}})),
        Some("bedrock_config.static_credentials.access_key_id_ref"),
    );
    check(
        b(
            json!({"region": "us-east-1", "static_credentials": {"access_key_id_ref": "a", "secret_access_key_ref": "S"}}),
        ),
        Some("bedrock_config.static_credentials.access_key_id_ref"),
    );
    check(b(json!({"region": "us-east-1", "assume_role": {}})), Some("bedrock_config.assume_role.role_arn"));
    check(
        b(json!({"region": "us-east-1", "assume_role": {"role_arn": "arn:aws:iam::123:role/x"}})),
        Some("bedrock_config.assume_role.role_arn"),
    );
    check(
        b(json!({"region": "us-east-1", "assume_role": {"role_arn": "arn:aws:s3:::bucket"}})),
        Some("bedrock_config.assume_role.role_arn"),
    );
    check(
        b(
            json!({"region": "us-east-1", "assume_role": {"role_arn": "arn:aws:iam::123456789012:role/r", "session_name": "x"}}),
        ),
        Some("bedrock_config.assume_role.session_name"),
    );
    check(
        b(
            json!({"region": "us-east-1", "assume_role": {"role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "has space"}}),
        ),
        Some("bedrock_config.assume_role.external_id"),
    );
    check(
        b(json!({"region": "us-east-1", "assume_role": {"role_arn": "arn:aws:iam::123456789012:role/r"},
        "static_credentials": {"access_key_id_ref": "A", "secret_access_key_ref": "S"}})),
        Some("bedrock_config.assume_role"),
    );
    check(b(json!({"region": "us-east-1", "guardrail": "no spaces allowed"})), Some("bedrock_config.guardrail"));
    check(b(json!({"region": "us-east-1", "guardrail": "pii-filter"})), None);
    check(b(json!({"region": "us-east-1", "guardrail": "gr7x2k4m9p1q:3"})), None);
    check(b(json!({"region": "us-east-1", "guardrail": "gr7x2k4m9p1q:DRAFT"})), None);
    check(b(json!({"region": "us-east-1", "guardrail": "gr7x2k4m9p1q:latest"})), Some("bedrock_config.guardrail"));
    check(b(json!({"region": "us-east-1", "guardrail": "gr7x2k4m9p1q:"})), Some("bedrock_config.guardrail"));
    let cfg = BedrockConfig { guardrail: Some("g1:7".into()), ..BedrockConfig::default() };
    assert_eq!(cfg.guardrail_parts(), Some(("g1", "7")));
    let cfg = BedrockConfig { guardrail: Some("g1".into()), ..BedrockConfig::default() };
    assert_eq!(cfg.guardrail_parts(), Some(("g1", "DRAFT")));
}

#[test]
fn models_and_pricing() {
    check(
        with(
            base(),
            json!({"provider_models": [{"name": "gpt-5"}, {"name": "gpt-5-mini",
        "custom_pricing": {"input_per_million": 25000000, "output_per_million": 0}}]}),
        ),
        None,
    );
    check(
        with(base(), json!({"provider_models": [{"name": "gpt-5"}, {"name": "gpt-5"}]})),
        Some("provider_models[1].name"),
    );
    check(with(base(), json!({"provider_models": [{}]})), Some("provider_models[0].name"));
    check(with(base(), json!({"provider_models": [{"name": "has space"}]})), Some("provider_models[0].name"));
    check(
        with(base(), json!({"provider_models": [{"name": "m", "custom_pricing": {"input_per_million": -1}}]})),
        Some("provider_models[0].custom_pricing.input_per_million"),
    );
    check(
        with(base(), json!({"provider_models": [{"name": "m", "custom_pricing": {"input_per_million": 2.5}}]})),
        Some("provider_models[0].custom_pricing.input_per_million"),
    );
    check(
        with(base(), json!({"provider_models": [{"name": "m", "custom_pricing": {"input_per_million": "3"}}]})),
        Some("provider_models[0].custom_pricing.input_per_million"),
    );
    check(
        with(base(), json!({"provider_models": [{"name": "m", "custom_pricing": {"cache_write_unknown": 1}}]})),
        Some("provider_models[0].custom_pricing.cache_write_unknown"),
    );
    check(with(base(), json!({"models": ["a"], "provider_models": [{"name": "b"}]})), Some("models"));
}

#[test]
fn absent_price_differs_from_zero() {
    let body = with(
        base(),
        json!({"provider_models": [{"name": "m", "custom_pricing":
        {"input_per_million": 0, "output_per_million": null}}, {"name": "n", "custom_pricing": {}}]}),
    );
    let spec = ProviderSpec::from_value(body).unwrap_or_default();
    let p = spec.provider_models[0].custom_pricing.clone().unwrap_or_default();
    assert_eq!(p.input_per_million, Some(0));
    assert_eq!(p.output_per_million, None);
    assert_eq!(spec.provider_models[1].custom_pricing, None, "empty override object means no override");
    let out = serde_json::to_value(&spec).unwrap_or_default();
    assert_eq!(out["provider_models"][0]["custom_pricing"], json!({"input_per_million": 0}));
}

#[test]
fn tags_and_transcripts() {
    check(with(base(), json!({"tags": {"team": "search", "cost.center": "42"}})), None);
    check(with(base(), json!({"tags": {"bad key": "x"}})), Some("tags.bad key"));
    check(with(base(), json!({"tags": {"k": "v".repeat(257)}})), Some("tags.k"));
    check(with(base(), json!({"tags": {"k": 1}})), Some("tags.k"));
    check(
        with(base(), json!({"transcripts": {"record_input_messages": "on"}})),
        Some("transcripts.record_input_messages"),
    );
    let spec = ProviderSpec::from_value(base()).unwrap_or_default();
    assert_eq!(spec.transcripts, Transcripts { record_input_messages: false, record_output_messages: false });
    assert_eq!(spec.enabled, Some(true));
}

#[test]
fn normalises_and_derives() {
    let body = with(
        base(),
        json!({"models": ["gpt-5"], "url": "http://ignored", "created_at": "x",
        "openai_config": {"api_key_ref": "K", "base_url": "https://example.com/v1/"}}),
    );
    let spec = ProviderSpec::from_value(body).unwrap_or_default();
    assert_eq!(spec.url, None, "output-only fields are dropped on input");
    assert_eq!(spec.created_at, None);
    assert_eq!(spec.provider_models, vec![ProviderModel { name: "gpt-5".into(), custom_pricing: None }]);
    assert_eq!(spec.upstream_base_url(), "https://example.com/v1");
    assert!(spec.allows_model("gpt-5"));
    assert!(!spec.allows_model("gpt-4o"));
    assert_eq!(spec.secret_refs(), vec![("openai_config.api_key_ref".to_string(), "K".to_string())]);

    let b = ProviderSpec::from_value(json!({"name": "b", "display_name": "B", "type": "bedrock",
        "bedrock_config": {"region": "eu-west-3", "static_credentials":
            {"access_key_id_ref": "AK", "secret_access_key_ref": "SK"}}}))
    .unwrap_or_default();
    assert_eq!(b.upstream_base_url(), "https://bedrock-runtime.eu-west-3.amazonaws.com");
    assert_eq!(b.bedrock_credential_mode(), Some(BedrockCredentialMode::StaticKeys));
    assert_eq!(b.secret_refs().len(), 2);
    let a = ProviderSpec::from_value(json!({"name": "a", "display_name": "A", "type": "anthropic",
        "anthropic_config": {"authorization_passthrough": true}}))
    .unwrap_or_default();
    assert!(a.authorization_passthrough());
    assert_eq!(a.upstream_base_url(), "https://api.anthropic.com");
    assert!(a.allows_model("anything"), "empty model list allows every model");
}

#[test]
fn not_an_object_or_not_json() {
    assert_eq!(ProviderSpec::parse(b"[1]").map_err(|e| e.field), Err(String::new()));
    assert!(ProviderSpec::parse(b"{").is_err());
}

#[test]
fn api_key_ref_per_type() {
    let spec = |v: Value| ProviderSpec::from_value(v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec(base()).api_key_ref(), Some("OPENAI_API_KEY"));
    let pt = spec(json!({"name": "a", "display_name": "A", "type": "anthropic",
        "anthropic_config": {"authorization_passthrough": true}}));
    assert_eq!(pt.api_key_ref(), None);
    let local = spec(json!({"name": "c", "display_name": "C", "type": "openai_compatible",
        "openai_compatible_config": {"base_url": "http://x:1/v1"}}));
    assert_eq!(local.api_key_ref(), None);
}

#[test]
fn azure_openai_rules() {
    let azure =
        |cfg: Value| json!({"name": "az", "display_name": "Az", "type": "azure_openai", "azure_openai_config": cfg});
    check(azure(json!({"endpoint": "https://my-res.openai.azure.com", "api_key_ref": "AZURE_OPENAI_API_KEY"})), None);
    check(azure(json!({"endpoint": "https://my-res.openai.azure.com/", "authorization_passthrough": true})), None);
    check(
        azure(
            json!({"endpoint": "https://x.openai.azure.com", "api_key_ref": "K", "api_version": "2025-04-01-preview"}),
        ),
        None,
    );
    check(azure(json!({"api_key_ref": "K"})), Some("azure_openai_config.endpoint"));
    check(azure(json!({"endpoint": "not a url", "api_key_ref": "K"})), Some("azure_openai_config.endpoint"));
    check(
        azure(json!({"endpoint": "https://x.openai.azure.com/openai", "api_key_ref": "K"})),
        Some("azure_openai_config.endpoint"),
    );
    check(azure(json!({"endpoint": "https://x.openai.azure.com"})), Some("azure_openai_config.api_key_ref"));
    check(
        azure(json!({"endpoint": "https://x.openai.azure.com", "api_key_ref": "K", "authorization_passthrough": true})),
        Some("azure_openai_config.api_key_ref"),
    );
    check(
        azure(json!({"endpoint": "https://x.openai.azure.com", "api_key_ref": "K", "api_version": "2024-10"})),
        Some("azure_openai_config.api_version"),
    );
    check(
        azure(json!({"endpoint": "https://x.openai.azure.com", "api_key_ref": "K", "api_version": "2024-10-21-beta"})),
        Some("azure_openai_config.api_version"),
    );
    check(
        with(base(), json!({"azure_openai_config": {"endpoint": "https://x.openai.azure.com"}})),
        Some("azure_openai_config"),
    );
    let spec = ProviderSpec::from_value(azure(
        json!({"endpoint": "https://my-res.openai.azure.com/", "api_key_ref": "AZURE_OPENAI_API_KEY"}),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.upstream_base_url(), "https://my-res.openai.azure.com");
    assert_eq!(spec.api_key_ref(), Some("AZURE_OPENAI_API_KEY"));
    assert_eq!(spec.azure_openai_config.as_ref().map(AzureOpenaiConfig::api_version), Some("2024-10-21"));
    assert_eq!("azure-openai".parse::<ProviderType>(), Ok(ProviderType::AzureOpenai));
    let d = ProviderType::AzureOpenai.descriptor();
    assert_eq!(
        (d.credential, d.error_shape, d.priced_as),
        (CredentialScheme::Header("api-key"), ErrorShape::OpenAi, Some(ProviderType::Openai))
    );
}
