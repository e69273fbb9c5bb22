//! `tooljet-operator diff` as a user runs it: the real binary against a real git repository
//! holding two commits of a fixture app (ToolJet Git Sync layout and a bundle at a path).

use std::process::Output;

use git_fixtures::tooljet::{ORDERS_DASHBOARD, rekeyed};
use git_fixtures::{HttpGitServer, TestRepo};
use serde_json::{Value, json};

const APP: &str = ORDERS_DASHBOARD.0;
const PATH: &str = "exports/orders-dashboard.json";

struct Repo {
    repo: TestRepo,
    cache: tempfile::TempDir,
    /// The first commit (also tagged `v1`).
    first: String,
    /// The edited app on `master`.
    second: String,
}

fn bundle() -> Value {
    serde_json::from_slice(ORDERS_DASHBOARD.1).expect("fixture is JSON")
}

fn app(b: &mut Value) -> &mut Value {
    &mut b["app"][0]["definition"]["appV2"]
}

fn named<'a>(b: &'a mut Value, list: &str, name: &str) -> &'a mut Value {
    app(b)[list]
        .as_array_mut()
        .expect("list")
        .iter_mut()
        .find(|r| r["name"] == name)
        .expect("row")
}

/// The edit a user makes in ToolJet between the two commits: a renamed button, a new query
/// option, a removed query, the icon.
fn edited() -> Value {
    let mut b = bundle();
    named(&mut b, "components", "refresh_button")["properties"]["text"]["value"] = json!("Reload");
    named(&mut b, "dataQueries", "list_orders")["options"]["runOnPageLoad"] = json!(false);
    app(&mut b)["dataQueries"]
        .as_array_mut()
        .expect("queries")
        .retain(|q| q["name"] != "format_totals");
    app(&mut b)["icon"] = json!("chart");
    b
}

fn write_both(repo: &TestRepo, b: &Value) {
    let bytes = serde_json::to_vec_pretty(b).expect("json");
    repo.git_sync_write("app-1", APP, "v1", &bytes);
    repo.write(PATH, &bytes);
}

