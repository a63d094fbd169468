//! Rolling time windows over one series: first/last value, running mean and variance, monotonic min/max.
//!
//! A window of length W at time `now` holds every sample with `ts >= now - W` (inclusive edge). Pushing and pruning
//! are O(1) amortised; the deques grow to the largest population seen and then stay (no allocation per event).
//! Undefined values (NaN or ±inf) are kept in the window and make mean/min/max/zscore undefined while present.

use std::collections::VecDeque;

use crate::model::TsNs;

/// What a window must maintain besides its samples (set at compile time from the functions that use it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub sums: bool,
    pub min: bool,
    pub max: bool,
}

/// A FIFO of `(ts, value)` in a power-of-two ring: front/back/push/pop are a mask and an index, no wrap-around
/// arithmetic beyond that; it doubles when full and never shrinks (no allocation per event once grown). `T` is one
/// value ([`Window`]) or a row of them ([`PlainWindows`]).
#[derive(Debug, Clone)]
struct Ring<T> {
    buf: Vec<(TsNs, T)>,
    head: usize,
    len: usize,
    /// What unused places hold.
    blank: T,
}

impl<T: Copy> Ring<T> {
    fn new(blank: T) -> Ring<T> {
        Ring {
            buf: vec![(0, blank); 16],
            head: 0,
            len: 0,
            blank,
        }
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.buf.len() - 1
    }

    #[inline(always)]
    fn front(&self) -> Option<&(TsNs, T)> {
        if self.len == 0 {
            return None;
        }
        self.buf.get(self.head)
    }

    #[inline(always)]
    fn back(&self) -> Option<&(TsNs, T)> {
        if self.len == 0 {
            return None;
        }
        self.buf.get((self.head + self.len - 1) & self.mask())
    }

    #[inline(always)]
    fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) & self.mask();
            self.len -= 1;
        }
    }

    /// Drops the items older than `cutoff` from the front.
    #[inline(always)]
    fn prune_before(&mut self, cutoff: TsNs) {
        while self.front().is_some_and(|&(t, _)| t < cutoff) {
            self.pop_front();
        }
    }

    #[inline(always)]
    fn push_back(&mut self, item: (TsNs, T)) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let i = (self.head + self.len) & self.mask();
        if let Some(slot) = self.buf.get_mut(i) {
            *slot = item;
        }
        self.len += 1;
    }

    #[cold]
    fn grow(&mut self) {
        let mut next = Vec::with_capacity(self.buf.len() * 2);
        next.extend(self.iter());
        next.resize(self.buf.len() * 2, (0, self.blank));
        self.buf = next;
        self.head = 0;
    }

    fn iter(&self) -> impl Iterator<Item = (TsNs, T)> + '_ {
        let mask = self.mask();
        (0..self.len).filter_map(move |k| self.buf.get((self.head + k) & mask).copied())
    }
}

/// Most windows one [`PlainWindows`] holds: a row is a fixed array (no per-row slicing); more windows of one
/// length go into several groups.
pub const PLAIN_WIDTH: usize = 4;

/// One sample of a [`PlainWindows`] group: a value per member window (unused members NaN).
pub type PlainRow = [f64; PLAIN_WIDTH];

/// Up to [`PLAIN_WIDTH`] windows of one length W whose functions read only their first and last sample (`change`,
/// `change_pct`), as rows of one ring: every window is pushed at every sample, so they share their timestamps and
/// are pruned once.
#[derive(Debug, Clone)]
pub struct PlainWindows {
    len_ns: i64,
    /// The samples: time and one value per window.
    samples: Ring<PlainRow>,
}

impl PlainWindows {
    pub fn new(len_ns: i64) -> PlainWindows {
        PlainWindows {
            len_ns,
            samples: Ring::new([f64::NAN; PLAIN_WIDTH]),
        }
    }

    pub fn len_ns(&self) -> i64 {
        self.len_ns
    }

    /// Drops the samples older than `now - W`.
    #[inline(always)]
    pub fn advance(&mut self, now: TsNs) {
        self.samples.prune_before(now.saturating_sub(self.len_ns));
    }

