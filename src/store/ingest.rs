//! NDJSON records for `exportd ingest`: one lead or event per line, parsed into
//! [`NewLead`] / [`NewEvent`], and a [`Loader`] that inserts them in batches.
//!
//! Parsing is pure (a line in, a record or a message out) so that the command can validate a
//! whole file before writing anything (`--strict`) and so that every rule is unit-tested here.
//! Messages say what is wrong and what to do; the command prefixes them with `FILE:LINE:`.
//!
//! # Rules
//! - Leads: `id` (string, required), `created_at` (required; alias `timestamp`), `updated_at`
//!   (default `created_at`), `source`, `flow`, `outcome`, `reason` (strings), `revenue`, `cost`
//!   (money). Every other key is a submitted field and goes into `doc`, flattened to dotted
//!   keys (`{"email": {"valid": true}}` → `email.valid`); an object under `doc` is merged
//!   into `doc` as is, so rows exported with a `doc` column load back.
//! - Events: `id`, `type` and `timestamp` (required), `lead_id`, `outcome`, `reason`,
//!   `recipient` (alias `buyer`), `price`, `duration_ms`, `metadata` and `lead` (objects,
//!   flattened). Flat `metadata.KEY` / `lead.KEY` keys, as exports write them, join those
//!   objects. Any other key is an error: events have a fixed shape, and a typo there would
//!   otherwise vanish silently.
//! - Times: RFC 3339 (`2024-05-01T12:00:00Z`, any offset) or `YYYY-MM-DD HH:MM:SS[.fff]`, UTC.
//! - Money: a JSON number or a decimal string, taken from its text and never through `f64`,
//!   so `45.10` stays `45.10`. At most four decimal places (the store's 1/10000 units).

use super::doc::{skip_whitespace, string_end, value_end};
use super::sqlite::MONEY_SCALE;
use super::{Error, LeadStore, NewEvent, NewLead, flatten};
use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

/// Which table a file loads into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One lead per line.
    Leads,
    /// One event per line.
    Events,
}

/// One parsed line.
#[derive(Debug, Clone)]
pub enum Record {
    /// A lead.
    Lead(NewLead),
    /// An event.
    Event(NewEvent),
}

/// Parses one line of a `kind` file; `Ok(None)` for a blank line, which is skipped.
pub fn parse_line(kind: Kind, line: &str) -> Result<Option<Record>, String> {
    let line = line
        .trim_start_matches('\u{feff}')
        .trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Leads => Record::Lead(parse_lead(line)?),
        Kind::Events => Record::Event(parse_event(line)?),
    }))
}

/// Parses one NDJSON lead (see the module docs for the rules).
pub fn parse_lead(line: &str) -> Result<NewLead, String> {
    let object = parse_object(line, "lead")?;
    let mut id = None;
    let mut created_at = None;
    let mut timestamp = None;
    let mut updated_at = None;
    let mut lead = NewLead {
        id: String::new(),
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
        source: None,
        flow: None,
        outcome: None,
        reason: None,
        revenue: None,
        cost: None,
        doc: Map::new(),
    };
    let mut rest = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "id" => id = Some(required_string("id", &value)?),
            "created_at" => created_at = Some(time("created_at", &value)?),
            "timestamp" => timestamp = Some(time("timestamp", &value)?),
            "updated_at" => updated_at = optional_time("updated_at", &value)?,
            "source" => lead.source = optional_string("source", &value)?,
            "flow" => lead.flow = optional_string("flow", &value)?,
            "outcome" => lead.outcome = optional_string("outcome", &value)?,
            "reason" => lead.reason = optional_string("reason", &value)?,
            "revenue" => lead.revenue = money("revenue", &value, line)?,
            "cost" => lead.cost = money("cost", &value, line)?,
            "doc" if value.is_object() => {
                let Json::Object(doc) = value else {
                    unreachable!()
                };
                lead.doc.extend(flatten(doc));
            }
            _ => {
                rest.insert(key, value);
            }
        }
    }
    lead.id = id.ok_or("missing `id`: every lead needs a unique string id")?;
    lead.created_at = match (created_at, timestamp) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(_), Some(_)) => {
            return Err("both `created_at` and its alias `timestamp` are given: keep one".into());
        }
        (None, None) => {
            return Err(
                "missing `created_at`: give the lead's creation time, e.g. \"2024-05-01T12:00:00Z\""
                    .into(),
            );
        }
    };
    lead.updated_at = updated_at.unwrap_or(lead.created_at);
    lead.doc.extend(flatten(rest));
    Ok(lead)
}

