//! AppImports the state file knows and the manifests no longer hold ("orphans"). Without
//! `--prune` each is reported and kept; with it, removed as its last recorded `deletionPolicy`
//! says, as Flux's prune does: `Delete` deletes the app from ToolJet (the path of the
//! controller's finalizer, [`Engine::release`]) and forgets the entry, `Retain` forgets it and
//! leaves the app. Both remove the AppImport's own temporary apps when its instance is known.
//! An entry is forgotten only after ToolJet confirmed the deletion, so a failure or a crash
//! keeps it for the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::{AppRun, Manifests, PruneRecord, StateFile, client_for, instance_key, key_of};
use crate::api::DeletionPolicy;
use crate::sync::{Action, ImportKey, Mode, SyncState};
use crate::tooljet::ToolJetClient;

/// What became of an orphan.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanStatus {
    /// Reported and kept: the run had no `--prune`.
    Kept,
    /// `plan --prune`: what `sync --prune` would do.
    WouldPrune,
    /// Its `deletionPolicy` was applied and its entry forgotten.
    Pruned,
    /// Pruning failed; the entry stays for the next run.
    Failed,
}

/// An orphan as the run leaves it.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// The recorded policy; `None` when the entry predates the record (treated as `Retain`).
    pub deletion_policy: Option<DeletionPolicy>,
    pub status: OrphanStatus,
    /// What was (or would be) done, or why it failed and what to do.
    pub message: String,
}

/// One orphan of the run.
#[derive(Serialize, Clone, Debug)]
pub struct OrphanResult {
    /// `namespace/name` in the state file.
    pub name: String,
    pub orphan: Orphan,
    pub actions: Vec<Action>,
}

/// The state file's AppImports that the manifests do not hold, in key order.
pub(super) fn orphans(manifests: &Manifests, state: &StateFile) -> Vec<String> {
    let present: BTreeSet<String> = manifests
        .app_imports
        .iter()
        .map(|a| {
            let k = key_of(a);
            format!("{}/{}", k.namespace, k.name)
        })
        .collect();
    state
        .keys()
        .into_iter()
        .filter(|k| !present.contains(k))
        .collect()
}

/// Reports or prunes every orphan, one at a time.
pub(super) async fn apply(
    run: &AppRun<'_>,
    orphans: Vec<String>,
    clients: &mut BTreeMap<String, Arc<ToolJetClient>>,
) -> Vec<OrphanResult> {
    let mut results = Vec::new();
    for key in orphans {
        results.push(prune_one(run, &key, clients).await);
    }
    results
}

/// One orphan: what it is, what its policy asks, and (with `--prune`) doing it.
async fn prune_one(
    run: &AppRun<'_>,
    key: &str,
    clients: &mut BTreeMap<String, Arc<ToolJetClient>>,
) -> OrphanResult {
    let state = run.state.get(key);
    let record = run.state.prune_record(key);
    let policy = record.as_ref().map(|r| r.deletion_policy);
    let deletes_app = policy == Some(DeletionPolicy::Delete) && state.app.is_some();
    let result = |status, message: String, actions| OrphanResult {
        name: key.to_owned(),
        orphan: Orphan {
            deletion_policy: policy,
            status,
            message,
        },
        actions,
    };
    let (would, did) = what_pruning_does(policy, &state);
    if !run.opts.prune {
        let message = format!(
            "no longer in the manifests; --prune would {would}; kept: run with --prune to apply it"
        );
        return result(OrphanStatus::Kept, message, Vec::new());
    }
    let client = match reach(run, record.as_ref(), clients) {
        Ok(client) => Some(client),
        Err(why) if deletes_app => {
            let message = format!(
                "no longer in the manifests, but its app cannot be deleted: {why}; kept in the state file (pass the instance's manifest and Secret with -f, or remove the entry from the state file to leave the app)"
            );
            return result(OrphanStatus::Failed, message, Vec::new());
        }
        Err(why) => {
            tracing::info!(appimport = key, reason = %why, "pruning without the instance: its temporary apps are not looked for");
            None
        }
    };
    let mut actions = Vec::new();
    if let Some(client) = client {
        let import = import_key(key);
        let mode = run.opts.mode;
        match run
            .engine
            .release(&import, deletes_app, &state, &client, mode)
            .await
        {
            Ok(done) => actions = done,
            Err(e) => {
                let message = format!(
                    "no longer in the manifests; pruning failed in ToolJet: {e}; kept in the state file, the next sync --prune retries"
                );
                return result(OrphanStatus::Failed, message, Vec::new());
            }
        }
    }
    if run.opts.mode == Mode::Plan {
        let message = format!("no longer in the manifests: would {would}");
        return result(OrphanStatus::WouldPrune, message, actions);
    }
    if let Err(e) = run.state.forget(key).await {
        let message = format!("{did}, but the state file could not be saved: {e}");
        return result(OrphanStatus::Failed, message, actions);
    }
    result(
        OrphanStatus::Pruned,
        format!("no longer in the manifests: {did}"),
        actions,
    )
}

