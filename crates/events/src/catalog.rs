//! Every released version of every event schema, parsed once.
//!
//! Layout on disk: `schemas/avro/<record full name>/v<N>.avsc`. The build script embeds the files
//! (see `build.rs`), so services carry their contracts inside the binary; `from_dir` reads a
//! directory instead, for `schema-check` and for tests that stage a modified copy.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;

use apache_avro::Schema;

use crate::canonical::{canonical_form_of, rabin};
use crate::{Error, Result};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));
}

/// One schema file before parsing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaSource<'a> {
    /// Directory name: the record's full name.
    pub(crate) dir: &'a str,
    /// File name: `v<N>.avsc`.
    pub(crate) file: &'a str,
    pub(crate) json: &'a str,
}

/// One version of one event schema.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    /// The directory name, i.e. the full record name the file claims to define (the
    /// compatibility check verifies the record inside agrees).
    pub full_name: String,
    pub version: u32,
    pub schema: Schema,
    /// CRC-64-AVRO of `canonical_form`: the id in the single-object header.
    pub fingerprint: u64,
    /// The file as written (docs and defaults included): what gets registered in a Confluent
    /// registry, because defaults are needed for schema resolution and Parsing Canonical Form
    /// drops them.
    pub json: String,
    /// Parsing Canonical Form, per the Avro spec.
    pub canonical_form: String,
    /// Where it came from (`<dir>/<file>`), for messages.
    pub origin: String,
}

/// All versions of all schemas, indexed by name/version and by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct SchemaCatalog {
    by_name: BTreeMap<String, BTreeMap<u32, RegisteredSchema>>,
    by_fingerprint: HashMap<u64, (String, u32)>,
}