impl Repo {
    fn new() -> Repo {
        let repo = TestRepo::new();
        write_both(&repo, &bundle());
        let first = repo.commit("first version");
        repo.tag("v1");
        write_both(&repo, &edited());
        let second = repo.commit("reload button");
        Repo {
            repo,
            cache: tempfile::tempdir().expect("tempdir"),
            first,
            second,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_at(&self.repo.file_url(), args)
    }

    fn run_at(&self, url: &str, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_tooljet-operator"))
            .args(["diff", "--repo", url, "--cache-dir"])
            .arg(self.cache.path())
            .args(args)
            .env("TOOLJET_OPERATOR_LOG_FORMAT", "text")
            .output()
            .expect("runs")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_lines(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.lines().any(|l| l == *line),
            "missing line {line:?} in:\n{text}"
        );
    }
}

#[test]
fn text_between_a_tag_and_a_branch_by_app_name() {
    let r = Repo::new();
    let out = r.run(&["--app", APP, "v1", "master"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "{} {APP}/v1.json: v1 ({}) → master ({})\n",
            r.repo.file_url(),
            &r.first[..7],
            &r.second[..7]
        )),
        "{text}"
    );
    assert_lines(
        &text,
        &[
            "app \"Orders Dashboard\": 1 setting, 1 page, 1 component, 2 queries, 1 data source changed",
            "  settings",
            "    ~ icon: \"shoppingcart\" → \"chart\"",
            "  ~ page \"Home\"",
            "      ~ component refresh_button (Button)",
            "          ~ properties.text: \"Refresh\" → \"Reload\"",
            "  queries",
            "    - query format_totals (runjs, runjsdefault)",
            "    ~ query list_orders (postgresql, orders-db)",
            "        ~ options.runOnPageLoad: true → false",
            "  data sources",
            "    - runjsdefault (runjs)",
        ],
    );
    // Full shas and refs spelled out work the same; the reverse diff is the mirror image.
    let out = r.run(&["--path", PATH, "refs/heads/master", &r.first]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_lines(
        &stdout(&out),
        &[
            "    + query format_totals (runjs, runjsdefault)",
            "          ~ properties.text: \"Reload\" → \"Refresh\"",
        ],
    );
}

#[test]
fn json_and_markdown_by_path() {
    let r = Repo::new();
    let out = r.run(&["--path", PATH, &r.first, &r.second, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["from"]["commit"]["sha"], r.first.as_str());
    assert_eq!(doc["to"]["commit"]["sha"], r.second.as_str());
    assert_eq!(doc["to"]["commit"]["message"], "reload button");
    assert_eq!(doc["to"]["path"], PATH);
    let diff = &doc["diff"];
    assert_eq!(diff["app"], APP);
    assert_eq!(
        diff["settings"],
        json!([{"field": "icon", "from": "\"shoppingcart\"", "to": "\"chart\""}])
    );
    assert_eq!(diff["pages"][0]["components"][0]["name"], "refresh_button");
    assert_eq!(diff["pages"][0]["components"][0]["type"], "Button");
    assert_eq!(
        diff["queries"][0],
        json!({"name": "format_totals", "kind": "runjs", "data_source": "runjsdefault", "status": "removed"})
    );

    let out = r.run(&["--path", PATH, &r.first, &r.second, "-o", "markdown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let md = stdout(&out);
    assert!(
        md.starts_with(&format!(
            "Changes in `{PATH}` from `{}` (`{}`) to `{}` (`{}`):\n\n<details>\n<summary><b>Orders Dashboard</b>: 1 setting, 1 page, 1 component, 2 queries, 1 data source changed</summary>\n",
            r.first, &r.first[..7], r.second, &r.second[..7]
        )),
        "{md}"
    );
    assert_lines(
        &md,
        &[
            "- `icon`: `\"shoppingcart\"` → `\"chart\"`",
            "**Page `Home`** (changed)",
            "- changed component `refresh_button` (Button)",
            "  - `properties.text`: `\"Refresh\"` → `\"Reload\"`",
            "- removed query `format_totals` (runjs, runjsdefault)",
            "- changed query `list_orders` (postgresql, orders-db)",
            "  - `options.runOnPageLoad`: `true` → `false`",
            "</details>",
        ],
    );
}

#[test]
fn a_re_exported_app_is_no_change_and_exit_code_says_so() {
    let r = Repo::new();
    // ToolJet pushes the same app again after an import elsewhere: new ids and timestamps.
    let edited_bytes = serde_json::to_vec(&edited()).expect("json");
    let again: Value = serde_json::from_slice(&rekeyed(&edited_bytes, 42)).expect("still JSON");
    let text = again.to_string();
    assert!(!text.contains("6a0b7c8d-") && !text.contains("2026-03-02T"));
    write_both(&r.repo, &again);
    let third = r.repo.commit("pushed again");

    let out = r.run(&["--app", APP, "--exit-code", &r.second, &third]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).ends_with("app \"Orders Dashboard\": no change\n"),
        "{}",
        stdout(&out)
    );
    let out = r.run(&["--app", APP, "--exit-code", &r.first, &third]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn unusable_input_exits_2_with_a_clear_message() {
    let r = Repo::new();
    // An unknown ref names what exists.
    let out = r.run(&["--app", APP, "v1", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("\"nope\" is not a branch, a tag or a full commit sha")
            && err.contains("branches: [\"master\"], tags: [\"v1\"]"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    // An app that is not in meta.json.
    let out = r.run(&["--app", "Nope", "v1", "master"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("cannot read the app at FROM \"v1\"")
            && err.contains("app \"Nope\" is not in .meta/meta.json")
            && err.contains(APP),
        "{err}"
    );

    // A bundle that is not at one of the commits.
    r.repo.remove(PATH);
    let third = r.repo.commit("export moved");
    // Revision expressions are not refs.
    let out = r.run(&["--path", PATH, "master~1", &third]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"master~1\" is not a branch"),
        "{}",
        stderr(&out)
    );
    let out = r.run(&["--path", PATH, &r.second, &third]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot read the app at TO \"{third}\""))
            && err.contains(&format!(
                "bundle \"{PATH}\" does not exist at commit {third}"
            )),
        "{err}"
    );

    // A bundle that is not JSON, and JSON that is not an app.
    r.repo.write(PATH, "{ not json");
    let broken = r.repo.commit("broken export");
    let out = r.run(&["--path", PATH, &r.second, &broken]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not valid JSON"),
        "{}",
        stderr(&out)
    );
    r.repo
        .write(PATH, r#"{"app": [{"definition": {"name": "x"}}]}"#);
    let odd = r.repo.commit("not an app");
    let out = r.run(&["--path", PATH, &odd, &r.second]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot compare the app at FROM \"{odd}\" ({PATH})"
        )) && err.contains("not a ToolJet app export"),
        "{err}"
    );

    // A Secret that is not in the files.
    let secrets = r.cache.path().join("secrets.yaml");
    std::fs::write(
        &secrets,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: other}\nstringData: {token: t}\n",
    )
    .expect("write");
    let out = r.run(&[
        "--app",
        APP,
        "-f",
        secrets.to_str().expect("utf8"),
        "--secret",
        "git",
        "v1",
        "master",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Secret \"git\" is not in the files given with -f"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn credentials_come_from_a_secret_manifest_as_for_sync() {
    let r = Repo::new();
    let http = HttpGitServer::start_with_basic_auth(r.repo.base_dir(), "ci", "diff-pass-8812");
    let url = http.url(&r.repo.served_name());
    let secrets = r.cache.path().join("secrets.yaml");
    let write = |password: &str| {
        std::fs::write(
            &secrets,
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: git, namespace: ci}}\n\
                 stringData: {{username: ci, password: {password}}}\n"
            ),
        )
        .expect("write")
    };
    let file = secrets.to_str().expect("utf8");
    // Without credentials the host refuses.
    let out = r.run_at(&url, &["--app", APP, "v1", "master"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("asks for credentials"),
        "{}",
        stderr(&out)
    );
    // A wrong password: refused, and never printed.
    write("wrong-pass-1234");
    let out = r.run_at(
        &url,
        &["--app", APP, "-f", file, "--secret", "git", "v1", "master"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("authentication"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong-pass-1234"));
    write("diff-pass-8812");
    let out = r.run_at(
        &url,
        &["--app", APP, "-f", file, "--secret", "git", "v1", "master"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_lines(&stdout(&out), &["    ~ icon: \"shoppingcart\" → \"chart\""]);
}
