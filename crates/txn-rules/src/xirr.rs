//! XIRR: the annual rate `r` at which dated cash flows have zero net present value,
//! `Σ aᵢ / (1 + r)^((dᵢ − d₀) / 365) = 0`, with the Actual/365 day count of Excel's `XIRR`,
//! which is what investors check our figure against.
//!
//! The estimate is computed on `f64`. That is the one place in the crate where floating point
//! is acceptable: a rate is not money, nothing is paid from it, it is an iterative estimate of
//! an irrational number in general, and it is reported to 6 places (0.0001 %). The result is
//! returned as a `Decimal` so it serialises like every other number we publish.
//!
//! Method: the search runs on the log-growth `x = ln(1 + r)`, where the NPV is a smooth sum
//! of exponentials `Σ aᵢ·e^(−x·tᵢ)`, continuous for every real `x` and well-conditioned even for
//! a rate of −99.999 % (in `r` itself the NPV has a pole at −100 % and a step of 10⁻¹² in `r`
//! there moves it by cents). Newton–Raphson from 10 % first (fast, what spreadsheets do); if it
//! diverges or lands on a point that is not a root, bisection on a bracket found by scanning a
//! fixed grid outward from zero (rates from about −99.9999999 % to +10⁶ %), so when several
//! rates exist the one nearest zero is reported (a rate outside the grid is found only if Newton
//! converges to it). Rejected: Newton alone (diverges on flows with
//! a flat NPV near the guess), and bisection alone (slower, and needs the grid anyway).
//! A candidate is accepted only if its NPV is zero to within 10⁻⁹ of the size of the discounted
//! flows, so a stalled iteration is never reported as a rate.

use chrono::NaiveDate;
use nivesh_domain::Decimal;
use rust_decimal::RoundingStrategy;
use rust_decimal::prelude::ToPrimitive;

/// Places the result is rounded to (half away from zero).
pub const XIRR_PLACES: u32 = 6;

const MAX_NEWTON_STEPS: usize = 100;
const MAX_BISECTION_STEPS: usize = 300;
/// Convergence on `x`, relative: far finer than the 6 places reported.
const X_TOLERANCE: f64 = 1e-14;
/// An accepted root's NPV, relative to `Σ |aᵢ·e^(−x·tᵢ)|`.
const NPV_TOLERANCE: f64 = 1e-9;

/// The annualised internal rate of return of `cashflows` (negative = money invested, positive
/// = money received), e.g. `0.100000` for 10 %, rounded to 6 places and held at scale 6
/// (fewer places only for absurd rates above ~10²², which a `Decimal` cannot hold to 6 places).
/// A rate within half a millionth of −100 % is reported as `-1.000000`.
///
/// `None` when there is no rate: fewer than one negative and one positive flow, a non-finite
/// amount, or flows whose NPV never crosses zero above −100 % (e.g. `+100, −100, +100` at
/// yearly steps), or a rate beyond `Decimal`'s range (~7.9 × 10²⁸, e.g. +20 % in one day).
/// Flows need not be sorted; days are counted from the earliest date.
pub fn xirr(cashflows: &[(NaiveDate, Decimal)]) -> Option<Decimal> {
    let first = cashflows.iter().map(|(d, _)| *d).min()?;
    let flows: Vec<(f64, f64)> = cashflows
        .iter()
        .map(|(d, a)| {
            let years = (*d - first).num_days() as f64 / 365.0;
            a.to_f64().filter(|x| x.is_finite()).map(|x| (years, x))
        })
        .collect::<Option<_>>()?;
    if !flows.iter().any(|&(_, a)| a > 0.0) || !flows.iter().any(|&(_, a)| a < 0.0) {
        return None;
    }
    let is_root = |x: f64| npv(&flows, x).is_some_and(|(v, size)| v.abs() <= NPV_TOLERANCE * size);
    let x = newton(&flows)
        .filter(|&x| is_root(x))
        .or_else(|| bisection(&flows).filter(|&x| is_root(x)))?;
    let rate = x.exp_m1();
    let mut d = Decimal::try_from(rate)
        .ok()?
        .round_dp_with_strategy(XIRR_PLACES, RoundingStrategy::MidpointAwayFromZero);
    // 6 places, so a rate of exactly zero still prints as "0.000000".
    d.rescale(XIRR_PLACES);
    Some(d)
}

