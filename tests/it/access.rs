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

/// `POST /v1/exports/adhoc` against the real daemon: only admins, the definition validated
/// as a file would be (errors with their line), one run now, its output delivered, and the
/// API requests and the daemon's action in the audit log.
#[test]
fn adhoc_exports_are_validated_like_files_run_once_and_audited() {
    use crate::secrets::Daemon;
    let ws = Workspace::new();
    ws.ingest(
        "{\"id\":\"A\",\"created_at\":\"2024-01-14T10:00:00Z\",\"state\":\"CA\"}\n\
         {\"id\":\"B\",\"created_at\":\"2024-01-14T11:00:00Z\",\"state\":\"TX\"}\n",
    );
    let hash = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    std::fs::write(
        ws.path().join("exportd.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [[access.tokens]]\nname = \"alice\"\nrole = \"admin\"\nsha256 = \"{}\"\n\n\
             [[access.tokens]]\nname = \"otto\"\nrole = \"operations\"\nsha256 = \"{}\"\n",
            hash("exd_admin_it"),
            hash("exd_ops_it")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(ws.path().join("exports.d")).unwrap();
    let daemon = Daemon::start(ws.path(), &[]);
    let definition = "window = \"all\"\n[fields]\ninclude = [\"lead_id\", \"state\"]\n[[deliver]]\nto = \"local\"\npath = \"adhoc/{{export}}.csv\"\n";
    let body = serde_json::json!({ "name": "q1", "definition": definition }).to_string();

    let (status, reply) = daemon.http_body("POST", "/v1/exports/adhoc", "exd_ops_it", &body);
    assert_eq!(status, 403, "{reply}");

    let broken = serde_json::json!({
        "name": "bad",
        "definition": "window = \"all\"\n[format]\nfromat = \"csv\"\n",
    })
    .to_string();
    let (status, reply) = daemon.http_body("POST", "/v1/exports/adhoc", "exd_admin_it", &broken);
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply.contains("adhoc-bad.toml:3:") && reply.contains("fromat"),
        "{reply}"
    );

    let (status, reply) = daemon.http_body("POST", "/v1/exports/adhoc", "exd_admin_it", &body);
    assert_eq!(status, 202, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let status_url = reply["status_url"].as_str().unwrap().to_owned();
    assert!(status_url.starts_with("/v1/runs/adhoc-q1/"), "{status_url}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, run) = daemon.http("GET", &status_url, "exd_admin_it");
        if status == 200 && run.contains("\"completed\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ad-hoc run did not complete: {status} {run}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(ws.read("adhoc/adhoc-q1.csv"), "lead_id,state\nA,CA\nB,TX\n");
    // Nothing was written to exports.d: the run was once, not a new scheduled export.
    assert_eq!(
        std::fs::read_dir(ws.path().join("exports.d"))
            .unwrap()
            .count(),
        0
    );
    drop(daemon);

    let entries = audit_lines(&ws);
    for expected in [
        "otto api POST /v1/exports/adhoc 403",
        "alice api POST /v1/exports/adhoc 400",
        "alice api POST /v1/exports/adhoc 202",
        "daemon adhoc adhoc-bad invalid",
        "daemon adhoc adhoc-q1 started",
    ] {
        assert!(
            entries.iter().any(|e| e == expected),
            "`{expected}` not in the audit log:\n{}",
            entries.join("\n")
        );
    }
}

/// `POST /v1/exports/{name}/suspend|resume` against the real daemon: operations and admins
/// only, the status shows it (nothing scheduled while suspended), a file's `suspend = true`
/// is not overridden, and every step is in the audit log.
#[test]
fn suspend_and_resume_stop_and_restart_scheduling_and_are_audited() {
    use crate::secrets::Daemon;
    let ws = Workspace::new();
    let hash = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    let mut config = "[http]\nlisten = \"127.0.0.1:0\"\n".to_owned();
    for (name, role, token) in [
        ("alice", "admin", "exd_admin_it"),
        ("otto", "operations", "exd_ops_it"),
        ("ana", "analyst", "exd_analyst_it"),
    ] {
        config.push_str(&format!(
            "\n[[access.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            hash(token)
        ));
    }
    std::fs::write(ws.path().join("exportd.toml"), config).unwrap();
    let deliver = "[[deliver]]\nto = \"local\"\npath = \"x/{{export}}.csv\"\n";
    ws.definition(
        "tick",
        &format!("schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n{deliver}"),
    );
    ws.definition(
        "parked",
        &format!(
            "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\nsuspend = true\n{deliver}"
        ),
    );
    let daemon = Daemon::start(ws.path(), &[]);
    let status = |name: &str| -> serde_json::Value {
        let (code, body) = daemon.http("GET", &format!("/v1/exports/{name}"), "exd_admin_it");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let post = |token: &str, path: &str| -> (u16, serde_json::Value) {
        let (code, body) = daemon.http("POST", path, token);
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
        )
    };
    let before = status("tick");
    assert_eq!(before["condition"], "ready", "{before}");
    assert!(
        !before["next_runs"].as_array().unwrap().is_empty(),
        "{before}"
    );

    let (code, body) = post("exd_analyst_it", "/v1/exports/tick/suspend");
    assert_eq!(code, 403, "{body}");
    assert_eq!(status("tick")["condition"], "ready");

    let (code, body) = post("exd_ops_it", "/v1/exports/tick/suspend");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["changed"], true);
    let suspended = status("tick");
    assert_eq!(suspended["condition"], "suspended", "{suspended}");
    assert!(
        suspended["reason"]
            .as_str()
            .unwrap()
            .contains("/v1/exports/tick/resume")
    );
    assert_eq!(suspended["next_runs"], serde_json::json!([]), "{suspended}");
    let (code, body) = post("exd_ops_it", "/v1/exports/tick/suspend");
    assert_eq!(
        (code, &body["changed"]),
        (200, &serde_json::json!(false)),
        "{body}"
    );

    let (code, body) = post("exd_admin_it", "/v1/exports/tick/resume");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["changed"], true);
    let resumed = status("tick");
    assert_eq!(resumed["condition"], "ready", "{resumed}");
    assert_eq!(resumed["next_runs"], before["next_runs"], "{resumed}");

    let (code, body) = post("exd_admin_it", "/v1/exports/parked/resume");
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("suspend = false"),
        "{body}"
    );
    assert_eq!(status("parked")["condition"], "suspended");
    let (code, _) = post("exd_admin_it", "/v1/exports/nope/suspend");
    assert_eq!(code, 404);
    drop(daemon);

    let entries = audit_lines(&ws);
    for expected in [
        "ana api POST /v1/exports/tick/suspend 403",
        "otto api POST /v1/exports/tick/suspend 200",
        "alice api POST /v1/exports/tick/resume 200",
        "daemon suspend tick ok",
        "daemon suspend tick unchanged",
        "daemon resume tick ok",
        "daemon resume parked refused: `suspend = true` in its file",
        "alice api POST /v1/exports/parked/resume 409",
    ] {
        assert!(
            entries.iter().any(|e| e == expected),
            "`{expected}` not in the audit log:\n{}",
            entries.join("\n")
        );
    }
}

/// `DELETE /v1/runs/{export}/{run}/files` against the real daemon: admins only; it deletes
/// what the ledger lists for that run and nothing else (not a file planted beside it, not
/// another run's), the run becomes expired, and each deletion is audited under the caller.
#[test]
fn deleting_a_runs_files_is_for_admins_goes_through_the_ledger_and_is_audited() {
    use crate::secrets::Daemon;
    let ws = Workspace::new();
    ws.ingest("{\"id\":\"A\",\"created_at\":\"2024-01-14T10:00:00Z\",\"state\":\"CA\"}\n");
    let hash = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    let mut config = "[http]\nlisten = \"127.0.0.1:0\"\n".to_owned();
    for (name, role, token) in [
        ("alice", "admin", "exd_admin_del"),
        ("otto", "operations", "exd_ops_del"),
        ("ana", "analyst", "exd_analyst_del"),
        ("audrey", "auditor", "exd_auditor_del"),
    ] {
        config.push_str(&format!(
            "\n[[access.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            hash(token)
        ));
    }
    std::fs::write(ws.path().join("exportd.toml"), config).unwrap();
    ws.definition(
        "tick",
        "schedule = \"daily at 02:00\"\nwindow = \"all\"\n[fields]\ninclude = [\"lead_id\", \"state\"]\n\
         [[deliver]]\nto = \"local\"\npath = \"x/{{run_id}}/part_{{part}}.csv\"\n",
    );
    let daemon = Daemon::start(ws.path(), &[]);
    let run = |n: usize| -> String {
        let (code, body) = daemon.http("POST", "/v1/exports/tick/run", "exd_ops_del");
        assert_eq!(code, 202, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        let id = reply["run_id"].as_str().unwrap().to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, run) = daemon.http("GET", &format!("/v1/runs/{id}"), "exd_admin_del");
            if run.contains("\"completed\"") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "run {n}: {run}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        id
    };
    let first = run(1);
    // Runs triggered within the same second share a nominal time: wait for the next one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = run(2);
    assert_ne!(first, second);
    let run_dir = |id: &str| ws.output(&format!("x/{}", id.split_once('/').unwrap().1));
    let planted = run_dir(&first).join("notes.txt");
    std::fs::write(&planted, "not exportd's").unwrap();

    let delete = format!("/v1/runs/{first}/files");
    for token in ["exd_ops_del", "exd_analyst_del", "exd_auditor_del"] {
        let (code, body) = daemon.http("DELETE", &delete, token);
        assert_eq!(code, 403, "{token}: {body}");
        assert!(body.contains("delete delivered files"), "{body}");
    }
    assert!(run_dir(&first).join("part_001.csv").exists());

    let (code, body) = daemon.http("DELETE", &delete, "exd_admin_del");
    assert_eq!(code, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&reply["deleted"], &reply["skipped"], &reply["expired"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(0),
            &serde_json::json!(true)
        ),
        "the part and the manifest: {reply}"
    );
    assert!(!run_dir(&first).join("part_001.csv").exists());
    assert!(!run_dir(&first).join("_manifest.json").exists());
    assert!(planted.exists(), "a file exportd did not write survives");
    assert!(
        run_dir(&second).join("part_001.csv").exists(),
        "another run's file stays"
    );
    let (_, record) = daemon.http("GET", &format!("/v1/runs/{first}"), "exd_admin_del");
    assert!(record.contains("\"expired\""), "{record}");
    let (code, body) = daemon.http(
        "DELETE",
        "/v1/runs/tick/20990101T000000Z/files",
        "exd_admin_del",
    );
    assert_eq!(code, 404, "{body}");
    drop(daemon);

    let entries = audit_lines(&ws);
    let deletions: Vec<&String> = entries
        .iter()
        .filter(|e| e.split(' ').nth(1) == Some("retention"))
        .collect();
    assert_eq!(
        deletions.len(),
        2,
        "the part and the manifest: {entries:#?}"
    );
    for line in deletions {
        assert!(
            line.starts_with("alice retention local#0 ") && line.ends_with(" deleted"),
            "{line}"
        );
    }
}

/// The audit log through `exportd audit`, one `actor action target outcome` line per entry.
fn audit_lines(ws: &Workspace) -> Vec<String> {
    let log = ws
        .exportd()
        .args(["audit", "--format", "json"])
        .run()
        .success()
        .json();
    log.as_array()
        .expect("a JSON array")
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["actor"].as_str().unwrap_or_default(),
                e["action"].as_str().unwrap_or_default(),
                e["target"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default()
            )
        })
        .collect()
}
