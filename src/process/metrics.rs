//! Prometheus metrics of the operator, in one registry (OpenMetrics text on `GET /metrics`).
//!
//! Label sets stay small and bounded: `kind` (AppImport, ToolJetInstance), `result`
//! (success, refused, error), ToolJet `route` templates (never ids) and HTTP `status`, webhook
//! `provider` and `result`. No object names: those belong in Events and status.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::source::SourceObserver;
use crate::tooljet::RequestObserver;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Applied (or nothing to do, suspended, cleaned up).
    Success,
    /// A verdict that needs the user (Stalled: a missing instance, local changes, approval...).
    Refused,
    /// A failure retrying may fix (API server, git or ToolJet unreachable), with backoff.
    Error,
}

impl ReconcileResult {
    fn label(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Refused => "refused",
            ReconcileResult::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: &'static str,
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the operator. Shared (`Arc`) by the controllers, the source cache, the ToolJet
/// clients and the HTTP server.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily<KindLabel>,
    git_checks: Counter,
    git_check_duration: Histogram,
    git_fetches: Counter,
    git_fetch_duration: Histogram,
    tooljet_requests: Family<RequestLabels, Counter>,
    managed_apps: Gauge,
    managed: Mutex<HashSet<String>>,
    drift_corrections: Counter,
    webhook_requests: Family<WebhookLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// 10ms .. ~160s: a reconcile is a ref check at best, an import of a large app at worst.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tooljet_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result (success, refused, error)",
            reconciles.clone(),
        );
        let reconcile_duration: HistogramFamily<KindLabel> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by kind",
            reconcile_duration.clone(),
        );
        let git_checks = Counter::default();
        registry.register(
            "git_checks",
            "Remote ref listings (cheap \"anything new?\" checks, no objects)",
            git_checks.clone(),
        );
        let git_check_duration = duration_histogram();
        registry.register(
            "git_check_duration_seconds",
            "Time one remote ref listing took",
            git_check_duration.clone(),
        );
        let git_fetches = Counter::default();
        registry.register(
            "git_fetches",
            "Git fetches (objects transferred into a mirror)",
            git_fetches.clone(),
        );
        let git_fetch_duration = duration_histogram();
        registry.register(
            "git_fetch_duration_seconds",
            "Time one git fetch took",
            git_fetch_duration.clone(),
        );
        let tooljet_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "tooljet_requests",
            "HTTP requests to ToolJet by route template and status (\"error\": no answer)",
            tooljet_requests.clone(),
        );
        let managed_apps = Gauge::default();
        registry.register(
            "managed_apps",
            "AppImports that are Ready with an app in ToolJet",
            managed_apps.clone(),
        );
        let drift_corrections = Counter::default();
        registry.register(
            "drift_corrections",
            "Apps changed in ToolJet and put back to the git version",
            drift_corrections.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook calls by provider and result (enqueued, ignored, unauthorized, disabled, bad_request)",
            webhook_requests.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            git_checks,
            git_check_duration,
            git_fetches,
            git_fetch_duration,
            tooljet_requests,
            managed_apps,
            managed: Mutex::new(HashSet::new()),
            drift_corrections,
            webhook_requests,
        }
    }

    /// The registry in OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn reconciled(&self, kind: &'static str, result: ReconcileResult, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind,
                result: result.label(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
    }

    /// Records whether the AppImport `key` (`namespace/name`) is Ready with an app.
    pub fn set_managed(&self, key: &str, managed: bool) {
        let mut set = self.managed.lock().unwrap_or_else(|p| p.into_inner());
        if managed {
            set.insert(key.to_owned());
        } else {
            set.remove(key);
        }
        self.managed_apps
            .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
    }

    pub fn drift_corrected(&self) {
        self.drift_corrections.inc();
    }

    pub fn webhook(&self, provider: &'static str, result: &'static str) {
        self.webhook_requests
            .get_or_create(&WebhookLabels { provider, result })
            .inc();
    }
}

impl SourceObserver for Metrics {
    fn ref_checked(&self, took: Duration) {
        self.git_checks.inc();
        self.git_check_duration.observe(took.as_secs_f64());
    }

    fn fetched(&self, took: Duration) {
        self.git_fetches.inc();
        self.git_fetch_duration.observe(took.as_secs_f64());
    }
}

impl RequestObserver for Metrics {
    fn request_finished(&self, route: &'static str, status: Option<u16>, _took: Duration) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.tooljet_requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.reconciled(
            "AppImport",
            ReconcileResult::Refused,
            Duration::from_millis(30),
        );
        m.ref_checked(Duration::from_millis(5));
        m.fetched(Duration::from_millis(50));
        m.request_finished("PUT /api/apps/:id", Some(200), Duration::ZERO);
        m.request_finished("GET /api/apps", None, Duration::ZERO);
        m.set_managed("ns/a", true);
        m.set_managed("ns/b", true);
        m.set_managed("ns/a", false);
        m.drift_corrected();
        m.webhook("github", "unauthorized");
        let text = m.render();
        for line in [
            "tooljet_operator_reconciles_total{kind=\"AppImport\",result=\"refused\"} 1",
            "tooljet_operator_reconcile_duration_seconds_count{kind=\"AppImport\"} 1",
            "tooljet_operator_reconcile_duration_seconds_bucket{le=\"0.04\",kind=\"AppImport\"} 1",
            "tooljet_operator_reconcile_duration_seconds_bucket{le=\"0.02\",kind=\"AppImport\"} 0",
            "tooljet_operator_git_checks_total 1",
            "tooljet_operator_git_fetches_total 1",
            "tooljet_operator_git_fetch_duration_seconds_count 1",
            "tooljet_operator_tooljet_requests_total{route=\"PUT /api/apps/:id\",status=\"200\"} 1",
            "tooljet_operator_tooljet_requests_total{route=\"GET /api/apps\",status=\"error\"} 1",
            "tooljet_operator_managed_apps 1",
            "tooljet_operator_drift_corrections_total 1",
            "tooljet_operator_webhook_requests_total{provider=\"github\",result=\"unauthorized\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
