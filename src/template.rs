//! Path and subject templates (`backups/leads/{{date}}/leads_{{part}}.ndjson.gz`).
//!
//! Handlebars in strict mode: an unknown variable is an error, and `exportd validate` finds it by
//! rendering every template against a sample run, not at 2 AM. Output is not HTML-escaped (these
//! are paths, not pages). A rendered path that would leave its destination root is refused.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// Variables a template may use, documented in the README.
pub const VARIABLES: &[&str] = &[
    "date",
    "year",
    "month",
    "day",
    "hour",
    "week",
    "export",
    "run_id",
    "part",
    "ext",
    "window.start",
    "window.end",
    "nominal",
];

/// A template that failed to parse or render, or a rendered path that escapes its root.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Syntax error; the position is within the template text.
    #[error("template syntax error at line {line}, column {column} of the template: {message}")]
    Syntax {
        /// 1-based line inside the template.
        line: usize,
        /// 1-based column inside the template.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A variable that does not exist.
    #[error("unknown template variable `{name}`; available: {}", VARIABLES.join(", "))]
    UnknownVariable {
        /// The variable as written.
        name: String,
    },
    /// Any other rendering failure (a helper given bad arguments).
    #[error("template cannot be rendered: {0}")]
    Render(String),
    /// The rendered path leaves the destination's root.
    #[error("rendered path `{path}` {reason}; paths must stay inside the destination's root")]
    Escapes {
        /// The rendered path.
        path: String,
        /// Why it escapes.
        reason: &'static str,
    },
}

/// The values of one run, from which templates are rendered.
#[derive(Debug, Clone, Serialize)]
pub struct RunVars {
    /// `date`, `year`, `month`, `day`, `hour` and `week` of the window start (the nominal time
    /// for windows without a start), in the export's zone: the schedule module's calendar
    /// variables, flattened so templates write `{{date}}`.
    #[serde(flatten)]
    pub calendar: crate::schedule::TemplateVars,
    /// Export name (the definition's file stem).
    pub export: String,
    /// Run identifier: the nominal time, `20240115T020000Z`; the same window gets the same id.
    pub run_id: String,
    /// Part number, `001`.
    pub part: String,
    /// File extension of a part including compression, `ndjson.gz`.
    pub ext: String,
    /// The window as local RFC 3339 timestamps.
    pub window: WindowVars,
    /// The nominal run time, local RFC 3339.
    pub nominal: String,
}

/// `window.start` and `window.end`.
#[derive(Debug, Clone, Serialize)]
pub struct WindowVars {
    /// Inclusive start; empty for `window = "all"`.
    pub start: String,
    /// Exclusive end.
    pub end: String,
}

impl RunVars {
    /// Variables for one part of a run, computed in the export's time zone.
    pub fn new(
        export: &str,
        nominal: DateTime<Utc>,
        window_start: Option<DateTime<Utc>>,
        window_end: DateTime<Utc>,
        tz: Tz,
        part: u32,
        ext: &str,
    ) -> RunVars {
        RunVars {
            calendar: crate::schedule::TemplateVars::at(window_start.unwrap_or(nominal), tz),
            export: export.to_owned(),
            run_id: run_id(nominal),
            part: format!("{part:03}"),
            ext: ext.to_owned(),
            window: WindowVars {
                start: window_start
                    .map(|t| t.with_timezone(&tz).to_rfc3339())
                    .unwrap_or_default(),
                end: window_end.with_timezone(&tz).to_rfc3339(),
            },
            nominal: nominal.with_timezone(&tz).to_rfc3339(),
        }
    }
}

