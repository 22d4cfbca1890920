//! Registrar NAV feeds (CAMS, KFintech): a CSV file with a header row naming its columns.
//!
//! Columns are matched by name, ignoring case, spaces, `_` and `-`, through these aliases:
//!
//! | field            | header names                                   | required |
//! |------------------|------------------------------------------------|----------|
//! | scheme code      | `scheme_code`, `SchemeCode`, `Scheme Code`     | yes      |
//! | ISIN             | `isin`, `ISIN Growth`                          | yes      |
//! | NAV date         | `nav_date`, `NAV Date` (else `Date`)           | yes      |
//! | NAV              | `nav`, `NAV`, `Net Asset Value`                | yes      |
//! | scheme name      | `scheme_name`, `Scheme Name`                   | no       |
//! | repurchase price | `repurchase_price`, `Repurchase Price`         | no       |
//! | sale price       | `sale_price`, `Sale Price`                     | no       |
//! | reinvestment ISIN| `isin_reinvestment`, `ISIN Div Reinvestment`   | no       |
//! | AMC, plan, option| `amc`/`AMC Name`, `plan`, `option`             | no       |
//!
//! Other columns are ignored. A plain `Date` column is the NAV date only when there is no
//! `NAV Date`: registrar exports often carry both a file date and a NAV date.
//!
//! Lines whose cells are all blank (`,,,,` from spreadsheet exports) carry nothing and yield
//! nothing; every other line is a row or a rejection.

use std::io::BufRead;
use std::ops::Range;

use super::fields::{self, FieldResult, header_key, key_eq};
use super::lines::{LineReader, excerpt};
use super::{
    Error, NavFileParser, NavLines, NavRow, NavSource, ParsedLine, RejectReason, RejectedLine,
    Result, csv,
};

/// Parser for a registrar's CSV NAV feed.
#[derive(Debug, Clone, Copy)]
pub struct RegistrarCsvParser {
    source: NavSource,
}

impl RegistrarCsvParser {
    /// `source` only words error messages: CAMS and KFintech feeds share this layout.
    pub fn new(source: NavSource) -> Self {
        RegistrarCsvParser { source }
    }

    fn expected(&self) -> &'static str {
        match self.source {
            NavSource::Cams => "CAMS NAV CSV",
            NavSource::Kfintech => "KFINTECH NAV CSV",
            NavSource::Amfi => "registrar NAV CSV",
        }
    }
}

impl NavFileParser for RegistrarCsvParser {
    fn parse<'a, R: BufRead + 'a>(&self, reader: R) -> Result<NavLines<'a>> {
        let expected = self.expected();
        let mut lines = LineReader::new(reader);
        let header = lines.read_header(expected)?;
        let mut cells = String::new();
        let mut spans = Vec::new();
        csv::split(&header, &mut cells, &mut spans).map_err(|reason| {
            Error::UnrecognisedHeader {
                expected,
                reason,
                header: excerpt(&header),
            }
        })?;
        let names: Vec<String> = spans
            .iter()
            .map(|r| cells[r.clone()].trim().to_owned())
            .collect();
        let columns = Columns::from_names(names).map_err(|reason| Error::UnrecognisedHeader {
            expected,
            reason,
            header: excerpt(&header),
        })?;
        Ok(Box::new(CsvLines {
            lines,
            columns,
            cells,
            spans,
            done: false,
        }))
    }
}

#[derive(Debug)]
struct Columns {
    names: Vec<String>,
    /// `header_key` of each name, to recognise a repeated header row.
    keys: Vec<String>,
    code: usize,
    isin: usize,
    nav_date: usize,
    nav: usize,
    name: Option<usize>,
    repurchase: Option<usize>,
    sale: Option<usize>,
    isin_reinvestment: Option<usize>,
    amc: Option<usize>,
    plan: Option<usize>,
    option: Option<usize>,
}

/// A column's meaning; the discriminant indexes the slot array in [`Columns::from_names`].
#[derive(Clone, Copy)]
enum Role {
    Code,
    Isin,
    NavDate,
    /// A bare `Date`: the NAV date only if no `NAV Date` column exists.
    Date,
    Nav,
    Name,
    Repurchase,
    Sale,
    IsinReinvestment,
    Amc,
    Plan,
    Option,
}

fn role_of(key: &str) -> Option<Role> {
    Some(match key {
        "schemecode" => Role::Code,
        "isin" | "isingrowth" | "isindivpayout/isingrowth" => Role::Isin,
        "navdate" => Role::NavDate,
        "date" => Role::Date,
        "nav" | "netassetvalue" => Role::Nav,
        "schemename" => Role::Name,
        "repurchaseprice" => Role::Repurchase,
        "saleprice" => Role::Sale,
        "isinreinvestment" | "isindivreinvestment" => Role::IsinReinvestment,
        "amc" | "amcname" => Role::Amc,
        "plan" => Role::Plan,
        "option" => Role::Option,
        _ => return None,
    })
}

