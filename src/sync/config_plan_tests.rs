use serde_json::json;

use super::*;
use crate::api::{ConnectionState, DataSourceOptionSpec, ValueFrom};
use crate::tooljet::ConstantValue;

const V3: &str = "3.5.11";
const V2: &str = "2.27.1";
const ENV: &str = "production";
const SECRET_VALUE: &str = "sk_live_do_not_show";

fn hasher() -> ValueHasher {
    ValueHasher::new(b"uid-1234/admin-key")
}

fn want(name: &str, kind: ConstantKind, value: &str) -> DesiredConstant {
    DesiredConstant {
        name: name.into(),
        kind,
        value: value.into(),
        adopt_existing: false,
    }
}

fn global(name: &str, value: &str) -> DesiredConstant {
    want(name, ConstantKind::Global, value)
}

fn on_server(id: &str, name: &str, kind: ConstantType, value: &str) -> Constant {
    let shown = if kind == ConstantType::Secret {
        "********"
    } else {
        value
    };
    Constant {
        id: id.into(),
        name: name.into(),
        kind,
        values: vec![ConstantValue {
            environment_name: ENV.into(),
            value: shown.into(),
            id: None,
        }],
    }
}

fn owned(name: &str, kind: ConstantKind, hash: Option<String>) -> OwnedConstant {
    OwnedConstant {
        name: name.into(),
        kind,
        written_hash: hash,
    }
}

fn plan(
    family: Family,
    desired: &[DesiredConstant],
    record: &[OwnedConstant],
    server: &[Constant],
) -> Result<ConstantPlan, Vec<ConfigError>> {
    let version = if family == Family::V2 { V2 } else { V3 };
    plan_constants(family, version, ENV, desired, record, server, &hasher())
}

/// Every message of `errors`, checked to carry no value.
fn texts(errors: &[ConfigError]) -> Vec<String> {
    let out: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for t in &out {
        assert!(!t.contains(SECRET_VALUE), "a value leaked: {t}");
    }
    out
}

// ---- resolve --------------------------------------------------------------------------

fn constant_spec(name: &str, value: Option<&str>, secret: Option<(&str, &str)>) -> ConstantSpec {
    ConstantSpec {
        name: name.into(),
        kind: ConstantKind::Global,
        value: value.map(str::to_string),
        value_from: secret.map(|(n, k)| ValueFrom {
            secret_key_ref: SecretKeyRef {
                name: n.into(),
                key: k.into(),
            },
        }),
        adopt_existing: false,
    }
}

fn lookup(r: &SecretKeyRef) -> SecretLookup {
    match (r.name.as_str(), r.key.as_str()) {
        ("pay", "key") => SecretLookup::Found(SECRET_VALUE.into()),
        ("pay", _) => SecretLookup::KeyMissing,
        ("binary", _) => SecretLookup::NotText,
        _ => SecretLookup::SecretMissing,
    }
}

#[test]
fn values_are_read_inline_or_from_secrets() {
    let constants = [
        constant_spec("API", Some("https://api"), None),
        constant_spec("KEY", None, Some(("pay", "key"))),
    ];
    let sources = [DataSourceConfig {
        name: "db".into(),
        kind: Some("postgresql".into()),
        options: [
            (
                "password".to_string(),
                DataSourceOptionSpec {
                    value: None,
                    value_from: Some(ValueFrom {
                        secret_key_ref: SecretKeyRef {
                            name: "pay".into(),
                            key: "key".into(),
                        },
                    }),
                    encrypted: true,
                },
            ),
            (
                "host".to_string(),
                DataSourceOptionSpec {
                    value: Some("db.svc".into()),
                    value_from: None,
                    encrypted: false,
                },
            ),
        ]
        .into_iter()
        .collect(),
    }];
    let (c, d) = resolve(&constants, &sources, &lookup).unwrap();
    assert_eq!(c[0].value, "https://api");
    assert_eq!(c[1].value, SECRET_VALUE);
    assert!(
        !format!("{c:?}").contains(SECRET_VALUE),
        "Debug never shows values"
    );
    assert_eq!(d[0].options[0].key, "host", "sorted by key");
    assert_eq!(d[0].options[1].value, SECRET_VALUE);
    assert!(d[0].options[1].encrypted);
    assert!(!format!("{d:?}").contains(SECRET_VALUE));
}

