//! The console over plain HTTP: sign-in and sessions, CSRF, what a reader may not do, form
//! errors next to their fields, inline secrets that never outlive a refused form, every page
//! rendering, and the spend a page shows matching the spending API.

use super::{Console, section, token_of};
use crate::both_backends;
use crate::proxy::{Rig, UPSTREAM_KEY, send};
use crate::support::*;

both_backends!(
    tokens_show_last_use_and_7_day_spend,
    sign_in_sessions_and_sign_out,
    every_post_needs_the_csrf_token,
    a_reader_sees_everything_and_changes_nothing,
    form_errors_show_next_to_their_fields,
    providers_are_created_edited_disabled_and_deleted_through_forms,
    every_page_renders,
    azure_openai_through_the_form,
    secrets_and_tokens_pages,
    spend_on_pages_matches_the_spending_api,
    unknown_models_are_saved_with_a_visible_warning,
    the_bedrock_picker_offers_inference_profiles,
    no_user_and_no_model_filters_narrow_the_numbers,
    show_commands_follow_the_checked_model,
    form_polish,
    budgets_page,
    home_tabs_rotation_and_framed_errors,
    cost_and_usage_you_can_explore,
);

/// Cost & Usage without script: headline figures (spend with its change, cost per 1,000
/// requests), bars that link to their own window, rows that drill into their value, the
/// "Compare to previous period" line, deleted providers folded unless shown, and the "+ Filter"
/// builders of Cost & Usage and Requests, which become ordinary filter parameters.
async fn cost_and_usage_you_can_explore(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({"provider_models": [{"name": "gpt-4o-mini"}, {"name": "gpt-4o"}]})).await;
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    for model in ["gpt-4o-mini", "gpt-4o"] {
        assert_eq!(rig.post("/chat/completions", &chat(model)).await.status, 200);
    }
    let gw = &rig.gw;
    // a second provider with one (failed) call, then deleted: its usage stays
    let mut gone = crate::proxy::provider_at("openai_compatible", "p-gone", &rig.up.provider_base_url(), json!({}));
    gone["display_name"] = json!("Gone");
    expect(admin(gw, Method::POST, "/api/v1/llm-providers", Some(gone)).await, 201);
    let r = send(
        gw.client
            .post(gw.url("/llm/v1/providers/p-gone/chat/completions"))
            .bearer_auth(&rig.token)
            .json(&chat("gpt-4o")),
    )
    .await;
    assert!(r.status >= 400, "{}", r.status);
    rig.events(3).await;
    expect(admin(gw, Method::DELETE, "/api/v1/llm-providers/p-gone", None).await, 204);
    let mut c = Console::new(gw);
    c.sign_in(&gw.admin_token).await;

    let u = c.get("/usage?range=7d").await;
    u.expect(200);
    let head = section(&u.body, r#"id="headline""#, "</div>\n</div>");
    assert!(head.contains("Cost / 1,000 requests") && head.contains("new vs previous period"), "{head}");
    // deleted providers are one row until shown
    let table = section(&u.body, r#"id="breakdown""#, "</table>");
    assert!(table.contains(r#"data-key="(deleted providers)""#) && !table.contains(r#"data-key="p-gone""#), "{table}");
    let shown = c.get("/usage?range=7d&show_deleted=1").await;
    let table = section(&shown.body, r#"id="breakdown""#, "</table>");
    assert!(section(table, r#"data-key="p-gone""#, "</tr>").contains("deleted"), "{table}");
    assert!(shown.body.contains(r#"id="show-deleted" checked"#));
    // a row drills into its provider, grouped by model
    let row = section(&u.body, r#"data-key="p-openai""#, "</tr>");
    assert!(row.contains(r#"href="/usage?range=7d&#38;provider=p-openai&#38;group_by=model""#), "{row}");
    // every bar links to its own day
    let chart = section(&u.body, r#"id="chart-spend""#, "</svg>");
    assert_eq!(chart.matches(r#"class="bucket-link""#).count(), 7, "{chart}");
    assert!(chart.contains("range=custom&amp;customStart="), "{chart}");
    assert!(!chart.contains(r#"class="prev""#));
    // compare: the previous period as a dashed line, in the legend too
    let cmp = c.get("/usage?range=7d&compare=1").await;
    assert!(section(&cmp.body, r#"id="chart-spend""#, "</svg>").contains(r#"class="prev""#));
    assert!(cmp.body.contains("legend-prev") && cmp.body.contains(r#"id="compare" checked"#));
    // the builder's add=field:value becomes a filter in the canonical URL
    let p = c.get("/usage?range=7d&add=model%3Agpt-4o").await;
    assert_eq!(p.location.as_deref(), Some("/usage?range=7d&model=gpt-4o"));
    assert!(
        u.body.contains(r#"<option value="model:gpt-4o">"#),
        "{}",
        section(&u.body, r#"id="filter-add""#, "</select>")
    );
    // provider tags: group by a tag's value, filter on one
    expect(
        admin(gw, Method::PATCH, "/api/v1/llm-providers/p-openai", Some(json!({"tags": {"team": "search"}}))).await,
        200,
    );
    let t = c.get("/usage?range=7d&group_by=tag%3Ateam").await;
    t.expect(200);
    assert!(
        t.body.contains(r#"<option value="tag:team" selected>Tag: team</option>"#),
        "the group menu offers tag keys"
    );
    let table = section(&t.body, r#"id="breakdown""#, "</table>");
    assert!(section(table, r#"data-key="search""#, "</tr>").contains(">2<"), "{table}");
    assert!(section(table, r#"data-key="(untagged)""#, "</tr>").contains(">1<"), "the deleted provider: {table}");
    let f = c.get("/usage?range=7d&tag=team%3Asearch").await;
    assert!(f.body.contains(r#"data-dim="tag" data-value="team:search""#), "the chip");
    assert!(section(&f.body, "Requests</span>", "</div>").contains(">2<"), "only p-openai's requests");
    let none = c.get("/usage?range=7d&tag=team%3Anobody").await;
    assert!(section(&none.body, "Requests</span>", "</div>").contains(">0<"), "no provider carries it");
    assert!(
        c.get("/usage?range=7d").await.body.contains(r#"<option value="tag:team:search">Tag: team=search</option>"#)
    );
    // Requests: field + value, replacing that field's filter
    let p = c.get("/requests?status=failed&field=provider&value=p-openai").await;
    assert_eq!(p.location.as_deref(), Some("/requests?status=failed&provider=p-openai"));
    let r = c.get("/requests?provider=p-openai").await;
    r.expect(200);
    assert!(r.body.contains(r#"id="add-filter""#) && r.body.contains(r#"data-dim="provider""#));
}

/// Console pass 2 over HTTP: the Home tiles agree with the spending API and link into Cost &
/// Usage and the request log; the Models tab's switch edits the allow-list (and the proxy
/// follows it); the Settings tab saves transcript toggles and tags and links each secret to
/// its rotate form; rotating a secret changes what the upstream receives; a signed-in 404
/// keeps the sidebar; the Discovery URL is on the Overview.
async fn home_tabs_rotation_and_framed_errors(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({"provider_models": [{"name": "gpt-4o-mini"}, {"name": "gpt-4o"}]})).await;
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    for model in ["gpt-4o-mini", "gpt-4o", "gpt-4o"] {
        let r = rig.post("/chat/completions", &chat(model)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    rig.events(3).await;
    let gw = &rig.gw;
    let (_, summary) = admin(gw, Method::GET, "/api/v1/spending/summary", None).await;
    let total = summary["stats"]["total_cost_microcents"].as_i64().unwrap_or_default();
    assert!(total > 0, "{summary}");
    let usd = |mc: i64| {
        let cents = (mc + 500_000) / 1_000_000;
        if cents == 0 { "&#60; $0.01".to_string() } else { format!("${}.{:02}", cents / 100, cents % 100) }
    };
    let mut c = Console::new(gw);
    // `/` is the Home page now: signed out, it asks to sign in
    assert_eq!(c.get("/").await.location.as_deref(), Some("/login"));
    c.sign_in(&gw.admin_token).await;

    // Home: every spend window holds today's traffic; nothing before it, so no change yet
    let home = c.get("/").await;
    home.expect(200);
    assert!(
        home.body.contains(r#"id="nav-home" class="active" aria-current="page""#)
            || home.body.contains(r#"class="active" aria-current="page" id="nav-home""#)
    );
    for id in ["home-today", "home-7d", "home-30d"] {
        let tile = section(&home.body, &format!(r#"id="{id}""#), "</a>");
        assert!(tile.contains(&usd(total)), "{id}: {tile}");
        assert!(tile.contains("new vs"), "no spend before: {tile}");
    }
    assert!(section(&home.body, r#"id="home-7d""#, ">").contains(r#"href="/usage?range=7d""#));
    let req_tile = section(&home.body, r#"id="home-requests""#, "</a>");
    assert!(req_tile.contains(">3<") && req_tile.contains("0.0%"), "{req_tile}");
    assert!(req_tile.contains("/requests?start="), "{req_tile}");
    let tops = section(&home.body, r#"id="top-providers""#, "</section>");
    assert!(
        tops.contains("/usage?range=7d&#38;group_by=model&#38;provider=p-openai") && tops.contains(&usd(total)),
        "{tops}"
    );
    let models = section(&home.body, r#"id="top-models""#, "</section>");
    let gpt4o_first =
        models.find(r#"model=gpt-4o""#).unwrap_or(usize::MAX) < models.find(r#"model=gpt-4o-mini""#).unwrap_or(0);
    assert!(gpt4o_first, "two gpt-4o calls outspend one mini: {models}");
    assert!(section(&home.body, r#"id="home-failures""#, "</section>").contains("No failed requests."));

    // Overview: the Discovery URL row (no OIDC issuer here)
    let d = c.get("/providers/p-openai").await;
    assert!(section(&d.body, r#"data-prop="Discovery URL""#, "</dd>").contains("no OIDC issuer"), "{}", d.body);

    // Models tab: allowed models first with their usage, then the catalog's others, off
    let m = c.get("/providers/p-openai?tab=models").await;
    m.expect(200);
    let table = section(&m.body, r#"id="models-tab-table""#, "</table>");
    let first = section(table, "<tbody>", "</tr>");
    assert!(first.contains(r#"data-model="gpt-4o-mini" data-enabled="true""#), "{first}");
    let row = section(table, r#"data-model="gpt-4o" "#, "</tr>");
    assert!(row.contains(">2<") && row.contains(r#"aria-checked="true""#), "{row}");
    assert!(row.contains("tools") && row.contains("128k"), "capabilities and context from the catalog: {row}");
    assert!(table.contains(r#"data-enabled="false""#), "catalog models not on the list are off");
    // switch gpt-4o off: the allow-list loses it and the proxy refuses it
    let p = c.post("/providers/p-openai/models", &[("model", "gpt-4o"), ("enabled", "false")]).await;
    assert_eq!(p.location.as_deref(), Some("/providers/p-openai?tab=models&notice=model-disabled&name=gpt-4o"));
    let spec = expect(admin(gw, Method::GET, "/api/v1/llm-providers/p-openai", None).await, 200);
    assert_eq!(spec["provider_models"], json!([{"name": "gpt-4o-mini"}]), "{spec}");
    let refused = rig.post("/chat/completions", &chat("gpt-4o")).await;
    assert!(refused.status >= 400 && refused.status < 500, "{}", refused.status);
    // the last one cannot go (an empty list would allow everything)
    c.post("/providers/p-openai/models", &[("model", "gpt-4o-mini"), ("enabled", "false")]).await.expect(400);
    let p = c.post("/providers/p-openai/models", &[("model", "gpt-4o"), ("enabled", "true")]).await;
    assert_eq!(p.status, 303);
    let spec = expect(admin(gw, Method::GET, "/api/v1/llm-providers/p-openai", None).await, 200);
    assert_eq!(spec["provider_models"], json!([{"name": "gpt-4o-mini"}, {"name": "gpt-4o"}]), "{spec}");

    // Settings tab: identity read-only, the secret with its rotate link, toggles and tags saved
    let st = c.get("/providers/p-openai?tab=settings").await;
    st.expect(200);
    let secrets = section(&st.body, r#"id="settings-secrets""#, "</ul>");
    assert!(secrets.contains(r##"href="/secrets?rotate=OPENAI_API_KEY#rotate-OPENAI_API_KEY""##), "{secrets}");
    let p = c
        .post(
            "/providers/p-openai/settings",
            &[("record_input_messages", "on"), ("tags", "team=search\ncost-center = 42")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let spec = expect(admin(gw, Method::GET, "/api/v1/llm-providers/p-openai", None).await, 200);
    assert_eq!(spec["transcripts"]["record_input_messages"], json!(true));
    assert_eq!(spec["transcripts"]["record_output_messages"], json!(false));
    assert_eq!(spec["tags"], json!({"team": "search", "cost-center": "42"}), "{spec}");
    // a tag left out is removed
    c.post("/providers/p-openai/settings", &[("tags", "team=search")]).await;
    let spec = expect(admin(gw, Method::GET, "/api/v1/llm-providers/p-openai", None).await, 200);
    assert_eq!(spec["tags"], json!({"team": "search"}), "{spec}");

    // Rotate: the form opens from the link; the new value is what the upstream receives next
    let sp = c.get("/secrets?rotate=OPENAI_API_KEY").await;
    assert!(sp.body.contains(r#"id="rotate-OPENAI_API_KEY" open"#), "the linked form starts open");
    assert_eq!(
        rig.up.last_request().and_then(|r| r.header("authorization").map(str::to_string)),
        Some(format!("Bearer {UPSTREAM_KEY}"))
    );
    let rotated = "sk-rotated-ROTATECHECK-91f3";
    let p = c.post("/secrets/OPENAI_API_KEY/rotate", &[("value", rotated)]).await;
    assert_eq!(p.location.as_deref(), Some("/secrets?notice=secret-rotated&name=OPENAI_API_KEY"));
    let page = c.get("/secrets?notice=secret-rotated&name=OPENAI_API_KEY").await;
    assert!(page.body.contains("rotated") && !page.body.contains(rotated), "never shown");
    // the fake still expects the old key: the call fails upstream, but carried the new value
    let r = rig.post("/chat/completions", &chat("gpt-4o-mini")).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        rig.up.last_request().and_then(|r| r.header("authorization").map(str::to_string)),
        Some(format!("Bearer {rotated}"))
    );
    // a rotate of a secret that does not exist, or with no value, changes nothing
    c.post("/secrets/NOPE_KEY/rotate", &[("value", "x")]).await.expect(404);
    c.post("/secrets/OPENAI_API_KEY/rotate", &[("value", "")]).await.expect(400);
    // that failure is on Home now, linked to its request
    rig.events(4).await;
    let home = c.get("/").await;
    let failures = section(&home.body, r#"id="home-failures""#, "</section>");
    assert!(failures.contains("upstream_error") && failures.contains(r#"href="/requests/"#), "{failures}");
    assert!(section(&home.body, r#"id="home-requests""#, "</a>").contains("(1 failed)"));

    // a 404 while signed in keeps the sidebar; signed out it is the bare page
    let nf = c.get("/providers/nope").await;
    nf.expect(404);
    assert!(nf.body.contains(r#"id="nav-home""#) && nf.body.contains(r#"id="error-message""#), "{}", nf.body);
    // a URL no router serves: a browser's page request gets the framed console 404; the API
    // and clients that do not ask for HTML keep the JSON 404
    let browse = |path: &str| c.client.get(format!("{}{path}", c.base)).header("accept", "text/html,*/*;q=0.8");
    let unknown = browse("/no-such-page").send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unknown.status().as_u16(), 404);
    let body = unknown.text().await.unwrap_or_default();
    assert!(body.contains(r#"id="nav-home""#) && body.contains("There is no page at /no-such-page"), "{body}");
    for (path, accept) in [("/api/v1/no-such", "text/html"), ("/no-such-page", "application/json")] {
        let r = c.client.get(format!("{}{path}", c.base)).header("accept", accept).send().await;
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let v: Value = r.json().await.unwrap_or_default();
        assert_eq!(v["error"]["message"], format!("no route for {path}"), "{path}: {v}");
    }
    let post = c.client.post(format!("{}/api/v1/no-such", c.base)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(post.status().as_u16(), 404, "any method on an unknown path");
    let anon = gw.client.get(gw.url("/assets/nope.css")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anon.status().as_u16(), 404);
    assert!(!anon.text().await.unwrap_or_default().contains("nav-home"));
    // the skip link and the phone menu toggle are on every framed page
    for page in ["/", "/usage", "/providers/p-openai?tab=models", "/secrets"] {
        let p = c.get(page).await;
        assert!(p.body.contains(r##"href="#main""##) && p.body.contains(r#"id="nav-toggle""#), "{page}");
    }
}

/// The Budgets page: a default card with its usage, the overrides table, the form's chips and
/// warn-at slider (80 % by default), a field error shown in the form, delete; the budgets that
/// apply on the provider page and on Cost & Usage.
async fn budgets_page(db: TestDb) {
    let gw = gateway(db).await;
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    let page = c.get("/budgets").await;
    page.expect(200);
    let form = section(&page.body, r#"id="budget-form""#, "</form>");
    for chip in ["$25", "$100", "$500", "$1,000"] {
        assert!(form.contains(chip), "{chip} chip missing: {form}");
    }
    assert!(form.contains(r#"name="warn_pct" min="0" max="100" step="5" value="80""#), "{form}");
    // A chip with the default warn-at: 80 % of $100.
    let p = c
        .post(
            "/budgets",
            &[("name", "agents"), ("agent", ""), ("period", "monthly"), ("cap", "100"), ("warn_pct", "80")],
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/budgets?notice=created&name=agents"), "{}", p.body);
    let b = expect(admin(&gw, Method::GET, "/api/v1/budgets/agents", None).await, 200);
    assert_eq!(
        (b["limit_microcents"].as_i64(), b["warn_at_microcents"].as_i64()),
        (Some(10_000_000_000), Some(8_000_000_000))
    );
    // A custom amount for an override.
    let p = c
        .post(
            "/budgets",
            &[
                ("name", "bot"),
                ("agent", "bot"),
                ("period", "weekly"),
                ("cap", "custom"),
                ("cap_custom", "250.50"),
                ("warn_pct", "50"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    // A second override for the same agent: the error is shown in the form, nothing is stored.
    let p = c
        .post(
            "/budgets",
            &[("name", "bot-2"), ("agent", "bot"), ("period", "daily"), ("cap", "25"), ("warn_pct", "80")],
        )
        .await;
    p.expect(400);
    assert!(section(&p.body, r#"id="budget-error""#, "</p>").contains("scope.agent"), "{}", p.body);
    let p = c
        .post(
            "/budgets",
            &[("name", "x"), ("period", "daily"), ("cap", "custom"), ("cap_custom", "abc"), ("warn_pct", "80")],
        )
        .await;
    p.expect(400);
    assert!(p.body.contains("Cap usage at"), "{}", p.body);

    let page = c.get("/budgets").await;
    let card = section(&page.body, r#"data-budget="agents""#, "</section>");
    assert!(card.contains("$0") && card.contains("$100") && card.contains("<meter"), "{card}");
    let row = section(&page.body, r#"<tr data-budget="bot""#, "</tr>");
    assert!(
        row.contains("<strong>bot</strong>")
            && row.contains("weekly")
            && row.contains("$250.50")
            && row.contains("$125.25"),
        "{row}"
    );
    assert!(page.body.contains(r#"aria-current="page">Budgets"#));
    // The bars: green up to the warning level (`low`), amber to the cap, red from the cap
    // (`high`); without a warning level green up to the cap, never at or past it.
    assert!(card.contains(r#"max="10000000000" low="8000000000" high="10000000000""#), "{card}");
    assert!(row.contains(r#"max="25050000000" low="12525000000" high="25050000000""#), "{row}");
    expect(
        admin(
            &gw,
            Method::POST,
            "/api/v1/budgets",
            Some(json!({"name": "bare", "scope": {"agent": "bare"}, "limit_microcents": 100})),
        )
        .await,
        201,
    );
    let page = c.get("/budgets").await;
    let bare = section(&page.body, r#"<tr data-budget="bare""#, "</tr>");
    assert!(bare.contains(r#"max="100" low="99" high="100""#), "{bare}");

    // Rate limits are listed.
    expect(
        admin(&gw, Method::POST, "/api/v1/rate-limits", Some(json!({"name": "rl", "requests_per_minute": 60}))).await,
        201,
    );
    let page = c.get("/budgets").await;
    assert!(section(&page.body, r#"data-rate-limit="rl""#, "</tr>").contains("every call"));
    // A scope reference that names nothing is shown on its row.
    let ghost = json!({"name": "ghost-rl", "scope": {"provider": "ghost"}, "requests_per_minute": 1});
    expect(admin(&gw, Method::POST, "/api/v1/rate-limits", Some(ghost)).await, 201);
    let ghost = json!({"name": "ghost-b", "scope": {"agent": "g", "providers": ["ghost"]}, "limit_microcents": 1});
    expect(admin(&gw, Method::POST, "/api/v1/budgets", Some(ghost)).await, 201);
    let page = c.get("/budgets").await;
    for (start, what) in [(r#"data-rate-limit="ghost-rl""#, "rate limit"), (r#"<tr data-budget="ghost-b""#, "budget")] {
        let row = section(&page.body, start, "</tr>");
        assert!(row.contains(r#"class="small warn-text""#) && row.contains("does not exist"), "{what}: {row}");
    }
    assert!(!section(&page.body, r#"data-rate-limit="rl""#, "</tr>").contains("warn-text"));

    // The provider page and Cost & Usage show the budgets that apply.
    expect(
        admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai_compatible", "local"))).await,
        201,
    );
    let detail = c.get("/providers/local").await;
    let card = section(&detail.body, r#"id="budgets-card""#, "</section>");
    assert!(card.contains(r#"data-budget="agents""#) && card.contains(r#"data-budget="bot""#), "{card}");
    let usage = c.get("/usage").await;
    assert!(section(&usage.body, r#"id="budgets-card""#, "</section>").contains(r#"data-budget="agents""#));

    let p = c.post("/budgets/bot/delete", &[]).await;
    assert_eq!(p.location.as_deref(), Some("/budgets?notice=deleted&name=bot"));
    expect(admin(&gw, Method::GET, "/api/v1/budgets/bot", None).await, 404);
}

async fn sign_in_sessions_and_sign_out(db: TestDb) {
    let gw = gateway(db).await;
    let mut c = Console::new(&gw);
    // no session: pages send you to sign in and come back
    let p = c.get("/providers?type=openai").await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/login?next=%2Fproviders%3Ftype%3Dopenai"));
    assert_eq!(c.get("/").await.location.as_deref(), Some("/login"));
    let login = c.get("/login?next=/usage").await;
    login.expect(200);
    assert!(login.body.contains(r#"name="next" value="/usage""#));
    let login_cookie = login.set_cookie("tollgate_login").unwrap_or_default();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"), "{login_cookie}");

    // wrong tokens
    let p = c.post("/login", &[("token", "tg_nope"), ("next", "/usage")]).await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("invalid gateway token"), "{}", p.body);
    let invoker = token_of(&gw, "invoker").await;
    let p = c.post("/login", &[("token", &invoker), ("next", "/usage")]).await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("may only call the proxy"), "{}", p.body);
    assert!(p.set_cookie("tollgate_session").is_none());

    // the admin token: a session cookie that does not carry the token
    let p = c.post("/login", &[("token", &gw.admin_token), ("next", "/usage")]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/usage"));
    let cookie = p.set_cookie("tollgate_session").unwrap_or_else(|| panic!("no session cookie"));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag: {cookie}");
    assert!(!cookie.contains(&gw.admin_token) && !cookie.contains("tg_"), "{cookie}");
    let p = c.get("/usage").await;
    p.expect(200);
    let timing = p.headers.get("server-timing").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(timing.starts_with("app;dur="), "{timing}");
    assert!(p.body.contains("bootstrap-admin"), "who is signed in is shown");

    // an open redirect is not possible
    let mut other = Console::new(&gw);
    other.get("/login").await;
    let p = other.post("/login", &[("token", &gw.admin_token), ("next", "//evil.example/x")]).await;
    assert_eq!(p.location.as_deref(), Some("/"));
    // signed out, `/` goes to the sign-in page, and signing in there lands on Home
    let mut fresh = Console::new(&gw);
    assert_eq!(fresh.get("/").await.location.as_deref(), Some("/login"));
    let login = fresh.get("/login").await;
    let next = login.body.find(r#"name="next""#).map(|at| &login.body[at..at + 60]).unwrap_or_default();
    assert!(next.contains(r#"value="/""#), "the form's next: {next}");
    let p = fresh.post("/login", &[("token", &gw.admin_token), ("next", "/")]).await;
    assert_eq!(p.location.as_deref(), Some("/"));

    // behind a TLS proxy the cookie is Secure
    let mut tls = Console::new(&gw);
    tls.get("/login").await;
    let csrf = tls.csrf.clone();
    let body = format!("token={}&_csrf={csrf}", gw.admin_token);
    let r = tls
        .client
        .post(format!("{}/login", gw.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let set: Vec<String> =
        r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
    assert!(set.iter().any(|c| c.starts_with("tollgate_session=") && c.contains("; Secure")), "{set:?}");

    // sign out: the cookie goes, pages send you back to sign in
    let p = c.post("/logout", &[]).await;
    assert_eq!(p.location.as_deref(), Some("/login"));
    assert!(p.set_cookie("tollgate_session").unwrap_or_default().contains("Max-Age=0"));
    assert_eq!(c.get("/providers").await.status, 303);
    // and the server forgets the session: a copy of the old cookie is refused too, while
    // another session of the same token stays signed in
    let value = cookie.trim_start_matches("tollgate_session=").split(';').next().unwrap_or_default().to_string();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let replay = plain
        .get(gw.url("/providers"))
        .header("cookie", format!("tollgate_session={value}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replay.status().as_u16(), 303, "a signed-out cookie must be refused");
    assert_eq!(replay.headers().get("location").and_then(|v| v.to_str().ok()), Some("/login?next=%2Fproviders"));
    other.get("/providers").await.expect(200);

    // revoking the token ends its sessions at once
    let reader = token_of(&gw, "reader").await;
    let mut r = Console::new(&gw);
    r.sign_in(&reader).await;
    let (_, tokens) = admin(&gw, Method::GET, "/api/v1/tokens", None).await;
    let id = tokens["tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["role"] == "reader"))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_string();
    expect(admin(&gw, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await, 200);
    let p = r.get("/providers").await;
    assert_eq!(p.status, 303, "a revoked token's session must end");
    // and JSON fetches get 401, not a redirect
    let p = r.post_json("/providers/x/check", &json!({})).await;
    assert_eq!(p.status, 401);
}

async fn every_post_needs_the_csrf_token(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "csrf-target"))).await, 201);
    let mut c = Console::new(&gw);
    // sign-in itself: without the login nonce cookie's token
    let p = c.post_raw("/login", &[("token", &gw.admin_token)]).await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("CSRF"), "{}", p.body);
    c.sign_in(&gw.admin_token).await;
    let good = c.csrf.clone();
    for path in [
        "/providers/csrf-target/disable",
        "/providers/csrf-target/delete",
        "/providers/new",
        "/secrets",
        "/tokens",
        "/logout",
    ] {
        let p = c.post_raw(path, &[("confirm", "csrf-target")]).await;
        assert_eq!(p.status, 403, "{path} without a token");
        let p = c.post_raw(path, &[("confirm", "csrf-target"), ("_csrf", "forged")]).await;
        assert_eq!(p.status, 403, "{path} with a forged token");
    }
    // another session's token does not work here
    let mut other = Console::new(&gw);
    other.sign_in(&gw.admin_token).await;
    assert_ne!(other.csrf, good);
    let p = c.post_raw("/providers/csrf-target/disable", &[("_csrf", &other.csrf)]).await;
    assert_eq!(p.status, 403);
    let p = c.post_json("/providers/csrf-target/check", &json!({})).await;
    assert_ne!(p.status, 403, "the header form of the token is accepted: {}", p.body);
    let mut no_header = c.client.post(format!("{}/providers/csrf-target/check", gw.base_url));
    no_header = no_header.json(&json!({}));
    let r = no_header.send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 403);
    // nothing changed
    let (_, p) = admin(&gw, Method::GET, "/api/v1/llm-providers/csrf-target", None).await;
    assert_eq!(p["enabled"], true);
    // with the token it works
    let p = c.post("/providers/csrf-target/disable", &[]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (_, p) = admin(&gw, Method::GET, "/api/v1/llm-providers/csrf-target", None).await;
    assert_eq!(p["enabled"], false);
}

async fn a_reader_sees_everything_and_changes_nothing(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("anthropic", "ro-target"))).await, 201);
    let reader = token_of(&gw, "reader").await;
    let mut c = Console::new(&gw);
    c.sign_in(&reader).await;
    // read: every page, without write controls
    let list = c.get("/providers").await;
    list.expect(200);
    assert!(list.body.contains("ro-target"));
    assert!(!list.body.contains("Create provider"), "no create button for readers");
    assert!(!list.body.contains(r#"href="/tokens""#), "no tokens page for readers");
    let detail = c.get("/providers/ro-target").await;
    detail.expect(200);
    for hidden in ["edit-provider", "disable-provider", "delete-provider", "id=\"test-connection\""] {
        assert!(!detail.body.contains(hidden), "a reader sees {hidden}");
    }
    assert!(detail.body.contains("Test Connection needs a writer"));
    c.get("/providers/ro-target?tab=connect").await.expect(200);
    c.get("/usage").await.expect(200);
    let secrets = c.get("/secrets").await;
    secrets.expect(200);
    assert!(secrets.body.contains("ANTHROPIC_API_KEY") && !secrets.body.contains("secret-form"));
    // write: refused, even with a valid CSRF token
    c.get("/providers/new").await.expect(403);
    c.get("/providers/ro-target/edit").await.expect(403);
    c.get("/tokens").await.expect(403);
    let fields = [("display_name", "X"), ("name", "x-new"), ("type", "openai")];
    c.post("/providers/new", &fields).await.expect(403);
    c.post("/providers/ro-target/edit", &[("display_name", "Renamed")]).await.expect(403);
    c.post("/providers/ro-target/disable", &[]).await.expect(403);
    c.post("/providers/ro-target/delete", &[("confirm", "ro-target")]).await.expect(403);
    c.post("/secrets", &[("name", "NEW_ONE"), ("value", "v")]).await.expect(403);
    c.post("/secrets/ANTHROPIC_API_KEY/delete", &[]).await.expect(403);
    c.post("/tokens", &[("name", "t"), ("role", "admin")]).await.expect(403);
    c.post_json("/providers/ro-target/check", &json!({})).await.expect(403);
    let (_, p) = admin(&gw, Method::GET, "/api/v1/llm-providers/ro-target", None).await;
    assert_eq!((p["enabled"].as_bool(), p["display_name"].as_str()), (Some(true), Some("Test ro-target")));
    expect(admin(&gw, Method::GET, "/api/v1/secrets/ANTHROPIC_API_KEY", None).await, 200);
    expect(admin(&gw, Method::GET, "/api/v1/secrets/NEW_ONE", None).await, 404);

    // a writer scoped to one provider sees only that one
    let (_, t) = admin(
        &gw,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "scoped", "role": "writer", "providers": ["other"]})),
    )
    .await;
    let mut s = Console::new(&gw);
    s.sign_in(t["token"].as_str().unwrap_or_default()).await;
    assert!(!s.get("/providers").await.body.contains("ro-target"));
    s.get("/providers/ro-target").await.expect(403);
    s.post("/providers/ro-target/disable", &[]).await.expect(403);
    s.get("/usage?provider=ro-target").await.expect(403);
}

const FORM_BASE: [(&str, &str); 2] = [("display_name", "Form Test"), ("name", "form-test")];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = FORM_BASE.to_vec();
    v.extend_from_slice(extra);
    v
}

async fn form_errors_show_next_to_their_fields(db: TestDb) {
    let gw = gateway(db).await;
    secret(&gw, "OPENAI_API_KEY", "sk-1").await;
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    c.get("/providers/new").await.expect(200);

    // no type: the error is under the type cards, and the values typed are kept
    let p = c.post("/providers/new", &with(&[])).await;
    p.expect(400);
    assert!(section(&p.body, "Provider type</h2>", "</section>").contains("is required: one of openai"), "{}", p.body);
    assert!(p.body.contains(r#"value="Form Test""#));

    // a bad Resource ID
    let p = c.post("/providers/new", &[("display_name", "X"), ("name", "Bad_Name"), ("type", "openai")]).await;
    p.expect(400);
    assert!(section(&p.body, r#"for="name""#, "</div>\n      </div>").contains("must match ^[a-z][a-z0-9-]*$"));

    // a required key left empty, and a secret that does not exist
    let p =
        c.post("/providers/new", &with(&[("type", "openai"), ("openai_config.api_key_ref.mode", "existing")])).await;
    p.expect(400);
    let box_ = section(&p.body, r#"data-secret-field="openai_config.api_key_ref""#, "data-secret-field=");
    assert!(box_.contains("field-error") && box_.contains("is required"), "{box_}");
    let p = c
        .post(
            "/providers/new",
            &with(&[
                ("type", "google"),
                ("google_config.api_key_ref", "NOPE_KEY"),
                ("google_config.api_key_ref.mode", "existing"),
            ]),
        )
        .await;
    p.expect(400);
    let box_ = section(&p.body, r#"data-secret-field="google_config.api_key_ref""#, "data-secret-field=");
    assert!(box_.contains(r#"secret &#34;NOPE_KEY&#34; not found"#), "{box_}");

    // an override price that is not an amount: on its model row
    let p = c
        .post(
            "/providers/new",
            &with(&[
                ("type", "openai"),
                ("openai_config.api_key_ref", "OPENAI_API_KEY"),
                ("m0.name", "gpt-4o-mini"),
                ("m0.input_per_million", "abc"),
            ]),
        )
        .await;
    p.expect(400);
    let row = section(&p.body, r#"data-name="gpt-4o-mini""#, "</tr>");
    assert!(row.contains("Input price") && row.contains("is not a decimal number"), "{row}");
    assert!(row.contains(r#"value="abc""#), "the typed value is kept");

    // inline "New" secrets: a name that exists is refused, not overwritten
    let p = c
        .post(
            "/providers/new",
            &with(&[
                ("type", "openai"),
                ("openai_config.api_key_ref.mode", "new"),
                ("openai_config.api_key_ref.new_name", "OPENAI_API_KEY"),
                ("openai_config.api_key_ref.new_value", "sk-overwrite-attempt"),
            ]),
        )
        .await;
    p.expect(400);
    assert!(p.body.contains("a secret named OPENAI_API_KEY already exists"));
    assert!(!p.body.contains("sk-overwrite-attempt"), "a secret value is never echoed");
    // a bad new name and an empty value
    let p = c
        .post(
            "/providers/new",
            &with(&[
                ("type", "anthropic"),
                ("anthropic_config.api_key_ref.mode", "new"),
                ("anthropic_config.api_key_ref.new_name", "lower_case"),
            ]),
        )
        .await;
    p.expect(400);
    let box_ = section(&p.body, r#"data-secret-field="anthropic_config.api_key_ref""#, "data-secret-field=");
    assert!(box_.contains("UPPER_SNAKE_CASE") && box_.contains("paste the secret value"), "{box_}");

    // the provider fails after its new secret was written (the name is taken): the secret goes again
    expect(
        admin(
            &gw,
            Method::POST,
            "/api/v1/llm-providers",
            Some(json!({"name": "form-test", "display_name": "Taken",
        "type": "openai", "openai_config": {"api_key_ref": "OPENAI_API_KEY"}})),
        )
        .await,
        201,
    );
    let p = c
        .post(
            "/providers/new",
            &with(&[
                ("type", "anthropic"),
                ("anthropic_config.api_key_ref.mode", "new"),
                ("anthropic_config.api_key_ref.new_name", "FRESH_ANTHROPIC_KEY"),
                ("anthropic_config.api_key_ref.new_value", "sk-ant-fresh-LEAKCHECK"),
            ]),
        )
        .await;
    p.expect(400);
    assert!(section(&p.body, r#"for="name""#, "</div>\n      </div>").contains("already exists"), "{}", p.body);
    expect(admin(&gw, Method::GET, "/api/v1/secrets/FRESH_ANTHROPIC_KEY", None).await, 404);
    assert!(!p.body.contains("sk-ant-fresh-LEAKCHECK"));

    // the live Resource ID check uses the same rule (and knows taken names)
    let v = c.client.get(format!("{}/ui/resource-id?name=Bad_Name", gw.base_url)).send().await;
    let v: Value = v.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    assert_eq!(v["ok"], false);
    assert!(v["message"].as_str().unwrap_or_default().contains("^[a-z][a-z0-9-]*$"));
    let v: Value = c
        .client
        .get(format!("{}/ui/resource-id?name=form-test", gw.base_url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(
        (v["ok"].as_bool(), v["message"].as_str().map(|m| m.contains("already exists"))),
        (Some(false), Some(true))
    );
    let v: Value = c
        .client
        .get(format!("{}/ui/resource-id?name=fresh-name", gw.base_url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(v["ok"], true);
}

async fn providers_are_created_edited_disabled_and_deleted_through_forms(db: TestDb) {
    let gw = gateway(db).await;
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    c.get("/providers/new").await.expect(200);
    // Anthropic with an inline new secret and a price override (blank keeps the catalog, 0 is free)
    let p = c
        .post(
            "/providers/new",
            &[
                ("display_name", "Prod Anthropic"),
                ("name", "prod-anthropic"),
                ("type", "anthropic"),
                ("anthropic_config.base_url", ""),
                ("anthropic_config.api_key_ref.mode", "new"),
                ("anthropic_config.api_key_ref.new_name", "ANTHROPIC_API_KEY"),
                ("anthropic_config.api_key_ref.new_value", "sk-ant-inline-LEAKCHECK"),
                ("m3.name", "claude-haiku-4-5"),
                ("m3.input_per_million", "0.75"),
                ("m3.output_per_million", ""),
                ("m3.cached_input_per_million", "0"),
                ("m7.name", "my-private-model"),
                ("transcripts.record_input_messages", "on"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/providers/prod-anthropic?notice=created&name=prod-anthropic"));
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/prod-anthropic", None).await;
    assert_eq!(spec["anthropic_config"]["api_key_ref"], "ANTHROPIC_API_KEY");
    assert_eq!(
        spec["provider_models"],
        json!([{"name": "claude-haiku-4-5", "custom_pricing": {"input_per_million": 75_000_000, "cached_input_per_million": 0}},
               {"name": "my-private-model"}])
    );
    assert_eq!(spec["transcripts"], json!({"record_input_messages": true, "record_output_messages": false}));
    expect(admin(&gw, Method::GET, "/api/v1/secrets/ANTHROPIC_API_KEY", None).await, 200);
    let detail = c.get("/providers/prod-anthropic?notice=created&name=prod-anthropic").await;
    detail.expect(200);
    assert!(detail.body.contains("Provider &#34;prod-anthropic&#34; created."));
    assert!(!detail.body.contains("sk-ant-inline-LEAKCHECK"));

    // edit: the form comes back filled; change the display name, drop a model, clear an override
    let edit = c.get("/providers/prod-anthropic/edit").await;
    edit.expect(200);
    assert!(edit.body.contains(r#"value="Prod Anthropic""#) && edit.body.contains(r#"value="0.75""#));
    assert!(edit.body.contains(r#"<option value="ANTHROPIC_API_KEY" selected>"#));
    let p = c
        .post(
            "/providers/prod-anthropic/edit",
            &[
                ("display_name", "Prod Anthropic EU"),
                ("enabled", "on"),
                ("anthropic_config.base_url", "https://anthropic.example.eu"),
                ("anthropic_config.api_key_ref.mode", "existing"),
                ("anthropic_config.api_key_ref", "ANTHROPIC_API_KEY"),
                ("m0.name", "claude-haiku-4-5"),
                ("m0.input_per_million", ""),
                ("m0.output_per_million", "4"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/prod-anthropic", None).await;
    assert_eq!(spec["display_name"], "Prod Anthropic EU");
    assert_eq!(spec["anthropic_config"]["base_url"], "https://anthropic.example.eu");
    assert_eq!(
        spec["provider_models"],
        json!([{"name": "claude-haiku-4-5", "custom_pricing": {"output_per_million": 400_000_000}}])
    );
    assert_eq!(spec["transcripts"]["record_input_messages"], false);
    // clearing the base URL through the form clears it in the provider
    let p = c
        .post(
            "/providers/prod-anthropic/edit",
            &[
                ("display_name", "Prod Anthropic EU"),
                ("enabled", "on"),
                ("anthropic_config.base_url", ""),
                ("anthropic_config.api_key_ref.mode", "existing"),
                ("anthropic_config.api_key_ref", "ANTHROPIC_API_KEY"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/prod-anthropic", None).await;
    assert!(spec["anthropic_config"].get("base_url").is_none_or(Value::is_null), "{spec}");
    assert_eq!(spec["provider_models"], json!([]));

    // disable / enable
    c.post("/providers/prod-anthropic/disable", &[]).await;
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/prod-anthropic", None).await;
    assert_eq!(spec["enabled"], false);
    let d = c.get("/providers/prod-anthropic").await;
    assert!(d.body.contains(r#"id="status-badge">Disabled"#) && d.body.contains("enable-provider"));
    c.post("/providers/prod-anthropic/enable", &[]).await;
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/prod-anthropic", None).await;
    assert_eq!(spec["enabled"], true);

    // delete needs the name typed
    c.get("/providers/prod-anthropic").await;
    let p = c.post("/providers/prod-anthropic/delete", &[("confirm", "prod")]).await;
    p.expect(400);
    assert!(p.body.contains("nothing was deleted"));
    expect(admin(&gw, Method::GET, "/api/v1/llm-providers/prod-anthropic", None).await, 200);
    c.get("/providers/prod-anthropic").await;
    let p = c.post("/providers/prod-anthropic/delete", &[("confirm", "prod-anthropic")]).await;
    assert_eq!(p.location.as_deref(), Some("/providers?notice=deleted&name=prod-anthropic"));
    expect(admin(&gw, Method::GET, "/api/v1/llm-providers/prod-anthropic", None).await, 404);
    c.get("/providers/prod-anthropic").await.expect(404);
}

/// An Azure OpenAI provider created and edited through the form: its fields, errors and the
/// Connect tab's api-version.
async fn azure_openai_through_the_form(db: TestDb) {
    let gw = gateway(db).await;
    secret(&gw, "AZURE_OPENAI_API_KEY", "azure-key").await;
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    let form = c.get("/providers/new").await;
    assert!(form.body.contains(r#"value="azure_openai""#) && form.body.contains("/assets/icons/azure_openai.svg"));
    let fields = |endpoint: &'static str, version: &'static str| {
        vec![
            ("display_name", "Azure"),
            ("name", "prod-azure"),
            ("type", "azure_openai"),
            ("azure_openai_config.endpoint", endpoint),
            ("azure_openai_config.api_version", version),
            ("azure_openai_config.api_key_ref", "AZURE_OPENAI_API_KEY"),
            ("azure_openai_config.api_key_ref.mode", "existing"),
        ]
    };
    let p = c.post("/providers/new", &fields("https://res.openai.azure.com/openai", "")).await;
    p.expect(400);
    assert!(
        section(&p.body, r#"for="azure-endpoint""#, "</div>\n        </div>").contains("without a path"),
        "{}",
        p.body
    );
    let p = c.post("/providers/new", &fields("https://res.openai.azure.com", "2025-04-01-preview")).await;
    assert_eq!(p.location.as_deref(), Some("/providers/prod-azure?notice=created&name=prod-azure"), "{}", p.body);
    let got = expect(admin(&gw, Method::GET, "/api/v1/llm-providers/prod-azure", None).await, 200);
    assert_eq!(
        got["azure_openai_config"],
        json!({"endpoint": "https://res.openai.azure.com", "api_key_ref": "AZURE_OPENAI_API_KEY",
               "authorization_passthrough": false, "api_version": "2025-04-01-preview"})
    );
    let edit = c.get("/providers/prod-azure/edit").await;
    assert!(
        edit.body.contains(r#"value="https://res.openai.azure.com""#)
            && edit.body.contains(r#"value="2025-04-01-preview""#)
    );
    let connect = c.get("/providers/prod-azure?tab=connect").await;
    let python = section(&connect.body, r#"id="code-python""#, "</pre>");
    assert!(python.contains("AzureOpenAI(") && python.contains("2025-04-01-preview"), "{python}");
}

async fn every_page_renders(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    for kind in ["openai", "anthropic", "google", "bedrock", "openai_compatible", "azure_openai"] {
        let name = format!("r-{}", kind.replace('_', "-"));
        let mut body = provider_body(kind, &name);
        body["provider_models"] = json!([{"name": "model-a"}, {"name": "model-b"}, {"name": "model-c"}]);
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    }
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    let list = c.get("/providers").await;
    list.expect(200);
    for kind in ["openai", "anthropic", "google", "bedrock", "openai_compatible", "azure_openai"] {
        let name = format!("r-{}", kind.replace('_', "-"));
        let row = section(&list.body, &format!(r#"data-provider="{name}""#), "</tr>");
        assert!(row.contains(&format!("/assets/icons/{kind}.svg")), "{row}");
        assert!(row.contains(&format!("{}/llm/v1/providers/{name}", gw.base_url)), "proxy URL preview: {row}");
        assert!(row.contains("model-a") && row.contains("model-b") && !row.contains("model-c") && row.contains("+1"));
        assert!(row.contains("Enabled") && row.contains("just now") && row.contains("$0.00"), "{row}");
        for page in
            [format!("/providers/{name}"), format!("/providers/{name}?tab=connect"), format!("/providers/{name}/edit")]
        {
            let p = c.get(&page).await;
            p.expect(200);
            assert!(p.headers.get("server-timing").is_some());
        }
        let connect = c.get(&format!("/providers/{name}?tab=connect")).await;
        for id in ["code-curl", "code-python", "code-typescript", "token-cmd"] {
            assert!(section(&connect.body, &format!(r#"id="{id}""#), "</pre>").contains(&name), "{kind} {id}");
        }
    }
    // filters and pagination
    let p = c.get("/providers?type=google").await;
    assert!(p.body.contains("r-google") && !p.body.contains(r#"data-provider="r-openai""#));
    let p = c.get("/providers?per_page=10&q=r-").await;
    assert!(p.body.contains("1–6 of 6"), "{}", p.body);
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/r-bedrock", Some(json!({"enabled": false}))).await, 200);
    let p = c.get("/providers?status=disabled").await;
    assert!(p.body.contains(r#"data-provider="r-bedrock""#) && !p.body.contains(r#"data-provider="r-google""#));
    for page in [
        "/providers/new",
        "/secrets",
        "/tokens",
        "/usage",
        "/usage?group_by=model&range=30d",
        "/usage?range=ytd&group_by=token_type",
    ] {
        c.get(page).await.expect(200);
    }
    c.get("/providers/nope").await.expect(404);
    // assets: embedded, typed, cached by version, revalidated by ETag
    let r = gw.client.get(gw.url("/assets/app.css?v=1")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/css"));
    assert!(r.headers()["cache-control"].to_str().unwrap_or_default().contains("immutable"));
    let etag = r.headers()["etag"].to_str().unwrap_or_default().to_string();
    let r = gw
        .client
        .get(gw.url("/assets/icons/bedrock.svg"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200, "another file, another ETag");
    let r = gw.client.get(gw.url("/assets/app.css")).header("if-none-match", etag).send().await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or_default(), 304);
    // the console does not shadow the API or the health endpoints
    assert_eq!(gw.client.get(gw.url("/healthz")).send().await.map(|r| r.status().as_u16()).unwrap_or_default(), 200);
    expect(call(&gw, Method::GET, "/api/v1/llm-providers", None, None).await, 401);
}

async fn secrets_and_tokens_pages(db: TestDb) {
    let gw = gateway(db).await;
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    c.get("/secrets").await.expect(200);
    let p = c.post("/secrets", &[("name", "bad name"), ("value", "v")]).await;
    p.expect(400);
    assert!(section(&p.body, r#"id="secret-name""#, "</div>").contains("UPPER_SNAKE_CASE"));
    let p = c.post("/secrets", &[("name", "OPENAI_API_KEY"), ("value", "sk-page-LEAKCHECK")]).await;
    assert_eq!(p.location.as_deref(), Some("/secrets?notice=secret-created&name=OPENAI_API_KEY"));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "uses-key"))).await, 201);
    let page = c.get("/secrets").await;
    let row = section(&page.body, r#"data-secret="OPENAI_API_KEY""#, "</tr>");
    assert!(row.contains("uses-key"));
    // The provider's first use bound it to its host, shown in the row.
    let host = expect(admin(&gw, Method::GET, "/api/v1/secrets/OPENAI_API_KEY", None).await, 200)["bound_hosts"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!host.is_empty() && row.contains(&format!(r#"<code class="chip">{host}</code>"#)), "{row}");
    assert!(!page.body.contains("sk-page-LEAKCHECK"));
    // Bedrock's SigV4 keys are never sent, so they need no binding and the row says so
    for (name, value) in [("AWS_ACCESS_KEY_ID", "AKIAPAGE"), ("AWS_SECRET_ACCESS_KEY", "aws-page")] {
        expect(admin(&gw, Method::PUT, &format!("/api/v1/secrets/{name}"), Some(json!({"value": value}))).await, 201);
    }
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("bedrock", "signs"))).await, 201);
    let page = c.get("/secrets").await;
    let row = section(&page.body, r#"data-secret="AWS_SECRET_ACCESS_KEY""#, "</tr>");
    assert!(row.contains("never sent (signing key)") && !row.contains("not bound yet"), "{row}");
    // referenced: refused with the reason
    let p = c.post("/secrets/OPENAI_API_KEY/delete", &[]).await;
    p.expect(409);
    assert!(p.body.contains("referenced by providers: uses-key"), "{}", p.body);
    expect(admin(&gw, Method::DELETE, "/api/v1/llm-providers/uses-key", None).await, 204);
    c.get("/secrets").await;
    let p = c.post("/secrets/OPENAI_API_KEY/delete", &[]).await;
    assert_eq!(p.status, 303);
    expect(admin(&gw, Method::GET, "/api/v1/secrets/OPENAI_API_KEY", None).await, 404);

    // tokens: prefilled from the Connect tab's link, shown once, revocable
    let p = c.get("/tokens?providers=p1&role=invoker&name=p1-app").await;
    assert!(p.body.contains(r#"value="p1-app""#) && p.body.contains(r#"<option value="invoker" selected>"#));
    let p = c.post("/tokens", &[("name", ""), ("role", "invoker")]).await;
    p.expect(400);
    assert!(section(&p.body, r#"id="token-name""#, "</div>").contains("is required"));
    let p = c
        .post(
            "/tokens",
            &[("name", "ci-bot"), ("role", "invoker"), ("agent", "ci-bot"), ("expires_at", "2099-01-01T00:00")],
        )
        .await;
    // Post/Redirect/Get: the create answers 303; the token is never in the URL
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/tokens?notice=token-created"));
    let sealed = p.set_cookie("tollgate_new_token").unwrap_or_else(|| panic!("no sealed token cookie"));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/tokens", "Max-Age=120"] {
        assert!(sealed.contains(attr), "{attr} missing in {sealed}");
    }
    assert!(!sealed.contains("tg_"), "the cookie is sealed: {sealed}");
    let shown = c.get("/tokens?notice=token-created").await;
    shown.expect(200);
    let token = section(&shown.body, r#"id="new-token-value">"#, "</code>")
        .trim_start_matches(r#"id="new-token-value">"#)
        .to_string();
    assert!(token.starts_with("tg_") && token.len() == 46, "{token}");
    assert_eq!(shown.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    assert!(shown.set_cookie("tollgate_new_token").unwrap_or_default().contains("Max-Age=0"), "shown once: cleared");
    // the form after a create starts again on the least privilege
    let roles = section(&shown.body, r#"id="token-role""#, "</select>");
    assert!(roles.contains(r#"<option value="invoker" selected>"#), "{roles}");
    assert_eq!(roles.matches(" selected>").count(), 1, "{roles}");
    // reloading the page after the create neither shows the token again nor creates another
    let again = c.get("/tokens?notice=token-created").await;
    again.expect(200);
    assert!(!again.body.contains(&token), "a token is shown once");
    assert!(again.body.contains("shown once"), "{}", again.body);
    let (_, list) = admin(&gw, Method::GET, "/api/v1/tokens", None).await;
    let n = list["tokens"].as_array().map_or(0, |a| a.iter().filter(|t| t["name"] == "ci-bot").count());
    assert_eq!(n, 1, "one create, one token: {list}");
    // the sealed cookie opens in no other session
    let mut other = Console::new(&gw);
    other.sign_in(&gw.admin_token).await;
    let value = sealed.split(';').next().unwrap_or_default().to_string();
    let r = other
        .client
        .get(format!("{}/tokens", gw.base_url))
        .header("cookie", value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body = r.text().await.unwrap_or_default();
    assert!(!body.contains(&token) && !body.contains("new-token-value"), "another session sees nothing");
    assert!(section(&again.body, r#"data-token="ci-bot""#, "</tr>").contains("Jan 1, 2099 00:00 UTC"));
    // the new token works on the proxy side (auth) and is revoked from the page
    let (_, list) = admin(&gw, Method::GET, "/api/v1/tokens", None).await;
    let id = list["tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "ci-bot"))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let p = c.post(&format!("/tokens/{id}/revoke"), &[]).await;
    assert_eq!(p.location.as_deref(), Some("/tokens?notice=revoked"));
    // revoked: gone for GET, listed with its status for audit
    let (s, _) = admin(&gw, Method::GET, &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(s, 410);
    let (_, all) = admin(&gw, Method::GET, "/api/v1/tokens", None).await;
    let t =
        all["tokens"].as_array().and_then(|a| a.iter().find(|t| t["id"] == id.as_str())).cloned().unwrap_or_default();
    assert_eq!(t["status"], "revoked");
    // the last admin cannot be revoked
    let me = list["tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["role"] == "admin"))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_string();
    c.get("/tokens").await;
    let p = c.post(&format!("/tokens/{me}/revoke"), &[]).await;
    p.expect(409);
    assert!(p.body.contains("last lasting admin token"));
    // the create form of that page is on the least privilege too, listed first
    let roles = section(&p.body, r#"id="token-role""#, "</select>");
    assert!(roles.contains(r#"<option value="invoker" selected>"#), "{roles}");
    assert!(roles.find("invoker") < roles.find("admin"), "least privilege first: {roles}");
}

async fn spend_on_pages_matches_the_spending_api(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({"provider_models": [{"name": "gpt-4o-mini"}, {"name": "gpt-4o"}]})).await;
    for model in ["gpt-4o-mini", "gpt-4o", "gpt-4o"] {
        let r = rig
            .post("/chat/completions", &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    rig.events(3).await;
    let gw = &rig.gw;
    let (_, summary) = admin(gw, Method::GET, "/api/v1/spending/summary", None).await;
    let total = summary["stats"]["total_cost_microcents"].as_i64().unwrap_or_default();
    assert!(total > 0, "{summary}");
    let usd = |mc: i64| {
        let cents = (mc + 500_000) / 1_000_000;
        if cents == 0 { "&#60; $0.01".to_string() } else { format!("${}.{:02}", cents / 100, cents % 100) }
    };
    let mut c = Console::new(gw);
    c.sign_in(&gw.admin_token).await;
    // list: 7-day spend and a sparkline
    let list = c.get("/providers").await;
    let row = section(&list.body, r#"data-provider="p-openai""#, "</tr>");
    assert!(row.contains(&usd(total)) && row.contains("<polyline"), "{row}");
    // detail: KPIs and per-model spend
    let d = c.get("/providers/p-openai").await;
    assert!(section(&d.body, r#"id="kpi-spend""#, "</div>\n  </div>").contains(&usd(total)));
    assert!(section(&d.body, r#"id="kpi-requests""#, "</div>\n  </div>").contains(">3<"));
    let tokens = summary["stats"]["total_tokens"].as_i64().unwrap_or_default();
    assert!(section(&d.body, r#"id="kpi-tokens""#, "</div>\n  </div>").contains(&tokens.to_string()));
    let (_, by_model) = admin(gw, Method::GET, "/api/v1/spending/breakdown?dimension=model", None).await;
    for e in by_model["entries"].as_array().cloned().unwrap_or_default() {
        let key = e["key"].as_str().unwrap_or_default();
        let row = section(&d.body, &format!(r#"data-model="{key}""#), "</tr>");
        assert!(row.contains(&usd(e["stats"]["total_cost_microcents"].as_i64().unwrap_or_default())), "{row}");
    }
    // Cost & Usage: totals, one zero-height bar per empty day, the footer, filters, CSV
    let u = c.get("/usage?range=7d&provider=p-openai").await;
    u.expect(200);
    assert!(section(&u.body, r#"id="headline""#, "</div>\n</div>").contains(&usd(total)));
    assert!(u.body.contains(r#"data-buckets="7""#));
    assert_eq!(section(&u.body, r#"id="chart-spend""#, "</svg>").matches(r#"class="bar-empty""#).count(), 6);
    assert!(
        section(&u.body, r#"id="cost-sums""#, "</section>")
            .contains(&format!("Total</span><span class=\"v\">{}", usd(total)))
    );
    assert!(u.body.contains(r#"data-dim="provider" data-value="p-openai""#), "the filter chip");
    let by_model_page = c.get("/usage?range=7d&group_by=model&model=gpt-4o").await;
    let gpt4o = by_model["entries"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["key"] == "gpt-4o"))
        .map(|e| e["stats"]["total_cost_microcents"].as_i64().unwrap_or_default())
        .unwrap_or_default();
    assert!(section(&by_model_page.body, r#"id="headline""#, "</div>\n</div>").contains(&usd(gpt4o)));
    assert!(!by_model_page.body.contains(r#"data-key="gpt-4o-mini""#));
    // a filter with no traffic: empty, not an error
    let none = c.get("/usage?agent=nobody").await;
    assert!(none.body.contains(r#"id="no-usage""#));
    // a custom range is canonicalised into ISO-8601 in the URL
    let p = c.get("/usage?range=custom&customStart=2026-11-01T00:00&customEnd=2026-11-02").await;
    assert_eq!(
        p.location.as_deref(),
        Some("/usage?range=custom&customStart=2026-11-01T00:00:00Z&customEnd=2026-11-03T00:00:00Z")
    );
    let p = c.get(p.location.as_deref().unwrap_or_default()).await;
    p.expect(200);
    assert!(
        p.body.contains("Nov 1 – Nov 2, 2026 · hourly buckets"),
        "{}",
        section(&p.body, "usage-subtitle", "</div>")
    );
    let p = c.get("/usage?range=custom&customStart=2026-11-05&customEnd=2026-11-01").await;
    p.expect(400);
    assert!(p.body.contains("customStart must be before customEnd"));
    // CSV of the same view
    let csv = c.get("/usage/export.csv?range=7d&group_by=model").await;
    csv.expect(200);
    assert!(csv.headers["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    let rows: Vec<&str> = csv.body.lines().collect();
    assert!(rows[0].starts_with("bucket_start,dimension,key,label,deleted,requests"));
    let sum: i64 = rows[1..].iter().filter_map(|r| r.split(',').nth(9)?.parse::<i64>().ok()).sum();
    assert_eq!(sum, total, "{}", csv.body);
    // By model the table counts requests per row (2 + 1); by token type there is no per-type
    // request count, so the column is left out instead of repeating the total on every row.
    let by_model_page = c.get("/usage?range=7d&group_by=model").await;
    let by_model_table = section(&by_model_page.body, r#"id="breakdown""#, "</table>");
    assert!(by_model_table.contains("Requests</th>"), "{by_model_table}");
    assert!(section(by_model_table, r#"data-key="gpt-4o""#, "</tr>").contains(r#"<td class="num">2</td>"#));
    let by_type = c.get("/usage?range=7d&group_by=token_type").await;
    by_type.expect(200);
    let table = section(&by_type.body, r#"id="breakdown""#, "</table>");
    assert!(table.contains(r#"data-key="input""#) && !table.contains("Requests"), "{table}");
    assert!(!section(table, r#"data-key="input""#, "</tr>").contains(r#"<td class="num">3</td>"#), "{table}");
    let csv = c.get("/usage/export.csv?range=7d&group_by=token_type").await;
    let input_row = csv.body.lines().find(|l| l.contains(",token_type,input,")).unwrap_or_default();
    let cells: Vec<&str> = input_row.split(',').collect();
    assert_eq!(cells.get(5..8), Some(&["", "", ""][..]), "the request counts are empty: {}", csv.body);
}

async fn unknown_models_are_saved_with_a_visible_warning(db: TestDb) {
    let gw = gateway(db).await;
    secret(&gw, "ANTHROPIC_API_KEY", "sk-ant").await;
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    c.get("/providers/new").await.expect(200);
    // a form posted without the script: one catalog model, one typed ID the catalog lacks
    let p = c
        .post(
            "/providers/new",
            &[
                ("display_name", "Typed"),
                ("name", "typed"),
                ("type", "anthropic"),
                ("anthropic_config.api_key_ref.mode", "existing"),
                ("anthropic_config.api_key_ref", "ANTHROPIC_API_KEY"),
                ("m0.name", "claude-sonnet-4-6"),
                ("m1.name", "sonnet-4-6"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let detail = c.get(p.location.as_deref().unwrap_or_default()).await;
    detail.expect(200);
    let warn = section(&detail.body, r#"id="model-warnings""#, "</div>\n");
    assert!(
        warn.contains("model &#34;sonnet-4-6&#34; is not in the catalog for type anthropic: it will be unpriced"),
        "{warn}"
    );
    assert!(!warn.contains("claude-sonnet-4-6"), "a catalog model is not warned about: {warn}");
    // the edit form says it next to the row
    let edit = c.get("/providers/typed/edit").await;
    let row = section(&edit.body, r#"data-name="sonnet-4-6""#, "</tr>");
    assert!(row.contains(r#"class="field-warn""#) && row.contains("not in the catalog"), "{row}");
    assert!(row.contains(r#"data-custom="1""#), "{row}");
    let row = section(&edit.body, r#"data-name="claude-sonnet-4-6""#, "</tr>");
    assert!(!row.contains("field-warn") && row.contains(r#"data-catalog-type="anthropic""#), "{row}");
}

async fn the_bedrock_picker_offers_inference_profiles(db: TestDb) {
    let gw = gateway(db).await;
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    let r = c.client.get(format!("{}/ui/catalog?type=bedrock", gw.base_url)).send().await;
    let v: Value = r.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    let names: Vec<&str> =
        v["models"].as_array().map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect()).unwrap_or_default();
    let catalog = tollgate_core::Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
    let profile_only: Vec<&str> = catalog
        .models_of(tollgate_core::ProviderType::Bedrock)
        .filter(|m| m.requires_inference_profile)
        .map(|m| m.name.as_str())
        .collect();
    assert!(profile_only.contains(&"anthropic.claude-sonnet-4-6"));
    for bare in &profile_only {
        assert!(!names.contains(bare), "{bare} is offered by its bare id, which the gateway refuses");
    }
    // its profiles are offered instead, next to each other
    let sonnet: Vec<&str> = names.iter().copied().filter(|n| n.ends_with(".anthropic.claude-sonnet-4-6")).collect();
    assert_eq!(sonnet, catalog.inference_profiles_for("anthropic.claude-sonnet-4-6"));
    let at = names.iter().position(|n| *n == sonnet[0]).unwrap_or_default();
    assert_eq!(&names[at..at + sonnet.len()], &sonnet[..], "a model's profiles sort together");
    // models Bedrock serves on demand stay bare
    assert!(names.contains(&"ai21.jamba-1-5-large-v1:0"), "{names:?}");
}

async fn no_user_and_no_model_filters_narrow_the_numbers(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let gw = &rig.gw;
    let (_, t) = admin(
        gw,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "ana", "role": "invoker", "user": "ana@example.com"})),
    )
    .await;
    let ana = t["token"].as_str().unwrap_or_default().to_string();
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    for token in [ana.as_str(), ana.as_str(), rig.token.as_str()] {
        let r = send(crate::proxy::sdk_auth(gw.client.post(rig.url("/chat/completions")), "openai", token).json(&chat))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // a request without a model, by the token without a user
    let r = send(rig.request(Method::GET, "/models")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = rig.events(4).await;
    assert_eq!(events.iter().filter(|e| e.user.is_none()).count(), 2);
    assert_eq!(events.iter().filter(|e| e.model.is_none()).count(), 1);
    let mut c = Console::new(gw);
    c.sign_in(&gw.admin_token).await;
    let requests = |body: &str| section(body, "Requests</span>", "</div>").to_string();
    let all = c.get("/usage?range=7d").await;
    assert!(requests(&all.body).contains(">4<"), "{}", requests(&all.body));
    // the filter menus offer "(unattributed)" and "(no model)" as real choices; the placeholder is not one
    let menu = section(&all.body, r#"id="filter-add""#, "</select>");
    assert!(menu.contains(r#"<option value="" disabled selected>"#), "{menu}");
    assert!(menu.contains(r#"<option value="user:">User: (unattributed)</option>"#), "{menu}");
    assert!(menu.contains(r#"<option value="model:">Model: (no model)</option>"#), "{menu}");
    let p = c.get("/usage?range=7d&add=user%3A").await;
    assert_eq!(p.location.as_deref(), Some("/usage?range=7d&user="), "an empty value is a real choice");
    // no user: the two requests of the token without one
    let p = c.get("/usage?range=7d&user=").await;
    p.expect(200);
    assert!(requests(&p.body).contains(">2<"), "{}", requests(&p.body));
    assert!(p.body.contains(r#"data-dim="user" data-value="""#) && p.body.contains("(unattributed)"), "the chip");
    let p = c.get("/usage?range=7d&user=ana%40example.com").await;
    assert!(requests(&p.body).contains(">2<"), "{}", requests(&p.body));
    // no model: the model list request only
    let p = c.get("/usage?range=7d&model=").await;
    assert!(requests(&p.body).contains(">1<"), "{}", requests(&p.body));
    let p = c.get("/usage?range=7d&model=&user=").await;
    assert!(requests(&p.body).contains(">1<"), "{}", requests(&p.body));
    // the CSV of the view agrees
    let csv = c.get("/usage/export.csv?range=7d&user=").await;
    let col = csv.body.lines().next().and_then(|h| h.split(',').position(|c| c == "requests"));
    let col = col.unwrap_or_else(|| panic!("no requests column: {}", csv.body));
    let n: i64 = csv.body.lines().skip(1).filter_map(|r| r.split(',').nth(col)?.parse::<i64>().ok()).sum();
    assert_eq!(n, 2, "{}", csv.body);
}

async fn show_commands_follow_the_checked_model(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    let mut listed = provider_body("anthropic", "listed");
    listed["provider_models"] = json!([{"name": "claude-haiku-4-5"}, {"name": "claude-sonnet-4-6"}]);
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(listed)).await, 201);
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "every"))).await, 201);
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("bedrock", "rock"))).await, 201);
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    // listed models: the first is selected, and the commands name it
    let d = c.get("/providers/listed").await;
    let cli = section(&d.body, r#"id="cmd-2""#, "</pre>");
    assert!(cli.contains(">tollgate provider check listed --model claude-haiku-4-5"), "{cli}");
    // the script gets both forms: without a model, and with a slot for the one picked
    let slot = section(&d.body, "data-model-slot=\"", "\"").trim_start_matches("data-model-slot=\"").to_string();
    assert!(!slot.is_empty());
    assert!(cli.contains(&format!(r#"data-template="tollgate provider check listed --model {slot}""#)), "{cli}");
    assert!(cli.contains(r#"data-any="tollgate provider check listed""#), "{cli}");
    // the copy button sits beside the title, not over the command
    let head = section(&d.body, r#"<div class="cmd-head">"#, "</div>");
    assert!(head.contains(r#"data-copy-from="cmd-1""#), "{head}");
    // every model allowed: "Any model" is selected, so the commands name none
    let d = c.get("/providers/every").await;
    let cli = section(&d.body, r#"id="cmd-2""#, "</pre>");
    assert!(
        cli.ends_with(">tollgate provider check every") || cli.contains(">tollgate provider check every<"),
        "{cli}"
    );
    assert!(!section(&d.body, r#"id="cmd-1""#, "</pre>").contains("-d '{"), "no model in the check body");
    // Bedrock: the card says the probe goes to the control plane, not the Base URL
    let d = c.get("/providers/rock").await;
    let note = section(&d.body, r#"id="probe-note""#, "</p>");
    assert!(note.contains("control plane") && note.contains("does not call") && note.contains("Base URL"), "{note}");
    assert!(note.contains("/foundation-models"), "{note}");
}

async fn form_polish(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "polish"))).await, 201);
    let mut c = Console::new(&gw);
    c.sign_in(&gw.admin_token).await;
    // the edit page has its type: no "Choose a provider type"
    let edit = c.get("/providers/polish/edit").await;
    edit.expect(200);
    assert!(!edit.body.contains("Choose a provider type"), "{}", section(&edit.body, r#"id="config-card""#, "</h2>"));
    assert!(c.get("/providers/new").await.body.contains("Choose a provider type"));
    // an inline "New" secret with a bad name: its error appears once, under the name
    let p = c
        .post(
            "/providers/new",
            &[
                ("display_name", "Inline"),
                ("name", "inline"),
                ("type", "anthropic"),
                ("anthropic_config.api_key_ref.mode", "new"),
                ("anthropic_config.api_key_ref.new_name", "lower_case"),
                ("anthropic_config.api_key_ref.new_value", "v"),
            ],
        )
        .await;
    p.expect(400);
    let box_ = section(&p.body, r#"data-secret-field="anthropic_config.api_key_ref""#, "data-secret-field=");
    assert_eq!(box_.matches("field-error").count(), 1, "{box_}");
    assert_eq!(box_.matches("must be an UPPER_SNAKE_CASE").count(), 1, "{box_}");
    // Disable asks first
    let d = c.get("/providers/polish").await;
    let disable = section(&d.body, r#"action="/providers/polish/disable""#, ">");
    assert!(disable.contains("data-confirm=") && disable.contains("403"), "{disable}");
    // a secret in use cannot be deleted from the page, and the page does not pretend otherwise
    secret(&gw, "SPARE_KEY", "spare").await;
    let s = c.get("/secrets").await;
    let used = section(&s.body, r#"data-secret="OPENAI_API_KEY""#, "</tr>");
    assert!(!used.contains("/secrets/OPENAI_API_KEY/delete") && used.contains("disabled"), "{used}");
    assert!(used.contains("remove it from"), "{used}");
    let spare = section(&s.body, r#"data-secret="SPARE_KEY""#, "</tr>");
    assert!(spare.contains("/secrets/SPARE_KEY/delete") && !spare.contains("can no longer use it"), "{spare}");
    // a Resource ID that is taken is not ticked in the Summary when the form comes back
    let p = c
        .post(
            "/providers/new",
            &[
                ("display_name", "Polish"),
                ("name", "polish"),
                ("type", "openai"),
                ("openai_config.api_key_ref.mode", "existing"),
                ("openai_config.api_key_ref", "OPENAI_API_KEY"),
            ],
        )
        .await;
    p.expect(400);
    assert!(section(&p.body, r#"id="sum-name""#, "</li>").starts_with(r#"id="sum-name" >"#), "not done");
    assert!(p.body.contains(r#"data-name-error="true""#));
}

/// Tokens show when they were last used and what they spent over the last 7 UTC days, in the
/// API and on the tokens page; both follow the stored events, and the spend leaves the window
/// while the last use stays.
async fn tokens_show_last_use_and_7_day_spend(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let gw = &rig.gw;
    let idle = expect(
        admin(gw, Method::POST, "/api/v1/tokens", Some(json!({"name": "idle-app", "role": "invoker"}))).await,
        201,
    );
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        let r = rig.post("/chat/completions", &chat).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let events = rig.events(2).await;
    let token_id = events[0].token_id.clone().unwrap_or_default();
    assert!(events.iter().all(|e| e.token_id.as_deref() == Some(&*token_id)), "{events:?}");
    let spend: i64 = events.iter().map(|e| e.cost.total).sum();
    assert!(spend > 0, "a priced model: {events:?}");
    let last = events.iter().map(|e| e.ts_ms).max().unwrap_or_default();
    let of = |list: &Value, id: &str| {
        list["tokens"].as_array().and_then(|a| a.iter().find(|t| t["id"] == id)).cloned().unwrap_or(Value::Null)
    };
    let list = expect(admin(gw, Method::GET, "/api/v1/tokens", None).await, 200);
    let used = of(&list, &token_id);
    assert_eq!(used["last_used_at"], tollgate_server::time::rfc3339(last), "{used}");
    assert_eq!(used["requests_7d"], 2, "{used}");
    assert_eq!(used["spend_7d_microcents"], spend, "{used}");
    let idle_view = of(&list, idle["id"].as_str().unwrap_or_default());
    assert!(idle_view["last_used_at"].is_null() && idle_view["spend_7d_microcents"] == 0, "{idle_view}");
    let one = expect(admin(gw, Method::GET, &format!("/api/v1/tokens/{token_id}"), None).await, 200);
    assert_eq!(one["spend_7d_microcents"], spend, "{one}");

    let mut c = Console::new(gw);
    c.sign_in(&gw.admin_token).await;
    let page = c.get("/tokens").await;
    page.expect(200);
    let row = section(&page.body, &format!(r#"data-token="{}""#, used["name"].as_str().unwrap_or_default()), "</tr>");
    assert!(section(row, r#"data-col="last-used""#, "</td>").contains("just now"), "{row}");
    assert!(section(row, r#"data-col="spend-7d""#, "</td>").contains("2 req"), "{row}");
    let idle_row = section(&page.body, r#"data-token="idle-app""#, "</tr>");
    assert!(section(idle_row, r#"data-col="last-used""#, "</td>").contains("never"), "{idle_row}");

    // eight days on: out of the 7-day window, still the last use
    gw.clock.advance(std::time::Duration::from_secs(8 * 86_400));
    let later = of(&expect(admin(gw, Method::GET, "/api/v1/tokens", None).await, 200), &token_id);
    assert_eq!(later["last_used_at"], used["last_used_at"], "{later}");
    assert_eq!((later["requests_7d"].as_i64(), later["spend_7d_microcents"].as_i64()), (Some(0), Some(0)), "{later}");
    let mut c = Console::new(gw); // the session from 8 days ago has expired
    c.sign_in(&gw.admin_token).await;
    let page = c.get("/tokens").await;
    let row = section(&page.body, &format!(r#"data-token="{}""#, used["name"].as_str().unwrap_or_default()), "</tr>");
    assert!(section(row, r#"data-col="last-used""#, "</td>").contains("8 days ago"), "{row}");
}
