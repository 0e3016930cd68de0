//! Who may do what through the API: bearer tokens mapped to roles, the permission matrix,
//! signed download URLs, and the rule that decides whether an export is anonymised.
//!
//! Tokens are never stored: `[access] tokens` lists each token's SHA-256 (`exportd token new`
//! prints a fresh token once, with the line to paste). Roles:
//!
//! | permission | admin | analyst | operations | auditor |
//! |---|---|---|---|---|
//! | read status, runs, metrics | ✓ | ✓ | ✓ | ✓ |
//! | schedule (trigger runs) | ✓ | | ✓ | |
//! | download | ✓ | anonymised exports only | runs whose window ended within `operations_days` | |
//! | read the audit log | ✓ | | | ✓ |
//! | create (ad-hoc exports), delete (a run's delivered files) | ✓ | | | |
//!
//! "Anonymised" is decided from the definition, never from a flag: every field that looks
//! personal (see [`crate::fields::unmasked_personal_fields`]) must be masked, hashed or left
//! out. Summaries hold no per-lead data and are always anonymised.
//!
//! Without any token in `[access]` the API is open (every caller acts as `admin`), which is
//! allowed only while it listens on loopback: the daemon refuses to serve an open API on
//! another address.

use crate::config::ExportSpec;
use crate::config::daemon::{AccessConfig, Role};
use crate::config::export::Kind;
use crate::state::RunRecord;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Why an API caller is turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token, or one nobody issued: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known token whose role may not do this: 403.
    #[error("{0}")]
    Forbidden(String),
}

/// Access configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An open API (no tokens) on a non-loopback address.
    #[error(
        "`[http] listen = \"{0}\"` is not a loopback address, and `[access]` lists no tokens: anyone who can reach it would be admin. Create one with `exportd token new NAME --role admin` and paste the line it prints into exportd.toml"
    )]
    OpenOnNetwork(String),
    /// A token hash that is not 64 hex digits.
    #[error(
        "`[access] tokens`: `{0}` has a sha256 that is not 64 hex digits; paste the line `exportd token new` printed"
    )]
    BadHash(String),
    /// The signing key could not be read.
    #[error(transparent)]
    Secret(#[from] crate::config::secret::Error),
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read statuses, runs, metrics.
    Read,
    /// Trigger, suspend or resume runs.
    Schedule,
    /// Download delivered files (further checked per run by [`Access::may_download`]).
    Download,
    /// Read the audit log.
    Audit,
    /// Create exports through the API (`POST /v1/exports/adhoc`): admins only, because a
    /// definition chooses what leaves the machine and where to.
    Create,
    /// Delete a run's delivered files through the ledger: admins only, because it cannot be
    /// undone.
    Delete,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (for the audit log); `anonymous` on an open API.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The name of a role as configured and logged.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Analyst => "analyst",
        Role::Operations => "operations",
        Role::Auditor => "auditor",
    }
}