/// NPV at log-growth `x` and the total size of the discounted flows, or `None` where either is
/// not finite.
fn npv(flows: &[(f64, f64)], x: f64) -> Option<(f64, f64)> {
    let (v, size) = flows.iter().fold((0.0, 0.0), |(v, size), &(t, a)| {
        let term = a * (-x * t).exp();
        (v + term, size + term.abs())
    });
    (v.is_finite() && size.is_finite()).then_some((v, size))
}

/// d NPV / dx.
fn npv_derivative(flows: &[(f64, f64)], x: f64) -> Option<f64> {
    let v: f64 = flows.iter().map(|&(t, a)| -t * a * (-x * t).exp()).sum();
    v.is_finite().then_some(v)
}

fn newton(flows: &[(f64, f64)]) -> Option<f64> {
    // ln(1.10): a 10 % guess.
    let mut x = 0.1f64.ln_1p();
    for _ in 0..MAX_NEWTON_STEPS {
        let (f, _) = npv(flows, x)?;
        let df = npv_derivative(flows, x)?;
        if df == 0.0 {
            return None;
        }
        let next = x - f / df;
        if !next.is_finite() {
            return None;
        }
        if (next - x).abs() <= X_TOLERANCE * next.abs().max(1.0) {
            return Some(next);
        }
        x = next;
    }
    None
}

/// Log-growth grid points, each side ordered outward from zero. `up` ends at ln(10⁴ + 1)
/// (+10⁶ %), `down` at −21 (about −99.9999999 %).
const UP: [f64; 14] = [
    0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.6, 6.9, 9.22,
];
const DOWN: [f64; 16] = [
    0.0, -0.05, -0.1, -0.2, -0.35, -0.5, -0.75, -1.0, -1.5, -2.0, -3.0, -5.0, -7.0, -10.0, -14.0,
    -21.0,
];

fn bisection(flows: &[(f64, f64)]) -> Option<f64> {
    let f = |x: f64| npv(flows, x).map(|(v, _)| v);
    let bracket = |pts: &[f64]| -> Option<(f64, f64)> {
        pts.windows(2).find_map(|w| {
            let (a, b) = (w[0], w[1]);
            let (fa, fb) = (f(a)?, f(b)?);
            (fa == 0.0 || fb == 0.0 || fa.signum() != fb.signum()).then_some((a, b))
        })
    };
    // Prefer whichever side's bracket lies nearer zero (its outer end is closer); the
    // positive side on a tie, as a gain is the likelier answer.
    let (mut lo, mut hi) = match (bracket(&UP), bracket(&DOWN)) {
        (Some(u), Some(d)) if d.1.abs() < u.1.abs() => d,
        (Some(u), _) => u,
        (None, Some(d)) => d,
        (None, None) => return None,
    };
    let mut f_lo = f(lo)?;
    if f_lo == 0.0 {
        return Some(lo);
    }
    for _ in 0..MAX_BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        // Stop when the interval can no longer shrink in f64.
        if mid == lo || mid == hi {
            return Some(mid);
        }
        let f_mid = f(mid)?;
        if f_mid == 0.0 {
            return Some(mid);
        }
        if f_mid.signum() == f_lo.signum() {
            lo = mid;
            f_lo = f_mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The bisection fallback alone finds the same root Newton does on a simple case.
    #[test]
    fn bisection_agrees_with_newton() {
        let flows = [(0.0, -10_000.0), (1.0, 11_000.0)];
        let b = bisection(&flows).unwrap().exp_m1();
        assert!((b - 0.1).abs() < 1e-9, "{b}");
        let n = newton(&flows).unwrap().exp_m1();
        assert!((n - 0.1).abs() < 1e-9, "{n}");
    }

    /// With two rates (10 % and 20 %) the bisection fallback reports the one nearer zero.
    #[test]
    fn bisection_prefers_the_root_nearest_zero() {
        // −100 + 230·v − 132·v² = 0 at v = 1/1.1 and v = 1/1.2.
        let flows = [(0.0, -100.0), (1.0, 230.0), (2.0, -132.0)];
        let b = bisection(&flows).unwrap().exp_m1();
        assert!((b - 0.1).abs() < 1e-9, "{b}");
    }

    /// A near-total loss (−99.999 %) is found despite the NPV's pole at −100 % in `r`.
    #[test]
    fn near_total_loss_resolves() {
        // Invest 1,00,000, get back 1 a year later: 1 + r = 10⁻⁵.
        let r = xirr(&[
            (d(2025, 1, 1), Decimal::from(-100_000)),
            (d(2026, 1, 1), Decimal::from(1)),
        ])
        .unwrap();
        assert_eq!(r, "-0.99999".parse::<Decimal>().unwrap());
    }
}
