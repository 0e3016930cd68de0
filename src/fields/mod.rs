//! Which columns an export writes: selection by pattern, renames, computed columns and PII
//! masks, decided once per run from the fields the store has in the window.
//!
//! The [`Selection`] is built before the first row streams (so the header is known) and then
//! applied to every row without looking anything up by name.

pub mod mask;

use crate::config::export::{FieldsDef, MaskKind};
use crate::filter::Expr;
use crate::value::Value;
use std::collections::HashMap;

pub use mask::Masker;

/// Problems building a selection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every column was excluded or dropped.
    #[error(
        "no column left to export: [fields] include/exclude/mask remove every field; loosen `exclude`"
    )]
    NoColumns,
    /// Two output columns would have the same name.
    #[error("column `{0}` would appear twice; rename one of them in [fields] rename")]
    Duplicate(String),
}

/// Where an output column's value comes from.
#[derive(Debug, Clone)]
pub enum ColumnSource {
    /// The field at this index of [`Selection::source_fields`].
    Field(usize),
    /// An expression over the source fields.
    Computed(Expr),
}

/// One output column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header / key name.
    pub name: String,
    /// Where the value comes from.
    pub source: ColumnSource,
    /// The mask applied before encoding.
    pub mask: Option<MaskKind>,
}

/// The columns of a run and the store fields they need.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Output columns, in order.
    pub columns: Vec<Column>,
    /// Fields to request from the store, in the order rows arrive.
    pub source_fields: Vec<String>,
    index: HashMap<String, usize>,
    /// Per column: its source field is used by no other column or computed expression, so the
    /// value can be moved out of the store row instead of cloned (the hot path of every run).
    movable: Vec<bool>,
}

/// `*` matches any run of characters, `?` one character; everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

impl Selection {
    /// Decides the columns. `available` lists the store's fields for the window, in order;
    /// exact names in `include` may also be aliases the store resolves (`lead_id`, `timestamp`).
    pub fn new(
        available: &[String],
        fields: &FieldsDef,
        computed: &[(String, Expr)],
    ) -> Result<Selection, Error> {
        // (output name, source field) pairs, before exclusions.
        let mut picked: Vec<(String, String)> = Vec::new();
        let source_of = |output: &str| {
            fields
                .rename
                .get(output)
                .cloned()
                .unwrap_or_else(|| output.to_owned())
        };
        match &fields.include {
            None => {
                for field in available {
                    let output = fields
                        .rename
                        .iter()
                        .find(|(_, source)| *source == field)
                        .map(|(output, _)| output.clone())
                        .unwrap_or_else(|| field.clone());
                    picked.push((output, field.clone()));
                }
            }
            Some(patterns) => {
                for pattern in patterns {
                    if is_glob(pattern) {
                        for field in available.iter().filter(|f| glob_match(pattern, f)) {
                            if !picked.iter().any(|(_, s)| s == field) {
                                picked.push((field.clone(), field.clone()));
                            }
                        }
                    } else if !picked.iter().any(|(o, _)| o == pattern) {
                        picked.push((pattern.clone(), source_of(pattern)));
                    }
                }
            }
        }
        let excluded = |output: &str, source: &str| {
            fields
                .exclude
                .iter()
                .any(|p| glob_match(p, output) || glob_match(p, source))
        };
        let mask_for = |output: &str, source: &str| {
            // An exact key wins over a pattern.
            fields
                .mask
                .get(output)
                .or_else(|| fields.mask.get(source))
                .or_else(|| {
                    fields
                        .mask
                        .iter()
                        .find(|(p, _)| {
                            is_glob(p) && (glob_match(p, output) || glob_match(p, source))
                        })
                        .map(|(_, m)| m)
                })
                .copied()
        };
        let mut selection = Selection {
            columns: Vec::new(),
            source_fields: Vec::new(),
            index: HashMap::new(),
            movable: Vec::new(),
        };
        for (output, source) in picked {
            if excluded(&output, &source) {
                continue;
            }
            let mask = mask_for(&output, &source);
            if mask == Some(MaskKind::Drop) {
                continue;
            }
            let i = selection.source_index(&source);
            selection.push(Column {
                name: output,
                source: ColumnSource::Field(i),
                mask,
            })?;
        }
        for (name, expr) in computed {
            if excluded(name, name) {
                continue;
            }
            for field in expr.fields() {
                selection.source_index(&field);
            }
            let mask = mask_for(name, name);
            if mask == Some(MaskKind::Drop) {
                continue;
            }
            selection.push(Column {
                name: name.clone(),
                source: ColumnSource::Computed(expr.clone()),
                mask,
            })?;
        }
        if selection.columns.is_empty() {
            return Err(Error::NoColumns);
        }
        let mut uses = vec![0usize; selection.source_fields.len()];
        for column in &selection.columns {
            match &column.source {
                ColumnSource::Field(i) => uses[*i] += 1,
                ColumnSource::Computed(expr) => {
                    for field in expr.fields() {
                        if let Some(&i) = selection.index.get(&field) {
                            uses[i] += 2;
                        }
                    }
                }
            }
        }
        selection.movable = selection
            .columns
            .iter()
            .map(|c| matches!(c.source, ColumnSource::Field(i) if uses[i] == 1))
            .collect();
        Ok(selection)
    }

