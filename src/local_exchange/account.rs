//! The local exchange's account: one USD-M symbol, one-way position, USDT wallet, order book of our own orders,
//! matching against the replayed touch by the shared fill model ([`crate::fill`]), and a simple cross-margin check.
//! Pure and synchronous (no I/O, no clock): the caller passes the virtual time of every operation.

use std::collections::{BTreeMap, HashMap};

use super::error::ApiError;
use crate::fill::{self, Arrival, FeeRates, Liquidity, RestingBook};
use crate::model::{
    Decimal, OrderState, OrderType, Position, Side, SymbolFilters, TsNs, NS_PER_MS,
};

/// Best bid and ask of the perp, as replayed.
pub use crate::fill::Touch;

/// Binance's time in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeInForce {
    Gtc,
    Ioc,
    Fok,
    /// Post only.
    Gtx,
}

impl TimeInForce {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Fok => "FOK",
            TimeInForce::Gtx => "GTX",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GTC" => Some(TimeInForce::Gtc),
            "IOC" => Some(TimeInForce::Ioc),
            "FOK" => Some(TimeInForce::Fok),
            "GTX" => Some(TimeInForce::Gtx),
            _ => None,
        }
    }
}

/// A validated-by-type new order request (the REST layer has parsed the parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: Decimal,
    /// Required for limit orders.
    pub price: Option<Decimal>,
    pub tif: TimeInForce,
    pub reduce_only: bool,
    /// `newClientOrderId`; generated when absent.
    pub client_id: Option<String>,
}

/// One of our orders as the exchange keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub order_id: i64,
    pub client_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    pub orig_qty: Decimal,
    /// Limit price; zero for market orders (as Binance prints it).
    pub price: Decimal,
    pub reduce_only: bool,
    /// NEW, PARTIALLY_FILLED, FILLED, CANCELED or EXPIRED.
    pub status: OrderState,
    pub executed_qty: Decimal,
    pub cum_quote: Decimal,
    /// Average fill price; zero before the first fill.
    pub avg_price: Decimal,
    pub time_ms: i64,
    pub update_ms: i64,
}

impl Order {
    pub fn is_open(&self) -> bool {
        matches!(self.status, OrderState::New | OrderState::PartiallyFilled)
    }
    fn remaining(&self) -> Decimal {
        self.orig_qty - self.executed_qty
    }
}

/// Execution type of an order update (`x` of ORDER_TRADE_UPDATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecType {
    New,
    Trade,
    Canceled,
    Expired,
}

impl ExecType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecType::New => "NEW",
            ExecType::Trade => "TRADE",
            ExecType::Canceled => "CANCELED",
            ExecType::Expired => "EXPIRED",
        }
    }
}

/// One order state change or fill: becomes an ORDER_TRADE_UPDATE (and, for trades, an ACCOUNT_UPDATE).
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The order after this change.
    pub order: Order,
    pub exec: ExecType,
    pub last_qty: Decimal,
    pub last_price: Decimal,
    /// Commission in USDT.
    pub fee: Decimal,
    /// Zero when `exec` is not a trade.
    pub trade_id: i64,
    /// Realised profit of this trade (gross of the fee, as Binance's `rp`).
    pub realized: Decimal,
    pub maker: bool,
    pub ts_ms: i64,
}

/// How a request names an order: `orderId` or `origClientOrderId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    Id(i64),
    Client(String),
}

/// Account settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    pub symbol: String,
    pub filters: SymbolFilters,
    pub starting_balance: Decimal,
    /// Fee rates as fractions (0.0005 = 5 bps).
    pub taker_fee: Decimal,
    pub maker_fee: Decimal,
    pub max_leverage: u32,
}

