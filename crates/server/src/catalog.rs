//! The live model catalog: the embedded catalog merged with the operator overlay
//! (`--catalog-overlay FILE`), behind an `ArcSwap` so readers never lock.
//!
//! The overlay file is re-read every poll interval; when its bytes change it is merged again
//! and swapped in, so a price correction or a new model needs no restart and no release. A
//! broken overlay at startup stops the gateway with an error naming the field; a broken edit
//! at runtime keeps the last good catalog but is never silent: it is logged at error level,
//! counted in `/metrics` and reported by `GET /api/v1/models` until the file is fixed.

use crate::error::ServerError;
use crate::metrics::Metrics;
use crate::snapshot::ProviderEntry;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate_core::Catalog;

/// The state of the overlay file, as the models API reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayStatus {
    pub path: Option<PathBuf>,
    /// The overlay version merged into the current catalog.
    pub version: Option<String>,
    /// Why the file on disk is not the one in use (it failed to read or validate).
    pub error: Option<String>,
    /// When the current overlay was loaded, epoch ms.
    pub loaded_at_ms: Option<i64>,
}

/// The catalog in use, and how to refresh it.
#[derive(Debug)]
pub struct CatalogHandle {
    embedded: Catalog,
    current: ArcSwap<Catalog>,
    overlay: Option<PathBuf>,
    seen: Mutex<Seen>,
    metrics: Arc<Metrics>,
}

/// What the overlay's polls have seen.
#[derive(Debug)]
struct Seen {
    /// The bytes last loaded or rejected (a poll that reads them again does nothing).
    bytes: Option<Vec<u8>>,
    /// The status to report.
    status: OverlayStatus,
    /// A failure the last poll saw and did not report yet.
    unsettled: Option<String>,
}

impl CatalogHandle {
    /// Loads the embedded catalog and, if configured, the overlay. Either failing is fatal.
    pub fn load(overlay: Option<PathBuf>, metrics: Arc<Metrics>) -> Result<CatalogHandle, ServerError> {
        let embedded = Catalog::embedded().map_err(|e| ServerError::Settings(e.to_string()))?;
        let mut status = OverlayStatus { path: overlay.clone(), ..OverlayStatus::default() };
        let (merged, seen) = match &overlay {
            None => (embedded.clone(), None),
            Some(path) => {
                let bytes = read(path).map_err(|e| ServerError::Settings(format!("--catalog-overlay {e}")))?;
                let merged = merge(&embedded, &bytes)
                    .map_err(|e| ServerError::Settings(format!("--catalog-overlay {}: {e}", path.display())))?;
                status.version = merged.overlay_version().map(str::to_string);
                status.loaded_at_ms = Some(crate::time::system_now_ms());
                (merged, Some(bytes))
            }
        };
        tracing::info!(version = merged.version(), models = merged.models().len(), "model catalog loaded");
        Ok(CatalogHandle {
            embedded,
            current: ArcSwap::from_pointee(merged),
            overlay,
            seen: Mutex::new(Seen { bytes: seen, status, unsettled: None }),
            metrics,
        })
    }

