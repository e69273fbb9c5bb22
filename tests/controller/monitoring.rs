//! Alert rules and dashboard, checked with Prometheus's own tools: `promtool check rules` and
//! `promtool test rules` on deploy/prometheus (every alert has a unit test that fires it and one
//! that keeps it quiet), every dashboard query parsed by promtool, and a real Prometheus on
//! loopback scraping the running operator until an alert fires for a failing AppImport.
//! (tests/controller/observe.rs checks that both name only metrics a scrape of `/metrics` shows.)
//!
//! promtool and prometheus come from Debian's `prometheus` package (`.ci/packages-19.txt`);
//! without them the tests say they skip, except in CI where they fail.

use test_support::promql;
use test_support::reconcile_rig;
use test_support::tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use promql::{dashboard_queries, rule_exprs, rules_path, selectors};
use reconcile_rig::{self as rig, Rig};
use serde_json::{Value, json};
use tooljet_operator::process::server::{self, Readiness};
use tooljet_operator::process::webhook::{HookTarget, WebhookSecrets, WebhookState};
use tools::{repo, run, tool};

const INSTALL: &str = "apt-get install --no-install-recommends prometheus";

fn promtool() -> Option<PathBuf> {
    tool("PROMTOOL", &["promtool"], INSTALL)
}

fn prometheus() -> Option<PathBuf> {
    tool("PROMETHEUS", &["prometheus"], INSTALL)
}

fn unit_test_files() -> Vec<PathBuf> {
    let dir = repo().join("deploy/prometheus/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no unit tests in {}", dir.display());
    files
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let checked = run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(rules_path()))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run(Command::new(&promtool)
        .args(["test", "rules"])
        .args(unit_test_files()))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Per alert name: whether some unit test expects it firing, and whether some expects it quiet.
fn unit_test_coverage() -> BTreeMap<String, (bool, bool)> {
    let mut coverage: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in unit_test_files() {
        let text = std::fs::read_to_string(&file).expect("read");
        let doc: Value = serde_saphyr::from_str(&text).expect("YAML");
        for case in doc["tests"].as_array().into_iter().flatten() {
            for check in case["alert_rule_test"].as_array().into_iter().flatten() {
                let name = check["alertname"].as_str().unwrap_or_default().to_owned();
                let fires = check["exp_alerts"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
                let entry = coverage.entry(name).or_default();
                if fires {
                    entry.0 = true;
                } else {
                    entry.1 = true;
                }
            }
        }
    }
    coverage
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_quiet() {
    let alerts: Vec<String> = rule_exprs(&rules_path())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(alerts.len(), 6, "{alerts:?}");
    let coverage = unit_test_coverage();
    for alert in &alerts {
        assert_eq!(
            coverage.get(alert),
            Some(&(true, true)),
            "{alert}: needs a unit test expecting it to fire and one expecting it quiet"
        );
    }
    let unknown: Vec<&String> = coverage.keys().filter(|n| !alerts.contains(n)).collect();
    assert!(
        unknown.is_empty(),
        "unit tests of alerts that do not exist: {unknown:?}"
    );
}

#[test]
fn every_dashboard_query_parses() {
    let Some(promtool) = promtool() else { return };
    // promtool parses PromQL offline only inside rule files: one recording rule per query.
    let queries = dashboard_queries();
    let rules = json!({"groups": [{"name": "dashboard", "rules": queries.iter().enumerate()
        .map(|(i, (_, expr))| json!({"record": format!("dashboard:query_{i}"), "expr": expr}))
        .collect::<Vec<_>>()}]});
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard-queries.yaml");
    // JSON is YAML.
    std::fs::write(&file, rules.to_string()).expect("write");
    let checked = run(Command::new(&promtool).arg("check").arg("rules").arg(&file));
    assert!(
        checked.is_ok(),
        "a dashboard query does not parse:\n{}\n{queries:#?}",
        checked.unwrap_err()
    );
    // The check can fail: a broken query is refused.
    std::fs::write(
        &file,
        json!({"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum(rate(x[5m])"}]}]})
            .to_string(),
    )
    .expect("write");
    assert!(run(Command::new(&promtool).arg("check").arg("rules").arg(&file)).is_err());
}

