//! Two [`AppModel`]s compared: what was added, removed or changed, in ToolJet's terms.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::model::{AppModel, Entity, Fields, Hints, PageModel};
use super::render::{short, short_pair};

/// What happened to one thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

/// One field that differs; `None` when the field is absent on that side. Values are shortened
/// (JSON text, around the first difference for long strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// An event handler added, removed or changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventDiff {
    /// The event and its ordinal among handlers of that event: `onClick`, `onClick #2`.
    pub event: String,
    pub status: Status,
    /// What the handler does (after the change, or before a removal): `run-query getOrders`.
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// A component added, removed or changed on a page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentDiff {
    pub name: String,
    #[serde(rename = "type")]
    pub component_type: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventDiff>,
}

/// A page added, removed, renamed or changed, with its components.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageDiff {
    /// The name after the change (before, for a removed page).
    pub name: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventDiff>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentDiff>,
}

/// A query added, removed or changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryDiff {
    pub name: String,
    /// The data source kind (`postgresql`, `restapi`, `runjs`, …).
    pub kind: String,
    /// The data source's name.
    pub data_source: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventDiff>,
}

/// A data source the app refers to, added, removed or changed (kind, type, scope).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataSourceDiff {
    pub name: String,
    pub kind: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// What changes inside an app between two bundles. Every list is in a fixed order (by name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AppDiff {
    /// The app's name after the change (or before, when the name is all that is left).
    pub app: String,
    /// App settings: `name`, `icon`, `slug`, `homePage`, `globalSettings.*` (theme, canvas …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageDiff>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<QueryDiff>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_sources: Vec<DataSourceDiff>,
    /// Event handlers whose source is none of the pages, components or queries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventDiff>,
}

impl AppDiff {
    /// True when the two bundles are the same app.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
            && self.pages.is_empty()
            && self.queries.is_empty()
            && self.data_sources.is_empty()
            && self.events.is_empty()
    }
}

/// Changed fields, in field order.
fn fields(a: &Fields, b: &Fields) -> Vec<Change> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            if x == y {
                return None;
            }
            let (from, to) = match (x, y) {
                (Some(x), Some(y)) => {
                    let (f, t) = short_pair(x, y);
                    (Some(f), Some(t))
                }
                (x, y) => (x.map(short), y.map(short)),
            };
            Some(Change {
                field: k.clone(),
                from,
                to,
            })
        })
        .collect()
}

fn str_field(f: &Fields, key: &str) -> String {
    f.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// What a handler does, in a few words: its action and what it acts on.
fn action(f: &Fields) -> String {
    let act = str_field(f, "actionId");
    let object = [
        "queryName",
        "queryId",
        "componentId",
        "pageId",
        "modal",
        "url",
        "key",
        "message",
    ]
    .iter()
    .find_map(|k| {
        f.get(*k)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    })
    .map(|v| match v {
        Value::String(s) => super::render::shorten(s, 48),
        other => short(other),
    });
    match (act.is_empty(), object) {
        (true, None) => "(no action)".to_string(),
        (true, Some(o)) => o,
        (false, None) => act,
        (false, Some(o)) => format!("{act} {o}"),
    }
}

/// For each key of either map whose values differ, in key order: `make(key, status, before,
/// after)`.
fn each_difference<V: PartialEq, D>(
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
    make: impl Fn(&str, Status, Option<&V>, Option<&V>) -> D,
) -> Vec<D> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            let status = match (x, y) {
                (Some(x), Some(y)) if x == y => return None,
                (Some(_), Some(_)) => Status::Changed,
                (None, Some(_)) => Status::Added,
                (Some(_), None) => Status::Removed,
                (None, None) => return None,
            };
            Some(make(k, status, x, y))
        })
        .collect()
}

fn events(a: &BTreeMap<String, Fields>, b: &BTreeMap<String, Fields>) -> Vec<EventDiff> {
    each_difference(a, b, |k, status, x, y| EventDiff {
        event: k.to_string(),
        status,
        action: y.or(x).map(action).unwrap_or_default(),
        changes: match (x, y) {
            (Some(x), Some(y)) => fields(x, y),
            _ => Vec::new(),
        },
    })
}

/// The field and event changes of an entity both sides have (none for an added or removed one).
fn entity_changes(a: Option<&Entity>, b: Option<&Entity>) -> (Vec<Change>, Vec<EventDiff>) {
    match (a, b) {
        (Some(a), Some(b)) => (fields(&a.fields, &b.fields), events(&a.events, &b.events)),
        _ => (Vec::new(), Vec::new()),
    }
}

fn component(name: &str, status: Status, a: Option<&Entity>, b: Option<&Entity>) -> ComponentDiff {
    let (changes, events) = entity_changes(a, b);
    ComponentDiff {
        name: name.to_string(),
        component_type: b
            .or(a)
            .map(|e| str_field(&e.fields, "type"))
            .unwrap_or_default(),
        status,
        changes,
        events,
    }
}

fn components(a: &PageModel, b: &PageModel) -> Vec<ComponentDiff> {
    each_difference(&a.components, &b.components, component)
}

