//! The registrar (CAMS / KFintech) CSV parser against fixtures.

use std::io::{BufReader, Read};

use chrono::NaiveDate;
use nivesh_nav_ingestor::parse::{
    Error, NavRow, NavSource, ParsedLine, RejectReason, RejectedLine, parser_for,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn parse(source: NavSource, bytes: &[u8]) -> Vec<ParsedLine> {
    parser_for(source, bytes)
        .expect("header accepted")
        .collect::<Result<_, _>>()
        .expect("no I/O error")
}

fn navs(lines: &[ParsedLine]) -> Vec<&NavRow> {
    lines
        .iter()
        .filter_map(|l| {
            if let ParsedLine::Nav(r) = l {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

fn rejected(lines: &[ParsedLine]) -> Vec<&RejectedLine> {
    lines
        .iter()
        .filter_map(|l| {
            if let ParsedLine::Rejected(r) = l {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Quoted fields keep their commas and doubled quotes; prices are read when present; empty and
/// `-` cells are absent; quoting on ISIN and NAV cells is removed before validation.
#[test]
fn cams_rows() {
    let lines = parse(NavSource::Cams, &fixture("cams_nav.csv"));
    let rows = navs(&lines);
    assert_eq!(
        rows.iter().map(|r| r.line_number).collect::<Vec<_>>(),
        [2, 3, 4, 12]
    );

    let first = rows[0];
    assert_eq!(
        (
            first.scheme_code.as_str(),
            first.isin_growth.as_ref().unwrap().as_str()
        ),
        ("119551", "INF209KA12Z1")
    );
    assert_eq!(
        first.scheme_name,
        "Aditya Birla Sun Life Banking & PSU Debt Fund - DIRECT - IDCW"
    );
    assert_eq!(
        (first.nav.to_string(), first.nav_date),
        ("103.5311".to_owned(), date("2025-02-25"))
    );
    assert_eq!(
        first.repurchase_price.map(|p| p.to_string()).as_deref(),
        Some("102.4958")
    );
    assert_eq!(
        first.sale_price.map(|p| p.to_string()).as_deref(),
        Some("103.5311")
    );
    assert_eq!(
        (
            first.amc.as_ref(),
            first.category.as_ref(),
            first.scheme_type.as_ref()
        ),
        (None, None, None)
    );

    assert_eq!(
        rows[1].scheme_name,
        "SBI BLUE CHIP FUND, DIRECT PLAN - GROWTH"
    );
    assert_eq!((rows[1].repurchase_price, rows[1].sale_price), (None, None));
    assert_eq!(
        rows[2].scheme_name,
        "UTI Nifty 50 Index Fund - \"Growth\" Option, Direct"
    );
    assert_eq!(
        (rows[2].nav_date, rows[2].sale_price),
        (date("2025-02-25"), None)
    );
    assert_eq!(
        (
            rows[3].isin_growth.as_ref().unwrap().as_str(),
            rows[3].nav.to_string().as_str()
        ),
        ("INF579M01183", "21.7099")
    );
}

/// Bad CSV lines are rejected with the right code, a reason naming the column, and the raw line.
#[test]
fn cams_rejections() {
    let bytes = fixture("cams_nav.csv");
    let lines = parse(NavSource::Cams, &bytes);
    use RejectReason::*;
    let expected = [
        (6, NavNotAvailable, "NAV is \"N.A.\""),
        (7, InvalidIsin, "ISIN: invalid ISIN \"Redeemed\""),
        (8, MalformedCsv, "quoted field 3 is not closed"),
        (
            9,
            WrongColumnCount,
            "expected 7 comma-separated fields as in the header, found 4",
        ),
        (10, InvalidPrice, "Repurchase Price: "),
    ];
    let rej = rejected(&lines);
    assert_eq!(rej.len(), expected.len(), "{rej:#?}");
    let text = String::from_utf8(bytes).unwrap();
    for (got, (line, code, needle)) in rej.iter().zip(expected) {
        assert_eq!((got.line_number, got.reason_code), (line, code), "{got:?}");
        assert!(
            got.reason.contains(needle),
            "line {line}: {:?} lacks {needle:?}",
            got.reason
        );
        assert_eq!(got.raw, text.lines().nth(line as usize - 1).unwrap());
    }
    assert_eq!(
        lines.len(),
        9,
        "blank and all-empty lines yield nothing, every other line one result"
    );
}

/// KFintech's snake_case header with a BOM, CRLF, an extra column, a bare `date` beside
/// `nav_date`, a repeated header row and an alphanumeric scheme code.
#[test]
fn kfintech_rows() {
    let bytes = fixture("kfintech_nav.csv");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF") && bytes.windows(2).any(|w| w == b"\r\n"));
    let lines = parse(NavSource::Kfintech, &bytes);
    assert!(rejected(&lines).is_empty(), "{lines:#?}");
    let rows = navs(&lines);
    assert_eq!(
        rows.iter().map(|r| r.line_number).collect::<Vec<_>>(),
        [2, 3, 5]
    );
    assert_eq!(
        rows[0].nav_date,
        date("2025-02-25"),
        "nav_date wins over the file date column"
    );
    assert_eq!(rows[1].isin_growth, None);
    assert_eq!(
        rows[1].scheme_name,
        "Axis Banking & PSU Debt Fund, Direct Plan, Daily IDCW"
    );
    assert_eq!(rows[1].nav.to_string(), "1039.1310");
    assert_eq!(
        (
            rows[2].scheme_code.as_str(),
            rows[2].nav.to_string().as_str()
        ),
        ("B123G", "10.00")
    );
    assert_eq!(rows[2].nav_date, date("2025-02-24"));
}

/// LF and CRLF, slice and one-byte-at-a-time reading all give the same stream.
#[test]
fn line_endings_and_trickle_reading_agree() {
    struct OneByte<'a>(&'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = usize::from(!self.0.is_empty() && !buf.is_empty());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let lf = fixture("cams_nav.csv");
    let crlf = String::from_utf8(lf.clone())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    let base = parse(NavSource::Cams, &lf);
    assert_eq!(base, parse(NavSource::Cams, &crlf));
    let trickled: Vec<ParsedLine> =
        parser_for(NavSource::Cams, BufReader::with_capacity(1, OneByte(&crlf)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(base, trickled);
}

/// An AMFI file handed in as CAMS fails up front, naming the missing CSV columns.
#[test]
fn wrong_layout_fails_with_reason() {
    let amfi = b"Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n";
    let err = parser_for(NavSource::Cams, &amfi[..])
        .err()
        .expect("not a CSV header");
    let msg = err.to_string();
    assert!(matches!(err, Error::UnrecognisedHeader { .. }), "{msg}");
    assert!(
        msg.contains("CAMS NAV CSV")
            && msg.contains("lacks the column(s) scheme code, ISIN, NAV date, NAV"),
        "{msg}"
    );
    let err = parser_for(NavSource::Kfintech, &b"\"scheme_code,isin\n"[..])
        .err()
        .unwrap();
    assert!(err.to_string().contains("not closed"), "{err}");
}
