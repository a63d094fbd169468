//! Small text helpers for terminal summaries: aligned tables, UTC timestamps, durations, signed money.

use crate::model::{Decimal, TsNs, NS_PER_MS, NS_PER_S};

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table whose columns are padded to their widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|c| c.0).collect(),
            align: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Appends the table to `out`, every line starting with `indent`.
    pub fn render(&self, indent: &str, out: &mut String) {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w.saturating_sub(cell.chars().count());
                match self.align.get(i).copied().unwrap_or(Align::Left) {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// `2024-05-01 12:00:00.123` (UTC) from nanoseconds since the epoch.
pub fn format_ts(ts: TsNs) -> String {
    let secs = ts.div_euclid(NS_PER_S);
    let ms = ts.rem_euclid(NS_PER_S) / NS_PER_MS;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A duration in nanoseconds as `850ms`, `42.5s`, `3m07s`, `2h05m`.
pub fn format_duration(ns: i64) -> String {
    let ns = ns.max(0);
    if ns < NS_PER_S {
        return format!("{}ms", ns / NS_PER_MS);
    }
    let s = ns / NS_PER_S;
    if s < 60 {
        return format!("{}.{}s", s, ns % NS_PER_S / (NS_PER_S / 10));
    }
    if s < 3600 {
        return format!("{}m{:02}s", s / 60, s % 60);
    }
    format!("{}h{:02}m", s / 3600, s % 3600 / 60)
}

/// A decimal rounded to `dp` places, with an explicit `+` for positive values.
pub fn signed(d: Decimal, dp: u32) -> String {
    let r = d.round_dp(dp);
    if r > Decimal::ZERO {
        format!("+{r:.prec$}", prec = dp as usize)
    } else if r.is_zero() {
        format!("{:.prec$}", Decimal::ZERO, prec = dp as usize)
    } else {
        format!("{r:.prec$}", prec = dp as usize)
    }
}

/// A decimal rounded to `dp` places, without a sign for positive values.
pub fn fixed(d: Decimal, dp: u32) -> String {
    format!("{:.prec$}", d.round_dp(dp), prec = dp as usize)
}

/// A price or quantity without trailing zeros.
pub fn plain(d: Decimal) -> String {
    d.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(format_ts(0), "1970-01-01 00:00:00.000");
        // 2024-02-29 23:59:59.123 UTC
        assert_eq!(
            format_ts(1_709_251_199_123_000_000),
            "2024-02-29 23:59:59.123"
        );
        assert_eq!(format_duration(850 * NS_PER_MS), "850ms");
        assert_eq!(format_duration(42_500 * NS_PER_MS), "42.5s");
        assert_eq!(format_duration(187 * NS_PER_S), "3m07s");
        assert_eq!(format_duration(7_500 * NS_PER_S), "2h05m");
    }

    #[test]
    fn signed_money() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(signed(d("1.23456"), 4), "+1.2346");
        assert_eq!(signed(d("-0.5"), 2), "-0.50");
        assert_eq!(signed(d("-0.00001"), 2), "0.00");
        assert_eq!(plain(d("60000.10000")), "60000.1");
        assert_eq!(fixed(d("0.72"), 4), "0.7200");
        assert_eq!(fixed(d("0"), 4), "0.0000");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec!["a".into(), "10".into()]);
        t.row(vec!["long name".into(), "2".into()]);
        let mut out = String::new();
        t.render("  ", &mut out);
        assert_eq!(out, "  NAME        N\n  a          10\n  long name   2\n");
    }
}
