//! USD-M user-data stream events (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, listenKeyExpired, TRADE_LITE, MARGIN_CALL,
//! ACCOUNT_CONFIG_UPDATE): wire types in both directions and their conversion to domain [`UserEvent`]s.

use serde::{Deserialize, Serialize};

use super::rest_wire::OrderStatus;
use super::wire::{decode_value, ms_num_or_str, ms_to_ns, non_zero, ns_to_ms, WireError};
use crate::model::{Balance, Decimal, ExchangePosition, Fill, OrderRequest, OrderUpdate, Side};

/// A user-data stream frame, as the engine sees it.
// `Order` is by far the most frequent variant; boxing it would allocate once more per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    /// Order progress; carries a [`Fill`] when the frame reports a trade.
    Order(OrderUpdate),
    /// Balances and positions changed.
    Account {
        balances: Vec<Balance>,
        positions: Vec<ExchangePosition>,
    },
    /// The listen key expired: the stream is dead and a new key is needed.
    ListenKeyExpired,
    /// Informational frame (its event type, or one of the `STREAM_*` markers below).
    Other(&'static str),
}

/// Sent as `UserEvent::Other(STREAM_CONNECTED)` by the user-stream task each time it (re)connects: events may have
/// been missed while disconnected, so the receiver should re-query open orders.
pub const STREAM_CONNECTED: &str = "stream_connected";

/// `ORDER_TRADE_UPDATE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTradeUpdate {
    /// Event type, `"ORDER_TRADE_UPDATE"`.
    pub e: String,
    /// Event time (ms).
    #[serde(rename = "E", with = "ms_num_or_str")]
    pub event_time: i64,
    /// Transaction time (ms).
    #[serde(rename = "T")]
    pub transaction_time: i64,
    #[serde(rename = "o")]
    pub order: OrderTradeUpdateOrder,
}

/// The `o` object of ORDER_TRADE_UPDATE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTradeUpdateOrder {
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "c")]
    pub client_order_id: String,
    #[serde(rename = "S")]
    pub side: Side,
    #[serde(rename = "o")]
    pub order_type: String,
    #[serde(rename = "f", default)]
    pub time_in_force: String,
    #[serde(rename = "q")]
    pub orig_qty: Decimal,
    #[serde(rename = "p")]
    pub price: Decimal,
    #[serde(rename = "ap")]
    pub avg_price: Decimal,
    #[serde(rename = "sp", default)]
    pub stop_price: Decimal,
    /// Execution type: NEW, CANCELED, CALCULATED (liquidation), EXPIRED, TRADE, AMENDMENT.
    #[serde(rename = "x")]
    pub execution_type: String,
    #[serde(rename = "X")]
    pub status: OrderStatus,
    #[serde(rename = "i")]
    pub order_id: i64,
    /// Last filled quantity.
    #[serde(rename = "l")]
    pub last_qty: Decimal,
    /// Cumulative filled quantity.
    #[serde(rename = "z")]
    pub cum_qty: Decimal,
    /// Last filled price.
    #[serde(rename = "L")]
    pub last_price: Decimal,
    /// Commission asset; absent when there was no trade.
    #[serde(rename = "N", default, skip_serializing_if = "Option::is_none")]
    pub commission_asset: Option<String>,
    /// Commission of this trade; absent when there was no trade.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Decimal>,
    /// Trade time (ms).
    #[serde(rename = "T")]
    pub trade_time: i64,
    /// Trade id (0 when no trade).
    #[serde(rename = "t", default)]
    pub trade_id: i64,
    #[serde(rename = "m", default)]
    pub is_maker: bool,
    #[serde(rename = "R", default)]
    pub reduce_only: bool,
    #[serde(rename = "ps", default)]
    pub position_side: String,
    /// Realised profit of this trade.
    #[serde(rename = "rp", default)]
    pub realized_profit: Decimal,
}

impl OrderTradeUpdate {
    /// The domain update; with a [`Fill`] when the execution type is TRADE. The fill's `rule` is empty: the
    /// receiver knows the order's rule by its client id.
    pub fn to_update(&self) -> OrderUpdate {
        let o = &self.order;
        let ts = ms_to_ns(self.transaction_time);
        let fill = (o.execution_type == "TRADE").then(|| Fill {
            ts: ms_to_ns(o.trade_time),
            client_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side,
            qty: o.last_qty,
            price: o.last_price,
            fee: o.commission.unwrap_or(Decimal::ZERO),
            trade_id: Some(o.trade_id),
            rule: String::new(),
        });
        let reason = match o.execution_type.as_str() {
            "NEW" | "TRADE" | "CANCELED" => None,
            other => Some(format!("execution type {other}")),
        };
        OrderUpdate {
            ts,
            client_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            exchange_id: Some(o.order_id),
            state: o.status.to_state(),
            fill,
            cum_qty: o.cum_qty,
            avg_price: non_zero(o.avg_price),
            reason,
        }
    }

