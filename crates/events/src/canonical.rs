//! Parsing Canonical Form (PCF) and the CRC-64-AVRO (Rabin) fingerprint, per the Avro spec.
//!
//! We compute PCF ourselves from the schema JSON instead of calling
//! `apache_avro::Schema::canonical_form`, because the latter deviates from the spec in ways that
//! change fingerprints: it keeps `{"type":"int"}` for a logical type such as
//! `{"type":"int","logicalType":"date"}` where the spec (and Java, fastavro) reduce it to `"int"`,
//! and it keeps `order`. Since the single-object header carries the fingerprint, a consumer in
//! another language would not find our schemas by fingerprint. The fastavro cross-check test pins
//! the result against an independent implementation.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::{Error, Result};

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of a schema given as JSON text.
pub fn parsing_canonical_form(schema_json: &str) -> Result<String> {
    let value: Value = serde_json::from_str(schema_json).map_err(|e| Error::Schema {
        origin: "<json>".into(),
        message: format!("not JSON: {e}"),
    })?;
    canonical_form_of(&value)
}

/// The Parsing Canonical Form of an already-parsed schema JSON value.
pub fn canonical_form_of(schema: &Value) -> Result<String> {
    let mut out = String::with_capacity(512);
    write_pcf(schema, None, &mut HashSet::new(), &mut out)?;
    Ok(out)
}

/// CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form (the value carried, little
/// endian, in the single-object header).
pub fn fingerprint_of(schema: &Value) -> Result<u64> {
    Ok(rabin(canonical_form_of(schema)?.as_bytes()))
}

fn bad(message: impl Into<String>) -> Error {
    Error::Schema {
        origin: "<schema>".into(),
        message: message.into(),
    }
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        _ if name.contains('.') => name.to_string(),
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

/// Namespace that nested unqualified names inherit from a named type.
fn namespace_of(full: &str) -> Option<&str> {
    full.rfind('.').map(|i| &full[..i])
}

fn push_str_literal(out: &mut String, s: &str) {
    // [STRINGS]: names and symbols are restricted to [A-Za-z0-9_.], so no escaping is ever needed;
    // serde_json already turned any \uXXXX escapes of the source into UTF-8.
    out.push('"');
    out.push_str(s);
    out.push('"');
}

fn write_pcf(
    schema: &Value,
    ns: Option<&str>,
    seen: &mut HashSet<String>,
    out: &mut String,
) -> Result<()> {
    match schema {
        Value::String(name) => {
            if PRIMITIVES.contains(&name.as_str()) {
                push_str_literal(out, name);
            } else {
                // [FULLNAMES]: references are written fully qualified.
                push_str_literal(out, &full_name(name, ns));
            }
            Ok(())
        }
        Value::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_pcf(branch, ns, seen, out)?;
            }
            out.push(']');
            Ok(())
        }
        Value::Object(map) => write_object(map, ns, seen, out),
        other => Err(bad(format!("not a schema: {other}"))),
    }
}

fn write_object(
    map: &Map<String, Value>,
    ns: Option<&str>,
    seen: &mut HashSet<String>,
    out: &mut String,
) -> Result<()> {
    let ty = match map.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // `{"type": {...}}` or `{"type": [...]}`: the attribute itself is the schema.
        Some(inner) => return write_pcf(inner, ns, seen, out),
        None => return Err(bad("schema object without \"type\"")),
    };
    match ty {
        // [PRIMITIVES] after [STRIP]: a primitive with only stripped attributes (logicalType, ...)
        // is written as its bare name.
        t if PRIMITIVES.contains(&t) => {
            push_str_literal(out, t);
            Ok(())
        }
        "record" | "error" | "enum" | "fixed" => {
            let name = map
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{ty} without a name")))?;
            let own_ns = map.get("namespace").and_then(Value::as_str).or(ns);
            let full = full_name(name, own_ns);
            if !seen.insert(full.clone()) {
                // A named type is defined once; later occurrences are references.
                push_str_literal(out, &full);
                return Ok(());
            }
            out.push_str("{\"name\":");
            push_str_literal(out, &full);
            out.push_str(",\"type\":");
            push_str_literal(out, if ty == "error" { "record" } else { ty });
            match ty {
                "enum" => {
                    let symbols = map
                        .get("symbols")
                        .and_then(Value::as_array)
                        .ok_or_else(|| bad("enum without symbols"))?;
                    out.push_str(",\"symbols\":[");
                    for (i, s) in symbols.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        push_str_literal(
                            out,
                            s.as_str().ok_or_else(|| bad("enum symbol not a string"))?,
                        );
                    }
                    out.push(']');
                }
                "fixed" => {
                    let size = map
                        .get("size")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| bad("fixed without size"))?;
                    out.push_str(&format!(",\"size\":{size}"));
                }
                _ => {
                    let fields = map
                        .get("fields")
                        .and_then(Value::as_array)
                        .ok_or_else(|| bad("record without fields"))?;
                    let child_ns = namespace_of(&full);
                    out.push_str(",\"fields\":[");
                    for (i, field) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let fname = field
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("field without a name"))?;
                        let ftype = field
                            .get("type")
                            .ok_or_else(|| bad(format!("field {fname} without a type")))?;
                        out.push_str("{\"name\":");
                        push_str_literal(out, fname);
                        out.push_str(",\"type\":");
                        write_pcf(ftype, child_ns, seen, out)?;
                        out.push('}');
                    }
                    out.push(']');
                }
            }
            out.push('}');
            Ok(())
        }
        "array" => {
            let items = map.get("items").ok_or_else(|| bad("array without items"))?;
            out.push_str("{\"type\":\"array\",\"items\":");
            write_pcf(items, ns, seen, out)?;
            out.push('}');
            Ok(())
        }
        "map" => {
            let values = map.get("values").ok_or_else(|| bad("map without values"))?;
            out.push_str("{\"type\":\"map\",\"values\":");
            write_pcf(values, ns, seen, out)?;
            out.push('}');
            Ok(())
        }
        // `{"type": "SomeNamedType"}` is a reference written in object form.
        reference => {
            push_str_literal(out, &full_name(reference, ns));
            Ok(())
        }
    }
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

