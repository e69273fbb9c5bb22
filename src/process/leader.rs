//! Leader election on a `coordination.k8s.io/v1` Lease (`--leader-elect`): only the holder runs
//! the controllers. The Lease is held by its own task ([`LeaseTask`]), which publishes
//! [`Leadership`] on a watch channel; the controllers ([`when_leader`]) and the readiness probe
//! ([`Readiness::follow`]) subscribe to it.
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
//!   has lost: the controllers are dropped at once and `run` returns [`LeadershipLost`], so the process exits non-zero and the pod restarts as a
//!   standby. The other replica takes over within the lease duration (15s) plus one retry period;
//! - on shutdown the leader releases the Lease (clears the holder), so a standby takes over at its
//!   next retry (5s) instead of waiting for expiry.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::server::Readiness;
use super::shutdown::{AbortOnDrop, Shutdown};

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

/// This replica held the Lease and lost it (another replica took it, or it was not renewed in time).
#[derive(Debug, thiserror::Error)]
#[error(
    "leadership of Lease {lease} lost (taken by another replica, or not renewed in time); exiting so this replica restarts as a standby"
)]
pub struct LeadershipLost {
    pub lease: String,
}

/// Where this replica stands, as the Lease task publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Not known yet: the Lease has not been read (or cannot be).
    Unknown,
    /// Another replica holds the Lease.
    Standby { holder: String },
    /// This replica holds the Lease and renews it.
    Leading,
    /// This replica held the Lease and lost it; final.
    Lost,
}

/// The Lease, held by its own task: it acquires the Lease, renews it, publishes where this replica
/// stands on a watch channel, and releases the Lease when told to stop.
///
/// Renewal runs beside the controllers, never inside their future: there it would stall every
/// reconcile for as long as a renewal takes (up to a retry period when the API server is slow).
pub struct LeaseTask {
    leadership: watch::Receiver<Leadership>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), LeadershipLost>>,
    lease: String,
}

impl LeaseTask {
    /// Starts holding the Lease. Until leading, the task ends when `shutdown` resolves.
    pub fn spawn(elector: LeaderElector, shutdown: Shutdown) -> Self {
        let (publish, leadership) = watch::channel(Leadership::Unknown);
        let (stop, stopped) = oneshot::channel();
        let lease = elector.config().lease_name.clone();
        let task = tokio::spawn(hold_lease(elector, publish, shutdown, stopped));
        LeaseTask {
            leadership,
            stop,
            task,
            lease,
        }
    }

    /// Where this replica stands, now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Stops renewing and releases the Lease if this replica holds it, so a standby takes over
    /// now. `Err` when leadership had been lost meanwhile.
    pub async fn release(self) -> Result<(), LeadershipLost> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result,
            Err(error) => {
                warn!(lease = %self.lease, %error, "leader lease task failed");
                Ok(())
            }
        }
    }
}

/// The Lease task: acquire (publishing Standby while another leads), then renew until told to
/// stop (then release) or until leadership is lost (published as Lost).
async fn hold_lease(
    mut elector: LeaderElector,
    publish: watch::Sender<Leadership>,
    shutdown: Shutdown,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), LeadershipLost> {
    let retry = elector.config().retry_period();
    let lease = elector.config().lease_name.clone();
    let identity = elector.config().identity.clone();
    let mut last_holder = String::new();
    loop {
        match step_within(&mut elector, retry).await {
            Ok(Standing::Leading) => break,
            Ok(Standing::Following { holder }) => {
                if holder != last_holder {
                    info!(%lease, leader = %holder, "another replica leads; standing by");
                    last_holder.clone_from(&holder);
                }
                publish.send_replace(Leadership::Standby { holder });
            }
            Err(error) => {
                warn!(%lease, %error, "leader election: cannot read or write the Lease; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.clone() => return Ok(()),
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(retry) => {}
        }
    }
    info!(%lease, %identity, "leader elected: starting the controllers");
    publish.send_replace(Leadership::Leading);
    match keep_renewing(&mut elector, stop).await {
        Ok(()) => {
            if let Err(error) = elector.release().await {
                warn!(%lease, %error, "cannot release the leader lease; a standby takes over when it expires");
            }
            Ok(())
        }
        Err(lost) => {
            publish.send_replace(Leadership::Lost);
            Err(lost)
        }
    }
}

/// Waits to become leader, then runs `controllers` while the [`LeaseTask`] renews the Lease
/// (`controller::run_when_leader` is this with the controller's error type).
/// Returns when `shutdown` resolves before leading, when the controllers end (Lease released), or
/// with [`LeadershipLost`] (the controllers are dropped at once). `readiness` follows the Lease
/// task (ready on a standby).
pub async fn when_leader<F, Fut, E>(
    elector: LeaderElector,
    readiness: Readiness,
    shutdown: Shutdown,
    controllers: F,
) -> Result<(), E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<LeadershipLost>,
{
    let lease = LeaseTask::spawn(elector, shutdown);
    let _readiness = AbortOnDrop(tokio::spawn(readiness.follow(lease.subscribe())));
    let mut leadership = lease.subscribe();
    if leadership
        .wait_for(|l| *l == Leadership::Leading)
        .await
        .is_err()
    {
        // The Lease task ended before leading: shutdown.
        return lease.release().await.map_err(E::from);
    }
    tokio::select! {
        result = controllers() => {
            // The controllers stopped (shutdown): let a standby take over now.
            lease.release().await?;
            result
        }
        // Leadership lost (or the Lease task died): the controllers are dropped here, at once.
        () = lost(&mut leadership) => Err(E::from(LeadershipLost { lease: lease.lease })),
    }
}

/// Resolves once leadership is lost, or the Lease task ended without saying so (it failed).
async fn lost(leadership: &mut watch::Receiver<Leadership>) {
    // The guard `wait_for` returns must not be held across an await.
    let _ = leadership
        .wait_for(|l| *l == Leadership::Lost)
        .await
        .is_ok();
}

/// Renews the Lease every retry period until told to stop or until leadership is lost.
async fn keep_renewing(
    elector: &mut LeaderElector,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), LeadershipLost> {
    let retry = elector.config().retry_period();
    let renew_deadline = elector.config().renew_deadline();
    let lease = elector.config().lease_name.clone();
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(retry) => {}
        }
        match step_within(elector, retry).await {
            Ok(Standing::Leading) => last_renewed = Instant::now(),
            Ok(Standing::Following { holder }) => {
                warn!(%lease, leader = %holder, "leadership lost to another replica; stopping");
                return Err(LeadershipLost { lease });
            }
            Err(error) => {
                warn!(%lease, %error, "cannot renew the leader lease");
                if last_renewed.elapsed() >= renew_deadline {
                    return Err(LeadershipLost { lease });
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
