//! Public market-data endpoints of the local exchange (exchangeInfo, tickers, depth, klines, trades, mark price
//! and funding), served from the replay's [`MarketData`](super::market::MarketData) in Binance's shapes.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::error::ApiError;
use super::market::{interval_ms, next_funding_ms, MarketData, TradeRec};
use super::render;
use super::rest::{finish, json, page, Params, St};
use super::server::{wall_ms, Shared};
use crate::binance::compat_wire::{
    BookTickerRest, DepthRest, FundingRateRow, OpenInterest, PremiumIndex, TickerPrice,
};
use crate::model::Decimal;

/// The `symbol` parameter: ours, or absent (`Ok(None)`, "all symbols").
fn opt_symbol(s: &Shared, p: &Params) -> Result<Option<()>, ApiError> {
    match p.get("symbol") {
        None => Ok(None),
        Some(sym) if sym == s.cfg.symbol => Ok(Some(())),
        Some(_) => Err(ApiError::bad_symbol()),
    }
}

fn req_symbol(s: &Shared, p: &Params) -> Result<(), ApiError> {
    opt_symbol(s, p)?.ok_or_else(|| ApiError::mandatory("symbol"))
}

/// One object for a symbol query, a one-element array without one (as Binance answers "all symbols").
fn one_or_all<T: serde::Serialize>(one: Option<()>, v: T) -> Response {
    match one {
        Some(()) => json(&v),
        None => json(&[v]),
    }
}

/// Public endpoints: parameters, then `f`, usage headers on every answer.
fn public(
    s: &Shared,
    q: Option<String>,
    weight: u32,
    f: impl FnOnce(&Params) -> Result<Response, ApiError>,
) -> Response {
    let p = Params::new(q, &Bytes::new());
    finish(s, weight, false, f(&p))
}

/// The last traded price, else the mark, else zero (nothing replayed yet).
fn last_price(s: &Shared) -> Decimal {
    if let Some(t) = s.market().trades.back() {
        return t.price;
    }
    s.core().account.mark().unwrap_or(Decimal::ZERO)
}

pub(crate) async fn exchange_info(State(s): St) -> Response {
    let info = render::listing(&s.cfg.symbol, &s.cfg.filters, wall_ms());
    finish(&s, 1, false, Ok(json(&info)))
}

pub(crate) async fn ticker_24h(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 1, |p| {
        let one = opt_symbol(&s, p)?;
        let fallback = last_price(&s);
        let t = render::ticker_24h(&s.cfg.symbol, &s.market(), fallback);
        Ok(one_or_all(one, t))
    })
}

pub(crate) async fn ticker_price(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 1, |p| {
        let one = opt_symbol(&s, p)?;
        let t = TickerPrice {
            symbol: s.cfg.symbol.clone(),
            price: last_price(&s),
            time: s.now() / crate::model::NS_PER_MS,
        };
        Ok(one_or_all(one, t))
    })
}

pub(crate) async fn book_ticker(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 2, |p| {
        let one = opt_symbol(&s, p)?;
        let md = s.market();
        let (q, ms) = md.quote.ok_or_else(ApiError::no_depth)?;
        let t = BookTickerRest {
            symbol: s.cfg.symbol.clone(),
            bid_price: q.bid,
            bid_qty: q.bid_qty,
            ask_price: q.ask,
            ask_qty: q.ask_qty,
            time: ms,
            last_update_id: md.book_update_id,
        };
        Ok(one_or_all(one, t))
    })
}

/// `/depth`: the touch (the recordings keep the best level only).
pub(crate) async fn depth(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 2, |p| {
        req_symbol(&s, p)?;
        let l = p.int("limit")?.unwrap_or(500);
        if ![5, 10, 20, 50, 100, 500, 1000].contains(&l) {
            return Err(ApiError::invalid_param("limit"));
        }
        let md = s.market();
        let (bids, asks, ms) = match md.quote {
            Some((q, ms)) => (vec![[q.bid, q.bid_qty]], vec![[q.ask, q.ask_qty]], ms),
            None => (Vec::new(), Vec::new(), md.last_ms()),
        };
        Ok(json(&DepthRest {
            last_update_id: md.book_update_id,
            event_time: ms,
            transaction_time: ms,
            bids,
            asks,
        }))
    })
}

