//! The rule expression language: lexer and recursive-descent parser producing an AST with byte spans.
//!
//! Precedence, loosest first: `or` < `and` < `not` < comparison (non-associative) < `+ -` < `* /` < unary `-`.
//! Names are not resolved here (see `compile`); the parser only knows the shape of the text.

use std::fmt;

/// Byte range `[start, end)` into the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    fn join(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A problem in one expression, located by a span of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub span: Span,
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> ExprError {
        ExprError {
            span,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
        )
    }
}

/// One node of the syntax tree, borrowing names from the source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr<'a> {
    pub kind: ExprKind<'a>,
    pub span: Span,
    /// Height of the tree below and including this node (bounded by the parser).
    pub depth: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind<'a> {
    Num(f64),
    Bool(bool),
    /// A duration literal in nanoseconds (`500ms`, `30s`, `5m`, `1h`, `1d`).
    Duration(i64),
    Ident(&'a str),
    Call {
        name: &'a str,
        name_span: Span,
        args: Vec<Expr<'a>>,
    },
    Neg(Box<Expr<'a>>),
    Not(Box<Expr<'a>>),
    Binary {
        op: BinOp,
        lhs: Box<Expr<'a>>,
        rhs: Box<Expr<'a>>,
    },
}

/// Canonical, fully parenthesised form (used to recognise identical sub-expressions).
impl fmt::Display for Expr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Num(v) => write!(f, "{v:?}"),
            ExprKind::Bool(b) => write!(f, "{b}"),
            ExprKind::Duration(ns) => write!(f, "{ns}ns"),
            ExprKind::Ident(n) => f.write_str(n),
            ExprKind::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            ExprKind::Neg(e) => write!(f, "(-{e})"),
            ExprKind::Not(e) => write!(f, "(not {e})"),
            ExprKind::Binary { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.as_str()),
        }
    }
}

pub const NS_PER_MS: i64 = 1_000_000;
pub const NS_PER_S: i64 = 1_000_000_000;
/// Longest window or duration accepted anywhere (keeps timestamp arithmetic far from overflow).
pub const MAX_DURATION_NS: i64 = 366 * 86_400 * NS_PER_S;

/// Nanoseconds per unit of a duration suffix.
fn unit_ns(unit: &str) -> Option<i64> {
    match unit {
        "ms" => Some(NS_PER_MS),
        "s" => Some(NS_PER_S),
        "m" => Some(60 * NS_PER_S),
        "h" => Some(3_600 * NS_PER_S),
        "d" => Some(86_400 * NS_PER_S),
        _ => None,
    }
}

/// Parses a duration such as `500ms`, `30s`, `1.5m`, `1h`, `1d` (the same syntax as in expressions).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{text}` is not a duration: write a number and a unit, e.g. `500ms`, `30s`, `5m`, `1h`, `1d`"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: `{num}` is not a number"))?;
    duration_from(value, unit, text)
}

