//! Checks a parsed file against the committed JSON Schema and turns every violation into a
//! diagnostic at the right line and column, in words an operator understands.
//!
//! jsonschema reports a bad `[[deliver]]` item only as "not valid under any of the schemas
//! listed in 'oneOf'". Tagged tables (`to = "s3"`, `type = "sftp"`) are therefore re-checked
//! against the one variant their tag selects, so the message names the actual bad key.

use super::diagnostic::{Diagnostic, did_you_mean};
use super::secret::LITERAL_SECRET_MESSAGE;
use super::source::{Part, Seg, Source};
use super::units::{ByteSize, Retention};
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// Keys that select the variant of a tagged table.
const TAG_KEYS: [&str; 2] = ["to", "type"];

/// A compiled schema and its JSON, for walking to sub-schemas.
pub struct SchemaChecker {
    root: Value,
    validator: jsonschema::Validator,
}

impl SchemaChecker {
    /// Compiles a schema text (one of the committed schemas).
    pub fn new(schema_text: &str) -> Result<SchemaChecker, String> {
        let root: Value = serde_json::from_str(schema_text).map_err(|e| e.to_string())?;
        let validator = jsonschema::validator_for(&root).map_err(|e| e.to_string())?;
        Ok(SchemaChecker { root, validator })
    }

    /// Every schema violation of the document, as diagnostics.
    pub fn check(&self, source: &Source<'_>) -> Vec<Diagnostic> {
        let instance = source.to_json();
        let mut out = Vec::new();
        self.check_with(&self.validator, &instance, &[], source, &mut out);
        out.sort_by_key(|d| (d.line, d.column));
        out.dedup();
        out
    }

