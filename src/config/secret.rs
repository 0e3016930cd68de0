//! Secret references (`{ env = "NAME" }`, `{ file = "/path" }`, `{ credential = "NAME" }`) and
//! the resolved [`Secret`] value.
//!
//! A definition or daemon config never holds a secret literally: the reference is resolved when
//! the secret is used, so rotating a credential needs no config change, and the text of a config
//! file can be committed, logged and shown by the API safely. [`Secret`] is deliberately not
//! `Serialize`, and its `Debug` prints `***`.

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Environment variable systemd sets to the directory of `LoadCredential=` files.
pub const CREDENTIALS_DIRECTORY_ENV: &str = "CREDENTIALS_DIRECTORY";

/// Where a secret comes from. Written as a one-key inline table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// The value of an environment variable of the daemon.
    Env(String),
    /// The contents of a file (a trailing newline is removed).
    File(PathBuf),
    /// A systemd credential: the file NAME in `$CREDENTIALS_DIRECTORY` (`LoadCredential=NAME:…`).
    Credential(String),
}

impl JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = |key: &str, description: &str| {
            serde_json::json!({
                "type": "object",
                "properties": { key: { "type": "string", "description": description } },
                "required": [key],
                "additionalProperties": false
            })
        };
        schemars::json_schema!({
            "description": "A secret reference, never the secret itself: `{ env = \"NAME\" }`, `{ file = \"/path\" }` or `{ credential = \"NAME\" }` (systemd LoadCredential).",
            "oneOf": [
                one("env", "Name of an environment variable of the daemon."),
                one("file", "Path of a file holding the secret (a trailing newline is removed)."),
                one("credential", "Name of a systemd credential in $CREDENTIALS_DIRECTORY."),
            ]
        })
    }
}

/// Message for a secret written literally: what was found and what to write instead.
pub const LITERAL_SECRET_MESSAGE: &str = "secrets are never written literally: use `{ env = \"NAME\" }`, `{ file = \"/path\" }` or `{ credential = \"NAME\" }`";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor;

        impl<'de> Visitor<'de> for RefVisitor {
            type Value = SecretRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference such as { env = \"NAME\" }")
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(LITERAL_SECRET_MESSAGE))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "empty secret reference: write `{ env = \"NAME\" }`, `{ file = \"/path\" }` or `{ credential = \"NAME\" }`",
                    ));
                };
                let value: String = map.next_value()?;
                let secret = match key.as_str() {
                    "env" => SecretRef::Env(value),
                    "file" => SecretRef::File(PathBuf::from(value)),
                    "credential" => SecretRef::Credential(value),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown secret source `{other}`: use `env`, `file` or `credential`"
                        )));
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "a secret reference has exactly one key: `env`, `file` or `credential`",
                    ));
                }
                Ok(secret)
            }
        }

        deserializer.deserialize_any(RefVisitor)
    }
}

/// Why a secret could not be read. Never contains the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The environment variable is unset or not UTF-8.
    #[error(
        "secret environment variable `{0}` is not set: export it in the daemon's environment (systemd: `Environment=` or `EnvironmentFile=`)"
    )]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file `{path}`: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// No credentials directory: not started by systemd with `LoadCredential=`.
    #[error(
        "secret credential `{0}` needs $CREDENTIALS_DIRECTORY: start exportd from systemd with `LoadCredential={0}:/path`"
    )]
    NoCredentialsDirectory(String),
}

impl SecretRef {
    /// Reads the secret now.
    pub fn resolve(&self) -> Result<Secret, Error> {
        let read_file = |path: PathBuf| {
            std::fs::read_to_string(&path)
                .map(|text| Secret(text.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|source| Error::File { path, source })
        };
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .map(Secret)
                .map_err(|_| Error::MissingEnv(name.clone())),
            SecretRef::File(path) => read_file(path.clone()),
            SecretRef::Credential(name) => {
                let dir = std::env::var_os(CREDENTIALS_DIRECTORY_ENV)
                    .ok_or_else(|| Error::NoCredentialsDirectory(name.clone()))?;
                read_file(PathBuf::from(dir).join(name))
            }
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::Credential(name) => write!(f, "credential:{name}"),
        }
    }
}

/// A resolved secret. Not `Serialize`; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for the one call that needs it (a client constructor, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret from a literal, for tests only.
    #[cfg(test)]
    pub fn for_tests(text: &str) -> Secret {
        Secret(text.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        password: SecretRef,
    }

    #[test]
    fn literal_secret_is_refused_with_a_hint() {
        let err = toml::from_str::<Holder>("password = \"hunter2\"").unwrap_err();
        assert!(err.message().contains("never written literally"), "{err}");
        assert!(!err.to_string().contains("hunter2") || err.to_string().contains("password = "));
    }

    #[test]
    fn references_parse_and_resolve_without_leaking() {
        let held: Holder = toml::from_str("password = { env = \"EXPORTD_TEST_SECRET\" }").unwrap();
        assert_eq!(held.password, SecretRef::Env("EXPORTD_TEST_SECRET".into()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let secret = SecretRef::File(path).resolve().unwrap();
        assert_eq!(secret.expose(), "s3cr3t");
        assert_eq!(format!("{secret:?}"), "***");
        assert!(toml::from_str::<Holder>("password = { vault = \"x\" }").is_err());
    }
}
