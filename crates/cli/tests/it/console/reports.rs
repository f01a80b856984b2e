//! One reporting engine: for the same query the console's Cost & Usage page (its breakdown
//! table, its headline and the CSV its "Download CSV" link offers) and the admin spending API
//! (`breakdown`, `timeseries`, `summary`, `export.csv`) give the same numbers, and both CSV
//! exports are the same bytes. Usage is made by real requests through the proxy at times set
//! on the gateway's clock (hours and days apart), by tokens with and without a user and agent,
//! on two providers (one deleted afterwards) and with a request that has no model.

use super::{Console, section};
use crate::both_backends;
use crate::proxy::{Rig, provider_at, sdk_auth, send};
use crate::support::*;
use std::collections::BTreeMap;

both_backends!(console_and_api_report_the_same_numbers);

const T0: i64 = 1_795_168_800_000; // 2026-11-20T10:00:00Z
const HOUR: i64 = 3_600_000;

/// A CSV row's numbers: requests (None when empty), tokens, cost, and the per-bucket pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Nums {
    requests: Option<i64>,
    tokens: i64,
    cost: i64,
    buckets: Vec<i64>,
}

impl Nums {
    fn add(&mut self, o: &Nums) {
        self.requests = match (self.requests, o.requests) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) if self.buckets.is_empty() => b,
            (a, _) => a,
        };
        self.tokens += o.tokens;
        self.cost += o.cost;
        if self.buckets.is_empty() {
            self.buckets = vec![0; o.buckets.len()];
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }

    fn of_api(stats: &Value) -> Nums {
        let b = &stats["buckets"];
        let buckets =
            ["input", "output", "cached_input", "cache_write_5m", "cache_write_1h", "cache_write_unknown", "reasoning"]
                .iter()
                .flat_map(|k| [b[k]["tokens"].as_i64().unwrap_or(-1), b[k]["cost_microcents"].as_i64().unwrap_or(-1)])
                .collect();
        Nums {
            requests: stats["total_requests"].as_i64(),
            tokens: stats["total_tokens"].as_i64().unwrap_or(-1),
            cost: stats["total_cost_microcents"].as_i64().unwrap_or(-1),
            buckets,
        }
    }

    fn is_zero(&self) -> bool {
        self.tokens == 0 && self.cost == 0 && self.requests.unwrap_or(0) == 0
    }
}

/// CSV rows by (bucket_start, key). Checks the header is the documented one.
fn parse_csv(csv: &str) -> BTreeMap<(String, String), Nums> {
    let mut lines = csv.lines();
    let head = lines.next().unwrap_or_default();
    assert!(
        head.starts_with(
            "bucket_start,dimension,key,label,deleted,requests,failed_requests,unpriced_requests,total_tokens,\
             total_cost_microcents,total_cost_usd,input_tokens,input_cost_microcents"
        ),
        "{head}"
    );
    let mut out = BTreeMap::new();
    for l in lines {
        // keys and labels of this test hold no commas or quotes
        let c: Vec<&str> = l.split(',').collect();
        assert_eq!(c.len(), 11 + 14, "{l}");
        let n = |i: usize| c[i].parse::<i64>().unwrap_or_else(|_| panic!("cell {i} of {l}"));
        let nums = Nums {
            requests: (!c[5].is_empty()).then(|| n(5)),
            tokens: n(8),
            cost: n(9),
            buckets: (11..25).map(n).collect(),
        };
        out.insert((c[0].to_string(), c[2].to_string()), nums);
    }
    out
}

