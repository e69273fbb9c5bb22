//! Conversions between what git and ToolJet return and what the engine decides on and records.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::error::SyncError;
use super::plan::ObservedApp;
use crate::api::{AppImportSpec, AppLocation, AppStatus, CommitInfo, RefKind};
use crate::source::{self, AppLocator, GitRef, SourceSpec};
use crate::tooljet::{AppDetails, AppSummary};

/// The git side of a spec; refuses specs the CRD would refuse (files read by `sync -f` did not
/// pass an API server).
pub fn source_of(spec: &AppImportSpec) -> Result<(SourceSpec, AppLocator), SyncError> {
    let git_ref = match spec.source.git_ref.kind() {
        Some(RefKind::Branch(b)) => GitRef::Branch(b.to_owned()),
        Some(RefKind::Tag(t)) => GitRef::Tag(t.to_owned()),
        Some(RefKind::Commit(c)) => GitRef::Commit(c.to_owned()),
        None => {
            return Err(SyncError::InvalidSpec(
                "source.ref must set exactly one of branch, tag or commit".into(),
            ));
        }
    };
    let locator = match spec.source.app_location() {
        Some(AppLocation::GitApp(name)) => AppLocator::ByName(name.to_owned()),
        Some(AppLocation::BundlePath(path)) => AppLocator::Path(path.to_owned()),
        None => {
            return Err(SyncError::InvalidSpec(
                "source must set exactly one of app or path".into(),
            ));
        }
    };
    Ok((
        SourceSpec {
            url: spec.source.url.clone(),
            git_ref,
        },
        locator,
    ))
}

pub(super) fn locator_name(locator: &AppLocator) -> String {
    match locator {
        AppLocator::ByName(n) | AppLocator::Path(n) => n.clone(),
    }
}

/// The later of the app's and its editing version's `updated_at` (ISO-8601 strings of one
/// server compare in time order).
fn edit_marker(details: &AppDetails) -> String {
    let version = details
        .editing_version
        .as_ref()
        .and_then(|v| v.updated_at.as_deref())
        .unwrap_or_default();
    details.updated_at.as_str().max(version).to_owned()
}

pub(super) fn observed(details: &AppDetails) -> ObservedApp {
    ObservedApp {
        id: details.id.clone(),
        name: details.name.clone(),
        slug: details.slug.clone(),
        updated_at: edit_marker(details),
        version_id: details.editing_version.as_ref().map(|v| v.id.clone()),
        released_version_id: details.current_version_id.clone(),
        fingerprint: Some(edit_fingerprint(details)),
    }
}

/// A hash of what an edit made in the ToolJet editor changes in `GET /api/apps/:id`, on both
/// families: the app's name, slug and settings; the editing version (id and `updated_at`,
/// which pages, components, events and version settings move); and each query with its own
/// `updated_at` (on 2.x, saving or adding a query moves no other timestamp). The app's own
/// `updated_at` and `current_version_id` are left out: a release by hand moves them, and is
/// not an edit (whether it matters with `release: true` is decided apart). 128 bits in hex.
fn edit_fingerprint(details: &AppDetails) -> String {
    use sha2::{Digest, Sha256};
    let mut queries: Vec<_> = details
        .data_queries
        .iter()
        .flatten()
        .map(|q| (&q.id, &q.name, &q.data_source_id, &q.updated_at))
        .collect();
    queries.sort();
    let seen = serde_json::json!({
        "name": details.name,
        "slug": details.slug,
        "is_public": details.is_public,
        "is_maintenance_on": details.is_maintenance_on,
        "icon": details.icon,
        "editing_version": details.editing_version.as_ref().map(|v| (&v.id, &v.updated_at)),
        "queries": queries,
    });
    let digest = Sha256::digest(seen.to_string().as_bytes());
    hex::encode(&digest[..16])
}

pub(super) fn observed_summary(app: &AppSummary) -> ObservedApp {
    ObservedApp {
        id: app.id.clone(),
        name: app.name.clone(),
        slug: app.slug.clone(),
        updated_at: app.updated_at.clone().unwrap_or_default(),
        version_id: app.current_version_id.clone(),
        released_version_id: app.current_version_id.clone(),
        fingerprint: None,
    }
}

pub(super) fn app_status(app: &ObservedApp) -> AppStatus {
    AppStatus {
        id: app.id.clone(),
        name: app.name.clone(),
        slug: app.slug.clone(),
        updated_at: Some(app.updated_at.clone()),
        version_id: app.version_id.clone(),
        edit_fingerprint: app.fingerprint.clone(),
    }
}

/// A git commit as status shows it.
pub fn commit_status(c: &source::CommitInfo) -> CommitInfo {
    CommitInfo {
        sha: c.sha.clone(),
        short_sha: CommitInfo::short_sha_of(&c.sha),
        message: c.message.clone(),
        author: if c.author_email.is_empty() {
            c.author.clone()
        } else {
            format!("{} <{}>", c.author, c.author_email)
        },
        date: Some(Time(c.date)),
    }
}
