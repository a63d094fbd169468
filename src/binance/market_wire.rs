//! Binance market websocket frames (spot and USD-M, raw or combined-stream wrapped) → domain market events.
//!
//! One serde pass over the frame, borrowing every string from it: a hand-written visitor collects the few fields
//! premia needs from whichever message it is (bookTicker, trade, aggTrade, markPriceUpdate, forceOrder) and skips
//! everything else (depth arrays, unknown fields) without building values. The message type comes from the `e`
//! field, else from the combined-stream name (`btcusdt@bookTicker`), else from the shape (spot bookTicker has no
//! `e`). Frames that carry no domain event — depth updates, REST depth snapshots, subscribe responses, unknown
//! events, array streams such as `!markPrice@arr` — are [`Frame::Ignored`].

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::market::event::{Liquidation, Mark, MarketKind, Quote, Trade};
use crate::market::num::{excerpt, parse_decimal};
use crate::model::{Decimal, Side, Venue};

/// What one websocket frame means to premia.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame {
    /// A domain event (quote, trade, mark price, liquidation).
    Market(MarketKind),
    /// The server announced it is about to close the connection (`serverShutdown`): reconnect now.
    ServerShutdown,
    /// A valid frame that carries no domain event (depth, snapshot, subscribe response, unknown event type).
    Ignored,
}

/// Why a frame could not be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{msg}: missing field `{field}`")]
    MissingField {
        msg: &'static str,
        field: &'static str,
    },
    #[error("{msg}: bad field `{field}`: {problem}")]
    BadField {
        msg: &'static str,
        field: &'static str,
        problem: String,
    },
    #[error("unrecognised frame: not a Binance market stream message")]
    Unrecognised,
}

/// Parses one frame. `venue` is the market the connection (or recording) belongs to; it tags quotes and trades.
pub fn parse_frame(json: &str, venue: Venue) -> Result<Frame, WireError> {
    let top = parse_top(json)?;
    let Some((kind, p)) = classify(&top)? else {
        return Ok(Frame::Ignored);
    };
    let msg = kind.name();
    Ok(match kind {
        Kind::BookTicker { .. } => Frame::Market(MarketKind::Quote(Quote {
            venue,
            bid: dec(msg, "b", p.b)?,
            bid_qty: dec(msg, "B", p.bq)?,
            ask: dec(msg, "a", p.a)?,
            ask_qty: dec(msg, "A", p.aq)?,
        })),
        Kind::Trade | Kind::AggTrade => Frame::Market(MarketKind::Trade(Trade {
            venue,
            price: dec(msg, "p", p.p)?,
            qty: dec(msg, "q", p.q)?,
            taker_side: if boolean(msg, "m", p.m)? {
                // The buyer was the maker: the aggressor sold.
                Side::Sell
            } else {
                Side::Buy
            },
        })),
        Kind::MarkPrice => Frame::Market(MarketKind::Mark(Mark {
            mark: dec(msg, "p", p.p)?,
            index: dec(msg, "i", p.i)?,
            funding_rate: match p.r {
                // Delivery contracts send an empty funding rate.
                Some(Val::Str("")) => Decimal::ZERO,
                r => dec(msg, "r", r)?,
            },
        })),
        Kind::ForceOrder => {
            let o = match p.o {
                Some(o) => o,
                None => return Err(missing(msg, "o")),
            };
            let side = match o.side {
                Some(Val::Str("BUY")) => Side::Buy,
                Some(Val::Str("SELL")) => Side::Sell,
                None => return Err(missing(msg, "o.S")),
                Some(v) => return Err(bad(msg, "o.S", format!("expected BUY or SELL, got {v}"))),
            };
            let avg = match o.avg_price {
                None => None,
                v => Some(dec(msg, "o.ap", v)?),
            };
            let limit = dec(msg, "o.p", o.p)?;
            let filled = match o.filled {
                None => None,
                v => Some(dec(msg, "o.z", v)?),
            };
            let qty = dec(msg, "o.q", o.q)?;
            Frame::Market(MarketKind::Liquidation(Liquidation {
                side,
                // Average fill price and filled quantity when the order traded, else its limit price and size.
                price: avg.filter(|a| !a.is_zero()).unwrap_or(limit),
                qty: filled.filter(|z| !z.is_zero()).unwrap_or(qty),
            }))
        }
        Kind::ServerShutdown => Frame::ServerShutdown,
    })
}

