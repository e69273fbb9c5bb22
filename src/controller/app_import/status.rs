//! The AppImport's status from the engine's state and a verdict (pure): the engine keeps its own
//! [`SyncState`]; conditions, `observedGeneration` and `lastHandledReconcileAt` are the
//! controller's, written here once.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{AppImportStatus, Verdict};
use crate::controller::conditions;
use crate::sync::SyncState;

/// The engine's state as the last status recorded it.
pub fn state_of(status: &AppImportStatus) -> SyncState {
    let AppImportStatus {
        observed_generation: _,
        conditions: _,
        last_handled_reconcile_at: _,
        // The controller's, like the conditions: the engine never decides promotion.
        promotion: _,
        app,
        pending_app,
        last_applied_commit,
        latest_commit,
        last_applied_generation,
        last_applied_hash,
        last_sync_time,
        history,
        data_sources,
        changes,
    } = status.clone();
    SyncState {
        app,
        pending_app,
        last_applied_commit,
        latest_commit,
        last_applied_generation,
        last_applied_hash,
        last_sync_time: last_sync_time.map(|t| t.0),
        history,
        data_sources,
        changes,
    }
}

/// `status` with the engine's fields replaced by `state`; the controller's own fields kept.
pub fn with_state(status: AppImportStatus, state: &SyncState) -> AppImportStatus {
    let SyncState {
        app,
        pending_app,
        last_applied_commit,
        latest_commit,
        last_applied_generation,
        last_applied_hash,
        last_sync_time,
        history,
        data_sources,
        changes,
    } = state.clone();
    AppImportStatus {
        app,
        pending_app,
        last_applied_commit,
        latest_commit,
        last_applied_generation,
        last_applied_hash,
        last_sync_time: last_sync_time.map(Time),
        history,
        data_sources,
        changes,
        ..status
    }
}

/// The status after a run: `previous` with the engine's new state (when the engine ran), the
/// conditions of `verdict`, and the generation and reconcile request this verdict answers.
pub fn after_run(
    previous: &AppImportStatus,
    state: Option<&SyncState>,
    verdict: &Verdict,
    generation: Option<i64>,
    requested_at: Option<String>,
    now: Timestamp,
) -> AppImportStatus {
    let mut status = match state {
        Some(state) => with_state(previous.clone(), state),
        None => previous.clone(),
    };
    status.conditions = conditions::from_report(&previous.conditions, verdict, generation, now);
    status
        .conditions
        .extend(conditions::data_sources_configured(
            &previous.conditions,
            &status.data_sources,
            generation,
            now,
        ));
    // Every verdict, refusals before the engine included, describes this generation (kstatus).
    // The engine's own memory of what it applied is `lastAppliedGeneration`.
    status.observed_generation = generation;
    status.last_handled_reconcile_at = requested_at.or(status.last_handled_reconcile_at);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AppStatus, ChangeSummary, ChangesStatus, Reason};

    fn state() -> SyncState {
        SyncState {
            app: Some(AppStatus {
                id: "a1".into(),
                name: "Sales".into(),
                slug: "sales".into(),
                updated_at: Some("t1".into()),
                version_id: Some("v1".into()),
                edit_fingerprint: Some("f".into()),
            }),
            last_applied_generation: Some(3),
            last_applied_hash: Some("h".into()),
            last_sync_time: Some(Timestamp::from_second(1_700_000_000).expect("t")),
            changes: Some(ChangesStatus {
                pending: Some(ChangeSummary {
                    from: "1111111".into(),
                    commit: "2222222".into(),
                    summary: "1 page, 2 components changed".into(),
                    pages: 1,
                    components: 2,
                    queries: 0,
                }),
                last_applied: None,
            }),
            ..SyncState::default()
        }
    }

    #[test]
    fn state_round_trips_through_status_and_keeps_the_controllers_fields() {
        let previous = AppImportStatus {
            observed_generation: Some(2),
            last_handled_reconcile_at: Some("now".into()),
            ..AppImportStatus::default()
        };
        let status = with_state(previous, &state());
        assert_eq!(state_of(&status), state());
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.last_handled_reconcile_at.as_deref(), Some("now"));
    }

    #[test]
    fn a_run_writes_conditions_and_generation_once() {
        let previous = with_state(AppImportStatus::default(), &state());
        let now = Timestamp::from_second(1_700_000_100).expect("t");
        let refused = Verdict::new(Reason::SecretNotFound, "Secret ns/git not found");
        // A refusal before the engine keeps the engine's state as it was.
        let status = after_run(&previous, None, &refused, Some(4), None, now);
        assert_eq!(state_of(&status), state());
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(status.conditions[0].reason, "SecretNotFound");
        assert_eq!(status.conditions[0].observed_generation, Some(4));
        let ok = Verdict::new(Reason::UpToDate, "up to date");
        let fresh = SyncState::default();
        let status = after_run(&status, Some(&fresh), &ok, Some(4), Some("r1".into()), now);
        assert_eq!(state_of(&status), fresh);
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(status.last_handled_reconcile_at.as_deref(), Some("r1"));
    }
}
