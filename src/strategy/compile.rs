//! Type-checks rule expressions and compiles them into one arena of nodes with slots for shared window state.
//!
//! Identical `(function, series, W)` calls share one node; every function over the same `(series, W)` shares one
//! sample buffer; identical `episodes(cond, W)` calls share one edge window. Evaluation (see `eval`) walks node
//! indices only: no strings, no maps, no allocation.

use std::collections::HashMap;

use super::expr::{self, BinOp, Expr, ExprError, ExprKind, Span};
use super::window::Needs;
use crate::signal::SeriesId;

/// Index of a node in [`Program::nodes`].
pub type NodeId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WinFunc {
    Change,
    ChangePct,
    ZScore,
    Mean,
    Min,
    Max,
}

impl WinFunc {
    fn from_name(name: &str) -> Option<WinFunc> {
        Some(match name {
            "change" => WinFunc::Change,
            "change_pct" => WinFunc::ChangePct,
            "zscore" => WinFunc::ZScore,
            "mean" => WinFunc::Mean,
            "min" => WinFunc::Min,
            "max" => WinFunc::Max,
            _ => return None,
        })
    }
}

/// Every function name of the language, for messages and suggestions.
pub const FUNCTIONS: [&str; 7] = [
    "change",
    "change_pct",
    "zscore",
    "mean",
    "min",
    "max",
    "episodes",
];

/// Values of the open position, supplied by the engine at evaluation time.
pub const CONTEXT_NAMES: [&str; 2] = ["pnl_pct", "hold_s"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    Num(f64),
    Bool(bool),
    Series(SeriesId),
    PnlPct,
    HoldS,
    Win { func: WinFunc, buf: u32 },
    Episodes { slot: u32 },
    Neg(NodeId),
    Arith(BinOp, NodeId, NodeId),
    Cmp(BinOp, NodeId, NodeId),
    And(NodeId, NodeId),
    Or(NodeId, NodeId),
    Not(NodeId),
}

/// A `(series, W)` sample buffer and what it must maintain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BufSpec {
    pub series: SeriesId,
    pub len_ns: i64,
    pub needs: Needs,
}

/// One `episodes(cond, W)` state, in dependency order (inner before outer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeSpec {
    pub cond: NodeId,
    pub len_ns: i64,
}

/// A compiled `when`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRule {
    pub root: NodeId,
    /// Every series, context value and function call of the rule by its source text, in source order.
    pub labels: Vec<(String, NodeId)>,
}

/// All rules of a strategy compiled into one arena.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Program {
    pub nodes: Vec<Node>,
    pub rules: Vec<CompiledRule>,
    pub buffers: Vec<BufSpec>,
    pub episodes: Vec<EpisodeSpec>,
    buf_index: HashMap<(SeriesId, i64), u32>,
    node_index: HashMap<(WinFunc, u32), NodeId>,
    episode_index: HashMap<(String, i64), u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Num,
    Bool,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Num => "a number",
            Ty::Bool => "a condition (true/false)",
        }
    }
}

/// Deepest compiled tree accepted (evaluation recurses over it).
const MAX_DEPTH: usize = 200;

struct Compiler<'p, 's> {
    prog: &'p mut Program,
    src: &'s str,
    errors: Vec<ExprError>,
    labels: Vec<(String, NodeId)>,
    /// Inside the condition of an `episodes` call (no position context there).
    in_episodes: bool,
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate within a small edit distance.
pub fn suggest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn did_you_mean(s: Option<&str>) -> String {
    s.map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn series_names() -> impl Iterator<Item = &'static str> {
    SeriesId::ALL.iter().map(|s| s.name())
}

impl Program {
    /// Compiles one rule's `when` text; on failure returns every problem found (not just the first).
    pub fn add_rule(&mut self, src: &str) -> Result<usize, Vec<ExprError>> {
        let ast = expr::parse(src).map_err(|e| vec![e])?;
        let mut c = Compiler {
            prog: self,
            src,
            errors: Vec::new(),
            labels: Vec::new(),
            in_episodes: false,
        };
        let out = c.compile(&ast);
        let Compiler { errors, labels, .. } = c;
        let mut errors = errors;
        if let Some((root, ty)) = out {
            if ty != Ty::Bool && errors.is_empty() {
                errors.push(ExprError::new(
                    ast.span,
                    format!(
                        "`when` must be a condition (true/false), but this is {}; compare it, e.g. `… > 0`",
                        ty.name()
                    ),
                ));
            }
            if errors.is_empty() && self.depth(root, 0) > MAX_DEPTH {
                errors.push(ExprError::new(
                    ast.span,
                    format!("expression is too deep (more than {MAX_DEPTH} levels)"),
                ));
            }
            if errors.is_empty() {
                let mut seen = std::collections::HashSet::new();
                let labels = labels
                    .into_iter()
                    .filter(|(l, _)| seen.insert(l.clone()))
                    .collect();
                self.rules.push(CompiledRule { root, labels });
                return Ok(self.rules.len() - 1);
            }
        }
        if errors.is_empty() {
            errors.push(ExprError::new(ast.span, "invalid expression"));
        }
        Err(errors)
    }

