//! Every reason of the table through both mappings: the controller's (conditions, Events,
//! metrics) and the command line's (exit code, text, JSON). A reason added to the table without
//! a mapping, or mapped differently by the two, fails here.

use jiff::Timestamp;
use kube::runtime::events::EventType;

use crate::api::condition::{READY, RECONCILING, STALLED};
use crate::api::{Consequence, Reason, Verdict};
use crate::controller::app_import::{events_for, verdict_of};
use crate::controller::conditions::{REASON_RETRYING, from_report};
use crate::offline::{ImportResult, exit_code, markdown, summary};
use crate::process::metrics::ReconcileResult;
use crate::sync::Mode;

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("valid")
}

#[test]
fn every_reason_maps_to_conditions_events_and_metrics() {
    for &reason in Reason::ALL {
        let v = Verdict::new(reason, format!("message of {reason}"));
        let conditions = from_report(&[], &v, Some(2), now());
        let find = |t: &str| conditions.iter().find(|c| c.type_ == t);
        let ready = find(READY).unwrap_or_else(|| panic!("{reason}: no Ready condition"));
        assert_eq!(ready.reason, reason.as_str(), "{reason}");
        assert_eq!(ready.message, v.message, "{reason}");
        let events = events_for(false, None, &v);
        match reason.consequence() {
            Consequence::Ready => {
                assert_eq!(ready.status, "True", "{reason}");
                assert_eq!(conditions.len(), 1, "{reason}: {conditions:?}");
                assert!(events.is_empty(), "{reason}: {events:?}");
                assert_eq!(verdict_of(&v), ReconcileResult::Success, "{reason}");
            }
            Consequence::Retrying => {
                assert_eq!(ready.status, "False", "{reason}");
                let rec = find(RECONCILING).unwrap_or_else(|| panic!("{reason}: no Reconciling"));
                assert_eq!(
                    (rec.status.as_str(), rec.reason.as_str()),
                    ("True", REASON_RETRYING),
                    "{reason}"
                );
                assert!(find(STALLED).is_none(), "{reason}");
                assert_eq!(
                    events,
                    vec![(EventType::Warning, reason.as_str(), v.message.as_str())],
                    "{reason}"
                );
                assert_eq!(verdict_of(&v), ReconcileResult::Error, "{reason}");
            }
            Consequence::Waiting => {
                // Nothing applied before: not Ready; the wait is in Reconciling, no Warning.
                assert_eq!(ready.status, "False", "{reason}");
                let rec = find(RECONCILING).unwrap_or_else(|| panic!("{reason}: no Reconciling"));
                assert_eq!(
                    (rec.status.as_str(), rec.reason.as_str()),
                    ("True", reason.as_str()),
                    "{reason}"
                );
                assert!(find(STALLED).is_none(), "{reason}");
                assert!(events.is_empty(), "{reason}: {events:?}");
                assert_eq!(verdict_of(&v), ReconcileResult::Success, "{reason}");
                // An app that was Ready stays Ready while waiting.
                let before =
                    from_report(&[], &Verdict::new(Reason::UpToDate, "ok"), Some(2), now());
                let after = from_report(&before, &v, Some(2), now());
                let ready = after.iter().find(|c| c.type_ == READY).expect("Ready");
                assert_eq!(
                    (ready.status.as_str(), ready.reason.as_str()),
                    ("True", reason.as_str()),
                    "{reason}"
                );
            }
            Consequence::Stalled => {
                assert_eq!(ready.status, "False", "{reason}");
                let stalled = find(STALLED).unwrap_or_else(|| panic!("{reason}: no Stalled"));
                assert_eq!(
                    (stalled.status.as_str(), stalled.reason.as_str()),
                    ("True", reason.as_str()),
                    "{reason}"
                );
                assert!(find(RECONCILING).is_none(), "{reason}");
                assert_eq!(
                    events,
                    vec![(EventType::Warning, reason.as_str(), v.message.as_str())],
                    "{reason}"
                );
                assert_eq!(verdict_of(&v), ReconcileResult::Refused, "{reason}");
            }
        }
    }
}

