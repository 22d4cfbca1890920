//! Property tests for the parsed domain types. Oracles here are written independently of the
//! crate's code (own Luhn, own PAN grammar, plain `Decimal` arithmetic) so a bug in the crate
//! cannot be mirrored by the test.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use chrono::NaiveDate;
use nivesh_domain::time::parse_nav_date;
use nivesh_domain::{
    Amount, Decimal, DomainError, IdempotencyKey, InvestorId, Isin, Nav, OrderId, Pan,
    RoundingMode, SchemeCode, Units, kind,
};
use proptest::prelude::*;

// ---------- independent oracles ----------

/// Luhn validity of a digit string (the check digit is the last one).
fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// The check digit that makes `first11` a valid ISIN, found by trying all ten.
fn isin_check_digit(first11: &str) -> char {
    let expanded: String = first11
        .chars()
        .map(|c| c.to_digit(36).unwrap().to_string())
        .collect();
    (b'0'..=b'9')
        .map(char::from)
        .find(|d| luhn_ok(&format!("{expanded}{d}")))
        .unwrap()
}

/// The PAN grammar, restated from the spec.
fn pan_shape_ok(s: &str) -> bool {
    let c: Vec<char> = s.chars().collect();
    c.len() == 10
        && c[..5].iter().all(|x| x.is_ascii_uppercase())
        && "PCHFATBLJG".contains(c[3])
        && c[5..9].iter().all(|x| x.is_ascii_digit())
        && c[9].is_ascii_uppercase()
}

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

fn json_round_trip<T>(v: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let json = serde_json::to_string(v).unwrap();
    assert!(json.starts_with('"'), "serialised as a JSON string: {json}");
    serde_json::from_str(&json).unwrap()
}

// ---------- strategies ----------

fn valid_pan() -> impl Strategy<Value = String> {
    "[A-Z]{3}[PCHFATBLJG][A-Z][0-9]{4}[A-Z]"
}

/// Replacement characters: all printable ASCII plus a few look-alikes from other scripts.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::char::range(' ', '~'),
        Just('é'),
        Just('०'),
        Just('Ａ'),
        Just('\u{0}')
    ]
}

fn amount_paise() -> impl Strategy<Value = u64> {
    0u64..=1_000_000_000_000_000
}

fn nav_text() -> impl Strategy<Value = String> {
    ("(0|[1-9][0-9]{0,7})", "[0-9]{0,10}")
        .prop_map(|(i, f)| if f.is_empty() { i } else { format!("{i}.{f}") })
        .prop_filter("NAV must be > 0", |s| {
            s.bytes().any(|b| (b'1'..=b'9').contains(&b))
        })
}

