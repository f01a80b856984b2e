//! Provider CRUD through the real server: every type, filters, pagination, PATCH, disable,
//! delete, every validation rule of the reference page, immutability and save-time secret checks.

use crate::both_backends;
use crate::support::*;

both_backends!(
    crud_every_type,
    list_filters_and_pagination,
    invalid_payloads_name_the_field,
    name_and_type_are_immutable,
    secret_refs_resolve_at_save,
    patch_semantics,
    unknown_models_are_saved_with_warnings,
    dry_runs_check_everything_and_write_nothing
);

const TYPES: [&str; 6] = ["openai", "anthropic", "google", "bedrock", "openai_compatible", "azure_openai"];

async fn crud_every_type(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    for (i, kind) in TYPES.iter().enumerate() {
        let name = format!("p{i}-{}", kind.replace('_', "-"));
        let mut created =
            expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body(kind, &name))).await, 201);
        // the write answer adds `warnings` (the models of this body are all priced or none)
        let warnings = created.as_object_mut().and_then(|o| o.remove("warnings"));
        assert!(warnings.as_ref().is_some_and(Value::is_array), "{created}");
        assert_eq!(created["name"], name.as_str());
        assert_eq!(created["type"], *kind);
        assert_eq!(created["enabled"], true, "enabled defaults to true");
        assert_eq!(created["transcripts"], json!({"record_input_messages": false, "record_output_messages": false}));
        assert_eq!(created["url"], format!("{}/llm/v1/providers/{name}", gw.base_url));
        assert!(created["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{created}");
        assert_eq!(created["created_at"], created["updated_at"]);
        let config_keys: Vec<&String> =
            created.as_object().map(|o| o.keys().filter(|k| k.ends_with("_config")).collect()).unwrap_or_default();
        assert_eq!(config_keys.len(), 1, "exactly one config object: {created}");
        let got = expect(admin(&gw, Method::GET, &format!("/api/v1/llm-providers/{name}"), None).await, 200);
        assert_eq!(got, created, "get returns what create answered");
    }
    let list = expect(admin(&gw, Method::GET, "/api/v1/llm-providers", None).await, 200);
    let names: Vec<&str> = list["llm_providers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["p0-openai", "p1-anthropic", "p2-google", "p3-bedrock", "p4-openai-compatible", "p5-azure-openai"]
    );
    assert!(list.get("next_page_token").is_none());

    // disable, then delete
    let disabled = expect(
        admin(&gw, Method::PATCH, "/api/v1/llm-providers/p1-anthropic", Some(json!({"enabled": false}))).await,
        200,
    );
    assert_eq!(disabled["enabled"], false);
    assert_ne!(disabled["updated_at"], disabled["created_at"]);
    expect(admin(&gw, Method::DELETE, "/api/v1/llm-providers/p1-anthropic", None).await, 204);
    let gone = expect(admin(&gw, Method::GET, "/api/v1/llm-providers/p1-anthropic", None).await, 404);
    assert_eq!(gone["error"]["code"], "not_found");
    expect(admin(&gw, Method::DELETE, "/api/v1/llm-providers/p1-anthropic", None).await, 404);
    // a name can be reused after delete; a live duplicate is a conflict
    let dup = expect(
        admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "p0-openai"))).await,
        409,
    );
    assert_eq!(dup["error"]["code"], "already_exists");
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "p1-anthropic"))).await, 201);
}

