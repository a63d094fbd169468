//! Runtime state of one strategy's indicators ([`Signals`]) and evaluation of compiled rules.
//!
//! Conditions use three-valued (Kleene) logic: a comparison with an undefined (NaN) operand is undefined,
//! `false and x` is false, `true or x` is true, and an undefined rule counts as false. Evaluation walks the node
//! arena by index and allocates nothing.

use std::sync::Arc;

use super::compile::{Node, NodeId, Program, WinFunc};
use super::expr::BinOp;
use super::window::Needs;
use super::window::{self, EdgeWindow, PlainRow, PlainWindows, Window, PLAIN_WIDTH};
use super::Strategy;
use crate::model::TsNs;
use crate::signal::Sample;

/// Values of the open position; NaN when flat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context {
    /// Unrealised PnL of the open position in percent of the entry price.
    pub pnl_pct: f64,
    /// Seconds since the entry decision.
    pub hold_s: f64,
}

impl Context {
    /// No position: `pnl_pct` and `hold_s` are undefined.
    pub fn flat() -> Context {
        Context {
            pnl_pct: f64::NAN,
            hold_s: f64::NAN,
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::flat()
    }
}

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    False,
    True,
    Unknown,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::False => Tri::True,
            Tri::True => Tri::False,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

/// Rolling windows and episode counters of one strategy, fed by the engine.
///
/// Call [`Signals::on_sample`] at every sample and [`Signals::advance`] with the event time before evaluating at
/// an event that is not a sample; both with non-decreasing times.
#[derive(Debug, Clone)]
pub struct Signals {
    program: Arc<Program>,
    /// Where each of the program's buffers lives.
    slots: Vec<Slot>,
    /// Buffers with running statistics (mean, zscore, min, max), and the series each reads.
    windows: Vec<Window>,
    window_series: Vec<usize>,
    /// Buffers read only by `change`/`change_pct`, grouped by length.
    plain: Vec<PlainGroup>,
    episodes: Vec<EdgeWindow>,
    /// Start of the warm-up (see [`Signals::first_ts`]).
    first_ts: Option<TsNs>,
    now: TsNs,
    /// Every window-function node over a buffer with running statistics: `(node, function, window)`.
    win_nodes: Vec<(NodeId, WinFunc, u32)>,
    /// Every `episodes` node: `(node, slot)`.
    episode_nodes: Vec<(NodeId, u32)>,
    /// Every series node: `(node, series index)`.
    series_nodes: Vec<(NodeId, usize)>,
    /// The value at `now` of every leaf node that does not depend on the position (numbers, series, window
    /// functions, episode counts; NaN = undefined), indexed by node id: each computed once per event however many
    /// rules read it.
    vals: Vec<f64>,
    /// Per rule: its conjunction of leaf comparisons when it has that shape (the common one), evaluated straight
    /// from `vals`; `None` for other shapes, which walk the tree.
    conj: Vec<Option<Conjunction>>,
    /// The entry rules' indices in file order (what [`Signals::first_entry`] walks).
    entries: Box<[usize]>,
    /// Only plain windows and constants: no series read directly, no windows with running statistics, no
    /// episodes (a sample then has nothing to do past the plain groups).
    plain_only: bool,
}

/// Plain windows of one length (up to [`PLAIN_WIDTH`]), with the series each member reads and the
/// `change`/`change_pct` nodes over them: one struct, so the per-sample loops walk one slice.
#[derive(Debug, Clone)]
struct PlainGroup {
    win: PlainWindows,
    /// Series index per member; [`NO_SERIES`] for unused members (their values stay NaN).
    series: [u8; PLAIN_WIDTH],
    members: usize,
    /// Set once `now - first sample >= W` (it stays so: time only moves forward).
    warm: bool,
    nodes: Box<[PlainNode]>,
}

/// Series index of an unused member of a [`PlainGroup`] (out of range: reads as NaN).
const NO_SERIES: u8 = u8::MAX;

/// A `change`/`change_pct` node over member `member` of a [`PlainGroup`], written to `vals[out]`.
#[derive(Debug, Clone, Copy)]
struct PlainNode {
    out: NodeId,
    member: u8,
    /// `change_pct` (else `change`).
    pct: bool,
}

impl PlainGroup {
    /// Writes the value at `now` of every `change`/`change_pct` node over the group into `vals`.
    #[inline(always)]
    fn refresh(&mut self, first_ts: Option<TsNs>, now: TsNs, vals: &mut [f64]) {
        if !self.warm {
            self.warm = warm(first_ts, self.win.len_ns(), now);
        }
        const UNDEFINED: PlainRow = [f64::NAN; PLAIN_WIDTH];
        let (first, last) = match self.win.ends() {
            Some(ends) if self.warm => ends,
            _ => (&UNDEFINED, &UNDEFINED),
        };
        for n in self.nodes.iter() {
            let m = n.member as usize % PLAIN_WIDTH;
            let v = if n.pct {
                window::change_pct(first[m], last[m])
            } else {
                window::change(first[m], last[m])
            };
            if let Some(out) = vals.get_mut(n.out as usize) {
                *out = v;
            }
        }
    }
}

/// Where a buffer of the program is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// `windows[i]`.
    Full(u32),
    /// Member `m` of `plain[g]`.
    Plain(u32, u32),
}