/// What `--prune` does with an orphan, in words: (what it would do, what it did).
fn what_pruning_does(policy: Option<DeletionPolicy>, state: &SyncState) -> (String, String) {
    let app = state
        .app
        .as_ref()
        .map(|a| format!("app {:?} ({})", a.name, a.id));
    match (policy, app) {
        (_, None) => (
            "forget the entry (it owns no app in ToolJet)".to_owned(),
            "forgot the entry (it owned no app in ToolJet)".to_owned(),
        ),
        (Some(DeletionPolicy::Delete), Some(app)) => (
            format!("delete {app} from ToolJet and forget the entry"),
            format!("deleted {app} from ToolJet and forgot the entry"),
        ),
        (Some(DeletionPolicy::Retain), Some(app)) => (
            format!("forget the entry and leave {app} in ToolJet"),
            format!("forgot the entry and left {app} in ToolJet"),
        ),
        (None, Some(app)) => {
            let why =
                "(no deletionPolicy recorded: the entry predates --prune, so Retain, the default)";
            (
                format!("forget the entry and leave {app} in ToolJet {why}"),
                format!("forgot the entry and left {app} in ToolJet {why}"),
            )
        }
    }
}

/// The client of the instance the orphan's app lives in, from the manifests: the instance must
/// still be there, under the same URL.
fn reach(
    run: &AppRun<'_>,
    record: Option<&PruneRecord>,
    clients: &mut BTreeMap<String, Arc<ToolJetClient>>,
) -> Result<Arc<ToolJetClient>, String> {
    let Some(record) = record else {
        return Err(
            "the state file does not record its ToolJetInstance (the entry predates --prune)"
                .to_owned(),
        );
    };
    let Some(instance) = run
        .manifests
        .instances
        .iter()
        .find(|i| instance_key(i) == record.instance)
    else {
        return Err(format!(
            "its ToolJetInstance {} ({}) is not in the files given with -f, so there is no URL or credentials to reach it",
            record.instance, record.instance_url
        ));
    };
    if instance.spec.url != record.instance_url {
        return Err(format!(
            "its ToolJetInstance {} now points at {}, not at {} where the app was imported",
            record.instance, instance.spec.url, record.instance_url
        ));
    }
    client_for(run.manifests, instance, clients).map_err(|report| report.message)
}

/// The engine's key of an AppImport from its state file key `namespace/name`.
fn import_key(key: &str) -> ImportKey {
    match key.split_once('/') {
        Some((namespace, name)) => ImportKey::new(namespace, name),
        None => ImportKey::new("", key),
    }
}

impl OrphanResult {
    /// Its first line in the text summary.
    fn headline(&self) -> String {
        let policy = match self.orphan.deletion_policy {
            Some(p) => format!("deletionPolicy {p:?}"),
            None => "no deletionPolicy recorded".to_owned(),
        };
        let status = match self.orphan.status {
            OrphanStatus::Kept => "orphaned",
            OrphanStatus::WouldPrune => "would prune",
            OrphanStatus::Pruned => "pruned",
            OrphanStatus::Failed => "PRUNE FAILED",
        };
        format!(
            "{}: {status} ({policy}): {}",
            self.name, self.orphan.message
        )
    }
}

/// The text summary of the orphans: a line each, then what was (or would be) written.
pub fn orphans_summary(orphans: &[OrphanResult], mode: Mode) -> String {
    let verb = if mode == Mode::Plan { "would" } else { "did" };
    let mut out = String::new();
    for o in orphans {
        out.push_str(&o.headline());
        out.push('\n');
        for a in &o.actions {
            out.push_str(&format!("  {verb}: {a}\n"));
        }
    }
    out
}

/// The orphans in a pull-request comment.
pub fn orphans_markdown(orphans: &[OrphanResult]) -> String {
    orphans
        .iter()
        .map(|o| format!("{}\n\n", crate::diff::markdown_text(&o.headline())))
        .collect()
}
