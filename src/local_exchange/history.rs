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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_exchange::account::{Order, TimeInForce};
    use crate::model::{OrderState, OrderType};

    fn exec(exec: ExecType, fee: i64, realized: i64) -> Execution {
        Execution {
            order: Order {
                order_id: 7,
                client_id: "c".into(),
                symbol: "BTCUSDT".into(),
                side: Side::Sell,
                order_type: OrderType::Market,
                tif: TimeInForce::Gtc,
                orig_qty: Decimal::ONE,
                price: Decimal::ZERO,
                reduce_only: false,
                status: OrderState::Filled,
                executed_qty: Decimal::ONE,
                cum_quote: Decimal::from(100),
                avg_price: Decimal::from(100),
                time_ms: 5,
                update_ms: 5,
            },
            exec,
            last_qty: Decimal::ONE,
            last_price: Decimal::from(100),
            fee: Decimal::from(fee),
            trade_id: 3,
            realized: Decimal::from(realized),
            maker: false,
            ts_ms: 5,
        }
    }

    #[test]
    fn fills_book_pnl_and_commission() {
        let mut h = History::default();
        h.record(&[
            exec(ExecType::New, 0, 0),
            exec(ExecType::Trade, 2, 10),
            exec(ExecType::Trade, 1, 0),
        ]);
        assert_eq!(h.fills.len(), 2);
        assert_eq!((h.fills[0].order_id, h.fills[0].trade_id), (7, 3));
        let rows: Vec<_> = h
            .income
            .iter()
            .map(|i| (i.kind, i.amount, i.tran_id))
            .collect();
        assert_eq!(
            rows,
            vec![
                (IncomeKind::RealizedPnl, Decimal::from(10), 1),
                (IncomeKind::Commission, Decimal::from(-2), 2),
                (IncomeKind::Commission, Decimal::from(-1), 3),
            ]
        );
        assert_eq!(
            IncomeKind::parse("COMMISSION"),
            Some(IncomeKind::Commission)
        );
    }
}
