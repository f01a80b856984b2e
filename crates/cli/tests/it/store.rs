//! The store test suite: every case runs on SQLite and, when `TOLLGATE_TEST_DATABASE_URL`
//! is set, on PostgreSQL, through `store_cases!`. Each case gets a fresh, empty database.
//! Names: `store::<case>::sqlite` and `store::<case>::postgres`.

use anyhow::Context;
use tollgate_store::{
    Backend, BindOutcome, Change, ConfigKind, HostBinding, Keyring, MasterKey, Notice, PageQuery, ProviderQuery,
    ProviderRecord, ProviderType, Role, SecretValue, Store, StoreError, TokenRecord,
};
use tollgate_testkit::db::TestDb;

macro_rules! store_cases {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use tollgate_testkit::db::TestDb;

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                super::$case(TestDb::sqlite().await).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                let Some(db) = TestDb::postgres().await else { return Ok(()) };
                super::$case(db).await
            }
        }
    )*};
}

store_cases!(
    usage_events_batch_roundtrip,
    conversations_named_lone_and_legacy,
    request_log_pages_match_every_filter,
    usage_rollups_follow_events,
    top_n_series_plus_other_equal_the_total,
    usage_retention_keeps_rollups,
    legacy_events_move_into_segments,
    usage_rollup_tables_agree,
    principal_rollups_agree_and_backfill,
    migrations_idempotent,
    provider_crud,
    provider_list_filters,
    provider_pagination,
    provider_refs_checked_in_db,
    provider_saves_bind_their_secret_or_nothing,
    secret_in_use_is_not_deleted,
    secrets_sealed_at_rest,
    wrong_keyring_is_unknown_key_id,
    rotate_master_key_reseals_all,
    tokens_insert_list_paginate,
    revoke_protects_last_admin,
    bootstrap_token_only_on_empty_table,
    config_version_bumps_on_every_write,
    config_changes_name_each_write,
    config_notifications_follow_commits,
    concurrent_writes_stay_consistent,
);

// ---- helpers ----

fn new_keyring() -> anyhow::Result<Keyring> {
    Ok(Keyring::new(MasterKey::generate()?))
}

async fn open(db: &TestDb) -> anyhow::Result<Store> {
    Ok(Store::connect(db.url(), new_keyring()?).await?)
}

