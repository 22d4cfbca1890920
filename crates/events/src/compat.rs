//! The schema evolution gate: BACKWARD_TRANSITIVE, plus the repository rules around it.
//!
//! BACKWARD_TRANSITIVE means version N (as reader) must read data written by EVERY earlier
//! version 1..N-1, not just N-1: a consumer upgraded today still meets events written by the
//! oldest producer in a topic's retention or in a replayed outbox. Plain BACKWARD would let
//! v3 drop a default that only v1 data needs.
//!
//! Besides pairwise resolution (apache-avro's `SchemaCompatibility`), the gate rejects:
//! * a gap in the version sequence (v1, v3): released versions are never deleted, since data
//!   written with them may still exist;
//! * a file whose record name differs from its directory: the directory is the registry subject
//!   and the catalog key, the record name is what the bytes carry;
//! * an inlined shared type (`nivesh.common.EventMeta`, `nivesh.common.Decimal`, ...) that
//!   differs between files: every schema is self-contained, so the copies must stay identical or
//!   the "same" type would mean different things per event.
//!
//! Versions with the same canonical form (only docs or defaults changed) are allowed: adding a
//! default is a real evolution step. They share a fingerprint, so a single-object header names the
//! oldest of them, which reads those bytes identically.
//!
//! Results that apache-avro marks `Partial` (e.g. a reader union missing a writer branch, so
//! some values fail) count as incompatible: "sometimes readable" is not readable.

use std::collections::BTreeMap;
use std::fmt;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde_json::Value;

use crate::canonical::canonical_form_of;
use crate::catalog::{RegisteredSchema, SchemaCatalog};

/// One reason the catalog must not ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub full_name: String,
    /// The version at fault (for a gap: the missing version).
    pub version: u32,
    pub reason: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}: {}", self.full_name, self.version, self.reason)
    }
}

/// Every violation in the catalog; empty means it may ship.
pub fn check_backward_transitive(catalog: &SchemaCatalog) -> Vec<Incompatibility> {
    let mut found = Vec::new();
    for name in catalog.names() {
        let versions: Vec<&RegisteredSchema> = catalog.versions(name).collect();
        check_sequence(name, &versions, &mut found);
        for (i, reader) in versions.iter().enumerate() {
            check_record_name(reader, &mut found);
            for writer in &versions[..i] {
                check_pair(writer, reader, &mut found);
            }
        }
    }
    check_shared_types(catalog, &mut found);
    found
}

fn issue(schema: &RegisteredSchema, reason: String) -> Incompatibility {
    Incompatibility {
        full_name: schema.full_name.clone(),
        version: schema.version,
        reason,
    }
}

fn check_sequence(name: &str, versions: &[&RegisteredSchema], found: &mut Vec<Incompatibility>) {
    let present: Vec<u32> = versions.iter().map(|s| s.version).collect();
    let Some(&max) = present.last() else { return };
    for missing in (1..max).filter(|v| !present.contains(v)) {
        found.push(Incompatibility {
            full_name: name.to_string(),
            version: missing,
            reason: format!(
                "v{missing}.avsc is missing (have {present:?}): released versions are never deleted"
            ),
        });
    }
}

fn check_record_name(schema: &RegisteredSchema, found: &mut Vec<Incompatibility>) {
    match schema.schema.name() {
        Some(name) if matches!(schema.schema, apache_avro::Schema::Record(_)) => {
            let full = name.fullname(None);
            if full != schema.full_name {
                found.push(issue(
                    schema,
                    format!(
                        "{} defines record {full}, but its directory says {}",
                        schema.origin, schema.full_name
                    ),
                ));
            }
        }
        _ => found.push(issue(
            schema,
            format!("{} is not a record schema", schema.origin),
        )),
    }
}

fn check_pair(
    writer: &RegisteredSchema,
    reader: &RegisteredSchema,
    found: &mut Vec<Incompatibility>,
) {
    match SchemaCompatibility::can_read(&writer.schema, &reader.schema) {
        Ok(Compatibility::Full) => {}
        Ok(Compatibility::Partial) => found.push(issue(
            reader,
            format!(
                "can read only some data written by v{} (e.g. a union or enum lost a branch)",
                writer.version
            ),
        )),
        Err(e) => found.push(issue(
            reader,
            format!("cannot read data written by v{}: {e}", writer.version),
        )),
    }
}

/// Named types nested in a schema (the top-level record excluded), with their JSON definition.
fn nested_named_types<'v>(
    value: &'v Value,
    top: bool,
    out: &mut Vec<(String, &'v Value)>,
    ns: Option<&str>,
) {
    match value {
        Value::Array(items) => items
            .iter()
            .for_each(|v| nested_named_types(v, false, out, ns)),
        Value::Object(map) => {
            let ty = map.get("type");
            let named = matches!(
                ty.and_then(Value::as_str),
                Some("record" | "error" | "enum" | "fixed")
            );
            let mut child_ns = ns.map(str::to_string);
            if let (true, Some(name)) = (named, map.get("name").and_then(Value::as_str)) {
                let own_ns = map.get("namespace").and_then(Value::as_str).or(ns);
                let full = match own_ns {
                    _ if name.contains('.') => name.to_string(),
                    Some(n) if !n.is_empty() => format!("{n}.{name}"),
                    _ => name.to_string(),
                };
                child_ns = full.rfind('.').map(|i| full[..i].to_string());
                if !top {
                    out.push((full, value));
                }
            }
            if let Some(fields) = map.get("fields").and_then(Value::as_array) {
                for field in fields {
                    if let Some(t) = field.get("type") {
                        nested_named_types(t, false, out, child_ns.as_deref());
                    }
                }
            }
            for key in ["items", "values"] {
                if let Some(t) = map.get(key) {
                    nested_named_types(t, false, out, ns);
                }
            }
            if let Some(t) = ty.filter(|t| !t.is_string()) {
                nested_named_types(t, false, out, ns);
            }
        }
        _ => {}
    }
}

fn check_shared_types(catalog: &SchemaCatalog, found: &mut Vec<Incompatibility>) {
    // type name -> (origin of first definition, its canonical form, its full JSON definition)
    let mut first: BTreeMap<String, (String, String, Value)> = BTreeMap::new();
    for schema in catalog.iter() {
        let Ok(value) = serde_json::from_str::<Value>(&schema.json) else {
            continue;
        };
        let mut named = Vec::new();
        nested_named_types(&value, true, &mut named, None);
        for (type_name, definition) in named {
            let Ok(pcf) = canonical_form_of(definition) else {
                continue;
            };
            match first.get(&type_name) {
                None => {
                    first.insert(type_name, (schema.origin.clone(), pcf, definition.clone()));
                }
                Some((origin, first_pcf, _)) if *first_pcf != pcf => found.push(issue(
                    schema,
                    format!("inlined {type_name} differs from the definition in {origin} (canonical form)"),
                )),
                // Same layout but different docs/defaults/logical types: still a divergence, since
                // defaults and logical types change how readers interpret the data.
                Some((origin, _, first_def)) if first_def != definition => found.push(issue(
                    schema,
                    format!("inlined {type_name} differs from the definition in {origin} (docs, defaults or logical types)"),
                )),
                Some(_) => {}
            }
        }
    }
}
