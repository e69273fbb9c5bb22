//! Promotion (`source.ref.fromAppImport`): which commit of an upstream AppImport this AppImport
//! may follow, and from when. Pure: no I/O, no clock, no Kubernetes client. The controller and
//! `sync -f` fill an [`UpstreamState`] from the upstream's status, check [`check_tenancy`] and
//! [`check_cycle`], call [`decide`], and act on the [`Decision`] (a [`Decision::Follow`] is synced
//! as a pinned commit fetched from this AppImport's own `source.url`).
//!
//! The rules:
//! - Only the commit the upstream has applied (`status.lastAppliedCommit`) is ever a candidate:
//!   never its `latestCommit`, never one it has not applied.
//! - The soak clock of that commit starts at the later of when the upstream applied it (its
//!   `status.history` entry) and when its Ready condition last turned True: Ready's
//!   `lastTransitionTime` alone does not move when a Ready upstream applies a new commit, and
//!   flapping Ready → NotReady → Ready restarts the soak.
//! - `eligibleAt` = `readySince` + `readyFor`; at `eligibleAt` exactly the commit is followed.
//! - Before then (or while the upstream is not Ready) the current app stays as it is.

use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::condition::READY;
use crate::api::{
    ANNOTATION_PROMOTE_TO_NAMESPACES, AppImport, AppImportRef, CommitInfo, DetailReason,
    PromotionStatus, Reason, Verdict,
};

/// An AppImport by namespace and name; shown as `namespace/name` (also in `status.promotion.from`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppImportKey {
    pub namespace: String,
    pub name: String,
}

impl AppImportKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        AppImportKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The AppImport `reference` names, from an AppImport in `own_namespace`.
    pub fn of_ref(reference: &AppImportRef, own_namespace: &str) -> Self {
        AppImportKey::new(reference.namespace_or(own_namespace), &reference.name)
    }
}

impl fmt::Display for AppImportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The upstream an AppImport in `own_namespace` promotes from, or `None` when its ref is a
/// branch, tag or commit. For [`check_cycle`] lookups.
pub fn upstream_key(app: &AppImport, own_namespace: &str) -> Option<AppImportKey> {
    app.spec
        .source
        .git_ref
        .from_app_import
        .as_ref()
        .map(|r| AppImportKey::of_ref(r, own_namespace))
}

/// One commit the upstream applied (`status.history`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedCommit {
    pub sha: String,
    pub applied_at: Timestamp,
}

/// What the upstream AppImport's status says, as plain data.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UpstreamState {
    /// `status.lastAppliedCommit.sha`: the commit whose app is in the upstream's ToolJet.
    pub applied_commit: Option<String>,
    /// The Ready condition is `True`.
    pub ready: bool,
    /// The Ready condition's `lastTransitionTime`.
    pub ready_since: Option<Timestamp>,
    /// The Ready condition's reason and message (shown when the upstream holds a promotion).
    pub ready_reason: String,
    pub ready_message: String,
    /// The upstream's `metadata.generation`, and the generation its Ready condition describes.
    pub generation: Option<i64>,
    pub ready_observed_generation: Option<i64>,
    /// `status.history`, newest first.
    pub history: Vec<AppliedCommit>,
}

impl UpstreamState {
    /// The state of `upstream` as its object (spec, status) shows it.
    pub fn from_app_import(upstream: &AppImport) -> Self {
        let status = upstream.status.as_ref();
        let ready = status.and_then(|s| s.condition(READY));
        UpstreamState {
            applied_commit: status
                .and_then(|s| s.last_applied_commit.as_ref())
                .map(|c| c.sha.clone()),
            ready: ready.is_some_and(|c| c.status == "True"),
            ready_since: ready.map(|c| c.last_transition_time.0),
            ready_reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
            ready_message: ready.map(|c| c.message.clone()).unwrap_or_default(),
            generation: upstream.metadata.generation,
            ready_observed_generation: ready.and_then(|c| c.observed_generation),
            history: status
                .map(|s| {
                    s.history
                        .iter()
                        .map(|h| AppliedCommit {
                            sha: h.sha.clone(),
                            applied_at: h.applied_at.0,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Why the upstream holds the promotion: nothing to follow yet; the current app stays.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Hold {
    /// Stalled until the upstream appears (a watch on AppImports re-enqueues).
    #[error(
        "source.ref.fromAppImport names AppImport {from}, which does not exist; create it or fix fromAppImport (the current app stays)"
    )]
    UpstreamNotFound { from: AppImportKey },
    /// Waiting for the upstream's first import.
    #[error(
        "upstream AppImport {from} has not applied any commit yet; the current app stays until it has applied one and is Ready"
    )]
    UpstreamNeverApplied { from: AppImportKey },
    /// Waiting for the upstream to reconcile its latest spec.
    #[error(
        "upstream AppImport {from} has a spec change (generation {generation}) it has not reconciled yet (its Ready condition describes generation {observed}); the current app stays until it has"
    )]
    UpstreamNotReconciled {
        from: AppImportKey,
        generation: i64,
        observed: i64,
    },
    /// Waiting for the upstream to be Ready again.
    #[error(
        "upstream AppImport {from} is not Ready ({reason}: {message}); commit {short} is not promoted and the current app stays until the upstream is Ready on it", short = CommitInfo::short_sha_of(sha)
    )]
    UpstreamNotReady {
        from: AppImportKey,
        sha: String,
        reason: String,
        message: String,
    },
}

