//! Allocation-free parsing of the numbers found in market data: decimals, integers and epoch timestamps.

use std::str::FromStr;

use crate::model::{Decimal, TsNs};

/// Parses a decimal such as `61837.63000000` (sign optional) exactly as `Decimal::from_str` would, keeping the
/// scale (`"0.010"` stays `0.010`). Up to 18 significant digits take a fast path (8 digits at a time, SWAR) that
/// builds the decimal from its mantissa and scale; anything else (more digits, exponents, …) falls back to
/// `Decimal::from_str`.
#[inline]
pub fn parse_decimal(s: &[u8]) -> Option<Decimal> {
    let mut i = 0;
    match scan_decimal(s, &mut i) {
        Some(d) if i == s.len() => Some(d),
        _ => parse_decimal_slow(s),
    }
}

pub(crate) const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

pub(crate) const POW10: [u64; 19] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
];

/// Loads up to 8 bytes at `i` little-endian (missing bytes are zero, which is not a digit).
#[inline(always)]
pub(crate) fn load8(s: &[u8], i: usize) -> u64 {
    // One 8-byte load; the short tail out of line, so that the compiler never merges the two into a memcpy.
    match s.get(i..).and_then(|r| r.first_chunk::<8>()) {
        Some(b) => u64::from_le_bytes(*b),
        None => load8_tail(s, i),
    }
}

#[cold]
#[inline(never)]
fn load8_tail(s: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    let rest = s.get(i..).unwrap_or(&[]);
    let n = rest.len().min(8);
    a[..n].copy_from_slice(&rest[..n]);
    u64::from_le_bytes(a)
}

/// Value of 8 digit values (0..=9, one per byte, first digit in the lowest byte).
#[inline(always)]
pub(crate) fn swar8(v: u64) -> u64 {
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    ((v & 0x0000_00FF_0000_00FF)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32))))
        >> 32
}

/// Parses the run of ASCII digits at `s[*i..]`, advancing `*i` past it: (value, number of digits). `None` if the
/// value does not fit in a u64.
#[inline(always)]
pub fn scan_digits(s: &[u8], i: &mut usize) -> Option<(u64, u32)> {
    let mut value = 0u64;
    let mut count = 0u32;
    loop {
        let t = load8(s, *i) ^ ASCII_ZEROS;
        let non_digit = (t.wrapping_add(0x0606_0606_0606_0606) | t) & 0xF0F0_F0F0_F0F0_F0F0;
        let n = non_digit.trailing_zeros() / 8;
        if n == 0 {
            return Some((value, count));
        }
        let chunk = swar8(t << (8 * (8 - n)));
        value = value.checked_mul(POW10[n as usize])?.checked_add(chunk)?;
        count += n;
        *i += n as usize;
        if n < 8 {
            return Some((value, count));
        }
    }
}

/// Parses `[-]digits[.digits]` (at most 18 digits) at `s[*i..]`, advancing `*i` past it. `None` when the number
/// needs the general parser (more digits, other syntax) or there is none.
#[inline(always)]
pub fn scan_decimal(s: &[u8], i: &mut usize) -> Option<Decimal> {
    let neg = s.get(*i) == Some(&b'-');
    *i += usize::from(neg);
    let (int_value, int_digits) = scan_digits(s, i)?;
    let (mut mant, mut scale) = (int_value, 0u32);
    if s.get(*i) == Some(&b'.') {
        *i += 1;
        let (frac_value, frac_digits) = scan_digits(s, i)?;
        if int_digits + frac_digits > 18 {
            return None;
        }
        mant = int_value * POW10[frac_digits as usize] + frac_value;
        scale = frac_digits;
    }
    if int_digits + scale == 0 || int_digits + scale > 18 {
        return None;
    }
    // < 10^18 < 2^63 and scale <= 18 <= 28: `from_parts` cannot fail.
    Some(Decimal::from_parts(
        mant as u32,
        (mant >> 32) as u32,
        0,
        neg,
        scale,
    ))
}

