//! Integration tests: the USD-M websocket routing of 2026 on both sides — premia's feeds and user stream (routed,
//! legacy, auto) against the local exchange enforcing mainnet routing or serving the legacy paths.

use std::time::Duration;

use futures_util::StreamExt;
use premia::binance::feed::{run_feed, FeedConfig, FeedEvent, FeedStatus};
use premia::binance::rest::{RestClient, RestConfig};
use premia::binance::routing::{Route, Routing};
use premia::binance::user_stream::{spawn_user_stream, UserStreamConfig};
use premia::binance::user_wire::{UserEvent, STREAM_CONNECTED};
use premia::binance::Credentials;
use premia::local_exchange::{LocalExchange, LocalExchangeConfig, RunningExchange};
use premia::market::MarketKind;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const T0: i64 = 1_723_161_255_088_169_167;
const MS: i64 = 1_000_000;

/// A perp book ticker; its update id `u` is its time in ms.
fn book(ts: i64, bid: &str, ask: &str) -> String {
    format!(
        "{ts} {{\"stream\":\"btcusdt@bookTicker\",\"data\":{{\"e\":\"bookTicker\",\"u\":{ms},\"s\":\"BTCUSDT\",\"b\":\"{bid}\",\"B\":\"2.507\",\"a\":\"{ask}\",\"A\":\"2.510\",\"T\":{ms},\"E\":{ms}}}}}",
        ms = ts / MS
    )
}

fn mark(ts: i64, p: &str) -> String {
    format!(
        "{ts} {{\"stream\":\"btcusdt@markPrice@1s\",\"data\":{{\"e\":\"markPriceUpdate\",\"E\":{ms},\"s\":\"BTCUSDT\",\"p\":\"{p}\",\"P\":\"60010.00\",\"i\":\"60020.00000000\",\"r\":\"0.00010000\",\"T\":{ms}}}}}",
        ms = ts / MS
    )
}

fn trade(ts: i64, id: i64, p: &str, q: &str, maker_buyer: bool) -> String {
    format!(
        "{ts} {{\"stream\":\"btcusdt@trade\",\"data\":{{\"e\":\"trade\",\"E\":{ms},\"T\":{ms},\"s\":\"BTCUSDT\",\"t\":{id},\"p\":\"{p}\",\"q\":\"{q}\",\"X\":\"MARKET\",\"m\":{maker_buyer}}}}}",
        ms = ts / MS
    )
}

/// Three perp books with two mark prices and three trades between them (the last frame is a book; the third trade
/// falls in the next minute), and one spot book.
struct Rec {
    _dir: tempfile::TempDir,
    perp: String,
    spot: String,
}

fn recording() -> Rec {
    let dir = tempfile::tempdir().unwrap();
    let perp = [
        book(T0, "60000.00", "60000.10"),
        mark(T0 + MS, "60000.05"),
        trade(T0 + MS, 7, "60000.10", "0.010", false),
        book(T0 + 2 * MS, "60001.00", "60001.10"),
        trade(T0 + 2 * MS, 8, "60000.00", "0.005", true),
        mark(T0 + 3 * MS, "60001.05"),
        trade(T0 + 50_000 * MS, 9, "60002.00", "0.001", false),
        book(T0 + 50_001 * MS, "60002.00", "60002.10"),
    ];
    let spot = format!(
        "{T0} {{\"stream\":\"btcusdt@bookTicker\",\"data\":{{\"u\":5,\"s\":\"BTCUSDT\",\"b\":\"60050.00\",\"B\":\"1.0\",\"a\":\"60050.01\",\"A\":\"1.0\"}}}}\n"
    );
    let perp_path = dir.path().join("usdm_btcusdt_t.txt");
    let spot_path = dir.path().join("spot_btcusdt_t.txt");
    std::fs::write(&perp_path, perp.join("\n") + "\n").unwrap();
    std::fs::write(&spot_path, spot).unwrap();
    Rec {
        perp: perp_path.to_string_lossy().into_owned(),
        spot: spot_path.to_string_lossy().into_owned(),
        _dir: dir,
    }
}

