//! Property tests (issue 9, item 4), bounded for CI: bundle and meta.json parsing through the
//! public source API (generated files committed to a real repository, read back), and git URL
//! normalisation through the mirror key. Raise the case counts with PROPTEST_CASES for a longer
//! run (e.g. `PROPTEST_CASES=2000 cargo test --test sync properties::`).

use std::collections::BTreeMap;

use git_fixtures::TestRepo;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tooljet_operator::source::{
    AppLocator, AppSource, CacheConfig, Credentials, GitRef, SourceCache, SourceError, SourceSpec,
};

/// Case count: PROPTEST_CASES when set, else `default` (small: each case commits to git).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values shaped like export bundles often enough to reach the success path.
fn arb_bundle() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_json(),
        prop::collection::vec(arb_json(), 0..3).prop_map(|defs| {
            json!({"app": defs.into_iter().map(|d| json!({"definition": d})).collect::<Vec<_>>(),
                   "tooljet_version": "3.5.11"})
        }),
        arb_json().prop_map(|d| json!({"app": [{"definition": {"appV2": d}}]})),
    ]
}

/// Reads whatever one generated commit holds.
struct Reader {
    rt: tokio::runtime::Runtime,
    cache: SourceCache,
    _dir: tempfile::TempDir,
}

impl Reader {
    fn new() -> Reader {
        let dir = tempfile::tempdir().expect("tempdir");
        Reader {
            rt: tokio::runtime::Runtime::new().expect("runtime"),
            cache: SourceCache::new(CacheConfig {
                dir: dir.path().to_owned(),
                ..CacheConfig::default()
            }),
            _dir: dir,
        }
    }

    fn read(&self, repo: &TestRepo, locator: &AppLocator) -> Result<AppSource, SourceError> {
        repo.commit("generated");
        repo.publish();
        let url = repo.file_url();
        self.rt.block_on(async {
            let spec = SourceSpec {
                url: url.clone(),
                git_ref: GitRef::Branch("master".into()),
            };
            let resolved = self
                .cache
                .resolve(&spec, &Credentials::Anonymous, None)
                .await?;
            self.cache
                .read_app(&url, &Credentials::Anonymous, &resolved.commit.sha, locator)
                .await
        })
    }
}

/// What a bundle must look like to be read: exactly one app with an object definition.
fn well_formed(bundle: &Value) -> bool {
    matches!(bundle.get("app").and_then(Value::as_array), Some(apps) if apps.len() == 1)
        && bundle["app"][0]
            .get("definition")
            .is_some_and(Value::is_object)
}

fn check_bundle_bytes(reader: &Reader, bytes: &[u8]) -> Result<(), TestCaseError> {
    let repo = TestRepo::new();
    repo.write("exports/app.json", bytes);
    let read = reader.read(&repo, &AppLocator::Path("exports/app.json".into()));
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let expect_ok = parsed.as_ref().is_some_and(well_formed);
    match read {
        Ok(app) => {
            prop_assert!(expect_ok, "read a bundle that is not well formed");
            prop_assert_eq!(app.bundle_bytes.as_slice(), bytes);
            prop_assert_eq!(&app.content_hash, &hex::encode(Sha256::digest(bytes)));
            prop_assert_eq!(Some(&app.bundle), parsed.as_ref());
        }
        Err(e) => {
            prop_assert!(!expect_ok, "refused a well formed bundle: {}", e);
            prop_assert!(
                matches!(
                    e,
                    SourceError::BundleNotJson { .. }
                        | SourceError::BundleWithoutDefinition { .. }
                        | SourceError::UnsupportedLayout { .. }
                ),
                "unexpected error: {:?}",
                e
            );
        }
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_as_a_bundle_are_read_or_refused_never_a_panic() {
    let reader = Reader::new();
    let mut runner = TestRunner::new(Config {
        cases: cases(24),
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..256), |bytes| {
            check_bundle_bytes(&reader, &bytes)
        })
        .expect("property holds");
}

#[test]
fn arbitrary_json_as_a_bundle_is_read_exactly_when_well_formed() {
    let reader = Reader::new();
    let mut runner = TestRunner::new(Config {
        cases: cases(32),
        ..Config::default()
    });
    runner
        .run(&arb_bundle(), |bundle| {
            let bytes = serde_json::to_vec(&bundle).expect("json");
            check_bundle_bytes(&reader, &bytes)
        })
        .expect("property holds");
}

/// A name the layout reader may turn into one path component.
fn safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._-]{1,12}",
        "\\PC{1,8}",
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("a/b".to_string()),
        Just("a\\b".to_string()),
        Just("../../etc/passwd".to_string()),
    ]
    // git refuses to track a directory named .git; not a case the reader can meet.
    .prop_filter("not .git", |s| !s.to_ascii_lowercase().starts_with(".git"))
}

