//! USD-M futures REST payloads premia uses (serde, Binance's field names), both directions — premia's client decodes
//! them and the local exchange serves them — and their conversion to domain types.
//!
//! Unknown fields are ignored; a missing required field is a [`WireError`] naming the message and the field.

use serde::{Deserialize, Serialize};

use super::wire::{ms_to_ns, non_zero, ns_to_ms, WireError};
use crate::model::{
    Balance, Decimal, ExchangePosition, OrderRecord, OrderRequest, OrderState, OrderType,
    OrderUpdate, Side, SymbolFilters,
};

/// `GET /fapi/v1/time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub server_time: i64,
}

/// Error body of every failed request: `{"code": -1121, "msg": "Invalid symbol."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: i64,
    pub msg: String,
}

// ---------------------------------------------------------------------------------------------------------------
// exchangeInfo

/// `GET /fapi/v1/exchangeInfo` (the parts premia reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfo {
    #[serde(default = "utc")]
    pub timezone: String,
    pub server_time: i64,
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    pub symbols: Vec<SymbolInfo>,
}

fn utc() -> String {
    "UTC".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub rate_limit_type: String,
    pub interval: String,
    pub interval_num: u32,
    pub limit: u32,
}

/// One symbol of exchangeInfo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    pub symbol: String,
    #[serde(default)]
    pub pair: String,
    #[serde(default)]
    pub contract_type: String,
    pub status: String,
    #[serde(default)]
    pub base_asset: String,
    #[serde(default)]
    pub quote_asset: String,
    #[serde(default)]
    pub margin_asset: String,
    #[serde(default)]
    pub price_precision: u32,
    #[serde(default)]
    pub quantity_precision: u32,
    pub filters: Vec<Filter>,
}

/// A symbol filter, tagged by `filterType`. Filter types premia does not use decode as [`Filter::Other`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "filterType")]
pub enum Filter {
    #[serde(rename = "PRICE_FILTER", rename_all = "camelCase")]
    PriceFilter {
        min_price: Decimal,
        max_price: Decimal,
        tick_size: Decimal,
    },
    #[serde(rename = "LOT_SIZE", rename_all = "camelCase")]
    LotSize {
        min_qty: Decimal,
        max_qty: Decimal,
        step_size: Decimal,
    },
    #[serde(rename = "MARKET_LOT_SIZE", rename_all = "camelCase")]
    MarketLotSize {
        min_qty: Decimal,
        max_qty: Decimal,
        step_size: Decimal,
    },
    /// Futures call the field `notional`; spot's older filter called it `minNotional`.
    #[serde(rename = "MIN_NOTIONAL")]
    MinNotional {
        #[serde(alias = "minNotional")]
        notional: Decimal,
    },
    #[serde(rename = "MAX_NUM_ORDERS")]
    MaxNumOrders { limit: u32 },
    #[serde(other, rename = "OTHER")]
    Other,
}

impl SymbolInfo {
    /// The filters premia applies. PRICE_FILTER and LOT_SIZE are required; MIN_NOTIONAL defaults to 0 and
    /// MARKET_LOT_SIZE to "same as LOT_SIZE".
    pub fn symbol_filters(&self) -> Result<SymbolFilters, WireError> {
        let mut price = None;
        let mut lot = None;
        let mut market_max = None;
        let mut notional = Decimal::ZERO;
        for f in &self.filters {
            match f {
                Filter::PriceFilter {
                    min_price,
                    max_price,
                    tick_size,
                } => price = Some((*min_price, *max_price, *tick_size)),
                Filter::LotSize {
                    min_qty,
                    max_qty,
                    step_size,
                } => lot = Some((*min_qty, *max_qty, *step_size)),
                Filter::MarketLotSize { max_qty, .. } => market_max = Some(*max_qty),
                Filter::MinNotional { notional: n } => notional = *n,
                Filter::MaxNumOrders { .. } | Filter::Other => {}
            }
        }
        let missing = |name: &str| {
            WireError::new(
                "exchangeInfo",
                format!("symbols[{}].filters", self.symbol),
                format!("no {name} filter"),
            )
        };
        let (min_price, max_price, tick_size) = price.ok_or_else(|| missing("PRICE_FILTER"))?;
        let (min_qty, max_qty, step_size) = lot.ok_or_else(|| missing("LOT_SIZE"))?;
        Ok(SymbolFilters {
            tick_size,
            step_size,
            min_qty,
            max_qty,
            market_max_qty: market_max,
            min_notional: notional,
            min_price,
            max_price,
        })
    }

