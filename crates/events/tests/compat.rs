//! The BACKWARD_TRANSITIVE gate on the repository's schemas and on deliberately broken copies,
//! through the library and through the built `schema-check` binary.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TempDir, copy_dir, repo_schemas};
use nivesh_events::SchemaCatalog;
use nivesh_events::compat::{Incompatibility, check_backward_transitive};
use serde_json::{Value, json};

const RAW: &str = "nivesh.nav.RawNavReceived";

fn staged() -> TempDir {
    let dir = TempDir::new("compat");
    copy_dir(&repo_schemas(), dir.path());
    dir
}

fn read(dir: &Path, name: &str, version: u32) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join(name).join(format!("v{version}.avsc"))).unwrap(),
    )
    .unwrap()
}

fn write(dir: &Path, name: &str, version: u32, schema: &Value) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(
        dir.join(name).join(format!("v{version}.avsc")),
        serde_json::to_string_pretty(schema).unwrap(),
    )
    .unwrap();
}

fn fields(schema: &mut Value) -> &mut Vec<Value> {
    schema["fields"].as_array_mut().unwrap()
}

fn check(dir: &Path) -> Vec<Incompatibility> {
    check_backward_transitive(&SchemaCatalog::from_dir(dir).unwrap())
}

/// The repository's schemas pass the gate, and the embedded catalog holds exactly those files.
#[test]
fn repository_schemas_are_compatible_and_embedded() {
    let from_dir = SchemaCatalog::from_dir(repo_schemas()).unwrap();
    assert_eq!(check_backward_transitive(&from_dir), vec![]);
    assert_eq!(check_backward_transitive(SchemaCatalog::embedded()), vec![]);
    let key = |c: &SchemaCatalog| {
        c.iter()
            .map(|s| (s.full_name.clone(), s.version, s.fingerprint))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&from_dir), key(SchemaCatalog::embedded()));
    assert!(from_dir.version(RAW, 2).is_some());
}

/// Shared named types are inlined identically in every file (canonical form and full JSON).
#[test]
fn shared_types_are_identical_in_every_file() {
    fn find<'v>(v: &'v Value, name: &str) -> Option<&'v Value> {
        match v {
            Value::Object(m)
                if m.get("name").and_then(Value::as_str) == Some(name)
                    && m.contains_key("fields") =>
            {
                Some(v)
            }
            Value::Object(m) => m.values().find_map(|x| find(x, name)),
            Value::Array(a) => a.iter().find_map(|x| find(x, name)),
            _ => None,
        }
    }
    let catalog = SchemaCatalog::from_dir(repo_schemas()).unwrap();
    for shared in ["EventMeta", "Decimal"] {
        let mut definitions = Vec::new();
        for s in catalog.iter() {
            let json: Value = serde_json::from_str(&s.json).unwrap();
            if let Some(def) = find(&json, shared) {
                let pcf = nivesh_events::canonical::canonical_form_of(def).unwrap();
                definitions.push((s.origin.clone(), pcf, def.clone()));
            }
        }
        let min = if shared == "EventMeta" {
            catalog.len()
        } else {
            4
        };
        assert!(
            definitions.len() >= min,
            "{shared} found in {} files",
            definitions.len()
        );
        for (origin, pcf, def) in &definitions[1..] {
            assert_eq!(
                pcf, &definitions[0].1,
                "{shared} canonical form in {origin}"
            );
            assert_eq!(def, &definitions[0].2, "{shared} definition in {origin}");
        }
    }
}

/// A new version adding a required field without a default is rejected.
#[test]
fn new_required_field_without_default_is_incompatible() {
    let dir = staged();
    let mut v3 = read(dir.path(), RAW, 2);
    fields(&mut v3).push(json!({"name": "isin_idcw", "type": "string"}));
    write(dir.path(), RAW, 3, &v3);
    let found = check(dir.path());
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|i| i.full_name == RAW && i.version == 3),
        "{found:?}"
    );
    assert!(
        found.iter().any(|i| i.reason.contains("isin_idcw")),
        "{found:?}"
    );
    // Reported against both earlier versions (transitive).
    assert!(
        found.iter().any(|i| i.reason.contains("written by v1")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|i| i.reason.contains("written by v2")),
        "{found:?}"
    );
}

/// Changing a field's type (long -> string) is rejected.
#[test]
fn field_type_change_is_incompatible() {
    let dir = staged();
    let mut v3 = read(dir.path(), RAW, 2);
    let line = fields(&mut v3)
        .iter_mut()
        .find(|f| f["name"] == "line_number")
        .unwrap();
    line["type"] = json!("string");
    write(dir.path(), RAW, 3, &v3);
    let found = check(dir.path());
    assert!(
        found
            .iter()
            .any(|i| i.version == 3 && i.reason.contains("line_number")),
        "{found:?}"
    );
}

/// A version compatible with its predecessor but not with v1 is caught: the check is transitive.
#[test]
fn only_transitive_check_catches_dropping_a_needed_default() {
    let dir = staged();
    let mut v3 = read(dir.path(), RAW, 2);
    let plan = fields(&mut v3)
        .iter_mut()
        .find(|f| f["name"] == "plan")
        .unwrap();
    plan.as_object_mut().unwrap().remove("default");
    write(dir.path(), RAW, 3, &v3);
    let found = check(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].version, found[0].full_name.as_str()), (3, RAW));
    assert!(found[0].reason.contains("written by v1"), "{found:?}");
}

