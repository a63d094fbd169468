//! Integration tests: the local exchange over real HTTP and websockets on 127.0.0.1:0 (reqwest and
//! tokio-tungstenite clients, and premia's own Binance REST client), fed by a small recording written in the test.

use std::time::Duration;

use futures_util::StreamExt;
use premia::binance::rest::{PositionMode, RestClient, RestConfig};
use premia::binance::sign;
use premia::binance::user_stream::{spawn_user_stream, UserStreamConfig};
use premia::binance::user_wire::{UserEvent, STREAM_CONNECTED};
use premia::binance::Credentials;
use premia::local_exchange::{
    Fault, LocalExchange, LocalExchangeConfig, ReplayPhase, RunningExchange,
};
use premia::model::Decimal;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{self, fixture, now_ms};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// 2024-08-08 23:54:15 UTC in ns, the start of the recording below.
const T0: i64 = 1_723_161_255_088_169_167;
const HOUR_NS: i64 = 3_600_000_000_000;

fn perp_book(ts: i64, u: u64, bid: &str, ask: &str) -> String {
    format!(
        "{ts} {{\"stream\":\"btcusdt@bookTicker\",\"data\":{{\"e\":\"bookTicker\",\"u\":{u},\"s\":\"BTCUSDT\",\"b\":\"{bid}\",\"B\":\"2.507\",\"a\":\"{ask}\",\"A\":\"2.510\",\"T\":{ms},\"E\":{ms}}}}}",
        ms = ts / 1_000_000
    )
}

fn perp_mark(ts: i64, mark: &str) -> String {
    format!(
        "{ts} {{\"stream\":\"btcusdt@markPrice@1s\",\"data\":{{\"e\":\"markPriceUpdate\",\"E\":{ms},\"s\":\"BTCUSDT\",\"p\":\"{mark}\",\"P\":\"60010.00\",\"i\":\"60020.00000000\",\"r\":\"0.00010000\",\"T\":{ms}}}}}",
        ms = ts / 1_000_000
    )
}

fn spot_book(ts: i64, bid: &str, ask: &str) -> String {
    format!(
        "{ts} {{\"stream\":\"btcusdt@bookTicker\",\"data\":{{\"u\":50093239212,\"s\":\"BTCUSDT\",\"b\":\"{bid}\",\"B\":\"3.78826000\",\"a\":\"{ask}\",\"A\":\"1.54698000\"}}}}"
    )
}

/// A recording in two phases: a book at T0, then (an hour later) a book 100 USDT higher.
struct Recording {
    _dir: tempfile::TempDir,
    perp_path: String,
    spot_path: String,
    perp_lines: Vec<String>,
    spot_lines: Vec<String>,
}

fn recording() -> Recording {
    let dir = tempfile::tempdir().expect("tempdir");
    let perp_lines = vec![
        perp_book(T0, 1, "60000.00", "60000.10"),
        perp_mark(T0 + 1_000_000, "60000.05000000"),
        // Not a combined frame (a REST depth snapshot, as in the real captures): skipped.
        format!(
            "{} {{\"lastUpdateId\":1,\"bids\":[],\"asks\":[]}}",
            T0 + 2_000_000
        ),
        perp_book(T0 + HOUR_NS, 2, "60100.00", "60100.10"),
        perp_mark(T0 + HOUR_NS + 1_000_000, "60100.05000000"),
    ];
    let spot_lines = vec![
        spot_book(T0 + 500_000, "60050.00000000", "60050.01000000"),
        spot_book(T0 + HOUR_NS + 500_000, "60150.00000000", "60150.01000000"),
    ];
    let perp_path = dir.path().join("usdm_btcusdt_test.txt");
    let spot_path = dir.path().join("spot_btcusdt_test.txt");
    std::fs::write(&perp_path, perp_lines.join("\n") + "\n").expect("write perp");
    std::fs::write(&spot_path, spot_lines.join("\n") + "\n").expect("write spot");
    Recording {
        _dir: dir,
        perp_path: perp_path.to_string_lossy().into_owned(),
        spot_path: spot_path.to_string_lossy().into_owned(),
        perp_lines,
        spot_lines,
    }
}

