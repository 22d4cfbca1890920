//! Real-world values in the shape of AMFI's daily `NAVAll.txt` (`;`-separated:
//! scheme code; ISIN payout/growth; ISIN reinvestment; scheme name; NAV; date), run through the
//! domain parsers the way the NAV ingestor will.

use chrono::NaiveDate;
use nivesh_domain::time::parse_nav_date;
use nivesh_domain::{Isin, Nav, SchemeCode, kind};

const SAMPLE: &str = "\
Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date
119551;INF209KA12Z1;INF209KA13Z9;Aditya Birla Sun Life Banking & PSU Debt Fund - DIRECT - IDCW;103.5311;25-Feb-2025
120465;INF846K01EW2;-;Axis Large Cap Fund - Direct Plan - Growth;58.9400;25-Feb-2025
100033;INF209K01YM2;-;Aditya Birla Sun Life Large & Mid Cap Fund - Regular Growth;N.A.;25-FEB-2025
101206;INF179K01BB8;-;HDFC Large Cap Fund - Growth;1000;2025-02-25
";

/// Parsed fields of one row; `Err` holds the kind that rejected it.
fn parse_row(line: &str) -> Result<(SchemeCode, Isin, Option<Isin>, Nav, NaiveDate), &'static str> {
    let f: Vec<&str> = line.split(';').collect();
    let code = SchemeCode::parse(f[0]).map_err(|e| e.kind())?;
    let isin = Isin::parse(f[1]).map_err(|e| e.kind())?;
    let reinvest = match f[2].trim() {
        "-" | "" => None,
        s => Some(Isin::parse(s).map_err(|e| e.kind())?),
    };
    let nav = Nav::parse(f[4]).map_err(|e| e.kind())?;
    let date = parse_nav_date(f[5]).map_err(|e| e.kind())?;
    Ok((code, isin, reinvest, nav, date))
}

/// Every well-formed row parses with its published NAV text intact; the N.A. row is rejected as a NAV.
#[test]
fn amfi_rows() {
    let rows: Vec<_> = SAMPLE.lines().skip(1).map(parse_row).collect();
    let feb25 = NaiveDate::from_ymd_opt(2025, 2, 25).unwrap();

    let (code, isin, reinvest, nav, date) = rows[0].clone().unwrap();
    assert_eq!(code.as_str(), "119551");
    assert_eq!(isin.as_str(), "INF209KA12Z1");
    assert_eq!(reinvest.unwrap().as_str(), "INF209KA13Z9");
    assert_eq!(nav.to_string(), "103.5311");
    assert_eq!(date, feb25);

    let (_, isin, reinvest, nav, _) = rows[1].clone().unwrap();
    assert_eq!(isin.as_str(), "INF846K01EW2");
    assert!(reinvest.is_none());
    assert_eq!(nav.to_string(), "58.9400");

    assert_eq!(rows[2].clone().unwrap_err(), kind::NAV);

    let (_, _, _, nav, date) = rows[3].clone().unwrap();
    assert_eq!(nav.to_string(), "1000");
    assert_eq!(date, feb25);
}

/// The ISINs quoted in the spec are valid, and flipping their check digits is not.
#[test]
fn spec_isins() {
    for s in ["INF209KA12Z1", "INF209K01YM2"] {
        assert!(Isin::parse(s).is_ok(), "{s}");
        let bumped = format!("{}{}", &s[..11], (s.as_bytes()[11] - b'0' + 1) % 10);
        assert_eq!(
            Isin::parse(&bumped).unwrap_err().kind(),
            kind::ISIN,
            "{bumped}"
        );
    }
}

/// NAV edge values from the spec: a real NAV parses; zero, negative and N.A. do not.
#[test]
fn spec_navs() {
    assert_eq!(Nav::parse("103.5311").unwrap().to_string(), "103.5311");
    for bad in ["0", "-1", "N.A."] {
        assert_eq!(Nav::parse(bad).unwrap_err().kind(), kind::NAV, "{bad}");
    }
}
