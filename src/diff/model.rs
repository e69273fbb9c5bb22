//! "What is a change": an export bundle brought to a form where two exports of the same app
//! compare equal however often ToolJet re-keyed it.
//!
//! - Rows belong to the editing version (`appVersionId`), as an import takes only that one.
//! - Entities are keyed by name: pages by name, components by name within their page, queries by
//!   name, data sources by name, events by source + event name + ordinal.
//! - Every string that is the id of an entity of the bundle (app, version, environment, page,
//!   component, query, data source), wherever it appears — a component's `parent` (also in
//!   ToolJet's `<id>-<tab>` form), an event's `queryId`/`componentId`/`pageId`, `homePageId` — is
//!   replaced by a reference to the entity's name, e.g. `<query getOrders>`.
//! - Ids, timestamps and owner/workspace ids of the rows themselves are dropped, and so are
//!   nulls and empty objects (exports differ in whether they write them).
//! - Each entity's remaining fields are flattened one level (`properties.text`,
//!   `styles.textColor`, `layouts.desktop`, `options.url`, `globalSettings.theme`), so a diff
//!   names what changed without listing every field of a big object.
//! - Data sources: the ones some query uses, and every non-static one. ToolJet adds its static
//!   built-ins (`runjsdefault`, …) to every version it exports, so an unused static one is
//!   noise. Data-source options are not part of the app: they are workspace configuration per
//!   environment (and secrets), which an import binds by name + kind.
//! - Not compared: `tooljet_version` (which ToolJet exported it), `appEnvironments`,
//!   `dataSourceOptions`, `schemaDetails`, `tooljet_database`, the app's own id, and the slug
//!   when it is an id (ToolJet's default slug is the id at creation, kept by an update swap).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

use super::DiffError;

/// Flattened fields of one entity: path → value.
pub type Fields = BTreeMap<String, Value>;

/// An app in comparable form. Two bundles are the same app exactly when their models are equal.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AppModel {
    /// The app's name (also in `settings`), for display.
    pub name: String,
    /// App and editing-version settings: `name`, `icon`, `version`, `homePage`,
    /// `globalSettings.*`, `pageSettings.*`, …
    pub settings: Fields,
    pub pages: BTreeMap<String, PageModel>,
    pub queries: BTreeMap<String, Entity>,
    pub data_sources: BTreeMap<String, Fields>,
    /// Events whose source is none of the app's pages, components or queries, by
    /// `<target> <source> <event>`.
    pub events: BTreeMap<String, Fields>,
}

/// A page: its own fields and events, and its components by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PageModel {
    pub fields: Fields,
    pub events: BTreeMap<String, Fields>,
    pub components: BTreeMap<String, Entity>,
}

/// A component or a query: its fields (`type` for a component; `kind` and `dataSource` for a
/// query) and its event handlers by `onClick`, `onClick #2`, ….
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Entity {
    pub fields: Fields,
    pub events: BTreeMap<String, Fields>,
}

/// What the model drops but a diff may use to pair things: page ids by page name (a page whose
/// name changed but whose id did not was renamed).
#[derive(Clone, Debug, Default)]
pub(crate) struct Hints {
    pub page_ids: BTreeMap<String, String>,
}

const ROW_VOLATILE: &[&str] = &[
    "id",
    "createdAt",
    "updatedAt",
    "created_at",
    "updated_at",
    "appVersionId",
    "app_version_id",
    "organizationId",
    "organization_id",
];
const PAGE_KEYS: &[&str] = &["name"];
const COMPONENT_KEYS: &[&str] = &["name", "type", "pageId", "page_id", "layouts"];
const LAYOUT_VOLATILE: &[&str] = &[
    "id",
    "type",
    "componentId",
    "component_id",
    "createdAt",
    "updatedAt",
    "created_at",
    "updated_at",
];
const QUERY_KEYS: &[&str] = &["name", "kind", "dataSourceId", "data_source_id"];
const DATA_SOURCE_KEYS: &[&str] = &["name", "options", "pluginId"];
const EVENT_KEYS: &[&str] = &["name", "sourceId", "source_id", "event", "index"];
const VERSION_VOLATILE: &[&str] = &[
    "id",
    "appId",
    "app_id",
    "name",
    "createdAt",
    "updatedAt",
    "created_at",
    "updated_at",
    "currentEnvironmentId",
    "current_environment_id",
    "promotedFrom",
    "promoted_from",
    "homePageId",
    "home_page_id",
    "status",
];
/// App-level settings compared (the rest of `appV2` is ids, owners, timestamps and the rows).
const APP_SETTINGS: &[&str] = &["type", "icon", "isPublic", "isMaintenanceOn"];
/// Ids shorter than this are never treated as references (ToolJet's are UUIDs).
const MIN_ID_LEN: usize = 8;
const UUID_LEN: usize = 36;

