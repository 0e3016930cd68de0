//! Server identity for SSH: OpenSSH `known_hosts` files and pinned `SHA256:` fingerprints.
//!
//! russh ships a known_hosts reader, but it splits lines on single spaces, ignores `@revoked`,
//! wildcards and negated patterns, so an operator's real file (often hashed, sometimes tab
//! separated) could be read wrongly. This one follows sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT".

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};

/// How the server's key is checked; every check that is configured must pass.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    /// `known_hosts` file.
    pub known_hosts: Option<std::path::PathBuf>,
    /// Pinned `SHA256:…` fingerprint.
    pub fingerprint: Option<String>,
    /// Name of the connection, for the message that says what to change.
    pub connection: String,
}

/// One line of a known_hosts file that names the host.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownKey {
    /// 1-based line number.
    pub line: usize,
    /// The recorded key.
    pub key: PublicKey,
    /// `@revoked`: this key must never be accepted.
    pub revoked: bool,
}

/// The name a host is recorded under: bare for port 22, `[host]:port` otherwise.
pub fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The keys `text` (a known_hosts file) records for `host`:`port`. Lines that cannot be read
/// are skipped, as OpenSSH does; `@cert-authority` lines are skipped too (certificates are not
/// accepted as host identities here).
pub fn keys_for(text: &str, host: &str, port: u16) -> Vec<KnownKey> {
    let name = host_entry_name(host, port);
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut hosts = fields.next().unwrap_or_default();
        let mut revoked = false;
        if let Some(marker) = hosts.strip_prefix('@') {
            match marker {
                "revoked" => revoked = true,
                _ => continue,
            }
            hosts = fields.next().unwrap_or_default();
        }
        let (Some(_algorithm), Some(base64)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(hosts, &name) {
            continue;
        }
        if let Ok(key) = russh::keys::parse_public_key_base64(base64) {
            found.push(KnownKey {
                line: index + 1,
                key,
                revoked,
            });
        }
    }
    found
}

