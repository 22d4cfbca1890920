//! AMFI `NAVAll.txt`: `;`-separated rows under section and AMC headings.
//!
//! The file looks like this (blank lines hold a single space; CRLF endings):
//!
//! ```text
//! Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date
//! Open Ended Schemes(Debt Scheme - Banking and PSU Fund)
//! Aditya Birla Sun Life Mutual Fund
//! 119551;INF209KA12Z1;INF209KA13Z9;Aditya Birla Sun Life Banking & PSU Debt Fund  - DIRECT - IDCW;103.5311;25-Feb-2025
//! ```
//!
//! Columns are found by header name, not position, so the 6-column layout above, the newer
//! 8-column one (with `Plan;Option`) and the old one with `Repurchase Price;Sale Price` are the
//! same code path. A line is classified as follows:
//!
//! - blank (only whitespace): nothing;
//! - containing `;`: a data row (or a repeat of the header) — judged field by field, never
//!   skipped;
//! - `<something> Schemes(<category>)`: a section heading, e.g. `Open Ended Schemes(Income)` or
//!   `Interval Fund Schemes(Income)`;
//! - containing `Mutual Fund`: an AMC heading;
//! - anything else: rejected as `UnrecognisedLine`.
//!
//! Parentheses alone do not make a section: `360 ONE Mutual Fund (Formerly Known as IIFL Mutual
//! Fund)` and `IL&FS Mutual Fund (IDF)` are AMC names in the real file, which is why a section
//! must have `Schemes` right before its parenthesis. "Any other non-`;` line is an AMC" was
//! rejected: a data row that lost its separators (commas instead of `;`) would then silently
//! become the AMC of every row after it. Every AMC AMFI lists is registered as a "… Mutual
//! Fund" trust, so the marker is reliable; an unrecognised line leaves the current AMC as it is,
//! since a stray broken line inside a block is far likelier than an AMC without that name.

use std::io::BufRead;
use std::ops::Range;

use super::fields::{self, FieldResult, header_key, key_eq};
use super::lines::{LineReader, excerpt};
use super::{
    Error, NavFileParser, NavLines, NavRow, ParsedLine, RejectReason, RejectedLine, Result,
};

const EXPECTED: &str = "AMFI NAVAll.txt";

/// Parser for AMFI `NAVAll.txt` in any of its header layouts.
#[derive(Debug, Clone, Copy, Default)]
pub struct AmfiParser;

impl NavFileParser for AmfiParser {
    fn parse<'a, R: BufRead + 'a>(&self, reader: R) -> Result<NavLines<'a>> {
        let mut lines = LineReader::new(reader);
        let header = lines.read_header(EXPECTED)?;
        let columns = Columns::from_header(&header)?;
        Ok(Box::new(AmfiLines {
            lines,
            header_key: header_key(&header),
            columns,
            heading: Heading::default(),
            spans: Vec::with_capacity(8),
            done: false,
        }))
    }
}

/// Where each known column sits in this file's header.
#[derive(Debug)]
struct Columns {
    /// Header names as written (trimmed), to name the column in rejection reasons.
    names: Vec<String>,
    code: usize,
    name: usize,
    nav: usize,
    date: usize,
    isin_growth: Option<usize>,
    isin_reinvestment: Option<usize>,
    plan: Option<usize>,
    option: Option<usize>,
    repurchase: Option<usize>,
    sale: Option<usize>,
}

/// A column's meaning; the discriminant indexes the slot array in [`Columns::from_header`].
#[derive(Clone, Copy)]
enum Role {
    Code,
    Name,
    Nav,
    Date,
    IsinGrowth,
    IsinReinvestment,
    Plan,
    Option,
    Repurchase,
    Sale,
}

fn role_of(key: &str) -> Option<Role> {
    Some(match key {
        "schemecode" => Role::Code,
        "schemename" => Role::Name,
        "netassetvalue" | "nav" => Role::Nav,
        "date" | "navdate" => Role::Date,
        "isindivpayout/isingrowth"
        | "isingrowth"
        | "isindivpayout"
        | "isingrowth/isindivpayout" => Role::IsinGrowth,
        "isindivreinvestment" | "isinreinvestment" => Role::IsinReinvestment,
        "plan" => Role::Plan,
        "option" => Role::Option,
        "repurchaseprice" => Role::Repurchase,
        "saleprice" => Role::Sale,
        _ => return None,
    })
}

