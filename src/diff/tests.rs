//! The diff on the real fixture bundles (tests/fixtures/tooljet-apps) and on edits made to them.

use serde_json::{Value, json};

use super::*;

const FIXTURES: [(&str, &str); 5] = [
    (
        "ai-powered-code-explainer",
        include_str!("../../tests/fixtures/tooljet-apps/ai-powered-code-explainer.json"),
    ),
    (
        "base64-encoder-decoder",
        include_str!("../../tests/fixtures/tooljet-apps/base64-encoder-decoder.json"),
    ),
    (
        "credit-card-test-data-generator",
        include_str!("../../tests/fixtures/tooljet-apps/credit-card-test-data-generator.json"),
    ),
    (
        "orders-dashboard",
        include_str!("../../tests/fixtures/tooljet-apps/orders-dashboard.json"),
    ),
    (
        "orders-report",
        include_str!("../../tests/fixtures/tooljet-apps/orders-report.json"),
    ),
];

fn fixture(name: &str) -> Value {
    let text = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .expect("known fixture");
    serde_json::from_str(text).expect("fixture is JSON")
}

fn app(b: &mut Value) -> &mut Value {
    &mut b["app"][0]["definition"]["appV2"]
}

/// The row of `list` (`components`, `pages`, …) named `name`; on a page when given.
fn row<'a>(b: &'a mut Value, list: &str, name: &str, page: Option<&str>) -> &'a mut Value {
    let page_id = page.map(|p| {
        app(b)["pages"]
            .as_array()
            .expect("pages")
            .iter()
            .find(|r| r["name"] == p)
            .expect("page")["id"]
            .clone()
    });
    app(b)[list]
        .as_array_mut()
        .expect("list")
        .iter_mut()
        .find(|r| r["name"] == name && page_id.as_ref().is_none_or(|p| &r["pageId"] == p))
        .unwrap_or_else(|| panic!("{list} {name}"))
}

