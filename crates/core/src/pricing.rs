//! The pricing engine: (model, provider type, usage buckets, provider overrides, catalog) →
//! cost per bucket and total, in microcents. Pure and deterministic: the usage writer calls
//! [`price`] just before an event is stored, with the catalog current at that time.
//!
//! Rules (ARCHITECTURE.md, Decisions: Money and usage), each a named unit test below:
//! - cost per bucket = tokens × rate / 1,000,000, rounded half-up; the total is the sum.
//! - A provider override beats the catalog for its bucket (absent keeps the catalog rate,
//!   `0` is free) and is a flat rate: context tiers never apply to an overridden bucket.
//! - Context tiers: when the whole prompt (input + cache reads + cache writes) is strictly above
//!   a tier's threshold, the tier's rates replace the base rates it names.
//! - `reasoning` is billed at the output override if set, else the catalog reasoning rate, else
//!   the output rate; the protocol layer keeps it out of `output`, so it is never counted twice.
//! - `cached_input` at the cached rate; `cache_write_5m` and `cache_write_1h` at their own rates;
//!   `cache_write_unknown` at the catalog 5-minute rate (the reference product: unknown-TTL
//!   writes have no override field and always bill at the catalog rate).
//! - Bedrock: an ARN is reduced to its model or profile id; a profile id the catalog lists is
//!   priced at its own rates; otherwise a geographic profile (`us.` `eu.` `apac.` `au.` `jp.`)
//!   costs the bare model's rates × 1.10 (each rate rounded half-up to a microcent) and
//!   `global.` the bare model's headline rates.
//! - Never guessed: a bucket with tokens but no rate (no override, no catalog rate) costs 0 and
//!   marks the event `unpriced`; so does a named model the catalog does not know (unless an
//!   override prices it).

use crate::catalog::{BEDROCK_GEO_PREFIXES, Catalog, CatalogPricing, ModelEntry, split_bedrock_profile};
use crate::provider::{ModelPricing, ProviderType};
use crate::usage::{Cost, Usage};

/// Tokens per pricing unit: rates are microcents per 1M tokens.
const PER: i128 = 1_000_000;

/// What to price.
#[derive(Debug, Clone, Copy)]
pub struct PriceInput<'a> {
    pub provider_type: ProviderType,
    /// The model as called (body or path); `None` when the request named none.
    pub model: Option<&'a str>,
    pub usage: &'a Usage,
    /// The provider's `custom_pricing` for this model, captured when the request arrived.
    pub overrides: Option<&'a ModelPricing>,
}

/// How the model was found in the catalog (the entry itself is what [`lookup`] returns beside
/// it). No name is carried: every request prices at least once, and a copied name per lookup
/// was an allocation nothing read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogMatch {
    /// The name (or the id inside a Bedrock ARN) is a catalog entry.
    Exact,
    /// A Bedrock geographic profile missing from the catalog: its bare model × 1.10.
    GeoSurcharge,
    /// A Bedrock `global.` profile missing from the catalog: its bare model's headline rates.
    GlobalHeadline,
    /// Not in the catalog.
    None,
}

/// The effective rate per bucket (microcents per 1M tokens) after overrides, tiers and the
/// Bedrock geo rule; `None` = no rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub reasoning: Option<i64>,
    pub cached_input: Option<i64>,
    pub cache_write_5m: Option<i64>,
    pub cache_write_1h: Option<i64>,
    pub cache_write_unknown: Option<i64>,
}

/// The result of pricing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub cost: Cost,
    pub rates: Rates,
    pub matched: CatalogMatch,
    /// Some bucket had tokens but no rate, or the named model is unknown and not overridden.
    pub unpriced: bool,
    /// At least one bucket with tokens was priced at an override rate.
    pub override_applied: bool,
    /// The context tier used (its threshold), if any.
    pub tier: Option<i64>,
}