async fn list_filters_and_pagination(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    for i in 0..11 {
        let kind = TYPES[i % 5];
        let mut body = provider_body(kind, &format!("prov-{i:02}"));
        body["display_name"] = json!(if i == 4 { "Search 100%_Team".to_string() } else { format!("Provider {i}") });
        body["enabled"] = json!(i % 3 != 0);
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    }
    let names = |v: &Value| -> Vec<String> {
        v["llm_providers"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let by_type = expect(admin(&gw, Method::GET, "/api/v1/llm-providers?type=bedrock", None).await, 200);
    assert_eq!(names(&by_type), ["prov-03", "prov-08"]);
    let disabled = expect(admin(&gw, Method::GET, "/api/v1/llm-providers?enabled=false", None).await, 200);
    assert_eq!(names(&disabled), ["prov-00", "prov-03", "prov-06", "prov-09"]);
    let both = expect(admin(&gw, Method::GET, "/api/v1/llm-providers?enabled=true&type=openai", None).await, 200);
    assert_eq!(names(&both), ["prov-05", "prov-10"]);
    let contains = expect(admin(&gw, Method::GET, "/api/v1/llm-providers?name_contains=0", None).await, 200);
    assert_eq!(names(&contains).len(), 11, "every name has a 0");
    let by_display =
        expect(admin(&gw, Method::GET, "/api/v1/llm-providers?name_contains=SEARCH%20100%25_", None).await, 200);
    assert_eq!(names(&by_display), ["prov-04"], "display name, case-insensitive, % and _ literal");
    let wildcard = expect(admin(&gw, Method::GET, "/api/v1/llm-providers?name_contains=%25", None).await, 200);
    assert_eq!(names(&wildcard), ["prov-04"], "% is not a wildcard");

    // pages of 4: 4 + 4 + 3, no gaps, no duplicates, token absent on the last page
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/llm-providers?page_size=4&page_token={t}"),
            None => "/api/v1/llm-providers?page_size=4".to_string(),
        };
        let page = expect(admin(&gw, Method::GET, &path, None).await, 200);
        pages += 1;
        seen.extend(names(&page));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..11).map(|i| format!("prov-{i:02}")).collect();
    assert_eq!(seen, want);
    // filtered pagination
    let p1 = expect(admin(&gw, Method::GET, "/api/v1/llm-providers?enabled=false&page_size=3", None).await, 200);
    assert_eq!(names(&p1), ["prov-00", "prov-03", "prov-06"]);
    let t = p1["next_page_token"].as_str().unwrap_or_default().to_string();
    let p2 = expect(
        admin(&gw, Method::GET, &format!("/api/v1/llm-providers?enabled=false&page_size=3&page_token={t}"), None).await,
        200,
    );
    assert_eq!(names(&p2), ["prov-09"]);
    assert!(p2.get("next_page_token").is_none());

    expect_shape_field(admin(&gw, Method::GET, "/api/v1/llm-providers?type=azure", None).await, "type");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/llm-providers?enabled=maybe", None).await, "enabled");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/llm-providers?type=", None).await, "type");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/llm-providers?page_size=-1", None).await, "page_size");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/llm-providers?page_size=ten", None).await, "page_size");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/llm-providers?page_token=garbage!", None).await, "page_token");
}