fn id_of(b: &mut Value, list: &str, name: &str, page: Option<&str>) -> String {
    row(b, list, name, page)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// What a re-import and export does to a bundle: every id and timestamp new
/// ([`git_fixtures::tooljet::rekeyed`]), every list of rows in another order.
fn reid(b: &Value, salt: u32) -> Value {
    let bytes = git_fixtures::tooljet::rekeyed(b.to_string().as_bytes(), salt);
    let mut v: Value = serde_json::from_slice(&bytes).expect("still JSON");
    for list in [
        "pages",
        "components",
        "events",
        "dataQueries",
        "dataSources",
    ] {
        if let Some(rows) = app(&mut v)[list].as_array_mut() {
            rows.reverse();
        }
    }
    v
}

fn changed(d: &AppDiff) -> String {
    serde_json::to_string_pretty(d).expect("serialises")
}

/// `diff` and `same_app` agree, and the diff is the same computed twice.
fn checked_diff(a: &Value, b: &Value) -> AppDiff {
    let d = diff(a, b).expect("diffs");
    assert_eq!(d, diff(a, b).expect("diffs"), "deterministic");
    assert_eq!(
        same_app(a, b).expect("compares"),
        d.is_empty(),
        "same_app agrees with the diff: {}",
        changed(&d)
    );
    assert!(d.summary().chars().count() <= SUMMARY_MAX_CHARS);
    d
}

#[test]
fn a_fixture_is_the_same_app_as_itself() {
    for (name, _) in FIXTURES {
        let b = fixture(name);
        let d = checked_diff(&b, &b);
        assert!(d.is_empty(), "{name}: {}", changed(&d));
        assert_eq!(d.summary(), "no change");
    }
}

#[test]
fn regenerated_ids_timestamps_and_row_order_are_not_a_change() {
    for (name, _) in FIXTURES {
        let b = fixture(name);
        let again = reid(&b, 7);
        assert_ne!(b, again, "{name}: the re-keyed bundle differs as JSON");
        assert!(
            !again.to_string().contains(
                b["app"][0]["definition"]["appV2"]["id"]
                    .as_str()
                    .expect("id")
            ),
            "{name}: the app id is gone"
        );
        let d = checked_diff(&b, &again);
        assert!(d.is_empty(), "{name}: {}", changed(&d));
        assert_eq!(normalise(&b), normalise(&again));
        // And between two re-keyings of it.
        assert!(checked_diff(&reid(&b, 1), &reid(&b, 2)).is_empty());
    }
}

#[test]
fn ids_inside_3x_expressions_read_as_names() {
    // ToolJet 3.x writes `{{queries.<id>…}}` and `{{components.<id>…}}` in properties.
    let model = normalise(&fixture("ai-powered-code-explainer")).expect("model");
    let home = &model.pages["Home"];
    let values = home.components["dropdown1"].fields["properties.values"].to_string();
    assert!(
        values.contains("{{queries.getGeminiModels.data.models.map("),
        "{values}"
    );
    let disabled = home.components["button1"].fields["properties.disabledState"].to_string();
    assert!(
        disabled.contains("{{components.dropdown1.value"),
        "{disabled}"
    );
    assert!(
        !serde_json::to_string(&model)
            .expect("json")
            .contains("-4d22-a95e-")
    );
}

#[test]
fn a_2x_export_of_the_same_app_is_not_a_change() {
    // ToolJet 2.27 exports carry no `type`, write the static built-in data sources of the version
    // it exported (5 of them), and nulls where 3.x omits a field.
    let b = fixture("credit-card-test-data-generator");
    let mut old = reid(&b, 3);
    let a = app(&mut old);
    a.as_object_mut().expect("object").remove("type");
    let version = a["editingVersion"]["id"].clone();
    for kind in ["restapi", "runpy", "tooljetdb", "workflows"] {
        a["dataSources"].as_array_mut().expect("list").push(json!({
            "id": format!("00000000-0000-4000-8000-0000000000{}", kind.len()),
            "name": format!("{kind}default"), "kind": kind, "type": "static",
            "appVersionId": version, "scope": "local", "pluginId": null,
        }));
    }
    a["pages"][0]["icon"] = Value::Null;
    let d = checked_diff(&b, &old);
    assert!(d.is_empty(), "{}", changed(&d));
    // A module is not a front-end app.
    app(&mut old)["type"] = json!("module");
    let d = checked_diff(&b, &old);
    assert_eq!(d.settings.len(), 1, "{}", changed(&d));
    assert_eq!(d.settings[0].field, "type");
}

#[test]
fn not_an_app_is_an_error() {
    assert_eq!(diff(&json!({"x": 1}), &json!({})), Err(DiffError::NotAnApp));
    assert_eq!(same_app(&json!([]), &json!([])), Err(DiffError::NotAnApp));
    assert!(normalise(&json!({"app": [{"definition": null}]})).is_err());
}

#[test]
fn settings_name_icon_theme_global_settings_and_home_page() {
    let a = fixture("base64-encoder-decoder");
    let mut b = reid(&a, 4);
    let decoder = id_of(&mut b, "pages", "Decoder", None);
    let v = app(&mut b);
    v["name"] = json!("Base64 tools");
    v["icon"] = json!("lock");
    v["editingVersion"]["globalSettings"]["canvasBackgroundColor"] = json!("#101010");
    v["editingVersion"]["globalSettings"]["theme"] = json!({"id": 2, "name": "dark"});
    v["editingVersion"]["homePageId"] = json!(decoder);
    let d = checked_diff(&a, &b);
    assert_eq!(d.app, "Base64 tools");
    let got: Vec<(&str, Option<&str>, Option<&str>)> = d
        .settings
        .iter()
        .map(|c| (c.field.as_str(), c.from.as_deref(), c.to.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "globalSettings.canvasBackgroundColor",
                Some("\"#edeff5\""),
                Some("\"#101010\"")
            ),
            (
                "globalSettings.theme",
                None,
                Some("{\"id\":2,\"name\":\"dark\"}")
            ),
            (
                "homePage",
                Some("\"<page Encoder>\""),
                Some("\"<page Decoder>\"")
            ),
            ("icon", Some("\"server\""), Some("\"lock\"")),
            (
                "name",
                Some("\"base64-encoder-decoder\""),
                Some("\"Base64 tools\"")
            ),
        ]
    );
    assert!(
        d.pages.is_empty() && d.queries.is_empty(),
        "{}",
        changed(&d)
    );
    assert_eq!(d.summary(), "5 settings changed");
}

