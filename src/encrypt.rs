//! Encryption at rest with age (`encrypt.age_recipients`).
//!
//! A part is sealed after its compressor has finished: tar.gz and 7z seek back into the part
//! file to patch their headers, so the compressors need the seekable plaintext file, and one
//! sealing step after `finish` serves every compression alike. Sealing streams the plaintext
//! through age's STREAM construction (64 KiB chunks) into the delivered file, hashing what it
//! writes, and then deletes the plaintext, so memory stays bounded and only the staging
//! directory on this machine ever holds the plaintext, for the lifetime of one part.
//!
//! Only X25519 recipients (`age1…`) are accepted: they are what `age-keygen` prints and what
//! every age implementation (including Debian's `age` 1.1) can decrypt.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

/// Prefix of an age identity (the private half). Never echoed back in a message.
const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-";

/// The checked recipients of one export.
#[derive(Clone)]
pub struct AgeRecipients(Vec<age::x25519::Recipient>);

impl std::fmt::Debug for AgeRecipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| r.to_string()))
            .finish()
    }
}

/// A recipient that did not parse; the message is safe to show (it never repeats an identity).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RecipientError(String);

/// Parses one public key as written in a definition.
pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, RecipientError> {
    let trimmed = text.trim();
    if trimmed.to_ascii_uppercase().starts_with(SECRET_KEY_PREFIX) {
        return Err(RecipientError(
            "this is an age identity (a private key), not a public key: remove it from the \
             definition, keep it only with whoever decrypts, and write its public key instead \
             (`age-keygen -y KEYFILE` prints it)"
                .into(),
        ));
    }
    trimmed.parse::<age::x25519::Recipient>().map_err(|_| {
        RecipientError(format!(
            "`{}` is not an age public key: use the `age1…` line that `age-keygen` prints \
             (or `age-keygen -y KEYFILE`)",
            shorten(trimmed)
        ))
    })
}

/// Keeps messages short when someone pastes a whole file into the field.
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl AgeRecipients {
    /// Parses every key; the first bad one is the error (validation reports each with its
    /// line before a run ever gets here).
    pub fn parse(keys: &[String]) -> Result<AgeRecipients, RecipientError> {
        if keys.is_empty() {
            return Err(RecipientError(
                "`age_recipients` is empty: add at least one `age1…` public key".into(),
            ));
        }
        keys.iter()
            .map(|k| parse_recipient(k))
            .collect::<Result<Vec<_>, _>>()
            .map(AgeRecipients)
    }

    fn encryptor(&self) -> io::Result<age::Encryptor> {
        age::Encryptor::with_recipients(self.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::other(format!("age encryption: {e}")))
    }
}

/// The sealed file as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Bytes of the encrypted file.
    pub bytes: u64,
    /// SHA-256 of the encrypted file, hex.
    pub sha256: String,
}

/// Encrypts `plain` into `sealed` for `recipients`, then removes `plain`. On failure both
/// files are removed, so no plaintext outlives the part in staging and no half-sealed file
/// can be delivered.
pub fn seal_file(plain: &Path, sealed: &Path, recipients: &AgeRecipients) -> io::Result<Sealed> {
    let result = seal(plain, sealed, recipients);
    if result.is_err() {
        let _ = std::fs::remove_file(plain);
        let _ = std::fs::remove_file(sealed);
    }
    result
}

fn seal(plain: &Path, sealed: &Path, recipients: &AgeRecipients) -> io::Result<Sealed> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(plain)?);
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, File::create(sealed)?));
    let mut writer = recipients.encryptor()?.wrap_output(out)?;
    io::copy(&mut input, &mut writer)?;
    let mut out = writer.finish()?;
    out.flush()?;
    std::fs::remove_file(plain)?;
    Ok(Sealed {
        bytes: out.bytes,
        sha256: hex::encode(out.hasher.finalize()),
    })
}

/// Hashes and counts what passes through, so the sealed file is not read back.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use std::io::Read;

    #[test]
    fn sealed_file_decrypts_with_the_identity_and_is_described_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let recipients = AgeRecipients::parse(&[identity.to_public().to_string()]).unwrap();
        let plain = dir.path().join("p");
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&plain, &data).unwrap();
        let sealed_path = dir.path().join("p.age");
        let sealed = seal_file(&plain, &sealed_path, &recipients).unwrap();

        assert!(!plain.exists(), "the plaintext must be removed");
        let on_disk = std::fs::read(&sealed_path).unwrap();
        assert_eq!(sealed.bytes, on_disk.len() as u64);
        assert_eq!(sealed.sha256, hex::encode(Sha256::digest(&on_disk)));
        let decryptor = age::Decryptor::new(&on_disk[..]).unwrap();
        let mut reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .unwrap();
        let mut back = Vec::new();
        reader.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn a_failed_seal_leaves_neither_the_plaintext_nor_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let recipients =
            AgeRecipients::parse(&[age::x25519::Identity::generate().to_public().to_string()])
                .unwrap();
        let plain = dir.path().join("p");
        std::fs::write(&plain, b"secret rows").unwrap();
        // The sealed file cannot be created: its directory does not exist.
        let sealed = dir.path().join("missing/p.age");
        assert!(seal_file(&plain, &sealed, &recipients).is_err());
        assert!(!plain.exists(), "the plaintext outlived a failed seal");
        assert!(!sealed.exists());
    }

    #[test]
    fn identities_are_refused_without_being_repeated() {
        let identity = age::x25519::Identity::generate();
        let secret = identity.to_string().expose_secret().to_owned();
        let err = parse_recipient(&secret).unwrap_err();
        assert!(!err.0.contains(&secret[20..]), "{err}");
        assert!(err.0.contains("age-keygen -y"), "{err}");
    }

    #[test]
    fn garbage_is_named_and_shortened() {
        let err = parse_recipient("age1nope").unwrap_err();
        assert!(
            err.0.contains("`age1nope` is not an age public key"),
            "{err}"
        );
        let long = "x".repeat(500);
        assert!(parse_recipient(&long).unwrap_err().0.len() < 300);
        assert!(AgeRecipients::parse(&[]).is_err());
    }
}