/// A rule of `leaf <op> leaf` comparisons joined by `and`.
#[derive(Debug, Clone)]
enum Conjunction {
    /// Every comparison is between a leaf and a number, and is not `!=`: each is a range the leaf's value must be in
    /// (two comparisons, no operator to dispatch on).
    Ranges(Box<[Range]>),
    /// Otherwise, the comparisons as written.
    Cmps(Box<[(BinOp, NodeId, NodeId)]>),
}

/// `lo <= vals[node] <= hi`: false for an undefined (NaN) value, like the comparison it stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    node: NodeId,
    lo: f64,
    hi: f64,
}

impl Range {
    /// `x <op> c` as a range of `x` (exactly: `x < c` is `x <= ` the largest f64 below `c`); `None` for `!=` and
    /// a non-finite `c`.
    fn of(node: NodeId, op: BinOp, c: f64) -> Option<Range> {
        if !c.is_finite() {
            return None;
        }
        let inf = f64::INFINITY;
        let (lo, hi) = match op {
            BinOp::Le => (-inf, c),
            BinOp::Lt => (-inf, next_down(c)),
            BinOp::Ge => (c, inf),
            BinOp::Gt => (next_up(c), inf),
            BinOp::Eq => (c, c),
            _ => return None,
        };
        Some(Range { node, lo, hi })
    }

