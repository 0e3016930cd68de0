//! `encrypt = { age_recipients = […] }`: parts are sealed with age and open with the standard
//! `age` CLI (Debian package `age`, published by scripts/services/age.sh), for the identity
//! `age-keygen` made and for no other.

use crate::export::Workspace;
use crate::util::service;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};

const LEADS: &str = r#"{"id":"A1","created_at":"2024-01-15T01:00:00Z","email":"ann@example.com","state":"CA"}
{"id":"A2","created_at":"2024-01-15T02:00:00Z","email":"bob@example.com","state":"TX"}
{"id":"A3","created_at":"2024-01-15T03:00:00Z","email":"cyd@example.com","state":"NY"}
{"id":"A4","created_at":"2024-01-15T04:00:00Z","email":"dee@example.com","state":"FL"}
{"id":"A5","created_at":"2024-01-15T05:00:00Z","email":"eve@example.com","state":"WA"}
"#;

/// A new identity file in `dir`; returns its path and its public key.
pub(crate) fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new(service("EXPORTD_TEST_AGE_KEYGEN"))
        .arg("-o")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("running age-keygen");
    assert!(out.status.success(), "age-keygen: {out:?}");
    let out = Command::new(service("EXPORTD_TEST_AGE_KEYGEN"))
        .arg("-y")
        .arg(&path)
        .output()
        .expect("running age-keygen -y");
    assert!(out.status.success(), "age-keygen -y: {out:?}");
    let public = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    assert!(public.starts_with("age1"), "{public}");
    (path, public)
}

/// `age -d -i IDENTITY FILE`.
pub(crate) fn age_decrypt(identity: &Path, file: &Path) -> std::process::Output {
    Command::new(service("EXPORTD_TEST_AGE"))
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("running age")
}

/// Decompresses with the standard tool of the compression, from a file.
fn decompress(compression: &str, file: &Path) -> Vec<u8> {
    let (program, args): (&str, &[&str]) = match compression {
        "none" => return std::fs::read(file).expect("reading a part"),
        "gzip" => ("gzip", &["-dc"]),
        "tar.gz" => ("tar", &["-xzOf"]),
        "zip" => ("unzip", &["-p"]),
        other => panic!("unknown compression {other}"),
    };
    let out = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .expect("running the decompressor");
    assert!(out.status.success(), "{program}: {out:?}");
    out.stdout
}

fn definition(dir: &str, compression: &str, recipients: &[&str]) -> String {
    let encrypt = if recipients.is_empty() {
        String::new()
    } else {
        format!("[encrypt]\nage_recipients = {recipients:?}\n")
    };
    format!(
        r#"
window = "previous_day"
[fields]
include = ["lead_id", "email", "state"]
[format]
type = "csv"
compression = "{compression}"
[chunk]
max_rows = 2
{encrypt}
[[deliver]]
to = "local"
path = "{dir}/leads_{{{{part}}}}.{{{{ext}}}}"
"#
    )
}

fn manifest(ws: &Workspace, dir: &str) -> Json {
    serde_json::from_str(&ws.read(&format!("{dir}/_manifest.json"))).expect("manifest is JSON")
}

