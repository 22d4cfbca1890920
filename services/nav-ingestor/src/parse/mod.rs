//! Streaming parsers for NAV files: every line of a file becomes a NAV row, a rejected line with
//! its reason, or (for headers, section headings, AMC names and blank lines) nothing at all.
//!
//! - this module: the shared output types ([`NavRow`], [`RejectedLine`], [`ParsedLine`]), the
//!   [`NavFileParser`] trait every layout implements, [`parser_for`] which picks the parser for a
//!   [`NavSource`], [`ParseStats`] and the module's [`Error`].
//! - `lines`: the bounded line reader under every parser. It reuses one buffer, strips CR and a
//!   leading UTF-8 BOM, numbers lines, and turns an over-long or non-UTF-8 line into a rejected
//!   line instead of growing memory or failing the file.
//! - `fields`: turning one field's text into a domain value or a precise rejection (`N.A.` NAVs,
//!   `-` ISINs, prices), and the header-name normalisation both layouts use.
//! - [`amfi`]: AMFI `NAVAll.txt` (`;`-separated, 6- or 8-column header, read by column name),
//!   tracking the `Open Ended Schemes(…)` section and AMC heading each row sits under.
//! - `csv`: splitting one comma-separated record with standard quoting, without a dependency.
//! - [`registrar`]: CAMS / KFintech CSV feeds, columns found by name through aliases.
//!
//! Adding a layout is one new file implementing [`NavFileParser`] plus one arm in [`parser_for`].
//!
//! Memory does not grow with the file: parsers hold one line buffer (capped at
//! `lines::MAX_LINE_BYTES`) and the current section/AMC context, nothing per row already seen.

pub mod amfi;
mod csv;
mod fields;
mod lines;
pub mod registrar;

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::str::FromStr;

use chrono::NaiveDate;
use nivesh_domain::{Isin, Nav, SchemeCode};

pub use amfi::AmfiParser;
pub use registrar::RegistrarCsvParser;

/// Everything that stops a file from being read at all. A bad *line* is never an error: it is a
/// [`ParsedLine::Rejected`], so one broken row cannot cost the other 13,000.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the file is empty: it has no header line")]
    Empty,
    #[error("not a {expected} file: {reason} (header line: {header:?})")]
    UnrecognisedHeader {
        expected: &'static str,
        reason: String,
        header: String,
    },
    #[error("reading line {line} failed: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown NAV source {0:?}: expected AMFI, CAMS or KFINTECH")]
    UnknownSource(String),
}

/// Result of this module, defaulting to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who published the file; decides the layout expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NavSource {
    /// AMFI's daily `NAVAll.txt`.
    Amfi,
    /// CAMS registrar CSV.
    Cams,
    /// KFintech registrar CSV.
    Kfintech,
}

impl NavSource {
    /// The canonical upper-case name, as carried in events.
    pub fn as_str(self) -> &'static str {
        match self {
            NavSource::Amfi => "AMFI",
            NavSource::Cams => "CAMS",
            NavSource::Kfintech => "KFINTECH",
        }
    }
}

impl fmt::Display for NavSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NavSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        [NavSource::Amfi, NavSource::Cams, NavSource::Kfintech]
            .into_iter()
            .find(|src| src.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| Error::UnknownSource(t.chars().take(64).collect()))
    }
}

/// One NAV as published, already validated into domain types.
#[derive(Debug, Clone, PartialEq)]
pub struct NavRow {
    /// Physical line number in the file, 1-based (the header is line 1 unless preceded by blanks).
    pub line_number: u64,
    pub scheme_code: SchemeCode,
    /// AMFI's "ISIN Div Payout/ISIN Growth"; a registrar's single ISIN column.
    pub isin_growth: Option<Isin>,
    pub isin_reinvestment: Option<Isin>,
    pub scheme_name: String,
    /// "Direct" / "Regular" in AMFI's 8-column layout.
    pub plan: Option<String>,
    /// "Growth" / "IDCW" / … in AMFI's 8-column layout.
    pub option: Option<String>,
    pub nav: Nav,
    pub nav_date: NaiveDate,
    pub repurchase_price: Option<Nav>,
    pub sale_price: Option<Nav>,
    /// "Aditya Birla Sun Life Mutual Fund": the AMC heading the row sits under (AMFI).
    pub amc: Option<String>,
    /// "Open Ended Schemes": the part of the section heading before the parenthesis (AMFI).
    pub scheme_type: Option<String>,
    /// "Debt Scheme - Banking and PSU Fund": the part inside the parenthesis (AMFI).
    pub category: Option<String>,
}

/// Why a line was rejected; [`RejectReason::code`] is the stable machine-readable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The NAV field is `N.A.`, `-` or empty: the source published no price.
    NavNotAvailable,
    /// The NAV is present but not a positive decimal (zero NAVs land here).
    InvalidNav,
    InvalidDate,
    InvalidSchemeCode,
    InvalidIsin,
    /// A scheme name is required (AMFI) but the field is blank.
    MissingSchemeName,
    /// A repurchase or sale price is present but not a positive decimal.
    InvalidPrice,
    /// The line splits into a different number of fields than the header has.
    WrongColumnCount,
    /// A CSV line with broken quoting (an unclosed quote, text after a closing quote).
    MalformedCsv,
    /// An AMFI line without `;` that is neither a section heading nor an AMC name.
    UnrecognisedLine,
    /// The line is not valid UTF-8.
    InvalidEncoding,
    /// The line is longer than the reader's cap; only its start is kept in `raw`.
    LineTooLong,
}

