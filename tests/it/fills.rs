//! One fill model: the same recording and the same orders through the backtest's simulator and through the local
//! exchange (REST orders, fills read from its user-data stream over a real websocket) give the same fills: client
//! order id, time, quantity, price, fee, maker or taker.

use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use premia::binance::sign;
use premia::local_exchange::{LocalExchange, LocalExchangeConfig, RunningExchange};
use premia::market::reader::MarketReader;
use premia::market::{MarketEvent, MarketKind, Quote};
use premia::model::{
    Decimal, OrderRecord, OrderRequest, OrderState, OrderType, OrderUpdate, Side, SymbolFilters,
    Venue,
};
use premia::sim::SimExchange;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// 2024-08-08 23:54:15 UTC in ns.
const T0: i64 = 1_723_161_255_088_000_000;
/// Between two books: long enough that nothing else happens, short of the listen key's hour.
const GAP_NS: i64 = 60_000_000_000;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

/// An order placed right after a step's book.
struct O {
    id: &'static str,
    side: Side,
    qty: &'static str,
    price: Option<&'static str>,
    reduce_only: bool,
}

const fn market(id: &'static str, side: Side, qty: &'static str, reduce_only: bool) -> O {
    O {
        id,
        side,
        qty,
        price: None,
        reduce_only,
    }
}

const fn limit(id: &'static str, side: Side, qty: &'static str, price: &'static str) -> O {
    O {
        id,
        side,
        qty,
        price: Some(price),
        reduce_only: false,
    }
}

/// The script: a perp book per step, then that step's orders.
fn script() -> Vec<((&'static str, &'static str), Vec<O>)> {
    vec![
        (
            ("60000.0", "60000.1"),
            vec![
                market("mkt-buy", Side::Buy, "0.010", false),
                limit("rest-buy", Side::Buy, "0.010", "59990.0"),
                limit("rest-sell", Side::Sell, "0.010", "60010.0"),
                // Marketable: takes the ask, not its own price.
                limit("cross-buy", Side::Buy, "0.010", "60005.0"),
            ],
        ),
        (
            // One tick short of rest-buy.
            ("59990.0", "59990.1"),
            vec![limit("cross-sell", Side::Sell, "0.005", "59985.0")],
        ),
        // rest-buy is reached: maker at its price.
        (("59989.9", "59990.0"), vec![]),
        (
            ("59995.0", "59995.1"),
            // Clipped to the 0.025 held; the rest expires.
            vec![market("close", Side::Sell, "0.030", true)],
        ),
        // rest-sell is reached.
        (("60010.0", "60010.1"), vec![]),
        (("60011.0", "60011.1"), vec![]),
    ]
}

fn book_frame(ts: i64, u: usize, bid: &str, ask: &str) -> String {
    format!(
        "{ts} {{\"stream\":\"btcusdt@bookTicker\",\"data\":{{\"e\":\"bookTicker\",\"u\":{u},\"s\":\"BTCUSDT\",\"b\":\"{bid}\",\"B\":\"2.5\",\"a\":\"{ask}\",\"A\":\"2.5\",\"T\":{ms},\"E\":{ms}}}}}",
        ms = ts / 1_000_000
    )
}

/// One fill as both sides report it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    client_id: String,
    ts_ms: i64,
    qty: Decimal,
    price: Decimal,
    fee: Decimal,
    maker: bool,
}

fn request(o: &O, ts: i64) -> OrderRecord {
    OrderRecord::new(OrderRequest {
        client_id: o.id.into(),
        symbol: "BTCUSDT".into(),
        side: o.side,
        order_type: if o.price.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        },
        qty: d(o.qty),
        price: o.price.map(d),
        reduce_only: o.reduce_only,
        rule: "script".into(),
        decided_ts: ts,
    })
}

