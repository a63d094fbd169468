//! REST endpoints of the local exchange: Binance USD-M paths, parameters, JSON and error codes. Signed endpoints
//! take parameters from the query string and/or the urlencoded body and verify the HMAC over query + body (as
//! Binance concatenates them), the API key, and the timestamp against `recvWindow` (1 s future tolerance).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::account::{NewOrder, OrderRef, TimeInForce};
use super::error::ApiError;
use super::faults::{self, OrderFault};
use super::render;
use super::server::{wall_ms, Shared};
use crate::binance::rest_wire::{
    ErrorBody, LeverageResponse, ListenKey, PositionSideDual, ServerTime,
};
use crate::binance::sign;
use crate::model::{Decimal, OrderType, Side};

pub(crate) type St = State<Arc<Shared>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            code: i64::from(self.code),
            msg: self.msg.into_owned(),
        };
        (status, axum::Json(body)).into_response()
    }
}

/// The `startTime`/`endTime` bounds of a query, inclusive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Window {
    pub(crate) fn contains(&self, ms: i64) -> bool {
        self.start.is_none_or(|a| ms >= a) && self.end.is_none_or(|b| ms <= b)
    }
}

/// Request parameters, from the query string and the urlencoded body (query first), percent-decoded.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    query: String,
    body: String,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b.get(i) {
            Some(b'+') => out.push(b' '),
            Some(b'%') => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            Some(&c) => out.push(c),
            None => break,
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn split_pairs(s: &str, out: &mut Vec<(String, String)>) {
    for part in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((percent_decode(k), percent_decode(v)));
    }
}

/// The string without its `signature=` parameter (the payload that was signed).
fn without_signature(s: &str) -> String {
    s.split('&')
        .filter(|p| !p.starts_with("signature="))
        .collect::<Vec<_>>()
        .join("&")
}

impl Params {
    pub(crate) fn new(query: Option<String>, body: &Bytes) -> Params {
        let query = query.unwrap_or_default();
        let body = String::from_utf8_lossy(body).into_owned();
        let mut pairs = Vec::new();
        split_pairs(&query, &mut pairs);
        split_pairs(&body, &mut pairs);
        Params { pairs, query, body }
    }

    /// First non-empty value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn req(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::mandatory(name))
    }

    pub(crate) fn decimal(&self, name: &str) -> Result<Option<Decimal>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<Decimal>()
                .map(Some)
                .map_err(|_| ApiError::mandatory(name)),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::mandatory(name)),
        }
    }

    /// `limit` within `1..=max`, `default` when absent (-1130 otherwise).
    pub(crate) fn limit(&self, default: i64, max: i64) -> Result<usize, ApiError> {
        let l = self.int("limit")?.unwrap_or(default);
        if !(1..=max).contains(&l) {
            return Err(ApiError::invalid_param("limit"));
        }
        Ok(l as usize)
    }

    /// `[startTime, endTime]` of a history query (either may be absent); -1127 when start is after end.
    pub(crate) fn window(&self) -> Result<Window, ApiError> {
        let (a, b) = (self.int("startTime")?, self.int("endTime")?);
        if let (Some(a), Some(b)) = (a, b) {
            if a > b {
                return Err(ApiError::start_after_end());
            }
        }
        Ok(Window { start: a, end: b })
    }

    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(ApiError::invalid_param(name)),
        }
    }

    /// The signed payload: query + body (no separator, as Binance), without the signature.
    pub(crate) fn payload(&self) -> String {
        let mut p = without_signature(&self.query);
        p.push_str(&without_signature(&self.body));
        p
    }
}

/// The last `n` of `rows` unless the query gave a starting point (then the first `n`), as Binance pages.
pub(crate) fn page<T>(mut rows: Vec<T>, n: usize, from_start: bool) -> Vec<T> {
    if from_start {
        rows.truncate(n);
    } else if rows.len() > n {
        rows.drain(..rows.len() - n);
    }
    rows
}

/// What a signed request must show.
pub(crate) fn api_key_check(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = headers
        .get("X-MBX-APIKEY")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::bad_api_key_format)?;
    if key.is_empty() {
        return Err(ApiError::bad_api_key_format());
    }
    if key != shared.cfg.keys.api_key {
        return Err(ApiError::rejected_key());
    }
    Ok(())
}