/// A comma-separated pattern list matches when one pattern matches and no negated one does.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated, name) {
                return false;
            }
        } else if pattern.starts_with("|1|") {
            matched |= hashed_match(pattern, name);
        } else {
            matched |= wildcard_match(pattern, name);
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, written by `HashKnownHosts yes`.
fn hashed_match(pattern: &str, name: &str) -> bool {
    use base64_lite::decode;
    let mut parts = pattern.trim_start_matches("|1|").split('|');
    let (Some(salt), Some(hash)) = (parts.next().and_then(decode), parts.next().and_then(decode))
    else {
        return false;
    };
    let Ok(mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` and `?` wildcards, case-insensitive (host names are).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let name: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, n));
            p += 1;
        } else if let Some((star, at)) = backtrack {
            p = star + 1;
            n = at + 1;
            backtrack = Some((star, at + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// `SHA256:…` of a key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The known_hosts line that would accept `key` for `host`:`port`.
fn known_hosts_line(key: &PublicKey, host: &str, port: u16) -> String {
    let mut bare = key.clone();
    bare.set_comment("");
    format!(
        "{} {}",
        host_entry_name(host, port),
        bare.to_openssh().unwrap_or_default().trim_end()
    )
}

impl HostKeyPolicy {
    /// Accepts `key` for `host`:`port`, or says why not: which key the server showed and how
    /// to trust it once the operator has checked it on the server.
    pub fn check(&self, key: &PublicKey, host: &str, port: u16) -> Result<(), String> {
        let seen = fingerprint(key);
        let algorithm = key.algorithm().to_string();
        let offered = format!("the server {host}:{port} offered host key {algorithm} {seen}");
        let check_on_server = format!(
            "compare with `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub` run on the server",
            key_file_kind(&algorithm)
        );
        if let Some(pinned) = &self.fingerprint
            && !same_fingerprint(pinned, &seen)
        {
            return Err(format!(
                "{offered}, but [connections.{}] pins host_key_fingerprint = \"{pinned}\"; refusing to connect. If the server's key was changed on purpose ({check_on_server}), set `host_key_fingerprint = \"{seen}\"`",
                self.connection
            ));
        }
        let Some(path) = &self.known_hosts else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read known_hosts `{}` ({e}); {offered}: create the file with the line `{}` once you have checked it ({check_on_server}), or pin it with `host_key_fingerprint = \"{seen}\"`",
                path.display(),
                known_hosts_line(key, host, port)
            )
        })?;
        let known = keys_for(&text, host, port);
        let same = |k: &KnownKey| k.key.key_data() == key.key_data();
        if let Some(revoked) = known.iter().find(|k| k.revoked && same(k)) {
            return Err(format!(
                "{offered}, which `{}` line {} marks @revoked; refusing to connect",
                path.display(),
                revoked.line
            ));
        }
        if known.iter().any(|k| !k.revoked && same(k)) {
            return Ok(());
        }
        let recorded: Vec<String> = known
            .iter()
            .filter(|k| !k.revoked)
            .map(|k| k.line.to_string())
            .collect();
        if recorded.is_empty() {
            Err(format!(
                "{offered}, which is not in known_hosts `{}`; refusing to connect. If it is the right server ({check_on_server}), add the line `{}` to that file, or pin it with `host_key_fingerprint = \"{seen}\"` in [connections.{}]",
                path.display(),
                known_hosts_line(key, host, port),
                self.connection
            ))
        } else {
            Err(format!(
                "{offered}, which does NOT match the key known_hosts `{}` records for it (line {}): the server was reinstalled or someone is intercepting the connection; refusing to connect. Once you have checked the new key ({check_on_server}), replace that line with `{}`",
                path.display(),
                recorded.join(", "),
                known_hosts_line(key, host, port)
            ))
        }
    }

    /// Algorithms of the keys known_hosts records for the host, so the key exchange asks the
    /// server for a key we can check (as OpenSSH does) rather than its favourite type.
    pub fn known_algorithms(&self, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
        let Some(path) = &self.known_hosts else {
            return Vec::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut algorithms = Vec::new();
        for known in keys_for(&text, host, port) {
            let algorithm = known.key.algorithm();
            if !known.revoked && !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        algorithms
    }
}

/// `ed25519`, `ecdsa`, `rsa`: the middle of the server's host key file name.
fn key_file_kind(algorithm: &str) -> &'static str {
    if algorithm.contains("ed25519") {
        "ed25519"
    } else if algorithm.contains("ecdsa") {
        "ecdsa"
    } else {
        "rsa"
    }
}

/// Fingerprints compare without the optional base64 padding some tools print.
fn same_fingerprint(pinned: &str, seen: &str) -> bool {
    pinned.trim().trim_end_matches('=') == seen.trim_end_matches('=')
}

/// Standard base64 (with or without padding), enough for known_hosts salts and hashes.
mod base64_lite {
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut buffer = 0u32;
        let mut bits = 0;
        for byte in text.trim_end_matches('=').bytes() {
            let value = match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            };
            buffer = (buffer << 6) | u32::from(value);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(base64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(base64).unwrap()
    }

