use super::*;

fn embedded() -> Catalog {
    match Catalog::embedded() {
        Ok(c) => c,
        Err(e) => panic!("embedded catalog: {e}"),
    }
}

fn entry<'a>(c: &'a Catalog, pt: ProviderType, name: &str) -> &'a ModelEntry {
    c.get(pt, name).unwrap_or_else(|| panic!("{pt}:{name} missing from the catalog"))
}

#[test]
fn embedded_catalog_parses_with_version_and_date() {
    let c = embedded();
    assert_eq!(c.version(), "2026-11-24.1");
    assert_eq!(c.effective_date(), "2026-11-24");
    assert!(c.source().contains("litellm 1.106.2"), "{}", c.source());
    assert_eq!(c.overlay_version(), None);
    for pt in [ProviderType::Openai, ProviderType::Anthropic, ProviderType::Google, ProviderType::Bedrock] {
        assert!(c.models_of(pt).count() > 10, "{pt} has few entries");
    }
    // OpenAI-compatible models are free-form: the shipped catalog prices none of them.
    assert_eq!(c.models_of(ProviderType::OpenaiCompatible).count(), 0);
    for m in c.models() {
        assert_eq!(m.effective_date, "2026-11-24", "{}", m.name);
        assert!(m.source.starts_with("litellm-1.106.2:"), "{}", m.name);
        assert!(!m.label.is_empty(), "{}", m.name);
        assert!(m.pricing.input_per_million.is_some(), "{} has no input price", m.name);
    }
}

// Hand-worked: USD per token × 10^14 = microcents per 1M tokens (1 USD = 10^8 microcents).
#[test]
fn anthropic_prices_match_hand_conversion() {
    let c = embedded();
    let m = entry(&c, ProviderType::Anthropic, "claude-sonnet-4-6");
    assert_eq!(m.label, "Claude Sonnet 4.6");
    let p = &m.pricing;
    assert_eq!(p.input_per_million, Some(300_000_000)); // 3e-06 USD = $3 / 1M
    assert_eq!(p.output_per_million, Some(1_500_000_000)); // 1.5e-05 = $15 / 1M
    assert_eq!(p.cached_input_per_million, Some(30_000_000)); // 3e-07 = $0.30 / 1M
    assert_eq!(p.cache_creation_5m_per_million, Some(375_000_000)); // 3.75e-06 = $3.75 / 1M
    assert_eq!(p.cache_creation_1h_per_million, Some(600_000_000)); // 6e-06 = $6 / 1M
    assert_eq!(p.reasoning_per_million, None);
    assert_eq!(m.max_input_tokens, Some(1_000_000));
    assert_eq!(m.max_output_tokens, Some(128_000));
    assert!(m.capabilities.reasoning && m.capabilities.prompt_caching && m.capabilities.tools);
    assert!(!m.requires_inference_profile);
}

#[test]
fn google_tiers_and_reasoning_rates() {
    let c = embedded();
    let pro = entry(&c, ProviderType::Google, "gemini-2.5-pro"); // litellm key gemini/gemini-2.5-pro
    assert_eq!(pro.pricing.input_per_million, Some(125_000_000)); // 1.25e-06
    assert_eq!(pro.pricing.tiers.len(), 1);
    let t = &pro.pricing.tiers[0];
    assert_eq!(t.above_input_tokens, 200_000);
    assert_eq!(t.input_per_million, Some(250_000_000)); // 2.5e-06
    assert_eq!(t.output_per_million, Some(1_500_000_000)); // 1.5e-05
    assert_eq!(t.cached_input_per_million, Some(25_000_000)); // 2.5e-07
    assert_eq!(pro.pricing.tier_for(200_000), None, "the tier starts strictly above 200K");
    assert_eq!(pro.pricing.tier_for(200_001).map(|t| t.above_input_tokens), Some(200_000));
    let flash = entry(&c, ProviderType::Google, "gemini-2.5-flash");
    assert_eq!(flash.pricing.reasoning_per_million, Some(250_000_000)); // 2.5e-06
    assert_eq!(flash.pricing.cached_input_per_million, Some(3_000_000)); // 3e-08
}