async fn invalid_payloads_name_the_field(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    let with = |kind: &str, patch: Value| {
        let mut b = provider_body(kind, "bad");
        tollgate_core::patch::merge_patch(&mut b, &patch);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        // identity
        (with("openai", json!({"name": null})), "name"),
        (with("openai", json!({"name": "Bad"})), "name"),
        (with("openai", json!({"name": "9bad"})), "name"),
        (with("openai", json!({"name": "bad-"})), "name"),
        (with("openai", json!({"name": "bad_name"})), "name"),
        (with("openai", json!({"name": "b".repeat(64)})), "name"),
        (with("openai", json!({"display_name": null})), "display_name"),
        (with("openai", json!({"display_name": "d".repeat(254)})), "display_name"),
        (with("openai", json!({"type": null})), "type"),
        (with("openai", json!({"type": "azure"})), "type"),
        (with("openai", json!({"colour": "blue"})), "colour"),
        // exactly one config matching type
        (with("openai", json!({"openai_config": null})), "openai_config"),
        (with("openai", json!({"anthropic_config": {"api_key_ref": "ANTHROPIC_API_KEY"}})), "anthropic_config"),
        (with("openai", json!({"type": "google"})), "openai_config"),
        // required fields per type
        (with("openai", json!({"openai_config": {"api_key_ref": null}})), "openai_config.api_key_ref"),
        (with("openai", json!({"openai_config": {"api_key_ref": "openai_api_key"}})), "openai_config.api_key_ref"),
        (with("openai", json!({"openai_config": {"base_url": "openai.com"}})), "openai_config.base_url"),
        (with("google", json!({"google_config": {"api_key_ref": null}})), "google_config.api_key_ref"),
        (with("anthropic", json!({"anthropic_config": {"api_key_ref": null}})), "anthropic_config.api_key_ref"),
        (
            with("anthropic", json!({"anthropic_config": {"authorization_passthrough": true}})),
            "anthropic_config.api_key_ref",
        ),
        (
            with("openai_compatible", json!({"openai_compatible_config": {"base_url": null}})),
            "openai_compatible_config.base_url",
        ),
        (
            with("openai_compatible", json!({"openai_compatible_config": {"api_key_ref": "Bad-Ref"}})),
            "openai_compatible_config.api_key_ref",
        ),
        (with("bedrock", json!({"bedrock_config": {"region": null}})), "bedrock_config.region"),
        (with("bedrock", json!({"bedrock_config": {"region": "moon-base-1a"}})), "bedrock_config.region"),
        (
            with("bedrock", json!({"bedrock_config": {"static_credentials": {"secret_access_key_ref": null}}})),
            "bedrock_config.static_credentials.secret_access_key_ref",
        ),
        (
            with(
                "bedrock",
                json!({"bedrock_config": {"assume_role": {"role_arn": "arn:aws:iam::123456789012:role/r"}}}),
            ),
            "bedrock_config.assume_role",
        ),
        (
            with(
                "bedrock",
                json!({"bedrock_config": {"static_credentials": null, "assume_role": {"external_id": "x1"}}}),
            ),
            "bedrock_config.assume_role.role_arn",
        ),
        (
            with(
                "bedrock",
                json!({"bedrock_config": {"static_credentials": null, "assume_role": {"role_arn": "role/x"}}}),
            ),
            "bedrock_config.assume_role.role_arn",
        ),
        // models and pricing
        (with("openai", json!({"provider_models": [{"name": ""}]})), "provider_models[0].name"),
        (with("openai", json!({"provider_models": [{"name": "a"}, {"name": "a"}]})), "provider_models[1].name"),
        (
            with("openai", json!({"provider_models": [{"name": "a", "custom_pricing": {"output_per_million": -5}}]})),
            "provider_models[0].custom_pricing.output_per_million",
        ),
        (
            with("openai", json!({"provider_models": [{"name": "a", "custom_pricing": {"input_per_million": 0.5}}]})),
            "provider_models[0].custom_pricing.input_per_million",
        ),
        (with("openai", json!({"tags": {"has space": "x"}})), "tags.has space"),
        (with("openai", json!({"transcripts": {"record_input_messages": "yes"}})), "transcripts.record_input_messages"),
        // secret references must resolve at save time, for every type's fields
        (with("openai", json!({"openai_config": {"api_key_ref": "MISSING_KEY"}})), "openai_config.api_key_ref"),
        (with("google", json!({"google_config": {"api_key_ref": "MISSING_KEY"}})), "google_config.api_key_ref"),
        (
            with("anthropic", json!({"anthropic_config": {"api_key_ref": "MISSING_KEY"}})),
            "anthropic_config.api_key_ref",
        ),
        (
            with("openai_compatible", json!({"openai_compatible_config": {"api_key_ref": "MISSING_KEY"}})),
            "openai_compatible_config.api_key_ref",
        ),
        (
            with("bedrock", json!({"bedrock_config": {"static_credentials": {"access_key_id_ref": "MISSING_KEY"}}})),
            "bedrock_config.static_credentials.access_key_id_ref",
        ),
        (
            with(
                "bedrock",
                json!({"bedrock_config": {"static_credentials": {"secret_access_key_ref": "MISSING_KEY"}}}),
            ),
            "bedrock_config.static_credentials.secret_access_key_ref",
        ),
    ];
    // 400: the body's shape (an unknown field, a wrong JSON type, a value outside an enum);
    // 422: a rule on a value (STYLE.md, Errors)
    let shape = ["colour", "transcripts.record_input_messages", "provider_models[0].custom_pricing.input_per_million"];
    for (body, field) in cases {
        let got = admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body.clone())).await;
        let want = if shape.contains(&field) || body["type"] == "azure" { 400 } else { 422 };
        assert_eq!(got.0, want, "body {body} → {}", got.1);
        assert_eq!(got.1["error"]["field"], field, "body {body} → {}", got.1);
        assert!(got.1["error"]["message"].as_str().is_some_and(|m| m.starts_with(field)), "{}", got.1);
        if field.ends_with("_ref") && body.to_string().contains("MISSING_KEY") {
            assert!(
                got.1["error"]["message"].as_str().is_some_and(|m| m.contains("secret \"MISSING_KEY\" not found")),
                "{}",
                got.1
            );
        }
    }
    // not JSON, not an object
    let raw = gw.client.post(gw.url("/api/v1/llm-providers")).bearer_auth(&gw.admin_token).body("{nope").send().await;
    let raw = raw.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(raw, 400);
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(json!([1, 2]))).await, 400);
    // nothing was written by any rejected request
    let list = expect(admin(&gw, Method::GET, "/api/v1/llm-providers", None).await, 200);
    assert_eq!(list["llm_providers"], json!([]));
}