#[cold]
pub(crate) fn parse_decimal_slow(s: &[u8]) -> Option<Decimal> {
    let text = std::str::from_utf8(s).ok()?;
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// Parses a base-10 integer with an optional leading `-`; `None` on anything else or on overflow.
#[inline]
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some(_) => (false, s),
        None => return None,
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    if digits.len() < 19 {
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d >= 10 {
                return None;
            }
            v = v * 10 + i64::from(d);
        }
    } else {
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d >= 10 {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(i64::from(d))?;
        }
    }
    Some(if neg { -v } else { v })
}

/// Converts an epoch timestamp in ms, µs or ns (told apart by magnitude: ms below 10^14, µs below 10^17, else
/// ns) to nanoseconds. Zero, negative or overflowing values give `None`.
#[inline]
pub fn epoch_to_ns(v: i64) -> Option<TsNs> {
    if v <= 0 {
        None
    } else if v < 100_000_000_000_000 {
        v.checked_mul(1_000_000)
    } else if v < 100_000_000_000_000_000 {
        v.checked_mul(1_000)
    } else {
        Some(v)
    }
}

/// Parses an epoch timestamp field (ms, µs or ns) into nanoseconds.
#[inline]
pub fn parse_epoch_ns(s: &[u8]) -> Option<TsNs> {
    parse_i64(s).and_then(epoch_to_ns)
}

/// A short, printable excerpt of external input for error messages.
pub fn excerpt(s: &[u8]) -> String {
    const MAX: usize = 60;
    let text = String::from_utf8_lossy(s);
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_decimal_matches_from_str_value_and_scale() {
        let cases = [
            "61837.63000000",
            "0.010",
            "-1.5",
            "+2",
            "0",
            "0.00000000",
            "123456789012345678",
            "1234567890.12345678901",
            "79228162514264337593543950335",
            "1e3",
            ".5",
            "5.",
        ];
        for c in cases {
            let fast = parse_decimal(c.as_bytes());
            let slow = parse_decimal_slow(c.as_bytes());
            assert_eq!(fast, slow, "{c}");
            if let (Some(f), Some(s)) = (fast, slow) {
                assert_eq!(f.to_string(), s.to_string(), "{c}");
            }
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let int = rng.u64(0..10_000_000_000);
            let frac_digits = rng.usize(0..9);
            let frac = rng.u64(0..10u64.pow(frac_digits as u32));
            let s = if frac_digits == 0 {
                format!("{int}")
            } else {
                format!("{int}.{frac:0w$}", w = frac_digits)
            };
            let fast = parse_decimal(s.as_bytes()).unwrap();
            let slow = Decimal::from_str(&s).unwrap();
            assert_eq!(fast, slow);
            assert_eq!(fast.to_string(), slow.to_string());
        }
    }

    #[test]
    fn swar_digit_runs() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..50_000 {
            let n = rng.usize(0..20);
            let digits: String = (0..n).map(|_| char::from(b'0' + rng.u8(0..10))).collect();
            let tail = [",", "", ".", "x", " "][rng.usize(0..5)];
            let s = format!("{digits}{tail}");
            let mut i = 0;
            let got = scan_digits(s.as_bytes(), &mut i);
            let want = if n == 0 {
                Some(0)
            } else {
                digits.parse::<u64>().ok()
            };
            match want {
                Some(w) => {
                    assert_eq!(got, Some((w, n as u32)), "{s}");
                    assert_eq!(i, n);
                }
                None => assert_eq!(got, None, "{s}"),
            }
        }
    }

    #[test]
    fn bad_decimals_are_none() {
        for c in ["", "-", ".", "1.2.3", "abc", "1,5", "12a", " 1"] {
            assert_eq!(parse_decimal(c.as_bytes()), None, "{c:?}");
        }
    }

    #[test]
    fn integers_and_overflow() {
        assert_eq!(parse_i64(b"1723161254087891268"), Some(1723161254087891268));
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"99999999999999999999"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"12x"), None);
    }

    #[test]
    fn epoch_units_by_magnitude() {
        assert_eq!(epoch_to_ns(1723161299999), Some(1723161299999000000));
        assert_eq!(epoch_to_ns(1680652800004107), Some(1680652800004107000));
        assert_eq!(epoch_to_ns(1723161254087891268), Some(1723161254087891268));
        assert_eq!(epoch_to_ns(0), None);
        assert_eq!(epoch_to_ns(-5), None);
    }
}
