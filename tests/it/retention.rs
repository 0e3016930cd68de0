//! `exportd retention` end to end on the local destination, on S3 (moto) and on SFTP (sshd):
//! real runs fill the ledger, their delivery times are moved into the past in the state store
//! (simulated age: the only thing changed by hand), and the sweep must delete exactly the
//! expired ledger objects.

use crate::export::Workspace;
use crate::util::service;
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

// ---------------------------------------------------------------------------------------------
// Remote destinations: S3 (moto) and SFTP (sshd), same scenario
// ---------------------------------------------------------------------------------------------

/// Leads of four days, one run each.
const FOUR_DAYS: &str = r#"{"id":"A","created_at":"2024-01-13T10:00:00Z","state":"CA"}
{"id":"B","created_at":"2024-01-14T10:00:00Z","state":"TX"}
{"id":"C","created_at":"2024-01-15T10:00:00Z","state":"NY"}
{"id":"D","created_at":"2024-01-16T10:00:00Z","state":"WA"}
"#;

/// A remote destination as the test sees it through a client other than exportd's.
trait Remote {
    /// exportd.toml's `[connections.remote]`.
    fn connection(&self) -> String;
    /// The `[[deliver]]` table, objects under `prefix`.
    fn deliver(&self, prefix: &str) -> String;
    /// Every key under `prefix`, sorted, relative to it.
    fn list(&self, prefix: &str) -> Vec<String>;
    /// Writes `text` under `key` (a foreign object, or an edit of ours).
    fn write(&self, key: &str, text: &str);
}

struct S3;

impl Remote for S3 {
    fn connection(&self) -> String {
        format!(
            r#"
[connections.remote]
type = "s3"
region = "us-east-1"
endpoint = "{}"
path_style = true
allow_insecure = true
access_key_id = {{ env = "EXPORTD_TEST_S3_ACCESS_KEY_ID" }}
secret_access_key = {{ env = "EXPORTD_TEST_S3_SECRET_ACCESS_KEY" }}
"#,
            service("EXPORTD_TEST_S3_ENDPOINT")
        )
    }

    fn deliver(&self, prefix: &str) -> String {
        format!(
            "to = \"s3\"\nconnection = \"remote\"\nbucket = \"{}\"\npath = \"{prefix}/{{{{date}}}}/leads.csv\"\n",
            service("EXPORTD_TEST_S3_BUCKET")
        )
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        let keys: Vec<String> = serde_json::from_str(&crate::objects::s3_probe(&[
            "list",
            &service("EXPORTD_TEST_S3_BUCKET"),
            &format!("{prefix}/"),
        ]))
        .expect("a JSON list");
        let mut keys: Vec<String> = keys
            .into_iter()
            .map(|k| k[prefix.len() + 1..].to_owned())
            .collect();
        keys.sort();
        keys
    }

    fn write(&self, key: &str, text: &str) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        crate::objects::s3_probe(&[
            "put",
            &service("EXPORTD_TEST_S3_BUCKET"),
            key,
            file.path().to_str().expect("UTF-8"),
        ]);
    }
}

/// The SFTP server's files are a directory on this machine: the test reads and writes them
/// directly, as another user of the server would.
struct Sftp;

impl Remote for Sftp {
    fn connection(&self) -> String {
        format!(
            "[connections.remote]\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"root\"\nprivate_key = {{ file = \"{}\" }}\nknown_hosts = \"{}\"\ntimeout_seconds = 10\n",
            service("EXPORTD_TEST_SFTP_PORT"),
            service("EXPORTD_TEST_SFTP_CLIENT_KEY"),
            service("EXPORTD_TEST_SFTP_KNOWN_HOSTS"),
        )
    }