    #[inline(always)]
    fn holds(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// The least f64 above finite `x` (`f64::next_up`, which is newer than this crate's minimum Rust).
fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

/// The greatest f64 below finite `x`.
fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// The comparison `a <op> b` with a number on one side, as a [`Range`] of the other.
fn range(p: &Program, op: BinOp, a: NodeId, b: NodeId) -> Option<Range> {
    let num = |id: NodeId| match p.nodes.get(id as usize) {
        Some(&Node::Num(c)) => Some(c),
        _ => None,
    };
    match (num(a), num(b)) {
        (_, Some(c)) => Range::of(a, op, c),
        // `c <op> x` is `x <op'> c` with the operator mirrored.
        (Some(c), None) => {
            let mirrored = match op {
                BinOp::Lt => BinOp::Gt,
                BinOp::Le => BinOp::Ge,
                BinOp::Gt => BinOp::Lt,
                BinOp::Ge => BinOp::Le,
                other => other,
            };
            Range::of(b, mirrored, c)
        }
        (None, None) => None,
    }
}

/// Flattens `root` into a list of `leaf <op> leaf` comparisons joined by `and`, if it is one; leaves are numbers,
/// series, window functions and episode counts (not the position's `pnl_pct`/`hold_s`).
fn conjunction(p: &Program, root: NodeId) -> Option<Conjunction> {
    fn is_leaf(p: &Program, id: NodeId) -> bool {
        matches!(
            p.nodes.get(id as usize),
            Some(Node::Num(_) | Node::Series(_) | Node::Win { .. } | Node::Episodes { .. })
        )
    }
    fn walk(p: &Program, id: NodeId, out: &mut Vec<(BinOp, NodeId, NodeId)>) -> bool {
        match p.nodes.get(id as usize) {
            Some(&Node::And(a, b)) => walk(p, a, out) && walk(p, b, out),
            Some(&Node::Cmp(op, a, b)) if is_leaf(p, a) && is_leaf(p, b) => {
                out.push((op, a, b));
                true
            }
            _ => false,
        }
    }
    let mut out = Vec::new();
    if !walk(p, root, &mut out) {
        return None;
    }
    let ranges: Option<Box<[Range]>> = out.iter().map(|&(op, a, b)| range(p, op, a, b)).collect();
    Some(match ranges {
        Some(r) => Conjunction::Ranges(r),
        None => Conjunction::Cmps(out.into_boxed_slice()),
    })
}

/// `compare(op, x, y) == Some(true)` without the NaN tests: every IEEE comparison with a NaN operand is false
/// already, and `!=` is spelled as `<` or `>` so that it is too.
#[inline(always)]
// `x < y || x > y` is not `x != y`: it is false when either is NaN, which is the point.
#[allow(clippy::double_comparisons)]
fn holds(op: BinOp, x: f64, y: f64) -> bool {
    match op {
        BinOp::Lt => x < y,
        BinOp::Le => x <= y,
        BinOp::Gt => x > y,
        BinOp::Ge => x >= y,
        BinOp::Eq => x == y,
        BinOp::Ne => x < y || x > y,
        _ => false,
    }
}

#[inline(always)]
fn compare(op: BinOp, x: f64, y: f64) -> Option<bool> {
    if x.is_nan() || y.is_nan() {
        return None;
    }
    Some(match op {
        BinOp::Lt => x < y,
        BinOp::Le => x <= y,
        BinOp::Gt => x > y,
        BinOp::Ge => x >= y,
        BinOp::Eq => x == y,
        BinOp::Ne => x != y,
        _ => return None,
    })
}

impl Signals {
    pub fn new(strategy: &Strategy) -> Signals {
        let program = Arc::clone(&strategy.program);
        let (mut slots, mut windows, mut window_series) = (Vec::new(), Vec::new(), Vec::new());
        let mut plain: Vec<PlainGroup> = Vec::new();
        for b in &program.buffers {
            if b.needs == Needs::default() {
                let open = plain
                    .iter()
                    .position(|g| g.win.len_ns() == b.len_ns && g.members < PLAIN_WIDTH);
                let g = match open {
                    Some(g) => g,
                    None => {
                        plain.push(PlainGroup {
                            win: PlainWindows::new(b.len_ns),
                            series: [NO_SERIES; PLAIN_WIDTH],
                            members: 0,
                            warm: false,
                            nodes: Box::new([]),
                        });
                        plain.len() - 1
                    }
                };
                let Some(group) = plain.get_mut(g) else {
                    continue;
                };
                let m = group.members;
                slots.push(Slot::Plain(g as u32, m as u32));
                if let Some(s) = group.series.get_mut(m) {
                    *s = b.series as u8;
                }
                group.members += 1;
            } else {
                slots.push(Slot::Full(windows.len() as u32));
                windows.push(Window::new(b.len_ns, b.needs));
                window_series.push(b.series as usize);
            }
        }
        let episodes: Vec<EdgeWindow> = program
            .episodes
            .iter()
            .map(|e| EdgeWindow::new(e.len_ns))
            .collect();
        // The leaves whose values `vals` caches, by kind; numbers are constants written once.
        let (mut win_nodes, mut episode_nodes, mut series_nodes) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut vals = vec![f64::NAN; program.nodes.len()];
        for (id, (n, v)) in program.nodes.iter().zip(vals.iter_mut()).enumerate() {
            let id = id as NodeId;
            match *n {
                Node::Win { func, buf } => win_nodes.push((id, func, buf)),
                Node::Episodes { slot } => episode_nodes.push((id, slot)),
                Node::Series(s) => series_nodes.push((id, s as usize)),
                Node::Num(x) => *v = x,
                _ => {}
            }
        }
        let conj: Vec<Option<Conjunction>> = program
            .rules
            .iter()
            .map(|r| conjunction(&program, r.root))
            .collect();
        let entries = strategy.entry_rules().collect();
        let mut plain_nodes = vec![Vec::new(); plain.len()];
        let win_nodes: Vec<(NodeId, WinFunc, u32)> = win_nodes
            .into_iter()
            .filter_map(
                |(id, func, buf): (NodeId, WinFunc, u32)| match slots.get(buf as usize) {
                    Some(&Slot::Full(i)) => Some((id, func, i)),
                    Some(&Slot::Plain(g, m)) => {
                        if let Some(nodes) = plain_nodes.get_mut(g as usize) {
                            nodes.push(PlainNode {
                                out: id,
                                member: m as u8,
                                pct: func == WinFunc::ChangePct,
                            });
                        }
                        None
                    }
                    None => None,
                },
            )
            .collect();
        for (g, nodes) in plain.iter_mut().zip(plain_nodes) {
            g.nodes = nodes.into_boxed_slice();
        }
        let plain_only = windows.is_empty()
            && win_nodes.is_empty()
            && episodes.is_empty()
            && episode_nodes.is_empty()
            && series_nodes.is_empty();
        Signals {
            plain_only,
            program,
            slots,
            windows,
            window_series,
            plain,
            episodes,
            first_ts: None,
            now: TsNs::MIN,
            win_nodes,
            episode_nodes,
            series_nodes,
            vals,
            conj,
            entries,
        }
    }

    /// Time of the last `advance`/`on_sample`.
    pub fn now(&self) -> TsNs {
        self.now
    }

    /// Start of the warm-up: the first sample, or the first after the latest feed gap ([`Signals::restart`]).
    pub fn first_ts(&self) -> Option<TsNs> {
        self.first_ts
    }

    /// Restarts the warm-up at `ts`, the time of the first sample after a feed gap (call before feeding that
    /// sample): every window function and episode count is undefined again until `now − ts >= W`. By then every
    /// sample from before the gap has left the window, so no value spans the gap. An episode condition's previous
    /// value is forgotten (the first sample after the gap counts as the first).
    pub fn restart(&mut self, ts: TsNs) {
        self.first_ts = Some(ts.max(self.now));
        for g in &mut self.plain {
            g.warm = false;
        }
        for e in &mut self.episodes {
            e.restart();
        }
    }

    /// Prunes every window to `now` (ignored if `now` is earlier than a previous call).
    pub fn advance(&mut self, now: TsNs) {
        if now < self.now {
            return;
        }
        self.advance_windows(now);
        self.refresh();
    }

    #[inline(always)]
    fn advance_windows(&mut self, now: TsNs) {
        self.now = now;
        for g in &mut self.plain {
            g.win.advance(now);
        }
        self.advance_other_windows(now);
    }

    /// Prunes the windows with running statistics and the episode windows.
    #[inline(always)]
    fn advance_other_windows(&mut self, now: TsNs) {
        for w in &mut self.windows {
            w.advance(now);
        }
        for e in &mut self.episodes {
            e.advance(now);
        }
    }

    /// Recomputes every window function and episode count at `now`.
    #[inline]
    fn refresh(&mut self) {
        self.refresh_windows();
        self.refresh_episodes();
    }

    #[inline(always)]
    fn refresh_windows(&mut self) {
        for g in &mut self.plain {
            g.refresh(self.first_ts, self.now, &mut self.vals);
        }
        self.refresh_full_windows();
    }

    #[inline(always)]
    fn refresh_full_windows(&mut self) {
        for &(id, func, i) in &self.win_nodes {
            let v = self.slot_value(Slot::Full(i), func, self.now);
            if let Some(out) = self.vals.get_mut(id as usize) {
                *out = v;
            }
        }
    }

    #[inline]
    fn refresh_episodes(&mut self) {
        for &(id, e) in &self.episode_nodes {
            let v = match self.episodes.get(e as usize) {
                Some(e) if warm(self.first_ts, e.len_ns(), self.now) => e.count() as f64,
                _ => f64::NAN,
            };
            if let Some(slot) = self.vals.get_mut(id as usize) {
                *slot = v;
            }
        }
    }

    /// Takes a sample: advances to its time, pushes it into every window, then updates every episode condition
    /// (inner-most first) with `now` = the sample's time. A sample older than the current time is taken at the
    /// current time (windows stay ordered).
    pub fn on_sample(&mut self, sample: &Sample) {
        let ts = sample.ts.max(self.now);
        self.now = ts;
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
        }
        // Plain windows a group at a time, in one pass: prune, push, then their functions.
        for g in &mut self.plain {
            g.win.advance(ts);
            let mut row = [f64::NAN; PLAIN_WIDTH];
            for (r, &s) in row.iter_mut().zip(g.series.iter()).take(g.members) {
                if let Some(&v) = sample.values.get(s as usize) {
                    *r = if v.is_finite() { v } else { f64::NAN };
                }
            }
            g.win.push(ts, row);
            g.refresh(self.first_ts, ts, &mut self.vals);
        }
        if self.plain_only {
            return;
        }
        self.advance_other_windows(ts);
        for &(id, s) in &self.series_nodes {
            if let (Some(slot), Some(&v)) = (self.vals.get_mut(id as usize), sample.values.get(s)) {
                *slot = if v.is_finite() { v } else { f64::NAN };
            }
        }
        for (w, &s) in self.windows.iter_mut().zip(&self.window_series) {
            w.push(ts, sample.values.get(s).copied().unwrap_or(f64::NAN));
        }
        // Window values first: episode conditions read them; episode counts after their update below.
        self.refresh_full_windows();
        let program = &*self.program;
        let flat = Context::flat();
        for i in 0..self.episodes.len() {
            let Some(spec) = program.episodes.get(i) else {
                break;
            };
            let is_true = self.truth(program, spec.cond, ts, &flat) == Tri::True;
            if let Some(e) = self.episodes.get_mut(i) {
                e.update(ts, is_true);
            }
        }
        if !self.episode_nodes.is_empty() {
            self.refresh_episodes();
        }
    }

    /// The value of `func` over the buffer at `slot` at `now` (NaN until the window is warm).
    #[inline(always)]
    fn slot_value(&self, slot: Slot, func: WinFunc, now: TsNs) -> f64 {
        match slot {
            Slot::Full(i) => match self.windows.get(i as usize) {
                Some(w) => win_value(w, func, self.first_ts, now),
                None => f64::NAN,
            },
            Slot::Plain(g, m) => match self.plain.get(g as usize) {
                Some(g) if warm(self.first_ts, g.win.len_ns(), now) => match func {
                    WinFunc::Change => g.win.change(m as usize),
                    WinFunc::ChangePct => g.win.change_pct(m as usize),
                    // Plain buffers are read only by the two functions above.
                    _ => f64::NAN,
                },
                _ => f64::NAN,
            },
        }
    }

    /// Whether rule `rule` fires at `now` (undefined counts as false). Call `advance(now)` first.
    #[inline]
    pub fn eval_rule(&self, _strategy: &Strategy, rule: usize, now: TsNs, ctx: &Context) -> bool {
        if now == self.now {
            if let Some(Some(conj)) = self.conj.get(rule) {
                // `a and b and …` is true only when every comparison is (Kleene): stop at the first that is not.
                return self.conj_holds(conj);
            }
        }
        self.rule_truth(rule, now, ctx) == Tri::True
    }

    /// `a and b and …` is true only when every comparison is (Kleene): stops at the first that is not.
    #[inline(always)]
    fn conj_holds(&self, conj: &Conjunction) -> bool {
        let val = |id: NodeId| self.vals.get(id as usize).copied().unwrap_or(f64::NAN);
        match conj {
            Conjunction::Ranges(ranges) => ranges.iter().all(|r| r.holds(val(r.node))),
            Conjunction::Cmps(cmps) => cmps.iter().all(|&(op, a, b)| holds(op, val(a), val(b))),
        }
    }

    /// The first entry rule, in file order, that fires at `now` (undefined counts as false). Call `advance(now)`
    /// first.
    #[inline]
    pub fn first_entry(&self, now: TsNs, ctx: &Context) -> Option<usize> {
        let current = now == self.now;
        self.entries
            .iter()
            .copied()
            .find(|&rule| match self.conj.get(rule) {
                Some(Some(conj)) if current => self.conj_holds(conj),
                _ => self.rule_truth(rule, now, ctx) == Tri::True,
            })
    }

    /// The three-valued result of rule `rule` at `now` (`Unknown` for an index out of range).
    pub fn rule_truth(&self, rule: usize, now: TsNs, ctx: &Context) -> Tri {
        match self.program.rules.get(rule) {
            Some(r) => self.truth(&self.program, r.root, now, ctx),
            None => Tri::Unknown,
        }
    }

    /// Every series, context value and function call of the rule by its source text, with its value at `now`
    /// (NaN = undefined). Appends to `out`.
    pub fn rule_values(
        &self,
        _strategy: &Strategy,
        rule: usize,
        now: TsNs,
        ctx: &Context,
        out: &mut Vec<(String, f64)>,
    ) {
        if let Some(r) = self.program.rules.get(rule) {
            for (label, id) in &r.labels {
                out.push((label.clone(), self.num(&self.program, *id, now, ctx)));
            }
        }
    }

    fn num(&self, p: &Program, id: NodeId, now: TsNs, ctx: &Context) -> f64 {
        let Some(node) = p.nodes.get(id as usize) else {
            return f64::NAN;
        };
        match *node {
            Node::Num(v) => v,
            // The latest sample's value (kept finite or NaN by `on_sample`).
            Node::Series(_) => self.vals.get(id as usize).copied().unwrap_or(f64::NAN),
            Node::PnlPct => ctx.pnl_pct,
            Node::HoldS => ctx.hold_s,
            Node::Win { func, buf } => {
                if now == self.now {
                    return self.vals.get(id as usize).copied().unwrap_or(f64::NAN);
                }
                match self.slots.get(buf as usize) {
                    Some(&slot) => self.slot_value(slot, func, now),
                    None => f64::NAN,
                }
            }
            Node::Episodes { slot } => match self.episodes.get(slot as usize) {
                Some(e) if warm(self.first_ts, e.len_ns(), now) => e.count() as f64,
                _ => f64::NAN,
            },
            Node::Neg(a) => -self.num(p, a, now, ctx),
            Node::Arith(op, a, b) => {
                let (x, y) = (self.num(p, a, now, ctx), self.num(p, b, now, ctx));
                let r = match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div if y == 0.0 => f64::NAN,
                    BinOp::Div => x / y,
                    _ => f64::NAN,
                };
                if r.is_finite() {
                    r
                } else {
                    f64::NAN
                }
            }
            // Conditions used as numbers do not type-check; keep evaluation total anyway.
            _ => match self.truth(p, id, now, ctx) {
                Tri::True => 1.0,
                Tri::False => 0.0,
                Tri::Unknown => f64::NAN,
            },
        }
    }