/// An exchange on `rec` replaying as fast as possible once `min_subscribers` book connections are open.
async fn exchange(rec: &Rec, legacy_routing: bool, min_subscribers: usize) -> RunningExchange {
    LocalExchange::start(LocalExchangeConfig {
        data: vec![rec.perp.clone(), rec.spot.clone()],
        speed: 0.0,
        min_subscribers,
        legacy_routing,
        ..LocalExchangeConfig::default()
    })
    .await
    .expect("local exchange starts")
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

/// The HTTP status a refused websocket handshake got.
async fn refused_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{url}: not an HTTP refusal: {e}"),
        Ok(_) => panic!("{url}: connected"),
    }
}

/// The next `n` text frames as JSON.
async fn next_frames(ws: &mut Ws, n: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            out.push(serde_json::from_str(t.as_str()).unwrap());
        }
    }
    out
}

/// The stream names of the next `n` text frames.
async fn next_streams(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            out.push(v["stream"].as_str().unwrap_or("").to_string());
        }
    }
    out
}

fn feed_clock() -> premia::clock::Clock {
    std::sync::Arc::new(|| 0)
}

async fn next_event(rx: &mut mpsc::Receiver<FeedEvent>) -> FeedEvent {
    tokio::time::timeout(Duration::from_secs(3600), rx.recv())
        .await
        .expect("a feed event in time")
        .expect("feed running")
}

/// Routes of the next `n` Connected statuses (anything else before them is a failure).
async fn connected_routes(rx: &mut mpsc::Receiver<FeedEvent>, n: usize) -> Vec<Option<Route>> {
    let mut routes = Vec::new();
    while routes.len() < n {
        match next_event(rx).await {
            FeedEvent::Status(FeedStatus::Connected { route, .. }) => routes.push(route),
            other => panic!("expected a connection, got {other:?}"),
        }
    }
    routes.sort_by_key(|r| r.map(Route::as_str));
    routes
}

