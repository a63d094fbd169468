//! The generic quote CSV (`ts_ns,market,bid,ask,bid_qty,ask_qty`; market = `spot` or `perp`) — the backtest hot
//! path: one reused line buffer, a SWAR/SSE2 fast path that finds every field from one non-digit mask, no
//! allocation per line; a general (memchr-splitting) parser for other shapes and for exact error messages.

use std::ops::ControlFlow;

use crate::market::detect::QUOTE_CSV_HEADER;
use crate::market::error::DataError;
use crate::market::event::{MarketEvent, MarketKind, Quote};
use crate::market::lines::LineReader;
use crate::market::num::{excerpt, load8, parse_decimal, parse_i64, swar8, ASCII_ZEROS, POW10};
use crate::market::reader::fill_slot;
use crate::market::recording::line_error;
use crate::model::{Decimal, Venue};

const FIELDS: [&str; 6] = ["ts_ns", "market", "bid", "ask", "bid_qty", "ask_qty"];

/// Why a quote CSV line is bad (turned into a message only on the error path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteLineError {
    /// Fewer or more than 6 fields.
    FieldCount,
    /// The field with this index (see the header) does not parse.
    Field(usize),
}

/// Parses one data line of the quote CSV.
#[inline]
pub fn parse_quote_line(line: &[u8]) -> Result<MarketEvent, QuoteLineError> {
    parse_quote_line_in(line, line.len())
}

/// Parses the line `buf[..len]`, where the bytes after the line (if any) start with its line break: the scanner
/// then loads 8 bytes at a time across field ends without copying the line.
#[inline]
pub(crate) fn parse_quote_line_in(buf: &[u8], len: usize) -> Result<MarketEvent, QuoteLineError> {
    match parse_fast(buf, len) {
        Some(ev) => Ok(ev),
        None => parse_general(buf.get(..len).unwrap_or(buf)),
    }
}

/// The common shape (at most 63 bytes, plain digits, `spot`/`perp`, decimals of at most 18 digits) in few
/// instructions: one SWAR pass marks every non-digit byte of the line (a bit per byte), then the fields are walked
/// from one non-digit to the next (`,` or `.`), and each digit run is converted 8 digits at a time. Any other
/// shape (signs, exponents, spaces, long numbers, bad data) returns `None` and goes to [`parse_general`], which
/// also produces the exact error. Bytes after `len` are ignored.
#[inline(always)]
fn parse_fast(s: &[u8], len: usize) -> Option<MarketEvent> {
    if !(12..=63).contains(&len) {
        return None;
    }
    parse_fast_masked(s, len, nondigit_mask(s, len))
}

/// [`parse_fast`] with the line's non-digit mask already computed (bits past `len` are ignored).
#[inline(always)]
fn parse_fast_masked(s: &[u8], len: usize, mut nd: u64) -> Option<MarketEvent> {
    // Keep the line's bytes and mark its end as a terminator.
    nd = (nd & bits(0, len)) | (1u64 << len);
    let c0 = nd.trailing_zeros() as usize;
    if c0 == 0 || c0 > 19 {
        return None;
    }
    let venue = match s.get(c0..c0 + 6)? {
        b",spot," => Venue::Spot,
        b",perp," => Venue::Perp,
        _ => return None,
    };
    let ts = digits_value(s, 0, c0);
    if ts > i64::MAX as u64 {
        return None;
    }
    nd &= !bits(0, c0 + 6);
    let mut start = c0 + 6;
    let bid = next_decimal(s, len, &mut nd, &mut start)?;
    let ask = next_decimal(s, len, &mut nd, &mut start)?;
    let bid_qty = next_decimal(s, len, &mut nd, &mut start)?;
    let ask_qty = next_decimal(s, len, &mut nd, &mut start)?;
    // The last field must end the line, with nothing left over.
    if start != len + 1 || nd != 0 {
        return None;
    }
    Some(MarketEvent {
        ts: ts as i64,
        kind: MarketKind::Quote(Quote {
            venue,
            bid,
            ask,
            bid_qty,
            ask_qty,
        }),
    })
}

/// The decimal field starting at `*start`, ending at the next comma (or the line end); `nd` holds the positions of
/// the non-digits not yet consumed.
#[inline(always)]
fn next_decimal(s: &[u8], len: usize, nd: &mut u64, start: &mut usize) -> Option<Decimal> {
    let p = nd.trailing_zeros() as usize;
    *nd &= nd.wrapping_sub(1);
    let a = *start;
    let (int_end, frac_end) = if p < len && s.get(p) == Some(&b'.') {
        let q = nd.trailing_zeros() as usize;
        *nd &= nd.wrapping_sub(1);
        (p, q)
    } else {
        (p, p)
    };
    // The field ends at a comma or at the end of the line.
    if frac_end != len && s.get(frac_end) != Some(&b',') {
        return None;
    }
    *start = frac_end + 1;
    let int_n = int_end.checked_sub(a)?;
    let frac_n = frac_end.saturating_sub(int_end + 1);
    let n = int_n + frac_n;
    if n == 0 || n > 18 {
        return None;
    }
    let mant = if frac_end - a <= 8 && frac_end >= 8 {
        DecField::new(frac_end, int_n, frac_n, int_end != frac_end).mantissa(s)
    } else {
        digits_value(s, a, int_n) * POW10[frac_n] + digits_value(s, int_end + 1, frac_n)
    };
    // < 10^18 < 2^63 and scale <= 18 <= 28: `from_parts` cannot fail.
    Some(Decimal::from_parts(
        mant as u32,
        (mant >> 32) as u32,
        0,
        false,
        frac_n as u32,
    ))
}

