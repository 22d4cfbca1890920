//! The AMFI `NAVAll.txt` parser against the real file and hand-written fixtures.

use std::io::{BufReader, Read};

use chrono::NaiveDate;
use nivesh_nav_ingestor::parse::{
    AmfiParser, Error, NavFileParser, NavRow, NavSource, ParseStats, ParsedLine, RejectReason,
    RejectedLine, parser_for,
};

const REAL_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/amfi/NAVAll-2025-02-25.txt"
);

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The real file's bytes, or `None` with a printed reason so the test passes as skipped.
fn real_file() -> Option<Vec<u8>> {
    match std::fs::read(REAL_FILE) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!("SKIPPED: real AMFI file not readable at {REAL_FILE}: {e}");
            None
        }
    }
}

fn parse(bytes: &[u8]) -> Vec<ParsedLine> {
    parser_for(NavSource::Amfi, bytes)
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

fn row_at(lines: &[ParsedLine], line_number: u64) -> &NavRow {
    navs(lines)
        .into_iter()
        .find(|r| r.line_number == line_number)
        .unwrap_or_else(|| panic!("no NAV row at line {line_number}"))
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A reader that hands out one byte per `read`, to prove lines are assembled across refills.
struct OneByteAtATime<'a>(&'a [u8]);

impl Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// Every data row of the real file is accounted for: 13,860 rows (every `;` line but the
/// header) = 13,466 NAVs + 394 rejections, each rejection with a reason and its raw line.
///
/// The 394, tallied by hand with awk: 6 `N.A.` NAVs, 376 zero NAVs (`0` / `0.0000`), 12 bad
/// ISINs (9 × `Redeemed`, `HDFCNIVODG`, `INF174K1TA2`, `INF174K01VSI`). The file has 13,861
/// `;` lines only because the header is one of them.
#[test]
fn real_file_counts() {
    let Some(bytes) = real_file() else { return };
    let text = String::from_utf8_lossy(&bytes);
    // Independent tallies straight from the text, so the expected numbers are not our parser's.
    let semicolon_lines = text.lines().filter(|l| l.contains(';')).count() as u64;
    let na_lines = text
        .lines()
        .filter(|l| l.split(';').nth(4) == Some("N.A."))
        .count() as u64;

    let mut stats = ParseStats::default();
    for line in parser_for(NavSource::Amfi, &bytes[..]).unwrap() {
        let line = line.unwrap();
        if let ParsedLine::Rejected(r) = &line {
            assert!(
                !r.reason.trim().is_empty(),
                "line {} rejected without a reason",
                r.line_number
            );
            assert!(
                r.raw.contains(';') && !r.raw.ends_with('\r'),
                "raw kept as given minus CR: {:?}",
                r.raw
            );
        }
        stats.record(&line);
    }
    assert_eq!(semicolon_lines - 1, 13_860, "the file itself changed");
    assert_eq!(
        stats.rows,
        semicolon_lines - 1,
        "every data row yields exactly one result"
    );
    assert_eq!(stats.navs + stats.rejected, stats.rows);
    assert_eq!(stats.navs, 13_466);
    assert_eq!(stats.rejected, 394);
    assert_eq!(na_lines, 6);
    assert_eq!(stats.rejected_for(RejectReason::NavNotAvailable), na_lines);
    assert_eq!(
        stats.rejected_for(RejectReason::InvalidNav),
        376,
        "zero NAVs (\"0\" and \"0.0000\")"
    );
    assert_eq!(stats.rejected_for(RejectReason::InvalidIsin), 12);
    assert_eq!(
        stats.by_reason.len(),
        3,
        "no other reasons: {:?}",
        stats.by_reason
    );
    assert_eq!(stats.latest_nav_date, Some(date("2025-02-26")));
}

/// One expected row of the real file, copied by hand from the file's text.
struct Spot {
    line: u64,
    code: &'static str,
    nav: &'static str,
    date: &'static str,
    amc: &'static str,
    scheme_type: &'static str,
    category: &'static str,
    isin_growth: Option<&'static str>,
    isin_reinvestment: Option<&'static str>,
}

/// Rows across sections and AMCs carry the exact NAV text, date, AMC, type and category.
#[test]
fn real_file_spot_checks() {
    let Some(bytes) = real_file() else { return };
    let lines = parse(&bytes);
    const OPEN: &str = "Open Ended Schemes";
    let spots = [
        Spot {
            line: 7,
            code: "119551",
            nav: "103.5311",
            date: "2025-02-25",
            amc: "Aditya Birla Sun Life Mutual Fund",
            scheme_type: OPEN,
            category: "Debt Scheme - Banking and PSU Fund",
            isin_growth: Some("INF209KA12Z1"),
            isin_reinvestment: Some("INF209KA13Z9"),
        },
        Spot {
            line: 3662,
            code: "108716",
            nav: "14.25207048",
            date: "2017-02-17",
            amc: "Bandhan Mutual Fund",
            scheme_type: OPEN,
            category: "Debt Scheme - Short Duration Fund",
            isin_growth: Some("INF194K01HR0"),
            isin_reinvestment: Some("INF194K01HQ2"),
        },
        Spot {
            line: 5676,
            code: "119598",
            nav: "91.3119",
            date: "2025-02-25",
            amc: "SBI Mutual Fund",
            scheme_type: OPEN,
            category: "Equity Scheme - Large Cap Fund",
            isin_growth: Some("INF200K01QX4"),
            isin_reinvestment: None,
        },
        Spot {
            line: 800,
            code: "122612",
            nav: "21.7099",
            date: "2025-02-25",
            amc: "360 ONE Mutual Fund (Formerly Known as IIFL Mutual Fund)",
            scheme_type: OPEN,
            category: "Debt Scheme - Dynamic Bond",
            isin_growth: Some("INF579M01183"),
            isin_reinvestment: None,
        },
        Spot {
            line: 11005,
            code: "120716",
            nav: "156.2072",
            date: "2025-02-25",
            amc: "UTI Mutual Fund",
            scheme_type: OPEN,
            category: "Other Scheme - Index Funds",
            isin_growth: Some("INF789F01XA0"),
            isin_reinvestment: None,
        },
        Spot {
            line: 11330,
            code: "146407",
            nav: "19.18",
            date: "2025-02-25",
            amc: "Aditya Birla Sun Life Mutual Fund",
            scheme_type: OPEN,
            // The file's own mojibake (a UTF-8 apostrophe encoded twice), kept verbatim.
            category: "Solution Oriented Scheme - Children\u{e2}\u{80}\u{99}s Fund",
            isin_growth: Some("INF209KB1E84"),
            isin_reinvestment: None,
        },
        Spot {
            line: 11548,
            code: "146839",
            nav: "10.0087785",
            date: "2019-04-17",
            amc: "Kotak Mahindra Mutual Fund",
            scheme_type: "Interval Fund Schemes",
            category: "Income",
            isin_growth: None,
            isin_reinvestment: Some("INF174KA1DD0"),
        },
        Spot {
            line: 11618,
            code: "141950",
            nav: "23.46",
            date: "2025-02-25",
            amc: "Bank of India Mutual Fund",
            scheme_type: "Close Ended Schemes",
            category: "ELSS",
            isin_growth: Some("INF761K01DS3"),
            isin_reinvestment: None,
        },
    ];
    for s in spots {
        let row = row_at(&lines, s.line);
        let line = s.line;
        assert_eq!(row.scheme_code.as_str(), s.code, "line {line}");
        assert_eq!(row.nav.to_string(), s.nav, "line {line}");
        assert_eq!(row.nav_date, date(s.date), "line {line}");
        assert_eq!(row.amc.as_deref(), Some(s.amc), "line {line}");
        assert_eq!(
            row.scheme_type.as_deref(),
            Some(s.scheme_type),
            "line {line}"
        );
        assert_eq!(row.category.as_deref(), Some(s.category), "line {line}");
        assert_eq!(
            row.isin_growth.as_ref().map(|i| i.as_str()),
            s.isin_growth,
            "line {line}"
        );
        assert_eq!(
            row.isin_reinvestment.as_ref().map(|i| i.as_str()),
            s.isin_reinvestment,
            "line {line}"
        );
        assert_eq!(
            (&row.plan, &row.option),
            (&None, &None),
            "6-column layout has no plan/option"
        );
        assert_eq!(
            (row.repurchase_price, row.sale_price),
            (None, None),
            "line {line}"
        );
    }
    let first = row_at(&lines, 7);
    assert_eq!(
        first.scheme_name,
        "Aditya Birla Sun Life Banking & PSU Debt Fund  - DIRECT - IDCW"
    );
    // AMFI's `58.` (point, no decimals) is the NAV 58 at scale 0, not a rejection.
    let dangling = row_at(&lines, 6150);
    assert_eq!(
        (
            dangling.scheme_code.as_str(),
            dangling.nav.to_string().as_str()
        ),
        ("125597", "58")
    );
    assert_eq!(
        dangling.category.as_deref(),
        Some("Equity Scheme - Sectoral/ Thematic")
    );

    let rejections = rejected(&lines);
    let by_line = |n: u64| *rejections.iter().find(|r| r.line_number == n).unwrap();
    let na = by_line(1422);
    assert_eq!(na.reason_code, RejectReason::NavNotAvailable);
    assert!(na.reason.contains("\"N.A.\""), "{}", na.reason);
    assert!(
        na.raw
            .starts_with("102061;INF200K01AB4;-;SBI MAGNUM GILT FUND"),
        "{}",
        na.raw
    );
    let redeemed = by_line(14022);
    assert_eq!(redeemed.reason_code, RejectReason::InvalidIsin);
    let reason = &redeemed.reason;
    assert!(
        reason.starts_with("ISIN Div Reinvestment:") && reason.contains("Redeemed"),
        "{reason}"
    );
    let typo = by_line(2649);
    assert_eq!(typo.reason_code, RejectReason::InvalidIsin);
    assert!(
        typo.reason.contains("INF174K01VSI") && typo.reason.contains("check digit"),
        "{}",
        typo.reason
    );
}

/// CRLF and LF versions of the real file give identical results, line numbers included.
#[test]
fn crlf_and_lf_agree() {
    let Some(crlf) = real_file() else { return };
    assert!(
        crlf.windows(2).any(|w| w == b"\r\n"),
        "the real file is CRLF"
    );
    let lf = String::from_utf8(crlf.clone())
        .unwrap()
        .replace("\r\n", "\n");
    let (a, b) = (parse(&crlf), parse(lf.as_bytes()));
    assert_eq!(a.len(), 13_860);
    assert_eq!(a, b);
}

/// A reader yielding one byte at a time gives the same stream as reading from a slice.
#[test]
fn one_byte_reader_streams_identically() {
    let bytes = real_file().unwrap_or_else(|| fixture("amfi_malformed.txt"));
    let trickle = BufReader::with_capacity(1, OneByteAtATime(&bytes));
    let streamed: Vec<ParsedLine> = AmfiParser
        .parse(trickle)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!streamed.is_empty());
    assert_eq!(streamed, parse(&bytes));
}