fn duration_from(value: f64, unit: &str, text: &str) -> Result<i64, String> {
    let Some(per) = unit_ns(unit) else {
        return Err(if unit.is_empty() {
            format!("`{text}` has no unit: write e.g. `{text}s` (units: ms, s, m, h, d)")
        } else {
            format!("`{text}`: unknown duration unit `{unit}` (units: ms, s, m, h, d)")
        });
    };
    let ns = value * per as f64;
    if !ns.is_finite() || ns > MAX_DURATION_NS as f64 {
        return Err(format!("`{text}` is too long (at most 366d)"));
    }
    let ns = ns.round() as i64;
    if ns <= 0 {
        return Err(format!("`{text}`: a duration must be positive"));
    }
    Ok(ns)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Num(f64),
    Duration(i64),
    Ident(&'a str),
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    Eof,
}

fn describe(t: &Tok<'_>, src: &str, span: Span) -> String {
    match t {
        Tok::Eof => "the end of the expression".to_string(),
        _ => format!("`{}`", src.get(span.start..span.end).unwrap_or("?")),
    }
}

fn lex(src: &str) -> Result<Vec<(Tok<'_>, Span)>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            // Exponent: e/E followed by a digit, or by a sign and a digit.
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let next = bytes.get(i + 1).copied();
                let after = bytes.get(i + 2).copied();
                let digit = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_digit());
                if digit(next) || (matches!(next, Some(b'+' | b'-')) && digit(after)) {
                    i += 2;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let num_end = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let span = Span::new(start, i);
            let num = &src[start..num_end];
            let unit = &src[num_end..i];
            let value: f64 = num
                .parse()
                .map_err(|_| ExprError::new(span, format!("`{num}` is not a number")))?;
            if unit.is_empty() {
                if !value.is_finite() {
                    return Err(ExprError::new(span, format!("`{num}` is too large")));
                }
                out.push((Tok::Num(value), span));
            } else {
                let text = &src[start..i];
                let ns = duration_from(value, unit, text).map_err(|m| ExprError::new(span, m))?;
                out.push((Tok::Duration(ns), span));
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(&src[start..i]), Span::new(start, i)));
            continue;
        }
        let next = bytes.get(i + 1).copied();
        let (tok, len) = match (c, next) {
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'-', _) => (Tok::Minus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b'>', _) => (Tok::Gt, 1),
            (b'=', Some(b'=')) => (Tok::EqEq, 2),
            (b'!', Some(b'=')) => (Tok::Ne, 2),
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                let span = Span::new(i, i + ch.len_utf8());
                let msg = match (c, next) {
                    (b'=', _) => "use `==` to compare for equality".to_string(),
                    (b'&', Some(b'&')) => "use `and` instead of `&&`".to_string(),
                    (b'|', Some(b'|')) => "use `or` instead of `||`".to_string(),
                    (b'!', _) => "use `not` instead of `!`".to_string(),
                    _ => format!("unexpected character `{ch}`"),
                };
                return Err(ExprError::new(span, msg));
            }
        };
        out.push((tok, Span::new(i, i + len)));
        i += len;
    }
    out.push((Tok::Eof, Span::new(src.len(), src.len())));
    Ok(out)
}

/// Deepest parenthesis/operator nesting accepted (keeps recursion bounded on hostile input).
const MAX_NESTING: usize = 64;
/// Highest syntax tree accepted (long operator chains build deep trees without nesting).
pub const MAX_TREE_DEPTH: u32 = 100;