/// Tells from one frame whether it came from a spot or a USD-M connection, when the frame shows it: a bookTicker
/// with `e` (futures) or without (spot), markPriceUpdate / forceOrder (futures only), a trade with `X` (futures) or
/// `M` (spot). `None` when the frame does not tell (or does not parse).
pub fn sniff_venue(json: &str) -> Option<Venue> {
    let top = parse_top(json).ok()?;
    let (kind, p) = classify(&top).ok()??;
    match kind {
        Kind::BookTicker { has_e: true } | Kind::MarkPrice | Kind::ForceOrder => Some(Venue::Perp),
        Kind::BookTicker { has_e: false } => Some(Venue::Spot),
        Kind::Trade | Kind::AggTrade if p.has_x => Some(Venue::Perp),
        Kind::Trade | Kind::AggTrade if p.has_big_m => Some(Venue::Spot),
        _ => None,
    }
}

fn parse_top(json: &str) -> Result<Top<'_>, WireError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let top = TopSeed.deserialize(&mut de)?;
    de.end()?;
    Ok(top)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    BookTicker { has_e: bool },
    Trade,
    AggTrade,
    MarkPrice,
    ForceOrder,
    ServerShutdown,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::BookTicker { .. } => "bookTicker",
            Kind::Trade => "trade",
            Kind::AggTrade => "aggTrade",
            Kind::MarkPrice => "markPriceUpdate",
            Kind::ForceOrder => "forceOrder",
            Kind::ServerShutdown => "serverShutdown",
        }
    }
}

/// Which message a parsed frame is, and its payload; `None` for frames without a domain event.
fn classify<'t, 'a>(top: &'t Top<'a>) -> Result<Option<(Kind, &'t Payload<'a>)>, WireError> {
    let stream = match top.stream {
        None => None,
        Some(Val::Str(s)) => Some(s),
        Some(v) => {
            return Err(bad(
                "combined stream frame",
                "stream",
                format!("expected a string, got {v}"),
            ))
        }
    };
    let p = match (&top.data, stream) {
        (Data::Object(p), _) => p,
        (Data::Other, _) => return Ok(None),
        (Data::Absent, Some(_)) => return Err(missing("combined stream frame", "data")),
        (Data::Absent, None) => &top.raw,
    };
    let kind = match p.e {
        Some(Val::Str(e)) => match e {
            "bookTicker" => Kind::BookTicker { has_e: true },
            "trade" => Kind::Trade,
            "aggTrade" => Kind::AggTrade,
            "markPriceUpdate" => Kind::MarkPrice,
            "forceOrder" => Kind::ForceOrder,
            "serverShutdown" => Kind::ServerShutdown,
            _ => return Ok(None),
        },
        Some(v) => return Err(bad("frame", "e", format!("expected a string, got {v}"))),
        None => match stream {
            Some(s) => match kind_from_stream(s) {
                Some(k) => k,
                None => return Ok(None),
            },
            None if top.is_response || top.is_snapshot => return Ok(None),
            // Spot bookTicker: the only market message without `e`.
            None if p.has_u || p.b.is_some() || p.a.is_some() => Kind::BookTicker { has_e: false },
            None => return Err(WireError::Unrecognised),
        },
    };
    Ok(Some((kind, p)))
}

fn kind_from_stream(stream: &str) -> Option<Kind> {
    let mut parts = stream.split('@');
    parts.next();
    match parts.next()? {
        "bookTicker" => Some(Kind::BookTicker { has_e: false }),
        "trade" => Some(Kind::Trade),
        "aggTrade" => Some(Kind::AggTrade),
        "markPrice" => Some(Kind::MarkPrice),
        "forceOrder" => Some(Kind::ForceOrder),
        _ => None,
    }
}