#[test]
fn pages_added_removed_and_renamed() {
    let a = fixture("base64-encoder-decoder");

    // Renamed in ToolJet: same id (and handle), new name.
    let mut b = a.clone();
    row(&mut b, "pages", "Decoder", None)["name"] = json!("Decode");
    let d = checked_diff(&a, &b);
    assert_eq!(d.pages.len(), 1, "{}", changed(&d));
    let p = &d.pages[0];
    assert_eq!(
        (p.name.as_str(), p.status, p.renamed_from.as_deref()),
        ("Decode", Status::Changed, Some("Decoder"))
    );
    assert!(p.components.is_empty() && p.changes.is_empty());
    // Renamed, and re-keyed by an export: found by its handle.
    let mut c = reid(&b, 5);
    let d = checked_diff(&a, &c);
    assert_eq!(d.pages[0].renamed_from.as_deref(), Some("Decoder"));
    // Renamed with a new handle too: found by its components.
    row(&mut c, "pages", "Decode", None)["handle"] = json!("decode");
    let d = checked_diff(&a, &c);
    assert_eq!(d.pages.len(), 1, "{}", changed(&d));
    assert_eq!(d.pages[0].renamed_from.as_deref(), Some("Decoder"));
    assert_eq!(d.pages[0].changes[0].field, "handle");

    // Removed: the page with its components and their events.
    let mut b = reid(&a, 6);
    let decoder = id_of(&mut b, "pages", "Decoder", None);
    let v = app(&mut b);
    v["pages"]
        .as_array_mut()
        .expect("pages")
        .retain(|p| p["id"] != decoder.as_str());
    let gone: Vec<Value> = v["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter(|c| c["pageId"] == decoder.as_str())
        .map(|c| c["id"].clone())
        .collect();
    v["components"]
        .as_array_mut()
        .expect("components")
        .retain(|c| c["pageId"] != decoder.as_str());
    v["events"]
        .as_array_mut()
        .expect("events")
        .retain(|e| !gone.contains(&e["sourceId"]));
    let d = checked_diff(&a, &b);
    assert_eq!(d.pages.len(), 1, "{}", changed(&d));
    assert_eq!(
        (d.pages[0].name.as_str(), d.pages[0].status),
        ("Decoder", Status::Removed)
    );
    assert_eq!(d.pages[0].components.len(), 7);
    assert!(
        d.pages[0]
            .components
            .iter()
            .all(|c| c.status == Status::Removed)
    );
    let names: Vec<&str> = d.pages[0]
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "button1", "input2", "output2", "text2", "text3", "text4", "text5"
        ]
    );
    // The query whose success handler controlled a component of that page now points at an id
    // that is nowhere in the app.
    assert_eq!(d.queries.len(), 1, "{}", changed(&d));
    let handler = &d.queries[0].events[0];
    assert_eq!(
        (d.queries[0].name.as_str(), handler.event.as_str()),
        ("Decode64", "onDataQuerySuccess")
    );
    assert_eq!(handler.changes[0].field, "componentId");
    assert_eq!(
        handler.changes[0].from.as_deref(),
        Some("\"<component Decoder/output2>\"")
    );
    assert!(d.events.is_empty());

    // Added: the reverse.
    let d = checked_diff(&b, &a);
    assert_eq!(
        (d.pages[0].name.as_str(), d.pages[0].status),
        ("Decoder", Status::Added)
    );
    assert_eq!(d.pages[0].components[0].status, Status::Added);
    assert_eq!(d.pages[0].components[0].component_type, "Button");
    assert_eq!(
        d.summary(),
        "1 page, 7 components, 1 query, 1 event changed"
    );
}

