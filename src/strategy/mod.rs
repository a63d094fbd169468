//! The strategy language: strategies/*.toml loaded, validated (all problems at once), compiled and evaluated.
//!
//! - `file`: TOML → [`Strategy`], validated by hand so every problem is reported with its key and line.
//! - `expr`: lexer and parser of `when` expressions (AST with spans).
//! - `compile`: type-check and compile every rule into one node arena with shared window slots.
//! - `window`: rolling windows (O(1) amortised, no allocation per event once grown).
//! - `eval`: [`Signals`], the runtime state the engine feeds with samples and asks about rules.

mod compile;
mod eval;
pub mod expr;
mod file;
pub mod window;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{Decimal, OrderType, Side};

pub use compile::{suggest, FUNCTIONS};
pub use eval::{Context, Signals, Tri};
pub use expr::parse_duration;

/// A loaded, validated and compiled strategy file.
#[derive(Debug, Clone)]
pub struct Strategy {
    pub name: String,
    /// The perp traded.
    pub symbol: String,
    /// The spot market read for the premium (defaults to `symbol`).
    pub spot_symbol: String,
    pub description: String,
    /// In file order.
    pub rules: Vec<Rule>,
    pub exit: ExitSpec,
    pub order: OrderSpec,
    /// The file it was loaded from (as given to `parse_str` for in-memory sources).
    pub source: PathBuf,
    program: Arc<compile::Program>,
}

impl Strategy {
    /// Which series the rules read (directly or through a window), indexed by [`SeriesId`] discriminant.
    pub fn used_series(&self) -> [bool; crate::signal::SERIES_COUNT] {
        let mut used = [false; crate::signal::SERIES_COUNT];
        for n in &self.program.nodes {
            if let compile::Node::Series(s) = n {
                used[*s as usize] = true;
            }
        }
        for b in &self.program.buffers {
            used[b.series as usize] = true;
        }
        used
    }

    /// Whether a rule reads `pnl_pct` (the engine then computes it exactly at every decision while in a position).
    pub fn uses_pnl_pct(&self) -> bool {
        self.program
            .nodes
            .iter()
            .any(|n| matches!(n, compile::Node::PnlPct))
    }

    /// Indices of the rules with an entry action, in file order.
    pub fn entry_rules(&self) -> impl Iterator<Item = usize> + '_ {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.action.is_entry())
            .map(|(i, _)| i)
    }

    /// Indices of the rules with `action = "exit"`, in file order.
    pub fn exit_rules(&self) -> impl Iterator<Item = usize> + '_ {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.action == RuleAction::Exit)
            .map(|(i, _)| i)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub action: RuleAction,
    /// The `when` expression as written.
    pub when: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    EnterLong,
    EnterShort,
    Exit,
}

impl RuleAction {
    pub const ALL: [RuleAction; 3] = [
        RuleAction::EnterLong,
        RuleAction::EnterShort,
        RuleAction::Exit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::EnterLong => "enter_long",
            RuleAction::EnterShort => "enter_short",
            RuleAction::Exit => "exit",
        }
    }

    pub fn from_name(name: &str) -> Option<RuleAction> {
        RuleAction::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn is_entry(self) -> bool {
        self != RuleAction::Exit
    }

    /// Side of the perp order that opens the position (`None` for exits).
    pub fn entry_side(self) -> Option<Side> {
        match self {
            RuleAction::EnterLong => Some(Side::Buy),
            RuleAction::EnterShort => Some(Side::Sell),
            RuleAction::Exit => None,
        }
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[exit]`: position exits checked before exit rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExitSpec {
    /// Close after this long, measured from the entry decision's event timestamp.
    pub max_hold_ns: Option<i64>,
    /// Close when the perp mid has moved this many percent in the position's favour (positive).
    pub take_profit_pct: Option<Decimal>,
    /// Close when the perp mid has moved this many percent against the position (positive).
    pub stop_loss_pct: Option<Decimal>,
}

/// `[order]`: how entries are sized and placed.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSpec {
    pub size: OrderSize,
    pub order_type: OrderType,
    /// Limit orders only; see [`OrderSpec::limit_price`]. 0 by default.
    pub limit_offset_bps: Decimal,
    /// Limit orders only: cancel after this long unfilled (`None`: rest until filled).
    pub limit_timeout_ns: Option<i64>,
}

impl OrderSpec {
    /// Limit price (before tick rounding) for an order of `side` given the perp touch: the one pricing rule of
    /// limit entries (the engine calls it, then rounds to the tick: buys down, sells up).
    ///
    /// Starts from the touch on the order's own side (bid for buys, ask for sells) and moves `limit_offset_bps`
    /// toward the other side: positive improves the touch (more likely to fill; crosses the spread when larger
    /// than it), 0 joins the touch, negative rests behind it.
    pub fn limit_price(&self, side: Side, bid: Decimal, ask: Decimal) -> Decimal {
        let k = self.limit_offset_bps / Decimal::from(10_000);
        match side {
            Side::Buy => bid * (Decimal::ONE + k),
            Side::Sell => ask * (Decimal::ONE - k),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSize {
    /// Base-asset quantity (e.g. BTC).
    Quantity(Decimal),
    /// Quote notional in USDT, converted at the decision's price.
    NotionalUsdt(Decimal),
}

/// One problem in a strategy file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: String,
    /// Name of the rule concerned (when known).
    pub rule: Option<String>,
    /// Key path, e.g. `rule[2].when` (rules counted from 1), `exit.take_profit_pc`; empty for syntax errors.
    pub key: String,
    /// 1-based line in the file.
    pub line: Option<usize>,
    /// 1-based column: within `expr` for expression problems, within the file line otherwise.
    pub column: Option<usize>,
    pub message: String,
    /// The expression text, for expression problems.
    pub expr: Option<String>,
    /// Width of the marked part of `expr` (in characters, at least 1).
    pub width: usize,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if let Some(r) = &self.rule {
            write!(f, " rule {r:?}")?;
        }
        if !self.key.is_empty() {
            write!(f, " ({})", self.key)?;
        }
        match (&self.expr, self.line, self.column) {
            (Some(_), _, Some(c)) => write!(f, " col {c}")?,
            (None, Some(l), Some(c)) => write!(f, " line {l} col {c}")?,
            (None, Some(l), None) => write!(f, " line {l}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)?;
        if let (Some(e), Some(c)) = (&self.expr, self.column) {
            let shown: String = e
                .chars()
                .map(|c| if c.is_whitespace() { ' ' } else { c })
                .collect();
            write!(
                f,
                "\n    {shown}\n    {}{}",
                " ".repeat(c.saturating_sub(1)),
                "^".repeat(self.width.max(1))
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    #[error("{file}: cannot read strategy file: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

impl StrategyError {
    /// The problems of an invalid file (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            StrategyError::Invalid(p) => p,
            StrategyError::Io { .. } => &[],
        }
    }
}

fn display_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads, validates and compiles a strategy file.
pub fn load_file(path: &Path) -> Result<Strategy, StrategyError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| StrategyError::Io {
        file: file.clone(),
        source,
    })?;
    let mut s = parse_str(&src, &file)?;
    s.source = path.to_path_buf();
    Ok(s)
}

/// Validates and compiles strategy text; `file` names it in problems.
pub fn parse_str(src: &str, file: &str) -> Result<Strategy, StrategyError> {
    file::parse(src, file)
}
