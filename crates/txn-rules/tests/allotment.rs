//! Allotment and redemption maths checked against an independent model written here in integer
//! paise and milli-units (`i128`), without calling the crate's helpers or the domain's maths.

use chrono::{NaiveDate, TimeDelta};
use nivesh_domain::{Amount, Decimal, Nav, RoundingMode, Units};
use nivesh_txn_rules::{
    Error, ExitLoadSchedule, LoadBand, Lot, UnitsRounding, allot_purchase, redeem_all_fifo,
    redeem_amount_fifo, redeem_fifo,
};
use proptest::prelude::*;

// ---- the independent model --------------------------------------------------------------

fn paise(a: Amount) -> i128 {
    // Through the decimal string, not `to_paise`, so the model shares no code path with it.
    let s = a.to_string();
    let (r, p) = s.split_once('.').unwrap();
    r.parse::<i128>().unwrap() * 100 + p.parse::<i128>().unwrap()
}

fn milli(u: Units) -> i128 {
    let s = u.to_string();
    let (w, f) = s.split_once('.').unwrap();
    w.parse::<i128>().unwrap() * 1000 + f.parse::<i128>().unwrap()
}

/// `num / den` rounded half up, `num, den > 0`, by comparing twice the remainder.
fn half_up(num: i128, den: i128) -> i128 {
    let (q, r) = (num / den, num % den);
    if 2 * r >= den { q + 1 } else { q }
}

fn amount(p: i128) -> Amount {
    Amount::parse(&format!("{}.{:02}", p / 100, p % 100)).unwrap()
}

fn units(m: i128) -> Units {
    Units::parse(&format!("{}.{:03}", m / 1000, m % 1000)).unwrap()
}

/// A NAV of `mantissa / 10^scale`, built from text.
fn nav(mantissa: i128, scale: u32) -> Nav {
    Nav::new(Decimal::from_i128_with_scale(mantissa, scale)).unwrap()
}

fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

fn day(off: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + TimeDelta::days(i64::from(off))
}

// ---- purchases --------------------------------------------------------------------------