fn json_part(line: &str) -> &str {
    line.split_once(' ').map(|(_, j)| j).unwrap_or("")
}

async fn start(rec: &Recording, min_subscribers: usize, speed: f64) -> RunningExchange {
    support::start(config(rec, min_subscribers, speed)).await
}

/// [`start`] serving the pre-2026 paths (book and mark on one unrouted connection, user data on `/ws/<key>`).
async fn start_legacy(rec: &Recording, min_subscribers: usize, speed: f64) -> RunningExchange {
    support::start(LocalExchangeConfig {
        legacy_routing: true,
        ..config(rec, min_subscribers, speed)
    })
    .await
}

fn config(rec: &Recording, min_subscribers: usize, speed: f64) -> LocalExchangeConfig {
    LocalExchangeConfig {
        data: vec![rec.perp_path.clone(), rec.spot_path.clone()],
        speed,
        min_subscribers,
        ..LocalExchangeConfig::default()
    }
}

/// A raw signed request: params + recvWindow + timestamp, signed with `secret`, sent with `key`.
struct Signed<'a> {
    ex: &'a RunningExchange,
    http: reqwest::Client,
}

impl<'a> Signed<'a> {
    fn new(ex: &'a RunningExchange) -> Self {
        Signed {
            ex,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    fn query(params: &[(&str, &str)], ts: i64, secret: &str) -> String {
        let mut q = String::new();
        for (k, v) in params {
            sign::push_param(&mut q, k, v);
        }
        sign::push_param(&mut q, "recvWindow", "5000");
        sign::push_param(&mut q, "timestamp", &ts.to_string());
        let s = sign::sign(secret, &q);
        sign::push_param(&mut q, "signature", &s);
        q
    }

    async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        query: String,
        key: &str,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let url = format!("{}{}?{}", self.ex.rest_url(), path, query);
        let resp = self
            .http
            .request(method, url)
            .header("X-MBX-APIKEY", key)
            .send()
            .await
            .expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body: Value = resp.json().await.expect("json body");
        (status, body, headers)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        let keys = self.ex.keys();
        let q = Self::query(params, now_ms(), &keys.secret);
        let (s, b, _) = self.send_as(method, path, q, &keys.api_key).await;
        (s, b)
    }

    async fn post(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, params).await
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, params).await
    }

    async fn listen_key(&self) -> String {
        let resp = self
            .http
            .post(format!("{}/fapi/v1/listenKey", self.ex.rest_url()))
            .header("X-MBX-APIKEY", &self.ex.keys().api_key)
            .send()
            .await
            .expect("listenKey response");
        let body: Value = resp.json().await.expect("listenKey json");
        body["listenKey"].as_str().expect("listenKey").to_string()
    }
}

fn code(body: &Value) -> i64 {
    body["code"].as_i64().unwrap_or(0)
}

async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

/// The next text frame (None when the server closed the stream).
async fn next_text(ws: &mut Ws) -> Option<String> {
    next_text_within(ws, Duration::from_secs(10)).await
}