pub(crate) fn signed_check(
    shared: &Shared,
    headers: &HeaderMap,
    p: &Params,
) -> Result<(), ApiError> {
    api_key_check(shared, headers)?;
    let signature = p.req("signature")?;
    let ts = p
        .int("timestamp")?
        .ok_or_else(|| ApiError::mandatory("timestamp"))?;
    let recv_window = p.int("recvWindow")?.unwrap_or(5_000);
    if !(1..=60_000).contains(&recv_window) {
        return Err(ApiError::invalid_param("recvWindow"));
    }
    if !sign::verify(&shared.cfg.keys.secret, &p.payload(), signature) {
        return Err(ApiError::bad_signature());
    }
    let now = wall_ms();
    if ts > now + 1_000 {
        return Err(ApiError::timestamp_ahead());
    }
    if now - ts > recv_window {
        return Err(ApiError::timestamp_outside_window());
    }
    Ok(())
}

/// Adds the usage headers Binance sends.
pub(crate) fn with_usage(
    shared: &Shared,
    weight: u32,
    order: bool,
    mut resp: Response,
) -> Response {
    let (w, o) = shared.use_weight(weight, order);
    let h = resp.headers_mut();
    h.insert("X-MBX-USED-WEIGHT-1M", HeaderValue::from(w));
    if order {
        h.insert("X-MBX-ORDER-COUNT-1M", HeaderValue::from(o));
    }
    resp
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Response {
    axum::Json(v).into_response()
}

pub(crate) fn finish(
    shared: &Shared,
    weight: u32,
    order: bool,
    r: Result<Response, ApiError>,
) -> Response {
    let resp = r.unwrap_or_else(IntoResponse::into_response);
    with_usage(shared, weight, order, resp)
}

/// A signed endpoint: its parameters (query + body), the key, signature and timestamp checks, then `f`; usage
/// headers on every answer, errors included.
pub(crate) fn signed(
    s: &Shared,
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
    weight: u32,
    f: impl FnOnce(&Params) -> Result<Response, ApiError>,
) -> Response {
    let p = Params::new(q, body);
    let r = signed_check(s, headers, &p).and_then(|()| f(&p));
    finish(s, weight, false, r)
}

pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(ErrorBody {
            code: -1099,
            msg: "Not found, unauthenticated, or unauthorized.".to_string(),
        }),
    )
        .into_response()
}

pub(crate) async fn ping(State(s): St) -> Response {
    finish(&s, 1, false, Ok(json(&serde_json::json!({}))))
}

pub(crate) async fn time(State(s): St) -> Response {
    finish(
        &s,
        1,
        false,
        Ok(json(&ServerTime {
            server_time: wall_ms(),
        })),
    )
}

fn parse_side(p: &Params) -> Result<Side, ApiError> {
    match p.req("side")? {
        "BUY" => Ok(Side::Buy),
        "SELL" => Ok(Side::Sell),
        _ => Err(ApiError::invalid_side()),
    }
}

fn parse_new_order(p: &Params) -> Result<(NewOrder, bool), ApiError> {
    let symbol = p.req("symbol")?.to_string();
    let side = parse_side(p)?;
    let order_type = match p.req("type")? {
        "MARKET" => OrderType::Market,
        "LIMIT" => OrderType::Limit,
        _ => return Err(ApiError::invalid_order_type()),
    };
    if let Some(ps) = p.get("positionSide") {
        if ps != "BOTH" {
            return Err(ApiError::new(
                -4061,
                "Order's position side does not match user's setting.",
            ));
        }
    }
    let qty = p
        .decimal("quantity")?
        .ok_or_else(|| ApiError::mandatory("quantity"))?;
    let price = p.decimal("price")?;
    let tif = match (order_type, p.get("timeInForce")) {
        (OrderType::Limit, None) => return Err(ApiError::mandatory("timeInForce")),
        (OrderType::Limit, Some(t)) => TimeInForce::parse(t).ok_or_else(ApiError::invalid_tif)?,
        (OrderType::Market, _) => TimeInForce::Gtc,
    };
    if order_type == OrderType::Limit && price.is_none() {
        return Err(ApiError::mandatory("price"));
    }
    if order_type == OrderType::Market && price.is_some() {
        return Err(ApiError::not_required("price"));
    }
    if let Some(c) = p.get("newClientOrderId") {
        let legal = |b: u8| b.is_ascii_alphanumeric() || b".:/_-".contains(&b);
        if c.len() <= 36 && !c.bytes().all(legal) {
            return Err(ApiError::illegal_chars("newClientOrderId"));
        }
    }
    let ack = match p.get("newOrderRespType") {
        None | Some("ACK") => true,
        Some("RESULT") => false,
        Some(_) => return Err(ApiError::invalid_param("newOrderRespType")),
    };
    Ok((
        NewOrder {
            symbol,
            side,
            order_type,
            qty,
            price: if order_type == OrderType::Limit {
                price
            } else {
                None
            },
            tif,
            reduce_only: p.flag("reduceOnly")?,
            client_id: p.get("newClientOrderId").map(str::to_string),
        },
        ack,
    ))
}