/// A gap in the version sequence (v1, v3) is reported as the missing version.
#[test]
fn missing_version_is_rejected() {
    let dir = staged();
    let v2 = read(dir.path(), RAW, 2);
    std::fs::remove_file(dir.path().join(RAW).join("v2.avsc")).unwrap();
    write(dir.path(), RAW, 3, &v2);
    let found = check(dir.path());
    assert!(
        found
            .iter()
            .any(|i| i.version == 2 && i.reason.contains("missing")),
        "{found:?}"
    );
}

/// A file whose record name differs from its directory is rejected.
#[test]
fn record_name_must_match_directory() {
    let dir = staged();
    let mut v3 = read(dir.path(), RAW, 2);
    v3["name"] = json!("RawNav");
    write(dir.path(), RAW, 3, &v3);
    let found = check(dir.path());
    assert!(
        found
            .iter()
            .any(|i| i.version == 3 && i.reason.contains("nivesh.nav.RawNav,")),
        "{found:?}"
    );
}

/// An inlined shared type that drifts in one file is rejected, whether in layout or only in docs.
#[test]
fn drifting_shared_type_is_rejected() {
    let dir = staged();
    let mut published = read(dir.path(), "nivesh.nav.NavPublished", 1);
    published["fields"][0]["type"]["doc"] = json!("edited");
    write(dir.path(), "nivesh.nav.NavPublished", 1, &published);
    let found = check(dir.path());
    assert!(
        found
            .iter()
            .any(|i| i.reason.contains("nivesh.common.EventMeta") && i.reason.contains("docs")),
        "{found:?}"
    );

    let dir = staged();
    let mut rejected = read(dir.path(), "nivesh.nav.NavRejected", 1);
    rejected["fields"][0]["type"]["fields"][5]["type"] = json!("long");
    write(dir.path(), "nivesh.nav.NavRejected", 1, &rejected);
    let found = check(dir.path());
    assert!(
        found
            .iter()
            .any(|i| i.reason.contains("nivesh.common.EventMeta")
                && i.reason.contains("canonical form")),
        "{found:?}"
    );
}

/// A version that only adds a default (same layout, same fingerprint) is a legal step; the shared
/// fingerprint resolves to the oldest such version.
#[test]
fn defaults_only_version_is_allowed() {
    let dir = staged();
    let mut v3 = read(dir.path(), RAW, 2);
    let source = fields(&mut v3)
        .iter_mut()
        .find(|f| f["name"] == "source")
        .unwrap();
    source["default"] = json!("AMFI");
    write(dir.path(), RAW, 3, &v3);
    let catalog = SchemaCatalog::from_dir(dir.path()).unwrap();
    assert_eq!(check_backward_transitive(&catalog), vec![]);
    let v3 = catalog.version(RAW, 3).unwrap();
    assert_eq!(v3.fingerprint, catalog.version(RAW, 2).unwrap().fingerprint);
    assert_eq!(catalog.by_fingerprint(v3.fingerprint).unwrap().version, 2);
    assert_eq!(catalog.latest(RAW).unwrap().version, 3);
}

/// Misplaced or misnamed schema files make loading fail instead of being skipped.
#[test]
fn misnamed_files_fail_to_load() {
    let dir = staged();
    std::fs::write(dir.path().join(RAW).join("v03.avsc"), "{}").unwrap();
    assert!(SchemaCatalog::from_dir(dir.path()).is_err());
    let dir = staged();
    std::fs::write(dir.path().join("Loose.avsc"), "{}").unwrap();
    assert!(SchemaCatalog::from_dir(dir.path()).is_err());
    let dir = staged();
    std::fs::write(dir.path().join(RAW).join("v3.avsc"), "{not json").unwrap();
    let err = SchemaCatalog::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("v3.avsc"), "{err}");
}

fn schema_check(args: &[&Path], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_schema-check"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// The binary passes the repository (default dir relative to the current dir) and lists what it checked.
#[test]
fn schema_check_binary_passes_the_repository() {
    let workspace = repo_schemas().join("../..");
    let out = schema_check(&[], &workspace);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in SchemaCatalog::embedded().iter() {
        assert!(
            stdout.contains(&format!("{} v{} ", s.full_name, s.version)),
            "{stdout}"
        );
    }
}

/// The binary exits 1 naming the incompatibility when a staged copy is broken, 2 when unloadable.
#[test]
fn schema_check_binary_fails_on_incompatibility() {
    let dir = staged();
    let mut v3 = read(dir.path(), RAW, 2);
    fields(&mut v3).push(json!({"name": "isin_idcw", "type": "string"}));
    write(dir.path(), RAW, 3, &v3);
    let out = schema_check(&[dir.path()], Path::new("/"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nivesh.nav.RawNavReceived v3") && stderr.contains("isin_idcw"),
        "{stderr}"
    );

    let empty = TempDir::new("compat-missing");
    let out = schema_check(&[&empty.path().join("nope")], Path::new("/"));
    assert_eq!(out.status.code(), Some(2));
}