/// `8-4-4-4-12` hex digits.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == UUID_LEN
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// What an id in the bundle stands for.
#[derive(Clone, Debug)]
enum Ref {
    App,
    Version(String),
    Environment(String),
    Page(String),
    Component { page: String, name: String },
    Query(String),
    DataSource(String),
}

impl Ref {
    /// How the reference reads where it is used (`page` is the page of the entity using it).
    fn shown(&self, page: Option<&str>) -> String {
        match self {
            Ref::App => "<this app>".to_string(),
            Ref::Version(n) => format!("<version {n}>"),
            Ref::Environment(n) => format!("<environment {n}>"),
            Ref::Page(n) => format!("<page {n}>"),
            Ref::Component { page: p, name } if page == Some(p.as_str()) => {
                format!("<component {name}>")
            }
            Ref::Component { page: p, name } => format!("<component {p}/{name}>"),
            Ref::Query(n) => format!("<query {n}>"),
            Ref::DataSource(n) => format!("<data source {n}>"),
        }
    }

    /// How the reference reads inside an expression (`queries.<name>`, `components.<name>`).
    fn bare(&self, page: Option<&str>) -> String {
        match self {
            Ref::Query(n) => n.clone(),
            Ref::Component { page: p, name } if page == Some(p.as_str()) => name.clone(),
            Ref::Component { page: p, name } => format!("{p}/{name}"),
            other => other.shown(page),
        }
    }
}

/// The ids of a bundle's entities.
#[derive(Default)]
struct Registry {
    ids: HashMap<String, Ref>,
}

impl Registry {
    fn add(&mut self, id: Option<&str>, r: Ref) {
        if let Some(id) = id.filter(|i| i.len() >= MIN_ID_LEN) {
            self.ids.insert(id.to_string(), r);
        }
    }

    fn get(&self, id: &str) -> Option<&Ref> {
        self.ids.get(id)
    }

    /// `s` with every entity id in it replaced by the entity's name, or `None` when it holds
    /// none. The whole string may be an id; ToolJet 3.x also writes ids inside expressions
    /// (`{{queries.<id>.data}}`, `{{components.<id>.value}}`) and a component's parent inside
    /// a Tabs component is `<tabsId>-<tab index>`.
    fn map_str(&self, s: &str, page: Option<&str>) -> Option<String> {
        if s.len() < MIN_ID_LEN {
            return None;
        }
        if let Some(r) = self.ids.get(s) {
            return Some(r.shown(page));
        }
        if s.len() < UUID_LEN {
            return None;
        }
        let bytes = s.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i + UUID_LEN <= bytes.len() {
            let candidate = &bytes[i..i + UUID_LEN];
            let known = is_uuid(candidate)
                .then(|| self.ids.get(&s[i..i + UUID_LEN]))
                .flatten();
            match known {
                Some(r) => {
                    out.push_str(&s[copied..i]);
                    let before = &s[..i];
                    if before.ends_with("queries.") || before.ends_with("components.") {
                        out.push_str(&r.bare(page));
                    } else {
                        out.push_str(&r.shown(page));
                    }
                    i += UUID_LEN;
                    copied = i;
                }
                None => i += 1,
            }
        }
        if copied == 0 {
            return None;
        }
        out.push_str(&s[copied..]);
        Some(out)
    }