    /// A TRADING USDT perpetual with these filters (the local exchange's listing).
    pub fn from_filters(symbol: &str, f: &SymbolFilters) -> Self {
        let base = symbol.strip_suffix("USDT").unwrap_or(symbol).to_string();
        let mut filters = vec![
            Filter::PriceFilter {
                min_price: f.min_price,
                max_price: f.max_price,
                tick_size: f.tick_size,
            },
            Filter::LotSize {
                min_qty: f.min_qty,
                max_qty: f.max_qty,
                step_size: f.step_size,
            },
        ];
        if let Some(m) = f.market_max_qty {
            filters.push(Filter::MarketLotSize {
                min_qty: f.min_qty,
                max_qty: m,
                step_size: f.step_size,
            });
        }
        filters.push(Filter::MinNotional {
            notional: f.min_notional,
        });
        SymbolInfo {
            symbol: symbol.to_string(),
            pair: symbol.to_string(),
            contract_type: "PERPETUAL".to_string(),
            status: "TRADING".to_string(),
            base_asset: base,
            quote_asset: "USDT".to_string(),
            margin_asset: "USDT".to_string(),
            price_precision: f.tick_size.normalize().scale(),
            quantity_precision: f.step_size.normalize().scale(),
            filters,
        }
    }
}

impl ExchangeInfo {
    /// Filters of one symbol; an error names the symbol when it is not listed.
    pub fn symbol_filters(&self, symbol: &str) -> Result<SymbolFilters, WireError> {
        self.symbols
            .iter()
            .find(|s| s.symbol.eq_ignore_ascii_case(symbol))
            .ok_or_else(|| {
                WireError::new(
                    "exchangeInfo",
                    "symbols",
                    format!("symbol {symbol} is not listed"),
                )
            })?
            .symbol_filters()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Orders

/// Order status as Binance reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
    ExpiredInMatch,
    NewInsurance,
    NewAdl,
}

impl OrderStatus {
    pub fn to_state(self) -> OrderState {
        match self {
            OrderStatus::New | OrderStatus::NewInsurance | OrderStatus::NewAdl => OrderState::New,
            OrderStatus::PartiallyFilled => OrderState::PartiallyFilled,
            OrderStatus::Filled => OrderState::Filled,
            OrderStatus::Canceled => OrderState::Canceled,
            OrderStatus::Rejected => OrderState::Rejected,
            OrderStatus::Expired | OrderStatus::ExpiredInMatch => OrderState::Expired,
        }
    }

    /// The wire status for a domain state (`Intent`/`Sent`/`Unknown` never reach the wire; they map to NEW).
    pub fn from_state(s: OrderState) -> Self {
        match s {
            OrderState::Intent | OrderState::Sent | OrderState::Unknown | OrderState::New => {
                OrderStatus::New
            }
            OrderState::PartiallyFilled => OrderStatus::PartiallyFilled,
            OrderState::Filled => OrderStatus::Filled,
            OrderState::Canceled => OrderStatus::Canceled,
            OrderState::Rejected => OrderStatus::Rejected,
            OrderState::Expired => OrderStatus::Expired,
        }
    }
}

fn both() -> String {
    "BOTH".to_string()
}
fn gtc() -> String {
    "GTC".to_string()
}
fn contract_price() -> String {
    "CONTRACT_PRICE".to_string()
}

/// An order as returned by `POST /fapi/v1/order` (`newOrderRespType=RESULT`), `GET /fapi/v1/order`,
/// `DELETE /fapi/v1/order` and `GET /fapi/v1/openOrders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderResponse {
    pub order_id: i64,
    pub symbol: String,
    pub status: OrderStatus,
    pub client_order_id: String,
    pub price: Decimal,
    pub avg_price: Decimal,
    pub orig_qty: Decimal,
    pub executed_qty: Decimal,
    /// Only in the POST/DELETE response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cum_qty: Option<Decimal>,
    pub cum_quote: Decimal,
    #[serde(default = "gtc")]
    pub time_in_force: String,
    #[serde(rename = "type")]
    pub order_type: String,
    #[serde(default)]
    pub reduce_only: bool,
    #[serde(default)]
    pub close_position: bool,
    pub side: Side,
    #[serde(default = "both")]
    pub position_side: String,
    #[serde(default)]
    pub stop_price: Decimal,
    #[serde(default = "contract_price")]
    pub working_type: String,
    #[serde(default)]
    pub price_protect: bool,
    #[serde(default)]
    pub orig_type: String,
    /// Creation time; only in GET order / openOrders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    pub update_time: i64,
}