/// The parser is lazy: it yields rows from an endless input without reading it all first.
#[test]
fn endless_input_is_streamed() {
    struct Endless {
        pending: Vec<u8>,
        n: u64,
    }
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                self.n += 1;
                self.pending = format!(
                    "{};INF209KA12Z1;-;Endless Fund;10.{:04};25-Feb-2025\r\n",
                    100_000 + self.n % 900_000,
                    self.n % 10_000
                )
                .into_bytes();
            }
            let k = buf.len().min(self.pending.len());
            buf[..k].copy_from_slice(&self.pending[..k]);
            self.pending.drain(..k);
            Ok(k)
        }
    }
    let header = b"Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n";
    let reader = BufReader::new((&header[..]).chain(Endless {
        pending: Vec::new(),
        n: 0,
    }));
    let rows: Vec<ParsedLine> = parser_for(NavSource::Amfi, reader)
        .unwrap()
        .take(50_000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 50_000);
    assert_eq!(rows[49_999].line_number(), 50_001);
    assert!(rows.iter().all(|r| matches!(r, ParsedLine::Nav(_))));
}

/// The 8-column layout is detected from its header: plan and option are read by name, and a
/// row with the 6-column count is rejected rather than misread.
#[test]
fn eight_column_fixture() {
    let lines = parse(&fixture("amfi_8col.txt"));
    let rows = navs(&lines);
    assert_eq!(rows.len(), 6);
    let first = rows[0];
    assert_eq!(
        (
            first.line_number,
            first.scheme_code.as_str(),
            first.plan.as_deref(),
            first.option.as_deref()
        ),
        (7, "119551", Some("Direct"), Some("IDCW"))
    );
    assert_eq!(
        first.scheme_name,
        "Aditya Birla Sun Life Banking & PSU Debt Fund  - DIRECT - IDCW"
    );
    assert_eq!(
        (first.nav.to_string(), first.nav_date),
        ("103.5311".to_owned(), date("2025-02-25"))
    );
    assert_eq!(
        first.isin_reinvestment.as_ref().unwrap().as_str(),
        "INF209KA13Z9"
    );

    let daily = row_at(&lines, 13);
    assert_eq!(
        (daily.amc.as_deref(), daily.nav.to_string().as_str()),
        (Some("Axis Mutual Fund"), "1039.1310")
    );
    assert_eq!(
        (
            daily.isin_growth.as_ref(),
            daily.isin_reinvestment.as_ref().unwrap().as_str()
        ),
        (None, "INF846K01CU0")
    );
    let bonus = row_at(&lines, 14);
    assert_eq!(
        (
            bonus.plan.as_deref(),
            bonus.option.as_deref(),
            bonus.nav_date
        ),
        (Some("Regular"), None, date("2015-05-18"))
    );

    let large_cap = row_at(&lines, 21);
    assert_eq!(
        large_cap.category.as_deref(),
        Some("Equity Scheme - Large Cap Fund")
    );
    assert_eq!(large_cap.amc.as_deref(), Some("SBI Mutual Fund"));

    let rej = rejected(&lines);
    assert_eq!(
        rej.iter()
            .map(|r| (r.line_number, r.reason_code))
            .collect::<Vec<_>>(),
        [
            (15, RejectReason::NavNotAvailable),
            (22, RejectReason::WrongColumnCount)
        ]
    );
    assert!(
        rej[1].reason.contains("expected 8") && rej[1].reason.contains("found 7"),
        "{}",
        rej[1].reason
    );
}

