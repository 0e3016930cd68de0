//! The JSON Schemas generated from the config types, committed under `schemas/`.
//!
//! Editors use them for completion (`#:schema ../schemas/export.schema.json`), and `validate`
//! checks every file against the committed copies; a test keeps the copies equal to what the
//! types generate, so the schema and serde cannot drift.

use super::daemon::DaemonConfig;
use super::export::ExportDef;

/// The committed export definition schema (what `validate` checks against).
pub const EXPORT_SCHEMA: &str = include_str!("../../schemas/export.schema.json");
/// The committed daemon config schema.
pub const DAEMON_SCHEMA: &str = include_str!("../../schemas/exportd.schema.json");

/// File name of the export schema under `schemas/`.
pub const EXPORT_SCHEMA_FILE: &str = "export.schema.json";
/// File name of the daemon schema under `schemas/`.
pub const DAEMON_SCHEMA_FILE: &str = "exportd.schema.json";

/// The export definition schema as the types generate it, pretty-printed with a final newline.
pub fn generate_export_schema() -> String {
    render(schemars::schema_for!(ExportDef))
}

/// The daemon config schema as the types generate it.
pub fn generate_daemon_schema() -> String {
    render(schemars::schema_for!(DaemonConfig))
}

fn render(schema: schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Rewrites a stale generated file and fails, so `cargo test` once more and a commit fix it.
    fn ensure_file_contents(path: &Path, expected: &str) {
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        if actual != expected {
            std::fs::write(path, expected).expect("write schema");
            panic!(
                "{} was stale and has been regenerated; run `cargo test` again and commit it",
                path.display()
            );
        }
    }

    #[test]
    fn committed_schemas_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        ensure_file_contents(&dir.join(EXPORT_SCHEMA_FILE), &generate_export_schema());
        ensure_file_contents(&dir.join(DAEMON_SCHEMA_FILE), &generate_daemon_schema());
    }

    /// Every property of both schemas has a description, since editors show it as the help.
    #[test]
    fn every_property_is_described() {
        fn walk(value: &serde_json::Value, at: &str, missing: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                        for (name, prop) in props {
                            let described = prop.get("description").is_some()
                                || prop.get("$ref").is_some() && prop.get("description").is_some()
                                || name == "to"
                                || name == "type";
                            if !described {
                                missing.push(format!("{at}.{name}"));
                            }
                        }
                    }
                    for (k, v) in map {
                        walk(v, &format!("{at}/{k}"), missing);
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(v, &format!("{at}/{i}"), missing);
                    }
                }
                _ => {}
            }
        }
        for schema in [generate_export_schema(), generate_daemon_schema()] {
            let mut missing = Vec::new();
            walk(&serde_json::from_str(&schema).unwrap(), "", &mut missing);
            assert!(
                missing.is_empty(),
                "properties without a description: {missing:?}"
            );
        }
    }
}
