//! Integration tests: every seeded fault kind of the local exchange, observed by raw clients (reqwest,
//! tokio-tungstenite) over 127.0.0.1, the schedule's determinism, and the `premia exchange --faults` flags.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use premia::binance::sign;
use premia::local_exchange::{FaultKind, FaultPlan, LocalExchangeConfig, RunningExchange};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{self, fixture, now_ms};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const BOUND: Duration = Duration::from_secs(10);

fn quick_plan() -> FaultPlan {
    FaultPlan {
        seed: 1,
        retry_after: Duration::from_millis(1_500),
        ban: Duration::from_millis(1_500),
        ban_after: 2,
        stall: Duration::from_millis(600),
        delay: Duration::from_millis(800),
        user_tick: Duration::from_millis(20),
        ..FaultPlan::default()
    }
}

async fn exchange(plan: FaultPlan) -> RunningExchange {
    support::start(LocalExchangeConfig {
        faults: plan,
        ..support::head2000(1.0, 1)
    })
    .await
}

fn signed_url(ex: &RunningExchange, path: &str, params: &[(&str, &str)]) -> String {
    let mut q = String::new();
    for (k, v) in params {
        sign::push_param(&mut q, k, v);
    }
    sign::push_param(&mut q, "timestamp", &now_ms().to_string());
    let s = sign::sign(&ex.keys().secret, &q);
    sign::push_param(&mut q, "signature", &s);
    format!("{}{path}?{q}", ex.rest_url())
}

async fn send(
    http: &reqwest::Client,
    ex: &RunningExchange,
    method: reqwest::Method,
    path: &str,
    params: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    http.request(method, signed_url(ex, path, params))
        .header("X-MBX-APIKEY", &ex.keys().api_key)
        .send()
        .await
}

async fn answer(r: reqwest::Result<reqwest::Response>) -> (u16, Value, Option<String>) {
    let r = r.expect("an answer");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, r.json().await.expect("json body"), retry)
}

fn http(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
}

fn market_buy(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("symbol", "BTCUSDT".into()),
        ("side", "BUY".into()),
        ("type", "MARKET".into()),
        ("quantity", "0.010".into()),
        ("newClientOrderId", id.to_string()),
    ]
}

async fn place(
    http: &reqwest::Client,
    ex: &RunningExchange,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    let p = market_buy(id);
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    send(http, ex, reqwest::Method::POST, "/fapi/v1/order", &p).await
}

async fn status_of(ex: &RunningExchange, id: &str) -> Value {
    let p = [("symbol", "BTCUSDT"), ("origClientOrderId", id)];
    let (_, b, _) =
        answer(send(&http(BOUND), ex, reqwest::Method::GET, "/fapi/v1/order", &p).await).await;
    b
}

async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(url))
        .await
        .expect("connects in time")
        .expect("websocket connects");
    ws
}

/// The next data or close message (pings and pongs skipped); None when the stream ended.
async fn next_msg(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            _ => return None,
        }
    }
}

/// Sends a ping and waits (bounded) for its pong, passing over other frames; returns how long the pong took.
async fn pong_after(ws: &mut Ws, ping: &'static str, stream: &str) -> Duration {
    let t0 = Instant::now();
    ws.send(Message::Ping(ping.into())).await.unwrap();
    loop {
        match tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Pong(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("{stream} ended during a stall: {other:?}"),
        }
    }
    t0.elapsed()
}

fn close_code(m: Option<Message>) -> Option<CloseCode> {
    match m {
        Some(Message::Close(Some(f))) => Some(f.code),
        _ => None,
    }
}