impl Hold {
    /// The reason of the Ready condition (UpstreamNotFound is Stalled, the others Waiting).
    pub fn reason(&self) -> Reason {
        match self {
            Hold::UpstreamNotFound { .. } => Reason::UpstreamNotFound,
            Hold::UpstreamNeverApplied { .. } => Reason::UpstreamNeverApplied,
            Hold::UpstreamNotReconciled { .. } => Reason::UpstreamNotReconciled,
            Hold::UpstreamNotReady { .. } => Reason::UpstreamNotReady,
        }
    }
}

/// What this AppImport does about its upstream's applied commit now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The commit proved itself upstream: sync to it (pinned, from this AppImport's own repository).
    Follow {
        sha: String,
        ready_since: Timestamp,
        eligible_at: Timestamp,
        /// How long the upstream has been Ready on it (for the `Promoted` Event).
        ready_duration: Duration,
    },
    /// Ready upstream, but not yet for `readyFor`: the current app stays; check again at
    /// `eligible_at` (reason `PromotionPending`, Waiting).
    Pending {
        sha: String,
        ready_since: Timestamp,
        eligible_at: Timestamp,
    },
    /// Nothing to follow; the current app stays.
    Hold(Hold),
}

/// Reason of the Ready condition while a promotion waits out `readyFor`.
pub const REASON_PROMOTION_PENDING: Reason = Reason::PromotionPending;
/// Reason of the Event emitted when a promoted commit is applied.
pub const REASON_PROMOTED: &str = DetailReason::Promoted.as_str();

impl Decision {
    /// What `status.promotion` holds after this decision: the candidate commit, or nothing while
    /// the upstream holds the promotion.
    pub fn record(&self, from: &AppImportKey) -> Option<PromotionStatus> {
        match self {
            Decision::Follow {
                sha,
                ready_since,
                eligible_at,
                ..
            }
            | Decision::Pending {
                sha,
                ready_since,
                eligible_at,
            } => Some(PromotionStatus {
                from: from.to_string(),
                sha: sha.clone(),
                ready_since: Time(*ready_since),
                eligible_at: Time(*eligible_at),
            }),
            Decision::Hold(_) => None,
        }
    }

    /// When to look again without any change upstream: at `eligibleAt` while pending.
    pub fn requeue_after(&self, now: Timestamp) -> Option<Duration> {
        match self {
            Decision::Pending { eligible_at, .. } => {
                Some(Duration::try_from(eligible_at.duration_since(now)).unwrap_or(Duration::ZERO))
            }
            _ => None,
        }
    }

    /// The condition message while pending (reason [`REASON_PROMOTION_PENDING`]).
    pub fn pending_message(&self, from: &AppImportKey) -> Option<String> {
        match self {
            Decision::Pending {
                sha,
                ready_since,
                eligible_at,
            } => Some(format!(
                "commit {} has been Ready in upstream AppImport {from} since {ready_since}; it becomes eligible for promotion at {eligible_at} (readyFor), and the current app stays until then",
                CommitInfo::short_sha_of(sha)
            )),
            _ => None,
        }
    }

    /// The message of the `Promoted` Event, for a followed commit that differs from the one
    /// applied before.
    pub fn promoted_message(&self, from: &AppImportKey) -> Option<String> {
        match self {
            Decision::Follow {
                sha,
                ready_duration,
                ..
            } => Some(format!(
                "promoted commit {} from AppImport {from}, where it has been Ready for {}",
                CommitInfo::short_sha_of(sha),
                human(*ready_duration)
            )),
            _ => None,
        }
    }
}

/// A duration to whole seconds, as `1h 30m 5s`.
fn human(d: Duration) -> String {
    let rounded = SignedDuration::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if rounded.is_zero() {
        return "0s".into();
    }
    format!("{rounded:#}")
}

