//! Request validation that needs no I/O: the shape of `POST /v1/orders` bodies, per kind.
//!
//! The body is read field by field from the parsed JSON (not through a derived `Deserialize`),
//! so every problem comes back as a field error naming the JSON field (`amount`: "must be a
//! decimal string such as \"5000.00\"") and all of them are reported at once. Business checks
//! that need state (KYC, scheme table, units held) live in [`crate::place`].

use std::collections::BTreeSet;

use chrono::NaiveDate;
use nivesh_domain::{Amount, InvestorId, SchemeCode, Units};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One field's problem, as served in the problem's `errors` extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) reason: String,
}

pub(crate) fn field_error(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Amount limits (`[service] limits`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Smallest lump-sum purchase.
    pub min_purchase: Amount,
    /// Smallest SIP instalment.
    pub min_sip: Amount,
    /// Largest amount of any order (a fat-finger guard; also keeps amounts within the wire range).
    pub max_amount: Amount,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_purchase: Amount::from_paise(10_000),
            min_sip: Amount::from_paise(10_000),
            max_amount: Amount::from_paise(10_000_000_000),
        }
    }
}

/// How much a redemption or switch takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quantity {
    Units(Units),
    Amount(Amount),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SipRequest {
    pub(crate) scheme: SchemeCode,
    pub(crate) amount: Amount,
    pub(crate) day_of_month: u32,
    pub(crate) start_date: NaiveDate,
    pub(crate) instalments: Option<u32>,
    pub(crate) instrument: String,
}

/// A well-formed request, per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Purchase {
        scheme: SchemeCode,
        amount: Amount,
        instrument: String,
    },
    Redemption {
        scheme: SchemeCode,
        qty: Quantity,
    },
    Switch {
        scheme: SchemeCode,
        target: SchemeCode,
        qty: Quantity,
    },
    Sip(SipRequest),
}

const KINDS: &str = "PURCHASE, REDEMPTION, SWITCH or SIP";
const MAX_INSTALMENTS: u64 = 1200;

/// The investor a body is for (needed first: idempotency keys are scoped per investor).
pub(crate) fn investor_of(body: &Value) -> Result<InvestorId, FieldError> {
    let Some(obj) = body.as_object() else {
        return Err(field_error("", "the body must be a JSON object"));
    };
    match obj.get("investorId") {
        None | Some(Value::Null) => Err(field_error("investorId", "is required")),
        Some(Value::String(s)) => {
            InvestorId::parse(s).map_err(|e| field_error("investorId", e.reason()))
        }
        Some(_) => Err(field_error("investorId", "must be a string")),
    }
}