/// True for streams whose payload premia never uses (skipped without looking inside).
fn stream_is_ignored(stream: &str) -> bool {
    let mut parts = stream.split('@');
    parts.next();
    matches!(parts.next(), Some(s) if s.starts_with("depth") || s.starts_with("kline"))
}

fn missing(msg: &'static str, field: &'static str) -> WireError {
    WireError::MissingField { msg, field }
}

fn bad(msg: &'static str, field: &'static str, problem: String) -> WireError {
    WireError::BadField {
        msg,
        field,
        problem,
    }
}

fn dec(msg: &'static str, field: &'static str, v: Option<Val<'_>>) -> Result<Decimal, WireError> {
    match v {
        Some(Val::Str(s)) => parse_decimal(s.as_bytes()).ok_or_else(|| {
            bad(
                msg,
                field,
                format!("not a decimal: {:?}", excerpt(s.as_bytes())),
            )
        }),
        Some(other) => Err(bad(
            msg,
            field,
            format!("expected a decimal string, got {other}"),
        )),
        None => Err(missing(msg, field)),
    }
}

fn boolean(msg: &'static str, field: &'static str, v: Option<Val<'_>>) -> Result<bool, WireError> {
    match v {
        Some(Val::Bool(b)) => Ok(b),
        Some(other) => Err(bad(
            msg,
            field,
            format!("expected true or false, got {other}"),
        )),
        None => Err(missing(msg, field)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The borrowed, union-of-fields representation and its visitors.

/// A JSON value as far as premia cares: strings are borrowed from the frame, the rest is only classified.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val<'a> {
    Str(&'a str),
    /// A string with escape sequences (never a number or a Binance enum value).
    EscapedStr,
    Bool(bool),
    Number,
    Null,
    Compound,
}

impl fmt::Display for Val<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Str(s) => write!(f, "{:?}", excerpt(s.as_bytes())),
            Val::EscapedStr => f.write_str("a string with escapes"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Number => f.write_str("a number"),
            Val::Null => f.write_str("null"),
            Val::Compound => f.write_str("an array or object"),
        }
    }
}

impl<'de> de::Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Val::Str(v))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Val::EscapedStr)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Val::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Val::Number)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Val::Number)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Compound)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Compound)
    }
}

/// The keys premia reads; everything else is `Other` (and its value skipped).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    Stream,
    Data,
    Result,
    Id,
    LastUpdateId,
    E,
    U,
    LowerB,
    UpperB,
    LowerA,
    UpperA,
    P,
    Q,
    I,
    R,
    M,
    UpperM,
    UpperX,
    O,
    UpperS,
    Ap,
    Z,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "stream" => Key::Stream,
            "data" => Key::Data,
            "result" => Key::Result,
            "id" => Key::Id,
            "lastUpdateId" => Key::LastUpdateId,
            "e" => Key::E,
            "u" => Key::U,
            "b" => Key::LowerB,
            "B" => Key::UpperB,
            "a" => Key::LowerA,
            "A" => Key::UpperA,
            "p" => Key::P,
            "q" => Key::Q,
            "i" => Key::I,
            "r" => Key::R,
            "m" => Key::M,
            "M" => Key::UpperM,
            "X" => Key::UpperX,
            "o" => Key::O,
            "S" => Key::UpperS,
            "ap" => Key::Ap,
            "z" => Key::Z,
            _ => Key::Other,
        })
    }
}

/// The fields of a market message (the `data` of a combined frame, or a raw frame).
#[derive(Debug, Default, Clone, Copy)]
struct Payload<'a> {
    e: Option<Val<'a>>,
    has_u: bool,
    b: Option<Val<'a>>,
    bq: Option<Val<'a>>,
    a: Option<Val<'a>>,
    aq: Option<Val<'a>>,
    p: Option<Val<'a>>,
    q: Option<Val<'a>>,
    i: Option<Val<'a>>,
    r: Option<Val<'a>>,
    m: Option<Val<'a>>,
    has_big_m: bool,
    has_x: bool,
    o: Option<OrderPart<'a>>,
}

