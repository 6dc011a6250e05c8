//! pcapng timestamps as Python computes them: `ticks / units + offset`.
//!
//! Python's int / int true division is correctly rounded whatever the sizes, and if_tsresol
//! allows units up to 10^127 or 2^127. An f64 division matches it only while both operands
//! are exact in f64, so larger ticks (nanosecond clocks pass 2^53) and units take an integer
//! long division that keeps a sticky bit and rounds once.

/// 10^127 < 2^422; the long division's remainder doubles it once, so 512 bits always suffice.
const LIMBS: usize = 8;
const EXACT_MAX: u64 = 1 << 53; // integers up to here are exact in f64
const QUOTIENT_MIN: u64 = 1 << 54; // 55 quotient bits: 53 kept, a round bit, a sticky bit

/// Timestamp ticks per second of a pcapng interface (if_tsresol).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Units {
    /// 2^e ticks per second (e <= 127): dividing by it only scales
    Pow2(u32),
    /// 10^e ticks per second for e <= 19 (fits u64)
    Small(u64),
    /// 10^e for e >= 20: always more than any u64 tick count
    Big(Wide),
}

/// An unsigned integer of LIMBS 64-bit limbs, least significant first.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Wide([u64; LIMBS]);

impl Units {
    pub(crate) const MICROSECONDS: Units = Units::Small(1_000_000);

    /// The units an if_tsresol byte names: high bit clear, 10^-n s; set, 2^-n s.
    pub(crate) fn from_tsresol(byte: u8) -> Units {
        let exponent = u32::from(byte & 0x7F);
        if byte & 0x80 != 0 {
            Units::Pow2(exponent)
        } else if let Some(units) = 10u64.checked_pow(exponent) {
            Units::Small(units)
        } else {
            Units::Big(Wide::pow10(exponent))
        }
    }

    /// `ticks / units` correctly rounded, as Python's true division gives it.
    pub(crate) fn seconds(&self, ticks: u64) -> f64 {
        match self {
            // Rounding ticks to f64, then scaling by a power of two, rounds once.
            Units::Pow2(exponent) => ticks as f64 * pow2_neg(*exponent),
            Units::Small(units) if ticks <= EXACT_MAX && *units <= EXACT_MAX => {
                ticks as f64 / *units as f64
            }
            Units::Small(units) => ratio_u64(ticks, *units),
            Units::Big(units) => ratio_wide(ticks, units),
        }
    }
}

/// Python's `int / int + int`: the quotient rounded, then the offset converted and added.
pub(crate) fn timestamp(units: &Units, ticks: u64, offset: i64) -> f64 {
    units.seconds(ticks) + offset as f64
}

/// 2^-exponent, exact for exponent <= 1022.
fn pow2_neg(exponent: u32) -> f64 {
    f64::from_bits(u64::from(1023u32.saturating_sub(exponent)) << 52)
}

/// Rounds `quotient` (at least 55 bits) to f64, a nonzero remainder breaking ties upwards.
fn round_sticky(quotient: u64, sticky: bool) -> f64 {
    (quotient | u64::from(sticky)) as f64
}

/// n / d correctly rounded, for any d >= 1 of 64 bits.
fn ratio_u64(n: u64, d: u64) -> f64 {
    let (Some(whole), Some(rest)) = (n.checked_div(d), n.checked_rem(d)) else {
        return f64::NAN; // d == 0: if_tsresol never names it
    };
    if whole >= QUOTIENT_MIN {
        return round_sticky(whole, rest != 0);
    }
    // Extend the quotient with fraction bits until it holds 55 significant bits.
    let shift = 55 - (64 - whole.leading_zeros());
    let (fraction, sticky) = if rest.leading_zeros() >= shift {
        let scaled = rest << shift;
        (scaled / d, scaled % d != 0)
    } else {
        let scaled = u128::from(rest) << shift;
        let d = u128::from(d);
        // rest < d, so the quotient is below 2^shift <= 2^55
        (
            u64::try_from(scaled / d).unwrap_or(u64::MAX),
            scaled % d != 0,
        )
    };
    round_sticky((whole << shift) | fraction, sticky) * pow2_neg(shift)
}

/// n / d correctly rounded, for d >= 2^64 > n: binary long division of 55 quotient bits.
fn ratio_wide(n: u64, d: &Wide) -> f64 {
    if n == 0 {
        return 0.0;
    }
    // Start one bit short of d, so the remainder is below it and the quotient 0.
    let mut shift = d.bits().saturating_sub(65 - n.leading_zeros());
    let mut rest = Wide::from_u64_shifted(n, shift);
    let mut quotient = 0u64;
    while quotient < QUOTIENT_MIN {
        rest.double();
        shift += 1;
        quotient <<= 1;
        if !rest.less_than(d) {
            rest.subtract(d);
            quotient |= 1;
        }
    }
    round_sticky(quotient, !rest.is_zero()) * pow2_neg(shift)
}

impl Wide {
    fn pow10(exponent: u32) -> Wide {
        let mut value = Wide::from_u64_shifted(1, 0);
        for _ in 0..exponent {
            let mut carry = 0u128;
            for limb in value.0.iter_mut() {
                let product = u128::from(*limb) * 10 + carry;
                *limb = product as u64; // the low half; the high half carries
                carry = product >> 64;
            }
        }
        value
    }

