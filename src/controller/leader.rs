//! Leader election on a `coordination.k8s.io/v1` Lease (`--leader-elect`): only the holder runs
//! the controllers.
//!
//! A small loop of our own rather than a crate: the one crate that supports kube 5
//! (kube-lease-manager) keeps reporting leadership while renewals fail, so a leader cut off from
//! the API server would keep reconciling after another replica took over. Here, as in client-go:
//! - the Lease is created when absent, taken when free (no holder) or expired, renewed by its
//!   holder every `lease_duration / 3`; writes use optimistic concurrency (`resourceVersion`), so of
//!   two replicas racing for one Lease, one wins and the other gets 409 Conflict;
//! - expiry is judged on this replica's clock: a Lease held by another is expired when its record
//!   (holder, renewTime) has not changed for `lease_duration` since we first saw it, so clock skew
//!   between nodes does not matter;
//! - a leader that cannot renew for `renew_deadline` (2/3 of the lease), or finds another holder,
//!   has lost: the controllers are dropped at once and `run` returns
//!   [`ControllerError::LeadershipLost`], so the process exits non-zero and the pod restarts as a
//!   standby. The other replica takes over within the lease duration (15s) plus one retry period;
//! - on shutdown the leader releases the Lease (clears the holder), so a standby takes over at its
//!   next retry (5s) instead of waiting for expiry.

use std::future::Future;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;
use tracing::{info, warn};

use super::ControllerError;
use super::server::Readiness;

/// Name of the Lease.
pub const LEASE_NAME: &str = "tooljet-operator";
/// How long a Lease is valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// How leader election is configured.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (hostname and pid).
    pub identity: String,
    pub lease_name: String,
    pub lease_duration: Duration,
}

impl LeaderConfig {
    /// The Lease `tooljet-operator` in `namespace`, held by `hostname-pid`, 15s.
    pub fn new(namespace: impl Into<String>) -> Self {
        LeaderConfig {
            namespace: namespace.into(),
            identity: default_identity(),
            lease_name: LEASE_NAME.into(),
            lease_duration: LEASE_DURATION,
        }
    }

    /// Time between attempts (to acquire, or to renew).
    pub fn retry_period(&self) -> Duration {
        self.lease_duration / 3
    }

    /// A leader that could not renew for this long gives up.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }
}

/// `<hostname>-<pid>` (the pod name in a cluster).
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tooljet-operator".into());
    format!("{host}-{}", std::process::id())
}

/// A Lease record as observed, and when (on this replica's clock) it was first seen unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub holder: Option<String>,
    pub renew_time: Option<String>,
    pub since: Instant,
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease: create it, held by us.
    Create,
    /// Free or expired: take it (counts a transition).
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Held by another replica, valid for about this long.
    Follow { holder: String, remaining: Duration },
}

/// The pure decision: `lease` is the Lease's spec (`None`: no Lease), `observed` what we saw of it
/// before (to time expiry on our own clock).
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    observed: Option<&Observed>,
    lease_duration: Duration,
    now: Instant,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let Some(holder) = holder else {
        return Decision::Acquire;
    };
    if holder == me {
        return Decision::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(lease_duration, Duration::from_secs);
    let renew = spec.renew_time.as_ref().map(|t| t.0.to_string());
    let since = observed
        .filter(|o| o.holder.as_deref() == Some(holder) && o.renew_time == renew)
        .map_or(now, |o| o.since);
    let valid_until = since + duration;
    if now >= valid_until {
        Decision::Acquire
    } else {
        Decision::Follow {
            holder: holder.to_owned(),
            remaining: valid_until - now,
        }
    }
}

/// Where this replica stands after one [`LeaderElector::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    Leading,
    Following { holder: String },
}

/// One replica's view of the Lease and the requests to hold it.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderConfig,
    observed: Option<Observed>,
}

