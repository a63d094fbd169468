//! Strategy TOML → [`Strategy`]: parsed into a spanned table and validated by hand, collecting every problem.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::compile::{suggest, Program};
use super::expr::{column, parse_duration, ExprError};
use super::{ExitSpec, OrderSize, OrderSpec, Problem, Rule, RuleAction, Strategy, StrategyError};
use crate::model::{Decimal, OrderType};

const TOP_KEYS: [&str; 7] = [
    "name",
    "symbol",
    "spot_symbol",
    "description",
    "rule",
    "exit",
    "order",
];
const RULE_KEYS: [&str; 3] = ["name", "when", "action"];
const EXIT_KEYS: [&str; 3] = ["max_hold", "take_profit_pct", "stop_loss_pct"];
const ORDER_KEYS: [&str; 5] = [
    "quantity",
    "notional_usdt",
    "type",
    "limit_offset_bps",
    "limit_timeout",
];
/// Syntax errors reported at most (the parser's recovery produces follow-on errors).
const MAX_SYNTAX_ERRORS: usize = 10;

type Val<'i> = Spanned<DeValue<'i>>;

struct Checker<'s> {
    src: &'s str,
    file: String,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// 1-based line and column of a byte offset in the file.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = self.src.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, column(&before[line_start..], offset - line_start))
    }

    fn problem(&mut self, rule: Option<&str>, key: &str, at: Option<usize>, message: String) {
        let (line, column) = match at.map(|o| self.line_col(o)) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        self.problems.push(Problem {
            file: self.file.clone(),
            rule: rule.map(str::to_string),
            key: key.to_string(),
            line,
            column,
            message,
            expr: None,
            width: 1,
        });
    }

    fn unknown_keys(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        allowed: &[&str],
        rule: Option<&str>,
    ) {
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let hint = suggest(name, allowed.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let path = format!("{prefix}{name}");
            self.problem(
                rule,
                &path,
                Some(k.span().start),
                format!(
                    "unknown key `{name}`{hint}; allowed here: {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn string<'v>(&mut self, v: &'v Val<'_>, key: &str, rule: Option<&str>) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.problem(
                    rule,
                    key,
                    Some(v.span().start),
                    format!("`{key}` must be a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn non_empty_string(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<String> {
        let s = self.string(v, key, rule)?.trim().to_string();
        if s.is_empty() {
            self.problem(
                rule,
                key,
                Some(v.span().start),
                format!("`{key}` must not be empty"),
            );
            return None;
        }
        Some(s)
    }

    fn duration(&mut self, v: &Val<'_>, key: &str) -> Option<i64> {
        let DeValue::String(s) = v.get_ref() else {
            self.problem(
                None,
                key,
                Some(v.span().start),
                format!(
                    "`{key}` must be a duration string such as \"60s\" (units: ms, s, m, h, d)"
                ),
            );
            return None;
        };
        match parse_duration(s) {
            Ok(ns) => Some(ns),
            Err(m) => {
                self.problem(
                    None,
                    key,
                    Some(v.span().start),
                    format!("bad duration for `{key}`: {m}"),
                );
                None
            }
        }
    }

    /// A decimal from a string or a number, exactly as written.
    fn decimal(&mut self, v: &Val<'_>, key: &str) -> Option<Decimal> {
        let text = match v.get_ref() {
            DeValue::String(s) => s.trim().to_string(),
            DeValue::Integer(i) if i.radix() == 10 => i.as_str().to_string(),
            DeValue::Float(f) => f.as_str().to_string(),
            other => {
                self.problem(
                    None,
                    key,
                    Some(v.span().start),
                    format!(
                        "`{key}` must be a number (or a string holding one), found {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        let clean = text.replace('_', "");
        match Decimal::from_str(&clean).or_else(|_| Decimal::from_scientific(&clean)) {
            Ok(d) => Some(d),
            Err(_) => {
                self.problem(
                    None,
                    key,
                    Some(v.span().start),
                    format!("`{key}` = `{text}` is not a number"),
                );
                None
            }
        }
    }

    fn positive(&mut self, v: &Val<'_>, key: &str) -> Option<Decimal> {
        let d = self.decimal(v, key)?;
        if d <= Decimal::ZERO {
            self.problem(
                None,
                key,
                Some(v.span().start),
                format!("`{key}` must be positive, got {d}"),
            );
            return None;
        }
        Some(d)
    }

    fn symbol(&mut self, v: &Val<'_>, key: &str) -> Option<String> {
        let s = self.non_empty_string(v, key, None)?;
        if !s
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            self.problem(
                None,
                key,
                Some(v.span().start),
                format!("`{key}` = {s:?} is not a Binance symbol: use upper-case letters and digits, e.g. \"BTCUSDT\""),
            );
            return None;
        }
        Some(s)
    }

    fn table<'v, 'i>(&mut self, v: &'v Val<'i>, key: &str) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.problem(
                    None,
                    key,
                    Some(v.span().start),
                    format!(
                        "`{key}` must be a table ([{key}]), found {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    /// Problems of one `when` expression, located in the expression and in the file.
    fn expr_problems(
        &mut self,
        rule: Option<&str>,
        key: &str,
        v: &Val<'_>,
        expr: &str,
        errors: Vec<ExprError>,
    ) {
        // Where the expression text starts in the file, when the string is written without escapes.
        let span = v.span();
        let raw = self.src.get(span.clone()).unwrap_or("");
        let plain = (raw.starts_with('"') || raw.starts_with('\''))
            && !raw.starts_with("\"\"\"")
            && !raw.starts_with("'''")
            && raw.get(1..raw.len().saturating_sub(1)) == Some(expr);
        for e in errors {
            let at = if plain {
                span.start + 1 + e.span.start
            } else {
                span.start
            };
            let (line, _) = self.line_col(at);
            let width = expr
                .get(e.span.start..e.span.end)
                .map_or(1, |s| s.chars().count())
                .max(1);
            self.problems.push(Problem {
                file: self.file.clone(),
                rule: rule.map(str::to_string),
                key: key.to_string(),
                line: Some(line),
                column: Some(column(expr, e.span.start)),
                message: e.message,
                expr: Some(expr.to_string()),
                width,
            });
        }
    }
}

fn get<'t, 'i>(t: &'t DeTable<'i>, key: &str) -> Option<&'t Val<'i>> {
    t.get(key)
}

pub(super) fn parse(src: &str, file: &str) -> Result<Strategy, StrategyError> {
    let mut c = Checker {
        src,
        file: file.to_string(),
        problems: Vec::new(),
    };
    let (doc, mut errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
        let mut last_line = 0;
        for e in errors {
            let at = e.span().map(|s| s.start);
            let line = at.map_or(0, |o| c.line_col(o).0);
            if line == last_line || c.problems.len() >= MAX_SYNTAX_ERRORS {
                continue;
            }
            last_line = line;
            c.problem(None, "", at, format!("TOML syntax error: {}", e.message()));
        }
        return Err(StrategyError::Invalid(c.problems));
    }
    let doc = doc.get_ref();
    c.unknown_keys(doc, "", &TOP_KEYS, None);

    let required = |c: &mut Checker<'_>, key: &str| -> Option<String> {
        match get(doc, key) {
            Some(v) => c.non_empty_string(v, key, None),
            None => {
                c.problem(
                    None,
                    key,
                    None,
                    format!("missing `{key}` (a string at the top of the file)"),
                );
                None
            }
        }
    };
    let name = required(&mut c, "name");
    let symbol = match get(doc, "symbol") {
        Some(v) => c.symbol(v, "symbol"),
        None => {
            c.problem(
                None,
                "symbol",
                None,
                "missing `symbol`, the perp traded, e.g. symbol = \"BTCUSDT\"".into(),
            );
            None
        }
    };
    let spot_symbol = get(doc, "spot_symbol").map(|v| c.symbol(v, "spot_symbol"));
    let description = match get(doc, "description") {
        Some(v) => c
            .string(v, "description", None)
            .unwrap_or("")
            .trim()
            .to_string(),
        None => String::new(),
    };

    let (rules, program) = rules(&mut c, get(doc, "rule"));
    let exit = match get(doc, "exit") {
        Some(v) => c.table(v, "exit").map(|t| exit_spec(&mut c, t)),
        None => Some(ExitSpec::default()),
    };
    let order = match get(doc, "order") {
        Some(v) => c
            .table(v, "order")
            .and_then(|t| order_spec(&mut c, t, v.span().start)),
        None => {
            c.problem(
                None,
                "order",
                None,
                "missing [order] table with `quantity` or `notional_usdt`".into(),
            );
            None
        }
    };

    if !c.problems.is_empty() {
        c.problems.sort_by_key(|p| p.line.unwrap_or(0));
        return Err(StrategyError::Invalid(c.problems));
    }
    match (name, symbol, spot_symbol, exit, order) {
        (Some(name), Some(symbol), spot, Some(exit), Some(order)) => Ok(Strategy {
            name,
            spot_symbol: spot.flatten().unwrap_or_else(|| symbol.clone()),
            symbol,
            description,
            rules,
            exit,
            order,
            source: PathBuf::from(file),
            program: Arc::new(program),
        }),
        _ => Err(StrategyError::Invalid(vec![Problem {
            file: file.to_string(),
            rule: None,
            key: String::new(),
            line: None,
            column: None,
            message: "invalid strategy".into(),
            expr: None,
            width: 1,
        }])),
    }
}

fn rules(c: &mut Checker<'_>, v: Option<&Val<'_>>) -> (Vec<Rule>, Program) {
    let mut program = Program::default();
    let mut out = Vec::new();
    let Some(v) = v else {
        c.problem(
            None,
            "rule",
            None,
            "no rules: add at least one [[rule]] with name, when and action = \"enter_long\" or \"enter_short\"".into(),
        );
        return (out, program);
    };
    let DeValue::Array(arr) = v.get_ref() else {
        c.problem(
            None,
            "rule",
            Some(v.span().start),
            "`rule` must be an array of tables: write each rule under its own [[rule]] header"
                .into(),
        );
        return (out, program);
    };
    let mut any_entry = false;
    let mut names: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in arr.iter().enumerate() {
        let prefix = format!("rule[{}]", i + 1);
        let at = item.span().start;
        let DeValue::Table(t) = item.get_ref() else {
            c.problem(
                None,
                &prefix,
                Some(at),
                format!("`{prefix}` must be a table ([[rule]])"),
            );
            ok = false;
            continue;
        };
        let name = match get(t, "name") {
            Some(v) => c.non_empty_string(v, &format!("{prefix}.name"), None),
            None => {
                c.problem(
                    None,
                    &format!("{prefix}.name"),
                    Some(at),
                    "missing rule `name`".into(),
                );
                None
            }
        };
        let rname = name.as_deref();
        if let Some(n) = rname {
            if names.iter().any(|m| m == n) {
                c.problem(rname, &format!("{prefix}.name"), Some(at), format!("duplicate rule name {n:?}: rule names must be unique (they label trades and the journal)"));
            }
            names.push(n.to_string());
        }
        c.unknown_keys(t, &format!("{prefix}."), &RULE_KEYS, rname);
        let action = match get(t, "action") {
            Some(v) => match c.string(v, &format!("{prefix}.action"), rname) {
                Some(a) => match RuleAction::from_name(a.trim()) {
                    Some(a) => Some(a),
                    None => {
                        let hint = suggest(a, RuleAction::ALL.iter().map(|a| a.as_str()))
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        c.problem(
                            rname,
                            &format!("{prefix}.action"),
                            Some(v.span().start),
                            format!("unknown action {a:?}{hint}; valid actions: enter_long, enter_short, exit"),
                        );
                        None
                    }
                },
                None => None,
            },
            None => {
                c.problem(
                    rname,
                    &format!("{prefix}.action"),
                    Some(at),
                    "missing `action` (enter_long, enter_short or exit)".into(),
                );
                None
            }
        };
        any_entry |= action.is_some_and(RuleAction::is_entry);
        let key = format!("{prefix}.when");
        let when = match get(t, "when") {
            Some(v) => c.string(v, &key, rname).map(|w| (w.to_string(), v)),
            None => {
                c.problem(
                    rname,
                    &key,
                    Some(at),
                    "missing `when` (the condition of the rule)".into(),
                );
                None
            }
        };
        let compiled = when.as_ref().map(|(w, v)| match program.add_rule(w) {
            Ok(_) => true,
            Err(errors) => {
                c.expr_problems(rname, &key, v, w, errors);
                false
            }
        });
        match (name, action, when, compiled) {
            (Some(name), Some(action), Some((when, _)), Some(true)) => {
                out.push(Rule { name, action, when })
            }
            _ => ok = false,
        }
    }
    if arr.is_empty() {
        c.problem(None, "rule", Some(v.span().start), "no rules".into());
    } else if !any_entry {
        c.problem(
            None,
            "rule",
            Some(v.span().start),
            "no entry rule: at least one rule needs action = \"enter_long\" or \"enter_short\""
                .into(),
        );
    }
    if !ok {
        out.clear();
    }
    (out, program)
}

fn exit_spec(c: &mut Checker<'_>, t: &DeTable<'_>) -> ExitSpec {
    c.unknown_keys(t, "exit.", &EXIT_KEYS, None);
    ExitSpec {
        max_hold_ns: get(t, "max_hold").and_then(|v| c.duration(v, "exit.max_hold")),
        take_profit_pct: get(t, "take_profit_pct")
            .and_then(|v| c.positive(v, "exit.take_profit_pct")),
        stop_loss_pct: get(t, "stop_loss_pct").and_then(|v| c.positive(v, "exit.stop_loss_pct")),
    }
}

fn order_spec(c: &mut Checker<'_>, t: &DeTable<'_>, at: usize) -> Option<OrderSpec> {
    c.unknown_keys(t, "order.", &ORDER_KEYS, None);
    let size = match (get(t, "quantity"), get(t, "notional_usdt")) {
        (Some(q), None) => c.positive(q, "order.quantity").map(OrderSize::Quantity),
        (None, Some(n)) => c
            .positive(n, "order.notional_usdt")
            .map(OrderSize::NotionalUsdt),
        (Some(_), Some(n)) => {
            c.problem(
                None,
                "order",
                Some(n.span().start),
                "set exactly one of `quantity` and `notional_usdt`, not both".into(),
            );
            None
        }
        (None, None) => {
            c.problem(
                None,
                "order",
                Some(at),
                "set exactly one of `quantity` (e.g. \"0.010\") and `notional_usdt` (e.g. 1000)"
                    .into(),
            );
            None
        }
    };
    let order_type = match get(t, "type") {
        None => Some(OrderType::Market),
        Some(v) => match c.string(v, "order.type", None).map(str::trim) {
            Some("market") => Some(OrderType::Market),
            Some("limit") => Some(OrderType::Limit),
            Some(other) => {
                let other = other.to_string();
                c.problem(
                    None,
                    "order.type",
                    Some(v.span().start),
                    format!("unknown order type {other:?}; valid: market, limit"),
                );
                None
            }
            None => None,
        },
    };
    let offset = match get(t, "limit_offset_bps") {
        None => Some(Decimal::ZERO),
        Some(v) => c.decimal(v, "order.limit_offset_bps").and_then(|d| {
            if d.abs() >= Decimal::from(10_000) {
                c.problem(
                    None,
                    "order.limit_offset_bps",
                    Some(v.span().start),
                    format!(
                        "`order.limit_offset_bps` = {d} is out of range (|offset| < 10000 bps)"
                    ),
                );
                None
            } else {
                Some(d)
            }
        }),
    };
    let timeout = match get(t, "limit_timeout") {
        None => Some(None),
        Some(v) => c.duration(v, "order.limit_timeout").map(Some),
    };
    if order_type == Some(OrderType::Market) {
        for key in ["limit_offset_bps", "limit_timeout"] {
            if let Some((k, _)) = t.get_key_value(key) {
                c.problem(
                    None,
                    &format!("order.{key}"),
                    Some(k.span().start),
                    format!(
                        "`{key}` applies to limit orders only: add type = \"limit\" or remove it"
                    ),
                );
            }
        }
    }
    Some(OrderSpec {
        size: size?,
        order_type: order_type?,
        limit_offset_bps: offset?,
        limit_timeout_ns: timeout?,
    })
}
