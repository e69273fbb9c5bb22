//! What changes inside a ToolJet app between two export bundles, in ToolJet's terms: pages
//! added, removed or renamed; components added, removed or changed per page (properties,
//! styles, layout, event handlers); queries (kind, data source, options); data sources the app
//! refers to; app settings (name, icon, theme and the other global settings).
//!
//! Pure: no I/O. Both bundle shapes are read (`app[0].definition.appV2` as ToolJet 2.x and 3.x
//! export it, a bare definition, or `appV2` itself). Ids and timestamps that ToolJet regenerates
//! on every import/export are never a change: things are matched by name and every reference
//! by id is replaced by the name it points at (see [`model`] for the rules). [`same_app`] is that
//! rule on its own, for callers that only need a yes/no (an export that must not commit an
//! unchanged app).

mod compare;
pub mod model;
mod render;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use compare::{
    AppDiff, Change, ComponentDiff, DataSourceDiff, EventDiff, PageDiff, QueryDiff, Status,
};
pub use model::{AppModel, normalise};
pub use render::SUMMARY_MAX_CHARS;

/// `s` as literal text in Markdown (HTML and emphasis characters escaped), for text placed next
/// to [`AppDiff::markdown`] blocks.
pub fn markdown_text(s: &str) -> String {
    render::html(s)
}

/// Why a bundle cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error(
        "not a ToolJet app export: expected app[0].definition.appV2 with editingVersion or pages"
    )]
    NotAnApp,
}

/// What changes inside the app from bundle `from` to bundle `to`.
pub fn diff(from: &Value, to: &Value) -> Result<AppDiff, DiffError> {
    let (a, ha) = model::normalise_with_hints(from)?;
    let (b, hb) = model::normalise_with_hints(to)?;
    Ok(compare::compare(&a, &ha, &b, &hb))
}

/// Whether two bundles are the same app (a re-export with new ids and timestamps is).
/// Equivalent to `diff(a, b)?.is_empty()`.
pub fn same_app(a: &Value, b: &Value) -> Result<bool, DiffError> {
    Ok(normalise(a)? == normalise(b)?)
}