#[test]
fn openai_long_context_tier_at_272k() {
    let c = embedded();
    let m = entry(&c, ProviderType::Openai, "gpt-5.4");
    assert_eq!(m.pricing.input_per_million, Some(250_000_000));
    assert_eq!(m.pricing.tiers[0].above_input_tokens, 272_000);
    assert_eq!(m.pricing.tiers[0].output_per_million, Some(2_250_000_000)); // 2.25e-05
    // fine-tuned keys and non-token modes stay out
    assert!(c.get(ProviderType::Openai, "ft:gpt-4o-2024-08-06").is_none());
    assert!(c.get(ProviderType::Openai, "gpt-image-1").is_none());
    assert!(c.get(ProviderType::Openai, "text-embedding-3-small").is_some());
}

#[test]
fn bedrock_profiles_have_their_own_rates() {
    let c = embedded();
    let bare = entry(&c, ProviderType::Bedrock, "anthropic.claude-sonnet-4-6");
    assert!(bare.requires_inference_profile);
    assert_eq!(bare.pricing.input_per_million, Some(300_000_000));
    let us = entry(&c, ProviderType::Bedrock, "us.anthropic.claude-sonnet-4-6");
    assert_eq!(us.pricing.input_per_million, Some(330_000_000)); // 3.3e-06
    assert_eq!(us.pricing.cache_creation_5m_per_million, Some(412_500_000)); // 4.125e-06
    assert_eq!(us.pricing.cache_creation_1h_per_million, Some(660_000_000)); // 6.6e-06
    assert!(!us.requires_inference_profile, "a profile is itself invocable");
    assert_eq!(us.label, "Claude Sonnet 4.6 (US profile)");
    let global = entry(&c, ProviderType::Bedrock, "global.anthropic.claude-sonnet-4-6");
    assert_eq!(global.pricing.input_per_million, Some(300_000_000));
    assert_eq!(
        c.inference_profiles_for("anthropic.claude-sonnet-4-6"),
        vec![
            "apac.anthropic.claude-sonnet-4-6",
            "au.anthropic.claude-sonnet-4-6",
            "eu.anthropic.claude-sonnet-4-6",
            "global.anthropic.claude-sonnet-4-6",
            "jp.anthropic.claude-sonnet-4-6",
            "us.anthropic.claude-sonnet-4-6",
        ]
    );
    assert!(c.inference_profiles_for("mistral.mistral-large-2407-v1:0").is_empty());
    // Claude 4.5 and older are invocable by bare id; 4.6+ are not.
    assert!(!entry(&c, ProviderType::Bedrock, "anthropic.claude-haiku-4-5-20251001-v1:0").requires_inference_profile);
    assert!(entry(&c, ProviderType::Bedrock, "anthropic.claude-opus-4-6-v1").requires_inference_profile);
    assert!(entry(&c, ProviderType::Bedrock, "anthropic.claude-opus-5").requires_inference_profile);
    // routing keys, GovCloud and Vertex-style ids stay out
    assert!(c.get(ProviderType::Bedrock, "us-gov.anthropic.claude-sonnet-5").is_none());
    assert!(c.get(ProviderType::Bedrock, "anthropic.claude-haiku-4-5@20251001").is_none());
    assert!(c.models_of(ProviderType::Bedrock).all(|m| !m.name.starts_with("bedrock/")));
}

#[test]
fn splits_bedrock_profile_prefixes() {
    assert_eq!(split_bedrock_profile("us.anthropic.x-v1:0"), (Some("us"), "anthropic.x-v1:0"));
    assert_eq!(split_bedrock_profile("global.anthropic.x"), (Some("global"), "anthropic.x"));
    assert_eq!(split_bedrock_profile("anthropic.x"), (None, "anthropic.x"));
    assert_eq!(split_bedrock_profile("us-gov.anthropic.x"), (None, "us-gov.anthropic.x"));
    assert_eq!(split_bedrock_profile("eu.x"), (None, "eu.x"), "a prefix needs a vendor after it");
}