/// Counts quotes and marks until both counts are reached.
async fn quotes_and_marks(rx: &mut mpsc::Receiver<FeedEvent>, quotes: usize, marks: usize) {
    let (mut q, mut m) = (0, 0);
    while q < quotes || m < marks {
        match next_event(rx).await {
            FeedEvent::Market(ev) => match ev.kind {
                MarketKind::Quote(_) => q += 1,
                MarketKind::Mark(_) => m += 1,
                _ => {}
            },
            FeedEvent::Status(FeedStatus::Disconnected { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((q, m), (quotes, marks));
}

#[test]
fn routed_urls_are_built_from_the_root() {
    let root = "wss://fstream.binance.com/";
    let routed = FeedConfig::perp(root, "BTCUSDT");
    assert_eq!(routed.routing, Routing::Routed);
    assert_eq!(
        routed.urls(),
        [
            "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker",
            "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s/btcusdt@forceOrder",
        ]
    );
    assert_eq!(
        FeedConfig::perp(root, "BTCUSDT")
            .with_routing(Routing::Auto)
            .urls(),
        routed.urls()
    );
    assert_eq!(
        FeedConfig::perp("wss://fstream.binance.com/stream", "BTCUSDT")
            .with_routing(Routing::Legacy)
            .urls(),
        ["wss://fstream.binance.com/stream?streams=btcusdt@bookTicker/btcusdt@markPrice@1s/btcusdt@forceOrder"]
    );
    // Spot streams are unaffected by the USD-M routing.
    assert_eq!(
        FeedConfig::spot("wss://stream.binance.com:9443", "BTCUSDT").urls(),
        ["wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker"]
    );
    let user = UserStreamConfig::new("wss://fstream.binance.com/ws");
    assert_eq!(user.url("KEY"), "wss://fstream.binance.com/private/ws/KEY");
    let legacy = UserStreamConfig {
        routing: Routing::Legacy,
        ..user
    };
    assert_eq!(legacy.url("KEY"), "wss://fstream.binance.com/ws/KEY");
}

#[tokio::test]
async fn each_route_serves_only_its_streams_and_unrouted_connections_only_public_ones() {
    let rec = recording();
    let ex = exchange(&rec, false, 2).await;
    let root = ex.futures_ws_url();
    // A market-route connection carries no book data: it does not start the replay.
    let mut market = connect(&format!(
        "{root}/market/stream?streams=btcusdt@markPrice@1s/btcusdt@bookTicker"
    ))
    .await;
    let mut market3s = connect(&format!("{root}/market/ws/btcusdt@markPrice")).await;
    let mut unrouted = connect(&format!(
        "{root}/stream?streams=btcusdt@markPrice@1s/btcusdt@bookTicker"
    ))
    .await;
    assert_eq!(ex.replay_status().frames_sent, 0);
    let mut public = connect(&format!(
        "{root}/public/stream?streams=btcusdt@markPrice@1s/btcusdt@bookTicker"
    ))
    .await;
    // The recording's last frame is a book: a mark price served on the wrong route would come before it.
    let books = vec!["btcusdt@bookTicker".to_string(); 3];
    assert_eq!(next_streams(&mut unrouted, 3).await, books);
    assert_eq!(next_streams(&mut public, 3).await, books);
    assert_eq!(
        next_streams(&mut market, 2).await,
        vec!["btcusdt@markPrice@1s".to_string(); 2]
    );
    // The recorded 1 s mark prices also serve a client asking for the 3 s stream (raw payloads here).
    let marks = next_frames(&mut market3s, 2).await;
    assert!(
        marks.iter().all(|m| m["e"] == "markPriceUpdate"),
        "{marks:?}"
    );
    ex.replay_finished().await;
    ex.shutdown().await;
}

#[tokio::test]
async fn user_data_is_served_on_private_and_legacy_mode_refuses_the_routes() {
    let rec = recording();
    let routed = exchange(&rec, false, 99).await;
    let legacy = exchange(&rec, true, 99).await;
    for ex in [&routed, &legacy] {
        let keys = ex.keys().clone();
        let client = RestClient::new(
            RestConfig::new(ex.rest_url()),
            Credentials::new(keys.api_key.clone(), keys.secret.clone()),
        )
        .expect("client");
        let key = client.create_listen_key().await.expect("listen key");
        let root = ex.user_ws_url();
        if std::ptr::eq(ex, &routed) {
            connect(&format!("{root}/private/ws/{key}")).await;
            connect(&format!("{root}/private/ws?listenKey={key}")).await;
            assert_eq!(
                refused_status(&format!("{root}/private/ws/nokey")).await,
                400
            );
        } else {
            connect(&format!("{root}/ws/{key}")).await;
            assert_eq!(
                refused_status(&format!("{root}/private/ws/{key}")).await,
                404
            );
            assert_eq!(
                refused_status(&format!("{root}/public/ws/btcusdt@bookTicker")).await,
                404
            );
        }
        // premia's user stream: routed on the routed exchange, auto falling back on the legacy one.
        let routing = if std::ptr::eq(ex, &routed) {
            Routing::Routed
        } else {
            Routing::Auto
        };
        let (tx, mut rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let task = spawn_user_stream(
            client,
            UserStreamConfig {
                routing,
                ..UserStreamConfig::new(root)
            },
            tx,
            cancel.clone(),
        );
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(
            first.expect("in time"),
            Some(UserEvent::Other(STREAM_CONNECTED))
        );
        cancel.cancel();
        task.await.unwrap();
    }
    routed.shutdown().await;
    legacy.shutdown().await;
}

#[tokio::test]
async fn routed_feed_gets_books_and_mark_prices_on_their_routes() {
    perp_feed_connects_then_gets_quotes_and_marks(
        false,
        None,
        &[Some(Route::Market), Some(Route::Public)],
    )
    .await;
}

#[tokio::test]
async fn legacy_feed_works_against_a_legacy_exchange() {
    // One unrouted connection for every stream, as before 2026.
    perp_feed_connects_then_gets_quotes_and_marks(true, Some(Routing::Legacy), &[None]).await;
}

#[tokio::test]
async fn auto_feed_falls_back_to_the_legacy_paths_when_routes_are_refused() {
    // Both routed handshakes get 404; each connection goes on unrouted, still one per route.
    perp_feed_connects_then_gets_quotes_and_marks(true, Some(Routing::Auto), &[None, None]).await;
}

/// A perp feed (with `routing`, or the default) against an exchange (legacy or routed): its connections come up on
/// `routes`, in order, then the replay brings it quotes and mark prices.
async fn perp_feed_connects_then_gets_quotes_and_marks(
    legacy_exchange: bool,
    routing: Option<Routing>,
    routes: &[Option<Route>],
) {
    let rec = recording();
    let ex = exchange(&rec, legacy_exchange, 99).await;
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let mut cfg = FeedConfig::perp(ex.futures_ws_url(), "BTCUSDT");
    if let Some(routing) = routing {
        cfg = cfg.with_routing(routing);
    }
    let task = tokio::spawn(run_feed(cfg, feed_clock(), tx, None, cancel.clone()));
    assert_eq!(connected_routes(&mut rx, routes.len()).await, routes);
    ex.start_replay();
    quotes_and_marks(&mut rx, 3, 2).await;
    cancel.cancel();
    task.await.unwrap();
    ex.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_stream_gets_one_warning_naming_it_and_the_routing() {
    let rec = recording();
    // Mainnet routing; premia configured for the legacy paths: books come, mark prices never do.
    let ex = exchange(&rec, false, 99).await;
    let (tx, mut rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let mut cfg = FeedConfig::perp(ex.futures_ws_url(), "BTCUSDT").with_routing(Routing::Legacy);
    cfg.stream_silence = Duration::from_secs(60);
    let task = tokio::spawn(run_feed(cfg, feed_clock(), tx, None, cancel.clone()));
    assert_eq!(connected_routes(&mut rx, 1).await, [None]);
    let start = tokio::time::Instant::now();
    ex.start_replay();
    quotes_and_marks(&mut rx, 3, 0).await;
    let mut warnings = Vec::new();
    // Ten minutes of (paused) time: the connection is re-established on silence meanwhile, the warning stays one.
    let until = start + Duration::from_secs(600);
    while let Ok(Some(ev)) = tokio::time::timeout_at(until, rx.recv()).await {
        if let FeedEvent::Status(s @ FeedStatus::StreamSilent { .. }) = ev {
            warnings.push((tokio::time::Instant::now() - start, s));
        }
    }
    let marks: Vec<_> = warnings
        .iter()
        .filter(|(_, s)| matches!(s, FeedStatus::StreamSilent { stream, .. } if stream == "btcusdt@markPrice@1s"))
        .collect();
    assert_eq!(marks.len(), 1, "{warnings:?}");
    let (at, status) = marks[0];
    assert!(
        *at >= Duration::from_secs(59) && *at <= Duration::from_secs(61),
        "{at:?}"
    );
    let FeedStatus::StreamSilent { route, routing, .. } = status else {
        unreachable!()
    };
    assert_eq!((*route, *routing), (None, Routing::Legacy));
    let text = status.warning().expect("a warning text");
    assert!(
        text.contains("btcusdt@markPrice@1s") && text.contains("routing: legacy"),
        "{text}"
    );
    cancel.cancel();
    task.await.unwrap();
    ex.shutdown().await;
}

#[tokio::test]
async fn derived_futures_streams_have_binance_payloads() {
    let rec = recording();
    let ex = exchange(&rec, false, 1).await;
    let root = ex.futures_ws_url();
    let mut market = connect(&format!(
        "{root}/market/stream?streams=btcusdt@aggTrade/btcusdt@kline_1m"
    ))
    .await;
    let mut public = connect(&format!(
        "{root}/public/stream?streams=btcusdt@depth5@100ms/btcusdt@depth@100ms"
    ))
    .await;
    // No depth in this recording: the touch as a one-level book, partial and diff.
    let book = next_frames(&mut public, 6).await;
    assert_eq!(book[0]["stream"], "btcusdt@depth5@100ms");
    assert_eq!(book[0]["data"]["e"], "depthUpdate");
    assert_eq!(
        book[0]["data"]["b"],
        serde_json::json!([["60000.00", "2.507"]])
    );
    assert_eq!(
        book[0]["data"]["a"],
        serde_json::json!([["60000.10", "2.510"]])
    );
    assert_eq!(book[1]["stream"], "btcusdt@depth@100ms");
    // The second diff moves the touch: the old levels go (quantity 0), the update ids chain.
    let d = &book[3]["data"];
    assert_eq!(book[3]["stream"], "btcusdt@depth@100ms");
    assert_eq!(
        d["b"],
        serde_json::json!([["60001.00", "2.507"], ["60000.00", "0"]])
    );
    assert_eq!(d["pu"], book[1]["data"]["u"]);

    let m = next_frames(&mut market, 7).await;
    let names: Vec<_> = m.iter().map(|f| f["stream"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "btcusdt@aggTrade",
            "btcusdt@kline_1m",
            "btcusdt@aggTrade",
            "btcusdt@kline_1m",
            "btcusdt@aggTrade",
            "btcusdt@kline_1m",
            "btcusdt@kline_1m"
        ]
    );
    let agg = &m[0]["data"];
    assert_eq!(
        (&agg["e"], &agg["a"], &agg["p"], &agg["q"], &agg["m"]),
        (
            &serde_json::json!("aggTrade"),
            &serde_json::json!(7),
            &serde_json::json!("60000.10"),
            &serde_json::json!("0.010"),
            &serde_json::json!(false)
        )
    );
    // The third trade opens the next minute: the first bar is sent closed, then the new one.
    let closed = &m[5]["data"]["k"];
    assert_eq!(closed["x"], true);
    assert_eq!(closed["i"], "1m");
    assert_eq!(
        (closed["o"].as_str(), closed["h"].as_str()),
        (Some("60000.10"), Some("60000.10"))
    );
    assert_eq!(
        (closed["l"].as_str(), closed["c"].as_str()),
        (Some("60000.00"), Some("60000.00"))
    );
    assert_eq!(
        (closed["v"].as_str(), closed["n"].as_u64()),
        (Some("0.015"), Some(2))
    );
    assert_eq!(closed["V"].as_str(), Some("0.01"));
    assert_eq!(
        (closed["f"].as_i64(), closed["L"].as_i64()),
        (Some(7), Some(8))
    );
    let t = closed["t"].as_i64().unwrap();
    assert_eq!((t % 60_000, closed["T"].as_i64()), (0, Some(t + 59_999)));
    let open = &m[6]["data"]["k"];
    assert_eq!(
        (open["x"].as_bool(), open["n"].as_u64()),
        (Some(false), Some(1))
    );
    assert_eq!(open["t"].as_i64(), Some(t + 60_000));
    ex.replay_finished().await;
    ex.shutdown().await;
}

#[tokio::test]
async fn recorded_depth_updates_are_served_under_any_update_speed() {
    let fixture = format!(
        "perp:{}/tests/fixtures/market_data/usdm_btcusdt_20240808_head2000.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let ex = LocalExchange::start(LocalExchangeConfig {
        data: vec![fixture],
        speed: 0.0,
        min_subscribers: 1,
        ..LocalExchangeConfig::default()
    })
    .await
    .expect("starts");
    // The capture holds `btcusdt@depth@0ms`; a client asking for the 100 ms stream gets those updates, raw.
    let mut ws = connect(&format!(
        "{}/public/ws/btcusdt@depth@100ms",
        ex.futures_ws_url()
    ))
    .await;
    let first = next_frames(&mut ws, 1).await.remove(0);
    assert_eq!(first["e"], "depthUpdate");
    assert_eq!(first["U"].as_i64(), Some(5_123_107_832_006));
    assert_eq!(first["pu"].as_i64(), Some(5_123_107_831_937));
    ex.shutdown().await;
}

#[test]
fn shipped_configs_choose_the_routing_per_environment() {
    use premia::config::Config;
    let load = |name: &str| {
        let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
        Config::parse(&std::fs::read_to_string(&path).unwrap(), &path).expect("valid config")
    };
    let demo = load("demo.toml");
    assert_eq!(
        (demo.feeds.futures_routing, demo.feeds.user_stream_routing),
        (Routing::Routed, Routing::Routed)
    );
    let testnet = load("testnet.toml");
    assert_eq!(
        (
            testnet.feeds.futures_routing,
            testnet.feeds.user_stream_routing
        ),
        (Routing::Routed, Routing::Auto)
    );
    let default = load("default.toml");
    assert_eq!(default.feeds.futures_routing, Routing::Routed);
    assert_eq!(default.feeds.stream_silence_ns, 60_000_000_000);
    // Unknown values are refused with the key named.
    let bad = Config::parse(
        "strategy = \"s.toml\"\n[feeds]\nfutures_routing = \"mixed\"\n",
        "bad.toml",
    )
    .expect_err("refused");
    let text = bad.to_string();
    assert!(
        text.contains("feeds.futures_routing") && text.contains("mixed"),
        "{text}"
    );
}

/// `premia exchange` (the real binary) with `args`: its printed URL lines and its address; the child is killed by
/// the returned guard.
struct Standalone {
    child: std::process::Child,
    lines: Vec<String>,
    addr: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn standalone(extra: &[&str]) -> Standalone {
    use std::io::BufRead;
    let fixture = format!(
        "perp:{}/tests/fixtures/market_data/usdm_btcusdt_20240808_head2000.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_premia"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["exchange", "--data", &fixture, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("premia exchange starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("user-data stream"))
    {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("premia exchange prints its URLs");
        lines.push(line);
    }
    let addr = lines
        .iter()
        .find_map(|l| l.split("http://").nth(1))
        .expect("the REST URL")
        .trim()
        .to_string();
    Standalone { child, lines, addr }
}

#[tokio::test]
async fn premia_exchange_serves_routed_paths_or_with_legacy_routing_the_old_ones() {
    let routed = standalone(&[]);
    let text = routed.lines.join("\n");
    assert!(
        text.contains("/public/stream") && text.contains("/private/ws/<listenKey>"),
        "{text}"
    );
    connect(&format!(
        "ws://{}/market/ws/btcusdt@markPrice@1s",
        routed.addr
    ))
    .await;

    let legacy = standalone(&["--legacy-routing"]);
    let text = legacy.lines.join("\n");
    assert!(
        text.contains("legacy routing") && !text.contains("/private"),
        "{text}"
    );
    connect(&format!("ws://{}/ws/btcusdt@markPrice@1s", legacy.addr)).await;
    assert_eq!(
        refused_status(&format!(
            "ws://{}/market/ws/btcusdt@markPrice@1s",
            legacy.addr
        ))
        .await,
        404
    );
}

/// Sends a live request; returns its answer and the data frames that came before it.
async fn request(
    ws: &mut Ws,
    id: u64,
    body: serde_json::Value,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    use futures_util::SinkExt;
    let mut req = body;
    req["id"] = id.into();
    ws.send(Message::Text(req.to_string().into()))
        .await
        .expect("sent");
    let mut before = Vec::new();
    loop {
        let f = next_frames(ws, 1).await.remove(0);
        if f.get("id") == Some(&serde_json::json!(id)) {
            return (f, before);
        }
        before.push(f);
    }
}

fn events(frames: &[serde_json::Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["e"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn live_subscriptions_follow_the_routes() {
    let rec = recording();
    let ex = exchange(&rec, false, 1).await;
    let root = ex.futures_ws_url();
    // Clients open a numbered connection per route and subscribe with requests (ccxt: `/public/ws/0`).
    let mut market = connect(&format!("{root}/market/ws/1")).await;
    let mut public = connect(&format!("{root}/public/ws/0")).await;
    let sub = |p: &[&str]| serde_json::json!({"method": "SUBSCRIBE", "params": p});
    // The market connection carries no book: it does not start the replay.
    let (ok, _) = request(
        &mut market,
        1,
        sub(&["btcusdt@aggTrade", "btcusdt@bookTicker"]),
    )
    .await;
    assert_eq!(ok, serde_json::json!({"result": null, "id": 1}));
    let streams = [
        "btcusdt@bookTicker",
        "btcusdt@depth",
        "btcusdt@trade",
        "btcusdt@markPrice@1s",
    ];
    let (ok, _) = request(&mut public, 2, sub(&streams)).await;
    assert_eq!(ok, serde_json::json!({"result": null, "id": 2}));

    // Raw payloads of the streams this route serves; the mark price (a /market stream) stays silent.
    let frames = next_frames(&mut public, 9).await;
    assert_eq!(
        events(&frames),
        [
            "bookTicker",
            "depthUpdate",
            "trade",
            "bookTicker",
            "depthUpdate",
            "trade",
            "trade",
            "bookTicker",
            "depthUpdate"
        ]
    );
    // Diff depth numbered with the book's update ids, and the REST snapshot too: a client syncs from either.
    let (d1, d2, d3) = (&frames[1], &frames[4], &frames[8]);
    assert_eq!(d1["u"], frames[0]["u"]);
    assert_eq!(d2["pu"], d1["u"]);
    assert_eq!(d2["U"].as_i64(), d1["u"].as_i64().map(|u| u + 1));
    assert_eq!(d3["u"], frames[7]["u"]);
    ex.replay_finished().await;
    let snap: serde_json::Value = reqwest::get(format!(
        "{}/fapi/v1/depth?symbol=BTCUSDT&limit=5",
        ex.rest_url()
    ))
    .await
    .expect("depth")
    .json()
    .await
    .expect("json");
    assert_eq!(snap["lastUpdateId"], d3["u"]);

    let (list, extra) = request(
        &mut public,
        3,
        serde_json::json!({"method": "LIST_SUBSCRIPTIONS"}),
    )
    .await;
    assert!(extra.is_empty(), "{extra:?}");
    assert_eq!(list, serde_json::json!({"result": streams, "id": 3}));
    let unsub = serde_json::json!({"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"]});
    assert_eq!(
        request(&mut public, 4, unsub).await.0["result"],
        serde_json::Value::Null
    );
    let (list, _) = request(
        &mut public,
        5,
        serde_json::json!({"method": "LIST_SUBSCRIPTIONS"}),
    )
    .await;
    assert_eq!(list["result"], serde_json::json!(streams[1..]));

    // The market connection got the aggregated trades only (the book ticker is not served on /market).
    let (_, agg) = request(
        &mut market,
        6,
        serde_json::json!({"method": "LIST_SUBSCRIPTIONS"}),
    )
    .await;
    assert_eq!(events(&agg), ["aggTrade", "aggTrade", "aggTrade"]);
    ex.shutdown().await;
}

#[tokio::test]
async fn live_requests_answer_as_binance() {
    let rec = recording();
    let ex = exchange(&rec, false, 1).await;
    let mut ws = connect(&format!("{}/public/ws", ex.futures_ws_url())).await;
    let set = serde_json::json!({"method": "SET_PROPERTY", "params": ["combined", true]});
    assert_eq!(
        request(&mut ws, 1, set).await.0["result"],
        serde_json::Value::Null
    );
    let get = serde_json::json!({"method": "GET_PROPERTY", "params": ["combined"]});
    assert_eq!(request(&mut ws, 2, get).await.0["result"], true);
    let unknown = serde_json::json!({"method": "GET_PROPERTY", "params": ["colour"]});
    assert_eq!(request(&mut ws, 3, unknown).await.0["error"]["code"], 0);
    let bad = serde_json::json!({"method": "SUBSCRIBE", "params": "btcusdt@bookTicker"});
    let (answer, _) = request(&mut ws, 4, bad).await;
    assert_eq!(answer["error"]["code"], 2, "{answer}");
    let (answer, _) = request(&mut ws, 5, serde_json::json!({"method": "FOO"})).await;
    assert_eq!(answer["error"]["code"], 2, "{answer}");
    // Combined now: frames come wrapped with their stream name.
    let sub = serde_json::json!({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"]});
    request(&mut ws, 6, sub).await;
    let f = next_frames(&mut ws, 1).await.remove(0);
    assert_eq!(
        (f["stream"].as_str(), f["data"]["e"].as_str()),
        (Some("btcusdt@bookTicker"), Some("bookTicker"))
    );
    {
        use futures_util::SinkExt;
        ws.send(Message::Text("{not json".into())).await.unwrap();
    }
    let mut answer = next_frames(&mut ws, 1).await.remove(0);
    while answer.get("error").is_none() {
        answer = next_frames(&mut ws, 1).await.remove(0);
    }
    assert_eq!(answer["error"]["code"], 3, "{answer}");
    ex.shutdown().await;
}

#[tokio::test]
async fn live_subscriptions_on_legacy_paths() {
    let rec = recording();
    let ex = exchange(&rec, true, 1).await;
    // Legacy: one unrouted connection carries every market stream.
    let mut ws = connect(&format!("{}/ws/0", ex.futures_ws_url())).await;
    let sub = serde_json::json!({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s", "btcusdt@bookTicker"]});
    assert_eq!(
        request(&mut ws, 1, sub).await.0["result"],
        serde_json::Value::Null
    );
    let frames = next_frames(&mut ws, 5).await;
    assert_eq!(
        events(&frames),
        [
            "bookTicker",
            "markPriceUpdate",
            "bookTicker",
            "markPriceUpdate",
            "bookTicker"
        ]
    );
    ex.shutdown().await;
}