#[test]
fn missing_secrets_and_keys_are_all_reported_by_entry() {
    let constants = [
        constant_spec("A", None, Some(("nope", "k"))),
        constant_spec("B", None, Some(("pay", "other"))),
        constant_spec("C", None, Some(("binary", "k"))),
        constant_spec("D", None, None),
        constant_spec("E", Some("v"), Some(("pay", "key"))),
    ];
    let errors = resolve(&constants, &[], &lookup).unwrap_err();
    assert_eq!(
        texts(&errors),
        [
            "constant `A`: Secret `nope` does not exist in the instance's namespace; create it, or correct valueFrom.secretKeyRef.name",
            "constant `B`: Secret `pay` has no key `other`; add the key, or correct valueFrom.secretKeyRef.key",
            "constant `C`: key `k` of Secret `binary` is not UTF-8 text; store the value as text",
            "constant `D`: set exactly one of value or valueFrom.secretKeyRef",
            "constant `E`: set exactly one of value or valueFrom.secretKeyRef",
        ]
    );
    assert_eq!(errors[0].reason(), "SecretNotFound");
    assert_eq!(errors[3].reason(), "InvalidSpec");
}

// ---- hashes ---------------------------------------------------------------------------

#[test]
fn hashes_are_keyed_and_name_the_entry() {
    let h = hasher();
    let a = h.constant("KEY", ConstantKind::Secret, "v1");
    assert!(a.starts_with("hmac-sha256:") && a.len() == "hmac-sha256:".len() + 64);
    assert_eq!(a, h.constant("KEY", ConstantKind::Secret, "v1"), "stable");
    assert_ne!(a, h.constant("KEY", ConstantKind::Secret, "v2"));
    assert_ne!(a, h.constant("KEY2", ConstantKind::Secret, "v1"));
    assert_ne!(a, h.constant("KEY", ConstantKind::Global, "v1"));
    assert_ne!(
        a,
        ValueHasher::new(b"other-uid").constant("KEY", ConstantKind::Secret, "v1")
    );
    // Length-prefixed parts: shifting a boundary changes the hash.
    assert_ne!(
        h.constant("AB", ConstantKind::Global, "C"),
        h.constant("A", ConstantKind::Global, "BC")
    );
    assert!(!a.contains("v1"));
    assert!(!format!("{h:?}").contains("admin-key"));
}

// ---- constants ------------------------------------------------------------------------

#[test]
fn missing_constants_are_created_and_recorded_with_their_hash() {
    let p = plan(
        Family::V3,
        &[
            global("API", "https://a"),
            want("KEY", ConstantKind::Secret, SECRET_VALUE),
        ],
        &[],
        &[],
    )
    .unwrap();
    let names: Vec<&str> = p.create.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["API", "KEY"]);
    assert_eq!(p.create[1].kind, ConstantType::Secret);
    assert!(p.update.is_empty() && p.delete.is_empty() && p.writes());
    assert_eq!(
        p.record,
        [
            owned(
                "API",
                ConstantKind::Global,
                Some(hasher().constant("API", ConstantKind::Global, "https://a"))
            ),
            owned(
                "KEY",
                ConstantKind::Secret,
                Some(hasher().constant("KEY", ConstantKind::Secret, SECRET_VALUE))
            ),
        ]
    );
    assert!(!format!("{p:?}").contains(SECRET_VALUE));
}