/// A UTF-8 BOM before the header is ignored; CRLF endings are stripped from `raw`.
#[test]
fn bom_fixture() {
    let bytes = fixture("amfi_bom.txt");
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "fixture starts with a BOM"
    );
    let lines = parse(&bytes);
    assert_eq!(lines.len(), 2);
    let row = row_at(&lines, 7);
    assert_eq!(
        (row.scheme_code.as_str(), row.nav.to_string().as_str()),
        ("120716", "156.2072")
    );
    assert_eq!(row.category.as_deref(), Some("Other Scheme - Index Funds"));
    let bad = rejected(&lines)[0];
    assert_eq!(
        (bad.line_number, bad.reason_code),
        (8, RejectReason::InvalidSchemeCode)
    );
    assert!(
        bad.reason.starts_with("Scheme Code: "),
        "the BOM is not part of the column name: {}",
        bad.reason
    );
    assert_eq!(
        bad.raw,
        "X-1;INF789F01XA0;-;UTI Nifty 50 Index Fund - bad code;156.2072;25-Feb-2025"
    );
}

/// Each kind of malformed line is rejected with its own code and a reason naming the problem;
/// no non-blank line other than headings is skipped; an unrecognised line keeps the AMC.
#[test]
fn malformed_lines_are_rejected_with_reasons() {
    let bytes = fixture("amfi_malformed.txt");
    let lines = parse(&bytes);
    use RejectReason::*;
    let expected: &[(u64, RejectReason, &str)] = &[
        (9, NavNotAvailable, "Net Asset Value is \"N.A.\""),
        (10, NavNotAvailable, "Net Asset Value is \"-\""),
        (11, NavNotAvailable, "Net Asset Value is empty"),
        (12, InvalidNav, "greater than zero"),
        (13, InvalidNav, "negative"),
        (14, InvalidNav, "\"12,50\""),
        (15, InvalidDate, "31-Feb-2025"),
        (16, InvalidDate, "25/02/2025"),
        (17, InvalidSchemeCode, "\"10a-1\""),
        (18, InvalidSchemeCode, "empty"),
        (19, InvalidIsin, "ISIN Div Payout/ ISIN Growth: "),
        (20, InvalidIsin, "ISIN Div Reinvestment: "),
        (
            21,
            WrongColumnCount,
            "expected 6 fields separated by ';' as in the header, found 5",
        ),
        (22, WrongColumnCount, "found 7"),
        (23, MissingSchemeName, "Scheme Name is empty"),
        (24, UnrecognisedLine, "no ';'"),
        (25, UnrecognisedLine, "AMC name"),
        (33, InvalidIsin, "Redeemed"),
    ];
    let rej = rejected(&lines);
    assert_eq!(rej.len(), expected.len(), "{rej:#?}");
    for (got, (line, code, needle)) in rej.iter().zip(expected) {
        assert_eq!(
            (got.line_number, got.reason_code),
            (*line, *code),
            "{got:?}"
        );
        assert!(
            got.reason.contains(needle),
            "line {line}: {:?} lacks {needle:?}",
            got.reason
        );
        let source_line = String::from_utf8_lossy(&bytes)
            .lines()
            .nth(*line as usize - 1)
            .unwrap()
            .to_owned();
        assert_eq!(got.raw, source_line, "raw is the line as given");
    }

    let rows = navs(&lines);
    assert_eq!(
        rows.iter().map(|r| r.line_number).collect::<Vec<_>>(),
        [3, 8, 27, 34]
    );
    assert_eq!(
        (rows[0].amc.as_ref(), rows[0].category.as_ref()),
        (None, None),
        "no heading seen yet"
    );
    let padded = rows[2];
    assert_eq!(padded.scheme_name, "Padded Fund");
    assert_eq!(
        (
            padded.isin_growth.as_ref(),
            padded.isin_reinvestment.as_ref()
        ),
        (None, None)
    );
    assert_eq!(
        (padded.nav.to_string().as_str(), padded.nav_date),
        ("12.34", date("2025-02-25"))
    );
    assert_eq!(
        padded.amc.as_deref(),
        Some("Example Mutual Fund"),
        "stray text did not replace the AMC"
    );
    assert_eq!(rows[3].amc.as_deref(), Some("IL&FS Mutual Fund (IDF)"));
    assert_eq!(rows[3].scheme_type.as_deref(), Some("Close Ended Schemes"));
}

