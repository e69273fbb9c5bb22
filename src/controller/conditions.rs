//! Pure computation of kstatus conditions from the outcome of a reconcile.
//!
//! kstatus: `Ready` is always present; `Reconciling` and `Stalled` are "abnormal-true" conditions,
//! present only while true (tools treat an absent one as false). `UpdateAvailable` is present only
//! while a commit waits for approval; `Drifted` is True while an edit made in ToolJet lasts and
//! False (reason `DriftCorrected`) on the run that restored the git version.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::condition::{
    DATA_SOURCES_CONFIGURED, DRIFTED, READY, RECONCILING, STALLED, UPDATE_AVAILABLE,
};
use crate::api::{Consequence, DataSourceStatus, DetailReason, Verdict};

/// Reason of the Ready condition while `spec.suspend` is true.
pub const REASON_SUSPENDED: &str = DetailReason::Suspended.as_str();
/// Reason of Reconciling while a failure is retried with backoff.
pub const REASON_RETRYING: &str = DetailReason::Retrying.as_str();
/// Reason of the Drifted condition on the run that restored the git version.
pub const REASON_DRIFT_CORRECTED: &str = DetailReason::DriftCorrected.as_str();
/// Reason of the Drifted condition while an edit lasts.
pub const REASON_DRIFT_DETECTED: &str = DetailReason::DriftDetected.as_str();
/// Reason of UpdateAvailable with `updatePolicy: Manual`.
pub const REASON_AWAITING_APPROVAL: &str = DetailReason::AwaitingApproval.as_str();

/// The conditions after a run that produced `report` (by the engine, or by a check before it),
/// keeping `lastTransitionTime` of every condition whose status did not change.
pub fn from_report(
    previous: &[Condition],
    report: &Verdict,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out = Vec::new();
    let mut put = |type_: &str, status: &str, reason: &str, message: &str| {
        out.push(condition(
            previous, type_, status, reason, message, generation, now,
        ));
    };
    let reason = report.reason.as_str();
    match report.consequence() {
        Consequence::Ready => put(READY, "True", reason, &report.message),
        Consequence::Stalled => {
            put(READY, "False", reason, &report.message);
            put(STALLED, "True", reason, &report.message);
        }
        Consequence::Waiting => {
            // The current app stays: a Ready object stays Ready (its lastTransitionTime too, which
            // the soak clock of a downstream AppImport reads); one that never was stays not Ready.
            let was_ready = previous
                .iter()
                .any(|c| c.type_ == READY && c.status == "True");
            put(
                READY,
                if was_ready { "True" } else { "False" },
                reason,
                &report.message,
            );
            put(RECONCILING, "True", reason, &report.message);
        }
        Consequence::Retrying => {
            put(READY, "False", reason, &report.message);
            put(
                RECONCILING,
                "True",
                REASON_RETRYING,
                &format!("retrying with backoff after: {}", report.message),
            );
        }
    }
    if let Some(commit) = &report.update_available {
        let changes = report
            .pending_changes
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default();
        let message = format!(
            "commit {} ({}{changes}) is waiting for approval; set the annotation gitops.tooljet.dev/approve: \"{}\" to import it",
            commit.short_sha,
            first_line(&commit.message),
            commit.sha
        );
        put(UPDATE_AVAILABLE, "True", REASON_AWAITING_APPROVAL, &message);
    }
    if let Some(drift) = &report.drift {
        if drift.corrected {
            put(DRIFTED, "False", REASON_DRIFT_CORRECTED, &drift.message);
        } else {
            put(DRIFTED, "True", REASON_DRIFT_DETECTED, &drift.message);
        }
    }
    out
}