/// Parses one NDJSON event (see the module docs for the rules).
pub fn parse_event(line: &str) -> Result<NewEvent, String> {
    let object = parse_object(line, "event")?;
    let mut id = None;
    let mut kind = None;
    let mut timestamp = None;
    let mut recipient_key: Option<&'static str> = None;
    let mut event = NewEvent {
        id: String::new(),
        kind: String::new(),
        timestamp: DateTime::<Utc>::UNIX_EPOCH,
        lead_id: None,
        outcome: None,
        reason: None,
        recipient: None,
        price: None,
        duration_ms: None,
        metadata: Map::new(),
        lead: Map::new(),
    };
    for (key, value) in object {
        match key.as_str() {
            "id" => id = Some(required_string("id", &value)?),
            "type" => kind = Some(required_string("type", &value)?),
            "timestamp" => timestamp = Some(time("timestamp", &value)?),
            "lead_id" => event.lead_id = optional_string("lead_id", &value)?,
            "outcome" => event.outcome = optional_string("outcome", &value)?,
            "reason" => event.reason = optional_string("reason", &value)?,
            "recipient" | "buyer" => {
                let this = if key == "buyer" { "buyer" } else { "recipient" };
                if let Some(other) = recipient_key.filter(|k| *k != this) {
                    return Err(format!(
                        "both `{other}` and `{this}` are given (`buyer` is an alias of `recipient`): keep one"
                    ));
                }
                recipient_key = Some(this);
                event.recipient = optional_string(this, &value)?;
            }
            "price" => event.price = money("price", &value, line)?,
            "duration_ms" => event.duration_ms = duration_ms(&value)?,
            "metadata" => event.metadata.extend(object_field("metadata", value)?),
            "lead" => event.lead.extend(object_field("lead", value)?),
            other => {
                if let Some(sub) = other.strip_prefix("metadata.") {
                    event
                        .metadata
                        .extend(flatten(Map::from_iter([(sub.to_owned(), value)])));
                } else if let Some(sub) = other.strip_prefix("lead.") {
                    event
                        .lead
                        .extend(flatten(Map::from_iter([(sub.to_owned(), value)])));
                } else {
                    return Err(format!(
                        "unknown key `{other}`: events take id, type, timestamp, lead_id, outcome, \
                         reason, recipient (or buyer), price, duration_ms, metadata and lead; \
                         put extra data under `metadata`"
                    ));
                }
            }
        }
    }
    event.id = id.ok_or("missing `id`: every event needs a unique string id")?;
    event.kind = kind.ok_or(
        "missing `type`: say what happened, e.g. \"source.accepted\" or \"recipient.delivered\"",
    )?;
    event.timestamp = timestamp
        .ok_or("missing `timestamp`: give the time of the event, e.g. \"2024-05-01T12:00:00Z\"")?;
    Ok(event)
}

/// Inserts parsed records in batches, one transaction per batch.
///
/// Batching is what makes a load fast (one commit per record would be 100× slower with SQLite)
/// while keeping memory bounded whatever the size of the file.
pub struct Loader<'s> {
    store: &'s mut dyn LeadStore,
    batch: usize,
    leads: Vec<NewLead>,
    events: Vec<NewEvent>,
    loaded: u64,
}