    fn policy(dir: &tempfile::TempDir, text: &str) -> HostKeyPolicy {
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, text).unwrap();
        HostKeyPolicy {
            known_hosts: Some(path),
            fingerprint: None,
            connection: "files".into(),
        }
    }

    #[test]
    fn finds_bracketed_ports_wildcards_tabs_and_skips_negations_and_comments() {
        let text = format!(
            "# comment\n\n[127.0.0.1]:2222\tssh-ed25519\t{ED25519} c\n127.0.0.1 ssh-ed25519 {OTHER}\n*.example.com,!bad.example.com ssh-ed25519 {ED25519}\n@cert-authority * ssh-ed25519 {OTHER}\n"
        );
        let on_2222 = keys_for(&text, "127.0.0.1", 2222);
        assert_eq!(on_2222.len(), 1);
        assert_eq!(on_2222[0].line, 3);
        assert_eq!(on_2222[0].key, key(ED25519));
        let on_22 = keys_for(&text, "127.0.0.1", 22);
        assert_eq!(on_22.iter().map(|k| k.line).collect::<Vec<_>>(), [4]);
        assert_eq!(keys_for(&text, "sftp.example.com", 22).len(), 1);
        assert!(keys_for(&text, "bad.example.com", 22).is_empty());
        assert!(keys_for(&text, "sftp.example.com", 2222).is_empty());
    }

    #[test]
    fn matches_hashed_host_names() {
        // `ssh-keygen -H` output for `[127.0.0.1]:2222`, salt and HMAC computed here.
        let salt = b"0123456789abcdefghij";
        let mac = Hmac::<sha1::Sha1>::new_from_slice(salt)
            .unwrap()
            .chain_update(b"[127.0.0.1]:2222")
            .finalize()
            .into_bytes();
        let encode = |bytes: &[u8]| {
            // Tiny standard base64 encoder for the test only.
            const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b))
                    << (8 * (3 - chunk.len()));
                for i in 0..=chunk.len() {
                    out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        };
        let text = format!(
            "|1|{}|{} ssh-ed25519 {ED25519}\n",
            encode(salt),
            encode(&mac)
        );
        assert_eq!(keys_for(&text, "127.0.0.1", 2222).len(), 1);
        assert!(keys_for(&text, "127.0.0.1", 2223).is_empty());
    }

    #[test]
    fn accepts_the_recorded_key_and_explains_unknown_changed_and_revoked_keys() {
        let dir = tempfile::tempdir().unwrap();
        let good = policy(&dir, &format!("[h]:2222 ssh-ed25519 {ED25519}\n"));
        assert_eq!(good.check(&key(ED25519), "h", 2222), Ok(()));

        let changed = good.check(&key(OTHER), "h", 2222).unwrap_err();
        assert!(changed.contains("does NOT match"), "{changed}");
        assert!(changed.contains("line 1"), "{changed}");
        assert!(changed.contains(&fingerprint(&key(OTHER))), "{changed}");

        let unknown = good.check(&key(ED25519), "h", 2223).unwrap_err();
        assert!(unknown.contains("not in known_hosts"), "{unknown}");
        assert!(
            unknown.contains(&format!("[h]:2223 ssh-ed25519 {ED25519}")),
            "{unknown}"
        );
        assert!(
            unknown.contains(&format!(
                "host_key_fingerprint = \"{}\"",
                fingerprint(&key(ED25519))
            )),
            "{unknown}"
        );

        let revoked = policy(
            &dir,
            &format!("@revoked * ssh-ed25519 {ED25519}\n[h]:2222 ssh-ed25519 {ED25519}\n"),
        );
        let refused = revoked.check(&key(ED25519), "h", 2222).unwrap_err();
        assert!(refused.contains("@revoked"), "{refused}");
    }

    #[test]
    fn pinned_fingerprints_must_match() {
        let seen = fingerprint(&key(ED25519));
        assert!(seen.starts_with("SHA256:"), "{seen}");
        let pinned = |fingerprint: &str| HostKeyPolicy {
            known_hosts: None,
            fingerprint: Some(fingerprint.into()),
            connection: "files".into(),
        };
        assert_eq!(pinned(&seen).check(&key(ED25519), "h", 22), Ok(()));
        assert_eq!(
            pinned(&format!("{seen}=")).check(&key(ED25519), "h", 22),
            Ok(())
        );
        let refused = pinned(&fingerprint(&key(OTHER)))
            .check(&key(ED25519), "h", 22)
            .unwrap_err();
        assert!(
            refused.contains(&format!("set `host_key_fingerprint = \"{seen}\"`")),
            "{refused}"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("sftp?.example.com", "SFTP1.example.com"));
        assert!(wildcard_match("*.ex*.com", "a.b.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(!wildcard_match("a?", "a"));
    }
}