/// A file that is not AMFI's (wrong separator, missing columns, empty) fails up front, saying why.
#[test]
fn unrecognised_headers_fail() {
    let csv = fixture("cams_nav.csv");
    let err = parser_for(NavSource::Amfi, &csv[..])
        .err()
        .expect("CSV is not an AMFI file");
    let msg = err.to_string();
    assert!(matches!(err, Error::UnrecognisedHeader { .. }), "{msg}");
    assert!(
        msg.contains("AMFI NAVAll.txt") && msg.contains("lacks the column(s) Scheme Code"),
        "{msg}"
    );
    assert!(matches!(
        parser_for(NavSource::Amfi, &b"\r\n \r\n"[..]),
        Err(Error::Empty)
    ));
}

/// An AMC applies until the next AMC line; a new section clears it, so a row right under a
/// section heading is never credited to the previous section's last AMC.
#[test]
fn headings_apply_until_replaced() {
    let text = "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date
Open Ended Schemes(Income)
First Mutual Fund
100001;-;-;A;10.1;25-Feb-2025
 
100002;-;-;B;10.2;25-Feb-2025
Second Mutual Fund
100003;-;-;C;10.3;25-Feb-2025
Close Ended Schemes(Growth)
100004;-;-;D;10.4;25-Feb-2025
";
    let lines = parse(text.as_bytes());
    let got: Vec<_> = navs(&lines)
        .into_iter()
        .map(|r| {
            (
                r.scheme_name.as_str(),
                r.amc.as_deref(),
                r.scheme_type.as_deref(),
                r.category.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "A",
                Some("First Mutual Fund"),
                Some("Open Ended Schemes"),
                Some("Income")
            ),
            (
                "B",
                Some("First Mutual Fund"),
                Some("Open Ended Schemes"),
                Some("Income")
            ),
            (
                "C",
                Some("Second Mutual Fund"),
                Some("Open Ended Schemes"),
                Some("Income")
            ),
            ("D", None, Some("Close Ended Schemes"), Some("Growth")),
        ]
    );
}

