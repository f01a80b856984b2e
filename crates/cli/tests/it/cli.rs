//! The `tollgate` admin client: pure tests of the flag → JSON mapping (no sockets), then
//! end-to-end runs of the real binary against a real gateway ([`TestGateway`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use clap::Parser as _;
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};
use tollgate_cli::args::{Cli, Command as Cmd};
use tollgate_cli::client::ApiError;
use tollgate_cli::output;
use tollgate_cli::provider::{self, ProviderCommand};
use tollgate_cli::secret::strip_one_newline;
use tollgate_cli::token::{self, TokenCommand};
use tollgate_testkit::TestGateway;

// ---------------------------------------------------------------- pure: flags → JSON

fn parse(args: &[&str]) -> Cmd {
    let argv = std::iter::once("tollgate").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.command,
        Err(e) => panic!("{args:?} did not parse: {e}"),
    }
}

fn create(args: &[&str]) -> anyhow::Result<Value> {
    let mut argv = vec!["provider", "create"];
    argv.extend_from_slice(args);
    match parse(&argv) {
        Cmd::Provider(ProviderCommand::Create(a)) => provider::create_body(&a),
        other => panic!("not a create: {other:?}"),
    }
}

fn update(args: &[&str]) -> anyhow::Result<Value> {
    update_over(args, None)
}

/// `update` where the provider's current model list is `current` (what the command fetches
/// before a `--pricing` without `--provider-models`).
fn update_over(args: &[&str], current: Option<Value>) -> anyhow::Result<Value> {
    let mut argv = vec!["provider", "update"];
    argv.extend_from_slice(args);
    let current = current.map(|c| c.as_array().cloned().unwrap());
    match parse(&argv) {
        Cmd::Provider(ProviderCommand::Update(a)) => provider::update_patch(&a, current),
        other => panic!("not an update: {other:?}"),
    }
}

/// Asserts `args` build exactly `want` on create.
fn check_create(args: &[&str], want: Value) {
    let got = create(args).unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
    assert_eq!(got, want, "{args:?}");
}

