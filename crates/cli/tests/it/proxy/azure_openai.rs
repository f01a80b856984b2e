//! Azure OpenAI end to end through the real gateway and the testkit's fake Azure resource:
//! deployment and `/openai/v1/` paths, the `api-key` credential swap, the model the response
//! names pricing the call (else the deployment name), native errors, Test Connection, and the
//! official `openai` Python SDK's `AzureOpenAI` client with a key and with passthrough.

use super::*;
use crate::both_backends;
use tollgate_core::RequestStatus;
use tollgate_core::pricing::{PriceInput, price};
use tollgate_testkit::upstream::openai as fake_openai;

const CHAT: &str = "/openai/deployments/chat/chat/completions?api-version=2024-10-21";

fn models(names: &[&str]) -> Value {
    json!({"provider_models": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()})
}

/// The cost the OpenAI catalog gives `model` for `usage` (Azure models are priced as OpenAI's).
fn openai_cost(model: &str, usage: &tollgate_core::Usage) -> tollgate_core::Cost {
    let catalog = tollgate_core::Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
    let p = price(
        &PriceInput { provider_type: ProviderType::Openai, model: Some(model), usage, overrides: None },
        &catalog,
    );
    assert!(!p.unpriced, "{model} is in the OpenAI catalog");
    p.cost
}