/// The API's access rules, built from `[access]`.
#[derive(Clone)]
pub struct Access {
    tokens: HashMap<String, Principal>,
    operations_days: i64,
    url_lifetime: chrono::Duration,
    signing_key: Vec<u8>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("tokens", &self.tokens.len())
            .field("operations_days", &self.operations_days)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a token, hex: what `[access] tokens` stores.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (`exd_` + 64 hex digits from the kernel's random source).
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(format!("exd_{}", hex::encode(bytes)))
}

impl Access {
    /// The rules of `[access]`, for an API listening on `listen`.
    pub fn new(config: &AccessConfig, listen: &str) -> Result<Access, Error> {
        let mut tokens = HashMap::new();
        for t in &config.tokens {
            let hash = t.sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::BadHash(t.name.clone()));
            }
            tokens.insert(
                hash,
                Principal {
                    name: t.name.clone(),
                    role: t.role,
                },
            );
        }
        if tokens.is_empty() && !is_loopback(listen) {
            return Err(Error::OpenOnNetwork(listen.to_owned()));
        }
        let signing_key = match &config.url_signing_key {
            Some(key) => key.resolve()?.expose().as_bytes().to_vec(),
            None => new_token().map(String::into_bytes).unwrap_or_else(|_| {
                token_hash(&format!("{:?}", std::time::SystemTime::now())).into_bytes()
            }),
        };
        Ok(Access {
            tokens,
            operations_days: i64::from(config.operations_days.unwrap_or(7)),
            url_lifetime: chrono::Duration::minutes(i64::from(
                config.url_lifetime_minutes.unwrap_or(15).max(1),
            )),
            signing_key,
        })
    }

    /// Whether the API is open (no tokens configured; loopback only).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The caller an `Authorization` header names.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Denied> {
        if self.is_open() {
            return Ok(Principal {
                name: "anonymous".into(),
                role: Role::Admin,
            });
        }
        let Some(value) = authorization else {
            return Err(Denied::Unauthenticated(
                "this API needs a token: send `Authorization: Bearer TOKEN` (an admin creates one with `exportd token new NAME --role ROLE`)".into(),
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        self.tokens.get(&token_hash(token)).cloned().ok_or_else(|| {
            Denied::Unauthenticated(
                "unknown token: check it was copied whole, or ask an admin for a new one".into(),
            )
        })
    }

    /// Whether `who` has `permission` at all.
    pub fn check(&self, who: &Principal, permission: Permission) -> Result<(), Denied> {
        let allowed = match permission {
            Permission::Read => true,
            Permission::Schedule => matches!(who.role, Role::Admin | Role::Operations),
            Permission::Download => who.role != Role::Auditor,
            Permission::Audit => matches!(who.role, Role::Admin | Role::Auditor),
            Permission::Create | Permission::Delete => who.role == Role::Admin,
        };
        if allowed {
            Ok(())
        } else {
            Err(Denied::Forbidden(format!(
                "role `{}` of token `{}` may not {}; ask an admin",
                role_name(who.role),
                who.name,
                match permission {
                    Permission::Read => "read status",
                    Permission::Schedule => "trigger, suspend or resume runs",
                    Permission::Download => "download files",
                    Permission::Audit => "read the audit log",
                    Permission::Create => "create exports",
                    Permission::Delete => "delete delivered files",
                }
            )))
        }
    }

    /// Whether `who` may download the files of `run` of `spec` at `now`.
    pub fn may_download(
        &self,
        who: &Principal,
        spec: Option<&ExportSpec>,
        run: &RunRecord,
        now: DateTime<Utc>,
    ) -> Result<(), Denied> {
        self.check(who, Permission::Download)?;
        match who.role {
            Role::Admin => Ok(()),
            Role::Analyst => {
                let Some(spec) = spec else {
                    return Err(Denied::Forbidden(format!(
                        "export `{}` has no definition any more, so it cannot be shown to be anonymised; ask an admin",
                        run.export
                    )));
                };
                let exposed = personal_exposure(spec);
                if exposed.is_empty() {
                    Ok(())
                } else {
                    Err(Denied::Forbidden(format!(
                        "role `analyst` may download anonymised exports only, and `{}` exports personal fields unmasked: {}; mask, hash or exclude them in its [fields]",
                        spec.name,
                        exposed.join(", ")
                    )))
                }
            }
            Role::Operations => {
                let age = now - run.window_end;
                if age <= chrono::Duration::days(self.operations_days) {
                    Ok(())
                } else {
                    Err(Denied::Forbidden(format!(
                        "role `operations` may download runs whose window ended within {} days; this one ended {} days ago; ask an admin",
                        self.operations_days,
                        age.num_days()
                    )))
                }
            }
            Role::Auditor => unreachable!("checked above"),
        }
    }

    /// How long download URLs live (`[access] url_lifetime_minutes`), also presigned ones.
    pub fn url_lifetime(&self) -> std::time::Duration {
        self.url_lifetime.to_std().unwrap_or_default()
    }

    /// A download URL for `path` valid until now + the configured lifetime.
    pub fn sign(&self, path: &str, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let expires = now + self.url_lifetime;
        let signature = self.signature(path, expires.timestamp());
        (
            format!(
                "{path}?expires={}&signature={signature}",
                expires.timestamp()
            ),
            expires,
        )
    }

    /// Whether a signed URL's `expires` and `signature` are genuine and not expired.
    pub fn verify(
        &self,
        path: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Denied> {
        if now.timestamp() > expires {
            return Err(Denied::Forbidden(
                "this download link has expired; ask for a new one".into(),
            ));
        }
        let Ok(given) = hex::decode(signature) else {
            return Err(Denied::Forbidden("this download link is not valid".into()));
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.signing_key).expect("any key length");
        mac.update(format!("{path}\n{expires}").as_bytes());
        mac.verify_slice(&given)
            .map_err(|_| Denied::Forbidden("this download link is not valid".into()))
    }

    fn signature(&self, path: &str, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.signing_key).expect("any key length");
        mac.update(format!("{path}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Personal fields `spec` exports unmasked (empty: anonymised).
pub fn personal_exposure(spec: &ExportSpec) -> Vec<String> {
    if spec.def.kind == Kind::Summary {
        return Vec::new();
    }
    crate::fields::unmasked_personal_fields(&spec.def.fields, &spec.computed)
}

/// Whether a listen address is on loopback.
pub fn is_loopback(listen: &str) -> bool {
    let host = listen
        .rsplit_once(':')
        .map_or(listen, |(h, _)| h)
        .trim_matches(['[', ']']);
    crate::config::daemon::is_loopback_host(host)
}