fn provider(name: &str, ty: ProviderType, display: &str, enabled: bool) -> ProviderRecord {
    ProviderRecord {
        name: name.to_owned(),
        provider_type: ty,
        display_name: display.to_owned(),
        enabled,
        spec_json: format!(r#"{{"name":"{name}"}}"#),
        secret_refs: Vec::new(),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

fn with_ref(mut p: ProviderRecord, field: &str, secret: &str) -> ProviderRecord {
    p.secret_refs.push((field.to_owned(), secret.to_owned()));
    p
}

fn token(n: u8, role: Role, expires_at_ms: Option<i64>) -> TokenRecord {
    TokenRecord {
        id: uuid::Uuid::now_v7().to_string().into(),
        name: format!("token-{n}"),
        hash: [n; 32],
        prefix: format!("tg_{n:06}"),
        user: Some(format!("user{n}@example.com").into()),
        agent: None,
        role,
        providers: None,
        expires_at_ms,
        created_at_ms: 5_000 + i64::from(n),
        revoked_at_ms: None,
    }
}

fn secret(v: &str) -> SecretValue {
    SecretValue::new(v.to_owned())
}

/// The error of a call that must fail.
fn err<T: std::fmt::Debug>(r: Result<T, StoreError>) -> StoreError {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

fn names(items: &[ProviderRecord]) -> Vec<&str> {
    items.iter().map(|p| p.name.as_str()).collect()
}

async fn list_names(store: &Store, q: ProviderQuery) -> anyhow::Result<Vec<String>> {
    let page = store.list_providers(&ProviderQuery { limit: 100, ..q }).await?;
    anyhow::ensure!(page.next_after.is_none(), "one page expected");
    Ok(page.items.into_iter().map(|p| p.name).collect())
}

// ---- cases ----

async fn migrations_idempotent(db: TestDb) -> anyhow::Result<()> {
    let keyring = new_keyring()?;
    if db.is_postgres() {
        // Two replicas starting at once on an empty database: the advisory lock serialises them.
        let (a, b) = tokio::join!(Store::connect(db.url(), keyring.clone()), Store::connect(db.url(), keyring.clone()));
        a?.close().await;
        b?.close().await;
    }
    let store = Store::connect(db.url(), keyring.clone()).await?;
    let expected = if db.is_postgres() { Backend::Postgres } else { Backend::Sqlite };
    assert_eq!(store.backend(), expected);
    store.ping().await?;
    assert_eq!(store.config_version().await?, 0);
    assert!(store.put_secret("KEEP_ME", &secret("v"), 1).await?);
    let version = store.config_version().await?;
    store.close().await;

    let again = Store::connect(db.url(), keyring).await?;
    again.ping().await?;
    assert_eq!(again.config_version().await?, version, "reconnecting must not rerun migrations");
    let kept = again.secret_value("KEEP_ME").await?.context("secret lost on reconnect")?;
    assert_eq!(kept.expose(), "v");
    let applied =
        db.raw_strings("SELECT description FROM _sqlx_migrations WHERE $1 = $1 ORDER BY version", "x").await?;
    // On PostgreSQL the usage tables share the database (and its migration history); on
    // SQLite they live in their own file.
    let expected: &[&str] = if db.is_postgres() {
        &[
            "config",
            "usage events",
            "cost rollups",
            "console signouts",
            "secret bindings",
            "transcripts",
            "config changes",
            "limits",
            "failed requests",
            "lean event indexes",
            "token usage",
            "singleton conversations",
            "lean transcript indexes",
            "transcript batches",
            "usage segments",
            "principal rollups",
        ]
    } else {
        &["config", "console signouts", "secret bindings", "config changes", "limits"]
    };
    assert_eq!(applied, expected, "each migration recorded once");
    again.close().await;
    Ok(())
}

async fn provider_crud(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let rec = with_ref(
        with_ref(provider("prod-openai", ProviderType::Openai, "Prod OpenAI", true), "b.ref", "B_KEY"),
        "a.ref",
        "A_KEY",
    );
    store.insert_provider(&rec, false, None).await?;
    let got = store.get_provider("prod-openai").await?.context("inserted provider missing")?;
    let mut sorted = rec.clone();
    sorted.secret_refs.sort();
    assert_eq!(got, sorted, "round trip, refs sorted by field");
    assert!(store.get_provider("nope").await?.is_none());

    let dup = err(store.insert_provider(&provider("prod-openai", ProviderType::Google, "x", false), false, None).await);
    assert!(matches!(&dup, StoreError::AlreadyExists { what: "provider", name } if name == "prod-openai"), "{dup:?}");
    assert_eq!(store.get_provider("prod-openai").await?.context("gone")?, sorted, "failed insert changed nothing");

    let mut changed = with_ref(provider("prod-openai", ProviderType::Openai, "Renamed", false), "c.ref", "C_KEY");
    changed.spec_json = r#"{"v":2}"#.to_owned();
    changed.created_at_ms = 9_999; // must be ignored
    changed.updated_at_ms = 2_000;
    store.update_provider(&changed, false, None).await?;
    let got = store.get_provider("prod-openai").await?.context("updated provider missing")?;
    assert_eq!(got.display_name, "Renamed");
    assert!(!got.enabled);
    assert_eq!(got.spec_json, r#"{"v":2}"#);
    assert_eq!(got.created_at_ms, 1_000, "created_at kept");
    assert_eq!(got.updated_at_ms, 2_000);
    assert_eq!(got.secret_refs, vec![("c.ref".to_owned(), "C_KEY".to_owned())], "refs replaced");
    assert!(store.providers_referencing("A_KEY").await?.is_empty());
    assert_eq!(store.providers_referencing("C_KEY").await?, vec!["prod-openai".to_owned()]);

    let missing = err(store.update_provider(&provider("ghost", ProviderType::Openai, "G", true), false, None).await);
    assert!(matches!(&missing, StoreError::NotFound { what: "provider", name } if name == "ghost"), "{missing:?}");
    assert_eq!(missing.to_string(), r#"provider "ghost" not found"#);

    store.delete_provider("prod-openai").await?;
    assert!(store.get_provider("prod-openai").await?.is_none());
    assert!(store.providers_referencing("C_KEY").await?.is_empty(), "refs rows dropped");
    let again = err(store.delete_provider("prod-openai").await);
    assert!(matches!(again, StoreError::NotFound { what: "provider", .. }), "{again:?}");
    // The name is free again.
    store.insert_provider(&provider("prod-openai", ProviderType::Google, "G", true), false, None).await?;
    assert_eq!(store.all_providers().await?.len(), 1);
    store.close().await;
    Ok(())
}

async fn provider_list_filters(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    for p in [
        provider("alpha", ProviderType::Openai, "Team ALPHA", true),
        provider("beta", ProviderType::Anthropic, "Cost 100% Off", true),
        provider("gamma", ProviderType::Anthropic, "Cost 1000 Off", false),
        provider("delta", ProviderType::Google, "under_score", true),
        provider("epsilon", ProviderType::Google, "underXscore", false),
        provider("zeta-alpha", ProviderType::Bedrock, "Z", true),
    ] {
        store.insert_provider(&p, false, None).await?;
    }
    let all = store.all_providers().await?;
    assert_eq!(names(&all), ["alpha", "beta", "delta", "epsilon", "gamma", "zeta-alpha"]);

    let q = |f: fn(&mut ProviderQuery)| {
        let mut q = ProviderQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(list_names(&store, q(|q| q.provider_type = Some(ProviderType::Anthropic))).await?, ["beta", "gamma"]);
    assert_eq!(list_names(&store, q(|q| q.enabled = Some(false))).await?, ["epsilon", "gamma"]);
    assert_eq!(
        list_names(
            &store,
            q(|q| {
                q.provider_type = Some(ProviderType::Google);
                q.enabled = Some(true);
            })
        )
        .await?,
        ["delta"]
    );
    // Case-insensitive on the display name and the name.
    assert_eq!(list_names(&store, q(|q| q.name_contains = Some("alpha".into()))).await?, ["alpha", "zeta-alpha"]);
    assert_eq!(list_names(&store, q(|q| q.name_contains = Some("team a".into()))).await?, ["alpha"]);
    assert_eq!(list_names(&store, q(|q| q.name_contains = Some("ZETA".into()))).await?, ["zeta-alpha"]);
    // `%` and `_` are literals, not wildcards.
    assert_eq!(list_names(&store, q(|q| q.name_contains = Some("100%".into()))).await?, ["beta"]);
    assert_eq!(list_names(&store, q(|q| q.name_contains = Some("r_s".into()))).await?, ["delta"]);
    assert_eq!(list_names(&store, q(|q| q.name_contains = Some("%".into()))).await?, ["beta"]);
    assert!(list_names(&store, q(|q| q.name_contains = Some("\\".into()))).await?.is_empty());
    assert!(list_names(&store, q(|q| q.name_contains = Some("nothing".into()))).await?.is_empty());
    // Filters combine with keyset paging.
    assert_eq!(
        list_names(
            &store,
            q(|q| {
                q.enabled = Some(true);
                q.after = Some("beta".into());
            })
        )
        .await?,
        ["delta", "zeta-alpha"]
    );
    store.close().await;
    Ok(())
}

async fn provider_pagination(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let mut expected = Vec::new();
    for i in (0..23).rev() {
        let name = format!("p-{i:02}");
        let p = with_ref(provider(&name, ProviderType::Openai, "P", i % 3 != 0), "openai_config.api_key_ref", "K");
        store.insert_provider(&p, false, None).await?;
        expected.push(name);
    }
    expected.sort();

    for (filter, want) in [
        (None, expected.clone()),
        (Some(true), expected.iter().filter(|n| n[2..].parse::<u32>().is_ok_and(|i| i % 3 != 0)).cloned().collect()),
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = store
                .list_providers(&ProviderQuery {
                    enabled: filter,
                    after: after.clone(),
                    limit: 5,
                    ..Default::default()
                })
                .await?;
            pages += 1;
            assert!(page.items.len() <= 5);
            assert!(page.items.iter().all(|p| p.secret_refs.len() == 1), "refs joined on every page");
            seen.extend(page.items.iter().map(|p| p.name.clone()));
            match page.next_after {
                Some(next) => {
                    assert_eq!(page.items.len(), 5, "only the last page is short");
                    assert_eq!(Some(&next), page.items.last().map(|p| &p.name));
                    after = Some(next);
                }
                None => break,
            }
            assert!(pages < 20, "pagination does not terminate");
        }
        assert_eq!(seen, want, "no duplicates, no gaps, in name order");
        assert_eq!(pages, want.len().div_ceil(5));
    }
    // An exact multiple of the page size ends without an empty extra page.
    let page = store.list_providers(&ProviderQuery { limit: 23, ..Default::default() }).await?;
    assert_eq!(page.items.len(), 23);
    assert!(page.next_after.is_none());
    store.close().await;
    Ok(())
}

async fn provider_refs_checked_in_db(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let rec = with_ref(
        with_ref(
            provider("a", ProviderType::Bedrock, "A", true),
            "bedrock_config.static_credentials.access_key_id_ref",
            "AWS_ID",
        ),
        "bedrock_config.static_credentials.secret_access_key_ref",
        "AWS_SECRET",
    );
    store.put_secret("AWS_ID", &secret("id"), 1).await?;
    let e = err(store.insert_provider(&rec, true, None).await);
    match &e {
        StoreError::SecretNotFound { field, name } => {
            assert_eq!(field, "bedrock_config.static_credentials.secret_access_key_ref");
            assert_eq!(name, "AWS_SECRET");
        }
        other => panic!("expected SecretNotFound, got {other:?}"),
    }
    assert_eq!(e.to_string(), r#"secret "AWS_SECRET" not found"#);
    assert!(store.get_provider("a").await?.is_none(), "rolled back");
    assert!(store.providers_referencing("AWS_ID").await?.is_empty(), "no ref rows left behind");

    store.put_secret("AWS_SECRET", &secret("s"), 2).await?;
    store.insert_provider(&rec, true, None).await?;
    assert!(store.get_provider("a").await?.is_some());

    let bad = with_ref(provider("a", ProviderType::Bedrock, "Changed", true), "x.ref", "MISSING");
    let e = err(store.update_provider(&bad, true, None).await);
    assert!(matches!(&e, StoreError::SecretNotFound { field, name } if field == "x.ref" && name == "MISSING"), "{e:?}");
    let unchanged = store.get_provider("a").await?.context("provider lost")?;
    assert_eq!(unchanged.display_name, "A", "failed update changed nothing");
    assert_eq!(unchanged.secret_refs.len(), 2);

    // Without the check (secret held by another backend), a missing secret is accepted.
    store
        .insert_provider(&with_ref(provider("b", ProviderType::Openai, "B", true), "f", "ENV_ONLY"), false, None)
        .await?;
    assert_eq!(store.providers_referencing("ENV_ONLY").await?, vec!["b".to_owned()]);
    store.close().await;
    Ok(())
}

/// A provider save binds its injected secret in its own transaction: the first save binds,
/// an admin's save at another host adds it, anyone else's is refused with nothing written;
/// a save that fails for another reason (the name taken, the provider gone) binds nothing.
async fn provider_saves_bind_their_secret_or_nothing(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    store.put_secret("K", &secret("v"), 1).await?;
    let rec = |name: &str, display: &str| with_ref(provider(name, ProviderType::Openai, display, true), "f", "K");
    let at = |host, add_if_other| Some(HostBinding { secret: "K", host, add_if_other });
    let hosts = |store: &Store| {
        let store = store.clone();
        async move { store.secret_bindings("K").await.map(|h| h.into_iter().collect::<Vec<_>>()) }
    };

    let first = store.insert_provider(&rec("a", "A"), true, at("api.openai.com", false)).await?;
    assert_eq!(first, Some(BindOutcome::FirstUse));
    assert_eq!(hosts(&store).await?, ["api.openai.com"]);
    let again = store.insert_provider(&rec("b", "B"), true, at("api.openai.com", false)).await?;
    assert_eq!(again, Some(BindOutcome::AlreadyBound));

    // The name is taken: 409's cause, and the admin's new host is not added.
    let taken = err(store.insert_provider(&rec("a", "A2"), true, at("attacker.example:9", true)).await);
    assert!(matches!(taken, StoreError::AlreadyExists { .. }), "{taken:?}");
    // The provider is gone: nothing bound either.
    let gone = err(store.update_provider(&rec("ghost", "G"), true, at("attacker.example:9", true)).await);
    assert!(matches!(gone, StoreError::NotFound { .. }), "{gone:?}");
    assert_eq!(hosts(&store).await?, ["api.openai.com"], "a failed save bound a host");

    // Bound elsewhere and not an admin: refused, and the save itself rolled back.
    let refused = err(store.insert_provider(&rec("c", "C"), true, at("attacker.example:9", false)).await);
    match &refused {
        StoreError::SecretBoundElsewhere { secret, hosts } => {
            assert_eq!(secret, "K");
            assert_eq!(hosts, &["api.openai.com"]);
        }
        other => panic!("expected SecretBoundElsewhere, got {other:?}"),
    }
    assert!(store.get_provider("c").await?.is_none(), "the refused save left its provider");
    let moved = err(store.update_provider(&rec("b", "B moved"), true, at("attacker.example:9", false)).await);
    assert!(matches!(moved, StoreError::SecretBoundElsewhere { .. }), "{moved:?}");
    assert_eq!(store.get_provider("b").await?.context("b")?.display_name, "B", "the refused update changed b");

    // An admin's save adds the host, with the provider.
    let added = store.update_provider(&rec("b", "B moved"), true, at("eu.openai.com", true)).await?;
    assert_eq!(added, Some(BindOutcome::Added));
    assert_eq!(hosts(&store).await?, ["api.openai.com", "eu.openai.com"]);
    assert_eq!(store.get_provider("b").await?.context("b")?.display_name, "B moved");
    store.close().await;
    Ok(())
}

async fn secret_in_use_is_not_deleted(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    store.put_secret("SHARED", &secret("shh"), 1).await?;
    store.put_secret("FREE", &secret("x"), 1).await?;
    for name in ["zulu", "alpha", "mike"] {
        store
            .insert_provider(
                &with_ref(provider(name, ProviderType::Openai, name, true), "openai_config.api_key_ref", "SHARED"),
                true,
                None,
            )
            .await?;
    }
    let e = err(store.delete_secret("SHARED").await);
    match &e {
        StoreError::SecretInUse { name, providers } => {
            assert_eq!(name, "SHARED");
            assert_eq!(providers, &["alpha", "mike", "zulu"]);
        }
        other => panic!("expected SecretInUse, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("alpha") && msg.contains("mike") && msg.contains("zulu"), "{msg}");
    assert_eq!(store.secret_value("SHARED").await?.context("secret deleted")?.expose(), "shh");
    assert!(store.get_secret_meta("SHARED").await?.is_some());

    store.delete_secret("FREE").await?;
    assert!(store.secret_value("FREE").await?.is_none());
    let gone = err(store.delete_secret("FREE").await);
    assert!(matches!(&gone, StoreError::NotFound { what: "secret", name } if name == "FREE"), "{gone:?}");

    for name in ["zulu", "alpha", "mike"] {
        store.delete_provider(name).await?;
    }
    store.delete_secret("SHARED").await?;
    assert!(store.get_secret_meta("SHARED").await?.is_none());
    store.close().await;
    Ok(())
}

async fn secrets_sealed_at_rest(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let key_id = store.keyring().primary_id();
    let plaintext = "sk-live-very-secret-value-123";
    assert!(store.put_secret("OPENAI_API_KEY", &secret(plaintext), 10).await?, "created");
    let raw = db.raw_strings("SELECT sealed FROM secrets WHERE name = $1", "OPENAI_API_KEY").await?;
    assert_eq!(raw.len(), 1);
    assert!(raw[0].starts_with(&format!("v1:{key_id}:")), "{}", raw[0]);
    assert!(!raw[0].contains(plaintext) && !raw[0].contains("very-secret"));
    let raw_id = db.raw_strings("SELECT key_id FROM secrets WHERE name = $1", "OPENAI_API_KEY").await?;
    assert_eq!(raw_id, vec![key_id.clone()]);

    assert!(!store.put_secret("OPENAI_API_KEY", &secret("second"), 20).await?, "replaced, not created");
    let meta = store.get_secret_meta("OPENAI_API_KEY").await?.context("meta missing")?;
    assert_eq!((meta.created_at_ms, meta.updated_at_ms, meta.key_id.as_str()), (10, 20, key_id.as_str()));
    let value = store.secret_value("OPENAI_API_KEY").await?.context("value missing")?;
    assert_eq!(value.expose(), "second");
    assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
    let raw2 = db.raw_strings("SELECT sealed FROM secrets WHERE name = $1", "OPENAI_API_KEY").await?;
    assert_ne!(raw2, raw, "new value, new envelope");

    // A sealed value copied under another name does not open (AAD binds the name).
    store.put_secret("OTHER", &secret("other"), 30).await?;
    let keyring = store.keyring();
    let e = err(keyring.open(b"secret/OTHER", &raw2[0]));
    assert!(matches!(e, StoreError::Crypto(_)), "{e:?}");

    // Listing pages by name and never shows values.
    for i in 0..5 {
        store.put_secret(&format!("S_{i}"), &secret("v"), 40).await?;
    }
    let first = store.list_secrets(&PageQuery { after: None, limit: 4 }).await?;
    assert_eq!(
        first.items.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["OPENAI_API_KEY", "OTHER", "S_0", "S_1"]
    );
    let rest = store.list_secrets(&PageQuery { after: first.next_after.clone(), limit: 4 }).await?;
    assert_eq!(rest.items.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["S_2", "S_3", "S_4"]);
    assert!(rest.next_after.is_none());
    store.close().await;
    Ok(())
}

async fn wrong_keyring_is_unknown_key_id(db: TestDb) -> anyhow::Result<()> {
    let right = MasterKey::generate()?;
    let store = Store::connect(db.url(), Keyring::new(right.clone())).await?;
    store.put_secret("API_KEY", &secret("v"), 1).await?;

    let other = Store::connect(db.url(), new_keyring()?).await?;
    let e = err(other.secret_value("API_KEY").await);
    assert!(matches!(&e, StoreError::UnknownKeyId(id) if *id == right.key_id()), "{e:?}");
    assert!(other.get_secret_meta("API_KEY").await?.is_some(), "metadata needs no key");

    // The right key as a retired key still opens it.
    other.set_keyring(Keyring::new(MasterKey::generate()?).with_old(right.clone()));
    assert_eq!(other.secret_value("API_KEY").await?.context("missing")?.expose(), "v");
    // A different key that claims the same id cannot exist: ids are derived from the key bytes.
    let from_b64 = MasterKey::from_base64(&right.to_base64())?;
    assert_eq!(from_b64.key_id(), right.key_id());
    other.close().await;
    store.close().await;
    Ok(())
}

async fn rotate_master_key_reseals_all(db: TestDb) -> anyhow::Result<()> {
    let k1 = MasterKey::generate()?;
    let k2 = MasterKey::generate()?;
    let store = Store::connect(db.url(), Keyring::new(k1.clone())).await?;
    let secrets = [("A", "alpha-value"), ("B", "bravo-value"), ("C", "charlie-value")];
    for (name, v) in secrets {
        store.put_secret(name, &secret(v), 1).await?;
    }
    let before: Vec<String> = db.raw_strings("SELECT sealed FROM secrets WHERE $1 = $1 ORDER BY name", "x").await?;

    assert_eq!(store.rotate_master_key(k2.clone()).await?, 3);
    assert_eq!(store.keyring().primary_id(), k2.key_id());
    let ids = db.raw_strings("SELECT key_id FROM secrets WHERE $1 = $1 ORDER BY name", "x").await?;
    assert_eq!(ids, vec![k2.key_id(); 3]);
    let after = db.raw_strings("SELECT sealed FROM secrets WHERE $1 = $1 ORDER BY name", "x").await?;
    for (old, new) in before.iter().zip(&after) {
        assert!(old.starts_with(&format!("v1:{}:", k1.key_id())));
        assert!(new.starts_with(&format!("v1:{}:", k2.key_id())));
    }
    for (name, v) in secrets {
        assert_eq!(store.secret_value(name).await?.context("lost")?.expose(), v);
        let meta = store.get_secret_meta(name).await?.context("meta lost")?;
        assert_eq!(meta.key_id, k2.key_id());
    }
    // A new secret is sealed with the new primary.
    store.put_secret("D", &secret("delta"), 2).await?;
    assert_eq!(db.raw_strings("SELECT key_id FROM secrets WHERE name = $1", "D").await?, vec![k2.key_id()]);

    let only_new = Store::connect(db.url(), Keyring::new(k2.clone())).await?;
    for (name, v) in secrets {
        assert_eq!(only_new.secret_value(name).await?.context("lost")?.expose(), v);
    }
    let only_old = Store::connect(db.url(), Keyring::new(k1.clone())).await?;
    let e = err(only_old.secret_value("A").await);
    assert!(matches!(&e, StoreError::UnknownKeyId(id) if *id == k2.key_id()), "{e:?}");

    // A rotation that cannot open some secret fails as a whole and keeps the keyring.
    let k3 = MasterKey::generate()?;
    let e = err(only_old.rotate_master_key(k3).await);
    assert!(matches!(e, StoreError::UnknownKeyId(_)), "{e:?}");
    assert_eq!(only_old.keyring().primary_id(), k1.key_id());
    assert_eq!(db.raw_strings("SELECT key_id FROM secrets WHERE name = $1", "A").await?, vec![k2.key_id()]);
    for s in [only_new, only_old, store] {
        s.close().await;
    }
    Ok(())
}

async fn tokens_insert_list_paginate(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let mut inserted = Vec::new();
    for n in 1..=7u8 {
        let mut t = token(n, if n == 1 { Role::Admin } else { Role::Invoker }, None);
        if n == 2 {
            t.providers = Some(vec!["prod-openai".into(), "prod-anthropic".into()]);
            t.agent = Some("ci-bot".into());
            t.user = None;
            t.expires_at_ms = Some(99_999);
        }
        store.insert_token(&t).await?;
        inserted.push(t);
    }
    inserted.sort_by(|a, b| a.id.cmp(&b.id));
    for t in &inserted {
        assert_eq!(store.get_token(&t.id).await?.as_ref(), Some(t), "round trip");
    }
    assert!(store.get_token("missing").await?.is_none());

    let mut dup_id = token(50, Role::Reader, None);
    dup_id.id = inserted[0].id.clone();
    let e = err(store.insert_token(&dup_id).await);
    assert!(matches!(&e, StoreError::AlreadyExists { what: "token", name } if **name == *dup_id.id), "{e:?}");
    let mut dup_hash = token(51, Role::Reader, None);
    dup_hash.hash = inserted[3].hash;
    let e = err(store.insert_token(&dup_hash).await);
    assert!(matches!(e, StoreError::AlreadyExists { what: "token", .. }), "{e:?}");
    assert!(store.get_token(&dup_hash.id).await?.is_none());

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_tokens(&PageQuery { after: after.clone(), limit: 3 }).await?;
        seen.extend(page.items);
        after = page.next_after;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(seen, inserted, "all tokens, once each, in id order");

    let victim = inserted.iter().find(|t| t.role != Role::Admin).context("no invoker")?;
    store.revoke_token(&victim.id, 10_000).await?;
    let live = store.all_tokens().await?;
    assert_eq!(live.len(), 6);
    assert!(live.iter().all(|t| t.id != victim.id), "all_tokens skips revoked");
    let listed = store.list_tokens(&PageQuery { after: None, limit: 0 }).await?;
    assert_eq!(listed.items.len(), 7, "list_tokens keeps revoked");
    store.close().await;
    Ok(())
}

async fn revoke_protects_last_admin(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let now = 1_000_000;
    let admin = token(1, Role::Admin, None);
    let expired_admin = token(2, Role::Admin, Some(now - 1));
    let at_now_admin = token(3, Role::Admin, Some(now)); // expires exactly now: not usable
    let writer = token(4, Role::Writer, None);
    for t in [&admin, &expired_admin, &at_now_admin, &writer] {
        store.insert_token(t).await?;
    }
    let e = err(store.revoke_token(&admin.id, now).await);
    assert!(matches!(e, StoreError::LastAdmin), "expired admins do not count: {e:?}");
    assert!(store.get_token(&admin.id).await?.context("gone")?.revoked_at_ms.is_none());

    let revoked = store.revoke_token(&writer.id, now).await?;
    assert_eq!(revoked.revoked_at_ms, Some(now));
    let again = store.revoke_token(&writer.id, now + 50).await?;
    assert_eq!(again.revoked_at_ms, Some(now), "idempotent: first revocation time kept");
    assert_eq!(store.revoke_token(&expired_admin.id, now).await?.revoked_at_ms, Some(now), "expired admin may go");

    // An admin that expires, or one scoped to some providers, cannot stand in for the last
    // lasting one: revoking it would leave, in time or at once, no token that administers
    // everything.
    let second = token(5, Role::Admin, Some(now + 10_000));
    let scoped = TokenRecord { providers: Some(vec!["team-a".into()]), ..token(6, Role::Admin, None) };
    store.insert_token(&second).await?;
    store.insert_token(&scoped).await?;
    let e = err(store.revoke_token(&admin.id, now).await);
    assert!(matches!(e, StoreError::LastAdmin), "{e:?}");
    assert_eq!(e.to_string(), "cannot revoke the last lasting admin token (unscoped, without an expiry)");
    // They themselves may go while a lasting one stays.
    assert_eq!(store.revoke_token(&second.id, now).await?.revoked_at_ms, Some(now));
    assert_eq!(store.revoke_token(&scoped.id, now).await?.revoked_at_ms, Some(now));
    let third = token(7, Role::Admin, None);
    store.insert_token(&third).await?;
    store.revoke_token(&admin.id, now).await?;
    let e = err(store.revoke_token(&third.id, now).await);
    assert!(matches!(e, StoreError::LastAdmin), "{e:?}");
    // An admin that has expired locks nobody out any more than it is: it may always go.
    let gone = token(8, Role::Admin, Some(now + 5));
    store.insert_token(&gone).await?;
    assert_eq!(store.revoke_token(&gone.id, now + 5).await?.revoked_at_ms, Some(now + 5));

    let missing = err(store.revoke_token("no-such-id", now).await);
    assert!(matches!(&missing, StoreError::NotFound { what: "token", name } if name == "no-such-id"), "{missing:?}");
    store.close().await;
    Ok(())
}

async fn bootstrap_token_only_on_empty_table(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let first = token(1, Role::Admin, None);
    let v0 = store.config_version().await?;
    assert!(store.insert_bootstrap_token(&first).await?);
    let v1 = store.config_version().await?;
    assert!(v1 > v0);
    let second = token(2, Role::Admin, None);
    assert!(!store.insert_bootstrap_token(&second).await?);
    assert_eq!(store.config_version().await?, v1, "no insert, no bump");
    assert!(store.get_token(&second.id).await?.is_none());
    assert_eq!(store.get_token(&first.id).await?.as_ref(), Some(&first));

    // Revoked tokens still count: bootstrap is for a never-used table only.
    let other = Store::connect(db.url(), new_keyring()?).await?;
    assert!(!other.insert_bootstrap_token(&token(3, Role::Admin, None)).await?);
    assert_eq!(store.all_tokens().await?.len(), 1);
    other.close().await;
    store.close().await;
    Ok(())
}

async fn config_version_bumps_on_every_write(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let mut last = store.config_version().await?;
    macro_rules! bumps {
        ($what:literal, $call:expr) => {{
            let out = $call;
            let v = store.config_version().await?;
            assert!(v > last, "{} must bump config_version ({} -> {})", $what, last, v);
            last = v;
            out
        }};
    }
    macro_rules! no_bump {
        ($what:literal, $call:expr) => {{
            let out = $call;
            assert_eq!(store.config_version().await?, last, "failed {} must not bump", $what);
            out
        }};
    }
    bumps!("put_secret (create)", store.put_secret("K", &secret("v"), 1).await?);
    bumps!("put_secret (replace)", store.put_secret("K", &secret("w"), 2).await?);
    bumps!(
        "insert_provider",
        store.insert_provider(&with_ref(provider("p", ProviderType::Openai, "P", true), "f", "K"), true, None).await?
    );
    bumps!(
        "update_provider",
        store.update_provider(&provider("p", ProviderType::Openai, "P2", true), true, None).await?
    );
    no_bump!(
        "insert_provider",
        err(store.insert_provider(&provider("p", ProviderType::Openai, "P", true), false, None).await)
    );
    no_bump!(
        "update_provider",
        err(store.update_provider(&provider("q", ProviderType::Openai, "Q", true), false, None).await)
    );
    bumps!("delete_provider", store.delete_provider("p").await?);
    bumps!("rotate_master_key", store.rotate_master_key(MasterKey::generate()?).await?);
    bumps!("delete_secret", store.delete_secret("K").await?);
    no_bump!("delete_secret", err(store.delete_secret("K").await));
    let admin = token(1, Role::Admin, None);
    bumps!("insert_bootstrap_token", store.insert_bootstrap_token(&admin).await?);
    let reader = token(2, Role::Reader, None);
    bumps!("insert_token", store.insert_token(&reader).await?);
    no_bump!("insert_token", err(store.insert_token(&reader).await));
    bumps!("revoke_token", store.revoke_token(&reader.id, 5).await?);
    no_bump!("revoke_token (already revoked)", store.revoke_token(&reader.id, 6).await?);
    no_bump!("revoke_token (last admin)", err(store.revoke_token(&admin.id, 6).await));
    assert!(last >= 10);
    store.close().await;
    Ok(())
}

/// Every config write names what it changed in the change log, at the version it bumped to;
/// failed writes leave no row; a version without rows (a write by a binary that predates the
/// log) or a kind this binary does not know makes `changes_between` answer `None`.
async fn config_changes_name_each_write(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let mut last = store.config_version().await?;
    macro_rules! changes {
        ($call:expr, [$($kind:ident $name:expr),*]) => {{
            let out = $call;
            let v = store.config_version().await?;
            let want: Vec<Change> = vec![$(Change::new(ConfigKind::$kind, $name)),*];
            assert_eq!(store.changes_between(last, v).await?, Some(want), "{}", stringify!($call));
            last = v;
            out
        }};
    }
    let start = last;
    changes!(store.put_secret("K", &secret("v"), 1).await?, [Secret "K"]);
    changes!(store.bind_secret_host("K", "api.openai.com", false).await?, [Secret "K"]);
    changes!(
        store.insert_provider(&with_ref(provider("p", ProviderType::Openai, "P", true), "f", "K"), true, None).await?,
        [Provider "p"]
    );
    changes!(err(store.insert_provider(&provider("p", ProviderType::Openai, "P", true), false, None).await), []);
    changes!(store.update_provider(&provider("p", ProviderType::Openai, "P2", true), true, None).await?, [Provider "p"]);
    // A save that binds its secret names the secret too, only when the binding changed.
    let to = |host| Some(HostBinding { secret: "K", host, add_if_other: true });
    changes!(
        store.update_provider(&provider("p", ProviderType::Openai, "P3", true), true, to("api.openai.com")).await?,
        [Provider "p"]
    );
    changes!(
        store.update_provider(&provider("p", ProviderType::Openai, "P4", true), true, to("eu.openai.com")).await?,
        [Provider "p", Secret "K"]
    );
    changes!(store.delete_provider("p").await?, [Provider "p"]);
    let admin = token(1, Role::Admin, None);
    changes!(store.insert_bootstrap_token(&admin).await?, [Token & *admin.id]);
    let reader = token(2, Role::Reader, None);
    changes!(store.insert_token(&reader).await?, [Token & *reader.id]);
    changes!(store.revoke_token(&reader.id, 5).await?, [Token & *reader.id]);
    changes!(store.sign_out_session("mac-1", 10_000, 5).await?, [Session "signed-out"]);
    changes!(store.rotate_master_key(MasterKey::generate()?).await?, [Secret tollgate_store::ALL_NAMES]);
    let wanted =
        std::collections::HashMap::from([("K2".to_string(), std::collections::BTreeSet::from(["h".to_string()]))]);
    changes!(store.backfill_secret_bindings(&wanted).await?, [Secret "K2"]);
    // Several versions at once: each resource once, in order of first change.
    let all = store.changes_between(start, last).await?.unwrap_or_default();
    assert_eq!(all.first(), Some(&Change::new(ConfigKind::Secret, "K")));
    assert_eq!(all.iter().filter(|c| **c == Change::new(ConfigKind::Provider, "p")).count(), 1);
    assert_eq!(all.len(), 7, "{all:?}");

    // A write by a binary without the change log: the version moves, no row says what changed.
    raw_execute(&db, "UPDATE config_version SET version = version + 1 WHERE id = 1").await?;
    let v = store.config_version().await?;
    assert_eq!(store.changes_between(last, v).await?, None, "a version without rows means reload all");
    // A kind from a newer binary: unknown here, so reload all too.
    store.put_secret("K3", &secret("v"), 1).await?;
    raw_execute(&db, "UPDATE config_changes SET kind = 'budget' WHERE name = 'K3'").await?;
    let w = store.config_version().await?;
    assert_eq!(store.changes_between(v, w).await?, None, "an unknown kind means reload all");
    assert_eq!(store.changes_between(w, w).await?, Some(Vec::new()));
    store.close().await;
    Ok(())
}

/// Runs one statement on a connection of its own.
async fn raw_execute(db: &TestDb, sql: &'static str) -> anyhow::Result<()> {
    use tollgate_testkit::db::sqlx::{self, Connection as _};
    if db.is_postgres() {
        let mut c = sqlx::postgres::PgConnection::connect(db.url()).await?;
        sqlx::query(sql).execute(&mut c).await?;
        c.close().await?;
    } else {
        let mut c = sqlx::sqlite::SqliteConnection::connect(db.url()).await?;
        sqlx::query(sql).execute(&mut c).await?;
        c.close().await?;
    }
    Ok(())
}

/// On PostgreSQL a committed config write notifies every listener with its version, a
/// rolled-back one does not, and a listener whose connection is cut says so (`Reconnected`,
/// already listening again) instead of going quiet. On SQLite there is nothing to listen to.
async fn config_notifications_follow_commits(db: TestDb) -> anyhow::Result<()> {
    let store = open(&db).await?;
    let Some(mut listener) = store.listen_config().await? else {
        assert!(!db.is_postgres(), "PostgreSQL must offer a listener");
        return Ok(());
    };
    macro_rules! next {
        ($l:expr) => {
            tokio::time::timeout(std::time::Duration::from_secs(5), $l.next()).await
        };
    }
    // A failed write first (rolled back: no notification), then a committed one: the first
    // notification received must be the committed write's version.
    err(store.update_provider(&provider("missing", ProviderType::Openai, "M", true), false, None).await);
    store.put_secret("K", &secret("v"), 1).await?;
    let v = store.config_version().await?;
    assert_eq!(next!(listener)??, Notice::Changed(v));
    // Another handle (another replica) writes: this listener hears it.
    let other = Store::connect(db.url(), new_keyring()?).await?;
    other.insert_token(&token(3, Role::Reader, None)).await?;
    assert_eq!(next!(listener)??, Notice::Changed(v + 1));
    // The listener's connection is cut by the server: it reports the loss, reconnected.
    raw_execute(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tollgate-config-listener'",
    )
    .await?;
    match next!(listener)? {
        Ok(Notice::Reconnected) => {}
        Err(_) => listener = store.listen_config().await?.context("a new listener")?,
        Ok(other) => panic!("expected the lost connection to be reported, got {other:?}"),
    }
    other.put_secret("K", &secret("w"), 2).await?;
    assert_eq!(next!(listener)??, Notice::Changed(v + 2), "listening again after the cut");
    other.close().await;
    store.close().await;
    Ok(())
}

async fn concurrent_writes_stay_consistent(db: TestDb) -> anyhow::Result<()> {
    // Two handles with their own pools, as two replicas would have.
    let keyring = new_keyring()?;
    let a = Store::connect(db.url(), keyring.clone()).await?;
    let b = Store::connect(db.url(), keyring).await?;
    let mut survivor: Option<String> = None;
    for round in 0..8u8 {
        // The last two active admins revoked at once: exactly one revocation may win.
        let (x, y) = (token(2 * round + 1, Role::Admin, None), token(2 * round + 2, Role::Admin, None));
        a.insert_token(&x).await?;
        a.insert_token(&y).await?;
        if let Some(previous) = survivor.take() {
            a.revoke_token(&previous, 1).await?;
        }
        let (rx, ry) = tokio::join!(a.revoke_token(&x.id, 1), b.revoke_token(&y.id, 1));
        match (&rx, &ry) {
            (Ok(_), Err(StoreError::LastAdmin)) => survivor = Some(y.id.to_string()),
            (Err(StoreError::LastAdmin), Ok(_)) => survivor = Some(x.id.to_string()),
            other => panic!("round {round}: exactly one revocation must win, got {other:?}"),
        }
        assert_eq!(a.all_tokens().await?.len(), 1, "one active admin left");

        // A provider save that checks its ref races a delete of that secret: either the
        // provider exists and so does the secret, or the secret is gone and so is the provider.
        let secret_name = format!("RACE_{round}");
        let provider_name = format!("race-{round}");
        a.put_secret(&secret_name, &secret("v"), 1).await?;
        let rec = with_ref(
            provider(&provider_name, ProviderType::Openai, "R", true),
            "openai_config.api_key_ref",
            &secret_name,
        );
        let (saved, deleted) = tokio::join!(a.insert_provider(&rec, true, None), b.delete_secret(&secret_name));
        let provider_exists = a.get_provider(&provider_name).await?.is_some();
        let secret_exists = a.get_secret_meta(&secret_name).await?.is_some();
        match (&saved, &deleted) {
            (Ok(None), Err(StoreError::SecretInUse { .. })) => {
                assert!(provider_exists && secret_exists)
            }
            (Err(StoreError::SecretNotFound { .. }), Ok(())) => {
                assert!(!provider_exists && !secret_exists)
            }
            other => panic!("round {round}: inconsistent outcome {other:?}"),
        }
    }
    a.close().await;
    b.close().await;
    Ok(())
}

// ---- sealing, no database ----

#[test]
fn seal_round_trip_and_redaction() -> anyhow::Result<()> {
    let key = MasterKey::generate()?;
    let id = key.key_id();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let keyring = Keyring::new(key.clone());
    let sealed = keyring.seal(b"secret/X", b"plain words")?;
    assert!(sealed.starts_with(&format!("v1:{id}:")));
    assert!(!sealed.contains("plain"));
    assert_ne!(sealed, keyring.seal(b"secret/X", b"plain words")?, "random nonce per seal");
    assert_eq!(keyring.open(b"secret/X", &sealed)?, b"plain words");
    assert!(matches!(keyring.open(b"secret/Y", &sealed), Err(StoreError::Crypto(_))), "AAD bound");

    // Tamper with the last base64 character of the body.
    let mut tampered = sealed.clone();
    let last = tampered.pop().context("empty")?;
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(keyring.open(b"secret/X", &tampered), Err(StoreError::Crypto(_))));
    assert!(matches!(keyring.open(b"secret/X", "garbage"), Err(StoreError::Crypto(_))));
    assert!(
        matches!(keyring.open(b"secret/X", "v1:0000000000000000:AAAA"), Err(StoreError::UnknownKeyId(k)) if k == "0000000000000000")
    );

    let b64 = key.to_base64();
    assert_eq!(MasterKey::from_base64(&format!("{b64}\n"))?.key_id(), id);
    assert!(MasterKey::from_bytes(&[0u8; 31]).is_err());
    assert!(MasterKey::from_base64("not base64!").is_err());
    for debug in [format!("{key:?}"), format!("{keyring:?}")] {
        assert!(debug.contains(&id), "{debug}");
        assert!(!debug.contains(&b64), "key bytes leaked in Debug: {debug}");
    }
    let rotated = Keyring::new(MasterKey::generate()?).with_old(key.clone()).with_old(key);
    assert_eq!(rotated.open(b"secret/X", &sealed)?, b"plain words", "old keys open");
    assert_eq!(format!("{rotated:?}").matches(&id).count(), 1, "duplicate old keys ignored");
    Ok(())
}

#[tokio::test]
async fn connect_rejects_unknown_scheme() {
    let Ok(keyring) = MasterKey::generate().map(Keyring::new) else { panic!("keygen") };
    let e = err(Store::connect("mysql://user:pw@host/db", keyring).await);
    assert!(matches!(&e, StoreError::InvalidUrl(m) if !m.contains("pw")), "{e:?}");
}

/// The usage store on this backend: a sibling SQLite file, or the PostgreSQL database itself.
async fn usage_store(db: &TestDb) -> anyhow::Result<tollgate_store::UsageStore> {
    if db.is_postgres() {
        Ok(tollgate_store::UsageStore::connect(db.url()).await?)
    } else {
        let url = db.url().replace("tollgate.db", "usage.sqlite");
        Ok(tollgate_store::UsageStore::connect(&url).await?)
    }
}

/// A batch round-trips every field exactly through its segment; filters and ordering work;
/// a replayed batch's stored events are found; reconnecting does not re-migrate.
async fn usage_events_batch_roundtrip(db: TestDb) -> anyhow::Result<()> {
    use tollgate_core::{Cost, RequestStatus, Usage};
    let store = usage_store(&db).await?;
    let events: Vec<tollgate_store::UsageEvent> = (0..450)
        .map(|i: i64| tollgate_store::UsageEvent {
            id: format!("ev-{i:04}"),
            ts_ms: 1_000 + i,
            provider: if i % 2 == 0 { "even".into() } else { "odd".into() },
            provider_type: ProviderType::Anthropic,
            model: (i % 3 != 0).then(|| format!("m-{i}")),
            endpoint: "/v1/messages".into(),
            user: Some("u@example.com".into()),
            agent: None,
            token_id: Some("tok".into()),
            status: if i % 5 == 0 { RequestStatus::ClientCancelled } else { RequestStatus::Success },
            http_status: Some(200),
            error_class: (i % 5 == 0).then(|| "client_cancelled".into()),
            streamed: i % 2 == 1,
            latency_ms: i * 3,
            ttft_ms: (i % 4 != 0).then_some(i),
            usage: Usage {
                input: i,
                output: i + 1,
                reasoning: i + 2,
                cached_input: i + 3,
                cache_write_5m: i + 4,
                cache_write_1h: i + 5,
                cache_write_unknown: i + 6,
            },
            cost: Cost {
                input: 1,
                output: 2,
                reasoning: 3,
                cached_input: 4,
                cache_write_5m: 5,
                cache_write_1h: 6,
                cache_write_unknown: 7,
                total: 28,
            },
            catalog_version: Some("2026-11-01".into()),
            priced_by_override: i % 7 == 0,
            unpriced: i % 11 == 0,
            request_id: format!("req-{i}"),
            conversation_id: (i % 2 == 0).then(|| "conv".into()),
            transcript: None,
        })
        .collect();
    store.insert_events(&events).await?;
    assert_eq!(store.count_events().await?, 450);
    let all = store.list_events(&tollgate_store::UsageQuery::default()).await?;
    assert_eq!(all, events, "every column round-trips, oldest first");
    let odd = store
        .list_events(&tollgate_store::UsageQuery {
            provider: Some("odd".into()),
            since_ms: Some(1_400),
            limit: Some(10),
        })
        .await?;
    assert_eq!(odd.iter().map(|e| e.ts_ms).collect::<Vec<_>>(), (1_401..1_420).step_by(2).collect::<Vec<_>>());
    // What a replay of the spill file checks: which events of a batch are stored already.
    let mut replayed = events[..3].to_vec();
    replayed[0].id = "fresh-1".into();
    let stored = store.existing_ids(&replayed).await?;
    assert_eq!(stored, events[1..3].iter().map(|e| e.id.clone()).collect());
    store.close().await;
    let again = usage_store(&db).await?;
    assert_eq!(again.count_events().await?, 450);
    again.close().await;
    Ok(())
}

/// Conversations come from two places: the rows of named conversations, and the events of
/// lone requests (no conversation id, no row). Events stored before that change named their own
/// id and have a row; each conversation is listed once, in one order, across pages and filters.
async fn conversations_named_lone_and_legacy(db: TestDb) -> anyhow::Result<()> {
    use tollgate_core::RequestStatus;
    use tollgate_store::ConversationFilter;
    let store = usage_store(&db).await?;
    let mut named_a = priced_event(1, 1_000, "p1", Some("u@x"));
    named_a.conversation_id = Some("named".into());
    let mut named_b = priced_event(2, 5_000, "p2", Some("u@x"));
    named_b.conversation_id = Some("named".into());
    let mut legacy = priced_event(3, 2_000, "p1", None);
    legacy.conversation_id = Some(legacy.id.clone());
    let lone = priced_event(5, 3_000, "p2", None);
    let mut lone_failed = priced_event(8, 4_000, "p1", Some("u@x"));
    lone_failed.status = RequestStatus::UpstreamError;
    store.insert_events(&[named_a, named_b, legacy.clone(), lone.clone(), lone_failed.clone()]).await?;

    let ids = |rows: &[tollgate_store::ConversationRow]| rows.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    let all = store.list_conversations(&ConversationFilter::default(), None, 10).await?;
    assert_eq!(ids(&all), vec!["named".to_string(), lone_failed.id.clone(), lone.id.clone(), legacy.id.clone()]);
    let lone_row = &all[2];
    assert_eq!(
        (lone_row.started_at_ms, lone_row.last_at_ms, lone_row.turns, lone_row.failed_turns),
        (3_000, 3_000, 1, 0)
    );
    assert_eq!((lone_row.tokens, lone_row.cost, lone_row.providers.clone()), (17, 151, vec!["p2".to_string()]));
    assert_eq!((all[0].turns, all[0].providers.clone()), (2, vec!["p1".to_string(), "p2".to_string()]));
    assert_eq!(all[1].failed_turns, 1);

    // Pages of one, after each page's last key: the same list.
    let mut paged = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = store
            .list_conversations(&ConversationFilter::default(), after.as_ref().map(|(t, i)| (*t, i.as_str())), 1)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.last_at_ms, last.id.clone()));
        paged.extend(ids(&page));
    }
    assert_eq!(paged, ids(&all));

    let f = |provider: Option<&str>, failed: Option<bool>, user: Option<&str>| ConversationFilter {
        provider: provider.map(str::to_string),
        failed,
        user: user.map(str::to_string),
        ..ConversationFilter::default()
    };
    let p1 = store.list_conversations(&f(Some("p1"), None, None), None, 10).await?;
    assert_eq!(ids(&p1), vec!["named".to_string(), lone_failed.id.clone(), legacy.id.clone()]);
    let failed = store.list_conversations(&f(None, Some(true), None), None, 10).await?;
    assert_eq!(ids(&failed), vec![lone_failed.id.clone()]);
    let ok = store.list_conversations(&f(None, Some(false), None), None, 10).await?;
    assert_eq!(ids(&ok), vec!["named".to_string(), lone.id.clone(), legacy.id.clone()]);
    let unattributed = store.list_conversations(&f(None, None, Some("")), None, 10).await?;
    assert_eq!(ids(&unattributed), vec![lone.id.clone(), legacy.id.clone()]);
    let window = ConversationFilter { start_ms: Some(2_500), end_ms: Some(4_500), ..ConversationFilter::default() };
    assert_eq!(ids(&store.list_conversations(&window, None, 10).await?), vec![lone_failed.id.clone(), lone.id.clone()]);
    let scoped = ConversationFilter { scope: Some(vec!["p2".into()]), ..ConversationFilter::default() };
    assert_eq!(ids(&store.list_conversations(&scoped, None, 10).await?), vec!["named".to_string(), lone.id.clone()]);

    for id in ["named", lone.id.as_str(), legacy.id.as_str()] {
        let row = store.get_conversation(id).await?.with_context(|| format!("{id} not found"))?;
        assert_eq!(Some(&row), all.iter().find(|c| c.id == id));
    }
    assert!(store.get_conversation("nope").await?.is_none());
    assert_eq!(store.conversation_turns(&lone.id, 10).await?, vec![lone.clone()]);
    assert_eq!(store.conversation_turns(&legacy.id, 10).await?, vec![legacy.clone()]);
    store.close().await;
    Ok(())
}

/// The request log over many segments (hundreds, of mixed terms, failures in segments of
/// their own): for each filter, alone and combined, paging through it a few events at a time
/// returns exactly the events a filter over every event keeps, newest first, each once; the
/// oldest-first read (events since a time, by provider) likewise.
async fn request_log_pages_match_every_filter(db: TestDb) -> anyhow::Result<()> {
    use tollgate_core::RequestStatus;
    use tollgate_store::{RequestFilter, UsageEvent};
    let store = usage_store(&db).await?;
    let t0 = 1_767_225_600_000;
    let providers = ["p1", "p2", "p3"];
    let events: Vec<UsageEvent> = (0..1_800i64)
        .map(|i| {
            let mut e = priced_event(i, t0 + i * 20_000, providers[(i % 3) as usize], None);
            // a rare user: its segments are far apart, the providers' dense between them
            e.user =
                if i % 150 == 7 { Some("rare".into()) } else { (i % 7 != 0).then(|| format!("u{}", i % 4).into()) };
            e.agent = (i % 5 != 0).then(|| format!("a{}", i % 2).into());
            e.model = Some(format!("m{}", i % 6));
            e.status = match i {
                _ if i % 11 == 0 => RequestStatus::UpstreamError,
                _ if i % 13 == 0 => RequestStatus::ClientCancelled,
                _ => RequestStatus::Success,
            };
            e
        })
        .collect();
    for batch in events.chunks(45) {
        store.insert_events(batch).await?;
    }
    let keeps = |f: &RequestFilter, e: &UsageEvent| {
        let eq = |want: &Option<String>, have: Option<&str>| match want.as_deref() {
            None => true,
            Some("") => have.is_none(),
            Some(w) => have == Some(w),
        };
        f.provider.as_deref().is_none_or(|p| p == &*e.provider)
            && f.scope.as_ref().is_none_or(|s| s.iter().any(|p| **p == *e.provider))
            && eq(&f.model, e.model.as_deref())
            && eq(&f.user, e.user.as_deref())
            && eq(&f.agent, e.agent.as_deref())
            && f.status.is_none_or(|s| s == e.status)
            && (!f.failed || e.status != RequestStatus::Success)
            && f.start_ms.is_none_or(|s| e.ts_ms >= s)
            && f.end_ms.is_none_or(|x| e.ts_ms < x)
    };
    let s = |v: &str| Some(v.to_string());
    let filters = [
        RequestFilter::default(),
        RequestFilter { provider: s("p1"), ..RequestFilter::default() },
        RequestFilter { failed: true, ..RequestFilter::default() },
        RequestFilter { failed: true, provider: s("p2"), ..RequestFilter::default() },
        RequestFilter { failed: true, user: s("u1"), provider: s("p1"), ..RequestFilter::default() },
        RequestFilter { user: s("u2"), provider: s("p3"), ..RequestFilter::default() },
        RequestFilter { agent: s("a1"), model: s("m3"), ..RequestFilter::default() },
        RequestFilter { user: s(""), agent: s(""), ..RequestFilter::default() },
        RequestFilter { status: Some(RequestStatus::ClientCancelled), provider: s("p2"), ..RequestFilter::default() },
        RequestFilter { scope: Some(vec!["p1".into(), "p3".into()]), ..RequestFilter::default() },
        RequestFilter { scope: Some(vec!["p3".into()]), failed: true, user: s("u3"), ..RequestFilter::default() },
        RequestFilter {
            provider: s("p1"),
            failed: true,
            start_ms: Some(t0 + 5_000_000),
            end_ms: Some(t0 + 25_000_000),
            ..RequestFilter::default()
        },
        RequestFilter { start_ms: Some(t0 + 30_000_001), end_ms: Some(t0 + 30_100_000), ..RequestFilter::default() },
        RequestFilter { provider: s("none"), ..RequestFilter::default() },
        RequestFilter { user: s("u1"), model: s("m2"), ..RequestFilter::default() },
        RequestFilter { user: s("rare"), provider: s("p2"), ..RequestFilter::default() },
        RequestFilter { user: s("rare"), scope: Some(vec!["p1".into(), "p2".into()]), ..RequestFilter::default() },
    ];
    for f in &filters {
        let mut want: Vec<&UsageEvent> = events.iter().filter(|e| keeps(f, e)).collect();
        want.sort_by(|a, b| (b.ts_ms, &b.id).cmp(&(a.ts_ms, &a.id)));
        for limit in [9, 500] {
            let mut got: Vec<UsageEvent> = Vec::new();
            loop {
                let after = got.last().map(|e| (e.ts_ms, e.id.clone()));
                let page = store.list_requests(f, after.as_ref().map(|(t, i)| (*t, i.as_str())), limit).await?;
                assert!(page.len() <= limit as usize);
                let last = page.len() < limit as usize;
                got.extend(page);
                if last {
                    break;
                }
            }
            let got: Vec<&UsageEvent> = got.iter().collect();
            assert_eq!(got.len(), want.len(), "{f:?} in pages of {limit}");
            assert!(got == want, "{f:?} in pages of {limit}: the events differ");
        }
    }
    let since = t0 + 12_345_678;
    let p2: Vec<&UsageEvent> = events.iter().filter(|e| &*e.provider == "p2" && e.ts_ms >= since).take(40).collect();
    let got = store
        .list_events(&tollgate_store::UsageQuery { provider: s("p2"), since_ms: Some(since), limit: Some(40) })
        .await?;
    assert_eq!(got.iter().collect::<Vec<_>>(), p2, "oldest first from a time, by provider");
    store.close().await;
    Ok(())
}

fn priced_event(i: i64, ts_ms: i64, provider: &str, user: Option<&str>) -> tollgate_store::UsageEvent {
    use tollgate_core::{Cost, RequestStatus, Usage};
    tollgate_store::UsageEvent {
        // a UUIDv7 of the arrival time, as the proxy makes them (events are found by it)
        id: uuid::Builder::from_unix_timestamp_millis(
            ts_ms as u64,
            &[provider.len() as u8, provider.as_bytes()[provider.len() - 1], 0, 0, 0, 0, 0, 0, i as u8, (i >> 8) as u8],
        )
        .into_uuid()
        .to_string(),
        ts_ms,
        provider: provider.into(),
        provider_type: ProviderType::Openai,
        model: Some("gpt-5.4".into()),
        endpoint: "/chat/completions".into(),
        user: user.map(Into::into),
        agent: None,
        token_id: None,
        status: if i % 4 == 0 { RequestStatus::UpstreamError } else { RequestStatus::Success },
        http_status: Some(200),
        error_class: None,
        streamed: false,
        latency_ms: 1,
        ttft_ms: None,
        usage: Usage { input: 10, output: 5, cached_input: 2, ..Usage::default() },
        cost: Cost { input: 100, output: 50, cached_input: 1, total: 151, ..Cost::default() },
        catalog_version: Some("v".into()),
        priced_by_override: i % 3 == 0,
        unpriced: i % 5 == 0,
        request_id: format!("r{i}"),
        conversation_id: None,
        transcript: None,
    }
}

/// Each batch adds to its hourly rollups in the same transaction: rows are keyed by hour,
/// provider, type, model, user and agent; counters add up across batches; spending queries
/// group by bucket and dimension and respect filters.
async fn usage_rollups_follow_events(db: TestDb) -> anyhow::Result<()> {
    use tollgate_store::{DAY_MS, Dimension, HOUR_MS, SpendingFilter};
    let store = usage_store(&db).await?;
    let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a day and hour boundary
    // 10 events in hour 0 (5 for alice, 5 unattributed), 10 in hour 1, all provider "a";
    // 4 events in hour 25 (day 2) for provider "b".
    let mut batch1: Vec<_> =
        (0..10).map(|i| priced_event(i, t0 + i * 60_000, "a", (i % 2 == 0).then_some("alice@example.com"))).collect();
    batch1.extend((10..20).map(|i| priced_event(i, t0 + HOUR_MS + i, "a", None)));
    store.insert_events(&batch1).await?;
    let batch2: Vec<_> = (0..4).map(|i| priced_event(i, t0 + 25 * HOUR_MS + i, "b", None)).collect();
    store.insert_events(&batch2).await?;

    let rows = store.rollup_rows(t0, t0 + 2 * DAY_MS).await?;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let (k, v) = &rows[0];
    assert_eq!((k.bucket_start_ms, k.provider.as_str(), k.user.as_str()), (t0, "a", ""));
    assert_eq!((v.requests, v.tokens.input, v.cost.total), (5, 50, 755));
    let (k, v) = &rows[1];
    assert_eq!((k.user.as_str(), k.model.as_str(), k.provider_type), ("alice@example.com", "gpt-5.4", "openai"));
    // alice: i = 0,2,4,6,8 → failed (i%4==0): 0,4,8; unpriced (i%5==0): 0; override (i%3==0): 0,6
    assert_eq!((v.requests, v.failed_requests, v.unpriced_requests, v.override_requests), (5, 3, 1, 2));

    let all = SpendingFilter { start_ms: t0, end_ms: t0 + 2 * DAY_MS, ..SpendingFilter::default() };
    let total = store.spending(&all, None, None).await?;
    assert_eq!(total.len(), 1);
    assert_eq!(total[0].stats.requests, 24);
    assert_eq!(total[0].stats.cost.total, 24 * 151);
    assert_eq!(total[0].stats.tokens.cached_input, 48);
    let hourly = store.spending(&all, Some(Dimension::Provider), Some(HOUR_MS)).await?;
    let mut got: Vec<(i64, String, i64)> =
        hourly.iter().map(|r| ((r.bucket_start_ms - t0) / HOUR_MS, r.key.clone(), r.stats.requests)).collect();
    got.sort();
    assert_eq!(got, vec![(0, "a".into(), 10), (1, "a".into(), 10), (25, "b".into(), 4)]);
    let daily = store.spending(&all, None, Some(DAY_MS)).await?;
    let mut got: Vec<(i64, i64)> =
        daily.iter().map(|r| ((r.bucket_start_ms - t0) / DAY_MS, r.stats.requests)).collect();
    got.sort();
    assert_eq!(got, vec![(0, 20), (1, 4)]);
    let alice = SpendingFilter { user: Some("alice@example.com".into()), ..all.clone() };
    assert_eq!(store.spending(&alice, None, None).await?[0].stats.requests, 5);
    let unattributed = SpendingFilter { user: Some(String::new()), provider: Some("a".into()), ..all.clone() };
    assert_eq!(store.spending(&unattributed, None, None).await?[0].stats.requests, 15);
    let window = SpendingFilter { start_ms: t0 + HOUR_MS, end_ms: t0 + 2 * HOUR_MS, ..all.clone() };
    assert_eq!(store.spending(&window, None, None).await?[0].stats.requests, 10, "end is exclusive");
    let by_type = store.spending(&all, Some(Dimension::ProviderType), None).await?;
    assert_eq!(by_type.len(), 1);
    assert_eq!(by_type[0].key, "openai");
    let none = SpendingFilter { provider: Some("nope".into()), ..all };
    assert_eq!(store.spending(&none, None, None).await?[0].stats.requests, 0, "no rows sum to zero");
    store.close().await;
    Ok(())
}

/// A grouped series cut to its top N keys: the kept keys are the N largest by window total
/// (ties by key) with exactly their full rows, "other" per bucket is exactly what the cut keys
/// add up to, and kept + other equal the ungrouped total in every bucket — hourly and daily,
/// by user and by agent, over a window whose edges are not whole days.
async fn top_n_series_plus_other_equal_the_total(db: TestDb) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use tollgate_store::{DAY_MS, Dimension, HOUR_MS, RollupStats, SpendingFilter, SpendingRow};
    let store = usage_store(&db).await?;
    let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut events = Vec::new();
    for i in 0..600i64 {
        // 13 users (one unattributed), 5 agents, spread over 3 days; cost varies by user so the
        // ranking is not alphabetical, and users 3 and 4 tie (same events, same cost).
        let u = i % 13;
        let user = (u != 12).then(|| format!("user{:02}@example.com", u));
        let mut e = priced_event(i, t0 + (i * 7 * 60_000) % (3 * DAY_MS), "a", user.as_deref());
        let per = [900, 40, 700, 333, 333, 120, 15, 610, 77, 480, 260, 5, 150][u as usize];
        e.cost.input = per;
        e.cost.total = per + e.cost.output + e.cost.cached_input;
        e.agent = (i % 5 != 0).then(|| format!("agent-{}", i % 5).into());
        if i % 7 == 0 {
            e.provider = "b".into();
        }
        events.push(e);
    }
    store.insert_events(&events).await?;
    let f = SpendingFilter { start_ms: t0 + 5 * HOUR_MS, end_ms: t0 + 2 * DAY_MS + 7 * HOUR_MS, ..Default::default() };
    let by_bucket = |rows: &[SpendingRow]| {
        let mut m: BTreeMap<i64, RollupStats> = BTreeMap::new();
        for r in rows {
            m.entry(r.bucket_start_ms).or_default().add(&r.stats);
        }
        m
    };
    for (dim, width, limit) in [
        (Dimension::User, HOUR_MS, 5), // cuts between the two tied users
        (Dimension::User, DAY_MS, 3),
        (Dimension::Agent, HOUR_MS, 2),
        (Dimension::User, HOUR_MS, 4),
    ] {
        let what = format!("{dim:?} / {width} / top {limit}");
        let full = store.spending(&f, Some(dim), Some(width)).await?;
        let mut totals: BTreeMap<String, RollupStats> = BTreeMap::new();
        for r in &full {
            totals.entry(r.key.clone()).or_default().add(&r.stats);
        }
        let mut ranked: Vec<(String, RollupStats)> = totals.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cost.total.cmp(&a.1.cost.total).then_with(|| a.0.cmp(&b.0)));
        assert!(ranked.len() > limit, "{what}: the case must cut keys");
        if (dim, width, limit) == (Dimension::User, HOUR_MS, 5) {
            assert_eq!(ranked[4].1.cost.total, ranked[5].1.cost.total, "users 3 and 4 tie at the cut");
            assert_eq!((ranked[4].0.as_str(), ranked[5].0.as_str()), ("user03@example.com", "user04@example.com"));
        }
        let kept: Vec<String> = ranked[..limit].iter().map(|(k, _)| k.clone()).collect();

        let top = store.spending_top(&f, dim, width, limit).await?;
        assert_eq!(top.keys, ranked[..limit].to_vec(), "{what}: the largest keys, ties by key");
        assert_eq!(top.truncated_key_count, ranked.len() - limit, "{what}");
        let full_kept: Vec<SpendingRow> = full.iter().filter(|r| kept.contains(&r.key)).cloned().collect();
        assert_eq!(top.rows, full_kept, "{what}: the kept keys' rows are exactly the full query's");
        let cut: Vec<SpendingRow> = full.iter().filter(|r| !kept.contains(&r.key)).cloned().collect();
        let mut other = by_bucket(&top.other);
        other.retain(|_, s| *s != RollupStats::default());
        assert_eq!(other, by_bucket(&cut), "{what}: other is what the cut keys add up to, bucket by bucket");
        assert!(top.other.iter().all(|r| r.key.is_empty()));

        let mut sum = by_bucket(&top.rows);
        for r in &top.other {
            sum.entry(r.bucket_start_ms).or_default().add(&r.stats);
        }
        let total = by_bucket(&store.spending(&f, None, Some(width)).await?);
        assert_eq!(sum, total, "{what}: top N + other = the ungrouped total in every bucket");
        assert!(total.len() > 1, "{what}: several buckets");

        let all = store.spending_top(&f, dim, width, ranked.len()).await?;
        assert_eq!((all.rows, all.other.len(), all.truncated_key_count), (full, 0, 0), "{what}: nothing cut");
    }
    // A filter narrows both the ranking and the total.
    let only_b = SpendingFilter { provider: Some("b".into()), ..f.clone() };
    let top = store.spending_top(&only_b, Dimension::User, HOUR_MS, 2).await?;
    let mut sum = by_bucket(&top.rows);
    for r in &top.other {
        sum.entry(r.bucket_start_ms).or_default().add(&r.stats);
    }
    assert_eq!(sum, by_bucket(&store.spending(&only_b, None, Some(HOUR_MS)).await?));
    assert!(top.truncated_key_count > 0);
    store.close().await;
    Ok(())
}

/// Retention deletes raw events in chunks; the rollups reports read stay.
async fn usage_retention_keeps_rollups(db: TestDb) -> anyhow::Result<()> {
    use tollgate_store::{HOUR_MS, SpendingFilter};
    let store = usage_store(&db).await?;
    let t0 = 1_767_225_600_000;
    let events: Vec<_> = (0..25).map(|i| priced_event(i, t0 + i * HOUR_MS, "a", None)).collect();
    store.insert_events(&events).await?;
    let deleted = store.delete_events_before(t0 + 20 * HOUR_MS, 7).await?;
    assert_eq!(deleted, 20, "events of hours 0..20 go, in chunks of 7");
    assert_eq!(store.count_events().await?, 5);
    let all = SpendingFilter { start_ms: t0, end_ms: t0 + 30 * HOUR_MS, ..SpendingFilter::default() };
    assert_eq!(store.spending(&all, None, None).await?[0].stats.requests, 25, "rollups are kept");
    assert_eq!(store.delete_events_before(t0 + 20 * HOUR_MS, 7).await?, 0);
    // Ten events a second apart share a segment: a cut inside it keeps the newer ones.
    let close: Vec<_> = (0..10).map(|i| priced_event(100 + i, t0 + 22 * HOUR_MS + i * 1_000, "b", None)).collect();
    store.insert_events(&close).await?;
    assert_eq!(store.delete_events_before(t0 + 22 * HOUR_MS + 5_500, 7).await?, 6 + 3, "and hours 20 to 22");
    let left =
        store.list_events(&tollgate_store::UsageQuery { provider: Some("b".into()), ..Default::default() }).await?;
    assert_eq!(left, close[6..].to_vec());
    assert_eq!(store.count_events().await?, 2 + 4);
    for e in &close {
        assert_eq!(store.get_event(&e.id).await?.is_some(), e.ts_ms >= t0 + 22 * HOUR_MS + 5_500, "{}", e.id);
    }
    store.close().await;
    Ok(())
}

/// Events stored before segments (rows of `usage_events`) move into segments when the store
/// opens, every field kept, and are found as before (ids are UUIDv7s of their arrival time);
/// the rows are gone.
async fn legacy_events_move_into_segments(db: TestDb) -> anyhow::Result<()> {
    use tollgate_testkit::db::sqlx::{self, Connection as _};
    let store = usage_store(&db).await?;
    store.close().await;
    let url = if db.is_postgres() { db.url().to_string() } else { db.url().replace("tollgate.db", "usage.sqlite") };
    const INSERT: &str = "INSERT INTO usage_events (id, ts, provider, provider_type, model, endpoint, user_email, \
         agent, token_id, status, http_status, error_class, streamed, latency_ms, ttft_ms, tokens_input, tokens_output, \
         cost_total, catalog_version, priced_by_override, unpriced, request_id, conversation_id) VALUES \
         ('019b76da-a800-7000-8000-000000000001', 1767225600000, 'p', 'anthropic', 'claude-x', '/v1/messages', \
          'u@x', NULL, 'tok', 'success', 200, NULL, TRUE, 900, 120, 10, 20, 3300, 'v1', FALSE, FALSE, \
          '019b76da-a800-7000-8000-000000000001', 'conv-1'), \
         ('019b76da-abe8-7000-8000-000000000002', 1767225601000, 'p', 'anthropic', NULL, '/v1/messages', \
          NULL, 'bot', NULL, 'upstream_error', 529, 'upstream_5xx', FALSE, 40, NULL, 0, 0, 0, NULL, FALSE, TRUE, \
          'req-2', NULL)";
    let count = "SELECT COUNT(*) FROM usage_events";
    let legacy_rows = if db.is_postgres() {
        let mut c = sqlx::postgres::PgConnection::connect(&url).await?;
        sqlx::query(INSERT).execute(&mut c).await?;
        let again = tollgate_store::UsageStore::connect(&url).await?;
        let n: i64 = sqlx::query_scalar(count).fetch_one(&mut c).await?;
        c.close().await?;
        (again, n)
    } else {
        let mut c = sqlx::sqlite::SqliteConnection::connect(&url).await?;
        sqlx::query(INSERT).execute(&mut c).await?;
        c.close().await?;
        let again = tollgate_store::UsageStore::connect(&url).await?;
        let mut c = sqlx::sqlite::SqliteConnection::connect(&url).await?;
        let n: i64 = sqlx::query_scalar(count).fetch_one(&mut c).await?;
        c.close().await?;
        (again, n)
    };
    let (store, rows) = legacy_rows;
    assert_eq!(rows, 0, "the rows moved");
    assert_eq!(store.count_events().await?, 2);
    let all = store.list_events(&tollgate_store::UsageQuery::default()).await?;
    assert_eq!(all.len(), 2);
    let (a, b) = (&all[0], &all[1]);
    assert_eq!(
        (a.model.as_deref(), a.user.as_deref(), a.streamed, a.ttft_ms, a.usage.output, a.cost.total),
        (Some("claude-x"), Some("u@x"), true, Some(120), 20, 3300)
    );
    assert_eq!((a.conversation_id.as_deref(), a.request_id.as_str()), (Some("conv-1"), a.id.as_str()));
    assert_eq!(
        (b.status, b.http_status, b.error_class.as_deref()),
        (tollgate_core::RequestStatus::UpstreamError, Some(529), Some("upstream_5xx"))
    );
    assert_eq!((b.agent.as_deref(), b.request_id.as_str(), b.unpriced), (Some("bot"), "req-2", true));
    assert_eq!(store.get_event(&b.id).await?.as_ref(), Some(b));
    assert_eq!(store.conversation_turns("conv-1", 10).await?, vec![a.clone()]);
    assert_eq!(store.upgrade().await?, 0, "nothing left to move");
    store.close().await;
    Ok(())
}

/// Reports read the smallest rollup table that answers them; every path gives the same sums:
/// whole days come from the daily tables, edge hours from the hourly ones, user and agent
/// filters or groupings from the tables that keep them.
async fn usage_rollup_tables_agree(db: TestDb) -> anyhow::Result<()> {
    use tollgate_store::{DAY_MS, Dimension, HOUR_MS, SpendingFilter};
    let store = usage_store(&db).await?;
    let t0 = 1_767_225_600_000; // a UTC midnight
    // 5 days, an event every 5 hours (25 events), alternating users and providers
    let events: Vec<_> = (0..25)
        .map(|i| {
            let mut e = priced_event(i, t0 + i * 5 * HOUR_MS + 7, if i % 2 == 0 { "a" } else { "b" }, None);
            e.user = Some(format!("u{}", i % 3).into());
            e
        })
        .collect();
    store.insert_events(&events).await?;
    // a window with ragged edges: 03:00 on day 0 to 21:00 on day 4
    let f = SpendingFilter { start_ms: t0 + 3 * HOUR_MS, end_ms: t0 + 4 * DAY_MS + 21 * HOUR_MS, ..Default::default() };
    let inside: Vec<_> = events.iter().filter(|e| e.ts_ms >= f.start_ms && e.ts_ms < f.end_ms).collect();
    let want_cost: i64 = inside.iter().map(|e| e.cost.total).sum();
    let total = store.spending(&f, None, None).await?;
    assert_eq!(total.len(), 1);
    assert_eq!((total[0].stats.requests, total[0].stats.cost.total), (inside.len() as i64, want_cost));
    let hourly: i64 = store.spending(&f, None, Some(HOUR_MS)).await?.iter().map(|r| r.stats.requests).sum();
    assert_eq!(hourly, inside.len() as i64);
    let daily = store.spending(&f, None, Some(DAY_MS)).await?;
    assert_eq!(daily.len(), 5, "{daily:#?}");
    for r in &daily {
        let want = inside.iter().filter(|e| e.ts_ms - e.ts_ms % DAY_MS == r.bucket_start_ms).count() as i64;
        assert_eq!(r.stats.requests, want, "day {}", (r.bucket_start_ms - t0) / DAY_MS);
    }
    let by_user = store.spending(&f, Some(Dimension::User), Some(DAY_MS)).await?;
    assert_eq!(by_user.iter().map(|r| r.stats.requests).sum::<i64>(), inside.len() as i64);
    let u1 = SpendingFilter { user: Some("u1".into()), ..f.clone() };
    let want_u1 = inside.iter().filter(|e| e.user.as_deref() == Some("u1")).count() as i64;
    assert_eq!(store.spending(&u1, None, None).await?[0].stats.requests, want_u1);
    let by_provider = store.spending(&f, Some(Dimension::Provider), None).await?;
    let a = inside.iter().filter(|e| &*e.provider == "a").count() as i64;
    assert_eq!(by_provider.iter().find(|r| r.key == "a").map(|r| r.stats.requests), Some(a));
    store.close().await;
    Ok(())
}

/// The hourly rollups of one principal alone (per hour and user, per hour and agent) give
/// exactly what the full hourly table gives for every report they answer (user or agent
/// grouping or filter, hourly and daily buckets, the ranked top-N series), and a database
/// from before them is backfilled from the full hourly table when the store opens.
async fn principal_rollups_agree_and_backfill(db: TestDb) -> anyhow::Result<()> {
    use tollgate_store::{DAY_MS, Dimension, HOUR_MS, SpendingFilter, SpendingRow};
    use tollgate_testkit::db::sqlx::{self, Connection as _};
    let t0 = 1_767_225_600_000; // a UTC midnight
    // 3 days, an event every 47 minutes across 4 users (one absent), 3 agents (one absent) and
    // 2 providers: several rows of the full table per hour and principal
    let events: Vec<_> = (0..92)
        .map(|i| {
            let user = ["u0", "u1", "u2", ""][i as usize % 4];
            let mut e = priced_event(i, t0 + i * 47 * 60_000 + 11, ["a", "b"][i as usize % 2], Some(user));
            e.user = Some(user.into()).filter(|u: &std::sync::Arc<str>| !u.is_empty());
            e.agent = [Some("ag1"), Some("ag2"), None][i as usize % 3].map(Into::into);
            e.cost.total = 100 + i * 7;
            e
        })
        .collect();
    let store = usage_store(&db).await?;
    store.insert_events(&events).await?;
    // A window with ragged edges; provider_type = "openai" (every event's) forces the full
    // tables without changing what matches.
    let f = SpendingFilter { start_ms: t0 + 5 * HOUR_MS, end_ms: t0 + 2 * DAY_MS + 19 * HOUR_MS, ..Default::default() };
    let full = |f: &SpendingFilter| SpendingFilter { provider_type: Some("openai".into()), ..f.clone() };
    let reports = |store: tollgate_store::UsageStore| {
        let f = f.clone();
        async move {
            let mut got: Vec<(String, Vec<SpendingRow>, Vec<SpendingRow>)> = Vec::new();
            for (dim, filter) in [
                (Some(Dimension::User), SpendingFilter::default()),
                (Some(Dimension::Agent), SpendingFilter::default()),
                (None, SpendingFilter { user: Some("u1".into()), ..SpendingFilter::default() }),
                (None, SpendingFilter { user: Some(String::new()), ..SpendingFilter::default() }),
                (None, SpendingFilter { agent: Some("ag2".into()), ..SpendingFilter::default() }),
                (Some(Dimension::User), SpendingFilter { agent: Some("ag1".into()), ..SpendingFilter::default() }),
            ] {
                let f = SpendingFilter { start_ms: f.start_ms, end_ms: f.end_ms, ..filter };
                for bucket in [Some(HOUR_MS), Some(DAY_MS), None] {
                    let fast = store.spending(&f, dim, bucket).await?;
                    let slow = store.spending(&full(&f), dim, bucket).await?;
                    got.push((format!("{dim:?} {f:?} {bucket:?}"), fast, slow));
                }
            }
            let top = store.spending_top(&f, Dimension::User, HOUR_MS, 2).await?;
            let top_full = store.spending_top(&full(&f), Dimension::User, HOUR_MS, 2).await?;
            anyhow::ensure!(top == top_full, "top 2 users: {top:#?} != {top_full:#?}");
            anyhow::ensure!(top.truncated_key_count == 2, "4 keys (one unattributed), 2 kept: {top:#?}");
            store.close().await;
            anyhow::Ok(got)
        }
    };
    let before = reports(store).await?;
    let inside = events.iter().filter(|e| e.ts_ms >= f.start_ms && e.ts_ms < f.end_ms).count() as i64;
    for (what, fast, slow) in &before {
        assert_eq!(fast, slow, "{what}");
        assert!(!fast.is_empty(), "{what}: something to compare");
        if what.starts_with("Some(User) SpendingFilter { start_ms") && what.contains("agent: None") {
            assert_eq!(fast.iter().map(|r| r.stats.requests).sum::<i64>(), inside, "{what}: each event once");
        }
    }
    // A database from before these tables: they and their migration's record are gone, and
    // opening the store again builds them from the full hourly rollup.
    let statements: [&str; 3] = if db.is_postgres() {
        [
            "DROP TABLE usage_rollup_hourly_user",
            "DROP TABLE usage_rollup_hourly_agent",
            "DELETE FROM _sqlx_migrations WHERE version = 16",
        ]
    } else {
        [
            "DROP TABLE usage_rollup_hourly_user",
            "DROP TABLE usage_rollup_hourly_agent",
            "DELETE FROM _sqlx_migrations WHERE version = 10",
        ]
    };
    if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(db.url()).await?;
        for sql in statements {
            sqlx::query(sql).execute(&mut c).await?;
        }
    } else {
        let mut c = sqlx::SqliteConnection::connect(&db.url().replace("tollgate.db", "usage.sqlite")).await?;
        for sql in statements {
            sqlx::query(sql).execute(&mut c).await?;
        }
    }
    let after = reports(usage_store(&db).await?).await?;
    assert_eq!(after, before, "the backfilled tables answer as the written ones did");
    Ok(())
}