impl Columns {
    fn from_names(names: Vec<String>) -> std::result::Result<Self, String> {
        let keys: Vec<String> = names.iter().map(|n| header_key(n)).collect();
        let mut slots: [Option<usize>; 12] = [None; 12];
        for (i, key) in keys.iter().enumerate() {
            let Some(role) = role_of(key) else { continue };
            let slot = &mut slots[role as usize];
            if let Some(prev) = *slot {
                return Err(format!(
                    "columns {} ({:?}) and {} ({:?}) mean the same thing",
                    prev + 1,
                    names[prev],
                    i + 1,
                    names[i]
                ));
            }
            *slot = Some(i);
        }
        let [
            code,
            isin,
            nav_date,
            date,
            nav,
            name,
            repurchase,
            sale,
            isin_reinvestment,
            amc,
            plan,
            option,
        ] = slots;
        let nav_date = nav_date.or(date);
        match (code, isin, nav_date, nav) {
            (Some(code), Some(isin), Some(nav_date), Some(nav)) => Ok(Columns {
                names,
                keys,
                code,
                isin,
                nav_date,
                nav,
                name,
                repurchase,
                sale,
                isin_reinvestment,
                amc,
                plan,
                option,
            }),
            _ => {
                let missing: Vec<&str> = [
                    (code, "scheme code"),
                    (isin, "ISIN"),
                    (nav_date, "NAV date"),
                    (nav, "NAV"),
                ]
                .into_iter()
                .filter_map(|(slot, label)| slot.is_none().then_some(label))
                .collect();
                Err(format!(
                    "the comma-separated header lacks the column(s) {}",
                    missing.join(", ")
                ))
            }
        }
    }
}

struct CsvLines<R> {
    lines: LineReader<R>,
    columns: Columns,
    /// Unescaped cells of the current line and their ranges, reused across lines.
    cells: String,
    spans: Vec<Range<usize>>,
    done: bool,
}

impl<R: BufRead> Iterator for CsvLines<R> {
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
            if text.trim().is_empty() {
                continue;
            }
            let reject = |code, reason: String| {
                Some(Ok(ParsedLine::Rejected(RejectedLine::new(
                    line.number,
                    code,
                    reason,
                    text,
                ))))
            };
            if let Err(reason) = csv::split(text, &mut self.cells, &mut self.spans) {
                return reject(RejectReason::MalformedCsv, reason);
            }
            let cell = |i: usize| self.cells[self.spans[i].clone()].trim();
            if (0..self.spans.len()).all(|i| cell(i).is_empty()) {
                continue;
            }
            if self.spans.len() != self.columns.names.len() {
                let reason = format!(
                    "expected {} comma-separated fields as in the header, found {}",
                    self.columns.names.len(),
                    self.spans.len()
                );
                return reject(RejectReason::WrongColumnCount, reason);
            }
            if is_repeated_header(&self.columns, cell) {
                continue;
            }
            return Some(Ok(match row(line.number, &self.columns, cell) {
                Ok(row) => ParsedLine::Nav(row),
                Err(e) => {
                    ParsedLine::Rejected(RejectedLine::new(line.number, e.code, e.reason, text))
                }
            }));
        }
        self.done = true;
        None
    }
}

/// The header again (files concatenated): every cell names its column. Checked cell by cell so
/// a data row costs one comparison of its scheme code, without allocating.
fn is_repeated_header<'c>(c: &Columns, cell: impl Fn(usize) -> &'c str) -> bool {
    key_eq(cell(c.code), &c.keys[c.code]) && (0..c.keys.len()).all(|i| key_eq(cell(i), &c.keys[i]))
}

/// Checks in the order scheme code, NAV, date, ISINs, prices; the first failure is the reason.
fn row<'c>(number: u64, c: &Columns, cell: impl Fn(usize) -> &'c str) -> FieldResult<NavRow> {
    let col = |i: usize| c.names[i].as_str();
    let optional = |slot: Option<usize>| slot.map(|i| (col(i), cell(i)));

    let scheme_code = fields::scheme_code(col(c.code), cell(c.code))?;
    let nav = fields::nav(col(c.nav), cell(c.nav))?;
    let nav_date = fields::nav_date(col(c.nav_date), cell(c.nav_date))?;
    let isin_growth = fields::optional_isin(col(c.isin), cell(c.isin))?;
    let isin_reinvestment = match optional(c.isin_reinvestment) {
        Some((name, v)) => fields::optional_isin(name, v)?,
        None => None,
    };
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
        scheme_name: c.name.map(|i| cell(i).to_owned()).unwrap_or_default(),
        plan: optional(c.plan).and_then(|(_, v)| fields::optional_text(v)),
        option: optional(c.option).and_then(|(_, v)| fields::optional_text(v)),
        nav,
        nav_date,
        repurchase_price,
        sale_price,
        amc: optional(c.amc).and_then(|(_, v)| fields::optional_text(v)),
        scheme_type: None,
        category: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        s.split(',').map(str::to_owned).collect()
    }

    /// Aliases match case-insensitively; `NAV Date` beats a bare `Date`; missing columns are named.
    #[test]
    fn header_aliases() {
        let c = Columns::from_names(names(
            "SchemeCode,ISIN,Date,NAV Date,Net Asset Value,Sale Price",
        ))
        .unwrap();
        assert_eq!(
            (c.code, c.isin, c.nav_date, c.nav, c.sale, c.repurchase),
            (0, 1, 3, 4, Some(5), None)
        );
        let c = Columns::from_names(names("scheme_code,isin,date,nav")).unwrap();
        assert_eq!(c.nav_date, 2);
        let e = Columns::from_names(names("Scheme Code,Scheme Name,NAV")).unwrap_err();
        assert!(e.contains("ISIN, NAV date"), "{e}");
        let e =
            Columns::from_names(names("scheme_code,Scheme Code,isin,nav,nav_date")).unwrap_err();
        assert!(e.contains("mean the same thing"), "{e}");
    }
}
