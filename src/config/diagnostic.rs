//! Problems found in a definition or the daemon config, each tied to `file:line:col`.
//!
//! Validation collects every diagnostic instead of stopping at the first, so an operator fixes a
//! file in one pass. Rendered one per line as `file:line:col: error: message`, the form editors
//! and CI annotators recognise.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The definition cannot be used.
    Error,
    /// The definition works but is probably not what was meant (`validate --deny-warnings`
    /// makes these errors).
    Warning,
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file, as given on the command line or found in the exports directory.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do about it, when there is something specific to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {severity}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "; {help}")?;
        }
        Ok(())
    }
}

/// `did you mean `x`?` for the closest candidate, when one is close enough to be a typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let input_lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                crate::text::edit_distance(&input_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len().max(input.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("s3-mian", ["s3-main", "sftp-finance"]).as_deref(),
            Some("did you mean `s3-main`?")
        );
        assert_eq!(
            did_you_mean("bukcet", ["bucket", "path"]).as_deref(),
            Some("did you mean `bucket`?")
        );
        assert_eq!(did_you_mean("zzzzzz", ["bucket", "path"]), None);
    }

    #[test]
    fn renders_file_line_col() {
        let d = Diagnostic {
            file: "exports.d/daily.toml".into(),
            line: 3,
            column: 7,
            severity: Severity::Error,
            message: "unknown connection `s3-mian`".into(),
            help: Some("did you mean `s3-main`?".into()),
        };
        assert_eq!(
            d.to_string(),
            "exports.d/daily.toml:3:7: error: unknown connection `s3-mian`; did you mean `s3-main`?"
        );
    }
}
