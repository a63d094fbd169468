//! What one websocket subscriber of the local exchange receives for each replayed frame: recorded frames of the
//! streams it named, verbatim; and, for futures streams a recording does not hold under that name, frames derived
//! from it with Binance's payloads — diff depth under any update speed (`<s>@depth`, `@depth@100ms`, …: the recorded
//! depth updates where the recording has them, else the touch as a one-level book), `markPrice` under any update
//! speed (the recorded mark prices), partial depth
//! (`@depth5/10/20`: the touch as a one-level book), `aggTrade` (one per recorded trade) and `kline_<interval>`
//! (aggregated from the recorded trades).

use axum::body::Bytes;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::recording::Frame;

/// One subscriber's streams and the state of those it derives.
pub(crate) struct Subscription {
    wants: Vec<Want>,
    derive: bool,
    recorded_depth: bool,
}

struct Want {
    /// The stream name the client asked for (and sees in combined frames).
    name: String,
    /// `<symbol>@` in lower case.
    prefix: String,
    kind: Kind,
    /// A recorded frame of exactly this name came by: nothing is derived for it any more.
    seen_exact: bool,
}

enum Kind {
    /// Only recorded frames of this name.
    Exact,
    /// Recorded `<s>@<base>` frames at any update speed (`@depth@0ms` for `@depth@100ms`, `@markPrice@1s` for
    /// `@markPrice`), renamed.
    AnySpeed(&'static str),
    /// Diff depth from the touch as a one-level book (the recording has no depth updates).
    Depth {
        prev: Option<Touch>,
        /// `prev` is the book at subscription time, not yet seen on the stream.
        seeded: bool,
    },
    /// Partial depth: the touch as a one-level book.
    Partial,
    AggTrade,
    Kline {
        interval: String,
        ms: i64,
        bar: Option<Bar>,
    },
}

/// The book's top and its update id: where a diff depth stream starts from.
#[derive(Clone, Debug)]
pub(crate) struct Touch {
    pub bid: Decimal,
    pub ask: Decimal,
    pub u: i64,
}

struct Bar {
    open_ms: i64,
    first_id: i64,
    last_id: i64,
    o: Decimal,
    h: Decimal,
    l: Decimal,
    c: Decimal,
    v: Decimal,
    q: Decimal,
    buy_v: Decimal,
    buy_q: Decimal,
    n: u64,
}

impl Subscription {
    /// `derive`: futures subscribers get derived streams; `recorded_depth`: the recording holds depth updates.
    pub(crate) fn new(streams: &[String], derive: bool, recorded_depth: bool) -> Self {
        let mut sub = Subscription {
            wants: Vec::with_capacity(streams.len()),
            derive,
            recorded_depth,
        };
        for name in streams {
            sub.add(name, None);
        }
        sub
    }

    /// Starts sending `name` (a live `SUBSCRIBE`); a stream already sent is left as it is. `top`: the book the
    /// exchange serves now, which a diff depth stream continues from (its first event's `pu` is that `u`, as on
    /// Binance), so a client that fetched the snapshot just before gets an unbroken chain.
    pub(crate) fn add(&mut self, name: &str, top: Option<Touch>) {
        if self.wants.iter().any(|w| w.name == name) {
            return;
        }
        let (symbol, kind) = name.split_once('@').unwrap_or((name, ""));
        let kind = kind.split('@').next().unwrap_or("");
        let kind = match kind {
            _ if !self.derive => Kind::Exact,
            "depth" if self.recorded_depth => Kind::AnySpeed("depth"),
            "depth" => Kind::Depth {
                seeded: top.is_some(),
                prev: top,
            },
            "markPrice" => Kind::AnySpeed("markPrice"),
            "depth5" | "depth10" | "depth20" => Kind::Partial,
            "aggTrade" => Kind::AggTrade,
            k => match k.strip_prefix("kline_").and_then(interval_ms) {
                Some(ms) => Kind::Kline {
                    interval: k["kline_".len()..].to_string(),
                    ms,
                    bar: None,
                },
                None => Kind::Exact,
            },
        };
        self.wants.push(Want {
            name: name.to_string(),
            prefix: format!("{}@", symbol.to_ascii_lowercase()),
            kind,
            seen_exact: false,
        });
    }