async fn deployment_and_v1_paths_metered_by_the_response_model(db: TestDb) {
    let rig = Rig::new(db, "azure_openai", models(&["chat", "mini", "tuned"])).await;
    // non-streamed, deployment path
    let r = rig.post(CHAT, &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model"], "gpt-4o-2024-08-06");
    let got = rig.up.requests();
    assert_eq!(got[0].path, "/openai/deployments/chat/chat/completions");
    assert_eq!(got[0].query.as_deref(), Some("api-version=2024-10-21"));
    assert_credential_swapped("azure_openai", &got[0], &rig.token);
    // streamed, deployment path: include_usage injected, the usage-only chunk removed
    let r = rig
        .post(CHAT, &json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.ends_with("data: [DONE]\n\n") && !text.contains("\"prompt_tokens\""), "{text}");
    let sent = rig.up.requests()[1].json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    // v1 path: the body names the deployment
    let v1 = "/openai/v1/chat/completions";
    let r = rig.post(v1, &json!({"model": "mini", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!((r.status, r.json()["model"].as_str()), (200, Some("gpt-4o-mini-2024-07-18")), "{}", r.text());
    // a deployment whose model the catalog does not know keeps its own name (and is unpriced)
    let tuned = "/openai/deployments/tuned/chat/completions?api-version=2024-10-21";
    let r = rig.post(tuned, &json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let events = usage_events(&rig.gw, 4).await;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let chat_usage = tollgate_core::Usage {
        input: n(fake_openai::CHAT_PROMPT_TOKENS - fake_openai::CHAT_CACHED_TOKENS),
        cached_input: n(fake_openai::CHAT_CACHED_TOKENS),
        output: n(fake_openai::CHAT_COMPLETION_TOKENS - fake_openai::CHAT_REASONING_TOKENS),
        reasoning: n(fake_openai::CHAT_REASONING_TOKENS),
        ..tollgate_core::Usage::default()
    };
    let expected = [
        ("gpt-4o-2024-08-06", false, "/openai/deployments/chat/chat/completions"),
        ("gpt-4o-2024-08-06", true, "/openai/deployments/chat/chat/completions"),
        ("gpt-4o-mini-2024-07-18", false, "/openai/v1/chat/completions"),
    ];
    for (e, (model, streamed, endpoint)) in events.iter().zip(expected) {
        assert_eq!(e.provider_type, ProviderType::AzureOpenai);
        assert_eq!((e.model.as_deref(), e.streamed, e.endpoint.as_str()), (Some(model), streamed, endpoint), "{e:?}");
        assert_eq!((e.status, e.http_status), (RequestStatus::Success, Some(200)), "{e:?}");
        assert_eq!(e.usage, chat_usage, "{e:?}");
        assert_eq!(e.cost, openai_cost(model, &chat_usage), "{model}: priced as the OpenAI model");
        assert!(!e.unpriced && !e.priced_by_override, "{e:?}");
        assert!(e.cost.total > 0);
    }
    let t = &events[3];
    assert_eq!((t.model.as_deref(), t.unpriced, t.cost.total), (Some("tuned"), true, 0), "{t:?}");
}

async fn native_errors_and_test_connection(db: TestDb) {
    let rig = Rig::new(db, "azure_openai", models(&["chat", "gone"])).await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    // the deployment is the model the allow-list checks: OpenAI's unknown-model answer
    let other = "/openai/deployments/other/chat/completions?api-version=2024-10-21";
    let r = rig.post(other, &body).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["type"].as_str()),
        (Some("model_not_found"), Some("invalid_request_error"))
    );
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.starts_with("model_not_allowed: ")), "{v}");
    // no token: the one 401 every provider answers (OpenAI's `error.type` among its fields);
    // it names the api-key header, where the Azure SDK puts the key
    let r = send(rig.gw.client.post(rig.url(CHAT)).json(&body)).await;
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (401, Some("authentication_error")), "{}", r.text());
    assert!(r.text().contains("`api-key`"), "{}", r.text());
    assert!(rig.up.requests().is_empty(), "refusals never reach the upstream");
    // Azure's own errors pass through unchanged (and are metered)
    let gone = "/openai/deployments/gone/chat/completions?api-version=2024-10-21";
    let r = rig.post(gone, &body).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (404, Some("DeploymentNotFound")), "{}", r.text());
    let events = usage_events(&rig.gw, 1).await;
    assert_eq!((events[0].model.as_deref(), events[0].http_status), (Some("gone"), Some(404)));

    // Test Connection: the v1 models list with the stored key, unmetered
    let check =
        expect(admin(&rig.gw, Method::POST, &format!("/api/v1/llm-providers/{}/check", rig.name), None).await, 200);
    assert_eq!(
        (check["ok"].as_bool(), check["probe"].as_str()),
        (Some(true), Some("GET /openai/v1/models")),
        "{check}"
    );
    let probe = rig.up.requests().last().cloned().unwrap_or_else(|| panic!("no probe"));
    assert_eq!(probe.header("api-key"), Some(UPSTREAM_KEY));
    let check = expect(
        admin(
            &rig.gw,
            Method::POST,
            &format!("/api/v1/llm-providers/{}/check", rig.name),
            Some(json!({"model": "gpt-4o-2024-08-06"})),
        )
        .await,
        200,
    );
    assert_eq!(check["model_found"], true, "{check}");
}

both_backends!(deployment_and_v1_paths_metered_by_the_response_model, native_errors_and_test_connection);

/// The official `openai` Python SDK's `AzureOpenAI` client, as users write it, streaming and
/// not; with a stored key (`api_key` = the gateway token) and with passthrough (the client's
/// own Entra ID token goes upstream, the gateway token in `X-Tollgate-Token`).
const SDK_SCRIPT: &str = r#"
import os, sys
from openai import AzureOpenAI
endpoint, mode = sys.argv[1], sys.argv[2]
token = os.environ["TOLLGATE_API_KEY"]
if mode == "key":
    client = AzureOpenAI(azure_endpoint=endpoint, api_key=token, api_version="2024-10-21")
else:
    client = AzureOpenAI(azure_endpoint=endpoint, azure_ad_token=os.environ["AZURE_OPENAI_AD_TOKEN"],
                         api_version="2024-10-21", default_headers={"X-Tollgate-Token": token})
r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
print("MODEL", r.model, r.usage.prompt_tokens, r.usage.completion_tokens)
print("TEXT", r.choices[0].message.content)
parts = []
for chunk in client.chat.completions.create(model="chat", stream=True, messages=[{"role": "user", "content": "hi"}]):
    if chunk.usage is not None:
        print("UNEXPECTED USAGE CHUNK")
    for c in chunk.choices:
        parts.append(c.delta.content or "")
