//! One test per pricing rule. Rates are microcents per 1M tokens; every expected figure is
//! worked out by hand in the comment next to it (cost = tokens × rate / 10^6, half-up).

use super::*;

const CATALOG: &str = r#"{"version": "test-1", "effective_date": "2026-01-01", "models": [
  {"name": "claude-x", "provider_type": "anthropic", "effective_date": "2026-01-01",
   "pricing": {"input_per_million": 300000000, "output_per_million": 1500000000,
               "cached_input_per_million": 30000000, "cache_creation_5m_per_million": 375000000,
               "cache_creation_1h_per_million": 600000000,
               "tiers": [{"above_input_tokens": 200000, "input_per_million": 600000000,
                          "output_per_million": 2250000000, "cached_input_per_million": 60000000,
                          "cache_creation_5m_per_million": 750000000, "cache_creation_1h_per_million": 1200000000}]}},
  {"name": "gpt-r", "provider_type": "openai", "effective_date": "2026-01-01",
   "pricing": {"input_per_million": 125000000, "output_per_million": 1000000000, "cached_input_per_million": 12500000}},
  {"name": "gemini-t", "provider_type": "google", "effective_date": "2026-01-01",
   "pricing": {"input_per_million": 30000000, "output_per_million": 250000000, "reasoning_per_million": 350000000}},
  {"name": "anthropic.claude-b", "provider_type": "bedrock", "effective_date": "2026-01-01",
   "pricing": {"input_per_million": 300000000, "output_per_million": 1500000000,
               "cached_input_per_million": 30000000, "cache_creation_5m_per_million": 375000000}},
  {"name": "eu.anthropic.claude-b", "provider_type": "bedrock", "effective_date": "2026-01-01",
   "pricing": {"input_per_million": 330000000, "output_per_million": 1650000000}},
  {"name": "no-cache", "provider_type": "openai", "effective_date": "2026-01-01",
   "pricing": {"input_per_million": 100000000, "output_per_million": 200000000}}
]}"#;

fn catalog() -> Catalog {
    Catalog::parse(CATALOG).unwrap_or_else(|e| panic!("{e}"))
}

fn run(pt: ProviderType, model: &str, usage: Usage, ov: Option<ModelPricing>) -> Priced {
    price(&PriceInput { provider_type: pt, model: Some(model), usage: &usage, overrides: ov.as_ref() }, &catalog())
}

#[test]
fn rounding_is_half_up_per_bucket_then_summed() {
    assert_eq!(bucket_cost(1, 300_000_000), 300); // 1 × 3e8 / 1e6
    assert_eq!(bucket_cost(1, 1_500_000), 2); // 1.5 → 2
    assert_eq!(bucket_cost(1, 1_499_999), 1); // 1.499999 → 1
    assert_eq!(bucket_cost(3, 500_000), 2); // 1.5 → 2
    assert_eq!(bucket_cost(0, 999), 0);
    assert_eq!(bucket_cost(10_000_000, 15_000_000_000), 150_000_000_000); // 10M tokens at $150/M = $1500
    // Two buckets of 1.5 microcents each: 2 + 2 = 4, not round(3.0) = 3.
    let p = run(ProviderType::Openai, "no-cache", Usage { input: 15, output: 0, ..Usage::default() }, None);
    assert_eq!(p.cost.input, 1500); // 15 × 1e8 / 1e6
    let q = run(
        ProviderType::Openai,
        "no-cache",
        Usage { input: 0, output: 0, reasoning: 0, ..Usage::default() },
        Some(ModelPricing {
            input_per_million: Some(1_500_000),
            output_per_million: Some(1_500_000),
            ..ModelPricing::default()
        }),
    );
    assert_eq!(q.cost.total, 0);
    let r = run(
        ProviderType::Openai,
        "no-cache",
        Usage { input: 1, output: 1, ..Usage::default() },
        Some(ModelPricing {
            input_per_million: Some(1_500_000),
            output_per_million: Some(1_500_000),
            ..ModelPricing::default()
        }),
    );
    assert_eq!((r.cost.input, r.cost.output, r.cost.total), (2, 2, 4));
}

