//! What an import must show before the engine reports success (issue 13, item 7): the app
//! ToolJet stored holds the bundle's pages, each page's components and the queries, and every
//! query's data source exists in the workspace. Both sides are export bundles (`app[0]
//! .definition.appV2`, or the definition itself): the bundle from git, and what
//! `POST /v2/resources/export` answers for the imported app on both families. Ids differ (an
//! import re-keys everything), so pages and components are compared by name, components per
//! page, with their counts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::tooljet::DataSource;

/// The pages, components and queries of a bundle's editing version.
#[derive(Debug, Default, PartialEq)]
pub struct Shape {
    /// Page name → component name → how many.
    pages: BTreeMap<String, BTreeMap<String, usize>>,
    /// Query name → how many.
    queries: BTreeMap<String, usize>,
    /// Each query's `(name, data source id)` when it uses a data source that is not a static
    /// built-in (runjsdefault, …), which workspaces never list.
    sourced_queries: Vec<(String, String)>,
}

fn app_v2(bundle: &Value) -> Option<&Value> {
    let def = bundle.pointer("/app/0/definition").unwrap_or(bundle);
    Some(def.get("appV2").unwrap_or(def))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn rows<'a>(app: &'a Value, key: &str, editing: Option<&str>) -> Vec<&'a Value> {
    app.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| match (text(r, "appVersionId"), editing) {
            (Some(v), Some(e)) => v == e,
            _ => true,
        })
        .collect()
}

/// The shape of a bundle (or of a bare definition).
pub fn shape(bundle: &Value) -> Shape {
    let Some(app) = app_v2(bundle) else {
        return Shape::default();
    };
    let editing = app.pointer("/editingVersion/id").and_then(Value::as_str);
    let mut out = Shape::default();
    let mut page_names = BTreeMap::new();
    for page in rows(app, "pages", editing) {
        let name = text(page, "name").unwrap_or_default().to_owned();
        if let Some(id) = text(page, "id") {
            page_names.insert(id.to_owned(), name.clone());
        }
        out.pages.entry(name).or_default();
    }
    for component in rows(app, "components", editing) {
        let page = text(component, "pageId")
            .and_then(|p| page_names.get(p))
            .cloned()
            .unwrap_or_default();
        let name = text(component, "name").unwrap_or_default().to_owned();
        *out.pages.entry(page).or_default().entry(name).or_default() += 1;
    }
    let statics: BTreeSet<&str> = rows(app, "dataSources", None)
        .into_iter()
        .filter(|d| text(d, "type") == Some("static"))
        .filter_map(|d| text(d, "id"))
        .collect();
    for query in rows(app, "dataQueries", editing) {
        let name = text(query, "name").unwrap_or_default().to_owned();
        *out.queries.entry(name.clone()).or_default() += 1;
        if let Some(source) = text(query, "dataSourceId").or_else(|| text(query, "data_source_id"))
            && !statics.contains(source)
        {
            out.sourced_queries.push((name, source.to_owned()));
        }
    }
    out
}

/// What `expected` has that `found` lacks, one phrase each (empty: nothing is missing).
pub fn missing(expected: &Shape, found: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    for (page, components) in &expected.pages {
        let Some(there) = found.pages.get(page) else {
            out.push(format!(
                "page {page:?} (with {} components)",
                components.values().sum::<usize>()
            ));
            continue;
        };
        for (name, count) in components {
            let have = there.get(name).copied().unwrap_or(0);
            if have < *count {
                out.push(format!(
                    "component {name:?} of page {page:?} ({have} of {count})"
                ));
            }
        }
    }
    for (name, count) in &expected.queries {
        let have = found.queries.get(name).copied().unwrap_or(0);
        if have < *count {
            out.push(format!("query {name:?} ({have} of {count})"));
        }
    }
    out
}

/// The queries of `found` whose data source the workspace does not have, one phrase each.
pub fn dangling(found: &Shape, workspace: &[DataSource]) -> Vec<String> {
    found
        .sourced_queries
        .iter()
        .filter(|(_, id)| !workspace.iter().any(|d| d.id == *id))
        .map(|(query, id)| {
            format!("the data source {id} of query {query:?} (not in the workspace)")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(pages: Value, components: Value, queries: Value) -> Value {
        json!({"app": [{"definition": {"appV2": {
            "editingVersion": {"id": "v"},
            "pages": pages, "components": components, "dataQueries": queries,
            "dataSources": [{"id": "s", "name": "runjsdefault", "type": "static"}],
        }}}]})
    }

    #[test]
    fn pages_components_and_queries_are_compared_by_name() {
        let pages = json!([
            {"id": "p1", "name": "Home", "appVersionId": "v"},
            {"id": "p2", "name": "Other", "appVersionId": "v"},
            {"id": "old", "name": "Gone", "appVersionId": "other-version"},
        ]);
        let components = json!([
            {"name": "text1", "pageId": "p1"}, {"name": "text1", "pageId": "p2"},
            {"name": "button", "pageId": "p2"}, {"name": "x", "pageId": "old", "appVersionId": "other-version"},
        ]);
        let queries = json!([
            {"name": "js", "dataSourceId": "s", "appVersionId": "v"},
            {"name": "db", "dataSourceId": "pg", "appVersionId": "v"},
        ]);
        let expected = shape(&bundle(pages, components, queries));
        assert!(missing(&expected, &expected).is_empty());

        // Re-keyed (other ids), one component of page Other lost, the query "db" lost.
        let found = shape(&json!({"appV2": {
            "editingVersion": {"id": "w"},
            "pages": [{"id": "a", "name": "Home"}, {"id": "b", "name": "Other"}],
            "components": [{"name": "text1", "pageId": "a"}, {"name": "text1", "pageId": "b"}],
            "dataQueries": [{"name": "js", "dataSourceId": "s2"}],
            "dataSources": [{"id": "s2", "type": "static"}],
        }}));
        assert_eq!(
            missing(&expected, &found),
            [
                "component \"button\" of page \"Other\" (0 of 1)",
                "query \"db\" (0 of 1)"
            ]
        );
        let no_pages = shape(&json!({"appV2": {"pages": [], "components": []}}));
        assert_eq!(
            missing(&expected, &no_pages)[..2],
            [
                "page \"Home\" (with 1 components)",
                "page \"Other\" (with 2 components)"
            ]
        );

        // Static sources are never looked for in the workspace; the others are.
        assert_eq!(dangling(&found, &[]), Vec::<String>::new());
        let pg = DataSource {
            id: "pg".into(),
            name: "db".into(),
            kind: "postgresql".into(),
            source_type: None,
            scope: None,
            app_version_id: None,
        };
        assert!(dangling(&expected, std::slice::from_ref(&pg)).is_empty());
        assert_eq!(
            dangling(&expected, &[]),
            ["the data source pg of query \"db\" (not in the workspace)"]
        );
    }
}