async fn next_text_within(ws: &mut Ws, limit: Duration) -> Option<String> {
    loop {
        let msg = tokio::time::timeout(limit, ws.next())
            .await
            .expect("a frame in time")?;
        match msg.ok()? {
            Message::Text(t) => return Some(t.to_string()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    let t = next_text(ws).await.expect("a frame");
    serde_json::from_str(&t).expect("frame is JSON")
}

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
}

const MARKET_BUY: [(&str, &str); 5] = [
    ("symbol", "BTCUSDT"),
    ("side", "BUY"),
    ("type", "MARKET"),
    ("quantity", "0.010"),
    ("newOrderRespType", "RESULT"),
];

#[tokio::test]
async fn auth_rejections_use_binance_codes_and_messages() {
    let rec = recording();
    let ex = start(&rec, 1, 1.0).await;
    let c = Signed::new(&ex);
    let keys = ex.keys().clone();
    let params = [("symbol", "BTCUSDT")];

    // Bad signature: signed with another secret.
    let q = Signed::query(&params, now_ms(), "not-the-secret");
    let (status, body, headers) = c
        .send_as(
            reqwest::Method::GET,
            "/fapi/v2/positionRisk",
            q,
            &keys.api_key,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), -1022);
    assert_eq!(body["msg"], "Signature for this request is not valid.");
    assert!(headers.contains_key("x-mbx-used-weight-1m"));

    // Stale timestamp (correctly signed).
    let q = Signed::query(&params, now_ms() - 60_000, &keys.secret);
    let (_, body, _) = c
        .send_as(
            reqwest::Method::GET,
            "/fapi/v2/positionRisk",
            q,
            &keys.api_key,
        )
        .await;
    assert_eq!(code(&body), -1021);
    assert_eq!(
        body["msg"],
        "Timestamp for this request is outside of the recvWindow."
    );
    // More than 1 s in the future.
    let q = Signed::query(&params, now_ms() + 5_000, &keys.secret);
    let (_, body, _) = c
        .send_as(
            reqwest::Method::GET,
            "/fapi/v2/positionRisk",
            q,
            &keys.api_key,
        )
        .await;
    assert_eq!(code(&body), -1021);

    // Unknown API key.
    let q = Signed::query(&params, now_ms(), &keys.secret);
    let (_, body, _) = c
        .send_as(
            reqwest::Method::GET,
            "/fapi/v2/positionRisk",
            q,
            "someone-else",
        )
        .await;
    assert_eq!(code(&body), -2015);
    assert_eq!(
        body["msg"],
        "Invalid API-key, IP, or permissions for action."
    );

    // Missing mandatory parameter.
    let (_, body) = c
        .post(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET")],
        )
        .await;
    assert_eq!(code(&body), -1102);
    assert_eq!(
        body["msg"],
        "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."
    );

    // Unknown order.
    let (_, body) = c
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "nope")],
        )
        .await;
    assert_eq!(code(&body), -2013);
    assert_eq!(body["msg"], "Order does not exist.");

    // Public endpoints need no key.
    let t: Value = reqwest::get(format!("{}/fapi/v1/time", ex.rest_url()))
        .await
        .expect("time")
        .json()
        .await
        .expect("time json");
    assert!((t["serverTime"].as_i64().unwrap_or(0) - now_ms()).abs() < 60_000);
    ex.shutdown().await;
}

