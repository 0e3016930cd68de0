//! `exportd export` end to end: leads loaded with `exportd ingest` (small NDJSON written here, so
//! every expected output is exact) or `exportd demo` (seeded), exported by the real binary into
//! `var/exports/`, and read back with the standard tools (gzip, zstd, unzip, tar, 7z).
//!
//! Every test works in one [`Workspace`]: a temporary directory without exportd.toml, so the
//! defaults apply relative to it (store `var/leads.db`, output `var/exports/`, definitions in
//! `exports.d/`). Each command is pointed at it with `--config DIR/exportd.toml`.

use crate::util::{Output, Test, repo_file};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A store, `exports.d/` and an output directory shared by several `exportd` commands.
pub(crate) struct Workspace {
    dir: TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Workspace {
        Workspace {
            dir: tempfile::Builder::new()
                .prefix("exportd-export-")
                .tempdir()
                .expect("creating a temporary directory"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `exports.d/NAME.toml`.
    pub(crate) fn definition(&self, name: &str, toml: &str) -> &Workspace {
        let path = self.path().join("exports.d").join(format!("{name}.toml"));
        std::fs::create_dir_all(path.parent().expect("exports.d")).expect("creating exports.d");
        std::fs::write(&path, toml).expect("writing a definition");
        self
    }

    /// `exportd --config DIR/exportd.toml` (the file does not exist: defaults apply), run in a
    /// scratch directory of its own.
    pub(crate) fn exportd(&self) -> Test {
        Test::new()
            .arg("--config")
            .arg(self.path().join("exportd.toml"))
    }

    /// `exportd ingest --leads leads.ndjson`, which must load every line.
    pub(crate) fn ingest(&self, ndjson: &str) -> &Workspace {
        self.exportd()
            .file("leads.ndjson", ndjson)
            .args(["ingest", "--leads", "leads.ndjson"])
            .run()
            .success();
        self
    }

    /// `exportd export NAME --at AT`, which must succeed.
    pub(crate) fn export(&self, name: &str, at: &str) -> Output {
        self.exportd()
            .args(["export", name, "--at", at])
            .run()
            .success()
    }

    /// A path under the output directory, `var/exports/`.
    pub(crate) fn output(&self, relative: &str) -> PathBuf {
        self.path().join("var/exports").join(relative)
    }

    /// The text of an output file.
    pub(crate) fn read(&self, relative: &str) -> String {
        let path = self.output(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Every file under `var/exports/DIR`, relative to it, sorted (hidden files included).
    pub(crate) fn files(&self, dir: &str) -> Vec<String> {
        pub(crate) fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let relative = path.strip_prefix(root).expect("under the root");
                    out.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        let root = self.output(dir);
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    /// Leads in the store, counted through an export of `window = "all"`.
    pub(crate) fn count_leads(&self) -> usize {
        self.definition(
            "count-all",
            r#"
            window = "all"
            [fields]
            include = ["lead_id"]
            [[deliver]]
            to = "local"
            path = "count-all/leads.csv"
            "#,
        );
        self.export("count-all", "2030-01-01T00:00:00Z");
        let text = self.read("count-all/leads.csv");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("lead_id"), "header of:\n{text}");
        lines.count()
    }
}

/// Runs a standard tool, failing with the Debian package to install when it is missing.
fn tool(program: &str, args: &[&str], file: &Path, package: &str) -> std::process::Output {
    Command::new(program)
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}): install the Debian package `{package}`")
        })
}

/// Runs a tool that must succeed and returns its stdout.
fn tool_ok(program: &str, args: &[&str], file: &Path, package: &str) -> Vec<u8> {
    let out = tool(program, args, file, package);
    assert!(
        out.status.success(),
        "`{program} {} {}` failed ({}):\n{}",
        args.join(" "),
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The decompressed bytes of a part, read with the standard tool of its compression.
fn decompress(compression: &str, file: &Path) -> Vec<u8> {
    match compression {
        "none" => std::fs::read(file).expect("reading a part"),
        "gzip" => tool_ok("gzip", &["-dc"], file, "gzip"),
        "zstd" => tool_ok("zstd", &["-dcq"], file, "zstd"),
        "zip" => tool_ok("unzip", &["-p"], file, "unzip"),
        "tar.gz" => tool_ok("tar", &["-xzOf"], file, "tar"),
        "7z" => tool_ok("7z", &["x", "-so"], file, "p7zip-full"),
        other => panic!("unknown compression {other}"),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `_manifest.json` of a directory of `var/exports/`.
fn manifest(ws: &Workspace, dir: &str) -> Json {
    let text = ws.read(&format!("{dir}/_manifest.json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifest is not JSON ({e}):\n{text}"))
}

/// Checks that the manifest describes the files of `dir` exactly: names, rows, bytes and the
/// sha256 of the delivered file; returns the part names.
fn assert_manifest_matches_files(ws: &Workspace, dir: &str, rows: &[u64]) -> Vec<String> {
    let manifest = manifest(ws, dir);
    let parts = manifest["parts"].as_array().expect("parts is an array");
    assert_eq!(
        parts
            .iter()
            .map(|p| p["rows"].as_u64().expect("rows"))
            .collect::<Vec<_>>(),
        rows,
        "rows per part in {manifest:#}"
    );
    let mut names = Vec::new();
    let mut total_bytes = 0;
    for part in parts {
        let name = part["name"].as_str().expect("part name");
        let bytes = std::fs::read(ws.output(&format!("{dir}/{name}")))
            .unwrap_or_else(|e| panic!("part {name} of the manifest: {e}"));
        assert_eq!(part["bytes"], json!(bytes.len()), "bytes of {name}");
        assert_eq!(
            part["sha256"],
            json!(sha256_hex(&bytes)),
            "sha256 of {name}"
        );
        total_bytes += bytes.len();
        names.push(name.to_owned());
    }
    assert_eq!(manifest["total_rows"], json!(rows.iter().sum::<u64>()));
    assert_eq!(manifest["total_bytes"], json!(total_bytes));
    names
}

/// RFC 4180 reader (quotes doubled inside quoted fields), for CSV and TSV.
fn parse_delimited(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
        } else if c == '"' && field.is_empty() {
            quoted = true;
        } else if c == delimiter {
            row.push(std::mem::take(&mut field));
        } else if c == '\n' {
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
        } else if c != '\r' {
            field.push(c);
        }
    }
    assert!(!quoted, "unterminated quoted field in:\n{text}");
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Rows of cells of an XML part (`<export><row><col>text</col><col/></row>…`): the column name
/// and its text, `None` for an empty element.
fn parse_xml(text: &str) -> Vec<Vec<(String, Option<String>)>> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut rows: Vec<Vec<(String, Option<String>)>> = Vec::new();
    let mut depth = 0;
    let mut cell: Option<(String, String)> = None;
    let name = |e: &quick_xml::events::BytesStart<'_>| e.name().as_ref().to_string();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Eof => break,
            Event::Start(e) => {
                depth += 1;
                match depth {
                    1 => assert_eq!(name(&e), "export", "root element"),
                    2 => {
                        assert_eq!(name(&e), "row", "row element");
                        rows.push(Vec::new());
                    }
                    3 => cell = Some((name(&e), String::new())),
                    _ => panic!("unexpected nesting in:\n{text}"),
                }
            }
            Event::Empty(e) if depth == 2 => {
                rows.last_mut().expect("a row").push((name(&e), None));
            }
            Event::Text(t) if depth == 3 => {
                let (_, value) = cell.as_mut().expect("inside a cell");
                value.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if depth == 3 => {
                let c = match r.resolve_char_ref().expect("character reference") {
                    Some(c) => c,
                    None => match &*r {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("unknown entity &{other};"),
                    },
                };
                cell.as_mut().expect("inside a cell").1.push(c);
            }
            Event::End(_) => {
                if depth == 3 {
                    let (name, value) = cell.take().expect("inside a cell");
                    rows.last_mut().expect("a row").push((name, Some(value)));
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    rows
}

fn hmac_sha256_hex(key: &str, text: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------------------------
// The seed's CSV layout
// ---------------------------------------------------------------------------------------------

/// Three leads of 2024-01-15 (UTC), with money as JSON numbers and as strings, the `timestamp`
/// alias with an offset, the space-separated time form, and missing fields.
const SEED_LEADS: &str = r#"{"id":"L1","created_at":"2024-01-15T10:30:00Z","email":"john.doe@example.com","email.valid":true,"phone_1":"555-123-4567","state":"CA","revenue":45,"cost":12.5}
{"id":"L2","timestamp":"2024-01-15T08:00:00-05:00","email":"jane@example.org","email.valid":false,"phone_1":"555-987-6543","state":"TX","revenue":"32.50","cost":"0"}
{"id":"L3","created_at":"2024-01-15 18:45:10","email":"o'brien@example.net","state":"NY","revenue":10.1,"cost":"0.35"}
"#;

#[test]
fn seed_csv_example_writes_the_seed_header_and_exact_rows() {
    let ws = Workspace::new();
    ws.definition("seed-csv", &repo_file("examples/seed-csv.toml"))
        .ingest(SEED_LEADS);
    ws.export("seed-csv", "2024-01-16T01:00:00Z");
    assert_eq!(
        ws.read("seed/2024-01-15/leads.csv"),
        "lead_id,timestamp,email,email.valid,phone,state,revenue,margin\n\
         L1,2024-01-15T10:30:00Z,john.doe@example.com,true,555-123-4567,CA,45.00,32.50\n\
         L2,2024-01-15T13:00:00Z,jane@example.org,false,555-987-6543,TX,32.50,32.50\n\
         L3,2024-01-15T18:45:10Z,o'brien@example.net,,,NY,10.10,9.75\n"
    );
    assert_eq!(
        ws.files("seed"),
        ["2024-01-15/_manifest.json", "2024-01-15/leads.csv"]
    );
    assert_manifest_matches_files(&ws, "seed/2024-01-15", &[3]);
}

// ---------------------------------------------------------------------------------------------
// Every format × every compression
// ---------------------------------------------------------------------------------------------

const ROUND_TRIP_LEADS: &str = r#"{"id":"R1","created_at":"2024-02-01T09:00:00Z","name":"Smith, \"Jr\" <&> 'x'","email.valid":true,"revenue":45}
{"id":"R2","created_at":"2024-02-01T09:30:00.250Z","name":"José\tTab\r\nline 2","email.valid":false,"revenue":"0.005"}
{"id":"R3","created_at":"2024-02-01T10:00:00Z"}
"#;

const ROUND_TRIP_COLUMNS: [&str; 5] = ["lead_id", "timestamp", "name", "email.valid", "revenue"];

/// What every format must read back as; `None` is NULL.
const ROUND_TRIP_ROWS: [[Option<&str>; 5]; 3] = [
    [
        Some("R1"),
        Some("2024-02-01T09:00:00Z"),
        Some("Smith, \"Jr\" <&> 'x'"),
        Some("true"),
        Some("45.00"),
    ],
    [
        Some("R2"),
        Some("2024-02-01T09:30:00.250Z"),
        Some("José\tTab\r\nline 2"),
        Some("false"),
        Some("0.005"),
    ],
    [Some("R3"), Some("2024-02-01T10:00:00Z"), None, None, None],
];

const COMPRESSIONS: [(&str, &str); 6] = [
    ("none", ""),
    ("gzip", ".gz"),
    ("zstd", ".zst"),
    ("zip", ".zip"),
    ("tar.gz", ".tar.gz"),
    ("7z", ".7z"),
];

/// The rows as JSON objects: typed columns are JSON numbers and booleans, NULL is `null`.
fn round_trip_json() -> Vec<Json> {
    ROUND_TRIP_ROWS
        .iter()
        .map(|row| {
            let object = ROUND_TRIP_COLUMNS
                .iter()
                .zip(row)
                .map(|(column, cell)| {
                    let value = match (*column, cell) {
                        (_, None) => Json::Null,
                        ("revenue" | "email.valid", Some(text)) => {
                            serde_json::from_str(text).expect("typed cell")
                        }
                        (_, Some(text)) => json!(text),
                    };
                    ((*column).to_owned(), value)
                })
                .collect::<serde_json::Map<_, _>>();
            Json::Object(object)
        })
        .collect()
}

/// Checks the uncompressed text of a part against [`ROUND_TRIP_ROWS`], in the format's terms.
fn assert_reads_back(format: &str, text: &str) {
    let header: Vec<String> = ROUND_TRIP_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    match format {
        "csv" | "tsv" => {
            let delimiter = if format == "csv" { ',' } else { '\t' };
            let mut expected = vec![header];
            expected.extend(ROUND_TRIP_ROWS.iter().map(|row| {
                row.iter()
                    .map(|c| c.unwrap_or_default().to_owned())
                    .collect()
            }));
            assert_eq!(
                parse_delimited(text, delimiter),
                expected,
                "{format}:\n{text}"
            );
        }
        "json" | "ndjson" => {
            let objects: Vec<Json> = if format == "json" {
                serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("json part does not parse ({e}):\n{text}"))
            } else {
                text.lines()
                    .map(|line| {
                        serde_json::from_str(line)
                            .unwrap_or_else(|e| panic!("ndjson line does not parse ({e}): {line}"))
                    })
                    .collect()
            };
            assert_eq!(objects, round_trip_json(), "{format}:\n{text}");
            for object in &objects {
                let keys: Vec<&String> = object.as_object().expect("object").keys().collect();
                assert_eq!(keys, header.iter().collect::<Vec<_>>(), "key order");
            }
        }
        "xml" => {
            let expected: Vec<Vec<(String, Option<String>)>> = ROUND_TRIP_ROWS
                .iter()
                .map(|row| {
                    ROUND_TRIP_COLUMNS
                        .iter()
                        .zip(row)
                        .map(|(c, v)| ((*c).to_owned(), v.map(str::to_owned)))
                        .collect()
                })
                .collect();
            assert_eq!(parse_xml(text), expected, "xml:\n{text}");
        }
        other => panic!("unknown format {other}"),
    }
}

/// Exports the round-trip leads in `format` with every compression, decompresses each part with
/// the standard tool, and checks it holds exactly the uncompressed part, which reads back as
/// the rows.
fn round_trip(format: &str) {
    let ws = Workspace::new();
    ws.ingest(ROUND_TRIP_LEADS);
    let mut plain: Option<Vec<u8>> = None;
    for (compression, suffix) in COMPRESSIONS {
        let definition = r#"
            window = "all"
            [fields]
            include = ["lead_id", "timestamp", "name", "email.valid", "revenue"]
            [format]
            type = "FORMAT"
            compression = "COMPRESSION"
            [[deliver]]
            to = "local"
            path = "rt/COMPRESSION/leads_{{part}}.{{ext}}"
        "#
        .replace("FORMAT", format)
        .replace("COMPRESSION", compression);
        ws.definition("rt", &definition);
        ws.export("rt", "2024-03-01T00:00:00Z");
        let dir = format!("rt/{compression}");
        let name = format!("leads_001.{format}{suffix}");
        assert_eq!(ws.files(&dir), ["_manifest.json".to_owned(), name.clone()]);
        assert_eq!(
            assert_manifest_matches_files(&ws, &dir, &[3]),
            std::slice::from_ref(&name)
        );
        let bytes = decompress(compression, &ws.output(&format!("{dir}/{name}")));
        match &plain {
            None => {
                let text = String::from_utf8(bytes.clone()).expect("UTF-8 part");
                assert_reads_back(format, &text);
                plain = Some(bytes);
            }
            Some(plain) => assert!(
                bytes == *plain,
                "{format} with {compression} decompresses to\n{}\ninstead of\n{}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(plain)
            ),
        }
    }
}

#[test]
fn csv_reads_back_the_same_rows_with_every_compression() {
    round_trip("csv");
}

#[test]
fn tsv_reads_back_the_same_rows_with_every_compression() {
    round_trip("tsv");
}

#[test]
fn json_reads_back_the_same_rows_with_every_compression() {
    round_trip("json");
}

#[test]
fn ndjson_reads_back_the_same_rows_with_every_compression() {
    round_trip("ndjson");
}

#[test]
fn xml_reads_back_the_same_rows_with_every_compression() {
    round_trip("xml");
}

#[test]
fn encrypted_archives_open_with_their_password_and_not_without_it() {
    let ws = Workspace::new();
    ws.ingest(SEED_LEADS);
    let password = "correct horse 42";
    for compression in ["zip", "7z"] {
        let definition = r#"
            window = "all"
            [fields]
            include = ["lead_id", "email", "state"]
            [format]
            type = "csv"
            compression = "COMPRESSION"
            password = { env = "ZIP_PW" }
            [[deliver]]
            to = "local"
            path = "secret/leads.{{ext}}"
        "#
        .replace("COMPRESSION", compression);
        ws.definition("secret", &definition);

        let refused = ws
            .exportd()
            .args(["export", "secret", "--at", "2024-03-01T00:00:00Z"])
            .run();
        assert!(!refused.status.success(), "exported without ZIP_PW set");
        assert!(
            refused.stderr.contains("ZIP_PW"),
            "the error names the missing variable:\n{}",
            refused.stderr
        );

        let output = ws
            .exportd()
            .args(["export", "secret", "--at", "2024-03-01T00:00:00Z"])
            .env("ZIP_PW", password)
            .run()
            .success();
        let file = ws.output(&format!("secret/leads.csv.{compression}"));
        let expected = "lead_id,email,state\n\
                        L1,john.doe@example.com,CA\n\
                        L2,jane@example.org,TX\n\
                        L3,o'brien@example.net,NY\n";
        let opened = tool_ok(
            "7z",
            &["x", "-so", &format!("-p{password}")],
            &file,
            "p7zip-full",
        );
        assert_eq!(String::from_utf8_lossy(&opened), expected, "{compression}");

        for args in [vec!["x", "-so"], vec!["x", "-so", "-pwrong"]] {
            let out = tool("7z", &args, &file, "p7zip-full");
            assert!(
                !out.status.success(),
                "`7z {}` opened the {compression} archive without its password",
                args.join(" ")
            );
            assert!(!String::from_utf8_lossy(&out.stdout).contains("john.doe"));
        }
        if compression == "zip" {
            let out = tool("unzip", &["-p"], &file, "unzip");
            assert!(
                !out.status.success(),
                "unzip opened the zip without its password"
            );
        }
        let raw = std::fs::read(&file).expect("reading the archive");
        let raw = String::from_utf8_lossy(&raw);
        assert!(
            !raw.contains("john.doe"),
            "the {compression} archive is not encrypted"
        );
        let manifest = ws.read("secret/_manifest.json");
        for text in [&output.stdout, &output.stderr, &manifest] {
            assert!(!text.contains(password), "the password leaked:\n{text}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Filters are bound parameters
// ---------------------------------------------------------------------------------------------

#[test]
fn sql_in_a_filter_value_matches_nothing_and_drops_nothing() {
    let ws = Workspace::new();
    ws.ingest(SEED_LEADS)
        .definition(
            "injection",
            r#"
            window = "all"
            filter = "state = \"CA'; DROP TABLE leads; --\" OR email LIKE \"%' OR '1'='1\""
            [fields]
            include = ["lead_id", "state"]
            [[deliver]]
            to = "local"
            path = "injection/leads.csv"
            "#,
        )
        .definition(
            "everything",
            r#"
            window = "all"
            [fields]
            include = ["lead_id", "state"]
            [[deliver]]
            to = "local"
            path = "everything/leads.csv"
            "#,
        );
    ws.export("injection", "2024-03-01T00:00:00Z");
    assert_eq!(ws.read("injection/leads.csv"), "lead_id,state\n");
    assert_manifest_matches_files(&ws, "injection", &[0]);

    ws.export("everything", "2024-03-01T00:00:00Z");
    assert_eq!(
        ws.read("everything/leads.csv"),
        "lead_id,state\nL1,CA\nL2,TX\nL3,NY\n"
    );

    let dry = ws
        .exportd()
        .args(["export", "injection", "--at", "2024-03-01T00:00:00Z"])
        .args(["--dry-run", "--format", "json"])
        .run()
        .success();
    let report = dry.json();
    let sql = report["estimate"]["sql"].as_str().expect("sql");
    for fragment in ["DROP", "'1'='1", "CA'"] {
        assert!(
            !sql.contains(fragment),
            "`{fragment}` in the SQL text: {sql}"
        );
    }
    let params = report["estimate"]["params"].as_array().expect("params");
    assert_eq!(
        sql.matches('?').count(),
        params.len(),
        "{sql} with {params:?}"
    );
    for value in ["CA'; DROP TABLE leads; --", "' OR '1'='1"] {
        assert!(
            params
                .iter()
                .any(|p| p.as_str().is_some_and(|p| p.contains(value))),
            "`{value}` is not a bound parameter: {params:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PII masks
// ---------------------------------------------------------------------------------------------

const MASK_LEADS: &str = r#"{"id":"M1","created_at":"2024-01-15T10:00:00Z","email":"john.doe@example.com","phone":"555-123-4567","ssn":"123-45-6789","name":"John Doe","ip_address":"203.0.113.7"}
{"id":"M2","created_at":"2024-01-15T11:00:00Z","email":"ann@example.org","phone":"(555) 987-6543","name":"ann marie smith","ip_address":"198.51.100.1"}
"#;

#[test]
fn masks_follow_the_seed_examples_and_drop_removes_the_column() {
    let ws = Workspace::new();
    ws.ingest(MASK_LEADS).definition(
        "masked",
        r#"
        window = "all"
        [fields]
        include = ["lead_id", "email", "email_hash", "phone", "ssn", "name", "ip_address"]
        rename = { email_hash = "email" }
        mask = { email = "email", email_hash = "hash", phone = "last4", ssn = "ssn", name = "initials", ip_address = "drop" }
        hash_key = { env = "HASH_KEY" }
        [[deliver]]
        to = "local"
        path = "masked/leads.csv"
        "#,
    );
    let export = |key: &str| {
        ws.exportd()
            .args(["export", "masked", "--at", "2024-03-01T00:00:00Z"])
            .env("HASH_KEY", key)
            .run()
            .success();
        ws.read("masked/leads.csv")
    };

    let first = export("key-one");
    let hash = |key, email| hmac_sha256_hex(key, email);
    assert_eq!(
        first,
        format!(
            "lead_id,email,email_hash,phone,ssn,name\n\
             M1,j***.d**@example.com,{},XXX-XXX-4567,XXX-XX-6789,J.D.\n\
             M2,a**@example.org,{},(XXX) XXX-6543,,A.M.S.\n",
            hash("key-one", "john.doe@example.com"),
            hash("key-one", "ann@example.org"),
        )
    );
    for secret in ["203.0.113.7", "123-45-6789", "555-123", "John", "key-one"] {
        assert!(!first.contains(secret), "`{secret}` in:\n{first}");
    }

    let second = export("key-two");
    let hashes = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|line| line.split(',').nth(2).expect("email_hash").to_owned())
            .collect()
    };
    for (one, two) in hashes(&first).iter().zip(hashes(&second)) {
        assert_eq!(one.len(), 64, "{one}");
        assert!(one.chars().all(|c| c.is_ascii_hexdigit()), "{one}");
        assert_eq!(two.len(), 64, "{two}");
        assert_ne!(*one, two, "the hash does not depend on the key");
    }
    assert_eq!(
        first
            .replace(&hashes(&first)[0], "")
            .replace(&hashes(&first)[1], ""),
        second
            .replace(&hashes(&second)[0], "")
            .replace(&hashes(&second)[1], ""),
        "only the hashes change with the key"
    );
}

// ---------------------------------------------------------------------------------------------
// Money is exact
// ---------------------------------------------------------------------------------------------

const DECIMAL_LEADS: &str = r#"{"id":"D1","created_at":"2024-01-15T10:00:00Z","revenue":0.1,"cost":0.2}
{"id":"D2","created_at":"2024-01-15T11:00:00Z","revenue":45,"cost":"44.99"}
{"id":"D3","created_at":"2024-01-15T12:00:00Z","revenue":"19.999","cost":0.001}
"#;

fn decimal_definition(format: &str) -> String {
    r#"
    window = "all"
    [fields]
    include = ["lead_id", "revenue", "cost"]
    computed = { total = "revenue + cost" }
    [format]
    type = "FORMAT"
    [[deliver]]
    to = "local"
    path = "money/leads.{{ext}}"
    "#
    .replace("FORMAT", format)
}

#[test]
fn money_and_computed_sums_are_exact_decimals_in_csv() {
    let ws = Workspace::new();
    ws.ingest(DECIMAL_LEADS)
        .definition("money", &decimal_definition("csv"));
    ws.export("money", "2024-03-01T00:00:00Z");
    let csv = ws.read("money/leads.csv");
    assert_eq!(
        csv,
        "lead_id,revenue,cost,total\n\
         D1,0.10,0.20,0.30\n\
         D2,45.00,44.99,89.99\n\
         D3,19.999,0.001,20.00\n"
    );
    assert!(!csv.contains("0.30000000000000004"));
}

#[test]
fn money_in_json_is_a_number_with_its_exact_text() {
    let ws = Workspace::new();
    ws.ingest(DECIMAL_LEADS)
        .definition("money", &decimal_definition("json"));
    ws.export("money", "2024-03-01T00:00:00Z");
    let text = ws.read("money/leads.json");
    for fragment in [
        r#""revenue":0.10"#,
        r#""cost":0.20"#,
        r#""total":0.30"#,
        r#""revenue":45.00"#,
        r#""total":89.99"#,
        r#""total":20.00"#,
    ] {
        assert!(text.contains(fragment), "`{fragment}` not in:\n{text}");
    }
    assert!(!text.contains("0.30000000000000004"), "{text}");
    let rows: Json = serde_json::from_str(&text).expect("JSON");
    assert_eq!(rows[1]["revenue"], json!(45.0), "a number, not a string");
    assert_eq!(rows[0]["total"], json!(0.3));
}

// ---------------------------------------------------------------------------------------------
// Chunking and the manifest
// ---------------------------------------------------------------------------------------------

/// Five leads of 2024-01-15.
const FIVE_LEADS: &str = r#"{"id":"C1","created_at":"2024-01-15T01:00:00Z","state":"CA"}
{"id":"C2","created_at":"2024-01-15T02:00:00Z","state":"TX"}
{"id":"C3","created_at":"2024-01-15T03:00:00Z","state":"NY"}
{"id":"C4","created_at":"2024-01-15T04:00:00Z","state":"FL"}
{"id":"C5","created_at":"2024-01-15T05:00:00Z","state":"WA"}
"#;

const CHUNKED: &str = r#"
window = "previous_day"
[fields]
include = ["lead_id", "state"]
[chunk]
max_rows = 2
[manifest]
success_marker = true
[[deliver]]
to = "local"
path = "chunked/{{date}}/leads_{{part}}.csv"
"#;

#[test]
fn max_rows_splits_into_numbered_parts_listed_in_the_manifest() {
    let ws = Workspace::new();
    ws.ingest(FIVE_LEADS).definition("chunked", CHUNKED);
    ws.export("chunked", "2024-01-16T02:00:00Z");
    assert_eq!(
        ws.files("chunked"),
        [
            "2024-01-15/_SUCCESS",
            "2024-01-15/_manifest.json",
            "2024-01-15/leads_001.csv",
            "2024-01-15/leads_002.csv",
            "2024-01-15/leads_003.csv",
        ]
    );
    assert_eq!(
        ws.read("chunked/2024-01-15/leads_001.csv"),
        "lead_id,state\nC1,CA\nC2,TX\n"
    );
    assert_eq!(
        ws.read("chunked/2024-01-15/leads_002.csv"),
        "lead_id,state\nC3,NY\nC4,FL\n"
    );
    assert_eq!(
        ws.read("chunked/2024-01-15/leads_003.csv"),
        "lead_id,state\nC5,WA\n"
    );
    assert_eq!(ws.read("chunked/2024-01-15/_SUCCESS"), "");
    let names = assert_manifest_matches_files(&ws, "chunked/2024-01-15", &[2, 2, 1]);
    assert_eq!(names, ["leads_001.csv", "leads_002.csv", "leads_003.csv"]);
    let manifest = manifest(&ws, "chunked/2024-01-15");
    assert_eq!(manifest["export"], "chunked");
    assert_eq!(manifest["columns"], json!(["lead_id", "state"]));
}

#[test]
fn max_bytes_ends_each_part_at_the_first_row_that_reaches_the_limit() {
    const LIMIT: usize = 4000;
    let ws = Workspace::new();
    ws.exportd()
        .args(["demo", "--leads", "200", "--seed", "7", "--days", "3"])
        .args(["--end", "2024-02-01T00:00:00Z"])
        .run()
        .success();
    ws.definition(
        "sized",
        r#"
        window = "all"
        [fields]
        include = ["lead_id", "timestamp", "email", "state", "revenue"]
        [chunk]
        max_bytes = "4KB"
        [[deliver]]
        to = "local"
        path = "sized/leads_{{part}}.csv"
        "#,
    );
    let report = ws
        .exportd()
        .args([
            "export",
            "sized",
            "--at",
            "2024-02-01T00:00:00Z",
            "--format",
            "json",
        ])
        .run()
        .success()
        .json();
    assert_eq!(report["rows"], json!(200), "{report:#}");

    let parts: Vec<String> = ws
        .files("sized")
        .into_iter()
        .filter(|f| f != "_manifest.json")
        .collect();
    assert!(parts.len() >= 3, "4KB parts of 200 rows: {parts:?}");
    let mut rows_per_part = Vec::new();
    for (i, name) in parts.iter().enumerate() {
        assert_eq!(*name, format!("leads_{:03}.csv", i + 1));
        let text = ws.read(&format!("sized/{name}"));
        let rows = text.lines().count() - 1;
        rows_per_part.push(rows as u64);
        let last_row = text.lines().last().expect("a row").len() + 1;
        if i + 1 < parts.len() {
            assert!(
                text.len() >= LIMIT && text.len() - last_row < LIMIT,
                "part {name} is {} bytes: it should end at the first row reaching {LIMIT}",
                text.len()
            );
        } else {
            assert!(
                text.len() < LIMIT + last_row,
                "last part {name}: {} bytes",
                text.len()
            );
        }
    }
    assert_eq!(rows_per_part.iter().sum::<u64>(), 200);
    assert_manifest_matches_files(&ws, "sized", &rows_per_part);
}

#[test]
fn rerunning_the_same_window_rewrites_the_same_files() {
    let ws = Workspace::new();
    ws.ingest(FIVE_LEADS).definition("chunked", CHUNKED);
    let snapshot = |ws: &Workspace| -> Vec<(String, Vec<u8>)> {
        ws.files("chunked")
            .into_iter()
            .map(|f| {
                let bytes = std::fs::read(ws.output(&format!("chunked/{f}"))).expect("file");
                (f, bytes)
            })
            .collect()
    };
    ws.export("chunked", "2024-01-16T02:00:00Z");
    let first = snapshot(&ws);
    ws.export("chunked", "2024-01-16T02:00:00Z");
    let second = snapshot(&ws);
    assert_eq!(
        first.iter().map(|(f, _)| f).collect::<Vec<_>>(),
        second.iter().map(|(f, _)| f).collect::<Vec<_>>(),
        "the same file names, nothing more"
    );
    for ((name, one), (_, two)) in first.iter().zip(&second) {
        assert!(one == two, "{name} changed between runs of the same window");
    }
    assert_eq!(first.len(), 5, "three parts, the manifest and _SUCCESS");
}

#[test]
fn rerunning_a_window_that_shrank_leaves_no_stale_parts() {
    let ws = Workspace::new();
    ws.ingest(FIVE_LEADS).definition("chunked", CHUNKED);
    ws.export("chunked", "2024-01-16T02:00:00Z");
    assert_eq!(ws.files("chunked/2024-01-15").len(), 5);
    // C1 is corrected to the day before: the window now holds four leads, two parts.
    ws.ingest(r#"{"id":"C1","created_at":"2024-01-14T01:00:00Z","state":"CA"}"#);
    ws.export("chunked", "2024-01-16T02:00:00Z");
    let names = assert_manifest_matches_files(&ws, "chunked/2024-01-15", &[2, 2]);
    assert_eq!(names, ["leads_001.csv", "leads_002.csv"]);
    let mut ids: Vec<String> = Vec::new();
    for file in ws.files("chunked/2024-01-15") {
        if file.ends_with(".csv") {
            let text = ws.read(&format!("chunked/2024-01-15/{file}"));
            ids.extend(
                text.lines()
                    .skip(1)
                    .map(|l| l.split(',').next().unwrap_or("").to_owned()),
            );
        }
    }
    assert_eq!(
        ids,
        ["C2", "C3", "C4", "C5"],
        "the directory of the window holds each lead once, in the parts of the manifest: {:?}",
        ws.files("chunked/2024-01-15")
    );
}

// ---------------------------------------------------------------------------------------------
// Windows
// ---------------------------------------------------------------------------------------------

fn chicago_previous_day() -> &'static str {
    r#"
    timezone = "America/Chicago"
    window = "previous_day"
    [fields]
    include = ["lead_id", "timestamp"]
    [[deliver]]
    to = "local"
    path = "daily/{{date}}/leads.csv"
    "#
}

fn assert_window(ws: &Workspace, dir: &str, start: &str, end: &str) {
    let manifest = manifest(ws, dir);
    let instant = |v: &Json| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
            .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
    };
    let expected = |t: &str| chrono::DateTime::parse_from_rfc3339(t).expect("time");
    assert_eq!(instant(&manifest["window_start"]), expected(start));
    assert_eq!(instant(&manifest["window_end"]), expected(end));
}

#[test]
fn previous_day_in_chicago_is_23_hours_on_the_day_dst_starts() {
    let ws = Workspace::new();
    ws.ingest(
        r#"{"id":"before","created_at":"2024-03-10T05:59:59.999Z"}
{"id":"first","created_at":"2024-03-10T06:00:00Z"}
{"id":"after_jump","created_at":"2024-03-10T08:30:00Z"}
{"id":"last","created_at":"2024-03-11T04:59:59.999Z"}
{"id":"after","created_at":"2024-03-11T05:00:00Z"}
{"id":"nominal","created_at":"2024-03-11T12:00:00Z"}
"#,
    )
    .definition("daily", chicago_previous_day());
    ws.export("daily", "2024-03-11T12:00:00Z");
    assert_eq!(
        ws.read("daily/2024-03-10/leads.csv"),
        "lead_id,timestamp\n\
         first,2024-03-10T06:00:00Z\n\
         after_jump,2024-03-10T08:30:00Z\n\
         last,2024-03-11T04:59:59.999Z\n"
    );
    assert_window(
        &ws,
        "daily/2024-03-10",
        "2024-03-10T06:00:00Z",
        "2024-03-11T05:00:00Z",
    );
}

#[test]
fn previous_day_in_chicago_is_25_hours_on_the_day_dst_ends() {
    let ws = Workspace::new();
    ws.ingest(
        r#"{"id":"before","created_at":"2024-11-03T04:59:59.999Z"}
{"id":"first","created_at":"2024-11-03T05:00:00Z"}
{"id":"repeated_hour","created_at":"2024-11-03T07:30:00Z"}
{"id":"last","created_at":"2024-11-04T05:59:59.999Z"}
{"id":"after","created_at":"2024-11-04T06:00:00Z"}
"#,
    )
    .definition("daily", chicago_previous_day());
    ws.export("daily", "2024-11-04T12:00:00Z");
    assert_eq!(
        ws.read("daily/2024-11-03/leads.csv"),
        "lead_id,timestamp\n\
         first,2024-11-03T05:00:00Z\n\
         repeated_hour,2024-11-03T07:30:00Z\n\
         last,2024-11-04T05:59:59.999Z\n"
    );
    assert_window(
        &ws,
        "daily/2024-11-03",
        "2024-11-03T05:00:00Z",
        "2024-11-04T06:00:00Z",
    );
}

#[test]
fn updated_at_window_exports_the_fields_of_leads_created_before_it() {
    let ws = Workspace::new();
    ws.ingest(
        r#"{"id":"U1","created_at":"2024-01-01T10:00:00Z","updated_at":"2024-02-10T10:00:00Z","email":"a@example.com","state":"CA"}
{"id":"U2","created_at":"2024-02-10T11:00:00Z","state":"TX"}
{"id":"U3","created_at":"2024-02-12T11:00:00Z","phone":"555-000-0000"}
"#,
    )
    .definition(
        "sync",
        r#"
        window = "previous_day"
        time_field = "updated_at"
        [fields]
        exclude = ["created_at", "updated_at", "source", "flow", "outcome", "reason", "revenue", "cost"]
        [[deliver]]
        to = "local"
        path = "sync/{{date}}.csv"
        "#,
    );
    ws.export("sync", "2024-02-11T01:00:00Z");
    assert_eq!(
        ws.read("sync/2024-02-10.csv"),
        "id,email,state\nU1,a@example.com,CA\nU2,,TX\n",
        "every field of the leads updated in the window, whenever they were created"
    );
}

// ---------------------------------------------------------------------------------------------
// Summaries
// ---------------------------------------------------------------------------------------------

#[test]
fn summary_groups_by_local_date_and_source() {
    let ws = Workspace::new();
    // Chicago is UTC-6 in January: S2 (03:00 UTC on the 16th) is still the 15th there, and S4
    // (07:00 UTC) is the 16th.
    ws.ingest(
        r#"{"id":"S1","created_at":"2024-01-15T15:00:00Z","source":"google","outcome":"success","revenue":10,"cost":4}
{"id":"S2","created_at":"2024-01-16T03:00:00Z","source":"google","outcome":"failure","revenue":"5.50","cost":"1.25"}
{"id":"S3","created_at":"2024-01-15T20:00:00Z","source":"facebook","outcome":"success","revenue":20,"cost":5}
{"id":"S4","created_at":"2024-01-16T07:00:00Z","source":"google","outcome":"success","revenue":"3.33","cost":1}
{"id":"S5","created_at":"2024-01-16T12:00:00Z","source":"google","outcome":"duplicate"}
"#,
    )
    .definition(
        "by-source",
        r#"
        kind = "summary"
        timezone = "America/Chicago"
        window = "all"

        [summary]
        group_by = ["date", "source"]
        [summary.metrics]
        avg_revenue = "avg revenue"
        leads = "count"
        margin = "sum margin"
        revenue = "sum revenue"
        sold = 'count where outcome = "success"'

        [[deliver]]
        to = "local"
        path = "summary/by_source.csv"
        "#,
    );
    ws.export("by-source", "2024-02-01T00:00:00Z");
    assert_eq!(
        ws.read("summary/by_source.csv"),
        "date,source,avg_revenue,leads,margin,revenue,sold\n\
         2024-01-15,facebook,20.00,1,15.00,20.00,1\n\
         2024-01-15,google,7.75,2,10.25,15.50,1\n\
         2024-01-16,google,3.33,2,2.33,3.33,1\n"
    );
    assert_manifest_matches_files(&ws, "summary", &[3]);
}

// ---------------------------------------------------------------------------------------------
// Dry run
// ---------------------------------------------------------------------------------------------

const FILTERED: &str = r#"
window = "all"
filter = 'state IN ("CA", "TX") AND revenue > 40'
[fields]
include = ["lead_id", "state", "revenue"]
[[deliver]]
to = "local"
path = "filtered/leads.csv"
"#;

#[test]
fn dry_run_reports_rows_and_parameterized_sql_and_writes_nothing() {
    let ws = Workspace::new();
    ws.ingest(SEED_LEADS).definition("filtered", FILTERED);
    let args = [
        "export",
        "filtered",
        "--at",
        "2024-03-01T00:00:00Z",
        "--dry-run",
    ];

    let text = ws.exportd().args(args).run().success();
    let field = |name: &str| {
        text.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no `{name}:` line in:\n{}", text.stdout))
            .trim()
            .to_owned()
    };
    assert_eq!(field("rows"), "1", "{}", text.stdout);
    let sql = field("sql");
    assert!(sql.contains('?'), "{sql}");
    assert!(!sql.contains("\"CA\"") && !sql.contains("'CA'"), "{sql}");

    let report = ws
        .exportd()
        .args(args)
        .args(["--format", "json"])
        .run()
        .success()
        .json();
    assert_eq!(report["estimate"]["rows"], json!(1), "{report:#}");
    let sql = report["estimate"]["sql"].as_str().expect("sql");
    let params = report["estimate"]["params"].as_array().expect("params");
    assert_eq!(
        sql.matches('?').count(),
        params.len(),
        "{sql} with {params:?}"
    );
    assert!(!sql.contains("\"CA\"") && !sql.contains("'CA'"), "{sql}");

    assert_eq!(
        ws.files(""),
        Vec::<String>::new(),
        "the dry run wrote output"
    );
    assert_eq!(
        files_under(&ws.path().join("var/staging")),
        Vec::<String>::new(),
        "the dry run left staged files"
    );
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Bad input to ingest
// ---------------------------------------------------------------------------------------------

const WITH_BAD_LINES: &str = r#"{"id":"B1","created_at":"2024-01-15T10:00:00Z"}
{"id":"B2","created_at":

{"id":"B4","created_at":"2024-01-15T11:00:00Z"}
{"created_at":"2024-01-15T12:00:00Z","state":"CA"}
{"id":"B6","created_at":"2024-01-15T13:00:00Z"}
"#;

#[test]
fn ingest_reports_bad_lines_by_file_and_line_and_loads_the_rest() {
    let ws = Workspace::new();
    let output = ws
        .exportd()
        .file("leads.ndjson", WITH_BAD_LINES)
        .args(["ingest", "--leads", "leads.ndjson"])
        .run()
        .failure();
    let errors: Vec<&str> = output
        .stderr
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect();
    assert_eq!(errors.len(), 2, "{}", output.stderr);
    assert!(
        errors[0].starts_with("leads.ndjson:2: error: "),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("leads.ndjson:5: error: missing `id`"),
        "{}",
        errors[1]
    );
    assert_eq!(ws.count_leads(), 3);
    assert_eq!(ws.read("count-all/leads.csv"), "lead_id\nB1\nB4\nB6\n");
}

#[test]
fn strict_ingest_stops_at_the_first_bad_line_and_loads_nothing() {
    let ws = Workspace::new();
    let output = ws
        .exportd()
        .file("leads.ndjson", WITH_BAD_LINES)
        .args(["ingest", "--strict", "--leads", "leads.ndjson"])
        .run()
        .failure();
    let errors: Vec<&str> = output
        .stderr
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", output.stderr);
    assert!(
        errors[0].starts_with("leads.ndjson:2: error: "),
        "{}",
        errors[0]
    );
    assert_eq!(ws.count_leads(), 0);
}

// ---------------------------------------------------------------------------------------------
// Backfill, status, archive entry names
// ---------------------------------------------------------------------------------------------

const THREE_DAYS: &str = r#"{"id":"B1","created_at":"2024-03-01T10:00:00Z","state":"CA"}
{"id":"B2","created_at":"2024-03-02T10:00:00Z","state":"TX"}
{"id":"B3","created_at":"2024-03-03T10:00:00Z","state":"FL"}
"#;

const DAILY_CSV: &str = r#"
schedule = "daily at 02:00"
window = "previous_day"
[fields]
include = ["id", "state"]
[[deliver]]
to = "local"
path = "daily/{{date}}/leads.csv"
"#;

#[test]
fn backfill_runs_every_nominal_time_with_its_own_window() {
    let ws = Workspace::new();
    ws.definition("daily", DAILY_CSV).ingest(THREE_DAYS);
    let listed = ws
        .exportd()
        .args([
            "backfill",
            "daily",
            "--from",
            "2024-03-02",
            "--to",
            "2024-03-04T12:00:00Z",
            "--dry-run",
        ])
        .run()
        .success();
    let planned = listed
        .stdout_lines()
        .iter()
        .filter(|l| l.contains(": window "))
        .count();
    assert_eq!(planned, 3, "{}", listed.stdout);
    assert!(
        listed
            .stdout
            .contains("2024-03-02T02:00:00+00:00: window 2024-03-01T00:00:00+00:00")
    );
    assert!(ws.files("daily").is_empty(), "a dry run writes nothing");
    ws.exportd()
        .args([
            "backfill",
            "daily",
            "--from",
            "2024-03-02",
            "--to",
            "2024-03-04T12:00:00Z",
        ])
        .run()
        .success();
    assert_eq!(ws.read("daily/2024-03-01/leads.csv"), "id,state\nB1,CA\n");
    assert_eq!(ws.read("daily/2024-03-02/leads.csv"), "id,state\nB2,TX\n");
    assert_eq!(ws.read("daily/2024-03-03/leads.csv"), "id,state\nB3,FL\n");
    // The runs are recorded, so `status` shows the last one.
    let status = ws
        .exportd()
        .args(["status", "--format", "json"])
        .run()
        .success();
    let rows = status.json();
    assert_eq!(rows[0]["export"], "daily");
    assert_eq!(rows[0]["state"], "valid");
    assert_eq!(rows[0]["last_run"]["state"], "completed");
    assert_eq!(rows[0]["last_run"]["trigger"], "backfill");
    assert_eq!(rows[0]["last_run"]["rows"], 1);
}

#[test]
fn archive_entries_are_named_after_the_delivered_file_and_staging_is_cleaned() {
    let ws = Workspace::new();
    ws.definition(
        "zipped",
        r#"
window = "all"
[format]
type = "csv"
compression = "zip"
[chunk]
max_rows = 2
[[deliver]]
to = "local"
path = "zipped/leads_{{part}}.csv.zip"
"#,
    )
    .ingest(THREE_DAYS);
    ws.export("zipped", "2024-04-01T00:00:00Z");
    for part in ["001", "002"] {
        let file = ws.output(&format!("zipped/leads_{part}.csv.zip"));
        let listing = Command::new("unzip")
            .arg("-Z1")
            .arg(&file)
            .output()
            .expect("unzip (Debian package `unzip`)");
        assert_eq!(
            String::from_utf8_lossy(&listing.stdout).trim(),
            format!("leads_{part}.csv")
        );
    }
    let staging = ws.path().join("var/staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging still holds {left:?}");
}
