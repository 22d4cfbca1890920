//! Property tests for the exact-decimal wire form.

mod common;

use nivesh_events::{AvroCodec, NavPublished, WireDecimal};
use proptest::prelude::*;
use rust_decimal::Decimal;

/// rust_decimal's mantissa is 96 bits: the values beyond i64 that it can still hold.
fn beyond_i64() -> impl Strategy<Value = i128> {
    let max96 = (1i128 << 96) - 1;
    prop_oneof![
        (i128::from(i64::MAX) + 1)..=max96,
        -max96..=(i128::from(i64::MIN) - 1)
    ]
}

/// `m * 10^-s` in a unique form: trailing zeros of `m` moved into `s`, zero as (0, 0).
fn stripped(mut m: i128, mut s: i64) -> (i128, i64) {
    if m == 0 {
        return (0, 0);
    }
    while m % 10 == 0 {
        m /= 10;
        s -= 1;
    }
    (m, s)
}

proptest! {
    /// Any decimal whose mantissa fits i64 maps to exactly (mantissa, scale) and back, scale kept.
    #[test]
    fn decimal_round_trips_through_wire_form(unscaled in any::<i64>(), scale in 0u32..=28) {
        let d = Decimal::from_i128_with_scale(i128::from(unscaled), scale);
        let wire = WireDecimal::try_from(d).unwrap();
        prop_assert_eq!(wire, WireDecimal { unscaled, scale: scale as i32 });
        let back = Decimal::try_from(wire).unwrap();
        prop_assert_eq!(back, d);
        prop_assert_eq!(back.scale(), scale);
        prop_assert_eq!(back.to_string(), d.to_string());
    }

    /// A mantissa beyond i64 is refused, never truncated or rounded.
    #[test]
    fn mantissa_beyond_i64_is_out_of_range(unscaled in beyond_i64(), scale in 0u32..=28) {
        let d = Decimal::from_i128_with_scale(unscaled, scale);
        prop_assert!(WireDecimal::try_from(d).is_err());
    }

    /// Every wire value (any scale) becomes a decimal equal to unscaled * 10^-scale, or an error.
    #[test]
    fn wire_to_decimal_is_exact_or_an_error(unscaled in any::<i64>(), scale in -40i32..=60) {
        match Decimal::try_from(WireDecimal { unscaled, scale }) {
            Ok(d) => {
                // Compare (mantissa, exponent) with trailing zeros stripped: exact, no overflow,
                // and independent of rust_decimal's own arithmetic.
                prop_assert_eq!(stripped(d.mantissa(), i64::from(d.scale())), stripped(i128::from(unscaled), i64::from(scale)));
            }
            Err(_) => prop_assert!(!(0..=28).contains(&scale), "in-range wire value refused: {unscaled} scale {scale}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary NAVs survive the full codec path with value and scale intact.
    #[test]
    fn any_nav_survives_the_codec(unscaled in any::<i64>(), scale in 0u32..=28) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut event = common::published();
        event.nav = Decimal::from_i128_with_scale(i128::from(unscaled), scale);
        let codec = AvroCodec::single_object();
        let back: NavPublished = runtime.block_on(async {
            codec.decode(&codec.encode(&event).await.unwrap()).await.unwrap()
        });
        prop_assert_eq!(back.nav.to_string(), event.nav.to_string());
        prop_assert_eq!(back, event);
    }
}