#[tokio::test]
async fn order_filters_margin_and_duplicates_are_rejected() {
    let rec = recording();
    // The first phase is replayed once the stream below connects; the second is an hour later (never reached).
    let ex = start(&rec, 1, 1.0).await;
    let c = Signed::new(&ex);
    // Wait for the first book via a stream, so market orders have a touch.
    let mut perp = connect(&format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url())).await;
    let first = next_text(&mut perp).await;
    assert!(first.is_some());

    let order = |qty: &'static str| {
        vec![
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", qty),
        ]
    };
    let (_, b) = c.post("/fapi/v1/order", &order("0.0101")).await;
    assert_eq!(code(&b), -1111, "{b}");
    assert_eq!(
        b["msg"],
        "Precision is over the maximum defined for this asset."
    );
    let (_, b) = c.post("/fapi/v1/order", &order("0.001")).await;
    assert_eq!(code(&b), -4164, "{b}");
    assert_eq!(
        b["msg"],
        "Order's notional must be no smaller than 100 (unless you choose reduce only)"
    );
    // 10,000 USDT at 20x: 4 BTC (240,000 USDT notional) does not fit.
    let (_, b) = c.post("/fapi/v1/order", &order("4.000")).await;
    assert_eq!(code(&b), -2019, "{b}");
    assert_eq!(b["msg"], "Margin is insufficient.");
    let (_, b) = c
        .post(
            "/fapi/v1/order",
            &[
                ("symbol", "BTCUSDT"),
                ("side", "SELL"),
                ("type", "MARKET"),
                ("quantity", "0.010"),
                ("reduceOnly", "true"),
            ],
        )
        .await;
    assert_eq!(code(&b), -2022, "{b}");
    assert_eq!(b["msg"], "ReduceOnly Order is rejected.");
    let (_, b) = c
        .post(
            "/fapi/v1/order",
            &[
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("type", "LIMIT"),
                ("timeInForce", "GTC"),
                ("quantity", "0.010"),
                ("price", "59000.05"),
            ],
        )
        .await;
    assert_eq!(code(&b), -1111, "{b}");

    // Duplicate client order id.
    let mut p = order("0.002");
    p.push(("newClientOrderId", "dup-1"));
    let (s, b) = c.post("/fapi/v1/order", &p).await;
    assert_eq!(s, 200, "{b}");
    // ACK by default: acknowledged as NEW.
    assert_eq!(b["status"], "NEW");
    assert_eq!(b["clientOrderId"], "dup-1");
    let (_, b) = c.post("/fapi/v1/order", &p).await;
    assert_eq!(code(&b), -4116, "{b}");
    assert_eq!(b["msg"], "clientOrderId is duplicated");
    // The first one is there, filled.
    let (_, b) = c
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "dup-1")],
        )
        .await;
    assert_eq!(b["status"], "FILLED", "{b}");
    ex.shutdown().await;
}

