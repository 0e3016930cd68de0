//! PII masks, exactly as the product promises them:
//! `john.doe@example.com` → `j***.d**@example.com`, `555-123-4567` → `XXX-XXX-4567`,
//! `123-45-6789` → `XXX-XX-6789`, `John Doe` → `J.D.`, a street address → its city and state,
//! `hash` → keyed HMAC-SHA256 (hex), `drop` → the column is removed (by the selection).
//!
//! A NULL stays NULL under every mask, so "missing" and "masked" stay distinguishable.

use crate::config::export::MaskKind;
use crate::config::secret::Secret;
use crate::value::Value;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Applies masks; holds the hash key for `hash`.
#[derive(Clone)]
pub struct Masker {
    hash_key: Option<Secret>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Masker")
    }
}

impl Masker {
    /// A masker; `hash_key` is required for `hash` masks (validation enforces it).
    pub fn new(hash_key: Option<Secret>) -> Masker {
        Masker { hash_key }
    }

    /// Masks one value.
    pub fn apply(&self, kind: MaskKind, value: Value) -> Value {
        if value.is_null() {
            return value;
        }
        let text = value.to_string();
        Value::Text(match kind {
            MaskKind::Email => email(&text),
            MaskKind::Last4 | MaskKind::Ssn => last4(&text),
            MaskKind::Initials => initials(&text),
            MaskKind::CityState => match city_state(&text) {
                Some(s) => s,
                None => return Value::Null,
            },
            MaskKind::Hash => self.hash(&text),
            MaskKind::Drop => return Value::Null,
        })
    }

    fn hash(&self, text: &str) -> String {
        // Validation refuses `hash` without a key; an empty key here still never leaks the value.
        let key = self
            .hash_key
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| {
                <Hmac<Sha256> as KeyInit>::new_from_slice(b"exportd").expect("static key")
            });
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Keeps the first character of each dot-separated part of the local part and the domain.
pub fn email(text: &str) -> String {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return stars(text);
    };
    let masked: Vec<String> = local.split('.').map(stars).collect();
    format!("{}@{domain}", masked.join("."))
}

fn stars(part: &str) -> String {
    let mut chars = part.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// Replaces every digit but the last four with `X`, keeping separators.
pub fn last4(text: &str) -> String {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    text.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 4 <= digits { 'X' } else { c }
            } else {
                c
            }
        })
        .collect()
}

/// `John Doe` → `J.D.`.
pub fn initials(text: &str) -> String {
    text.split_whitespace()
        .filter_map(|w| w.chars().next())
        .flat_map(|c| c.to_uppercase().chain(std::iter::once('.')))
        .collect()
}

/// `123 Main St, Springfield, IL 62701` → `Springfield, IL`; a street alone → nothing.
pub fn city_state(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() < 3 {
        return None;
    }
    let city = parts[parts.len() - 2];
    let state = parts[parts.len() - 1].split_whitespace().next()?;
    Some(format!("{city}, {state}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_reproduce_the_seed_examples() {
        let m = Masker::new(None);
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            m.apply(MaskKind::Email, t("john.doe@example.com")),
            t("j***.d**@example.com")
        );
        assert_eq!(
            m.apply(MaskKind::Last4, t("555-123-4567")),
            t("XXX-XXX-4567")
        );
        assert_eq!(m.apply(MaskKind::Ssn, t("123-45-6789")), t("XXX-XX-6789"));
        assert_eq!(m.apply(MaskKind::Initials, t("John Doe")), t("J.D."));
        assert_eq!(
            m.apply(MaskKind::CityState, t("123 Main St, Springfield, IL 62701")),
            t("Springfield, IL")
        );
        assert_eq!(m.apply(MaskKind::CityState, t("123 Main St")), Value::Null);
        assert_eq!(m.apply(MaskKind::Email, Value::Null), Value::Null);
        assert_eq!(m.apply(MaskKind::Last4, t("5551234567")), t("XXXXXX4567"));
    }

    #[test]
    fn hashes_are_keyed_and_stable() {
        let a = Masker::new(Some(Secret::for_tests("k1")));
        let b = Masker::new(Some(Secret::for_tests("k2")));
        let v = || Value::Text("john.doe@example.com".into());
        assert_eq!(a.apply(MaskKind::Hash, v()), a.apply(MaskKind::Hash, v()));
        assert_ne!(a.apply(MaskKind::Hash, v()), b.apply(MaskKind::Hash, v()));
        let Value::Text(h) = a.apply(MaskKind::Hash, v()) else {
            panic!()
        };
        assert_eq!(h.len(), 64);
        assert!(!h.contains("john"));
    }
}
