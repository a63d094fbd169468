//! USD-M REST payloads premia's own client does not read but other Binance clients (ccxt, freqtrade, hummingbot)
//! do: the complete exchangeInfo listing, market-data endpoints, trade history, income and account settings. The
//! local exchange serves them with Binance's field names and types (decimals as strings).

use serde::Serialize;

use super::rest_wire::RateLimit;
use crate::model::{Decimal, Side};

/// `GET /fapi/v1/exchangeInfo`, as complete as Binance's (premia's client decodes it as `rest_wire::ExchangeInfo`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeListing {
    pub timezone: String,
    pub server_time: i64,
    pub futures_type: String,
    pub rate_limits: Vec<RateLimit>,
    pub exchange_filters: Vec<String>,
    pub assets: Vec<AssetListing>,
    pub symbols: Vec<SymbolListing>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetListing {
    pub asset: String,
    pub margin_available: bool,
    pub auto_asset_exchange: Decimal,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolListing {
    pub symbol: String,
    pub pair: String,
    pub contract_type: String,
    pub delivery_date: i64,
    pub onboard_date: i64,
    pub status: String,
    pub maint_margin_percent: Decimal,
    pub required_margin_percent: Decimal,
    pub base_asset: String,
    pub quote_asset: String,
    pub margin_asset: String,
    pub price_precision: u32,
    pub quantity_precision: u32,
    pub base_asset_precision: u32,
    pub quote_precision: u32,
    pub underlying_type: String,
    pub underlying_sub_type: Vec<String>,
    pub settle_plan: u32,
    pub trigger_protect: Decimal,
    pub liquidation_fee: Decimal,
    pub market_take_bound: Decimal,
    pub max_move_order_limit: u32,
    pub filters: Vec<ListingFilter>,
    pub order_types: Vec<String>,
    pub time_in_force: Vec<String>,
}

/// Every filter Binance lists for a USD-M perpetual.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "filterType")]
pub enum ListingFilter {
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
    #[serde(rename = "MAX_NUM_ORDERS")]
    MaxNumOrders { limit: u32 },
    #[serde(rename = "MAX_NUM_ALGO_ORDERS")]
    MaxNumAlgoOrders { limit: u32 },
    #[serde(rename = "MIN_NOTIONAL")]
    MinNotional { notional: Decimal },
    #[serde(rename = "PERCENT_PRICE", rename_all = "camelCase")]
    PercentPrice {
        multiplier_up: Decimal,
        multiplier_down: Decimal,
        multiplier_decimal: String,
    },
}

/// `GET /fapi/v1/ticker/24hr` (one symbol).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker24h {
    pub symbol: String,
    pub price_change: Decimal,
    pub price_change_percent: Decimal,
    pub weighted_avg_price: Decimal,
    pub last_price: Decimal,
    pub last_qty: Decimal,
    pub open_price: Decimal,
    pub high_price: Decimal,
    pub low_price: Decimal,
    pub volume: Decimal,
    pub quote_volume: Decimal,
    pub open_time: i64,
    pub close_time: i64,
    pub first_id: i64,
    pub last_id: i64,
    pub count: u64,
}

/// `GET /fapi/v1/ticker/price` (also served as `/fapi/v2/ticker/price`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickerPrice {
    pub symbol: String,
    pub price: Decimal,
    pub time: i64,
}

/// `GET /fapi/v1/ticker/bookTicker`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookTickerRest {
    pub symbol: String,
    pub bid_price: Decimal,
    pub bid_qty: Decimal,
    pub ask_price: Decimal,
    pub ask_qty: Decimal,
    pub time: i64,
    pub last_update_id: i64,
}

/// `GET /fapi/v1/depth`: levels are `[price, qty]` string pairs.
#[derive(Debug, Clone, Serialize)]
pub struct DepthRest {
    #[serde(rename = "lastUpdateId")]
    pub last_update_id: i64,
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "T")]
    pub transaction_time: i64,
    pub bids: Vec<[Decimal; 2]>,
    pub asks: Vec<[Decimal; 2]>,
}

