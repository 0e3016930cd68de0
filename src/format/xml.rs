//! XML encoder.
//!
//! Layout of a part (root and row element names are options, default `export` and `row`):
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <export>
//!   <row>
//!     <id>1</id>
//!     <email.valid>true</email.valid>
//!     <_1st_score name="1st score">-7</_1st_score>
//!     <revenue/>
//!   </row>
//! </export>
//! ```
//! Decisions:
//! - Column names become element names. A name that is not a valid XML 1.0 name is sanitised
//!   ([`xml_name`]) and the original kept in a `name="…"` attribute, only then. Colons are
//!   replaced too (they would declare a namespace prefix), and names starting with `xml` (any
//!   case, reserved by the spec) are prefixed with `_`.
//! - NULL is an empty element `<col/>`; the empty string is `<col></col>`. XML itself does not
//!   tell these apart (a DOM sees both as empty), but a streaming reader such as quick-xml
//!   does, and nothing else (`xsi:nil`) is needed for the simple consumers we target.
//! - Text escapes `<`, `>`, `&`, `"` and `'`. CR is written `&#13;` so that a parser's
//!   end-of-line normalisation does not turn it into LF. Characters XML 1.0 forbids (C0
//!   controls other than TAB, LF, CR, and U+FFFE/U+FFFF) are replaced by U+FFFD, so the loss
//!   is visible instead of silent.
//! - Every cell is text: decimals keep their exact text, timestamps are ISO 8601 UTC.
//!
//! Written by hand rather than through `quick_xml::Writer` (which must own its output); the
//! tests read every output back with `quick_xml::Reader`.

use super::{Encoder, FormatError, cell_text, row_length_error};
use crate::value::Value;
use std::io::{self, Write};

/// Options of the XML encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct XmlOptions {
    /// Root element of each part (default `export`).
    pub root: String,
    /// Element of each row (default `row`).
    pub row: String,
}

impl Default for XmlOptions {
    fn default() -> Self {
        XmlOptions {
            root: "export".into(),
            row: "row".into(),
        }
    }
}

impl XmlOptions {
    pub(super) fn validate(&self) -> Result<(), FormatError> {
        for (what, name) in [("root", &self.root), ("row", &self.row)] {
            let (safe, changed) = xml_name(name);
            if changed {
                return Err(FormatError::XmlName {
                    what,
                    name: name.clone(),
                    suggestion: safe,
                });
            }
        }
        Ok(())
    }
}

/// `NameStartChar` of XML 1.0 (fifth edition), without `:` (see the module doc).
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// `NameChar` of XML 1.0, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A valid XML element name for `name`, and whether it differs from `name`.
///
/// Each character that may not appear in a name becomes `_`; a name that starts with a
/// character allowed only inside names (a digit, `-`, `.`), or with the reserved `xml`, gets a
/// leading `_`; an empty name becomes `_`.
pub fn xml_name(name: &str) -> (String, bool) {
    let mut out = String::with_capacity(name.len() + 1);
    let first_ok = name.chars().next().is_some_and(is_name_start);
    let reserved = name.len() >= 3 && name.as_bytes()[..3].eq_ignore_ascii_case(b"xml");
    if !first_ok && name.chars().next().is_some_and(is_name_char) || reserved || name.is_empty() {
        out.push('_');
    }
    out.extend(name.chars().map(|c| if is_name_char(c) { c } else { '_' }));
    let changed = out != name;
    (out, changed)
}

/// Appends `s` escaped for element content (`attribute == false`) or a double-quoted
/// attribute value (`attribute == true`, where TAB and LF are also written as references so
/// that attribute-value normalisation keeps them).
fn escape_into(buf: &mut Vec<u8>, s: &str, attribute: bool) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let replacement: Option<&[u8]> = match b {
            b'<' => Some(b"&lt;"),
            b'>' => Some(b"&gt;"),
            b'&' => Some(b"&amp;"),
            b'"' => Some(b"&quot;"),
            b'\'' => Some(b"&apos;"),
            b'\r' => Some(b"&#13;"),
            b'\n' if attribute => Some(b"&#10;"),
            b'\t' if attribute => Some(b"&#9;"),
            b'\n' | b'\t' => None,
            0..=0x1F => Some("\u{FFFD}".as_bytes()),
            // U+FFFE and U+FFFF are EF BF BE / EF BF BF in UTF-8.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice("\u{FFFD}".as_bytes());
                i += 3;
                start = i;
                continue;
            }
            _ => None,
        };
        if let Some(r) = replacement {
            buf.extend_from_slice(&bytes[start..i]);
            buf.extend_from_slice(r);
            start = i + 1;
        }
        i += 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// The pre-rendered tags of one column.
struct ColumnTags {
    /// `    <name attr>`
    open: Vec<u8>,
    /// `</name>\n`
    close: Vec<u8>,
    /// `    <name attr/>\n`
    empty: Vec<u8>,
}