impl OrderResponse {
    /// The order's progress as a domain update (no per-trade fill: REST reports cumulative quantity and average
    /// price; individual fills come from the user-data stream).
    pub fn to_update(&self) -> OrderUpdate {
        OrderUpdate {
            ts: ms_to_ns(self.update_time),
            client_id: self.client_order_id.clone(),
            symbol: self.symbol.clone(),
            exchange_id: Some(self.order_id),
            state: self.status.to_state(),
            fill: None,
            cum_qty: self.executed_qty,
            avg_price: non_zero(self.avg_price),
            reason: None,
        }
    }

    /// The order as a domain record (for open orders found at the exchange). Types other than MARKET/LIMIT are
    /// recorded as LIMIT with a note naming the real type.
    pub fn to_record(&self) -> OrderRecord {
        let (order_type, note) = match self.order_type.as_str() {
            "MARKET" => (OrderType::Market, None),
            "LIMIT" => (OrderType::Limit, None),
            other => (
                OrderType::Limit,
                Some(format!("exchange order type {other}")),
            ),
        };
        let created = self.time.unwrap_or(self.update_time);
        OrderRecord {
            request: OrderRequest {
                client_id: self.client_order_id.clone(),
                symbol: self.symbol.clone(),
                side: self.side,
                order_type,
                qty: self.orig_qty,
                price: match order_type {
                    OrderType::Limit => non_zero(self.price),
                    OrderType::Market => None,
                },
                reduce_only: self.reduce_only,
                rule: String::new(),
                decided_ts: ms_to_ns(created),
            },
            state: self.status.to_state(),
            exchange_id: Some(self.order_id),
            filled_qty: self.executed_qty,
            avg_price: non_zero(self.avg_price),
            updated_ts: ms_to_ns(self.update_time),
            note,
        }
    }