    /// A copy of `v` with every entity id (in values and object keys) replaced.
    fn map(&self, v: &Value, page: Option<&str>) -> Value {
        match v {
            Value::String(s) => match self.map_str(s, page) {
                Some(m) => Value::String(m),
                None => v.clone(),
            },
            Value::Array(a) => Value::Array(a.iter().map(|x| self.map(x, page)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let key = self.map_str(k, page).unwrap_or_else(|| k.clone());
                        (key, self.map(x, page))
                    })
                    .collect(),
            ),
            _ => v.clone(),
        }
    }
}

fn text<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str))
}

/// The `appV2` object of a bundle, of `{definition: …}` or of a bare definition.
fn app_v2(bundle: &Value) -> Result<&Value, DiffError> {
    let def = bundle.pointer("/app/0/definition").unwrap_or(bundle);
    let app = def.get("appV2").unwrap_or(def);
    if app.is_object() && (app.get("editingVersion").is_some() || app.get("pages").is_some()) {
        Ok(app)
    } else {
        Err(DiffError::NotAnApp)
    }
}

/// Rows of `key` that belong to the editing version (or to none).
fn rows<'a>(app: &'a Value, key: &str, editing: Option<&str>) -> Vec<&'a Value> {
    app.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.is_object())
        .filter(
            |r| match (text(r, &["appVersionId", "app_version_id"]), editing) {
                (Some(v), Some(e)) => v == e,
                _ => true,
            },
        )
        .collect()
}

/// Adds `obj`'s fields except `skip`, ids mapped, nulls and empty objects dropped, objects
/// flattened one level under `prefix`.
fn flatten_into(
    out: &mut Fields,
    prefix: &str,
    obj: &Map<String, Value>,
    skip: &[&str],
    reg: &Registry,
    page: Option<&str>,
) {
    for (k, v) in obj {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let key = format!("{prefix}{k}");
        match reg.map(v, page) {
            Value::Null => {}
            Value::Object(m) => {
                for (k2, v2) in m {
                    if !v2.is_null() {
                        out.insert(format!("{key}.{k2}"), v2);
                    }
                }
            }
            other => {
                out.insert(key, other);
            }
        }
    }
}

fn row_fields(row: &Value, skip: &[&str], reg: &Registry, page: Option<&str>) -> Fields {
    let mut out = Fields::new();
    if let Some(obj) = row.as_object() {
        let skip: Vec<&str> = ROW_VOLATILE.iter().chain(skip).copied().collect();
        flatten_into(&mut out, "", obj, &skip, reg, page);
    }
    out
}

/// Keys unique among `names`: a repeated name gets ` #2`, ` #3`, … in the given order.
fn unique_key(seen: &mut BTreeMap<String, usize>, name: &str) -> String {
    let n = seen.entry(name.to_string()).or_default();
    *n += 1;
    if *n == 1 {
        name.to_string()
    } else {
        format!("{name} #{n}")
    }
}

/// Brings a bundle (or its definition, or `appV2`) to comparable form.
pub fn normalise(bundle: &Value) -> Result<AppModel, DiffError> {
    normalise_with_hints(bundle).map(|(m, _)| m)
}

pub(crate) fn normalise_with_hints(bundle: &Value) -> Result<(AppModel, Hints), DiffError> {
    let app = app_v2(bundle)?;
    let editing_version = app.get("editingVersion").filter(|v| v.is_object());
    let editing = editing_version.and_then(|v| text(v, &["id"]));
    let mut hints = Hints::default();
    // First every id is registered under the name it stands for, then the model is built with
    // ids replaced by those names: an id that an export regenerates is never a change.
    let mut reg = register_versions(app, editing_version);
    let (page_keys, page_of_id) = index_pages(app, editing, &mut reg, &mut hints);
    let by_page = index_components(app, editing, &page_of_id, &mut reg);
    let sources = index_sources(app, editing, &mut reg);
    let query_keys = index_queries(app, editing, &mut reg);

    let mut model = AppModel {
        name: text(app, &["name"]).unwrap_or_default().to_string(),
        ..AppModel::default()
    };
    settings_into(&mut model, app, editing_version, &reg);
    pages_into(&mut model, &page_keys, by_page, &reg);
    queries_into(&mut model, &query_keys, &sources, &reg);
    add_events(app, editing, &reg, &mut model);
    Ok((model, hints))
}