/// Writes one XML document per part.
pub struct XmlEncoder {
    prolog: Vec<u8>,
    epilog: Vec<u8>,
    row_open: Vec<u8>,
    row_close: Vec<u8>,
    columns: Vec<ColumnTags>,
    buf: Vec<u8>,
    scratch: String,
}

impl XmlEncoder {
    /// An encoder for `columns`. Invalid root or row names are sanitised like column names
    /// (reject them earlier with [`super::FormatOptions::validate`]).
    pub fn new(options: &XmlOptions, columns: &[String]) -> Self {
        let (root, _) = xml_name(&options.root);
        let (row, _) = xml_name(&options.row);
        let columns = columns
            .iter()
            .map(|original| {
                let (name, changed) = xml_name(original);
                let mut start = format!("    <{name}").into_bytes();
                if changed {
                    start.extend_from_slice(b" name=\"");
                    escape_into(&mut start, original, true);
                    start.push(b'"');
                }
                let mut open = start.clone();
                open.push(b'>');
                let mut empty = start;
                empty.extend_from_slice(b"/>\n");
                ColumnTags {
                    open,
                    close: format!("</{name}>\n").into_bytes(),
                    empty,
                }
            })
            .collect();
        XmlEncoder {
            prolog: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}>\n").into_bytes(),
            epilog: format!("</{root}>\n").into_bytes(),
            row_open: format!("  <{row}>\n").into_bytes(),
            row_close: format!("  </{row}>\n").into_bytes(),
            columns,
            buf: Vec::with_capacity(2048),
            scratch: String::new(),
        }
    }
}