/// Builds a node one level above its deepest child, refusing trees that are too high.
fn node(kind: ExprKind<'_>, span: Span, child_depth: u32) -> PResult<'_> {
    let depth = child_depth + 1;
    if depth > MAX_TREE_DEPTH {
        return Err(ExprError::new(
            span,
            format!("expression is too complex (more than {MAX_TREE_DEPTH} levels of operators and calls)"),
        ));
    }
    Ok(Expr { kind, span, depth })
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok<'a>, Span)>,
    pos: usize,
    depth: usize,
}

type PResult<'a> = Result<Expr<'a>, ExprError>;

impl<'a> Parser<'a> {
    fn peek(&self) -> (Tok<'a>, Span) {
        self.toks
            .get(self.pos)
            .copied()
            .unwrap_or((Tok::Eof, Span::new(self.src.len(), self.src.len())))
    }

    fn bump(&mut self) -> (Tok<'a>, Span) {
        let t = self.peek();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek().0, Tok::Ident(n) if n == kw)
    }

    fn enter(&mut self, span: Span) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ExprError::new(span, "expression is nested too deeply"));
        }
        Ok(())
    }

    fn binary(op: BinOp, lhs: Expr<'a>, rhs: Expr<'a>) -> PResult<'a> {
        let span = lhs.span.join(rhs.span);
        let depth = lhs.depth.max(rhs.depth);
        node(
            ExprKind::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
            depth,
        )
    }

    fn or_expr(&mut self) -> PResult<'a> {
        let mut lhs = self.and_expr()?;
        while self.is_keyword("or") {
            self.bump();
            let rhs = self.and_expr()?;
            lhs = Self::binary(BinOp::Or, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn and_expr(&mut self) -> PResult<'a> {
        let mut lhs = self.not_expr()?;
        while self.is_keyword("and") {
            self.bump();
            let rhs = self.not_expr()?;
            lhs = Self::binary(BinOp::And, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn not_expr(&mut self) -> PResult<'a> {
        if self.is_keyword("not") {
            let (_, span) = self.bump();
            self.enter(span)?;
            let inner = self.not_expr()?;
            self.depth -= 1;
            let (span, depth) = (span.join(inner.span), inner.depth);
            return node(ExprKind::Not(Box::new(inner)), span, depth);
        }
        self.cmp_expr()
    }

    fn cmp_op(t: Tok<'_>) -> Option<BinOp> {
        Some(match t {
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::EqEq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            _ => return None,
        })
    }

    fn cmp_expr(&mut self) -> PResult<'a> {
        let lhs = self.add_expr()?;
        let Some(op) = Self::cmp_op(self.peek().0) else {
            return Ok(lhs);
        };
        self.bump();
        let rhs = self.add_expr()?;
        let (next, span) = self.peek();
        if Self::cmp_op(next).is_some() {
            return Err(ExprError::new(
                span,
                "comparisons cannot be chained (`a < b < c`): write `a < b and b < c`",
            ));
        }
        Self::binary(op, lhs, rhs)
    }

    fn add_expr(&mut self) -> PResult<'a> {
        let mut lhs = self.mul_expr()?;
        loop {
            let op = match self.peek().0 {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.mul_expr()?;
            lhs = Self::binary(op, lhs, rhs)?;
        }
    }

    fn mul_expr(&mut self) -> PResult<'a> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().0 {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            lhs = Self::binary(op, lhs, rhs)?;
        }
    }

    fn unary(&mut self) -> PResult<'a> {
        if let (Tok::Minus, span) = self.peek() {
            self.bump();
            self.enter(span)?;
            let inner = self.unary()?;
            self.depth -= 1;
            let (span, depth) = (span.join(inner.span), inner.depth);
            return node(ExprKind::Neg(Box::new(inner)), span, depth);
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<'a> {
        let (tok, span) = self.bump();
        match tok {
            Tok::Num(v) => node(ExprKind::Num(v), span, 0),
            Tok::Duration(ns) => node(ExprKind::Duration(ns), span, 0),
            Tok::Ident(name) if matches!(name, "and" | "or") => Err(ExprError::new(
                span,
                format!("expected an expression before `{name}`"),
            )),
            Tok::Ident("true") => node(ExprKind::Bool(true), span, 0),
            Tok::Ident("false") => node(ExprKind::Bool(false), span, 0),
            Tok::Ident("not") => Err(ExprError::new(
                span,
                "`not` applies to a whole comparison here: put it in parentheses, e.g. `(not x > 1)`",
            )),
            Tok::Ident(name) => {
                if self.peek().0 != Tok::LParen {
                    return node(ExprKind::Ident(name), span, 0);
                }
                let (_, open) = self.bump();
                self.enter(open)?;
                let mut args = Vec::new();
                if self.peek().0 != Tok::RParen {
                    loop {
                        args.push(self.or_expr()?);
                        match self.peek() {
                            (Tok::Comma, _) => {
                                self.bump();
                            }
                            (Tok::RParen, _) => break,
                            (t, s) => {
                                return Err(ExprError::new(
                                    s,
                                    format!(
                                        "expected `,` or `)` in the call of `{name}`, found {}",
                                        describe(&t, self.src, s)
                                    ),
                                ))
                            }
                        }
                    }
                }
                let (_, close) = self.bump();
                self.depth -= 1;
                let depth = args.iter().map(|a| a.depth).max().unwrap_or(0);
                node(
                    ExprKind::Call {
                        name,
                        name_span: span,
                        args,
                    },
                    span.join(close),
                    depth,
                )
            }
            Tok::LParen => {
                self.enter(span)?;
                let inner = self.or_expr()?;
                match self.bump() {
                    (Tok::RParen, close) => {
                        self.depth -= 1;
                        Ok(Expr {
                            kind: inner.kind,
                            span: span.join(close),
                            depth: inner.depth,
                        })
                    }
                    (t, s) => Err(ExprError::new(
                        s,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            column(self.src, span.start),
                            describe(&t, self.src, s)
                        ),
                    )),
                }
            }
            t => Err(ExprError::new(
                span,
                format!("expected a value, found {}", describe(&t, self.src, span)),
            )),
        }
    }
}

/// 1-based column (in characters) of a byte offset.
pub fn column(src: &str, offset: usize) -> usize {
    src.get(..offset)
        .map_or(offset, |s| s.chars().count())
        .saturating_add(1)
}