fn seen(updates: &mut Vec<OrderUpdate>, maker: bool, out: &mut Vec<Seen>) {
    for u in updates.drain(..) {
        if let Some(f) = u.fill {
            out.push(Seen {
                client_id: f.client_id,
                ts_ms: f.ts / 1_000_000,
                qty: f.qty,
                price: f.price,
                fee: f.fee,
                maker,
            });
        }
    }
}

/// The backtest's side: the recording read by the backtest's reader, each perp book through the simulator, then the
/// step's orders decided on it.
fn through_the_simulator(path: &str, cfg: &LocalExchangeConfig) -> Vec<Seen> {
    let mut reader = MarketReader::open(&[path.to_string()]).expect("backtest reads the recording");
    let placeholder = MarketEvent {
        ts: 0,
        kind: MarketKind::Quote(Quote::EMPTY),
    };
    let mut events = [placeholder; 64];
    let mut prices = [[f64::NAN; 2]; 64];
    let (n, err) = reader.fill(&mut events, &mut prices);
    assert!(err.is_none(), "{err:?}");
    let books: Vec<&MarketEvent> = events[..n]
        .iter()
        .filter(|e| matches!(&e.kind, MarketKind::Quote(q) if q.venue == Venue::Perp))
        .collect();
    let steps = script();
    assert_eq!(books.len(), steps.len());
    let mut sim = SimExchange::new(cfg.filters.clone(), cfg.taker_fee, cfg.maker_fee);
    let (mut updates, mut out) = (Vec::new(), Vec::new());
    for (ev, (_, orders)) in books.into_iter().zip(&steps) {
        sim.on_market(ev, &mut updates);
        seen(&mut updates, true, &mut out);
        for o in orders {
            sim.submit(&request(o, ev.ts), ev.ts, &mut updates);
            let rejected = updates.iter().any(|u| u.state == OrderState::Rejected);
            assert!(!rejected, "{updates:?}");
        }
        seen(&mut updates, false, &mut out);
    }
    out
}

/// Polls `f` until it is true, letting the exchange's tasks run; bounded by a number of scheduler turns, not time.
async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..200_000 {
        if f() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

/// Runs `fut` while letting other tasks run, for a bounded number of scheduler turns.
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::select! {
        v = fut => v,
        _ = until(|| false) => unreachable!(),
    }
}

fn signed_query(ex: &RunningExchange, params: &[(&str, &str)]) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        .to_string();
    let mut q = String::new();
    for (k, v) in params {
        sign::push_param(&mut q, k, v);
    }
    sign::push_param(&mut q, "timestamp", &ts);
    let s = sign::sign(&ex.keys().secret, &q);
    sign::push_param(&mut q, "signature", &s);
    q
}

async fn place(ex: &RunningExchange, http: &reqwest::Client, o: &O) {
    let mut params = vec![
        ("symbol", "BTCUSDT"),
        ("side", o.side.as_str()),
        ("quantity", o.qty),
        ("newClientOrderId", o.id),
        ("newOrderRespType", "RESULT"),
    ];
    match o.price {
        Some(p) => params.extend([("type", "LIMIT"), ("price", p), ("timeInForce", "GTC")]),
        None => params.push(("type", "MARKET")),
    }
    if o.reduce_only {
        params.push(("reduceOnly", "true"));
    }
    let url = format!(
        "{}/fapi/v1/order?{}",
        ex.rest_url(),
        signed_query(ex, &params)
    );
    let resp = bounded(
        http.post(url)
            .header("X-MBX-APIKEY", &ex.keys().api_key)
            .send(),
    )
    .await
    .expect("order response");
    let status = resp.status();
    let body: Value = bounded(resp.json()).await.expect("json");
    assert!(status.is_success(), "{} {body}", o.id);
}

fn trade_of(text: &str) -> Option<Seen> {
    let v: Value = serde_json::from_str(text).ok()?;
    let o = &v["o"];
    if v["e"] != "ORDER_TRADE_UPDATE" || o["x"] != "TRADE" {
        return None;
    }
    let dec = |k: &str| d(o[k].as_str().expect("decimal string"));
    Some(Seen {
        client_id: o["c"].as_str()?.to_string(),
        ts_ms: o["T"].as_i64()?,
        qty: dec("l"),
        price: dec("L"),
        fee: dec("n"),
        maker: o["m"].as_bool()?,
    })
}

