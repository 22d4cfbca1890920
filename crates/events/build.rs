//! Embeds every `schemas/avro/<full name>/<file>.avsc` into the library so binaries need no schema
//! files at runtime. Only file discovery happens here; naming rules and parsing are enforced at
//! runtime by `SchemaCatalog::from_sources`, the same code `from_dir` (and so `schema-check`) runs,
//! so the two can never disagree about what a valid catalog is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../../schemas/avro");
    // A directory rerun-if-changed makes cargo rescan it recursively, so new versions/events
    // trigger a rebuild as well as edits.
    println!("cargo:rerun-if-changed={}", root.display());

    let mut entries = Vec::new();
    if root.is_dir() {
        for dir in sorted_entries(&root) {
            if !dir.is_dir() {
                continue;
            }
            println!("cargo:rerun-if-changed={}", dir.display());
            for file in sorted_entries(&dir) {
                if file.extension().is_some_and(|e| e == "avsc") {
                    println!("cargo:rerun-if-changed={}", file.display());
                    entries.push((dir.clone(), file));
                }
            }
        }
    }

    let mut out =
        String::from("pub(crate) static EMBEDDED: &[crate::catalog::SchemaSource<'static>] = &[\n");
    for (dir, file) in &entries {
        let dir_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 directory name");
        let file_name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 file name");
        let path = file.canonicalize().expect("schema file path");
        writeln!(
            out,
            "    crate::catalog::SchemaSource {{ dir: {dir_name:?}, file: {file_name:?}, json: include_str!({:?}) }},",
            path.to_str().expect("utf-8 path")
        )
        .expect("write to string");
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_schemas.rs");
    fs::write(dest, out).expect("write embedded_schemas.rs");
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read schema dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    paths.sort();
    paths
}
