//! PII masking: everything that leaves for the LLM has PAN, Aadhaar, phone numbers, e-mail
//! addresses, names and account numbers replaced by tokens (`[PAN_1]`, `[AADHAAR_1]`,
//! `[PHONE_1]`, `[EMAIL_1]`, `[NAME_1]`, `[ACCOUNT_1]`); [`TokenMap::restore`] puts the
//! originals back into the answer for the authorised caller only.
//!
//! One [`TokenMap`] per request covers the context and the question, so the same value gets the
//! same token everywhere in the prompt and the model can refer to it. Detection, in this order
//! (earlier kinds win, so a PAN is never half-taken as an account number):
//! - known values the gateway itself put into the context (investor ids, folios, names it was
//!   given), matched exactly, case-insensitively;
//! - e-mail addresses;
//! - phone numbers with a `+91`/`91`/`0` prefix, then Aadhaar (12 digits, first 2-9, optionally
//!   grouped 4-4-4), then bare 10-digit mobiles (first digit 6-9);
//! - PAN (`AAAAA9999A`, any case);
//! - account numbers: investor ids (`INV` + digits), values after "folio"/"account"/"a/c",
//!   and any bare run of 9 to 18 digits (bank accounts);
//! - names: after an honorific (Mr, Mrs, Ms, Dr, Shri, Smt) or "my name is", "dear",
//!   "regards,", "thanks,".
//!
//! Decimal numbers (NAVs, amounts) and dates are not touched: they must reach the model, and
//! they never look like the patterns above (amounts are written with a decimal point).

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

/// The kinds of PII, in token form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pan,
    Aadhaar,
    Phone,
    Email,
    Name,
    Account,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Pan => "PAN",
            Kind::Aadhaar => "AADHAAR",
            Kind::Phone => "PHONE",
            Kind::Email => "EMAIL",
            Kind::Name => "NAME",
            Kind::Account => "ACCOUNT",
        }
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static PII pattern compiles")
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"));
static PHONE_PREFIXED: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:\+91[\s\-]?|\b91[\s\-]|\b0)[6-9]\d{4}[\s\-]?\d{5}\b"));
static AADHAAR: LazyLock<Regex> = LazyLock::new(|| re(r"\b[2-9]\d{3}[\s\-]?\d{4}[\s\-]?\d{4}\b"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| re(r"\b[6-9]\d{4}[\s\-]?\d{5}\b"));
static PAN: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b[a-z]{5}\d{4}[a-z]\b"));
static INVESTOR_ID: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\bINV\d{3,}\b"));
static LABELLED_ACCOUNT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:folio|account|a/c)(?:\s+(?:no\.?|number))?\s*[:#]?\s*([A-Za-z0-9/\-]*\d[A-Za-z0-9/\-]{3,})",
    )
});
static BARE_ACCOUNT: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d{9,18}\b"));
static HONORIFIC_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:Mr|Mrs|Ms|Dr|Shri|Smt)\.?\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)"));
static INTRODUCED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:[Mm]y name is|[Dd]ear|[Rr]egards,|[Tt]hanks,|[Tt]hank you,)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)",
    )
});
/// A token as it appears in masked text.
pub static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| re(r"\[(?:PAN|AADHAAR|PHONE|EMAIL|NAME|ACCOUNT)_\d+\]"));

/// The tokens of one request and the values they stand for.
#[derive(Debug, Default, Clone)]
pub struct TokenMap {
    by_value: HashMap<(Kind, String), String>,
    originals: HashMap<String, String>,
    counters: HashMap<Kind, usize>,
    known: Vec<(Kind, String)>,
}

impl TokenMap {
    pub fn new() -> Self {
        TokenMap::default()
    }

    /// A value the gateway knows is PII (an investor id or folio it put into the context, a
    /// customer name from a ticket): masked wherever it appears, whatever the pattern says.
    pub fn know(&mut self, kind: Kind, value: &str) {
        let value = value.trim();
        if value.len() >= 2
            && !self
                .known
                .iter()
                .any(|(_, v)| v.eq_ignore_ascii_case(value))
        {
            self.known.push((kind, value.to_string()));
            // Longest first, so "Aarav Sharma" is taken before "Aarav".
            self.known.sort_by_key(|k| std::cmp::Reverse(k.1.len()));
        }
    }

    /// The token for `value`, allocating the next number of its kind on first sight.
    fn token(&mut self, kind: Kind, value: &str) -> String {
        let key = (kind, normalise(kind, value));
        if let Some(t) = self.by_value.get(&key) {
            return t.clone();
        }
        let n = self.counters.entry(kind).or_insert(0);
        *n += 1;
        let token = format!("[{}_{}]", kind.label(), n);
        self.by_value.insert(key, token.clone());
        self.originals.insert(token.clone(), value.to_string());
        token
    }

    /// How many distinct values were masked.
    pub fn len(&self) -> usize {
        self.originals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }

    /// The text with every PII value replaced by its token.
    pub fn mask(&mut self, text: &str) -> String {
        let mut out = text.to_string();
        let known = self.known.clone();
        for (kind, value) in &known {
            let pattern = format!("(?i){}", regex::escape(value));
            if let Ok(r) = Regex::new(&pattern) {
                out = self.replace_all(&r, &out, *kind, false);
            }
        }
        out = self.replace_all(&EMAIL, &out, Kind::Email, false);
        out = self.replace_all(&PHONE_PREFIXED, &out, Kind::Phone, false);
        out = self.replace_all(&AADHAAR, &out, Kind::Aadhaar, false);
        out = self.replace_all(&PHONE, &out, Kind::Phone, false);
        out = self.replace_all(&PAN, &out, Kind::Pan, false);
        out = self.replace_all(&INVESTOR_ID, &out, Kind::Account, false);
        out = self.replace_all(&LABELLED_ACCOUNT, &out, Kind::Account, true);
        out = self.replace_all(&BARE_ACCOUNT, &out, Kind::Account, false);
        out = self.replace_all(&HONORIFIC_NAME, &out, Kind::Name, true);
        out = self.replace_all(&INTRODUCED_NAME, &out, Kind::Name, true);
        out
    }

    /// Replace the whole match (or, with `group`, only capture group 1) by a token, leaving
    /// existing tokens alone.
    fn replace_all(&mut self, r: &Regex, text: &str, kind: Kind, group: bool) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in r.captures_iter(text) {
            let Some(m) = (if group { caps.get(1) } else { caps.get(0) }) else {
                continue;
            };
            let value = m.as_str();
            if value.starts_with('[') || value.chars().all(|c| c.is_ascii_punctuation()) {
                continue;
            }
            // Inside a token already placed ("[ACCOUNT_1]")? Leave it.
            if inside_token(text, m.start()) {
                continue;
            }
            out.push_str(&text[last..m.start()]);
            let token = self.token(kind, value);
            out.push_str(&token);
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    /// The answer with tokens turned back into the values they stand for. Only ever called for
    /// the caller the request was authorised for.
    pub fn restore(&self, text: &str) -> String {
        TOKEN
            .replace_all(text, |c: &regex::Captures<'_>| {
                let t = &c[0];
                self.originals
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| t.to_string())
            })
            .into_owned()
    }
}

fn normalise(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Phone | Kind::Aadhaar => {
            let digits: String = value.chars().filter(char::is_ascii_digit).collect();
            // +91 98100 07919 and 9810007919 are one number.
            if kind == Kind::Phone && digits.len() > 10 {
                digits[digits.len() - 10..].to_string()
            } else {
                digits
            }
        }
        _ => value.to_ascii_lowercase(),
    }
}

fn inside_token(text: &str, pos: usize) -> bool {
    let before = &text[..pos];
    match (before.rfind('['), before.rfind(']')) {
        (Some(open), Some(close)) => open > close && TOKEN.is_match(&text[open..]),
        (Some(open), None) => TOKEN
            .find(&text[open..])
            .is_some_and(|m| m.start() == 0 && open + m.end() > pos),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_kind_and_restores() {
        let mut m = TokenMap::new();
        let text = "I am Mr. Aarav Sharma, PAN SHAPA1037B, Aadhaar 2345 6789 0123, phone +91 98100 07919 \
                    or 9810015838, mail aarav.sharma@example.in, folio 12345/67, bank 123456789012345, \
                    investor INV0001. NAV 262.3456 on 2025-02-25, amount 10000.00.";
        let masked = m.mask(text);
        for leaked in [
            "Aarav",
            "SHAPA1037B",
            "2345 6789 0123",
            "98100 07919",
            "9810015838",
            "aarav.sharma@example.in",
            "12345/67",
            "123456789012345",
            "INV0001",
        ] {
            assert!(!masked.contains(leaked), "{leaked} leaked: {masked}");
        }
        for kept in ["262.3456", "2025-02-25", "10000.00"] {
            assert!(masked.contains(kept), "{kept} was masked: {masked}");
        }
        assert!(masked.contains("[PAN_1]") && masked.contains("[NAME_1]"));
        assert!(masked.contains("[AADHAAR_1]") && masked.contains("[PHONE_2]"));
        assert!(masked.contains("[EMAIL_1]") && masked.contains("[ACCOUNT_3]"));
        assert_eq!(m.restore(&masked), text);
    }

    #[test]
    fn same_value_same_token_and_known_values() {
        let mut m = TokenMap::new();
        m.know(Kind::Name, "Diya Patel");
        let a = m.mask("Diya Patel holds INV0002; diya patel asked about inv0002.");
        assert_eq!(
            a,
            "[NAME_1] holds [ACCOUNT_1]; [NAME_1] asked about [ACCOUNT_1]."
        );
        let b = m.mask("+919810007919 and 9810007919");
        assert_eq!(b, "[PHONE_1] and [PHONE_1]");
    }

    #[test]
    fn lowercase_pan_and_plain_text_untouched() {
        let mut m = TokenMap::new();
        assert_eq!(m.mask("my pan is abcde1234f"), "my pan is [PAN_1]");
        let plain = "Which fund gained most this month? NAV 45.6789, 3 funds, year 2025.";
        assert_eq!(m.mask(plain), plain);
    }
}