    /// Stops sending `name` (a live `UNSUBSCRIBE`).
    pub(crate) fn remove(&mut self, name: &str) {
        self.wants.retain(|w| w.name != name);
    }

    /// Appends to `out` what this subscriber receives for `frame` (combined-stream frames or raw payloads).
    pub(crate) fn on_frame(&mut self, frame: &Frame, combined: bool, out: &mut Vec<Bytes>) {
        let stream = frame.stream();
        let mut parsed: Option<Option<Value>> = None;
        for w in &mut self.wants {
            if stream == w.name {
                w.seen_exact = true;
                out.push(if combined {
                    frame.combined()
                } else {
                    frame.data()
                });
                continue;
            }
            if w.seen_exact || !stream.starts_with(&w.prefix) {
                continue;
            }
            let kind = &stream[w.prefix.len()..];
            let source = match &w.kind {
                Kind::Exact => false,
                Kind::AnySpeed(base) => kind
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('@')),
                Kind::Depth { .. } | Kind::Partial => kind == "bookTicker",
                Kind::AggTrade | Kind::Kline { .. } => kind == "trade",
            };
            if !source {
                continue;
            }
            if let Kind::AnySpeed(_) = w.kind {
                push(out, &w.name, frame.data_str(), combined);
                continue;
            }
            let data = parsed.get_or_insert_with(|| serde_json::from_str(frame.data_str()).ok());
            let Some(data) = data.as_ref() else {
                continue;
            };
            for payload in derive(&mut w.kind, data) {
                push(out, &w.name, &payload.to_string(), combined);
            }
        }
    }
}

fn push(out: &mut Vec<Bytes>, name: &str, payload: &str, combined: bool) {
    let text = if combined {
        format!("{{\"stream\":\"{name}\",\"data\":{payload}}}")
    } else {
        payload.to_string()
    };
    out.push(Bytes::from(text));
}