proptest! {
    // ---------- identifiers ----------

    /// Every valid scheme code survives Display → parse and serde unchanged.
    #[test]
    fn scheme_code_round_trip(s in "[A-Z0-9]{1,16}") {
        let v = SchemeCode::parse(&s).unwrap();
        prop_assert_eq!(v.as_str(), s.as_str());
        let shown = v.to_string();
        prop_assert_eq!(SchemeCode::parse(&shown).unwrap(), v.clone());
        prop_assert_eq!(json_round_trip(&v), v);
    }

    /// Every valid investor id survives Display → parse and serde unchanged.
    #[test]
    fn investor_id_round_trip(s in "[A-Za-z0-9_-]{1,64}") {
        let v = InvestorId::parse(&s).unwrap();
        prop_assert_eq!(v.to_string(), s);
        prop_assert_eq!(v.to_string().parse::<InvestorId>().unwrap(), v.clone());
        prop_assert_eq!(json_round_trip(&v), v);
    }

    /// Every valid idempotency key survives Display → parse and serde; a 129th char breaks it.
    #[test]
    fn idempotency_key_round_trip(s in "[A-Za-z0-9_.:-]{8,128}") {
        let v = IdempotencyKey::parse(&s).unwrap();
        prop_assert_eq!(IdempotencyKey::try_from(v.to_string()).unwrap(), v.clone());
        prop_assert_eq!(json_round_trip(&v), v);
        if s.len() == 128 {
            let longer = format!("{s}x");
            prop_assert!(IdempotencyKey::parse(&longer).is_err());
        }
    }

    /// Any non-nil UUID round-trips through OrderId's Display, parse and serde.
    #[test]
    fn order_id_round_trip(n in 1u128..) {
        let v = OrderId::from_uuid(uuid::Uuid::from_u128(n)).unwrap();
        prop_assert_eq!(OrderId::parse(&v.to_string()).unwrap(), v);
        prop_assert_eq!(json_round_trip(&v), v);
        prop_assert_eq!(v.as_uuid().as_u128(), n);
    }

    // ---------- ISIN ----------

    /// An ISIN with a correctly computed check digit parses and round-trips; every other
    /// check digit is rejected as an ISIN error.
    #[test]
    fn isin_check_digit_is_enforced(country in "[A-Z]{2}", body in "[A-Z0-9]{9}", wrong in 0u8..10) {
        let first11 = format!("{country}{body}");
        let good = isin_check_digit(&first11);
        let s = format!("{first11}{good}");
        let v = Isin::parse(&s).unwrap();
        prop_assert_eq!(v.as_str(), s.as_str());
        let shown = v.to_string();
        prop_assert_eq!(Isin::parse(&shown).unwrap(), v.clone());
        prop_assert_eq!(json_round_trip(&v), v);

        let wrong = char::from(b'0' + wrong);
        prop_assume!(wrong != good);
        let e = Isin::parse(&format!("{first11}{wrong}")).unwrap_err();
        prop_assert_eq!(e.kind(), kind::ISIN);
    }

    // ---------- PAN ----------

    /// A generated valid PAN parses, round-trips through expose/serde, and displays masked.
    #[test]
    fn pan_valid_round_trip(s in valid_pan()) {
        let p = Pan::parse(&s).unwrap();
        prop_assert_eq!(p.expose(), s.as_str());
        prop_assert_eq!(Pan::parse(p.expose()).unwrap(), p.clone());
        prop_assert_eq!(json_round_trip(&p), p.clone());
        let masked = format!("XXXXXX{}", &s[6..]);
        prop_assert_eq!(p.to_string(), masked.clone());
        let debug = format!("{p:?}");
        prop_assert!(!debug.contains(&s[..6]));
        prop_assert_eq!(p.holder_type().code(), s.chars().nth(3).unwrap());
    }

    /// Replacing any one character: accepted exactly when the result still fits the PAN
    /// grammar, and when rejected the error never contains the input.
    #[test]
    fn pan_single_substitution_matches_grammar(s in valid_pan(), pos in 0usize..10, c in any_char()) {
        let mut chars: Vec<char> = s.chars().collect();
        chars[pos] = c;
        let corrupted: String = chars.into_iter().collect();
        match Pan::parse(&corrupted) {
            Ok(p) => prop_assert!(pan_shape_ok(&corrupted) && p.expose() == corrupted),
            Err(e) => {
                prop_assert!(!pan_shape_ok(&corrupted), "rejected a well-formed PAN: {}", e);
                let redacted = matches!(e, DomainError::Redacted { .. });
                prop_assert!(redacted);
                let shown = format!("{e} {e:?}");
                let head: String = corrupted.chars().take(5).collect();
                prop_assert!(!shown.contains(&corrupted) && !shown.contains(&head));
            }
        }
    }

    /// A substitution chosen to break the format (wrong class for the position, or a letter
    /// that is not a holder type at position 4) is always rejected.
    #[test]
    fn pan_breaking_substitution_rejected(
        s in valid_pan(),
        pos in 0usize..10,
        letter in "[A-Z]",
        digit in "[0-9]",
        other in "[a-z!-/:-@]",
    ) {
        let bad = match pos {
            3 => ["D", "E", "I", "K", "M", "N", "O", "Q", "R", "S", "U", "V", "W", "X", "Y", "Z", digit.as_str(), other.as_str()]
                [letter.as_bytes()[0] as usize % 18].to_string(),
            0..=4 | 9 => if letter.as_bytes()[0] % 2 == 0 { digit } else { other },
            _ => if digit.as_bytes()[0] % 2 == 0 { letter } else { other },
        };
        let mut corrupted = s.clone();
        corrupted.replace_range(pos..=pos, &bad);
        prop_assert!(Pan::parse(&corrupted).is_err(), "accepted corrupted PAN at position {}", pos);
    }

    /// Deleting or inserting one character is always rejected.
    #[test]
    fn pan_length_corruption_rejected(s in valid_pan(), pos in 0usize..10, c in any_char()) {
        let mut shorter = s.clone();
        shorter.remove(pos);
        prop_assert!(Pan::parse(&shorter).is_err());
        let mut longer = s.clone();
        longer.insert(pos, c);
        prop_assert!(Pan::parse(&longer).is_err());
    }

    // ---------- Amount ----------

    /// Amounts round-trip through Display (always 2 places), parse and serde.
    #[test]
    fn amount_round_trip(p in amount_paise()) {
        let a = Amount::from_paise(p);
        let shown = a.to_string();
        prop_assert_eq!(shown.split('.').nth(1).map(str::len), Some(2));
        prop_assert_eq!(Amount::parse(&shown).unwrap(), a);
        prop_assert_eq!(json_round_trip(&a), a);
        prop_assert_eq!(a.as_decimal(), Decimal::new(p as i64, 2));
    }

    /// Addition and subtraction are exact, inverse to each other, and associative;
    /// subtraction is `None` exactly when the result would be negative.
    #[test]
    fn amount_arithmetic_exact(a in amount_paise(), b in amount_paise(), c in amount_paise()) {
        let (x, y, z) = (Amount::from_paise(a), Amount::from_paise(b), Amount::from_paise(c));
        let sum = x.checked_add(y).unwrap();
        prop_assert_eq!(sum.as_decimal(), x.as_decimal() + y.as_decimal());
        prop_assert_eq!(sum.checked_sub(y).unwrap(), x);
        prop_assert_eq!(
            x.checked_add(y).unwrap().checked_add(z).unwrap(),
            x.checked_add(y.checked_add(z).unwrap()).unwrap()
        );
        match x.checked_sub(y) {
            Some(d) => { prop_assert!(a >= b); prop_assert_eq!(d.as_decimal(), x.as_decimal() - y.as_decimal()); }
            None => prop_assert!(a < b),
        }
    }

    /// Rounding any non-negative decimal to paise lands within the mode's error bound.
    #[test]
    fn amount_round_to_paise_bounds(m in 0i64..i64::MAX, scale in 0u32..=12) {
        let d = Decimal::new(m, scale);
        let t = Amount::round_to_paise(d, RoundingMode::Truncate).unwrap().as_decimal();
        prop_assert!(t <= d && d - t < Decimal::new(1, 2));
        let h = Amount::round_to_paise(d, RoundingMode::HalfUp).unwrap().as_decimal();
        prop_assert!((h - d).abs() <= Decimal::new(5, 3));
    }

    // ---------- Units ----------

    /// Units round-trip through Display (always 3 places), parse and serde.
    #[test]
    fn units_round_trip(m in 0i64..i64::MAX) {
        let u = Units::new(Decimal::new(m, 3)).unwrap();
        let shown = u.to_string();
        prop_assert_eq!(shown.split('.').nth(1).map(str::len), Some(3));
        prop_assert_eq!(Units::parse(&shown).unwrap(), u);
        prop_assert_eq!(json_round_trip(&u), u);
    }

    /// Truncating to units never exceeds the input and loses less than 0.001; a fourth
    /// significant place makes `parse` fail.
    #[test]
    fn units_truncate_bounds(m in 0i64..i64::MAX, scale in 0u32..=12) {
        let d = Decimal::new(m, scale);
        let u = Units::from_decimal(d, RoundingMode::Truncate).unwrap().as_decimal();
        prop_assert!(u <= d);
        prop_assert!(d - u < Decimal::new(1, 3));
        prop_assert_eq!(u.scale(), 3);
        if d.normalize().scale() > 3 {
            prop_assert!(Units::parse(&d.to_string()).is_err());
            prop_assert!(Units::new(d).is_err());
        } else {
            prop_assert_eq!(Units::parse(&d.to_string()).unwrap().as_decimal(), u);
        }
    }

    /// Allotment by truncation buys the most thousandths the amount pays for:
    /// units × NAV <= amount < (units + 0.001) × NAV.
    #[test]
    fn units_for_amount_is_exact(p in 1u64..=10_000_000_000, nav in nav_text()) {
        let amount = Amount::from_paise(p);
        let nav = Nav::parse(&nav).unwrap();
        let u = Units::for_amount(amount, nav, RoundingMode::Truncate).unwrap().as_decimal();
        let n = nav.as_decimal();
        prop_assert!(u * n <= amount.as_decimal());
        prop_assert!((u + Decimal::new(1, 3)) * n > amount.as_decimal());
    }

    // ---------- NAV ----------

    /// A NAV displays exactly the text it was parsed from, and serde keeps it too.
    #[test]
    fn nav_preserves_source(s in nav_text()) {
        let n = Nav::parse(&s).unwrap();
        prop_assert_eq!(n.to_string(), s.clone());
        prop_assert_eq!(json_round_trip(&n).to_string(), s.clone());
        prop_assert_eq!(Nav::parse(&n.to_string()).unwrap(), n);
    }

    /// Extra trailing zeros change the text but not equality, ordering or hash.
    #[test]
    fn nav_equality_is_numeric(s in nav_text(), extra in 1usize..=3) {
        let with_point = if s.contains('.') { s.clone() } else { format!("{s}.") };
        let padded = format!("{with_point}{}", "0".repeat(extra));
        prop_assume!(padded.split('.').nth(1).unwrap().len() <= 10);
        let (a, b) = (Nav::parse(&s).unwrap(), Nav::parse(&padded).unwrap());
        prop_assert_eq!(a, b);
        prop_assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);
        prop_assert_eq!(hash_of(&a), hash_of(&b));
        prop_assert_eq!(b.to_string(), padded);
    }

    // ---------- dates ----------

    /// Dates written by chrono in AMFI form (any case) and ISO form parse back to themselves.
    #[test]
    fn nav_date_round_trip(days in 0i64..200_000) {
        let d = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::TimeDelta::days(days);
        let amfi = d.format("%d-%b-%Y").to_string();
        prop_assert_eq!(parse_nav_date(&amfi).unwrap(), d);
        prop_assert_eq!(parse_nav_date(&amfi.to_uppercase()).unwrap(), d);
        prop_assert_eq!(parse_nav_date(&amfi.to_lowercase()).unwrap(), d);
        prop_assert_eq!(parse_nav_date(&d.format("%Y-%m-%d").to_string()).unwrap(), d);
    }
}