#[test]
fn catalog_rates_price_every_bucket() {
    let u = Usage {
        input: 1000,
        output: 500,
        cached_input: 2000,
        cache_write_5m: 400,
        cache_write_1h: 100,
        ..Usage::default()
    };
    let p = run(ProviderType::Anthropic, "claude-x", u, None);
    assert_eq!(p.matched, CatalogMatch::Exact);
    assert_eq!(p.cost.input, 300_000); // 1000 × 3e8 / 1e6
    assert_eq!(p.cost.output, 750_000); // 500 × 1.5e9 / 1e6
    assert_eq!(p.cost.cached_input, 60_000); // 2000 × 3e7 / 1e6
    assert_eq!(p.cost.cache_write_5m, 150_000); // 400 × 3.75e8 / 1e6
    assert_eq!(p.cost.cache_write_1h, 60_000); // 100 × 6e8 / 1e6
    assert_eq!(p.cost.total, 300_000 + 750_000 + 60_000 + 150_000 + 60_000);
    assert!(!p.unpriced && !p.override_applied);
    assert_eq!(p.tier, None);
}

#[test]
fn cache_reads_bill_at_the_cached_rate_not_input() {
    let p = run(ProviderType::Openai, "gpt-r", Usage { input: 200, cached_input: 800, ..Usage::default() }, None);
    assert_eq!(p.cost.cached_input, 10_000); // 800 × 1.25e7 / 1e6, not 800 × 1.25e8 = 100,000
    assert_eq!(p.cost.input, 25_000); // 200 × 1.25e8 / 1e6
}

#[test]
fn one_hour_cache_writes_bill_at_their_own_rate_not_five_minutes() {
    let p = run(ProviderType::Anthropic, "claude-x", Usage { cache_write_1h: 1000, ..Usage::default() }, None);
    assert_eq!(p.cost.cache_write_1h, 600_000); // 1000 × 6e8 / 1e6 (the 5m rate would give 375,000)
    assert_eq!(p.cost.cache_write_5m, 0);
}

#[test]
fn unknown_ttl_cache_writes_bill_at_the_catalog_five_minute_rate() {
    let p = run(ProviderType::Anthropic, "claude-x", Usage { cache_write_unknown: 1000, ..Usage::default() }, None);
    assert_eq!(p.cost.cache_write_unknown, 375_000); // 1000 × 3.75e8 / 1e6
    // They have no override field: a 5m override does not move them.
    let ov = ModelPricing { cache_creation_5m_per_million: Some(0), ..ModelPricing::default() };
    let q = run(ProviderType::Anthropic, "claude-x", Usage { cache_write_unknown: 1000, ..Usage::default() }, Some(ov));
    assert_eq!(q.cost.cache_write_unknown, 375_000);
    assert!(!q.override_applied);
}

#[test]
fn reasoning_bills_at_the_output_rate_when_the_catalog_has_no_reasoning_rate() {
    let p = run(ProviderType::Openai, "gpt-r", Usage { output: 100, reasoning: 900, ..Usage::default() }, None);
    assert_eq!(p.cost.output, 100_000); // 100 × 1e9 / 1e6
    assert_eq!(p.cost.reasoning, 900_000); // 900 × 1e9 / 1e6
    // Never double counted: 1000 completion tokens cost exactly 1000 × 1e9 / 1e6.
    assert_eq!(p.cost.total, 1_000_000);
}

#[test]
fn reasoning_bills_at_the_catalog_reasoning_rate_when_present() {
    let p = run(ProviderType::Google, "gemini-t", Usage { output: 100, reasoning: 1000, ..Usage::default() }, None);
    assert_eq!(p.cost.output, 25_000); // 100 × 2.5e8 / 1e6
    assert_eq!(p.cost.reasoning, 350_000); // 1000 × 3.5e8 / 1e6
}