#[test]
fn components_added_removed_and_changed_per_page() {
    let a = fixture("ai-powered-code-explainer");
    let mut b = reid(&a, 8);
    let container1 = id_of(&mut b, "components", "container1", None);
    // Changed: a property, a style, the layout, the parent (an id, shown as the parent's name).
    let text1 = row(&mut b, "components", "text1", None);
    text1["properties"]["text"]["value"] = json!("ACME");
    text1["styles"]["textColor"]["value"] = json!("#ff0000");
    text1["layouts"][0]["top"] = json!(200);
    let text2 = row(&mut b, "components", "text2", None);
    text2["parent"] = Value::Null;
    // Removed.
    app(&mut b)["components"]
        .as_array_mut()
        .expect("components")
        .retain(|c| c["name"] != "text9");
    // Added: a copy of text8 under another name, with new ids, in container1.
    let mut copy = row(&mut b, "components", "text8", None).clone();
    copy["id"] = json!("0e0e0e0e-0000-4000-8000-000000000001");
    copy["name"] = json!("footer");
    copy["parent"] = json!(container1);
    app(&mut b)["components"]
        .as_array_mut()
        .expect("components")
        .push(copy);

    let d = checked_diff(&a, &b);
    assert_eq!(d.pages.len(), 1, "{}", changed(&d));
    let page = &d.pages[0];
    assert_eq!((page.name.as_str(), page.status), ("Home", Status::Changed));
    let got: Vec<(&str, &str, Status)> = page
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.component_type.as_str(), c.status))
        .collect();
    assert_eq!(
        got,
        [
            ("footer", "Text", Status::Added),
            ("text1", "Text", Status::Changed),
            ("text2", "Text", Status::Changed),
            ("text9", "Text", Status::Removed),
        ]
    );
    let fields = |i: usize| -> Vec<(String, Option<String>, Option<String>)> {
        page.components[i]
            .changes
            .iter()
            .map(|c| (c.field.clone(), c.from.clone(), c.to.clone()))
            .collect()
    };
    assert_eq!(
        fields(1),
        [
            (
                "layouts.desktop".to_string(),
                Some(
                    "{\"dimensionUnit\":\"count\",\"height\":40,\"left\":1,\"top\":10,\"width\":6}"
                        .to_string()
                ),
                Some(
                    "{\"dimensionUnit\":\"count\",\"height\":40,\"left\":1,\"top\":200,\"width\":6}"
                        .to_string()
                )
            ),
            (
                "properties.text".to_string(),
                Some("\"B R A N D\"".to_string()),
                Some("\"ACME\"".to_string())
            ),
            (
                "styles.textColor".to_string(),
                Some("\"#000\"".to_string()),
                Some("\"#ff0000\"".to_string())
            ),
        ]
    );
    assert_eq!(
        fields(2),
        [(
            "parent".to_string(),
            Some("\"<component container1>\"".to_string()),
            None
        )]
    );
    assert_eq!(d.summary(), "1 page, 4 components changed");
}

#[test]
fn a_component_moved_to_another_page_and_a_tab_parent() {
    let a = fixture("base64-encoder-decoder");
    let mut b = a.clone();
    let decoder = id_of(&mut b, "pages", "Decoder", None);
    let output1 = id_of(&mut b, "components", "output1", Some("Encoder"));
    // Components with the same name on two pages are told apart by page.
    row(&mut b, "components", "text5", Some("Encoder"))["pageId"] = json!(decoder);
    row(&mut b, "components", "text5", Some("Decoder"))["name"] = json!("text6");
    // A parent inside a Tabs-like container: `<id>-<tab>`.
    row(&mut b, "components", "text4", Some("Encoder"))["parent"] = json!(format!("{output1}-1"));
    let d = checked_diff(&a, &b);
    let summary: Vec<(String, String, Status)> = d
        .pages
        .iter()
        .flat_map(|p| {
            p.components
                .iter()
                .map(|c| (p.name.clone(), c.name.clone(), c.status))
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Decoder".to_string(), "text5".to_string(), Status::Changed),
            ("Decoder".to_string(), "text6".to_string(), Status::Added),
            ("Encoder".to_string(), "text4".to_string(), Status::Changed),
            ("Encoder".to_string(), "text5".to_string(), Status::Removed),
        ],
        "{}",
        changed(&d)
    );
    let parent = &d.pages[1].components[0].changes[0];
    assert_eq!(parent.field, "parent");
    assert_eq!(parent.to.as_deref(), Some("\"<component output1>-1\""));
    // The same edits on a re-keyed export give the same diff.
    assert_eq!(d, checked_diff(&reid(&a, 9), &reid(&b, 10)));
}