    /// Appends a sample at `ts`: one value per window (undefined values as NaN).
    #[inline(always)]
    pub fn push(&mut self, ts: TsNs, row: PlainRow) {
        self.samples.push_back((ts, row));
    }

    /// The oldest and the newest row, or `None` when empty.
    #[inline(always)]
    pub fn ends(&self) -> Option<(&PlainRow, &PlainRow)> {
        Some((&self.samples.front()?.1, &self.samples.back()?.1))
    }

    /// Oldest value of window `member` (NaN if empty).
    pub fn first(&self, member: usize) -> f64 {
        self.ends()
            .and_then(|(f, _)| f.get(member).copied())
            .unwrap_or(f64::NAN)
    }

    /// Newest value of window `member` (NaN if empty).
    pub fn last(&self, member: usize) -> f64 {
        self.ends()
            .and_then(|(_, l)| l.get(member).copied())
            .unwrap_or(f64::NAN)
    }

    /// [`change`] of window `member`.
    pub fn change(&self, member: usize) -> f64 {
        change(self.first(member), self.last(member))
    }

    /// [`change_pct`] of window `member`.
    pub fn change_pct(&self, member: usize) -> f64 {
        change_pct(self.first(member), self.last(member))
    }
}

/// `change(x, W)`: `last - first`.
#[inline(always)]
pub fn change(first: f64, last: f64) -> f64 {
    last - first
}

/// `change_pct(x, W)`: `(last / first - 1) * 100`; undefined when `first` is 0.
#[inline(always)]
pub fn change_pct(first: f64, last: f64) -> f64 {
    if first == 0.0 {
        return f64::NAN;
    }
    (last / first - 1.0) * 100.0
}

/// One (series, W) buffer shared by every function that reads it.
#[derive(Debug, Clone)]
pub struct Window {
    len_ns: i64,
    needs: Needs,
    /// No running statistics needed (only first/last): the common `change`/`change_pct` case.
    plain: bool,
    samples: Ring<f64>,
    /// Samples in `samples` whose value is undefined.
    undefined: usize,
    /// Running sums of (v - shift) and (v - shift)² over the defined samples; the shift keeps them small.
    shift: f64,
    sum: f64,
    sum_sq: f64,
    removed_since_recompute: usize,
    /// Increasing values (front = minimum) / decreasing values (front = maximum).
    min_q: VecDeque<(TsNs, f64)>,
    max_q: VecDeque<(TsNs, f64)>,
}

/// Recompute the running sums from scratch after this many removals (at least), bounding float drift.
const RECOMPUTE_MIN: usize = 1024;

impl Window {
    pub fn new(len_ns: i64, needs: Needs) -> Window {
        Window {
            len_ns,
            needs,
            plain: needs == Needs::default(),
            samples: Ring::new(0.0),
            undefined: 0,
            shift: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            removed_since_recompute: 0,
            min_q: VecDeque::new(),
            max_q: VecDeque::new(),
        }
    }

    pub fn len_ns(&self) -> i64 {
        self.len_ns
    }

    /// Number of samples currently in the window.
    pub fn len(&self) -> usize {
        self.samples.len
    }

    pub fn is_empty(&self) -> bool {
        self.samples.len == 0
    }

    /// Drops samples older than `now - W`.
    #[inline]
    pub fn advance(&mut self, now: TsNs) {
        let cutoff = now.saturating_sub(self.len_ns);
        while let Some(&(ts, v)) = self.samples.front() {
            if ts >= cutoff {
                break;
            }
            self.samples.pop_front();
            self.remove(v);
        }
        if self.plain {
            return;
        }
        if self.needs.min {
            while self.min_q.front().is_some_and(|&(ts, _)| ts < cutoff) {
                self.min_q.pop_front();
            }
        }
        if self.needs.max {
            while self.max_q.front().is_some_and(|&(ts, _)| ts < cutoff) {
                self.max_q.pop_front();
            }
        }
        if self.needs.sums && self.removed_since_recompute >= RECOMPUTE_MIN.max(self.samples.len) {
            self.recompute();
        }
    }