type Keyed<'a> = Vec<(String, &'a Value)>;

/// The app, its versions and its environments.
fn register_versions(app: &Value, editing_version: Option<&Value>) -> Registry {
    let mut reg = Registry::default();
    reg.add(text(app, &["id"]), Ref::App);
    for v in rows(app, "appVersions", None) {
        reg.add(
            text(v, &["id"]),
            Ref::Version(text(v, &["name"]).unwrap_or_default().to_string()),
        );
    }
    if let Some(v) = editing_version {
        reg.add(
            text(v, &["id"]),
            Ref::Version(text(v, &["name"]).unwrap_or_default().to_string()),
        );
    }
    for e in rows(app, "appEnvironments", None) {
        reg.add(
            text(e, &["id"]),
            Ref::Environment(text(e, &["name"]).unwrap_or_default().to_string()),
        );
    }

    reg
}

/// Pages, ordered by handle so that repeated names number the same way in every export.
fn index_pages<'a>(
    app: &'a Value,
    editing: Option<&str>,
    reg: &mut Registry,
    hints: &mut Hints,
) -> (Keyed<'a>, HashMap<&'a str, String>) {
    let mut page_rows = rows(app, "pages", editing);
    page_rows.sort_by(|a, b| {
        (text(a, &["handle"]), text(a, &["name"])).cmp(&(text(b, &["handle"]), text(b, &["name"])))
    });
    let mut seen = BTreeMap::new();
    let mut page_keys: Vec<(String, &Value)> = Vec::new();
    let mut page_of_id: HashMap<&str, String> = HashMap::new();
    for row in page_rows {
        let key = unique_key(&mut seen, text(row, &["name"]).unwrap_or_default());
        if let Some(id) = text(row, &["id"]) {
            page_of_id.insert(id, key.clone());
            hints.page_ids.insert(key.clone(), id.to_string());
        }
        reg.add(text(row, &["id"]), Ref::Page(key.clone()));
        page_keys.push((key, row));
    }

    (page_keys, page_of_id)
}

/// Components: grouped by page, keyed by name within it.
fn index_components<'a>(
    app: &'a Value,
    editing: Option<&str>,
    page_of_id: &HashMap<&str, String>,
    reg: &mut Registry,
) -> BTreeMap<String, Keyed<'a>> {
    let mut component_rows = rows(app, "components", editing);
    component_rows.sort_by(|a, b| text(a, &["name"]).cmp(&text(b, &["name"])));
    let mut by_page: BTreeMap<String, Vec<(String, &Value)>> = BTreeMap::new();
    let mut seen_in_page: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for row in component_rows {
        let page = text(row, &["pageId", "page_id"])
            .and_then(|p| page_of_id.get(p))
            .cloned()
            .unwrap_or_default();
        let key = unique_key(
            seen_in_page.entry(page.clone()).or_default(),
            text(row, &["name"]).unwrap_or_default(),
        );
        reg.add(
            text(row, &["id"]),
            Ref::Component {
                page: page.clone(),
                name: key.clone(),
            },
        );
        by_page.entry(page).or_default().push((key, row));
    }

    by_page
}

/// Data sources (all versions' rows: global ones belong to none).
fn index_sources<'a>(
    app: &'a Value,
    editing: Option<&str>,
    reg: &mut Registry,
) -> HashMap<&'a str, &'a Value> {
    let mut sources: HashMap<&str, &Value> = HashMap::new();
    for row in rows(app, "dataSources", editing) {
        if let Some(id) = text(row, &["id"]) {
            sources.insert(id, row);
        }
        reg.add(
            text(row, &["id"]),
            Ref::DataSource(text(row, &["name"]).unwrap_or_default().to_string()),
        );
    }

    sources
}