#[test]
fn events_added_removed_and_changed_by_target_name() {
    let a = fixture("base64-encoder-decoder");
    let mut b = reid(&a, 11);
    let decode = id_of(&mut b, "dataQueries", "Decode64", None);
    let encode = id_of(&mut b, "dataQueries", "Encode64", None);
    let encoder_button = id_of(&mut b, "components", "button1", Some("Encoder"));
    let decoder_button = id_of(&mut b, "components", "button1", Some("Decoder"));
    let input2 = id_of(&mut b, "components", "input2", Some("Decoder"));
    let events = app(&mut b)["events"].as_array_mut().expect("events");
    // Changed: the Encoder's button runs the other query (an id and a name in the handler).
    let on_click = events
        .iter_mut()
        .find(|e| e["sourceId"] == encoder_button.as_str())
        .expect("handler");
    on_click["event"]["queryId"] = json!(decode);
    on_click["event"]["queryName"] = json!("Decode64");
    // Removed: the Decoder's button handler.
    events.retain(|e| e["sourceId"] != decoder_button.as_str());
    // Added: a second onClick handler on the Encoder's button, and a page event.
    let mut extra = events[0].clone();
    extra["id"] = json!("0e0e0e0e-0000-4000-8000-000000000002");
    extra["sourceId"] = json!(encoder_button);
    extra["index"] = json!(1);
    extra["name"] = json!("onClick");
    extra["target"] = json!("component");
    extra["event"] = json!({"eventId": "onClick", "actionId": "show-alert", "message": "Encoded", "alertType": "success"});
    events.push(extra);
    // The Encode64 query's success handler now controls another component.
    let on_success = events
        .iter_mut()
        .find(|e| e["sourceId"] == encode.as_str())
        .expect("query handler");
    on_success["event"]["componentId"] = json!(input2);

    let d = checked_diff(&a, &b);
    let encoder = d.pages.iter().find(|p| p.name == "Encoder").expect("page");
    let button = &encoder.components[0];
    assert_eq!(
        (button.name.as_str(), button.status),
        ("button1", Status::Changed)
    );
    assert!(button.changes.is_empty(), "{}", changed(&d));
    let got: Vec<(&str, Status, &str)> = button
        .events
        .iter()
        .map(|e| (e.event.as_str(), e.status, e.action.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("onClick", Status::Changed, "run-query Decode64"),
            ("onClick #2", Status::Added, "show-alert Encoded"),
        ]
    );
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = button.events[0]
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.from.as_deref(), c.to.as_deref()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "queryId",
                Some("\"<query Encode64>\""),
                Some("\"<query Decode64>\"")
            ),
            ("queryName", Some("\"Encode64\""), Some("\"Decode64\"")),
        ]
    );
    let decoder = d.pages.iter().find(|p| p.name == "Decoder").expect("page");
    assert_eq!(decoder.components[0].events[0].status, Status::Removed);
    assert_eq!(decoder.components[0].events[0].action, "run-query Decode64");
    let query = &d.queries[0];
    assert_eq!(
        (query.name.as_str(), query.kind.as_str()),
        ("Encode64", "runjs")
    );
    assert_eq!(query.events[0].event, "onDataQuerySuccess");
    // A component of a page, from a query (which has no page): named with its page.
    assert_eq!(
        query.events[0].changes[0].to.as_deref(),
        Some("\"<component Decoder/input2>\"")
    );
    assert_eq!(
        d.summary(),
        "2 pages, 2 components, 1 query, 4 events changed"
    );
}

