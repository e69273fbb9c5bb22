//! What the operator process runs around its controllers (`tooljet-operator run`), knowing nothing
//! of how they reconcile: the controller uses these handles, never the other way round.
//!
//! - [`server`]: the one HTTP server (`--metrics-addr`): `/metrics`, `/healthz`, `/readyz`, and
//!   [`Readiness`](server::Readiness), set by the controllers and by [`leader`].
//! - [`metrics`]: the Prometheus registry the controllers, git cache and ToolJet clients record into.
//! - [`webhook`] and [`urls`]: verified push webhooks, handed to a
//!   [`PushTarget`](webhook::PushTarget) (the controller's queue) or, on a standby, requested by
//!   annotation.
//! - [`leader`]: the Lease as its own task, publishing [`Leadership`](leader::Leadership) on a
//!   watch channel (`--leader-elect`).
//! - [`shutdown`]: SIGTERM / Ctrl-C and the grace period for running reconciles.

pub mod leader;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod urls;
pub mod webhook;