    /// The wire form of an order the local exchange holds. `cum_quote` is the quote quantity filled so far.
    pub fn from_domain(
        order_id: i64,
        req: &OrderRequest,
        update: &OrderUpdate,
        cum_quote: Decimal,
        created_ms: i64,
    ) -> Self {
        OrderResponse {
            order_id,
            symbol: req.symbol.clone(),
            status: OrderStatus::from_state(update.state),
            client_order_id: req.client_id.clone(),
            price: req.price.unwrap_or(Decimal::ZERO),
            avg_price: update.avg_price.unwrap_or(Decimal::ZERO),
            orig_qty: req.qty,
            executed_qty: update.cum_qty,
            cum_qty: Some(update.cum_qty),
            cum_quote,
            time_in_force: gtc(),
            order_type: req.order_type.as_str().to_string(),
            reduce_only: req.reduce_only,
            close_position: false,
            side: req.side,
            position_side: both(),
            stop_price: Decimal::ZERO,
            working_type: contract_price(),
            price_protect: false,
            orig_type: req.order_type.as_str().to_string(),
            time: Some(created_ms),
            update_time: ns_to_ms(update.ts),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Positions and balances

/// One entry of `GET /fapi/v2/positionRisk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionRiskV2 {
    pub symbol: String,
    pub position_amt: Decimal,
    pub entry_price: Decimal,
    #[serde(default)]
    pub break_even_price: Decimal,
    #[serde(default)]
    pub mark_price: Decimal,
    #[serde(rename = "unRealizedProfit")]
    pub unrealized_profit: Decimal,
    #[serde(default)]
    pub liquidation_price: Decimal,
    /// A number in a string, e.g. `"10"`.
    #[serde(default)]
    pub leverage: Decimal,
    #[serde(default)]
    pub max_notional_value: Decimal,
    #[serde(default)]
    pub margin_type: String,
    #[serde(default)]
    pub isolated_margin: Decimal,
    /// `"true"` / `"false"` as a string.
    #[serde(default)]
    pub is_auto_add_margin: String,
    #[serde(default = "both")]
    pub position_side: String,
    #[serde(default)]
    pub notional: Decimal,
    #[serde(default)]
    pub isolated_wallet: Decimal,
    #[serde(default)]
    pub update_time: i64,
}

impl PositionRiskV2 {
    pub fn to_position(&self) -> ExchangePosition {
        ExchangePosition {
            symbol: self.symbol.clone(),
            qty: self.position_amt,
            entry_price: self.entry_price,
            unrealized_pnl: self.unrealized_profit,
        }
    }

    /// One-way-mode entry for a position the local exchange holds.
    pub fn from_domain(p: &ExchangePosition, mark: Decimal, leverage: u32, update_ms: i64) -> Self {
        PositionRiskV2 {
            symbol: p.symbol.clone(),
            position_amt: p.qty,
            entry_price: p.entry_price,
            break_even_price: p.entry_price,
            mark_price: mark,
            unrealized_profit: p.unrealized_pnl,
            liquidation_price: Decimal::ZERO,
            leverage: Decimal::from(leverage),
            max_notional_value: Decimal::ZERO,
            margin_type: "cross".to_string(),
            isolated_margin: Decimal::ZERO,
            is_auto_add_margin: "false".to_string(),
            position_side: both(),
            notional: p.qty * mark,
            isolated_wallet: Decimal::ZERO,
            update_time: update_ms,
        }
    }
}

/// One entry of `GET /fapi/v3/positionRisk` (only symbols with a position or open orders are listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionRiskV3 {
    pub symbol: String,
    #[serde(default = "both")]
    pub position_side: String,
    pub position_amt: Decimal,
    pub entry_price: Decimal,
    #[serde(default)]
    pub break_even_price: Decimal,
    #[serde(default)]
    pub mark_price: Decimal,
    #[serde(rename = "unRealizedProfit")]
    pub unrealized_profit: Decimal,
    #[serde(default)]
    pub liquidation_price: Decimal,
    #[serde(default)]
    pub isolated_margin: Decimal,
    #[serde(default)]
    pub notional: Decimal,
    #[serde(default)]
    pub margin_asset: String,
    #[serde(default)]
    pub isolated_wallet: Decimal,
    #[serde(default)]
    pub initial_margin: Decimal,
    #[serde(default)]
    pub maint_margin: Decimal,
    #[serde(default)]
    pub position_initial_margin: Decimal,
    #[serde(default)]
    pub open_order_initial_margin: Decimal,
    #[serde(default)]
    pub adl: i64,
    #[serde(default)]
    pub bid_notional: Decimal,
    #[serde(default)]
    pub ask_notional: Decimal,
    #[serde(default)]
    pub update_time: i64,
}

impl PositionRiskV3 {
    pub fn to_position(&self) -> ExchangePosition {
        ExchangePosition {
            symbol: self.symbol.clone(),
            qty: self.position_amt,
            entry_price: self.entry_price,
            unrealized_pnl: self.unrealized_profit,
        }
    }
}

/// One entry of `GET /fapi/v2/balance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceEntry {
    #[serde(default)]
    pub account_alias: String,
    pub asset: String,
    pub balance: Decimal,
    #[serde(default)]
    pub cross_wallet_balance: Decimal,
    #[serde(default)]
    pub cross_un_pnl: Decimal,
    #[serde(default)]
    pub available_balance: Option<Decimal>,
    #[serde(default)]
    pub max_withdraw_amount: Decimal,
    #[serde(default)]
    pub margin_available: bool,
    #[serde(default)]
    pub update_time: i64,
}

impl BalanceEntry {
    pub fn to_balance(&self) -> Balance {
        Balance {
            asset: self.asset.clone(),
            wallet: self.balance,
            available: self.available_balance,
        }
    }

    pub fn from_domain(b: &Balance, update_ms: i64) -> Self {
        let available = b.available.unwrap_or(b.wallet);
        BalanceEntry {
            account_alias: "premia".to_string(),
            asset: b.asset.clone(),
            balance: b.wallet,
            cross_wallet_balance: b.wallet,
            cross_un_pnl: Decimal::ZERO,
            available_balance: Some(available),
            max_withdraw_amount: available,
            margin_available: true,
            update_time: update_ms,
        }
    }
}