#[test]
fn every_reason_maps_to_an_exit_code_text_and_json() {
    for &reason in Reason::ALL {
        let v = Verdict::new(reason, format!("message of {reason}"));
        let results = vec![ImportResult {
            name: "team/sales".into(),
            report: v.clone(),
            actions: Vec::new(),
            server: None,
            changes: None,
        }];
        let text = summary(&results, Mode::Apply, false);
        let markdown = markdown(&results, Mode::Plan);
        assert!(
            markdown.contains(&format!("· {reason}: message of {reason}")),
            "{reason}: {markdown}"
        );
        let json = serde_json::to_value(&results).expect("json");
        assert_eq!(json[0]["report"]["reason"], reason.as_str(), "{reason}");
        assert_eq!(json[0]["report"]["ready"], v.ready(), "{reason}");
        assert_eq!(json[0]["report"]["retryable"], v.retryable(), "{reason}");
        assert_eq!(json[0]["report"]["stalled"], v.stalled(), "{reason}");
        let expected_line = match reason.consequence() {
            Consequence::Ready => {
                assert_eq!(exit_code(&results), 0, "{reason}");
                format!("team/sales: ready ({reason}): message of {reason}\n")
            }
            Consequence::Waiting => {
                assert_eq!(exit_code(&results), 0, "{reason}");
                format!("team/sales: waiting ({reason}): message of {reason}\n")
            }
            Consequence::Retrying | Consequence::Stalled => {
                assert_eq!(exit_code(&results), 1, "{reason}");
                format!("team/sales: NOT READY ({reason}): message of {reason}\n")
            }
        };
        assert!(text.starts_with(&expected_line), "{reason}: {text}");
    }
}

/// The failures the command line used to name differently from the cluster (a missing Secret was
/// `InvalidSpec`, every instance choice `InstanceNotFound`) now give the cluster's verdict.
#[tokio::test]
async fn the_command_line_and_the_cluster_agree_on_secrets_and_instances() {
    use std::sync::Arc;

    use crate::offline::{Manifests, StateFile, run};
    use crate::source::{CacheConfig, SourceCache};
    use crate::sync::{Secrets, tooljet_client};

    const INSTANCE: &str = "apiVersion: gitops.tooljet.dev/v1alpha1\nkind: ToolJetInstance\nmetadata: {name: NAME, namespace: team}\nspec:\n  url: http://tj.invalid\n  environment: staging\n  workspaceId: w\n  auth: {adminApiKey: {secretRef: {name: tj-admin, key: key}}}\n";
    const APP: &str = "apiVersion: gitops.tooljet.dev/v1alpha1\nkind: AppImport\nmetadata: {name: sales, namespace: team}\nspec:\n  environment: staging\n  source: {url: 'file:///nowhere', ref: {branch: main}, app: Sales}\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = async |instances: &[&str]| {
        let path = dir.path().join("m.yaml");
        let mut yaml = APP.to_owned();
        for name in instances {
            yaml.push_str("---\n");
            yaml.push_str(&INSTANCE.replace("NAME", name));
        }
        std::fs::write(&path, yaml).expect("write");
        let manifests = Manifests::load(&[path]).expect("manifests");
        let cache = SourceCache::new(CacheConfig {
            dir: dir.path().join("cache"),
            ..CacheConfig::default()
        });
        let state = StateFile::open(None).expect("state");
        let results = run(&manifests, cache, &state, Mode::Plan)
            .await
            .expect("run");
        (manifests, results)
    };

    let (manifests, results) = cli(&["tj"]).await;
    let cluster = tooljet_client(&manifests.instances[0], &Secrets::in_namespace("team"))
        .expect_err("no Secret");
    assert_eq!(results[0].report.reason, Reason::SecretNotFound);
    assert_eq!(results[0].report, cluster);
    assert!(
        results[0].report.message.contains("team/tj-admin"),
        "{}",
        results[0].report.message
    );

    let (manifests, results) = cli(&["a", "b"]).await;
    let instances: Vec<_> = manifests.instances.iter().cloned().map(Arc::new).collect();
    let cluster =
        crate::controller::resolve::select_instance(&manifests.app_imports[0], "team", &instances)
            .expect_err("two instances");
    assert_eq!(results[0].report.reason, Reason::SeveralInstances);
    assert_eq!(results[0].report, cluster);
}
