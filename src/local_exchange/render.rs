//! The account's state in Binance's wire types (`binance::rest_wire`, `binance::user_wire`): the exact JSON shapes
//! the real exchange serves, built from the local exchange's orders, executions and views.

use super::account::{Account, BalanceView, Execution, Order, PositionView};
use crate::binance::rest_wire::Account as AccountWire;
use crate::binance::rest_wire::{
    AccountAsset, AccountPosition, BalanceEntry, OrderResponse, OrderStatus, PositionRiskV2,
    PositionRiskV3,
};
use crate::binance::user_wire::{
    AccountUpdate, AccountUpdateBalance, AccountUpdateData, AccountUpdatePosition,
    OrderTradeUpdate, OrderTradeUpdateOrder,
};
use crate::model::Decimal;

/// An order as POST/GET/DELETE /fapi/v1/order and openOrders return it. `cum_qty` only in POST/DELETE answers,
/// `time` only in GET answers, as Binance does.
pub fn order(o: &Order, with_cum_qty: bool, with_time: bool) -> OrderResponse {
    OrderResponse {
        order_id: o.order_id,
        symbol: o.symbol.clone(),
        status: OrderStatus::from_state(o.status),
        client_order_id: o.client_id.clone(),
        price: o.price,
        avg_price: o.avg_price,
        orig_qty: o.orig_qty,
        executed_qty: o.executed_qty,
        cum_qty: with_cum_qty.then_some(o.executed_qty),
        cum_quote: o.cum_quote,
        time_in_force: o.tif.as_str().to_string(),
        order_type: o.order_type.as_str().to_string(),
        reduce_only: o.reduce_only,
        close_position: false,
        side: o.side,
        position_side: "BOTH".to_string(),
        stop_price: Decimal::ZERO,
        working_type: "CONTRACT_PRICE".to_string(),
        price_protect: false,
        orig_type: o.order_type.as_str().to_string(),
        time: with_time.then_some(o.time_ms),
        update_time: o.update_ms,
    }
}

/// ORDER_TRADE_UPDATE for one execution (event and transaction time = the virtual time of the execution).
pub fn order_trade_update(e: &Execution) -> OrderTradeUpdate {
    let o = &e.order;
    let traded = e.exec == super::account::ExecType::Trade;
    OrderTradeUpdate {
        e: "ORDER_TRADE_UPDATE".to_string(),
        event_time: e.ts_ms,
        transaction_time: e.ts_ms,
        order: OrderTradeUpdateOrder {
            symbol: o.symbol.clone(),
            client_order_id: o.client_id.clone(),
            side: o.side,
            order_type: o.order_type.as_str().to_string(),
            time_in_force: o.tif.as_str().to_string(),
            orig_qty: o.orig_qty,
            price: o.price,
            avg_price: o.avg_price,
            stop_price: Decimal::ZERO,
            execution_type: e.exec.as_str().to_string(),
            status: OrderStatus::from_state(o.status),
            order_id: o.order_id,
            last_qty: e.last_qty,
            cum_qty: o.executed_qty,
            last_price: e.last_price,
            commission_asset: traded.then(|| "USDT".to_string()),
            commission: traded.then_some(e.fee),
            trade_time: e.ts_ms,
            trade_id: e.trade_id,
            is_maker: e.maker,
            reduce_only: o.reduce_only,
            position_side: "BOTH".to_string(),
            realized_profit: e.realized,
        },
    }
}