/// The `o` object of a forceOrder message.
#[derive(Debug, Default, Clone, Copy)]
struct OrderPart<'a> {
    side: Option<Val<'a>>,
    q: Option<Val<'a>>,
    p: Option<Val<'a>>,
    avg_price: Option<Val<'a>>,
    filled: Option<Val<'a>>,
}

// Boxing the payload would allocate per frame; the value lives on the stack for one parse.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default, Clone, Copy)]
enum Data<'a> {
    #[default]
    Absent,
    Object(Payload<'a>),
    /// Skipped: an ignored stream, an array stream, or not an object.
    Other,
}

#[derive(Debug, Default, Clone, Copy)]
struct Top<'a> {
    stream: Option<Val<'a>>,
    data: Data<'a>,
    /// `{"result":…,"id":…}`: a response to SUBSCRIBE and friends.
    is_response: bool,
    /// REST depth snapshot (`lastUpdateId`, `bids`, `asks`), as the recorder writes it into captures.
    is_snapshot: bool,
    /// The fields of an unwrapped frame.
    raw: Payload<'a>,
}

/// Reads the value of `key` into `p`; returns false if the key is not a payload field.
fn read_payload_field<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: Key,
    p: &mut Payload<'de>,
) -> Result<bool, A::Error> {
    let slot = match key {
        Key::E => &mut p.e,
        Key::LowerB => &mut p.b,
        Key::UpperB => &mut p.bq,
        Key::LowerA => &mut p.a,
        Key::UpperA => &mut p.aq,
        Key::P => &mut p.p,
        Key::Q => &mut p.q,
        Key::I => &mut p.i,
        Key::R => &mut p.r,
        Key::M => &mut p.m,
        Key::U => {
            p.has_u = true;
            map.next_value::<IgnoredAny>()?;
            return Ok(true);
        }
        Key::UpperM => {
            p.has_big_m = true;
            map.next_value::<IgnoredAny>()?;
            return Ok(true);
        }
        Key::UpperX => {
            p.has_x = true;
            map.next_value::<IgnoredAny>()?;
            return Ok(true);
        }
        Key::O => {
            p.o = map.next_value_seed(OrderSeed)?;
            return Ok(true);
        }
        _ => return Ok(false),
    };
    *slot = Some(map.next_value::<Val<'de>>()?);
    Ok(true)
}

struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        // Array streams (`!markPrice@arr`, `!forceOrder@arr` unwrapped) carry many symbols: not used by premia.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top {
            data: Data::Other,
            ..Top::default()
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Stream => top.stream = Some(map.next_value::<Val<'de>>()?),
                Key::Data => {
                    let skip = matches!(top.stream, Some(Val::Str(s)) if stream_is_ignored(s));
                    top.data = if skip {
                        map.next_value::<IgnoredAny>()?;
                        Data::Other
                    } else {
                        map.next_value_seed(DataSeed)?
                    };
                }
                Key::Result | Key::Id => {
                    top.is_response = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Key::LastUpdateId => {
                    top.is_snapshot = true;
                    map.next_value::<IgnoredAny>()?;
                }
                k => {
                    if !read_payload_field(&mut map, k, &mut top.raw)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        Ok(top)
    }
}

struct DataSeed;

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = Data<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Data<'de>, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stream payload")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data<'de>, A::Error> {
        let mut p = Payload::default();
        while let Some(key) = map.next_key::<Key>()? {
            if !read_payload_field(&mut map, key, &mut p)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Data::Object(p))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Data::Other)
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_unit<E>(self) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
}

struct OrderSeed;

impl<'de> DeserializeSeed<'de> for OrderSeed {
    type Value = Option<OrderPart<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(OrderVisitor)
    }
}

struct OrderVisitor;