/// Position as reported by positionRisk / ACCOUNT_UPDATE.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionView {
    pub symbol: String,
    pub qty: Decimal,
    pub entry_price: Decimal,
    pub break_even: Decimal,
    pub mark: Decimal,
    pub unrealized: Decimal,
    pub notional: Decimal,
    pub leverage: u32,
    pub initial_margin: Decimal,
    pub open_order_margin: Decimal,
    pub max_notional: Decimal,
    pub update_ms: i64,
}

/// Balance as reported by /fapi/v2/balance, /fapi/v2/account and ACCOUNT_UPDATE.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceView {
    pub asset: &'static str,
    pub wallet: Decimal,
    pub unrealized: Decimal,
    pub margin_balance: Decimal,
    pub position_margin: Decimal,
    pub open_order_margin: Decimal,
    pub available: Decimal,
    pub max_withdraw: Decimal,
    pub update_ms: i64,
}

/// Maximum notional Binance allows at each leverage (a simplified BTCUSDT bracket table).
fn max_notional_for(leverage: u32) -> Decimal {
    let v: i64 = match leverage {
        0..=1 => 1_000_000_000,
        2 => 600_000_000,
        3..=5 => 300_000_000,
        6..=10 => 100_000_000,
        11..=20 => 20_000_000,
        21..=25 => 10_000_000,
        26..=50 => 5_000_000,
        51..=75 => 1_000_000,
        76..=100 => 250_000,
        _ => 50_000,
    };
    Decimal::from(v)
}

/// The account and its matching engine.
#[derive(Debug)]
pub struct Account {
    cfg: AccountConfig,
    wallet: Decimal,
    position: Position,
    leverage: u32,
    touch: Option<Touch>,
    mark: Option<Decimal>,
    /// All orders ever placed, by id (ordered: ids grow with time, so this is time priority).
    orders: BTreeMap<i64, Order>,
    by_client: HashMap<String, i64>,
    /// Open limit orders by id, matched by the shared fill model.
    resting: RestingBook<i64>,
    next_order_id: i64,
    next_trade_id: i64,
    position_update_ms: i64,
    balance_update_ms: i64,
}

fn ms(ts: TsNs) -> i64 {
    ts / NS_PER_MS
}

/// Does `x` have more decimals than `step` allows, or is it off the step grid?
fn check_grid(
    x: Decimal,
    step: Decimal,
    precision: ApiError,
    grid: ApiError,
) -> Result<(), ApiError> {
    if step.is_zero() {
        return Ok(());
    }
    if x.normalize().scale() > step.normalize().scale() {
        return Err(precision);
    }
    if !(x % step).is_zero() {
        return Err(grid);
    }
    Ok(())
}

impl Account {
    pub fn new(cfg: AccountConfig) -> Self {
        let leverage = cfg.max_leverage.clamp(1, 20);
        Account {
            wallet: cfg.starting_balance,
            position: Position::flat(&cfg.symbol),
            cfg,
            leverage,
            touch: None,
            mark: None,
            orders: BTreeMap::new(),
            by_client: HashMap::new(),
            resting: RestingBook::default(),
            next_order_id: 1,
            next_trade_id: 1,
            position_update_ms: 0,
            balance_update_ms: 0,
        }
    }

    pub fn config(&self) -> &AccountConfig {
        &self.cfg
    }
    pub fn symbol(&self) -> &str {
        &self.cfg.symbol
    }
    pub fn touch(&self) -> Option<Touch> {
        self.touch
    }
    pub fn leverage(&self) -> u32 {
        self.leverage
    }
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Mark price: the last markPrice frame, else the mid of the touch.
    pub fn mark(&self) -> Option<Decimal> {
        self.mark.or_else(|| {
            self.touch
                .map(|t| (t.bid + t.ask) / Decimal::TWO)
                .map(|m| m.round_dp(8))
        })
    }

    fn check_symbol(&self, symbol: &str) -> Result<(), ApiError> {
        if symbol == self.cfg.symbol {
            Ok(())
        } else {
            Err(ApiError::bad_symbol())
        }
    }