/// ACCOUNT_UPDATE after fills (reason ORDER): the USDT balance and the symbol's position.
pub fn account_update(a: &Account, ts_ms: i64, balance_change: Decimal) -> AccountUpdate {
    let b = a.balance();
    let p = a.position_view();
    AccountUpdate {
        e: "ACCOUNT_UPDATE".to_string(),
        event_time: ts_ms,
        transaction_time: ts_ms,
        account: AccountUpdateData {
            reason: "ORDER".to_string(),
            balances: vec![AccountUpdateBalance {
                asset: b.asset.to_string(),
                wallet_balance: b.wallet,
                cross_wallet_balance: b.wallet,
                balance_change,
            }],
            positions: vec![AccountUpdatePosition {
                symbol: p.symbol.clone(),
                position_amt: p.qty,
                entry_price: p.entry_price,
                break_even_price: p.break_even,
                accumulated_realized: a.position().realized_pnl + a.position().fees,
                unrealized_pnl: p.unrealized,
                margin_type: "cross".to_string(),
                isolated_wallet: Decimal::ZERO,
                position_side: "BOTH".to_string(),
            }],
        },
    }
}

pub fn position_risk_v2(p: &PositionView) -> PositionRiskV2 {
    PositionRiskV2 {
        symbol: p.symbol.clone(),
        position_amt: p.qty,
        entry_price: p.entry_price,
        break_even_price: p.break_even,
        mark_price: p.mark,
        unrealized_profit: p.unrealized,
        liquidation_price: Decimal::ZERO,
        leverage: Decimal::from(p.leverage),
        max_notional_value: p.max_notional,
        margin_type: "cross".to_string(),
        isolated_margin: Decimal::ZERO,
        is_auto_add_margin: "false".to_string(),
        position_side: "BOTH".to_string(),
        notional: p.notional,
        isolated_wallet: Decimal::ZERO,
        update_time: p.update_ms,
    }
}

pub fn position_risk_v3(p: &PositionView) -> PositionRiskV3 {
    PositionRiskV3 {
        symbol: p.symbol.clone(),
        position_side: "BOTH".to_string(),
        position_amt: p.qty,
        entry_price: p.entry_price,
        break_even_price: p.break_even,
        mark_price: p.mark,
        unrealized_profit: p.unrealized,
        liquidation_price: Decimal::ZERO,
        isolated_margin: Decimal::ZERO,
        notional: p.notional,
        margin_asset: "USDT".to_string(),
        isolated_wallet: Decimal::ZERO,
        initial_margin: p.initial_margin + p.open_order_margin,
        maint_margin: Decimal::ZERO,
        position_initial_margin: p.initial_margin,
        open_order_initial_margin: p.open_order_margin,
        adl: 0,
        bid_notional: Decimal::ZERO,
        ask_notional: Decimal::ZERO,
        update_time: p.update_ms,
    }
}

pub fn balance(b: &BalanceView) -> BalanceEntry {
    BalanceEntry {
        account_alias: "premia".to_string(),
        asset: b.asset.to_string(),
        balance: b.wallet,
        cross_wallet_balance: b.wallet,
        cross_un_pnl: b.unrealized,
        available_balance: Some(b.available),
        max_withdraw_amount: b.max_withdraw,
        margin_available: true,
        update_time: b.update_ms,
    }
}

pub fn account(b: &BalanceView, p: &PositionView) -> AccountWire {
    AccountWire {
        total_wallet_balance: b.wallet,
        total_unrealized_profit: b.unrealized,
        total_margin_balance: b.margin_balance,
        available_balance: b.available,
        max_withdraw_amount: b.max_withdraw,
        assets: vec![AccountAsset {
            asset: b.asset.to_string(),
            wallet_balance: b.wallet,
            unrealized_profit: b.unrealized,
            margin_balance: b.margin_balance,
            available_balance: Some(b.available),
            max_withdraw_amount: b.max_withdraw,
            update_time: b.update_ms,
        }],
        positions: vec![AccountPosition {
            symbol: p.symbol.clone(),
            position_amt: p.qty,
            entry_price: p.entry_price,
            unrealized_profit: p.unrealized,
            leverage: Decimal::from(p.leverage),
            position_side: "BOTH".to_string(),
            notional: p.notional,
            update_time: p.update_ms,
        }],
    }
}
