//! The decision: given what git and ToolJet look like now, what should be done, and which reads
//! a run may skip because nothing changed (the no-op rules). Pure, no I/O, so every rule of the
//! behaviour section of `api.md` is tested here without servers.

use crate::api::UpdatePolicy;

/// An app as ToolJet shows it now, reduced to what the engine decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedApp {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The later of the app's and its editing version's `updated_at`: moves whenever someone
    /// edits the app in ToolJet (an edit may touch only the version).
    pub updated_at: String,
    /// The version an import created (the editing version).
    pub version_id: Option<String>,
    /// The version end users see (`current_version_id`).
    pub released_version_id: Option<String>,
    /// A hash of what an edit in ToolJet changes in `GET /apps/:id`, releasing left out (see
    /// `AppStatus::edit_fingerprint`); `None` when read from a listing.
    pub fingerprint: Option<String>,
}

impl ObservedApp {
    /// Whether the app was edited in ToolJet since our last write, which recorded
    /// `recorded_fingerprint` (or, in an older status, only `recorded_updated_at`). With
    /// `release: true`, an app no longer released at its editing version (a person released
    /// another one) counts as edited; with `release: false` releasing is never an edit.
    pub fn edited_since(
        &self,
        recorded_fingerprint: Option<&str>,
        recorded_updated_at: Option<&str>,
        release: bool,
    ) -> bool {
        let changed = match (recorded_fingerprint, self.fingerprint.as_deref()) {
            (Some(recorded), Some(now)) => recorded != now,
            _ => recorded_updated_at.is_some_and(|recorded| recorded != self.updated_at),
        };
        let unreleased =
            release && self.version_id.is_some() && self.released_version_id != self.version_id;
        changed || unreleased
    }
}

/// Which commit to apply, and whether a newer one waits for approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetChoice {
    pub sha: String,
    /// `updatePolicy: Manual` and the newest commit is not approved yet.
    pub awaiting_approval: bool,
}

/// True when an annotation names this commit: the full sha or an unambiguous prefix of 7 or more.
pub fn annotation_names(annotation: Option<&str>, sha: &str) -> bool {
    annotation
        .map(|a| a.trim().to_ascii_lowercase())
        .is_some_and(|a| a.len() >= 7 && sha.starts_with(&a))
}

/// Picks the commit to apply. Automatic: the newest. Manual: the first import takes the newest
/// (creating the AppImport is the user's decision to import); later, the applied commit stays
/// until the approve annotation names the newest one. `latest_differs` is false when the newest
/// commit does not change this app (a commit to another app in the same repository), which
/// needs no approval.
pub fn choose_target(
    policy: UpdatePolicy,
    applied: Option<&str>,
    latest: &str,
    latest_differs: bool,
    approve: Option<&str>,
) -> TargetChoice {
    let take_latest = TargetChoice {
        sha: latest.to_owned(),
        awaiting_approval: false,
    };
    match (policy, applied) {
        (UpdatePolicy::Automatic, _) | (UpdatePolicy::Manual, None) => take_latest,
        (UpdatePolicy::Manual, Some(applied)) => {
            if applied == latest || !latest_differs || annotation_names(approve, latest) {
                take_latest
            } else {
                TargetChoice {
                    sha: applied.to_owned(),
                    awaiting_approval: true,
                }
            }
        }
    }
}

/// What the last successful run recorded, as far as the no-op rules need it: they decide what
/// a run can skip reading (git objects, the app's files) because nothing it depends on changed.
#[derive(Clone, Copy, Debug)]
pub struct Recorded<'a> {
    /// The generation of the spec this run applies (`None`: unknown, never "unchanged").
    pub generation: Option<i64>,
    /// The generation the app in ToolJet matches (`lastAppliedGeneration`).
    pub applied_generation: Option<i64>,
    /// The commit whose app is in ToolJet.
    pub applied_commit: Option<&'a str>,
    /// A hash of the applied app definition is recorded.
    pub hash_recorded: bool,
}

/// How the newest commit relates to the applied one, for this app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatestChange {
    /// It may change the app (first import, or the spec changed too).
    Differs,
    /// It is the applied commit.
    Same,
    /// Another commit, same spec: only comparing the app's files in git can tell.
    CompareFiles,
}

