//! `exportd retention` end to end on the local destination: real runs fill the ledger, their
//! delivery times are moved into the past in the state store (simulated age: the only thing
//! changed by hand), and the sweep must delete exactly the expired ledger objects.

use crate::export::Workspace;
use std::path::Path;

const LEADS: &str = r#"{"id":"A","created_at":"2024-01-13T10:00:00Z","state":"CA"}
{"id":"B","created_at":"2024-01-14T10:00:00Z","state":"TX"}
{"id":"C","created_at":"2024-01-15T10:00:00Z","state":"NY"}
"#;

const DAILY: &str = r#"
schedule = "daily at 02:00"
window = "previous_day"
[format]
type = "csv"
[[deliver]]
to = "local"
path = "daily/{{date}}/leads.csv"
retention = "30d"
"#;

/// Runs SQL on the state store with the sqlite3 tool; returns its output.
fn sql_run(ws: &Workspace, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg(ws.path().join("var/state.db"))
        .arg(sql)
        .output()
        .expect("sqlite3 (installed by scripts/test.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Moves every ledger entry of `run` (`daily/20240114T020000Z`) `days` into the past, expiry
/// included, as if it had been delivered then.
fn age_run(ws: &Workspace, run: &str, days: i64) {
    let shift = days * 86_400_000;
    let update = format!(
        "UPDATE ledger SET delivered_at = delivered_at - {shift}, \
         expires_at = expires_at - {shift} WHERE run_id = '{run}';"
    );
    sql_run(ws, &update);
}

#[test]
fn retention_deletes_expired_ledger_objects_only_and_keeps_the_newest_run() {
    let ws = Workspace::new();
    ws.ingest(LEADS).definition("daily", DAILY);
    for at in [
        "2024-01-14T02:00:00Z",
        "2024-01-15T02:00:00Z",
        "2024-01-16T02:00:00Z",
    ] {
        ws.export("daily", at);
    }
    age_run(&ws, "daily/20240114T020000Z", 60);
    age_run(&ws, "daily/20240115T020000Z", 45);
    // Someone else's file under the same prefix, as old as the oldest export.
    let foreign = ws.output("daily/2024-01-13/notes.txt");
    std::fs::write(&foreign, "not exportd's").unwrap();

    let dry = ws
        .exportd()
        .args(["retention", "--dry-run"])
        .run()
        .success();
    let text = &dry.stdout;
    assert!(
        text.contains("would delete 4 object(s)"),
        "two expired runs, a file and a manifest each (the newest run is not expired): {text}"
    );
    assert!(ws.output("daily/2024-01-13/leads.csv").exists());

    let swept = ws.exportd().args(["retention"]).run().success();
    assert!(
        swept.stdout.contains("deleted 4 object(s)"),
        "{}",
        swept.stdout
    );
    assert!(!ws.output("daily/2024-01-13/leads.csv").exists());
    assert!(!ws.output("daily/2024-01-13/_manifest.json").exists());
    assert!(!ws.output("daily/2024-01-14/leads.csv").exists());
    assert!(
        ws.output("daily/2024-01-15/leads.csv").exists(),
        "the newest run stays (keep_last = 1), however old"
    );
    assert!(
        Path::new(&foreign).exists(),
        "files not in the ledger are never touched"
    );

    assert_eq!(
        sql_run(&ws, "SELECT state FROM runs ORDER BY nominal;"),
        "expired\nexpired\ncompleted\n",
        "runs whose objects are all gone are expired"
    );

    let again = ws.exportd().args(["retention"]).run().success();
    assert!(again.stdout.contains("nothing has expired") || again.stdout.contains("deleted 0"));
}

#[test]
fn a_changed_file_is_skipped_and_reported_with_exit_status_1() {
    let ws = Workspace::new();
    ws.ingest(LEADS).definition("daily", DAILY);
    ws.export("daily", "2024-01-14T02:00:00Z");
    ws.export("daily", "2024-01-16T02:00:00Z");
    age_run(&ws, "daily/20240114T020000Z", 90);
    let changed = ws.output("daily/2024-01-13/leads.csv");
    std::fs::write(&changed, "edited by hand\n").unwrap();

    let out = ws.exportd().args(["retention"]).run().failure();
    assert!(
        out.stdout.contains("SKIPPED: changed since delivery"),
        "{}",
        out.stdout
    );
    assert!(changed.exists());
}