    /// Appends a sample (timestamps must not decrease; the caller prunes with [`Window::advance`]).
    #[inline]
    pub fn push(&mut self, ts: TsNs, v: f64) {
        let v = if v.is_finite() { v } else { f64::NAN };
        self.samples.push_back((ts, v));
        if v.is_nan() {
            self.undefined += 1;
            return;
        }
        if self.plain {
            return;
        }
        if self.needs.sums {
            if self.defined() == 1 {
                self.shift = v;
                self.sum = 0.0;
                self.sum_sq = 0.0;
            }
            let d = v - self.shift;
            self.sum += d;
            self.sum_sq += d * d;
        }
        if self.needs.min {
            while self.min_q.back().is_some_and(|&(_, b)| b >= v) {
                self.min_q.pop_back();
            }
            self.min_q.push_back((ts, v));
        }
        if self.needs.max {
            while self.max_q.back().is_some_and(|&(_, b)| b <= v) {
                self.max_q.pop_back();
            }
            self.max_q.push_back((ts, v));
        }
    }

    fn defined(&self) -> usize {
        self.samples.len - self.undefined
    }

    #[inline(always)]
    fn remove(&mut self, v: f64) {
        if v.is_nan() {
            self.undefined = self.undefined.saturating_sub(1);
            return;
        }
        if self.needs.sums {
            if self.defined() == 0 {
                self.sum = 0.0;
                self.sum_sq = 0.0;
                self.removed_since_recompute = 0;
            } else {
                let d = v - self.shift;
                self.sum -= d;
                self.sum_sq -= d * d;
                self.removed_since_recompute += 1;
            }
        }
    }

    fn recompute(&mut self) {
        self.removed_since_recompute = 0;
        self.shift = self
            .samples
            .iter()
            .map(|(_, v)| v)
            .find(|v| !v.is_nan())
            .unwrap_or(0.0);
        let (mut s, mut sq) = (0.0, 0.0);
        for (_, v) in self.samples.iter() {
            if !v.is_nan() {
                let d = v - self.shift;
                s += d;
                sq += d * d;
            }
        }
        self.sum = s;
        self.sum_sq = sq;
    }

    /// Value of the oldest sample in the window (NaN if empty).
    pub fn first(&self) -> f64 {
        self.samples.front().map_or(f64::NAN, |&(_, v)| v)
    }

    /// Value of the newest sample in the window (NaN if empty).
    pub fn last(&self) -> f64 {
        self.samples.back().map_or(f64::NAN, |&(_, v)| v)
    }

    /// [`change`] over the window.
    pub fn change(&self) -> f64 {
        change(self.first(), self.last())
    }

    /// [`change_pct`] over the window.
    pub fn change_pct(&self) -> f64 {
        change_pct(self.first(), self.last())
    }

    fn all_defined(&self) -> bool {
        self.samples.len > 0 && self.undefined == 0
    }

    pub fn mean(&self) -> f64 {
        if !self.all_defined() {
            return f64::NAN;
        }
        self.shift + self.sum / self.samples.len as f64
    }

    /// Population variance and the mean square deviation from the shift (for the zero test).
    fn variance(&self) -> (f64, f64) {
        let n = self.samples.len as f64;
        let m = self.sum / n;
        let msq = self.sum_sq / n;
        ((msq - m * m).max(0.0), msq)
    }

    /// `(last - mean) / population stddev`; undefined with fewer than 2 samples or zero deviation.
    pub fn zscore(&self) -> f64 {
        if !self.all_defined() || self.samples.len < 2 {
            return f64::NAN;
        }
        let (var, msq) = self.variance();
        // A variance that is a rounding residue of the running sums counts as zero.
        if var <= 1e-12 * msq || var <= 0.0 {
            return f64::NAN;
        }
        (self.last() - self.mean()) / var.sqrt()
    }