/// Parses one expression. Syntax errors stop at the first one (names are checked later, all of them).
pub fn parse(src: &str) -> Result<Expr<'_>, ExprError> {
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
    };
    if p.peek().0 == Tok::Eof {
        return Err(ExprError::new(Span::new(0, src.len()), "empty expression"));
    }
    let e = p.or_expr()?;
    match p.peek() {
        (Tok::Eof, _) => Ok(e),
        (Tok::RParen, s) => Err(ExprError::new(s, "unmatched `)`")),
        (t, s) => Err(ExprError::new(
            s,
            format!(
                "expected an operator (`and`, `or`, a comparison or arithmetic), found {}",
                describe(&t, src, s)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        parse(s).map(|e| e.to_string()).unwrap_or_else(|e| {
            panic!("{s}: {} at {}", e.message, e.span.start);
        })
    }

    #[test]
    fn precedence() {
        assert_eq!(canon("1 + 2 * 3"), "(1.0 + (2.0 * 3.0))");
        assert_eq!(canon("1 - 2 - 3"), "((1.0 - 2.0) - 3.0)");
        assert_eq!(canon("-a * b"), "((-a) * b)");
        assert_eq!(canon("a < b + 1"), "(a < (b + 1.0))");
        assert_eq!(
            canon("a or b and not c > 1"),
            "(a or (b and (not (c > 1.0))))"
        );
        assert_eq!(canon("not not a"), "(not (not a))");
        assert_eq!(canon("(a or b) and c"), "((a or b) and c)");
        assert_eq!(canon("--1"), "(-(-1.0))");
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(canon("1.5e-3"), "0.0015");
        assert_eq!(canon("2E2"), "200.0");
        assert_eq!(canon(".5"), "0.5");
        assert_eq!(canon("f(500ms)"), "f(500000000ns)");
        assert_eq!(
            canon("f(30s, 5m, 1h, 1d)"),
            "f(30000000000ns, 300000000000ns, 3600000000000ns, 86400000000000ns)"
        );
        assert_eq!(canon("f(1.5s)"), "f(1500000000ns)");
        assert_eq!(parse_duration("60s"), Ok(60 * NS_PER_S));
        assert_eq!(parse_duration(" 250ms "), Ok(250 * NS_PER_MS));
        assert!(parse_duration("60").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1e400s").is_err());
        assert!(parse_duration("9999d").is_err());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a < b < c").unwrap_err();
        assert_eq!(e.span.start, 6);
        assert!(e.message.contains("chained"));
        let e = parse("a = 1").unwrap_err();
        assert_eq!(e.span.start, 2);
        assert!(e.message.contains("=="));
        let e = parse("(a > 1").unwrap_err();
        assert!(e.message.contains("`)`"), "{}", e.message);
        assert!(parse("a > 1)").unwrap_err().message.contains("unmatched"));
        assert!(parse("").unwrap_err().message.contains("empty"));
        assert!(parse("   ").unwrap_err().message.contains("empty"));
        assert_eq!(parse("5x").unwrap_err().span, Span::new(0, 2));
        assert!(parse("a and").is_err());
        assert!(parse("f(a,)").is_err());
        assert!(parse("a b").is_err());
        assert!(parse("a && b").unwrap_err().message.contains("and"));
        assert!(parse("1..2").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message.contains("deeply"));
        let negs = format!("{}1", "-".repeat(10_000));
        assert!(parse(&negs).is_err());
        let nots = format!("{}a", "not ".repeat(10_000));
        assert!(parse(&nots).is_err());
        let calls = format!("{}1{}", "f(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&calls).is_err());
        let chain = format!("1{}", " + 1".repeat(10_000));
        assert!(parse(&chain).unwrap_err().message.contains("too complex"));
        let ands = format!("a{}", " and a".repeat(99));
        assert!(parse(&ands).is_ok());
    }

    #[test]
    fn spans_cover_source_text() {
        let src = "change_pct(perp_mid, 300s) <= -0.30";
        let e = parse(src).unwrap();
        let ExprKind::Binary { lhs, .. } = &e.kind else {
            panic!("not binary")
        };
        assert_eq!(
            &src[lhs.span.start..lhs.span.end],
            "change_pct(perp_mid, 300s)"
        );
        assert_eq!(column("aé b", 4), 4);
    }
}