/// `/klines` (and `/continuousKlines`, `/markPriceKlines`, `/indexPriceKlines`, which ccxt may ask for: all
/// served from the trades, the only prices the recordings carry at every instant).
pub(crate) async fn klines(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 5, |p| {
        if p.get("pair").is_none() {
            req_symbol(&s, p)?;
        }
        let iv = interval_ms(p.req("interval")?).ok_or_else(ApiError::bad_interval)?;
        let w = p.window()?;
        let n = p.limit(500, 1500)?;
        let rows: Vec<_> = s
            .market()
            .klines(iv, w.start, w.end, n)
            .iter()
            .map(|c| render::kline_row(c, iv))
            .collect();
        Ok(json(&rows))
    })
}

/// The replayed trades a trade query selects (`fromId`, `startTime`, `endTime`, `limit`): the most recent ones
/// when no starting point is given, as Binance answers.
fn select_trades(md: &MarketData, p: &Params) -> Result<Vec<TradeRec>, ApiError> {
    let n = p.limit(500, 1000)?;
    let (from_id, w) = (p.int("fromId")?, p.window()?);
    let rows: Vec<TradeRec> = md
        .trades
        .iter()
        .filter(|t| from_id.is_none_or(|f| t.id >= f))
        .filter(|t| w.contains(t.ms))
        .copied()
        .collect();
    Ok(page(rows, n, from_id.is_some() || w.start.is_some()))
}

/// `/aggTrades`: every replayed trade is its own aggregate.
pub(crate) async fn agg_trades(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 20, |p| {
        req_symbol(&s, p)?;
        let rows = select_trades(&s.market(), p)?;
        Ok(json(
            &rows.iter().map(render::agg_trade).collect::<Vec<_>>(),
        ))
    })
}

/// `/trades`: the recent replayed trades.
pub(crate) async fn trades(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 5, |p| {
        req_symbol(&s, p)?;
        if p.get("fromId").is_some() || p.get("startTime").is_some() {
            return Err(ApiError::not_required(if p.get("fromId").is_some() {
                "fromId"
            } else {
                "startTime"
            }));
        }
        let rows = select_trades(&s.market(), p)?;
        Ok(json(
            &rows.iter().map(render::recent_trade).collect::<Vec<_>>(),
        ))
    })
}

pub(crate) async fn premium_index(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 1, |p| {
        let one = opt_symbol(&s, p)?;
        let now_ms = s.now() / crate::model::NS_PER_MS;
        let mark = s.market().mark;
        let (mark_price, index, rate) = match mark {
            Some(m) => (m.mark, m.index, m.funding_rate),
            None => {
                let m = s.core().account.mark().unwrap_or(Decimal::ZERO);
                (m, m, Decimal::ZERO)
            }
        };
        let t = PremiumIndex {
            symbol: s.cfg.symbol.clone(),
            mark_price,
            index_price: index,
            estimated_settle_price: index,
            last_funding_rate: rate,
            interest_rate: Decimal::new(1, 4),
            next_funding_time: next_funding_ms(now_ms),
            time: now_ms,
        };
        Ok(one_or_all(one, t))
    })
}

/// `/fundingRate`: the funding times the replay crossed.
pub(crate) async fn funding_rate(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 1, |p| {
        opt_symbol(&s, p)?;
        let n = p.limit(100, 1000)?;
        let w = p.window()?;
        let rows: Vec<_> = s
            .market()
            .funding
            .iter()
            .filter(|f| w.contains(f.ms))
            .take(n)
            .map(|f| FundingRateRow {
                symbol: s.cfg.symbol.clone(),
                funding_rate: f.rate,
                funding_time: f.ms,
                mark_price: f.mark,
            })
            .collect();
        Ok(json(&rows))
    })
}

/// `/openInterest`: the local account's position is the only open interest there is.
pub(crate) async fn open_interest(State(s): St, RawQuery(q): RawQuery) -> Response {
    public(&s, q, 1, |p| {
        req_symbol(&s, p)?;
        let qty = s.core().account.position().qty.abs();
        Ok(json(&OpenInterest {
            open_interest: qty,
            symbol: s.cfg.symbol.clone(),
            time: s.now() / crate::model::NS_PER_MS,
        }))
    })
}
