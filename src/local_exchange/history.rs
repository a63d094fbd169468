//! The account's history as `/userTrades` and `/income` report it: every fill, and the realised PnL and
//! commission each one booked, kept from the executions the matching produced.

use super::account::{ExecType, Execution};
use crate::model::{Decimal, Side};

/// One fill of one of the account's orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    pub trade_id: i64,
    pub order_id: i64,
    pub symbol: String,
    pub side: Side,
    pub price: Decimal,
    pub qty: Decimal,
    pub fee: Decimal,
    pub realized: Decimal,
    pub maker: bool,
    pub ms: i64,
}

/// What an income row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomeKind {
    RealizedPnl,
    Commission,
}

impl IncomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncomeKind::RealizedPnl => "REALIZED_PNL",
            IncomeKind::Commission => "COMMISSION",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "REALIZED_PNL" => Some(IncomeKind::RealizedPnl),
            "COMMISSION" => Some(IncomeKind::Commission),
            _ => None,
        }
    }
}

/// One change of the wallet balance.
#[derive(Debug, Clone, PartialEq)]
pub struct Income {
    pub tran_id: i64,
    pub kind: IncomeKind,
    pub symbol: String,
    /// Signed: a commission is negative.
    pub amount: Decimal,
    pub trade_id: i64,
    pub ms: i64,
}

#[derive(Debug, Default)]
pub struct History {
    pub fills: Vec<Fill>,
    pub income: Vec<Income>,
    next_tran_id: i64,
}

impl History {
    /// Books the trades among `execs`.
    pub fn record(&mut self, execs: &[Execution]) {
        for e in execs.iter().filter(|e| e.exec == ExecType::Trade) {
            let o = &e.order;
            self.fills.push(Fill {
                trade_id: e.trade_id,
                order_id: o.order_id,
                symbol: o.symbol.clone(),
                side: o.side,
                price: e.last_price,
                qty: e.last_qty,
                fee: e.fee,
                realized: e.realized,
                maker: e.maker,
                ms: e.ts_ms,
            });
            if !e.realized.is_zero() {
                self.book(IncomeKind::RealizedPnl, e, e.realized);
            }
            if !e.fee.is_zero() {
                self.book(IncomeKind::Commission, e, -e.fee);
            }
        }
    }

    fn book(&mut self, kind: IncomeKind, e: &Execution, amount: Decimal) {
        self.next_tran_id += 1;
        self.income.push(Income {
            tran_id: self.next_tran_id,
            kind,
            symbol: e.order.symbol.clone(),
            amount,
            trade_id: e.trade_id,
            ms: e.ts_ms,
        });
    }
}