impl RejectReason {
    /// Stable name for storage and metrics (equal to the variant name).
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::NavNotAvailable => "NavNotAvailable",
            RejectReason::InvalidNav => "InvalidNav",
            RejectReason::InvalidDate => "InvalidDate",
            RejectReason::InvalidSchemeCode => "InvalidSchemeCode",
            RejectReason::InvalidIsin => "InvalidIsin",
            RejectReason::MissingSchemeName => "MissingSchemeName",
            RejectReason::InvalidPrice => "InvalidPrice",
            RejectReason::WrongColumnCount => "WrongColumnCount",
            RejectReason::MalformedCsv => "MalformedCsv",
            RejectReason::UnrecognisedLine => "UnrecognisedLine",
            RejectReason::InvalidEncoding => "InvalidEncoding",
            RejectReason::LineTooLong => "LineTooLong",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A line that carries data but could not become a [`NavRow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    pub line_number: u64,
    pub reason_code: RejectReason,
    /// Precise and human: names the field, the value and what was expected.
    pub reason: String,
    /// The line as given, without its line ending (lossy for non-UTF-8, cut for over-long lines).
    pub raw: String,
}

impl RejectedLine {
    pub(crate) fn new(
        line_number: u64,
        reason_code: RejectReason,
        reason: impl Into<String>,
        raw: &str,
    ) -> Self {
        RejectedLine {
            line_number,
            reason_code,
            reason: reason.into(),
            raw: raw.to_owned(),
        }
    }
}

/// What a data-bearing line became.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every line is a NavRow: boxing it would add an allocation per row to save \
              space only on the rare rejected line"
)]
pub enum ParsedLine {
    Nav(NavRow),
    Rejected(RejectedLine),
}

impl ParsedLine {
    pub fn line_number(&self) -> u64 {
        match self {
            ParsedLine::Nav(r) => r.line_number,
            ParsedLine::Rejected(r) => r.line_number,
        }
    }
}

/// The stream a parser yields. After an `Err` (an I/O failure) it yields nothing more.
pub type NavLines<'a> = Box<dyn Iterator<Item = Result<ParsedLine>> + 'a>;

/// One file layout.
///
/// A generic `parse` (rather than `&mut dyn BufRead`) keeps the per-byte reading monomorphised,
/// which matters when the caller hands in an unbuffered or byte-at-a-time reader; the layout is
/// chosen by [`parser_for`] with a `match`, so the trait need not be object-safe.
pub trait NavFileParser {
    /// Reads the header line (skipping blank lines before it) and returns the remaining lines
    /// as a lazy stream. Fails with [`Error::UnrecognisedHeader`] when the header is not this
    /// layout's, [`Error::Empty`] when there is no header, [`Error::Io`] when reading fails.
    fn parse<'a, R: BufRead + 'a>(&self, reader: R) -> Result<NavLines<'a>>;
}

/// The parser for `source`, applied to `reader` (header read and checked now, rows lazily).
///
/// Takes the reader rather than a pre-read first line so the caller cannot feed a header that
/// differs from the bytes then parsed.
pub fn parser_for<'a, R: BufRead + 'a>(source: NavSource, reader: R) -> Result<NavLines<'a>> {
    match source {
        NavSource::Amfi => AmfiParser.parse(reader),
        NavSource::Cams | NavSource::Kfintech => RegistrarCsvParser::new(source).parse(reader),
    }
}

/// Running totals over a stream of [`ParsedLine`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Data-bearing lines: `navs + rejected`.
    pub rows: u64,
    pub navs: u64,
    pub rejected: u64,
    pub by_reason: BTreeMap<RejectReason, u64>,
    /// Latest NAV date among accepted rows.
    pub latest_nav_date: Option<NaiveDate>,
}

impl ParseStats {
    pub fn record(&mut self, line: &ParsedLine) {
        self.rows += 1;
        match line {
            ParsedLine::Nav(row) => {
                self.navs += 1;
                self.latest_nav_date = self.latest_nav_date.max(Some(row.nav_date));
            }
            ParsedLine::Rejected(rej) => {
                self.rejected += 1;
                *self.by_reason.entry(rej.reason_code).or_default() += 1;
            }
        }
    }

    /// How many lines were rejected for `reason`.
    pub fn rejected_for(&self, reason: RejectReason) -> u64 {
        self.by_reason.get(&reason).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Source names parse case-insensitively and display in canonical upper case.
    #[test]
    fn source_names_round_trip() {
        for (text, src) in [
            ("amfi", NavSource::Amfi),
            (" Cams ", NavSource::Cams),
            ("KFinTech", NavSource::Kfintech),
        ] {
            let parsed: NavSource = text.parse().unwrap();
            assert_eq!(parsed, src);
            assert_eq!(parsed.to_string().parse::<NavSource>().unwrap(), src);
        }
        assert_eq!(NavSource::Kfintech.to_string(), "KFINTECH");
        assert!(
            matches!("karvy".parse::<NavSource>(), Err(Error::UnknownSource(s)) if s == "karvy")
        );
    }

    /// Reason codes equal the variant names, so stored codes and Debug output agree.
    #[test]
    fn reason_codes_match_variant_names() {
        for r in [
            RejectReason::NavNotAvailable,
            RejectReason::WrongColumnCount,
            RejectReason::LineTooLong,
        ] {
            assert_eq!(r.code(), format!("{r:?}"));
        }
    }
}