impl Columns {
    /// Unknown columns are tolerated (kept only for the count): AMFI adding a column must not stop
    /// the day's ingest, while a missing or duplicated required one must.
    fn from_header(header: &str) -> Result<Self> {
        let bad = |reason: String| Error::UnrecognisedHeader {
            expected: EXPECTED,
            reason,
            header: excerpt(header),
        };
        let names: Vec<String> = header.split(';').map(|n| n.trim().to_owned()).collect();
        let mut slots: [Option<usize>; 10] = [None; 10];
        for (i, name) in names.iter().enumerate() {
            let Some(role) = role_of(&header_key(name)) else {
                continue;
            };
            let slot = &mut slots[role as usize];
            if let Some(prev) = *slot {
                return Err(bad(format!(
                    "columns {} ({:?}) and {} ({name:?}) mean the same thing",
                    prev + 1,
                    names[prev],
                    i + 1
                )));
            }
            *slot = Some(i);
        }
        let [
            code,
            name,
            nav,
            date,
            isin_growth,
            isin_reinvestment,
            plan,
            option,
            repurchase,
            sale,
        ] = slots;
        let missing: Vec<&str> = [
            (code, "Scheme Code"),
            (name, "Scheme Name"),
            (nav, "Net Asset Value"),
            (date, "Date"),
        ]
        .into_iter()
        .filter_map(|(slot, label)| slot.is_none().then_some(label))
        .collect();
        match (code, name, nav, date) {
            (Some(code), Some(name), Some(nav), Some(date)) => Ok(Columns {
                names,
                code,
                name,
                nav,
                date,
                isin_growth,
                isin_reinvestment,
                plan,
                option,
                repurchase,
                sale,
            }),
            _ => Err(bad(format!(
                "the ';'-separated header lacks the column(s) {}",
                missing.join(", ")
            ))),
        }
    }

    fn count(&self) -> usize {
        self.names.len()
    }
}

/// The section and AMC headings the next rows belong to.
#[derive(Debug, Default)]
struct Heading {
    scheme_type: Option<String>,
    category: Option<String>,
    amc: Option<String>,
}

struct AmfiLines<R> {
    lines: LineReader<R>,
    columns: Columns,
    header_key: String,
    heading: Heading,
    /// Field boundaries of the current line, reused so a row costs no `Vec` allocation.
    spans: Vec<Range<usize>>,
    done: bool,
}

impl<R: BufRead> Iterator for AmfiLines<R> {
    type Item = Result<ParsedLine>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let line = match self.lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(source) => {
                    self.done = true;
                    return Some(Err(Error::Io {
                        line: self.lines.line_number() + 1,
                        source,
                    }));
                }
            };
            let text = match line.text {
                Ok(text) => text,
                Err(rejected) => return Some(Ok(ParsedLine::Rejected(rejected))),
            };
            let parsed = interpret(
                line.number,
                text,
                &self.columns,
                &self.header_key,
                &mut self.heading,
                &mut self.spans,
            );
            if parsed.is_some() {
                return parsed.map(Ok);
            }
        }
        self.done = true;
        None
    }
}

/// What one line means, given the headings above it; `None` for lines that carry no row.
fn interpret(
    number: u64,
    text: &str,
    columns: &Columns,
    file_header_key: &str,
    heading: &mut Heading,
    spans: &mut Vec<Range<usize>>,
) -> Option<ParsedLine> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if !t.contains(';') {
        if let Some((scheme_type, category)) = section(t) {
            // A new section restarts the AMC list; rows before its first AMC line get none.
            *heading = Heading {
                scheme_type: Some(scheme_type.to_owned()),
                category: Some(category.to_owned()),
                amc: None,
            };
            return None;
        }
        if is_amc(t) {
            heading.amc = Some(t.to_owned());
            return None;
        }
        let reason = concat!(
            "line has no ';' and is neither a section heading like ",
            "\"Open Ended Schemes(Income)\" nor an AMC name containing \"Mutual Fund\""
        );
        return Some(ParsedLine::Rejected(RejectedLine::new(
            number,
            RejectReason::UnrecognisedLine,
            reason,
            text,
        )));
    }
    // The header again: files concatenated.
    if key_eq(t, file_header_key) {
        return None;
    }
    spans.clear();
    let mut start = 0;
    for field in t.split(';') {
        spans.push(start..start + field.len());
        start += field.len() + 1;
    }
    if spans.len() != columns.count() {
        let reason = format!(
            "expected {} fields separated by ';' as in the header, found {}",
            columns.count(),
            spans.len()
        );
        return Some(ParsedLine::Rejected(RejectedLine::new(
            number,
            RejectReason::WrongColumnCount,
            reason,
            text,
        )));
    }
    Some(match row(number, t, spans, columns, heading) {
        Ok(row) => ParsedLine::Nav(row),
        Err(e) => ParsedLine::Rejected(RejectedLine::new(number, e.code, e.reason, text)),
    })
}