    fn deliver(&self, prefix: &str) -> String {
        format!(
            "to = \"sftp\"\nconnection = \"remote\"\npath = \"{prefix}/{{{{date}}}}/leads.csv\"\n"
        )
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let relative = path.strip_prefix(root).expect("under root");
                    out.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        let root = Path::new(&service("EXPORTD_TEST_SFTP_FILES")).join(prefix);
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    fn write(&self, key: &str, text: &str) {
        let path = Path::new(&service("EXPORTD_TEST_SFTP_FILES")).join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

/// fake-gcs-server: objects read and written through its JSON API with curl.
struct Gcs {
    /// A service account key that turns OAuth off (fake-gcs-server checks no token).
    key_file: tempfile::NamedTempFile,
}

impl Gcs {
    fn new() -> Gcs {
        let key_file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(
            key_file.path(),
            r#"{"private_key":"unused","private_key_id":"unused","client_email":"exportd@test.invalid","disable_oauth":true}"#,
        )
        .expect("write the key");
        Gcs { key_file }
    }
}

impl Remote for Gcs {
    fn connection(&self) -> String {
        format!(
            "[connections.remote]
type = \"gcs\"
endpoint = \"{}\"
allow_insecure = true
service_account_key = {{ file = \"{}\" }}
",
            service("EXPORTD_TEST_GCS_ENDPOINT"),
            self.key_file.path().display()
        )
    }

    fn deliver(&self, prefix: &str) -> String {
        format!(
            "to = \"gcs\"\nconnection = \"remote\"\nbucket = \"{}\"\npath = \"{prefix}/{{{{date}}}}/leads.csv\"\n",
            service("EXPORTD_TEST_GCS_BUCKET")
        )
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        relative_sorted(crate::objects::gcs_list(&format!("{prefix}/")), prefix)
    }

    fn write(&self, key: &str, text: &str) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            service("EXPORTD_TEST_GCS_ENDPOINT"),
            service("EXPORTD_TEST_GCS_BUCKET"),
            key.replace('/', "%2F")
        );
        crate::objects::curl(&[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", file.path().display()),
            &url,
        ]);
    }
}

/// Azurite: blobs read and written with object_store, a client independent of the daemon's
/// configuration.
struct Azure;

impl Remote for Azure {
    fn connection(&self) -> String {
        format!(
            "[connections.remote]
type = \"azure\"
account = \"{}\"
endpoint = \"{}\"
allow_insecure = true
access_key = {{ env = \"EXPORTD_TEST_AZURE_ACCESS_KEY\" }}
",
            service("EXPORTD_TEST_AZURE_ACCOUNT"),
            service("EXPORTD_TEST_AZURE_ENDPOINT"),
        )
    }

    fn deliver(&self, prefix: &str) -> String {
        format!(
            "to = \"azure\"\nconnection = \"remote\"\ncontainer = \"{}\"\npath = \"{prefix}/{{{{date}}}}/leads.csv\"\n",
            service("EXPORTD_TEST_AZURE_CONTAINER")
        )
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        relative_sorted(crate::objects::azure_list(prefix), prefix)
    }

    fn write(&self, key: &str, text: &str) {
        use object_store::ObjectStoreExt;
        let store = crate::objects::azure_store();
        let path = object_store::path::Path::parse(key).expect("a blob name");
        crate::objects::runtime()
            .block_on(store.put(&path, text.as_bytes().to_vec().into()))
            .expect("PUT blob");
    }
}

/// Keys under `prefix/`, relative to it, sorted.
fn relative_sorted(keys: Vec<String>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = keys
        .into_iter()
        .filter_map(|k| k.strip_prefix(&format!("{prefix}/")).map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// Four daily runs to `remote`; the three oldest aged past `retention = "30d"` (the newest of
/// those still protected by `keep_last = 2`), the newest left young. One expired file is edited
/// on the server and a foreign file is planted among the expired ones.
fn remote_sweep(remote: &dyn Remote, test: &str) {
    let prefix = format!("retention-{test}-{}-{}", std::process::id(), unique_nanos());
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("exportd.toml"),
        format!("[retention]\nkeep_last = 2\n{}", remote.connection()),
    )
    .expect("exportd.toml");
    let definition = format!(
        "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n[format]\ntype = \"csv\"\n[[deliver]]\n{}retention = \"30d\"\n",
        remote.deliver(&prefix)
    );
    ws.ingest(FOUR_DAYS).definition("daily", &definition);
    for day in 14..=17 {
        ws.export("daily", &format!("2024-01-{day}T02:00:00Z"))
            .success();
    }
    let delivered = [
        "2024-01-13/_manifest.json",
        "2024-01-13/leads.csv",
        "2024-01-14/_manifest.json",
        "2024-01-14/leads.csv",
        "2024-01-15/_manifest.json",
        "2024-01-15/leads.csv",
        "2024-01-16/_manifest.json",
        "2024-01-16/leads.csv",
    ];
    assert_eq!(remote.list(&prefix), delivered);
    age_run(&ws, "daily/20240114T020000Z", 90);
    age_run(&ws, "daily/20240115T020000Z", 80);
    age_run(&ws, "daily/20240116T020000Z", 70);
    remote.write(&format!("{prefix}/2024-01-13/notes.txt"), "not exportd's\n");
    remote.write(
        &format!("{prefix}/2024-01-14/leads.csv"),
        "lead_id,state\nB,TX\nedited by hand on the server\n",
    );
    let mut planted: Vec<String> = delivered.iter().map(|k| (*k).to_owned()).collect();
    planted.push("2024-01-13/notes.txt".into());
    planted.sort();

    let dry = ws
        .exportd()
        .args(["retention", "--dry-run"])
        .run()
        .failure();
    assert!(
        dry.stdout
            .contains("would delete 3 object(s); 1 skipped; 2 kept by keep_last"),
        "{}",
        dry.stdout
    );
    assert_eq!(remote.list(&prefix), planted, "a dry run deletes nothing");

    let swept = ws.exportd().args(["retention"]).run().failure();
    let text = &swept.stdout;
    assert!(
        text.contains("deleted 3 object(s); 1 skipped; 2 kept by keep_last"),
        "{text}"
    );
    let skipped: Vec<&str> = text.lines().filter(|l| l.contains("SKIPPED")).collect();
    assert_eq!(skipped.len(), 1, "{text}");
    assert!(
        skipped[0].contains("2024-01-14/leads.csv")
            && skipped[0].contains("changed since delivery"),
        "{text}"
    );
    assert_eq!(
        remote.list(&prefix),
        [
            "2024-01-13/notes.txt",
            "2024-01-14/leads.csv",
            "2024-01-15/_manifest.json",
            "2024-01-15/leads.csv",
            "2024-01-16/_manifest.json",
            "2024-01-16/leads.csv",
        ],
        "expired objects gone; the foreign file, the edited file, the keep_last run and the young run stay"
    );
    assert_eq!(
        sql_run(&ws, "SELECT state FROM runs ORDER BY nominal;"),
        "expired\ncompleted\ncompleted\ncompleted\n",
        "only the run whose objects are all gone is expired"
    );
}

fn unique_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

#[test]
fn s3_retention_deletes_expired_objects_and_spares_foreign_changed_and_protected_ones() {
    remote_sweep(&S3, "s3");
}

#[test]
fn sftp_retention_deletes_expired_objects_and_spares_foreign_changed_and_protected_ones() {
    remote_sweep(&Sftp, "sftp");
}

#[test]
fn gcs_retention_deletes_expired_objects_and_spares_foreign_changed_and_protected_ones() {
    remote_sweep(&Gcs::new(), "gcs");
}

#[test]
fn azure_retention_deletes_expired_objects_and_spares_foreign_changed_and_protected_ones() {
    remote_sweep(&Azure, "azure");
}

/// The storage class, size and ETag of an object, read back by boto3.
fn s3_head(key: &str) -> (String, u64, String) {
    s3_head_in(&service("EXPORTD_TEST_S3_BUCKET"), key)
}

fn s3_head_in(bucket: &str, key: &str) -> (String, u64, String) {
    let head: serde_json::Value =
        serde_json::from_str(&crate::objects::s3_probe(&["head", bucket, key])).expect("head JSON");
    (
        head["storage_class"].as_str().expect("a class").to_owned(),
        head["size"].as_u64().expect("a size"),
        head["etag"].as_str().expect("an ETag").to_owned(),
    )
}

#[test]
fn s3_transition_moves_old_ledger_objects_to_glacier_once_and_leaves_foreign_ones() {
    let prefix = format!("transition-{}-{}", std::process::id(), unique_nanos());
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("exportd.toml"),
        format!("[retention]\nkeep_last = 1\n{}", S3.connection()),
    )
    .expect("exportd.toml");
    let definition = format!(
        "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n[format]\ntype = \"csv\"\n[[deliver]]\n{}retention = \"90d\"\ntransition = {{ after = \"30d\", storage_class = \"GLACIER\" }}\n",
        S3.deliver(&prefix)
    );
    ws.ingest(FOUR_DAYS).definition("daily", &definition);
    ws.export("daily", "2024-01-14T02:00:00Z").success();
    ws.export("daily", "2024-01-15T02:00:00Z").success();
    age_run(&ws, "daily/20240114T020000Z", 40);
    let old = [
        format!("{prefix}/2024-01-13/_manifest.json"),
        format!("{prefix}/2024-01-13/leads.csv"),
    ];
    let young = format!("{prefix}/2024-01-14/leads.csv");
    // Someone else's object among the old ones: not in the ledger, never moved.
    let foreign = format!("{prefix}/2024-01-13/notes.txt");
    S3.write(&foreign, "not exportd's\n");
    let before: Vec<(String, u64, String)> = old.iter().map(|k| s3_head(k)).collect();
    assert!(
        before.iter().all(|(class, _, _)| class == "STANDARD"),
        "{before:?}"
    );

    let dry = ws
        .exportd()
        .args(["retention", "--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout
            .contains("would transition 2 object(s) to another storage class; 0 not transitioned"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("would transition to GLACIER"),
        "{}",
        dry.stdout
    );
    assert_eq!(s3_head(&old[1]).0, "STANDARD", "a dry run moves nothing");
    assert_eq!(
        sql_run(
            &ws,
            "SELECT count(*) FROM ledger WHERE transitioned_at IS NOT NULL;"
        ),
        "0\n"
    );

    let swept = ws.exportd().args(["retention"]).run().success();
    assert!(
        swept
            .stdout
            .contains("transitioned 2 object(s) to another storage class; 0 not transitioned"),
        "{}",
        swept.stdout
    );
    assert!(
        swept.stdout.contains("deleted 0 object(s)"),
        "{}",
        swept.stdout
    );
    for (key, (_, size, etag)) in old.iter().zip(&before) {
        let (class, now_size, now_etag) = s3_head(key);
        assert_eq!(class, "GLACIER", "{key}");
        assert_eq!(
            (now_size, &now_etag),
            (*size, etag),
            "{key}: same bytes (an unchanged MD5 ETag), another class"
        );
    }
    assert_eq!(s3_head(&young).0, "STANDARD", "too young to move");
    assert_eq!(s3_head(&foreign).0, "STANDARD", "not in the ledger");
    assert_eq!(
        sql_run(
            &ws,
            "SELECT count(*) FROM ledger WHERE transitioned_at IS NOT NULL;"
        ),
        "2\n"
    );
    let audited = "SELECT count(*) FROM audit WHERE action = 'retention' \
                   AND outcome = 'transitioned to GLACIER';";
    assert_eq!(sql_run(&ws, audited), "2\n");

    let again = ws.exportd().args(["retention"]).run().success();
    assert!(
        !again.stdout.contains("transition"),
        "moved once: {}",
        again.stdout
    );
    assert_eq!(sql_run(&ws, audited), "2\n");

    // Past retention, the archived objects are deleted on their size alone (an archive
    // class cannot be read back to hash it); the foreign one stays.
    age_run(&ws, "daily/20240114T020000Z", 60);
    let expired = ws.exportd().args(["retention"]).run().success();
    assert!(
        expired.stdout.contains("deleted 2 object(s); 0 skipped"),
        "{}",
        expired.stdout
    );
    assert_eq!(
        S3.list(&prefix),
        [
            "2024-01-13/notes.txt",
            "2024-01-14/_manifest.json",
            "2024-01-14/leads.csv"
        ]
    );
}

#[test]
fn s3_transition_reaches_each_export_s_own_bucket() {
    // Two exports whose first destination has the same ledger name (`s3#0`) but another
    // bucket: each object must be looked for, and moved, where its own export put it.
    let second = "exportd-transition-second";
    crate::objects::s3_probe(&["mkbucket", second]);
    let prefix = format!("transition-two-{}-{}", std::process::id(), unique_nanos());
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("exportd.toml"),
        format!("[retention]\nkeep_last = 0\n{}", S3.connection()),
    )
    .expect("exportd.toml");
    let definition = |bucket: &str, name: &str| {
        format!(
            "schedule = \"daily at 02:00\"\nwindow = \"previous_day\"\n[format]\ntype = \"csv\"\n[[deliver]]\nto = \"s3\"\nconnection = \"remote\"\nbucket = \"{bucket}\"\npath = \"{prefix}/{name}/{{{{date}}}}.csv\"\nretention = \"90d\"\ntransition = {{ after = \"30d\", storage_class = \"GLACIER\" }}\n"
        )
    };
    ws.ingest(FOUR_DAYS)
        .definition("a", &definition(&service("EXPORTD_TEST_S3_BUCKET"), "a"))
        .definition("b", &definition(second, "b"));
    ws.export("a", "2024-01-14T02:00:00Z").success();
    ws.export("b", "2024-01-14T02:00:00Z").success();
    age_run(&ws, "a/20240114T020000Z", 40);
    age_run(&ws, "b/20240114T020000Z", 40);

    let swept = ws.exportd().args(["retention"]).run().success();
    assert!(
        swept
            .stdout
            .contains("transitioned 4 object(s) to another storage class; 0 not transitioned"),
        "{}",
        swept.stdout
    );
    assert_eq!(s3_head(&format!("{prefix}/a/2024-01-13.csv")).0, "GLACIER");
    assert_eq!(
        s3_head_in(second, &format!("{prefix}/b/2024-01-13.csv")).0,
        "GLACIER"
    );

    // Deletion looks in the right bucket too: nothing is taken for "already gone".
    age_run(&ws, "a/20240114T020000Z", 60);
    age_run(&ws, "b/20240114T020000Z", 60);
    let swept = ws.exportd().args(["retention"]).run().success();
    assert!(
        swept.stdout.contains("deleted 4 object(s); 0 skipped"),
        "{}",
        swept.stdout
    );
    for bucket in [service("EXPORTD_TEST_S3_BUCKET").as_str(), second] {
        assert_eq!(
            crate::objects::s3_probe(&["list", bucket, &format!("{prefix}/")]).trim(),
            "[]",
            "{bucket}"
        );
    }
}