fn index_queries<'a>(app: &'a Value, editing: Option<&str>, reg: &mut Registry) -> Keyed<'a> {
    let mut query_rows = rows(app, "dataQueries", editing);
    query_rows.sort_by(|a, b| text(a, &["name"]).cmp(&text(b, &["name"])));
    let mut seen = BTreeMap::new();
    let mut query_keys: Vec<(String, &Value)> = Vec::new();
    for row in query_rows {
        let key = unique_key(&mut seen, text(row, &["name"]).unwrap_or_default());
        reg.add(text(row, &["id"]), Ref::Query(key.clone()));
        query_keys.push((key, row));
    }

    query_keys
}

fn settings_into(
    model: &mut AppModel,
    app: &Value,
    editing_version: Option<&Value>,
    reg: &Registry,
) {
    model
        .settings
        .insert("name".into(), Value::String(model.name.clone()));
    for key in APP_SETTINGS {
        if let Some(v) = app.get(*key).filter(|v| !v.is_null()) {
            model.settings.insert((*key).to_string(), v.clone());
        }
    }
    // 2.x exports carry no `type`; every app there is a front-end app.
    model
        .settings
        .entry("type".into())
        .or_insert_with(|| Value::String("front-end".into()));
    // ToolJet's default slug is the app's id at creation; an update swap keeps it on the new
    // app, so a slug that is any id is one an import regenerates elsewhere, not a setting.
    if let Some(slug) = text(app, &["slug"])
        && Some(slug) != text(app, &["id"])
        && !is_uuid(slug.as_bytes())
    {
        model
            .settings
            .insert("slug".into(), Value::String(slug.to_string()));
    }
    if let Some(v) = editing_version {
        if let Some(name) = text(v, &["name"]) {
            model
                .settings
                .insert("version".into(), Value::String(name.to_string()));
        }
        if let Some(home) = text(v, &["homePageId", "home_page_id"]) {
            let shown = reg.map_str(home, None).unwrap_or_else(|| home.to_string());
            model
                .settings
                .insert("homePage".into(), Value::String(shown));
        }
        if let Some(obj) = v.as_object() {
            flatten_into(&mut model.settings, "", obj, VERSION_VOLATILE, reg, None);
        }
    }
}

fn pages_into(
    model: &mut AppModel,
    page_keys: &Keyed<'_>,
    mut by_page: BTreeMap<String, Keyed<'_>>,
    reg: &Registry,
) {
    for (key, row) in page_keys {
        let components = by_page.remove(key).unwrap_or_default();
        let page = PageModel {
            fields: row_fields(row, PAGE_KEYS, reg, Some(key)),
            events: BTreeMap::new(),
            components: components
                .into_iter()
                .map(|(name, row)| (name, component(row, reg, key)))
                .collect(),
        };
        model.pages.insert(key.clone(), page);
    }
    // Components whose page is not in the bundle.
    for (page, components) in by_page {
        let entry = model.pages.entry(page.clone()).or_default();
        for (name, row) in components {
            entry.components.insert(name, component(row, reg, &page));
        }
    }
}

/// Queries and the data sources they use.
fn queries_into(
    model: &mut AppModel,
    query_keys: &Keyed<'_>,
    sources: &HashMap<&str, &Value>,
    reg: &Registry,
) {
    let mut used_sources: Vec<&str> = Vec::new();
    for (key, row) in query_keys {
        let mut fields = row_fields(row, QUERY_KEYS, reg, None);
        let source = text(row, &["dataSourceId", "data_source_id"]).and_then(|id| {
            used_sources.push(id);
            sources.get(id)
        });
        let kind = text(row, &["kind"]).or_else(|| source.and_then(|s| text(s, &["kind"])));
        if let Some(kind) = kind {
            fields.insert("kind".into(), Value::String(kind.to_string()));
        }
        if let Some(name) = source.and_then(|s| text(s, &["name"])) {
            fields.insert("dataSource".into(), Value::String(name.to_string()));
        }
        model.queries.insert(
            key.clone(),
            Entity {
                fields,
                events: BTreeMap::new(),
            },
        );
    }
    for (id, row) in sources {
        let is_static = text(row, &["type"]) == Some("static");
        if is_static && !used_sources.contains(id) {
            continue;
        }
        let name = text(row, &["name"]).unwrap_or_default().to_string();
        model
            .data_sources
            .insert(name, row_fields(row, DATA_SOURCE_KEYS, reg, None));
    }
}