    pub fn min(&self) -> f64 {
        if !self.all_defined() {
            return f64::NAN;
        }
        self.min_q.front().map_or(f64::NAN, |&(_, v)| v)
    }

    pub fn max(&self) -> f64 {
        if !self.all_defined() {
            return f64::NAN;
        }
        self.max_q.front().map_or(f64::NAN, |&(_, v)| v)
    }
}

/// Timestamps of rising edges of an `episodes(cond, W)` condition, pruned to the window.
#[derive(Debug, Clone)]
pub struct EdgeWindow {
    len_ns: i64,
    edges: VecDeque<TsNs>,
    /// The condition was true at the previous sample.
    was_true: bool,
}

impl EdgeWindow {
    pub fn new(len_ns: i64) -> EdgeWindow {
        EdgeWindow {
            len_ns,
            edges: VecDeque::new(),
            was_true: false,
        }
    }

    pub fn len_ns(&self) -> i64 {
        self.len_ns
    }

    pub fn advance(&mut self, now: TsNs) {
        let cutoff = now.saturating_sub(self.len_ns);
        while self.edges.front().is_some_and(|&ts| ts < cutoff) {
            self.edges.pop_front();
        }
    }

    /// Records the condition's value at a sample (`true` only when definitely true).
    pub fn update(&mut self, ts: TsNs, is_true: bool) {
        if is_true && !self.was_true {
            self.edges.push_back(ts);
        }
        self.was_true = is_true;
    }

    /// Forgets the condition's last value (after a feed gap): the next sample counts as the first.
    pub fn restart(&mut self) {
        self.was_true = false;
    }