    pub fn set_mark(&mut self, mark: Decimal) {
        self.mark = Some(mark);
    }

    /// Sets the leverage (1..=max); returns the max notional allowed at it.
    pub fn set_leverage(&mut self, symbol: &str, leverage: u32) -> Result<Decimal, ApiError> {
        self.check_symbol(symbol)?;
        if leverage == 0 || leverage > self.cfg.max_leverage {
            return Err(ApiError::invalid_leverage());
        }
        self.leverage = leverage;
        Ok(max_notional_for(leverage))
    }

    fn unrealized(&self) -> Decimal {
        match self.mark() {
            Some(m) if !self.position.is_flat() => self.position.unrealized(m),
            _ => Decimal::ZERO,
        }
    }

    fn lev(&self) -> Decimal {
        Decimal::from(self.leverage.max(1))
    }

    fn position_margin(&self) -> Decimal {
        match self.mark() {
            Some(m) => (self.position.qty.abs() * m / self.lev()).round_dp(8),
            None => (self.position.qty.abs() * self.position.entry_price / self.lev()).round_dp(8),
        }
    }

    /// The part of an order that would increase exposure (the rest closes the current position).
    fn opening_qty(&self, side: Side, qty: Decimal) -> Decimal {
        qty - fill::closing_qty(self.position.qty, side, qty)
    }

    fn fee_rates(&self) -> FeeRates {
        FeeRates {
            taker: self.cfg.taker_fee,
            maker: self.cfg.maker_fee,
        }
    }

    fn open_order_margin(&self) -> Decimal {
        let lev = self.lev();
        self.orders
            .values()
            .filter(|o| o.is_open() && !o.reduce_only)
            .map(|o| self.opening_qty(o.side, o.remaining()) * o.price / lev)
            .sum::<Decimal>()
            .round_dp(8)
    }

    /// Margin balance minus position and open-order margin.
    pub fn available(&self) -> Decimal {
        self.wallet + self.unrealized() - self.position_margin() - self.open_order_margin()
    }

    pub fn balance(&self) -> BalanceView {
        let unrealized = self.unrealized();
        let available = self.available();
        BalanceView {
            asset: "USDT",
            wallet: self.wallet,
            unrealized,
            margin_balance: self.wallet + unrealized,
            position_margin: self.position_margin(),
            open_order_margin: self.open_order_margin(),
            available,
            max_withdraw: available.min(self.wallet).max(Decimal::ZERO),
            update_ms: self.balance_update_ms,
        }
    }

    pub fn position_view(&self) -> PositionView {
        let mark = self.mark().unwrap_or(Decimal::ZERO);
        let p = &self.position;
        let fee = self.cfg.taker_fee;
        // Break-even: entry moved by the round-trip taker fee in the position's direction.
        let break_even = if p.is_flat() {
            Decimal::ZERO
        } else if p.qty.is_sign_positive() {
            (p.entry_price * (Decimal::ONE + fee * Decimal::TWO)).round_dp(8)
        } else {
            (p.entry_price * (Decimal::ONE - fee * Decimal::TWO)).round_dp(8)
        };
        PositionView {
            symbol: self.cfg.symbol.clone(),
            qty: p.qty,
            entry_price: p.entry_price,
            break_even,
            mark,
            unrealized: self.unrealized().round_dp(8),
            notional: (p.qty * mark).round_dp(8),
            leverage: self.leverage,
            initial_margin: self.position_margin(),
            open_order_margin: self.open_order_margin(),
            max_notional: max_notional_for(self.leverage),
            update_ms: self.position_update_ms,
        }
    }

    pub fn order(&self, symbol: &str, r: &OrderRef) -> Result<&Order, ApiError> {
        self.check_symbol(symbol)?;
        let id = match r {
            OrderRef::Id(id) => Some(*id),
            OrderRef::Client(c) => self.by_client.get(c).copied(),
        };
        id.and_then(|id| self.orders.get(&id))
            .ok_or_else(ApiError::no_such_order)
    }

