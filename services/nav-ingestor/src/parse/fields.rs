//! One field's text to one domain value, or a precise rejection naming the column.
//!
//! Shared by every layout so "what counts as no NAV" or "what counts as no ISIN" is decided in
//! one place: AMFI and the registrars must not disagree on whether `-` means absent.

use chrono::NaiveDate;
use nivesh_domain::time::parse_nav_date;
use nivesh_domain::{Isin, Nav, SchemeCode};

use super::RejectReason;

/// Why a field failed; the caller attaches the line number and raw text.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub(crate) code: RejectReason,
    pub(crate) reason: String,
}

pub(crate) type FieldResult<T> = std::result::Result<T, FieldError>;

fn fail<T>(code: RejectReason, reason: String) -> FieldResult<T> {
    Err(FieldError { code, reason })
}

/// The placeholders sources put where a value is absent. `N.A.` and `-` are AMFI's; `NA` and
/// `N/A` appear in registrar exports.
fn is_placeholder(v: &str) -> bool {
    v.is_empty()
        || v == "-"
        || ["N.A.", "NA", "N/A"]
            .iter()
            .any(|p| v.eq_ignore_ascii_case(p))
}

pub(crate) fn scheme_code(column: &str, v: &str) -> FieldResult<SchemeCode> {
    SchemeCode::parse(v)
        .or_else(|e| fail(RejectReason::InvalidSchemeCode, format!("{column}: {e}")))
}

/// `-`, empty or `N.A.` is "this scheme has no such ISIN", which AMFI uses for most
/// reinvestment columns. Anything else must be a valid ISIN: a malformed one is rejected, never
/// dropped to `None`, or a typo would silently detach a NAV from its security.
pub(crate) fn optional_isin(column: &str, v: &str) -> FieldResult<Option<Isin>> {
    if is_placeholder(v) {
        return Ok(None);
    }
    Isin::parse(v)
        .map(Some)
        .or_else(|e| fail(RejectReason::InvalidIsin, format!("{column}: {e}")))
}

pub(crate) fn nav(column: &str, v: &str) -> FieldResult<Nav> {
    if is_placeholder(v) {
        let shown = if v.is_empty() {
            "empty".to_owned()
        } else {
            format!("{v:?}")
        };
        return fail(
            RejectReason::NavNotAvailable,
            format!(
                "{column} is {shown}: the source published no NAV for this scheme on this date"
            ),
        );
    }
    Nav::parse(without_dangling_point(v))
        .or_else(|e| fail(RejectReason::InvalidNav, format!("{column}: {e}")))
}

/// `58.` → `58`. AMFI writes some NAVs with the point but no decimals (14 rows of the
/// 2025-02-25 file, live ETFs among them: `1000.`, `58.`). The domain's strict grammar rejects
/// that form, rightly for typed-in money; here the point carries neither value nor precision
/// (the scale is 0 either way), so dropping it loses nothing, whereas rejecting would drop real
/// NAVs every day. Only this one form is eased: `.5`, `1.2.3` and the like still fail.
fn without_dangling_point(v: &str) -> &str {
    match v.strip_suffix('.') {
        Some(int) if !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()) => int,
        _ => v,
    }
}

pub(crate) fn nav_date(column: &str, v: &str) -> FieldResult<NaiveDate> {
    parse_nav_date(v).or_else(|e| fail(RejectReason::InvalidDate, format!("{column}: {e}")))
}

/// Repurchase / sale prices: absent placeholders are `None`; a present but invalid price rejects
/// the row rather than publishing a NAV with a price we could not read.
pub(crate) fn optional_price(column: &str, v: &str) -> FieldResult<Option<Nav>> {
    if is_placeholder(v) {
        return Ok(None);
    }
    Nav::parse(without_dangling_point(v))
        .map(Some)
        .or_else(|e| fail(RejectReason::InvalidPrice, format!("{column}: {e}")))
}