    /// The frame the local exchange emits for `update` of `req` (exchange order id `order_id`). `realized_profit`
    /// is the PnL the fill realised (zero when it opened or added).
    pub fn from_domain(
        order_id: i64,
        req: &OrderRequest,
        update: &OrderUpdate,
        realized_profit: Decimal,
    ) -> Self {
        let ms = ns_to_ms(update.ts);
        let (execution_type, last_qty, last_price, commission, trade_id, trade_time) =
            match &update.fill {
                Some(f) => (
                    "TRADE",
                    f.qty,
                    f.price,
                    Some(f.fee),
                    f.trade_id.unwrap_or(0),
                    ns_to_ms(f.ts),
                ),
                None => (
                    match update.state {
                        crate::model::OrderState::Canceled => "CANCELED",
                        crate::model::OrderState::Expired | crate::model::OrderState::Rejected => {
                            "EXPIRED"
                        }
                        _ => "NEW",
                    },
                    Decimal::ZERO,
                    Decimal::ZERO,
                    None,
                    0,
                    ms,
                ),
            };
        OrderTradeUpdate {
            e: "ORDER_TRADE_UPDATE".to_string(),
            event_time: ms,
            transaction_time: ms,
            order: OrderTradeUpdateOrder {
                symbol: req.symbol.clone(),
                client_order_id: req.client_id.clone(),
                side: req.side,
                order_type: req.order_type.as_str().to_string(),
                time_in_force: "GTC".to_string(),
                orig_qty: req.qty,
                price: req.price.unwrap_or(Decimal::ZERO),
                avg_price: update.avg_price.unwrap_or(Decimal::ZERO),
                stop_price: Decimal::ZERO,
                execution_type: execution_type.to_string(),
                status: OrderStatus::from_state(update.state),
                order_id,
                last_qty,
                cum_qty: update.cum_qty,
                last_price,
                commission_asset: commission.map(|_| "USDT".to_string()),
                commission,
                trade_time,
                trade_id,
                is_maker: false,
                reduce_only: req.reduce_only,
                position_side: "BOTH".to_string(),
                realized_profit,
            },
        }
    }
}

/// `ACCOUNT_UPDATE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdate {
    pub e: String,
    #[serde(rename = "E", with = "ms_num_or_str")]
    pub event_time: i64,
    #[serde(rename = "T")]
    pub transaction_time: i64,
    #[serde(rename = "a")]
    pub account: AccountUpdateData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdateData {
    /// Reason: ORDER, FUNDING_FEE, DEPOSIT, …
    #[serde(rename = "m")]
    pub reason: String,
    #[serde(rename = "B", default)]
    pub balances: Vec<AccountUpdateBalance>,
    #[serde(rename = "P", default)]
    pub positions: Vec<AccountUpdatePosition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdateBalance {
    #[serde(rename = "a")]
    pub asset: String,
    #[serde(rename = "wb")]
    pub wallet_balance: Decimal,
    #[serde(rename = "cw", default)]
    pub cross_wallet_balance: Decimal,
    #[serde(rename = "bc", default)]
    pub balance_change: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdatePosition {
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "pa")]
    pub position_amt: Decimal,
    #[serde(rename = "ep")]
    pub entry_price: Decimal,
    #[serde(rename = "bep", default)]
    pub break_even_price: Decimal,
    #[serde(rename = "cr", default)]
    pub accumulated_realized: Decimal,
    #[serde(rename = "up", default)]
    pub unrealized_pnl: Decimal,
    #[serde(rename = "mt", default)]
    pub margin_type: String,
    #[serde(rename = "iw", default)]
    pub isolated_wallet: Decimal,
    #[serde(rename = "ps", default)]
    pub position_side: String,
}

impl AccountUpdate {
    pub fn to_domain(&self) -> (Vec<Balance>, Vec<ExchangePosition>) {
        let balances = self
            .account
            .balances
            .iter()
            .map(|b| Balance {
                asset: b.asset.clone(),
                wallet: b.wallet_balance,
                available: None,
            })
            .collect();
        let positions = self
            .account
            .positions
            .iter()
            .map(|p| ExchangePosition {
                symbol: p.symbol.clone(),
                qty: p.position_amt,
                entry_price: p.entry_price,
                unrealized_pnl: p.unrealized_pnl,
            })
            .collect();
        (balances, positions)
    }

