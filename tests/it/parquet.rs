//! `type = "parquet"`: files written by the real binary, opened with pyarrow and DuckDB (from
//! the test venv, `scripts/services/pyarrow.sh`), checked against the manifest and against a
//! CSV export of the same rows.

use crate::export::Workspace;
use crate::util::service;
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::Command;

/// Runs a Python snippet with the test venv's interpreter (pyarrow and duckdb installed);
/// the snippet prints one JSON document.
fn python(script: &str, dir: &Path) -> Json {
    let output = Command::new(service("EXPORTD_TEST_PYTHON"))
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("running the test venv's python");
    assert!(
        output.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

const DEFINITION: &str = r#"
window = "all"
[fields]
include = ["id", "created_at", "source", "outcome", "revenue", "cost", "email", "state"]
computed = { margin = "revenue - cost", profitable = "revenue > cost", hour = "hour(created_at)" }
mask = { email = "email" }
[format]
type = "FORMAT"
COMPRESSION
[chunk]
max_rows = 300
[[deliver]]
to = "local"
path = "pq/leads_{{part}}.{{ext}}"
"#;

fn definition(format: &str, compression: &str) -> String {
    DEFINITION
        .replace("FORMAT", format)
        .replace("COMPRESSION", compression)
}

#[test]
fn pyarrow_and_duckdb_read_typed_columns_and_every_row() {
    let ws = Workspace::new();
    ws.exportd()
        .args(["demo", "--leads", "700", "--seed", "11", "--days", "3"])
        .args(["--end", "2024-02-01T00:00:00Z"])
        .run()
        .success();
    ws.definition(
        "pq",
        &definition("parquet", "compression = \"zstd\"\nrow_group_rows = 128"),
    );
    ws.export("pq", "2024-02-01T00:00:00Z");
    let files = ws.files("pq");
    assert_eq!(
        files,
        [
            "_manifest.json",
            "leads_001.parquet",
            "leads_002.parquet",
            "leads_003.parquet"
        ]
    );
    let manifest: Json =
        serde_json::from_str(&ws.read("pq/_manifest.json")).expect("manifest is JSON");
    let rows: Vec<u64> = manifest["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| p["rows"].as_u64().expect("rows"))
        .collect();
    assert_eq!(rows, [300, 300, 100]);

    let read = python(
        r#"
import json, glob, pyarrow.parquet as pq, duckdb
parts = []
for name in sorted(glob.glob("leads_*.parquet")):
    f = pq.ParquetFile(name)
    parts.append({
        "rows": f.metadata.num_rows,
        "row_groups": [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)],
        "codec": f.metadata.row_group(0).column(0).compression,
    })
schema = {field.name: str(field.type) for field in pq.read_schema("leads_001.parquet")}
table = pq.read_table("leads_001.parquet")
first = table.slice(0, 1).to_pylist()[0]
con = duckdb.connect()
count, revenue, margin, profitable = con.execute(
    "SELECT count(*), CAST(sum(revenue) AS VARCHAR), CAST(sum(margin) AS VARCHAR), "
    "count(*) FILTER (WHERE profitable) FROM read_parquet('leads_*.parquet')").fetchone()
print(json.dumps({
    "parts": parts, "schema": schema,
    "first": {k: str(v) for k, v in first.items()},
    "duckdb": {"count": count, "revenue": revenue, "margin": margin, "profitable": profitable},
}))
"#,
        &ws.output("pq"),
    );
    assert_eq!(
        read["parts"],
        json!([
            {"rows": 300, "row_groups": [128, 128, 44], "codec": "ZSTD"},
            {"rows": 300, "row_groups": [128, 128, 44], "codec": "ZSTD"},
            {"rows": 100, "row_groups": [100], "codec": "ZSTD"},
        ])
    );
    assert_eq!(
        read["schema"],
        json!({
            "id": "string",
            "created_at": "timestamp[us, tz=UTC]",
            "source": "string",
            "outcome": "string",
            "revenue": "decimal128(18, 4)",
            "cost": "decimal128(18, 4)",
            "email": "string",
            "state": "string",
            "hour": "int64",
            "margin": "decimal128(18, 4)",
            "profitable": "bool",
        })
    );
    // Masked in parquet as in every format.
    let email = read["first"]["email"].as_str().expect("email text");
    assert!(email.contains("***"), "{email}");

    // The same rows exported as CSV give the same totals, to the cent.
    ws.definition("csv", &definition("csv", "").replace("pq/", "csv/"));
    ws.export("csv", "2024-02-01T00:00:00Z");
    let mut count = 0u64;
    let mut profitable = 0u64;
    let mut revenue = rust_decimal::Decimal::ZERO;
    let mut margin = rust_decimal::Decimal::ZERO;
    for part in ws.files("csv").iter().filter(|f| f.ends_with(".csv")) {
        let text = ws.read(&format!("csv/{part}"));
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().expect("header").clone();
        let col = |name: &str| header.iter().position(|h| h == name).expect(name);
        let (r, m, p) = (col("revenue"), col("margin"), col("profitable"));
        for record in reader.records() {
            let record = record.expect("record");
            count += 1;
            let dec = |i: usize| {
                let cell = &record[i];
                if cell.is_empty() {
                    rust_decimal::Decimal::ZERO
                } else {
                    cell.parse().expect("decimal")
                }
            };
            revenue += dec(r);
            margin += dec(m);
            profitable += u64::from(&record[p] == "true");
        }
    }
    assert_eq!(count, 700);
    let duck = &read["duckdb"];
    assert_eq!(duck["count"], json!(count));
    assert_eq!(duck["profitable"], json!(profitable));
    let duck_decimal = |key: &str| -> rust_decimal::Decimal {
        duck[key].as_str().expect(key).parse().expect("decimal")
    };
    assert_eq!(duck_decimal("revenue"), revenue);
    assert_eq!(duck_decimal("margin"), margin);
}

#[test]
fn snappy_and_uncompressed_parquet_open_in_pyarrow() {
    for (compression, codec) in [("snappy", "SNAPPY"), ("none", "UNCOMPRESSED")] {
        let ws = Workspace::new();
        ws.exportd()
            .args(["demo", "--leads", "50", "--seed", "3", "--days", "1"])
            .args(["--end", "2024-02-01T00:00:00Z"])
            .run()
            .success();
        ws.definition(
            "pq",
            &definition("parquet", &format!("compression = \"{compression}\"")),
        );
        ws.export("pq", "2024-02-01T00:00:00Z");
        let read = python(
            r#"
import json, pyarrow.parquet as pq
f = pq.ParquetFile("leads_001.parquet")
print(json.dumps({"rows": f.metadata.num_rows, "codec": f.metadata.row_group(0).column(0).compression}))
"#,
            &ws.output("pq"),
        );
        assert_eq!(read, json!({"rows": 50, "codec": codec}), "{compression}");
    }
}

#[test]
fn parquet_refuses_an_outer_compression_with_the_line_of_the_key() {
    let ws = Workspace::new();
    ws.definition(
        "pq",
        "window = \"all\"\n[format]\ntype = \"parquet\"\ncompression = \"gzip\"\n\
         [[deliver]]\nto = \"local\"\npath = \"pq/leads.parquet\"\n",
    );
    let output = ws.exportd().arg("validate").run().failure();
    assert!(
        output.stdout.contains(
            "pq.toml:4:15: error: parquet compresses its columns inside the file: use `compression = \"zstd\"` (default), `\"snappy\"` or `\"none\"`"
        ),
        "{}",
        output.stdout
    );
    let ws = Workspace::new();
    ws.definition(
        "c",
        "window = \"all\"\n[format]\ntype = \"csv\"\ncompression = \"snappy\"\n\
         [[deliver]]\nto = \"local\"\npath = \"c/leads.csv\"\n",
    );
    let output = ws.exportd().arg("validate").run().failure();
    assert!(
        output
            .stdout
            .contains("c.toml:4:15: error: `snappy` is a parquet codec"),
        "{}",
        output.stdout
    );
}