/// `DataSourcesConfigured` of an AppImport, from its data sources marked `configured`: False
/// naming those the instance does not configure (informative: defaults may do in development),
/// True when it configures them all; absent before any was checked.
pub fn data_sources_configured(
    previous: &[Condition],
    used: &[DataSourceStatus],
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Condition> {
    if used.iter().all(|d| d.configured.is_none()) {
        return None;
    }
    let missing: Vec<&str> = used
        .iter()
        .filter(|d| d.configured == Some(false))
        .map(|d| d.name.as_str())
        .collect();
    Some(if missing.is_empty() {
        condition(
            previous,
            DATA_SOURCES_CONFIGURED,
            "True",
            DetailReason::AllConfigured.as_str(),
            "the ToolJetInstance configures every data source the app's queries use",
            generation,
            now,
        )
    } else {
        condition(
            previous,
            DATA_SOURCES_CONFIGURED,
            "False",
            DetailReason::NotConfigured.as_str(),
            &format!(
                "the ToolJetInstance's spec.dataSources does not configure {} used by the app's queries; they keep the options the import gave them (no secrets)",
                missing.join(", ")
            ),
            generation,
            now,
        )
    })
}

/// The conditions while `spec.suspend` is true: Ready keeps its status (a suspended app that was
/// ready is still there) with reason `Suspended`; the other conditions are dropped because
/// nothing is being checked.
pub fn suspended(
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let status = previous
        .iter()
        .find(|c| c.type_ == READY)
        .map_or("Unknown", |c| c.status.as_str())
        .to_owned();
    vec![condition(
        previous,
        READY,
        &status,
        REASON_SUSPENDED,
        "spec.suspend is true: nothing is read from git or written to ToolJet; set suspend: false to resume",
        generation,
        now,
    )]
}

/// One condition; `lastTransitionTime` carries over when a condition of that type had the same status.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        // The API server limits messages to 32768 bytes.
        message: truncate(message, 32_000),
        observed_generation: generation,
        last_transition_time,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use crate::api::{DataSourceAction, DataSourceStatus};

    #[test]
    fn data_sources_configured_names_the_missing_ones() {
        let now = Timestamp::from_second(1_700_000_000).expect("t");
        let used = |name: &str, configured: Option<bool>| DataSourceStatus {
            name: name.into(),
            kind: "postgresql".into(),
            id: None,
            action: DataSourceAction::Linked,
            configured,
        };
        assert!(data_sources_configured(&[], &[used("a", None)], Some(1), now).is_none());
        let c = data_sources_configured(
            &[],
            &[used("a", Some(true)), used("b", Some(false))],
            Some(1),
            now,
        )
        .expect("condition");
        assert_eq!(
            (c.type_.as_str(), c.status.as_str()),
            ("DataSourcesConfigured", "False")
        );
        assert_eq!(c.reason, "NotConfigured");
        assert!(
            c.message.contains(" b ") && !c.message.contains(" a "),
            "{}",
            c.message
        );
        let c = data_sources_configured(&[], &[used("a", Some(true))], Some(1), now)
            .expect("condition");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "AllConfigured")
        );
    }

    use super::*;
    use crate::api::{CommitInfo, Drift, Reason};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("valid")
    }

    fn ok_report() -> Verdict {
        Verdict::new(Reason::Imported, "imported commit abc1234")
    }

    fn find<'a>(c: &'a [Condition], type_: &str) -> Option<&'a Condition> {
        c.iter().find(|c| c.type_ == type_)
    }

    #[test]
    fn ready_report_gives_ready_true_and_no_abnormal_conditions() {
        let c = from_report(&[], &ok_report(), Some(3), t(0));
        let ready = find(&c, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Imported")
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(ready.last_transition_time, Time(t(0)));
        assert!(find(&c, STALLED).is_none() && find(&c, RECONCILING).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn transition_time_kept_while_status_unchanged_and_moved_on_change() {
        let first = from_report(&[], &ok_report(), Some(1), t(0));
        let mut again = ok_report();
        again.reason = Reason::UpToDate;
        let second = from_report(&first, &again, Some(2), t(60));
        let ready = find(&second, READY).expect("Ready");
        assert_eq!(ready.last_transition_time, Time(t(0)));
        assert_eq!(ready.reason, "UpToDate");
        assert_eq!(ready.observed_generation, Some(2));

        let failed = Verdict::new(Reason::InstanceNotFound, "no instance");
        let third = from_report(&second, &failed, Some(2), t(120));
        assert_eq!(
            find(&third, READY).expect("Ready").last_transition_time,
            Time(t(120))
        );
    }

    #[test]
    fn non_retryable_failure_is_stalled_with_the_same_reason() {
        let r = Verdict::new(
            Reason::NamespaceNotAllowed,
            "add the namespace to allowedNamespaces",
        );
        let c = from_report(&[], &r, None, t(0));
        let ready = find(&c, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NamespaceNotAllowed")
        );
        let stalled = find(&c, STALLED).expect("Stalled");
        assert_eq!(stalled.status, "True");
        assert_eq!(stalled.reason, "NamespaceNotAllowed");
        assert!(stalled.message.contains("allowedNamespaces"));
        assert!(find(&c, RECONCILING).is_none());
    }

    #[test]
    fn retryable_failure_is_reconciling_not_stalled() {
        let r = Verdict::new(Reason::ToolJetUnavailable, "connection refused");
        let c = from_report(&[], &r, None, t(0));
        assert_eq!(find(&c, READY).expect("Ready").status, "False");
        let rec = find(&c, RECONCILING).expect("Reconciling");
        assert_eq!(
            (rec.status.as_str(), rec.reason.as_str()),
            ("True", REASON_RETRYING)
        );
        assert!(rec.message.contains("connection refused"));
        assert!(find(&c, STALLED).is_none());
    }

    #[test]
    fn engine_refusals_map_to_their_reasons() {
        for reason in [
            Reason::LocalChanges,
            Reason::NameConflict,
            Reason::EditableNotAllowed,
        ] {
            let mut r = ok_report();
            r.reason = reason;
            assert!(!r.ready() && r.stalled());
            let c = from_report(&[], &r, None, t(0));
            assert_eq!(find(&c, READY).expect("Ready").reason, reason.as_str());
            assert_eq!(find(&c, STALLED).expect("Stalled").reason, reason.as_str());
        }
    }

    #[test]
    fn manual_update_sets_update_available_with_the_approve_instruction() {
        let mut r = ok_report();
        r.update_available = Some(Box::new(CommitInfo {
            sha: "a".repeat(40),
            short_sha: "aaaaaaa".into(),
            message: "add button\n\nlong body".into(),
            author: "dev".into(),
            date: None,
        }));
        let c = from_report(&[], &r, None, t(0));
        let u = find(&c, UPDATE_AVAILABLE).expect("UpdateAvailable");
        assert_eq!(u.status, "True");
        assert!(
            u.message.contains(&format!(
                "gitops.tooljet.dev/approve: \"{}\"",
                "a".repeat(40)
            )),
            "{}",
            u.message
        );
        assert!(find(&from_report(&c, &ok_report(), None, t(1)), UPDATE_AVAILABLE).is_none());
    }

    #[test]
    fn drift_true_while_it_lasts_and_false_when_corrected() {
        let mut r = ok_report();
        r.drift = Some(Drift {
            message: "app edited in ToolJet".into(),
            corrected: false,
        });
        let c = from_report(&[], &r, None, t(0));
        let d = find(&c, DRIFTED).expect("Drifted");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", REASON_DRIFT_DETECTED)
        );
        r.drift = Some(Drift {
            message: "restored".into(),
            corrected: true,
        });
        let c2 = from_report(&c, &r, None, t(5));
        let d = find(&c2, DRIFTED).expect("Drifted");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("False", REASON_DRIFT_CORRECTED)
        );
        assert_eq!(d.last_transition_time, Time(t(5)));
    }

    #[test]
    fn suspended_keeps_ready_status_with_reason_suspended() {
        let before = from_report(&[], &ok_report(), Some(1), t(0));
        let c = suspended(&before, Some(2), t(10));
        assert_eq!(c.len(), 1);
        let ready = &c[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", REASON_SUSPENDED)
        );
        assert_eq!(ready.last_transition_time, Time(t(0)));
        assert!(ready.message.contains("suspend: false"));
        assert_eq!(suspended(&[], None, t(0))[0].status, "Unknown");
    }

    #[test]
    fn waiting_keeps_ready_as_it_was_and_says_why_in_reconciling() {
        let before = from_report(&[], &ok_report(), Some(1), t(0));
        let pending = Verdict::new(Reason::PromotionPending, "eligible at 10:30");
        let c = from_report(&before, &pending, Some(1), t(60));
        let ready = find(&c, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "PromotionPending")
        );
        assert_eq!(ready.last_transition_time, Time(t(0)), "Ready did not move");
        let rec = find(&c, RECONCILING).expect("Reconciling");
        assert_eq!(
            (rec.status.as_str(), rec.reason.as_str()),
            ("True", "PromotionPending")
        );
        assert!(find(&c, STALLED).is_none());
        // Nothing applied yet: not Ready, still waiting.
        let c = from_report(&[], &pending, Some(1), t(60));
        assert_eq!(find(&c, READY).expect("Ready").status, "False");
        assert!(find(&c, RECONCILING).is_some());
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(20_000);
        let c = condition(&[], READY, "False", "X", &long, None, t(0));
        assert!(c.message.len() <= 32_003);
        assert!(c.message.ends_with('…'));
    }
}