/// The local exchange's side: the same recording replayed one book at a time on the paused tokio clock (a blocking
/// task in flight keeps tokio from advancing it by itself), the step's orders sent over REST after each book.
async fn through_the_local_exchange(ex: &RunningExchange, want: usize) -> Vec<Seen> {
    let (hold, held) = std::sync::mpsc::channel::<()>();
    let inhibitor = tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    });
    let http = reqwest::Client::new();
    let key_url = format!("{}/fapi/v1/listenKey", ex.rest_url());
    let resp = bounded(
        http.post(key_url)
            .header("X-MBX-APIKEY", &ex.keys().api_key)
            .send(),
    )
    .await
    .expect("listen key");
    let body: Value = bounded(resp.json()).await.expect("json");
    let key = body["listenKey"].as_str().expect("listenKey").to_string();
    let (mut user, _) = bounded(tokio_tungstenite::connect_async(format!(
        "{}/private/ws/{key}",
        ex.user_ws_url()
    )))
    .await
    .expect("user stream");
    ex.start_replay();
    for (i, (_, orders)) in script().iter().enumerate() {
        if i > 0 {
            tokio::time::advance(Duration::from_nanos(GAP_NS as u64)).await;
        }
        until(|| ex.replay_status().frames_sent > i as u64).await;
        for o in orders {
            place(ex, &http, o).await;
        }
    }
    let mut out = Vec::new();
    while out.len() < want {
        let msg = bounded(user.next())
            .await
            .expect("stream open")
            .expect("frame");
        if let Message::Text(t) = msg {
            out.extend(trade_of(&t));
        }
    }
    drop(hold);
    inhibitor.await.expect("inhibitor ends");
    out
}

#[tokio::test(start_paused = true)]
async fn backtest_and_local_exchange_fill_the_same_recording_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("usdm_btcusdt_fills.txt");
    let lines: Vec<String> = script()
        .iter()
        .enumerate()
        .map(|(i, ((bid, ask), _))| book_frame(T0 + i as i64 * GAP_NS, i + 1, bid, ask))
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write recording");
    let path = path.to_string_lossy().into_owned();
    let cfg = LocalExchangeConfig {
        data: vec![path.clone()],
        speed: 1.0,
        min_subscribers: 100,
        filters: SymbolFilters::default(),
        ..LocalExchangeConfig::default()
    };

    let sim = through_the_simulator(&path, &cfg);
    let ex = LocalExchange::start(cfg)
        .await
        .expect("local exchange starts");
    let exchange = through_the_local_exchange(&ex, sim.len()).await;
    ex.shutdown().await;

    assert_eq!(sim, exchange);
    // And the fills are the documented ones.
    let ids: Vec<(&str, bool)> = sim
        .iter()
        .map(|s| (s.client_id.as_str(), s.maker))
        .collect();
    assert_eq!(
        ids,
        [
            ("mkt-buy", false),
            ("cross-buy", false),
            ("cross-sell", false),
            ("rest-buy", true),
            ("close", false),
            ("rest-sell", true),
        ]
    );
    assert_eq!(
        sim[1].price,
        d("60000.1"),
        "a marketable limit takes the ask"
    );
    assert_eq!(
        sim[2].price,
        d("59990.0"),
        "a marketable limit sell takes the bid"
    );
    assert_eq!(sim[3].price, d("59990.0"));
    assert_eq!(
        sim[3].fee,
        (d("0.010") * d("59990.0") * cfg_maker()).round_dp(8)
    );
    assert_eq!(
        sim[4].qty,
        d("0.025"),
        "reduce-only clipped to the position"
    );
    assert_eq!(sim[5].price, d("60010.0"));
}

fn cfg_maker() -> Decimal {
    LocalExchangeConfig::default().maker_fee
}