#[tokio::test]
async fn market_order_fills_at_replayed_touch_and_reduce_only_close_realises_pnl() {
    let rec = recording();
    let ex = start_legacy(&rec, 1, 1.0).await;
    assert_eq!(ex.replay_status().phase, ReplayPhase::Waiting);
    let c = Signed::new(&ex);

    // User stream first, then the market stream (which starts the replay).
    let key = c.listen_key().await;
    let mut user = connect(&format!("{}/ws/{key}", ex.user_ws_url())).await;
    let mut perp = connect(&format!(
        "{}/stream?streams=btcusdt@bookTicker/btcusdt@markPrice@1s",
        ex.futures_ws_url()
    ))
    .await;
    // Phase one, verbatim and in order.
    assert_eq!(
        next_text(&mut perp).await.as_deref(),
        Some(json_part(&rec.perp_lines[0]))
    );
    assert_eq!(
        next_text(&mut perp).await.as_deref(),
        Some(json_part(&rec.perp_lines[1]))
    );
    assert_eq!(ex.replay_status().phase, ReplayPhase::Running);
    assert_eq!(ex.virtual_time(), T0 + 1_000_000);

    let (s, b) = c.post("/fapi/v1/order", &MARKET_BUY).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "FILLED");
    assert_eq!(dec(&b["avgPrice"]), "60000.10".parse().unwrap());
    assert_eq!(dec(&b["executedQty"]), "0.010".parse().unwrap());
    // Virtual clock: the recording time of the current book.
    assert_eq!(b["updateTime"].as_i64(), Some((T0 + 1_000_000) / 1_000_000));

    let (_, risk) = c
        .get("/fapi/v2/positionRisk", &[("symbol", "BTCUSDT")])
        .await;
    assert_eq!(
        dec(&risk[0]["positionAmt"]),
        "0.010".parse().unwrap(),
        "{risk}"
    );
    assert_eq!(dec(&risk[0]["entryPrice"]), "60000.10".parse().unwrap());
    assert_eq!(dec(&risk[0]["markPrice"]), "60000.05".parse().unwrap());
    assert_eq!(
        dec(&risk[0]["unRealizedProfit"]),
        "-0.0005".parse().unwrap()
    );
    assert_eq!(risk[0]["positionSide"], "BOTH");
    let (_, v3) = c.get("/fapi/v3/positionRisk", &[]).await;
    assert_eq!(dec(&v3[0]["positionAmt"]), "0.010".parse().unwrap(), "{v3}");

    // User stream: NEW, TRADE, ACCOUNT_UPDATE.
    let e = next_json(&mut user).await;
    assert_eq!(e["e"], "ORDER_TRADE_UPDATE");
    assert_eq!(e["o"]["x"], "NEW");
    let e = next_json(&mut user).await;
    assert_eq!(e["o"]["x"], "TRADE");
    assert_eq!(e["o"]["X"], "FILLED");
    assert_eq!(dec(&e["o"]["L"]), "60000.10".parse().unwrap());
    assert_eq!(dec(&e["o"]["n"]), "0.3000005".parse().unwrap());
    assert_eq!(e["o"]["m"], false);
    assert_eq!(e["E"].as_i64(), Some((T0 + 1_000_000) / 1_000_000));
    let e = next_json(&mut user).await;
    assert_eq!(e["e"], "ACCOUNT_UPDATE");
    assert_eq!(dec(&e["a"]["P"][0]["pa"]), "0.010".parse().unwrap());
    assert_eq!(dec(&e["a"]["B"][0]["wb"]), "9999.6999995".parse().unwrap());

    // Rush through the hour-long gap: phase two arrives, 100 USDT higher.
    ex.set_speed(0.0);
    assert_eq!(
        next_text(&mut perp).await.as_deref(),
        Some(json_part(&rec.perp_lines[3]))
    );
    assert_eq!(
        next_text(&mut perp).await.as_deref(),
        Some(json_part(&rec.perp_lines[4]))
    );
    ex.replay_finished().await;
    assert_eq!(ex.replay_status().phase, ReplayPhase::Finished);

    let (s, b) = c
        .post(
            "/fapi/v1/order",
            &[
                ("symbol", "BTCUSDT"),
                ("side", "SELL"),
                ("type", "MARKET"),
                ("quantity", "0.010"),
                ("reduceOnly", "true"),
                ("newClientOrderId", "close-1"),
                ("newOrderRespType", "RESULT"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(dec(&b["avgPrice"]), "60100.00".parse().unwrap());
    let _new = next_json(&mut user).await;
    let trade = next_json(&mut user).await;
    // (60100.00 - 60000.10) * 0.010
    assert_eq!(dec(&trade["o"]["rp"]), "0.999".parse().unwrap(), "{trade}");
    assert_eq!(trade["o"]["R"], true);
    let acct = next_json(&mut user).await;
    assert_eq!(dec(&acct["a"]["P"][0]["pa"]), Decimal::ZERO);

    let (_, risk) = c.get("/fapi/v2/positionRisk", &[]).await;
    assert_eq!(dec(&risk[0]["positionAmt"]), Decimal::ZERO, "{risk}");
    let (_, bal) = c.get("/fapi/v2/balance", &[]).await;
    let fees: Decimal =
        "0.3000005".parse::<Decimal>().unwrap() + "0.3005".parse::<Decimal>().unwrap();
    let expect = Decimal::from(10_000) + "0.999".parse::<Decimal>().unwrap() - fees;
    assert_eq!(dec(&bal[0]["balance"]), expect, "{bal}");
    let snap = ex.snapshot();
    assert_eq!(snap.balance.wallet, expect);
    assert_eq!(snap.open_orders, 0);
    ex.shutdown().await;
}

#[tokio::test]
async fn streams_are_split_by_market_and_raw_streams_carry_the_payload() {
    let rec = recording();
    // Two subscribers (spot + perp) must be connected before anything is sent.
    let ex = start(&rec, 2, 0.0).await;
    let mut spot = connect(&format!(
        "{}/stream?streams=btcusdt@bookTicker",
        ex.spot_ws_url()
    ))
    .await;
    assert_eq!(ex.replay_status().phase, ReplayPhase::Waiting);
    let mut perp_raw = connect(&format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url())).await;
    for line in &rec.spot_lines {
        assert_eq!(next_text(&mut spot).await.as_deref(), Some(json_part(line)));
    }
    for i in [0, 3] {
        let want: Value = serde_json::from_str(json_part(&rec.perp_lines[i])).unwrap();
        let got: Value = serde_json::from_str(&next_text(&mut perp_raw).await.unwrap()).unwrap();
        assert_eq!(got, want["data"]);
    }
    ex.replay_finished().await;
    // Frames counted: 4 perp (the snapshot line is skipped) + 2 spot.
    assert_eq!(ex.replay_status().frames_sent, 6);
    ex.shutdown().await;
}

#[tokio::test]
async fn faults_lost_response_5xx_dropped_streams_and_expired_listen_key() {
    let rec = recording();
    let ex = start(&rec, 1, 1.0).await;
    let c = Signed::new(&ex);
    let mut perp = connect(&format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url())).await;
    assert!(next_text(&mut perp).await.is_some());

    // Lost response: the order is placed, the client times out.
    ex.inject(Fault::DropNextOrderResponse);
    let mut p = MARKET_BUY.to_vec();
    p.push(("newClientOrderId", "lost-1"));
    let q = Signed::query(&p, now_ms(), &ex.keys().secret);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = impatient
        .post(format!("{}/fapi/v1/order?{q}", ex.rest_url()))
        .header("X-MBX-APIKEY", &ex.keys().api_key)
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    let (_, b) = c
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "lost-1")],
        )
        .await;
    assert_eq!(b["status"], "FILLED", "{b}");
    // Retrying with the same id does not duplicate it.
    let (_, b) = c.post("/fapi/v1/order", &p).await;
    assert_eq!(code(&b), -4116);

    // 5xx: placed, but answered 503.
    ex.inject(Fault::Http5xxNextOrder);
    let mut p = MARKET_BUY.to_vec();
    p.push(("newClientOrderId", "5xx-1"));
    let (s, _) = c.post("/fapi/v1/order", &p).await;
    assert_eq!(s, 503);
    let (_, b) = c
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "5xx-1")],
        )
        .await;
    assert_eq!(b["status"], "FILLED", "{b}");
    // 5xx, not placed.
    ex.inject(Fault::Http5xxNextOrderNotPlaced);
    let mut p = MARKET_BUY.to_vec();
    p.push(("newClientOrderId", "5xx-2"));
    let (s, _) = c.post("/fapi/v1/order", &p).await;
    assert_eq!(s, 503);
    let (_, b) = c
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "5xx-2")],
        )
        .await;
    assert_eq!(code(&b), -2013);
    let (_, risk) = c.get("/fapi/v2/positionRisk", &[]).await;
    assert_eq!(dec(&risk[0]["positionAmt"]), "0.020".parse().unwrap());

    // Dropped market streams: closed once; a reconnect works.
    ex.inject(Fault::DropMarketStreams);
    assert_eq!(next_text(&mut perp).await, None);
    let mut again = connect(&format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url())).await;
    ex.set_speed(0.0);
    assert!(next_text(&mut again).await.is_some());

    // Expired listen key: listenKeyExpired, stream closed, keep-alive refused.
    let key = c.listen_key().await;
    let mut user = connect(&format!("{}/private/ws/{key}", ex.user_ws_url())).await;
    ex.inject(Fault::ExpireListenKey);
    let e = next_json(&mut user).await;
    assert_eq!(e["e"], "listenKeyExpired");
    assert_eq!(e["listenKey"], key.as_str());
    assert_eq!(next_text(&mut user).await, None);
    let resp = reqwest::Client::new()
        .put(format!("{}/fapi/v1/listenKey", ex.rest_url()))
        .header("X-MBX-APIKEY", &ex.keys().api_key)
        .send()
        .await
        .unwrap();
    let b: Value = resp.json().await.unwrap();
    assert_eq!(code(&b), -1125);
    // An unknown key cannot open a user stream.
    assert!(
        tokio_tungstenite::connect_async(format!("{}/private/ws/{key}", ex.user_ws_url()))
            .await
            .is_err()
    );
    ex.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn listen_key_expires_after_an_hour_without_keep_alive() {
    let rec = recording();
    let ex = start(&rec, 1, 1.0).await;
    let c = Signed::new(&ex);
    let key = c.listen_key().await;
    let mut user = connect(&format!("{}/private/ws/{key}", ex.user_ws_url())).await;
    // Paused clock: the hour passes as soon as everything is idle.
    let text = next_text_within(&mut user, Duration::from_secs(2 * 3600)).await;
    let e: Value = serde_json::from_str(&text.expect("listenKeyExpired")).unwrap();
    assert_eq!(e["e"], "listenKeyExpired");
    // A new POST issues a new key.
    let key2 = c.listen_key().await;
    assert_ne!(key, key2);
    ex.shutdown().await;
}