    /// Dates the starting balance (the wallet's last update until the first fill): Binance reports an asset's
    /// last change, and clients such as ccxt skip assets whose update time is 0.
    pub fn set_funded_at(&mut self, ms: i64) {
        if self.balance_update_ms == 0 {
            self.balance_update_ms = ms;
        }
    }

    /// Every order ever placed, oldest first (`/allOrders`).
    pub fn all_orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values()
    }

    pub fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<&Order>, ApiError> {
        if let Some(s) = symbol {
            self.check_symbol(s)?;
        }
        Ok(self.orders.values().filter(|o| o.is_open()).collect())
    }

    /// Validates and places an order at virtual time `now`; returns the order as it stands after placement and
    /// every execution it caused (NEW first, then TRADE or EXPIRED), in order.
    pub fn place(&mut self, req: NewOrder, now: TsNs) -> Result<(Order, Vec<Execution>), ApiError> {
        self.check_symbol(&req.symbol)?;
        let f = &self.cfg.filters;
        if req.qty <= Decimal::ZERO {
            return Err(ApiError::qty_not_positive());
        }
        check_grid(
            req.qty,
            f.step_size,
            ApiError::precision(),
            ApiError::qty_step(),
        )?;
        if req.qty < f.min_qty {
            return Err(ApiError::qty_below_min());
        }
        let max_qty = match (req.order_type, f.market_max_qty) {
            (OrderType::Market, Some(m)) => m.min(f.max_qty),
            _ => f.max_qty,
        };
        if req.qty > max_qty {
            return Err(ApiError::qty_above_max());
        }
        let limit = match req.order_type {
            OrderType::Market => None,
            OrderType::Limit => {
                let p = req.price.ok_or_else(|| ApiError::mandatory("price"))?;
                if p <= Decimal::ZERO {
                    return Err(ApiError::invalid_param("price"));
                }
                check_grid(
                    p,
                    f.tick_size,
                    ApiError::precision(),
                    ApiError::price_tick(),
                )?;
                if !f.min_price.is_zero() && p < f.min_price {
                    return Err(ApiError::price_below_min());
                }
                if !f.max_price.is_zero() && p > f.max_price {
                    return Err(ApiError::price_above_max());
                }
                Some(p)
            }
        };
        let client_id = match req.client_id {
            Some(c) if c.len() > 36 => return Err(ApiError::client_id_len()),
            Some(c) if self.by_client.contains_key(&c) => {
                return Err(ApiError::duplicate_client_id())
            }
            Some(c) => c,
            None => format!("local-{}", self.next_order_id),
        };
        let arrival = fill::on_arrival(req.side, limit, self.touch);
        let ref_price = match (limit, arrival) {
            (Some(p), _) | (None, Arrival::Take(p)) => p,
            (None, _) => return Err(ApiError::no_depth()),
        };
        if !req.reduce_only && req.qty * ref_price < f.min_notional {
            return Err(ApiError::min_notional(f.min_notional));
        }
        if req.reduce_only && self.opening_qty(req.side, req.qty) == req.qty {
            // Flat, or the order would add to the position.
            return Err(ApiError::reduce_only_rejected());
        }
        let marketable = matches!(arrival, Arrival::Take(_));
        if req.tif == TimeInForce::Gtx && limit.is_some() && marketable {
            return Err(ApiError::post_only_rejected());
        }
        if !req.reduce_only {
            let opening = self.opening_qty(req.side, req.qty);
            let needed = opening * ref_price / self.lev();
            if needed > self.available() {
                return Err(ApiError::margin_insufficient());
            }
        }

        let id = self.next_order_id;
        self.next_order_id += 1;
        let now_ms = ms(now);
        let order = Order {
            order_id: id,
            client_id: client_id.clone(),
            symbol: req.symbol,
            side: req.side,
            order_type: req.order_type,
            tif: if limit.is_some() {
                req.tif
            } else {
                TimeInForce::Gtc
            },
            orig_qty: req.qty,
            price: limit.unwrap_or(Decimal::ZERO),
            reduce_only: req.reduce_only,
            status: OrderState::New,
            executed_qty: Decimal::ZERO,
            cum_quote: Decimal::ZERO,
            avg_price: Decimal::ZERO,
            time_ms: now_ms,
            update_ms: now_ms,
        };
        self.by_client.insert(client_id, id);
        self.orders.insert(id, order.clone());
        let mut execs = vec![self.exec_without_trade(&order, ExecType::New, now_ms)];
        match (arrival, limit) {
            (Arrival::Take(price), _) => self.fill(id, price, Liquidity::Taker, now_ms, &mut execs),
            _ if matches!(req.tif, TimeInForce::Ioc | TimeInForce::Fok) => {
                self.finish(id, OrderState::Expired, now_ms, &mut execs);
            }
            (_, Some(price)) => self.resting.add(id, order.side, price),
            (_, None) => {}
        }
        let order = self
            .orders
            .get(&id)
            .cloned()
            .ok_or_else(ApiError::unknown)?;
        Ok((order, execs))
    }

    fn exec_without_trade(&self, order: &Order, exec: ExecType, now_ms: i64) -> Execution {
        Execution {
            order: order.clone(),
            exec,
            last_qty: Decimal::ZERO,
            last_price: Decimal::ZERO,
            fee: Decimal::ZERO,
            trade_id: 0,
            realized: Decimal::ZERO,
            maker: false,
            ts_ms: now_ms,
        }
    }

    /// Ends an open order without (further) fills.
    fn finish(&mut self, id: i64, state: OrderState, now_ms: i64, execs: &mut Vec<Execution>) {
        self.resting.remove(|k| *k == id);
        let Some(o) = self.orders.get_mut(&id) else {
            return;
        };
        o.status = state;
        o.update_ms = now_ms;
        let exec = if state == OrderState::Canceled {
            ExecType::Canceled
        } else {
            ExecType::Expired
        };
        let snapshot = o.clone();
        execs.push(self.exec_without_trade(&snapshot, exec, now_ms));
    }

    /// Fills the whole remaining quantity of an order at `price` (clipped to the position for reduce-only).
    fn fill(
        &mut self,
        id: i64,
        price: Decimal,
        liquidity: Liquidity,
        now_ms: i64,
        execs: &mut Vec<Execution>,
    ) {
        let Some(o) = self.orders.get(&id) else {
            return;
        };
        let mut qty = o.remaining();
        if o.reduce_only {
            let closable = fill::closing_qty(self.position.qty, o.side, o.remaining());
            if closable <= Decimal::ZERO {
                self.finish(id, OrderState::Expired, now_ms, execs);
                return;
            }
            qty = closable;
        }
        let side = o.side;
        let fee = self.fee_rates().fee(qty, price, liquidity).normalize();
        let realized = self.position.apply_fill(side, qty, price, fee);
        self.wallet += realized - fee;
        self.position_update_ms = now_ms;
        self.balance_update_ms = now_ms;
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        let Some(o) = self.orders.get_mut(&id) else {
            return;
        };
        o.executed_qty += qty;
        o.cum_quote += qty * price;
        if !o.executed_qty.is_zero() {
            o.avg_price = (o.cum_quote / o.executed_qty).round_dp(8).normalize();
        }
        o.status = if o.executed_qty >= o.orig_qty {
            OrderState::Filled
        } else {
            OrderState::PartiallyFilled
        };
        o.update_ms = now_ms;
        let snapshot = o.clone();
        let closed_short = snapshot.status == OrderState::PartiallyFilled;
        execs.push(Execution {
            order: snapshot,
            exec: ExecType::Trade,
            last_qty: qty,
            last_price: price,
            fee,
            trade_id,
            realized,
            maker: liquidity == Liquidity::Maker,
            ts_ms: now_ms,
        });
        if closed_short {
            // A reduce-only order clipped to the position: the rest cannot fill any more.
            self.finish(id, OrderState::Expired, now_ms, execs);
        }
    }

    pub fn cancel(
        &mut self,
        symbol: &str,
        r: &OrderRef,
        now: TsNs,
    ) -> Result<(Order, Execution), ApiError> {
        let order = self.order(symbol, r)?;
        if !order.is_open() {
            return Err(ApiError::cancel_rejected());
        }
        let id = order.order_id;
        let mut execs = Vec::with_capacity(1);
        self.finish(id, OrderState::Canceled, ms(now), &mut execs);
        let exec = execs.pop().ok_or_else(ApiError::unknown)?;
        Ok((exec.order.clone(), exec))
    }

    /// Cancels every open order (DELETE /fapi/v1/allOpenOrders).
    pub fn cancel_all(&mut self, symbol: &str, now: TsNs) -> Result<Vec<Execution>, ApiError> {
        self.check_symbol(symbol)?;
        let ids: Vec<i64> = self
            .orders
            .values()
            .filter(|o| o.is_open())
            .map(|o| o.order_id)
            .collect();
        let mut execs = Vec::with_capacity(ids.len());
        for id in ids {
            self.finish(id, OrderState::Canceled, ms(now), &mut execs);
        }
        Ok(execs)
    }

    /// A new perp touch: resting limit orders it reaches fill at their own price (maker), oldest first.
    pub fn on_touch(&mut self, touch: Touch, now: TsNs, execs: &mut Vec<Execution>) {
        self.touch = Some(touch);
        if self.resting.is_empty() {
            return;
        }
        let now_ms = ms(now);
        let mut reached = Vec::new();
        self.resting.take_reached(touch, &mut reached);
        for r in reached {
            self.fill(r.key, r.price, Liquidity::Maker, now_ms, execs);
        }
    }

    /// True when some open order could fill on a touch (lets the caller skip work on most quotes).
    pub fn has_open_orders(&self) -> bool {
        self.orders.values().any(Order::is_open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn account() -> Account {
        let mut a = Account::new(AccountConfig {
            symbol: "BTCUSDT".into(),
            filters: SymbolFilters::default(),
            starting_balance: d("1000"),
            taker_fee: d("0.0005"),
            maker_fee: d("0.0002"),
            max_leverage: 20,
        });
        let mut ex = Vec::new();
        a.on_touch(
            Touch {
                bid: d("60000.0"),
                ask: d("60000.1"),
            },
            1_000 * NS_PER_MS,
            &mut ex,
        );
        a
    }

    fn order(side: Side, t: OrderType, qty: &str, price: Option<&str>) -> NewOrder {
        NewOrder {
            symbol: "BTCUSDT".into(),
            side,
            order_type: t,
            qty: d(qty),
            price: price.map(d),
            tif: TimeInForce::Gtc,
            reduce_only: false,
            client_id: None,
        }
    }

    #[test]
    fn market_buy_fills_at_ask_with_taker_fee() {
        let mut a = account();
        let (o, ex) = a
            .place(
                order(Side::Buy, OrderType::Market, "0.010", None),
                2_000 * NS_PER_MS,
            )
            .unwrap();
        assert_eq!(o.status, OrderState::Filled);
        assert_eq!(o.avg_price, d("60000.1"));
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].exec, ExecType::New);
        assert_eq!(ex[1].exec, ExecType::Trade);
        assert_eq!(ex[1].fee, d("0.3000005"));
        assert_eq!(ex[1].ts_ms, 2_000);
        assert_eq!(a.position().qty, d("0.010"));
        assert_eq!(a.balance().wallet, d("1000") - d("0.3000005"));
    }

    #[test]
    fn reduce_only_close_realises_pnl() {
        let mut a = account();
        a.place(order(Side::Buy, OrderType::Market, "0.010", None), 0)
            .unwrap();
        let mut ex = Vec::new();
        a.on_touch(
            Touch {
                bid: d("60100.1"),
                ask: d("60100.2"),
            },
            0,
            &mut ex,
        );
        let mut close = order(Side::Sell, OrderType::Market, "0.020", None);
        close.reduce_only = true;
        let (o, ex) = a.place(close, 0).unwrap();
        // Clipped to the position: 0.010 fills, the rest expires.
        assert_eq!(o.executed_qty, d("0.010"));
        assert_eq!(o.status, OrderState::Expired);
        assert_eq!(ex[1].realized, d("1.000"));
        assert!(a.position().is_flat());
        let fees = d("0.3000005") + (d("0.010") * d("60100.1") * d("0.0005")).round_dp(8);
        assert_eq!(a.balance().wallet, d("1000") + d("1") - fees);
        // Flat now: another reduce-only is rejected.
        let mut again = order(Side::Sell, OrderType::Market, "0.010", None);
        again.reduce_only = true;
        assert_eq!(a.place(again, 0).unwrap_err().code, -2022);
    }

    #[test]
    fn filters_reject_with_binance_codes() {
        let mut a = account();
        let code = |a: &mut Account, o| a.place(o, 0).unwrap_err().code;
        assert_eq!(
            code(&mut a, order(Side::Buy, OrderType::Market, "0.0101", None)),
            -1111
        );
        assert_eq!(
            code(&mut a, order(Side::Buy, OrderType::Market, "0.001", None)),
            -4164
        );
        assert_eq!(
            code(&mut a, order(Side::Buy, OrderType::Market, "0", None)),
            -4003
        );
        assert_eq!(
            code(
                &mut a,
                order(Side::Buy, OrderType::Limit, "0.010", Some("60000.05"))
            ),
            -1111
        );
        assert_eq!(
            code(&mut a, order(Side::Buy, OrderType::Limit, "0.010", None)),
            -1102
        );
        // 1000 USDT at 20x buys at most ~0.33 BTC.
        assert_eq!(
            code(&mut a, order(Side::Buy, OrderType::Market, "0.500", None)),
            -2019
        );
        assert_eq!(
            code(
                &mut a,
                NewOrder {
                    symbol: "ETHUSDT".into(),
                    ..order(Side::Buy, OrderType::Market, "0.010", None)
                }
            ),
            -1121
        );
        let msg = a
            .place(order(Side::Buy, OrderType::Market, "0.001", None), 0)
            .unwrap_err()
            .msg;
        assert_eq!(
            msg,
            "Order's notional must be no smaller than 100 (unless you choose reduce only)"
        );
    }

    #[test]
    fn duplicate_client_id_is_rejected() {
        let mut a = account();
        let mut o = order(Side::Buy, OrderType::Market, "0.002", None);
        o.client_id = Some("abc".into());
        a.place(o.clone(), 0).unwrap();
        assert_eq!(a.place(o, 0).unwrap_err().code, -4116);
        let found = a.order("BTCUSDT", &OrderRef::Client("abc".into())).unwrap();
        assert_eq!(found.status, OrderState::Filled);
    }

    #[test]
    fn resting_limit_fills_when_touch_reaches_it_as_maker() {
        let mut a = account();
        let (o, ex) = a
            .place(
                order(Side::Buy, OrderType::Limit, "0.010", Some("59990.0")),
                0,
            )
            .unwrap();
        assert_eq!(o.status, OrderState::New);
        assert_eq!(ex.len(), 1);
        assert_eq!(a.open_orders(None).unwrap().len(), 1);
        let mut ex = Vec::new();
        a.on_touch(
            Touch {
                bid: d("59990.0"),
                ask: d("59990.1"),
            },
            5 * NS_PER_MS,
            &mut ex,
        );
        assert!(ex.is_empty());
        a.on_touch(
            Touch {
                bid: d("59989.9"),
                ask: d("59990.0"),
            },
            6 * NS_PER_MS,
            &mut ex,
        );
        assert_eq!(ex.len(), 1);
        assert!(ex[0].maker);
        assert_eq!(ex[0].last_price, d("59990.0"));
        assert_eq!(ex[0].fee, (d("599.900") * d("0.0002")).round_dp(8));
        assert_eq!(ex[0].order.status, OrderState::Filled);
        assert!(a.open_orders(None).unwrap().is_empty());
    }

    #[test]
    fn canceled_and_expired_orders_leave_the_book_and_reached_ones_fill_oldest_first() {
        let mut a = account();
        let buy = |p: &str| order(Side::Buy, OrderType::Limit, "0.010", Some(p));
        let (first, _) = a.place(buy("59990.0"), 0).unwrap();
        let (gone, _) = a.place(buy("59995.0"), 0).unwrap();
        let (second, _) = a.place(buy("59992.0"), 0).unwrap();
        a.cancel("BTCUSDT", &OrderRef::Id(gone.order_id), 0)
            .unwrap();
        let mut ex = Vec::new();
        a.on_touch(
            Touch {
                bid: d("59980.0"),
                ask: d("59980.1"),
            },
            0,
            &mut ex,
        );
        let filled: Vec<i64> = ex.iter().map(|e| e.order.order_id).collect();
        assert_eq!(filled, [first.order_id, second.order_id]);
        assert!(ex.iter().all(|e| e.maker && e.exec == ExecType::Trade));
        assert_eq!(ex[1].last_price, d("59992.0"));
        assert_eq!(
            a.order("BTCUSDT", &OrderRef::Id(gone.order_id))
                .unwrap()
                .status,
            OrderState::Canceled
        );
    }

    #[test]
    fn cancel_ioc_and_post_only() {
        let mut a = account();
        let (o, _) = a
            .place(
                order(Side::Sell, OrderType::Limit, "0.010", Some("61000.0")),
                0,
            )
            .unwrap();
        let (c, e) = a.cancel("BTCUSDT", &OrderRef::Id(o.order_id), 0).unwrap();
        assert_eq!(c.status, OrderState::Canceled);
        assert_eq!(e.exec, ExecType::Canceled);
        assert_eq!(
            a.cancel("BTCUSDT", &OrderRef::Id(o.order_id), 0)
                .unwrap_err()
                .code,
            -2011
        );
        assert_eq!(
            a.cancel("BTCUSDT", &OrderRef::Id(999), 0).unwrap_err().code,
            -2013
        );

        let mut ioc = order(Side::Buy, OrderType::Limit, "0.010", Some("59000.0"));
        ioc.tif = TimeInForce::Ioc;
        let (o, ex) = a.place(ioc, 0).unwrap();
        assert_eq!(o.status, OrderState::Expired);
        assert_eq!(ex.last().unwrap().exec, ExecType::Expired);

        let mut gtx = order(Side::Buy, OrderType::Limit, "0.010", Some("60000.1"));
        gtx.tif = TimeInForce::Gtx;
        assert_eq!(a.place(gtx, 0).unwrap_err().code, -5022);
    }

    #[test]
    fn unrealised_uses_mark_then_mid() {
        let mut a = account();
        a.place(order(Side::Sell, OrderType::Market, "0.010", None), 0)
            .unwrap();
        // Entry at bid 60000.0; mid 60000.05.
        assert_eq!(a.position_view().unrealized, d("-0.0005"));
        a.set_mark(d("59900"));
        assert_eq!(a.position_view().unrealized, d("1.000"));
        assert_eq!(a.set_leverage("BTCUSDT", 125).unwrap_err().code, -4028);
        assert_eq!(
            a.set_leverage("BTCUSDT", 5).unwrap(),
            Decimal::from(300_000_000)
        );
    }
}