impl<'de> Visitor<'de> for OrderVisitor {
    type Value = Option<OrderPart<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a forceOrder order object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut o = OrderPart::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::UpperS => &mut o.side,
                Key::Q => &mut o.q,
                Key::P => &mut o.p,
                Key::Ap => &mut o.avg_price,
                Key::Z => &mut o.filled,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value::<Val<'de>>()?);
        }
        Ok(Some(o))
    }
    // Anything but an object: not a forceOrder payload; the missing `o` is reported by the caller.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn futures_book_ticker_wrapped() {
        let f = parse_frame(
            r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}"#,
            Venue::Perp,
        )
        .unwrap();
        assert_eq!(
            f,
            Frame::Market(MarketKind::Quote(Quote {
                venue: Venue::Perp,
                bid: d("61800.20"),
                ask: d("61800.30"),
                bid_qty: d("2.507"),
                ask_qty: d("2.510"),
            }))
        );
    }

    #[test]
    fn spot_book_ticker_raw_and_missing_field() {
        let f = parse_frame(
            r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
            Venue::Spot,
        )
        .unwrap();
        let Frame::Market(MarketKind::Quote(q)) = f else {
            panic!("not a quote: {f:?}")
        };
        assert_eq!(q.ask, d("25.3652"));
        let e = parse_frame(
            r#"{"u":1,"s":"BTCUSDT","B":"1","a":"2","A":"3"}"#,
            Venue::Spot,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "bookTicker: missing field `b`");
        let e = parse_frame(
            r#"{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"x","B":"1","a":"2","A":"3"}}"#,
            Venue::Spot,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("bookTicker: bad field `b`"),
            "{e}"
        );
    }

    #[test]
    fn trade_sides() {
        let buy = parse_frame(
            r#"{"e":"trade","E":1,"p":"10.5","q":"2","m":false,"X":"MARKET"}"#,
            Venue::Perp,
        )
        .unwrap();
        assert!(matches!(buy, Frame::Market(MarketKind::Trade(t)) if t.taker_side == Side::Buy));
        let sell = parse_frame(
            r#"{"e":"aggTrade","p":"10.5","q":"2","m":true}"#,
            Venue::Spot,
        )
        .unwrap();
        assert!(matches!(sell, Frame::Market(MarketKind::Trade(t)) if t.taker_side == Side::Sell));
        let e = parse_frame(r#"{"e":"trade","p":"10.5","q":"2"}"#, Venue::Spot).unwrap_err();
        assert_eq!(e.to_string(), "trade: missing field `m`");
    }

    #[test]
    fn ignored_and_garbage() {
        for s in [
            r#"{"result":null,"id":1}"#,
            r#"{"lastUpdateId":5,"bids":[["1","2"]],"asks":[]}"#,
            r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","b":[["1","2"]],"a":[]}}"#,
            r#"{"e":"depthUpdate","b":[["1","2"]],"a":[]}"#,
            r#"[{"e":"markPriceUpdate","p":"1","i":"1","r":"0"}]"#,
            r#"{"e":"kline","k":{"o":"1"}}"#,
        ] {
            assert_eq!(parse_frame(s, Venue::Perp).unwrap(), Frame::Ignored, "{s}");
        }
        for s in [
            "",
            "{",
            "nul",
            r#"{"x":1}"#,
            "42",
            r#"{"e":5}"#,
            r#"{"stream":"a@trade"}"#,
        ] {
            assert!(parse_frame(s, Venue::Perp).is_err(), "{s}");
        }
    }

    #[test]
    fn sniffing() {
        assert_eq!(
            sniff_venue(r#"{"u":1,"b":"1","B":"1","a":"1","A":"1"}"#),
            Some(Venue::Spot)
        );
        assert_eq!(
            sniff_venue(r#"{"e":"bookTicker","b":"1","B":"1","a":"1","A":"1"}"#),
            Some(Venue::Perp)
        );
        assert_eq!(
            sniff_venue(r#"{"e":"markPriceUpdate","p":"1"}"#),
            Some(Venue::Perp)
        );
        assert_eq!(
            sniff_venue(r#"{"e":"trade","p":"1","q":"1","m":true,"M":true}"#),
            Some(Venue::Spot)
        );
        assert_eq!(sniff_venue(r#"{"result":null,"id":1}"#), None);
    }
}
