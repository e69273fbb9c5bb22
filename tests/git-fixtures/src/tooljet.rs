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

/// What a ToolJet export does to a bundle when the app was imported somewhere else: every UUID
/// replaced by a new one (the same new one wherever the old one occurs, inside strings too) and
/// every ISO-8601 timestamp (`2024-06-24T06:55:09.754Z`) replaced. Different `salt`s give
/// different ids. The content of the app is unchanged.
pub fn rekeyed(bundle: &[u8], salt: u32) -> Vec<u8> {
    const UUID: &[u8] = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    const STAMP: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let uuid_at = |w: &[u8]| {
        w.len() == UUID.len()
            && w.iter().zip(UUID).all(|(c, p)| {
                if *p == b'-' {
                    *c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    let stamp_at = |w: &[u8]| {
        w.len() == STAMP.len()
            && w.iter().zip(STAMP).all(|(c, p)| {
                if *p == b'd' {
                    c.is_ascii_digit()
                } else {
                    c == p
                }
            })
    };
    let mut fresh: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut out = Vec::with_capacity(bundle.len());
    let mut i = 0;
    while i < bundle.len() {
        let rest = &bundle[i..];
        if rest.len() >= UUID.len() && uuid_at(&rest[..UUID.len()]) {
            let old = rest[..UUID.len()].to_vec();
            let n = fresh.len() + 1;
            let new = match fresh.iter().find(|(o, _)| *o == old) {
                Some((_, new)) => new.clone(),
                None => {
                    let new = format!("{salt:08x}-{:04x}-4000-8000-{n:012x}", n % 0x10000);
                    fresh.push((old, new.clone().into_bytes()));
                    new.into_bytes()
                }
            };
            out.extend_from_slice(&new);
            i += UUID.len();
        } else if rest.len() >= STAMP.len() && stamp_at(&rest[..STAMP.len()]) {
            let day = salt % 28 + 1;
            out.extend_from_slice(format!("2031-01-{day:02}T00:00:00.000Z").as_bytes());
            i += STAMP.len();
        } else {
            out.push(bundle[i]);
            i += 1;
        }
    }
    out
}