#[test]
fn an_output_override_also_prices_reasoning() {
    let ov = ModelPricing { output_per_million: Some(100_000_000), ..ModelPricing::default() };
    let p = run(ProviderType::Google, "gemini-t", Usage { output: 10, reasoning: 1000, ..Usage::default() }, Some(ov));
    assert_eq!(p.cost.reasoning, 100_000); // 1000 × 1e8 / 1e6
    assert!(p.override_applied);
}

#[test]
fn override_bucket_beats_catalog_and_absent_keeps_catalog() {
    let ov = ModelPricing { input_per_million: Some(250_000_000), ..ModelPricing::default() };
    let p = run(ProviderType::Anthropic, "claude-x", Usage { input: 1000, output: 1000, ..Usage::default() }, Some(ov));
    assert_eq!(p.cost.input, 250_000); // override: 1000 × 2.5e8 / 1e6
    assert_eq!(p.cost.output, 1_500_000); // catalog: 1000 × 1.5e9 / 1e6
    assert!(p.override_applied);
    assert_eq!(p.rates.input, Some(250_000_000));
}

#[test]
fn override_zero_is_free_not_unpriced() {
    let ov = ModelPricing {
        input_per_million: Some(0),
        output_per_million: Some(0),
        cached_input_per_million: Some(0),
        cache_creation_5m_per_million: Some(0),
        cache_creation_1h_per_million: Some(0),
    };
    let u = Usage { input: 5000, output: 5000, cached_input: 10, cache_write_1h: 10, ..Usage::default() };
    let p = run(ProviderType::Anthropic, "claude-x", u, Some(ov));
    assert_eq!(p.cost.total, 0);
    assert!(!p.unpriced);
    assert!(p.override_applied);
}

#[test]
fn an_override_unused_by_any_bucket_is_not_reported_as_applied() {
    let ov = ModelPricing { cache_creation_1h_per_million: Some(1), ..ModelPricing::default() };
    let p = run(ProviderType::Anthropic, "claude-x", Usage { input: 10, ..Usage::default() }, Some(ov));
    assert!(!p.override_applied);
}

#[test]
fn context_tier_applies_to_every_bucket_above_the_threshold() {
    // prompt = 150,000 input + 40,000 cache reads + 10,001 5m writes = 200,001 > 200,000
    let u = Usage { input: 150_000, cached_input: 40_000, cache_write_5m: 10_001, output: 1000, ..Usage::default() };
    let p = run(ProviderType::Anthropic, "claude-x", u, None);
    assert_eq!(p.tier, Some(200_000));
    assert_eq!(p.cost.input, 90_000_000); // 150,000 × 6e8 / 1e6
    assert_eq!(p.cost.cached_input, 2_400_000); // 40,000 × 6e7 / 1e6
    assert_eq!(p.cost.cache_write_5m, 7_500_750); // 10,001 × 7.5e8 / 1e6
    assert_eq!(p.cost.output, 2_250_000); // 1000 × 2.25e9 / 1e6
    // Exactly at the threshold: base rates.
    let at = Usage { input: 200_000, ..Usage::default() };
    let q = run(ProviderType::Anthropic, "claude-x", at, None);
    assert_eq!(q.tier, None);
    assert_eq!(q.cost.input, 60_000_000); // 200,000 × 3e8 / 1e6
}

#[test]
fn an_overridden_bucket_ignores_context_tiers() {
    let ov = ModelPricing { input_per_million: Some(300_000_000), ..ModelPricing::default() };
    let u = Usage { input: 300_000, output: 1000, ..Usage::default() };
    let p = run(ProviderType::Anthropic, "claude-x", u, Some(ov));
    assert_eq!(p.cost.input, 90_000_000); // flat override: 300,000 × 3e8 / 1e6
    assert_eq!(p.cost.output, 2_250_000); // catalog tier: 1000 × 2.25e9 / 1e6
}