/// Which commit of the upstream (`None`: not found) this AppImport follows at `now`, with soak
/// time `ready_for`. `current` is this AppImport's `status.promotion`: it dates a commit the
/// upstream's history no longer lists from when this AppImport first saw it, instead of trusting
/// an older date.
pub fn decide(
    from: &AppImportKey,
    upstream: Option<&UpstreamState>,
    ready_for: Duration,
    now: Timestamp,
    current: Option<&PromotionStatus>,
) -> Decision {
    let Some(upstream) = upstream else {
        return Decision::Hold(Hold::UpstreamNotFound { from: from.clone() });
    };
    let Some(sha) = upstream.applied_commit.clone() else {
        return Decision::Hold(Hold::UpstreamNeverApplied { from: from.clone() });
    };
    if let (Some(generation), Some(observed)) =
        (upstream.generation, upstream.ready_observed_generation)
        && observed < generation
    {
        return Decision::Hold(Hold::UpstreamNotReconciled {
            from: from.clone(),
            generation,
            observed,
        });
    }
    let ready_transition = match (upstream.ready, upstream.ready_since) {
        (true, Some(since)) => since,
        _ => {
            return Decision::Hold(Hold::UpstreamNotReady {
                from: from.clone(),
                sha,
                reason: if upstream.ready_reason.is_empty() {
                    "NoReadyCondition".into()
                } else {
                    upstream.ready_reason.clone()
                },
                message: upstream.ready_message.clone(),
            });
        }
    };
    let applied_at = upstream
        .history
        .iter()
        .find(|h| h.sha == sha)
        .map(|h| h.applied_at)
        .or_else(|| {
            current
                .filter(|c| c.from == from.to_string() && c.sha == sha)
                .map(|c| c.ready_since.0)
        })
        .unwrap_or(now);
    let ready_since = ready_transition.max(applied_at);
    let eligible_at = SignedDuration::try_from(ready_for)
        .ok()
        .and_then(|d| ready_since.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX);
    // readyFor 0 asks for no soak: a clock skew between replicas must not delay it.
    if ready_for.is_zero() || now >= eligible_at {
        let ready_duration =
            Duration::try_from(now.duration_since(ready_since)).unwrap_or_default();
        Decision::Follow {
            sha,
            ready_since,
            eligible_at,
            ready_duration,
        }
    } else {
        Decision::Pending {
            sha,
            ready_since,
            eligible_at,
        }
    }
}

/// A promotion the operator refuses until the user changes something (Stalled).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "upstream AppImport {from} is in another namespace and does not allow promotion to namespace {namespace:?}; add {namespace} to its annotation {ANNOTATION_PROMOTE_TO_NAMESPACES} (comma-separated namespaces{wildcard_note}), or promote from an AppImport in this namespace",
        wildcard_note = if *.wildcard_tried { "; `*` is not supported: list each namespace" } else { "" }
    )]
    NamespaceNotAllowed {
        from: AppImportKey,
        namespace: String,
        /// The annotation lists `*`, which grants nothing.
        wildcard_tried: bool,
    },
    #[error("{}", cycle_message(.chain, *.loop_start))]
    Cycle {
        /// From the refused AppImport along fromAppImport, ending with the first one seen twice.
        chain: Vec<AppImportKey>,
        /// Where the loop starts in `chain` (0: the refused AppImport is in the loop).
        loop_start: usize,
    },
    #[error(
        "commit {sha} applied by upstream AppImport {from} is not in this AppImport's repository {url}; both must use the same repository (another URL of it is fine): fix source.url, or push the commit there"
    )]
    CommitNotInRepository {
        from: AppImportKey,
        sha: String,
        /// As the source layer shows it: without a password.
        url: String,
    },
}

impl Refusal {
    /// The reason of the Ready and Stalled conditions.
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::NamespaceNotAllowed { .. } => Reason::PromotionNotAllowed,
            Refusal::Cycle { .. } => Reason::PromotionCycle,
            Refusal::CommitNotInRepository { .. } => Reason::CommitNotInRepository,
        }
    }

    /// The verdict of a run this refusal stopped.
    pub fn verdict(&self) -> Verdict {
        Verdict::new(self.reason(), self.to_string())
    }
}

fn cycle_message(chain: &[AppImportKey], loop_start: usize) -> String {
    let path = |keys: &[AppImportKey]| {
        keys.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" → ")
    };
    let looped = path(chain.get(loop_start..).unwrap_or_default());
    let how = "an AppImport cannot promote from itself or from an AppImport that (indirectly) promotes from it; point one of them at a branch, tag or commit";
    match chain.first() {
        Some(first) if loop_start > 0 => format!(
            "AppImport {first} promotes from a fromAppImport chain that loops: {} then {looped}; {how}",
            path(&chain[..=loop_start])
        ),
        _ => format!("the fromAppImport chain loops: {looped}; {how}"),
    }
}