fn arb_nav() -> impl Strategy<Value = (i128, u32)> {
    // From 0.000001 to 10^9 in value, up to 6 places.
    (1i128..1_000_000_000, 0u32..=6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Duty is 0.005 % inclusive rounded half-up, duty + net == gross exactly, and the
    /// truncated units never exceed (amount − duty) / NAV and are within 0.001 of it.
    #[test]
    fn purchase_matches_model(p in 1i128..10_000_000_000_000, (m, s) in arb_nav()) {
        let gross = amount(p);
        let n = nav(m, s);
        // Exact duty is p·5/100005 paise; half-up means |duty·100005 − 5p| ≤ 100005/2, and
        // never a tie because 100005 is odd (checked as strict).
        let want_duty = half_up(5 * p, 100_005);
        prop_assert!((2 * (want_duty * 100_005 - 5 * p)).abs() < 100_005);
        let net = p - want_duty;
        // Exact units = net/100 / (m/10^s) = net·10^s / (100 m); in milli: net·10^(s+1) / m.
        let scaled = net * pow10(s + 1);
        match allot_purchase(gross, n, UnitsRounding::default()) {
            Ok(a) => {
                prop_assert_eq!(paise(a.stamp_duty), want_duty);
                prop_assert_eq!(paise(a.stamp_duty) + paise(a.net_invested), paise(a.gross));
                prop_assert_eq!(a.gross, gross);
                prop_assert_eq!(a.nav, n);
                let u = milli(a.units);
                prop_assert!(u >= 1);
                prop_assert!(u * m <= scaled, "units exceed (amount - duty) / NAV");
                prop_assert!(scaled < (u + 1) * m, "units more than 0.001 short");
            }
            Err(Error::NoUnitsAllotted { .. }) => prop_assert!(scaled < m, "refused a buyable amount"),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    /// Half-up units are the nearest thousandth, and duty rounding follows its own knob.
    #[test]
    fn purchase_rounding_knobs(p in 1i128..10_000_000_000_000, (m, s) in arb_nav()) {
        let rounding = UnitsRounding { units: RoundingMode::HalfUp, stamp_duty: RoundingMode::Truncate };
        let want_duty = 5 * p / 100_005;
        let scaled = (p - want_duty) * pow10(s + 1);
        match allot_purchase(amount(p), nav(m, s), rounding) {
            Ok(a) => {
                prop_assert_eq!(paise(a.stamp_duty), want_duty);
                let u = milli(a.units);
                prop_assert!((2 * (u * m - scaled)).abs() <= m, "not the nearest thousandth");
            }
            Err(Error::NoUnitsAllotted { .. }) => prop_assert!(2 * scaled < m),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

// ---- redemptions ------------------------------------------------------------------------

/// A lot in model form: purchase-day offset and milli-units.
#[derive(Debug, Clone)]
struct MLot {
    off: u32,
    milli: i128,
}

/// Bands in model form: `(min, max, pct in ten-thousandths of a percent)`.
type MBands = Vec<(u32, Option<u32>, i128)>;

fn arb_bands() -> impl Strategy<Value = MBands> {
    (
        prop::collection::btree_set(0u32..500, 1..6),
        prop::collection::vec(0i128..=50_000, 6),
        any::<bool>(),
    )
        .prop_map(|(cuts, pcts, open_end)| {
            let cuts: Vec<u32> = cuts.into_iter().collect();
            let mut bands: MBands = cuts
                .windows(2)
                .zip(&pcts)
                .map(|(w, &q)| (w[0], Some(w[1]), q))
                .collect();
            if open_end {
                bands.push((*cuts.last().unwrap(), None, pcts[5]));
            }
            bands
        })
}

fn schedule(bands: &MBands) -> ExitLoadSchedule {
    ExitLoadSchedule::new(
        bands
            .iter()
            .map(|&(lo, hi, q)| LoadBand::new(lo, hi, Decimal::new(q as i64, 4)))
            .collect(),
    )
    .unwrap()
}

fn model_pct(bands: &MBands, days: u32) -> i128 {
    bands
        .iter()
        .find(|&&(lo, hi, _)| days >= lo && hi.is_none_or(|h| days < h))
        .map_or(0, |&(_, _, q)| q)
}

/// Lots bought 0..600 days before the redemption date (offset 600), often within the week.
fn arb_lots() -> impl Strategy<Value = Vec<MLot>> {
    prop::collection::vec(
        (prop_oneof![0u32..8, 0u32..600], 0i128..20_000_000).prop_map(|(back, milli)| MLot {
            off: 600 - back,
            milli,
        }),
        1..8,
    )
}

const ON: u32 = 600;

fn to_lots(ls: &[MLot]) -> Vec<Lot> {
    ls.iter()
        .map(|l| Lot {
            purchased_on: day(l.off),
            units: units(l.milli),
            cost_nav: nav(1000, 2),
        })
        .collect()
}

/// Expected FIFO: (lot index, milli taken) in order of purchase date, ties by index.
fn model_fifo(ls: &[MLot], mut want: i128) -> Vec<(usize, i128)> {
    let mut idx: Vec<usize> = (0..ls.len()).collect();
    idx.sort_by(|&a, &b| ls[a].off.cmp(&ls[b].off).then(a.cmp(&b)));
    let mut out = Vec::new();
    for i in idx {
        if want == 0 {
            break;
        }
        let take = want.min(ls[i].milli);
        if take > 0 {
            out.push((i, take));
            want -= take;
        }
    }
    out
}

/// Checks a redemption of `want` milli-units against the model, end to end.
fn check_redemption(
    ls: &[MLot],
    want: i128,
    (m, s): (i128, u32),
    bands: &MBands,
    r: &nivesh_txn_rules::Redemption,
) -> Result<(), TestCaseError> {
    let fifo = model_fifo(ls, want);
    prop_assert_eq!(r.consumed.len(), fifo.len());
    let mut load_total = 0;
    for (c, &(i, take)) in r.consumed.iter().zip(&fifo) {
        let days = ON - ls[i].off;
        let q = model_pct(bands, days);
        // value in paise = take·m / 10^(s+1); load = value · q/10^4 / 100.
        let load = half_up(take * m * q, pow10(s + 7));
        prop_assert_eq!(c.lot_index, i);
        prop_assert_eq!(milli(c.units), take);
        prop_assert_eq!(c.days_held, days);
        prop_assert_eq!(c.load_pct, Decimal::new(q as i64, 4));
        prop_assert_eq!(paise(c.load), load);
        load_total += load;
    }
    let consumed: i128 = r.consumed.iter().map(|c| milli(c.units)).sum();
    prop_assert_eq!(consumed, want, "consumption does not sum to the request");
    prop_assert_eq!(milli(r.units), want);
    let gross = half_up(want * m, pow10(s + 1));
    prop_assert_eq!(paise(r.gross), gross);
    prop_assert_eq!(paise(r.exit_load), load_total);
    prop_assert_eq!(paise(r.net), gross - load_total);

    // Remaining + consumed == original, lot by lot; remaining keeps date and cost NAV.
    for (i, l) in ls.iter().enumerate() {
        let used: i128 = fifo.iter().filter(|&&(j, _)| j == i).map(|&(_, t)| t).sum();
        let left: i128 = r
            .remaining_lots
            .iter()
            .filter(|x| x.purchased_on == day(l.off))
            .map(|x| milli(x.units))
            .sum();
        let same_day_total: i128 = ls.iter().filter(|x| x.off == l.off).map(|x| x.milli).sum();
        let same_day_used: i128 = fifo
            .iter()
            .filter(|&&(j, _)| ls[j].off == l.off)
            .map(|&(_, t)| t)
            .sum();
        prop_assert_eq!(
            left,
            same_day_total - same_day_used,
            "lots of day {} do not add up",
            l.off
        );
        prop_assert!(used <= l.milli);
    }
    prop_assert!(
        r.remaining_lots
            .iter()
            .all(|x| milli(x.units) > 0 && x.cost_nav == nav(1000, 2))
    );
    let remaining: i128 = r.remaining_lots.iter().map(|x| milli(x.units)).sum();
    let held: i128 = ls.iter().map(|l| l.milli).sum();
    prop_assert_eq!(remaining + want, held);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// FIFO by units matches the model: consumption, per-lot loads by band, totals, remainder.
    #[test]
    fn redeem_units_matches_model(
        ls in arb_lots(), pick in any::<u64>(), nv in arb_nav(), bands in arb_bands()
    ) {
        let held: i128 = ls.iter().map(|l| l.milli).sum();
        prop_assume!(held > 0);
        let want = 1 + i128::from(pick) % held;
        let r = redeem_fifo(&to_lots(&ls), units(want), nav(nv.0, nv.1), day(ON), &schedule(&bands)).unwrap();
        check_redemption(&ls, want, nv, &bands, &r)?;
    }

    /// Asking for more than is held is refused with both figures.
    #[test]
    fn redeem_more_than_held_fails(ls in arb_lots(), extra in 1i128..1_000_000, nv in arb_nav()) {
        let held: i128 = ls.iter().map(|l| l.milli).sum();
        let e = redeem_fifo(&to_lots(&ls), units(held + extra), nav(nv.0, nv.1), day(ON), &ExitLoadSchedule::nil());
        prop_assert_eq!(e, Err(Error::InsufficientUnits { requested: units(held + extra), held: units(held) }));
    }

    /// "All units" consumes every lot and leaves nothing.
    #[test]
    fn redeem_all_matches_model(ls in arb_lots(), nv in arb_nav(), bands in arb_bands()) {
        let held: i128 = ls.iter().map(|l| l.milli).sum();
        prop_assume!(held > 0);
        let r = redeem_all_fifo(&to_lots(&ls), nav(nv.0, nv.1), day(ON), &schedule(&bands)).unwrap();
        prop_assert!(r.remaining_lots.is_empty());
        check_redemption(&ls, held, nv, &bands, &r)?;
    }

    /// By amount: the fewest thousandths whose value covers the amount (gross ≥ amount), capped
    /// at the holding, and refused above the holding's value.
    #[test]
    fn redeem_amount_matches_model(ls in arb_lots(), pick in any::<u64>(), nv in arb_nav(), bands in arb_bands()) {
        let (m, s) = nv;
        let held: i128 = ls.iter().map(|l| l.milli).sum();
        let available = half_up(held * m, pow10(s + 1));
        prop_assume!(available > 0);
        let want_amount = 1 + i128::from(pick) % available;
        let r = redeem_amount_fifo(&to_lots(&ls), amount(want_amount), nav(m, s), day(ON), &schedule(&bands)).unwrap();
        let u = milli(r.units);
        // Model: smallest u with u·m ≥ amount·10^(s+1), else the whole holding.
        let target = want_amount * pow10(s + 1);
        let ceil = (target + m - 1) / m;
        prop_assert_eq!(u, ceil.min(held));
        prop_assert!(paise(r.gross) >= want_amount, "gross {} < asked {}", r.gross, want_amount);
        check_redemption(&ls, u, nv, &bands, &r)?;

        let too_much = redeem_amount_fifo(&to_lots(&ls), amount(available + 1), nav(m, s), day(ON), &schedule(&bands));
        prop_assert_eq!(too_much, Err(Error::InsufficientValue { requested: amount(available + 1), available: amount(available) }));
    }
}

/// A lot bought after the redemption date cannot be consumed, but an earlier lot can.
#[test]
fn future_lot_is_not_held() {
    let ls = [
        MLot {
            off: ON + 1,
            milli: 5000,
        },
        MLot {
            off: ON - 1,
            milli: 2000,
        },
    ];
    let lots = to_lots(&ls);
    let n = nav(1000, 2);
    let nil = ExitLoadSchedule::nil();
    assert!(redeem_fifo(&lots, units(2000), n, day(ON), &nil).is_ok());
    assert_eq!(
        redeem_fifo(&lots, units(2001), n, day(ON), &nil),
        Err(Error::LotAfterRedemption {
            lot_index: 0,
            purchased_on: day(ON + 1),
            on: day(ON)
        })
    );
}