#[test]
fn unchanged_constants_write_nothing() {
    let h = hasher();
    let record = [
        owned(
            "API",
            ConstantKind::Global,
            Some(h.constant("API", ConstantKind::Global, "https://a")),
        ),
        owned(
            "KEY",
            ConstantKind::Secret,
            Some(h.constant("KEY", ConstantKind::Secret, SECRET_VALUE)),
        ),
    ];
    let server = [
        on_server("1", "API", ConstantType::Global, "https://a"),
        on_server("2", "KEY", ConstantType::Secret, SECRET_VALUE),
    ];
    let p = plan(
        Family::V3,
        &[
            global("API", "https://a"),
            want("KEY", ConstantKind::Secret, SECRET_VALUE),
        ],
        &record,
        &server,
    )
    .unwrap();
    assert!(!p.writes(), "{p:?}");
    assert_eq!(p.unchanged, ["API", "KEY"]);
    assert_eq!(p.record, record);
}

#[test]
fn a_rotated_secret_or_an_edited_global_is_written_again() {
    let h = hasher();
    let record = [
        owned(
            "API",
            ConstantKind::Global,
            Some(h.constant("API", ConstantKind::Global, "https://a")),
        ),
        owned(
            "KEY",
            ConstantKind::Secret,
            Some(h.constant("KEY", ConstantKind::Secret, "old")),
        ),
    ];
    // The Global was edited in ToolJet; the Secret's source changed (masked: only the hash tells).
    let server = [
        on_server("1", "API", ConstantType::Global, "https://edited-in-ui"),
        on_server("2", "KEY", ConstantType::Secret, "old"),
    ];
    let p = plan(
        Family::V3,
        &[
            global("API", "https://a"),
            want("KEY", ConstantKind::Secret, SECRET_VALUE),
        ],
        &record,
        &server,
    )
    .unwrap();
    let updated: Vec<(&str, &str)> = p
        .update
        .iter()
        .map(|(id, w)| (id.as_str(), w.name.as_str()))
        .collect();
    assert_eq!(updated, [("1", "API"), ("2", "KEY")]);
    assert_eq!(
        p.record[1].written_hash.as_deref(),
        Some(
            h.constant("KEY", ConstantKind::Secret, SECRET_VALUE)
                .as_str()
        )
    );
    // A record without a hash (written by a run that failed) writes the Secret again.
    let no_hash = [owned("KEY", ConstantKind::Secret, None)];
    let p = plan(
        Family::V3,
        &[want("KEY", ConstantKind::Secret, "old")],
        &no_hash,
        &server[1..],
    )
    .unwrap();
    assert_eq!(p.update.len(), 1);
}

#[test]
fn only_owned_constants_are_pruned() {
    let record = [owned("OLD", ConstantKind::Global, None)];
    let server = [
        on_server("1", "OLD", ConstantType::Global, "x"),
        on_server("2", "FOREIGN", ConstantType::Global, "y"),
    ];
    let p = plan(Family::V2, &[], &record, &server).unwrap();
    assert_eq!(p.delete, [("1".to_string(), "OLD".to_string())]);
    assert!(p.record.is_empty());
    // An owned constant already gone from the server is just forgotten.
    let p = plan(Family::V2, &[], &record, &server[1..]).unwrap();
    assert!(p.delete.is_empty() && !p.writes());
}

#[test]
fn a_foreign_constant_is_a_conflict_unless_adopted() {
    let server = [on_server("9", "API", ConstantType::Global, "theirs")];
    let errors = plan(Family::V3, &[global("API", "ours")], &[], &server).unwrap_err();
    assert_eq!(
        errors,
        [ConfigError::ConstantConflict { name: "API".into() }]
    );
    assert_eq!(errors[0].reason(), "ConstantConflict");
    assert!(texts(&errors)[0].contains("adoptExisting: true"));
    let adopt = DesiredConstant {
        adopt_existing: true,
        ..global("API", "ours")
    };
    let p = plan(Family::V3, std::slice::from_ref(&adopt), &[], &server).unwrap();
    assert_eq!(p.adopted, ["API"]);
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.record[0].name, "API", "owned from now on");
    // Names are case-sensitive: `api` is not `API`.
    let p = plan(Family::V3, &[global("api", "ours")], &[], &server).unwrap();
    assert_eq!(p.create.len(), 1);
}