impl LeaderElector {
    pub fn new(client: Client, cfg: LeaderConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    pub fn config(&self) -> &LeaderConfig {
        &self.cfg
    }

    /// Reads the Lease and creates, takes, renews or follows it. A 409 Conflict (another replica
    /// wrote first) is an `Err`; the caller retries.
    pub async fn step(&mut self) -> Result<Standing, kube::Error> {
        let current = self.api.get_opt(&self.cfg.lease_name).await?;
        let now = Instant::now();
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.cfg.identity,
            self.observed.as_ref(),
            self.cfg.lease_duration,
            now,
        );
        match decision {
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.lease_name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.held_spec(None, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await?;
                Ok(Standing::Leading)
            }
            Decision::Acquire | Decision::Renew => {
                let Some(mut lease) = current else {
                    return Ok(Standing::Following {
                        holder: String::new(),
                    });
                };
                let old = lease.spec.take().unwrap_or_default();
                let spec = if decision == Decision::Renew {
                    LeaseSpec {
                        renew_time: Some(MicroTime(Timestamp::now())),
                        lease_duration_seconds: Some(self.duration_seconds()),
                        ..old
                    }
                } else {
                    self.held_spec(Some(&old), old.lease_transitions.unwrap_or(0) + 1)
                };
                lease.spec = Some(spec);
                // `lease` carries the resourceVersion we read: a concurrent write makes this 409.
                self.api
                    .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
                    .await?;
                Ok(Standing::Leading)
            }
            Decision::Follow { holder, .. } => {
                let spec = current.and_then(|l| l.spec).unwrap_or_default();
                let renew_time = spec.renew_time.as_ref().map(|t| t.0.to_string());
                let same = self.observed.as_ref().is_some_and(|o| {
                    o.holder.as_deref() == Some(&holder) && o.renew_time == renew_time
                });
                if !same {
                    self.observed = Some(Observed {
                        holder: Some(holder.clone()),
                        renew_time,
                        since: now,
                    });
                }
                Ok(Standing::Following { holder })
            }
        }
    }

    /// Clears the holder when it is us, so a standby need not wait for expiry.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.lease_name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        let name = lease.name_any();
        self.api
            .replace(&name, &PostParams::default(), &lease)
            .await?;
        info!(lease = %name, "leader lease released");
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn held_spec(&self, old: Option<&LeaseSpec>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_duration_seconds: Some(self.duration_seconds()),
            lease_transitions: Some(transitions),
            ..old.cloned().unwrap_or_default()
        }
    }
}