#[test]
fn bedrock_geo_profile_in_the_catalog_uses_its_own_rate() {
    let p = run(ProviderType::Bedrock, "eu.anthropic.claude-b", Usage { input: 1000, ..Usage::default() }, None);
    assert_eq!(p.matched, CatalogMatch::Exact);
    let found = lookup(&catalog(), ProviderType::Bedrock, "eu.anthropic.claude-b").0.map(|e| e.name.clone());
    assert_eq!(found.as_deref(), Some("eu.anthropic.claude-b"));
    assert_eq!(p.cost.input, 330_000); // 1000 × 3.3e8 / 1e6
}

#[test]
fn bedrock_geo_profile_missing_from_the_catalog_costs_headline_plus_ten_percent() {
    for prefix in ["us", "apac", "au", "jp"] {
        let model = format!("{prefix}.anthropic.claude-b");
        let u = Usage { input: 1000, output: 100, cached_input: 1000, cache_write_5m: 1000, ..Usage::default() };
        let p = run(ProviderType::Bedrock, &model, u, None);
        assert_eq!(p.matched, CatalogMatch::GeoSurcharge, "{model}");
        let found = lookup(&catalog(), ProviderType::Bedrock, &model).0.map(|e| e.name.clone());
        assert_eq!(found.as_deref(), Some("anthropic.claude-b"), "{model}");
        assert_eq!(p.cost.input, 330_000); // 1000 × (3e8 × 1.1 = 3.3e8) / 1e6
        assert_eq!(p.cost.output, 165_000); // 100 × 1.65e9 / 1e6
        assert_eq!(p.cost.cached_input, 33_000); // 1000 × 3.3e7 / 1e6
        assert_eq!(p.cost.cache_write_5m, 412_500); // 1000 × 4.125e8 / 1e6
    }
    assert_eq!(geo_surcharge(15), 17); // 16.5 → 17
    assert_eq!(geo_surcharge(14), 15); // 15.4 → 15
}

#[test]
fn bedrock_global_and_bare_ids_cost_the_headline_rate() {
    let g = run(ProviderType::Bedrock, "global.anthropic.claude-b", Usage { input: 1000, ..Usage::default() }, None);
    assert_eq!(g.matched, CatalogMatch::GlobalHeadline);
    let found = lookup(&catalog(), ProviderType::Bedrock, "global.anthropic.claude-b").0.map(|e| e.name.clone());
    assert_eq!(found.as_deref(), Some("anthropic.claude-b"));
    assert_eq!(g.cost.input, 300_000); // 1000 × 3e8 / 1e6
    let b = run(ProviderType::Bedrock, "anthropic.claude-b", Usage { input: 1000, ..Usage::default() }, None);
    assert_eq!(b.cost.input, 300_000);
}

#[test]
fn bedrock_arns_resolve_to_their_model_or_profile() {
    let fm = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-b";
    assert_eq!(run(ProviderType::Bedrock, fm, Usage { input: 1000, ..Usage::default() }, None).cost.input, 300_000);
    let ip = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-b";
    assert_eq!(run(ProviderType::Bedrock, ip, Usage { input: 1000, ..Usage::default() }, None).cost.input, 330_000);
    let app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123";
    assert!(run(ProviderType::Bedrock, app, Usage { input: 1000, ..Usage::default() }, None).unpriced);
}

#[test]
fn the_geo_rule_is_bedrock_only() {
    let p = run(ProviderType::Openai, "us.gpt-r", Usage { input: 1000, ..Usage::default() }, None);
    assert_eq!(p.matched, CatalogMatch::None);
    assert!(p.unpriced);
}

#[test]
fn a_model_missing_from_the_catalog_costs_zero_and_is_unpriced() {
    let p = run(ProviderType::Openai, "gpt-unknown", Usage { input: 1000, output: 1000, ..Usage::default() }, None);
    assert_eq!(p.cost, Cost::default());
    assert!(p.unpriced);
    // Even with no tokens (a failed call), an unknown model is flagged.
    assert!(run(ProviderType::Openai, "gpt-unknown", Usage::default(), None).unpriced);
    // The same model name under another provider type is a different model.
    assert!(run(ProviderType::OpenaiCompatible, "gpt-r", Usage { input: 1, ..Usage::default() }, None).unpriced);
}

