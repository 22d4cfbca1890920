//! `schema-check [DIR]`: the CI gate for event contracts.
//!
//! Loads every `<DIR>/<record full name>/v<N>.avsc` (default `schemas/avro`, relative to the
//! current directory), prints each schema/version checked, and exits 1 listing every violation
//! of BACKWARD_TRANSITIVE compatibility and the repository rules (see `nivesh_events::compat`).
//! Exit 2 means the directory could not be loaded at all.

use std::process::ExitCode;

use nivesh_events::SchemaCatalog;
use nivesh_events::compat::check_backward_transitive;

fn main() -> ExitCode {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "schemas/avro".to_string());
    let catalog = match SchemaCatalog::from_dir(&dir) {
        Ok(catalog) => catalog,
        Err(e) => {
            eprintln!("schema-check: cannot load {dir}: {e}");
            return ExitCode::from(2);
        }
    };
    if catalog.is_empty() {
        eprintln!("schema-check: no schemas under {dir}");
        return ExitCode::from(2);
    }
    for s in catalog.iter() {
        let against = if s.version > 1 {
            format!("reads v1..v{}", s.version - 1)
        } else {
            "first version".to_string()
        };
        println!(
            "checked {} v{} ({against}) fingerprint {:016x}",
            s.full_name, s.version, s.fingerprint
        );
    }
    let problems = check_backward_transitive(&catalog);
    if problems.is_empty() {
        println!(
            "schema-check: {} schema versions, BACKWARD_TRANSITIVE ok",
            catalog.len()
        );
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("INCOMPATIBLE {p}");
        }
        eprintln!("schema-check: {} problem(s) in {dir}", problems.len());
        ExitCode::from(1)
    }
}
