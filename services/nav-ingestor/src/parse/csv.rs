//! Splitting one comma-separated line with RFC 4180 quoting (`"a, b"`, `"say ""hi"""`).
//!
//! Hand-written rather than the `csv` crate: the parser already owns line reading (bounded,
//! numbered, BOM/CR handling), and all it needs is this one function. One deliberate departure
//! from RFC 4180: a quoted field may not span lines. NAV feeds never carry newlines in a field,
//! and allowing it would let one stray quote swallow the rest of the file into a single
//! "record"; here that quote costs exactly one rejected line.

use std::ops::Range;

/// Splits `line` into cells. Unescaped cell text is written to `cells` (cleared first) and
/// `spans` gets each cell's range in it, so a caller can reuse both buffers across lines.
/// Whitespace before an opening or after a closing quote is ignored; an unquoted cell is kept
/// verbatim (callers trim). Errors describe the quoting problem.
pub(crate) fn split(
    line: &str,
    cells: &mut String,
    spans: &mut Vec<Range<usize>>,
) -> Result<(), String> {
    cells.clear();
    spans.clear();
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        let start = cells.len();
        let mut j = i;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        if j < b.len() && b[j] == b'"' {
            // Quoted cell. `"` and `,` are ASCII, so byte offsets found here are char boundaries.
            i = j + 1;
            loop {
                let Some(p) = b[i..].iter().position(|&c| c == b'"') else {
                    return Err(format!(
                        "the quoted field {} is not closed before the end of the line",
                        spans.len() + 1
                    ));
                };
                cells.push_str(&line[i..i + p]);
                i += p + 1;
                if b.get(i) == Some(&b'"') {
                    cells.push('"');
                    i += 1;
                } else {
                    break;
                }
            }
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            spans.push(start..cells.len());
            match b.get(i) {
                None => return Ok(()),
                Some(b',') => i += 1,
                Some(_) => {
                    let rest: String = line[i..].chars().take(12).collect();
                    return Err(format!(
                        "field {} has text {rest:?} after its closing quote",
                        spans.len()
                    ));
                }
            }
        } else {
            let end = b[i..]
                .iter()
                .position(|&c| c == b',')
                .map_or(b.len(), |p| i + p);
            cells.push_str(&line[i..end]);
            spans.push(start..cells.len());
            if end == b.len() {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(line: &str) -> Result<Vec<String>, String> {
        let (mut buf, mut spans) = (String::new(), Vec::new());
        split(line, &mut buf, &mut spans)?;
        Ok(spans.into_iter().map(|r| buf[r].to_owned()).collect())
    }

    /// Quoted commas, doubled quotes, empty and trailing cells, and non-ASCII text split correctly.
    #[test]
    fn splits_with_quoting() {
        assert_eq!(cells("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            cells(r#"1,"Fund, Direct - Growth",2"#).unwrap(),
            ["1", "Fund, Direct - Growth", "2"]
        );
        assert_eq!(cells(r#""say ""hi""", x"#).unwrap(), [r#"say "hi""#, " x"]);
        assert_eq!(cells(r#"a,,"",b,"#).unwrap(), ["a", "", "", "b", ""]);
        assert_eq!(cells(r#"  "q" ,é,"ü,ß""#).unwrap(), ["q", "é", "ü,ß"]);
        assert_eq!(cells("").unwrap(), [""]);
    }

    /// Broken quoting is an error naming the field, not a silently mangled cell.
    #[test]
    fn broken_quoting_is_reported() {
        let e = cells(r#"1,"unclosed, 2"#).unwrap_err();
        assert!(e.contains("field 2 is not closed"), "{e}");
        let e = cells(r#"1,"ab"cd,3"#).unwrap_err();
        assert!(e.contains("field 2") && e.contains("\"cd,3\""), "{e}");
    }
}
