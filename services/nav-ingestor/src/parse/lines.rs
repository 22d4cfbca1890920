//! The line reader under every parser: one reused buffer, bounded, numbered.
//!
//! `BufRead::read_line` was rejected: it grows its `String` without limit (a 1 GB file without a
//! newline would be read whole) and fails the entire read on one non-UTF-8 byte. This reader
//! keeps at most [`MAX_LINE_BYTES`] of a line, drops the rest up to the newline, and reports
//! such a line, or one that is not UTF-8, as a [`RejectedLine`] so the rest of the file still
//! parses.

use std::io::{self, BufRead, ErrorKind};

use super::{Error, RejectReason, RejectedLine, Result};

/// Longest line kept. AMFI rows are under 300 bytes; 64 KiB leaves room for any sane feed while
/// bounding memory for an insane one.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// How much of an over-long line a rejection keeps in `raw`.
const RAW_EXCERPT_BYTES: usize = 256;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line: its 1-based number and its text (without line ending), or why it has none.
pub(crate) struct Line<'b> {
    pub(crate) number: u64,
    pub(crate) text: std::result::Result<&'b str, RejectedLine>,
}

pub(crate) struct LineReader<R> {
    reader: R,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(reader: R) -> Self {
        LineReader {
            reader,
            buf: Vec::with_capacity(512),
            number: 0,
        }
    }

    /// Number of the last line returned (0 before the first).
    pub(crate) fn line_number(&self) -> u64 {
        self.number
    }

    /// The next line, or `None` at end of input. CR before the LF (and any trailing CRs) is
    /// dropped; a UTF-8 BOM is dropped from the very first line only.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut saw_bytes = false;
        let mut truncated = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            saw_bytes = true;
            let (content, ends_line) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], true),
                None => (available, false),
            };
            let room = MAX_LINE_BYTES - self.buf.len();
            if content.len() > room {
                truncated = true;
                self.buf.extend_from_slice(&content[..room]);
            } else {
                self.buf.extend_from_slice(content);
            }
            let used = content.len() + usize::from(ends_line);
            self.reader.consume(used);
            if ends_line {
                break;
            }
        }
        if !saw_bytes {
            return Ok(None);
        }
        self.number += 1;
        let number = self.number;
        if number == 1 && self.buf.starts_with(UTF8_BOM) {
            self.buf.drain(..UTF8_BOM.len());
        }
        if truncated {
            let cut = RAW_EXCERPT_BYTES.min(self.buf.len());
            let excerpt = format!("{}…", String::from_utf8_lossy(&self.buf[..cut]));
            let reason = format!(
                "line is longer than {MAX_LINE_BYTES} bytes; only its first {cut} bytes are kept here"
            );
            return Ok(Some(Line {
                number,
                text: Err(RejectedLine::new(
                    number,
                    RejectReason::LineTooLong,
                    reason,
                    &excerpt,
                )),
            }));
        }
        while self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let text = match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(s),
            Err(e) => {
                let reason = format!(
                    "line is not valid UTF-8 (first bad byte at column {})",
                    e.valid_up_to() + 1
                );
                Err(RejectedLine::new(
                    number,
                    RejectReason::InvalidEncoding,
                    reason,
                    &String::from_utf8_lossy(&self.buf),
                ))
            }
        };
        Ok(Some(Line { number, text }))
    }

    /// The first non-blank line, owned, for a parser to check as its header.
    pub(crate) fn read_header(&mut self, expected: &'static str) -> Result<String> {
        loop {
            let next = self.number + 1;
            let line = self
                .next_line()
                .map_err(|source| Error::Io { line: next, source })?;
            let Some(line) = line else {
                return Err(Error::Empty);
            };
            match line.text {
                Ok(t) if t.trim().is_empty() => continue,
                Ok(t) => return Ok(t.to_owned()),
                Err(rej) => {
                    let reason = match rej.reason_code {
                        RejectReason::InvalidEncoding => {
                            "the header is not UTF-8 text (UTF-16 and legacy code pages are not supported)".to_owned()
                        }
                        _ => rej.reason,
                    };
                    return Err(Error::UnrecognisedHeader {
                        expected,
                        reason,
                        header: excerpt(&rej.raw),
                    });
                }
            }
        }
    }
}

/// A header quoted in an error, cut so an unrecognised binary upload cannot flood a log line.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8]) -> Vec<(u64, std::result::Result<String, RejectReason>)> {
        let mut r = LineReader::new(input);
        let mut out = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            out.push((
                line.number,
                line.text.map(str::to_owned).map_err(|e| e.reason_code),
            ));
        }
        out
    }

    /// BOM only at the start, CR stripped, last line without newline kept, no phantom last line.
    #[test]
    fn bom_crlf_and_final_line() {
        let got = collect(b"\xEF\xBB\xBFa;b\r\n\r\n\xEF\xBB\xBFc\nlast");
        let want = vec![
            (1, Ok("a;b".into())),
            (2, Ok("".into())),
            (3, Ok("\u{FEFF}c".into())),
            (4, Ok("last".into())),
        ];
        assert_eq!(got, want);
        assert_eq!(collect(b"x\n"), vec![(1, Ok("x".into()))]);
        assert!(collect(b"").is_empty());
    }

    /// An over-long line is rejected with a short excerpt, and the next line is read normally.
    #[test]
    fn over_long_line_is_bounded() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 3];
        input.extend_from_slice(b"\nnext\n");
        let mut r = LineReader::new(&input[..]);
        let first = r.next_line().unwrap().unwrap();
        let rej = first.text.unwrap_err();
        assert_eq!(rej.reason_code, RejectReason::LineTooLong);
        assert!(rej.raw.len() < 1024, "raw keeps an excerpt, not the line");
        let second = r.next_line().unwrap().unwrap();
        assert_eq!((second.number, second.text.unwrap()), (2, "next"));
        assert!(
            r.buf.capacity() <= MAX_LINE_BYTES * 2,
            "buffer stayed bounded"
        );
    }

    /// Invalid UTF-8 rejects that line only, with the column of the first bad byte.
    #[test]
    fn invalid_utf8_is_a_rejection() {
        let got = collect(b"ok\nab\xFFcd\nok2");
        assert_eq!(got[1], (2, Err(RejectReason::InvalidEncoding)));
        assert_eq!(got[2], (3, Ok("ok2".into())));
        let mut r = LineReader::new(&b"ab\xFF"[..]);
        let rej = r.next_line().unwrap().unwrap().text.unwrap_err();
        assert!(rej.reason.contains("column 3"), "{}", rej.reason);
        assert_eq!(rej.raw, "ab\u{FFFD}");
    }

    /// The header skips leading blank lines; an empty input is `Error::Empty`.
    #[test]
    fn header_skips_blanks() {
        let mut r = LineReader::new(&b" \r\n\nH1;H2\r\nrow"[..]);
        assert_eq!(r.read_header("test").unwrap(), "H1;H2");
        assert_eq!(r.line_number(), 3);
        assert!(matches!(
            LineReader::new(&b"\n \n"[..]).read_header("test"),
            Err(Error::Empty)
        ));
        let utf16 = LineReader::new(&b"\xFF\xFEa\x00"[..]).read_header("test");
        assert!(
            matches!(utf16, Err(Error::UnrecognisedHeader { reason, .. }) if reason.contains("UTF-16"))
        );
    }
}