/// Bit k set if byte k of the line (k < `len`, at most 64) is not an ASCII digit; bits past `len` are garbage.
#[inline(always)]
fn nondigit_mask(s: &[u8], len: usize) -> u64 {
    if let Some(block) = s.first_chunk::<64>() {
        return nondigit_mask64(block);
    }
    let mut nd = 0u64;
    let mut k = 0;
    while k * 8 < len {
        nd |= movemask(nondigit_bytes(load8(s, k * 8))) << (8 * k);
        k += 1;
    }
    nd
}

/// Per-byte masks of a 64-byte block (bit k = byte k): non-digits, `\n`, `,` and `.`, from one pass — the
/// reader's fast path finds the line break, the fields and the line's shape together instead of scanning the
/// line several times.
#[derive(Debug, Clone, Copy)]
struct BlockMasks {
    nondigit: u64,
    newline: u64,
    comma: u64,
    dot: u64,
}

#[inline(always)]
fn block_masks(block: &[u8; 64]) -> BlockMasks {
    #[cfg(target_arch = "x86_64")]
    return masks_sse2(block);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = BlockMasks {
            nondigit: 0,
            newline: 0,
            comma: 0,
            dot: 0,
        };
        for k in 0..8 {
            let w = load8(block, k * 8);
            let eq = |c: u8| movemask(zero_bytes(w ^ (u64::from(c) * ONES))) << (8 * k);
            m.nondigit |= movemask(nondigit_bytes(w)) << (8 * k);
            m.newline |= eq(b'\n');
            m.comma |= eq(b',');
            m.dot |= eq(b'.');
        }
        m
    }
}

/// 0x80 in every zero byte of `w` (exact: no false positives).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    !(((w & LOW7).wrapping_add(LOW7)) | w | LOW7)
}

/// [`block_masks`] with SSE2 (part of the x86_64 baseline), 16 bytes per instruction.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks_sse2(block: &[u8; 64]) -> BlockMasks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut m = BlockMasks {
        nondigit: 0,
        newline: 0,
        comma: 0,
        dot: 0,
    };
    for (k, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is always available on x86_64; `chunk` is 16 readable bytes and `loadu` allows any
        // alignment.
        let (d, n, c, p) = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            // Signed compares: bytes >= 0x80 are negative, hence below '0' — flagged too.
            let below = _mm_cmplt_epi8(v, _mm_set1_epi8(b'0' as i8));
            let above = _mm_cmpgt_epi8(v, _mm_set1_epi8(b'9' as i8));
            (
                _mm_movemask_epi8(_mm_or_si128(below, above)),
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))),
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b',' as i8))),
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8))),
            )
        };
        let shift = 16 * k;
        m.nondigit |= u64::from(d as u16) << shift;
        m.newline |= u64::from(n as u16) << shift;
        m.comma |= u64::from(c as u16) << shift;
        m.dot |= u64::from(p as u16) << shift;
    }
    m
}

/// Bit k set if byte k of `block` is not an ASCII digit: the layout check's first half.
#[inline(always)]
fn nondigit_mask64(block: &[u8; 64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        let mut m = 0u64;
        for (k, chunk) in block.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is always available on x86_64; `chunk` is 16 readable bytes and `loadu` allows any
            // alignment.
            let d = unsafe {
                let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
                // Signed compares: bytes >= 0x80 are negative, hence below '0' — flagged too.
                let below = _mm_cmplt_epi8(v, _mm_set1_epi8(b'0' as i8));
                let above = _mm_cmpgt_epi8(v, _mm_set1_epi8(b'9' as i8));
                _mm_movemask_epi8(_mm_or_si128(below, above))
            };
            m |= u64::from(d as u16) << (16 * k);
        }
        m
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = 0u64;
        for k in 0..8 {
            m |= movemask(nondigit_bytes(load8(block, k * 8))) << (8 * k);
        }
        m
    }
}

/// 64 bytes aligned for SSE2 memory operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
struct Lanes([u8; 64]);

/// Whether every byte k of `block` satisfies `block[k] - base[k] <= limit[k]` (unsigned, wrapping): with `base` =
/// `'0'` and `limit` = 9 that is "a digit", with `base` = the byte and `limit` = 0 "this byte", with `limit` = 255
/// "anything". One subtract, one max and one compare per 16 bytes.
#[inline(always)]
fn fits(block: &[u8; 64], base: &Lanes, limit: &Lanes) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_load_si128, _mm_loadu_si128, _mm_max_epu8,
            _mm_movemask_epi8, _mm_set1_epi8, _mm_sub_epi8,
        };
        // SAFETY: SSE2 is always available on x86_64. Every pointer is 16 readable bytes inside a 64-byte array:
        // `loadu` allows any alignment, and `Lanes` is 16-byte aligned for `load`.
        unsafe {
            let mut ok = _mm_set1_epi8(-1);
            for k in 0..4 {
                let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>());
                let b = _mm_load_si128(base.0.as_ptr().add(16 * k).cast::<__m128i>());
                let l = _mm_load_si128(limit.0.as_ptr().add(16 * k).cast::<__m128i>());
                let d = _mm_sub_epi8(v, b);
                ok = _mm_and_si128(ok, _mm_cmpeq_epi8(_mm_max_epu8(d, l), l));
            }
            _mm_movemask_epi8(ok) == 0xFFFF
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        block
            .iter()
            .zip(base.0.iter().zip(limit.0.iter()))
            .all(|(&v, (&b, &l))| v.wrapping_sub(b) <= l)
    }
}

/// How to convert a decimal field of at most 8 bytes (`int_n` digits, a `.` if `dot`, `frac_n` digits) that ends at
/// `end` (>= 8) with one 8-byte load: the field is loaded right-aligned, then two precomputed masks keep its digits
/// — `lo` the integer digits (shifted up one byte over the dot), `hi` the fraction — and drop the bytes before it,
/// and the 8 digit bytes are converted at once. Built per field by the field walk, and once per layout by
/// [`Shape::learn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DecField {
    end: usize,
    lo: u64,
    hi: u64,
    scale: u32,
}