    fn truth(&self, p: &Program, id: NodeId, now: TsNs, ctx: &Context) -> Tri {
        let Some(node) = p.nodes.get(id as usize) else {
            return Tri::Unknown;
        };
        match *node {
            Node::Bool(true) => Tri::True,
            Node::Bool(false) => Tri::False,
            Node::Cmp(op, a, b) => {
                match compare(op, self.num(p, a, now, ctx), self.num(p, b, now, ctx)) {
                    Some(true) => Tri::True,
                    Some(false) => Tri::False,
                    None => Tri::Unknown,
                }
            }
            Node::And(a, b) => match self.truth(p, a, now, ctx) {
                Tri::False => Tri::False,
                l => match (l, self.truth(p, b, now, ctx)) {
                    (_, Tri::False) => Tri::False,
                    (Tri::True, Tri::True) => Tri::True,
                    _ => Tri::Unknown,
                },
            },
            Node::Or(a, b) => match self.truth(p, a, now, ctx) {
                Tri::True => Tri::True,
                l => match (l, self.truth(p, b, now, ctx)) {
                    (_, Tri::True) => Tri::True,
                    (Tri::False, Tri::False) => Tri::False,
                    _ => Tri::Unknown,
                },
            },
            Node::Not(a) => self.truth(p, a, now, ctx).not(),
            _ => Tri::Unknown,
        }
    }
}