/// Reads the fields of one JSON object, collecting every problem.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn err(&mut self, field: &str, reason: impl Into<String>) {
        self.errors.push(field_error(field, reason));
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Option<&'a str> {
        match self.get(name) {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.err(name, "must be a string");
                None
            }
        }
    }

    fn required_string(&mut self, name: &str) -> Option<&'a str> {
        if self.get(name).is_none() {
            self.err(name, "is required");
        }
        self.string(name)
    }

    fn scheme(&mut self, name: &str) -> Option<SchemeCode> {
        let s = self.required_string(name)?;
        match SchemeCode::parse(s) {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(name, e.reason().to_string());
                None
            }
        }
    }

    /// A positive amount of at most 2 decimals, as a string, within `[min, max]`.
    fn amount(&mut self, name: &str, min: Option<Amount>, max: Amount) -> Option<Amount> {
        let s = self.string(name)?;
        let a = match Amount::parse(s) {
            Ok(a) => a,
            Err(e) => {
                self.err(
                    name,
                    format!(
                        "{} (a decimal string of rupees with at most 2 decimals, e.g. \"5000.00\")",
                        e.reason()
                    ),
                );
                return None;
            }
        };
        if a.is_zero() {
            self.err(name, "must be greater than zero");
            return None;
        }
        if let Some(min) = min
            && a < min
        {
            self.err(name, format!("must be at least {min}"));
            return None;
        }
        if a > max {
            self.err(name, format!("must be at most {max}"));
            return None;
        }
        Some(a)
    }

    /// Positive units of at most 3 decimals, as a string.
    fn units(&mut self, name: &str) -> Option<Units> {
        let s = self.string(name)?;
        let u = match Units::parse(s) {
            Ok(u) => u,
            Err(e) => {
                self.err(
                    name,
                    format!(
                        "{} (a decimal string with at most 3 decimals, e.g. \"12.500\")",
                        e.reason()
                    ),
                );
                return None;
            }
        };
        if u.is_zero() {
            self.err(name, "must be greater than zero");
            return None;
        }
        Some(u)
    }

    fn bool(&mut self, name: &str) -> Option<bool> {
        match self.get(name) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.err(name, "must be true or false");
                None
            }
        }
    }

    fn int(&mut self, name: &str, range: std::ops::RangeInclusive<u64>, why: &str) -> Option<u32> {
        let v = self.get(name)?;
        match v.as_u64().filter(|n| range.contains(n)) {
            Some(n) => u32::try_from(n).ok(),
            None => {
                self.err(
                    name,
                    format!(
                        "must be a whole number from {} to {}{why}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// How much to redeem/switch: exactly one of `units`, `amount`, `allUnits: true`.
    fn quantity(&mut self, max: Amount) -> Option<Quantity> {
        let units = self.units("units");
        let amount = self.amount("amount", None, max);
        let all = self.bool("allUnits").unwrap_or(false);
        let given = [
            self.get("units").is_some(),
            self.get("amount").is_some(),
            all,
        ]
        .iter()
        .filter(|b| **b)
        .count();
        match given {
            0 => {
                self.err(
                    "units",
                    "one of units, amount or allUnits: true is required",
                );
                None
            }
            1 => match (units, amount, all) {
                (Some(u), _, _) => Some(Quantity::Units(u)),
                (_, Some(a), _) => Some(Quantity::Amount(a)),
                (_, _, true) => Some(Quantity::All),
                // The one given field was invalid; its error is already recorded.
                _ => None,
            },
            _ => {
                self.err(
                    "units",
                    "give exactly one of units, amount or allUnits: true",
                );
                None
            }
        }
    }

    /// A payment instrument reference: a UPI VPA (`name@handle`) or another printable token.
    fn instrument(&mut self, name: &str) -> Option<String> {
        let s = self.required_string(name)?;
        match check_instrument(s) {
            Ok(()) => Some(s.to_string()),
            Err(reason) => {
                self.err(name, reason);
                None
            }
        }
    }

    fn date(&mut self, name: &str) -> Option<NaiveDate> {
        let s = self.required_string(name)?;
        match s.parse::<NaiveDate>() {
            Ok(d) if s.len() == 10 => Some(d),
            _ => {
                self.err(name, "must be a date YYYY-MM-DD");
                None
            }
        }
    }

    fn only(&mut self, allowed: &[&str], kind: &str) {
        let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
        let unknown: Vec<String> = self
            .obj
            .keys()
            .filter(|k| !allowed.contains(k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            self.err(&k, format!("is not a field of a {kind} order"));
        }
    }
}

fn check_instrument(s: &str) -> Result<(), String> {
    if !(3..=100).contains(&s.len()) {
        return Err("must be 3 to 100 characters".into());
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    if let Some((user, handle)) = s.split_once('@') {
        let user_ok = !user.is_empty()
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        let handle_ok = !handle.is_empty() && handle.bytes().all(|b| b.is_ascii_alphanumeric());
        if !user_ok || !handle_ok {
            return Err("is not a UPI VPA (name@handle, e.g. \"aarav.sharma@okicici\")".into());
        }
    }
    Ok(())
}

/// Parses a whole body. `today` is the business date in IST (a SIP cannot start in the past).
pub(crate) fn parse(
    body: &Value,
    limits: &Limits,
    today: NaiveDate,
) -> Result<(InvestorId, Request), Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![field_error("", "the body must be a JSON object")]);
    };
    let mut f = Fields {
        obj,
        errors: Vec::new(),
    };
    let investor = match investor_of(body) {
        Ok(i) => Some(i),
        Err(e) => {
            f.errors.push(e);
            None
        }
    };
    let kind = match f.required_string("kind") {
        Some(k @ ("PURCHASE" | "REDEMPTION" | "SWITCH" | "SIP")) => Some(k),
        Some(other) => {
            f.err(
                "kind",
                format!("{other:?} is not an order kind: use {KINDS}"),
            );
            None
        }
        None => None,
    };
    let common = ["investorId", "kind", "schemeCode"];
    let request = match kind {
        None => None,
        Some("PURCHASE") => {
            f.only(
                &[&common[..], &["amount", "paymentInstrument"]].concat(),
                "PURCHASE",
            );
            let scheme = f.scheme("schemeCode");
            if f.get("amount").is_none() {
                f.err("amount", "is required");
            }
            let amount = f.amount("amount", Some(limits.min_purchase), limits.max_amount);
            let instrument = f.instrument("paymentInstrument");
            match (scheme, amount, instrument) {
                (Some(scheme), Some(amount), Some(instrument)) => Some(Request::Purchase {
                    scheme,
                    amount,
                    instrument,
                }),
                _ => None,
            }
        }
        Some("REDEMPTION") => {
            f.only(
                &[&common[..], &["units", "amount", "allUnits"]].concat(),
                "REDEMPTION",
            );
            let scheme = f.scheme("schemeCode");
            let qty = f.quantity(limits.max_amount);
            match (scheme, qty) {
                (Some(scheme), Some(qty)) => Some(Request::Redemption { scheme, qty }),
                _ => None,
            }
        }
        Some("SWITCH") => {
            f.only(
                &[
                    &common[..],
                    &["targetSchemeCode", "units", "amount", "allUnits"],
                ]
                .concat(),
                "SWITCH",
            );
            let scheme = f.scheme("schemeCode");
            let target = f.scheme("targetSchemeCode");
            if let (Some(s), Some(t)) = (&scheme, &target)
                && s == t
            {
                f.err("targetSchemeCode", "must differ from schemeCode");
            }
            let qty = f.quantity(limits.max_amount);
            match (scheme, target, qty) {
                (Some(scheme), Some(target), Some(qty)) if scheme != target => {
                    Some(Request::Switch {
                        scheme,
                        target,
                        qty,
                    })
                }
                _ => None,
            }
        }
        Some(_sip) => {
            f.only(
                &[
                    &common[..],
                    &[
                        "amount",
                        "dayOfMonth",
                        "startDate",
                        "instalments",
                        "paymentInstrument",
                    ],
                ]
                .concat(),
                "SIP",
            );
            let scheme = f.scheme("schemeCode");
            if f.get("amount").is_none() {
                f.err("amount", "is required");
            }
            let amount = f.amount("amount", Some(limits.min_sip), limits.max_amount);
            if f.get("dayOfMonth").is_none() {
                f.err("dayOfMonth", "is required");
            }
            let day_of_month = f.int("dayOfMonth", 1..=28, " (every month has that day)");
            let start_date = f.date("startDate");
            if let Some(d) = start_date
                && d < today
            {
                f.err(
                    "startDate",
                    format!("must not be in the past (today is {today})"),
                );
            }
            let instalments = f.int("instalments", 1..=MAX_INSTALMENTS, "");
            let instrument = f.instrument("paymentInstrument");
            match (scheme, amount, day_of_month, start_date, instrument) {
                (
                    Some(scheme),
                    Some(amount),
                    Some(day_of_month),
                    Some(start_date),
                    Some(instrument),
                ) if start_date >= today => Some(Request::Sip(SipRequest {
                    scheme,
                    amount,
                    day_of_month,
                    start_date,
                    instalments,
                    instrument,
                })),
                _ => None,
            }
        }
    };
    match (investor, request) {
        (Some(i), Some(r)) if f.errors.is_empty() => Ok((i, r)),
        _ => {
            if f.errors.is_empty() {
                // Unreachable by construction (every None above records an error); never answer
                // a rejection without saying why.
                f.err("", "invalid request");
            }
            Err(f.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 2, 25).unwrap()
    }

    fn run(v: Value) -> Result<(InvestorId, Request), Vec<FieldError>> {
        parse(&v, &Limits::default(), today())
    }

    fn fields(v: Value) -> Vec<String> {
        run(v)
            .expect_err("must be rejected")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn purchase(amount: Value) -> Value {
        json!({"investorId": "INV0001", "kind": "PURCHASE", "schemeCode": "119551",
               "amount": amount, "paymentInstrument": "aarav.sharma@okicici"})
    }

    /// A well-formed purchase parses into exact domain values.
    #[test]
    fn purchase_ok() {
        let (inv, req) = run(purchase(json!("5000.5"))).unwrap();
        assert_eq!(inv.as_str(), "INV0001");
        let Request::Purchase {
            scheme,
            amount,
            instrument,
        } = req
        else {
            panic!("not a purchase");
        };
        assert_eq!(scheme.as_str(), "119551");
        assert_eq!(amount.to_string(), "5000.50");
        assert_eq!(instrument, "aarav.sharma@okicici");
    }

    /// Zero, negative, sub-paisa, below-minimum, above-maximum and numeric amounts are refused.
    #[test]
    fn purchase_amount_rules() {
        for bad in [
            json!("0"),
            json!("0.00"),
            json!("-100.00"),
            json!("100.001"),
            json!("99.99"),
            json!("1e3"),
            json!("100000000.01"),
            json!(5000),
            json!(5000.0),
            json!(""),
        ] {
            assert_eq!(fields(purchase(bad.clone())), ["amount"], "{bad}");
        }
        assert!(
            run(purchase(json!("100.00"))).is_ok(),
            "the minimum itself is allowed"
        );
        let errs = run(purchase(json!("-5"))).unwrap_err();
        assert!(errs[0].reason.contains("negative"), "{errs:?}");
    }

    /// Missing required fields and unknown fields are each named.
    #[test]
    fn missing_and_unknown_fields() {
        let got = fields(json!({"kind": "PURCHASE", "units": "1.000"}));
        for want in [
            "investorId",
            "schemeCode",
            "amount",
            "paymentInstrument",
            "units",
        ] {
            assert!(got.contains(&want.to_string()), "{want} in {got:?}");
        }
        assert_eq!(fields(json!([1, 2])), [""]);
    }

    /// Unknown or missing kinds are refused, including the internal SIP_INSTALMENT.
    #[test]
    fn kinds() {
        for k in [
            json!("BUY"),
            json!("SIP_INSTALMENT"),
            json!("purchase"),
            json!(1),
        ] {
            let v = json!({"investorId": "INV0001", "kind": k, "schemeCode": "119551"});
            assert_eq!(fields(v), ["kind"], "{k}");
        }
        assert_eq!(fields(json!({"investorId": "INV0001"})), ["kind"]);
    }

    /// Redemptions take exactly one of units, amount or allUnits: true.
    #[test]
    fn redemption_quantity() {
        let base = |extra: Value| {
            let mut v =
                json!({"investorId": "INV0001", "kind": "REDEMPTION", "schemeCode": "119551"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let ok = |extra: Value| match run(base(extra)).unwrap().1 {
            Request::Redemption { qty, .. } => qty,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ok(json!({"units": "12.5"})),
            Quantity::Units(Units::parse("12.500").unwrap())
        );
        assert_eq!(
            ok(json!({"amount": "1000"})),
            Quantity::Amount(Amount::parse("1000.00").unwrap())
        );
        assert_eq!(ok(json!({"allUnits": true})), Quantity::All);
        assert_eq!(
            ok(json!({"units": "1.000", "allUnits": false})),
            Quantity::Units(Units::parse("1.000").unwrap())
        );
        assert_eq!(fields(base(json!({}))), ["units"]);
        assert_eq!(fields(base(json!({"allUnits": false}))), ["units"]);
        assert_eq!(
            fields(base(json!({"units": "1.000", "amount": "5.00"}))),
            ["units"]
        );
        assert_eq!(fields(base(json!({"units": "1.0001"}))), ["units"]);
        assert_eq!(fields(base(json!({"units": "0.000"}))), ["units"]);
        assert_eq!(fields(base(json!({"units": "-1"}))), ["units"]);
        assert_eq!(fields(base(json!({"paymentInstrument": "a@b"}))).len(), 2);
    }

    /// A switch needs a different, valid target scheme.
    #[test]
    fn switch_rules() {
        let v = json!({"investorId": "INV0001", "kind": "SWITCH", "schemeCode": "119551",
                        "targetSchemeCode": "119551", "units": "1.000"});
        assert_eq!(fields(v), ["targetSchemeCode"]);
        let v = json!({"investorId": "INV0001", "kind": "SWITCH", "schemeCode": "119551",
                        "targetSchemeCode": "120503", "allUnits": true});
        assert!(matches!(
            run(v).unwrap().1,
            Request::Switch {
                qty: Quantity::All,
                ..
            }
        ));
    }

    /// SIP: day 1-28, start not in the past, minimum amount, positive instalment count.
    #[test]
    fn sip_rules() {
        let sip = |dom: Value, start: &str, count: Value| {
            json!({"investorId": "INV0001", "kind": "SIP", "schemeCode": "119551", "amount": "1000",
                   "dayOfMonth": dom, "startDate": start, "instalments": count,
                   "paymentInstrument": "aarav@okicici"})
        };
        let (_, req) = run(sip(json!(5), "2025-02-25", json!(12))).unwrap();
        let Request::Sip(s) = req else { panic!() };
        assert_eq!((s.day_of_month, s.instalments), (5, Some(12)));
        assert!(run(sip(json!(28), "2025-02-25", Value::Null)).is_ok());
        assert_eq!(
            fields(sip(json!(0), "2025-02-25", Value::Null)),
            ["dayOfMonth"]
        );
        assert_eq!(
            fields(sip(json!(29), "2025-02-25", Value::Null)),
            ["dayOfMonth"]
        );
        assert_eq!(
            fields(sip(json!(5.5), "2025-02-25", Value::Null)),
            ["dayOfMonth"]
        );
        assert_eq!(
            fields(sip(json!(5), "2025-02-24", Value::Null)),
            ["startDate"]
        );
        assert_eq!(
            fields(sip(json!(5), "25-02-2025", Value::Null)),
            ["startDate"]
        );
        assert_eq!(
            fields(sip(json!(5), "2025-02-25", json!(0))),
            ["instalments"]
        );
        let mut low = sip(json!(5), "2025-02-25", Value::Null);
        low["amount"] = json!("99.00");
        assert_eq!(fields(low), ["amount"]);
    }

    /// Payment instruments: VPAs must look like name@handle; other tokens must be printable.
    #[test]
    fn instruments() {
        assert!(check_instrument("aarav.sharma@okicici").is_ok());
        assert!(check_instrument("MANDATE-0001").is_ok());
        assert!(check_instrument("a@").is_err());
        assert!(check_instrument("@okicici").is_err());
        assert!(check_instrument("aarav sharma@ok").is_err());
        assert!(check_instrument("x@y.z").is_err());
        assert!(check_instrument("ab").is_err());
    }

    /// The investor id is read (and validated) on its own, before anything else.
    #[test]
    fn investor_first() {
        assert_eq!(
            investor_of(&json!({"investorId": "INV0001"}))
                .unwrap()
                .as_str(),
            "INV0001"
        );
        assert_eq!(investor_of(&json!({})).unwrap_err().field, "investorId");
        assert_eq!(
            investor_of(&json!({"investorId": "a b"}))
                .unwrap_err()
                .field,
            "investorId"
        );
        assert_eq!(
            investor_of(&json!({"investorId": 7})).unwrap_err().field,
            "investorId"
        );
    }
}