/// Waits until the exchange has counted `n` faults of `kind`.
async fn counted(ex: &RunningExchange, kind: FaultKind, n: u64) {
    let t0 = Instant::now();
    while ex.fault_counts().get(kind) < n {
        assert!(
            t0.elapsed() < BOUND,
            "{kind} not counted: {}",
            ex.fault_counts()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn rate_limit_escalates_to_a_ban_and_clock_skew_refuses_signed_requests() {
    let ex = exchange(quick_plan()).await;
    let c = http(BOUND);
    let time = || c.get(format!("{}/fapi/v1/time", ex.rest_url())).send();

    ex.arm_fault(FaultKind::RateLimit);
    let (s, b, retry) = answer(time().await).await;
    assert_eq!((s, b["code"].as_i64()), (429, Some(-1003)), "{b}");
    assert_eq!(retry.as_deref(), Some("2"));
    assert_eq!(ex.fault_counts().violations, 0);
    // Inside the window: a violation, still 429; the second escalates to a ban.
    let (s, _, _) = answer(time().await).await;
    assert_eq!(s, 429);
    let (s, b, retry) = answer(time().await).await;
    assert_eq!(s, 418, "{b}");
    assert!(retry.is_some());
    let (s, _, _) = answer(time().await).await;
    assert_eq!(s, 418);
    let counts = ex.fault_counts();
    assert_eq!(counts.violations, 3);
    assert_eq!(counts.get(FaultKind::RateLimit), 1);
    assert_eq!(counts.get(FaultKind::Ban), 1);
    // After the ban, served again.
    let t0 = Instant::now();
    loop {
        let (s, _, _) = answer(time().await).await;
        if s == 200 {
            break;
        }
        assert!(t0.elapsed() < BOUND, "ban never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Clock skew: only signed requests.
    ex.set_fault_rate(FaultKind::ClockSkew, 1.0);
    let (s, _, _) = answer(time().await).await;
    assert_eq!(s, 200);
    let (s, b, _) =
        answer(send(&c, &ex, reqwest::Method::GET, "/fapi/v2/balance", &[]).await).await;
    assert_eq!((s, b["code"].as_i64()), (400, Some(-1021)), "{b}");
    ex.set_fault_rate(FaultKind::ClockSkew, 0.0);
    let (s, _, _) =
        answer(send(&c, &ex, reqwest::Method::GET, "/fapi/v2/balance", &[]).await).await;
    assert_eq!(s, 200);
    ex.shutdown().await;
}

#[tokio::test]
async fn order_faults_rejected_unknown_delayed_lost() {
    let ex = exchange(quick_plan()).await;
    // Market orders need a book: one subscriber starts the replay.
    let mut perp = connect(&format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url())).await;
    assert!(matches!(next_msg(&mut perp).await, Some(Message::Text(_))));
    let c = http(BOUND);

    ex.arm_fault(FaultKind::OrderRejected);
    let (s, _, _) = answer(place(&c, &ex, "rej-1").await).await;
    assert_eq!(s, 500);
    assert_eq!(status_of(&ex, "rej-1").await["code"], -2013);

    ex.arm_fault(FaultKind::OrderUnknown);
    let (s, b, _) = answer(place(&c, &ex, "unk-1").await).await;
    assert_eq!((s, b["code"].as_i64()), (503, Some(-1007)), "{b}");
    assert_eq!(status_of(&ex, "unk-1").await["status"], "FILLED");

    // Delayed past the client's timeout: UNKNOWN to the client, executed on the exchange.
    ex.arm_fault(FaultKind::OrderDelayed);
    let r = place(&http(Duration::from_millis(300)), &ex, "late-1").await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    assert_eq!(status_of(&ex, "late-1").await["status"], "FILLED");
    // A patient client gets the answer after the delay.
    ex.arm_fault(FaultKind::OrderDelayed);
    let t0 = Instant::now();
    let (s, _, _) = answer(place(&c, &ex, "late-2").await).await;
    assert_eq!(s, 200);
    assert!(t0.elapsed() >= Duration::from_millis(800));

    // Lost: the connection closes without an answer (not a timeout), the order is executed.
    ex.arm_fault(FaultKind::OrderLost);
    let r = place(&c, &ex, "lost-1").await;
    let lost = match r {
        Err(e) => !e.is_timeout(),
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(lost, "a lost answer must fail on the connection");
    assert_eq!(status_of(&ex, "lost-1").await["status"], "FILLED");

    let counts = ex.fault_counts();
    for k in [
        FaultKind::OrderRejected,
        FaultKind::OrderUnknown,
        FaultKind::OrderLost,
    ] {
        assert_eq!(counts.get(k), 1, "{k}: {counts}");
    }
    assert_eq!(counts.get(FaultKind::OrderDelayed), 2);
    // The ledger: every executed order accepted once, the refused one not at all, one trade each.
    let ledger = ex.fault_ledger();
    let accepted: Vec<&str> = ledger.accepted.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(accepted, ["unk-1", "late-1", "late-2", "lost-1"]);
    let traded: Vec<&str> = ledger.trades.iter().map(|t| t.client_id.as_str()).collect();
    assert_eq!(traded, accepted);
    ex.shutdown().await;
}

#[tokio::test]
async fn market_stream_closes_malformed_truncated_and_stall() {
    let ex = exchange(quick_plan()).await;
    let url = format!("{}/ws/btcusdt@bookTicker", ex.futures_ws_url());
    for (kind, code) in [
        (FaultKind::MarketClose1001, CloseCode::Away),
        (FaultKind::MarketClose1008, CloseCode::Policy),
    ] {
        let mut ws = connect(&url).await;
        ex.arm_fault(kind);
        let mut m = next_msg(&mut ws).await;
        while matches!(m, Some(Message::Text(_))) {
            m = next_msg(&mut ws).await;
        }
        assert_eq!(close_code(m), Some(code), "{kind}");
    }

    let mut ws = connect(&url).await;
    // The closes were outages of the perp feed, over once frames flowed again.
    assert!(matches!(next_msg(&mut ws).await, Some(Message::Text(_))));
    let outages = ex.fault_ledger().outages;
    assert!(!outages.is_empty(), "outages recorded");
    assert!(outages
        .iter()
        .all(|o| o.venue == premia::model::Venue::Perp && o.to_ms.is_some_and(|t| t >= o.from_ms)));
    ex.arm_fault(FaultKind::Malformed);
    counted(&ex, FaultKind::Malformed, 1).await;
    let mut bad = 0;
    for _ in 0..50 {
        if let Some(Message::Text(t)) = next_msg(&mut ws).await {
            if serde_json::from_str::<Value>(&t).is_err() {
                bad += 1;
                break;
            }
        }
    }
    assert_eq!(bad, 1, "the malformed frame reached the client");
    ex.arm_fault(FaultKind::Truncated);
    counted(&ex, FaultKind::Truncated, 1).await;
    let mut cut = false;
    for _ in 0..50 {
        if let Some(Message::Text(t)) = next_msg(&mut ws).await {
            if serde_json::from_str::<Value>(&t).is_err() {
                cut = t.starts_with('{');
                break;
            }
        }
    }
    assert!(cut, "a truncated frame is a prefix of a frame");

    // Stall: not even a pong for the stall time (frames sent before it may still be in the client's buffers);
    // frames again afterwards.
    ex.arm_fault(FaultKind::MarketStall);
    counted(&ex, FaultKind::MarketStall, 1).await;
    let silent = pong_after(&mut ws, "are you there", "stream").await;
    assert!(
        silent >= Duration::from_millis(450),
        "silent for only {silent:?}"
    );
    ex.shutdown().await;
}

#[tokio::test]
async fn user_stream_closes_stall_and_listen_key_expiry() {
    let ex = exchange(quick_plan()).await;
    let c = http(BOUND);
    let new_key = || async {
        let r = c
            .post(format!("{}/fapi/v1/listenKey", ex.rest_url()))
            .header("X-MBX-APIKEY", &ex.keys().api_key)
            .send()
            .await;
        let (_, b, _) = answer(r).await;
        b["listenKey"].as_str().expect("listenKey").to_string()
    };
    for (kind, code) in [
        (FaultKind::UserClose1001, CloseCode::Away),
        (FaultKind::UserClose1008, CloseCode::Policy),
    ] {
        let key = new_key().await;
        let mut ws = connect(&format!("{}/private/ws/{key}", ex.user_ws_url())).await;
        ex.arm_fault(kind);
        assert_eq!(close_code(next_msg(&mut ws).await), Some(code), "{kind}");
    }

    let key = new_key().await;
    let mut ws = connect(&format!("{}/private/ws/{key}", ex.user_ws_url())).await;
    ex.arm_fault(FaultKind::UserStall);
    counted(&ex, FaultKind::UserStall, 1).await;
    let silent = pong_after(&mut ws, "hello", "user stream").await;
    assert!(silent >= Duration::from_millis(450), "{silent:?}");

    ex.arm_fault(FaultKind::ListenKeyExpired);
    let m = next_msg(&mut ws).await;
    let Some(Message::Text(t)) = m else {
        panic!("expected listenKeyExpired, got {m:?}");
    };
    let e: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(e["e"], "listenKeyExpired");
    assert_eq!(e["listenKey"], key.as_str());
    let put = c
        .put(format!("{}/fapi/v1/listenKey", ex.rest_url()))
        .header("X-MBX-APIKEY", &ex.keys().api_key)
        .send()
        .await;
    let (_, b, _) = answer(put).await;
    assert_eq!(b["code"], -1125);
    assert_eq!(ex.fault_counts().get(FaultKind::ListenKeyExpired), 1);
    ex.shutdown().await;
}

/// The n-th signed request of each exchange faults alike for one seed, differently for another.
#[tokio::test]
async fn one_seed_one_schedule() {
    let plan = |seed| FaultPlan {
        seed,
        rates: FaultPlan::parse_rates("clock-skew=0.3").unwrap(),
        ..quick_plan()
    };
    let mut schedules = Vec::new();
    for seed in [11, 11, 12] {
        let ex = exchange(plan(seed)).await;
        let c = http(BOUND);
        let mut s = Vec::new();
        for _ in 0..60 {
            let (status, _, _) =
                answer(send(&c, &ex, reqwest::Method::GET, "/fapi/v2/balance", &[]).await).await;
            s.push(status == 400);
        }
        assert_eq!(
            ex.fault_counts().get(FaultKind::ClockSkew),
            s.iter().filter(|x| **x).count() as u64
        );
        schedules.push(s);
        ex.shutdown().await;
    }
    assert_eq!(schedules[0], schedules[1]);
    assert_ne!(schedules[0], schedules[2]);
    assert!(schedules[0].contains(&true) && schedules[0].contains(&false));
}

#[test]
fn exchange_cli_injects_faults_and_rejects_bad_specs() {
    let bad = Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(["exchange", "--data", "x.gz", "--faults", "market-stal=0.1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("market-stal") && err.contains("unknown fault kind"),
        "{err}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(["exchange", "--listen", "127.0.0.1:0", "--data"])
        .arg(format!(
            "perp:{}",
            fixture("usdm_btcusdt_20240808_head2000.gz")
        ))
        .args(["--faults", "rate-limit=1", "--fault-seed", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut rest = None;
    let mut faults_line = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(u) = line.trim().strip_prefix("REST:") {
            rest = Some(u.trim().to_string());
        }
        faults_line |= line.contains("faults (seed 5)") && line.contains("rate-limit=1");
        if line.contains("replay starts") {
            break;
        }
    }
    let rest = rest.expect("the exchange prints its REST URL");
    let status = blocking_status(&format!("{rest}/fapi/v1/time"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(faults_line, "the exchange announces its fault plan");
    assert_eq!(status, 429);
}

/// A GET from synchronous code: a small runtime of its own.
fn blocking_status(url: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::get(url)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}
