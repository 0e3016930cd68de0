//! Reads the records of a staged `ndjson` or `json` part one at a time, as their exact JSON
//! text, decompressing gzip or zstd on the way: the webhook batches them without holding a
//! part in memory, and without re-encoding (a decimal such as `45.00` keeps its text).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// The layout of the records in a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON value per line.
    Lines,
    /// One JSON array of values (compact or pretty).
    Array,
}

/// A source of records: call [`Records::next_into`] until it returns `false`.
pub struct Records {
    reader: Box<dyn BufRead + Send>,
    layout: Layout,
    state: ArrayState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    BeforeOpen,
    Inside,
    Closed,
}

impl Records {
    /// Opens a staged part with its compression (`none`, `gzip` or `zstd`).
    pub fn open(path: &Path, compression: &str, layout: Layout) -> io::Result<Records> {
        let file = File::open(path)?;
        let raw: Box<dyn Read + Send> = match compression {
            "none" => Box::new(file),
            // Parts are written as several gzip members (one per core): read them all.
            "gzip" => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
            "zstd" => Box::new(zstd::stream::read::Decoder::new(file)?),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("records cannot be read from `{other}` parts"),
                ));
            }
        };
        Ok(Records::new(
            Box::new(BufReader::with_capacity(256 * 1024, raw)),
            layout,
        ))
    }

    /// Records from any reader.
    pub fn new(reader: Box<dyn BufRead + Send>, layout: Layout) -> Records {
        Records {
            reader,
            layout,
            state: ArrayState::BeforeOpen,
        }
    }

    /// Puts the next record's JSON text into `out` (cleared first); `false` at the end.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        match self.layout {
            Layout::Lines => loop {
                if self.reader.read_until(b'\n', out)? == 0 {
                    return Ok(false);
                }
                trim(out);
                if !out.is_empty() {
                    return Ok(true);
                }
            },
            Layout::Array => self.next_element(out),
        }
    }

    fn next_element(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        if self.state == ArrayState::BeforeOpen {
            self.skip_whitespace()?;
            match self.peek()? {
                Some(b'[') => self.reader.consume(1),
                _ => return Err(invalid("a JSON part must start with `[`")),
            }
            self.state = ArrayState::Inside;
        }
        if self.state == ArrayState::Closed {
            return Ok(false);
        }
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Err(invalid("the JSON array of the part is not closed"));
            }
            let mut end = None;
            for (i, &b) in buffer.iter().enumerate() {
                if in_string {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_string = false,
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' if depth == 0 => {
                        end = Some((i, false));
                        break;
                    }
                    b']' => {
                        end = Some((i, true));
                        break;
                    }
                    _ => {}
                }
            }
            match end {
                Some((i, closed)) => {
                    out.extend_from_slice(&buffer[..i]);
                    self.reader.consume(i + 1);
                    trim(out);
                    if closed {
                        self.state = ArrayState::Closed;
                        // `[]`, or a trailing `]` after the last element's comma-less end.
                        return Ok(!out.is_empty());
                    }
                    if out.is_empty() {
                        return Err(invalid("empty element in the JSON array of the part"));
                    }
                    return Ok(true);
                }
                None => {
                    let n = buffer.len();
                    out.extend_from_slice(buffer);
                    self.reader.consume(n);
                }
            }
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.reader.fill_buf()?.first().copied())
    }

    fn skip_whitespace(&mut self) -> io::Result<()> {
        while let Some(b) = self.peek()? {
            if !b.is_ascii_whitespace() {
                break;
            }
            self.reader.consume(1);
        }
        Ok(())
    }
}

fn trim(bytes: &mut Vec<u8>) {
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    let leading = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    bytes.drain(..leading);
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, layout: Layout) -> io::Result<Vec<String>> {
        // A tiny buffer so that records cross buffer boundaries.
        let reader = BufReader::with_capacity(3, io::Cursor::new(text.as_bytes().to_vec()));
        let mut records = Records::new(Box::new(reader), layout);
        let mut out = Vec::new();
        let mut found = Vec::new();
        while records.next_into(&mut out)? {
            found.push(String::from_utf8(out.clone()).unwrap());
        }
        Ok(found)
    }

    #[test]
    fn array_elements_keep_their_exact_text_across_buffer_boundaries() {
        let text = "[\n{\"a\":45.00,\"s\":\"x, ] } \\\" [\"},\n  {\"b\":[1,[2]],\"c\":{}}\n, 7 ]\n";
        assert_eq!(
            all(text, Layout::Array).unwrap(),
            [
                "{\"a\":45.00,\"s\":\"x, ] } \\\" [\"}",
                "{\"b\":[1,[2]],\"c\":{}}",
                "7"
            ]
        );
        assert!(all("[]", Layout::Array).unwrap().is_empty());
        assert!(all("  [ \n ]  ", Layout::Array).unwrap().is_empty());
        assert!(all("{\"a\":1}", Layout::Array).is_err());
        assert!(all("[{\"a\":1},", Layout::Array).is_err());
        assert!(all("[1,,2]", Layout::Array).is_err());
    }

    #[test]
    fn lines_skip_blank_lines_and_line_endings() {
        assert_eq!(
            all("{\"a\":1}\r\n\n{\"b\":2.50}\n{\"c\":3}", Layout::Lines).unwrap(),
            ["{\"a\":1}", "{\"b\":2.50}", "{\"c\":3}"]
        );
    }
}