impl Recorded<'_> {
    /// The spec is the one last applied successfully.
    pub fn spec_unchanged(&self) -> bool {
        self.generation.is_some() && self.generation == self.applied_generation
    }

    /// What is known about the newest commit without reading git.
    pub fn latest_change(&self, latest: &str) -> LatestChange {
        match self.applied_commit {
            None => LatestChange::Differs,
            Some(applied) if applied == latest => LatestChange::Same,
            Some(_) if self.spec_unchanged() => LatestChange::CompareFiles,
            Some(_) => LatestChange::Differs,
        }
    }

    /// The no-op rule: the app's content is known unchanged without reading it from git when
    /// the spec is unchanged, a hash is recorded, and the target is the applied commit or the
    /// newest commit does not touch this app.
    pub fn content_known_unchanged(&self, target: &str, latest_differs: bool) -> bool {
        self.spec_unchanged()
            && self.hash_recorded
            && self.applied_commit.is_some()
            && (self.applied_commit == Some(target) || !latest_differs)
    }
}

/// The no-op rule of change summaries: a summary recorded for the same two commits still holds
/// (bundles at a commit never change), so only a new pending commit is compared.
pub fn summary_needed(recorded: Option<(&str, &str)>, from: &str, to: &str) -> bool {
    recorded != Some((from, to))
}

/// Whether an app holding the wanted name must be looked for: not when the owned app has it.
pub fn needs_name_check(owned_name: Option<&str>, wanted: &str) -> bool {
    owned_name != Some(wanted)
}

/// With nothing to write: whether to record the owned app's edit fingerprint now. A state from
/// before fingerprints gets one as soon as the app is known unedited, so that from then on every
/// edit is seen (2.x query edits too).
pub fn backfill_fingerprint(
    local_edits_kept: bool,
    recorded_app: bool,
    recorded_fingerprint: Option<&str>,
) -> bool {
    !local_edits_kept && recorded_app && recorded_fingerprint.is_none()
}

/// Everything the decision depends on.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The name the app must have in ToolJet.
    pub wanted_name: &'a str,
    pub editable: bool,
    pub adopt_existing: bool,
    pub force_pull: Option<&'a str>,
    /// The app this AppImport owns, as ToolJet shows it now.
    pub owned: Option<&'a ObservedApp>,
    /// The state names an owned app, but ToolJet no longer has it (deleted by someone).
    pub owned_vanished: bool,
    /// `updated_at` recorded right after our last write to the owned app.
    pub recorded_updated_at: Option<&'a str>,
    /// The edit fingerprint recorded right after our last write to the owned app.
    pub recorded_fingerprint: Option<&'a str>,
    /// `spec.release`.
    pub release: bool,
    /// An app we do not own that holds the wanted name.
    pub name_holder: Option<&'a ObservedApp>,
    /// The commit to apply.
    pub target_sha: &'a str,
    /// The definition at the target commit differs from the one applied last.
    pub content_changed: bool,
}

/// Why an app is replaced by a fresh import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceReason {
    /// A new commit changed the app.
    NewCommit,
    /// The app was edited in ToolJet; the force-pull annotation says to overwrite the edits.
    ForcePull,
    /// Not editable and edited in ToolJet: the git version is restored.
    DriftRestore,
    /// `adoptExisting`: an app of that name that we did not import is taken over.
    Adopt,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to write. `local_edits_kept`: editable app edited in ToolJet, no new commit.
    Nothing { local_edits_kept: bool },
    /// Import the app for the first time (or again, after someone deleted it in ToolJet).
    Create { recreate: bool },
    /// Import the target commit and swap it in for `old`, keeping `old`'s slug.
    Replace {
        old: ObservedApp,
        why: ReplaceReason,
    },
    /// Only the name changed in the spec: rename in ToolJet, no import.
    Rename { app: ObservedApp },
    /// Refuse, writing nothing.
    Refuse(Refusal),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An app of the wanted name exists that this AppImport did not import.
    NameConflict { holder: ObservedApp },
    /// Editable app edited in ToolJet and a newer commit arrived: the edits are kept.
    LocalChanges { app: ObservedApp },
}