    fn depth(&self, id: NodeId, d: usize) -> usize {
        if d > MAX_DEPTH {
            return d;
        }
        let Some(node) = self.nodes.get(id as usize) else {
            return d;
        };
        match *node {
            Node::Neg(a) | Node::Not(a) => self.depth(a, d + 1),
            Node::Arith(_, a, b) | Node::Cmp(_, a, b) | Node::And(a, b) | Node::Or(a, b) => {
                self.depth(a, d + 1).max(self.depth(b, d + 1))
            }
            Node::Episodes { slot } => self
                .episodes
                .get(slot as usize)
                .map_or(d, |e| self.depth(e.cond, d + 1)),
            _ => d + 1,
        }
    }

    fn push(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        (self.nodes.len() - 1) as NodeId
    }
}

impl Compiler<'_, '_> {
    fn err(&mut self, span: Span, msg: impl Into<String>) -> Option<(NodeId, Ty)> {
        self.errors.push(ExprError::new(span, msg));
        None
    }

    fn text(&self, span: Span) -> String {
        self.src
            .get(span.start..span.end)
            .unwrap_or("")
            .trim()
            .to_string()
    }

    fn compile(&mut self, e: &Expr<'_>) -> Option<(NodeId, Ty)> {
        match &e.kind {
            ExprKind::Num(v) => Some((self.prog.push(Node::Num(*v)), Ty::Num)),
            ExprKind::Bool(b) => Some((self.prog.push(Node::Bool(*b)), Ty::Bool)),
            ExprKind::Duration(_) => self.err(
                e.span,
                "a duration can only be the window argument of a function, e.g. change(perp_mid, 30s)",
            ),
            ExprKind::Ident(name) => self.ident(name, e.span),
            ExprKind::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args, e.span),
            ExprKind::Neg(inner) => {
                let (a, ty) = self.compile(inner)?;
                if ty != Ty::Num {
                    return self.err(
                        inner.span,
                        format!("`-` needs a number, but this is {}", ty.name()),
                    );
                }
                // Fold negative literals.
                if let Some(Node::Num(v)) = self.prog.nodes.get(a as usize).copied() {
                    if let Some(slot) = self.prog.nodes.get_mut(a as usize) {
                        *slot = Node::Num(-v);
                    }
                    return Some((a, Ty::Num));
                }
                Some((self.prog.push(Node::Neg(a)), Ty::Num))
            }
            ExprKind::Not(inner) => {
                let (a, ty) = self.compile(inner)?;
                if ty != Ty::Bool {
                    return self.err(
                        inner.span,
                        format!("`not` needs a condition, but this is {}", ty.name()),
                    );
                }
                Some((self.prog.push(Node::Not(a)), Ty::Bool))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.compile(lhs);
                let r = self.compile(rhs);
                let ((a, lt), (b, rt)) = (l?, r?);
                let (want, out) = match op {
                    BinOp::And | BinOp::Or => (Ty::Bool, Ty::Bool),
                    op if op.is_comparison() => (Ty::Num, Ty::Bool),
                    _ => (Ty::Num, Ty::Num),
                };
                let mut ok = true;
                for (ty, side) in [(lt, lhs), (rt, rhs)] {
                    if ty != want {
                        ok = false;
                        let what = match want {
                            Ty::Bool => format!("`{}` joins conditions", op.as_str()),
                            _ => format!("`{}` needs numbers", op.as_str()),
                        };
                        self.errors.push(ExprError::new(
                            side.span,
                            format!("{what}, but this is {}", ty.name()),
                        ));
                    }
                }
                if !ok {
                    return None;
                }
                let node = match op {
                    BinOp::And => Node::And(a, b),
                    BinOp::Or => Node::Or(a, b),
                    op if op.is_comparison() => Node::Cmp(*op, a, b),
                    op => Node::Arith(*op, a, b),
                };
                Some((self.prog.push(node), out))
            }
        }
    }