#[test]
fn overlay_corrects_an_entry_and_adds_a_model() {
    let c = embedded();
    let overlay = r#"{
        "version": "acme-7",
        "effective_date": "2026-12-01",
        "models": [
            {"provider_type": "anthropic", "name": "claude-sonnet-4-6", "pricing": {"input_per_million": 250000000}},
            {"provider_type": "openai_compatible", "name": "llama-3.3-70b", "label": "Llama 3.3 70B",
             "pricing": {"input_per_million": 10000000, "output_per_million": 30000000}},
            {"provider_type": "bedrock", "name": "us-gov.anthropic.claude-sonnet-5",
             "pricing": {"input_per_million": 240000000, "output_per_million": 1200000000}}
        ]
    }"#;
    let merged = match c.with_overlay(overlay) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(merged.version(), "2026-11-24.1+acme-7");
    assert_eq!(merged.overlay_version(), Some("acme-7"));
    let s = entry(&merged, ProviderType::Anthropic, "claude-sonnet-4-6");
    assert_eq!(s.pricing.input_per_million, Some(250_000_000), "corrected");
    assert_eq!(s.pricing.output_per_million, Some(1_500_000_000), "untouched buckets keep the catalog rate");
    assert_eq!(s.effective_date, "2026-12-01", "a corrected entry takes the overlay's date");
    assert_eq!(s.label, "Claude Sonnet 4.6");
    let l = entry(&merged, ProviderType::OpenaiCompatible, "llama-3.3-70b");
    assert_eq!(l.source, "overlay:acme-7");
    assert_eq!(l.effective_date, "2026-12-01");
    assert_eq!(merged.models().len(), c.models().len() + 2);
    assert!(merged.get(ProviderType::Bedrock, "us-gov.anthropic.claude-sonnet-5").is_some());
    // the original is unchanged
    assert_eq!(entry(&c, ProviderType::Anthropic, "claude-sonnet-4-6").pricing.input_per_million, Some(300_000_000));
}

#[test]
fn bad_overlays_name_the_field() {
    let c = embedded();
    let cases = [
        (r#"{"models": []}"#, "version"),
        (r#"{"version": "x", "models": [{"provider_type": "openai"}]}"#, "models[0].name"),
        (r#"{"version": "x", "models": [{"name": "m", "provider_type": "azure"}]}"#, "models[0].provider_type"),
        (
            r#"{"version": "x", "models": [{"name": "m", "provider_type": "openai", "effective_date": "2026-01-01",
                "pricing": {"input_per_million": -1}}]}"#,
            "models[0].pricing.input_per_million",
        ),
        (r#"{"version": "x", "models": [{"name": "m", "provider_type": "openai"}]}"#, "models[0].effective_date"),
        (
            r#"{"version": "x", "effective_date": "2026-01-01", "models": [{"name": "m", "provider_type": "openai", "pricing": {"inptu_per_million": 1}}]}"#,
            "models[0].pricing.inptu_per_million",
        ),
        (
            r#"{"version": "x", "effective_date": "2026-01-01", "models": [{"name": "m", "provider_type": "openai",
                "pricing": {"tiers": [{"above_input_tokens": 200000}, {"above_input_tokens": 100000}]}}]}"#,
            "models[0].pricing.tiers[1].above_input_tokens",
        ),
        (r#"{"version": "x", "effective_date": "01/02/2026", "models": []}"#, "effective_date"),
    ];
    for (text, field) in cases {
        match c.with_overlay(text) {
            Ok(_) => panic!("accepted {text}"),
            Err(e) => {
                assert_eq!(e.document, "catalog overlay");
                assert_eq!(e.error.field, field, "{text}: {e}");
            }
        }
    }
    assert!(c.with_overlay("not json").is_err());
}

#[test]
fn parse_rejects_duplicates_and_bad_documents() {
    let dup = r#"{"version": "v", "effective_date": "2026-01-01", "models": [
        {"name": "a", "provider_type": "openai", "effective_date": "2026-01-01"},
        {"name": "a", "provider_type": "openai", "effective_date": "2026-01-01"}]}"#;
    assert!(matches!(Catalog::parse(dup), Err(e) if e.error.message.contains("twice")));
    let same_name_other_type = r#"{"version": "v", "effective_date": "2026-01-01", "models": [
        {"name": "a", "provider_type": "openai", "effective_date": "2026-01-01"},
        {"name": "a", "provider_type": "openai_compatible", "effective_date": "2026-01-01"}]}"#;
    assert!(Catalog::parse(same_name_other_type).is_ok());
    let no_version = r#"{"version": " ", "effective_date": "2026-01-01", "models": []}"#;
    assert!(matches!(Catalog::parse(no_version), Err(e) if e.error.field == "version"));
    let profile_flag = r#"{"version": "v", "effective_date": "2026-01-01", "models": [
        {"name": "a", "provider_type": "openai", "effective_date": "2026-01-01", "requires_inference_profile": true}]}"#;
    assert!(Catalog::parse(profile_flag).is_err());
}

#[test]
fn dates_are_checked() {
    assert!(is_date("2026-11-24"));
    for bad in ["2026-13-01", "2026-00-10", "2026-1-1", "20261124", "2026-11-32", "abcd-ef-gh"] {
        assert!(!is_date(bad), "{bad}");
    }
}
