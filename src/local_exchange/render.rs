//! The account's state in Binance's wire types (`binance::rest_wire`, `binance::user_wire`): the exact JSON shapes
//! the real exchange serves, built from the local exchange's orders, executions and views.

use super::account::{Account, BalanceView, Execution, Order, PositionView};
use super::history::{Fill, Income};
use super::market::{Candle, MarketData, TradeRec};
use crate::binance::compat_wire::{
    AggTradeRest, AssetListing, Bracket, ExchangeListing, IncomeRow, KlineRow, LeverageBrackets,
    ListingFilter, RecentTrade, SymbolListing, Ticker24h, UserTrade,
};
use crate::binance::rest_wire::Account as AccountWire;
use crate::binance::rest_wire::RateLimit;
use crate::binance::rest_wire::{
    AccountAsset, AccountPosition, BalanceEntry, OrderResponse, OrderStatus, PositionRiskV2,
    PositionRiskV3,
};
use crate::binance::user_wire::{
    AccountUpdate, AccountUpdateBalance, AccountUpdateData, AccountUpdatePosition,
    OrderTradeUpdate, OrderTradeUpdateOrder,
};
use crate::model::{Decimal, Side, SymbolFilters};

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

/// The full exchangeInfo listing of the one symbol: what premia's client reads plus what other clients expect
/// (order types, time in force, every filter, assets).
pub fn listing(symbol: &str, f: &SymbolFilters, server_time: i64) -> ExchangeListing {
    let rl = |t: &str, i: &str, n: u32, l: u32| RateLimit {
        rate_limit_type: t.to_string(),
        interval: i.to_string(),
        interval_num: n,
        limit: l,
    };
    let base = symbol.strip_suffix("USDT").unwrap_or(symbol).to_string();
    let mut filters = vec![
        ListingFilter::PriceFilter {
            min_price: f.min_price,
            max_price: f.max_price,
            tick_size: f.tick_size,
        },
        ListingFilter::LotSize {
            min_qty: f.min_qty,
            max_qty: f.max_qty,
            step_size: f.step_size,
        },
        ListingFilter::MarketLotSize {
            min_qty: f.min_qty,
            max_qty: f.market_max_qty.unwrap_or(f.max_qty),
            step_size: f.step_size,
        },
        ListingFilter::MaxNumOrders { limit: 200 },
        ListingFilter::MaxNumAlgoOrders { limit: 10 },
        ListingFilter::MinNotional {
            notional: f.min_notional,
        },
    ];
    filters.push(ListingFilter::PercentPrice {
        multiplier_up: Decimal::new(10500, 4),
        multiplier_down: Decimal::new(9500, 4),
        multiplier_decimal: "4".to_string(),
    });
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ExchangeListing {
        timezone: "UTC".to_string(),
        server_time,
        futures_type: "U_MARGINED".to_string(),
        rate_limits: vec![
            rl("REQUEST_WEIGHT", "MINUTE", 1, 2400),
            rl("ORDERS", "MINUTE", 1, 1200),
            rl("ORDERS", "SECOND", 10, 300),
        ],
        exchange_filters: Vec::new(),
        assets: vec![AssetListing {
            asset: "USDT".to_string(),
            margin_available: true,
            auto_asset_exchange: Decimal::ZERO,
        }],
        symbols: vec![SymbolListing {
            symbol: symbol.to_string(),
            pair: symbol.to_string(),
            contract_type: "PERPETUAL".to_string(),
            // Binance's "no delivery" date for perpetuals, and BTCUSDT's listing date.
            delivery_date: 4_133_404_800_000,
            onboard_date: 1_569_398_400_000,
            status: "TRADING".to_string(),
            maint_margin_percent: Decimal::new(25000, 4),
            required_margin_percent: Decimal::new(50000, 4),
            base_asset: base,
            quote_asset: "USDT".to_string(),
            margin_asset: "USDT".to_string(),
            price_precision: f.tick_size.normalize().scale(),
            quantity_precision: f.step_size.normalize().scale(),
            base_asset_precision: 8,
            quote_precision: 8,
            underlying_type: "COIN".to_string(),
            underlying_sub_type: Vec::new(),
            settle_plan: 0,
            trigger_protect: Decimal::new(500, 4),
            liquidation_fee: Decimal::new(12500, 6),
            market_take_bound: Decimal::new(5, 2),
            max_move_order_limit: 10000,
            filters,
            // What the local exchange matches; stop and trailing orders are not served.
            order_types: strings(&["LIMIT", "MARKET"]),
            time_in_force: strings(&["GTC", "IOC", "FOK", "GTX"]),
        }],
    }
}