#[tokio::test]
async fn premia_rest_client_speaks_to_it() {
    let rec = recording();
    let ex = start(&rec, 1, 1.0).await;
    let mut perp = connect(&format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url())).await;
    assert!(next_text(&mut perp).await.is_some());
    let keys = ex.keys().clone();
    let client = RestClient::new(
        RestConfig::new(ex.rest_url()),
        Credentials::new(keys.api_key.clone(), keys.secret.clone()),
    )
    .expect("client");
    client.sync_time().await.expect("time");
    let filters = client.exchange_info("BTCUSDT").await.expect("exchangeInfo");
    assert_eq!(filters, premia::model::SymbolFilters::default());
    assert_eq!(
        client.position_mode().await.expect("dual"),
        PositionMode::OneWay
    );
    assert_eq!(
        client.set_leverage("BTCUSDT", 5).await.expect("leverage"),
        5
    );
    let req = premia::model::OrderRequest {
        client_id: "premia-1".into(),
        symbol: "BTCUSDT".into(),
        side: premia::model::Side::Sell,
        order_type: premia::model::OrderType::Market,
        qty: "0.010".parse().unwrap(),
        price: None,
        reduce_only: false,
        rule: "test".into(),
        decided_ts: 0,
    };
    // premia's user-data stream task, on this exchange's listen keys.
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = spawn_user_stream(
        client.clone(),
        UserStreamConfig::new(ex.user_ws_url()),
        tx,
        cancel.clone(),
    );
    let first = rx.recv().await.expect("user stream event");
    assert_eq!(first, UserEvent::Other(STREAM_CONNECTED));

    let upd = client.place_order(&req).await.expect("order");
    assert_eq!(upd.state, premia::model::OrderState::Filled);
    assert_eq!(upd.avg_price, Some("60000.00".parse().unwrap()));
    let q = client
        .query_order("BTCUSDT", "premia-1")
        .await
        .expect("query");
    assert_eq!(q.exchange_id, upd.exchange_id);
    let positions = client
        .position_risk(Some("BTCUSDT"))
        .await
        .expect("positions");
    assert_eq!(positions[0].qty, "-0.010".parse().unwrap());
    let balances = client.balances().await.expect("balances");
    assert_eq!(balances[0].asset, "USDT");
    let mut fills = Vec::new();
    let mut accounts = Vec::new();
    while accounts.is_empty() {
        match rx.recv().await.expect("user stream event") {
            UserEvent::Order(u) => fills.extend(u.fill),
            UserEvent::Account { positions, .. } => accounts.push(positions),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].client_id, "premia-1");
    assert_eq!(fills[0].price, "60000.00".parse().unwrap());
    assert_eq!(accounts[0][0].qty, "-0.010".parse().unwrap());
    cancel.cancel();
    let _ = task.await;

    let key = client.create_listen_key().await.expect("listen key");
    client.keepalive_listen_key().await.expect("keep alive");
    assert!(!key.is_empty());
    let u = client.usage();
    assert!(u.used_weight_1m.is_some());
    ex.shutdown().await;
}