#[test]
fn a_type_change_is_refused_on_3_x() {
    let record = [owned("KEY", ConstantKind::Global, None)];
    let server = [on_server("1", "KEY", ConstantType::Global, "v")];
    let errors = plan(
        Family::V3,
        &[want("KEY", ConstantKind::Secret, SECRET_VALUE)],
        &record,
        &server,
    )
    .unwrap_err();
    assert!(matches!(&errors[0], ConfigError::ConstantTypeMismatch { name, .. } if name == "KEY"));
    texts(&errors);
}

#[test]
fn secret_constants_are_refused_on_2_x_with_the_way_out() {
    let errors = plan(
        Family::V2,
        &[
            global("OK", "v"),
            want("PAYMENT_KEY", ConstantKind::Secret, SECRET_VALUE),
        ],
        &[],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        errors.len(),
        1,
        "the whole plan is refused: nothing half-written"
    );
    let text = &texts(&errors)[0];
    assert!(
        text.starts_with(
            "constant `PAYMENT_KEY` is of type Secret, which ToolJet 2.27.1 does not have"
        ),
        "{text}"
    );
    assert!(text.contains("encrypted data-source option"), "{text}");
    assert_eq!(errors[0].reason(), "SecretConstantUnsupported");
}

#[test]
fn names_and_values_tooljet_would_refuse_are_caught() {
    let thirty_three = "a".repeat(33);
    let fifty_one = "b".repeat(51);
    let long_value = "x".repeat(10_001);
    let cases: Vec<(Family, DesiredConstant, &str)> = vec![
        (
            Family::V3,
            global("db-host", "v"),
            "constant `db-host`: the name has a character ToolJet refuses",
        ),
        (
            Family::V3,
            global("1db", "v"),
            "constant `1db`: the name has a character",
        ),
        (
            Family::V3,
            global(" padded ", "v"),
            "constant ` padded `: the name has a character",
        ),
        (
            Family::V3,
            global("", "v"),
            "constant ``: the name has a character ToolJet refuses (or is empty)",
        ),
        (
            Family::V2,
            global(&thirty_three, "v"),
            "the name has 33 characters; ToolJet 2.27.1 accepts at most 32",
        ),
        (
            Family::V3,
            global(&fifty_one, "v"),
            "the name has 51 characters; ToolJet 3.5.11 accepts at most 50",
        ),
        (
            Family::V3,
            global("EMPTY", ""),
            "constant `EMPTY`: the value has 0 characters; ToolJet accepts 1 to 10,000",
        ),
        (
            Family::V3,
            global("LONG", &long_value),
            "constant `LONG`: the value has 10001 characters",
        ),
    ];
    for (family, c, expected) in cases {
        let errors = plan(family, std::slice::from_ref(&c), &[], &[]).unwrap_err();
        let text = texts(&errors).join(" | ");
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
        assert!(errors.iter().all(|e| e.reason() == "InvalidSpec"));
    }
    // The limits themselves pass.
    assert!(
        plan(
            Family::V2,
            &[global(&"a".repeat(32), &"x".repeat(10_000))],
            &[],
            &[]
        )
        .is_ok()
    );
    assert!(plan(Family::V3, &[global(&"a".repeat(50), "v")], &[], &[]).is_ok());
}

#[test]
fn two_entries_with_one_name_are_refused() {
    let errors = plan(Family::V3, &[global("A", "1"), global("A", "2")], &[], &[]).unwrap_err();
    assert_eq!(
        errors,
        [ConfigError::DuplicateConstant { name: "A".into() }]
    );
}