print("STREAM", "".join(parts))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_azure_openai_python_client_key_and_passthrough() {
    let Some(python) = crate::connect_snippets::sdk_python("the AzureOpenAI SDK test") else { return };
    const OWN_ENTRA_TOKEN: &str = "eyJ0eXAiOi-own-entra-LEAKCHECK-8a2f";
    let gw = gateway(TestDb::sqlite().await).await;
    secret(&gw, "AZURE_OPENAI_API_KEY", UPSTREAM_KEY).await;
    let keyed =
        FakeUpstream::start(ProviderType::AzureOpenai, Some(UPSTREAM_KEY)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let own =
        FakeUpstream::start(ProviderType::AzureOpenai, Some(OWN_ENTRA_TOKEN)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let body = provider_at("azure_openai", "az-key", &keyed.provider_base_url(), models(&["chat"]));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let mut body = provider_at(
        "azure_openai",
        "az-pt",
        &own.provider_base_url(),
        json!({"azure_openai_config": {"authorization_passthrough": true, "api_key_ref": null}}),
    );
    merge(&mut body, models(&["chat"]));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let script = dir.path().join("azure.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap_or_else(|e| panic!("{e}"));
    for (name, mode, up) in [("az-key", "key", &keyed), ("az-pt", "passthrough", &own)] {
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .arg(gw.url(&format!("/llm/v1/providers/{name}")))
            .arg(mode)
            .env_clear()
            .env("TOLLGATE_API_KEY", &token)
            .env("AZURE_OPENAI_AD_TOKEN", OWN_ENTRA_TOKEN)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}:\n{stdout}\n{stderr}");
        let prompt = fake_openai::CHAT_PROMPT_TOKENS;
        let completion = fake_openai::CHAT_COMPLETION_TOKENS;
        assert!(stdout.contains(&format!("MODEL gpt-4o-2024-08-06 {prompt} {completion}")), "{mode}: {stdout}");
        assert!(stdout.contains(&format!("TEXT {}", tollgate_testkit::upstream::TEXT)), "{mode}: {stdout}");
        assert!(stdout.contains(&format!("STREAM {}", tollgate_testkit::upstream::TEXT)), "{mode}: {stdout}");
        assert!(!stdout.contains("UNEXPECTED"), "{mode}: the injected usage chunk reached the SDK: {stdout}");
        for r in up.requests() {
            assert_eq!(r.path, "/openai/deployments/chat/chat/completions", "{mode}");
            assert_eq!(r.query.as_deref(), Some("api-version=2024-10-21"), "{mode}");
            let (api_key, auth) = (r.header("api-key"), r.header("authorization"));
            match mode {
                "key" => assert_eq!((api_key, auth), (Some(UPSTREAM_KEY), None), "{mode}"),
                _ => assert_eq!(auth.map(str::to_string), Some(format!("Bearer {OWN_ENTRA_TOKEN}")), "{mode}"),
            }
            for (h, v) in &r.headers {
                assert!(!String::from_utf8_lossy(v.as_bytes()).contains(&token), "{mode}: gateway token leaked in {h}");
            }
        }
    }
    let events = usage_events(&gw, 4).await;
    for e in &events {
        assert_eq!(
            (e.model.as_deref(), e.http_status, e.status),
            (Some("gpt-4o-2024-08-06"), Some(200), RequestStatus::Success),
            "{e:?}"
        );
        assert_eq!(
            u64::try_from(e.usage.input + e.usage.cached_input).ok(),
            Some(fake_openai::CHAT_PROMPT_TOKENS),
            "{e:?}"
        );
        assert!(e.cost.total > 0 && !e.unpriced, "{e:?}");
    }
    assert_eq!(events.iter().filter(|e| e.streamed).count(), 2);
}