/// AMFI's older layout with `Repurchase Price;Sale Price` before `Date` is read by name too:
/// prices land in their fields, absent ones are `None`, and a bad one rejects the row.
#[test]
fn old_layout_with_prices() {
    let text = "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;\
                Net Asset Value;Repurchase Price;Sale Price;Date
Open Ended Schemes(Income)
Old Mutual Fund
100001;INF209KA12Z1;-;Priced Fund;10.5000;10.3950;10.6050;01-Apr-2008
100002;INF209K01YM2;-;Unpriced Fund;11.25;;-;01-Apr-2008
100003;INF209K01YM2;-;Bad Price Fund;11.25;abc;11.30;01-Apr-2008
";
    let lines = parse(text.as_bytes());
    let rows = navs(&lines);
    assert_eq!(rows.len(), 2);
    let prices = |r: &NavRow| {
        (
            r.repurchase_price.map(|p| p.to_string()),
            r.sale_price.map(|p| p.to_string()),
        )
    };
    assert_eq!(
        prices(rows[0]),
        (Some("10.3950".to_owned()), Some("10.6050".to_owned()))
    );
    assert_eq!(
        (rows[0].nav.to_string().as_str(), rows[0].nav_date),
        ("10.5000", date("2008-04-01"))
    );
    assert_eq!(prices(rows[1]), (None, None));
    let bad = rejected(&lines)[0];
    assert_eq!(
        (bad.line_number, bad.reason_code),
        (6, RejectReason::InvalidPrice)
    );
    assert!(
        bad.reason.starts_with("Repurchase Price: "),
        "{}",
        bad.reason
    );
}