/// The breakdown table of a Cost & Usage page: key → (requests if shown, tokens).
fn parse_table(html: &str) -> BTreeMap<String, (Option<i64>, i64)> {
    let table = section(html, r#"id="breakdown""#, "</table>");
    let shows_requests = table.contains("Requests</th>");
    let mut out = BTreeMap::new();
    for row in table.split(r#"<tr data-key=""#).skip(1) {
        let key = row.split('"').next().unwrap_or_default().to_string();
        let nums: Vec<i64> = row
            .split(r#"<td class="num">"#)
            .skip(1)
            .filter_map(|c| c.split('<').next())
            .filter(|c| !c.contains('$') && !c.contains('%') && !c.contains('—'))
            .map(|c| c.replace(',', "").parse::<i64>().unwrap_or_else(|_| panic!("cell {c} in {row}")))
            .collect();
        let v = if shows_requests { (Some(nums[0]), nums[1]) } else { (None, nums[0]) };
        out.insert(key, v);
    }
    out
}

/// The console's "Download CSV" link (as the page offers it).
fn csv_link(html: &str) -> String {
    let at = html.find(r#"id="download-csv""#).unwrap_or_else(|| panic!("no CSV link"));
    let before = &html[..at];
    let href = before.rfind("href=\"").map(|i| &before[i + 6..]).unwrap_or_default();
    href.split('"').next().unwrap_or_default().replace("&amp;", "&").replace("&#38;", "&")
}

async fn console_and_api_report_the_same_numbers(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({"provider_models": [{"name": "gpt-4o-mini"}, {"name": "gpt-4o"}]})).await;
    let gw = &rig.gw;
    // a second provider of the same type on the same fake, deleted after its traffic
    expect(
        admin(
            gw,
            Method::POST,
            "/api/v1/llm-providers",
            Some(provider_at("openai", "p-second", &rig.up.provider_base_url(), json!({}))),
        )
        .await,
        201,
    );
    let token = |body: Value| async move {
        let (_, t) = admin(gw, Method::POST, "/api/v1/tokens", Some(body)).await;
        t["token"].as_str().unwrap_or_default().to_string()
    };
    let ana = token(json!({"name": "ana", "role": "invoker", "user": "ana@example.com", "agent": "etl"})).await;
    let bob = token(json!({"name": "bob", "role": "invoker", "user": "bob@example.com"})).await;
    let anon = rig.token.clone();
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let call = |provider: &'static str, tok: String, body: Option<Value>| {
        let url = gw.url(&format!(
            "/llm/v1/providers/{provider}{}",
            if body.is_some() { "/chat/completions" } else { "/models" }
        ));
        let req = match &body {
            Some(b) => gw.client.post(url).json(b),
            None => gw.client.get(url),
        };
        async move {
            let r = send(sdk_auth(req, "openai", &tok)).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    };
    // three moments: 10:00, 13:00 the same day, and the next day at 09:00
    let mut n = 0;
    for (at, plan) in [
        (
            T0,
            vec![
                ("p-openai", &ana, Some("gpt-4o")),
                ("p-openai", &ana, Some("gpt-4o-mini")),
                ("p-second", &bob, Some("gpt-4o")),
                ("p-openai", &anon, None),
            ],
        ),
        (
            T0 + 3 * HOUR,
            vec![
                ("p-openai", &bob, Some("gpt-4o")),
                ("p-openai", &anon, Some("gpt-4o-mini")),
                ("p-second", &anon, Some("gpt-4o-mini")),
            ],
        ),
        (
            T0 + 23 * HOUR,
            vec![
                ("p-openai", &ana, Some("gpt-4o")),
                ("p-second", &ana, Some("gpt-4o")),
                ("p-openai", &anon, None),
                ("p-openai", &bob, Some("gpt-4o-mini")),
            ],
        ),
    ] {
        gw.clock.set_now_ms(at);
        for (p, t, model) in plan {
            call(p, t.clone(), model.map(chat)).await;
            n += 1;
        }
    }
    let events = rig.events(n).await;
    assert_eq!(events.iter().filter(|e| e.model.is_none()).count(), 2);
    expect(admin(gw, Method::DELETE, "/api/v1/llm-providers/p-second", None).await, 204);
    gw.clock.set_now_ms(T0 + 2 * 24 * HOUR);

    let mut c = Console::new(gw);
    c.sign_in(&gw.admin_token).await;
    let two_days = (
        "customStart=2026-11-20T00:00:00Z&customEnd=2026-11-22T00:00:00Z",
        "start=2026-11-20T00:00:00Z&end=2026-11-22T00:00:00Z",
        "hour",
    );
    let week = (
        "customStart=2026-11-16T00:00:00Z&customEnd=2026-11-23T00:00:00Z",
        "start=2026-11-16T00:00:00Z&end=2026-11-23T00:00:00Z",
        "day",
    );
    let cases: Vec<((&str, &str, &str), &str, &str)> = vec![
        (two_days, "provider", ""),
        (week, "provider", ""),
        (two_days, "model", ""),
        (week, "model", "&user="),
        (two_days, "user", ""),
        (week, "user", "&model=gpt-4o"),
        (two_days, "token_type", ""),
        (week, "token_type", "&provider=p-openai"),
        (two_days, "agent", "&user=ana%40example.com"),
        (week, "model", "&model="),
        (two_days, "provider", "&token_type=input"),
        (week, "none", "&agent="),
    ];
    let mut compared_rows = 0;
    for ((console_window, api_window, bucket), group, filters) in cases {
        let what = format!("{group} over {api_window}{filters}");
        // deleted providers listed one by one, as the API does (the page folds them by default)
        let page_url = format!("/usage?range=custom&{console_window}&group_by={group}{filters}&show_deleted=1");
        let page = c.get(&page_url).await;
        page.expect(200);
        let api_group = if group == "none" { String::new() } else { format!("&group_by={group}") };
        let api = |path: &str, extra: &str| format!("/api/v1/spending/{path}?{api_window}{filters}{extra}");

        // both CSV exports: the same bytes
        let console_csv = c.get(&csv_link(&page.body)).await;
        console_csv.expect(200);
        let api_csv = gw
            .client
            .get(gw.url(&api("export.csv", &format!("&bucket={bucket}{api_group}"))))
            .bearer_auth(&gw.admin_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(api_csv.status().as_u16(), 200);
        let api_csv = api_csv.text().await.unwrap_or_default();
        assert_eq!(console_csv.body, api_csv, "{what}: the two CSV exports differ");
        assert!(console_csv.body.lines().count() > 1, "{what}: no rows\n{}", console_csv.body);
        let csv = parse_csv(&console_csv.body);

        // the API's time series: each point equals the console CSV's row (absent = zero)
        let (_, ts) =
            admin(gw, Method::GET, &api("timeseries", &format!("&bucket={bucket}&limit=1000{api_group}")), None).await;
        assert_eq!(ts["truncated_key_count"], 0, "{what}: {ts}");
        for s in ts["series"].as_array().cloned().unwrap_or_default() {
            let key = s["key"].as_str().unwrap_or_default().to_string();
            for p in s["points"].as_array().cloned().unwrap_or_default() {
                let start = p["start"].as_str().unwrap_or_default().to_string();
                let api_nums = Nums::of_api(&p["stats"]);
                match csv.get(&(start.clone(), key.clone())) {
                    Some(row) => {
                        assert_eq!(row, &api_nums, "{what}: {key} at {start}");
                        compared_rows += 1;
                    }
                    None => assert!(api_nums.is_zero(), "{what}: {key} at {start} missing from the console CSV"),
                }
            }
        }

        // the breakdown table and the CSV summed per key against the API's breakdown
        let mut per_key: BTreeMap<String, Nums> = BTreeMap::new();
        for ((_, key), nums) in &csv {
            per_key.entry(key.clone()).or_default().add(nums);
        }
        let table = parse_table(&page.body);
        if group == "none" {
            let (_, s) = admin(gw, Method::GET, &api("summary", ""), None).await;
            let total = Nums::of_api(&s["stats"]);
            assert_eq!(per_key.get("all"), Some(&total), "{what}");
            assert_eq!(table.get("all"), Some(&(total.requests, total.tokens)), "{what}");
            continue;
        }
        let (_, b) = admin(gw, Method::GET, &api("breakdown", &format!("&dimension={group}")), None).await;
        let entries = b["entries"].as_array().cloned().unwrap_or_default();
        assert!(!entries.is_empty(), "{what}: {b}");
        for e in &entries {
            let key = e["key"].as_str().unwrap_or_default();
            let api_nums = Nums::of_api(&e["stats"]);
            match per_key.get(key) {
                Some(sum) => assert_eq!(sum, &api_nums, "{what}: {key}"),
                None => assert!(api_nums.is_zero(), "{what}: {key} missing from the console CSV"),
            }
            match table.get(key) {
                Some(row) => assert_eq!(row, &(api_nums.requests, api_nums.tokens), "{what}: {key} in the table"),
                None => assert!(api_nums.is_zero(), "{what}: {key} missing from the table"),
            }
            if group == "provider" && key == "p-second" {
                assert_eq!(e["deleted"], true, "{what}");
                let row = section(&page.body, r#"data-key="p-second""#, "</tr>");
                assert!(row.contains(">deleted<"), "{what}: {row}");
            }
        }
        assert_eq!(table.len(), entries.iter().filter(|e| !Nums::of_api(&e["stats"]).is_zero()).count(), "{what}");
        // the headline counts every request once, whatever the grouping
        let (_, s) = admin(gw, Method::GET, &api("summary", ""), None).await;
        let headline = section(&page.body, r#"id="headline""#, "</div>\n</div>");
        let requests = s["stats"]["total_requests"].as_i64().unwrap_or(-1);
        assert!(headline.contains(&format!(">{requests}<")), "{what}: {requests} requests\n{headline}");
    }
    assert!(compared_rows >= 40, "only {compared_rows} points compared");
}