/// One row of `GET /fapi/v1/klines`: open time, OHLC, volume, close time, quote volume, trades, taker buy base
/// and quote volume, and an ignored field — an array, as Binance sends it.
pub type KlineRow = (
    i64,
    Decimal,
    Decimal,
    Decimal,
    Decimal,
    Decimal,
    i64,
    Decimal,
    u64,
    Decimal,
    Decimal,
    String,
);

/// One row of `GET /fapi/v1/aggTrades`.
#[derive(Debug, Clone, Serialize)]
pub struct AggTradeRest {
    #[serde(rename = "a")]
    pub agg_id: i64,
    #[serde(rename = "p")]
    pub price: Decimal,
    #[serde(rename = "q")]
    pub qty: Decimal,
    #[serde(rename = "f")]
    pub first_id: i64,
    #[serde(rename = "l")]
    pub last_id: i64,
    #[serde(rename = "T")]
    pub time: i64,
    /// The buyer was the maker (the aggressor sold).
    #[serde(rename = "m")]
    pub buyer_maker: bool,
}

/// `GET /fapi/v1/premiumIndex` (one symbol).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PremiumIndex {
    pub symbol: String,
    pub mark_price: Decimal,
    pub index_price: Decimal,
    pub estimated_settle_price: Decimal,
    pub last_funding_rate: Decimal,
    pub interest_rate: Decimal,
    pub next_funding_time: i64,
    pub time: i64,
}

/// One row of `GET /fapi/v1/fundingRate`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FundingRateRow {
    pub symbol: String,
    pub funding_rate: Decimal,
    pub funding_time: i64,
    pub mark_price: Decimal,
}

/// One row of `GET /fapi/v1/userTrades`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTrade {
    pub buyer: bool,
    pub commission: Decimal,
    pub commission_asset: String,
    pub id: i64,
    pub maker: bool,
    pub order_id: i64,
    pub price: Decimal,
    pub qty: Decimal,
    pub quote_qty: Decimal,
    pub realized_pnl: Decimal,
    pub side: Side,
    pub position_side: String,
    pub symbol: String,
    pub time: i64,
}

/// One row of `GET /fapi/v1/income`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomeRow {
    pub symbol: String,
    pub income_type: String,
    pub income: Decimal,
    pub asset: String,
    pub info: String,
    pub time: i64,
    pub tran_id: i64,
    pub trade_id: String,
}

/// One symbol of `GET /fapi/v1/leverageBracket`. Binance sends the bracket values as JSON numbers, not strings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeverageBrackets {
    pub symbol: String,
    pub brackets: Vec<Bracket>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bracket {
    pub bracket: u32,
    pub initial_leverage: u32,
    pub notional_cap: u64,
    pub notional_floor: u64,
    pub maint_margin_ratio: f64,
    pub cum: f64,
}

/// `GET /fapi/v1/commissionRate`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommissionRate {
    pub symbol: String,
    pub maker_commission_rate: Decimal,
    pub taker_commission_rate: Decimal,
}

/// `GET /fapi/v1/openInterest`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInterest {
    pub open_interest: Decimal,
    pub symbol: String,
    pub time: i64,
}

/// `GET /fapi/v1/multiAssetsMargin`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiAssetsMargin {
    pub multi_assets_margin: bool,
}

/// One row of `GET /fapi/v1/trades`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentTrade {
    pub id: i64,
    pub price: Decimal,
    pub qty: Decimal,
    pub quote_qty: Decimal,
    pub time: i64,
    pub is_buyer_maker: bool,
}

/// One row of `GET /fapi/v1/symbolConfig`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolConfig {
    pub symbol: String,
    pub margin_type: String,
    pub is_auto_add_margin: String,
    pub leverage: u32,
    pub max_notional_value: Decimal,
}