#[test]
fn a_failed_run_never_forgets_what_it_owns() {
    let previous = [owned(
        "OLD",
        ConstantKind::Global,
        Some("hmac-sha256:aa".into()),
    )];
    let p = plan(
        Family::V3,
        &[global("NEW", "v")],
        &previous,
        &[on_server("1", "OLD", ConstantType::Global, "x")],
    )
    .unwrap();
    let kept = p.record_after_failure(&previous);
    assert_eq!(
        kept,
        [
            previous[0].clone(),
            owned("NEW", ConstantKind::Global, None)
        ]
    );
}

// ---- data sources ---------------------------------------------------------------------

fn source(name: &str, kind: Option<&str>, options: &[(&str, &str, bool)]) -> DesiredDataSource {
    DesiredDataSource {
        name: name.into(),
        kind: kind.map(str::to_string),
        options: options
            .iter()
            .map(|(k, v, e)| OptionEntry {
                key: (*k).into(),
                value: (*v).into(),
                encrypted: *e,
            })
            .collect(),
    }
}

fn listed(id: &str, name: &str, kind: &str) -> DataSource {
    DataSource {
        id: id.into(),
        name: name.into(),
        kind: kind.into(),
        source_type: Some("default".into()),
        scope: Some("global".into()),
        app_version_id: None,
    }
}

#[test]
fn data_sources_are_found_created_or_waited_for() {
    let server = [
        listed("1", "sales-db", "postgresql"),
        listed("2", "api", "restapi"),
    ];
    assert_eq!(
        locate_data_source(&source("sales-db", Some("postgresql"), &[]), &server),
        Ok(Located::Existing {
            id: "1".into(),
            kind: "postgresql".into()
        })
    );
    assert_eq!(
        locate_data_source(&source("sales-db", None, &[]), &server),
        Ok(Located::Existing {
            id: "1".into(),
            kind: "postgresql".into()
        })
    );
    assert_eq!(
        locate_data_source(&source("new-db", Some("mysql"), &[]), &server),
        Ok(Located::Create {
            kind: "mysql".into()
        })
    );
    assert_eq!(
        locate_data_source(&source("later", None, &[]), &server),
        Ok(Located::WaitForImport)
    );
    // Case-sensitive: `Sales-DB` is another name.
    assert_eq!(
        locate_data_source(&source("Sales-DB", None, &[]), &server),
        Ok(Located::WaitForImport)
    );
}

#[test]
fn kind_mismatch_and_duplicates_on_the_server_are_refused() {
    let server = [
        listed("1", "db", "postgresql"),
        listed("2", "db", "postgresql"),
    ];
    let err = locate_data_source(&source("db", None, &[]), &server).unwrap_err();
    assert_eq!(
        err,
        ConfigError::DataSourceAmbiguous {
            name: "db".into(),
            count: 2
        }
    );
    assert!(err.to_string().contains("exists 2 times"));
    let err = locate_data_source(&source("db", Some("mysql"), &[]), &server[..1]).unwrap_err();
    assert_eq!(err.reason(), "DataSourceKindMismatch");
    assert_eq!(
        err.to_string(),
        "data source `db` exists in the workspace with kind `postgresql`, not `mysql`; nothing was written: correct kind in the spec, or rename the data source"
    );
}

#[test]
fn data_source_entries_are_checked_by_name() {
    let long = "x".repeat(MAX_OPTION_VALUE + 1);
    let errors = check_data_sources(&[
        source("db", None, &[("host", "h", false)]),
        source("db", None, &[]),
        source(
            "api",
            None,
            &[("token", &long, true), ("password", "", true)],
        ),
        source(
            "dup",
            None,
            &[("host", "a", false), ("host", SECRET_VALUE, false)],
        ),
    ])
    .unwrap_err();
    assert_eq!(
        texts(&errors),
        [
            "data source `db` is listed twice in dataSources; each may appear once",
            "data source `api`, option `token`: the value has 65537 characters; at most 65536 are accepted",
            "data source `api`, option `password`: an encrypted option needs a value (an empty one would blank the stored secret)",
            "data source `dup`, option `host`: the key is set twice",
        ]
    );
    assert!(check_data_sources(&[source("db", None, &[("host", "h", false)])]).is_ok());
}