#[test]
fn a_bucket_without_any_rate_is_unpriced_not_guessed() {
    // no-cache has no cached or cache-write rate: those tokens are not billed as input.
    let u = Usage { input: 1000, cached_input: 500, ..Usage::default() };
    let p = run(ProviderType::Openai, "no-cache", u, None);
    assert_eq!(p.cost.input, 100_000); // 1000 × 1e8 / 1e6
    assert_eq!(p.cost.cached_input, 0);
    assert!(p.unpriced);
    assert_eq!(p.cost.total, 100_000);
}

#[test]
fn an_override_prices_a_model_the_catalog_lacks() {
    let ov = ModelPricing {
        input_per_million: Some(10_000_000),
        output_per_million: Some(30_000_000),
        ..ModelPricing::default()
    };
    let u = Usage { input: 2000, output: 1000, reasoning: 100, ..Usage::default() };
    let p = run(ProviderType::OpenaiCompatible, "llama-local", u, Some(ov));
    assert_eq!(p.cost.input, 20_000); // 2000 × 1e7 / 1e6
    assert_eq!(p.cost.output, 30_000); // 1000 × 3e7 / 1e6
    assert_eq!(p.cost.reasoning, 3000); // 100 × 3e7 / 1e6 (output override)
    assert!(!p.unpriced && p.override_applied);
    // cache reads without a rate are still unpriced
    let q = run(
        ProviderType::OpenaiCompatible,
        "llama-local",
        Usage { cached_input: 5, ..Usage::default() },
        Some(ModelPricing { input_per_million: Some(1), ..ModelPricing::default() }),
    );
    assert!(q.unpriced);
}

#[test]
fn no_model_and_no_tokens_is_nothing_to_price() {
    let c = catalog();
    let u = Usage::default();
    let p = price(&PriceInput { provider_type: ProviderType::Openai, model: None, usage: &u, overrides: None }, &c);
    assert!(!p.unpriced);
    assert_eq!(p.cost.total, 0);
    let u = Usage { input: 3, ..Usage::default() };
    let q = price(&PriceInput { provider_type: ProviderType::Openai, model: None, usage: &u, overrides: None }, &c);
    assert!(q.unpriced, "tokens without a model cannot be priced");
}

#[test]
fn google_models_prefix_is_ignored() {
    let p = run(ProviderType::Google, "models/gemini-t", Usage { input: 1_000_000, ..Usage::default() }, None);
    assert_eq!(p.cost.input, 30_000_000); // 1M × 3e7 / 1e6
}

#[test]
fn the_embedded_catalog_prices_a_real_request() {
    let c = Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
    // Claude Sonnet 4.6 on the Anthropic API: $3 in, $15 out, $0.30 cache read, $3.75 5m, $6 1h per 1M.
    let u = Usage {
        input: 1200,
        output: 350,
        cached_input: 10_000,
        cache_write_5m: 2048,
        cache_write_1h: 4096,
        ..Usage::default()
    };
    let p = price(
        &PriceInput {
            provider_type: ProviderType::Anthropic,
            model: Some("claude-sonnet-4-6"),
            usage: &u,
            overrides: None,
        },
        &c,
    );
    assert_eq!(p.cost.input, 360_000); // 1200 × 3e8 / 1e6
    assert_eq!(p.cost.output, 525_000); // 350 × 1.5e9 / 1e6
    assert_eq!(p.cost.cached_input, 300_000); // 10,000 × 3e7 / 1e6
    assert_eq!(p.cost.cache_write_5m, 768_000); // 2048 × 3.75e8 / 1e6
    assert_eq!(p.cost.cache_write_1h, 2_457_600); // 4096 × 6e8 / 1e6
    assert_eq!(p.cost.total, 4_410_600);
}