impl Encoder for XmlEncoder {
    fn begin(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.prolog)
    }

    fn write_row(&mut self, out: &mut dyn Write, row: &[Value]) -> io::Result<()> {
        if row.len() != self.columns.len() {
            return Err(row_length_error(row.len(), self.columns.len()));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&self.row_open);
        for (tags, cell) in self.columns.iter().zip(row) {
            if cell.is_null() {
                self.buf.extend_from_slice(&tags.empty);
                continue;
            }
            self.buf.extend_from_slice(&tags.open);
            let text = cell_text(cell, &mut self.scratch);
            escape_into(&mut self.buf, text, false);
            self.buf.extend_from_slice(&tags.close);
        }
        self.buf.extend_from_slice(&self.row_close);
        out.write_all(&self.buf)
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.epilog)?;
        out.flush()
    }

    fn extension(&self) -> &'static str {
        "xml"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::fixtures::{columns, rows};
    use super::super::{FormatOptions, encoder};
    use super::*;
    use quick_xml::events::Event;

    fn encode(options: XmlOptions) -> String {
        let mut enc = encoder(&FormatOptions::Xml(options), &columns());
        let mut out = Vec::new();
        enc.begin(&mut out).expect("begin");
        for row in rows() {
            enc.write_row(&mut out, &row).expect("row");
        }
        enc.finish(&mut out).expect("finish");
        String::from_utf8(out).expect("utf-8")
    }

    /// One parsed cell: the column name (from `name="…"` when present, else the tag) and its
    /// text (`None` for an empty element).
    pub(crate) type Cell = (String, Option<String>);

    /// Reads a document written by [`XmlEncoder`] back into rows of cells, using quick-xml.
    pub(crate) fn parse(xml: &str) -> Result<(String, Vec<Vec<Cell>>), String> {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut root = String::new();
        let mut rows: Vec<Vec<Cell>> = Vec::new();
        let mut depth = 0usize;
        let mut current: Option<Cell> = None;
        loop {
            let event = reader.read_event().map_err(|e| e.to_string())?;
            match event {
                Event::Eof => break,
                Event::Empty(e) if depth == 2 => {
                    let name = cell_name(&e)?;
                    rows.last_mut()
                        .ok_or("cell outside a row")?
                        .push((name, None));
                }
                Event::Start(e) if depth == 2 => {
                    current = Some((cell_name(&e)?, Some(String::new())));
                    depth += 1;
                }
                Event::Start(e) => {
                    if depth == 0 {
                        root = e.name().as_ref().to_string();
                    } else if depth == 1 {
                        rows.push(Vec::new());
                    }
                    depth += 1;
                }
                Event::Text(t) if depth == 3 => {
                    if let Some((_, Some(text))) = current.as_mut() {
                        text.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) if depth == 3 => {
                    let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => c,
                        None => match &*r {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "quot" => '"',
                            "apos" => '\'',
                            other => return Err(format!("unknown entity {other}")),
                        },
                    };
                    if let Some((_, Some(text))) = current.as_mut() {
                        text.push(c);
                    }
                }
                Event::End(_) => {
                    depth = depth.saturating_sub(1);
                    if depth == 2
                        && let Some(cell) = current.take()
                    {
                        rows.last_mut().ok_or("cell outside a row")?.push(cell);
                    }
                }
                _ => {}
            }
        }
        Ok((root, rows))
    }

    /// The column name of a cell element: its `name` attribute when present, else the tag.
    fn cell_name(e: &quick_xml::events::BytesStart<'_>) -> Result<String, String> {
        for attr in e.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            if attr.key.as_ref() == "name" {
                return attr
                    .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                    .map(|v| v.into_owned())
                    .map_err(|e| e.to_string());
            }
        }
        Ok(e.name().as_ref().to_string())
    }

    /// The fixture cells as [`parse`] should return them.
    pub(crate) fn expected() -> Vec<Vec<Cell>> {
        rows()
            .iter()
            .map(|r| {
                columns()
                    .into_iter()
                    .zip(r)
                    .map(|(c, v)| {
                        let text =
                            (!v.is_null()).then(|| v.to_string().replace('\u{1}', "\u{FFFD}"));
                        (c, text)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn exact_bytes() {
        let got = encode(XmlOptions::default());
        let want = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<export>\n  <row>\n\
            \x20   <id>1</id>\n\
            \x20   <name>Ann &quot;Nan&quot; O&apos;Neil</name>\n\
            \x20   <email.valid>true</email.valid>\n\
            \x20   <revenue>45.00</revenue>\n\
            \x20   <created_at>2024-01-15T10:30:00Z</created_at>\n\
            \x20   <note>a,b;c\td</note>\n\
            \x20   <_1st_score name=\"1st score\">-7</_1st_score>\n\
            \x20   <ratio>0.25</ratio>\n\
            \x20 </row>\n  <row>\n\
            \x20   <id>2</id>\n\
            \x20   <name>Zoë 日本 🚀</name>\n\
            \x20   <email.valid>false</email.valid>\n\
            \x20   <revenue>0.005</revenue>\n\
            \x20   <created_at>2024-01-15T10:30:00.123Z</created_at>\n\
            \x20   <note>line1\nline2&#13;\nline3</note>\n\
            \x20   <_1st_score name=\"1st score\"/>\n\
            \x20   <ratio>1</ratio>\n\
            \x20 </row>\n  <row>\n\
            \x20   <id>3</id>\n\
            \x20   <name></name>\n\
            \x20   <email.valid/>\n\
            \x20   <revenue/>\n\
            \x20   <created_at/>\n\
            \x20   <note>&lt;b&gt;&amp;amp;&lt;/b&gt; \\ back\\slash \u{FFFD}</note>\n\
            \x20   <_1st_score name=\"1st score\">0</_1st_score>\n\
            \x20   <ratio/>\n\
            \x20 </row>\n</export>\n";
        assert_eq!(got, want);
    }

    #[test]
    fn round_trips_through_quick_xml() {
        let got = encode(XmlOptions {
            root: "leads".into(),
            row: "lead".into(),
        });
        assert!(got.contains("<leads>\n  <lead>\n"));
        let (root, parsed) = parse(&got).expect("well-formed");
        assert_eq!(root, "leads");
        assert_eq!(parsed, expected());
    }

    #[test]
    fn names_are_sanitised_only_when_needed() {
        let cases = [
            ("email.valid", "email.valid", false),
            ("first_name", "first_name", false),
            ("1st", "_1st", true),
            ("-x", "_-x", true),
            ("a b/c", "a_b_c", true),
            ("ns:tag", "ns_tag", true),
            ("xmlData", "_xmlData", true),
            ("XML", "_XML", true),
            ("", "_", true),
            ("日本", "日本", false),
            ("é", "é", false),
            ("$x", "_x", true),
        ];
        for (name, want, changed) in cases {
            assert_eq!(xml_name(name), (want.to_string(), changed), "{name:?}");
        }
    }

    #[test]
    fn attribute_and_illegal_characters_are_escaped() {
        let cols = vec!["a\tb\"c\n<d>".to_string()];
        let mut enc = encoder(&FormatOptions::Xml(XmlOptions::default()), &cols);
        let mut out = Vec::new();
        enc.begin(&mut out).expect("begin");
        enc.write_row(
            &mut out,
            &[Value::Text("x\u{FFFF}y\u{FFFE}z\u{0}\u{1F}\u{FFFD}".into())],
        )
        .expect("row");
        enc.finish(&mut out).expect("finish");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains(
            "<a_b_c__d_ name=\"a&#9;b&quot;c&#10;&lt;d&gt;\">x\u{FFFD}y\u{FFFD}z\u{FFFD}\u{FFFD}\u{FFFD}</a_b_c__d_>"
        ));
        let (_, rows) = parse(&text).expect("well-formed");
        assert_eq!(rows[0][0].0, cols[0]);
    }

    #[test]
    fn invalid_root_names_fail_validation() {
        let bad = XmlOptions {
            root: "1root".into(),
            ..XmlOptions::default()
        };
        assert_eq!(
            FormatOptions::Xml(bad).validate(),
            Err(FormatError::XmlName {
                what: "root",
                name: "1root".into(),
                suggestion: "_1root".into()
            })
        );
        assert_eq!(FormatOptions::Xml(XmlOptions::default()).validate(), Ok(()));
    }
}