/// A window of length `len_ns` is defined once `now - first sample >= W`.
#[inline]
fn warm(first_ts: Option<TsNs>, len_ns: i64, now: TsNs) -> bool {
    first_ts.is_some_and(|first| now.saturating_sub(first) >= len_ns)
}

/// The value of `func` over `w` at `now` (NaN until the window is warm).
#[inline(always)]
fn win_value(w: &Window, func: WinFunc, first_ts: Option<TsNs>, now: TsNs) -> f64 {
    if !warm(first_ts, w.len_ns(), now) {
        return f64::NAN;
    }
    match func {
        WinFunc::Change => w.change(),
        WinFunc::ChangePct => w.change_pct(),
        WinFunc::Mean => w.mean(),
        WinFunc::Min => w.min(),
        WinFunc::Max => w.max(),
        WinFunc::ZScore => w.zscore(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SeriesId;

    const S: i64 = 1_000_000_000;

    fn strategy(rules: &[&str]) -> Strategy {
        let mut src = String::from("name = \"t\"\nsymbol = \"BTCUSDT\"\n");
        for (i, r) in rules.iter().enumerate() {
            src.push_str(&format!(
                "[[rule]]\nname = \"r{i}\"\nwhen = \"{r}\"\naction = \"enter_long\"\n"
            ));
        }
        src.push_str("[exit]\nmax_hold = \"60s\"\n[order]\nquantity = \"0.01\"\n");
        crate::strategy::parse_str(&src, "t.toml").unwrap()
    }

    /// A comparison with a number, as a range, is the comparison: at, just above and just below the number, at
    /// zeros of both signs, infinities and NaN.
    #[test]
    fn ranges_are_their_comparisons() {
        let numbers = [
            0.0,
            -0.0,
            2.0,
            -0.3,
            1e-300,
            -1e300,
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let ops = [BinOp::Lt, BinOp::Le, BinOp::Gt, BinOp::Ge, BinOp::Eq];
        for &c in &numbers {
            let mut xs = vec![0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
            xs.extend([c, next_up(c), next_down(c), -c]);
            for &op in &ops {
                let r = Range::of(0, op, c).unwrap();
                for &x in &xs {
                    assert_eq!(
                        r.holds(x),
                        compare(op, x, c) == Some(true),
                        "{x} {op:?} {c}"
                    );
                }
            }
            assert!(Range::of(0, BinOp::Ne, c).is_none());
        }
        assert!(next_up(1.0) > 1.0 && next_down(1.0) < 1.0 && next_down(next_up(1.0)) == 1.0);
    }

    /// The flat conjunction path and the tree walk agree at every sample, including warm-up (undefined values)
    /// and shared window functions.
    #[test]
    fn conjunctions_agree_with_the_tree_walk() {
        let rules = [
            "change_pct(perp_mid, 5s) <= -0.01 and change(premium_bps, 5s) >= 0.5",
            "change(premium_bps, 5s) >= 0.5 and perp_mid > 100 and 1 < 2",
            "episodes(premium_bps > 1, 10s) >= 1 and mean(premium_bps, 3s) != 0",
            "zscore(perp_mid, 4s) > 1 and max(spot_mid, 2s) >= min(spot_mid, 2s)",
            "change(perp_mid, 2s) < 0 or premium_bps > 2",
            "not (perp_mid < 100)",
            "-0.01 >= change_pct(perp_mid, 5s) and 100 < perp_mid",
        ];
        let st = strategy(&rules);
        let mut sig = Signals::new(&st);
        assert!(sig.conj[0].is_some() && sig.conj[1].is_some() && sig.conj[3].is_some());
        assert!(sig.conj[4].is_none() && sig.conj[5].is_none());
        let ranges = |i: usize| matches!(sig.conj[i], Some(Conjunction::Ranges(_)));
        assert!(ranges(0) && ranges(1) && ranges(6) && !ranges(2) && !ranges(3));
        let mut rng = fastrand::Rng::with_seed(5);
        let (mut spot, mut perp) = (100.0f64, 100.0f64);
        let mut fired = [0usize; 7];
        for t in 0..5_000i64 {
            spot += rng.f64() - 0.5;
            perp += rng.f64() - 0.5;
            let mut values = [f64::NAN; crate::signal::SERIES_COUNT];
            values[SeriesId::SpotMid as usize] = spot;
            values[SeriesId::PerpMid as usize] = perp;
            values[SeriesId::PremiumBps as usize] = (spot - perp) / perp * 10_000.0;
            let ts = t * S / 10;
            sig.on_sample(&Sample { ts, values });
            let ctx = Context::flat();
            for (i, f) in fired.iter_mut().enumerate() {
                let fast = sig.eval_rule(&st, i, ts, &ctx);
                assert_eq!(
                    fast,
                    sig.rule_truth(i, ts, &ctx) == Tri::True,
                    "rule {i} at {t}"
                );
                *f += usize::from(fast);
            }
        }
        // Every rule both fired and did not at some point: the comparison was not vacuous.
        assert!(fired.iter().all(|&n| n > 0 && n < 5_000), "{fired:?}");
    }
}