/// `/ticker/24hr` from the last day of replayed trades; before any trade, the touch's mid with zero volume.
pub fn ticker_24h(symbol: &str, md: &MarketData, fallback: Decimal) -> Ticker24h {
    let close_time = md.last_ms();
    match md.last_day() {
        Some(c) => {
            let change = c.close - c.open;
            let pct = if c.open.is_zero() {
                Decimal::ZERO
            } else {
                (change / c.open * Decimal::ONE_HUNDRED).round_dp(3)
            };
            let vwap = if c.volume.is_zero() {
                c.close
            } else {
                (c.quote_volume / c.volume).round_dp(8).normalize()
            };
            Ticker24h {
                symbol: symbol.to_string(),
                price_change: change,
                price_change_percent: pct,
                weighted_avg_price: vwap,
                last_price: c.close,
                last_qty: md.trades.back().map_or(Decimal::ZERO, |t| t.qty),
                open_price: c.open,
                high_price: c.high,
                low_price: c.low,
                volume: c.volume,
                quote_volume: c.quote_volume.normalize(),
                open_time: c.open_ms,
                close_time,
                first_id: c.first_id,
                last_id: c.last_id,
                count: c.trades,
            }
        }
        None => Ticker24h {
            symbol: symbol.to_string(),
            price_change: Decimal::ZERO,
            price_change_percent: Decimal::ZERO,
            weighted_avg_price: fallback,
            last_price: fallback,
            last_qty: Decimal::ZERO,
            open_price: fallback,
            high_price: fallback,
            low_price: fallback,
            volume: Decimal::ZERO,
            quote_volume: Decimal::ZERO,
            open_time: close_time,
            close_time,
            first_id: 0,
            last_id: 0,
            count: 0,
        },
    }
}

pub fn kline_row(c: &Candle, interval_ms: i64) -> KlineRow {
    (
        c.open_ms,
        c.open,
        c.high,
        c.low,
        c.close,
        c.volume,
        c.open_ms + interval_ms - 1,
        c.quote_volume.normalize(),
        c.trades,
        c.taker_buy_volume,
        c.taker_buy_quote.normalize(),
        "0".to_string(),
    )
}

pub fn agg_trade(t: &TradeRec) -> AggTradeRest {
    AggTradeRest {
        agg_id: t.id,
        price: t.price,
        qty: t.qty,
        first_id: t.id,
        last_id: t.id,
        time: t.ms,
        buyer_maker: t.buyer_maker,
    }
}

pub fn recent_trade(t: &TradeRec) -> RecentTrade {
    RecentTrade {
        id: t.id,
        price: t.price,
        qty: t.qty,
        quote_qty: (t.price * t.qty).normalize(),
        time: t.ms,
        is_buyer_maker: t.buyer_maker,
    }
}

pub fn user_trade(f: &Fill) -> UserTrade {
    UserTrade {
        buyer: f.side == Side::Buy,
        commission: f.fee,
        commission_asset: "USDT".to_string(),
        id: f.trade_id,
        maker: f.maker,
        order_id: f.order_id,
        price: f.price,
        qty: f.qty,
        quote_qty: (f.price * f.qty).normalize(),
        realized_pnl: f.realized,
        side: f.side,
        position_side: "BOTH".to_string(),
        symbol: f.symbol.clone(),
        time: f.ms,
    }
}

pub fn income(i: &Income) -> IncomeRow {
    IncomeRow {
        symbol: i.symbol.clone(),
        income_type: i.kind.as_str().to_string(),
        income: i.amount,
        asset: "USDT".to_string(),
        info: i.kind.as_str().to_string(),
        time: i.ms,
        tran_id: i.tran_id,
        trade_id: i.trade_id.to_string(),
    }
}

/// Binance's USDT-perpetual leverage brackets for BTCUSDT, capped at the exchange's maximum leverage.
pub fn leverage_brackets(symbol: &str, max_leverage: u32) -> LeverageBrackets {
    const TABLE: &[(u32, u64, u64, f64, f64)] = &[
        (125, 50_000, 0, 0.004, 0.0),
        (100, 600_000, 50_000, 0.005, 50.0),
        (75, 3_000_000, 600_000, 0.0065, 950.0),
        (50, 12_000_000, 3_000_000, 0.01, 11_450.0),
        (25, 70_000_000, 12_000_000, 0.02, 131_450.0),
        (20, 100_000_000, 70_000_000, 0.025, 481_450.0),
        (10, 230_000_000, 100_000_000, 0.05, 2_981_450.0),
        (5, 480_000_000, 230_000_000, 0.1, 14_481_450.0),
        (4, 600_000_000, 480_000_000, 0.125, 26_481_450.0),
        (3, 800_000_000, 600_000_000, 0.15, 41_481_450.0),
        (2, 1_200_000_000, 800_000_000, 0.25, 121_481_450.0),
        (1, 1_800_000_000, 1_200_000_000, 0.5, 421_481_450.0),
    ];
    let brackets = TABLE
        .iter()
        .zip(1..)
        .map(|(&(lev, cap, floor, mmr, cum), n)| Bracket {
            bracket: n,
            initial_leverage: lev.min(max_leverage.max(1)),
            notional_cap: cap,
            notional_floor: floor,
            maint_margin_ratio: mmr,
            cum,
        })
        .collect();
    LeverageBrackets {
        symbol: symbol.to_string(),
        brackets,
    }
}