    /// The catalog to price with now.
    pub fn current(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    pub fn status(&self) -> OverlayStatus {
        self.seen.lock().map(|g| g.status.clone()).unwrap_or_default()
    }

    /// Re-reads the overlay; swaps in a new catalog when the file changed and validates.
    /// Returns whether the catalog changed. A failure (unreadable, invalid) is reported when
    /// the next poll sees it again ([`CatalogHandle::failed`]).
    pub fn refresh(&self) -> bool {
        let Some(path) = &self.overlay else { return false };
        let Ok(mut seen) = self.seen.lock() else { return false };
        let bytes = match read(path) {
            Ok(b) => b,
            Err(e) => {
                self.failed(&mut seen, path, e, None);
                return false;
            }
        };
        if seen.bytes.as_deref() == Some(bytes.as_slice()) {
            return false;
        }
        match merge(&self.embedded, &bytes) {
            Ok(merged) => {
                tracing::info!(version = merged.version(), models = merged.models().len(), "catalog overlay reloaded");
                Metrics::inc(&self.metrics.catalog_overlay_reloads);
                seen.bytes = Some(bytes);
                seen.unsettled = None;
                seen.status.version = merged.overlay_version().map(str::to_string);
                seen.status.error = None;
                seen.status.loaded_at_ms = Some(crate::time::system_now_ms());
                self.current.store(Arc::new(merged));
                true
            }
            Err(e) => {
                self.failed(&mut seen, path, e.to_string(), Some(bytes));
                false
            }
        }
    }

    /// A failed poll. Reported (error log, `tollgate_catalog_overlay_errors_total`, the
    /// status's `error`) once two polls in a row saw the same failure: a file read while an
    /// editor rewrites it in place (truncated, half written, briefly absent) fails once and is
    /// read whole at the next poll, which is no reason for an alarm. `bytes`: what was read
    /// (an invalid file, not merged again until it changes once reported); `None` when the
    /// file could not be read (its next content is merged whatever it is).
    fn failed(&self, seen: &mut Seen, path: &Path, error: String, bytes: Option<Vec<u8>>) {
        if seen.status.error.as_deref() == Some(error.as_str()) {
            // Reported already (another edit may fail the same way: not merged again either).
            seen.bytes = bytes;
            return;
        }
        if seen.unsettled.as_deref() != Some(error.as_str()) {
            tracing::debug!(error = %error, "catalog overlay failed to load; judged again at the next poll");
            seen.unsettled = Some(error);
            return;
        }
        seen.unsettled = None;
        Metrics::inc(&self.metrics.catalog_overlay_errors);
        tracing::error!(error = %error, path = %path.display(), version = self.current().version(),
            "catalog overlay rejected or unreadable; still using the last good catalog");
        seen.status.error = Some(error);
        seen.bytes = bytes;
    }

    /// Polls the overlay file until shutdown.
    pub async fn watch(self: Arc<Self>, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        if self.overlay.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.refresh()).await;
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn merge(embedded: &Catalog, bytes: &[u8]) -> Result<Catalog, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "catalog overlay: not UTF-8".to_string())?;
    embedded.with_overlay(text).map_err(|e| e.to_string())
}

/// Prices one call the way its usage event is priced: returns the model that priced it
/// (borrowed: nothing is allocated) and the result. For a type whose descriptor says
/// `model_from_response` (Azure OpenAI: clients call a deployment name), the model the
/// response named replaces the called one when the catalog knows it; otherwise the called name
/// stays. Price overrides are the provider's for the model as called (its allow-list names),
/// else for the model that priced it. The usage writer and the budget settlement
/// (`limits::Charge`) both call this, so a budget is charged exactly what the event costs.
pub fn price_call<'m>(
    catalog: &Catalog,
    provider: Option<&ProviderEntry>,
    provider_type: tollgate_core::ProviderType,
    called: Option<&'m str>,
    response_model: Option<&'m str>,
    usage: &tollgate_core::Usage,
) -> (Option<&'m str>, tollgate_core::pricing::Priced) {
    let mut model = called;
    if let Some(reported) = response_model.filter(|_| provider_type.descriptor().model_from_response)
        && tollgate_core::pricing::lookup(catalog, provider_type, reported).0.is_some()
    {
        model = Some(reported);
    }
    let overrides = overrides_for(provider, called).or_else(|| overrides_for(provider, model));
    let priced = tollgate_core::pricing::price(
        &tollgate_core::pricing::PriceInput { provider_type, model, usage, overrides },
        catalog,
    );
    (model, priced)
}