#[test]
fn queries_added_removed_and_changed_kind_source_and_options() {
    let a = fixture("orders-dashboard");
    let mut b = reid(&a, 12);
    let shipping = app(&mut b)["dataSources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["name"] == "shipping-api")
        .expect("source")["id"]
        .clone();
    let list = row(&mut b, "dataQueries", "list_orders", None);
    list["options"]["query"] =
        json!("select id, customer, total, status from orders order by created_at desc limit 500");
    list["options"]["runOnPageLoad"] = json!(false);
    let totals = row(&mut b, "dataQueries", "order_totals", None);
    totals["dataSourceId"] = shipping;
    let mut copy = row(&mut b, "dataQueries", "format_totals", None).clone();
    copy["id"] = json!("0e0e0e0e-0000-4000-8000-000000000003");
    copy["name"] = json!("format_dates");
    let v = app(&mut b);
    v["dataQueries"].as_array_mut().expect("queries").push(copy);
    v["dataQueries"]
        .as_array_mut()
        .expect("queries")
        .retain(|q| q["name"] != "track_shipment");

    let d = checked_diff(&a, &b);
    let got: Vec<(&str, &str, &str, Status)> = d
        .queries
        .iter()
        .map(|q| {
            (
                q.name.as_str(),
                q.kind.as_str(),
                q.data_source.as_str(),
                q.status,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("format_dates", "runjs", "runjsdefault", Status::Added),
            ("list_orders", "postgresql", "orders-db", Status::Changed),
            ("order_totals", "restapi", "shipping-api", Status::Changed),
            ("track_shipment", "restapi", "shipping-api", Status::Removed),
        ],
        "{}",
        changed(&d)
    );
    let list = &d.queries[1].changes;
    assert_eq!(list[0].field, "options.query");
    // A long value is shown from a little before its first difference.
    assert_eq!(list[0].from.as_deref(), Some("…eated_at desc limit 100\""));
    assert_eq!(list[0].to.as_deref(), Some("…eated_at desc limit 500\""));
    assert_eq!(list[1].field, "options.runOnPageLoad");
    let totals: Vec<(&str, Option<&str>, Option<&str>)> = d.queries[2]
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.from.as_deref(), c.to.as_deref()))
        .collect();
    assert_eq!(
        totals,
        [
            (
                "dataSource",
                Some("\"orders-db\""),
                Some("\"shipping-api\"")
            ),
            ("kind", Some("\"postgresql\""), Some("\"restapi\"")),
        ]
    );
    // shipping-api is still used (by order_totals); nothing changed for data sources.
    assert!(d.data_sources.is_empty());
    assert_eq!(d.summary(), "4 queries changed");
}

#[test]
fn data_sources_referenced_added_removed_and_changed() {
    let a = fixture("orders-dashboard");
    let mut b = reid(&a, 13);
    let v = app(&mut b);
    // The app drops its only query on a static source: that source is not referenced any more.
    v["dataQueries"]
        .as_array_mut()
        .expect("queries")
        .retain(|q| q["name"] != "format_totals");
    // A new global source, used by nothing (still part of the bundle: it is listed).
    v["dataSources"]
        .as_array_mut()
        .expect("sources")
        .push(json!({
            "id": "0e0e0e0e-0000-4000-8000-000000000004", "name": "audit-db", "kind": "mysql",
            "type": "default", "scope": "global", "appVersionId": null, "pluginId": null,
        }));
    let sources = v["dataSources"].as_array_mut().expect("sources");
    let orders = sources
        .iter_mut()
        .find(|s| s["name"] == "orders-db")
        .expect("orders-db");
    orders["kind"] = json!("mysql");
    let d = checked_diff(&a, &b);
    let got: Vec<(&str, &str, Status)> = d
        .data_sources
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str(), s.status))
        .collect();
    assert_eq!(
        got,
        [
            ("audit-db", "mysql", Status::Added),
            ("orders-db", "mysql", Status::Changed),
            ("runjsdefault", "runjs", Status::Removed),
        ],
        "{}",
        changed(&d)
    );
    assert_eq!(d.data_sources[1].changes[0].field, "kind");
    // The queries on orders-db changed kind with it.
    assert_eq!(d.queries.len(), 3);
    assert_eq!(d.summary(), "3 queries, 3 data sources changed");
}

#[test]
fn an_event_of_a_deleted_component_is_kept_apart_and_not_changed_by_new_ids() {
    let a = fixture("orders-dashboard");
    let mut b = a.clone();
    app(&mut b)["components"]
        .as_array_mut()
        .expect("components")
        .retain(|c| c["name"] != "refresh_button");
    let d = checked_diff(&a, &b);
    // Its handler stays in the bundle (ToolJet leaves it), under "other events".
    assert_eq!(d.events.len(), 1, "{}", changed(&d));
    assert_eq!(
        (d.events[0].event.as_str(), d.events[0].status),
        ("<component not in the app> onClick", Status::Added)
    );
    assert_eq!(d.events[0].action, "run-query list_orders");
    assert!(d.text().contains("  other events\n    + event <component not in the app> onClick: run-query list_orders\n"), "{}", d.text());
    assert!(checked_diff(&b, &reid(&b, 14)).is_empty());
}