impl SchemaCatalog {
    /// The catalog compiled into this binary from `schemas/avro`.
    ///
    /// # Panics
    /// When an embedded file does not parse. That is a build of broken contracts, which the
    /// crate's tests and `schema-check` reject before anything ships, so failing loudly at the
    /// first use beats threading an impossible error through every codec call.
    pub fn embedded() -> &'static SchemaCatalog {
        static CATALOG: OnceLock<SchemaCatalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            SchemaCatalog::from_sources(embedded::EMBEDDED.iter().copied())
                .unwrap_or_else(|e| panic!("embedded schemas/avro is invalid: {e}"))
        })
    }

    /// Reads `<dir>/<full name>/v<N>.avsc`. Non-`.avsc` files (READMEs) are ignored; a `.avsc`
    /// outside a per-record directory or not named `v<N>.avsc` is an error rather than silently
    /// skipped, because a skipped contract is an unchecked one.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<SchemaCatalog> {
        let dir = dir.as_ref();
        let mut files: Vec<(String, String, String)> = Vec::new();
        for entry in read_dir_sorted(dir)? {
            let name = file_name(&entry)?;
            if entry.is_dir() {
                for file in read_dir_sorted(&entry)? {
                    let fname = file_name(&file)?;
                    if file.is_file() && fname.ends_with(".avsc") {
                        let json = std::fs::read_to_string(&file).map_err(|source| Error::Io {
                            path: file.display().to_string(),
                            source,
                        })?;
                        files.push((name.clone(), fname, json));
                    }
                }
            } else if name.ends_with(".avsc") {
                return Err(Error::Schema {
                    origin: entry.display().to_string(),
                    message: "schema files live in <record full name>/v<N>.avsc".into(),
                });
            }
        }
        SchemaCatalog::from_sources(files.iter().map(|(dir, file, json)| SchemaSource {
            dir,
            file,
            json,
        }))
    }

    pub(crate) fn from_sources<'a>(
        sources: impl IntoIterator<Item = SchemaSource<'a>>,
    ) -> Result<SchemaCatalog> {
        let mut catalog = SchemaCatalog::default();
        for src in sources {
            let registered = parse_source(src)?;
            catalog
                .by_fingerprint
                .entry(registered.fingerprint)
                // Versions that differ only in docs/defaults share a canonical form, hence a
                // fingerprint; the lowest keeps it (the bytes read the same under either).
                .and_modify(|(name, v)| {
                    if *name == registered.full_name && registered.version < *v {
                        *v = registered.version;
                    }
                })
                .or_insert_with(|| (registered.full_name.clone(), registered.version));
            let versions = catalog
                .by_name
                .entry(registered.full_name.clone())
                .or_default();
            if versions.contains_key(&registered.version) {
                return Err(Error::Schema {
                    origin: registered.origin,
                    message: format!("version {} defined twice", registered.version),
                });
            }
            versions.insert(registered.version, registered);
        }
        Ok(catalog)
    }

    /// The newest version of a schema.
    pub fn latest(&self, full_name: &str) -> Option<&RegisteredSchema> {
        self.by_name
            .get(full_name)
            .and_then(|v| v.values().next_back())
    }

    pub fn version(&self, full_name: &str, version: u32) -> Option<&RegisteredSchema> {
        self.by_name.get(full_name).and_then(|v| v.get(&version))
    }

    /// Looks up the writer schema of a single-object message by its CRC-64-AVRO fingerprint.
    pub fn by_fingerprint(&self, fingerprint: u64) -> Option<&RegisteredSchema> {
        let (name, version) = self.by_fingerprint.get(&fingerprint)?;
        self.version(name, *version)
    }

    /// Every schema, ordered by full name then version.
    pub fn iter(&self) -> impl Iterator<Item = &RegisteredSchema> {
        self.by_name.values().flat_map(|versions| versions.values())
    }

    /// The full names in the catalog, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// All versions of one schema, oldest first.
    pub fn versions(&self, full_name: &str) -> impl Iterator<Item = &RegisteredSchema> {
        self.by_name
            .get(full_name)
            .into_iter()
            .flat_map(|v| v.values())
    }

    pub fn len(&self) -> usize {
        self.by_name.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn parse_source(src: SchemaSource<'_>) -> Result<RegisteredSchema> {
    let origin = format!("{}/{}", src.dir, src.file);
    let err = |message: String| Error::Schema {
        origin: origin.clone(),
        message,
    };
    let version = parse_version(src.file)
        .ok_or_else(|| err("file name must be v<N>.avsc with N >= 1".into()))?;
    if src.dir.is_empty() {
        return Err(err("directory must be the record's full name".into()));
    }
    let value: serde_json::Value =
        serde_json::from_str(src.json).map_err(|e| err(format!("not JSON: {e}")))?;
    let schema = Schema::parse(&value).map_err(|e| err(format!("not an Avro schema: {e}")))?;
    let canonical_form = canonical_form_of(&value).map_err(|e| err(e.to_string()))?;
    Ok(RegisteredSchema {
        full_name: src.dir.to_string(),
        version,
        schema,
        fingerprint: rabin(canonical_form.as_bytes()),
        json: src.json.to_string(),
        canonical_form,
        origin,
    })
}

/// `v12.avsc` -> 12. Leading zeros are rejected so `v1` and `v01` cannot both exist.
fn parse_version(file: &str) -> Option<u32> {
    let digits = file.strip_prefix('v')?.strip_suffix(".avsc")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let io = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut paths = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io)?;
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Schema {
            origin: path.display().to_string(),
            message: "file name is not UTF-8".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only `v<N>.avsc` with a positive N without leading zeros is a version file.
    #[test]
    fn version_file_names() {
        assert_eq!(parse_version("v1.avsc"), Some(1));
        assert_eq!(parse_version("v12.avsc"), Some(12));
        for bad in [
            "v0.avsc", "v01.avsc", "v.avsc", "1.avsc", "v1.json", "v1a.avsc", "v-1.avsc",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    /// Every embedded schema is indexed by name, version and fingerprint.
    #[test]
    fn embedded_catalog_indexes_every_file() {
        let catalog = SchemaCatalog::embedded();
        assert!(catalog.len() >= 5, "catalog has {} schemas", catalog.len());
        for s in catalog.iter() {
            assert_eq!(
                catalog.version(&s.full_name, s.version).unwrap().origin,
                s.origin
            );
            assert_eq!(
                catalog.by_fingerprint(s.fingerprint).unwrap().origin,
                s.origin
            );
        }
        let raw = catalog.latest("nivesh.nav.RawNavReceived").unwrap();
        assert_eq!(
            raw.version,
            catalog
                .versions("nivesh.nav.RawNavReceived")
                .map(|s| s.version)
                .max()
                .unwrap()
        );
        assert!(catalog.latest("nivesh.nav.Nope").is_none());
    }

    /// A file that is not a schema names itself in the error.
    #[test]
    fn unparseable_file_is_reported_with_its_origin() {
        let sources = [SchemaSource {
            dir: "a.B",
            file: "v1.avsc",
            json: r#"{"type":"record","name":"B"}"#,
        }];
        let err = SchemaCatalog::from_sources(sources)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.B/v1.avsc"), "{err}");
    }
}