/// Asserts `args` fail on create with a message containing every `needle`.
fn check_create_err(args: &[&str], needles: &[&str]) {
    let err = format!("{:#}", create(args).expect_err("should fail"));
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{err}` lacks `{n}`");
    }
}

#[test]
fn create_openai_flags() {
    check_create(
        &[
            "p1",
            "--openai-config.api-key-ref",
            "OPENAI_KEY",
            "--openai-config.base-url",
            "https://example.test/v1",
            "--provider-models",
            "gpt-4o",
            "--provider-models",
            "gpt-4o-mini",
            "--tags",
            "team=search",
            "--tags",
            "env=prod",
            "--enabled",
            "false",
            "--transcripts.record-input-messages",
            "true",
            "--transcripts.record-output-messages",
            "false",
        ],
        json!({
            "name": "p1", "display_name": "p1", "type": "openai", "enabled": false,
            "openai_config": {"api_key_ref": "OPENAI_KEY", "base_url": "https://example.test/v1"},
            "provider_models": [{"name": "gpt-4o"}, {"name": "gpt-4o-mini"}],
            "tags": {"team": "search", "env": "prod"},
            "transcripts": {"record_input_messages": true, "record_output_messages": false},
        }),
    );
}

#[test]
fn create_each_type_from_its_config_group() {
    check_create(
        &[
            "a",
            "--display-name",
            "Prod A",
            "--anthropic-config.api-key-ref",
            "K",
            "--anthropic-config.authorization-passthrough",
        ],
        json!({"name": "a", "display_name": "Prod A", "type": "anthropic",
               "anthropic_config": {"api_key_ref": "K", "authorization_passthrough": true}}),
    );
    check_create(
        &["a", "--anthropic-config.base-url", "http://x", "--anthropic-config.authorization-passthrough", "false"],
        json!({"name": "a", "display_name": "a", "type": "anthropic",
               "anthropic_config": {"base_url": "http://x", "authorization_passthrough": false}}),
    );
    check_create(
        &["g", "--google-config.api-key-ref", "G", "--google-config.base-url", "http://g"],
        json!({"name": "g", "display_name": "g", "type": "google",
               "google_config": {"api_key_ref": "G", "base_url": "http://g"}}),
    );
    check_create(
        &[
            "b",
            "--bedrock-config.region",
            "us-east-1",
            "--bedrock-config.base-url",
            "http://b",
            "--bedrock-config.guardrail",
            "gr",
            "--bedrock-config.static-credentials.access-key-id-ref",
            "AK",
            "--bedrock-config.static-credentials.secret-access-key-ref",
            "SK",
        ],
        json!({"name": "b", "display_name": "b", "type": "bedrock",
               "bedrock_config": {"region": "us-east-1", "base_url": "http://b", "guardrail": "gr",
                   "static_credentials": {"access_key_id_ref": "AK", "secret_access_key_ref": "SK"}}}),
    );
    check_create(
        &[
            "b",
            "--bedrock-config.region",
            "eu-west-1",
            "--bedrock-config.assume-role.role-arn",
            "arn:aws:iam::123456789012:role/r",
            "--bedrock-config.assume-role.external-id",
            "ext",
            "--bedrock-config.assume-role.session-name",
            "sess",
        ],
        json!({"name": "b", "display_name": "b", "type": "bedrock",
               "bedrock_config": {"region": "eu-west-1", "assume_role": {
                   "role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "ext", "session_name": "sess"}}}),
    );
    check_create(
        &[
            "c",
            "--openai-compatible-config.base-url",
            "http://localhost:11434/v1",
            "--openai-compatible-config.api-key-ref",
            "C",
            "--openai-compatible-config.authorization-passthrough",
            "true",
        ],
        json!({"name": "c", "display_name": "c", "type": "openai_compatible",
               "openai_compatible_config": {"base_url": "http://localhost:11434/v1", "api_key_ref": "C",
                   "authorization_passthrough": true}}),
    );
    check_create(
        &[
            "az",
            "--azure-openai-config.endpoint",
            "https://res.openai.azure.com",
            "--azure-openai-config.api-key-ref",
            "AZURE_OPENAI_API_KEY",
            "--azure-openai-config.api-version",
            "2024-10-21",
        ],
        json!({"name": "az", "display_name": "az", "type": "azure_openai",
               "azure_openai_config": {"endpoint": "https://res.openai.azure.com",
                   "api_key_ref": "AZURE_OPENAI_API_KEY", "api_version": "2024-10-21"}}),
    );
    check_create(
        &[
            "az",
            "--azure-openai-config.endpoint",
            "https://res.openai.azure.com",
            "--azure-openai-config.authorization-passthrough",
        ],
        json!({"name": "az", "display_name": "az", "type": "azure_openai",
               "azure_openai_config": {"endpoint": "https://res.openai.azure.com", "authorization_passthrough": true}}),
    );
}

#[test]
fn create_type_flag_and_inference_errors() {
    // --type alone: an empty config lets the server name the missing field.
    check_create(
        &["x", "--type", "bedrock"],
        json!({"name": "x", "display_name": "x", "type": "bedrock", "bedrock_config": {}}),
    );
    check_create(
        &["x", "--type", "openai-compatible", "--openai-compatible-config.base-url", "http://l"],
        json!({"name": "x", "display_name": "x", "type": "openai_compatible",
               "openai_compatible_config": {"base_url": "http://l"}}),
    );
    check_create_err(&["x"], &["--type"]);
    check_create_err(
        &["x", "--openai-config.api-key-ref", "A", "--anthropic-config.api-key-ref", "B"],
        &["--openai-config.*", "--anthropic-config.*", "exactly one"],
    );
    check_create_err(
        &["x", "--google-config.api-key-ref", "A", "--bedrock-config.region", "us-east-1"],
        &["config groups"],
    );
    check_create_err(&["x", "--openai-config.api-key-ref", "A", "--tags", "novalue"], &["--tags", "key=value"]);
    let err = Cli::try_parse_from(["tollgate", "provider", "create", "x", "--type", "azure"]).expect_err("bad type");
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn pricing_converts_usd_per_million_to_microcents() {
    let (model, p) =
        provider::parse_pricing("model=m,input=3,output=15,cached=0.075,cache_write_5m=0,cache_write_1h=").unwrap();
    assert_eq!(model, "m");
    assert_eq!(
        Value::Object(p),
        json!({"input_per_million": 300000000, "output_per_million": 1500000000,
               "cached_input_per_million": 7500000, "cache_creation_5m_per_million": 0})
    );
    let (_, p) = provider::parse_pricing("model=m,cache_write_1h=6,cache_write_5m=3.75").unwrap();
    assert_eq!(
        Value::Object(p),
        json!({"cache_creation_1h_per_million": 600000000, "cache_creation_5m_per_million": 375000000})
    );
    for (spec, needles) in [
        ("model=m,input=abc", &["`input`", "abc"][..]),
        ("model=m,output=-1", &["`output`", "negative"][..]),
        ("model=m,cached=0.000000001", &["`cached`"][..]),
        ("model=m,inptu=3", &["unknown key `inptu`"][..]),
        ("input=3", &["model="][..]),
        ("model=m,input", &["not key=value"][..]),
    ] {
        let err = format!("{:#}", provider::parse_pricing(spec).expect_err(spec));
        for n in needles {
            assert!(err.contains(n), "{spec}: `{err}` lacks `{n}`");
        }
    }
    check_create_err(&["x", "--openai-config.api-key-ref", "A", "--pricing", "model=m,input=abc"], &["input", "abc"]);
}

#[test]
fn pricing_attaches_to_listed_models_and_refuses_others() {
    check_create(
        &[
            "x",
            "--openai-config.api-key-ref",
            "A",
            "--provider-models",
            "gpt-4o",
            "--provider-models",
            "gpt-4o-mini",
            "--provider-models",
            "o3",
            "--pricing",
            "model=gpt-4o-mini,input=0.15,output=0.6",
            "--pricing",
            "model=o3,input=2",
        ],
        json!({"name": "x", "display_name": "x", "type": "openai", "openai_config": {"api_key_ref": "A"},
               "provider_models": [
                   {"name": "gpt-4o"},
                   {"name": "gpt-4o-mini", "custom_pricing": {"input_per_million": 15000000, "output_per_million": 60000000}},
                   {"name": "o3", "custom_pricing": {"input_per_million": 200000000}}]}),
    );
    // A priced model missing from --provider-models is an error, not a silent addition to
    // the allow-list; so is pricing with no list at all (the provider would serve one model).
    check_create_err(
        &["x", "--openai-config.api-key-ref", "A", "--provider-models", "gpt-4o", "--pricing", "model=o3,input=2"],
        &["--pricing", "`o3`", "not in --provider-models (gpt-4o)", "--provider-models o3"],
    );
    check_create_err(
        &["x", "--openai-config.api-key-ref", "A", "--pricing", "model=o3,input=2"],
        &["`o3`", "no model list"],
    );
    // A JSON model object is accepted as-is.
    check_create(
        &[
            "x",
            "--openai-config.api-key-ref",
            "A",
            "--provider-models",
            r#"{"name":"m","custom_pricing":{"input_per_million":1}}"#,
        ],
        json!({"name": "x", "display_name": "x", "type": "openai", "openai_config": {"api_key_ref": "A"},
               "provider_models": [{"name": "m", "custom_pricing": {"input_per_million": 1}}]}),
    );
}

#[test]
fn create_from_manifest_with_flag_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        "name: from-file\ndisplay_name: From File\ntype: anthropic\nenabled: true\n\
         anthropic_config:\n  base_url: null\n  api_key_ref: OLD\n  authorization_passthrough: false\n\
         provider_models:\n- name: claude-a\n- name: claude-b\n\
         transcripts:\n  record_input_messages: false\n  record_output_messages: false\n\
         tags:\n  team: x\n\
         url: http://h/llm/v1/providers/from-file\ncreated_at: '2025-01-01T00:00:00Z'\nupdated_at: '2025-01-01T00:00:00Z'\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    check_create(
        &[
            "-f",
            file,
            "--anthropic-config.api-key-ref",
            "NEW",
            "--pricing",
            "model=claude-b,input=3",
            "--tags",
            "env=dev",
        ],
        json!({"name": "from-file", "display_name": "From File", "type": "anthropic", "enabled": true,
               "anthropic_config": {"base_url": null, "api_key_ref": "NEW", "authorization_passthrough": false},
               "provider_models": [{"name": "claude-a"}, {"name": "claude-b", "custom_pricing": {"input_per_million": 300000000}}],
               "transcripts": {"record_input_messages": false, "record_output_messages": false},
               "tags": {"team": "x", "env": "dev"}}),
    );
    // NAME overrides the manifest's name; a second config group next to the manifest's is refused.
    assert_eq!(create(&["renamed", "-f", file]).unwrap()["name"], "renamed");
    check_create_err(&["-f", file, "--openai-config.api-key-ref", "A"], &["openai_config", "anthropic_config"]);
}

#[test]
fn update_patch_holds_only_the_flags_given() {
    assert_eq!(
        update(&["p", "--display-name", "New", "--enabled", "false"]).unwrap(),
        json!({"display_name": "New", "enabled": false})
    );
    assert_eq!(
        update(&["p", "--anthropic-config.api-key-ref", "K2", "--transcripts.record-output-messages", "true"]).unwrap(),
        json!({"anthropic_config": {"api_key_ref": "K2"}, "transcripts": {"record_output_messages": true}})
    );
    assert_eq!(
        update(&[
            "p",
            "--bedrock-config.assume-role.role-arn",
            "arn:r",
            "--bedrock-config.static-credentials.access-key-id-ref",
            "AK"
        ])
        .unwrap(),
        json!({"bedrock_config": {"assume_role": {"role_arn": "arn:r"}, "static_credentials": {"access_key_id_ref": "AK"}}})
    );
    // --pricing alone changes only the named model of the current list (the patch carries the
    // whole list, as a merge patch replaces arrays); --tags merge key by key.
    let current = json!([{"name": "a", "custom_pricing": {"input_per_million": 1}}, {"name": "m"}, {"name": "z"}]);
    assert_eq!(
        update_over(&["p", "--pricing", "model=m,output=15", "--tags", "a=b"], Some(current.clone())).unwrap(),
        json!({"provider_models": [{"name": "a", "custom_pricing": {"input_per_million": 1}},
                                   {"name": "m", "custom_pricing": {"output_per_million": 1500000000}},
                                   {"name": "z"}],
               "tags": {"a": "b"}})
    );
    // An empty spec clears that model's override and nothing else.
    assert_eq!(
        update_over(&["p", "--pricing", "model=a"], Some(current.clone())).unwrap(),
        json!({"provider_models": [{"name": "a"}, {"name": "m"}, {"name": "z"}]})
    );
    let err = format!("{:#}", update_over(&["p", "--pricing", "model=q,input=1"], Some(current)).unwrap_err());
    assert!(err.contains("`q`") && err.contains("not in the provider's model list (a, m, z)"), "{err}");
    let err = format!("{:#}", update_over(&["p", "--pricing", "model=q,input=1"], Some(json!([]))).unwrap_err());
    assert!(err.contains("`q`") && err.contains("no model list"), "{err}");
    assert_eq!(update(&["p", "--type", "anthropic"]).unwrap(), json!({"type": "anthropic"}));
    assert!(format!("{:#}", update(&["p"]).expect_err("empty")).contains("nothing to update"));
    assert!(update(&["p", "--openai-config.base-url", "u", "--google-config.base-url", "u"]).is_err());
}

#[test]
fn update_clear_sets_paths_to_null() {
    assert_eq!(
        update(&["p", "--clear", "anthropic_config.base_url", "--clear", "tags.team"]).unwrap(),
        json!({"anthropic_config": {"base_url": null}, "tags": {"team": null}})
    );
    assert_eq!(
        update(&[
            "p",
            "--clear",
            "bedrock_config.static_credentials",
            "--bedrock-config.assume-role.role-arn",
            "arn:r"
        ])
        .unwrap(),
        json!({"bedrock_config": {"static_credentials": null, "assume_role": {"role_arn": "arn:r"}}})
    );
    assert_eq!(update(&["p", "--clear", "provider_models"]).unwrap(), json!({"provider_models": null}));
    assert!(update(&["p", "--clear", "a..b"]).is_err());
}

#[test]
fn token_body_and_expiry() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let body = |args: &[&str]| {
        let mut argv = vec!["token", "create"];
        argv.extend_from_slice(args);
        match parse(&argv) {
            Cmd::Token(TokenCommand::Create(a)) => token::create_body(&a, now),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        body(&[
            "ci",
            "--role",
            "invoker",
            "--user",
            "a@b.c",
            "--agent",
            "bot",
            "--provider",
            "p1",
            "--provider",
            "p2",
            "--expires-in",
            "30d"
        ])
        .unwrap(),
        json!({"name": "ci", "role": "invoker", "user": "a@b.c", "agent": "bot", "providers": ["p1", "p2"],
               "expires_at": "2026-01-31T00:00:00Z"})
    );
    assert_eq!(body(&["t", "--role", "admin", "--expires-in", "90m"]).unwrap()["expires_at"], "2026-01-01T01:30:00Z");
    assert_eq!(body(&["t", "--role", "reader", "--expires-in", "12h"]).unwrap()["expires_at"], "2026-01-01T12:00:00Z");
    assert_eq!(
        body(&["t", "--role", "writer", "--expires-at", "2027-05-01T10:00:00+02:00"]).unwrap()["expires_at"],
        "2027-05-01T08:00:00Z"
    );
    assert_eq!(body(&["t", "--role", "writer"]).unwrap(), json!({"name": "t", "role": "writer"}));
    assert!(body(&["t", "--role", "reader", "--expires-in", "3y"]).is_err());
    assert!(body(&["t", "--role", "reader", "--expires-at", "tomorrow"]).is_err());
    for bad in [
        &["tollgate", "token", "create", "t", "--role", "root"][..],
        &["tollgate", "token", "create", "t"][..],
        &[
            "tollgate",
            "token",
            "create",
            "t",
            "--role",
            "admin",
            "--expires-in",
            "1d",
            "--expires-at",
            "2027-01-01T00:00:00Z",
        ][..],
    ] {
        assert_eq!(Cli::try_parse_from(bad).expect_err("usage error").exit_code(), 2, "{bad:?}");
    }
}

#[test]
fn token_resolution_by_id_or_name() {
    use tollgate_cli::token::{Purpose, resolve};
    let t = |id: &str, name: &str, revoked: bool| {
        json!({"id": id, "name": name, "role": "invoker", "status": if revoked { "revoked" } else { "active" },
               "revoked_at": if revoked { json!("2026-01-01T00:00:00Z") } else { Value::Null }})
    };
    let tokens = vec![
        t("id-1", "app", false),
        t("id-2", "app", true),
        t("id-3", "twin", false),
        t("id-4", "twin", false),
        t("app", "other", false),
    ];
    // An exact id wins over a name.
    assert_eq!(resolve(&tokens, "app", Purpose::Get).map(|t| t["id"].clone()).ok(), Some(json!("app")));
    assert_eq!(resolve(&tokens, "id-2", Purpose::Revoke).unwrap()["id"], "id-2");
    let tokens = &tokens[..4];
    // get sees both `app` tokens; revoke only the unrevoked one.
    let err = format!("{:#}", resolve(tokens, "app", Purpose::Get).unwrap_err());
    assert!(
        err.contains("2 tokens are named `app`") && err.contains("id-1 (invoker, active)") && err.contains("id-2"),
        "{err}"
    );
    assert_eq!(resolve(tokens, "app", Purpose::Revoke).unwrap()["id"], "id-1");
    let err = format!("{:#}", resolve(tokens, "twin", Purpose::Revoke).unwrap_err());
    assert!(err.contains("id-3") && err.contains("id-4") && err.contains("pass the id"), "{err}");
    assert!(
        format!("{:#}", resolve(tokens, "x", Purpose::Get).unwrap_err()).contains("no token has the id or name `x`")
    );
    let only_revoked = [t("id-9", "gone", true)];
    assert!(format!("{:#}", resolve(&only_revoked, "gone", Purpose::Revoke).unwrap_err()).contains("already revoked"));
    assert_eq!(resolve(&only_revoked, "gone", Purpose::Get).unwrap()["id"], "id-9");
}

#[test]
fn model_rows_and_spending_filters() {
    let m = json!({"name": "m", "provider_type": "openai", "label": "M",
        "pricing": {"input_per_million": 250000000, "output_per_million": 7500000}, "max_input_tokens": 1000});
    assert_eq!(tollgate_cli::model::model_row(&m), vec!["m", "openai", "M", "$2.5", "$0.075", "-", "-", "-", "1000"]);
    let cmd = parse(&[
        "spending",
        "summary",
        "--start",
        "2026-11-01T00:00:00Z",
        "--provider",
        "p",
        "--token-type",
        "reasoning",
    ]);
    let Cmd::Spending(tollgate_cli::spending::SpendingCommand::Summary(f)) = cmd else { panic!("not a summary") };
    assert_eq!(
        f.query(),
        vec![
            ("start", "2026-11-01T00:00:00Z".to_string()),
            ("provider", "p".to_string()),
            ("token_type", "reasoning".to_string())
        ]
    );
    let s =
        json!({"total_cost_microcents": 123_456_789, "total_requests": 3, "failed_requests": 1, "total_tokens": 42});
    assert_eq!(tollgate_cli::spending::stats_cells(&s, true), vec!["$1.23456789", "3", "1", "42"]);
    assert_eq!(tollgate_cli::spending::stats_cells(&s, false), vec!["$1.23456789", "42"]);
    let per_type = json!({"total_cost_microcents": 5, "total_requests": null, "total_tokens": 1});
    assert!(tollgate_cli::spending::has_request_counts([&s, &per_type]));
    assert!(!tollgate_cli::spending::has_request_counts([&per_type]));
}

#[test]
fn rendering_helpers() {
    assert_eq!(strip_one_newline("v\n"), "v");
    assert_eq!(strip_one_newline("v\r\n"), "v");
    assert_eq!(strip_one_newline("v\n\n"), "v\n");
    assert_eq!(strip_one_newline("v"), "v");

    let err = ApiError::from_body(
        400,
        br#"{"error":{"code":"invalid_argument","message":"secret \"X\" not found","field":"openai_config.api_key_ref"}}"#,
    );
    assert_eq!(
        output::error_text(&err.into()),
        "Error: secret \"X\" not found\n  field: openai_config.api_key_ref\n  code: invalid_argument"
    );
    assert_eq!(
        output::error_text(&ApiError::from_body(502, b"bad gateway").into()),
        "Error: HTTP 502 Bad Gateway: bad gateway"
    );

    let p = json!({"name": "p", "type": "openai", "enabled": false, "url": "http://u",
                   "provider_models": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]});
    assert_eq!(provider::provider_row(&p), ["p", "openai", "Disabled", "a, b +2", "http://u"]);
    assert_eq!(provider::provider_row(&json!({"name": "q", "enabled": true}))[3], "(all)");
    assert_eq!(output::format_table(&["A", "LONGER"], &[vec!["xxxx".into(), "1".into()]]), "A      LONGER\nxxxx   1");

    // Prices (`*_per_million`, microcents per 1M) become exact USD for tables; nothing else changes.
    let doc = json!({"name": "p", "max_input_tokens": 200000, "pricing": {"input_per_million": 300000000,
        "tiers": [{"above_input_tokens": 200000, "input_per_million": 600000000}]},
        "provider_models": [{"name": "m", "custom_pricing": {"output_per_million": 7500000, "cached_input_per_million": 0}}]});
    let (shown, priced) = output::prices_in_usd(&doc);
    assert!(priced);
    assert_eq!(
        shown,
        json!({"name": "p", "max_input_tokens": 200000, "pricing": {"input_per_million": "$3",
            "tiers": [{"above_input_tokens": 200000, "input_per_million": "$6"}]},
            "provider_models": [{"name": "m", "custom_pricing": {"output_per_million": "$0.075", "cached_input_per_million": "$0"}}]})
    );
    assert_eq!(output::prices_in_usd(&json!({"name": "q"})), (json!({"name": "q"}), false));
}

// ---------------------------------------------------------------- end to end: the binary

#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs the real `tollgate` binary in an empty directory with a clean environment.
fn tg_raw(args: &[&str], stdin: Option<&str>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("TOLLGATE_URL")
        .env_remove("TOLLGATE_TOKEN")
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .env_remove("TOLLGATE_DATA_DIR")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary against `gw` with its admin token.
pub(crate) fn tg(gw: &TestGateway, args: &[&str]) -> Run {
    tg_in(gw, args, None)
}

fn tg_in(gw: &TestGateway, args: &[&str], stdin: Option<&str>) -> Run {
    let mut all = vec!["--url", gw.base_url.as_str(), "--token", gw.admin_token.as_str()];
    all.extend_from_slice(args);
    tg_raw(&all, stdin)
}

fn without_timestamps(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("created_at");
        o.remove("updated_at");
    }
    v
}

#[tokio::test]
async fn e2e_secrets_never_show_values() {
    let gw = TestGateway::start().await.unwrap();
    let run = tg_in(&gw, &["secret", "set", "OPENAI_KEY"], Some("sk-very-secret-value\n")).ok();
    assert_eq!(run.stdout.trim(), "created secret OPENAI_KEY");
    let run = tg_in(&gw, &["secrets", "set", "OPENAI_KEY"], Some("sk-very-secret-value-2\r\n")).ok();
    assert_eq!(run.stdout.trim(), "updated secret OPENAI_KEY");
    // The value is never an argument.
    assert_eq!(tg(&gw, &["secret", "set", "X_KEY", "value"]).code, 2);
    assert_eq!(tg_in(&gw, &["secret", "set", "EMPTY_KEY"], Some("\n")).code, 1);

    for args in [
        &["secret", "list"][..],
        &["secret", "list", "-o", "json"],
        &["secret", "get", "OPENAI_KEY"],
        &["secret", "list", "-o", "yaml"],
    ] {
        let run = tg(&gw, args).ok();
        assert!(run.stdout.contains("OPENAI_KEY"), "{args:?}: {}", run.stdout);
        assert!(!run.stdout.contains("sk-very"), "{args:?} leaked the value: {}", run.stdout);
        assert!(!run.stderr.contains("sk-very"));
    }
    let list = tg(&gw, &["secret", "list"]).ok();
    assert!(list.stdout.starts_with("NAME"), "{}", list.stdout);
    let names: Vec<Value> = tg(&gw, &["secret", "list", "-o", "json"]).json()["secrets"].as_array().unwrap().clone();
    assert_eq!(names.len(), 1);

    // Bound hosts: set with the value, replaced without it (admin), shown by `get`.
    let run =
        tg_in(&gw, &["secret", "set", "OPENAI_KEY", "--bound-host", "api.openai.com", "-o", "json"], Some("sk-very-3"))
            .ok();
    assert_eq!(run.json()["bound_hosts"], json!(["api.openai.com"]), "{}", run.stdout);
    let run = tg(&gw, &["secret", "bind", "OPENAI_KEY", "--host", "10.0.0.5:8080", "--host", "api.openai.com"]).ok();
    assert_eq!(run.stdout.trim(), "bound secret OPENAI_KEY to: 10.0.0.5:8080, api.openai.com");
    let meta = tg(&gw, &["secret", "get", "OPENAI_KEY", "-o", "json"]).json();
    assert_eq!(meta["bound_hosts"], json!(["10.0.0.5:8080", "api.openai.com"]), "{meta}");
    let bad = tg(&gw, &["secret", "bind", "OPENAI_KEY", "--host", "http://x/"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("bound_hosts[0]"), "{}", bad.stderr);

    // A referenced secret cannot be deleted.
    tg(&gw, &["provider", "create", "uses-key", "--openai-config.api-key-ref", "OPENAI_KEY"]).ok();
    let run = tg(&gw, &["secret", "delete", "OPENAI_KEY"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("Error: "), "{}", run.stderr);
    assert!(run.stderr.contains("code: conflict"), "{}", run.stderr);
    tg(&gw, &["provider", "delete", "uses-key"]).ok();
    assert_eq!(tg(&gw, &["secret", "delete", "OPENAI_KEY"]).ok().stdout.trim(), "deleted secret OPENAI_KEY");
    let run = tg(&gw, &["secret", "get", "OPENAI_KEY"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("code: not_found"), "{}", run.stderr);
}

#[tokio::test]
async fn e2e_providers_crud_filters_and_round_trip() {
    let gw = TestGateway::start().await.unwrap();
    for s in ["OPENAI_KEY", "ANTHROPIC_KEY", "GOOGLE_KEY"] {
        gw.put_secret(s, "v").await.unwrap();
    }
    tg(
        &gw,
        &[
            "provider",
            "create",
            "p-openai",
            "--openai-config.api-key-ref",
            "OPENAI_KEY",
            "--provider-models",
            "gpt-4o",
            "--provider-models",
            "gpt-4o-mini",
            "--provider-models",
            "o3",
            "--pricing",
            "model=gpt-4o,input=2.5,output=10,cached=1.25",
            "--tags",
            "team=search",
        ],
    )
    .ok();
    tg(
        &gw,
        &[
            "llm",
            "create",
            "p-anthropic",
            "--display-name",
            "Prod Anthropic",
            "--anthropic-config.api-key-ref",
            "ANTHROPIC_KEY",
            "--transcripts.record-input-messages",
            "true",
        ],
    )
    .ok();
    tg(&gw, &["lp", "create", "p-google", "--google-config.api-key-ref", "GOOGLE_KEY", "--enabled", "false"]).ok();
    tg(
        &gw,
        &[
            "llm-provider",
            "create",
            "p-bedrock",
            "--bedrock-config.region",
            "us-east-1",
            "--bedrock-config.assume-role.role-arn",
            "arn:aws:iam::123456789012:role/tollgate",
            "--bedrock-config.assume-role.external-id",
            "ext-1",
            "--provider-models",
            "us.anthropic.claude-sonnet-4-6",
            "--pricing",
            "model=us.anthropic.claude-sonnet-4-6,input=3.3,output=16.5",
        ],
    )
    .ok();
    let run =
        tg(&gw, &["provider", "create", "p-local", "--openai-compatible-config.base-url", "http://127.0.0.1:11434/v1"])
            .ok();
    assert_eq!(run.stdout.trim(), "created provider p-local");

    let openai = tg(&gw, &["provider", "get", "p-openai", "-o", "json"]).ok().json();
    assert_eq!(openai["type"], "openai");
    assert_eq!(openai["display_name"], "p-openai");
    assert_eq!(openai["enabled"], true);
    assert_eq!(openai["openai_config"]["api_key_ref"], "OPENAI_KEY");
    assert_eq!(
        openai["provider_models"][0]["custom_pricing"],
        json!({"input_per_million": 250000000, "output_per_million": 1000000000, "cached_input_per_million": 125000000})
    );
    assert_eq!(openai["tags"], json!({"team": "search"}));
    assert!(openai["url"].as_str().unwrap().ends_with("/llm/v1/providers/p-openai"), "{openai}");
    let bedrock = tg(&gw, &["provider", "get", "p-bedrock", "-o", "json"]).ok().json();
    assert_eq!(bedrock["bedrock_config"]["region"], "us-east-1");
    assert_eq!(bedrock["bedrock_config"]["assume_role"]["role_arn"], "arn:aws:iam::123456789012:role/tollgate");
    assert_eq!(bedrock["bedrock_config"]["assume_role"]["external_id"], "ext-1");
    assert_eq!(
        bedrock["provider_models"],
        json!([{"name": "us.anthropic.claude-sonnet-4-6",
        "custom_pricing": {"input_per_million": 330000000, "output_per_million": 1650000000}}])
    );
    let anthropic = tg(&gw, &["provider", "get", "p-anthropic", "-o", "json"]).ok().json();
    assert_eq!(anthropic["display_name"], "Prod Anthropic");
    assert_eq!(anthropic["transcripts"]["record_input_messages"], true);
    assert_eq!(tg(&gw, &["provider", "get", "p-local", "-o", "json"]).ok().json()["type"], "openai_compatible");
    let run = tg(&gw, &["provider", "get", "p-openai"]).ok();
    let kv = run.stdout;
    assert!(kv.contains("openai_config.api_key_ref") && kv.contains("OPENAI_KEY"), "{kv}");
    // The table shows custom prices in USD per 1M tokens, as --pricing took them.
    let price = |key: &str| kv.lines().find(|l| l.starts_with(key)).map(|l| l[key.len()..].trim().to_owned());
    assert_eq!(price("provider_models[0].custom_pricing.input_per_million").as_deref(), Some("$2.5"), "{kv}");
    assert_eq!(price("provider_models[0].custom_pricing.output_per_million").as_deref(), Some("$10"), "{kv}");
    assert_eq!(price("provider_models[0].custom_pricing.cached_input_per_million").as_deref(), Some("$1.25"), "{kv}");
    assert!(!kv.contains("250000000"), "{kv}");
    assert!(run.stderr.contains("prices in USD per 1M tokens"), "{}", run.stderr);

    // list: table and every filter.
    let table = tg(&gw, &["provider", "list"]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("TYPE")
            && lines[0].contains("STATUS")
            && lines[0].contains("MODELS")
    );
    assert!(table.contains("gpt-4o, gpt-4o-mini +1"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("p-google") && l.contains("Disabled")), "{table}");
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["provider", "list", "-o", "json"];
        all.extend_from_slice(args);
        let v = tg(&gw, &all).ok().json();
        v["llm_providers"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&["--type", "bedrock"]), ["p-bedrock"]);
    assert_eq!(names(&["--type", "openai-compatible"]), ["p-local"]);
    assert_eq!(names(&["--enabled", "false"]), ["p-google"]);
    assert_eq!(names(&["--enabled", "true"]).len(), 4);
    assert_eq!(names(&["--name-contains", "o"]).len(), 5);
    assert_eq!(names(&["--name-contains", "anth"]), ["p-anthropic"]);
    let page = tg(&gw, &["provider", "list", "--page-size", "2", "-o", "json"]).ok().json();
    assert_eq!(page["llm_providers"].as_array().unwrap().len(), 2);
    let token = page["next_page_token"].as_str().unwrap().to_owned();
    assert_eq!(names(&["--page-size", "2", "--page-token", &token]).len(), 2);
    assert_eq!(names(&["--page-size", "2", "--all"]).len(), 5);
    let run = tg(&gw, &["provider", "list", "--page-size", "2"]).ok();
    assert!(run.stderr.contains("--page-token"), "{}", run.stderr);

    // -o yaml parses as YAML and says the same as -o json.
    let yaml = tg(&gw, &["provider", "get", "p-bedrock", "-o", "yaml"]).ok().stdout;
    let from_yaml: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, bedrock);

    // Round trip: get -o json → delete → create -f → get -o json, equal but for timestamps.
    let dir = tempfile::tempdir().unwrap();
    for (name, fmt) in [("p-openai", "json"), ("p-bedrock", "yaml")] {
        let before = tg(&gw, &["provider", "get", name, "-o", "json"]).ok().json();
        let manifest = tg(&gw, &["provider", "get", name, "-o", fmt]).ok().stdout;
        let path = dir.path().join(format!("{name}.{fmt}"));
        std::fs::write(&path, manifest).unwrap();
        assert_eq!(tg(&gw, &["provider", "delete", name]).ok().stdout.trim(), format!("deleted provider {name}"));
        assert_eq!(tg(&gw, &["provider", "get", name]).code, 1);
        tg(&gw, &["provider", "create", "-f", path.to_str().unwrap()]).ok();
        let after = tg(&gw, &["provider", "get", name, "-o", "json"]).ok().json();
        assert_eq!(without_timestamps(after), without_timestamps(before), "{name} via {fmt}");
    }

    // update (merge patch).
    let run = tg(&gw, &["provider", "update", "p-anthropic", "--display-name", "Renamed", "--enabled", "false"]).ok();
    assert_eq!(run.stdout.trim(), "updated provider p-anthropic");
    let updated = tg(&gw, &["provider", "get", "p-anthropic", "-o", "json"]).ok().json();
    assert_eq!(updated["display_name"], "Renamed");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["anthropic_config"]["api_key_ref"], "ANTHROPIC_KEY");
    assert_eq!(updated["transcripts"]["record_input_messages"], true);
    let patched = tg(
        &gw,
        &[
            "provider",
            "update",
            "p-openai",
            "--clear",
            "tags.team",
            "--tags",
            "env=prod",
            "--pricing",
            "model=gpt-4o,input=0",
            "-o",
            "json",
        ],
    )
    .ok()
    .json();
    assert_eq!(patched["tags"], json!({"env": "prod"}));
    // Only gpt-4o's pricing changed; the other models stay served.
    assert_eq!(
        patched["provider_models"],
        json!([{"name": "gpt-4o", "custom_pricing": {"input_per_million": 0}}, {"name": "gpt-4o-mini"}, {"name": "o3"}])
    );
    // Pricing a model outside the list changes nothing and says why.
    let run = tg(&gw, &["provider", "update", "p-openai", "--pricing", "model=gpt-9,input=1"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("`gpt-9`") && run.stderr.contains("gpt-4o, gpt-4o-mini, o3"), "{}", run.stderr);
    assert_eq!(
        tg(&gw, &["provider", "get", "p-openai", "-o", "json"]).ok().json()["provider_models"],
        patched["provider_models"]
    );

    // Changing the type is refused by the server.
    let run = tg(&gw, &["provider", "update", "p-openai", "--type", "anthropic"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("Error: ") && run.stderr.contains("immutable"), "{}", run.stderr);
    assert!(run.stderr.contains("  field: type") && run.stderr.contains("  code: invalid_argument"), "{}", run.stderr);

    // A missing secret: exit 1, the server's message, field and code on stderr, nothing on stdout.
    let run = tg(&gw, &["provider", "create", "bad", "--anthropic-config.api-key-ref", "NOPE_KEY"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.starts_with("Error: ") && run.stderr.contains("NOPE_KEY"), "{}", run.stderr);
    assert!(run.stderr.contains("  field: anthropic_config.api_key_ref"), "{}", run.stderr);
    assert!(run.stderr.contains("  code: invalid_argument"), "{}", run.stderr);
    // Client-side errors exit 1 too; clap usage errors exit 2.
    assert_eq!(
        tg(&gw, &["provider", "create", "x", "--openai-config.api-key-ref", "A", "--google-config.api-key-ref", "B"])
            .code,
        1
    );
    assert_eq!(tg(&gw, &["provider", "create", "x", "--enabled", "maybe"]).code, 2);

    for name in ["p-openai", "p-anthropic", "p-google", "p-bedrock", "p-local"] {
        tg(&gw, &["provider", "delete", name]).ok();
    }
    let run = tg(&gw, &["provider", "delete", "p-local"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("code: not_found"), "{}", run.stderr);
    assert_eq!(tg(&gw, &["provider", "list"]).ok().stdout.lines().count(), 1);
}

#[tokio::test]
async fn e2e_tokens_create_list_revoke() {
    let gw = TestGateway::start().await.unwrap();
    let run = tg(
        &gw,
        &[
            "token",
            "create",
            "ci-bot",
            "--role",
            "invoker",
            "--user",
            "ops@example.com",
            "--agent",
            "ci",
            "--expires-in",
            "30d",
        ],
    )
    .ok();
    let secret = run.stdout.trim().to_owned();
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(secret.starts_with("tg_"), "{secret}");
    assert!(run.stderr.contains("not be shown again"), "{}", run.stderr);

    let created = tg(&gw, &["token", "create", "reader", "--role", "reader", "-o", "json"]).ok().json();
    assert!(created["token"].as_str().unwrap().starts_with("tg_"));
    assert_eq!(created["role"], "reader");

    // The new token works as a bearer for what its role allows.
    let mut as_reader = vec!["--url", gw.base_url.as_str(), "--token", created["token"].as_str().unwrap()];
    as_reader.extend(["provider", "list"]);
    tg_raw(&as_reader, None).ok();

    let list = tg(&gw, &["token", "list", "-o", "json"]).ok().json();
    let tokens = list["tokens"].as_array().unwrap();
    let bot = tokens.iter().find(|t| t["name"] == "ci-bot").unwrap();
    assert!(bot.get("token").is_none_or(Value::is_null), "list must not show the token: {bot}");
    assert_eq!(bot["user"], "ops@example.com");
    let id = bot["id"].as_str().unwrap().to_owned();
    let table = tg(&gw, &["token", "list"]).ok().stdout;
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    let row = table.lines().find(|l| l.contains("ci-bot")).unwrap();
    assert!(row.contains("invoker") && row.contains("ops@example.com") && row.contains("Active"), "{row}");
    assert!(table.lines().next().is_some_and(|h| h.contains("LAST USED") && h.contains("7D SPEND")), "{table}");
    assert!(row.contains("never") && row.contains("$0"), "an unused token: {row}");
    assert!(!table.contains(&secret));

    assert_eq!(tg(&gw, &["token", "get", &id, "-o", "json"]).ok().json()["name"], "ci-bot");
    assert_eq!(tg(&gw, &["token", "revoke", &id]).ok().stdout.trim(), format!("revoked token ci-bot (id {id})"));
    let row = tg(&gw, &["token", "list"]).ok().stdout.lines().find(|l| l.contains("ci-bot")).unwrap().to_owned();
    assert!(row.contains("Revoked"), "{row}");
    assert!(!tg(&gw, &["token", "get", &id, "-o", "json"]).ok().json()["revoked_at"].is_null());

    // By name: a unique name works for get and revoke; a shared name is refused with the ids.
    let solo = tg(&gw, &["token", "create", "solo-app", "--role", "invoker", "-o", "json"]).ok().json();
    let solo_id = solo["id"].as_str().unwrap();
    assert_eq!(tg(&gw, &["token", "get", "solo-app", "-o", "json"]).ok().json()["id"], solo["id"]);
    let run = tg(&gw, &["token", "revoke", "solo-app"]).ok();
    assert_eq!(run.stdout.trim(), format!("revoked token solo-app (id {solo_id})"));
    assert_eq!(tg(&gw, &["token", "get", "solo-app", "-o", "json"]).ok().json()["status"], "revoked");
    let again = tg(&gw, &["token", "revoke", "solo-app"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already revoked") && again.stderr.contains(solo_id), "{}", again.stderr);
    // A new token may reuse a revoked token's name: revoke picks the one still active.
    let solo2 = tg(&gw, &["token", "create", "solo-app", "--role", "reader", "-o", "json"]).ok().json();
    let run = tg(&gw, &["token", "revoke", "solo-app", "-o", "json"]).ok().json();
    assert_eq!(run["id"], solo2["id"]);
    assert_eq!(run["status"], "revoked");

    let a = tg(&gw, &["token", "create", "twin", "--role", "invoker", "-o", "json"]).ok().json();
    let b = tg(&gw, &["token", "create", "twin", "--role", "reader", "-o", "json"]).ok().json();
    for verb in ["get", "revoke"] {
        let run = tg(&gw, &["token", verb, "twin"]);
        assert_eq!(run.code, 1, "{verb}: {run:?}");
        assert!(run.stderr.contains("2 tokens are named `twin`"), "{}", run.stderr);
        for t in [&a, &b] {
            assert!(run.stderr.contains(t["id"].as_str().unwrap()), "{}", run.stderr);
        }
    }
    assert_eq!(tg(&gw, &["token", "get", "twin", "-o", "json"]).code, 1);
    assert_eq!(tg(&gw, &["token", "get", a["id"].as_str().unwrap(), "-o", "json"]).ok().json()["status"], "active");
    let missing = tg(&gw, &["token", "revoke", "no-such-token"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no token has the id or name `no-such-token`"), "{}", missing.stderr);
}

#[tokio::test]
async fn e2e_connection_and_auth_failures() {
    let gw = TestGateway::start().await.unwrap();
    let run = tg_raw(&["--url", gw.base_url.as_str(), "provider", "list"], None);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("code: unauthenticated") && run.stderr.contains("TOLLGATE_ADMIN_TOKEN"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("TOLLGATE_TOKEN "), "{}", run.stderr);
    let run = tg_raw(&["--url", gw.base_url.as_str(), "--token", "tg_wrong", "secret", "list"], None);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("code: unauthenticated"), "{}", run.stderr);

    // The token file in the data dir is used when no token is given.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), format!("{}\n", gw.admin_token)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["--url", gw.base_url.as_str(), "provider", "list"])
        .env_remove("TOLLGATE_TOKEN")
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .env("TOLLGATE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    drop(gw);
    let run = tg_raw(&["--url", "http://127.0.0.1:9", "--token", "t", "provider", "list"], None);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("http://127.0.0.1:9") && run.stderr.contains("cannot connect"), "{}", run.stderr);
}

/// The CLI's admin token comes from `--token` / `TOLLGATE_ADMIN_TOKEN` / `admin.token`, never from
/// `TOLLGATE_TOKEN`, where the docs used to tell users to keep their application's token.
#[tokio::test]
async fn e2e_cli_ignores_the_application_token_variable() {
    let gw = TestGateway::start().await.unwrap();
    let app_token = tg(&gw, &["token", "create", "my-app", "--role", "invoker"]).ok().stdout.trim().to_owned();
    let run_env = |data_dir: &std::path::Path, env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["--url", gw.base_url.as_str(), "provider", "list"])
            .env_remove("TOLLGATE_TOKEN")
            .env_remove("TOLLGATE_ADMIN_TOKEN")
            .env("TOLLGATE_DATA_DIR", data_dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let with_file = tempfile::tempdir().unwrap();
    std::fs::write(with_file.path().join("admin.token"), &gw.admin_token).unwrap();
    let empty = tempfile::tempdir().unwrap();

    // An application's token in TOLLGATE_TOKEN does not shadow the bootstrap token file.
    run_env(with_file.path(), &[("TOLLGATE_TOKEN", &app_token)]).ok();
    // TOLLGATE_ADMIN_TOKEN is the CLI's variable.
    run_env(empty.path(), &[("TOLLGATE_ADMIN_TOKEN", &gw.admin_token), ("TOLLGATE_TOKEN", &app_token)]).ok();
    // TOLLGATE_TOKEN alone: nothing is sent, and the hint says the variable is ignored.
    let run = run_env(empty.path(), &[("TOLLGATE_TOKEN", &app_token)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("code: unauthenticated"), "{}", run.stderr);
    assert!(run.stderr.contains("set TOLLGATE_ADMIN_TOKEN"), "{}", run.stderr);
    assert!(run.stderr.contains("TOLLGATE_TOKEN is set but the CLI ignores it"), "{}", run.stderr);
    assert!(!run.stderr.contains(&app_token), "{}", run.stderr);
    // The help names the CLI's variable.
    let help = tg_raw(&["provider", "list", "--help"], None).ok().stdout;
    assert!(help.contains("[env: TOLLGATE_ADMIN_TOKEN"), "{help}");
    assert!(!help.contains("[env: TOLLGATE_TOKEN"), "{help}");
}

/// `tollgate provider check` prints PASS/FAIL and sets the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_provider_check() {
    use tollgate_core::ProviderType;
    use tollgate_testkit::upstream::FakeUpstream;
    let up = FakeUpstream::start(ProviderType::Openai, Some("sk-good")).await.unwrap();
    let gw = TestGateway::start().await.unwrap();
    tg_in(&gw, &["secret", "set", "OA_KEY"], Some("sk-good\n")).ok();
    let base = up.provider_base_url();
    tg(&gw, &["provider", "create", "oa", "--openai-config.api-key-ref", "OA_KEY", "--openai-config.base-url", &base])
        .ok();
    let pass = tg(&gw, &["provider", "check", "oa", "--model", "gpt-4o-mini"]).ok();
    assert!(pass.stdout.starts_with("PASS GET /models"), "{}", pass.stdout);
    let json = tg(&gw, &["-o", "json", "provider", "check", "oa"]).ok().json();
    assert_eq!(json["ok"], true);
    let fail = tg(&gw, &["provider", "check", "oa", "--model", "gpt-9"]);
    assert_eq!(fail.code, 1, "{fail:?}");
    assert!(fail.stdout.starts_with("FAIL"), "{}", fail.stdout);
    assert!(fail.stderr.contains("does not list model \"gpt-9\""), "{}", fail.stderr);
}

#[tokio::test]
async fn e2e_models_and_spending() {
    use tollgate_core::{Cost, ProviderType, RequestStatus, Usage};
    let gw = TestGateway::start().await.unwrap();
    // Two priced events through the usage store's real write path (events + rollups).
    let now = tollgate_server::time::system_now_ms();
    let usage_db = format!("sqlite://{}?mode=rwc", gw.data_dir.join("usage.sqlite").display());
    let store = tollgate_store::UsageStore::connect(&usage_db).await.unwrap();
    let ev = |id: &str, provider: &str, total: i64| tollgate_store::UsageEvent {
        id: id.into(),
        ts_ms: now - 600_000,
        provider: provider.into(),
        provider_type: ProviderType::Openai,
        model: Some("gpt-5.4".into()),
        endpoint: "/chat/completions".into(),
        user: Some("cli@example.com".into()),
        agent: None,
        token_id: None,
        status: RequestStatus::Success,
        http_status: Some(200),
        error_class: None,
        streamed: false,
        latency_ms: 3,
        ttft_ms: None,
        usage: Usage { input: 1000, output: 100, ..Usage::default() },
        cost: Cost { input: total - 150_000, output: 150_000, total, ..Cost::default() },
        catalog_version: Some("2026-11-24.1".into()),
        priced_by_override: false,
        unpriced: false,
        request_id: id.into(),
        conversation_id: None,
        transcript: None,
    };
    store.insert_events(&[ev("e1", "gone-openai", 400_000), ev("e2", "gone-openai", 400_000)]).await.unwrap();
    store.close().await;

    let table = tg(&gw, &["model", "list", "--provider-type", "anthropic", "--page-size", "1000"]).ok();
    assert!(table.stdout.lines().next().unwrap().starts_with("NAME"), "{}", table.stdout);
    let row = table.stdout.lines().find(|l| l.starts_with("claude-sonnet-4-6 ")).unwrap();
    for cell in ["anthropic", "Claude Sonnet 4.6", "$3", "$15", "$0.3", "$3.75", "$6", "1000000"] {
        assert!(row.contains(cell), "{row} lacks {cell}");
    }
    assert!(table.stderr.contains("catalog 2026-11-24.1"), "{}", table.stderr);
    let got = tg(&gw, &["model", "get", "us.anthropic.claude-sonnet-4-6", "-o", "json"]).ok().json();
    assert_eq!(got["model"]["pricing"]["input_per_million"], 330_000_000);
    // `model get` as a table: USD per 1M like `model list`, never microcents.
    let run = tg(&gw, &["model", "get", "us.anthropic.claude-sonnet-4-6"]).ok();
    let line = run.stdout.lines().find(|l| l.starts_with("model.pricing.input_per_million")).unwrap();
    assert_eq!(line["model.pricing.input_per_million".len()..].trim(), "$3.3", "{}", run.stdout);
    assert!(!run.stdout.contains("330000000"), "{}", run.stdout);
    assert!(run.stderr.contains("prices in USD per 1M tokens"), "{}", run.stderr);
    let missing = tg(&gw, &["model", "get", "nope"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("not in the catalog"), "{}", missing.stderr);

    let summary = tg(&gw, &["spending", "summary", "-o", "json"]).ok().json();
    assert_eq!(summary["stats"]["total_cost_microcents"], 800_000);
    assert_eq!(summary["stats"]["total_requests"], 2);
    let table = tg(&gw, &["spending", "summary"]).ok().stdout;
    let total = table.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total.contains("$0.008") && total.contains(" 2 ") && total.contains("2200"), "{table}");
    let breakdown = tg(&gw, &["spending", "breakdown", "provider"]).ok().stdout;
    let row = breakdown.lines().find(|l| l.starts_with("gone-openai")).unwrap();
    assert!(row.contains("(deleted)") && row.contains("$0.008"), "{breakdown}");
    // By token type: each row is one bucket's tokens and cost; requests are not split by
    // bucket, so the API sends null counts and the table and CSV leave them out.
    let by_type = tg(&gw, &["spending", "breakdown", "token_type", "-o", "json"]).ok().json();
    let entries = by_type["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 7, "{by_type}");
    let input = entries.iter().find(|e| e["key"] == "input").unwrap();
    assert_eq!(input["stats"]["total_tokens"], 2000);
    assert_eq!(input["stats"]["total_cost_microcents"], 500_000);
    for e in entries {
        for k in ["total_requests", "failed_requests", "unpriced_requests"] {
            assert!(e["stats"][k].is_null(), "{k} of {e}");
        }
    }
    let table = tg(&gw, &["spending", "breakdown", "token_type"]).ok().stdout;
    let head = table.lines().next().unwrap();
    assert!(
        head.contains("SPEND") && head.contains("TOKENS") && !head.contains("REQUESTS") && !head.contains("FAILED"),
        "{table}"
    );
    let row: Vec<&str> = table.lines().find(|l| l.starts_with("output ")).unwrap().split_whitespace().collect();
    assert_eq!(row, ["output", "Output", "$0.003", "200"], "{table}");
    let series =
        tg(&gw, &["spending", "timeseries", "--bucket", "day", "--group-by", "token_type", "-o", "json"]).ok().json();
    assert!(series["series"][0]["points"][0]["stats"]["total_requests"].is_null(), "{series}");
    let table = tg(&gw, &["spending", "timeseries", "--bucket", "day", "--group-by", "token_type"]).ok().stdout;
    assert!(!table.lines().next().unwrap().contains("REQUESTS"), "{table}");
    let csv = tg(&gw, &["spending", "export", "--bucket", "total", "--group-by", "token_type"]).ok().stdout;
    let output_row = csv.lines().find(|l| l.contains(",token_type,output,")).unwrap();
    assert!(output_row.contains(",token_type,output,Output,false,,,,200,300000,0.003,"), "{csv}");
    // Grouped by anything else the counts stay.
    let table = tg(&gw, &["spending", "breakdown", "model"]).ok().stdout;
    assert!(table.lines().next().unwrap().contains("REQUESTS"), "{table}");

    let series =
        tg(&gw, &["spending", "timeseries", "--bucket", "day", "--group-by", "model", "-o", "json"]).ok().json();
    assert_eq!(series["series"][0]["key"], "gpt-5.4");
    let csv = tg(&gw, &["spending", "export", "--bucket", "total", "--group-by", "user"]).ok().stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains(",user,cli@example.com,cli@example.com,false,2,0,0,2200,800000,0.008,"), "{csv}");
    let bad = tg(&gw, &["spending", "breakdown", "colour"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("field: dimension"), "{}", bad.stderr);
}

/// A model the catalog does not know is saved, with a warning on stderr (stdout stays the
/// document); a known model gives none.
#[tokio::test]
async fn e2e_unknown_models_warn_on_stderr() {
    let gw = TestGateway::start().await.unwrap();
    tg_in(&gw, &["secret", "set", "ANTHROPIC_KEY"], Some("sk-ant\n")).ok();
    let run = tg(
        &gw,
        &[
            "provider",
            "create",
            "warned",
            "--anthropic-config.api-key-ref",
            "ANTHROPIC_KEY",
            "--provider-models",
            "claude-sonnet-4-6",
            "--provider-models",
            "sonnet-4-6",
        ],
    )
    .ok();
    assert_eq!(run.stdout.trim(), "created provider warned");
    assert_eq!(
        run.stderr.trim(),
        "warning: provider_models[1].name: model \"sonnet-4-6\" is not in the catalog for type anthropic: \
         it will be unpriced unless custom_pricing is set"
    );
    let run = tg(&gw, &["provider", "update", "warned", "--provider-models", "claude-sonnet-4-6", "-o", "json"]).ok();
    assert_eq!(run.json()["warnings"], json!([]));
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let run = tg(&gw, &["provider", "update", "warned", "--provider-models", "haiku", "-o", "json"]).ok();
    assert_eq!(run.json()["warnings"][0]["field"], "provider_models[0].name");
    assert!(run.stderr.contains("warning: provider_models[0].name: model \"haiku\""), "{}", run.stderr);
}

/// `tollgate --version` names the commit; `tollgate health` turns `/readyz` into an exit status
/// (the Dockerfile's HEALTHCHECK and the systemd unit rely on both).
#[tokio::test]
async fn e2e_version_and_health() {
    let run = tg_raw(&["--version"], None).ok();
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(run.stdout.starts_with(&format!("tollgate {}", env!("CARGO_PKG_VERSION"))), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("(commit {head})")), "{} vs {head}", run.stdout);

    let gw = TestGateway::start().await.unwrap();
    let run = tg_raw(&["--url", gw.base_url.as_str(), "health"], None).ok();
    assert_eq!(run.stdout.trim(), "ready");
    let url = gw.base_url.clone();
    drop(gw);
    let run = tg_raw(&["--url", url.as_str(), "health", "--timeout-seconds", "2"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("not ready"), "{}", run.stderr);
}

#[test]
fn apply_merge_patch_and_changed_paths_agree() {
    use tollgate_cli::apply::{changed_paths, merge_patch, secret_refs, validate_document};
    let cur = json!({"a": 1, "c": {"x": 1, "y": 2}, "gone": true, "list": [1, 2]});
    let want = json!({"a": 1, "c": {"x": 1, "y": 3}, "list": [2]});
    let mut fields = Vec::new();
    changed_paths(&cur, &want, "", &mut fields);
    assert_eq!(fields, ["c.y", "gone", "list"]);
    let patch = merge_patch(&cur, &want);
    assert_eq!(patch, json!({"c": {"y": 3}, "gone": null, "list": [2]}));
    let mut applied = cur.clone();
    tollgate_core::patch::merge_patch(&mut applied, &patch);
    assert_eq!(applied, want, "the patch turns the stored provider into the manifest");

    let (name, spec) = validate_document(
        "f#1",
        json!({"kind": "Provider", "name": "p", "display_name": "P", "type": "openai",
               "openai_config": {"api_key_ref": "K"}, "url": "http://x", "created_at": "t"}),
    )
    .unwrap();
    assert_eq!(name, "p");
    assert!(spec.get("url").is_none() && spec.get("created_at").is_none());
    assert_eq!(secret_refs(&spec), ["K"]);
    let err = |v: Value| validate_document("f#2", v).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(json!({"name": "p"})).contains("f#2: kind: required"));
    assert!(err(json!({"kind": "Team"})).contains("unknown kind `Team`"));
    assert!(err(json!({"kind": "Budget", "name": "b", "limit_microcents": 0})).starts_with("f#2: limit_microcents"));
    let (name, spec) = validate_document(
        "f#3",
        json!({"kind": "Budget", "name": "b", "limit_microcents": 5, "current_spend_microcents": 3, "period_resets_at": "t"}),
    )
    .unwrap();
    assert_eq!(name, "b");
    assert!(spec.get("current_spend_microcents").is_none() && spec.get("period_resets_at").is_none(), "{spec}");
    assert!(err(json!({"kind": "Provider", "name": "Bad Name", "type": "openai"})).starts_with("f#2: name"));
}

/// GitOps end to end with the real binary: diff, apply, re-apply unchanged, a change shown by
/// field, an invalid document that changes nothing, the `get -o yaml` shape applied back as is,
/// `--dry-run`, `--prune`.
#[tokio::test]
async fn e2e_apply_and_diff() {
    let gw = TestGateway::start().await.unwrap();
    gw.put_secret("TEAM_A_KEY", "sk-a").await.unwrap();
    gw.put_secret("TEAM_B_KEY", "sk-b").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = "kind: Provider\nname: team-a\ndisplay_name: Team A\ntype: openai\nopenai_config:\n  api_key_ref: TEAM_A_KEY\ntags:\n  team: a\n";
    let b = "kind: Provider\nname: team-b\ndisplay_name: Team B\ntype: anthropic\nanthropic_config:\n  api_key_ref: TEAM_B_KEY\nprovider_models:\n  - name: claude-sonnet-4-6\n";
    std::fs::write(dir.path().join("providers.yaml"), format!("{a}---\n{b}")).unwrap();
    let d = dir.path().to_str().unwrap();

    let run = tg(&gw, &["diff", "-f", d]);
    assert_eq!((run.code, run.stdout.as_str()), (1, "+ team-a\n+ team-b\n"), "{}", run.stderr);
    let run = tg(&gw, &["apply", "-f", d]).ok();
    assert_eq!(run.stdout, "created provider/team-a\ncreated provider/team-b\n");
    let run = tg(&gw, &["diff", "-f", d]).ok();
    assert_eq!(run.stdout, "= team-a\n= team-b\n");
    assert_eq!(tg(&gw, &["apply", "-f", d]).ok().stdout, "unchanged provider/team-a\nunchanged provider/team-b\n");

    // A change is shown by field and applied; a field left out returns to its default.
    let a2 = a.replace("Team A", "Team A (prod)").replace("team: a", "team: search");
    std::fs::write(dir.path().join("providers.yaml"), format!("{a2}---\n{b}")).unwrap();
    let run = tg(&gw, &["diff", "-f", d]);
    assert_eq!((run.code, run.stdout.as_str()), (1, "~ team-a (update: display_name, tags.team)\n= team-b\n"));
    assert_eq!(
        tg(&gw, &["apply", "-f", d, "--dry-run"]).ok().stdout.lines().next(),
        Some("updated provider/team-a (dry run)")
    );
    assert_eq!(tg(&gw, &["provider", "get", "team-a", "-o", "json"]).ok().json()["display_name"], "Team A", "dry run");
    assert_eq!(tg(&gw, &["apply", "-f", d]).ok().stdout.lines().next(), Some("updated provider/team-a"));
    let got = tg(&gw, &["provider", "get", "team-a", "-o", "json"]).ok().json();
    assert_eq!((got["display_name"].as_str(), got["tags"]["team"].as_str()), (Some("Team A (prod)"), Some("search")));

    // An invalid document anywhere changes nothing, and names file, document and field.
    let bad =
        "kind: Provider\nname: Bad_Name\ndisplay_name: X\ntype: openai\nopenai_config:\n  api_key_ref: TEAM_A_KEY\n";
    std::fs::write(dir.path().join("providers.yaml"), format!("{a}---\n{b}")).unwrap();
    std::fs::write(dir.path().join("z-bad.yaml"), bad).unwrap();
    let run = tg(&gw, &["apply", "-f", d]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("z-bad.yaml#1: name") && run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(tg(&gw, &["provider", "get", "team-a", "-o", "json"]).ok().json()["display_name"], "Team A (prod)");
    std::fs::remove_file(dir.path().join("z-bad.yaml")).unwrap();
    // A secret that does not exist: also nothing changed.
    std::fs::write(dir.path().join("z-missing.yaml"), bad.replace("Bad_Name", "team-c").replace("TEAM_A_KEY", "NOPE"))
        .unwrap();
    let run = tg(&gw, &["apply", "-f", d]);
    assert!(run.code == 2 && run.stderr.contains("secret \"NOPE\" does not exist"), "{}", run.stderr);
    assert_eq!(tg(&gw, &["provider", "get", "team-a", "-o", "json"]).ok().json()["display_name"], "Team A (prod)");
    std::fs::remove_file(dir.path().join("z-missing.yaml")).unwrap();
    // A key twice in one mapping (YAML or JSON) is refused naming it, as the API refuses it,
    // never read as its last value.
    for (file, twice) in [
        (
            "z-twice.yaml",
            a.replace("Team A", "First").replace("display_name: First", "display_name: First\ndisplay_name: Last"),
        ),
        (
            "z-twice.json",
            r#"{"kind":"Provider","name":"team-a","display_name":"First","display_name":"Last"}"#.to_string(),
        ),
    ] {
        assert!(twice.matches("display_name").count() == 2, "{twice}");
        std::fs::write(dir.path().join(file), &twice).unwrap();
        let run = tg(&gw, &["apply", "-f", dir.path().join(file).to_str().unwrap()]);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("{file}#1: display_name: appears twice")), "{}", run.stderr);
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    assert_eq!(tg(&gw, &["provider", "get", "team-a", "-o", "json"]).ok().json()["display_name"], "Team A (prod)");

    // A rule only the server can check (here the upstream address policy) refuses the whole
    // run before any write: team-a (first in the plan) is not updated either. `--dry-run`
    // reports the same refusal.
    std::fs::write(
        dir.path().join("z-meta.yaml"),
        bad.replace("Bad_Name", "team-m").replace("api_key_ref", "base_url: http://169.254.169.254/v1\n  api_key_ref"),
    )
    .unwrap();
    for extra in [&[][..], &["--dry-run"][..]] {
        let run = tg(&gw, &[&["apply", "-f", d][..], extra].concat());
        assert_eq!(run.code, 2, "{extra:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("nothing was changed (the server refused)")
                && run.stderr.contains("z-meta.yaml#1: provider/team-m: openai_config.base_url: "),
            "{}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{extra:?}");
    }
    assert_eq!(tg(&gw, &["provider", "get", "team-a", "-o", "json"]).ok().json()["display_name"], "Team A (prod)");
    assert_eq!(tg(&gw, &["provider", "get", "team-m"]).code, 1);
    std::fs::remove_file(dir.path().join("z-meta.yaml")).unwrap();

    // What `get -o yaml` prints, plus a kind, applies back unchanged (from standard input).
    let yaml = tg(&gw, &["provider", "get", "team-b", "-o", "yaml"]).ok().stdout;
    let run = tg_in(&gw, &["apply", "-f", "-"], Some(&format!("kind: Provider\n{yaml}"))).ok();
    assert_eq!(run.stdout, "unchanged provider/team-b\n");

    // --prune deletes what the files no longer name.
    std::fs::write(dir.path().join("providers.yaml"), a).unwrap();
    let run = tg(&gw, &["diff", "-f", d, "--prune"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, "~ team-a (update: display_name, tags.team)\n- team-b\n"));
    let run = tg(&gw, &["apply", "-f", d]).ok();
    assert_eq!(run.stdout, "updated provider/team-a\n", "without --prune nothing is deleted");
    let run = tg(&gw, &["apply", "-f", d, "--prune"]).ok();
    assert_eq!(run.stdout, "unchanged provider/team-a\ndeleted provider/team-b\n");
    let run = tg(&gw, &["provider", "get", "team-b"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
}

/// `tollgate budget` and `tollgate rate-limit` with the real binary (USD flags, tables, update
/// keeps what is not given), and `apply` / `diff` with `Budget` and `RateLimit` documents.
#[tokio::test]
async fn e2e_budgets_and_rate_limits() {
    let gw = TestGateway::start().await.unwrap();
    let run = tg(
        &gw,
        &["budget", "create", "agents", "--limit", "25", "--warn-at", "20", "--period", "weekly", "-o", "json"],
    )
    .ok();
    let b = run.json();
    assert_eq!(
        (b["limit_microcents"].as_i64(), b["warn_at_microcents"].as_i64()),
        (Some(2_500_000_000), Some(2_000_000_000))
    );
    assert_eq!((b["period"].as_str(), b["pooling_mode"].as_str()), (Some("weekly"), Some("per_agent")));
    tg(&gw, &["budget", "create", "bot", "--limit", "100", "--agent", "bot", "--provider", "oa"]).ok();
    let run = tg(&gw, &["budget", "create", "bot-2", "--limit", "1", "--agent", "bot"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("scope.agent"), "{}", run.stderr);
    let run = tg(&gw, &["budget", "create", "x"]);
    assert!(run.code != 0 && run.stderr.contains("--limit"), "{}", run.stderr);
    let table = tg(&gw, &["budget", "list"]).ok().stdout;
    assert!(
        table.contains("agents") && table.contains("$25") && table.contains("$20") && table.contains("default"),
        "{table}"
    );
    assert!(table.contains("agent bot; providers oa") && table.contains("$100"), "{table}");
    let u = tg(&gw, &["budget", "update", "agents", "--limit", "30.5", "-o", "json"]).ok().json();
    assert_eq!(
        (u["limit_microcents"].as_i64(), u["period"].as_str()),
        (Some(3_050_000_000), Some("weekly")),
        "update keeps the rest"
    );
    assert_eq!(tg(&gw, &["budget", "get", "agents", "-o", "json"]).ok().json()["current_spend_microcents"], 0);
    tg(&gw, &["budget", "delete", "bot"]).ok();
    assert_eq!(tg(&gw, &["budget", "get", "bot"]).code, 1);

    let r = tg(&gw, &["rate-limit", "create", "rl", "--rpm", "60", "--agent", "bot", "-o", "json"]).ok().json();
    assert_eq!((r["requests_per_minute"].as_i64(), r["scope"]["agent"].as_str()), (Some(60), Some("bot")));
    assert!(r["scope"]["token"].is_null(), "the CLI's own --token is not a scope: {r}");
    tg(&gw, &["rate-limit", "update", "rl", "--tpm", "1000"]).ok();
    let table = tg(&gw, &["rate-limit", "list"]).ok().stdout;
    assert!(table.contains("agent bot") && table.contains("60") && table.contains("1000"), "{table}");
    assert_eq!(tg(&gw, &["rate-limit", "create", "bad"]).code, 1, "neither --rpm nor --tpm");
    // A provider that does not exist: created, with the warning on stderr (stdout stays the document).
    let run = tg(&gw, &["rate-limit", "create", "ghost", "--rpm", "5", "--provider", "ghost", "-o", "json"]).ok();
    assert!(run.stderr.contains("warning: scope.provider: provider \"ghost\" does not exist"), "{}", run.stderr);
    assert_eq!(run.json()["warnings"][0]["field"], "scope.provider");
    let run = tg(&gw, &["rate-limit", "get", "ghost"]).ok();
    assert!(!run.stdout.contains("warnings") && run.stderr.contains("warning: scope.provider"), "{run:?}");
    let run = tg(&gw, &["rate-limit", "list"]).ok();
    assert!(run.stderr.contains("warning: rate-limit/ghost: scope.provider: provider \"ghost\""), "{}", run.stderr);
    tg(&gw, &["rate-limit", "delete", "ghost"]).ok();

    // GitOps: budgets and rate limits next to providers; what `get -o yaml` prints applies back.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let docs = "kind: Budget\nname: agents\nlimit_microcents: 3050000000\nperiod: weekly\n---\nkind: Budget\nname: shared\npooling_mode: shared\nlimit_microcents: 100\n---\nkind: RateLimit\nname: rl\nscope:\n  agent: bot\nrequests_per_minute: 120\n";
    std::fs::write(dir.path().join("limits.yaml"), docs).unwrap();
    let run = tg(&gw, &["diff", "-f", d]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "~ budget/agents (update: warn_at_microcents)\n+ budget/shared\n~ rate-limit/rl (update: requests_per_minute, tokens_per_minute)\n"
        ),
        "{}",
        run.stderr
    );
    let run = tg(&gw, &["apply", "-f", d]).ok();
    assert_eq!(run.stdout, "updated budget/agents\ncreated budget/shared\nupdated rate-limit/rl\n");
    assert_eq!(tg(&gw, &["diff", "-f", d]).ok().stdout, "= budget/agents\n= budget/shared\n= rate-limit/rl\n");
    let yaml = tg(&gw, &["budget", "get", "shared", "-o", "yaml"]).ok().stdout;
    let run = tg_in(&gw, &["apply", "-f", "-"], Some(&format!("kind: Budget\n{yaml}"))).ok();
    assert_eq!(run.stdout, "unchanged budget/shared\n");
    std::fs::write(
        dir.path().join("limits.yaml"),
        "kind: Budget\nname: shared\npooling_mode: shared\nlimit_microcents: 100\n",
    )
    .unwrap();
    let run = tg(&gw, &["apply", "-f", d, "--prune"]).ok();
    assert_eq!(
        run.stdout, "unchanged budget/shared\ndeleted budget/agents\n",
        "rate limits are not pruned by a budgets-only run"
    );
    assert_eq!(tg(&gw, &["rate-limit", "get", "rl", "-o", "json"]).ok().json()["requests_per_minute"], 120);

    // One override per agent is the store's rule (checked in the write's transaction): a
    // second override in a manifest refuses the run before the first document is written.
    tg(&gw, &["budget", "create", "bot", "--limit", "100", "--agent", "bot"]).ok();
    std::fs::write(
        dir.path().join("limits.yaml"),
        "kind: Budget\nname: shared\npooling_mode: shared\nlimit_microcents: 200\n---\nkind: Budget\nname: zbot\nscope:\n  agent: bot\nlimit_microcents: 5\n",
    )
    .unwrap();
    let run = tg(&gw, &["apply", "-f", d]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("limits.yaml#2: budget/zbot: scope.agent: "), "{}", run.stderr);
    assert_eq!(tg(&gw, &["budget", "get", "shared", "-o", "json"]).ok().json()["limit_microcents"], 100);

    // The server's warnings are printed per document; a dry run leaves out those about a
    // provider the same run creates.
    tg_in(&gw, &["secret", "set", "FRESH_KEY"], Some("sk-fresh\n")).ok();
    let docs = "kind: Provider\nname: fresh\ndisplay_name: Fresh\ntype: openai\nopenai_config:\n  api_key_ref: FRESH_KEY\n---\nkind: RateLimit\nname: on-fresh\nscope:\n  provider: fresh\nrequests_per_minute: 5\n---\nkind: RateLimit\nname: on-typo\nscope:\n  provider: frseh\nrequests_per_minute: 5\n";
    std::fs::write(dir.path().join("limits.yaml"), docs).unwrap();
    let typo = "limits.yaml#3: rate-limit/on-typo: scope.provider: provider \"frseh\" does not exist";
    let run = tg(&gw, &["apply", "-f", d, "--dry-run"]).ok();
    assert!(run.stderr.contains(typo) && !run.stderr.contains("\"fresh\""), "{}", run.stderr);
    let run = tg(&gw, &["apply", "-f", d]).ok();
    assert!(run.stderr.contains(typo) && !run.stderr.contains("\"fresh\""), "{}", run.stderr);

    // Two documents of one run that conflict (two new overrides for one agent) pass their
    // rehearsals; the second write is refused, and the run says where it stopped.
    let docs = "kind: Budget\nname: twin-a\nscope:\n  agent: twin\nlimit_microcents: 5\n---\nkind: Budget\nname: twin-b\nscope:\n  agent: twin\nlimit_microcents: 6\n";
    std::fs::write(dir.path().join("limits.yaml"), docs).unwrap();
    let run = tg(&gw, &["apply", "-f", d]);
    assert_eq!((run.code, run.stdout.as_str()), (2, "created budget/twin-a\n"), "{}", run.stderr);
    assert!(
        run.stderr.contains("limits.yaml#2: budget/twin-b: scope.agent: ")
            && run.stderr.contains("the run stopped there: the 1 change(s) listed above stay applied"),
        "{}",
        run.stderr
    );
}