/// The annotation of `upstream` granting promotion to other namespaces, for [`check_tenancy`].
pub fn grant_of(upstream: &AppImport) -> Option<&str> {
    upstream
        .annotations()
        .get(ANNOTATION_PROMOTE_TO_NAMESPACES)
        .map(String::as_str)
}

/// May an AppImport in `namespace` promote from `upstream`? Always within a namespace; across
/// namespaces only when the upstream's `grant` annotation lists `namespace` by name. The owners
/// of the upstream decide who reads its commits and timing, as a Gateway API ReferenceGrant or
/// a ToolJetInstance's `allowedNamespaces` do.
pub fn check_tenancy(
    namespace: &str,
    upstream: &AppImportKey,
    grant: Option<&str>,
) -> Result<(), Refusal> {
    if upstream.namespace == namespace {
        return Ok(());
    }
    let listed: Vec<&str> = grant
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if listed.contains(&namespace) {
        return Ok(());
    }
    Err(Refusal::NamespaceNotAllowed {
        from: upstream.clone(),
        namespace: namespace.to_owned(),
        wildcard_tried: listed.contains(&"*"),
    })
}

/// Follows fromAppImport from `start` through `upstream_of` (the upstream an AppImport names,
/// `None` for a branch/tag/commit ref or an AppImport that does not exist). Returns the chain,
/// `start` first, when it ends; refuses when it loops, self-reference included.
pub fn check_cycle(
    start: &AppImportKey,
    upstream_of: impl Fn(&AppImportKey) -> Option<AppImportKey>,
) -> Result<Vec<AppImportKey>, Refusal> {
    let mut chain = vec![start.clone()];
    let mut next = upstream_of(start);
    while let Some(key) = next {
        if let Some(loop_start) = chain.iter().position(|k| *k == key) {
            chain.push(key);
            return Err(Refusal::Cycle { chain, loop_start });
        }
        next = upstream_of(&key);
        chain.push(key);
    }
    Ok(chain)
}

/// A fromAppImport ref resolved for one run: which upstream, and what to do about its commit.
/// Built by [`promotion_of`], the one place the controller and `sync -f` decide a promotion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub from: AppImportKey,
    pub decision: Decision,
}

impl Promotion {
    /// `status.promotion` after this run.
    pub fn record(&self) -> Option<PromotionStatus> {
        self.decision.record(&self.from)
    }

    /// The commit to sync to (pinned, from this AppImport's own `source.url`), or `None` while
    /// the current app stays.
    pub fn followed_sha(&self) -> Option<&str> {
        match &self.decision {
            Decision::Follow { sha, .. } => Some(sha),
            _ => None,
        }
    }

    /// The verdict of a run that does not sync (pending or held): the current app stays.
    pub fn waiting_verdict(&self) -> Option<Verdict> {
        match &self.decision {
            Decision::Follow { .. } => None,
            Decision::Pending { .. } => Some(Verdict::new(
                REASON_PROMOTION_PENDING,
                self.decision
                    .pending_message(&self.from)
                    .unwrap_or_default(),
            )),
            Decision::Hold(hold) => Some(Verdict::new(hold.reason(), hold.to_string())),
        }
    }

    /// The engine's verdict of a run that followed the commit: a commit missing from this
    /// AppImport's repository (the engine's RefNotFound for a pinned commit) is
    /// CommitNotInRepository, naming the upstream. `url` as the source layer shows it.
    pub fn engine_verdict(&self, report: Verdict, url: &str) -> Verdict {
        match self.followed_sha() {
            Some(sha) if report.reason == Reason::RefNotFound => Verdict {
                reason: Reason::CommitNotInRepository,
                message: Refusal::CommitNotInRepository {
                    from: self.from.clone(),
                    sha: sha.to_owned(),
                    url: url.to_owned(),
                }
                .to_string(),
                ..report
            },
            _ => report,
        }
    }

    /// The `Promoted` Event's message when a run applied the followed commit and it differs from
    /// `applied_before` (the commit applied before the run).
    pub fn promoted_event(
        &self,
        applied_before: Option<&str>,
        applied_now: Option<&str>,
    ) -> Option<String> {
        let sha = self.followed_sha()?;
        (applied_now == Some(sha) && applied_before != Some(sha))
            .then(|| self.decision.promoted_message(&self.from))
            .flatten()
    }
}