async fn name_and_type_are_immutable(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    let before =
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "fixed"))).await, 201);
    expect_field(
        admin(&gw, Method::PATCH, "/api/v1/llm-providers/fixed", Some(json!({"name": "renamed", "display_name": "X"})))
            .await,
        "name",
    );
    expect_field(
        admin(
            &gw,
            Method::PATCH,
            "/api/v1/llm-providers/fixed",
            Some(json!({"type": "anthropic", "anthropic_config": {"api_key_ref": "ANTHROPIC_API_KEY"}})),
        )
        .await,
        "type",
    );
    // sending the same name and type back (a fetched manifest) is fine
    let same = expect(
        admin(&gw, Method::PATCH, "/api/v1/llm-providers/fixed", Some(json!({"name": "fixed", "type": "openai"})))
            .await,
        200,
    );
    assert_eq!(same["display_name"], before["display_name"]);
    let after = expect(admin(&gw, Method::GET, "/api/v1/llm-providers/fixed", None).await, 200);
    assert_eq!(after["name"], "fixed");
    assert_eq!(after["type"], "openai");
    assert_eq!(after["display_name"], before["display_name"], "a refused PATCH changes nothing");
    expect(admin(&gw, Method::GET, "/api/v1/llm-providers/renamed", None).await, 404);
}

async fn secret_refs_resolve_at_save(db: TestDb) {
    let gw = gateway(db).await;
    let body = provider_body("anthropic", "claude");
    let err = expect_field(
        admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body.clone())).await,
        "anthropic_config.api_key_ref",
    );
    assert_eq!(err["error"]["message"], "anthropic_config.api_key_ref: secret \"ANTHROPIC_API_KEY\" not found");
    secret(&gw, "ANTHROPIC_API_KEY", "sk-ant-LEAKCHECK-52b8d0aa").await;
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    // a PATCH to a missing secret is refused too, and changes nothing
    expect_field(
        admin(
            &gw,
            Method::PATCH,
            "/api/v1/llm-providers/claude",
            Some(json!({"anthropic_config": {"api_key_ref": "OTHER_KEY"}})),
        )
        .await,
        "anthropic_config.api_key_ref",
    );
    // the secret cannot be deleted while referenced
    let conflict = expect(admin(&gw, Method::DELETE, "/api/v1/secrets/ANTHROPIC_API_KEY", None).await, 409);
    assert_eq!(conflict["error"]["code"], "conflict");
    assert!(conflict["error"]["message"].as_str().is_some_and(|m| m.contains("claude")), "{conflict}");
    expect(admin(&gw, Method::GET, "/api/v1/secrets/ANTHROPIC_API_KEY", None).await, 200);
    // passthrough needs no key: switch, then the secret is free
    let p = expect(
        admin(
            &gw,
            Method::PATCH,
            "/api/v1/llm-providers/claude",
            Some(json!({"anthropic_config": {"api_key_ref": null, "authorization_passthrough": true}})),
        )
        .await,
        200,
    );
    assert_eq!(p["anthropic_config"]["authorization_passthrough"], true);
    expect(admin(&gw, Method::DELETE, "/api/v1/secrets/ANTHROPIC_API_KEY", None).await, 204);
    expect(admin(&gw, Method::GET, "/api/v1/secrets/ANTHROPIC_API_KEY", None).await, 404);
}