#[test]
fn the_dashboard_shows_what_operators_watch() {
    let queries = dashboard_queries();
    let used: BTreeSet<String> = queries
        .iter()
        .flat_map(|(_, q)| selectors(q).0)
        .map(|s| s.metric)
        .collect();
    for metric in [
        "tooljet_operator_reconciles_total",
        "tooljet_operator_reconcile_duration_seconds_bucket",
        "tooljet_operator_tooljet_requests_total",
        "tooljet_operator_git_checks_total",
        "tooljet_operator_git_fetches_total",
        "tooljet_operator_managed_apps",
        "tooljet_operator_drift_corrections_total",
        "tooljet_operator_webhook_requests_total",
    ] {
        assert!(used.contains(metric), "no panel shows {metric}");
    }
    let by_route_and_status = queries
        .iter()
        .any(|(_, q)| q.contains("by (route, status)"));
    assert!(by_route_and_status, "ToolJet requests by route and status");
    for quantile in ["0.5", "0.9", "0.99"] {
        assert!(
            queries.iter().any(|(_, q)| q.contains(&format!("histogram_quantile({quantile}, sum by (le, kind) (rate(tooljet_operator_reconcile_duration_seconds_bucket"))),
            "reconcile duration p{quantile}"
        );
    }
}

#[test]
fn the_dashboard_under_deploy_is_the_charts() {
    let chart = std::fs::read(promql::dashboard_path()).expect("chart dashboard");
    let copy = std::fs::read(repo().join("deploy/grafana/tooljet-operator-dashboard.json"))
        .expect("deploy/grafana dashboard");
    assert!(
        chart == copy,
        "deploy/grafana/tooljet-operator-dashboard.json differs from the chart's; run \
         cp charts/tooljet-operator/dashboards/tooljet-operator.json deploy/grafana/tooljet-operator-dashboard.json"
    );
}

#[test]
fn the_promql_lexer_finds_metrics_and_labels_and_nothing_else() {
    let (sel, by) = selectors(
        r#"histogram_quantile(0.9, sum by (le, kind) (rate(a_bucket{job=~"x|y",kind!="b{c}"}[5m] offset 1h)))
           / on(job) group_left(route) b_total > bool 1e3 or absent(up) unless {__name__="c"}"#,
    );
    let names: Vec<&str> = sel.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b_total", "up", ""]);
    assert_eq!(
        sel[0].labels,
        BTreeSet::from(["job".to_owned(), "kind".to_owned()])
    );
    assert_eq!(sel[3].labels, BTreeSet::from(["__name__".to_owned()]));
    let expected: BTreeSet<String> = ["le", "kind", "job", "route"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(by, expected);
}

// ---------------------------------------------------------------- a real Prometheus

/// The shipped rules on a shorter clock for a test: every duration (range windows and `for:`)
/// divided by 60, minutes becoming seconds, so the rules keep their proportions to the requeue
/// interval (5m becomes 5s; the test requeues every second).
fn rules_on_a_test_clock(text: &str) -> String {
    fn scaled(duration: &str) -> Option<String> {
        let (number, unit) = duration.split_at(duration.len().checked_sub(1)?);
        let n: u64 = number.parse().ok()?;
        let seconds = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => return None,
        };
        Some(format!("{}s", (seconds / 60).max(1)))
    }
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_owned();
        if let Some((indent, d)) = line.split_once("for: ")
            && let Some(s) = scaled(d.trim())
        {
            line = format!("{indent}for: {s}");
        }
        let mut rebuilt = String::new();
        let mut rest = line.as_str();
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find(']') else {
                break;
            };
            rebuilt.push_str(&rest[..=open]);
            let inside = &rest[open + 1..open + close];
            rebuilt.push_str(&scaled(inside).unwrap_or_else(|| inside.to_owned()));
            rebuilt.push(']');
            rest = &rest[open + close + 1..];
        }
        rebuilt.push_str(rest);
        out.push_str(&rebuilt);
        out.push('\n');
    }
    out
}