/// The cost of `tokens` at `rate` microcents per 1M tokens, rounded half-up (away from zero).
pub fn bucket_cost(tokens: i64, rate: i64) -> i64 {
    let product = i128::from(tokens) * i128::from(rate);
    let rounded = if product >= 0 { (product + PER / 2) / PER } else { -((-product + PER / 2) / PER) };
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

/// A rate × 1.10, rounded half-up to a whole microcent per 1M tokens.
pub fn geo_surcharge(rate: i64) -> i64 {
    let v = (i128::from(rate) * 11 + 5) / 10;
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Finds the catalog entry for a model as called.
pub fn lookup<'c>(
    catalog: &'c Catalog,
    provider_type: ProviderType,
    model: &str,
) -> (Option<&'c ModelEntry>, CatalogMatch) {
    let model = match provider_type {
        ProviderType::Google => model.strip_prefix("models/").unwrap_or(model),
        ProviderType::Bedrock => bedrock_id_from_arn(model),
        ProviderType::Openai | ProviderType::Anthropic | ProviderType::OpenaiCompatible | ProviderType::AzureOpenai => {
            model
        }
    };
    if let Some(e) = catalog.get(provider_type, model) {
        return (Some(e), CatalogMatch::Exact);
    }
    if provider_type == ProviderType::Bedrock
        && let (Some(prefix), bare) = split_bedrock_profile(model)
        && let Some(e) = catalog.get(ProviderType::Bedrock, bare)
    {
        if BEDROCK_GEO_PREFIXES.contains(&prefix) {
            return (Some(e), CatalogMatch::GeoSurcharge);
        }
        return (Some(e), CatalogMatch::GlobalHeadline);
    }
    (None, CatalogMatch::None)
}

/// `arn:aws:bedrock:<region>:<account>:foundation-model/<id>` and `…:inference-profile/<id>`
/// name a catalog id; anything else (including application inference profiles) is kept as is.
fn bedrock_id_from_arn(model: &str) -> &str {
    if !model.starts_with("arn:") {
        return model;
    }
    for kind in [":foundation-model/", ":inference-profile/"] {
        if let Some(at) = model.find(kind) {
            return &model[at + kind.len()..];
        }
    }
    model
}

/// Prices one request. See the module documentation for the rules.
pub fn price(input: &PriceInput<'_>, catalog: &Catalog) -> Priced {
    let usage = input.usage;
    let (entry, matched) = match input.model {
        Some(m) => lookup(catalog, input.provider_type, m),
        None => (None, CatalogMatch::None),
    };
    let geo = matched == CatalogMatch::GeoSurcharge;
    let adjust = |r: Option<i64>| if geo { r.map(geo_surcharge) } else { r };
    let empty = CatalogPricing::default();
    let card = entry.map_or(&empty, |e| &e.pricing);
    let tier = card.tier_for(usage.prompt_tokens());
    // The catalog rate for a bucket: the tier's if the tier names it, else the base rate.
    let sel = |t: Option<i64>, base: Option<i64>| adjust(t.or(base));
    let cat_input = sel(tier.and_then(|t| t.input_per_million), card.input_per_million);
    let cat_output = sel(tier.and_then(|t| t.output_per_million), card.output_per_million);
    let cat_reasoning = sel(tier.and_then(|t| t.reasoning_per_million), card.reasoning_per_million);
    let cat_cached = sel(tier.and_then(|t| t.cached_input_per_million), card.cached_input_per_million);
    let cat_5m = sel(tier.and_then(|t| t.cache_creation_5m_per_million), card.cache_creation_5m_per_million);
    let cat_1h = sel(tier.and_then(|t| t.cache_creation_1h_per_million), card.cache_creation_1h_per_million);

    let ov = input.overrides.cloned().unwrap_or_default();
    // (effective rate, came from an override)
    let pick = |o: Option<i64>, c: Option<i64>| match o {
        Some(r) => (Some(r), true),
        None => (c, false),
    };
    let input_r = pick(ov.input_per_million, cat_input);
    let output_r = pick(ov.output_per_million, cat_output);
    let reasoning_r = pick(ov.output_per_million, cat_reasoning.or(cat_output));
    let cached_r = pick(ov.cached_input_per_million, cat_cached);
    let w5m_r = pick(ov.cache_creation_5m_per_million, cat_5m);
    let w1h_r = pick(ov.cache_creation_1h_per_million, cat_1h);
    // Unknown-TTL writes have no override field: the catalog 5m rate; only a model the catalog
    // cannot price falls back to the 5m override.
    let unknown_r = match cat_5m {
        Some(r) => (Some(r), false),
        None => (ov.cache_creation_5m_per_million, ov.cache_creation_5m_per_million.is_some()),
    };

    let mut unpriced = input.model.is_some() && entry.is_none() && ov.is_empty();
    let mut override_applied = false;
    let mut bucket = |tokens: i64, (rate, from_override): (Option<i64>, bool)| -> i64 {
        if tokens == 0 {
            return 0;
        }
        match rate {
            Some(r) => {
                override_applied |= from_override;
                bucket_cost(tokens, r)
            }
            None => {
                unpriced = true;
                0
            }
        }
    };
    let mut cost = Cost {
        input: bucket(usage.input, input_r),
        output: bucket(usage.output, output_r),
        reasoning: bucket(usage.reasoning, reasoning_r),
        cached_input: bucket(usage.cached_input, cached_r),
        cache_write_5m: bucket(usage.cache_write_5m, w5m_r),
        cache_write_1h: bucket(usage.cache_write_1h, w1h_r),
        cache_write_unknown: bucket(usage.cache_write_unknown, unknown_r),
        total: 0,
    };
    cost.total = [
        cost.input,
        cost.output,
        cost.reasoning,
        cost.cached_input,
        cost.cache_write_5m,
        cost.cache_write_1h,
        cost.cache_write_unknown,
    ]
    .iter()
    .fold(0i64, |acc, v| acc.saturating_add(*v));
    Priced {
        cost,
        rates: Rates {
            input: input_r.0,
            output: output_r.0,
            reasoning: reasoning_r.0,
            cached_input: cached_r.0,
            cache_write_5m: w5m_r.0,
            cache_write_1h: w1h_r.0,
            cache_write_unknown: unknown_r.0,
        },
        matched,
        unpriced,
        override_applied,
        tier: tier.map(|t| t.above_input_tokens),
    }
}

#[cfg(test)]
mod tests;