    /// The frame the local exchange emits after an account change (`reason` e.g. `"ORDER"`).
    pub fn from_domain(
        reason: &str,
        ts_ms: i64,
        balances: &[Balance],
        positions: &[ExchangePosition],
    ) -> Self {
        AccountUpdate {
            e: "ACCOUNT_UPDATE".to_string(),
            event_time: ts_ms,
            transaction_time: ts_ms,
            account: AccountUpdateData {
                reason: reason.to_string(),
                balances: balances
                    .iter()
                    .map(|b| AccountUpdateBalance {
                        asset: b.asset.clone(),
                        wallet_balance: b.wallet,
                        cross_wallet_balance: b.wallet,
                        balance_change: Decimal::ZERO,
                    })
                    .collect(),
                positions: positions
                    .iter()
                    .map(|p| AccountUpdatePosition {
                        symbol: p.symbol.clone(),
                        position_amt: p.qty,
                        entry_price: p.entry_price,
                        break_even_price: p.entry_price,
                        accumulated_realized: Decimal::ZERO,
                        unrealized_pnl: p.unrealized_pnl,
                        margin_type: "cross".to_string(),
                        isolated_wallet: Decimal::ZERO,
                        position_side: "BOTH".to_string(),
                    })
                    .collect(),
            },
        }
    }
}

/// `listenKeyExpired` (`E` is a string in Binance's docs, a number elsewhere; both are accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenKeyExpired {
    pub e: String,
    #[serde(rename = "E", with = "ms_num_or_str")]
    pub event_time: i64,
    #[serde(rename = "listenKey", default)]
    pub listen_key: String,
}

impl ListenKeyExpired {
    pub fn new(listen_key: &str, ts_ms: i64) -> Self {
        ListenKeyExpired {
            e: "listenKeyExpired".to_string(),
            event_time: ts_ms,
            listen_key: listen_key.to_string(),
        }
    }
}

/// `TRADE_LITE`: a fast, fee-less trade report (the full one follows as ORDER_TRADE_UPDATE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeLite {
    pub e: String,
    #[serde(rename = "E", with = "ms_num_or_str")]
    pub event_time: i64,
    #[serde(rename = "T")]
    pub transaction_time: i64,
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "q")]
    pub orig_qty: Decimal,
    #[serde(rename = "p")]
    pub price: Decimal,
    #[serde(rename = "m")]
    pub is_maker: bool,
    #[serde(rename = "c")]
    pub client_order_id: String,
    #[serde(rename = "S")]
    pub side: Side,
    #[serde(rename = "L")]
    pub last_price: Decimal,
    #[serde(rename = "l")]
    pub last_qty: Decimal,
    #[serde(rename = "t")]
    pub trade_id: i64,
    #[serde(rename = "i")]
    pub order_id: i64,
}

/// `MARGIN_CALL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginCall {
    pub e: String,
    #[serde(rename = "E", with = "ms_num_or_str")]
    pub event_time: i64,
    #[serde(rename = "cw", default)]
    pub cross_wallet_balance: Decimal,
    #[serde(rename = "p")]
    pub positions: Vec<MarginCallPosition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginCallPosition {
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "ps", default)]
    pub position_side: String,
    #[serde(rename = "pa")]
    pub position_amt: Decimal,
    #[serde(rename = "mt", default)]
    pub margin_type: String,
    #[serde(rename = "iw", default)]
    pub isolated_wallet: Decimal,
    #[serde(rename = "mp")]
    pub mark_price: Decimal,
    #[serde(rename = "up", default)]
    pub unrealized_pnl: Decimal,
    #[serde(rename = "mm")]
    pub maint_margin: Decimal,
}

/// `ACCOUNT_CONFIG_UPDATE` (leverage `ac` or multi-assets mode `ai`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountConfigUpdate {
    pub e: String,
    #[serde(rename = "E", with = "ms_num_or_str")]
    pub event_time: i64,
    #[serde(rename = "T", default)]
    pub transaction_time: i64,
    #[serde(rename = "ac", default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<LeverageConfig>,
    #[serde(rename = "ai", default, skip_serializing_if = "Option::is_none")]
    pub multi_assets: Option<MultiAssetsConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeverageConfig {
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "l")]
    pub leverage: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiAssetsConfig {
    #[serde(rename = "j")]
    pub multi_assets: bool,
}

