//! Warnings about a provider that is valid but will not behave as its operator may expect:
//! a model the catalog does not know (its calls are unpriced unless `custom_pricing` prices
//! them) and a Bedrock model named by its bare id although Bedrock serves it only through an
//! inference profile (the proxy refuses such calls). The admin API returns them with a create
//! or update, the CLI prints them and the console shows them; they never refuse a save.

use crate::catalog::Catalog;
use crate::pricing::lookup;
use crate::provider::{ProviderSpec, ProviderType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One warning, naming the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldWarning {
    /// The field path, e.g. `provider_models[2].name`.
    pub field: String,
    pub message: String,
}

/// The warnings of a provider against `catalog`, in model order.
pub fn model_warnings(spec: &ProviderSpec, catalog: &Catalog) -> Vec<FieldWarning> {
    let kind = spec.kind();
    spec.provider_models
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let priced_here = m.custom_pricing.as_ref().is_some_and(|p| !p.is_empty());
            model_warning(kind, &m.name, priced_here, catalog)
                .map(|message| FieldWarning { field: format!("provider_models[{i}].name"), message })
        })
        .collect()
}

/// The warning about one model of a provider of type `kind` (`priced_here`: its
/// `custom_pricing` sets a rate), if any.
pub fn model_warning(kind: ProviderType, name: &str, priced_here: bool, catalog: &Catalog) -> Option<String> {
    match lookup(catalog, kind, name).0 {
        None if !priced_here => Some(format!(
            "model \"{name}\" is not in the catalog for type {}: it will be unpriced unless custom_pricing is set",
            kind.as_str()
        )),
        None => None,
        Some(e) if kind == ProviderType::Bedrock && e.requires_inference_profile && e.name == name => {
            let profiles = catalog.inference_profiles_for(name);
            let hint = if profiles.is_empty() {
                "an inference profile id".to_string()
            } else {
                format!("an inference profile id such as {}", profiles.join(", "))
            };
            Some(format!(
                "model \"{name}\" is served by Bedrock only through an inference profile: calls with this bare id are refused; use {hint}"
            ))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(kind: &str, models: serde_json::Value) -> ProviderSpec {
        let cfg = match kind {
            "bedrock" => json!({"region": "us-east-1"}),
            "openai_compatible" => json!({"base_url": "http://127.0.0.1:1/v1"}),
            _ => json!({"api_key_ref": "KEY"}),
        };
        let v = json!({"name": "p", "display_name": "P", "type": kind, format!("{kind}_config"): cfg,
                       "provider_models": models});
        ProviderSpec::from_value(v).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn unknown_models_warn_unless_custom_pricing_prices_them() {
        let catalog = Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
        let s = spec(
            "anthropic",
            json!([{"name": "claude-sonnet-4-6"}, {"name": "sonnet-4-6"},
                   {"name": "mine", "custom_pricing": {"input_per_million": 1}}, {"name": "x"}]),
        );
        let w = model_warnings(&s, &catalog);
        assert_eq!(
            w.iter().map(|w| w.field.as_str()).collect::<Vec<_>>(),
            ["provider_models[1].name", "provider_models[3].name"]
        );
        assert_eq!(
            w[1].message,
            "model \"x\" is not in the catalog for type anthropic: it will be unpriced unless custom_pricing is set"
        );
    }

    #[test]
    fn bare_bedrock_ids_of_profile_only_models_warn_with_the_profiles() {
        let catalog = Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
        let s = spec(
            "bedrock",
            json!([{"name": "anthropic.claude-sonnet-4-6"}, {"name": "us.anthropic.claude-sonnet-4-6"}]),
        );
        let w = model_warnings(&s, &catalog);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "provider_models[0].name");
        assert!(w[0].message.contains("only through an inference profile"), "{}", w[0].message);
        assert!(w[0].message.contains("us.anthropic.claude-sonnet-4-6"), "{}", w[0].message);
    }
}