    fn check_with(
        &self,
        validator: &jsonschema::Validator,
        instance: &Value,
        prefix: &[Seg],
        source: &Source<'_>,
        out: &mut Vec<Diagnostic>,
    ) {
        for error in validator.iter_errors(instance) {
            let mut path = prefix.to_vec();
            path.extend(pointer_segments(error.instance_path().as_str()));
            let at = error.instance();
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let known = self.property_names(&path);
                    for key in unexpected {
                        let mut key_path = path.clone();
                        key_path.push(Seg::Key(key.clone()));
                        let mut d = source.error_at(
                            &key_path,
                            Part::Key,
                            format!("unknown key `{key}`{}", table_name(&path)),
                        );
                        d.help = did_you_mean(key, known.iter().map(String::as_str))
                            .or_else(|| Some(format!("known keys: {}", known.join(", "))));
                        out.push(d);
                    }
                }
                ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or_default();
                    out.push(source.error_at(
                        &path,
                        Part::Key,
                        format!("missing key `{name}`{}", table_name(&path)),
                    ));
                }
                ValidationErrorKind::Enum { options } => {
                    let choices: Vec<&str> = options
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let found = at
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| at.to_string());
                    let mut d = source.error_at(
                        &path,
                        Part::Value,
                        format!(
                            "`{found}` is not a valid {}: use one of {}",
                            key_name(&path),
                            quoted_list(&choices)
                        ),
                    );
                    d.help = did_you_mean(&found, choices.iter().copied());
                    out.push(d);
                }
                ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. }
                    if self.is_secret(&path) && at.is_string() =>
                {
                    out.push(source.error_at(&path, Part::Value, LITERAL_SECRET_MESSAGE));
                }
                ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
                    self.explain_union(
                        instance_at(instance, &path, prefix.len()),
                        &path,
                        source,
                        out,
                    );
                }
                ValidationErrorKind::Type { .. } if self.is_secret(&path) && at.is_string() => {
                    out.push(source.error_at(&path, Part::Value, LITERAL_SECRET_MESSAGE));
                }
                ValidationErrorKind::Pattern { .. } => {
                    out.push(source.error_at(
                        &path,
                        Part::Value,
                        value_message(&path, at, &error.to_string()),
                    ));
                }
                _ => {
                    out.push(source.error_at(
                        &path,
                        Part::Value,
                        format!("{}: {}", key_name(&path), error.masked()),
                    ));
                }
            }
        }
    }

    /// Explains a value that matched none of a union's variants: a tagged table is checked
    /// against the variant its tag names; a size or retention gets its parser's message.
    fn explain_union(
        &self,
        value: &Value,
        path: &[Seg],
        source: &Source<'_>,
        out: &mut Vec<Diagnostic>,
    ) {
        let Some(schema) = self.schema_at(path) else {
            out.push(source.error_at(path, Part::Value, format!("invalid {}", key_name(path))));
            return;
        };
        if let (Some(choices), Some(found)) = (self.string_choices(schema), value.as_str()) {
            let mut d = source.error_at(
                path,
                Part::Value,
                format!(
                    "`{found}` is not a valid {}: use one of {}",
                    key_name(path),
                    quoted_list(&choices)
                ),
            );
            d.help = did_you_mean(found, choices.iter().copied());
            out.push(d);
            return;
        }
        let variants = union_variants(self.resolve(schema));
        let tag = TAG_KEYS
            .iter()
            .find(|k| variants.iter().any(|v| self.variant_tag(v, k).is_some()));
        let tables: Vec<&Value> = variants
            .iter()
            .copied()
            .filter(|v| self.resolve(v).get("type").and_then(Value::as_str) == Some("object"))
            .collect();
        if let (None, [table], true) = (tag, &tables[..], value.is_object()) {
            // An optional table (`transition = { … }`): checked against its one schema, so
            // the message names the bad key inside it.
            self.check_variant(table, value, path, source, out);
            return;
        }
        let (Some(tag), Some(table)) = (tag, value.as_object()) else {
            out.push(source.error_at(
                path,
                Part::Value,
                value_message(path, value, "invalid value"),
            ));
            return;
        };
        let tags: Vec<&str> = variants
            .iter()
            .filter_map(|v| self.variant_tag(v, tag))
            .collect();
        let Some(given) = table.get(*tag).and_then(Value::as_str) else {
            out.push(source.error_at(
                path,
                Part::Value,
                format!(
                    "missing key `{tag}`{}: use one of {}",
                    table_name(path),
                    quoted_list(&tags)
                ),
            ));
            return;
        };
        let Some(variant) = variants
            .iter()
            .find(|v| self.variant_tag(v, tag) == Some(given))
        else {
            let mut tag_path = path.to_vec();
            tag_path.push(Seg::Key((*tag).to_owned()));
            let mut d = source.error_at(
                &tag_path,
                Part::Value,
                format!(
                    "unknown `{tag}` value `{given}`: use one of {}",
                    quoted_list(&tags)
                ),
            );
            d.help = did_you_mean(given, tags.iter().copied());
            out.push(d);
            return;
        };
        self.check_variant(variant, value, path, source, out);
    }

    /// Checks `value` against one variant of a union.
    fn check_variant(
        &self,
        variant: &Value,
        value: &Value,
        path: &[Seg],
        source: &Source<'_>,
        out: &mut Vec<Diagnostic>,
    ) {
        let mut sub = self.resolve(variant).clone();
        if let (Some(obj), Some(defs)) = (sub.as_object_mut(), self.root.get("$defs")) {
            obj.insert("$defs".into(), defs.clone());
        }
        match jsonschema::validator_for(&sub) {
            Ok(validator) => self.check_with(&validator, value, path, source, out),
            Err(e) => out.push(source.error_at(path, Part::Value, e.to_string())),
        }
    }

    /// The strings a value may take when its schema is a choice of constants (an enum, an
    /// optional enum); `None` for any other schema.
    fn string_choices<'s>(&'s self, schema: &'s Value) -> Option<Vec<&'s str>> {
        let schema = self.resolve(schema);
        if let Some(c) = schema.get("const").and_then(Value::as_str) {
            return Some(vec![c]);
        }
        if let Some(items) = schema.get("enum").and_then(Value::as_array) {
            return items.iter().map(Value::as_str).collect();
        }
        let variants = union_variants(schema);
        if variants.is_empty() {
            return None;
        }
        let mut choices = Vec::new();
        for v in variants {
            if self.resolve(v).get("type").and_then(Value::as_str) == Some("null") {
                continue;
            }
            choices.extend(self.string_choices(v)?);
        }
        (!choices.is_empty()).then_some(choices)
    }

    fn variant_tag<'s>(&'s self, variant: &'s Value, tag: &str) -> Option<&'s str> {
        let v = self.resolve(variant);
        v.pointer(&format!("/properties/{tag}/const"))
            .or_else(|| v.pointer(&format!("/properties/{tag}/enum/0")))
            .and_then(Value::as_str)
    }

    /// Follows `$ref: #/$defs/Name`.
    fn resolve<'s>(&'s self, mut schema: &'s Value) -> &'s Value {
        for _ in 0..8 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                    Some(target) => schema = target,
                    None => break,
                },
                None => break,
            }
        }
        schema
    }

    /// The schema describing the value at `path`, if the path is known to the schema.
    fn schema_at(&self, path: &[Seg]) -> Option<&Value> {
        let mut schema = &self.root;
        for seg in path {
            let s = self.resolve(schema);
            schema = match seg {
                Seg::Key(k) => self.property(s, k)?,
                Seg::Index(_) => s.get("items")?,
            };
        }
        Some(schema)
    }

    fn property<'s>(&'s self, schema: &'s Value, key: &str) -> Option<&'s Value> {
        if let Some(p) = schema.get("properties").and_then(|p| p.get(key)) {
            return Some(p);
        }
        if let Some(ap) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            return Some(ap);
        }
        union_variants(schema)
            .into_iter()
            .find_map(|v| self.property(self.resolve(v), key))
    }

    /// The keys a table at `path` accepts.
    fn property_names(&self, path: &[Seg]) -> Vec<String> {
        let Some(schema) = self.schema_at(path) else {
            return Vec::new();
        };
        let schema = self.resolve(schema);
        let mut names: Vec<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for v in union_variants(schema) {
            if let Some(p) = self.resolve(v).get("properties").and_then(Value::as_object) {
                names.extend(p.keys().cloned());
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn is_secret(&self, path: &[Seg]) -> bool {
        let Some(schema) = self.schema_at(path) else {
            return false;
        };
        let refers = |s: &Value| {
            s.get("$ref")
                .and_then(Value::as_str)
                .is_some_and(|r| r.ends_with("/SecretRef"))
        };
        refers(schema) || union_variants(self.resolve(schema)).into_iter().any(refers)
    }
}

fn union_variants(schema: &Value) -> Vec<&Value> {
    ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .collect()
}

fn instance_at<'v>(instance: &'v Value, path: &[Seg], skip: usize) -> &'v Value {
    let mut v = instance;
    for seg in &path[skip..] {
        v = match seg {
            Seg::Key(k) => v.get(k.as_str()).unwrap_or(&Value::Null),
            Seg::Index(i) => v.get(*i).unwrap_or(&Value::Null),
        };
    }
    v
}

/// Parses a JSON pointer (`/deliver/0/bucket`) into path segments.
fn pointer_segments(pointer: &str) -> Vec<Seg> {
    pointer
        .split('/')
        .skip(1)
        .map(|raw| {
            let key = raw.replace("~1", "/").replace("~0", "~");
            match key.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(key),
            }
        })
        .collect()
}

/// ` in [deliver]` / ` in [format]` for messages; empty at the top level.
fn table_name(path: &[Seg]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    if keys.is_empty() {
        String::new()
    } else {
        format!(" in [{}]", keys.join("."))
    }
}

fn key_name(path: &[Seg]) -> String {
    match path.last() {
        Some(Seg::Key(k)) => format!("`{k}`"),
        _ => "value".to_owned(),
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The parser's own message for a size or retention value, else a generic one.
fn value_message(path: &[Seg], value: &Value, fallback: &str) -> String {
    let key = match path.last() {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "",
    };
    let text = value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    let parsed = if key == "retention" || key == "after" {
        text.parse::<Retention>().err()
    } else if key.contains("size") || key.contains("bytes") {
        text.parse::<ByteSize>().err()
    } else {
        None
    };
    parsed.unwrap_or_else(|| format!("invalid {}: {fallback}", key_name(path)))
}