/// The promotion `app` (in `own_namespace`) asks for at `now`: `Ok(None)` for a branch, tag or
/// commit ref; a Stalled verdict for an invalid ref, a refused namespace or a cycle. `lookup`
/// finds AppImports by key (the controller's cache, or the manifests of a `sync -f` run).
/// Tenancy is checked before anything of the upstream's status goes into a message.
pub fn promotion_of<A: std::borrow::Borrow<AppImport>>(
    app: &AppImport,
    own_namespace: &str,
    lookup: impl Fn(&AppImportKey) -> Option<A>,
    now: Timestamp,
) -> Result<Option<Promotion>, Verdict> {
    let Some(promotion) = app
        .spec
        .source
        .git_ref
        .promotion()
        .map_err(|e| Verdict::new(Reason::InvalidSpec, e.to_string()))?
    else {
        return Ok(None);
    };
    let from = AppImportKey::of_ref(promotion.upstream, own_namespace);
    let upstream = lookup(&from);
    if let Some(up) = &upstream {
        check_tenancy(own_namespace, &from, grant_of(up.borrow())).map_err(|r| r.verdict())?;
    } else {
        // Whether it exists elsewhere is none of this namespace's business: same refusal.
        check_tenancy(own_namespace, &from, None).map_err(|r| r.verdict())?;
    }
    let own_key = AppImportKey::new(own_namespace, app.name_any());
    check_cycle(&own_key, |k| {
        if *k == own_key {
            return upstream_key(app, own_namespace);
        }
        lookup(k).and_then(|a| upstream_key(a.borrow(), &k.namespace))
    })
    .map_err(|r| r.verdict())?;
    let state = upstream.map(|up| UpstreamState::from_app_import(up.borrow()));
    let current = app.status.as_ref().and_then(|s| s.promotion.as_ref());
    let decision = decide(&from, state.as_ref(), promotion.ready_for, now, current);
    Ok(Some(Promotion { from, decision }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// 2025-01-01 at `hh:mm:ss` UTC.
    fn at(hms: &str) -> Timestamp {
        format!("2025-01-01T{hms}Z").parse().expect("timestamp")
    }

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    fn staging() -> AppImportKey {
        AppImportKey::new("team-a", "sales-staging")
    }

    /// Ready since `ready`, having applied `sha` at `applied`.
    fn upstream(sha: &str, applied: &str, ready: &str) -> UpstreamState {
        UpstreamState {
            applied_commit: Some(sha.into()),
            ready: true,
            ready_since: Some(at(ready)),
            ready_reason: "Synced".into(),
            generation: Some(1),
            ready_observed_generation: Some(1),
            history: vec![AppliedCommit {
                sha: sha.into(),
                applied_at: at(applied),
            }],
            ..Default::default()
        }
    }

    fn decide_at(u: &UpstreamState, ready_for: Duration, now: &str) -> Decision {
        decide(&staging(), Some(u), ready_for, at(now), None)
    }

    #[test]
    fn pending_until_eligible_at_then_followed_exactly_at_it() {
        let u = upstream(A, "10:00:00", "10:00:00");
        let before = decide_at(&u, mins(30), "10:29:59");
        assert_eq!(
            before,
            Decision::Pending {
                sha: A.into(),
                ready_since: at("10:00:00"),
                eligible_at: at("10:30:00"),
            }
        );
        assert_eq!(
            before.requeue_after(at("10:29:59")),
            Some(Duration::from_secs(1))
        );
        let message = before.pending_message(&staging()).expect("pending");
        assert!(
            message.contains("aaaaaaa")
                && message.contains("2025-01-01T10:30:00Z")
                && message.contains("team-a/sales-staging"),
            "{message}"
        );
        let record = before.record(&staging()).expect("recorded");
        assert_eq!(record.from, "team-a/sales-staging");
        assert_eq!(record.eligible_at, Time(at("10:30:00")));

        let exactly = decide_at(&u, mins(30), "10:30:00");
        assert_eq!(
            exactly,
            Decision::Follow {
                sha: A.into(),
                ready_since: at("10:00:00"),
                eligible_at: at("10:30:00"),
                ready_duration: mins(30),
            }
        );
        assert_eq!(exactly.requeue_after(at("10:30:00")), None);
        let event = exactly.promoted_message(&staging()).expect("followed");
        assert!(
            event.contains("aaaaaaa") && event.contains("Ready for 30m"),
            "{event}"
        );
    }

    #[test]
    fn ready_for_zero_follows_at_once_even_with_clock_skew() {
        let u = upstream(A, "10:00:00", "10:00:00");
        let now = decide_at(&u, Duration::ZERO, "10:00:00");
        assert!(matches!(now, Decision::Follow { ref sha, .. } if sha == A));
        // Another replica's clock, 2s behind the one that wrote the upstream's status.
        let skewed = decide_at(&u, Duration::ZERO, "09:59:58");
        assert!(
            matches!(skewed, Decision::Follow { ready_duration, .. } if ready_duration.is_zero())
        );
        // With a soak, the same skew only waits.
        assert!(matches!(
            decide_at(&u, mins(1), "09:59:58"),
            Decision::Pending { .. }
        ));
    }

    #[test]
    fn a_new_upstream_commit_restarts_the_clock() {
        // Ready since 09:00 on A; B applied at 10:00 without Ready ever turning False, so
        // Ready's lastTransitionTime still says 09:00.
        let mut u = upstream(B, "10:00:00", "09:00:00");
        u.history.push(AppliedCommit {
            sha: A.into(),
            applied_at: at("09:00:00"),
        });
        let d = decide_at(&u, mins(30), "10:20:00");
        assert_eq!(
            d,
            Decision::Pending {
                sha: B.into(),
                ready_since: at("10:00:00"),
                eligible_at: at("10:30:00"),
            },
            "B must soak from when it was applied, and A (no longer applied) is never a candidate"
        );
    }

    #[test]
    fn flapping_ready_restarts_the_soak() {
        let mut u = upstream(A, "09:00:00", "09:00:00");
        assert!(matches!(
            decide_at(&u, mins(30), "09:20:00"),
            Decision::Pending { .. }
        ));
        // Ready → NotReady at 09:25: hold, nothing recorded.
        u.ready = false;
        u.ready_since = Some(at("09:25:00"));
        u.ready_reason = "ToolJetUnavailable".into();
        u.ready_message = "connection refused".into();
        let held = decide_at(&u, mins(30), "09:31:00");
        assert_eq!(
            held,
            Decision::Hold(Hold::UpstreamNotReady {
                from: staging(),
                sha: A.into(),
                reason: "ToolJetUnavailable".into(),
                message: "connection refused".into(),
            })
        );
        assert_eq!(held.record(&staging()), None);
        let message = match &held {
            Decision::Hold(h) => h.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(
            message.contains("ToolJetUnavailable: connection refused")
                && message.contains("aaaaaaa"),
            "{message}"
        );
        // NotReady → Ready at 09:40: 30m from 09:40, not from 09:00.
        u.ready = true;
        u.ready_since = Some(at("09:40:00"));
        assert_eq!(
            decide_at(&u, mins(30), "09:45:00"),
            Decision::Pending {
                sha: A.into(),
                ready_since: at("09:40:00"),
                eligible_at: at("10:10:00"),
            }
        );
        assert!(matches!(
            decide_at(&u, mins(30), "10:10:00"),
            Decision::Follow { .. }
        ));
    }

    #[test]
    fn missing_never_applied_stale_or_conditionless_upstreams_hold() {
        let none = decide(&staging(), None, mins(5), at("10:00:00"), None);
        assert_eq!(
            none,
            Decision::Hold(Hold::UpstreamNotFound { from: staging() })
        );
        let never = UpstreamState {
            ready: true,
            ready_since: Some(at("09:00:00")),
            ..Default::default()
        };
        assert_eq!(
            decide_at(&never, Duration::ZERO, "10:00:00"),
            Decision::Hold(Hold::UpstreamNeverApplied { from: staging() })
        );
        let mut stale = upstream(A, "09:00:00", "09:00:00");
        stale.generation = Some(3);
        stale.ready_observed_generation = Some(2);
        assert_eq!(
            decide_at(&stale, Duration::ZERO, "10:00:00"),
            Decision::Hold(Hold::UpstreamNotReconciled {
                from: staging(),
                generation: 3,
                observed: 2,
            })
        );
        let mut conditionless = upstream(A, "09:00:00", "09:00:00");
        conditionless.ready_since = None;
        conditionless.ready_reason = String::new();
        let Decision::Hold(hold) = decide_at(&conditionless, Duration::ZERO, "10:00:00") else {
            panic!("a Ready without a transition time cannot be dated");
        };
        assert_eq!(hold.reason(), "UpstreamNotReady");
        assert!(hold.to_string().contains("NoReadyCondition"), "{hold}");
        for (hold, reason) in [
            (
                Hold::UpstreamNotFound { from: staging() },
                "UpstreamNotFound",
            ),
            (
                Hold::UpstreamNeverApplied { from: staging() },
                "UpstreamNeverApplied",
            ),
        ] {
            assert_eq!(hold.reason(), reason);
            assert!(hold.to_string().contains("team-a/sales-staging"), "{hold}");
        }
    }

    #[test]
    fn a_commit_missing_from_history_is_dated_when_first_seen() {
        let mut u = upstream(A, "09:00:00", "09:00:00");
        u.history.clear();
        // First sight: the clock starts now, not at the older Ready transition.
        let first = decide_at(&u, mins(30), "10:00:00");
        assert_eq!(
            first,
            Decision::Pending {
                sha: A.into(),
                ready_since: at("10:00:00"),
                eligible_at: at("10:30:00"),
            }
        );
        // Later runs keep that date from status.promotion...
        let record = first.record(&staging());
        let later = decide(
            &staging(),
            Some(&u),
            mins(30),
            at("10:30:00"),
            record.as_ref(),
        );
        assert!(
            matches!(later, Decision::Follow { ready_since, .. } if ready_since == at("10:00:00"))
        );
        // ...but only for the same commit of the same upstream.
        let mut other = record.clone().expect("record");
        other.sha = B.into();
        let restarted = decide(&staging(), Some(&u), mins(30), at("10:30:00"), Some(&other));
        assert!(
            matches!(restarted, Decision::Pending { eligible_at, .. } if eligible_at == at("11:00:00"))
        );
        let mut elsewhere = record.expect("record");
        elsewhere.from = "team-b/sales-staging".into();
        let restarted = decide(
            &staging(),
            Some(&u),
            mins(30),
            at("10:30:00"),
            Some(&elsewhere),
        );
        assert!(matches!(restarted, Decision::Pending { .. }));
    }

    #[test]
    fn a_huge_ready_for_waits_instead_of_overflowing() {
        let u = upstream(A, "10:00:00", "10:00:00");
        let d = decide_at(&u, Duration::from_secs(u64::MAX), "10:00:00");
        assert!(
            matches!(d, Decision::Pending { eligible_at, .. } if eligible_at == Timestamp::MAX)
        );
    }

    #[test]
    fn upstream_state_reads_the_applied_commit_never_the_latest() {
        let upstream: AppImport = serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1",
            "kind": "AppImport",
            "metadata": {"name": "sales-staging", "namespace": "team-a", "generation": 4},
            "spec": {
                "environment": "staging",
                "updatePolicy": "Manual",
                "source": {"url": "https://x/y.git", "ref": {"branch": "main"}, "app": "Sales"}
            },
            "status": {
                "lastAppliedCommit": {"sha": A, "shortSha": "aaaaaaa"},
                "latestCommit": {"sha": B, "shortSha": "bbbbbbb"},
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Synced", "message": "up to date",
                    "lastTransitionTime": "2025-01-01T09:00:00Z", "observedGeneration": 4
                }],
                "history": [{"sha": A, "appliedAt": "2025-01-01T09:05:00Z"}]
            }
        }))
        .expect("AppImport parses");
        let state = UpstreamState::from_app_import(&upstream);
        assert_eq!(
            state,
            UpstreamState {
                applied_commit: Some(A.into()),
                ready: true,
                ready_since: Some(at("09:00:00")),
                ready_reason: "Synced".into(),
                ready_message: "up to date".into(),
                generation: Some(4),
                ready_observed_generation: Some(4),
                history: vec![AppliedCommit {
                    sha: A.into(),
                    applied_at: at("09:05:00"),
                }],
            }
        );
        assert!(matches!(
            decide_at(&state, mins(30), "09:35:00"),
            Decision::Follow { ref sha, .. } if sha == A
        ));
        // An AppImport without status has applied nothing.
        let mut fresh = upstream.clone();
        fresh.status = None;
        assert_eq!(
            decide_at(
                &UpstreamState::from_app_import(&fresh),
                mins(30),
                "09:35:00"
            ),
            Decision::Hold(Hold::UpstreamNeverApplied { from: staging() })
        );
    }

    fn app_import(namespace: &str, name: &str, annotations: &[(&str, &str)]) -> AppImport {
        let mut app: AppImport = serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1",
            "kind": "AppImport",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "environment": "production",
                "source": {"url": "https://x/y.git", "ref": {"branch": "main"}, "app": "Sales"}
            }
        }))
        .expect("AppImport parses");
        app.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        app
    }

    #[test]
    fn same_namespace_needs_no_grant() {
        check_tenancy("team-a", &staging(), None).expect("same namespace");
    }

    #[test]
    fn another_namespace_must_be_listed_by_the_upstream() {
        let granted = app_import(
            "team-a",
            "sales-staging",
            &[(ANNOTATION_PROMOTE_TO_NAMESPACES, " prod , team-c")],
        );
        assert_eq!(grant_of(&granted), Some(" prod , team-c"));
        check_tenancy("prod", &staging(), grant_of(&granted)).expect("listed");
        check_tenancy("team-c", &staging(), grant_of(&granted)).expect("listed");

        let ungranted = app_import("team-a", "sales-staging", &[]);
        for (namespace, grant) in [
            ("prod", grant_of(&ungranted)),
            ("prod", Some("")),
            ("prod-eu", Some("prod")),
            ("prod", Some("prod-eu,staging")),
        ] {
            let err = check_tenancy(namespace, &staging(), grant).expect_err("refused");
            assert_eq!(err.reason(), "PromotionNotAllowed");
            let message = err.to_string();
            assert!(
                message.contains("team-a/sales-staging")
                    && message.contains(&format!("{namespace:?}"))
                    && message.contains(ANNOTATION_PROMOTE_TO_NAMESPACES)
                    && !message.contains('*'),
                "{message}"
            );
        }
        // No wildcard: a grant names each namespace.
        let err = check_tenancy("prod", &staging(), Some("*")).expect_err("refused");
        assert!(err.to_string().contains("`*` is not supported"), "{err}");
    }

    /// `links` as (downstream, upstream) pairs, by name in namespace `ns`.
    fn lookup<'a>(
        links: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&AppImportKey) -> Option<AppImportKey> + 'a {
        move |k| {
            links
                .iter()
                .find(|(down, _)| *down == k.name)
                .map(|(_, up)| AppImportKey::new("ns", *up))
        }
    }

    fn key(name: &str) -> AppImportKey {
        AppImportKey::new("ns", name)
    }

    #[test]
    fn a_chain_dev_staging_prod_is_no_cycle() {
        let links = [("prod", "staging"), ("staging", "dev")];
        assert_eq!(
            check_cycle(&key("prod"), lookup(&links)),
            Ok(vec![key("prod"), key("staging"), key("dev")])
        );
        assert_eq!(
            check_cycle(&key("dev"), lookup(&links)),
            Ok(vec![key("dev")])
        );
        // Length is no limit.
        let names: Vec<String> = (0..1000).map(|i| format!("env{i}")).collect();
        let long: Vec<(&str, &str)> = names
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        assert_eq!(
            check_cycle(&key("env0"), lookup(&long)).map(|c| c.len()),
            Ok(1000)
        );
    }

    #[test]
    fn self_reference_is_a_cycle() {
        let err = check_cycle(&key("prod"), lookup(&[("prod", "prod")])).expect_err("cycle");
        assert_eq!(
            err,
            Refusal::Cycle {
                chain: vec![key("prod"), key("prod")],
                loop_start: 0,
            }
        );
        assert_eq!(err.reason(), "PromotionCycle");
        assert!(
            err.to_string()
                .starts_with("the fromAppImport chain loops: ns/prod → ns/prod;"),
            "{err}"
        );
    }

    #[test]
    fn a_loop_is_named_whether_or_not_it_passes_through_the_start() {
        let links = [("prod", "staging"), ("staging", "dev"), ("dev", "prod")];
        let err = check_cycle(&key("staging"), lookup(&links)).expect_err("cycle");
        assert!(
            err.to_string().starts_with(
                "the fromAppImport chain loops: ns/staging → ns/dev → ns/prod → ns/staging;"
            ),
            "{err}"
        );
        // `hotfix` is not in the loop, but follows into it.
        let links = [
            ("hotfix", "staging"),
            ("staging", "dev"),
            ("dev", "staging"),
        ];
        let err = check_cycle(&key("hotfix"), lookup(&links)).expect_err("cycle");
        assert_eq!(
            err,
            Refusal::Cycle {
                chain: vec![key("hotfix"), key("staging"), key("dev"), key("staging")],
                loop_start: 1,
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("ns/hotfix → ns/staging then ns/staging → ns/dev → ns/staging")
                && message.contains("branch, tag or commit"),
            "{message}"
        );
    }

    #[test]
    fn upstream_key_defaults_to_the_own_namespace() {
        let mut app = app_import("team-b", "sales-prod", &[]);
        assert_eq!(upstream_key(&app, "team-b"), None);
        app.spec.source.git_ref = serde_json::from_value(
            serde_json::json!({"fromAppImport": {"name": "sales-staging"}, "readyFor": "30m"}),
        )
        .expect("ref");
        assert_eq!(
            upstream_key(&app, "team-b"),
            Some(AppImportKey::new("team-b", "sales-staging"))
        );
        app.spec.source.git_ref.from_app_import = Some(AppImportRef {
            name: "sales-staging".into(),
            namespace: Some("team-a".into()),
        });
        assert_eq!(upstream_key(&app, "team-b"), Some(staging()));
    }

    #[test]
    fn commit_not_in_repository_names_the_fix() {
        let err = Refusal::CommitNotInRepository {
            from: staging(),
            sha: A.into(),
            url: "https://github.com/acme/apps.git".into(),
        };
        assert_eq!(err.reason(), "CommitNotInRepository");
        let message = err.to_string();
        assert!(
            message.contains(A)
                && message.contains("https://github.com/acme/apps.git")
                && message.contains("fix source.url"),
            "{message}"
        );
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(Duration::from_millis(5_400_400)), "1h 30m");
        assert_eq!(human(Duration::from_secs(90_061)), "25h 1m 1s");
    }
}
