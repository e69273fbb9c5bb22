//! ToolJet export bundles, real and made in ToolJet's shape (see `tests/fixtures/tooljet-apps/README.md`) and ToolJet Git Sync's layout.

use crate::TestRepo;

/// `(gitAppName as ToolJet would name it, bundle bytes)` of the three real app templates.
pub const CREDIT_CARD: (&str, &[u8]) = (
    "Credit Card Test Data Generator",
    include_bytes!("../../fixtures/tooljet-apps/credit-card-test-data-generator.json"),
);
pub const BASE64: (&str, &[u8]) = (
    "base64-encoder-decoder",
    include_bytes!("../../fixtures/tooljet-apps/base64-encoder-decoder.json"),
);
pub const CODE_EXPLAINER: (&str, &[u8]) = (
    "AI Code Explainer",
    include_bytes!("../../fixtures/tooljet-apps/ai-powered-code-explainer.json"),
);
/// An app using the workspace's global PostgreSQL data source `orders-db` (3 queries on it and on
/// the REST API source `shipping-api`, one runjs), in the shape of a ToolJet 2.27.1 export.
pub const ORDERS_DASHBOARD: (&str, &[u8]) = (
    "Orders Dashboard",
    include_bytes!("../../fixtures/tooljet-apps/orders-dashboard.json"),
);
/// Another app of the same workspace sharing `orders-db` (2 queries on it).
pub const ORDERS_REPORT: (&str, &[u8]) = (
    "Orders Report",
    include_bytes!("../../fixtures/tooljet-apps/orders-report.json"),
);

impl TestRepo {
    /// Writes what ToolJet's Git Sync push writes (without committing): the bundle at
    /// `<git_app_name>/<version>.json` (older versions of the app removed, as ToolJet keeps only
    /// the last) and the app's entry in `.meta/meta.json`, keyed by `app_id`.
    pub fn git_sync_write(&self, app_id: &str, git_app_name: &str, version: &str, bundle: &[u8]) {
        let dir = self.work_dir().join(git_app_name);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).expect("remove old versions");
        }
        self.write(&format!("{git_app_name}/{version}.json"), bundle);
        let meta_path = self.work_dir().join(".meta/meta.json");
        let mut meta = std::fs::read_to_string(&meta_path)
            .ok()
            .and_then(|t| parse_meta(&t))
            .unwrap_or_default();
        meta.retain(|(id, _)| id != app_id);
        meta.push((
            app_id.to_string(),
            format!(
                "{{\"gitAppName\":{},\"gitVersionId\":\"{}-version\",\"gitVersionName\":{},\
                 \"lastCommitMessage\":\"push {}\",\"lastCommitUser\":\"ada\",\
                 \"lastpushDate\":\"2026-01-01T12:00:00.000Z\"}}",
                json_str(git_app_name),
                app_id,
                json_str(version),
                version
            ),
        ));
        let body: Vec<String> = meta
            .iter()
            .map(|(id, v)| format!("  {}: {}", json_str(id), v))
            .collect();
        self.write(".meta/meta.json", format!("{{\n{}\n}}\n", body.join(",\n")));
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads back meta.json as written by [`TestRepo::git_sync_write`]: one `"id": {...}` per line.
fn parse_meta(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_end_matches(',');
        if line == "{" || line == "}" || line.is_empty() {
            continue;
        }
        let (id, value) = line.split_once(": ")?;
        out.push((id.trim_matches('"').to_string(), value.to_string()));
    }
    Some(out)
}