fn stored() -> OptionMap {
    serde_json::from_value(json!({
        "host": {"value": "db.prod.svc", "encrypted": false},
        "port": {"value": 5432, "encrypted": false},
        "password": {"credential_id": "c1", "encrypted": true},
    }))
    .unwrap()
}

fn recorded(hash: &str) -> ConfiguredDataSource {
    ConfiguredDataSource {
        name: "db".into(),
        id: Some("1".into()),
        connection: ConnectionState::Ok,
        message: None,
        written_hash: Some(hash.into()),
    }
}

#[test]
fn options_are_written_when_new_changed_edited_or_after_a_constant_change() {
    let h = hasher();
    let desired = source(
        "db",
        Some("postgresql"),
        &[
            ("host", "db.prod.svc", false),
            ("port", "5432", false),
            ("password", SECRET_VALUE, true),
        ],
    );
    let constants = [owned(
        "pg_pw",
        ConstantKind::Global,
        Some("hmac-sha256:01".into()),
    )];

    // New (nothing recorded): written, with the whole merged set.
    let first = plan_options(Family::V3, &desired, &stored(), None, &constants, &h);
    let write = first.write.clone().expect("first write");
    assert_eq!(write.options.len(), 3);
    assert_eq!(write.secret_values(), [SECRET_VALUE]);

    // Written and unchanged: nothing to do.
    let again = plan_options(
        Family::V3,
        &desired,
        &stored(),
        Some(&recorded(&first.hash)),
        &constants,
        &h,
    );
    assert_eq!(again.write, None);
    assert_eq!(again.hash, first.hash);

    // The Secret behind the password rotated: the hash differs.
    let rotated = source(
        "db",
        Some("postgresql"),
        &[
            ("host", "db.prod.svc", false),
            ("port", "5432", false),
            ("password", "new-pw-value", true),
        ],
    );
    assert!(
        plan_options(
            Family::V3,
            &rotated,
            &stored(),
            Some(&recorded(&first.hash)),
            &constants,
            &h
        )
        .write
        .is_some()
    );

    // A constant changed: written again so pooled connections reconnect (§3.6).
    let changed = [owned(
        "pg_pw",
        ConstantKind::Global,
        Some("hmac-sha256:02".into()),
    )];
    assert!(
        plan_options(
            Family::V3,
            &desired,
            &stored(),
            Some(&recorded(&first.hash)),
            &changed,
            &h
        )
        .write
        .is_some()
    );

    // Someone edited the host in ToolJet: restored.
    let mut edited = stored();
    edited["host"] = json!({"value": "elsewhere", "encrypted": false});
    assert!(
        plan_options(
            Family::V3,
            &desired,
            &edited,
            Some(&recorded(&first.hash)),
            &constants,
            &h
        )
        .write
        .is_some()
    );

    // The secret key was removed (or stored in plain text) in ToolJet: written again.
    let mut no_secret = stored();
    no_secret.remove("password");
    assert!(
        plan_options(
            Family::V2,
            &desired,
            &no_secret,
            Some(&recorded(&first.hash)),
            &constants,
            &h
        )
        .write
        .is_some()
    );
    let mut plain = stored();
    plain["password"] = json!({"value": "x", "encrypted": false});
    assert!(
        plan_options(
            Family::V2,
            &desired,
            &plain,
            Some(&recorded(&first.hash)),
            &constants,
            &h
        )
        .write
        .is_some()
    );
}