#[test]
fn the_summary_counts_like_the_issue_says() {
    let a = fixture("base64-encoder-decoder");
    let mut b = a.clone();
    for (name, page) in [
        ("text2", "Encoder"),
        ("text3", "Encoder"),
        ("text4", "Encoder"),
        ("text2", "Decoder"),
        ("text3", "Decoder"),
    ] {
        row(&mut b, "components", name, Some(page))["properties"]["text"]["value"] = json!("x");
    }
    row(&mut b, "dataQueries", "Encode64", None)["options"]["successMessage"] = json!("Done");
    let d = checked_diff(&a, &b);
    assert_eq!(d.summary(), "2 pages, 5 components, 1 query changed");
}

#[test]
fn text_and_markdown_renderings() {
    let a = fixture("ai-powered-code-explainer");
    let mut b = a.clone();
    row(&mut b, "components", "text1", None)["properties"]["text"]["value"] = json!("ACME `v2`");
    row(&mut b, "pages", "Home", None)["name"] = json!("Start");
    app(&mut b)["name"] = json!("Code <Explainer>");
    row(&mut b, "dataQueries", "getGeminiModels", None)["options"]["method"] = json!("post");
    let d = checked_diff(&a, &b);
    let text = d.text();
    let expected = [
        "app \"Code <Explainer>\": 2 settings, 1 page, 1 component, 1 query changed",
        "  settings",
        // The home page is the renamed page: the reference follows the name.
        "    ~ homePage: \"<page Home>\" → \"<page Start>\"",
        "    ~ name: \"AI Code Explainer\" → \"Code <Explainer>\"",
        "  ~ page \"Start\" (renamed from \"Home\")",
        "      ~ component text1 (Text)",
        "          ~ properties.text: \"B R A N D\" → \"ACME `v2`\"",
        "  queries",
        "    ~ query getGeminiModels (restapi, restapidefault)",
        "        ~ options.method: \"get\" → \"post\"",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");

    let md = d.markdown();
    assert!(md.starts_with("<details>\n<summary><b>Code &lt;Explainer&gt;</b>: 2 settings, 1 page, 1 component, 1 query changed</summary>\n"), "{md}");
    assert!(md.trim_end().ends_with("</details>"), "{md}");
    for line in [
        "- `name`: `\"AI Code Explainer\"` → `\"Code <Explainer>\"`",
        "**Page `Start`** (renamed from `Home`)",
        "- changed component `text1` (Text)",
        "  - `properties.text`: `\"B R A N D\"` → ``\"ACME `v2`\"``",
        "- changed query `getGeminiModels` (restapi, restapidefault)",
    ] {
        assert!(md.lines().any(|l| l == line), "missing {line:?} in\n{md}");
    }
    let empty = checked_diff(&a, &a);
    assert_eq!(empty.text(), "app \"AI Code Explainer\": no change\n");
    assert!(empty.markdown().contains("Nothing changes inside the app."));
}

#[test]
fn long_values_are_shortened_and_the_summary_is_bounded() {
    let a = fixture("credit-card-test-data-generator");
    let mut b = a.clone();
    let code = row(&mut b, "dataQueries", "runjs1", None)["options"]["code"]
        .as_str()
        .expect("code")
        .replace("Luhn algorithm", "Luhn's algorithm");
    row(&mut b, "dataQueries", "runjs1", None)["options"]["code"] = json!(code);
    app(&mut b)["icon"] = json!("x".repeat(5000));
    let d = checked_diff(&a, &b);
    let change = &d.queries[0].changes[0];
    let to = change.to.as_deref().expect("to");
    assert!(to.chars().count() <= 80, "{to}");
    assert!(
        to.contains("Luhn's algorithm"),
        "the difference is in view: {to}"
    );
    let icon = d.settings[0].to.as_deref().expect("to");
    assert!(icon.chars().count() <= 80 && icon.ends_with('…'), "{icon}");
    assert!(d.text().lines().all(|l| l.chars().count() < 200));
}