impl<'s> Loader<'s> {
    /// A loader committing every `batch` records (at least 1).
    pub fn new(store: &'s mut dyn LeadStore, batch: usize) -> Loader<'s> {
        Loader {
            store,
            batch: batch.max(1),
            leads: Vec::new(),
            events: Vec::new(),
            loaded: 0,
        }
    }

    /// Queues a record, inserting the batch when it is full.
    pub fn push(&mut self, record: Record) -> Result<(), Error> {
        match record {
            Record::Lead(lead) => self.leads.push(lead),
            Record::Event(event) => self.events.push(event),
        }
        if self.leads.len() + self.events.len() >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Inserts what is queued.
    pub fn flush(&mut self) -> Result<(), Error> {
        if !self.leads.is_empty() {
            self.store.insert_leads(&self.leads)?;
            self.loaded += self.leads.len() as u64;
            self.leads.clear();
        }
        if !self.events.is_empty() {
            self.store.insert_events(&self.events)?;
            self.loaded += self.events.len() as u64;
            self.events.clear();
        }
        Ok(())
    }

    /// Records committed so far.
    pub fn loaded(&self) -> u64 {
        self.loaded
    }

    /// Inserts the rest; returns the number of records committed.
    pub fn finish(mut self) -> Result<u64, Error> {
        self.flush()?;
        Ok(self.loaded)
    }
}

/// The line as a JSON object, or a message naming the column of the syntax error.
fn parse_object(line: &str, what: &str) -> Result<Map<String, Json>, String> {
    match serde_json::from_str::<Json>(line) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "expected one {what} as a JSON object on this line, found {}",
            type_name(&other)
        )),
        Err(e) => {
            // serde_json appends "at line 1 column N"; on a single line only the column helps.
            let text = e.to_string();
            let message = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(m, _)| m);
            Err(format!(
                "invalid JSON at column {}: {message}; each line must hold exactly one {what} object",
                e.column()
            ))
        }
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn required_string(key: &str, v: &Json) -> Result<String, String> {
    match v {
        Json::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Json::String(_) => Err(format!("`{key}` is empty: give a non-empty string")),
        other => Err(format!(
            "`{key}` must be a string, not {}{}",
            type_name(other),
            if other.is_number() { ": quote it" } else { "" }
        )),
    }
}

fn optional_string(key: &str, v: &Json) -> Result<Option<String>, String> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        other => Err(format!(
            "`{key}` must be a string or null, not {}",
            type_name(other)
        )),
    }
}

fn optional_time(key: &str, v: &Json) -> Result<Option<DateTime<Utc>>, String> {
    if v.is_null() {
        Ok(None)
    } else {
        time(key, v).map(Some)
    }
}

/// An RFC 3339 time (any offset, converted to UTC) or `YYYY-MM-DD HH:MM:SS[.fff]` in UTC.
fn time(key: &str, v: &Json) -> Result<DateTime<Utc>, String> {
    const HELP: &str =
        "use RFC 3339 like \"2024-05-01T12:00:00Z\" or \"2024-05-01 12:00:00\" (UTC)";
    let Json::String(s) = v else {
        return Err(format!(
            "`{key}` must be a time string, not {}: {HELP}",
            type_name(v)
        ));
    };
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| format!("`{key}` is \"{s}\", not a time: {HELP}"))
}