    fn ident(&mut self, name: &str, span: Span) -> Option<(NodeId, Ty)> {
        if let Some(s) = SeriesId::from_name(name) {
            self.labels.push((name.to_string(), 0));
            let id = self.prog.push(Node::Series(s));
            if let Some(l) = self.labels.last_mut() {
                l.1 = id;
            }
            return Some((id, Ty::Num));
        }
        if CONTEXT_NAMES.contains(&name) {
            if self.in_episodes {
                return self.err(
                    span,
                    format!("`{name}` cannot be used inside episodes(): episodes are counted at every sample, whether or not a position is open"),
                );
            }
            let id = self.prog.push(if name == "pnl_pct" {
                Node::PnlPct
            } else {
                Node::HoldS
            });
            self.labels.push((name.to_string(), id));
            return Some((id, Ty::Num));
        }
        if FUNCTIONS.contains(&name) {
            return self.err(
                span,
                format!(
                    "`{name}` is a function: call it with arguments, e.g. `{name}(perp_mid, 30s)`"
                ),
            );
        }
        let candidates = series_names()
            .chain(CONTEXT_NAMES)
            .chain(["and", "or", "not", "true", "false"]);
        let msg = match suggest(name, candidates) {
            Some(s) => format!("unknown series `{name}` (did you mean `{s}`?)"),
            None => format!(
                "unknown series `{name}`; series are: {}, and pnl_pct, hold_s while a position is open",
                series_names().collect::<Vec<_>>().join(", ")
            ),
        };
        self.err(span, msg)
    }