impl DecField {
    #[inline(always)]
    fn new(end: usize, int_n: usize, frac_n: usize, dot: bool) -> DecField {
        // Bits of the bytes below byte `n` (all bytes for n >= 8).
        let below = |n: usize| 1u64.checked_shl(8 * n as u32).map_or(u64::MAX, |b| b - 1);
        // The bytes before the field, at the low end of the load.
        let before = below(8usize.saturating_sub(int_n + frac_n + usize::from(dot)));
        let (lo, hi) = if dot {
            // Byte 7 - frac_n is the dot: the integer digits below it, the fraction above it.
            let d = 7 - frac_n;
            (below(d) & !before, !below(d + 1))
        } else {
            (0, !before)
        };
        DecField {
            end,
            lo,
            hi,
            scale: frac_n as u32,
        }
    }

    #[inline(always)]
    fn mantissa(&self, s: &[u8]) -> u64 {
        self.digits(load8(s, self.end - 8))
    }

    /// The field's value from the 8 bytes that end at it.
    #[inline(always)]
    fn digits(&self, loaded: u64) -> u64 {
        let w = loaded ^ ASCII_ZEROS;
        swar8(((w & self.lo) << 8) | (w & self.hi))
    }

    /// The field's digits inside a line block, as 8 bytes (no bounds checks: see [`load8_in`]).
    #[inline(always)]
    fn loaded_in(&self, block: &LineBlock) -> u64 {
        load8_in(block, self.end.wrapping_sub(8))
    }

    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    #[inline(always)]
    fn mantissa_in(&self, block: &LineBlock) -> u64 {
        self.digits(self.loaded_in(block))
    }

    /// The field's decimal from its mantissa.
    #[inline(always)]
    fn decimal(&self, mantissa: u64) -> Decimal {
        Decimal::from_parts(
            mantissa as u32,
            (mantissa >> 32) as u32,
            0,
            false,
            self.scale,
        )
    }

    /// The field's f64 from its mantissa (at most 8 digits: `mantissa / 10^scale` is the correctly rounded f64,
    /// what [`crate::model::to_f64`] gives for the decimal).
    #[inline(always)]
    fn f64(&self, mantissa: u64) -> f64 {
        mantissa as f64 / POW10_F64[self.scale as usize & 7]
    }
}

/// [`DecField::mantissa_in`] of two fields at once: with SSE2, both 8-byte loads in one register and every step of
/// the digit conversion done for both.
#[inline(always)]
fn mantissas2(block: &LineBlock, a: &DecField, b: &DecField) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_add_epi16, _mm_add_epi64, _mm_and_si128, _mm_cvtsi128_si64, _mm_madd_epi16,
            _mm_mul_epu32, _mm_mullo_epi16, _mm_or_si128, _mm_set1_epi16, _mm_set1_epi32,
            _mm_set1_epi64x, _mm_set1_epi8, _mm_set_epi64x, _mm_slli_epi64, _mm_srli_epi16,
            _mm_srli_epi64, _mm_unpackhi_epi64, _mm_xor_si128,
        };
        let (wa, wb) = (a.loaded_in(block), b.loaded_in(block));
        // SAFETY: SSE2 is always available on x86_64; these are register operations only.
        unsafe {
            // One field per 64-bit lane, first digit in the lowest byte.
            let w = _mm_xor_si128(
                _mm_set_epi64x(wb as i64, wa as i64),
                _mm_set1_epi8(b'0' as i8),
            );
            let lo = _mm_set_epi64x(b.lo as i64, a.lo as i64);
            let hi = _mm_set_epi64x(b.hi as i64, a.hi as i64);
            // The digits only, the integer ones shifted over the dot (as `DecField::digits`).
            let d = _mm_or_si128(
                _mm_slli_epi64(_mm_and_si128(w, lo), 8),
                _mm_and_si128(w, hi),
            );
            // Pairs of digits in 16-bit lanes (first × 10 + second), then 4 digits in 32-bit lanes, then 8.
            let first = _mm_and_si128(d, _mm_set1_epi16(0x00FF));
            let pairs = _mm_add_epi16(
                _mm_mullo_epi16(first, _mm_set1_epi16(10)),
                _mm_srli_epi16(d, 8),
            );
            let quads = _mm_madd_epi16(pairs, _mm_set1_epi32((1 << 16) | 100));
            let eights = _mm_add_epi64(
                _mm_mul_epu32(quads, _mm_set1_epi64x(10_000)),
                _mm_srli_epi64(quads, 32),
            );
            (
                _mm_cvtsi128_si64(eights) as u64,
                _mm_cvtsi128_si64(_mm_unpackhi_epi64(eights, eights)) as u64,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (a.mantissa_in(block), b.mantissa_in(block))
    }
}

/// 10^k as f64, exact, for the at most 7 decimals of an 8-byte field.
const POW10_F64: [f64; 8] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7];

/// The layout of a line — where every separator is and what it is — learnt from a line the fast parser accepted.
/// Quote files repeat a few layouts (fixed decimals per market), so a line whose non-digit, comma and dot masks
/// equal a known layout's (and whose market text matches) is converted with no field walking or checks: its
/// digits are digits and its separators are where the layout has them, which is everything the walk verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    len: usize,
    /// The layout as a [`fits`] check: a digit where the line has one, the same byte where it has a separator
    /// (its `\n` included), anything after that.
    base: Lanes,
    limit: Lanes,
    /// Length of the timestamp.
    ts_len: usize,
    venue: Venue,
    fields: [DecField; 4],
}