async fn patch_semantics(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    let mut body = provider_body("bedrock", "aws");
    body["provider_models"] = json!([{"name": "us.anthropic.claude-sonnet-4-6", "custom_pricing": {"input_per_million": 330000000, "cache_creation_1h_per_million": 0}}]);
    body["tags"] = json!({"team": "search"});
    let created = expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    assert_eq!(
        created["provider_models"][0]["custom_pricing"],
        json!({"input_per_million": 330000000, "cache_creation_1h_per_million": 0}),
        "absent buckets stay absent, 0 stays 0"
    );
    // switch credential mode: static keys → assume role (null removes the old object)
    let p = expect(
        admin(
            &gw,
            Method::PATCH,
            "/api/v1/llm-providers/aws",
            Some(json!({"bedrock_config": {"static_credentials": null,
        "assume_role": {"role_arn": "arn:aws:iam::123456789012:role/bedrock", "session_name": "tollgate-test"}}})),
        )
        .await,
        200,
    );
    assert!(p["bedrock_config"].get("static_credentials").is_none(), "{p}");
    assert_eq!(p["bedrock_config"]["region"], "us-east-1", "untouched fields are kept");
    assert_eq!(p["bedrock_config"]["assume_role"]["session_name"], "tollgate-test");
    assert_eq!(p["tags"], json!({"team": "search"}));
    assert_eq!(p["created_at"], created["created_at"]);
    // the static key secrets are no longer referenced
    expect(admin(&gw, Method::DELETE, "/api/v1/secrets/AWS_ACCESS_KEY_ID", None).await, 204);
    // transcripts, tags, models
    let p = expect(
        admin(
            &gw,
            Method::PATCH,
            "/api/v1/llm-providers/aws",
            Some(json!({"transcripts": {"record_input_messages": true},
        "tags": {"team": null, "env": "prod"}, "provider_models": []})),
        )
        .await,
        200,
    );
    assert_eq!(p["transcripts"], json!({"record_input_messages": true, "record_output_messages": false}));
    assert_eq!(p["tags"], json!({"env": "prod"}));
    assert_eq!(p["provider_models"], json!([]));
    let again = expect(admin(&gw, Method::GET, "/api/v1/llm-providers/aws", None).await, 200);
    let mut p = p;
    let warnings = p.as_object_mut().and_then(|o| o.remove("warnings"));
    assert_eq!(warnings, Some(json!([])), "the PATCH answer adds its warnings");
    assert_eq!(again, p, "PATCH answer equals what is stored");
    // a write answer, its `warnings` included, can be sent back as is
    let answer = expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/aws", Some(json!({}))).await, 200);
    assert!(answer.get("warnings").is_some(), "{answer}");
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/aws", Some(answer)).await, 200);
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/nope", Some(json!({"enabled": false}))).await, 404);
    // A body over the admin API's limit: 413 in the API's JSON error shape. 16 MiB is more than
    // loopback's socket buffers hold: unless the gateway drains the body before answering, the
    // client is still writing when the connection closes and sees a reset instead of the 413.
    let huge = json!({"name": "big", "display_name": "x".repeat(16 * 1024 * 1024), "type": "openai"});
    let (status, body) = admin(&gw, Method::POST, "/api/v1/llm-providers", Some(huge)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    // A name outside its pattern is a bad argument, not a missing provider.
    for (method, path) in [
        (Method::GET, "/api/v1/llm-providers/BAD_NAME"),
        (Method::PATCH, "/api/v1/llm-providers/BAD_NAME"),
        (Method::DELETE, "/api/v1/llm-providers/BAD_NAME"),
        (Method::POST, "/api/v1/llm-providers/BAD_NAME/check"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"enabled": false}));
        expect_shape_field(admin(&gw, method, path, body).await, "name");
    }
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/aws", Some(json!("string"))).await, 400);
}