/// The provider's `custom_pricing` for `model` (as its allow-list names it).
pub fn overrides_for<'p>(
    provider: Option<&'p ProviderEntry>,
    model: Option<&str>,
) -> Option<&'p tollgate_core::provider::ModelPricing> {
    let (p, model) = (provider?, model?);
    p.spec.provider_models.iter().find(|pm| pm.name == model).and_then(|pm| pm.custom_pricing.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use tollgate_core::ProviderType;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn reloads_on_change_and_keeps_the_last_good_catalog_on_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("overlay.json");
        write(
            &path,
            r#"{"version": "o1", "effective_date": "2026-12-01", "models": [
                {"provider_type": "openai_compatible", "name": "llama", "pricing": {"input_per_million": 5}}]}"#,
        );
        let metrics = Arc::new(Metrics::default());
        let h = CatalogHandle::load(Some(path.clone()), metrics.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(h.current().version().ends_with("+o1"));
        assert!(!h.refresh(), "unchanged file: no reload");

        write(
            &path,
            r#"{"version": "o2", "effective_date": "2026-12-02", "models": [
                {"provider_type": "openai_compatible", "name": "llama", "pricing": {"input_per_million": 7}}]}"#,
        );
        assert!(h.refresh());
        let c = h.current();
        assert!(c.version().ends_with("+o2"));
        let rate = c.get(ProviderType::OpenaiCompatible, "llama").and_then(|m| m.pricing.input_per_million);
        assert_eq!(rate, Some(7));
        assert_eq!(metrics.catalog_overlay_reloads.load(Relaxed), 1);

        // A file read while it is rewritten in place (truncated, then half written) fails once
        // each time; the next poll reads it whole: nothing is reported.
        write(&path, "");
        assert!(!h.refresh());
        write(&path, r#"{"version": "o3", "effective_date": "2026-12-03", "mod"#);
        assert!(!h.refresh());
        assert_eq!(h.status().error, None, "a torn read is not reported");
        write(
            &path,
            r#"{"version": "o3", "effective_date": "2026-12-03", "models": [
                {"provider_type": "openai_compatible", "name": "llama", "pricing": {"input_per_million": 8}}]}"#,
        );
        assert!(h.refresh());
        assert!(h.current().version().ends_with("+o3"));
        assert_eq!(metrics.catalog_overlay_errors.load(Relaxed), 0);

        write(&path, r#"{"version": "o4", "models": [{"provider_type": "openai", "name": "x"}]}"#);
        assert!(!h.refresh());
        assert_eq!(h.status().error, None, "reported when the next poll sees it again");
        assert!(!h.refresh());
        assert!(h.current().version().ends_with("+o3"), "a bad edit keeps the last good catalog");
        let st = h.status();
        assert_eq!(st.version.as_deref(), Some("o3"));
        assert!(st.error.as_deref().is_some_and(|e| e.contains("models[0].effective_date")), "{st:?}");
        assert_eq!(metrics.catalog_overlay_errors.load(Relaxed), 1);
        assert!(!h.refresh(), "the same bad bytes are reported once");
        assert_eq!(metrics.catalog_overlay_errors.load(Relaxed), 1);

        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!h.refresh());
        assert!(!h.refresh());
        assert!(h.status().error.as_deref().is_some_and(|e| e.contains("overlay.json")), "{:?}", h.status());
        assert_eq!(metrics.catalog_overlay_errors.load(Relaxed), 2);
        assert!(h.current().version().ends_with("+o3"));
    }

    #[test]
    fn a_bad_overlay_at_startup_is_fatal() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("overlay.json");
        write(&path, "{");
        let err = CatalogHandle::load(Some(path), Arc::new(Metrics::default()));
        assert!(matches!(err, Err(ServerError::Settings(m)) if m.contains("--catalog-overlay")));
        let missing = CatalogHandle::load(Some(dir.path().join("nope.json")), Arc::new(Metrics::default()));
        assert!(missing.is_err());
    }

    #[test]
    fn without_an_overlay_the_embedded_catalog_is_used() {
        let h = CatalogHandle::load(None, Arc::new(Metrics::default())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.current().overlay_version(), None);
        assert!(!h.refresh());
        assert_eq!(h.status().path, None);
    }
}