/// Binance's kline intervals in ms (the month is left out: it has no fixed length).
fn interval_ms(i: &str) -> Option<i64> {
    const MIN: i64 = 60_000;
    Some(match i {
        "1m" => MIN,
        "3m" => 3 * MIN,
        "5m" => 5 * MIN,
        "15m" => 15 * MIN,
        "30m" => 30 * MIN,
        "1h" => 60 * MIN,
        "2h" => 120 * MIN,
        "4h" => 240 * MIN,
        "6h" => 360 * MIN,
        "8h" => 480 * MIN,
        "12h" => 720 * MIN,
        "1d" => 1440 * MIN,
        "3d" => 3 * 1440 * MIN,
        "1w" => 7 * 1440 * MIN,
        _ => return None,
    })
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

fn i(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or(0)
}

fn dec(v: &Value, k: &str) -> Option<Decimal> {
    v[k].as_str()?.parse().ok()
}

/// The payloads a derived stream sends for one source payload (a bookTicker or a trade).
fn derive(kind: &mut Kind, data: &Value) -> Vec<Value> {
    match kind {
        Kind::Partial => vec![touch_book(data, None)],
        Kind::Depth { prev, seeded } => {
            let (Some(bid), Some(ask)) = (dec(data, "b"), dec(data, "a")) else {
                return Vec::new();
            };
            let u = i(data, "u");
            // The book the stream started from, arriving after the subscription: the client has it already.
            let start = std::mem::take(seeded) && prev.as_ref().is_some_and(|p| p.u == u);
            if start {
                return Vec::new();
            }
            let p = prev.replace(Touch { bid, ask, u });
            vec![touch_book(data, p.as_ref())]
        }
        Kind::AggTrade => vec![json!({
            "e": "aggTrade", "E": i(data, "E"), "s": s(data, "s"), "a": i(data, "t"),
            "p": s(data, "p"), "q": s(data, "q"), "f": i(data, "t"), "l": i(data, "t"),
            "T": i(data, "T"), "m": data["m"].as_bool().unwrap_or(false),
        })],
        Kind::Kline { interval, ms, bar } => kline(interval, *ms, bar, data),
        Kind::Exact | Kind::AnySpeed(_) => Vec::new(),
    }
}

/// A `depthUpdate` of the touch as a one-level book; with the previous touch, its levels that moved are removed
/// (quantity 0), so a client keeping a book from these diffs holds the touch only. Numbered with the bookTicker's
/// update id `u`, as the REST `/depth` snapshot's `lastUpdateId` is ([`book_update_id`]): `U` follows the previous
/// event's `u`, so a client syncing from a snapshot finds the event that spans it.
fn touch_book(t: &Value, prev: Option<&Touch>) -> Value {
    let u = i(t, "u");
    let mut bids = vec![json!([s(t, "b"), s(t, "B")])];
    let mut asks = vec![json!([s(t, "a"), s(t, "A")])];
    if let Some(p) = prev {
        if Some(p.bid) != dec(t, "b") {
            bids.push(json!([p.bid.to_string(), "0"]));
        }
        if Some(p.ask) != dec(t, "a") {
            asks.push(json!([p.ask.to_string(), "0"]));
        }
    }
    json!({
        "e": "depthUpdate", "E": i(t, "E"), "T": i(t, "T"), "s": s(t, "s"),
        "U": prev.map_or(u, |p| (p.u + 1).min(u)), "u": u, "pu": prev.map_or(u - 1, |p| p.u),
        "b": bids, "a": asks,
    })
}

/// Adds a trade to the bar of its interval; sends the bar it closes (if any), then the current bar.
fn kline(interval: &str, ms: i64, bar: &mut Option<Bar>, t: &Value) -> Vec<Value> {
    let (Some(p), Some(q)) = (dec(t, "p"), dec(t, "q")) else {
        return Vec::new();
    };
    let (ts, id, symbol) = (i(t, "T"), i(t, "t"), s(t, "s"));
    let open_ms = ts - ts.rem_euclid(ms);
    let mut out = Vec::new();
    if let Some(b) = bar.as_ref().filter(|b| b.open_ms < open_ms) {
        out.push(kline_json(&symbol, interval, ms, b, true, ts));
        *bar = None;
    }
    let b = bar.get_or_insert(Bar {
        open_ms,
        first_id: id,
        last_id: id,
        o: p,
        h: p,
        l: p,
        c: p,
        v: Decimal::ZERO,
        q: Decimal::ZERO,
        buy_v: Decimal::ZERO,
        buy_q: Decimal::ZERO,
        n: 0,
    });
    b.last_id = id;
    b.h = b.h.max(p);
    b.l = b.l.min(p);
    b.c = p;
    b.v += q;
    b.q += p * q;
    // `m`: the buyer is the maker, so a taker sell; otherwise the taker bought.
    if !t["m"].as_bool().unwrap_or(false) {
        b.buy_v += q;
        b.buy_q += p * q;
    }
    b.n += 1;
    out.push(kline_json(&symbol, interval, ms, b, false, ts));
    out
}

fn kline_json(
    symbol: &str,
    interval: &str,
    ms: i64,
    b: &Bar,
    closed: bool,
    event_ms: i64,
) -> Value {
    json!({
        "e": "kline", "E": event_ms, "s": symbol,
        "k": {
            "t": b.open_ms, "T": b.open_ms + ms - 1, "s": symbol, "i": interval,
            "f": b.first_id, "L": b.last_id,
            "o": b.o.to_string(), "c": b.c.to_string(), "h": b.h.to_string(), "l": b.l.to_string(),
            "v": b.v.normalize().to_string(), "n": b.n, "x": closed,
            "q": b.q.normalize().to_string(), "V": b.buy_v.normalize().to_string(),
            "Q": b.buy_q.normalize().to_string(), "B": "0",
        }
    })
}

/// Frames looked at to tell whether a recording holds depth updates (real captures interleave them early).
const DEPTH_SCAN_FRAMES: usize = 4096;

/// True when the first frames of the perp recording include depth updates.
pub(crate) fn recording_has_depth(inputs: &[String]) -> bool {
    let Ok(mut rec) = super::recording::Recording::open(inputs) else {
        return false;
    };
    for _ in 0..DEPTH_SCAN_FRAMES {
        match rec.next_frame() {
            Ok(Some(f))
                if f.venue == crate::model::Venue::Perp && f.stream().contains("@depth") =>
            {
                return true
            }
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
    false
}

/// The order-book update id (`u`) of a perp book frame (`bookTicker` or `depth*`), the numbering of the REST depth
/// snapshot and of the diff depth streams; `None` for other frames and for frames without one.
pub(crate) fn book_update_id(frame: &Frame) -> Option<i64> {
    let kind = frame.stream().split_once('@')?.1;
    if frame.venue != crate::model::Venue::Perp
        || !(kind == "bookTicker" || kind.starts_with("depth"))
    {
        return None;
    }
    // Read in place: this runs for every replayed book frame.
    let data = frame.data_str();
    let at = data.find("\"u\":")? + 4;
    let digits = data[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Venue;

    fn frame(venue: Venue, json: &str) -> Frame {
        Frame::parse(venue, &format!("1723161255088169167 {json}")).expect("a frame")
    }

    #[test]
    fn book_update_ids_of_book_frames_only() {
        let bt = r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT"}}"#;
        let depth = r#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":7,"u":9,"pu":6,"b":[]}}"#;
        let trade = r#"{"stream":"btcusdt@trade","data":{"e":"trade","t":5,"u":3}}"#;
        let no_id = r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","b":"1"}}"#;
        assert_eq!(book_update_id(&frame(Venue::Perp, bt)), Some(5123107839020));
        assert_eq!(book_update_id(&frame(Venue::Perp, depth)), Some(9));
        assert_eq!(book_update_id(&frame(Venue::Perp, trade)), None);
        assert_eq!(book_update_id(&frame(Venue::Perp, no_id)), None);
        assert_eq!(book_update_id(&frame(Venue::Spot, bt)), None);
    }

    #[test]
    fn live_subscriptions_add_and_remove_streams() {
        let bt = frame(
            Venue::Perp,
            r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":10,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1","T":1,"E":1}}"#,
        );
        let mut sub = Subscription::new(&[], true, false);
        let mut out = Vec::new();
        sub.on_frame(&bt, false, &mut out);
        assert!(out.is_empty());
        sub.add("btcusdt@depth", None);
        sub.add("btcusdt@depth", None);
        sub.on_frame(&bt, false, &mut out);
        assert_eq!(out.len(), 1, "one depth diff, not two");
        let d: Value = serde_json::from_slice(&out[0]).unwrap();
        assert_eq!((d["U"].as_i64(), d["u"].as_i64()), (Some(10), Some(10)));
        sub.remove("btcusdt@depth");
        out.clear();
        sub.on_frame(&bt, false, &mut out);
        assert!(out.is_empty());
    }

    fn book(u: i64, bid: &str, ask: &str) -> Frame {
        frame(
            Venue::Perp,
            &format!(
                r#"{{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":{u},"s":"BTCUSDT","b":"{bid}","B":"1","a":"{ask}","A":"1","T":1,"E":1}}}}"#
            ),
        )
    }

    #[test]
    fn a_depth_subscription_continues_from_the_book_served_at_subscription() {
        let mut sub = Subscription::new(&[], true, false);
        let top = Touch {
            bid: Decimal::new(10, 1),
            ask: Decimal::new(20, 1),
            u: 10,
        };
        sub.add("btcusdt@depth", Some(top));
        let mut out = Vec::new();
        // The frame of that book, still on its way to this subscriber: nothing new.
        sub.on_frame(&book(10, "1.0", "2.0"), false, &mut out);
        assert!(out.is_empty());
        sub.on_frame(&book(12, "1.5", "2.0"), false, &mut out);
        let d: Value = serde_json::from_slice(&out[0]).unwrap();
        assert_eq!(
            (d["U"].as_i64(), d["u"].as_i64(), d["pu"].as_i64()),
            (Some(11), Some(12), Some(10))
        );
        assert_eq!(d["b"], json!([["1.5", "1"], ["1.0", "0"]]));
        assert_eq!(d["a"], json!([["2.0", "1"]]));
    }
}