fn server_error() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(ErrorBody {
            code: -1001,
            msg: "Internal error; unable to process your request. Please try again.".to_string(),
        }),
    )
        .into_response()
}

/// What to do with the response of an order after a fault was consumed.
enum Withhold {
    No,
    Forever,
    Http5xx,
    Seeded(super::faults::OrderFault),
}

pub(crate) async fn new_order(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &body);
    let mut withhold = Withhold::No;
    let result = (|| -> Result<Response, ApiError> {
        signed_check(&s, &headers, &p)?;
        let (req, ack) = parse_new_order(&p)?;
        let mut core = s.core();
        if let Some(placed) = core.faults.http5xx_next_order.take() {
            withhold = Withhold::Http5xx;
            if !placed {
                return Err(ApiError::unknown());
            }
        } else if std::mem::take(&mut core.faults.drop_next_order_response) {
            withhold = Withhold::Forever;
        } else if let Some(f) = s.faults.on_order() {
            withhold = Withhold::Seeded(f);
            if f == OrderFault::RejectedBefore {
                return Err(ApiError::unknown());
            }
        }
        let (order, execs) = core.account.place(req, s.now())?;
        s.faults.record_accepted(&order.client_id);
        s.publish(&core, &execs);
        drop(core);
        // ACK answers with the order as acknowledged (NEW, nothing executed); RESULT with its state now.
        let shown = match (ack, execs.first()) {
            (true, Some(first)) => &first.order,
            _ => &order,
        };
        Ok(json(&render::order(shown, true, false)))
    })();
    match withhold {
        Withhold::No => finish(&s, 1, true, result),
        Withhold::Http5xx => with_usage(&s, 1, true, server_error()),
        Withhold::Seeded(f) => seeded_answer(&s, f, result).await,
        Withhold::Forever => {
            tracing::info!("fault: withholding an order response");
            s.shutdown.cancelled().await;
            server_error()
        }
    }
}

/// The answer of an order that drew a seeded fault (see `faults::OrderFault`).
async fn seeded_answer(s: &Shared, f: OrderFault, r: Result<Response, ApiError>) -> Response {
    let resp = match f {
        OrderFault::RejectedBefore => faults::rejected_before(),
        OrderFault::Unknown => faults::unknown_outcome(),
        OrderFault::Lost => faults::dropped_connection(),
        OrderFault::Delayed(t) => {
            tokio::select! {
                _ = tokio::time::sleep(t) => {}
                _ = s.shutdown.cancelled() => {}
            }
            return finish(s, 1, true, r);
        }
    };
    with_usage(s, 1, true, resp)
}

fn order_ref(p: &Params) -> Result<OrderRef, ApiError> {
    if let Some(id) = p.int("orderId")? {
        return Ok(OrderRef::Id(id));
    }
    match p.get("origClientOrderId") {
        Some(c) => Ok(OrderRef::Client(c.to_string())),
        None => Err(ApiError::new(
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        )),
    }
}

pub(crate) async fn query_order(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 1, |p| {
        let symbol = p.req("symbol")?;
        let r = order_ref(p)?;
        let core = s.core();
        let o = core.account.order(symbol, &r)?;
        Ok(json(&render::order(o, false, true)))
    })
}

pub(crate) async fn cancel_order(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 1, |p| {
        let symbol = p.req("symbol")?;
        let r = order_ref(p)?;
        let mut core = s.core();
        let now = s.now();
        let (o, exec) = core.account.cancel(symbol, &r, now)?;
        s.publish(&core, std::slice::from_ref(&exec));
        Ok(json(&render::order(&o, true, false)))
    })
}

pub(crate) async fn cancel_all(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 1, |p| {
        let symbol = p.req("symbol")?;
        let mut core = s.core();
        let now = s.now();
        let execs = core.account.cancel_all(symbol, now)?;
        s.publish(&core, &execs);
        Ok(json(&ErrorBody {
            code: 200,
            msg: "The operation of cancel all open order is done.".to_string(),
        }))
    })
}

pub(crate) async fn open_orders(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &body);
    let r = (|| -> Result<Response, ApiError> {
        signed_check(&s, &headers, &p)?;
        let core = s.core();
        let list: Vec<_> = core
            .account
            .open_orders(p.get("symbol"))?
            .into_iter()
            .map(|o| render::order(o, false, true))
            .collect();
        Ok(json(&list))
    })();
    let weight = if p.get("symbol").is_some() { 1 } else { 40 };
    finish(&s, weight, false, r)
}

pub(crate) fn symbol_filter(s: &Shared, p: &Params) -> Result<(), ApiError> {
    match p.get("symbol") {
        Some(sym) if sym != s.cfg.symbol => Err(ApiError::bad_symbol()),
        _ => Ok(()),
    }
}

