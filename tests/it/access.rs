//! `exportd token new` and `exportd audit` through the real binary.

use crate::export::Workspace;
use crate::util::Test;
use sha2::{Digest, Sha256};

#[test]
fn token_new_prints_a_token_once_and_the_hash_to_paste() {
    let out = Test::new()
        .args(["token", "new", "grafana", "--role", "auditor"])
        .run()
        .success();
    let token = out
        .stdout
        .lines()
        .find_map(|l| l.split_once("): ").map(|(_, t)| t.trim().to_owned()))
        .expect("a token line");
    assert!(token.starts_with("exd_") && token.len() == 68, "{token}");
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    assert!(
        out.stdout.contains(&format!("sha256 = \"{hash}\"")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("role = \"auditor\""));
    // The printed table is valid exportd.toml.
    let config: String = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("[[access.tokens]]"))
        .map(|l| format!("{l}\n"))
        .collect();
    Test::new()
        .file("exportd.toml", &config)
        .args(["validate"])
        .run()
        .success();
    let again = Test::new()
        .args(["token", "new", "grafana", "--role", "auditor"])
        .run()
        .success();
    assert!(!again.stdout.contains(&token), "every token is new");
}

#[test]
fn deliveries_are_in_the_audit_log() {
    let ws = Workspace::new();
    ws.ingest(r#"{"id":"A","created_at":"2024-01-14T10:00:00Z","state":"CA"}"#)
        .definition(
            "daily",
            "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n[[deliver]]\nto = \"local\"\npath = \"daily/{{date}}.csv\"\n",
        );
    ws.export("daily", "2024-01-15T02:00:00Z");
    let log = ws
        .exportd()
        .args(["audit", "--action", "delivery", "--format", "json"])
        .run()
        .success()
        .json();
    let targets: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with("local#0 ") && t.ends_with("daily/2024-01-14.csv")),
        "{targets:?}"
    );
    assert!(
        targets.iter().any(|t| t.ends_with("_manifest.json")),
        "{targets:?}"
    );
}