#[tokio::test]
async fn bad_recording_path_fails_start() {
    let err = LocalExchange::start(LocalExchangeConfig {
        data: vec!["/nonexistent/recording.gz".into()],
        ..LocalExchangeConfig::default()
    })
    .await;
    let Err(e) = err else {
        panic!("start must fail");
    };
    assert!(e.to_string().contains("/nonexistent/recording.gz"), "{e}");
}

/// JSON of the fixture's frames of the given streams, in file order.
fn fixture_frames(name: &str, streams: &[&str]) -> Vec<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(fixture(name)).expect("fixture");
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    lines
        .map(|l| l.expect("fixture line"))
        .filter_map(|l| l.split_once(' ').map(|(_, j)| j.to_string()))
        .filter(|j| {
            streams
                .iter()
                .any(|s| j.starts_with(&format!("{{\"stream\":\"{s}\",")))
        })
        .collect()
}

#[tokio::test]
async fn real_recording_is_replayed_verbatim_in_order_and_orders_fill_at_its_last_touch() {
    let perp_file = "usdm_btcusdt_20240808_head2000.gz";
    let spot_file = "spot_btcusdt_20240808_head2000.gz";
    let ex = LocalExchange::start(LocalExchangeConfig {
        data: vec![fixture(perp_file), fixture(spot_file)],
        speed: 0.0,
        min_subscribers: 2,
        // Book and trades on one connection, as before the 2026 routing.
        legacy_routing: true,
        ..LocalExchangeConfig::default()
    })
    .await
    .expect("starts");
    let perp_streams = ["btcusdt@bookTicker", "btcusdt@trade"];
    let mut perp = connect(&format!(
        "{}/stream?streams={}",
        ex.futures_ws_url(),
        perp_streams.join("/")
    ))
    .await;
    let mut spot = connect(&format!(
        "{}/stream?streams=btcusdt@bookTicker",
        ex.spot_ws_url()
    ))
    .await;
    let want_perp = fixture_frames(perp_file, &perp_streams);
    let want_spot = fixture_frames(spot_file, &["btcusdt@bookTicker"]);
    assert!(want_perp.len() > 1_000 && want_spot.len() > 1_000);
    for (i, want) in want_perp.iter().enumerate() {
        let got = next_text(&mut perp).await;
        assert_eq!(got.as_deref(), Some(want.as_str()), "perp frame {i}");
    }
    for (i, want) in want_spot.iter().enumerate() {
        let got = next_text(&mut spot).await;
        assert_eq!(got.as_deref(), Some(want.as_str()), "spot frame {i}");
    }
    ex.replay_finished().await;

    // The book is the last perp bookTicker of the recording.
    let last_book = want_perp
        .iter()
        .rev()
        .find(|j| j.contains("bookTicker"))
        .expect("a bookTicker");
    let last: Value = serde_json::from_str(last_book).unwrap();
    let c = Signed::new(&ex);
    let (s, b) = c.post("/fapi/v1/order", &MARKET_BUY).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(dec(&b["avgPrice"]), dec(&last["data"]["a"]));
    ex.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn replay_is_paced_by_speed_on_the_tokio_clock() {
    let rec = recording();
    // Twice real time: the hour between the two phases takes 30 (paused, so instant) minutes.
    let ex = start(&rec, 1, 2.0).await;
    let mut perp = connect(&format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url())).await;
    assert!(next_text(&mut perp).await.is_some());
    let t = tokio::time::Instant::now();
    let second = next_text_within(&mut perp, Duration::from_secs(2 * 3600)).await;
    assert!(second.is_some_and(|s| s.contains("60100.00")));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(1800) && waited < Duration::from_secs(1801),
        "{waited:?}"
    );
    // The frame's own time (or, at most, the next frames' 1 ms later).
    let v = ex.virtual_time();
    assert!(
        (T0 + HOUR_NS..=T0 + HOUR_NS + 1_000_000).contains(&v),
        "{v}"
    );
    ex.shutdown().await;
}