impl Shape {
    /// The layout of an accepted line (`None` when a field is too long for one 8-byte load).
    fn learn(block: &[u8; 64], len: usize, m: &BlockMasks, venue: Venue) -> Option<Shape> {
        let line = bits(0, len);
        let (comma, dot) = (m.comma & line, m.dot & line);
        let seps = (m.nondigit & line) | (1u64 << len);
        let (mut base, mut limit) = (Lanes([b'0'; 64]), Lanes([9; 64]));
        for (k, ((b, l), &byte)) in base.0.iter_mut().zip(&mut limit.0).zip(block).enumerate() {
            if k > len {
                *l = u8::MAX;
            } else if seps & (1u64 << k) != 0 {
                (*b, *l) = (byte, 0);
            }
        }
        let ts_len = comma.trailing_zeros() as usize;
        // Field ends: the 3rd to 5th commas, then the line end.
        let mut ends = [0usize; 4];
        let mut c = comma & !bits(0, ts_len + 6);
        for e in ends.iter_mut().take(3) {
            *e = c.trailing_zeros() as usize;
            c &= c.wrapping_sub(1);
        }
        ends[3] = len;
        let mut fields = [DecField::new(8, 0, 0, false); 4];
        let mut start = ts_len + 6;
        for (f, &end) in fields.iter_mut().zip(&ends) {
            if end <= start || end < 8 || end - start > 8 {
                return None;
            }
            let dots = dot & bits(start, end);
            let (int_n, frac_n, has_dot) = if dots == 0 {
                (end - start, 0, false)
            } else {
                let d = dots.trailing_zeros() as usize;
                (d - start, end - d - 1, true)
            };
            *f = DecField::new(end, int_n, frac_n, has_dot);
            start = end + 1;
        }
        Some(Shape {
            len,
            base,
            limit,
            ts_len,
            venue,
            fields,
        })
    }

    /// Whether the line at the start of `block` has this layout: a digit wherever the layout has one, and the
    /// layout's separators, up to and including its `\n`, where it has them.
    #[inline(always)]
    fn matches(&self, block: &[u8; 64]) -> bool {
        fits(block, &self.base, &self.limit)
    }

    /// Converts a line that [`Shape::matches`] and whose market text was checked, into `out` (in place: no
    /// event is moved around on the way to the caller's batch).
    #[inline(always)]
    fn parse_into(
        &self,
        s: &LineBlock,
        out: &mut MarketEvent,
        prices: &mut [f64; 2],
        ts_high: &mut TsHigh,
    ) -> bool {
        let ts = timestamp_in(s, self.ts_len, ts_high);
        if ts > i64::MAX as u64 {
            return false;
        }
        let [b, a, bq, aq] = &self.fields;
        let (bid, ask) = mantissas2(s, b, a);
        let (bid_qty, ask_qty) = mantissas2(s, bq, aq);
        out.ts = ts as i64;
        out.kind = MarketKind::Quote(Quote {
            venue: self.venue,
            bid: b.decimal(bid),
            ask: a.decimal(ask),
            bid_qty: bq.decimal(bid_qty),
            ask_qty: aq.decimal(ask_qty),
        });
        *prices = [b.f64(bid), a.f64(ask)];
        true
    }
}

/// Bits `a..b` set (bit k = byte k of the line).
#[inline(always)]
fn bits(a: usize, b: usize) -> u64 {
    let below = |n: usize| 1u64.checked_shl(n as u32).map_or(u64::MAX, |x| x - 1);
    below(b) & !below(a)
}

const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// 0x80 in every byte of `w` that is not an ASCII digit.
#[inline(always)]
fn nondigit_bytes(w: u64) -> u64 {
    let t = w ^ (u64::from(b'0') * ONES);
    ((t & LOW7).wrapping_add(0x7676_7676_7676_7676) | t) & HIGH
}