/// `GET /fapi/v2/account` (the subset premia reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(default)]
    pub total_wallet_balance: Decimal,
    #[serde(default)]
    pub total_unrealized_profit: Decimal,
    #[serde(default)]
    pub total_margin_balance: Decimal,
    #[serde(default)]
    pub available_balance: Decimal,
    #[serde(default)]
    pub max_withdraw_amount: Decimal,
    pub assets: Vec<AccountAsset>,
    pub positions: Vec<AccountPosition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountAsset {
    pub asset: String,
    pub wallet_balance: Decimal,
    #[serde(default)]
    pub unrealized_profit: Decimal,
    #[serde(default)]
    pub margin_balance: Decimal,
    #[serde(default)]
    pub available_balance: Option<Decimal>,
    #[serde(default)]
    pub max_withdraw_amount: Decimal,
    #[serde(default)]
    pub update_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPosition {
    pub symbol: String,
    pub position_amt: Decimal,
    #[serde(default)]
    pub entry_price: Decimal,
    #[serde(default)]
    pub unrealized_profit: Decimal,
    #[serde(default)]
    pub leverage: Decimal,
    #[serde(default = "both")]
    pub position_side: String,
    #[serde(default)]
    pub notional: Decimal,
    #[serde(default)]
    pub update_time: i64,
}

/// Balances and positions of one account snapshot, as domain types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountSnapshot {
    pub balances: Vec<Balance>,
    pub positions: Vec<ExchangePosition>,
}

impl Account {
    pub fn to_snapshot(&self) -> AccountSnapshot {
        AccountSnapshot {
            balances: self
                .assets
                .iter()
                .map(|a| Balance {
                    asset: a.asset.clone(),
                    wallet: a.wallet_balance,
                    available: a.available_balance,
                })
                .collect(),
            positions: self
                .positions
                .iter()
                .map(|p| ExchangePosition {
                    symbol: p.symbol.clone(),
                    qty: p.position_amt,
                    entry_price: p.entry_price,
                    unrealized_pnl: p.unrealized_profit,
                })
                .collect(),
        }
    }
}

/// `GET /fapi/v1/premiumIndex` for one symbol: mark and index price, funding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PremiumIndex {
    pub symbol: String,
    pub mark_price: Decimal,
    pub index_price: Decimal,
    #[serde(default)]
    pub estimated_settle_price: Decimal,
    pub last_funding_rate: Decimal,
    #[serde(default)]
    pub interest_rate: Decimal,
    #[serde(default)]
    pub next_funding_time: i64,
    pub time: i64,
}

impl PremiumIndex {
    /// As the domain's mark-price event payload.
    pub fn to_mark(&self) -> crate::market::Mark {
        crate::market::Mark {
            mark: self.mark_price,
            index: self.index_price,
            funding_rate: self.last_funding_rate,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Account settings and listen keys

/// `POST /fapi/v1/leverage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeverageResponse {
    pub leverage: u32,
    /// A number in a string on Binance (`"1000000"`).
    #[serde(default)]
    pub max_notional_value: Decimal,
    pub symbol: String,
}

/// `GET /fapi/v1/positionSide/dual`: `true` = hedge mode, `false` = one-way mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionSideDual {
    pub dual_side_position: bool,
}

/// `POST` (and, on recent Binance, `PUT`) `/fapi/v1/listenKey`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenKey {
    pub listen_key: String,
}

#[cfg(test)]
mod tests {
    use super::super::wire::decode;
    use super::*;

    #[test]
    fn unknown_filter_types_are_ignored_and_missing_required_filter_is_named() {
        let json = r#"{"symbol":"X","status":"TRADING","filters":[
            {"filterType":"PRICE_FILTER","minPrice":"1","maxPrice":"9","tickSize":"0.5"},
            {"filterType":"SOMETHING_NEW","foo":1},
            {"filterType":"MIN_NOTIONAL","notional":"5"}]}"#;
        let s: SymbolInfo = decode("exchangeInfo", json).unwrap();
        assert_eq!(s.filters[1], Filter::Other);
        let e = s.symbol_filters().unwrap_err();
        assert!(e.reason.contains("LOT_SIZE"), "{e}");
    }

    #[test]
    fn filters_round_trip_through_the_wire() {
        let f = SymbolFilters::default();
        let info = SymbolInfo::from_filters("BTCUSDT", &f);
        let json = serde_json::to_string(&info).unwrap();
        let back: SymbolInfo = decode("exchangeInfo", &json).unwrap();
        assert_eq!(back.symbol_filters().unwrap(), f);
        assert_eq!(back.price_precision, 1);
        assert_eq!(back.quantity_precision, 3);
    }
}