/// Rabin fingerprint table, built at compile time.
const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// CRC-64-AVRO (the Avro spec's 64-bit Rabin fingerprint) of raw bytes.
pub fn rabin(bytes: &[u8]) -> u64 {
    let mut fp = EMPTY;
    for &b in bytes {
        fp = (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize];
    }
    fp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprints of `"int"` and `"string"` equal the values published with other Avro
    /// implementations (Ruby, Go test suites).
    #[test]
    fn rabin_matches_published_vectors() {
        assert_eq!(rabin(br#""int""#), 0x7275_d51a_3f39_5c8f);
        assert_eq!(rabin(br#""string""#), 0x8f01_4872_6345_03c7);
        assert_eq!(
            rabin(br#""int""#).to_le_bytes(),
            [0x8f, 0x5c, 0x39, 0x3f, 0x1a, 0xd5, 0x75, 0x72]
        );
    }

    /// Logical types reduce to their primitive, docs/defaults/namespaces are stripped, names are
    /// fully qualified (definitions and references) and attributes come in canonical order.
    #[test]
    fn pcf_follows_the_spec_rules() {
        let schema = r#"{
          "doc": "x", "fields": [
            {"type": {"type": "int", "logicalType": "date"}, "name": "d", "doc": "y"},
            {"name": "o", "type": ["null", {"type": "record", "name": "D", "namespace": "c",
               "fields": [{"name": "u", "type": "long", "order": "ascending"}]}], "default": null},
            {"name": "p", "type": ["null", "c.D"]},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "A"}},
            {"name": "f", "type": {"type": "fixed", "name": "F", "size": 4}},
            {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "E"}}}
          ],
          "type": "record", "name": "R", "namespace": "a.b"
        }"#;
        assert_eq!(
            parsing_canonical_form(schema).unwrap(),
            concat!(
                r#"{"name":"a.b.R","type":"record","fields":["#,
                r#"{"name":"d","type":"int"},"#,
                r#"{"name":"o","type":["null",{"name":"c.D","type":"record","fields":[{"name":"u","type":"long"}]}]},"#,
                r#"{"name":"p","type":["null","c.D"]},"#,
                r#"{"name":"e","type":{"name":"a.b.E","type":"enum","symbols":["A","B"]}},"#,
                r#"{"name":"f","type":{"name":"a.b.F","type":"fixed","size":4}},"#,
                r#"{"name":"m","type":{"type":"map","values":{"type":"array","items":"a.b.E"}}}]}"#
            )
        );
    }

    /// A primitive in object form and in string form have the same canonical form.
    #[test]
    fn primitive_object_form_is_reduced() {
        assert_eq!(
            parsing_canonical_form(r#"{"type":"string","logicalType":"uuid"}"#).unwrap(),
            r#""string""#
        );
        assert_eq!(parsing_canonical_form(r#""long""#).unwrap(), r#""long""#);
    }

    /// Malformed schemas are reported instead of producing a bogus form.
    #[test]
    fn malformed_schema_is_an_error() {
        assert!(parsing_canonical_form(r#"{"type":"record","name":"R"}"#).is_err());
        assert!(parsing_canonical_form("42").is_err());
        assert!(parsing_canonical_form("{").is_err());
    }
}