fn component(row: &Value, reg: &Registry, page: &str) -> Entity {
    let mut fields = row_fields(row, COMPONENT_KEYS, reg, Some(page));
    if let Some(t) = text(row, &["type"]) {
        fields.insert("type".into(), Value::String(t.to_string()));
    }
    for layout in row
        .get("layouts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(obj) = layout.as_object() else {
            continue;
        };
        let kind = text(layout, &["type"]).unwrap_or("layout");
        let kept: Map<String, Value> = obj
            .iter()
            .filter(|(k, v)| !LAYOUT_VOLATILE.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        fields.insert(format!("layouts.{kind}"), Value::Object(kept));
    }
    Entity {
        fields,
        events: BTreeMap::new(),
    }
}

/// Attaches each event handler to its source (page, component or query), numbered per event
/// name in `index` order.
fn add_events(app: &Value, editing: Option<&str>, reg: &Registry, model: &mut AppModel) {
    let mut grouped: BTreeMap<(String, String), Vec<(i64, Fields)>> = BTreeMap::new();
    let mut places: BTreeMap<String, Option<Ref>> = BTreeMap::new();
    for row in rows(app, "events", editing) {
        let source = text(row, &["sourceId", "source_id"]).unwrap_or_default();
        let place = reg.get(source).cloned();
        let page = match &place {
            Some(Ref::Component { page, .. }) => Some(page.as_str()),
            Some(Ref::Page(p)) => Some(p.as_str()),
            _ => None,
        };
        let place_key = match &place {
            Some(r) => r.shown(None),
            // Its id is regenerated like any other: only the kind of source it names is stable.
            None => format!(
                "<{} not in the app>",
                text(row, &["target"]).unwrap_or("source")
            ),
        };
        let mut fields = row_fields(row, EVENT_KEYS, reg, page);
        if let Some(obj) = row.get("event").and_then(Value::as_object) {
            flatten_into(&mut fields, "", obj, &[], reg, page);
        }
        let name = text(row, &["name"])
            .or_else(|| row.pointer("/event/eventId").and_then(Value::as_str))
            .unwrap_or("event")
            .to_string();
        let index = row.get("index").and_then(Value::as_i64).unwrap_or(0);
        places.insert(place_key.clone(), place);
        grouped
            .entry((place_key, name))
            .or_default()
            .push((index, fields));
    }
    for ((place_key, name), mut handlers) in grouped {
        // Stable whatever order the rows come in: by index, then by content.
        handlers.sort_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                serde_json::to_string(&a.1)
                    .unwrap_or_default()
                    .cmp(&serde_json::to_string(&b.1).unwrap_or_default())
            })
        });
        for (n, (_, fields)) in handlers.into_iter().enumerate() {
            let key = if n == 0 {
                name.clone()
            } else {
                format!("{name} #{}", n + 1)
            };
            let target = match places.get(&place_key).cloned().flatten() {
                Some(Ref::Page(p)) => model.pages.get_mut(&p).map(|p| &mut p.events),
                Some(Ref::Component { page, name }) => model
                    .pages
                    .get_mut(&page)
                    .and_then(|p| p.components.get_mut(&name))
                    .map(|c| &mut c.events),
                Some(Ref::Query(q)) => model.queries.get_mut(&q).map(|q| &mut q.events),
                _ => None,
            };
            match target {
                Some(events) => {
                    events.insert(key, fields);
                }
                None => {
                    model.events.insert(format!("{place_key} {key}"), fields);
                }
            }
        }
    }
}