/// A decoded user-data frame, every field kept (for logging and for tests; the engine uses [`UserEvent`]).
#[allow(clippy::large_enum_variant)] // short-lived, one per frame; see `UserEvent`
#[derive(Debug, Clone, PartialEq)]
pub enum UserFrame {
    OrderTradeUpdate(OrderTradeUpdate),
    AccountUpdate(AccountUpdate),
    ListenKeyExpired(ListenKeyExpired),
    TradeLite(TradeLite),
    MarginCall(MarginCall),
    AccountConfigUpdate(AccountConfigUpdate),
    /// An event type premia does not know (kept as its name for the log).
    Unknown(String),
}

/// Decodes a user-data frame, raw (`{"e":…}`) or combined-stream wrapped (`{"stream":…,"data":{"e":…}}`).
pub fn decode_user_frame(json: &str) -> Result<UserFrame, WireError> {
    let mut value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| WireError::new("user-data frame", ".", format!("not valid JSON: {e}")))?;
    if let Some(data) = value.get_mut("data") {
        if data.get("e").is_some() {
            value = data.take();
        }
    }
    let event = match value.get("e") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(WireError::new(
                "user-data frame",
                "e",
                "event type is not a string",
            ))
        }
        None => return Err(WireError::new("user-data frame", "e", "missing field `e`")),
    };
    Ok(match event.as_str() {
        "ORDER_TRADE_UPDATE" => {
            UserFrame::OrderTradeUpdate(decode_value("ORDER_TRADE_UPDATE", value)?)
        }
        "ACCOUNT_UPDATE" => UserFrame::AccountUpdate(decode_value("ACCOUNT_UPDATE", value)?),
        "listenKeyExpired" => UserFrame::ListenKeyExpired(decode_value("listenKeyExpired", value)?),
        "TRADE_LITE" => UserFrame::TradeLite(decode_value("TRADE_LITE", value)?),
        "MARGIN_CALL" => UserFrame::MarginCall(decode_value("MARGIN_CALL", value)?),
        "ACCOUNT_CONFIG_UPDATE" => {
            UserFrame::AccountConfigUpdate(decode_value("ACCOUNT_CONFIG_UPDATE", value)?)
        }
        _ => UserFrame::Unknown(event),
    })
}

/// Decodes a user-data frame into what the engine needs.
pub fn parse_user_frame(json: &str) -> Result<UserEvent, WireError> {
    Ok(match decode_user_frame(json)? {
        UserFrame::OrderTradeUpdate(u) => UserEvent::Order(u.to_update()),
        UserFrame::AccountUpdate(a) => {
            let (balances, positions) = a.to_domain();
            UserEvent::Account {
                balances,
                positions,
            }
        }
        UserFrame::ListenKeyExpired(_) => UserEvent::ListenKeyExpired,
        UserFrame::TradeLite(_) => UserEvent::Other("TRADE_LITE"),
        UserFrame::MarginCall(_) => UserEvent::Other("MARGIN_CALL"),
        UserFrame::AccountConfigUpdate(_) => UserEvent::Other("ACCOUNT_CONFIG_UPDATE"),
        UserFrame::Unknown(_) => UserEvent::Other("unknown"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OrderState, OrderType};

    #[test]
    fn domain_round_trip_of_a_trade() {
        let req = OrderRequest {
            client_id: "p-1".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            order_type: OrderType::Market,
            qty: Decimal::new(10, 3),
            price: None,
            reduce_only: false,
            rule: "r".into(),
            decided_ts: 1_000_000_000,
        };
        let fill = Fill {
            ts: 1_700_000_000_123_000_000,
            client_id: "p-1".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            qty: Decimal::new(10, 3),
            price: Decimal::new(612345, 1),
            fee: Decimal::new(245, 3),
            trade_id: Some(77),
            rule: String::new(),
        };
        let upd = OrderUpdate {
            ts: 1_700_000_000_123_000_000,
            client_id: "p-1".into(),
            symbol: "BTCUSDT".into(),
            exchange_id: Some(5),
            state: OrderState::Filled,
            fill: Some(fill),
            cum_qty: Decimal::new(10, 3),
            avg_price: Some(Decimal::new(612345, 1)),
            reason: None,
        };
        let wire = OrderTradeUpdate::from_domain(5, &req, &upd, Decimal::ZERO);
        let json = serde_json::to_string(&wire).unwrap();
        assert_eq!(parse_user_frame(&json).unwrap(), UserEvent::Order(upd));
    }
}