/// One bit per byte from a 0x80-per-byte mask (bit k = byte k).
#[inline(always)]
fn movemask(m: u64) -> u64 {
    (m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The bytes a line is parsed from on the fast path: a line of at most 63 bytes and its `\n`, plus 8 bytes of
/// slack, so that an 8-byte load at any offset below 64 is inside it.
type LineBlock = [u8; 72];

/// Loads 8 bytes at `i` (< 64; the offsets of a known layout always are) little-endian. The mask makes the bound
/// provable, so the compiler drops the check.
#[inline(always)]
fn load8_in(block: &LineBlock, i: usize) -> u64 {
    let i = i & 63;
    match block.get(i..i + 8).and_then(|b| b.first_chunk::<8>()) {
        Some(b) => u64::from_le_bytes(*b),
        None => 0,
    }
}

/// The value of all but the last 8 digits of the last nanosecond timestamp converted, with the bytes it came from:
/// consecutive timestamps share them (they change every 0.1 s), so most lines convert only their last 8 digits.
#[derive(Debug, Clone, Copy, Default)]
struct TsHigh {
    len: usize,
    top: u64,
    mid: u64,
    value: u64,
}

/// Value of the timestamp: the first `n` (at most 19) ASCII digits of `block`.
#[inline(always)]
fn timestamp_in(block: &LineBlock, n: usize, high: &mut TsHigh) -> u64 {
    if (17..=19).contains(&n) {
        // Nanosecond timestamps: three loads, no loop. The last 16 digits as two groups of 8 that end at `n`;
        // the first `n - 16` shifted to the top of their load (the bytes after them fall off).
        let group = |i: usize| swar8(load8_in(block, i) ^ ASCII_ZEROS);
        let (top, mid) = (load8_in(block, 0), load8_in(block, n - 16));
        if (top, mid, n) != (high.top, high.mid, high.len) {
            let top_value = swar8((top ^ ASCII_ZEROS) << (8 * (24 - n)));
            *high = TsHigh {
                len: n,
                top,
                mid,
                value: top_value * 10_000_000_000_000_000 + group(n - 16) * 100_000_000,
            };
        }
        return high.value + group(n - 8);
    }
    digits_loaded(|i| load8_in(block, i), 0, n.min(19))
}

/// Value of the `n` (at most 19) ASCII digits at `s[start..]`, 8 at a time.
#[inline(always)]
fn digits_value(s: &[u8], start: usize, n: usize) -> u64 {
    digits_loaded(|i| load8(s, i), start, n)
}

/// Value of the `n` ASCII digits from offset `start`, with `load` reading 8 bytes at an offset.
#[inline(always)]
fn digits_loaded(load: impl Fn(usize) -> u64, start: usize, n: usize) -> u64 {
    let mut v = 0u64;
    let mut i = start;
    let mut left = n;
    while left >= 8 {
        v = v
            .wrapping_mul(100_000_000)
            .wrapping_add(swar8(load(i) ^ ASCII_ZEROS));
        i += 8;
        left -= 8;
    }
    if left > 0 {
        let chunk = swar8((load(i) ^ ASCII_ZEROS) << (8 * (8 - left)));
        v = v.wrapping_mul(POW10[left]).wrapping_add(chunk);
    }
    v
}

/// The general parser: split on commas (memchr), then parse each field; exact errors.
#[cold]
fn parse_general(line: &[u8]) -> Result<MarketEvent, QuoteLineError> {
    let mut f = [&[][..]; 6];
    let mut rest = line;
    for slot in f.iter_mut().take(5) {
        let Some(pos) = memchr::memchr(b',', rest) else {
            return Err(QuoteLineError::FieldCount);
        };
        let (head, tail) = rest.split_at(pos);
        *slot = head;
        rest = tail.get(1..).unwrap_or(&[]);
    }
    if memchr::memchr(b',', rest).is_some() {
        return Err(QuoteLineError::FieldCount);
    }
    f[5] = rest;
    let ts = match parse_i64(f[0]) {
        Some(ts) if ts >= 0 => ts,
        _ => return Err(QuoteLineError::Field(0)),
    };
    let venue = match f[1] {
        b"perp" => Venue::Perp,
        b"spot" => Venue::Spot,
        _ => return Err(QuoteLineError::Field(1)),
    };
    let bid = parse_decimal(f[2]).ok_or(QuoteLineError::Field(2))?;
    let ask = parse_decimal(f[3]).ok_or(QuoteLineError::Field(3))?;
    let bid_qty = parse_decimal(f[4]).ok_or(QuoteLineError::Field(4))?;
    let ask_qty = parse_decimal(f[5]).ok_or(QuoteLineError::Field(5))?;
    Ok(MarketEvent {
        ts,
        kind: MarketKind::Quote(Quote {
            venue,
            bid,
            ask,
            bid_qty,
            ask_qty,
        }),
    })
}

/// Explains a [`QuoteLineError`] for `line`.
pub fn describe_error(line: &[u8], e: QuoteLineError) -> String {
    match e {
        QuoteLineError::FieldCount => format!(
            "expected 6 fields ({QUOTE_CSV_HEADER}), got {}: {:?}",
            line.split(|&c| c == b',').count(),
            excerpt(line)
        ),
        QuoteLineError::Field(i) => {
            let value = line.split(|&c| c == b',').nth(i).unwrap_or(&[]);
            let name = FIELDS.get(i).copied().unwrap_or("?");
            let want = match i {
                0 => "an integer timestamp in ns",
                1 => "`spot` or `perp`",
                _ => "a decimal",
            };
            format!("field `{name}`: expected {want}, got {:?}", excerpt(value))
        }
    }
}

/// Quote events from a quote CSV file.
pub struct QuoteCsvSource {
    path: String,
    lines: LineReader,
    shapes: ShapeCache,
}

/// Layouts remembered per market: a file repeats a handful (quantities of 1, 2 or 3 integer digits, …).
const SHAPES_PER_MARKET: usize = 4;

/// The most recently seen layouts of each market (spot, perp).
struct ShapeCache {
    shapes: [[Option<Shape>; SHAPES_PER_MARKET]; 2],
    /// Per market, the indices into `shapes` from the most recently used (a layout stays where it was stored:
    /// reordering moves four bytes, not four layouts).
    order: [[u8; SHAPES_PER_MARKET]; 2],
    /// Timestamp length of the last line converted through a layout: where the next line's market text is
    /// looked for first (files keep one timestamp width).
    ts_len: usize,
    ts_high: TsHigh,
}

impl Default for ShapeCache {
    fn default() -> Self {
        const IN_ORDER: [u8; SHAPES_PER_MARKET] = [0, 1, 2, 3];
        ShapeCache {
            shapes: [[None; SHAPES_PER_MARKET]; 2],
            order: [IN_ORDER; 2],
            ts_len: 0,
            ts_high: TsHigh::default(),
        }
    }
}

impl QuoteCsvSource {
    pub(crate) fn new(path: &str, lines: LineReader) -> Self {
        QuoteCsvSource {
            path: path.to_string(),
            lines,
            shapes: ShapeCache::default(),
        }
    }
}

impl ShapeCache {
    /// A common-shape line at the start of `buf` (at least 72 bytes): through a known layout when it has one,
    /// else through the field walk (learning its layout). Returns the event and the line's length with its `\n`.
    #[inline(always)]
    fn parse(&mut self, buf: &[u8]) -> Option<(MarketEvent, usize)> {
        let mut ev = MarketEvent {
            ts: 0,
            kind: MarketKind::Quote(Quote::EMPTY),
        };
        let n = self.parse_into(buf, &mut ev, &mut [0.0; 2])?;
        Some((ev, n))
    }

    /// [`ShapeCache::parse`] into `out`, with the quote's [`crate::signal::quote_prices`] into `prices`; returns
    /// the line's length with its `\n`.
    #[inline(always)]
    fn parse_into(
        &mut self,
        buf: &[u8],
        out: &mut MarketEvent,
        prices: &mut [f64; 2],
    ) -> Option<usize> {
        let line: &LineBlock = buf.first_chunk::<72>()?;
        let block = line.first_chunk::<64>()?;
        // The market text, with the commas around it, follows the timestamp: read as one 6-byte word where the
        // last line had it, else after the first non-digit. It only picks the layouts to try; they check the rest.
        let market = |at: usize| {
            const TAG: u64 = (1 << 48) - 1;
            const SPOT: u64 = u64::from_le_bytes(*b",spot,\0\0");
            const PERP: u64 = u64::from_le_bytes(*b",perp,\0\0");
            match load8_in(line, at) & TAG {
                SPOT => Some(0),
                PERP => Some(1),
                _ => None,
            }
        };
        let slot = match market(self.ts_len) {
            Some(slot) => slot,
            None => market(nondigit_mask64(block).trailing_zeros() as usize)?,
        };
        let (known, order) = (self.shapes.get_mut(slot)?, self.order.get_mut(slot)?);
        for k in 0..SHAPES_PER_MARKET {
            match &known[usize::from(order[k]) % SHAPES_PER_MARKET] {
                Some(shape) if shape.matches(block) => {
                    if !shape.parse_into(line, out, prices, &mut self.ts_high) {
                        return None;
                    }
                    let n = shape.len + 1;
                    self.ts_len = shape.ts_len;
                    if k > 0 {
                        // Most recent first: a run of one layout is found at the first try.
                        order[..=k].rotate_right(1);
                    }
                    return Some(n);
                }
                Some(_) => {}
                None => break,
            }
        }
        // A layout not seen lately: the field walk, which learns it.
        let m = block_masks(block);
        if m.newline == 0 {
            return None;
        }
        let len = m.newline.trailing_zeros() as usize;
        if !(12..=63).contains(&len) {
            return None;
        }
        *out = parse_fast_masked(buf, len, m.nondigit)?;
        if let MarketKind::Quote(q) = &out.kind {
            *prices = crate::signal::quote_prices(q);
        }
        let venue = if slot == 0 { Venue::Spot } else { Venue::Perp };
        if let Some(shape) = Shape::learn(block, len, &m, venue) {
            // Into the least recently used place, which becomes the most recent. The empty places stay last in
            // `order`: each is the least recent in turn.
            let at = usize::from(order[SHAPES_PER_MARKET - 1]) % SHAPES_PER_MARKET;
            known[at] = Some(shape);
            order.rotate_right(1);
        }
        Some(len + 1)
    }
}

impl QuoteCsvSource {
    #[inline]
    pub(crate) fn next_event(&mut self) -> Option<Result<MarketEvent, DataError>> {
        // Fast path: a whole common-shape line inside the next 64 buffered bytes, parsed straight from the buffer.
        if let Some(buf) = self.lines.peek_buffered() {
            if let Some((ev, n)) = self.shapes.parse(buf) {
                self.lines.consume_line(n);
                return Some(Ok(ev));
            }
        }
        self.next_event_slow()
    }

    /// [`QuoteCsvSource::next_event`] into each slot of `out` in turn, in place; returns how many were filled and
    /// the error that stopped it early (if one did; fewer without an error = the end).
    #[inline]
    pub(crate) fn fill(
        &mut self,
        out: &mut [MarketEvent],
        prices: &mut [[f64; 2]],
    ) -> (usize, Option<DataError>) {
        for (n, (slot, px)) in out.iter_mut().zip(prices.iter_mut()).enumerate() {
            if let Some(buf) = self.lines.peek_buffered() {
                if let Some(len) = self.shapes.parse_into(buf, slot, px) {
                    self.lines.consume_line(len);
                    continue;
                }
            }
            if let ControlFlow::Break(end) = fill_slot(self.next_event_slow(), slot, px) {
                return (n, end);
            }
        }
        (out.len().min(prices.len()), None)
    }

    #[cold]
    #[inline(never)]
    fn next_event_slow(&mut self) -> Option<Result<MarketEvent, DataError>> {
        loop {
            let (no, (buf, len)) = match self.lines.next_line_with_tail() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => return Some(Err(line_error(&self.path, self.lines.line_no(), e))),
            };
            match parse_quote_line_in(buf, len) {
                Ok(ev) => return Some(Ok(ev)),
                Err(e) => {
                    let line = buf.get(..len).unwrap_or(buf);
                    let trimmed = line.trim_ascii();
                    if trimmed.is_empty() || (no == 1 && is_header(trimmed)) {
                        continue;
                    }
                    return Some(Err(DataError::Line {
                        path: self.path.clone(),
                        line: no,
                        msg: describe_error(line, e),
                    }));
                }
            }
        }
    }
}

fn is_header(line: &[u8]) -> bool {
    line.eq_ignore_ascii_case(QUOTE_CSV_HEADER.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::str::FromStr;

    #[test]
    fn parses_a_line() {
        let ev =
            parse_quote_line(b"1723161255088169167,perp,61800.20,61800.30,2.507,2.510").unwrap();
        assert_eq!(ev.ts, 1723161255088169167);
        let MarketKind::Quote(q) = ev.kind else {
            panic!("not a quote")
        };
        assert_eq!(q.venue, Venue::Perp);
        assert_eq!(q.bid, Decimal::from_str("61800.20").unwrap());
        assert_eq!(q.ask_qty.to_string(), "2.510");
    }

    #[test]
    fn errors_name_the_field() {
        let line = b"1,perp,61800.20,x,2.507,2.510";
        let e = parse_quote_line(line).unwrap_err();
        assert_eq!(e, QuoteLineError::Field(3));
        assert_eq!(
            describe_error(line, e),
            "field `ask`: expected a decimal, got \"x\""
        );
        assert_eq!(
            parse_quote_line(b"1,perp,1,2,3").unwrap_err(),
            QuoteLineError::FieldCount
        );
        assert_eq!(
            parse_quote_line(b"1,perp,1,2,3,4,5").unwrap_err(),
            QuoteLineError::FieldCount
        );
        assert_eq!(
            parse_quote_line(b"1,usdm,1,2,3,4").unwrap_err(),
            QuoteLineError::Field(1)
        );
        assert_eq!(
            parse_quote_line(b"-1,spot,1,2,3,4").unwrap_err(),
            QuoteLineError::Field(0)
        );
        assert_eq!(
            parse_quote_line(b"").unwrap_err(),
            QuoteLineError::FieldCount
        );
        assert_eq!(
            parse_quote_line(b"1,perp,1,2,3,4,").unwrap_err(),
            QuoteLineError::FieldCount
        );
        assert_eq!(
            parse_quote_line(b"99999999999999999999,perp,1,2,3,4").unwrap_err(),
            QuoteLineError::Field(0)
        );
    }

    trait Render {
        fn to_string_for_test(&self) -> String;
    }

    impl Render for MarketEvent {
        /// Decimal equality ignores scale; compare the printed form too.
        fn to_string_for_test(&self) -> String {
            match self.kind {
                MarketKind::Quote(q) => format!(
                    "{} {} {} {} {}",
                    self.ts, q.bid, q.ask, q.bid_qty, q.ask_qty
                ),
                _ => String::new(),
            }
        }
    }

    #[test]
    fn random_lines_agree_with_the_general_parser() {
        let mut rng = fastrand::Rng::with_seed(17);
        let alphabet = b"0123456789.,-e spotperp";
        for _ in 0..200_000 {
            let mut line = b"1723161255088169167,perp,61800.20,61800.30,2.507,2.510".to_vec();
            for _ in 0..rng.usize(0..4) {
                let i = rng.usize(0..line.len());
                match rng.u8(0..3) {
                    0 => line[i] = alphabet[rng.usize(0..alphabet.len())],
                    1 => {
                        line.remove(i);
                    }
                    _ => line.insert(i, alphabet[rng.usize(0..alphabet.len())]),
                }
            }
            let general = parse_general(&line);
            let mut padded = line.clone();
            padded.extend_from_slice(b"\n99,.");
            let got = parse_quote_line_in(&padded, line.len());
            assert_eq!(got, general, "{}", String::from_utf8_lossy(&line));
            if let (Ok(a), Ok(b)) = (got, general) {
                assert_eq!(a.to_string_for_test(), b.to_string_for_test());
            }
        }
    }

    /// Two fields converted at once give what each converted alone gives, for every field width and dot position.
    #[test]
    fn paired_field_conversion_agrees() {
        let mut rng = fastrand::Rng::with_seed(11);
        let field = |rng: &mut fastrand::Rng, block: &mut LineBlock, end: usize| {
            let dot = rng.bool();
            let width = rng.usize(1..=8);
            let int_n = if dot { rng.usize(0..width) } else { width };
            let frac_n = if dot { width - 1 - int_n } else { 0 };
            for (k, b) in block[end - width..end].iter_mut().enumerate() {
                *b = if dot && k == int_n {
                    b'.'
                } else {
                    b'0' + rng.u8(0..10)
                };
            }
            DecField::new(end, int_n, frac_n, dot)
        };
        for _ in 0..20_000 {
            let mut block: LineBlock = [b','; 72];
            let (ea, eb) = (rng.usize(8..=30), rng.usize(40..=63));
            let a = field(&mut rng, &mut block, ea);
            let b = field(&mut rng, &mut block, eb);
            let want = (a.digits(a.loaded_in(&block)), b.digits(b.loaded_in(&block)));
            assert_eq!(mantissas2(&block, &a, &b), want, "{a:?} {b:?}");
        }
    }

    #[test]
    fn nondigit_masks_agree() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..10_000 {
            let block: Vec<u8> = (0..64)
                .map(|_| match rng.u8(0..4) {
                    0 => rng.u8(..),
                    _ => b'0' + rng.u8(0..10),
                })
                .collect();
            let want = block
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, b)| m | (u64::from(!b.is_ascii_digit()) << i));
            assert_eq!(nondigit_mask(&block, 64), want);
            // The SWAR fallback (fewer than 64 bytes available).
            assert_eq!(
                nondigit_mask(&block[..63], 63) & bits(0, 63),
                want & bits(0, 63)
            );
        }
    }

    #[test]
    fn generated_lines_take_the_fast_path() {
        let mut out = Vec::new();
        crate::market::generate_ticks(1000, 3, &mut out).unwrap();
        for line in out.split(|&c| c == b'\n').skip(1).filter(|l| !l.is_empty()) {
            let fast = parse_fast(line, line.len());
            assert!(fast.is_some(), "{}", String::from_utf8_lossy(line));
            assert_eq!(fast.unwrap(), parse_general(line).unwrap());
        }
    }

    #[test]
    fn fast_and_general_paths_agree() {
        for line in [
            "1723161255088169167,perp,61800.20,61800.30,2.507,2.510",
            "5,spot,1,2,0.00001,3",
            "5,spot,-1.5,2.,.5,3",
            "5,spot,1e2,2,3,4",
            "5,spot,12345678901234567890.5,2,3,4",
            "9223372036854775807,perp,1,2,3,4",
            "9223372036854775808,perp,1,2,3,4",
            "1,perp,1.2.3,2,3,4",
            "1,perp,1..3,2,3,4",
            "1,perp,1.,.5,3,4",
            "1,perp,1,2,3,4.",
            "1,perp,1,2,3,",
            "1,perp,1,2,3,4,",
            "1,perp,1,2,3 ,4",
            "1,spot,0.000000000000000001,2,3,4",
            "1,spot,12345678901234567890,2,3,4",
        ] {
            let fast = parse_fast(line.as_bytes(), line.len());
            let padded = format!("{line}\n123");
            assert_eq!(
                parse_quote_line_in(padded.as_bytes(), line.len()),
                parse_general(line.as_bytes()),
                "{line}"
            );
            let general = parse_general(line.as_bytes());
            if let Some(f) = fast {
                assert_eq!(Ok(f), general, "{line}");
                assert_eq!(
                    f.to_string_for_test(),
                    general.unwrap().to_string_for_test()
                );
            }
            assert_eq!(parse_quote_line(line.as_bytes()), general, "{line}");
        }
    }

    /// Reads `data` through the source (buffered fast path with its layout cache, slow path near the buffer end)
    /// and returns every item, events rendered with their decimal scale.
    fn read_all(data: &[u8]) -> Vec<Result<String, String>> {
        let lines = LineReader::new(Box::new(std::io::Cursor::new(data.to_vec())));
        let mut src = QuoteCsvSource::new("t.csv", lines);
        let mut out = Vec::new();
        while let Some(item) = src.next_event() {
            out.push(
                item.map(|ev| format!("{ev:?} {}", ev.to_string_for_test()))
                    .map_err(|e| e.to_string()),
            );
        }
        out
    }

    /// [`read_all`] through [`QuoteCsvSource::fill`] in small batches (the backtest's path), checking that the
    /// f64 prices it gives are each quote's [`crate::signal::quote_prices`].
    fn read_all_batched(data: &[u8]) -> Vec<Result<String, String>> {
        let lines = LineReader::new(Box::new(std::io::Cursor::new(data.to_vec())));
        let mut src = QuoteCsvSource::new("t.csv", lines);
        let blank = MarketEvent {
            ts: 0,
            kind: MarketKind::Quote(Quote::EMPTY),
        };
        let (mut events, mut prices) = ([blank; 7], [[f64::NAN; 2]; 7]);
        let mut out = Vec::new();
        loop {
            let (n, err) = src.fill(&mut events, &mut prices);
            for (ev, px) in events.iter().zip(&prices).take(n) {
                if let MarketKind::Quote(q) = &ev.kind {
                    let want = crate::signal::quote_prices(q);
                    assert_eq!(px.map(f64::to_bits), want.map(f64::to_bits), "{ev:?}");
                }
                out.push(Ok(format!("{ev:?} {}", ev.to_string_for_test())));
            }
            match err {
                Some(e) => out.push(Err(e.to_string())),
                None if n < events.len() => return out,
                None => {}
            }
        }
    }

    #[test]
    fn layout_cache_agrees_with_the_general_parser() {
        // Lines that share a layout with the previous line of their market but differ in a separator, a digit
        // that is not a digit, the market text or the length must not go through the cached layout unchecked.
        let mut rng = fastrand::Rng::with_seed(99);
        let alphabet = b"0123456789.,-e spotperpx";
        let mut data = String::from("ts_ns,market,bid,ask,bid_qty,ask_qty\n");
        let mut want = Vec::new();
        for i in 0..40_000u64 {
            let venue = if i % 2 == 0 { "spot" } else { "perp" };
            // Mostly nanosecond timestamps, some shorter (µs, fewer digits); quantities of 1 to 4 integer
            // digits: more layouts per market than the cache holds, so layouts are evicted and relearnt.
            let ts = match rng.u8(0..20) {
                0 => 1_723_161_600_000_000 + i,
                1 => 17_231_616_000_000_000 + i,
                _ => 1_723_161_600_000_000_000u64 + i * 1_000_003,
            };
            let qty_int = |rng: &mut fastrand::Rng| {
                let digits = rng.u32(1..5);
                rng.u32(0..10u32.pow(digits))
            };
            let mut line = format!(
                "{ts},{venue},{}.{:02},{}.{:02},{}.{:03},{}.{:05}",
                60_000 + rng.u32(0..2000),
                rng.u32(0..100),
                60_000 + rng.u32(0..2000),
                rng.u32(0..100),
                qty_int(&mut rng),
                rng.u32(0..1000),
                qty_int(&mut rng),
                rng.u32(0..100_000),
            )
            .into_bytes();
            if rng.u8(0..10) == 0 {
                let k = rng.usize(0..line.len());
                line[k] = alphabet[rng.usize(0..alphabet.len())];
            }
            let text = String::from_utf8(line).unwrap();
            let general = parse_general(text.as_bytes());
            if text.trim().is_empty() {
                continue;
            }
            want.push(match general {
                Ok(ev) => Ok(format!("{ev:?} {}", ev.to_string_for_test())),
                Err(_) => Err(()),
            });
            data.push_str(&text);
            data.push('\n');
        }
        let got = read_all(data.as_bytes());
        assert_eq!(read_all_batched(data.as_bytes()), got);
        assert_eq!(got.len(), want.len());
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            match (g, w) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "line {}", k + 2),
                (Err(e), Err(())) => assert!(e.starts_with(&format!("t.csv:{}:", k + 2)), "{e}"),
                _ => panic!("line {}: got {g:?}, want {w:?}", k + 2),
            }
        }
        // The mutations hit both outcomes.
        assert!(want.iter().filter(|w| w.is_err()).count() > 100);
    }
}