    /// n * 2^shift; bits beyond the top limb are lost (callers stay far below it).
    fn from_u64_shifted(n: u64, shift: u32) -> Wide {
        let mut limbs = [0u64; LIMBS];
        let (word, bit) = ((shift / 64) as usize, shift % 64);
        if let Some(low) = limbs.get_mut(word) {
            *low = n << bit;
        }
        if bit != 0 {
            if let Some(high) = limbs.get_mut(word + 1) {
                *high = n >> (64 - bit);
            }
        }
        Wide(limbs)
    }

    fn bits(&self) -> u32 {
        let mut bits = 0;
        for (index, limb) in self.0.iter().enumerate() {
            if *limb != 0 {
                bits = index as u32 * 64 + (64 - limb.leading_zeros());
            }
        }
        bits
    }

    fn double(&mut self) {
        let mut carry = 0;
        for limb in self.0.iter_mut() {
            let next = *limb >> 63;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
    }

    fn less_than(&self, other: &Wide) -> bool {
        self.0.iter().rev().cmp(other.0.iter().rev()).is_lt()
    }

    fn subtract(&mut self, other: &Wide) {
        let mut borrow = false;
        for (limb, sub) in self.0.iter_mut().zip(other.0.iter()) {
            let (value, b1) = limb.overflowing_sub(*sub);
            let (value, b2) = value.overflowing_sub(u64::from(borrow));
            *limb = value;
            borrow = b1 || b2;
        }
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|limb| *limb == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(byte: u8) -> Units {
        Units::from_tsresol(byte)
    }

    #[test]
    fn microseconds_below_2_pow_53_divide_directly() {
        assert_eq!(units(6).seconds(1_700_000_000_250_000), 1_700_000_000.25);
        assert_eq!(Units::MICROSECONDS, units(6));
    }

    #[test]
    fn ticks_beyond_2_pow_53_round_as_python() {
        // Python: (ticks / 10**e).hex(); the first of each pair differs from f64(t) / f64(d)
        let cases: [(u64, u8, u64); 12] = [
            (1_700_000_001_000_000_500, 9, 0x41d9_54fc_4040_0002),
            (1_700_000_000_123_456_789, 9, 0x41d9_54fc_4007_e6b7),
            (u64::MAX, 9, 0x4211_2e0b_e826_d695),
            (9_007_199_254_740_993, 9, 0x4161_2e0b_e826_d695),
            (3_268_915_474_697_261_104, 9, 0x41e8_5af6_2256_4ff7),
            (10_337_160_611_265_950_622, 9, 0x4203_4124_6d1a_20ab),
            (15_671_312_605_964_980_859, 1, 0x43b5_bf91_9418_43af),
            (11_786_724_583_858_527_635, 1, 0x43b0_5b7c_5b24_a009),
            (16_076_729_485_834_212_902, 3, 0x434c_8ed9_a313_9bf2),
            (7_385_186_738_177_993_010, 12, 0x415c_2c18_af3e_4ee9),
            (5_157_534_737_030_548_851, 12, 0x4153_aca7_af2b_822e),
            (u64::MAX, 19, 0x3ffd_83c9_4fb6_d2ac),
        ];
        for (ticks, exponent, bits) in cases {
            assert_eq!(
                units(exponent).seconds(ticks).to_bits(),
                bits,
                "{ticks} / 10^{exponent}"
            );
        }
    }

    #[test]
    fn huge_decimal_units_round_as_python() {
        // Python: (ticks / 10**e).hex()
        let cases: [(u64, u8, u64); 6] = [
            (u64::MAX, 127, 0x2991_5445_81b7_dec2),
            (1, 127, 0x2591_5445_81b7_dec2),
            (1_700_000_000_123_456_789, 20, 0x3f91_6872_b026_329c),
            (123_456_789, 40, 0x3950_068e_3596_f1a7),
            (u64::MAX, 22, 0x3f5e_3920_1017_5ee6),
            (12_345_678_901_234_567_891, 23, 0x3f20_2e85_be18_0b74),
        ];
        for (ticks, exponent, bits) in cases {
            assert_eq!(
                units(exponent).seconds(ticks).to_bits(),
                bits,
                "{ticks} / 10^{exponent}"
            );
        }
    }

    #[test]
    fn power_of_two_units_scale_the_rounded_ticks() {
        assert_eq!(units(0x8A).seconds(3 * 1024 + 512), 3.5);
        assert_eq!(
            units(0xFF).seconds(u64::MAX),
            (u64::MAX as f64) / 2f64.powi(127)
        );
        assert_eq!(units(0x80).seconds(7), 7.0);
    }

    #[test]
    fn zero_ticks_are_zero_seconds_in_every_unit() {
        for byte in [0, 6, 9, 19, 20, 127, 0x80, 0xFF] {
            assert_eq!(units(byte).seconds(0), 0.0);
        }
    }

    #[test]
    fn offset_is_added_after_rounding() {
        assert_eq!(timestamp(&units(6), 2_500_000, 1000), 1002.5);
        assert_eq!(timestamp(&units(6), 0, -5), -5.0);
    }
}
