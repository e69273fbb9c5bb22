//! The shipped PromQL: the Grafana dashboard's queries and the alert rules' expressions, and the
//! metric and label names they use (a small lexer, enough for what the repository ships).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn dashboard_path() -> PathBuf {
    repo().join("charts/tooljet-operator/dashboards/tooljet-operator.json")
}

pub fn rules_path() -> PathBuf {
    repo().join("deploy/prometheus/tooljet-operator.rules.yaml")
}

/// Grafana's variables, replaced by what Prometheus would see.
const GRAFANA_VARIABLES: [(&str, &str); 5] = [
    ("$__rate_interval", "5m"),
    ("$__interval", "1m"),
    ("$__range", "6h"),
    ("$job", "tooljet-operator"),
    ("$namespace", "ops"),
];

pub fn substitute_grafana_variables(expr: &str) -> String {
    GRAFANA_VARIABLES
        .iter()
        .fold(expr.to_owned(), |e, (var, value)| e.replace(var, value))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// Every query of the dashboard, Grafana variables replaced: (panel title, PromQL).
pub fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard = read_json(&dashboard_path());
    let mut out = Vec::new();
    fn panels(v: &Value, out: &mut Vec<(String, String)>) {
        for panel in v.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("untitled").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
                out.push((title.clone(), substitute_grafana_variables(expr)));
            }
            panels(&panel["panels"], out);
        }
    }
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        // label_values(SELECTOR, label) is Grafana's, not PromQL: its selector is checked.
        if let Some(q) = var["query"]["query"].as_str()
            && let Some(inner) = q.strip_prefix("label_values(")
        {
            let selector = inner.rsplit_once(',').map_or(inner, |(s, _)| s);
            out.push((
                format!("variable {}", var["name"]),
                substitute_grafana_variables(selector.trim()),
            ));
        }
    }
    out
}

/// The alert rules: (alert name, expression).
pub fn rule_exprs(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    doc["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or_default().to_owned(),
                r["expr"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A metric selector in an expression: the metric name and the label names it matches on.
#[derive(Debug, PartialEq, Eq)]
pub struct Selector {
    pub metric: String,
    pub labels: BTreeSet<String>,
}

const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "atan2",
];

/// The metric selectors of `expr` and the label names of its `by`/`without`/`on`/`ignoring`
/// clauses. Function and aggregation names (followed by `(`), keywords, numbers, durations and
/// strings are not metrics.
pub fn selectors(expr: &str) -> (Vec<Selector>, BTreeSet<String>) {
    let chars: Vec<char> = expr.chars().collect();
    let mut selectors = Vec::new();
    let mut grouping = BTreeSet::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (ident_char(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c == '{' {
            // A selector without a metric name ({__name__=...}): its labels only.
            let (labels, end) = matcher_labels(&chars, i);
            selectors.push(Selector {
                metric: String::new(),
                labels,
            });
            i = end;
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            if KEYWORDS.contains(&word.as_str()) {
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) && chars.get(next) == Some(&'(')
                {
                    let close = (next..chars.len())
                        .find(|&j| chars[j] == ')')
                        .unwrap_or(chars.len());
                    let list: String = chars[next + 1..close].iter().collect();
                    grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = close + 1;
                }
            } else if chars.get(next) == Some(&'(')
                || starts_with_word(&chars[next..], &["by", "without"])
            {
                // A function or an aggregation (`sum by (..) (..)`).
            } else if chars.get(next) == Some(&'{') {
                let (labels, end) = matcher_labels(&chars, next);
                selectors.push(Selector {
                    metric: word,
                    labels,
                });
                i = end;
            } else {
                selectors.push(Selector {
                    metric: word,
                    labels: BTreeSet::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    (selectors, grouping)
}

fn starts_with_word(chars: &[char], words: &[&str]) -> bool {
    words.iter().any(|w| {
        let n = w.len();
        chars.len() > n
            && chars[..n].iter().copied().eq(w.chars())
            && !(chars[n].is_ascii_alphanumeric() || chars[n] == '_')
    })
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut j = start + 1;
    while j < chars.len() && chars[j] != quote {
        if chars[j] == '\\' && quote != '`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// The label names in the matchers `{a="x",b=~"y"}` starting at `open`; and where they end.
fn matcher_labels(chars: &[char], open: usize) -> (BTreeSet<String>, usize) {
    let mut labels = BTreeSet::new();
    let mut j = open + 1;
    let mut name = String::new();
    while j < chars.len() && chars[j] != '}' {
        let c = chars[j];
        if c == '"' || c == '\'' || c == '`' {
            j = skip_string(chars, j);
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
        } else {
            if matches!(c, '=' | '!') && !name.is_empty() {
                labels.insert(std::mem::take(&mut name));
            }
            name.clear();
        }
        j += 1;
    }
    (labels, j + 1)
}

/// What a scrape of `/metrics` offers: every sample name with the label names seen on it, plus
/// the names its `# TYPE` lines promise (a counter `x` is `x_total`, a histogram `x` is
/// `x_bucket`/`x_sum`/`x_count`), even before a first sample.
pub fn exported(scrape: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let names: Vec<String> = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                _ => vec![name.to_owned()],
            };
            for n in names {
                out.entry(n).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = if line[name_end..].starts_with('{') {
                let chars: Vec<char> = line[name_end..].chars().collect();
                matcher_labels(&chars, 0).0
            } else {
                BTreeSet::new()
            };
            out.entry(line[..name_end].to_owned())
                .or_default()
                .extend(labels);
        }
    }
    out
}

/// Labels Prometheus adds to every series of a target (static config or Kubernetes discovery).
pub const TARGET_LABELS: [&str; 6] = ["job", "instance", "namespace", "pod", "service", "le"];