/// The rules of `api.md` ("Behaviour users rely on"), in order.
pub fn decide(f: &Facts<'_>) -> Decision {
    let Some(owned) = f.owned else {
        return match f.name_holder {
            None => Decision::Create {
                recreate: f.owned_vanished,
            },
            Some(holder) if f.adopt_existing => Decision::Replace {
                old: holder.clone(),
                why: ReplaceReason::Adopt,
            },
            Some(holder) => Decision::Refuse(Refusal::NameConflict {
                holder: holder.clone(),
            }),
        };
    };

    // A rename onto a name someone else holds would fail in ToolJet; refuse before any write.
    if let Some(holder) = f.name_holder {
        return Decision::Refuse(Refusal::NameConflict {
            holder: holder.clone(),
        });
    }

    let edited = owned.edited_since(f.recorded_fingerprint, f.recorded_updated_at, f.release);
    if f.content_changed {
        if f.editable && edited {
            return if annotation_names(f.force_pull, f.target_sha) {
                Decision::Replace {
                    old: owned.clone(),
                    why: ReplaceReason::ForcePull,
                }
            } else {
                Decision::Refuse(Refusal::LocalChanges { app: owned.clone() })
            };
        }
        return Decision::Replace {
            old: owned.clone(),
            why: ReplaceReason::NewCommit,
        };
    }
    if edited && !f.editable {
        return Decision::Replace {
            old: owned.clone(),
            why: ReplaceReason::DriftRestore,
        };
    }
    if owned.name != f.wanted_name {
        return Decision::Rename { app: owned.clone() };
    }
    Decision::Nothing {
        local_edits_kept: edited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "1111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222";

    fn app(name: &str, updated_at: &str) -> ObservedApp {
        ObservedApp {
            id: format!("id-{name}"),
            name: name.into(),
            slug: "sales".into(),
            updated_at: updated_at.into(),
            version_id: Some("v1".into()),
            released_version_id: Some("v1".into()),
            fingerprint: None,
        }
    }

    fn facts<'a>(owned: Option<&'a ObservedApp>) -> Facts<'a> {
        Facts {
            wanted_name: "Sales",
            editable: false,
            adopt_existing: false,
            force_pull: None,
            owned,
            owned_vanished: false,
            recorded_updated_at: Some("t1"),
            recorded_fingerprint: None,
            release: true,
            name_holder: None,
            target_sha: NEW,
            content_changed: false,
        }
    }

    #[test]
    fn first_import_creates() {
        assert_eq!(decide(&facts(None)), Decision::Create { recreate: false });
    }

    #[test]
    fn app_deleted_in_tooljet_is_recreated() {
        let f = Facts {
            owned_vanished: true,
            ..facts(None)
        };
        assert_eq!(decide(&f), Decision::Create { recreate: true });
    }

    #[test]
    fn foreign_app_with_the_name_is_a_conflict_unless_adopted() {
        let holder = app("Sales", "t0");
        let f = Facts {
            name_holder: Some(&holder),
            ..facts(None)
        };
        assert!(matches!(
            decide(&f),
            Decision::Refuse(Refusal::NameConflict { .. })
        ));
        let f = Facts {
            adopt_existing: true,
            ..f
        };
        assert_eq!(
            decide(&f),
            Decision::Replace {
                old: holder.clone(),
                why: ReplaceReason::Adopt
            }
        );
    }

    #[test]
    fn nothing_changed_is_a_no_op() {
        let owned = app("Sales", "t1");
        assert_eq!(
            decide(&facts(Some(&owned))),
            Decision::Nothing {
                local_edits_kept: false
            }
        );
    }

    #[test]
    fn new_commit_replaces() {
        let owned = app("Sales", "t1");
        let f = Facts {
            content_changed: true,
            ..facts(Some(&owned))
        };
        assert!(matches!(
            decide(&f),
            Decision::Replace {
                why: ReplaceReason::NewCommit,
                ..
            }
        ));
    }

    #[test]
    fn edit_of_a_non_editable_app_is_restored() {
        let owned = app("Sales", "t2");
        assert!(matches!(
            decide(&facts(Some(&owned))),
            Decision::Replace {
                why: ReplaceReason::DriftRestore,
                ..
            }
        ));
    }

    #[test]
    fn edit_of_an_editable_app_is_kept() {
        let owned = app("Sales", "t2");
        let f = Facts {
            editable: true,
            ..facts(Some(&owned))
        };
        assert_eq!(
            decide(&f),
            Decision::Nothing {
                local_edits_kept: true
            }
        );
    }

    #[test]
    fn editable_edited_and_new_commit_waits_for_force_pull() {
        let owned = app("Sales", "t2");
        let f = Facts {
            editable: true,
            content_changed: true,
            ..facts(Some(&owned))
        };
        assert!(matches!(
            decide(&f),
            Decision::Refuse(Refusal::LocalChanges { .. })
        ));
        // A force-pull naming another commit changes nothing.
        let other = Facts {
            force_pull: Some(OLD),
            ..f.clone()
        };
        assert!(matches!(
            decide(&other),
            Decision::Refuse(Refusal::LocalChanges { .. })
        ));
        let forced = Facts {
            force_pull: Some(&NEW[..7]),
            ..f
        };
        assert!(matches!(
            decide(&forced),
            Decision::Replace {
                why: ReplaceReason::ForcePull,
                ..
            }
        ));
    }

    #[test]
    fn the_fingerprint_decides_when_recorded() {
        // updated_at moved (a release by hand), the fingerprint did not: no edit.
        let mut owned = app("Sales", "t2");
        owned.fingerprint = Some("f1".into());
        let f = Facts {
            recorded_fingerprint: Some("f1"),
            ..facts(Some(&owned))
        };
        assert_eq!(
            decide(&f),
            Decision::Nothing {
                local_edits_kept: false
            }
        );
        // A query edit on 2.x moves the fingerprint alone.
        let mut edited = app("Sales", "t1");
        edited.fingerprint = Some("f2".into());
        let f = Facts {
            recorded_fingerprint: Some("f1"),
            ..facts(Some(&edited))
        };
        assert!(matches!(
            decide(&f),
            Decision::Replace {
                why: ReplaceReason::DriftRestore,
                ..
            }
        ));
    }

    #[test]
    fn another_released_version_is_an_edit_only_with_release_true() {
        let mut owned = app("Sales", "t1");
        owned.fingerprint = Some("f1".into());
        owned.released_version_id = Some("v0".into());
        let f = Facts {
            recorded_fingerprint: Some("f1"),
            ..facts(Some(&owned))
        };
        assert!(matches!(
            decide(&f),
            Decision::Replace {
                why: ReplaceReason::DriftRestore,
                ..
            }
        ));
        let f = Facts {
            release: false,
            ..f
        };
        assert_eq!(
            decide(&f),
            Decision::Nothing {
                local_edits_kept: false
            }
        );
    }

    #[test]
    fn new_name_in_spec_renames_without_import() {
        let owned = app("Old name", "t1");
        assert_eq!(
            decide(&facts(Some(&owned))),
            Decision::Rename { app: owned.clone() }
        );
    }

    #[test]
    fn rename_onto_a_foreign_app_is_a_conflict() {
        let owned = app("Old name", "t1");
        let holder = app("Sales", "t0");
        let f = Facts {
            name_holder: Some(&holder),
            ..facts(Some(&owned))
        };
        assert!(matches!(
            decide(&f),
            Decision::Refuse(Refusal::NameConflict { .. })
        ));
    }

    #[test]
    fn manual_policy_waits_for_approval_of_the_newest_commit() {
        let manual = UpdatePolicy::Manual;
        // First import needs no approval.
        assert_eq!(choose_target(manual, None, NEW, true, None).sha, NEW);
        let waiting = choose_target(manual, Some(OLD), NEW, true, None);
        assert_eq!(waiting.sha, OLD);
        assert!(waiting.awaiting_approval);
        // Approving an older commit does not apply the newest.
        assert!(choose_target(manual, Some(OLD), NEW, true, Some(OLD)).awaiting_approval);
        let approved = choose_target(manual, Some(OLD), NEW, true, Some(NEW));
        assert_eq!(approved.sha, NEW);
        assert!(!approved.awaiting_approval);
        // A commit that does not touch this app needs no approval.
        assert!(!choose_target(manual, Some(OLD), NEW, false, None).awaiting_approval);
        // Automatic always takes the newest.
        assert_eq!(
            choose_target(UpdatePolicy::Automatic, Some(OLD), NEW, true, None).sha,
            NEW
        );
    }

    fn recorded(generation: Option<i64>, applied: Option<&str>) -> Recorded<'_> {
        Recorded {
            generation,
            applied_generation: Some(1),
            applied_commit: applied,
            hash_recorded: true,
        }
    }

    #[test]
    fn the_spec_is_unchanged_only_at_a_known_equal_generation() {
        assert!(recorded(Some(1), Some(OLD)).spec_unchanged());
        assert!(!recorded(Some(2), Some(OLD)).spec_unchanged());
        assert!(!recorded(None, Some(OLD)).spec_unchanged());
    }

    #[test]
    fn the_newest_commit_is_compared_in_git_only_when_nothing_else_tells() {
        assert_eq!(
            recorded(Some(1), None).latest_change(NEW),
            LatestChange::Differs
        );
        assert_eq!(
            recorded(Some(1), Some(NEW)).latest_change(NEW),
            LatestChange::Same
        );
        assert_eq!(
            recorded(Some(1), Some(OLD)).latest_change(NEW),
            LatestChange::CompareFiles
        );
        // A changed spec needs the app read anyway: no comparison.
        assert_eq!(
            recorded(Some(2), Some(OLD)).latest_change(NEW),
            LatestChange::Differs
        );
    }

    #[test]
    fn content_is_known_unchanged_only_when_nothing_it_depends_on_moved() {
        let r = recorded(Some(1), Some(OLD));
        assert!(
            r.content_known_unchanged(OLD, true),
            "target is the applied commit"
        );
        assert!(
            r.content_known_unchanged(NEW, false),
            "newest commit leaves the app alone"
        );
        assert!(
            !r.content_known_unchanged(NEW, true),
            "newest commit changes the app"
        );
        assert!(!recorded(Some(2), Some(OLD)).content_known_unchanged(OLD, false));
        assert!(!recorded(Some(1), None).content_known_unchanged(OLD, false));
        let no_hash = Recorded {
            hash_recorded: false,
            ..r
        };
        assert!(!no_hash.content_known_unchanged(OLD, false));
    }

    #[test]
    fn the_name_is_checked_unless_the_owned_app_holds_it() {
        assert!(!needs_name_check(Some("Sales"), "Sales"));
        assert!(needs_name_check(Some("Old"), "Sales"));
        assert!(needs_name_check(None, "Sales"));
    }

    #[test]
    fn a_missing_fingerprint_is_recorded_only_for_an_unedited_owned_app() {
        assert!(backfill_fingerprint(false, true, None));
        assert!(!backfill_fingerprint(true, true, None), "edits kept");
        assert!(
            !backfill_fingerprint(false, true, Some("f")),
            "already recorded"
        );
        assert!(
            !backfill_fingerprint(false, false, None),
            "nothing recorded"
        );
    }

    #[test]
    fn a_change_summary_is_computed_once_per_pair_of_commits() {
        assert!(summary_needed(None, OLD, NEW));
        assert!(!summary_needed(Some((OLD, NEW)), OLD, NEW));
        assert!(summary_needed(Some((OLD, OLD)), OLD, NEW), "a newer commit");
        assert!(summary_needed(Some((NEW, NEW)), OLD, NEW), "another base");
    }

    #[test]
    fn annotations_need_seven_characters_of_the_sha() {
        assert!(annotation_names(Some(NEW), NEW));
        assert!(annotation_names(Some(" 2222222 "), NEW));
        assert!(!annotation_names(Some("222"), NEW));
        assert!(!annotation_names(Some(""), NEW));
        assert!(!annotation_names(None, NEW));
    }
}