    fn source_index(&mut self, field: &str) -> usize {
        if let Some(&i) = self.index.get(field) {
            return i;
        }
        self.source_fields.push(field.to_owned());
        self.index
            .insert(field.to_owned(), self.source_fields.len() - 1);
        self.source_fields.len() - 1
    }

    fn push(&mut self, column: Column) -> Result<(), Error> {
        if self.columns.iter().any(|c| c.name == column.name) {
            return Err(Error::Duplicate(column.name));
        }
        self.columns.push(column);
        Ok(())
    }

    /// Output column names.
    pub fn header(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Builds one output row from a store row (aligned with `source_fields`). Values used by
    /// one column only are moved out of `source`, so the store row is spent afterwards.
    pub fn project(&self, source: &mut [Value], masker: &Masker, out: &mut Vec<Value>) {
        out.clear();
        // Computed columns first, while every source value is still in place.
        for column in &self.columns {
            out.push(match &column.source {
                ColumnSource::Computed(expr) => expr.eval(&|name: &str| {
                    self.index
                        .get(name)
                        .and_then(|&i| source.get(i).cloned())
                        .unwrap_or(Value::Null)
                }),
                ColumnSource::Field(_) => Value::Null,
            });
        }
        for (i, column) in self.columns.iter().enumerate() {
            if let ColumnSource::Field(field) = column.source {
                out[i] = match source.get_mut(field) {
                    Some(v) if self.movable[i] => std::mem::take(v),
                    Some(v) => v.clone(),
                    None => Value::Null,
                };
            }
            if let Some(kind) = column.mask {
                let value = std::mem::take(&mut out[i]);
                out[i] = masker.apply(kind, value);
            }
        }
    }

    /// Columns that carry personal data unmasked: a column whose name or source field looks
    /// personal (a rename does not hide `email`), or a computed column over such a field, with
    /// no mask. Decides what the `analyst` role may download, and the lint.
    pub fn unmasked_personal_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.mask.is_none())
            .filter(|c| {
                looks_personal(&c.name)
                    || match &c.source {
                        ColumnSource::Field(i) => looks_personal(&self.source_fields[*i]),
                        ColumnSource::Computed(expr) => {
                            expr.fields().iter().any(|f| looks_personal(f))
                        }
                    }
            })
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Personal fields of the documented lead schema (and the demo data), the universe against
/// which a definition's selection is judged without asking the store.
pub const PERSONAL_FIELDS: &[&str] = &[
    "email",
    "first_name",
    "last_name",
    "full_name",
    "phone_1",
    "phone_2",
    "phone",
    "ssn",
    "address",
    "address_1",
    "address_2",
    "ip_address",
    "dob",
    "lead.email",
];

/// Columns of `fields` that would carry personal data unmasked, decided from the definition
/// alone: its selection applied to every personal field of the schema plus every field the
/// definition names itself.
pub fn unmasked_personal_fields(fields: &FieldsDef, computed: &[(String, Expr)]) -> Vec<String> {
    let mut universe: Vec<String> = PERSONAL_FIELDS.iter().map(|f| f.to_string()).collect();
    let named = fields
        .include
        .iter()
        .flatten()
        .chain(fields.rename.values())
        .chain(fields.mask.keys())
        .filter(|n| !n.contains('*') && !n.contains('?'))
        .cloned()
        .chain(computed.iter().flat_map(|(_, e)| e.fields()));
    for name in named {
        if !universe.contains(&name) {
            universe.push(name);
        }
    }
    match Selection::new(&universe, fields, computed) {
        Ok(selection) => selection
            .unmasked_personal_columns()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        // Nothing left to export, so nothing personal either.
        Err(_) => Vec::new(),
    }
}

/// Field names that usually hold personal data: the lead schema's own (`email`, `phone_1`,
/// `ssn`, `first_name`, `address_1`, `ip_address`, `dob`) and the usual variants of other
/// stores (`customer_name`, `client_ip`, `mobile_phone`).
///
/// `name` and `ip` count only as whole words of the field name (split at `_`, `-`, `.`), and
/// `name` only alone or after a word that makes it a person's (`first_name`, `contact_name`):
/// `campaign_name` and `recipient` are not personal, `contact_name` and `client_ip` are.
pub fn looks_personal(name: &str) -> bool {
    const MARKERS: &[&str] = &[
        "email",
        "phone",
        "ssn",
        "firstname",
        "lastname",
        "fullname",
        "surname",
        "address",
        "dob",
        "birth",
    ];
    /// Words that make a following `name` a person's name.
    const PERSON: &[&str] = &[
        "first",
        "last",
        "full",
        "middle",
        "given",
        "family",
        "contact",
        "customer",
        "person",
        "lead",
        "owner",
        "user",
        "member",
        "applicant",
        "client",
        "patient",
    ];
    let lower = name.to_ascii_lowercase();
    if lower == "lead.email" {
        return true;
    }
    // Parsed components such as `email.valid` or `email.domain` are not the personal value.
    if lower.contains('.') && !lower.starts_with("lead.") {
        return false;
    }
    let base = lower.strip_prefix("lead.").unwrap_or(&lower);
    let words: Vec<&str> = base.split(['_', '-']).filter(|w| !w.is_empty()).collect();
    let joined = words.concat();
    MARKERS.iter().any(|m| joined.contains(m))
        || words.contains(&"ip")
        || words.iter().enumerate().any(|(i, w)| {
            *w == "name" && (words.len() == 1 || i > 0 && PERSON.contains(&words[i - 1]))
        })
}

/// The mask an operator most likely wants for a personal column, for messages.
pub fn suggested_mask(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.contains("email") {
        "email"
    } else if lower.contains("ssn") {
        "ssn"
    } else if lower.contains("phone") {
        "last4"
    } else if lower.contains("address") && !lower.split(['_', '-']).any(|w| w == "ip") {
        "city_state"
    } else if lower.contains("name") {
        "initials"
    } else {
        "hash"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_expression;
    use rust_decimal::Decimal;

    fn available() -> Vec<String> {
        [
            "id",
            "created_at",
            "revenue",
            "cost",
            "email",
            "email.valid",
            "phone_1",
            "state",
            "ssn",
            "user_agent",
            "ip_address",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn seed_csv_columns_come_out_in_order() {
        let fields: FieldsDef = toml::from_str(
            r#"
            include = ["lead_id", "timestamp", "email", "email.valid", "phone", "state", "revenue"]
            rename = { phone = "phone_1" }
            computed = { margin = "revenue - cost" }
            "#,
        )
        .unwrap();
        let computed = vec![(
            "margin".to_string(),
            parse_expression("revenue - cost").unwrap(),
        )];
        let s = Selection::new(&available(), &fields, &computed).unwrap();
        assert_eq!(
            s.header().join(","),
            "lead_id,timestamp,email,email.valid,phone,state,revenue,margin"
        );
        assert_eq!(
            s.source_fields,
            [
                "lead_id",
                "timestamp",
                "email",
                "email.valid",
                "phone_1",
                "state",
                "revenue",
                "cost"
            ]
        );
        let row = vec![
            Value::Text("L1".into()),
            Value::Null,
            Value::Text("a@b.c".into()),
            Value::Bool(true),
            Value::Text("555-123-4567".into()),
            Value::Text("CA".into()),
            Value::Decimal(Decimal::new(4500, 2)),
            Value::Decimal(Decimal::new(1250, 2)),
        ];
        let mut out = Vec::new();
        let mut row = row;
        s.project(&mut row, &Masker::new(None), &mut out);
        assert_eq!(out[7].to_string(), "32.50");
    }

    #[test]
    fn patterns_exclusions_and_drops() {
        let fields: FieldsDef = toml::from_str(
            r#"
            include = ["*"]
            exclude = ["user_agent", "ip_*"]
            mask = { ssn = "drop", email = "email" }
            "#,
        )
        .unwrap();
        let s = Selection::new(&available(), &fields, &[]).unwrap();
        assert_eq!(
            s.header().join(","),
            "id,created_at,revenue,cost,email,email.valid,phone_1,state"
        );
        assert_eq!(s.unmasked_personal_columns(), ["phone_1"]);
        let only_valid: FieldsDef = toml::from_str(r#"include = ["*.valid"]"#).unwrap();
        let s = Selection::new(&available(), &only_valid, &[]).unwrap();
        assert_eq!(s.header(), ["email.valid"]);
        let nothing: FieldsDef = toml::from_str(r#"exclude = ["*"]"#).unwrap();
        assert!(matches!(
            Selection::new(&available(), &nothing, &[]),
            Err(Error::NoColumns)
        ));
    }

    #[test]
    fn personal_names_by_word() {
        for personal in [
            "email",
            "lead.email",
            "work_email",
            "phone_1",
            "mobile-phone",
            "ssn",
            "first_name",
            "FirstName",
            "surname",
            "name",
            "contact_name",
            "customer_name",
            "address_1",
            "ip_address",
            "ip",
            "client_ip",
            "dob",
            "date_of_birth",
        ] {
            assert!(looks_personal(personal), "{personal} looks personal");
        }
        for other in [
            "email.valid",
            "phone_1.area",
            "campaign_name",
            "source_name",
            "recipient",
            "zip",
            "shipping_cost",
            "state",
            "lead_id",
        ] {
            assert!(!looks_personal(other), "{other} does not look personal");
        }
        assert_eq!(suggested_mask("work_email"), "email");
        assert_eq!(suggested_mask("phone_1"), "last4");
        assert_eq!(suggested_mask("address_1"), "city_state");
        assert_eq!(suggested_mask("ip_address"), "hash");
        assert_eq!(suggested_mask("last_name"), "initials");
    }

    #[test]
    fn globs() {
        assert!(glob_match("lead.*", "lead.email"));
        assert!(glob_match("*.valid", "email.valid"));
        assert!(glob_match("*pii*", "x_pii_y"));
        assert!(!glob_match("lead.*", "leads"));
        assert!(glob_match("phone_?", "phone_1"));
    }
}
