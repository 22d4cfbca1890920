//! Exit-load schedules: per-scheme bands of holding period → load percent, as data.

use nivesh_domain::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Highest load percent a band may carry.
///
/// Real loads are single-digit percentages; the cap is set where it is because it is what
/// makes `exit_load <= gross` provable for every rounding mode (a lot's load rounds up by at
/// most half a paisa, which a load of at most half its value can always absorb). A typo such
/// as `100` for `1.00` is rejected instead of wiping out a redemption.
pub const MAX_LOAD_PCT: Decimal = Decimal::from_parts(50, 0, 0, false, 0);

/// Most decimal places a load percent may have (after dropping trailing zeros). Published
/// loads have at most 4 (`0.0045`); the bound keeps the exact integer maths within 128 bits.
const MAX_LOAD_PLACES: u32 = 10;

/// Days held in `[min_days_held, max_days_held)` pay `load_pct` percent of the value redeemed.
/// `max_days_held: None` means "and beyond".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoadBand {
    /// Inclusive.
    pub min_days_held: u32,
    /// Exclusive; `None` for an open-ended last band.
    pub max_days_held: Option<u32>,
    /// Percent, e.g. `1` for 1 %, `0.0070` for 0.0070 %.
    pub load_pct: Decimal,
}

impl LoadBand {
    pub fn new(min_days_held: u32, max_days_held: Option<u32>, load_pct: Decimal) -> Self {
        LoadBand {
            min_days_held,
            max_days_held,
            load_pct,
        }
    }

    pub fn contains(&self, days_held: u32) -> bool {
        days_held >= self.min_days_held && self.max_days_held.is_none_or(|max| days_held < max)
    }
}

/// A scheme's exit load by holding period. Validated on construction and on deserialisation:
/// bands do not overlap, each is non-empty, loads are within `0..=`[`MAX_LOAD_PCT`]. Gaps are
/// allowed and mean no load; the empty schedule is "nil exit load".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "RawSchedule", into = "RawSchedule")]
pub struct ExitLoadSchedule {
    /// Sorted by `min_days_held`.
    bands: Vec<LoadBand>,
}

/// The unvalidated wire form, so serde goes through [`ExitLoadSchedule::new`].
#[derive(Serialize, Deserialize)]
struct RawSchedule {
    bands: Vec<LoadBand>,
}

impl TryFrom<RawSchedule> for ExitLoadSchedule {
    type Error = Error;
    fn try_from(r: RawSchedule) -> Result<Self> {
        ExitLoadSchedule::new(r.bands)
    }
}

impl From<ExitLoadSchedule> for RawSchedule {
    fn from(s: ExitLoadSchedule) -> Self {
        RawSchedule { bands: s.bands }
    }
}

/// The SEBI graded exit load for liquid funds (in force since 20 October 2019), in percent,
/// for Day 1 ..= Day 6; nil from Day 7.
const LIQUID_GRADED_BASIS: [i64; 6] = [70, 65, 60, 55, 50, 45];