async fn unknown_models_are_saved_with_warnings(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    let mut body = provider_body("openai", "warned");
    body["provider_models"] = json!([{"name": "gpt-4o"}, {"name": "gpt-4o-mini"}, {"name": "x"},
        {"name": "y", "custom_pricing": {"input_per_million": 100, "output_per_million": 200}}]);
    let created = expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    assert_eq!(
        created["warnings"],
        json!([{"field": "provider_models[2].name",
                "message": "model \"x\" is not in the catalog for type openai: it will be unpriced unless custom_pricing is set"}])
    );
    assert_eq!(created["provider_models"][2]["name"], "x", "a warning never refuses the save");
    let updated = expect(
        admin(
            &gw,
            Method::PATCH,
            "/api/v1/llm-providers/warned",
            Some(json!({"provider_models": [{"name": "gpt-4o"}]})),
        )
        .await,
        200,
    );
    assert_eq!(updated["warnings"], json!([]));
    // Bedrock: the bare id of a profile-only model is refused by the proxy; the save says so
    let mut body = provider_body("bedrock", "warned-bedrock");
    body["provider_models"] =
        json!([{"name": "anthropic.claude-sonnet-4-6"}, {"name": "us.anthropic.claude-sonnet-4-6"}]);
    let created = expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let w = created["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(w.len(), 1, "{created}");
    assert_eq!(w[0]["field"], "provider_models[0].name");
    assert!(w[0]["message"].as_str().is_some_and(|m| m.contains("us.anthropic.claude-sonnet-4-6")), "{w:?}");
}

/// `?dry_run=true` runs every check of a create or update, the store's in-transaction ones
/// included (a name taken, a secret bound to another host), answers what the write would,
/// and writes nothing: no provider, no binding, no change.
async fn dry_runs_check_everything_and_write_nothing(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    let body = provider_body("openai", "rehearsed");
    let (status, got) = admin(&gw, Method::POST, "/api/v1/llm-providers?dry_run=true", Some(body.clone())).await;
    assert_eq!((status, got["name"].as_str()), (200, Some("rehearsed")), "{got}");
    assert_eq!(got["warnings"], json!([]), "{got}");
    expect(admin(&gw, Method::GET, "/api/v1/llm-providers/rehearsed", None).await, 404);
    assert_eq!(openai_key_hosts(&gw).await, json!([]), "a rehearsal binds no secret");
    // the rehearsal runs the same checks as the write: the address policy refuses here too
    let mut meta = provider_body("openai", "meta");
    meta["openai_config"]["base_url"] = json!("http://169.254.169.254/v1");
    expect_field(
        admin(&gw, Method::POST, "/api/v1/llm-providers?dry_run=true", Some(meta)).await,
        "openai_config.base_url",
    );

    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body.clone())).await, 201);
    assert_eq!(openai_key_hosts(&gw).await, json!(["api.openai.com"]));
    // the store's own check, inside the rolled-back transaction: the name is taken
    let (status, got) = admin(&gw, Method::POST, "/api/v1/llm-providers?dry_run=true", Some(body)).await;
    assert_eq!((status, got["error"]["code"].as_str()), (409, Some("already_exists")), "{got}");

    let patch = json!({"display_name": "Renamed"});
    let got = expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/rehearsed?dry_run=true", Some(patch)).await, 200);
    assert_eq!(got["display_name"], "Renamed", "the answer is what the write would store");
    let stored = expect(admin(&gw, Method::GET, "/api/v1/llm-providers/rehearsed", None).await, 200);
    assert_eq!(stored["display_name"], "Test rehearsed", "nothing was written");
    // a writer may not send the key to another host: the binding check runs in the rehearsal
    let writer = gw.token("writer").await.unwrap_or_else(|e| panic!("{e:#}"));
    let elsewhere = json!({"openai_config": {"base_url": "https://elsewhere.example/v1"}});
    let path = "/api/v1/llm-providers/rehearsed?dry_run=true";
    expect_field(
        call(&gw, Method::PATCH, path, Some(&writer), Some(elsewhere.clone())).await,
        "openai_config.api_key_ref",
    );
    // an admin's rehearsal would add the host; it adds nothing
    expect(admin(&gw, Method::PATCH, path, Some(elsewhere)).await, 200);
    assert_eq!(openai_key_hosts(&gw).await, json!(["api.openai.com"]));

    // an operation without a dry run refuses the parameter instead of doing the real write
    let (status, got) = admin(&gw, Method::DELETE, "/api/v1/llm-providers/rehearsed?dry_run=true", None).await;
    assert_eq!((status, got["error"]["field"].as_str()), (400, Some("dry_run")), "{got}");
    expect(admin(&gw, Method::GET, "/api/v1/llm-providers/rehearsed", None).await, 200);
    // budgets and rate limits: the same switch
    let budget = json!({"name": "b", "limit_microcents": 100});
    expect(admin(&gw, Method::POST, "/api/v1/budgets?dry_run=true", Some(budget)).await, 200);
    expect(admin(&gw, Method::GET, "/api/v1/budgets/b", None).await, 404);
    let rl = json!({"name": "r", "requests_per_minute": 5});
    expect(admin(&gw, Method::POST, "/api/v1/rate-limits?dry_run=true", Some(rl)).await, 200);
    expect(admin(&gw, Method::GET, "/api/v1/rate-limits/r", None).await, 404);
    expect_shape_field(
        admin(
            &gw,
            Method::POST,
            "/api/v1/rate-limits?dry_run=maybe",
            Some(json!({"name": "r", "requests_per_minute": 5})),
        )
        .await,
        "dry_run",
    );
}

async fn openai_key_hosts(gw: &TestGateway) -> Value {
    expect(admin(gw, Method::GET, "/api/v1/secrets/OPENAI_API_KEY", None).await, 200)["bound_hosts"].clone()
}