#[test]
fn rules_on_the_test_clock_keep_their_proportions() {
    let text =
        "    expr: sum(increase(a{b=\"[x]\"}[10m])) > 0 and c[1h] and d[30s]\n    for: 15m\n";
    assert_eq!(
        rules_on_a_test_clock(text),
        "    expr: sum(increase(a{b=\"[x]\"}[10s])) > 0 and c[60s] and d[1s]\n    for: 15s\n"
    );
}

/// A Prometheus process on loopback with its own data directory; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` as job `tooljet-operator` every second; no rules yet (see `load_rules`).
    fn start(binary: &Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rules.yaml"), "groups: []\n").expect("rules");
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: tooljet-operator\n    static_configs: [{{targets: ['{target}']}}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("config");
        let (child, port) = git_fixtures::spawn_listening("prometheus", |port| {
            Command::new(binary)
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .arg("--web.enable-lifecycle")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn prometheus")
        });
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// Evaluates `rules` every second from now on, once Prometheus has loaded them.
    async fn load_rules(&self, client: &reqwest::Client, rules: &str) {
        std::fs::write(self.dir.path().join("rules.yaml"), rules).expect("rules");
        let reload = client
            .post(format!("{}/-/reload", self.url))
            .send()
            .await
            .expect("reload answered");
        assert!(reload.status().is_success(), "reload: {}", reload.status());
        let expected = rules.matches("- alert: ").count();
        let loaded = wait_for(Duration::from_secs(20), || async {
            let answer = self.get(client, "/api/v1/rules").await?;
            let count: usize = answer["data"]["groups"]
                .as_array()?
                .iter()
                .filter_map(|g| g["rules"].as_array().map(Vec::len))
                .sum();
            (count == expected).then_some(count)
        })
        .await;
        assert_eq!(loaded, Some(expected), "Prometheus did not load the rules");
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> Option<Value> {
        let response = client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// The value of an instant query with one result.
    async fn value(&self, client: &reqwest::Client, query: &str) -> Option<f64> {
        let answer = self
            .get(client, &format!("/api/v1/query?query={}", urlencode(query)))
            .await?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }

    /// Alerts by name, with their state (pending, firing) and labels.
    async fn alerts(&self, client: &reqwest::Client) -> BTreeMap<String, (String, Value)> {
        let Some(answer) = self.get(client, "/api/v1/alerts").await else {
            return BTreeMap::new();
        };
        answer["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["alertname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    (
                        a["state"].as_str().unwrap_or_default().to_owned(),
                        a["labels"].clone(),
                    ),
                )
            })
            .collect()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Polls `probe` every 200 ms until it returns Some or `limit` passes.
async fn wait_for<T, F, Fut>(limit: Duration, probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    test_support::poll::until_some(limit, Duration::from_millis(200), probe).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_fires_an_alert_when_an_appimport_starts_failing() {
    use futures::FutureExt;

    let Some(prometheus_bin) = prometheus() else {
        return;
    };
    let started = std::time::Instant::now();
    // The operator's reconciles and its HTTP server (/metrics) on loopback.
    let rig = Arc::new(Rig::start().await);
    let hooks = WebhookState::new(
        WebhookSecrets::default(),
        HookTarget::default(),
        rig.metrics.clone(),
    );
    let readiness = Readiness::default();
    readiness.set(true);
    let router = server::router(rig.metrics.clone(), readiness, Arc::new(hooks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(
        listener,
        router,
        async move {
            let _ = server_stopped.await;
        }
        .boxed()
        .shared(),
    ));
    // The AppImport requeued every second (the controller's spec.interval, on the test clock).
    let stop_requeues = Arc::new(AtomicBool::new(false));
    let requeues = tokio::spawn({
        let (rig, stop) = (rig.clone(), stop_requeues.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let _ = rig.reconcile(rig::GOOD).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });

    let prometheus = Prometheus::start(&prometheus_bin, addr);
    let http = reqwest::Client::new();
    // The rules once the first scrape is in: Prometheus hands new targets to its scrapers only
    // every 5s, and `absent(up)` would meanwhile fire ToolJetOperatorDown on the test clock.
    let scraped = wait_for(Duration::from_secs(30), || {
        prometheus.value(&http, "up{job=\"tooljet-operator\"} == 1")
    })
    .await;
    assert_eq!(scraped, Some(1.0), "Prometheus never scraped the operator");
    let rules = std::fs::read_to_string(rules_path()).expect("rules");
    prometheus
        .load_rules(&http, &rules_on_a_test_clock(&rules))
        .await;

    // Prometheus scrapes the operator and sees the app managed; no alert fires then.
    let managed = wait_for(Duration::from_secs(60), || async {
        let v = prometheus
            .value(
                &http,
                "sum(tooljet_operator_managed_apps{job=\"tooljet-operator\"})",
            )
            .await?;
        (v == 1.0).then_some(v)
    })
    .await;
    assert_eq!(managed, Some(1.0), "Prometheus never saw the app managed");
    let healthy_alerts = prometheus.alerts(&http).await;
    assert!(
        healthy_alerts.values().all(|(state, _)| state != "firing"),
        "alerts fire while all is well: {healthy_alerts:#?}"
    );

    // ToolJet goes away: every reconcile of the AppImport fails from now on.
    rig.standin.faults().set_down(true);
    let failing_at = std::time::Instant::now();
    let fired = wait_for(Duration::from_secs(60), || async {
        let alerts = prometheus.alerts(&http).await;
        match alerts.get("ToolJetOperatorToolJetRequestsFailing") {
            Some((state, labels)) if state == "firing" => Some((labels.clone(), alerts)),
            _ => None,
        }
    })
    .await;
    let Some((labels, alerts)) = fired else {
        panic!(
            "ToolJetOperatorToolJetRequestsFailing did not fire within 60s; alerts: {:#?}",
            prometheus.alerts(&http).await
        );
    };
    let fired_after = failing_at.elapsed();
    assert_eq!(labels["job"], "tooljet-operator");
    assert_eq!(labels["severity"], "warning");
    // The operator is up and reconciling: those alerts stay quiet.
    for quiet in [
        "ToolJetOperatorDown",
        "ToolJetOperatorReconcilesStopped",
        "ToolJetOperatorWebhookUnauthorized",
        "ToolJetOperatorAppImportStalled",
    ] {
        assert!(
            alerts.get(quiet).is_none_or(|(state, _)| state != "firing"),
            "{quiet} fires: {alerts:#?}"
        );
    }
    let errors = prometheus
        .value(
            &http,
            "sum(tooljet_operator_tooljet_requests_total{job=\"tooljet-operator\",status=\"error\"})",
        )
        .await;
    assert!(
        errors.is_some_and(|n| n >= 2.0),
        "failed requests scraped: {errors:?}"
    );
    eprintln!(
        "alert fired {:.1}s after ToolJet went down ({:.1}s in all)",
        fired_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    drop(prometheus);
    stop_requeues.store(true, Ordering::SeqCst);
    requeues.await.expect("requeue loop");
    let _ = stop_server.send(());
    serving.await.expect("server task").expect("server");
    let Ok(rig) = Arc::try_unwrap(rig) else {
        panic!("the rig is still shared");
    };
    rig.finish().await;
}