/// The run id of a nominal time: stable, sortable, safe in paths.
pub fn run_id(nominal: DateTime<Utc>) -> String {
    nominal.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A compiled template. Templates share one engine (strict, no HTML escaping, the `format`
/// helper), built once: validating thousands of definitions must not build an engine per path.
pub struct Template {
    compiled: handlebars::Template,
    source: String,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

fn engine() -> &'static Handlebars<'static> {
    static ENGINE: std::sync::OnceLock<Handlebars<'static>> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("format", Box::new(format_helper));
        registry
    })
}

impl Template {
    /// Parses a template; syntax errors carry their position in the template text.
    pub fn parse(source: &str) -> Result<Template, Error> {
        let compiled = handlebars::Template::compile(source).map_err(|e| {
            let (line, column) = e.pos().unwrap_or((1, 1));
            Error::Syntax {
                line,
                column,
                message: e.reason().to_string(),
            }
        })?;
        Ok(Template {
            compiled,
            source: source.to_owned(),
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template for one run. `vars` is a [`RunVars`], or the same values as JSON
    /// (message destinations get them that way in `deliver::RunUpload::vars`).
    pub fn render<V: Serialize + ?Sized>(&self, vars: &V) -> Result<String, Error> {
        use handlebars::Renderable;
        let registry = engine();
        let context =
            handlebars::Context::wraps(vars).map_err(|e| Error::Render(e.reason().to_string()))?;
        let mut render_context = handlebars::RenderContext::new(None);
        let mut out = handlebars::StringOutput::new();
        self.compiled
            .render(registry, &context, &mut render_context, &mut out)
            .map_err(|e| match e.reason() {
                RenderErrorReason::MissingVariable(name) => Error::UnknownVariable {
                    name: name.clone().unwrap_or_default(),
                },
                _ => Error::Render(e.reason().to_string()),
            })?;
        out.into_string().map_err(|e| Error::Render(e.to_string()))
    }

    /// Renders a path and checks it stays under its root: no `..`, no empty result and, where
    /// `allow_absolute` is false (object keys, paths under an output directory), no leading `/`.
    pub fn render_path(&self, vars: &RunVars, allow_absolute: bool) -> Result<String, Error> {
        let rendered = self.render(vars)?;
        confine(&rendered, allow_absolute)?;
        Ok(rendered)
    }
}

/// Refuses a path that leaves its root.
pub fn confine(path: &str, allow_absolute: bool) -> Result<PathBuf, Error> {
    let escapes = |reason| Error::Escapes {
        path: path.to_owned(),
        reason,
    };
    if path.trim().is_empty() {
        return Err(escapes("is empty"));
    }
    if path.contains('\0') {
        return Err(escapes("contains a NUL byte"));
    }
    if path.ends_with('/') {
        return Err(escapes("names a directory, not a file"));
    }
    let p = Path::new(path);
    for component in p.components() {
        match component {
            Component::ParentDir => return Err(escapes("contains `..`")),
            Component::RootDir | Component::Prefix(_) if !allow_absolute => {
                return Err(escapes("is absolute"));
            }
            _ => {}
        }
    }
    // `.` or `./.` would name the root itself: the part would replace the directory.
    if !p.components().any(|c| matches!(c, Component::Normal(_))) {
        return Err(escapes("names no file"));
    }
    Ok(p.to_path_buf())
}

/// Sample values used by `validate` and `plan` to render templates before any run exists.
pub fn sample_vars(export: &str) -> RunVars {
    let nominal = DateTime::parse_from_rfc3339("2024-01-16T02:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let start = nominal - chrono::Duration::days(1);
    RunVars::new(export, nominal, Some(start), nominal, Tz::UTC, 1, "csv")
}

/// `{{format window.start "%Y/%m"}}`: formats an RFC 3339 variable with a strftime pattern.
fn format_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let invalid = |why: &str| -> RenderError {
        RenderErrorReason::Other(format!(
            "`format` {why}; write {{{{format window.start \"%Y/%m\"}}}}"
        ))
        .into()
    };
    let value = h
        .param(0)
        .and_then(|p| p.value().as_str())
        .ok_or_else(|| invalid("needs a time variable"))?;
    let pattern = h
        .param(1)
        .and_then(|p| p.value().as_str())
        .ok_or_else(|| invalid("needs a quoted strftime pattern"))?;
    let items: Vec<_> = chrono::format::StrftimeItems::new(pattern).collect();
    if items
        .iter()
        .any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(invalid("has an invalid strftime pattern"));
    }
    if value.is_empty() {
        return Ok(());
    }
    let time = DateTime::parse_from_rfc3339(value).map_err(|_| invalid("needs a time variable"))?;
    out.write(&time.format_with_items(items.into_iter()).to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> RunVars {
        let nominal = "2024-03-11T07:00:00Z".parse().unwrap();
        let start = "2024-03-10T06:00:00Z".parse().unwrap();
        RunVars::new(
            "daily",
            nominal,
            Some(start),
            nominal,
            chrono_tz::America::Chicago,
            2,
            "ndjson.gz",
        )
    }

    #[test]
    fn renders_documented_variables() {
        let t = Template::parse("backups/{{export}}/{{date}}/leads_{{part}}.{{ext}}").unwrap();
        assert_eq!(
            t.render(&vars()).unwrap(),
            "backups/daily/2024-03-10/leads_002.ndjson.gz"
        );
        let t = Template::parse("{{format window.start \"%Y/%m\"}}/{{week}}/{{run_id}}").unwrap();
        assert_eq!(
            t.render(&vars()).unwrap(),
            "2024/03/2024-W10/20240311T070000Z"
        );
    }

    #[test]
    fn unknown_variable_is_an_error_not_an_empty_string() {
        let t = Template::parse("x/{{dat}}/y").unwrap();
        let err = t.render(&vars()).unwrap_err();
        assert!(
            matches!(err, Error::UnknownVariable { ref name } if name == "dat"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Template::parse("a/{{date").unwrap_err();
        assert!(matches!(err, Error::Syntax { line: 1, .. }), "{err}");
    }

    #[test]
    fn escaping_paths_are_refused() {
        assert!(confine("../etc/passwd", false).is_err());
        assert!(confine("a/../../b", true).is_err());
        assert!(confine("/abs/x.csv", false).is_err());
        assert!(confine("/abs/x.csv", true).is_ok());
        assert!(confine("a/b/c.csv", false).is_ok());
        assert!(confine(".", false).is_err());
        assert!(confine("./.", true).is_err());
        let t = Template::parse("{{export}}/&amp;<x>.csv").unwrap();
        assert_eq!(t.render(&vars()).unwrap(), "daily/&amp;<x>.csv");
    }
}

/// Hostile templates and values: rendering never panics, and no path that `render_path`
/// accepts leaves its root, whatever the variables hold.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// An oracle independent of `confine`: walks the components as the filesystem would
    /// (lexically; symlinks are the operator's business) and says whether the path stays
    /// below the root it is joined to.
    fn stays_under_root(path: &str) -> bool {
        let mut depth = 0usize;
        for component in Path::new(path).components() {
            match component {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return false,
                },
                Component::RootDir | Component::Prefix(_) => return false,
            }
        }
        depth > 0
    }

    const PATH_PIECES: &[&str] = &[
        "..",
        ".",
        "/",
        "//",
        "a",
        "b.csv",
        "...",
        "..a",
        "a..",
        "~",
        "\\",
        "..\\..",
        "\0",
        " ",
        "%2e%2e",
        "\u{2024}\u{2024}",
        "C:",
        "\n",
    ];

    const TEMPLATE_PIECES: &[&str] = &[
        "{{date}}",
        "{{export}}",
        "{{part}}",
        "{{ext}}",
        "{{run_id}}",
        "{{year}}",
        "{{week}}",
        "{{window.start}}",
        "{{nominal}}",
        "{{format window.start \"%Y/%m\"}}",
        "{{format nominal \"%",
        "{{#if export}}",
        "{{/if}}",
        "{{#each export}}",
        "{{/each}}",
        "{{> partial}}",
        "{{!comment}}",
        "{{{export}}}",
        "{{",
        "}}",
        "{{lookup this \"export\"}}",
        "{{../export}}",
        "{{this}}",
        "{{@root.export}}",
        "/",
        "..",
        "a",
        "%",
        "\\",
    ];

    fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,12}",
            prop::collection::vec(prop::sample::select(PATH_PIECES), 0..8).prop_map(|p| p.concat()),
        ]
    }

    fn hostile_vars() -> impl Strategy<Value = RunVars> {
        (
            hostile_text(),
            hostile_text(),
            hostile_text(),
            hostile_text(),
        )
            .prop_map(|(export, ext, part, start)| {
                let mut vars = sample_vars("x");
                vars.export = export;
                vars.ext = ext;
                vars.part = part;
                vars.window.start = start;
                vars
            })
    }

    fn check_rendered(template: &Template, vars: &RunVars) -> Result<(), TestCaseError> {
        for allow_absolute in [false, true] {
            if let Ok(path) = template.render_path(vars, allow_absolute) {
                prop_assert!(
                    allow_absolute || stays_under_root(&path),
                    "`{}` rendered `{path}`, which leaves its root",
                    template.source()
                );
                prop_assert!(
                    !path.split('/').any(|c| c == ".."),
                    "`{path}` contains `..`"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn confine_accepts_only_paths_below_the_root(
            path in prop::collection::vec(prop::sample::select(PATH_PIECES), 0..8).prop_map(|p| p.concat())
        ) {
            if confine(&path, false).is_ok() {
                prop_assert!(stays_under_root(&path), "confine accepted `{path:?}`");
            }
        }

        #[test]
        fn arbitrary_templates_never_panic_and_stay_confined(
            source in prop_oneof![
                "\\PC{0,30}",
                prop::collection::vec(prop::sample::select(TEMPLATE_PIECES), 0..8).prop_map(|p| p.concat()),
            ],
            vars in hostile_vars(),
        ) {
            if let Ok(template) = Template::parse(&source) {
                check_rendered(&template, &sample_vars("daily"))?;
                check_rendered(&template, &vars)?;
            }
        }

        /// The variables a definition cannot choose (dates, run id) are fixed formats, and the
        /// ones it can (`export`, `ext`, `part`) are refused at render time if they would
        /// lead the path out, even for values validation would never let through.
        #[test]
        fn hostile_variable_values_never_escape(vars in hostile_vars()) {
            for source in [
                "{{export}}/{{date}}/{{part}}.{{ext}}",
                "out/{{export}}_{{part}}.{{ext}}",
                "{{export}}",
                "a/{{export}}/../{{ext}}",
                "{{format window.start \"%Y/%m\"}}/{{export}}",
            ] {
                check_rendered(&Template::parse(source).expect("template"), &vars)?;
            }
        }

        /// Every name validation accepts is a single, harmless path component.
        #[test]
        fn valid_export_names_are_one_path_component(name in "[A-Za-z0-9_.\\-/]{1,20}") {
            if crate::config::validate::valid_export_name(&name) {
                let vars = sample_vars(&name);
                let rendered = Template::parse("{{export}}").expect("template").render_path(&vars, false);
                prop_assert_eq!(rendered.ok(), Some(name));
            }
        }
    }
}