/// Money from a JSON number or string, exact: the number's own text is parsed, never an `f64`.
fn money(key: &str, v: &Json, line: &str) -> Result<Option<Decimal>, String> {
    let text = match v {
        Json::Null => return Ok(None),
        // serde_json (without `arbitrary_precision`) keeps numbers as f64, so read the digits
        // back from the line itself.
        Json::Number(n) => raw_value(line, key).map_or_else(|| n.to_string(), str::to_owned),
        Json::String(s) => s.trim().to_owned(),
        other => {
            return Err(format!(
                "`{key}` must be a number or a decimal string like \"45.10\", not {}",
                type_name(other)
            ));
        }
    };
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text)
    } else {
        text.parse::<Decimal>()
    };
    let d = parsed.map_err(|_| {
        if text.parse::<f64>().is_ok_and(f64::is_finite) {
            return format!("`{key}` {text} is too large for the store");
        }
        format!("`{key}` is \"{text}\", not an amount: write a decimal number like 45.10")
    })?;
    if d.normalize().scale() > MONEY_SCALE {
        return Err(format!(
            "`{key}` {text} has more than {MONEY_SCALE} decimal places: the store keeps money \
             to 1/10000, round it"
        ));
    }
    let units = d.checked_mul(Decimal::from(10_i64.pow(MONEY_SCALE)));
    if units.is_none_or(|u| i64::try_from(u.trunc()).is_err()) {
        return Err(format!("`{key}` {text} is too large for the store"));
    }
    Ok(Some(d))
}

fn duration_ms(v: &Json) -> Result<Option<i64>, String> {
    match v {
        Json::Null => Ok(None),
        Json::Number(n) => match n.as_i64() {
            Some(ms) if ms >= 0 => Ok(Some(ms)),
            _ => Err(format!(
                "`duration_ms` is {n}: give a whole, non-negative number of milliseconds"
            )),
        },
        other => Err(format!(
            "`duration_ms` must be a whole number of milliseconds, not {}",
            type_name(other)
        )),
    }
}

fn object_field(key: &str, v: Json) -> Result<Map<String, Json>, String> {
    match v {
        Json::Null => Ok(Map::new()),
        Json::Object(m) => Ok(flatten(m)),
        other => Err(format!(
            "`{key}` must be an object of fields, not {}",
            type_name(&other)
        )),
    }
}