    /// Rising edges currently in the window.
    pub fn count(&self) -> usize {
        self.edges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const ALL: Needs = Needs {
        sums: true,
        min: true,
        max: true,
    };

    /// A group of plain windows gives what one `Window` per member gives, through growth, wrap-around, pruning
    /// to empty and undefined values.
    #[test]
    fn plain_group_agrees_with_single_windows() {
        let mut rng = fastrand::Rng::with_seed(7);
        let len = 5 * S;
        let mut group = PlainWindows::new(len);
        let mut singles: Vec<Window> = (0..3).map(|_| Window::new(len, Needs::default())).collect();
        let mut t = 0i64;
        for step in 0..20_000 {
            // Bursts of dense samples, then gaps longer than the window (which empty it).
            t += if step % 3000 == 2999 {
                7 * S
            } else {
                rng.i64(0..S / 50)
            };
            group.advance(t);
            let mut row = [f64::NAN; PLAIN_WIDTH];
            for (m, (w, out)) in singles.iter_mut().zip(row.iter_mut()).enumerate() {
                let v = match rng.u8(0..50) {
                    0 => f64::NAN,
                    1 => 0.0,
                    _ => 100.0 + m as f64 + rng.f64(),
                };
                w.advance(t);
                w.push(t, v);
                *out = if v.is_finite() { v } else { f64::NAN };
            }
            group.push(t, row);
            for (m, w) in singles.iter().enumerate() {
                let same =
                    |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                assert!(same(group.first(m), w.first()), "step {step} member {m}");
                assert!(same(group.last(m), w.last()), "step {step} member {m}");
                assert!(same(group.change(m), w.change()), "step {step} member {m}");
                assert!(
                    same(group.change_pct(m), w.change_pct()),
                    "step {step} member {m}"
                );
            }
            if let Some((first, last)) = group.ends() {
                // The unused member stays undefined.
                assert!(first[3].is_nan() && last[3].is_nan());
                assert!((0..3).all(|m| last[m].to_bits() == group.last(m).to_bits()));
            }
        }
    }

    fn feed(w: &mut Window, pts: &[(i64, f64)]) {
        for &(t, v) in pts {
            w.advance(t * S);
            w.push(t * S, v);
        }
    }

    #[test]
    fn inclusive_edge_and_pruning() {
        let mut w = Window::new(10 * S, ALL);
        feed(&mut w, &[(0, 1.0), (5, 3.0), (10, 2.0)]);
        // now = 10: sample at 0 is exactly at now - W, still in.
        assert_eq!(w.len(), 3);
        assert_eq!(w.first(), 1.0);
        assert_eq!(w.change(), 1.0);
        assert_eq!(w.mean(), 2.0);
        assert_eq!(w.min(), 1.0);
        assert_eq!(w.max(), 3.0);
        w.advance(10 * S + 1);
        assert_eq!(w.len(), 2);
        assert_eq!(w.first(), 3.0);
        assert_eq!(w.min(), 2.0);
        assert_eq!(w.max(), 3.0);
        w.advance(21 * S);
        assert!(w.is_empty());
        assert!(w.change().is_nan() && w.mean().is_nan() && w.min().is_nan());
        assert!(w.zscore().is_nan());
    }

    #[test]
    fn zscore_population() {
        let mut w = Window::new(100 * S, ALL);
        feed(&mut w, &[(0, 2.0), (1, 4.0), (2, 4.0), (3, 4.0)]);
        feed(&mut w, &[(4, 5.0), (5, 5.0), (6, 7.0), (7, 9.0)]);
        // mean 5, population stddev 2, last 9 → z = 2.
        assert!((w.zscore() - 2.0).abs() < 1e-12);
        let mut c = Window::new(100 * S, ALL);
        feed(&mut c, &[(0, 3.0), (1, 3.0), (2, 3.0)]);
        assert!(c.zscore().is_nan());
        let mut one = Window::new(100 * S, ALL);
        feed(&mut one, &[(0, 3.0)]);
        assert!(one.zscore().is_nan());
    }

    #[test]
    fn undefined_values_poison_statistics_while_inside() {
        let mut w = Window::new(2 * S, ALL);
        feed(&mut w, &[(0, f64::NAN), (1, 1.0), (2, 2.0)]);
        assert!(w.mean().is_nan() && w.min().is_nan() && w.max().is_nan());
        assert!(w.change().is_nan());
        feed(&mut w, &[(3, 4.0)]);
        assert!((w.mean() - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(w.change(), 3.0);
        assert_eq!(w.min(), 1.0);
        assert!(Window::new(S, ALL).change_pct().is_nan());
        let mut z = Window::new(S, ALL);
        feed(&mut z, &[(0, 0.0), (1, 5.0)]);
        assert!(z.change_pct().is_nan());
    }

    #[test]
    fn running_sums_match_brute_force_over_long_runs() {
        let mut w = Window::new(50 * S, ALL);
        let mut all = Vec::new();
        let mut x = 60_000.0f64;
        let mut rng = fastrand::Rng::with_seed(7);
        for t in 0..20_000i64 {
            x += rng.f64() - 0.5;
            all.push((t, x));
            w.advance(t * S);
            w.push(t * S, x);
            let inside: Vec<f64> = all
                .iter()
                .filter(|&&(ts, _)| ts >= t - 50)
                .map(|&(_, v)| v)
                .collect();
            let n = inside.len() as f64;
            let mean = inside.iter().sum::<f64>() / n;
            let var = inside.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            assert!((w.mean() - mean).abs() < 1e-6, "t={t}");
            let min = inside.iter().copied().fold(f64::INFINITY, f64::min);
            let max = inside.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(w.min(), min);
            assert_eq!(w.max(), max);
            if t > 2 {
                let z = (x - mean) / var.sqrt();
                assert!((w.zscore() - z).abs() < 1e-6, "t={t} {} {z}", w.zscore());
            }
        }
    }

    #[test]
    fn edges_count_rising_only_and_forget() {
        let mut e = EdgeWindow::new(10 * S);
        for (t, v) in [(0, true), (1, true), (2, false), (3, true), (4, false)] {
            e.advance(t * S);
            e.update(t * S, v);
        }
        assert_eq!(e.count(), 2);
        e.advance(10 * S);
        assert_eq!(e.count(), 2);
        e.advance(10 * S + 1);
        assert_eq!(e.count(), 1);
        e.advance(13 * S + 1);
        assert_eq!(e.count(), 0);
    }
}