/// Every component of a page that was added or removed as a whole.
fn all_components(page: &PageModel, status: Status) -> Vec<ComponentDiff> {
    page.components
        .iter()
        .map(|(k, c)| component(k, status, Some(c), None))
        .collect()
}

fn page_changed(name: &str, renamed_from: Option<&str>, a: &PageModel, b: &PageModel) -> PageDiff {
    PageDiff {
        name: name.to_string(),
        status: Status::Changed,
        renamed_from: renamed_from.map(str::to_string),
        changes: fields(&a.fields, &b.fields),
        events: events(&a.events, &b.events),
        components: components(a, b),
    }
}

/// Pairs pages that only one side has by name: same id, else same handle, else the same
/// non-empty set of component names. Returns `(old name, new name)` pairs.
fn renames(a: &AppModel, ha: &Hints, b: &AppModel, hb: &Hints) -> Vec<(String, String)> {
    let mut gone: Vec<&String> = a
        .pages
        .keys()
        .filter(|k| !b.pages.contains_key(*k))
        .collect();
    let mut new: Vec<&String> = b
        .pages
        .keys()
        .filter(|k| !a.pages.contains_key(*k))
        .collect();
    let handle =
        |m: &AppModel, k: &str| m.pages.get(k).and_then(|p| p.fields.get("handle")).cloned();
    let names = |m: &AppModel, k: &str| {
        m.pages
            .get(k)
            .map(|p| p.components.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default()
    };
    type Same<'x> = Box<dyn Fn(&str, &str) -> bool + 'x>;
    let rules: [Same<'_>; 3] = [
        Box::new(|o, n| ha.page_ids.contains_key(o) && ha.page_ids.get(o) == hb.page_ids.get(n)),
        Box::new(|o, n| handle(a, o).is_some() && handle(a, o) == handle(b, n)),
        Box::new(|o, n| {
            let x = names(a, o);
            !x.is_empty() && x == names(b, n)
        }),
    ];
    let mut pairs = Vec::new();
    for same in rules {
        let mut i = 0;
        while i < gone.len() {
            if let Some(j) = new.iter().position(|n| same(gone[i], n)) {
                pairs.push((gone.remove(i).clone(), new.remove(j).clone()));
            } else {
                i += 1;
            }
        }
    }
    pairs
}

fn pages(a: &AppModel, ha: &Hints, b: &AppModel, hb: &Hints) -> Vec<PageDiff> {
    let renamed = renames(a, ha, b, hb);
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = a.pages.keys().chain(b.pages.keys()).collect();
    for k in keys {
        let diff = match (a.pages.get(k), b.pages.get(k)) {
            (Some(x), Some(y)) if x == y => None,
            (Some(x), Some(y)) => Some(page_changed(k, None, x, y)),
            (None, Some(y)) => match renamed.iter().find(|(_, n)| n == k) {
                Some((old, _)) => a.pages.get(old).map(|x| page_changed(k, Some(old), x, y)),
                None => Some(PageDiff {
                    name: k.clone(),
                    status: Status::Added,
                    renamed_from: None,
                    changes: Vec::new(),
                    events: Vec::new(),
                    components: all_components(y, Status::Added),
                }),
            },
            (Some(_), None) if renamed.iter().any(|(o, _)| o == k) => None,
            (Some(x), None) => Some(PageDiff {
                name: k.clone(),
                status: Status::Removed,
                renamed_from: None,
                changes: Vec::new(),
                events: Vec::new(),
                components: all_components(x, Status::Removed),
            }),
            (None, None) => None,
        };
        out.extend(diff);
    }
    out
}

fn query(name: &str, status: Status, a: Option<&Entity>, b: Option<&Entity>) -> QueryDiff {
    let shown = b.or(a).map(|e| &e.fields);
    let (changes, events) = entity_changes(a, b);
    QueryDiff {
        name: name.to_string(),
        kind: shown.map(|f| str_field(f, "kind")).unwrap_or_default(),
        data_source: shown
            .map(|f| str_field(f, "dataSource"))
            .unwrap_or_default(),
        status,
        changes,
        events,
    }
}

fn data_sources(a: &AppModel, b: &AppModel) -> Vec<DataSourceDiff> {
    each_difference(&a.data_sources, &b.data_sources, |k, status, x, y| {
        DataSourceDiff {
            name: k.to_string(),
            kind: y.or(x).map(|f| str_field(f, "kind")).unwrap_or_default(),
            status,
            changes: match (x, y) {
                (Some(x), Some(y)) => fields(x, y),
                _ => Vec::new(),
            },
        }
    })
}

pub(crate) fn compare(a: &AppModel, ha: &Hints, b: &AppModel, hb: &Hints) -> AppDiff {
    AppDiff {
        app: if b.name.is_empty() {
            a.name.clone()
        } else {
            b.name.clone()
        },
        settings: fields(&a.settings, &b.settings),
        pages: pages(a, ha, b, hb),
        queries: each_difference(&a.queries, &b.queries, query),
        data_sources: data_sources(a, b),
        events: events(&a.events, &b.events),
    }
}