#[test]
fn encrypted_parts_decrypt_with_the_age_cli_to_the_unencrypted_output() {
    let ws = Workspace::new();
    ws.ingest(LEADS);
    let (identity, public) = keygen(ws.path(), "key.txt");
    let (other_identity, _) = keygen(ws.path(), "other.txt");
    for compression in ["none", "gzip", "tar.gz", "zip"] {
        let plain_dir = format!("plain-{compression}");
        let sealed_dir = format!("sealed-{compression}");
        let plain_name = format!("p{}", compression.replace('.', ""));
        let sealed_name = format!("s{}", compression.replace('.', ""));
        ws.definition(&plain_name, &definition(&plain_dir, compression, &[]));
        ws.definition(
            &sealed_name,
            &definition(&sealed_dir, compression, &[&public]),
        );
        ws.export(&plain_name, "2024-01-16T02:00:00Z");
        ws.export(&sealed_name, "2024-01-16T02:00:00Z");

        let plain = manifest(&ws, &plain_dir);
        let sealed = manifest(&ws, &sealed_dir);
        let plain_parts = plain["parts"].as_array().expect("parts");
        let sealed_parts = sealed["parts"].as_array().expect("parts");
        assert_eq!(plain_parts.len(), 3, "{plain:#}");
        assert_eq!(sealed_parts.len(), 3, "{sealed:#}");
        for (p, s) in plain_parts.iter().zip(sealed_parts) {
            let plain_file = ws.output(&format!("{plain_dir}/{}", p["name"].as_str().unwrap()));
            let sealed_name = s["name"].as_str().unwrap();
            assert_eq!(
                sealed_name,
                format!("{}.age", p["name"].as_str().unwrap()),
                "an encrypted part gains `.age`"
            );
            let sealed_file = ws.output(&format!("{sealed_dir}/{sealed_name}"));
            let raw = std::fs::read(&sealed_file).expect("reading the sealed part");
            assert_eq!(
                s["bytes"],
                raw.len() as u64,
                "manifest bytes of {sealed_name}"
            );
            assert_eq!(
                s["sha256"],
                hex::encode(Sha256::digest(&raw)),
                "manifest sha256 describes the encrypted file {sealed_name}"
            );
            assert_eq!(s["rows"], p["rows"]);
            assert!(
                raw.starts_with(b"age-encryption.org/v1\n"),
                "{sealed_name} is not an age file"
            );
            assert!(
                !String::from_utf8_lossy(&raw).contains("@example.com"),
                "{sealed_name} holds plaintext"
            );

            let out = age_decrypt(&identity, &sealed_file);
            assert!(out.status.success(), "age -d {sealed_name}: {out:?}");
            let opened = ws.path().join("opened");
            std::fs::write(&opened, &out.stdout).expect("writing the decrypted part");
            assert_eq!(
                decompress(compression, &opened),
                decompress(compression, &plain_file),
                "{sealed_name} decrypts to what the unencrypted export wrote"
            );
            if compression == "none" {
                assert_eq!(out.stdout, std::fs::read(&plain_file).unwrap());
            }

            let wrong = age_decrypt(&other_identity, &sealed_file);
            assert!(
                !wrong.status.success(),
                "another identity decrypted {sealed_name}"
            );
            assert!(wrong.stdout.is_empty(), "{wrong:?}");
        }
        // No plaintext was left behind anywhere in the output or staging directories.
        for file in ws.files("") {
            assert!(
                !file.ends_with(".plain"),
                "a plaintext staging file was delivered: {file}"
            );
        }
    }
}

#[test]
fn every_recipient_can_decrypt() {
    let ws = Workspace::new();
    ws.ingest(LEADS);
    let (first, first_public) = keygen(ws.path(), "first.txt");
    let (second, second_public) = keygen(ws.path(), "second.txt");
    ws.definition(
        "two",
        &definition("two", "none", &[&first_public, &second_public]),
    );
    ws.export("two", "2024-01-16T02:00:00Z");
    let part = ws.output("two/leads_001.csv.age");
    for identity in [first, second] {
        let out = age_decrypt(&identity, &part);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "lead_id,email,state\nA1,ann@example.com,CA\nA2,bob@example.com,TX\n"
        );
    }
}

#[test]
fn bad_recipients_fail_validation_at_their_line_without_echoing_identities() {
    let ws = Workspace::new();
    let identity_text =
        "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZ";
    let text = format!(
        "window = \"all\"\n\
         [encrypt]\n\
         age_recipients = [\n  \"age1notakey\",\n  \"{identity_text}\",\n]\n\
         [[deliver]]\n\
         to = \"local\"\n\
         path = \"x/{{{{part}}}}.{{{{ext}}}}\"\n"
    );
    ws.definition("bad", &text);
    let out = ws.exportd().arg("validate").run();
    assert!(!out.status.success(), "validate accepted bad recipients");
    let report = format!("{}{}", out.stdout, out.stderr);
    assert!(
        report.contains("bad.toml:4:") && report.contains("`age1notakey` is not an age public key"),
        "{report}"
    );
    assert!(
        report.contains("bad.toml:5:") && report.contains("age-keygen -y"),
        "{report}"
    );
    assert!(
        !report.contains("QYQSZQGPQYQSZQGP"),
        "an identity was echoed:\n{report}"
    );
}
