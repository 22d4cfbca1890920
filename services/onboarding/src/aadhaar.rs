//! Aadhaar numbers under the UIDAI vault rules: accepted only to be tokenized.
//!
//! An [`Aadhaar`] is 12 digits, does not start with 0 or 1 (UIDAI never issues those), and its
//! last digit is the Verhoeff check digit of the first eleven. The type cannot be printed:
//! `Debug` and `Display` show only [`Aadhaar::masked`] (`XXXX-XXXX-1234`), errors never echo
//! the input, and it has no `Serialize`. The digits leave it only through [`Aadhaar::expose`],
//! which the vault calls to encrypt them. Everywhere else only the vault's reference token and
//! the masked form exist.

use std::fmt;

/// Verhoeff multiplication table (the dihedral group D5).
const D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Verhoeff permutation table.
const P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Verhoeff inverse table.
const INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// True when `digits` (check digit last) passes the Verhoeff check.
pub fn verhoeff_valid(digits: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, d) in digits.iter().rev().enumerate() {
        c = D[c as usize][P[i % 8][*d as usize] as usize];
    }
    c == 0
}

/// The Verhoeff check digit to append to `digits`.
pub fn verhoeff_check_digit(digits: &[u8]) -> u8 {
    let mut c = 0u8;
    for (i, d) in digits.iter().rev().enumerate() {
        c = D[c as usize][P[(i + 1) % 8][*d as usize] as usize];
    }
    INV[c as usize]
}

/// A valid Aadhaar number (see the module docs). Holds the 12 digits without separators.
#[derive(Clone, PartialEq, Eq)]
pub struct Aadhaar(String);

impl Aadhaar {
    /// Parse 12 digits; single spaces or hyphens between groups (`1234 5678 9012`) are allowed.
    /// Errors describe the problem without echoing any digit.
    pub fn parse(raw: &str) -> Result<Aadhaar, &'static str> {
        let digits: String = raw
            .trim()
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect();
        if digits.is_empty() {
            return Err("is empty");
        }
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("must contain only digits (spaces or hyphens between groups allowed)");
        }
        if digits.len() != 12 {
            return Err("must be 12 digits");
        }
        if digits.starts_with('0') || digits.starts_with('1') {
            return Err("cannot start with 0 or 1");
        }
        let values: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
        if !verhoeff_valid(&values) {
            return Err("fails the Verhoeff checksum");
        }
        Ok(Aadhaar(digits))
    }

    /// `XXXX-XXXX-1234`: the only form shown anywhere.
    pub fn masked(&self) -> String {
        format!("XXXX-XXXX-{}", &self.0[8..])
    }

    /// The 12 digits. Only the vault calls this, to encrypt them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Aadhaar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Aadhaar").field(&self.masked()).finish()
    }
}

impl fmt::Display for Aadhaar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_check(first11: &str) -> String {
        let v: Vec<u8> = first11.bytes().map(|b| b - b'0').collect();
        format!("{first11}{}", verhoeff_check_digit(&v))
    }

    /// Published Verhoeff examples: 236 -> check digit 3; 12345 -> 1; 2363 and 123451 pass.
    #[test]
    fn verhoeff_known_values() {
        assert_eq!(verhoeff_check_digit(&[2, 3, 6]), 3);
        assert!(verhoeff_valid(&[2, 3, 6, 3]));
        assert_eq!(verhoeff_check_digit(&[1, 2, 3, 4, 5]), 1);
        assert!(verhoeff_valid(&[1, 2, 3, 4, 5, 1]));
        assert!(!verhoeff_valid(&[1, 2, 3, 4, 5, 2]));
    }

    /// Every single-digit change and every adjacent transposition of a valid number is caught.
    #[test]
    fn checksum_catches_typos() {
        let good = with_check("23456789012");
        assert!(Aadhaar::parse(&good).is_ok());
        let b: Vec<u8> = good.bytes().collect();
        for i in 0..12 {
            for d in b'0'..=b'9' {
                if d == b[i] {
                    continue;
                }
                let mut t = b.clone();
                t[i] = d;
                let s = String::from_utf8(t).unwrap();
                if s.starts_with('0') || s.starts_with('1') {
                    continue;
                }
                assert!(Aadhaar::parse(&s).is_err(), "single-digit change at {i}");
            }
            if i < 11 && b[i] != b[i + 1] {
                let mut t = b.clone();
                t.swap(i, i + 1);
                let s = String::from_utf8(t).unwrap();
                assert!(Aadhaar::parse(&s).is_err(), "transposition at {i}");
            }
        }
    }

    /// Shape rules, separators, masking, and errors that never echo digits.
    #[test]
    fn parse_mask_and_redaction() {
        let good = with_check("49876543210");
        let spaced = format!("{} {} {}", &good[..4], &good[4..8], &good[8..]);
        let a = Aadhaar::parse(&spaced).unwrap();
        assert_eq!(a.expose(), good);
        assert_eq!(a.masked(), format!("XXXX-XXXX-{}", &good[8..]));
        assert_eq!(
            format!("{a:?}"),
            format!("Aadhaar(\"XXXX-XXXX-{}\")", &good[8..])
        );
        assert!(!a.to_string().contains(&good[..8]));
        for (bad, needle) in [
            ("", "empty"),
            ("12345678901a", "only digits"),
            ("23456789012", "12 digits"),
            (&with_check("13456789012")[..], "0 or 1"),
        ] {
            let e = Aadhaar::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