impl ExitLoadSchedule {
    /// Validates and sorts `bands`. Errors name the offending band.
    pub fn new(mut bands: Vec<LoadBand>) -> Result<Self> {
        let bad = |msg: String| Err(Error::InvalidLoadSchedule(msg));
        for b in &bands {
            if b.load_pct.is_sign_negative() && !b.load_pct.is_zero() {
                return bad(format!("load {} % is negative", b.load_pct));
            }
            if b.load_pct > MAX_LOAD_PCT {
                return bad(format!(
                    "load {} % exceeds the {MAX_LOAD_PCT} % cap (a typo for a smaller figure?)",
                    b.load_pct
                ));
            }
            if b.load_pct.normalize().scale() > MAX_LOAD_PLACES {
                return bad(format!(
                    "load {} % has more than {MAX_LOAD_PLACES} decimal places",
                    b.load_pct
                ));
            }
            if let Some(max) = b.max_days_held
                && max <= b.min_days_held
            {
                return bad(format!("band [{}, {max}) days is empty", b.min_days_held));
            }
        }
        bands.sort_by_key(|b| b.min_days_held);
        for pair in bands.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            match a.max_days_held {
                Some(max) if max <= b.min_days_held => {}
                _ => {
                    return bad(format!(
                        "bands starting at day {} and day {} overlap",
                        a.min_days_held, b.min_days_held
                    ));
                }
            }
        }
        Ok(ExitLoadSchedule { bands })
    }

    /// No exit load at all.
    pub fn nil() -> Self {
        Self::default()
    }

    /// `load_pct` percent if redeemed with fewer than `days` days held, nil from `days` on:
    /// `flat(1, 365)` is the typical equity "1 % within 365 days" (`days_held` 364 pays,
    /// 365 does not). A scheme whose offer document says "on or before 365 days" is
    /// `flat(1, 366)`.
    pub fn flat(load_pct: Decimal, days: u32) -> Result<Self> {
        Self::new(vec![LoadBand::new(0, Some(days), load_pct)])
    }

    /// The liquid-fund graded load: 0.0070 % on Day 1, 0.0065 % on Day 2, 0.0060 %, 0.0055 %,
    /// 0.0050 %, 0.0045 % on Day 6, nil from Day 7, where Day N is `days_held == N` and a
    /// same-day exit (`days_held == 0`) counts as Day 1 (see the [module docs](super)).
    pub fn liquid_graded() -> Self {
        let bands = LIQUID_GRADED_BASIS
            .iter()
            .zip(1u32..)
            .map(|(&basis, day)| {
                let min = if day == 1 { 0 } else { day };
                LoadBand::new(min, Some(day + 1), Decimal::new(basis, 4))
            })
            .collect();
        // Built directly: the constants satisfy every check in `new` (a test asserts it).
        ExitLoadSchedule { bands }
    }

    pub fn bands(&self) -> &[LoadBand] {
        &self.bands
    }

    /// The load percent for a holding of `days_held` days (zero outside every band).
    pub fn load_pct(&self, days_held: u32) -> Decimal {
        self.bands
            .iter()
            .find(|b| b.contains(days_held))
            .map_or(Decimal::ZERO, |b| b.load_pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// The liquid graded load charges per SEBI's table by day held, nil from day 7.
    #[test]
    fn liquid_graded_table() {
        let s = ExitLoadSchedule::liquid_graded();
        let cases = [
            (0, "0.0070"),
            (1, "0.0070"),
            (2, "0.0065"),
            (3, "0.0060"),
            (4, "0.0055"),
            (5, "0.0050"),
            (6, "0.0045"),
            (7, "0"),
            (400, "0"),
        ];
        for (days, want) in cases {
            assert_eq!(s.load_pct(days), pct(want), "day {days}");
        }
        assert_eq!(ExitLoadSchedule::new(s.bands().to_vec()).unwrap(), s);
    }

    /// A flat load applies strictly below its day count and not on it.
    #[test]
    fn flat_boundary() {
        let s = ExitLoadSchedule::flat(pct("1"), 365).unwrap();
        assert_eq!(s.load_pct(0), pct("1"));
        assert_eq!(s.load_pct(364), pct("1"));
        assert_eq!(s.load_pct(365), Decimal::ZERO);
        assert_eq!(ExitLoadSchedule::nil().load_pct(0), Decimal::ZERO);
    }

    /// Overlapping, empty, negative, oversized and over-precise bands are rejected with reasons.
    #[test]
    fn rejects_bad_schedules() {
        let cases = [
            (
                vec![
                    LoadBand::new(0, Some(10), pct("1")),
                    LoadBand::new(5, Some(20), pct("0.5")),
                ],
                "overlap",
            ),
            (
                vec![
                    LoadBand::new(0, None, pct("1")),
                    LoadBand::new(30, Some(40), pct("0.5")),
                ],
                "overlap",
            ),
            (vec![LoadBand::new(5, Some(5), pct("1"))], "empty"),
            (vec![LoadBand::new(0, Some(5), pct("-0.1"))], "negative"),
            (vec![LoadBand::new(0, Some(5), pct("50.01"))], "cap"),
            (
                vec![LoadBand::new(0, Some(5), pct("0.00000000001"))],
                "decimal places",
            ),
        ];
        for (bands, needle) in cases {
            match ExitLoadSchedule::new(bands.clone()) {
                Err(Error::InvalidLoadSchedule(msg)) => {
                    assert!(msg.contains(needle), "{bands:?}: {msg}")
                }
                other => panic!("{bands:?}: expected rejection, got {other:?}"),
            }
        }
        assert!(ExitLoadSchedule::flat(pct("1"), 0).is_err());
    }

    /// Unsorted bands with gaps are accepted and sorted; gaps carry no load.
    #[test]
    fn sorts_and_allows_gaps() {
        let s = ExitLoadSchedule::new(vec![
            LoadBand::new(90, None, pct("0.25")),
            LoadBand::new(0, Some(30), pct("2")),
        ])
        .unwrap();
        assert_eq!(s.bands()[0].min_days_held, 0);
        assert_eq!(s.load_pct(29), pct("2"));
        assert_eq!(s.load_pct(30), Decimal::ZERO);
        assert_eq!(s.load_pct(89), Decimal::ZERO);
        assert_eq!(s.load_pct(90), pct("0.25"));
        assert_eq!(s.load_pct(u32::MAX), pct("0.25"));
        assert_eq!(
            ExitLoadSchedule::new(vec![LoadBand::new(0, Some(5), pct("50"))])
                .unwrap()
                .load_pct(1),
            MAX_LOAD_PCT
        );
    }

    /// Serde round-trips a schedule and validates on the way in.
    #[test]
    fn serde_validates() {
        let s = ExitLoadSchedule::flat(pct("1"), 365).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"bands":[{"min_days_held":0,"max_days_held":365,"load_pct":"1"}]}"#
        );
        assert_eq!(serde_json::from_str::<ExitLoadSchedule>(&json).unwrap(), s);
        let overlapping = r#"{"bands":[{"min_days_held":0,"max_days_held":10,"load_pct":"1"},
            {"min_days_held":5,"max_days_held":null,"load_pct":"1"}]}"#;
        let e = serde_json::from_str::<ExitLoadSchedule>(overlapping).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
    }
}