/// Free text (plan, option, AMC): trimmed by the caller; placeholders are `None`.
pub(crate) fn optional_text(v: &str) -> Option<String> {
    if is_placeholder(v) {
        None
    } else {
        Some(v.to_owned())
    }
}

/// A header name reduced to what identifies it: ASCII-lowercased, without whitespace, `_` or
/// `-`. So `ISIN Div Payout/ ISIN Growth` and `ISIN Div Payout/ISIN Growth` are one column, and
/// `nav_date`, `NAV Date` and `NavDate` are one alias. (A leading BOM is the line reader's job.)
pub(crate) fn header_key(name: &str) -> String {
    key_chars(name).collect()
}

/// `header_key(name) == key` without allocating, and usually decided by the first character:
/// it runs on every data row to spot a repeated header.
pub(crate) fn key_eq(name: &str, key: &str) -> bool {
    key_chars(name).eq(key.chars())
}

fn key_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars()
        .filter(|c| !(c.is_whitespace() || *c == '_' || *c == '-'))
        .map(|c| c.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AMFI's absent markers give NavNotAvailable naming the value; a zero NAV is InvalidNav.
    #[test]
    fn nav_placeholders_and_zero() {
        for v in ["N.A.", "n.a.", "-", ""] {
            let e = nav("Net Asset Value", v).unwrap_err();
            assert_eq!(e.code, RejectReason::NavNotAvailable, "{v:?}");
            assert!(e.reason.starts_with("Net Asset Value is "), "{}", e.reason);
        }
        let e = nav("Net Asset Value", "0.0000").unwrap_err();
        assert_eq!(e.code, RejectReason::InvalidNav);
        assert!(e.reason.contains("0.0000"), "{}", e.reason);
        assert_eq!(nav("NAV", "103.9450").unwrap().to_string(), "103.9450");
    }

    /// AMFI's `58.` reads as 58 (scale 0); other half-written numerals are still rejected.
    #[test]
    fn dangling_point() {
        assert_eq!(nav("NAV", "58.").unwrap().to_string(), "58");
        assert_eq!(
            optional_price("Sale Price", "1000.")
                .unwrap()
                .unwrap()
                .to_string(),
            "1000"
        );
        for bad in [".", ".5", "1.2.", "-5.", "a."] {
            assert_eq!(
                nav("NAV", bad).unwrap_err().code,
                RejectReason::InvalidNav,
                "{bad:?}"
            );
        }
    }

    /// `-` and empty ISINs are absent; a malformed ISIN is rejected with the column named.
    #[test]
    fn isin_absent_versus_invalid() {
        assert_eq!(optional_isin("ISIN", "-").unwrap(), None);
        assert_eq!(optional_isin("ISIN", "").unwrap(), None);
        assert_eq!(
            optional_isin("ISIN", "INF209KA12Z1")
                .unwrap()
                .unwrap()
                .as_str(),
            "INF209KA12Z1"
        );
        let e = optional_isin("ISIN Div Reinvestment", "Redeemed").unwrap_err();
        assert_eq!(e.code, RejectReason::InvalidIsin);
        assert!(
            e.reason.starts_with("ISIN Div Reinvestment: ") && e.reason.contains("Redeemed"),
            "{}",
            e.reason
        );
    }

    /// Header keys ignore case, spacing, underscores and dashes.
    #[test]
    fn header_keys() {
        assert_eq!(
            header_key("ISIN Div Payout/ ISIN Growth"),
            header_key("isin div payout/isin growth")
        );
        assert_eq!(header_key("nav_date"), "navdate");
        assert_eq!(header_key(" NAV  Date "), "navdate");
        assert_eq!(header_key("Scheme-Code"), "schemecode");
        assert_ne!(header_key("Date"), header_key("NAV Date"));
        assert!(key_eq("Scheme Code", "schemecode"));
        assert!(!key_eq("Scheme Code2", "schemecode"));
        assert!(!key_eq("Scheme", "schemecode"));
    }
}
