//! Signed account endpoints beyond order entry: order and trade history, income, leverage brackets, commission,
//! and the account settings the local exchange has one fixed value for (cross margin, one-way mode).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::error::ApiError;
use super::history::IncomeKind;
use super::render;
use super::rest::{json, page, signed, symbol_filter, Params, St};
use super::server::Shared;
use crate::binance::compat_wire::{CommissionRate, MultiAssetsMargin, SymbolConfig};

fn req_symbol(s: &Shared, p: &Params) -> Result<(), ApiError> {
    p.req("symbol")?;
    symbol_filter(s, p)
}

pub(crate) async fn all_orders(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 5, |p| {
        req_symbol(&s, p)?;
        let from_id = p.int("orderId")?;
        let w = p.window()?;
        let n = p.limit(500, 1000)?;
        let core = s.core();
        let rows: Vec<_> = core
            .account
            .all_orders()
            .filter(|o| from_id.is_none_or(|id| o.order_id >= id) && w.contains(o.time_ms))
            .map(|o| render::order(o, false, true))
            .collect();
        let from_start = from_id.is_some() || w.start.is_some();
        Ok(json(&page(rows, n, from_start)))
    })
}

pub(crate) async fn user_trades(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 5, |p| {
        req_symbol(&s, p)?;
        let order_id = p.int("orderId")?;
        let from_id = p.int("fromId")?;
        if from_id.is_some() && (p.get("startTime").is_some() || p.get("endTime").is_some()) {
            return Err(ApiError::not_required("fromId"));
        }
        let w = p.window()?;
        let n = p.limit(500, 1000)?;
        let hist = s.history();
        let rows: Vec<_> = hist
            .fills
            .iter()
            .filter(|f| order_id.is_none_or(|id| f.order_id == id))
            .filter(|f| from_id.is_none_or(|id| f.trade_id >= id) && w.contains(f.ms))
            .map(render::user_trade)
            .collect();
        let from_start = from_id.is_some() || w.start.is_some();
        Ok(json(&page(rows, n, from_start)))
    })
}

pub(crate) async fn income(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 30, |p| {
        symbol_filter(&s, p)?;
        let kind = match p.get("incomeType") {
            None => None,
            Some(k) => match IncomeKind::parse(k) {
                Some(k) => Some(Some(k)),
                // A valid Binance income type the local exchange never books: an empty history.
                None if is_binance_income_type(k) => Some(None),
                None => return Err(ApiError::invalid_param("incomeType")),
            },
        };
        let w = p.window()?;
        let n = p.limit(100, 1000)?;
        let hist = s.history();
        let rows: Vec<_> = hist
            .income
            .iter()
            .filter(|i| kind.is_none_or(|k| k == Some(i.kind)) && w.contains(i.ms))
            .map(render::income)
            .collect();
        Ok(json(&page(rows, n, w.start.is_some())))
    })
}

fn is_binance_income_type(k: &str) -> bool {
    const TYPES: &[&str] = &[
        "TRANSFER",
        "WELCOME_BONUS",
        "FUNDING_FEE",
        "INSURANCE_CLEAR",
        "REFERRAL_KICKBACK",
        "COMMISSION_REBATE",
        "API_REBATE",
        "CONTEST_REWARD",
        "CROSS_COLLATERAL_TRANSFER",
        "OPTIONS_PREMIUM_FEE",
        "OPTIONS_SETTLE_PROFIT",
        "INTERNAL_TRANSFER",
        "AUTO_EXCHANGE",
        "DELIVERED_SETTELMENT",
        "COIN_SWAP_DEPOSIT",
        "COIN_SWAP_WITHDRAW",
        "POSITION_LIMIT_INCREASE_FEE",
    ];
    TYPES.contains(&k)
}

pub(crate) async fn leverage_bracket(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 1, |p| {
        symbol_filter(&s, p)?;
        let b = render::leverage_brackets(&s.cfg.symbol, s.cfg.max_leverage);
        Ok(match p.get("symbol") {
            Some(_) => json(&b),
            None => json(&[b]),
        })
    })
}

pub(crate) async fn commission_rate(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 20, |p| {
        req_symbol(&s, p)?;
        Ok(json(&CommissionRate {
            symbol: s.cfg.symbol.clone(),
            maker_commission_rate: s.cfg.maker_fee,
            taker_commission_rate: s.cfg.taker_fee,
        }))
    })
}

/// `POST /fapi/v1/marginType`: the account is cross margin; asking for cross is "no need to change", isolated is
/// not offered.
pub(crate) async fn margin_type(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 1, |p| {
        req_symbol(&s, p)?;
        match p.req("marginType")? {
            "CROSSED" => Err(ApiError::margin_type_unchanged()),
            _ => Err(ApiError::invalid_param("marginType")),
        }
    })
}

/// `POST /fapi/v1/positionSide/dual`: the account is in one-way mode; hedge mode is not offered.
pub(crate) async fn set_position_side(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 1, |p| {
        match p.req("dualSidePosition")? {
            "false" => Err(ApiError::position_side_unchanged()),
            "true" => Err(ApiError::invalid_param("dualSidePosition")),
            _ => Err(ApiError::invalid_param("dualSidePosition")),
        }
    })
}

/// `GET /fapi/v1/multiAssetsMargin`: single-asset (USDT) margin.
pub(crate) async fn multi_assets_margin(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 30, |_| {
        Ok(json(&MultiAssetsMargin {
            multi_assets_margin: false,
        }))
    })
}

/// `GET /fapi/v1/symbolConfig`: margin type and leverage of the symbol.
pub(crate) async fn symbol_config(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 5, |p| {
        symbol_filter(&s, p)?;
        let view = s.core().account.position_view();
        Ok(json(&[SymbolConfig {
            symbol: view.symbol,
            margin_type: "CROSSED".to_string(),
            is_auto_add_margin: "false".to_string(),
            leverage: view.leverage,
            max_notional_value: view.max_notional,
        }]))
    })
}