#[test]
fn meta_json_names_are_confined_to_the_repository() {
    let reader = Reader::new();
    let mut runner = TestRunner::new(Config {
        cases: cases(32),
        ..Config::default()
    });
    let bundle = json!({"app": [{"definition": {"appV2": {"name": "x"}}}]}).to_string();
    runner
        .run(&(arb_name(), arb_name()), |(name, version)| {
            let repo = TestRepo::new();
            let meta = BTreeMap::from([(
                "id-1",
                json!({"gitAppName": name, "gitVersionName": version}),
            )]);
            repo.write(".meta/meta.json", serde_json::to_vec(&meta).expect("json"));
            let safe = safe_component(&name) && safe_component(&version);
            if safe {
                repo.write(&format!("{name}/{version}.json"), &bundle);
            }
            match reader.read(&repo, &AppLocator::ByName(name.clone())) {
                Ok(app) => {
                    prop_assert!(safe, "read through an unsafe name");
                    prop_assert_eq!(app.path, format!("{name}/{version}.json"));
                    prop_assert_eq!(app.git_app_name, name);
                }
                Err(e) => {
                    prop_assert!(!safe, "refused a safe name: {}", e);
                    prop_assert!(
                        matches!(e, SourceError::PathEscapesRepo { .. }),
                        "unexpected error: {:?}",
                        e
                    );
                }
            }
            Ok(())
        })
        .expect("property holds");
}

#[test]
fn arbitrary_meta_json_is_read_or_refused_never_a_panic() {
    let reader = Reader::new();
    let mut runner = TestRunner::new(Config {
        cases: cases(24),
        ..Config::default()
    });
    runner
        .run(&arb_json(), |meta| {
            let repo = TestRepo::new();
            repo.write(".meta/meta.json", serde_json::to_vec(&meta).expect("json"));
            let read = reader.read(&repo, &AppLocator::ByName("x".into()));
            // No bundle is committed, so nothing can be read; the error is a layout error.
            let e = read.expect_err("nothing to read");
            prop_assert!(
                matches!(
                    e,
                    SourceError::MetaJsonInvalid { .. }
                        | SourceError::AppNotFound { .. }
                        | SourceError::BundleMissing { .. }
                        | SourceError::PathEscapesRepo { .. }
                ),
                "unexpected error: {:?}",
                e
            );
            Ok(())
        })
        .expect("property holds");
}

fn arb_url() -> impl Strategy<Value = (String, String, String)> {
    (
        prop_oneof![Just("https"), Just("ssh"), Just("git"), Just("http")],
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,4}){0,2}",
        "[a-zA-Z0-9_.-]{1,10}(/[a-zA-Z0-9_.-]{1,10}){0,3}",
    )
        .prop_map(|(s, h, p)| (s.to_string(), h, p))
}

proptest! {
    #![proptest_config(Config { cases: cases(256), ..Config::default() })]

    /// Any string as a URL: a mirror path under the cache, named by a hash alone.
    #[test]
    fn any_url_gets_a_hashed_mirror_path(url in "\\PC{0,40}") {
        let dir = std::path::Path::new("/cache");
        let cache = SourceCache::new(CacheConfig { dir: dir.to_owned(), ..CacheConfig::default() });
        let path = cache.mirror_path(&url, &Credentials::Anonymous);
        prop_assert!(path.starts_with(dir.join("mirrors")));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        prop_assert!(name.trim_end_matches(".git").chars().all(|c| c.is_ascii_hexdigit()), "{}", name);
    }

    /// Spellings of one repository share a mirror: scheme and host case, trailing slashes,
    /// surrounding spaces. Different paths never do.
    #[test]
    fn url_spellings_of_one_repository_share_a_mirror((scheme, host, path) in arb_url(), other in "[a-z]{1,8}") {
        let cache = SourceCache::new(CacheConfig::default());
        let key = |u: &str| cache.mirror_path(u, &Credentials::Anonymous);
        let canonical = format!("{scheme}://{host}/{path}");
        let shouted = format!("{}://{}/{path}/", scheme.to_uppercase(), host.to_uppercase());
        prop_assert_eq!(key(&canonical), key(&shouted));
        prop_assert_eq!(key(&canonical), key(&format!("  {canonical}//  ")));
        let elsewhere = format!("{scheme}://{host}/{path}/{other}");
        prop_assert_ne!(key(&canonical), key(&elsewhere));
        // Credentials separate mirrors of one URL.
        let token = Credentials::Token { username: "x".into(), token: other.clone() };
        prop_assert_ne!(key(&canonical), cache.mirror_path(&canonical, &token));
    }
}