/// Checks in the order scheme code, NAV, date, ISINs, name, plan/option, prices; the first
/// failure is the reason (NAV before ISINs so an `N.A.` row is always counted as such).
fn row(
    number: u64,
    t: &str,
    spans: &[Range<usize>],
    c: &Columns,
    heading: &Heading,
) -> FieldResult<NavRow> {
    let field = |i: usize| t[spans[i].clone()].trim();
    let col = |i: usize| c.names[i].as_str();
    let optional = |slot: Option<usize>| slot.map(|i| (col(i), field(i)));

    let scheme_code = fields::scheme_code(col(c.code), field(c.code))?;
    let nav = fields::nav(col(c.nav), field(c.nav))?;
    let nav_date = fields::nav_date(col(c.date), field(c.date))?;
    let isin_growth = match optional(c.isin_growth) {
        Some((name, v)) => fields::optional_isin(name, v)?,
        None => None,
    };
    let isin_reinvestment = match optional(c.isin_reinvestment) {
        Some((name, v)) => fields::optional_isin(name, v)?,
        None => None,
    };
    let scheme_name = field(c.name);
    if scheme_name.is_empty() {
        return Err(fields::FieldError {
            code: RejectReason::MissingSchemeName,
            reason: format!("{} is empty", col(c.name)),
        });
    }
    let repurchase_price = match optional(c.repurchase) {
        Some((name, v)) => fields::optional_price(name, v)?,
        None => None,
    };
    let sale_price = match optional(c.sale) {
        Some((name, v)) => fields::optional_price(name, v)?,
        None => None,
    };
    Ok(NavRow {
        line_number: number,
        scheme_code,
        isin_growth,
        isin_reinvestment,
        scheme_name: scheme_name.to_owned(),
        plan: optional(c.plan).and_then(|(_, v)| fields::optional_text(v)),
        option: optional(c.option).and_then(|(_, v)| fields::optional_text(v)),
        nav,
        nav_date,
        repurchase_price,
        sale_price,
        amc: heading.amc.clone(),
        scheme_type: heading.scheme_type.clone(),
        category: heading.category.clone(),
    })
}

/// `Open Ended Schemes(Debt Scheme - Banking and PSU Fund)` → `("Open Ended Schemes", "Debt
/// Scheme - Banking and PSU Fund")`. The type must end in `Schemes` (see the module doc for why)
/// and the category must be non-empty.
fn section(t: &str) -> Option<(&str, &str)> {
    let inner = t.strip_suffix(')')?;
    let open = inner.find('(')?;
    let scheme_type = inner[..open].trim_end();
    let category = inner[open + 1..].trim();
    let suffix = b"schemes";
    let ty = scheme_type.as_bytes();
    let ends_in_schemes =
        ty.len() > suffix.len() && ty[ty.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
    (ends_in_schemes && !category.is_empty()).then_some((scheme_type, category))
}

fn is_amc(t: &str) -> bool {
    t.as_bytes()
        .windows(b"mutual fund".len())
        .any(|w| w.eq_ignore_ascii_case(b"mutual fund"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section headings split into type and category; AMC names with parentheses are not sections.
    #[test]
    fn sections_versus_amcs() {
        assert_eq!(
            section("Open Ended Schemes(Debt Scheme - Banking and PSU Fund)"),
            Some(("Open Ended Schemes", "Debt Scheme - Banking and PSU Fund"))
        );
        assert_eq!(
            section("Interval Fund Schemes(Income)"),
            Some(("Interval Fund Schemes", "Income"))
        );
        assert_eq!(
            section("Close Ended Schemes (ELSS)"),
            Some(("Close Ended Schemes", "ELSS"))
        );
        for amc in [
            "360 ONE Mutual Fund (Formerly Known as IIFL Mutual Fund)",
            "IL&FS Mutual Fund (IDF)",
            "quant Mutual Fund",
        ] {
            assert_eq!(section(amc), None, "{amc}");
            assert!(is_amc(amc), "{amc}");
        }
        assert_eq!(section("Schemes()"), None);
        assert_eq!(section("Schemes(Income)"), None);
        assert!(!is_amc("119551,INF209KA12Z1,-,Some Fund,103.5,25-Feb-2025"));
    }

    /// Both AMFI layouts map by name; a missing required column names what is missing.
    #[test]
    fn header_layouts() {
        const SIX: &str = "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;\
                           Scheme Name;Net Asset Value;Date";
        const EIGHT: &str = "Scheme Code ; ISIN Div Payout/ISIN Growth;ISIN Div Reinvestment;\
                             Scheme Name;Plan;Option;Net  Asset Value;Date";
        let six = Columns::from_header(SIX).unwrap();
        assert_eq!((six.count(), six.nav, six.date, six.plan), (6, 4, 5, None));
        let eight = Columns::from_header(EIGHT).unwrap();
        assert_eq!(
            (
                eight.count(),
                eight.plan,
                eight.option,
                eight.nav,
                eight.date
            ),
            (8, Some(4), Some(5), 6, 7)
        );
        let err = Columns::from_header("Scheme Code;Scheme Name;NAV")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lacks the column(s) Date"), "{err}");
        let err = Columns::from_header("scheme_code,isin,nav,nav_date")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Scheme Code, Scheme Name, Net Asset Value, Date"),
            "{err}"
        );
        let err = Columns::from_header("Scheme Code;Scheme Name;NAV;Net Asset Value;Date")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mean the same thing"), "{err}");
    }
}