pub(crate) async fn position_risk_v2(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 5, |p| {
        symbol_filter(&s, p)?;
        let view = s.core().account.position_view();
        Ok(json(&vec![render::position_risk_v2(&view)]))
    })
}

pub(crate) async fn position_risk_v3(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 5, |p| {
        symbol_filter(&s, p)?;
        let view = s.core().account.position_view();
        // v3 lists only symbols with a position or open orders.
        let list = if view.qty.is_zero() && view.open_order_margin.is_zero() {
            Vec::new()
        } else {
            vec![render::position_risk_v3(&view)]
        };
        Ok(json(&list))
    })
}

pub(crate) async fn balance(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 5, |_| {
        let b = s.core().account.balance();
        Ok(json(&vec![render::balance(&b)]))
    })
}

pub(crate) async fn account(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 5, |_| {
        let core = s.core();
        Ok(json(&render::account(
            &core.account.balance(),
            &core.account.position_view(),
        )))
    })
}

pub(crate) async fn leverage(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    signed(&s, &headers, q, &body, 1, |p| {
        let symbol = p.req("symbol")?;
        let lev = p
            .int("leverage")?
            .ok_or_else(|| ApiError::mandatory("leverage"))?;
        let lev = u32::try_from(lev).map_err(|_| ApiError::invalid_leverage())?;
        let max_notional = s.core().account.set_leverage(symbol, lev)?;
        Ok(json(&LeverageResponse {
            leverage: lev,
            max_notional_value: max_notional,
            symbol: symbol.to_string(),
        }))
    })
}

pub(crate) async fn position_side(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &body);
    let r = signed_check(&s, &headers, &p).map(|()| {
        json(&PositionSideDual {
            dual_side_position: false,
        })
    });
    finish(&s, 30, false, r)
}

pub(crate) async fn listen_key_new(State(s): St, headers: HeaderMap) -> Response {
    let r = api_key_check(&s, &headers).map(|()| {
        let key = s.issue_listen_key();
        json(&ListenKey {
            listen_key: key.to_string(),
        })
    });
    finish(&s, 1, false, r)
}

pub(crate) async fn listen_key_keep(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &body);
    let r = api_key_check(&s, &headers).and_then(|()| {
        if !s.keep_alive(p.get("listenKey")) {
            return Err(ApiError::no_listen_key());
        }
        let key = s
            .core()
            .keys
            .active_key()
            .map(|k| k.to_string())
            .unwrap_or_default();
        Ok(json(&ListenKey { listen_key: key }))
    });
    finish(&s, 1, false, r)
}

pub(crate) async fn listen_key_delete(State(s): St, headers: HeaderMap) -> Response {
    let r = api_key_check(&s, &headers).map(|()| {
        s.delete_listen_key();
        json(&serde_json::json!({}))
    });
    finish(&s, 1, false, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_query_then_body_without_signature() {
        let p = Params::new(
            Some("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC".into()),
            &Bytes::from_static(
                b"quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943&signature=abc",
            ),
        );
        assert_eq!(
            p.payload(),
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=9000&recvWindow=5000&timestamp=1591702613943"
        );
        assert_eq!(p.get("price"), Some("9000"));
        assert_eq!(p.get("signature"), Some("abc"));
        // Binance's documented vector, sent as the query string.
        let secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";
        let q = Params::new(
            Some("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943&signature=3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9".into()),
            &Bytes::new(),
        );
        assert!(sign::verify(
            secret,
            &q.payload(),
            q.get("signature").unwrap()
        ));
    }

    fn order_params(q: &str) -> Result<(NewOrder, bool), ApiError> {
        parse_new_order(&Params::new(Some(q.into()), &Bytes::new()))
    }

    #[test]
    fn order_parameters_are_refused_as_binance_refuses_them() {
        let code = |q: &str| order_params(q).map(|_| ()).unwrap_err().code;
        assert_eq!(
            code("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&price=60000"),
            -1106
        );
        assert_eq!(
            code("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&newClientOrderId=a%20b"),
            -1100
        );
        assert_eq!(
            code("symbol=BTCUSDT&side=BUY&type=STOP_MARKET&quantity=0.01"),
            -1116
        );
        assert_eq!(
            code("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=1"),
            -1102
        );
        let (o, ack) = order_params(
            "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&newClientOrderId=x-1:a/b.c_d",
        )
        .unwrap();
        assert_eq!(o.client_id.as_deref(), Some("x-1:a/b.c_d"));
        assert!(ack);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c%zz"), "a/b c%zz");
        assert_eq!(percent_decode("%E4%BD%A0"), "你");
    }
}