    fn window_arg(&mut self, name: &str, arg: Option<&Expr<'_>>, call: Span) -> Option<i64> {
        match arg.map(|a| (&a.kind, a.span)) {
            Some((ExprKind::Duration(ns), _)) => Some(*ns),
            Some((_, span)) => {
                self.err(
                    span,
                    format!("the window of `{name}` must be a duration such as `30s`, `500ms`, `5m`, `1h`"),
                );
                None
            }
            None => {
                self.err(
                    call,
                    format!("`{name}` needs a window, e.g. `{name}(…, 30s)`"),
                );
                None
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        name_span: Span,
        args: &[Expr<'_>],
        span: Span,
    ) -> Option<(NodeId, Ty)> {
        let label = self.text(span);
        if name == "episodes" {
            if args.len() != 2 {
                return self.err(
                    span,
                    format!("`episodes` takes 2 arguments (a condition and a window), e.g. `episodes(change(perp_mid, 30s) < 0, 30m)`; got {}", args.len()),
                );
            }
            let label_pos = self.labels.len();
            let outer = self.in_episodes;
            self.in_episodes = true;
            let cond = self.compile(&args[0]);
            self.in_episodes = outer;
            let w = self.window_arg(name, args.get(1), span);
            let (cond, ty) = cond?;
            let w = w?;
            if ty != Ty::Bool {
                return self.err(
                    args[0].span,
                    format!(
                        "the first argument of `episodes` must be a condition, but this is {}",
                        ty.name()
                    ),
                );
            }
            let key = (args[0].to_string(), w);
            let slot = match self.prog.episode_index.get(&key) {
                Some(&s) => s,
                None => {
                    self.prog.episodes.push(EpisodeSpec { cond, len_ns: w });
                    let s = (self.prog.episodes.len() - 1) as u32;
                    self.prog.episode_index.insert(key, s);
                    s
                }
            };
            let id = self.prog.push(Node::Episodes { slot });
            self.labels.insert(label_pos, (label, id));
            return Some((id, Ty::Num));
        }
        let Some(func) = WinFunc::from_name(name) else {
            let hint = did_you_mean(suggest(name, FUNCTIONS));
            let what = if SeriesId::from_name(name).is_some() || CONTEXT_NAMES.contains(&name) {
                format!("`{name}` is a series, not a function")
            } else {
                format!("unknown function `{name}`{hint}")
            };
            return self.err(
                name_span,
                format!("{what}; functions are: {}", FUNCTIONS.join(", ")),
            );
        };
        if args.len() != 2 {
            return self.err(
                span,
                format!("`{name}` takes 2 arguments (a series and a window), e.g. `{name}(perp_mid, 30s)`; got {}", args.len()),
            );
        }
        let series = match &args[0].kind {
            ExprKind::Ident(s) => match SeriesId::from_name(s) {
                Some(id) => Some(id),
                None => {
                    // Reports unknown names / context misuse with the usual message.
                    let r = self.ident(s, args[0].span);
                    if r.is_some() {
                        self.err(
                            args[0].span,
                            format!("`{name}` needs a market series; `{s}` is a value of the open position"),
                        );
                    }
                    None
                }
            },
            _ => {
                self.err(
                    args[0].span,
                    format!(
                        "the first argument of `{name}` must be a series name such as `perp_mid`"
                    ),
                );
                None
            }
        };
        let w = self.window_arg(name, args.get(1), span);
        let (series, w) = (series?, w?);
        let buf = match self.prog.buf_index.get(&(series, w)) {
            Some(&b) => b,
            None => {
                self.prog.buffers.push(BufSpec {
                    series,
                    len_ns: w,
                    needs: Needs::default(),
                });
                let b = (self.prog.buffers.len() - 1) as u32;
                self.prog.buf_index.insert((series, w), b);
                b
            }
        };
        if let Some(spec) = self.prog.buffers.get_mut(buf as usize) {
            match func {
                WinFunc::Mean | WinFunc::ZScore => spec.needs.sums = true,
                WinFunc::Min => spec.needs.min = true,
                WinFunc::Max => spec.needs.max = true,
                WinFunc::Change | WinFunc::ChangePct => {}
            }
        }
        let id = match self.prog.node_index.get(&(func, buf)) {
            Some(&n) => n,
            None => {
                let n = self.prog.push(Node::Win { func, buf });
                self.prog.node_index.insert((func, buf), n);
                n
            }
        };
        self.labels.push((label, id));
        Some((id, Ty::Num))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(src: &str) -> Vec<ExprError> {
        Program::default().add_rule(src).unwrap_err()
    }

    #[test]
    fn shares_buffers_and_nodes() {
        let mut p = Program::default();
        p.add_rule("change(perp_mid, 30s) > 0 and mean(perp_mid, 30s) > 1")
            .unwrap();
        p.add_rule("change(perp_mid, 30s) < 0 or min(perp_mid, 60s) > 1")
            .unwrap();
        assert_eq!(p.buffers.len(), 2);
        assert!(p.buffers[0].needs.sums && !p.buffers[0].needs.min);
        assert!(p.buffers[1].needs.min);
        let wins = p
            .nodes
            .iter()
            .filter(|n| matches!(n, Node::Win { .. }))
            .count();
        assert_eq!(wins, 3);
        assert_eq!(p.rules[1].labels[0].0, "change(perp_mid, 30s)");
        assert_eq!(p.rules[1].labels[0].1, p.rules[0].labels[0].1);
    }

    #[test]
    fn episodes_dedupe_and_order() {
        let mut p = Program::default();
        p.add_rule("episodes(episodes(perp_mid > 1, 10s) >= 2, 60s) > 0")
            .unwrap();
        p.add_rule("episodes(perp_mid>1,10s) > 0").unwrap();
        assert_eq!(p.episodes.len(), 2);
        assert_eq!(p.episodes[0].len_ns, 10 * expr::NS_PER_S);
        let labels: Vec<_> = p.rules[0].labels.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(
            labels,
            [
                "episodes(episodes(perp_mid > 1, 10s) >= 2, 60s)",
                "episodes(perp_mid > 1, 10s)",
                "perp_mid"
            ]
        );
    }

    #[test]
    fn type_errors_all_reported() {
        let e = errs("change(premum_bps, 30s) > 1 and zscor(perp_mid, 5m) > 2 and spot_mdi > 0");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].message.contains("did you mean `premium_bps`"));
        assert_eq!(e[0].span.start, 7);
        assert!(e[1].message.contains("did you mean `zscore`"));
        assert!(e[2].message.contains("did you mean `spot_mid`"));
        assert!(errs("perp_mid + 1")[0]
            .message
            .contains("must be a condition"));
        assert!(errs("perp_mid > 1 and 2")[0]
            .message
            .contains("joins conditions"));
        assert!(errs("(perp_mid > 1) + 1")[0]
            .message
            .contains("needs numbers"));
        assert!(errs("change(perp_mid + 1, 30s) > 0")[0]
            .message
            .contains("series name"));
        assert!(errs("change(perp_mid, 30) > 0")[0]
            .message
            .contains("duration"));
        assert!(errs("change(perp_mid) > 0")[0]
            .message
            .contains("2 arguments"));
        assert!(errs("change(pnl_pct, 30s) > 0")[0]
            .message
            .contains("open position"));
        assert!(errs("episodes(hold_s > 3, 30s) > 0")[0]
            .message
            .contains("episodes"));
        assert!(errs("episodes(perp_mid, 30s) > 0")[0]
            .message
            .contains("condition"));
        assert!(errs("perp_mid > 30s")[0].message.contains("duration"));
        assert!(errs("perp_mid(1) > 0")[0].message.contains("is a series"));
        assert!(errs("change > 0")[0].message.contains("is a function"));
        assert!(errs("not 1")[0].message.contains("`not` needs"));
        assert!(errs("-(perp_mid > 1)")[0].message.contains("`-` needs"));
    }

    #[test]
    fn context_values_compile_outside_episodes() {
        let mut p = Program::default();
        p.add_rule("pnl_pct <= -0.5 or hold_s > 30").unwrap();
        let l: Vec<_> = p.rules[0].labels.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(l, ["pnl_pct", "hold_s"]);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("premum_bps", series_names()), Some("premium_bps"));
        assert_eq!(suggest("xyz", series_names()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
