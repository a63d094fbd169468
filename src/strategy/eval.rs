//! Runtime state of one strategy's indicators ([`Signals`]) and evaluation of compiled rules.
//!
//! Conditions use three-valued (Kleene) logic: a comparison with an undefined (NaN) operand is undefined,
//! `false and x` is false, `true or x` is true, and an undefined rule counts as false. Evaluation walks the node
//! arena by index and allocates nothing.

use std::sync::Arc;

use super::compile::{Node, NodeId, Program, WinFunc};
use super::expr::BinOp;
use super::window::{EdgeWindow, Window};
use super::Strategy;
use crate::model::TsNs;
use crate::signal::{Sample, SERIES_COUNT};

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
    windows: Vec<Window>,
    episodes: Vec<EdgeWindow>,
    latest: [f64; SERIES_COUNT],
    first_ts: Option<TsNs>,
    now: TsNs,
}

impl Signals {
    pub fn new(strategy: &Strategy) -> Signals {
        let program = Arc::clone(&strategy.program);
        let windows = program
            .buffers
            .iter()
            .map(|b| Window::new(b.len_ns, b.needs))
            .collect();
        let episodes = program
            .episodes
            .iter()
            .map(|e| EdgeWindow::new(e.len_ns))
            .collect();
        Signals {
            program,
            windows,
            episodes,
            latest: [f64::NAN; SERIES_COUNT],
            first_ts: None,
            now: TsNs::MIN,
        }
    }

    /// Time of the last `advance`/`on_sample`.
    pub fn now(&self) -> TsNs {
        self.now
    }

    /// Timestamp of the first sample ever seen (warm-up reference).
    pub fn first_ts(&self) -> Option<TsNs> {
        self.first_ts
    }

    /// Prunes every window to `now` (ignored if `now` is earlier than a previous call).
    pub fn advance(&mut self, now: TsNs) {
        if now < self.now {
            return;
        }
        self.now = now;
        for w in &mut self.windows {
            w.advance(now);
        }
        for e in &mut self.episodes {
            e.advance(now);
        }
    }

    /// Takes a sample: advances to its time, pushes it into every window, then updates every episode condition
    /// (inner-most first) with `now` = the sample's time. A sample older than the current time is taken at the
    /// current time (windows stay ordered).
    pub fn on_sample(&mut self, sample: &Sample) {
        let ts = sample.ts.max(self.now);
        self.advance(ts);
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
        }
        self.latest = sample.values;
        let program = &*self.program;
        for (w, spec) in self.windows.iter_mut().zip(&program.buffers) {
            w.push(ts, sample.get(spec.series));
        }
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
    }

    /// Whether rule `rule` fires at `now` (undefined counts as false). Call `advance(now)` first.
    pub fn eval_rule(&self, _strategy: &Strategy, rule: usize, now: TsNs, ctx: &Context) -> bool {
        self.rule_truth(rule, now, ctx) == Tri::True
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

    fn warm(&self, len_ns: i64, now: TsNs) -> bool {
        self.first_ts
            .is_some_and(|first| now.saturating_sub(first) >= len_ns)
    }

    fn num(&self, p: &Program, id: NodeId, now: TsNs, ctx: &Context) -> f64 {
        let Some(node) = p.nodes.get(id as usize) else {
            return f64::NAN;
        };
        match *node {
            Node::Num(v) => v,
            Node::Series(s) => {
                let v = self.latest[s as usize];
                if v.is_finite() {
                    v
                } else {
                    f64::NAN
                }
            }
            Node::PnlPct => ctx.pnl_pct,
            Node::HoldS => ctx.hold_s,
            Node::Win { func, buf } => {
                let Some(w) = self.windows.get(buf as usize) else {
                    return f64::NAN;
                };
                if !self.warm(w.len_ns(), now) {
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
            Node::Episodes { slot } => match self.episodes.get(slot as usize) {
                Some(e) if self.warm(e.len_ns(), now) => e.count() as f64,
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
                let (x, y) = (self.num(p, a, now, ctx), self.num(p, b, now, ctx));
                if x.is_nan() || y.is_nan() {
                    return Tri::Unknown;
                }
                let r = match op {
                    BinOp::Lt => x < y,
                    BinOp::Le => x <= y,
                    BinOp::Gt => x > y,
                    BinOp::Ge => x >= y,
                    BinOp::Eq => x == y,
                    BinOp::Ne => x != y,
                    _ => return Tri::Unknown,
                };
                if r {
                    Tri::True
                } else {
                    Tri::False
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