/// Waits to become leader, then runs `controllers` while renewing the Lease. Returns when
/// `shutdown` resolves (Lease released) or with [`ControllerError::LeadershipLost`].
/// `readiness` is set once the leader is known (this replica or another).
pub async fn run_when_leader<F, Fut>(
    mut elector: LeaderElector,
    readiness: Readiness,
    shutdown: Shared<BoxFuture<'static, ()>>,
    controllers: F,
) -> Result<(), ControllerError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), ControllerError>>,
{
    let retry = elector.config().retry_period();
    let lease = elector.config().lease_name.clone();
    let identity = elector.config().identity.clone();
    // Acquire.
    let mut last_holder = String::new();
    loop {
        match step_within(&mut elector, retry).await {
            Ok(Standing::Leading) => break,
            Ok(Standing::Following { holder }) => {
                if holder != last_holder {
                    info!(%lease, leader = %holder, "another replica leads; standing by");
                    last_holder = holder;
                }
                // Standby: ready to serve metrics and webhooks (by annotation).
                readiness.set(true);
            }
            Err(error) => {
                warn!(%lease, %error, "leader election: cannot read or write the Lease; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.clone() => return Ok(()),
            _ = tokio::time::sleep(retry) => {}
        }
    }
    info!(%lease, %identity, "leader elected: starting the controllers");

    // Renewal runs as its own task: inside the controllers' future it would stall every reconcile
    // for as long as a renewal takes (up to a retry period when the API server is slow).
    let (stop_renewing, stopped) = tokio::sync::oneshot::channel();
    let mut renewal = tokio::spawn(keep_renewing(elector, stopped));
    let controllers = controllers();
    tokio::pin!(controllers);
    tokio::select! {
        result = &mut controllers => {
            // The controllers stopped (shutdown): let a standby take over now.
            let _ = stop_renewing.send(());
            match renewal.await {
                Ok(Ok(mut elector)) => {
                    if let Err(error) = elector.release().await {
                        warn!(%lease, %error, "cannot release the leader lease; a standby takes over when it expires");
                    }
                }
                Ok(Err(lost)) => return Err(lost),
                Err(error) => warn!(%lease, %error, "leader lease renewal task failed"),
            }
            result
        }
        renewed = &mut renewal => match renewed {
            // Leadership lost: the controllers are dropped here, at once.
            Ok(Err(lost)) => Err(lost),
            Ok(Ok(_)) | Err(_) => Err(ControllerError::LeadershipLost { lease }),
        },
    }
}

/// Renews the Lease every retry period until told to stop (then hands the elector back for the
/// release) or until leadership is lost.
async fn keep_renewing(
    mut elector: LeaderElector,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<LeaderElector, ControllerError> {
    let retry = elector.config().retry_period();
    let renew_deadline = elector.config().renew_deadline();
    let lease = elector.config().lease_name.clone();
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(elector),
            _ = tokio::time::sleep(retry) => {}
        }
        match step_within(&mut elector, retry).await {
            Ok(Standing::Leading) => last_renewed = Instant::now(),
            Ok(Standing::Following { holder }) => {
                warn!(%lease, leader = %holder, "leadership lost to another replica; stopping");
                return Err(ControllerError::LeadershipLost { lease });
            }
            Err(error) => {
                warn!(%lease, %error, "cannot renew the leader lease");
                if last_renewed.elapsed() >= renew_deadline {
                    return Err(ControllerError::LeadershipLost { lease });
                }
            }
        }
    }
}

/// One step, bounded: a hanging API server must not stall the renew deadline.
async fn step_within(elector: &mut LeaderElector, limit: Duration) -> Result<Standing, String> {
    match tokio::time::timeout(limit, elector.step()).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer from the API server within {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renew: Option<&str>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renew.map(|r| MicroTime(r.parse().expect("timestamp"))),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    const D: Duration = LEASE_DURATION;

    #[test]
    fn absent_free_and_own_leases() {
        let now = Instant::now();
        assert_eq!(decide(None, "me", None, D, now), Decision::Create);
        assert_eq!(
            decide(Some(&spec(None, None)), "me", None, D, now),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&spec(Some(""), None)), "me", None, D, now),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&spec(Some("me"), None)), "me", None, D, now),
            Decision::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_its_record_stops_changing_for_a_lease_duration() {
        let t0 = Instant::now();
        let held = spec(Some("other"), Some("2026-01-01T00:00:00Z"));
        // First sight: valid for a whole duration from now, whatever its renewTime says.
        assert_eq!(
            decide(Some(&held), "me", None, D, t0),
            Decision::Follow {
                holder: "other".into(),
                remaining: D
            }
        );
        let seen = Observed {
            holder: Some("other".into()),
            renew_time: Some("2026-01-01T00:00:00Z".into()),
            since: t0,
        };
        assert!(matches!(
            decide(Some(&held), "me", Some(&seen), D, t0 + Duration::from_secs(10)),
            Decision::Follow { remaining, .. } if remaining == Duration::from_secs(5)
        ));
        // Unchanged for the lease duration: expired.
        assert_eq!(
            decide(Some(&held), "me", Some(&seen), D, t0 + D),
            Decision::Acquire
        );
        // Renewed meanwhile (new renewTime): valid again from now.
        let renewed = spec(Some("other"), Some("2026-01-01T00:00:10Z"));
        assert!(matches!(
            decide(Some(&renewed), "me", Some(&seen), D, t0 + D),
            Decision::Follow { remaining, .. } if remaining == D
        ));
    }

    #[test]
    fn timings_follow_the_lease_duration() {
        let cfg = LeaderConfig::new("ns");
        assert_eq!(cfg.retry_period(), Duration::from_secs(5));
        assert_eq!(cfg.renew_deadline(), Duration::from_secs(10));
        assert!(cfg.identity.ends_with(&format!("-{}", std::process::id())));
    }
}