/// The source text of the top-level value under `key` (the last one, as serde_json keeps the
/// last of duplicate keys), in a line already known to be a valid JSON object.
fn raw_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let b = line.as_bytes();
    let mut i = skip_whitespace(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    loop {
        i = skip_whitespace(b, i);
        if b.get(i) != Some(&b'"') {
            return found;
        }
        let (key_end, escaped) = string_end(b, i)?;
        let matches = if escaped {
            serde_json::from_str::<String>(&line[i..=key_end]).is_ok_and(|k| k == key)
        } else {
            &line[i + 1..key_end] == key
        };
        i = skip_whitespace(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return found;
        }
        i = skip_whitespace(b, i + 1);
        let value_start = i;
        i = value_end(b, i)?;
        if matches {
            found = Some(&line[value_start..i]);
        }
        i = skip_whitespace(b, i);
        if b.get(i) != Some(&b',') {
            return found;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Query, SqliteStore, Table};
    use crate::value::Value;

    fn lead(line: &str) -> NewLead {
        parse_lead(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn lead_err(line: &str) -> String {
        parse_lead(line).expect_err(line)
    }

    #[test]
    fn lead_money_is_exact() {
        let l =
            lead(r#"{"id":"a","created_at":"2024-05-01T12:00:00Z","revenue":45.10,"cost":"0.1"}"#);
        assert_eq!(l.revenue.unwrap().to_string(), "45.10");
        assert_eq!(l.cost.unwrap().to_string(), "0.1");
        // More digits than an f64 holds survive too.
        let l =
            lead(r#"{"id":"a","created_at":"2024-05-01T12:00:00Z","revenue":12345678901234.5678}"#);
        assert_eq!(l.revenue.unwrap().to_string(), "12345678901234.5678");
        let l =
            lead(r#"{"id":"a","created_at":"2024-05-01T12:00:00Z","revenue":1.5e1,"cost":null}"#);
        assert_eq!(l.revenue.unwrap(), Decimal::new(15, 0));
        assert_eq!(l.cost, None);
    }

    #[test]
    fn lead_money_errors() {
        let base = r#""id":"a","created_at":"2024-05-01T12:00:00Z""#;
        let e = lead_err(&format!(r#"{{{base},"revenue":1.23456}}"#));
        assert!(e.contains("more than 4 decimal places"), "{e}");
        let e = lead_err(&format!(r#"{{{base},"cost":"ten dollars"}}"#));
        assert!(e.contains("not an amount"), "{e}");
        let e = lead_err(&format!(r#"{{{base},"cost":true}}"#));
        assert!(e.contains("must be a number or a decimal string"), "{e}");
        let e = lead_err(&format!(r#"{{{base},"cost":1e30}}"#));
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn lead_fields_go_to_doc_flattened() {
        let l = lead(
            r#"{"id":"L1","timestamp":"2024-05-01 12:00:00","source":"google-ads",
                "email":"a@b.com","email.valid":true,"appended":{"income":52000,"homeowner":false},
                "phone_1":{"area":"415"},"doc":{"state":"CA"}}"#
                .replace('\n', "")
                .as_str(),
        );
        assert_eq!(l.id, "L1");
        assert_eq!(l.created_at, l.updated_at);
        assert_eq!(l.created_at.to_rfc3339(), "2024-05-01T12:00:00+00:00");
        assert_eq!(l.source.as_deref(), Some("google-ads"));
        let keys: Vec<&str> = l.doc.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "state",
                "email",
                "email.valid",
                "appended.income",
                "appended.homeowner",
                "phone_1.area"
            ]
        );
        assert_eq!(l.doc["appended.income"], 52000);
    }

    #[test]
    fn lead_times() {
        let l = lead(
            r#"{"id":"a","created_at":"2024-05-01T14:00:00+02:00","updated_at":"2024-05-02 00:00:00.250"}"#,
        );
        assert_eq!(l.created_at.to_rfc3339(), "2024-05-01T12:00:00+00:00");
        assert_eq!(l.updated_at.timestamp_millis() % 1000, 250);
        let e = lead_err(r#"{"id":"a","created_at":"yesterday"}"#);
        assert!(
            e.contains("`created_at` is \"yesterday\", not a time") && e.contains("RFC 3339"),
            "{e}"
        );
        let e = lead_err(r#"{"id":"a","created_at":1714564800}"#);
        assert!(e.contains("must be a time string, not a number"), "{e}");
        let e = lead_err(r#"{"id":"a"}"#);
        assert!(e.starts_with("missing `created_at`"), "{e}");
        let e = lead_err(
            r#"{"id":"a","created_at":"2024-05-01 12:00:00","timestamp":"2024-05-01 12:00:00"}"#,
        );
        assert!(e.contains("keep one"), "{e}");
    }

    #[test]
    fn lead_missing_or_bad_id() {
        assert!(lead_err(r#"{"created_at":"2024-05-01 12:00:00"}"#).starts_with("missing `id`"));
        let e = lead_err(r#"{"id":17,"created_at":"2024-05-01 12:00:00"}"#);
        assert_eq!(e, "`id` must be a string, not a number: quote it");
        assert!(lead_err(r#"{"id":" ","created_at":"2024-05-01 12:00:00"}"#).contains("empty"));
    }

    #[test]
    fn bad_json_names_the_column() {
        let e = lead_err(r#"{"id":"a",,}"#);
        assert!(e.starts_with("invalid JSON at column 11:"), "{e}");
        assert!(!e.contains("line 1"), "{e}");
        assert_eq!(
            lead_err("[1,2]"),
            "expected one lead as a JSON object on this line, found an array"
        );
    }

    #[test]
    fn sql_injection_is_just_data() {
        let evil = r#"x'); DROP TABLE leads; --"#;
        let line = serde_json::json!({
            "id": evil, "created_at": "2024-05-01T12:00:00Z", "source": evil, evil: evil,
        })
        .to_string();
        let l = lead(&line);
        assert_eq!(l.id, evil);
        assert_eq!(l.doc[evil], evil);

        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("leads.db")).unwrap();
        let mut loader = Loader::new(&mut store, 10);
        loader.push(Record::Lead(l)).unwrap();
        assert_eq!(loader.finish().unwrap(), 1);
        let query = Query {
            table: Table::Leads,
            time_field: Default::default(),
            start: None,
            end: "2025-01-01T00:00:00Z".parse().unwrap(),
            filter: None,
            fields: vec!["id".into(), "source".into()],
        };
        let mut rows = Vec::new();
        store
            .stream(&query, &mut |r| {
                rows.push(r.to_vec());
                Ok(true)
            })
            .unwrap();
        assert_eq!(rows, [[Value::Text(evil.into()), Value::Text(evil.into())]]);
    }

    #[test]
    fn events_parse_with_aliases_and_flat_keys() {
        let e = parse_event(
            r#"{"id":"e1","type":"recipient.delivered","timestamp":"2024-05-01T12:00:00.123Z",
               "lead_id":"L1","buyer":"buyer-alpha","price":"12.50","duration_ms":240,
               "metadata":{"http_status":200,"retry":{"count":1}},"metadata.attempt":1,
               "lead":{"email":"a@b.com"},"lead.state":"CA"}"#
                .replace('\n', "")
                .as_str(),
        )
        .unwrap();
        assert_eq!(e.kind, "recipient.delivered");
        assert_eq!(e.recipient.as_deref(), Some("buyer-alpha"));
        assert_eq!(e.price.unwrap().to_string(), "12.50");
        assert_eq!(e.duration_ms, Some(240));
        assert_eq!(e.timestamp.timestamp_subsec_millis(), 123);
        let meta: Vec<&str> = e.metadata.keys().map(String::as_str).collect();
        assert_eq!(meta, ["http_status", "retry.count", "attempt"]);
        let lead: Vec<&str> = e.lead.keys().map(String::as_str).collect();
        assert_eq!(lead, ["email", "state"]);
    }

    #[test]
    fn event_errors() {
        let base = r#""id":"e1","type":"source.accepted","timestamp":"2024-05-01T12:00:00Z""#;
        let err = |extra: &str| parse_event(&format!("{{{base}{extra}}}")).unwrap_err();
        assert!(err(r#","colour":"red""#).starts_with("unknown key `colour`"));
        assert!(err(r#","duration_ms":-1"#).contains("non-negative"));
        assert!(err(r#","duration_ms":1.5"#).contains("whole"));
        assert!(err(r#","metadata":[1]"#).contains("must be an object"));
        assert!(err(r#","buyer":"a","recipient":"b""#).contains("keep one"));
        assert!(
            parse_event(r#"{"id":"e1","timestamp":"2024-05-01T12:00:00Z"}"#)
                .unwrap_err()
                .starts_with("missing `type`")
        );
        assert!(
            parse_event(r#"{"id":"e1","type":"x"}"#)
                .unwrap_err()
                .starts_with("missing `timestamp`")
        );
        assert!(
            parse_event(r#"{"type":"x","timestamp":"2024-05-01T12:00:00Z"}"#)
                .unwrap_err()
                .starts_with("missing `id`")
        );
    }

    #[test]
    fn blank_lines_crlf_and_bom() {
        assert!(parse_line(Kind::Leads, "  \r\n").unwrap().is_none());
        let r = parse_line(
            Kind::Leads,
            "\u{feff}{\"id\":\"a\",\"created_at\":\"2024-05-01 12:00:00\"}\r\n",
        );
        assert!(matches!(r, Ok(Some(Record::Lead(_)))), "{r:?}");
    }

    #[test]
    fn raw_value_finds_top_level_text_only() {
        let line = r#"{"x":{"price":1.10},"s":"\"price\": 9","pri\u0063e":2.50, "price" : 3.000 }"#;
        assert_eq!(raw_value(line, "price"), Some("3.000"));
        assert_eq!(raw_value(r#"{"a":[1,{"b":2}],"b":7}"#, "b"), Some("7"));
        assert_eq!(raw_value(r#"{"a":1}"#, "b"), None);
        assert_eq!(raw_value(r#"{"pri\u0063e":2.50}"#, "price"), Some("2.50"));
    }

    #[test]
    fn loader_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("leads.db")).unwrap();
        let mut loader = Loader::new(&mut store, 2);
        for i in 0..5 {
            let line = format!(r#"{{"id":"L{i}","created_at":"2024-05-01 12:00:0{i}"}}"#);
            loader
                .push(parse_line(Kind::Leads, &line).unwrap().unwrap())
                .unwrap();
        }
        assert_eq!(
            loader.loaded(),
            4,
            "two full batches committed, one lead queued"
        );
        assert_eq!(loader.finish().unwrap(), 5);
        assert_eq!(store.totals().unwrap(), (5, 0));
    }
}

/// Hostile NDJSON: any line is a record or a message, never a panic.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "id",
        "created_at",
        "timestamp",
        "updated_at",
        "source",
        "flow",
        "outcome",
        "reason",
        "revenue",
        "cost",
        "price",
        "type",
        "lead_id",
        "recipient",
        "buyer",
        "duration_ms",
        "metadata",
        "lead",
        "doc",
        "email",
        "email.valid",
        "metadata.x",
        "lead.y",
        "",
        "pri\\u0063e",
    ];

    const VALUES: &[&str] = &[
        "\"L1\"",
        "\"\"",
        "null",
        "true",
        "0",
        "-0",
        "1.10",
        "\"45.10\"",
        "1e999",
        "-1e999",
        "1e-999",
        "123456789012345678901234567890.123456789",
        "\"79228162514264337593543950336\"",
        "9223372036854775808",
        "-9223372036854775809",
        "0.00001",
        "\"2024-01-15T10:30:00Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "\"+262143-12-31T23:59:59Z\"",
        "\"0000-01-01 00:00:00\"",
        "\"2024-02-30T00:00:00Z\"",
        "\"2024-01-15 10:30:00.123456789123\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "[]",
        "[1,{\"a\":2}]",
        "{}",
        "{\"a\":{\"b\":{\"c\":1}}}",
        "{\"\":1}",
        "\"source.accepted\"",
        "1.5",
        "-3",
    ];

    fn object() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (prop::sample::select(KEYS), prop::sample::select(VALUES)),
            0..8,
        )
        .prop_map(|pairs| {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    fn check(line: &str) -> Result<(), TestCaseError> {
        // Oracle independent of the parser: what is not one JSON object is never a record.
        let not_an_object = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
            line.trim_start_matches('\u{feff}'),
        )
        .is_err();
        for kind in [Kind::Leads, Kind::Events] {
            match parse_line(kind, line) {
                Err(message) => {
                    prop_assert!(!message.trim().is_empty(), "empty message for `{line}`")
                }
                Ok(Some(_)) => prop_assert!(
                    !not_an_object,
                    "`{line}` is not a JSON object, yet became a record"
                ),
                // Blank lines are skipped, not records.
                Ok(None) => {
                    let blank = line.trim_start_matches('\u{feff}').trim().is_empty();
                    prop_assert!(blank, "`{line}` skipped as blank")
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_lines_never_panic(line in "\\PC{0,80}") {
            check(&line)?;
        }

        #[test]
        fn hostile_objects_never_panic(line in object(), nest in 0usize..200) {
            check(&line)?;
            // Deep nesting under a field: serde_json's recursion limit, not the stack.
            let deep = format!(
                "{{\"id\":\"L\",\"created_at\":\"2024-01-01T00:00:00Z\",\"x\":{}1{}}}",
                "[".repeat(nest),
                "]".repeat(nest)
            );
            check(&deep)?;
        }
    }
}
